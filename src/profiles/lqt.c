/* LQT40S energy meter profile.
 * Rows written from the reference register table (inverter-registers.tsv);
 * test_profiles_tsv holds them against it row by row. */
#include "profiles/table.h"

static const struct reg_def lqt40s_regs[] = {
	REG_MAP(0, FI, 2, F32, WB, KEY, 1, "Hz", "Grid frequency", RF_METER_HZ, 1),
	REG_MAP(24, FI, 2, F32, WB, KEY, 1, "W", "Active Power", RF_METER_W, 1),
};

static const struct mb_block lqt40s_blocks[] = {
	{ .fc = FI, .addr = 0, .count = 30 },
};

const struct profile profile_lqt40s = {
	.name = "lqt40s",
	.brand = "LQT",
	.family = "lqt40s",
	.dtype = "meter",
	PROFILE_TABLE(lqt40s_regs),
	PROFILE_BLOCKS(lqt40s_blocks),
	.frequency = &lqt40s_regs[0],
};
