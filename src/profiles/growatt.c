/* Growatt profile.
 * Rows written from the reference register table (inverter-registers.tsv);
 * test_profiles_tsv holds them against it row by row. */
#include "profiles/table.h"

static const struct reg_def growatt_regs[] = {
	REG(209, FH, 15, STR, WB, SN, 1, "-", "serial number used as device identity"),
	REG_MAP(37, FI, 1, U16, WB, KEY, 0.01, "Hz", "Grid frequency", RF_METER_HZ, 1),
	REG_MAP(3001, FI, 2, U32, WB, KEY, 0.1, "W", "DC Power", RF_PV_W, -1),
};

static const struct mb_block growatt_blocks[] = {
	{ .fc = FI, .addr = 0, .count = 125 },
	{ .fc = FI, .addr = 125, .count = 125 },
	{ .fc = FI, .addr = 1000, .count = 125 },
	{ .fc = FI, .addr = 3000, .count = 125 },
};

const struct profile profile_growatt = {
	.name = "growatt",
	.brand = "Growatt",
	.family = "growatt",
	.dtype = "inverter",
	PROFILE_TABLE(growatt_regs),
	PROFILE_BLOCKS(growatt_blocks),
	.serial = &growatt_regs[0],
	.frequency = &growatt_regs[1],
};
