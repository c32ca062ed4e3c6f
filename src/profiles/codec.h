/* Private to src/profiles: the table of per-type codecs shared by decode and
 * encode, and word-order helpers. */
#pragma once

#include <stdint.h>

#include "profiles/profile.h"

struct reg_codec {
	unsigned words;                           /* natural size; 0: raw-only type */
	int (*decode)(uint64_t raw, double *ret); /* -EGW_EUNAVAILABLE for sentinels */
	uint64_t (*encode)(double v);             /* NAN / out of range -> sentinel */
	double min, max;                          /* encodable raw range */
};

extern const struct reg_codec reg_codecs[REG_TYPE_COUNT];

#define MAX_U32(a, b) ((a) > (b) ? (a) : (b))

/* n (1..4) words as on the wire -> integer, honouring word order. */
uint64_t reg_words_get(const uint16_t *w, unsigned n, uint8_t order);
void reg_words_put(uint64_t raw, unsigned n, uint8_t order, uint16_t *w);

/* Decoded value before any scaling. */
int reg_decode_raw(const struct reg_def *d, const uint16_t *words, double *ret_value);

/* SunSpec model tables (sunspec.c), used by the template and the builder. */
int sunspec_fill(uint16_t base_addr, const struct sunspec_model_hdr *models, unsigned n,
		 struct reg_def *regs, unsigned cap, unsigned *ret_n);
