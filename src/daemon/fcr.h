/* FCR in the daemon: the controller (grid/fcr.h) fed by the 10 Hz frequency
 * samples and the battery's readings, writing its setpoints through the
 * battery's profile control table (profiles/profile.h) on the device's own
 * Modbus client, its log (grid/fcrlog.h), /api/state "fcr" and /metrics.
 *
 * Writes: one sequence (take control, a setpoint, a keep-alive, a release)
 * in flight at a time; a setpoint that arrives meanwhile replaces the one
 * waiting (coalesced), so the battery always gets the newest.  The delay
 * from a frequency sample to the acknowledged setpoint write is kept as a
 * histogram (1 ms steps) and shown as percentiles.
 *
 * The battery goes back to its own mode (the table's release writes) when
 * FCR is turned off, the frequency is stale, a device fails, the SoC leaves
 * the window, and before egwd stops (fcr_egw_stop).  At start-up the
 * release is written first, so a battery left forced by a crash is handed
 * back before egw takes it again. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

struct egw;
struct device;
struct reading;

int fcr_egw_init(struct egw *e);
void fcr_egw_fini(struct egw *e);
/* Settings changed (already checked by fcr_conf_parse in the settings). */
void fcr_egw_apply(struct egw *e);

void fcr_egw_on_freq(struct egw *e, struct device *d, int64_t ts_ms, double hz);
void fcr_egw_on_reading(struct egw *e, struct device *d, const struct reading *r);
void fcr_egw_on_state(struct egw *e, struct device *d, int old_state, int new_state);

/* egwd is stopping: releases the battery if egw controls it, then calls
 * done(e) once the release is acknowledged, failed or 2 s passed.  Returns
 * true when it will call done later, false when there was nothing to do
 * (done not called). */
bool fcr_egw_stop(struct egw *e, void (*done)(struct egw *e));
