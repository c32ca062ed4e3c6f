#include "sim/physics.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "base/util.h"

/* Noise channels: each input draws from its own stream of the seed. */
enum {
	CH_CLOUD = 1,
	CH_CLOUD_FAST,
	CH_LOAD,
	CH_LOAD_SPIKE,
	CH_VOLT,
	CH_VOLT_FAST,
	CH_HZ_SLOW,
	CH_HZ_FAST,
	CH_HZ_EVENT,
	CH_MPPT,
	CH_INIT,
};

#define PV_DC_OVERSIZE 1.05 /* DC array a little larger than the inverter */
#define PV_EFFICIENCY 0.97  /* AC out / DC in */
#define SUNRISE_S (6.0 * 3600.0)
#define SUNSET_S (20.0 * 3600.0)
#define HZ_NOMINAL 50.0
#define HZ_EVENT_SLOT 90.0 /* one possible event per slot of sim time */
#define BATT_SOC_MAX 0.95
#define BATT_SOC_MIN 0.10

static uint64_t mix64(uint64_t x)
{
	/* splitmix64 finaliser: cheap and well distributed */
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t hash3(uint64_t seed, uint64_t ch, int64_t i)
{
	return mix64(mix64(seed ^ (ch << 56)) ^ (uint64_t)i);
}

/* Uniform in [0, 1). */
static double unit(uint64_t seed, uint64_t ch, int64_t i)
{
	return (double)(hash3(seed, ch, i) >> 11) * 0x1.0p-53;
}

/* Smooth value noise in [-1, 1] with one lattice point per unit of x. */
static double vnoise(uint64_t seed, uint64_t ch, double x)
{
	double fl = floor(x);
	double f = x - fl;
	int64_t i = (int64_t)fl;
	double a = unit(seed, ch, i) * 2.0 - 1.0;
	double b = unit(seed, ch, i + 1) * 2.0 - 1.0;
	double s = f * f * (3.0 - 2.0 * f);
	return a + (b - a) * s;
}

static double clamp(double v, double lo, double hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static double tod_of(const struct sim_phys_cfg *cfg, double t)
{
	double tod = fmod(cfg->start_tod_s + t, SIM_DAY_S);
	return tod < 0 ? tod + SIM_DAY_S : tod;
}

double sim_phys_irradiance(const struct sim_phys_cfg *cfg, double t)
{
	double tod = tod_of(cfg, t);
	if (tod <= SUNRISE_S || tod >= SUNSET_S)
		return 0.0;
	double x = (tod - SUNRISE_S) / (SUNSET_S - SUNRISE_S);
	double clear = pow(sin(M_PI * x), 1.3);
	/* Clouds: slow banks (minutes) with faster flicker at their edges. */
	double bank = vnoise(cfg->seed, CH_CLOUD, t / 600.0);
	double flick = vnoise(cfg->seed, CH_CLOUD_FAST, t / 20.0);
	double cover = clamp(bank * 0.8 + flick * 0.15 - 0.1, 0.0, 0.75);
	return clear * (1.0 - cover);
}

double sim_phys_hz(uint64_t seed, double t)
{
	double hz = HZ_NOMINAL + 0.015 * vnoise(seed, CH_HZ_SLOW, t / 20.0) +
		0.004 * vnoise(seed, CH_HZ_FAST, t / 0.25);
	/* Events: within a slot, maybe one step or ramp of 60..100 mHz.  Slots
	 * are long enough that an event never runs into the next slot. */
	int64_t slot = (int64_t)floor(t / HZ_EVENT_SLOT);
	double in = t - (double)slot * HZ_EVENT_SLOT;
	if (unit(seed, CH_HZ_EVENT, slot * 4) < 0.4) {
		double start = 5.0 + 40.0 * unit(seed, CH_HZ_EVENT, slot * 4 + 1);
		double mag = 0.06 + 0.04 * unit(seed, CH_HZ_EVENT, slot * 4 + 2);
		uint64_t kind = hash3(seed, CH_HZ_EVENT, slot * 4 + 3);
		if (kind & 2)
			mag = -mag;
		double d = in - start;
		if (kind & 1) {
			/* step: jump, hold 15 s, jump back */
			if (d >= 0 && d < 15.0)
				hz += mag;
		} else if (d >= 0 && d < 30.0) {
			/* ramp: 10 s up, 10 s hold, 10 s down */
			double k = d < 10.0 ? d / 10.0 : d < 20.0 ? 1.0 : (30.0 - d) / 10.0;
			hz += mag * k;
		}
	}
	return clamp(hz, 49.8, 50.2);
}

/* House load: a daily shape (morning and evening peaks), slow wander and
 * occasional appliances (kettle, oven) of ~2 kW for two minutes. */
static double load_at(const struct sim_phys_cfg *cfg, double t)
{
	double h = tod_of(cfg, t) / 3600.0;
	double shape = 0.6 + 0.6 * exp(-(h - 7.5) * (h - 7.5) / 2.0) +
		1.0 * exp(-(h - 19.0) * (h - 19.0) / 4.0);
	double w = cfg->load_base_w * shape * (1.0 + 0.3 * vnoise(cfg->seed, CH_LOAD, t / 90.0));
	int64_t slot = (int64_t)floor(t / 600.0);
	double in = t - (double)slot * 600.0;
	if (unit(cfg->seed, CH_LOAD_SPIKE, slot * 2) < 0.3) {
		double start = 400.0 * unit(cfg->seed, CH_LOAD_SPIKE, slot * 2 + 1);
		if (in >= start && in < start + 120.0)
			w += 2000.0;
	}
	return MAX(w, 50.0);
}

static double ambient_c(const struct sim_phys_cfg *cfg, double t)
{
	double h = tod_of(cfg, t) / 3600.0;
	return 15.0 + 8.0 * sin(M_PI * (h - 9.0) / 12.0);
}

struct flows {
	double irr, load, dc, ac, bat;
};

/* The PV array's DC power at irradiance irr, t (W, >= 0). */
static double pv_dc_at(const struct sim_phys_cfg *cfg, double t, double irr)
{
	double cell = ambient_c(cfg, t) + 25.0 * irr;
	double dc = cfg->rated_w * PV_DC_OVERSIZE * irr * (1.0 - 0.004 * (cell - 25.0));
	return MAX(dc, 0.0);
}

static double pv_ac_of(const struct sim_phys_cfg *cfg, double dc)
{
	return MIN(dc * PV_EFFICIENCY, cfg->rated_w);
}

/* The number of the day sim time t falls in (0: the day the sim starts). */
static double day_of(const struct sim_phys_cfg *cfg, double t)
{
	return floor((cfg->start_tod_s + t) / SIM_DAY_S);
}

/* Instantaneous power flows at t for the state in p. dt is the step the
 * battery power will be held for, so it never over- or under-fills. */
static void flows_at(const struct sim_phys *p, double t, double dt, struct flows *f)
{
	const struct sim_phys_cfg *cfg = &p->cfg;
	f->irr = sim_phys_irradiance(cfg, t);
	f->load = load_at(cfg, t);
	f->dc = pv_dc_at(cfg, t, f->irr);
	f->ac = pv_ac_of(cfg, f->dc);
	f->bat = 0.0;
	if (cfg->batt_capacity_wh <= 0)
		return;
	double cap_ws = cfg->batt_capacity_wh * 3600.0;
	double surplus = f->ac - f->load;
	if (surplus > 0 && p->bat_soc < BATT_SOC_MAX) {
		double room = (BATT_SOC_MAX - p->bat_soc) * cap_ws / MAX(dt, 1e-3);
		f->bat = MIN(MIN(surplus, cfg->batt_max_w), room);
	} else if (surplus < 0 && p->bat_soc > BATT_SOC_MIN) {
		double avail = (p->bat_soc - BATT_SOC_MIN) * cap_ws / MAX(dt, 1e-3);
		f->bat = -MIN(MIN(-surplus, cfg->batt_max_w), avail);
	}
}

/* The controlled battery over the step [p->t, p->t + dt]: commands whose
 * delay has run out take effect, a lapsed one hands back to the own mode
 * (f->bat on entry), the power ramps towards the target within the power
 * and SoC limits.  f->bat becomes the mean power over the step. */
static void batt_step(struct sim_phys *p, double dt, struct flows *f)
{
	struct sim_batt_dyn *b = &p->bd;
	double t_end = p->t + dt;

	while (b->nq > 0 && b->queue[0].t + b->delay_s <= t_end + 1e-9) {
		b->active = b->queue[0];
		b->lapsed = false;
		memmove(b->queue, b->queue + 1, sizeof(b->queue[0]) * (b->nq - 1));
		b->nq--;
	}
	if (b->active.remote && !b->lapsed && t_end >= b->active.t + b->active.timeout_s) {
		b->lapsed = true;
		b->lapses++;
	}
	double target = f->bat;
	if (b->active.remote && !b->lapsed)
		target = clamp(target, b->active.lo_w, b->active.hi_w);
	double cap_ws = p->cfg.batt_capacity_wh * 3600.0;
	double room = MAX((b->soc_max - p->bat_soc) * cap_ws / MAX(dt, 1e-3), 0.0);
	double avail = MAX((p->bat_soc - b->soc_min) * cap_ws / MAX(dt, 1e-3), 0.0);
	target = clamp(target, -p->cfg.batt_max_w, p->cfg.batt_max_w);
	target = clamp(target, -avail, room);
	b->target_w = target;
	double w0 = b->w;
	double lim = b->ramp_w_s * dt;
	double w1 = w0 + clamp(target - w0, -lim, lim);
	b->w = w1;
	f->bat = clamp((w0 + w1) / 2.0, -avail, room);
}

static void integrate(struct sim_phys *p, double dt, const struct flows *f)
{
	double h = dt / 3600.0;
	double grid = f->load - f->ac + f->bat;
	/* a new day: the inverter's day counter starts again (the sun is down
	 * at midnight, so nothing of the step belongs to the day before) */
	if (day_of(&p->cfg, p->t + dt) != day_of(&p->cfg, p->t))
		p->pv_day_wh = 0.0;
	p->pv_total_wh += f->ac * h;
	p->pv_day_wh += f->ac * h;
	if (f->bat > 0)
		p->bat_charge_wh += f->bat * h;
	else
		p->bat_discharge_wh += -f->bat * h;
	if (p->cfg.batt_capacity_wh > 0)
		p->bat_soc = clamp(p->bat_soc + f->bat * h / p->cfg.batt_capacity_wh, 0.0, 1.0);
	if (grid > 0)
		p->import_wh += grid * h;
	else
		p->export_wh += -grid * h;
}

int sim_phys_init(struct sim_phys *p, const struct sim_phys_cfg *cfg)
{
	if (!cfg || !(cfg->rated_w > 0) || cfg->batt_capacity_wh < 0 || cfg->batt_soc0 < 0 ||
	    cfg->batt_soc0 > 1 || !(cfg->batt_nominal_v > 0))
		return -EINVAL;
	double years = 1.0 + 3.0 * unit(cfg->seed, CH_INIT, 0);
	/* the day's yield so far: the PV's AC power from midnight to the start,
	 * in minute steps (the clouds of that morning included) */
	double day_wh = 0.0;
	for (double t = -tod_of(cfg, 0); t < 0; t += 60.0) {
		double dt = MIN(60.0, -t), mid = t + dt / 2;
		day_wh += pv_ac_of(cfg, pv_dc_at(cfg, mid, sim_phys_irradiance(cfg, mid))) * dt /
			3600.0;
	}
	*p = (struct sim_phys){
		.cfg = *cfg,
		.bd = { .delay_s = SIM_BATT_DELAY_S,
			.ramp_w_s = SIM_BATT_RAMP_W_S,
			.soc_min = SIM_BATT_SOC_MIN,
			.soc_max = SIM_BATT_SOC_MAX,
			.active = { .remote = false } },
		.t = 0.0,
		.pv_total_wh = round(cfg->rated_w * 1000.0 * years) + day_wh,
		.pv_day_wh = day_wh,
		.bat_soc = cfg->batt_soc0,
		.bat_charge_wh = cfg->batt_capacity_wh > 0 ? round(1.5e6 * years) : 0.0,
		.bat_discharge_wh = cfg->batt_capacity_wh > 0 ? round(1.35e6 * years) : 0.0,
		.import_wh = round(3.0e6 * years),
		.export_wh = round(2.0e6 * years),
	};
	return 0;
}

int sim_phys_advance(struct sim_phys *p, double t, struct sim_values *ret_v)
{
	if (!(t >= p->t))
		return -EINVAL;
	/* Steps of at most SIM_PHYS_MAX_STEP, or SIM_PHYS_MAX_STEPS steps for
	 * a long jump (a very fast clock), which keeps the cost bounded. */
	double step = MAX(SIM_PHYS_MAX_STEP, (t - p->t) / SIM_PHYS_MAX_STEPS);
	while (p->t < t) {
		double dt = MIN(t - p->t, step);
		struct flows f;
		flows_at(p, p->t, dt, &f);
		if (p->bd.on)
			batt_step(p, dt, &f);
		integrate(p, dt, &f);
		p->t = (t - p->t <= step) ? t : p->t + dt;
	}

	const struct sim_phys_cfg *cfg = &p->cfg;
	struct flows f;
	flows_at(p, t, SIM_PHYS_MAX_STEP, &f);
	if (p->bd.on)
		f.bat = p->bd.w;
	struct sim_values v = {
		.t = t,
		.tod_s = tod_of(cfg, t),
		.irradiance = f.irr,
		.night = tod_of(cfg, t) <= SUNRISE_S || tod_of(cfg, t) >= SUNSET_S,
		.load_w = f.load,
		.pv_w = -f.ac,
		.pv_dc_w = f.dc,
		.pv_rated_w = cfg->rated_w,
		.pv_total_wh = p->pv_total_wh,
		.pv_day_wh = p->pv_day_wh,
		.bat_w = f.bat,
		.bat_soc = p->bat_soc,
		.bat_charge_wh = p->bat_charge_wh,
		.bat_discharge_wh = p->bat_discharge_wh,
		.meter_w = f.load - f.ac + f.bat,
		.hz = sim_phys_hz(cfg->seed, t),
		.import_wh = p->import_wh,
		.export_wh = p->export_wh,
	};

	/* MPPT strings: string 1 carries 55 % of the power; voltage near the
	 * maximum power point falls with cell temperature and sags at dawn. */
	double amb = ambient_c(cfg, t);
	if (f.dc > 0) {
		double cell = amb + 25.0 * f.irr;
		double sag = 0.85 + 0.15 * MIN(1.0, f.irr * 5.0);
		double vt = (1.0 - 0.0035 * (cell - 25.0)) * sag;
		v.mppt1_v = (370.0 + 8.0 * vnoise(cfg->seed, CH_MPPT, t / 30.0)) * vt;
		v.mppt2_v = (300.0 + 8.0 * vnoise(cfg->seed, CH_MPPT + 16, t / 30.0)) * vt;
		v.mppt1_a = 0.55 * f.dc / v.mppt1_v;
		v.mppt2_a = 0.45 * f.dc / v.mppt2_v;
	}
	v.pv_heatsink_c = amb + 20.0 * f.ac / cfg->rated_w;

	/* Battery pack voltage: a linear open-circuit curve plus IR drop. */
	if (cfg->batt_capacity_wh > 0) {
		double ocv = cfg->batt_nominal_v * (0.92 + 0.16 * p->bat_soc);
		v.bat_v = ocv + f.bat / cfg->batt_nominal_v * 0.002 * cfg->batt_nominal_v;
		v.bat_a = f.bat / v.bat_v;
		v.bat_heatsink_c = amb + 5.0 + 10.0 * fabs(f.bat) / MAX(cfg->batt_max_w, 1.0);
	}

	/* Grid: three phases; the house load is unbalanced, PV and battery
	 * are spread evenly. */
	static const double share[3] = { 0.45, 0.30, 0.25 };
	for (int i = 0; i < 3; i++) {
		double lv = 230.0 + 2.5 * vnoise(cfg->seed, CH_VOLT + 32 * (uint64_t)i, t / 30.0) +
			0.6 * vnoise(cfg->seed, CH_VOLT_FAST + 32 * (uint64_t)i, t / 0.5);
		v.l_v[i] = lv;
		v.l_w[i] = f.load * share[i] + (f.bat - f.ac) / 3.0;
		v.l_a[i] = v.l_w[i] / lv;
		v.pv_l_w[i] = -f.ac / 3.0;
		v.pv_l_a[i] = v.pv_l_w[i] / lv;
	}
	*ret_v = v;
	return 0;
}

void sim_phys_batt_command(struct sim_phys *p, const struct sim_batt_cmd *c)
{
	struct sim_batt_dyn *b = &p->bd;

	if (!b->on) {
		/* from now on the power is state; it starts where the own mode is */
		struct flows f;
		flows_at(p, p->t, SIM_PHYS_MAX_STEP, &f);
		b->on = true;
		b->w = f.bat;
		b->target_w = f.bat;
	}
	if (b->nq == SIM_BATT_QUEUE) {
		memmove(b->queue, b->queue + 1, sizeof(b->queue[0]) * (SIM_BATT_QUEUE - 1));
		b->nq--;
	}
	b->queue[b->nq++] = *c;
	b->commands++;
}

bool sim_phys_batt_remote(const struct sim_phys *p)
{
	return p->bd.on && p->bd.active.remote && !p->bd.lapsed;
}

void sim_clock_init(struct sim_clock *c, usec_t now, double speed)
{
	*c = (struct sim_clock){ .start = now, .base = 0.0, .speed = speed > 0 ? speed : 1.0 };
}

double sim_clock_t(const struct sim_clock *c, usec_t now)
{
	if (c->frozen || now <= c->start)
		return c->base;
	return c->base + (double)(now - c->start) / 1e6 * c->speed;
}

void sim_clock_freeze(struct sim_clock *c, usec_t now, bool frozen)
{
	if (c->frozen == frozen)
		return;
	c->base = sim_clock_t(c, now);
	c->start = now;
	c->frozen = frozen;
}
