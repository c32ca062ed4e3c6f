/* egw-sim's vendor register maps (see vendor.h).  Each map cites its
 * document; addresses are zero-based PDU addresses (a document that numbers
 * registers from 1, like Sungrow's, is one higher). */
#include "sim/vendor.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/util.h"
#include "sim/sunspec_offsets.h"

#define HI REG_FC_HOLDING
#define IN REG_FC_INPUT
#define F(fld) RF_##fld

/* quantity q * k + off, one count = step */
#define V(fc_, a, t, o, st, q_, k_, off_) \
	{ \
		.fc = (fc_), .addr = (a), .type = REG_##t, .order = WO_##o, .step = (st), \
		.q = (q_), .k = (k_), .off = (off_) \
	}

/* ---- Eastron SDM630 ------------------------------------------------------
 * Eastron "SDM630 Modbus Smart Meter Modbus Protocol Implementation" V1.5:
 * input registers 30001.. (zero-based 0..), every parameter an IEEE-754
 * float in two registers, high word first.  Power in W, energy in kWh,
 * positive power = import.  Holding 0xFC00 (64512) serial number, U32. */
static const struct sim_vrange sdm630_ranges[] = {
	{ IN, 0, 400 },
	{ HI, 64512, 2 },
};
static const struct sim_vreg sdm630_regs[] = {
	V(IN, 0, F32, BIG, 1, F(METER_L1_V), 1, 0), /* 30001 phase 1 line to neutral volts */
	V(IN, 2, F32, BIG, 1, F(METER_L2_V), 1, 0),
	V(IN, 4, F32, BIG, 1, F(METER_L3_V), 1, 0),
	V(IN, 6, F32, BIG, 1, F(METER_L1_A), 1, 0), /* 30007 phase 1 current */
	V(IN, 8, F32, BIG, 1, F(METER_L2_A), 1, 0),
	V(IN, 10, F32, BIG, 1, F(METER_L3_A), 1, 0),
	V(IN, 12, F32, BIG, 1, F(METER_L1_W), 1, 0), /* 30013 phase 1 power, W */
	V(IN, 14, F32, BIG, 1, F(METER_L2_W), 1, 0),
	V(IN, 16, F32, BIG, 1, F(METER_L3_W), 1, 0),
	V(IN, 52, F32, BIG, 1, F(METER_W), 1, 0),                  /* 30053 total system power */
	V(IN, 70, F32, BIG, 1, F(METER_HZ), 1, 0),                 /* 30071 frequency */
	V(IN, 72, F32, BIG, 1000, F(METER_TOTAL_IMPORT_WH), 1, 0), /* 30073 import kWh */
	V(IN, 74, F32, BIG, 1000, F(METER_TOTAL_EXPORT_WH), 1, 0), /* 30075 export kWh */
};

/* ---- Sungrow SH hybrid ----------------------------------------------------
 * Sungrow "Communication Protocol of Residential Hybrid Inverter" (SH*RS/RT,
 * TI_20190723 V1.0.23): input registers numbered from 1 (document 5036 is
 * zero-based 5035).  U32/S32 low word first.  5003 daily output energy and
 * 13002 daily PV generation (U16, 0.1 kWh) count the day of 5004 and 13003. */
static const struct sim_vrange sungrow_sh_ranges[] = {
	{ IN, 4949, 292 },  /* 4950-5240: device information and inverter data */
	{ IN, 5241, 1 },    /* 5242 grid frequency, 0.01 Hz */
	{ IN, 5600, 38 },   /* 5601-5638 meter and export limits */
	{ IN, 6099, 727 },  /* 6100-6825 daily/monthly/yearly statistics */
	{ IN, 12999, 119 }, /* 13000-13118 system, battery and energy data */
	{ HI, 13049, 51 },  /* 13050-13100 battery settings */
	{ HI, 31221, 1 },   { HI, 33041, 7 }, { HI, 33147, 1 }, { HI, 33207, 2 },
};
static const struct sim_vreg sungrow_sh_regs[] = {
	V(IN, 5000, U16, BIG, 100, F(PV_RATED_POWER_W), 1, 0), /* 5001 nominal power, 0.1 kW */
	V(IN, 5002, U16, BIG, 100, F(PV_DAILY_GENERATION_WH), 1, 0), /* 5003 daily output */
	V(IN, 5003, U32, LITTLE, 100, F(PV_TOTAL_GENERATION_WH), 1,
	  0),                                               /* 5004 total output, 0.1 kWh */
	V(IN, 5007, I16, BIG, 0.1, F(PV_HEATSINK_C), 1, 0), /* 5008 inside temperature */
	V(IN, 5010, U16, BIG, 0.1, F(PV_MPPT1_V), 1, 0),    /* 5011 MPPT1 voltage */
	V(IN, 5011, U16, BIG, 0.1, F(PV_MPPT1_A), 1, 0),
	V(IN, 5012, U16, BIG, 0.1, F(PV_MPPT2_V), 1, 0),
	V(IN, 5013, U16, BIG, 0.1, F(PV_MPPT2_A), 1, 0),
	V(IN, 5016, U32, LITTLE, 1, F(PV_W), -1, 0),     /* 5017 total DC power, W */
	V(IN, 5018, U16, BIG, 0.1, F(METER_L1_V), 1, 0), /* 5019 phase A voltage */
	V(IN, 5019, U16, BIG, 0.1, F(METER_L2_V), 1, 0),
	V(IN, 5020, U16, BIG, 0.1, F(METER_L3_V), 1, 0),
	V(IN, 5035, U16, BIG, 0.1, F(METER_HZ), 1, 0),    /* 5036 grid frequency, 0.1 Hz */
	V(IN, 5241, U16, BIG, 0.01, F(METER_HZ), 1, 0),   /* 5242 grid frequency, 0.01 Hz */
	V(IN, 5600, I32, LITTLE, 1, F(METER_W), 1, 0),    /* 5601 meter power, import + */
	V(IN, 5602, I32, LITTLE, 1, F(METER_L1_W), 1, 0), /* 5603 meter phase A power */
	V(IN, 5604, I32, LITTLE, 1, F(METER_L2_W), 1, 0),
	V(IN, 5606, I32, LITTLE, 1, F(METER_L3_W), 1, 0),
	V(IN, 13000, U16, BIG, 1, SQ_SUNGROW_STATE, 1, 0),               /* 13001 running state */
	V(IN, 13001, U16, BIG, 100, F(PV_DAILY_GENERATION_WH), 1, 0),    /* 13002 daily PV gen. */
	V(IN, 13002, U32, LITTLE, 100, F(PV_TOTAL_GENERATION_WH), 1, 0), /* 13003 total PV gen. */
	V(IN, 13009, I32, LITTLE, 1, F(METER_W), -1, 0), /* 13010 export power, export + */
	V(IN, 13019, U16, BIG, 0.1, F(BATTERY_V), 1, 0), /* 13020 battery voltage */
	/* 13021 battery current: documented U16, signed on real devices */
	V(IN, 13020, I16, BIG, 0.1, F(BATTERY_A), 1, 0),
	V(IN, 13021, U16, BIG, 1, SQ_BATTERY_ABS_W, 1, 0),             /* 13022 battery power, W */
	V(IN, 13022, U16, BIG, 0.001, F(BATTERY_SOC_NOM_FRACT), 1, 0), /* 13023 level, 0.1 % */
	V(IN, 13024, I16, BIG, 0.1, F(BATTERY_HEATSINK_C), 1, 0), /* 13025 battery temperature */
	V(IN, 13026, U32, LITTLE, 100, F(BATTERY_TOTAL_DISCHARGE_WH), 1, 0), /* 13027 */
	/* 13031-13033 phase currents, 0.1 A; the document gives no direction:
	 * served export-positive as the reference's mapping reads them */
	V(IN, 13030, I16, BIG, 0.1, F(METER_L1_A), -1, 0),
	V(IN, 13031, I16, BIG, 0.1, F(METER_L2_A), -1, 0),
	V(IN, 13032, I16, BIG, 0.1, F(METER_L3_A), -1, 0),
	V(IN, 13033, I32, LITTLE, 1, F(INVERTER_W), -1, 0), /* 13034 total active power, output + */
	V(IN, 13036, U32, LITTLE, 100, F(METER_TOTAL_IMPORT_WH), 1, 0),   /* 13037 total import */
	V(IN, 13040, U32, LITTLE, 100, F(BATTERY_TOTAL_CHARGE_WH), 1, 0), /* 13041 total charge */
	V(IN, 13045, U32, LITTLE, 100, F(METER_TOTAL_EXPORT_WH), 1, 0),   /* 13046 total export */
	/* Holding "EMS" registers of section 3.2 (battery settings), with their
	 * power-on values: 13050 EMS mode selection 0 = self-consumption; 13051
	 * charge/discharge command 0xCC = stop; 13052 charge/discharge power, W */
	V(HI, 13049, U16, BIG, 1, SQ_CONST, 1, 0),
	V(HI, 13050, U16, BIG, 1, SQ_CONST, 1, 0xCC),
	V(HI, 13051, U16, BIG, 1, SQ_CONST, 1, 0),
};

/* The same SH with no meter connected: 5601-5608 read 0x7FFFFFFF ("not
 * available", the value Home Assistant users' register maps test for).
 * What it serves in the meter-derived registers of the 13000 block (export
 * power, phase currents, import/export totals) is not documented: 0 here,
 * nothing measured and nothing counted. */
static const struct sim_vreg sungrow_sh_nometer_regs[] = {
	V(IN, 5000, U16, BIG, 100, F(PV_RATED_POWER_W), 1, 0),
	V(IN, 5002, U16, BIG, 100, F(PV_DAILY_GENERATION_WH), 1, 0),
	V(IN, 5003, U32, LITTLE, 100, F(PV_TOTAL_GENERATION_WH), 1, 0),
	V(IN, 5007, I16, BIG, 0.1, F(PV_HEATSINK_C), 1, 0),
	V(IN, 5010, U16, BIG, 0.1, F(PV_MPPT1_V), 1, 0),
	V(IN, 5011, U16, BIG, 0.1, F(PV_MPPT1_A), 1, 0),
	V(IN, 5012, U16, BIG, 0.1, F(PV_MPPT2_V), 1, 0),
	V(IN, 5013, U16, BIG, 0.1, F(PV_MPPT2_A), 1, 0),
	V(IN, 5016, U32, LITTLE, 1, F(PV_W), -1, 0),
	V(IN, 5018, U16, BIG, 0.1, F(METER_L1_V), 1, 0),
	V(IN, 5019, U16, BIG, 0.1, F(METER_L2_V), 1, 0),
	V(IN, 5020, U16, BIG, 0.1, F(METER_L3_V), 1, 0),
	V(IN, 5035, U16, BIG, 0.1, F(METER_HZ), 1, 0),
	V(IN, 5241, U16, BIG, 0.01, F(METER_HZ), 1, 0),
	/* 5601-5608 meter powers: S32 0x7FFFFFFF, written as U32 because the S32
	 * encoder turns its own sentinel into 0x80000000 */
	V(IN, 5600, U32, LITTLE, 1, SQ_CONST, 1, 2147483647),
	V(IN, 5602, U32, LITTLE, 1, SQ_CONST, 1, 2147483647),
	V(IN, 5604, U32, LITTLE, 1, SQ_CONST, 1, 2147483647),
	V(IN, 5606, U32, LITTLE, 1, SQ_CONST, 1, 2147483647),
	V(IN, 13000, U16, BIG, 1, SQ_SUNGROW_STATE, 1, 0),
	V(IN, 13001, U16, BIG, 100, F(PV_DAILY_GENERATION_WH), 1, 0),
	V(IN, 13002, U32, LITTLE, 100, F(PV_TOTAL_GENERATION_WH), 1, 0),
	V(IN, 13009, I32, LITTLE, 1, SQ_CONST, 1, 0), /* 13010 export power */
	V(IN, 13019, U16, BIG, 0.1, F(BATTERY_V), 1, 0),
	V(IN, 13020, I16, BIG, 0.1, F(BATTERY_A), 1, 0),
	V(IN, 13021, U16, BIG, 1, SQ_BATTERY_ABS_W, 1, 0),
	V(IN, 13022, U16, BIG, 0.001, F(BATTERY_SOC_NOM_FRACT), 1, 0),
	V(IN, 13024, I16, BIG, 0.1, F(BATTERY_HEATSINK_C), 1, 0),
	V(IN, 13026, U32, LITTLE, 100, F(BATTERY_TOTAL_DISCHARGE_WH), 1, 0),
	V(IN, 13033, I32, LITTLE, 1, F(INVERTER_W), -1, 0),
	V(IN, 13040, U32, LITTLE, 100, F(BATTERY_TOTAL_CHARGE_WH), 1, 0),
};

/* ---- Sungrow SG string inverter -------------------------------------------
 * Sungrow "Communication Protocol of PV Grid-Connected String Inverters"
 * (TI_20171026 V1.1.x): input registers from 1; no battery, no 13000 block,
 * no 5601 meter registers (exception 2).  5003 daily power yields U16 in
 * 0.1 kWh; 5004-5005 total power yields U32 in kWh; 5031-5032 total active
 * power, W. */
static const struct sim_vrange sungrow_sg_ranges[] = {
	{ IN, 4949, 150 }, /* 4950-5098 */
};
static const struct sim_vreg sungrow_sg_regs[] = {
	V(IN, 5000, U16, BIG, 100, F(PV_RATED_POWER_W), 1, 0),
	V(IN, 5002, U16, BIG, 100, F(PV_DAILY_GENERATION_WH), 1, 0),     /* 5003, 0.1 kWh */
	V(IN, 5003, U32, LITTLE, 1000, F(PV_TOTAL_GENERATION_WH), 1, 0), /* 5004, kWh */
	V(IN, 5007, I16, BIG, 0.1, F(PV_HEATSINK_C), 1, 0),
	V(IN, 5010, U16, BIG, 0.1, F(PV_MPPT1_V), 1, 0),
	V(IN, 5011, U16, BIG, 0.1, F(PV_MPPT1_A), 1, 0),
	V(IN, 5012, U16, BIG, 0.1, F(PV_MPPT2_V), 1, 0),
	V(IN, 5013, U16, BIG, 0.1, F(PV_MPPT2_A), 1, 0),
	V(IN, 5016, U32, LITTLE, 1, F(PV_W), -1, 0),
	V(IN, 5018, U16, BIG, 0.1, F(METER_L1_V), 1, 0),
	V(IN, 5019, U16, BIG, 0.1, F(METER_L2_V), 1, 0),
	V(IN, 5020, U16, BIG, 0.1, F(METER_L3_V), 1, 0),
	V(IN, 5030, U32, LITTLE, 1, F(INVERTER_W), -1, 0), /* 5031 total active power */
	V(IN, 5035, U16, BIG, 0.1, F(METER_HZ), 1, 0),
};

/* ---- Deye SG04LP3 ---------------------------------------------------------
 * Deye "SUN-xK-SG04LP3-EU Modbus protocol" (three-phase LV hybrid), holding
 * registers: 3-7 serial (10 ASCII), 529 day PV energy (U16, 0.1 kWh),
 * temperatures (raw - 1000) x 0.1 degC,
 * 32-bit totals low word first in 0.1 kWh, battery power/current positive
 * when discharging, grid power positive when importing. */
static const struct sim_vrange deye_ranges[] = {
	{ HI, 0, 750 },
};
static const struct sim_vreg deye_regs[] = {
	V(HI, 20, U32, LITTLE, 0.1, F(PV_RATED_POWER_W), 1, 0),         /* rated power, 0.1 W */
	V(HI, 516, U32, LITTLE, 100, F(BATTERY_TOTAL_CHARGE_WH), 1, 0), /* battery total charge */
	V(HI, 518, U32, LITTLE, 100, F(BATTERY_TOTAL_DISCHARGE_WH), 1, 0),
	V(HI, 522, U32, LITTLE, 100, F(METER_TOTAL_IMPORT_WH), 1, 0),  /* grid total buy */
	V(HI, 524, U32, LITTLE, 100, F(METER_TOTAL_EXPORT_WH), 1, 0),  /* grid total sell */
	V(HI, 529, U16, BIG, 100, F(PV_DAILY_GENERATION_WH), 1, 0),    /* day PV energy */
	V(HI, 534, U32, LITTLE, 100, F(PV_TOTAL_GENERATION_WH), 1, 0), /* total PV generation */
	V(HI, 541, U16, BIG, 0.1, F(PV_HEATSINK_C), 1, 100),           /* DC temp, +1000 raw */
	V(HI, 586, U16, BIG, 0.1, F(BATTERY_HEATSINK_C), 1, 100),      /* battery temp, +1000 */
	V(HI, 587, U16, BIG, 0.01, F(BATTERY_V), 1, 0),
	V(HI, 588, U16, BIG, 0.01, F(BATTERY_SOC_NOM_FRACT), 1, 0), /* SoC, 1 % */
	V(HI, 590, I16, BIG, 1, F(BATTERY_W), -1, 0),               /* discharge + */
	V(HI, 591, I16, BIG, 0.01, F(BATTERY_A), -1, 0),
	V(HI, 598, U16, BIG, 0.1, F(METER_L1_V), 1, 0),
	V(HI, 599, U16, BIG, 0.1, F(METER_L2_V), 1, 0),
	V(HI, 600, U16, BIG, 0.1, F(METER_L3_V), 1, 0),
	V(HI, 609, U16, BIG, 0.01, F(METER_HZ), 1, 0),
	V(HI, 610, I16, BIG, 0.01, F(METER_L1_A), 1, 0), /* grid side currents */
	V(HI, 611, I16, BIG, 0.01, F(METER_L2_A), 1, 0),
	V(HI, 612, I16, BIG, 0.01, F(METER_L3_A), 1, 0),
	V(HI, 622, I16, BIG, 1, F(METER_L1_W), 1, 0), /* grid side phase power */
	V(HI, 623, I16, BIG, 1, F(METER_L2_W), 1, 0),
	V(HI, 624, I16, BIG, 1, F(METER_L3_W), 1, 0),
	V(HI, 625, I16, BIG, 1, F(METER_W), 1, 0), /* total grid power */
	V(HI, 672, U16, BIG, 1, SQ_MPPT1_W, 1, 0), /* PV1 power */
	V(HI, 673, U16, BIG, 1, SQ_MPPT2_W, 1, 0),
	V(HI, 676, U16, BIG, 0.1, F(PV_MPPT1_V), 1, 0),
	V(HI, 677, U16, BIG, 0.1, F(PV_MPPT1_A), 1, 0),
	V(HI, 678, U16, BIG, 0.1, F(PV_MPPT2_V), 1, 0),
	V(HI, 679, U16, BIG, 0.1, F(PV_MPPT2_A), 1, 0),
};

/* ---- Deye microinverter ---------------------------------------------------
 * Deye SUN-M / SUN600G3 microinverter register list (holding; as transcribed
 * in kbialek/deye-inverter-mqtt docs/metric_group_micro.md, and its README's
 * registers common to every type): 3-7 serial (10 ASCII), 60 production
 * today (U16, 0.1 kWh), 63-64 total production (U32 low word first, 0.1 kWh), 79 AC
 * frequency (0.01 Hz), 86-87 AC active power (U32 low word first, 0.1 W),
 * 109/110 PV1 voltage (0.1 V) / current (0.1 A), 111/112 PV2.  The PV power
 * is in no register. */
static const struct sim_vrange deye_micro_ranges[] = {
	{ HI, 0, 120 },
};
static const struct sim_vreg deye_micro_regs[] = {
	V(HI, 60, U16, BIG, 100, F(PV_DAILY_GENERATION_WH), 1, 0),
	V(HI, 63, U32, LITTLE, 100, F(PV_TOTAL_GENERATION_WH), 1, 0),
	V(HI, 79, U16, BIG, 0.01, F(METER_HZ), 1, 0),
	V(HI, 86, U32, LITTLE, 0.1, F(INVERTER_W), -1, 0),
	V(HI, 109, U16, BIG, 0.1, F(PV_MPPT1_V), 1, 0),
	V(HI, 110, U16, BIG, 0.1, F(PV_MPPT1_A), 1, 0),
	V(HI, 111, U16, BIG, 0.1, F(PV_MPPT2_V), 1, 0),
	V(HI, 112, U16, BIG, 0.1, F(PV_MPPT2_A), 1, 0),
};

/* ---- Solis string inverter --------------------------------------------------
 * Solis "RS485 MODBUS Communication Protocol" (grid-tied string inverters,
 * input registers numbered from 1: document 3043 is 3042 here; 32-bit values
 * high word first): 3005-3006 active power, 3007-3008 total DC output power
 * (W), 3009-3010 total energy (kWh), 3015 energy today (0.1 kWh),
 * 3022-3025 DC voltage/current of inputs 1 and 2 (0.1 V, 0.1 A), 3042
 * inverter temperature (0.1 degC), 3043 grid frequency (0.01 Hz), 3061-3064
 * serial; the document's range 3000-3100. */
static const struct sim_vrange solis_ranges[] = {
	{ IN, 2999, 101 },
};
static const struct sim_vreg solis_regs[] = {
	V(IN, 3004, I32, BIG, 1, F(INVERTER_W), -1, 0),
	V(IN, 3006, U32, BIG, 1, F(PV_W), -1, 0),
	V(IN, 3008, U32, BIG, 1000, F(PV_TOTAL_GENERATION_WH), 1, 0),
	V(IN, 3014, U16, BIG, 100, F(PV_DAILY_GENERATION_WH), 1, 0),
	V(IN, 3021, U16, BIG, 0.1, F(PV_MPPT1_V), 1, 0),
	V(IN, 3022, U16, BIG, 0.1, F(PV_MPPT1_A), 1, 0),
	V(IN, 3023, U16, BIG, 0.1, F(PV_MPPT2_V), 1, 0),
	V(IN, 3024, U16, BIG, 0.1, F(PV_MPPT2_A), 1, 0),
	V(IN, 3041, I16, BIG, 0.1, F(PV_HEATSINK_C), 1, 0),
	V(IN, 3042, U16, BIG, 0.01, F(METER_HZ), 1, 0),
};

/* ---- Solis hybrid -------------------------------------------------------------
 * Solis "RS485_MODBUS RTU Hybrid Inverter Protocol" Ver 3.2, section 5
 * (input registers at the document's addresses, 32-bit values high word
 * first; addresses, types and units as the ESPHome "ESINV" map of
 * hn/ginlong-solis, evcc's solis-hybrid template and the solis_modbus
 * integration transcribe them; the PDF could not be opened here):
 *   33004-33019 serial; 33029-33030 PV total energy (kWh); 33035 today's
 *   energy generation (0.1 kWh); 33049-33052
 *   PV1/PV2 voltage and current (0.1 V, 0.1 A); 33057-33058 total PV power
 *   (W); 33079-33080 active power (S32, W, output positive); 33093 inverter
 *   temperature (0.1 degC); 33094 grid frequency (0.01 Hz);
 *   33133 battery voltage (0.1 V); 33134 battery current (0.1 A, magnitude);
 *   33135 battery current direction (0 charge, 1 discharge); 33139 SoC, 33140
 *   SoH (1 %); 33141 battery voltage from the BMS (0.01 V); 33149-33150
 *   battery power (U32, W, magnitude); 33161-33162 / 33165-33166 total
 *   battery charge / discharge energy (kWh); 33169-33170 / 33173-33174 total
 *   energy imported from / fed into the grid (kWh);
 *   33251-33256 meter phase A/B/C voltage (0.1 V) and current (0.01 A,
 *   magnitude); 33257-33264 meter phase A/B/C and total active power (S32,
 *   0.001 kW, positive = exporting); 33282 meter grid frequency (0.01 Hz);
 *   33283-33284 / 33285-33286 meter total active energy from / to the grid
 *   (U32, 0.01 kWh).
 * The meter is this home's grid meter (one balance with the PV, the battery
 * and the house).  `solis_hybrid_nobattery` is the same inverter installed
 * without a battery: its battery registers read 0 (no pack voltage, no BMS). */
static const struct sim_vrange solis_hybrid_ranges[] = {
	{ IN, 33000, 338 },
	{ IN, 35000, 1 },
};
#define SOLIS_HYBRID_INVERTER \
	V(IN, 33029, U32, BIG, 1000, F(PV_TOTAL_GENERATION_WH), 1, 0), \
		V(IN, 33035, U16, BIG, 100, F(PV_DAILY_GENERATION_WH), 1, 0), \
		V(IN, 33049, U16, BIG, 0.1, F(PV_MPPT1_V), 1, 0), \
		V(IN, 33050, U16, BIG, 0.1, F(PV_MPPT1_A), 1, 0), \
		V(IN, 33051, U16, BIG, 0.1, F(PV_MPPT2_V), 1, 0), \
		V(IN, 33052, U16, BIG, 0.1, F(PV_MPPT2_A), 1, 0), \
		V(IN, 33057, U32, BIG, 1, F(PV_W), -1, 0), \
		V(IN, 33079, I32, BIG, 1, F(INVERTER_W), -1, 0), \
		V(IN, 33093, I16, BIG, 0.1, F(PV_HEATSINK_C), 1, 0), \
		V(IN, 33094, U16, BIG, 0.01, F(METER_HZ), 1, 0)
#define SOLIS_HYBRID_BATTERY \
	V(IN, 33133, U16, BIG, 0.1, F(BATTERY_V), 1, 0), \
		V(IN, 33134, U16, BIG, 0.1, SQ_BATTERY_ABS_A, 1, 0), \
		V(IN, 33135, U16, BIG, 1, SQ_SOLIS_BATT_DIR, 1, 0), \
		V(IN, 33139, U16, BIG, 0.01, F(BATTERY_SOC_NOM_FRACT), 1, 0), \
		V(IN, 33140, U16, BIG, 0.01, F(BATTERY_SOH_FRACT), 1, 0), \
		V(IN, 33141, U16, BIG, 0.01, F(BATTERY_V), 1, 0), \
		V(IN, 33149, U32, BIG, 1, SQ_BATTERY_ABS_W, 1, 0), \
		V(IN, 33161, U32, BIG, 1000, F(BATTERY_TOTAL_CHARGE_WH), 1, 0), \
		V(IN, 33165, U32, BIG, 1000, F(BATTERY_TOTAL_DISCHARGE_WH), 1, 0)
#define SOLIS_HYBRID_METER \
	V(IN, 33169, U32, BIG, 1000, F(METER_TOTAL_IMPORT_WH), 1, 0), \
		V(IN, 33173, U32, BIG, 1000, F(METER_TOTAL_EXPORT_WH), 1, 0), \
		V(IN, 33251, U16, BIG, 0.1, F(METER_L1_V), 1, 0), \
		V(IN, 33252, U16, BIG, 0.01, SQ_METER_L1_ABS_A, 1, 0), \
		V(IN, 33253, U16, BIG, 0.1, F(METER_L2_V), 1, 0), \
		V(IN, 33254, U16, BIG, 0.01, SQ_METER_L2_ABS_A, 1, 0), \
		V(IN, 33255, U16, BIG, 0.1, F(METER_L3_V), 1, 0), \
		V(IN, 33256, U16, BIG, 0.01, SQ_METER_L3_ABS_A, 1, 0), \
		V(IN, 33257, I32, BIG, 1, F(METER_L1_W), -1, 0), \
		V(IN, 33259, I32, BIG, 1, F(METER_L2_W), -1, 0), \
		V(IN, 33261, I32, BIG, 1, F(METER_L3_W), -1, 0), \
		V(IN, 33263, I32, BIG, 1, F(METER_W), -1, 0), \
		V(IN, 33282, U16, BIG, 0.01, F(METER_HZ), 1, 0), \
		V(IN, 33283, U32, BIG, 10, F(METER_TOTAL_IMPORT_WH), 1, 0), \
		V(IN, 33285, U32, BIG, 10, F(METER_TOTAL_EXPORT_WH), 1, 0)
static const struct sim_vreg solis_hybrid_regs[] = {
	SOLIS_HYBRID_INVERTER,
	SOLIS_HYBRID_BATTERY,
	SOLIS_HYBRID_METER,
};
/* Installed without a battery: no pack voltage, no BMS, nothing counted
 * (the block reads 0, as Solis documents for registers a model lacks). */
static const struct sim_vreg solis_hybrid_nobattery_regs[] = {
	SOLIS_HYBRID_INVERTER,
	SOLIS_HYBRID_METER,
};

/* ---- Growatt MIN (TL-X) -----------------------------------------------------
 * Growatt "Inverter Modbus RTU Protocol" V1.24, TL-X/TL-XH (MIN type): input
 * ranges 0-124 and 3000-3249, holding 0-124 and 3000-3124 (32-bit values
 * high word first).  Input 1-2 / 3001-3002 PV input power (0.1 W), 3/4 and
 * 3003/3004 PV1 voltage (0.1 V) / current (0.1 A), 5-6 / 3005-3006 PV1 power,
 * 7-10 / 3007-3010 PV2, 35-36 / 3023-3024 AC output power (0.1 W), 37 / 3025
 * grid frequency (0.01 Hz), 53-54 / 3049-3050 AC energy today and 55-56 /
 * 3051-3052 lifetime AC energy (0.1 kWh).
 * The serial is served at holding 209-223, where the reference reads it
 * (V1.24 lists the 10-character serial at 23-27). */
#define GROWATT_PV(b) \
	V(IN, (b) + 1, U32, BIG, 0.1, F(PV_W), -1, 0), \
		V(IN, (b) + 3, U16, BIG, 0.1, F(PV_MPPT1_V), 1, 0), \
		V(IN, (b) + 4, U16, BIG, 0.1, F(PV_MPPT1_A), 1, 0), \
		V(IN, (b) + 5, U32, BIG, 0.1, SQ_MPPT1_W, 1, 0), \
		V(IN, (b) + 7, U16, BIG, 0.1, F(PV_MPPT2_V), 1, 0), \
		V(IN, (b) + 8, U16, BIG, 0.1, F(PV_MPPT2_A), 1, 0), \
		V(IN, (b) + 9, U32, BIG, 0.1, SQ_MPPT2_W, 1, 0)
static const struct sim_vrange growatt_ranges[] = {
	{ IN, 0, 125 }, { IN, 3000, 250 }, { HI, 0, 125 }, { HI, 209, 15 }, { HI, 3000, 125 },
};
static const struct sim_vreg growatt_regs[] = {
	GROWATT_PV(0),
	V(IN, 35, U32, BIG, 0.1, F(INVERTER_W), -1, 0),
	V(IN, 37, U16, BIG, 0.01, F(METER_HZ), 1, 0),
	V(IN, 53, U32, BIG, 100, F(PV_DAILY_GENERATION_WH), 1, 0),
	V(IN, 55, U32, BIG, 100, F(PV_TOTAL_GENERATION_WH), 1, 0),
	GROWATT_PV(3000),
	V(IN, 3023, U32, BIG, 0.1, F(INVERTER_W), -1, 0),
	V(IN, 3025, U16, BIG, 0.01, F(METER_HZ), 1, 0),
	V(IN, 3049, U32, BIG, 100, F(PV_DAILY_GENERATION_WH), 1, 0),
	V(IN, 3051, U32, BIG, 100, F(PV_TOTAL_GENERATION_WH), 1, 0),
};

/* ---- SolaX X1/X3 ------------------------------------------------------------
 * SolaX "Hybrid X1/X3-G4 ModbusTCP&RTU" protocol: input 0x0002 inverter power
 * (S16, W, output positive), 0x0003/0x0004 PV1/PV2 voltage (0.1 V),
 * 0x0005/0x0006 PV1/PV2 current (0.1 A), 0x0007 grid frequency (0.01 Hz),
 * 0x0008 inverter temperature (S16, degC), 0x000A/0x000B PV1/PV2 power (W);
 * holding 0x0000-0x0006 serial number (14 ASCII).  Served without battery. */
static const struct sim_vrange solax_ranges[] = {
	{ IN, 0, 330 },
	{ HI, 0, 256 },
};
static const struct sim_vreg solax_regs[] = {
	V(IN, 2, I16, BIG, 1, F(INVERTER_W), -1, 0),   V(IN, 3, U16, BIG, 0.1, F(PV_MPPT1_V), 1, 0),
	V(IN, 4, U16, BIG, 0.1, F(PV_MPPT2_V), 1, 0),  V(IN, 5, U16, BIG, 0.1, F(PV_MPPT1_A), 1, 0),
	V(IN, 6, U16, BIG, 0.1, F(PV_MPPT2_A), 1, 0),  V(IN, 7, U16, BIG, 0.01, F(METER_HZ), 1, 0),
	V(IN, 8, I16, BIG, 1, F(PV_HEATSINK_C), 1, 0), V(IN, 10, U16, BIG, 1, SQ_MPPT1_W, 1, 0),
	V(IN, 11, U16, BIG, 1, SQ_MPPT2_W, 1, 0),
};

/* ---- GoodWe ET -------------------------------------------------------------
 * GoodWe "ET/EH/BT/BH Series Modbus Protocol" (holding): 35003 serial (8
 * registers), 35103-35110 PV1/PV2 voltage (0.1 V), current (0.1 A) and power
 * (U32, W), 35123 grid frequency (0.01 Hz), 35138 total inverter power
 * (S16, W, output positive), 35191-35192 PV E-Total and 35193-35194 PV E-Day
 * (U32, 0.1 kWh). */
static const struct sim_vrange goodwe_ranges[] = {
	{ HI, 35000, 222 },
	{ HI, 36000, 44 },
	{ HI, 37000, 23 },
};
static const struct sim_vreg goodwe_regs[] = {
	V(HI, 35103, U16, BIG, 0.1, F(PV_MPPT1_V), 1, 0),
	V(HI, 35104, U16, BIG, 0.1, F(PV_MPPT1_A), 1, 0),
	V(HI, 35105, U32, BIG, 1, SQ_MPPT1_W, 1, 0),
	V(HI, 35107, U16, BIG, 0.1, F(PV_MPPT2_V), 1, 0),
	V(HI, 35108, U16, BIG, 0.1, F(PV_MPPT2_A), 1, 0),
	V(HI, 35109, U32, BIG, 1, SQ_MPPT2_W, 1, 0),
	V(HI, 35123, U16, BIG, 0.01, F(METER_HZ), 1, 0),
	V(HI, 35138, I16, BIG, 1, F(INVERTER_W), -1, 0),
	V(HI, 35191, U32, BIG, 100, F(PV_TOTAL_GENERATION_WH), 1, 0),
	V(HI, 35193, U32, BIG, 100, F(PV_DAILY_GENERATION_WH), 1, 0),
};

/* ---- Ferroamp EnergyHub ----------------------------------------------------
 * Ferroamp "Modbus TCP" specification (Revision B, 2018-12-07, section 6
 * "Modbus Variables"; revision PC1 for Modbus v3.0 mirrored on
 * manualspro.net): input registers only, every float an IEEE-754 single in
 * two registers, low word first; power in kW, energy in kWh.  The tables
 * themselves could not be read in full here: addresses, units and signs are
 * the ones two public implementations citing the document agree on (evcc's
 * ferroamp-energyhub template, the ferroamp_modbus Home Assistant
 * integration), not egw's profile table.
 *   2016 grid frequency; 2032/2036/2040 grid voltage L1-L3 (V);
 *   3064/3068 energy exported to / imported from the grid (kWh);
 *   3100 grid active power (kW, import positive, the hub's grid CTs);
 *   5000/5002/5004 idle/running/faulty SSOs; 5064 energy produced (kWh);
 *   5100 solar power (kW);
 *   6000/6002/6004 idle/running/faulty batteries (ESOs); 6012 state of
 *   health, 6016 state of charge (%); 6064/6068 energy from / to the battery
 *   (kWh); 6100 battery power (kW, negative = charging).
 * Served with two SSOs and, in `ferroamp`, one ESO; `ferroamp_nobattery` is
 * a hub without batteries: its battery counts are 0 and its battery
 * registers read 0. */
static const struct sim_vrange ferroamp_ranges[] = {
	{ IN, 1000, 16 },  { IN, 2000, 148 }, { IN, 3000, 148 },
	{ IN, 5000, 104 }, { IN, 6000, 110 },
};
#define FERROAMP_COMMON \
	V(IN, 2016, F32, LITTLE, 1, F(METER_HZ), 1, 0), \
		V(IN, 2032, F32, LITTLE, 1, F(METER_L1_V), 1, 0), \
		V(IN, 2036, F32, LITTLE, 1, F(METER_L2_V), 1, 0), \
		V(IN, 2040, F32, LITTLE, 1, F(METER_L3_V), 1, 0), \
		V(IN, 3064, F32, LITTLE, 1, F(METER_TOTAL_EXPORT_WH), 0.001, 0), \
		V(IN, 3068, F32, LITTLE, 1, F(METER_TOTAL_IMPORT_WH), 0.001, 0), \
		V(IN, 3100, F32, LITTLE, 1, F(METER_W), 0.001, 0), \
		V(IN, 5002, U16, BIG, 1, SQ_CONST, 1, 2), /* two running SSOs */ \
		V(IN, 5064, F32, LITTLE, 1, F(PV_TOTAL_GENERATION_WH), 0.001, 0), \
		V(IN, 5100, F32, LITTLE, 1, F(PV_W), -0.001, 0)
static const struct sim_vreg ferroamp_regs[] = {
	FERROAMP_COMMON,
	V(IN, 6002, U16, BIG, 1, SQ_CONST, 1, 1), /* one running ESO */
	V(IN, 6012, F32, LITTLE, 1, SQ_CONST, 1, 98),
	V(IN, 6016, F32, LITTLE, 1, F(BATTERY_SOC_NOM_FRACT), 100, 0),
	V(IN, 6064, F32, LITTLE, 1, F(BATTERY_TOTAL_DISCHARGE_WH), 0.001, 0),
	V(IN, 6068, F32, LITTLE, 1, F(BATTERY_TOTAL_CHARGE_WH), 0.001, 0),
	V(IN, 6100, F32, LITTLE, 1, F(BATTERY_W), -0.001, 0),
};
static const struct sim_vreg ferroamp_nobattery_regs[] = {
	FERROAMP_COMMON,
	V(IN, 6016, F32, LITTLE, 1, SQ_CONST, 1, 0),
	V(IN, 6100, F32, LITTLE, 1, SQ_CONST, 1, 0),
};

/* ---- Sofar G3 hybrid --------------------------------------------------------
 * Sofar "Modbus-RTU communication protocol" for HYD-ES / KTL-X G3 (holding):
 * 0x0445 serial, 0x0484 grid frequency (0.01 Hz), 0x0586/0x0589/0x058C PV1-3
 * power (0.01 kW), 0x0608 battery 1 SoC (1 %). */
static const struct sim_vrange sofar_ranges[] = {
	{ HI, 1024, 50 }, { HI, 1088, 32 }, { HI, 1152, 48 }, { HI, 1280, 34 }, { HI, 1408, 52 },
	{ HI, 1472, 4 },  { HI, 1536, 60 }, { HI, 1600, 32 }, { HI, 1664, 28 },
};
static const struct sim_vreg sofar_regs[] = {
	V(HI, 1156, U16, BIG, 0.01, F(METER_HZ), 1, 0),
	V(HI, 1414, U16, BIG, 10, SQ_MPPT1_W, 1, 0),
	V(HI, 1417, U16, BIG, 10, SQ_MPPT2_W, 1, 0),
	V(HI, 1544, U16, BIG, 0.01, F(BATTERY_SOC_NOM_FRACT), 1, 0),
};

/* ---- SMA Sunny Boy / Tripower ---------------------------------------------
 * SMA "Modbus parameters and measured values" (input registers, S32/U32 high
 * word first): 30769/30771/30773 DC current (FIX3), voltage (FIX2), power
 * (W) of input A, 30957/30959/30961 of input B, 30775 AC power (W, feed-in
 * positive), 30803 grid frequency (FIX2), 30529 total yield and 30535 day
 * yield (U32 FIX0, Wh).  The AC side as the STP 8.0/10.0 list
 * (MODBUS-HTML_STP8.0-10.0-3AV-40_GG10_V10) gives it: 30777/30779/30781
 * power L1-L3 (S32 FIX0, W, feed-in positive), 30783/30785/30787 phase
 * voltages (U32 FIX2), 30795 grid current (U32 FIX3), 30813 apparent power
 * (S32 FIX0, VA), 30949 displacement power factor (U32 FIX3), 30977/30979/
 * 30981 phase currents (S32 FIX3); 30805 reactive power (S32 FIX0, var) as
 * the earlier SB/STP lists place it. */
static const struct sim_vrange sma_ranges[] = {
	{ IN, 30000, 61 }, { IN, 30529, 8 }, { IN, 30769, 56 }, { IN, 30949, 2 },
	{ IN, 30957, 6 },  { IN, 30977, 6 }, { IN, 31085, 2 },  { IN, 40067, 2 },
};
static const struct sim_vreg sma_regs[] = {
	V(IN, 30529, U32, BIG, 1, F(PV_TOTAL_GENERATION_WH), 1, 0),
	V(IN, 30535, U32, BIG, 1, F(PV_DAILY_GENERATION_WH), 1, 0),
	V(IN, 30769, I32, BIG, 0.001, F(PV_MPPT1_A), 1, 0),
	V(IN, 30771, I32, BIG, 0.01, F(PV_MPPT1_V), 1, 0),
	V(IN, 30773, I32, BIG, 1, F(PV_MPPT1_W), 1, 0),
	V(IN, 30775, I32, BIG, 1, F(INVERTER_W), -1, 0),
	V(IN, 30777, I32, BIG, 1, F(INVERTER_L1_W), -1, 0), /* GridMs.W.phsA */
	V(IN, 30779, I32, BIG, 1, F(INVERTER_L2_W), -1, 0),
	V(IN, 30781, I32, BIG, 1, F(INVERTER_L3_W), -1, 0),
	V(IN, 30783, U32, BIG, 0.01, F(INVERTER_L1_V), 1, 0), /* GridMs.PhV.phsA */
	V(IN, 30785, U32, BIG, 0.01, F(INVERTER_L2_V), 1, 0),
	V(IN, 30787, U32, BIG, 0.01, F(INVERTER_L3_V), 1, 0),
	V(IN, 30795, U32, BIG, 0.001, F(INVERTER_A), 1, 0), /* GridMs.TotA */
	V(IN, 30803, U32, BIG, 0.01, F(METER_HZ), 1, 0),
	V(IN, 30805, I32, BIG, 1, F(INVERTER_VAR), 1, 0),    /* GridMs.TotVAr */
	V(IN, 30813, I32, BIG, 1, F(INVERTER_VA), 1, 0),     /* GridMs.TotVA */
	V(IN, 30949, U32, BIG, 0.001, F(INVERTER_PF), 1, 0), /* GridMs.TotPF */
	V(IN, 30957, I32, BIG, 0.001, F(PV_MPPT2_A), 1, 0),
	V(IN, 30959, I32, BIG, 0.01, F(PV_MPPT2_V), 1, 0),
	V(IN, 30961, I32, BIG, 1, F(PV_MPPT2_W), 1, 0),
	V(IN, 30977, I32, BIG, 0.001, F(INVERTER_L1_A), 1, 0), /* GridMs.A.phsA */
	V(IN, 30979, I32, BIG, 0.001, F(INVERTER_L2_A), 1, 0),
	V(IN, 30981, I32, BIG, 0.001, F(INVERTER_L3_A), 1, 0),
};

/* ---- SunSpec brands ---------------------------------------------------------
 * SunSpec Alliance "SunSpec Information Model Specification" and the model
 * definitions (models 1, 103, 113, 160, 203): "SunS" at 40000, then each
 * model as ID, L, L registers of points, then the end marker 0xFFFF, 0.
 * Integer models carry scale-factor registers; the simulator fixes them
 * (A -2, V -1, W 0, Hz -2, WH 0, DCA -2, DCV -1, DCW 0, Tmp -1). */
#define C16(fc_, a, val) V(fc_, a, U16, BIG, 1, SQ_CONST, 1, (val))
#define SF16(a, val) V(HI, a, I16, BIG, 1, SQ_CONST, 1, (val))
#define SUNS V(HI, 40000, U32, BIG, 1, SQ_CONST, 1, 0x53756E53)
#define COMMON(vendor, model, version) \
	{ HI, 40004, 16, vendor }, { HI, 40020, 16, model }, \
	{ \
		HI, 40044, 8, version \
	}

/* Integer inverter model 103 at 40069 (L 50), as the SolarEdge SunSpec
 * technical note and Fronius "int+SF" maps place it. */
#define MODEL_103_AT(a, dcw_q) \
	C16(HI, (a), 103), C16(HI, (a) + 1, 50), SF16((a) + 6, -2), SF16((a) + 13, -1), \
		V(HI, (a) + 14, I16, BIG, 1, F(INVERTER_W), -1, 0), SF16((a) + 15, 0),  /* W */ \
		V(HI, (a) + 16, U16, BIG, 0.01, F(METER_HZ), 1, 0), SF16((a) + 17, -2), /* Hz */ \
		V(HI, (a) + 24, U32, BIG, 1, F(PV_TOTAL_GENERATION_WH), 1, 0), SF16((a) + 26, 0), \
		SF16((a) + 28, -2), SF16((a) + 30, -1), \
		V(HI, (a) + 31, I16, BIG, 1, (dcw_q), -1, 0), SF16((a) + 32, 0), /* DCW */ \
		V(HI, (a) + 34, I16, BIG, 0.1, F(PV_HEATSINK_C), 1, 0), \
		SF16((a) + 37, -1) /* TmpSnk */
/* The AC side of model 103 at a: current, per phase currents and voltages,
 * apparent and reactive power, power factor (A_SF and V_SF as above).  The
 * SolarEdge note lists them all (I_AC_Current 40071, I_AC_CurrentA-C
 * 40072-40074, I_AC_VoltageAN-CN 40079-40081, I_AC_VA 40087, I_AC_VAR
 * 40089, I_AC_PF 40091, each with its sf), so does Fronius's int+SF map. */
#define MODEL_103_AC(a) \
	V(HI, (a) + 2, U16, BIG, 0.01, F(INVERTER_A), 1, 0), \
		V(HI, (a) + 3, U16, BIG, 0.01, F(INVERTER_L1_A), 1, 0), \
		V(HI, (a) + 4, U16, BIG, 0.01, F(INVERTER_L2_A), 1, 0), \
		V(HI, (a) + 5, U16, BIG, 0.01, F(INVERTER_L3_A), 1, 0), \
		V(HI, (a) + 10, U16, BIG, 0.1, F(INVERTER_L1_V), 1, 0), \
		V(HI, (a) + 11, U16, BIG, 0.1, F(INVERTER_L2_V), 1, 0), \
		V(HI, (a) + 12, U16, BIG, 0.1, F(INVERTER_L3_V), 1, 0), \
		V(HI, (a) + 18, I16, BIG, 1, F(INVERTER_VA), 1, 0), SF16((a) + 19, 0), \
		V(HI, (a) + 20, I16, BIG, 1, F(INVERTER_VAR), 1, 0), SF16((a) + 21, 0), \
		V(HI, (a) + 22, I16, BIG, 0.1, F(INVERTER_PF), 100, 0), \
		SF16((a) + 23, -1) /* PF in percent */
#define MODEL_103(dcw_q) MODEL_103_AT(40069, dcw_q)

/* MPPT model 160 at a (L 48), two modules of 20 registers from a + 10. */
#define MODEL_160(a) \
	C16(HI, (a), 160), C16(HI, (a) + 1, 48), SF16((a) + 2, -2), SF16((a) + 3, -1), \
		SF16((a) + 4, 0), C16(HI, (a) + 8, 2), C16(HI, (a) + 10, 1), \
		V(HI, (a) + 19, U16, BIG, 0.01, F(PV_MPPT1_A), 1, 0), \
		V(HI, (a) + 20, U16, BIG, 0.1, F(PV_MPPT1_V), 1, 0), \
		V(HI, (a) + 21, U16, BIG, 1, F(PV_MPPT1_W), 1, 0), C16(HI, (a) + 30, 2), \
		V(HI, (a) + 39, U16, BIG, 0.01, F(PV_MPPT2_A), 1, 0), \
		V(HI, (a) + 40, U16, BIG, 0.1, F(PV_MPPT2_V), 1, 0), \
		V(HI, (a) + 41, U16, BIG, 1, F(PV_MPPT2_W), 1, 0)

#define END_MARKER(a) C16(HI, (a), 0xFFFF), C16(HI, (a) + 1, 0)
/* Model id at a, its header (ID, L) from the model definition. */
#define SS_AT(a, id) C16(HI, (a), id), C16(HI, (a) + 1, SS##id##_LEN)
#define SS_NEXT(a, id) ((a) + 2 + SS##id##_LEN)

/* SolarEdge "SunSpec Implementation Technical Note" (its addresses count
 * from 1; zero-based here): common model 1 at 40002 (L 65: C_Manufacturer
 * 40004, C_Model 40020, C_Version 40044, C_SerialNumber 40052), inverter
 * model 103 at 40069 (L 50, every point of "Register Mapping - Monitoring
 * Data": AC current and per phase currents, phase voltages, AC power,
 * frequency, VA, VAR, PF, lifetime energy, DC power, heat-sink
 * temperature), then, with a meter, meter 1 ("Meter Models"): its own common
 * block at 40121 (L 65, C_Manufacturer, C_Model, C_SerialNumber) and its meter
 * model 203 at 40188 (L 105, the layout of SunSpec model 203: per phase
 * currents, voltages and powers, frequency, total real power import
 * positive, exported and imported real energy), end marker.  I_DC_Power is
 * reported. */
#define SE_M1 40188 /* meter 1's model 203 */
static const struct sim_vrange solaredge_ranges[] = {
	{ HI, 40000, SE_M1 + 2 + SS203_LEN + 2 - 40000 },
};
static const struct sim_vreg solaredge_regs[] = {
	SUNS,
	C16(HI, 40002, 1),
	C16(HI, 40003, 65),
	MODEL_103(F(PV_W)),
	MODEL_103_AC(40069),
	/* meter 1: common block, then model 203 */
	C16(HI, 40121, 1),
	C16(HI, 40122, 65),
	C16(HI, SE_M1, 203),
	C16(HI, SE_M1 + 1, SS203_LEN),
	SF16(SE_M1 + SS203_A_SF, -2),
	V(HI, SE_M1 + SS203_AphA, I16, BIG, 0.01, F(METER_L1_A), 1, 0),
	V(HI, SE_M1 + SS203_AphB, I16, BIG, 0.01, F(METER_L2_A), 1, 0),
	V(HI, SE_M1 + SS203_AphC, I16, BIG, 0.01, F(METER_L3_A), 1, 0),
	SF16(SE_M1 + SS203_V_SF, -1),
	V(HI, SE_M1 + SS203_PhVphA, I16, BIG, 0.1, F(METER_L1_V), 1, 0),
	V(HI, SE_M1 + SS203_PhVphB, I16, BIG, 0.1, F(METER_L2_V), 1, 0),
	V(HI, SE_M1 + SS203_PhVphC, I16, BIG, 0.1, F(METER_L3_V), 1, 0),
	V(HI, SE_M1 + SS203_Hz, I16, BIG, 0.01, F(METER_HZ), 1, 0),
	SF16(SE_M1 + SS203_Hz_SF, -2),
	V(HI, SE_M1 + SS203_W, I16, BIG, 1, F(METER_W), 1, 0),
	V(HI, SE_M1 + SS203_WphA, I16, BIG, 1, F(METER_L1_W), 1, 0),
	V(HI, SE_M1 + SS203_WphB, I16, BIG, 1, F(METER_L2_W), 1, 0),
	V(HI, SE_M1 + SS203_WphC, I16, BIG, 1, F(METER_L3_W), 1, 0),
	SF16(SE_M1 + SS203_W_SF, 0),
	V(HI, SE_M1 + SS203_TotWhExp, U32, BIG, 1, F(METER_TOTAL_EXPORT_WH), 1, 0),
	V(HI, SE_M1 + SS203_TotWhImp, U32, BIG, 1, F(METER_TOTAL_IMPORT_WH), 1, 0),
	SF16(SE_M1 + SS203_TotWh_SF, 0),
	END_MARKER(SE_M1 + 2 + SS203_LEN),
};
/* The same inverter without a meter: the end marker follows model 103; the
 * inverter still answers reads up to where a meter would be, with zeros
 * (the reference's block 40121+70 is read from every SolarEdge). */
static const struct sim_vrange solaredge_inv_ranges[] = {
	{ HI, 40000, 243 },
};
static const struct sim_vreg solaredge_inv_regs[] = {
	SUNS,
	C16(HI, 40002, 1),
	C16(HI, 40003, 65),
	MODEL_103(F(PV_W)),
	MODEL_103_AC(40069),
	END_MARKER(40121),
};
static const struct sim_vstr solaredge_strs[] = {
	COMMON("SolarEdge", "SE10K-RWS", "0004.0020.0036"),
	{ HI, 40123, 16, "SolarEdge" },
	{ HI, 40139, 16, "WND-3Y-400-MB" },
	{ HI, 40171, 16, "9A2B7C11" }, /* the meter's C_SerialNumber */
};

/* Fronius "Datamanager Modbus TCP & RTU", "int+SF" setting (register map
 * "SunSpec Inverter Model 101-103" and on; its addresses count from 1):
 * common model 1 at 40002 (L 65), inverter model 103 at 40069 (L 50, the AC
 * side, lifetime energy, DC power, heat-sink temperature), nameplate 120 at
 * 40121 (L 26), basic settings 121 at 40149 (L 30), extended measurements
 * 122 at 40181 (L 44), immediate controls 123 at 40227 (L 24), multiple
 * MPPT 160 at 40253 (L 48, two inputs), end marker at 40303.  Symo/Primo
 * report DCW as not implemented (0x8000): the AC power W is the usable
 * power. */
#define FR_NAMEPLATE_AT(a) \
	SS_AT(a, 120), C16(HI, (a) + SS120_DERTyp, 4), /* 4: PV */ \
		V(HI, (a) + SS120_WRtg, U16, BIG, 10, F(PV_RATED_POWER_W), 1, 0), \
		SF16((a) + SS120_WRtg_SF, 1), C16(HI, (a) + SS120_VARtg, 0xFFFF), \
		SF16((a) + SS120_VARtg_SF, -32768)
#define FR_TAIL(a120) \
	FR_NAMEPLATE_AT(a120), SS_AT(SS_NEXT(a120, 120), 121), \
		SS_AT(SS_NEXT(SS_NEXT(a120, 120), 121), 122), \
		V(HI, SS_NEXT(SS_NEXT(a120, 120), 121) + SS122_ActWh, U64, BIG, 1, \
		  F(PV_TOTAL_GENERATION_WH), 1, 0), \
		SS_AT(SS_NEXT(SS_NEXT(SS_NEXT(a120, 120), 121), 122), 123), \
		MODEL_160(SS_NEXT(SS_NEXT(SS_NEXT(SS_NEXT(a120, 120), 121), 122), 123)), \
		END_MARKER(SS_NEXT(SS_NEXT(SS_NEXT(SS_NEXT(a120, 120), 121), 122), 123) + 50)
#define FR_END(a120) (SS_NEXT(SS_NEXT(SS_NEXT(SS_NEXT(a120, 120), 121), 122), 123) + 50)
static const struct sim_vrange fronius_sf_ranges[] = {
	{ HI, 40000, FR_END(40121) + 2 - 40000 },
};
static const struct sim_vreg fronius_sf_regs[] = {
	SUNS,
	C16(HI, 40002, 1),
	C16(HI, 40003, 65),
	MODEL_103(SQ_NONE),
	MODEL_103_AC(40069),
	FR_TAIL(40121),
};

/* The points of 111-113 (PF in percent): a three-phase device's per phase
 * currents and voltages (SS_FLOAT_PHASES), a single-phase one's A and
 * PhVphA. */
#define SS_FLOAT_PHASES(a, id) \
	V(HI, (a) + SS##id##_AphA, F32, BIG, 1, F(INVERTER_L1_A), 1, 0), \
		V(HI, (a) + SS##id##_AphB, F32, BIG, 1, F(INVERTER_L2_A), 1, 0), \
		V(HI, (a) + SS##id##_AphC, F32, BIG, 1, F(INVERTER_L3_A), 1, 0), \
		V(HI, (a) + SS##id##_PhVphB, F32, BIG, 1, F(INVERTER_L2_V), 1, 0), \
		V(HI, (a) + SS##id##_PhVphC, F32, BIG, 1, F(INVERTER_L3_V), 1, 0)
#define SS_FLOAT_PTS(a, id, dcw_q) \
	V(HI, (a) + SS##id##_W, F32, BIG, 1, F(INVERTER_W), -1, 0), \
		V(HI, (a) + SS##id##_A, F32, BIG, 1, F(INVERTER_A), 1, 0), \
		V(HI, (a) + SS##id##_PhVphA, F32, BIG, 1, F(INVERTER_L1_V), 1, 0), \
		V(HI, (a) + SS##id##_VA, F32, BIG, 1, F(INVERTER_VA), 1, 0), \
		V(HI, (a) + SS##id##_VAr, F32, BIG, 1, F(INVERTER_VAR), 1, 0), \
		V(HI, (a) + SS##id##_PF, F32, BIG, 1, F(INVERTER_PF), 100, 0), \
		V(HI, (a) + SS##id##_Hz, F32, BIG, 1, F(METER_HZ), 1, 0), \
		V(HI, (a) + SS##id##_WH, F32, BIG, 1, F(PV_TOTAL_GENERATION_WH), 1, 0), \
		V(HI, (a) + SS##id##_DCW, F32, BIG, 1, (dcw_q), -1, 0), \
		V(HI, (a) + SS##id##_TmpSnk, F32, BIG, 1, F(PV_HEATSINK_C), 1, 0), \
		V(HI, (a) + SS##id##_TmpCab, F32, BIG, 1, SQ_NONE, 1, \
		  0) /* not implemented: NaN */

/* The same with the "float" setting: inverter model 113 at 40069 (L 60,
 * float32 points: A, phase currents and voltages, W 40091, Hz 40093, VA,
 * VAr, PF, WH 40101, DCW 40107 not implemented = NaN, TmpSnk 40111), then
 * 120 at 40131, 121, 122, 123 and 160 as above, end marker at 40313. */
static const struct sim_vrange fronius_ranges[] = {
	{ HI, 40000, FR_END(40131) + 2 - 40000 },
};
static const struct sim_vreg fronius_regs[] = {
	SUNS,
	C16(HI, 40002, 1),
	C16(HI, 40003, 65),
	C16(HI, 40069, 113),
	C16(HI, 40070, 60),
	SS_FLOAT_PTS(40069, 113, SQ_NONE),
	SS_FLOAT_PHASES(40069, 113),
	FR_TAIL(40131),
};
static const struct sim_vstr fronius_strs[] = {
	COMMON("Fronius", "Symo 10.0-3-M", "3.14.1-10"),
};

/* ---- SunSpec float, nameplate, status, storage and DER models ---------------
 * SunSpec Alliance model definitions (sunspec/models, model_N.json; the
 * offsets SSn_* are generated from those files by sunspec_offsets.py, not
 * taken from egw's decoder table): each model at the address where the one
 * before it ends, as a walker finds them.  Scale factors chosen here: WRtg
 * and WMaxRtg 1 (10 W), ChaState, SoC and InBatV -1, Hz (701) -3, W 0,
 * TotWh 0, Tmp -1, DCA -2, DCV -1. */

/* Float inverter model 111/112/113 at a: AC power, frequency, lifetime
 * energy, DC power, heat-sink temperature as float32, high word first. */
#define SS_FLOAT_INV(a, id) SS_AT(a, id), SS_FLOAT_PTS(a, id, F(PV_W))
#define SS_NAMEPLATE(a) \
	SS_AT(a, 120), C16(HI, (a) + SS120_DERTyp, 4), /* 4: PV */ \
		V(HI, (a) + SS120_WRtg, U16, BIG, 10, F(PV_RATED_POWER_W), 1, 0), \
		SF16((a) + SS120_WRtg_SF, 1), C16(HI, (a) + SS120_VARtg, 0xFFFF), \
		SF16((a) + SS120_VARtg_SF, -32768)

#define SS_STATUS(a) \
	SS_AT(a, 122), V(HI, (a) + SS122_ActWh, U64, BIG, 1, F(PV_TOTAL_GENERATION_WH), 1, 0)

#define SS_FL_1 40002
#define SS_FL_113 SS_NEXT(SS_FL_1, 1)
#define SS_FL_120 SS_NEXT(SS_FL_113, 113)
#define SS_FL_121 SS_NEXT(SS_FL_120, 120)
#define SS_FL_122 SS_NEXT(SS_FL_121, 121)
#define SS_FL_123 SS_NEXT(SS_FL_122, 122)
#define SS_FL_124 SS_NEXT(SS_FL_123, 123)
#define SS_FL_END SS_NEXT(SS_FL_124, 124)

/* A three-phase float inverter with storage, the order of a Fronius GEN24
 * "float" map: common, 113, 120, 121, 122, 123, 124, end. */
static const struct sim_vrange sunspec_float_ranges[] = {
	{ HI, 40000, SS_FL_END + 2 - 40000 },
};
static const struct sim_vreg sunspec_float_regs[] = {
	SUNS,
	SS_AT(SS_FL_1, 1),
	SS_FLOAT_INV(SS_FL_113, 113),
	SS_FLOAT_PHASES(SS_FL_113, 113),
	SS_NAMEPLATE(SS_FL_120),
	SS_AT(SS_FL_121, 121),
	SF16(SS_FL_121 + SS121_WMax_SF, 1),
	V(HI, SS_FL_121 + SS121_WMax, U16, BIG, 10, SQ_CONST, 1, 10000),
	SS_STATUS(SS_FL_122),
	SS_AT(SS_FL_123, 123),
	C16(HI, SS_FL_123 + SS123_Conn, 1),
	SS_AT(SS_FL_124, 124),
	V(HI, SS_FL_124 + SS124_ChaState, U16, BIG, 0.001, F(BATTERY_SOC_NOM_FRACT), 1, 0),
	SF16(SS_FL_124 + SS124_ChaState_SF, -1),
	V(HI, SS_FL_124 + SS124_InBatV, U16, BIG, 0.1, F(BATTERY_V), 1, 0),
	SF16(SS_FL_124 + SS124_InBatV_SF, -1),
	END_MARKER(SS_FL_END),
};

#define SS_F1_111 SS_NEXT(40002, 1)
#define SS_F1_120 SS_NEXT(SS_F1_111, 111)
#define SS_F1_122 SS_NEXT(SS_F1_120, 120)
#define SS_F1_END SS_NEXT(SS_F1_122, 122)

/* A single-phase float inverter: common, 111, 120, 122, end. */
static const struct sim_vrange sunspec_float1_ranges[] = {
	{ HI, 40000, SS_F1_END + 2 - 40000 },
};
static const struct sim_vreg sunspec_float1_regs[] = {
	SUNS,
	SS_AT(40002, 1),
	SS_FLOAT_INV(SS_F1_111, 111),
	/* single phase: A is the current, no phase B or C (NaN), and AphA left
	 * out as well (the simulated inverter's phases are three) */
	V(HI, SS_F1_111 + SS111_AphA, F32, BIG, 1, SQ_NONE, 1, 0),
	V(HI, SS_F1_111 + SS111_PhVphB, F32, BIG, 1, SQ_NONE, 1, 0),
	V(HI, SS_F1_111 + SS111_PhVphC, F32, BIG, 1, SQ_NONE, 1, 0),
	V(HI, SS_F1_111 + SS111_AphB, F32, BIG, 1, SQ_NONE, 1, 0),
	V(HI, SS_F1_111 + SS111_AphC, F32, BIG, 1, SQ_NONE, 1, 0),
	SS_NAMEPLATE(SS_F1_120),
	SS_STATUS(SS_F1_122),
	END_MARKER(SS_F1_END),
};

#define SS_DER_701 SS_NEXT(40002, 1)
#define SS_DER_702 SS_NEXT(SS_DER_701, 701)
#define SS_DER_713 SS_NEXT(SS_DER_702, 702)
#define SS_DER_714 SS_NEXT(SS_DER_713, 713)
#define SS_DER_END (SS_DER_714 + 2 + SS714_LEN + 2 * SS714_Prt_SIZE) /* two ports */
#define SS_DER_PORT(n, mppt_a, mppt_v, mppt_w) \
	C16(HI, SS_DER_714 + SS714_Prt_PrtTyp(n), 0), /* 0: PV */ \
		C16(HI, SS_DER_714 + SS714_Prt_ID(n), n), \
		V(HI, SS_DER_714 + SS714_Prt_DCW(n), I16, BIG, 1, mppt_w, 1, 0), \
		V(HI, SS_DER_714 + SS714_Prt_DCA(n), I16, BIG, 0.01, F(mppt_a), 1, 0), \
		V(HI, SS_DER_714 + SS714_Prt_DCV(n), U16, BIG, 0.1, F(mppt_v), 1, 0), \
		V(HI, SS_DER_714 + SS714_Prt_Tmp(n), I16, BIG, 1, SQ_NONE, 1, 0)

/* A DER with storage under the information models of IEEE 1547: common, 701
 * AC measurement, 702 capacity, 713 storage capacity, 714 DC measurement
 * with two PV ports (PrtTyp 0, each port's DCW and the model's total), end. */
static const struct sim_vrange sunspec_der_ranges[] = {
	{ HI, 40000, SS_DER_END + 2 - 40000 },
};
static const struct sim_vreg sunspec_der_regs[] = {
	SUNS,
	SS_AT(40002, 1),
	SS_AT(SS_DER_701, 701),
	C16(HI, SS_DER_701 + SS701_ACType, 2), /* 2: three-phase */
	V(HI, SS_DER_701 + SS701_W, I16, BIG, 1, F(INVERTER_W), -1, 0),
	SF16(SS_DER_701 + SS701_W_SF, 0),
	V(HI, SS_DER_701 + SS701_Hz, U32, BIG, 0.001, F(METER_HZ), 1, 0),
	SF16(SS_DER_701 + SS701_Hz_SF, -3),
	V(HI, SS_DER_701 + SS701_TotWhInj, U64, BIG, 1, F(PV_TOTAL_GENERATION_WH), 1, 0),
	SF16(SS_DER_701 + SS701_TotWh_SF, 0),
	V(HI, SS_DER_701 + SS701_TmpSnk, I16, BIG, 0.1, F(PV_HEATSINK_C), 1, 0),
	SF16(SS_DER_701 + SS701_Tmp_SF, -1),
	V(HI, SS_DER_701 + SS701_TmpAmb, I16, BIG, 0.1, SQ_NONE, 1, 0),
	/* apparent and reactive power, power factor (the sign of the active
	 * power: positive while delivering), current; per phase */
	V(HI, SS_DER_701 + SS701_VA, I16, BIG, 1, F(INVERTER_VA), 1, 0),
	SF16(SS_DER_701 + SS701_VA_SF, 0),
	V(HI, SS_DER_701 + SS701_Var, I16, BIG, 1, F(INVERTER_VAR), 1, 0),
	SF16(SS_DER_701 + SS701_Var_SF, 0),
	V(HI, SS_DER_701 + SS701_PF, I16, BIG, 0.001, F(INVERTER_PF), 1, 0),
	SF16(SS_DER_701 + SS701_PF_SF, -3),
	V(HI, SS_DER_701 + SS701_A, I16, BIG, 0.01, F(INVERTER_A), 1, 0),
	SF16(SS_DER_701 + SS701_A_SF, -2),
	SF16(SS_DER_701 + SS701_V_SF, -1),
	V(HI, SS_DER_701 + SS701_WL1, I16, BIG, 1, F(INVERTER_L1_W), -1, 0),
	V(HI, SS_DER_701 + SS701_AL1, I16, BIG, 0.01, F(INVERTER_L1_A), 1, 0),
	V(HI, SS_DER_701 + SS701_VL1, U16, BIG, 0.1, F(INVERTER_L1_V), 1, 0),
	V(HI, SS_DER_701 + SS701_WL2, I16, BIG, 1, F(INVERTER_L2_W), -1, 0),
	V(HI, SS_DER_701 + SS701_AL2, I16, BIG, 0.01, F(INVERTER_L2_A), 1, 0),
	V(HI, SS_DER_701 + SS701_VL2, U16, BIG, 0.1, F(INVERTER_L2_V), 1, 0),
	V(HI, SS_DER_701 + SS701_WL3, I16, BIG, 1, F(INVERTER_L3_W), -1, 0),
	V(HI, SS_DER_701 + SS701_AL3, I16, BIG, 0.01, F(INVERTER_L3_A), 1, 0),
	V(HI, SS_DER_701 + SS701_VL3, U16, BIG, 0.1, F(INVERTER_L3_V), 1, 0),
	SS_AT(SS_DER_702, 702),
	V(HI, SS_DER_702 + SS702_WMaxRtg, U16, BIG, 10, F(PV_RATED_POWER_W), 1, 0),
	SF16(SS_DER_702 + SS702_W_SF, 1),
	C16(HI, SS_DER_713, 713),
	C16(HI, SS_DER_713 + 1, SS713_LEN),
	V(HI, SS_DER_713 + SS713_SoC, U16, BIG, 0.001, F(BATTERY_SOC_NOM_FRACT), 1, 0),
	V(HI, SS_DER_713 + SS713_SoH, U16, BIG, 0.001, F(BATTERY_SOH_FRACT), 1, 0),
	SF16(SS_DER_713 + SS713_Pct_SF, -1),
	C16(HI, SS_DER_714, 714),
	C16(HI, SS_DER_714 + 1, SS714_LEN + 2 * SS714_Prt_SIZE),
	C16(HI, SS_DER_714 + SS714_NPrt, 2),
	SF16(SS_DER_714 + SS714_DCA_SF, -2),
	SF16(SS_DER_714 + SS714_DCV_SF, -1),
	V(HI, SS_DER_714 + SS714_DCW, I16, BIG, 1, F(PV_W), -1, 0),
	SF16(SS_DER_714 + SS714_DCW_SF, 0),
	SS_DER_PORT(1, PV_MPPT1_A, PV_MPPT1_V, F(PV_MPPT1_W)),
	SS_DER_PORT(2, PV_MPPT2_A, PV_MPPT2_V, F(PV_MPPT2_W)),
	END_MARKER(SS_DER_END),
};
static const struct sim_vstr sunspec_strs[] = {
	COMMON("SunSpec", "egw-sim SunSpec", "1.0"),
};
#define SIM_BATT_MAX_W 5000 /* the physics' default batt_max_w (SIM_PHYS_CFG_DEFAULT) */

/* ---- Huawei SUN2000 (+ LUNA2000 battery, DTSU666-H meter) -----------------
 * Huawei "SUN2000 MODBUS Interface Definitions" (holding registers, 32-bit
 * values high word first; "gain" g means value = raw / g): 30015 SN (10
 * registers), 30073 rated power (U32, kW, gain 1000), 32016/32017 PV1 voltage
 * (I16, gain 10) / current (I16, gain 100), 32018/32019 PV2, 32064 input power
 * (I32, kW, gain 1000), 32069-32071 phase A-C voltages (U16, gain 10),
 * 32072/32074/32076 phase A-C currents (I32, gain 1000), 32080 active power
 * (I32, kW, gain 1000, output +), 32082 reactive power (I32, kvar, gain
 * 1000), 32084 power factor (I16, gain 1000),
 * 32085 grid frequency (U16, gain 100), 32087 internal temperature (I16,
 * gain 10), 32106 accumulated yield and 32114 daily energy yield (U32, kWh,
 * gain 100).  LUNA2000 (only
 * with a battery): 37001 charge/discharge power (I32, W, charging +), 37003
 * bus voltage (gain 10), 37004 SOC (%, gain 10), 37021 bus current (I16, gain
 * 10), 37022 temperature (gain 10), 37066/37068 total charge/discharge (U32,
 * kWh, gain 100).  Meter (only when connected): 37101-37105 phase voltages
 * (I32, gain 10), 37107-37111 currents (I32, gain 100), 37113 active power
 * (I32, W, positive = feed-in), 37118 frequency (gain 100), 37119 positive
 * active energy (feed-in) and 37121 reverse active energy (supply), I32 kWh
 * gain 100, 37132-37136 phase powers (W, feed-in +). */
static const struct sim_vrange huawei_ranges[] = {
	{ HI, 30000, 125 },
	{ HI, 32000, 125 },
};
#define HUAWEI_INVERTER \
	V(HI, 30073, U32, BIG, 1, F(PV_RATED_POWER_W), 1, 0), \
		V(HI, 32016, I16, BIG, 0.1, F(PV_MPPT1_V), 1, 0), \
		V(HI, 32017, I16, BIG, 0.01, F(PV_MPPT1_A), 1, 0), \
		V(HI, 32018, I16, BIG, 0.1, F(PV_MPPT2_V), 1, 0), \
		V(HI, 32019, I16, BIG, 0.01, F(PV_MPPT2_A), 1, 0), \
		V(HI, 32064, I32, BIG, 1, F(PV_W), -1, 0), \
		V(HI, 32080, I32, BIG, 1, F(INVERTER_W), -1, 0), \
		V(HI, 32069, U16, BIG, 0.1, F(INVERTER_L1_V), 1, 0), \
		V(HI, 32070, U16, BIG, 0.1, F(INVERTER_L2_V), 1, 0), \
		V(HI, 32071, U16, BIG, 0.1, F(INVERTER_L3_V), 1, 0), \
		V(HI, 32072, I32, BIG, 0.001, F(INVERTER_L1_A), 1, 0), \
		V(HI, 32074, I32, BIG, 0.001, F(INVERTER_L2_A), 1, 0), \
		V(HI, 32076, I32, BIG, 0.001, F(INVERTER_L3_A), 1, 0), \
		V(HI, 32082, I32, BIG, 1, F(INVERTER_VAR), 1, 0), \
		V(HI, 32084, I16, BIG, 0.001, F(INVERTER_PF), 1, 0), \
		V(HI, 32085, U16, BIG, 0.01, F(METER_HZ), 1, 0), \
		V(HI, 32087, I16, BIG, 0.1, F(PV_HEATSINK_C), 1, 0), \
		V(HI, 32106, U32, BIG, 10, F(PV_TOTAL_GENERATION_WH), 1, 0), \
		V(HI, 32114, U32, BIG, 10, F(PV_DAILY_GENERATION_WH), 1, 0)
static const struct sim_vreg huawei_regs[] = {
	HUAWEI_INVERTER,
};
static const struct sim_vrange huawei_hybrid_ranges[] = {
	{ HI, 30000, 125 }, { HI, 32000, 125 }, { HI, 37000, 70 },
	{ HI, 37100, 39 },  { HI, 37700, 100 }, { HI, 47000, 760 },
};
static const struct sim_vreg huawei_hybrid_regs[] = {
	HUAWEI_INVERTER,
	V(HI, 37001, I32, BIG, 1, F(BATTERY_W), 1, 0),
	V(HI, 37003, U16, BIG, 0.1, F(BATTERY_V), 1, 0),
	V(HI, 37004, U16, BIG, 0.001, F(BATTERY_SOC_NOM_FRACT), 1, 0),
	V(HI, 37021, I16, BIG, 0.1, F(BATTERY_A), 1, 0),
	V(HI, 37022, I16, BIG, 0.1, F(BATTERY_HEATSINK_C), 1, 0),
	V(HI, 37066, U32, BIG, 10, F(BATTERY_TOTAL_CHARGE_WH), 1, 0),
	V(HI, 37068, U32, BIG, 10, F(BATTERY_TOTAL_DISCHARGE_WH), 1, 0),
	V(HI, 37100, U16, BIG, 1, SQ_CONST, 1, 1), /* meter status: normal */
	V(HI, 37101, I32, BIG, 0.1, F(METER_L1_V), 1, 0),
	V(HI, 37103, I32, BIG, 0.1, F(METER_L2_V), 1, 0),
	V(HI, 37105, I32, BIG, 0.1, F(METER_L3_V), 1, 0),
	V(HI, 37107, I32, BIG, 0.01, F(METER_L1_A), -1, 0),
	V(HI, 37109, I32, BIG, 0.01, F(METER_L2_A), -1, 0),
	V(HI, 37111, I32, BIG, 0.01, F(METER_L3_A), -1, 0),
	V(HI, 37113, I32, BIG, 1, F(METER_W), -1, 0),
	V(HI, 37118, I16, BIG, 0.01, F(METER_HZ), 1, 0),
	V(HI, 37119, I32, BIG, 10, F(METER_TOTAL_EXPORT_WH), 1, 0),
	V(HI, 37121, I32, BIG, 10, F(METER_TOTAL_IMPORT_WH), 1, 0),
	V(HI, 37132, I32, BIG, 1, F(METER_L1_W), -1, 0),
	V(HI, 37134, I32, BIG, 1, F(METER_L2_W), -1, 0),
	V(HI, 37136, I32, BIG, 1, F(METER_L3_W), -1, 0),
	/* Energy storage system (all ESUs): 37760 SOC (U16, %, gain 10), 37765
	 * charge/discharge power (I32, W, > 0 charging) */
	V(HI, 37760, U16, BIG, 0.001, F(BATTERY_SOC_NOM_FRACT), 1, 0),
	V(HI, 37765, I32, BIG, 1, F(BATTERY_W), 1, 0),
	/* ESS settings with their defaults: 47075 / 47077 maximum charging /
	 * discharging power (U32, W), 47083 forced charging and discharging
	 * period (U16, min), 47086 working mode settings (2 = maximise self
	 * consumption), 47100 forcible charge/discharge (0 stop, 1 charge, 2
	 * discharge), 47101 target SOC (gain 10), 47246 forcible
	 * charge/discharge setting mode (0 duration, 1 target SOC), 47247 /
	 * 47249 forcible charge / discharge power (U32, W) */
	V(HI, 47075, U32, BIG, 1, SQ_CONST, 1, SIM_BATT_MAX_W),
	V(HI, 47077, U32, BIG, 1, SQ_CONST, 1, SIM_BATT_MAX_W),
	V(HI, 47083, U16, BIG, 1, SQ_CONST, 1, 0),
	V(HI, 47086, U16, BIG, 1, SQ_CONST, 1, 2),
	V(HI, 47100, U16, BIG, 1, SQ_CONST, 1, 0),
	V(HI, 47101, U16, BIG, 1, SQ_CONST, 1, 1000),
	V(HI, 47246, U16, BIG, 1, SQ_CONST, 1, 0),
	V(HI, 47247, U32, BIG, 1, SQ_CONST, 1, 0),
	V(HI, 47249, U32, BIG, 1, SQ_CONST, 1, 0),
};
/* The same with no meter connected: 37100 meter status 0 (offline), the
 * meter registers 0. */
static const struct sim_vreg huawei_hybrid_nometer_regs[] = {
	HUAWEI_INVERTER,
	V(HI, 37001, I32, BIG, 1, F(BATTERY_W), 1, 0),
	V(HI, 37003, U16, BIG, 0.1, F(BATTERY_V), 1, 0),
	V(HI, 37004, U16, BIG, 0.001, F(BATTERY_SOC_NOM_FRACT), 1, 0),
	V(HI, 37021, I16, BIG, 0.1, F(BATTERY_A), 1, 0),
	V(HI, 37022, I16, BIG, 0.1, F(BATTERY_HEATSINK_C), 1, 0),
	V(HI, 37066, U32, BIG, 10, F(BATTERY_TOTAL_CHARGE_WH), 1, 0),
	V(HI, 37068, U32, BIG, 10, F(BATTERY_TOTAL_DISCHARGE_WH), 1, 0),
	V(HI, 37100, U16, BIG, 1, SQ_CONST, 1, 0),
};


/* ---- SunSpec storage ---------------------------------------------------------
 * A SunSpec hybrid with a battery: common model 1 (L 66), integer inverter
 * model 103 at 40070 (L 50), Basic Storage Controls model 124 at 40122 (L
 * 24), Battery Base model 802 at 40148 (L 62), end marker at 40212.  Point
 * offsets from each model's ID register, after the SunSpec model definitions
 * (model_124.json, model_802.json of the SunSpec models repository).
 *
 * 124: WChaMax +2 (W, WChaMax_SF +18 = 0), StorCtl_Mod +5 (bit 0 CHARGE,
 * bit 1 DiSCHARGE limit active), ChaState +8 (% of capacity, ChaState_SF
 * +22 = -1), InBatV +10 (InBatV_SF +24 = -1), ChaSt +11, OutWRte +12 and
 * InWRte +13 ("percent of max discharge / charging rate", InOutWRte_SF +25 =
 * -2), InOutWRte_WinTms +14, InOutWRte_RvrtTms +15 ("timeout period for
 * charge/discharge rate", s), InOutWRte_RmpTms +16, ChaGriSet +17 (1 GRID).
 * 802: WHRtg +3, WChaRteMax +4, WDisChaRteMax +5 (WChaDisChaMax_SF +54),
 * SoCMax +7, SoCMin +8, SoC +11 (SoC_SF +56 = -1), ChaSt +16, V +34 (V_SF
 * +59 = -1), A +44 (A_SF +61 = -1), W +47 (W_SF +63 = 0); as SunSpec
 * batteries report them, A and W are positive when discharging. */
#define SS124 40122
#define SS802 40148
static const struct sim_vrange sunspec_storage_ranges[] = {
	{ HI, 40000, 214 },
};
static const struct sim_vreg sunspec_storage_regs[] = {
	SUNS,
	C16(HI, 40002, 1),
	C16(HI, 40003, 66),
	MODEL_103_AT(40070, F(PV_W)),
	MODEL_103_AC(40070),
	C16(HI, SS124, 124),
	C16(HI, SS124 + 1, 24),
	C16(HI, SS124 + 2, SIM_BATT_MAX_W), /* WChaMax */
	C16(HI, SS124 + 3, 100),
	C16(HI, SS124 + 4, 100),                                           /* WChaGra, WDisChaGra */
	C16(HI, SS124 + 5, 0),                                             /* StorCtl_Mod */
	V(HI, SS124 + 8, U16, BIG, 0.001, F(BATTERY_SOC_NOM_FRACT), 1, 0), /* ChaState */
	V(HI, SS124 + 10, U16, BIG, 0.1, F(BATTERY_V), 1, 0),              /* InBatV */
	V(HI, SS124 + 11, U16, BIG, 1, SQ_SUNSPEC_CHAST, 1, 0),            /* ChaSt */
	V(HI, SS124 + 12, I16, BIG, 1, SQ_CONST, 1, 10000),                /* OutWRte 100.00 % */
	V(HI, SS124 + 13, I16, BIG, 1, SQ_CONST, 1, 10000),                /* InWRte */
	C16(HI, SS124 + 17, 1),                                            /* ChaGriSet GRID */
	SF16(SS124 + 18, 0),
	SF16(SS124 + 19, 0),
	SF16(SS124 + 20, 0),
	SF16(SS124 + 21, 0),
	SF16(SS124 + 22, -1),
	SF16(SS124 + 23, 0),
	SF16(SS124 + 24, -1),
	SF16(SS124 + 25, -2),
	C16(HI, SS802, 802),
	C16(HI, SS802 + 1, 62),
	C16(HI, SS802 + 3, 10000), /* WHRtg */
	C16(HI, SS802 + 4, SIM_BATT_MAX_W),
	C16(HI, SS802 + 5, SIM_BATT_MAX_W),
	C16(HI, SS802 + 7, 1000),
	C16(HI, SS802 + 8, 50),                                             /* SoCMax, SoCMin */
	V(HI, SS802 + 11, U16, BIG, 0.001, F(BATTERY_SOC_NOM_FRACT), 1, 0), /* SoC */
	V(HI, SS802 + 13, U16, BIG, 0.001, F(BATTERY_SOH_FRACT), 1, 0),     /* SoH */
	V(HI, SS802 + 16, U16, BIG, 1, SQ_SUNSPEC_CHAST, 1, 0),             /* ChaSt */
	V(HI, SS802 + 34, U16, BIG, 0.1, F(BATTERY_V), 1, 0),               /* V */
	V(HI, SS802 + 44, I16, BIG, 0.1, F(BATTERY_A), -1, 0),              /* A, discharge + */
	V(HI, SS802 + 47, I16, BIG, 1, F(BATTERY_W), -1, 0),                /* W, discharge + */
	SF16(SS802 + 53, 0),
	SF16(SS802 + 54, 0),
	SF16(SS802 + 56, -1),
	SF16(SS802 + 58, -1),
	SF16(SS802 + 59, -1),
	SF16(SS802 + 61, -1),
	SF16(SS802 + 63, 0),
	END_MARKER(40212),
};
static const struct sim_vstr sunspec_storage_strs[] = {
	COMMON("egw-sim", "SunSpec storage", "1.0"),
};

/* ---- battery control ---------------------------------------------------------
 * Each turns the control registers of its document, as written, into a
 * command for the simulated battery (physics.h). */

static uint16_t reg16(const struct regimage *img, uint16_t addr)
{
	uint16_t w = 0;
	(void)regimage_get(img, REG_FC_HOLDING, addr, 1, &w);
	return w;
}

static uint32_t reg32(const struct regimage *img, uint16_t addr)
{
	return (uint32_t)reg16(img, addr) << 16 | reg16(img, (uint16_t)(addr + 1));
}

static bool touches(uint16_t addr, unsigned count, uint16_t lo, uint16_t hi)
{
	return (unsigned)addr <= hi && (unsigned)addr + count > lo;
}

/* Sungrow residential hybrid protocol, holding registers (document numbers):
 * 13050 EMS mode selection: 0 self-consumption, 2 forced mode, 3 external
 * EMS (driven by the same command registers); 13051 charge/discharge
 * command: 0xAA charge, 0xBB discharge, 0xCC stop; 13052 charge/discharge
 * power, W.  The document gives forced mode no timeout: it lasts until
 * 13050 is written back to 0. */
static int sungrow_control(const struct regimage *img, uint16_t addr, unsigned count, double t,
			   const struct sim_batt_cmd *prev, struct sim_batt_cmd *ret_cmd)
{
	(void)prev;
	if (!touches(addr, count, 13049, 13051))
		return 0;
	uint16_t mode = reg16(img, 13049), cmd = reg16(img, 13050);
	double w = reg16(img, 13051);
	double set = cmd == 0xAA ? w : cmd == 0xBB ? -w : 0.0;
	*ret_cmd = (struct sim_batt_cmd){ .t = t,
					  .remote = mode == 2 || mode == 3,
					  .lo_w = set,
					  .hi_w = set,
					  .timeout_s = INFINITY,
					  .since = t };
	return 1;
}

/* Huawei SUN2000 interface definitions, ESS settings: 47100 forcible
 * charge/discharge (0 stop, 1 charge, 2 discharge) starts or ends a forced
 * charge or discharge at 47247 / 47249 W; in duration mode (47246 = 0) it
 * ends by itself after 47083 minutes, counted from the 47100 write that
 * started it; in target-SOC mode (47246 = 1) it ends when 47101 is reached
 * (not modelled: no timeout).  A write of the power or the period alone
 * changes the running command without restarting its period. */
static int huawei_control(const struct regimage *img, uint16_t addr, unsigned count, double t,
			  const struct sim_batt_cmd *prev, struct sim_batt_cmd *ret_cmd)
{
	bool start = touches(addr, count, 47100, 47100);
	if (!start &&
	    !(prev->remote &&
	      (touches(addr, count, 47083, 47083) || touches(addr, count, 47246, 47250))))
		return 0;
	uint16_t cmd = reg16(img, 47100);
	double w = cmd == 1 ? (double)reg32(img, 47247) : cmd == 2 ? -(double)reg32(img, 47249) : 0;
	double period = reg16(img, 47246) == 0 ? reg16(img, 47083) * 60.0 : INFINITY;
	/* the command arrives now; its period runs from the 47100 write */
	double started = start ? t : prev->since;
	*ret_cmd = (struct sim_batt_cmd){ .t = t,
					  .remote = cmd == 1 || cmd == 2,
					  .lo_w = w,
					  .hi_w = w,
					  .timeout_s = period - (t - started),
					  .since = started };
	return 1;
}

/* SunSpec model 124: StorCtl_Mod bit 0 puts a ceiling of InWRte % x WChaMax
 * on charging, bit 1 a ceiling of OutWRte % x WChaMax on discharging; a
 * negative rate crosses zero, so [OutWRte, InWRte] = [-r, r] pins the power
 * at r % (the window a SunSpec storage controller is driven with).  With no
 * write of a control point for InOutWRte_RvrtTms seconds (0: never) the
 * rates revert and the battery is back in its own mode. */
static int sunspec_control(const struct regimage *img, uint16_t addr, unsigned count, double t,
			   const struct sim_batt_cmd *prev, struct sim_batt_cmd *ret_cmd)
{
	(void)prev;
	if (!touches(addr, count, SS124 + 2, SS124 + 17))
		return 0;
	double wmax = reg16(img, SS124 + 2) * pow(10, (int16_t)reg16(img, SS124 + 18));
	double rsf = pow(10, (int16_t)reg16(img, SS124 + 25)) / 100.0;
	uint16_t mod = reg16(img, SS124 + 5);
	double out = (int16_t)reg16(img, SS124 + 12) * rsf * wmax;
	double in = (int16_t)reg16(img, SS124 + 13) * rsf * wmax;
	uint16_t rvrt = reg16(img, SS124 + 15);
	*ret_cmd = (struct sim_batt_cmd){ .t = t,
					  .remote = (mod & 3) != 0,
					  .lo_w = (mod & 2) ? -out : -INFINITY,
					  .hi_w = (mod & 1) ? in : INFINITY,
					  .timeout_s = rvrt ? rvrt : INFINITY,
					  .since = t };
	return 1;
}

#define RANGES(r) .ranges = (r), .nranges = ARRAY_SIZE(r)
#define REGS(r) .regs = (r), .nregs = ARRAY_SIZE(r)
#define STRS(r) .strs = (r), .nstrs = ARRAY_SIZE(r)
#define SERIAL_STR(f, a, w) .serial = { .fc = (f), .addr = (a), .words = (w), .type = REG_STR }

static const struct sim_model model_sdm630 = {
	.name = "sdm630",
	.profile = "sdm630",
	.meter = true,
	.doc = "Eastron SDM630 Modbus protocol V1.5",
	RANGES(sdm630_ranges),
	REGS(sdm630_regs),
	.serial = { .fc = HI, .addr = 64512, .words = 2, .type = REG_U32 },
};
static const struct sim_model model_sungrow = {
	.name = "sungrow",
	.profile = "sungrow",
	.battery = true,
	.meter = true,
	.doc = "Sungrow Communication Protocol of Residential Hybrid Inverter V1.0.23",
	RANGES(sungrow_sh_ranges),
	REGS(sungrow_sh_regs),
	SERIAL_STR(IN, 4989, 10),
	.control = sungrow_control,
};
static const struct sim_model model_sungrow_sf = {
	.name = "sungrow_sf",
	.profile = "sungrow_sf",
	.battery = true,
	.meter = true,
	.doc = "Sungrow Communication Protocol of Residential Hybrid Inverter V1.0.23",
	RANGES(sungrow_sh_ranges),
	REGS(sungrow_sh_regs),
	SERIAL_STR(IN, 4989, 10),
	.control = sungrow_control,
};
static const struct sim_model model_sungrow_nometer = {
	.name = "sungrow_nometer",
	.profile = "sungrow",
	.battery = true,
	.doc = "Sungrow Communication Protocol of Residential Hybrid Inverter V1.0.23 (no meter)",
	RANGES(sungrow_sh_ranges),
	REGS(sungrow_sh_nometer_regs),
	SERIAL_STR(IN, 4989, 10),
};
static const struct sim_model model_sungrow_sg = {
	.name = "sungrow_sg",
	.profile = "sungrow",
	.doc = "Sungrow Communication Protocol of PV Grid-Connected String Inverters V1.1",
	RANGES(sungrow_sg_ranges),
	REGS(sungrow_sg_regs),
	SERIAL_STR(IN, 4989, 10),
};
static const struct sim_model model_deye = {
	.name = "deye",
	.profile = "deye",
	.battery = true,
	.meter = true,
	.doc = "Deye SUN-xK-SG04LP3-EU Modbus protocol",
	RANGES(deye_ranges),
	REGS(deye_regs),
	SERIAL_STR(HI, 3, 5),
};
static const struct sim_model model_deye_micro = {
	.name = "deye_micro",
	.profile = "deye_micro",
	.doc = "Deye microinverter registers (kbialek/deye-inverter-mqtt metric_group_micro)",
	RANGES(deye_micro_ranges),
	REGS(deye_micro_regs),
	SERIAL_STR(HI, 3, 5),
};
static const struct sim_model model_solis = {
	.name = "solis",
	.profile = "solis",
	.doc = "Solis RS485 MODBUS Communication Protocol (grid-tied string inverters)",
	RANGES(solis_ranges),
	REGS(solis_regs),
	.serial = { .fc = IN, .addr = 3060, .words = 4, .type = REG_U64 },
};
static const struct sim_model model_solis_hybrid = {
	.name = "solis_hybrid",
	.profile = "solis_hybrid",
	.battery = true,
	.meter = true,
	.doc = "Solis RS485_MODBUS RTU Hybrid Inverter Protocol Ver 3.2",
	RANGES(solis_hybrid_ranges),
	REGS(solis_hybrid_regs),
	SERIAL_STR(IN, 33004, 16),
};
static const struct sim_model model_solis_hybrid_nobattery = {
	.name = "solis_hybrid_nobattery",
	.profile = "solis_hybrid",
	.meter = true,
	.doc = "Solis RS485_MODBUS RTU Hybrid Inverter Protocol Ver 3.2 (no battery installed)",
	RANGES(solis_hybrid_ranges),
	REGS(solis_hybrid_nobattery_regs),
	SERIAL_STR(IN, 33004, 16),
};
static const struct sim_model model_growatt = {
	.name = "growatt",
	.profile = "growatt",
	.doc = "Growatt Inverter Modbus RTU Protocol V1.24 (TL-X/TL-XH, MIN type)",
	RANGES(growatt_ranges),
	REGS(growatt_regs),
	SERIAL_STR(HI, 209, 15),
};
static const struct sim_model model_solax = {
	.name = "solax",
	.profile = "solax",
	.doc = "SolaX Hybrid X1/X3-G4 ModbusTCP&RTU protocol",
	RANGES(solax_ranges),
	REGS(solax_regs),
	SERIAL_STR(HI, 0, 7),
};
static const struct sim_model model_goodwe = {
	.name = "goodwe",
	.profile = "goodwe",
	.doc = "GoodWe ET/EH/BT/BH Series Modbus Protocol",
	RANGES(goodwe_ranges),
	REGS(goodwe_regs),
	SERIAL_STR(HI, 35003, 8),
};
static const struct sim_model model_ferroamp = {
	.name = "ferroamp",
	.profile = "ferroamp",
	.battery = true,
	.meter = true,
	.doc = "Ferroamp Modbus TCP specification Rev. B (EnergyHub; addresses as evcc and the "
	       "ferroamp_modbus integration read them)",
	RANGES(ferroamp_ranges),
	REGS(ferroamp_regs),
};
static const struct sim_model model_ferroamp_nobattery = {
	.name = "ferroamp_nobattery",
	.profile = "ferroamp",
	.meter = true,
	.doc = "Ferroamp Modbus TCP specification Rev. B (EnergyHub without ESO batteries)",
	RANGES(ferroamp_ranges),
	REGS(ferroamp_nobattery_regs),
};
static const struct sim_model model_sofar = {
	.name = "sofar",
	.profile = "sofar",
	.battery = true,
	.doc = "Sofar G3 Modbus-RTU communication protocol",
	RANGES(sofar_ranges),
	REGS(sofar_regs),
	SERIAL_STR(HI, 1093, 8),
};
static const struct sim_model model_sma = {
	.name = "sma",
	.profile = "sma",
	.doc = "SMA Modbus parameters and measured values (SB/STP)",
	RANGES(sma_ranges),
	REGS(sma_regs),
	.serial = { .fc = IN, .addr = 40067, .words = 2, .type = REG_U32 },
};

/* "solaredge" is the inverter alone (the demo pairs it with an SDM630: one
 * grid meter per home); "solaredge_meter" has SolarEdge's own meter 1. */
static const struct sim_model model_solaredge_meter = {
	.name = "solaredge_meter",
	.profile = "solaredge",
	.meter = true,
	.doc = "SolarEdge SunSpec Implementation Technical Note",
	RANGES(solaredge_ranges),
	REGS(solaredge_regs),
	STRS(solaredge_strs),
	SERIAL_STR(HI, 40052, 16),
};
static const struct sim_model model_solaredge = {
	.name = "solaredge",
	.profile = "solaredge",
	.doc = "SolarEdge SunSpec Implementation Technical Note (no meter)",
	RANGES(solaredge_inv_ranges),
	REGS(solaredge_inv_regs),
	STRS(solaredge_strs),
	SERIAL_STR(HI, 40052, 16),
};
/* The US models carry the same SunSpec map (their scale factors differ; a
 * SunSpec reader takes them from the sf registers). */
static const struct sim_model model_solaredge_us = {
	.name = "solaredge_us",
	.profile = "solaredge_us",
	.doc = "SolarEdge SunSpec Implementation Technical Note",
	RANGES(solaredge_inv_ranges),
	REGS(solaredge_inv_regs),
	STRS(solaredge_strs),
	SERIAL_STR(HI, 40052, 16),
};
static const struct sim_model model_fronius_sf = {
	.name = "fronius_sf",
	.profile = "fronius_sf",
	.doc = "Fronius Datamanager Modbus TCP & RTU (SunSpec int+SF)",
	RANGES(fronius_sf_ranges),
	REGS(fronius_sf_regs),
	STRS(fronius_strs),
	SERIAL_STR(HI, 40052, 16),
};
static const struct sim_model model_fronius = {
	.name = "fronius",
	.profile = "fronius",
	.doc = "Fronius Datamanager Modbus TCP & RTU (SunSpec float)",
	RANGES(fronius_ranges),
	REGS(fronius_regs),
	STRS(fronius_strs),
	SERIAL_STR(HI, 40052, 16),
};

static const struct sim_model model_sunspec_float = {
	.name = "sunspec_float",
	.profile = "sunspec",
	.battery = true,
	.doc = "SunSpec model definitions 1, 113, 120, 121, 122, 123, 124",
	RANGES(sunspec_float_ranges),
	REGS(sunspec_float_regs),
	STRS(sunspec_strs),
	SERIAL_STR(HI, 40052, 16),
};
static const struct sim_model model_sunspec_float1 = {
	.name = "sunspec_float1",
	.profile = "sunspec",
	.doc = "SunSpec model definitions 1, 111, 120, 122",
	RANGES(sunspec_float1_ranges),
	REGS(sunspec_float1_regs),
	STRS(sunspec_strs),
	SERIAL_STR(HI, 40052, 16),
};
static const struct sim_model model_sunspec_der = {
	.name = "sunspec_der",
	.profile = "sunspec",
	.battery = true,
	.doc = "SunSpec model definitions 1, 701, 702, 713, 714",
	RANGES(sunspec_der_ranges),
	REGS(sunspec_der_regs),
	STRS(sunspec_strs),
	SERIAL_STR(HI, 40052, 16),
};

static const struct sim_model model_huawei = {
	.name = "huawei",
	.profile = "huawei",
	.doc = "Huawei SUN2000 MODBUS Interface Definitions",
	RANGES(huawei_ranges),
	REGS(huawei_regs),
	SERIAL_STR(HI, 30015, 10),
};
static const struct sim_model model_huawei_hybrid = {
	.name = "huawei_hybrid",
	.profile = "huawei_hybrid",
	.battery = true,
	.meter = true,
	.doc = "Huawei SUN2000 MODBUS Interface Definitions (LUNA2000, DTSU666-H meter)",
	RANGES(huawei_hybrid_ranges),
	REGS(huawei_hybrid_regs),
	SERIAL_STR(HI, 30015, 10),
	.control = huawei_control,
};
static const struct sim_model model_sunspec_storage = {
	.name = "sunspec_storage",
	.profile = "sunspec",
	.battery = true,
	.doc = "SunSpec models 1, 103, 124 (Basic Storage Controls), 802 (Battery Base)",
	RANGES(sunspec_storage_ranges),
	REGS(sunspec_storage_regs),
	STRS(sunspec_storage_strs),
	SERIAL_STR(HI, 40052, 16),
	.control = sunspec_control,
};
static const struct sim_model model_huawei_hybrid_nometer = {
	.name = "huawei_hybrid_nometer",
	.profile = "huawei_hybrid",
	.battery = true,
	.doc = "Huawei SUN2000 MODBUS Interface Definitions (LUNA2000, no meter)",
	RANGES(huawei_hybrid_ranges),
	REGS(huawei_hybrid_nometer_regs),
	SERIAL_STR(HI, 30015, 10),
};

static const struct sim_model *const models[] = {
	&model_huawei,
	&model_huawei_hybrid,
	&model_huawei_hybrid_nometer,
	&model_sdm630,
	&model_sungrow,
	&model_sungrow_sf,
	&model_sungrow_sg,
	&model_sungrow_nometer,
	&model_deye,
	&model_deye_micro,
	&model_solis,
	&model_solis_hybrid,
	&model_solis_hybrid_nobattery,
	&model_growatt,
	&model_solax,
	&model_goodwe,
	&model_sofar,
	&model_ferroamp,
	&model_ferroamp_nobattery,
	&model_sma,
	&model_solaredge,
	&model_solaredge_meter,
	&model_solaredge_us,
	&model_fronius_sf,
	&model_fronius,
	&model_sunspec_float,
	&model_sunspec_float1,
	&model_sunspec_der,
	&model_sunspec_storage,
};

const struct sim_model *sim_model_find(const char *name)
{
	for (unsigned i = 0; i < ARRAY_SIZE(models); i++)
		if (strcasecmp(models[i]->name, name) == 0)
			return models[i];
	return NULL;
}

const struct sim_model *const *sim_model_all(unsigned *ret_n)
{
	*ret_n = ARRAY_SIZE(models);
	return models;
}

static double quantity(const struct sim_vreg *v, const struct reading *r)
{
	double x;

	switch (v->q) {
	case SQ_MPPT1_W:
		x = r->v[RF_PV_MPPT1_V] * r->v[RF_PV_MPPT1_A];
		break;
	case SQ_MPPT2_W:
		x = r->v[RF_PV_MPPT2_V] * r->v[RF_PV_MPPT2_A];
		break;
	case SQ_BATTERY_ABS_W:
		x = fabs(r->v[RF_BATTERY_W]);
		break;
	case SQ_BATTERY_ABS_A:
		x = fabs(r->v[RF_BATTERY_A]);
		break;
	case SQ_METER_L1_ABS_A:
		x = fabs(r->v[RF_METER_L1_A]);
		break;
	case SQ_METER_L2_ABS_A:
		x = fabs(r->v[RF_METER_L2_A]);
		break;
	case SQ_METER_L3_ABS_A:
		x = fabs(r->v[RF_METER_L3_A]);
		break;
	case SQ_SOLIS_BATT_DIR:
		x = r->v[RF_BATTERY_W] < 0 ? 1 : 0;
		break;
	case SQ_SUNGROW_STATE: {
		double w = r->v[RF_BATTERY_W];
		x = w > 0 ? 2 : w < 0 ? 4 : 0;
		break;
	}
	case SQ_SUNSPEC_CHAST: {
		double w = r->v[RF_BATTERY_W];
		x = w > 0 ? 4 : w < 0 ? 3 : 6;
		break;
	}
	case SQ_CONST:
		x = 0;
		break;
	case SQ_NONE:
		return NAN;
	default:
		x = v->q >= 0 && v->q < RF_COUNT ? r->v[v->q] : NAN;
		break;
	}
	return x * v->k + v->off;
}

static void put(struct regimage *img, uint8_t fc, uint16_t addr, const uint16_t *w, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		regimage_set(img, fc, (uint16_t)(addr + i), w[i]);
}

static int put_serial(const struct sim_model *m, const char *serial, struct regimage *img)
{
	uint16_t w[32] = { 0 };

	if (!serial || m->serial.words == 0 || m->serial.words > 32)
		return 0;
	if (m->serial.type == REG_STR) {
		size_t len = strlen(serial);
		for (unsigned i = 0; i < m->serial.words; i++) {
			uint8_t hi = 2 * i < len ? (uint8_t)serial[2 * i] : 0;
			uint8_t lo = 2 * i + 1 < len ? (uint8_t)serial[2 * i + 1] : 0;
			w[i] = (uint16_t)(hi << 8 | lo);
		}
	} else {
		struct reg_def d = { .type = m->serial.type,
				     .words = m->serial.words,
				     .order = WO_BIG,
				     .scale = 1 };
		int r = reg_encode(&d, strtod(serial, NULL), w);
		if (r < 0)
			return r;
	}
	put(img, m->serial.fc, m->serial.addr, w, m->serial.words);
	return 0;
}

int sim_model_encode(const struct sim_model *m, const struct reading *r, const char *serial,
		     struct regimage *img)
{
	static const unsigned type_words[REG_TYPE_COUNT] = {
		[REG_U16] = 1, [REG_I16] = 1, [REG_U32] = 2,
		[REG_I32] = 2, [REG_U64] = 4, [REG_F32] = 2,
	};

	for (unsigned i = 0; i < m->nranges; i++)
		for (unsigned a = 0; a < m->ranges[i].count; a++)
			if (!regimage_defined(img, m->ranges[i].fc,
					      (uint16_t)(m->ranges[i].addr + a)))
				regimage_set(img, m->ranges[i].fc,
					     (uint16_t)(m->ranges[i].addr + a), 0);
	for (unsigned i = 0; i < m->nregs; i++) {
		const struct sim_vreg *v = &m->regs[i];
		struct reg_def d = {
			.type = v->type,
			.order = v->order,
			.scale = v->step,
			.words = (uint8_t)(v->type < REG_TYPE_COUNT ? type_words[v->type] : 0)
		};
		uint16_t w[4];
		int rc;

		if (d.words == 0)
			return -EINVAL;
		rc = reg_encode(&d, quantity(v, r), w);
		if (rc < 0)
			return rc;
		put(img, v->fc, v->addr, w, d.words);
	}
	for (unsigned i = 0; i < m->nstrs; i++) {
		const struct sim_vstr *t = &m->strs[i];
		size_t len = strlen(t->text);
		for (unsigned k = 0; k < t->words; k++) {
			uint8_t hi = 2 * k < len ? (uint8_t)t->text[2 * k] : 0;
			uint8_t lo = 2 * k + 1 < len ? (uint8_t)t->text[2 * k + 1] : 0;
			regimage_set(img, t->fc, (uint16_t)(t->addr + k), (uint16_t)(hi << 8 | lo));
		}
	}
	return put_serial(m, serial, img);
}
