/* egw-sim devices end to end in one process: for every profile, the
 * simulated reading is encoded into registers, read back block by block
 * through Modbus request/response PDUs (egw's codec), decoded by the same
 * profile, and compared with what the simulator set, within the register's
 * resolution.  Also: writes, exceptions, device identification. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/util.h"
#include "sim/sim.h"

#define MAX_BLOCKS 64

static struct sim *new_sim(void)
{
	struct sim *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->seed = 1;
	s->base_cfg = SIM_PHYS_CFG_DEFAULT;
	return s;
}

/* One request through the device, as a server would run it. */
static int transact(struct sim_device *d, const struct mb_request *q, struct mb_response *ret)
{
	uint8_t pdu[MB_PDU_MAX];
	int n = sim_device_handle(d, q, pdu, sizeof(pdu));
	assert_true(n > 0);
	memset(ret, 0, sizeof(*ret));
	return mb_parse_response_pdu(q, pdu, (size_t)n, ret);
}

/* Resolution of field f in p's registers as encoded in d (SunSpec: the sf
 * the encoder chose), summed over contributors. */
static double resolution(const struct profile *p, struct sim_device *d, int f)
{
	double res = 0;
	for (unsigned i = 0; i < p->nregs; i++) {
		const struct reg_def *r = &p->regs[i];
		if (r->field != f)
			continue;
		double step = r->scale;
		if (r->sf_addr != REG_NO_SF) {
			uint16_t w;
			if (regimage_get(d->img, r->fc, (uint16_t)r->sf_addr, 1, &w) == 0)
				step = pow(10.0, (int16_t)w);
		}
		if (r->type == REG_F32)
			step = 0;
		res += step * fabs(r->mul);
	}
	return res;
}

static void roundtrip(const struct profile *p, unsigned *ret_compared)
{
	struct sim *s = new_sim();
	struct sim_device *d = &s->devs[0];
	assert_int_equal(sim_device_init(s, d, p, 1, NULL, "5502"), 0);
	assert_int_equal(sim_device_update(d, 1234.5), 0);

	struct mb_block blocks[MAX_BLOCKS];
	unsigned nb = 0;
	for (unsigned i = 0; i < p->nblocks && nb < MAX_BLOCKS; i++)
		blocks[nb++] = p->blocks[i];
	int k = profile_plan_key(p, blocks + nb, MAX_BLOCKS - nb);
	assert_true(k >= 0);
	nb += (unsigned)k;
	if (p->serial) {
		k = profile_plan_one(p->serial, blocks + nb, MAX_BLOCKS - nb);
		assert_true(k >= 0);
		nb += (unsigned)k;
	}

	struct block_result *res = calloc(nb ? nb : 1, sizeof(*res));
	assert_non_null(res);
	struct mb_response *resp = malloc(sizeof(*resp));
	assert_non_null(resp);
	for (unsigned i = 0; i < nb; i++) {
		struct mb_request q = { .fc = blocks[i].fc, .addr = blocks[i].addr,
					.count = blocks[i].count };
		res[i].b = blocks[i];
		res[i].err = transact(d, &q, resp);
		/* a vendor map answers what the real device has (test_every_vendor_model
		 * checks those); a profile's own table answers every block */
		if (res[i].err == MB_EXCEPTION_ERR(MB_EX_ILLEGAL_ADDRESS) && d->model)
			continue;
		if (res[i].err != 0)
			fail_msg("%s: block fc %u %u+%u: %s", p->name, q.fc, q.addr, q.count,
				 egw_strerror(res[i].err));
		memcpy(res[i].regs, resp->regs, sizeof(uint16_t) * blocks[i].count);
	}

	struct reading got;
	assert_true(profile_decode(p, res, nb, &got) >= 0);
	unsigned compared = 0;
	for (int f = 0; f < RF_COUNT; f++) {
		if (isnan(got.v[f]))
			continue;
		double want = d->rd.v[f];
		double tol = resolution(p, d, f) + 1e-6 * fabs(want) + 1e-9;
		if (isnan(want) || fabs(got.v[f] - want) > tol)
			fail_msg("%s: %s.%s decoded %.6f, simulator set %.6f (tolerance %.6f)",
				 p->name, reading_fields[f].group, reading_fields[f].name, got.v[f],
				 want, tol);
		compared++;
	}
	if (p->serial) {
		char serial[64];
		int n = profile_decode_serial(p, res, nb, serial, sizeof(serial));
		assert_true(n > 0);
		assert_string_equal(serial, d->serial);
	}
	*ret_compared = compared;
	free(resp);
	free(res);
	sim_device_fini(d);
	free(s);
}

static void test_every_profile_roundtrip(void **state)
{
	(void)state;
	unsigned n = 0, with_fields = 0;
	const struct profile *const *all = profile_all(&n);
	assert_true(n > 10);
	for (unsigned i = 0; i < n; i++) {
		unsigned compared = 0;
		roundtrip(all[i], &compared);
		if (compared > 0)
			with_fields++;
	}
	const struct profile *ss = profile_find("sunspec");
	assert_non_null(ss);
	unsigned compared = 0;
	roundtrip(ss, &compared);
	assert_true(compared >= 5);
	/* all but the identity-only profiles carry decoded values */
	assert_true(with_fields >= n - 2);
}

/* ---- vendor maps: each brand's document against egw's profile ---------- */

/* Is field f carried by a register of model m?  *ret_step gets the sum of
 * the contributors' resolution in the field's unit (0 for floats). */
static bool model_serves(const struct sim_model *m, int f, double *ret_step)
{
	bool hit = false;
	double step = 0;

	for (unsigned i = 0; i < m->nregs; i++) {
		const struct sim_vreg *v = &m->regs[i];
		int q = v->q;
		/* the PV strings' powers make up pv.W (SunSpec 714: the PV ports') */
		if (q == SQ_MPPT1_W || q == SQ_MPPT2_W ||
		    (f == RF_PV_W && (q == RF_PV_MPPT1_W || q == RF_PV_MPPT2_W)))
			q = RF_PV_W;
		else if (q == SQ_BATTERY_ABS_W)
			q = RF_BATTERY_W;
		else if (q == SQ_BATTERY_ABS_A)
			q = RF_BATTERY_A;
		else if (q == SQ_METER_L1_ABS_A)
			q = RF_METER_L1_A;
		else if (q == SQ_METER_L2_ABS_A)
			q = RF_METER_L2_A;
		else if (q == SQ_METER_L3_ABS_A)
			q = RF_METER_L3_A;
		if (q != f)
			continue;
		hit = true;
		if (v->type != REG_F32)
			step += v->step * fabs(v->k);
	}
	*ret_step = step;
	return hit;
}

static bool is_battery_field(int f)
{
	return f >= RF_BATTERY_W && f <= RF_BATTERY_TOTAL_DISCHARGE_WH;
}

/* The profile a gateway builds for d when it reads the generic SunSpec
 * profile: the "SunS" marker found, the models walked, the profile built
 * from them (egwd's identify step).  NULL for any other profile. */
static struct profile *walked_profile(struct sim_device *d)
{
	struct sunspec_model_hdr hdrs[32];
	unsigned n = 0;
	uint16_t w[2], addr, next;
	struct profile *p;

	if (!d->prof->sunspec_base)
		return NULL;
	assert_int_equal(regimage_get(d->img, REG_FC_HOLDING, d->prof->sunspec_base, 2, w), 0);
	assert_true(sunspec_is_marker(w));
	addr = (uint16_t)(d->prof->sunspec_base + 2);
	for (;;) {
		assert_int_equal(regimage_get(d->img, REG_FC_HOLDING, addr, 2, w), 0);
		int r = sunspec_next(w, addr, &hdrs[n], &next);
		assert_true(r >= 0);
		if (r == 0)
			break;
		assert_true(++n < 32);
		addr = next;
	}
	assert_int_equal(sunspec_build_as(d->prof, d->prof->sunspec_base, hdrs, n, &p), 0);
	return p;
}

/* Reads every block egw's profile reads from a device served by model m and
 * checks the decoded reading: every field the device carries is published
 * with the value served (within one register step), nothing else is, no
 * battery or grid meter where the device has none, no counter of 0. */
static void check_model(struct sim_device *d, const struct sim_model *m, unsigned *ret_n)
{
	struct profile *walked = walked_profile(d);
	const struct profile *p = walked ? walked : d->prof;
	struct mb_block blocks[MAX_BLOCKS];
	unsigned nb = 0, published = 0;
	for (unsigned i = 0; i < p->nblocks && nb < MAX_BLOCKS; i++)
		blocks[nb++] = p->blocks[i];
	if (p->serial)
		nb += (unsigned)profile_plan_one(p->serial, blocks + nb, MAX_BLOCKS - nb);

	struct block_result *res = calloc(nb, sizeof(*res));
	struct mb_response *resp = malloc(sizeof(*resp));
	assert_non_null(res);
	assert_non_null(resp);
	for (unsigned i = 0; i < nb; i++) {
		struct mb_request q = { .fc = blocks[i].fc, .addr = blocks[i].addr,
					.count = blocks[i].count };
		res[i].b = blocks[i];
		res[i].err = transact(d, &q, resp);
		/* a device answers what it has; a string inverter has no battery block */
		if (res[i].err != 0 && res[i].err != MB_EXCEPTION_ERR(MB_EX_ILLEGAL_ADDRESS))
			fail_msg("%s: block %u+%u: %s", m->name, q.addr, q.count,
				 egw_strerror(res[i].err));
		if (res[i].err != 0 && (m->battery || m->meter))
			fail_msg("%s: block %u+%u not served", m->name, q.addr, q.count);
		if (res[i].err == 0)
			memcpy(res[i].regs, resp->regs, sizeof(uint16_t) * blocks[i].count);
	}

	struct reading got;
	assert_true(profile_decode(p, res, nb, &got) >= 0);
	for (int f = 0; f < RF_COUNT; f++) {
		const struct reading_field_info *fi = &reading_fields[f];
		double step, want = d->rd.v[f];
		bool served = model_serves(m, f, &step);

		if (!isnan(got.v[f]))
			published++;
		if (fi->total && got.v[f] == 0)
			fail_msg("%s: %s.%s published as 0", m->name, fi->group, fi->name);
		if (!m->battery && is_battery_field(f) && !isnan(got.v[f]))
			fail_msg("%s: no battery, but %s.%s = %g", m->name, fi->group, fi->name,
				 got.v[f]);
		if (!m->meter && (f == RF_METER_W || f == RF_METER_TOTAL_IMPORT_WH ||
				  f == RF_METER_TOTAL_EXPORT_WH) && !isnan(got.v[f]))
			fail_msg("%s: no meter, but %s.%s = %g", m->name, fi->group, fi->name,
				 got.v[f]);
		if (!served) {
			if (!isnan(got.v[f]))
				fail_msg("%s: %s.%s = %g published but the device has no such value",
					 m->name, fi->group, fi->name, got.v[f]);
			continue;
		}
		if (isnan(got.v[f]))
			fail_msg("%s: %s.%s served (%g) but not published", m->name, fi->group,
				 fi->name, want);
		double tol = step + 2e-6 * fabs(want) + 1e-9;
		if (fabs(got.v[f] - want) > tol)
			fail_msg("%s: %s.%s decoded %.6f, the device served %.6f (step %g)", m->name,
				 fi->group, fi->name, got.v[f], want, step);
	}
	/* a device with no serial register (Ferroamp) is known by its address */
	char serial[64];
	if (p->serial) {
		assert_true(profile_decode_serial(p, res, nb, serial, sizeof(serial)) > 0);
		assert_string_equal(serial, d->serial);
	} else {
		assert_int_equal(m->serial.words, 0);
	}
	*ret_n = published;
	free(resp);
	free(res);
	profile_free(walked);
}

/* Walk the SunSpec models of d from 40000 and build the profile egwd would. */
static const struct profile *walk_profile(struct sim_device *d)
{
	struct sunspec_model_hdr hdrs[16];
	unsigned n = 0;
	uint16_t addr = 40002, hdr[2], next;
	struct profile *p = NULL;

	while (n < 16) {
		assert_int_equal(regimage_get(d->img, REG_FC_HOLDING, addr, 2, hdr), 0);
		if (sunspec_next(hdr, addr, &hdrs[n], &next) <= 0)
			break;
		n++;
		addr = next;
	}
	assert_int_equal(sunspec_build_profile(40000, hdrs, n, &p), 0);
	return p;
}

static void test_every_vendor_model(void **state)
{
	(void)state;
	unsigned n = 0;
	const struct sim_model *const *all = sim_model_all(&n);
	assert_true(n >= 8);
	for (unsigned i = 0; i < n; i++) {
		const struct sim_model *m = all[i];
		struct sim *s = new_sim();
		struct sim_device *d = &s->devs[0];
		unsigned published = 0;

		assert_int_equal(sim_device_init_model(s, d, m, 1, NULL, "5502"), 0);
		assert_int_equal(sim_device_update(d, 1234.5), 0); /* noon: PV producing */
		/* a map read by the generic SunSpec profile is read as egwd reads
		 * it: the profile built from a walk of its models */
		const struct profile *walked = NULL;
		if (!strcmp(m->profile, "sunspec")) {
			walked = walk_profile(d);
			d->prof = walked;
		}
		check_model(d, m, &published);
		assert_true(published >= 3);
		if (m->battery) {
			/* both directions: charging positive, discharging negative */
			sim_device_override(d, RF_BATTERY_W, 1800);
			sim_device_override(d, RF_BATTERY_A, 33.2);
			assert_int_equal(sim_device_update(d, 1300.0), 0);
			check_model(d, m, &published);
			sim_device_override(d, RF_BATTERY_W, -950);
			sim_device_override(d, RF_BATTERY_A, -18.4);
			assert_int_equal(sim_device_update(d, 1400.0), 0);
			check_model(d, m, &published);
		}
		profile_free(walked);
		sim_device_fini(d);
		free(s);
	}
}

/* The cases the reference got wrong, as numbers a user would see. */
static void test_vendor_known_mistakes(void **state)
{
	(void)state;
	struct sim *s = new_sim();
	struct sim_device *d = &s->devs[0];
	unsigned n;

	/* SDM630: big-endian floats; a word-swapped read gives ~1e-26 Hz */
	assert_int_equal(sim_device_init_model(s, d, sim_model_find("sdm630"), 1, NULL, "a"), 0);
	sim_device_override(d, RF_METER_HZ, 49.9);
	sim_device_override(d, RF_METER_W, 612.3);
	assert_int_equal(sim_device_update(d, 100.0), 0);
	check_model(d, d->model, &n);
	sim_device_fini(d);

	/* Deye: 541 = 1385 is 38.5 C (not 138.5) */
	assert_int_equal(sim_device_init_model(s, d, sim_model_find("deye"), 1, NULL, "b"), 0);
	sim_device_override(d, RF_PV_HEATSINK_C, 38.5);
	assert_int_equal(sim_device_update(d, 100.0), 0);
	uint16_t w;
	assert_int_equal(regimage_get(d->img, REG_FC_HOLDING, 541, 1, &w), 0);
	assert_int_equal(w, 1385);
	check_model(d, d->model, &n);
	sim_device_fini(d);

	/* A device read with the hybrid profile of its brand decodes without
	 * zeros for what it lacks: a SUN2000 without LUNA2000 or meter under
	 * huawei_hybrid, an SG string inverter under sungrow_sf. */
	static const char *const cross[][2] = { { "huawei", "huawei_hybrid" },
						{ "sungrow_sg", "sungrow_sf" } };
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(sim_device_init_model(s, d, sim_model_find(cross[i][0]), 1, NULL,
						       "x"), 0);
		d->prof = profile_find(cross[i][1]);
		assert_int_equal(sim_device_update(d, 100.0), 0);
		check_model(d, d->model, &n);
		sim_device_fini(d);
	}

	/* Sungrow string inverter: no battery, lifetime yield from 5003-5004 */
	assert_int_equal(sim_device_init_model(s, d, sim_model_find("sungrow_sg"), 1, NULL, "c"),
			 0);
	assert_int_equal(sim_device_update(d, 100.0), 0);
	assert_true(d->rd.v[RF_PV_TOTAL_GENERATION_WH] > 1e6);
	check_model(d, d->model, &n);
	sim_device_fini(d);
	free(s);
}

/* Decodes everything the walked SunSpec profile of d reads. */
static void decode_walked(struct sim_device *d, struct reading *ret)
{
	struct profile *p = walked_profile(d);
	struct block_result *res = calloc(p->nblocks, sizeof(*res));
	struct mb_response *resp = malloc(sizeof(*resp));
	assert_non_null(res);
	assert_non_null(resp);
	for (unsigned i = 0; i < p->nblocks; i++) {
		struct mb_request q = { .fc = p->blocks[i].fc, .addr = p->blocks[i].addr,
					.count = p->blocks[i].count };
		res[i].b = p->blocks[i];
		assert_int_equal(transact(d, &q, resp), 0);
		memcpy(res[i].regs, resp->regs, sizeof(uint16_t) * q.count);
	}
	assert_true(profile_decode(p, res, p->nblocks, ret) >= 0);
	free(resp);
	free(res);
	profile_free(p);
}

/* The SunSpec float inverter (111/113), nameplate (120), status (122),
 * storage (124) and DER (701, 702, 713, 714) models: each point decoded to
 * its SI value exactly at the resolution its scale factor gives (float32:
 * the digits of its 32-bit value), printed in its shortest form; a point
 * served as "not implemented" is absent, and a fallback model fills in. */
static void test_sunspec_models(void **state)
{
	(void)state;
	static const struct {
		int f;
		double v;
	} set[] = {
		{ RF_INVERTER_W, -3456 },       { RF_METER_HZ, 49.987 },
		{ RF_PV_TOTAL_GENERATION_WH, 12345678 }, { RF_PV_W, -3612.5 },
		{ RF_PV_HEATSINK_C, 41.3 },     { RF_PV_RATED_POWER_W, 9990 },
		{ RF_BATTERY_SOC_NOM_FRACT, 0.673 }, { RF_BATTERY_V, 51.2 },
		{ RF_PV_MPPT1_A, 8.45 },        { RF_PV_MPPT1_V, 612.3 },
		{ RF_PV_MPPT2_A, 7.01 },        { RF_PV_MPPT2_V, 598.7 },
		{ RF_PV_MPPT1_W, 5174 },        { RF_PV_MPPT2_W, 4197 },
		{ RF_INVERTER_VA, 3527 },       { RF_INVERTER_VAR, 702 },
		{ RF_INVERTER_PF, 0.98 },       { RF_INVERTER_A, 15.36 },
		{ RF_INVERTER_L1_V, 230.8 },    { RF_INVERTER_L2_V, 228.5 },
		{ RF_INVERTER_L3_V, 229.2 },    { RF_INVERTER_L1_A, 5.09 },
		{ RF_INVERTER_L2_A, 5.14 },     { RF_INVERTER_L3_A, 5.13 },
		{ RF_INVERTER_L1_W, -1152 },    { RF_INVERTER_L2_W, -1151 },
		{ RF_INVERTER_L3_W, -1153 },    { RF_BATTERY_SOH_FRACT, 0.967 },
	};
	static const struct {
		const char *model;
		const char *want; /* the reading as egwd prints it */
	} cases[] = {
		{ "sunspec_float",
		  "{\"pv\": {\"W\": -3612.5, \"rated_power_W\": 9990.0, \"heatsink_C\": 41.3, "
		  "\"total_generation_Wh\": 12345678.0}, \"battery\": {\"V\": 51.2, "
		  "\"SoC_nom_fract\": 0.673}, \"meter\": {\"Hz\": 49.987}, "
		  "\"inverter\": {\"W\": -3456.0, \"VA\": 3527.0, \"var\": 702.0, \"PF\": 0.98, "
		  "\"A\": 15.36, \"L1_V\": 230.8, \"L1_A\": 5.09, \"L2_V\": 228.5, \"L2_A\": 5.14, "
		  "\"L3_V\": 229.2, \"L3_A\": 5.13}}" },
		/* single phase: phases B and C not implemented (NaN), absent */
		{ "sunspec_float1",
		  "{\"pv\": {\"W\": -3612.5, \"rated_power_W\": 9990.0, \"heatsink_C\": 41.3, "
		  "\"total_generation_Wh\": 12345678.0}, \"meter\": {\"Hz\": 49.987}, "
		  "\"inverter\": {\"W\": -3456.0, \"VA\": 3527.0, \"var\": 702.0, \"PF\": 0.98, "
		  "\"A\": 15.36, \"L1_V\": 230.8}}" },
		/* 701 Hz at sf -3, TmpSnk at -1, 714 DCA -2 and DCV -1, 713 SoC -1; pv.W
		 * the sum of the PV ports' DCW (612.3 x 8.45 + 598.7 x 7.01, 1 W each) */
		{ "sunspec_der",
		  "{\"pv\": {\"W\": -9371.0, \"rated_power_W\": 9990.0, \"mppt1_V\": 612.3, "
		  "\"mppt1_A\": 8.45, "
		  "\"mppt2_V\": 598.7, \"mppt2_A\": 7.01, \"heatsink_C\": 41.3, "
		  "\"total_generation_Wh\": 12345678.0, \"mppt1_W\": 5174.0, \"mppt2_W\": 4197.0}, "
		  "\"battery\": {\"SoC_nom_fract\": 0.673, \"SoH_fract\": 0.967}, "
		  "\"meter\": {\"Hz\": 49.987}, \"inverter\": {\"W\": -3456.0, \"VA\": 3527.0, "
		  "\"var\": 702.0, \"PF\": 0.98, \"A\": 15.36, \"L1_V\": 230.8, \"L1_A\": 5.09, "
		  "\"L1_W\": -1152.0, \"L2_V\": 228.5, \"L2_A\": 5.14, \"L2_W\": -1151.0, "
		  "\"L3_V\": 229.2, \"L3_A\": 5.13, \"L3_W\": -1153.0}}" },
	};
	struct sim *s = new_sim();
	struct sim_device *d = &s->devs[0];
	struct reading got;

	for (unsigned c = 0; c < ARRAY_SIZE(cases); c++) {
		const struct sim_model *m = sim_model_find(cases[c].model);
		assert_int_equal(sim_device_init_model(s, d, m, 1, NULL, "ss"), 0);
		for (unsigned i = 0; i < ARRAY_SIZE(set); i++)
			sim_device_override(d, set[i].f, set[i].v);
		assert_int_equal(sim_device_update(d, 500.0), 0);
		decode_walked(d, &got);
		json_t *j = reading_to_json(&got);
		char *txt = json_dumps(j, READING_JSON_REALS | JSON_PRESERVE_ORDER);
		if (strcmp(txt, cases[c].want) != 0)
			fail_msg("%s: decoded %s, want %s", cases[c].model, txt, cases[c].want);
		free(txt);
		json_decref(j);
		sim_device_fini(d);
	}

	/* Not implemented is absent: a NaN float (113 W), an sf of 0x8000 (701
	 * W_SF), 0xFFFF in a U16 (713 SoC).  113's WH as NaN leaves 122's ActWh. */
	assert_int_equal(sim_device_init_model(s, d, sim_model_find("sunspec_float"), 1, NULL, "n"),
			 0);
	sim_device_override(d, RF_PV_TOTAL_GENERATION_WH, 7654321);
	assert_int_equal(sim_device_update(d, 500.0), 0);
	struct profile *p = walked_profile(d);
	for (unsigned i = 0; i < p->nregs; i++) {
		const struct reg_def *r = &p->regs[i];
		if (r->field == RF_INVERTER_W || (r->field == RF_PV_TOTAL_GENERATION_WH &&
						  r->type == REG_F32)) {
			regimage_set(d->img, r->fc, r->addr, 0x7FC0); /* NaN */
			regimage_set(d->img, r->fc, (uint16_t)(r->addr + 1), 0);
		}
	}
	profile_free(p);
	decode_walked(d, &got);
	assert_true(isnan(got.v[RF_INVERTER_W]));
	assert_true(got.v[RF_PV_TOTAL_GENERATION_WH] == 7654321);
	sim_device_fini(d);

	assert_int_equal(sim_device_init_model(s, d, sim_model_find("sunspec_der"), 1, NULL, "n"),
			 0);
	assert_int_equal(sim_device_update(d, 500.0), 0);
	p = walked_profile(d);
	for (unsigned i = 0; i < p->nregs; i++) {
		const struct reg_def *r = &p->regs[i];
		if (r->field == RF_INVERTER_W)
			regimage_set(d->img, r->fc, (uint16_t)r->sf_addr, 0x8000);
		if (r->field == RF_BATTERY_SOC_NOM_FRACT)
			regimage_set(d->img, r->fc, r->addr, 0xFFFF);
	}
	profile_free(p);
	decode_walked(d, &got);
	assert_true(isnan(got.v[RF_INVERTER_W]));
	assert_true(isnan(got.v[RF_BATTERY_SOC_NOM_FRACT]));
	assert_false(isnan(got.v[RF_METER_HZ]));
	sim_device_fini(d);
	free(s);
}

/* One simulated home: a hybrid inverter and a meter in one egw-sim obey one
 * energy balance (the meter sees the house load less the inverter's output),
 * day and night, and the house load is never negative. */
static void test_one_home(void **state)
{
	(void)state;
	struct sim *s = new_sim();
	assert_int_equal(sim_device_init_model(s, &s->devs[0], sim_model_find("sungrow_sf"), 1,
					       NULL, "a"), 0);
	assert_int_equal(sim_device_init_model(s, &s->devs[1], sim_model_find("sdm630"), 2, NULL,
					       "b"), 0);
	assert_int_equal(sim_device_init(s, &s->devs[2], profile_find("solaredge"), 3, NULL, "c"),
			 0);
	s->ndevs = 3;
	static const double times[] = { 60.0, 1234.5, 4 * 3600.0, 12 * 3600.0, 20 * 3600.0 };
	for (unsigned k = 0; k < sizeof(times) / sizeof(times[0]); k++) {
		assert_int_equal(sim_home_update(s, times[k]), 0);
		const struct reading *inv = &s->devs[0].rd, *meter = &s->devs[1].rd,
				     *se = &s->devs[2].rd;
		double load = s->devs[0].home_load_w;
		double house = meter->v[RF_METER_W] - inv->v[RF_INVERTER_W] - se->v[RF_INVERTER_W];
		assert_true(load >= 0);
		assert_true(fabs(house - load) < 1e-6);
		assert_true(fabs(inv->v[RF_METER_W] - meter->v[RF_METER_W]) < 1e-9);
		double phases = meter->v[RF_METER_L1_W] + meter->v[RF_METER_L2_W] +
				meter->v[RF_METER_L3_W];
		assert_true(fabs(phases - meter->v[RF_METER_W]) < 1e-6);
		/* what egw decodes from the meter's registers balances too */
		struct block_result res = { .b = { .fc = REG_FC_INPUT, .addr = 0, .count = 100 } };
		assert_int_equal(regimage_get(s->devs[1].img, REG_FC_INPUT, 0, 100, res.regs), 0);
		struct reading got;
		assert_true(profile_decode(profile_find("sdm630"), &res, 1, &got) > 0);
		assert_true(fabs(got.v[RF_METER_W] - meter->v[RF_METER_W]) <
			    1e-3 * fabs(meter->v[RF_METER_W]) + 0.01);
	}
	for (unsigned i = 0; i < 3; i++)
		sim_device_fini(&s->devs[i]);

	/* A meter's totals follow the power it shows: beside a string inverter
	 * the SDM630 exports at noon (its export total rises, its import total
	 * stays) and imports at night (the other way round). */
	assert_int_equal(sim_device_init_model(s, &s->devs[0], sim_model_find("sungrow_sg"), 1,
					       NULL, "i"), 0);
	assert_int_equal(sim_device_init_model(s, &s->devs[1], sim_model_find("sdm630"), 2, NULL,
					       "m"), 0);
	s->ndevs = 2;
	/* the simulated day starts at noon: t 0 is noon, 12 h midnight */
	static const double windows[2][2] = { { 600.0, -1 }, { 12 * 3600.0, 1 } };
	for (unsigned w = 0; w < 2; w++) {
		double last_imp = NAN, last_exp = NAN;
		for (double t = windows[w][0]; t <= windows[w][0] + 3600; t += 600) {
			assert_int_equal(sim_home_update(s, t), 0);
			const struct reading *m = &s->devs[1].rd;
			double imp = m->v[RF_METER_TOTAL_IMPORT_WH];
			double exp_ = m->v[RF_METER_TOTAL_EXPORT_WH];
			assert_true(m->v[RF_METER_W] * windows[w][1] > 0);
			if (!isnan(last_imp)) {
				double rose = windows[w][1] > 0 ? imp - last_imp : exp_ - last_exp;
				double stayed =
					windows[w][1] > 0 ? exp_ - last_exp : imp - last_imp;
				if (stayed != 0)
					fail_msg("w %u t %g: W %g imp %g→%g exp %g→%g", w, t, m->v[RF_METER_W], last_imp, imp, last_exp, exp_);
				/* the energy the power gives over the step */
				double want = fabs(m->v[RF_METER_W]) * 600 / 3600.0;
				if (!(rose > 0.999 * want && rose < 1.001 * want))
					fail_msg("t %g: meter %g W, total rose %g Wh over 600 s", t,
						 m->v[RF_METER_W], rose);
			}
			last_imp = imp;
			last_exp = exp_;
		}
	}
	for (unsigned i = 0; i < 2; i++)
		sim_device_fini(&s->devs[i]);
	free(s);
}

static void test_writes_and_exceptions(void **state)
{
	(void)state;
	struct sim *s = new_sim();
	struct sim_device *d = &s->devs[0];
	const struct profile *p = profile_find("solaredge");
	assert_non_null(p);
	assert_int_equal(sim_device_init(s, d, p, 1, "SERIAL42", "x"), 0);
	struct mb_response *r = malloc(sizeof(*r));
	assert_non_null(r);

	/* a defined holding register takes a write and keeps it across ticks */
	uint16_t a = p->blocks[0].addr + 3;
	struct mb_request w = { .fc = MB_FC_WRITE_SINGLE, .addr = a, .count = 1, .values = { 777 } };
	assert_int_equal(transact(d, &w, r), 0);
	assert_int_equal(sim_device_update(d, 10.0), 0);
	struct mb_request q = { .fc = MB_FC_READ_HOLDING, .addr = a, .count = 1 };
	assert_int_equal(transact(d, &q, r), 0);
	assert_int_equal(r->regs[0], 777);
	/* undefined: illegal data address, for reads and writes */
	q.addr = 3;
	assert_int_equal(transact(d, &q, r), MB_EXCEPTION_ERR(MB_EX_ILLEGAL_ADDRESS));
	w.addr = 3;
	assert_int_equal(transact(d, &w, r), MB_EXCEPTION_ERR(MB_EX_ILLEGAL_ADDRESS));
	/* input registers are not served by a holding-only profile */
	q = (struct mb_request){ .fc = MB_FC_READ_INPUT, .addr = a, .count = 1 };
	assert_int_equal(transact(d, &q, r), MB_EXCEPTION_ERR(MB_EX_ILLEGAL_ADDRESS));
	/* device identification: vendor, product = profile, revision */
	q = (struct mb_request){ .fc = MB_FC_MEI, .mei_type = MB_MEI_DEVID,
				 .devid_code = MB_DEVID_BASIC, .object_id = 0 };
	assert_int_equal(transact(d, &q, r), 0);
	assert_string_equal(mb_devid_get(&r->devid, MB_DEVID_PRODUCT_CODE), "solaredge");
	/* pinned values win over the physics until released */
	sim_device_override(d, RF_METER_HZ, 49.5);
	assert_int_equal(sim_device_update(d, 11.0), 0);
	assert_true(d->rd.v[RF_METER_HZ] == 49.5);
	sim_device_override(d, RF_METER_HZ, NAN);
	assert_int_equal(sim_device_update(d, 12.0), 0);
	assert_true(d->rd.v[RF_METER_HZ] != 49.5);
	free(r);
	sim_device_fini(d);
	free(s);
}

static void test_ctl_commands(void **state)
{
	(void)state;
	struct sim *s = new_sim();
	char *ans = NULL;
	assert_int_equal(sim_device_init(s, &s->devs[0], profile_find("sdm630"), 2, NULL, "x"), 0);
	s->ndevs = 1;
	sim_clock_init(&s->clock, now_usec(), 1.0);

	assert_int_equal(sim_ctl_exec(s, "fault exception 4", &ans), 0);
	free(ans);
	assert_int_equal(s->faults.exception, 4);
	assert_int_equal(sim_ctl_exec(s, "fault slow 250", &ans), 0);
	free(ans);
	assert_int_equal(s->faults.slow_ms, 250);
	assert_int_equal(sim_ctl_exec(s, "fault tid on", &ans), 0);
	free(ans);
	assert_true(s->faults.tid);
	assert_int_equal(sim_ctl_exec(s, "set meter.L1_V 241.5", &ans), 0);
	free(ans);
	assert_true(s->devs[0].rd.v[RF_METER_L1_V] == 241.5);
	assert_int_equal(sim_ctl_exec(s, "get", &ans), 0);
	assert_non_null(strstr(ans, "\"L1_V\":241.5"));
	free(ans);
	assert_int_equal(sim_ctl_exec(s, "clear", &ans), 0);
	free(ans);
	assert_int_equal(s->faults.exception, 0);
	assert_int_equal(s->faults.slow_ms, 0);
	assert_false(s->faults.tid);
	assert_true(s->devs[0].rd.v[RF_METER_L1_V] != 241.5);
	assert_int_equal(sim_ctl_exec(s, "fault exception 300", &ans), -EINVAL);
	assert_true(strncmp(ans, "error", 5) == 0);
	free(ans);
	assert_int_equal(sim_ctl_exec(s, "set nosuch.x 1", &ans), -EINVAL);
	free(ans);
	assert_int_equal(sim_ctl_exec(s, "whatever", &ans), -EINVAL);
	free(ans);
	sim_device_fini(&s->devs[0]);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_profile_roundtrip),
		cmocka_unit_test(test_every_vendor_model),
		cmocka_unit_test(test_vendor_known_mistakes),
		cmocka_unit_test(test_sunspec_models),
		cmocka_unit_test(test_one_home),
		cmocka_unit_test(test_writes_and_exceptions),
		cmocka_unit_test(test_ctl_commands),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
