/* Frequency containment reserve (FCR) with a home battery: the pure part.
 *
 * Products, as the Nordic TSOs define them ("Technical Requirements for
 * Frequency Containment Reserve Provision in the Nordic Synchronous Area",
 * v1.1, 2025):
 *   fcr-n       linear over 49.9..50.1 Hz, full up at 49.9, full down at 50.1
 *   fcr-d-up    0 at 49.9 Hz, linear to full (upward) at 49.5 Hz
 *   fcr-d-down  0 at 50.1 Hz, linear to full (downward) at 50.5 Hz
 * Upward regulation discharges the battery; the setpoint is in the data
 * model's sign (battery W > 0 charging), so setpoint = -(upward power) plus
 * the normal-state energy management (NEM) power.
 *
 * NEM (only while the frequency is in 49.9..50.1 Hz): egw does not know the
 * battery's usable energy, so it takes half of the SoC window
 * [soc_min, soc_max] as the reservoir that holds the required endurance at
 * full activation (60 min FCR-N, 20 min FCR-D) in each direction; the
 * endurance left upward is (soc - soc_min) / (window / 2) times that time,
 * downward (soc_max - soc) / (window / 2).  FCR-N: NEM on below 30 min,
 * off at 57.5 min, at 0.34 x the FCR-N capacity; FCR-D: on below 19 min
 * (20 min with a 1-min hysteresis), off at 20 min, at 0.20 x the larger
 * FCR-D capacity (a full 20-min reservoir back within 100 min < 120 min).
 * NEM charges when the upward reservoir is short and discharges when the
 * downward one is.
 *
 * Safety: the setpoint is always finite, within
 * [-min(capacity, discharge limit), +min(capacity, charge limit)] where
 * capacity is the sum of the products' capacities; a state of charge
 * outside [soc_min, soc_max], a stale frequency, a battery that is not
 * polling or an unknown SoC release the battery (state "released"), and it
 * is taken again once all is well (SoC back 1 point inside the window).
 *
 * Pure functions and value types, `now` passed in; no I/O. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/time.h"

enum fcr_product { FCR_N, FCR_D_UP, FCR_D_DOWN, FCR_NPRODUCTS };

/* "fcr-n", "fcr-d-up", "fcr-d-down" */
extern const char *const fcr_product_names[FCR_NPRODUCTS];

#define FCR_ID_LEN 64
#define FCR_STALE_USEC (1 * USEC_PER_SEC) /* no frequency sample for this long: release */
#define FCR_MAX_CAPACITY_W 1000000
#define FCR_RESOLUTION_HZ 0.005 /* the frequency resolution FCR needs */

struct fcr_conf {
	bool enabled;
	double capacity_w[FCR_NPRODUCTS]; /* 0: not offered */
	char battery[FCR_ID_LEN];         /* device ids ("" when unset) */
	char freq[FCR_ID_LEN];
	int battery_index, freq_index; /* their index in "devices", -1 when absent */
	double soc_min, soc_max;       /* fractions 0..1 (the settings hold percent) */
};

struct fcr_conf_error {
	char key[64];
	char msg[256];
};

/* Parses and checks the FCR keys of an effective settings document (defaults
 * merged): "fcr.enabled", "fcr.products" ([{"product", "capacity_w"}]),
 * "fcr.battery_device", "fcr.frequency_device", "fcr.soc_min",
 * "fcr.soc_max" (percent), against "devices" and "frequency.device".
 * Refuses: a malformed or duplicate product, soc_min >= soc_max, a named
 * device that is not configured, a battery device whose profile has no
 * control table, a frequency device whose frequency register is coarser
 * than 5 mHz (or that is not the device the 10 Hz frequency is read from);
 * when enabled also no product or no device named.  Returns 0 (ret filled),
 * -EGW_ESCHEMA (err names the key and says why) or -ENOMEM. */
int fcr_conf_parse(const json_t *settings_doc, struct fcr_conf *ret, struct fcr_conf_error *err);

/* Activation of one product at hz, as a fraction of its capacity: upward
 * (discharge) positive, downward negative; fcr-n in -1..1, fcr-d-up in
 * 0..1, fcr-d-down in -1..0.  0 for NaN. */
double fcr_activation(enum fcr_product p, double hz);

enum fcr_state {
	FCR_OFF,      /* not enabled */
	FCR_WAITING,  /* enabled, waiting for frequency, battery or SoC */
	FCR_ACTIVE,   /* the battery follows egw's setpoint */
	FCR_RELEASED, /* handed back to its own mode (reason says why) */
	FCR_ERROR,    /* the settings cannot be run (reason says why) */
	FCR_STATE_COUNT
};
/* "off", "waiting", "active", "released", "error" */
const char *fcr_state_name(int s);

/* What the controller knows at one instant. */
struct fcr_input {
	double hz;             /* last sample, NaN when none */
	usec_t hz_at;          /* monotonic time of that sample (0: none) */
	bool battery_ok;       /* the battery device is polling and writes succeed */
	double soc;            /* fraction 0..1, NaN unknown */
	double limit_charge_w; /* the battery's limits, NaN unknown (then the capacity) */
	double limit_discharge_w;
};

/* The controller (a value type: the NEM hysteresis and the SoC latch). */
struct fcr_ctl {
	struct fcr_conf conf;
	bool nem_n_on, nem_d_on;
	bool soc_latched; /* released for SoC until it is back inside */
};

struct fcr_out {
	int state;                   /* enum fcr_state */
	const char *reason;          /* static text, "" when none */
	double act_w[FCR_NPRODUCTS]; /* per product, upward positive, W */
	double nem_w;                /* NEM power, charging positive */
	double setpoint_w;           /* charging positive, rounded to 1 W, 0 unless active */
	double min_w, max_w;         /* the bounds the setpoint was clamped to */
};

void fcr_ctl_init(struct fcr_ctl *c, const struct fcr_conf *conf);
/* One step at monotonic time now.  Always fills *ret. */
void fcr_ctl_step(struct fcr_ctl *c, const struct fcr_input *in, usec_t now, struct fcr_out *ret);
