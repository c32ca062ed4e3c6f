/* FCR controller: products, normal-state energy management, clamps and the
 * settings check (see fcr.h). */
#include "grid/fcr.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/util.h"
#include "devices/devconf.h"
#include "profiles/profile.h"

const char *const fcr_product_names[FCR_NPRODUCTS] = {
	[FCR_N] = "fcr-n",
	[FCR_D_UP] = "fcr-d-up",
	[FCR_D_DOWN] = "fcr-d-down",
};

static const char *const state_names[FCR_STATE_COUNT] = {
	[FCR_OFF] = "off",           [FCR_WAITING] = "waiting", [FCR_ACTIVE] = "active",
	[FCR_RELEASED] = "released", [FCR_ERROR] = "error",
};
_Static_assert(ARRAY_SIZE(state_names) == FCR_STATE_COUNT, "a name per state");

const char *fcr_state_name(int s)
{
	return s >= 0 && s < FCR_STATE_COUNT ? state_names[s] : "unknown";
}

static double clampd(double v, double lo, double hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

double fcr_activation(enum fcr_product p, double hz)
{
	if (isnan(hz))
		return 0;
	switch (p) {
	case FCR_N:
		return clampd((50.0 - hz) / 0.1, -1, 1);
	case FCR_D_UP:
		return clampd((49.9 - hz) / 0.4, 0, 1);
	case FCR_D_DOWN:
		return -clampd((hz - 50.1) / 0.4, 0, 1);
	case FCR_NPRODUCTS:
		break;
	}
	return 0;
}

/* ---- settings ----------------------------------------------------------- */

static int fail(struct fcr_conf_error *err, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct fcr_conf_error *err, const char *key, const char *fmt, ...)
{
	va_list ap;
	if (err) {
		snprintf(err->key, sizeof(err->key), "%s", key);
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return -EGW_ESCHEMA;
}

static const json_t *get2(const json_t *doc, const char *group, const char *key)
{
	return json_object_get(json_object_get(doc, group), key);
}

static int parse_products(const json_t *arr, struct fcr_conf *c, struct fcr_conf_error *err)
{
	size_t i;
	const json_t *e;
	char key[64];

	if (!arr || json_is_null(arr))
		return 0;
	if (!json_is_array(arr))
		return fail(err, "fcr.products",
			    "expected an array of {\"product\", \"capacity_w\"}");
	json_array_foreach (arr, i, e) {
		const char *name;
		const json_t *v;
		int p;

		snprintf(key, sizeof(key), "fcr.products[%zu]", i);
		if (!json_is_object(e))
			return fail(err, key, "expected an object {\"product\", \"capacity_w\"}");
		json_object_foreach ((json_t *)e, name, v) {
			if (strcmp(name, "product") && strcmp(name, "capacity_w"))
				return fail(err, key,
					    "unknown member \"%.40s\" (expected product, "
					    "capacity_w)",
					    name);
		}
		v = json_object_get(e, "product");
		for (p = 0; p < FCR_NPRODUCTS; p++)
			if (json_is_string(v) &&
			    !strcmp(json_string_value(v), fcr_product_names[p]))
				break;
		if (p == FCR_NPRODUCTS)
			return fail(err, key, "product must be one of fcr-n, fcr-d-up, fcr-d-down");
		if (c->capacity_w[p] > 0)
			return fail(err, key, "%s is listed twice", fcr_product_names[p]);
		v = json_object_get(e, "capacity_w");
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > FCR_MAX_CAPACITY_W)
			return fail(err, key, "capacity_w must be an integer 1..%d (W)",
				    FCR_MAX_CAPACITY_W);
		c->capacity_w[p] = (double)json_integer_value(v);
	}
	return 0;
}

/* The grid frequency resolution of a profile's frequency register, in Hz;
 * 0 for a float.  NAN when it has none. */
static double freq_resolution(const struct profile *p)
{
	const struct reg_def *d = p ? p->frequency : NULL;
	if (!d)
		return NAN;
	if (d->type == REG_F32)
		return 0;
	return d->scale > 0 ? d->scale : NAN;
}

static int check_devices(const json_t *doc, struct fcr_conf *c, struct fcr_conf_error *err)
{
	struct devconf_error de = { 0 };
	struct dev_conf *confs = NULL;
	unsigned n = 0;
	int r;

	r = devconf_parse_list(json_object_get(doc, "devices"), &confs, &n, &de);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return 0; /* the devices key refuses that itself */
	for (unsigned i = 0; i < n; i++) {
		if (c->battery[0] && !strcmp(confs[i].id, c->battery))
			c->battery_index = (int)i;
		if (c->freq[0] && !strcmp(confs[i].id, c->freq))
			c->freq_index = (int)i;
	}
	r = 0;
	if (c->battery[0]) {
		const struct profile *p;
		if (c->battery_index < 0) {
			r = fail(err, "fcr.battery_device", "no device with id \"%s\" in devices",
				 c->battery);
			goto out;
		}
		p = confs[c->battery_index].profile;
		/* a SunSpec device's map is found when it is identified: its model
		 * 124 is checked then (FCR stays released without it) */
		if (!confs[c->battery_index].sunspec && (!p || !p->control)) {
			r = fail(err, "fcr.battery_device",
				 "device \"%s\" (profile %s) cannot be controlled: egw has battery "
				 "control registers for sungrow_sf, huawei_hybrid and SunSpec "
				 "storage (model 124, profile sunspec) only",
				 c->battery, p ? p->name : "p1");
			goto out;
		}
	}
	if (c->freq[0]) {
		const struct profile *p;
		const json_t *fd = get2(doc, "frequency", "device");
		unsigned src = json_is_integer(fd) ? (unsigned)json_integer_value(fd) : 0;
		double res;

		if (c->freq_index < 0) {
			r = fail(err, "fcr.frequency_device", "no device with id \"%s\" in devices",
				 c->freq);
			goto out;
		}
		p = confs[c->freq_index].profile;
		res = freq_resolution(p);
		if (isnan(res)) {
			r = fail(err, "fcr.frequency_device",
				 "device \"%s\" (profile %s) has no grid frequency register",
				 c->freq, p ? p->name : "p1");
			goto out;
		}
		if (res > FCR_RESOLUTION_HZ + 1e-9) {
			r = fail(
				err, "fcr.frequency_device",
				"device \"%s\" (profile %s) reports the grid frequency in steps of "
				"%g mHz (register %u); FCR needs 5 mHz or finer (a meter such as the "
				"SDM630 reports a float)",
				c->freq, p->name, res * 1000, p->frequency->addr);
			goto out;
		}
		if (src >= n)
			src = 0;
		if (src != (unsigned)c->freq_index) {
			r = fail(
				err, "fcr.frequency_device",
				"device \"%s\" is devices[%d] but the 10 Hz frequency is read from "
				"devices[%u] (frequency.device): set frequency.device to %d",
				c->freq, c->freq_index, src, c->freq_index);
			goto out;
		}
	}
out:
	devconf_free(confs, n);
	return r;
}

int fcr_conf_parse(const json_t *doc, struct fcr_conf *ret, struct fcr_conf_error *err)
{
	struct fcr_conf c = { .battery_index = -1, .freq_index = -1 };
	const json_t *v;
	int r;

	v = get2(doc, "fcr", "enabled");
	c.enabled = json_is_true(v);
	r = parse_products(get2(doc, "fcr", "products"), &c, err);
	if (r < 0)
		return r;
	v = get2(doc, "fcr", "battery_device");
	snprintf(c.battery, sizeof(c.battery), "%s", json_is_string(v) ? json_string_value(v) : "");
	v = get2(doc, "fcr", "frequency_device");
	snprintf(c.freq, sizeof(c.freq), "%s", json_is_string(v) ? json_string_value(v) : "");
	v = get2(doc, "fcr", "soc_min");
	c.soc_min = json_is_integer(v) ? (double)json_integer_value(v) / 100.0 : 0.1;
	v = get2(doc, "fcr", "soc_max");
	c.soc_max = json_is_integer(v) ? (double)json_integer_value(v) / 100.0 : 0.9;
	if (!(c.soc_min < c.soc_max))
		return fail(err, "fcr.soc_min", "must be below fcr.soc_max (%g >= %g %%)",
			    c.soc_min * 100, c.soc_max * 100);
	r = check_devices(doc, &c, err);
	if (r < 0)
		return r;
	if (c.enabled) {
		double sum = 0;
		for (int p = 0; p < FCR_NPRODUCTS; p++)
			sum += c.capacity_w[p];
		if (sum <= 0)
			return fail(err, "fcr.products",
				    "FCR is enabled but no product is offered");
		if (!c.battery[0])
			return fail(err, "fcr.battery_device",
				    "FCR is enabled but no battery "
				    "device is named");
		if (!c.freq[0])
			return fail(err, "fcr.frequency_device",
				    "FCR is enabled but no frequency "
				    "device is named");
	}
	*ret = c;
	return 0;
}

/* ---- controller --------------------------------------------------------- */

void fcr_ctl_init(struct fcr_ctl *c, const struct fcr_conf *conf)
{
	*c = (struct fcr_ctl){ .conf = *conf };
}

static void out_idle(struct fcr_out *o, int state, const char *reason)
{
	o->state = state;
	o->reason = reason;
	o->setpoint_w = 0;
}

/* Hysteresis on the endurance left (fractions of the required endurance:
 * 1.0 = the full 60 min of FCR-N or 20 min of FCR-D) of the reservoirs the
 * offered products draw on. */
static void nem_update(struct fcr_ctl *c, double fu, double fd)
{
	const double *cap = c->conf.capacity_w;
	if (cap[FCR_N] > 0) {
		double m = MIN(fu, fd) * 60;
		if (m < 30)
			c->nem_n_on = true;
		else if (m >= 57.5)
			c->nem_n_on = false;
	} else {
		c->nem_n_on = false;
	}
	if (cap[FCR_D_UP] > 0 || cap[FCR_D_DOWN] > 0) {
		double m = MIN(cap[FCR_D_UP] > 0 ? fu : INFINITY,
			       cap[FCR_D_DOWN] > 0 ? fd : INFINITY) *
			20;
		if (m < 19)
			c->nem_d_on = true;
		else if (m >= 20)
			c->nem_d_on = false;
	} else {
		c->nem_d_on = false;
	}
}

void fcr_ctl_step(struct fcr_ctl *c, const struct fcr_input *in, usec_t now, struct fcr_out *o)
{
	const struct fcr_conf *k = &c->conf;
	double up = 0, cap = 0, lo, hi;

	*o = (struct fcr_out){ .reason = "" };
	for (int p = 0; p < FCR_NPRODUCTS; p++) {
		cap += k->capacity_w[p];
		if (k->capacity_w[p] > 0 && !isnan(in->hz)) {
			o->act_w[p] =
				fcr_activation((enum fcr_product)p, in->hz) * k->capacity_w[p];
			up += o->act_w[p];
		}
	}
	if (!k->enabled)
		return out_idle(o, FCR_OFF, "");
	if (isnan(in->hz) || in->hz_at == 0 || !isfinite(in->hz))
		return out_idle(o, FCR_WAITING, "no frequency sample yet");
	if (now > in->hz_at && now - in->hz_at > FCR_STALE_USEC)
		return out_idle(o, FCR_RELEASED, "frequency stale (no sample for 1 s)");
	if (!in->battery_ok)
		return out_idle(o, FCR_RELEASED, "battery device not available");
	if (isnan(in->soc))
		return out_idle(o, FCR_WAITING, "no state of charge from the battery");
	double soc = in->soc;
	if (soc < k->soc_min || soc > k->soc_max)
		c->soc_latched = true;
	else if (soc >= k->soc_min + 0.01 && soc <= k->soc_max - 0.01)
		c->soc_latched = false;
	if (c->soc_latched)
		return out_idle(o, FCR_RELEASED,
				"state of charge outside fcr.soc_min..fcr.soc_max");

	/* normal-state energy management, inside the normal band only */
	double half = (k->soc_max - k->soc_min) / 2;
	double fu = (soc - k->soc_min) / half, fd = (k->soc_max - soc) / half;
	bool low = fu < fd; /* the upward reservoir is the short one: charge */
	nem_update(c, fu, fd);
	if (in->hz >= 49.9 && in->hz <= 50.1) {
		double nem = 0;
		if (c->nem_n_on)
			nem += 0.34 * k->capacity_w[FCR_N];
		if (c->nem_d_on)
			nem += 0.20 * MAX(k->capacity_w[FCR_D_UP], k->capacity_w[FCR_D_DOWN]);
		o->nem_w = low ? nem : -nem;
	}

	lo = -cap;
	hi = cap;
	if (isfinite(in->limit_discharge_w) && in->limit_discharge_w >= 0)
		lo = MAX(lo, -in->limit_discharge_w);
	if (isfinite(in->limit_charge_w) && in->limit_charge_w >= 0)
		hi = MIN(hi, in->limit_charge_w);
	o->min_w = lo;
	o->max_w = hi;
	double sp = round(clampd(-up + o->nem_w, lo, hi));
	if (sp > hi)
		sp = floor(hi);
	if (sp < lo)
		sp = ceil(lo);
	o->setpoint_w = sp == 0 ? 0 : sp; /* no -0 */
	o->state = FCR_ACTIVE;
}
