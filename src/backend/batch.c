#include "backend/batch.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/uploader.h"
#include "base/err.h"
#include "base/json.h"
#include "base/util.h"
#include "crypto/jwt.h"
#include "crypto/signer.h"
#include "profiles/reading.h"
#include "store/store.h"

#define ID_MAX 64
#define RESIGN_MAX 16

struct dev_acc {
	char id[ID_MAX];
	char profile[ID_MAX];
	char serial[ID_MAX];
	json_t *raw;      /* {"<ts>": {...}} */
	json_t *readings; /* {"<ts>": {...}} */
};

/* A sealed batch waiting to be signed and committed. */
struct pending {
	int64_t seq;
	int64_t created_ms;
	char *payload;
	char model[ID_MAX];
	char *jwt; /* set by the worker once signed */
};

struct batch {
	struct loop *loop;
	struct store *store;
	struct signer *signer;
	struct uploader *up;
	usec_t interval;
	unsigned freq_interval_ms;
	struct task seal_task;
	struct task retry_task; /* one-shot: commit again after a store error */
	struct task resign_task;

	/* the batch being collected */
	int64_t from_ms;
	struct dev_acc devs[BATCH_MAX_DEVICES];
	unsigned ndev;
	unsigned nreadings;
	char freq_dev[ID_MAX];
	json_t *samples;
	unsigned nsamples;
	double fsum, fmin, fmax;
	unsigned overflow_readings, overflow_samples;

	/* sealed batches, FIFO; the head is the one the worker handles */
	struct pending q[BATCH_MAX_PENDING];
	unsigned qhead, qlen;
	struct loop_work commit_work;
	int sign_r, append_r, bounds_r;

	struct loop_work resign_work;
	unsigned resigned_now;
	int resign_r;

	struct batch_stats st;
};

static void copy_id(char dst[ID_MAX], const char *src)
{
	snprintf(dst, ID_MAX, "%s", src ? src : "");
}

static void collect_reset(struct batch *b, int64_t from_ms)
{
	for (unsigned i = 0; i < b->ndev; i++) {
		json_decref(b->devs[i].raw);
		json_decref(b->devs[i].readings);
	}
	memset(b->devs, 0, sizeof(b->devs));
	b->ndev = 0;
	b->nreadings = 0;
	json_decref(b->samples);
	b->samples = NULL;
	b->nsamples = 0;
	b->freq_dev[0] = '\0';
	b->fsum = 0;
	b->fmin = INFINITY;
	b->fmax = -INFINITY;
	b->overflow_readings = b->overflow_samples = 0;
	b->from_ms = from_ms;
}

static struct dev_acc *dev_get(struct batch *b, const char *id)
{
	for (unsigned i = 0; i < b->ndev; i++)
		if (strcmp(b->devs[i].id, id) == 0)
			return &b->devs[i];
	if (b->ndev == BATCH_MAX_DEVICES)
		return NULL;
	struct dev_acc *d = &b->devs[b->ndev];
	d->raw = json_object();
	d->readings = json_object();
	if (!d->raw || !d->readings) {
		json_decref(d->raw);
		json_decref(d->readings);
		memset(d, 0, sizeof(*d));
		return NULL;
	}
	copy_id(d->id, id);
	b->ndev++;
	return d;
}

int batch_add_reading(struct batch *b, const char *dev_id, const char *profile, const char *serial,
                      int64_t ts_ms, const struct reading *r, const json_t *raw)
{
	char key[24];
	struct dev_acc *d;
	json_t *c = NULL, *j = NULL;
	unsigned ndev = b->ndev;
	bool raw_set = false;

	if (!dev_id || !*dev_id || (!r && !raw))
		return -EINVAL;
	if (b->nreadings >= BATCH_MAX_READINGS) {
		b->overflow_readings++;
		b->st.overflow++;
		return -ENOSPC;
	}
	d = dev_get(b, dev_id);
	if (!d && b->ndev < BATCH_MAX_DEVICES)
		return -ENOMEM; /* below the cap: its maps could not be allocated */
	if (!d) {
		b->overflow_readings++;
		b->st.overflow++;
		return -ENOSPC;
	}
	/* A reading is added whole or not at all: both values are built
	 * first, and a raw map already set is taken out again if the reading
	 * cannot follow (a new key is what can fail to be set). */
	snprintf(key, sizeof(key), "%lld", (long long)ts_ms);
	if (raw && json_is_object(raw) && !(c = json_deep_copy(raw)))
		goto nomem;
	if (r && !(j = reading_to_json(r)))
		goto nomem;
	if (c) {
		raw_set = json_object_set_new(d->raw, key, c) == 0;
		c = NULL; /* taken, even on failure */
		if (!raw_set)
			goto nomem;
	}
	if (j) {
		int rs = json_object_set_new(d->readings, key, j);
		j = NULL;
		if (rs < 0)
			goto nomem;
	}
	/* Identity may become known during the batch: keep the latest. */
	if (profile && *profile)
		copy_id(d->profile, profile);
	if (serial && *serial)
		copy_id(d->serial, serial);
	b->nreadings++;
	b->st.readings++;
	return 0;
nomem:
	json_decref(c);
	json_decref(j);
	if (raw_set)
		json_object_del(d->raw, key);
	if (b->ndev > ndev) {
		/* the device entry was made for this reading alone */
		json_decref(d->raw);
		json_decref(d->readings);
		memset(d, 0, sizeof(*d));
		b->ndev--;
	}
	return -ENOMEM;
}

int batch_add_freq(struct batch *b, const char *dev_id, int64_t ts_ms, double hz)
{
	json_t *s;

	if (!isfinite(hz))
		return -EINVAL;
	if (b->nsamples >= BATCH_MAX_SAMPLES) {
		b->overflow_samples++;
		b->st.overflow++;
		return -ENOSPC;
	}
	if (!b->samples) {
		b->samples = json_array();
		if (!b->samples)
			return -ENOMEM;
	}
	if (dev_id)
		copy_id(b->freq_dev, dev_id);
	s = json_pack("[If]", (json_int_t)ts_ms, hz);
	if (!s || json_array_append_new(b->samples, s) < 0)
		return -ENOMEM;
	b->nsamples++;
	b->fsum += hz;
	b->fmin = MIN(b->fmin, hz);
	b->fmax = MAX(b->fmax, hz);
	b->st.samples++;
	return 0;
}

static json_t *build_payload(struct batch *b, int64_t seq, int64_t now_ms)
{
	json_t *p, *devs, *o;

	p = json_pack("{sIsIsssI}", "seq", (json_int_t)seq, "iat", (json_int_t)(now_ms / 1000),
	              "gateway", signer_serial_hex(b->signer), "from_ms", (json_int_t)b->from_ms);
	if (!p)
		return NULL;
	if (json_object_set_new(p, "to_ms", json_integer(now_ms)) < 0)
		goto err;
	devs = json_array();
	if (!devs || json_object_set_new(p, "devices", devs) < 0)
		goto err;
	for (unsigned i = 0; i < b->ndev; i++) {
		struct dev_acc *d = &b->devs[i];
		o = json_pack("{sssssssOsO}", "id", d->id, "profile", d->profile, "serial",
		              d->serial, "raw", d->raw, "readings", d->readings);
		if (!o || json_array_append_new(devs, o) < 0)
			goto err;
	}
	if (b->nsamples > 0) {
		o = json_pack("{sssIsO}", "device", b->freq_dev, "interval_ms",
		              (json_int_t)b->freq_interval_ms, "samples", b->samples);
		if (!o || json_object_set_new(p, "frequency", o) < 0)
			goto err;
		json_t *stats = json_pack("{sIsfsfsf}", "count", (json_int_t)b->nsamples, "mean",
		                          b->fsum / b->nsamples, "min", b->fmin, "max", b->fmax);
		if (!stats || json_object_set_new(o, "stats", stats) < 0)
			goto err;
	}
	if (b->overflow_readings || b->overflow_samples) {
		o = json_pack("{sIsI}", "readings", (json_int_t)b->overflow_readings, "samples",
		              (json_int_t)b->overflow_samples);
		if (!o || json_object_set_new(p, "overflow", o) < 0)
			goto err;
	}
	return p;
err:
	json_decref(p);
	return NULL;
}

/* ---- commit: sign + append on a worker, one batch at a time ---- */

static void commit_work(struct loop_work *w)
{
	struct batch *b = container_of(w, struct batch, commit_work);
	struct pending *pd = &b->q[b->qhead];

	b->sign_r = 0;
	b->bounds_r = 0;
	if (!pd->jwt) {
		json_t *h = jwt_header_new(b->signer, pd->model, "egw-batch");
		b->sign_r = h ? jwt_sign_raw(b->signer, h, pd->payload, &pd->jwt) : -ENOMEM;
		json_decref(h);
	}
	b->append_r = store_append(b->store, pd->seq, pd->created_ms, pd->payload, pd->jwt);
	if (b->append_r == 0)
		b->bounds_r = store_enforce_bounds(b->store, wall_ms());
}

static void pending_free(struct pending *pd)
{
	free(pd->payload);
	free(pd->jwt);
	memset(pd, 0, sizeof(*pd));
}

static void commit_next(struct batch *b)
{
	if (b->qlen == 0 || b->commit_work.busy || sched_queued(&b->retry_task))
		return;
	if (loop_work_submit(b->loop, &b->commit_work) < 0)
		loop_task_add(b->loop, &b->retry_task, now_usec() + USEC_PER_SEC);
}

static void commit_done(struct loop_work *w)
{
	struct batch *b = container_of(w, struct batch, commit_work);
	struct pending *pd = &b->q[b->qhead];

	if (b->sign_r < 0) {
		b->st.sign_errors++;
		b->st.last_error = b->sign_r;
	}
	if (b->append_r == 0 || b->append_r == -EEXIST || b->append_r == -EINVAL) {
		/* -EEXIST: an earlier attempt committed it after all. */
		if (b->append_r != -EINVAL) {
			if (pd->jwt)
				b->st.stored_signed++;
			else
				b->st.stored_unsigned++;
			b->st.last_seq = pd->seq;
		} else {
			/* The store refuses this seq for good (never retried). */
			b->st.lost++;
			b->st.last_error = b->append_r;
		}
		pending_free(pd);
		b->qhead = (b->qhead + 1) % BATCH_MAX_PENDING;
		b->qlen--;
		if (b->bounds_r > 0) {
			b->st.dropped_rows += (uint64_t)b->bounds_r;
			/* A gap row waits to be signed. */
			loop_task_add(b->loop, &b->resign_task, now_usec());
		}
		if (b->sign_r < 0)
			loop_task_add(b->loop, &b->resign_task, now_usec() + b->resign_task.period);
		if (b->up)
			uploader_kick(b->up);
		commit_next(b);
		return;
	}
	b->st.store_errors++;
	b->st.last_error = b->append_r;
	loop_task_add(b->loop, &b->retry_task, now_usec() + USEC_PER_SEC);
}

static int retry_run(struct task *t, usec_t now)
{
	struct batch *b = container_of(t, struct batch, retry_task);
	UNUSED(now);
	commit_next(b);
	return 0;
}

int batch_seal_now(struct batch *b)
{
	int64_t now_ms = wall_ms();
	struct pending *pd;
	json_t *p;
	int64_t seq;

	if (b->qlen == BATCH_MAX_PENDING) {
		/* The store has been failing for a long time: drop the oldest not
		 * being worked on, keep the newest. */
		unsigned victim =
		    b->commit_work.busy ? (b->qhead + 1) % BATCH_MAX_PENDING : b->qhead;
		pending_free(&b->q[victim]);
		if (victim == b->qhead) {
			b->qhead = (b->qhead + 1) % BATCH_MAX_PENDING;
		} else {
			/* close the hole: shift the rest down by one */
			for (unsigned i = 1; i + 1 < b->qlen; i++) {
				unsigned a = (b->qhead + i) % BATCH_MAX_PENDING;
				unsigned c = (b->qhead + i + 1) % BATCH_MAX_PENDING;
				b->q[a] = b->q[c];
			}
			memset(&b->q[(b->qhead + b->qlen - 1) % BATCH_MAX_PENDING], 0,
			       sizeof(struct pending));
		}
		b->qlen--;
		b->st.lost++;
	}
	seq = store_next_seq(b->store);
	p = build_payload(b, seq, now_ms);
	if (!p)
		return -ENOMEM;
	pd = &b->q[(b->qhead + b->qlen) % BATCH_MAX_PENDING];
	memset(pd, 0, sizeof(*pd));
	pd->payload = egw_json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS | READING_JSON_REALS);
	json_decref(p);
	if (!pd->payload)
		return -ENOMEM;
	pd->seq = seq;
	pd->created_ms = now_ms;
	copy_id(pd->model, b->ndev > 0 && b->devs[0].profile[0] ? b->devs[0].profile : "egw");
	b->qlen++;
	b->st.sealed++;
	collect_reset(b, now_ms);
	commit_next(b);
	return 0;
}

static int seal_run(struct task *t, usec_t now)
{
	struct batch *b = container_of(t, struct batch, seal_task);
	UNUSED(now);
	return batch_seal_now(b);
}

/* ---- resign: sign rows stored unsigned (signer was down, gap rows) ---- */

/* The header's model for a stored payload; NULL when out of memory (the
 * row is then signed later, never under the wrong model). */
static const char *model_of(const char *payload, char out[ID_MAX])
{
	unsigned long failures = egw_json_alloc_failures();
	json_t *p = egw_json_loads(payload, 0, NULL);
	const char *m = NULL;

	/* json_unpack allocates too (its key set) and fails like a mismatch */
	json_unpack(p, "{s:[{s:s}]}", "devices", "profile", &m);
	copy_id(out, m && *m ? m : "egw");
	json_decref(p);
	return egw_json_alloc_failures() == failures ? out : NULL;
}

static void resign_work(struct loop_work *w)
{
	struct batch *b = container_of(w, struct batch, resign_work);
	struct store_row rows[RESIGN_MAX];
	unsigned n = 0;
	char model[ID_MAX];

	memset(rows, 0, sizeof(rows));
	b->resigned_now = 0;
	b->resign_r = store_unsigned(b->store, RESIGN_MAX, rows, &n);
	for (unsigned i = 0; i < n && b->resign_r >= 0; i++) {
		bool gap = rows[i].kind == STORE_GAP;
		const char *m = gap ? "egw" : model_of(rows[i].payload, model);
		json_t *h = m ? jwt_header_new(b->signer, m, gap ? "egw-gap" : "egw-batch") : NULL;
		char *jwt = NULL;
		int r = h ? jwt_sign_raw(b->signer, h, rows[i].payload, &jwt) : -ENOMEM;
		json_decref(h);
		if (r < 0) {
			b->resign_r = r;
			break;
		}
		r = store_set_jwt(b->store, rows[i].seq, jwt);
		free(jwt);
		if (r == 0)
			b->resigned_now++;
		else if (r != -ENOENT && r != -EEXIST)
			b->resign_r = r;
	}
	store_rows_clear(rows, n);
}

static void resign_done(struct loop_work *w)
{
	struct batch *b = container_of(w, struct batch, resign_work);

	b->st.resigned += b->resigned_now;
	if (b->resign_r < 0) {
		b->st.sign_errors++;
		b->st.last_error = b->resign_r;
	}
	if (b->resigned_now > 0 && b->up)
		uploader_kick(b->up);
	/* More rows than one round takes: go on at once. */
	if (b->resign_r >= 0 && b->resigned_now == RESIGN_MAX)
		loop_task_add(b->loop, &b->resign_task, now_usec());
}

static int resign_run(struct task *t, usec_t now)
{
	struct batch *b = container_of(t, struct batch, resign_task);
	struct store_stats ss;
	UNUSED(now);

	if (b->resign_work.busy)
		return 0;
	store_get_stats(b->store, &ss);
	if (ss.unsigned_rows == 0)
		return 0;
	return loop_work_submit(b->loop, &b->resign_work);
}

int batch_new(struct loop *l, struct store *st, struct signer *sg, const struct batch_config *cfg,
              struct batch **ret)
{
	struct batch *b;
	usec_t resign;

	if (!l || !st || !sg)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->loop = l;
	b->store = st;
	b->signer = sg;
	b->interval = cfg && cfg->interval > 0 ? cfg->interval : 10 * USEC_PER_SEC;
	b->freq_interval_ms = cfg && cfg->freq_interval_ms ? cfg->freq_interval_ms : 100;
	resign = cfg && cfg->resign_interval > 0 ? cfg->resign_interval : 2 * USEC_PER_SEC;
	b->seal_task =
	    (struct task){.name = "batch-seal", .run = seal_run, .period = b->interval, .prio = 4};
	b->retry_task = (struct task){.name = "batch-retry", .run = retry_run, .prio = 6};
	b->resign_task = (struct task){.name = "batch-resign",
	                               .run = resign_run,
	                               .period = resign,
	                               .prio = 7,
	                               .backoff_max = 30 * USEC_PER_SEC};
	b->commit_work = (struct loop_work){.work = commit_work, .done = commit_done};
	b->resign_work = (struct loop_work){.work = resign_work, .done = resign_done};
	collect_reset(b, wall_ms());
	usec_t now = now_usec();
	if (loop_task_add(l, &b->seal_task, now + b->interval) < 0 ||
	    loop_task_add(l, &b->resign_task, now) < 0) {
		batch_free(b);
		return -ENOMEM;
	}
	*ret = b;
	return 0;
}

void batch_free(struct batch *b)
{
	if (!b)
		return;
	loop_task_cancel(b->loop, &b->seal_task);
	loop_task_cancel(b->loop, &b->retry_task);
	loop_task_cancel(b->loop, &b->resign_task);
	/* The workers use b: let them finish (bounded by the signer's and the
	 * store's own timeouts).  Their done callbacks may queue more work. */
	usec_t end = now_usec() + 10 * USEC_PER_SEC;
	while ((b->commit_work.busy || b->resign_work.busy) && now_usec() < end) {
		loop_run_once(b->loop, 50 * USEC_PER_MSEC);
		loop_task_cancel(b->loop, &b->retry_task);
		loop_task_cancel(b->loop, &b->resign_task);
	}
	if (b->commit_work.busy || b->resign_work.busy)
		return; /* leak rather than free memory a worker is using */
	for (unsigned i = 0; i < b->qlen; i++)
		pending_free(&b->q[(b->qhead + i) % BATCH_MAX_PENDING]);
	collect_reset(b, 0);
	free(b);
}

void batch_set_uploader(struct batch *b, struct uploader *up)
{
	b->up = up;
}

int batch_set_interval(struct batch *b, usec_t interval)
{
	if (interval <= 0)
		return -EINVAL;
	if (interval == b->interval)
		return 0;
	b->interval = interval;
	b->seal_task.period = interval;
	return loop_task_add(b->loop, &b->seal_task, now_usec() + interval);
}

bool batch_busy(const struct batch *b)
{
	return b->qlen > 0 || b->commit_work.busy;
}

void batch_get_stats(const struct batch *b, struct batch_stats *ret)
{
	*ret = b->st;
	ret->pending = b->qlen;
}
