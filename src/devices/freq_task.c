/* The grid frequency task: reads the primary device's frequency register at
 * frequency.interval_ms and keeps the samples and their lateness. */
#include "devices/device_int.h"

/* ---- frequency -------------------------------------------------------------- */

static void freq_push(struct devices *ds, int64_t ts, double hz)
{
	ds->ring[ds->ring_head] = (struct freq_sample){ .ts_ms = ts, .hz = hz };
	ds->ring_head = (ds->ring_head + 1) % FREQ_RING;
	if (ds->ring_len < FREQ_RING)
		ds->ring_len++;
}

void device_on_freq(struct device *d, const struct dev_req *q, int err, const uint16_t *regs,
		    unsigned count)
{
	struct devices *ds = d->set;
	struct block_result *br;
	double hz;
	int r = err;

	if (ds->primary != d)
		return;
	unsup_note(d, &q->b, err);
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
			device_count_error(d, err);
		return;
	}
	freq_push(ds, q->ts_ms, hz);
	if (ds->hooks.on_freq)
		ds->hooks.on_freq(ds->ud, d, q->ts_ms, hz);
}

int device_freq_run(struct task *t, usec_t now)
{
	struct devices *ds = container_of(t, struct devices, freq_task);
	struct device *d = ds->primary;
	struct mb_block b;
	usec_t late = now - t->due; /* t->due: this run's, until the task is re-armed */

	if (!d || d->fsm.state != DEV_POLLING || !d->prof->frequency ||
	    device_plan_single(d->prof->frequency, &b) < 0) {
		ds->freq_skipped++;
		return 0;
	}
	struct dev_unsupported *u = unsup_covering(d, &b);
	if (u && now - u->at < (usec_t)d->set->cfg.unsupported_retry_ms * USEC_PER_MSEC) {
		/* refused with exception 2: the device has no such register */
		u->skipped++;
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
	int r = device_send(d, REQ_FREQ, 0, &b);
	if (r < 0) {
		ds->freq_errors++;
		ds->freq_last_err = r;
	}
	return 0;
}
