/* GoodWe profile (ET hybrid family, 35xxx running-data map).
 *
 * GoodWe "ET/EH/BT/BH Series Modbus Protocol" (holding registers, function
 * 03): 35103/35104 Vpv1 (0.1 V) / Ipv1 (0.1 A), 35105-35106 Ppv1 (U32, W),
 * 35107/35108 Vpv2 / Ipv2, 35109-35110 Ppv2 (U32, W), 35123 grid frequency
 * (0.01 Hz), 35138 total inverter power (I16, W, positive = output),
 * 35191-35192 PV E-Total and 35193-35194 PV E-Day (U32, 0.1 kWh: the PV
 * generation of the inverter's life and of the day; the names and layout
 * of marcelblijleven/goodwe's ET sensor table agree).
 * The reference calls 35138 "PV 1 Power" at 0.1 W: it is the inverter's AC
 * power at 1 W (reference README, "Trust, and known mistakes"), published as
 * inverter.W; pv.W is the sum of the PV strings' powers.  DT string inverters
 * use another map (not this profile).
 * The PV rows are read on short polls too, so pv.W is in every reading, not
 * only in the every-10th block polls.
 * Rows written from the reference register table (inverter-registers.tsv),
 * plus [doc] rows from the GoodWe document; test_profiles_tsv holds them
 * against it row by row and lists each deviation. */
#include "profiles/table.h"

static const struct reg_def goodwe_regs[] = {
	REG(35003, FH, 8, STR, WB, SN, 1, "-", "serial number used as device identity"),
	REG_MAP(35123, FH, 1, U16, WB, KEY, 0.01, "Hz", "Grid frequency", RF_METER_HZ, 1),
	REG_MAP(35138, FH, 1, I16, WB, KEY, 1, "W", "PV 1 Power", RF_INVERTER_W, -1),
	REG_SUMK(35105, FH, 2, U32, WB, DOC, 1, "W", "Ppv1 PV1 power", RF_PV_W, -1),
	REG_SUMK(35109, FH, 2, U32, WB, DOC, 1, "W", "Ppv2 PV2 power", RF_PV_W, -1),
	REG_MAP(35103, FH, 1, U16, WB, DOC, 0.1, "V", "Vpv1 PV1 voltage", RF_PV_MPPT1_V, 1),
	REG_MAP(35104, FH, 1, U16, WB, DOC, 0.1, "A", "Ipv1 PV1 current", RF_PV_MPPT1_A, 1),
	REG_MAP(35107, FH, 1, U16, WB, DOC, 0.1, "V", "Vpv2 PV2 voltage", RF_PV_MPPT2_V, 1),
	REG_MAP(35108, FH, 1, U16, WB, DOC, 0.1, "A", "Ipv2 PV2 current", RF_PV_MPPT2_A, 1),
	REG_MAP(35191, FH, 2, U32, WB, DOC, 0.1, "kWh", "PV E-Total", RF_PV_TOTAL_GENERATION_WH,
		1000),
	REG_MAP(35193, FH, 2, U32, WB, DOC, 0.1, "kWh", "PV E-Day", RF_PV_DAILY_GENERATION_WH,
		1000),
};

static const struct mb_block goodwe_blocks[] = {
	{ .fc = FH, .addr = 35000, .count = 40 }, { .fc = FH, .addr = 35100, .count = 40 },
	{ .fc = FH, .addr = 35141, .count = 40 }, { .fc = FH, .addr = 35182, .count = 40 },
	{ .fc = FH, .addr = 36000, .count = 44 }, { .fc = FH, .addr = 37000, .count = 23 },
};

const struct profile profile_goodwe = {
	.name = "goodwe",
	.brand = "GoodWe",
	.family = "goodwe",
	.dtype = "inverter",
	PROFILE_TABLE(goodwe_regs),
	PROFILE_BLOCKS(goodwe_blocks),
	.serial = &goodwe_regs[0],
	.frequency = &goodwe_regs[1],
};
