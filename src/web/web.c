#include "web/web.h"
#include "web/webui.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/memtrim.h"
#include "base/util.h"
#include "config/settings.h"
#include "egw.h"
#include "loop/loop.h"
#include "profiles/reading.h"
#include "sched/sched.h"

#define HEADER_LIMIT (16 * 1024)      /* per-connection memory for the request head */
#define AUTH_WINDOW_MS 10000
#define AUTH_MAX_FAILURES 10   /* per client address, within the window */
#define AUTH_PEERS 32          /* client addresses tracked (least recent evicted) */
#define AUTH_MAX_FAILURES_ALL 100 /* all addresses together, within the window */

/* ---- routes ----------------------------------------------------------- */

static int h_status(struct web_request *rq);
static int h_hello(struct web_request *rq);
static int h_version(struct web_request *rq);
static int h_uptime(struct web_request *rq);
static int h_state(struct web_request *rq);
static int h_metrics(struct web_request *rq);
static int h_crypto(struct web_request *rq);
static int h_name(struct web_request *rq);
static int h_settings_get(struct web_request *rq);
static int h_settings_post(struct web_request *rq);

/* The route table.  Others add their lines here (the web-ui moves the status
 * page to /status and serves its UI at /). */
static const struct web_route routes[] = {
	/* web UI (webui.c): the embedded UI at /, the status page at /status */
	{ "GET", "/", webui_h_asset, false },
	{ "GET", "/index.html", webui_h_asset, false },
	{ "GET", "/app.js", webui_h_asset, false },
	{ "GET", "/app.css", webui_h_asset, false },
	{ "GET", "/favicon.svg", webui_h_asset, false },
	{ "GET", "/api/live", webui_h_live, false },
	{ "GET", "/api/device", webui_h_device_get, false },
	{ "POST", "/api/device", webui_h_device_post, true },
	{ "DELETE", "/api/device", webui_h_device_delete, true },
	{ "GET", "/api/device/supported", webui_h_supported, false },
	{ "GET", "/api/device/scan", webui_h_scan, false },
	{ "GET", "/api/inverter/modbus", webui_h_modbus_get, false },
	{ "POST", "/api/inverter/modbus", webui_h_modbus_post, true },
	{ "GET", "/api/notification", webui_h_notes_get, false },
	{ "DELETE", "/api/notification/*", webui_h_notes_delete, true },
	{ "GET", "/api/frequency", webui_h_frequency, false },
	{ "GET", "/status", h_status, false },
	{ "GET", "/api/hello", h_hello, false },
	{ "GET", "/api/version", h_version, false },
	{ "GET", "/api/uptime", h_uptime, false },
	{ "GET", "/api/state", h_state, false },
	{ "GET", "/metrics", h_metrics, false },
	{ "GET", "/api/crypto", h_crypto, false },
	{ "GET", "/api/name", h_name, false },
	{ "GET", "/api/settings", h_settings_get, false },
	{ "POST", "/api/settings", h_settings_post, true },
};
#define NROUTES ARRAY_SIZE(routes)
#define ROUTE_UNMATCHED NROUTES

const struct web_route *web_routes(size_t *ret_n)
{
	*ret_n = NROUTES;
	return routes;
}

/* Status codes counted per route; anything else is counted as "other". */
static const unsigned counted_codes[] = {
	200, 201, 204, 304, 400, 401, 403, 404, 405, 413, 429, 431, 500, 503,
};
#define NCODES ARRAY_SIZE(counted_codes)

struct section {
	char name[32];
	web_section_fn fn;
	void *ud;
	bool in_state;
};

struct metrics_prov {
	web_metrics_fn fn;
	void *ud;
};

struct web {
	struct egw *egw;
	struct loop *loop;
	struct MHD_Daemon *d;
	struct loop_io io;
	struct task timer;
	struct MHD_Response *hello;     /* shared, queued many times */

	size_t max_body;
	unsigned timeout_s;

	struct section sections[WEB_MAX_SECTIONS];
	unsigned nsections;
	struct metrics_prov metrics[WEB_MAX_METRICS];
	unsigned nmetrics;

	uint64_t requests[NROUTES + 1][NCODES + 1];
	/* Failed token attempts: a ring per client address, so that one
	 * client guessing does not lock the others out, and one ring for all
	 * addresses together, which bounds a client that changes address. */
	struct auth_peer {
		uint8_t addr[16];  /* IPv4 as ::ffff:a.b.c.d */
		int64_t last_ms;   /* 0: free slot */
		int64_t fail_ms[AUTH_MAX_FAILURES];
		unsigned next;
	} auth_peers[AUTH_PEERS];
	int64_t auth_all_ms[AUTH_MAX_FAILURES_ALL];
	unsigned auth_all_next;
	uint64_t auth_failures, auth_limited;
	uint64_t connections_total;
	unsigned open_connections, max_connections;
	/* What the daemon listens on; a settings change moves it (rebind task). */
	struct sockaddr_in bound;
	struct task rebind;
	int rebind_err;  /* last failed move (-errno), 0: none */
	bool at_limit;   /* MHD stopped accepting; it resumes on its next MHD_run */
	bool kick;       /* run MHD again at once */

	struct conn_ctx *conns;       /* open connections (request deadline) */
	struct task deadline;
};

/* Per-connection state, from accept to close.  libmicrohttpd's timeout is
 * an idle timeout: a client that drips a header line every second never
 * finishes its request and holds its slot for ever (slowloris).  So each
 * request must be complete (headers and body) within http.request_timeout_s
 * of the connection's start or of the previous request's end; past that the
 * socket is shut down and libmicrohttpd closes the connection. */
struct conn_ctx {
	struct conn_ctx *prev, *next;
	struct MHD_Connection *c;
	usec_t since;
	bool answered;   /* the current request got its answer (or a stream) */
};

/* Per-request state, from the first handler call to the completion notice. */
struct req_ctx {
	char *body;
	size_t len, cap;
	bool too_big;
	bool answered;
};

/* ---- small helpers ---------------------------------------------------- */

void web_buf_append(struct web_buf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->data, cap);
		if (!p) {
			b->failed = true;
			return;
		}
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = 0;
}

static void buf_puts(struct web_buf *b, const char *s)
{
	web_buf_append(b, s, strlen(s));
}

void web_buf_printf(struct web_buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(tmp)) {
		web_buf_append(b, tmp, (size_t)n);
		return;
	}
	char *big = malloc((size_t)n + 1);
	if (!big) {
		b->failed = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	web_buf_append(b, big, (size_t)n);
	free(big);
}

void web_buf_html(struct web_buf *b, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<': buf_puts(b, "&lt;"); break;
		case '>': buf_puts(b, "&gt;"); break;
		case '&': buf_puts(b, "&amp;"); break;
		case '"': buf_puts(b, "&quot;"); break;
		case '\'': buf_puts(b, "&#39;"); break;
		default: web_buf_append(b, s, 1);
		}
	}
}

void web_buf_free(struct web_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static void count_request(struct web *w, unsigned route, unsigned status)
{
	unsigned c = NCODES;
	for (unsigned i = 0; i < NCODES; i++)
		if (counted_codes[i] == status)
			c = i;
	w->requests[route <= NROUTES ? route : ROUTE_UNMATCHED][c]++;
}

int web_reply_response(struct web_request *rq, unsigned status, struct MHD_Response *resp)
{
	count_request(rq->web, rq->route, status);
	return MHD_queue_response(rq->conn, status, resp);
}

static int reply_owned(struct web_request *rq, unsigned status, const char *type, char *data,
		       size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
	int ret;
	if (!r) {
		free(data);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	ret = web_reply_response(rq, status, r);
	MHD_destroy_response(r);
	return ret;
}

int web_reply_data(struct web_request *rq, unsigned status, const char *content_type,
		   const void *data, size_t len, bool copy)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data,
		copy ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_PERSISTENT);
	int ret;
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	ret = web_reply_response(rq, status, r);
	MHD_destroy_response(r);
	return ret;
}

int web_reply_json(struct web_request *rq, unsigned status, json_t *json)
{
	char *text = json ? json_dumps(json, JSON_COMPACT | READING_JSON_REALS) : NULL;
	json_decref(json);
	if (!text) {
		static const char oom[] = "{\"error\":\"out of memory\"}";
		return web_reply_data(rq, 500, "application/json", oom, sizeof(oom) - 1, false);
	}
	return reply_owned(rq, status, "application/json", text, strlen(text));
}

int web_reply_error(struct web_request *rq, unsigned status, const char *msg, const char *field)
{
	json_t *o = json_pack("{s:s}", "error", msg ? msg : "error");
	if (o && field && *field)
		json_object_set_new(o, "field", json_string(field));
	return web_reply_json(rq, status, o);
}

/* ---- token ------------------------------------------------------------ */

static bool is_hex_token(const char *s, size_t n)
{
	if (n != WEB_TOKEN_HEX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int web_token_load_or_create(const char *state_dir, char ret_token[WEB_TOKEN_HEX + 1],
			     bool *ret_created)
{
	char path[PATH_MAX], buf[WEB_TOKEN_HEX + 2];
	unsigned char raw[WEB_TOKEN_HEX / 2];
	int fd, r;

	if (snprintf(path, sizeof(path), "%s/api-token", state_dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf));
		close(fd);
		if (n < 0)
			return -errno;
		while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
			n--;
		if (!is_hex_token(buf, (size_t)n))
			return -EINVAL;
		memcpy(ret_token, buf, WEB_TOKEN_HEX);
		ret_token[WEB_TOKEN_HEX] = 0;
		*ret_created = false;
		return 0;
	}
	if (errno != ENOENT)
		return -errno;
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -EIO;
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(buf + 2 * i, 3, "%02x", raw[i]);
	buf[WEB_TOKEN_HEX] = '\n';
	r = settings_write_atomic(path, buf, WEB_TOKEN_HEX + 1, 0600);
	OPENSSL_cleanse(raw, sizeof(raw));
	if (r < 0)
		return r;
	memcpy(ret_token, buf, WEB_TOKEN_HEX);
	ret_token[WEB_TOKEN_HEX] = 0;
	*ret_created = true;
	return 0;
}

bool web_token_ok(const char *token, const char *authorization)
{
	static const char prefix[] = "Bearer ";
	char given[WEB_TOKEN_HEX];
	size_t n;

	if (!authorization || strncasecmp(authorization, prefix, sizeof(prefix) - 1) != 0)
		return false;
	authorization += sizeof(prefix) - 1;
	while (*authorization == ' ')
		authorization++;
	n = strlen(authorization);
	while (n > 0 && authorization[n - 1] == ' ')
		n--;
	/* Always compare WEB_TOKEN_HEX bytes so the time does not depend on
	 * where the first difference is; the length is checked separately. */
	memset(given, 0, sizeof(given));
	memcpy(given, authorization, MIN(n, sizeof(given)));
	bool same = CRYPTO_memcmp(given, token, WEB_TOKEN_HEX) == 0;
	return same && n == WEB_TOKEN_HEX && strlen(token) == WEB_TOKEN_HEX;
}

/* The client's address as 16 bytes (IPv4 mapped into IPv6). */
static void peer_key(struct MHD_Connection *c, uint8_t key[16])
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	memset(key, 0, 16);
	if (sa && sa->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	} else if (sa && sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	}
}

static unsigned recent(const int64_t *ring, unsigned n, int64_t now_ms)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++)
		if (ring[i] && now_ms - ring[i] < AUTH_WINDOW_MS)
			k++;
	return k;
}

static struct auth_peer *auth_peer_find(struct web *w, const uint8_t key[16])
{
	for (unsigned i = 0; i < AUTH_PEERS; i++)
		if (w->auth_peers[i].last_ms && memcmp(w->auth_peers[i].addr, key, 16) == 0)
			return &w->auth_peers[i];
	return NULL;
}

/* 10 failures from one address within 10 s lock token-protected routes for
 * that address, 100 from all addresses together lock them for everyone,
 * until the oldest failure leaves the window. */
static bool auth_limited(struct web *w, const uint8_t key[16], int64_t now_ms)
{
	struct auth_peer *p = auth_peer_find(w, key);

	if (recent(w->auth_all_ms, AUTH_MAX_FAILURES_ALL, now_ms) >= AUTH_MAX_FAILURES_ALL)
		return true;
	return p && recent(p->fail_ms, AUTH_MAX_FAILURES, now_ms) >= AUTH_MAX_FAILURES;
}

static void auth_failed(struct web *w, const uint8_t key[16], int64_t now_ms)
{
	struct auth_peer *p = auth_peer_find(w, key);

	w->auth_failures++;
	w->auth_all_ms[w->auth_all_next] = now_ms;
	w->auth_all_next = (w->auth_all_next + 1) % AUTH_MAX_FAILURES_ALL;
	if (!p) { /* a free slot, else the address heard from least recently */
		p = &w->auth_peers[0];
		for (unsigned i = 1; i < AUTH_PEERS && p->last_ms; i++)
			if (w->auth_peers[i].last_ms < p->last_ms)
				p = &w->auth_peers[i];
		memset(p, 0, sizeof(*p));
		memcpy(p->addr, key, 16);
	}
	p->last_ms = now_ms;
	p->fail_ms[p->next] = now_ms;
	p->next = (p->next + 1) % AUTH_MAX_FAILURES;
}

/* ---- sections and state ----------------------------------------------- */

int web_add_section(struct web *w, const char *name, web_section_fn fn, void *ud, bool in_state)
{
	for (unsigned i = 0; i < w->nsections; i++)
		if (strcmp(w->sections[i].name, name) == 0)
			return -EEXIST;
	if (w->nsections >= WEB_MAX_SECTIONS)
		return -ENOSPC;
	struct section *s = &w->sections[w->nsections++];
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->fn = fn;
	s->ud = ud;
	s->in_state = in_state;
	return 0;
}

int web_add_metrics(struct web *w, web_metrics_fn fn, void *ud)
{
	if (w->nmetrics >= WEB_MAX_METRICS)
		return -ENOSPC;
	w->metrics[w->nmetrics++] = (struct metrics_prov){ .fn = fn, .ud = ud };
	return 0;
}

static const struct section *find_section(const struct web *w, const char *name)
{
	for (unsigned i = 0; i < w->nsections; i++)
		if (strcmp(w->sections[i].name, name) == 0)
			return &w->sections[i];
	return NULL;
}

static int64_t uptime_ms(const struct egw *e)
{
	return (now_usec() - e->started_us) / 1000;
}

static json_t *state_doc(struct web *w, bool all_sections)
{
	struct egw *e = w->egw;
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(o, "state", json_string(fsm_state_name(&e->gw)));
	json_object_set_new(o, "uptime_ms", json_integer(uptime_ms(e)));
	json_object_set_new(o, "version", json_string(EGW_VERSION));
	json_object_set_new(o, "gateway", fsm_to_json(&e->gw));
	for (unsigned i = 0; i < w->nsections; i++) {
		const struct section *s = &w->sections[i];
		if (!s->in_state && !all_sections)
			continue;
		json_t *v = s->fn(s->ud);
		json_object_set_new(o, s->name, v ? v : json_null());
	}
	char listen[INET_ADDRSTRLEN + 8], addr[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &w->bound.sin_addr, addr, sizeof(addr));
	snprintf(listen, sizeof(listen), "%s:%u", addr, ntohs(w->bound.sin_port));
	json_object_set_new(o, "http", json_pack("{s:I,s:I,s:I,s:s,s:i,s:s?}",
		"auth_failures", (json_int_t)w->auth_failures,
		"auth_limited", (json_int_t)w->auth_limited,
		"connections", (json_int_t)w->connections_total,
		"listening", listen,
		"max_connections", (int)w->max_connections,
		"rebind_error", w->rebind_err ? egw_strerror(w->rebind_err) : NULL));
	return o;
}

json_t *web_state_json(struct web *w)
{
	return state_doc(w, false);
}

/* ---- handlers --------------------------------------------------------- */

static int h_hello(struct web_request *rq)
{
	return web_reply_response(rq, 200, rq->web->hello);
}

static int h_version(struct web_request *rq)
{
	json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}",
		"version", EGW_VERSION,
		"name", "egw",
		"microhttpd", MHD_get_version(),
		"jansson", JANSSON_VERSION,
		"sqlite", sqlite3_libversion(),
		"openssl", OpenSSL_version(OPENSSL_VERSION));
	return web_reply_json(rq, 200, o);
}

static int h_uptime(struct web_request *rq)
{
	return web_reply_json(rq, 200, json_pack("{s:I}", "msek", (json_int_t)uptime_ms(rq->egw)));
}

static int h_state(struct web_request *rq)
{
	return web_reply_json(rq, 200, state_doc(rq->web, false));
}

static int h_section(struct web_request *rq, const char *name)
{
	const struct section *s = find_section(rq->web, name);
	char msg[96];
	if (!s) {
		snprintf(msg, sizeof(msg), "%s is not available", name);
		return web_reply_error(rq, 503, msg, NULL);
	}
	json_t *v = s->fn(s->ud);
	if (!v) {
		snprintf(msg, sizeof(msg), "%s is not available yet", name);
		return web_reply_error(rq, 503, msg, NULL);
	}
	return web_reply_json(rq, 200, v);
}

static int h_crypto(struct web_request *rq) { return h_section(rq, "crypto"); }
static int h_name(struct web_request *rq) { return h_section(rq, "name"); }

static int h_settings_get(struct web_request *rq)
{
	return web_reply_json(rq, 200, settings_to_json(rq->egw->settings, true));
}

static int h_settings_post(struct web_request *rq)
{
	struct egw *e = rq->egw;
	struct settings_error err = { 0 };
	json_error_t je;
	json_t *patch;
	char msg[320];
	int r;

	if (!rq->body || !rq->body_len)
		return web_reply_error(rq, 400, "empty body: expected a JSON object", NULL);
	patch = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &je);
	if (!patch) {
		snprintf(msg, sizeof(msg), "malformed JSON at %d:%d: %s", je.line, je.column, je.text);
		return web_reply_error(rq, 400, msg, NULL);
	}
	r = settings_patch(e->settings, patch, &err);
	json_decref(patch);
	if (r == -ENOMEM)
		return web_reply_error(rq, 500, "out of memory", NULL);
	if (r < 0)
		return web_reply_error(rq, 400, err.msg, err.key);
	r = settings_save(e->settings);
	if (r < 0) {
		snprintf(msg, sizeof(msg), "saving %s: %s", settings_path(e->settings),
			 egw_strerror(r));
		return web_reply_error(rq, 500, msg, NULL);
	}
	if (e->settings_changed)
		e->settings_changed(e);
	return web_reply_json(rq, 200, settings_to_json(e->settings, true));
}

/* Prometheus text format 0.0.4. */
struct task_agg {
	const char *name;
	uint64_t hist[SCHED_LATE_BUCKETS];
	usec_t sum;
	uint64_t runs, failures, skipped;
};

struct task_aggs {
	struct task_agg a[SCHED_MAX_NAMES];
	unsigned n;
};

/* The scheduler's totals by name: they outlive the tasks, so the counters
 * built on them never go back (a removed device, a one-shot task). */
static void agg_task(const struct sched_totals *tt, void *ud)
{
	struct task_aggs *ta = ud;
	struct task_agg *g;

	if (ta->n >= ARRAY_SIZE(ta->a))
		return;
	g = &ta->a[ta->n++];
	g->name = tt->name;
	for (unsigned i = 0; i < SCHED_LATE_BUCKETS; i++)
		g->hist[i] = tt->stats.late_hist[i];
	g->sum = tt->stats.late_sum;
	g->runs = tt->stats.runs;
	g->failures = tt->stats.failures;
	g->skipped = tt->stats.skipped;
}

/* Label values: escape backslash, quote and newline. */
static void buf_label(struct web_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			buf_puts(b, "\\");
		if (*s == '\n')
			buf_puts(b, "\\n");
		else
			web_buf_append(b, s, 1);
	}
}

static void metrics_fsm(struct web_buf *b, const struct fsm *f)
{
	for (unsigned a = 0; a < f->def->nstates; a++)
		for (unsigned c = 0; c < f->def->nstates; c++) {
			if (!f->counts[a][c])
				continue;
			web_buf_printf(b, "egw_state_transitions_total{machine=\"%s\",from=\"%s\",to=\"%s\"} %" PRIu64 "\n",
				       f->label, fsm_name(f->def, a), fsm_name(f->def, c), f->counts[a][c]);
		}
}

/* Device state machines, from the "devices" section (an array of objects
 * with "id", "state" and "fsm": fsm_to_json). */
static void metrics_devices(struct web_buf *b, struct web *w)
{
	const struct section *s = find_section(w, "devices");
	json_t *devs = s ? s->fn(s->ud) : NULL;
	size_t i;
	json_t *d;

	json_array_foreach(devs, i, d) {
		const char *id = json_string_value(json_object_get(d, "id"));
		json_t *counts = json_object_get(json_object_get(d, "fsm"), "counts");
		const char *pair;
		json_t *n;
		if (!id)
			continue;
		json_object_foreach(counts, pair, n) {
			const char *arrow = strstr(pair, " -> ");
			if (!arrow || !json_is_integer(n))
				continue;
			buf_puts(b, "egw_state_transitions_total{machine=\"device\",device=\"");
			buf_label(b, id);
			buf_puts(b, "\",from=\"");
			char from[32];
			snprintf(from, sizeof(from), "%.*s", (int)MIN((size_t)(arrow - pair), sizeof(from) - 1), pair);
			buf_label(b, from);
			buf_puts(b, "\",to=\"");
			buf_label(b, arrow + 4);
			web_buf_printf(b, "\"} %" JSON_INTEGER_FORMAT "\n", json_integer_value(n));
		}
	}
	json_decref(devs);
}

static int h_metrics(struct web_request *rq)
{
	struct web *w = rq->web;
	struct egw *e = rq->egw;
	struct web_buf b = { 0 };
	struct task_aggs *ta = calloc(1, sizeof(*ta));

	if (!ta)
		return web_reply_error(rq, 500, "out of memory", NULL);
	web_buf_printf(&b, "# HELP egw_uptime_seconds Time since egwd started.\n"
		       "# TYPE egw_uptime_seconds gauge\negw_uptime_seconds %.3f\n",
		       (double)uptime_ms(e) / 1000.0);
	web_buf_printf(&b, "# HELP egw_build_info egwd version.\n# TYPE egw_build_info gauge\n"
		       "egw_build_info{version=\"%s\"} 1\n", EGW_VERSION);
	struct mem_usage mu;
	if (mem_usage_read(&mu) == 0)
		web_buf_printf(&b, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
			       "# TYPE process_resident_memory_bytes gauge\n"
			       "process_resident_memory_bytes %llu\n"
			       "# HELP egw_memory_private_bytes Resident memory that is egwd's own "
			       "(RssAnon), not pages of mapped files.\n"
			       "# TYPE egw_memory_private_bytes gauge\negw_memory_private_bytes %llu\n",
			       (unsigned long long)mu.rss_kb * 1024,
			       (unsigned long long)mu.anon_kb * 1024);

	web_buf_printf(&b, "# HELP egw_gateway_state 1 for the current gateway state.\n"
		       "# TYPE egw_gateway_state gauge\n");
	for (unsigned s = 0; s < e->gw.def->nstates; s++)
		web_buf_printf(&b, "egw_gateway_state{state=\"%s\"} %d\n", fsm_name(e->gw.def, s),
			       e->gw.state == s);
	web_buf_printf(&b, "# HELP egw_state_transitions_total State machine transitions.\n"
		       "# TYPE egw_state_transitions_total counter\n");
	metrics_fsm(&b, &e->gw);
	metrics_devices(&b, w);

	web_buf_printf(&b, "# HELP egw_http_requests_total HTTP requests answered by route and status.\n"
		       "# TYPE egw_http_requests_total counter\n");
	for (unsigned r = 0; r <= NROUTES; r++)
		for (unsigned c = 0; c <= NCODES; c++) {
			if (!w->requests[r][c])
				continue;
			char code[8];
			if (c < NCODES)
				snprintf(code, sizeof(code), "%u", counted_codes[c]);
			else
				snprintf(code, sizeof(code), "other");
			web_buf_printf(&b, "egw_http_requests_total{route=\"%s %s\",code=\"%s\"} %" PRIu64 "\n",
				       r < NROUTES ? routes[r].method : "",
				       r < NROUTES ? routes[r].path : "unmatched", code,
				       w->requests[r][c]);
		}
	web_buf_printf(&b, "# HELP egw_http_auth_failures_total Requests with a missing or wrong token.\n"
		       "# TYPE egw_http_auth_failures_total counter\negw_http_auth_failures_total %" PRIu64 "\n",
		       w->auth_failures);
	web_buf_printf(&b, "# HELP egw_http_auth_limited_total Requests refused by the token rate limit.\n"
		       "# TYPE egw_http_auth_limited_total counter\negw_http_auth_limited_total %" PRIu64 "\n",
		       w->auth_limited);

	sched_foreach_totals(loop_sched(w->loop), agg_task, ta);
	web_buf_printf(&b, "# HELP egw_task_lateness_seconds How late each task run started.\n"
		       "# TYPE egw_task_lateness_seconds histogram\n");
	for (unsigned i = 0; i < ta->n; i++) {
		const struct task_agg *g = &ta->a[i];
		uint64_t cum = 0;
		for (unsigned k = 0; k < SCHED_LATE_BUCKETS; k++) {
			cum += g->hist[k];
			buf_puts(&b, "egw_task_lateness_seconds_bucket{task=\"");
			buf_label(&b, g->name);
			if (k < SCHED_LATE_BUCKETS - 1)
				web_buf_printf(&b, "\",le=\"%g\"} %" PRIu64 "\n",
					       (double)sched_late_bounds[k] / 1e6, cum);
			else
				web_buf_printf(&b, "\",le=\"+Inf\"} %" PRIu64 "\n", cum);
		}
		buf_puts(&b, "egw_task_lateness_seconds_sum{task=\"");
		buf_label(&b, g->name);
		web_buf_printf(&b, "\"} %.6f\n", (double)g->sum / 1e6);
		buf_puts(&b, "egw_task_lateness_seconds_count{task=\"");
		buf_label(&b, g->name);
		web_buf_printf(&b, "\"} %" PRIu64 "\n", cum);
	}
	web_buf_printf(&b, "# HELP egw_task_runs_total Task runs.\n# TYPE egw_task_runs_total counter\n");
	for (unsigned i = 0; i < ta->n; i++) {
		buf_puts(&b, "egw_task_runs_total{task=\"");
		buf_label(&b, ta->a[i].name);
		web_buf_printf(&b, "\"} %" PRIu64 "\n", ta->a[i].runs);
	}
	web_buf_printf(&b, "# HELP egw_task_failures_total Task runs that failed.\n# TYPE egw_task_failures_total counter\n");
	for (unsigned i = 0; i < ta->n; i++) {
		buf_puts(&b, "egw_task_failures_total{task=\"");
		buf_label(&b, ta->a[i].name);
		web_buf_printf(&b, "\"} %" PRIu64 "\n", ta->a[i].failures);
	}
	free(ta);
	for (unsigned i = 0; i < w->nmetrics; i++)
		w->metrics[i].fn(w->metrics[i].ud, &b);
	if (b.failed || !b.data) {
		web_buf_free(&b);
		return web_reply_error(rq, 500, "out of memory", NULL);
	}
	return reply_owned(rq, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
}

static int h_status(struct web_request *rq)
{
	struct web_buf b = { 0 };
	json_t *st = state_doc(rq->web, true);
	if (!st)
		return web_reply_error(rq, 500, "out of memory", NULL);
	web_status_page(&b, st);
	json_decref(st);
	if (b.failed || !b.data) {
		web_buf_free(&b);
		return web_reply_error(rq, 500, "out of memory", NULL);
	}
	return reply_owned(rq, 200, "text/html; charset=utf-8", b.data, b.len);
}

/* ---- status page ------------------------------------------------------ */

static void html_scalar(struct web_buf *b, const json_t *v)
{
	char tmp[64];
	if (!v) {
		buf_puts(b, "&mdash;");
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
	case JSON_TRUE: buf_puts(b, "yes"); break;
	case JSON_FALSE: buf_puts(b, "no"); break;
	case JSON_NULL: buf_puts(b, "&mdash;"); break;
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
		buf_puts(b, "<tr><th>");
		if (*prefix) {
			web_buf_html(b, prefix);
			buf_puts(b, ".");
		}
		web_buf_html(b, k);
		buf_puts(b, "</th><td>");
		html_scalar(b, v);
		buf_puts(b, "</td></tr>\n");
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
	buf_puts(b, "</td></tr>\n");
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
	buf_puts(b, "<tr><th>State</th><td><span class=\"st\">");
	html_scalar(b, json_object_get(st, "state"));
	buf_puts(b, "</span></td></tr>\n");
	summary_row(b, "Version", json_object_get(st, "version"));
	summary_row(b, "Last frequency (Hz)", json_object_get(jpath(st, "frequency", "latest"), "hz"));
	summary_rate(b, "Frequency reads", jpath(st, "frequency", "reads"), ms);
	summary_rate(b, "Harvests (signed batches)", jpath(st, "harvest", "sealed"), ms);
	summary_row(b, "Store backlog", jpath(st, "store", "backlog"));
	summary_row(b, "Delivered to the backend", jpath(st, "store", "delivered"));
	summary_rate(b, "HTTP connections", jpath(st, "http", "connections"), ms);
	buf_puts(b, "</table>\n");

	/* Devices as one table each; every other section as key/value rows. */
	const json_t *devs = json_object_get(st, "devices");
	if (json_is_array(devs)) {
		size_t i;
		const json_t *d;
		web_buf_printf(b, "<h2>Devices (%zu)</h2>\n", json_array_size(devs));
		json_array_foreach(devs, i, d) {
			buf_puts(b, "<table>\n");
			html_rows(b, d, "");
			buf_puts(b, "</table><br>\n");
		}
	}
	json_object_foreach((json_t *)st, k, v) {
		if (!json_is_object(v) || strcmp(k, "crypto") == 0)
			continue;
		buf_puts(b, "<h2>");
		web_buf_html(b, k);
		buf_puts(b, "</h2>\n<table>\n");
		html_rows(b, v, "");
		buf_puts(b, "</table>\n");
	}
	web_buf_append(b, "<p><a href=\"/api/state\">/api/state</a> &middot; "
		       "<a href=\"/metrics\">/metrics</a></p>\n</body></html>\n", 99);
}

/* ---- request dispatch ------------------------------------------------- */

static int dispatch(struct web *w, struct MHD_Connection *c, const char *url, const char *method,
		    struct req_ctx *cx)
{
	struct web_request rq = {
		.web = w, .egw = w->egw, .conn = c, .method = method, .path = url,
		.body = cx->body, .body_len = cx->len, .route = ROUTE_UNMATCHED,
	};
	const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
	char allow[64] = "";
	bool path_found = false;

	for (unsigned i = 0; i < NROUTES; i++) {
		const struct web_route *r = &routes[i];
		size_t n = strlen(r->path);
		bool match = n >= 1 && r->path[n - 1] == '*'
			? strncmp(url, r->path, n - 1) == 0
			: strcmp(url, r->path) == 0;
		if (!match)
			continue;
		path_found = true;
		if (strcmp(r->method, m) != 0) {
			size_t off = strlen(allow);
			if (!strstr(allow, r->method))
				snprintf(allow + off, sizeof(allow) - off, "%s%s", off ? ", " : "",
					 r->method);
			continue;
		}
		rq.route = i;
		if (r->needs_token) {
			/* Monotonic: a clock step (NTP at boot) must not lock anyone out. */
			int64_t now = (int64_t)(now_usec() / 1000);
			uint8_t peer[16];

			peer_key(c, peer);
			if (auth_limited(w, peer, now)) {
				w->auth_limited++;
				return web_reply_error(&rq, 429, "too many failed token attempts, retry later",
						       NULL);
			}
			const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
								       MHD_HTTP_HEADER_AUTHORIZATION);
			if (!web_token_ok(w->egw->token, auth)) {
				auth_failed(w, peer, now);
				return web_reply_error(&rq, 401, auth ? "wrong token"
						       : "missing Authorization: Bearer <token>", NULL);
			}
		}
		return r->handler(&rq);
	}
	if (path_found) {
		json_t *o = json_pack("{s:s,s:s}", "error", "method not allowed", "allow", allow);
		char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
		if (!text)
			return MHD_NO;
		struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text,
									    MHD_RESPMEM_MUST_FREE);
		if (!resp) {
			free(text);
			return MHD_NO;
		}
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
		int ret = web_reply_response(&rq, 405, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	return web_reply_error(&rq, 404, "no such path", NULL);
}

static struct conn_ctx *conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

static void conn_answered(struct MHD_Connection *c)
{
	struct conn_ctx *cc = conn_of(c);
	if (cc)
		cc->answered = true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct web *w = cls;
	struct req_ctx *cx = *con_cls;
	UNUSED(version);

	if (!cx) {
		cx = calloc(1, sizeof(*cx));
		if (!cx)
			return MHD_NO;
		*con_cls = cx;
		MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, w->timeout_s);
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > w->max_body) {
			/* Refuse before reading the body: the connection closes after. */
			struct web_request rq = { .web = w, .egw = w->egw, .conn = c,
						  .route = ROUTE_UNMATCHED };
			cx->answered = true;
			conn_answered(c);
			return (enum MHD_Result)web_reply_error(&rq, 413, "request body too large", NULL);
		}
		/* Answer on a later call so libmicrohttpd keeps the connection alive. */
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (cx->answered || cx->too_big)
			return MHD_YES;
		if (cx->len + n > w->max_body) {
			cx->too_big = true;
			free(cx->body);
			cx->body = NULL;
			cx->len = cx->cap = 0;
			return MHD_YES;
		}
		if (cx->len + n + 1 > cx->cap) {
			size_t cap = MAX(cx->cap * 2, cx->len + n + 1);
			char *p = realloc(cx->body, cap);
			if (!p)
				return MHD_NO;
			cx->body = p;
			cx->cap = cap;
		}
		memcpy(cx->body + cx->len, upload_data, n);
		cx->len += n;
		cx->body[cx->len] = 0;
		return MHD_YES;
	}
	if (cx->answered)
		return MHD_YES;
	cx->answered = true;
	conn_answered(c);
	if (cx->too_big) {
		struct web_request rq = { .web = w, .egw = w->egw, .conn = c, .route = ROUTE_UNMATCHED };
		return (enum MHD_Result)web_reply_error(&rq, 413, "request body too large", NULL);
	}
	return (enum MHD_Result)dispatch(w, c, url, method, cx);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct req_ctx *cx = *con_cls;
	struct conn_ctx *cc = conn_of(c);
	UNUSED(cls);
	UNUSED(toe);
	if (cc) {
		/* keep-alive: the next request's clock starts now */
		cc->answered = false;
		cc->since = now_usec();
	}
	if (cx) {
		free(cx->body);
		free(cx);
		*con_cls = NULL;
	}
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct web *w = cls;
	struct conn_ctx *cc = *socket_context;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		/* Without memory the connection just has no deadline. */
		cc = calloc(1, sizeof(*cc));
		if (cc) {
			cc->c = c;
			cc->since = now_usec();
			cc->next = w->conns;
			if (w->conns)
				w->conns->prev = cc;
			w->conns = cc;
			*socket_context = cc;
		}
		w->connections_total++;
		if (++w->open_connections >= w->max_connections)
			w->at_limit = true;
	} else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (cc) {
			if (cc->prev)
				cc->prev->next = cc->next;
			else
				w->conns = cc->next;
			if (cc->next)
				cc->next->prev = cc->prev;
			free(cc);
			*socket_context = NULL;
		}
		if (w->open_connections)
			w->open_connections--;
		/* At the cap MHD took its listening socket out of its epoll set and
		 * only puts it back at the start of its next run: make that run
		 * happen now, or pending clients would wait for unrelated traffic. */
		if (w->at_limit) {
			w->at_limit = false;
			w->kick = true;
		}
	}
}

/* ---- loop glue -------------------------------------------------------- */

static void rearm(struct web *w)
{
	MHD_UNSIGNED_LONG_LONG ms;
	if (w->kick) {
		w->kick = false;
		loop_task_add(w->loop, &w->timer, now_usec());
	} else if (MHD_get_timeout(w->d, &ms) == MHD_YES)
		loop_task_add(w->loop, &w->timer, now_usec() + (usec_t)ms * USEC_PER_MSEC);
	else
		loop_task_cancel(w->loop, &w->timer);
}

static void on_mhd_io(struct loop_io *io, uint32_t events)
{
	struct web *w = container_of(io, struct web, io);
	UNUSED(events);
	MHD_run(w->d);
	rearm(w);
}

/* Shuts down the sockets of requests past their deadline (see conn_ctx);
 * libmicrohttpd sees the hang-up on its next run and closes them. */
static int on_deadline(struct task *t, usec_t now)
{
	struct web *w = container_of(t, struct web, deadline);
	usec_t limit = (usec_t)w->timeout_s * USEC_PER_SEC;

	for (struct conn_ctx *cc = w->conns; cc; cc = cc->next) {
		if (cc->answered || now - cc->since < limit)
			continue;
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(cc->c, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (ci && ci->connect_fd >= 0)
			shutdown(ci->connect_fd, SHUT_RDWR);
		cc->since = now; /* once per timeout, until libmicrohttpd closes it */
	}
	return 0;
}

static int on_mhd_timer(struct task *t, usec_t now)
{
	struct web *w = container_of(t, struct web, timer);
	UNUSED(now);
	MHD_run(w->d);
	rearm(w);
	return 0;
}

static const char hello_body[] = "{\"message\":\"Hello from egw\"}";

/* The address and connection cap the settings ask for. */
static int wanted(const struct settings *s, struct sockaddr_in *sin, unsigned *maxc)
{
	*sin = (struct sockaddr_in){ .sin_family = AF_INET };
	sin->sin_port = htons((uint16_t)settings_get_int(s, "http.port"));
	if (inet_pton(AF_INET, settings_get_str(s, "http.bind"), &sin->sin_addr) != 1)
		return -EINVAL;
	*maxc = (unsigned)settings_get_int(s, "http.max_connections");
	return 0;
}

static struct MHD_Daemon *start_daemon(struct web *w, const struct sockaddr_in *sin,
				       unsigned maxc, int *err)
{
	struct MHD_Daemon *d;

	errno = 0;
	d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME,
		0, NULL, NULL, on_request, w,
		MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)sin,
		/* Not LISTENING_ADDRESS_REUSE 1: that is SO_REUSEPORT, with which
		 * a second egwd would silently share the port with the first. */
		MHD_OPTION_CONNECTION_LIMIT, maxc,
		MHD_OPTION_CONNECTION_TIMEOUT, w->timeout_s,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HEADER_LIMIT,
		/* HTTP/1.1 requests need a Host header, and so on */
		MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, w,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, w,
		MHD_OPTION_END);
	if (!d)
		*err = errno ? -errno : -EADDRINUSE;
	return d;
}

/* Puts daemon d in the loop (its epoll fd) and makes it the current one. */
static int attach_daemon(struct web *w, struct MHD_Daemon *d)
{
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD);

	if (!info)
		return -EINVAL;
	w->d = d;
	return loop_io_add(w->loop, &w->io, info->epoll_fd, EPOLLIN, on_mhd_io);
}

/* http.port, http.bind or http.max_connections changed: listen on the new
 * address first, and only then close the old listener and its connections
 * (a live stream reconnects, to the old address, and fails: the UI is
 * elsewhere now).  If the new address cannot be had, egwd stays where it is
 * and says why in /api/state (http.rebind_error) and the log. */
static int on_rebind(struct task *t, usec_t now)
{
	struct web *w = container_of(t, struct web, rebind);
	struct sockaddr_in sin;
	struct MHD_Daemon *d, *old = w->d;
	unsigned maxc;
	char addr[INET_ADDRSTRLEN];
	int err = 0;

	UNUSED(now);
	if (wanted(w->egw->settings, &sin, &maxc) < 0)
		return 0;
	inet_ntop(AF_INET, &sin.sin_addr, addr, sizeof(addr));
	d = start_daemon(w, &sin, maxc, &err);
	if (!d) {
		w->rebind_err = err;
		log_error("http", "cannot listen on %s:%u: %s; still on the old address", addr,
			  ntohs(sin.sin_port), egw_strerror(err));
		return 0;
	}
	loop_io_del(w->loop, &w->io);
	loop_task_cancel(w->loop, &w->timer);
	/* MHD refuses to stop with connections suspended: the UI lets go. */
	webui_daemon_closing(w->egw->webui);
	MHD_stop_daemon(old); /* its connections close; on_connection forgets them */
	w->open_connections = 0;
	w->at_limit = false;
	w->bound = sin;
	w->max_connections = maxc;
	w->rebind_err = 0;
	err = attach_daemon(w, d);
	if (err < 0) {
		log_error("http", "cannot watch the new listener: %s", egw_strerror(err));
		return err;
	}
	rearm(w);
	log_info("http", "listening on %s:%u (at most %u connections)", addr, ntohs(sin.sin_port),
		 maxc);
	return 0;
}

void web_apply_settings(struct web *w)
{
	const struct settings *s = w->egw->settings;
	struct sockaddr_in sin;
	unsigned maxc;

	w->max_body = (size_t)settings_get_int(s, "http.max_body_bytes");
	w->timeout_s = (unsigned)settings_get_int(s, "http.request_timeout_s");
	if (w->d && wanted(s, &sin, &maxc) == 0 &&
	    (sin.sin_port != w->bound.sin_port || sin.sin_addr.s_addr != w->bound.sin_addr.s_addr ||
	     maxc != w->max_connections))
		/* After the answer to the request that changed them has gone out. */
		loop_task_add(w->loop, &w->rebind, now_usec() + 300 * USEC_PER_MSEC);
}

int web_new(struct egw *e, struct web **ret)
{
	const struct settings *s = e->settings;
	struct sockaddr_in sin;
	struct MHD_Daemon *d;
	struct web *w;
	unsigned maxc;
	int r;

	if (wanted(s, &sin, &maxc) < 0)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->egw = e;
	w->loop = e->loop;
	w->io.fd = -1;
	w->timer = (struct task){ .name = "http", .run = on_mhd_timer, .prio = 0 };
	w->timer.idx = SCHED_NOT_QUEUED;
	w->deadline = (struct task){ .name = "http-deadline", .run = on_deadline,
				     .period = 250 * USEC_PER_MSEC, .prio = 1 };
	w->deadline.idx = SCHED_NOT_QUEUED;
	w->rebind = (struct task){ .name = "http-rebind", .run = on_rebind, .prio = 1 };
	w->rebind.idx = SCHED_NOT_QUEUED;
	web_apply_settings(w);
	w->max_connections = maxc;
	w->bound = sin;

	w->hello = MHD_create_response_from_buffer(sizeof(hello_body) - 1, (void *)hello_body,
						   MHD_RESPMEM_PERSISTENT);
	if (!w->hello) {
		r = -ENOMEM;
		goto err_free;
	}
	MHD_add_response_header(w->hello, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");

	d = start_daemon(w, &sin, maxc, &r);
	if (!d)
		goto err_free;
	r = attach_daemon(w, d);
	if (r < 0)
		goto err_free;
	rearm(w);
	r = loop_task_add(w->loop, &w->deadline, now_usec() + w->deadline.period);
	if (r < 0)
		goto err_free;
	*ret = w;
	return 0;

err_free:
	web_free(w);
	return r;
}

void web_free(struct web *w)
{
	if (!w)
		return;
	loop_io_del(w->loop, &w->io);
	loop_task_cancel(w->loop, &w->timer);
	loop_task_cancel(w->loop, &w->deadline);
	loop_task_cancel(w->loop, &w->rebind);
	if (w->d)
		MHD_stop_daemon(w->d);
	while (w->conns) {  /* closed without a notice */
		struct conn_ctx *cc = w->conns;
		w->conns = cc->next;
		free(cc);
	}
	if (w->hello)
		MHD_destroy_response(w->hello);
	free(w);
}
