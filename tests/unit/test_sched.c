/* Scheduler tests: time is driven by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/util.h"
#include "sched/sched.h"

struct rec {
	struct task t;
	struct sched *s;
	int id;
	int result;          /* what run() returns */
	int *log, *nlog;     /* order of runs */
	struct task *victim; /* cancelled from inside run() */
	usec_t move_to;      /* if set, reschedules itself here */
};

static int rec_run(struct task *t, usec_t now)
{
	struct rec *r = container_of(t, struct rec, t);
	(void)now;
	if (r->log)
		r->log[(*r->nlog)++] = r->id;
	if (r->victim)
		sched_cancel(r->s, r->victim);
	if (r->move_to)
		sched_reschedule(r->s, t, r->move_to);
	return r->result;
}

static void test_order_by_due(void **state)
{
	struct sched *s;
	struct rec r[5];
	int log[8], n = 0;
	usec_t dues[5] = { 500, 100, 400, 200, 300 };
	(void)state;

	assert_int_equal(sched_new(&s), 0);
	for (int i = 0; i < 5; i++) {
		r[i] = (struct rec){ .t = { .name = "t", .run = rec_run, .idx = SCHED_NOT_QUEUED },
				     .s = s, .id = i, .log = log, .nlog = &n };
		assert_int_equal(sched_add(s, &r[i].t, dues[i]), 0);
	}
	assert_int_equal(sched_next_due(s), 100);
	assert_int_equal(sched_run_due(s, 250), 2);
	assert_int_equal(sched_run_due(s, 1000), 3);
	int want[5] = { 1, 3, 4, 2, 0 };
	for (int i = 0; i < 5; i++)
		assert_int_equal(log[i], want[i]);
	assert_int_equal(sched_count(s), 0);
	assert_int_equal(sched_next_due(s), USEC_INFINITY);
	sched_free(s);
}

static void test_ties_priority_then_fifo(void **state)
{
	struct sched *s;
	struct rec r[4];
	int log[8], n = 0;
	int prio[4] = { 5, 1, 5, 0 };
	(void)state;

	assert_int_equal(sched_new(&s), 0);
	for (int i = 0; i < 4; i++) {
		r[i] = (struct rec){ .t = { .run = rec_run, .prio = prio[i], .idx = SCHED_NOT_QUEUED },
				     .s = s, .id = i, .log = log, .nlog = &n };
		sched_add(s, &r[i].t, 1000);
	}
	sched_run_due(s, 1000);
	int want[4] = { 3, 1, 0, 2 };
	for (int i = 0; i < 4; i++)
		assert_int_equal(log[i], want[i]);
	sched_free(s);
}

static void test_cancel_and_reschedule_inside_callback(void **state)
{
	struct sched *s;
	struct rec a, b, c;
	int log[8], n = 0;
	(void)state;

	assert_int_equal(sched_new(&s), 0);
	a = (struct rec){ .t = { .run = rec_run, .period = 100, .idx = SCHED_NOT_QUEUED }, .s = s,
			  .id = 0, .log = log, .nlog = &n, .victim = &b.t };
	b = (struct rec){ .t = { .run = rec_run, .idx = SCHED_NOT_QUEUED }, .s = s, .id = 1,
			  .log = log, .nlog = &n };
	c = (struct rec){ .t = { .run = rec_run, .period = 100, .idx = SCHED_NOT_QUEUED }, .s = s,
			  .id = 2, .log = log, .nlog = &n, .move_to = 5000 };
	sched_add(s, &a.t, 10);
	sched_add(s, &b.t, 10);
	sched_add(s, &c.t, 10);
	assert_int_equal(sched_run_due(s, 10), 2); /* b was cancelled by a */
	assert_int_equal(n, 2);
	assert_int_equal(log[0], 0);
	assert_int_equal(log[1], 2);
	assert_false(sched_queued(&b.t));
	/* a re-armed on its cadence, c at the time it chose (not due + period) */
	assert_true(sched_queued(&a.t));
	assert_int_equal(a.t.due, 110);
	assert_int_equal(c.t.due, 5000);

	/* A task that cancels itself is not re-armed. */
	a.victim = &a.t;
	sched_run_due(s, 110);
	assert_false(sched_queued(&a.t));
	sched_free(s);
}

static void test_no_drift_10000_periods(void **state)
{
	struct sched *s;
	struct rec r = { .t = { .run = rec_run, .period = 100000, .idx = SCHED_NOT_QUEUED } };
	usec_t start = 1000000;
	(void)state;

	assert_int_equal(sched_new(&s), 0);
	r.s = s;
	srand(42);
	sched_add(s, &r.t, start);
	for (int i = 0; i < 10000; i++) {
		usec_t late = rand() % 3000; /* each run starts up to 3 ms late */
		usec_t now = sched_next_due(s) + late;
		assert_int_equal(sched_run_due(s, now), 1);
	}
	assert_int_equal(r.t.stats.runs, 10000);
	assert_int_equal(r.t.due, start + 10000 * (usec_t)100000);
	assert_int_equal(r.t.stats.skipped, 0);
	assert_true(r.t.stats.late_max < 3000);
	assert_true(task_late_percentile(&r.t, 50) <= 2000);
	sched_free(s);
}

static void test_skips_missed_periods_and_stays_aligned(void **state)
{
	struct sched *s;
	struct rec r = { .t = { .run = rec_run, .period = 100, .idx = SCHED_NOT_QUEUED } };
	(void)state;

	assert_int_equal(sched_new(&s), 0);
	r.s = s;
	sched_add(s, &r.t, 0);
	/* The loop stalls for 1050 us: one run, then the next slot on the grid. */
	assert_int_equal(sched_run_due(s, 1050), 1);
	assert_int_equal(r.t.due, 1100);
	assert_int_equal(r.t.stats.skipped, 10);
	assert_int_equal(r.t.stats.late_last, 1050);
	sched_free(s);
}

static void test_backoff_and_snap_back(void **state)
{
	struct sched *s;
	struct rec r = { .t = { .run = rec_run, .period = 1000, .backoff_min = 10000,
				.backoff_max = 80000, .idx = SCHED_NOT_QUEUED },
			 .result = -5 };
	usec_t now = 0;
	usec_t want[] = { 10000, 20000, 40000, 80000, 80000 };
	(void)state;

	assert_int_equal(sched_new(&s), 0);
	r.s = s;
	sched_add(s, &r.t, now);
	for (unsigned i = 0; i < ARRAY_SIZE(want); i++) {
		sched_run_due(s, now);
		assert_int_equal(r.t.due - now, want[i]);
		now = r.t.due;
	}
	assert_int_equal(r.t.stats.failures, 5);
	r.result = 0;
	sched_run_due(s, now);
	assert_int_equal(r.t.backoff, 0);
	assert_int_equal(r.t.due, now + 1000);
	now += 1000;
	sched_run_due(s, now);
	assert_int_equal(r.t.due, now + 1000);
	sched_free(s);
}

static int noop(struct task *t, usec_t now)
{
	(void)t;
	(void)now;
	return 0;
}

/* Random adds, cancels and moves; pops must come out in (due, prio, seq) order. */
static void test_heap_random(void **state)
{
	enum { N = 2000 };
	struct sched *s;
	struct task *t = calloc(N, sizeof(*t));
	(void)state;

	assert_non_null(t);
	assert_int_equal(sched_new(&s), 0);
	srand(7);
	for (int i = 0; i < N; i++) {
		t[i] = (struct task){ .run = noop, .prio = rand() % 3, .idx = SCHED_NOT_QUEUED };
		sched_add(s, &t[i], rand() % 10000);
	}
	for (int k = 0; k < 3 * N; k++) {
		struct task *x = &t[rand() % N];
		if (rand() % 3 == 0)
			sched_cancel(s, x);
		else
			sched_reschedule(s, x, rand() % 10000);
	}
	unsigned n = sched_count(s);
	usec_t last = -1;
	unsigned popped = 0;
	while (sched_count(s)) {
		usec_t due = sched_next_due(s);
		assert_true(due >= last);
		last = due;
		popped += (unsigned)sched_run_due(s, due);
	}
	assert_int_equal(popped, n);
	for (int i = 0; i < N; i++)
		assert_false(sched_queued(&t[i]));
	sched_free(s);
	free(t);
}

struct tot_seen {
	const char *name;
	struct task_stats st;
	unsigned n;
	int found;
};

static void find_totals(const struct sched_totals *tt, void *ud)
{
	struct tot_seen *f = ud;
	f->n++;
	if (strcmp(tt->name, f->name) == 0) {
		f->found++;
		f->st = tt->stats;
	}
}

static struct tot_seen totals(struct sched *s, const char *name)
{
	struct tot_seen f = { .name = name };
	sched_foreach_totals(s, find_totals, &f);
	return f;
}

/* Totals by name outlive the tasks: two tasks of one name add up, a task
 * that was cancelled and freed keeps its runs, names past the table go to
 * "other". */
static void test_totals_by_name(void **state)
{
	struct sched *s;
	struct task *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct task many[SCHED_MAX_NAMES + 5];
	char names[SCHED_MAX_NAMES + 5][16];
	struct tot_seen f;
	(void)state;

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(sched_new(&s), 0);
	*a = (struct task){ .name = "poll", .run = noop, .period = 100 };
	*b = (struct task){ .name = "poll", .run = noop, .period = 100 };
	sched_add(s, a, 0);
	sched_add(s, b, 50);
	f = totals(s, "poll"); /* queued, not run yet: there, with 0 runs */
	assert_int_equal(f.found, 1);
	assert_int_equal(f.st.runs, 0);
	for (usec_t now = 0; now <= 1000; now += 10)
		sched_run_due(s, now + 5); /* every run starts 5 us late */
	f = totals(s, "poll");
	assert_int_equal(f.found, 1);
	assert_int_equal(f.st.runs, a->stats.runs + b->stats.runs);
	assert_int_equal(f.st.runs, 21);
	assert_int_equal(f.st.late_sum, 21 * 5);
	sched_cancel(s, a);
	sched_cancel(s, b);
	free(a);
	free(b);
	f = totals(s, "poll");
	assert_int_equal(f.st.runs, 21); /* still there, never going back */

	memset(many, 0, sizeof(many));
	for (unsigned i = 0; i < ARRAY_SIZE(many); i++) {
		snprintf(names[i], sizeof(names[i]), "t%u", i);
		many[i] = (struct task){ .name = names[i], .run = noop };
		sched_add(s, &many[i], 2000);
	}
	sched_run_due(s, 2000);
	f = totals(s, "other");
	assert_int_equal(f.found, 1);
	assert_int_equal(f.n, SCHED_MAX_NAMES);
	/* "poll" and t0..t61 have their own slots; t62.. are summed. */
	assert_int_equal(f.st.runs, ARRAY_SIZE(many) - (SCHED_MAX_NAMES - 2));
	sched_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_by_due),
		cmocka_unit_test(test_ties_priority_then_fifo),
		cmocka_unit_test(test_cancel_and_reschedule_inside_callback),
		cmocka_unit_test(test_no_drift_10000_periods),
		cmocka_unit_test(test_skips_missed_periods_and_stays_aligned),
		cmocka_unit_test(test_backoff_and_snap_back),
		cmocka_unit_test(test_heap_random),
		cmocka_unit_test(test_totals_by_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
