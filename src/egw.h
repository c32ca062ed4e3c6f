/* The application: one struct egw holds the loop and every module of the
 * gateway.  main.c creates the modules in the order of its init list and
 * tears them down in reverse; each module owner adds its field here and its
 * init/teardown step in main.c.  Nothing here is global: a test can build
 * several gateways in one process. */
#pragma once
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/memtrim.h"
#include "base/time.h"
#include "fsm/fsm.h"
#include "sched/sched.h"
#include "web/web.h"

struct loop;
struct settings;
struct web;
/* Modules wired by their owners (see main.c). */
struct signer;
struct store;
struct http;
struct uploader;
struct namequery;
struct devices;
struct batch;
struct mqtt;
struct webui;

struct egw {
	struct loop *loop;
	struct settings *settings;
	char state_dir[PATH_MAX];
	char token[WEB_TOKEN_HEX + 1];   /* API bearer token */
	struct fsm gw;                   /* gateway state machine */
	usec_t started_us;               /* monotonic, for uptime */
	int64_t started_wall_ms;

	struct web *web;
	struct signer *signer;
	bool accept_new_identity;        /* --accept-new-identity */
	struct store *store;
	struct http *http;
	struct uploader *uploader;
	struct namequery *namequery;
	struct devices *devices;
	struct batch *batch;             /* harvest: batch assembly (backend/batch.h) */
	struct mqtt *mqtt;
	struct webui *webui;             /* web UI, live stream, device API (webui.h) */
	struct task watchdog;            /* systemd watchdog keep-alive (sdnotify.h) */
	struct task memtrim;             /* hands back start-up pages (base/memtrim.h) */
	unsigned memtrims;
	struct memtrim_result memtrim_last;

	/* Called after the settings changed (POST /api/settings, SIGHUP); applies
	 * them to every module without a restart.  Returns 0 or a negative error. */
	int (*settings_changed)(struct egw *e);
	int exit_code;
};
