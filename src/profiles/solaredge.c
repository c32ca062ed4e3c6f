/* SolarEdge SunSpec profiles (integer model 103 with scale-factor registers).
 *
 * A device configured with `solaredge` or `solaredge_us` is read through the
 * SunSpec walk (sunspec_base 40000; src/profiles/sunspec.c): egwd finds the
 * "SunS" marker, walks the model chain and decodes every model the inverter
 * serves, the fuller data model of doc/data-model.md (AC power, VA, var, PF,
 * current, per-phase voltages and currents, lifetime energy, DC power,
 * heat-sink temperature; model 160 where a Synergy inverter serves it).  The
 * profile built from the walk keeps this profile's name, family and dtype.
 *
 * SolarEdge "SunSpec Implementation Technical Note" (registers numbered from
 * 1; zero-based here): SunS 40000, common model 40002 (L 65, C_SerialNumber
 * 40052: the device's identity), inverter model 101/102/103 at 40069 (L 50):
 * I_AC_Power 40083 (W_SF 40084), I_AC_Frequency 40085 (40086),
 * I_AC_Energy_WH 40093-40094 acc32 (SF 40095), I_DC_Power 40100 (40101),
 * I_Temp_Sink 40103 (I_Temp_SF 40106).  The same meanings as every SunSpec
 * device: pv.W is the DC power (I_DC_Power, negative while producing),
 * inverter.W the AC power, pv.total_generation_Wh the lifetime AC energy.
 * Meters: SolarEdge chains each meter after the inverter model, its own
 * common block (meter 1 at 40121, L 65) and then its meter model (201-204,
 * meter 1 at 40188, L 105: M_AC_Power 40206, SF 40210, import positive;
 * M_Exported 40226-40227, M_Imported 40234-40235, SF 40242).  The walk reads
 * meter 1 (the first meter model) into meter.*; a meter's common block is
 * walked past, so the serial stays the inverter's.  Without a meter the
 * chain ends after the inverter model and no meter.W nor meter totals are
 * published (meter.Hz stays: the inverter's grid frequency).  Meters 2 and 3
 * (consumption or production meters) are not published.  Not read yet: the
 * StorEdge battery registers (0xE100 on, outside the SunSpec chain).
 *
 * The rows below are the documented map's registers as the reference
 * register table (inverter-registers.tsv) lists them: test_profiles_tsv
 * holds them against it row by row, and test_profiles checks that the walk
 * of the documented chain decodes each of their fields from the same
 * register, type and scale factor. */
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

/* The technical note's chain with meter 1: common model, inverter model 103,
 * the meter's common block and its model 203. */
static const struct sunspec_model_hdr solaredge_chain[] = {
	{ .id = 1, .addr = 40002, .len = 65 },
	{ .id = 103, .addr = 40069, .len = 50 },
	{ .id = 1, .addr = 40121, .len = 65 },
	{ .id = 203, .addr = 40188, .len = 105 },
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
	.sunspec_base = 40000,
	.ss_models = solaredge_chain,
	.nss_models = sizeof(solaredge_chain) / sizeof(solaredge_chain[0]),
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
	.sunspec_base = 40000,
	.ss_models = solaredge_chain,
	.nss_models = sizeof(solaredge_chain) / sizeof(solaredge_chain[0]),
};
