/* Sungrow profiles: sungrow, and sungrow_sf (the same SH hybrid map read with
 * fewer blocks, frequency at 0.01 Hz from input 5241).
 *
 * Sungrow "Communication Protocol of Residential Hybrid Inverter" (SH*RS/RT,
 * TI_20190723 and later) and "Communication Protocol of PV Grid-Connected
 * String Inverters" (SG*, TI_20171026 and later), input registers numbered
 * from 1 there, zero-based here (document 5036 = 5035):
 *  - 5035 grid frequency, 0.1 Hz (document 5036).  A 0.01-Hz value there is a
 *    quirk of some WiNet-S firmware; the 0.01-Hz register is 5241 (doc 5242);
 *  - 5600-5601 meter active power, S32, W, positive = import (doc 5601-5602,
 *    SH only); 5602/5604/5606 the meter's phase powers;
 *  - 13009 export power (S32, positive = export), 13033 the inverter's own
 *    total active power (S32, positive = output; published as inverter.W, not
 *    as the meter's power);
 *  - 13020 battery current is documented U16 but real SH inverters send it
 *    signed: read as S16, its direction set like the battery power's.
 *
 *  - 5600-5607 read 0x7FFFFFFF (S32 "not available") on an SH with no meter
 *    connected (the widely used Home Assistant register maps test for that
 *    value).  The inverter then has no grid reading at all: sungrow_fixup
 *    drops every field that comes from the meter (power, phase powers and
 *    currents, import/export totals, which such an inverter leaves at 0),
 *    and keeps the voltages and frequency the inverter measures itself.
 *
 * Variants: the 13000 block (battery, energy totals) and 5600-5607 exist
 * only on SH hybrids; an SG string inverter answers exception 2 (illegal
 * data address) for them, so battery and meter fields stay absent.  Its
 * lifetime yield is 5003-5004 (doc 5004-5005 "total power yields", U32 low
 * word first, 1 kWh; on SH the same register counts 0.1 kWh of PV and battery
 * output), so sungrow_fixup takes pv.total_generation_Wh from there,
 * pv.daily_generation_Wh from 5002 (doc 5003 "daily power yields", U16,
 * 0.1 kWh; on SH "daily output energy" of PV and battery), and inverter.W
 * from 5030-5031 (doc 5031-5032 "total active power", U32, W), when, and
 * only when, the 13000 block answered exception 2.  On an SH the daily
 * yield is 13001 (doc 13002 "daily PV generation", U16, 0.1 kWh), the PV
 * counterpart of 13002's lifetime PV generation.
 *
 * Where these tables leave the reference:
 *  - [key] 5016 is read low word first like the [def] row (README: [def] wins);
 *  - 13026 Total Battery Discharge Energy feeds battery.total_discharge_Wh (the
 *    reference maps it to total_charge_Wh, then overwrites that with 13040);
 *  - 13021 Battery Power is unsigned; the table maps battery.W = -value as the
 *    reference does, and sungrow_fixup turns it positive (charging) when bit 1
 *    "charging" of 13000 Running State is set, so charging is not lost.
 * Rows written from the reference register table (inverter-registers.tsv);
 * test_profiles_tsv holds them against it row by row. */
#include <math.h>

#include "base/err.h"
#include "base/util.h"
#include "profiles/table.h"

#define RUN_STATE 13000
#define RUN_CHARGING (1u << 1)
#define RUN_DISCHARGING (1u << 2)
#define BATTERY_POWER 13021
#define HYBRID_BLOCK 12999

#define METER_POWER 5600
#define METER_ABSENT 0x7FFFFFFFu

/* Did an SH say it has no meter (its meter power not available)? */
static bool no_meter(const struct block_result *res, unsigned nres)
{
	static const struct reg_def power = { .addr = METER_POWER,
					      .fc = REG_FC_INPUT,
					      .words = 2,
					      .type = REG_I32,
					      .order = WO_LITTLE };
	const uint16_t *w = profile_find_words(&power, res, nres);

	return w && ((uint32_t)w[1] << 16 | w[0]) == METER_ABSENT;
}

/* Did the device answer "illegal data address" for the hybrid-only block? */
/* What sungrow_fixup reads besides the fields: the running state (with the
 * first register of its block, whose failure marks a string inverter) and
 * the string inverter's yield and power. */
static const struct reg_def sungrow_short_extra[] = {
	{ .addr = HYBRID_BLOCK,
	  .fc = REG_FC_INPUT,
	  .words = 2,
	  .type = REG_U32,
	  .sf_addr = REG_NO_SF,
	  .field = REG_NO_FIELD },
	{ .addr = 5002,
	  .fc = REG_FC_INPUT,
	  .words = 1,
	  .type = REG_U16,
	  .sf_addr = REG_NO_SF,
	  .field = REG_NO_FIELD },
	{ .addr = 5003,
	  .fc = REG_FC_INPUT,
	  .words = 2,
	  .type = REG_U32,
	  .sf_addr = REG_NO_SF,
	  .field = REG_NO_FIELD },
	{ .addr = 5030,
	  .fc = REG_FC_INPUT,
	  .words = 2,
	  .type = REG_U32,
	  .sf_addr = REG_NO_SF,
	  .field = REG_NO_FIELD },
};

static bool string_inverter(const struct block_result *res, unsigned nres)
{
	for (unsigned i = 0; i < nres; i++)
		if (res[i].b.fc == REG_FC_INPUT && res[i].b.addr == HYBRID_BLOCK)
			return res[i].err == -(EGW_EMB_EXCEPTION_BASE + 2);
	return false;
}

static int sungrow_fixup(const struct profile *p, const struct block_result *res, unsigned nres,
			 struct reading *r)
{
	static const struct reg_def state = { .addr = RUN_STATE,
					      .fc = REG_FC_INPUT,
					      .words = 1,
					      .type = REG_U16,
					      .scale = 1 };
	/* SG document 5004-5005 "total power yields", 1 kWh */
	static const struct reg_def yield = { .addr = 5003,
					      .fc = REG_FC_INPUT,
					      .words = 2,
					      .type = REG_U32,
					      .order = WO_LITTLE,
					      .scale = 1,
					      .sf_addr = REG_NO_SF,
					      .field = RF_PV_TOTAL_GENERATION_WH,
					      .mul = 1000 };
	/* SG document 5003 "daily power yields", 0.1 kWh */
	static const struct reg_def day = { .addr = 5002,
					    .fc = REG_FC_INPUT,
					    .words = 1,
					    .type = REG_U16,
					    .order = WO_BIG,
					    .scale = 0.1,
					    .sf_addr = REG_NO_SF,
					    .field = RF_PV_DAILY_GENERATION_WH,
					    .mul = 1000 };
	/* SG document 5031-5032 "total active power", W */
	static const struct reg_def active = { .addr = 5030,
					       .fc = REG_FC_INPUT,
					       .words = 2,
					       .type = REG_U32,
					       .order = WO_LITTLE,
					       .scale = 1,
					       .sf_addr = REG_NO_SF,
					       .field = RF_INVERTER_W,
					       .mul = -1 };
	const uint16_t *w = profile_find_words(&state, res, nres);
	double v;

	(void)p;
	if (w && (w[0] & RUN_CHARGING) && !(w[0] & RUN_DISCHARGING)) {
		r->v[RF_BATTERY_W] = fabs(r->v[RF_BATTERY_W]);
		r->v[RF_BATTERY_A] = fabs(r->v[RF_BATTERY_A]);
	} else if (w && (w[0] & RUN_DISCHARGING)) {
		r->v[RF_BATTERY_A] = -fabs(r->v[RF_BATTERY_A]);
	}
	if (no_meter(res, nres)) {
		static const enum reading_field meter[] = {
			RF_METER_W,
			RF_METER_L1_W,
			RF_METER_L2_W,
			RF_METER_L3_W,
			RF_METER_L1_A,
			RF_METER_L2_A,
			RF_METER_L3_A,
			RF_METER_TOTAL_IMPORT_WH,
			RF_METER_TOTAL_EXPORT_WH,
		};
		for (unsigned i = 0; i < sizeof(meter) / sizeof(meter[0]); i++)
			r->v[meter[i]] = NAN;
	}
	if (string_inverter(res, nres)) {
		if (profile_decode_value(&yield, res, nres, &v) == 0)
			r->v[RF_PV_TOTAL_GENERATION_WH] = v;
		if (profile_decode_value(&day, res, nres, &v) == 0)
			r->v[RF_PV_DAILY_GENERATION_WH] = v;
		if (profile_decode_value(&active, res, nres, &v) == 0)
			r->v[RF_INVERTER_W] = v;
	}
	return 0;
}

/* The inverse: magnitude in 13021, direction in the running state bits. */
static int sungrow_encode_fixup(const struct profile *p, const struct reading *r,
				struct regimage *img)
{
	double w = r->v[RF_BATTERY_W];
	uint16_t st[1] = { 0 };

	(void)p;
	regimage_get(img, REG_FC_INPUT, RUN_STATE, 1, st);
	st[0] &= (uint16_t) ~(RUN_CHARGING | RUN_DISCHARGING);
	if (w > 0) {
		st[0] |= RUN_CHARGING;
		regimage_set(img, REG_FC_INPUT, BATTERY_POWER,
			     w > 0xFFFE ? 0xFFFF : (uint16_t)lround(w));
	} else if (w < 0) {
		st[0] |= RUN_DISCHARGING;
	}
	regimage_set(img, REG_FC_INPUT, RUN_STATE, st[0]);
	return 0;
}

static const struct reg_def sungrow_regs[] = {
	REG(4989, FI, 10, STR, WB, SN, 1, "-", "serial number used as device identity"),
	REG(5035, FI, 1, U16, WB, KEY, 0.1, "Hz", "Grid frequency"),
	REG(5016, FI, 2, U32, WL, KEY, 1, "W", "DC Power"),
	REG(13033, FI, 2, I32, WL, KEY, 1, "W", "Total active power"),
	REG(13021, FI, 1, U16, WB, KEY, 1, "W", "Battery power"),
	REG(4949, FI, 2, U32, WB, DEF, 1, "-", "Protocol Number"),
	REG(4951, FI, 2, U32, WB, DEF, 1, "-", "Protocol Version"),
	REG(4953, FI, 15, U16, WB, DEF, 1, "-", "ARM Software Version"),
	REG(4968, FI, 15, U16, WB, DEF, 1, "-", "DSP Software Version"),
	REG(4989, FI, 10, U16, WB, DEF, 1, "-", "Serial Number"),
	REG(4999, FI, 1, U16, WB, DEF, 1, "-", "Device Type Code"),
	REG_MAP(5000, FI, 1, U16, WB, DEF, 0.1, "kW", "Nominal Output Power", RF_PV_RATED_POWER_W,
		1000),
	REG(5001, FI, 1, U16, WB, DEF, 1, "-", "Output Type"),
	REG(5002, FI, 1, U16, WB, DEF, 0.1, "kWh", "Daily Output Energy"),
	REG(5003, FI, 2, U32, WL, DEF, 0.1, "kWh", "Total Output Energy"),
	REG_MAP(5007, FI, 1, I16, WB, DEF, 0.1, "°C", "Inside Temperature", RF_PV_HEATSINK_C, 1),
	REG_MAP(5010, FI, 1, U16, WB, DEF, 0.1, "V", "MPPT 1 Voltage", RF_PV_MPPT1_V, 1),
	REG_MAP(5011, FI, 1, U16, WB, DEF, 0.1, "A", "MPPT 1 Current", RF_PV_MPPT1_A, 1),
	REG_MAP(5012, FI, 1, U16, WB, DEF, 0.1, "V", "MPPT 2 Voltage", RF_PV_MPPT2_V, 1),
	REG_MAP(5013, FI, 1, U16, WB, DEF, 0.1, "A", "MPPT 2 Current", RF_PV_MPPT2_A, 1),
	REG(5014, FI, 1, U16, WB, DEF, 0.1, "V", "MPPT 3 Voltage"),
	REG(5015, FI, 1, U16, WB, DEF, 0.1, "A", "MPPT 3 Current"),
	REG_MAP(5016, FI, 2, U32, WL, DEF, 1, "W", "Total DC Power", RF_PV_W, -1),
	REG_MAP(5018, FI, 1, U16, WB, DEF, 0.1, "V", "A-B Line/Phase A Voltage", RF_METER_L1_V, 1),
	REG_MAP(5019, FI, 1, U16, WB, DEF, 0.1, "V", "B-C Line/Phase B Voltage", RF_METER_L2_V, 1),
	REG_MAP(5020, FI, 1, U16, WB, DEF, 0.1, "V", "C-A Line/Phase C Voltage", RF_METER_L3_V, 1),
	REG(5032, FI, 2, I32, WL, DEF, 1, "var", "Reactive Power"),
	REG(5034, FI, 1, I16, WB, DEF, 0.001, "-", "Power Factor"),
	REG_MAP(5035, FI, 1, U16, WB, DEF, 0.1, "Hz", "Grid Frequency", RF_METER_HZ, 1),
	REG(5213, FI, 2, I32, WB, DEF, 1, "W", "Battery power"),
	/* SH document 5601-5602 "meter active power", import positive */
	REG_MAP(5600, FI, 2, I32, WL, DOC, 1, "W", "Meter active power", RF_METER_W, 1),
	REG_MAP(5602, FI, 2, I32, WL, DEF, 1, "W", "Meter Phase A Active Power", RF_METER_L1_W, 1),
	REG_MAP(5604, FI, 2, I32, WL, DEF, 1, "W", "Meter Phase B Active Power", RF_METER_L2_W, 1),
	REG_MAP(5606, FI, 2, I32, WL, DEF, 1, "W", "Meter Phase C Active Power", RF_METER_L3_W, 1),
	REG(5621, FI, 1, U16, WB, DEF, 10, "W", "Export Limit Minimum"),
	REG(5622, FI, 1, U16, WB, DEF, 10, "W", "Export Limit Maximum"),
	REG(5627, FI, 1, U16, WB, DEF, 100, "W", "BDC Rated Power"),
	REG(5634, FI, 1, U16, WB, DEF, 1, "A", "Max Charging Current"),
	REG(5635, FI, 1, U16, WB, DEF, 1, "A", "Max Discharging Current"),
	REG(6099, FI, 96, U16, WB, DEF, 1, "W", "PV Power Today"),
	REG(6195, FI, 31, U16, WB, DEF, 0.1, "kWh", "Daily PV Energy Yields"),
	REG(6226, FI, 12, U16, WB, DEF, 1, "kWh", "Monthly PV Energy Yields"),
	REG(6249, FI, 40, U32, WL, DEF, 0.1, "kWh", "Yearly PV Energy Yields"),
	REG(6289, FI, 96, U16, WB, DEF, 1, "W", "Direct Power Consumption from PV Today"),
	REG(6385, FI, 31, U16, WB, DEF, 0.1, "kWh", "Daily Direct Energy Consumption from PV"),
	REG(6416, FI, 12, U16, WB, DEF, 0.1, "kWh", "Monthly Direct Energy Consumption from PV"),
	REG(6428, FI, 40, U32, WL, DEF, 0.1, "kWh", "Yearly Direct Energy Consumption from PV"),
	REG(6468, FI, 96, U16, WB, DEF, 1, "W", "Export Power from PV Today"),
	REG(6564, FI, 31, U16, WB, DEF, 0.1, "kWh", "Daily Export Energy from PV"),
	REG(6595, FI, 12, U16, WB, DEF, 1, "kWh", "Monthly Export Energy from PV"),
	REG(6607, FI, 40, U32, WL, DEF, 0.1, "kWh", "Yearly Export Energy from PV"),
	REG(6647, FI, 96, U16, WB, DEF, 1, "W", "Battery Charge Power Today"),
	REG(6743, FI, 31, U16, WB, DEF, 0.1, "kWh", "Daily Battery Charge Energy from PV"),
	REG(6774, FI, 12, U16, WB, DEF, 1, "kWh", "Monthly Battery Charge Energy from PV"),
	REG(6786, FI, 40, U32, WL, DEF, 0.1, "kWh", "Yearly Battery Charge Energy from PV"),
	REG(12999, FI, 1, U16, WB, DEF, 1, "-", "System State"),
	REG(13000, FI, 1, U16, WB, DEF, 1, "-", "Running State"),
	REG_MAP(13001, FI, 1, U16, WB, DEF, 0.1, "kWh", "Daily PV Generation",
		RF_PV_DAILY_GENERATION_WH, 1000),
	REG_MAP(13002, FI, 2, U32, WL, DEF, 0.1, "kWh", "Total PV Generation",
		RF_PV_TOTAL_GENERATION_WH, 1000),
	REG(13004, FI, 1, U16, WB, DEF, 0.1, "kW", "Daily Export Power from PV"),
	REG(13005, FI, 2, U32, WL, DEF, 0.1, "kWh", "Total Export Energy from PV"),
	REG(13007, FI, 2, I32, WL, DEF, 1, "W", "Load Power"),
	REG(13009, FI, 2, I32, WL, DEF, 1, "W", "Export Power"),
	REG(13011, FI, 1, U16, WB, DEF, 0.1, "kWh", "Daily Battery Charge Energy from PV"),
	REG(13012, FI, 2, U32, WL, DEF, 0.1, "kWh", "Total Battery Charge Energy from PV"),
	REG(13014, FI, 2, U32, WL, DEF, 0.1, "kg", "CO2 Reduction"),
	REG(13016, FI, 1, U16, WB, DEF, 0.1, "kWh", "Daily Direct Energy Consumption"),
	REG(13017, FI, 2, U32, WL, DEF, 0.1, "kWh", "Total Direct Energy Consumption"),
	REG_MAP(13019, FI, 1, U16, WB, DEF, 0.1, "V", "Battery Voltage", RF_BATTERY_V, 1),
	REG_MAP(13020, FI, 1, I16, WB, DEF, 0.1, "A", "Battery Current", RF_BATTERY_A, 1),
	REG_MAP(13021, FI, 1, U16, WB, DEF, 1, "W", "Battery Power", RF_BATTERY_W, -1),
	REG_MAP(13022, FI, 1, U16, WB, DEF, 0.1, "%", "Battery Level", RF_BATTERY_SOC_NOM_FRACT,
		0.01),
	REG(13023, FI, 1, U16, WB, DEF, 0.1, "%", "Battery State of Health"),
	REG_MAP(13024, FI, 1, I16, WB, DEF, 0.1, "°C", "Battery Temperature", RF_BATTERY_HEATSINK_C,
		1),
	REG(13025, FI, 1, U16, WB, DEF, 0.1, "kWh", "Daily Battery Discharge Energy"),
	REG_MAP(13026, FI, 2, U32, WL, DEF, 0.1, "kWh", "Total Battery Discharge Energy",
		RF_BATTERY_TOTAL_DISCHARGE_WH, 1000),
	REG(13028, FI, 1, U16, WB, DEF, 0.1, "%", "Self-consumption Today"),
	REG(13029, FI, 1, U16, WB, DEF, 1, "-", "Grid State"),
	REG_MAP(13030, FI, 1, I16, WB, DEF, 0.1, "A", "Phase A Current", RF_METER_L1_A, -1),
	REG_MAP(13031, FI, 1, I16, WB, DEF, 0.1, "A", "Phase B Current", RF_METER_L2_A, -1),
	REG_MAP(13032, FI, 1, I16, WB, DEF, 0.1, "A", "Phase C Current", RF_METER_L3_A, -1),
	REG_MAP(13033, FI, 2, I32, WL, DEF, 1, "W", "Total Active Power", RF_INVERTER_W, -1),
	REG(13035, FI, 1, U16, WB, DEF, 0.1, "kWh", "Daily Import Energy"),
	REG_MAP(13036, FI, 2, U32, WL, DEF, 0.1, "kWh", "Total Import Energy",
		RF_METER_TOTAL_IMPORT_WH, 1000),
	REG(13038, FI, 1, U16, WB, DEF, 0.1, "kWh/Ah", "Battery Capacity"),
	REG(13039, FI, 1, U16, WB, DEF, 0.1, "kWh", "Daily Charge Energy"),
	REG_MAP(13040, FI, 2, U32, WL, DEF, 0.1, "kWh", "Total Charge Energy",
		RF_BATTERY_TOTAL_CHARGE_WH, 1000),
	REG(13042, FI, 1, U16, WB, DEF, 1, "-", "DRM State"),
	REG(13044, FI, 1, U16, WB, DEF, 0.1, "kWh", "Daily Export Energy"),
	REG_MAP(13045, FI, 2, U32, WL, DEF, 0.1, "kWh", "Total Export Energy",
		RF_METER_TOTAL_EXPORT_WH, 1000),
	REG(13049, FH, 1, U16, WB, DEF, 1, "-", "Grid Mode"),
	REG(13050, FH, 1, U16, WB, DEF, 1, "-", "Charge/discharge command"),
	REG(13051, FH, 1, U16, WB, DEF, 1, "W", "Charge/discharge power"),
	REG(13053, FH, 2, U32, WB, DEF, 1, "-", "System Fault 1"),
	REG(13055, FH, 2, U32, WB, DEF, 1, "-", "System Fault 2"),
	REG(13057, FH, 1, U16, WB, DEF, 0.1, "%", "Max SoC"),
	REG(13058, FH, 1, U16, WB, DEF, 0.1, "%", "Min SoC"),
	REG(13061, FH, 2, U32, WB, DEF, 1, "-", "BDC-side Fault"),
	REG(13063, FH, 2, U32, WB, DEF, 1, "-", "BDC-side Permanent Fault"),
	REG(13065, FH, 2, U32, WB, DEF, 1, "-", "Battery Fault"),
	REG(13067, FH, 2, U32, WB, DEF, 1, "-", "Battery Alarm"),
	REG(13069, FH, 2, U32, WB, DEF, 1, "-", "BMS Alarm"),
	REG(13071, FH, 2, U32, WB, DEF, 1, "-", "BMS Protection"),
	REG(13073, FH, 1, U16, WB, DEF, 1, "W", "Export power limitation"),
	REG(13075, FH, 2, U32, WB, DEF, 1, "-", "BMS Fault 2"),
	REG(13077, FH, 2, U32, WB, DEF, 1, "-", "BMS Alarm 2"),
	REG(13086, FH, 1, U16, WB, DEF, 1, "W", "Export power limitation"),
	REG(13099, FH, 1, U16, WB, DEF, 1, "-", "BMS Status"),
	REG(13100, FI, 1, U16, WB, DEF, 1, "A", "Max Charging Current"),
	REG(13101, FI, 1, U16, WB, DEF, 1, "A", "Max Discharging Current"),
	REG(13102, FI, 1, U16, WB, DEF, 1, "-", "BMS Warning"),
	REG(13103, FI, 1, U16, WB, DEF, 1, "-", "BMS Protection Status"),
	REG(13104, FI, 1, U16, WB, DEF, 1, "-", "BMS Fault 1 Status"),
	REG(13105, FI, 1, U16, WB, DEF, 1, "-", "BMS Fault 2 Status"),
	REG(13106, FI, 1, U16, WB, DEF, 1, "%", "State of Charge"),
	REG(13107, FI, 1, U16, WB, DEF, 1, "%", "State of Health"),
	REG(13108, FI, 1, U16, WB, DEF, 0.1, "A", "Battery Current"),
	REG(13109, FI, 1, U16, WB, DEF, 0.01, "V", "Battery Voltage"),
	REG(13110, FI, 1, U16, WB, DEF, 1, "-", "Battery Cycle Count"),
	REG(13111, FI, 1, U16, WB, DEF, 1, "V", "Average Cell Voltage"),
	REG(13112, FI, 1, U16, WB, DEF, 1, "V", "Maximum Cell Voltage"),
	REG(13113, FI, 1, U16, WB, DEF, 1, "V", "Minimum Cell Voltage"),
	REG(13114, FI, 1, U16, WB, DEF, 1, "V", "Battery Pack Voltage"),
	REG(13115, FI, 1, I16, WB, DEF, 1, "°C", "Average Cell Temperature"),
	REG(13116, FI, 1, I16, WB, DEF, 1, "°C", "Maximum Cell Temperature"),
	REG(13117, FI, 1, I16, WB, DEF, 1, "°C", "Minimum Cell Temperature"),
	REG(33041, FH, 1, U16, WB, DEF, 0.1, "V", "Charge Cutoff Voltage"),
	REG(33046, FH, 1, U16, WB, DEF, 0.01, "kW", "Max. Charging Power"),
	REG(33047, FH, 1, U16, WB, DEF, 0.01, "kW", "Max. Discharging Power"),
	REG(33147, FH, 1, U16, WB, DEF, 0.01, "kW", "Charging/Discharging Power"),
	REG(31221, FH, 1, U16, WB, DEF, 0.01, "kW", "Feed-in Limitation"),
	REG(33207, FH, 1, U16, WB, DEF, 1, "-", "Forced Charging"),
};

static const struct mb_block sungrow_blocks[] = {
	{ .fc = FI, .addr = 4949, .count = 87 },
	{ .fc = FI, .addr = 5213, .count = 28 },
	{ .fc = FI, .addr = 5602, .count = 36 },
	{ .fc = FI, .addr = 5600, .count = 2 }, /* [doc] meter active power */
	{ .fc = FI, .addr = 6099, .count = 96 },
	{ .fc = FI, .addr = 6195, .count = 94 },
	{ .fc = FI, .addr = 6289, .count = 96 },
	{ .fc = FI, .addr = 6385, .count = 83 },
	{ .fc = FI, .addr = 6468, .count = 96 },
	{ .fc = FI, .addr = 6564, .count = 83 },
	{ .fc = FI, .addr = 6647, .count = 96 },
	{ .fc = FI, .addr = 6743, .count = 83 },
	{ .fc = FI, .addr = 12999, .count = 119 },
	{ .fc = FH, .addr = 13049, .count = 51 },
	{ .fc = FH, .addr = 33041, .count = 7 },
	{ .fc = FH, .addr = 33147, .count = 1 },
	{ .fc = FH, .addr = 31221, .count = 1 },
	{ .fc = FH, .addr = 33207, .count = 2 },
};

const struct profile profile_sungrow = {
	.name = "sungrow",
	.brand = "Sungrow",
	.family = "sungrow",
	.dtype = "hybrid",
	PROFILE_TABLE(sungrow_regs),
	PROFILE_BLOCKS(sungrow_blocks),
	.short_reads_fields = true,
	.short_extra = sungrow_short_extra,
	.nshort_extra = sizeof(sungrow_short_extra) / sizeof((sungrow_short_extra)[0]),
	.serial = &sungrow_regs[0],
	.frequency = &sungrow_regs[1],
	.fixup = sungrow_fixup,
	.encode_fixup = sungrow_encode_fixup,
};


static const struct reg_def sungrow_sf_regs[] = {
	REG(4989, FI, 10, STR, WB, SN, 1, "-", "serial number used as device identity"),
	REG(5035, FI, 1, U16, WB, KEY, 0.1, "Hz", "Grid frequency"),
	REG(5016, FI, 2, U32, WL, KEY, 1, "W", "DC Power"),
	REG(4949, FI, 2, U32, WB, DEF, 1, "-", "Protocol Number"),
	REG(4951, FI, 2, U32, WB, DEF, 1, "-", "Protocol Version"),
	REG(4953, FI, 15, U16, WB, DEF, 1, "-", "ARM Software Version"),
	REG(4968, FI, 15, U16, WB, DEF, 1, "-", "DSP Software Version"),
	REG(4989, FI, 10, U16, WB, DEF, 1, "-", "Serial Number"),
	REG(4999, FI, 1, U16, WB, DEF, 1, "-", "Device Type Code"),
	REG_MAP(5000, FI, 1, U16, WB, DEF, 0.1, "kW", "Nominal Output Power", RF_PV_RATED_POWER_W,
		1000),
	REG(5001, FI, 1, U16, WB, DEF, 1, "-", "Output Type"),
	REG(5002, FI, 1, U16, WB, DEF, 0.1, "kWh", "Daily Output Energy"),
	REG(5003, FI, 2, U32, WL, DEF, 0.1, "kWh", "Total Output Energy"),
	REG_MAP(5007, FI, 1, I16, WB, DEF, 0.1, "°C", "Inside Temperature", RF_PV_HEATSINK_C, 1),
	REG_MAP(5010, FI, 1, U16, WB, DEF, 0.1, "V", "MPPT 1 Voltage", RF_PV_MPPT1_V, 1),
	REG_MAP(5011, FI, 1, U16, WB, DEF, 0.1, "A", "MPPT 1 Current", RF_PV_MPPT1_A, 1),
	REG_MAP(5012, FI, 1, U16, WB, DEF, 0.1, "V", "MPPT 2 Voltage", RF_PV_MPPT2_V, 1),
	REG_MAP(5013, FI, 1, U16, WB, DEF, 0.1, "A", "MPPT 2 Current", RF_PV_MPPT2_A, 1),
	REG(5014, FI, 1, U16, WB, DEF, 0.1, "V", "MPPT 3 Voltage"),
	REG(5015, FI, 1, U16, WB, DEF, 0.1, "A", "MPPT 3 Current"),
	REG_MAP(5016, FI, 2, U32, WL, DEF, 1, "W", "Total DC Power", RF_PV_W, -1),
	REG_MAP(5018, FI, 1, U16, WB, DEF, 0.1, "V", "A-B Line/Phase A Voltage", RF_METER_L1_V, 1),
	REG_MAP(5019, FI, 1, U16, WB, DEF, 0.1, "V", "B-C Line/Phase B Voltage", RF_METER_L2_V, 1),
	REG_MAP(5020, FI, 1, U16, WB, DEF, 0.1, "V", "C-A Line/Phase C Voltage", RF_METER_L3_V, 1),
	REG(5032, FI, 2, I32, WL, DEF, 1, "var", "Reactive Power"),
	REG(5034, FI, 1, I16, WB, DEF, 0.001, "-", "Power Factor"),
	REG_MAP(5035, FI, 1, U16, WB, DEF, 0.1, "Hz", "Grid Frequency", RF_METER_HZ, 1),
	REG(5621, FI, 1, U16, WB, DEF, 10, "W", "Export Limit Minimum"),
	REG(5622, FI, 1, U16, WB, DEF, 10, "W", "Export Limit Maximum"),
	REG(5627, FI, 1, U16, WB, DEF, 100, "W", "BDC Rated Power"),
	REG(5634, FI, 1, U16, WB, DEF, 1, "A", "Max Charging Current"),
	REG(5635, FI, 1, U16, WB, DEF, 1, "A", "Max Discharging Current"),
	REG(6099, FI, 96, U16, WB, DEF, 1, "W", "PV Power Today"),
	REG(6195, FI, 31, U16, WB, DEF, 0.1, "kWh", "Daily PV Energy Yields"),
	REG(6226, FI, 12, U16, WB, DEF, 1, "kWh", "Monthly PV Energy Yields"),
	REG(6249, FI, 40, U32, WL, DEF, 0.1, "kWh", "Yearly PV Energy Yields"),
	REG(6289, FI, 96, U16, WB, DEF, 1, "W", "Direct Power Consumption from PV Today"),
	REG(6385, FI, 31, U16, WB, DEF, 0.1, "kWh", "Daily Direct Energy Consumption from PV"),
	REG(6416, FI, 12, U16, WB, DEF, 0.1, "kWh", "Monthly Direct Energy Consumption from PV"),
	REG(6428, FI, 40, U32, WL, DEF, 0.1, "kWh", "Yearly Direct Energy Consumption from PV"),
	REG(6468, FI, 96, U16, WB, DEF, 1, "W", "Export Power from PV Today"),
	REG(6564, FI, 31, U16, WB, DEF, 0.1, "kWh", "Daily Export Energy from PV"),
	REG(6595, FI, 12, U16, WB, DEF, 1, "kWh", "Monthly Export Energy from PV"),
	REG(6607, FI, 40, U32, WL, DEF, 0.1, "kWh", "Yearly Export Energy from PV"),
	REG(6647, FI, 96, U16, WB, DEF, 1, "W", "Battery Charge Power Today"),
	REG(6743, FI, 31, U16, WB, DEF, 0.1, "kWh", "Daily Battery Charge Energy from PV"),
	REG(6774, FI, 12, U16, WB, DEF, 1, "kWh", "Monthly Battery Charge Energy from PV"),
	REG(6786, FI, 40, U32, WL, DEF, 0.1, "kWh", "Yearly Battery Charge Energy from PV"),
	REG(12999, FI, 1, U16, WB, DEF, 1, "-", "System State"),
	REG(13000, FI, 1, U16, WB, DEF, 1, "-", "Running State"),
	REG_MAP(13001, FI, 1, U16, WB, DEF, 0.1, "kWh", "Daily PV Generation",
		RF_PV_DAILY_GENERATION_WH, 1000),
	REG_MAP(13002, FI, 2, U32, WL, DEF, 0.1, "kWh", "Total PV Generation",
		RF_PV_TOTAL_GENERATION_WH, 1000),
	REG(13004, FI, 1, U16, WB, DEF, 0.1, "kW", "Daily Export Power from PV"),
	REG(13005, FI, 2, U32, WL, DEF, 0.1, "kWh", "Total Export Energy from PV"),
	REG(13007, FI, 2, I32, WL, DEF, 1, "W", "Load Power"),
	REG(13009, FI, 2, I32, WL, DEF, 1, "W", "Export Power"),
	REG(13011, FI, 1, U16, WB, DEF, 0.1, "kWh", "Daily Battery Charge Energy from PV"),
	REG(13012, FI, 2, U32, WL, DEF, 0.1, "kWh", "Total Battery Charge Energy from PV"),
	REG(13014, FI, 2, U32, WL, DEF, 0.1, "kg", "CO2 Reduction"),
	REG(13016, FI, 1, U16, WB, DEF, 0.1, "kWh", "Daily Direct Energy Consumption"),
	REG(13017, FI, 2, U32, WL, DEF, 0.1, "kWh", "Total Direct Energy Consumption"),
	REG_MAP(13019, FI, 1, U16, WB, DEF, 0.1, "V", "Battery Voltage", RF_BATTERY_V, 1),
	REG_MAP(13020, FI, 1, I16, WB, DEF, 0.1, "A", "Battery Current", RF_BATTERY_A, 1),
	REG_MAP(13021, FI, 1, U16, WB, DEF, 1, "W", "Battery Power", RF_BATTERY_W, -1),
	REG_MAP(13022, FI, 1, U16, WB, DEF, 0.1, "%", "Battery Level", RF_BATTERY_SOC_NOM_FRACT,
		0.01),
	REG(13023, FI, 1, U16, WB, DEF, 0.1, "%", "Battery State of Health"),
	REG_MAP(13024, FI, 1, I16, WB, DEF, 0.1, "°C", "Battery Temperature", RF_BATTERY_HEATSINK_C,
		1),
	REG(13025, FI, 1, U16, WB, DEF, 0.1, "kWh", "Daily Battery Discharge Energy"),
	REG_MAP(13026, FI, 2, U32, WL, DEF, 0.1, "kWh", "Total Battery Discharge Energy",
		RF_BATTERY_TOTAL_DISCHARGE_WH, 1000),
	REG(13028, FI, 1, U16, WB, DEF, 0.1, "%", "Self-consumption Today"),
	REG(13029, FI, 1, U16, WB, DEF, 1, "-", "Grid State"),
	REG_MAP(13030, FI, 1, I16, WB, DEF, 0.1, "A", "Phase A Current", RF_METER_L1_A, -1),
	REG_MAP(13031, FI, 1, I16, WB, DEF, 0.1, "A", "Phase B Current", RF_METER_L2_A, -1),
	REG_MAP(13032, FI, 1, I16, WB, DEF, 0.1, "A", "Phase C Current", RF_METER_L3_A, -1),
	REG_MAP(13033, FI, 2, I32, WL, DEF, 1, "W", "Total Active Power", RF_INVERTER_W, -1),
	REG(13035, FI, 1, U16, WB, DEF, 0.1, "kWh", "Daily Import Energy"),
	REG_MAP(13036, FI, 2, U32, WL, DEF, 0.1, "kWh", "Total Import Energy",
		RF_METER_TOTAL_IMPORT_WH, 1000),
	REG(13038, FI, 1, U16, WB, DEF, 0.1, "kWh/Ah", "Battery Capacity"),
	REG(13039, FI, 1, U16, WB, DEF, 0.1, "kWh", "Daily Charge Energy"),
	REG_MAP(13040, FI, 2, U32, WL, DEF, 0.1, "kWh", "Total Charge Energy",
		RF_BATTERY_TOTAL_CHARGE_WH, 1000),
	REG(13042, FI, 1, U16, WB, DEF, 1, "-", "DRM State"),
	REG(13044, FI, 1, U16, WB, DEF, 0.1, "kWh", "Daily Export Energy"),
	REG_MAP(13045, FI, 2, U32, WL, DEF, 0.1, "kWh", "Total Export Energy",
		RF_METER_TOTAL_EXPORT_WH, 1000),
	REG(13049, FI, 1, U16, WB, DEF, 1, "-", "Grid Mode"),
	REG(13050, FI, 1, U16, WB, DEF, 1, "-", "Charge/discharge command"),
	REG(13051, FI, 1, U16, WB, DEF, 1, "W", "Charge/discharge power"),
	REG(13053, FI, 2, U32, WB, DEF, 1, "-", "System Fault 1"),
	REG(13055, FI, 2, U32, WB, DEF, 1, "-", "System Fault 2"),
	REG(13057, FI, 1, U16, WB, DEF, 0.1, "%", "Max SoC"),
	REG(13058, FI, 1, U16, WB, DEF, 0.1, "%", "Min SoC"),
	REG(13061, FI, 2, U32, WB, DEF, 1, "-", "BDC-side Fault"),
	REG(13063, FI, 2, U32, WB, DEF, 1, "-", "BDC-side Permanent Fault"),
	REG(13065, FI, 2, U32, WB, DEF, 1, "-", "Battery Fault"),
	REG(13067, FI, 2, U32, WB, DEF, 1, "-", "Battery Alarm"),
	REG(13069, FI, 2, U32, WB, DEF, 1, "-", "BMS Alarm"),
	REG(13071, FI, 2, U32, WB, DEF, 1, "-", "BMS Protection"),
	REG(13073, FI, 1, U16, WB, DEF, 1, "W", "Export power limitation"),
	REG(13075, FI, 2, U32, WB, DEF, 1, "-", "BMS Fault 2"),
	REG(13077, FI, 2, U32, WB, DEF, 1, "-", "BMS Alarm 2"),
	REG(13086, FI, 1, U16, WB, DEF, 1, "W", "Export power limitation"),
	REG(13099, FI, 1, U16, WB, DEF, 1, "-", "BMS Status"),
	REG(13100, FI, 1, U16, WB, DEF, 1, "A", "Max Charging Current"),
	REG(13101, FI, 1, U16, WB, DEF, 1, "A", "Max Discharging Current"),
	REG(13102, FI, 1, U16, WB, DEF, 1, "-", "BMS Warning"),
	REG(13103, FI, 1, U16, WB, DEF, 1, "-", "BMS Protection Status"),
	REG(13104, FI, 1, U16, WB, DEF, 1, "-", "BMS Fault 1 Status"),
	REG(13105, FI, 1, U16, WB, DEF, 1, "-", "BMS Fault 2 Status"),
	REG(13106, FI, 1, U16, WB, DEF, 1, "%", "State of Charge"),
	REG(13107, FI, 1, U16, WB, DEF, 1, "%", "State of Health"),
	REG(13108, FI, 1, U16, WB, DEF, 0.1, "A", "Battery Current"),
	REG(13109, FI, 1, U16, WB, DEF, 0.01, "V", "Battery Voltage"),
	REG(13110, FI, 1, U16, WB, DEF, 1, "-", "Battery Cycle Count"),
	REG(13111, FI, 1, U16, WB, DEF, 1, "V", "Average Cell Voltage"),
	REG(13112, FI, 1, U16, WB, DEF, 1, "V", "Maximum Cell Voltage"),
	REG(13113, FI, 1, U16, WB, DEF, 1, "V", "Minimum Cell Voltage"),
	REG(13114, FI, 1, U16, WB, DEF, 1, "V", "Battery Pack Voltage"),
	REG(13115, FI, 1, I16, WB, DEF, 1, "°C", "Average Cell Temperature"),
	REG(13116, FI, 1, I16, WB, DEF, 1, "°C", "Maximum Cell Temperature"),
	REG(13117, FI, 1, I16, WB, DEF, 1, "°C", "Minimum Cell Temperature"),
	REG(5241, FH, 1, U16, WB, DEF, 0.01, "Hz", "Grid Frequency"),
	/* SH document 5601-5602 "meter active power", import positive */
	REG_MAP(5600, FI, 2, I32, WL, DOC, 1, "W", "Meter active power", RF_METER_W, 1),
	/* SH document 5603-5608 meter phase A-C active power, import positive */
	REG_MAP(5602, FI, 2, I32, WL, DOC, 1, "W", "Meter phase A active power", RF_METER_L1_W, 1),
	REG_MAP(5604, FI, 2, I32, WL, DOC, 1, "W", "Meter phase B active power", RF_METER_L2_W, 1),
	REG_MAP(5606, FI, 2, I32, WL, DOC, 1, "W", "Meter phase C active power", RF_METER_L3_W, 1),
	/* SH document 5242 "grid frequency", 0.01 Hz, an input register; after
	 * 5035 so the finer value wins when both are read */
	REG_MAP(5241, FI, 1, U16, WB, DOC, 0.01, "Hz", "Grid frequency (0.01 Hz)", RF_METER_HZ, 1),
};

static const struct mb_block sungrow_sf_blocks[] = {
	{ .fc = FI, .addr = 4949, .count = 87 },   { .fc = FI, .addr = 5621, .count = 15 },
	{ .fc = FI, .addr = 5600, .count = 8 }, /* [doc] meter total and phase powers */
	{ .fc = FI, .addr = 5241, .count = 1 }, /* [doc] grid frequency, 0.01 Hz */
	{ .fc = FI, .addr = 6099, .count = 96 },   { .fc = FI, .addr = 6195, .count = 94 },
	{ .fc = FI, .addr = 6289, .count = 96 },   { .fc = FI, .addr = 6385, .count = 83 },
	{ .fc = FI, .addr = 6468, .count = 96 },   { .fc = FI, .addr = 6564, .count = 83 },
	{ .fc = FI, .addr = 6647, .count = 96 },   { .fc = FI, .addr = 6743, .count = 83 },
	{ .fc = FI, .addr = 12999, .count = 119 },
};

/* Battery control, Sungrow "Communication Protocol of Residential Hybrid
 * Inverter" (V1.0.20 and later), holding registers (0x03 read, 0x06/0x10
 * write), document numbers from 1, zero-based here:
 *  - 13049 (doc 13050) EMS mode selection: 0 self-consumption (the
 *    inverter's own mode, default), 2 forced mode, 3 external EMS;
 *  - 13050 (doc 13051) charge/discharge command: 0xAA charge, 0xBB
 *    discharge, 0xCC stop (default);
 *  - 13051 (doc 13052) charge/discharge power, U16, W.
 * The document has no remote-control timeout: egwd releases on stop and
 * again before it takes control at start-up (doc/battery-control.md). */
static const struct bctl_write sungrow_sh_take[] = {
	{ .addr = 13049, .count = 1, .values = { 2 } },
};

static const struct bctl_write sungrow_sh_release[] = {
	{ .addr = 13050, .count = 2, .values = { 0xCC, 0 } },
	{ .addr = 13049, .count = 1, .values = { 0 } },
};

static const struct battery_control sungrow_sh_control = {
	.doc = "Sungrow Communication Protocol of Residential Hybrid Inverter, holding 13050-13052",
	.take = sungrow_sh_take,
	.ntake = ARRAY_SIZE(sungrow_sh_take),
	.release = sungrow_sh_release,
	.nrelease = ARRAY_SIZE(sungrow_sh_release),
	.timeout_s = 0,
	.layout = BCTL_CMD_THEN_POWER_U16,
	.cmd_addr = 13050,
	.cmd_charge = 0xAA,
	.cmd_discharge = 0xBB,
	.cmd_stop = 0xCC,
	.cmd_zero = 0xCC, /* stop in forced mode: the battery idles at 0 W */
	.power_max_w = 65535,
	.limit_charge_addr = -1,
	.limit_discharge_addr = -1,
};

const struct profile profile_sungrow_sf = {
	.name = "sungrow_sf",
	.brand = "Sungrow",
	.family = "sungrow",
	.dtype = "hybrid",
	PROFILE_TABLE(sungrow_sf_regs),
	PROFILE_BLOCKS(sungrow_sf_blocks),
	.short_reads_fields = true,
	.short_extra = sungrow_short_extra,
	.nshort_extra = sizeof(sungrow_short_extra) / sizeof((sungrow_short_extra)[0]),
	.serial = &sungrow_sf_regs[0],
	.frequency = &sungrow_sf_regs[1],
	.fixup = sungrow_fixup,
	.encode_fixup = sungrow_encode_fixup,
	.control = &sungrow_sh_control,
};
