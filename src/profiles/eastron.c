/* Eastron SDM630 energy meter profile.
 *
 * The reference lists the power registers in kW; the SDM630 reports them in W,
 * so they are taken as W (mul 1).  Energies are kWh (mul 1000).  The floats are
 * word-swapped exactly as the reference records them.
 * Rows written from the reference register table (inverter-registers.tsv);
 * test_profiles_tsv holds them against it row by row. */
#include "profiles/table.h"

static const struct reg_def sdm630_regs[] = {
	REG(64512, FH, 2, U32, WB, SN, 1, "-", "serial number used as device identity"),
	REG_MAP(12, FI, 2, F32, WL, KEY, 1, "kW", "Phase 1 power", RF_METER_L1_W, 1),
	REG_MAP(14, FI, 2, F32, WL, KEY, 1, "kW", "Phase 2 power", RF_METER_L2_W, 1),
	REG_MAP(16, FI, 2, F32, WL, KEY, 1, "kW", "Phase 3 power", RF_METER_L3_W, 1),
	REG_MAP(52, FI, 2, F32, WL, KEY, 1, "kW", "Total system power", RF_METER_W, 1),
	REG(62, FI, 2, F32, WL, KEY, 1, "-", "Power direction"),
	REG_MAP(70, FI, 2, F32, WL, KEY, 1, "Hz", "Grid frequency", RF_METER_HZ, 1),
	REG_MAP(72, FI, 2, F32, WL, KEY, 1, "kWh", "Total import energy", RF_METER_TOTAL_IMPORT_WH, 1000),
	REG_MAP(74, FI, 2, F32, WL, KEY, 1, "kWh", "Total export energy", RF_METER_TOTAL_EXPORT_WH, 1000),
};

static const struct mb_block sdm630_blocks[] = {
	{ .fc = FI, .addr = 0, .count = 100 },
	{ .fc = FI, .addr = 100, .count = 100 },
	{ .fc = FI, .addr = 200, .count = 100 },
	{ .fc = FI, .addr = 300, .count = 100 },
};

const struct profile profile_sdm630 = {
	.name = "sdm630",
	.brand = "Eastron",
	.family = "sdm630",
	.dtype = "meter",
	PROFILE_TABLE(sdm630_regs),
	PROFILE_BLOCKS(sdm630_blocks),
	.blocks_every_poll = false,
	.serial = &sdm630_regs[0],
	.frequency = &sdm630_regs[6],
};
