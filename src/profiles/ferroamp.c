/* Ferroamp profile.
 * Rows written from the reference register table (inverter-registers.tsv);
 * test_profiles_tsv holds them against it row by row. */
#include "profiles/table.h"

static const struct reg_def ferroamp_regs[] = {
	REG_MAP(2016, FI, 2, F32, WL, KEY, 1, "Hz", "Grid frequency", RF_METER_HZ, 1),
	REG_MAP(5100, FI, 2, F32, WL, KEY, 1, "W", "DC Power", RF_PV_W, -1),
};

static const struct mb_block ferroamp_blocks[] = {
	{ .fc = FI, .addr = 1004, .count = 1 }, { .fc = FI, .addr = 1008, .count = 1 },
	{ .fc = FI, .addr = 2000, .count = 1 }, { .fc = FI, .addr = 2016, .count = 2 },
	{ .fc = FI, .addr = 2032, .count = 2 }, { .fc = FI, .addr = 2036, .count = 2 },
	{ .fc = FI, .addr = 2040, .count = 2 }, { .fc = FI, .addr = 2044, .count = 2 },
	{ .fc = FI, .addr = 2064, .count = 2 }, { .fc = FI, .addr = 2068, .count = 2 },
	{ .fc = FI, .addr = 2100, .count = 2 }, { .fc = FI, .addr = 2104, .count = 2 },
	{ .fc = FI, .addr = 2108, .count = 2 }, { .fc = FI, .addr = 2112, .count = 2 },
	{ .fc = FI, .addr = 2116, .count = 2 }, { .fc = FI, .addr = 2120, .count = 2 },
	{ .fc = FI, .addr = 2124, .count = 2 }, { .fc = FI, .addr = 2128, .count = 2 },
	{ .fc = FI, .addr = 2132, .count = 2 }, { .fc = FI, .addr = 2136, .count = 2 },
	{ .fc = FI, .addr = 2140, .count = 2 }, { .fc = FI, .addr = 2144, .count = 2 },
	{ .fc = FI, .addr = 5000, .count = 1 }, { .fc = FI, .addr = 5002, .count = 1 },
	{ .fc = FI, .addr = 5004, .count = 1 }, { .fc = FI, .addr = 5064, .count = 2 },
	{ .fc = FI, .addr = 5100, .count = 2 },
};

const struct profile profile_ferroamp = {
	.name = "ferroamp",
	.brand = "Ferroamp",
	.family = "ferroamp",
	.dtype = "hybrid",
	PROFILE_TABLE(ferroamp_regs),
	PROFILE_BLOCKS(ferroamp_blocks),
	.frequency = &ferroamp_regs[0],
};
