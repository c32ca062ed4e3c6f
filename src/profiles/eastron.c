/* Eastron SDM630 energy meter profile.
 *
 * Eastron "SDM630 Modbus Protocol" (input registers, function 04): every value
 * is an IEEE-754 float in two registers, high word first (ABCD, big-endian):
 * 30001/3/5 phase 1-3 line-to-neutral volts, 30007/9/11 phase currents (A),
 * 30013/15/17 phase active power (W), 30053 total system power (W),
 * 30071 frequency (Hz), 30073/30075 total import/export active energy (kWh).
 * Zero-based PDU addresses are one lower.  The reference lists the floats
 * word-swapped (CDAB) and the powers in kW: both are mistakes (reference
 * README, "Trust, and known mistakes"); this table reads them big-endian and
 * in W.  Energies are kWh (mul 1000).  Positive power is import.
 * Rows written from the reference register table (inverter-registers.tsv),
 * plus the [doc] rows from the Eastron document; test_profiles_tsv holds them
 * against it row by row and lists each deviation. */
#include "profiles/table.h"

static const struct reg_def sdm630_regs[] = {
	REG(64512, FH, 2, U32, WB, SN, 1, "-", "serial number used as device identity"),
	REG_MAP(12, FI, 2, F32, WB, KEY, 1, "kW", "Phase 1 power", RF_METER_L1_W, 1),
	REG_MAP(14, FI, 2, F32, WB, KEY, 1, "kW", "Phase 2 power", RF_METER_L2_W, 1),
	REG_MAP(16, FI, 2, F32, WB, KEY, 1, "kW", "Phase 3 power", RF_METER_L3_W, 1),
	REG_MAP(52, FI, 2, F32, WB, KEY, 1, "kW", "Total system power", RF_METER_W, 1),
	REG(62, FI, 2, F32, WB, KEY, 1, "-", "Power direction"),
	REG_MAP(70, FI, 2, F32, WB, KEY, 1, "Hz", "Grid frequency", RF_METER_HZ, 1),
	REG_MAP(72, FI, 2, F32, WB, KEY, 1, "kWh", "Total import energy", RF_METER_TOTAL_IMPORT_WH,
		1000),
	REG_MAP(74, FI, 2, F32, WB, KEY, 1, "kWh", "Total export energy", RF_METER_TOTAL_EXPORT_WH,
		1000),
	/* Eastron document, 30001-30012: phase voltages and currents (read with
	 * the 0-99 block) */
	REG_MAP(0, FI, 2, F32, WB, DOC, 1, "V", "Phase 1 line to neutral volts", RF_METER_L1_V, 1),
	REG_MAP(2, FI, 2, F32, WB, DOC, 1, "V", "Phase 2 line to neutral volts", RF_METER_L2_V, 1),
	REG_MAP(4, FI, 2, F32, WB, DOC, 1, "V", "Phase 3 line to neutral volts", RF_METER_L3_V, 1),
	REG_MAP(6, FI, 2, F32, WB, DOC, 1, "A", "Phase 1 current", RF_METER_L1_A, 1),
	REG_MAP(8, FI, 2, F32, WB, DOC, 1, "A", "Phase 2 current", RF_METER_L2_A, 1),
	REG_MAP(10, FI, 2, F32, WB, DOC, 1, "A", "Phase 3 current", RF_METER_L3_A, 1),
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
	.serial = &sdm630_regs[0],
	.frequency = &sdm630_regs[6],
};
