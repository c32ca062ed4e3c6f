/* Wiring of MQTT (backend/mqtt.h) into the daemon: the client is started,
 * restarted or stopped from the mqtt.* settings; it receives every reading
 * and availability change from the device fan-out (daemon/devices.c); the
 * "mqtt" section of /api/state and the egw_mqtt_* metrics. */
#pragma once
#include <stdint.h>

struct egw;
struct device;
struct reading;

/* Registers the section and metrics and starts MQTT when mqtt.enabled (a
 * failure to start is logged and shown, not fatal).  Returns 0. */
int mqtt_egw_init(struct egw *e);
void mqtt_egw_fini(struct egw *e);
/* Settings changed: restarts MQTT when its settings changed. */
void mqtt_egw_apply(struct egw *e);

/* The fan-out's MQTT sink. */
void mqtt_egw_on_reading(struct egw *e, struct device *d, int64_t ts_ms, const struct reading *r);
void mqtt_egw_on_state(struct egw *e, struct device *d, int old_state, int new_state);
