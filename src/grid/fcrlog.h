/* The FCR operational log: what the controller did, kept on flash at 1 Hz
 * for at least 14 days (one CSV file per UTC day, <dir>/fcr-YYYYMMDD.csv,
 * days older than keep_days + 1 deleted), and at 10 Hz in memory (a ring of
 * the last FCRLOG_RING records) for the signed batches and the UI.
 *
 * Flash: one line of about 70 bytes a second, written from a 4 KiB stdio
 * buffer and flushed by fcrlog_flush (the daemon calls it every 10 s), so
 * about 6 MB a day in writes of a few hundred bytes.
 *
 * The CSV (also what GET /api/fcr/log answers):
 *   time_utc,ts_ms,f_Hz,setpoint_W,measured_W,state,fcr_n_W,fcr_d_up_W,fcr_d_down_W
 * time_utc ISO 8601 with milliseconds; f_Hz to 1 mHz; powers in whole W,
 * activation upward positive, setpoint and measured power charging positive;
 * a value that was not known is an empty field. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FCRLOG_RING 1200                        /* 2 minutes at 10 Hz */
#define FCRLOG_MAX_SPAN_MS (24LL * 3600 * 1000) /* one CSV request covers at most a day */

struct fcr_rec {
	int64_t ts_ms; /* wall clock of the frequency sample */
	double hz;
	double setpoint_w; /* NaN when the battery was in its own mode */
	double measured_w; /* NaN when not known */
	double act_w[3];   /* per product (fcr.h order), upward positive */
	uint8_t state;     /* enum fcr_state */
};

struct fcrlog;

/* dir is created (0700) when missing.  Returns 0, -ENOMEM or -errno. */
int fcrlog_new(const char *dir, unsigned keep_days, struct fcrlog **ret);
void fcrlog_free(struct fcrlog *l);

/* Keeps r in the ring; writes it to the day file when it is the first
 * record of its second.  Returns 0 or -errno (the file could not be
 * written; the ring still has it). */
int fcrlog_add(struct fcrlog *l, const struct fcr_rec *r);
/* Hands buffered lines to the kernel.  Returns 0 or -errno. */
int fcrlog_flush(struct fcrlog *l);

/* Records of the ring with since_ms <= ts_ms < until_ms, oldest first, at
 * most cap.  Returns how many. */
size_t fcrlog_ring(const struct fcrlog *l, int64_t since_ms, int64_t until_ms, struct fcr_rec *out,
		   size_t cap);

/* The 1 Hz log between from_ms and to_ms (inclusive) as CSV with its header
 * line, into a malloc'd *ret_buf.  Returns 0, -EINVAL (to < from or a span
 * over FCRLOG_MAX_SPAN_MS), -ENOMEM. */
int fcrlog_csv(struct fcrlog *l, int64_t from_ms, int64_t to_ms, char **ret_buf, size_t *ret_len);

/* One record as a CSV line (no newline) into buf.  Returns the length. */
size_t fcrlog_format(const struct fcr_rec *r, char *buf, size_t cap);

/* Lines written and write errors so far. */
uint64_t fcrlog_lines(const struct fcrlog *l);
uint64_t fcrlog_errors(const struct fcrlog *l);
