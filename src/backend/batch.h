/* Batch assembly (harvest): collects every decoded reading and frequency
 * sample, and every `interval` (harvest.batch_interval_ms, 10 s by default)
 * seals what arrived since the last batch into one signed, stored batch.
 *
 * Pipeline of one batch (everything that may block runs on a loop worker,
 * one batch at a time so sequence numbers are committed in order):
 *   seal (loop thread): build the payload;
 *   worker: reserve seq (store_next_seq) and serialize the payload
 *     canonically (JSON_COMPACT | JSON_SORT_KEYS), jwt_sign_raw, then
 *     store_append (with the token, or unsigned if the signer failed), then
 *     store_enforce_bounds.  The seq is taken only when the batch's turn
 *     comes, so a gap row (which takes the next seq after a commit) never
 *     jumps over batches still waiting in memory: after a crash every seq
 *     is stored or inside a gap row's ranges;
 *   loop thread: kick the uploader.
 * A batch is therefore committed before any upload is attempted, and an
 * unsigned row is never uploaded (the store's peek stops at it).  A resign
 * task signs unsigned rows (batches whose signing failed, and the store's gap
 * rows) as soon as the signer works again, then kicks the uploader.
 * If the store refuses a batch (disk full), it is kept in memory and retried;
 * at most BATCH_MAX_PENDING batches wait, beyond that the oldest in memory is
 * dropped (counted in stats.lost).
 *
 * JWT header:
 *   {"alg":"ES256","typ":"JWT","device":"<gateway serial hex>","opr":"production",
 *    "model":"<profile of the first device in the batch, or \"egw\">",
 *    "dtype":"egw-batch"}            (gap rows: "dtype":"egw-gap")
 *
 * Batch payload (keys sorted in the signed text; ts are Unix ms as strings in
 * maps, numbers elsewhere; addresses are decimal register numbers as the
 * devices report them):
 *   {"seq": N,                  per-gateway, strictly increasing, survives restarts
 *    "iat": unix_s,             issue time
 *    "gateway": "<serial hex>",
 *    "from_ms": T0, "to_ms": T1,   the window this batch covers [T0, T1)
 *    "devices": [
 *      {"id": "<device id>", "profile": "<profile>", "serial": "<device serial>",
 *       "raw":      {"<ts_ms>": {"<addr>": raw_word, ...}, ...},
 *       "readings": {"<ts_ms>": {"pv": {...}, "battery": {...}, "meter": {...}}, ...}}],
 *    "frequency": {"device": "<id>", "interval_ms": 100,
 *                  "samples": [[ts_ms, hz], ...],
 *                  "stats": {"count": n, "mean": hz, "min": hz, "max": hz}},
 *                  (present only when samples arrived; stats only when n > 0)
 *    "overflow": {"readings": n, "samples": m}   only if caps were hit}
 * A batch without any reading or sample is still sealed: it tells the backend
 * the gateway was alive and had no data.
 *
 * Gap payload (written by the store when it drops the oldest rows; see
 * store.h for the exact format; signed here with "dtype":"egw-gap"):
 *   {"type":"gap","seq":N,"created_ms":T,"reason":"max_bytes"|"max_age"|...,
 *    "ranges":[[first,last],...],"dropped":K}
 *
 * Limits: BATCH_MAX_READINGS readings and BATCH_MAX_SAMPLES frequency samples
 * per batch (the rest is counted in "overflow"), BATCH_MAX_DEVICES devices. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "loop/loop.h"

#define BATCH_MAX_READINGS 4096
#define BATCH_MAX_SAMPLES 4096
#define BATCH_MAX_DEVICES 32
#define BATCH_MAX_PENDING 64
#define BATCH_DEV_MAX_BLOCKS 64  /* distinct register blocks per device per batch */
#define BATCH_DEV_MAX_WORDS 4096 /* their registers together */
#define BATCH_FORMAT_VERSION 4   /* payload "v" (doc/batch-format.md) */

struct batch;
struct store;
struct signer;
struct uploader;
struct reading;
struct device;
struct block_result;

struct batch_config {
	usec_t interval;           /* harvest.batch_interval_ms; 0: 10 s */
	unsigned freq_interval_ms; /* reported in "frequency"; 0: 100 */
	usec_t resign_interval;    /* check for unsigned rows; 0: 2 s */
	usec_t retry_interval;     /* commit again after a store error; 0: 1 s */
	bool srcful;               /* backend.format "srcful" (see batch_set_srcful) */
};

struct batch_stats {
	uint64_t sealed;          /* batches built */
	uint64_t stored_signed;   /* committed with a token */
	uint64_t stored_unsigned; /* committed without (signer down) */
	uint64_t resigned;        /* rows signed later */
	uint64_t store_errors;    /* appends refused (retried) */
	uint64_t sign_errors;
	uint64_t lost;         /* batches dropped from memory (store down too long) */
	uint64_t dropped_rows; /* rows dropped by store bounds */
	uint64_t readings, samples, overflow;
	int64_t last_seq;           /* last committed, 0 if none */
	unsigned pending;           /* sealed batches waiting for the store */
	uint64_t resign_backoff_ms; /* wait before the next resign round after
				     * failed ones (signer down); 0 when the last worked */
	int last_error;
};

/* The first seal happens one interval after creation.  up may be NULL (set
 * later with batch_set_uploader).  Returns 0, -EINVAL or -ENOMEM. */
int batch_new(struct loop *l, struct store *st, struct signer *sg, const struct batch_config *cfg,
	      struct batch **ret);
/* Waits (running the loop, at most a few seconds) for the batch being signed
 * or stored, then frees.  Batches not yet stored are lost.  Accepts NULL. */
void batch_free(struct batch *b);
void batch_set_uploader(struct batch *b, struct uploader *up);
/* A second uploader to wake when rows are stored or signed (the MQTT
 * uplink's); NULL: none. */
void batch_set_uplink(struct batch *b, struct uploader *up);

/* Add one poll: its decoded reading r (NULL: none) and the register blocks
 * it read, res[0..nres) (failed ones with err < 0; borrowed, only the
 * changes are kept).  profile and serial may be NULL.  Blocks beyond
 * BATCH_DEV_MAX_BLOCKS / _WORDS for the device are left out.  Returns 0,
 * -EINVAL, -ENOSPC (cap reached: counted in overflow) or -ENOMEM. */
int batch_add_reading(struct batch *b, const char *dev_id, const char *profile, const char *serial,
		      int64_t ts_ms, const struct reading *r, const struct block_result *res,
		      unsigned nres);
/* Add one scheduled poll that read nothing (err < 0: its error, -ENOTCONN
 * while the device is offline): a poll with "m" (doc/batch-format.md).
 * Not represented in the srcful format.  Returns 0, -EINVAL, -ENOSPC or
 * -ENOMEM. */
int batch_add_missed(struct batch *b, const char *dev_id, const char *profile, const char *serial,
		     int64_t ts_ms, int err);
/* Add one grid frequency sample.  Returns 0, -EINVAL, -ENOSPC or -ENOMEM. */
int batch_add_freq(struct batch *b, const char *dev_id, int64_t ts_ms, double hz);

/* Add one FCR activation record (grid services): the frequency sample hz at
 * ts_ms, the battery setpoint egw held then (W, charging positive; NaN: the
 * battery was in its own mode) and its measured power (NaN: unknown).  Sent
 * as "fcr" (doc/batch-format.md).  Returns 0, -EINVAL, -ENOSPC or -ENOMEM. */
int batch_add_fcr(struct batch *b, const char *battery, int64_t ts_ms, double hz, double setpoint_w,
		  double measured_w);

/* Adapters with the signature of struct device_hooks (ud = the batch). */
void batch_on_reading(void *ud, struct device *d, int64_t ts_ms, const struct reading *r,
		      const struct block_result *res, unsigned nres);
void batch_on_freq(void *ud, struct device *d, int64_t ts_ms, double hz);
void batch_on_missed(void *ud, struct device *d, int64_t ts_ms, int err);

/* Change the sealing interval (harvest.batch_interval_ms); the next seal is
 * one new interval from now.  Returns 0 or -EINVAL (interval <= 0). */
int batch_set_interval(struct batch *b, usec_t interval);
/* backend.format: false "egw" (doc/batch-format.md), true "srcful": the
 * original gateway's payload shape, {"seq": N, "iat": T, "<ts_ms>":
 * {"<addr>": raw word, ...}, ...}: each poll's register map keyed by its
 * time (key registers on most polls, every block on every tenth, as the
 * devices read them; profiles that read every block on every poll, such as
 * huawei and sungrow, give whole maps each time), no readings, no frequency
 * samples.  Meant for one
 * device, as the original had; polls of several devices stamped in the
 * same millisecond share one map.  Applies from the next batch. */
void batch_set_srcful(struct batch *b, bool srcful);

/* Seal what has arrived now (the periodic seal keeps its cadence).
 * Returns 0 or -ENOMEM. */
int batch_seal_now(struct batch *b);
/* True while a batch is being signed/stored or waits in memory. */
bool batch_busy(const struct batch *b);
void batch_get_stats(const struct batch *b, struct batch_stats *ret);
