/* struct device_hooks adapters for the batch collector (kept apart so the
 * collector does not pull the device layer into programs that only batch). */
#include "backend/batch.h"
#include "devices/device.h"

void batch_on_reading(void *ud, struct device *d, int64_t ts_ms, const struct reading *r,
		      const struct block_result *res, unsigned nres)
{
	batch_add_reading(ud, device_id(d), device_profile_name(d), device_serial(d), ts_ms, r, res,
			  nres);
}

void batch_on_missed(void *ud, struct device *d, int64_t ts_ms, int err)
{
	batch_add_missed(ud, device_id(d), device_profile_name(d), device_serial(d), ts_ms, err);
}

void batch_on_freq(void *ud, struct device *d, int64_t ts_ms, double hz)
{
	batch_add_freq(ud, device_id(d), ts_ms, hz);
}
