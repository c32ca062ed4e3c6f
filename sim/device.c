/* A simulated device: physics -> reading -> registers, from the vendor map
 * (vendor.c) or, for brands without one, the profile's table. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "sim/sim.h"

/* Does the profile map any field of the group [lo, hi]? */
static bool maps_range(const struct profile *p, int lo, int hi)
{
	for (unsigned i = 0; i < p->nregs; i++)
		if (p->regs[i].field >= lo && p->regs[i].field <= hi)
			return true;
	return false;
}

static uint64_t fnv1a(const char *a, const char *b)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (const char *s = a; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
	h = (h ^ '/') * 0x100000001b3ULL;
	for (const char *s = b; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
	return h;
}

/* Default serial: text "SIM<profile><tag>" for text serial registers (cut
 * to the register's size), a decimal number for numeric ones. */
static void default_serial(const struct profile *p, const struct sim_model *m, const char *tag,
			   char *out, size_t cap)
{
	const struct reg_def *sn = p->serial;
	bool text = m ? m->serial.type == REG_STR : (!sn || sn->type == REG_STR);
	unsigned words = m ? m->serial.words : sn ? sn->words : 0;
	if (!text) {
		snprintf(out, cap, "%llu",
			 (unsigned long long)(10000000 + fnv1a(p->name, tag) % 89999999));
		return;
	}
	size_t max = words ? MIN((size_t)words * 2, cap - 1) : cap - 1;
	char buf[128];
	snprintf(buf, sizeof(buf), "SIM%s%s", p->name, tag);
	/* keep the tag (it tells devices apart): drop profile letters instead */
	size_t n = strlen(buf);
	if (n > max) {
		size_t tl = strlen(tag);
		if (tl + 3 < max) {
			snprintf(out, cap, "SIM%.*s%s", (int)(max - 3 - tl), p->name, tag);
			return;
		}
		buf[max] = '\0';
	}
	snprintf(out, cap, "%s", buf);
}

static int device_init(struct sim *s, struct sim_device *d, const struct profile *prof,
		       const struct sim_model *m, uint8_t unit, const char *serial, const char *tag)
{
	struct sim_phys_cfg cfg = s->base_cfg;
	int r;

	*d = (struct sim_device){ .idx = d->idx,
				  .prof = prof,
				  .model = m,
				  .unit = unit,
				  .home_load_w = NAN,
				  .home_t = NAN,
				  .batt_timeout_s = NAN };
	/* each device its own weather and load, still determined by --seed */
	cfg.seed = s->seed * 1000003ULL + fnv1a(m ? m->name : prof->name, tag);
	if (m ? !m->battery : !maps_range(prof, RF_BATTERY_W, RF_BATTERY_TOTAL_DISCHARGE_WH))
		cfg.batt_capacity_wh = 0.0;
	r = sim_phys_init(&d->phys, &cfg);
	if (r < 0)
		return r;
	for (int f = 0; f < RF_COUNT; f++)
		d->ovr[f] = NAN;
	if (serial)
		snprintf(d->serial, sizeof(d->serial), "%s", serial);
	else
		default_serial(prof, m, tag, d->serial, sizeof(d->serial));
	r = regimage_new(&d->img);
	if (r < 0)
		return r;
	return sim_device_update(d, 0.0);
}

int sim_device_init(struct sim *s, struct sim_device *d, const struct profile *prof, uint8_t unit,
		    const char *serial, const char *tag)
{
	return device_init(s, d, prof, sim_model_find(prof->name), unit, serial, tag);
}

int sim_device_init_model(struct sim *s, struct sim_device *d, const struct sim_model *m,
			  uint8_t unit, const char *serial, const char *tag)
{
	const struct profile *prof = profile_find(m->profile);

	if (!prof)
		return -EINVAL;
	return device_init(s, d, prof, m, unit, serial, tag);
}

void sim_device_fini(struct sim_device *d)
{
	if (!d)
		return;
	regimage_free(d->img);
	d->img = NULL;
}

/* The inverter's displacement power factor while it delivers: a fixed cos
 * phi, as grid codes let an installer set it. */
#define SIM_INV_PF 0.98
#define SIM_BAT_SOH 0.97 /* the battery's state of health */

/* The inverter's AC side: each phase carries a third of its power at the
 * grid's phase voltage; apparent power and current follow from the power
 * factor (reactive power positive, over-excited).  Without active power
 * there is no power factor. */
static void inverter_ac(const struct sim_values *v, struct reading *r)
{
	static const int lv[3] = { RF_INVERTER_L1_V, RF_INVERTER_L2_V, RF_INVERTER_L3_V };
	static const int la[3] = { RF_INVERTER_L1_A, RF_INVERTER_L2_A, RF_INVERTER_L3_A };
	static const int lw[3] = { RF_INVERTER_L1_W, RF_INVERTER_L2_W, RF_INVERTER_L3_W };
	double w = r->v[RF_INVERTER_W], va = fabs(w) / SIM_INV_PF, a = 0;

	r->v[RF_INVERTER_VA] = va;
	r->v[RF_INVERTER_VAR] = sqrt(va * va - w * w);
	r->v[RF_INVERTER_PF] = w != 0 ? SIM_INV_PF : NAN;
	for (int i = 0; i < 3; i++) {
		r->v[lv[i]] = v->l_v[i];
		r->v[lw[i]] = w / 3;
		r->v[la[i]] = v->l_v[i] > 0 ? va / 3 / v->l_v[i] : 0;
		a += r->v[la[i]];
	}
	r->v[RF_INVERTER_A] = a;
}

static void values_to_reading(const struct sim_values *v, bool battery, struct reading *r)
{
	reading_clear(r);
	/* pv.W is the DC generation; inverter.W the AC side: PV output less what
	 * the battery takes (the physics' battery is AC-coupled) */
	r->v[RF_PV_W] = v->pv_dc_w > 0 ? -v->pv_dc_w : 0.0;
	r->v[RF_INVERTER_W] = v->pv_w + (battery ? v->bat_w : 0.0);
	r->v[RF_PV_RATED_POWER_W] = v->pv_rated_w;
	r->v[RF_PV_MPPT1_V] = v->mppt1_v;
	r->v[RF_PV_MPPT1_A] = v->mppt1_a;
	r->v[RF_PV_MPPT2_V] = v->mppt2_v;
	r->v[RF_PV_MPPT2_A] = v->mppt2_a;
	r->v[RF_PV_MPPT1_W] = v->mppt1_v * v->mppt1_a;
	r->v[RF_PV_MPPT2_W] = v->mppt2_v * v->mppt2_a;
	r->v[RF_PV_HEATSINK_C] = v->pv_heatsink_c;
	r->v[RF_PV_TOTAL_GENERATION_WH] = v->pv_total_wh;
	r->v[RF_PV_DAILY_GENERATION_WH] = v->pv_day_wh;
	if (battery) {
		r->v[RF_BATTERY_W] = v->bat_w;
		r->v[RF_BATTERY_A] = v->bat_a;
		r->v[RF_BATTERY_V] = v->bat_v;
		r->v[RF_BATTERY_SOC_NOM_FRACT] = v->bat_soc;
		r->v[RF_BATTERY_SOH_FRACT] = SIM_BAT_SOH;
		r->v[RF_BATTERY_HEATSINK_C] = v->bat_heatsink_c;
		r->v[RF_BATTERY_TOTAL_CHARGE_WH] = v->bat_charge_wh;
		r->v[RF_BATTERY_TOTAL_DISCHARGE_WH] = v->bat_discharge_wh;
	}
	inverter_ac(v, r);
	r->v[RF_METER_W] = v->meter_w;
	r->v[RF_METER_HZ] = v->hz;
	static const int lv[3] = { RF_METER_L1_V, RF_METER_L2_V, RF_METER_L3_V };
	static const int la[3] = { RF_METER_L1_A, RF_METER_L2_A, RF_METER_L3_A };
	static const int lw[3] = { RF_METER_L1_W, RF_METER_L2_W, RF_METER_L3_W };
	for (int i = 0; i < 3; i++) {
		r->v[lv[i]] = v->l_v[i];
		r->v[la[i]] = v->l_a[i];
		r->v[lw[i]] = v->l_w[i];
	}
	r->v[RF_METER_TOTAL_IMPORT_WH] = v->import_wh;
	r->v[RF_METER_TOTAL_EXPORT_WH] = v->export_wh;
}

static int device_physics(struct sim_device *d, double t)
{
	int r = sim_phys_advance(&d->phys, t, &d->vals);
	if (r < 0)
		return r;
	values_to_reading(&d->vals, d->phys.cfg.batt_capacity_wh > 0, &d->rd);
	return 0;
}

static int device_encode(struct sim_device *d)
{
	int r;

	for (int f = 0; f < RF_COUNT; f++)
		if (!isnan(d->ovr[f]))
			d->rd.v[f] = d->ovr[f];
	/* an inverter power set by hand carries its AC side with it */
	if (!isnan(d->ovr[RF_INVERTER_W])) {
		inverter_ac(&d->vals, &d->rd);
		for (int f = 0; f < RF_COUNT; f++)
			if (!isnan(d->ovr[f]))
				d->rd.v[f] = d->ovr[f];
	}
	if (d->model) {
		r = sim_model_encode(d->model, &d->rd, d->serial, d->img);
		goto written;
	}
	r = profile_encode(d->prof, &d->rd, d->serial, d->img);
	if (r < 0)
		return r;
	/* the generic SunSpec device's common model names itself (Mn, Md, Vr
	 * at points 2, 18 and 42 of model 1), as any SunSpec device does */
	if (d->prof->sunspec_base) {
		static const struct {
			uint16_t off, words;
			const char *text;
		} common[] = {
			{ 4, 16, "egw" },
			{ 20, 16, "egw-sim SunSpec" },
			{ 44, 8, EGW_VERSION },
		};
		for (unsigned i = 0; i < ARRAY_SIZE(common); i++) {
			size_t len = strlen(common[i].text);
			for (unsigned k = 0; k < common[i].words; k++) {
				uint8_t hi = 2 * k < len ? (uint8_t)common[i].text[2 * k] : 0;
				uint8_t lo =
					2 * k + 1 < len ? (uint8_t)common[i].text[2 * k + 1] : 0;
				regimage_set(d->img, REG_FC_HOLDING,
					     (uint16_t)(d->prof->sunspec_base + common[i].off + k),
					     (uint16_t)(hi << 8 | lo));
			}
		}
	}
	/* Some tables read the grid frequency from a register they do not map
	 * to meter.Hz (it feeds the 10 Hz frequency channel, not the reading);
	 * a real device has the frequency there, so the simulator puts it in. */
	const struct reg_def *hz = d->prof->frequency;
	if (hz && hz->field < 0 && hz->sf_addr == REG_NO_SF && hz->words <= 4) {
		uint16_t w[4];
		if (reg_encode(hz, d->rd.v[RF_METER_HZ], w) == 0)
			for (unsigned i = 0; i < hz->words; i++)
				regimage_set(d->img, hz->fc, (uint16_t)(hz->addr + i), w[i]);
	}
written:
	if (r < 0)
		return r;
	/* what clients wrote stays written */
	for (unsigned i = 0; i < d->nwrites; i++)
		regimage_set(d->img, REG_FC_HOLDING, d->writes[i].addr, d->writes[i].value);
	return 0;
}

int sim_device_update(struct sim_device *d, double t)
{
	int r = device_physics(d, t);
	return r < 0 ? r : device_encode(d);
}

static bool is_meter_only(const struct sim_device *d)
{
	return d->prof->dtype && strcmp(d->prof->dtype, "meter") == 0;
}

int sim_home_update(struct sim *s, double t)
{
	static const double share[3] = { 0.45, 0.30, 0.25 }; /* the house's phases */
	double ac = 0, load;
	int r;

	for (unsigned i = 0; i < s->ndevs; i++) {
		r = device_physics(&s->devs[i], MAX(t, s->devs[i].phys.t));
		if (r < 0)
			return r;
	}
	if (s->ndevs == 0)
		return 0;
	/* one house: the first device's load; every inverter feeds it, every
	 * meter sees the rest (import positive) */
	load = s->devs[0].vals.load_w;
	for (unsigned i = 0; i < s->ndevs; i++)
		if (!is_meter_only(&s->devs[i]) && !isnan(s->devs[i].rd.v[RF_INVERTER_W]))
			ac += s->devs[i].rd.v[RF_INVERTER_W];
	for (unsigned i = 0; i < s->ndevs; i++) {
		struct sim_device *d = &s->devs[i];
		static const int lv[3] = { RF_METER_L1_V, RF_METER_L2_V, RF_METER_L3_V };
		static const int la[3] = { RF_METER_L1_A, RF_METER_L2_A, RF_METER_L3_A };
		static const int lw[3] = { RF_METER_L1_W, RF_METER_L2_W, RF_METER_L3_W };

		d->home_load_w = load;
		d->rd.v[RF_METER_W] = load + ac;
		/* the totals follow the power the meter shows: import rises while
		 * importing, export while exporting (the device's own physics is
		 * not this home's grid point) */
		double imp = d->home_import_wh, exp_ = d->home_export_wh;
		if (isnan(d->home_t)) {
			imp = d->vals.import_wh;
			exp_ = d->vals.export_wh;
			d->home_t = t;
		} else if (t > d->home_t) {
			double wh = (load + ac) * (t - d->home_t) / 3600.0;
			if (wh > 0)
				imp += wh;
			else
				exp_ -= wh;
			d->home_t = t;
		}
		d->home_import_wh = imp;
		d->home_export_wh = exp_;
		d->rd.v[RF_METER_TOTAL_IMPORT_WH] = imp;
		d->rd.v[RF_METER_TOTAL_EXPORT_WH] = exp_;
		if (s->fseq.playing)
			d->rd.v[RF_METER_HZ] = sim_fseq_hz(&s->fseq, t);
		for (int k = 0; k < 3; k++) {
			d->rd.v[lw[k]] = load * share[k] + ac / 3.0;
			d->rd.v[la[k]] = d->rd.v[lw[k]] / d->rd.v[lv[k]];
		}
	}
	for (unsigned i = 0; i < s->ndevs; i++) {
		r = device_encode(&s->devs[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

void sim_device_override(struct sim_device *d, int f, double value)
{
	if (f >= 0 && f < RF_COUNT)
		d->ovr[f] = value;
}

static void remember_write(struct sim_device *d, uint16_t addr, uint16_t value)
{
	for (unsigned i = 0; i < d->nwrites; i++) {
		if (d->writes[i].addr == addr) {
			d->writes[i].value = value;
			return;
		}
	}
	/* full: the oldest write is forgotten (the physics owns it again) */
	if (d->nwrites == SIM_MAX_WRITES) {
		memmove(d->writes, d->writes + 1, sizeof(d->writes[0]) * (SIM_MAX_WRITES - 1));
		d->nwrites--;
	}
	d->writes[d->nwrites++] = (struct sim_write){ .addr = addr, .value = value };
}

/* A control write: hand the vendor map's command to the battery. */
static void device_control(struct sim_device *d, uint16_t addr, unsigned count)
{
	const struct sim_batt_dyn *b = &d->phys.bd;
	struct sim_batt_cmd c;
	struct sim *s = d->port ? d->port->sim : NULL;

	if (!d->model || !d->model->control || d->phys.cfg.batt_capacity_wh <= 0)
		return;
	double t = s ? sim_clock_t(&s->clock, now_usec()) : d->phys.t;
	t = MAX(t, d->phys.t);
	const struct sim_batt_cmd *prev = b->nq ? &b->queue[b->nq - 1] : &b->active;
	if (d->model->control(d->img, addr, count, t, prev, &c) <= 0)
		return;
	if (!isnan(d->batt_timeout_s))
		c.timeout_s = d->batt_timeout_s > 0 ? d->batt_timeout_s : INFINITY;
	sim_phys_batt_command(&d->phys, &c);
	if (s)
		sim_trace_command(s, d, &c);
}

int sim_device_handle(struct sim_device *d, const struct mb_request *q, uint8_t *pdu_out,
		      size_t cap)
{
	uint16_t regs[MB_MAX_READ];
	int r;

	d->requests++;
	switch (q->fc) {
	case MB_FC_READ_HOLDING:
	case MB_FC_READ_INPUT:
		r = regimage_get(d->img, q->fc, q->addr, q->count, regs);
		if (r < 0)
			break;
		return mb_build_read_response(q, regs, pdu_out, cap);
	case MB_FC_WRITE_SINGLE:
	case MB_FC_WRITE_MULTIPLE:
		for (unsigned i = 0; i < q->count; i++) {
			if ((unsigned)q->addr + i > 0xFFFF ||
			    !regimage_defined(d->img, REG_FC_HOLDING, (uint16_t)(q->addr + i))) {
				r = MB_EXCEPTION_ERR(MB_EX_ILLEGAL_ADDRESS);
				goto exception;
			}
		}
		for (unsigned i = 0; i < q->count; i++) {
			regimage_set(d->img, REG_FC_HOLDING, (uint16_t)(q->addr + i), q->values[i]);
			remember_write(d, (uint16_t)(q->addr + i), q->values[i]);
		}
		device_control(d, q->addr, q->count);
		d->write_requests++;
		return mb_build_write_response(q, pdu_out, cap);
	case MB_FC_MEI: {
		const char *objects[3] = {
			[MB_DEVID_VENDOR] = d->prof->brand ? d->prof->brand : "egw",
			[MB_DEVID_PRODUCT_CODE] = d->prof->name,
			[MB_DEVID_REVISION] = EGW_VERSION,
		};
		r = mb_build_devid_response(q, objects, ARRAY_SIZE(objects), MB_DEVID_BASIC,
					    pdu_out, cap);
		if (r >= 0)
			return r;
		break;
	}
	default:
		r = MB_EXCEPTION_ERR(MB_EX_ILLEGAL_FUNCTION);
		break;
	}
exception:;
	int code = mb_exception_for(r);
	if (code == 0)
		code = MB_EX_DEVICE_FAILURE;
	return mb_build_exception(q->fc, (uint8_t)code, pdu_out, cap);
}

json_t *sim_device_json(const struct sim_device *d)
{
	json_t *rd = reading_to_json(&d->rd);
	if (!rd)
		return NULL;
	const struct sim_port *p = d->port;
	json_t *o = json_pack("{s:i, s:s, s:s, s:i, s:s, s:o, s:f, s:b, s:I}", "index", (int)d->idx,
			      "profile", d->model ? d->model->name : d->prof->name, "transport",
			      !p || p->kind == SIM_TCP ? "tcp" : "rtu", "unit", (int)d->unit,
			      "serial", d->serial, "reading", rd, "sim_time", d->vals.t, "night",
			      d->vals.night, "requests", (json_int_t)d->requests);
	if (!o)
		return NULL;
	json_object_set_new(o, "writes", json_integer((json_int_t)d->write_requests));
	if (!isnan(d->home_load_w))
		json_object_set_new(o, "home_load_W", json_real(reading_round(d->home_load_w, 1)));
	/* what a client needs to read this device generically (tests, tools) */
	static const char *const type_names[REG_TYPE_COUNT] = {
		[REG_U16] = "U16", [REG_I16] = "I16", [REG_U32] = "U32",
		[REG_I32] = "I32", [REG_U64] = "U64", [REG_F32] = "F32",
		[REG_STR] = "STR", [REG_MLD] = "MLD", [REG_BYTES] = "BYTES",
	};
	/* a SunSpec map is walked: its blocks are what it serves; read by the
	 * generic SunSpec profile it has no fixed frequency register (a brand's
	 * SunSpec profile names the one its document places) */
	bool walked = d->model && d->prof->sunspec_base;
	const struct reg_def *hz =
		walked && strcmp(d->prof->name, "sunspec") == 0 ? NULL : d->prof->frequency;
	if (hz && hz->type < REG_TYPE_COUNT)
		json_object_set_new(o, "frequency_reg",
				    json_pack("{s:i, s:i, s:i, s:s, s:s, s:f, s:i}", "fc", hz->fc,
					      "addr", hz->addr, "words", hz->words, "type",
					      type_names[hz->type], "order",
					      hz->order == WO_LITTLE ? "little" : "big", "scale",
					      hz->scale, "sf_addr", (int)hz->sf_addr));
	json_t *blocks = json_array();
	for (unsigned i = 0; blocks && walked && i < d->model->nranges; i++) {
		const struct sim_vrange *rg = &d->model->ranges[i];
		for (unsigned a = 0; a < rg->count; a += PROFILE_MAX_BLOCK)
			json_array_append_new(blocks,
					      json_pack("[i, i, i]", rg->fc, rg->addr + a,
							MIN(rg->count - a, PROFILE_MAX_BLOCK)));
	}
	for (unsigned i = 0; blocks && !walked && i < d->prof->nblocks; i++)
		json_array_append_new(blocks,
				      json_pack("[i, i, i]", d->prof->blocks[i].fc,
						d->prof->blocks[i].addr, d->prof->blocks[i].count));
	if (blocks)
		json_object_set_new(o, "blocks", blocks);
	const struct sim_batt_dyn *b = &d->phys.bd;
	if (d->model && d->model->control && d->phys.cfg.batt_capacity_wh > 0) {
		const struct sim_batt_cmd *c = &b->active;
		json_t *bc =
			json_pack("{s:b, s:f, s:f, s:I, s:I, s:f, s:f}", "remote",
				  sim_phys_batt_remote(&d->phys), "W",
				  reading_round(b->on ? b->w : d->vals.bat_w, 1), "target_W",
				  reading_round(b->on ? b->target_w : d->vals.bat_w, 1), "commands",
				  (json_int_t)b->commands, "lapses", (json_int_t)b->lapses,
				  "delay_s", b->delay_s, "ramp_W_s", b->ramp_w_s);
		if (bc && c->remote && !b->lapsed) {
			if (isfinite(c->lo_w))
				json_object_set_new(bc, "lo_W", json_real(c->lo_w));
			if (isfinite(c->hi_w))
				json_object_set_new(bc, "hi_W", json_real(c->hi_w));
			if (isfinite(c->timeout_s))
				json_object_set_new(bc, "reverts_in_s",
						    json_real(reading_round(
							    c->t + c->timeout_s - d->vals.t, 3)));
		}
		if (bc)
			json_object_set_new(o, "battery_control", bc);
	}
	/* the egw profile that reads it (differs for a variant like sungrow_sg) */
	json_object_set_new(o, "egw_profile", json_string(d->prof->name));
	/* served from a vendor map: it answers only the registers the document
	 * lists (exception 2 elsewhere, as the real device) */
	if (d->model)
		json_object_set_new(o, "vendor_doc", json_string(d->model->doc));
	if (p)
		json_object_set_new(o, "asleep", json_boolean(p->asleep));
	if (p && p->kind == SIM_TCP)
		json_object_set_new(o, "port", json_integer(p->port));
	else if (p)
		json_object_set_new(o, "path", json_string(p->path));
	return o;
}
