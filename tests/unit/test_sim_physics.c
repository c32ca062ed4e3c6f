/* Physics of egw-sim: consistency (P = V x I), monotonic counters that match
 * integrated power, SoC following battery power, frequency range and
 * events, determinism and the sped-up clock. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/util.h"
#include "sim/physics.h"

static void run_day(uint64_t seed, double step, double hours,
		    void (*check)(const struct sim_values *prev, const struct sim_values *v, void *ud),
		    void *ud)
{
	struct sim_phys_cfg cfg = SIM_PHYS_CFG_DEFAULT;
	cfg.seed = seed;
	cfg.start_tod_s = 0.0;
	struct sim_phys p;
	assert_int_equal(sim_phys_init(&p, &cfg), 0);
	struct sim_values prev, v;
	assert_int_equal(sim_phys_advance(&p, 0.0, &prev), 0);
	for (double t = step; t <= hours * 3600.0 + 1e-9; t += step) {
		assert_int_equal(sim_phys_advance(&p, t, &v), 0);
		check(&prev, &v, ud);
		prev = v;
	}
}

static void check_pvi(const struct sim_values *prev, const struct sim_values *v, void *ud)
{
	(void)prev;
	int *day = ud;
	/* P = V x I on every port, within rounding */
	assert_true(fabs(v->mppt1_v * v->mppt1_a + v->mppt2_v * v->mppt2_a - v->pv_dc_w) < 1e-6 * (1 + v->pv_dc_w));
	assert_true(fabs(v->bat_v * v->bat_a - v->bat_w) < 1e-6 * (1 + fabs(v->bat_w)));
	double sum = 0, pv = 0;
	for (int i = 0; i < 3; i++) {
		assert_true(fabs(v->l_v[i] * v->l_a[i] - v->l_w[i]) < 1e-6 * (1 + fabs(v->l_w[i])));
		assert_true(fabs(v->l_v[i] * v->pv_l_a[i] - v->pv_l_w[i]) < 1e-6 * (1 + fabs(v->pv_l_w[i])));
		assert_true(v->l_v[i] > 220 && v->l_v[i] < 240);
		sum += v->l_w[i];
		pv += v->pv_l_w[i];
	}
	assert_true(fabs(sum - v->meter_w) < 1e-6 * (1 + fabs(sum)));
	assert_true(fabs(pv - v->pv_w) < 1e-6 * (1 + fabs(pv)));
	/* meter = load - generation + charging */
	assert_true(fabs(v->meter_w - (v->load_w + v->pv_w + v->bat_w)) < 1e-6 * (1 + v->load_w));
	/* generation is negative, bounded by the rating, AC below DC */
	assert_true(v->pv_w <= 0 && -v->pv_w <= v->pv_rated_w + 1e-9);
	assert_true(-v->pv_w <= v->pv_dc_w + 1e-9);
	if (v->night)
		assert_true(v->pv_w == 0 && v->mppt1_a == 0);
	else if (v->pv_w < -100)
		(*day)++;
	assert_true(v->bat_soc >= 0 && v->bat_soc <= 1);
}

static void test_power_consistency(void **state)
{
	(void)state;
	int day = 0;
	run_day(7, 10.0, 24.0, check_pvi, &day);
	assert_true(day > 1000); /* many samples of real generation */
}

struct integ {
	double pv_wh, chg_wh, dis_wh, imp_wh, exp_wh;
	double first_pv, first_chg, first_dis, first_imp, first_exp, first_soc;
	double last_pv, last_chg, last_dis, last_imp, last_exp, last_soc;
	bool started;
	double step;
	double peak;
};

static void check_integ(const struct sim_values *prev, const struct sim_values *v, void *ud)
{
	struct integ *in = ud;
	if (!in->started) {
		in->first_pv = prev->pv_total_wh;
		in->first_chg = prev->bat_charge_wh;
		in->first_dis = prev->bat_discharge_wh;
		in->first_imp = prev->import_wh;
		in->first_exp = prev->export_wh;
		in->first_soc = prev->bat_soc;
		in->started = true;
	}
	/* counters only grow */
	assert_true(v->pv_total_wh >= prev->pv_total_wh);
	assert_true(v->bat_charge_wh >= prev->bat_charge_wh);
	assert_true(v->bat_discharge_wh >= prev->bat_discharge_wh);
	assert_true(v->import_wh >= prev->import_wh);
	assert_true(v->export_wh >= prev->export_wh);
	/* independent trapezoid integration of the published power */
	double h = in->step / 3600.0;
	in->pv_wh += (-prev->pv_w - v->pv_w) / 2 * h;
	in->chg_wh += (MAX(prev->bat_w, 0) + MAX(v->bat_w, 0)) / 2 * h;
	in->dis_wh += (MAX(-prev->bat_w, 0) + MAX(-v->bat_w, 0)) / 2 * h;
	in->imp_wh += (MAX(prev->meter_w, 0) + MAX(v->meter_w, 0)) / 2 * h;
	in->exp_wh += (MAX(-prev->meter_w, 0) + MAX(-v->meter_w, 0)) / 2 * h;
	in->last_pv = v->pv_total_wh;
	in->last_chg = v->bat_charge_wh;
	in->last_dis = v->bat_discharge_wh;
	in->last_imp = v->import_wh;
	in->last_exp = v->export_wh;
	in->last_soc = v->bat_soc;
	in->peak = MAX(in->peak, -v->pv_w);
}

static void assert_close(double counted, double integrated, const char *what)
{
	double err = fabs(counted - integrated);
	if (err > 0.01 * integrated + 1.0)
		fail_msg("%s: counter %.3f Wh vs integrated %.3f Wh", what, counted, integrated);
}

static void test_counters_match_power(void **state)
{
	(void)state;
	/* 0.5 s samples over a whole day, like a poller at a sped-up clock */
	struct integ in = { .step = 0.5 };
	run_day(11, in.step, 24.0, check_integ, &in);
	assert_true(in.pv_wh > 5000);      /* a 5 kW array makes > 5 kWh a day */
	assert_true(in.peak > 2500);
	assert_close(in.last_pv - in.first_pv, in.pv_wh, "pv");
	assert_close(in.last_chg - in.first_chg, in.chg_wh, "charge");
	assert_close(in.last_dis - in.first_dis, in.dis_wh, "discharge");
	assert_close(in.last_imp - in.first_imp, in.imp_wh, "import");
	assert_close(in.last_exp - in.first_exp, in.exp_wh, "export");
	/* the battery did work both ways */
	assert_true(in.chg_wh > 1000 && in.dis_wh > 1000);
	/* SoC follows the integrated battery power within its capacity */
	double dsoc = (in.chg_wh - in.dis_wh) / 10000.0;
	assert_true(fabs((in.last_soc - in.first_soc) - dsoc) < 0.01);
}

static void test_speedup_same_energy(void **state)
{
	(void)state;
	/* Large steps (a 60x clock ticked at 10 Hz = 6 s, or 1 h jumps) give the
	 * same counters as fine steps: the model sub-steps internally. */
	struct sim_phys_cfg cfg = SIM_PHYS_CFG_DEFAULT;
	cfg.seed = 3;
	struct sim_phys a, b, c;
	sim_phys_init(&a, &cfg);
	sim_phys_init(&b, &cfg);
	sim_phys_init(&c, &cfg);
	struct sim_values v0, va, vb, vc;
	sim_phys_advance(&a, 0.0, &v0);
	for (double t = 0.5; t <= 6 * 3600.0; t += 0.5)
		sim_phys_advance(&a, t, &va);
	for (double t = 6.0; t <= 6 * 3600.0; t += 6.0)
		sim_phys_advance(&b, t, &vb);
	for (double t = 3600.0; t <= 6 * 3600.0; t += 3600.0)
		sim_phys_advance(&c, t, &vc);
	/* energy made and traded over the 6 h, not the lifetime totals */
	double pv = va.pv_total_wh - v0.pv_total_wh;
	double imp = va.import_wh - v0.import_wh, exp = va.export_wh - v0.export_wh;
	assert_true(pv > 10000);
	assert_true(fabs((vb.pv_total_wh - v0.pv_total_wh) - pv) < 0.002 * pv);
	assert_true(fabs((vc.pv_total_wh - v0.pv_total_wh) - pv) < 0.01 * pv);
	assert_true(fabs((vc.import_wh - v0.import_wh) - imp) < 0.02 * imp + 10);
	assert_true(fabs((vc.export_wh - v0.export_wh) - exp) < 0.02 * exp + 10);
	assert_true(fabs(va.bat_soc - vc.bat_soc) < 0.02);
	/* a 10-day jump stays cheap: steps grow with the jump */
	struct sim_phys d;
	struct sim_values vd;
	sim_phys_init(&d, &cfg);
	assert_int_equal(sim_phys_advance(&d, 10 * SIM_DAY_S, &vd), 0);
	assert_true(vd.pv_total_wh - v0.pv_total_wh > 10 * 0.5 * pv);
	/* time never goes backwards */
	assert_int_equal(sim_phys_advance(&a, 10.0, &va), -EINVAL);
}

/* The inverter's day counter: what the PV made since midnight.  It grows
 * with the lifetime counter, starts again at midnight, never exceeds the
 * lifetime one, and a sim started at noon has the morning's yield. */
static void test_day_yield(void **state)
{
	(void)state;
	struct sim_phys_cfg cfg = SIM_PHYS_CFG_DEFAULT; /* starts at 12:00 */
	cfg.seed = 5;
	struct sim_phys p;
	struct sim_values prev, v;
	assert_int_equal(sim_phys_init(&p, &cfg), 0);
	assert_int_equal(sim_phys_advance(&p, 0.0, &prev), 0);
	assert_true(prev.pv_day_wh > 1000); /* 06:00-12:00 of a 5 kW array */
	assert_true(prev.pv_day_wh < 6 * 5000);
	assert_true(prev.pv_day_wh <= prev.pv_total_wh);
	double before_midnight = 0;
	int resets = 0;
	for (double t = 60.0; t <= 30 * 3600.0; t += 60.0) { /* to 18:00 the next day */
		assert_int_equal(sim_phys_advance(&p, t, &v), 0);
		double grew = v.pv_total_wh - prev.pv_total_wh;
		assert_true(v.pv_day_wh <= v.pv_total_wh);
		assert_true(v.pv_day_wh >= 0);
		if (fmod(cfg.start_tod_s + t, SIM_DAY_S) < 60.0 - 1e-9) {
			/* the first step of a new day: back to 0 (the night adds nothing) */
			before_midnight = prev.pv_day_wh;
			assert_true(v.pv_day_wh == 0 && grew == 0);
			resets++;
		} else {
			assert_true(fabs((v.pv_day_wh - prev.pv_day_wh) - grew) < 1e-6);
		}
		prev = v;
	}
	assert_int_equal(resets, 1);
	assert_true(before_midnight > 5000); /* a whole day's yield */
	assert_true(v.pv_day_wh > 5000);     /* the next day's, by 18:00 */

	/* a sim started at midnight begins the day at 0 */
	cfg.start_tod_s = 0;
	assert_int_equal(sim_phys_init(&p, &cfg), 0);
	assert_int_equal(sim_phys_advance(&p, 0.0, &v), 0);
	assert_true(v.pv_day_wh == 0);
}

static void test_soc_follows_power(void **state)
{
	(void)state;
	/* at night the battery discharges into the house; SoC falls exactly by
	 * the discharged energy over the capacity and stops at its floor */
	struct sim_phys_cfg cfg = SIM_PHYS_CFG_DEFAULT;
	cfg.start_tod_s = 21 * 3600.0;
	cfg.batt_soc0 = 0.3;
	struct sim_phys p;
	sim_phys_init(&p, &cfg);
	struct sim_values v0, v;
	sim_phys_advance(&p, 0, &v0);
	assert_true(v0.bat_w < 0);
	assert_true(v0.meter_w >= -1e-9);
	sim_phys_advance(&p, 1800, &v);
	double dis = v.bat_discharge_wh - v0.bat_discharge_wh;
	assert_true(dis > 100);
	assert_true(fabs((v0.bat_soc - v.bat_soc) - dis / cfg.batt_capacity_wh) < 1e-9);
	sim_phys_advance(&p, 8 * 3600.0, &v);
	assert_true(v.bat_soc >= 0.0999 && v.bat_soc < 0.11);
	assert_true(v.bat_w == 0.0 || fabs(v.bat_w) < 1.0);
	/* with an empty battery, the house imports its whole load */
	assert_true(fabs(v.meter_w - v.load_w) < 1.0);
}

static void test_frequency(void **state)
{
	(void)state;
	/* 10 Hz samples for two hours: always 49.8..50.2, noisy, with events */
	int events = 0, bigdev = 0;
	double prev = 50.0, sum = 0, maxstep = 0;
	long n = 0;
	for (double t = 0; t < 7200.0; t += 0.1, n++) {
		double hz = sim_phys_hz(5, t);
		assert_true(hz >= 49.8 && hz <= 50.2);
		sum += hz;
		if (fabs(hz - 50.0) > 0.05)
			bigdev++;
		if (n > 0) {
			double d = fabs(hz - prev);
			maxstep = d > maxstep ? d : maxstep;
			if (d > 0.05)
				events++;   /* a step event's edge */
		}
		prev = hz;
	}
	assert_true(fabs(sum / (double)n - 50.0) < 0.02);
	assert_true(bigdev > 100);      /* events spend seconds far from 50 Hz */
	assert_true(events >= 2);       /* at least one step: up and back down */
	assert_true(maxstep < 0.21);
	/* deterministic: same seed, same value; another seed differs */
	assert_true(sim_phys_hz(5, 1234.5) == sim_phys_hz(5, 1234.5));
	assert_true(sim_phys_hz(5, 1234.5) != sim_phys_hz(6, 1234.5));
}

static void test_clock(void **state)
{
	(void)state;
	struct sim_clock c;
	sim_clock_init(&c, 1000000, 60.0);
	assert_true(fabs(sim_clock_t(&c, 1000000)) < 1e-12);
	assert_true(fabs(sim_clock_t(&c, 2000000) - 60.0) < 1e-9);   /* 1 s real = 60 s sim */
	sim_clock_freeze(&c, 2000000, true);
	assert_true(fabs(sim_clock_t(&c, 9000000) - 60.0) < 1e-9);
	sim_clock_freeze(&c, 9000000, false);
	assert_true(fabs(sim_clock_t(&c, 9500000) - 90.0) < 1e-9);
	/* a sped-up PV curve: one real minute at 1440x is a whole day */
	struct sim_phys_cfg cfg = SIM_PHYS_CFG_DEFAULT;
	double day = sim_phys_irradiance(&cfg, 0), night = sim_phys_irradiance(&cfg, 12 * 3600.0);
	assert_true(day > 0.2);
	assert_true(night == 0.0);
}

static void test_determinism(void **state)
{
	(void)state;
	struct sim_phys_cfg cfg = SIM_PHYS_CFG_DEFAULT;
	struct sim_phys a, b;
	struct sim_values va, vb;
	sim_phys_init(&a, &cfg);
	sim_phys_init(&b, &cfg);
	sim_phys_advance(&a, 4321.0, &va);
	for (double t = 0; t < 4321.0; t += 7.3)
		sim_phys_advance(&b, t, &vb);
	sim_phys_advance(&b, 4321.0, &vb);
	assert_true(va.pv_w == vb.pv_w && va.hz == vb.hz && va.l_v[2] == vb.l_v[2]);
	assert_true(fabs(va.pv_total_wh - vb.pv_total_wh) < 1e-3 * va.pv_total_wh);
	cfg.rated_w = -1;
	assert_int_equal(sim_phys_init(&a, &cfg), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_power_consistency),
		cmocka_unit_test(test_counters_match_power),
		cmocka_unit_test(test_speedup_same_energy),
		cmocka_unit_test(test_day_yield),
		cmocka_unit_test(test_soc_follows_power),
		cmocka_unit_test(test_frequency),
		cmocka_unit_test(test_clock),
		cmocka_unit_test(test_determinism),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
