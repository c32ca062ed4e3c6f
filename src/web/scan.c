/* The device scan's HTTP side (/api/device/scan): the request's hosts and
 * ports, the networks a scan may reach, and the answers.  The probing and
 * identification are the device layer's (devices/scan.h). */
#include "web/webui_int.h"

/* Scans (POST, with the token) may only reach the gateway's own
 * neighbourhood: loopback, the private and link-local ranges, and the subnets
 * of its interfaces.  egwd must not be a tool to probe other networks. */
static bool scan_allowed(uint32_t a)
{
	static const struct {
		uint32_t net, mask;
	} ranges[] = {
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

/* Hosts: comma separated IPv4 addresses or a.b.c.d/n (n >= 24).  Ports:
 * comma separated. */
int webui_scan_targets(struct scan_target *targets, unsigned *ret_n, const char *hosts,
		       const char *ports, const char **ret_field)
{
	unsigned n = 0;
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
				if (n == SCAN_TARGETS_MAX) {
					*ret_field = "hosts";
					return -E2BIG;
				}
				inet_ntop(AF_INET, &x, targets[n].host, sizeof(targets[0].host));
				targets[n++].port = plist[k];
			}
		}
	}
	if (n == 0) {
		*ret_field = "hosts";
		return -EINVAL;
	}
	*ret_n = n;
	return 0;
}

/* GET: the last scan's state and results; it starts nothing. */
int webui_h_scan(struct web_request *rq)
{
	struct webui *u = webui_of(rq);

	if (webui_query(rq, "hosts") || webui_query(rq, "ports"))
		return web_reply_error(rq, 405,
				       "a scan is started with POST /api/device/scan, the "
				       "token and a JSON body {hosts, ports, unit_id}; GET only "
				       "reads the last scan's results",
				       NULL);
	return web_reply_json(rq, 200, json_pack("{s:o}", "scan", scan_json(u->scan)));
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
	json_array_foreach (v, i, e) {
		int k;
		if (json_is_string(e))
			k = snprintf(buf + off, n - off, "%s%s", off ? "," : "",
				     json_string_value(e));
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
	struct scan_target *targets;
	unsigned ntargets = 0;
	const char *field = NULL;
	unsigned long unit = 1;
	char nets[256]; /* as long as scan_targets takes */
	char hosts[256], ports[128] = "502", err[160], who[64];
	json_t *o;
	int r;

	o = webui_body_json(rq, err, sizeof(err));
	if (!o)
		return web_reply_error(rq, 400, err, "body");
	r = json_object_get(o, "hosts")
		? scan_list(json_object_get(o, "hosts"), hosts, sizeof(hosts))
		: -EINVAL;
	if (r < 0 || !hosts[0]) {
		json_decref(o);
		return web_reply_error(rq, 400,
				       "hosts: required, IPv4 addresses or a.b.c.d/24..32 "
				       "(a string, comma separated, or an array), or \"local\"",
				       "hosts");
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
			return web_reply_error(rq, 500, "hosts: cannot list the network interfaces",
					       "hosts");
		r = (int)webui_local_networks(ifs, nets, sizeof(nets));
		freeifaddrs(ifs);
		if (r == 0)
			return web_reply_error(rq, 400,
					       "hosts: this gateway has no IPv4 network "
					       "besides loopback",
					       "hosts");
		snprintf(hosts, sizeof(hosts), "%s", nets);
	}
	/* Parse into a scratch list so a bad request leaves the last results. */
	targets = malloc(SCAN_TARGETS_MAX * sizeof(*targets));
	if (!targets)
		return web_reply_error(rq, 500, "out of memory", NULL);
	r = webui_scan_targets(targets, &ntargets, hosts, ports, &field);
	if (r < 0) {
		free(targets);
		return web_reply_error(
			rq, 400,
			r == -E2BIG            ? "too many targets (at most 1024 host:port pairs)"
				: r == -EACCES ? "hosts: only the gateway's own networks "
						 "may be scanned (loopback, private and "
						 "link-local ranges, its interfaces' subnets)"
				: strcmp(field, "ports") == 0
				? "ports: comma separated 1..65535"
				: "hosts: comma separated IPv4 addresses or a.b.c.d/24..32",
			field);
	}
	if (!webui_limit(&u->scan_limit, rq, loop_now(u->e->loop))) {
		free(targets);
		return web_reply_error(rq, 429,
				       "too many scans: at most 3 a minute from one address, "
				       "6 in all",
				       NULL);
	}
	webui_client_addr(rq, who, sizeof(who));
	log_info("webui", "scan by client %s (token): hosts %s ports %s unit %lu, %u targets", who,
		 hosts, ports, unit, ntargets);
	scan_start(u->scan, targets, ntargets, (uint8_t)unit, hosts, ports);
	free(targets);
	return web_reply_json(rq, 202, json_pack("{s:o}", "scan", scan_json(u->scan)));
}
