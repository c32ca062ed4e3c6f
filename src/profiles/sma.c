/* SMA profile.
 * Rows written from the reference register table (inverter-registers.tsv);
 * test_profiles_tsv holds them against it row by row. */
#include "profiles/table.h"

static const struct reg_def sma_regs[] = {
	REG(40067, FI, 2, U32, WB, SN, 1, "-", "serial number used as device identity"),
	REG_MAP(30803, FI, 2, U32, WB, KEY, 0.01, "Hz", "Grid frequency", RF_METER_HZ, 1),
	REG_MAP(30775, FI, 2, I32, WB, KEY, 1, "W", "DC Power", RF_PV_W, -1),
};

static const struct mb_block sma_blocks[] = {
	{ .fc = FI, .addr = 30000, .count = 10 },
	{ .fc = FI, .addr = 30051, .count = 10 },
	{ .fc = FI, .addr = 30775, .count = 50 },
	{ .fc = FI, .addr = 31085, .count = 2 },
};

const struct profile profile_sma = {
	.name = "sma",
	.brand = "SMA",
	.family = "sma",
	.dtype = "inverter",
	PROFILE_TABLE(sma_regs),
	PROFILE_BLOCKS(sma_blocks),
	.blocks_every_poll = false,
	.serial = &sma_regs[0],
	.frequency = &sma_regs[1],
};
