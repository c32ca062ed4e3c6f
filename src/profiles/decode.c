/* Decode side: decoders by type, register lookup in block results, the block
 * planner, the raw map and the serial. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "profiles/codec.h"
#include "profiles/profile.h"

/* ---- decoders by type --------------------------------------------------- */

static int dec_u16(uint64_t raw, double *ret)
{
	if (raw == 0xFFFF)
		return -EGW_EUNAVAILABLE;
	*ret = (double)raw;
	return 0;
}

static int dec_i16(uint64_t raw, double *ret)
{
	if (raw == 0x8000 || raw == 0x7FFF)
		return -EGW_EUNAVAILABLE;
	*ret = (double)(int16_t)(uint16_t)raw;
	return 0;
}

static int dec_u32(uint64_t raw, double *ret)
{
	if (raw == 0xFFFFFFFFu)
		return -EGW_EUNAVAILABLE;
	*ret = (double)raw;
	return 0;
}

static int dec_i32(uint64_t raw, double *ret)
{
	if (raw == 0x80000000u || raw == 0x7FFFFFFFu)
		return -EGW_EUNAVAILABLE;
	*ret = (double)(int32_t)(uint32_t)raw;
	return 0;
}

static int dec_u64(uint64_t raw, double *ret)
{
	if (raw == UINT64_MAX)
		return -EGW_EUNAVAILABLE;
	*ret = (double)raw;
	return 0;
}

static int dec_f32(uint64_t raw, double *ret)
{
	uint32_t bits = (uint32_t)raw;
	float f;

	memcpy(&f, &bits, sizeof(f));
	if (!isfinite(f))
		return -EGW_EUNAVAILABLE;
	*ret = (double)f;
	return 0;
}

/* Encoders: the inverse, NAN or out of range -> the type's sentinel. */
static uint64_t enc_u16(double v)
{
	return (isnan(v) || v < 0 || v > 0xFFFE) ? 0xFFFF : (uint64_t)llround(v);
}

static uint64_t enc_i16(double v)
{
	if (isnan(v) || v < -0x7FFF || v > 0x7FFE)
		return 0x8000;
	return (uint16_t)(int16_t)llround(v);
}

static uint64_t enc_u32(double v)
{
	return (isnan(v) || v < 0 || v > 4294967294.0) ? 0xFFFFFFFFu : (uint64_t)llround(v);
}

static uint64_t enc_i32(double v)
{
	if (isnan(v) || v < -2147483647.0 || v > 2147483646.0)
		return 0x80000000u;
	return (uint32_t)(int32_t)llround(v);
}

static uint64_t enc_u64(double v)
{
	if (isnan(v) || v < 0 || v >= 18446744073709549568.0)
		return UINT64_MAX;
	return (uint64_t)round(v); /* llround would overflow above 2^63 */
}

static uint64_t enc_f32(double v)
{
	float f = (float)v; /* NAN stays NaN: the F32 sentinel */
	uint32_t bits;

	memcpy(&bits, &f, sizeof(bits));
	return bits;
}

const struct reg_codec reg_codecs[REG_TYPE_COUNT] = {
	[REG_U16] = { .words = 1, .decode = dec_u16, .encode = enc_u16, .min = 0, .max = 0xFFFE },
	[REG_I16] = { .words = 1,
		      .decode = dec_i16,
		      .encode = enc_i16,
		      .min = -0x7FFF,
		      .max = 0x7FFE },
	[REG_U32] = { .words = 2,
		      .decode = dec_u32,
		      .encode = enc_u32,
		      .min = 0,
		      .max = 4294967294.0 },
	[REG_I32] = { .words = 2,
		      .decode = dec_i32,
		      .encode = enc_i32,
		      .min = -2147483647.0,
		      .max = 2147483646.0 },
	[REG_U64] = { .words = 4, .decode = dec_u64, .encode = enc_u64, .min = 0, .max = 1e19 },
	[REG_F32] = { .words = 2, .decode = dec_f32, .encode = enc_f32, .min = -3e38, .max = 3e38 },
	/* STR, MLD, BYTES: words 0, no decoder (raw only) */
};

uint64_t reg_words_get(const uint16_t *w, unsigned n, uint8_t order)
{
	uint64_t raw = 0;

	for (unsigned i = 0; i < n; i++)
		raw = (raw << 16) | w[order == WO_LITTLE ? n - 1 - i : i];
	return raw;
}

void reg_words_put(uint64_t raw, unsigned n, uint8_t order, uint16_t *w)
{
	for (unsigned i = 0; i < n; i++) {
		uint16_t word = (uint16_t)(raw >> (16 * (n - 1 - i)));
		w[order == WO_LITTLE ? n - 1 - i : i] = word;
	}
}

int reg_decode_raw(const struct reg_def *d, const uint16_t *words, double *ret_value)
{
	const struct reg_codec *c;

	if (d->type >= REG_TYPE_COUNT)
		return -EINVAL;
	c = &reg_codecs[d->type];
	if (!c->decode || d->words < c->words)
		return -EINVAL;
	return c->decode(reg_words_get(words, c->words, d->order), ret_value);
}

int reg_decode(const struct reg_def *d, const uint16_t *words, double *ret_value)
{
	double v;
	int r = reg_decode_raw(d, words, &v);

	if (r < 0)
		return r;
	*ret_value = v * d->scale;
	return 0;
}

/* ---- lookup in block results ------------------------------------------- */

static const uint16_t *find_range(uint8_t fc, uint32_t addr, unsigned words,
				  const struct block_result *res, unsigned nres)
{
	for (unsigned i = 0; i < nres; i++) {
		const struct block_result *b = &res[i];

		if (b->err < 0 || b->b.fc != fc || b->b.count > PROFILE_MAX_BLOCK)
			continue;
		if (addr >= b->b.addr && addr + words <= (uint32_t)b->b.addr + b->b.count)
			return &b->regs[addr - b->b.addr];
	}
	return NULL;
}

const uint16_t *profile_find_words(const struct reg_def *d, const struct block_result *res,
				   unsigned nres)
{
	return find_range(d->fc, d->addr, d->words, res, nres);
}

/* A SunSpec scale factor is a small exponent; anything else is garbage. */
#define SF_MIN (-10)
#define SF_MAX 10

/* The decimals a float register really carries: the fewest significant
 * digits (6..9) that give the same float back, as a count of decimals
 * (negative for a value like 1.2e5).  A float 229.8 is the double
 * 229.8000030517578; its register value is 229.8. */
static int f32_decimals(double v, double *ret_short)
{
	char buf[40];

	if (v == 0) {
		*ret_short = 0;
		return 0;
	}
	for (int p = 6; p <= 9; p++) {
		snprintf(buf, sizeof(buf), "%.*e", p - 1, v);
		double back = strtod(buf, NULL);
		if ((float)back == (float)v) {
			*ret_short = back;
			return p - 1 - (int)floor(log10(fabs(back)));
		}
	}
	*ret_short = v;
	return 9;
}

/* Decodes d into the field's unit and the resolution of one count there. */
static int decode_value(const struct reg_def *d, const struct block_result *res, unsigned nres,
			double *ret_value, double *ret_res)
{
	const uint16_t *w = profile_find_words(d, res, nres);
	double v, factor = d->scale, step = 1;
	int r;

	if (!w)
		return -ENOENT;
	r = reg_decode_raw(d, w, &v);
	if (r < 0)
		return r;
	if ((d->flags & REG_F_ZERO_NA) && v == 0)
		return -EGW_EUNAVAILABLE;
	if (d->type == REG_F32)
		step = pow(10.0, -f32_decimals(v, &v));
	if (d->sf_addr >= 0) {
		const uint16_t *sfw = find_range(d->fc, (uint32_t)d->sf_addr, 1, res, nres);

		if (sfw) {
			int16_t sf = (int16_t)sfw[0];

			if (sf < SF_MIN || sf > SF_MAX)
				return -EGW_EUNAVAILABLE; /* 0x8000 "not implemented" included */
			factor = pow(10.0, sf);
		} else if (d->scale == 0) {
			return -ENOENT; /* no fallback: the sf must be read */
		}                       /* else the listed factor is the fallback */
	}
	v *= factor;
	step *= factor;
	if (d->field >= 0) {
		v = v * d->mul + d->add;
		step *= fabs(d->mul);
	}
	*ret_value = v;
	*ret_res = step;
	return 0;
}

int profile_decode_value(const struct reg_def *d, const struct block_result *res, unsigned nres,
			 double *ret_value)
{
	double v, step;
	int r = decode_value(d, res, nres, &v, &step);

	if (r < 0)
		return r;
	*ret_value = reading_round(v, reading_decimals(step)); /* also no "-0.0" */
	return 0;
}

int profile_decode(const struct profile *p, const struct block_result *res, unsigned nres,
		   struct reading *ret)
{
	struct reading r;
	bool sum_bad[RF_COUNT] = { false };
	int dec[RF_COUNT];
	int n = 0;

	reading_clear(&r);
	for (unsigned f = 0; f < RF_COUNT; f++)
		dec[f] = -1; /* no register decoded into it (yet) */
	for (unsigned i = 0; i < p->nregs; i++) {
		const struct reg_def *d = &p->regs[i];
		double v, step;
		int dv;

		if (d->field < 0 || d->field >= RF_COUNT)
			continue;
		if (decode_value(d, res, nres, &v, &step) < 0) {
			/* a sum with a missing part is not the sum */
			if (d->flags & REG_F_SUM)
				sum_bad[d->field] = true;
			continue;
		}
		dv = reading_decimals(step);
		v = reading_round(v, dv);
		if ((d->flags & REG_F_SUM) && !isnan(r.v[d->field])) {
			r.v[d->field] += v;
			dec[d->field] = dv > dec[d->field] ? dv : dec[d->field];
		} else {
			r.v[d->field] = v;
			dec[d->field] = dv;
		}
	}
	for (unsigned f = 0; f < RF_COUNT; f++)
		if (sum_bad[f])
			r.v[f] = NAN;
	if (p->fixup) {
		int e = p->fixup(p, res, nres, &r);
		if (e < 0)
			return e;
	}
	for (unsigned f = 0; f < RF_COUNT; f++) {
		/* sums and fixups add and scale: back to the registers' resolution */
		if (dec[f] >= 0)
			r.v[f] = reading_round(r.v[f], dec[f]);
		/* a lifetime counter reading 0 is a device that does not keep it
		 * (or has not started it): never a value */
		if (reading_fields[f].total && r.v[f] == 0)
			r.v[f] = NAN;
		if (!isnan(r.v[f]))
			n++;
	}
	*ret = r;
	return n;
}

size_t reg_ascii(const uint16_t *w, unsigned n, char *out, size_t cap)
{
	size_t len = 0;

	if (!cap)
		return 0;
	for (unsigned i = 0; i < n && len + 2 < cap; i++) {
		char c[2] = { (char)(w[i] >> 8), (char)(w[i] & 0xFF) };
		for (unsigned k = 0; k < 2; k++)
			if (c[k] > ' ' && c[k] < 0x7F)
				out[len++] = c[k];
			else if (c[k] == ' ' && len > 0)
				out[len++] = ' '; /* inner spaces kept, trailing trimmed below */
	}
	while (len > 0 && out[len - 1] == ' ')
		len--;
	out[len] = '\0';
	return len;
}

int profile_decode_serial(const struct profile *p, const struct block_result *res, unsigned nres,
			  char *buf, size_t cap)
{
	const struct reg_def *d = p->serial;
	const uint16_t *w;
	char tmp[2 * 256 + 1];
	size_t len = 0;

	if (!d)
		return -ENOENT;
	w = profile_find_words(d, res, nres);
	if (!w)
		return -ENOENT;
	if (d->type == REG_STR) {
		len = reg_ascii(w, d->words, tmp, sizeof(tmp));
	} else {
		double v;
		int r = reg_decode_raw(d, w, &v);
		uint64_t raw;

		if (r < 0)
			return r;
		raw = reg_words_get(w, reg_codecs[d->type].words, d->order);
		if (d->type == REG_I16 || d->type == REG_I32)
			len = (size_t)snprintf(tmp, sizeof(tmp), "%" PRId64, (int64_t)v);
		else if (d->type == REG_F32)
			return -EINVAL;
		else
			len = (size_t)snprintf(tmp, sizeof(tmp), "%" PRIu64, raw);
	}
	if (len == 0)
		return -EGW_EUNAVAILABLE;
	if (len + 1 > cap)
		return -ENOSPC;
	memcpy(buf, tmp, len + 1);
	return (int)len;
}

/* ---- block planner ------------------------------------------------------ */

struct span {
	uint8_t fc;
	uint32_t addr;
	uint32_t end; /* exclusive */
};

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	if (x->fc != y->fc)
		return x->fc < y->fc ? -1 : 1;
	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return 0;
}

static int plan_spans(struct span *s, unsigned n, struct mb_block *ret, unsigned cap)
{
	unsigned nb = 0;

	qsort(s, n, sizeof(*s), span_cmp);
	for (unsigned i = 0; i < n;) {
		uint8_t fc = s[i].fc;
		uint32_t start = s[i].addr, end = s[i].end;
		unsigned j = i + 1;

		for (; j < n; j++) {
			uint32_t nend = MAX_U32(end, s[j].end);
			if (s[j].fc != fc || s[j].addr > end + PROFILE_PLAN_MAX_GAP ||
			    nend - start > PROFILE_MAX_BLOCK)
				break;
			end = nend;
		}
		if (nb >= cap)
			return -ENOSPC;
		ret[nb++] = (struct mb_block){ .fc = fc,
					       .addr = (uint16_t)start,
					       .count = (uint16_t)(end - start) };
		i = j;
	}
	return (int)nb;
}

static int span_of(const struct reg_def *d, struct span *ret)
{
	if (d->words == 0 || d->words > PROFILE_MAX_BLOCK || (uint32_t)d->addr + d->words > 0x10000)
		return -EINVAL;
	*ret = (struct span){ .fc = d->fc, .addr = d->addr, .end = (uint32_t)d->addr + d->words };
	return 0;
}

int profile_plan(const struct reg_def *regs, unsigned n, struct mb_block *ret, unsigned cap)
{
	struct span *s;
	int r;

	if (n == 0)
		return 0;
	s = calloc(n, sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		r = span_of(&regs[i], &s[i]);
		if (r < 0)
			goto out_free;
	}
	r = plan_spans(s, n, ret, cap);
out_free:
	free(s);
	return r;
}

#define KEY_PLAN_MAX 64

/* The rows selected plus the sf register of each, as spans. */
static int plan_with_sf(const struct reg_def *const *sel, unsigned n, struct mb_block *ret,
			unsigned cap)
{
	struct span s[2 * KEY_PLAN_MAX];
	unsigned ns = 0;

	if (n > KEY_PLAN_MAX)
		return -E2BIG;
	for (unsigned i = 0; i < n; i++) {
		int r = span_of(sel[i], &s[ns]);
		if (r < 0)
			return r;
		ns++;
		if (sel[i]->sf_addr >= 0)
			s[ns++] = (struct span){ .fc = sel[i]->fc,
						 .addr = (uint32_t)sel[i]->sf_addr,
						 .end = (uint32_t)sel[i]->sf_addr + 1 };
	}
	return plan_spans(s, ns, ret, cap);
}

static bool block_holds(const struct mb_block *b, uint8_t fc, uint32_t addr, uint32_t end)
{
	return b->fc == fc && addr >= b->addr && end <= (uint32_t)b->addr + b->count;
}

/* Short reads of a profile whose [key] rows are only identity and frequency
 * (short_reads_fields): the registers behind every reading field, with
 * their sf registers, each block of the plan cut out of one of p->blocks
 * (so a short read never asks for a register the verbose reads do not
 * already read), the registers its fixup reads (short_extra), and the
 * [key] rows outside the blocks on their own. */
static int plan_fields(const struct profile *p, struct mb_block *ret, unsigned cap)
{
	const struct reg_def *out[KEY_PLAN_MAX];
	struct span s[2 * KEY_PLAN_MAX];
	unsigned nout = 0, nb = 0;
	int r;

	for (unsigned b = 0; b < p->nblocks; b++) {
		const struct mb_block *blk = &p->blocks[b];
		unsigned ns = 0;
		for (unsigned i = 0; i < p->nregs + p->nshort_extra; i++) {
			bool extra = i >= p->nregs;
			const struct reg_def *d =
				extra ? &p->short_extra[i - p->nregs] : &p->regs[i];
			struct span sp;
			bool key = d->tag == TAG_KEY || (d->flags & REG_F_KEY);
			if ((d->field < 0 && !key && !extra) || span_of(d, &sp) < 0)
				continue;
			if (ns + 2 > 2 * KEY_PLAN_MAX)
				return -E2BIG;
			if (block_holds(blk, sp.fc, sp.addr, sp.end))
				s[ns++] = sp;
			/* the sf goes with the block that holds it (a SunSpec
			 * model may span two blocks) */
			if (d->sf_addr >= 0 &&
			    block_holds(blk, d->fc, (uint32_t)d->sf_addr, (uint32_t)d->sf_addr + 1))
				s[ns++] = (struct span){ .fc = d->fc,
							 .addr = (uint32_t)d->sf_addr,
							 .end = (uint32_t)d->sf_addr + 1 };
		}
		if (ns == 0)
			continue;
		r = plan_spans(s, ns, ret + nb, cap - nb);
		if (r < 0)
			return r;
		nb += (unsigned)r;
	}
	/* [key] rows no block covers (some serial registers) */
	for (unsigned i = 0; i < p->nregs; i++) {
		const struct reg_def *d = &p->regs[i];
		bool covered = false;
		if (d->tag != TAG_KEY && !(d->flags & REG_F_KEY))
			continue;
		for (unsigned b = 0; b < p->nblocks && !covered; b++)
			covered = block_holds(&p->blocks[b], d->fc, d->addr,
					      (uint32_t)d->addr + d->words);
		if (covered)
			continue;
		if (nout >= KEY_PLAN_MAX)
			return -E2BIG;
		out[nout++] = d;
	}
	if (nout == 0)
		return (int)nb;
	r = plan_with_sf(out, nout, ret + nb, cap - nb);
	return r < 0 ? r : (int)nb + r;
}

int profile_plan_key(const struct profile *p, struct mb_block *ret, unsigned cap)
{
	const struct reg_def *sel[KEY_PLAN_MAX];
	unsigned n = 0;

	if (p->short_reads_fields && p->nblocks > 0)
		return plan_fields(p, ret, cap);
	for (unsigned i = 0; i < p->nregs; i++) {
		if (p->regs[i].tag != TAG_KEY && !(p->regs[i].flags & REG_F_KEY))
			continue;
		if (n >= KEY_PLAN_MAX)
			return -E2BIG;
		sel[n++] = &p->regs[i];
	}
	return plan_with_sf(sel, n, ret, cap);
}

int profile_plan_one(const struct reg_def *d, struct mb_block *ret, unsigned cap)
{
	return plan_with_sf(&d, 1, ret, cap);
}

/* ---- raw map ------------------------------------------------------------ */

json_t *profile_raw_json(const struct block_result *res, unsigned nres)
{
	/* input first, then holding: in the address-keyed map holding wins */
	static const uint8_t order[] = { REG_FC_INPUT, REG_FC_HOLDING };
	json_t *obj = json_object();

	if (!obj)
		return NULL;
	for (unsigned o = 0; o < sizeof(order); o++) {
		for (unsigned i = 0; i < nres; i++) {
			const struct block_result *b = &res[i];

			if (b->err < 0 || b->b.fc != order[o] || b->b.count > PROFILE_MAX_BLOCK)
				continue;
			for (unsigned k = 0; k < b->b.count; k++) {
				char key[8];

				snprintf(key, sizeof(key), "%u", (unsigned)b->b.addr + k);
				if (json_object_set_new(obj, key, json_integer(b->regs[k])) < 0)
					goto fail_obj;
			}
		}
	}
	return obj;

fail_obj:
	json_decref(obj);
	return NULL;
}
