#include "sched/sched.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const usec_t sched_late_bounds[SCHED_LATE_BUCKETS - 1] = {
	10, 25, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 100000,
};

struct sched {
	struct task **heap;
	uint32_t n, cap;
	uint64_t seq;
	struct sched_totals totals[SCHED_MAX_NAMES];
	unsigned ntotals;
};

int sched_new(struct sched **ret)
{
	struct sched *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

void sched_free(struct sched *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->n; i++)
		s->heap[i]->idx = SCHED_NOT_QUEUED;
	free(s->heap);
	free(s);
}

static bool before(const struct task *a, const struct task *b)
{
	if (a->due != b->due)
		return a->due < b->due;
	if (a->prio != b->prio)
		return a->prio < b->prio;
	return a->seq < b->seq;
}

/* t->idx holds heap position + 1, so a zeroed task is "not queued". */
static void put(struct sched *s, uint32_t i, struct task *t)
{
	s->heap[i] = t;
	t->idx = i + 1;
}

static void sift_up(struct sched *s, uint32_t i)
{
	struct task *t = s->heap[i];
	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (!before(t, s->heap[p]))
			break;
		put(s, i, s->heap[p]);
		i = p;
	}
	put(s, i, t);
}

static void sift_down(struct sched *s, uint32_t i)
{
	struct task *t = s->heap[i];
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		struct task *best = t;
		if (l < s->n && before(s->heap[l], best)) {
			m = l;
			best = s->heap[l];
		}
		if (r < s->n && before(s->heap[r], best))
			m = r;
		if (m == i)
			break;
		put(s, i, s->heap[m]);
		i = m;
	}
	put(s, i, t);
}

static void heap_remove(struct sched *s, struct task *t)
{
	uint32_t i = t->idx - 1;
	assert(t->idx != SCHED_NOT_QUEUED && i < s->n && s->heap[i] == t);
	t->idx = SCHED_NOT_QUEUED;
	if (--s->n == i)
		return;
	struct task *moved = s->heap[s->n];
	put(s, i, moved);
	sift_down(s, i);
	if (moved->idx == i + 1)
		sift_up(s, i);
}

static struct task_stats *totals_of(struct sched *s, struct task *t);

int sched_add(struct sched *s, struct task *t, usec_t due)
{
	/* A queued task shows in the totals (with 0 runs) before it first runs. */
	if (!t->totals)
		totals_of(s, t);
	if (t->running)
		t->touched = true;
	if (sched_queued(t))
		heap_remove(s, t);
	if (s->n == s->cap) {
		uint32_t cap = s->cap ? s->cap * 2 : 16;
		struct task **h = realloc(s->heap, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		s->heap = h;
		s->cap = cap;
	}
	t->due = due;
	t->seq = s->seq++;
	put(s, s->n++, t);
	sift_up(s, t->idx - 1);
	return 0;
}

int sched_reschedule(struct sched *s, struct task *t, usec_t due)
{
	return sched_add(s, t, due);
}

void sched_cancel(struct sched *s, struct task *t)
{
	if (t->running)
		t->touched = true;
	if (sched_queued(t))
		heap_remove(s, t);
}

usec_t sched_next_due(const struct sched *s)
{
	return s->n ? s->heap[0]->due : USEC_INFINITY;
}

unsigned sched_count(const struct sched *s)
{
	return s->n;
}

static void record_lateness(struct task_stats *st, usec_t late)
{
	unsigned b = 0;
	while (b < SCHED_LATE_BUCKETS - 1 && late > sched_late_bounds[b])
		b++;
	st->late_hist[b]++;
	st->late_last = late;
	st->late_sum += late;
	if (late > st->late_max)
		st->late_max = late;
}

/* The totals entry of t's name, found once and remembered in the task.
 * The last slot is kept for "other", the names past the others. */
static struct task_stats *totals_of(struct sched *s, struct task *t)
{
	const char *name = t->name ? t->name : "unnamed";
	unsigned i;

	if (t->totals && t->totals <= s->ntotals &&
	    strncmp(s->totals[t->totals - 1].name, name, SCHED_NAME_MAX - 1) == 0)
		return &s->totals[t->totals - 1].stats;
	for (i = 0; i < s->ntotals && i < SCHED_MAX_NAMES - 1; i++)
		if (strncmp(s->totals[i].name, name, SCHED_NAME_MAX - 1) == 0)
			break;
	if (i == s->ntotals) {
		snprintf(s->totals[i].name, SCHED_NAME_MAX, "%s",
			 i == SCHED_MAX_NAMES - 1 ? "other" : name);
		s->ntotals++;
	}
	t->totals = (uint16_t)(i + 1);
	return &s->totals[i].stats;
}

static void rearm(struct sched *s, struct task *t, usec_t now, int r)
{
	if (r < 0) {
		usec_t lo = t->backoff_min ? t->backoff_min
					   : (t->period > USEC_PER_SEC ? t->period : USEC_PER_SEC);
		usec_t hi = t->backoff_max ? t->backoff_max : 60 * USEC_PER_SEC;
		t->backoff = sched_backoff_next(t->backoff, lo, hi);
		sched_add(s, t, now + t->backoff);
		return;
	}
	if (t->period <= 0)
		return;
	usec_t next = t->due + t->period;
	if (t->backoff) {
		/* Snap back: resume the cadence from this successful run. */
		t->backoff = 0;
		next = now + t->period;
	} else if (next <= now) {
		/* Behind by more than a period: skip the missed slots, stay aligned. */
		uint64_t missed = (uint64_t)((now - next) / t->period) + 1;
		t->stats.skipped += missed;
		totals_of(s, t)->skipped += missed;
		next += (usec_t)missed * t->period;
	}
	sched_add(s, t, next);
}

int sched_run_due(struct sched *s, usec_t now)
{
	int ran = 0;

	while (s->n && s->heap[0]->due <= now) {
		struct task *t = s->heap[0];
		int r;

		struct task_stats *tot = totals_of(s, t);

		heap_remove(s, t);
		record_lateness(&t->stats, now - t->due);
		record_lateness(tot, now - t->due);
		t->running = true;
		t->touched = false;
		r = t->run(t, now);
		tot->runs++;
		if (r < 0)
			tot->failures++;
		t->running = false;
		t->stats.runs++;
		if (r < 0)
			t->stats.failures++;
		else if (t->touched)
			t->backoff = 0;
		if (!t->touched)
			rearm(s, t, now, r);
		ran++;
	}
	return ran;
}

usec_t task_late_percentile(const struct task *t, double pct)
{
	uint64_t total = 0, acc = 0;
	for (unsigned b = 0; b < SCHED_LATE_BUCKETS; b++)
		total += t->stats.late_hist[b];
	if (!total)
		return 0;
	uint64_t want = (uint64_t)((double)total * pct / 100.0 + 0.5);
	if (want == 0)
		want = 1;
	for (unsigned b = 0; b < SCHED_LATE_BUCKETS - 1; b++) {
		acc += t->stats.late_hist[b];
		if (acc >= want)
			return sched_late_bounds[b];
	}
	return t->stats.late_max;
}

void sched_foreach(const struct sched *s, void (*fn)(const struct task *t, void *ud), void *ud)
{
	for (uint32_t i = 0; i < s->n; i++)
		fn(s->heap[i], ud);
}

void sched_foreach_totals(const struct sched *s,
			  void (*fn)(const struct sched_totals *tt, void *ud), void *ud)
{
	for (unsigned i = 0; i < s->ntotals; i++)
		fn(&s->totals[i], ud);
}
