/* Batch assembly with the real store (SQLite in a temp dir), the real
 * software signer and the ATECC608 signer on its OpenSSL fake, driven by the
 * real loop and worker pool.  Every batch is read back from the store and its
 * JWT verified with the signer's public key before its payload is checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define _XOPEN_SOURCE_EXTENDED 1
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include "backend/batch.h"
#include "base/util.h"
#include "crypto/b64url.h"
#include "crypto/jwt.h"
#include "crypto/signer.h"
#include "egw-config.h"
#include "loop/loop.h"
#include "profiles/profile.h"
#include "profiles/reading.h"
#include "store/store.h"

struct fx {
	char dir[64];
	char db[128];
	struct loop *l;
	struct signer *sg;
	struct store *st;
	struct batch *b;
};

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void fx_open_store(struct fx *f)
{
	struct store_config sc = {.path = f->db};
	assert_int_equal(store_open(f->l, &sc, &f->st), 0);
}

static int setup_common(void **state, enum signer_backend be)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/egw-test-batch-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/store.db", f->dir);
	assert_int_equal(loop_new(&f->l), 0);
	struct signer_config scfg = {.backend = be, .state_dir = f->dir, .i2c_bus = "1"};
	if (be == SIGNER_ATECC608) {
		/* The emulated chip on /dev/i2c-1 (sim/atecc_shim.c, linked in). */
		uint8_t xy[64];
		assert_int_equal(setenv("EGW_ATECC_EMU_DIR", f->dir, 1), 0);
		assert_int_equal(signer_chip_provision(&scfg, xy), 0);
	}
	assert_int_equal(signer_open(&scfg, &f->sg), 0);
	fx_open_store(f);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_common(state, SIGNER_SOFTWARE);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	batch_free(f->b);
	store_close(f->st);
	signer_close(f->sg);
	unsetenv("EGW_ATECC_EMU_DIR");
	loop_free(f->l);
	nftw(f->dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void new_batch(struct fx *f)
{
	/* A long interval: the tests seal by hand. */
	struct batch_config cfg = {.interval = 3600 * USEC_PER_SEC,
	                           .freq_interval_ms = 100,
	                           .resign_interval = 50 * USEC_PER_MSEC};
	assert_int_equal(batch_new(f->l, f->st, f->sg, &cfg, &f->b), 0);
}

static void run_idle(struct fx *f)
{
	usec_t end = now_usec() + 5 * USEC_PER_SEC;
	while (batch_busy(f->b) && now_usec() < end)
		loop_run_once(f->l, 10 * USEC_PER_MSEC);
	assert_false(batch_busy(f->b));
}

/* The signed rows in the store, verified; returns how many (max n). */
static unsigned read_signed(struct fx *f, int64_t after, json_t **hdr, json_t **pl, unsigned n)
{
	struct store_row rows[16];
	unsigned got = 0;
	uint8_t pub[64];

	memset(rows, 0, sizeof(rows));
	assert_true(n <= 16);
	assert_int_equal(store_peek(f->st, after, n, rows, &got), 0);
	assert_int_equal(signer_public_key(f->sg, pub), 0);
	for (unsigned i = 0; i < got; i++) {
		assert_non_null(rows[i].jwt);
		assert_int_equal(jwt_verify_es256_full(rows[i].jwt, pub, &hdr[i], &pl[i]), 0);
		assert_int_equal(json_integer_value(json_object_get(pl[i], "seq")), rows[i].seq);
	}
	store_rows_clear(rows, got);
	return got;
}

static void test_payload_contents(void **state)
{
	struct fx *f = *state;
	struct reading r;
	json_t *hdr[1], *pl[1];
	int64_t t0;
	struct block_result res[2] = {
	    {.b = {.fc = REG_FC_HOLDING, .addr = 5016, .count = 2}, .regs = {3000, 65535}},
	    {.b = {.fc = REG_FC_INPUT, .addr = 100, .count = 3}, .err = -ETIMEDOUT}};

	new_batch(f);
	t0 = wall_ms();
	reading_clear(&r);
	r.v[RF_PV_W] = -3000.0;
	r.v[RF_METER_HZ] = 50.01;
	r.v[RF_PV_MPPT1_V] = 3392 * 0.1; /* 339.20000000000005 in binary */
	assert_int_equal(batch_add_reading(f->b, "inv1", "sungrow", "A123", t0 - 900, &r, res, 2), 0);
	r.v[RF_PV_W] = -3100.0;
	res[0].regs[0] = 3100; /* only this word changes */
	res[1].err = 0;
	assert_int_equal(batch_add_reading(f->b, "inv1", "sungrow", "A123", t0 - 400, &r, res, 2), 0);
	/* A second device with only registers (decode failed) and late identity. */
	struct block_result m = {.b = {.fc = REG_FC_INPUT, .addr = 30775, .count = 1}, .regs = {7}};
	assert_int_equal(batch_add_reading(f->b, "m2", NULL, NULL, t0 - 300, NULL, &m, 1), 0);
	assert_int_equal(batch_add_reading(f->b, "m2", "sdm630", "M9", t0 - 200, NULL, &m, 1), 0);
	assert_int_equal(batch_add_freq(f->b, "inv1", t0 - 300, 49.98), 0);
	assert_int_equal(batch_add_freq(f->b, "inv1", t0 - 197, 50.02), 0);
	/* t0 - 100 missing */
	assert_int_equal(batch_add_freq(f->b, "inv1", t0 + 2, 50.03), 0);
	assert_int_equal(batch_add_freq(f->b, "inv1", t0, NAN), -EINVAL);
	assert_int_equal(batch_add_reading(f->b, "", "x", "y", t0, &r, NULL, 0), -EINVAL);

	assert_int_equal(batch_seal_now(f->b), 0);
	run_idle(f);
	assert_int_equal(read_signed(f, 0, hdr, pl, 1), 1);

	/* header */
	assert_string_equal(json_string_value(json_object_get(hdr[0], "alg")), "ES256");
	assert_string_equal(json_string_value(json_object_get(hdr[0], "typ")), "JWT");
	assert_string_equal(json_string_value(json_object_get(hdr[0], "dtype")), "egw-batch");
	assert_string_equal(json_string_value(json_object_get(hdr[0], "model")), "sungrow");
	assert_string_equal(json_string_value(json_object_get(hdr[0], "opr")), "production");
	assert_string_equal(json_string_value(json_object_get(hdr[0], "device")),
	                    signer_serial_hex(f->sg));

	/* payload */
	json_t *p = pl[0], *d0, *d1, *fr;
	int64_t iat = json_integer_value(json_object_get(p, "iat"));
	int64_t from = json_integer_value(json_object_get(p, "from_ms"));
	assert_int_equal(json_integer_value(json_object_get(p, "v")), BATCH_FORMAT_VERSION);
	assert_true(iat >= t0 / 1000 && iat <= wall_ms() / 1000);
	assert_true(json_integer_value(json_object_get(p, "seq")) >= 1);
	assert_string_equal(json_string_value(json_object_get(p, "gateway")),
	                    signer_serial_hex(f->sg));
	assert_true(from <= t0);
	assert_true(json_integer_value(json_object_get(p, "to_ms")) >= t0);
	assert_int_equal(json_array_size(json_object_get(p, "devices")), 2);
	d0 = json_array_get(json_object_get(p, "devices"), 0);
	d1 = json_array_get(json_object_get(p, "devices"), 1);
	assert_string_equal(json_string_value(json_object_get(d0, "id")), "inv1");
	assert_string_equal(json_string_value(json_object_get(d0, "profile")), "sungrow");
	assert_string_equal(json_string_value(json_object_get(d0, "serial")), "A123");
	char *blocks = json_dumps(json_object_get(d0, "blocks"), JSON_COMPACT);
	assert_string_equal(blocks, "[[3,5016,2],[4,100,3]]");
	free(blocks);
	/* keyframe: 3000 = 0x0bb8, 65535 = 0xffff, big-endian, base64url */
	assert_string_equal(json_string_value(json_array_get(json_object_get(d0, "kf"), 0)),
	                    "C7j__w");
	assert_string_equal(json_string_value(json_array_get(json_object_get(d0, "kf"), 1)),
	                    "AAAAAAAA");
	json_t *polls = json_object_get(d0, "polls");
	assert_int_equal(json_array_size(polls), 2);
	char *p0 = json_dumps(json_array_get(polls, 0), JSON_COMPACT | JSON_SORT_KEYS |
	                                                     JSON_REAL_PRECISION(15));
	char want0[256];
	snprintf(want0, sizeof(want0),
	         "{\"b\":\"1\",\"e\":[[1,%d]],\"r\":{\"meter\":{\"Hz\":50.01},"
	         "\"pv\":{\"W\":-3000,\"mppt1_V\":339.2}},\"t\":%lld}",
	         -ETIMEDOUT, (long long)(t0 - 900 - from));
	assert_string_equal(p0, want0);
	free(p0);
	char *p1 = json_dumps(json_array_get(polls, 1), JSON_COMPACT | JSON_SORT_KEYS);
	/* word 0 went from 3000 to 3100: step 0, change +100 */
	assert_string_equal(p1, "{\"b\":\"3\",\"d\":[0,100],\"r\":{\"pv\":{\"W\":-3100}},"
	                        "\"t\":500}");
	free(p1);
	assert_string_equal(json_string_value(json_object_get(d1, "profile")), "sdm630");
	assert_string_equal(json_string_value(json_object_get(d1, "serial")), "M9");
	polls = json_object_get(d1, "polls");
	assert_int_equal(json_array_size(polls), 2);
	assert_null(json_object_get(json_array_get(polls, 1), "r")); /* no reading */
	assert_null(json_object_get(json_array_get(polls, 1), "d")); /* nothing changed */
	fr = json_object_get(p, "frequency");
	assert_non_null(fr);
	assert_string_equal(json_string_value(json_object_get(fr, "device")), "inv1");
	assert_int_equal(json_integer_value(json_object_get(fr, "iv")), 100);
	assert_int_equal(json_integer_value(json_object_get(fr, "t0")), t0 - 300);
	assert_int_equal(json_integer_value(json_object_get(fr, "mhz")), 49980);
	char *fd = json_dumps(json_object_get(fr, "d"), JSON_COMPACT);
	assert_string_equal(fd, "[0,40,null,10]");
	free(fd);
	assert_null(json_object_get(p, "overflow"));
	json_decref(hdr[0]);
	json_decref(pl[0]);

	struct batch_stats bs;
	batch_get_stats(f->b, &bs);
	assert_int_equal(bs.sealed, 1);
	assert_int_equal(bs.stored_signed, 1);
	assert_int_equal(bs.stored_unsigned, 0);
	assert_int_equal(bs.readings, 4);
	assert_int_equal(bs.samples, 3);
}

static void test_seq_and_windows(void **state)
{
	struct fx *f = *state;
	json_t *hdr[16], *pl[16];
	int64_t last = 0, prev_to = 0;
	unsigned n;

	new_batch(f);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(batch_seal_now(f->b), 0); /* queued back to back */
	}
	run_idle(f);
	n = read_signed(f, 0, hdr, pl, 16);
	assert_int_equal(n, 3);
	for (unsigned i = 0; i < n; i++) {
		int64_t seq = json_integer_value(json_object_get(pl[i], "seq"));
		assert_true(seq > last);
		last = seq;
		/* windows follow each other without holes */
		if (i > 0)
			assert_int_equal(json_integer_value(json_object_get(pl[i], "from_ms")),
			                 prev_to);
		prev_to = json_integer_value(json_object_get(pl[i], "to_ms"));
		/* an empty batch still says who and when, with no devices */
		assert_int_equal(json_array_size(json_object_get(pl[i], "devices")), 0);
		assert_null(json_object_get(pl[i], "frequency"));
		assert_string_equal(json_string_value(json_object_get(hdr[i], "model")), "egw");
		json_decref(hdr[i]);
		json_decref(pl[i]);
	}
	/* The sequence survives a restart (store closed and reopened). */
	batch_free(f->b);
	f->b = NULL;
	store_close(f->st);
	fx_open_store(f);
	new_batch(f);
	assert_int_equal(batch_seal_now(f->b), 0);
	run_idle(f);
	n = read_signed(f, last, hdr, pl, 16);
	assert_int_equal(n, 1);
	assert_true(json_integer_value(json_object_get(pl[0], "seq")) > last);
	json_decref(hdr[0]);
	json_decref(pl[0]);
}

static void test_overflow_capped(void **state)
{
	struct fx *f = *state;
	json_t *hdr[1], *pl[1];
	struct reading r;

	new_batch(f);
	reading_clear(&r);
	r.v[RF_METER_W] = 10;
	for (int i = 0; i < BATCH_MAX_SAMPLES; i++)
		assert_int_equal(batch_add_freq(f->b, "m", 1000 + i, 50.0), 0);
	assert_int_equal(batch_add_freq(f->b, "m", 99999, 50.0), -ENOSPC);
	char id[16];
	for (int i = 0; i < BATCH_MAX_DEVICES; i++) {
		snprintf(id, sizeof(id), "d%d", i);
		assert_int_equal(batch_add_reading(f->b, id, "p", "s", 5, &r, NULL, 0), 0);
	}
	assert_int_equal(batch_add_reading(f->b, "one-too-many", "p", "s", 5, &r, NULL, 0), -ENOSPC);
	assert_int_equal(batch_seal_now(f->b), 0);
	run_idle(f);
	assert_int_equal(read_signed(f, 0, hdr, pl, 1), 1);
	json_t *o = json_object_get(pl[0], "overflow");
	assert_non_null(o);
	assert_int_equal(json_integer_value(json_object_get(o, "samples")), 1);
	assert_int_equal(json_integer_value(json_object_get(o, "readings")), 1);
	assert_int_equal(
	    json_array_size(json_object_get(json_object_get(pl[0], "frequency"), "d")),
	    BATCH_MAX_SAMPLES);
	json_decref(hdr[0]);
	json_decref(pl[0]);
	/* The next batch starts empty. */
	assert_int_equal(batch_add_freq(f->b, "m", 1, 50.0), 0);
}

static void test_periodic_seal(void **state)
{
	struct fx *f = *state;
	struct batch_config cfg = {.interval = 50 * USEC_PER_MSEC};
	struct batch_stats bs;

	assert_int_equal(batch_new(f->l, f->st, f->sg, &cfg, &f->b), 0);
	/* Five seals, waited for (a loaded machine may run late, never early):
	 * the fifth comes no sooner than four intervals after the first. */
	usec_t t0 = now_usec(), end = t0 + 20 * USEC_PER_SEC;
	do {
		loop_run_once(f->l, 10 * USEC_PER_MSEC);
		batch_get_stats(f->b, &bs);
	} while (bs.sealed < 5 && now_usec() < end);
	usec_t took = now_usec() - t0;
	assert_true(bs.sealed >= 5);
	assert_true(took >= 4 * cfg.interval);
	assert_true(bs.sealed <= (uint64_t)(took / cfg.interval) + 1);
	run_idle(f);
	batch_get_stats(f->b, &bs);
	assert_int_equal(bs.stored_signed, bs.sealed);
	struct store_stats ss;
	store_get_stats(f->st, &ss);
	assert_int_equal(ss.backlog, (int64_t)bs.sealed);
	assert_int_equal(ss.last_seq, bs.last_seq);
}

static void test_bounds_gap_signed(void **state)
{
	struct fx *f = *state;
	struct store_config sc = {.path = f->db, .max_bytes = 6000};
	json_t *hdr[16], *pl[16];
	struct reading r;
	struct store_stats ss;
	unsigned n, gaps = 0;

	store_close(f->st);
	assert_int_equal(store_open(f->l, &sc, &f->st), 0);
	new_batch(f);
	reading_clear(&r);
	for (int i = 0; i < RF_COUNT; i++)
		r.v[i] = i * 1.5;
	for (int i = 0; i < 12; i++) {
		/* values that differ from batch to batch, so the store's
		 * dictionary does not pack the rows to almost nothing */
		for (int j = 0; j < 3; j++) {
			for (int k = 0; k < RF_COUNT; k++)
				r.v[k] = k * 1.5 +
					 (double)((i * 7919 + j * 31 + k * 104729) % 10007) / 8.0;
			assert_int_equal(batch_add_reading(f->b, "inv", "sma", "S",
							   1000 + i * 3 + j, &r, NULL, 0),
					 0);
		}
		assert_int_equal(batch_seal_now(f->b), 0);
		run_idle(f);
	}
	/* Let the resign task sign the gap row(s). */
	struct batch_stats bs;
	usec_t end = now_usec() + 5 * USEC_PER_SEC;
	do {
		loop_run_once(f->l, 10 * USEC_PER_MSEC);
		store_get_stats(f->st, &ss);
		batch_get_stats(f->b, &bs);
	} while ((ss.unsigned_rows > 0 || bs.resigned == 0) && now_usec() < end);
	assert_int_equal(ss.unsigned_rows, 0);
	assert_true(ss.dropped > 0);
	n = read_signed(f, 0, hdr, pl, 16);
	assert_true(n >= 2);
	/* Every seq up to the last is either a row still here or inside a
	 * signed gap record's ranges: nothing vanishes silently. */
	bool seen[64] = {false};
	int64_t maxseq = 0;
	for (unsigned i = 0; i < n; i++) {
		const char *dt = json_string_value(json_object_get(hdr[i], "dtype"));
		int64_t seq = json_integer_value(json_object_get(pl[i], "seq"));
		assert_true(seq > 0 && seq < 64);
		seen[seq] = true;
		maxseq = MAX(maxseq, seq);
		if (strcmp(dt, "egw-gap") == 0) {
			gaps++;
			assert_string_equal(json_string_value(json_object_get(pl[i], "type")),
			                    "gap");
			json_t *rg = json_object_get(pl[i], "ranges"), *one;
			size_t k;
			assert_true(json_array_size(rg) >= 1);
			json_array_foreach(rg, k, one)
			{
				int64_t a = json_integer_value(json_array_get(one, 0));
				int64_t z = json_integer_value(json_array_get(one, 1));
				assert_true(a >= 1 && z >= a && z < 64);
				for (int64_t q = a; q <= z; q++)
					seen[q] = true;
			}
		}
		json_decref(hdr[i]);
		json_decref(pl[i]);
	}
	assert_true(gaps >= 1);
	for (int64_t q = 1; q <= maxseq; q++)
		assert_true(seen[q]);
	batch_get_stats(f->b, &bs);
	assert_true(bs.dropped_rows > 0);
	assert_true(bs.resigned >= 1);
}

/* The payload of a stored gap row (signed or not), or NULL. */
static json_t *gap_payload_of(struct store *st, int64_t seq)
{
	struct store_row rows[64];
	unsigned n = 0;
	json_t *out = NULL;

	assert_int_equal(store_unsigned(st, 64, rows, &n), 0);
	for (unsigned i = 0; i < n && !out; i++)
		if (rows[i].seq == seq)
			out = json_loads(rows[i].payload, 0, NULL);
	store_rows_clear(rows, n);
	if (out)
		return out;
	assert_int_equal(store_peek(st, seq - 1, 1, rows, &n), 0);
	if (n == 1 && rows[0].seq == seq) {
		const char *d1 = strchr(rows[0].jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
		uint8_t buf[4096];
		int k = d2 ? b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), buf, sizeof(buf) - 1) : -1;
		if (k >= 0) {
			buf[k] = '\0';
			out = json_loads((const char *)buf, 0, NULL);
		}
	}
	store_rows_clear(rows, n);
	return out;
}

/* A crash (the process ends with no cleanup) while sealed batches wait in
 * memory and the store is over its bounds: every seq up to the highest
 * stored is a row or inside a gap row's ranges.  The batches that waited
 * are lost with the process, but they never took a seq, so the gap row
 * written after the first commit did not jump over them. */
static void test_crash_with_batches_queued_leaves_no_hole(void **state)
{
	struct fx *f = *state;
	pid_t pid;
	int status;

	store_close(f->st);
	f->st = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct loop *l;
		struct store *st;
		struct batch *b;
		struct store_config sc = {.path = f->db, .max_bytes = 100};
		struct batch_config cfg = {.interval = 3600 * USEC_PER_SEC, .freq_interval_ms = 100,
		                           .resign_interval = 3600 * USEC_PER_SEC};
		struct batch_stats bs;
		if (loop_new(&l) < 0 || store_open(l, &sc, &st) < 0 ||
		    batch_new(l, st, f->sg, &cfg, &b) < 0)
			_exit(2);
		for (int i = 0; i < 6; i++)
			if (batch_seal_now(b) < 0)
				_exit(3);
		usec_t end = now_usec() + 10 * USEC_PER_SEC;
		do {
			loop_run_once(l, 5 * USEC_PER_MSEC);
			batch_get_stats(b, &bs);
		} while (bs.stored_signed + bs.stored_unsigned < 1 && now_usec() < end);
		_exit(bs.stored_signed + bs.stored_unsigned >= 1 && bs.pending >= 2 ? 0 : 4);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	sqlite3 *db;
	sqlite3_stmt *q;
	int64_t seqs[64], kinds[64], maxseq = 0;
	unsigned n = 0;
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT seq, kind FROM rows ORDER BY seq", -1, &q,
	                                    NULL),
	                 SQLITE_OK);
	while (sqlite3_step(q) == SQLITE_ROW && n < 64) {
		seqs[n] = sqlite3_column_int64(q, 0);
		kinds[n++] = sqlite3_column_int64(q, 1);
	}
	sqlite3_finalize(q);
	sqlite3_close(db);
	assert_true(n >= 1);

	fx_open_store(f);
	bool seen[64] = {false};
	unsigned gaps = 0;
	for (unsigned i = 0; i < n; i++) {
		assert_true(seqs[i] > 0 && seqs[i] < 64);
		seen[seqs[i]] = true;
		maxseq = MAX(maxseq, seqs[i]);
		if (kinds[i] != STORE_GAP)
			continue;
		gaps++;
		json_t *g = gap_payload_of(f->st, seqs[i]), *one;
		size_t k;
		assert_non_null(g);
		json_array_foreach(json_object_get(g, "ranges"), k, one)
		{
			int64_t a = json_integer_value(json_array_get(one, 0));
			int64_t z = json_integer_value(json_array_get(one, 1));
			assert_true(a >= 1 && z >= a && z < 64);
			for (int64_t s = a; s <= z; s++)
				seen[s] = true;
		}
		json_decref(g);
	}
	assert_true(gaps >= 1); /* the bounds did drop rows */
	for (int64_t s = 1; s <= maxseq; s++)
		if (!seen[s])
			fail_msg("seq %lld is neither stored nor in a gap", (long long)s);
}

static void test_disk_full_kept_in_memory_then_committed(void **state)
{
	struct fx *f = *state;
	struct store_config sc = { .path = f->db, .max_file_bytes = 96 * 1024 };
	struct batch_stats bs;
	struct store_stats ss;
	struct reading r;

	store_close(f->st);
	assert_int_equal(store_open(f->l, &sc, &f->st), 0);
	new_batch(f);
	reading_clear(&r);
	for (int i = 0; i < RF_COUNT; i++)
		r.v[i] = i * 1.25;
	/* Fill the file cap: appends fail like a full disk, batches wait.  Each
	 * batch is let through signing and the commit before the next is sealed,
	 * so a slow machine never piles up more batches in memory than the
	 * queue holds (that would be a loss, counted, and not what is tested). */
	usec_t end = now_usec() + 60 * USEC_PER_SEC;
	unsigned salt = 1;
	do {
		for (int k = 0; k < 20; k++) {
			/* values the store's dictionary cannot predict */
			for (int i = 0; i < RF_COUNT; i++) {
				salt = salt * 1103515245u + 12345u;
				r.v[i] = (double)(salt >> 8 & 0xffff) / 8.0;
			}
			batch_add_reading(f->b, "inv", "sma", "S", 1000 + k, &r, NULL, 0);
		}
		assert_int_equal(batch_seal_now(f->b), 0);
		do {
			loop_run_once(f->l, 5 * USEC_PER_MSEC);
			batch_get_stats(f->b, &bs);
		} while (bs.pending > 0 && bs.store_errors == 0 && now_usec() < end);
	} while (bs.store_errors == 0 && now_usec() < end);
	assert_true(bs.store_errors > 0);
	assert_int_equal(bs.last_error, -ENOSPC);
	for (int k = 0; k < 3; k++)
		assert_int_equal(batch_seal_now(f->b), 0);
	batch_get_stats(f->b, &bs);
	assert_true(bs.pending >= 3);
	assert_int_equal(bs.lost, 0);
	store_get_stats(f->st, &ss);
	assert_true(ss.disk_full);
	/* Space comes back (the backend acknowledged the oldest rows): every
	 * waiting batch is committed, in order, nothing lost. */
	struct store_row rows[16];
	unsigned n = 0;
	memset(rows, 0, sizeof(rows));
	assert_int_equal(store_peek(f->st, 0, 16, rows, &n), 0);
	assert_true(n > 0);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(store_ack(f->st, rows[i].seq), 0);
	store_rows_clear(rows, n);
	end = now_usec() + 10 * USEC_PER_SEC;
	do {
		loop_run_once(f->l, 10 * USEC_PER_MSEC);
		batch_get_stats(f->b, &bs);
	} while (bs.pending > 0 && now_usec() < end);
	assert_int_equal(bs.pending, 0);
	assert_int_equal(bs.lost, 0);
	assert_int_equal(bs.stored_signed, bs.sealed);
	store_get_stats(f->st, &ss);
	assert_false(ss.disk_full);
	assert_int_equal(ss.last_seq, (int64_t)bs.sealed);
	assert_int_equal(ss.backlog, (int64_t)(bs.sealed - n));
}

/* The store refuses appends (a full disk) for longer than the queue holds:
 * the oldest batches in memory are dropped, counted as lost.  A dropped
 * batch must not have taken a seq (a seq neither stored nor inside a gap row
 * is what a backend reports as silently missing): once space comes back,
 * the seqs acknowledged and those stored are 1..last_seq with no hole. */
static void test_queue_overflow_leaves_no_hole(void **state)
{
	struct fx *f = *state;
	struct store_config sc = { .path = f->db, .max_file_bytes = 96 * 1024 };
	struct batch_stats bs;
	struct store_stats ss;
	struct reading r;
	bool seen[4 * BATCH_MAX_PENDING + 1] = { false };

	store_close(f->st);
	assert_int_equal(store_open(f->l, &sc, &f->st), 0);
	new_batch(f);
	reading_clear(&r);
	for (int i = 0; i < RF_COUNT; i++)
		r.v[i] = i * 1.25;
	/* Fill the file cap one batch at a time, as in the disk-full test. */
	usec_t end = now_usec() + 60 * USEC_PER_SEC;
	unsigned salt = 1;
	do {
		for (int k = 0; k < 20; k++) {
			/* values the store's dictionary cannot predict */
			for (int i = 0; i < RF_COUNT; i++) {
				salt = salt * 1103515245u + 12345u;
				r.v[i] = (double)(salt >> 8 & 0xffff) / 8.0;
			}
			batch_add_reading(f->b, "inv", "sma", "S", 1000 + k, &r, NULL, 0);
		}
		assert_int_equal(batch_seal_now(f->b), 0);
		do {
			loop_run_once(f->l, 5 * USEC_PER_MSEC);
			batch_get_stats(f->b, &bs);
		} while (bs.pending > 0 && bs.store_errors == 0 && now_usec() < end);
	} while (bs.store_errors == 0 && now_usec() < end);
	assert_true(bs.store_errors > 0);
	assert_true(bs.sealed < 2 * BATCH_MAX_PENDING);
	/* Empty batches, more than the queue holds, while appends fail. */
	for (int k = 0; k < BATCH_MAX_PENDING + 5; k++)
		assert_int_equal(batch_seal_now(f->b), 0);
	batch_get_stats(f->b, &bs);
	assert_true(bs.lost >= 5);
	/* Space comes back: every stored row is acknowledged (the backend has
	 * them), until the queue is committed. */
	end = now_usec() + 30 * USEC_PER_SEC;
	int64_t after = 0;
	do {
		struct store_row rows[16];
		unsigned n = 0;
		memset(rows, 0, sizeof(rows));
		assert_int_equal(store_peek(f->st, after, 16, rows, &n), 0);
		for (unsigned i = 0; i < n; i++) {
			assert_true(rows[i].seq > 0 && rows[i].seq < (int64_t)ARRAY_SIZE(seen));
			seen[rows[i].seq] = true;
			assert_int_equal(store_ack(f->st, rows[i].seq), 0);
			after = rows[i].seq;
		}
		store_rows_clear(rows, n);
		loop_run_once(f->l, 10 * USEC_PER_MSEC);
		batch_get_stats(f->b, &bs);
		store_get_stats(f->st, &ss);
	} while ((bs.pending > 0 || ss.backlog > 0) && now_usec() < end);
	assert_int_equal(bs.pending, 0);
	assert_int_equal(ss.backlog, 0);
	for (int64_t q = 1; q <= ss.last_seq; q++)
		if (!seen[q])
			fail_msg("seq %lld was taken but never stored", (long long)q);
	assert_int_equal(bs.stored_signed + bs.lost, bs.sealed);
	assert_int_equal(ss.last_seq, (int64_t)bs.stored_signed);
}

#if EGW_HAVE_ATECC
/* Writes the emulated chip's fault words (sim/atecc_emu.h); NULL clears. */
static void chip_faults(struct fx *f, const char *words)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/faults", f->dir);
	if (!words) {
		unlink(path);
		return;
	}
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(words, fp);
	fclose(fp);
}

static int setup_atecc(void **state)
{
	return setup_common(state, SIGNER_ATECC608);
}

static void test_chip_failure_stored_unsigned_then_signed(void **state)
{
	struct fx *f = *state;
	json_t *hdr[16], *pl[16];
	struct batch_stats bs;
	struct store_stats ss;

	new_batch(f);
	assert_int_equal(batch_add_freq(f->b, "inv", 1, 50.0), 0);
	chip_faults(f, "absent");
	assert_int_equal(batch_seal_now(f->b), 0);
	assert_int_equal(batch_seal_now(f->b), 0);
	run_idle(f);
	batch_get_stats(f->b, &bs);
	assert_int_equal(bs.stored_unsigned, 2);
	assert_true(bs.sign_errors >= 2);
	store_get_stats(f->st, &ss);
	assert_int_equal(ss.unsigned_rows, 2);
	/* Nothing is visible to the uploader while unsigned. */
	assert_int_equal(read_signed(f, 0, hdr, pl, 16), 0);
	/* The resign task keeps trying and fails while the chip is down. */
	usec_t end = now_usec() + 200 * USEC_PER_MSEC;
	while (now_usec() < end)
		loop_run_once(f->l, 10 * USEC_PER_MSEC);
	store_get_stats(f->st, &ss);
	assert_int_equal(ss.unsigned_rows, 2);
	chip_faults(f, NULL);
	end = now_usec() + 5 * USEC_PER_SEC;
	do {
		loop_run_once(f->l, 10 * USEC_PER_MSEC);
		store_get_stats(f->st, &ss);
		batch_get_stats(f->b, &bs); /* the worker's completion has run too */
	} while ((ss.unsigned_rows > 0 || bs.resigned < 2) && now_usec() < end);
	assert_int_equal(ss.unsigned_rows, 0);
	assert_int_equal(read_signed(f, 0, hdr, pl, 16), 2);
	assert_string_equal(json_string_value(json_object_get(hdr[0], "dtype")), "egw-batch");
	assert_non_null(json_object_get(pl[0], "frequency"));
	for (int i = 0; i < 2; i++) {
		json_decref(hdr[i]);
		json_decref(pl[i]);
	}
	batch_get_stats(f->b, &bs);
	assert_int_equal(bs.resigned, 2);
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_payload_contents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seq_and_windows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overflow_capped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_periodic_seal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounds_gap_signed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_with_batches_queued_leaves_no_hole, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_disk_full_kept_in_memory_then_committed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_queue_overflow_leaves_no_hole, setup, teardown),
#if EGW_HAVE_ATECC
		cmocka_unit_test_setup_teardown(test_chip_failure_stored_unsigned_then_signed,
		                                setup_atecc, teardown),
#endif
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
