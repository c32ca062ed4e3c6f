/* Solis profiles: solis (string inverter) and solis_hybrid.
 * Rows written from the reference register table (inverter-registers.tsv);
 * test_profiles_tsv holds them against it row by row.
 *
 * solis: Solis "RS485 MODBUS Communication Protocol" for grid-tied string
 * inverters (input registers, numbered from 1 there: document 3043 is 3042
 * here; 32-bit values high word first): 3004-3005 active power (W, output
 * positive), 3006-3007 total DC output power (W), 3008-3009 total energy
 * (kWh), 3021/3022 DC voltage / current 1 (0.1 V, 0.1 A), 3023/3024 input 2,
 * 3041 inverter temperature (0.1 degC), 3042 grid frequency (0.01 Hz),
 * 3060-3063 serial, 3014 energy today (U16, 0.1 kWh; document 3015).  The
 * reference maps only the frequency and the DC power; the rest are [doc]
 * rows, inside the blocks the reference already reads. */
#include "profiles/table.h"

static const struct reg_def solis_regs[] = {
	REG(3060, FI, 4, U64, WB, SN, 1, "-", "serial number used as device identity"),
	REG_MAP(3042, FI, 1, U16, WB, KEY, 0.01, "Hz", "Grid frequency", RF_METER_HZ, 1),
	REG_MAP(3006, FI, 2, U32, WB, KEY, 1, "W", "DC Power", RF_PV_W, -1),
	REG_MAPF(3004, FI, 2, I32, WB, DOC, 1, "W", "active power", RF_INVERTER_W, -1, 0,
		 REG_F_KEY),
	REG_MAP(3008, FI, 2, U32, WB, DOC, 1, "kWh", "total energy", RF_PV_TOTAL_GENERATION_WH,
		1000),
	REG_MAP(3014, FI, 1, U16, WB, DOC, 0.1, "kWh", "energy today", RF_PV_DAILY_GENERATION_WH,
		1000),
	REG_MAP(3021, FI, 1, U16, WB, DOC, 0.1, "V", "DC voltage 1", RF_PV_MPPT1_V, 1),
	REG_MAP(3022, FI, 1, U16, WB, DOC, 0.1, "A", "DC current 1", RF_PV_MPPT1_A, 1),
	REG_MAP(3023, FI, 1, U16, WB, DOC, 0.1, "V", "DC voltage 2", RF_PV_MPPT2_V, 1),
	REG_MAP(3024, FI, 1, U16, WB, DOC, 0.1, "A", "DC current 2", RF_PV_MPPT2_A, 1),
	REG_MAP(3041, FI, 1, I16, WB, DOC, 0.1, "C", "inverter temperature", RF_PV_HEATSINK_C, 1),
};

static const struct mb_block solis_blocks[] = {
	{ .fc = FI, .addr = 35000, .count = 1 },  { .fc = FI, .addr = 3000, .count = 50 },
	{ .fc = FI, .addr = 3050, .count = 50 },  { .fc = FI, .addr = 3100, .count = 50 },
	{ .fc = FI, .addr = 3150, .count = 12 },  { .fc = FI, .addr = 3162, .count = 50 },
	{ .fc = FI, .addr = 3212, .count = 49 },  { .fc = FI, .addr = 3261, .count = 27 },
	{ .fc = FI, .addr = 3289, .count = 28 },  { .fc = FI, .addr = 3321, .count = 18 },
	{ .fc = FI, .addr = 3339, .count = 50 },  { .fc = FI, .addr = 3389, .count = 50 },
	{ .fc = FI, .addr = 3439, .count = 50 },  { .fc = FI, .addr = 3489, .count = 11 },
	{ .fc = FI, .addr = 3500, .count = 20 },  { .fc = FI, .addr = 3530, .count = 37 },
	{ .fc = FI, .addr = 3570, .count = 50 },  { .fc = FI, .addr = 3620, .count = 18 },
	{ .fc = FI, .addr = 3650, .count = 40 },  { .fc = FI, .addr = 3700, .count = 23 },
	{ .fc = FI, .addr = 3733, .count = 50 },  { .fc = FI, .addr = 3783, .count = 17 },
	{ .fc = FI, .addr = 33601, .count = 50 }, { .fc = FI, .addr = 33651, .count = 50 },
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

/* solis_hybrid: Solis "RS485_MODBUS RTU Hybrid Inverter Protocol" (Ver 3.2;
 * input registers at the addresses the document lists, 32-bit values high
 * word first): 33029-33030 PV total energy (U32, kWh), 33035 today's energy
 * generation (U16, 0.1 kWh), 33049/33050 PV1
 * voltage / current (0.1 V, 0.1 A), 33051/33052 PV2, 33057-33058 total PV
 * power (U32, W), 33079-33080 active power (S32, W; output positive as on
 * the string inverters' 3004), 33093 inverter temperature (S16, 0.1 degC),
 * 33094 grid frequency (0.01 Hz), 33004-33019 serial.  The battery
 * (33133-33166) and meter (33126-33131, 33169-33176) registers are not
 * mapped yet: their signs are given by separate direction registers this
 * table does not decode, so nothing is published for them rather than a
 * value of the wrong sign.  The reference maps only the frequency and the
 * PV power; the rest are [doc] rows inside the blocks it already reads. */
static const struct reg_def solis_hybrid_regs[] = {
	REG(33004, FI, 15, STR, WB, SN, 1, "-", "serial number used as device identity"),
	REG_MAP(33094, FI, 1, U16, WB, KEY, 0.01, "Hz", "Grid frequency", RF_METER_HZ, 1),
	REG_MAP(33057, FI, 2, U32, WB, KEY, 1, "W", "DC Power", RF_PV_W, -1),
	REG_MAP(33029, FI, 2, U32, WB, DOC, 1, "kWh", "PV total energy", RF_PV_TOTAL_GENERATION_WH,
		1000),
	REG_MAP(33035, FI, 1, U16, WB, DOC, 0.1, "kWh", "today energy generation",
		RF_PV_DAILY_GENERATION_WH, 1000),
	REG_MAP(33049, FI, 1, U16, WB, DOC, 0.1, "V", "PV voltage 1", RF_PV_MPPT1_V, 1),
	REG_MAP(33050, FI, 1, U16, WB, DOC, 0.1, "A", "PV current 1", RF_PV_MPPT1_A, 1),
	REG_MAP(33051, FI, 1, U16, WB, DOC, 0.1, "V", "PV voltage 2", RF_PV_MPPT2_V, 1),
	REG_MAP(33052, FI, 1, U16, WB, DOC, 0.1, "A", "PV current 2", RF_PV_MPPT2_A, 1),
	REG_MAPF(33079, FI, 2, I32, WB, DOC, 1, "W", "active power", RF_INVERTER_W, -1, 0,
		 REG_F_KEY),
	REG_MAP(33093, FI, 1, I16, WB, DOC, 0.1, "C", "inverter temperature", RF_PV_HEATSINK_C, 1),
};

static const struct mb_block solis_hybrid_blocks[] = {
	{ .fc = FI, .addr = 33000, .count = 50 }, { .fc = FI, .addr = 33050, .count = 9 },
	{ .fc = FI, .addr = 33071, .count = 50 }, { .fc = FI, .addr = 33121, .count = 50 },
	{ .fc = FI, .addr = 33171, .count = 11 }, { .fc = FI, .addr = 33200, .count = 50 },
	{ .fc = FI, .addr = 33250, .count = 50 }, { .fc = FI, .addr = 33300, .count = 38 },
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
