/* The FCR operational log: what the controller did, kept on flash at 1 Hz
 * for at least 14 days (one CSV file per UTC day, <dir>/fcr-YYYYMMDD.csv,
 * days older than keep_days + 1 deleted), and at 10 Hz in memory (a ring of
 * the last FCRLOG_RING records) for the signed batches and the UI.
 *
 * Flash: one line of about 70 bytes a second, written from a 4 KiB stdio
 * buffer and flushed by fcrlog_flush (the daemon calls it every 10 s), so
 * about 6 MB a day in writes of a few hundred bytes.
 *
 * The day file, egw's own CSV (GET /api/fcr/log?format=egw):
 *   time_utc,ts_ms,f_Hz,setpoint_W,measured_W,state,fcr_n_W,fcr_d_up_W,fcr_d_down_W,
 *   writes,write_errors,cap_fcr_n_W,cap_fcr_d_up_W,cap_fcr_d_down_W
 * time_utc ISO 8601 with milliseconds; f_Hz to 1 mHz; powers in whole W,
 * activation upward positive, setpoint and measured power charging positive;
 * writes and write_errors count the control writes to the battery since the
 * previous line (so their sum over the log is every write egwd made while
 * FCR was on); cap_* is the capacity maintained (offered and active, else 0).
 * Lines written before the last five columns existed have nine fields.
 *
 * The TSO export (GET /api/fcr/log, format=tso): the signals the Nordic TSOs'
 * "Technical Requirements for Frequency Containment Reserve Provision in the
 * Nordic Synchronous Area" (v1.1, March 2025), section 6 "Requirements on
 * real-time telemetry and data logging", lists for an FCR providing entity
 * (read from an earlier edition's text of that section, the one at hand), in
 * its units (MW, Hz, MW/Hz), one row per logged second:
 *   Timestamp UTC, Frequency [Hz], Instantaneous active power [MW],
 *   Power baseline [MW], Activated FCR-N [MW], Activated FCR-D upwards [MW],
 *   Activated FCR-D downwards [MW], Maintained FCR-N / FCR-D upwards /
 *   FCR-D downwards capacity [MW], Regulating strength FCR-N / FCR-D upwards /
 *   FCR-D downwards [MW/Hz], Status FCR-N / FCR-D upwards / FCR-D downwards
 * Active power is the battery's, discharging (into the grid) positive; the
 * baseline is that power less the activation; FCR-N activation is upward
 * positive, each FCR-D activation positive in its own direction; MW to six
 * decimals (1 W).  The document leaves the exact file layout to each TSO
 * ("the specific details are provided by each respective TSO"); endurance of
 * a limited energy reservoir is not logged (egwd does not know the battery's
 * energy, see fcr.h).
 * A value that was not known is an empty field. */
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
	double cap_w[3];   /* capacity maintained per product: offered and active, else 0 */
	uint8_t state;     /* enum fcr_state */
	uint32_t writes, write_errors; /* set by fcrlog_add: counted since the last line */
};

struct fcrlog;

/* dir is created (0700) when missing.  Returns 0, -ENOMEM or -errno. */
int fcrlog_new(const char *dir, unsigned keep_days, struct fcrlog **ret);
void fcrlog_free(struct fcrlog *l);

/* Keeps r in the ring; writes it to the day file when it is the first
 * record of its second.  Returns 0 or -errno (the file could not be
 * written; the ring still has it). */
int fcrlog_add(struct fcrlog *l, const struct fcr_rec *r);
/* Counts one control write (ok) or failed write (!ok); the counts go into
 * the next line written and start again from 0. */
void fcrlog_count_write(struct fcrlog *l, bool ok);
/* Hands buffered lines to the kernel.  Returns 0 or -errno. */
int fcrlog_flush(struct fcrlog *l);

/* Records of the ring with since_ms <= ts_ms < until_ms, oldest first, at
 * most cap.  Returns how many. */
size_t fcrlog_ring(const struct fcrlog *l, int64_t since_ms, int64_t until_ms, struct fcr_rec *out,
		   size_t cap);

enum fcrlog_format { FCRLOG_TSO, FCRLOG_EGW };

/* The 1 Hz log between from_ms and to_ms (inclusive) as CSV in format fmt
 * with its header line, into a malloc'd *ret_buf.  Returns 0, -EINVAL (to <
 * from or a span over FCRLOG_MAX_SPAN_MS), -ENOMEM. */
int fcrlog_csv(struct fcrlog *l, int64_t from_ms, int64_t to_ms, enum fcrlog_format fmt,
	       char **ret_buf, size_t *ret_len);

/* One record as a CSV line (no newline) into buf.  Returns the length. */
size_t fcrlog_format(const struct fcr_rec *r, char *buf, size_t cap);

/* Lines written and write errors so far. */
uint64_t fcrlog_lines(const struct fcrlog *l);
uint64_t fcrlog_errors(const struct fcrlog *l);
