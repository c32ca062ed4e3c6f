/* egw-sim physics: a deterministic model of one home installation (PV
 * array, battery, house load, grid connection) as a function of simulated
 * time and a seed.
 *
 * Everything is in SI units with the gateway's sign conventions: PV
 * generation negative, battery charging positive, grid import positive,
 * energy totals positive and never decreasing (the day's yield, which
 * starts again from 0 at midnight, aside).
 *
 * The instantaneous inputs (irradiance with clouds, house load, grid
 * voltage, grid frequency with events) are pure functions of (seed, sim
 * time).  The stateful parts (energy counters, battery state of charge)
 * are integrated by sim_phys_advance() in sub-steps of at most
 * SIM_PHYS_MAX_STEP seconds (longer only for jumps of more than
 * SIM_PHYS_MAX_STEPS steps), so a sped-up clock still integrates
 * accurately.  Limits: one array of two MPPT strings, one battery, a
 * three-phase grid; no weather beyond cloud noise. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "base/time.h"

#define SIM_PHYS_MAX_STEP 1.0   /* seconds of sim time per integration step */
#define SIM_PHYS_MAX_STEPS 2000 /* ... unless one advance would take more steps */
#define SIM_DAY_S 86400.0

struct sim_phys_cfg {
	uint64_t seed;
	double rated_w;          /* PV nameplate power, W (> 0) */
	double batt_capacity_wh; /* usable battery capacity; 0: no battery */
	double batt_max_w;       /* charge/discharge power limit, W */
	double batt_nominal_v;   /* pack voltage at 50 % SoC, V */
	double batt_soc0;        /* initial state of charge, 0..1 */
	double load_base_w;      /* average house load, W */
	double start_tod_s;      /* time of day (s after midnight) at sim time 0 */
};

/* Defaults: 5 kW PV, 10 kWh / 5 kW battery at 51.2 V, 50 % SoC, 600 W load,
 * starting at noon. */
#define SIM_PHYS_CFG_DEFAULT \
	((struct sim_phys_cfg){ .seed = 1, \
				.rated_w = 5000.0, \
				.batt_capacity_wh = 10000.0, \
				.batt_max_w = 5000.0, \
				.batt_nominal_v = 51.2, \
				.batt_soc0 = 0.5, \
				.load_base_w = 600.0, \
				.start_tod_s = 43200.0 })

/* The physical values at one instant.  Values a device does not have are
 * still computed (a meter sees the house's PV through the grid power). */
struct sim_values {
	double t;          /* sim time, s since start */
	double tod_s;      /* time of day, s after midnight */
	double irradiance; /* 0..1 of clear-sky noon, clouds included */
	bool night;        /* the sun is down */
	double load_w;     /* house consumption, W (>= 0) */
	/* pv (inverter) */
	double pv_w;    /* AC output, W, generation negative */
	double pv_dc_w; /* DC input, W (>= 0) = mppt1 + mppt2 */
	double pv_rated_w;
	double mppt1_v, mppt1_a, mppt2_v, mppt2_a;
	double pv_heatsink_c;
	double pv_total_wh; /* lifetime AC generation, Wh */
	double pv_day_wh;   /* AC generation since midnight, Wh (<= pv_total_wh) */
	double pv_l_w[3];   /* AC power per phase, W (generation negative) */
	double pv_l_a[3];   /* AC current per phase, A = pv_l_w / l_v (signed) */
	/* battery */
	double bat_w;        /* charging positive */
	double bat_v, bat_a; /* bat_a = bat_w / bat_v (charging positive) */
	double bat_soc;      /* state of charge, 0..1 */
	double bat_heatsink_c;
	double bat_charge_wh, bat_discharge_wh;
	/* meter (grid connection point) */
	double meter_w; /* import positive = load + pv_w + bat_w */
	double hz;      /* grid frequency */
	double l_v[3];  /* phase-to-neutral voltage, V */
	double l_w[3];  /* per phase, import positive, sums to meter_w */
	double l_a[3];  /* l_w / l_v (signed) */
	double import_wh, export_wh;
};

/* Remote control of the battery, as a hybrid inverter's EMS interface gives
 * it (the vendor maps in vendor.c turn register writes into commands).
 *
 * A command either releases the battery to its own mode (self-consumption:
 * charge from surplus, discharge to cover the load) or holds its power in
 * the window [lo_w, hi_w] (charging positive): a fixed setpoint is
 * lo_w == hi_w, a one-sided limit has the other bound at +-INFINITY, and the
 * own-mode power is clamped into the window.  A command takes effect
 * delay_s after it arrived (the inverter's reaction time) and lapses back to
 * the own mode timeout_s after it arrived unless a newer command replaces
 * it.  The power moves towards its target at most ramp_w_s per second,
 * stays within +-cfg.batt_max_w and never charges above soc_max or
 * discharges below soc_min. */
struct sim_batt_cmd {
	double t;          /* sim time of arrival */
	bool remote;       /* false: back to the own mode */
	double lo_w, hi_w; /* the window while remote */
	double timeout_s;  /* INFINITY: no timeout */
	double since;      /* when the vendor's period began (t, or an earlier
			    * command's for a write that only changes it) */
};

#define SIM_BATT_QUEUE 32 /* commands in flight (arrived, not yet in effect) */
#define SIM_BATT_DELAY_S 0.2
#define SIM_BATT_RAMP_W_S 10000.0
#define SIM_BATT_SOC_MIN 0.05 /* the BMS limits under remote control */
#define SIM_BATT_SOC_MAX 1.0

struct sim_batt_dyn {
	double delay_s, ramp_w_s;
	double soc_min, soc_max;
	bool on;                    /* a command ever arrived: power is state from now */
	double w;                   /* the battery's power now, charging positive */
	double target_w;            /* what it moves towards */
	struct sim_batt_cmd active; /* in effect (remote false: own mode) */
	struct sim_batt_cmd queue[SIM_BATT_QUEUE];
	unsigned nq;
	bool lapsed; /* the active command timed out */
	uint64_t commands, lapses;
};

struct sim_phys {
	struct sim_phys_cfg cfg;
	struct sim_batt_dyn bd;
	double t; /* sim time integrated so far */
	double pv_total_wh;
	double pv_day_wh; /* grows with pv_total_wh, back to 0 at midnight */
	double bat_soc;
	double bat_charge_wh, bat_discharge_wh;
	double import_wh, export_wh;
};

/* Initialise the model at sim time 0 with lifetime counters that look like
 * a few years of use (derived from the seed), and the day's yield the PV
 * produced from midnight to the start time.  Returns 0 or -EINVAL. */
int sim_phys_init(struct sim_phys *p, const struct sim_phys_cfg *cfg);

/* Integrate up to sim time t (>= the time reached so far) and write the
 * values at t.  Returns 0 or -EINVAL when t goes backwards. */
int sim_phys_advance(struct sim_phys *p, double t, struct sim_values *ret_v);

/* Hand command c (c->t: its arrival, >= the time integrated so far less
 * one tick) to the battery.  A full queue drops the oldest command in flight. */
void sim_phys_batt_command(struct sim_phys *p, const struct sim_batt_cmd *c);
/* Is the battery under remote control at the time integrated so far? */
bool sim_phys_batt_remote(const struct sim_phys *p);

/* The pure inputs, exposed for tests and for the frequency channel. */
double sim_phys_hz(uint64_t seed, double t);
double sim_phys_irradiance(const struct sim_phys_cfg *cfg, double t);

/* Sim clock: sim time = (now - start) * speed, frozen while paused. */
struct sim_clock {
	usec_t start; /* monotonic reference */
	double base;  /* sim time at `start` */
	double speed; /* > 0 */
	bool frozen;
};

void sim_clock_init(struct sim_clock *c, usec_t now, double speed);
double sim_clock_t(const struct sim_clock *c, usec_t now);
/* Freeze (true) or resume (false) the clock at `now`; idempotent. */
void sim_clock_freeze(struct sim_clock *c, usec_t now, bool frozen);
