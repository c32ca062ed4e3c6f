/* The data model: field names, JSON form, monotonic energy totals. */
#include "profiles/reading.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "base/err.h"

#define PV(n, u, t) \
	{ \
		.group = "pv", .name = (n), .unit = (u), .total = (t) \
	}
#define BAT(n, u, t) \
	{ \
		.group = "battery", .name = (n), .unit = (u), .total = (t) \
	}
#define MET(n, u, t) \
	{ \
		.group = "meter", .name = (n), .unit = (u), .total = (t) \
	}
#define INV(n, u, t) \
	{ \
		.group = "inverter", .name = (n), .unit = (u), .total = (t) \
	}
#define GAS(n, u, t) \
	{ \
		.group = "gas", .name = (n), .unit = (u), .total = (t) \
	}
#define WAT(n, u, t) \
	{ \
		.group = "water", .name = (n), .unit = (u), .total = (t) \
	}

const struct reading_field_info reading_fields[RF_COUNT] = {
	[RF_PV_W] = PV("W", "W", false),
	[RF_PV_RATED_POWER_W] = PV("rated_power_W", "W", false),
	[RF_PV_MPPT1_V] = PV("mppt1_V", "V", false),
	[RF_PV_MPPT1_A] = PV("mppt1_A", "A", false),
	[RF_PV_MPPT2_V] = PV("mppt2_V", "V", false),
	[RF_PV_MPPT2_A] = PV("mppt2_A", "A", false),
	[RF_PV_HEATSINK_C] = PV("heatsink_C", "C", false),
	[RF_PV_TOTAL_GENERATION_WH] = PV("total_generation_Wh", "Wh", true),

	[RF_BATTERY_W] = BAT("W", "W", false),
	[RF_BATTERY_A] = BAT("A", "A", false),
	[RF_BATTERY_V] = BAT("V", "V", false),
	[RF_BATTERY_SOC_NOM_FRACT] = BAT("SoC_nom_fract", "fraction", false),
	[RF_BATTERY_HEATSINK_C] = BAT("heatsink_C", "C", false),
	[RF_BATTERY_TOTAL_CHARGE_WH] = BAT("total_charge_Wh", "Wh", true),
	[RF_BATTERY_TOTAL_DISCHARGE_WH] = BAT("total_discharge_Wh", "Wh", true),

	[RF_METER_W] = MET("W", "W", false),
	[RF_METER_HZ] = MET("Hz", "Hz", false),
	[RF_METER_L1_V] = MET("L1_V", "V", false),
	[RF_METER_L1_A] = MET("L1_A", "A", false),
	[RF_METER_L1_W] = MET("L1_W", "W", false),
	[RF_METER_L2_V] = MET("L2_V", "V", false),
	[RF_METER_L2_A] = MET("L2_A", "A", false),
	[RF_METER_L2_W] = MET("L2_W", "W", false),
	[RF_METER_L3_V] = MET("L3_V", "V", false),
	[RF_METER_L3_A] = MET("L3_A", "A", false),
	[RF_METER_L3_W] = MET("L3_W", "W", false),
	[RF_METER_TOTAL_IMPORT_WH] = MET("total_import_Wh", "Wh", true),
	[RF_METER_TOTAL_EXPORT_WH] = MET("total_export_Wh", "Wh", true),

	[RF_INVERTER_W] = INV("W", "W", false),

	[RF_GAS_TOTAL_M3] = GAS("total_m3", "m3", true),
	[RF_WATER_TOTAL_M3] = WAT("total_m3", "m3", true),

	[RF_PV_MPPT1_W] = PV("mppt1_W", "W", false),
	[RF_PV_MPPT2_W] = PV("mppt2_W", "W", false),
	[RF_BATTERY_SOH_FRACT] = BAT("SoH_fract", "fraction", false),
	[RF_INVERTER_VA] = INV("VA", "VA", false),
	[RF_INVERTER_VAR] = INV("var", "var", false),
	[RF_INVERTER_PF] = INV("PF", "PF", false),
	[RF_INVERTER_A] = INV("A", "A", false),
	[RF_INVERTER_L1_V] = INV("L1_V", "V", false),
	[RF_INVERTER_L1_A] = INV("L1_A", "A", false),
	[RF_INVERTER_L1_W] = INV("L1_W", "W", false),
	[RF_INVERTER_L2_V] = INV("L2_V", "V", false),
	[RF_INVERTER_L2_A] = INV("L2_A", "A", false),
	[RF_INVERTER_L2_W] = INV("L2_W", "W", false),
	[RF_INVERTER_L3_V] = INV("L3_V", "V", false),
	[RF_INVERTER_L3_A] = INV("L3_A", "A", false),
	[RF_INVERTER_L3_W] = INV("L3_W", "W", false),
	/* today's yield: resets at midnight, so not a total (it goes back to 0,
	 * and 0 in the morning is a value) */
	[RF_PV_DAILY_GENERATION_WH] = PV("daily_generation_Wh", "Wh", false),
};

static const char *const groups[] = { "pv", "battery", "meter", "inverter", "gas", "water" };

int reading_decimals(double resolution)
{
	int d;

	if (!(resolution > 0) || resolution >= 1)
		return 0;
	/* 1e-9 absorbs 0.1 being a hair above or below one tenth */
	d = (int)ceil(-log10(resolution) - 1e-9);
	return d < 0 ? 0 : d > 9 ? 9 : d;
}

double reading_round(double v, int decimals)
{
	static const double p10[] = { 1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9 };
	double r;

	/* beyond 15 significant digits there is nothing to round (and v * 10^d
	 * must stay finite) */
	if (!isfinite(v) || fabs(v) >= 1e15)
		return v;
	if (decimals < 0)
		decimals = 0;
	if (decimals > 9)
		decimals = 9;
	/* an integer divided by an exact power of ten: the nearest double to
	 * the decimal, which %.15g prints back in its short form */
	r = round(v * p10[decimals]) / p10[decimals];
	return r == 0 ? 0.0 : r;
}

void reading_clear(struct reading *r)
{
	for (unsigned i = 0; i < RF_COUNT; i++)
		r->v[i] = NAN;
}

bool reading_any(const struct reading *r)
{
	for (unsigned i = 0; i < RF_COUNT; i++)
		if (!isnan(r->v[i]))
			return true;
	return false;
}

int reading_field_lookup(const char *group, const char *name)
{
	for (unsigned i = 0; i < RF_COUNT; i++)
		if (strcmp(reading_fields[i].group, group) == 0 &&
		    strcmp(reading_fields[i].name, name) == 0)
			return (int)i;
	return -1;
}

json_t *reading_to_json(const struct reading *r)
{
	json_t *root = json_object();
	if (!root)
		return NULL;
	for (unsigned g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		json_t *obj = NULL;
		for (unsigned i = 0; i < RF_COUNT; i++) {
			if (strcmp(reading_fields[i].group, groups[g]) != 0 || !isfinite(r->v[i]))
				continue;
			if (!obj) {
				obj = json_object();
				if (!obj || json_object_set_new(root, groups[g], obj) < 0)
					goto fail_root;
			}
			if (json_object_set_new(obj, reading_fields[i].name, json_real(r->v[i])) <
			    0)
				goto fail_root;
		}
	}
	return root;

fail_root:
	json_decref(root);
	return NULL;
}

int reading_from_json(const json_t *j, struct reading *ret)
{
	struct reading r;
	const char *gname, *fname;
	json_t *gobj, *val;

	if (!json_is_object(j))
		return -EGW_ESCHEMA;
	reading_clear(&r);
	json_object_foreach ((json_t *)j, gname, gobj) {
		if (!json_is_object(gobj))
			return -EGW_ESCHEMA;
		json_object_foreach (gobj, fname, val) {
			int f = reading_field_lookup(gname, fname);
			if (f < 0 || !json_is_number(val))
				return -EGW_ESCHEMA;
			r.v[f] = json_number_value(val);
		}
	}
	*ret = r;
	return 0;
}

void reading_mono_init(struct reading_mono *m)
{
	for (unsigned i = 0; i < RF_COUNT; i++)
		m->last[i] = NAN;
}

int reading_mono_apply(struct reading_mono *m, struct reading *r)
{
	int refused = 0;

	for (unsigned i = 0; i < RF_COUNT; i++) {
		if (!reading_fields[i].total || isnan(r->v[i]))
			continue;
		/* a total is positive and never goes backwards */
		if (r->v[i] < 0 || (!isnan(m->last[i]) && r->v[i] < m->last[i])) {
			r->v[i] = NAN;
			refused++;
			continue;
		}
		m->last[i] = r->v[i];
	}
	return refused;
}
