/* MQTT uplink: the stored, signed batches published to an MQTT broker (a
 * fleet's broker cluster), beside or instead of the HTTP uploader.
 *
 * - Each batch (and each signed gap record) is published once per attempt,
 *   QoS 1, not retained, to one topic, as the compact JWS: the same token
 *   the HTTP uploader sends (uncompressed: MQTT has no Content-Encoding).
 *   It counts as delivered when the broker's PUBACK arrives.
 * - The window, the order, the retries with backoff and the delivery
 *   bookkeeping are the uploader's (backend/uploader.h, with this module as
 *   its transport): up to max_in_flight batches unacknowledged at once; a
 *   batch is reported delivered (struct acks) only after every earlier one;
 *   the store drops a row once every uplink delivered it.
 * - Connection: client id and user name as configured (the daemon uses the
 *   gateway's serial), TLS with the broker's certificate and name checked
 *   (ca_file, or the system's CAs), keepalive 30 s.  The password is either
 *   fixed or a JWT signed by the device key (ES256; header as every egw
 *   token with "dtype":"egw-mqtt-auth"; claims sub = the serial, iat, exp =
 *   iat + jwt_lifetime, jti = 16 random bytes in hex, aud = the broker's
 *   host).  A new JWT is signed (on a loop worker: the signer may be a
 *   chip) for every connection, and when 80 % of its lifetime has passed the
 *   uplink reconnects with a fresh one, so a broker that disconnects clients
 *   whose token expired never has to.
 * - A lost connection (or a refused CONNECT) fails the batches in flight;
 *   they are sent again on the next connection (the broker may see a batch
 *   twice: seq identifies it).  Reconnects back off with sched_backoff_next
 *   (1 s .. 30 s).  A fresh libmosquitto client per connection: nothing of
 *   an old session is replayed behind the uploader's back.
 * - Driven by the gateway's loop like backend/mqtt.c: socket watched, a 1 s
 *   task for keepalive and reconnects, host names looked up on the worker
 *   pool, no libmosquitto thread.
 *
 * Built only with libmosquitto (EGW_HAVE_MQTT); without it uplink_mqtt_new
 * returns -ENOTSUP. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "backend/uploader.h"
#include "base/time.h"

struct loop;
struct signer;
struct acks;
struct uplink_mqtt;

#define UPLINK_MQTT_TOPIC_MAX 256

struct uplink_mqtt_config {
	const char *host; /* required */
	int port;         /* 0: 8883 with tls, 1883 without */
	bool tls;
	const char *ca_file;   /* NULL or "": the system's CAs */
	const char *topic;     /* required, no wildcards */
	const char *client_id; /* required */
	const char *username;  /* NULL or "": none */
	/* Password: a JWT signed by signer when signer is not NULL, else this
	 * (NULL or "": none). */
	const char *password;
	struct signer *signer;
	usec_t jwt_lifetime;             /* 0: 1 h */
	int keepalive_s;                 /* 0: 30 */
	unsigned max_in_flight;          /* 0: UPLOADER_DEFAULT_IN_FLIGHT */
	unsigned rate_per_s;             /* 0: UPLOADER_DEFAULT_RATE */
	usec_t backoff_min, backoff_max; /* batch retries; 0: 1 s, 60 s */
	struct acks *acks;               /* shared with the other uplinks (required) */
	/* As uploader_config.on_health: the broker stopped taking batches
	 * (err, detail) or takes them again. */
	void (*on_health)(void *ud, bool ok, int err, long status, const char *detail);
	void *health_ud;
};

struct uplink_mqtt_stats {
	bool connected;
	uint64_t connects; /* CONNACKs accepted */
	uint64_t disconnects;
	uint64_t refused;         /* CONNECTs the broker refused */
	uint64_t tokens;          /* JWT passwords signed */
	int64_t token_exp;        /* exp of the current JWT (unix s), 0: none */
	const char *last_error;   /* static text, NULL when none */
	struct uploader_stats up; /* the window: attempts, acked (delivered), in_flight, ... */
};

/* Starts connecting at once.  Returns 0, -EINVAL (no host, topic or client
 * id; a wildcard in the topic), -ENOTSUP (no libmosquitto) or -ENOMEM. */
int uplink_mqtt_new(struct loop *l, const struct uplink_mqtt_config *cfg,
		    const struct uploader_source *src, void *src_ud, struct uplink_mqtt **ret);
/* Disconnects; batches in flight stay in the store.  Accepts NULL. */
void uplink_mqtt_free(struct uplink_mqtt *m);
/* The uploader inside (for batch_set_uplink). */
struct uploader *uplink_mqtt_uploader(struct uplink_mqtt *m);
void uplink_mqtt_get_stats(const struct uplink_mqtt *m, struct uplink_mqtt_stats *ret);
