/* Ferroamp EnergyHub profile.
 *
 * Source: Ferroamp "Modbus TCP" specification (Ferroamp Elektronik AB,
 * Revision B, 2018-12-07, section 6 "Modbus Variables"; a later revision,
 * PC1 for Modbus v3.0, is mirrored on manualspro.net), enabled by Ferroamp
 * on request, TCP port 502.  Every value is an input register (3xxxx); a
 * float is an IEEE-754 single in two registers, low word first (word
 * swapped), and power and energy are in kW and kWh.  The specification's
 * tables could not be read in full here: the addresses, units and signs
 * below are the ones two independent public implementations that cite it
 * agree on (evcc's ferroamp-energyhub template; the ferroamp_modbus Home
 * Assistant integration), and they fit the original gateway's list.
 *  - 2016 grid frequency (Hz); 2032/2036/2040 grid voltage L1-L3 (V)
 *  - 3064/3068 energy exported to / imported from the grid (kWh); 3100 grid
 *    active power (kW, positive = import), measured by the hub's grid CTs
 *  - 5000/5002/5004 number of idle/running/faulty SSOs (solar string
 *    optimisers); 5064 energy produced (kWh); 5100 solar power (kW)
 *  - 6000/6002/6004 number of idle/running/faulty batteries (ESOs); 6012
 *    state of health and 6016 state of charge (%); 6064/6068 energy from /
 *    to the battery (kWh); 6100 battery power (kW, negative = charging)
 *
 * Where this table leaves the reference: 5100 counts kW, not W (scale 1000;
 * the reference row reads a 3.3 kW array as 3.3 W).
 *
 * Variants: a hub with no battery (no ESO) and one with no solar strings
 * (no SSO) are told apart by the unit counts; ferroamp_fixup drops the
 * battery, respectively PV, fields when idle + running + faulty is 0, so
 * such a hub publishes no battery object and no 0 W PV.
 * Rows written from the reference register table (inverter-registers.tsv),
 * plus the [doc] rows above; test_profiles_tsv holds them against it. */
#include <math.h>

#include "profiles/table.h"

#define SSO_COUNTS 5000
#define ESO_COUNTS 6000

#define COUNT_REG(a) \
	{ \
		.addr = (a), .fc = REG_FC_INPUT, .words = 1, .type = REG_U16, .order = WO_BIG, \
		.scale = 1, .sf_addr = REG_NO_SF, .field = REG_NO_FIELD \
	}

/* What ferroamp_fixup reads besides the fields, on short polls too. */
static const struct reg_def ferroamp_short_extra[] = {
	COUNT_REG(SSO_COUNTS), COUNT_REG(SSO_COUNTS + 2), COUNT_REG(SSO_COUNTS + 4),
	COUNT_REG(ESO_COUNTS), COUNT_REG(ESO_COUNTS + 2), COUNT_REG(ESO_COUNTS + 4),
};

static const enum reading_field pv_fields[] = {
	RF_PV_W,
	RF_PV_TOTAL_GENERATION_WH,
};

static const enum reading_field battery_fields[] = {
	RF_BATTERY_W,
	RF_BATTERY_SOC_NOM_FRACT,
	RF_BATTERY_TOTAL_CHARGE_WH,
	RF_BATTERY_TOTAL_DISCHARGE_WH,
};

/* Units of one kind (idle + running + faulty at base, base+2, base+4);
 * -1 when the counts were not read. */
static int units(uint16_t base, const struct block_result *res, unsigned nres)
{
	int n = 0;

	for (unsigned i = 0; i < 3; i++) {
		const struct reg_def d = COUNT_REG((uint16_t)(base + 2 * i));
		const uint16_t *w = profile_find_words(&d, res, nres);
		if (!w)
			return -1;
		n += w[0];
	}
	return n;
}

static int ferroamp_fixup(const struct profile *p, const struct block_result *res, unsigned nres,
			  struct reading *r)
{
	(void)p;
	if (units(SSO_COUNTS, res, nres) == 0)
		for (unsigned i = 0; i < sizeof(pv_fields) / sizeof(pv_fields[0]); i++)
			r->v[pv_fields[i]] = NAN;
	if (units(ESO_COUNTS, res, nres) == 0)
		for (unsigned i = 0; i < sizeof(battery_fields) / sizeof(battery_fields[0]); i++)
			r->v[battery_fields[i]] = NAN;
	return 0;
}

/* The inverse: one running SSO (ESO) when the reading has a PV (battery) field. */
static bool any(const struct reading *r, const enum reading_field *f, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (!isnan(r->v[f[i]]))
			return true;
	return false;
}

static int ferroamp_encode_fixup(const struct profile *p, const struct reading *r,
				 struct regimage *img)
{
	(void)p;
	for (unsigned i = 0; i < 3; i++) {
		regimage_set(img, REG_FC_INPUT, (uint16_t)(SSO_COUNTS + 2 * i), 0);
		regimage_set(img, REG_FC_INPUT, (uint16_t)(ESO_COUNTS + 2 * i), 0);
	}
	if (any(r, pv_fields, sizeof(pv_fields) / sizeof(pv_fields[0])))
		regimage_set(img, REG_FC_INPUT, SSO_COUNTS + 2, 1);
	if (any(r, battery_fields, sizeof(battery_fields) / sizeof(battery_fields[0])))
		regimage_set(img, REG_FC_INPUT, ESO_COUNTS + 2, 1);
	return 0;
}

static const struct reg_def ferroamp_regs[] = {
	REG_MAP(2016, FI, 2, F32, WL, KEY, 1, "Hz", "Grid frequency", RF_METER_HZ, 1),
	REG_MAP(5100, FI, 2, F32, WL, KEY, 1000, "W", "DC Power", RF_PV_W, -1),
	REG_MAP(2032, FI, 2, F32, WL, DOC, 1, "V", "Grid voltage L1", RF_METER_L1_V, 1),
	REG_MAP(2036, FI, 2, F32, WL, DOC, 1, "V", "Grid voltage L2", RF_METER_L2_V, 1),
	REG_MAP(2040, FI, 2, F32, WL, DOC, 1, "V", "Grid voltage L3", RF_METER_L3_V, 1),
	REG_MAP(3064, FI, 2, F32, WL, DOC, 1000, "Wh", "Energy exported to grid",
		RF_METER_TOTAL_EXPORT_WH, 1),
	REG_MAP(3068, FI, 2, F32, WL, DOC, 1000, "Wh", "Energy imported from grid",
		RF_METER_TOTAL_IMPORT_WH, 1),
	REG_MAP(3100, FI, 2, F32, WL, DOC, 1000, "W", "Grid active power", RF_METER_W, 1),
	REG_MAP(5064, FI, 2, F32, WL, DOC, 1000, "Wh", "Energy produced", RF_PV_TOTAL_GENERATION_WH,
		1),
	REG(6012, FI, 2, F32, WL, DOC, 1, "%", "Battery state of health"),
	REG_MAP(6016, FI, 2, F32, WL, DOC, 0.01, "-", "Battery state of charge",
		RF_BATTERY_SOC_NOM_FRACT, 1),
	REG_MAP(6064, FI, 2, F32, WL, DOC, 1000, "Wh", "Energy from battery",
		RF_BATTERY_TOTAL_DISCHARGE_WH, 1),
	REG_MAP(6068, FI, 2, F32, WL, DOC, 1000, "Wh", "Energy to battery",
		RF_BATTERY_TOTAL_CHARGE_WH, 1),
	REG_MAP(6100, FI, 2, F32, WL, DOC, 1000, "W", "Battery power", RF_BATTERY_W, -1),
};

static const struct mb_block ferroamp_blocks[] = {
	{ .fc = FI, .addr = 1004, .count = 1 },
	{ .fc = FI, .addr = 1008, .count = 1 },
	{ .fc = FI, .addr = 2000, .count = 1 },
	{ .fc = FI, .addr = 2016, .count = 2 },
	{ .fc = FI, .addr = 2032, .count = 2 },
	{ .fc = FI, .addr = 2036, .count = 2 },
	{ .fc = FI, .addr = 2040, .count = 2 },
	{ .fc = FI, .addr = 2044, .count = 2 },
	{ .fc = FI, .addr = 2064, .count = 2 },
	{ .fc = FI, .addr = 2068, .count = 2 },
	{ .fc = FI, .addr = 2100, .count = 2 },
	{ .fc = FI, .addr = 2104, .count = 2 },
	{ .fc = FI, .addr = 2108, .count = 2 },
	{ .fc = FI, .addr = 2112, .count = 2 },
	{ .fc = FI, .addr = 2116, .count = 2 },
	{ .fc = FI, .addr = 2120, .count = 2 },
	{ .fc = FI, .addr = 2124, .count = 2 },
	{ .fc = FI, .addr = 2128, .count = 2 },
	{ .fc = FI, .addr = 2132, .count = 2 },
	{ .fc = FI, .addr = 2136, .count = 2 },
	{ .fc = FI, .addr = 2140, .count = 2 },
	{ .fc = FI, .addr = 2144, .count = 2 },
	{ .fc = FI, .addr = 5000, .count = 1 },
	{ .fc = FI, .addr = 5002, .count = 1 },
	{ .fc = FI, .addr = 5004, .count = 1 },
	{ .fc = FI, .addr = 5064, .count = 2 },
	{ .fc = FI, .addr = 5100, .count = 2 },
	/* [doc] blocks: grid side, battery */
	{ .fc = FI, .addr = 3064, .count = 6 },
	{ .fc = FI, .addr = 3100, .count = 2 },
	{ .fc = FI, .addr = 6000, .count = 18 },
	{ .fc = FI, .addr = 6064, .count = 6 },
	{ .fc = FI, .addr = 6100, .count = 2 },
};

const struct profile profile_ferroamp = {
	.name = "ferroamp",
	.brand = "Ferroamp",
	.family = "ferroamp",
	.dtype = "hybrid",
	PROFILE_TABLE(ferroamp_regs),
	PROFILE_BLOCKS(ferroamp_blocks),
	.short_reads_fields = true,
	.short_extra = ferroamp_short_extra,
	.nshort_extra = sizeof(ferroamp_short_extra) / sizeof((ferroamp_short_extra)[0]),
	.frequency = &ferroamp_regs[0],
	.fixup = ferroamp_fixup,
	.encode_fixup = ferroamp_encode_fixup,
};
