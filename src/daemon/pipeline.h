/* Wiring of the upload pipeline into the daemon (struct egw): the steps
 * main.c runs, in this order after "signer" and "store":
 *   http      the shared libcurl multi handle on the loop
 *   harvest   batch assembly (struct batch) -> e->batch
 *   uploader  delivery of signed rows to backend.data_urls
 *   namequery the gateway-name query to backend.graphql_url
 * Each init returns 0 or a negative error; a missing prerequisite (no signer
 * or store, no URL configured) is not an error: the step does nothing.
 * Each registers its /api/state section ("harvest", "uploader", "name";
 * "name" also answers GET /api/name) and its /metrics lines.
 * pipeline_apply_settings() applies changed URLs and intervals at run time. */
#pragma once

struct egw;

int pipeline_http_init(struct egw *e);
void pipeline_http_fini(struct egw *e);
int pipeline_harvest_init(struct egw *e);
void pipeline_harvest_fini(struct egw *e);
int pipeline_uploader_init(struct egw *e);
void pipeline_uploader_fini(struct egw *e);
int pipeline_name_init(struct egw *e);
void pipeline_name_fini(struct egw *e);
/* Creates e->acks (the uplinks' shared delivery bookkeeping) if there is a
 * store and it does not exist yet; pipeline_uploader_fini frees it.
 * Returns 0, -ENOENT (no store) or -ENOMEM. */
int pipeline_acks(struct egw *e);
/* Returns 0 or a negative error (the old module keeps running on error). */
int pipeline_apply_settings(struct egw *e);
