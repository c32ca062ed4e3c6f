/* Device drivers: connect, identify, poll, and the 10 Hz frequency task.
 * See device.h for the contract. */
#include "devices/device.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/time.h"
#include "base/util.h"
#include "devices/devconf.h"
#include "fsm/fsm.h"
#include "loop/loop.h"
#include "modbus/client.h"
#include "profiles/profile.h"
#include "profiles/reading.h"

_Static_assert((int)DEV_DISCONNECTED == (int)FSM_DEV_DISCONNECTED &&
		       (int)DEV_CONNECTING == (int)FSM_DEV_CONNECTING &&
		       (int)DEV_IDENTIFYING == (int)FSM_DEV_IDENTIFYING &&
		       (int)DEV_POLLING == (int)FSM_DEV_POLLING &&
		       (int)DEV_BACKING_OFF == (int)FSM_DEV_BACKING_OFF &&
		       (int)DEV_ASLEEP == (int)FSM_DEV_ASLEEP &&
		       (int)DEV_STATE_COUNT == (int)FSM_DEV_STATE_COUNT,
	       "device states match fsm/fsm.h");

#define DEV_HOST_LEN DEVCONF_HOST_LEN
#define DEV_SERIAL_LEN 96
#define DEV_KEY_BLOCKS 16
#define DEV_MAX_MODELS 64
#define DEV_FAIL_CYCLES 2      /* consecutive failed poll cycles before backing off */
#define DEV_VERBOSE_EVERY 10   /* short-poll profiles read their blocks every 10th poll */
#define FREQ_RING 128          /* samples kept (>= 1 s at 10 ms intervals would need 100) */
#define FREQ_HZ_MIN 48.0       /* plausible grid frequency for the identity fallback */
#define FREQ_HZ_MAX 62.0
#define LATE_STEP_US 10        /* fine lateness histogram: 10 us buckets ... */
#define LATE_BUCKETS 1000      /* ... up to 10 ms, then one overflow bucket */

static const char *const conn_names[] = {
	[MB_TRANSPORT_TCP] = "tcp",
	[MB_TRANSPORT_RTU] = "rtu",
	[MB_TRANSPORT_RTU_OVER_TCP] = "rtu-over-tcp",
};

const char *device_state_name(int state)
{
	/* The names are the state machine's (fsm/fsm.c), one table for both. */
	return state >= 0 && state < DEV_STATE_COUNT ? fsm_name(&fsm_device_def, (unsigned)state)
						     : "unknown";
}

/* What a queued request is for. */
enum req_kind { REQ_IDENT, REQ_SS_MARKER, REQ_SS_MODEL, REQ_FREQ_ID, REQ_BLOCK, REQ_FREQ };

/* One in-flight request; freed by its callback (which runs exactly once). */
struct dev_req {
	struct device *d;           /* NULL once the device is gone (orphan) */
	struct dev_req *prev, *next; /* the device's requests in flight */
	uint64_t gen;
	enum req_kind kind;
	unsigned idx;
	struct mb_block b;
	int64_t ts_ms;
};

struct freq_sample {
	int64_t ts_ms;
	double hz;
};

/* One Modbus client per connection (serial line, or TCP host:port), shared
 * by the devices behind it (unit ids on one RS-485 bus or one gateway). */
struct link {
	struct devices *set;
	struct link *next;
	unsigned refs;
	char host[DEV_HOST_LEN];
	char serial_port[DEV_HOST_LEN];
	struct mb_client_config mc;       /* strings point into this link */
	struct mb_client *client;
	struct mb_client *old[4];         /* replaced, freed by reap_task */
	struct task reap_task;
	struct mb_client_stats base;      /* totals of the clients replaced */
};

struct device {
	struct devices *set;
	unsigned index;
	struct dev_conf conf;
	struct link *link;
	struct dev_req *reqs;             /* in flight */
	struct fsm fsm;
	const struct profile *prof; /* active: conf.profile or heap_prof */
	struct profile *heap_prof;  /* SunSpec map built at identification */
	uint64_t gen;               /* bumped whenever outstanding requests become stale */
	bool freeing;

	struct task poll_task;
	struct task retry_task;
	usec_t backoff;
	unsigned connect_failures;  /* consecutive failed connection attempts */
	unsigned fail_cycles;       /* consecutive poll cycles that read nothing */

	char serial[DEV_SERIAL_LEN];
	bool identified;            /* serial holds an identity seen before */

	/* SunSpec discovery */
	unsigned ss_base_i;
	uint16_t ss_base;
	struct sunspec_model_hdr ss_models[DEV_MAX_MODELS];
	unsigned ss_n;

	/* poll cycle */
	struct mb_block *full;      /* verbose plan (the profile's blocks) */
	unsigned nfull;
	struct mb_block key[DEV_KEY_BLOCKS];
	unsigned nkey;
	struct block_result *res;   /* max(nfull, nkey) entries */
	const struct mb_block *cycle_plan;
	unsigned cycle_n, cycle_next, cycle_ok;
	bool cycle_active, cycle_verbose, cycle_link_err;
	int cycle_err;
	usec_t cycle_start;
	int64_t cycle_ts_ms;
	uint64_t poll_seq;

	struct reading last;        /* merged view for the API */
	bool have_reading;
	struct reading_mono mono;
	struct device_stats st;

	unsigned freq_pending;      /* frequency requests in flight */
};

struct devices {
	struct loop *loop;
	struct devices_config cfg;
	struct device_hooks hooks;
	void *ud;
	struct device **dev;
	unsigned n;
	struct link *links;

	struct task freq_task;
	struct device *primary;
	struct freq_sample ring[FREQ_RING];
	unsigned ring_head, ring_len;
	uint64_t freq_reads, freq_errors, freq_skipped;
	int freq_last_err;
	/* How late each frequency read started, finer than the scheduler's own
	 * histogram (whose buckets are too wide to tell 1.2 ms from 1.9 ms). */
	uint32_t late[LATE_BUCKETS + 1];
	uint64_t late_n;
	usec_t late_max;
};

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

static unsigned dev_poll_ms(const struct device *d)
{
	return d->conf.poll_interval_ms ? d->conf.poll_interval_ms : d->set->cfg.poll_interval_ms;
}

/* Errors that say the link is not working (as opposed to a device that
 * answers, possibly with an exception or a malformed frame). */
static bool link_error(int err)
{
	return err < 0 && -err < EGW_ERR_BASE;
}

/* One request for register r and its SunSpec sf register, when they fit in
 * one block (they do within a model); otherwise r alone (the static factor
 * is then the fallback).  Returns 0 or -EINVAL. */
static int plan_single(const struct reg_def *r, struct mb_block *ret)
{
	struct mb_block b[2];
	int n = profile_plan_one(r, b, 2);

	if (n < 1)
		return -EINVAL;
	*ret = b[0];
	if (n == 2 && b[1].fc == b[0].fc) {
		unsigned lo = MIN(b[0].addr, b[1].addr);
		unsigned hi = MAX((unsigned)b[0].addr + b[0].count, (unsigned)b[1].addr + b[1].count);
		if (hi - lo <= PROFILE_MAX_BLOCK)
			*ret = (struct mb_block){ .fc = b[0].fc, .addr = (uint16_t)lo,
						  .count = (uint16_t)(hi - lo) };
	}
	return 0;
}

static void count_error(struct device *d, int err)
{
	d->st.errors++;
	d->st.last_error = err;
	if (err == -ETIMEDOUT)
		d->st.timeouts++;
	else if (mb_is_exception_err(err))
		d->st.exceptions++;
}

static void dev_go(struct device *d, int to, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int dev_send(struct device *d, enum req_kind kind, unsigned idx, const struct mb_block *b);

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
static void client_stats(const struct device *d, struct mb_client_stats *ret)
{
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
	snprintf(l->serial_port, sizeof(l->serial_port), "%s", mc->serial_port ? mc->serial_port : "");
	l->mc.host = l->host;
	l->mc.serial_port = l->serial_port;
	l->reap_task = (struct task){ .name = "device-reap", .run = reap_run, .prio = 20,
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

static void start_identify(struct device *d);

static void dev_enter(struct device *d, int from, int to)
{
	struct loop *l = d->set->loop;
	usec_t now = loop_now(l);
	UNUSED(from);

	switch (to) {
	case DEV_CONNECTING:
		stop_activity(d);
		start_identify(d);
		break;
	case DEV_IDENTIFYING:
		break;
	case DEV_POLLING:
		d->connect_failures = 0;
		d->fail_cycles = 0;
		d->backoff = 0;
		d->poll_task.period = ms(dev_poll_ms(d));
		loop_task_add(l, &d->poll_task, now);
		break;
	case DEV_BACKING_OFF: {
		usec_t lo = ms(d->set->cfg.backoff_min_ms), hi = ms(d->set->cfg.backoff_max_ms);
		stop_activity(d);
		client_recycle(d);
		d->backoff = d->backoff ? MIN(d->backoff * 2, hi) : lo;
		loop_task_add(l, &d->retry_task, now + d->backoff);
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

static void dev_go(struct device *d, int to, const char *fmt, ...)
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
static void connect_failed(struct device *d, int err)
{
	d->connect_failures++;
	d->st.last_error = err;
	if (d->connect_failures >= d->set->cfg.sleep_after_failures)
		dev_go(d, DEV_ASLEEP, "%u failed attempts: %s", d->connect_failures,
		       egw_strerror(err));
	else
		dev_go(d, DEV_BACKING_OFF, "connect: %s", egw_strerror(err));
}

/* Identification could not complete although the device answers. */
static void identify_failed(struct device *d, const char *what, int err)
{
	d->st.last_error = err;
	dev_go(d, DEV_BACKING_OFF, "%s: %s", what, egw_strerror(err));
}

static int retry_run(struct task *t, usec_t now)
{
	struct device *d = container_of(t, struct device, retry_task);
	UNUSED(now);
	dev_go(d, DEV_CONNECTING, "%s", d->fsm.state == DEV_ASLEEP ? "wake-up retry" : "retry");
	return 0;
}

/* ---- identification ------------------------------------------------------- */

static void set_profile(struct device *d, const struct profile *p)
{
	struct mb_block *full = NULL;
	struct block_result *res;
	int nkey = 0;
	unsigned cap;

	if (p->nblocks) {
		full = calloc(p->nblocks, sizeof(*full));
		if (!full)
			return;
		memcpy(full, p->blocks, p->nblocks * sizeof(*full));
	}
	if (!p->blocks_every_poll) {
		nkey = profile_plan_key(p, d->key, DEV_KEY_BLOCKS);
		if (nkey < 0)
			nkey = 0;
	}
	cap = MAX(p->nblocks, (unsigned)nkey);
	res = calloc(cap ? cap : 1, sizeof(*res));
	if (!res) {
		free(full);
		return;
	}
	free(d->full);
	free(d->res);
	d->full = full;
	d->nfull = p->nblocks;
	d->nkey = (unsigned)nkey;
	d->res = res;
	d->prof = p;
}

static void identity_found(struct device *d, const char *serial)
{
	if (d->identified && strcmp(d->serial, serial) != 0) {
		char old[DEV_SERIAL_LEN];
		snprintf(old, sizeof(old), "%s", d->serial);
		snprintf(d->serial, sizeof(d->serial), "%s", serial);
		d->st.identity_changes++;
		/* A different unit answers at this address: its totals start afresh. */
		reading_mono_init(&d->mono);
		d->have_reading = false;
		if (d->set->hooks.on_identity_change)
			d->set->hooks.on_identity_change(d->set->ud, d, old, serial);
	} else {
		snprintf(d->serial, sizeof(d->serial), "%s", serial);
	}
	d->identified = true;
	dev_go(d, DEV_POLLING, "identified %.40s", d->serial);
}

/* No serial register: the MAC of the host (from the ARP table) is the identity,
 * or, where there is none (loopback, serial lines), the address itself. */
static void fallback_identity(const struct device *d, char *buf, size_t cap)
{
	FILE *f = d->conf.kind != MB_TRANSPORT_RTU ? fopen("/proc/net/arp", "re") : NULL;
	char line[256], ip[64], hw[64];

	if (f) {
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line, "%63s %*s %*s %63s", ip, hw) == 2 &&
			    strcmp(ip, d->conf.host) == 0 && strcmp(hw, "00:00:00:00:00:00") != 0) {
				snprintf(buf, cap, "%s", hw);
				fclose(f);
				return;
			}
		}
		fclose(f);
	}
	if (d->conf.kind == MB_TRANSPORT_RTU)
		snprintf(buf, cap, "%.60s#%u", d->conf.serial_port, d->conf.unit);
	else
		snprintf(buf, cap, "%.60s:%u#%u", d->conf.host, d->conf.port, d->conf.unit);
}

static void start_identify(struct device *d)
{
	struct mb_block b;
	int r;

	if (d->conf.sunspec) {
		d->ss_base_i = 0;
		d->ss_n = 0;
		b = (struct mb_block){ .fc = REG_FC_HOLDING, .addr = sunspec_bases[0], .count = 2 };
		r = dev_send(d, REQ_SS_MARKER, 0, &b);
	} else if (d->prof->serial && plan_single(d->prof->serial, &b) == 0) {
		r = dev_send(d, REQ_IDENT, 0, &b);
	} else if (d->prof->frequency && plan_single(d->prof->frequency, &b) == 0) {
		r = dev_send(d, REQ_FREQ_ID, 0, &b);
	} else {
		/* Nothing to identify with: the address is the identity. */
		char id[DEV_SERIAL_LEN];
		fallback_identity(d, id, sizeof(id));
		dev_go(d, DEV_IDENTIFYING, "no identity register");
		identity_found(d, id);
		return;
	}
	if (r < 0)
		connect_failed(d, r);
}

static void on_ident(struct device *d, const struct dev_req *q, int err, const uint16_t *regs,
		     unsigned count)
{
	struct block_result *br;
	char serial[DEV_SERIAL_LEN];
	int r;

	if (link_error(err)) {
		connect_failed(d, err);
		return;
	}
	dev_go(d, DEV_IDENTIFYING, "connected");
	if (err < 0) {
		identify_failed(d, "serial", err);
		return;
	}
	br = malloc(sizeof(*br));
	if (!br) {
		identify_failed(d, "serial", -ENOMEM);
		return;
	}
	br->b = q->b;
	br->err = 0;
	memcpy(br->regs, regs, MIN(count, (unsigned)PROFILE_MAX_BLOCK) * sizeof(uint16_t));
	if (q->kind == REQ_FREQ_ID) {
		double hz;
		r = profile_decode_value(d->prof->frequency, br, 1, &hz);
		free(br);
		if (r < 0) {
			identify_failed(d, "frequency identity", r);
			return;
		}
		if (!(hz >= FREQ_HZ_MIN && hz <= FREQ_HZ_MAX)) {
			identify_failed(d, "frequency identity", -EGW_EPROFILE);
			return;
		}
		fallback_identity(d, serial, sizeof(serial));
		identity_found(d, serial);
		return;
	}
	r = profile_decode_serial(d->prof, br, 1, serial, sizeof(serial));
	free(br);
	if (r < 0) {
		identify_failed(d, "serial", r);
		return;
	}
	identity_found(d, serial);
}

static void ss_walk_next(struct device *d, uint16_t addr)
{
	struct mb_block b = { .fc = REG_FC_HOLDING, .addr = addr, .count = 2 };
	int r = dev_send(d, REQ_SS_MODEL, 0, &b);
	if (r < 0)
		identify_failed(d, "SunSpec walk", r);
}

static void on_ss_marker(struct device *d, int err, const uint16_t *regs, unsigned count)
{
	if (d->fsm.state == DEV_CONNECTING) {
		if (link_error(err)) {
			connect_failed(d, err);
			return;
		}
		dev_go(d, DEV_IDENTIFYING, "connected");
	}
	if (err == 0 && count >= 2 && sunspec_is_marker(regs)) {
		d->ss_base = sunspec_bases[d->ss_base_i];
		ss_walk_next(d, (uint16_t)(d->ss_base + 2));
		return;
	}
	if (link_error(err)) {
		identify_failed(d, "SunSpec probe", err);
		return;
	}
	if (++d->ss_base_i >= SUNSPEC_NBASES) {
		identify_failed(d, "SunSpec", -EGW_EPROFILE);
		return;
	}
	struct mb_block b = { .fc = REG_FC_HOLDING, .addr = sunspec_bases[d->ss_base_i], .count = 2 };
	int r = dev_send(d, REQ_SS_MARKER, 0, &b);
	if (r < 0)
		identify_failed(d, "SunSpec probe", r);
}

static void ss_finish(struct device *d)
{
	struct profile *p = NULL;
	int r = sunspec_build_profile(d->ss_base, d->ss_models, d->ss_n, &p);
	struct mb_block b;

	if (r < 0) {
		identify_failed(d, "SunSpec models", r);
		return;
	}
	if (d->heap_prof && d->prof == d->heap_prof)
		d->prof = d->conf.profile;
	profile_free(d->heap_prof);
	d->heap_prof = p;
	set_profile(d, p);
	if (d->prof != p) {
		identify_failed(d, "SunSpec profile", -ENOMEM);
		return;
	}
	if (p->serial && plan_single(p->serial, &b) == 0) {
		r = dev_send(d, REQ_IDENT, 0, &b);
		if (r < 0)
			identify_failed(d, "serial", r);
		return;
	}
	char id[DEV_SERIAL_LEN];
	fallback_identity(d, id, sizeof(id));
	identity_found(d, id);
}

static void on_ss_model(struct device *d, const struct dev_req *q, int err, const uint16_t *regs,
			unsigned count)
{
	struct sunspec_model_hdr m;
	uint16_t next;
	int r;

	if (err < 0 || count < 2) {
		/* Some devices answer an exception instead of the end marker. */
		if (d->ss_n && !link_error(err)) {
			ss_finish(d);
			return;
		}
		identify_failed(d, "SunSpec walk", err < 0 ? err : -EGW_EFRAME);
		return;
	}
	r = sunspec_next(regs, q->b.addr, &m, &next);
	if (r < 0) {
		identify_failed(d, "SunSpec walk", r);
		return;
	}
	if (r == 0 || d->ss_n >= DEV_MAX_MODELS) {
		ss_finish(d);
		return;
	}
	d->ss_models[d->ss_n++] = m;
	ss_walk_next(d, next);
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
		if (d->cycle_n && ++d->fail_cycles >= DEV_FAIL_CYCLES)
			dev_go(d, DEV_BACKING_OFF, "poll: %s", egw_strerror(d->cycle_err));
		return;
	}
	d->fail_cycles = 0;
	if (d->cycle_ok == d->cycle_n) {
		d->st.polls_ok++;
		d->st.last_good_ms = d->cycle_ts_ms;
	} else {
		d->st.polls_partial++;
	}
	publish(d);
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
	if (br->err == 0) {
		memcpy(br->regs, regs, count * sizeof(uint16_t));
		d->cycle_ok++;
	} else {
		count_error(d, br->err);
		d->cycle_err = br->err;
		if (link_error(br->err)) {
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
	while (d->cycle_next < d->cycle_n) {
		unsigned i = d->cycle_next++;
		int r = dev_send(d, REQ_BLOCK, i, &d->cycle_plan[i]);
		if (r == 0)
			return;
		d->res[i].b = d->cycle_plan[i];
		d->res[i].err = r;
		count_error(d, r);
		d->cycle_err = r;
	}
	cycle_finish(d);
}

static int poll_run(struct task *t, usec_t now)
{
	struct device *d = container_of(t, struct device, poll_task);

	if (d->fsm.state != DEV_POLLING)
		return 0;
	if (d->cycle_active) {
		/* Still waiting on the previous cycle (slow device). */
		d->st.overruns++;
		return 0;
	}
	bool verbose = d->prof->blocks_every_poll || d->nkey == 0 ||
		       d->poll_seq % DEV_VERBOSE_EVERY == 0;
	d->poll_seq++;
	d->st.polls++;
	d->cycle_verbose = verbose;
	d->cycle_plan = verbose ? d->full : d->key;
	d->cycle_n = verbose ? d->nfull : d->nkey;
	d->cycle_next = 0;
	d->cycle_ok = 0;
	d->cycle_link_err = false;
	d->cycle_err = 0;
	d->cycle_start = now;
	d->cycle_ts_ms = wall_ms();
	d->cycle_active = true;
	cycle_issue_next(d);
	return 0;
}

/* ---- frequency -------------------------------------------------------------- */

static void freq_push(struct devices *ds, int64_t ts, double hz)
{
	ds->ring[ds->ring_head] = (struct freq_sample){ .ts_ms = ts, .hz = hz };
	ds->ring_head = (ds->ring_head + 1) % FREQ_RING;
	if (ds->ring_len < FREQ_RING)
		ds->ring_len++;
}

static void on_freq(struct device *d, const struct dev_req *q, int err, const uint16_t *regs,
		    unsigned count)
{
	struct devices *ds = d->set;
	struct block_result *br;
	double hz;
	int r = err;

	if (ds->primary != d)
		return;
	if (r == 0 && count == q->b.count) {
		br = malloc(sizeof(*br));
		if (!br) {
			r = -ENOMEM;
		} else {
			br->b = q->b;
			br->err = 0;
			memcpy(br->regs, regs, count * sizeof(uint16_t));
			r = profile_decode_value(d->prof->frequency, br, 1, &hz);
			free(br);
		}
	} else if (r == 0) {
		r = -EGW_ELENGTH;
	}
	if (r < 0) {
		ds->freq_errors++;
		ds->freq_last_err = r;
		if (err < 0)
			count_error(d, err);
		return;
	}
	freq_push(ds, q->ts_ms, hz);
	if (ds->hooks.on_freq)
		ds->hooks.on_freq(ds->ud, d, q->ts_ms, hz);
}

static int freq_run(struct task *t, usec_t now)
{
	struct devices *ds = container_of(t, struct devices, freq_task);
	struct device *d = ds->primary;
	struct mb_block b;
	usec_t late = now - t->due; /* t->due: this run's, until the task is re-armed */

	if (!d || d->fsm.state != DEV_POLLING || !d->prof->frequency ||
	    plan_single(d->prof->frequency, &b) < 0) {
		ds->freq_skipped++;
		return 0;
	}
	if (d->freq_pending) {
		/* The previous read has not come back: do not pile up behind it. */
		ds->freq_skipped++;
		return 0;
	}
	/* Lateness of the reads themselves (not of idle runs while the device is
	 * not polling, nor of the first run, which waits for the daemon's start). */
	if (late < 0)
		late = 0;
	if (ds->freq_reads) {
		ds->late[MIN((uint64_t)(late / LATE_STEP_US), (uint64_t)LATE_BUCKETS)]++;
		ds->late_n++;
		if (late > ds->late_max)
			ds->late_max = late;
	}
	ds->freq_reads++;
	int r = dev_send(d, REQ_FREQ, 0, &b);
	if (r < 0) {
		ds->freq_errors++;
		ds->freq_last_err = r;
	}
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
		on_ident(d, q, err, regs, count);
		break;
	case REQ_SS_MARKER:
		on_ss_marker(d, err, regs, count);
		break;
	case REQ_SS_MODEL:
		on_ss_model(d, q, err, regs, count);
		break;
	case REQ_BLOCK:
		on_block(d, q, err, regs, count);
		break;
	case REQ_FREQ:
		on_freq(d, q, err, regs, count);
		break;
	}
	free(q);
}

static int dev_send(struct device *d, enum req_kind kind, unsigned idx, const struct mb_block *b)
{
	struct dev_req *q = malloc(sizeof(*q));
	int r;

	if (!q)
		return -ENOMEM;
	*q = (struct dev_req){ .d = d, .gen = d->gen, .kind = kind, .idx = idx, .b = *b,
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
	profile_free(d->heap_prof);
	free(d->full);
	free(d->res);
	conf_release(&d->conf);
	free(d);
}

/* Takes ownership of c->json. */
static int device_new(struct devices *ds, unsigned index, struct dev_conf *c,
		      struct device **ret)
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
	d->poll_task = (struct task){ .name = "device-poll", .run = poll_run, .prio = 10,
				      .idx = SCHED_NOT_QUEUED };
	d->retry_task = (struct task){ .name = "device-retry", .run = retry_run, .prio = 10,
				       .idx = SCHED_NOT_QUEUED };
	reading_clear(&d->last);
	reading_mono_init(&d->mono);
	fsm_init(&d->fsm, &fsm_device_def, FSM_DEV_DISCONNECTED, NULL, d, d->conf.id);
	set_profile(d, d->conf.profile);
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
		set_errf(err, errlen, "devices[%u].host: connection settings rejected (host must be "
			 "an IP address or a host name; baudrate and parity must be supported)", i);
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

static void start_all(struct devices *ds)
{
	for (unsigned i = 0; i < ds->n; i++)
		if (ds->dev[i]->fsm.state == DEV_DISCONNECTED)
			dev_go(ds->dev[i], DEV_CONNECTING, "start");
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
	ds->freq_task = (struct task){ .name = "frequency", .run = freq_run,
				       .period = ms(ds->cfg.freq_interval_ms), .prio = 0,
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
	return d->link->client;
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
	return d->conf.profile->name;
}

const struct reading *device_reading(const struct device *d)
{
	return d->have_reading ? &d->last : NULL;
}

void device_stats(const struct device *d, struct device_stats *ret)
{
	struct mb_client_stats cs;
	client_stats(d, &cs);
	*ret = d->st;
	ret->reconnects = cs.reconnects;
}

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
	client_stats(d, &mcs);
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
	json_object_set_new(o, "last_good_ms", s.last_good_ms ? json_integer(s.last_good_ms) : json_null());
	set_ms(o, "latency_last_ms", s.latency_last_us);
	set_ms(o, "latency_max_ms", s.latency_max_us);
	set_ms(o, "latency_mean_ms", cycles ? s.latency_sum_us / (usec_t)cycles : 0);
	json_object_set_new(o, "last_error",
			    s.last_error ? json_string(egw_strerror(s.last_error)) : json_null());
	set_u64(m, "requests", cs->requests);
	set_u64(m, "responses", cs->responses);
	set_u64(m, "errors", cs->errors);
	set_u64(m, "timeouts", cs->timeouts);
	set_u64(m, "exceptions", cs->exceptions);
	set_u64(m, "connects", cs->connects);
	set_u64(m, "reconnects", cs->reconnects);
	set_u64(m, "tid_mismatches", cs->tid_mismatches);
	set_u64(m, "bytes_garbage", cs->bytes_garbage);
	set_ms(m, "latency_p50_ms", mb_client_latency_percentile(d->link->client, 50));
	set_ms(m, "latency_p99_ms", mb_client_latency_percentile(d->link->client, 99));
	json_object_set_new(m, "connected", json_boolean(mb_client_connected(d->link->client)));
	set_u64(m, "devices_on_link", d->link->refs);
	json_object_set_new(o, "modbus", m);
	return o;
}

static json_t *conn_json(const struct dev_conf *c)
{
	if (c->kind == MB_TRANSPORT_RTU)
		return json_pack("{ss ss si si ss# si}", "connection", conn_names[c->kind],
				 "serial_port", c->serial_port, "baudrate", (int)c->baudrate,
				 "unit_id", (int)c->unit, "parity", &c->parity, (int)1,
				 "stopbits", (int)(c->stopbits ? c->stopbits : (c->parity == 'N' ? 2 : 1)));
	return json_pack("{ss ss si si}", "connection", conn_names[c->kind], "host", c->host,
			 "port", (int)c->port, "unit_id", (int)c->unit);
}

json_t *device_to_json(const struct device *d)
{
	json_t *reading = d->have_reading ? reading_to_json(&d->last) : json_null();
	json_t *fsm = fsm_to_json(&d->fsm);

	return json_pack("{ss ss ss ss ss s:o s:o s:o s:o sI si}",
			 "id", d->conf.id, "name", d->conf.name, "state", device_state_name(device_state(d)),
			 "profile", d->conf.profile->name,
			 "serial", d->serial,
			 "reading", reading ? reading : json_null(),
			 "stats", stats_json(d),
			 "connection", conn_json(&d->conf),
			 "fsm", fsm ? fsm : json_null(),
			 "transitions", (json_int_t)d->st.transitions,
			 "poll_interval_ms", (int)dev_poll_ms(d));
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
				json_array_append_new(samples, json_pack("[I f]", (json_int_t)ds->ring[i].ts_ms,
									 ds->ring[i].hz));
		}
		json_decref(latest);
		latest = json_pack("{sI sf}", "ts_ms", (json_int_t)ds->ring[newest].ts_ms, "hz",
				   ds->ring[newest].hz);
		struct freq_stats s;
		if (freq_stats_compute(ts, hz, n, &s) == 0) {
			json_decref(stats);
			stats = json_pack("{sf sf sf sf si}", "mean", s.mean, "min", s.min, "max", s.max,
					  "rocof_hz_s", round(s.rocof * 1e6) / 1e6, "n", (int)s.n);
		}
	}
	return json_pack("{s:o si s:o s:o s:o sI sI sI s:o s{sf sf sf sf sf sI}}",
			 "device", ds->primary ? json_string(ds->primary->conf.id) : json_null(),
			 "interval_ms", (int)ds->cfg.freq_interval_ms,
			 "latest", latest ? latest : json_null(),
			 "samples", samples ? samples : json_array(),
			 "stats_1s", stats ? stats : json_null(),
			 "reads", (json_int_t)ds->freq_reads, "errors", (json_int_t)ds->freq_errors,
			 "skipped", (json_int_t)ds->freq_skipped,
			 "last_error", ds->freq_last_err ? json_string(egw_strerror(ds->freq_last_err)) : json_null(),
			 "lateness_us",
			 "p50", (double)late_pct(ds, 50),
			 "p99", (double)late_pct(ds, 99),
			 "p999", (double)late_pct(ds, 99.9),
			 "max", (double)ds->late_max,
			 "last", (double)t->stats.late_last,
			 "runs", (json_int_t)ds->late_n);
}

const struct task *devices_frequency_task(const struct devices *ds)
{
	return ds && ds->primary ? &ds->freq_task : NULL;
}
