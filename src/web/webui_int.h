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
#define RAW_TIMEOUT (2 * USEC_PER_SEC)
#define SCAN_TIMEOUT (400 * USEC_PER_MSEC)
#define SCAN_SOLARMAN_PORT 8899                  /* a Solarman V5 logger's port */
#define SCAN_SOLARMAN_TIMEOUT (2 * USEC_PER_SEC) /* loggers answer slowly */
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
		usec_t start;       /* 0: free */
		unsigned n;
	} peers[LIMIT_PEERS];
};

/* Poll cycle latency buckets (seconds) for /metrics. */
static const double lat_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5 };
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
	struct webui *u;             /* NULL once the webui is gone */
	struct MHD_Connection *conn;
	struct sse_client *client;
	struct live_conn *next;
	uint8_t peer[16];            /* the client's address (web_peer_key) */
	bool resumed;                /* woken, not yet served by MHD */
	char pre[256];               /* sent before the stream */
	size_t pre_len, pre_off;
};

/* A raw Modbus read or write in flight: the HTTP connection is suspended.
 * It is queued on the device's own client (device_client), behind the
 * device's polling, so nothing runs concurrently on the wire; only a device
 * in the settings that the running set does not have gets a short-lived
 * client of its own (client).  The op lives until its callback has run
 * (pending): a webui freed first leaves it to that callback (u NULL). */
struct raw_op {
	struct webui *u;             /* NULL: the webui is gone, the callback frees the op */
	struct web_request rq;       /* copy; body not used after the handler */
	struct mb_client *client;    /* own client (fallback), NULL on a device's client */
	bool pending;                /* queued: its callback is still due */
	bool done;                   /* answered; freed by the webui's raw_gc task */
	bool write;
	char device[64];
	uint8_t fc;
	uint16_t addr, count;
	uint8_t type, order;
	double scale;
	struct raw_op *next;
};

struct scan_result {
	char host[48];
	uint16_t port;
	uint8_t unit;
	char profile[32];
	char serial[40];
	char manufacturer[40];
	bool sunspec;
	uint32_t logger_serial;      /* behind a Solarman V5 logger: its serial; else 0 */
};

struct scan_probe {
	struct webui *u;
	struct mb_client *client;
	bool active;
	bool finished;               /* result recorded; client freed by scan_gc */
	bool busy;                   /* a request in flight */
	unsigned target;
	unsigned step;               /* 0: SunSpec marker, 1: model 1, 2+: profile index * 2 */
	unsigned prof;
	char serial[40];
	bool v5;                     /* speaking Solarman V5 (port 8899, or no Modbus TCP answer) */
	uint32_t logger_serial;      /* a Solarman logger's, once learnt */
};

struct scan_target {
	char host[48];
	uint16_t port;
};

struct scan {
	struct task gc;              /* scan_gc */
	bool running;
	int64_t started_ms, finished_ms;
	unsigned ntargets, next, done;
	uint8_t unit;
	struct scan_target targets[WEBUI_SCAN_TARGETS_MAX];
	struct scan_probe probes[WEBUI_SCAN_PARALLEL];
	struct scan_result results[WEBUI_SCAN_RESULTS_MAX];
	unsigned nresults;
	char hosts_arg[256], ports_arg[128];
};

struct webui {
	struct egw *e;
	struct sse_hub *hub;
	struct task heartbeat;
	struct task watch;           /* backend and store health -> notifications */
	uint64_t up_failed, up_ok;
	struct task kick;            /* runs MHD once more after resuming connections */
	struct MHD_Daemon *daemons[2]; /* of resumed connections: the plain and the TLS listener */
	unsigned kicks;              /* consecutive re-kicks */
	struct live_conn *live;
	struct raw_op *raw;
	unsigned nraw;
	struct task raw_gc;          /* frees answered raw ops outside their callbacks */
	struct note notes[WEBUI_NOTES_MAX];
	unsigned nnotes;
	uint64_t next_note_id;
	struct dev_hist hists[WEBUI_MAX_DEVICES];
	unsigned nhists;
	double freq_hz;
	int64_t freq_ts_ms;
	uint64_t freq_samples;
	uint64_t raw_writes, raw_reads, raw_refused;
	struct scan scan;
	struct limiter scan_limit, read_limit;
};

/* Shared helpers (webui.c unless noted). */
int webui_raw_gc(struct task *t, usec_t now);  /* api_modbus.c */
int webui_opt_uint(const json_t *o, const char *key, unsigned long min, unsigned long max, unsigned long *ret);  /* api_modbus.c */
void webui_note_clear(struct webui *u, const char *key);  /* notes.c */
int webui_scan_gc(struct task *t, usec_t now);  /* scan.c */
void webui_scan_stop(struct webui *u);  /* scan.c */
bool webui_limit(struct limiter *l, struct web_request *rq, usec_t now);
struct webui *webui_of(struct web_request *rq);
const char *webui_query(struct web_request *rq, const char *key);
int webui_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *ret);
void webui_client_addr(struct web_request *rq, char *buf, size_t len);
json_t *webui_body_json(struct web_request *rq, char *err, size_t errlen);
void webui_resume(struct webui *u, struct MHD_Connection *conn);
void webui_metrics(void *ud, struct web_buf *b);  /* metrics.c */
int webui_heartbeat(struct task *t, usec_t now);  /* live.c */

/* Parsers of request input (the fuzzers in fuzz/ call them directly). */
/* The body of POST /api/inverter/modbus: 0 with the device (borrowed, NULL
 * when absent), address and values, or -EINVAL with the field and a message.
 * (api_modbus.c) */
int webui_raw_write_parse(const json_t *o, const char **ret_device, unsigned long *ret_addr,
                          uint16_t values[123], unsigned *ret_count, const char **ret_field,
                          const char **ret_msg);
/* Fills sc's targets from a scan's hosts and ports; -EINVAL with the field
 * at fault otherwise.  (scan.c) */
int webui_scan_targets(struct scan *sc, const char *hosts, const char *ports, const char **ret_field);
