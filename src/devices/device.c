/* Device drivers: connect, poll, and the set of devices.  See device.h for
 * the contract; identification is in identify.c, the frequency task in
 * freq_task.c, the JSON views in device_json.c. */
#include "devices/device_int.h"

const char *device_state_name(int state)
{
	/* The names are the state machine's (fsm/fsm.c), one table for both. */
	return state >= 0 && state < DEV_STATE_COUNT ? fsm_name(&fsm_device_def, (unsigned)state)
						     : "unknown";
}

/* ---- configuration -------------------------------------------------------- */

static void set_errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void config_defaults(struct devices_config *c)
{
	if (!c->poll_interval_ms)
		c->poll_interval_ms = 1000;
	if (!c->freq_interval_ms)
		c->freq_interval_ms = 100;
	if (!c->timeout_ms)
		c->timeout_ms = 1000;
	if (!c->connect_timeout_ms)
		c->connect_timeout_ms = 3000;
	if (!c->backoff_min_ms)
		c->backoff_min_ms = 1000;
	if (!c->backoff_max_ms)
		c->backoff_max_ms = 60000;
	if (c->backoff_max_ms < c->backoff_min_ms)
		c->backoff_max_ms = c->backoff_min_ms;
	if (!c->sleep_after_failures)
		c->sleep_after_failures = 5;
	if (!c->sleep_retry_ms)
		c->sleep_retry_ms = 60000;
	if (!c->unsupported_retry_ms)
		c->unsupported_retry_ms = 600000;
}

/* The one device-config parser (devconf.h), its error as one string. */
static int parse_all(const json_t *arr, struct dev_conf **ret, unsigned *ret_n, char *err,
		     size_t errlen)
{
	struct devconf_error e = { 0 };
	int r = devconf_parse_list(arr, ret, ret_n, &e);
	if (r < 0 && r != -ENOMEM && err && errlen)
		devconf_error_str(&e, err, errlen);
	return r;
}

/* ---- helpers ---------------------------------------------------------------- */

static usec_t ms(unsigned v)
{
	return (usec_t)v * USEC_PER_MSEC;
}

unsigned device_poll_ms(const struct device *d)
{
	if (d->conf.p1)
		return d->conf.poll_interval_ms ? d->conf.poll_interval_ms : DEVCONF_P1_INTERVAL_MS;
	return d->conf.poll_interval_ms ? d->conf.poll_interval_ms : d->set->cfg.poll_interval_ms;
}

/* Errors that say the link is not working (as opposed to a device that
 * answers, possibly with an exception or a malformed frame). */
bool device_link_error(int err)
{
	return err < 0 && -err < EGW_ERR_BASE;
}

/* One request for register r and its SunSpec sf register, when they fit in
 * one block (they do within a model); otherwise r alone (the static factor
 * is then the fallback).  Returns 0 or -EINVAL. */
int device_plan_single(const struct reg_def *r, struct mb_block *ret)
{
	struct mb_block b[2];
	int n = profile_plan_one(r, b, 2);

	if (n < 1)
		return -EINVAL;
	*ret = b[0];
	if (n == 2 && b[1].fc == b[0].fc) {
		unsigned lo = MIN(b[0].addr, b[1].addr);
		unsigned hi =
			MAX((unsigned)b[0].addr + b[0].count, (unsigned)b[1].addr + b[1].count);
		if (hi - lo <= PROFILE_MAX_BLOCK)
			*ret = (struct mb_block){ .fc = b[0].fc,
						  .addr = (uint16_t)lo,
						  .count = (uint16_t)(hi - lo) };
	}
	return 0;
}

void device_count_error(struct device *d, int err)
{
	d->st.errors++;
	d->st.last_error = err;
	if (err == -ETIMEDOUT)
		d->st.timeouts++;
	else if (mb_is_exception_err(err))
		d->st.exceptions++;
}


/* ---- state machine -------------------------------------------------------- */

static void add_stats(struct mb_client_stats *a, const struct mb_client_stats *b)
{
	a->requests += b->requests;
	a->responses += b->responses;
	a->errors += b->errors;
	a->timeouts += b->timeouts;
	a->exceptions += b->exceptions;
	a->connects += b->connects;
	a->reconnects += b->reconnects;
	a->tid_mismatches += b->tid_mismatches;
	a->bytes_garbage += b->bytes_garbage;
	a->unsolicited += b->unsolicited;
	a->latency_sum += b->latency_sum;
	for (unsigned i = 0; i < MB_LAT_BUCKETS; i++)
		a->latency_hist[i] += b->latency_hist[i];
	if (b->last_ok_ms)
		a->last_ok_ms = b->last_ok_ms;
	if (b->last_err)
		a->last_err = b->last_err;
	if (b->requests)
		a->last_latency = b->last_latency;
}

static void reap_clients(struct link *l)
{
	for (unsigned i = 0; i < ARRAY_SIZE(l->old); i++) {
		struct mb_client *c = l->old[i];
		l->old[i] = NULL;
		mb_client_free(c);
	}
}

static int reap_run(struct task *t, usec_t now)
{
	UNUSED(now);
	reap_clients(container_of(t, struct link, reap_task));
	return 0;
}

/* Drop the connection and every queued request (their callbacks run later
 * and are stale: the caller bumped d->gen).  The client has no "reset", so a
 * new one (not connected until its first request) takes its place.  A link
 * shared with other devices is left alone: their requests are not ours to
 * drop, and the client re-opens a dead connection by itself.  On -ENOMEM the
 * old client is kept. */
static void client_recycle(struct device *d)
{
	struct link *l = d->link;
	struct mb_client *c;
	unsigned i;

	if (d->p1) {
		p1dev_stop(d->p1);
		return;
	}
	if (l->refs > 1 || mb_client_new(d->set->loop, &l->mc, &c) < 0)
		return;
	add_stats(&l->base, mb_client_stats(l->client));
	if (mb_client_connected(l->client))
		l->base.reconnects++; /* the next connect re-opens the link */
	/* We may be inside one of this client's callbacks: free it later, from a
	 * task.  An older one still waiting is not in a callback and can go now. */
	for (i = 0; i < ARRAY_SIZE(l->old) && l->old[i]; i++)
		;
	if (i == ARRAY_SIZE(l->old)) {
		mb_client_free(l->old[0]);
		i = 0;
	}
	l->old[i] = l->client;
	l->client = c;
	loop_task_add(d->set->loop, &l->reap_task, loop_now(d->set->loop));
}

/* Client counters over the link's whole life. */
void device_client_stats(const struct device *d, struct mb_client_stats *ret)
{
	if (!d->link) {
		*ret = (struct mb_client_stats){ 0 };
		return;
	}
	*ret = d->link->base;
	add_stats(ret, mb_client_stats(d->link->client));
}

static bool link_matches(const struct link *l, const struct mb_client_config *mc)
{
	if (l->mc.kind != mc->kind)
		return false;
	switch (mc->kind) {
	case MB_TRANSPORT_MEM:
		return l->mc.mem == mc->mem;
	case MB_TRANSPORT_RTU:
		return strcmp(l->serial_port, mc->serial_port) == 0;
	default:
		return strcmp(l->host, mc->host) == 0 && l->mc.port == mc->port;
	}
}

/* The link for mc (shared if one matches), with a reference.  Returns 0,
 * -ENOMEM or the error of mb_client_new. */
static int link_get(struct devices *ds, const struct mb_client_config *mc, struct link **ret)
{
	struct link *l;
	int r;

	for (l = ds->links; l; l = l->next)
		if (link_matches(l, mc)) {
			l->refs++;
			*ret = l;
			return 0;
		}
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->set = ds;
	l->mc = *mc;
	snprintf(l->host, sizeof(l->host), "%s", mc->host ? mc->host : "");
	snprintf(l->serial_port, sizeof(l->serial_port), "%s",
		 mc->serial_port ? mc->serial_port : "");
	l->mc.host = l->host;
	l->mc.serial_port = l->serial_port;
	l->reap_task = (struct task){ .name = "device-reap",
				      .run = reap_run,
				      .prio = 20,
				      .idx = SCHED_NOT_QUEUED };
	r = mb_client_new(ds->loop, &l->mc, &l->client);
	if (r < 0) {
		free(l);
		return r;
	}
	l->refs = 1;
	l->next = ds->links;
	ds->links = l;
	*ret = l;
	return 0;
}

static void link_put(struct link *l)
{
	struct link **pp;

	if (!l || --l->refs > 0)
		return;
	for (pp = &l->set->links; *pp && *pp != l; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = l->next;
	loop_task_cancel(l->set->loop, &l->reap_task);
	reap_clients(l);
	mb_client_free(l->client); /* pending callbacks run now: their requests are orphans */
	free(l);
}

static void stop_activity(struct device *d)
{
	struct loop *l = d->set->loop;
	d->gen++;
	d->cycle_active = false;
	loop_task_cancel(l, &d->poll_task);
	loop_task_cancel(l, &d->retry_task);
}


static void dev_enter(struct device *d, int from, int to)
{
	struct loop *l = d->set->loop;
	usec_t now = loop_now(l);
	UNUSED(from);

	switch (to) {
	case DEV_CONNECTING:
		stop_activity(d);
		d->nunsup = 0; /* a new connection asks for every block again */
		if (d->p1)
			p1dev_start(d->p1);
		else
			device_start_identify(d);
		break;
	case DEV_IDENTIFYING:
		break;
	case DEV_POLLING:
		d->connect_failures = 0;
		d->fail_cycles = 0;
		d->backoff = 0;
		if (d->p1)
			break; /* the meter sends by itself */
		d->poll_task.period = ms(device_poll_ms(d));
		loop_task_add(l, &d->poll_task, now);
		break;
	case DEV_BACKING_OFF: {
		usec_t lo = ms(d->set->cfg.backoff_min_ms), hi = ms(d->set->cfg.backoff_max_ms);
		stop_activity(d);
		client_recycle(d);
		d->backoff = sched_backoff_next(d->backoff, lo, hi);
		loop_task_add(l, &d->retry_task, now + d->backoff);
		/* Polls stay due while offline: each is reported missed. */
		if (!d->p1 && d->poll_task.period)
			loop_task_add(l, &d->poll_task, now + d->poll_task.period);
		break;
	}
	case DEV_ASLEEP:
		stop_activity(d);
		client_recycle(d);
		loop_task_add(l, &d->retry_task, now + ms(d->set->cfg.sleep_retry_ms));
		break;
	case DEV_DISCONNECTED:
		stop_activity(d);
		client_recycle(d);
		break;
	}
}

void device_go(struct device *d, int to, const char *fmt, ...)
{
	char reason[FSM_REASON_LEN];
	va_list ap;
	int from = (int)d->fsm.state;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (fsm_go(&d->fsm, (unsigned)to, reason) != 1)
		return;
	d->st.transitions++;
	/* Report first: entering may chain into the next transition. */
	if (d->set->hooks.on_state)
		d->set->hooks.on_state(d->set->ud, d, from, to, reason);
	dev_enter(d, from, to);
}

/* A connection attempt (the first request of CONNECTING) failed. */
void device_connect_failed(struct device *d, int err)
{
	d->connect_failures++;
	d->st.last_error = err;
	if (d->connect_failures >= d->set->cfg.sleep_after_failures)
		device_go(d, DEV_ASLEEP, "%u failed attempts: %s", d->connect_failures,
			  egw_strerror(err));
	else
		device_go(d, DEV_BACKING_OFF, "connect: %s", egw_strerror(err));
}

/* Identification could not complete although the device answers. */
void device_identify_failed(struct device *d, const char *what, int err)
{
	d->st.last_error = err;
	device_go(d, DEV_BACKING_OFF, "%s: %s", what, egw_strerror(err));
}

static int retry_run(struct task *t, usec_t now)
{
	struct device *d = container_of(t, struct device, retry_task);
	UNUSED(now);
	device_go(d, DEV_CONNECTING, "%s", d->fsm.state == DEV_ASLEEP ? "wake-up retry" : "retry");
	return 0;
}

/* ---- polling -------------------------------------------------------------- */

static void cycle_issue_next(struct device *d);

static void publish(struct device *d)
{
	struct reading fresh, before;
	const struct device_hooks *h = &d->set->hooks;
	unsigned nres = d->cycle_n;
	int refused;

	profile_decode(d->prof, d->res, nres, &fresh);
	before = fresh;
	refused = reading_mono_apply(&d->mono, &fresh);
	if (refused > 0)
		d->st.totals_suppressed += (uint64_t)refused;

	/* The API's view: a verbose poll replaces everything (a failed block's
	 * values become unavailable); a short poll only refreshes what it read.
	 * A refused total shows the last published one. */
	for (unsigned f = 0; f < RF_COUNT; f++) {
		double v = fresh.v[f];
		if (isnan(v) && !isnan(before.v[f]) && reading_fields[f].total)
			v = d->mono.last[f];
		if (d->cycle_verbose || !d->have_reading || !isnan(v))
			d->last.v[f] = v;
	}
	d->have_reading = true;
	if (h->on_reading)
		h->on_reading(d->set->ud, d, d->cycle_ts_ms, &fresh, d->res, nres);
}

static void cycle_finish(struct device *d)
{
	usec_t lat = loop_now_update(d->set->loop) - d->cycle_start;

	d->cycle_active = false;
	d->st.latency_last_us = lat;
	d->st.latency_sum_us += lat;
	if (lat > d->st.latency_max_us)
		d->st.latency_max_us = lat;

	if (d->cycle_ok == 0) {
		/* Nothing read: a dead link, or a device refusing every block
		 * (exceptions).  Either way, back off rather than hammer it. */
		d->st.polls_partial++;
		if (d->cycle_n && d->set->hooks.on_missed)
			d->set->hooks.on_missed(d->set->ud, d, d->cycle_ts_ms,
						d->cycle_err < 0 ? d->cycle_err : -EIO);
		if (d->cycle_n && ++d->fail_cycles >= DEV_FAIL_CYCLES)
			device_go(d, DEV_BACKING_OFF, "poll: %s", egw_strerror(d->cycle_err));
		return;
	}
	d->fail_cycles = 0;
	/* blocks skipped as unsupported are what the device has not: a
	 * cycle that read all the rest is complete */
	if (d->cycle_ok + d->cycle_unsup == d->cycle_n) {
		d->st.polls_ok++;
		d->st.last_good_ms = d->cycle_ts_ms;
	} else {
		d->st.polls_partial++;
	}
	publish(d);
}

/* Keep a block's words for device_cached_words: the slot of the same block,
 * else an empty one, else the oldest. */
static void cache_store(struct device *d, const struct mb_block *b, const uint16_t *regs)
{
	struct dev_cache *slot = NULL, *victim = &d->cache[0];

	for (unsigned i = 0; i < DEV_CACHE_SLOTS && !slot; i++) {
		struct dev_cache *c = &d->cache[i];
		if (c->b.count == b->count && c->b.fc == b->fc && c->b.addr == b->addr)
			slot = c;
		else if (victim->b.count != 0 && (c->b.count == 0 || c->at < victim->at))
			victim = c;
	}
	if (!slot)
		slot = victim;
	slot->b = *b;
	slot->at = loop_now_update(d->set->loop);
	memcpy(slot->regs, regs, b->count * sizeof(uint16_t));
}

int device_cached_words(const struct device *d, uint8_t fc, uint16_t addr, uint16_t count,
			usec_t max_age, usec_t now, uint16_t *ret_words)
{
	const struct dev_cache *best = NULL;

	if (count == 0 || count > PROFILE_MAX_BLOCK)
		return -EINVAL;
	for (unsigned i = 0; i < DEV_CACHE_SLOTS; i++) {
		const struct dev_cache *c = &d->cache[i];
		if (c->b.count == 0 || c->b.fc != fc || addr < c->b.addr ||
		    (unsigned)addr + count > (unsigned)c->b.addr + c->b.count)
			continue;
		if (now > c->at && now - c->at > max_age)
			continue;
		if (!best || c->at > best->at)
			best = c;
	}
	if (!best)
		return -ENOENT;
	memcpy(ret_words, best->regs + (addr - best->b.addr), count * sizeof(uint16_t));
	return 0;
}

/* The entry for block b in d's unsupported list, or NULL. */
struct dev_unsupported *unsup_find(struct device *d, const struct mb_block *b)
{
	for (unsigned i = 0; i < d->nunsup; i++) {
		const struct mb_block *u = &d->unsup[i].b;
		if (u->fc == b->fc && u->addr == b->addr && u->count == b->count)
			return &d->unsup[i];
	}
	return NULL;
}

struct dev_unsupported *unsup_covering(struct device *d, const struct mb_block *b)
{
	struct dev_unsupported *best = unsup_find(d, b);

	for (unsigned i = 0; !best && i < d->nunsup; i++) {
		const struct mb_block *u = &d->unsup[i].b;
		if (u->fc == b->fc && b->addr >= u->addr &&
		    (unsigned)b->addr + b->count <= (unsigned)u->addr + u->count)
			best = &d->unsup[i];
	}
	return best;
}

/* Remembers (err is exception 2) or forgets (the block answered) that d
 * refuses block b.  A full list keeps asking for the blocks it cannot hold. */
void unsup_note(struct device *d, const struct mb_block *b, int err)
{
	struct dev_unsupported *u = unsup_find(d, b);

	if (err == MB_EXCEPTION_ERR(MB_EX_ILLEGAL_ADDRESS)) {
		if (!u && d->nunsup < DEV_UNSUPPORTED_MAX) {
			u = &d->unsup[d->nunsup++];
			*u = (struct dev_unsupported){ .b = *b };
		}
		if (u)
			u->at = loop_now_update(d->set->loop);
	} else if (err == 0 && u) {
		*u = d->unsup[--d->nunsup];
	}
}

static void on_block(struct device *d, const struct dev_req *q, int err, const uint16_t *regs,
		     unsigned count)
{
	struct block_result *br;

	if (!d->cycle_active || q->idx >= d->cycle_n)
		return;
	br = &d->res[q->idx];
	br->b = q->b;
	br->err = err;
	if (err == 0 && count != q->b.count)
		br->err = -EGW_ELENGTH;
	unsup_note(d, &q->b, br->err);
	if (br->err == 0) {
		memcpy(br->regs, regs, count * sizeof(uint16_t));
		cache_store(d, &q->b, regs);
		d->cycle_ok++;
	} else {
		device_count_error(d, br->err);
		d->cycle_err = br->err;
		if (device_link_error(br->err)) {
			/* The link is down: do not queue the rest behind a dead peer. */
			d->cycle_link_err = true;
			for (unsigned i = q->idx + 1; i < d->cycle_n; i++) {
				d->res[i].b = d->cycle_plan[i];
				d->res[i].err = -ECANCELED;
			}
			d->cycle_next = d->cycle_n;
		}
	}
	cycle_issue_next(d);
}

/* Blocks go out one at a time so a frequency read queued meanwhile waits for
 * at most one block, not for the whole cycle (the client has no priorities). */
static void cycle_issue_next(struct device *d)
{
	usec_t now = loop_now(d->set->loop);

	while (d->cycle_next < d->cycle_n) {
		unsigned i = d->cycle_next++;
		struct dev_unsupported *u = unsup_covering(d, &d->cycle_plan[i]);
		if (u && now - u->at < ms(d->set->cfg.unsupported_retry_ms)) {
			/* the answer it gave: the decoder tells variants apart by it */
			d->res[i].b = d->cycle_plan[i];
			d->res[i].err = MB_EXCEPTION_ERR(MB_EX_ILLEGAL_ADDRESS);
			u->skipped++;
			d->cycle_unsup++;
			continue;
		}
		int r = device_send(d, REQ_BLOCK, i, &d->cycle_plan[i]);
		if (r == 0)
			return;
		d->res[i].b = d->cycle_plan[i];
		d->res[i].err = r;
		device_count_error(d, r);
		d->cycle_err = r;
	}
	cycle_finish(d);
}

static int poll_run(struct task *t, usec_t now)
{
	struct device *d = container_of(t, struct device, poll_task);

	if (d->fsm.state != DEV_POLLING) {
		/* (the task stays queued while backing off, for this report) */
		if (d->fsm.state == DEV_BACKING_OFF && d->set->hooks.on_missed)
			d->set->hooks.on_missed(d->set->ud, d, wall_ms(), -ENOTCONN);
		return 0;
	}
	if (d->cycle_active) {
		/* Still waiting on the previous cycle (slow device). */
		d->st.overruns++;
		return 0;
	}
	bool verbose = d->nkey == 0 || d->poll_seq % DEV_VERBOSE_EVERY == 0;
	d->poll_seq++;
	d->st.polls++;
	d->cycle_verbose = verbose;
	d->cycle_plan = verbose ? d->full : d->key;
	d->cycle_n = verbose ? d->nfull : d->nkey;
	d->cycle_next = 0;
	d->cycle_ok = 0;
	d->cycle_unsup = 0;
	d->cycle_link_err = false;
	d->cycle_err = 0;
	d->cycle_start = now;
	d->cycle_ts_ms = wall_ms();
	d->cycle_active = true;
	cycle_issue_next(d);
	return 0;
}

/* ---- requests --------------------------------------------------------------- */

static void req_done(void *ud, int err, const uint16_t *regs, unsigned count)
{
	struct dev_req *q = ud;
	struct device *d = q->d;

	if (!d) {
		free(q); /* its device was freed while it was queued on a shared link */
		return;
	}
	if (q->prev)
		q->prev->next = q->next;
	else
		d->reqs = q->next;
	if (q->next)
		q->next->prev = q->prev;
	if (q->kind == REQ_FREQ)
		d->freq_pending--;
	if (d->freeing || q->gen != d->gen) {
		free(q);
		return;
	}
	switch (q->kind) {
	case REQ_IDENT:
	case REQ_FREQ_ID:
		device_on_ident(d, q, err, regs, count);
		break;
	case REQ_SS_MARKER:
		device_on_ss_marker(d, err, regs, count);
		break;
	case REQ_SS_MODEL:
		device_on_ss_model(d, q, err, regs, count);
		break;
	case REQ_BLOCK:
		on_block(d, q, err, regs, count);
		break;
	case REQ_FREQ:
		device_on_freq(d, q, err, regs, count);
		break;
	}
	free(q);
}

int device_send(struct device *d, enum req_kind kind, unsigned idx, const struct mb_block *b)
{
	struct dev_req *q = malloc(sizeof(*q));
	int r;

	if (!q)
		return -ENOMEM;
	*q = (struct dev_req){ .d = d,
			       .gen = d->gen,
			       .kind = kind,
			       .idx = idx,
			       .b = *b,
			       .ts_ms = wall_ms() };
	r = mb_client_read(d->link->client, d->conf.unit, b->fc, b->addr, b->count, req_done, q);
	if (r < 0) {
		free(q);
		return r;
	}
	q->next = d->reqs;
	if (d->reqs)
		d->reqs->prev = q;
	d->reqs = q;
	d->st.reads++;
	if (kind == REQ_FREQ)
		d->freq_pending++;
	return 0;
}

/* ---- lifecycle ---------------------------------------------------------------- */

static void conf_release(struct dev_conf *c)
{
	json_decref(c->json);
	c->json = NULL;
}

static void device_free(struct device *d)
{
	if (!d)
		return;
	d->freeing = true;
	loop_task_cancel(d->set->loop, &d->poll_task);
	loop_task_cancel(d->set->loop, &d->retry_task);
	for (struct dev_req *q = d->reqs; q; q = q->next)
		q->d = NULL;
	d->reqs = NULL;
	link_put(d->link);
	p1dev_free(d->p1);
	profile_free(d->heap_prof);
	free(d->full);
	free(d->res);
	conf_release(&d->conf);
	free(d);
}

/* Takes ownership of c->json. */
static int device_new(struct devices *ds, unsigned index, struct dev_conf *c, struct device **ret)
{
	struct device *d = calloc(1, sizeof(*d));
	const struct devices_config *cfg = &ds->cfg;
	int r;

	if (!d)
		return -ENOMEM;
	d->set = ds;
	d->index = index;
	d->conf = *c;
	c->json = NULL;
	d->poll_task = (struct task){ .name = "device-poll",
				      .run = poll_run,
				      .prio = 10,
				      .idx = SCHED_NOT_QUEUED };
	d->retry_task = (struct task){ .name = "device-retry",
				       .run = retry_run,
				       .prio = 10,
				       .idx = SCHED_NOT_QUEUED };
	reading_clear(&d->last);
	reading_mono_init(&d->mono);
	fsm_init(&d->fsm, &fsm_device_def, FSM_DEV_DISCONNECTED, NULL, d, d->conf.id);
	if (d->conf.p1) {
		r = p1dev_new(d, &d->p1);
		if (r < 0) {
			conf_release(&d->conf);
			free(d);
			return r;
		}
		*ret = d;
		return 0;
	}
	struct mb_client_config mc = {
		.kind = d->conf.kind,
		.host = d->conf.host,
		.port = d->conf.port,
		.serial_port = d->conf.serial_port,
		.baudrate = d->conf.baudrate,
		.parity = d->conf.parity,
		.stopbits = d->conf.stopbits,
		.timeout = ms(cfg->timeout_ms),
		.connect_timeout = ms(cfg->connect_timeout_ms),
		.min_gap = ms(cfg->min_gap_ms),
		/* The device layer backs off itself; the client's own reconnect
		 * delay stays short so a retry is not held behind it. */
		.backoff_min = 50 * USEC_PER_MSEC,
		.backoff_max = MIN(ms(cfg->backoff_min_ms), USEC_PER_SEC),
	};
	if (mc.kind == MB_TRANSPORT_SOLARMAN) {
		/* Data loggers answer in hundreds of milliseconds and choke on
		 * back-to-back requests. */
		mc.logger_serial = d->conf.logger_serial;
		mc.timeout = MAX(mc.timeout, DEV_SOLARMAN_TIMEOUT);
		mc.min_gap = MAX(mc.min_gap, DEV_SOLARMAN_GAP);
	}
	if (index < cfg->nmem && cfg->mem[index]) {
		mc.kind = MB_TRANSPORT_MEM;
		mc.mem = cfg->mem[index];
	}
	r = link_get(ds, &mc, &d->link);
	if (r < 0) {
		conf_release(&d->conf);
		free(d);
		return r;
	}
	device_set_profile(d, d->conf.profile);
	if (!d->res) {
		device_free(d);
		return -ENOMEM;
	}
	*ret = d;
	return 0;
}

static void conn_err(int r, unsigned i, char *err, size_t errlen)
{
	if (r == -EINVAL)
		set_errf(err, errlen,
			 "devices[%u].host: connection settings rejected (host must be "
			 "an IP address or a host name; baudrate and parity must be supported)",
			 i);
	else
		set_errf(err, errlen, "devices[%u]: %s", i, egw_strerror(r));
}

static void devices_pick_primary(struct devices *ds)
{
	struct device *p = NULL;

	if (ds->cfg.freq_device_id)
		p = devices_find(ds, ds->cfg.freq_device_id);
	if (!p && ds->n) {
		unsigned i = ds->cfg.freq_device >= 0 ? (unsigned)ds->cfg.freq_device : 0;
		p = i < ds->n ? ds->dev[i] : ds->dev[0];
	}
	/* A P1 meter has no frequency register: the first Modbus device reads it. */
	for (unsigned i = 0; p && p->p1 && i <= ds->n; i++)
		p = i < ds->n ? ds->dev[i] : NULL;
	if (p != ds->primary) {
		ds->primary = p;
		ds->ring_len = 0;
		ds->ring_head = 0;
	}
	if (p && !sched_queued(&ds->freq_task))
		loop_task_add(ds->loop, &ds->freq_task, loop_now(ds->loop));
	else if (!p)
		loop_task_cancel(ds->loop, &ds->freq_task);
}

void devices_set_freq_device(struct devices *ds, int index)
{
	if (!ds || ds->cfg.freq_device == index)
		return;
	ds->cfg.freq_device = index;
	devices_pick_primary(ds);
}

static void start_all(struct devices *ds)
{
	for (unsigned i = 0; i < ds->n; i++)
		if (ds->dev[i]->fsm.state == DEV_DISCONNECTED)
			device_go(ds->dev[i], DEV_CONNECTING, "start");
}

int devices_new(struct loop *l, const json_t *devices_array, const struct devices_config *cfg,
		const struct device_hooks *hooks, void *ud, struct devices **ret, char *err,
		size_t errlen)
{
	struct devices *ds;
	struct dev_conf *confs = NULL;
	unsigned n = 0;
	int r;

	r = parse_all(devices_array, &confs, &n, err, errlen);
	if (r < 0)
		return r;
	ds = calloc(1, sizeof(*ds));
	if (!ds) {
		r = -ENOMEM;
		goto free_confs;
	}
	ds->loop = l;
	if (cfg)
		ds->cfg = *cfg;
	config_defaults(&ds->cfg);
	if (hooks)
		ds->hooks = *hooks;
	ds->ud = ud;
	ds->freq_task = (struct task){ .name = "frequency",
				       .run = device_freq_run,
				       .period = ms(ds->cfg.freq_interval_ms),
				       .prio = 0,
				       .idx = SCHED_NOT_QUEUED };
	if (n) {
		ds->dev = calloc(n, sizeof(*ds->dev));
		if (!ds->dev) {
			r = -ENOMEM;
			goto free_ds;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		r = device_new(ds, i, &confs[i], &ds->dev[i]);
		if (r < 0) {
			conn_err(r, i, err, errlen);
			r = r == -EINVAL ? -EGW_ESCHEMA : r;
			goto free_ds;
		}
		ds->n++;
	}
	free(confs);
	devices_pick_primary(ds);
	start_all(ds);
	*ret = ds;
	return 0;

free_ds:
	for (unsigned i = ds->n; i < n; i++)
		conf_release(&confs[i]);
	devices_free(ds);
	free(confs);
	return r;
free_confs:
	for (unsigned i = 0; i < n; i++)
		conf_release(&confs[i]);
	free(confs);
	return r;
}

void devices_free(struct devices *ds)
{
	if (!ds)
		return;
	loop_task_cancel(ds->loop, &ds->freq_task);
	for (unsigned i = 0; i < ds->n; i++)
		device_free(ds->dev[i]);
	free(ds->dev);
	free(ds);
}

int devices_apply(struct devices *ds, const json_t *devices_array, char *err, size_t errlen)
{
	struct dev_conf *confs = NULL;
	struct device **nd = NULL;
	int *from = NULL;
	unsigned n = 0;
	int r;

	r = parse_all(devices_array, &confs, &n, err, errlen);
	if (r < 0)
		return r;
	if (n) {
		nd = calloc(n, sizeof(*nd));
		from = calloc(n, sizeof(*from));
		if (!nd || !from) {
			r = -ENOMEM;
			goto fail;
		}
	}
	/* Unchanged objects keep their device (and its connection). */
	for (unsigned i = 0; i < n; i++) {
		from[i] = -1;
		for (unsigned j = 0; j < ds->n; j++)
			if (ds->dev[j] && json_equal(ds->dev[j]->conf.json, confs[i].json)) {
				nd[i] = ds->dev[j];
				ds->dev[j] = NULL;
				from[i] = (int)j;
				break;
			}
	}
	for (unsigned i = 0; i < n; i++) {
		if (nd[i])
			continue;
		r = device_new(ds, i, &confs[i], &nd[i]);
		if (r < 0) {
			conn_err(r, i, err, errlen);
			r = r == -EINVAL ? -EGW_ESCHEMA : r;
			goto undo;
		}
	}
	for (unsigned j = 0; j < ds->n; j++) {
		if (ds->dev[j] && ds->dev[j] == ds->primary)
			ds->primary = NULL;
		device_free(ds->dev[j]);
	}
	free(ds->dev);
	ds->dev = nd;
	ds->n = n;
	for (unsigned i = 0; i < n; i++)
		nd[i]->index = i;
	for (unsigned i = 0; i < n; i++)
		conf_release(&confs[i]);
	free(confs);
	free(from);
	devices_pick_primary(ds);
	start_all(ds);
	return 0;

undo:
	/* Give the kept devices back to their slots; drop the new ones. */
	for (unsigned i = 0; i < n; i++) {
		if (from[i] >= 0) {
			ds->dev[from[i]] = nd[i];
			nd[i] = NULL;
		}
		device_free(nd[i]);
	}
fail:
	free(nd);
	free(from);
	for (unsigned i = 0; i < n; i++)
		conf_release(&confs[i]);
	free(confs);
	return r;
}

unsigned devices_count(const struct devices *ds)
{
	return ds ? ds->n : 0;
}

struct device *devices_get(struct devices *ds, unsigned i)
{
	return ds && i < ds->n ? ds->dev[i] : NULL;
}

struct device *devices_find(struct devices *ds, const char *id)
{
	for (unsigned i = 0; ds && id && i < ds->n; i++)
		if (strcmp(ds->dev[i]->conf.id, id) == 0)
			return ds->dev[i];
	return NULL;
}

struct device *devices_find_proxy_unit(struct devices *ds, uint8_t unit)
{
	/* A P1 meter speaks no Modbus: the proxy never answers for it. */
	for (unsigned i = 0; ds && i < ds->n; i++)
		if (!ds->dev[i]->conf.p1 && ds->dev[i]->conf.proxy_unit == unit)
			return ds->dev[i];
	return NULL;
}

uint8_t device_proxy_unit(const struct device *d)
{
	return d->conf.proxy_unit;
}

const char *device_id(const struct device *d)
{
	return d->conf.id;
}

int device_state(const struct device *d)
{
	return (int)d->fsm.state;
}

struct mb_client *device_client(struct device *d)
{
	return d->link ? d->link->client : NULL;
}

uint8_t device_unit(const struct device *d)
{
	return d->conf.unit;
}

const char *device_serial(const struct device *d)
{
	return d->serial;
}

const char *device_profile_name(const struct device *d)
{
	return d->conf.p1 ? "p1" : d->conf.profile->name;
}

const struct profile *device_profile(const struct device *d)
{
	return d->prof ? d->prof : d->conf.profile;
}

const char *device_name(const struct device *d)
{
	return d->conf.name;
}

const struct reading *device_reading(const struct device *d)
{
	return d->have_reading ? &d->last : NULL;
}

void device_stats(const struct device *d, struct device_stats *ret)
{
	struct mb_client_stats cs;
	device_client_stats(d, &cs);
	*ret = d->st;
	ret->reconnects = cs.reconnects;
}
