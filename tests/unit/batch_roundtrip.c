/* Random batches through the real collector, signer and store, for the
 * encode -> decode property test (tests/integration/test_batch_format.py).
 *
 *   batch_roundtrip OUT N SEED
 *
 * Seals N batches of random polls (1..3 devices, register blocks that change
 * sparsely or wholesale, failed blocks, readings with unavailable fields and
 * missing readings, 10 Hz frequency samples with jitter and missing slots),
 * reads each signed batch back from the store and writes one line per batch
 * to OUT: {"jwt": "<token>", "expected": {...}} where expected holds what
 * went in: per device every poll's ts_ms, register map (profile_raw_json of
 * the poll's blocks, the map the gateway used to sign), failed blocks and
 * reading (reading_to_json, or null), and the frequency samples on their
 * slots.  The Python side decodes the token and compares. */
#define _XOPEN_SOURCE_EXTENDED 1
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/batch.h"
#include "base/err.h"
#include "base/time.h"
#include "base/util.h"
#include "crypto/signer.h"
#include "loop/loop.h"
#include "profiles/profile.h"
#include "profiles/reading.h"
#include "store/store.h"

#define MAXB 8

static uint64_t rng;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static unsigned below(unsigned n)
{
	return n ? rnd() % n : 0;
}

static bool chance(double p)
{
	return (rnd() % 1000000) < p * 1000000;
}

struct gdev {
	char id[16];
	/* two plans like a device's: "full" blocks (no overlap within an fc)
	 * and "key" blocks overlapping them */
	struct block_result full[MAXB], key[MAXB];
	unsigned nfull, nkey;
	double change; /* probability that a word changes between reads */
	struct reading r;
};

/* Whether block i overlaps an earlier one of the same function code. */
static bool overlaps_earlier(const struct block_result *b, unsigned i)
{
	for (unsigned j = 0; j < i; j++)
		if (b[j].b.fc == b[i].b.fc && b[j].b.addr < b[i].b.addr + b[i].b.count &&
		    b[i].b.addr < b[j].b.addr + b[j].b.count)
			return true;
	return false;
}

static void plan(struct block_result *b, unsigned *n, bool key, const struct gdev *ref)
{
	unsigned addr[2] = {below(3000), below(3000)};
	*n = 1 + below(key ? 3 : MAXB);
	for (unsigned i = 0; i < *n; i++) {
		memset(&b[i], 0, sizeof(b[i]));
		unsigned fc = chance(0.5) ? REG_FC_HOLDING : REG_FC_INPUT;
		unsigned count = 1 + below(chance(0.3) ? PROFILE_MAX_BLOCK : 20);
		if (key && ref->nfull) {
			/* inside (or across) a full block */
			const struct block_result *f = &ref->full[below(ref->nfull)];
			fc = f->b.fc;
			addr[fc - 3] = f->b.addr + below(f->b.count);
			count = 1 + below(4);
		}
		b[i].b.fc = (uint8_t)fc;
		b[i].b.addr = (uint16_t)addr[fc - 3];
		b[i].b.count = (uint16_t)count;
		/* One poll's blocks never overlap (the planner merges them); two
		 * that did, with words of their own, would leave the register map
		 * of that poll undefined.  Drop such a key block. */
		if (key && overlaps_earlier(b, i)) {
			(*n)--;
			i--;
			continue;
		}
		if (!key)
			addr[fc - 3] += count + below(10);
		for (unsigned k = 0; k < count; k++)
			b[i].regs[k] = chance(0.6) ? 0 : (uint16_t)rnd();
	}
}

static void step_block(struct block_result *b, double change)
{
	b->err = chance(0.08) ? (chance(0.5) ? -ETIMEDOUT : -EIO) : 0;
	for (unsigned k = 0; k < b->b.count; k++)
		if (chance(change))
			b->regs[k] = (uint16_t)(chance(0.3) ? 0 : rnd());
}

static double value(void)
{
	static const double res[] = {1, 0.1, 0.01, 0.001, 10};
	double v = (double)((int)below(200000) - 100000) * res[below(5)];
	return v;
}

static void step_reading(struct reading *r)
{
	for (unsigned f = 0; f < RF_COUNT; f++)
		if (chance(0.2))
			r->v[f] = chance(0.15) ? NAN : value();
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static json_t *failed_json(const struct block_result *res, unsigned n)
{
	json_t *a = json_array();
	for (unsigned i = 0; i < n; i++)
		if (res[i].err < 0)
			json_array_append_new(a, json_pack("[iiii]", res[i].b.fc, res[i].b.addr,
			                                   res[i].b.count, res[i].err));
	return a;
}

int main(int argc, char **argv)
{
	char dir[64] = "/tmp/egw-roundtrip-XXXXXX", db[128];
	struct loop *l;
	struct signer *sg;
	struct store *st;
	struct batch *b;
	FILE *out;

	if (argc != 4) {
		fprintf(stderr, "usage: batch_roundtrip OUT N SEED\n");
		return 2;
	}
	long nb = strtol(argv[2], NULL, 10);
	rng = strtoull(argv[3], NULL, 10) * 2654435761u + 88172645463325252ull;
	if (!mkdtemp(dir))
		return 1;
	snprintf(db, sizeof(db), "%s/store.db", dir);
	struct signer_config scfg = {.backend = SIGNER_SOFTWARE, .state_dir = dir};
	struct store_config stc = {.path = db};
	struct batch_config bc = {.interval = 3600 * USEC_PER_SEC, .freq_interval_ms = 100};
	if (loop_new(&l) < 0 || signer_open(&scfg, &sg) < 0 || store_open(l, &stc, &st) < 0 ||
	    batch_new(l, st, sg, &bc, &b) < 0 || !(out = fopen(argv[1], "w"))) {
		fprintf(stderr, "batch_roundtrip: setup failed\n");
		return 1;
	}
	int64_t after = 0;
	for (long n = 0; n < nb; n++) {
		unsigned ndev = below(4); /* 0..3 */
		struct gdev devs[3];
		json_t *exp_devs = json_array();
		int64_t ts = wall_ms() - 20000 + below(5000);
		for (unsigned i = 0; i < ndev; i++) {
			struct gdev *d = &devs[i];
			memset(d, 0, sizeof(*d));
			snprintf(d->id, sizeof(d->id), "dev%u", i);
			plan(d->full, &d->nfull, false, d);
			plan(d->key, &d->nkey, true, d);
			static const double rates[] = {0, 0.01, 0.2, 1};
			d->change = rates[below(4)];
			reading_clear(&d->r);
			step_reading(&d->r);
			json_array_append_new(exp_devs,
			                      json_pack("{sss[]}", "id", d->id, "polls"));
		}
		unsigned npolls = ndev ? below(16) : 0;
		for (unsigned p = 0; p < npolls; p++) {
			unsigned i = below(ndev);
			struct gdev *d = &devs[i];
			json_t *ed = NULL;
			for (size_t k = 0; k < json_array_size(exp_devs); k++)
				if (!strcmp(json_string_value(json_object_get(json_array_get(exp_devs, k),
				                                              "id")),
				            d->id))
					ed = json_array_get(exp_devs, k);
			if (chance(0.12)) {
				/* a poll that read nothing: timeout, offline, exception 2 */
				static const int errs[] = {-110, -107, -(EGW_EMB_EXCEPTION_BASE + 2)};
				int err = errs[below(3)];
				ts += below(3000);
				if (batch_add_missed(b, d->id, "prof", "SER", ts, err) < 0) {
					fprintf(stderr, "batch_roundtrip: add missed failed\n");
					return 1;
				}
				json_array_append_new(json_object_get(ed, "polls"),
				                      json_pack("{sIs{}s[]snsi}", "ts_ms", (json_int_t)ts,
				                                "raw", "failed", "reading", "missed", err));
				continue;
			}
			bool verbose = p % 4 == 0 || chance(0.3);
			struct block_result *res = verbose ? d->full : d->key;
			unsigned nres = verbose ? d->nfull : d->nkey;
			for (unsigned k = 0; k < nres; k++)
				step_block(&res[k], d->change);
			step_reading(&d->r);
			bool noreading = chance(0.1);
			ts += below(3000) - (chance(0.05) ? 2500 : 0); /* a clock step back too */
			if (batch_add_reading(b, d->id, "prof", "SER", ts, noreading ? NULL : &d->r,
			                      res, nres) < 0) {
				fprintf(stderr, "batch_roundtrip: add failed\n");
				return 1;
			}
			json_array_append_new(
			    json_object_get(ed, "polls"),
			    json_pack("{sIsosososn}", "ts_ms", (json_int_t)ts, "raw",
			              profile_raw_json(res, nres), "failed", failed_json(res, nres),
			              "reading", noreading ? json_null() : reading_to_json(&d->r),
			              "missed"));
		}
		/* drop devices that got no poll: the batch does not list them */
		for (size_t k = json_array_size(exp_devs); k-- > 0;)
			if (json_array_size(json_object_get(json_array_get(exp_devs, k), "polls")) == 0)
				json_array_remove(exp_devs, k);
		json_t *freq = json_null();
		unsigned nslots = chance(0.2) ? 0 : below(160);
		int64_t t0 = ts, mhz = 49800 + below(400);
		json_t *samples = json_array(), *missing = json_array();
		bool first = true;
		for (unsigned k = 0; k < nslots; k++) {
			int64_t nominal = t0 + (int64_t)k * 100;
			if (!first && chance(0.1)) {
				json_array_append_new(missing, json_integer(nominal));
				continue;
			}
			mhz += chance(0.05) ? (int)below(2000) - 1000 : (int)below(21) - 10;
			int jitter = first ? 0 : (int)below(81) - 40;
			if (batch_add_freq(b, "dev0", nominal + jitter, (double)mhz / 1000.0) < 0) {
				fprintf(stderr, "batch_roundtrip: freq add failed\n");
				return 1;
			}
			first = false;
			json_array_append_new(samples, json_pack("[II]", (json_int_t)nominal,
			                                         (json_int_t)mhz));
		}
		/* trailing missing slots are not representable (no sample marks
		 * the end): the batch ends at the last sample */
		while (json_array_size(missing) && json_array_size(samples) &&
		       json_integer_value(json_array_get(missing, json_array_size(missing) - 1)) >
		           json_integer_value(
		               json_array_get(json_array_get(samples, json_array_size(samples) - 1),
		                              0)))
			json_array_remove(missing, json_array_size(missing) - 1);
		if (json_array_size(samples))
			freq = json_pack("{sOsO}", "samples", samples, "missing", missing);
		json_decref(samples);
		json_decref(missing);

		if (batch_seal_now(b) < 0)
			return 1;
		usec_t end = now_usec() + 10 * USEC_PER_SEC;
		while (batch_busy(b) && now_usec() < end)
			loop_run_once(l, 10 * USEC_PER_MSEC);
		struct store_row row;
		unsigned got = 0;
		memset(&row, 0, sizeof(row));
		if (store_peek(st, after, 1, &row, &got) < 0 || got != 1 || !row.jwt) {
			fprintf(stderr, "batch_roundtrip: batch %ld not stored signed\n", n);
			return 1;
		}
		after = row.seq;
		json_t *line = json_pack("{sss{soso}}", "jwt", row.jwt, "expected", "devices",
		                         exp_devs, "frequency", freq);
		char *s = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(17));
		fprintf(out, "%s\n", s);
		free(s);
		json_decref(line);
		store_rows_clear(&row, 1);
	}
	fclose(out);
	batch_free(b);
	store_close(st);
	signer_close(sg);
	loop_free(l);
	nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}
