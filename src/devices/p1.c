/* The P1 telegram parser; see p1.h. */
#include "devices/p1.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "base/util.h"

enum p1_state { ST_IDLE, ST_BODY, ST_CRC };

struct p1_parser {
	p1_telegram_cb cb;
	void *ud;
	enum p1_state st;
	size_t len;
	char crc[4];
	unsigned ncrc;
	struct p1_stats stats;
	char buf[P1_TELEGRAM_MAX];
};

uint16_t p1_crc16(const void *data, size_t n)
{
	const uint8_t *b = data;
	uint16_t crc = 0;

	for (size_t i = 0; i < n; i++) {
		crc ^= b[i];
		for (int k = 0; k < 8; k++)
			crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
	}
	return crc;
}

/* ---- decoding ------------------------------------------------------------- */

enum dim { DIM_W, DIM_WH, DIM_V, DIM_A };

/* The electricity quantities read (channel 1-0), before they are combined. */
enum slot {
	S_IMP_W,
	S_EXP_W,
	S_L1_IMP_W,
	S_L1_EXP_W,
	S_L2_IMP_W,
	S_L2_EXP_W,
	S_L3_IMP_W,
	S_L3_EXP_W,
	S_L1_V,
	S_L2_V,
	S_L3_V,
	S_L1_A,
	S_L2_A,
	S_L3_A,
	S_IMP_WH,
	S_IMP_T1_WH,
	S_IMP_T2_WH,
	S_EXP_WH,
	S_EXP_T1_WH,
	S_EXP_T2_WH,
	S_COUNT
};

static const struct obis_map {
	uint8_t c, d, e;
	enum dim dim;
} obis_map[S_COUNT] = {
	[S_IMP_W] = { 1, 7, 0, DIM_W },      [S_EXP_W] = { 2, 7, 0, DIM_W },
	[S_L1_IMP_W] = { 21, 7, 0, DIM_W },  [S_L1_EXP_W] = { 22, 7, 0, DIM_W },
	[S_L2_IMP_W] = { 41, 7, 0, DIM_W },  [S_L2_EXP_W] = { 42, 7, 0, DIM_W },
	[S_L3_IMP_W] = { 61, 7, 0, DIM_W },  [S_L3_EXP_W] = { 62, 7, 0, DIM_W },
	[S_L1_V] = { 32, 7, 0, DIM_V },      [S_L2_V] = { 52, 7, 0, DIM_V },
	[S_L3_V] = { 72, 7, 0, DIM_V },      [S_L1_A] = { 31, 7, 0, DIM_A },
	[S_L2_A] = { 51, 7, 0, DIM_A },      [S_L3_A] = { 71, 7, 0, DIM_A },
	[S_IMP_WH] = { 1, 8, 0, DIM_WH },    [S_IMP_T1_WH] = { 1, 8, 1, DIM_WH },
	[S_IMP_T2_WH] = { 1, 8, 2, DIM_WH }, [S_EXP_WH] = { 2, 8, 0, DIM_WH },
	[S_EXP_T1_WH] = { 2, 8, 1, DIM_WH }, [S_EXP_T2_WH] = { 2, 8, 2, DIM_WH },
};

/* Units by dimension with their power of ten. */
static const struct unit_def {
	const char *name;
	enum dim dim;
	int exp10;
} units[] = {
	{ "W", DIM_W, 0 },    { "kW", DIM_W, 3 }, { "Wh", DIM_WH, 0 },
	{ "kWh", DIM_WH, 3 }, { "V", DIM_V, 0 },  { "A", DIM_A, 0 },
};

/* A decimal number: value = m * 10^-dec (exact while m < 2^53). */
struct num {
	int64_t m;
	int dec;
};

/* "[-]digits[.digits]" over [s, end); returns the end of the number or NULL. */
static const char *parse_num(const char *s, const char *end, struct num *ret)
{
	bool neg = false, dot = false;
	unsigned digits = 0, sig = 0;
	struct num n = { 0, 0 };

	if (s < end && *s == '-') {
		neg = true;
		s++;
	}
	for (; s < end; s++) {
		if (*s == '.' && !dot) {
			dot = true;
		} else if (*s >= '0' && *s <= '9') {
			/* leading zeros are padding; beyond 15 significant digits a
			 * double no longer holds the number exactly */
			digits++;
			if ((n.m || *s != '0') && ++sig > 15)
				return NULL;
			n.m = n.m * 10 + (*s - '0');
			n.dec += dot;
		} else {
			break;
		}
	}
	if (!digits)
		return NULL;
	if (neg)
		n.m = -n.m;
	*ret = n;
	return s;
}

/* The number scaled by 10^exp10, at its resolution. */
static double num_value(struct num n, int exp10)
{
	int e = exp10 - n.dec;
	double v = (double)n.m;

	for (; e > 0; e--)
		v *= 10;
	if (e < 0) {
		double div = 1;
		for (int k = e; k < 0; k++)
			div *= 10;
		v = reading_round(v / div, -e);
	}
	return v;
}

/* "C.D.E" after "A-B:": returns the pointer after E, or NULL. */
static const char *parse_obis(const char *s, const char *end, unsigned f[5])
{
	static const char seps[] = "-:..";
	for (int i = 0; i < 5; i++) {
		unsigned v = 0, nd = 0;
		while (s < end && *s >= '0' && *s <= '9' && nd < 4) {
			v = v * 10 + (unsigned)(*s++ - '0');
			nd++;
		}
		if (!nd)
			return NULL;
		f[i] = v;
		if (i < 4) {
			if (s >= end || *s != seps[i])
				return NULL;
			s++;
		}
	}
	return s;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* 96.1.1: hex-encoded ASCII when it decodes to printable text, else as sent. */
static void set_serial(struct p1_telegram *t, const char *s, size_t n)
{
	char out[P1_SERIAL_LEN];
	bool hex = n > 0 && n % 2 == 0 && n / 2 < sizeof(out);

	for (size_t i = 0; hex && i < n; i += 2) {
		int hi = hexval(s[i]), lo = hexval(s[i + 1]);
		int c = hi * 16 + lo;
		if (hi < 0 || lo < 0 || c < 0x21 || c > 0x7e)
			hex = false;
		else
			out[i / 2] = (char)c;
	}
	if (hex) {
		out[n / 2] = '\0';
	} else {
		n = MIN(n, sizeof(out) - 1);
		for (size_t i = 0; i < n; i++)
			out[i] = (s[i] > 0x20 && s[i] < 0x7f) ? s[i] : '?';
		out[n] = '\0';
	}
	memcpy(t->serial, out, sizeof(out));
}

/* "YYMMDDhhmmssX" in [s, end) (X: S summer time, W winter time; DSMR
 * meters keep Central European time): milliseconds since the epoch, or 0
 * when it is not such a time. */
static int64_t mbus_time(const char *s, const char *end)
{
	int v[6];
	struct tm tm = { 0 };
	time_t t;

	if (end - s < 14 || s[13] != ')' || (s[12] != 'S' && s[12] != 'W'))
		return 0;
	for (int i = 0; i < 6; i++) {
		if (s[2 * i] < '0' || s[2 * i] > '9' || s[2 * i + 1] < '0' || s[2 * i + 1] > '9')
			return 0;
		v[i] = (s[2 * i] - '0') * 10 + (s[2 * i + 1] - '0');
	}
	if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 || v[5] > 59)
		return 0;
	tm.tm_year = 100 + v[0];
	tm.tm_mon = v[1] - 1;
	tm.tm_mday = v[2];
	tm.tm_hour = v[3];
	tm.tm_min = v[4];
	tm.tm_sec = v[5];
	t = timegm(&tm);
	if (t == (time_t)-1)
		return 0;
	return ((int64_t)t - (s[12] == 'S' ? 7200 : 3600)) * 1000;
}

/* One line (no CR/LF). */
static void decode_line(struct p1_telegram *t, const char *s, const char *end, double *slot,
			bool *have)
{
	unsigned f[5];
	const char *p = parse_obis(s, end, f), *open, *close, *star;
	struct num n;

	if (!p || p >= end || *p != '(')
		return;
	t->lines++;
	/* The value: the last "(...)" group of the line. */
	open = NULL;
	for (const char *q = p; q < end; q++)
		if (*q == '(')
			open = q;
	close = memchr(open, ')', (size_t)(end - open));
	if (!close)
		return;
	open++;

	if (f[0] == 0 && f[1] == 0 && f[2] == 96 && f[3] == 1 && f[4] == 1) {
		/* the first group: 96.1.1 has one */
		const char *c0 = memchr(p, ')', (size_t)(end - p));
		set_serial(t, p + 1, (size_t)(c0 - p - 1));
		t->lines_used++;
		return;
	}
	if (f[0] == 0 && f[1] >= 1 && f[1] <= P1_MBUS_MAX && f[2] == 24) {
		struct p1_mbus *mb = &t->mbus[f[1] - 1];
		const char *first = p; /* the line's first '(' */
		if (f[3] == 1 && f[4] == 0) {
			if (parse_num(open, close, &n) == close && n.dec == 0 && n.m >= 0 &&
			    n.m < 256) {
				mb->type = (unsigned)n.m;
				t->lines_used++;
			}
			return;
		}
		if (f[3] != 2)
			return;
		p = parse_num(open, close, &n);
		if (!p || p >= close || *p != '*' || (size_t)(close - p - 1) >= sizeof(mb->unit))
			return;
		mb->present = true;
		mb->value = num_value(n, 0);
		memcpy(mb->unit, p + 1, (size_t)(close - p - 1));
		mb->unit[close - p - 1] = '\0';
		/* the first of two groups: when the meter took the reading */
		mb->ts_ms = open - 1 > first ? mbus_time(first + 1, open - 1) : 0;
		t->lines_used++;
		return;
	}
	if (f[0] != 1 || f[1] != 0)
		return;
	for (unsigned k = 0; k < S_COUNT; k++) {
		const struct obis_map *m = &obis_map[k];
		if (m->c != f[2] || m->d != f[3] || m->e != f[4])
			continue;
		p = parse_num(open, close, &n);
		if (!p || p >= close || *p != '*')
			return;
		star = p + 1;
		for (size_t u = 0; u < ARRAY_SIZE(units); u++)
			if (units[u].dim == m->dim &&
			    strlen(units[u].name) == (size_t)(close - star) &&
			    memcmp(units[u].name, star, (size_t)(close - star)) == 0) {
				slot[k] = num_value(n, units[u].exp10);
				have[k] = true;
				t->lines_used++;
			}
		return;
	}
}

static void set_diff(struct reading *r, enum reading_field f, const double *slot, const bool *have,
		     enum slot a, enum slot b)
{
	if (have[a] && have[b])
		r->v[f] = slot[a] - slot[b];
}

static void set_total(struct reading *r, enum reading_field f, const double *slot, const bool *have,
		      enum slot all, enum slot t1, enum slot t2)
{
	if (have[all])
		r->v[f] = slot[all];
	else if (have[t1] || have[t2])
		r->v[f] = (have[t1] ? slot[t1] : 0) + (have[t2] ? slot[t2] : 0);
}

int p1_decode(const char *text, size_t len, struct p1_telegram *ret)
{
	struct p1_telegram t;
	double slot[S_COUNT] = { 0 };
	bool have[S_COUNT] = { false };
	const char *s = text, *end = text + len, *eol;
	size_t hl;

	if (len < 2 || text[0] != '/' || text[len - 1] != '!')
		return -EGW_EFRAME;
	memset(&t, 0, sizeof(t));
	reading_clear(&t.r);

	eol = memchr(s, '\n', len);
	if (!eol)
		eol = end - 1;
	hl = (size_t)(eol - s - 1);
	while (hl && (s[hl] == '\r' || s[hl] == '\n'))
		hl--;
	hl = MIN(hl, sizeof(t.header) - 1);
	for (size_t i = 0; i < hl; i++)
		t.header[i] = (s[i + 1] >= 0x20 && s[i + 1] < 0x7f) ? s[i + 1] : '?';

	for (s = eol; s < end; s = eol + 1) {
		const char *le;
		eol = memchr(s, '\n', (size_t)(end - s));
		if (!eol)
			eol = end;
		le = eol;
		while (le > s && (le[-1] == '\r' || le[-1] == '!'))
			le--;
		decode_line(&t, s, le, slot, have);
	}

	set_diff(&t.r, RF_METER_W, slot, have, S_IMP_W, S_EXP_W);
	set_diff(&t.r, RF_METER_L1_W, slot, have, S_L1_IMP_W, S_L1_EXP_W);
	set_diff(&t.r, RF_METER_L2_W, slot, have, S_L2_IMP_W, S_L2_EXP_W);
	set_diff(&t.r, RF_METER_L3_W, slot, have, S_L3_IMP_W, S_L3_EXP_W);
	if (have[S_L1_V])
		t.r.v[RF_METER_L1_V] = slot[S_L1_V];
	if (have[S_L2_V])
		t.r.v[RF_METER_L2_V] = slot[S_L2_V];
	if (have[S_L3_V])
		t.r.v[RF_METER_L3_V] = slot[S_L3_V];
	if (have[S_L1_A])
		t.r.v[RF_METER_L1_A] = slot[S_L1_A];
	if (have[S_L2_A])
		t.r.v[RF_METER_L2_A] = slot[S_L2_A];
	if (have[S_L3_A])
		t.r.v[RF_METER_L3_A] = slot[S_L3_A];
	set_total(&t.r, RF_METER_TOTAL_IMPORT_WH, slot, have, S_IMP_WH, S_IMP_T1_WH, S_IMP_T2_WH);
	set_total(&t.r, RF_METER_TOTAL_EXPORT_WH, slot, have, S_EXP_WH, S_EXP_T1_WH, S_EXP_T2_WH);
	/* The first gas and the first water meter in m3 (another unit, such as
	 * GJ of heat, is no volume). */
	for (unsigned k = P1_MBUS_MAX; k-- > 0;) {
		const struct p1_mbus *mb = &t.mbus[k];
		enum reading_field f = mb->type == P1_MBUS_GAS ? RF_GAS_TOTAL_M3
			: mb->type == P1_MBUS_WATER            ? RF_WATER_TOTAL_M3
							       : RF_COUNT;
		if (mb->present && f != RF_COUNT && strcmp(mb->unit, "m3") == 0 && mb->value >= 0)
			t.r.v[f] = mb->value;
	}
	/* Sums and differences of values at different resolutions (V with one
	 * decimal, kW with two) land on the finer one. */
	for (unsigned f = 0; f < RF_COUNT; f++)
		if (!isnan(t.r.v[f]))
			t.r.v[f] = reading_round(t.r.v[f], 3);
	*ret = t;
	return 0;
}

/* ---- framing -------------------------------------------------------------- */

int p1_parser_new(p1_telegram_cb cb, void *ud, struct p1_parser **ret)
{
	struct p1_parser *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->cb = cb;
	p->ud = ud;
	*ret = p;
	return 0;
}

void p1_parser_free(struct p1_parser *p)
{
	free(p);
}

void p1_parser_reset(struct p1_parser *p)
{
	p->st = ST_IDLE;
	p->len = 0;
	p->ncrc = 0;
}

void p1_parser_stats(const struct p1_parser *p, struct p1_stats *ret)
{
	*ret = p->stats;
}

static void start(struct p1_parser *p)
{
	p->st = ST_BODY;
	p->buf[0] = '/';
	p->len = 1;
	p->ncrc = 0;
}

/* The telegram is complete (with ncrc CRC digits). */
static void finish(struct p1_parser *p)
{
	struct p1_telegram t;

	p->st = ST_IDLE;
	if (p->ncrc) {
		unsigned want = 0;
		if (p->ncrc != 4) {
			p->stats.crc_errors++;
			return;
		}
		for (unsigned i = 0; i < 4; i++)
			want = want * 16 + (unsigned)hexval(p->crc[i]);
		if (want != p1_crc16(p->buf, p->len)) {
			p->stats.crc_errors++;
			return;
		}
	}
	if (p1_decode(p->buf, p->len, &t) < 0)
		return;
	t.crc = p->ncrc == 4;
	p->stats.telegrams++;
	if (p->cb)
		p->cb(p->ud, &t);
}

void p1_parser_feed(struct p1_parser *p, const void *data, size_t n)
{
	const char *b = data;

	for (size_t i = 0; i < n; i++) {
		char c = b[i];
		switch (p->st) {
		case ST_IDLE:
			if (c == '/')
				start(p);
			else
				p->stats.skipped++;
			break;
		case ST_BODY:
			if (c == '/') {
				p->stats.cut++;
				start(p);
				break;
			}
			if (p->len == sizeof(p->buf)) {
				p->stats.oversize++;
				p->st = ST_IDLE;
				break;
			}
			p->buf[p->len++] = c;
			if (c == '!')
				p->st = ST_CRC;
			break;
		case ST_CRC:
			if (hexval(c) >= 0) {
				p->crc[p->ncrc++] = c;
				if (p->ncrc == 4)
					finish(p);
				break;
			}
			finish(p);
			if (c == '/')
				start(p);
			break;
		}
	}
}
