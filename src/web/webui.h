/* The web UI side of the gateway: embedded UI assets, the live
 * stream (/api/live, server-sent events), the device API (/api/device...,
 * scan, raw Modbus read/write), notifications and the device/stream
 * metrics.
 *
 * One struct webui per gateway (e->webui), created after the web server and
 * before the devices start.  The route handlers below sit in web.c's route
 * table; the device hooks (webui_on_*) are called by main.c's device hooks.
 *
 * Everything runs on the loop thread and nothing blocks: a raw Modbus read
 * or write suspends its HTTP connection and answers from the client's
 * callback; a scan (devices/scan.h) probes a few endpoints at a time;
 * SSE clients read from a shared ring (web/sse.h) and a client that falls a
 * ring behind is dropped. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct egw;
struct webui;
struct device;
struct reading;
struct web_request;

#define WEBUI_NOTES_MAX 64
#define WEBUI_RAW_PENDING_MAX 8

/* Registers the metrics provider and starts the heartbeat.  Returns 0,
 * -ENOMEM or -errno. */
int webui_new(struct egw *e, struct webui **ret);
/* The web server is about to stop a libmicrohttpd daemon (it moves to a new
 * address): resume every connection the UI holds suspended on it. */
void webui_daemon_closing(struct webui *u);
/* Ends every live stream and pending raw request.  Accepts NULL.  Call
 * before web_free. */
void webui_free(struct webui *u);
/* main.c steps: create/free e->webui (last step, so the signer's serial is
 * known for MQTT topics).  Returns 0 or the error of webui_new (logged). */
int webui_egw_init(struct egw *e);
void webui_egw_fini(struct egw *e);

/* Device hooks (main.c forwards them; u may be NULL). */
void webui_on_reading(struct webui *u, struct device *d, int64_t ts_ms, const struct reading *r);
void webui_on_freq(struct webui *u, struct device *d, int64_t ts_ms, double hz);
void webui_on_state(struct webui *u, struct device *d, int old_state, int new_state,
		    const char *reason);

/* Adds a notification (level "info", "warning" or "error"); a notification
 * with the same key replaces the older one.  Kept: the last WEBUI_NOTES_MAX. */
void webui_notify(struct webui *u, const char *level, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Route handlers (web.c route table). */
int webui_h_asset(struct web_request *rq);         /* GET / and the assets */
int webui_h_live(struct web_request *rq);          /* GET /api/live */
int webui_h_device_get(struct web_request *rq);    /* GET /api/device */
int webui_h_device_post(struct web_request *rq);   /* POST /api/device (token) */
int webui_h_device_delete(struct web_request *rq); /* DELETE /api/device (token) */
int webui_h_supported(struct web_request *rq);     /* GET /api/device/supported */
int webui_h_scan(struct web_request *rq);          /* GET /api/device/scan: results only */
int webui_h_scan_post(struct web_request *rq);     /* POST /api/device/scan (token) */

struct ifaddrs;
/* The networks `hosts=local` scans: each IPv4 interface that is up and not
 * loopback, as a.b.c.d/n with n >= 24 (a wider subnet is narrowed to the
 * /24 around the interface's address), comma separated, without repeats.
 * Returns how many were written to buf (size n). */
unsigned webui_local_networks(const struct ifaddrs *ifs, char *buf, size_t n);
int webui_h_modbus_get(struct web_request *rq);   /* GET /api/inverter/modbus: 405 */
int webui_h_modbus_read(struct web_request *rq);  /* POST /api/inverter/modbus/read (token) */
int webui_h_modbus_post(struct web_request *rq);  /* POST /api/inverter/modbus (token) */
int webui_h_notes_get(struct web_request *rq);    /* GET /api/notification */
int webui_h_notes_delete(struct web_request *rq); /* DELETE /api/notification/{id} (token) */
int webui_h_frequency(struct web_request *rq);    /* GET /api/frequency */
