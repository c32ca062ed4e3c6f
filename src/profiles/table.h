/* Private to src/profiles: shorthands for writing the const register tables
 * (one row per reference row) and the list of built-in profiles. */
#pragma once

#include "profiles/profile.h"

#define FH REG_FC_HOLDING
#define FI REG_FC_INPUT
#define WB WO_BIG
#define WL WO_LITTLE

#define REG_ROW_(a, f, w, t, o, tg, sc, u, nm) \
	.addr = (a), .fc = (f), .words = (w), .type = REG_##t, .order = (o), .tag = TAG_##tg, \
	.scale = (sc), .unit = (u), .name = (nm)

/* A row that is read (raw) but feeds no field. */
#define REG(a, f, w, t, o, tg, sc, u, nm) \
	{ \
		REG_ROW_(a, f, w, t, o, tg, sc, u, nm), .sf_addr = REG_NO_SF, \
							.field = REG_NO_FIELD \
	}

/* field = raw * scale * mul */
#define REG_MAP(a, f, w, t, o, tg, sc, u, nm, fld, mu) \
	{ \
		REG_ROW_(a, f, w, t, o, tg, sc, u, nm), .sf_addr = REG_NO_SF, .field = (fld), \
							.mul = (mu) \
	}

/* field = raw * scale * mul + add */
#define REG_MAPA(a, f, w, t, o, tg, sc, u, nm, fld, mu, ad) \
	{ \
		REG_ROW_(a, f, w, t, o, tg, sc, u, nm), .sf_addr = REG_NO_SF, .field = (fld), \
							.mul = (mu), .add = (ad) \
	}

/* field += raw * scale * mul (several registers summed into one field) */
#define REG_SUM(a, f, w, t, o, tg, sc, u, nm, fld, mu) \
	{ \
		REG_ROW_(a, f, w, t, o, tg, sc, u, nm), .sf_addr = REG_NO_SF, .field = (fld), \
							.mul = (mu), .flags = REG_F_SUM \
	}

/* SunSpec: field = raw * 10^sf * mul, sf read from register sfa */
#define REG_SF_MAP(a, f, w, t, o, tg, sc, u, nm, sfa, fld, mu) \
	{ \
		REG_ROW_(a, f, w, t, o, tg, sc, u, nm), .sf_addr = (sfa), .field = (fld), \
							.mul = (mu) \
	}

/* field = raw * scale * mul + add, with flags */
#define REG_MAPF(a, f, w, t, o, tg, sc, u, nm, fld, mu, ad, fl) \
	{ \
		REG_ROW_(a, f, w, t, o, tg, sc, u, nm), .sf_addr = REG_NO_SF, .field = (fld), \
							.mul = (mu), .add = (ad), .flags = (fl) \
	}

/* field += raw * scale * mul, read on short polls too */
#define REG_SUMK(a, f, w, t, o, tg, sc, u, nm, fld, mu) \
	{ \
		REG_ROW_(a, f, w, t, o, tg, sc, u, nm), .sf_addr = REG_NO_SF, .field = (fld), \
							.mul = (mu), \
							.flags = REG_F_SUM | REG_F_KEY \
	}

/* Fixed content written by the encoder, never decoded. */
#define REG_CONST(a, f, w, t, nm, val) \
	{ \
		REG_ROW_(a, f, w, t, WB, DEF, 1, "-", nm), \
			.sf_addr = REG_NO_SF, .field = REG_NO_FIELD, .flags = REG_F_CONST, \
			.add = (val) \
	}

#define PROFILE_TABLE(r) .regs = (r), .nregs = sizeof(r) / sizeof((r)[0])
#define PROFILE_BLOCKS(b) .blocks = (b), .nblocks = sizeof(b) / sizeof((b)[0])

/* The built-in profiles, one per reference profile (defined in the brand files). */
extern const struct profile profile_huawei, profile_huawei_hybrid;
extern const struct profile profile_sungrow, profile_sungrow_sf;
extern const struct profile profile_solaredge, profile_solaredge_us;
extern const struct profile profile_fronius, profile_fronius_sf;
extern const struct profile profile_sma, profile_growatt, profile_goodwe, profile_sofar;
extern const struct profile profile_solis, profile_solis_hybrid;
extern const struct profile profile_deye, profile_deye_micro;
extern const struct profile profile_solax, profile_ferroamp;
extern const struct profile profile_sdm630, profile_lqt40s, profile_unknown;
extern const struct profile profile_sunspec;
