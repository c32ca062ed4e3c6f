#include "daemon/pipeline.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "backend/acks.h"
#include "backend/batch.h"
#include "backend/http.h"
#include "backend/name.h"
#include "backend/uploader.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mask.h"
#include "base/util.h"
#include "config/settings.h"
#include "crypto/signer.h"
#include "egw.h"
#include "store/store.h"
#include "web/web.h"

#define MSEC(ms) ((usec_t)(ms)*USEC_PER_MSEC)

/* ---- http ---- */

int pipeline_http_init(struct egw *e)
{
	return http_new(e->loop, &e->http);
}

void pipeline_http_fini(struct egw *e)
{
	http_free(e->http);
	e->http = NULL;
}

/* ---- harvest (batch assembly) ---- */

static json_t *harvest_section(void *ud)
{
	struct egw *e = ud;
	struct batch_stats st;

	if (!e->batch)
		return json_pack("{sb}", "enabled", 0);
	batch_get_stats(e->batch, &st);
	const struct {
		const char *k;
		int64_t v;
	} ints[] = {
		{ "interval_ms", settings_values(e->settings)->harvest_batch_interval_ms },
		{ "sealed", (int64_t)st.sealed },
		{ "stored_signed", (int64_t)st.stored_signed },
		{ "stored_unsigned", (int64_t)st.stored_unsigned },
		{ "resigned", (int64_t)st.resigned },
		{ "store_errors", (int64_t)st.store_errors },
		{ "sign_errors", (int64_t)st.sign_errors },
		{ "lost", (int64_t)st.lost },
		{ "dropped_rows", (int64_t)st.dropped_rows },
		{ "readings", (int64_t)st.readings },
		{ "samples", (int64_t)st.samples },
		{ "overflow", (int64_t)st.overflow },
		{ "last_seq", st.last_seq },
		{ "pending", st.pending },
		{ "resign_backoff_ms", (int64_t)st.resign_backoff_ms },
	};
	json_t *o = json_pack("{sbss}", "enabled", 1, "last_error",
			      st.last_error ? egw_strerror(st.last_error) : "");
	for (size_t i = 0; o && i < ARRAY_SIZE(ints); i++)
		if (json_object_set_new(o, ints[i].k, json_integer(ints[i].v)) < 0) {
			json_decref(o);
			o = NULL;
		}
	return o;
}

static void harvest_metrics(void *ud, struct web_buf *b)
{
	struct egw *e = ud;
	struct batch_stats st;

	if (!e->batch)
		return;
	batch_get_stats(e->batch, &st);
	web_buf_printf(b,
		       "# TYPE egw_batches_sealed_total counter\negw_batches_sealed_total %llu\n",
		       (unsigned long long)st.sealed);
	web_buf_printf(b,
		       "# TYPE egw_batches_stored_total counter\n"
		       "egw_batches_stored_total{signed=\"yes\"} %llu\n"
		       "egw_batches_stored_total{signed=\"no\"} %llu\n",
		       (unsigned long long)st.stored_signed,
		       (unsigned long long)st.stored_unsigned);
	web_buf_printf(
		b, "# TYPE egw_batches_resigned_total counter\negw_batches_resigned_total %llu\n",
		(unsigned long long)st.resigned);
	web_buf_printf(
		b, "# TYPE egw_batch_sign_errors_total counter\negw_batch_sign_errors_total %llu\n",
		(unsigned long long)st.sign_errors);
	web_buf_printf(b, "# TYPE egw_batch_last_seq gauge\negw_batch_last_seq %lld\n",
		       (long long)st.last_seq);
}

int pipeline_harvest_init(struct egw *e)
{
	struct batch_config cfg = {
		.interval = MSEC(settings_values(e->settings)->harvest_batch_interval_ms),
		.freq_interval_ms = (unsigned)settings_values(e->settings)->frequency_interval_ms,
		.srcful = !strcmp(settings_values(e->settings)->backend_format, "srcful"),
	};
	int r;

	if (e->web) {
		web_add_section(e->web, "harvest", harvest_section, e, true);
		web_add_metrics(e->web, harvest_metrics, e);
	}
	if (!e->signer || !e->store) {
		log_warn("harvest", "no %s: batches are not assembled",
			 e->signer ? "store" : "signer");
		return 0;
	}
	r = batch_new(e->loop, e->store, e->signer, &cfg, &e->batch);
	if (r < 0)
		return r;
	log_info("harvest", "sealing a signed batch every %lld ms",
		 (long long)settings_values(e->settings)->harvest_batch_interval_ms);
	return 0;
}

void pipeline_harvest_fini(struct egw *e)
{
	struct batch *b = e->batch;
	/* Hide it first: batch_free may run the loop (web requests included). */
	e->batch = NULL;
	batch_free(b);
}

/* ---- uploader ---- */

/* The URLs of a settings list as shown to others (credentials masked). */
static json_t *masked_urls(const json_t *list)
{
	json_t *out = json_array();
	size_t i;
	json_t *v;

	json_array_foreach (list, i, v) {
		char *m = mask_url(json_string_value(v) ? json_string_value(v) : "");
		json_array_append_new(out, json_string(m ? m : MASK));
		free(m);
	}
	return out ? out : json_array();
}

static json_t *uploader_section(void *ud)
{
	struct egw *e = ud;
	struct uploader_stats st;
	json_t *urls = masked_urls(settings_values(e->settings)->backend_data_urls);

	struct store_stats ss = { 0 };
	if (e->store)
		store_get_stats(e->store, &ss);
	if (!e->uploader)
		return json_pack("{sbsosIsI}", "enabled", 0, "urls", urls, "backlog",
				 (json_int_t)ss.backlog, "unsigned", (json_int_t)ss.unsigned_rows);
	uploader_get_stats(e->uploader, &st);
	return json_pack("{sbsosIsIsIsIsIsIsIsssssIsbsIsI}", "enabled", 1, "urls", urls, "attempts",
			 (json_int_t)st.attempts, "ok", (json_int_t)st.ok, "failed",
			 (json_int_t)st.failed, "acked", (json_int_t)st.acked, "last_acked_seq",
			 (json_int_t)st.last_acked_seq, "pending_seq", (json_int_t)st.pending_seq,
			 "last_status", (json_int_t)st.last_status, "last_error",
			 st.last_error ? egw_strerror(st.last_error) : "", "last_error_detail",
			 uploader_last_error_text(e->uploader), "backoff_ms",
			 (json_int_t)(st.backoff / USEC_PER_MSEC), "waiting_signer",
			 st.waiting_signer, "backlog", (json_int_t)ss.backlog, "unsigned",
			 (json_int_t)ss.unsigned_rows);
}

/* The window beside the uploader's section. */
static int window_fields(json_t *o, const struct uploader_stats *st)
{
	json_t *w = json_pack("{sIsIsI}", "in_flight", (json_int_t)st->in_flight, "max_in_flight",
			      (json_int_t)st->max_in_flight, "store_acked",
			      (json_int_t)st->store_acked);
	int r = w ? json_object_update(o, w) : -1;

	json_decref(w);
	return r;
}

/* Compression counters beside the uploader's section. */
static json_t *uploader_section_full(void *ud)
{
	struct egw *e = ud;
	struct uploader_stats st;
	json_t *o = uploader_section(ud);

	if (!o || !e->uploader)
		return o;
	uploader_get_stats(e->uploader, &st);
	json_t *c = json_pack("{sssIsIsIsI}", "compression",
			      settings_values(e->settings)->backend_compression, "body_bytes",
			      (json_int_t)st.body_bytes, "wire_bytes", (json_int_t)st.wire_bytes,
			      "gzip_bodies", (json_int_t)st.gzip_bodies, "refused_gzip",
			      (json_int_t)st.refused_gzip);
	if (!c || json_object_update(o, c) < 0 || window_fields(o, &st) < 0) {
		json_decref(c);
		json_decref(o);
		return NULL;
	}
	json_decref(c);
	return o;
}

static void uploader_metrics(void *ud, struct web_buf *b)
{
	struct egw *e = ud;
	struct uploader_stats st;

	if (!e->uploader)
		return;
	uploader_get_stats(e->uploader, &st);
	web_buf_printf(b,
		       "# TYPE egw_upload_requests_total counter\n"
		       "egw_upload_requests_total{result=\"ok\"} %llu\n"
		       "egw_upload_requests_total{result=\"failed\"} %llu\n",
		       (unsigned long long)st.ok, (unsigned long long)st.failed);
	web_buf_printf(b, "# TYPE egw_upload_acked_total counter\negw_upload_acked_total %llu\n",
		       (unsigned long long)st.acked);
	web_buf_printf(b,
		       "# TYPE egw_upload_backoff_seconds gauge\negw_upload_backoff_seconds %.3f\n",
		       (double)st.backoff / USEC_PER_SEC);
	web_buf_printf(b,
		       "# TYPE egw_upload_last_acked_seq gauge\negw_upload_last_acked_seq %llu\n",
		       (unsigned long long)st.last_acked_seq);
	web_buf_printf(b,
		       "# TYPE egw_upload_in_flight gauge\negw_upload_in_flight %u\n"
		       "# TYPE egw_upload_max_in_flight gauge\negw_upload_max_in_flight %u\n",
		       st.in_flight, st.max_in_flight);
}

static void uploader_health(void *ud, bool ok, int err, long status, const char *detail)
{
	struct egw *e = ud;
	struct uploader_stats st = { 0 };

	if (e->uploader)
		uploader_get_stats(e->uploader, &st);
	if (ok)
		log_info("uploader", "backend answers again (HTTP %ld); delivering from seq %llu",
			 status, (unsigned long long)st.pending_seq);
	else if (status)
		log_warn("uploader", "backend answered HTTP %ld; retrying with backoff", status);
	else
		log_warn("uploader", "backend unreachable: %s%s%s; retrying with backoff",
			 egw_strerror(err), detail[0] ? ": " : "", detail);
}

/* The uploader's settings.  urls points into the settings document (valid
 * until it changes).  Returns the number of URLs or -EINVAL (too many). */
static int uploader_config_from(struct egw *e, const char *urls[UPLOADER_MAX_URLS],
				struct uploader_config *cfg)
{
	const json_t *arr = settings_values(e->settings)->backend_data_urls;
	int64_t rate = settings_values(e->settings)->backend_rate_per_s;
	int64_t tmo = settings_values(e->settings)->backend_timeout_ms;
	int64_t window = settings_values(e->settings)->backend_max_in_flight;
	size_t n = 0, i;
	json_t *v;

	json_array_foreach (arr, i, v) {
		if (!json_is_string(v) || json_string_length(v) == 0)
			continue;
		if (n == UPLOADER_MAX_URLS)
			return -EINVAL;
		urls[n++] = json_string_value(v);
	}
	const char *comp = settings_values(e->settings)->backend_compression;
	*cfg = (struct uploader_config){
		.urls = urls,
		.n_urls = n,
		.compression = comp && !strcmp(comp, "gzip") ? UPLOADER_COMPRESS_GZIP
			: comp && !strcmp(comp, "none")      ? UPLOADER_COMPRESS_NONE
							     : UPLOADER_COMPRESS_AUTO,
		.rate_per_s = rate > 0 ? (unsigned)rate : 0,
		.timeout_ms = tmo > 0 ? (long)tmo : 0,
		.max_in_flight = window > 0 ? (unsigned)window : 0,
		.acks = e->acks,
		.on_health = uploader_health,
		.health_ud = e,
	};
	return (int)n;
}

static int uploader_create(struct egw *e, const struct uploader_config *cfg)
{
	int r = uploader_new(e->loop, e->http, cfg, &uploader_store_source, e->store, &e->uploader);
	if (r < 0)
		return r;
	if (e->batch)
		batch_set_uploader(e->batch, e->uploader);
	uploader_kick(e->uploader);
	char *first = mask_url(cfg->urls[0]);
	log_info("uploader", "uploading to %zu endpoint%s, first %s", cfg->n_urls,
		 cfg->n_urls == 1 ? "" : "s", first ? first : MASK);
	free(first);
	return 0;
}

static void uploader_destroy(struct egw *e)
{
	struct uploader *u = e->uploader;
	if (e->batch)
		batch_set_uploader(e->batch, NULL);
	e->uploader = NULL;
	uploader_free(u);
}

int pipeline_acks(struct egw *e)
{
	if (!e->store)
		return -ENOENT;
	if (e->acks)
		return 0;
	return acks_new(e->loop, &uploader_store_source, e->store, &e->acks);
}

int pipeline_uploader_init(struct egw *e)
{
	const char *urls[UPLOADER_MAX_URLS];
	struct uploader_config cfg;
	int n;

	if (e->web) {
		web_add_section(e->web, "uploader", uploader_section_full, e, true);
		web_add_metrics(e->web, uploader_metrics, e);
	}
	if (!e->store || !e->http)
		return 0;
	if ((n = pipeline_acks(e)) < 0)
		return n;
	n = uploader_config_from(e, urls, &cfg);
	if (n <= 0) {
		if (n == 0)
			log_info("uploader",
				 "backend.data_urls is empty: batches stay in the store");
		return n;
	}
	return uploader_create(e, &cfg);
}

void pipeline_uploader_fini(struct egw *e)
{
	uploader_destroy(e);
	acks_free(e->acks);
	e->acks = NULL;
}

/* ---- name query ---- */

static json_t *name_section(void *ud)
{
	struct egw *e = ud;
	struct namequery_stats st = { 0 };
	const char *name = e->namequery ? namequery_name(e->namequery) : NULL;
	char *url = mask_url(settings_values(e->settings)->backend_graphql_url);
	json_t *o;

	if (e->namequery)
		namequery_get_stats(e->namequery, &st);
	o = json_pack("{sssbsssIsIsIss}", "name", name ? name : "", "known", name != NULL, "url",
		      url ? url : MASK, "attempts", (json_int_t)st.attempts, "ok",
		      (json_int_t)st.ok, "failed", (json_int_t)st.failed, "last_error",
		      st.last_error ? egw_strerror(st.last_error) : "");
	free(url);
	return o;
}

static void name_learned(void *ud, const char *name)
{
	UNUSED(ud);
	log_info("name", "the backend calls this gateway \"%s\"", name);
}

static void name_config_from(struct egw *e, struct namequery_config *cfg)
{
	*cfg = (struct namequery_config){
		.url = settings_values(e->settings)->backend_graphql_url,
		.serial = signer_serial_hex(e->signer),
		.interval = MSEC(settings_values(e->settings)->name_interval_ms),
		.refresh_interval = MSEC(settings_values(e->settings)->name_refresh_interval_ms),
		.on_name = name_learned,
		.name_ud = e,
	};
}

static int name_create(struct egw *e)
{
	struct namequery_config cfg;

	name_config_from(e, &cfg);
	/* Asked by serial: not before the signer knows it (daemon/signer.c
	 * starts it then). */
	if (!cfg.url[0] || !signer_identity_known(e->signer))
		return 0;
	return namequery_new(e->loop, e->http, &cfg, &e->namequery);
}

int pipeline_name_init(struct egw *e)
{
	if (e->web)
		web_add_section(e->web, "name", name_section, e, true);
	if (!e->signer || !e->http)
		return 0;
	return name_create(e);
}

void pipeline_name_fini(struct egw *e)
{
	namequery_free(e->namequery);
	e->namequery = NULL;
}

/* ---- settings changed ---- */

int pipeline_apply_settings(struct egw *e)
{
	int r = 0, r2;

	if (e->batch) {
		batch_set_srcful(e->batch,
				 !strcmp(settings_values(e->settings)->backend_format, "srcful"));
		r2 = batch_set_interval(
			e->batch, MSEC(settings_values(e->settings)->harvest_batch_interval_ms));
		if (r2 < 0)
			r = r2;
	}
	/* Changed endpoints or name settings: recreate that module (an upload in
	 * flight is abandoned and sent again; the backend dedups by seq). */
	if (e->store && e->http) {
		const char *urls[UPLOADER_MAX_URLS];
		struct uploader_config cfg;
		int n = uploader_config_from(e, urls, &cfg);
		if (n < 0) {
			log_error("uploader", "backend.data_urls: %s", egw_strerror(n));
			r = n;
		} else if (!e->uploader || !uploader_config_equal(e->uploader, &cfg)) {
			uploader_destroy(e);
			if (n > 0 && (r2 = uploader_create(e, &cfg)) < 0) {
				log_error("uploader", "backend.data_urls: %s", egw_strerror(r2));
				r = r2;
			}
		}
	}
	if (e->signer && e->http) {
		struct namequery_config cfg;
		name_config_from(e, &cfg);
		if (!e->namequery || !namequery_config_equal(e->namequery, &cfg)) {
			pipeline_name_fini(e);
			if ((r2 = name_create(e)) < 0) {
				log_error("name", "backend.graphql_url: %s", egw_strerror(r2));
				r = r2;
			}
		}
	}
	return r;
}
