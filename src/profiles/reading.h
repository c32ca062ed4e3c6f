/* The normalised data model: one decoded reading of a device.
 *
 * Four groups: pv, battery and meter as the original gateway publishes them,
 * and inverter (the inverter's AC side); and gas and water, the utility's
 * gas and water meters a P1 smart meter relays on its M-Bus channels.  doc/data-model.md lists every field
 * with its unit, sign and source.  pv.W is the PV (DC) generation power;
 * inverter.W is the AC active power the inverter delivers; both negative
 * while generating, so on a hybrid inverter.W = pv.W + battery.W (less losses).
 * Every value is in SI units (W, VA, var, V, A, Hz, °C, Wh, fraction 0..1, m3).  Sign
 * conventions: PV generation is negative, battery charging is positive, grid
 * import is positive, energy totals are positive.
 *
 * NAN means "unavailable" (not read, read failed, or the device answered a
 * "not implemented" sentinel).  Unavailable values are never published.
 *
 * Grid frequency: every profile puts the grid frequency it reads into
 * meter.Hz (RF_METER_HZ), also for plain inverters, as the reference table's
 * mapping text does ("{DER meter.Hz = value}").  The names below are the JSON
 * keys used everywhere (API, signed payload, UI). */
#pragma once

#include <jansson.h>
#include <stdbool.h>

enum reading_field {
	RF_PV_W,
	RF_PV_RATED_POWER_W,
	RF_PV_MPPT1_V,
	RF_PV_MPPT1_A,
	RF_PV_MPPT2_V,
	RF_PV_MPPT2_A,
	RF_PV_HEATSINK_C,
	RF_PV_TOTAL_GENERATION_WH,

	RF_BATTERY_W,
	RF_BATTERY_A,
	RF_BATTERY_V,
	RF_BATTERY_SOC_NOM_FRACT,
	RF_BATTERY_HEATSINK_C,
	RF_BATTERY_TOTAL_CHARGE_WH,
	RF_BATTERY_TOTAL_DISCHARGE_WH,

	RF_METER_W,
	RF_METER_HZ,
	RF_METER_L1_V,
	RF_METER_L1_A,
	RF_METER_L1_W,
	RF_METER_L2_V,
	RF_METER_L2_A,
	RF_METER_L2_W,
	RF_METER_L3_V,
	RF_METER_L3_A,
	RF_METER_L3_W,
	RF_METER_TOTAL_IMPORT_WH,
	RF_METER_TOTAL_EXPORT_WH,

	RF_INVERTER_W,

	RF_GAS_TOTAL_M3,
	RF_WATER_TOTAL_M3,

	/* the fuller data model, after the original gateway's fields (which keep
	 * their numbers) */
	RF_PV_MPPT1_W,
	RF_PV_MPPT2_W,
	RF_BATTERY_SOH_FRACT,
	RF_INVERTER_VA,
	RF_INVERTER_VAR,
	RF_INVERTER_PF,
	RF_INVERTER_A,
	RF_INVERTER_L1_V,
	RF_INVERTER_L1_A,
	RF_INVERTER_L1_W,
	RF_INVERTER_L2_V,
	RF_INVERTER_L2_A,
	RF_INVERTER_L2_W,
	RF_INVERTER_L3_V,
	RF_INVERTER_L3_A,
	RF_INVERTER_L3_W,
	RF_PV_DAILY_GENERATION_WH,

	RF_COUNT
};

/* One decoded reading.  v[f] is NAN when field f is unavailable. */
struct reading {
	double v[RF_COUNT];
};

struct reading_field_info {
	const char *group; /* "pv", "battery", "meter", "inverter", "gas", "water" */
	const char *name;  /* JSON key inside the group: "W", "rated_power_W", "mppt1_V",
	                      "SoC_nom_fract", "L1_V", "total_import_Wh", ... */
	const char *unit;  /* "W", "V", "A", "Hz", "C", "Wh", "fraction", "m3", "VA", "var" */
	bool total;        /* a lifetime energy counter: never decreases in published
			      data, and a reading of 0 is no value */
};

/* Indexed by enum reading_field. */
extern const struct reading_field_info reading_fields[RF_COUNT];

/* Sets every field to NAN. */
void reading_clear(struct reading *r);

/* True if at least one field is available. */
bool reading_any(const struct reading *r);

/* Field by "group" and "name" (e.g. "meter", "L1_V"); -1 if unknown. */
int reading_field_lookup(const char *group, const char *name);

/* Number printing: every JSON text that carries readings is dumped with
 * these flags.  Values are rounded to their register's resolution when
 * decoded (reading_round), so 15 significant digits print each one in its
 * shortest form that reads back to the same double: 49.9, not
 * 49.900000000000006 (jansson's default is %.17g). */
#define READING_JSON_REALS JSON_REAL_PRECISION(15)

/* The number of decimals that shows a value of this resolution (a count's
 * size in the field's unit): 0.1 -> 1, 0.01 -> 2, 1 or 1000 -> 0; capped at 9. */
int reading_decimals(double resolution);

/* v rounded to `decimals` decimals: the double nearest to that decimal
 * number (NAN stays NAN, -0 becomes 0). */
double reading_round(double v, int decimals);

/* {"pv":{"W":-3000.0,...},"battery":{...},"meter":{...},"inverter":{...}}.
 * Unavailable fields are omitted, empty groups are omitted (an empty reading
 * gives {}).  Values are JSON reals; dump with READING_JSON_REALS.  Returns a
 * new reference, or NULL on allocation failure. */
json_t *reading_to_json(const struct reading *r);

/* Parses the JSON form above (unknown keys rejected).  Returns 0, or
 * -EGW_ESCHEMA if the object has an unknown group/name or a non-number. */
int reading_from_json(const json_t *j, struct reading *ret);

/* Monotonic energy totals: keeps the last published value of every total
 * field (reading_fields[f].total) so a published total never goes backwards.
 * Value type; zero-initialise with reading_mono_init(). */
struct reading_mono {
	double last[RF_COUNT]; /* NAN until the first value is published */
};

void reading_mono_init(struct reading_mono *m);

/* For each total field of r: if it is lower than the last published value it
 * is replaced by NAN (refused, unavailable in this reading); otherwise it
 * becomes the last published value.  Non-total fields are untouched.
 * A negative total is refused too.  Returns the number of fields refused. */
int reading_mono_apply(struct reading_mono *m, struct reading *r);
