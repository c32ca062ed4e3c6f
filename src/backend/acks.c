#include "backend/acks.h"

#include <errno.h>
#include <stdlib.h>

#include "base/util.h"
#include "sched/sched.h"

#define ACKS_PER_WORK 256 /* rows acked by one worker run */

struct acks {
	struct loop *loop;
	const struct uploader_source *src;
	void *src_ud;
	bool joined[ACKS_MAX_UPLINKS];
	uint64_t cursor[ACKS_MAX_UPLINKS];
	uint64_t acked_upto; /* every row <= this was acked (or is gone) */
	struct loop_work work;
	uint64_t w_from, w_upto; /* worker input: ack rows in (w_from, w_upto] */
	uint64_t w_last;         /* worker output: last row acked (or w_from) */
	uint64_t w_count;
	int w_err;
	struct task retry;
	usec_t backoff;
	struct acks_stats st;
};

static uint64_t target(const struct acks *a)
{
	uint64_t t = UINT64_MAX;
	bool any = false;

	for (int i = 0; i < ACKS_MAX_UPLINKS; i++) {
		if (a->joined[i]) {
			t = MIN(t, a->cursor[i]);
			any = true;
		}
	}
	return any ? t : 0;
}

static void work(struct loop_work *w)
{
	struct acks *a = container_of(w, struct acks, work);
	uint64_t after = a->w_from;
	int r = 0;

	a->w_count = 0;
	for (unsigned i = 0; i < ACKS_PER_WORK; i++) {
		uint64_t seq;
		char *jwt = NULL;
		r = a->src->peek(a->src_ud, after, &seq, &jwt);
		free(jwt);
		if (r == -ENOENT || r == -EAGAIN || (r == 0 && seq > a->w_upto)) {
			r = 0;
			after = a->w_upto; /* nothing else stored up to the target */
			break;
		}
		if (r < 0)
			break;
		r = a->src->ack(a->src_ud, seq);
		if (r < 0 && r != -ENOENT)
			break;
		r = 0;
		after = seq;
		a->w_count++;
	}
	a->w_last = after;
	a->w_err = r;
}

static void kick(struct acks *a)
{
	uint64_t t = target(a);

	if (a->work.busy || sched_queued(&a->retry) || t <= a->acked_upto)
		return;
	a->w_from = a->acked_upto;
	a->w_upto = t;
	if (loop_work_submit(a->loop, &a->work) < 0) {
		a->backoff = sched_backoff_next(a->backoff, USEC_PER_SEC, 60 * USEC_PER_SEC);
		loop_task_add(a->loop, &a->retry, now_usec() + a->backoff);
	}
}

static void done(struct loop_work *w)
{
	struct acks *a = container_of(w, struct acks, work);

	a->st.acked += a->w_count;
	if (a->w_last > a->acked_upto) {
		a->acked_upto = a->w_last;
		a->st.last_acked_seq = a->w_last;
	}
	if (a->w_err < 0) {
		/* The store failed: the rows stay (sent again after a restart
		 * at worst); try again later. */
		a->st.last_error = a->w_err;
		a->backoff = sched_backoff_next(a->backoff, USEC_PER_SEC, 60 * USEC_PER_SEC);
		loop_task_add(a->loop, &a->retry, now_usec() + a->backoff);
		return;
	}
	a->backoff = 0;
	kick(a);
}

static int retry_run(struct task *t, usec_t now)
{
	struct acks *a = container_of(t, struct acks, retry);

	(void)now;
	kick(a);
	return 0;
}

int acks_new(struct loop *l, const struct uploader_source *src, void *src_ud, struct acks **ret)
{
	struct acks *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	a->loop = l;
	a->src = src;
	a->src_ud = src_ud;
	a->work = (struct loop_work){ .work = work, .done = done };
	a->retry = (struct task){ .name = "upload-ack", .run = retry_run, .prio = 5 };
	*ret = a;
	return 0;
}

void acks_free(struct acks *a)
{
	if (!a)
		return;
	loop_task_cancel(a->loop, &a->retry);
	while (a->work.busy)
		loop_run_once(a->loop, 100 * USEC_PER_MSEC);
	loop_task_cancel(a->loop, &a->retry);
	free(a);
}

int acks_join(struct acks *a)
{
	for (int i = 0; i < ACKS_MAX_UPLINKS; i++) {
		if (!a->joined[i]) {
			a->joined[i] = true;
			a->cursor[i] = 0;
			return i;
		}
	}
	return -ENOSPC;
}

void acks_leave(struct acks *a, int id)
{
	if (id < 0 || id >= ACKS_MAX_UPLINKS)
		return;
	a->joined[id] = false;
	kick(a);
}

void acks_delivered(struct acks *a, int id, uint64_t seq)
{
	if (id < 0 || id >= ACKS_MAX_UPLINKS || !a->joined[id] || seq <= a->cursor[id])
		return;
	a->cursor[id] = seq;
	kick(a);
}

void acks_get_stats(const struct acks *a, struct acks_stats *ret)
{
	*ret = a->st;
}
