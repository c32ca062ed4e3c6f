/* Private to the device layer's files (device.c, identify.c, freq_task.c,
 * device_json.c): the state of devices, links and requests, and the
 * helpers they share. */
#pragma once
#include "devices/device.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/time.h"
#include "base/util.h"
#include "devices/devconf.h"
#include "fsm/fsm.h"
#include "loop/loop.h"
#include "modbus/client.h"
#include "profiles/profile.h"
#include "profiles/reading.h"

_Static_assert((int)DEV_DISCONNECTED == (int)FSM_DEV_DISCONNECTED &&
		       (int)DEV_CONNECTING == (int)FSM_DEV_CONNECTING &&
		       (int)DEV_IDENTIFYING == (int)FSM_DEV_IDENTIFYING &&
		       (int)DEV_POLLING == (int)FSM_DEV_POLLING &&
		       (int)DEV_BACKING_OFF == (int)FSM_DEV_BACKING_OFF &&
		       (int)DEV_ASLEEP == (int)FSM_DEV_ASLEEP &&
		       (int)DEV_STATE_COUNT == (int)FSM_DEV_STATE_COUNT,
	       "device states match fsm/fsm.h");

#define DEV_HOST_LEN DEVCONF_HOST_LEN
#define DEV_SERIAL_LEN 96
#define DEV_KEY_BLOCKS 32
#define DEV_MAX_MODELS 64
#define DEV_CACHE_SLOTS 24                      /* last poll words kept per device (Modbus proxy) */
#define DEV_SOLARMAN_TIMEOUT (2 * USEC_PER_SEC) /* per request through a V5 logger, at least */
#define DEV_SOLARMAN_GAP (50 * USEC_PER_MSEC)   /* between two requests to a logger, at least */
#define DEV_FAIL_CYCLES 2      /* consecutive failed poll cycles before backing off */
#define DEV_VERBOSE_EVERY 10   /* short-poll profiles read their blocks every 10th poll */
#define DEV_UNSUPPORTED_MAX 32 /* blocks remembered as refused with exception 2 */
#define FREQ_RING 128          /* samples kept (>= 1 s at 10 ms intervals would need 100) */
#define LATE_STEP_US 10        /* fine lateness histogram: 10 us buckets ... */
#define LATE_BUCKETS 1000      /* ... up to 10 ms, then one overflow bucket */

static const char *const conn_names[] = {
	[MB_TRANSPORT_TCP] = "tcp",
	[MB_TRANSPORT_RTU] = "rtu",
	[MB_TRANSPORT_RTU_OVER_TCP] = "rtu-over-tcp",
	[MB_TRANSPORT_MEM] = "mem",
	[MB_TRANSPORT_SOLARMAN] = "solarman",
};

/* What a queued request is for. */
enum req_kind { REQ_IDENT, REQ_SS_MARKER, REQ_SS_MODEL, REQ_FREQ_ID, REQ_BLOCK, REQ_FREQ };

/* One in-flight request; freed by its callback (which runs exactly once). */
struct dev_req {
	struct device *d;            /* NULL once the device is gone (orphan) */
	struct dev_req *prev, *next; /* the device's requests in flight */
	uint64_t gen;
	enum req_kind kind;
	unsigned idx;
	struct mb_block b;
	int64_t ts_ms;
};

struct freq_sample {
	int64_t ts_ms;
	double hz;
};

/* One Modbus client per connection (serial line, or TCP host:port), shared
 * by the devices behind it (unit ids on one RS-485 bus or one gateway). */
struct link {
	struct devices *set;
	struct link *next;
	unsigned refs;
	char host[DEV_HOST_LEN];
	char serial_port[DEV_HOST_LEN];
	struct mb_client_config mc; /* strings point into this link */
	struct mb_client *client;
	struct mb_client *old[4]; /* replaced, freed by reap_task */
	struct task reap_task;
	struct mb_client_stats base; /* totals of the clients replaced */
};

struct p1dev;

struct device {
	struct devices *set;
	unsigned index;
	struct dev_conf conf;
	struct link *link;    /* NULL for a P1 meter */
	struct p1dev *p1;     /* the P1 driver (p1dev.c), or NULL */
	struct dev_req *reqs; /* in flight */
	struct fsm fsm;
	const struct profile *prof; /* active: conf.profile or heap_prof */
	struct profile *heap_prof;  /* SunSpec map built at identification */
	uint64_t gen;               /* bumped whenever outstanding requests become stale */
	bool freeing;

	struct task poll_task;
	struct task retry_task;
	usec_t backoff;
	unsigned connect_failures; /* consecutive failed connection attempts */
	unsigned fail_cycles;      /* consecutive poll cycles that read nothing */

	char serial[DEV_SERIAL_LEN];
	bool identified; /* serial holds an identity seen before */

	/* SunSpec discovery */
	unsigned ss_base_i;
	uint16_t ss_base;
	struct sunspec_model_hdr ss_models[DEV_MAX_MODELS];
	unsigned ss_n;

	/* poll cycle */
	struct mb_block *full; /* verbose plan (the profile's blocks) */
	unsigned nfull;
	struct mb_block key[DEV_KEY_BLOCKS];
	unsigned nkey;
	struct block_result *res; /* max(nfull, nkey) entries */
	const struct mb_block *cycle_plan;
	unsigned cycle_n, cycle_next, cycle_ok;
	unsigned cycle_unsup; /* blocks skipped as unsupported this cycle */
	bool cycle_active, cycle_verbose, cycle_link_err;
	int cycle_err;
	usec_t cycle_start;
	int64_t cycle_ts_ms;
	uint64_t poll_seq;

	/* Blocks the device refused with exception 2, not asked again until
	 * cfg.unsupported_retry_ms after `at` or the next connection. */
	struct dev_unsupported {
		struct mb_block b;
		usec_t at;        /* its last refusal (monotonic) */
		uint64_t skipped; /* polls that did not ask for it */
	} unsup[DEV_UNSUPPORTED_MAX];
	unsigned nunsup;

	/* The words of the latest successful block reads, with when they
	 * arrived (monotonic), for device_cached_words(). */
	struct dev_cache {
		struct mb_block b; /* count 0: empty slot */
		usec_t at;
		uint16_t regs[PROFILE_MAX_BLOCK];
	} cache[DEV_CACHE_SLOTS];

	struct reading last; /* merged view for the API */
	bool have_reading;
	struct reading_mono mono;
	struct device_stats st;

	unsigned freq_pending; /* frequency requests in flight */
};

struct devices {
	struct loop *loop;
	struct devices_config cfg;
	struct device_hooks hooks;
	void *ud;
	struct device **dev;
	unsigned n;
	struct link *links;

	struct task freq_task;
	struct device *primary;
	struct freq_sample ring[FREQ_RING];
	unsigned ring_head, ring_len;
	uint64_t freq_reads, freq_errors, freq_skipped;
	int freq_last_err;
	/* How late each frequency read started, finer than the scheduler's own
	 * histogram (whose buckets are too wide to tell 1.2 ms from 1.9 ms). */
	uint32_t late[LATE_BUCKETS + 1];
	uint64_t late_n;
	usec_t late_max;
};

/* Shared helpers (device.c unless noted). */
unsigned device_poll_ms(const struct device *d);
bool device_link_error(int err);
int device_plan_single(const struct reg_def *r, struct mb_block *ret);
void device_count_error(struct device *d, int err);
void device_client_stats(const struct device *d, struct mb_client_stats *ret);
void device_go(struct device *d, int to, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void device_connect_failed(struct device *d, int err);
void device_identify_failed(struct device *d, const char *what, int err);
int device_send(struct device *d, enum req_kind kind, unsigned idx, const struct mb_block *b);
void device_set_profile(struct device *d, const struct profile *p); /* identify.c */
void device_start_identify(struct device *d);                       /* identify.c */
void device_on_ident(struct device *d, const struct dev_req *q, int err, const uint16_t *regs,
		     unsigned count); /* identify.c */
void device_on_ss_marker(struct device *d, int err, const uint16_t *regs,
			 unsigned count); /* identify.c */
void device_on_ss_model(struct device *d, const struct dev_req *q, int err, const uint16_t *regs,
			unsigned count); /* identify.c */
void device_on_freq(struct device *d, const struct dev_req *q, int err, const uint16_t *regs,
		    unsigned count);             /* freq_task.c */
int device_freq_run(struct task *t, usec_t now); /* freq_task.c */

/* The P1 driver (p1dev.c): a device whose conf.p1 is set has no link and
 * no profile; the state machine calls start on entering connecting and stop
 * on leaving the line (backing off, asleep, disconnected). */
int p1dev_new(struct device *d, struct p1dev **ret);
void p1dev_free(struct p1dev *p); /* accepts NULL */
void p1dev_start(struct p1dev *p);
void p1dev_stop(struct p1dev *p); /* accepts NULL */
json_t *p1dev_json(const struct p1dev *p);

/* d's list of blocks refused with exception 2 (device.c): the entry for
 * block b or NULL; unsup_note remembers (err is exception 2) or forgets (0)
 * a refusal.  The cycle and the frequency task both skip a listed block
 * until unsupported_retry_ms has passed. */
struct dev_unsupported *unsup_find(struct device *d, const struct mb_block *b);
/* The entry for b, or else for a listed block that contains b (a short
 * poll's block cut from a refused one is not asked for either: before short
 * polls, the refused block held its values too). */
struct dev_unsupported *unsup_covering(struct device *d, const struct mb_block *b);
void unsup_note(struct device *d, const struct mb_block *b, int err);
