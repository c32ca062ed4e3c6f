/* The server's own routes: hello, version, uptime, state, crypto, name,
 * settings and metrics. */
#include "web/web_int.h"

/* ---- handlers --------------------------------------------------------- */

int web_h_hello(struct web_request *rq)
{
	return web_reply_response(rq, 200, rq->web->hello);
}

int web_h_version(struct web_request *rq)
{
	json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "version", EGW_VERSION, "name", "egw",
			      "microhttpd", MHD_get_version(), "jansson", JANSSON_VERSION, "sqlite",
			      sqlite3_libversion(), "openssl", OpenSSL_version(OPENSSL_VERSION));
	return web_reply_json(rq, 200, o);
}

int web_h_uptime(struct web_request *rq)
{
	return web_reply_json(rq, 200,
			      json_pack("{s:I}", "msek", (json_int_t)web_uptime_ms(rq->egw)));
}

int web_h_state(struct web_request *rq)
{
	return web_reply_json(rq, 200, web_state_doc(rq->web, false));
}

static int h_section(struct web_request *rq, const char *name)
{
	const struct section *s = web_find_section(rq->web, name);
	char msg[96];
	if (!s) {
		snprintf(msg, sizeof(msg), "%s is not available", name);
		return web_reply_error(rq, 503, msg, NULL);
	}
	json_t *v = s->fn(s->ud);
	if (!v) {
		snprintf(msg, sizeof(msg), "%s is not available yet", name);
		return web_reply_error(rq, 503, msg, NULL);
	}
	return web_reply_json(rq, 200, v);
}

int web_h_crypto(struct web_request *rq)
{
	return h_section(rq, "crypto");
}
int web_h_name(struct web_request *rq)
{
	return h_section(rq, "name");
}

int web_h_settings_get(struct web_request *rq)
{
	struct web *w = rq->web;
	uint64_t gen = settings_generation(rq->egw->settings);

	if (!w->settings_resp || w->settings_gen != gen) {
		json_t *doc = settings_to_json(rq->egw->settings, true);
		char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
		struct MHD_Response *r;

		json_decref(doc);
		if (!text)
			return web_reply_error(rq, 500, "out of memory", NULL);
		r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
		if (!r) {
			free(text);
			return web_reply_error(rq, 500, "out of memory", NULL);
		}
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
		MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
		/* Answers still being sent keep the old copy until they are done. */
		if (w->settings_resp)
			MHD_destroy_response(w->settings_resp);
		w->settings_resp = r;
		w->settings_gen = gen;
	}
	return web_reply_response(rq, 200, w->settings_resp);
}

int web_h_settings_post(struct web_request *rq)
{
	struct egw *e = rq->egw;
	struct settings_error err = { 0 };
	json_error_t je;
	json_t *patch;
	char msg[320];
	int r;

	if (!rq->body || !rq->body_len)
		return web_reply_error(rq, 400, "empty body: expected a JSON object", NULL);
	patch = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &je);
	if (!patch) {
		snprintf(msg, sizeof(msg), "malformed JSON at %d:%d: %s", je.line, je.column,
			 je.text);
		return web_reply_error(rq, 400, msg, NULL);
	}
	/* Answered 200 only once applied and saved; refused with nothing saved. */
	r = e->settings_commit(e, patch, &err);
	json_decref(patch);
	if (r == -ENOMEM)
		return web_reply_error(rq, 500, "out of memory", NULL);
	if (r == -EGW_ESCHEMA)
		return web_reply_error(rq, 400, err.msg, err.key);
	if (r < 0)
		return web_reply_error(rq, 500, err.msg, NULL);
	return web_reply_json(rq, 200, settings_to_json(e->settings, true));
}

/* Prometheus text format 0.0.4. */
struct task_agg {
	const char *name;
	uint64_t hist[SCHED_LATE_BUCKETS];
	usec_t sum;
	uint64_t runs, failures, skipped;
};

struct task_aggs {
	struct task_agg a[SCHED_MAX_NAMES];
	unsigned n;
};

/* The scheduler's totals by name: they outlive the tasks, so the counters
 * built on them never go back (a removed device, a one-shot task). */
static void agg_task(const struct sched_totals *tt, void *ud)
{
	struct task_aggs *ta = ud;
	struct task_agg *g;

	if (ta->n >= ARRAY_SIZE(ta->a))
		return;
	g = &ta->a[ta->n++];
	g->name = tt->name;
	for (unsigned i = 0; i < SCHED_LATE_BUCKETS; i++)
		g->hist[i] = tt->stats.late_hist[i];
	g->sum = tt->stats.late_sum;
	g->runs = tt->stats.runs;
	g->failures = tt->stats.failures;
	g->skipped = tt->stats.skipped;
}

static void metrics_fsm(struct web_buf *b, const struct fsm *f)
{
	for (unsigned a = 0; a < f->def->nstates; a++)
		for (unsigned c = 0; c < f->def->nstates; c++) {
			if (!f->counts[a][c])
				continue;
			web_buf_printf(
				b,
				"egw_state_transitions_total{machine=\"%s\",from=\"%s\",to=\"%s\"} %" PRIu64
				"\n",
				f->label, fsm_name(f->def, a), fsm_name(f->def, c),
				f->counts[a][c]);
		}
}

/* Device state machines, from the "devices" section (an array of objects
 * with "id", "state" and "fsm": fsm_to_json). */
static void metrics_devices(struct web_buf *b, struct web *w)
{
	const struct section *s = web_find_section(w, "devices");
	json_t *devs = s ? s->fn(s->ud) : NULL;
	size_t i;
	json_t *d;

	json_array_foreach (devs, i, d) {
		const char *id = json_string_value(json_object_get(d, "id"));
		json_t *counts = json_object_get(json_object_get(d, "fsm"), "counts");
		const char *pair;
		json_t *n;
		if (!id)
			continue;
		json_object_foreach (counts, pair, n) {
			const char *arrow = strstr(pair, " -> ");
			if (!arrow || !json_is_integer(n))
				continue;
			web_buf_puts(b, "egw_state_transitions_total{machine=\"device\",device=\"");
			web_buf_label(b, id);
			web_buf_puts(b, "\",from=\"");
			char from[32];
			snprintf(from, sizeof(from), "%.*s",
				 (int)MIN((size_t)(arrow - pair), sizeof(from) - 1), pair);
			web_buf_label(b, from);
			web_buf_puts(b, "\",to=\"");
			web_buf_label(b, arrow + 4);
			web_buf_printf(b, "\"} %" JSON_INTEGER_FORMAT "\n", json_integer_value(n));
		}
	}
	json_decref(devs);
}

int web_h_metrics(struct web_request *rq)
{
	struct web *w = rq->web;
	struct egw *e = rq->egw;
	struct web_buf b = { 0 };
	struct task_aggs *ta = calloc(1, sizeof(*ta));
	double late_bounds_s[SCHED_LATE_BUCKETS - 1]; /* the scheduler's, in seconds */

	if (!ta)
		return web_reply_error(rq, 500, "out of memory", NULL);
	for (unsigned k = 0; k < ARRAY_SIZE(late_bounds_s); k++)
		late_bounds_s[k] = (double)sched_late_bounds[k] / 1e6;
	web_buf_printf(&b,
		       "# HELP egw_uptime_seconds Time since egwd started.\n"
		       "# TYPE egw_uptime_seconds gauge\negw_uptime_seconds %.3f\n",
		       (double)web_uptime_ms(e) / 1000.0);
	web_buf_printf(&b,
		       "# HELP egw_build_info egwd version.\n# TYPE egw_build_info gauge\n"
		       "egw_build_info{version=\"%s\"} 1\n",
		       EGW_VERSION);
	struct mem_usage mu;
	if (mem_usage_read(&mu) == 0)
		web_buf_printf(
			&b,
			"# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
			"# TYPE process_resident_memory_bytes gauge\n"
			"process_resident_memory_bytes %llu\n"
			"# HELP egw_memory_private_bytes Memory that is egwd's alone "
			"(Private_Clean + Private_Dirty).\n"
			"# TYPE egw_memory_private_bytes gauge\negw_memory_private_bytes %llu\n"
			"# HELP egw_memory_private_dirty_bytes Memory egwd has written and "
			"alone holds (Private_Dirty): its budget.\n"
			"# TYPE egw_memory_private_dirty_bytes gauge\negw_memory_private_dirty_bytes %llu\n"
			"# HELP egw_memory_pss_bytes Proportional set size: shared pages "
			"divided among their sharers.\n"
			"# TYPE egw_memory_pss_bytes gauge\negw_memory_pss_bytes %llu\n",
			(unsigned long long)mu.rss_kb * 1024,
			(unsigned long long)mu.private_kb * 1024,
			(unsigned long long)mu.private_dirty_kb * 1024,
			(unsigned long long)mu.pss_kb * 1024);

	web_buf_printf(&b,
		       "# HELP egw_gateway_state 1 for the current gateway state.\n"
		       "# TYPE egw_gateway_state gauge\n");
	for (unsigned s = 0; s < e->gw.def->nstates; s++)
		web_buf_printf(&b, "egw_gateway_state{state=\"%s\"} %d\n", fsm_name(e->gw.def, s),
			       e->gw.state == s);
	web_buf_printf(&b,
		       "# HELP egw_state_transitions_total State machine transitions.\n"
		       "# TYPE egw_state_transitions_total counter\n");
	metrics_fsm(&b, &e->gw);
	metrics_devices(&b, w);

	web_buf_printf(
		&b,
		"# HELP egw_http_requests_total HTTP requests answered by route and status.\n"
		"# TYPE egw_http_requests_total counter\n");
	for (unsigned r = 0; r <= NROUTES; r++)
		for (unsigned c = 0; c <= NCODES; c++) {
			if (!w->requests[r][c])
				continue;
			char code[8];
			if (c < NCODES)
				snprintf(code, sizeof(code), "%u", web_counted_codes[c]);
			else
				snprintf(code, sizeof(code), "other");
			web_buf_printf(
				&b,
				"egw_http_requests_total{route=\"%s %s\",code=\"%s\"} %" PRIu64
				"\n",
				r < NROUTES ? web_route_table[r].method : "",
				r < NROUTES ? web_route_table[r].path : "unmatched", code,
				w->requests[r][c]);
		}
	web_buf_printf(
		&b,
		"# HELP egw_http_auth_failures_total Requests with a missing or wrong token.\n"
		"# TYPE egw_http_auth_failures_total counter\negw_http_auth_failures_total %" PRIu64
		"\n",
		w->auth_failures);
	web_buf_printf(
		&b,
		"# HELP egw_http_auth_limited_total Requests refused by the token rate limit.\n"
		"# TYPE egw_http_auth_limited_total counter\negw_http_auth_limited_total %" PRIu64
		"\n",
		w->auth_limited);

	sched_foreach_totals(loop_sched(w->loop), agg_task, ta);
	web_buf_printf(&b,
		       "# HELP egw_task_lateness_seconds How late each task run started.\n"
		       "# TYPE egw_task_lateness_seconds histogram\n");
	for (unsigned i = 0; i < ta->n; i++)
		web_buf_histogram(&b, "egw_task_lateness_seconds", "task", ta->a[i].name,
				  late_bounds_s, ARRAY_SIZE(late_bounds_s), ta->a[i].hist,
				  (double)ta->a[i].sum / 1e6);
	web_buf_printf(
		&b, "# HELP egw_task_runs_total Task runs.\n# TYPE egw_task_runs_total counter\n");
	for (unsigned i = 0; i < ta->n; i++) {
		web_buf_puts(&b, "egw_task_runs_total{task=\"");
		web_buf_label(&b, ta->a[i].name);
		web_buf_printf(&b, "\"} %" PRIu64 "\n", ta->a[i].runs);
	}
	web_buf_printf(
		&b,
		"# HELP egw_task_failures_total Task runs that failed.\n# TYPE egw_task_failures_total counter\n");
	for (unsigned i = 0; i < ta->n; i++) {
		web_buf_puts(&b, "egw_task_failures_total{task=\"");
		web_buf_label(&b, ta->a[i].name);
		web_buf_printf(&b, "\"} %" PRIu64 "\n", ta->a[i].failures);
	}
	free(ta);
	for (unsigned i = 0; i < w->nmetrics; i++)
		w->metrics[i].fn(w->metrics[i].ud, &b);
	if (b.failed || !b.data) {
		web_buf_free(&b);
		return web_reply_error(rq, 500, "out of memory", NULL);
	}
	return web_reply_owned(rq, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
}

int web_h_status(struct web_request *rq)
{
	struct web_buf b = { 0 };
	json_t *st = web_state_doc(rq->web, true);
	if (!st)
		return web_reply_error(rq, 500, "out of memory", NULL);
	web_status_page(&b, st);
	json_decref(st);
	if (b.failed || !b.data) {
		web_buf_free(&b);
		return web_reply_error(rq, 500, "out of memory", NULL);
	}
	return web_reply_owned(rq, 200, "text/html; charset=utf-8", b.data, b.len);
}
