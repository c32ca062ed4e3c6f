/* The web UI's shared helpers, the assets route, the MQTT lifecycle, health
 * notifications and the lifecycle of struct webui (see webui.h). */
#include "web/webui_int.h"

/* ---- small helpers ------------------------------------------------------ */

/* Counts one request from the client of rq; false when over a limit. */
bool webui_limit(struct limiter *l, struct web_request *rq, usec_t now)
{
	struct limit_peer *p = NULL;
	uint8_t key[16];

	web_peer_key(rq->conn, key);
	if (now - l->all_start >= l->window) {
		l->all_start = now;
		l->all_n = 0;
	}
	for (unsigned i = 0; i < LIMIT_PEERS && !p; i++)
		if (l->peers[i].start && memcmp(l->peers[i].addr, key, 16) == 0)
			p = &l->peers[i];
	if (!p) {
		p = &l->peers[0];
		for (unsigned i = 1; i < LIMIT_PEERS && p->start; i++)
			if (l->peers[i].start < p->start)
				p = &l->peers[i];
		*p = (struct limit_peer){ .start = now };
		memcpy(p->addr, key, 16);
	}
	if (now - p->start >= l->window) {
		p->start = now;
		p->n = 0;
	}
	if (p->n >= l->per_addr || l->all_n >= l->all)
		return false;
	p->n++;
	l->all_n++;
	return true;
}

struct webui *webui_of(struct web_request *rq)
{
	return rq->egw->webui;
}

const char *webui_query(struct web_request *rq, const char *key)
{
	return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, key);
}

/* Parses an unsigned integer in [min, max] (decimal or 0x hex). */
int webui_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *ret)
{
	char *end;
	unsigned long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

void webui_client_addr(struct web_request *rq, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	snprintf(buf, len, "?");
	if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, buf,
			  (socklen_t)len);
	else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr, buf,
			  (socklen_t)len);
}

json_t *webui_body_json(struct web_request *rq, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j;

	if (!rq->body || rq->body_len == 0) {
		snprintf(err, errlen, "missing JSON body");
		return NULL;
	}
	j = json_loadb(rq->body, rq->body_len, 0, &je);
	if (!j)
		snprintf(err, errlen, "malformed JSON: %s (line %d)", je.text, je.line);
	else if (!json_is_object(j)) {
		snprintf(err, errlen, "expected a JSON object");
		json_decref(j);
		j = NULL;
	}
	return j;
}

/* Resumes a suspended connection.  libmicrohttpd only handles a resumed
 * connection on a later MHD_run; the web server's loop watch may not fire
 * again by itself, so a one-shot task runs MHD once more. */
void webui_resume(struct webui *u, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci;

	MHD_resume_connection(conn);
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_DAEMON);
	for (unsigned i = 0; ci && i < ARRAY_SIZE(u->daemons); i++)
		if (!u->daemons[i] || u->daemons[i] == ci->daemon) {
			u->daemons[i] = ci->daemon;
			break;
		}
	if (u->daemons[0] && !sched_queued(&u->kick))
		loop_task_add(u->e->loop, &u->kick, loop_now(u->e->loop));
}

static int on_kick(struct task *t, usec_t now)
{
	struct webui *u = container_of(t, struct webui, kick);
	MHD_UNSIGNED_LONG_LONG ms = 1;
	bool pending = false;

	if (!u->daemons[0])
		return 0;
	for (unsigned i = 0; i < ARRAY_SIZE(u->daemons) && u->daemons[i]; i++)
		MHD_run(u->daemons[i]);
	/* A resumed connection may only be served on a later MHD_run, and data
	 * taken from a stream may still wait in MHD's buffer (MHD then reports a
	 * zero timeout): run MHD again, briefly, until both are done.  web.c's
	 * own timer only looks at MHD's timeout after its own runs. */
	for (struct live_conn *lc = u->live; lc; lc = lc->next)
		pending |= lc->resumed;
	for (unsigned i = 0; i < ARRAY_SIZE(u->daemons) && u->daemons[i]; i++)
		if (MHD_get_timeout(u->daemons[i], &ms) == MHD_YES && ms == 0)
			pending = true;
	if (pending && ++u->kicks < 1000)
		loop_task_add(u->e->loop, &u->kick, now + 50);
	else
		u->kicks = 0;
	return 0;
}

/* ---- assets ------------------------------------------------------------- */

int webui_h_asset(struct web_request *rq)
{
	/* Browsers ask for /favicon.ico on their own: answer with the SVG icon
	 * (its Content-Type says what it is). */
	const struct asset *a =
		assets_find(strcmp(rq->path, "/favicon.ico") == 0 ? "/favicon.svg" : rq->path);
	const char *inm;
	struct MHD_Response *resp;
	unsigned status = 200;
	int ret;

	if (!a)
		return web_reply_error(rq, 404, "no such path", NULL);
	inm = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
	if (assets_not_modified(a, inm)) {
		status = 304;
		resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	} else {
		resp = MHD_create_response_from_buffer(a->size, (void *)a->data,
						       MHD_RESPMEM_PERSISTENT);
	}
	if (!resp)
		return MHD_NO;
	if (status == 200)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, a->etag);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (strncmp(a->type, "text/html", 9) == 0) {
		MHD_add_response_header(
			resp, "Content-Security-Policy",
			"default-src 'self'; img-src 'self' data:; object-src 'none'; "
			"frame-ancestors 'none'; base-uri 'none'");
		MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	}
	ret = web_reply_response(rq, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ---- health notifications --------------------------------------------- */

#define WATCH_PERIOD (5 * USEC_PER_SEC)

static int on_watch(struct task *t, usec_t now)
{
	struct webui *u = container_of(t, struct webui, watch);
	struct egw *e = u->e;
	(void)now;

	if (e->uploader) {
		struct uploader_stats st;
		uploader_get_stats(e->uploader, &st);
		if (st.failed > u->up_failed && st.ok == u->up_ok && st.last_error)
			webui_notify(u, "error", "backend",
				     "backend unreachable: %s (%" PRIu64 " failed "
				     "attempts; batches wait in the store)",
				     egw_strerror(st.last_error), st.failed);
		else if (st.ok > u->up_ok)
			webui_note_clear(u, "backend");
		u->up_failed = st.failed;
		u->up_ok = st.ok;
	}
	if (e->store) {
		struct store_stats ss;
		int64_t max = settings_values(e->settings)->store_max_bytes;
		store_get_stats(e->store, &ss);
		if (ss.disk_full)
			webui_notify(u, "error", "store", "store: the disk is full");
		else if (max > 0 && ss.bytes >= max / 10 * 9)
			webui_notify(u, "warning", "store",
				     "store near full: %" PRId64 " of %" PRId64 " bytes, %" PRId64
				     " batches waiting; the oldest will be dropped",
				     ss.bytes, max, ss.backlog);
		else
			webui_note_clear(u, "store");
	}
	return 0;
}

/* ---- lifecycle ------------------------------------------------------------ */

int webui_new(struct egw *e, struct webui **ret)
{
	struct webui *u = calloc(1, sizeof(*u));
	int r;

	if (!u)
		return -ENOMEM;
	u->e = e;
	u->heartbeat = (struct task){ .name = "sse-heartbeat",
				      .run = webui_heartbeat,
				      .period = HEARTBEAT_PERIOD,
				      .prio = 10 };
	u->watch = (struct task){ .name = "webui-watch",
				  .run = on_watch,
				  .period = WATCH_PERIOD,
				  .prio = 20 };
	u->kick = (struct task){ .name = "webui-kick", .run = on_kick, .prio = 0 };
	u->raw_gc = (struct task){ .name = "webui-raw", .run = webui_raw_gc };
	u->scan_limit = (struct limiter){ .window = SCAN_WINDOW,
					  .per_addr = SCAN_PER_ADDRESS,
					  .all = SCAN_ALL };
	u->read_limit = (struct limiter){ .window = READ_WINDOW,
					  .per_addr = READ_PER_ADDRESS,
					  .all = READ_ALL };
	u->heartbeat.idx = u->watch.idx = u->kick.idx = u->raw_gc.idx = SCHED_NOT_QUEUED;
	/* A live stream holds its connection for ever: keep 8 of
	 * http.max_connections (half when it is that small) for everything else,
	 * or a few idle stream clients lock everyone out. */
	{
		unsigned maxc = (unsigned)settings_values(e->settings)->http_max_connections;
		unsigned live = maxc > 16 ? maxc - 8 : MAX(1u, maxc / 2);
		r = sse_hub_new(0, MIN(live, SSE_MAX_CLIENTS), &u->hub);
	}
	if (r < 0)
		goto err;
	r = scan_new(e->loop, &u->scan);
	if (r < 0)
		goto err;
	r = loop_task_add(e->loop, &u->watch, loop_now(e->loop) + WATCH_PERIOD);
	if (r < 0)
		goto err;
	r = loop_task_add(e->loop, &u->heartbeat, loop_now(e->loop) + HEARTBEAT_PERIOD);
	if (r < 0)
		goto err;
	if (e->web) {
		r = web_add_metrics(e->web, webui_metrics, u);
		if (r < 0)
			goto err;
	}
	*ret = u;
	return 0;
err:
	loop_task_cancel(e->loop, &u->heartbeat);
	loop_task_cancel(e->loop, &u->watch);
	scan_free(u->scan);
	sse_hub_free(u->hub);
	free(u);
	return r;
}

void webui_daemon_closing(struct webui *u)
{
	if (!u)
		return;
	/* Raw requests still waiting for their device: answered now (the
	 * device's answer, when it comes, finds them done and is dropped). */
	for (struct raw_op *op = u->raw; op; op = op->next) {
		if (op->done)
			continue;
		op->done = true;
		web_reply_error(&op->rq, 503, "the web server moved to another address", NULL);
		MHD_resume_connection(op->rq.conn);
	}
	if (u->raw)
		loop_task_add(u->e->loop, &u->raw_gc, loop_now(u->e->loop));
	/* Live streams end; MHD frees each one when it closes the connection. */
	for (struct live_conn *lc = u->live; lc; lc = lc->next) {
		sse_client_detach(lc->client);
		lc->u = NULL;
		MHD_resume_connection(lc->conn);
	}
	u->live = NULL;
	loop_task_cancel(u->e->loop, &u->kick);
	/* the next resume looks the daemons up */
	memset(u->daemons, 0, sizeof(u->daemons));
}

void webui_free(struct webui *u)
{
	if (!u)
		return;
	scan_free(u->scan);
	loop_task_cancel(u->e->loop, &u->raw_gc);
	/* Pending raw requests: answer them and let MHD finish them. */
	while (u->raw) {
		struct raw_op *op = u->raw;
		u->raw = op->next;
		if (!op->done) {
			op->done = true;
			web_reply_error(&op->rq, 503, "shutting down", NULL);
			MHD_resume_connection(op->rq.conn);
		}
		if (op->pending)
			op->u = NULL; /* on a device's client: its callback frees the op */
		else
			free(op);
	}
	/* Live streams end; MHD frees each one when it closes the connection. */
	for (struct live_conn *lc = u->live; lc; lc = lc->next) {
		sse_client_detach(lc->client);
		lc->u = NULL;
		MHD_resume_connection(lc->conn);
	}
	u->live = NULL;
	loop_task_cancel(u->e->loop, &u->heartbeat);
	loop_task_cancel(u->e->loop, &u->kick);
	loop_task_cancel(u->e->loop, &u->watch);
	sse_hub_free(u->hub);
	free(u);
}

int webui_egw_init(struct egw *e)
{
	int r = webui_new(e, &e->webui);
	if (r < 0)
		log_error("webui", "starting the web UI: %s", egw_strerror(r));
	return r;
}

void webui_egw_fini(struct egw *e)
{
	struct webui *u = e->webui;
	e->webui = NULL; /* hooks fired while stopping see no UI */
	webui_free(u);
}
