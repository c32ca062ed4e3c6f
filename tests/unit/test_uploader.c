/* Uploader and name query against real HTTP servers on loopback
 * (libmicrohttpd in this process, its own threads), through libcurl's multi
 * interface driven by the real event loop.
 *
 * The batches come from a small in-memory queue implementing
 * struct uploader_source (the store has its own tests; test_pipeline covers
 * the two together). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend/http.h"
#include "backend/name.h"
#include "backend/uploader.h"
#include "base/err.h"
#include "base/util.h"
#include "loop/loop.h"

/* ---------------- test HTTP server ---------------- */

#define MAX_REQS 256

struct srv {
	struct MHD_Daemon *d;
	uint16_t port;
	pthread_mutex_t mu;
	/* behaviour */
	int fail_next;  /* answer 500 to the next N requests */
	int stall_next; /* sleep stall_ms before answering the next N */
	int stall_ms;
	int delay_ms;         /* every answer waits this long */
	char fail_body[32];   /* answer 500 to this body ... */
	int fail_body_n;      /* ... this many times */
	int active, max_active; /* requests being answered at once */
	char graphql_answer[512];
	/* record */
	int n;
	char bodies[MAX_REQS][160];
	char ctypes[MAX_REQS][64];
	usec_t at[MAX_REQS];
	int status[MAX_REQS];
};

struct conn {
	char buf[1024];
	size_t len;
};

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
	struct srv *s = cls;
	struct conn *cn = *con_cls;
	int code = 200, stall = 0;
	const char *body = "{\"ok\":true}";
	char copy[512];
	(void)version;

	if (!cn) {
		cn = calloc(1, sizeof(*cn));
		*con_cls = cn;
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = MIN(*upload_size, sizeof(cn->buf) - 1 - cn->len);
		memcpy(cn->buf + cn->len, upload, n);
		cn->len += n;
		*upload_size = 0;
		return MHD_YES;
	}
	if (strcmp(method, "POST") != 0)
		code = 405;
	pthread_mutex_lock(&s->mu);
	if (++s->active > s->max_active)
		s->max_active = s->active;
	if (s->fail_next > 0) {
		s->fail_next--;
		code = 500;
	} else if (s->fail_body_n > 0 && cn->len == strlen(s->fail_body) &&
	           !memcmp(cn->buf, s->fail_body, cn->len)) {
		s->fail_body_n--;
		code = 500;
	} else if (s->stall_next > 0) {
		s->stall_next--;
		stall = s->stall_ms;
	}
	if (strcmp(url, "/graphql") == 0) {
		snprintf(copy, sizeof(copy), "%s", s->graphql_answer);
		body = copy;
	}
	if (s->n < MAX_REQS) {
		snprintf(s->bodies[s->n], sizeof(s->bodies[0]), "%.*s", (int)cn->len, cn->buf);
		const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
		snprintf(s->ctypes[s->n], sizeof(s->ctypes[0]), "%s", ct ? ct : "");
		s->at[s->n] = now_usec();
		s->status[s->n] = stall ? -1 : code;
		s->n++;
	}
	int delay = s->delay_ms;
	pthread_mutex_unlock(&s->mu);
	if (stall)
		usleep((useconds_t)stall * 1000);
	if (delay)
		usleep((useconds_t)delay * 1000);
	pthread_mutex_lock(&s->mu);
	s->active--;
	pthread_mutex_unlock(&s->mu);
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret = MHD_queue_response(c, (unsigned)code, r);
	MHD_destroy_response(r);
	return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

static uint16_t free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static void srv_start(struct srv *s, uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons(port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	s->port = port;
	s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
	                            MHD_USE_ERROR_LOG,
	                        port, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, &a,
	                        MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_NOTIFY_COMPLETED,
	                        completed, s, MHD_OPTION_END);
	assert_non_null(s->d);
}

static struct srv *srv_new(bool start)
{
	struct srv *s = calloc(1, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	snprintf(s->graphql_answer, sizeof(s->graphql_answer), "{}");
	if (start)
		srv_start(s, free_port());
	else
		s->port = free_port();
	return s;
}

static void srv_free(struct srv *s)
{
	if (s->d)
		MHD_stop_daemon(s->d);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static int srv_count(struct srv *s)
{
	pthread_mutex_lock(&s->mu);
	int n = s->n;
	pthread_mutex_unlock(&s->mu);
	return n;
}

static void srv_url(const struct srv *s, const char *path, char *buf, size_t len)
{
	snprintf(buf, len, "http://127.0.0.1:%u%s", s->port, path);
}

/* ---------------- in-memory batch source ---------------- */

struct queue {
	uint64_t first, last;   /* seqs first..last are pending (first > last: none) */
	uint64_t unsigned_from; /* seqs >= this are "not signed yet" (0: all signed) */
	uint64_t acked[MAX_REQS];
	int nacked;
	int ack_fail_next;
	unsigned ack_sleep_ms; /* the ack "fsync" takes this long (worker thread) */
	int health_down, health_up; /* on_health calls */
	struct uploader *up;        /* for q_empty */
	long health_status;
	volatile int acking;   /* set while an ack runs */
};

static int q_peek(void *ud, uint64_t after_seq, uint64_t *ret_seq, char **ret_jwt)
{
	struct queue *q = ud;
	char buf[32];
	uint64_t seq = MAX(__atomic_load_n(&q->first, __ATOMIC_SEQ_CST), after_seq + 1);
	if (seq > q->last)
		return -ENOENT;
	if (q->unsigned_from && seq >= q->unsigned_from)
		return -EAGAIN;
	snprintf(buf, sizeof(buf), "tok-%llu", (unsigned long long)seq);
	*ret_seq = seq;
	*ret_jwt = strdup(buf);
	return 0;
}

static int q_ack(void *ud, uint64_t seq)
{
	struct queue *q = ud;
	if (q->ack_sleep_ms) {
		__atomic_store_n(&q->acking, 1, __ATOMIC_SEQ_CST);
		usleep(q->ack_sleep_ms * 1000);
	}
	if (q->ack_fail_next > 0) {
		q->ack_fail_next--;
		return -EIO;
	}
	if (seq != q->first)
		return -ENOENT;
	q->acked[q->nacked] = seq;
	__atomic_fetch_add(&q->nacked, 1, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&q->first, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static const struct uploader_source q_source = {.peek = q_peek, .ack = q_ack};

/* ---------------- helpers ---------------- */

struct fixture {
	struct loop *l;
	struct http *h;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_int_equal(loop_new(&f->l), 0);
	assert_int_equal(http_new(f->l, &f->h), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	http_free(f->h);
	loop_free(f->l);
	free(f);
	return 0;
}

/* Run the loop until *done(ud) or timeout; returns whether done. */
static bool run_until(struct loop *l, bool (*done)(void *), void *ud, usec_t timeout)
{
	usec_t end = now_usec() + timeout;
	while (now_usec() < end) {
		if (done(ud))
			return true;
		loop_run_once(l, 10 * USEC_PER_MSEC);
	}
	return done(ud);
}

/* Everything delivered, and the uploader has seen its last ack complete (the
 * ack runs on a worker; its completion on the loop thread comes after). */
static bool q_empty(void *ud)
{
	struct queue *q = ud;
	struct uploader_stats st;

	if (q->up) {
		uploader_get_stats(q->up, &st);
		if (st.pending_seq != 0 ||
		    st.store_acked != (uint64_t)__atomic_load_n(&q->nacked, __ATOMIC_SEQ_CST))
			return false;
	}
	return __atomic_load_n(&q->first, __ATOMIC_SEQ_CST) > q->last;
}

static void on_health(void *ud, bool ok, int err, long status, const char *detail)
{
	struct queue *q = ud;
	(void)err;
	(void)detail;
	if (ok)
		q->health_up++;
	else
		q->health_down++;
	q->health_status = status;
}

static struct uploader *up_new_window(struct fixture *f, struct queue *q, struct srv **srvs,
                                      int nsrv, unsigned rate, long timeout_ms, unsigned window)
{
	static char urls[UPLOADER_MAX_URLS][128];
	const char *u[UPLOADER_MAX_URLS];
	struct uploader *up;
	for (int i = 0; i < nsrv; i++) {
		srv_url(srvs[i], "/data", urls[i], sizeof(urls[i]));
		u[i] = urls[i];
	}
	struct uploader_config cfg = {
	    .urls = u,
	    .n_urls = (size_t)nsrv,
	    .timeout_ms = timeout_ms,
	    .rate_per_s = rate,
	    .backoff_min = 50 * USEC_PER_MSEC,
	    .backoff_max = 400 * USEC_PER_MSEC,
	    .poll_interval = 100 * USEC_PER_MSEC,
	    .on_health = on_health,
	    .health_ud = q,
	    .max_in_flight = window,
	};
	assert_int_equal(uploader_new(f->l, f->h, &cfg, &q_source, q, &up), 0);
	q->up = up;
	return up;
}

/* One batch in flight at a time: the arrival order is the seq order. */
static struct uploader *up_new(struct fixture *f, struct queue *q, struct srv **srvs, int nsrv,
                               unsigned rate, long timeout_ms)
{
	return up_new_window(f, q, srvs, nsrv, rate, timeout_ms, 1);
}

static void assert_bodies_in_order(struct srv *s, uint64_t first, uint64_t last)
{
	/* Every successful answer, in arrival order, is the next seq. */
	uint64_t want = first;
	char buf[32];
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < s->n; i++) {
		snprintf(buf, sizeof(buf), "tok-%llu", (unsigned long long)want);
		assert_string_equal(s->bodies[i], buf); /* retries repeat the same seq */
		assert_string_equal(s->ctypes[i], "application/jwt");
		if (s->status[i] == 200)
			want++;
	}
	pthread_mutex_unlock(&s->mu);
	assert_int_equal(want, last + 1);
}

/* ---------------- tests ---------------- */

static void test_acks_in_order(void **state)
{
	struct fixture *f = *state;
	struct srv *s = srv_new(true);
	struct queue q = {.first = 1, .last = 5};
	struct uploader *up = up_new(f, &q, &s, 1, 1000, 2000);
	struct uploader_stats st;

	uploader_kick(up);
	assert_true(run_until(f->l, q_empty, &q, 5 * USEC_PER_SEC));
	assert_int_equal(q.nacked, 5);
	for (int i = 0; i < 5; i++)
		assert_int_equal(q.acked[i], (uint64_t)i + 1);
	assert_bodies_in_order(s, 1, 5);
	uploader_get_stats(up, &st);
	assert_int_equal(st.attempts, 5);
	assert_int_equal(st.ok, 5);
	assert_int_equal(st.failed, 0);
	assert_int_equal(st.acked, 5);
	assert_int_equal(st.last_acked_seq, 5);
	assert_int_equal(st.last_status, 200);
	assert_int_equal(st.pending_seq, 0);
	/* New work after idling is picked up on a kick. */
	q.last = 7;
	uploader_kick(up);
	assert_true(run_until(f->l, q_empty, &q, 5 * USEC_PER_SEC));
	assert_bodies_in_order(s, 1, 7);
	uploader_free(up);
	srv_free(s);
}

static void test_500_retried_with_backoff(void **state)
{
	struct fixture *f = *state;
	struct srv *s = srv_new(true);
	struct queue q = {.first = 1, .last = 3};
	struct uploader *up;
	struct uploader_stats st;

	s->fail_next = 4;
	up = up_new(f, &q, &s, 1, 1000, 2000);
	uploader_kick(up);
	/* While failing, nothing is acked and the backoff grows. */
	while (srv_count(s) < 2)
		loop_run_once(f->l, 10 * USEC_PER_MSEC);
	uploader_get_stats(up, &st);
	assert_int_equal(q.nacked, 0);
	assert_int_equal(st.last_status, 500);
	assert_int_equal(st.last_error, -EGW_EBACKEND);
	assert_true(st.backoff >= 50 * USEC_PER_MSEC);
	assert_true(run_until(f->l, q_empty, &q, 10 * USEC_PER_SEC));
	assert_int_equal(srv_count(s), 4 + 3);
	assert_bodies_in_order(s, 1, 3);
	/* Gaps between failed attempts: ~50, ~100, ~200 ms (+-25 % jitter).
	 * The server stamps arrivals, which lag their sends by however late
	 * its thread runs; a late first stamp shortens the gap after it, so
	 * the floors leave 7.5 ms or more for that below the jitter's. */
	usec_t g1 = s->at[1] - s->at[0], g3 = s->at[3] - s->at[2], g4 = s->at[4] - s->at[3];
	assert_true(g1 >= 30 * USEC_PER_MSEC);
	assert_true(g3 >= 140 * USEC_PER_MSEC);
	assert_true(g4 >= 225 * USEC_PER_MSEC); /* capped at 400 */
	assert_true(g4 > g1);
	uploader_get_stats(up, &st);
	assert_int_equal(st.failed, 4);
	assert_int_equal(st.ok, 3);
	/* Four failures in a row are one outage: one "down", one "up". */
	assert_int_equal(q.health_down, 1);
	assert_int_equal(q.health_up, 1);
	assert_int_equal(q.health_status, 200);
	assert_int_equal(st.backoff, 0); /* snapped back */
	assert_int_equal(st.last_error, 0);
	uploader_free(up);
	srv_free(s);
}

static void test_refused_then_server_appears(void **state)
{
	struct fixture *f = *state;
	struct srv *s = srv_new(false); /* port chosen, nobody listening */
	struct queue q = {.first = 10, .last = 14};
	struct uploader *up = up_new(f, &q, &s, 1, 1000, 2000);
	struct uploader_stats st;

	uploader_kick(up);
	usec_t end = now_usec() + 3 * USEC_PER_SEC;
	do {
		loop_run_once(f->l, 10 * USEC_PER_MSEC);
		uploader_get_stats(up, &st);
	} while (st.failed < 3 && now_usec() < end);
	assert_true(st.failed >= 3);
	assert_int_equal(st.last_error, -ECONNREFUSED);
	assert_int_equal(st.ok, 0);
	assert_int_equal(q.nacked, 0);
	assert_int_equal(st.pending_seq, 10);
	srv_start(s, s->port);
	assert_true(run_until(f->l, q_empty, &q, 5 * USEC_PER_SEC));
	assert_bodies_in_order(s, 10, 14);
	assert_int_equal(srv_count(s), 5); /* refused attempts never reached it */
	uploader_free(up);
	srv_free(s);
}

static void test_timeout_retried(void **state)
{
	struct fixture *f = *state;
	struct srv *s = srv_new(true);
	struct queue q = {.first = 1, .last = 2};
	struct uploader *up;
	struct uploader_stats st;

	s->stall_next = 1;
	s->stall_ms = 700;
	up = up_new(f, &q, &s, 1, 1000, 200);
	uploader_kick(up);
	usec_t t0 = now_usec();
	assert_true(run_until(f->l, q_empty, &q, 5 * USEC_PER_SEC));
	uploader_get_stats(up, &st);
	assert_int_equal(st.failed, 1);
	assert_int_equal(st.ok, 2);
	assert_int_equal(q.acked[0], 1);
	assert_int_equal(q.acked[1], 2);
	/* The first attempt gave up after ~200 ms: the retry reached the server
	 * while the first request was still stalled there (700 ms). */
	assert_true(s->at[1] - s->at[0] < 650 * USEC_PER_MSEC);
	assert_true(now_usec() - t0 >= 200 * USEC_PER_MSEC);
	assert_int_equal(srv_count(s), 3);
	uploader_free(up);
	srv_free(s);
}

static void test_bounded_rate(void **state)
{
	struct fixture *f = *state;
	struct srv *s = srv_new(true);
	struct queue q = {.first = 1, .last = 10};
	struct uploader *up = up_new(f, &q, &s, 1, 20, 2000); /* 20/s: >= 50 ms apart */

	usec_t t0 = now_usec();
	uploader_kick(up);
	assert_true(run_until(f->l, q_empty, &q, 5 * USEC_PER_SEC));
	usec_t took = now_usec() - t0;
	/* The rate is a floor on the spacing of the sends; a busy machine only
	 * adds to it (run_until bounds the whole at 5 s).  The server stamps
	 * arrivals, which lag their sends by however late its thread runs, so
	 * two arrivals may be closer than two sends were: the i-th arrival is
	 * checked against the earliest the i-th send may be, i * 50 ms after
	 * the kick (2 ms for the loop timer's rounding). */
	assert_true(took >= 9 * 50 * USEC_PER_MSEC);
	for (int i = 1; i < 10; i++)
		assert_true(s->at[i] - t0 >= (usec_t)i * 50 * USEC_PER_MSEC - 2 * USEC_PER_MSEC);
	assert_bodies_in_order(s, 1, 10);
	uploader_free(up);
	srv_free(s);
}

static void test_unsigned_never_sent(void **state)
{
	struct fixture *f = *state;
	struct srv *s = srv_new(true);
	struct queue q = {.first = 1, .last = 4, .unsigned_from = 3};
	struct uploader *up = up_new(f, &q, &s, 1, 1000, 2000);
	struct uploader_stats st;

	uploader_kick(up);
	usec_t end = now_usec() + 400 * USEC_PER_MSEC;
	while (now_usec() < end)
		loop_run_once(f->l, 10 * USEC_PER_MSEC);
	/* 1 and 2 went; 3 is not signed: it and everything after wait. */
	assert_int_equal(q.nacked, 2);
	assert_int_equal(srv_count(s), 2);
	uploader_get_stats(up, &st);
	assert_true(st.waiting_signer);
	q.unsigned_from = 0; /* the signer recovered */
	uploader_kick(up);
	assert_true(run_until(f->l, q_empty, &q, 5 * USEC_PER_SEC));
	assert_bodies_in_order(s, 1, 4);
	uploader_get_stats(up, &st);
	assert_false(st.waiting_signer);
	uploader_free(up);
	srv_free(s);
}

static void test_two_endpoints_and_failed_ack(void **state)
{
	struct fixture *f = *state;
	struct srv *s[2] = {srv_new(true), srv_new(true)};
	struct queue q = {.first = 1, .last = 3, .ack_fail_next = 1};
	struct uploader *up;

	s[1]->fail_next = 1; /* the second endpoint fails once */
	up = up_new(f, &q, s, 2, 1000, 2000);
	uploader_kick(up);
	assert_true(run_until(f->l, q_empty, &q, 5 * USEC_PER_SEC));
	assert_bodies_in_order(s[0], 1, 3);
	assert_bodies_in_order(s[1], 1, 3);
	/* Endpoint 0 took seq 1 once: the retry went only to endpoint 1, and the
	 * failed store ack did not resend anything. */
	assert_int_equal(srv_count(s[0]), 3);
	assert_int_equal(srv_count(s[1]), 4);
	assert_int_equal(q.nacked, 3);
	uploader_free(up);
	srv_free(s[0]);
	srv_free(s[1]);
}

static void test_free_while_ack_in_flight(void **state)
{
	struct fixture *f = *state;
	struct srv *s = srv_new(true);
	struct queue q = {.first = 1, .last = 5, .ack_sleep_ms = 300};
	struct uploader *up = up_new(f, &q, &s, 1, 1000, 2000);

	uploader_kick(up);
	usec_t end = now_usec() + 3 * USEC_PER_SEC;
	while (!__atomic_load_n(&q.acking, __ATOMIC_SEQ_CST) && now_usec() < end)
		loop_run_once(f->l, 5 * USEC_PER_MSEC);
	assert_true(q.acking);
	/* Freeing waits for the worker; nothing started meanwhile outlives it
	 * (the next batch may be on its way already: uploads do not wait for
	 * the store's ack). */
	uploader_free(up);
	assert_int_equal(http_active(f->h), 0);
	assert_true(srv_count(s) >= 1);
	assert_int_equal(q.nacked, 1); /* the ack itself completed */
	srv_free(s);
}

/* Answer status of body tok-<seq> so far: 0 none, else the last one. */
static int srv_status_of(struct srv *s, uint64_t seq)
{
	char want[32];
	int st = 0;
	snprintf(want, sizeof(want), "tok-%llu", (unsigned long long)seq);
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->bodies[i], want))
			st = s->status[i];
	pthread_mutex_unlock(&s->mu);
	return st;
}

static void test_window_acks_in_order(void **state)
{
	struct fixture *f = *state;
	struct srv *s = srv_new(true);
	struct queue q = {.first = 1, .last = 12};
	struct uploader *up;
	struct uploader_stats st;
	bool later_ok_while_2_failing = false;

	s->delay_ms = 100;
	snprintf(s->fail_body, sizeof(s->fail_body), "tok-2");
	s->fail_body_n = 2;
	up = up_new_window(f, &q, &s, 1, 1000, 5000, 4);
	uploader_kick(up);
	usec_t end = now_usec() + 10 * USEC_PER_SEC;
	while (!q_empty(&q) && now_usec() < end) {
		loop_run_once(f->l, 5 * USEC_PER_MSEC);
		/* Until seq 2 got its 200, nothing after seq 1 is acknowledged,
		 * although later batches were answered 200. */
		if (srv_status_of(s, 2) != 200) {
			assert_true(__atomic_load_n(&q.nacked, __ATOMIC_SEQ_CST) <= 1);
			if (srv_status_of(s, 3) == 200)
				later_ok_while_2_failing = true;
		}
	}
	assert_true(q_empty(&q));
	assert_true(later_ok_while_2_failing);
	assert_int_equal(q.nacked, 12);
	for (int i = 0; i < 12; i++)
		assert_int_equal(q.acked[i], (uint64_t)i + 1);
	assert_true(s->max_active >= 2); /* several requests in flight */
	assert_true(s->max_active <= 4); /* and never more than the window */
	uploader_get_stats(up, &st);
	assert_int_equal(st.failed, 2);
	assert_int_equal(st.ok, 12);
	assert_int_equal(st.max_in_flight, 4);
	assert_int_equal(st.in_flight, 0);
	uploader_free(up);
	srv_free(s);
}

/* A transport that answers on the loop a little later, and fails at once
 * while "not connected". */
struct fake_tp {
	struct loop *l;
	struct uploader *u;
	bool connected;
	int sends;
	usec_t delay; /* answers after this long */
	unsigned pending[UPLOADER_MAX_IN_FLIGHT];
	unsigned n_pending;
	struct task done_task;
};

static int ft_send(void *ud, unsigned id, uint64_t seq, const char *body, size_t len)
{
	struct fake_tp *t = ud;
	(void)seq;
	(void)body;
	(void)len;
	t->sends++;
	if (!t->connected)
		return -ENOTCONN;
	t->pending[t->n_pending++] = id;
	if (!sched_queued(&t->done_task))
		loop_task_add(t->l, &t->done_task, now_usec() + t->delay);
	return 0;
}

static void ft_cancel(void *ud, unsigned id)
{
	struct fake_tp *t = ud;
	for (unsigned i = 0; i < t->n_pending; i++)
		if (t->pending[i] == id)
			t->pending[i] = UINT32_MAX;
}

static int ft_done(struct task *task, usec_t now)
{
	struct fake_tp *t = container_of(task, struct fake_tp, done_task);
	unsigned ids[UPLOADER_MAX_IN_FLIGHT], n = t->n_pending;
	(void)now;
	memcpy(ids, t->pending, n * sizeof(ids[0]));
	t->n_pending = 0;
	for (unsigned i = 0; i < n; i++)
		if (ids[i] != UINT32_MAX)
			uploader_sent(t->u, ids[i], 0);
	return 0;
}

static const struct uploader_transport fake_transport = {.send = ft_send, .cancel = ft_cancel};

static void test_transport_not_connected_backs_off(void **state)
{
	struct fixture *f = *state;
	struct queue q = {.first = 1, .last = 20};
	struct fake_tp t = {.l = f->l, .connected = true, .delay = 300 * USEC_PER_MSEC};
	struct uploader *up;
	struct uploader_stats st;

	t.done_task = (struct task){.name = "fake-tp", .run = ft_done};
	struct uploader_config cfg = {
	    .rate_per_s = 1000,
	    .backoff_min = 50 * USEC_PER_MSEC,
	    .backoff_max = 200 * USEC_PER_MSEC,
	    .poll_interval = 100 * USEC_PER_MSEC,
	    .max_in_flight = 4,
	    .transport = &fake_transport,
	    .transport_ud = &t,
	};
	assert_int_equal(uploader_new(f->l, NULL, &cfg, &q_source, &q, &up), 0);
	t.u = up;
	q.up = up;
	uploader_kick(up);
	/* The window fills (answers take 300 ms), then the connection drops:
	 * the four in flight fail together. */
	usec_t end = now_usec() + 3 * USEC_PER_SEC;
	while (t.n_pending < 4 && now_usec() < end)
		loop_run_once(f->l, 5 * USEC_PER_MSEC);
	assert_int_equal(t.n_pending, 4);
	loop_task_cancel(f->l, &t.done_task);
	t.connected = false;
	for (unsigned i = 0; i < 4; i++)
		uploader_sent(up, t.pending[i], -ECONNRESET);
	t.n_pending = 0;
	t.sends = 0;
	t.delay = 5 * USEC_PER_MSEC;
	/* Not connected: sends fail at once; the retries follow the backoff
	 * (50, 100, 200, 200 ms ...) four at a time, they do not spin. */
	end = now_usec() + 600 * USEC_PER_MSEC;
	while (now_usec() < end)
		loop_run_once(f->l, 10 * USEC_PER_MSEC);
	assert_true(t.sends >= 4);
	assert_true(t.sends <= 4 * 6);
	assert_int_equal(q.nacked, 0);
	uploader_get_stats(up, &st);
	assert_true(st.backoff > 0);
	/* Connected: the waiting batch goes at once, then the rest, in order. */
	t.connected = true;
	uploader_resume(up);
	assert_true(run_until(f->l, q_empty, &q, 5 * USEC_PER_SEC));
	assert_int_equal(q.nacked, 20);
	for (int i = 0; i < 20; i++)
		assert_int_equal(q.acked[i], (uint64_t)i + 1);
	uploader_get_stats(up, &st);
	assert_int_equal(st.backoff, 0);
	assert_int_equal(st.acked, 20);
	uploader_free(up);
	loop_task_cancel(f->l, &t.done_task);
}

static void test_bad_config(void **state)
{
	struct fixture *f = *state;
	struct queue q = {.first = 1, .last = 0};
	struct uploader *up = NULL;
	const char *urls[] = {""};
	struct uploader_config cfg = {.urls = urls, .n_urls = 1};
	assert_int_equal(uploader_new(f->l, f->h, &cfg, &q_source, &q, &up), -EINVAL);
	cfg.n_urls = UPLOADER_MAX_URLS + 1;
	assert_int_equal(uploader_new(f->l, f->h, &cfg, &q_source, &q, &up), -EINVAL);
	assert_null(up);
}

/* ---------------- name query ---------------- */

static void test_name_parse(void **state)
{
	char name[NAMEQUERY_MAX] = "";
	(void)state;
	assert_int_equal(namequery_parse("{\"data\":{\"gatewayConfiguration\":{\"gatewayName\":"
	                                 "{\"name\":\"Roof\"}}}}",
	                                 name),
	                 1);
	assert_string_equal(name, "Roof");
	assert_int_equal(namequery_parse("{\"data\":{\"gatewayConfiguration\":{\"gatewayName\":"
	                                 "{\"name\":null}}}}",
	                                 name),
	                 0);
	assert_int_equal(namequery_parse("{\"data\":{\"gatewayConfiguration\":{\"gatewayName\":"
	                                 "null}}}",
	                                 name),
	                 0);
	assert_int_equal(namequery_parse("{\"data\":null}", name), 0);
	assert_int_equal(namequery_parse("{\"data\":{\"gatewayConfiguration\":{\"gatewayName\":"
	                                 "{\"name\":\"\"}}}}",
	                                 name),
	                 0);
	assert_int_equal(namequery_parse("{\"errors\":[{\"message\":\"x\"}]}", name),
	                 -EGW_EBACKEND);
	assert_int_equal(namequery_parse("{\"data\":{\"gatewayConfiguration\":{\"gatewayName\":"
	                                 "{\"name\":42}}}}",
	                                 name),
	                 -EGW_ESCHEMA);
	assert_int_equal(namequery_parse("{\"data\":[1]}", name), -EGW_ESCHEMA);
	assert_int_equal(namequery_parse("[]", name), -EGW_ESCHEMA);
	assert_int_equal(namequery_parse("{\"data\":", name), -EGW_EJSON);
	assert_true(namequery_parse("{\"data\":{\"gatewayConfiguration\":{\"gatewayName\":"
	                            "{\"name\":\"a\\u0000b\"}}}}",
	                            name) < 0);
	assert_string_equal(name, "Roof"); /* untouched by failures */
}

struct nq_wait {
	struct srv *s;
	int n;
};

static bool srv_reached(void *ud)
{
	struct nq_wait *w = ud;
	return srv_count(w->s) >= w->n;
}

static void test_name_query(void **state)
{
	struct fixture *f = *state;
	struct srv *s = srv_new(true);
	struct namequery *q;
	struct namequery_stats st;
	char url[128];
	struct nq_wait w = {.s = s};

	srv_url(s, "/graphql", url, sizeof(url));
	snprintf(s->graphql_answer, sizeof(s->graphql_answer),
	         "{\"data\":{\"gatewayConfiguration\":{\"gatewayName\":{\"name\":null}}}}");
	struct namequery_config cfg = {.url = url,
	                               .serial = "01a2b3c4d5e6f70809",
	                               .interval = 100 * USEC_PER_MSEC,
	                               .refresh_interval = 100 * USEC_PER_SEC};
	assert_int_equal(namequery_new(f->l, f->h, &cfg, &q), 0);
	w.n = 2;
	assert_true(run_until(f->l, srv_reached, &w, 3 * USEC_PER_SEC));
	assert_null(namequery_name(q));
	assert_string_equal(s->bodies[0], "{\"query\":\"{ gatewayConfiguration { gatewayName(id:"
	                                  "\\\"01a2b3c4d5e6f70809\\\") { name } } }\"}");
	assert_string_equal(s->ctypes[0], "application/json");
	/* The backend fails once, then knows the name. */
	pthread_mutex_lock(&s->mu);
	s->fail_next = 1;
	snprintf(s->graphql_answer, sizeof(s->graphql_answer),
	         "{\"data\":{\"gatewayConfiguration\":{\"gatewayName\":{\"name\":\"Garage\"}}}}");
	pthread_mutex_unlock(&s->mu);
	w.n = srv_count(s) + 2;
	assert_true(run_until(f->l, srv_reached, &w, 3 * USEC_PER_SEC));
	/* let the last answer land */
	for (int i = 0; i < 20 && !namequery_name(q); i++)
		loop_run_once(f->l, 10 * USEC_PER_MSEC);
	assert_non_null(namequery_name(q));
	assert_string_equal(namequery_name(q), "Garage");
	namequery_get_stats(q, &st);
	assert_true(st.failed >= 1);
	assert_true(st.ok >= 2);
	/* Known: the slow refresh applies, no more queries for a while. */
	int n = srv_count(s);
	usec_t end = now_usec() + 400 * USEC_PER_MSEC;
	while (now_usec() < end)
		loop_run_once(f->l, 10 * USEC_PER_MSEC);
	assert_int_equal(srv_count(s), n);
	namequery_free(q);
	srv_free(s);
}

static void test_name_bad_config(void **state)
{
	struct fixture *f = *state;
	struct namequery *q = NULL;
	struct namequery_config cfg = {.url = "http://127.0.0.1:1/graphql", .serial = "ab\"cd"};
	assert_int_equal(namequery_new(f->l, f->h, &cfg, &q), -EINVAL);
	cfg.serial = "";
	assert_int_equal(namequery_new(f->l, f->h, &cfg, &q), -EINVAL);
	cfg.serial = "abc";
	cfg.url = NULL;
	assert_int_equal(namequery_new(f->l, f->h, &cfg, &q), -EINVAL);
	assert_null(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_acks_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_500_retried_with_backoff, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refused_then_server_appears, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_timeout_retried, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bounded_rate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unsigned_never_sent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_two_endpoints_and_failed_ack, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_free_while_ack_in_flight, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_window_acks_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_transport_not_connected_backs_off, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
	    cmocka_unit_test(test_name_parse),
	    cmocka_unit_test_setup_teardown(test_name_query, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_name_bad_config, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
