/* Wiring of the MQTT uplink of signed batches (backend/uplink_mqtt.h) into
 * the daemon: started, restarted or stopped from the uplink.mqtt.* settings;
 * shares the delivery bookkeeping (e->acks) with the HTTP uploader, so a row
 * leaves the store once every enabled uplink delivered it; the
 * "uplink_mqtt" section of /api/state and the egw_uplink_mqtt_* metrics.
 *
 * Settings: uplink.mqtt.enabled, host, port [8883], tls [true], ca_file,
 * topic [egw/<serial>/batches, <serial> replaced], username [the serial],
 * auth [jwt | password], password (auth password), jwt_lifetime_s [3600],
 * max_in_flight [8].  The client id is the gateway's serial. */
#pragma once

struct egw;

/* Registers the section and metrics, starts the uplink when enabled (a
 * failure to start is logged and shown, not fatal).  Returns 0. */
int uplink_egw_init(struct egw *e);
void uplink_egw_fini(struct egw *e);
/* Settings changed: restarts the uplink when its settings changed. */
void uplink_egw_apply(struct egw *e);
