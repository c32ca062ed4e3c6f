/* The live stream (GET /api/live, server-sent events) and the device hooks
 * that feed it. */
#include "web/webui_int.h"

/* ---- live stream (SSE) -------------------------------------------------- */

static void live_wake(void *ud)
{
	struct live_conn *lc = ud;
	lc->resumed = true;
	webui_resume(lc->u, lc->conn);
}

static ssize_t live_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct live_conn *lc = cls;
	ssize_t n;
	(void)pos;

	lc->resumed = false;
	if (!lc->u)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (lc->pre_off < lc->pre_len) {
		size_t k = MIN(max, lc->pre_len - lc->pre_off);
		memcpy(buf, lc->pre + lc->pre_off, k);
		lc->pre_off += k;
		return (ssize_t)k;
	}
	n = sse_client_read(lc->client, buf, max);
	if (n > 0)
		return n;
	if (n < 0)
		return MHD_CONTENT_READER_END_WITH_ERROR; /* fell a ring behind: dropped */
	/* Nothing pending: park the connection until the hub wakes us. */
	MHD_suspend_connection(lc->conn);
	return 0;
}

static void live_free(void *cls)
{
	struct live_conn *lc = cls;

	if (lc->u) {
		for (struct live_conn **pp = &lc->u->live; *pp; pp = &(*pp)->next)
			if (*pp == lc) {
				*pp = lc->next;
				break;
			}
		sse_client_detach(lc->client);
	}
	free(lc);
}

int webui_h_live(struct web_request *rq)
{
	struct webui *u = webui_of(rq);
	struct MHD_Response *resp;
	struct live_conn *lc;
	int ret;

	if (!u)
		return web_reply_error(rq, 503, "live stream not available", NULL);
	lc = calloc(1, sizeof(*lc));
	if (!lc)
		return web_reply_error(rq, 500, "out of memory", NULL);
	web_peer_key(rq->conn, lc->peer);
	unsigned mine = 0;
	for (struct live_conn *o = u->live; o; o = o->next)
		mine += memcmp(o->peer, lc->peer, 16) == 0;
	if (mine >= LIVE_PER_ADDRESS) {
		/* the rest of the streams stay for other addresses */
		free(lc);
		return web_reply_error(rq, 429, "too many live streams from this address", NULL);
	}
	if (sse_client_attach(u->hub, live_wake, lc, &lc->client) < 0) {
		free(lc);
		return web_reply_error(rq, 503, "too many live clients", NULL);
	}
	lc->u = u;
	lc->conn = rq->conn;
	lc->pre_len =
		(size_t)snprintf(lc->pre, sizeof(lc->pre), "retry: 2000\n: egw live stream\n\n");
	/* The block libmicrohttpd buffers per stream: events are a few hundred
	 * bytes and live_read hands out any part of one, so 1 KiB does (4 KiB
	 * cost 3 KiB more per client for nothing). */
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024, live_read, lc, live_free);
	if (!resp) {
		sse_client_detach(lc->client);
		free(lc);
		return web_reply_error(rq, 500, "out of memory", NULL);
	}
	lc->next = u->live;
	u->live = lc;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	ret = web_reply_response(rq, 200, resp);
	MHD_destroy_response(resp);
	return ret;
}

int webui_heartbeat(struct task *t, usec_t now)
{
	struct webui *u = container_of(t, struct webui, heartbeat);
	(void)now;
	/* Keeps proxies from closing idle streams and finds dead clients. */
	sse_hub_comment(u->hub, "ping");
	return 0;
}

static void publish_json(struct webui *u, const char *event, json_t *j)
{
	char *s;

	if (!j)
		return;
	s = json_dumps(j, JSON_COMPACT | READING_JSON_REALS);
	json_decref(j);
	if (s) {
		sse_hub_publish(u->hub, event, s, strlen(s));
		free(s);
	}
}

/* ---- device hooks ------------------------------------------------------- */

static struct dev_hist *hist_get(struct webui *u, const char *id)
{
	for (unsigned i = 0; i < u->nhists; i++)
		if (strcmp(u->hists[i].id, id) == 0)
			return &u->hists[i];
	if (u->nhists == WEBUI_MAX_DEVICES)
		return NULL;
	snprintf(u->hists[u->nhists].id, sizeof(u->hists[0].id), "%s", id);
	return &u->hists[u->nhists++];
}

void webui_on_reading(struct webui *u, struct device *d, int64_t ts_ms, const struct reading *r)
{
	struct device_stats st;
	struct dev_hist *h;
	json_t *rj;

	if (!u)
		return;
	device_stats(d, &st);
	h = hist_get(u, device_id(d));
	if (h) {
		double s = (double)st.latency_last_us / 1e6;
		unsigned k = 0;
		while (k < ARRAY_SIZE(lat_bounds) && s > lat_bounds[k])
			k++;
		h->hist[k]++;
		h->sum += s;
		h->count++;
		h->readings++;
	}
	rj = reading_to_json(r);
	if (rj)
		publish_json(u, "reading",
			     json_pack("{s:s,s:I,s:s,s:s,s:o}", "device", device_id(d), "ts_ms",
				       (json_int_t)ts_ms, "profile", device_profile_name(d),
				       "state", device_state_name(device_state(d)), "reading", rj));
}

void webui_on_freq(struct webui *u, struct device *d, int64_t ts_ms, double hz)
{
	struct timespec ts;
	char buf[256];
	int n;

	if (!u)
		return;
	u->freq_hz = hz;
	u->freq_ts_ms = ts_ms;
	u->freq_samples++;
	if (!devconf_id_ok(device_id(d)))
		return; /* ids outside [A-Za-z0-9_.-] are not sent unescaped */
	clock_gettime(CLOCK_REALTIME, &ts);
	/* Formatted by hand: this runs at 10 Hz and the ids are plain. */
	n = snprintf(buf, sizeof(buf),
		     "{\"device\":\"%s\",\"ts_ms\":%" PRId64 ",\"hz\":%.4f,\"t_us\":%" PRId64 "}",
		     device_id(d), ts_ms, hz, (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
	if (n > 0 && (size_t)n < sizeof(buf) && isfinite(hz))
		sse_hub_publish(u->hub, "freq", buf, (size_t)n);
}

void webui_on_state(struct webui *u, struct device *d, int old_state, int new_state,
		    const char *reason)
{
	char key[96];

	if (!u)
		return;
	snprintf(key, sizeof(key), "device:%s", device_id(d));
	publish_json(u, "state",
		     json_pack("{s:s,s:s,s:s,s:s}", "device", device_id(d), "old",
			       device_state_name(old_state), "new", device_state_name(new_state),
			       "reason", reason ? reason : ""));
	if (old_state == DEV_POLLING && new_state != DEV_POLLING)
		webui_notify(u, "warning", key, "device %s lost: %s (%s)", device_id(d),
			     device_state_name(new_state), reason ? reason : "");
	else if (new_state == DEV_POLLING)
		webui_note_clear(u, key);
}
