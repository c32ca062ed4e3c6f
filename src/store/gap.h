/* The gap row's record of dropped sequence numbers (store.h describes the
 * row): reading the payload of an older gap row, merging ranges, and writing
 * the payload of the new one.  Used by store_enforce_bounds; the parser is
 * public so that a fuzzer reaches it.  Not thread-safe; no I/O of its own:
 * the store answers store_gap_merge's question about surviving rows. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#define STORE_MAX_RANGES 64 /* ranges one gap row keeps (the oldest fold together) */

struct store_seq_range {
	int64_t first, last; /* inclusive */
};

/* What one bounds enforcement dropped.  Zero-initialize; free with
 * store_gap_clear. */
struct store_gap {
	struct store_seq_range *ranges;
	unsigned n, cap;
	int64_t dropped; /* batch rows lost, including those of absorbed gap rows */
	int64_t batches; /* batch rows deleted by this call */
	unsigned rows;   /* rows deleted by this call (any kind) */
	bool oom;        /* a range or a count could not be kept: do not commit */
};

/* Adds [first, last]; on ENOMEM sets g->oom instead. */
void store_gap_add(struct store_gap *g, int64_t first, int64_t last);

/* Adds the ranges and the count of a gap row being dropped, given its
 * payload text (NULL: it could not be read, sets g->oom).  A corrupt payload
 * gives what it validly holds (integer pairs, a positive count, saturating
 * at INT64_MAX) and nothing else; running out of memory sets g->oom. */
void store_gap_absorb(struct store_gap *g, const char *payload);

/* Answers whether a row lies strictly between after and before: SQLITE_ROW
 * (one does), SQLITE_DONE (none) or an SQLite error code. */
typedef int store_gap_between_fn(void *ud, int64_t after, int64_t before);

/* Sorts the ranges and joins those no surviving row separates (asking
 * between), then folds the oldest together so at most STORE_MAX_RANGES
 * remain.  Returns SQLITE_OK or between's error. */
int store_gap_merge(struct store_gap *g, store_gap_between_fn *between, void *ud);

/* The payload of the new gap row (compact JSON, sorted keys; see store.h),
 * or NULL on ENOMEM.  Free with free(). */
char *store_gap_payload(const struct store_gap *g, int64_t seq, int64_t now_ms, const char *reason);

/* Frees the ranges; g may be reused after. */
void store_gap_clear(struct store_gap *g);
