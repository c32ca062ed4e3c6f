/* Device driver tests: real profiles served from a register image by the
 * Modbus client's in-memory transport, on a real event loop (wall time, short
 * intervals).  The expected readings are decoded by the profile module from
 * the same image, so these tests check the device pipeline (identify, plan,
 * read, merge, publish), not the profile tables. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/err.h"
#include "base/log.h"
#include "base/time.h"
#include "devices/devconf.h"
#include "devices/device.h"
#include "devices/identify.h"
#include "loop/loop.h"
#include "modbus/client.h"
#include "profiles/profile.h"
#include "profiles/reading.h"

struct srv {
	struct mb_mem_server mem;
	struct regimage *img;
	bool mute;          /* no answers: the client times out */
	bool refuse_all;    /* answer every request with exception 4 */
	int fail_addr;      /* reads of [fail_addr, fail_end) answer exception 2; -1: none */
	int fail_end;
	bool freq_ramp;     /* every read of freq_addr returns the next step */
	uint16_t freq_addr;
	uint16_t freq_raw;
	unsigned freq_reads;
};

static int srv_handle(void *ud, const struct mb_request *q, uint8_t *out, size_t cap)
{
	struct srv *s = ud;
	uint16_t regs[MB_MAX_READ];
	int r;

	if (s->mute)
		return 0;
	if (s->refuse_all)
		return MB_EXCEPTION_ERR(MB_EX_DEVICE_FAILURE);
	if (q->fc != MB_FC_READ_HOLDING && q->fc != MB_FC_READ_INPUT)
		return MB_EXCEPTION_ERR(MB_EX_ILLEGAL_FUNCTION);
	if (s->fail_addr >= 0 && q->addr < s->fail_end && q->addr + q->count > s->fail_addr)
		return MB_EXCEPTION_ERR(MB_EX_ILLEGAL_ADDRESS);
	if (s->freq_ramp && q->addr == s->freq_addr && q->count == 1) {
		s->freq_reads++;
		regimage_set(s->img, q->fc, q->addr, s->freq_raw);
		s->freq_raw++;
	}
	r = regimage_get(s->img, q->fc, q->addr, q->count, regs);
	if (r < 0)
		return r;
	return mb_build_read_response(q, regs, out, cap);
}

/* A plausible reading for every field (the profile encodes what it maps). */
static void sample_reading(struct reading *r, double total)
{
	reading_clear(r);
	r->v[RF_PV_W] = -2500;
	r->v[RF_PV_RATED_POWER_W] = 5000;
	r->v[RF_PV_MPPT1_V] = 350.5;
	r->v[RF_PV_MPPT1_A] = 4.2;
	r->v[RF_PV_MPPT2_V] = 340.1;
	r->v[RF_PV_MPPT2_A] = 3.1;
	r->v[RF_PV_HEATSINK_C] = 41.5;
	r->v[RF_PV_TOTAL_GENERATION_WH] = total;
	r->v[RF_BATTERY_W] = 800;
	r->v[RF_BATTERY_A] = 15.5;
	r->v[RF_BATTERY_V] = 51.2;
	r->v[RF_BATTERY_SOC_NOM_FRACT] = 0.55;
	r->v[RF_BATTERY_HEATSINK_C] = 25;
	r->v[RF_BATTERY_TOTAL_CHARGE_WH] = total / 2;
	r->v[RF_BATTERY_TOTAL_DISCHARGE_WH] = total / 3;
	r->v[RF_METER_W] = 1200;
	r->v[RF_METER_HZ] = 50.02;
	r->v[RF_METER_L1_V] = 230.1;
	r->v[RF_METER_L1_A] = 2.5;
	r->v[RF_METER_L1_W] = 400;
	r->v[RF_METER_L2_V] = 231.2;
	r->v[RF_METER_L2_A] = 2.6;
	r->v[RF_METER_L2_W] = 410;
	r->v[RF_METER_L3_V] = 229.3;
	r->v[RF_METER_L3_A] = 2.7;
	r->v[RF_METER_L3_W] = 390;
	r->v[RF_METER_TOTAL_IMPORT_WH] = total / 4;
	r->v[RF_METER_TOTAL_EXPORT_WH] = total / 5;
}

static void srv_init(struct srv *s, const struct profile *p, const char *serial, double total)
{
	struct reading r;
	memset(s, 0, sizeof(*s));
	s->fail_addr = -1;
	s->mem.handle = srv_handle;
	s->mem.ud = s;
	assert_int_equal(regimage_new(&s->img), 0);
	sample_reading(&r, total);
	assert_int_equal(profile_encode(p, &r, serial, s->img), 0);
}

/* What the profile itself decodes from the image (blocks failing where the
 * server would fail them). */
static void expected_reading(const struct profile *p, const struct srv *s, struct reading *ret)
{
	struct block_result *res = calloc(p->nblocks, sizeof(*res));
	assert_non_null(res);
	for (unsigned i = 0; i < p->nblocks; i++) {
		res[i].b = p->blocks[i];
		if (s->fail_addr >= 0 && p->blocks[i].addr == s->fail_addr)
			res[i].err = MB_EXCEPTION_ERR(2);
		else
			res[i].err = regimage_get(s->img, p->blocks[i].fc, p->blocks[i].addr,
						  p->blocks[i].count, res[i].regs);
	}
	profile_decode(p, res, p->nblocks, ret);
	free(res);
}

/* ---- harness ---------------------------------------------------------------- */

struct rec {
	unsigned readings;
	struct reading last_fresh;
	unsigned raw_keys;
	unsigned freq;
	double last_hz;
	unsigned states[DEV_STATE_COUNT]; /* transitions into each state */
	unsigned identity_changes;
	char new_serial[64];
};

static void on_reading(void *ud, struct device *d, int64_t ts, const struct reading *r,
		       const struct block_result *res, unsigned nres)
{
	struct rec *k = ud;
	(void)d;
	assert_true(ts > 0);
	k->readings++;
	k->last_fresh = *r;
	json_t *raw = profile_raw_json(res, nres);
	k->raw_keys = raw ? (unsigned)json_object_size(raw) : 0;
	json_decref(raw);
}

static void on_freq(void *ud, struct device *d, int64_t ts, double hz)
{
	struct rec *k = ud;
	(void)d;
	(void)ts;
	k->freq++;
	k->last_hz = hz;
}

static void on_state(void *ud, struct device *d, int from, int to, const char *reason)
{
	struct rec *k = ud;
	(void)d;
	(void)from;
	assert_non_null(reason);
	assert_true(to >= 0 && to < DEV_STATE_COUNT);
	k->states[to]++;
}

static void on_identity(void *ud, struct device *d, const char *old, const char *nw)
{
	struct rec *k = ud;
	(void)d;
	assert_string_not_equal(old, nw);
	k->identity_changes++;
	snprintf(k->new_serial, sizeof(k->new_serial), "%s", nw);
}

static const struct device_hooks hooks = {
	.on_reading = on_reading,
	.on_freq = on_freq,
	.on_state = on_state,
	.on_identity_change = on_identity,
};

struct h {
	struct loop *l;
	struct devices *ds;
	struct rec rec;
	struct srv srv[2];
	struct mb_mem_server *mem[2];
	struct devices_config cfg;
};

static json_t *dev_json(const char *profile, int port)
{
	return json_pack("{ss ss si si ss}", "connection", "tcp", "host", "127.0.0.1", "port", port,
			 "unit_id", 1, "profile", profile);
}

static void h_cfg(struct h *h)
{
	h->cfg = (struct devices_config){
		.poll_interval_ms = 100,
		.freq_interval_ms = 100,
		.timeout_ms = 100,
		.connect_timeout_ms = 100,
		.backoff_min_ms = 50,
		.backoff_max_ms = 200,
		.sleep_after_failures = 3,
		.sleep_retry_ms = 400,
		.mem = h->mem,
		.nmem = 2,
	};
}

static void h_start(struct h *h, json_t *arr)
{
	char err[256] = "";
	assert_int_equal(loop_new(&h->l), 0);
	h->mem[0] = &h->srv[0].mem;
	h->mem[1] = &h->srv[1].mem;
	if (!h->cfg.poll_interval_ms)
		h_cfg(h);
	int r = devices_new(h->l, arr, &h->cfg, &hooks, &h->rec, &h->ds, err, sizeof(err));
	if (r < 0)
		fail_msg("devices_new: %d %s", r, err);
	json_decref(arr);
}

static void h_stop(struct h *h)
{
	devices_free(h->ds);
	loop_free(h->l);
	for (int i = 0; i < 2; i++)
		regimage_free(h->srv[i].img);
}

typedef bool (*pred_fn)(struct h *h, void *arg);

static bool run_until(struct h *h, pred_fn pred, void *arg, unsigned timeout_ms)
{
	usec_t end = now_usec() + (usec_t)timeout_ms * 1000;
	while (now_usec() < end) {
		if (pred(h, arg))
			return true;
		loop_run_once(h->l, 5000);
	}
	return pred(h, arg);
}

static void run_for(struct h *h, unsigned ms)
{
	usec_t end = now_usec() + (usec_t)ms * 1000;
	while (now_usec() < end)
		loop_run_once(h->l, 5000);
}

static bool in_state(struct h *h, void *arg)
{
	int want = (int)(intptr_t)arg;
	return device_state(devices_get(h->ds, 0)) == want;
}

static bool readings_at_least(struct h *h, void *arg)
{
	return h->rec.readings >= (unsigned)(uintptr_t)arg;
}

static void assert_reading_eq(const struct reading *got, const struct reading *want)
{
	for (unsigned f = 0; f < RF_COUNT; f++) {
		if (isnan(want->v[f])) {
			if (!isnan(got->v[f]))
				fail_msg("%s.%s: want unavailable, got %g", reading_fields[f].group,
					 reading_fields[f].name, got->v[f]);
			continue;
		}
		if (isnan(got->v[f]) || fabs(got->v[f] - want->v[f]) > 1e-9 * fabs(want->v[f]) + 1e-9)
			fail_msg("%s.%s: want %g, got %g", reading_fields[f].group, reading_fields[f].name,
				 want->v[f], got->v[f]);
	}
}

/* ---- tests -------------------------------------------------------------- */

static void test_identify_and_poll(void **state)
{
	struct h h = { 0 };
	const struct profile *p = profile_find("huawei");
	struct reading want;
	(void)state;

	assert_non_null(p);
	srv_init(&h.srv[0], p, "HW123456789", 1000000);
	h_start(&h, json_pack("[o]", dev_json("huawei", 1502)));
	assert_int_equal(devices_count(h.ds), 1);
	struct device *d = devices_get(h.ds, 0);
	assert_true(run_until(&h, readings_at_least, (void *)2, 3000));
	assert_int_equal(device_state(d), DEV_POLLING);
	assert_string_equal(device_serial(d), "HW123456789");
	assert_string_equal(device_profile_name(d), "huawei");
	expected_reading(p, &h.srv[0], &want);
	assert_true(reading_any(&want));
	assert_reading_eq(device_reading(d), &want);
	assert_reading_eq(&h.rec.last_fresh, &want);
	/* Raw map of the second poll, a short one: the registers behind the
	 * readings (the first, verbose, read both 125-register blocks). */
	struct mb_block kb[32];
	int nk = profile_plan_key(p, kb, 32);
	unsigned words = 0;
	assert_true(nk > 0);
	for (int i = 0; i < nk; i++)
		words += kb[i].count;
	assert_true(words < 250);
	assert_int_equal(h.rec.raw_keys, words);
	/* Each transition once: connecting, identifying, polling. */
	assert_int_equal(h.rec.states[DEV_CONNECTING], 1);
	assert_int_equal(h.rec.states[DEV_IDENTIFYING], 1);
	assert_int_equal(h.rec.states[DEV_POLLING], 1);

	json_t *j = device_to_json(d);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "polling");
	assert_string_equal(json_string_value(json_object_get(j, "serial")), "HW123456789");
	assert_string_equal(json_string_value(json_object_get(j, "id")), "dev0");
	json_t *rd = json_object_get(j, "reading");
	assert_true(json_is_object(json_object_get(rd, "pv")));
	assert_true(json_integer_value(json_object_get(json_object_get(j, "stats"), "polls_ok")) >= 2);
	json_decref(j);
	h_stop(&h);
}

static bool reading_is_full(struct h *h, void *arg)
{
	const struct reading *want = arg, *got = device_reading(devices_get(h->ds, 0));
	for (unsigned f = 0; f < RF_COUNT; f++)
		if (isnan(want->v[f]) != isnan(got->v[f]))
			return false;
	return true;
}

static bool unsupported_none(struct h *h, void *arg)
{
	(void)arg;
	json_t *j = device_to_json(devices_get(h->ds, 0));
	bool none = json_array_size(json_object_get(j, "unsupported_blocks")) == 0;
	json_decref(j);
	return none;
}

static void test_failed_middle_block(void **state)
{
	struct h h = { 0 };
	const struct profile *p = profile_find("huawei_hybrid");
	struct reading want, full;
	(void)state;

	assert_non_null(p);
	assert_true(p->nblocks >= 3);
	srv_init(&h.srv[0], p, "HYB0001", 2000000);
	expected_reading(p, &h.srv[0], &full);
	h.srv[0].fail_addr = p->blocks[1].addr;
	h.srv[0].fail_end = p->blocks[1].addr + p->blocks[1].count;
	expected_reading(p, &h.srv[0], &want);
	/* The failed block must matter for this test to mean anything. */
	unsigned lost = 0, kept = 0;
	for (unsigned f = 0; f < RF_COUNT; f++) {
		lost += !isnan(full.v[f]) && isnan(want.v[f]);
		kept += !isnan(want.v[f]);
	}
	assert_true(lost > 0 && kept > 0);

	h_cfg(&h);
	h.cfg.unsupported_retry_ms = 4000; /* far beyond 5 polls of 100 ms, even loaded */
	h_start(&h, json_pack("[o]", dev_json("huawei_hybrid", 1502)));
	struct device *d = devices_get(h.ds, 0);
	assert_true(run_until(&h, readings_at_least, (void *)2, 3000));
	assert_int_equal(device_state(d), DEV_POLLING);
	assert_reading_eq(device_reading(d), &want);
	struct device_stats st;
	device_stats(d, &st);
	assert_true(st.exceptions >= 1);

	/* Refused with exception 2 (illegal data address): the device has no
	 * such registers, so polls stop asking (its values stay absent), and
	 * /api/state says which block. */
	uint64_t exc = st.exceptions, partial = st.polls_partial;
	unsigned n = h.rec.readings;
	assert_true(run_until(&h, readings_at_least, (void *)(uintptr_t)(n + 5), 3000));
	device_stats(d, &st);
	assert_int_equal(st.exceptions, exc);
	assert_int_equal(st.polls_partial, partial);
	assert_reading_eq(device_reading(d), &want);
	/* Listed: the full block, and every request that lies in it (the short
	 * polls' blocks cut from it, the frequency register), each skipped. */
	json_t *j = device_to_json(d);
	json_t *list = json_object_get(j, "unsupported_blocks"), *u;
	size_t k;
	bool whole = false;
	json_int_t skipped = 0;
	assert_true(json_array_size(list) >= 1);
	json_array_foreach(list, k, u) {
		json_int_t a = json_integer_value(json_object_get(u, "addr"));
		json_int_t c = json_integer_value(json_object_get(u, "count"));
		assert_true(a >= p->blocks[1].addr && a + c <= p->blocks[1].addr + p->blocks[1].count);
		whole |= a == p->blocks[1].addr && c == p->blocks[1].count;
		skipped += json_integer_value(json_object_get(u, "skipped"));
	}
	assert_true(whole);
	assert_true(skipped >= 5);
	json_decref(j);

	/* The block comes back: asked again after unsupported_retry_ms, the
	 * full reading follows and the block is off the list. */
	h.srv[0].fail_addr = -1;
	assert_true(run_until(&h, reading_is_full, &full, 15000));
	assert_reading_eq(device_reading(d), &full);
	/* each listed request leaves the list as it answers again */
	assert_true(run_until(&h, unsupported_none, NULL, 15000));
	h_stop(&h);
}

static void test_timeout_backoff_recovery(void **state)
{
	struct h h = { 0 };
	const struct profile *p = profile_find("huawei");
	(void)state;

	srv_init(&h.srv[0], p, "HW1", 1000);
	h_start(&h, json_pack("[o]", dev_json("huawei", 1502)));
	assert_true(run_until(&h, in_state, (void *)DEV_POLLING, 3000));
	h.srv[0].mute = true;
	assert_true(run_until(&h, in_state, (void *)DEV_BACKING_OFF, 3000));
	struct device_stats st;
	device_stats(devices_get(h.ds, 0), &st);
	assert_true(st.timeouts >= 1);
	h.srv[0].mute = false;
	unsigned polling = h.rec.states[DEV_POLLING];
	assert_true(run_until(&h, in_state, (void *)DEV_POLLING, 3000));
	assert_int_equal(h.rec.states[DEV_POLLING], polling + 1);
	unsigned n = h.rec.readings;
	assert_true(run_until(&h, readings_at_least, (void *)(uintptr_t)(n + 1), 2000));
	h_stop(&h);
}

static void test_exceptions_back_off(void **state)
{
	struct h h = { 0 };
	const struct profile *p = profile_find("huawei");
	(void)state;

	srv_init(&h.srv[0], p, "HW1", 1000);
	h_start(&h, json_pack("[o]", dev_json("huawei", 1502)));
	assert_true(run_until(&h, in_state, (void *)DEV_POLLING, 3000));
	/* The device answers, but refuses everything: not polling, and not
	 * asleep either (it is awake, just failing). */
	h.srv[0].refuse_all = true;
	assert_true(run_until(&h, in_state, (void *)DEV_BACKING_OFF, 3000));
	run_for(&h, 1000);
	assert_int_equal(h.rec.states[DEV_ASLEEP], 0);
	assert_int_not_equal(device_state(devices_get(h.ds, 0)), DEV_POLLING);
	struct device_stats st;
	device_stats(devices_get(h.ds, 0), &st);
	assert_true(st.exceptions >= 2);
	h.srv[0].refuse_all = false;
	assert_true(run_until(&h, in_state, (void *)DEV_POLLING, 3000));
	h_stop(&h);
}

static void test_night_sleep(void **state)
{
	struct h h = { 0 };
	const struct profile *p = profile_find("huawei");
	(void)state;

	srv_init(&h.srv[0], p, "HW1", 1000);
	h_start(&h, json_pack("[o]", dev_json("huawei", 1502)));
	assert_true(run_until(&h, in_state, (void *)DEV_POLLING, 3000));
	/* Night: the inverter stops answering and refuses new connections. */
	h.srv[0].mute = true;
	h.srv[0].mem.refuse = true;
	assert_true(run_until(&h, in_state, (void *)DEV_ASLEEP, 5000));
	/* Asleep retries slowly: no storm of attempts while it sleeps. */
	uint64_t req0 = h.srv[0].mem.requests;
	unsigned back0 = h.rec.states[DEV_BACKING_OFF];
	run_for(&h, 900);
	assert_true(h.rec.states[DEV_ASLEEP] >= 2);            /* retried and went back to sleep */
	assert_true(h.rec.states[DEV_ASLEEP] <= 4);            /* every 400 ms, not more */
	assert_int_equal(h.rec.states[DEV_BACKING_OFF], back0); /* sleeping, not erroring */
	assert_int_equal(h.srv[0].mem.requests, req0);          /* refused: nothing was sent */
	/* Morning. */
	h.srv[0].mute = false;
	h.srv[0].mem.refuse = false;
	assert_true(run_until(&h, in_state, (void *)DEV_POLLING, 3000));
	h_stop(&h);
}

static void test_decreasing_total_suppressed(void **state)
{
	struct h h = { 0 };
	const struct profile *p = profile_find("huawei");
	struct reading r;
	(void)state;

	srv_init(&h.srv[0], p, "HW1", 500000);
	h_start(&h, json_pack("[o]", dev_json("huawei", 1502)));
	assert_true(run_until(&h, readings_at_least, (void *)1, 3000));
	struct device *d = devices_get(h.ds, 0);
	double total = device_reading(d)->v[RF_PV_TOTAL_GENERATION_WH];
	assert_true(total >= 499999 && total <= 500001);

	/* The device reports a lower total (a glitch, or a counter reset). */
	sample_reading(&r, 400000);
	assert_int_equal(profile_encode(p, &r, "HW1", h.srv[0].img), 0);
	unsigned n = h.rec.readings;
	assert_true(run_until(&h, readings_at_least, (void *)(uintptr_t)(n + 2), 3000));
	assert_true(isnan(h.rec.last_fresh.v[RF_PV_TOTAL_GENERATION_WH])); /* not published */
	assert_true(device_reading(d)->v[RF_PV_TOTAL_GENERATION_WH] == total); /* held */
	assert_false(isnan(h.rec.last_fresh.v[RF_PV_W]));                 /* the rest flows */
	struct device_stats st;
	device_stats(d, &st);
	assert_true(st.totals_suppressed >= 2);

	/* Growing again past the old value: published. */
	sample_reading(&r, 600000);
	assert_int_equal(profile_encode(p, &r, "HW1", h.srv[0].img), 0);
	n = h.rec.readings;
	assert_true(run_until(&h, readings_at_least, (void *)(uintptr_t)(n + 2), 3000));
	assert_true(h.rec.last_fresh.v[RF_PV_TOTAL_GENERATION_WH] > total);
	h_stop(&h);
}

static void test_identity_change(void **state)
{
	struct h h = { 0 };
	const struct profile *p = profile_find("huawei");
	struct reading r;
	(void)state;

	srv_init(&h.srv[0], p, "FIRST", 1000);
	h_start(&h, json_pack("[o]", dev_json("huawei", 1502)));
	assert_true(run_until(&h, in_state, (void *)DEV_POLLING, 3000));
	/* Another inverter takes the address (swapped unit). */
	h.srv[0].mute = true;
	assert_true(run_until(&h, in_state, (void *)DEV_BACKING_OFF, 3000));
	sample_reading(&r, 1000);
	assert_int_equal(profile_encode(p, &r, "SECOND", h.srv[0].img), 0);
	h.srv[0].mute = false;
	assert_true(run_until(&h, in_state, (void *)DEV_POLLING, 3000));
	assert_int_equal(h.rec.identity_changes, 1);
	assert_string_equal(h.rec.new_serial, "SECOND");
	assert_string_equal(device_serial(devices_get(h.ds, 0)), "SECOND");
	h_stop(&h);
}

static void test_short_polls(void **state)
{
	struct h h = { 0 };
	/* a profile with [key] rows, read from its own table (SMA) */
	const struct profile *p = profile_find("sma");
	struct reading want;
	(void)state;

	assert_non_null(p);
	assert_false(p->short_reads_fields);
	srv_init(&h.srv[0], p, "3007123", 1000);
	h_start(&h, json_pack("[o]", dev_json("sma", 1502)));
	assert_true(run_until(&h, readings_at_least, (void *)12, 4000));
	struct device *d = devices_get(h.ds, 0);
	assert_string_equal(device_serial(d), "3007123");
	expected_reading(p, &h.srv[0], &want);
	/* The API view keeps the verbose values between verbose polls. */
	assert_reading_eq(device_reading(d), &want);
	struct device_stats st;
	device_stats(d, &st);
	/* 12 polls: 2 verbose (4 blocks each) + 10 short (key blocks): far fewer
	 * requests than 12 verbose polls would take. */
	assert_true(st.reads < 12 * p->nblocks);
	h_stop(&h);
}

static void test_sunspec_discovery(void **state)
{
	struct h h = { 0 };
	const struct profile *p = profile_find("sunspec");
	(void)state;

	assert_non_null(p);
	srv_init(&h.srv[0], p, "SUNSPEC42", 12345);
	h_start(&h, json_pack("[o]", dev_json("sunspec", 1502)));
	assert_true(run_until(&h, readings_at_least, (void *)2, 4000));
	struct device *d = devices_get(h.ds, 0);
	assert_int_equal(device_state(d), DEV_POLLING);
	assert_string_equal(device_serial(d), "SUNSPEC42");
	const struct reading *got = device_reading(d);
	struct reading in;
	sample_reading(&in, 12345);
	/* Whatever the discovered map carries must match what was encoded. */
	unsigned seen = 0;
	for (unsigned f = 0; f < RF_COUNT; f++) {
		if (isnan(got->v[f]))
			continue;
		seen++;
		if (fabs(got->v[f] - in.v[f]) > 0.02 * fabs(in.v[f]) + 0.02)
			fail_msg("%s.%s: encoded %g, got %g", reading_fields[f].group,
				 reading_fields[f].name, in.v[f], got->v[f]);
	}
	assert_true(seen >= 5);
	h_stop(&h);
}

static bool freq_at_least(struct h *h, void *arg)
{
	return h->rec.freq >= (unsigned)(uintptr_t)arg;
}

static void test_frequency_10hz(void **state)
{
	struct h h = { 0 };
	const struct profile *p = profile_find("huawei");
	(void)state;

	srv_init(&h.srv[0], p, "HW1", 1000);
	h.srv[0].freq_ramp = true;
	h.srv[0].freq_addr = p->frequency->addr;
	h.srv[0].freq_raw = 5000; /* 50.00 Hz, +0.01 Hz per read */
	h_cfg(&h);
	h.cfg.poll_interval_ms = 1000;
	h_start(&h, json_pack("[o]", dev_json("huawei", 1502)));
	assert_true(run_until(&h, in_state, (void *)DEV_POLLING, 3000));
	assert_true(run_until(&h, freq_at_least, (void *)1, 1000));
	unsigned f0 = h.rec.freq;
	run_for(&h, 2000);
	unsigned got = h.rec.freq - f0;
	/* 10 Hz over 2 s, with slack for a loaded (sanitised) test machine. */
	if (got < 13 || got > 22)
		fail_msg("%u frequency samples in 2 s", got);
	assert_true(h.rec.last_hz > 50.0 && h.rec.last_hz < 51.0);

	json_t *j = devices_frequency_json(h.ds);
	assert_non_null(j);
	json_t *st = json_object_get(j, "stats_1s");
	assert_true(json_is_object(st));
	int n = (int)json_integer_value(json_object_get(st, "n"));
	assert_true(n >= 6 && n <= 12);
	double rocof = json_real_value(json_object_get(st, "rocof_hz_s"));
	/* +0.01 Hz per 100 ms read = +0.1 Hz/s */
	if (fabs(rocof - 0.1) > 0.04)
		fail_msg("rocof %g", rocof);
	double mn = json_real_value(json_object_get(st, "min"));
	double mx = json_real_value(json_object_get(st, "max"));
	double mean = json_real_value(json_object_get(st, "mean"));
	assert_true(mn < mean && mean < mx);
	assert_true(fabs((mx - mn) - 0.01 * (n - 1)) < 1e-6);
	assert_true(json_array_size(json_object_get(j, "samples")) == (size_t)n);
	assert_true(json_is_object(json_object_get(j, "lateness_us")));
	json_decref(j);

	const struct task *t = devices_frequency_task(h.ds);
	assert_non_null(t);
	assert_true(t->stats.runs >= 20);
	h_stop(&h);
}

static void test_freq_stats_math(void **state)
{
	int64_t ts[11];
	double hz[11];
	struct freq_stats s;
	(void)state;

	for (int i = 0; i < 11; i++) {
		ts[i] = 1700000000000 + i * 100;
		hz[i] = 50.0 - 0.05 * (i * 0.1); /* -0.05 Hz/s */
	}
	hz[5] += 0.02; /* one noisy sample */
	assert_int_equal(freq_stats_compute(ts, hz, 11, &s), 0);
	assert_int_equal(s.n, 11);
	assert_true(fabs(s.max - 50.0) < 1e-12);
	assert_true(fabs(s.min - (50.0 - 0.05)) < 1e-12);
	double sum = 0;
	for (int i = 0; i < 11; i++)
		sum += hz[i];
	assert_true(fabs(s.mean - sum / 11) < 1e-12);
	/* The noise at the centre leaves the least-squares slope unchanged. */
	assert_true(fabs(s.rocof - (-0.05)) < 1e-9);
	assert_int_equal(freq_stats_compute(ts, hz, 1, &s), 0);
	assert_true(s.rocof == 0.0);
	assert_int_equal(freq_stats_compute(ts, hz, 0, &s), -EINVAL);
}

static bool second_has_readings(struct h *h, void *arg)
{
	(void)arg;
	return device_reading(devices_get(h->ds, 1)) != NULL;
}

static void test_dead_device_does_not_delay_other(void **state)
{
	struct h h = { 0 };
	const struct profile *p = profile_find("huawei");
	(void)state;

	srv_init(&h.srv[0], p, "DEAD", 1000);
	srv_init(&h.srv[1], p, "ALIVE", 1000);
	h.srv[0].mute = true;
	h_start(&h, json_pack("[o o]", dev_json("huawei", 1502), dev_json("huawei", 1503)));
	assert_true(run_until(&h, second_has_readings, NULL, 3000));
	struct device_stats a, b;
	device_stats(devices_get(h.ds, 1), &a);
	run_for(&h, 1000);
	device_stats(devices_get(h.ds, 1), &b);
	/* 100 ms polls: about 10 in a second despite the other one timing out. */
	assert_true(b.polls_ok - a.polls_ok >= 6);
	assert_int_not_equal(device_state(devices_get(h.ds, 0)), DEV_POLLING);
	assert_int_equal(device_state(devices_get(h.ds, 1)), DEV_POLLING);
	h_stop(&h);
}

static void test_validation_errors(void **state)
{
	struct loop *l;
	struct devices *ds = NULL;
	char err[256];
	(void)state;

	assert_int_equal(loop_new(&l), 0);
	json_t *a = json_pack("[{ss ss si}, {ss ss si}]", "host", "127.0.0.1", "profile", "huawei",
			      "port", 502, "host", "127.0.0.1", "profile", "huawei", "port", 70000);
	assert_int_equal(devices_new(l, a, NULL, NULL, NULL, &ds, err, sizeof(err)), -EGW_ESCHEMA);
	assert_non_null(strstr(err, "devices[1].port"));
	assert_null(ds);
	json_decref(a);

	a = json_pack("[{ss ss}]", "host", "127.0.0.1", "profile", "nosuch");
	assert_int_equal(devices_new(l, a, NULL, NULL, NULL, &ds, err, sizeof(err)), -EGW_EPROFILE);
	assert_non_null(strstr(err, "devices[0].profile"));
	json_decref(a);

	a = json_pack("[{ss ss ss}]", "host", "127.0.0.1", "profile", "huawei", "connection", "usb");
	assert_int_equal(devices_new(l, a, NULL, NULL, NULL, &ds, err, sizeof(err)), -EGW_ESCHEMA);
	assert_non_null(strstr(err, "devices[0].connection"));
	json_decref(a);

	a = json_pack("[{ss ss}]", "connection", "rtu", "profile", "huawei");
	assert_int_equal(devices_new(l, a, NULL, NULL, NULL, &ds, err, sizeof(err)), -EGW_ESCHEMA);
	assert_non_null(strstr(err, "devices[0].serial_port"));
	json_decref(a);

	a = json_pack("[{ss ss ss}, {ss ss ss}]", "id", "x", "host", "127.0.0.1", "profile", "huawei",
		      "id", "x", "host", "127.0.0.1", "profile", "huawei");
	assert_int_equal(devices_new(l, a, NULL, NULL, NULL, &ds, err, sizeof(err)), -EGW_ESCHEMA);
	assert_non_null(strstr(err, "devices[1].id"));
	json_decref(a);

	a = json_pack("[{ss ss sb}]", "host", "127.0.0.1", "profile", "huawei", "bogus", 1);
	assert_int_equal(devices_new(l, a, NULL, NULL, NULL, &ds, err, sizeof(err)), -EGW_ESCHEMA);
	assert_non_null(strstr(err, "devices[0].bogus"));
	json_decref(a);

	/* No devices is fine; no frequency task then. */
	assert_int_equal(devices_new(l, NULL, NULL, NULL, NULL, &ds, err, sizeof(err)), 0);
	assert_int_equal(devices_count(ds), 0);
	assert_null(devices_frequency_task(ds));
	json_t *fj = devices_frequency_json(ds);
	assert_true(json_is_null(json_object_get(fj, "latest")));
	json_decref(fj);
	devices_free(ds);
	loop_free(l);
}

static void test_apply(void **state)
{
	struct h h = { 0 };
	const struct profile *p = profile_find("huawei");
	char err[256];
	(void)state;

	srv_init(&h.srv[0], p, "ONE", 1000);
	srv_init(&h.srv[1], p, "TWO", 1000);
	json_t *one = dev_json("huawei", 1502);
	h_start(&h, json_pack("[O]", one));
	assert_true(run_until(&h, in_state, (void *)DEV_POLLING, 3000));
	struct device *d0 = devices_get(h.ds, 0);

	/* A bad list changes nothing. */
	json_t *bad = json_pack("[O {ss}]", one, "profile", "huawei");
	assert_int_equal(devices_apply(h.ds, bad, err, sizeof(err)), -EGW_ESCHEMA);
	assert_non_null(strstr(err, "devices[1].host"));
	json_decref(bad);
	assert_int_equal(devices_count(h.ds), 1);
	assert_ptr_equal(devices_get(h.ds, 0), d0);

	/* Adding one keeps the unchanged device running as it is. */
	json_t *two = json_pack("[O o]", one, dev_json("huawei", 1503));
	assert_int_equal(devices_apply(h.ds, two, err, sizeof(err)), 0);
	json_decref(two);
	assert_int_equal(devices_count(h.ds), 2);
	assert_ptr_equal(devices_get(h.ds, 0), d0);
	assert_int_equal(device_state(d0), DEV_POLLING);
	assert_true(run_until(&h, second_has_readings, NULL, 3000));
	assert_string_equal(device_serial(devices_get(h.ds, 1)), "TWO");

	/* Removing all. */
	json_t *none = json_array();
	assert_int_equal(devices_apply(h.ds, none, err, sizeof(err)), 0);
	json_decref(none);
	assert_int_equal(devices_count(h.ds), 0);
	assert_null(devices_frequency_task(h.ds));
	run_for(&h, 100);
	json_decref(one);
	h_stop(&h);
}

static bool both_polling(struct h *h, void *arg)
{
	(void)arg;
	return devices_count(h->ds) == 2 && device_reading(devices_get(h->ds, 0)) &&
	       device_reading(devices_get(h->ds, 1));
}

static void test_shared_link(void **state)
{
	struct h h = { 0 };
	const struct profile *p = profile_find("huawei");
	char err[256];
	(void)state;

	/* Two units behind one connection (one RS-485 line, one TCP gateway). */
	srv_init(&h.srv[0], p, "BUS", 1000);
	h_cfg(&h);
	h.mem[0] = h.mem[1] = &h.srv[0].mem;
	h.cfg.mem = h.mem;
	json_t *a = dev_json("huawei", 1502), *b = dev_json("huawei", 1502);
	json_object_set_new(b, "unit_id", json_integer(2));
	assert_int_equal(loop_new(&h.l), 0);
	json_t *ab = json_pack("[O O]", a, b);
	assert_int_equal(devices_new(h.l, ab, &h.cfg, &hooks, &h.rec, &h.ds, err, sizeof(err)), 0);
	json_decref(ab);
	assert_true(run_until(&h, both_polling, NULL, 3000));
	assert_int_equal(h.srv[0].mem.connects, 1);
	json_t *j = device_to_json(devices_get(h.ds, 1));
	assert_int_equal(json_integer_value(json_object_get(
		json_object_get(json_object_get(j, "stats"), "modbus"), "devices_on_link")), 2);
	json_decref(j);

	/* The other keeps the connection and polls on. */
	struct device_stats s0, s1;
	device_stats(devices_get(h.ds, 1), &s0);
	/* Remove the first while its requests are queued on the shared link. */
	json_t *only_b = json_pack("[O]", b);
	run_for(&h, 30);
	assert_int_equal(devices_apply(h.ds, only_b, err, sizeof(err)), 0);
	json_decref(only_b);
	assert_int_equal(devices_count(h.ds), 1);
	run_for(&h, 500);
	device_stats(devices_get(h.ds, 0), &s1);
	assert_true(s1.polls_ok >= s0.polls_ok + 3);
	assert_int_equal(device_state(devices_get(h.ds, 0)), DEV_POLLING);
	assert_int_equal(h.srv[0].mem.connects, 1);

	/* Different settings on one serial line are refused. */
	json_t *r1 = json_pack("{ss ss ss si}", "connection", "rtu", "serial_port", "/dev/ttyX",
			       "profile", "sdm630", "baudrate", 9600);
	json_t *r2 = json_pack("{ss ss ss si}", "connection", "rtu", "serial_port", "/dev/ttyX",
			       "profile", "sdm630", "baudrate", 19200);
	json_t *rr = json_pack("[o o]", r1, r2);
	assert_int_equal(devices_apply(h.ds, rr, err, sizeof(err)), -EGW_ESCHEMA);
	assert_non_null(strstr(err, "devices[1].baudrate"));
	json_decref(rr);
	json_decref(a);
	json_decref(b);
	h_stop(&h);
}

/* Proxy units: explicit duplicates are refused with the field named; two
 * devices whose default (unit_id) collides get distinct units, the same at
 * every parse. */
static void test_proxy_units(void **state)
{
	static const char *dup_explicit =
		"[{\"host\":\"10.0.0.1\",\"profile\":\"sunspec\",\"proxy_unit_id\":5},"
		"{\"host\":\"10.0.0.2\",\"profile\":\"sunspec\",\"proxy_unit_id\":5}]";
	static const char *dup_default =
		"[{\"host\":\"10.0.0.1\",\"profile\":\"sunspec\"},"
		"{\"host\":\"10.0.0.2\",\"profile\":\"sunspec\"},"
		"{\"host\":\"10.0.0.3\",\"profile\":\"sunspec\",\"unit_id\":2},"
		"{\"host\":\"10.0.0.4\",\"profile\":\"sunspec\",\"proxy_unit_id\":3},"
		"{\"host\":\"10.0.0.5\",\"profile\":\"sunspec\"},"
		"{\"profile\":\"p1\",\"host\":\"10.0.0.6\",\"port\":2001}]";
	struct devconf_error e = { "", "" };
	struct dev_conf *c = NULL;
	unsigned n = 0;
	json_t *j = json_loads(dup_explicit, 0, NULL);

	(void)state;
	assert_non_null(j);
	assert_int_equal(devconf_validate_list(j, &e), -EGW_ESCHEMA);
	assert_string_equal(e.key, "devices[1].proxy_unit_id");
	json_decref(j);

	j = json_loads(dup_default, 0, NULL);
	assert_non_null(j);
	for (int round = 0; round < 2; round++) {
		assert_int_equal(devconf_parse_list(j, &c, &n, NULL), 0);
		assert_int_equal(n, 6);
		assert_int_equal(c[0].proxy_unit, 1);
		assert_int_equal(c[1].proxy_unit, 4); /* 1 is taken, 2 and 3 are held */
		assert_int_equal(c[2].proxy_unit, 2);
		assert_int_equal(c[3].proxy_unit, 3);
		assert_int_equal(c[4].proxy_unit, 5);
		devconf_free(c, n);
	}
	json_decref(j);
}

/* The identification rules the device and the scan share: a grid frequency
 * is plausible in 48..62 Hz only (the scan once took 45..65), after the
 * profile's own scaling, for every profile that identifies by frequency. */
static void test_ident_rules(void **state)
{
	static const struct { double hz; int want; } cases[] = {
		{ 50.0, 0 }, { 48.0, 0 }, { 62.0, 0 }, { 47.5, -EGW_EPROFILE },
		{ 63.0, -EGW_EPROFILE }, { 45.5, -EGW_EPROFILE }, { 64.5, -EGW_EPROFILE },
	};
	unsigned n, tried = 0;
	const struct profile *const *all = profile_all(&n);
	uint16_t words[125] = { 0 }, regs[64] = { 0 };
	char mn[40], sn[40];
	(void)state;

	for (unsigned i = 0; i < n; i++) {
		const struct profile *p = all[i];
		const struct reg_def *f = p->frequency; /* (a SunSpec sf register is left out) */
		struct mb_block b;
		if (!f || f->sf_addr != REG_NO_SF || ident_block(f, &b) < 0)
			continue;
		for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
			double raw = f->field >= 0 ? (cases[k].hz - f->add) / f->mul : cases[k].hz;
			memset(words, 0, sizeof(words));
			if (reg_encode(f, raw, words + (f->addr - b.addr)) < 0)
				continue;
			int r = ident_frequency(p, &b, words, b.count);
			if (r != cases[k].want)
				fail_msg("%s: %.1f Hz gives %d, expected %d", p->name, cases[k].hz, r,
					 cases[k].want);
			tried++;
		}
	}
	assert_true(tried > 0);

	/* SunSpec common model: Mn at 0..15, SN at 48..63; short: nothing. */
	regs[0] = 0x4163; /* "Ac" */
	regs[1] = 0x6d65; /* "me" */
	regs[48] = 0x5331; /* "S1" */
	ident_sunspec_common(regs, 64, mn, sizeof(mn), sn, sizeof(sn));
	assert_string_equal(mn, "Acme");
	assert_string_equal(sn, "S1");
	ident_sunspec_common(regs, 10, mn, sizeof(mn), sn, sizeof(sn));
	assert_string_equal(mn, "");
	assert_string_equal(sn, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_freq_stats_math),
		cmocka_unit_test(test_ident_rules),
		cmocka_unit_test(test_validation_errors),
		cmocka_unit_test(test_identify_and_poll),
		cmocka_unit_test(test_failed_middle_block),
		cmocka_unit_test(test_timeout_backoff_recovery),
		cmocka_unit_test(test_exceptions_back_off),
		cmocka_unit_test(test_night_sleep),
		cmocka_unit_test(test_decreasing_total_suppressed),
		cmocka_unit_test(test_identity_change),
		cmocka_unit_test(test_short_polls),
		cmocka_unit_test(test_sunspec_discovery),
		cmocka_unit_test(test_frequency_10hz),
		cmocka_unit_test(test_dead_device_does_not_delay_other),
		cmocka_unit_test(test_apply),
		cmocka_unit_test(test_shared_link),
		cmocka_unit_test(test_proxy_units),
	};
	log_set_level(LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
