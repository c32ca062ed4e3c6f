/* The FCR controller (grid/fcr.h): product activation, clamps, NEM, the
 * release cases; the settings check; the control tables' writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <math.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/err.h"
#include "grid/fcr.h"
#include "grid/fcrlog.h"
#include "profiles/profile.h"

static void test_activation(void **state)
{
	(void)state;
	assert_true(fabs(fcr_activation(FCR_N, 50.0)) < 1e-12);
	assert_true(fabs(fcr_activation(FCR_N, 49.95) - 0.5) < 1e-9);
	assert_true(fabs(fcr_activation(FCR_N, 49.9) - 1) < 1e-9);
	assert_true(fabs(fcr_activation(FCR_N, 49.0) - 1) < 1e-9);
	assert_true(fabs(fcr_activation(FCR_N, 50.08) + 0.8) < 1e-9);
	assert_true(fcr_activation(FCR_D_UP, 49.95) == 0);
	assert_true(fabs(fcr_activation(FCR_D_UP, 49.7) - 0.5) < 1e-9);
	assert_true(fabs(fcr_activation(FCR_D_UP, 49.5) - 1) < 1e-9);
	assert_true(fabs(fcr_activation(FCR_D_UP, 48.0) - 1) < 1e-9);
	assert_true(fcr_activation(FCR_D_DOWN, 50.1) == 0);
	assert_true(fabs(fcr_activation(FCR_D_DOWN, 50.3) + 0.5) < 1e-9);
	assert_true(fabs(fcr_activation(FCR_D_DOWN, 51.0) + 1) < 1e-9);
	assert_true(fcr_activation(FCR_N, NAN) == 0);
}

static struct fcr_conf conf3(void)
{
	struct fcr_conf c = { .enabled = true, .soc_min = 0.1, .soc_max = 0.9 };
	c.capacity_w[FCR_N] = 2000;
	c.capacity_w[FCR_D_UP] = 3000;
	c.capacity_w[FCR_D_DOWN] = 3000;
	return c;
}

static struct fcr_input input(double hz, double soc, usec_t now)
{
	return (struct fcr_input){ .hz = hz, .hz_at = now, .battery_ok = true, .soc = soc,
				   .limit_charge_w = NAN, .limit_discharge_w = NAN };
}

static void test_setpoint_and_clamps(void **state)
{
	struct fcr_conf c = conf3();
	struct fcr_ctl ctl;
	struct fcr_out o;
	struct fcr_input in;
	(void)state;

	fcr_ctl_init(&ctl, &c);
	in = input(49.7, 0.5, 1000000);
	fcr_ctl_step(&ctl, &in, 1000000, &o);
	assert_int_equal(o.state, FCR_ACTIVE);
	assert_true(o.setpoint_w == -3500); /* FCR-N 2000 + FCR-D up 1500, discharging */
	in = input(50.3, 0.5, 1000000);
	fcr_ctl_step(&ctl, &in, 1000000, &o);
	assert_true(o.setpoint_w == 3500);
	/* the battery's limits bound it */
	in.limit_charge_w = 1200.6;
	fcr_ctl_step(&ctl, &in, 1000000, &o);
	assert_true(o.setpoint_w == 1200);
	in = input(48.0, 0.5, 1000000);
	in.limit_discharge_w = 999.5;
	fcr_ctl_step(&ctl, &in, 1000000, &o);
	assert_true(o.setpoint_w == -999);
}

static void test_release_cases(void **state)
{
	struct fcr_conf c = conf3();
	struct fcr_ctl ctl;
	struct fcr_out o;
	struct fcr_input in;
	(void)state;

	fcr_ctl_init(&ctl, &c);
	in = input(49.7, 0.5, 1000000);
	fcr_ctl_step(&ctl, &in, 1000000 + FCR_STALE_USEC + 1, &o);
	assert_int_equal(o.state, FCR_RELEASED);
	assert_true(o.setpoint_w == 0);
	assert_non_null(strstr(o.reason, "stale"));
	in.battery_ok = false;
	fcr_ctl_step(&ctl, &in, 1000000, &o);
	assert_int_equal(o.state, FCR_RELEASED);
	in = input(49.7, 0.05, 1000000);
	fcr_ctl_step(&ctl, &in, 1000000, &o);
	assert_int_equal(o.state, FCR_RELEASED);
	/* back inside, but not a point inside yet: still released */
	in.soc = 0.105;
	fcr_ctl_step(&ctl, &in, 1000000, &o);
	assert_int_equal(o.state, FCR_RELEASED);
	in.soc = 0.2;
	fcr_ctl_step(&ctl, &in, 1000000, &o);
	assert_int_equal(o.state, FCR_ACTIVE);
	in.soc = NAN;
	fcr_ctl_step(&ctl, &in, 1000000, &o);
	assert_int_equal(o.state, FCR_WAITING);
	c.enabled = false;
	fcr_ctl_init(&ctl, &c);
	in = input(49.7, 0.5, 1000000);
	fcr_ctl_step(&ctl, &in, 1000000, &o);
	assert_int_equal(o.state, FCR_OFF);
	assert_true(o.setpoint_w == 0);
}

static void test_nem(void **state)
{
	struct fcr_conf c = { .enabled = true, .soc_min = 0.1, .soc_max = 0.9 };
	struct fcr_ctl ctl;
	struct fcr_out o;
	struct fcr_input in;
	(void)state;

	c.capacity_w[FCR_N] = 1000;
	fcr_ctl_init(&ctl, &c);
	/* soc 0.25: upward endurance (0.15 / 0.4) * 60 = 22.5 min < 30: charge */
	in = input(50.0, 0.25, 1000000);
	fcr_ctl_step(&ctl, &in, 1000000, &o);
	assert_true(o.setpoint_w == 340);
	/* 50 min: still on (off at 57.5) */
	in.soc = 0.1 + 0.4 * 50.0 / 60;
	fcr_ctl_step(&ctl, &in, 1000000, &o);
	assert_true(o.nem_w == 340);
	in.soc = 0.5;
	fcr_ctl_step(&ctl, &in, 1000000, &o);
	assert_true(o.nem_w == 0);
	/* outside the normal band there is no NEM */
	in = input(49.8, 0.2, 1000000);
	fcr_ctl_step(&ctl, &in, 1000000, &o);
	assert_true(o.nem_w == 0);
	assert_true(o.setpoint_w == -1000);
	/* near soc_max: discharge */
	in = input(50.0, 0.8, 1000000);
	fcr_ctl_step(&ctl, &in, 1000000, &o);
	assert_true(o.setpoint_w == -340);
}

static void test_conf_parse(void **state)
{
	struct fcr_conf c;
	struct fcr_conf_error err;
	json_t *doc;
	(void)state;

	doc = json_loads("{\"devices\": [{\"host\": \"127.0.0.1\", \"profile\": \"huawei_hybrid\", "
			 "\"id\": \"bat\"}, {\"host\": \"127.0.0.1\", \"port\": 503, \"profile\": "
			 "\"sdm630\", \"id\": \"m\"}], \"frequency\": {\"device\": 1}, \"fcr\": "
			 "{\"enabled\": true, \"battery_device\": \"bat\", \"frequency_device\": \"m\", "
			 "\"products\": [{\"product\": \"fcr-n\", \"capacity_w\": 1000}], "
			 "\"soc_min\": 20, \"soc_max\": 80}}", 0, NULL);
	assert_non_null(doc);
	assert_int_equal(fcr_conf_parse(doc, &c, &err), 0);
	assert_true(c.enabled && c.capacity_w[FCR_N] == 1000 && c.soc_min == 0.2);
	/* the inverter's 10-mHz register */
	json_object_set_new(json_object_get(doc, "frequency"), "device", json_integer(0));
	json_object_set_new(json_object_get(doc, "fcr"), "frequency_device", json_string("bat"));
	assert_int_equal(fcr_conf_parse(doc, &c, &err), -EGW_ESCHEMA);
	assert_string_equal(err.key, "fcr.frequency_device");
	assert_non_null(strstr(err.msg, "10 mHz"));
	/* the meter, but not the frequency source */
	json_object_set_new(json_object_get(doc, "fcr"), "frequency_device", json_string("m"));
	assert_int_equal(fcr_conf_parse(doc, &c, &err), -EGW_ESCHEMA);
	assert_non_null(strstr(err.msg, "frequency.device"));
	json_decref(doc);
}

static void test_control_writes(void **state)
{
	struct bctl_write w[4];
	const struct profile *sg = profile_find("sungrow_sf"), *hw = profile_find("huawei_hybrid");
	(void)state;

	assert_non_null(sg->control);
	assert_int_equal(battctl_setpoint(sg->control, -1234.4, NULL, w, 4), 1);
	assert_int_equal(w[0].addr, 13050);
	assert_int_equal(w[0].values[0], 0xBB);
	assert_int_equal(w[0].values[1], 1234);
	assert_int_equal(battctl_setpoint(sg->control, 0, NULL, w, 4), 1);
	assert_int_equal(w[0].values[0], 0xCC);
	assert_int_equal(battctl_setpoint(hw->control, 70000, NULL, w, 4), 2);
	assert_int_equal(w[0].addr, 47247);
	assert_int_equal((uint32_t)w[0].values[0] << 16 | w[0].values[1], 70000);
	assert_int_equal(w[0].values[2] | w[0].values[3], 0);
	assert_int_equal(w[1].addr, 47100);
	assert_int_equal(w[1].values[0], 1);
	assert_int_equal(battctl_setpoint(hw->control, 0, NULL, w, 4), 2);
	assert_int_equal(w[0].values[0] | w[0].values[1] | w[0].values[2] | w[0].values[3], 0);
	assert_int_equal(w[1].values[0], 1); /* held at 0 W, not handed back */
	assert_int_equal(battctl_setpoint(hw->control, NAN, NULL, w, 4), -EINVAL);
	assert_null(profile_find("sungrow")->control); /* SG string inverters have no battery */

	/* SunSpec 124 at 40122: a map built by the model walk has the table */
	const struct sunspec_model_hdr hdrs[] = {
		{ .id = 1, .addr = 40002, .len = 66 }, { .id = 124, .addr = 40122, .len = 24 },
		{ .id = 802, .addr = 40148, .len = 62 },
	};
	struct profile *ss;
	assert_int_equal(sunspec_build_profile(40000, hdrs, 3, &ss), 0);
	assert_non_null(ss->control);
	struct bctl_ref ref = { .wchamax_w = 5000, .rate_sf = -2 };
	assert_int_equal(battctl_setpoint(ss->control, -1250, NULL, w, 4), -EINVAL);
	assert_int_equal(battctl_setpoint(ss->control, -1250, &ref, w, 4), 2);
	assert_int_equal(w[0].addr, 40134); /* OutWRte, InWRte */
	assert_int_equal((int16_t)w[0].values[0], 2500); /* 25.00 % */
	assert_int_equal((int16_t)w[0].values[1], -2500);
	assert_int_equal(w[1].addr, 40127); /* StorCtl_Mod */
	assert_int_equal(w[1].values[0], 3);
	assert_int_equal(battctl_setpoint(ss->control, 9000, &ref, w, 4), 2);
	assert_int_equal((int16_t)w[0].values[1], 10000); /* never over WChaMax */
	assert_int_equal(ss->control->release[0].addr, 40127);
	assert_int_equal(ss->control->take[0].addr, 40137); /* InOutWRte_RvrtTms */
	profile_free(ss);
}

static unsigned count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	unsigned n = 0;
	assert_non_null(d);
	while ((de = readdir(d)))
		n += strncmp(de->d_name, "fcr-", 4) == 0;
	closedir(d);
	return n;
}

/* Day files at 1 Hz, kept keep_days + 1 days; the CSV of a range; the ring. */
static void test_log(void **state)
{
	char dir[] = "/tmp/egw-fcrlog-XXXXXX";
	struct fcrlog *l;
	const int64_t day = 86400000, t0 = 20000 * day; /* a midnight, UTC */
	char *csv;
	size_t len;
	(void)state;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(fcrlog_new(dir, 14, &l), 0);
	/* 20 days, a few records each: 10 Hz for a second, so one line a day */
	for (int d = 0; d < 20; d++)
		for (int i = 0; i < 10; i++) {
			struct fcr_rec r = { .ts_ms = t0 + d * day + 3600000 + i * 100, .hz = 49.9 + i * 0.001,
					     .setpoint_w = i == 5 ? NAN : -100.0 * i, .measured_w = NAN,
					     .state = FCR_ACTIVE };
			assert_int_equal(fcrlog_add(l, &r), 0);
		}
	assert_int_equal(fcrlog_flush(l), 0);
	assert_int_equal(fcrlog_lines(l), 20);
	assert_int_equal(count_files(dir), 16); /* the day written and 15 before it */
	assert_int_equal(fcrlog_csv(l, t0 + 19 * day, t0 + 20 * day - 1, FCRLOG_EGW, &csv, &len), 0);
	assert_non_null(strstr(csv, "time_utc,ts_ms,f_Hz,setpoint_W,measured_W,state,"));
	assert_non_null(strstr(csv, ",49.900,0,,active,"));
	assert_null(strstr(csv, "49.901")); /* 1 Hz: the first record of each second only */
	free(csv);
	/* the TSO columns: MW, the battery's power unknown, nothing offered */
	assert_int_equal(fcrlog_csv(l, t0 + 19 * day, t0 + 20 * day - 1, FCRLOG_TSO, &csv, &len), 0);
	assert_non_null(strstr(csv, "Timestamp UTC,Frequency [Hz],Instantaneous active power [MW],"));
	assert_non_null(strstr(csv, ".000Z,49.900,,,0.000000,0.000000,0.000000,0.000000,"));
	assert_non_null(strstr(csv, ",off,off,off\n"));
	free(csv);
	assert_int_equal(fcrlog_csv(l, 0, 2 * day, FCRLOG_EGW, &csv, &len), -EINVAL);
	struct fcr_rec ring[32];
	assert_int_equal(fcrlog_ring(l, t0 + 19 * day, t0 + 20 * day, ring, 32), 10);
	assert_true(isnan(ring[5].setpoint_w));
	fcrlog_free(l);
	DIR *dd = opendir(dir);
	struct dirent *de;
	char path[512];
	while ((de = readdir(dd))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		assert_int_equal(unlink(path), 0);
	}
	closedir(dd);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_activation),
		cmocka_unit_test(test_setpoint_and_clamps),
		cmocka_unit_test(test_release_cases),
		cmocka_unit_test(test_nem),
		cmocka_unit_test(test_conf_parse),
		cmocka_unit_test(test_control_writes),
		cmocka_unit_test(test_log),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
