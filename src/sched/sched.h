/* Task scheduler: a binary min-heap of tasks keyed by due time (monotonic
 * microseconds), ties broken by priority (lower runs first), then by the
 * order tasks were queued.  Each task stores its heap index, so add, cancel
 * and reschedule are O(log n).
 *
 * Tasks are embedded in the structs that own them (find the owner with
 * container_of).  A task's run() never blocks.  It returns 0 on success or a
 * negative error on failure:
 *   - a periodic task (period > 0) is re-queued at due + period, keeping its
 *     cadence without drift; periods missed because the loop was late are
 *     skipped (counted in `skipped`), never run back to back;
 *   - a failing task backs off: next run at now + backoff, where backoff starts
 *     at max(period, backoff_min) and doubles up to backoff_max; the first
 *     success snaps it back to its cadence.
 * From inside run() a task may cancel itself (no re-queue), reschedule itself
 * (its new due time wins) or add/cancel any other task.
 *
 * The scheduler never reads the clock: callers pass `now`, so tests drive time
 * by hand.  Each run's lateness (now - due at start) is recorded per task. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "base/time.h"

#define SCHED_NOT_QUEUED 0 /* a zero-initialized task is not queued */
/* The one backoff rule (tasks, device retries, Modbus reconnects, uploads,
 * MQTT): the first failure waits lo, each further one twice the last, never
 * more than hi.  cur is the last wait, 0 after a success. */
static inline usec_t sched_backoff_next(usec_t cur, usec_t lo, usec_t hi)
{
	usec_t next = cur ? cur * 2 : lo;
	return next > hi ? hi : next;
}

/* Lateness histogram upper bounds in microseconds; the last bucket is +Inf. */
#define SCHED_LATE_BUCKETS 12
extern const usec_t sched_late_bounds[SCHED_LATE_BUCKETS - 1];

struct task;
typedef int (*task_fn)(struct task *t, usec_t now);

struct task_stats {
	uint64_t runs;
	uint64_t failures; /* runs that returned < 0 */
	uint64_t skipped;  /* periods skipped because the loop fell behind */
	usec_t late_last;
	usec_t late_max;
	usec_t late_sum;
	uint64_t late_hist[SCHED_LATE_BUCKETS]; /* counts per bucket, not cumulative */
};

struct task {
	/* set by the owner (designated initializers) */
	const char *name;
	task_fn run;
	usec_t period;      /* 0: one-shot */
	int prio;           /* lower is more urgent */
	usec_t backoff_min; /* first backoff; 0 means max(period, 1 s) */
	usec_t backoff_max; /* cap; 0 means 60 s */
	/* owned by the scheduler */
	usec_t due;
	usec_t backoff; /* current backoff, 0 when healthy */
	uint32_t idx;   /* heap index + 1, or SCHED_NOT_QUEUED (0) */
	uint64_t seq;   /* FIFO tie-break */
	bool running;
	bool touched;    /* cancelled or rescheduled from inside run() */
	uint16_t totals; /* index + 1 into the scheduler's totals by name, 0: not yet */
	struct task_stats stats;
};

#define SCHED_MAX_NAMES 64
#define SCHED_NAME_MAX 32

/* Run statistics summed per task name over the scheduler's life: unlike a
 * task's own stats they survive the task (a device removed, a one-shot
 * task that ran), so counters built on them only grow.  Names past
 * SCHED_MAX_NAMES are summed under "other". */
struct sched_totals {
	char name[SCHED_NAME_MAX];
	struct task_stats stats;
};

struct sched;

/* Returns 0 or -ENOMEM. */
int sched_new(struct sched **ret);
void sched_free(struct sched *s);

/* Queue t at `due`; if already queued, moves it.  Returns 0 or -ENOMEM. */
int sched_add(struct sched *s, struct task *t, usec_t due);
/* Alias of sched_add for readability at call sites. */
int sched_reschedule(struct sched *s, struct task *t, usec_t due);
/* Remove t if queued; safe on an unqueued task and from inside run(). */
void sched_cancel(struct sched *s, struct task *t);
static inline bool sched_queued(const struct task *t)
{
	return t->idx != SCHED_NOT_QUEUED;
}

/* Due time of the earliest task, or USEC_INFINITY when none. */
usec_t sched_next_due(const struct sched *s);
/* Run every task due at or before now.  Returns the number run. */
int sched_run_due(struct sched *s, usec_t now);
unsigned sched_count(const struct sched *s);

/* Estimate a lateness percentile (0..100) from the histogram, in usec. */
usec_t task_late_percentile(const struct task *t, double pct);
/* Visit every queued task (in heap order, not due order). */
void sched_foreach(const struct sched *s, void (*fn)(const struct task *t, void *ud), void *ud);
/* Calls fn for every task name that has run, in order of first run. */
void sched_foreach_totals(const struct sched *s,
			  void (*fn)(const struct sched_totals *tt, void *ud), void *ud);
