/* Device drivers: every configured inverter/meter is a `struct device` that
 * connects through a Modbus client (modbus/client.h), identifies itself
 * (serial register of its profile, or the frequency fallback: a [key]
 * frequency reading 48..62 Hz), polls its profile's blocks on a periodic task
 * and decodes them through the profile (profiles/profile.h) into a reading in
 * the data model (pv / battery / meter, SI units).
 *
 * Device states (pinned, see DESIGN.md): disconnected, connecting,
 * identifying, polling, backing off, asleep.  Every transition is logged once
 * as "old -> new (reason)", counted, and reported through hooks->on_state.
 *
 * - a failed block leaves only its own values unavailable;
 * - a block the device refuses with exception 2 (illegal data address: a
 *   variant without that register family, like a Sungrow SG string inverter
 *   asked for the SH hybrid's 13000 block) is marked unsupported: polls skip
 *   it (its values stay absent, the decoder sees the same exception) until
 *   the next connection or `unsupported_retry_ms`, and /api/state lists it;
 * - energy totals are never published decreasing (the last published value is
 *   kept instead);
 * - errors and timeouts move a device to "backing off" (exponential, capped);
 *   a device that refuses connections or stops answering for long (night
 *   sleep) goes "asleep" and is retried slowly, without an error storm;
 * - each connection (serial line, or TCP host:port) has one Modbus client,
 *   shared by the unit ids behind it; each device has its own tasks, so a
 *   slow or dead device never delays a device on another connection (devices
 *   sharing one line share its pace, as the bus does);
 * - identity changes (another serial at the same address) are counted and
 *   reported through hooks->on_identity_change;
 * - a device that answers nothing for `sleep_after_failures` connection
 *   attempts in a row goes asleep, retried every `sleep_retry_ms`.
 *
 * The set (`struct devices`) also runs the grid frequency task: it reads the
 * frequency register of the primary device at cfg->freq_interval_ms (10 Hz by
 * default), stamps each sample with wall ms, keeps 1-second statistics (mean,
 * min, max, rate of change in Hz/s) and the task's lateness statistics, and
 * hands every sample to hooks->on_freq.  The Modbus client has no request
 * priorities, so a poll cycle queues its blocks one at a time: a frequency
 * read waits behind at most the one block read in flight, never behind a
 * whole cycle.
 *
 * Everything runs on the loop thread; nothing here blocks.  Errors are
 * returned, not logged, except the state-transition lines (the device layer
 * is the edge for those). */
#pragma once
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "sched/sched.h"

struct loop;
struct reading;       /* profiles/reading.h */
struct block_result;  /* profiles/profile.h */
struct mb_mem_server; /* modbus/client.h */
struct mb_client;     /* modbus/client.h */
struct device;
struct devices;
struct profile; /* profiles/profile.h */

/* Pinned device states; names (device_state_name) are the API strings. */
enum dev_state {
	DEV_DISCONNECTED,
	DEV_CONNECTING,
	DEV_IDENTIFYING,
	DEV_POLLING,
	DEV_BACKING_OFF,
	DEV_ASLEEP,
	DEV_STATE_COUNT
};

/* "disconnected", "connecting", "identifying", "polling", "backing off",
 * "asleep"; "unknown" outside the enum. */
const char *device_state_name(int state);

/* Set-wide settings (a value type; zero fields take the defaults noted). */
struct devices_config {
	unsigned poll_interval_ms;     /* harvest.poll_interval_ms; 0: 1000 */
	unsigned freq_interval_ms;     /* frequency.interval_ms; 0: 100 */
	int freq_device;               /* frequency.device: index into the array; <0: 0 (first) */
	const char *freq_device_id;    /* or by device id (wins when non-NULL and found) */
	unsigned timeout_ms;           /* per-request response timeout; 0: 1000 */
	unsigned connect_timeout_ms;   /* 0: 3000 */
	unsigned min_gap_ms;           /* minimum gap between requests on one link; 0: none */
	unsigned backoff_min_ms;       /* first backoff after a failure; 0: 1000 */
	unsigned backoff_max_ms;       /* cap of the exponential backoff; 0: 60000 */
	unsigned sleep_after_failures; /* consecutive failed (re)connects before asleep; 0: 5 */
	unsigned sleep_retry_ms;       /* retry period while asleep; 0: 60000 */
	unsigned unsupported_retry_ms; /* a block refused with exception 2 (illegal data
	                                   address) is not asked again for this long, nor
	                                   before the next connection; 0: 600000 */
	/* Tests and embedding (egw-sim in one process): device i talks to the
	 * in-memory server mem[i] (modbus/client.h MB_TRANSPORT_MEM) instead of
	 * its configured connection, for i < nmem. */
	struct mb_mem_server *const *mem;
	unsigned nmem;
};

/* Callbacks into the rest of the gateway (batch pipeline, web/SSE).  Any may
 * be NULL.  Pointers passed are borrowed for the duration of the call. */
struct device_hooks {
	void (*on_reading)(void *ud, struct device *d, int64_t ts_ms, const struct reading *r,
			   const struct block_result *res /* borrowed: the poll's blocks */,
			   unsigned nres);
	void (*on_freq)(void *ud, struct device *d, int64_t ts_ms, double hz);
	/* A scheduled poll read nothing: err is the cycle's error (a timeout,
	 * a Modbus exception), or -ENOTCONN for a poll due while the device
	 * backs off after failures (offline).  Polls due while it reconnects
	 * (connecting, identifying) or sleeps are not reported. */
	void (*on_missed)(void *ud, struct device *d, int64_t ts_ms, int err);
	void (*on_state)(void *ud, struct device *d, int old_state, int new_state,
			 const char *reason);
	/* The serial a device reports changed from a previously identified one. */
	void (*on_identity_change)(void *ud, struct device *d, const char *old_serial,
				   const char *new_serial);
};

/* Per-device poll statistics (value type, snapshot via device_stats). */
struct device_stats {
	uint64_t polls;         /* poll cycles started */
	uint64_t polls_ok;      /* cycles where every block read */
	uint64_t polls_partial; /* cycles where some block failed */
	uint64_t reads;         /* Modbus requests issued */
	uint64_t errors;        /* failed requests (all causes) */
	uint64_t timeouts;      /* of which timeouts */
	uint64_t exceptions;    /* of which Modbus exception replies */
	uint64_t overruns;      /* poll ticks skipped: the previous cycle was still running */
	uint64_t reconnects;    /* connections dropped and re-opened (Modbus client) */
	uint64_t transitions;   /* state transitions */
	uint64_t identity_changes;
	uint64_t totals_suppressed; /* energy totals held because they decreased */
	int64_t last_good_ms;       /* wall ms of the last complete poll; 0: never */
	usec_t latency_last_us;     /* duration of the last poll cycle */
	usec_t latency_max_us;
	usec_t latency_sum_us; /* over polls_ok + polls_partial */
	int last_error;        /* last negative error (egw_strerror), 0: none */
};

/* Creates the set from settings["devices"] (a JSON array of objects):
 *   {"connection": "tcp"|"rtu"|"rtu-over-tcp"|"solarman", "host", "port", "unit_id",
 *    "profile", optional "id", "name", "poll_interval_ms",
 *    rtu: "serial_port", "baudrate", "parity" ("N"|"E"|"O"), "stopbits",
 *    solarman: "logger_serial"}
 * or a P1 smart meter (devconf.h: "profile": "p1" on "tcp" or "serial"; a
 * driver of its own, p1dev.c, with the same states and hooks: each telegram
 * is a reading, with an empty raw map) (a NULL or empty array is valid: no device).  Devices start connecting at
 * once.  On a validation error returns -EGW_ESCHEMA (or -EGW_EPROFILE for an
 * unknown profile) and writes a message naming the field, e.g.
 * "devices[1].port: must be 1..65535", to err.  Other errors: -ENOMEM,
 * -errno.  *ret is written only on success. */
int devices_new(struct loop *l, const json_t *devices_array, const struct devices_config *cfg,
		const struct device_hooks *hooks, void *ud, struct devices **ret, char *err,
		size_t errlen);
/* Closes every connection and cancels every task.  Accepts NULL. */
void devices_free(struct devices *ds);

/* Settings changed: devices whose object is unchanged keep running; changed
 * ones are reopened, removed ones freed, new ones added.  Validates first: on
 * error nothing changes.  Returns 0, -EGW_ESCHEMA, -EGW_EPROFILE, -ENOMEM. */
int devices_apply(struct devices *ds, const json_t *devices_array, char *err, size_t errlen);

/* frequency.device changed: the frequency task reads device `index` from now
 * on (the first when out of range).  Accepts NULL. */
void devices_set_freq_device(struct devices *ds, int index);

unsigned devices_count(const struct devices *ds);
/* NULL when i is out of range.  Pointers stay valid until devices_apply or
 * devices_free. */
struct device *devices_get(struct devices *ds, unsigned i);
struct device *devices_find(struct devices *ds, const char *id);

const char *device_id(const struct device *d);     /* "id" or "dev<N>" */
int device_state(const struct device *d);          /* enum dev_state */
const char *device_serial(const struct device *d); /* "" until identified */
const char *device_profile_name(const struct device *d);
/* The profile polled with (for SunSpec, the one built from the models found
 * once identified, else the template).  Valid until devices_apply/free. */
const struct profile *device_profile(const struct device *d);
const char *device_name(const struct device *d); /* "name", or the id */
/* The Modbus client the device polls through (modbus/client.h), so that
 * other parts of the gateway (the web UI's raw register access) queue their
 * requests behind the device's own instead of opening a second connection
 * (most inverters accept one client; a serial line has only one master).
 * The client is shared by every device on the same serial line or TCP
 * host:port, and device_unit() is the unit id to address this device.
 *
 * Lifetime: the pointer is valid only until control returns to the loop: the
 * device replaces its client after errors, and devices_apply/devices_free
 * free it.  Do not keep it; look the device up again by id (devices_find)
 * for each new request.  A request already queued always gets its callback
 * exactly once: -ECANCELED when the client was replaced or freed meanwhile
 * (the device removed or reopened), possibly from inside devices_apply or
 * devices_free, so the callback must not touch the device set. */
struct mb_client *device_client(struct device *d); /* NULL for a P1 meter */
uint8_t device_unit(const struct device *d);
/* The unit id the Modbus proxy answers for this device (settings
 * "proxy_unit_id", default its unit_id). */
uint8_t device_proxy_unit(const struct device *d);
/* The device whose proxy unit id is unit, or NULL. */
struct device *devices_find_proxy_unit(struct devices *ds, uint8_t unit);
/* count words at addr (function fc) from one block a poll read successfully
 * at most max_age before now (monotonic), into ret_words.  Returns 0,
 * -ENOENT (no such block that recent: nothing written) or -EINVAL. */
int device_cached_words(const struct device *d, uint8_t fc, uint16_t addr, uint16_t count,
			usec_t max_age, usec_t now, uint16_t *ret_words);
/* The last decoded reading, or NULL before the first poll. */
const struct reading *device_reading(const struct device *d);
void device_stats(const struct device *d, struct device_stats *ret);

/* {"id", "name", "state", "profile", "serial", "reading" (data-model JSON or
 *  null), "stats": {...}, "connection": {...}, "transitions": n}.  New
 * reference, NULL on ENOMEM. */
json_t *device_to_json(const struct device *d);
/* [device_to_json, ...] */
json_t *devices_to_json(const struct devices *ds);

/* {"device": id|null, "interval_ms", "latest": {"ts_ms", "hz"}|null,
 *  "samples": [[ts_ms, hz], ...] (the last second),
 *  "stats_1s": {"mean", "min", "max", "rocof_hz_s", "n"}|null,
 *  "reads", "errors", "skipped", "last_error",
 *  "lateness_us": {"p50", "p99", "p999", "max", "last", "runs"}}: how late
 * each read started after its due time (percentiles to 10 us, from a fine
 * histogram kept here).  New reference. */
json_t *devices_frequency_json(const struct devices *ds);
/* The frequency task (for /metrics lateness histogram); NULL when there is
 * no primary device. */
const struct task *devices_frequency_task(const struct devices *ds);

/* 1-second frequency statistics over a window of samples (pure, exported for
 * tests).  rocof is the least-squares slope in Hz/s over the window (0 when
 * fewer than two samples or zero time span).  Returns 0 or -EINVAL (n == 0). */
struct freq_stats {
	double mean, min, max, rocof;
	unsigned n;
};
int freq_stats_compute(const int64_t *ts_ms, const double *hz, unsigned n, struct freq_stats *ret);
