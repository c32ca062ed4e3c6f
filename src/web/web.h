/* HTTP server: libmicrohttpd driven by egw's loop (no thread of its own).
 *
 * MHD runs in epoll mode without internal threads: its epoll fd is watched
 * by our loop (loop_io_add); when it is readable we call MHD_run, and a task
 * is scheduled from MHD_get_timeout so idle connections time out.  HTTP/1.1
 * keep-alive is kept: responses are always queued on the final handler call,
 * never on the first (libmicrohttpd drops keep-alive otherwise) - except an
 * oversized declared body, answered 413 at once and closed.
 *
 * Routes are a const table (method, path, handler, needs_token) in web.c.
 * A route path ending in '*' matches every path that starts with the part
 * before the star.  Unknown path ->
 * 404 JSON, wrong method -> 405 JSON with Allow.  Every request that changes
 * anything needs "Authorization: Bearer <token>" (<state-dir>/api-token);
 * the token is checked first, in constant time, and the right one is always
 * accepted; a missing or wrong token -> 401 JSON, and after 10 failures
 * from one address within 10 s that address's wrong tokens get 429, 1 s
 * late (the connection suspended meanwhile).
 *
 * Every request's Host must be one of the gateway's own names (an IP
 * literal, localhost, the host name, a name public DNS cannot serve: one
 * label or under .local, .home.arpa, .internal; http.allowed_hosts), else 421: a page on another name that resolves here (DNS rebinding) is
 * not answered.  Every answer carries the security headers (CSP with
 * frame-ancestors 'none', nosniff, X-Frame-Options, Referrer-Policy).
 *
 * Caps: connections (http.max_connections, applied at run time), of which
 * one client address may hold three quarters (the rest stay for others);
 * under pressure (three quarters taken) a request must be complete within
 * 1 s, so idle and slow clients make room; request header block (16 KiB,
 * larger -> 431), body (http.max_body_bytes, larger -> 413), per-connection
 * idle timeout (http.request_timeout_s).
 *
 * Other modules contribute without web.c knowing them:
 *   - web_add_section(w, "store", fn, ud, true): fn(ud) returns a JSON object
 *     that /api/state shows under "store"; named sections "crypto" and
 *     "name" also answer GET /api/crypto and GET /api/name (503 until
 *     registered);
 *   - web_add_metrics(w, fn, ud): fn appends Prometheus text to /metrics.
 * Handlers written elsewhere (device API, SSE) get a struct web_request and
 * answer with the web_reply_* helpers; add them to the route table. */
#pragma once
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct egw;
struct web;
struct MHD_Connection;
struct MHD_Response;

struct web_request {
	struct web *web;
	struct egw *egw;
	struct MHD_Connection *conn;
	const char *method; /* "GET", ... (HEAD is routed as GET) */
	const char *path;   /* URL path, without the query string */
	const char *body;   /* NUL-terminated, may be NULL when empty */
	size_t body_len;
	unsigned route; /* index in the route table (for metrics) */
};

/* A handler answers exactly once with one of the reply helpers and returns
 * what that helper returned (an MHD_Result: 1 = ok, 0 = close connection). */
typedef int (*web_handler_fn)(struct web_request *rq);

struct web_route {
	const char *method;
	const char *path;
	web_handler_fn handler;
	bool needs_token;
};

/* Reply helpers.  json is stolen (may be NULL -> 500). */
int web_reply_json(struct web_request *rq, unsigned status, json_t *json);
/* {"error": msg} plus "field" when field is non-NULL and non-empty. */
int web_reply_error(struct web_request *rq, unsigned status, const char *msg, const char *field);
/* Bytes copied by MHD when copy, else must stay valid (static). */
int web_reply_data(struct web_request *rq, unsigned status, const char *content_type,
		   const void *data, size_t len, bool copy);
/* A prepared response (e.g. a callback response for SSE); not destroyed. */
int web_reply_response(struct web_request *rq, unsigned status, struct MHD_Response *resp);

/* A growable text buffer for /metrics and the status page. */
struct web_buf {
	char *data;
	size_t len, cap;
	bool failed; /* out of memory: contents truncated */
};
void web_buf_printf(struct web_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void web_buf_append(struct web_buf *b, const char *s, size_t n);
/* HTML-escaped s. */
void web_buf_html(struct web_buf *b, const char *s);
/* A Prometheus label value: backslash, quote and newline escaped. */
void web_buf_label(struct web_buf *b, const char *s);
/* One histogram series in the Prometheus text format: name_bucket for each
 * upper bound (seconds) and +Inf, cumulative, then name_sum and name_count;
 * with the label label="value" when label is non-NULL.  counts has
 * nbounds + 1 entries, one per bucket (not cumulative); sum in seconds. */
void web_buf_histogram(struct web_buf *b, const char *name, const char *label, const char *value,
		       const double *bounds, size_t nbounds, const uint64_t *counts, double sum);
void web_buf_free(struct web_buf *b);

typedef json_t *(*web_section_fn)(void *ud);
typedef void (*web_metrics_fn)(void *ud, struct web_buf *b);

#define WEB_MAX_SECTIONS 16
#define WEB_MAX_METRICS 16
#define WEB_TOKEN_HEX 64

/* The route table (for egwd --list-routes and the security tests). */
const struct web_route *web_routes(size_t *ret_n);

/* Starts listening on settings http.bind:http.port.  Returns 0, -EADDRINUSE,
 * -ENOMEM or -errno. */
int web_new(struct egw *e, struct web **ret);
/* 0 when this machine can listen on the IPv4 address addr (0.0.0.0, or an
 * address of one of its interfaces), else -EADDRNOTAVAIL, -EINVAL (not an
 * IPv4 literal) or -errno. */
int web_check_bind(const char *addr);
/* 0 when the plain listener (tls false) or the HTTPS one (tls true) can
 * move to addr:port now: it listens there already, or a socket can be bound
 * there (nothing else listens on it, the port is not privileged for this
 * user).  Else -EADDRINUSE, -EACCES, -EADDRNOTAVAIL, -EINVAL (not an IPv4
 * literal) or -errno.  w may be NULL. */
int web_check_listen(const struct web *w, const char *addr, unsigned port, bool tls);
/* Stops the daemon, closes every connection.  Accepts NULL.  Suspended
 * connections (SSE) must have been resumed by their owner before: the web UI
 * is torn down first for that reason (see main.c). */
void web_free(struct web *w);

/* Re-reads the caps that can change at run time (body size, timeout); a
 * changed http.port, http.bind or http.max_connections moves the listener
 * shortly after (its open connections close). */
void web_apply_settings(struct web *w);

/* Returns 0, -ENOSPC (table full) or -EEXIST. */
int web_add_section(struct web *w, const char *name, web_section_fn fn, void *ud, bool in_state);
int web_add_metrics(struct web *w, web_metrics_fn fn, void *ud);

/* Loads <state_dir>/api-token or creates it (mode 0600, 32 random bytes as
 * hex) and sets *ret_created.  ret_token gets WEB_TOKEN_HEX chars + NUL.
 * Returns 0, -EINVAL (file not 64 hex chars) or -errno. */
int web_token_load_or_create(const char *state_dir, char ret_token[WEB_TOKEN_HEX + 1],
			     bool *ret_created);
/* Constant-time check of an Authorization header value ("Bearer <token>"). */
bool web_token_ok(const char *token, const char *authorization);

/* The client's address of connection c as 16 bytes (IPv4 mapped into
 * IPv6, ::ffff:a.b.c.d), the key of every per-address limit. */
void web_peer_key(struct MHD_Connection *c, uint8_t key[16]);

/* The status page (HTML) from a state document (as /api/state). */
void web_status_page(struct web_buf *b, const json_t *state);
/* The /api/state document.  New reference. */
json_t *web_state_json(struct web *w);
