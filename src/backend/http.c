#include "backend/http.h"

#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

struct http {
	struct loop *loop;
	CURLM *multi;
	struct task timer; /* curl's single timeout */
	unsigned active;
};

/* One per socket curl asks us to watch; attached with curl_multi_assign. */
struct http_sock {
	struct loop_io io;
	struct http *http;
	curl_socket_t fd;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
	/* curl_global_init is not thread-safe before 7.84: do it exactly once. */
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int map_curl_error(CURLcode c)
{
	switch (c) {
	case CURLE_OK:
		return 0;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return -ECONNRESET;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

static void req_release(struct http_req *req)
{
	if (req->easy) {
		curl_multi_remove_handle(req->http->multi, req->easy);
		curl_easy_cleanup(req->easy);
		req->easy = NULL;
	}
	curl_slist_free_all(req->headers);
	req->headers = NULL;
	free(req->body);
	req->body = NULL;
	if (req->busy)
		req->http->active--;
	req->busy = false;
}

static void check_done(struct http *h)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(h->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct http_req *req = NULL;
		long status = 0;
		CURLcode rc = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&req);
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
		if (!req)
			continue;
		http_done_fn done = req->done;
		req_release(req);
		req->resp[req->resp_len] = '\0';
		/* done may start a new request on req: it has been released above. */
		done(req, map_curl_error(rc), rc == CURLE_OK ? status : 0);
	}
}

static void on_sock(struct loop_io *io, uint32_t events)
{
	struct http_sock *s = container_of(io, struct http_sock, io);
	struct http *h = s->http;
	int flags = 0, running;

	if (events & EPOLLIN)
		flags |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (events & (EPOLLERR | EPOLLHUP))
		flags |= CURL_CSELECT_ERR;
	/* s may be freed inside this call (CURL_POLL_REMOVE): do not touch it after. */
	curl_multi_socket_action(h->multi, s->fd, flags, &running);
	check_done(h);
}

static int sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct http *h = userp;
	struct http_sock *s = socketp;
	uint32_t ev = 0;
	UNUSED(easy);

	if (what == CURL_POLL_REMOVE) {
		if (s) {
			loop_io_del(h->loop, &s->io);
			curl_multi_assign(h->multi, fd, NULL);
			free(s);
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		ev |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		ev |= EPOLLOUT;
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1;
		s->http = h;
		s->fd = fd;
		if (loop_io_add(h->loop, &s->io, fd, ev, on_sock) < 0) {
			free(s);
			return -1;
		}
		curl_multi_assign(h->multi, fd, s);
		return 0;
	}
	return loop_io_mod(h->loop, &s->io, ev) < 0 ? -1 : 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct http *h = userp;
	UNUSED(multi);

	if (timeout_ms < 0)
		loop_task_cancel(h->loop, &h->timer);
	else if (loop_task_add(h->loop, &h->timer,
			       now_usec() + (usec_t)timeout_ms * USEC_PER_MSEC) < 0)
		return -1;
	return 0;
}

static int on_timer(struct task *t, usec_t now)
{
	struct http *h = container_of(t, struct http, timer);
	int running;
	UNUSED(now);

	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(h);
	return 0;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct http_req *req = userdata;
	size_t n = size * nmemb, room = HTTP_RESP_MAX - req->resp_len;

	if (n > room) {
		req->truncated = true;
		memcpy(req->resp + req->resp_len, ptr, room);
		req->resp_len += room;
	} else {
		memcpy(req->resp + req->resp_len, ptr, n);
		req->resp_len += n;
	}
	return n; /* the excess is discarded, not an error */
}

int http_new(struct loop *l, struct http **ret)
{
	struct http *h;

	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK)
		return -EIO;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->loop = l;
	h->timer = (struct task){ .name = "http-timeout", .run = on_timer, .prio = 0 };
	h->multi = curl_multi_init();
	if (!h->multi) {
		free(h);
		return -EIO;
	}
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	/* Kept connections: one per upload in flight (HTTP/1.1 backends) plus
	 * the name query's. */
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, 72L);
	*ret = h;
	return 0;
}

void http_free(struct http *h)
{
	if (!h)
		return;
	/* Owners cancel their requests before freeing h (see http.h). */
	assert(h->active == 0);
	/* Closing cached connections calls sock_cb(REMOVE), which frees the
	 * watches, and may call timer_cb: cancel the task afterwards. */
	curl_multi_cleanup(h->multi);
	loop_task_cancel(h->loop, &h->timer);
	free(h);
}

void http_cancel(struct http_req *req)
{
	if (req->busy)
		req_release(req);
}

unsigned http_active(const struct http *h)
{
	return h->active;
}

int http_post(struct http *h, struct http_req *req, const char *url, const char *content_type,
	      const char *body, size_t len, long timeout_ms, http_done_fn done)
{
	return http_post_enc(h, req, url, content_type, NULL, body, len, timeout_ms, done);
}

int http_post_enc(struct http *h, struct http_req *req, const char *url, const char *content_type,
		  const char *content_encoding, const char *body, size_t len, long timeout_ms,
		  http_done_fn done)
{
	char ctype[128], cenc[64];
	CURL *e;

	if (!url || !*url || !done)
		return -EINVAL;
	if (req->busy)
		return -EBUSY;
	if (snprintf(ctype, sizeof(ctype), "Content-Type: %s", content_type) >= (int)sizeof(ctype))
		return -EINVAL;
	if (content_encoding &&
	    snprintf(cenc, sizeof(cenc), "Content-Encoding: %s", content_encoding) >=
		    (int)sizeof(cenc))
		return -EINVAL;
	req->http = h;
	req->done = done;
	req->resp_len = 0;
	req->resp[0] = '\0';
	req->truncated = false;
	req->curl_error[0] = '\0';
	req->body = malloc(len ? len : 1);
	if (!req->body)
		return -ENOMEM;
	memcpy(req->body, body, len);
	req->headers = curl_slist_append(NULL, ctype);
	/* No "Expect: 100-continue" round trip for our small bodies. */
	if (req->headers)
		req->headers = curl_slist_append(req->headers, "Expect:");
	if (req->headers && content_encoding)
		req->headers = curl_slist_append(req->headers, cenc);
	e = curl_easy_init();
	if (!e || !req->headers) {
		curl_easy_cleanup(e);
		goto err;
	}
	req->easy = e;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, req);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, req->curl_error);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	/* Requests started together share one HTTP/2 connection (ALPN over
	 * TLS) instead of each opening its own; HTTP/1.1 gets one each. */
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "egw/" EGW_VERSION);
	if (curl_multi_add_handle(h->multi, e) != CURLM_OK)
		goto err;
	req->busy = true;
	h->active++;
	return 0;

err:
	req->busy = false;
	req_release(req);
	return -ENOMEM;
}
