/* egwd: the gateway daemon.
 *
 * Parses the command line, loads the settings (a file it cannot use is set
 * aside, never fatal), then brings the modules up in the order of `steps`
 * below (their wiring lives in src/daemon/) and down in reverse.
 * SIGTERM/SIGINT: state "stopping", orderly teardown, exit 0.  SIGHUP: reload
 * settings.json. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/batch.h"
#include "daemon/pipeline.h"
#include "backend/uploader.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/sdnotify.h"
#include "base/util.h"
#include "config/settings.h"
#include "daemon/signer.h"
#include "daemon/devices.h"
#include "daemon/fcr.h"
#include "daemon/mqtt.h"
#include "daemon/proxy.h"
#include "daemon/uplink.h"
#include "egw.h"
#include "fsm/fsm.h"
#include "loop/loop.h"
#include "store/store.h"
#include "daemon/store.h"
#include "web/web.h"
#include "web/webui.h"

#define MAX_SETS 64

struct args {
	const char *state_dir;
	const char *config;
	const char *port;
	const char *log_level;
	const char *sets[MAX_SETS];
	unsigned nsets;
	bool check;
	bool accept_new_identity;
	int chip_cmd; /* -1, or an enum crypto_chip_cmd */
	bool dry_run;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: egwd [OPTIONS]\n"
		"The egw energy gateway daemon.\n\n"
		"  -p, --port N           HTTP port (settings http.port, default 5000)\n"
		"  -d, --state-dir DIR    state directory (default ./var, created 0700)\n"
		"  -c, --config FILE      settings file (default <state-dir>/settings.json)\n"
		"  -l, --log-level LEVEL  error, warn, info or debug (settings log_level)\n"
		"  -s, --set KEY=VALUE    override one setting; repeatable; dotted KEY,\n"
		"                         VALUE parsed as JSON if it parses, else a string\n"
		"      --check            exit 0 if egwd answers /api/state on the configured\n"
		"                         port (container health check), 1 otherwise\n"
		"      --list-routes      print the HTTP routes (method path needs_token)\n"
		"      --accept-new-identity  sign under a key that is not the identity\n"
		"                         recorded in <state-dir>/identity (a new chip or\n"
		"                         key); without it egwd stores but signs nothing\n"
		"      --chip-info        print the ATECC608's serial, revision, locks and\n"
		"                         slot 0 (bus and address: signer.i2c_bus,\n"
		"                         signer.i2c_address); exit 1 if none answers\n"
		"      --chip-provision [--dry-run]  configure a blank ATECC608 for egw\n"
		"                         (slot 0 P-256 key generated inside), lock it and\n"
		"                         print the public key; refuses a locked chip\n"
		"  -h, --help             show this help\n"
		"  -V, --version          show the version\n");
}

/* --list-routes: one line per route, "METHOD PATH needs_token(0|1)". */
static void list_routes(void)
{
	size_t n;
	const struct web_route *r = web_routes(&n);

	for (size_t i = 0; i < n; i++)
		printf("%s %s %d\n", r[i].method, r[i].path, r[i].needs_token ? 1 : 0);
}

static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "state-dir", required_argument, NULL, 'd' },
		{ "config", required_argument, NULL, 'c' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "set", required_argument, NULL, 's' },
		{ "check", no_argument, NULL, 'C' },
		{ "list-routes", no_argument, NULL, 'R' },
		{ "accept-new-identity", no_argument, NULL, 'A' },
		{ "chip-info", no_argument, NULL, 'I' },
		{ "chip-provision", no_argument, NULL, 'P' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	int c;

	a->state_dir = "./var";
	a->chip_cmd = -1;
	while ((c = getopt_long(argc, argv, "p:d:c:l:s:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			a->port = optarg;
			break;
		case 'd':
			a->state_dir = optarg;
			break;
		case 'c':
			a->config = optarg;
			break;
		case 'l':
			a->log_level = optarg;
			break;
		case 's':
			if (a->nsets >= MAX_SETS) {
				fprintf(stderr, "egwd: too many --set (max %d)\n", MAX_SETS);
				return -1;
			}
			a->sets[a->nsets++] = optarg;
			break;
		case 'C':
			a->check = true;
			break;
		case 'A':
			a->accept_new_identity = true;
			break;
		case 'I':
			a->chip_cmd = CHIP_INFO;
			break;
		case 'P':
			a->chip_cmd = CHIP_PROVISION;
			break;
		case 'n':
			a->dry_run = true;
			break;
		case 'R':
			list_routes();
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("egwd %s\n", EGW_VERSION);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "egwd: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (a->dry_run && a->chip_cmd != CHIP_PROVISION) {
		fprintf(stderr, "egwd: --dry-run goes with --chip-provision\n");
		return -1;
	}
	if (a->dry_run)
		a->chip_cmd = CHIP_PROVISION_DRY_RUN;
	return 0;
}

static int make_state_dir(const char *dir)
{
	char p[PATH_MAX];
	if (snprintf(p, sizeof(p), "%s", dir) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* The file egwd last ran with, beside the settings file. */
static void lkg_path(const struct settings *s, char *buf, size_t len)
{
	snprintf(buf, len, "%s.last-good", settings_path(s));
}

/* The settings file is not usable (malformed, or against the schema, e.g.
 * edited by hand): egwd does not refuse to start over it.  The file is set
 * aside as settings.json.rejected, and egwd runs with the last file it ran
 * with, else the defaults, which become settings.json so the next start
 * does the same; the UI and /api/state say what was refused and why. */
static int settings_fallback(struct egw *e, const char *why)
{
	struct settings_error err = { 0 };
	char path[PATH_MAX + 16], lkg[PATH_MAX + 16], msg[512];
	const char *file = settings_path(e->settings);
	int r;

	snprintf(path, sizeof(path), "%s.rejected", file);
	snprintf(e->settings_rejected, sizeof(e->settings_rejected),
		 "%s was refused and kept as %s.rejected: %s", file, file, why);
	if (rename(file, path) < 0) {
		r = -errno;
		fprintf(stderr, "egwd: cannot set %s aside as %s: %s\n", file, path,
			strerror(errno));
		return r;
	}
	lkg_path(e->settings, lkg, sizeof(lkg));
	e->settings_source = "defaults";
	if (access(lkg, F_OK) == 0) {
		r = settings_load_from(e->settings, lkg, &err);
		if (r >= 0)
			e->settings_source = "last-known-good";
		else
			fprintf(stderr,
				"egwd: the last known good settings %s are not usable either: %s\n",
				lkg, settings_error_str(&err, msg, sizeof(msg)));
	}
	fprintf(stderr, "egwd: settings file %s refused (%s); kept as %s; running with the %s\n",
		file, why, path, e->settings_source);
	r = settings_save(e->settings);
	if (r < 0)
		fprintf(stderr, "egwd: writing %s: %s\n", file, strerror(-r));
	return 0;
}

/* Settings from file, then --set in order, then the dedicated flags.  The
 * command line is the user's own words for this run: a bad flag stops with
 * a message (exit 2).  A bad file does not (settings_fallback). */
static int load_settings(struct egw *e, const struct args *a)
{
	struct settings_error err = { 0 };
	char path[PATH_MAX], msg[512], key[128];
	json_t *v;
	int r;

	if (a->config)
		snprintf(path, sizeof(path), "%s", a->config);
	else if (snprintf(path, sizeof(path), "%s/settings.json", a->state_dir) >=
		 (int)sizeof(path))
		return -ENAMETOOLONG;
	r = settings_new(path, &e->settings);
	if (r < 0)
		return r;
	e->settings_source = "file";
	r = settings_load(e->settings, &err);
	if (r == -EGW_EJSON || r == -EGW_ESCHEMA) {
		r = settings_fallback(e, settings_error_str(&err, msg, sizeof(msg)));
		if (r < 0)
			return r;
	} else if (r < 0) {
		fprintf(stderr, "egwd: settings file %s: %s\n", path,
			settings_error_str(&err, msg, sizeof(msg)));
		return r;
	}
	r = devices_egw_pin_ids(e->settings);
	if (r < 0)
		fprintf(stderr, "egwd: saving the device ids to %s: %s\n", path, strerror(-r));
	else if (r > 0)
		fprintf(stderr, "egwd: %d device id(s) written to %s (ids are kept from now on)\n",
			r, path);
	for (unsigned i = 0; i < a->nsets; i++) {
		if (settings_parse_assignment(a->sets[i], key, sizeof(key), &v) < 0) {
			fprintf(stderr, "egwd: --set %s: expected KEY=VALUE\n", a->sets[i]);
			return -EINVAL;
		}
		r = settings_override(e->settings, key, v, &err);
		json_decref(v);
		if (r < 0) {
			fprintf(stderr, "egwd: --set %s: %s\n", a->sets[i],
				settings_error_str(&err, msg, sizeof(msg)));
			return r;
		}
	}
	if (a->port) {
		v = json_loads(a->port, JSON_DECODE_ANY, NULL);
		r = v ? settings_override(e->settings, "http.port", v, &err) : -EINVAL;
		json_decref(v);
		if (r < 0) {
			fprintf(stderr, "egwd: --port %s: expected an integer 1..65535\n", a->port);
			return -EINVAL;
		}
	}
	if (a->log_level) {
		v = json_string(a->log_level);
		r = v ? settings_override(e->settings, "log_level", v, &err) : -ENOMEM;
		json_decref(v);
		if (r < 0) {
			fprintf(stderr, "egwd: --log-level %s: %s\n", a->log_level,
				settings_error_str(&err, msg, sizeof(msg)));
			return r;
		}
	}
	return 0;
}

/* --check: GET /api/state on the configured port; 0 when it answers 200. */
static int check_running(const struct settings *s)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	char req[128], resp[64];
	const char *bind = settings_values(s)->http_bind;
	int fd, n = 0;

	sin.sin_port = htons((uint16_t)settings_values(s)->http_port);
	if (strcmp(bind, "0.0.0.0") == 0 || inet_pton(AF_INET, bind, &sin.sin_addr) != 1)
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 1;
	struct timeval tv = { .tv_sec = 3 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		goto fail;
	int len = snprintf(req, sizeof(req),
			   "GET /api/state HTTP/1.1\r\nHost: localhost\r\n"
			   "Connection: close\r\n\r\n");
	if (write(fd, req, (size_t)len) != len)
		goto fail;
	while (n < (int)sizeof(resp) - 1) {
		ssize_t k = read(fd, resp + n, sizeof(resp) - 1 - (size_t)n);
		if (k <= 0)
			break;
		n += (int)k;
	}
	resp[n] = 0;
	close(fd);
	if (strncmp(resp, "HTTP/1.1 200", 12) == 0 || strncmp(resp, "HTTP/1.0 200", 12) == 0)
		return 0;
	fprintf(stderr, "egwd --check: unexpected answer on port %u\n", ntohs(sin.sin_port));
	return 1;
fail:
	fprintf(stderr, "egwd --check: nothing answers on port %u: %s\n", ntohs(sin.sin_port),
		strerror(errno));
	close(fd);
	return 1;
}

/* ---- the ordered init list ------------------------------------------- */

static int init_token(struct egw *e)
{
	bool created = false;
	int r = web_token_load_or_create(e->state_dir, e->token, &created);
	if (r < 0) {
		log_error("main", "API token %s/api-token: %s", e->state_dir, egw_strerror(r));
		return r;
	}
	/* Where it is, never the token itself: stderr ends up in the journal
	 * and in docker logs, which others may read. */
	if (created)
		fprintf(stderr,
			"egwd: created the API token in %s/api-token (mode 0600); "
			"read it there to sign in to the web UI\n",
			e->state_dir);
	return 0;
}

static json_t *settings_section(void *ud)
{
	struct egw *e = ud;
	return json_pack("{s:s,s:s,s:s?}", "path", settings_path(e->settings), "source",
			 e->settings_source, "rejected",
			 e->settings_rejected[0] ? e->settings_rejected : NULL);
}

static int init_web(struct egw *e)
{
	int r = web_new(e, &e->web);
	if (r == -EADDRNOTAVAIL) {
		/* The address went away since it was saved (a new DHCP lease, a
		 * removed interface): listen everywhere rather than not at all. */
		struct settings_error err = { 0 };
		json_t *any = json_string("0.0.0.0");
		log_error("main",
			  "cannot listen on %s (no such address here): listening on 0.0.0.0",
			  settings_values(e->settings)->http_bind);
		snprintf(e->settings_rejected, sizeof(e->settings_rejected),
			 "http.bind: %s is not an address of this machine; listening on 0.0.0.0",
			 settings_values(e->settings)->http_bind);
		r = any ? settings_override(e->settings, "http.bind", any, &err) : -ENOMEM;
		json_decref(any);
		if (r >= 0)
			r = web_new(e, &e->web);
	}
	if (r >= 0)
		web_add_section(e->web, "settings", settings_section, e, true);
	if (r < 0) {
		log_error("main", "HTTP server on %s:%lld: %s",
			  settings_values(e->settings)->http_bind,
			  (long long)settings_values(e->settings)->http_port, egw_strerror(r));
		return r;
	}
	log_info("main", "listening on http://%s:%lld/", settings_values(e->settings)->http_bind,
		 (long long)settings_values(e->settings)->http_port);
	return 0;
}

static void fini_web(struct egw *e)
{
	web_free(e->web);
	e->web = NULL;
}

static int init_memtrim(struct egw *e);
static void fini_memtrim(struct egw *e);
static void memtrim_apply(struct egw *e);

struct step {
	const char *name;
	int (*init)(struct egw *e);
	void (*fini)(struct egw *e);
};

/* Brought up in this order, torn down in reverse.  A module that appears in
 * /api/state registers a section (web_add_section) in its init step, so
 * "web" comes early. */
static const struct step steps[] = {
	{ "token", init_token, NULL },
	{ "web", init_web, fini_web },
	{ "signer", crypto_egw_init, crypto_egw_fini },
	{ "store", store_egw_init, store_egw_fini },
	{ "devices", devices_egw_init, devices_egw_fini },
	{ "fcr", fcr_egw_init, fcr_egw_fini },
	/* the upload pipeline: after "signer" and "store" (it uses both) */
	{ "http", pipeline_http_init, pipeline_http_fini },
	{ "harvest", pipeline_harvest_init, pipeline_harvest_fini },
	{ "uploader", pipeline_uploader_init, pipeline_uploader_fini },
	{ "uplink", uplink_egw_init, uplink_egw_fini },
	{ "namequery", pipeline_name_init, pipeline_name_fini },
	/* last: device hooks tolerate a missing UI, and MQTT topics need the serial */
	{ "mqtt", mqtt_egw_init, mqtt_egw_fini },
	{ "proxy", proxy_egw_init, proxy_egw_fini },
	{ "webui", webui_egw_init, webui_egw_fini },
	{ "memory", init_memtrim, fini_memtrim },
};

/* ---- runtime ---------------------------------------------------------- */

static void update_gateway_state(struct egw *e, const char *reason)
{
	fsm_go(&e->gw, (unsigned)devices_egw_gateway_state(e), reason);
}

/* Applies the current settings to every module.  Returns 0, or the first
 * module's refusal with err saying why (the other modules have applied what
 * they could; the caller rolls back and applies again). */
static int apply_settings(struct egw *e, struct settings_error *err)
{
	char msg[256] = "";
	int lvl = log_parse_level(settings_values(e->settings)->log_level);
	int r, pr;

	if (lvl >= 0)
		log_set_level((enum log_level)lvl);
	if (e->web)
		web_apply_settings(e->web);
	r = devices_egw_apply(e, msg, sizeof(msg));
	if (r < 0) {
		snprintf(err->key, sizeof(err->key), "devices");
		snprintf(err->msg, sizeof(err->msg), "the device layer refused the list: %s",
			 msg[0] ? msg : egw_strerror(r));
	}
	store_egw_apply(e);
	mqtt_egw_apply(e);
	pr = proxy_egw_apply(e);
	if (pr < 0 && r >= 0) {
		r = pr;
		snprintf(err->key, sizeof(err->key), "%s",
			 pr == -EADDRNOTAVAIL ? "proxy.bind" : "proxy.port");
		snprintf(err->msg, sizeof(err->msg), "the Modbus proxy %s", e->proxy_error);
	}
	fcr_egw_apply(e);
	pipeline_apply_settings(e);
	uplink_egw_apply(e);
	memtrim_apply(e);
	update_gateway_state(e, "settings changed");
	return r < 0 ? r : 0;
}

/* After a successful start or change: this file is one egwd runs with. */
static void keep_last_good(struct egw *e)
{
	char lkg[PATH_MAX + 16];
	int r;

	lkg_path(e->settings, lkg, sizeof(lkg));
	r = settings_save_to(e->settings, lkg);
	if (r < 0)
		log_warn("main", "saving the last known good settings %s: %s", lkg,
			 egw_strerror(r));
}

/* A change that cannot be applied puts the settings back as they were and
 * applies those again; nothing is saved. */
static int settings_commit(struct egw *e, const json_t *patch, struct settings_error *err)
{
	struct settings_error ignored = { 0 };
	struct settings *snap = settings_snapshot(e->settings);
	const struct settings_values *nv, *ov;
	int r;

	if (!snap) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -ENOMEM;
	}
	r = settings_patch(e->settings, patch, err);
	if (r < 0) {
		settings_free(snap);
		return r;
	}
	r = web_check_bind(settings_values(e->settings)->http_bind);
	if (r < 0) {
		snprintf(err->key, sizeof(err->key), "http.bind");
		snprintf(err->msg, sizeof(err->msg), "cannot listen on %.60s: %s",
			 settings_values(e->settings)->http_bind, egw_strerror(r));
		log_error("main", "settings change not applied: %s: %s", err->key, err->msg);
		settings_rollback(e->settings, snap);
		return -EGW_ESCHEMA;
	}
	/* The listener moves after the answer; a port it cannot have would be
	 * saved, not applied, and stop the next start.  Checked when this
	 * change moves it: an unrelated change is not refused over it. */
	nv = settings_values(e->settings);
	ov = settings_values(snap);
	r = 0;
	if (ov->http_port != nv->http_port || strcmp(ov->http_bind, nv->http_bind) != 0)
		r = web_check_listen(e->web, nv->http_bind, (unsigned)nv->http_port, false);
	if (r < 0) {
		snprintf(err->key, sizeof(err->key), "http.port");
		snprintf(err->msg, sizeof(err->msg), "cannot listen on %.60s:%u: %s", nv->http_bind,
			 (unsigned)nv->http_port, egw_strerror(r));
		log_error("main", "settings change not applied: %s: %s", err->key, err->msg);
		settings_rollback(e->settings, snap);
		return -EGW_ESCHEMA;
	}
	/* HTTPS the same (a port it could not have at the start is tried
	 * again by the listener itself). */
	if (nv->http_tls &&
	    (!ov->http_tls || ov->http_tls_port != nv->http_tls_port ||
	     strcmp(ov->http_bind, nv->http_bind) != 0)) {
		r = web_check_listen(e->web, nv->http_bind, (unsigned)nv->http_tls_port, true);
		if (r < 0) {
			snprintf(err->key, sizeof(err->key), "http.tls_port");
			snprintf(err->msg, sizeof(err->msg), "cannot listen on %.60s:%u: %s",
				 nv->http_bind, (unsigned)nv->http_tls_port, egw_strerror(r));
			log_error("main", "settings change not applied: %s: %s", err->key,
				  err->msg);
			settings_rollback(e->settings, snap);
			return -EGW_ESCHEMA;
		}
	}
	r = apply_settings(e, err);
	if (r == 0) {
		r = settings_save(e->settings);
		if (r < 0) {
			err->key[0] = 0;
			snprintf(err->msg, sizeof(err->msg), "saving %s: %s",
				 settings_path(e->settings), egw_strerror(r));
		}
	} else if (r != -ENOMEM) {
		r = -EGW_ESCHEMA;
	}
	if (r < 0) {
		log_error("main", "settings change not applied: %s%s%s", err->key,
			  err->key[0] ? ": " : "", err->msg);
		settings_rollback(e->settings, snap);
		apply_settings(e, &ignored);
		return r;
	}
	settings_free(snap);
	keep_last_good(e);
	return 0;
}

/* The gateway's state decides what runs.  Entering "stopping" ends polling
 * (the stop is the cut: no reading is taken that could not be kept) and
 * seals what was collected since the last batch, so an orderly stop
 * (SIGTERM, a container restart) loses no reading; main() then lets that
 * batch reach the store, and the backend if it answers, before tearing the
 * modules down. */
static void gw_enter_stopping(struct fsm *f, unsigned from, const char *reason, void *ud)
{
	struct egw *e = ud;
	UNUSED(f);
	UNUSED(reason);
	if (from == GW_STARTING)
		return;
	devices_egw_fini(e);
	if (e->batch)
		batch_seal_now(e->batch);
}

static const struct fsm_handler gw_handlers[GW_STATE_COUNT] = {
	[GW_STOPPING] = { .enter = gw_enter_stopping },
};

/* systemd's watchdog: the loop proves it is alive by running this task. */
static int watchdog_run(struct task *t, usec_t now)
{
	UNUSED(t);
	UNUSED(now);
	sdnotify("WATCHDOG=1");
	return 0;
}

/* Half a minute after start, and then every memory.trim_interval_s (0:
 * never), hand free heap back to the kernel (start-up, a drained backlog and
 * a large settings document leave freed arenas behind), so private memory
 * follows the working set.  It costs microseconds. */
#define MEMTRIM_FIRST_S 30

static int memtrim_run(struct task *t, usec_t now)
{
	struct egw *e = container_of(t, struct egw, memtrim);
	UNUSED(now);
	mem_trim();
	e->memtrims++;
	return 0;
}

static json_t *memory_section(void *ud)
{
	struct egw *e = ud;
	struct mem_usage u;
	mem_usage_read(&u);
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "rss_kb", (json_int_t)u.rss_kb, "pss_kb",
			 (json_int_t)u.pss_kb, "private_kb", (json_int_t)u.private_kb,
			 "private_dirty_kb", (json_int_t)u.private_dirty_kb, "anon_kb",
			 (json_int_t)u.anon_kb, "trims", (json_int_t)e->memtrims);
}

/* (Re)schedule after a settings change: the first run MEMTRIM_FIRST_S after
 * start (sooner if the interval is shorter), then one every interval. */
static void memtrim_apply(struct egw *e)
{
	usec_t every = (usec_t)settings_values(e->settings)->memory_trim_interval_s * USEC_PER_SEC;
	usec_t first = MIN(every, (usec_t)MEMTRIM_FIRST_S * USEC_PER_SEC);
	usec_t since = now_usec() - e->started_us;

	if (every == e->memtrim.period && (every == 0 || e->memtrim.idx != SCHED_NOT_QUEUED))
		return;
	loop_task_cancel(e->loop, &e->memtrim);
	e->memtrim.period = every;
	if (every)
		loop_task_add(e->loop, &e->memtrim,
			      now_usec() +
				      (e->memtrims == 0 && since < first ? first - since : every));
}

static int init_memtrim(struct egw *e)
{
	e->memtrim = (struct task){ .name = "memtrim", .run = memtrim_run, .prio = 10 };
	memtrim_apply(e);
	if (e->web)
		web_add_section(e->web, "memory", memory_section, e, true);
	return 0;
}

static void fini_memtrim(struct egw *e)
{
	loop_task_cancel(e->loop, &e->memtrim);
}

static void start_sdnotify(struct egw *e)
{
	uint64_t wd = sdnotify_watchdog_usec();
	sdnotify("READY=1\nSTATUS=running");
	if (wd) {
		e->watchdog = (struct task){ .name = "watchdog",
					     .run = watchdog_run,
					     .period = (usec_t)(wd / 2) };
		loop_task_add(e->loop, &e->watchdog, now_usec() + (usec_t)(wd / 2));
	}
}

/* Run the loop until the last sealed batch is committed (bounded), then give
 * the uploader a short while to deliver what waits, stopping at its first
 * failure: what is not delivered stays in the store for the next start. */
static void drain_batches(struct egw *e)
{
	struct uploader_stats st0, st;
	struct store_stats ss;
	usec_t end = now_usec() + 5 * USEC_PER_SEC;

	while (e->batch && batch_busy(e->batch) && now_usec() < end)
		loop_run_once(e->loop, 20 * USEC_PER_MSEC);
	if (!e->uploader || !e->store)
		return;
	uploader_get_stats(e->uploader, &st0);
	uploader_kick(e->uploader);
	end = now_usec() + 2 * USEC_PER_SEC;
	for (;;) {
		store_get_stats(e->store, &ss);
		uploader_get_stats(e->uploader, &st);
		if (ss.backlog == 0 || st.failed > st0.failed || st.waiting_signer ||
		    now_usec() >= end)
			break;
		loop_run_once(e->loop, 20 * USEC_PER_MSEC);
	}
}

static void stop_now(struct egw *e)
{
	if (e->gw.state == GW_STOPPING)
		return;
	fsm_go(&e->gw, GW_STOPPING, e->stop_reason ? e->stop_reason : "shutdown");
	loop_stop(e->loop);
}

static void on_signal(struct loop *l, int signo, void *ud)
{
	struct egw *e = ud;
	UNUSED(l);
	if (signo == SIGHUP) {
		struct settings_error err = { 0 };
		char msg[512];
		struct settings *snap = settings_snapshot(e->settings);
		int r = snap ? settings_load(e->settings, &err) : -ENOMEM;
		if (r >= 0)
			r = apply_settings(e, &err);
		if (r < 0) {
			log_error("main", "SIGHUP: keeping the current settings: %s",
				  r == -ENOMEM ? "out of memory"
					       : settings_error_str(&err, msg, sizeof(msg)));
			if (snap) {
				settings_rollback(e->settings, snap);
				apply_settings(e, &err);
			}
			return;
		}
		settings_free(snap);
		keep_last_good(e);
		log_info("main", "SIGHUP: reloaded %s", settings_path(e->settings));
		return;
	}
	log_info("main", "%s: stopping", strsignal(signo));
	e->stop_reason = signo == SIGINT ? "SIGINT" : "SIGTERM";
	/* a battery under FCR control goes back to its own mode first (a
	 * second signal does not wait for it) */
	if (!e->stop_deferred && fcr_egw_stop(e, stop_now)) {
		e->stop_deferred = true;
		return;
	}
	stop_now(e);
}

int main(int argc, char **argv)
{
	struct egw e = { .exit_code = 0, .settings_commit = settings_commit };
	struct args a = { 0 };
	unsigned up = 0;
	int r;

	if (parse_args(argc, argv, &a) < 0)
		return 2;
#ifdef __GLIBC__
	/* One malloc arena: the worker threads' few allocations do not each
	 * keep an arena of their own (measured: 200-450 kB of private memory
	 * under load; bench/memstat.py). */
	mallopt(M_ARENA_MAX, 1);
#endif
	r = make_state_dir(a.state_dir);
	if (r < 0) {
		fprintf(stderr, "egwd: state directory %s: %s\n", a.state_dir, strerror(-r));
		return 1;
	}
	if (!realpath(a.state_dir, e.state_dir))
		snprintf(e.state_dir, sizeof(e.state_dir), "%s", a.state_dir);
	if (load_settings(&e, &a) < 0) {
		settings_free(e.settings);
		return 2;
	}
	int lvl = log_parse_level(settings_values(e.settings)->log_level);
	if (lvl >= 0)
		log_set_level((enum log_level)lvl);
	if (a.check) {
		r = check_running(e.settings);
		settings_free(e.settings);
		return r;
	}
	if (a.chip_cmd >= 0) {
		r = crypto_chip_command(e.settings, e.state_dir, (enum crypto_chip_cmd)a.chip_cmd);
		settings_free(e.settings);
		return r;
	}
	e.accept_new_identity = a.accept_new_identity;

	e.started_us = now_usec();
	e.started_wall_ms = wall_ms();
	fsm_init(&e.gw, &fsm_gateway_def, GW_STARTING, gw_handlers, &e, "gateway");
	r = loop_new(&e.loop);
	if (r < 0) {
		log_error("main", "event loop: %s", egw_strerror(r));
		settings_free(e.settings);
		return 1;
	}
	r = loop_on_signal(e.loop, on_signal, &e);
	if (r < 0) {
		log_error("main", "signals: %s", egw_strerror(r));
		e.exit_code = 1;
		goto out;
	}
	for (up = 0; up < ARRAY_SIZE(steps); up++) {
		r = steps[up].init(&e);
		if (r < 0) {
			log_error("main", "starting %s failed: %s", steps[up].name,
				  egw_strerror(r));
			e.exit_code = 1;
			goto out;
		}
	}
	update_gateway_state(&e, "started");
	if (e.settings_rejected[0] && e.webui)
		webui_notify(e.webui, "error", "settings", "settings: %s (running with the %s)",
			     e.settings_rejected, e.settings_source);
	keep_last_good(&e);
	start_sdnotify(&e);
	r = loop_run(e.loop);
	if (r < 0) {
		log_error("main", "event loop: %s", egw_strerror(r));
		e.exit_code = 1;
	}
out:
	fsm_go(&e.gw, GW_STOPPING, "shutdown");
	sdnotify("STOPPING=1");
	loop_task_cancel(e.loop, &e.watchdog);
	drain_batches(&e);
	while (up-- > 0)
		if (steps[up].fini)
			steps[up].fini(&e);
	loop_free(e.loop);
	settings_free(e.settings);
	log_info("main", "stopped");
	return e.exit_code;
}
