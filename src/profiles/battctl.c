/* Battery control: a setpoint in W into the register writes of a profile's
 * control table (profile.h struct battery_control). */
#include <errno.h>
#include <math.h>

#include "base/util.h"
#include "profiles/profile.h"

int battctl_setpoint(const struct battery_control *c, double setpoint_w, const struct bctl_ref *ref,
		     struct bctl_write *ret, unsigned cap)
{
	if (!c || isnan(setpoint_w))
		return -EINVAL;
	double mag = fabs(setpoint_w);
	uint32_t w = mag > (double)c->power_max_w ? c->power_max_w : (uint32_t)lround(mag);
	uint16_t cmd = w == 0 ? c->cmd_zero : setpoint_w > 0 ? c->cmd_charge : c->cmd_discharge;

	switch (c->layout) {
	case BCTL_CMD_THEN_POWER_U16:
		if (cap < 1)
			return -ENOSPC;
		if (w > 0xFFFF)
			w = 0xFFFF;
		ret[0] = (struct bctl_write){ .addr = c->cmd_addr,
					      .count = 2,
					      .values = { cmd, (uint16_t)w } };
		return 1;
	case BCTL_POWER_PAIR_U32_THEN_CMD: {
		if (cap < 2)
			return -ENOSPC;
		uint32_t chg = setpoint_w > 0 ? w : 0, dis = setpoint_w < 0 ? w : 0;
		ret[0] = (struct bctl_write){ .addr = c->power_addr,
					      .count = 4,
					      .values = { (uint16_t)(chg >> 16), (uint16_t)chg,
							  (uint16_t)(dis >> 16), (uint16_t)dis } };
		ret[1] = (struct bctl_write){ .addr = c->cmd_addr, .count = 1, .values = { cmd } };
		return 2;
	}
	case BCTL_SUNSPEC_124: {
		if (cap < 2)
			return -ENOSPC;
		if (!ref || !(ref->wchamax_w >= 1) || !isfinite(ref->wchamax_w) ||
		    ref->rate_sf < -10 || ref->rate_sf > 10)
			return -EINVAL;
		/* percent of WChaMax, in units of 10^sf, at most 100 %: never more
		 * than the device's own maximum */
		double pct = MIN(mag, ref->wchamax_w) / ref->wchamax_w * 100.0;
		double units = round(pct / pow(10, ref->rate_sf));
		if (units > 32767)
			units = 32767;
		int16_t r = (int16_t)(setpoint_w >= 0 ? units : -units);
		ret[0] = (struct bctl_write){ .addr = c->power_addr,
					      .count = 2,
					      .values = { (uint16_t)-r, (uint16_t)r } };
		ret[1] = (struct bctl_write){ .addr = c->cmd_addr, .count = 1, .values = { cmd } };
		return 2;
	}
	}
	return -EINVAL;
}
