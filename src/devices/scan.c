/* The LAN scan; see scan.h. */
#include "devices/scan.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/device_int.h"
#include "devices/identify.h"
#include "devices/p1.h"

#define SCAN_TIMEOUT (400 * USEC_PER_MSEC)
#define SCAN_SOLARMAN_PORT 8899                  /* a Solarman V5 logger's port */
#define SCAN_SOLARMAN_TIMEOUT (2 * USEC_PER_SEC) /* loggers answer slowly */
/* A P1 meter sends a telegram every 1 s (DSMR 5) to 10 s (DSMR 2.2 to 4):
 * a bridge is given one interval and a telegram's transmission. */
#define SCAN_P1_LISTEN (11 * USEC_PER_SEC)

struct scan_result {
	char host[48];
	uint16_t port;
	uint8_t unit;
	char profile[32];
	char serial[DEV_SERIAL_LEN];
	char manufacturer[40];
	bool sunspec;
	bool p1;                /* a P1 meter's telegrams (unit and sunspec mean nothing) */
	uint32_t logger_serial; /* behind a Solarman V5 logger: its serial; else 0 */
};

enum probe_step {
	STEP_SS_MARKER, /* the SunSpec marker at 40000 */
	STEP_SS_COMMON, /* the SunSpec common model: manufacturer and serial */
	STEP_SERIAL,    /* the serial register of profile prof */
	STEP_FREQUENCY, /* profile prof's frequency, confirming its serial */
};

struct scan_probe {
	struct scan *sc;
	struct mb_client *client;
	bool active;
	bool finished; /* result recorded; client freed by the gc task */
	unsigned target;
	enum probe_step step;
	unsigned prof;
	struct mb_block b; /* the block of the request in flight */
	char serial[40];
	bool v5;                /* speaking Solarman V5 (port 8899, or no Modbus TCP answer) */
	uint32_t logger_serial; /* a Solarman logger's, once learnt */
	bool found;             /* a result was recorded */
	bool reached;           /* the port took a connection */
	/* Then, when nothing answered: listening for P1 telegrams. */
	bool listening;
	int fd;
	struct loop_io io;
	struct task deadline;
	struct p1_parser *parser;
};

struct scan {
	struct loop *loop;
	struct task gc; /* frees finished probes' clients, starts the next */
	bool running;
	int64_t started_ms, finished_ms;
	unsigned ntargets, next, done;
	uint8_t unit;
	struct scan_target targets[SCAN_TARGETS_MAX];
	struct scan_probe probes[SCAN_PARALLEL];
	struct scan_result results[SCAN_RESULTS_MAX];
	unsigned nresults;
	char hosts_arg[256], ports_arg[128];
};

static void probe_next(struct scan_probe *p);
static void scan_fill(struct scan *sc);
static int listen_start(struct scan_probe *p);
static void listen_close(struct scan_probe *p);

/* One task for the whole scan: a task must not re-initialise or free the
 * struct it is embedded in from its own run() (the scheduler touches it
 * after), and a client must not be freed from its own callback. */
static int scan_gc(struct task *t, usec_t now)
{
	struct scan *sc = container_of(t, struct scan, gc);
	(void)now;

	for (unsigned i = 0; i < SCAN_PARALLEL; i++) {
		struct scan_probe *p = &sc->probes[i];
		if (!p->active || !p->finished)
			continue;
		if (p->client && mb_client_stats(p->client)->connects)
			p->reached = true;
		mb_client_free(p->client);
		p->client = NULL;
		/* A port that took the connection but answered neither Modbus nor
		 * V5: perhaps a P1 bridge, which only talks when the meter does. */
		if (!p->found && p->reached && !p->listening && listen_start(p) == 0)
			continue;
		listen_close(p);
		p->active = false;
		sc->done++;
	}
	scan_fill(sc);
	return 0;
}

static void probe_end(struct scan_probe *p)
{
	p->finished = true;
	loop_task_add(p->sc->loop, &p->sc->gc, loop_now(p->sc->loop));
}

static void probe_found(struct scan_probe *p, const char *profile, const char *serial,
			const char *manufacturer, bool sunspec)
{
	struct scan *sc = p->sc;
	struct scan_result *res;

	p->found = true;
	if (sc->nresults == SCAN_RESULTS_MAX)
		return;
	res = &sc->results[sc->nresults++];
	*res = (struct scan_result){ .port = sc->targets[p->target].port,
				     .unit = sc->unit,
				     .sunspec = sunspec,
				     .logger_serial = p->logger_serial,
				     .p1 = p->listening };
	_Static_assert(sizeof(res->host) == sizeof(sc->targets[0].host), "host sizes match");
	memcpy(res->host, sc->targets[p->target].host, sizeof(res->host));
	res->host[sizeof(res->host) - 1] = 0;
	snprintf(res->profile, sizeof(res->profile), "%s", profile ? profile : "");
	snprintf(res->serial, sizeof(res->serial), "%s", serial ? serial : "");
	snprintf(res->manufacturer, sizeof(res->manufacturer), "%s",
		 manufacturer ? manufacturer : "");
}

static void probe_cb(void *ud, int err, const uint16_t *regs, unsigned count);

/* The peer sent bytes that are no answer of the protocol asked. */
static bool garbled(int err)
{
	switch (-err) {
	case EGW_EFRAME:
	case EGW_ECRC:
	case EGW_EPROTO:
	case EGW_ELENGTH:
	case EGW_EFUNCTION:
		return true;
	default:
		return false;
	}
}

/* Queues the read of block b; false when it cannot be queued. */
static bool probe_read(struct scan_probe *p, const struct mb_block *b)
{
	p->b = *b;
	return mb_client_read(p->client, p->sc->unit, b->fc, b->addr, b->count, probe_cb, p) == 0;
}

static struct mb_client_config probe_config(const struct scan_target *t, bool v5, uint32_t logger)
{
	return (struct mb_client_config){
		.kind = v5 ? MB_TRANSPORT_SOLARMAN : MB_TRANSPORT_TCP,
		.host = t->host,
		.port = t->port,
		.logger_serial = logger,
		.timeout = v5 ? SCAN_SOLARMAN_TIMEOUT : SCAN_TIMEOUT,
		.connect_timeout = SCAN_TIMEOUT,
		.max_timeouts = 100,
		.backoff_min = 10 * USEC_PER_SEC,
	};
}

/* Replaces the probe's client (from inside its callback: the old one is
 * released later) with one for V5 under logger serial `logger` (0: not
 * known yet), and asks for the SunSpec marker.  False when that failed. */
static bool probe_restart(struct scan_probe *p, uint32_t logger)
{
	struct mb_client_config cfg = probe_config(&p->sc->targets[p->target], true, logger);
	struct mb_block b = { .fc = REG_FC_HOLDING, .addr = 40000, .count = 2 };

	if (mb_client_stats(p->client)->connects)
		p->reached = true;
	mb_client_free(p->client);
	p->client = NULL;
	p->v5 = true;
	p->logger_serial = logger;
	p->step = STEP_SS_MARKER;
	return mb_client_new(p->sc->loop, &cfg, &p->client) == 0 && probe_read(p, &b);
}

/* The answer to the V5 probe under serial 0: a logger answers under its
 * own serial (-EGW_ELOGGER), which tells it; go on through it. */
static void probe_logger(struct scan_probe *p, int err)
{
	uint32_t seen = mb_client_stats(p->client)->logger_serial_seen;

	if (err != -EGW_ELOGGER || seen == 0) {
		probe_end(p); /* no logger: nothing answered in V5 */
		return;
	}
	if (!probe_restart(p, seen)) {
		probe_found(p, NULL, NULL, NULL, false); /* a logger, at least */
		probe_end(p);
	}
}

static void probe_cb(void *ud, int err, const uint16_t *regs, unsigned count)
{
	struct scan_probe *p = ud;
	unsigned n;
	const struct profile *const *all = profile_all(&n);
	const struct profile *pr = p->prof < n ? all[p->prof] : NULL;
	struct mb_block b;

	if (!p->sc->running)
		return;
	if (p->v5 && !p->logger_serial) {
		probe_logger(p, err);
		return;
	}
	/* Connected, but no Modbus TCP answer (silence, or bytes that are no
	 * MBAP frame: a logger's heartbeat, a P1 bridge's telegram): perhaps a
	 * V5 logger on a port of its own; after that, perhaps a P1 bridge. */
	if (!p->v5 && p->step == STEP_SS_MARKER &&
	    ((err == -ETIMEDOUT && mb_client_connected(p->client)) || garbled(err))) {
		if (!probe_restart(p, 0))
			probe_end(p);
		return;
	}
	switch (p->step) {
	case STEP_SS_MARKER:
		if (device_link_error(err)) {
			probe_end(p); /* nothing listening, or not Modbus */
			return;
		}
		if (err == 0 && count >= 2 && sunspec_is_marker(regs)) {
			p->step = STEP_SS_COMMON;
			b = (struct mb_block){ .fc = REG_FC_HOLDING,
					       .addr = 40000 + IDENT_SS_COMMON_OFFSET,
					       .count = IDENT_SS_COMMON_WORDS };
			if (probe_read(p, &b))
				return;
			probe_found(p, "sunspec", NULL, NULL, true);
			probe_end(p);
			return;
		}
		p->step = STEP_SERIAL;
		p->prof = 0;
		break;
	case STEP_SS_COMMON: {
		char mn[40], sn[40];
		ident_sunspec_common(err == 0 ? regs : NULL, err == 0 ? count : 0, mn, sizeof(mn),
				     sn, sizeof(sn));
		probe_found(p, "sunspec", sn, mn, true);
		probe_end(p);
		return;
	}
	case STEP_SERIAL:
		if (err == 0 &&
		    ident_serial(pr, &p->b, regs, count, p->serial, sizeof(p->serial)) > 0) {
			if (!pr->frequency) {
				probe_found(p, pr->name, p->serial, pr->brand, false);
				probe_end(p);
				return;
			}
			p->step = STEP_FREQUENCY;
			if (ident_block(pr->frequency, &b) == 0 && probe_read(p, &b))
				return;
			p->step = STEP_SERIAL;
		} else if (device_link_error(err) && err != -ETIMEDOUT) {
			/* the connection went away; a timeout is a device that
			 * ignores registers it does not have */
			probe_end(p);
			return;
		}
		p->prof++;
		break;
	case STEP_FREQUENCY:
		if (err == 0 && ident_frequency(pr, &p->b, regs, count) == 0) {
			probe_found(p, pr->name, p->serial, pr->brand, false);
			probe_end(p);
			return;
		}
		p->step = STEP_SERIAL;
		p->prof++;
		break;
	}
	probe_next(p);
}

/* Reads the serial register of the next profile that has one. */
static void probe_next(struct scan_probe *p)
{
	unsigned n;
	const struct profile *const *all = profile_all(&n);
	struct mb_block b;

	for (; p->prof < n; p->prof++) {
		const struct profile *pr = all[p->prof];
		if (pr->serial && pr->sunspec_base == 0 && ident_block(pr->serial, &b) == 0 &&
		    probe_read(p, &b))
			return;
	}
	/* Answers Modbus but matches no profile: list it, unidentified. */
	probe_found(p, NULL, NULL, NULL, false);
	probe_end(p);
}

/* ---- listening for a P1 bridge ------------------------------------------ */

static void listen_close(struct scan_probe *p)
{
	if (!p->listening)
		return;
	loop_task_cancel(p->sc->loop, &p->deadline);
	if (p->fd >= 0) {
		loop_io_del(p->sc->loop, &p->io);
		close(p->fd);
		p->fd = -1;
	}
	p1_parser_free(p->parser); /* never from its own callback: from gc or stop */
	p->parser = NULL;
	p->listening = false;
}

/* Stops listening: the socket now, the parser later (this may run inside its
 * callback). */
static void listen_end(struct scan_probe *p)
{
	if (p->finished)
		return;
	loop_task_cancel(p->sc->loop, &p->deadline);
	loop_io_del(p->sc->loop, &p->io);
	close(p->fd);
	p->fd = -1;
	probe_end(p);
}

static void listen_telegram(void *ud, const struct p1_telegram *t)
{
	struct scan_probe *p = ud;

	if (p->finished)
		return; /* a second telegram in the same read */
	probe_found(p, "p1", t->serial, NULL, false);
	listen_end(p);
}

static void listen_io(struct loop_io *io, uint32_t events)
{
	struct scan_probe *p = container_of(io, struct scan_probe, io);
	struct p1_stats st;
	char buf[2048];
	ssize_t n;
	UNUSED(events);

	n = read(p->fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		listen_end(p); /* refused, reset or closed: no bridge */
		return;
	}
	p1_parser_feed(p->parser, buf, (size_t)n);
	if (p->finished)
		return;
	/* A bridge may be joined mid-telegram, but a whole telegram's worth of
	 * bytes without one is some other talkative service. */
	p1_parser_stats(p->parser, &st);
	if (st.skipped + st.crc_errors + st.oversize + st.cut > P1_TELEGRAM_MAX)
		listen_end(p);
}

static int listen_deadline(struct task *t, usec_t now)
{
	struct scan_probe *p = container_of(t, struct scan_probe, deadline);
	UNUSED(now);
	listen_end(p);
	return 0;
}

/* Connects again and listens up to SCAN_P1_LISTEN for a telegram.  Returns
 * 0, or -errno when it cannot start (the probe then ends as it is). */
static int listen_start(struct scan_probe *p)
{
	const struct scan_target *tg = &p->sc->targets[p->target];
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(tg->port) };
	int r;

	if (inet_pton(AF_INET, tg->host, &a.sin_addr) != 1)
		return -EINVAL;
	r = p1_parser_new(listen_telegram, p, &p->parser);
	if (r < 0)
		return r;
	p->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0) {
		r = -errno;
		goto out_parser;
	}
	/* Only reading: a refused or failed connect shows as EPOLLERR, and the
	 * read then tells why. */
	if (connect(p->fd, (const struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
		r = -errno;
		goto out_fd;
	}
	r = loop_io_add(p->sc->loop, &p->io, p->fd, EPOLLIN, listen_io);
	if (r < 0)
		goto out_fd;
	p->deadline =
		(struct task){ .name = "scan-p1", .run = listen_deadline, .idx = SCHED_NOT_QUEUED };
	loop_task_add(p->sc->loop, &p->deadline, loop_now(p->sc->loop) + SCAN_P1_LISTEN);
	p->listening = true;
	p->finished = false;
	return 0;

out_fd:
	close(p->fd);
	p->fd = -1;
out_parser:
	p1_parser_free(p->parser);
	p->parser = NULL;
	return r;
}

static void probe_start(struct scan *sc, struct scan_probe *p, unsigned target)
{
	bool v5 = sc->targets[target].port == SCAN_SOLARMAN_PORT;
	struct mb_client_config cfg = probe_config(&sc->targets[target], v5, 0);
	struct mb_block b = { .fc = REG_FC_HOLDING, .addr = 40000, .count = 2 };

	*p = (struct scan_probe){ .sc = sc,
				  .target = target,
				  .active = true,
				  .step = STEP_SS_MARKER,
				  .v5 = v5,
				  .fd = -1 };
	if (mb_client_new(sc->loop, &cfg, &p->client) < 0 || !probe_read(p, &b))
		probe_end(p);
}

static void scan_fill(struct scan *sc)
{
	bool any = false;

	for (unsigned i = 0; i < SCAN_PARALLEL; i++) {
		if (!sc->probes[i].active && sc->running && sc->next < sc->ntargets)
			probe_start(sc, &sc->probes[i], sc->next++);
		any |= sc->probes[i].active;
	}
	if (!any && sc->running) {
		sc->running = false;
		sc->finished_ms = wall_ms();
	}
}

int scan_new(struct loop *l, struct scan **ret)
{
	struct scan *sc = calloc(1, sizeof(*sc));

	if (!sc)
		return -ENOMEM;
	sc->loop = l;
	sc->gc = (struct task){ .name = "scan", .run = scan_gc, .idx = SCHED_NOT_QUEUED };
	*ret = sc;
	return 0;
}

void scan_stop(struct scan *sc)
{
	sc->running = false;
	loop_task_cancel(sc->loop, &sc->gc);
	for (unsigned i = 0; i < SCAN_PARALLEL; i++) {
		struct scan_probe *p = &sc->probes[i];
		if (!p->active)
			continue;
		mb_client_free(p->client); /* its callback sees running == false */
		p->client = NULL;
		listen_close(p);
		p->active = false;
	}
}

void scan_free(struct scan *sc)
{
	if (!sc)
		return;
	scan_stop(sc);
	free(sc);
}

void scan_start(struct scan *sc, const struct scan_target *targets, unsigned n, uint8_t unit,
		const char *hosts, const char *ports)
{
	scan_stop(sc);
	n = MIN(n, (unsigned)SCAN_TARGETS_MAX);
	memcpy(sc->targets, targets, n * sizeof(*targets));
	sc->ntargets = n;
	sc->next = sc->done = sc->nresults = 0;
	sc->unit = unit;
	sc->running = true;
	sc->started_ms = wall_ms();
	sc->finished_ms = 0;
	snprintf(sc->hosts_arg, sizeof(sc->hosts_arg), "%s", hosts);
	snprintf(sc->ports_arg, sizeof(sc->ports_arg), "%s", ports);
	scan_fill(sc);
}

json_t *scan_json(const struct scan *sc)
{
	json_t *res = json_array();

	if (!res)
		return NULL;
	for (unsigned i = 0; i < sc->nresults; i++) {
		const struct scan_result *r = &sc->results[i];
		json_t *o;

		if (r->p1) {
			o = json_pack("{s:s,s:i,s:s,s:s,s:s?}", "host", r->host, "port", r->port,
				      "profile", "p1", "connection", "tcp", "serial",
				      r->serial[0] ? r->serial : NULL);
			if (json_array_append_new(res, o) < 0) {
				json_decref(res);
				return NULL;
			}
			continue;
		}
		o = json_pack("{s:s,s:i,s:i,s:s?,s:s?,s:s?,s:b}", "host", r->host, "port", r->port,
			      "unit_id", r->unit, "profile", r->profile[0] ? r->profile : NULL,
			      "serial", r->serial[0] ? r->serial : NULL, "manufacturer",
			      r->manufacturer[0] ? r->manufacturer : NULL, "sunspec", r->sunspec);
		if (o && r->logger_serial &&
		    (json_object_set_new(o, "connection", json_string("solarman")) < 0 ||
		     json_object_set_new(o, "logger_serial", json_integer(r->logger_serial)) < 0)) {
			json_decref(o);
			o = NULL;
		}
		if (json_array_append_new(res, o) < 0) {
			json_decref(res);
			return NULL;
		}
	}
	return json_pack("{s:b,s:I,s:I,s:i,s:i,s:s,s:s,s:o}", "running", sc->running, "started_ms",
			 (json_int_t)sc->started_ms, "finished_ms", (json_int_t)sc->finished_ms,
			 "total", sc->ntargets, "done", sc->done, "hosts", sc->hosts_arg, "ports",
			 sc->ports_arg, "results", res);
}
