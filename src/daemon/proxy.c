/* The Modbus proxy in the daemon; see proxy.h. */
#include "daemon/proxy.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "config/settings.h"
#include "devices/proxy.h"
#include "egw.h"
#include "web/web.h"

/* The settings that need a new listener, as one string. */
static void signature(const struct settings_values *v, char *buf, size_t len)
{
	snprintf(buf, len, "%d|%s|%lld", v->proxy_enabled, v->proxy_bind, (long long)v->proxy_port);
}

int proxy_egw_apply(struct egw *e)
{
	const struct settings_values *v = settings_values(e->settings);
	usec_t max_age = (usec_t)v->proxy_max_age_ms * USEC_PER_MSEC;
	bool writes = v->proxy_allow_writes;
	const json_t *allow = v->modbus_write_allowlist;
	char sig[sizeof(e->proxy_sig)];
	int r;

	signature(v, sig, sizeof(sig));
	if (strcmp(sig, e->proxy_sig) == 0) {
		if (e->proxy && proxy_set_policy(e->proxy, max_age, writes, allow) < 0)
			log_error("proxy", "Modbus proxy settings: %s", egw_strerror(-ENOMEM));
		return 0;
	}
	snprintf(e->proxy_sig, sizeof(e->proxy_sig), "%s", sig);
	proxy_free(e->proxy);
	e->proxy = NULL;
	e->proxy_error[0] = 0;
	if (!v->proxy_enabled)
		return 0;
	struct proxy_config cfg = {
		.bind = v->proxy_bind,
		.port = (uint16_t)v->proxy_port,
		.max_age = max_age,
		.allow_writes = writes,
		.allowlist = allow,
	};
	r = proxy_new(e->loop, e->devices, &cfg, &e->proxy);
	if (r < 0) {
		snprintf(e->proxy_error, sizeof(e->proxy_error), "cannot listen on %s:%u: %s",
			 cfg.bind, cfg.port, egw_strerror(r));
		log_error("proxy", "Modbus proxy %s", e->proxy_error);
		return r;
	}
	log_info("proxy", "Modbus TCP proxy listening on %s:%u (cache %lld ms, writes %s)",
		 cfg.bind, proxy_port(e->proxy), (long long)(max_age / USEC_PER_MSEC),
		 writes ? "allowed by the allow-list" : "refused");
	return 0;
}

/* /api/state "proxy". */
static json_t *section(void *ud)
{
	struct egw *e = ud;
	const struct settings_values *v = settings_values(e->settings);
	struct proxy_stats ps;

	if (!v->proxy_enabled)
		return json_pack("{s:b}", "enabled", 0);
	if (!e->proxy)
		return json_pack("{s:b,s:b,s:s}", "enabled", 1, "listening", 0, "last_error",
				 e->proxy_error[0] ? e->proxy_error : "not started");
	proxy_stats(e->proxy, &ps);
	return json_pack("{s:b,s:b,s:s,s:i,s:b,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
			 "s:I,s:I}",
			 "enabled", 1, "listening", 1, "bind", v->proxy_bind, "port",
			 (int)proxy_port(e->proxy), "allow_writes", v->proxy_allow_writes,
			 "clients", (int)ps.clients, "clients_total", (json_int_t)ps.clients_total,
			 "clients_rejected", (json_int_t)ps.clients_rejected, "clients_dropped",
			 (json_int_t)ps.clients_dropped, "requests", (json_int_t)ps.requests,
			 "cached", (json_int_t)ps.cached, "forwarded", (json_int_t)ps.forwarded,
			 "coalesced", (json_int_t)ps.coalesced, "refused", (json_int_t)ps.refused,
			 "unknown_unit", (json_int_t)ps.unknown_unit, "no_answer",
			 (json_int_t)ps.no_answer, "busy", (json_int_t)ps.busy, "writes_ok",
			 (json_int_t)ps.writes_ok, "writes_failed", (json_int_t)ps.writes_failed);
}

static void metrics(void *ud, struct web_buf *b)
{
	struct egw *e = ud;
	struct proxy_stats ps;

	if (!e->proxy)
		return;
	proxy_stats(e->proxy, &ps);
	web_buf_printf(b,
		       "# HELP egw_proxy_clients Modbus proxy clients connected.\n"
		       "# TYPE egw_proxy_clients gauge\negw_proxy_clients %u\n",
		       ps.clients);
	web_buf_printf(b,
		       "# HELP egw_proxy_requests_total Modbus proxy requests by outcome.\n"
		       "# TYPE egw_proxy_requests_total counter\n"
		       "egw_proxy_requests_total{outcome=\"cached\"} %" PRIu64 "\n"
		       "egw_proxy_requests_total{outcome=\"forwarded\"} %" PRIu64 "\n"
		       "egw_proxy_requests_total{outcome=\"coalesced\"} %" PRIu64 "\n"
		       "egw_proxy_requests_total{outcome=\"refused\"} %" PRIu64 "\n"
		       "egw_proxy_requests_total{outcome=\"unknown_unit\"} %" PRIu64 "\n"
		       "egw_proxy_requests_total{outcome=\"no_answer\"} %" PRIu64 "\n"
		       "egw_proxy_requests_total{outcome=\"busy\"} %" PRIu64 "\n",
		       ps.cached, ps.forwarded, ps.coalesced, ps.refused, ps.unknown_unit,
		       ps.no_answer, ps.busy);
	web_buf_printf(b,
		       "# HELP egw_proxy_writes_total Writes through the Modbus proxy by result.\n"
		       "# TYPE egw_proxy_writes_total counter\n"
		       "egw_proxy_writes_total{result=\"ok\"} %" PRIu64 "\n"
		       "egw_proxy_writes_total{result=\"failed\"} %" PRIu64 "\n",
		       ps.writes_ok, ps.writes_failed);
}

int proxy_egw_init(struct egw *e)
{
	if (e->web) {
		web_add_section(e->web, "proxy", section, e, true);
		web_add_metrics(e->web, metrics, e);
	}
	proxy_egw_apply(e);
	return 0;
}

void proxy_egw_fini(struct egw *e)
{
	proxy_free(e->proxy);
	e->proxy = NULL;
	e->proxy_sig[0] = 0;
}
