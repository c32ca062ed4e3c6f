/* The HTTP server: the route table, request dispatch, replies, sections of
 * /api/state, and its place in the event loop (see web.h). */
#include "web/web_int.h"

#include "profiles/reading.h"

/* ---- routes ----------------------------------------------------------- */


/* The route table.  Others add their lines here (the web-ui moves the status
 * page to /status and serves its UI at /). */
const struct web_route web_route_table[] = {
	/* web UI (webui.c): the embedded UI at /, the status page at /status */
	{ "GET", "/", webui_h_asset, false },
	{ "GET", "/index.html", webui_h_asset, false },
	{ "GET", "/app.js", webui_h_asset, false },
	{ "GET", "/app.css", webui_h_asset, false },
	{ "GET", "/favicon.svg", webui_h_asset, false },
	{ "GET", "/favicon.ico", webui_h_asset, false },
	{ "GET", "/api/live", webui_h_live, false },
	{ "GET", "/api/device", webui_h_device_get, false },
	{ "POST", "/api/device", webui_h_device_post, true },
	{ "DELETE", "/api/device", webui_h_device_delete, true },
	{ "GET", "/api/device/supported", webui_h_supported, false },
	{ "GET", "/api/device/scan", webui_h_scan, false },
	{ "POST", "/api/device/scan", webui_h_scan_post, true },
	{ "GET", "/api/inverter/modbus", webui_h_modbus_get, false },
	{ "POST", "/api/inverter/modbus", webui_h_modbus_post, true },
	{ "POST", "/api/inverter/modbus/read", webui_h_modbus_read, true },
	{ "GET", "/api/notification", webui_h_notes_get, false },
	{ "DELETE", "/api/notification/*", webui_h_notes_delete, true },
	{ "GET", "/api/frequency", webui_h_frequency, false },
	{ "GET", "/status", web_h_status, false },
	{ "GET", "/api/hello", web_h_hello, false },
	{ "GET", "/api/version", web_h_version, false },
	{ "GET", "/api/uptime", web_h_uptime, false },
	{ "GET", "/api/state", web_h_state, false },
	{ "GET", "/metrics", web_h_metrics, false },
	{ "GET", "/api/crypto", web_h_crypto, false },
	{ "GET", "/api/name", web_h_name, false },
	{ "GET", "/api/settings", web_h_settings_get, false },
	{ "POST", "/api/settings", web_h_settings_post, true },
	{ "GET", "/api/fcr/log", web_h_fcr_log, false },
};
_Static_assert(ARRAY_SIZE(web_route_table) == NROUTES, "NROUTES (web_int.h) counts the table");

const struct web_route *web_routes(size_t *ret_n)
{
	*ret_n = NROUTES;
	return web_route_table;
}

/* Status codes counted per route; anything else is counted as "other". */
const unsigned web_counted_codes[] = {
	200, 201, 202, 204, 304, 400, 401, 403, 404, 405, 413, 421, 429, 431, 500, 503,
};
_Static_assert(ARRAY_SIZE(web_counted_codes) == NCODES, "NCODES (web_int.h) counts the codes");


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

void web_buf_puts(struct web_buf *b, const char *s)
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

void web_buf_label(struct web_buf *b, const char *s)
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

/* name{label="value"  or  name{  (the caller closes the braces) */
static void series(struct web_buf *b, const char *name, const char *suffix, const char *label,
		   const char *value)
{
	web_buf_printf(b, "%s%s{", name, suffix);
	if (label) {
		web_buf_printf(b, "%s=\"", label);
		web_buf_label(b, value);
		web_buf_append(b, "\"", 1);
	}
}

void web_buf_histogram(struct web_buf *b, const char *name, const char *label, const char *value,
		       const double *bounds, size_t nbounds, const uint64_t *counts, double sum)
{
	uint64_t cum = 0;

	for (size_t k = 0; k <= nbounds; k++) {
		cum += counts[k];
		series(b, name, "_bucket", label, value);
		if (k < nbounds)
			web_buf_printf(b, "%sle=\"%g\"} %" PRIu64 "\n", label ? "," : "", bounds[k],
				       cum);
		else
			web_buf_printf(b, "%sle=\"+Inf\"} %" PRIu64 "\n", label ? "," : "", cum);
	}
	series(b, name, "_sum", label, value);
	web_buf_printf(b, "} %.6f\n", sum);
	series(b, name, "_count", label, value);
	web_buf_printf(b, "} %" PRIu64 "\n", cum);
}

void web_buf_html(struct web_buf *b, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<':
			web_buf_puts(b, "&lt;");
			break;
		case '>':
			web_buf_puts(b, "&gt;");
			break;
		case '&':
			web_buf_puts(b, "&amp;");
			break;
		case '"':
			web_buf_puts(b, "&quot;");
			break;
		case '\'':
			web_buf_puts(b, "&#39;");
			break;
		default:
			web_buf_append(b, s, 1);
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
		if (web_counted_codes[i] == status)
			c = i;
	w->requests[route <= NROUTES ? route : ROUTE_UNMATCHED][c]++;
}

/* On every answer egwd gives, the UI, the status page, errors and streams
 * alike: nothing of it runs in a frame or from another origin, and no type
 * is guessed.  (libmicrohttpd's own answers to broken requests, e.g. a 400
 * for a bad request line or a 431, are written inside it without a hook; they
 * carry a fixed HTML text and no data.) */
static const char *const security_headers[][2] = {
	{ "Content-Security-Policy",
	  "default-src 'self'; style-src 'self' 'unsafe-inline'; "
	  "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
	  "frame-ancestors 'none'" },
	{ "X-Content-Type-Options", "nosniff" },
	{ "X-Frame-Options", "DENY" },
	{ "Referrer-Policy", "no-referrer" },
};

int web_reply_response(struct web_request *rq, unsigned status, struct MHD_Response *resp)
{
	/* A shared response (hello, settings) gets them once; one with a
	 * stricter policy of its own (the UI assets) keeps it. */
	for (size_t i = 0; i < ARRAY_SIZE(security_headers); i++)
		if (!MHD_get_response_header(resp, security_headers[i][0]))
			MHD_add_response_header(resp, security_headers[i][0],
						security_headers[i][1]);
	count_request(rq->web, rq->route, status);
	return MHD_queue_response(rq->conn, status, resp);
}

/* Answers data (malloc'd, taken) with one extra header when hname is set. */
static int reply_owned_hdr(struct web_request *rq, unsigned status, const char *type, char *data,
			   size_t len, const char *hname, const char *hvalue)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
	int ret;
	if (!r) {
		free(data);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	if (hname)
		MHD_add_response_header(r, hname, hvalue);
	ret = web_reply_response(rq, status, r);
	MHD_destroy_response(r);
	return ret;
}

int web_reply_owned(struct web_request *rq, unsigned status, const char *type, char *data,
		    size_t len)
{
	return reply_owned_hdr(rq, status, type, data, len, NULL, NULL);
}

int web_reply_data(struct web_request *rq, unsigned status, const char *content_type,
		   const void *data, size_t len, bool copy)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		len, (void *)data, copy ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_PERSISTENT);
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
	return web_reply_owned(rq, status, "application/json", text, strlen(text));
}

int web_reply_error(struct web_request *rq, unsigned status, const char *msg, const char *field)
{
	json_t *o = json_pack("{s:s}", "error", msg ? msg : "error");
	if (o && field && *field)
		json_object_set_new(o, "field", json_string(field));
	return web_reply_json(rq, status, o);
}

/* A JSON error with one extra header (Allow, Retry-After). */
static int reply_error_hdr(struct web_request *rq, unsigned status, json_t *o, const char *hname,
			   const char *hvalue)
{
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!text)
		return MHD_NO;
	return reply_owned_hdr(rq, status, "application/json", text, strlen(text), hname, hvalue);
}

static void rearm(struct web *w);

/* Queues the held answers that are due (all with `all`), resumes their
 * connections and has libmicrohttpd run again to send them. */
static void delayed_flush(struct web *w, usec_t now, bool all)
{
	unsigned k = 0;

	while (k < w->ndelayed && (all || w->delayed[k].due <= now)) {
		struct delayed_reply *d = &w->delayed[k++];
		MHD_queue_response(d->c, 429, d->r);
		MHD_destroy_response(d->r);
		MHD_resume_connection(d->c);
	}
	if (!k)
		return;
	w->ndelayed -= k;
	memmove(w->delayed, w->delayed + k, w->ndelayed * sizeof(w->delayed[0]));
	if (w->ndelayed)
		loop_task_add(w->loop, &w->delay_task, w->delayed[0].due);
	w->kick = true;
}

static int on_delay(struct task *t, usec_t now)
{
	struct web *w = container_of(t, struct web, delay_task);

	delayed_flush(w, now, false);
	if (w->d)
		rearm(w);
	return 0;
}

/* 429 for a wrong token from a limited address, AUTH_DELAY late (at once
 * when AUTH_DELAYED_MAX answers are already held). */
static int reply_retry_later(struct web_request *rq)
{
	struct web *w = rq->web;
	char after[16], *text;
	json_t *o = json_pack("{s:s}", "error",
			      "too many wrong tokens from this address: retry "
			      "later (the right token is always accepted)");
	struct MHD_Response *r;

	snprintf(after, sizeof(after), "%d", AUTH_RETRY_S);
	if (w->ndelayed == AUTH_DELAYED_MAX)
		return reply_error_hdr(rq, 429, o, MHD_HTTP_HEADER_RETRY_AFTER, after);
	text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!text)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, after);
	for (size_t i = 0; i < ARRAY_SIZE(security_headers); i++)
		MHD_add_response_header(r, security_headers[i][0], security_headers[i][1]);
	count_request(w, rq->route, 429);
	MHD_suspend_connection(rq->conn);
	w->delayed[w->ndelayed++] =
		(struct delayed_reply){ .c = rq->conn, .r = r, .due = now_usec() + AUTH_DELAY };
	if (w->ndelayed == 1)
		loop_task_add(w->loop, &w->delay_task, w->delayed[0].due);
	return MHD_YES;
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

const struct section *web_find_section(const struct web *w, const char *name)
{
	for (unsigned i = 0; i < w->nsections; i++)
		if (strcmp(w->sections[i].name, name) == 0)
			return &w->sections[i];
	return NULL;
}

int64_t web_uptime_ms(const struct egw *e)
{
	return (now_usec() - e->started_us) / 1000;
}

json_t *web_state_doc(struct web *w, bool all_sections)
{
	struct egw *e = w->egw;
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(o, "state", json_string(fsm_state_name(&e->gw)));
	json_object_set_new(o, "uptime_ms", json_integer(web_uptime_ms(e)));
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
	json_object_set_new(o, "http",
			    json_pack("{s:I,s:I,s:I,s:s,s:i,s:i,s:s?}", "auth_failures",
				      (json_int_t)w->auth_failures, "auth_limited",
				      (json_int_t)w->auth_limited, "connections",
				      (json_int_t)w->connections_total, "listening", listen,
				      "max_connections", (int)w->max_connections,
				      "open_connections", (int)w->open_connections, "rebind_error",
				      w->rebind_err ? egw_strerror(w->rebind_err) : NULL));
	return o;
}

json_t *web_state_json(struct web *w)
{
	return web_state_doc(w, false);
}

/* ---- request dispatch ------------------------------------------------- */

static int dispatch(struct web *w, struct MHD_Connection *c, const char *url, const char *method,
		    struct req_ctx *cx)
{
	struct web_request rq = {
		.web = w,
		.egw = w->egw,
		.conn = c,
		.method = method,
		.path = url,
		.body = cx->body,
		.body_len = cx->len,
		.route = ROUTE_UNMATCHED,
	};
	const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
	char allow[64] = "";
	bool path_found = false;

	if (!web_host_allowed(
		    w, MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST)))
		return web_reply_error(&rq, 421,
				       "this gateway does not answer to that Host name: use "
				       "its IP address, localhost, its host name, or add the name "
				       "to the http.allowed_hosts setting",
				       "Host");

	for (unsigned i = 0; i < NROUTES; i++) {
		const struct web_route *r = &web_route_table[i];
		size_t n = strlen(r->path);
		bool match = n >= 1 && r->path[n - 1] == '*' ? strncmp(url, r->path, n - 1) == 0
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
			const char *auth = MHD_lookup_connection_value(
				c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);

			/* The token first: the right one is never refused. */
			if (web_token_ok(w->egw->token, auth))
				return r->handler(&rq);
			web_peer_key(c, peer);
			if (web_auth_limited(w, peer, now)) {
				w->auth_limited++;
				web_auth_failed(w, peer, now);
				return reply_retry_later(&rq);
			}
			web_auth_failed(w, peer, now);
			return web_reply_error(&rq, 401,
					       auth ? "wrong token"
						    : "missing Authorization: Bearer <token>",
					       NULL);
		}
		return r->handler(&rq);
	}
	if (path_found) {
		json_t *o = json_pack("{s:s,s:s}", "error", "method not allowed", "allow", allow);
		/* A route that moved from GET to POST says so. */
		if (o && strcmp(m, "GET") == 0 && strstr(allow, "POST"))
			json_object_set_new(
				o, "error",
				json_string(
					"method not allowed: this route takes POST (with the token)"));
		return reply_error_hdr(&rq, 405, o, MHD_HTTP_HEADER_ALLOW, allow);
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
			struct web_request rq = { .web = w,
						  .egw = w->egw,
						  .conn = c,
						  .route = ROUTE_UNMATCHED };
			cx->answered = true;
			conn_answered(c);
			return (enum MHD_Result)web_reply_error(&rq, 413, "request body too large",
								NULL);
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
		struct web_request rq = { .web = w,
					  .egw = w->egw,
					  .conn = c,
					  .route = ROUTE_UNMATCHED };
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
		/* Resumed connections (held answers) may be the HTTPS listener's:
		 * libmicrohttpd serves them only on a later run of their daemon. */
		web_tls_kick(w->tls);
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

	if (w->open_connections * 4 >= w->max_connections * 3)
		limit = MIN(limit, PRESSURE_TIMEOUT);

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
	sin->sin_port = htons((uint16_t)settings_values(s)->http_port);
	if (inet_pton(AF_INET, settings_values(s)->http_bind, &sin->sin_addr) != 1)
		return -EINVAL;
	*maxc = (unsigned)settings_values(s)->http_max_connections;
	return 0;
}

/* Connections one client address may hold: a quarter of the cap stays
 * for the others, so one address holding all it may does not lock out the
 * owner's browser. */
static unsigned per_address(unsigned maxc)
{
	return maxc >= 4 ? maxc - maxc / 4 : maxc;
}

/* A daemon on sin, or on the listening socket listen_fd when it is >= 0
 * (taken from a daemon being replaced: no moment without a listener, and
 * no "Address already in use" for the same address); with the extra
 * options tls (NULL: plain HTTP). */
static struct MHD_Daemon *start_any(struct web *w, const struct sockaddr_in *sin, unsigned maxc,
				    int listen_fd, const struct MHD_OptionItem *tls, int *err)
{
	static const struct MHD_OptionItem none[] = { { MHD_OPTION_END, 0, NULL } };
	struct MHD_OptionItem where[] = {
		listen_fd >= 0
			? (struct MHD_OptionItem){ MHD_OPTION_LISTEN_SOCKET, listen_fd, NULL }
			: (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, (void *)sin },
		{ MHD_OPTION_END, 0, NULL },
	};
	struct MHD_Daemon *d;

	errno = 0;
	/* TLS without TURBO: libmicrohttpd 0.9.75 only cleans up a connection
	 * closed during its TLS handshake (timed out, shut down) after a TLS
	 * shutdown, which TURBO skips; such connections would stay for ever. */
	d = MHD_start_daemon(
		MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | (tls ? MHD_USE_TLS : MHD_USE_TURBO), 0,
		NULL, NULL, on_request, w, MHD_OPTION_ARRAY, where, MHD_OPTION_ARRAY,
		tls ? tls : none,
		/* Not LISTENING_ADDRESS_REUSE 1: that is SO_REUSEPORT, with which
		 * a second egwd would silently share the port with the first. */
		MHD_OPTION_CONNECTION_LIMIT, maxc, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		per_address(maxc), MHD_OPTION_CONNECTION_TIMEOUT, w->timeout_s,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HEADER_LIMIT,
		/* HTTP/1.1 requests need a Host header, and so on */
		MHD_OPTION_STRICT_FOR_CLIENT, (int)1, MHD_OPTION_NOTIFY_COMPLETED, on_completed, w,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, w, MHD_OPTION_END);
	if (!d)
		*err = errno ? -errno : -EADDRINUSE;
	return d;
}

static struct MHD_Daemon *start_daemon(struct web *w, const struct sockaddr_in *sin, unsigned maxc,
				       int listen_fd, int *err)
{
	return start_any(w, sin, maxc, listen_fd, NULL, err);
}

struct MHD_Daemon *web_start_daemon(struct web *w, const struct sockaddr_in *sin, unsigned maxc,
				    const struct MHD_OptionItem *tls, int *err)
{
	return start_any(w, sin, maxc, -1, tls, err);
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
	if (sin.sin_port == w->bound.sin_port && sin.sin_addr.s_addr == w->bound.sin_addr.s_addr) {
		/* Only the cap changes: the new daemon takes over the socket. */
		MHD_socket fd = MHD_quiesce_daemon(old);
		d = fd != MHD_INVALID_SOCKET ? start_daemon(w, &sin, maxc, fd, &err) : NULL;
		if (!d && fd != MHD_INVALID_SOCKET) {
			close(fd);
			/* old listens no more: the address is free for a fresh one */
			d = start_daemon(w, &sin, maxc, -1, &err);
		}
	} else {
		d = start_daemon(w, &sin, maxc, -1, &err);
	}
	if (!d) {
		w->rebind_err = err;
		log_error("http", "cannot listen on %s:%u: %s; still on the old address", addr,
			  ntohs(sin.sin_port), egw_strerror(err));
		return 0;
	}
	loop_io_del(w->loop, &w->io);
	loop_task_cancel(w->loop, &w->timer);
	/* MHD refuses to stop with connections suspended: the UI lets go, and
	 * the held 429s go out now. */
	webui_daemon_closing(w->egw->webui);
	delayed_flush(w, 0, true);
	loop_task_cancel(w->loop, &w->delay_task);
	web_tls_kick(w->tls); /* for the HTTPS connections just resumed */
	/* Its connections close, and on_connection counts each one out; the
	 * HTTPS listener's connections stay open and counted. */
	MHD_stop_daemon(old);
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

void web_release_suspended(struct web *w)
{
	webui_daemon_closing(w->egw->webui);
	delayed_flush(w, 0, true);
	loop_task_cancel(w->loop, &w->delay_task);
	/* the plain listener's resumed connections: served on its next run */
	w->kick = true;
	if (w->d)
		rearm(w);
}

void web_apply_settings(struct web *w)
{
	const struct settings *s = w->egw->settings;
	struct sockaddr_in sin;
	unsigned maxc;

	w->max_body = (size_t)settings_values(s)->http_max_body_bytes;
	w->timeout_s = (unsigned)settings_values(s)->http_request_timeout_s;
	if (w->d && wanted(s, &sin, &maxc) == 0 &&
	    (sin.sin_port != w->bound.sin_port || sin.sin_addr.s_addr != w->bound.sin_addr.s_addr ||
	     maxc != w->max_connections))
		/* After the answer to the request that changed them has gone out. */
		loop_task_add(w->loop, &w->rebind, now_usec() + 300 * USEC_PER_MSEC);
	if (w->tls)
		web_tls_apply(w->tls);
}

int web_check_bind(const char *addr)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int fd, r = 0;

	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		return -EINVAL;
	if (sin.sin_addr.s_addr == htonl(INADDR_ANY))
		return 0;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Port 0: any free port; only the address is in question. */
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		r = -errno;
	close(fd);
	return r;
}

int web_check_listen(const struct web *w, const char *addr, unsigned port, bool tls)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd, one = 1, r = 0;

	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		return -EINVAL;
	if (!tls && w && w->d && sin.sin_port == w->bound.sin_port &&
	    sin.sin_addr.s_addr == w->bound.sin_addr.s_addr)
		return 0;
	if (tls && w && web_tls_listens_on(w->tls, &sin))
		return 0;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* As libmicrohttpd binds (SO_REUSEADDR): a socket in TIME_WAIT does
	 * not count, a listener on the port does. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		r = -errno;
	close(fd);
	return r;
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
	w->deadline = (struct task){ .name = "http-deadline",
				     .run = on_deadline,
				     .period = 250 * USEC_PER_MSEC,
				     .prio = 1 };
	w->deadline.idx = SCHED_NOT_QUEUED;
	w->rebind = (struct task){ .name = "http-rebind", .run = on_rebind, .prio = 1 };
	w->rebind.idx = SCHED_NOT_QUEUED;
	w->delay_task = (struct task){ .name = "http-delay", .run = on_delay, .prio = 1 };
	w->delay_task.idx = SCHED_NOT_QUEUED;
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

	d = start_daemon(w, &sin, maxc, -1, &r);
	if (!d)
		goto err_free;
	r = attach_daemon(w, d);
	if (r < 0)
		goto err_free;
	rearm(w);
	r = loop_task_add(w->loop, &w->deadline, now_usec() + w->deadline.period);
	if (r < 0)
		goto err_free;
	/* HTTPS trouble (no certificate, port taken) never stops egwd: the
	 * listener reports it in /api/state; only memory can fail here. */
	r = web_tls_new(w, e, &w->tls);
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
	web_tls_free(w->tls); /* its connections are on w->conns */
	loop_io_del(w->loop, &w->io);
	loop_task_cancel(w->loop, &w->timer);
	loop_task_cancel(w->loop, &w->deadline);
	loop_task_cancel(w->loop, &w->rebind);
	loop_task_cancel(w->loop, &w->delay_task);
	delayed_flush(w, 0, true);
	if (w->d)
		MHD_stop_daemon(w->d);
	while (w->conns) { /* closed without a notice */
		struct conn_ctx *cc = w->conns;
		w->conns = cc->next;
		free(cc);
	}
	if (w->hello)
		MHD_destroy_response(w->hello);
	if (w->settings_resp)
		MHD_destroy_response(w->settings_resp);
	free(w);
}
