/* GET /api/fcr/log?from=&to=&format=: the FCR operational log
 * (grid/fcrlog.h) as CSV.  from and to are milliseconds since the epoch or
 * ISO 8601 UTC ("2026-12-03T10:00:00Z"); to defaults to now, from to an hour
 * before to; one request covers at most a day.  format=tso (the default) has
 * the columns of the Nordic TSOs' FCR requirements (v1.1, March 2025,
 * section 6), format=egw egw's own day-file columns. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/time.h"
#include "egw.h"
#include "grid/fcrlog.h"
#include "web/web_int.h"

/* Returns 0 with *ret set, or -EINVAL. */
static int parse_time(const char *s, int64_t *ret)
{
	struct tm tm = { 0 };
	char *end;

	if (!s || !*s)
		return -EINVAL;
	if (strspn(s, "0123456789") == strlen(s)) {
		long long v = strtoll(s, &end, 10);
		if (*end || v < 0 || strlen(s) > 15)
			return -EINVAL;
		*ret = v;
		return 0;
	}
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return -EINVAL;
	if (*end == 'Z')
		end++;
	if (*end)
		return -EINVAL;
	time_t t = timegm(&tm);
	if (t < 0)
		return -EINVAL;
	*ret = (int64_t)t * 1000;
	return 0;
}

int web_h_fcr_log(struct web_request *rq)
{
	const char *fs = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "from");
	const char *ts = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "to");
	const char *fmt = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "format");
	enum fcrlog_format format = FCRLOG_TSO;
	int64_t from, to = wall_ms();
	char *buf = NULL;
	size_t len = 0;
	int r;

	if (ts && parse_time(ts, &to) < 0)
		return web_reply_error(rq, 400,
				       "to: expected milliseconds since the epoch or "
				       "YYYY-MM-DDTHH:MM:SSZ",
				       "to");
	from = to - 3600 * 1000;
	if (fs && parse_time(fs, &from) < 0)
		return web_reply_error(rq, 400,
				       "from: expected milliseconds since the epoch or "
				       "YYYY-MM-DDTHH:MM:SSZ",
				       "from");
	if (fmt && !strcmp(fmt, "egw"))
		format = FCRLOG_EGW;
	else if (fmt && strcmp(fmt, "tso"))
		return web_reply_error(rq, 400, "format: expected tso or egw", "format");
	if (to < from)
		return web_reply_error(rq, 400, "to is before from", "to");
	if (to - from > FCRLOG_MAX_SPAN_MS)
		return web_reply_error(rq, 400, "at most one day (86400000 ms) per request",
				       "from");
	if (!rq->egw->fcrlog)
		return web_reply_error(rq, 503, "the FCR log is not available", NULL);
	r = fcrlog_csv(rq->egw->fcrlog, from, to, format, &buf, &len);
	if (r < 0)
		return web_reply_error(rq, r == -ENOMEM ? 503 : 400, "cannot read the FCR log",
				       NULL);
	r = web_reply_data(rq, 200, "text/csv; charset=utf-8", buf, len, true);
	free(buf);
	return r;
}
