/* The Modbus TCP proxy (devices/proxy.h) in the daemon: started when
 * proxy.enabled is on, in front of e->devices; re-listens when proxy.bind or
 * proxy.port change, and takes proxy.max_age_ms, proxy.allow_writes and
 * modbus_write_allowlist without closing its clients.  Registers the "proxy"
 * section of /api/state and the egw_proxy_* series of /metrics. */
#pragma once

struct egw;

/* Always 0: a proxy that cannot listen is logged and reported in
 * /api/state, not fatal. */
int proxy_egw_init(struct egw *e);
void proxy_egw_fini(struct egw *e);
/* Applies the proxy settings.  Returns 0, or -errno when the proxy is to
 * listen on a new address and cannot (e->proxy_error says why; it stays
 * off until the next change or start). */
int proxy_egw_apply(struct egw *e);
