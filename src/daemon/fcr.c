/* FCR in the daemon; see fcr.h. */
#include "daemon/fcr.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/batch.h"
#include "base/err.h"
#include "base/log.h"
#include "base/time.h"
#include "base/util.h"
#include "config/settings.h"
#include "devices/device.h"
#include "egw.h"
#include "grid/fcr.h"
#include "grid/fcrlog.h"
#include "loop/loop.h"
#include "modbus/client.h"
#include "modbus/codec.h"
#include "profiles/profile.h"
#include "profiles/reading.h"
#include "web/web.h"

#define TICK_USEC (100 * USEC_PER_MSEC)
#define FLUSH_USEC (10 * USEC_PER_SEC)
#define RETRY_USEC (5 * USEC_PER_SEC) /* after a failed write, before taking again */
#define STOP_WAIT_USEC (2 * USEC_PER_SEC)
#define LIMIT_MAX_AGE (30 * USEC_PER_SEC)
#define DELAY_BUCKETS 1001 /* 0..999 ms in 1-ms steps, then >= 1 s */
#define MAX_SEQ 6
#define SUMMARY_USEC (300 * USEC_PER_SEC) /* the info-level summary of the writes */

enum seq_kind { SEQ_NONE, SEQ_TAKE, SEQ_SETPOINT, SEQ_KEEPALIVE, SEQ_RELEASE };

struct fcr_egw {
	struct egw *e;
	struct fcr_conf conf;
	struct fcr_ctl ctl;
	struct fcr_input in;
	struct fcr_out out;
	char error[400]; /* why the settings cannot run (state "error") */
	struct fcrlog *log;

	/* the battery */
	const struct battery_control *bc;
	double measured_w; /* battery.W, NaN unknown */
	bool write_failed; /* the last write failed: released, retried later */
	usec_t retry_at;

	/* the writer */
	bool in_control;    /* take written and not released since */
	bool released_once; /* the start-up release was written */
	enum seq_kind seq;  /* the sequence in flight, SEQ_NONE when idle */
	struct bctl_write w[MAX_SEQ];
	unsigned nw, iw;
	double seq_sp;        /* the setpoint of a SEQ_SETPOINT in flight */
	usec_t seq_sample_at; /* the sample it answers (monotonic) */
	bool pending;         /* a newer setpoint waits */
	double pending_sp;
	usec_t pending_sample_at;
	double written_sp; /* last acknowledged setpoint, NaN none */
	usec_t keepalive_at;
	usec_t last_flush;
	usec_t summary_at;                       /* next summary line */
	uint64_t summary_writes, summary_errors; /* the counters at the last one */

	/* stopping */
	void (*stop_done)(struct egw *e);
	usec_t stop_deadline;
	bool dead;                /* freed by fini while a write was in flight */
	bool stopping;            /* egwd is stopping: never take control again */
	char seq_dev[FCR_ID_LEN]; /* the device the sequence in flight writes to */
	char ctl_dev[FCR_ID_LEN]; /* the battery egw controls (in_control), and its release */
	struct bctl_write ctl_release[MAX_SEQ]; /* writes, copied: a SunSpec table lives in */
	unsigned ctl_nrelease; /* its device's profile, which a reconnect may rebuild */
	struct bctl_ref ref;   /* SunSpec 124: WChaMax and the rate sf */
	bool ref_ok;

	struct task tick;

	/* counters */
	uint64_t writes, write_errors, setpoints, takes, releases, samples, coalesced;
	uint32_t delay_hist[DELAY_BUCKETS];
	uint64_t delay_n;
	double delay_sum_s;
	usec_t delay_max;
};

static struct device *find_dev(struct fcr_egw *f, const char *id)
{
	return id[0] && f->e->devices ? devices_find(f->e->devices, id) : NULL;
}

/* The named battery's control table, looked up again at each use (f->bc is
 * only valid until control returns to the loop). */
static void refresh_bc(struct fcr_egw *f)
{
	struct device *d = find_dev(f, f->conf.battery);
	const struct profile *p = d ? device_profile(d) : NULL;
	f->bc = p ? p->control : NULL;
}

static void keep_release(struct fcr_egw *f)
{
	unsigned n = f->bc ? MIN(f->bc->nrelease, (unsigned)MAX_SEQ) : 0;
	snprintf(f->ctl_dev, sizeof(f->ctl_dev), "%s", f->conf.battery);
	if (n)
		memcpy(f->ctl_release, f->bc->release, n * sizeof(f->ctl_release[0]));
	f->ctl_nrelease = n;
}

/* ---- writer --------------------------------------------------------------- */

static void write_next(struct fcr_egw *f);
static void control(struct fcr_egw *f, usec_t now);
static void start_release(struct fcr_egw *f);

/* Every control write is counted here: /api/state, /metrics and the
 * operational log's per-second columns. */
static void count_write(struct fcr_egw *f, bool ok)
{
	if (ok)
		f->writes++;
	else
		f->write_errors++;
	if (f->log)
		fcrlog_count_write(f->log, ok);
}

static void delay_record(struct fcr_egw *f, usec_t d)
{
	unsigned ms = (unsigned)(d / USEC_PER_MSEC);
	f->delay_hist[ms < DELAY_BUCKETS - 1 ? ms : DELAY_BUCKETS - 1]++;
	f->delay_n++;
	f->delay_sum_s += (double)d / USEC_PER_SEC;
	if (d > f->delay_max)
		f->delay_max = d;
}

/* The p-th percentile of the delay in ms (upper bound of its 1-ms bucket). */
static double delay_pct(const struct fcr_egw *f, double p)
{
	uint64_t want, acc = 0;
	if (!f->delay_n)
		return NAN;
	want = (uint64_t)ceil(p / 100.0 * (double)f->delay_n);
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < DELAY_BUCKETS; i++) {
		acc += f->delay_hist[i];
		if (acc >= want)
			return i + 1;
	}
	return DELAY_BUCKETS;
}

static const char *seq_name(enum seq_kind k)
{
	static const char *const n[] = { "none", "take", "setpoint", "keepalive", "release" };
	return n[k];
}

static void seq_done(struct fcr_egw *f, int err)
{
	enum seq_kind k = f->seq;
	usec_t now = now_usec();

	refresh_bc(f);
	f->seq = SEQ_NONE;
	if (err < 0) {
		f->write_failed = true;
		f->retry_at = now + RETRY_USEC;
		if (k == SEQ_RELEASE)
			f->in_control = false; /* nothing more we can do: the inverter's timeout */
		log_warn("fcr", "%s write to %s failed: %s", seq_name(k), f->seq_dev,
			 egw_strerror(err));
	} else {
		f->write_failed = false;
		switch (k) {
		case SEQ_TAKE:
			f->in_control = true;
			f->takes++;
			f->keepalive_at =
				now + (usec_t)(f->bc ? f->bc->keepalive_ms : 0) * USEC_PER_MSEC;
			log_info("fcr", "battery %s under FCR control (%s)", f->conf.battery,
				 f->bc ? f->bc->doc : "");
			break;
		case SEQ_SETPOINT:
			f->written_sp = f->seq_sp;
			f->setpoints++;
			delay_record(f, now > f->seq_sample_at ? now - f->seq_sample_at : 0);
			break;
		case SEQ_RELEASE:
			f->in_control = false;
			f->written_sp = NAN;
			f->releases++;
			log_info("fcr", "battery %s back in its own mode (%s)", f->seq_dev,
				 f->out.reason && f->out.reason[0] ? f->out.reason : "FCR off");
			break;
		case SEQ_KEEPALIVE:
		case SEQ_NONE:
			break;
		}
	}
	if (f->stop_done) {
		if (k != SEQ_RELEASE && err == 0 && f->in_control) {
			start_release(f);
			return;
		}
		void (*done)(struct egw * e) = f->stop_done;
		f->stop_done = NULL;
		done(f->e);
		return;
	}
	control(f, now);
}

static void on_write(void *ud, int err)
{
	struct fcr_egw *f = ud;
	if (f->dead) {
		free(f);
		return;
	}
	if (err < 0) {
		count_write(f, false);
		seq_done(f, err);
		return;
	}
	count_write(f, true);
	f->iw++;
	if (f->iw < f->nw)
		write_next(f);
	else
		seq_done(f, 0);
}

static void write_next(struct fcr_egw *f)
{
	struct device *d = find_dev(f, f->seq_dev);
	struct mb_client *c = d ? device_client(d) : NULL;
	const struct bctl_write *w = &f->w[f->iw];
	int r;

	if (!c) {
		seq_done(f, -ENODEV);
		return;
	}
	log_debug("fcr", "%s write %s %u=%u%s%s", seq_name(f->seq), f->seq_dev, w->addr,
		  w->values[0], w->count > 1 ? ",..." : "", "");
	r = mb_client_write(c, device_unit(d),
			    w->count == 1 ? MB_FC_WRITE_SINGLE : MB_FC_WRITE_MULTIPLE, w->addr,
			    w->values, w->count, on_write, f);
	if (r < 0) {
		count_write(f, false);
		seq_done(f, r);
	}
}

static void seq_start(struct fcr_egw *f, enum seq_kind k, const struct bctl_write *w, unsigned n)
{
	if (n == 0 || n > MAX_SEQ)
		return;
	memcpy(f->w, w, n * sizeof(*w));
	if (k == SEQ_TAKE)
		keep_release(f);
	snprintf(f->seq_dev, sizeof(f->seq_dev), "%s",
		 k == SEQ_TAKE ? f->conf.battery : f->ctl_dev);
	f->nw = n;
	f->iw = 0;
	f->seq = k;
	write_next(f);
}

/* The release of the battery egw controls (in_control), with its own table. */
static void start_release(struct fcr_egw *f)
{
	struct bctl_write w[MAX_SEQ];
	memcpy(w, f->ctl_release, sizeof(w));
	seq_start(f, SEQ_RELEASE, w, f->ctl_nrelease);
}

/* Decides the next sequence when the writer is idle. */
static void control(struct fcr_egw *f, usec_t now)
{
	bool want = f->out.state == FCR_ACTIVE;

	if (f->seq != SEQ_NONE || f->dead || f->stopping)
		return;
	refresh_bc(f);
	if (!f->bc && !f->in_control)
		return;
	if (f->write_failed && now < f->retry_at)
		return;
	if (f->write_failed && !f->in_control)
		/* the failed write was a release (or none is owed): nothing would
		 * ever write again and clear write_failed, so start over as at
		 * start-up, with the release, once the battery polls again */
		f->released_once = false;
	if (!f->conf.enabled && !f->in_control)
		return; /* FCR off: egw never writes to the battery */
	if (!f->released_once) {
		/* a battery left forced (a crash, a stop that could not write) goes
		 * back to its own mode before anything else */
		struct device *d = find_dev(f, f->conf.battery);
		if (!d || device_state(d) != DEV_POLLING)
			return;
		f->released_once = true;
		f->in_control = true; /* so that the release below is counted and logged */
		keep_release(f);
		start_release(f);
		return;
	}
	if (!want || (f->in_control && strcmp(f->ctl_dev, f->conf.battery))) {
		/* not wanted, or another battery named meanwhile: hand back the one
		 * egw controls first */
		f->pending = want && f->pending;
		if (f->in_control)
			start_release(f);
		return;
	}
	if (!f->bc)
		return;
	if (!f->in_control) {
		seq_start(f, SEQ_TAKE, f->bc->take, f->bc->ntake);
		f->written_sp = NAN;
		return;
	}
	if (f->pending) {
		struct bctl_write w[MAX_SEQ];
		int n = battctl_setpoint(f->bc, f->pending_sp, f->ref_ok ? &f->ref : NULL, w,
					 MAX_SEQ);
		f->pending = false;
		if (n > 0) {
			f->seq_sp = f->pending_sp;
			f->seq_sample_at = f->pending_sample_at;
			seq_start(f, SEQ_SETPOINT, w, (unsigned)n);
		} else {
			/* no WChaMax read yet (SunSpec): as a failed write, hand back */
			f->write_failed = true;
			f->retry_at = now + RETRY_USEC;
			log_warn("fcr", "no setpoint for %s: %s", f->conf.battery, egw_strerror(n));
		}
		return;
	}
	if (f->bc->nkeepalive && now >= f->keepalive_at) {
		/* the keep-alive registers, then the setpoint again: an inverter
		 * whose forced period counts from the last command restarts it */
		struct bctl_write w[MAX_SEQ];
		unsigned n = MIN(f->bc->nkeepalive, (unsigned)MAX_SEQ);
		memcpy(w, f->bc->keepalive, n * sizeof(w[0]));
		if (!isnan(f->written_sp)) {
			int k = battctl_setpoint(f->bc, f->written_sp, f->ref_ok ? &f->ref : NULL,
						 w + n, MAX_SEQ - n);
			if (k > 0)
				n += (unsigned)k;
		}
		f->keepalive_at = now + (usec_t)f->bc->keepalive_ms * USEC_PER_MSEC;
		seq_start(f, SEQ_KEEPALIVE, w, n);
	}
}

/* ---- controller ------------------------------------------------------------ */

static void update_battery(struct fcr_egw *f, usec_t now)
{
	struct device *d = find_dev(f, f->conf.battery);
	const struct reading *r = d ? device_reading(d) : NULL;

	f->in.battery_ok = d && device_state(d) == DEV_POLLING && !f->write_failed;
	refresh_bc(f);
	if (d && device_state(d) == DEV_POLLING && !f->bc) {
		/* a SunSpec device without model 124 */
		if (f->in.battery_ok && f->conf.enabled && f->out.state != FCR_RELEASED)
			log_warn("fcr",
				 "battery %s has no control registers (SunSpec model 124 "
				 "not found)",
				 f->conf.battery);
		f->in.battery_ok = false;
	}
	f->in.soc = r ? r->v[RF_BATTERY_SOC_NOM_FRACT] : NAN;
	f->in.limit_charge_w = NAN;
	f->in.limit_discharge_w = NAN;
	f->ref_ok = false;
	refresh_bc(f);
	if (!d || !f->bc)
		return;
	if (f->bc->layout == BCTL_SUNSPEC_124) {
		/* the rates are percent of WChaMax, which also bounds both ways */
		uint16_t w, sf, rsf;
		if (device_cached_words(d, REG_FC_HOLDING, f->bc->ref_addr, 1, LIMIT_MAX_AGE, now,
					&w) == 0 &&
		    device_cached_words(d, REG_FC_HOLDING, f->bc->ref_sf_addr, 1, LIMIT_MAX_AGE,
					now, &sf) == 0 &&
		    device_cached_words(d, REG_FC_HOLDING, f->bc->rate_sf_addr, 1, LIMIT_MAX_AGE,
					now, &rsf) == 0 &&
		    w != 0xFFFF && sf != 0x8000 && rsf != 0x8000 && (int16_t)sf >= -10 &&
		    (int16_t)sf <= 10) {
			f->ref = (struct bctl_ref){ .wchamax_w = w * pow(10, (int16_t)sf),
						    .rate_sf = (int16_t)rsf };
			f->ref_ok = true;
			f->in.limit_charge_w = f->ref.wchamax_w;
			f->in.limit_discharge_w = f->ref.wchamax_w;
		}
		return;
	}
	if (f->bc->limit_charge_addr >= 0 || f->bc->limit_discharge_addr >= 0) {
		uint16_t w[2];
		if (f->bc->limit_charge_addr >= 0 &&
		    device_cached_words(d, REG_FC_HOLDING, (uint16_t)f->bc->limit_charge_addr, 2,
					LIMIT_MAX_AGE, now, w) == 0)
			f->in.limit_charge_w = (double)((uint32_t)w[0] << 16 | w[1]);
		if (f->bc->limit_discharge_addr >= 0 &&
		    device_cached_words(d, REG_FC_HOLDING, (uint16_t)f->bc->limit_discharge_addr, 2,
					LIMIT_MAX_AGE, now, w) == 0)
			f->in.limit_discharge_w = (double)((uint32_t)w[0] << 16 | w[1]);
	}
	if (r && isnan(f->in.limit_charge_w) && r->v[RF_PV_RATED_POWER_W] > 0) {
		/* no limit registers: the inverter's nominal power bounds both ways */
		f->in.limit_charge_w = r->v[RF_PV_RATED_POWER_W];
		f->in.limit_discharge_w = r->v[RF_PV_RATED_POWER_W];
	}
}

static void step(struct fcr_egw *f, usec_t now, bool sample)
{
	int before = f->out.state;

	if (f->error[0]) {
		f->out = (struct fcr_out){ .state = FCR_ERROR, .reason = f->error };
		return;
	}
	update_battery(f, now);
	fcr_ctl_step(&f->ctl, &f->in, now, &f->out);
	if (f->out.state != before && f->conf.enabled)
		log_info("fcr", "%s -> %s%s%s", fcr_state_name(before),
			 fcr_state_name(f->out.state), f->out.reason[0] ? ": " : "", f->out.reason);
	if (f->out.state == FCR_ACTIVE) {
		double last = f->pending         ? f->pending_sp
			: f->seq == SEQ_SETPOINT ? f->seq_sp
						 : f->written_sp;
		if (isnan(last) || fabs(f->out.setpoint_w - last) >= 1 || !f->in_control) {
			if (f->pending)
				f->coalesced++;
			else if (sample || isnan(last))
				f->pending_sample_at = sample ? now : f->in.hz_at;
			f->pending = true;
			f->pending_sp = f->out.setpoint_w;
		}
	}
	control(f, now);
}

void fcr_egw_on_freq(struct egw *e, struct device *d, int64_t ts_ms, double hz)
{
	struct fcr_egw *f = e->fcr;
	usec_t now = now_usec();

	if (!f || !f->conf.enabled || strcmp(device_id(d), f->conf.freq))
		return;
	f->samples++;
	f->in.hz = hz;
	f->in.hz_at = now;
	step(f, now, true);
	struct fcr_rec rec = {
		.ts_ms = ts_ms,
		.hz = hz,
		.measured_w = f->measured_w,
		.setpoint_w = f->out.state == FCR_ACTIVE ? f->out.setpoint_w : NAN,
		.state = (uint8_t)f->out.state,
	};
	memcpy(rec.act_w, f->out.act_w, sizeof(rec.act_w));
	for (int p = 0; p < FCR_NPRODUCTS; p++)
		rec.cap_w[p] = f->out.state == FCR_ACTIVE ? f->conf.capacity_w[p] : 0;
	/* the proof: every sample while FCR is on, signed with the next batch */
	if (e->batch)
		batch_add_fcr(e->batch, f->conf.battery, ts_ms, hz, rec.setpoint_w, rec.measured_w);
	if (f->log && fcrlog_add(f->log, &rec) < 0 && fcrlog_errors(f->log) == 1)
		log_warn("fcr", "writing the FCR log failed");
}

void fcr_egw_on_reading(struct egw *e, struct device *d, const struct reading *r)
{
	struct fcr_egw *f = e->fcr;
	if (!f || !f->conf.enabled || strcmp(device_id(d), f->conf.battery))
		return;
	f->measured_w = r->v[RF_BATTERY_W];
}

void fcr_egw_on_state(struct egw *e, struct device *d, int old_state, int new_state)
{
	struct fcr_egw *f = e->fcr;
	UNUSED(old_state);
	UNUSED(new_state);
	if (!f || !f->conf.enabled)
		return;
	if (strcmp(device_id(d), f->conf.battery) && strcmp(device_id(d), f->conf.freq))
		return;
	/* a frequency device that fails has sent no sample for a while: the
	 * stale check releases the battery (and says why) */
	step(f, now_usec(), false);
}

static int tick_run(struct task *t, usec_t now)
{
	struct fcr_egw *f = container_of(t, struct fcr_egw, tick);
	UNUSED(now);
	usec_t n = now_usec();
	if (f->stop_done && n >= f->stop_deadline) {
		void (*done)(struct egw * e) = f->stop_done;
		f->stop_done = NULL;
		log_warn("fcr", "stopping: the release of %s was not acknowledged in time",
			 f->conf.battery);
		done(f->e);
		return 0;
	}
	if (!f->stop_done)
		step(f, n, false);
	if (n >= f->summary_at) {
		/* one info line every few minutes instead of one per write */
		char sp[32] = "none";
		if (!isnan(f->written_sp))
			snprintf(sp, sizeof(sp), "%.0f W", f->written_sp);
		if (f->writes != f->summary_writes || f->write_errors != f->summary_errors)
			log_info("fcr",
				 "%" PRIu64 " control writes to %s (%" PRIu64
				 " failed) in the last "
				 "%d s, %" PRIu64 " (%" PRIu64 " failed) since start; state %s, "
				 "last setpoint %s",
				 f->writes - f->summary_writes, f->conf.battery,
				 f->write_errors - f->summary_errors,
				 (int)(SUMMARY_USEC / USEC_PER_SEC), f->writes, f->write_errors,
				 fcr_state_name(f->out.state), sp);
		f->summary_writes = f->writes;
		f->summary_errors = f->write_errors;
		f->summary_at = n + SUMMARY_USEC;
	}
	if (f->log && n - f->last_flush >= FLUSH_USEC) {
		f->last_flush = n;
		fcrlog_flush(f->log);
	}
	return 0;
}

/* ---- state, metrics, settings ---------------------------------------------- */

static json_t *num_or_null(double v)
{
	return isnan(v) || !isfinite(v) ? json_null() : json_real(v);
}

static json_t *round_or_null(double v, double unit)
{
	if (isnan(v) || !isfinite(v))
		return json_null();
	double r = round(v / unit) * unit;
	if (unit >= 1)
		return json_integer((json_int_t)r);
	return json_real(r);
}

static json_t *section_fcr(void *ud)
{
	struct egw *e = ud;
	struct fcr_egw *f = e->fcr;
	json_t *o, *prod;

	if (!f)
		return json_null();
	prod = json_object();
	for (int p = 0; p < FCR_NPRODUCTS; p++) {
		if (f->conf.capacity_w[p] <= 0)
			continue;
		json_object_set_new(prod, fcr_product_names[p],
				    json_pack("{s:I, s:o}", "capacity_w",
					      (json_int_t)f->conf.capacity_w[p], "activation_W",
					      round_or_null(f->out.act_w[p], 1)));
	}
	o = json_pack(
		"{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:s, s:s, s:b}", "state",
		fcr_state_name(f->out.state), "reason", f->out.reason ? f->out.reason : "", "f_Hz",
		round_or_null(f->in.hz, 0.001), "setpoint_W",
		f->out.state == FCR_ACTIVE ? round_or_null(f->out.setpoint_w, 1) : json_null(),
		"measured_W", round_or_null(f->measured_w, 1), "nem_W",
		round_or_null(f->out.nem_w, 1), "products", prod, "battery_device", f->conf.battery,
		"frequency_device", f->conf.freq, "in_control", f->in_control);
	if (!o)
		return NULL;
	json_object_set_new(o, "soc", num_or_null(f->in.soc));
	json_object_set_new(o, "writes", json_integer((json_int_t)f->writes));
	json_object_set_new(o, "write_errors", json_integer((json_int_t)f->write_errors));
	json_object_set_new(o, "setpoints", json_integer((json_int_t)f->setpoints));
	json_object_set_new(o, "coalesced", json_integer((json_int_t)f->coalesced));
	json_object_set_new(o, "releases", json_integer((json_int_t)f->releases));
	json_object_set_new(o, "delay_ms",
			    json_pack("{s:o, s:o, s:o, s:o, s:I}", "p50",
				      num_or_null(delay_pct(f, 50)), "p99",
				      num_or_null(delay_pct(f, 99)), "p999",
				      num_or_null(delay_pct(f, 99.9)), "max",
				      f->delay_n ? json_real((double)f->delay_max / USEC_PER_MSEC)
						 : json_null(),
				      "n", (json_int_t)f->delay_n));
	return o;
}

static void metrics(void *ud, struct web_buf *b)
{
	struct egw *e = ud;
	struct fcr_egw *f = e->fcr;
	static const double bounds[] = { 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.5, 1 };
	uint64_t counts[ARRAY_SIZE(bounds) + 1] = { 0 };

	if (!f)
		return;
	web_buf_printf(b, "# TYPE egw_fcr_writes_total counter\negw_fcr_writes_total %" PRIu64 "\n",
		       f->writes);
	web_buf_printf(
		b,
		"# TYPE egw_fcr_write_errors_total counter\negw_fcr_write_errors_total %" PRIu64
		"\n",
		f->write_errors);
	web_buf_printf(
		b, "# TYPE egw_fcr_setpoints_total counter\negw_fcr_setpoints_total %" PRIu64 "\n",
		f->setpoints);
	web_buf_printf(
		b, "# TYPE egw_fcr_releases_total counter\negw_fcr_releases_total %" PRIu64 "\n",
		f->releases);
	web_buf_printf(b, "# TYPE egw_fcr_active gauge\negw_fcr_active %d\n",
		       f->out.state == FCR_ACTIVE);
	for (unsigned i = 0; i < DELAY_BUCKETS; i++) {
		double up = (double)(i + 1) / 1000.0;
		size_t k = 0;
		while (k < ARRAY_SIZE(bounds) && up > bounds[k] + 1e-12)
			k++;
		if (i == DELAY_BUCKETS - 1)
			k = ARRAY_SIZE(bounds);
		counts[k] += f->delay_hist[i];
	}
	web_buf_histogram(b, "egw_fcr_delay_seconds", NULL, NULL, bounds, ARRAY_SIZE(bounds),
			  counts, f->delay_sum_s);
	if (f->delay_n) {
		web_buf_printf(b, "# TYPE egw_fcr_delay_quantile_seconds gauge\n");
		static const double q[] = { 50, 99, 99.9 };
		for (size_t i = 0; i < ARRAY_SIZE(q); i++)
			web_buf_printf(b, "egw_fcr_delay_quantile_seconds{quantile=\"%g\"} %g\n",
				       q[i] / 100, delay_pct(f, q[i]) / 1000.0);
	}
}

static void load_conf(struct fcr_egw *f)
{
	struct fcr_conf_error err = { 0 };
	json_t *doc = settings_to_json(f->e->settings, false);
	struct fcr_conf c;
	int r = doc ? fcr_conf_parse(doc, &c, &err) : -ENOMEM;
	json_decref(doc);

	f->error[0] = 0;
	if (r < 0) {
		/* the settings layer checks the same rules, so this is a device
		 * list changed under FCR (or no memory): FCR waits, egwd runs */
		memset(&c, 0, sizeof(c));
		c.enabled = false;
		snprintf(f->error, sizeof(f->error), "%s%s%s", err.key, err.key[0] ? ": " : "",
			 r == -ENOMEM ? "out of memory" : err.msg);
		log_error("fcr", "FCR not running: %s", f->error);
	}
	f->conf = c;
	fcr_ctl_init(&f->ctl, &c);
	refresh_bc(f);
}

void fcr_egw_apply(struct egw *e)
{
	struct fcr_egw *f = e->fcr;
	bool was_enabled;

	if (!f)
		return;
	was_enabled = f->conf.enabled;
	/* a battery egw controls is released by control() through ctl_dev and
	 * ctl_bc, whatever the new settings name */
	load_conf(f);
	if (f->conf.enabled && !was_enabled) {
		f->released_once = false;
		log_info("fcr", "FCR enabled: battery %s, frequency from %s", f->conf.battery,
			 f->conf.freq);
	}
	if ((f->conf.enabled || f->in_control) && !sched_queued(&f->tick))
		loop_task_add(e->loop, &f->tick, loop_now(e->loop) + TICK_USEC);
	step(f, now_usec(), false);
}

int fcr_egw_init(struct egw *e)
{
	struct fcr_egw *f = calloc(1, sizeof(*f));
	char dir[PATH_MAX + 8];
	int r;

	if (!f)
		return -ENOMEM;
	f->e = e;
	f->in.hz = NAN;
	f->in.soc = NAN;
	f->measured_w = NAN;
	f->written_sp = NAN;
	f->tick = (struct task){ .name = "fcr", .run = tick_run, .period = TICK_USEC, .prio = 0 };
	f->summary_at = now_usec() + SUMMARY_USEC;
	snprintf(dir, sizeof(dir), "%s/fcr", e->state_dir);
	r = fcrlog_new(dir, 14, &f->log);
	if (r < 0)
		log_warn("fcr", "FCR log %s: %s (the operational log is not kept)", dir,
			 egw_strerror(r));
	e->fcr = f;
	e->fcrlog = f->log;
	load_conf(f);
	if (f->conf.enabled)
		loop_task_add(e->loop, &f->tick, loop_now(e->loop) + TICK_USEC);
	if (e->web) {
		web_add_section(e->web, "fcr", section_fcr, e, true);
		web_add_metrics(e->web, metrics, e);
	}
	f->out.state = f->conf.enabled ? FCR_WAITING : FCR_OFF;
	f->out.reason = "";
	return 0;
}

void fcr_egw_fini(struct egw *e)
{
	struct fcr_egw *f = e->fcr;
	if (!f)
		return;
	e->fcr = NULL;
	e->fcrlog = NULL;
	loop_task_cancel(e->loop, &f->tick);
	if (f->log) {
		fcrlog_flush(f->log);
		fcrlog_free(f->log);
		f->log = NULL;
	}
	if (f->seq != SEQ_NONE) {
		f->dead = true; /* the write callback frees it */
		return;
	}
	free(f);
}

bool fcr_egw_stop(struct egw *e, void (*done)(struct egw *e))
{
	struct fcr_egw *f = e->fcr;
	if (!f || !f->ctl_nrelease || (!f->in_control && f->seq == SEQ_NONE))
		return false;
	f->stopping = true;
	f->stop_done = done;
	f->stop_deadline = now_usec() + STOP_WAIT_USEC;
	f->out.state = FCR_RELEASED;
	f->out.reason = "egwd stopping";
	f->pending = false;
	if (f->seq == SEQ_NONE)
		start_release(f);
	/* else: the sequence in flight ends, and seq_done sees stop_done; a
	 * release follows below */
	if (!sched_queued(&f->tick))
		loop_task_add(e->loop, &f->tick, loop_now(e->loop) + TICK_USEC);
	return true;
}
