/* Wiring of the store into the daemon (struct egw, egw.h).
 *
 * Opens e->store at <state-dir>/store.db with the settings store.max_bytes
 * and store.max_age_s (a corrupt file is moved aside by store_open, and the
 * daemon keeps running), and registers:
 *   - the "store" section of /api/state: backlog, delivered, dropped,
 *     last_seq (pinned), unsigned, bytes, disk_full, recovered, last_error,
 *     max_bytes, max_age_s;
 *   - /metrics: egw_store_backlog, egw_store_unsigned, egw_store_bytes,
 *     egw_store_delivered_total, egw_store_dropped_total, egw_store_last_seq,
 *     egw_store_disk_full.
 * Appends, signing and bounds are driven by the batch pipeline
 * (backend/batch.h) on the worker pool. */
#pragma once

struct egw;

/* Returns 0, or the error of store_open (logged once here). */
int store_egw_init(struct egw *e);
void store_egw_fini(struct egw *e);
/* Settings changed: new bounds apply at the next enforcement.  Returns 0. */
int store_egw_apply(struct egw *e);
