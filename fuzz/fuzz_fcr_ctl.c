/* Fuzz the FCR controller's input (grid/fcr.h): the configuration and a
 * sequence of instants (frequency, its age, SoC, the battery's limits and
 * health) read from the bytes, every double taken raw (NaN, infinities,
 * denormals, huge values included).
 * Checks, at every step: the setpoint is finite and whole; it is 0 unless the
 * state is "active"; when active it lies within the bounds the step reports,
 * which lie within the offered capacity and the battery's limits (a limit
 * that is a finite number >= 0); and the register writes of both control
 * tables never carry a power over the table's documented range. */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "grid/fcr.h"
#include "profiles/profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct cursor {
	const uint8_t *p;
	size_t n;
};

static uint8_t take8(struct cursor *c)
{
	if (!c->n)
		return 0;
	c->n--;
	return *c->p++;
}

static double take_double(struct cursor *c)
{
	uint8_t mode = take8(c);
	double d = 0;
	if (mode & 1) { /* raw bits */
		uint8_t b[8] = { 0 };
		for (int i = 0; i < 8; i++)
			b[i] = take8(c);
		memcpy(&d, b, sizeof(d));
		return d;
	}
	/* a plausible value near the interesting range */
	int16_t v = (int16_t)(take8(c) << 8 | take8(c));
	return (double)v;
}

/* SunSpec 124 ([OutWRte, InWRte] = [-r, r], r at most 100 % of WChaMax). */
static void check_sunspec(double sp, double wchamax, int sf)
{
	static const struct sunspec_model_hdr hdrs[] = {
		{ .id = 1, .addr = 40002, .len = 66 }, { .id = 124, .addr = 40122, .len = 24 },
	};
	struct profile *p;
	struct bctl_write w[4];
	struct bctl_ref ref = { .wchamax_w = wchamax, .rate_sf = sf };
	int n;

	if (sunspec_build_profile(40000, hdrs, 2, &p) < 0)
		return;
	n = battctl_setpoint(p->control, sp, &ref, w, 4);
	if (n >= 0) {
		assert(n == 2 && isfinite(sp) && wchamax >= 1);
		int16_t out = (int16_t)w[0].values[0], in = (int16_t)w[0].values[1];
		assert(out == -in);
		assert(fabs((double)in) * pow(10, sf) <= 100.0 + 1e-9 || in == 32767 || in == -32767);
		assert((sp > 0) == (in > 0) || in == 0);
		assert(w[1].values[0] == 3);
	}
	profile_free(p);
}

static void check_writes(const struct profile *p, double sp)
{
	struct bctl_write w[4];
	int n;

	if (!p || !p->control)
		return;
	n = battctl_setpoint(p->control, sp, NULL, w, 4);
	if (isnan(sp)) {
		assert(n < 0);
		return;
	}
	assert(n >= 1 && n <= 2);
	const struct battery_control *c = p->control;
	if (c->layout == BCTL_CMD_THEN_POWER_U16) {
		assert(w[0].addr == c->cmd_addr && w[0].count == 2);
		assert(w[0].values[1] <= c->power_max_w);
		assert(w[0].values[0] == c->cmd_charge || w[0].values[0] == c->cmd_discharge ||
		       w[0].values[0] == c->cmd_stop || w[0].values[0] == c->cmd_zero);
	} else {
		uint32_t chg = (uint32_t)w[0].values[0] << 16 | w[0].values[1];
		uint32_t dis = (uint32_t)w[0].values[2] << 16 | w[0].values[3];
		assert(chg <= c->power_max_w && dis <= c->power_max_w);
		assert(chg == 0 || dis == 0);
		assert(w[1].addr == c->cmd_addr);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cursor c = { data, size };
	struct fcr_conf conf = { .enabled = true, .battery_index = 0, .freq_index = 1 };
	struct fcr_ctl ctl;
	usec_t now = 1000000;
	double cap = 0;

	for (int p = 0; p < FCR_NPRODUCTS; p++) {
		conf.capacity_w[p] = (double)((take8(&c) << 8 | take8(&c)) % 20000);
		cap += conf.capacity_w[p];
	}
	conf.soc_min = take8(&c) % 101 / 100.0;
	conf.soc_max = take8(&c) % 101 / 100.0;
	if (conf.soc_min >= conf.soc_max) /* fcr_conf_parse refuses those */
		conf.soc_max = conf.soc_min + 0.01;
	fcr_ctl_init(&ctl, &conf);

	while (c.n > 0) {
		struct fcr_input in;
		struct fcr_out o;
		uint8_t flags = take8(&c);
		double hz = take_double(&c);

		in.hz = (flags & 1) ? 50.0 + hz / 10000.0 : hz;  /* mostly near 50 Hz */
		in.hz_at = (flags & 2) ? 0 : now - (usec_t)(take8(&c) * 10000);
		in.battery_ok = flags & 4;
		in.soc = (flags & 8) ? take_double(&c) : take8(&c) / 255.0;
		in.limit_charge_w = (flags & 16) ? take_double(&c) : NAN;
		in.limit_discharge_w = (flags & 32) ? take_double(&c) : NAN;
		now += (usec_t)take8(&c) * 10000;

		fcr_ctl_step(&ctl, &in, now, &o);
		assert(isfinite(o.setpoint_w));
		assert(o.setpoint_w == round(o.setpoint_w));
		assert(o.state >= 0 && o.state < FCR_STATE_COUNT);
		if (o.state != FCR_ACTIVE) {
			assert(o.setpoint_w == 0);
			continue;
		}
		assert(o.min_w <= 0 && o.max_w >= 0);
		assert(o.setpoint_w >= o.min_w && o.setpoint_w <= o.max_w);
		assert(fabs(o.setpoint_w) <= cap);
		if (isfinite(in.limit_charge_w) && in.limit_charge_w >= 0)
			assert(o.setpoint_w <= in.limit_charge_w);
		if (isfinite(in.limit_discharge_w) && in.limit_discharge_w >= 0)
			assert(o.setpoint_w >= -in.limit_discharge_w);
		assert(in.soc >= conf.soc_min && in.soc <= conf.soc_max);
		check_writes(profile_find("sungrow_sf"), o.setpoint_w);
		check_writes(profile_find("huawei_hybrid"), o.setpoint_w);
		check_sunspec(o.setpoint_w, (double)(flags >> 4) * 1000.0 + 1, (int)(flags & 7) - 4);
	}
	check_writes(profile_find("huawei_hybrid"), NAN);
	return 0;
}
