/* LQT40S energy meter profile.
 *
 * Source: the original gateway's profile only (inverter-registers.tsv: maker
 * "LQT", input 0 grid frequency and input 24 active power, big-endian
 * floats).  No Modbus document of the meter, from its maker or anyone else,
 * could be found (searched December 2026: vendor manuals, documentation
 * sites, public code), so neither row is verified: the meter's maker, the
 * function code (one version of the original gateway read these rows as
 * holding registers), the units and the sign of the power are as the
 * reference states them.  egw-sim serves it from this table, so a mistake
 * here cannot show in a test.
 * test_profiles_tsv holds the rows against the reference row by row. */
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
