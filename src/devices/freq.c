/* Frequency statistics over a window of samples (pure). */
#include <errno.h>

#include "devices/device.h"

int freq_stats_compute(const int64_t *ts_ms, const double *hz, unsigned n, struct freq_stats *ret)
{
	struct freq_stats s = { .n = n };
	double st = 0, sf = 0, stt = 0, stf = 0;

	if (n == 0)
		return -EINVAL;
	s.min = s.max = hz[0];
	/* Times relative to the first sample keep the sums well conditioned. */
	for (unsigned i = 0; i < n; i++) {
		double t = (double)(ts_ms[i] - ts_ms[0]) / 1000.0;
		sf += hz[i];
		st += t;
		stt += t * t;
		stf += t * hz[i];
		if (hz[i] < s.min)
			s.min = hz[i];
		if (hz[i] > s.max)
			s.max = hz[i];
	}
	s.mean = sf / n;
	/* Least-squares slope: robust to the noise of single samples, unlike
	 * (last - first) / span. */
	double den = (double)n * stt - st * st;
	s.rocof = (n >= 2 && den > 1e-12) ? ((double)n * stf - st * sf) / den : 0.0;
	*ret = s;
	return 0;
}
