/* The status page (GET /status): the gateway at a glance for people, built
 * from the same document as /api/state.  Every text from the document is
 * HTML-escaped; times are the gateway's local time with its zone, energy in
 * kWh, power in W; a value the document does not have is left out.  The raw
 * JSON is one link away. */
#include <time.h>

#include "web/web_int.h"

/* ---- cells -------------------------------------------------------------- */

static const json_t *jpath(const json_t *o, const char *a, const char *b)
{
	o = json_object_get(o, a);
	return b ? json_object_get(o, b) : o;
}

static bool is_num(const json_t *v)
{
	return json_is_integer(v) || json_is_real(v);
}

static void row_open(struct web_buf *b, const char *label)
{
	web_buf_puts(b, "<tr><th>");
	web_buf_html(b, label);
	web_buf_puts(b, "</th><td>");
}

static void row_close(struct web_buf *b)
{
	web_buf_puts(b, "</td></tr>\n");
}

/* A string (escaped) or a number as it is; nothing for absent, null or "". */
static void row_val(struct web_buf *b, const char *label, const json_t *v)
{
	char tmp[64];

	if (json_is_string(v) && *json_string_value(v)) {
		row_open(b, label);
		web_buf_html(b, json_string_value(v));
		row_close(b);
	} else if (json_is_integer(v)) {
		row_open(b, label);
		web_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		row_close(b);
	} else if (json_is_real(v)) {
		snprintf(tmp, sizeof(tmp), "%.6g", json_real_value(v));
		row_open(b, label);
		web_buf_html(b, tmp);
		row_close(b);
	} else if (json_is_boolean(v)) {
		row_open(b, label);
		web_buf_puts(b, json_is_true(v) ? "yes" : "no");
		row_close(b);
	}
}

/* An error text, or "none" when the document says null or "". */
static void row_err(struct web_buf *b, const char *label, const json_t *v)
{
	if (!v)
		return;
	row_open(b, label);
	if (json_is_string(v) && *json_string_value(v)) {
		web_buf_puts(b, "<span class=\"bad\">");
		web_buf_html(b, json_string_value(v));
		web_buf_puts(b, "</span>");
	} else {
		web_buf_puts(b, "none");
	}
	row_close(b);
}

static void fmt_local(char *out, size_t n, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!localtime_r(&t, &tm) || !strftime(out, n, "%Y-%m-%d %H:%M:%S %Z", &tm))
		snprintf(out, n, "%" PRId64 " ms", ms);
}

/* Epoch milliseconds as the gateway's local time with its zone. */
static void row_time(struct web_buf *b, const char *label, const json_t *v)
{
	char tmp[64];

	if (!json_is_integer(v) || json_integer_value(v) <= 0) {
		if (v && json_is_null(v)) {
			row_open(b, label);
			web_buf_puts(b, "never");
			row_close(b);
		}
		return;
	}
	fmt_local(tmp, sizeof(tmp), json_integer_value(v));
	row_open(b, label);
	web_buf_html(b, tmp);
	row_close(b);
}

static void row_unit(struct web_buf *b, const char *label, const json_t *v, double scale,
		     int digits, const char *unit)
{
	if (!is_num(v))
		return;
	row_open(b, label);
	web_buf_printf(b, "%.*f %s", digits, json_number_value(v) * scale, unit);
	row_close(b);
}

static void fmt_duration(char *out, size_t n, int64_t ms)
{
	int64_t s = ms / 1000;

	if (s >= 86400)
		snprintf(out, n, "%" PRId64 " d %" PRId64 " h %" PRId64 " min", s / 86400,
			 s / 3600 % 24, s / 60 % 60);
	else if (s >= 3600)
		snprintf(out, n, "%" PRId64 " h %" PRId64 " min", s / 3600, s / 60 % 60);
	else if (s >= 60)
		snprintf(out, n, "%" PRId64 " min %" PRId64 " s", s / 60, s % 60);
	else
		snprintf(out, n, "%" PRId64 " s", s);
}

static void section(struct web_buf *b, const char *title)
{
	web_buf_puts(b, "</table>\n<h2>");
	web_buf_html(b, title);
	web_buf_puts(b, "</h2>\n<table>\n");
}

/* ---- devices ------------------------------------------------------------ */

static void device_block(struct web_buf *b, const json_t *d)
{
	const json_t *st = json_object_get(d, "stats");
	const json_t *c = json_object_get(d, "connection");
	const json_t *r = json_object_get(d, "reading");
	const char *state = json_string_value(json_object_get(d, "state"));
	const char *name = json_string_value(json_object_get(d, "name"));
	const char *id = json_string_value(json_object_get(d, "id"));

	web_buf_puts(b, "<h3>");
	web_buf_html(b, id ? id : "?");
	if (name && *name && (!id || strcmp(name, id) != 0)) {
		web_buf_puts(b, " &middot; ");
		web_buf_html(b, name);
	}
	web_buf_puts(b, "</h3>\n<table>\n");
	if (state) {
		row_open(b, "State");
		web_buf_printf(b, "<span class=\"st %s\">",
			       strcmp(state, "polling") == 0 ? "ok" : "warn");
		web_buf_html(b, state);
		web_buf_puts(b, "</span>");
		row_close(b);
	}
	row_err(b, "Last error", json_object_get(st, "last_error"));
	row_val(b, "Profile", json_object_get(d, "profile"));
	row_val(b, "Serial", json_object_get(d, "serial"));
	if (json_is_object(c)) {
		const json_t *host = json_object_get(c, "host"), *port = json_object_get(c, "port");
		const json_t *sp = json_object_get(c, "serial_port"),
			     *unit = json_object_get(c, "unit_id");
		row_open(b, "Connection");
		const char *kind = json_string_value(json_object_get(c, "connection"));
		web_buf_html(b, kind ? kind : "");
		if (json_is_string(host)) {
			web_buf_puts(b, " ");
			web_buf_html(b, json_string_value(host));
			if (json_is_integer(port))
				web_buf_printf(b, ":%" JSON_INTEGER_FORMAT,
					       json_integer_value(port));
		}
		if (json_is_string(sp)) {
			web_buf_puts(b, " ");
			web_buf_html(b, json_string_value(sp));
		}
		if (json_is_integer(unit))
			web_buf_printf(b, ", unit %" JSON_INTEGER_FORMAT, json_integer_value(unit));
		row_close(b);
	}
	row_time(b, "Last good read", json_object_get(st, "last_good_ms"));
	row_val(b, "Polls", json_object_get(st, "polls"));
	row_val(b, "Errors", json_object_get(st, "errors"));
	row_val(b, "Reconnects", json_object_get(st, "reconnects"));
	if (json_is_object(r)) {
		row_unit(b, "PV power", jpath(r, "pv", "W"), -1, 0, "W");
		row_unit(b, "Battery power (+ charging)", jpath(r, "battery", "W"), 1, 0, "W");
		row_unit(b, "Battery state of charge", jpath(r, "battery", "SoC_nom_fract"), 100, 1,
			 "%");
		row_unit(b, "Grid power (+ import)", jpath(r, "meter", "W"), 1, 0, "W");
		row_unit(b, "Total generation", jpath(r, "pv", "total_generation_Wh"), 0.001, 1,
			 "kWh");
		row_unit(b, "Generation today", jpath(r, "pv", "daily_generation_Wh"), 0.001, 2,
			 "kWh");
		row_unit(b, "Total import", jpath(r, "meter", "total_import_Wh"), 0.001, 1, "kWh");
		row_unit(b, "Total export", jpath(r, "meter", "total_export_Wh"), 0.001, 1, "kWh");
		row_unit(b, "Total charged", jpath(r, "battery", "total_charge_Wh"), 0.001, 1,
			 "kWh");
		row_unit(b, "Total discharged", jpath(r, "battery", "total_discharge_Wh"), 0.001, 1,
			 "kWh");
	}
	web_buf_puts(b, "</table>\n");
}

/* ---- page --------------------------------------------------------------- */

void web_status_page(struct web_buf *b, const json_t *st)
{
	char tmp[64];
	const json_t *up_ms = json_object_get(st, "uptime_ms");
	const json_t *v;

	web_buf_puts(
		b,
		"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
		"<meta http-equiv=\"refresh\" content=\"10\">"
		"<link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\">"
		"<title>egw status</title><style>"
		"body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;padding:1em;max-width:48em;"
		"background:#f4f6f4;color:#17201b}h1{font-size:1.4em;margin:.2em 0}"
		"h2{font-size:1.1em;margin:1.4em 0 .4em}h3{font-size:1em;margin:1em 0 .3em}"
		"nav a{margin-right:1em}"
		"table{border-collapse:collapse;width:100%;background:#fff;table-layout:fixed}"
		"th,td{text-align:left;padding:.3em .5em;border-bottom:1px solid #d5ddd7;"
		"vertical-align:top;overflow-wrap:anywhere}th{width:42%;font-weight:600;color:#5d6a62}"
		".st{display:inline-block;padding:0 .5em;border-radius:.3em;background:#d5ddd7}"
		".st.ok{background:#1f8a4c;color:#fff}.st.warn{background:#c98500;color:#fff}"
		".bad{color:#c23b3b}"
		"@media (prefers-color-scheme:dark){body{background:#121714;color:#e3ebe5}"
		"table{background:#1b221e}th,td{border-color:#2e3832}a{color:#8ab4f8}}"
		"</style></head><body>\n<h1>egw gateway status</h1>\n"
		"<nav><a href=\"/\">&larr; Web UI</a><a href=\"/api/state\">Raw JSON (/api/state)</a>"
		"<a href=\"/metrics\">Metrics</a></nav>\n<h2>Gateway</h2>\n<table>\n");

	row_val(b, "Name", jpath(st, "name", "name"));
	if (json_is_string(json_object_get(st, "state"))) {
		const char *s = json_string_value(json_object_get(st, "state"));
		row_open(b, "State");
		web_buf_printf(b, "<span class=\"st %s\">",
			       strcmp(s, "running") == 0 ? "ok" : "warn");
		web_buf_html(b, s);
		web_buf_puts(b, "</span>");
		row_close(b);
	}
	if (json_is_integer(up_ms)) {
		int64_t ms = json_integer_value(up_ms);
		fmt_duration(tmp, sizeof(tmp), ms);
		row_open(b, "Uptime");
		web_buf_html(b, tmp);
		row_close(b);
		fmt_local(tmp, sizeof(tmp), (int64_t)time(NULL) * 1000 - ms);
		row_open(b, "Started");
		web_buf_html(b, tmp);
		row_close(b);
	}
	fmt_local(tmp, sizeof(tmp), (int64_t)time(NULL) * 1000);
	row_open(b, "Page time");
	web_buf_html(b, tmp);
	row_close(b);
	row_val(b, "egwd version", json_object_get(st, "version"));
	row_val(b, "Settings file", jpath(st, "settings", "path"));
	row_err(b, "Settings rejected", jpath(st, "settings", "rejected"));

	section(b, "Signer");
	row_val(b, "Serial", jpath(st, "signer", "serial"));
	row_val(b, "Backend", jpath(st, "signer", "backend"));
	row_val(b, "Configured", jpath(st, "signer", "configured"));
	row_val(b, "Healthy", jpath(st, "signer", "healthy"));
	row_val(b, "Signing", jpath(st, "signer", "signing"));
	row_err(b, "Not signing because", jpath(st, "signer", "not_signing_reason"));
	row_err(b, "Last error", jpath(st, "signer", "last_error"));

	section(b, "Store and signed batches");
	row_val(b, "Signed batches", jpath(st, "harvest", "stored_signed"));
	row_unit(b, "Batch interval", jpath(st, "harvest", "interval_ms"), 0.001, 0, "s");
	row_val(b, "Waiting for upload", jpath(st, "store", "backlog"));
	row_val(b, "Delivered", jpath(st, "store", "delivered"));
	row_val(b, "Dropped", jpath(st, "store", "dropped"));
	row_unit(b, "Store size", jpath(st, "store", "bytes"), 1.0 / 1048576, 2, "MiB");
	row_unit(b, "Store limit", jpath(st, "store", "max_bytes"), 1.0 / 1048576, 0, "MiB");
	row_val(b, "Disk full", jpath(st, "store", "disk_full"));
	row_err(b, "Last error", jpath(st, "store", "last_error"));

	section(b, "Uploads");
	v = json_object_get(st, "uploader");
	if (json_is_false(json_object_get(v, "enabled"))) {
		row_open(b, "Backend");
		web_buf_puts(b, "not configured (settings: backend.data_urls)");
		row_close(b);
	} else {
		const json_t *urls = json_object_get(v, "urls");
		if (json_is_array(urls) && json_array_size(urls))
			row_val(b, "Backend URL", json_array_get(urls, 0));
		row_val(b, "Uploads ok", json_object_get(v, "ok"));
		row_val(b, "Uploads failed", json_object_get(v, "failed"));
		row_val(b, "Last HTTP status", json_object_get(v, "last_status"));
		const json_t *e = json_object_get(v, "last_error_detail");
		row_err(b, "Last error",
			json_is_string(e) && *json_string_value(e)
				? e
				: json_object_get(v, "last_error"));
	}

	section(b, "MQTT / Home Assistant");
	v = json_object_get(st, "mqtt");
	row_val(b, "Enabled", json_object_get(v, "enabled"));
	if (json_is_true(json_object_get(v, "enabled"))) {
		row_val(b, "Broker", json_object_get(v, "host"));
		row_val(b, "Port", json_object_get(v, "port"));
		row_val(b, "Connected", json_object_get(v, "connected"));
		row_err(b, "Last error", json_object_get(v, "last_error"));
	}

	section(b, "Grid frequency");
	row_val(b, "From device", jpath(st, "frequency", "device"));
	row_unit(b, "Last value", json_object_get(jpath(st, "frequency", "latest"), "hz"), 1, 3,
		 "Hz");
	row_time(b, "At", json_object_get(jpath(st, "frequency", "latest"), "ts_ms"));
	row_err(b, "Last error", jpath(st, "frequency", "last_error"));

	section(b, "Web server");
	row_val(b, "HTTP listening on", jpath(st, "http", "listening"));
	row_val(b, "HTTPS listening", jpath(st, "https", "listening"));
	row_val(b, "HTTPS port", jpath(st, "https", "port"));
	row_err(b, "HTTPS error", jpath(st, "https", "error"));
	row_val(b, "HTTPS certificate valid until", jpath(st, "https", "not_after"));
	row_val(b, "HTTPS certificate SHA-256", jpath(st, "https", "fingerprint_sha256"));
	row_val(b, "Refused tokens", jpath(st, "http", "auth_failures"));
	web_buf_puts(b, "</table>\n");

	const json_t *devs = json_object_get(st, "devices");
	if (json_is_array(devs)) {
		size_t i;
		const json_t *d;
		web_buf_printf(b, "<h2>Devices (%zu)</h2>\n", json_array_size(devs));
		if (!json_array_size(devs))
			web_buf_puts(
				b,
				"<p>No device configured: add one in the <a href=\"/#/devices\">web UI</a>.</p>\n");
		json_array_foreach (devs, i, d)
			device_block(b, d);
	}
	web_buf_puts(
		b,
		"<p><a href=\"/\">&larr; Web UI</a> &middot; <a href=\"/api/state\">Raw JSON</a></p>\n"
		"</body></html>\n");
}
