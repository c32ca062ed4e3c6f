/* GoodWe profile.
 * Rows written from the reference register table (inverter-registers.tsv);
 * test_profiles_tsv holds them against it row by row. */
#include "profiles/table.h"

static const struct reg_def goodwe_regs[] = {
	REG(35003, FH, 8, STR, WB, SN, 1, "-", "serial number used as device identity"),
	REG_MAP(35123, FH, 1, U16, WB, KEY, 0.01, "Hz", "Grid frequency", RF_METER_HZ, 1),
	REG_MAP(35138, FH, 1, I16, WB, KEY, 0.1, "W", "PV 1 Power", RF_PV_W, -1),
};

static const struct mb_block goodwe_blocks[] = {
	{ .fc = FH, .addr = 35000, .count = 40 },
	{ .fc = FH, .addr = 35100, .count = 40 },
	{ .fc = FH, .addr = 35141, .count = 40 },
	{ .fc = FH, .addr = 35182, .count = 40 },
	{ .fc = FH, .addr = 36000, .count = 44 },
	{ .fc = FH, .addr = 37000, .count = 23 },
};

const struct profile profile_goodwe = {
	.name = "goodwe",
	.brand = "GoodWe",
	.family = "goodwe",
	.dtype = "inverter",
	PROFILE_TABLE(goodwe_regs),
	PROFILE_BLOCKS(goodwe_blocks),
	.blocks_every_poll = false,
	.serial = &goodwe_regs[0],
	.frequency = &goodwe_regs[1],
};
