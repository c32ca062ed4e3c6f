/* Solax profile (the reference spells it "Solax").
 * Rows written from the reference register table (inverter-registers.tsv);
 * test_profiles_tsv holds them against it row by row. */
#include "profiles/table.h"

static const struct reg_def solax_regs[] = {
	REG(0, FH, 7, STR, WB, SN, 1, "-", "serial number used as device identity"),
	REG_MAP(7, FI, 1, U16, WB, KEY, 0.01, "Hz", "Grid frequency", RF_METER_HZ, 1),
	REG_SUM(10, FI, 1, U16, WB, KEY, 1, "W", "DC Power 1", RF_PV_W, -1),
	REG_SUM(11, FI, 1, U16, WB, KEY, 1, "W", "DC Power 2", RF_PV_W, -1),
};

static const struct mb_block solax_blocks[] = {
	{ .fc = FI, .addr = 0, .count = 110 },
	{ .fc = FI, .addr = 110, .count = 110 },
	{ .fc = FI, .addr = 220, .count = 110 },
};

const struct profile profile_solax = {
	.name = "solax",
	.brand = "Solax",
	.family = "solax",
	.dtype = "inverter",
	PROFILE_TABLE(solax_regs),
	PROFILE_BLOCKS(solax_blocks),
	.serial = &solax_regs[0],
	.frequency = &solax_regs[1],
};
