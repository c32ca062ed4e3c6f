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
#include "crypto/b64url.h"
#include "crypto/jwt.h"
#include "crypto/signer.h"
#include "profiles/profile.h"
#include "profiles/reading.h"
#include "sched/sched.h"
#include "store/store.h"

#define ID_MAX 64
#define RESIGN_MAX 16

/* One register block a device read during the batch (doc/batch-format.md):
 * its keyframe is the words of its first successful read, later polls carry
 * only the words that differ from the block's previous successful read. */
struct dev_block {
	uint8_t fc;
	uint16_t addr, count;
	uint16_t off; /* first word in dev_acc.key/cur */
	bool have;    /* read successfully at least once in this batch */
};

struct dev_acc {
	char id[ID_MAX];
	char profile[ID_MAX];
	char serial[ID_MAX];
	struct dev_block blocks[BATCH_DEV_MAX_BLOCKS];
	unsigned nblocks, nwords;
	uint16_t *key; /* BATCH_DEV_MAX_WORDS: keyframe words */
	uint16_t *cur; /* BATCH_DEV_MAX_WORDS: the latest read of each block */
	double last[RF_COUNT];
	bool have_reading;
	int64_t last_ts;
	json_t *polls; /* [{"t","b","e","d","r"}, ...] */
};

/* A sealed batch waiting to be signed and committed.  Its seq is reserved
 * by the worker when its turn comes, not at the seal: a gap row the store
 * appends after a commit then never takes a seq beyond batches still
 * waiting here, so a crash that loses them leaves no seq that is neither
 * stored nor in a gap. */
struct pending {
	int64_t seq; /* 0 until the worker reserved it */
	int64_t created_ms;
	json_t *doc; /* the payload without "seq", until serialized */
	char *payload;
	char model[ID_MAX];
	char *jwt; /* set by the worker once signed */
};

/* FCR activation records of one batch ("fcr" in doc/batch-format.md):
 * columns, each delta-coded from the previous known value (from 0). */
struct fcr_acc {
	char battery[ID_MAX];
	int64_t t0, slot, mhz, sp, pw;
	json_t *k, *f, *s, *p; /* slot steps, mHz, setpoint W, measured W (null: none) */
	unsigned n, overflow;
};

static void fcr_acc_reset(struct fcr_acc *a)
{
	json_decref(a->k);
	json_decref(a->f);
	json_decref(a->s);
	json_decref(a->p);
	*a = (struct fcr_acc){ 0 };
}

/* Appends v - *last (and sets *last) or null when v is not a number. */
static int fcr_delta(json_t *arr, double v, int64_t *last)
{
	if (!isfinite(v) || fabs(v) > 1e12)
		return json_array_append_new(arr, json_null());
	int64_t x = llround(v);
	int r = json_array_append_new(arr, json_integer(x - *last));
	*last = x;
	return r;
}

struct batch {
	struct loop *loop;
	struct store *store;
	struct signer *signer;
	struct uploader *up;
	struct uploader *up2; /* the second uplink's (MQTT) */
	usec_t interval;
	unsigned freq_interval_ms;
	struct task seal_task;
	struct task retry_task; /* one-shot: commit again after a store error */
	usec_t retry_interval;
	struct task resign_task;
	usec_t resign_backoff; /* after failed rounds; 0 when the last worked */

	/* the batch being collected */
	int64_t from_ms;
	struct dev_acc devs[BATCH_MAX_DEVICES];
	unsigned ndev;
	unsigned nreadings;
	char freq_dev[ID_MAX];
	json_t *samples; /* "d": mHz deltas per slot, null for an empty slot */
	unsigned nsamples;
	int64_t f_t0, f_slot, f_mhz0, f_last;
	unsigned overflow_readings, overflow_samples;
	struct fcr_acc fcr; /* FCR activation records (batch_add_fcr) */

	/* sealed batches, FIFO; the head is the one the worker handles */
	struct pending q[BATCH_MAX_PENDING];
	unsigned qhead, qlen;
	struct loop_work commit_work;
	int sign_r, append_r, bounds_r;

	struct loop_work resign_work;
	unsigned resigned_now;
	int resign_r;
	/* Gap rows above this seq wait unsigned: a batch with a lower seq is
	 * still being committed (set on the loop thread before each round). */
	int64_t resign_below;
	bool deferred_now; /* this round left such a gap row unsigned (worker) */
	bool gap_deferred; /* the last round did (loop thread) */

	struct batch_stats st;
	bool srcful; /* backend.format, taken at each batch's start */
	bool srcful_next;
	json_t *srcful_maps; /* srcful: {"<ts_ms>": {"<addr>": word}} */
};

static void copy_id(char dst[ID_MAX], const char *src)
{
	snprintf(dst, ID_MAX, "%s", src ? src : "");
}

static void collect_reset(struct batch *b, int64_t from_ms)
{
	for (unsigned i = 0; i < b->ndev; i++) {
		free(b->devs[i].key);
		free(b->devs[i].cur);
		json_decref(b->devs[i].polls);
	}
	memset(b->devs, 0, sizeof(b->devs));
	b->ndev = 0;
	b->nreadings = 0;
	json_decref(b->samples);
	b->samples = NULL;
	b->nsamples = 0;
	b->freq_dev[0] = '\0';
	b->f_t0 = b->f_slot = b->f_mhz0 = b->f_last = 0;
	b->overflow_readings = b->overflow_samples = 0;
	fcr_acc_reset(&b->fcr);
	b->from_ms = from_ms;
	json_decref(b->srcful_maps);
	b->srcful_maps = NULL;
	b->srcful = b->srcful_next;
}

static struct dev_acc *dev_get(struct batch *b, const char *id)
{
	for (unsigned i = 0; i < b->ndev; i++)
		if (strcmp(b->devs[i].id, id) == 0)
			return &b->devs[i];
	if (b->ndev == BATCH_MAX_DEVICES)
		return NULL;
	struct dev_acc *d = &b->devs[b->ndev];
	d->polls = json_array();
	d->key = malloc(BATCH_DEV_MAX_WORDS * sizeof(uint16_t));
	d->cur = malloc(BATCH_DEV_MAX_WORDS * sizeof(uint16_t));
	if (!d->polls || !d->key || !d->cur) {
		json_decref(d->polls);
		free(d->key);
		free(d->cur);
		memset(d, 0, sizeof(*d));
		return NULL;
	}
	copy_id(d->id, id);
	b->ndev++;
	return d;
}

/* A number as the payload carries it: an integer when the value is one,
 * otherwise a real printed with 15 significant digits (json_dumps flag), so
 * 339.20000000000005 (3392 * 0.1) goes out as 339.2. */
static json_t *num_json(double v)
{
	double r = nearbyint(v);
	if (fabs(v) < 9e15 && fabs(v - r) <= 1e-9 * MAX(1.0, fabs(v)))
		return json_integer((json_int_t)r);
	return json_real(v);
}

static bool same_value(double a, double b)
{
	return (isnan(a) && isnan(b)) || a == b;
}

/* The reading of one poll as changes against the previous one. */
static int poll_reading(struct dev_acc *d, const struct reading *r, json_t *poll)
{
	json_t *ch = NULL;

	if (!r) {
		if (!d->have_reading)
			return 0;
		d->have_reading = false;
		return json_object_set_new(poll, "r", json_null()) < 0 ? -ENOMEM : 0;
	}
	for (unsigned f = 0; f < RF_COUNT; f++) {
		double v = r->v[f];
		double was = d->have_reading ? d->last[f] : NAN;
		if (same_value(v, was))
			continue;
		if (!ch && !(ch = json_object()))
			return -ENOMEM;
		json_t *g = json_object_get(ch, reading_fields[f].group);
		if (!g &&
		    (!(g = json_object()) ||
		     json_object_set_new(ch, reading_fields[f].group, g) < 0))
			goto nomem;
		if (json_object_set_new(g, reading_fields[f].name,
					isnan(v) ? json_null() : num_json(v)) < 0)
			goto nomem;
	}
	if (!ch && !d->have_reading)
		ch = json_object(); /* the first reading, with nothing available */
	memcpy(d->last, r->v, sizeof(d->last));
	d->have_reading = true;
	if (ch && json_object_set_new(poll, "r", ch) < 0)
		return -ENOMEM;
	return 0;
nomem:
	json_decref(ch);
	return -ENOMEM;
}

static int block_index(struct dev_acc *d, const struct mb_block *mb)
{
	for (unsigned i = 0; i < d->nblocks; i++)
		if (d->blocks[i].fc == mb->fc && d->blocks[i].addr == mb->addr &&
		    d->blocks[i].count == mb->count)
			return (int)i;
	if (d->nblocks == BATCH_DEV_MAX_BLOCKS || mb->count == 0 || mb->count > PROFILE_MAX_BLOCK ||
	    d->nwords + mb->count > BATCH_DEV_MAX_WORDS)
		return -ENOSPC;
	d->blocks[d->nblocks] = (struct dev_block){ .fc = mb->fc,
						    .addr = mb->addr,
						    .count = mb->count,
						    .off = d->nwords };
	d->nwords += mb->count;
	return (int)d->nblocks++;
}

/* The blocks of one poll: which ones were read ("b", a hex bit set), which
 * failed ("e": [[block, error], ...]) and the words that changed since the
 * block's previous read ("d": [step, change, ...]: the word index as a step
 * from the previous one in this poll, from 0 for the first, and the word's
 * change mod 2^16 in -32768..32767; a changing measurement moves by a few
 * counts, which takes fewer digits than its value and compresses better). */
static int poll_blocks(struct dev_acc *d, const struct block_result *res, unsigned nres,
		       json_t *poll)
{
	uint8_t read[(BATCH_DEV_MAX_BLOCKS + 7) / 8] = { 0 };
	json_t *err = NULL, *delta = NULL;
	int r = -ENOMEM, prev = 0;

	for (unsigned i = 0; i < nres; i++) {
		const struct block_result *br = &res[i];
		int bi = block_index(d, &br->b);
		if (bi < 0)
			continue; /* beyond the per-device caps: left out (counted by the caller) */
		struct dev_block *db = &d->blocks[bi];
		if (br->err < 0) {
			if (!err && !(err = json_array()))
				goto out;
			if (json_array_append_new(err, json_pack("[ii]", bi, br->err)) < 0)
				goto out;
			continue;
		}
		read[bi / 8] |= (uint8_t)(1u << (bi % 8));
		if (!db->have) {
			memcpy(&d->key[db->off], br->regs, db->count * sizeof(uint16_t));
			memcpy(&d->cur[db->off], br->regs, db->count * sizeof(uint16_t));
			db->have = true;
			continue;
		}
		for (unsigned k = 0; k < db->count; k++) {
			int idx = (int)(db->off + k);
			int change = (int)br->regs[k] - (int)d->cur[idx];
			if (change == 0)
				continue;
			if (change > 32767)
				change -= 65536;
			else if (change < -32768)
				change += 65536;
			d->cur[idx] = br->regs[k];
			if (!delta && !(delta = json_array()))
				goto out;
			if (json_array_append_new(delta, json_integer(idx - prev)) < 0 ||
			    json_array_append_new(delta, json_integer(change)) < 0)
				goto out;
			prev = idx;
		}
	}
	/* the bit set as hex, most significant nibble first; "0" if none read */
	char hex[BATCH_DEV_MAX_BLOCKS / 4 + 2];
	int top = -1;
	for (int i = BATCH_DEV_MAX_BLOCKS - 1; i >= 0; i--)
		if (read[i / 8] & (1u << (i % 8))) {
			top = i;
			break;
		}
	unsigned nh = 0;
	for (int n = top < 0 ? 0 : top / 4; n >= 0; n--) {
		unsigned v = 0;
		for (int k = 3; k >= 0; k--) {
			int i = n * 4 + k;
			v = v << 1 | (i < BATCH_DEV_MAX_BLOCKS && (read[i / 8] >> (i % 8) & 1));
		}
		hex[nh++] = "0123456789abcdef"[v];
	}
	hex[nh] = '\0';
	if (json_object_set_new(poll, "b", json_string(hex)) < 0)
		goto out;
	if (err && json_object_set(poll, "e", err) < 0)
		goto out;
	if (delta && json_object_set(poll, "d", delta) < 0)
		goto out;
	r = 0;
out:
	json_decref(err);
	json_decref(delta);
	return r;
}

int batch_add_reading(struct batch *b, const char *dev_id, const char *profile, const char *serial,
		      int64_t ts_ms, const struct reading *r, const struct block_result *res,
		      unsigned nres)
{
	struct dev_acc *d;
	json_t *poll;

	if (!dev_id || !*dev_id || (!r && !res) || (nres && !res))
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
	/* Identity may become known during the batch: keep the latest. */
	if (profile && *profile)
		copy_id(d->profile, profile);
	if (serial && *serial)
		copy_id(d->serial, serial);
	if (b->srcful) {
		char key[24];
		json_t *raw = profile_raw_json(res, res ? nres : 0), *old;
		snprintf(key, sizeof(key), "%lld", (long long)ts_ms);
		if (!b->srcful_maps)
			b->srcful_maps = json_object();
		if (!raw || !b->srcful_maps) {
			json_decref(raw);
			return -ENOMEM;
		}
		old = json_object_get(b->srcful_maps, key);
		if (old ? json_object_update(old, raw) < 0
			: json_object_set(b->srcful_maps, key, raw) < 0) {
			json_decref(raw);
			return -ENOMEM;
		}
		json_decref(raw);
		b->nreadings++;
		b->st.readings++;
		return 0;
	}
	poll = json_object();
	if (!poll)
		return -ENOMEM;
	int64_t prev = json_array_size(d->polls) ? d->last_ts : b->from_ms;
	if (json_object_set_new(poll, "t", json_integer(ts_ms - prev)) < 0 ||
	    poll_blocks(d, res, res ? nres : 0, poll) < 0 || poll_reading(d, r, poll) < 0 ||
	    json_array_append_new(d->polls, poll) < 0) {
		json_decref(poll);
		return -ENOMEM;
	}
	d->last_ts = ts_ms;
	b->nreadings++;
	b->st.readings++;
	return 0;
}

int batch_add_missed(struct batch *b, const char *dev_id, const char *profile, const char *serial,
		     int64_t ts_ms, int err)
{
	struct dev_acc *d;
	json_t *poll;

	if (!dev_id || !*dev_id || err >= 0)
		return -EINVAL;
	if (b->srcful)
		return 0; /* the original's shape has no such entry */
	if (b->nreadings >= BATCH_MAX_READINGS) {
		b->overflow_readings++;
		b->st.overflow++;
		return -ENOSPC;
	}
	d = dev_get(b, dev_id);
	if (!d && b->ndev < BATCH_MAX_DEVICES)
		return -ENOMEM;
	if (!d) {
		b->overflow_readings++;
		b->st.overflow++;
		return -ENOSPC;
	}
	if (profile && *profile)
		copy_id(d->profile, profile);
	if (serial && *serial)
		copy_id(d->serial, serial);
	/* No registers and no reading: the reading changes of the next poll
	 * stay relative to the last poll that had one. */
	int64_t prev = json_array_size(d->polls) ? d->last_ts : b->from_ms;
	poll = json_pack("{sIsssi}", "t", (json_int_t)(ts_ms - prev), "b", "0", "m", err);
	if (!poll || json_array_append_new(d->polls, poll) < 0)
		return -ENOMEM;
	d->last_ts = ts_ms;
	b->nreadings++;
	b->st.readings++;
	return 0;
}

int batch_add_freq(struct batch *b, const char *dev_id, int64_t ts_ms, double hz)
{
	unsigned iv = b->freq_interval_ms;
	int64_t slot, mhz;

	if (!isfinite(hz) || fabs(hz) > 1e9)
		return -EINVAL;
	if (b->nsamples >= BATCH_MAX_SAMPLES) {
		b->overflow_samples++;
		b->st.overflow++;
		return -ENOSPC;
	}
	mhz = llround(hz * 1000.0);
	if (!b->samples) {
		b->samples = json_array();
		if (!b->samples)
			return -ENOMEM;
		b->f_t0 = ts_ms;
		b->f_slot = -1;
		b->f_mhz0 = b->f_last = mhz;
	}
	/* The sample's slot on the grid t0 + k * interval; a sample late
	 * enough to round onto a taken slot takes the next one. */
	slot = ts_ms >= b->f_t0 ? (ts_ms - b->f_t0 + iv / 2) / iv : 0;
	if (slot <= b->f_slot)
		slot = b->f_slot + 1;
	if (slot - b->f_slot - 1 + json_array_size(b->samples) >= 2 * BATCH_MAX_SAMPLES) {
		b->overflow_samples++; /* a clock jump far ahead: not representable */
		b->st.overflow++;
		return -ENOSPC;
	}
	for (int64_t k = b->f_slot + 1; k < slot; k++)
		if (json_array_append_new(b->samples, json_null()) < 0)
			return -ENOMEM;
	if (json_array_append_new(b->samples, json_integer(mhz - b->f_last)) < 0)
		return -ENOMEM;
	if (dev_id)
		copy_id(b->freq_dev, dev_id);
	b->f_slot = slot;
	b->f_last = mhz;
	b->nsamples++;
	b->st.samples++;
	return 0;
}

int batch_add_fcr(struct batch *b, const char *battery, int64_t ts_ms, double hz, double setpoint_w,
		  double measured_w)
{
	struct fcr_acc *a = &b->fcr;
	unsigned iv = b->freq_interval_ms;
	int64_t slot;

	if (!isfinite(hz) || fabs(hz) > 1e6)
		return -EINVAL;
	if (a->n >= BATCH_MAX_SAMPLES) {
		a->overflow++;
		return -ENOSPC;
	}
	if (!a->k) {
		a->k = json_array();
		a->f = json_array();
		a->s = json_array();
		a->p = json_array();
		if (!a->k || !a->f || !a->s || !a->p)
			return -ENOMEM;
		a->t0 = ts_ms;
		a->slot = 0;
		copy_id(a->battery, battery);
	}
	slot = ts_ms >= a->t0 ? (ts_ms - a->t0 + iv / 2) / iv : 0;
	if (a->n && slot <= a->slot)
		slot = a->slot + 1;
	if (json_array_append_new(a->k, json_integer(slot - a->slot)) < 0 ||
	    fcr_delta(a->f, hz * 1000.0, &a->mhz) < 0 || fcr_delta(a->s, setpoint_w, &a->sp) < 0 ||
	    fcr_delta(a->p, measured_w, &a->pw) < 0)
		return -ENOMEM;
	a->slot = slot;
	a->n++;
	return 0;
}

static int fcr_json(const struct fcr_acc *a, unsigned iv, json_t *p)
{
	json_t *o;
	if (!a->n)
		return 0;
	o = json_pack("{sssIsIsOsOsOsO}", "battery", a->battery, "t0", (json_int_t)a->t0, "iv",
		      (json_int_t)iv, "k", a->k, "mhz", a->f, "sp", a->s, "pw", a->p);
	if (o && a->overflow)
		json_object_set_new(o, "overflow", json_integer(a->overflow));
	return o ? json_object_set_new(p, "fcr", o) : -ENOMEM;
}

static json_t *device_json(const struct dev_acc *d)
{
	json_t *blocks = json_array(), *kf = json_array(), *o;

	if (!blocks || !kf)
		goto err;
	for (unsigned i = 0; i < d->nblocks; i++) {
		const struct dev_block *db = &d->blocks[i];
		if (json_array_append_new(blocks, json_pack("[iii]", db->fc, db->addr, db->count)) <
		    0)
			goto err;
		if (!db->have) {
			if (json_array_append_new(kf, json_null()) < 0)
				goto err;
			continue;
		}
		uint8_t bytes[PROFILE_MAX_BLOCK * 2];
		for (unsigned k = 0; k < db->count; k++) {
			bytes[2 * k] = (uint8_t)(d->key[db->off + k] >> 8);
			bytes[2 * k + 1] = (uint8_t)d->key[db->off + k];
		}
		char *s = b64url_encode_alloc(bytes, db->count * 2u);
		if (!s || json_array_append_new(kf, json_string(s)) < 0) {
			free(s);
			goto err;
		}
		free(s);
	}
	/* "o" steals blocks and kf, also on failure */
	o = json_pack("{sssssssososO}", "id", d->id, "profile", d->profile, "serial", d->serial,
		      "blocks", blocks, "kf", kf, "polls", d->polls);
	return o;
err:
	json_decref(blocks);
	json_decref(kf);
	return NULL;
}

/* The payload without "seq" (the worker adds it when the batch's turn to
 * be committed comes). */
static json_t *build_payload(struct batch *b, int64_t now_ms)
{
	json_t *p, *devs, *o;

	if (b->srcful) {
		p = b->srcful_maps ? json_deep_copy(b->srcful_maps) : json_object();
		if (!p || json_object_set_new(p, "iat", json_integer(now_ms / 1000)) < 0) {
			json_decref(p);
			return NULL;
		}
		return p;
	}

	p = json_pack("{sisIsssI}", "v", BATCH_FORMAT_VERSION, "iat", (json_int_t)(now_ms / 1000),
		      "gateway", signer_serial_hex(b->signer), "from_ms", (json_int_t)b->from_ms);
	if (!p)
		return NULL;
	if (json_object_set_new(p, "to_ms", json_integer(now_ms)) < 0)
		goto err;
	devs = json_array();
	if (!devs || json_object_set_new(p, "devices", devs) < 0)
		goto err;
	for (unsigned i = 0; i < b->ndev; i++) {
		o = device_json(&b->devs[i]);
		if (!o || json_array_append_new(devs, o) < 0)
			goto err;
	}
	if (b->nsamples > 0) {
		o = json_pack("{sssIsIsIsO}", "device", b->freq_dev, "t0", (json_int_t)b->f_t0,
			      "iv", (json_int_t)b->freq_interval_ms, "mhz", (json_int_t)b->f_mhz0,
			      "d", b->samples);
		if (!o || json_object_set_new(p, "frequency", o) < 0)
			goto err;
	}
	if (fcr_json(&b->fcr, b->freq_interval_ms, p) < 0)
		goto err;
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
	b->append_r = 0;
	if (!pd->payload) {
		/* (kept with its seq from here on: a failed append is retried
		 * with the same bytes; a payload that could not be built is
		 * retried with the same seq, else that seq would be a hole) */
		if (!pd->seq)
			pd->seq = store_next_seq(b->store);
		if (json_object_set_new(pd->doc, "seq", json_integer(pd->seq)) == 0)
			pd->payload = egw_json_dumps(
				pd->doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
		if (!pd->payload) {
			b->append_r = -ENOMEM; /* retried, like a store error */
			return;
		}
		json_decref(pd->doc);
		pd->doc = NULL;
	}
	/* A failing signer (a chip that is away may take seconds to fail) is
	 * not waited for here: the batch is stored unsigned at once and the
	 * resign task, with its backoff, brings the signer back. */
	if (!pd->jwt && !signer_healthy(b->signer))
		b->sign_r = -EGW_ESIGNER;
	else if (!pd->jwt)
		b->sign_r = signer_prepare(b->signer);
	if (!pd->jwt && b->sign_r == 0) {
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
	json_decref(pd->doc);
	free(pd->payload);
	free(pd->jwt);
	memset(pd, 0, sizeof(*pd));
}

static void commit_next(struct batch *b)
{
	if (b->qlen == 0 || b->commit_work.busy || sched_queued(&b->retry_task))
		return;
	if (loop_work_submit(b->loop, &b->commit_work) < 0)
		loop_task_add(b->loop, &b->retry_task, now_usec() + b->retry_interval);
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
		if (b->bounds_r > 0 || b->gap_deferred) {
			b->st.dropped_rows += (uint64_t)MAX(b->bounds_r, 0);
			/* A gap row waits to be signed. */
			loop_task_add(b->loop, &b->resign_task, now_usec());
		}
		/* Not pushed back by every unsigned commit: the resign task is what
		 * brings a failing signer back. */
		if (b->sign_r < 0 && !sched_queued(&b->resign_task))
			loop_task_add(b->loop, &b->resign_task, now_usec() + b->resign_task.period);
		if (b->up)
			uploader_kick(b->up);
		if (b->up2)
			uploader_kick(b->up2);
		commit_next(b);
		return;
	}
	b->st.store_errors++;
	b->st.last_error = b->append_r;
	loop_task_add(b->loop, &b->retry_task, now_usec() + b->retry_interval);
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

	if (b->qlen == BATCH_MAX_PENDING) {
		/* The store has been failing for a long time: drop the oldest not
		 * being worked on, keep the newest.  The head, once a commit has
		 * tried it, holds its seq: dropped, that seq would be neither
		 * stored nor in a gap row, so the next one goes instead. */
		bool head_taken = b->commit_work.busy || b->q[b->qhead].seq != 0;
		unsigned victim = head_taken ? (b->qhead + 1) % BATCH_MAX_PENDING : b->qhead;
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
	p = build_payload(b, now_ms);
	if (!p)
		return -ENOMEM;
	pd = &b->q[(b->qhead + b->qlen) % BATCH_MAX_PENDING];
	memset(pd, 0, sizeof(*pd));
	pd->doc = p;
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
	if (b->resign_r >= 0 && n > 0)
		b->resign_r = signer_prepare(b->signer);
	for (unsigned i = 0; i < n && b->resign_r >= 0; i++) {
		bool gap = rows[i].kind == STORE_GAP;
		/* A gap row's seq is reserved while it is committed, so batches
		 * sealed before it (lower seqs) may still wait in the queue.
		 * Signed now, it would become deliverable ahead of them, and an
		 * uploader that has passed a seq does not look below it again:
		 * it stays unsigned (a barrier to the uploaders) until they are
		 * stored. */
		if (gap && rows[i].seq > b->resign_below) {
			b->deferred_now = true;
			continue;
		}
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
	b->gap_deferred = b->deferred_now;
	/* The batches it waited for were stored meanwhile: go again now (else
	 * the next commit_done does). */
	if (b->gap_deferred && (b->qlen == 0 || b->q[b->qhead].seq != b->resign_below))
		loop_task_add(b->loop, &b->resign_task, now_usec());
	if (b->resign_r < 0) {
		b->st.sign_errors++;
		b->st.last_error = b->resign_r;
		/* The signer keeps failing (a chip away): back off, up to 30 s. */
		b->resign_backoff = sched_backoff_next(b->resign_backoff, b->resign_task.period,
						       30 * USEC_PER_SEC);
		loop_task_add(b->loop, &b->resign_task, now_usec() + b->resign_backoff);
	} else {
		b->resign_backoff = 0;
	}
	if (b->resigned_now > 0 && b->up)
		uploader_kick(b->up);
	if (b->resigned_now > 0 && b->up2)
		uploader_kick(b->up2);
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
	b->resign_below = b->qlen ? b->q[b->qhead].seq : INT64_MAX;
	b->deferred_now = false;
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
	b->srcful_next = cfg && cfg->srcful;
	resign = cfg && cfg->resign_interval > 0 ? cfg->resign_interval : 2 * USEC_PER_SEC;
	b->retry_interval = cfg && cfg->retry_interval > 0 ? cfg->retry_interval : USEC_PER_SEC;
	b->seal_task = (struct task){ .name = "batch-seal",
				      .run = seal_run,
				      .period = b->interval,
				      .prio = 4 };
	b->retry_task = (struct task){ .name = "batch-retry", .run = retry_run, .prio = 6 };
	b->resign_task = (struct task){ .name = "batch-resign",
					.run = resign_run,
					.period = resign,
					.prio = 7,
					.backoff_max = 30 * USEC_PER_SEC };
	b->commit_work = (struct loop_work){ .work = commit_work, .done = commit_done };
	b->resign_work = (struct loop_work){ .work = resign_work, .done = resign_done };
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

void batch_set_uplink(struct batch *b, struct uploader *up)
{
	b->up2 = up;
}

void batch_set_srcful(struct batch *b, bool srcful)
{
	b->srcful_next = srcful;
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
	ret->resign_backoff_ms = b->resign_backoff / 1000;
}
