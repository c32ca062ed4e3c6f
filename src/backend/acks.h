/* Delivery bookkeeping shared by the uplinks (HTTP uploader, MQTT): each
 * uplink reports the batches it has delivered, in seq order, and a stored row
 * is acknowledged to the source (deleted from the store) only once every
 * uplink that has joined has delivered it.
 *
 * - Each uplink has its own cursor: the highest seq it delivered with every
 *   earlier stored row delivered too (an uplink never reports a seq before
 *   all earlier ones, so a later batch's answer never acknowledges it ahead
 *   of an earlier one still pending).  The uplink resumes its uploads after
 *   its cursor (peek with after_seq), so one uplink's outage does not make
 *   the other send twice.
 * - The rows acknowledged are those with seq <= the lowest cursor, found
 *   through the source's peek (nothing is kept in memory per row), on a loop
 *   worker, oldest first.  A failing ack is retried after a backoff.
 * - This relies on signed rows becoming visible in seq order: a row never
 *   appears (or gets signed) below a seq an uplink has passed.  Batches are
 *   committed in seq order, unsigned rows stop the uplinks, and a gap row
 *   (whose seq is reserved after batches still queued) stays unsigned until
 *   those are stored (backend/batch.c).
 * - Cursors live in memory: after a restart every uplink starts at the oldest
 *   stored row, so a batch one uplink delivered before the restart and
 *   another did not goes again to both (at least once; seq identifies it). */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "backend/uploader.h"
#include "loop/loop.h"

#define ACKS_MAX_UPLINKS 4

struct acks;

struct acks_stats {
	uint64_t acked;          /* rows acknowledged to the source */
	uint64_t last_acked_seq; /* 0 before the first */
	int last_error;          /* 0 or the last failing ack's error */
};

/* src->peek and src->ack run on loop workers.  Returns 0 or -ENOMEM. */
int acks_new(struct loop *l, const struct uploader_source *src, void *src_ud, struct acks **ret);
/* Waits (running the loop) for an ack being written.  Uplinks must have left. */
void acks_free(struct acks *a);
/* A new uplink, cursor 0.  Returns its id (>= 0) or -ENOSPC. */
int acks_join(struct acks *a);
/* The uplink is gone: rows no longer wait for it. */
void acks_leave(struct acks *a, int id);
/* Uplink id delivered seq, and every stored row before it. */
void acks_delivered(struct acks *a, int id, uint64_t seq);
void acks_get_stats(const struct acks *a, struct acks_stats *ret);
