/* Generic SunSpec profile: marker probing, model walk, and a profile built
 * from the models found.  Point offsets follow from the order of the points
 * in the SunSpec model definitions (reference/sunspec/model_N.json), counted
 * from the model's ID register (offset 0 = ID, 1 = L); test_profiles checks
 * every offset, type and scale-factor link below against those files.
 *
 * Sign conventions: inverter and DER models report power positive when
 * generating, so inverter.W = -W (AC power) and pv.W = -DCW (DC power, models
 * 101-103 and 111-113); model 802 reports battery power and current
 * positive when discharging, so battery.W = -W and battery.A = -A; meter
 * models 201-204 report import positive, taken as is.
 *
 * Several models can carry one quantity: the lifetime AC energy (103 WH, 701
 * TotWhInj, 122 ActWh), the rated power (120 WRtg, 702 WMaxRtg), the state of
 * charge (802 SoC, 713 SoC, 124 ChaState).  Rows are emitted by rank, the
 * fallback models' first, so a measurement model's value wins over a
 * nameplate, status or storage-settings model's whenever both are present
 * (a later row overwrites an earlier one; an unavailable one leaves it).
 * Not-implemented points (0x8000, 0xFFFF, 0xFFFFFFFF, NaN, a scale factor
 * of 0x8000) are unavailable, never 0. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/util.h"
#include "profiles/codec.h"
#include "profiles/table.h"

const uint16_t sunspec_bases[SUNSPEC_NBASES] = { 0, 40000, 50000 };

bool sunspec_is_marker(const uint16_t words[2])
{
	return words[0] == 0x5375 && words[1] == 0x6e53;
}

int sunspec_next(const uint16_t hdr[2], uint16_t addr, struct sunspec_model_hdr *ret_model,
		 uint16_t *ret_next)
{
	uint32_t next;

	if (hdr[0] == SUNSPEC_END_ID)
		return 0;
	next = (uint32_t)addr + 2 + hdr[1];
	if (next > 0xFFFF)
		return -EGW_EPROTO;
	*ret_model = (struct sunspec_model_hdr){ .id = hdr[0], .addr = addr, .len = hdr[1] };
	*ret_next = (uint16_t)next;
	return 1;
}

struct ss_point {
	uint16_t off; /* from the model's ID register */
	uint8_t words;
	uint8_t type;   /* enum reg_type */
	uint8_t tag;    /* enum reg_tag */
	int16_t sf_off; /* offset of its scale factor point, or -1 */
	int16_t field;  /* enum reading_field, or -1 */
	double mul;
	const char *name;
	const char *unit;
};

#define PT(o, w, t, tg, sf, fld, m, nm, u) \
	{ \
		.off = (o), .words = (w), .type = REG_##t, .tag = TAG_##tg, .sf_off = (sf), \
		.field = (fld), .mul = (m), .name = (nm), .unit = (u) \
	}
#define SFP(o, nm) PT(o, 1, I16, SF, -1, REG_NO_FIELD, 0, nm, "-")
#define RAW(o, w, t, nm) PT(o, w, t, DEF, -1, REG_NO_FIELD, 0, nm, "-")

static const struct ss_point common_pts[] = {
	RAW(2, 16, STR, "Mn"),
	RAW(18, 16, STR, "Md"),
	RAW(42, 8, STR, "Vr"),
	PT(50, 16, STR, SN, -1, REG_NO_FIELD, 0, "SN", "-"),
};

/* 101, 102, 103 share the layout.  A single-phase device reports the
 * points of phases B and C as not implemented: absent.  PF is in percent. */
static const struct ss_point inverter_pts[] = {
	PT(2, 1, U16, DEF, 6, RF_INVERTER_A, 1, "A", "A"),
	PT(3, 1, U16, DEF, 6, RF_INVERTER_L1_A, 1, "AphA", "A"),
	PT(4, 1, U16, DEF, 6, RF_INVERTER_L2_A, 1, "AphB", "A"),
	PT(5, 1, U16, DEF, 6, RF_INVERTER_L3_A, 1, "AphC", "A"),
	SFP(6, "A_SF"),
	PT(10, 1, U16, DEF, 13, RF_INVERTER_L1_V, 1, "PhVphA", "V"),
	PT(11, 1, U16, DEF, 13, RF_INVERTER_L2_V, 1, "PhVphB", "V"),
	PT(12, 1, U16, DEF, 13, RF_INVERTER_L3_V, 1, "PhVphC", "V"),
	SFP(13, "V_SF"),
	PT(14, 1, I16, KEY, 15, RF_INVERTER_W, -1, "W", "W"),
	SFP(15, "W_SF"),
	PT(16, 1, U16, KEY, 17, RF_METER_HZ, 1, "Hz", "Hz"),
	SFP(17, "Hz_SF"),
	PT(18, 1, I16, DEF, 19, RF_INVERTER_VA, 1, "VA", "VA"),
	SFP(19, "VA_SF"),
	PT(20, 1, I16, DEF, 21, RF_INVERTER_VAR, 1, "VAr", "var"),
	SFP(21, "VAr_SF"),
	PT(22, 1, I16, DEF, 23, RF_INVERTER_PF, 0.01, "PF", "%"),
	SFP(23, "PF_SF"),
	PT(24, 2, U32, DEF, 26, RF_PV_TOTAL_GENERATION_WH, 1, "WH", "Wh"),
	SFP(26, "WH_SF"),
	PT(31, 1, I16, DEF, 32, RF_PV_W, -1, "DCW", "W"),
	SFP(32, "DCW_SF"),
	PT(34, 1, I16, DEF, 37, RF_PV_HEATSINK_C, 1, "TmpSnk", "C"),
	SFP(37, "Tmp_SF"),
};

/* Fixed part, then module 1 at 10 and module 2 at 30 (20 registers each). */
static const struct ss_point mppt_pts[] = {
	SFP(2, "DCA_SF"),
	SFP(3, "DCV_SF"),
	SFP(4, "DCW_SF"),
	RAW(8, 1, U16, "N"),
	PT(19, 1, U16, DEF, 2, RF_PV_MPPT1_A, 1, "module[1].DCA", "A"),
	PT(20, 1, U16, DEF, 3, RF_PV_MPPT1_V, 1, "module[1].DCV", "V"),
	PT(21, 1, U16, DEF, 4, RF_PV_MPPT1_W, 1, "module[1].DCW", "W"),
	PT(39, 1, U16, DEF, 2, RF_PV_MPPT2_A, 1, "module[2].DCA", "A"),
	PT(40, 1, U16, DEF, 3, RF_PV_MPPT2_V, 1, "module[2].DCV", "V"),
	PT(41, 1, U16, DEF, 4, RF_PV_MPPT2_W, 1, "module[2].DCW", "W"),
};

/* 201, 202, 203, 204 share the layout. */
static const struct ss_point meter_pts[] = {
	PT(3, 1, I16, DEF, 6, RF_METER_L1_A, 1, "AphA", "A"),
	PT(4, 1, I16, DEF, 6, RF_METER_L2_A, 1, "AphB", "A"),
	PT(5, 1, I16, DEF, 6, RF_METER_L3_A, 1, "AphC", "A"),
	SFP(6, "A_SF"),
	PT(8, 1, I16, DEF, 15, RF_METER_L1_V, 1, "PhVphA", "V"),
	PT(9, 1, I16, DEF, 15, RF_METER_L2_V, 1, "PhVphB", "V"),
	PT(10, 1, I16, DEF, 15, RF_METER_L3_V, 1, "PhVphC", "V"),
	SFP(15, "V_SF"),
	PT(16, 1, I16, KEY, 17, RF_METER_HZ, 1, "Hz", "Hz"),
	SFP(17, "Hz_SF"),
	PT(18, 1, I16, KEY, 22, RF_METER_W, 1, "W", "W"),
	PT(19, 1, I16, DEF, 22, RF_METER_L1_W, 1, "WphA", "W"),
	PT(20, 1, I16, DEF, 22, RF_METER_L2_W, 1, "WphB", "W"),
	PT(21, 1, I16, DEF, 22, RF_METER_L3_W, 1, "WphC", "W"),
	SFP(22, "W_SF"),
	PT(38, 2, U32, DEF, 54, RF_METER_TOTAL_EXPORT_WH, 1, "TotWhExp", "Wh"),
	PT(46, 2, U32, DEF, 54, RF_METER_TOTAL_IMPORT_WH, 1, "TotWhImp", "Wh"),
	SFP(54, "TotWh_SF"),
};

/* 111, 112, 113 share the layout: the 101-103 points as float32, no scale
 * factors (a NaN is "not implemented"). */
static const struct ss_point float_inverter_pts[] = {
	PT(2, 2, F32, DEF, -1, RF_INVERTER_A, 1, "A", "A"),
	PT(4, 2, F32, DEF, -1, RF_INVERTER_L1_A, 1, "AphA", "A"),
	PT(6, 2, F32, DEF, -1, RF_INVERTER_L2_A, 1, "AphB", "A"),
	PT(8, 2, F32, DEF, -1, RF_INVERTER_L3_A, 1, "AphC", "A"),
	PT(16, 2, F32, DEF, -1, RF_INVERTER_L1_V, 1, "PhVphA", "V"),
	PT(18, 2, F32, DEF, -1, RF_INVERTER_L2_V, 1, "PhVphB", "V"),
	PT(20, 2, F32, DEF, -1, RF_INVERTER_L3_V, 1, "PhVphC", "V"),
	PT(22, 2, F32, KEY, -1, RF_INVERTER_W, -1, "W", "W"),
	PT(24, 2, F32, KEY, -1, RF_METER_HZ, 1, "Hz", "Hz"),
	PT(26, 2, F32, DEF, -1, RF_INVERTER_VA, 1, "VA", "VA"),
	PT(28, 2, F32, DEF, -1, RF_INVERTER_VAR, 1, "VAr", "var"),
	PT(30, 2, F32, DEF, -1, RF_INVERTER_PF, 0.01, "PF", "%"),
	PT(32, 2, F32, DEF, -1, RF_PV_TOTAL_GENERATION_WH, 1, "WH", "Wh"),
	PT(38, 2, F32, DEF, -1, RF_PV_W, -1, "DCW", "W"),
	PT(42, 2, F32, DEF, -1, RF_PV_HEATSINK_C, 1, "TmpSnk", "C"),
};

/* 120 nameplate: the continuous power rating. */
static const struct ss_point nameplate_pts[] = {
	PT(3, 1, U16, DEF, 4, RF_PV_RATED_POWER_W, 1, "WRtg", "W"),
	SFP(4, "WRtg_SF"),
};

/* 122 status: the lifetime AC energy (acc64, no scale factor). */
static const struct ss_point status_pts[] = {
	PT(5, 4, U64, DEF, -1, RF_PV_TOTAL_GENERATION_WH, 1, "ActWh", "Wh"),
};

/* 124 Basic Storage Controls: the state of charge (percent of AhrRtg) and
 * the battery voltage, and the points battery control uses (read raw,
 * decoded by battctl); offsets from the ID register, model_124.json. */
static const struct ss_point storage_pts[] = {
	RAW(2, 1, U16, "WChaMax"),
	RAW(5, 1, U16, "StorCtl_Mod"),
	PT(8, 1, U16, DEF, 22, RF_BATTERY_SOC_NOM_FRACT, 0.01, "ChaState", "%"),
	PT(10, 1, U16, DEF, 24, RF_BATTERY_V, 1, "InBatV", "V"),
	RAW(12, 1, I16, "OutWRte"),
	RAW(13, 1, I16, "InWRte"),
	RAW(15, 1, U16, "InOutWRte_RvrtTms"),
	SFP(18, "WChaMax_SF"),
	SFP(22, "ChaState_SF"),
	SFP(24, "InBatV_SF"),
	SFP(25, "InOutWRte_SF"),
};

/* 702 DER capacity: the active power rating. */
static const struct ss_point der_capacity_pts[] = {
	PT(2, 1, U16, DEF, 45, RF_PV_RATED_POWER_W, 1, "WMaxRtg", "W"),
	SFP(45, "W_SF"),
};

/* 713 DER storage capacity: the state of charge and of health. */
static const struct ss_point der_storage_pts[] = {
	PT(4, 1, U16, DEF, 8, RF_BATTERY_SOC_NOM_FRACT, 0.01, "SoC", "%"),
	PT(5, 1, U16, DEF, 8, RF_BATTERY_SOH_FRACT, 0.01, "SoH", "%"),
	SFP(8, "Pct_SF"),
};

/* 701 DER AC measurement: PF carries the sign of the active power (positive
 * while delivering), as a fraction. */
static const struct ss_point der_ac_pts[] = {
	PT(10, 1, I16, KEY, 116, RF_INVERTER_W, -1, "W", "W"),
	PT(11, 1, I16, DEF, 118, RF_INVERTER_VA, 1, "VA", "VA"),
	PT(12, 1, I16, DEF, 119, RF_INVERTER_VAR, 1, "Var", "var"),
	PT(13, 1, I16, DEF, 117, RF_INVERTER_PF, 1, "PF", "-"),
	PT(14, 1, I16, DEF, 113, RF_INVERTER_A, 1, "A", "A"),
	PT(17, 2, U32, KEY, 115, RF_METER_HZ, 1, "Hz", "Hz"),
	PT(19, 4, U64, DEF, 120, RF_PV_TOTAL_GENERATION_WH, 1, "TotWhInj", "Wh"),
	PT(37, 1, I16, DEF, 122, RF_PV_HEATSINK_C, 1, "TmpSnk", "C"),
	PT(41, 1, I16, DEF, 116, RF_INVERTER_L1_W, -1, "WL1", "W"),
	PT(45, 1, I16, DEF, 113, RF_INVERTER_L1_A, 1, "AL1", "A"),
	PT(47, 1, U16, DEF, 114, RF_INVERTER_L1_V, 1, "VL1", "V"),
	PT(64, 1, I16, DEF, 116, RF_INVERTER_L2_W, -1, "WL2", "W"),
	PT(68, 1, I16, DEF, 113, RF_INVERTER_L2_A, 1, "AL2", "A"),
	PT(70, 1, U16, DEF, 114, RF_INVERTER_L2_V, 1, "VL2", "V"),
	PT(87, 1, I16, DEF, 116, RF_INVERTER_L3_W, -1, "WL3", "W"),
	PT(91, 1, I16, DEF, 113, RF_INVERTER_L3_A, 1, "AL3", "A"),
	PT(93, 1, U16, DEF, 114, RF_INVERTER_L3_V, 1, "VL3", "V"),
	SFP(113, "A_SF"),
	SFP(114, "V_SF"),
	SFP(115, "Hz_SF"),
	SFP(116, "W_SF"),
	SFP(117, "PF_SF"),
	SFP(118, "VA_SF"),
	SFP(119, "Var_SF"),
	SFP(120, "TotWh_SF"),
	SFP(122, "Tmp_SF"),
};

/* Fixed part, then port 1 at 20 and port 2 at 45 (25 registers each).  The
 * model's total DCW counts every DC port, a storage port too: pv.W is the
 * sum of the ports whose PrtTyp is 0 (PV), taken by sunspec_fixup. */
static const struct ss_point der_dc_pts[] = {
	SFP(15, "DCA_SF"),
	SFP(16, "DCV_SF"),
	SFP(17, "DCW_SF"),
	RAW(20, 1, U16, "Prt[1].PrtTyp"),
	PT(30, 1, I16, DEF, 15, RF_PV_MPPT1_A, 1, "Prt[1].DCA", "A"),
	PT(31, 1, U16, DEF, 16, RF_PV_MPPT1_V, 1, "Prt[1].DCV", "V"),
	PT(32, 1, I16, DEF, 17, RF_PV_MPPT1_W, 1, "Prt[1].DCW", "W"),
	RAW(45, 1, U16, "Prt[2].PrtTyp"),
	PT(55, 1, I16, DEF, 15, RF_PV_MPPT2_A, 1, "Prt[2].DCA", "A"),
	PT(56, 1, U16, DEF, 16, RF_PV_MPPT2_V, 1, "Prt[2].DCV", "V"),
	PT(57, 1, I16, DEF, 17, RF_PV_MPPT2_W, 1, "Prt[2].DCW", "W"),
};

#define SS_PRT_PV 0 /* 714 PrtTyp: PV */

/* pv.W of a DER DC model (714): minus the sum of its PV ports' DCW, when the
 * inverter models gave none; else of an MPPT model (160): minus the sum of
 * its modules' DCW.  A PV input whose power is unavailable leaves pv.W
 * unavailable (a part is not the sum). */
static int sunspec_fixup(const struct profile *p, const struct block_result *res, unsigned nres,
			 struct reading *r)
{
	double sum = 0;
	int dec = 0;
	bool any = false;

	if (!isnan(r->v[RF_PV_W]))
		return 0;
	for (unsigned i = 0; i < p->nregs; i++) {
		const struct reg_def *typ = &p->regs[i], *dcw = typ + 1;
		double t, w;

		if (strcmp(typ->name, "Prt[1].PrtTyp") != 0 &&
		    strcmp(typ->name, "Prt[2].PrtTyp") != 0)
			continue;
		/* the port's DCW row follows its DCA and DCV rows */
		while (dcw < p->regs + p->nregs && dcw->addr < typ->addr + 12)
			dcw++;
		if (dcw >= p->regs + p->nregs || dcw->addr != typ->addr + 12)
			continue;
		if (profile_decode_value(typ, res, nres, &t) < 0 || t != SS_PRT_PV)
			continue;
		if (profile_decode_value(dcw, res, nres, &w) < 0)
			return 0;
		for (int d = 0; d < 9 && reading_round(w, d) != w; d++)
			dec = d + 1 > dec ? d + 1 : dec;
		sum += w;
		any = true;
	}
	if (!any) {
		/* model 160: every module's DCW (all PV inputs), when the
		 * inverter model reports DCW as not implemented (Fronius) */
		for (unsigned i = 0; i < p->nregs; i++) {
			const struct reg_def *dcw = &p->regs[i];
			double w;

			if (strcmp(dcw->name, "module[1].DCW") != 0 &&
			    strcmp(dcw->name, "module[2].DCW") != 0)
				continue;
			if (profile_decode_value(dcw, res, nres, &w) < 0)
				return 0;
			for (int d = 0; d < 9 && reading_round(w, d) != w; d++)
				dec = d + 1 > dec ? d + 1 : dec;
			sum += w;
			any = true;
		}
	}
	if (any)
		r->v[RF_PV_W] = reading_round(-sum, dec);
	return 0;
}

static const struct ss_point battery_pts[] = {
	PT(11, 1, U16, DEF, 56, RF_BATTERY_SOC_NOM_FRACT, 0.01, "SoC", "%"),
	PT(13, 1, U16, DEF, 58, RF_BATTERY_SOH_FRACT, 0.01, "SoH", "%"),
	PT(34, 1, U16, DEF, 59, RF_BATTERY_V, 1, "V", "V"),
	PT(44, 1, I16, DEF, 61, RF_BATTERY_A, -1, "A", "A"),
	PT(47, 1, I16, DEF, 63, RF_BATTERY_W, -1, "W", "W"),
	SFP(56, "SoC_SF"),
	SFP(58, "SoH_SF"),
	SFP(59, "V_SF"),
	SFP(61, "A_SF"),
	SFP(63, "W_SF"),
};

/* Row order: rank 0 first, so rank 2 (measurement models) wins a field. */
enum { RANK_FALLBACK, RANK_RATING, RANK_MEASURED, RANK_COUNT };

struct ss_model {
	uint16_t id;
	uint8_t rank;
	const struct ss_point *pts;
	unsigned npts;
};

#define MODELR(i, r, p) \
	{ \
		.id = (i), .rank = (r), .pts = (p), .npts = sizeof(p) / sizeof((p)[0]) \
	}
#define MODEL(i, p) MODELR(i, RANK_MEASURED, p)
/* Known, walked past, never read: 121 (basic settings) and 123 (immediate
 * controls) hold settings, none of them a data-model field. */
#define MODEL_NOREAD(i) \
	{ \
		.id = (i), .rank = RANK_MEASURED, .pts = NULL, .npts = 0 \
	}

static const struct ss_model models[] = {
	MODEL(1, common_pts),
	MODEL(101, inverter_pts),
	MODEL(102, inverter_pts),
	MODEL(103, inverter_pts),
	MODEL(111, float_inverter_pts),
	MODEL(112, float_inverter_pts),
	MODEL(113, float_inverter_pts),
	MODELR(120, RANK_FALLBACK, nameplate_pts),
	MODEL_NOREAD(121),
	MODELR(122, RANK_FALLBACK, status_pts),
	MODEL_NOREAD(123),
	MODELR(124, RANK_FALLBACK, storage_pts),
	MODEL(160, mppt_pts),
	MODEL(201, meter_pts),
	MODEL(202, meter_pts),
	MODEL(203, meter_pts),
	MODEL(204, meter_pts),
	MODEL(701, der_ac_pts),
	MODELR(702, RANK_RATING, der_capacity_pts),
	MODELR(713, RANK_RATING, der_storage_pts),
	MODEL(714, der_dc_pts),
	MODEL(802, battery_pts),
};

/* The device's own common model is the first model 1; its grid meter the
 * first meter model (201-204).  A later common model belongs to another
 * device behind it (SolarEdge puts each meter's common block before its
 * meter model), a later meter model to another meter (SolarEdge meters 2
 * and 3, which may measure consumption or production): walked past, never
 * read, so they neither replace the serial nor write meter.* twice. */
static bool is_meter(uint16_t id)
{
	return id >= 201 && id <= 204;
}

static bool first_of_kind(const struct sunspec_model_hdr *hdrs, unsigned i)
{
	for (unsigned k = 0; k < i; k++)
		if ((hdrs[i].id == 1 && hdrs[k].id == 1) ||
		    (is_meter(hdrs[i].id) && is_meter(hdrs[k].id)))
			return false;
	return true;
}

/* A model egw reads: one with a point that feeds a field (the common model's
 * serial counts). */
static bool model_read(const struct ss_model *m)
{
	for (unsigned k = 0; k < m->npts; k++)
		if (m->pts[k].field >= 0 || m->pts[k].tag == TAG_SN)
			return true;
	return false;
}

static const struct ss_model *model_find(uint16_t id)
{
	for (unsigned i = 0; i < sizeof(models) / sizeof(models[0]); i++)
		if (models[i].id == id)
			return &models[i];
	return NULL;
}

bool sunspec_model_known(uint16_t id)
{
	return model_find(id) != NULL;
}

static int push(struct reg_def *regs, unsigned cap, unsigned *n, struct reg_def d)
{
	if (*n >= cap)
		return -ENOSPC;
	regs[(*n)++] = d;
	return 0;
}

static struct reg_def const_row(uint32_t addr, uint8_t words, uint8_t type, const char *name,
				double val)
{
	return (struct reg_def){ .addr = (uint16_t)addr,
				 .fc = REG_FC_HOLDING,
				 .words = words,
				 .type = type,
				 .order = WO_BIG,
				 .tag = TAG_DEF,
				 .scale = 1,
				 .sf_addr = REG_NO_SF,
				 .field = REG_NO_FIELD,
				 .flags = REG_F_CONST,
				 .add = val,
				 .unit = "-",
				 .name = name };
}

int sunspec_fill(uint16_t base_addr, const struct sunspec_model_hdr *hdrs, unsigned n,
		 struct reg_def *regs, unsigned cap, unsigned *ret_n)
{
	unsigned nr = 0;
	uint32_t end = (uint32_t)base_addr + 2;
	int r;

	r = push(regs, cap, &nr, const_row(base_addr, 2, REG_U32, "SunS", 0x53756E53));
	if (r < 0)
		return r;
	for (unsigned i = 0; i < n; i++) {
		uint32_t mend = (uint32_t)hdrs[i].addr + 2 + hdrs[i].len;

		if (mend > 0x10000)
			return -EGW_EPROTO;
		end = MAX_U32(end, mend);
	}
	for (unsigned i = 0; i < n * RANK_COUNT; i++) {
		const struct sunspec_model_hdr *h = &hdrs[i % n];
		const struct ss_model *m = model_find(h->id);

		if (!m || m->rank != i / n || !first_of_kind(hdrs, i % n))
			continue;
		r = push(regs, cap, &nr, const_row(h->addr, 1, REG_U16, "ID", h->id));
		if (r >= 0)
			r = push(regs, cap, &nr,
				 const_row((uint32_t)h->addr + 1, 1, REG_U16, "L", h->len));
		if (r < 0)
			return r;
		for (unsigned k = 0; k < m->npts; k++) {
			const struct ss_point *pt = &m->pts[k];
			struct reg_def d;

			/* points past L (short model, fewer modules) do not exist */
			if (pt->off + pt->words > 2u + h->len ||
			    (pt->sf_off >= 0 && pt->sf_off >= 2 + h->len))
				continue;
			d = (struct reg_def){
				.addr = (uint16_t)(h->addr + pt->off),
				.fc = REG_FC_HOLDING,
				.words = pt->words,
				.type = pt->type,
				.order = WO_BIG,
				/* no static fallback: without its sf a value is unavailable */
				.tag = pt->tag,
				.scale = pt->sf_off >= 0 ? 0 : 1,
				.sf_addr = pt->sf_off >= 0 ? h->addr + pt->sf_off : REG_NO_SF,
				.field = pt->field,
				.mul = pt->mul,
				.unit = pt->unit,
				.name = pt->name
			};
			if (h->id == 160 && pt->off == 8) /* N: modules that fit in L */
				d = const_row(d.addr, 1, REG_U16, "N",
					      h->len >= 8 ? (h->len - 8) / 20 : 0);
			r = push(regs, cap, &nr, d);
			if (r < 0)
				return r;
		}
	}
	if (end + 2 <= 0x10000) {
		r = push(regs, cap, &nr, const_row(end, 1, REG_U16, "end ID", SUNSPEC_END_ID));
		if (r >= 0)
			r = push(regs, cap, &nr, const_row(end + 1, 1, REG_U16, "end L", 0));
		if (r < 0)
			return r;
	}
	*ret_n = nr;
	return 0;
}

/* Each known model read whole, in chunks of at most 125 registers from its ID
 * register: every value of the models egw decodes shares a chunk with its sf. */
static int plan_models(const struct sunspec_model_hdr *hdrs, unsigned n, struct mb_block *ret,
		       unsigned cap)
{
	unsigned nb = 0;

	for (unsigned i = 0; i < n; i++) {
		uint32_t a = hdrs[i].addr, end = a + 2 + hdrs[i].len;

		const struct ss_model *m = model_find(hdrs[i].id);

		if (!m || !model_read(m) || !first_of_kind(hdrs, i))
			continue;
		while (a < end) {
			uint32_t c = MIN(end - a, (uint32_t)PROFILE_MAX_BLOCK);
			if (nb >= cap)
				return -ENOSPC;
			ret[nb++] = (struct mb_block){ .fc = REG_FC_HOLDING,
						       .addr = (uint16_t)a,
						       .count = (uint16_t)c };
			a += c;
		}
	}
	return (int)nb;
}

#define MAX_MODELS_REGS 64 /* rows per model, with room */

/* Battery control through model 124 (doc/battery-control.md): take sets the
 * revert timeout (10 s), release clears StorCtl_Mod, the keep-alive rewrites
 * the timeout every 5 s (and the daemon the setpoint after it). */
#define SS124_RVRT_S 10
struct ss_control {
	struct battery_control c;
	struct bctl_write take[1], release[1];
};

static void storage_control(struct ss_control *sc, uint16_t a)
{
	sc->take[0] = (struct bctl_write){ .addr = (uint16_t)(a + 15),
					   .count = 1,
					   .values = { SS124_RVRT_S } };
	sc->release[0] =
		(struct bctl_write){ .addr = (uint16_t)(a + 5), .count = 1, .values = { 0 } };
	sc->c = (struct battery_control){
		.doc = "SunSpec model 124 Basic Storage Controls (StorCtl_Mod, OutWRte/InWRte, "
		       "InOutWRte_RvrtTms)",
		.take = sc->take,
		.ntake = 1,
		.release = sc->release,
		.nrelease = 1,
		.keepalive = sc->take,
		.nkeepalive = 1,
		.keepalive_ms = 5000,
		.timeout_s = SS124_RVRT_S,
		.layout = BCTL_SUNSPEC_124,
		.cmd_addr = (uint16_t)(a + 5),
		.cmd_charge = 3,
		.cmd_discharge = 3,
		.cmd_stop = 0,
		.cmd_zero = 3,
		.power_addr = (uint16_t)(a + 12),
		.power_max_w = 1000000,
		.limit_charge_addr = -1,
		.limit_discharge_addr = -1,
		.ref_addr = (uint16_t)(a + 2),
		.ref_sf_addr = (uint16_t)(a + 18),
		.rate_sf_addr = (uint16_t)(a + 25),
	};
}

int sunspec_build_profile(uint16_t base_addr, const struct sunspec_model_hdr *hdrs, unsigned n,
			  struct profile **ret)
{
	return sunspec_build_as(NULL, base_addr, hdrs, n, ret);
}

int sunspec_build_as(const struct profile *as, uint16_t base_addr,
		     const struct sunspec_model_hdr *hdrs, unsigned n, struct profile **ret)
{
	unsigned known = 0, cap_regs, cap_blocks = 0, nregs;
	bool meter = false, inverter = false, battery = false;
	int storage = -1; /* index of model 124 with every control point, or -1 */
	struct profile *p;
	struct reg_def *regs;
	struct mb_block *blocks;
	int r;

	for (unsigned i = 0; i < n; i++) {
		if (!model_find(hdrs[i].id))
			continue;
		known++;
		cap_blocks += (2u + hdrs[i].len + PROFILE_MAX_BLOCK - 1) / PROFILE_MAX_BLOCK;
		meter |= hdrs[i].id >= 201 && hdrs[i].id <= 204;
		inverter |= (hdrs[i].id >= 101 && hdrs[i].id <= 103) ||
			(hdrs[i].id >= 111 && hdrs[i].id <= 113) || hdrs[i].id == 701;
		battery |= hdrs[i].id == 802 || hdrs[i].id == 124 || hdrs[i].id == 713;
		if (hdrs[i].id == 124 && hdrs[i].len >= 24 && storage < 0)
			storage = (int)i;
	}
	if (known == 0 || (!meter && !inverter && !battery))
		return -EGW_EPROFILE;
	cap_regs = 4 + known * MAX_MODELS_REGS;
	p = calloc(1,
		   sizeof(*p) + sizeof(struct ss_control) + cap_regs * sizeof(*regs) +
			   cap_blocks * sizeof(*blocks));
	if (!p)
		return -ENOMEM;
	struct ss_control *sc = (struct ss_control *)(p + 1);
	regs = (struct reg_def *)(sc + 1);
	blocks = (struct mb_block *)(regs + cap_regs);
	r = sunspec_fill(base_addr, hdrs, n, regs, cap_regs, &nregs);
	if (r < 0)
		goto fail_p;
	r = plan_models(hdrs, n, blocks, cap_blocks);
	if (r < 0)
		goto fail_p;
	*p = (struct profile){ .name = "sunspec",
			       .brand = "SunSpec",
			       .family = "sunspec",
			       .dtype = battery   ? "hybrid"
				       : inverter ? "inverter"
						  : "meter",
			       .regs = regs,
			       .nregs = nregs,
			       .blocks = blocks,
			       .nblocks = (unsigned)r,
			       .short_reads_fields = true,
			       .sunspec_base = base_addr,
			       .heap = true,
			       .fixup = sunspec_fixup };
	/* A brand's profile read through the walk keeps its own name, family and
	 * device type (its configuration, batches and API name it so). */
	if (as && strcmp(as->name, "sunspec") != 0) {
		p->name = as->name;
		p->brand = as->brand;
		p->family = as->family;
		p->dtype = as->dtype;
	}
	if (storage >= 0) {
		storage_control(sc, hdrs[storage].addr);
		p->control = &sc->c;
	}
	for (unsigned i = 0; i < nregs; i++) {
		if (regs[i].tag == TAG_SN && !p->serial)
			p->serial = &regs[i];
		/* an inverter's frequency (U16/U32) before a meter's (I16) */
		if (regs[i].field == RF_METER_HZ &&
		    (!p->frequency || (p->frequency->type == REG_I16 && regs[i].type != REG_I16)))
			p->frequency = &regs[i];
	}
	*ret = p;
	return 0;

fail_p:
	free(p);
	return r;
}

void profile_free(const struct profile *p)
{
	if (p && p->heap)
		free((void *)p);
}

/* ---- the template served by egw-sim ------------------------------------- */

/* SunS at 40000, then common 1, inverter 103, MPPT 160 (2 modules), meter 203,
 * battery 802, end marker. */
const struct sunspec_model_hdr sunspec_template_models[SUNSPEC_TEMPLATE_NMODELS] = {
	{ .id = 1, .addr = 40002, .len = 66 },   { .id = 103, .addr = 40070, .len = 50 },
	{ .id = 160, .addr = 40122, .len = 48 }, { .id = 203, .addr = 40172, .len = 105 },
	{ .id = 802, .addr = 40279, .len = 62 },
};

/* The rows sunspec_build_profile(40000, sunspec_template_models) produces
 * (test_profiles checks they are identical). */
static const struct reg_def sunspec_regs[] = {
	REG_CONST(40000, FH, 2, U32, "SunS", 0x53756E53),
	REG_CONST(40002, FH, 1, U16, "ID", 1),
	REG_CONST(40003, FH, 1, U16, "L", 66),
	REG(40004, FH, 16, STR, WB, DEF, 1, "-", "Mn"),
	REG(40020, FH, 16, STR, WB, DEF, 1, "-", "Md"),
	REG(40044, FH, 8, STR, WB, DEF, 1, "-", "Vr"),
	REG(40052, FH, 16, STR, WB, SN, 1, "-", "SN"),
	REG_CONST(40070, FH, 1, U16, "ID", 103),
	REG_CONST(40071, FH, 1, U16, "L", 50),
	REG_SF_MAP(40072, FH, 1, U16, WB, DEF, 0, "A", "A", 40076, RF_INVERTER_A, 1),
	REG_SF_MAP(40073, FH, 1, U16, WB, DEF, 0, "A", "AphA", 40076, RF_INVERTER_L1_A, 1),
	REG_SF_MAP(40074, FH, 1, U16, WB, DEF, 0, "A", "AphB", 40076, RF_INVERTER_L2_A, 1),
	REG_SF_MAP(40075, FH, 1, U16, WB, DEF, 0, "A", "AphC", 40076, RF_INVERTER_L3_A, 1),
	REG(40076, FH, 1, I16, WB, SF, 1, "-", "A_SF"),
	REG_SF_MAP(40080, FH, 1, U16, WB, DEF, 0, "V", "PhVphA", 40083, RF_INVERTER_L1_V, 1),
	REG_SF_MAP(40081, FH, 1, U16, WB, DEF, 0, "V", "PhVphB", 40083, RF_INVERTER_L2_V, 1),
	REG_SF_MAP(40082, FH, 1, U16, WB, DEF, 0, "V", "PhVphC", 40083, RF_INVERTER_L3_V, 1),
	REG(40083, FH, 1, I16, WB, SF, 1, "-", "V_SF"),
	REG_SF_MAP(40084, FH, 1, I16, WB, KEY, 0, "W", "W", 40085, RF_INVERTER_W, -1),
	REG(40085, FH, 1, I16, WB, SF, 1, "-", "W_SF"),
	REG_SF_MAP(40086, FH, 1, U16, WB, KEY, 0, "Hz", "Hz", 40087, RF_METER_HZ, 1),
	REG(40087, FH, 1, I16, WB, SF, 1, "-", "Hz_SF"),
	REG_SF_MAP(40088, FH, 1, I16, WB, DEF, 0, "VA", "VA", 40089, RF_INVERTER_VA, 1),
	REG(40089, FH, 1, I16, WB, SF, 1, "-", "VA_SF"),
	REG_SF_MAP(40090, FH, 1, I16, WB, DEF, 0, "var", "VAr", 40091, RF_INVERTER_VAR, 1),
	REG(40091, FH, 1, I16, WB, SF, 1, "-", "VAr_SF"),
	REG_SF_MAP(40092, FH, 1, I16, WB, DEF, 0, "%", "PF", 40093, RF_INVERTER_PF, 0.01),
	REG(40093, FH, 1, I16, WB, SF, 1, "-", "PF_SF"),
	REG_SF_MAP(40094, FH, 2, U32, WB, DEF, 0, "Wh", "WH", 40096, RF_PV_TOTAL_GENERATION_WH, 1),
	REG(40096, FH, 1, I16, WB, SF, 1, "-", "WH_SF"),
	REG_SF_MAP(40101, FH, 1, I16, WB, DEF, 0, "W", "DCW", 40102, RF_PV_W, -1),
	REG(40102, FH, 1, I16, WB, SF, 1, "-", "DCW_SF"),
	REG_SF_MAP(40104, FH, 1, I16, WB, DEF, 0, "C", "TmpSnk", 40107, RF_PV_HEATSINK_C, 1),
	REG(40107, FH, 1, I16, WB, SF, 1, "-", "Tmp_SF"),
	REG_CONST(40122, FH, 1, U16, "ID", 160),
	REG_CONST(40123, FH, 1, U16, "L", 48),
	REG(40124, FH, 1, I16, WB, SF, 1, "-", "DCA_SF"),
	REG(40125, FH, 1, I16, WB, SF, 1, "-", "DCV_SF"),
	REG(40126, FH, 1, I16, WB, SF, 1, "-", "DCW_SF"),
	REG_CONST(40130, FH, 1, U16, "N", 2),
	REG_SF_MAP(40141, FH, 1, U16, WB, DEF, 0, "A", "module[1].DCA", 40124, RF_PV_MPPT1_A, 1),
	REG_SF_MAP(40142, FH, 1, U16, WB, DEF, 0, "V", "module[1].DCV", 40125, RF_PV_MPPT1_V, 1),
	REG_SF_MAP(40143, FH, 1, U16, WB, DEF, 0, "W", "module[1].DCW", 40126, RF_PV_MPPT1_W, 1),
	REG_SF_MAP(40161, FH, 1, U16, WB, DEF, 0, "A", "module[2].DCA", 40124, RF_PV_MPPT2_A, 1),
	REG_SF_MAP(40162, FH, 1, U16, WB, DEF, 0, "V", "module[2].DCV", 40125, RF_PV_MPPT2_V, 1),
	REG_SF_MAP(40163, FH, 1, U16, WB, DEF, 0, "W", "module[2].DCW", 40126, RF_PV_MPPT2_W, 1),
	REG_CONST(40172, FH, 1, U16, "ID", 203),
	REG_CONST(40173, FH, 1, U16, "L", 105),
	REG_SF_MAP(40175, FH, 1, I16, WB, DEF, 0, "A", "AphA", 40178, RF_METER_L1_A, 1),
	REG_SF_MAP(40176, FH, 1, I16, WB, DEF, 0, "A", "AphB", 40178, RF_METER_L2_A, 1),
	REG_SF_MAP(40177, FH, 1, I16, WB, DEF, 0, "A", "AphC", 40178, RF_METER_L3_A, 1),
	REG(40178, FH, 1, I16, WB, SF, 1, "-", "A_SF"),
	REG_SF_MAP(40180, FH, 1, I16, WB, DEF, 0, "V", "PhVphA", 40187, RF_METER_L1_V, 1),
	REG_SF_MAP(40181, FH, 1, I16, WB, DEF, 0, "V", "PhVphB", 40187, RF_METER_L2_V, 1),
	REG_SF_MAP(40182, FH, 1, I16, WB, DEF, 0, "V", "PhVphC", 40187, RF_METER_L3_V, 1),
	REG(40187, FH, 1, I16, WB, SF, 1, "-", "V_SF"),
	REG_SF_MAP(40188, FH, 1, I16, WB, KEY, 0, "Hz", "Hz", 40189, RF_METER_HZ, 1),
	REG(40189, FH, 1, I16, WB, SF, 1, "-", "Hz_SF"),
	REG_SF_MAP(40190, FH, 1, I16, WB, KEY, 0, "W", "W", 40194, RF_METER_W, 1),
	REG_SF_MAP(40191, FH, 1, I16, WB, DEF, 0, "W", "WphA", 40194, RF_METER_L1_W, 1),
	REG_SF_MAP(40192, FH, 1, I16, WB, DEF, 0, "W", "WphB", 40194, RF_METER_L2_W, 1),
	REG_SF_MAP(40193, FH, 1, I16, WB, DEF, 0, "W", "WphC", 40194, RF_METER_L3_W, 1),
	REG(40194, FH, 1, I16, WB, SF, 1, "-", "W_SF"),
	REG_SF_MAP(40210, FH, 2, U32, WB, DEF, 0, "Wh", "TotWhExp", 40226, RF_METER_TOTAL_EXPORT_WH,
		   1),
	REG_SF_MAP(40218, FH, 2, U32, WB, DEF, 0, "Wh", "TotWhImp", 40226, RF_METER_TOTAL_IMPORT_WH,
		   1),
	REG(40226, FH, 1, I16, WB, SF, 1, "-", "TotWh_SF"),
	REG_CONST(40279, FH, 1, U16, "ID", 802),
	REG_CONST(40280, FH, 1, U16, "L", 62),
	REG_SF_MAP(40290, FH, 1, U16, WB, DEF, 0, "%", "SoC", 40335, RF_BATTERY_SOC_NOM_FRACT,
		   0.01),
	REG_SF_MAP(40292, FH, 1, U16, WB, DEF, 0, "%", "SoH", 40337, RF_BATTERY_SOH_FRACT, 0.01),
	REG_SF_MAP(40313, FH, 1, U16, WB, DEF, 0, "V", "V", 40338, RF_BATTERY_V, 1),
	REG_SF_MAP(40323, FH, 1, I16, WB, DEF, 0, "A", "A", 40340, RF_BATTERY_A, -1),
	REG_SF_MAP(40326, FH, 1, I16, WB, DEF, 0, "W", "W", 40342, RF_BATTERY_W, -1),
	REG(40335, FH, 1, I16, WB, SF, 1, "-", "SoC_SF"),
	REG(40337, FH, 1, I16, WB, SF, 1, "-", "SoH_SF"),
	REG(40338, FH, 1, I16, WB, SF, 1, "-", "V_SF"),
	REG(40340, FH, 1, I16, WB, SF, 1, "-", "A_SF"),
	REG(40342, FH, 1, I16, WB, SF, 1, "-", "W_SF"),
	REG_CONST(40343, FH, 1, U16, "end ID", 0xFFFF),
	REG_CONST(40344, FH, 1, U16, "end L", 0),
};

static const struct mb_block sunspec_blocks[] = {
	{ .fc = FH, .addr = 40002, .count = 68 }, { .fc = FH, .addr = 40070, .count = 52 },
	{ .fc = FH, .addr = 40122, .count = 50 }, { .fc = FH, .addr = 40172, .count = 107 },
	{ .fc = FH, .addr = 40279, .count = 64 },
};

const struct profile profile_sunspec = {
	.name = "sunspec",
	.brand = "SunSpec",
	.family = "sunspec",
	.dtype = "hybrid",
	PROFILE_TABLE(sunspec_regs),
	PROFILE_BLOCKS(sunspec_blocks),
	.short_reads_fields = true,
	.serial = &sunspec_regs[6],
	.frequency = &sunspec_regs[20],
	.sunspec_base = 40000,
};
