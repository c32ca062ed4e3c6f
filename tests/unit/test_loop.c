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

#include "base/util.h"
#include "loop/loop.h"

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

/* 10 ticks of a 10 ms periodic task take ~90 ms of real time, each run late by
 * well under a period: the timerfd wakes the loop at the due time. */
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
	assert_true(dt < 400000);
	assert_true(k.t.stats.late_max < 10000);
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
