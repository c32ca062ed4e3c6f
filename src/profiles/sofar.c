/* Sofar profile (HYD-ES/KTL-X G3 hybrids, 0x04xx/0x05xx/0x06xx map).
 *
 * Sofar "Modbus-RTU communication protocol" (G3, holding registers): PV1-3
 * power at 0x0586/0x0589/0x058C (1414/1417/1420) count 0.01 kW, i.e. 10 W.
 * The reference reads them as 0.1 W, 100x too small (reference README,
 * "Trust, and known mistakes").
 * Rows written from the reference register table (inverter-registers.tsv);
 * test_profiles_tsv holds them against it row by row. */
#include "profiles/table.h"

static const struct reg_def sofar_regs[] = {
	REG(1093, FH, 8, STR, WB, SN, 1, "-", "serial number used as device identity"),
	REG_MAP(1156, FH, 1, U16, WB, KEY, 0.01, "Hz", "Grid frequency", RF_METER_HZ, 1),
	REG_SUM(1414, FH, 1, U16, WB, KEY, 10, "W", "PV 1 Power", RF_PV_W, -1),
	REG_SUM(1417, FH, 1, U16, WB, KEY, 10, "W", "PV 2 Power", RF_PV_W, -1),
	REG_SUM(1420, FH, 1, U16, WB, KEY, 10, "W", "PV 3 Power", RF_PV_W, -1),
	REG_MAP(1544, FH, 1, U16, WB, KEY, 1, "%", "Battery 1 SOC", RF_BATTERY_SOC_NOM_FRACT, 0.01),
	REG(1551, FH, 1, U16, WB, KEY, 1, "%", "Battery 2 SOC"),
};

static const struct mb_block sofar_blocks[] = {
	{ .fc = FH, .addr = 1024, .count = 50 }, { .fc = FH, .addr = 1088, .count = 32 },
	{ .fc = FH, .addr = 1152, .count = 48 }, { .fc = FH, .addr = 1280, .count = 34 },
	{ .fc = FH, .addr = 1408, .count = 52 }, { .fc = FH, .addr = 1472, .count = 4 },
	{ .fc = FH, .addr = 1536, .count = 60 }, { .fc = FH, .addr = 1600, .count = 32 },
	{ .fc = FH, .addr = 1664, .count = 28 },
};

const struct profile profile_sofar = {
	.name = "sofar",
	.brand = "Sofar",
	.family = "sofar",
	.dtype = "hybrid",
	PROFILE_TABLE(sofar_regs),
	PROFILE_BLOCKS(sofar_blocks),
	.serial = &sofar_regs[0],
	.frequency = &sofar_regs[1],
};
