/* Web UI, live stream, device API, notifications, MQTT glue (see webui.h). */
#include "web/webui.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/mqtt.h"
#include "backend/uploader.h"
#include "base/err.h"
#include "base/log.h"
#include "base/util.h"
#include "config/settings.h"
#include "crypto/signer.h"
#include "devices/device.h"
#include "egw.h"
#include "loop/loop.h"
#include "modbus/client.h"
#include "profiles/profile.h"
#include "profiles/reading.h"
#include "store/store.h"
#include "web/assets.h"
#include "web/sse.h"
#include "web/web.h"

#define HEARTBEAT_PERIOD (15 * USEC_PER_SEC)
#define WEBUI_MAX_DEVICES 64
#define RAW_TIMEOUT (2 * USEC_PER_SEC)
#define SCAN_TIMEOUT (400 * USEC_PER_MSEC)

/* Poll cycle latency buckets (seconds) for /metrics. */
static const double lat_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5 };
#define LAT_BUCKETS (ARRAY_SIZE(lat_bounds) + 1)

struct dev_hist {
	char id[64];
	uint64_t hist[LAT_BUCKETS]; /* per bucket, not cumulative */
	double sum;
	uint64_t count;
	uint64_t readings;
};

struct note {
	uint64_t id;
	int64_t ts_ms;
	char level[8];
	char key[64];
	char text[200];
};

struct live_conn {
	struct webui *u;             /* NULL once the webui is gone */
	struct MHD_Connection *conn;
	struct sse_client *client;
	struct live_conn *next;
	bool resumed;                /* woken, not yet served by MHD */
	char pre[256];               /* sent before the stream */
	size_t pre_len, pre_off;
};

/* A raw Modbus read or write in flight: the HTTP connection is suspended.
 * It is queued on the device's own client (device_client), behind the
 * device's polling, so nothing runs concurrently on the wire; only a device
 * in the settings that the running set does not have gets a short-lived
 * client of its own (client).  The op lives until its callback has run
 * (pending): a webui freed first leaves it to that callback (u NULL). */
struct raw_op {
	struct webui *u;             /* NULL: the webui is gone, the callback frees the op */
	struct web_request rq;       /* copy; body not used after the handler */
	struct mb_client *client;    /* own client (fallback), NULL on a device's client */
	bool pending;                /* queued: its callback is still due */
	bool done;                   /* answered; freed by the webui's raw_gc task */
	bool write;
	char device[64];
	uint8_t fc;
	uint16_t addr, count;
	uint8_t type, order;
	double scale;
	struct raw_op *next;
};

struct scan_result {
	char host[48];
	uint16_t port;
	uint8_t unit;
	char profile[32];
	char serial[40];
	char manufacturer[40];
	bool sunspec;
};

struct scan_probe {
	struct webui *u;
	struct mb_client *client;
	bool active;
	bool finished;               /* result recorded; client freed by scan_gc */
	bool busy;                   /* a request in flight */
	unsigned target;
	unsigned step;               /* 0: SunSpec marker, 1: model 1, 2+: profile index * 2 */
	unsigned prof;
	char serial[40];
};

struct scan_target {
	char host[48];
	uint16_t port;
};

struct scan {
	struct task gc;              /* scan_gc */
	bool running;
	int64_t started_ms, finished_ms;
	unsigned ntargets, next, done;
	uint8_t unit;
	struct scan_target targets[WEBUI_SCAN_TARGETS_MAX];
	struct scan_probe probes[WEBUI_SCAN_PARALLEL];
	struct scan_result results[WEBUI_SCAN_RESULTS_MAX];
	unsigned nresults;
	char hosts_arg[256], ports_arg[128];
};

struct webui {
	struct egw *e;
	struct sse_hub *hub;
	struct task heartbeat;
	struct task watch;           /* backend and store health -> notifications */
	uint64_t up_failed, up_ok;
	struct task kick;            /* runs MHD once more after resuming connections */
	struct MHD_Daemon *daemon;
	unsigned kicks;              /* consecutive re-kicks */
	struct live_conn *live;
	struct raw_op *raw;
	unsigned nraw;
	struct task raw_gc;          /* frees answered raw ops outside their callbacks */
	struct note notes[WEBUI_NOTES_MAX];
	unsigned nnotes;
	uint64_t next_note_id;
	struct dev_hist hists[WEBUI_MAX_DEVICES];
	unsigned nhists;
	double freq_hz;
	int64_t freq_ts_ms;
	uint64_t freq_samples;
	char mqtt_sig[1536];         /* the MQTT settings mqtt was started with */
	uint64_t raw_writes, raw_reads, raw_refused;
	struct scan scan;
};

/* ---- small helpers ------------------------------------------------------ */

static struct webui *U(struct web_request *rq)
{
	return rq->egw->webui;
}

static const char *query(struct web_request *rq, const char *key)
{
	return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, key);
}

static bool id_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 32)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '_' || *s == '-' || *s == '.'))
			return false;
	return true;
}

/* Parses an unsigned integer in [min, max] (decimal or 0x hex). */
static int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *ret)
{
	char *end;
	unsigned long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static void client_addr(struct web_request *rq, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	snprintf(buf, len, "?");
	if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, buf,
		          (socklen_t)len);
	else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr, buf,
		          (socklen_t)len);
}

static json_t *body_json(struct web_request *rq, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j;

	if (!rq->body || rq->body_len == 0) {
		snprintf(err, errlen, "missing JSON body");
		return NULL;
	}
	j = json_loadb(rq->body, rq->body_len, 0, &je);
	if (!j)
		snprintf(err, errlen, "malformed JSON: %s (line %d)", je.text, je.line);
	else if (!json_is_object(j)) {
		snprintf(err, errlen, "expected a JSON object");
		json_decref(j);
		j = NULL;
	}
	return j;
}

/* Resumes a suspended connection.  libmicrohttpd only handles a resumed
 * connection on a later MHD_run; the web server's loop watch may not fire
 * again by itself, so a one-shot task runs MHD once more. */
static void resume(struct webui *u, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci;

	MHD_resume_connection(conn);
	if (!u->daemon) {
		ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_DAEMON);
		if (ci)
			u->daemon = ci->daemon;
	}
	if (u->daemon && !sched_queued(&u->kick))
		loop_task_add(u->e->loop, &u->kick, loop_now(u->e->loop));
}

static int on_kick(struct task *t, usec_t now)
{
	struct webui *u = container_of(t, struct webui, kick);
	MHD_UNSIGNED_LONG_LONG ms = 1;
	bool pending = false;

	if (!u->daemon)
		return 0;
	MHD_run(u->daemon);
	/* A resumed connection may only be served on a later MHD_run, and data
	 * taken from a stream may still wait in MHD's buffer (MHD then reports a
	 * zero timeout): run MHD again, briefly, until both are done.  web.c's
	 * own timer only looks at MHD's timeout after its own runs. */
	for (struct live_conn *lc = u->live; lc; lc = lc->next)
		pending |= lc->resumed;
	if (MHD_get_timeout(u->daemon, &ms) == MHD_YES && ms == 0)
		pending = true;
	if (pending && ++u->kicks < 1000)
		loop_task_add(u->e->loop, &u->kick, now + 50);
	else
		u->kicks = 0;
	return 0;
}

/* ---- notifications ------------------------------------------------------ */

void webui_notify(struct webui *u, const char *level, const char *key, const char *fmt, ...)
{
	struct note *n = NULL;
	va_list ap;
	char *s;

	if (!u)
		return;
	for (unsigned i = 0; i < u->nnotes; i++)
		if (strcmp(u->notes[i].key, key) == 0) {
			/* Replace: drop the old one, keep the order by time. */
			memmove(&u->notes[i], &u->notes[i + 1], (u->nnotes - i - 1) * sizeof(u->notes[0]));
			u->nnotes--;
			break;
		}
	if (u->nnotes == WEBUI_NOTES_MAX) {
		memmove(&u->notes[0], &u->notes[1], (WEBUI_NOTES_MAX - 1) * sizeof(u->notes[0]));
		u->nnotes--;
	}
	n = &u->notes[u->nnotes++];
	*n = (struct note){ .id = ++u->next_note_id, .ts_ms = wall_ms() };
	snprintf(n->level, sizeof(n->level), "%s", level);
	snprintf(n->key, sizeof(n->key), "%s", key);
	va_start(ap, fmt);
	vsnprintf(n->text, sizeof(n->text), fmt, ap);
	va_end(ap);
	s = NULL;
	{
		json_t *j = json_pack("{s:I,s:I,s:s,s:s,s:s}", "id", (json_int_t)n->id, "ts_ms",
		                      (json_int_t)n->ts_ms, "level", n->level, "key", n->key, "text",
		                      n->text);
		if (j)
			s = json_dumps(j, JSON_COMPACT);
		json_decref(j);
	}
	if (s) {
		sse_hub_publish(u->hub, "notification", s, strlen(s));
		free(s);
	}
}

static void note_clear(struct webui *u, const char *key)
{
	for (unsigned i = 0; i < u->nnotes; i++)
		if (strcmp(u->notes[i].key, key) == 0) {
			memmove(&u->notes[i], &u->notes[i + 1], (u->nnotes - i - 1) * sizeof(u->notes[0]));
			u->nnotes--;
			return;
		}
}

int webui_h_notes_get(struct web_request *rq)
{
	struct webui *u = U(rq);
	json_t *arr = json_array();

	for (unsigned i = 0; arr && i < u->nnotes; i++) {
		const struct note *n = &u->notes[i];
		json_array_append_new(arr, json_pack("{s:I,s:I,s:s,s:s,s:s}", "id", (json_int_t)n->id,
		                                     "ts_ms", (json_int_t)n->ts_ms, "level", n->level,
		                                     "key", n->key, "text", n->text));
	}
	return web_reply_json(rq, 200, arr ? json_pack("{s:o}", "notifications", arr) : NULL);
}

int webui_h_notes_delete(struct web_request *rq)
{
	struct webui *u = U(rq);
	const char *p = rq->path + strlen("/api/notification");
	unsigned long id;

	if (*p == '/')
		p++;
	if (parse_uint(p, 1, ULONG_MAX, &id) < 0)
		return web_reply_error(rq, 400, "expected /api/notification/<numeric id>", "id");
	for (unsigned i = 0; i < u->nnotes; i++)
		if (u->notes[i].id == id) {
			memmove(&u->notes[i], &u->notes[i + 1], (u->nnotes - i - 1) * sizeof(u->notes[0]));
			u->nnotes--;
			return web_reply_json(rq, 200, json_pack("{s:I}", "deleted", (json_int_t)id));
		}
	return web_reply_error(rq, 404, "no such notification", "id");
}

/* ---- live stream (SSE) -------------------------------------------------- */

static void live_wake(void *ud)
{
	struct live_conn *lc = ud;
	lc->resumed = true;
	resume(lc->u, lc->conn);
}

static ssize_t live_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct live_conn *lc = cls;
	ssize_t n;
	(void)pos;

	lc->resumed = false;
	if (!lc->u)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (lc->pre_off < lc->pre_len) {
		size_t k = MIN(max, lc->pre_len - lc->pre_off);
		memcpy(buf, lc->pre + lc->pre_off, k);
		lc->pre_off += k;
		return (ssize_t)k;
	}
	n = sse_client_read(lc->client, buf, max);
	if (n > 0)
		return n;
	if (n < 0)
		return MHD_CONTENT_READER_END_WITH_ERROR; /* fell a ring behind: dropped */
	/* Nothing pending: park the connection until the hub wakes us. */
	MHD_suspend_connection(lc->conn);
	return 0;
}

static void live_free(void *cls)
{
	struct live_conn *lc = cls;

	if (lc->u) {
		for (struct live_conn **pp = &lc->u->live; *pp; pp = &(*pp)->next)
			if (*pp == lc) {
				*pp = lc->next;
				break;
			}
		sse_client_detach(lc->client);
	}
	free(lc);
}

int webui_h_live(struct web_request *rq)
{
	struct webui *u = U(rq);
	struct MHD_Response *resp;
	struct live_conn *lc;
	int ret;

	if (!u)
		return web_reply_error(rq, 503, "live stream not available", NULL);
	lc = calloc(1, sizeof(*lc));
	if (!lc)
		return web_reply_error(rq, 500, "out of memory", NULL);
	if (sse_client_attach(u->hub, live_wake, lc, &lc->client) < 0) {
		free(lc);
		return web_reply_error(rq, 503, "too many live clients", NULL);
	}
	lc->u = u;
	lc->conn = rq->conn;
	lc->pre_len = (size_t)snprintf(lc->pre, sizeof(lc->pre),
	                               "retry: 2000\n: egw live stream\n\n");
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, live_read, lc, live_free);
	if (!resp) {
		sse_client_detach(lc->client);
		free(lc);
		return web_reply_error(rq, 500, "out of memory", NULL);
	}
	lc->next = u->live;
	u->live = lc;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	ret = web_reply_response(rq, 200, resp);
	MHD_destroy_response(resp);
	return ret;
}

static int on_heartbeat(struct task *t, usec_t now)
{
	struct webui *u = container_of(t, struct webui, heartbeat);
	(void)now;
	/* Keeps proxies from closing idle streams and finds dead clients. */
	sse_hub_comment(u->hub, "ping");
	return 0;
}

static void publish_json(struct webui *u, const char *event, json_t *j)
{
	char *s;

	if (!j)
		return;
	s = json_dumps(j, JSON_COMPACT | READING_JSON_REALS);
	json_decref(j);
	if (s) {
		sse_hub_publish(u->hub, event, s, strlen(s));
		free(s);
	}
}

/* ---- device hooks ------------------------------------------------------- */

static struct dev_hist *hist_get(struct webui *u, const char *id)
{
	for (unsigned i = 0; i < u->nhists; i++)
		if (strcmp(u->hists[i].id, id) == 0)
			return &u->hists[i];
	if (u->nhists == WEBUI_MAX_DEVICES)
		return NULL;
	snprintf(u->hists[u->nhists].id, sizeof(u->hists[0].id), "%s", id);
	return &u->hists[u->nhists++];
}

void webui_on_reading(struct webui *u, struct device *d, int64_t ts_ms, const struct reading *r)
{
	struct device_stats st;
	struct dev_hist *h;
	json_t *rj;

	if (!u)
		return;
	device_stats(d, &st);
	h = hist_get(u, device_id(d));
	if (h) {
		double s = (double)st.latency_last_us / 1e6;
		unsigned k = 0;
		while (k < ARRAY_SIZE(lat_bounds) && s > lat_bounds[k])
			k++;
		h->hist[k]++;
		h->sum += s;
		h->count++;
		h->readings++;
	}
	rj = reading_to_json(r);
	if (rj)
		publish_json(u, "reading", json_pack("{s:s,s:I,s:s,s:s,s:o}", "device", device_id(d),
		                                     "ts_ms", (json_int_t)ts_ms, "profile",
		                                     device_profile_name(d), "state",
		                                     device_state_name(device_state(d)), "reading", rj));
	if (u->e->mqtt)
		mqtt_publish_reading(u->e->mqtt, device_id(d), device_profile_name(d), ts_ms, r);
}

void webui_on_freq(struct webui *u, struct device *d, int64_t ts_ms, double hz)
{
	struct timespec ts;
	char buf[256];
	int n;

	if (!u)
		return;
	u->freq_hz = hz;
	u->freq_ts_ms = ts_ms;
	u->freq_samples++;
	if (!id_ok(device_id(d)))
		return; /* ids outside [A-Za-z0-9_.-] are not sent unescaped */
	clock_gettime(CLOCK_REALTIME, &ts);
	/* Formatted by hand: this runs at 10 Hz and the ids are plain. */
	n = snprintf(buf, sizeof(buf), "{\"device\":\"%s\",\"ts_ms\":%" PRId64 ",\"hz\":%.4f,\"t_us\":%" PRId64 "}",
	             device_id(d), ts_ms, hz, (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
	if (n > 0 && (size_t)n < sizeof(buf) && isfinite(hz))
		sse_hub_publish(u->hub, "freq", buf, (size_t)n);
}

void webui_on_state(struct webui *u, struct device *d, int old_state, int new_state,
                    const char *reason)
{
	char key[96];

	if (!u)
		return;
	snprintf(key, sizeof(key), "device:%s", device_id(d));
	publish_json(u, "state", json_pack("{s:s,s:s,s:s,s:s}", "device", device_id(d), "old",
	                                   device_state_name(old_state), "new",
	                                   device_state_name(new_state), "reason", reason ? reason : ""));
	if (old_state == DEV_POLLING && new_state != DEV_POLLING)
		webui_notify(u, "warning", key, "device %s lost: %s (%s)", device_id(d),
		             device_state_name(new_state), reason ? reason : "");
	else if (new_state == DEV_POLLING)
		note_clear(u, key);
	if (u->e->mqtt && (old_state == DEV_POLLING) != (new_state == DEV_POLLING))
		mqtt_publish_availability(u->e->mqtt, device_id(d), new_state == DEV_POLLING);
}

/* ---- assets ------------------------------------------------------------- */

int webui_h_asset(struct web_request *rq)
{
	const struct asset *a = assets_find(rq->path);
	const char *inm;
	struct MHD_Response *resp;
	unsigned status = 200;
	int ret;

	if (!a)
		return web_reply_error(rq, 404, "no such path", NULL);
	inm = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
	if (assets_not_modified(a, inm)) {
		status = 304;
		resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	} else {
		resp = MHD_create_response_from_buffer(a->size, (void *)a->data, MHD_RESPMEM_PERSISTENT);
	}
	if (!resp)
		return MHD_NO;
	if (status == 200)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, a->etag);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (strncmp(a->type, "text/html", 9) == 0) {
		MHD_add_response_header(resp, "Content-Security-Policy",
		                        "default-src 'self'; img-src 'self' data:; object-src 'none'; "
		                        "frame-ancestors 'none'; base-uri 'none'");
		MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	}
	ret = web_reply_response(rq, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ---- device API --------------------------------------------------------- */

int webui_h_device_get(struct web_request *rq)
{
	struct egw *e = rq->egw;
	json_t *arr = e->devices ? devices_to_json(e->devices) : json_array();

	return web_reply_json(rq, 200, arr ? json_pack("{s:o}", "devices", arr) : NULL);
}

static const char *const dev_keys[] = {
	"baudrate", "connection", "host", "id", "name", "parity", "poll_interval_ms",
	"port", "profile", "serial_port", "stopbits", "unit_id",
};

/* Validates a new device object; on error names the field.  Fills defaults
 * (unit_id 1, port 502).  Returns 0 or -EGW_ESCHEMA. */
static int device_validate(json_t *o, char *field, size_t flen, char *msg, size_t mlen)
{
	const char *k, *conn, *prof;
	json_t *v;

#define FAIL(f, ...) do { snprintf(field, flen, "%s", f); snprintf(msg, mlen, __VA_ARGS__); \
		return -EGW_ESCHEMA; } while (0)
	json_object_foreach(o, k, v) {
		bool known = false;
		for (size_t i = 0; i < ARRAY_SIZE(dev_keys); i++)
			known |= strcmp(dev_keys[i], k) == 0;
		if (!known)
			FAIL(k, "%s: unknown field", k);
	}
	v = json_object_get(o, "connection");
	if (!v)
		FAIL("connection", "connection: required (tcp, rtu or rtu-over-tcp)");
	conn = json_string_value(v);
	if (!conn || (strcmp(conn, "tcp") && strcmp(conn, "rtu") && strcmp(conn, "rtu-over-tcp")))
		FAIL("connection", "connection: must be one of tcp, rtu, rtu-over-tcp");
	if (strcmp(conn, "rtu") == 0) {
		v = json_object_get(o, "serial_port");
		if (!json_is_string(v) || !*json_string_value(v))
			FAIL("serial_port", "serial_port: required for rtu (e.g. /dev/ttyUSB0)");
		v = json_object_get(o, "baudrate");
		if (v && (!json_is_integer(v) || json_integer_value(v) < 300 || json_integer_value(v) > 4000000))
			FAIL("baudrate", "baudrate: must be an integer 300..4000000");
		v = json_object_get(o, "parity");
		if (v && (!json_is_string(v) || !strchr("NEO", json_string_value(v)[0]) ||
		          strlen(json_string_value(v)) != 1))
			FAIL("parity", "parity: must be \"N\", \"E\" or \"O\"");
		v = json_object_get(o, "stopbits");
		if (v && (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 2))
			FAIL("stopbits", "stopbits: must be 1 or 2");
	} else {
		struct in_addr a4;
		struct in6_addr a6;
		const char *host;

		v = json_object_get(o, "host");
		if (!json_is_string(v) || !*json_string_value(v))
			FAIL("host", "host: required for %s", conn);
		host = json_string_value(v);
		if (inet_pton(AF_INET, host, &a4) != 1 && inet_pton(AF_INET6, host, &a6) != 1 &&
		    strcmp(host, "localhost") != 0)
			FAIL("host", "host: must be a numeric IPv4/IPv6 address or localhost");
		v = json_object_get(o, "port");
		if (!v)
			json_object_set_new(o, "port", json_integer(502));
		else if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535)
			FAIL("port", "port: must be an integer 1..65535");
	}
	v = json_object_get(o, "unit_id");
	if (!v)
		json_object_set_new(o, "unit_id", json_integer(1));
	else if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 255)
		FAIL("unit_id", "unit_id: must be an integer 0..255");
	v = json_object_get(o, "profile");
	if (!v)
		FAIL("profile", "profile: required (a name from /api/device/supported, or sunspec)");
	prof = json_string_value(v);
	if (!prof || !profile_find(prof))
		FAIL("profile", "profile: unknown profile (see /api/device/supported)");
	v = json_object_get(o, "id");
	if (v && (!json_is_string(v) || !id_ok(json_string_value(v))))
		FAIL("id", "id: 1..32 characters of A-Z a-z 0-9 _ - .");
	v = json_object_get(o, "name");
	if (v && (!json_is_string(v) || strlen(json_string_value(v)) > 64))
		FAIL("name", "name: a string of at most 64 characters");
	v = json_object_get(o, "poll_interval_ms");
	if (v && (!json_is_integer(v) || json_integer_value(v) < 10 || json_integer_value(v) > 3600000))
		FAIL("poll_interval_ms", "poll_interval_ms: must be an integer 10..3600000");
#undef FAIL
	return 0;
}

/* The id a settings entry gets (explicit "id", else "dev<index>" as the
 * devices module names it). */
static void entry_id(const json_t *entry, size_t index, char *buf, size_t len)
{
	const char *id = json_string_value(json_object_get(entry, "id"));
	if (id)
		snprintf(buf, len, "%s", id);
	else
		snprintf(buf, len, "dev%zu", index);
}

static bool id_taken(const json_t *arr, const char *id)
{
	size_t i;
	json_t *d;
	char cur[64];

	json_array_foreach(arr, i, d) {
		entry_id(d, i, cur, sizeof(cur));
		if (strcmp(cur, id) == 0)
			return true;
	}
	return false;
}

/* Writes the new devices array to the settings file and applies it. */
static int devices_commit(struct web_request *rq, json_t *arr, unsigned ok_status, json_t *reply)
{
	struct egw *e = rq->egw;
	struct settings_error err = { 0 };
	char msg[512];
	int r;

	/* A patch, not a set: the API's list is the newer one and replaces a
	 * --set devices=... given on the command line (the demo starts that way). */
	json_t *patch = json_pack("{sO}", "devices", arr);
	r = patch ? settings_patch(e->settings, patch, &err) : -ENOMEM;
	json_decref(patch);
	if (r == -ENOMEM) {
		json_decref(reply);
		return web_reply_error(rq, 500, "out of memory", NULL);
	}
	if (r < 0) {
		json_decref(reply);
		return web_reply_error(rq, 400, settings_error_str(&err, msg, sizeof(msg)), err.key);
	}
	r = settings_save(e->settings);
	if (r < 0) {
		json_decref(reply);
		log_error("webui", "saving settings: %s", egw_strerror(r));
		return web_reply_error(rq, 500, "could not save the settings", NULL);
	}
	if (e->settings_changed) {
		r = e->settings_changed(e);
		if (r < 0)
			log_warn("webui", "applying device change: %s", egw_strerror(r));
	}
	return web_reply_json(rq, ok_status, reply);
}

int webui_h_device_post(struct web_request *rq)
{
	struct egw *e = rq->egw;
	char err[256], field[64] = "", id[64];
	const json_t *cur;
	json_t *o, *arr, *reply;
	int r;

	o = body_json(rq, err, sizeof(err));
	if (!o)
		return web_reply_error(rq, 400, err, "body");
	r = device_validate(o, field, sizeof(field), err, sizeof(err));
	if (r < 0) {
		json_decref(o);
		return web_reply_error(rq, 400, err, field);
	}
	cur = settings_get_json(e->settings, "devices");
	arr = json_is_array(cur) ? json_deep_copy(cur) : json_array();
	if (!arr) {
		json_decref(o);
		return web_reply_error(rq, 500, "out of memory", NULL);
	}
	if (json_object_get(o, "id")) {
		snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(o, "id")));
		if (id_taken(arr, id)) {
			json_decref(o);
			json_decref(arr);
			return web_reply_error(rq, 400, "id: a device with this id exists", "id");
		}
	} else {
		/* A stable id, so removing another device never renames this one. */
		for (unsigned n = 1;; n++) {
			snprintf(id, sizeof(id), "dev%u", n);
			if (!id_taken(arr, id))
				break;
		}
		json_object_set_new(o, "id", json_string(id));
	}
	if (json_array_size(arr) >= 32) {
		json_decref(o);
		json_decref(arr);
		return web_reply_error(rq, 400, "devices: at most 32 devices", "devices");
	}
	reply = json_pack("{s:O}", "device", o);
	json_array_append_new(arr, o);
	r = devices_commit(rq, arr, 201, reply);
	json_decref(arr);
	log_info("webui", "device %s added", id);
	return r;
}

int webui_h_device_delete(struct web_request *rq)
{
	struct egw *e = rq->egw;
	const char *id = query(rq, "id");
	json_t *body = NULL, *arr;
	const json_t *cur;
	char err[256], cid[64];
	size_t i;
	json_t *d;
	int r;

	if (!id && rq->body_len > 0) {
		body = body_json(rq, err, sizeof(err));
		if (!body)
			return web_reply_error(rq, 400, err, "body");
		id = json_string_value(json_object_get(body, "id"));
	}
	if (!id || !*id) {
		json_decref(body);
		return web_reply_error(rq, 400, "id: required (?id= or {\"id\": ...})", "id");
	}
	cur = settings_get_json(e->settings, "devices");
	arr = json_is_array(cur) ? json_deep_copy(cur) : json_array();
	if (!arr) {
		json_decref(body);
		return web_reply_error(rq, 500, "out of memory", NULL);
	}
	json_array_foreach(arr, i, d) {
		entry_id(d, i, cid, sizeof(cid));
		if (strcmp(cid, id) == 0)
			break;
	}
	if (i == json_array_size(arr)) {
		r = web_reply_error(rq, 404, "no device with this id", "id");
		json_decref(arr);
		json_decref(body);
		return r;
	}
	/* Entries after it without an explicit id would shift: pin their ids. */
	for (size_t k = i + 1; k < json_array_size(arr); k++) {
		json_t *x = json_array_get(arr, k);
		if (!json_object_get(x, "id")) {
			entry_id(x, k, cid, sizeof(cid));
			json_object_set_new(x, "id", json_string(cid));
		}
	}
	snprintf(cid, sizeof(cid), "%s", id);
	json_array_remove(arr, i);
	json_decref(body);
	r = devices_commit(rq, arr, 200, json_pack("{s:s}", "deleted", cid));
	json_decref(arr);
	log_info("webui", "device %s removed", cid);
	return r;
}

int webui_h_supported(struct web_request *rq)
{
	unsigned n;
	const struct profile *const *all = profile_all(&n);
	json_t *arr = json_array();

	for (unsigned i = 0; arr && i < n; i++) {
		const struct profile *p = all[i];
		json_t *reads = json_array();
		uint32_t seen = 0;

		for (unsigned k = 0; reads && k < p->nregs; k++) {
			int f = p->regs[k].field;
			char name[64];
			if (f < 0 || f >= RF_COUNT || (seen & (1u << f)))
				continue;
			seen |= 1u << f;
			snprintf(name, sizeof(name), "%s.%s", reading_fields[f].group, reading_fields[f].name);
			json_array_append_new(reads, json_string(name));
		}
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:o,s:b,s:b}", "name", p->name,
		                                     "brand", p->brand ? p->brand : "",
		                                     "family", p->family ? p->family : "",
		                                     "dtype", p->dtype ? p->dtype : "",
		                                     "reads", reads ? reads : json_array(),
		                                     "identity", p->serial != NULL,
		                                     "sunspec", p->sunspec_base != 0 ||
		                                                strcmp(p->name, "sunspec") == 0));
	}
	return web_reply_json(rq, 200, arr ? json_pack("{s:o}", "profiles", arr) : NULL);
}

int webui_h_frequency(struct web_request *rq)
{
	struct egw *e = rq->egw;

	if (!e->devices)
		return web_reply_json(rq, 200, json_pack("{s:n,s:n}", "device", "latest"));
	return web_reply_json(rq, 200, devices_frequency_json(e->devices));
}

/* ---- Modbus client for a configured device ------------------------------ */

/* Raw requests go through the running device's own client (raw_new); this
 * is the fallback for a device id that is in the settings but not in the
 * running set (settings not applied): a short-lived TCP client of its own.
 * Finds the settings entry of a device id and builds a client config from
 * it.  Strings point into the settings (valid until they change; the client
 * copies what it keeps).  Returns 0, -ENOENT, -ENOTSUP (serial rtu). */
static int device_client_config(struct egw *e, const char *id, struct mb_client_config *cfg,
                                uint8_t *ret_unit)
{
	const json_t *arr = settings_get_json(e->settings, "devices");
	size_t i;
	json_t *d;
	char cid[64];

	json_array_foreach(arr, i, d) {
		const char *conn;
		entry_id(d, i, cid, sizeof(cid));
		if (strcmp(cid, id) != 0)
			continue;
		conn = json_string_value(json_object_get(d, "connection"));
		if (!conn || strcmp(conn, "rtu") == 0)
			return -ENOTSUP;
		*cfg = (struct mb_client_config){
			.kind = strcmp(conn, "rtu-over-tcp") == 0 ? MB_TRANSPORT_RTU_OVER_TCP
			                                          : MB_TRANSPORT_TCP,
			.host = json_string_value(json_object_get(d, "host")),
			.port = (uint16_t)json_integer_value(json_object_get(d, "port")),
			.timeout = RAW_TIMEOUT,
			.connect_timeout = RAW_TIMEOUT,
			.max_timeouts = 1,
		};
		if (!cfg->port)
			cfg->port = 502;
		*ret_unit = json_object_get(d, "unit_id")
			? (uint8_t)json_integer_value(json_object_get(d, "unit_id")) : 1;
		return 0;
	}
	return -ENOENT;
}

/* ---- raw read / write ----------------------------------------------------- */

struct type_name {
	const char *name;
	enum reg_type type;
	unsigned words;
};

static const struct type_name type_names[] = {
	{ "u16", REG_U16, 1 }, { "i16", REG_I16, 1 }, { "u32", REG_U32, 2 }, { "i32", REG_I32, 2 },
	{ "u64", REG_U64, 4 }, { "f32", REG_F32, 2 }, { "str", REG_STR, 1 },
};

/* Frees the answered raw ops.  The task belongs to the webui, not to an op:
 * the scheduler touches a task after its run() returns, so a task must never
 * free the struct it is embedded in (it did: a use after free under
 * valgrind on every GET /api/inverter/modbus). */
static int raw_gc(struct task *t, usec_t now)
{
	struct webui *u = container_of(t, struct webui, raw_gc);
	(void)now;

	for (struct raw_op **pp = &u->raw; *pp;) {
		struct raw_op *op = *pp;
		if (!op->done || op->pending) {
			pp = &op->next;
			continue;
		}
		*pp = op->next;
		u->nraw--;
		mb_client_free(op->client);
		free(op);
	}
	return 0;
}

/* Answers the suspended request and schedules the cleanup. */
static void raw_finish(struct raw_op *op, unsigned status, json_t *reply)
{
	int q;
	op->done = true;
	q = web_reply_json(&op->rq, status, reply);
	log_debug("webui", "raw reply %u queued: %d", status, q);
	resume(op->u, op->rq.conn);
	loop_task_add(op->u->e->loop, &op->u->raw_gc, loop_now(op->u->e->loop));
}

static unsigned err_status(int err)
{
	if (err == -ETIMEDOUT)
		return 504;
	if (err == -ECANCELED)
		return 503; /* the device's connection was reset or the device removed */
	if (err <= -EGW_EMB_EXCEPTION_BASE && err > -(EGW_EMB_EXCEPTION_BASE + 256))
		return 502;
	return 502;
}

static void raw_read_done(void *ud, int err, const uint16_t *regs, unsigned count)
{
	struct raw_op *op = ud;
	const struct type_name *tn = NULL;
	json_t *raw, *vals, *reply;

	op->pending = false;
	if (!op->u) {
		free(op);
		return;
	}
	if (op->done)
		return;
	if (err < 0) {
		raw_finish(op, err_status(err), json_pack("{s:s,s:s,s:i}", "error", egw_strerror(err),
		                                           "device", op->device, "code", -err));
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(type_names); i++)
		if (type_names[i].type == op->type)
			tn = &type_names[i];
	raw = json_array();
	vals = json_array();
	for (unsigned i = 0; i < count; i++)
		json_array_append_new(raw, json_integer(regs[i]));
	if (op->type == REG_STR) {
		char s[2 * 125 + 1];
		size_t n = 0;
		for (unsigned i = 0; i < count; i++) {
			char c[2] = { (char)(regs[i] >> 8), (char)(regs[i] & 0xff) };
			for (int k = 0; k < 2; k++)
				if (c[k] >= 0x20 && c[k] < 0x7f)
					s[n++] = c[k];
		}
		while (n > 0 && s[n - 1] == ' ')
			n--;
		s[n] = 0;
		json_array_append_new(vals, json_string(s));
	} else {
		struct reg_def d = { .addr = op->addr, .fc = op->fc, .words = (uint8_t)tn->words,
		                     .type = op->type, .order = op->order, .scale = op->scale,
		                     .sf_addr = REG_NO_SF, .field = REG_NO_FIELD };
		for (unsigned i = 0; i + tn->words <= count; i += tn->words) {
			double v;
			if (reg_decode(&d, regs + i, &v) == 0 && isfinite(v))
				json_array_append_new(vals, json_real(v));
			else
				json_array_append_new(vals, json_null()); /* sentinel: unavailable */
		}
	}
	reply = json_pack("{s:s,s:i,s:i,s:i,s:s,s:s,s:f,s:o,s:O,s:O}", "device", op->device,
	                  "fc", op->fc, "address", op->addr, "count", count, "type", tn->name,
	                  "order", op->order == WO_LITTLE ? "little" : "big", "scale", op->scale,
	                  "raw", raw, "values", vals, "value",
	                  json_array_size(vals) ? json_array_get(vals, 0) : json_null());
	json_decref(vals);
	raw_finish(op, 200, reply);
}

static void raw_write_done(void *ud, int err)
{
	struct raw_op *op = ud;

	op->pending = false;
	if (!op->u) {
		free(op);
		return;
	}
	if (op->done)
		return;
	if (err < 0) {
		log_warn("webui", "modbus write to %s at %u failed: %s", op->device, op->addr,
		         egw_strerror(err));
		raw_finish(op, err_status(err), json_pack("{s:s,s:s,s:i}", "error", egw_strerror(err),
		                                           "device", op->device, "code", -err));
		return;
	}
	raw_finish(op, 200, json_pack("{s:s,s:i,s:i,s:i,s:b}", "device", op->device, "fc", op->fc,
	                              "address", op->addr, "count", op->count, "written", 1));
}

/* A new op for device and the client to queue it on (*ret_client, valid
 * only until the handler returns): the running device's own client, or, for
 * a device only in the settings, a client of the op's own. */
static struct raw_op *raw_new(struct web_request *rq, const char *device, char *err, size_t errlen,
                              struct mb_client **ret_client, uint8_t *ret_unit, int *ret_status)
{
	struct webui *u = U(rq);
	struct mb_client_config cfg;
	struct raw_op *op;
	struct device *d;
	int r;

	*ret_status = 400;
	if (u->nraw >= WEBUI_RAW_PENDING_MAX) {
		*ret_status = 503;
		snprintf(err, errlen, "too many raw Modbus requests in flight");
		return NULL;
	}
	d = devices_find(rq->egw->devices, device);
	if (d) {
		op = calloc(1, sizeof(*op));
		if (!op) {
			*ret_status = 500;
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
		*ret_client = device_client(d);
		*ret_unit = device_unit(d);
		goto fill;
	}
	r = device_client_config(rq->egw, device, &cfg, ret_unit);
	if (r == -ENOENT) {
		*ret_status = 404;
		snprintf(err, errlen, "device: no device with this id");
		return NULL;
	}
	if (r < 0) {
		snprintf(err, errlen, "device: not running, and a serial (rtu) line is only reached "
		         "through its running device");
		return NULL;
	}
	op = calloc(1, sizeof(*op));
	if (!op) {
		*ret_status = 500;
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r = mb_client_new(u->e->loop, &cfg, &op->client);
	if (r < 0) {
		free(op);
		*ret_status = 500;
		snprintf(err, errlen, "modbus client: %s", egw_strerror(r));
		return NULL;
	}
	*ret_client = op->client;
fill:
	op->u = u;
	op->rq = *rq;
	op->rq.body = NULL;
	op->rq.body_len = 0;
	snprintf(op->device, sizeof(op->device), "%s", device);
	return op;
}

/* The request is queued: its callback will run. */
static void raw_start(struct webui *u, struct raw_op *op)
{
	op->pending = true;
	op->next = u->raw;
	u->raw = op;
	u->nraw++;
	MHD_suspend_connection(op->rq.conn);
}

/* The only device when exactly one is configured. */
static const char *default_device(struct egw *e)
{
	const json_t *arr = settings_get_json(e->settings, "devices");
	if (json_array_size(arr) != 1)
		return NULL;
	return json_string_value(json_object_get(json_array_get(arr, 0), "id"))
		? json_string_value(json_object_get(json_array_get(arr, 0), "id")) : "dev0";
}

int webui_h_modbus_get(struct web_request *rq)
{
	struct webui *u = U(rq);
	const char *device = query(rq, "device"), *s;
	const struct type_name *tn = &type_names[0];
	unsigned long fc = 3, addr, count;
	enum word_order order = WO_BIG;
	double scale = 1;
	struct mb_client *client;
	struct raw_op *op;
	char err[160];
	uint8_t unit;
	int status, r;

	if (!device)
		device = default_device(rq->egw);
	if (!device)
		return web_reply_error(rq, 400, "device: required (a device id)", "device");
	if ((s = query(rq, "fc")) && parse_uint(s, 3, 4, &fc) < 0)
		return web_reply_error(rq, 400, "fc: must be 3 (holding) or 4 (input)", "fc");
	if (parse_uint(query(rq, "address"), 0, 65535, &addr) < 0)
		return web_reply_error(rq, 400, "address: required, 0..65535", "address");
	if ((s = query(rq, "type"))) {
		tn = NULL;
		for (size_t i = 0; i < ARRAY_SIZE(type_names); i++)
			if (strcmp(type_names[i].name, s) == 0)
				tn = &type_names[i];
		if (!tn)
			return web_reply_error(rq, 400, "type: one of u16, i16, u32, i32, u64, f32, str", "type");
	}
	count = tn->words;
	if ((s = query(rq, "count")) && parse_uint(s, 1, 125, &count) < 0)
		return web_reply_error(rq, 400, "count: 1..125", "count");
	if (count < tn->words || addr + count > 65536)
		return web_reply_error(rq, 400, "count: too small for the type or past 65535", "count");
	if ((s = query(rq, "order"))) {
		if (strcmp(s, "big") == 0 || strcmp(s, "abcd") == 0)
			order = WO_BIG;
		else if (strcmp(s, "little") == 0 || strcmp(s, "cdab") == 0)
			order = WO_LITTLE;
		else
			return web_reply_error(rq, 400, "order: big (ABCD) or little (CDAB)", "order");
	}
	if ((s = query(rq, "scale"))) {
		char *end;
		scale = strtod(s, &end);
		if (*end || !isfinite(scale) || scale == 0)
			return web_reply_error(rq, 400, "scale: a non-zero number", "scale");
	}
	op = raw_new(rq, device, err, sizeof(err), &client, &unit, &status);
	if (!op)
		return web_reply_error(rq, (unsigned)status, err, status == 400 || status == 404 ? "device" : NULL);
	op->fc = (uint8_t)fc;
	op->addr = (uint16_t)addr;
	op->count = (uint16_t)count;
	op->type = (uint8_t)tn->type;
	op->order = (uint8_t)order;
	op->scale = scale;
	r = mb_client_read(client, unit, op->fc, op->addr, op->count, raw_read_done, op);
	if (r < 0) {
		mb_client_free(op->client);
		free(op);
		return web_reply_error(rq, r == -ENOBUFS ? 503 : 500, egw_strerror(r), NULL);
	}
	u->raw_reads++;
	raw_start(u, op);
	return MHD_YES;
}

/* Allow-list entries: an address (any device), or {"device": id (optional,
 * "*" for any), "address": first, "count": n (default 1)}. */
static bool write_allowed(const json_t *list, const char *device, unsigned addr, unsigned count)
{
	for (unsigned a = addr; a < addr + count; a++) {
		bool ok = false;
		size_t i;
		json_t *e;

		json_array_foreach(list, i, e) {
			json_int_t first, n = 1;
			const char *dev = NULL;

			if (json_is_integer(e)) {
				first = json_integer_value(e);
			} else if (json_is_object(e) && json_is_integer(json_object_get(e, "address"))) {
				first = json_integer_value(json_object_get(e, "address"));
				if (json_is_integer(json_object_get(e, "count")))
					n = json_integer_value(json_object_get(e, "count"));
				dev = json_string_value(json_object_get(e, "device"));
			} else {
				continue;
			}
			if (dev && strcmp(dev, "*") != 0 && strcmp(dev, device) != 0)
				continue;
			/* first + n may overflow (the list is any JSON array); a - first
			 * in unsigned arithmetic is exact once a >= first. */
			if ((json_int_t)a >= first && n > 0 &&
			    (uint64_t)a - (uint64_t)first < (uint64_t)n)
				ok = true;
		}
		if (!ok)
			return false;
	}
	return true;
}

/* The body of POST /api/inverter/modbus: {"device"?: id, "address": 0..65535,
 * "values": [1..123 registers] or "value": one}, each value 0..65535 (or
 * -32768..-1, written as its 16-bit two's complement).  On success returns 0
 * with *ret_device (borrowed from o, NULL when absent), the address and the
 * values; otherwise -EINVAL with the field at fault and a message. */
static int raw_write_parse(const json_t *o, const char **ret_device, unsigned long *ret_addr,
                           uint16_t values[123], unsigned *ret_count, const char **ret_field,
                           const char **ret_msg)
{
	static const char vmsg[] = "values: 1..123 register values (0..65535)";
	const json_t *d = json_object_get(o, "device");
	json_t *v;
	unsigned long addr;
	unsigned count = 0;

	if (d && !json_is_string(d)) {
		*ret_field = "device";
		*ret_msg = "device: a device id (string)";
		return -EINVAL;
	}
	v = json_object_get(o, "address");
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 65535) {
		*ret_field = "address";
		*ret_msg = "address: required, 0..65535";
		return -EINVAL;
	}
	addr = (unsigned long)json_integer_value(v);
	v = json_object_get(o, "values");
	if (!v && json_object_get(o, "value"))
		v = json_pack("[O]", json_object_get(o, "value"));
	else
		json_incref(v);
	if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > 123) {
		json_decref(v);
		*ret_field = "values";
		*ret_msg = vmsg;
		return -EINVAL;
	}
	for (size_t i = 0; i < json_array_size(v); i++) {
		json_t *x = json_array_get(v, i);
		if (!json_is_integer(x) || json_integer_value(x) < -32768 ||
		    json_integer_value(x) > 65535) {
			json_decref(v);
			*ret_field = "values";
			*ret_msg = vmsg;
			return -EINVAL;
		}
		values[count++] = (uint16_t)json_integer_value(x);
	}
	json_decref(v);
	if (addr + count > 65536) {
		*ret_field = "values";
		*ret_msg = "values: past register 65535";
		return -EINVAL;
	}
	*ret_device = d ? json_string_value(d) : NULL;
	*ret_addr = addr;
	*ret_count = count;
	return 0;
}

int webui_h_modbus_post(struct web_request *rq)
{
	struct webui *u = U(rq);
	struct egw *e = rq->egw;
	char err[256], who[64], vals_text[200];
	uint16_t values[123];
	unsigned count = 0;
	unsigned long addr = 0;
	const char *device, *field = NULL, *msg = NULL;
	json_t *o;
	struct mb_client *client;
	struct raw_op *op;
	uint8_t unit;
	int status, r;
	size_t off = 0;

	o = body_json(rq, err, sizeof(err));
	if (!o)
		return web_reply_error(rq, 400, err, "body");
	if (raw_write_parse(o, &device, &addr, values, &count, &field, &msg) < 0) {
		json_decref(o);
		return web_reply_error(rq, 400, msg, field);
	}
	if (!device)
		device = default_device(e);
	if (!device) {
		json_decref(o);
		return web_reply_error(rq, 400, "device: required (a device id)", "device");
	}
	for (unsigned i = 0; i < count && off < sizeof(vals_text); i++)
		off += (size_t)snprintf(vals_text + off, sizeof(vals_text) - off, "%s%u",
		                        i ? "," : "", values[i]);
	client_addr(rq, who, sizeof(who));
	if (!write_allowed(settings_get_json(e->settings, "modbus_write_allowlist"), device,
	                   (unsigned)addr, count)) {
		u->raw_refused++;
		log_warn("webui", "modbus write refused (not on modbus_write_allowlist): client %s, "
		         "device %s, address %lu, %u register(s)", who, device, addr, count);
		json_decref(o);
		return web_reply_error(rq, 403, "address: not on the modbus_write_allowlist setting",
		                       "address");
	}
	op = raw_new(rq, device, err, sizeof(err), &client, &unit, &status);
	if (!op) {
		json_decref(o);
		return web_reply_error(rq, (unsigned)status, err, status == 400 || status == 404 ? "device" : NULL);
	}
	json_decref(o);
	op->write = true;
	op->addr = (uint16_t)addr;
	op->count = (uint16_t)count;
	op->fc = count == 1 ? 6 : 16;
	r = mb_client_write(client, unit, op->fc, op->addr, values, (uint16_t)count,
	                    raw_write_done, op);
	if (r < 0) {
		mb_client_free(op->client);
		free(op);
		return web_reply_error(rq, r == -ENOBUFS ? 503 : 500, egw_strerror(r), NULL);
	}
	/* The audit line: who wrote what where, before it happens. */
	log_info("webui", "modbus write by client %s (token): device %s unit %u fc %u address %lu "
	         "values [%s]", who, op->device, unit, op->fc, addr, vals_text);
	u->raw_writes++;
	raw_start(u, op);
	return MHD_YES;
}

/* ---- scan ----------------------------------------------------------------- */

static void probe_next(struct scan_probe *p);
static void scan_fill(struct webui *u);

/* Frees the clients of finished probes and starts the next targets.  One
 * task for the whole scan: a task must not re-initialise or free the struct
 * it is embedded in from its own run() (the scheduler touches it after). */
static int scan_gc(struct task *t, usec_t now)
{
	struct scan *sc = container_of(t, struct scan, gc);
	struct webui *u = container_of(sc, struct webui, scan);
	(void)now;

	for (unsigned i = 0; i < WEBUI_SCAN_PARALLEL; i++) {
		struct scan_probe *p = &sc->probes[i];
		if (!p->active || !p->finished)
			continue;
		mb_client_free(p->client);
		p->client = NULL;
		p->active = false;
		sc->done++;
	}
	scan_fill(u);
	return 0;
}

static void probe_end(struct scan_probe *p)
{
	p->busy = false;
	p->finished = true;
	loop_task_add(p->u->e->loop, &p->u->scan.gc, loop_now(p->u->e->loop));
}

static void probe_found(struct scan_probe *p, const char *profile, const char *serial,
                        const char *manufacturer, bool sunspec)
{
	struct scan *sc = &p->u->scan;
	struct scan_result *res;

	if (sc->nresults == WEBUI_SCAN_RESULTS_MAX)
		return;
	res = &sc->results[sc->nresults++];
	*res = (struct scan_result){ .port = sc->targets[p->target].port, .unit = sc->unit,
	                             .sunspec = sunspec };
	memcpy(res->host, sc->targets[p->target].host, sizeof(res->host));
	res->host[sizeof(res->host) - 1] = 0;
	snprintf(res->profile, sizeof(res->profile), "%s", profile ? profile : "");
	snprintf(res->serial, sizeof(res->serial), "%s", serial ? serial : "");
	snprintf(res->manufacturer, sizeof(res->manufacturer), "%s", manufacturer ? manufacturer : "");
}

static void regs_ascii(const uint16_t *regs, unsigned n, char *out, size_t len)
{
	size_t k = 0;
	for (unsigned i = 0; i < n && k + 2 < len; i++) {
		char c[2] = { (char)(regs[i] >> 8), (char)(regs[i] & 0xff) };
		for (int j = 0; j < 2; j++)
			if (c[j] >= 0x20 && c[j] < 0x7f)
				out[k++] = c[j];
	}
	while (k > 0 && out[k - 1] == ' ')
		k--;
	out[k] = 0;
}

static bool conn_error(int err)
{
	return err == -ETIMEDOUT || err == -ECONNREFUSED || err == -ECONNRESET ||
	       err == -EHOSTUNREACH || err == -ENETUNREACH || err == -ECANCELED || err == -EPIPE;
}

static void probe_cb(void *ud, int err, const uint16_t *regs, unsigned count)
{
	struct scan_probe *p = ud;
	unsigned n;
	const struct profile *const *all = profile_all(&n);

	p->busy = false;
	if (!p->u->scan.running)
		return;
	if (err < 0 && conn_error(err) && p->step <= 1) {
		probe_end(p); /* nothing listening, or not Modbus */
		return;
	}
	if (p->step == 0) {
		if (err == 0 && count == 2 && sunspec_is_marker(regs)) {
			p->step = 1; /* read the common model: manufacturer and serial */
			if (mb_client_read(p->client, p->u->scan.unit, 3, 40004, 64, probe_cb, p) == 0) {
				p->busy = true;
				return;
			}
			probe_found(p, "sunspec", NULL, NULL, true);
			probe_end(p);
			return;
		}
		p->step = 2;
		p->prof = 0;
	} else if (p->step == 1) {
		char mn[40] = "", sn[40] = "";
		if (err == 0 && count == 64) {
			regs_ascii(regs, 16, mn, sizeof(mn));
			regs_ascii(regs + 48, 16, sn, sizeof(sn));
		}
		probe_found(p, "sunspec", sn, mn, true);
		probe_end(p);
		return;
	} else if (p->step == 2) {
		/* The serial register of profile p->prof answered? */
		const struct profile *pr = all[p->prof];
		if (err == 0) {
			struct block_result br = { .b = { .fc = pr->serial->fc, .addr = pr->serial->addr,
			                                  .count = (uint16_t)count } };
			memcpy(br.regs, regs, count * sizeof(regs[0]));
			if (profile_decode_serial(pr, &br, 1, p->serial, sizeof(p->serial)) > 0) {
				if (!pr->frequency) {
					probe_found(p, pr->name, p->serial, pr->brand, false);
					probe_end(p);
					return;
				}
				p->step = 3; /* confirm by a plausible grid frequency */
				if (mb_client_read(p->client, p->u->scan.unit, pr->frequency->fc,
				                   pr->frequency->addr, pr->frequency->words, probe_cb, p) == 0) {
					p->busy = true;
					return;
				}
			}
		} else if (conn_error(err) && err != -ETIMEDOUT) {
			probe_end(p);
			return;
		}
		p->prof++;
	} else if (p->step == 3) {
		const struct profile *pr = all[p->prof];
		double hz;
		if (err == 0 && reg_decode(pr->frequency, regs, &hz) == 0) {
			hz = hz * (pr->frequency->field >= 0 ? pr->frequency->mul : 1) +
			     (pr->frequency->field >= 0 ? pr->frequency->add : 0);
			if (hz >= 45 && hz <= 65) {
				probe_found(p, pr->name, p->serial, pr->brand, false);
				probe_end(p);
				return;
			}
		}
		p->step = 2;
		p->prof++;
	}
	probe_next(p);
}

/* Tries the next profile with an identity register. */
static void probe_next(struct scan_probe *p)
{
	unsigned n;
	const struct profile *const *all = profile_all(&n);

	while (p->prof < n) {
		const struct profile *pr = all[p->prof];
		if (pr->serial && pr->sunspec_base == 0 && pr->serial->words <= PROFILE_MAX_BLOCK &&
		    (pr->serial->fc == 3 || pr->serial->fc == 4)) {
			if (mb_client_read(p->client, p->u->scan.unit, pr->serial->fc, pr->serial->addr,
			                   pr->serial->words, probe_cb, p) == 0) {
				p->busy = true;
				return;
			}
		}
		p->prof++;
	}
	/* Answers Modbus but matches no profile: list it, unidentified. */
	probe_found(p, NULL, NULL, NULL, false);
	probe_end(p);
}

static void probe_start(struct webui *u, struct scan_probe *p, unsigned target)
{
	struct scan_target *t = &u->scan.targets[target];
	struct mb_client_config cfg = {
		.kind = MB_TRANSPORT_TCP, .host = t->host, .port = t->port,
		.timeout = SCAN_TIMEOUT, .connect_timeout = SCAN_TIMEOUT, .max_timeouts = 100,
		.backoff_min = 10 * USEC_PER_SEC,
	};

	*p = (struct scan_probe){ .u = u, .target = target, .active = true };
	if (mb_client_new(u->e->loop, &cfg, &p->client) < 0 ||
	    mb_client_read(p->client, u->scan.unit, 3, 40000, 2, probe_cb, p) < 0) {
		probe_end(p);
		return;
	}
	p->busy = true;
}

static void scan_fill(struct webui *u)
{
	struct scan *sc = &u->scan;
	bool any = false;

	for (unsigned i = 0; i < WEBUI_SCAN_PARALLEL; i++) {
		if (!sc->probes[i].active && sc->next < sc->ntargets)
			probe_start(u, &sc->probes[i], sc->next++);
		any |= sc->probes[i].active;
	}
	if (!any && sc->running) {
		sc->running = false;
		sc->finished_ms = wall_ms();
	}
}

static void scan_stop(struct webui *u)
{
	struct scan *sc = &u->scan;

	sc->running = false;
	loop_task_cancel(u->e->loop, &sc->gc);
	for (unsigned i = 0; i < WEBUI_SCAN_PARALLEL; i++) {
		struct scan_probe *p = &sc->probes[i];
		if (!p->active)
			continue;
		mb_client_free(p->client); /* callbacks see running == false */
		p->client = NULL;
		p->active = false;
	}
}

/* Hosts: comma separated IPv4 addresses or a.b.c.d/n (n >= 24).  Ports:
 * comma separated.  Fills the target list; returns 0 or -EINVAL/-E2BIG with
 * the field at fault in *ret_field. */
/* Scans are open to readers (a GET), so they may only reach the gateway's own
 * neighbourhood: loopback, the private and link-local ranges, and the subnets
 * of its interfaces.  egwd must not be a tool to probe other networks. */
static bool scan_allowed(uint32_t a)
{
	static const struct { uint32_t net, mask; } ranges[] = {
		{ 0x7F000000, 0xFF000000 }, /* 127.0.0.0/8 */
		{ 0x0A000000, 0xFF000000 }, /* 10.0.0.0/8 */
		{ 0xAC100000, 0xFFF00000 }, /* 172.16.0.0/12 */
		{ 0xC0A80000, 0xFFFF0000 }, /* 192.168.0.0/16 */
		{ 0xA9FE0000, 0xFFFF0000 }, /* 169.254.0.0/16 */
	};
	struct ifaddrs *ifs, *i;
	bool ok = false;

	for (size_t k = 0; k < ARRAY_SIZE(ranges); k++)
		if ((a & ranges[k].mask) == ranges[k].net)
			return true;
	if (getifaddrs(&ifs) < 0)
		return false;
	for (i = ifs; i && !ok; i = i->ifa_next) {
		if (!i->ifa_addr || !i->ifa_netmask || i->ifa_addr->sa_family != AF_INET)
			continue;
		uint32_t ia = ntohl(((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr);
		uint32_t im = ntohl(((struct sockaddr_in *)i->ifa_netmask)->sin_addr.s_addr);
		ok = im != 0 && (a & im) == (ia & im);
	}
	freeifaddrs(ifs);
	return ok;
}

unsigned webui_local_networks(const struct ifaddrs *ifs, char *buf, size_t n)
{
	const struct ifaddrs *i;
	unsigned count = 0;
	size_t off = 0;

	if (n)
		buf[0] = 0;
	for (i = ifs; i; i = i->ifa_next) {
		char net[INET_ADDRSTRLEN], item[INET_ADDRSTRLEN + 8];
		struct in_addr a;
		uint32_t ia, im;
		int bits;

		if (!i->ifa_addr || !i->ifa_netmask || i->ifa_addr->sa_family != AF_INET ||
		    !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
			continue;
		ia = ntohl(((const struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr);
		im = ntohl(((const struct sockaddr_in *)i->ifa_netmask)->sin_addr.s_addr);
		bits = __builtin_popcount(im);
		if (bits >= 31)
			continue; /* point to point: no neighbours */
		if (bits < 24)
			bits = 24;
		a.s_addr = htonl(ia & (0xFFFFFFFFu << (32 - bits)));
		inet_ntop(AF_INET, &a, net, sizeof(net));
		snprintf(item, sizeof(item), "%s/%d", net, bits);
		/* the same network on two interfaces (or twice on one) once */
		if (off && strstr(buf, item)) {
			const char *at = strstr(buf, item);
			size_t len = strlen(item);
			if ((at == buf || at[-1] == ',') && (at[len] == ',' || at[len] == 0))
				continue;
		}
		if (off + strlen(item) + 2 > n)
			break;
		off += (size_t)snprintf(buf + off, n - off, "%s%s", off ? "," : "", item);
		count++;
	}
	return count;
}

static int scan_targets(struct scan *sc, const char *hosts, const char *ports, const char **ret_field)
{
	uint16_t plist[16];
	unsigned np = 0;
	char buf[256], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", ports);
	for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		unsigned long p;
		if (np == ARRAY_SIZE(plist) || parse_uint(tok, 1, 65535, &p) < 0) {
			*ret_field = "ports";
			return -EINVAL;
		}
		plist[np++] = (uint16_t)p;
	}
	if (np == 0) {
		*ret_field = "ports";
		return -EINVAL;
	}
	sc->ntargets = 0;
	snprintf(buf, sizeof(buf), "%s", hosts);
	for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		char *slash = strchr(tok, '/');
		unsigned long bits = 32;
		struct in_addr a;
		uint32_t base, nhosts;

		if (slash) {
			*slash = 0;
			if (parse_uint(slash + 1, 24, 32, &bits) < 0) {
				*ret_field = "hosts";
				return -EINVAL;
			}
		}
		if (inet_pton(AF_INET, tok, &a) != 1) {
			*ret_field = "hosts";
			return -EINVAL;
		}
		nhosts = 1u << (32 - bits);
		base = ntohl(a.s_addr) & ~(nhosts - 1);
		if (!scan_allowed(base) || !scan_allowed(base + nhosts - 1)) {
			*ret_field = "hosts";
			return -EACCES;
		}
		for (uint32_t h = 0; h < nhosts; h++) {
			struct in_addr x = { .s_addr = htonl(base + h) };
			if (nhosts > 2 && (h == 0 || h == nhosts - 1))
				continue; /* network and broadcast addresses */
			for (unsigned k = 0; k < np; k++) {
				if (sc->ntargets == WEBUI_SCAN_TARGETS_MAX) {
					*ret_field = "hosts";
					return -E2BIG;
				}
				inet_ntop(AF_INET, &x, sc->targets[sc->ntargets].host,
				          sizeof(sc->targets[0].host));
				sc->targets[sc->ntargets++].port = plist[k];
			}
		}
	}
	if (sc->ntargets == 0) {
		*ret_field = "hosts";
		return -EINVAL;
	}
	return 0;
}

static json_t *scan_json(const struct scan *sc)
{
	json_t *res = json_array();

	for (unsigned i = 0; res && i < sc->nresults; i++) {
		const struct scan_result *r = &sc->results[i];
		json_array_append_new(res, json_pack("{s:s,s:i,s:i,s:s?,s:s?,s:s?,s:b}", "host", r->host,
		                                     "port", r->port, "unit_id", r->unit, "profile",
		                                     r->profile[0] ? r->profile : NULL, "serial",
		                                     r->serial[0] ? r->serial : NULL, "manufacturer",
		                                     r->manufacturer[0] ? r->manufacturer : NULL,
		                                     "sunspec", r->sunspec));
	}
	return json_pack("{s:b,s:I,s:I,s:i,s:i,s:s,s:s,s:o}", "running", sc->running, "started_ms",
	                 (json_int_t)sc->started_ms, "finished_ms", (json_int_t)sc->finished_ms,
	                 "total", sc->ntargets, "done", sc->done, "hosts", sc->hosts_arg, "ports",
	                 sc->ports_arg, "results", res ? res : json_array());
}

int webui_h_scan(struct web_request *rq)
{
	struct webui *u = U(rq);
	struct scan *sc = &u->scan;
	const char *hosts = query(rq, "hosts"), *ports = query(rq, "ports"), *s;
	const char *field = NULL;
	unsigned long unit = 1;
	char nets[256]; /* as long as scan_targets takes */
	struct scan tmp;
	int r;

	if (!hosts && !ports)
		return web_reply_json(rq, 200, json_pack("{s:o}", "scan", scan_json(sc)));
	if (!hosts)
		hosts = "127.0.0.1";
	if (!ports)
		ports = "502";
	if (strcmp(hosts, "local") == 0) {
		/* The subnets of the gateway's own interfaces (on a board: the LAN
		 * with the inverters).  Only when asked: never by default. */
		struct ifaddrs *ifs;

		if (getifaddrs(&ifs) < 0)
			return web_reply_error(rq, 500, "hosts: cannot list the network interfaces", "hosts");
		r = (int)webui_local_networks(ifs, nets, sizeof(nets));
		freeifaddrs(ifs);
		if (r == 0)
			return web_reply_error(rq, 400, "hosts: this gateway has no IPv4 network "
			                                "besides loopback", "hosts");
		hosts = nets;
	}
	if ((s = query(rq, "unit_id")) && parse_uint(s, 0, 255, &unit) < 0)
		return web_reply_error(rq, 400, "unit_id: 0..255", "unit_id");
	/* Parse into a scratch copy so a bad request leaves the last results. */
	r = scan_targets(&tmp, hosts, ports, &field);
	if (r < 0)
		return web_reply_error(rq, 400, r == -E2BIG ? "too many targets (at most 1024 host:port pairs)"
		                                : r == -EACCES ? "hosts: only the gateway's own networks "
		                                                 "may be scanned (loopback, private and "
		                                                 "link-local ranges, its interfaces' subnets)"
		                                            : strcmp(field, "ports") == 0
		                                                ? "ports: comma separated 1..65535"
		                                                : "hosts: comma separated IPv4 addresses or a.b.c.d/24..32",
		                       field);
	scan_stop(u);
	memcpy(sc->targets, tmp.targets, sizeof(tmp.targets[0]) * tmp.ntargets);
	sc->ntargets = tmp.ntargets;
	sc->next = sc->done = sc->nresults = 0;
	sc->unit = (uint8_t)unit;
	sc->running = true;
	sc->started_ms = wall_ms();
	sc->finished_ms = 0;
	snprintf(sc->hosts_arg, sizeof(sc->hosts_arg), "%s", hosts);
	snprintf(sc->ports_arg, sizeof(sc->ports_arg), "%s", ports);
	scan_fill(u);
	return web_reply_json(rq, 202, json_pack("{s:o}", "scan", scan_json(sc)));
}

/* ---- metrics ------------------------------------------------------------ */

static void label(struct web_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			web_buf_append(b, "\\", 1);
		if (*s == '\n')
			web_buf_append(b, "\\n", 2);
		else
			web_buf_append(b, s, 1);
	}
}

static void metric_head(struct web_buf *b, const char *name, const char *type, const char *help)
{
	web_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void dev_counter(struct web_buf *b, const char *name, const char *id, double v)
{
	web_buf_printf(b, "%s{device=\"", name);
	label(b, id);
	web_buf_printf(b, "\"} %.17g\n", v);
}

static void on_metrics(void *ud, struct web_buf *b)
{
	struct webui *u = ud;
	struct egw *e = u->e;
	unsigned n = e->devices ? devices_count(e->devices) : 0;
	struct sse_stats ss;

	metric_head(b, "egw_device_poll_latency_seconds", "histogram",
	            "Duration of a device's poll cycle (all its reads).");
	for (unsigned i = 0; i < u->nhists; i++) {
		const struct dev_hist *h = &u->hists[i];
		uint64_t cum = 0;
		for (unsigned k = 0; k < LAT_BUCKETS; k++) {
			cum += h->hist[k];
			web_buf_append(b, "egw_device_poll_latency_seconds_bucket{device=\"", 47);
			label(b, h->id);
			if (k < ARRAY_SIZE(lat_bounds))
				web_buf_printf(b, "\",le=\"%g\"} %" PRIu64 "\n", lat_bounds[k], cum);
			else
				web_buf_printf(b, "\",le=\"+Inf\"} %" PRIu64 "\n", cum);
		}
		dev_counter(b, "egw_device_poll_latency_seconds_sum", h->id, h->sum);
		dev_counter(b, "egw_device_poll_latency_seconds_count", h->id, (double)cum);
	}

	/* devices/wire.c publishes polls, poll errors, timeouts, reconnects,
	 * transitions, the state and the frequency lateness; these add to it. */
	static const struct {
		const char *name, *type, *help;
	} dm[] = {
		{ "egw_device_reads_total", "counter", "Modbus requests issued." },
		{ "egw_device_exceptions_total", "counter", "Modbus exception replies." },
		{ "egw_device_last_good_read_timestamp_seconds", "gauge",
		  "Wall clock time of the last complete poll (0: never)." },
		{ "egw_device_up", "gauge", "1 while the device is polling." },
	};
	for (size_t m = 0; m < ARRAY_SIZE(dm); m++) {
		metric_head(b, dm[m].name, dm[m].type, dm[m].help);
		for (unsigned i = 0; i < n; i++) {
			struct device *d = devices_get(e->devices, i);
			struct device_stats st;
			double v = 0;
			device_stats(d, &st);
			switch (m) {
			case 0: v = (double)st.reads; break;
			case 1: v = (double)st.exceptions; break;
			case 2: v = (double)st.last_good_ms / 1000.0; break;
			case 3: v = device_state(d) == DEV_POLLING; break;
			}
			dev_counter(b, dm[m].name, device_id(d), v);
		}
	}

	metric_head(b, "egw_frequency_hz", "gauge", "Latest grid frequency sample.");
	if (u->freq_samples)
		web_buf_printf(b, "egw_frequency_hz %.4f\n", u->freq_hz);
	metric_head(b, "egw_frequency_samples_total", "counter", "Grid frequency samples taken.");
	web_buf_printf(b, "egw_frequency_samples_total %" PRIu64 "\n", u->freq_samples);

	sse_hub_stats(u->hub, &ss);
	metric_head(b, "egw_sse_clients", "gauge", "Live stream (SSE) clients connected.");
	web_buf_printf(b, "egw_sse_clients %u\n", ss.clients);
	metric_head(b, "egw_sse_events_total", "counter", "Events published on the live stream.");
	web_buf_printf(b, "egw_sse_events_total %" PRIu64 "\n", ss.events);
	metric_head(b, "egw_sse_dropped_clients_total", "counter",
	            "Live stream clients dropped for falling behind.");
	web_buf_printf(b, "egw_sse_dropped_clients_total %" PRIu64 "\n", ss.dropped);
	metric_head(b, "egw_sse_rejected_clients_total", "counter",
	            "Live stream clients refused (too many).");
	web_buf_printf(b, "egw_sse_rejected_clients_total %" PRIu64 "\n", ss.rejected);

	metric_head(b, "egw_modbus_raw_requests_total", "counter",
	            "Raw Modbus requests through the API by kind (read, write, refused write).");
	web_buf_printf(b, "egw_modbus_raw_requests_total{kind=\"read\"} %" PRIu64 "\n", u->raw_reads);
	web_buf_printf(b, "egw_modbus_raw_requests_total{kind=\"write\"} %" PRIu64 "\n", u->raw_writes);
	web_buf_printf(b, "egw_modbus_raw_requests_total{kind=\"refused\"} %" PRIu64 "\n",
	               u->raw_refused);

	if (e->mqtt) {
		struct mqtt_stats ms;
		mqtt_stats(e->mqtt, &ms);
		metric_head(b, "egw_mqtt_connected", "gauge", "1 while connected to the MQTT broker.");
		web_buf_printf(b, "egw_mqtt_connected %d\n", ms.connected);
		metric_head(b, "egw_mqtt_messages_total", "counter",
		            "MQTT messages by stage (queued, published, acked, dropped).");
		web_buf_printf(b, "egw_mqtt_messages_total{stage=\"queued\"} %" PRIu64 "\n"
		               "egw_mqtt_messages_total{stage=\"published\"} %" PRIu64 "\n"
		               "egw_mqtt_messages_total{stage=\"acked\"} %" PRIu64 "\n"
		               "egw_mqtt_messages_total{stage=\"dropped\"} %" PRIu64 "\n",
		               ms.queued, ms.published, ms.acked, ms.dropped);
		metric_head(b, "egw_mqtt_backlog_messages", "gauge", "MQTT messages waiting for the broker.");
		web_buf_printf(b, "egw_mqtt_backlog_messages %u\n", ms.backlog);
		metric_head(b, "egw_mqtt_connects_total", "counter", "Accepted MQTT connections.");
		web_buf_printf(b, "egw_mqtt_connects_total %" PRIu64 "\n", ms.connects);
	}
}

/* ---- MQTT lifecycle ------------------------------------------------------- */

static void mqtt_signature(const struct settings *s, char *buf, size_t len)
{
	snprintf(buf, len, "%d|%s|%lld|%s|%s|%d|%s|%s|%s", settings_get_bool(s, "mqtt.enabled"),
	         settings_get_str(s, "mqtt.host"), (long long)settings_get_int(s, "mqtt.port"),
	         settings_get_str(s, "mqtt.username"), settings_get_str(s, "mqtt.password"),
	         settings_get_bool(s, "mqtt.tls"), settings_get_str(s, "mqtt.topic_prefix"),
	         settings_get_str(s, "mqtt.discovery_prefix"), settings_get_str(s, "mqtt.ca_file"));
}

static int mqtt_apply(struct webui *u)
{
	struct egw *e = u->e;
	const struct settings *s = e->settings;
	char sig[sizeof(u->mqtt_sig)];
	int r;

	mqtt_signature(s, sig, sizeof(sig));
	if (strcmp(sig, u->mqtt_sig) == 0)
		return 0;
	snprintf(u->mqtt_sig, sizeof(u->mqtt_sig), "%s", sig);
	mqtt_free(e->mqtt);
	e->mqtt = NULL;
	if (!settings_get_bool(s, "mqtt.enabled"))
		return 0;
	struct mqtt_config cfg = {
		.host = settings_get_str(s, "mqtt.host"),
		.port = (int)settings_get_int(s, "mqtt.port"),
		.username = settings_get_str(s, "mqtt.username"),
		.password = settings_get_str(s, "mqtt.password"),
		.tls = settings_get_bool(s, "mqtt.tls"),
		.ca_file = settings_get_str(s, "mqtt.ca_file"),
		.topic_prefix = settings_get_str(s, "mqtt.topic_prefix"),
		.discovery_prefix = settings_get_str(s, "mqtt.discovery_prefix"),
	};
	r = mqtt_new(e->loop, &cfg, e->signer ? signer_serial_hex(e->signer) : "gateway", &e->mqtt);
	if (r < 0) {
		log_error("webui", "MQTT to %s:%d: %s", cfg.host, cfg.port, egw_strerror(r));
		return r;
	}
	log_info("webui", "MQTT publishing to %s:%d (prefix %s)", cfg.host, cfg.port,
	         cfg.topic_prefix);
	return 0;
}

int webui_settings_changed(struct webui *u)
{
	if (!u)
		return 0;
	return mqtt_apply(u);
}

/* ---- health notifications --------------------------------------------- */

#define WATCH_PERIOD (5 * USEC_PER_SEC)

static int on_watch(struct task *t, usec_t now)
{
	struct webui *u = container_of(t, struct webui, watch);
	struct egw *e = u->e;
	(void)now;

	if (e->uploader) {
		struct uploader_stats st;
		uploader_get_stats(e->uploader, &st);
		if (st.failed > u->up_failed && st.ok == u->up_ok && st.last_error)
			webui_notify(u, "error", "backend", "backend unreachable: %s (%" PRIu64 " failed "
			             "attempts; batches wait in the store)", egw_strerror(st.last_error),
			             st.failed);
		else if (st.ok > u->up_ok)
			note_clear(u, "backend");
		u->up_failed = st.failed;
		u->up_ok = st.ok;
	}
	if (e->store) {
		struct store_stats ss;
		int64_t max = settings_get_int(e->settings, "store.max_bytes");
		store_get_stats(e->store, &ss);
		if (ss.disk_full)
			webui_notify(u, "error", "store", "store: the disk is full");
		else if (max > 0 && ss.bytes >= max / 10 * 9)
			webui_notify(u, "warning", "store", "store near full: %" PRId64 " of %" PRId64
			             " bytes, %" PRId64 " batches waiting; the oldest will be dropped",
			             ss.bytes, max, ss.backlog);
		else
			note_clear(u, "store");
	}
	return 0;
}

/* ---- lifecycle ------------------------------------------------------------ */

int webui_new(struct egw *e, struct webui **ret)
{
	struct webui *u = calloc(1, sizeof(*u));
	int r;

	if (!u)
		return -ENOMEM;
	u->e = e;
	u->heartbeat = (struct task){ .name = "sse-heartbeat", .run = on_heartbeat,
	                              .period = HEARTBEAT_PERIOD, .prio = 10 };
	u->watch = (struct task){ .name = "webui-watch", .run = on_watch,
	                          .period = WATCH_PERIOD, .prio = 20 };
	u->kick = (struct task){ .name = "webui-kick", .run = on_kick, .prio = 0 };
	u->raw_gc = (struct task){ .name = "webui-raw", .run = raw_gc };
	u->scan.gc = (struct task){ .name = "webui-scan", .run = scan_gc };
	u->heartbeat.idx = u->watch.idx = u->kick.idx = u->raw_gc.idx = u->scan.gc.idx =
		SCHED_NOT_QUEUED;
	/* A live stream holds its connection for ever: keep 8 of
	 * http.max_connections (half when it is that small) for everything else,
	 * or a few idle stream clients lock everyone out. */
	{
		unsigned maxc = (unsigned)settings_get_int(e->settings, "http.max_connections");
		unsigned live = maxc > 16 ? maxc - 8 : MAX(1u, maxc / 2);
		r = sse_hub_new(0, MIN(live, SSE_MAX_CLIENTS), &u->hub);
	}
	if (r < 0)
		goto err;
	r = loop_task_add(e->loop, &u->watch, loop_now(e->loop) + WATCH_PERIOD);
	if (r < 0)
		goto err;
	r = loop_task_add(e->loop, &u->heartbeat, loop_now(e->loop) + HEARTBEAT_PERIOD);
	if (r < 0)
		goto err;
	if (e->web) {
		r = web_add_metrics(e->web, on_metrics, u);
		if (r < 0)
			goto err;
	}
	mqtt_apply(u); /* an MQTT failure is logged, not fatal */
	*ret = u;
	return 0;
err:
	loop_task_cancel(e->loop, &u->heartbeat);
	loop_task_cancel(e->loop, &u->watch);
	sse_hub_free(u->hub);
	free(u);
	return r;
}

void webui_daemon_closing(struct webui *u)
{
	if (!u)
		return;
	/* Raw requests still waiting for their device: answered now (the
	 * device's answer, when it comes, finds them done and is dropped). */
	for (struct raw_op *op = u->raw; op; op = op->next) {
		if (op->done)
			continue;
		op->done = true;
		web_reply_error(&op->rq, 503, "the web server moved to another address", NULL);
		MHD_resume_connection(op->rq.conn);
	}
	if (u->raw)
		loop_task_add(u->e->loop, &u->raw_gc, loop_now(u->e->loop));
	/* Live streams end; MHD frees each one when it closes the connection. */
	for (struct live_conn *lc = u->live; lc; lc = lc->next) {
		sse_client_detach(lc->client);
		lc->u = NULL;
		MHD_resume_connection(lc->conn);
	}
	u->live = NULL;
	loop_task_cancel(u->e->loop, &u->kick);
	u->daemon = NULL; /* the next resume looks the new daemon up */
}

void webui_free(struct webui *u)
{
	if (!u)
		return;
	scan_stop(u);
	loop_task_cancel(u->e->loop, &u->raw_gc);
	/* Pending raw requests: answer them and let MHD finish them. */
	while (u->raw) {
		struct raw_op *op = u->raw;
		u->raw = op->next;
		if (!op->done) {
			op->done = true;
			web_reply_error(&op->rq, 503, "shutting down", NULL);
			MHD_resume_connection(op->rq.conn);
		}
		mb_client_free(op->client); /* an own client: its callback runs now */
		if (op->pending)
			op->u = NULL; /* on a device's client: its callback frees the op */
		else
			free(op);
	}
	/* Live streams end; MHD frees each one when it closes the connection. */
	for (struct live_conn *lc = u->live; lc; lc = lc->next) {
		sse_client_detach(lc->client);
		lc->u = NULL;
		MHD_resume_connection(lc->conn);
	}
	u->live = NULL;
	loop_task_cancel(u->e->loop, &u->heartbeat);
	loop_task_cancel(u->e->loop, &u->kick);
	loop_task_cancel(u->e->loop, &u->watch);
	mqtt_free(u->e->mqtt);
	u->e->mqtt = NULL;
	sse_hub_free(u->hub);
	free(u);
}

/* /api/state "mqtt": whether MQTT is on, where to, and how it goes.  Takes
 * the egw (not the webui, which stops first) and reads e->mqtt afresh. */
static json_t *mqtt_section(void *ud)
{
	struct egw *e = ud;
	const struct settings *s = e->settings;
	struct mqtt_stats ms;

	if (!settings_get_bool(s, "mqtt.enabled"))
		return json_pack("{s:b}", "enabled", 0);
	if (!e->mqtt)
		return json_pack("{s:b,s:b,s:s}", "enabled", 1, "connected", 0, "last_error",
				 "not started (see the log)");
	mqtt_stats(e->mqtt, &ms);
	return json_pack("{s:b,s:s,s:I,s:b,s:b,s:I,s:I,s:I,s:I,s:I,s:s?}", "enabled", 1,
			 "host", settings_get_str(s, "mqtt.host"),
			 "port", (json_int_t)settings_get_int(s, "mqtt.port"),
			 "tls", settings_get_bool(s, "mqtt.tls"), "connected", ms.connected,
			 "connects", (json_int_t)ms.connects, "disconnects", (json_int_t)ms.disconnects,
			 "acked", (json_int_t)ms.acked, "backlog", (json_int_t)ms.backlog,
			 "dropped", (json_int_t)ms.dropped, "last_error", ms.last_error);
}

int webui_egw_init(struct egw *e)
{
	int r = webui_new(e, &e->webui);
	if (r < 0)
		log_error("webui", "starting the web UI: %s", egw_strerror(r));
	else if (e->web)
		web_add_section(e->web, "mqtt", mqtt_section, e, true);
	return r;
}

void webui_egw_fini(struct egw *e)
{
	struct webui *u = e->webui;
	e->webui = NULL; /* hooks fired while stopping see no UI */
	webui_free(u);
}
