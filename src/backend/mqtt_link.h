/* What the two MQTT clients (Home Assistant publishing in mqtt.c, the batch
 * uplink in uplink_mqtt.c) share about reaching a broker with libmosquitto
 * on the loop: the host to connect to after a lookup on the worker pool,
 * starting the non-blocking connect, following libmosquitto's socket with a
 * loop watch, and the text of an error. */
#pragma once
#include "egw-config.h"

#if EGW_HAVE_MQTT
#include <mosquitto.h>
#include <stdbool.h>
#include <stddef.h>

#include "loop/loop.h"
#include "loop/resolve.h"

/* Whether host is a numeric IPv4 or IPv6 address (no lookup needed). */
bool mqtt_link_is_address(const char *host);

/* The host to hand libmosquitto after looking up name: address number
 * *tries of res (as text; *tries counts up, so after each failed attempt
 * the next address the name has), or with TLS the name itself (the
 * certificate check and SNI need it).  Returns 0, or -EINVAL when the
 * address cannot be written as text. */
int mqtt_link_host(const struct loop_resolved *res, const char *name, bool tls, unsigned *tries,
		   char *ret_host, size_t len);

/* mosquitto_connect_async.  Returns NULL, or the reason it failed. */
const char *mqtt_link_connect(struct mosquitto *mosq, const char *host, int port, int keepalive);

/* Watches mosq's socket on l with io (cb on events): for reading, and for
 * writing while libmosquitto has bytes to send; a new socket moves the
 * watch.  Returns 0, -ENOTCONN when mosq is NULL or has no socket (io is
 * left as it was), or -errno when the watch could not be added. */
int mqtt_link_watch(struct loop *l, struct loop_io *io, struct mosquitto *mosq, loop_io_fn cb);

/* The text for libmosquitto error rc: with TLS, detail (libmosquitto's last
 * error line, OpenSSL's reason) when there is one. */
const char *mqtt_link_error(int rc, const char *detail);
#endif
