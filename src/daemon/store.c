/* Store wiring (see wire.h). */
#include "daemon/store.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>

#include "base/err.h"
#include "base/log.h"
#include "base/time.h"
#include "base/util.h"
#include "config/settings.h"
#include "egw.h"
#include "store/store.h"
#include "web/web.h"

/* Write volume since the store opened: egwd's bytes written to storage
 * (/proc/self/io write_bytes: the store, its WAL and checkpoints, and
 * anything else egwd writes) and the store's own growth. */
static int64_t io_start_bytes = -1;
static usec_t io_start_usec;

static int64_t proc_write_bytes(void)
{
	FILE *f = fopen("/proc/self/io", "r");
	char line[128];
	long long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "write_bytes: %lld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* {"write_bytes_per_day", "stored_bytes_per_day", "outage_hours",
 *  "outage_hours_left"}: rates over the time since the store opened (null
 * during the first minute or when unknown).  outage_hours: how long the
 * store holds batches from empty at the current rate before it drops the
 * oldest (store.max_bytes); _left: from its current fill. */
static int rates_add(json_t *o, const struct store_stats *st, int64_t max_bytes)
{
	double secs = (double)(now_usec() - io_start_usec) / 1e6;
	int64_t wb = proc_write_bytes();
	json_t *wpd = json_null(), *spd = json_null(), *oh = json_null(), *ohl = json_null();

	if (secs >= 60) {
		if (wb >= 0 && io_start_bytes >= 0)
			wpd = json_integer(
				(json_int_t)((double)(wb - io_start_bytes) * 86400 / secs));
		double per_h = (double)st->appended * 3600 / secs;
		spd = json_integer((json_int_t)(per_h * 24));
		if (per_h > 0 && max_bytes > 0) {
			/* whole hours: the rate is an estimate */
			oh = json_integer((json_int_t)((double)max_bytes / per_h));
			ohl = json_integer(
				(json_int_t)((double)MAX(max_bytes - st->bytes, 0) / per_h));
		}
	}
	return json_object_set_new(o, "appended", json_integer(st->appended)) |
		json_object_set_new(o, "write_bytes_per_day", wpd) |
		json_object_set_new(o, "stored_bytes_per_day", spd) |
		json_object_set_new(o, "outage_hours", oh) |
		json_object_set_new(o, "outage_hours_left", ohl);
}

static json_t *store_section(void *ud)
{
	struct egw *e = ud;
	struct store_stats st;
	json_t *o;

	if (!e->store)
		return NULL;
	store_get_stats(e->store, &st);
	o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:b, s:o, s:I, s:I}", "backlog",
		      (json_int_t)st.backlog, "delivered", (json_int_t)st.delivered, "dropped",
		      (json_int_t)st.dropped, "last_seq", (json_int_t)st.last_seq, "unsigned",
		      (json_int_t)st.unsigned_rows, "bytes", (json_int_t)st.bytes, "disk_full",
		      st.disk_full, "recovered", st.recovered, "last_error",
		      st.last_err ? json_string(egw_strerror(st.last_err)) : json_null(),
		      "max_bytes", (json_int_t)settings_values(e->settings)->store_max_bytes,
		      "max_age_s", (json_int_t)settings_values(e->settings)->store_max_age_s);
	if (o && rates_add(o, &st, settings_values(e->settings)->store_max_bytes) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static void store_metrics(void *ud, struct web_buf *b)
{
	struct egw *e = ud;
	struct store_stats st;

	if (!e->store)
		return;
	store_get_stats(e->store, &st);
	web_buf_printf(b,
		       "# TYPE egw_store_backlog gauge\negw_store_backlog %lld\n"
		       "# TYPE egw_store_unsigned gauge\negw_store_unsigned %lld\n"
		       "# TYPE egw_store_bytes gauge\negw_store_bytes %lld\n"
		       "# TYPE egw_store_delivered_total counter\negw_store_delivered_total %lld\n"
		       "# TYPE egw_store_dropped_total counter\negw_store_dropped_total %lld\n"
		       "# TYPE egw_store_last_seq gauge\negw_store_last_seq %lld\n"
		       "# TYPE egw_store_disk_full gauge\negw_store_disk_full %d\n",
		       (long long)st.backlog, (long long)st.unsigned_rows, (long long)st.bytes,
		       (long long)st.delivered, (long long)st.dropped, (long long)st.last_seq,
		       st.disk_full ? 1 : 0);
}

int store_egw_init(struct egw *e)
{
	char path[PATH_MAX + 16];
	struct store_config cfg = {
		.path = path,
		.max_bytes = settings_values(e->settings)->store_max_bytes,
		.max_age_s = settings_values(e->settings)->store_max_age_s,
	};
	struct store_stats st;
	int r;

	snprintf(path, sizeof(path), "%s/store.db", e->state_dir);
	r = store_open(e->loop, &cfg, &e->store);
	if (r < 0) {
		log_error("store", "cannot open %s: %s", path, egw_strerror(r));
		return r;
	}
	/* from here: opening writes the WAL's preallocation once, which is
	 * no part of the daily rate */
	io_start_bytes = proc_write_bytes();
	io_start_usec = now_usec();
	store_get_stats(e->store, &st);
	log_info("store", "%s: %lld rows waiting (%lld unsigned), last seq %lld", path,
		 (long long)st.backlog, (long long)st.unsigned_rows, (long long)st.last_seq);
	if (e->web) {
		web_add_section(e->web, "store", store_section, e, true);
		web_add_metrics(e->web, store_metrics, e);
	}
	return 0;
}

void store_egw_fini(struct egw *e)
{
	struct store *s = e->store;

	e->store = NULL;
	store_close(s);
}

int store_egw_apply(struct egw *e)
{
	if (e->store)
		store_set_bounds(e->store, settings_values(e->settings)->store_max_bytes,
				 settings_values(e->settings)->store_max_age_s);
	return 0;
}
