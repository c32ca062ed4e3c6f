/* Event loop tests: real fds, real timerfd, real signals, real threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/err.h"
#include "base/util.h"
#include "loop/loop.h"
#include "loop/resolve.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

struct pipe_watch {
	struct loop_io io;
	struct loop *l;
	int reads;
	struct pipe_watch *other; /* removed from inside our callback */
};

static void on_pipe(struct loop_io *io, uint32_t events)
{
	struct pipe_watch *w = container_of(io, struct pipe_watch, io);
	char buf[16];
	(void)events;
	if (read(io->fd, buf, sizeof(buf)) > 0)
		w->reads++;
	if (w->other)
		loop_io_del(w->l, &w->other->io);
}

static void test_io_and_del_during_dispatch(void **state)
{
	struct loop *l;
	int a[2], b[2];
	struct pipe_watch wa = { 0 }, wb = { 0 };
	(void)state;

	assert_int_equal(loop_new(&l), 0);
	assert_int_equal(pipe(a), 0);
	assert_int_equal(pipe(b), 0);
	wa.l = wb.l = l;
	wa.other = &wb;
	wb.other = &wa;
	assert_int_equal(loop_io_add(l, &wa.io, a[0], EPOLLIN, on_pipe), 0);
	assert_int_equal(loop_io_add(l, &wb.io, b[0], EPOLLIN, on_pipe), 0);
	/* Both ready in the same batch: whichever runs first removes the other,
	 * which must then not be called. */
	assert_int_equal(write(a[1], "x", 1), 1);
	assert_int_equal(write(b[1], "y", 1), 1);
	loop_run_once(l, 100000);
	assert_int_equal(wa.reads + wb.reads, 1);
	loop_io_del(l, &wa.io);
	loop_io_del(l, &wb.io);
	close(a[0]), close(a[1]), close(b[0]), close(b[1]);
	loop_free(l);
}

struct tick {
	struct task t;
	struct loop *l;
	int n;
};

static int on_tick(struct task *t, usec_t now)
{
	struct tick *k = container_of(t, struct tick, t);
	(void)now;
	if (++k->n == 10)
		loop_stop(k->l);
	return 0;
}

/* 10 ticks of a 10 ms periodic task take ~100 ms of real time: the timerfd
 * wakes the loop at each due time and the period counts from the due time,
 * not from when the run happened.  The bounds are loose on purpose (a busy
 * 2-core CI machine may run a tick late); the lateness figures themselves
 * are measured in bench/frequency.py, not here. */
static void test_periodic_task_timing(void **state)
{
	struct loop *l;
	struct tick k = { .t = { .name = "tick", .run = on_tick, .period = 10000 } };
	(void)state;

	assert_int_equal(loop_new(&l), 0);
	k.l = l;
	usec_t t0 = now_usec();
	assert_int_equal(loop_task_add(l, &k.t, t0 + 10000), 0);
	assert_int_equal(loop_run(l), 0);
	usec_t dt = now_usec() - t0;
	assert_int_equal(k.n, 10);
	assert_true(dt >= 100000);
	assert_true(dt < 1000000);
	assert_true(k.t.stats.late_max < 100000);
	loop_task_cancel(l, &k.t);
	loop_free(l);
}

struct job {
	struct loop_work w;
	struct loop *l;
	pthread_t worker;
	int done_calls;
	bool ran_elsewhere;
};

static void job_work(struct loop_work *w)
{
	struct job *j = container_of(w, struct job, w);
	j->ran_elsewhere = !pthread_equal(pthread_self(), j->worker);
	usleep(20000); /* a blocking call */
}

static void job_done(struct loop_work *w)
{
	struct job *j = container_of(w, struct job, w);
	j->done_calls++;
	loop_stop(j->l);
}

static void test_worker_completion(void **state)
{
	struct loop *l;
	struct job j = { .w = { .work = job_work, .done = job_done } };
	(void)state;

	assert_int_equal(loop_new(&l), 0);
	j.l = l;
	j.worker = pthread_self(); /* the loop thread */
	assert_int_equal(loop_work_submit(l, &j.w), 0);
	assert_int_equal(loop_work_submit(l, &j.w), -EBUSY);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(j.done_calls, 1);
	assert_true(j.ran_elsewhere);
	assert_false(j.w.busy);
	loop_free(l);
}

struct lookup {
	struct loop *l;
	int calls, err, n;
	struct sockaddr_storage first;
};

static void on_resolved(void *ud, int err, const struct loop_resolved *res)
{
	struct lookup *k = ud;

	k->calls++;
	k->err = err;
	k->n = err ? 0 : res->n;
	if (!err)
		k->first = res->addr[0];
	loop_stop(k->l);
}

static void resolve_one(struct loop *l, const char *host, struct lookup *k)
{
	memset(k, 0, sizeof(*k));
	k->l = l;
	assert_non_null(loop_resolve_start(l, host, 502, on_resolved, k));
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(k->calls, 1);
}

static void test_resolve(void **state)
{
	struct loop *l;
	struct lookup k;
	struct sockaddr_in *in = (struct sockaddr_in *)&k.first;
	char name[300];
	int i;
	(void)state;

	assert_int_equal(loop_new(&l), 0);
	/* An address literal comes back as itself, with the port set. */
	resolve_one(l, "127.0.0.1", &k);
	assert_int_equal(k.err, 0);
	assert_int_equal(k.n, 1);
	assert_int_equal(in->sin_family, AF_INET);
	assert_int_equal(ntohs(in->sin_port), 502);
	assert_int_equal(ntohl(in->sin_addr.s_addr), INADDR_LOOPBACK);
	resolve_one(l, "::1", &k);
	if (k.err == 0) /* no IPv6 on this machine: AI_ADDRCONFIG refuses it */
		assert_int_equal(k.first.ss_family, AF_INET6);
	/* A name from /etc/hosts. */
	resolve_one(l, "localhost", &k);
	assert_int_equal(k.err, 0);
	assert_true(k.n >= 1 && k.n <= LOOP_RESOLVE_MAX);
	/* A name that cannot exist (RFC 6761): an error, not a hang or a crash. */
	resolve_one(l, "no-such-host.invalid", &k);
	assert_int_equal(k.err, -EGW_ENOHOST);
	/* Names that cannot be looked up are refused at once. */
	assert_null(loop_resolve_start(l, "", 502, on_resolved, &k));
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = 0;
	assert_null(loop_resolve_start(l, name, 502, on_resolved, &k));
	/* A cancelled lookup never calls back and frees itself (ASan: no leak). */
	memset(&k, 0, sizeof(k));
	k.l = l;
	loop_resolve_cancel(loop_resolve_start(l, "localhost", 502, on_resolved, &k));
	loop_resolve_cancel(NULL);
	for (i = 0; i < 20; i++)
		loop_run_once(l, 50000);
	assert_int_equal(k.calls, 0);
	loop_free(l);
}

static int got_signal;
static void on_sig(struct loop *l, int signo, void *ud)
{
	(void)ud;
	got_signal = signo;
	loop_stop(l);
}

static void test_signals(void **state)
{
	struct loop *l;
	(void)state;

	assert_int_equal(loop_new(&l), 0);
	assert_int_equal(loop_on_signal(l, on_sig, NULL), 0);
	kill(getpid(), SIGHUP);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(got_signal, SIGHUP);
	kill(getpid(), SIGTERM);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(got_signal, SIGTERM);
	loop_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_io_and_del_during_dispatch),
		cmocka_unit_test(test_periodic_task_timing),
		cmocka_unit_test(test_worker_completion),
		cmocka_unit_test(test_signals),
		cmocka_unit_test(test_resolve),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
