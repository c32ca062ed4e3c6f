/* Modbus client tests on a real event loop: the in-memory transport, and
 * real TCP on loopback against a small server in this file. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/util.h"
#include <netdb.h>

#include "loop/loop.h"
#include "modbus/client.h"

#define MS USEC_PER_MSEC

/* ---- callbacks recording their results ---- */

struct res {
	int calls;
	int err;
	unsigned count;
	uint16_t regs[MB_MAX_READ];
	usec_t at;
	char vendor[64];
	struct mb_client **free_me; /* free this client from inside the callback */
};

static void on_read(void *ud, int err, const uint16_t *regs, unsigned count)
{
	struct res *r = ud;
	r->calls++;
	r->err = err;
	r->count = count;
	r->at = now_usec();
	if (!err)
		memcpy(r->regs, regs, count * sizeof(*regs));
	if (r->free_me) {
		mb_client_free(*r->free_me);
		*r->free_me = NULL;
	}
}

static void on_write(void *ud, int err)
{
	struct res *r = ud;
	r->calls++;
	r->err = err;
	r->at = now_usec();
}

static void on_devid(void *ud, int err, const struct mb_devid *d)
{
	struct res *r = ud;
	r->calls++;
	r->err = err;
	if (!err) {
		const char *v = mb_devid_get(d, MB_DEVID_VENDOR);
		snprintf(r->vendor, sizeof(r->vendor), "%s", v ? v : "");
	}
}

/* Run the loop until *done >= want or `limit` passes.  Returns elapsed usec. */
static usec_t run_until(struct loop *l, const int *done, int want, usec_t limit)
{
	usec_t t0 = now_usec();
	while (*done < want && now_usec() - t0 < limit)
		loop_run_once(l, 5 * MS);
	return now_usec() - t0;
}

static void run_for(struct loop *l, usec_t span)
{
	usec_t t0 = now_usec();
	while (now_usec() - t0 < span)
		loop_run_once(l, 2 * MS);
}

/* ---- in-memory server: 100 registers, register i = 1000 + i ---- */

struct memsrv {
	struct mb_mem_server m;
	uint16_t regs[100];
	usec_t times[16];
	unsigned n;
	usec_t first_delay;  /* delay of the first answer only */
	bool silent;
};

static int mem_handle(void *ud, const struct mb_request *q, uint8_t *pdu, size_t cap)
{
	struct memsrv *s = ud;
	static const char *const objs[] = { "egw", "MEM", "0.1" };

	if (s->n < ARRAY_SIZE(s->times))
		s->times[s->n] = now_usec();
	s->m.delay = s->n == 0 ? s->first_delay : 0;
	s->n++;
	if (s->silent)
		return 0;
	switch (q->fc) {
	case MB_FC_READ_HOLDING:
	case MB_FC_READ_INPUT:
		if ((unsigned)q->addr + q->count > ARRAY_SIZE(s->regs))
			return MB_EXCEPTION_ERR(MB_EX_ILLEGAL_ADDRESS);
		return mb_build_read_response(q, s->regs + q->addr, pdu, cap);
	case MB_FC_WRITE_SINGLE:
	case MB_FC_WRITE_MULTIPLE:
		if ((unsigned)q->addr + q->count > ARRAY_SIZE(s->regs))
			return MB_EXCEPTION_ERR(MB_EX_ILLEGAL_ADDRESS);
		memcpy(s->regs + q->addr, q->values, q->count * sizeof(uint16_t));
		return mb_build_write_response(q, pdu, cap);
	case MB_FC_MEI: {
		int n = mb_build_devid_response(q, objs, ARRAY_SIZE(objs), 0x01, pdu, cap);
		return n < 0 ? MB_EXCEPTION_ERR(mb_exception_for(n)) : n;
	}
	default:
		return MB_EXCEPTION_ERR(MB_EX_ILLEGAL_FUNCTION);
	}
}

static void memsrv_init(struct memsrv *s)
{
	memset(s, 0, sizeof(*s));
	s->m.handle = mem_handle;
	s->m.ud = s;
	for (unsigned i = 0; i < ARRAY_SIZE(s->regs); i++)
		s->regs[i] = (uint16_t)(1000 + i);
}

static struct mb_client *mem_client(struct loop *l, struct memsrv *s, usec_t timeout, usec_t gap)
{
	struct mb_client *c = NULL;
	struct mb_client_config cfg = {
		.kind = MB_TRANSPORT_MEM, .mem = &s->m, .timeout = timeout, .min_gap = gap,
		.backoff_min = 20 * MS, .backoff_max = 80 * MS,
	};
	assert_int_equal(mb_client_new(l, &cfg, &c), 0);
	return c;
}

static void test_mem_read_write_devid(void **state)
{
	(void)state;
	struct loop *l;
	struct memsrv s;
	struct res r = { 0 }, w = { 0 }, w6 = { 0 }, r2 = { 0 }, d = { 0 };
	assert_int_equal(loop_new(&l), 0);
	memsrv_init(&s);
	struct mb_client *c = mem_client(l, &s, 200 * MS, 0);

	assert_int_equal(mb_client_read(c, 1, 3, 10, 5, on_read, &r), 0);
	assert_int_equal(r.calls, 0); /* never from inside the call */
	run_until(l, &r.calls, 1, USEC_PER_SEC);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.count, 5);
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(r.regs[i], 1010 + i);
	assert_true(mb_client_connected(c));

	uint16_t vals[3] = { 7, 8, 9 };
	assert_int_equal(mb_client_write(c, 1, 16, 20, vals, 3, on_write, &w), 0);
	assert_int_equal(mb_client_write(c, 1, 6, 30, vals, 1, on_write, &w6), 0);
	assert_int_equal(mb_client_read(c, 1, 4, 20, 3, on_read, &r2), 0);
	assert_int_equal(mb_client_read_devid(c, 1, MB_DEVID_BASIC, 0, on_devid, &d), 0);
	run_until(l, &d.calls, 1, USEC_PER_SEC);
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.err, 0);
	assert_int_equal(w6.err, 0);
	assert_int_equal(s.regs[30], 7);
	assert_int_equal(r2.err, 0);
	assert_int_equal(r2.regs[0], 7);
	assert_int_equal(r2.regs[2], 9);
	assert_int_equal(d.err, 0);
	assert_string_equal(d.vendor, "egw");

	const struct mb_client_stats *st = mb_client_stats(c);
	assert_int_equal(st->requests, 5);
	assert_int_equal(st->responses, 5);
	assert_int_equal(st->errors, 0);
	assert_true(st->last_ok_ms >= wall_ms() - 60000 && st->last_ok_ms <= wall_ms());
	assert_int_equal(st->last_err, 0);
	assert_true(mb_client_latency_percentile(c, 50) > 0);

	/* bad arguments are refused at once */
	assert_int_equal(mb_client_read(c, 1, 6, 0, 1, on_read, &r), -EINVAL);
	assert_int_equal(mb_client_read(c, 1, 3, 0, 126, on_read, &r), -EINVAL);
	assert_int_equal(mb_client_write(c, 1, 6, 0, vals, 2, on_write, &w), -EINVAL);
	mb_client_free(c);
	loop_free(l);
}

static void test_mem_exception_and_timeout(void **state)
{
	(void)state;
	struct loop *l;
	struct memsrv s;
	struct res e = { 0 }, t = { 0 };
	assert_int_equal(loop_new(&l), 0);
	memsrv_init(&s);
	struct mb_client *c = mem_client(l, &s, 50 * MS, 0);

	assert_int_equal(mb_client_read(c, 1, 3, 99, 2, on_read, &e), 0);
	run_until(l, &e.calls, 1, USEC_PER_SEC);
	assert_int_equal(e.err, MB_EXCEPTION_ERR(MB_EX_ILLEGAL_ADDRESS));
	assert_int_equal(mb_client_stats(c)->exceptions, 1);

	s.silent = true;
	usec_t t0 = now_usec();
	assert_int_equal(mb_client_read(c, 1, 3, 0, 1, on_read, &t), 0);
	run_until(l, &t.calls, 1, USEC_PER_SEC);
	assert_int_equal(t.err, -ETIMEDOUT);
	assert_true(t.at - t0 >= 50 * MS);
	assert_true(t.at - t0 < USEC_PER_SEC);
	assert_int_equal(mb_client_stats(c)->timeouts, 1);
	assert_int_equal(mb_client_stats(c)->errors, 2);
	assert_int_equal(mb_client_stats(c)->responses, 1);
	assert_int_equal(mb_client_stats(c)->last_err, -ETIMEDOUT);
	mb_client_free(c);
	loop_free(l);
}

/* The first answer comes after its request timed out, while nothing is in
 * flight: it is drained, and the next request works on the same connection. */
static void test_mem_stale_tid_drained(void **state)
{
	(void)state;
	struct loop *l;
	struct memsrv s;
	struct res a = { 0 }, b = { 0 };
	assert_int_equal(loop_new(&l), 0);
	memsrv_init(&s);
	s.first_delay = 150 * MS;
	struct mb_client *c = mem_client(l, &s, 100 * MS, 0);

	assert_int_equal(mb_client_read(c, 1, 3, 0, 2, on_read, &a), 0);
	run_until(l, &a.calls, 1, USEC_PER_SEC);
	assert_int_equal(a.err, -ETIMEDOUT);
	run_for(l, 150 * MS); /* the late answer lands with nothing in flight */
	assert_int_equal(mb_client_stats(c)->tid_mismatches, 1);
	assert_int_equal(mb_client_read(c, 1, 3, 5, 2, on_read, &b), 0);
	run_until(l, &b.calls, 1, USEC_PER_SEC);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.regs[0], 1005);
	assert_int_equal(s.m.connects, 1);
	mb_client_free(c);
	loop_free(l);
}

static int slow_second(void *ud, const struct mb_request *q, uint8_t *pdu, size_t cap)
{
	struct memsrv *s = ud;
	int n = mem_handle(ud, q, pdu, cap);
	/* first: 300 ms (after its 200 ms timeout); second: 150 ms, so the
	 * stale first answer (t=300) arrives while the second (sent at ~200,
	 * answered at ~350, deadline ~400) is in flight */
	s->m.delay = s->n == 1 ? 300 * MS : 150 * MS;
	return n;
}

static void test_mem_stale_tid_while_waiting(void **state)
{
	(void)state;
	struct loop *l;
	struct memsrv s;
	struct res a = { 0 }, b = { 0 };
	assert_int_equal(loop_new(&l), 0);
	memsrv_init(&s);
	s.m.handle = slow_second;
	struct mb_client *c = mem_client(l, &s, 200 * MS, 0);

	assert_int_equal(mb_client_read(c, 1, 3, 0, 2, on_read, &a), 0);
	assert_int_equal(mb_client_read(c, 1, 3, 7, 1, on_read, &b), 0);
	run_until(l, &b.calls, 1, USEC_PER_SEC);
	assert_int_equal(a.err, -ETIMEDOUT);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.count, 1);
	assert_int_equal(b.regs[0], 1007);
	assert_int_equal(mb_client_stats(c)->tid_mismatches, 1);
	mb_client_free(c);
	loop_free(l);
}

static void test_mem_pacing_gap(void **state)
{
	(void)state;
	struct loop *l;
	struct memsrv s;
	struct res r[5];
	int done = 0;
	memset(r, 0, sizeof(r));
	assert_int_equal(loop_new(&l), 0);
	memsrv_init(&s);
	struct mb_client *c = mem_client(l, &s, 200 * MS, 30 * MS);
	for (int i = 0; i < 5; i++)
		assert_int_equal(mb_client_read(c, 1, 3, (uint16_t)i, 1, on_read, &r[i]), 0);
	usec_t t0 = now_usec();
	while (r[4].calls == 0 && now_usec() - t0 < 2 * USEC_PER_SEC)
		loop_run_once(l, 5 * MS);
	for (int i = 0; i < 5; i++)
		done += r[i].calls == 1 && r[i].err == 0;
	assert_int_equal(done, 5);
	assert_int_equal(s.n, 5);
	for (int i = 1; i < 5; i++)
		assert_true(s.times[i] - s.times[i - 1] >= 30 * MS);
	mb_client_free(c);
	loop_free(l);
}

static void test_mem_queue_bound_and_cancel(void **state)
{
	(void)state;
	struct loop *l;
	struct memsrv s;
	static struct res r[MB_CLIENT_QUEUE_MAX + 1];
	memset(r, 0, sizeof(r));
	assert_int_equal(loop_new(&l), 0);
	memsrv_init(&s);
	struct mb_client *c = mem_client(l, &s, 200 * MS, 0);
	for (int i = 0; i < MB_CLIENT_QUEUE_MAX; i++)
		assert_int_equal(mb_client_read(c, 1, 3, 0, 1, on_read, &r[i]), 0);
	assert_int_equal(mb_client_read(c, 1, 3, 0, 1, on_read, &r[MB_CLIENT_QUEUE_MAX]), -ENOBUFS);
	assert_int_equal(mb_client_pending(c), MB_CLIENT_QUEUE_MAX);
	mb_client_free(c);
	for (int i = 0; i < MB_CLIENT_QUEUE_MAX; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].err, -ECANCELED);
	}
	assert_int_equal(r[MB_CLIENT_QUEUE_MAX].calls, 0);
	loop_free(l);
}

static void test_mem_refused_then_backoff(void **state)
{
	(void)state;
	struct loop *l;
	struct memsrv s;
	struct res a = { 0 }, b = { 0 };
	assert_int_equal(loop_new(&l), 0);
	memsrv_init(&s);
	s.m.refuse = true;
	struct mb_client *c = mem_client(l, &s, 100 * MS, 0);
	assert_int_equal(mb_client_read(c, 1, 3, 0, 1, on_read, &a), 0);
	run_until(l, &a.calls, 1, USEC_PER_SEC);
	assert_int_equal(a.err, -ECONNREFUSED);
	assert_false(mb_client_connected(c));
	unsigned attempts = (unsigned)mb_client_stats(c)->reconnects + 1;
	/* backoff 20..80 ms with jitter: in 100 ms, a handful of attempts, not hundreds */
	assert_true(attempts >= 2 && attempts <= 10);
	s.m.refuse = false;
	assert_int_equal(mb_client_read(c, 1, 3, 0, 1, on_read, &b), 0);
	run_until(l, &b.calls, 1, USEC_PER_SEC);
	assert_int_equal(b.err, 0);
	assert_int_equal(s.m.connects, 1);
	mb_client_free(c);
	loop_free(l);
}

static void test_mem_free_from_callback(void **state)
{
	(void)state;
	struct loop *l;
	struct memsrv s;
	struct res a = { 0 }, b = { 0 };
	assert_int_equal(loop_new(&l), 0);
	memsrv_init(&s);
	struct mb_client *c = mem_client(l, &s, 100 * MS, 0);
	a.free_me = &c;
	assert_int_equal(mb_client_read(c, 1, 3, 0, 1, on_read, &a), 0);
	assert_int_equal(mb_client_read(c, 1, 3, 0, 1, on_read, &b), 0);
	run_until(l, &a.calls, 1, USEC_PER_SEC);
	assert_null(c);
	assert_int_equal(a.err, 0);
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.err, -ECANCELED);
	run_for(l, 20 * MS); /* the deferred release runs */
	loop_free(l);
}

/* ---- a small Modbus TCP server on loopback, in the same loop ---- */

enum srv_mode { SRV_NORMAL, SRV_STALE_FIRST, SRV_SILENT, SRV_CLOSE_ONCE, SRV_GARBAGE_ONCE };

struct tsrv {
	struct loop *l;
	int lfd, cfd;
	struct loop_io lio, cio;
	uint8_t buf[1024];
	size_t len;
	enum srv_mode mode;
	unsigned accepts, requests;
	usec_t accept_at[8];
	bool accept_off;  /* never accept: connects complete in the backlog, nobody answers */
	bool rtu;         /* RTU framing over TCP */
	bool decoy;       /* after the first answer, send an unasked-for answer */
};

static void srv_reply(struct tsrv *s, const struct mb_request *q)
{
	uint8_t pdu[MB_PDU_MAX], adu[2 * MB_TCP_ADU_MAX];
	uint16_t regs[MB_MAX_READ];
	int n, m = 0;

	for (unsigned i = 0; i < MB_MAX_READ; i++)
		regs[i] = (uint16_t)(q->addr + i);
	n = mb_build_read_response(q, regs, pdu, sizeof(pdu));
	if (n < 0)
		n = mb_build_exception(q->fc, (uint8_t)mb_exception_for(n), pdu, sizeof(pdu));
	if (s->mode == SRV_STALE_FIRST) {
		uint8_t stale[2 + 2 * MB_MAX_READ];
		int k = mb_build_read_response(q, regs, stale, sizeof(stale));
		stale[2] ^= 0xFF;
		m = mb_tcp_wrap((uint16_t)(q->tid - 1), q->unit, stale, (size_t)k, adu, sizeof(adu));
	}
	if (s->rtu)
		m += mb_rtu_wrap(q->unit, pdu, (size_t)n, adu + m, sizeof(adu) - (size_t)m);
	else
		m += mb_tcp_wrap(q->tid, q->unit, pdu, (size_t)n, adu + m, sizeof(adu) - (size_t)m);
	assert_int_equal(write(s->cfd, adu, (size_t)m), m);
}

static void srv_drop(struct tsrv *s)
{
	if (s->cfd >= 0) {
		loop_io_del(s->l, &s->cio);
		close(s->cfd);
		s->cfd = -1;
	}
	s->len = 0;
}

static void srv_conn(struct loop_io *io, uint32_t ev)
{
	struct tsrv *s = container_of(io, struct tsrv, cio);
	(void)ev;
	ssize_t n = read(s->cfd, s->buf + s->len, sizeof(s->buf) - s->len);
	if (n <= 0) {
		srv_drop(s);
		return;
	}
	s->len += (size_t)n;
	for (;;) {
		struct mb_request q;
		size_t used = 0;
		int r = s->rtu ? mb_rtu_parse_request(s->buf, s->len, &q, &used)
			       : mb_tcp_parse_request(s->buf, s->len, &q, &used);
		if (r == -EAGAIN)
			return;
		if (used == 0) {
			s->len = 0;
			return;
		}
		s->requests++;
		memmove(s->buf, s->buf + used, s->len - used);
		s->len -= used;
		if (s->mode == SRV_CLOSE_ONCE) {
			s->mode = SRV_NORMAL;
			srv_drop(s);
			return;
		}
		if (s->mode == SRV_GARBAGE_ONCE) {
			s->mode = SRV_NORMAL;
			assert_int_equal(write(s->cfd, "\x01\x02\x00\x07\xff\xff\xff\xff", 8), 8);
			continue;
		}
		if (s->mode != SRV_SILENT && r == 0)
			srv_reply(s, &q);
		if (s->decoy) {
			/* a well-formed answer to a read of 2 registers that nobody
			 * asked for (yet): it must never be taken for the next answer */
			const uint8_t pdu[] = { 3, 4, 0xDE, 0xAD, 0xBE, 0xEF };
			uint8_t adu[16];
			int m = mb_rtu_wrap(q.unit, pdu, sizeof(pdu), adu, sizeof(adu));
			assert_int_equal(write(s->cfd, adu, (size_t)m), m);
			s->decoy = false;
		}
	}
}

static void srv_accept(struct loop_io *io, uint32_t ev)
{
	struct tsrv *s = container_of(io, struct tsrv, lio);
	(void)ev;
	int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	srv_drop(s); /* one client at a time, like many inverters */
	if (s->accepts < ARRAY_SIZE(s->accept_at))
		s->accept_at[s->accepts] = now_usec();
	s->accepts++;
	s->cfd = fd;
	assert_int_equal(loop_io_add(s->l, &s->cio, fd, EPOLLIN, srv_conn), 0);

}

static uint16_t srv_start(struct tsrv *s, struct loop *l, enum srv_mode mode)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	memset(s, 0, sizeof(*s));
	s->l = l;
	s->cfd = -1;
	s->mode = mode;
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->lfd, 8), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &alen), 0);
	return ntohs(a.sin_port);
}

static void srv_watch(struct tsrv *s)
{
	assert_int_equal(loop_io_add(s->l, &s->lio, s->lfd, EPOLLIN, srv_accept), 0);
}

static void srv_stop(struct tsrv *s)
{
	srv_drop(s);
	loop_io_del(s->l, &s->lio);
	close(s->lfd);
}

static struct mb_client *tcp_client(struct loop *l, uint16_t port, usec_t timeout, unsigned max_to)
{
	struct mb_client *c = NULL;
	struct mb_client_config cfg = {
		.kind = MB_TRANSPORT_TCP, .host = "127.0.0.1", .port = port, .timeout = timeout,
		.max_timeouts = max_to, .backoff_min = 40 * MS, .backoff_max = 200 * MS,
	};
	assert_int_equal(mb_client_new(l, &cfg, &c), 0);
	return c;
}

static void test_tcp_read(void **state)
{
	(void)state;
	struct loop *l;
	struct tsrv s;
	struct res r[3];
	memset(r, 0, sizeof(r));
	assert_int_equal(loop_new(&l), 0);
	uint16_t port = srv_start(&s, l, SRV_NORMAL);
	srv_watch(&s);
	struct mb_client *c = tcp_client(l, port, 500 * MS, 3);
	assert_int_equal(mb_client_read(c, 1, 3, 100, 125, on_read, &r[0]), 0);
	assert_int_equal(mb_client_read(c, 1, 4, 7, 1, on_read, &r[1]), 0);
	assert_int_equal(mb_client_read(c, 2, 3, 0, 10, on_read, &r[2]), 0);
	run_until(l, &r[2].calls, 1, USEC_PER_SEC);
	assert_int_equal(r[0].err, 0);
	assert_int_equal(r[0].count, 125);
	assert_int_equal(r[0].regs[0], 100);
	assert_int_equal(r[0].regs[124], 224);
	assert_int_equal(r[1].regs[0], 7);
	assert_int_equal(r[2].err, 0);
	assert_int_equal(s.accepts, 1);
	assert_int_equal(mb_client_stats(c)->connects, 1);
	mb_client_free(c);
	srv_stop(&s);
	loop_free(l);
}

static void test_tcp_stale_tid(void **state)
{
	(void)state;
	struct loop *l;
	struct tsrv s;
	struct res r = { 0 };
	assert_int_equal(loop_new(&l), 0);
	uint16_t port = srv_start(&s, l, SRV_STALE_FIRST);
	srv_watch(&s);
	struct mb_client *c = tcp_client(l, port, 500 * MS, 3);
	assert_int_equal(mb_client_read(c, 1, 3, 10, 2, on_read, &r), 0);
	run_until(l, &r.calls, 1, USEC_PER_SEC);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.regs[0], 10);
	assert_int_equal(r.regs[1], 11);
	assert_int_equal(mb_client_stats(c)->tid_mismatches, 1);
	assert_int_equal(s.accepts, 1); /* resynchronised without a reconnect */
	mb_client_free(c);
	srv_stop(&s);
	loop_free(l);
}

static void test_tcp_timeouts_then_reconnect(void **state)
{
	(void)state;
	struct loop *l;
	struct tsrv s;
	struct res r[3], ok = { 0 };
	memset(r, 0, sizeof(r));
	assert_int_equal(loop_new(&l), 0);
	uint16_t port = srv_start(&s, l, SRV_SILENT);
	srv_watch(&s);
	/* 200 ms: long enough that a loaded (sanitized) run never times out
	 * the answered request, short enough to keep the test quick. */
	struct mb_client *c = tcp_client(l, port, 200 * MS, 2);
	for (int i = 0; i < 3; i++)
		assert_int_equal(mb_client_read(c, 1, 3, 0, 1, on_read, &r[i]), 0);
	run_until(l, &r[1].calls, 1, 2 * USEC_PER_SEC);
	assert_int_equal(r[0].err, -ETIMEDOUT);
	assert_int_equal(r[1].err, -ETIMEDOUT);
	/* two timeouts in a row: half-open, the client reconnects */
	s.mode = SRV_NORMAL;
	run_until(l, &r[2].calls, 1, 2 * USEC_PER_SEC);
	assert_int_equal(r[2].err, 0);
	assert_int_equal(s.accepts, 2);
	assert_int_equal(mb_client_stats(c)->timeouts, 2);
	assert_int_equal(mb_client_read(c, 1, 3, 0, 1, on_read, &ok), 0);
	run_until(l, &ok.calls, 1, USEC_PER_SEC);
	assert_int_equal(ok.err, 0);
	mb_client_free(c);
	srv_stop(&s);
	loop_free(l);
}

static void test_tcp_dropped_connection_backoff(void **state)
{
	(void)state;
	struct loop *l;
	struct tsrv s;
	struct res a = { 0 }, b = { 0 };
	assert_int_equal(loop_new(&l), 0);
	uint16_t port = srv_start(&s, l, SRV_CLOSE_ONCE);
	srv_watch(&s);
	struct mb_client *c = tcp_client(l, port, 500 * MS, 3);
	assert_int_equal(mb_client_read(c, 1, 3, 1, 1, on_read, &a), 0);
	assert_int_equal(mb_client_read(c, 1, 3, 2, 1, on_read, &b), 0);
	run_until(l, &b.calls, 1, 2 * USEC_PER_SEC);
	assert_int_equal(a.err, -ECONNRESET);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.regs[0], 2);
	assert_int_equal(s.accepts, 2);
	/* backoff_min 40 ms with equal jitter: at least 20 ms between connects */
	assert_true(s.accept_at[1] - s.accept_at[0] >= 20 * MS);
	assert_int_equal(mb_client_stats(c)->connects, 2);
	mb_client_free(c);
	srv_stop(&s);
	loop_free(l);
}

static void test_tcp_garbage_resync(void **state)
{
	(void)state;
	struct loop *l;
	struct tsrv s;
	struct res a = { 0 }, b = { 0 };
	assert_int_equal(loop_new(&l), 0);
	uint16_t port = srv_start(&s, l, SRV_GARBAGE_ONCE);
	srv_watch(&s);
	struct mb_client *c = tcp_client(l, port, 300 * MS, 3);
	assert_int_equal(mb_client_read(c, 1, 3, 1, 1, on_read, &a), 0);
	assert_int_equal(mb_client_read(c, 1, 3, 2, 1, on_read, &b), 0);
	run_until(l, &b.calls, 1, 2 * USEC_PER_SEC);
	assert_int_equal(a.err, -EGW_EPROTO);
	assert_int_equal(b.err, 0);
	assert_true(mb_client_stats(c)->bytes_garbage >= 8);
	assert_int_equal(s.accepts, 2);
	mb_client_free(c);
	srv_stop(&s);
	loop_free(l);
}

static void test_tcp_refused(void **state)
{
	(void)state;
	struct loop *l;
	struct tsrv s;
	struct res a = { 0 };
	assert_int_equal(loop_new(&l), 0);
	uint16_t port = srv_start(&s, l, SRV_NORMAL);
	srv_stop(&s); /* nobody listens on port now */
	struct mb_client *c = tcp_client(l, port, 100 * MS, 3);
	assert_int_equal(mb_client_read(c, 1, 3, 1, 1, on_read, &a), 0);
	run_until(l, &a.calls, 1, USEC_PER_SEC);
	assert_int_equal(a.err, -ECONNREFUSED);
	assert_false(mb_client_connected(c));
	mb_client_free(c);
	loop_free(l);
}

/* One device that accepts connections but never answers must not delay
 * another device on the same loop. */
static void test_tcp_dead_device_does_not_delay_other(void **state)
{
	(void)state;
	struct loop *l;
	struct tsrv dead, live;
	struct res d = { 0 }, r[20];
	memset(r, 0, sizeof(r));
	assert_int_equal(loop_new(&l), 0);
	uint16_t pdead = srv_start(&dead, l, SRV_SILENT); /* never accepted: backlog only */
	uint16_t plive = srv_start(&live, l, SRV_NORMAL);
	srv_watch(&live);
	struct mb_client *cd = tcp_client(l, pdead, 800 * MS, 3);
	struct mb_client *cl = tcp_client(l, plive, 800 * MS, 3);
	assert_int_equal(mb_client_read(cd, 1, 3, 0, 1, on_read, &d), 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(mb_client_read(cl, 1, 3, (uint16_t)i, 1, on_read, &r[i]), 0);
	usec_t took = run_until(l, &r[19].calls, 1, USEC_PER_SEC);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(r[i].err, 0);
		assert_int_equal(r[i].regs[0], i);
	}
	assert_int_equal(d.calls, 0);   /* still waiting */
	assert_true(took < 400 * MS); /* far below the dead one's 800 ms timeout */
	run_until(l, &d.calls, 1, 2 * USEC_PER_SEC);
	assert_int_equal(d.err, -ETIMEDOUT);
	mb_client_free(cd);
	mb_client_free(cl);
	srv_stop(&dead);
	srv_stop(&live);
	loop_free(l);
}

/* RTU over TCP has no transaction id: a frame nobody asked for (here a valid
 * answer that shows up between two requests) must be discarded, not taken
 * for the answer to the next request. */
static void test_rtu_over_tcp_discards_unasked_frame(void **state)
{
	(void)state;
	struct loop *l;
	struct tsrv s;
	struct res a = { 0 }, b = { 0 };
	struct mb_client *c = NULL;
	assert_int_equal(loop_new(&l), 0);
	uint16_t port = srv_start(&s, l, SRV_NORMAL);
	s.rtu = true;
	s.decoy = true;
	srv_watch(&s);
	struct mb_client_config cfg = {
		.kind = MB_TRANSPORT_RTU_OVER_TCP, .host = "localhost", .port = port,
		.timeout = 500 * MS, .min_gap = 30 * MS,
	};
	assert_int_equal(mb_client_new(l, &cfg, &c), 0);
	assert_int_equal(mb_client_read(c, 1, 3, 40, 1, on_read, &a), 0);
	assert_int_equal(mb_client_read(c, 1, 3, 41, 2, on_read, &b), 0);
	run_until(l, &b.calls, 1, 2 * USEC_PER_SEC);
	assert_int_equal(a.err, 0);
	assert_int_equal(a.regs[0], 40);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.regs[0], 41);
	assert_int_equal(b.regs[1], 42);
	assert_int_equal(mb_client_stats(c)->bytes_garbage, 9);
	assert_int_equal(s.accepts, 1);
	mb_client_free(c);
	srv_stop(&s);
	loop_free(l);
}

static void test_tcp_free_from_io_callback(void **state)
{
	(void)state;
	struct loop *l;
	struct tsrv s;
	struct res a = { 0 }, b = { 0 };
	assert_int_equal(loop_new(&l), 0);
	uint16_t port = srv_start(&s, l, SRV_NORMAL);
	srv_watch(&s);
	struct mb_client *c = tcp_client(l, port, 300 * MS, 3);
	a.free_me = &c;
	assert_int_equal(mb_client_read(c, 1, 3, 0, 1, on_read, &a), 0);
	assert_int_equal(mb_client_read(c, 1, 3, 0, 1, on_read, &b), 0);
	run_until(l, &a.calls, 1, USEC_PER_SEC);
	assert_null(c);
	assert_int_equal(b.err, -ECANCELED);
	srv_stop(&s);
	loop_free(l);
}


/* ---- RTU on a serial line: a pseudo-terminal, server on the master side ---- */

enum pty_mode { PTY_NORMAL, PTY_NOISE_FIRST, PTY_BAD_CRC_ONCE };

struct ptysrv {
	struct loop *l;
	int mfd;
	struct loop_io io;
	uint8_t buf[512];
	size_t len;
	enum pty_mode mode;
	unsigned requests;
	usec_t times[8];
};

static void pty_in(struct loop_io *io, uint32_t ev)
{
	struct ptysrv *s = container_of(io, struct ptysrv, io);
	(void)ev;
	ssize_t n = read(s->mfd, s->buf + s->len, sizeof(s->buf) - s->len);
	if (n <= 0)
		return;
	s->len += (size_t)n;
	for (;;) {
		struct mb_request q;
		size_t used = 0;
		int r = mb_rtu_parse_request(s->buf, s->len, &q, &used);
		if (r == -EAGAIN)
			return;
		if (used == 0) {
			s->len = 0;
			return;
		}
		memmove(s->buf, s->buf + used, s->len - used);
		s->len -= used;
		if (s->requests < ARRAY_SIZE(s->times))
			s->times[s->requests] = now_usec();
		s->requests++;
		if (r < 0)
			continue;
		uint8_t pdu[MB_PDU_MAX], adu[MB_RTU_ADU_MAX + 4];
		uint16_t regs[MB_MAX_READ];
		size_t off = 0;
		for (unsigned i = 0; i < q.count; i++)
			regs[i] = (uint16_t)(0x5000 + q.addr + i);
		int k = mb_build_read_response(&q, regs, pdu, sizeof(pdu));
		assert_true(k > 0);
		if (s->mode == PTY_NOISE_FIRST) {
			adu[0] = 0xFF;
			adu[1] = 0x00;
			adu[2] = (uint8_t)(q.unit + 1);
			off = 3;
		}
		int m = mb_rtu_wrap(q.unit, pdu, (size_t)k, adu + off, sizeof(adu) - off);
		if (s->mode == PTY_BAD_CRC_ONCE) {
			adu[off + (size_t)m - 1] ^= 0x5A;
			s->mode = PTY_NORMAL;
		}
		assert_int_equal(write(s->mfd, adu, off + (size_t)m), (ssize_t)(off + (size_t)m));
	}
}

static const char *pty_start(struct ptysrv *s, struct loop *l, enum pty_mode mode)
{
	memset(s, 0, sizeof(*s));
	s->l = l;
	s->mode = mode;
	s->mfd = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	assert_true(s->mfd >= 0);
	assert_int_equal(grantpt(s->mfd), 0);
	assert_int_equal(unlockpt(s->mfd), 0);
	struct termios tio;
	/* raw on the master side too: no echo, no CR/LF mangling of frames */
	assert_int_equal(tcgetattr(s->mfd, &tio), 0);
	cfmakeraw(&tio);
	assert_int_equal(tcsetattr(s->mfd, TCSANOW, &tio), 0);
	assert_int_equal(loop_io_add(l, &s->io, s->mfd, EPOLLIN, pty_in), 0);
	return ptsname(s->mfd);
}

static void pty_stop(struct ptysrv *s)
{
	loop_io_del(s->l, &s->io);
	close(s->mfd);
}

static struct mb_client *rtu_client(struct loop *l, const char *path, unsigned baud)
{
	struct mb_client *c = NULL;
	struct mb_client_config cfg = {
		.kind = MB_TRANSPORT_RTU, .serial_port = path, .baudrate = baud, .parity = 'E',
		/* generous: a loaded machine (or a sanitizer build) may run the
		 * pty's far end late; no test here waits for a timeout */
		.timeout = 1500 * MS,
	};
	assert_int_equal(mb_client_new(l, &cfg, &c), 0);
	return c;
}

static void test_rtu_serial_reads_and_silence(void **state)
{
	(void)state;
	struct loop *l;
	struct ptysrv s;
	struct res r[4];
	memset(r, 0, sizeof(r));
	assert_int_equal(loop_new(&l), 0);
	const char *path = pty_start(&s, l, PTY_NORMAL);
	/* 9600 8E1: 11 bits a character, t3.5 = 4.01 ms */
	struct mb_client *c = rtu_client(l, path, 9600);
	for (int i = 0; i < 4; i++)
		assert_int_equal(mb_client_read(c, 17, 3, (uint16_t)(i * 10), 3, on_read, &r[i]), 0);
	run_until(l, &r[3].calls, 1, 8 * USEC_PER_SEC);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(r[i].err, 0);
		assert_int_equal(r[i].count, 3);
		assert_int_equal(r[i].regs[2], 0x5000 + i * 10 + 2);
	}
	for (int i = 1; i < 4; i++)
		assert_true(s.times[i] - s.times[i - 1] >= 4000);
	mb_client_free(c);
	pty_stop(&s);
	loop_free(l);
}

static void test_rtu_serial_noise_and_crc(void **state)
{
	(void)state;
	struct loop *l;
	struct ptysrv s;
	struct res a = { 0 }, b = { 0 };
	assert_int_equal(loop_new(&l), 0);
	const char *path = pty_start(&s, l, PTY_BAD_CRC_ONCE);
	struct mb_client *c = rtu_client(l, path, 115200);
	assert_int_equal(mb_client_read(c, 1, 4, 0, 2, on_read, &a), 0);
	assert_int_equal(mb_client_read(c, 1, 4, 2, 2, on_read, &b), 0);
	run_until(l, &b.calls, 1, 2 * USEC_PER_SEC);
	assert_int_equal(a.err, -EGW_ECRC);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.regs[0], 0x5002);

	/* noise and another unit's address before the answer: skipped */
	struct res n = { 0 };
	s.mode = PTY_NOISE_FIRST;
	assert_int_equal(mb_client_read(c, 1, 3, 9, 1, on_read, &n), 0);
	run_until(l, &n.calls, 1, 2 * USEC_PER_SEC);
	assert_int_equal(n.err, 0);
	assert_int_equal(n.regs[0], 0x5009);
	assert_true(mb_client_stats(c)->bytes_garbage >= 3 + 9);
	mb_client_free(c);
	pty_stop(&s);
	loop_free(l);
}

/* A host name (as in a compose file: "sim") is looked up on the worker pool
 * before connecting.  Uses this machine's own name when /etc/hosts maps it to
 * a loopback address, and serves on exactly that address. */
static void test_tcp_host_name(void **state)
{
	(void)state;
	char name[256] = "";
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai = NULL;
	struct sockaddr_in a;
	struct loop *l;
	struct tsrv s;
	struct res r = { 0 };

	if (gethostname(name, sizeof(name) - 1) < 0 || !name[0] ||
	    getaddrinfo(name, NULL, &hints, &ai) != 0) {
		skip();
		return;
	}
	memcpy(&a, ai->ai_addr, sizeof(a));
	freeaddrinfo(ai);
	if ((ntohl(a.sin_addr.s_addr) >> 24) != 127) {
		skip(); /* never connect anywhere but loopback */
		return;
	}
	assert_int_equal(loop_new(&l), 0);
	srv_start(&s, l, SRV_NORMAL);
	close(s.lfd);
	s.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(s.lfd >= 0);
	a.sin_port = 0;
	assert_int_equal(bind(s.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s.lfd, 8), 0);
	socklen_t alen = sizeof(a);
	assert_int_equal(getsockname(s.lfd, (struct sockaddr *)&a, &alen), 0);
	srv_watch(&s);

	struct mb_client *c = NULL;
	struct mb_client_config cfg = { .kind = MB_TRANSPORT_TCP, .host = name,
					.port = ntohs(a.sin_port), .timeout = 2000 * MS };
	assert_int_equal(mb_client_new(l, &cfg, &c), 0);
	assert_int_equal(mb_client_read(c, 1, 3, 10, 2, on_read, &r), 0);
	run_until(l, &r.calls, 1, 3 * USEC_PER_SEC);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.regs[0], 10);
	assert_int_equal(s.accepts, 1);
	mb_client_free(c);
	srv_stop(&s);
	loop_free(l);
}

static void test_config_rejects(void **state)
{
	(void)state;
	struct loop *l;
	struct mb_client *c = NULL;
	assert_int_equal(loop_new(&l), 0);
	struct mb_client_config bad_host = { .kind = MB_TRANSPORT_TCP, .host = "not a host!" };
	assert_int_equal(mb_client_new(l, &bad_host, &c), -EINVAL);
	struct mb_client_config no_host = { .kind = MB_TRANSPORT_RTU_OVER_TCP };
	assert_int_equal(mb_client_new(l, &no_host, &c), -EINVAL);
	struct mb_client_config parity = { .kind = MB_TRANSPORT_RTU, .serial_port = "/dev/null", .parity = 'X' };
	assert_int_equal(mb_client_new(l, &parity, &c), -EINVAL);
	struct mb_client_config baud = { .kind = MB_TRANSPORT_RTU, .serial_port = "/dev/null", .baudrate = 12345 };
	assert_int_equal(mb_client_new(l, &baud, &c), -EINVAL);
	struct mb_client_config mem = { .kind = MB_TRANSPORT_MEM };
	assert_int_equal(mb_client_new(l, &mem, &c), -EINVAL);
	assert_null(c);
	mb_client_free(NULL);
	loop_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mem_read_write_devid),
		cmocka_unit_test(test_mem_exception_and_timeout),
		cmocka_unit_test(test_mem_stale_tid_drained),
		cmocka_unit_test(test_mem_stale_tid_while_waiting),
		cmocka_unit_test(test_mem_pacing_gap),
		cmocka_unit_test(test_mem_queue_bound_and_cancel),
		cmocka_unit_test(test_mem_refused_then_backoff),
		cmocka_unit_test(test_mem_free_from_callback),
		cmocka_unit_test(test_tcp_read),
		cmocka_unit_test(test_tcp_stale_tid),
		cmocka_unit_test(test_tcp_timeouts_then_reconnect),
		cmocka_unit_test(test_tcp_dropped_connection_backoff),
		cmocka_unit_test(test_tcp_garbage_resync),
		cmocka_unit_test(test_tcp_refused),
		cmocka_unit_test(test_tcp_dead_device_does_not_delay_other),
		cmocka_unit_test(test_rtu_over_tcp_discards_unasked_frame),
		cmocka_unit_test(test_tcp_free_from_io_callback),
		cmocka_unit_test(test_rtu_serial_reads_and_silence),
		cmocka_unit_test(test_rtu_serial_noise_and_crc),
		cmocka_unit_test(test_tcp_host_name),
		cmocka_unit_test(test_config_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
