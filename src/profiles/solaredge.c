/* SolarEdge SunSpec profiles (integer model 103 with scale-factor registers).
 * Rows written from the reference register table (inverter-registers.tsv);
 * test_profiles_tsv holds them against it row by row. */
#include "profiles/table.h"

static const struct reg_def solaredge_regs[] = {
	REG(40052, FH, 16, STR, WB, SN, 1, "-", "serial number used as device identity"),
	REG_SF_MAP(40085, FH, 1, U16, WB, KEY, 0.01, "Hz", "Grid frequency", 40086, RF_METER_HZ, 1),
	REG(40086, FH, 1, I16, WB, SF, 1, "-", "SunSpec scale-factor exponent for register 40085"),
	REG_SF_MAP(40100, FH, 1, I16, WB, KEY, 0.01, "W", "DC Power", 40101, RF_PV_W, -1),
	REG(40101, FH, 1, I16, WB, SF, 1, "-", "SunSpec scale-factor exponent for register 40100"),
};

static const struct mb_block solaredge_blocks[] = {
	{ .fc = FH, .addr = 40000, .count = 69 },
	{ .fc = FH, .addr = 40069, .count = 33 },
	{ .fc = FH, .addr = 40106, .count = 3 },
	{ .fc = FH, .addr = 40121, .count = 70 },
};

const struct profile profile_solaredge = {
	.name = "solaredge",
	.brand = "SolarEdge",
	.family = "sunspec",
	.dtype = "inverter",
	PROFILE_TABLE(solaredge_regs),
	PROFILE_BLOCKS(solaredge_blocks),
	.blocks_every_poll = false,
	.serial = &solaredge_regs[0],
	.frequency = &solaredge_regs[1],
};


static const struct reg_def solaredge_us_regs[] = {
	REG(40052, FH, 16, STR, WB, SN, 1, "-", "serial number used as device identity"),
	REG_SF_MAP(40085, FH, 1, U16, WB, KEY, 0.001, "Hz", "Grid frequency", 40086, RF_METER_HZ, 1),
	REG(40086, FH, 1, I16, WB, SF, 1, "-", "SunSpec scale-factor exponent for register 40085"),
	REG_SF_MAP(40100, FH, 1, I16, WB, KEY, 0.001, "W", "DC Power", 40101, RF_PV_W, -1),
	REG(40101, FH, 1, I16, WB, SF, 1, "-", "SunSpec scale-factor exponent for register 40100"),
};

static const struct mb_block solaredge_us_blocks[] = {
	{ .fc = FH, .addr = 40000, .count = 69 },
	{ .fc = FH, .addr = 40069, .count = 33 },
	{ .fc = FH, .addr = 40106, .count = 3 },
	{ .fc = FH, .addr = 40121, .count = 70 },
};

const struct profile profile_solaredge_us = {
	.name = "solaredge_us",
	.brand = "SolarEdge",
	.family = "sunspec",
	.dtype = "inverter",
	PROFILE_TABLE(solaredge_us_regs),
	PROFILE_BLOCKS(solaredge_us_blocks),
	.blocks_every_poll = false,
	.serial = &solaredge_us_regs[0],
	.frequency = &solaredge_us_regs[1],
};
