/* Modbus TCP proxy: other clients (Home Assistant, evcc, an installer's
 * tool) read the gateway's devices through the one connection egw already
 * holds, since many inverters accept a single Modbus client.
 *
 * - A Modbus TCP server on the loop: at most max_clients connections (more
 *   are accepted and closed at once), each closed after idle_timeout without
 *   a request, or at once on bytes that are not Modbus TCP.
 * - A request's unit id selects the device by its proxy unit
 *   (device_proxy_unit); an unknown unit gets exception 0x0A (gateway path
 *   unavailable).  Transaction ids are echoed per client; answers to one
 *   client may come out of order (cached ones first), as Modbus TCP allows.
 * - Reads (fc 3/4) that one block of egw's latest poll covers, read at most
 *   max_age ago, are answered from that poll (device_cached_words) with no
 *   device traffic.  Other reads are queued on the device's own client
 *   (device_client), behind egw's polls; identical reads in flight are
 *   shared.  A device that fails to answer (timeout, connection error) gives
 *   0x0B (gateway target failed to respond); a device exception is passed on.
 * - Writes (fc 6/16) get exception 0x01 unless allow_writes is on and every
 *   register is in the allow-list (devconf_write_allowed); accepted writes go
 *   through the device's client and are logged with the peer, the device,
 *   the registers and the result.  Other functions get 0x01.
 * - Bounds: each client has at most PROXY_CLIENT_PENDING requests waiting
 *   for a device (its socket is not read meanwhile) and a fixed output
 *   buffer (a client that does not read its answers is closed); at most
 *   PROXY_FWD_MAX distinct requests are queued on devices at once (beyond:
 *   exception 0x06, server busy), so proxy clients can never fill a device's
 *   queue ahead of egw's own polls.
 *
 * Everything runs on the loop thread.  The proxy logs its own events
 * (clients, writes): it is an edge, like the web server. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/time.h"

struct loop;
struct devices;
struct proxy;

#define PROXY_MAX_CLIENTS 32
#define PROXY_CLIENT_PENDING 4
#define PROXY_FWD_MAX 16

struct proxy_config {
	const char *bind; /* numeric IPv4 or IPv6 address; NULL: 0.0.0.0 */
	uint16_t port;    /* 0: any free port (see proxy_port) */
	usec_t max_age;   /* of cached poll words */
	bool allow_writes;
	const json_t *allowlist; /* modbus_write_allowlist (copied) */
	unsigned max_clients;    /* 0: PROXY_MAX_CLIENTS */
	usec_t idle_timeout;     /* 0: 60 s */
};

struct proxy_stats {
	unsigned clients;           /* connected now */
	uint64_t clients_total;     /* accepted */
	uint64_t clients_rejected;  /* closed at once: at the cap */
	uint64_t clients_dropped;   /* closed for garbage, a full output buffer or idleness */
	uint64_t requests;          /* well-formed requests */
	uint64_t cached;            /* reads answered from egw's poll */
	uint64_t forwarded;         /* requests sent to a device */
	uint64_t coalesced;         /* reads that joined an identical one in flight */
	uint64_t refused;           /* exception 01: writes not allowed, other functions */
	uint64_t unknown_unit;      /* exception 0A */
	uint64_t no_answer;         /* exception 0B */
	uint64_t busy;              /* exception 06 */
	uint64_t device_exceptions; /* a device's exception passed on */
	uint64_t writes_ok;
	uint64_t writes_failed;
};

/* What proxy_split found at the start of a client's stream. */
enum proxy_split_result {
	PROXY_MORE,      /* an incomplete frame: wait for more bytes */
	PROXY_REQUEST,   /* *ret_q is a request of *ret_used bytes */
	PROXY_EXCEPTION, /* a delimited frame the proxy answers with exception
			  * *ret_code (to ret_q's tid, unit and fc), then skips
			  * *ret_used bytes */
	PROXY_DROP,      /* not Modbus TCP: close the client */
};
struct mb_request;
/* The proxy's request parser over a client's byte stream (pure; fuzzed).
 * Returns an enum proxy_split_result; *ret_used is 1..len for REQUEST and
 * EXCEPTION, else 0. */
int proxy_split(const uint8_t *buf, size_t len, struct mb_request *ret_q, size_t *ret_used,
		uint8_t *ret_code);

/* Listens on cfg->bind:cfg->port and serves the devices of ds (which must
 * outlive the proxy; NULL: every unit is unknown).  Returns 0, -EINVAL (bind
 * is not a numeric address), -ENOMEM or -errno (socket, bind, listen). */
int proxy_new(struct loop *l, struct devices *ds, const struct proxy_config *cfg,
	      struct proxy **ret);
/* Closes every client and the listener.  Requests still queued on devices
 * complete later into nothing.  Accepts NULL. */
void proxy_free(struct proxy *p);
/* Settings that change without re-listening.  Returns 0 or -ENOMEM. */
int proxy_set_policy(struct proxy *p, usec_t max_age, bool allow_writes, const json_t *allowlist);
void proxy_stats(const struct proxy *p, struct proxy_stats *ret);
/* The port listened on. */
uint16_t proxy_port(const struct proxy *p);
