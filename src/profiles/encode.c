/* Encode side: the register image egw-sim serves, and the inverse of decode. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/util.h"
#include "profiles/codec.h"
#include "profiles/profile.h"

#define NREGS 65536u

struct regimage {
	uint16_t regs[2][NREGS]; /* [0] holding, [1] input */
	uint64_t defined[2][NREGS / 64];
};

static int fc_index(uint8_t fc)
{
	return fc == REG_FC_HOLDING ? 0 : fc == REG_FC_INPUT ? 1 : -1;
}

int regimage_new(struct regimage **ret)
{
	struct regimage *img = calloc(1, sizeof(*img));

	if (!img)
		return -ENOMEM;
	*ret = img;
	return 0;
}

void regimage_free(struct regimage *img)
{
	free(img);
}

bool regimage_defined(const struct regimage *img, uint8_t fc, uint16_t addr)
{
	int t = fc_index(fc);

	return t >= 0 && (img->defined[t][addr / 64] >> (addr % 64)) & 1;
}

int regimage_get(const struct regimage *img, uint8_t fc, uint16_t addr, uint16_t count,
		 uint16_t *out)
{
	int t = fc_index(fc);

	if (t < 0 || count == 0 || (uint32_t)addr + count > NREGS)
		return -EINVAL;
	for (uint32_t a = addr; a < (uint32_t)addr + count; a++)
		if (!regimage_defined(img, fc, (uint16_t)a))
			return -(EGW_EMB_EXCEPTION_BASE + 2);
	memcpy(out, &img->regs[t][addr], count * sizeof(*out));
	return 0;
}

void regimage_set(struct regimage *img, uint8_t fc, uint16_t addr, uint16_t value)
{
	int t = fc_index(fc);

	if (t < 0)
		return;
	img->regs[t][addr] = value;
	img->defined[t][addr / 64] |= UINT64_C(1) << (addr % 64);
}

/* Defines a range without touching registers already defined, so values a
 * caller set by hand (e.g. a model code) survive every re-encode. */
static void define_range(struct regimage *img, uint8_t fc, uint32_t addr, uint32_t count)
{
	for (uint32_t a = addr; a < addr + count && a < NREGS; a++)
		if (!regimage_defined(img, fc, (uint16_t)a))
			regimage_set(img, fc, (uint16_t)a, 0);
}

static int encode_factor(const struct reg_def *d, double value, double factor, uint16_t *ret_words)
{
	const struct reg_codec *c;
	double raw;

	if (d->type >= REG_TYPE_COUNT)
		return -EINVAL;
	c = &reg_codecs[d->type];
	if (!c->encode || d->words < c->words)
		return -EINVAL;
	raw = isnan(value) || factor == 0 ? NAN : value / factor;
	memset(ret_words, 0, d->words * sizeof(*ret_words));
	reg_words_put(c->encode(raw), c->words, d->order, ret_words);
	return 0;
}

int reg_encode(const struct reg_def *d, double value, uint16_t *ret_words)
{
	return encode_factor(d, value, d->scale, ret_words);
}

static void put_words(struct regimage *img, const struct reg_def *d, const uint16_t *w)
{
	for (unsigned k = 0; k < d->words && (uint32_t)d->addr + k < NREGS; k++)
		regimage_set(img, d->fc, (uint16_t)(d->addr + k), w[k]);
}

/* The value a mapped row must carry (before scaling) for field value f. */
static double row_value(const struct profile *p, const struct reg_def *d, const struct reading *r)
{
	double f = r->v[d->field];
	unsigned parts = 0;

	if (isnan(f) || d->mul == 0)
		return NAN;
	if (d->flags & REG_F_SUM) {
		for (unsigned i = 0; i < p->nregs; i++)
			if (p->regs[i].field == d->field && (p->regs[i].flags & REG_F_SUM))
				parts++;
		f /= parts;
	}
	return (f - d->add) / d->mul;
}

#define SF_LO (-3)
#define SF_HI 10

/* The smallest exponent that lets every value sharing this sf register fit. */
static int choose_sf(const struct profile *p, int32_t sf_addr, uint8_t fc, const struct reading *r)
{
	for (int e = SF_LO; e <= SF_HI; e++) {
		bool fits = true;

		for (unsigned i = 0; i < p->nregs && fits; i++) {
			const struct reg_def *d = &p->regs[i];
			double v;

			if (d->sf_addr != sf_addr || d->fc != fc || d->field < 0)
				continue;
			v = row_value(p, d, r);
			if (isnan(v))
				continue;
			v /= pow(10.0, e);
			if (v < reg_codecs[d->type].min || v > reg_codecs[d->type].max)
				fits = false;
		}
		if (fits)
			return e;
	}
	return SF_HI;
}

static int encode_serial(const struct reg_def *d, const char *serial, struct regimage *img)
{
	uint16_t w[256]; /* words is 8 bits wide */

	if (d->type == REG_STR) {
		size_t len = strlen(serial);
		for (unsigned i = 0; i < d->words; i++) {
			uint8_t hi = 2 * i < len ? (uint8_t)serial[2 * i] : 0;
			uint8_t lo = 2 * i + 1 < len ? (uint8_t)serial[2 * i + 1] : 0;
			w[i] = (uint16_t)(hi << 8 | lo);
		}
	} else {
		char *end;
		unsigned long long v;
		const struct reg_codec *c =
			&reg_codecs[d->type < REG_TYPE_COUNT ? d->type : REG_STR];

		errno = 0;
		v = strtoull(serial, &end, 10);
		if (!c->encode || d->type == REG_F32 || errno || *end || end == serial ||
		    d->words < c->words)
			return -EINVAL;
		memset(w, 0, d->words * sizeof(*w));
		reg_words_put(v, c->words, d->order, w);
	}
	put_words(img, d, w);
	return 0;
}

int profile_encode(const struct profile *p, const struct reading *r, const char *serial,
		   struct regimage *img)
{
	for (unsigned i = 0; i < p->nblocks; i++)
		define_range(img, p->blocks[i].fc, p->blocks[i].addr, p->blocks[i].count);
	for (unsigned i = 0; i < p->nregs; i++)
		define_range(img, p->regs[i].fc, p->regs[i].addr, p->regs[i].words);

	for (unsigned i = 0; i < p->nregs; i++) {
		const struct reg_def *d = &p->regs[i];
		uint16_t w[8];
		double v, factor = d->scale;
		int rc;

		if (d->words > 8)
			continue;
		if (d->flags & REG_F_CONST) {
			memset(w, 0, sizeof(w));
			reg_words_put((uint64_t)d->add, MIN(d->words, 4u), d->order, w);
			put_words(img, d, w);
			continue;
		}
		if (d->field < 0 || d->field >= RF_COUNT)
			continue;
		if (d->sf_addr >= 0) {
			int sf = choose_sf(p, d->sf_addr, d->fc, r);
			regimage_set(img, d->fc, (uint16_t)d->sf_addr, (uint16_t)(int16_t)sf);
			factor = pow(10.0, sf);
		}
		v = row_value(p, d, r);
		rc = encode_factor(d, v, factor, w);
		if (rc < 0)
			return rc;
		put_words(img, d, w);
	}
	if (p->encode_fixup) {
		int rc = p->encode_fixup(p, r, img);
		if (rc < 0)
			return rc;
	}
	if (serial && p->serial)
		return encode_serial(p->serial, serial, img);
	return 0;
}
