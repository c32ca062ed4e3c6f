/* Private to the web UI's files (webui.c, notes.c, live.c, api_device.c,
 * api_modbus.c, scan.c, metrics.c): their shared state and helpers. */
#pragma once
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/uploader.h"
#include "base/err.h"
#include "base/log.h"
#include "base/util.h"
#include "config/settings.h"
#include "crypto/signer.h"
#include "devices/devconf.h"
#include "devices/device.h"
#include "devices/raw.h"
#include "devices/scan.h"
#include "egw.h"
#include "loop/loop.h"
#include "modbus/client.h"
#include "profiles/profile.h"
#include "profiles/reading.h"
#include "store/store.h"
#include "web/assets.h"
#include "web/sse.h"
#include "web/web.h"
#include "web/webui.h"

#define HEARTBEAT_PERIOD (15 * USEC_PER_SEC)
#define WEBUI_MAX_DEVICES DEVCONF_MAX
/* Live streams one client address may hold (of SSE_MAX_CLIENTS). */
#define LIVE_PER_ADDRESS 8
/* Scans and raw reads reach devices and networks: bounded per client
 * address and overall, per window. */
#define SCAN_WINDOW (60 * USEC_PER_SEC)
#define SCAN_PER_ADDRESS 3
#define SCAN_ALL 6
#define READ_WINDOW USEC_PER_SEC
#define READ_PER_ADDRESS 10
#define READ_ALL 20
#define LIMIT_PEERS 16

/* Fixed-window counters: at most per_addr requests from one address and at
 * most `all` together in each window.  The addresses tracked are bounded:
 * the one whose window started first is forgotten for a new one. */
struct limiter {
	usec_t window;
	unsigned per_addr, all;
	usec_t all_start;
	unsigned all_n;
	struct limit_peer {
		uint8_t addr[16];
		usec_t start; /* 0: free */
		unsigned n;
	} peers[LIMIT_PEERS];
};

/* Poll cycle latency buckets (seconds) for /metrics. */
static const double lat_bounds[] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5
};
#define LAT_BUCKETS (ARRAY_SIZE(lat_bounds) + 1)

struct dev_hist {
	char id[64];
	uint64_t hist[LAT_BUCKETS]; /* per bucket, not cumulative */
	double sum;
	uint64_t count;
	uint64_t readings;
};

struct note {
	uint64_t id;
	int64_t ts_ms;
	char level[8];
	char key[64];
	char text[200];
};

struct live_conn {
	struct webui *u; /* NULL once the webui is gone */
	struct MHD_Connection *conn;
	struct sse_client *client;
	struct live_conn *next;
	uint8_t peer[16]; /* the client's address (web_peer_key) */
	bool resumed;     /* woken, not yet served by MHD */
	char pre[256];    /* sent before the stream */
	size_t pre_len, pre_off;
};

/* A raw Modbus read or write in flight on a device's own client
 * (devices/raw.h): the HTTP connection is suspended.  The op lives until its
 * callback has run (pending): a webui freed first leaves it to that callback
 * (u NULL). */
struct raw_op {
	struct webui *u;       /* NULL: the webui is gone, the callback frees the op */
	struct web_request rq; /* copy; body not used after the handler */
	bool pending;          /* queued: its callback is still due */
	bool done;             /* answered; freed by the webui's raw_gc task */
	char device[64];
	struct raw_read rr; /* what was asked (fc, address, count, decoding) */
	struct raw_op *next;
};

struct webui {
	struct egw *e;
	struct sse_hub *hub;
	struct task heartbeat;
	struct task watch; /* backend and store health -> notifications */
	uint64_t up_failed, up_ok;
	struct task kick;              /* runs MHD once more after resuming connections */
	struct MHD_Daemon *daemons[2]; /* of resumed connections: the plain and the TLS listener */
	unsigned kicks;                /* consecutive re-kicks */
	struct live_conn *live;
	struct raw_op *raw;
	unsigned nraw;
	struct task raw_gc; /* frees answered raw ops outside their callbacks */
	struct note notes[WEBUI_NOTES_MAX];
	unsigned nnotes;
	uint64_t next_note_id;
	struct dev_hist hists[WEBUI_MAX_DEVICES];
	unsigned nhists;
	double freq_hz;
	int64_t freq_ts_ms;
	uint64_t freq_samples;
	uint64_t raw_writes, raw_reads, raw_refused;
	struct scan *scan;
	struct limiter scan_limit, read_limit;
};

/* Shared helpers (webui.c unless noted). */
int webui_raw_gc(struct task *t, usec_t now); /* api_modbus.c */
int webui_opt_uint(const json_t *o, const char *key, unsigned long min, unsigned long max,
		   unsigned long *ret);                  /* api_modbus.c */
void webui_note_clear(struct webui *u, const char *key); /* notes.c */
bool webui_limit(struct limiter *l, struct web_request *rq, usec_t now);
struct webui *webui_of(struct web_request *rq);
const char *webui_query(struct web_request *rq, const char *key);
int webui_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *ret);
void webui_client_addr(struct web_request *rq, char *buf, size_t len);
json_t *webui_body_json(struct web_request *rq, char *err, size_t errlen);
void webui_resume(struct webui *u, struct MHD_Connection *conn);
void webui_metrics(void *ud, struct web_buf *b); /* metrics.c */
int webui_heartbeat(struct task *t, usec_t now); /* live.c */

/* Parsers of request input (the fuzzers in fuzz/ call them directly). */
/* The body of POST /api/inverter/modbus: 0 with the device (borrowed, NULL
 * when absent), address and values, or -EINVAL with the field and a message.
 * (api_modbus.c) */
int webui_raw_write_parse(const json_t *o, const char **ret_device, unsigned long *ret_addr,
			  uint16_t values[123], unsigned *ret_count, const char **ret_field,
			  const char **ret_msg);
/* Fills targets (SCAN_TARGETS_MAX of them) from a scan's hosts and ports:
 * 0 with their number in *ret_n, or -EINVAL / -E2BIG / -EACCES with the
 * field at fault.  (scan.c) */
int webui_scan_targets(struct scan_target *targets, unsigned *ret_n, const char *hosts,
		       const char *ports, const char **ret_field);
