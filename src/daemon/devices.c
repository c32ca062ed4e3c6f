/* Daemon wiring of the device set; see wire.h. */
#include "daemon/devices.h"
#include "daemon/mqtt.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/batch.h"
#include "base/err.h"
#include "base/file.h"
#include "base/log.h"
#include "base/util.h"
#include "config/settings.h"
#include "devices/devconf.h"
#include "devices/device.h"
#include "egw.h"
#include "daemon/fcr.h"
#include "fsm/fsm.h"
#include "profiles/reading.h"
#include "sched/sched.h"
#include "web/web.h"
#include "web/webui.h"
#include "base/time.h"

static unsigned clampu(int64_t v, unsigned lo, unsigned hi)
{
	return v < lo ? lo : v > hi ? hi : (unsigned)v;
}

static void egw_config(const struct egw *e, struct devices_config *c)
{
	const struct settings_values *v = settings_values(e->settings);
	unsigned poll = clampu(v->harvest_poll_interval_ms, 10, 3600000);
	*c = (struct devices_config){
		.poll_interval_ms = poll,
		.freq_interval_ms = clampu(v->frequency_interval_ms, 10, 60000),
		.freq_device = (int)v->frequency_device,
		.timeout_ms = clampu(v->modbus_timeout_ms, 10, 60000),
		.min_gap_ms = clampu(v->modbus_min_gap_ms, 0, 10000),
		.backoff_min_ms = clampu(poll, 200, 5000),
		.backoff_max_ms = clampu((int64_t)poll * 10, 2000, 60000),
		.sleep_after_failures = 5,
		.sleep_retry_ms = clampu((int64_t)poll * 30, 5000, 300000),
	};
	c->connect_timeout_ms = MAX(c->timeout_ms, 1000u);
}

int devices_egw_gateway_state(const struct egw *e)
{
	unsigned n = devices_count(e->devices), polling = 0;
	for (unsigned i = 0; i < n; i++)
		polling += device_state(devices_get(e->devices, i)) == DEV_POLLING;
	return (int)fsm_gateway_state_for(n, polling);
}

/* ---- hooks ---------------------------------------------------------------- */

/* The reading fan-out: every reading, frequency sample and state change
 * goes to each sink in turn (the signed batch, the live stream, MQTT).  A
 * sink that is not running (NULL) is skipped by its own function. */
struct sink {
	const char *name;
	void (*on_reading)(struct egw *e, struct device *d, int64_t ts_ms, const struct reading *r,
			   const struct block_result *res, unsigned nres);
	void (*on_freq)(struct egw *e, struct device *d, int64_t ts_ms, double hz);
	void (*on_state)(struct egw *e, struct device *d, int old_state, int new_state,
			 const char *reason);
};

static void batch_reading(struct egw *e, struct device *d, int64_t ts_ms, const struct reading *r,
			  const struct block_result *res, unsigned nres)
{
	if (e->batch)
		batch_on_reading(e->batch, d, ts_ms, r, res, nres);
}

static void hook_missed(void *ud, struct device *d, int64_t ts_ms, int err)
{
	struct egw *e = ud;

	if (e->batch)
		batch_on_missed(e->batch, d, ts_ms, err);
}

static void batch_freq(struct egw *e, struct device *d, int64_t ts_ms, double hz)
{
	if (e->batch)
		batch_on_freq(e->batch, d, ts_ms, hz);
}

static void live_reading(struct egw *e, struct device *d, int64_t ts_ms, const struct reading *r,
			 const struct block_result *res, unsigned nres)
{
	UNUSED(res);
	UNUSED(nres);
	webui_on_reading(e->webui, d, ts_ms, r);
}

static void live_freq(struct egw *e, struct device *d, int64_t ts_ms, double hz)
{
	webui_on_freq(e->webui, d, ts_ms, hz);
}

static void live_state(struct egw *e, struct device *d, int old_state, int new_state,
		       const char *reason)
{
	webui_on_state(e->webui, d, old_state, new_state, reason);
}

static void mqtt_reading(struct egw *e, struct device *d, int64_t ts_ms, const struct reading *r,
			 const struct block_result *res, unsigned nres)
{
	UNUSED(res);
	UNUSED(nres);
	mqtt_egw_on_reading(e, d, ts_ms, r);
}

static void mqtt_state(struct egw *e, struct device *d, int old_state, int new_state,
		       const char *reason)
{
	UNUSED(reason);
	mqtt_egw_on_state(e, d, old_state, new_state);
}

static void fcr_reading(struct egw *e, struct device *d, int64_t ts_ms, const struct reading *r,
			const struct block_result *res, unsigned nres)
{
	UNUSED(ts_ms);
	UNUSED(res);
	UNUSED(nres);
	fcr_egw_on_reading(e, d, r);
}

static void fcr_state(struct egw *e, struct device *d, int old_state, int new_state,
		      const char *reason)
{
	UNUSED(reason);
	fcr_egw_on_state(e, d, old_state, new_state);
}

static const struct sink sinks[] = {
	/* first: the battery's setpoint follows the frequency sample at once */
	{ "fcr", fcr_reading, fcr_egw_on_freq, fcr_state },
	{ "batch", batch_reading, batch_freq, NULL },
	{ "live", live_reading, live_freq, live_state },
	{ "mqtt", mqtt_reading, NULL, mqtt_state },
};

static void hook_reading(void *ud, struct device *d, int64_t ts_ms, const struct reading *r,
			 const struct block_result *res, unsigned nres)
{
	for (size_t i = 0; i < ARRAY_SIZE(sinks); i++)
		if (sinks[i].on_reading)
			sinks[i].on_reading(ud, d, ts_ms, r, res, nres);
}

static void hook_freq(void *ud, struct device *d, int64_t ts_ms, double hz)
{
	for (size_t i = 0; i < ARRAY_SIZE(sinks); i++)
		if (sinks[i].on_freq)
			sinks[i].on_freq(ud, d, ts_ms, hz);
}

/* ---- identity ------------------------------------------------------------------ */

/* The serial each device id last answered with is kept in the state dir
 * (device-serials.json), so a unit replaced while egwd was down is noticed
 * at its first identification, as one replaced while running is
 * (hook_identity).  Either way the device keeps its id (the user's
 * setting), the change is logged, notified in the UI and listed in
 * /api/state "identity".replaced; its energy totals start afresh. */
static void serials_path(const struct egw *e, char *buf, size_t len)
{
	snprintf(buf, len, "%s/device-serials.json", e->state_dir);
}

static void serials_save(struct egw *e)
{
	char path[PATH_MAX + 32], *text;
	int r;

	serials_path(e, path, sizeof(path));
	text = json_dumps(e->dev_serials, JSON_COMPACT | JSON_SORT_KEYS);
	r = text ? file_write_atomic(path, text, strlen(text), 0644) : -ENOMEM;
	if (r < 0)
		log_warn("devices", "saving %s: %s", path, egw_strerror(r));
	free(text);
}

static json_t *identity_list(struct egw *e, const char *key)
{
	json_t *a;

	if (!e->dev_identity)
		e->dev_identity = json_object();
	a = json_object_get(e->dev_identity, key);
	if (!a && e->dev_identity) {
		a = json_array();
		json_object_set_new(e->dev_identity, key, a);
	}
	return a;
}

static void report_replaced(struct egw *e, struct device *d, const char *was, const char *now,
			    const char *when)
{
	json_t *a = identity_list(e, "replaced");
	if (a)
		json_array_append_new(a,
				      json_pack("{s:s,s:s,s:s,s:I}", "id", device_id(d), "serial",
						now, "was", was, "ts_ms", (json_int_t)wall_ms()));
	if (e->webui)
		webui_notify(e->webui, "warning", device_id(d),
			     "%s: a different device answers (serial %s, was %s%s); it keeps the "
			     "id %s and its totals start afresh",
			     device_id(d), now, was, when, device_id(d));
	log_warn("devices", "%s: a different device answers: serial %s, was %s%s", device_id(d),
		 now, was, when);
}

/* Two entries that identify as one unit (e.g. the same inverter reached
 * through two addresses) would count it twice: reported, not merged. */
static void check_duplicate(struct egw *e, struct device *d)
{
	const char *serial = device_serial(d);
	unsigned n = devices_count(e->devices);

	for (unsigned i = 0; i < n; i++) {
		struct device *o = devices_get(e->devices, i);
		json_t *a;
		if (o == d || strcmp(device_serial(o), serial) != 0 ||
		    strcmp(device_profile_name(o), device_profile_name(d)) != 0)
			continue;
		a = identity_list(e, "duplicates");
		if (a)
			json_array_append_new(a,
					      json_pack("{s:s,s:s,s:s}", "id", device_id(d),
							"same_as", device_id(o), "serial", serial));
		if (e->webui)
			webui_notify(e->webui, "warning", device_id(d),
				     "%s is the same device as %s (serial %s): remove one of them",
				     device_id(d), device_id(o), serial);
		log_warn("devices", "%s is the same device as %s (serial %s)", device_id(d),
			 device_id(o), serial);
		return;
	}
}

/* A device identified: compare with the serial kept for its id. */
static void identified(struct egw *e, struct device *d)
{
	const char *serial = device_serial(d);
	const char *was;

	if (!*serial || !e->dev_serials)
		return;
	check_duplicate(e, d);
	was = json_string_value(json_object_get(e->dev_serials, device_id(d)));
	if (was && strcmp(was, serial) == 0)
		return;
	if (was)
		report_replaced(e, d, was, serial, " when last seen");
	json_object_set_new(e->dev_serials, device_id(d), json_string(serial));
	serials_save(e);
}

static void hook_state(void *ud, struct device *d, int old_state, int new_state, const char *reason)
{
	struct egw *e = ud;
	char why[FSM_REASON_LEN];

	for (size_t i = 0; i < ARRAY_SIZE(sinks); i++)
		if (sinks[i].on_state)
			sinks[i].on_state(e, d, old_state, new_state, reason);
	if (!e->devices || e->gw.state == GW_STOPPING)
		return; /* still being created (the state is set once it exists) or stopping */
	if (new_state == DEV_POLLING && old_state == DEV_IDENTIFYING)
		identified(e, d);
	snprintf(why, sizeof(why), "%s %s", device_id(d), device_state_name(new_state));
	fsm_go(&e->gw, (unsigned)devices_egw_gateway_state(e), why);
}

static void hook_identity(void *ud, struct device *d, const char *old_serial,
			  const char *new_serial)
{
	struct egw *e = ud;
	report_replaced(e, d, old_serial, new_serial, "");
	if (e->dev_serials) {
		/* recorded here so that the identification that follows finds it known */
		json_object_set_new(e->dev_serials, device_id(d), json_string(new_serial));
		serials_save(e);
	}
}

static const struct device_hooks egw_hooks = {
	.on_reading = hook_reading,
	.on_freq = hook_freq,
	.on_missed = hook_missed,
	.on_state = hook_state,
	.on_identity_change = hook_identity,
};

/* ---- /api/state and /metrics ---------------------------------------------- */

static json_t *section_devices(void *ud)
{
	struct egw *e = ud;
	return devices_to_json(e->devices);
}

static json_t *section_identity(void *ud)
{
	struct egw *e = ud;
	if (!e->dev_identity)
		return json_pack("{s:[],s:[]}", "replaced", "duplicates");
	json_t *o = json_deep_copy(e->dev_identity);
	if (o && !json_object_get(o, "replaced"))
		json_object_set_new(o, "replaced", json_array());
	if (o && !json_object_get(o, "duplicates"))
		json_object_set_new(o, "duplicates", json_array());
	return o;
}

static json_t *section_frequency(void *ud)
{
	struct egw *e = ud;
	return e->devices ? devices_frequency_json(e->devices) : json_object();
}

static void metrics(void *ud, struct web_buf *b)
{
	struct egw *e = ud;
	unsigned n = devices_count(e->devices);
	const struct task *t = devices_frequency_task(e->devices);

	web_buf_printf(b,
		       "# HELP egw_device_state 1 for the state each device is in.\n"
		       "# TYPE egw_device_state gauge\n");
	for (unsigned i = 0; i < n; i++) {
		struct device *d = devices_get(e->devices, i);
		for (int s = 0; s < DEV_STATE_COUNT; s++)
			web_buf_printf(b, "egw_device_state{device=\"%s\",state=\"%s\"} %d\n",
				       device_id(d), device_state_name(s), device_state(d) == s);
	}
	static const struct {
		const char *name, *help;
		size_t off;
	} counters[] = {
		{ "egw_device_polls_total", "Poll cycles started.",
		  offsetof(struct device_stats, polls) },
		{ "egw_device_poll_errors_total", "Failed Modbus requests.",
		  offsetof(struct device_stats, errors) },
		{ "egw_device_timeouts_total", "Modbus requests that timed out.",
		  offsetof(struct device_stats, timeouts) },
		{ "egw_device_reconnects_total", "Connections dropped and re-opened.",
		  offsetof(struct device_stats, reconnects) },
		{ "egw_device_transitions_total", "Device state transitions.",
		  offsetof(struct device_stats, transitions) },
	};
	for (size_t c = 0; c < ARRAY_SIZE(counters); c++) {
		web_buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n", counters[c].name,
			       counters[c].help, counters[c].name);
		for (unsigned i = 0; i < n; i++) {
			struct device *d = devices_get(e->devices, i);
			struct device_stats st;
			uint64_t v;
			device_stats(d, &st);
			memcpy(&v, (const char *)&st + counters[c].off, sizeof(v));
			web_buf_printf(b, "%s{device=\"%s\"} %llu\n", counters[c].name,
				       device_id(d), (unsigned long long)v);
		}
	}
	if (!t)
		return;
	/* The 10 Hz read's start lateness, as a Prometheus histogram in seconds. */
	double bounds[SCHED_LATE_BUCKETS - 1];
	for (unsigned k = 0; k < ARRAY_SIZE(bounds); k++)
		bounds[k] = (double)sched_late_bounds[k] / 1e6;
	web_buf_printf(
		b,
		"# HELP egw_frequency_read_lateness_seconds How late each frequency read started.\n"
		"# TYPE egw_frequency_read_lateness_seconds histogram\n");
	web_buf_histogram(b, "egw_frequency_read_lateness_seconds", NULL, NULL, bounds,
			  ARRAY_SIZE(bounds), t->stats.late_hist, (double)t->stats.late_sum / 1e6);
}

/* ---- lifecycle -------------------------------------------------------------- */

int devices_egw_pin_ids(struct settings *s)
{
	const json_t *cur = settings_values(s)->devices;
	struct settings_error err = { 0 };
	char id[DEVCONF_ID_LEN];
	json_t *arr, *d;
	size_t i;
	int n = 0, r;

	if (!json_is_array(cur))
		return 0;
	arr = json_deep_copy(cur);
	if (!arr)
		return -ENOMEM;
	json_array_foreach (arr, i, d) {
		if (!json_is_object(d) || json_object_get(d, "id"))
			continue;
		devconf_entry_id(d, i, id, sizeof(id));
		if (json_object_set_new(d, "id", json_string(id)) < 0) {
			json_decref(arr);
			return -ENOMEM;
		}
		n++;
	}
	r = n ? settings_set(s, "devices", arr, &err) : 0;
	json_decref(arr);
	if (r < 0)
		return r;
	if (n) {
		r = settings_save(s);
		if (r < 0)
			return r;
	}
	return n;
}

int devices_egw_init(struct egw *e)
{
	struct devices_config cfg;
	char err[256] = "";
	int r;

	egw_config(e, &cfg);
	{
		char path[PATH_MAX + 32];
		serials_path(e, path, sizeof(path));
		e->dev_serials = json_load_file(path, 0, NULL);
		if (!json_is_object(e->dev_serials)) {
			json_decref(e->dev_serials);
			e->dev_serials = json_object(); /* none yet, or unreadable: start afresh */
		}
	}
	r = devices_new(e->loop, settings_values(e->settings)->devices, &cfg, &egw_hooks, e,
			&e->devices, err, sizeof(err));
	if (r < 0) {
		log_error("devices", "%s", err[0] ? err : egw_strerror(r));
		return r;
	}
	if (e->web) {
		web_add_section(e->web, "devices", section_devices, e, true);
		web_add_section(e->web, "frequency", section_frequency, e, true);
		web_add_section(e->web, "identity", section_identity, e, true);
		web_add_metrics(e->web, metrics, e);
	}
	log_info("devices", "%u device(s), polling every %u ms, frequency every %u ms",
		 devices_count(e->devices), cfg.poll_interval_ms, cfg.freq_interval_ms);
	return 0;
}

void devices_egw_fini(struct egw *e)
{
	struct devices *ds = e->devices;
	e->devices = NULL; /* hooks fired while freeing see no set */
	devices_free(ds);
	json_decref(e->dev_serials);
	e->dev_serials = NULL;
	json_decref(e->dev_identity);
	e->dev_identity = NULL;
}

int devices_egw_apply(struct egw *e, char *err, size_t errlen)
{
	int r;

	if (!e->devices)
		return 0;
	r = devices_apply(e->devices, settings_values(e->settings)->devices, err, errlen);
	if (r < 0)
		log_error("devices", "keeping the current devices: %s",
			  err[0] ? err : egw_strerror(r));
	else
		devices_set_freq_device(e->devices,
					(int)settings_values(e->settings)->frequency_device);
	return r;
}
