/* Huawei SUN2000 (inverter) and SUN2000 + LUNA2000 (hybrid) profiles.
 *
 * Where these tables leave the reference (README "known mistakes"):
 *  - [key] 32064 scale 1 W: I32 with gain 1000 in kW is 1 W per count, not 0.001 W;
 *  - pv.W comes from 32064 Input Power, not from the PV1 voltage register 32016
 *    (which only feeds pv.mppt1_V), and pv.rated_power_W from 30073 Rated Power,
 *    not from a status word;
 *  - block 37000 is 70 registers long so ESU1 total discharge (37068-37069) is read
 *    and feeds battery.total_discharge_Wh;
 *  - 32080 Active Power (the AC output, I32, gain 1000 kW, positive = output) is
 *    inverter.W (Huawei "SUN2000 MODBUS Interface Definitions");
 *  - huawei_hybrid maps the inverter's 32085 to meter.Hz as well; the meter's 37118
 *    comes later in the table and wins whenever the meter block was read;
 *  - 37100 Meter status (0: offline, 1: normal): with no meter connected (or
 *    one offline) huawei_fixup drops every field of the 37100 block, so no
 *    0 W grid meter is published, and meter.Hz is the inverter's 32085.
 *  - the inverter's AC side (Huawei "SUN2000 MODBUS Interface Definitions"):
 *    32069-32071 phase voltages (gain 10) are inverter.L1_V-L3_V, 32072-32077
 *    phase currents (I32, gain 1000) inverter.L1_A-L3_A, 32082 reactive power
 *    (I32, kvar, gain 1000) inverter.var, 32084 power factor (I16, gain 1000)
 *    inverter.PF, each with the sign the device reports;
 *  - 32114 Daily Energy Yield (U32, kWh, gain 100; the same document) is
 *    pv.daily_generation_Wh, next to 32106 Accumulated Energy Yield.
 * Rows written from the reference register table (inverter-registers.tsv);
 * test_profiles_tsv holds them against it row by row. */
#include <math.h>

#include "base/util.h"
#include "profiles/table.h"

#define METER_STATUS 37100
#define METER_NORMAL 1

/* Fields the meter block (37100-37138) feeds. */
static const enum reading_field meter_fields[] = {
	RF_METER_W,
	RF_METER_HZ,
	RF_METER_L1_V,
	RF_METER_L2_V,
	RF_METER_L3_V,
	RF_METER_L1_A,
	RF_METER_L2_A,
	RF_METER_L3_A,
	RF_METER_L1_W,
	RF_METER_L2_W,
	RF_METER_L3_W,
	RF_METER_TOTAL_IMPORT_WH,
	RF_METER_TOTAL_EXPORT_WH,
};

/* What huawei_fixup reads besides the fields: the meter status, on every
 * short poll too (without it a missing meter's zeros would pass as 0 W). */
static const struct reg_def huawei_short_extra[] = {
	{ .addr = METER_STATUS,
	  .fc = REG_FC_HOLDING,
	  .words = 1,
	  .type = REG_U16,
	  .order = WO_BIG,
	  .scale = 1,
	  .sf_addr = REG_NO_SF,
	  .field = REG_NO_FIELD },
};

static int huawei_fixup(const struct profile *p, const struct block_result *res, unsigned nres,
			struct reading *r)
{
	static const struct reg_def status = { .addr = METER_STATUS,
					       .fc = REG_FC_HOLDING,
					       .words = 1,
					       .type = REG_U16,
					       .scale = 1 };
	static const struct reg_def hz = { .addr = 32085,
					   .fc = REG_FC_HOLDING,
					   .words = 1,
					   .type = REG_U16,
					   .order = WO_BIG,
					   .scale = 0.01,
					   .sf_addr = REG_NO_SF,
					   .field = RF_METER_HZ,
					   .mul = 1 };
	const uint16_t *w = profile_find_words(&status, res, nres);
	double v;

	(void)p;
	if (!w || w[0] == METER_NORMAL)
		return 0;
	for (unsigned i = 0; i < sizeof(meter_fields) / sizeof(meter_fields[0]); i++)
		r->v[meter_fields[i]] = NAN;
	if (profile_decode_value(&hz, res, nres, &v) == 0)
		r->v[RF_METER_HZ] = v;
	return 0;
}

/* The inverse: a meter reads "normal" when the reading has any of its fields
 * besides the frequency (which the inverter measures too). */
static int huawei_encode_fixup(const struct profile *p, const struct reading *r,
			       struct regimage *img)
{
	bool meter = false;

	(void)p;
	for (unsigned i = 0; i < sizeof(meter_fields) / sizeof(meter_fields[0]); i++)
		if (meter_fields[i] != RF_METER_HZ && !isnan(r->v[meter_fields[i]]))
			meter = true;
	regimage_set(img, REG_FC_HOLDING, METER_STATUS, meter ? METER_NORMAL : 0);
	return 0;
}

static const struct reg_def huawei_regs[] = {
	REG(30015, FH, 10, STR, WB, SN, 1, "-", "serial number used as device identity"),
	REG(32085, FH, 1, U16, WB, KEY, 0.01, "Hz", "Grid frequency"),
	REG(32064, FH, 2, I32, WB, KEY, 1, "W", "DC Power"),
	REG(30000, FH, 15, STR, WB, DEF, 1, "N/A", "Model"),
	REG(30015, FH, 10, STR, WB, DEF, 1, "N/A", "Serial Number"),
	REG(30025, FH, 10, STR, WB, DEF, 1, "N/A", "Part Number"),
	REG(30070, FH, 1, U16, WB, DEF, 1, "N/A", "Model ID"),
	REG(30071, FH, 1, U16, WB, DEF, 1, "N/A", "Number of PV Strings"),
	REG(30072, FH, 1, U16, WB, DEF, 1, "N/A", "Number of MPP Trackers"),
	REG_MAP(30073, FH, 2, U32, WB, DEF, 0.001, "kW", "Rated Power", RF_PV_RATED_POWER_W, 1000),
	REG(30075, FH, 2, U32, WB, DEF, 0.001, "kW", "Maximum Active Power"),
	REG(30077, FH, 2, U32, WB, DEF, 0.001, "kVA", "Maximum Apparent Power"),
	REG(30079, FH, 2, I32, WB, DEF, 0.001, "kVar", "Maximum Reactive Power Fed"),
	REG(30081, FH, 2, I32, WB, DEF, 0.001, "kVar", "Maximum Reactive Power Absorbed"),
	REG(32000, FH, 1, U16, WB, DEF, 1, "N/A", "State 1"),
	REG(32002, FH, 1, U16, WB, DEF, 1, "N/A", "State 2"),
	REG(32003, FH, 2, U32, WB, DEF, 1, "N/A", "State 3"),
	REG_MAP(32016, FH, 1, I16, WB, DEF, 0.1, "V", "PV1 Voltage", RF_PV_MPPT1_V, 1),
	REG_MAP(32017, FH, 1, I16, WB, DEF, 0.01, "A", "PV1 Current", RF_PV_MPPT1_A, 1),
	REG_MAP(32018, FH, 1, I16, WB, DEF, 0.1, "V", "PV2 Voltage", RF_PV_MPPT2_V, 1),
	REG_MAP(32019, FH, 1, I16, WB, DEF, 0.01, "A", "PV2 Current", RF_PV_MPPT2_A, 1),
	REG(32020, FH, 1, I16, WB, DEF, 0.1, "V", "PV3 Voltage"),
	REG(32021, FH, 1, I16, WB, DEF, 0.01, "A", "PV3 Current"),
	REG(32022, FH, 1, I16, WB, DEF, 0.1, "V", "PV4 Voltage"),
	REG(32023, FH, 1, I16, WB, DEF, 0.01, "A", "PV4 Current"),
	REG_MAP(32064, FH, 2, I32, WB, DEF, 0.001, "kW", "Input Power", RF_PV_W, -1000),
	REG(32066, FH, 1, U16, WB, DEF, 0.1, "V", "Grid Voltage AB"),
	REG(32067, FH, 1, U16, WB, DEF, 0.1, "V", "Grid Voltage BC"),
	REG(32068, FH, 1, U16, WB, DEF, 0.1, "V", "Grid Voltage CA"),
	REG_MAP(32069, FH, 1, U16, WB, DEF, 0.1, "V", "Phase A Voltage", RF_INVERTER_L1_V, 1),
	REG_MAP(32070, FH, 1, U16, WB, DEF, 0.1, "V", "Phase B Voltage", RF_INVERTER_L2_V, 1),
	REG_MAP(32071, FH, 1, U16, WB, DEF, 0.1, "V", "Phase C Voltage", RF_INVERTER_L3_V, 1),
	REG_MAP(32072, FH, 2, I32, WB, DEF, 0.001, "A", "Phase A Current", RF_INVERTER_L1_A, 1),
	REG_MAP(32074, FH, 2, I32, WB, DEF, 0.001, "A", "Phase B Current", RF_INVERTER_L2_A, 1),
	REG_MAP(32076, FH, 2, I32, WB, DEF, 0.001, "A", "Phase C Current", RF_INVERTER_L3_A, 1),
	REG(32078, FH, 2, I32, WB, DEF, 0.001, "kW", "Peak Active Power"),
	REG_MAP(32080, FH, 2, I32, WB, DEF, 0.001, "kW", "Active Power", RF_INVERTER_W, -1000),
	REG_MAP(32082, FH, 2, I32, WB, DEF, 0.001, "kVar", "Reactive Power", RF_INVERTER_VAR, 1000),
	REG_MAP(32084, FH, 1, I16, WB, DEF, 0.001, "N/A", "Power Factor", RF_INVERTER_PF, 1),
	REG_MAP(32085, FH, 1, U16, WB, DEF, 0.01, "Hz", "Grid Frequency", RF_METER_HZ, 1),
	REG(32086, FH, 1, U16, WB, DEF, 0.01, "%", "Efficiency"),
	REG_MAP(32087, FH, 1, I16, WB, DEF, 0.1, "°C", "Internal Temperature", RF_PV_HEATSINK_C, 1),
	REG(32088, FH, 1, U16, WB, DEF, 0.001, "MΩ", "Insulation Resistance"),
	REG(32089, FH, 1, U16, WB, DEF, 1, "N/A", "Device Status"),
	REG(32090, FH, 1, U16, WB, DEF, 1, "N/A", "Fault Code"),
	REG(32091, FH, 2, U32, WB, DEF, 1, "N/A", "Startup Time"),
	REG(32093, FH, 2, U32, WB, DEF, 1, "N/A", "Shutdown Time"),
	REG_MAP(32106, FH, 2, U32, WB, DEF, 0.01, "kWh", "Accumulated Energy Yield",
		RF_PV_TOTAL_GENERATION_WH, 1000),
	REG_MAP(32114, FH, 2, U32, WB, DEF, 0.01, "kWh", "Daily Energy Yield",
		RF_PV_DAILY_GENERATION_WH, 1000),
};

static const struct mb_block huawei_blocks[] = {
	{ .fc = FH, .addr = 30000, .count = 125 },
	{ .fc = FH, .addr = 32000, .count = 125 },
};

const struct profile profile_huawei = {
	.name = "huawei",
	.brand = "Huawei",
	.family = "huawei",
	.dtype = "inverter",
	PROFILE_TABLE(huawei_regs),
	PROFILE_BLOCKS(huawei_blocks),
	.short_reads_fields = true,
	.serial = &huawei_regs[0],
	.frequency = &huawei_regs[1],
};


static const struct reg_def huawei_hybrid_regs[] = {
	REG(30015, FH, 10, STR, WB, SN, 1, "-", "serial number used as device identity"),
	REG(32085, FH, 1, U16, WB, KEY, 0.01, "Hz", "Grid frequency"),
	REG(32064, FH, 2, I32, WB, KEY, 1, "W", "DC Power"),
	REG(30000, FH, 15, STR, WB, DEF, 1, "N/A", "Model"),
	REG(30015, FH, 10, STR, WB, DEF, 1, "N/A", "Serial Number"),
	REG(30025, FH, 10, STR, WB, DEF, 1, "N/A", "Part Number"),
	REG(30070, FH, 1, U16, WB, DEF, 1, "N/A", "Model ID"),
	REG(30071, FH, 1, U16, WB, DEF, 1, "N/A", "Number of PV Strings"),
	REG(30072, FH, 1, U16, WB, DEF, 1, "N/A", "Number of MPP Trackers"),
	REG_MAP(30073, FH, 2, U32, WB, DEF, 0.001, "kW", "Rated Power", RF_PV_RATED_POWER_W, 1000),
	REG(30075, FH, 2, U32, WB, DEF, 0.001, "kW", "Maximum Active Power"),
	REG(30077, FH, 2, U32, WB, DEF, 0.001, "kVA", "Maximum Apparent Power"),
	REG(30079, FH, 2, I32, WB, DEF, 0.001, "kVar", "Maximum Reactive Power Fed"),
	REG(30081, FH, 2, I32, WB, DEF, 0.001, "kVar", "Maximum Reactive Power Absorbed"),
	REG(32000, FH, 1, U16, WB, DEF, 1, "N/A", "State 1"),
	REG(32002, FH, 1, U16, WB, DEF, 1, "N/A", "State 2"),
	REG(32003, FH, 2, U32, WB, DEF, 1, "N/A", "State 3"),
	REG_MAP(32016, FH, 1, I16, WB, DEF, 0.1, "V", "PV1 Voltage", RF_PV_MPPT1_V, 1),
	REG_MAP(32017, FH, 1, I16, WB, DEF, 0.01, "A", "PV1 Current", RF_PV_MPPT1_A, 1),
	REG_MAP(32018, FH, 1, I16, WB, DEF, 0.1, "V", "PV2 Voltage", RF_PV_MPPT2_V, 1),
	REG_MAP(32019, FH, 1, I16, WB, DEF, 0.01, "A", "PV2 Current", RF_PV_MPPT2_A, 1),
	REG(32020, FH, 1, I16, WB, DEF, 0.1, "V", "PV3 Voltage"),
	REG(32021, FH, 1, I16, WB, DEF, 0.01, "A", "PV3 Current"),
	REG(32022, FH, 1, I16, WB, DEF, 0.1, "V", "PV4 Voltage"),
	REG(32023, FH, 1, I16, WB, DEF, 0.01, "A", "PV4 Current"),
	REG_MAP(32064, FH, 2, I32, WB, DEF, 0.001, "kW", "Input Power", RF_PV_W, -1000),
	REG(32066, FH, 1, U16, WB, DEF, 0.1, "V", "Grid Voltage AB"),
	REG(32067, FH, 1, U16, WB, DEF, 0.1, "V", "Grid Voltage BC"),
	REG(32068, FH, 1, U16, WB, DEF, 0.1, "V", "Grid Voltage CA"),
	REG_MAP(32069, FH, 1, U16, WB, DEF, 0.1, "V", "Phase A Voltage", RF_INVERTER_L1_V, 1),
	REG_MAP(32070, FH, 1, U16, WB, DEF, 0.1, "V", "Phase B Voltage", RF_INVERTER_L2_V, 1),
	REG_MAP(32071, FH, 1, U16, WB, DEF, 0.1, "V", "Phase C Voltage", RF_INVERTER_L3_V, 1),
	REG_MAP(32072, FH, 2, I32, WB, DEF, 0.001, "A", "Phase A Current", RF_INVERTER_L1_A, 1),
	REG_MAP(32074, FH, 2, I32, WB, DEF, 0.001, "A", "Phase B Current", RF_INVERTER_L2_A, 1),
	REG_MAP(32076, FH, 2, I32, WB, DEF, 0.001, "A", "Phase C Current", RF_INVERTER_L3_A, 1),
	REG(32078, FH, 2, I32, WB, DEF, 0.001, "kW", "Peak Active Power"),
	REG_MAP(32080, FH, 2, I32, WB, DEF, 0.001, "kW", "Active Power", RF_INVERTER_W, -1000),
	REG_MAP(32082, FH, 2, I32, WB, DEF, 0.001, "kVar", "Reactive Power", RF_INVERTER_VAR, 1000),
	REG_MAP(32084, FH, 1, I16, WB, DEF, 0.001, "N/A", "Power Factor", RF_INVERTER_PF, 1),
	REG_MAP(32085, FH, 1, U16, WB, DEF, 0.01, "Hz", "Grid Frequency", RF_METER_HZ, 1),
	REG(32086, FH, 1, U16, WB, DEF, 0.01, "%", "Efficiency"),
	REG_MAP(32087, FH, 1, I16, WB, DEF, 0.1, "°C", "Internal Temperature", RF_PV_HEATSINK_C, 1),
	REG(32088, FH, 1, U16, WB, DEF, 0.001, "MΩ", "Insulation Resistance"),
	REG(32089, FH, 1, U16, WB, DEF, 1, "N/A", "Device Status"),
	REG(32090, FH, 1, U16, WB, DEF, 1, "N/A", "Fault Code"),
	REG(32091, FH, 2, U32, WB, DEF, 1, "N/A", "Startup Time"),
	REG(32093, FH, 2, U32, WB, DEF, 1, "N/A", "Shutdown Time"),
	REG_MAP(32106, FH, 2, U32, WB, DEF, 0.01, "kWh", "Accumulated Energy Yield",
		RF_PV_TOTAL_GENERATION_WH, 1000),
	REG_MAP(32114, FH, 2, U32, WB, DEF, 0.01, "kWh", "Daily Energy Yield",
		RF_PV_DAILY_GENERATION_WH, 1000),
	REG(37100, FH, 1, U16, WB, DEF, 1, "N/A", "Meter status"),
	REG_MAP(37101, FH, 2, I32, WB, DEF, 0.1, "V", "Grid voltage", RF_METER_L1_V, 1),
	REG_MAP(37103, FH, 2, I32, WB, DEF, 0.1, "V", "B phase voltage", RF_METER_L2_V, 1),
	REG_MAP(37105, FH, 2, I32, WB, DEF, 0.1, "V", "C phase voltage", RF_METER_L3_V, 1),
	REG_MAP(37107, FH, 2, I32, WB, DEF, 0.01, "A", "Grid current", RF_METER_L1_A, -1),
	REG_MAP(37109, FH, 2, I32, WB, DEF, 0.01, "A", "B phase current", RF_METER_L2_A, -1),
	REG_MAP(37111, FH, 2, I32, WB, DEF, 0.01, "A", "C phase current", RF_METER_L3_A, -1),
	REG_MAP(37113, FH, 2, I32, WB, DEF, 1, "W", "Active power", RF_METER_W, -1),
	REG(37115, FH, 2, I32, WB, DEF, 1, "Var", "Reactive power"),
	REG(37117, FH, 1, I16, WB, DEF, 0.001, "NA", "Power factor"),
	REG_MAP(37118, FH, 1, I16, WB, DEF, 0.01, "Hz", "Grid frequency", RF_METER_HZ, 1),
	REG_MAP(37119, FH, 2, I32, WB, DEF, 0.01, "kWh", "Positive active electricity",
		RF_METER_TOTAL_EXPORT_WH, 1000),
	REG_MAP(37121, FH, 2, I32, WB, DEF, 0.01, "kWh", "Reverse active power",
		RF_METER_TOTAL_IMPORT_WH, 1000),
	REG(37123, FH, 2, I32, WB, DEF, 0.01, "kVarh", "Accumulated reactive power"),
	REG(37125, FH, 1, U16, WB, DEF, 1, "N/A", "Meter type"),
	REG(37126, FH, 2, I32, WB, DEF, 0.1, "V", "A-B line voltage"),
	REG(37128, FH, 2, I32, WB, DEF, 0.1, "V", "B-C line voltage"),
	REG(37130, FH, 2, I32, WB, DEF, 0.1, "V", "CA line voltage"),
	REG_MAP(37132, FH, 2, I32, WB, DEF, 1, "W", "A phase active power", RF_METER_L1_W, -1),
	REG_MAP(37134, FH, 2, I32, WB, DEF, 1, "W", "B phase active power", RF_METER_L2_W, -1),
	REG_MAP(37136, FH, 2, I32, WB, DEF, 1, "W", "C phase active power", RF_METER_L3_W, -1),
	REG(37138, FH, 1, U16, WB, DEF, 1, "N/A", "Meter model detection result"),
	REG(37000, FH, 1, U16, WB, DEF, 1, "N/A", "ESU1 Running Status"),
	REG_MAP(37001, FH, 2, I32, WB, DEF, 1, "W", "ESU1 Charge Discharge Power", RF_BATTERY_W, 1),
	REG_MAP(37003, FH, 1, U16, WB, DEF, 0.1, "V", "ESU1 Bus Voltage", RF_BATTERY_V, 1),
	REG_MAP(37004, FH, 1, U16, WB, DEF, 0.1, "%", "ESU1 Battery SOC", RF_BATTERY_SOC_NOM_FRACT,
		0.01),
	REG(37006, FH, 1, U16, WB, DEF, 1, "N/A", "ESU1 Working Mode"),
	REG(37007, FH, 2, U32, WB, DEF, 1, "W", "ESU1 Rated Charge Power"),
	REG(37009, FH, 2, U32, WB, DEF, 1, "W", "ESU1 Rated Discharge Power"),
	REG(37014, FH, 1, U16, WB, DEF, 1, "N/A", "ESU1 Fault ID"),
	REG(37015, FH, 2, U32, WB, DEF, 0.01, "kWh", "ESU1 Current Day Charge Capacity"),
	REG(37017, FH, 2, U32, WB, DEF, 0.01, "kWh", "ESU1 Current Day Discharge Capacity"),
	REG_MAP(37021, FH, 1, I16, WB, DEF, 0.1, "A", "ESU1 Bus Current", RF_BATTERY_A, 1),
	REG_MAP(37022, FH, 1, I16, WB, DEF, 0.1, "°C", "ESU1 Battery Temperature",
		RF_BATTERY_HEATSINK_C, 1),
	REG(37025, FH, 1, U16, WB, DEF, 1, "mins", "ESU1 Remaining Time"),
	REG(37026, FH, 10, STR, WB, DEF, 1, "N/A", "ESU1 DCDC Version"),
	REG(37036, FH, 10, STR, WB, DEF, 1, "N/A", "ESU1 BMS Version"),
	REG(37046, FH, 2, U32, WB, DEF, 1, "W", "Maximum Storage Charge Power"),
	REG(37048, FH, 2, U32, WB, DEF, 1, "W", "Maximum Storage Discharge Power"),
	REG(37052, FH, 10, STR, WB, DEF, 1, "N/A", "ESU1 Serial Number"),
	REG_MAP(37066, FH, 2, U32, WB, DEF, 0.01, "kWh", "ESU1 Total Charge",
		RF_BATTERY_TOTAL_CHARGE_WH, 1000),
	REG(37758, FH, 2, U32, WB, DEF, 1, "Wh", "Storage Rated Capacity"),
	REG(37760, FH, 1, U16, WB, DEF, 0.1, "%", "Storage SOC"),
	REG(37762, FH, 1, U16, WB, DEF, 1, "N/A", "Storage Running Status"),
	REG(37763, FH, 1, U16, WB, DEF, 0.1, "V", "Storage Bus Voltage"),
	REG(37764, FH, 1, I16, WB, DEF, 0.1, "A", "Storage Bus Current"),
	REG(37765, FH, 2, I32, WB, DEF, 1, "W", "Storage Charge Discharge Power"),
	REG(37780, FH, 2, U32, WB, DEF, 0.01, "kWh", "Storage Total Charge"),
	REG(37782, FH, 2, U32, WB, DEF, 0.01, "kWh", "Storage Total Discharge"),
	REG(37784, FH, 2, U32, WB, DEF, 0.01, "kWh", "Storage Current Day Charge"),
	REG(37786, FH, 2, U32, WB, DEF, 0.01, "kWh", "Storage Current Day Discharge"),
	REG(47000, FH, 1, U16, WB, DEF, 1, "N/A", "Storage Product Mode"),
	REG(47075, FH, 2, U32, WB, DEF, 1, "W", "Maximum Charging Power"),
	REG(47077, FH, 2, U32, WB, DEF, 1, "W", "Maximum Discharging Power"),
	REG(47081, FH, 1, U16, WB, DEF, 0.1, "%", "Charging Cutoff Capacity"),
	REG(47082, FH, 1, U16, WB, DEF, 0.1, "%", "Discharge Cutoff Capacity"),
	REG(47083, FH, 1, U16, WB, DEF, 1, "mins", "Forced Charging Discharging Period"),
	REG(47086, FH, 1, U16, WB, DEF, 1, "N/A", "Working Mode Settings"),
	REG(47087, FH, 1, U16, WB, DEF, 1, "N/A", "Charge From Grid Function"),
	REG(47088, FH, 1, U16, WB, DEF, 0.1, "%", "Grid Charge Cutoff SOC"),
	REG(47089, FH, 1, U16, WB, DEF, 1, "N/A", "ESU2 Product Model"),
	REG(47100, FH, 1, U16, WB, DEF, 1, "N/A", "Forcible Charge Discharge"),
	REG(47102, FH, 1, U16, WB, DEF, 0.1, "%", "Backup Power SOC"),
	REG(47107, FH, 1, U16, WB, DEF, 1, "N/A", "ESU1 Unit Number"),
	REG(47108, FH, 1, U16, WB, DEF, 1, "N/A", "ESU2 Unit Number"),
	REG(47242, FH, 2, U32, WB, DEF, 0.001, "kW", "Grid Charge Power"),
	REG(47244, FH, 2, U32, WB, DEF, 0.001, "kW", "Maximum Grid Charge Power"),
	REG(47246, FH, 1, U16, WB, DEF, 1, "N/A", "Forcible Charge Discharge Setting Mode"),
	REG(47247, FH, 2, U32, WB, DEF, 0.001, "kW", "Forcible Charge Power"),
	REG(47249, FH, 2, U32, WB, DEF, 0.001, "kW", "Forcible Discharge Power"),
	REG(47299, FH, 1, U16, WB, DEF, 1, "N/A", "Excess PV Energy Use In TOU"),
	REG(47415, FH, 1, U16, WB, DEF, 1, "N/A", "Active Power Control Mode"),
	REG(47416, FH, 2, I32, WB, DEF, 0.001, "kW", "Maximum Feed Grid Power kW"),
	REG(47418, FH, 1, I16, WB, DEF, 0.1, "%", "Maximum Feed Grid Power Percentage"),
	REG(47590, FH, 2, U32, WB, DEF, 0.001, "kW", "Plant Maximum Charge From Grid Power"),
	REG(47604, FH, 1, U16, WB, DEF, 1, "N/A", "Switch to Off Grid"),
	REG(47605, FH, 1, U16, WB, DEF, 1, "V", "Independent Operation Voltage"),
	REG(47750, FH, 1, U16, WB, DEF, 1, "N/A", "ESU1 Battery Pack1 Number"),
	REG(47751, FH, 1, U16, WB, DEF, 1, "N/A", "ESU1 Battery Pack2 Number"),
	REG(47752, FH, 1, U16, WB, DEF, 1, "N/A", "ESU1 Battery Pack3 Number"),
	REG(47753, FH, 1, U16, WB, DEF, 1, "N/A", "ESU2 Battery Pack1 Number"),
	REG(47754, FH, 1, U16, WB, DEF, 1, "N/A", "ESU2 Battery Pack2 Number"),
	REG(47755, FH, 1, U16, WB, DEF, 1, "N/A", "ESU2 Battery Pack3 Number"),
	REG(47028, FH, 41, MLD, WB, DEF, 1, "N/A", "Time of Use Electricity Price Periods"),
	REG(35300, FH, 1, U16, WB, DEF, 1, "N/A", "Active Adjustment Mode"),
	REG(35302, FH, 2, U32, WB, DEF, 0.001, "N/A", "Active Adjustment Value"),
	REG(35303, FH, 1, U16, WB, DEF, 1, "N/A", "Active Adjustment Command"),
	REG(35304, FH, 1, U16, WB, DEF, 1, "N/A", "Reactive Adjustment Mode"),
	REG(35305, FH, 2, U32, WB, DEF, 0.001, "N/A", "Reactive Adjustment Value"),
	REG(35307, FH, 1, U16, WB, DEF, 1, "N/A", "Reactive Adjustment Command"),
	REG(37200, FH, 1, U16, WB, DEF, 1, "N/A", "Total Number of Optimizers"),
	REG(37201, FH, 1, U16, WB, DEF, 1, "N/A", "Number of Online Optimizers"),
	REG(37202, FH, 1, U16, WB, DEF, 1, "N/A", "Optimizer Feature Data"),
	REG(40000, FH, 2, U32, WB, DEF, 1, "N/A", "System Time"),
	REG(40037, FH, 1, U16, WB, DEF, 1, "N/A", "Q-U Characteristic Curve Mode"),
	REG(40038, FH, 1, U16, WB, DEF, 1, "%", "Q-U Dispatch Trigger Power"),
	REG(40120, FH, 1, U16, WB, DEF, 0.1, "kW", "Fixed Active Power Derated"),
	REG(40122, FH, 1, I16, WB, DEF, 0.001, "N/A", "Reactive Power Compensation PF"),
	REG(40123, FH, 1, I16, WB, DEF, 0.001, "N/A", "Reactive Power Compensation QS"),
	REG(40125, FH, 1, U16, WB, DEF, 0.1, "%", "Active Power Percentage Derating"),
	REG(40126, FH, 2, U32, WB, DEF, 1, "W", "Fixed Active Power Derating W"),
	REG(40129, FH, 2, I32, WB, DEF, 0.001, "kVar", "Night Reactive Power Compensation"),
	REG(40133, FH, 21, MLD, WB, DEF, 1, "N/A", "CosPhiP Curve"),
	REG(40154, FH, 21, MLD, WB, DEF, 1, "N/A", "QU Curve"),
	REG(40175, FH, 21, MLD, WB, DEF, 1, "N/A", "PFU Curve"),
	REG(40196, FH, 1, U16, WB, DEF, 1, "s", "Reactive Power Adjustment Time"),
	REG(40198, FH, 1, U16, WB, DEF, 1, "%", "QU Power Exit Percentage"),
	REG(40200, FH, 1, U16, WB, DEF, 1, "N/A", "Startup Command"),
	REG(40201, FH, 1, U16, WB, DEF, 1, "N/A", "Shutdown Command"),
	REG(42000, FH, 1, U16, WB, DEF, 1, "N/A", "Grid Code"),
	REG(42015, FH, 2, U32, WB, DEF, 0.001, "%/s", "Reactive Power Change Gradient"),
	REG(42017, FH, 2, U32, WB, DEF, 0.001, "%/s", "Active Power Change Gradient"),
	REG(42019, FH, 2, U32, WB, DEF, 1, "s", "Schedule Instruction Valid Duration"),
	REG(43006, FH, 1, I16, WB, DEF, 1, "min", "Time Zone"),
	REG_MAP(37068, FH, 2, U32, WB, DEF, 0.01, "kWh", "ESU1 Total Discharge",
		RF_BATTERY_TOTAL_DISCHARGE_WH, 1000),
	REG(37799, FH, 15, STR, WB, DEF, 1, "N/A", "ESU2 Software Version"),
	REG(37814, FH, 15, STR, WB, DEF, 1, "N/A", "ESU1 Software Version"),
	REG(38200, FH, 10, STR, WB, DEF, 1, "N/A", "ESU1 Battery Pack1 SN"),
	REG(38210, FH, 15, STR, WB, DEF, 1, "N/A", "ESU1 Battery Pack1 Firmware Version"),
	REG(38228, FH, 1, U16, WB, DEF, 1, "N/A", "ESU1 Battery Pack1 Working Status"),
	REG(38229, FH, 1, U16, WB, DEF, 0.1, "%", "ESU1 Battery Pack1 SOC"),
	REG(38233, FH, 2, I32, WB, DEF, 0.001, "kW", "ESU1 Battery Pack1 Charge Discharge Power"),
	REG(38235, FH, 1, U16, WB, DEF, 0.1, "V", "ESU1 Battery Pack1 Voltage"),
	REG(38236, FH, 1, I16, WB, DEF, 0.1, "A", "ESU1 Battery Pack1 Current"),
	REG(38238, FH, 2, U32, WB, DEF, 0.01, "kWh", "ESU1 Battery Pack1 Total Charge"),
	REG(38240, FH, 2, U32, WB, DEF, 0.01, "kWh", "ESU1 Battery Pack1 Total Discharge"),
	REG(38242, FH, 10, STR, WB, DEF, 1, "N/A", "ESU1 Battery Pack2 SN"),
	REG(38252, FH, 15, STR, WB, DEF, 1, "N/A", "ESU1 Battery Pack2 Firmware Version"),
	REG(38270, FH, 1, U16, WB, DEF, 1, "N/A", "ESU1 Battery Pack2 Working Status"),
	REG(38271, FH, 1, U16, WB, DEF, 0.1, "%", "ESU1 Battery Pack2 SOC"),
	REG(38275, FH, 2, I32, WB, DEF, 0.001, "kW", "ESU1 Battery Pack2 Charge Discharge Power"),
	REG(38277, FH, 1, U16, WB, DEF, 0.1, "V", "ESU1 Battery Pack2 Voltage"),
	REG(38278, FH, 1, I16, WB, DEF, 0.1, "A", "ESU1 Battery Pack2 Current"),
	REG(38280, FH, 2, U32, WB, DEF, 0.01, "kWh", "ESU1 Battery Pack2 Total Charge"),
	REG(38282, FH, 2, U32, WB, DEF, 0.01, "kWh", "ESU1 Battery Pack2 Total Discharge"),
	REG(38284, FH, 10, STR, WB, DEF, 1, "N/A", "ESU1 Battery Pack3 SN"),
	REG(38294, FH, 15, STR, WB, DEF, 1, "N/A", "ESU1 Battery Pack3 Firmware Version"),
	REG(38312, FH, 1, U16, WB, DEF, 1, "N/A", "ESU1 Battery Pack3 Working Status"),
	REG(38313, FH, 1, U16, WB, DEF, 0.1, "%", "ESU1 Battery Pack3 SOC"),
	REG(38317, FH, 2, I32, WB, DEF, 0.001, "kW", "ESU1 Battery Pack3 Charge Discharge Power"),
	REG(38319, FH, 1, U16, WB, DEF, 0.1, "V", "ESU1 Battery Pack3 Voltage"),
	REG(38320, FH, 1, I16, WB, DEF, 0.1, "A", "ESU1 Battery Pack3 Current"),
	REG(38322, FH, 2, U32, WB, DEF, 0.01, "kWh", "ESU1 Battery Pack3 Total Charge"),
	REG(38324, FH, 2, U32, WB, DEF, 0.01, "kWh", "ESU1 Battery Pack3 Total Discharge"),
	REG(38452, FH, 1, I16, WB, DEF, 0.1, "°C", "ESU1 Battery Pack3 Maximum Temperature"),
	REG(38453, FH, 1, I16, WB, DEF, 0.1, "°C", "ESU1 Battery Pack3 Minimum Temperature"),
	REG(38454, FH, 1, I16, WB, DEF, 0.1, "°C", "ESU1 Battery Pack2 Maximum Temperature"),
	REG(38455, FH, 1, I16, WB, DEF, 0.1, "°C", "ESU1 Battery Pack2 Minimum Temperature"),
	REG(38456, FH, 1, I16, WB, DEF, 0.1, "°C", "ESU1 Battery Pack1 Maximum Temperature"),
	REG(38457, FH, 1, I16, WB, DEF, 0.1, "°C", "ESU1 Battery Pack1 Minimum Temperature"),
	REG(47200, FH, 41, MLD, WB, DEF, 1, "N/A", "Fixed Charging Discharging Periods"),
	REG(47255, FH, 43, BYTES, WB, DEF, 1, "N/A", "Time Of Use Charging Discharging Periods"),
};

static const struct mb_block huawei_hybrid_blocks[] = {
	{ .fc = FH, .addr = 30000, .count = 125 }, { .fc = FH, .addr = 32000, .count = 125 },
	{ .fc = FH, .addr = 37000, .count = 70 },  { .fc = FH, .addr = 37700, .count = 100 },
	{ .fc = FH, .addr = 47000, .count = 1 },   { .fc = FH, .addr = 47028, .count = 62 },
	{ .fc = FH, .addr = 47100, .count = 10 },  { .fc = FH, .addr = 47242, .count = 9 },
	{ .fc = FH, .addr = 47299, .count = 1 },   { .fc = FH, .addr = 47415, .count = 20 },
	{ .fc = FH, .addr = 47590, .count = 2 },   { .fc = FH, .addr = 47604, .count = 2 },
	{ .fc = FH, .addr = 47750, .count = 6 },   { .fc = FH, .addr = 37100, .count = 39 },
};

/* Battery control, Huawei "SUN2000 Modbus Interface Definitions" (V3.0
 * and later), energy storage holding registers:
 *  - 47075 / 47077 maximum charging / discharging power, U32, W;
 *  - 47083 forced charging and discharging period, U16, minutes: a forcible
 *    charge or discharge ends by itself when it runs out, which is the
 *    remote-control timeout (2 min here; every 30 s egwd rewrites it and
 *    the current command, as the period counts from the command);
 *  - 47100 forcible charge/discharge: 0 stop, 1 charge, 2 discharge;
 *  - 47246 forcible charge/discharge setting mode: 0 duration (47083);
 *  - 47247 / 47249 forcible charge / discharge power, U32, W. */
static const struct bctl_write huawei_luna_take[] = {
	{ .addr = 47246, .count = 1, .values = { 0 } },
	{ .addr = 47083, .count = 1, .values = { 2 } },
};

static const struct bctl_write huawei_luna_release[] = {
	{ .addr = 47100, .count = 1, .values = { 0 } },
};

static const struct battery_control huawei_luna_control = {
	.doc = "Huawei SUN2000 Modbus Interface Definitions, forcible charge/discharge 47083-47249",
	.take = huawei_luna_take,
	.ntake = ARRAY_SIZE(huawei_luna_take),
	.release = huawei_luna_release,
	.nrelease = ARRAY_SIZE(huawei_luna_release),
	.keepalive = &huawei_luna_take[1],
	.nkeepalive = 1,
	.keepalive_ms = 30000,
	.timeout_s = 120,
	.layout = BCTL_POWER_PAIR_U32_THEN_CMD,
	.cmd_addr = 47100,
	.cmd_charge = 1,
	.cmd_discharge = 2,
	.cmd_stop = 0,
	.cmd_zero = 1, /* forcible charge at 0 W: 47100 = 0 would end the forcible mode */
	.power_addr = 47247,
	.power_max_w = 1000000,
	.limit_charge_addr = 47075,
	.limit_discharge_addr = 47077,
};

const struct profile profile_huawei_hybrid = {
	.name = "huawei_hybrid",
	.brand = "Huawei",
	.family = "huawei",
	.dtype = "hybrid",
	PROFILE_TABLE(huawei_hybrid_regs),
	PROFILE_BLOCKS(huawei_hybrid_blocks),
	.short_reads_fields = true,
	.serial = &huawei_hybrid_regs[0],
	.frequency = &huawei_hybrid_regs[1],
	.short_extra = huawei_short_extra,
	.nshort_extra = sizeof(huawei_short_extra) / sizeof((huawei_short_extra)[0]),
	.fixup = huawei_fixup,
	.encode_fixup = huawei_encode_fixup,
	.control = &huawei_luna_control,
};
