/* SMA profile (Sunny Boy / Tripower, SMA Modbus input registers).
 *
 * SMA "Modbus parameters and measured values" (SB/STP): 30769/30771/30773
 * DC current (S32 FIX3, A), voltage (S32 FIX2, V) and power (S32 FIX0, W) of
 * input A; 30957/30959/30961 the same for input B; 30775 AC power (S32, W)
 * total; 30803 grid frequency (U32 FIX2); 30529 total yield and 30535 day
 * yield (U32 FIX0, Wh; "Metering.TotWhOut" and "Metering.DyWhOut", read as
 * one [doc] block 30529-30536; the same addresses, types and units are in
 * the register lists SMA users publish, e.g. ioBroker's forum list: 30531
 * total yield in kWh, 30535 "Tagesertrag_Wh" U32 Wh).  The reference calls
 * 30775 "DC Power": it is the AC power (reference README), published as
 * inverter.W;
 * pv.W is the sum of the DC inputs' powers.  Unavailable values read
 * 0x80000000 (S32) / 0xFFFFFFFF (U32).
 * Rows written from the reference register table (inverter-registers.tsv);
 * test_profiles_tsv holds them against it row by row.
 *
 * The AC side ([doc] rows), from SMA's "ModBus - Parameters and Measured
 * Values" list for the Sunny Tripower 8.0/10.0 (MODBUS-HTML_STP8.0-10.0-3AV-40
 * _GG10_V10, as published in the smarthomeng-smamodbus repository's specs):
 * 30777/30779/30781 "Power L1/L2/L3" GridMs.W.phsA-C (S32 FIX0, W, feed-in
 * positive like 30775: negated), 30783/30785/30787 "Grid voltage phase
 * L1/L2/L3" GridMs.PhV.phsA-C (U32 FIX2, V), 30795 "Grid current" GridMs.TotA
 * (U32 FIX3, A), 30813 "Apparent power" GridMs.TotVA (S32 FIX0, VA), 30949
 * "Displacement power factor" GridMs.TotPF (U32 FIX3, unsigned: the
 * excitation is a separate register, not read), 30977/30979/30981 "Grid
 * current phase L1/L2/L3" GridMs.A.phsA-C (S32 FIX3, A).  30805 "Reactive
 * power" GridMs.TotVAr (S32 FIX0, var) is in SMA's lists for the earlier
 * SB/STP and the Data Manager (and in the register lists SMA users publish);
 * the STP 3AV-40 list carries GridMs.TotVAr at 31497 instead, not read here:
 * there 30805 is expected to read NaN (SMA's Modbus technical information,
 * as the Data Manager's EDMM-10-Modbus-TI states it: a block read answers
 * NaN for registers its profile does not define), so inverter.var is not
 * published.  NaN is S32 0x80000000 and U32 0xFFFFFFFF for these FIX
 * registers (the same TI: 0xFFFFFD marks status words only).
 * 30773/30961 (DC power of inputs A and B) also give pv.mppt1_W/mppt2_W.
 * A single-phase Sunny Boy reports phases L2/L3 as NaN: those fields are
 * absent. */
#include "profiles/table.h"

static const struct reg_def sma_regs[] = {
	REG(40067, FI, 2, U32, WB, SN, 1, "-", "serial number used as device identity"),
	REG_MAP(30803, FI, 2, U32, WB, KEY, 0.01, "Hz", "Grid frequency", RF_METER_HZ, 1),
	REG_MAP(30775, FI, 2, I32, WB, KEY, 1, "W", "DC Power", RF_INVERTER_W, -1),
	REG_MAP(30769, FI, 2, I32, WB, DOC, 0.001, "A", "DC current input A", RF_PV_MPPT1_A, 1),
	REG_MAP(30771, FI, 2, I32, WB, DOC, 0.01, "V", "DC voltage input A", RF_PV_MPPT1_V, 1),
	REG_MAPF(30773, FI, 2, I32, WB, DOC, 1, "W", "DC power input A", RF_PV_MPPT1_W, 1, 0,
		 REG_F_KEY),
	REG_SUMK(30773, FI, 2, I32, WB, DOC, 1, "W", "DC power input A", RF_PV_W, -1),
	REG_MAP(30957, FI, 2, I32, WB, DOC, 0.001, "A", "DC current input B", RF_PV_MPPT2_A, 1),
	REG_MAP(30959, FI, 2, I32, WB, DOC, 0.01, "V", "DC voltage input B", RF_PV_MPPT2_V, 1),
	REG_MAPF(30961, FI, 2, I32, WB, DOC, 1, "W", "DC power input B", RF_PV_MPPT2_W, 1, 0,
		 REG_F_KEY),
	REG_SUMK(30961, FI, 2, I32, WB, DOC, 1, "W", "DC power input B", RF_PV_W, -1),
	REG_MAP(30529, FI, 2, U32, WB, DOC, 1, "Wh", "Total yield", RF_PV_TOTAL_GENERATION_WH, 1),
	REG_MAP(30535, FI, 2, U32, WB, DOC, 1, "Wh", "Day yield", RF_PV_DAILY_GENERATION_WH, 1),
	REG_MAP(30777, FI, 2, I32, WB, DOC, 1, "W", "Power L1", RF_INVERTER_L1_W, -1),
	REG_MAP(30779, FI, 2, I32, WB, DOC, 1, "W", "Power L2", RF_INVERTER_L2_W, -1),
	REG_MAP(30781, FI, 2, I32, WB, DOC, 1, "W", "Power L3", RF_INVERTER_L3_W, -1),
	REG_MAP(30783, FI, 2, U32, WB, DOC, 0.01, "V", "Grid voltage L1", RF_INVERTER_L1_V, 1),
	REG_MAP(30785, FI, 2, U32, WB, DOC, 0.01, "V", "Grid voltage L2", RF_INVERTER_L2_V, 1),
	REG_MAP(30787, FI, 2, U32, WB, DOC, 0.01, "V", "Grid voltage L3", RF_INVERTER_L3_V, 1),
	REG_MAP(30795, FI, 2, U32, WB, DOC, 0.001, "A", "Grid current", RF_INVERTER_A, 1),
	REG_MAP(30805, FI, 2, I32, WB, DOC, 1, "var", "Reactive power", RF_INVERTER_VAR, 1),
	REG_MAP(30813, FI, 2, I32, WB, DOC, 1, "VA", "Apparent power", RF_INVERTER_VA, 1),
	REG_MAP(30949, FI, 2, U32, WB, DOC, 0.001, "-", "Displacement power factor", RF_INVERTER_PF,
		1),
	REG_MAP(30977, FI, 2, I32, WB, DOC, 0.001, "A", "Grid current L1", RF_INVERTER_L1_A, 1),
	REG_MAP(30979, FI, 2, I32, WB, DOC, 0.001, "A", "Grid current L2", RF_INVERTER_L2_A, 1),
	REG_MAP(30981, FI, 2, I32, WB, DOC, 0.001, "A", "Grid current L3", RF_INVERTER_L3_A, 1),
};

static const struct mb_block sma_blocks[] = {
	{ .fc = FI, .addr = 30000, .count = 10 }, { .fc = FI, .addr = 30051, .count = 10 },
	{ .fc = FI, .addr = 30775, .count = 50 }, { .fc = FI, .addr = 31085, .count = 2 },
	{ .fc = FI, .addr = 30769, .count = 6 }, /* [doc] DC input A */
	{ .fc = FI, .addr = 30957, .count = 6 }, /* [doc] DC input B */
	{ .fc = FI, .addr = 30529, .count = 8 }, /* [doc] total and day yield */
	{ .fc = FI, .addr = 30949, .count = 2 }, /* [doc] displacement power factor */
	{ .fc = FI, .addr = 30977, .count = 6 }, /* [doc] grid current per phase */
};

const struct profile profile_sma = {
	.name = "sma",
	.brand = "SMA",
	.family = "sma",
	.dtype = "inverter",
	PROFILE_TABLE(sma_regs),
	PROFILE_BLOCKS(sma_blocks),
	.serial = &sma_regs[0],
	.frequency = &sma_regs[1],
};
