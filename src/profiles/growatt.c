/* Growatt profile.
 * Rows written from the reference register table (inverter-registers.tsv);
 * test_profiles_tsv holds them against it row by row.
 *
 * Growatt "Inverter Modbus RTU Protocol" V1.24, TL-X/TL-XH (MIN) input
 * registers 3000-3124 (32-bit values high word first): 3001-3002 PV input
 * power (0.1 W), 3003/3004 PV1 voltage (0.1 V) / current (0.1 A), 3007/3008
 * PV2, 3023-3024 AC output power Pac (0.1 W), 3025 grid frequency (0.01 Hz),
 * 3049-3050 Eac today and 3051-3052 Eac total, the AC energy of the day and
 * of the inverter's life (0.1 kWh); the same quantities sit
 * in the common range 0-124 (37 grid frequency).  The reference maps only the
 * frequency and the PV power; the rest are [doc] rows in the 3000 block.
 * The blocks at 125 (TL3/MAX) and 1000 (storage) belong to other families: a
 * MIN answers them with exception 2.  The [sn] row reads holding 209-223;
 * V1.24 documents the 10-character serial at holding 23-27. */
#include "profiles/table.h"

static const struct reg_def growatt_regs[] = {
	REG(209, FH, 15, STR, WB, SN, 1, "-", "serial number used as device identity"),
	REG_MAP(37, FI, 1, U16, WB, KEY, 0.01, "Hz", "Grid frequency", RF_METER_HZ, 1),
	REG_MAP(3001, FI, 2, U32, WB, KEY, 0.1, "W", "DC Power", RF_PV_W, -1),
	REG_MAP(3003, FI, 1, U16, WB, DOC, 0.1, "V", "Vpv1", RF_PV_MPPT1_V, 1),
	REG_MAP(3004, FI, 1, U16, WB, DOC, 0.1, "A", "Ipv1", RF_PV_MPPT1_A, 1),
	REG_MAP(3007, FI, 1, U16, WB, DOC, 0.1, "V", "Vpv2", RF_PV_MPPT2_V, 1),
	REG_MAP(3008, FI, 1, U16, WB, DOC, 0.1, "A", "Ipv2", RF_PV_MPPT2_A, 1),
	REG_MAPF(3023, FI, 2, U32, WB, DOC, 0.1, "W", "Pac AC output power", RF_INVERTER_W, -1, 0,
		 REG_F_KEY),
	REG_MAP(3049, FI, 2, U32, WB, DOC, 0.1, "kWh", "Eac today", RF_PV_DAILY_GENERATION_WH,
		1000),
	REG_MAP(3051, FI, 2, U32, WB, DOC, 0.1, "kWh", "Eac total", RF_PV_TOTAL_GENERATION_WH,
		1000),
};

static const struct mb_block growatt_blocks[] = {
	{ .fc = FI, .addr = 0, .count = 125 },
	{ .fc = FI, .addr = 125, .count = 125 },
	{ .fc = FI, .addr = 1000, .count = 125 },
	{ .fc = FI, .addr = 3000, .count = 125 },
};

const struct profile profile_growatt = {
	.name = "growatt",
	.brand = "Growatt",
	.family = "growatt",
	.dtype = "inverter",
	PROFILE_TABLE(growatt_regs),
	PROFILE_BLOCKS(growatt_blocks),
	.serial = &growatt_regs[0],
	.frequency = &growatt_regs[1],
};
