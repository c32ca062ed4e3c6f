/* SolarEdge SunSpec profiles (integer model 103 with scale-factor registers).
 *
 * SolarEdge "SunSpec Implementation Technical Note" (registers numbered from
 * 1; zero-based here): SunS 40000, common model 40002 (L 65), inverter model
 * 101/102/103 at 40069: I_AC_Power 40083 (W_SF 40084), I_AC_Frequency 40085
 * (40086), I_AC_Energy_WH 40093-40094 acc32 (SF 40095), I_DC_Power 40100
 * (40101), I_Temp_Sink 40103 (I_Temp_SF 40106).  The same meanings as the
 * generic sunspec profile: pv.W is the DC power (I_DC_Power), inverter.W the
 * AC power, pv.total_generation_Wh the lifetime AC energy.
 * Meter 1, when installed, follows the inverter model: its common block at
 * 40121 and its meter model (201-204, same layout) at 40188: M_AC_Power 40206
 * (SF 40210, import positive), M_Exported 40226-40227 and M_Imported
 * 40234-40235 (acc32, SF 40242).  Without a meter those addresses are past
 * the end marker (the inverter answers them with zeros, or exception 2):
 * solaredge_fixup publishes the meter's values only when 40188 holds a
 * meter model id (201-204).
 * Rows written from the reference register table (inverter-registers.tsv);
 * test_profiles_tsv holds them against it row by row. */
#include <math.h>

#include "profiles/table.h"

#define METER1_MODEL 40188

static int solaredge_fixup(const struct profile *p, const struct block_result *res, unsigned nres,
			   struct reading *r)
{
	static const struct reg_def id = { .addr = METER1_MODEL,
					   .fc = REG_FC_HOLDING,
					   .words = 1,
					   .type = REG_U16,
					   .scale = 1 };
	const uint16_t *w = profile_find_words(&id, res, nres);

	(void)p;
	if (!w || w[0] < 201 || w[0] > 204) {
		r->v[RF_METER_W] = NAN;
		r->v[RF_METER_TOTAL_IMPORT_WH] = NAN;
		r->v[RF_METER_TOTAL_EXPORT_WH] = NAN;
	}
	return 0;
}

/* The model 103 points the technical note lists beyond the reference's rows. */
#define SE_SF_ROW(a, sfa, t, w, fld, mu, u, nm) \
	{ \
		.addr = (a), .fc = FH, .words = (w), .type = REG_##t, .order = WB, .tag = TAG_DOC, \
		.scale = 0, .sf_addr = (sfa), .field = (fld), .mul = (mu), .unit = (u), \
		.name = (nm) \
	}
#define SE_DOC_ROWS \
	{ .addr = 40083, \
	  .fc = FH, \
	  .words = 1, \
	  .type = REG_I16, \
	  .order = WB, \
	  .tag = TAG_DOC, \
	  .flags = REG_F_KEY, \
	  .scale = 0, \
	  .sf_addr = 40084, \
	  .field = RF_INVERTER_W, \
	  .mul = -1, \
	  .unit = "W", \
	  .name = "I_AC_Power (short polls too)" }, \
		REG(40084, FH, 1, I16, WB, DOC, 1, "-", "I_AC_Power_SF"), \
		SE_SF_ROW(40093, 40095, U32, 2, RF_PV_TOTAL_GENERATION_WH, 1, "Wh", \
			  "I_AC_Energy_WH"), \
		REG(40095, FH, 1, I16, WB, DOC, 1, "-", "I_AC_Energy_WH_SF"), \
		SE_SF_ROW(40103, 40106, I16, 1, RF_PV_HEATSINK_C, 1, "C", "I_Temp_Sink"), \
		SE_SF_ROW(40206, 40210, I16, 1, RF_METER_W, 1, "W", "M_AC_Power"), \
		REG(40210, FH, 1, I16, WB, DOC, 1, "-", "M_AC_Power_SF"), \
		SE_SF_ROW(40226, 40242, U32, 2, RF_METER_TOTAL_EXPORT_WH, 1, "Wh", "M_Exported"), \
		SE_SF_ROW(40234, 40242, U32, 2, RF_METER_TOTAL_IMPORT_WH, 1, "Wh", "M_Imported"), \
		REG(40242, FH, 1, I16, WB, DOC, 1, "-", "M_Energy_W_SF"), \
	{ \
		.addr = METER1_MODEL, .fc = FH, .words = 1, .type = REG_U16, .order = WB, \
		.tag = TAG_DOC, .flags = REG_F_CONST, .add = 203, .scale = 1, \
		.sf_addr = REG_NO_SF, .field = REG_NO_FIELD, .unit = "-", \
		.name = "meter 1 model id (201-204)" \
	}

static const struct reg_def solaredge_regs[] = {
	REG(40052, FH, 16, STR, WB, SN, 1, "-", "serial number used as device identity"),
	REG_SF_MAP(40085, FH, 1, U16, WB, KEY, 0.01, "Hz", "Grid frequency", 40086, RF_METER_HZ, 1),
	REG(40086, FH, 1, I16, WB, SF, 1, "-", "SunSpec scale-factor exponent for register 40085"),
	REG_SF_MAP(40100, FH, 1, I16, WB, KEY, 0.01, "W", "DC Power", 40101, RF_PV_W, -1),
	REG(40101, FH, 1, I16, WB, SF, 1, "-", "SunSpec scale-factor exponent for register 40100"),
	SE_DOC_ROWS,
};

static const struct mb_block solaredge_blocks[] = {
	{ .fc = FH, .addr = 40000, .count = 69 }, { .fc = FH, .addr = 40069, .count = 33 },
	{ .fc = FH, .addr = 40106, .count = 3 },  { .fc = FH, .addr = 40121, .count = 70 },
	{ .fc = FH, .addr = 40102, .count = 5 },  /* [doc] I_Temp_Sink and I_Temp_SF */
	{ .fc = FH, .addr = 40188, .count = 55 }, /* [doc] meter 1 model */
};

const struct profile profile_solaredge = {
	.name = "solaredge",
	.brand = "SolarEdge",
	.family = "sunspec",
	.dtype = "inverter",
	PROFILE_TABLE(solaredge_regs),
	PROFILE_BLOCKS(solaredge_blocks),
	.serial = &solaredge_regs[0],
	.frequency = &solaredge_regs[1],
	.fixup = solaredge_fixup,
};


static const struct reg_def solaredge_us_regs[] = {
	REG(40052, FH, 16, STR, WB, SN, 1, "-", "serial number used as device identity"),
	REG_SF_MAP(40085, FH, 1, U16, WB, KEY, 0.001, "Hz", "Grid frequency", 40086, RF_METER_HZ,
		   1),
	REG(40086, FH, 1, I16, WB, SF, 1, "-", "SunSpec scale-factor exponent for register 40085"),
	REG_SF_MAP(40100, FH, 1, I16, WB, KEY, 0.001, "W", "DC Power", 40101, RF_PV_W, -1),
	REG(40101, FH, 1, I16, WB, SF, 1, "-", "SunSpec scale-factor exponent for register 40100"),
	SE_DOC_ROWS,
};

static const struct mb_block solaredge_us_blocks[] = {
	{ .fc = FH, .addr = 40000, .count = 69 }, { .fc = FH, .addr = 40069, .count = 33 },
	{ .fc = FH, .addr = 40106, .count = 3 },  { .fc = FH, .addr = 40121, .count = 70 },
	{ .fc = FH, .addr = 40102, .count = 5 },  /* [doc] I_Temp_Sink and I_Temp_SF */
	{ .fc = FH, .addr = 40188, .count = 55 }, /* [doc] meter 1 model */
};

const struct profile profile_solaredge_us = {
	.name = "solaredge_us",
	.brand = "SolarEdge",
	.family = "sunspec",
	.dtype = "inverter",
	PROFILE_TABLE(solaredge_us_regs),
	PROFILE_BLOCKS(solaredge_us_blocks),
	.serial = &solaredge_us_regs[0],
	.frequency = &solaredge_us_regs[1],
	.fixup = solaredge_fixup,
};
