/* HTTP client requests over libcurl's multi interface, driven by egw's loop.
 *
 * One `struct http` owns a CURLM handle.  Its sockets are watched with
 * loop_io (CURLMOPT_SOCKETFUNCTION) and its timeout is a scheduler task
 * (CURLMOPT_TIMERFUNCTION); curl_multi_socket_action() runs from those
 * callbacks only, so nothing ever blocks and no thread is used.  Connections
 * are kept alive and reused between requests to the same host.
 *
 * A request (`struct http_req`) is embedded in its owner, like a task.  At
 * most one transfer per http_req at a time.  TLS peer and host verification
 * stay on (curl's defaults; never disabled).  The response body is kept up to
 * HTTP_RESP_MAX bytes (the rest is discarded and `truncated` is set). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "loop/loop.h"

#define HTTP_RESP_MAX 4096

struct http;
struct http_req;

/* err: 0 when a complete HTTP response arrived (any status), else a negative
 * error: -ETIMEDOUT, -ECONNREFUSED, -ECONNRESET, -EHOSTUNREACH or -EIO. */
typedef void (*http_done_fn)(struct http_req *req, int err, long status);

struct http_req {
	/* owned by http.c */
	struct http *http;
	void *easy;    /* CURL * */
	void *headers; /* struct curl_slist * */
	char *body;    /* copy of the request body */
	bool busy;
	http_done_fn done;
	char resp[HTTP_RESP_MAX + 1]; /* NUL-terminated */
	size_t resp_len;
	bool truncated;
	char curl_error[256]; /* curl's message for the last failure */
};

/* Returns 0, -ENOMEM or -EIO (curl init failure). */
int http_new(struct loop *l, struct http **ret);
/* Every request must have finished or been cancelled (http_cancel) first. */
void http_free(struct http *h);

/* Start a POST of body (len bytes, copied) with the given Content-Type to url.
 * done(req, err, status) runs later on the loop thread, never from inside this
 * call.  timeout_ms bounds the whole transfer (connect included).
 * Returns 0, -EBUSY if req is in flight, -ENOMEM or -EINVAL. */
int http_post(struct http *h, struct http_req *req, const char *url, const char *content_type,
	      const char *body, size_t len, long timeout_ms, http_done_fn done);
/* http_post with a Content-Encoding header (body already encoded); NULL
 * content_encoding: none. */
int http_post_enc(struct http *h, struct http_req *req, const char *url, const char *content_type,
		  const char *content_encoding, const char *body, size_t len, long timeout_ms,
		  http_done_fn done);
/* Abort req's transfer if in flight; its done callback does not run. */
void http_cancel(struct http_req *req);
/* Transfers in flight. */
unsigned http_active(const struct http *h);
