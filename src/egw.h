/* The application: one struct egw holds the loop and every module of the
 * gateway.  main.c creates the modules in the order of its init list and
 * tears them down in reverse; the wiring of each module (its settings, hooks,
 * /api/state sections and metrics) is in src/daemon/.  Only src/daemon/,
 * src/web/ and main.c include this header.  Nothing here is global: a test
 * can build several gateways in one process. */
#pragma once
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/time.h"
#include "fsm/fsm.h"
#include "sched/sched.h"
#include "web/web.h"

struct loop;
struct settings;
struct settings_error;
struct web;
/* The modules (each wired in src/daemon/). */
struct signer;
struct store;
struct http;
struct uploader;
struct acks;
struct uplink_mqtt;
struct namequery;
struct devices;
struct batch;
struct mqtt;
struct webui;
struct proxy;
struct fcr_egw;
struct fcrlog;

struct egw {
	struct loop *loop;
	struct settings *settings;
	char state_dir[PATH_MAX];
	char token[WEB_TOKEN_HEX + 1]; /* API bearer token */
	struct fsm gw;                 /* gateway state machine */
	usec_t started_us;             /* monotonic, for uptime */
	int64_t started_wall_ms;

	struct web *web;
	struct signer *signer;
	struct task identity_watch; /* until the signer's identity is known (daemon/signer.c) */
	bool accept_new_identity;   /* --accept-new-identity */
	struct store *store;
	struct http *http;
	struct uploader *uploader;
	struct acks *acks;               /* deliveries of every uplink (backend/acks.h) */
	struct uplink_mqtt *uplink_mqtt; /* daemon/uplink.c */
	char uplink_sig[1536];           /* the settings it was started with */
	char uplink_error[128];          /* why it is not running */
	struct namequery *namequery;
	struct devices *devices;
	json_t *dev_serials;  /* {id: serial last identified}, kept in the state dir */
	json_t *dev_identity; /* {"replaced": [..], "duplicates": [..]} for /api/state */
	struct batch *batch;  /* harvest: batch assembly (backend/batch.h) */
	struct mqtt *mqtt;    /* daemon/mqtt.c */
	char mqtt_sig[1536];  /* the settings MQTT was started with */
	struct proxy *proxy;  /* Modbus TCP proxy (daemon/proxy.c) */
	char proxy_sig[320];  /* the settings it listens with */
	char proxy_error[160];
	struct fcr_egw *fcr;   /* grid services (daemon/fcr.c) */
	struct fcrlog *fcrlog; /* its operational log (grid/fcrlog.h), for GET /api/fcr/log */
	struct webui *webui;   /* web UI, live stream, device API (webui.h) */
	struct task watchdog;  /* systemd watchdog keep-alive (sdnotify.h) */
	struct task memtrim;   /* hands free heap back (base/mem.h) */
	unsigned memtrims;

	/* Applies a settings patch (POST /api/settings, the device API): checked
	 * by the schema (the same code that checks the file at start), applied
	 * to every module without a restart, then saved, with the file kept as
	 * the last known good one.  When a module refuses the change it is
	 * rolled back and nothing is saved.  Returns 0, -EGW_ESCHEMA (err names
	 * the key), -ENOMEM, or -errno when saving failed (rolled back too). */
	int (*settings_commit)(struct egw *e, const json_t *patch, struct settings_error *err);
	/* Where the running settings came from: "file", "last-known-good" or
	 * "defaults", and why the file was set aside ("" when it was not). */
	const char *settings_source;
	char settings_rejected[512];
	int exit_code;
	const char *stop_reason; /* the signal that stops egwd */
	bool stop_deferred;      /* waiting for FCR to hand the battery back */
};
