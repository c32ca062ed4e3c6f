/* Uploader: delivers stored, signed batches to the backend, oldest first,
 * with a bounded window of batches in flight, and reports each batch as
 * delivered (struct acks) once every endpoint has answered 2xx, strictly in
 * seq order.
 *
 * - The body of each POST is the compact JWS, Content-Type application/jwt,
 *   gzip-compressed (Content-Encoding: gzip) unless compression is "none"
 *   ("auto": when that is smaller).  An endpoint answering 415 gets plain
 *   bodies from then on, and the same batch goes again at once, plain.
 * - Window: up to max_in_flight batches are being sent at once (libcurl
 *   multi: several connections, or HTTP/2 streams on one when the backend
 *   offers it).  Answers may come in any order; a batch counts as delivered
 *   only when it and every earlier batch in the window are, so the store
 *   never acknowledges a later batch ahead of an earlier one still pending.
 *   If a batch is not signed yet (the signer is down), the window stops
 *   before it: unsigned data never leaves.
 * - Failure (non-2xx, refused, reset, timeout): the batch is retried after a
 *   backoff (sched_backoff_next from backoff_min up to backoff_max) with
 *   +-25 % jitter; other failures while that backoff runs wait with it, and
 *   no new batch enters the window meanwhile.  The first success snaps back.
 * - Rate: request starts are spaced at least 1/rate_per_s apart, so a long
 *   backlog drains at a bounded rate.
 * - With several endpoints, a batch goes to each in turn; endpoints that
 *   already took it are skipped on retry.  After a restart a batch not yet
 *   acknowledged in the store is sent again (at-least-once; the backend
 *   deduplicates by seq).
 * - A transport (struct uploader_transport) may replace HTTP: the window,
 *   order, backoff and delivery bookkeeping stay here (the MQTT uplink).
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
/* Batches in flight at once: with a backend answering in 100 ms, 8 drain
 * 80 batches/s (a 7-day backlog of 60,480 in under 13 minutes). */
#define UPLOADER_DEFAULT_IN_FLIGHT 8
#define UPLOADER_MAX_IN_FLIGHT 64

struct uploader_source {
	/* Oldest unacknowledged batch with seq > after_seq: 0 with *ret_seq and
	 * *ret_jwt (malloc'd, the caller frees it); -ENOENT when none; -EAGAIN
	 * when the next one is not signed yet; other negative errors on failure.
	 * Runs on loop worker threads (it may wait for the disk), possibly
	 * concurrently with itself and with ack. */
	int (*peek)(void *ud, uint64_t after_seq, uint64_t *ret_seq, char **ret_jwt);
	/* Mark seq delivered.  Runs on a loop worker thread (it may fsync), never
	 * concurrently with itself.  Returns 0, -ENOENT (gone already) or a
	 * negative error. */
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

/* Sends a batch some other way than HTTP POST.  send() starts delivering body
 * (len bytes, copied if kept) as request id; the transport later calls
 * uploader_sent(u, id, err) on the loop thread (err 0: delivered), never from
 * inside send().  send returns 0, or a negative error (then no uploader_sent).
 * cancel(id) abandons one request (no uploader_sent for it afterwards). */
struct uploader_transport {
	int (*send)(void *ud, unsigned id, uint64_t seq, const char *body, size_t len);
	void (*cancel)(void *ud, unsigned id);
};

struct acks;

struct uploader_config {
	const char *const *urls; /* copied; 0..UPLOADER_MAX_URLS (0: uploads off) */
	size_t n_urls;
	long timeout_ms;     /* per request; 0: 10000 */
	unsigned rate_per_s; /* max request starts per second; 0: UPLOADER_DEFAULT_RATE */
	enum uploader_compression compression; /* backend.compression */
	usec_t backoff_min;                    /* 0: 1 s */
	usec_t backoff_max;                    /* 0: 60 s */
	usec_t poll_interval;                  /* look for work even without a kick; 0: 5 s */
	/* Optional: called when the backend (or the way to it) starts failing
	 * (ok false: err, HTTP status or 0, curl's text or "") and when it works
	 * again (ok true), once per change, so the daemon can log outages
	 * without a line per retry.  Store failures do not count. */
	void (*on_health)(void *ud, bool ok, int err, long status, const char *detail);
	void *health_ud;
	unsigned max_in_flight; /* batches in flight; 0: UPLOADER_DEFAULT_IN_FLIGHT */
	/* Optional: send through this instead of HTTP (urls are then ignored
	 * and may be empty; http may be NULL). */
	const struct uploader_transport *transport;
	void *transport_ud;
	/* Delivery bookkeeping shared with other uplinks; NULL: the uploader
	 * keeps its own and acknowledges what it delivers. */
	struct acks *acks;
};

struct uploader_stats {
	uint64_t attempts;       /* requests started */
	uint64_t ok;             /* requests answered 2xx */
	uint64_t failed;         /* requests that failed (status or transport) */
	uint64_t acked;          /* batches delivered (all endpoints, in order) */
	uint64_t last_acked_seq; /* last of them, 0 before the first */
	uint64_t pending_seq;    /* oldest batch being delivered, 0 when idle */
	unsigned in_flight;      /* batches in the window, not yet delivered */
	unsigned max_in_flight;  /* the window's bound */
	uint64_t store_acked;    /* rows acknowledged in the source (all uplinks) */
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
/* Waits (running the loop) for work it started, if any. */
void uploader_free(struct uploader *u);
/* From a transport: request id finished (err 0: delivered, else a negative
 * error, retried with backoff). */
void uploader_sent(struct uploader *u, unsigned id, int err);
/* The way to the backend works again (a transport reconnected): batches
 * waiting for a retry go now, and the backoff snaps back. */
void uploader_resume(struct uploader *u);
/* New work may be available (a batch was stored or signed): start now unless
 * a request is in flight or a backoff is running. */
void uploader_kick(struct uploader *u);
void uploader_get_stats(const struct uploader *u, struct uploader_stats *ret);
/* True when cfg (with its defaults applied) is what u runs with. */
bool uploader_config_equal(const struct uploader *u, const struct uploader_config *cfg);
/* Text of the last transport error from curl ("" if none). */
const char *uploader_last_error_text(const struct uploader *u);
