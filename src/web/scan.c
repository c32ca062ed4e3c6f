/* The device scan (/api/device/scan): Modbus endpoints on the networks the
 * user names, identified by SunSpec or a profile's serial register.  On
 * port 8899, and on a port that accepts the connection but leaves a Modbus
 * TCP request unanswered, the probe speaks Solarman V5 (a data logger): it
 * asks under logger serial 0, and a logger answers a request for another
 * serial under its own, which tells the serial; the device behind the
 * logger is then identified through it like any other. */
#include "web/webui_int.h"

/* ---- scan ----------------------------------------------------------------- */

static void probe_next(struct scan_probe *p);
static void probe_cb(void *ud, int err, const uint16_t *regs, unsigned count);
static void scan_fill(struct webui *u);

/* Frees the clients of finished probes and starts the next targets.  One
 * task for the whole scan: a task must not re-initialise or free the struct
 * it is embedded in from its own run() (the scheduler touches it after). */
int webui_scan_gc(struct task *t, usec_t now)
{
	struct scan *sc = container_of(t, struct scan, gc);
	struct webui *u = container_of(sc, struct webui, scan);
	(void)now;

	for (unsigned i = 0; i < WEBUI_SCAN_PARALLEL; i++) {
		struct scan_probe *p = &sc->probes[i];
		if (!p->active || !p->finished)
			continue;
		mb_client_free(p->client);
		p->client = NULL;
		p->active = false;
		sc->done++;
	}
	scan_fill(u);
	return 0;
}

static void probe_end(struct scan_probe *p)
{
	p->busy = false;
	p->finished = true;
	loop_task_add(p->u->e->loop, &p->u->scan.gc, loop_now(p->u->e->loop));
}

static void probe_found(struct scan_probe *p, const char *profile, const char *serial,
                        const char *manufacturer, bool sunspec)
{
	struct scan *sc = &p->u->scan;
	struct scan_result *res;

	if (sc->nresults == WEBUI_SCAN_RESULTS_MAX)
		return;
	res = &sc->results[sc->nresults++];
	*res = (struct scan_result){ .port = sc->targets[p->target].port, .unit = sc->unit,
	                             .sunspec = sunspec, .logger_serial = p->logger_serial };
	memcpy(res->host, sc->targets[p->target].host, sizeof(res->host));
	res->host[sizeof(res->host) - 1] = 0;
	snprintf(res->profile, sizeof(res->profile), "%s", profile ? profile : "");
	snprintf(res->serial, sizeof(res->serial), "%s", serial ? serial : "");
	snprintf(res->manufacturer, sizeof(res->manufacturer), "%s", manufacturer ? manufacturer : "");
}

static bool conn_error(int err)
{
	return err == -ETIMEDOUT || err == -ECONNREFUSED || err == -ECONNRESET ||
	       err == -EHOSTUNREACH || err == -ENETUNREACH || err == -ECANCELED || err == -EPIPE;
}

static struct mb_client_config probe_config(const struct scan_target *t, bool v5,
					    uint32_t logger)
{
	return (struct mb_client_config){
		.kind = v5 ? MB_TRANSPORT_SOLARMAN : MB_TRANSPORT_TCP, .host = t->host,
		.port = t->port, .logger_serial = logger,
		.timeout = v5 ? SCAN_SOLARMAN_TIMEOUT : SCAN_TIMEOUT,
		.connect_timeout = SCAN_TIMEOUT, .max_timeouts = 100,
		.backoff_min = 10 * USEC_PER_SEC,
	};
}

/* Replace the probe's client (from inside its callback: it is released
 * later) with one for V5 under logger serial `logger` (0: unknown yet), and
 * ask for the SunSpec marker.  Returns false when that failed. */
static bool probe_restart(struct scan_probe *p, uint32_t logger)
{
	struct mb_client_config cfg = probe_config(&p->u->scan.targets[p->target], true, logger);

	mb_client_free(p->client);
	p->client = NULL;
	p->v5 = true;
	p->logger_serial = logger;
	if (mb_client_new(p->u->e->loop, &cfg, &p->client) < 0 ||
	    mb_client_read(p->client, p->u->scan.unit, 3, 40000, 2, probe_cb, p) < 0)
		return false;
	p->busy = true;
	return true;
}

/* The answer to the V5 probe under serial 0: a logger answers under its
 * own serial (-EGW_ELOGGER); go on through it. */
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

	p->busy = false;
	if (!p->u->scan.running)
		return;
	if (p->v5 && !p->logger_serial) {
		probe_logger(p, err);
		return;
	}
	/* Connected, but no Modbus TCP answer: perhaps a V5 logger on a port of
	 * its own. */
	if (!p->v5 && p->step == 0 && err == -ETIMEDOUT && mb_client_connected(p->client)) {
		if (!probe_restart(p, 0))
			probe_end(p);
		return;
	}
	if (err < 0 && conn_error(err) && p->step <= 1) {
		probe_end(p); /* nothing listening, or not Modbus */
		return;
	}
	if (p->step == 0) {
		if (err == 0 && count == 2 && sunspec_is_marker(regs)) {
			p->step = 1; /* read the common model: manufacturer and serial */
			if (mb_client_read(p->client, p->u->scan.unit, 3, 40004, 64, probe_cb, p) == 0) {
				p->busy = true;
				return;
			}
			probe_found(p, "sunspec", NULL, NULL, true);
			probe_end(p);
			return;
		}
		p->step = 2;
		p->prof = 0;
	} else if (p->step == 1) {
		char mn[40] = "", sn[40] = "";
		if (err == 0 && count == 64) {
			reg_ascii(regs, 16, mn, sizeof(mn));
			reg_ascii(regs + 48, 16, sn, sizeof(sn));
		}
		probe_found(p, "sunspec", sn, mn, true);
		probe_end(p);
		return;
	} else if (p->step == 2) {
		/* The serial register of profile p->prof answered? */
		const struct profile *pr = all[p->prof];
		if (err == 0) {
			struct block_result br = { .b = { .fc = pr->serial->fc, .addr = pr->serial->addr,
			                                  .count = (uint16_t)count } };
			memcpy(br.regs, regs, count * sizeof(regs[0]));
			if (profile_decode_serial(pr, &br, 1, p->serial, sizeof(p->serial)) > 0) {
				if (!pr->frequency) {
					probe_found(p, pr->name, p->serial, pr->brand, false);
					probe_end(p);
					return;
				}
				p->step = 3; /* confirm by a plausible grid frequency */
				if (mb_client_read(p->client, p->u->scan.unit, pr->frequency->fc,
				                   pr->frequency->addr, pr->frequency->words, probe_cb, p) == 0) {
					p->busy = true;
					return;
				}
			}
		} else if (conn_error(err) && err != -ETIMEDOUT) {
			probe_end(p);
			return;
		}
		p->prof++;
	} else if (p->step == 3) {
		const struct profile *pr = all[p->prof];
		double hz;
		if (err == 0 && reg_decode(pr->frequency, regs, &hz) == 0) {
			hz = hz * (pr->frequency->field >= 0 ? pr->frequency->mul : 1) +
			     (pr->frequency->field >= 0 ? pr->frequency->add : 0);
			if (hz >= 45 && hz <= 65) {
				probe_found(p, pr->name, p->serial, pr->brand, false);
				probe_end(p);
				return;
			}
		}
		p->step = 2;
		p->prof++;
	}
	probe_next(p);
}

/* Tries the next profile with an identity register. */
static void probe_next(struct scan_probe *p)
{
	unsigned n;
	const struct profile *const *all = profile_all(&n);

	while (p->prof < n) {
		const struct profile *pr = all[p->prof];
		if (pr->serial && pr->sunspec_base == 0 && pr->serial->words <= PROFILE_MAX_BLOCK &&
		    (pr->serial->fc == 3 || pr->serial->fc == 4)) {
			if (mb_client_read(p->client, p->u->scan.unit, pr->serial->fc, pr->serial->addr,
			                   pr->serial->words, probe_cb, p) == 0) {
				p->busy = true;
				return;
			}
		}
		p->prof++;
	}
	/* Answers Modbus but matches no profile: list it, unidentified. */
	probe_found(p, NULL, NULL, NULL, false);
	probe_end(p);
}

static void probe_start(struct webui *u, struct scan_probe *p, unsigned target)
{
	bool v5 = u->scan.targets[target].port == SCAN_SOLARMAN_PORT;
	struct mb_client_config cfg = probe_config(&u->scan.targets[target], v5, 0);

	*p = (struct scan_probe){ .u = u, .target = target, .active = true, .v5 = v5 };
	if (mb_client_new(u->e->loop, &cfg, &p->client) < 0 ||
	    mb_client_read(p->client, u->scan.unit, 3, 40000, 2, probe_cb, p) < 0) {
		probe_end(p);
		return;
	}
	p->busy = true;
}

static void scan_fill(struct webui *u)
{
	struct scan *sc = &u->scan;
	bool any = false;

	for (unsigned i = 0; i < WEBUI_SCAN_PARALLEL; i++) {
		if (!sc->probes[i].active && sc->next < sc->ntargets)
			probe_start(u, &sc->probes[i], sc->next++);
		any |= sc->probes[i].active;
	}
	if (!any && sc->running) {
		sc->running = false;
		sc->finished_ms = wall_ms();
	}
}

void webui_scan_stop(struct webui *u)
{
	struct scan *sc = &u->scan;

	sc->running = false;
	loop_task_cancel(u->e->loop, &sc->gc);
	for (unsigned i = 0; i < WEBUI_SCAN_PARALLEL; i++) {
		struct scan_probe *p = &sc->probes[i];
		if (!p->active)
			continue;
		mb_client_free(p->client); /* callbacks see running == false */
		p->client = NULL;
		p->active = false;
	}
}

/* Hosts: comma separated IPv4 addresses or a.b.c.d/n (n >= 24).  Ports:
 * comma separated.  Fills the target list; returns 0 or -EINVAL/-E2BIG with
 * the field at fault in *ret_field. */
/* Scans (POST, with the token) may only reach the gateway's own
 * neighbourhood: loopback, the private and link-local ranges, and the subnets
 * of its interfaces.  egwd must not be a tool to probe other networks. */
static bool scan_allowed(uint32_t a)
{
	static const struct { uint32_t net, mask; } ranges[] = {
		{ 0x7F000000, 0xFF000000 }, /* 127.0.0.0/8 */
		{ 0x0A000000, 0xFF000000 }, /* 10.0.0.0/8 */
		{ 0xAC100000, 0xFFF00000 }, /* 172.16.0.0/12 */
		{ 0xC0A80000, 0xFFFF0000 }, /* 192.168.0.0/16 */
		{ 0xA9FE0000, 0xFFFF0000 }, /* 169.254.0.0/16 */
	};
	struct ifaddrs *ifs, *i;
	bool ok = false;

	for (size_t k = 0; k < ARRAY_SIZE(ranges); k++)
		if ((a & ranges[k].mask) == ranges[k].net)
			return true;
	if (getifaddrs(&ifs) < 0)
		return false;
	for (i = ifs; i && !ok; i = i->ifa_next) {
		if (!i->ifa_addr || !i->ifa_netmask || i->ifa_addr->sa_family != AF_INET)
			continue;
		uint32_t ia = ntohl(((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr);
		uint32_t im = ntohl(((struct sockaddr_in *)i->ifa_netmask)->sin_addr.s_addr);
		ok = im != 0 && (a & im) == (ia & im);
	}
	freeifaddrs(ifs);
	return ok;
}

unsigned webui_local_networks(const struct ifaddrs *ifs, char *buf, size_t n)
{
	const struct ifaddrs *i;
	unsigned count = 0;
	size_t off = 0;

	if (n)
		buf[0] = 0;
	for (i = ifs; i; i = i->ifa_next) {
		char net[INET_ADDRSTRLEN], item[INET_ADDRSTRLEN + 8];
		struct in_addr a;
		uint32_t ia, im;
		int bits;

		if (!i->ifa_addr || !i->ifa_netmask || i->ifa_addr->sa_family != AF_INET ||
		    !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
			continue;
		ia = ntohl(((const struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr);
		im = ntohl(((const struct sockaddr_in *)i->ifa_netmask)->sin_addr.s_addr);
		bits = __builtin_popcount(im);
		if (bits >= 31)
			continue; /* point to point: no neighbours */
		if (bits < 24)
			bits = 24;
		a.s_addr = htonl(ia & (0xFFFFFFFFu << (32 - bits)));
		inet_ntop(AF_INET, &a, net, sizeof(net));
		snprintf(item, sizeof(item), "%s/%d", net, bits);
		/* the same network on two interfaces (or twice on one) once */
		if (off && strstr(buf, item)) {
			const char *at = strstr(buf, item);
			size_t len = strlen(item);
			if ((at == buf || at[-1] == ',') && (at[len] == ',' || at[len] == 0))
				continue;
		}
		if (off + strlen(item) + 2 > n)
			break;
		off += (size_t)snprintf(buf + off, n - off, "%s%s", off ? "," : "", item);
		count++;
	}
	return count;
}

int webui_scan_targets(struct scan *sc, const char *hosts, const char *ports, const char **ret_field)
{
	uint16_t plist[16];
	unsigned np = 0;
	char buf[256], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", ports);
	for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		unsigned long p;
		if (np == ARRAY_SIZE(plist) || webui_parse_uint(tok, 1, 65535, &p) < 0) {
			*ret_field = "ports";
			return -EINVAL;
		}
		plist[np++] = (uint16_t)p;
	}
	if (np == 0) {
		*ret_field = "ports";
		return -EINVAL;
	}
	sc->ntargets = 0;
	snprintf(buf, sizeof(buf), "%s", hosts);
	for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		char *slash = strchr(tok, '/');
		unsigned long bits = 32;
		struct in_addr a;
		uint32_t base, nhosts;

		if (slash) {
			*slash = 0;
			if (webui_parse_uint(slash + 1, 24, 32, &bits) < 0) {
				*ret_field = "hosts";
				return -EINVAL;
			}
		}
		if (inet_pton(AF_INET, tok, &a) != 1) {
			*ret_field = "hosts";
			return -EINVAL;
		}
		nhosts = 1u << (32 - bits);
		base = ntohl(a.s_addr) & ~(nhosts - 1);
		if (!scan_allowed(base) || !scan_allowed(base + nhosts - 1)) {
			*ret_field = "hosts";
			return -EACCES;
		}
		for (uint32_t h = 0; h < nhosts; h++) {
			struct in_addr x = { .s_addr = htonl(base + h) };
			if (nhosts > 2 && (h == 0 || h == nhosts - 1))
				continue; /* network and broadcast addresses */
			for (unsigned k = 0; k < np; k++) {
				if (sc->ntargets == WEBUI_SCAN_TARGETS_MAX) {
					*ret_field = "hosts";
					return -E2BIG;
				}
				inet_ntop(AF_INET, &x, sc->targets[sc->ntargets].host,
				          sizeof(sc->targets[0].host));
				sc->targets[sc->ntargets++].port = plist[k];
			}
		}
	}
	if (sc->ntargets == 0) {
		*ret_field = "hosts";
		return -EINVAL;
	}
	return 0;
}

static json_t *scan_json(const struct scan *sc)
{
	json_t *res = json_array();

	for (unsigned i = 0; res && i < sc->nresults; i++) {
		const struct scan_result *r = &sc->results[i];
		json_t *o = json_pack("{s:s,s:i,s:i,s:s?,s:s?,s:s?,s:b}", "host", r->host,
		                      "port", r->port, "unit_id", r->unit, "profile",
		                      r->profile[0] ? r->profile : NULL, "serial",
		                      r->serial[0] ? r->serial : NULL, "manufacturer",
		                      r->manufacturer[0] ? r->manufacturer : NULL,
		                      "sunspec", r->sunspec);
		if (o && r->logger_serial) {
			json_object_set_new(o, "connection", json_string("solarman"));
			json_object_set_new(o, "logger_serial", json_integer(r->logger_serial));
		}
		json_array_append_new(res, o);
	}
	return json_pack("{s:b,s:I,s:I,s:i,s:i,s:s,s:s,s:o}", "running", sc->running, "started_ms",
	                 (json_int_t)sc->started_ms, "finished_ms", (json_int_t)sc->finished_ms,
	                 "total", sc->ntargets, "done", sc->done, "hosts", sc->hosts_arg, "ports",
	                 sc->ports_arg, "results", res ? res : json_array());
}

/* GET: the last scan's state and results; it starts nothing. */
int webui_h_scan(struct web_request *rq)
{
	struct webui *u = webui_of(rq);

	if (webui_query(rq, "hosts") || webui_query(rq, "ports"))
		return web_reply_error(rq, 405, "a scan is started with POST /api/device/scan, the "
		                       "token and a JSON body {hosts, ports, unit_id}; GET only "
		                       "reads the last scan's results", NULL);
	return web_reply_json(rq, 200, json_pack("{s:o}", "scan", scan_json(&u->scan)));
}

/* "hosts"/"ports" of a scan body: a string (comma separated) or an array of
 * strings and numbers, joined into buf.  Returns 0 or -EINVAL. */
static int scan_list(const json_t *v, char *buf, size_t n)
{
	size_t off = 0, i;
	const json_t *e;

	buf[0] = 0;
	if (json_is_string(v)) {
		if (json_string_length(v) >= n)
			return -EINVAL;
		snprintf(buf, n, "%s", json_string_value(v));
		return 0;
	}
	if (!json_is_array(v))
		return -EINVAL;
	json_array_foreach(v, i, e) {
		int k;
		if (json_is_string(e))
			k = snprintf(buf + off, n - off, "%s%s", off ? "," : "", json_string_value(e));
		else if (json_is_integer(e))
			k = snprintf(buf + off, n - off, "%s%" JSON_INTEGER_FORMAT, off ? "," : "",
			             json_integer_value(e));
		else
			return -EINVAL;
		if (k < 0 || (size_t)k >= n - off)
			return -EINVAL;
		off += (size_t)k;
	}
	return 0;
}

/* POST {"hosts": "192.168.1.0/24,10.0.0.5" | [...] | "local", "ports": "502"
 * (default), "unit_id": 1 (default)}: the hosts are required, the user's
 * explicit choice; "local" (the gateway's own networks) only when asked. */
int webui_h_scan_post(struct web_request *rq)
{
	struct webui *u = webui_of(rq);
	struct scan *sc = &u->scan;
	const char *field = NULL;
	unsigned long unit = 1;
	char nets[256]; /* as long as scan_targets takes */
	char hosts[256], ports[128] = "502", err[160], who[64];
	struct scan tmp;
	json_t *o;
	int r;

	o = webui_body_json(rq, err, sizeof(err));
	if (!o)
		return web_reply_error(rq, 400, err, "body");
	r = json_object_get(o, "hosts") ? scan_list(json_object_get(o, "hosts"), hosts, sizeof(hosts))
	                                : -EINVAL;
	if (r < 0 || !hosts[0]) {
		json_decref(o);
		return web_reply_error(rq, 400, "hosts: required, IPv4 addresses or a.b.c.d/24..32 "
		                       "(a string, comma separated, or an array), or \"local\"", "hosts");
	}
	if (json_object_get(o, "ports") &&
	    scan_list(json_object_get(o, "ports"), ports, sizeof(ports)) < 0) {
		json_decref(o);
		return web_reply_error(rq, 400, "ports: comma separated 1..65535", "ports");
	}
	r = webui_opt_uint(o, "unit_id", 0, 255, &unit);
	json_decref(o);
	if (r < 0)
		return web_reply_error(rq, 400, "unit_id: 0..255", "unit_id");
	if (strcmp(hosts, "local") == 0) {
		/* The subnets of the gateway's own interfaces (on a board: the LAN
		 * with the inverters).  Only when asked: never by default. */
		struct ifaddrs *ifs;

		if (getifaddrs(&ifs) < 0)
			return web_reply_error(rq, 500, "hosts: cannot list the network interfaces", "hosts");
		r = (int)webui_local_networks(ifs, nets, sizeof(nets));
		freeifaddrs(ifs);
		if (r == 0)
			return web_reply_error(rq, 400, "hosts: this gateway has no IPv4 network "
			                                "besides loopback", "hosts");
		snprintf(hosts, sizeof(hosts), "%s", nets);
	}
	/* Parse into a scratch copy so a bad request leaves the last results. */
	r = webui_scan_targets(&tmp, hosts, ports, &field);
	if (r < 0)
		return web_reply_error(rq, 400, r == -E2BIG ? "too many targets (at most 1024 host:port pairs)"
		                                : r == -EACCES ? "hosts: only the gateway's own networks "
		                                                 "may be scanned (loopback, private and "
		                                                 "link-local ranges, its interfaces' subnets)"
		                                            : strcmp(field, "ports") == 0
		                                                ? "ports: comma separated 1..65535"
		                                                : "hosts: comma separated IPv4 addresses or a.b.c.d/24..32",
		                       field);
	if (!webui_limit(&u->scan_limit, rq, loop_now(u->e->loop)))
		return web_reply_error(rq, 429, "too many scans: at most 3 a minute from one address, "
		                       "6 in all", NULL);
	webui_client_addr(rq, who, sizeof(who));
	log_info("webui", "scan by client %s (token): hosts %s ports %s unit %lu, %u targets", who,
	         hosts, ports, unit, tmp.ntargets);
	webui_scan_stop(u);
	memcpy(sc->targets, tmp.targets, sizeof(tmp.targets[0]) * tmp.ntargets);
	sc->ntargets = tmp.ntargets;
	sc->next = sc->done = sc->nresults = 0;
	sc->unit = (uint8_t)unit;
	sc->running = true;
	sc->started_ms = wall_ms();
	sc->finished_ms = 0;
	snprintf(sc->hosts_arg, sizeof(sc->hosts_arg), "%s", hosts);
	snprintf(sc->ports_arg, sizeof(sc->ports_arg), "%s", ports);
	scan_fill(u);
	return web_reply_json(rq, 202, json_pack("{s:o}", "scan", scan_json(sc)));
}
