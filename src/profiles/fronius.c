/* Fronius SunSpec profiles: float model (fronius) and integer+sf model (fronius_sf).
 *
 * A device configured with `fronius` or `fronius_sf` is read through the
 * SunSpec walk (sunspec_base 40000; src/profiles/sunspec.c): egwd walks the
 * model chain and decodes every model the inverter serves (101-103 or
 * 111-113, 120, 122, 124, 160, ...: the fuller data model of
 * doc/data-model.md); the profile built from the walk keeps this profile's
 * name, family and dtype.
 *
 * Fronius "Datamanager Modbus TCP & RTU" / SunSpec inverter models: with the
 * "float" setting the map is SunS at 40000, common model 1 (40002, L 65,
 * serial at 40052), inverter model 111/112/113 at 40069 (L 60: W at
 * 40091-40092, Hz 40093-40094, WH 40101, DCW 40107-40108, TmpSnk 40111); with
 * "int+SF" model 101/102/103 at 40069 (L 50: W 40083, W_SF 40084, Hz 40085,
 * Hz_SF 40086, WH 40093, DCW 40100, DCW_SF 40101, TmpSnk 40103); then models
 * 120, 121, 122, 123 and 160 in the document's order, and the end marker.
 * Symo and Primo often report DCW as "not implemented" (NaN / 0x8000): pv.W
 * is then absent; the AC power W is always there (reference README, "Trust,
 * and known mistakes") and is inverter.W.  A Fronius smart meter is a device
 * of its own (unit 200 and up), not part of the inverter's chain.
 *
 * The rows below are the documented map's registers as the reference
 * register table (inverter-registers.tsv) lists them: test_profiles_tsv
 * holds them against it row by row, and test_profiles checks that the walk
 * of the documented chain decodes each of their fields from the same
 * register, type and scale factor. */
#include "profiles/table.h"

/* The document's chains: common model, inverter model 113 (float) or 103
 * (int+SF), nameplate 120, basic settings 121, extended measurements 122,
 * immediate controls 123, multiple MPPT 160. */
static const struct sunspec_model_hdr fronius_chain[] = {
	{ .id = 1, .addr = 40002, .len = 65 },   { .id = 113, .addr = 40069, .len = 60 },
	{ .id = 120, .addr = 40131, .len = 26 }, { .id = 121, .addr = 40159, .len = 30 },
	{ .id = 122, .addr = 40191, .len = 44 }, { .id = 123, .addr = 40237, .len = 24 },
	{ .id = 160, .addr = 40263, .len = 48 },
};
static const struct sunspec_model_hdr fronius_sf_chain[] = {
	{ .id = 1, .addr = 40002, .len = 65 },   { .id = 103, .addr = 40069, .len = 50 },
	{ .id = 120, .addr = 40121, .len = 26 }, { .id = 121, .addr = 40149, .len = 30 },
	{ .id = 122, .addr = 40181, .len = 44 }, { .id = 123, .addr = 40227, .len = 24 },
	{ .id = 160, .addr = 40253, .len = 48 },
};

static const struct reg_def fronius_regs[] = {
	REG(40052, FH, 16, STR, WB, SN, 1, "-", "serial number used as device identity"),
	REG_MAP(40093, FH, 2, F32, WB, KEY, 1, "Hz", "Grid frequency", RF_METER_HZ, 1),
	REG_MAP(40107, FH, 2, F32, WB, KEY, 1, "W", "DC Power", RF_PV_W, -1),
	REG_MAPF(40091, FH, 2, F32, WB, DOC, 1, "W", "W AC power (model 111-113)", RF_INVERTER_W,
		 -1, 0, REG_F_KEY),
	REG_MAP(40101, FH, 2, F32, WB, DOC, 1, "Wh", "WH lifetime AC energy (model 111-113)",
		RF_PV_TOTAL_GENERATION_WH, 1),
	REG_MAP(40111, FH, 2, F32, WB, DOC, 1, "C", "TmpSnk heat-sink temperature (model 111-113)",
		RF_PV_HEATSINK_C, 1),
};

static const struct mb_block fronius_blocks[] = {
	{ .fc = FH, .addr = 40000, .count = 125 },
};

const struct profile profile_fronius = {
	.name = "fronius",
	.brand = "Fronius",
	.family = "sunspec",
	.dtype = "inverter",
	PROFILE_TABLE(fronius_regs),
	PROFILE_BLOCKS(fronius_blocks),
	.serial = &fronius_regs[0],
	.frequency = &fronius_regs[1],
	.sunspec_base = 40000,
	.ss_models = fronius_chain,
	.nss_models = sizeof(fronius_chain) / sizeof(fronius_chain[0]),
};


static const struct reg_def fronius_sf_regs[] = {
	REG(40052, FH, 16, STR, WB, SN, 1, "-", "serial number used as device identity"),
	REG_SF_MAP(40085, FH, 1, U16, WB, KEY, 0.01, "Hz", "Grid frequency", 40086, RF_METER_HZ, 1),
	REG(40086, FH, 1, I16, WB, SF, 1, "-", "SunSpec scale-factor exponent for register 40085"),
	REG_SF_MAP(40100, FH, 1, I16, WB, KEY, 0.01, "W", "DC Power", 40101, RF_PV_W, -1),
	REG(40101, FH, 1, I16, WB, SF, 1, "-", "SunSpec scale-factor exponent for register 40100"),
	{ .addr = 40083,
	  .fc = FH,
	  .words = 1,
	  .type = REG_I16,
	  .order = WB,
	  .tag = TAG_DOC,
	  .flags = REG_F_KEY,
	  .scale = 0,
	  .sf_addr = 40084,
	  .field = RF_INVERTER_W,
	  .mul = -1,
	  .unit = "W",
	  .name = "W AC power (model 101-103)" },
	REG(40084, FH, 1, I16, WB, DOC, 1, "-", "W_SF scale factor of 40083"),
	{ .addr = 40093,
	  .fc = FH,
	  .words = 2,
	  .type = REG_U32,
	  .order = WB,
	  .tag = TAG_DOC,
	  .scale = 0,
	  .sf_addr = 40095,
	  .field = RF_PV_TOTAL_GENERATION_WH,
	  .mul = 1,
	  .unit = "Wh",
	  .name = "WH lifetime AC energy (model 101-103)" },
	REG(40095, FH, 1, I16, WB, DOC, 1, "-", "WH_SF scale factor of 40093"),
	{ .addr = 40103,
	  .fc = FH,
	  .words = 1,
	  .type = REG_I16,
	  .order = WB,
	  .tag = TAG_DOC,
	  .scale = 0,
	  .sf_addr = 40106,
	  .field = RF_PV_HEATSINK_C,
	  .mul = 1,
	  .unit = "C",
	  .name = "TmpSnk heat-sink temperature (model 101-103)" },
	REG(40106, FH, 1, I16, WB, DOC, 1, "-", "Tmp_SF scale factor of 40103"),
};

static const struct mb_block fronius_sf_blocks[] = {
	{ .fc = FH, .addr = 40000, .count = 125 },
};

const struct profile profile_fronius_sf = {
	.name = "fronius_sf",
	.brand = "Fronius",
	.family = "sunspec",
	.dtype = "inverter",
	PROFILE_TABLE(fronius_sf_regs),
	PROFILE_BLOCKS(fronius_sf_blocks),
	.serial = &fronius_sf_regs[0],
	.frequency = &fronius_sf_regs[1],
	.sunspec_base = 40000,
	.ss_models = fronius_sf_chain,
	.nss_models = sizeof(fronius_sf_chain) / sizeof(fronius_sf_chain[0]),
};
