/* The event loop: one explicit object, no hidden globals.
 *
 * - fd watches (struct loop_io, embedded in their owner) on epoll;
 * - the task scheduler (sched/), woken by one timerfd armed at the earliest
 *   due time (absolute CLOCK_MONOTONIC, microsecond precision);
 * - signals through a signalfd: SIGTERM/SIGINT/SIGHUP are blocked and
 *   delivered to the callback given to loop_on_signal();
 * - a small worker pool for the few blocking calls; completions come back
 *   to the loop thread through an eventfd and run there.
 *
 * Callbacks run on the loop thread and must not block. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "base/time.h"
#include "sched/sched.h"

struct loop;
struct loop_io;
typedef void (*loop_io_fn)(struct loop_io *io, uint32_t events);

struct loop_io {
	int fd;
	uint32_t events; /* EPOLLIN, EPOLLOUT, ... */
	loop_io_fn cb;
	bool added;
};

struct loop_work;
typedef void (*loop_work_fn)(struct loop_work *w);
struct loop_work {
	loop_work_fn work; /* runs on a worker thread: may block, must not touch the loop */
	loop_work_fn done; /* runs on the loop thread afterwards */
	struct loop_work *next;
	bool busy;
};

typedef void (*loop_signal_fn)(struct loop *l, int signo, void *ud);

/* Returns 0, -ENOMEM or -errno from epoll/timerfd/signalfd/eventfd. */
int loop_new(struct loop **ret);
/* Stops and joins the workers; watches must have been removed by their owners. */
void loop_free(struct loop *l);

struct sched *loop_sched(struct loop *l);
/* The time at the start of the current iteration (refreshed by loop_now_update). */
usec_t loop_now(const struct loop *l);
usec_t loop_now_update(struct loop *l);

/* Watch fd for events; io->cb(io, revents) runs when ready.  Returns 0 or -errno. */
int loop_io_add(struct loop *l, struct loop_io *io, int fd, uint32_t events, loop_io_fn cb);
int loop_io_mod(struct loop *l, struct loop_io *io, uint32_t events);
/* Safe on a watch never added.  Must be called before closing the fd; after it
 * returns, io gets no more callbacks (even from the batch being dispatched), so
 * the owner may free it at once. */
void loop_io_del(struct loop *l, struct loop_io *io);

/* Task helpers: queue/cancel on the loop's scheduler.  sched_add returns 0/-ENOMEM. */
int loop_task_add(struct loop *l, struct task *t, usec_t due);
void loop_task_cancel(struct loop *l, struct task *t);

/* Route SIGTERM, SIGINT and SIGHUP (blocked in all threads) to cb.  Call
 * before starting any thread.  Returns 0 or -errno. */
int loop_on_signal(struct loop *l, loop_signal_fn cb, void *ud);

/* Hand w->work to a worker thread (started on first use, at most
 * LOOP_WORKERS); w->done runs on the loop thread when it has finished.
 * Returns 0, -EBUSY if w is already queued, or -errno. */
#define LOOP_WORKERS 2
int loop_work_submit(struct loop *l, struct loop_work *w);

/* Run until loop_stop().  Returns 0 or -errno on a fatal epoll error. */
int loop_run(struct loop *l);
/* One iteration, waiting at most timeout_us (-1: until something happens).
 * Returns the number of events and tasks handled or -errno. */
int loop_run_once(struct loop *l, usec_t timeout_us);
void loop_stop(struct loop *l);
bool loop_stopping(const struct loop *l);
