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
#include <math.h>

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

/* solis_hybrid: Solis "RS485_MODBUS RTU Hybrid Inverter Protocol" Ver 3.2
 * (the energy-storage inverters: RHI, S5-EH, S6-EH), its table of input
 * registers (function 04).  Addresses are the document's numbers sent as
 * they are (33029 is PDU address 33029, unlike the string inverters'
 * document above, numbered from 1); 32-bit values high word first.  The PDF
 * itself could not be opened here: the rows beyond the reference's are the
 * ones three public implementations citing the document agree on (the
 * ESPHome map of hn/ginlong-solis for "ESINV" inverters, evcc's
 * solis-hybrid template, the solis_modbus Home Assistant integration), not
 * another profile's table.
 *  - 33029-33030 PV total energy (U32, kWh); 33035 today's energy
 *    generation (U16, 0.1 kWh); 33049/33050 PV1 voltage /
 *    current (0.1 V, 0.1 A), 33051/33052 PV2; 33057-33058 total PV power
 *    (U32, W); 33079-33080 active power (S32, W; output positive as on the
 *    string inverters' 3004); 33093 inverter temperature (S16, 0.1 degC);
 *    33094 grid frequency (0.01 Hz); 33004-33019 serial.
 *  - Battery: 33133 voltage (U16, 0.1 V); 33134 current (0.1 A, a
 *    magnitude; read as S16 and its magnitude taken, so a signed value
 *    reads right too); 33135 current direction (0 charging, 1 discharging);
 *    33139 SoC and 33140 SoH (U16, 1 %); 33141 the BMS's battery voltage
 *    (U16, 0.01 V; 0 without a BMS); 33149-33150 battery power (U32, W, a
 *    magnitude: the direction is 33135's); 33161-33162 / 33165-33166 total
 *    battery charge / discharge energy (U32, kWh).  The 33000 block has no
 *    battery temperature this table could confirm: none is published.
 *  - Grid meter (the meter the inverter reads over RS485/CT): 33251/33253/
 *    33255 phase A/B/C voltage (U16, 0.1 V); 33252/33254/33256 phase
 *    current (U16, 0.01 A, a magnitude); 33257/33259/33261 phase active
 *    power and 33263-33264 total active power (S32, 0.001 kW = 1 W,
 *    positive = exporting to the grid: negated here, import positive);
 *    33283-33284 / 33285-33286 total active energy from / to the grid
 *    (U32, 0.01 kWh).
 *
 * Variants (solis_hybrid_fixup):
 *  - battery installed or not: a hybrid without a battery reads 0 V at its
 *    battery port (33133) and 0 from the BMS (33141); then no battery field
 *    is published, rather than a battery of zeros.  A battery with a BMS or
 *    a lead-acid battery without one (a pack voltage) counts as present.
 *  - meter installed or not: a meter always measures its phase voltages;
 *    33251, 33253 and 33255 all 0 mean no meter, and then no meter value is
 *    published (meter.Hz stays: the inverter's own 33094); a phase whose
 *    voltage reads 0 (a single-phase meter) publishes none of its values.
 *    The document's meter placement register (33250) is not read: its
 *    encoding could not be confirmed.  A single-phase meter that fills only
 *    the older 33126-33131 registers (meter voltage, current, active power)
 *    and not 33251-33286 is therefore taken as no meter: the sign of 33130
 *    could not be confirmed either, and no value is better than one of the
 *    wrong sign.
 *  - the battery's power and current take the sign of 33135; the meter's
 *    phase currents the sign of their phase's power.
 * The string inverters (profile `solis`) have no battery rows at all.
 * The reference maps only the frequency and the PV power; the rest are [doc]
 * rows inside the blocks it already reads. */
#define SH_BATT_V 33133
#define SH_BATT_A 33134
#define SH_BATT_DIR 33135
#define SH_BMS_V 33141
#define SH_BATT_W 33149
#define SH_METER_V1 33251

#define SH_U16(a) \
	{ \
		.addr = (a), .fc = REG_FC_INPUT, .words = 1, .type = REG_U16, .order = WO_BIG, \
		.scale = 1, .sf_addr = REG_NO_SF, .field = REG_NO_FIELD \
	}

static const enum reading_field sh_battery_fields[] = {
	RF_BATTERY_W,
	RF_BATTERY_A,
	RF_BATTERY_V,
	RF_BATTERY_SOC_NOM_FRACT,
	RF_BATTERY_SOH_FRACT,
	RF_BATTERY_HEATSINK_C,
	RF_BATTERY_TOTAL_CHARGE_WH,
	RF_BATTERY_TOTAL_DISCHARGE_WH,
};

static const enum reading_field sh_meter_fields[] = {
	RF_METER_W,
	RF_METER_L1_V,
	RF_METER_L1_A,
	RF_METER_L1_W,
	RF_METER_L2_V,
	RF_METER_L2_A,
	RF_METER_L2_W,
	RF_METER_L3_V,
	RF_METER_L3_A,
	RF_METER_L3_W,
	RF_METER_TOTAL_IMPORT_WH,
	RF_METER_TOTAL_EXPORT_WH,
};

/* The raw U16 at addr, or -1 when it was not read. */
static int sh_raw(uint16_t addr, const struct block_result *res, unsigned nres)
{
	const struct reg_def d = SH_U16(addr);
	const uint16_t *w = profile_find_words(&d, res, nres);
	return w ? w[0] : -1;
}

static void sh_clear(struct reading *r, const enum reading_field *f, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		r->v[f[i]] = NAN;
}

static int solis_hybrid_fixup(const struct profile *p, const struct block_result *res,
			      unsigned nres, struct reading *r)
{
	static const int phase_a[3] = { RF_METER_L1_A, RF_METER_L2_A, RF_METER_L3_A };
	static const int phase_w[3] = { RF_METER_L1_W, RF_METER_L2_W, RF_METER_L3_W };
	static const int phase_v[3] = { RF_METER_L1_V, RF_METER_L2_V, RF_METER_L3_V };
	int batt_v = sh_raw(SH_BATT_V, res, nres), bms_v = sh_raw(SH_BMS_V, res, nres);
	int dir = sh_raw(SH_BATT_DIR, res, nres);
	int mv[3];

	(void)p;
	if (batt_v == 0 && bms_v == 0) {
		sh_clear(r, sh_battery_fields,
			 sizeof(sh_battery_fields) / sizeof(sh_battery_fields[0]));
	} else if (dir == 0 || dir == 1) {
		double s = dir == 1 ? -1.0 : 1.0;
		r->v[RF_BATTERY_W] = s * fabs(r->v[RF_BATTERY_W]);
		r->v[RF_BATTERY_A] = s * fabs(r->v[RF_BATTERY_A]);
	} else {
		/* no direction (not read, or a value the document does not
		 * define): a magnitude is not a battery power */
		r->v[RF_BATTERY_W] = NAN;
		r->v[RF_BATTERY_A] = NAN;
	}
	for (int i = 0; i < 3; i++)
		mv[i] = sh_raw((uint16_t)(SH_METER_V1 + 2 * i), res, nres);
	if (mv[0] == 0 && mv[1] == 0 && mv[2] == 0) {
		sh_clear(r, sh_meter_fields, sizeof(sh_meter_fields) / sizeof(sh_meter_fields[0]));
	} else {
		for (int i = 0; i < 3; i++) {
			double w = r->v[phase_w[i]];
			if (mv[i] == 0) {
				/* a phase the meter does not measure (a
				 * single-phase meter): not a phase of zeros */
				r->v[phase_v[i]] = NAN;
				r->v[phase_a[i]] = NAN;
				r->v[phase_w[i]] = NAN;
			} else if (isnan(w)) {
				r->v[phase_a[i]] = NAN; /* a current without its direction */
			} else if (w < 0) {
				r->v[phase_a[i]] = -fabs(r->v[phase_a[i]]);
			}
		}
	}
	return 0;
}

/* The inverse (egw-sim and the tests): magnitudes, the battery's direction
 * and its BMS voltage, the meter's phase current magnitudes. */
static void sh_put_u16(struct regimage *img, uint16_t addr, double v)
{
	regimage_set(img, REG_FC_INPUT, addr,
		     isnan(v) || v < 0 || v > 65534 ? 0xFFFF : (uint16_t)lround(v));
}

static int solis_hybrid_encode_fixup(const struct profile *p, const struct reading *r,
				     struct regimage *img)
{
	static const int phase_a[3] = { RF_METER_L1_A, RF_METER_L2_A, RF_METER_L3_A };
	double w = r->v[RF_BATTERY_W];

	(void)p;
	if (!isnan(r->v[RF_BATTERY_V]))
		sh_put_u16(img, SH_BMS_V, r->v[RF_BATTERY_V] / 0.01);
	if (!isnan(w)) {
		double aw = fabs(w);
		uint32_t raw = aw > 4294967294.0 ? 0xFFFFFFFFu : (uint32_t)llround(aw);
		regimage_set(img, REG_FC_INPUT, SH_BATT_W, (uint16_t)(raw >> 16));
		regimage_set(img, REG_FC_INPUT, SH_BATT_W + 1, (uint16_t)raw);
		regimage_set(img, REG_FC_INPUT, SH_BATT_DIR, w < 0 ? 1 : 0);
	}
	if (!isnan(r->v[RF_BATTERY_A]))
		sh_put_u16(img, SH_BATT_A, fabs(r->v[RF_BATTERY_A]) / 0.1);
	for (int i = 0; i < 3; i++)
		if (!isnan(r->v[phase_a[i]]))
			sh_put_u16(img, (uint16_t)(SH_METER_V1 + 1 + 2 * i),
				   fabs(r->v[phase_a[i]]) / 0.01);
	return 0;
}

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
	/* battery (sign from 33135 in solis_hybrid_fixup) */
	REG_MAP(SH_BATT_V, FI, 1, U16, WB, DOC, 0.1, "V", "battery voltage", RF_BATTERY_V, 1),
	REG_MAP(SH_BATT_A, FI, 1, I16, WB, DOC, 0.1, "A", "battery current", RF_BATTERY_A, 1),
	REG(SH_BATT_DIR, FI, 1, U16, WB, DOC, 1, "-", "battery current direction"),
	REG_MAP(33139, FI, 1, U16, WB, DOC, 1, "%", "battery capacity SOC",
		RF_BATTERY_SOC_NOM_FRACT, 0.01),
	REG_MAP(33140, FI, 1, U16, WB, DOC, 1, "%", "battery health SOH", RF_BATTERY_SOH_FRACT,
		0.01),
	REG(SH_BMS_V, FI, 1, U16, WB, DOC, 0.01, "V", "battery voltage (BMS)"),
	REG_MAP(SH_BATT_W, FI, 2, U32, WB, DOC, 1, "W", "battery power", RF_BATTERY_W, 1),
	REG_MAP(33161, FI, 2, U32, WB, DOC, 1, "kWh", "total battery charge energy",
		RF_BATTERY_TOTAL_CHARGE_WH, 1000),
	REG_MAP(33165, FI, 2, U32, WB, DOC, 1, "kWh", "total battery discharge energy",
		RF_BATTERY_TOTAL_DISCHARGE_WH, 1000),
	/* grid meter (export positive in the document: negated) */
	REG_MAP(SH_METER_V1, FI, 1, U16, WB, DOC, 0.1, "V", "meter AC voltage A", RF_METER_L1_V, 1),
	REG_MAP(33252, FI, 1, U16, WB, DOC, 0.01, "A", "meter AC current A", RF_METER_L1_A, 1),
	REG_MAP(33253, FI, 1, U16, WB, DOC, 0.1, "V", "meter AC voltage B", RF_METER_L2_V, 1),
	REG_MAP(33254, FI, 1, U16, WB, DOC, 0.01, "A", "meter AC current B", RF_METER_L2_A, 1),
	REG_MAP(33255, FI, 1, U16, WB, DOC, 0.1, "V", "meter AC voltage C", RF_METER_L3_V, 1),
	REG_MAP(33256, FI, 1, U16, WB, DOC, 0.01, "A", "meter AC current C", RF_METER_L3_A, 1),
	REG_MAP(33257, FI, 2, I32, WB, DOC, 1, "W", "meter active power A", RF_METER_L1_W, -1),
	REG_MAP(33259, FI, 2, I32, WB, DOC, 1, "W", "meter active power B", RF_METER_L2_W, -1),
	REG_MAP(33261, FI, 2, I32, WB, DOC, 1, "W", "meter active power C", RF_METER_L3_W, -1),
	REG_MAP(33263, FI, 2, I32, WB, DOC, 1, "W", "meter total active power", RF_METER_W, -1),
	REG_MAP(33283, FI, 2, U32, WB, DOC, 0.01, "kWh", "meter total active energy from grid",
		RF_METER_TOTAL_IMPORT_WH, 1000),
	REG_MAP(33285, FI, 2, U32, WB, DOC, 0.01, "kWh", "meter total active energy to grid",
		RF_METER_TOTAL_EXPORT_WH, 1000),
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
	.fixup = solis_hybrid_fixup,
	.encode_fixup = solis_hybrid_encode_fixup,
};
