/* Fronius SunSpec profiles: float model (fronius) and integer+sf model (fronius_sf).
 * Rows written from the reference register table (inverter-registers.tsv);
 * test_profiles_tsv holds them against it row by row. */
#include "profiles/table.h"

static const struct reg_def fronius_regs[] = {
	REG(40052, FH, 16, STR, WB, SN, 1, "-", "serial number used as device identity"),
	REG_MAP(40093, FH, 2, F32, WB, KEY, 1, "Hz", "Grid frequency", RF_METER_HZ, 1),
	REG_MAP(40107, FH, 2, F32, WB, KEY, 1, "W", "DC Power", RF_PV_W, -1),
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
	.blocks_every_poll = false,
	.serial = &fronius_regs[0],
	.frequency = &fronius_regs[1],
};


static const struct reg_def fronius_sf_regs[] = {
	REG(40052, FH, 16, STR, WB, SN, 1, "-", "serial number used as device identity"),
	REG_SF_MAP(40085, FH, 1, U16, WB, KEY, 0.01, "Hz", "Grid frequency", 40086, RF_METER_HZ, 1),
	REG(40086, FH, 1, I16, WB, SF, 1, "-", "SunSpec scale-factor exponent for register 40085"),
	REG_SF_MAP(40100, FH, 1, I16, WB, KEY, 0.01, "W", "DC Power", 40101, RF_PV_W, -1),
	REG(40101, FH, 1, I16, WB, SF, 1, "-", "SunSpec scale-factor exponent for register 40100"),
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
	.blocks_every_poll = false,
	.serial = &fronius_sf_regs[0],
	.frequency = &fronius_sf_regs[1],
};
