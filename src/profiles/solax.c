/* Solax profile (the reference spells it "Solax").
 * Rows written from the reference register table (inverter-registers.tsv);
 * test_profiles_tsv holds them against it row by row.
 *
 * SolaX "Hybrid X1/X3-G4 ModbusTCP&RTU" protocol, input registers: 0x0002
 * inverter power (S16, W, output positive), 0x0003/0x0004 PV1/PV2 voltage
 * (0.1 V), 0x0005/0x0006 PV1/PV2 current (0.1 A), 0x0007 grid frequency
 * (0.01 Hz), 0x0008 inverter temperature (S16, 1 degC), 0x000A/0x000B PV1/PV2
 * power (W); holding 0x0000-0x0006 the serial (14 ASCII).  The reference's
 * rows agree; the inverter power, PV voltages and currents and temperature
 * are [doc] rows in the first block. */
#include "profiles/table.h"

static const struct reg_def solax_regs[] = {
	REG(0, FH, 7, STR, WB, SN, 1, "-", "serial number used as device identity"),
	REG_MAP(7, FI, 1, U16, WB, KEY, 0.01, "Hz", "Grid frequency", RF_METER_HZ, 1),
	REG_SUM(10, FI, 1, U16, WB, KEY, 1, "W", "DC Power 1", RF_PV_W, -1),
	REG_SUM(11, FI, 1, U16, WB, KEY, 1, "W", "DC Power 2", RF_PV_W, -1),
	REG_MAPF(2, FI, 1, I16, WB, DOC, 1, "W", "inverter power", RF_INVERTER_W, -1, 0, REG_F_KEY),
	REG_MAP(3, FI, 1, U16, WB, DOC, 0.1, "V", "PV1 voltage", RF_PV_MPPT1_V, 1),
	REG_MAP(4, FI, 1, U16, WB, DOC, 0.1, "V", "PV2 voltage", RF_PV_MPPT2_V, 1),
	REG_MAP(5, FI, 1, U16, WB, DOC, 0.1, "A", "PV1 current", RF_PV_MPPT1_A, 1),
	REG_MAP(6, FI, 1, U16, WB, DOC, 0.1, "A", "PV2 current", RF_PV_MPPT2_A, 1),
	REG_MAP(8, FI, 1, I16, WB, DOC, 1, "C", "inverter temperature", RF_PV_HEATSINK_C, 1),
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
