/* FCR operational log: day files at 1 Hz, a 10 Hz ring (see fcrlog.h). */
#include "grid/fcrlog.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "grid/fcr.h"

#define HEADER \
	"time_utc,ts_ms,f_Hz,setpoint_W,measured_W,state,fcr_n_W,fcr_d_up_W,fcr_d_down_W," \
	"writes,write_errors,cap_fcr_n_W,cap_fcr_d_up_W,cap_fcr_d_down_W\n"
#define NFIELDS 14
#define TSO_HEADER \
	"Timestamp UTC,Frequency [Hz],Instantaneous active power [MW],Power baseline [MW]," \
	"Activated FCR-N [MW],Activated FCR-D upwards [MW],Activated FCR-D downwards [MW]," \
	"Maintained FCR-N capacity [MW],Maintained FCR-D upwards capacity [MW]," \
	"Maintained FCR-D downwards capacity [MW],Regulating strength FCR-N [MW/Hz]," \
	"Regulating strength FCR-D upwards [MW/Hz],Regulating strength FCR-D downwards " \
	"[MW/Hz],Status FCR-N,Status FCR-D upwards,Status FCR-D downwards\n"
#define DAY_MS (86400LL * 1000)

struct fcrlog {
	char dir[PATH_MAX];
	unsigned keep_days;
	FILE *f;
	int64_t day;      /* the UTC day f is open for (ms / DAY_MS) */
	int64_t last_sec; /* the second of the last line written */
	char buf[4096];
	uint64_t lines, errors;
	uint32_t pend_writes, pend_errors; /* control writes since the last line */
	struct fcr_rec ring[FCRLOG_RING];
	size_t head, len;
};

int fcrlog_new(const char *dir, unsigned keep_days, struct fcrlog **ret)
{
	struct fcrlog *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	snprintf(l->dir, sizeof(l->dir), "%s", dir);
	l->keep_days = keep_days ? keep_days : 14;
	l->day = -1;
	l->last_sec = -1;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		int r = -errno;
		free(l);
		return r;
	}
	*ret = l;
	return 0;
}

void fcrlog_free(struct fcrlog *l)
{
	if (!l)
		return;
	if (l->f)
		fclose(l->f);
	free(l);
}

static void day_path(const struct fcrlog *l, int64_t day, char *buf, size_t cap)
{
	time_t t = (time_t)(day * 86400);
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(buf, cap, "%s/fcr-%04d%02d%02d.csv", l->dir, tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday);
}

/* Deletes day files older than keep_days + 1 days before `day`. */
static void prune(struct fcrlog *l, int64_t day)
{
	DIR *d = opendir(l->dir);
	struct dirent *de;
	char keep[PATH_MAX + 64], path[PATH_MAX + 300];

	if (!d)
		return;
	day_path(l, day - (int64_t)l->keep_days - 1, keep, sizeof(keep));
	const char *kb = strrchr(keep, '/') + 1;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "fcr-", 4) || strlen(de->d_name) != strlen(kb))
			continue;
		if (strcmp(de->d_name, kb) < 0) {
			snprintf(path, sizeof(path), "%s/%s", l->dir, de->d_name);
			unlink(path);
		}
	}
	closedir(d);
}

static int open_day(struct fcrlog *l, int64_t day)
{
	char path[PATH_MAX + 64];
	struct stat st;
	bool fresh;

	if (l->f) {
		fclose(l->f);
		l->f = NULL;
	}
	day_path(l, day, path, sizeof(path));
	fresh = stat(path, &st) < 0 || st.st_size == 0;
	l->f = fopen(path, "ae");
	if (!l->f)
		return -errno;
	setvbuf(l->f, l->buf, _IOFBF, sizeof(l->buf));
	if (fresh)
		fputs(HEADER, l->f);
	l->day = day;
	prune(l, day);
	return 0;
}

static void fmt_num(char *buf, size_t cap, double v, int decimals)
{
	if (isnan(v) || !isfinite(v))
		buf[0] = 0;
	else
		snprintf(buf, cap, "%.*f", decimals, v == 0 ? 0.0 : v);
}

size_t fcrlog_format(const struct fcr_rec *r, char *buf, size_t cap)
{
	char hz[32], sp[32], me[32], a[3][32], c[3][32], ts[96];
	time_t t = (time_t)(r->ts_ms / 1000);
	struct tm tm;
	int n;

	gmtime_r(&t, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (int)(r->ts_ms % 1000));
	fmt_num(hz, sizeof(hz), r->hz, 3);
	fmt_num(sp, sizeof(sp), r->setpoint_w, 0);
	fmt_num(me, sizeof(me), r->measured_w, 0);
	for (int i = 0; i < 3; i++) {
		fmt_num(a[i], sizeof(a[i]), r->act_w[i], 0);
		fmt_num(c[i], sizeof(c[i]), r->cap_w[i], 0);
	}
	n = snprintf(buf, cap, "%s,%lld,%s,%s,%s,%s,%s,%s,%s,%" PRIu32 ",%" PRIu32 ",%s,%s,%s", ts,
		     (long long)r->ts_ms, hz, sp, me, fcr_state_name(r->state), a[0], a[1], a[2],
		     r->writes, r->write_errors, c[0], c[1], c[2]);
	return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}

int fcrlog_add(struct fcrlog *l, const struct fcr_rec *r)
{
	char line[256];
	int64_t sec = r->ts_ms / 1000, day = r->ts_ms / DAY_MS;
	int ret = 0;

	l->ring[(l->head + l->len) % FCRLOG_RING] = *r;
	if (l->len < FCRLOG_RING)
		l->len++;
	else
		l->head = (l->head + 1) % FCRLOG_RING;
	if (sec == l->last_sec)
		return 0;
	l->last_sec = sec;
	if (day != l->day || !l->f) {
		ret = open_day(l, day);
		if (ret < 0) {
			l->errors++;
			return ret;
		}
	}
	struct fcr_rec w = *r;
	w.writes = l->pend_writes;
	w.write_errors = l->pend_errors;
	fcrlog_format(&w, line, sizeof(line));
	if (fprintf(l->f, "%s\n", line) < 0) {
		l->errors++;
		return -EIO;
	}
	l->pend_writes = 0;
	l->pend_errors = 0;
	l->lines++;
	return 0;
}

void fcrlog_count_write(struct fcrlog *l, bool ok)
{
	if (ok)
		l->pend_writes++;
	else
		l->pend_errors++;
}

int fcrlog_flush(struct fcrlog *l)
{
	if (l->f && fflush(l->f) != 0) {
		l->errors++;
		return -errno;
	}
	return 0;
}

size_t fcrlog_ring(const struct fcrlog *l, int64_t since_ms, int64_t until_ms, struct fcr_rec *out,
		   size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < l->len && n < cap; i++) {
		const struct fcr_rec *r = &l->ring[(l->head + i) % FCRLOG_RING];
		if (r->ts_ms >= since_ms && r->ts_ms < until_ms)
			out[n++] = *r;
	}
	return n;
}

struct sbuf {
	char *p;
	size_t len, cap;
};

static int sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 8192;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
	return 0;
}

/* Splits a day-file line (no newline) at its commas, in place.  Fields a
 * line does not have (older lines have nine) are "".  Returns how many the
 * line had. */
static int split(char *line, char *f[NFIELDS])
{
	int n = 0;
	char *p = line;
	while (n < NFIELDS) {
		f[n++] = p;
		p = strchr(p, ',');
		if (!p)
			break;
		*p++ = 0;
	}
	for (int i = n; i < NFIELDS; i++)
		f[i] = "";
	return n;
}

/* W as MW with six decimals (1 W), "" when unknown. */
static void mw(char *buf, size_t cap, double w)
{
	if (isnan(w) || !isfinite(w))
		buf[0] = 0;
	else
		snprintf(buf, cap, "%.6f", w == 0 ? 0.0 : w / 1e6);
}

static double field_num(const char *s)
{
	char *end;
	double v;
	if (!*s)
		return NAN;
	v = strtod(s, &end);
	return *end ? NAN : v;
}

/* One day-file line in the TSO export's columns (see fcrlog.h). */
static int tso_line(struct sbuf *b, char *line)
{
	static const double band_hz[3] = { 0.1, 0.4, 0.4 }; /* full activation at */
	char *f[NFIELDS], out[768], p[32], base[32], act[3][32], capmw[3][32], rs[3][32];
	int n = split(line, f);
	bool active = n >= 6 && !strcmp(f[5], fcr_state_name(FCR_ACTIVE));
	double meas = field_num(f[4]), sum = 0;

	/* the battery's power, discharging positive; the activation is delivered
	 * only while egwd controls the battery */
	mw(p, sizeof(p), isnan(meas) ? NAN : -meas);
	for (int i = 0; i < 3; i++) {
		double a = active ? field_num(f[6 + i]) : 0, c = field_num(f[11 + i]);
		if (isnan(a))
			a = 0;
		sum += a;
		/* FCR-D downwards counts positive in its own direction */
		mw(act[i], sizeof(act[i]), i == 2 ? -a : a);
		mw(capmw[i], sizeof(capmw[i]), c);
		if (isnan(c))
			rs[i][0] = 0;
		else
			snprintf(rs[i], sizeof(rs[i]), "%.6f", c / 1e6 / band_hz[i]);
	}
	mw(base, sizeof(base), isnan(meas) ? NAN : -meas - sum);
	int k = snprintf(out, sizeof(out), "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n",
			 f[0], f[2], p, base, act[0], act[1], act[2], capmw[0], capmw[1], capmw[2],
			 rs[0], rs[1], rs[2], active && field_num(f[11]) > 0 ? "on" : "off",
			 active && field_num(f[12]) > 0 ? "on" : "off",
			 active && field_num(f[13]) > 0 ? "on" : "off");
	if (k < 0 || (size_t)k >= sizeof(out))
		return 0; /* a line that long is no line egwd wrote */
	return sb_add(b, out, (size_t)k);
}

/* One day-file line as egw's CSV: padded to the current columns. */
static int egw_line(struct sbuf *b, char *line)
{
	int commas = 0;
	for (const char *c = line; *c; c++)
		commas += *c == ',';
	if (sb_add(b, line, strlen(line)) < 0)
		return -ENOMEM;
	for (; commas < NFIELDS - 1; commas++)
		if (sb_add(b, ",", 1) < 0)
			return -ENOMEM;
	return sb_add(b, "\n", 1);
}

int fcrlog_csv(struct fcrlog *l, int64_t from_ms, int64_t to_ms, enum fcrlog_format fmt,
	       char **ret_buf, size_t *ret_len)
{
	struct sbuf b = { 0 };
	char path[PATH_MAX + 64], line[512];
	const char *hdr = fmt == FCRLOG_TSO ? TSO_HEADER : HEADER;

	if (to_ms < from_ms || to_ms - from_ms > FCRLOG_MAX_SPAN_MS || from_ms < 0)
		return -EINVAL;
	if (l->f)
		fflush(l->f);
	if (sb_add(&b, hdr, strlen(hdr)) < 0)
		return -ENOMEM;
	for (int64_t day = from_ms / DAY_MS; day <= to_ms / DAY_MS; day++) {
		day_path(l, day, path, sizeof(path));
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			const char *c = strchr(line, ',');
			long long ts;
			if (!c || sscanf(c + 1, "%lld", &ts) != 1)
				continue; /* the header, or a torn line */
			if (ts < from_ms || ts > to_ms)
				continue;
			size_t n = strlen(line);
			if (n == 0 || line[n - 1] != '\n')
				continue;
			line[n - 1] = 0;
			if ((fmt == FCRLOG_TSO ? tso_line(&b, line) : egw_line(&b, line)) < 0) {
				fclose(f);
				free(b.p);
				return -ENOMEM;
			}
		}
		fclose(f);
	}
	*ret_buf = b.p;
	*ret_len = b.len;
	return 0;
}

uint64_t fcrlog_lines(const struct fcrlog *l)
{
	return l->lines;
}

uint64_t fcrlog_errors(const struct fcrlog *l)
{
	return l->errors;
}
