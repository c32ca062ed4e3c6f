#include "backend/uploader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "base/err.h"
#include "base/util.h"

struct uploader {
	struct loop *loop;
	struct http *http;
	const struct uploader_source *src;
	void *src_ud;
	char *urls[UPLOADER_MAX_URLS];
	size_t n_urls;
	long timeout_ms;
	usec_t min_gap; /* between request starts */
	usec_t backoff_min, backoff_max, poll_interval;

	struct task task; /* one-shot: next attempt */
	struct http_req req;
	struct loop_work ack_work;
	int ack_result;
	/* Reading the next batch runs on a worker too: the store's reader may
	 * wait for a commit's fsync or for the disk, and the loop thread must
	 * not (the 10 Hz frequency task). */
	struct loop_work peek_work;
	int peek_result;
	uint64_t peek_seq;
	char *peek_jwt;
	uint8_t *peek_gz; /* peek_jwt gzip-compressed (worker), or NULL */
	size_t peek_gz_len;
	enum uploader_compression compression;
	bool cur_gzip;     /* the request in flight has a gzip body */
	uint64_t cur_seq;  /* batch being delivered, 0: none */
	uint32_t cur_done; /* bit i: urls[i] acknowledged cur_seq */
	size_t cur_url;    /* endpoint of the request in flight */
	usec_t last_start;
	bool backing_off;
	bool closing; /* uploader_free is waiting for the ack worker */
	bool failing; /* last request failed (for on_health) */
	void (*on_health)(void *ud, bool ok, int err, long status, const char *detail);
	void *health_ud;
	unsigned rng; /* jitter state (rand_r), per object */
	struct uploader_stats st;
};

static void schedule(struct uploader *u, usec_t due)
{
	if (!u->closing)
		loop_task_add(u->loop, &u->task, due);
}

static usec_t jitter(struct uploader *u, usec_t d)
{
	/* uniform in [0.75 d, 1.25 d] */
	double f = 0.75 + 0.5 * ((double)rand_r(&u->rng) / RAND_MAX);
	return (usec_t)((double)d * f);
}

/* A failed attempt: back off.  backend: the backend (or the way to it)
 * failed, as opposed to our own store or memory; only that changes the
 * health reported through on_health. */
static void fail_ex(struct uploader *u, int err, long status, bool backend)
{
	usec_t now = now_usec();

	u->st.failed++;
	u->st.last_error = err;
	u->st.last_status = status;
	if (backend && !u->failing) {
		u->failing = true;
		if (u->on_health)
			u->on_health(u->health_ud, false, err, status, u->req.curl_error);
	}
	u->st.backoff = u->st.backoff ? MIN(u->st.backoff * 2, u->backoff_max) : u->backoff_min;
	u->backing_off = true;
	schedule(u, now + jitter(u, u->st.backoff));
}

static void fail(struct uploader *u, int err, long status)
{
	fail_ex(u, err, status, true);
}

static void on_done(struct http_req *req, int err, long status)
{
	struct uploader *u = container_of(req, struct uploader, req);

	if (err < 0) {
		fail(u, err, 0);
		return;
	}
	if (status == 415 && u->cur_gzip) {
		/* The endpoint does not take gzip: plain from now on, and this
		 * batch again at once (it is still in the store). */
		u->st.refused_gzip++;
		u->st.plain_urls |= 1u << u->cur_url;
		u->st.last_status = status;
		schedule(u, MAX(now_usec(), u->last_start + u->min_gap));
		return;
	}
	if (status < 200 || status > 299) {
		fail(u, -EGW_EBACKEND, status);
		return;
	}
	u->st.ok++;
	u->st.last_status = status;
	u->st.last_error = 0;
	u->st.backoff = 0;
	u->backing_off = false;
	if (u->failing) {
		u->failing = false;
		if (u->on_health)
			u->on_health(u->health_ud, true, 0, status, "");
	}
	u->cur_done |= 1u << u->cur_url;
	if (u->cur_done == (1u << u->n_urls) - 1) {
		int r = loop_work_submit(u->loop, &u->ack_work);
		if (r < 0)
			fail_ex(u, r, status, false);
		return; /* continues in ack_done */
	}
	schedule(u, MAX(now_usec(), u->last_start + u->min_gap));
}

static void ack_work(struct loop_work *w)
{
	struct uploader *u = container_of(w, struct uploader, ack_work);
	u->ack_result = u->src->ack(u->src_ud, u->cur_seq);
}

static void ack_done(struct loop_work *w)
{
	struct uploader *u = container_of(w, struct uploader, ack_work);

	if (u->ack_result < 0 && u->ack_result != -ENOENT) {
		/* Delivered but not recorded: it will be sent again (at least
		 * once).  -ENOENT means it is gone already (dropped by bounds). */
		fail_ex(u, u->ack_result, u->st.last_status, false);
		return;
	}
	u->st.acked++;
	u->st.last_acked_seq = u->cur_seq;
	u->cur_seq = 0;
	u->cur_done = 0;
	u->st.pending_seq = 0;
	schedule(u, MAX(now_usec(), u->last_start + u->min_gap));
}

/* body as a gzip member (RFC 1952), or NULL on failure (sent plain then). */
static uint8_t *gzip_body(const char *body, size_t len, size_t *ret_len)
{
	z_stream z;
	uint8_t *out;
	size_t cap;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return NULL;
	cap = deflateBound(&z, len) + 32;
	out = malloc(cap);
	if (!out) {
		deflateEnd(&z);
		return NULL;
	}
	z.next_in = (Bytef *)(uintptr_t)body;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
		deflateEnd(&z);
		free(out);
		return NULL;
	}
	*ret_len = z.total_out;
	deflateEnd(&z);
	return out;
}

static bool busy(const struct uploader *u)
{
	return u->req.busy || u->ack_work.busy || u->peek_work.busy;
}

static void peek_work(struct loop_work *w)
{
	struct uploader *u = container_of(w, struct uploader, peek_work);

	u->peek_jwt = NULL;
	u->peek_result = u->src->peek(u->src_ud, &u->peek_seq, &u->peek_jwt);
	u->peek_gz = NULL;
	if (u->peek_result == 0 && u->compression != UPLOADER_COMPRESS_NONE)
		u->peek_gz = gzip_body(u->peek_jwt, strlen(u->peek_jwt), &u->peek_gz_len);
}

static void peek_done(struct loop_work *w)
{
	struct uploader *u = container_of(w, struct uploader, peek_work);
	usec_t now = now_usec();
	uint64_t seq = u->peek_seq;
	char *jwt = u->peek_jwt;
	uint8_t *gz = u->peek_gz;
	size_t gz_len = u->peek_gz_len;
	int r = u->peek_result;

	u->peek_jwt = NULL;
	u->peek_gz = NULL;
	if (u->closing || r < 0) {
		free(gz);
		gz = NULL;
	}
	if (u->closing) {
		free(jwt);
		return;
	}
	u->st.waiting_signer = r == -EAGAIN;
	if (r == -ENOENT || r == -EAGAIN) {
		/* Idle until a kick; a slow poll covers a missed one. */
		schedule(u, now + u->poll_interval);
		return;
	}
	if (r < 0) {
		fail_ex(u, r, 0, false);
		return;
	}
	if (seq != u->cur_seq) {
		u->cur_seq = seq;
		u->cur_done = 0;
	}
	u->st.pending_seq = seq;
	if (u->cur_done == (1u << u->n_urls) - 1) {
		/* Delivered everywhere; only the acknowledgement failed. */
		free(jwt);
		free(gz);
		r = loop_work_submit(u->loop, &u->ack_work);
		if (r < 0)
			fail_ex(u, r, 0, false);
		return;
	}
	u->cur_url = 0;
	while (u->cur_done & (1u << u->cur_url))
		u->cur_url++;
	u->last_start = now;
	u->st.attempts++;
	size_t len = strlen(jwt);
	u->cur_gzip = gz && !(u->st.plain_urls & (1u << u->cur_url)) &&
	              (u->compression == UPLOADER_COMPRESS_GZIP || gz_len < len);
	u->st.body_bytes += len;
	u->st.wire_bytes += u->cur_gzip ? gz_len : len;
	u->st.gzip_bodies += u->cur_gzip;
	if (u->cur_gzip)
		r = http_post_enc(u->http, &u->req, u->urls[u->cur_url], "application/jwt", "gzip",
		                  (const char *)gz, gz_len, u->timeout_ms, on_done);
	else
		r = http_post(u->http, &u->req, u->urls[u->cur_url], "application/jwt", jwt, len,
		              u->timeout_ms, on_done);
	free(jwt);
	free(gz);
	if (r < 0)
		fail_ex(u, r, 0, false);
}

static int run(struct task *t, usec_t now)
{
	struct uploader *u = container_of(t, struct uploader, task);
	int r;

	(void)now;
	if (busy(u) || u->n_urls == 0)
		return 0;
	u->backing_off = false;
	r = loop_work_submit(u->loop, &u->peek_work);
	if (r < 0)
		fail_ex(u, r, 0, false);
	return 0; /* continues in peek_done */
}

static void apply_defaults(const struct uploader_config *cfg, long *timeout_ms, usec_t *min_gap,
                           usec_t *bmin, usec_t *bmax, usec_t *poll)
{
	*timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000;
	*min_gap = USEC_PER_SEC / (cfg->rate_per_s ? cfg->rate_per_s : UPLOADER_DEFAULT_RATE);
	*bmin = cfg->backoff_min > 0 ? cfg->backoff_min : USEC_PER_SEC;
	*bmax = cfg->backoff_max > 0 ? cfg->backoff_max : 60 * USEC_PER_SEC;
	if (*bmax < *bmin)
		*bmax = *bmin;
	*poll = cfg->poll_interval > 0 ? cfg->poll_interval : 5 * USEC_PER_SEC;
}

int uploader_new(struct loop *l, struct http *h, const struct uploader_config *cfg,
                 const struct uploader_source *src, void *src_ud, struct uploader **ret)
{
	struct uploader *u;

	if (cfg->n_urls > UPLOADER_MAX_URLS)
		return -EINVAL;
	for (size_t i = 0; i < cfg->n_urls; i++)
		if (!cfg->urls[i] || !cfg->urls[i][0])
			return -EINVAL;
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->loop = l;
	u->http = h;
	u->src = src;
	u->src_ud = src_ud;
	for (size_t i = 0; i < cfg->n_urls; i++) {
		u->urls[i] = strdup(cfg->urls[i]);
		if (!u->urls[i]) {
			uploader_free(u);
			return -ENOMEM;
		}
		u->n_urls++;
	}
	apply_defaults(cfg, &u->timeout_ms, &u->min_gap, &u->backoff_min, &u->backoff_max,
	               &u->poll_interval);
	u->on_health = cfg->on_health;
	u->health_ud = cfg->health_ud;
	u->compression = cfg->compression;
	u->task = (struct task){.name = "upload", .run = run, .prio = 5};
	u->ack_work = (struct loop_work){.work = ack_work, .done = ack_done};
	u->peek_work = (struct loop_work){.work = peek_work, .done = peek_done};
	u->rng = (unsigned)now_usec() ^ (unsigned)(uintptr_t)u;
	*ret = u;
	return 0;
}

void uploader_free(struct uploader *u)
{
	if (!u)
		return;
	/* The ack or peek worker may be using u: let it finish (an fsync or a
	 * read at most), with nothing new started meanwhile. */
	u->closing = true;
	loop_task_cancel(u->loop, &u->task);
	http_cancel(&u->req);
	while (u->ack_work.busy || u->peek_work.busy)
		loop_run_once(u->loop, 100 * USEC_PER_MSEC);
	loop_task_cancel(u->loop, &u->task);
	for (size_t i = 0; i < u->n_urls; i++)
		free(u->urls[i]);
	free(u);
}

void uploader_kick(struct uploader *u)
{
	if (busy(u) || u->backing_off || u->n_urls == 0)
		return;
	schedule(u, MAX(now_usec(), u->last_start + u->min_gap));
}

void uploader_get_stats(const struct uploader *u, struct uploader_stats *ret)
{
	*ret = u->st;
}

const char *uploader_last_error_text(const struct uploader *u)
{
	return u->req.curl_error;
}

bool uploader_config_equal(const struct uploader *u, const struct uploader_config *cfg)
{
	long tmo;
	usec_t gap, bmin, bmax, poll;

	if (cfg->n_urls != u->n_urls)
		return false;
	for (size_t i = 0; i < u->n_urls; i++)
		if (!cfg->urls[i] || strcmp(cfg->urls[i], u->urls[i]) != 0)
			return false;
	apply_defaults(cfg, &tmo, &gap, &bmin, &bmax, &poll);
	return tmo == u->timeout_ms && gap == u->min_gap && bmin == u->backoff_min &&
	       bmax == u->backoff_max && poll == u->poll_interval &&
	       cfg->compression == u->compression;
}
