/* Store-and-forward on SQLite: every batch is committed (WAL,
 * synchronous=FULL) before anything tries to upload it, and stays until the
 * backend has acknowledged it.
 *
 * Rows: seq (per gateway, strictly increasing, survives restarts), kind
 * (batch or gap), created_ms (wall clock), payload (the JSON text that is or
 * will be signed), jwt (NULL while unsigned).  A row is signed later when the
 * signer was down (store_unsigned + store_set_jwt); the uploader only sees
 * signed rows (store_peek), in seq order.
 *
 * Each row is stored once: an unsigned row's payload, or a signed row's
 * token only (it carries the payload), zlib-packed when that is smaller.
 *
 * Bounds: store.max_bytes (sum of the stored bytes of the rows kept) and
 * store.max_age_s.  store_enforce_bounds drops the oldest rows and appends one
 * unsigned gap row whose payload says which seqs were lost and why:
 *   {"type":"gap","seq":N,"created_ms":T,"reason":"max_bytes"|"max_age"|...,
 *    "ranges":[[first,last],...],"dropped":K}
 * ranges: inclusive seq ranges with no surviving row inside (seqs reserved but
 * never stored fall inside them too); dropped: batch rows lost in total.
 * Ranges of older gap rows that get dropped are merged into the new one, so
 * the backend can always tell "no data" from "zero".  The gap row must be
 * signed (store_unsigned) and is uploaded like a batch.
 *
 * Flash: at the usual pace (each batch delivered before the next one is
 * stored) a commit writes one 1 KiB page to the WAL and fsyncs it: the
 * delivered row is deleted in the same transaction, before the insert, so
 * the new row reuses its page and neither page 1 nor a free-list page
 * changes; freed pages are not zeroed (secure_delete off); the WAL index
 * lives in memory (exclusive locking: no -shm file, and no other process
 * may open the store while egwd runs); a checkpoint every 1000 WAL pages
 * writes the few pages that changed once; the WAL file is written out to its
 * full size (1.3 MB) at open and keeps it, so a commit's fsync has no file
 * size or block allocation for the file system to journal.  Figures in
 * BENCHMARKS.md.
 *
 * Errors: a corrupt or unreadable store.db is moved aside to
 * store.db.corrupt-<unix time> at open (logged once, warn) and a fresh store
 * is started.  A full disk (SQLITE_FULL, ENOSPC) makes the failing call return
 * -ENOSPC, rolls back, and sets stats.disk_full until a write succeeds; the
 * caller keeps its batch in memory and retries.  Nothing committed is lost.
 *
 * Threads: all functions are serialized by an internal mutex, so the loop
 * thread may read stats or peek while a worker commits.  The synchronous calls
 * that write (append, set_jwt, ack, enforce_bounds) fsync and may take
 * milliseconds on an SD card: the daemon calls them from a loop worker, or
 * uses store_append_async, which does that for you.
 * seq reservation (store_next_seq) costs no I/O: the reserved number is made
 * durable by the append that uses it (meta.next_seq is advanced in the same
 * transaction), and a seq reserved but never appended is never reused within a
 * run nor seen by anyone, so "strictly increasing" holds across restarts. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "loop/loop.h"

struct store;

struct store_config {
	const char *path;       /* e.g. "<state-dir>/store.db" */
	int64_t max_bytes;      /* <= 0: unbounded */
	int64_t max_age_s;      /* <= 0: unbounded */
	int64_t max_file_bytes; /* hard cap on the database file (PRAGMA max_page_count);
	                         * a write beyond it fails like a full disk.  <= 0: none */
};

enum store_kind { STORE_BATCH, STORE_GAP };

struct store_row {
	int64_t seq;
	int64_t created_ms;
	enum store_kind kind;
	char *payload; /* malloc'd; filled by store_unsigned, NULL from store_peek */
	char *jwt;     /* malloc'd; filled by store_peek, NULL from store_unsigned */
};
/* Frees payload and jwt of n rows (accepts NULL members). */
void store_rows_clear(struct store_row *rows, unsigned n);

struct store_stats {
	int64_t backlog; /* undelivered rows (signed or not) */
	int64_t unsigned_rows;
	int64_t delivered; /* rows acknowledged, ever (persisted) */
	int64_t dropped;   /* batch rows dropped by bounds, ever (persisted) */
	int64_t last_seq;  /* highest seq committed, 0 if none */
	int64_t bytes;     /* bytes kept: payload of unsigned rows, token of signed ones */
	int64_t appended;  /* bytes of rows committed since open (growth while offline) */
	bool disk_full;    /* last write failed with SQLITE_FULL/ENOSPC */
	bool recovered;    /* a corrupt file was moved aside at open */
	int last_err;      /* last error returned (negative), 0 if none */
};

/* Opens (creating if needed) the store at cfg->path.  l is used by
 * store_append_async (may be NULL if that is never called).  A corrupt or
 * unreadable file is moved aside and a fresh store started (stats.recovered).
 * Returns 0, -EINVAL, -ENOMEM, -ENOSPC or -EGW_ESTORE. */
int store_open(struct loop *l, const struct store_config *cfg, struct store **ret);
/* Accepts NULL.  No async append may be in flight. */
void store_close(struct store *s);

/* Reserves the next sequence number (> every seq ever committed).  No I/O. */
int64_t store_next_seq(struct store *s);

/* Commits a row (kind batch).  Durable when it returns 0.  jwt may be NULL
 * (signed later).  Returns 0, -EINVAL (seq <= 0 or never reserved, NULL
 * payload), -EEXIST (seq already stored), -ENOSPC (disk full, nothing
 * written) or -EGW_ESTORE. */
int store_append(struct store *s, int64_t seq, int64_t created_ms, const char *payload_json,
		 const char *jwt_or_null);

/* Asynchronous store_append on the loop's worker pool.  The caller owns req
 * and the strings until done(req) runs on the loop thread with req->result
 * set to store_append's return value.  Returns 0, -EBUSY (req in flight) or
 * -errno from loop_work_submit (then done is not called). */
struct store_append_req {
	int64_t seq;
	int64_t created_ms;
	const char *payload_json;
	const char *jwt; /* or NULL */
	void (*done)(struct store_append_req *req);
	int result;
	/* private */
	struct loop_work work;
	struct store *store;
};
int store_append_async(struct store *s, struct store_append_req *req);

/* Sets the token of an unsigned row.  Returns 0, -ENOENT (no such row, e.g.
 * dropped meanwhile), -EEXIST (already signed), -ENOSPC or -EGW_ESTORE. */
int store_set_jwt(struct store *s, int64_t seq, const char *jwt);

/* Up to max oldest unsigned rows in seq order, with kind, created_ms and
 * payload (to sign with jwt_sign_raw).  Free with store_rows_clear.
 * Returns 0 or -ENOMEM/-EGW_ESTORE. */
int store_unsigned(struct store *s, unsigned max, struct store_row *rows, unsigned *ret_n);

/* Up to max oldest undelivered signed rows with seq > after_seq, in seq
 * order, with jwt.  Stops at the first unsigned row, so uploads stay in seq
 * order.  Free with store_rows_clear.  Returns 0 or -ENOMEM/-EGW_ESTORE. */
int store_peek(struct store *s, int64_t after_seq, unsigned max, struct store_row *rows,
	       unsigned *ret_n);

/* The backend acknowledged seq: the row is deleted.  Returns 0, -ENOENT (not
 * in the store: already acked or dropped), -ENOSPC or -EGW_ESTORE. */
int store_ack(struct store *s, int64_t seq);

/* Drops rows older than now_ms - max_age_s, then the oldest rows while the
 * store is over max_bytes (down to max_bytes minus a small reserve for the
 * gap row), and if anything was dropped appends one unsigned gap row (its seq
 * reserved like a batch's; reason "max_age", "max_bytes" or
 * "max_age,max_bytes"), all in one transaction.  At most 64 ranges are kept:
 * beyond that the oldest are merged (coarser, never lost).  Call it
 * periodically (e.g. after each append) from a worker.
 * Returns the number of rows dropped (>= 0), -ENOSPC or -EGW_ESTORE. */
int store_enforce_bounds(struct store *s, int64_t now_ms);

/* New bounds (settings changed); the next store_enforce_bounds applies them.
 * max_file_bytes only takes effect at open. */
void store_set_bounds(struct store *s, int64_t max_bytes, int64_t max_age_s);

/* Thread-safe snapshot. */
void store_get_stats(const struct store *s, struct store_stats *ret);
