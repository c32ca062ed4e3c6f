/* Fill an egwd state directory's store with N signed batches, built by the
 * real batch pipeline (backend/batch.c: payload, ES256 JWT with the state
 * dir's software key, SQLite store) - a backlog as egwd would leave it after
 * a backend outage.  Each batch carries one inverter's 10 s of data at the
 * default rates: 10 readings (raw registers + decoded) and 100 frequency
 * samples.
 *
 *   fill_store STATE_DIR N
 *
 * Built and run by bench/drain.sh against the build dir's libegw.a. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/batch.h"
#include "base/err.h"
#include "crypto/signer.h"
#include "loop/loop.h"
#include "profiles/profile.h"
#include "profiles/reading.h"
#include "store/store.h"

int main(int argc, char **argv)
{
	struct loop *l = NULL;
	struct signer *sg = NULL;
	struct store *st = NULL;
	struct batch *b = NULL;
	char path[4096];
	int r;

	if (argc != 3) {
		fprintf(stderr, "usage: fill_store STATE_DIR N\n");
		return 2;
	}
	long n = strtol(argv[2], NULL, 10);
	snprintf(path, sizeof(path), "%s/store.db", argv[1]);
	struct signer_config scfg = {.backend = SIGNER_SOFTWARE, .state_dir = argv[1]};
	struct store_config stcfg = {.path = path};
	struct batch_config bcfg = {.interval = 24 * 3600 * USEC_PER_SEC};

	if ((r = loop_new(&l)) < 0 || (r = signer_open(&scfg, &sg)) < 0 ||
	    (r = store_open(l, &stcfg, &st)) < 0 || (r = batch_new(l, st, sg, &bcfg, &b)) < 0) {
		fprintf(stderr, "fill_store: setup: %s\n", egw_strerror(r));
		return 1;
	}
	int64_t t = wall_ms() - n * 10000;
	for (long i = 0; i < n; i++) {
		for (int k = 0; k < 10; k++) {
			struct reading rd;
			struct block_result res = {.b = {.fc = 4, .addr = 5000, .count = 24}};
			reading_clear(&rd);
			rd.v[RF_PV_W] = -3000 - (double)(i % 100);
			rd.v[RF_PV_MPPT1_V] = 410.5;
			rd.v[RF_PV_MPPT1_A] = 7.3;
			rd.v[RF_PV_TOTAL_GENERATION_WH] = 1e7 + (double)i;
			rd.v[RF_METER_HZ] = 50.0 + 0.01 * sin((double)i);
			for (int a = 0; a < 24; a++)
				res.regs[a] = (uint16_t)((i * 7 + a) & 0xffff);
			batch_add_reading(b, "inv1", "sungrow", "A2209181234", t + k * 1000, &rd,
			                  &res, 1);
		}
		for (int k = 0; k < 100; k++)
			batch_add_freq(b, "inv1", t + k * 100, 50.0 + 0.02 * sin(k / 10.0));
		t += 10000;
		if ((r = batch_seal_now(b)) < 0) {
			fprintf(stderr, "fill_store: seal: %s\n", egw_strerror(r));
			return 1;
		}
		while (batch_busy(b))
			loop_run_once(l, 100 * USEC_PER_MSEC);
	}
	struct batch_stats bs;
	struct store_stats ss;
	batch_get_stats(b, &bs);
	store_get_stats(st, &ss);
	printf("fill_store: sealed %llu, stored signed %llu, backlog %lld rows, %lld bytes, last "
	       "seq %lld\n",
	       (unsigned long long)bs.sealed, (unsigned long long)bs.stored_signed,
	       (long long)ss.backlog, (long long)ss.bytes, (long long)ss.last_seq);
	batch_free(b);
	store_close(st);
	signer_close(sg);
	loop_free(l);
	return bs.stored_signed == (uint64_t)n ? 0 : 1;
}
