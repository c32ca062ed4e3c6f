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

#define HI REG_FC_HOLDING
#define IN REG_FC_INPUT
#define F(fld) RF_##fld

/* quantity q * k + off, one count = step */
#define V(fc_, a, t, o, st, q_, k_, off_)                                                 \
	{ .fc = (fc_), .addr = (a), .type = REG_##t, .order = WO_##o, .step = (st), .q = (q_), \
	  .k = (k_), .off = (off_) }

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
	V(IN, 0, F32, BIG, 1, F(METER_L1_V), 1, 0),  /* 30001 phase 1 line to neutral volts */
	V(IN, 2, F32, BIG, 1, F(METER_L2_V), 1, 0),
	V(IN, 4, F32, BIG, 1, F(METER_L3_V), 1, 0),
	V(IN, 6, F32, BIG, 1, F(METER_L1_A), 1, 0),  /* 30007 phase 1 current */
	V(IN, 8, F32, BIG, 1, F(METER_L2_A), 1, 0),
	V(IN, 10, F32, BIG, 1, F(METER_L3_A), 1, 0),
	V(IN, 12, F32, BIG, 1, F(METER_L1_W), 1, 0), /* 30013 phase 1 power, W */
	V(IN, 14, F32, BIG, 1, F(METER_L2_W), 1, 0),
	V(IN, 16, F32, BIG, 1, F(METER_L3_W), 1, 0),
	V(IN, 52, F32, BIG, 1, F(METER_W), 1, 0),    /* 30053 total system power */
	V(IN, 70, F32, BIG, 1, F(METER_HZ), 1, 0),   /* 30071 frequency */
	V(IN, 72, F32, BIG, 1000, F(METER_TOTAL_IMPORT_WH), 1, 0), /* 30073 import kWh */
	V(IN, 74, F32, BIG, 1000, F(METER_TOTAL_EXPORT_WH), 1, 0), /* 30075 export kWh */
};

/* ---- Sungrow SH hybrid ----------------------------------------------------
 * Sungrow "Communication Protocol of Residential Hybrid Inverter" (SH*RS/RT,
 * TI_20190723 V1.0.23): input registers numbered from 1 (document 5036 is
 * zero-based 5035).  U32/S32 low word first. */
static const struct sim_vrange sungrow_sh_ranges[] = {
	{ IN, 4949, 292 },  /* 4950-5240: device information and inverter data */
	{ IN, 5241, 1 },    /* 5242 grid frequency, 0.01 Hz */
	{ IN, 5600, 38 },   /* 5601-5638 meter and export limits */
	{ IN, 6099, 727 },  /* 6100-6825 daily/monthly/yearly statistics */
	{ IN, 12999, 119 }, /* 13000-13118 system, battery and energy data */
	{ HI, 13049, 51 },  /* 13050-13100 battery settings */
	{ HI, 31221, 1 },
	{ HI, 33041, 7 },
	{ HI, 33147, 1 },
	{ HI, 33207, 2 },
};
static const struct sim_vreg sungrow_sh_regs[] = {
	V(IN, 5000, U16, BIG, 100, F(PV_RATED_POWER_W), 1, 0),  /* 5001 nominal power, 0.1 kW */
	V(IN, 5003, U32, LITTLE, 100, F(PV_TOTAL_GENERATION_WH), 1, 0), /* 5004 total output, 0.1 kWh */
	V(IN, 5007, I16, BIG, 0.1, F(PV_HEATSINK_C), 1, 0),     /* 5008 inside temperature */
	V(IN, 5010, U16, BIG, 0.1, F(PV_MPPT1_V), 1, 0),        /* 5011 MPPT1 voltage */
	V(IN, 5011, U16, BIG, 0.1, F(PV_MPPT1_A), 1, 0),
	V(IN, 5012, U16, BIG, 0.1, F(PV_MPPT2_V), 1, 0),
	V(IN, 5013, U16, BIG, 0.1, F(PV_MPPT2_A), 1, 0),
	V(IN, 5016, U32, LITTLE, 1, F(PV_W), -1, 0),            /* 5017 total DC power, W */
	V(IN, 5018, U16, BIG, 0.1, F(METER_L1_V), 1, 0),        /* 5019 phase A voltage */
	V(IN, 5019, U16, BIG, 0.1, F(METER_L2_V), 1, 0),
	V(IN, 5020, U16, BIG, 0.1, F(METER_L3_V), 1, 0),
	V(IN, 5035, U16, BIG, 0.1, F(METER_HZ), 1, 0),          /* 5036 grid frequency, 0.1 Hz */
	V(IN, 5241, U16, BIG, 0.01, F(METER_HZ), 1, 0),         /* 5242 grid frequency, 0.01 Hz */
	V(IN, 5600, I32, LITTLE, 1, F(METER_W), 1, 0),          /* 5601 meter power, import + */
	V(IN, 5602, I32, LITTLE, 1, F(METER_L1_W), 1, 0),       /* 5603 meter phase A power */
	V(IN, 5604, I32, LITTLE, 1, F(METER_L2_W), 1, 0),
	V(IN, 5606, I32, LITTLE, 1, F(METER_L3_W), 1, 0),
	V(IN, 13000, U16, BIG, 1, SQ_SUNGROW_STATE, 1, 0),      /* 13001 running state */
	V(IN, 13002, U32, LITTLE, 100, F(PV_TOTAL_GENERATION_WH), 1, 0), /* 13003 total PV gen. */
	V(IN, 13009, I32, LITTLE, 1, F(METER_W), -1, 0),        /* 13010 export power, export + */
	V(IN, 13019, U16, BIG, 0.1, F(BATTERY_V), 1, 0),        /* 13020 battery voltage */
	/* 13021 battery current: documented U16, signed on real devices */
	V(IN, 13020, I16, BIG, 0.1, F(BATTERY_A), 1, 0),
	V(IN, 13021, U16, BIG, 1, SQ_BATTERY_ABS_W, 1, 0),      /* 13022 battery power, W */
	V(IN, 13022, U16, BIG, 0.001, F(BATTERY_SOC_NOM_FRACT), 1, 0), /* 13023 level, 0.1 % */
	V(IN, 13024, I16, BIG, 0.1, F(BATTERY_HEATSINK_C), 1, 0), /* 13025 battery temperature */
	V(IN, 13026, U32, LITTLE, 100, F(BATTERY_TOTAL_DISCHARGE_WH), 1, 0), /* 13027 */
	/* 13031-13033 phase currents, 0.1 A; the document gives no direction:
	 * served export-positive as the reference's mapping reads them */
	V(IN, 13030, I16, BIG, 0.1, F(METER_L1_A), -1, 0),
	V(IN, 13031, I16, BIG, 0.1, F(METER_L2_A), -1, 0),
	V(IN, 13032, I16, BIG, 0.1, F(METER_L3_A), -1, 0),
	V(IN, 13033, I32, LITTLE, 1, F(INVERTER_W), -1, 0),     /* 13034 total active power, output + */
	V(IN, 13036, U32, LITTLE, 100, F(METER_TOTAL_IMPORT_WH), 1, 0), /* 13037 total import */
	V(IN, 13040, U32, LITTLE, 100, F(BATTERY_TOTAL_CHARGE_WH), 1, 0), /* 13041 total charge */
	V(IN, 13045, U32, LITTLE, 100, F(METER_TOTAL_EXPORT_WH), 1, 0), /* 13046 total export */
	/* Holding "EMS" registers of section 3.2 (battery settings), with their
	 * power-on values: 13050 EMS mode selection 0 = self-consumption; 13051
	 * charge/discharge command 0xCC = stop; 13052 charge/discharge power, W */
	V(HI, 13049, U16, BIG, 1, SQ_CONST, 1, 0),
	V(HI, 13050, U16, BIG, 1, SQ_CONST, 1, 0xCC),
	V(HI, 13051, U16, BIG, 1, SQ_CONST, 1, 0),
};

/* ---- Sungrow SG string inverter -------------------------------------------
 * Sungrow "Communication Protocol of PV Grid-Connected String Inverters"
 * (TI_20171026 V1.1.x): input registers from 1; no battery, no 13000 block,
 * no 5601 meter registers (exception 2).  5004-5005 total power yields U32
 * in kWh; 5031-5032 total active power, W. */
static const struct sim_vrange sungrow_sg_ranges[] = {
	{ IN, 4949, 150 }, /* 4950-5098 */
};
static const struct sim_vreg sungrow_sg_regs[] = {
	V(IN, 5000, U16, BIG, 100, F(PV_RATED_POWER_W), 1, 0),
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
	V(IN, 5030, U32, LITTLE, 1, F(INVERTER_W), -1, 0),      /* 5031 total active power */
	V(IN, 5035, U16, BIG, 0.1, F(METER_HZ), 1, 0),
};

/* ---- Deye SG04LP3 ---------------------------------------------------------
 * Deye "SUN-xK-SG04LP3-EU Modbus protocol" (three-phase LV hybrid), holding
 * registers: 3-7 serial (10 ASCII), temperatures (raw - 1000) x 0.1 degC,
 * 32-bit totals low word first in 0.1 kWh, battery power/current positive
 * when discharging, grid power positive when importing. */
static const struct sim_vrange deye_ranges[] = {
	{ HI, 0, 750 },
};
static const struct sim_vreg deye_regs[] = {
	V(HI, 20, U32, LITTLE, 0.1, F(PV_RATED_POWER_W), 1, 0),        /* rated power, 0.1 W */
	V(HI, 516, U32, LITTLE, 100, F(BATTERY_TOTAL_CHARGE_WH), 1, 0), /* battery total charge */
	V(HI, 518, U32, LITTLE, 100, F(BATTERY_TOTAL_DISCHARGE_WH), 1, 0),
	V(HI, 522, U32, LITTLE, 100, F(METER_TOTAL_IMPORT_WH), 1, 0),  /* grid total buy */
	V(HI, 524, U32, LITTLE, 100, F(METER_TOTAL_EXPORT_WH), 1, 0),  /* grid total sell */
	V(HI, 534, U32, LITTLE, 100, F(PV_TOTAL_GENERATION_WH), 1, 0), /* total PV generation */
	V(HI, 541, U16, BIG, 0.1, F(PV_HEATSINK_C), 1, 100),           /* DC temp, +1000 raw */
	V(HI, 586, U16, BIG, 0.1, F(BATTERY_HEATSINK_C), 1, 100),      /* battery temp, +1000 */
	V(HI, 587, U16, BIG, 0.01, F(BATTERY_V), 1, 0),
	V(HI, 588, U16, BIG, 0.01, F(BATTERY_SOC_NOM_FRACT), 1, 0),   /* SoC, 1 % */
	V(HI, 590, I16, BIG, 1, F(BATTERY_W), -1, 0),                  /* discharge + */
	V(HI, 591, I16, BIG, 0.01, F(BATTERY_A), -1, 0),
	V(HI, 598, U16, BIG, 0.1, F(METER_L1_V), 1, 0),
	V(HI, 599, U16, BIG, 0.1, F(METER_L2_V), 1, 0),
	V(HI, 600, U16, BIG, 0.1, F(METER_L3_V), 1, 0),
	V(HI, 609, U16, BIG, 0.01, F(METER_HZ), 1, 0),
	V(HI, 610, I16, BIG, 0.01, F(METER_L1_A), 1, 0),                /* grid side currents */
	V(HI, 611, I16, BIG, 0.01, F(METER_L2_A), 1, 0),
	V(HI, 612, I16, BIG, 0.01, F(METER_L3_A), 1, 0),
	V(HI, 622, I16, BIG, 1, F(METER_L1_W), 1, 0),                   /* grid side phase power */
	V(HI, 623, I16, BIG, 1, F(METER_L2_W), 1, 0),
	V(HI, 624, I16, BIG, 1, F(METER_L3_W), 1, 0),
	V(HI, 625, I16, BIG, 1, F(METER_W), 1, 0),                      /* total grid power */
	V(HI, 672, U16, BIG, 1, SQ_MPPT1_W, 1, 0),                      /* PV1 power */
	V(HI, 673, U16, BIG, 1, SQ_MPPT2_W, 1, 0),
	V(HI, 676, U16, BIG, 0.1, F(PV_MPPT1_V), 1, 0),
	V(HI, 677, U16, BIG, 0.1, F(PV_MPPT1_A), 1, 0),
	V(HI, 678, U16, BIG, 0.1, F(PV_MPPT2_V), 1, 0),
	V(HI, 679, U16, BIG, 0.1, F(PV_MPPT2_A), 1, 0),
};

/* ---- GoodWe ET -------------------------------------------------------------
 * GoodWe "ET/EH/BT/BH Series Modbus Protocol" (holding): 35003 serial (8
 * registers), 35103-35110 PV1/PV2 voltage (0.1 V), current (0.1 A) and power
 * (U32, W), 35123 grid frequency (0.01 Hz), 35138 total inverter power
 * (S16, W, output positive). */
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
};

/* ---- Sofar G3 hybrid --------------------------------------------------------
 * Sofar "Modbus-RTU communication protocol" for HYD-ES / KTL-X G3 (holding):
 * 0x0445 serial, 0x0484 grid frequency (0.01 Hz), 0x0586/0x0589/0x058C PV1-3
 * power (0.01 kW), 0x0608 battery 1 SoC (1 %). */
static const struct sim_vrange sofar_ranges[] = {
	{ HI, 1024, 50 }, { HI, 1088, 32 }, { HI, 1152, 48 }, { HI, 1280, 34 },
	{ HI, 1408, 52 }, { HI, 1472, 4 },  { HI, 1536, 60 }, { HI, 1600, 32 },
	{ HI, 1664, 28 },
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
 * positive), 30803 grid frequency (FIX2). */
static const struct sim_vrange sma_ranges[] = {
	{ IN, 30000, 61 }, { IN, 30769, 56 }, { IN, 30957, 6 }, { IN, 31085, 2 },
	{ IN, 40067, 2 },
};
static const struct sim_vreg sma_regs[] = {
	V(IN, 30769, I32, BIG, 0.001, F(PV_MPPT1_A), 1, 0),
	V(IN, 30771, I32, BIG, 0.01, F(PV_MPPT1_V), 1, 0),
	V(IN, 30773, I32, BIG, 1, SQ_MPPT1_W, 1, 0),
	V(IN, 30775, I32, BIG, 1, F(INVERTER_W), -1, 0),
	V(IN, 30803, U32, BIG, 0.01, F(METER_HZ), 1, 0),
	V(IN, 30957, I32, BIG, 0.001, F(PV_MPPT2_A), 1, 0),
	V(IN, 30959, I32, BIG, 0.01, F(PV_MPPT2_V), 1, 0),
	V(IN, 30961, I32, BIG, 1, SQ_MPPT2_W, 1, 0),
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
#define COMMON(vendor, model, version)                                        \
	{ HI, 40004, 16, vendor }, { HI, 40020, 16, model }, { HI, 40044, 8, version }

/* Integer inverter model 103 at 40069 (L 50), as the SolarEdge SunSpec
 * technical note and Fronius "int+SF" maps place it. */
#define MODEL_103_AT(a, dcw_q)                                                            \
	C16(HI, (a), 103), C16(HI, (a) + 1, 50),                                              \
	SF16((a) + 6, -2), SF16((a) + 13, -1),                                                \
	V(HI, (a) + 14, I16, BIG, 1, F(INVERTER_W), -1, 0), SF16((a) + 15, 0),    /* W */     \
	V(HI, (a) + 16, U16, BIG, 0.01, F(METER_HZ), 1, 0), SF16((a) + 17, -2),   /* Hz */    \
	V(HI, (a) + 24, U32, BIG, 1, F(PV_TOTAL_GENERATION_WH), 1, 0), SF16((a) + 26, 0),     \
	SF16((a) + 28, -2), SF16((a) + 30, -1),                                               \
	V(HI, (a) + 31, I16, BIG, 1, (dcw_q), -1, 0), SF16((a) + 32, 0),          /* DCW */   \
	V(HI, (a) + 34, I16, BIG, 0.1, F(PV_HEATSINK_C), 1, 0), SF16((a) + 37, -1) /* TmpSnk */
#define MODEL_103(dcw_q) MODEL_103_AT(40069, dcw_q)

/* MPPT model 160 at a (L 48), two modules of 20 registers from a + 10. */
#define MODEL_160(a)                                                                      \
	C16(HI, (a), 160), C16(HI, (a) + 1, 48), SF16((a) + 2, -2), SF16((a) + 3, -1),        \
	SF16((a) + 4, 0), C16(HI, (a) + 8, 2),                                                \
	C16(HI, (a) + 10, 1), V(HI, (a) + 19, U16, BIG, 0.01, F(PV_MPPT1_A), 1, 0),            \
	V(HI, (a) + 20, U16, BIG, 0.1, F(PV_MPPT1_V), 1, 0),                                   \
	V(HI, (a) + 21, U16, BIG, 1, SQ_MPPT1_W, 1, 0),                                        \
	C16(HI, (a) + 30, 2), V(HI, (a) + 39, U16, BIG, 0.01, F(PV_MPPT2_A), 1, 0),            \
	V(HI, (a) + 40, U16, BIG, 0.1, F(PV_MPPT2_V), 1, 0),                                   \
	V(HI, (a) + 41, U16, BIG, 1, SQ_MPPT2_W, 1, 0)

#define END_MARKER(a) C16(HI, (a), 0xFFFF), C16(HI, (a) + 1, 0)

/* SolarEdge "SunSpec Implementation Technical Note": common model (L 65),
 * inverter model 103, then meter 1 (its own common block at 40121 and model
 * 203 at 40188, L 105); end marker.  I_DC_Power is reported. */
static const struct sim_vrange solaredge_ranges[] = {
	{ HI, 40000, 297 },
};
static const struct sim_vreg solaredge_regs[] = {
	SUNS, C16(HI, 40002, 1), C16(HI, 40003, 65),
	MODEL_103(F(PV_W)),
	/* meter 1: common block, then model 203 (total real power at +16 of its
	 * points, import positive; W_SF at +20) */
	C16(HI, 40121, 1), C16(HI, 40122, 65),
	C16(HI, 40188, 203), C16(HI, 40189, 105),
	V(HI, 40190 + 14, U16, BIG, 0.01, F(METER_HZ), 1, 0), SF16(40190 + 15, -2),
	V(HI, 40190 + 16, I16, BIG, 1, F(METER_W), 1, 0), SF16(40190 + 20, 0),
	V(HI, 40226, U32, BIG, 1, F(METER_TOTAL_EXPORT_WH), 1, 0),      /* TotWhExp */
	V(HI, 40234, U32, BIG, 1, F(METER_TOTAL_IMPORT_WH), 1, 0),      /* TotWhImp */
	SF16(40242, 0),
	END_MARKER(40295),
};
/* The same inverter without a meter: the end marker follows model 103; the
 * inverter still answers reads up to where a meter would be, with zeros
 * (the reference's block 40121+70 is read from every SolarEdge). */
static const struct sim_vrange solaredge_inv_ranges[] = {
	{ HI, 40000, 243 },
};
static const struct sim_vreg solaredge_inv_regs[] = {
	SUNS, C16(HI, 40002, 1), C16(HI, 40003, 65),
	MODEL_103(F(PV_W)),
	END_MARKER(40121),
};
static const struct sim_vstr solaredge_strs[] = {
	COMMON("SolarEdge", "SE10K-RWS", "0004.0020.0036"),
	{ HI, 40123, 16, "SolarEdge" }, { HI, 40139, 16, "WND-3Y-400-MB" },
};

/* Fronius "Datamanager Modbus TCP & RTU" (SunSpec, "int+SF" setting):
 * common model, inverter 103.  Symo/Primo report DCW as not implemented
 * (0x8000): the AC power W is the usable power.  The real map goes on with
 * models 120-123 and 160; this one ends after 103 (the end marker). */
static const struct sim_vrange fronius_sf_ranges[] = {
	{ HI, 40000, 125 },
};
static const struct sim_vreg fronius_sf_regs[] = {
	SUNS, C16(HI, 40002, 1), C16(HI, 40003, 65),
	MODEL_103(SQ_NONE),
	END_MARKER(40121),
};

/* The same with the "float" setting: inverter model 113 (L 60), F32 points
 * (W 40091, Hz 40093, WH 40101, DCW 40107 not implemented = NaN, TmpSnk
 * 40111), end. */
static const struct sim_vrange fronius_ranges[] = {
	{ HI, 40000, 133 },
};
static const struct sim_vreg fronius_regs[] = {
	SUNS, C16(HI, 40002, 1), C16(HI, 40003, 65),
	C16(HI, 40069, 113), C16(HI, 40070, 60),
	V(HI, 40091, F32, BIG, 1, F(INVERTER_W), -1, 0),
	V(HI, 40093, F32, BIG, 1, F(METER_HZ), 1, 0),
	V(HI, 40101, F32, BIG, 1, F(PV_TOTAL_GENERATION_WH), 1, 0),
	V(HI, 40107, F32, BIG, 1, SQ_NONE, 1, 0),
	V(HI, 40111, F32, BIG, 1, F(PV_HEATSINK_C), 1, 0),
	END_MARKER(40131),
};
static const struct sim_vstr fronius_strs[] = {
	COMMON("Fronius", "Symo 10.0-3-M", "3.14.1-10"),
};

#define SIM_BATT_MAX_W 5000 /* the physics' default batt_max_w (SIM_PHYS_CFG_DEFAULT) */

/* ---- Huawei SUN2000 (+ LUNA2000 battery, DTSU666-H meter) -----------------
 * Huawei "SUN2000 MODBUS Interface Definitions" (holding registers, 32-bit
 * values high word first; "gain" g means value = raw / g): 30015 SN (10
 * registers), 30073 rated power (U32, kW, gain 1000), 32016/32017 PV1 voltage
 * (I16, gain 10) / current (I16, gain 100), 32018/32019 PV2, 32064 input power
 * (I32, kW, gain 1000), 32080 active power (I32, kW, gain 1000, output +),
 * 32085 grid frequency (U16, gain 100), 32087 internal temperature (I16,
 * gain 10), 32106 accumulated yield (U32, kWh, gain 100).  LUNA2000 (only
 * with a battery): 37001 charge/discharge power (I32, W, charging +), 37003
 * bus voltage (gain 10), 37004 SOC (%, gain 10), 37021 bus current (I16, gain
 * 10), 37022 temperature (gain 10), 37066/37068 total charge/discharge (U32,
 * kWh, gain 100).  Meter (only when connected): 37101-37105 phase voltages
 * (I32, gain 10), 37107-37111 currents (I32, gain 100), 37113 active power
 * (I32, W, positive = feed-in), 37118 frequency (gain 100), 37119 positive
 * active energy (feed-in) and 37121 reverse active energy (supply), I32 kWh
 * gain 100, 37132-37136 phase powers (W, feed-in +). */
static const struct sim_vrange huawei_ranges[] = {
	{ HI, 30000, 125 }, { HI, 32000, 125 },
};
#define HUAWEI_INVERTER                                                                       \
	V(HI, 30073, U32, BIG, 1, F(PV_RATED_POWER_W), 1, 0),                                     \
	V(HI, 32016, I16, BIG, 0.1, F(PV_MPPT1_V), 1, 0),                                          \
	V(HI, 32017, I16, BIG, 0.01, F(PV_MPPT1_A), 1, 0),                                         \
	V(HI, 32018, I16, BIG, 0.1, F(PV_MPPT2_V), 1, 0),                                          \
	V(HI, 32019, I16, BIG, 0.01, F(PV_MPPT2_A), 1, 0),                                         \
	V(HI, 32064, I32, BIG, 1, F(PV_W), -1, 0),                                                 \
	V(HI, 32080, I32, BIG, 1, F(INVERTER_W), -1, 0),                                           \
	V(HI, 32085, U16, BIG, 0.01, F(METER_HZ), 1, 0),                                           \
	V(HI, 32087, I16, BIG, 0.1, F(PV_HEATSINK_C), 1, 0),                                       \
	V(HI, 32106, U32, BIG, 10, F(PV_TOTAL_GENERATION_WH), 1, 0)
static const struct sim_vreg huawei_regs[] = {
	HUAWEI_INVERTER,
};
static const struct sim_vrange huawei_hybrid_ranges[] = {
	{ HI, 30000, 125 }, { HI, 32000, 125 }, { HI, 37000, 70 }, { HI, 37100, 39 },
	{ HI, 37700, 100 }, { HI, 47000, 760 },
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
	SUNS, C16(HI, 40002, 1), C16(HI, 40003, 66),
	MODEL_103_AT(40070, F(PV_W)),
	C16(HI, SS124, 124), C16(HI, SS124 + 1, 24),
	C16(HI, SS124 + 2, SIM_BATT_MAX_W),                          /* WChaMax */
	C16(HI, SS124 + 3, 100), C16(HI, SS124 + 4, 100),              /* WChaGra, WDisChaGra */
	C16(HI, SS124 + 5, 0),                                         /* StorCtl_Mod */
	V(HI, SS124 + 8, U16, BIG, 0.001, F(BATTERY_SOC_NOM_FRACT), 1, 0), /* ChaState */
	V(HI, SS124 + 10, U16, BIG, 0.1, F(BATTERY_V), 1, 0),         /* InBatV */
	V(HI, SS124 + 11, U16, BIG, 1, SQ_SUNSPEC_CHAST, 1, 0),        /* ChaSt */
	V(HI, SS124 + 12, I16, BIG, 1, SQ_CONST, 1, 10000),            /* OutWRte 100.00 % */
	V(HI, SS124 + 13, I16, BIG, 1, SQ_CONST, 1, 10000),            /* InWRte */
	C16(HI, SS124 + 17, 1),                                        /* ChaGriSet GRID */
	SF16(SS124 + 18, 0), SF16(SS124 + 19, 0), SF16(SS124 + 20, 0), SF16(SS124 + 21, 0),
	SF16(SS124 + 22, -1), SF16(SS124 + 23, 0), SF16(SS124 + 24, -1), SF16(SS124 + 25, -2),
	C16(HI, SS802, 802), C16(HI, SS802 + 1, 62),
	C16(HI, SS802 + 3, 10000),                                     /* WHRtg */
	C16(HI, SS802 + 4, SIM_BATT_MAX_W), C16(HI, SS802 + 5, SIM_BATT_MAX_W),
	C16(HI, SS802 + 7, 1000), C16(HI, SS802 + 8, 50),              /* SoCMax, SoCMin */
	V(HI, SS802 + 11, U16, BIG, 0.001, F(BATTERY_SOC_NOM_FRACT), 1, 0), /* SoC */
	V(HI, SS802 + 16, U16, BIG, 1, SQ_SUNSPEC_CHAST, 1, 0),        /* ChaSt */
	V(HI, SS802 + 34, U16, BIG, 0.1, F(BATTERY_V), 1, 0),          /* V */
	V(HI, SS802 + 44, I16, BIG, 0.1, F(BATTERY_A), -1, 0),         /* A, discharge + */
	V(HI, SS802 + 47, I16, BIG, 1, F(BATTERY_W), -1, 0),           /* W, discharge + */
	SF16(SS802 + 53, 0), SF16(SS802 + 54, 0), SF16(SS802 + 56, -1), SF16(SS802 + 59, -1),
	SF16(SS802 + 61, -1), SF16(SS802 + 63, 0),
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
	*ret_cmd = (struct sim_batt_cmd){ .t = t, .remote = mode == 2 || mode == 3,
					  .lo_w = set, .hi_w = set, .timeout_s = INFINITY, .since = t };
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
	if (!start && !(prev->remote && (touches(addr, count, 47083, 47083) ||
					 touches(addr, count, 47246, 47250))))
		return 0;
	uint16_t cmd = reg16(img, 47100);
	double w = cmd == 1 ? (double)reg32(img, 47247) : cmd == 2 ? -(double)reg32(img, 47249) : 0;
	double period = reg16(img, 47246) == 0 ? reg16(img, 47083) * 60.0 : INFINITY;
	/* the command arrives now; its period runs from the 47100 write */
	double started = start ? t : prev->since;
	*ret_cmd = (struct sim_batt_cmd){ .t = t, .remote = cmd == 1 || cmd == 2, .lo_w = w,
					  .hi_w = w, .timeout_s = period - (t - started),
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
	*ret_cmd = (struct sim_batt_cmd){ .t = t, .remote = (mod & 3) != 0,
					  .lo_w = (mod & 2) ? -out : -INFINITY,
					  .hi_w = (mod & 1) ? in : INFINITY,
					  .timeout_s = rvrt ? rvrt : INFINITY, .since = t };
	return 1;
}

#define RANGES(r) .ranges = (r), .nranges = ARRAY_SIZE(r)
#define REGS(r) .regs = (r), .nregs = ARRAY_SIZE(r)
#define STRS(r) .strs = (r), .nstrs = ARRAY_SIZE(r)
#define SERIAL_STR(f, a, w) .serial = { .fc = (f), .addr = (a), .words = (w), .type = REG_STR }

static const struct sim_model model_sdm630 = {
	.name = "sdm630", .profile = "sdm630", .meter = true,
	.doc = "Eastron SDM630 Modbus protocol V1.5",
	RANGES(sdm630_ranges), REGS(sdm630_regs),
	.serial = { .fc = HI, .addr = 64512, .words = 2, .type = REG_U32 },
};
static const struct sim_model model_sungrow = {
	.name = "sungrow", .profile = "sungrow", .battery = true, .meter = true,
	.doc = "Sungrow Communication Protocol of Residential Hybrid Inverter V1.0.23",
	RANGES(sungrow_sh_ranges), REGS(sungrow_sh_regs), SERIAL_STR(IN, 4989, 10),
	.control = sungrow_control,
};
static const struct sim_model model_sungrow_sf = {
	.name = "sungrow_sf", .profile = "sungrow_sf", .battery = true, .meter = true,
	.doc = "Sungrow Communication Protocol of Residential Hybrid Inverter V1.0.23",
	RANGES(sungrow_sh_ranges), REGS(sungrow_sh_regs), SERIAL_STR(IN, 4989, 10),
	.control = sungrow_control,
};
static const struct sim_model model_sungrow_sg = {
	.name = "sungrow_sg", .profile = "sungrow",
	.doc = "Sungrow Communication Protocol of PV Grid-Connected String Inverters V1.1",
	RANGES(sungrow_sg_ranges), REGS(sungrow_sg_regs), SERIAL_STR(IN, 4989, 10),
};
static const struct sim_model model_deye = {
	.name = "deye", .profile = "deye", .battery = true, .meter = true,
	.doc = "Deye SUN-xK-SG04LP3-EU Modbus protocol",
	RANGES(deye_ranges), REGS(deye_regs), SERIAL_STR(HI, 3, 5),
};
static const struct sim_model model_goodwe = {
	.name = "goodwe", .profile = "goodwe",
	.doc = "GoodWe ET/EH/BT/BH Series Modbus Protocol",
	RANGES(goodwe_ranges), REGS(goodwe_regs), SERIAL_STR(HI, 35003, 8),
};
static const struct sim_model model_sofar = {
	.name = "sofar", .profile = "sofar", .battery = true,
	.doc = "Sofar G3 Modbus-RTU communication protocol",
	RANGES(sofar_ranges), REGS(sofar_regs), SERIAL_STR(HI, 1093, 8),
};
static const struct sim_model model_sma = {
	.name = "sma", .profile = "sma",
	.doc = "SMA Modbus parameters and measured values (SB/STP)",
	RANGES(sma_ranges), REGS(sma_regs),
	.serial = { .fc = IN, .addr = 40067, .words = 2, .type = REG_U32 },
};

/* "solaredge" is the inverter alone (the demo pairs it with an SDM630: one
 * grid meter per home); "solaredge_meter" has SolarEdge's own meter 1. */
static const struct sim_model model_solaredge_meter = {
	.name = "solaredge_meter", .profile = "solaredge", .meter = true,
	.doc = "SolarEdge SunSpec Implementation Technical Note",
	RANGES(solaredge_ranges), REGS(solaredge_regs), STRS(solaredge_strs),
	SERIAL_STR(HI, 40052, 16),
};
static const struct sim_model model_solaredge = {
	.name = "solaredge", .profile = "solaredge",
	.doc = "SolarEdge SunSpec Implementation Technical Note (no meter)",
	RANGES(solaredge_inv_ranges), REGS(solaredge_inv_regs), STRS(solaredge_strs),
	SERIAL_STR(HI, 40052, 16),
};
/* The US models carry the same SunSpec map (their scale factors differ; a
 * SunSpec reader takes them from the sf registers). */
static const struct sim_model model_solaredge_us = {
	.name = "solaredge_us", .profile = "solaredge_us",
	.doc = "SolarEdge SunSpec Implementation Technical Note",
	RANGES(solaredge_inv_ranges), REGS(solaredge_inv_regs), STRS(solaredge_strs),
	SERIAL_STR(HI, 40052, 16),
};
static const struct sim_model model_fronius_sf = {
	.name = "fronius_sf", .profile = "fronius_sf",
	.doc = "Fronius Datamanager Modbus TCP & RTU (SunSpec int+SF)",
	RANGES(fronius_sf_ranges), REGS(fronius_sf_regs), STRS(fronius_strs),
	SERIAL_STR(HI, 40052, 16),
};
static const struct sim_model model_fronius = {
	.name = "fronius", .profile = "fronius",
	.doc = "Fronius Datamanager Modbus TCP & RTU (SunSpec float)",
	RANGES(fronius_ranges), REGS(fronius_regs), STRS(fronius_strs),
	SERIAL_STR(HI, 40052, 16),
};

static const struct sim_model model_huawei = {
	.name = "huawei", .profile = "huawei",
	.doc = "Huawei SUN2000 MODBUS Interface Definitions",
	RANGES(huawei_ranges), REGS(huawei_regs), SERIAL_STR(HI, 30015, 10),
};
static const struct sim_model model_huawei_hybrid = {
	.name = "huawei_hybrid", .profile = "huawei_hybrid", .battery = true, .meter = true,
	.doc = "Huawei SUN2000 MODBUS Interface Definitions (LUNA2000, DTSU666-H meter)",
	RANGES(huawei_hybrid_ranges), REGS(huawei_hybrid_regs), SERIAL_STR(HI, 30015, 10),
	.control = huawei_control,
};
static const struct sim_model model_sunspec_storage = {
	.name = "sunspec_storage", .profile = "sunspec", .battery = true,
	.doc = "SunSpec models 1, 103, 124 (Basic Storage Controls), 802 (Battery Base)",
	RANGES(sunspec_storage_ranges), REGS(sunspec_storage_regs), STRS(sunspec_storage_strs),
	SERIAL_STR(HI, 40052, 16),
	.control = sunspec_control,
};

static const struct sim_model *const models[] = {
	&model_huawei, &model_huawei_hybrid,
	&model_sdm630, &model_sungrow, &model_sungrow_sf, &model_sungrow_sg, &model_deye,
	&model_goodwe, &model_sofar, &model_sma, &model_solaredge, &model_solaredge_meter,
	&model_solaredge_us,
	&model_fronius_sf,
	&model_fronius, &model_sunspec_storage,
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
		struct reg_def d = { .type = m->serial.type, .words = m->serial.words,
				     .order = WO_BIG, .scale = 1 };
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
		[REG_U16] = 1, [REG_I16] = 1, [REG_U32] = 2, [REG_I32] = 2, [REG_U64] = 4, [REG_F32] = 2,
	};

	for (unsigned i = 0; i < m->nranges; i++)
		for (unsigned a = 0; a < m->ranges[i].count; a++)
			if (!regimage_defined(img, m->ranges[i].fc, (uint16_t)(m->ranges[i].addr + a)))
				regimage_set(img, m->ranges[i].fc, (uint16_t)(m->ranges[i].addr + a), 0);
	for (unsigned i = 0; i < m->nregs; i++) {
		const struct sim_vreg *v = &m->regs[i];
		struct reg_def d = { .type = v->type, .order = v->order, .scale = v->step,
				     .words = (uint8_t)(v->type < REG_TYPE_COUNT ? type_words[v->type] : 0) };
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
