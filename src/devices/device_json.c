/* The JSON views of devices and of the frequency task (/api/state). */
#include "devices/device_int.h"

/* ---- JSON ------------------------------------------------------------------ */

static void set_u64(json_t *o, const char *k, uint64_t v)
{
	json_object_set_new(o, k, json_integer((json_int_t)v));
}

static void set_ms(json_t *o, const char *k, usec_t us)
{
	json_object_set_new(o, k, json_real((double)us / 1000.0));
}

static json_t *stats_json(const struct device *d)
{
	struct device_stats s;
	struct mb_client_stats mcs;
	const struct mb_client_stats *cs = &mcs;
	json_t *o = json_object(), *m = json_object();
	uint64_t cycles;

	if (!o || !m) {
		json_decref(o);
		json_decref(m);
		return NULL;
	}
	device_stats(d, &s);
	device_client_stats(d, &mcs);
	cycles = s.polls_ok + s.polls_partial;
	set_u64(o, "polls", s.polls);
	set_u64(o, "polls_ok", s.polls_ok);
	set_u64(o, "polls_partial", s.polls_partial);
	set_u64(o, "overruns", s.overruns);
	set_u64(o, "reads", s.reads);
	set_u64(o, "errors", s.errors);
	set_u64(o, "timeouts", s.timeouts);
	set_u64(o, "exceptions", s.exceptions);
	set_u64(o, "reconnects", s.reconnects);
	set_u64(o, "transitions", s.transitions);
	set_u64(o, "identity_changes", s.identity_changes);
	set_u64(o, "totals_suppressed", s.totals_suppressed);
	json_object_set_new(o, "last_good_ms",
			    s.last_good_ms ? json_integer(s.last_good_ms) : json_null());
	set_ms(o, "latency_last_ms", s.latency_last_us);
	set_ms(o, "latency_max_ms", s.latency_max_us);
	set_ms(o, "latency_mean_ms", cycles ? s.latency_sum_us / (usec_t)cycles : 0);
	json_object_set_new(o, "last_error",
			    s.last_error ? json_string(egw_strerror(s.last_error)) : json_null());
	if (d->p1) {
		/* No Modbus behind a P1 meter: its telegram counters instead. */
		json_decref(m);
		json_object_set_new(o, "p1", p1dev_json(d->p1));
		return o;
	}
	set_u64(m, "requests", cs->requests);
	set_u64(m, "responses", cs->responses);
	set_u64(m, "errors", cs->errors);
	set_u64(m, "timeouts", cs->timeouts);
	set_u64(m, "exceptions", cs->exceptions);
	set_u64(m, "connects", cs->connects);
	set_u64(m, "reconnects", cs->reconnects);
	set_u64(m, "tid_mismatches", cs->tid_mismatches);
	set_u64(m, "bytes_garbage", cs->bytes_garbage);
	if (d->conf.kind == MB_TRANSPORT_SOLARMAN)
		set_u64(m, "unsolicited", cs->unsolicited);
	set_ms(m, "latency_p50_ms", mb_client_latency_percentile(d->link->client, 50));
	set_ms(m, "latency_p99_ms", mb_client_latency_percentile(d->link->client, 99));
	json_object_set_new(m, "connected", json_boolean(mb_client_connected(d->link->client)));
	set_u64(m, "devices_on_link", d->link->refs);
	json_object_set_new(o, "modbus", m);
	return o;
}

static json_t *conn_json(const struct dev_conf *c)
{
	if (c->p1 && c->kind == MB_TRANSPORT_RTU)
		return json_pack("{ss ss si ss# si si}", "connection", "serial", "serial_port",
				 c->serial_port, "baudrate", (int)c->baudrate, "parity", &c->parity,
				 (int)1, "databits", (int)c->databits, "stopbits",
				 (int)(c->stopbits ? c->stopbits : 1));
	if (c->p1)
		return json_pack("{ss ss si}", "connection", "tcp", "host", c->host, "port",
				 (int)c->port);
	if (c->kind == MB_TRANSPORT_RTU)
		return json_pack("{ss ss si si ss# si si}", "connection", conn_names[c->kind],
				 "serial_port", c->serial_port, "baudrate", (int)c->baudrate,
				 "unit_id", (int)c->unit, "parity", &c->parity, (int)1, "stopbits",
				 (int)(c->stopbits ? c->stopbits : (c->parity == 'N' ? 2 : 1)),
				 "proxy_unit_id", (int)c->proxy_unit);
	if (c->kind == MB_TRANSPORT_SOLARMAN)
		return json_pack("{ss ss si sI si si}", "connection", conn_names[c->kind], "host",
				 c->host, "port", (int)c->port, "logger_serial",
				 (json_int_t)c->logger_serial, "unit_id", (int)c->unit,
				 "proxy_unit_id", (int)c->proxy_unit);
	return json_pack("{ss ss si si si}", "connection", conn_names[c->kind], "host", c->host,
			 "port", (int)c->port, "unit_id", (int)c->unit, "proxy_unit_id",
			 (int)c->proxy_unit);
}

/* [{"fc":4,"addr":12999,"count":119,"skipped":57,"retry_in_s":540}, ...] */
static json_t *unsupported_json(const struct device *d)
{
	json_t *a = json_array();
	usec_t now = loop_now(d->set->loop);
	usec_t every = (usec_t)d->set->cfg.unsupported_retry_ms * 1000;

	for (unsigned i = 0; a && i < d->nunsup; i++) {
		const struct dev_unsupported *u = &d->unsup[i];
		usec_t left = now - u->at < every ? every - (now - u->at) : 0;
		json_array_append_new(a,
				      json_pack("{si si si sI sI}", "fc", (int)u->b.fc, "addr",
						(int)u->b.addr, "count", (int)u->b.count, "skipped",
						(json_int_t)u->skipped, "retry_in_s",
						(json_int_t)((left + 999999) / 1000000)));
	}
	return a;
}

json_t *device_to_json(const struct device *d)
{
	json_t *reading = d->have_reading ? reading_to_json(&d->last) : json_null();
	json_t *fsm = fsm_to_json(&d->fsm);

	return json_pack("{ss ss ss ss ss s:o s:o s:o s:o sI si s:o}", "id", d->conf.id, "name",
			 d->conf.name, "state", device_state_name(device_state(d)), "profile",
			 device_profile_name(d), "serial", d->serial, "reading",
			 reading ? reading : json_null(), "stats", stats_json(d), "connection",
			 conn_json(&d->conf), "fsm", fsm ? fsm : json_null(), "transitions",
			 (json_int_t)d->st.transitions, "poll_interval_ms", (int)device_poll_ms(d),
			 /* blocks refused with exception 2: skipped, values absent */
			 "unsupported_blocks", unsupported_json(d));
}

json_t *devices_to_json(const struct devices *ds)
{
	json_t *a = json_array();
	for (unsigned i = 0; a && ds && i < ds->n; i++) {
		json_t *o = device_to_json(ds->dev[i]);
		if (o)
			json_array_append_new(a, o);
	}
	return a;
}

/* Upper bound of the bucket holding the pct-th percentile, in usec. */
static usec_t late_pct(const struct devices *ds, double pct)
{
	uint64_t want = (uint64_t)((double)ds->late_n * pct / 100.0 + 0.5), acc = 0;
	if (!ds->late_n)
		return 0;
	if (want == 0)
		want = 1;
	for (unsigned i = 0; i < LATE_BUCKETS; i++) {
		acc += ds->late[i];
		if (acc >= want)
			return (usec_t)(i + 1) * LATE_STEP_US;
	}
	return ds->late_max;
}

json_t *devices_frequency_json(const struct devices *ds)
{
	int64_t ts[FREQ_RING];
	double hz[FREQ_RING];
	unsigned n = 0;
	json_t *samples = json_array();
	json_t *latest = json_null(), *stats = json_null();
	const struct task *t = &ds->freq_task;

	if (ds->ring_len) {
		unsigned newest = (ds->ring_head + FREQ_RING - 1) % FREQ_RING;
		int64_t cutoff = ds->ring[newest].ts_ms - 1000;
		/* Oldest first, the last second only. */
		for (unsigned k = 0; k < ds->ring_len; k++) {
			unsigned i = (ds->ring_head + FREQ_RING - ds->ring_len + k) % FREQ_RING;
			if (ds->ring[i].ts_ms <= cutoff)
				continue;
			ts[n] = ds->ring[i].ts_ms;
			hz[n] = ds->ring[i].hz;
			n++;
			if (samples)
				json_array_append_new(samples,
						      json_pack("[I f]",
								(json_int_t)ds->ring[i].ts_ms,
								ds->ring[i].hz));
		}
		json_decref(latest);
		latest = json_pack("{sI sf}", "ts_ms", (json_int_t)ds->ring[newest].ts_ms, "hz",
				   ds->ring[newest].hz);
		struct freq_stats s;
		if (freq_stats_compute(ts, hz, n, &s) == 0) {
			json_decref(stats);
			stats = json_pack("{sf sf sf sf si}", "mean", s.mean, "min", s.min, "max",
					  s.max, "rocof_hz_s", round(s.rocof * 1e6) / 1e6, "n",
					  (int)s.n);
		}
	}
	return json_pack(
		"{s:o si s:o s:o s:o sI sI sI s:o s{sf sf sf sf sf sI}}", "device",
		ds->primary ? json_string(ds->primary->conf.id) : json_null(), "interval_ms",
		(int)ds->cfg.freq_interval_ms, "latest", latest ? latest : json_null(), "samples",
		samples ? samples : json_array(), "stats_1s", stats ? stats : json_null(), "reads",
		(json_int_t)ds->freq_reads, "errors", (json_int_t)ds->freq_errors, "skipped",
		(json_int_t)ds->freq_skipped, "last_error",
		ds->freq_last_err ? json_string(egw_strerror(ds->freq_last_err)) : json_null(),
		"lateness_us", "p50", (double)late_pct(ds, 50), "p99", (double)late_pct(ds, 99),
		"p999", (double)late_pct(ds, 99.9), "max", (double)ds->late_max, "last",
		(double)t->stats.late_last, "runs", (json_int_t)ds->late_n);
}

const struct task *devices_frequency_task(const struct devices *ds)
{
	return ds && ds->primary ? &ds->freq_task : NULL;
}
