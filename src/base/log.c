#include "base/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level log_level = LOG_LVL_INFO;
static const char *const level_names[] = { "error", "warn", "info", "debug" };

void log_set_level(enum log_level lvl)
{
	log_level = lvl;
}
enum log_level log_get_level(void)
{
	return log_level;
}

int log_parse_level(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -EINVAL;
}

/* Copies src to dst (capacity n > 0) with control characters escaped: a
 * value from a request (a device id, a URL) must not start a line of its own
 * and pass for an entry egwd wrote.  Returns the length written. */
size_t log_escape(char *dst, size_t n, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (; *src; src++) {
		unsigned char c = (unsigned char)*src;
		char esc[4];
		size_t k = 0;

		if (c >= 0x20 && c != 0x7f) {
			esc[k++] = (char)c;
		} else {
			esc[k++] = '\\';
			switch (c) {
			case '\n':
				esc[k++] = 'n';
				break;
			case '\r':
				esc[k++] = 'r';
				break;
			case '\t':
				esc[k++] = 't';
				break;
			default:
				esc[k++] = 'x';
				esc[k++] = hex[c >> 4];
				esc[k++] = hex[c & 15];
			}
		}
		if (o + k >= n)
			break;
		memcpy(dst + o, esc, k);
		o += k;
	}
	dst[o] = 0;
	return o;
}

void log_msg(enum log_level lvl, const char *module, const char *fmt, ...)
{
	char line[1024], msg[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (lvl > log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
		     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec / 1000000, level_names[lvl], module);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(line))
		log_escape(line + n, sizeof(line) - (size_t)n, msg);
	/* One write per line so concurrent writers do not interleave. */
	fprintf(stderr, "%s\n", line);
}
