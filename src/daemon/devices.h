/* Wiring of the device set into the daemon (struct egw, egw.h): creates
 * e->devices from the settings, forwards readings and frequency samples to
 * the batch pipeline (e->batch) and the web UI (e->webui) when present, keeps the gateway state
 * (running / degraded / no device) in step with the devices, and registers
 * the "devices" and "frequency" sections of /api/state and the device and
 * frequency-lateness series of /metrics.
 *
 * Settings read: devices, harvest.poll_interval_ms, frequency.interval_ms,
 * frequency.device, modbus.timeout_ms, modbus.min_gap_ms.  Backoff cap and
 * the asleep retry follow the poll interval (10x and 30x, clamped to 2..60 s
 * and 5..300 s). */
#pragma once
#include <stddef.h>

struct egw;
struct settings;

/* A device's id is chosen once: an entry of the settings file without "id"
 * gets the id it runs under now ("dev<index>") written into the file
 * (settings_set, then the atomic settings_save), so a later removal or
 * reorder never renames it.  Call after loading the file and before the
 * command-line overrides (an override is never saved).  Returns the number
 * of ids written (0: none missing), or -errno when saving failed (the ids
 * then hold for this run only). */
int devices_egw_pin_ids(struct settings *s);

/* Returns 0, or the error of devices_new (logged once here, with the field at
 * fault). */
int devices_egw_init(struct egw *e);
void devices_egw_fini(struct egw *e);
/* Settings changed: devices_apply with the new list (timing settings need a
 * restart).  Returns 0 or the validation error (logged; nothing changes). */
int devices_egw_apply(struct egw *e, char *err, size_t errlen);
/* Gateway state the devices imply (enum gw_state); fsm_gateway_state_for. */
int devices_egw_gateway_state(const struct egw *e);
