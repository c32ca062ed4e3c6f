/* The plain status page (GET /status). */
#include "web/web_int.h"

/* ---- status page ------------------------------------------------------ */

static void html_scalar(struct web_buf *b, const json_t *v)
{
	char tmp[64];
	if (!v) {
		web_buf_puts(b, "&mdash;");
		return;
	}
	switch (json_typeof(v)) {
	case JSON_STRING: web_buf_html(b, json_string_value(v)); break;
	case JSON_INTEGER:
		web_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		snprintf(tmp, sizeof(tmp), "%.6g", json_real_value(v));
		web_buf_html(b, tmp);
		break;
	case JSON_TRUE: web_buf_puts(b, "yes"); break;
	case JSON_FALSE: web_buf_puts(b, "no"); break;
	case JSON_NULL: web_buf_puts(b, "&mdash;"); break;
	default: {
		char *s = json_dumps(v, JSON_COMPACT);
		if (s && strlen(s) > 200)
			strcpy(s + 196, "...");
		web_buf_html(b, s ? s : "");
		free(s);
	}
	}
}

/* Rows "key | value" for the scalars of o; nested objects (a device's
 * reading: pv, battery, meter) flattened as "key.sub.subsub", three levels
 * deep at most. */
static void html_rows(struct web_buf *b, const json_t *o, const char *prefix)
{
	const char *k;
	const json_t *v;
	char sub[128];
	unsigned depth = 0;

	for (const char *p = prefix; *p; p++)
		depth += *p == '.';
	json_object_foreach((json_t *)o, k, v) {
		if (json_is_object(v) && (!*prefix || depth < 2) && json_object_size(v)) {
			snprintf(sub, sizeof(sub), "%s%s%s", prefix, *prefix ? "." : "", k);
			html_rows(b, v, sub);
			continue;
		}
		web_buf_puts(b, "<tr><th>");
		if (*prefix) {
			web_buf_html(b, prefix);
			web_buf_puts(b, ".");
		}
		web_buf_html(b, k);
		web_buf_puts(b, "</th><td>");
		html_scalar(b, v);
		web_buf_puts(b, "</td></tr>\n");
	}
}

static const json_t *jpath(const json_t *o, const char *a, const char *b)
{
	o = json_object_get(o, a);
	return b ? json_object_get(o, b) : o;
}

static void summary_row(struct web_buf *b, const char *label, const json_t *v)
{
	web_buf_printf(b, "<tr><th>%s</th><td>", label);
	html_scalar(b, v);
	web_buf_puts(b, "</td></tr>\n");
}

/* "N (r/s)" for a counter over the uptime. */
static void summary_rate(struct web_buf *b, const char *label, const json_t *count, int64_t up_ms)
{
	if (!json_is_integer(count)) {
		summary_row(b, label, NULL);
		return;
	}
	json_int_t n = json_integer_value(count);
	web_buf_printf(b, "<tr><th>%s</th><td>%" JSON_INTEGER_FORMAT " (%.2f/s)</td></tr>\n", label, n,
		       up_ms > 0 ? (double)n * 1000.0 / (double)up_ms : 0.0);
}

void web_status_page(struct web_buf *b, const json_t *st)
{
	const char *k;
	const json_t *v;
	char up[64];
	int64_t ms = json_integer_value(json_object_get(st, "uptime_ms"));

	web_buf_printf(b, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
		"<meta http-equiv=\"refresh\" content=\"5\">"
		"<title>egw status</title><style>"
		"body{font-family:system-ui,sans-serif;margin:0;padding:1em;max-width:48em;"
		"background:#fafafa;color:#222}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}"
		"table{border-collapse:collapse;width:100%%;background:#fff}"
		"th,td{text-align:left;padding:.3em .5em;border-bottom:1px solid #ddd;"
		"vertical-align:top;word-break:break-word}th{width:40%%;font-weight:600}"
		".st{display:inline-block;padding:.1em .5em;border-radius:.3em;background:#ddd}"
		"</style></head><body>\n<h1>egw gateway</h1>\n<table>\n");
	summary_row(b, "Name", jpath(st, "name", "name"));
	summary_row(b, "Secure element serial", jpath(st, "crypto", "serialNumber"));
	snprintf(up, sizeof(up), "%" PRId64 " d %02" PRId64 ":%02" PRId64 ":%02" PRId64,
		 ms / 86400000, ms / 3600000 % 24, ms / 60000 % 60, ms / 1000 % 60);
	web_buf_printf(b, "<tr><th>Uptime</th><td>%s</td></tr>\n", up);
	web_buf_puts(b, "<tr><th>State</th><td><span class=\"st\">");
	html_scalar(b, json_object_get(st, "state"));
	web_buf_puts(b, "</span></td></tr>\n");
	summary_row(b, "Version", json_object_get(st, "version"));
	summary_row(b, "Last frequency (Hz)", json_object_get(jpath(st, "frequency", "latest"), "hz"));
	summary_rate(b, "Frequency reads", jpath(st, "frequency", "reads"), ms);
	summary_rate(b, "Harvests (signed batches)", jpath(st, "harvest", "sealed"), ms);
	summary_row(b, "Store backlog", jpath(st, "store", "backlog"));
	summary_row(b, "Delivered to the backend", jpath(st, "store", "delivered"));
	summary_rate(b, "HTTP connections", jpath(st, "http", "connections"), ms);
	summary_row(b, "HTTPS port", jpath(st, "https", "port"));
	summary_row(b, "HTTPS certificate SHA-256", jpath(st, "https", "fingerprint_sha256"));
	web_buf_puts(b, "</table>\n");

	/* Devices as one table each; every other section as key/value rows. */
	const json_t *devs = json_object_get(st, "devices");
	if (json_is_array(devs)) {
		size_t i;
		const json_t *d;
		web_buf_printf(b, "<h2>Devices (%zu)</h2>\n", json_array_size(devs));
		json_array_foreach(devs, i, d) {
			web_buf_puts(b, "<table>\n");
			html_rows(b, d, "");
			web_buf_puts(b, "</table><br>\n");
		}
	}
	json_object_foreach((json_t *)st, k, v) {
		if (!json_is_object(v) || strcmp(k, "crypto") == 0)
			continue;
		web_buf_puts(b, "<h2>");
		web_buf_html(b, k);
		web_buf_puts(b, "</h2>\n<table>\n");
		html_rows(b, v, "");
		web_buf_puts(b, "</table>\n");
	}
	web_buf_append(b, "<p><a href=\"/api/state\">/api/state</a> &middot; "
		       "<a href=\"/metrics\">/metrics</a></p>\n</body></html>\n", 99);
}
