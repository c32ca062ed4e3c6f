/* egw-sim's vendor register maps: the registers a real device of each brand
 * serves, written from the vendor's Modbus document (cited per map), never
 * from egw's profile tables, so a mistake in a profile shows up as a test
 * failure instead of being served back to it.
 *
 * A map lists the address ranges the device answers (everything else is
 * exception 2, illegal data address, as on the real device) and the
 * registers that carry a simulated quantity.  A value is encoded as
 *   raw = (quantity * k + off) / step
 * in the register's type and word order; the quantity is a field of the
 * simulated reading (reading.h sign conventions) or one of the extra
 * quantities below.  Unavailable quantities encode the type's "not
 * implemented" value.
 *
 * Brands without a map here are still served from their profile table
 * (profile_encode); sim_model_find() returns NULL for them. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "profiles/profile.h"
#include "profiles/reading.h"
#include "sim/physics.h"

enum sim_q {
	SQ_FIELD_MAX = RF_COUNT - 1, /* 0..RF_COUNT-1: a reading field */
	SQ_MPPT1_W,                  /* PV string 1 power, W (>= 0) */
	SQ_MPPT2_W,
	SQ_BATTERY_ABS_W,  /* |battery.W| */
	SQ_BATTERY_ABS_A,  /* |battery.A| */
	SQ_METER_L1_ABS_A, /* |meter.L1_A| (and L2, L3 next) */
	SQ_METER_L2_ABS_A,
	SQ_METER_L3_ABS_A,
	SQ_SOLIS_BATT_DIR, /* Solis battery current direction: 0 charging, 1 discharging */
	SQ_SUNGROW_STATE,  /* Sungrow running state: bit 1 charging, bit 2 discharging */
	SQ_SUNSPEC_CHAST,  /* SunSpec ChaSt: 3 discharging, 4 charging, 6 holding */
	SQ_CONST,          /* off alone */
	SQ_NONE,           /* "not implemented": the type's sentinel */
};

struct sim_vreg {
	uint8_t fc;    /* REG_FC_HOLDING / REG_FC_INPUT */
	uint16_t addr; /* zero-based PDU address */
	uint8_t type;  /* enum reg_type (numeric types) */
	uint8_t order; /* enum word_order */
	double step;   /* one count in the quantity's unit */
	int16_t q;     /* enum sim_q or a reading field */
	double k, off;
};

/* Fixed text (SunSpec common model: manufacturer, model, version). */
struct sim_vstr {
	uint8_t fc;
	uint16_t addr, words;
	const char *text;
};

struct sim_vrange {
	uint8_t fc;
	uint16_t addr, count;
};

struct sim_model {
	const char *name;    /* --profile name */
	const char *profile; /* the egw profile that reads this device */
	const char *doc;     /* the vendor document the map is written from */
	bool battery, meter; /* the device has a battery / is (or has) a grid meter */
	const struct sim_vrange *ranges;
	unsigned nranges;
	const struct sim_vreg *regs;
	unsigned nregs;
	const struct sim_vstr *strs;
	unsigned nstrs;
	struct {
		uint8_t fc, words, type; /* REG_STR: ASCII, NUL padded; or U32 */
		uint16_t addr;
	} serial;
	/* Battery control (NULL: the device ignores control writes).  Called
	 * after a client wrote `count` holding registers at `addr` (already in
	 * img) at sim time t; prev is the latest command the battery got.
	 * Returns 1 with *ret_cmd set when the write commands the battery, 0
	 * when it does not (another register, or a change that only takes
	 * effect with a later write). */
	int (*control)(const struct regimage *img, uint16_t addr, unsigned count, double t,
		       const struct sim_batt_cmd *prev, struct sim_batt_cmd *ret_cmd);
};

/* The map named `name` (case-insensitive), or NULL. */
const struct sim_model *sim_model_find(const char *name);

/* All maps; *ret_n gets the count. */
const struct sim_model *const *sim_model_all(unsigned *ret_n);

/* Writes the whole register image of model m for reading r and serial.
 * Returns 0 or -EINVAL. */
int sim_model_encode(const struct sim_model *m, const struct reading *r, const char *serial,
		     struct regimage *img);
