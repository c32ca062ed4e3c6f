/* Uploader: delivers stored, signed batches to the backend's data endpoints,
 * oldest first, one at a time, and acknowledges each in the store once every
 * endpoint has answered 2xx.
 *
 * - The body of each POST is the compact JWS, Content-Type application/jwt,
 *   gzip-compressed (Content-Encoding: gzip) unless compression is "none"
 *   ("auto": when that is smaller).  An endpoint answering 415 gets plain
 *   bodies from then on, and the same batch goes again at once, plain.
 * - Order: the batch with the lowest unacknowledged sequence number is sent
 *   until acknowledged; nothing overtakes it.  If it is not signed yet (the
 *   signer is down), the uploader waits: unsigned data never leaves.
 * - Failure (non-2xx, refused, reset, timeout): retry the same batch after an
 *   exponential backoff (backoff_min doubling up to backoff_max) with +-25 %
 *   jitter; the first success snaps back.
 * - Rate: request starts are spaced at least 1/rate_per_s apart, so a long
 *   backlog drains at a bounded rate.
 * - With several endpoints, the batch goes to each in turn (in order);
 *   endpoints that already took it are skipped on retry.  After a restart a
 *   batch not yet acknowledged by all is sent again to all (at-least-once;
 *   the backend deduplicates by seq).
 *
 * The uploader reads batches through `struct uploader_source` so it does not
 * depend on how they are stored; uploader_store.c adapts src/store. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/http.h"
#include "loop/loop.h"

#define UPLOADER_MAX_URLS 8
/* Default drain rate: a 24 h backlog (8,640 batches) in under 90 s, while a
 * fleet recovering from a backend outage stays at 100 requests/s per gateway. */
#define UPLOADER_DEFAULT_RATE 100

struct uploader_source {
	/* Oldest unacknowledged batch: 0 with *ret_seq and *ret_jwt (malloc'd, the
	 * caller frees it); -ENOENT when none; -EAGAIN when the oldest is not
	 * signed yet; other negative errors on failure.  Runs on a loop worker
	 * thread (it may wait for the disk), never concurrently with ack. */
	int (*peek)(void *ud, uint64_t *ret_seq, char **ret_jwt);
	/* Mark seq delivered.  Runs on a loop worker thread (it may fsync), never
	 * concurrently with itself.  Returns 0 or a negative error. */
	int (*ack)(void *ud, uint64_t seq);
};

struct store;
/* The source reading signed rows of src/store (ud: the struct store *). */
extern const struct uploader_source uploader_store_source;

enum uploader_compression {
	UPLOADER_COMPRESS_AUTO, /* gzip when smaller (default) */
	UPLOADER_COMPRESS_GZIP, /* always gzip */
	UPLOADER_COMPRESS_NONE,
};

struct uploader_config {
	const char *const *urls; /* copied; 0..UPLOADER_MAX_URLS (0: uploads off) */
	size_t n_urls;
	long timeout_ms;      /* per request; 0: 10000 */
	unsigned rate_per_s;  /* max request starts per second; 0: UPLOADER_DEFAULT_RATE */
	enum uploader_compression compression; /* backend.compression */
	usec_t backoff_min;   /* 0: 1 s */
	usec_t backoff_max;   /* 0: 60 s */
	usec_t poll_interval; /* look for work even without a kick; 0: 5 s */
	/* Optional: called when the backend (or the way to it) starts failing
	 * (ok false: err, HTTP status or 0, curl's text or "") and when it works
	 * again (ok true), once per change, so the daemon can log outages
	 * without a line per retry.  Store failures do not count. */
	void (*on_health)(void *ud, bool ok, int err, long status, const char *detail);
	void *health_ud;
};

struct uploader_stats {
	uint64_t attempts;       /* requests started */
	uint64_t ok;             /* requests answered 2xx */
	uint64_t failed;         /* requests that failed (status or transport) */
	uint64_t acked;          /* batches acknowledged */
	uint64_t last_acked_seq; /* 0 before the first */
	uint64_t pending_seq;    /* batch being delivered, 0 when idle */
	long last_status;        /* HTTP status of the last answer, 0 if none */
	int last_error;          /* 0 or negative error of the last failure */
	usec_t backoff;          /* current backoff, 0 when healthy */
	bool waiting_signer;     /* oldest batch is not signed yet */
	uint64_t body_bytes;     /* request bodies sent (tokens), before compression */
	uint64_t wire_bytes;     /* request bodies as sent */
	uint64_t gzip_bodies;    /* requests sent gzip-compressed */
	uint64_t refused_gzip;   /* 415 answers to gzip bodies (then sent plain) */
	uint32_t plain_urls;     /* bit i: urls[i] refused gzip, gets plain bodies */
};

struct uploader;

/* Returns 0, -EINVAL (too many or empty URLs) or -ENOMEM.  Starts idle: call
 * uploader_kick() (or wait poll_interval) to look for work. */
int uploader_new(struct loop *l, struct http *h, const struct uploader_config *cfg,
                 const struct uploader_source *src, void *src_ud, struct uploader **ret);
/* Waits (running the loop) for an acknowledgement being written, if any. */
void uploader_free(struct uploader *u);
/* New work may be available (a batch was stored or signed): start now unless
 * a request is in flight or a backoff is running. */
void uploader_kick(struct uploader *u);
void uploader_get_stats(const struct uploader *u, struct uploader_stats *ret);
/* True when cfg (with its defaults applied) is what u runs with. */
bool uploader_config_equal(const struct uploader *u, const struct uploader_config *cfg);
/* Text of the last transport error from curl ("" if none). */
const char *uploader_last_error_text(const struct uploader *u);
