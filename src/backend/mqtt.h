/* MQTT publishing of readings, with Home Assistant discovery.
 *
 * Topic tree (prefix = settings mqtt.topic_prefix, default "egw"; serial = the
 * gateway's serial; dev = the device id):
 *   <prefix>/<serial>/status             "online" / "offline" (retained; the
 *                                        will sets "offline" if we vanish)
 *   <prefix>/<serial>/<dev>/state        one JSON reading per poll, QoS 1:
 *                                        {"ts_ms":..,"device":..,"profile":..,
 *                                         "pv":{..},"battery":{..},"meter":{..}}
 *   <prefix>/<serial>/<dev>/availability "online" / "offline" (retained)
 *   <disc>/sensor/<node>/<object>/config Home Assistant discovery (retained),
 *                                        disc = mqtt.discovery_prefix
 *                                        ("homeassistant"), node =
 *                                        egw_<serial>_<dev>, object =
 *                                        <group>_<name> ("pv_W", "meter_L1_V");
 *                                        unique_id <node>_<object>
 *   <disc>/binary_sensor/egw_<serial>/status/config  the gateway itself
 *                                        (connectivity; the device that every
 *                                        device's via_device names)
 * Discovery is sent for each field the first time a device reports it (a
 * field the device does not have is never announced), and again after every
 * reconnect (a restarted broker may have lost retained messages).  It follows
 * Home Assistant's current schema: "default_entity_id" (not the deprecated
 * "object_id"), an entity name without the device name ("PV power"), a device
 * block with manufacturer, model, serial_number (once identified, from the
 * device's serial register), configuration_url (the gateway's web UI at the
 * address the broker sees us from) and via_device; constants (rated power)
 * are diagnostic entities without a state class; suggested_display_precision
 * comes from the register's resolution in the profile.
 *
 * Removal: the module is told the current device ids (mqtt_set_devices).  A
 * device that leaves the set gets an empty retained payload on every config
 * topic it could have (Home Assistant deletes those entities) and
 * "offline" on its availability.  A device removed while egwd was down is
 * found through the broker itself: on every connect egwd subscribes to
 * <disc>/sensor/+/+/config; a retained config under one of our nodes
 * (egw_<serial>_...) that belongs to no current device is deleted the same
 * way.  The broker is the record of what is announced, so nothing is kept
 * on disk and a wiped state directory or another egwd version's leftovers
 * are cleaned up too.  Nothing is deleted before the first mqtt_set_devices.
 *
 * Delivery: messages go through our own bounded FIFO (MQTT_QUEUE_MAX messages
 * and MQTT_QUEUE_BYTES of payload; when full the oldest message is dropped and
 * counted).  While the broker is away nothing is handed to libmosquitto, so
 * readings wait in the FIFO and are published, in order, on reconnect.  At
 * most MQTT_INFLIGHT QoS 1 messages are unacknowledged at a time; libmosquitto
 * resends those after a reconnect (at-least-once: a message may be repeated,
 * none is lost unless the FIFO overflows).
 *
 * Driven by the gateway's loop: the socket (mosquitto_socket) is watched for
 * reading, and for writing while libmosquitto wants to write; a 1 s task runs
 * mosquitto_loop_misc (keepalive) and reconnects with exponential backoff
 * (1 s .. 30 s).  No libmosquitto thread.  A host name is looked up on the
 * loop's worker pool before each connect (libmosquitto's own lookup blocks):
 * without TLS the address found is used; with TLS the name is passed on for
 * the certificate check.
 *
 * Built only with libmosquitto (EGW_HAVE_MQTT); without it mqtt_new returns
 * -ENOTSUP.  The discovery/state payload builders are always available. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "profiles/reading.h"

struct loop;
struct mqtt;
struct profile;

#define MQTT_QUEUE_MAX 8192u
#define MQTT_QUEUE_BYTES (4u * 1024u * 1024u)
#define MQTT_INFLIGHT 32u
#define MQTT_MAX_DEVICES 64u
#define MQTT_TOPIC_MAX 256u

struct mqtt_config {
	const char *host;     /* required */
	int port;             /* 0: 1883 (8883 with tls) */
	const char *username; /* NULL or "": none */
	const char *password;
	bool tls;                     /* verify the broker's certificate and name */
	const char *ca_file;          /* NULL or "": against the system CAs */
	const char *topic_prefix;     /* NULL or "": "egw" */
	const char *discovery_prefix; /* NULL or "": "homeassistant" */
	const char *client_id;        /* NULL: "egw-<serial>" */
	int keepalive_s;              /* 0: 30 */
	const char *sw_version;       /* the gateway's version, for its HA device */
	int ui_port;                  /* the web UI's HTTP port (configuration_url); 0: none */
};

/* One device as Home Assistant shows it. */
struct mqtt_device {
	const char *id;                /* the device id: a topic level */
	const char *name;              /* the device's name in HA; NULL: the id */
	const char *manufacturer;      /* NULL: not sent */
	const char *model;             /* NULL: not sent */
	const char *serial;            /* serial number; NULL or "": not sent */
	const struct profile *profile; /* resolution of each field; NULL: by unit */
	const char *node;              /* its HA node id (mqtt_ha_node); NULL: from the id alone */
};

/* The gateway, for the device block and its own HA device. */
struct mqtt_gateway {
	const char *serial;     /* a topic level */
	const char *sw_version; /* NULL: not sent */
	const char *url;        /* configuration_url; NULL: not sent */
};

struct mqtt_stats {
	bool connected;
	uint64_t connects; /* CONNACKs accepted */
	uint64_t disconnects;
	uint64_t queued;    /* messages accepted into the FIFO */
	uint64_t published; /* handed to libmosquitto */
	uint64_t acked;     /* PUBACKs received */
	uint64_t dropped;   /* FIFO overflow (oldest dropped) */
	uint64_t removed;   /* devices removed, plus stale configs deleted, from HA */
	unsigned backlog;   /* messages waiting in the FIFO */
	size_t backlog_bytes;
	unsigned inflight;
	const char *last_error; /* why the last attempt failed (static text), NULL once connected */
};

/* Starts connecting at once.  serial names the gateway in topics.  Returns 0,
 * -EINVAL (no host, bad prefix), -ENOTSUP (built without libmosquitto),
 * -ENOMEM.  Connection failures are not errors: it keeps retrying. */
int mqtt_new(struct loop *l, const struct mqtt_config *cfg, const char *serial, struct mqtt **ret);
/* Publishes "offline" when connected, then disconnects.  Accepts NULL. */
void mqtt_free(struct mqtt *m);

/* Queue one reading of a device (and the discovery configs of fields seen
 * for the first time).  Returns 0, -EINVAL, -ENOMEM.  Never blocks. */
int mqtt_publish_reading(struct mqtt *m, const struct mqtt_device *dev, int64_t ts_ms,
			 const struct reading *r);
/* Queue a device's availability ("online"/"offline", retained). */
int mqtt_publish_availability(struct mqtt *m, const char *device_id, bool online);

/* The devices that exist now (ids); any other device of this gateway that
 * is announced on the broker is removed from Home Assistant (see above).
 * Returns 0, -EINVAL (too many, or an id that is not a topic level),
 * -ENOMEM. */
int mqtt_set_devices(struct mqtt *m, const char *const *ids, unsigned n);

void mqtt_stats(const struct mqtt *m, struct mqtt_stats *ret);

/* Payload builders (pure, for tests and for the module itself). */
/* The state JSON of a reading (see the topic tree).  New reference or NULL. */
json_t *mqtt_state_json(const char *device_id, const char *profile, int64_t ts_ms,
			const struct reading *r);
/* The discovery topic and config for field f of a device.  Returns 0, -EINVAL
 * (a name that does not fit in a topic), -ENOMEM; *ret_config a new reference. */
int mqtt_discovery(const char *topic_prefix, const char *discovery_prefix,
		   const struct mqtt_gateway *gw, const struct mqtt_device *dev,
		   enum reading_field f, char *ret_topic, size_t topic_len, json_t **ret_config);
/* The discovery topic and config of the gateway's own entity (its status).
 * Returns as mqtt_discovery. */
int mqtt_gateway_discovery(const char *topic_prefix, const char *discovery_prefix,
			   const struct mqtt_gateway *gw, char *ret_topic, size_t topic_len,
			   json_t **ret_config);
/* A retained config seen under <disc>/sensor/ (the cleanup at connect):
 * returns 1 when topic is <disc>/sensor/<node>/<object>/config with a node
 * of this gateway (egw_<serial>_...) that belongs to none of ids[0..n): it
 * is to be deleted, and ret_avail gets that device's availability topic as
 * the config names it ("" when it names none of this gateway's, or a
 * current device's).  0 for anything else, an empty payload included. */
int mqtt_stale_config(const char *topic_prefix, const char *discovery_prefix, const char *serial,
		      const char *const *ids, unsigned n, const char *topic, const void *payload,
		      size_t len, char *ret_avail, size_t avail_len);
/* The Home Assistant node id of device ids[i] among the gateway's devices
 * ids[0..n): "egw_<serial>_<id>" with '.' read as '_', as always, unless
 * another of ids reads the same that way ("a.b" and "a_b"): then each id
 * with a '.' has '_' and '.' escaped ("a_2eb").  Different ids always get
 * different nodes; an id that collides with none keeps its node.  Returns 0
 * or -EINVAL (i >= n, n > MQTT_MAX_DEVICES, len < 128). */
int mqtt_ha_node(const char *serial, const char *const *ids, unsigned n, unsigned i, char *out,
		 size_t len);
/* The HA entity name of field f ("PV power", "Battery state of charge"). */
const char *mqtt_field_name(enum reading_field f);
