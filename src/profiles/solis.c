/* Solis profiles: solis (string inverter) and solis_hybrid.
 * Rows written from the reference register table (inverter-registers.tsv);
 * test_profiles_tsv holds them against it row by row. */
#include "profiles/table.h"

static const struct reg_def solis_regs[] = {
	REG(3060, FI, 4, U64, WB, SN, 1, "-", "serial number used as device identity"),
	REG_MAP(3042, FI, 1, U16, WB, KEY, 0.01, "Hz", "Grid frequency", RF_METER_HZ, 1),
	REG_MAP(3006, FI, 2, U32, WB, KEY, 1, "W", "DC Power", RF_PV_W, -1),
};

static const struct mb_block solis_blocks[] = {
	{ .fc = FI, .addr = 35000, .count = 1 },
	{ .fc = FI, .addr = 3000, .count = 50 },
	{ .fc = FI, .addr = 3050, .count = 50 },
	{ .fc = FI, .addr = 3100, .count = 50 },
	{ .fc = FI, .addr = 3150, .count = 12 },
	{ .fc = FI, .addr = 3162, .count = 50 },
	{ .fc = FI, .addr = 3212, .count = 49 },
	{ .fc = FI, .addr = 3261, .count = 27 },
	{ .fc = FI, .addr = 3289, .count = 28 },
	{ .fc = FI, .addr = 3321, .count = 18 },
	{ .fc = FI, .addr = 3339, .count = 50 },
	{ .fc = FI, .addr = 3389, .count = 50 },
	{ .fc = FI, .addr = 3439, .count = 50 },
	{ .fc = FI, .addr = 3489, .count = 11 },
	{ .fc = FI, .addr = 3500, .count = 20 },
	{ .fc = FI, .addr = 3530, .count = 37 },
	{ .fc = FI, .addr = 3570, .count = 50 },
	{ .fc = FI, .addr = 3620, .count = 18 },
	{ .fc = FI, .addr = 3650, .count = 40 },
	{ .fc = FI, .addr = 3700, .count = 23 },
	{ .fc = FI, .addr = 3733, .count = 50 },
	{ .fc = FI, .addr = 3783, .count = 17 },
	{ .fc = FI, .addr = 33601, .count = 50 },
	{ .fc = FI, .addr = 33651, .count = 50 },
	{ .fc = FI, .addr = 33701, .count = 5 },
};

const struct profile profile_solis = {
	.name = "solis",
	.brand = "Solis",
	.family = "solis",
	.dtype = "inverter",
	PROFILE_TABLE(solis_regs),
	PROFILE_BLOCKS(solis_blocks),
	.serial = &solis_regs[0],
	.frequency = &solis_regs[1],
};


static const struct reg_def solis_hybrid_regs[] = {
	REG(33004, FI, 15, STR, WB, SN, 1, "-", "serial number used as device identity"),
	REG_MAP(33094, FI, 1, U16, WB, KEY, 0.01, "Hz", "Grid frequency", RF_METER_HZ, 1),
	REG_MAP(33057, FI, 2, U32, WB, KEY, 1, "W", "DC Power", RF_PV_W, -1),
};

static const struct mb_block solis_hybrid_blocks[] = {
	{ .fc = FI, .addr = 33000, .count = 50 },
	{ .fc = FI, .addr = 33050, .count = 9 },
	{ .fc = FI, .addr = 33071, .count = 50 },
	{ .fc = FI, .addr = 33121, .count = 50 },
	{ .fc = FI, .addr = 33171, .count = 11 },
	{ .fc = FI, .addr = 33200, .count = 50 },
	{ .fc = FI, .addr = 33250, .count = 50 },
	{ .fc = FI, .addr = 33300, .count = 38 },
	{ .fc = FI, .addr = 35000, .count = 1 },
};

const struct profile profile_solis_hybrid = {
	.name = "solis_hybrid",
	.brand = "Solis",
	.family = "solis",
	.dtype = "hybrid",
	PROFILE_TABLE(solis_hybrid_regs),
	PROFILE_BLOCKS(solis_hybrid_blocks),
	.serial = &solis_hybrid_regs[0],
	.frequency = &solis_hybrid_regs[1],
};
