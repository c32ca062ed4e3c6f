/* Micro-benchmark of the profiles module: decode, encode and JSON of the
 * largest tables.  Not built by meson (one-off); build against a build dir:
 *   cc -O2 -D_GNU_SOURCE -I src -I <build> bench/profiles_bench.c <build>/libegw.a \
 *      -ljansson -lm -o /tmp/profiles_bench && /tmp/profiles_bench
 * Prints ns per call, measured over >= 0.3 s each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "profiles/profile.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static volatile double sink;

static void fill(struct reading *r)
{
	reading_clear(r);
	r->v[RF_PV_W] = -3000;
	r->v[RF_PV_TOTAL_GENERATION_WH] = 12345600;
	r->v[RF_BATTERY_W] = -1500;
	r->v[RF_BATTERY_SOC_NOM_FRACT] = 0.67;
	r->v[RF_METER_W] = 1200;
	r->v[RF_METER_HZ] = 50.02;
	r->v[RF_METER_L1_V] = 230.1;
	r->v[RF_METER_TOTAL_IMPORT_WH] = 7654300;
}

static void bench(const char *name)
{
	const struct profile *p = profile_find(name);
	struct regimage *img;
	struct reading r, got;
	struct block_result *res = calloc(p->nblocks, sizeof(*res));
	unsigned long n;
	double t0, dt;

	fill(&r);
	if (!res || regimage_new(&img) < 0)
		exit(1);
	for (n = 0, t0 = now_s(); (dt = now_s() - t0) < 0.3; n++)
		profile_encode(p, &r, NULL, img);
	printf("%-14s encode      %4u rows           %8.0f ns\n", name, p->nregs, dt / n * 1e9);
	for (unsigned i = 0; i < p->nblocks; i++) {
		res[i].b = p->blocks[i];
		res[i].err = regimage_get(img, p->blocks[i].fc, p->blocks[i].addr,
					  p->blocks[i].count, res[i].regs);
	}
	for (n = 0, t0 = now_s(); (dt = now_s() - t0) < 0.3; n++) {
		profile_decode(p, res, p->nblocks, &got);
		sink = got.v[RF_METER_HZ];
	}
	printf("%-14s decode      %4u rows %2u blocks %8.0f ns\n", name, p->nregs, p->nblocks,
	       dt / n * 1e9);
	for (n = 0, t0 = now_s(); (dt = now_s() - t0) < 0.3; n++) {
		json_t *j = reading_to_json(&got);
		char *s = json_dumps(j, JSON_COMPACT);
		sink = (double)strlen(s);
		free(s);
		json_decref(j);
	}
	printf("%-14s reading json                    %8.0f ns\n", name, dt / n * 1e9);
	for (n = 0, t0 = now_s(); (dt = now_s() - t0) < 0.3; n++) {
		json_t *j = profile_raw_json(res, p->nblocks);
		sink = (double)json_object_size(j);
		json_decref(j);
	}
	printf("%-14s raw json    (%4.0f registers)    %8.0f ns\n", name, sink, dt / n * 1e9);
	regimage_free(img);
	free(res);
}

int main(void)
{
	bench("deye");
	bench("huawei_hybrid");
	bench("sunspec");
	bench("sdm630");
	return 0;
}
