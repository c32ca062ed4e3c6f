#include "backend/uploader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "backend/acks.h"
#include "base/err.h"
#include "base/util.h"
#include "sched/sched.h"

enum slot_state {
	SLOT_SENDING,   /* a request is in flight */
	SLOT_WAITING,   /* failed; goes again at retry_at */
	SLOT_DELIVERED, /* every endpoint took it; waits for earlier slots */
};

/* One batch of the window. */
struct slot {
	struct http_req req; /* HTTP only */
	struct uploader *u;
	uint64_t seq;
	char *jwt;
	size_t len;
	uint8_t *gz; /* jwt gzip-compressed, or NULL */
	size_t gz_len;
	enum slot_state state;
	uint32_t done; /* bit i: urls[i] took it */
	size_t url;    /* endpoint of the request in flight */
	bool gzip;     /* the request in flight has a gzip body */
	usec_t retry_at;
};

struct uploader {
	struct loop *loop;
	struct http *http;
	const struct uploader_source *src;
	void *src_ud;
	const struct uploader_transport *tp;
	void *tp_ud;
	char *urls[UPLOADER_MAX_URLS];
	size_t n_urls;
	size_t n_dest; /* endpoints a batch goes to (1 with a transport) */
	long timeout_ms;
	usec_t min_gap; /* between request starts */
	usec_t backoff_min, backoff_max, poll_interval;
	enum uploader_compression compression;

	struct task task; /* retries and filling the window */
	/* The window: slots[(head + i) % cap] for i < count, in seq order. */
	struct slot *slots;
	unsigned cap, head, count;
	uint64_t fetched; /* highest seq taken into the window (or delivered) */
	usec_t fill_at;   /* no new batch before this (a store error's backoff) */
	bool idle;        /* nothing to fetch: wait for a kick or poll_interval */

	/* Reading the next batch runs on a worker: the store's reader may wait
	 * for a commit's fsync or for the disk, and the loop thread must not
	 * (the 10 Hz frequency task). */
	struct loop_work peek_work;
	uint64_t peek_after;
	int peek_result;
	uint64_t peek_seq;
	char *peek_jwt;
	uint8_t *peek_gz;
	size_t peek_gz_len;

	struct acks *acks;
	bool own_acks;
	int acks_id;

	usec_t last_start;
	bool closing; /* uploader_free is waiting for the peek worker */
	bool failing; /* last request failed (for on_health) */
	char last_error_text[256];
	void (*on_health)(void *ud, bool ok, int err, long status, const char *detail);
	void *health_ud;
	unsigned rng; /* jitter state (rand_r), per object */
	struct uploader_stats st;
};

static struct slot *slot_at(struct uploader *u, unsigned i)
{
	return &u->slots[(u->head + i) % u->cap];
}

/* Run the task at due, or earlier if it is queued earlier already. */
static void wake(struct uploader *u, usec_t due)
{
	if (u->closing)
		return;
	if (!sched_queued(&u->task) || u->task.due > due)
		loop_task_add(u->loop, &u->task, due);
}

static usec_t jitter(struct uploader *u, usec_t d)
{
	/* uniform in [0.75 d, 1.25 d] */
	double f = 0.75 + 0.5 * ((double)rand_r(&u->rng) / RAND_MAX);
	return (usec_t)((double)d * f);
}

static bool any_waiting(struct uploader *u, usec_t *ret_at)
{
	bool any = false;
	usec_t at = USEC_INFINITY;

	for (unsigned i = 0; i < u->count; i++) {
		struct slot *s = slot_at(u, i);
		if (s->state == SLOT_WAITING) {
			any = true;
			at = MIN(at, s->retry_at);
		}
	}
	if (ret_at)
		*ret_at = at;
	return any;
}

/* The next backoff wait: failures while one is still ahead join it (a
 * retry that failed at once, as a transport that is not connected does,
 * must not join a wait that is already over: that would spin). */
static usec_t backoff_until(struct uploader *u, usec_t now)
{
	usec_t at;

	if (any_waiting(u, &at) && at > now)
		return at;
	u->st.backoff = sched_backoff_next(u->st.backoff, u->backoff_min, u->backoff_max);
	return now + jitter(u, u->st.backoff);
}

static void health(struct uploader *u, bool ok, int err, long status)
{
	if (ok == !u->failing)
		return;
	u->failing = !ok;
	if (u->on_health)
		u->on_health(u->health_ud, ok, err, status, ok ? "" : u->last_error_text);
}

/* A failed request: the slot goes again after the backoff.  backend: the
 * backend (or the way to it) failed, as opposed to our own memory; only
 * that changes the health reported through on_health. */
static void slot_fail(struct uploader *u, struct slot *s, int err, long status, bool backend)
{
	usec_t now = now_usec();

	u->st.failed++;
	u->st.last_error = err;
	u->st.last_status = status;
	if (backend)
		health(u, false, err, status);
	s->retry_at = backoff_until(u, now);
	s->state = SLOT_WAITING;
	wake(u, s->retry_at);
}

static void free_bodies(struct slot *s)
{
	free(s->jwt);
	free(s->gz);
	s->jwt = NULL;
	s->gz = NULL;
}

/* Delivered slots at the head leave the window, in order. */
static void advance(struct uploader *u)
{
	while (u->count > 0 && slot_at(u, 0)->state == SLOT_DELIVERED) {
		struct slot *s = slot_at(u, 0);
		u->st.acked++;
		u->st.last_acked_seq = s->seq;
		acks_delivered(u->acks, u->acks_id, s->seq);
		free_bodies(s);
		u->head = (u->head + 1) % u->cap;
		u->count--;
	}
	u->st.pending_seq = u->count ? slot_at(u, 0)->seq : 0;
}

static void on_http_done(struct http_req *req, int err, long status);

static void slot_send(struct uploader *u, struct slot *s)
{
	usec_t now = now_usec();
	int r;

	s->state = SLOT_SENDING;
	u->last_start = now;
	u->st.attempts++;
	if (u->tp) {
		u->st.body_bytes += s->len;
		u->st.wire_bytes += s->len;
		r = u->tp->send(u->tp_ud, (unsigned)(s - u->slots), s->seq, s->jwt, s->len);
		if (r < 0)
			slot_fail(u, s, r, 0, r != -ENOMEM);
		return;
	}
	s->url = 0;
	while (s->done & (1u << s->url))
		s->url++;
	s->gzip = s->gz && !(u->st.plain_urls & (1u << s->url)) &&
		(u->compression == UPLOADER_COMPRESS_GZIP || s->gz_len < s->len);
	u->st.body_bytes += s->len;
	u->st.wire_bytes += s->gzip ? s->gz_len : s->len;
	u->st.gzip_bodies += s->gzip;
	if (s->gzip)
		r = http_post_enc(u->http, &s->req, u->urls[s->url], "application/jwt", "gzip",
				  (const char *)s->gz, s->gz_len, u->timeout_ms, on_http_done);
	else
		r = http_post(u->http, &s->req, u->urls[s->url], "application/jwt", s->jwt, s->len,
			      u->timeout_ms, on_http_done);
	if (r < 0)
		slot_fail(u, s, r, 0, false);
}

static void slot_ok(struct uploader *u, struct slot *s, long status)
{
	u->st.ok++;
	u->st.last_status = status;
	u->st.last_error = 0;
	u->st.backoff = 0;
	health(u, true, 0, status);
	s->done |= 1u << s->url;
	if (s->done != (1u << u->n_dest) - 1) {
		slot_send(u, s); /* the next endpoint */
		return;
	}
	s->state = SLOT_DELIVERED;
	advance(u);
	wake(u, MAX(now_usec(), u->last_start + u->min_gap));
}

static void on_http_done(struct http_req *req, int err, long status)
{
	struct slot *s = container_of(req, struct slot, req);
	struct uploader *u = s->u;

	if (err < 0) {
		snprintf(u->last_error_text, sizeof(u->last_error_text), "%s", req->curl_error);
		slot_fail(u, s, err, 0, true);
		return;
	}
	if (status == 415 && s->gzip) {
		/* The endpoint does not take gzip: plain from now on, and this
		 * batch again at once. */
		u->st.refused_gzip++;
		u->st.plain_urls |= 1u << s->url;
		u->st.last_status = status;
		slot_send(u, s);
		return;
	}
	if (status < 200 || status > 299) {
		u->last_error_text[0] = 0;
		slot_fail(u, s, -EGW_EBACKEND, status, true);
		return;
	}
	slot_ok(u, s, status);
}

void uploader_sent(struct uploader *u, unsigned id, int err)
{
	struct slot *s;

	if (id >= u->cap)
		return;
	s = &u->slots[id];
	if (s->state != SLOT_SENDING)
		return;
	if (err < 0) {
		u->last_error_text[0] = 0;
		slot_fail(u, s, err, 0, true);
		return;
	}
	s->url = 0;
	slot_ok(u, s, 0);
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

static void peek_work(struct loop_work *w)
{
	struct uploader *u = container_of(w, struct uploader, peek_work);

	u->peek_jwt = NULL;
	u->peek_result = u->src->peek(u->src_ud, u->peek_after, &u->peek_seq, &u->peek_jwt);
	u->peek_gz = NULL;
	if (u->peek_result == 0 && !u->tp && u->compression != UPLOADER_COMPRESS_NONE)
		u->peek_gz = gzip_body(u->peek_jwt, strlen(u->peek_jwt), &u->peek_gz_len);
}

static void peek_done(struct loop_work *w)
{
	struct uploader *u = container_of(w, struct uploader, peek_work);
	usec_t now = now_usec();
	char *jwt = u->peek_jwt;
	uint8_t *gz = u->peek_gz;
	int r = u->peek_result;
	struct slot *s;

	u->peek_jwt = NULL;
	u->peek_gz = NULL;
	if (u->closing || r < 0 || u->peek_seq <= u->fetched || u->count == u->cap) {
		free(jwt);
		free(gz);
		if (u->closing)
			return;
	}
	u->st.waiting_signer = r == -EAGAIN;
	if (r == -ENOENT || r == -EAGAIN) {
		/* Idle until a kick; a slow poll covers a missed one. */
		u->idle = true;
		wake(u, now + u->poll_interval);
		return;
	}
	if (r < 0) {
		u->st.failed++;
		u->st.last_error = r;
		u->st.backoff = sched_backoff_next(u->st.backoff, u->backoff_min, u->backoff_max);
		u->fill_at = now + jitter(u, u->st.backoff);
		wake(u, u->fill_at);
		return;
	}
	if (u->peek_seq <= u->fetched || u->count == u->cap) {
		wake(u, now); /* the window moved meanwhile (a restart of it) */
		return;
	}
	s = slot_at(u, u->count);
	u->count++;
	*s = (struct slot){
		.u = u,
		.seq = u->peek_seq,
		.jwt = jwt,
		.len = strlen(jwt),
		.gz = gz,
		.gz_len = u->peek_gz_len,
	};
	u->fetched = s->seq;
	u->st.pending_seq = slot_at(u, 0)->seq;
	slot_send(u, s);
	wake(u, MAX(now, u->last_start + u->min_gap));
}

static int run(struct task *t, usec_t now)
{
	struct uploader *u = container_of(t, struct uploader, task);
	usec_t at;
	int r;

	/* Retries first: they hold the window's head. */
	for (unsigned i = 0; i < u->count; i++) {
		struct slot *s = slot_at(u, i);
		if (s->state == SLOT_WAITING && s->retry_at <= now)
			slot_send(u, s);
	}
	if (any_waiting(u, &at)) {
		wake(u, at); /* no new batch while failing */
		return 0;
	}
	if (u->peek_work.busy || u->count == u->cap)
		return 0; /* peek_done or a delivery wakes us */
	if (now < u->fill_at) {
		wake(u, u->fill_at);
		return 0;
	}
	if (now < u->last_start + u->min_gap) {
		wake(u, u->last_start + u->min_gap);
		return 0;
	}
	u->idle = false;
	u->peek_after = u->fetched;
	r = loop_work_submit(u->loop, &u->peek_work);
	if (r < 0) {
		u->fill_at = now + jitter(u, u->backoff_min);
		wake(u, u->fill_at);
	}
	return 0; /* continues in peek_done */
}

static void apply_defaults(const struct uploader_config *cfg, long *timeout_ms, usec_t *min_gap,
			   usec_t *bmin, usec_t *bmax, usec_t *poll, unsigned *window)
{
	*timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000;
	*min_gap = USEC_PER_SEC / (cfg->rate_per_s ? cfg->rate_per_s : UPLOADER_DEFAULT_RATE);
	*bmin = cfg->backoff_min > 0 ? cfg->backoff_min : USEC_PER_SEC;
	*bmax = cfg->backoff_max > 0 ? cfg->backoff_max : 60 * USEC_PER_SEC;
	if (*bmax < *bmin)
		*bmax = *bmin;
	*poll = cfg->poll_interval > 0 ? cfg->poll_interval : 5 * USEC_PER_SEC;
	*window = cfg->max_in_flight ? MIN(cfg->max_in_flight, UPLOADER_MAX_IN_FLIGHT)
				     : UPLOADER_DEFAULT_IN_FLIGHT;
}

int uploader_new(struct loop *l, struct http *h, const struct uploader_config *cfg,
		 const struct uploader_source *src, void *src_ud, struct uploader **ret)
{
	struct uploader *u;
	int r;

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
	u->tp = cfg->transport;
	u->tp_ud = cfg->transport_ud;
	u->acks_id = -1;
	for (size_t i = 0; i < cfg->n_urls && !u->tp; i++) {
		u->urls[i] = strdup(cfg->urls[i]);
		if (!u->urls[i]) {
			uploader_free(u);
			return -ENOMEM;
		}
		u->n_urls++;
	}
	u->n_dest = u->tp ? 1 : u->n_urls;
	apply_defaults(cfg, &u->timeout_ms, &u->min_gap, &u->backoff_min, &u->backoff_max,
		       &u->poll_interval, &u->cap);
	u->st.max_in_flight = u->cap;
	u->slots = calloc(u->cap, sizeof(*u->slots));
	if (!u->slots) {
		uploader_free(u);
		return -ENOMEM;
	}
	u->acks = cfg->acks;
	if (!u->acks) {
		r = acks_new(l, src, src_ud, &u->acks);
		if (r < 0) {
			uploader_free(u);
			return r;
		}
		u->own_acks = true;
	}
	u->acks_id = acks_join(u->acks);
	if (u->acks_id < 0) {
		r = u->acks_id;
		uploader_free(u);
		return r;
	}
	u->on_health = cfg->on_health;
	u->health_ud = cfg->health_ud;
	u->compression = cfg->compression;
	u->task = (struct task){ .name = "upload", .run = run, .prio = 5 };
	u->peek_work = (struct loop_work){ .work = peek_work, .done = peek_done };
	u->rng = (unsigned)now_usec() ^ (unsigned)(uintptr_t)u;
	*ret = u;
	return 0;
}

void uploader_free(struct uploader *u)
{
	if (!u)
		return;
	/* The peek worker may be using u: let it finish (a read at most), with
	 * nothing new started meanwhile. */
	u->closing = true;
	loop_task_cancel(u->loop, &u->task);
	for (unsigned i = 0; i < u->count; i++) {
		struct slot *s = slot_at(u, i);
		if (s->state == SLOT_SENDING) {
			if (u->tp)
				u->tp->cancel(u->tp_ud, (unsigned)(s - u->slots));
			else
				http_cancel(&s->req);
		}
		free_bodies(s);
	}
	while (u->peek_work.busy)
		loop_run_once(u->loop, 100 * USEC_PER_MSEC);
	loop_task_cancel(u->loop, &u->task);
	if (u->acks) {
		acks_leave(u->acks, u->acks_id);
		if (u->own_acks)
			acks_free(u->acks);
	}
	for (size_t i = 0; i < u->n_urls; i++)
		free(u->urls[i]);
	free(u->slots);
	free(u);
}

void uploader_kick(struct uploader *u)
{
	if ((u->n_dest == 0) || any_waiting(u, NULL))
		return;
	wake(u, MAX(now_usec(), u->last_start + u->min_gap));
}

void uploader_resume(struct uploader *u)
{
	usec_t now = now_usec();
	bool any = false;

	u->st.backoff = 0;
	for (unsigned i = 0; i < u->count; i++) {
		struct slot *s = slot_at(u, i);
		if (s->state == SLOT_WAITING) {
			s->retry_at = now;
			any = true;
		}
	}
	if (any || u->idle)
		wake(u, now);
}

void uploader_get_stats(const struct uploader *u, struct uploader_stats *ret)
{
	struct acks_stats as;
	unsigned n = 0;

	*ret = u->st;
	for (unsigned i = 0; i < u->count; i++)
		n += u->slots[(u->head + i) % u->cap].state != SLOT_DELIVERED;
	ret->in_flight = n;
	acks_get_stats(u->acks, &as);
	ret->store_acked = as.acked;
}

const char *uploader_last_error_text(const struct uploader *u)
{
	return u->last_error_text;
}

bool uploader_config_equal(const struct uploader *u, const struct uploader_config *cfg)
{
	long tmo;
	usec_t gap, bmin, bmax, poll;
	unsigned window;

	if (cfg->transport != u->tp || cfg->transport_ud != u->tp_ud)
		return false;
	if (!u->tp) {
		if (cfg->n_urls != u->n_urls)
			return false;
		for (size_t i = 0; i < u->n_urls; i++)
			if (!cfg->urls[i] || strcmp(cfg->urls[i], u->urls[i]) != 0)
				return false;
	}
	apply_defaults(cfg, &tmo, &gap, &bmin, &bmax, &poll, &window);
	return tmo == u->timeout_ms && gap == u->min_gap && bmin == u->backoff_min &&
		bmax == u->backoff_max && poll == u->poll_interval &&
		cfg->compression == u->compression && window == u->cap &&
		(!cfg->acks || cfg->acks == u->acks);
}
