/* Fuzz what the broker hands egwd at connect: a retained message under the
 * discovery prefix (topic, then payload, separated by the first newline of
 * the input), through mqtt_stale_config.  Checks: no crash; only a config
 * topic of this gateway's nodes is ever marked for deletion, never one of a
 * current device; the availability topic marked offline is this gateway's
 * and names no current device. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "backend/mqtt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ids[] = { "inv1", "meter.1", "dev0" };
	const uint8_t *nl = memchr(data, '\n', size);
	char topic[512], avail[MQTT_TOPIC_MAX];
	size_t tl;
	int r;

	if (!nl || size > 65536)
		return 0;
	tl = (size_t)(nl - data);
	if (tl >= sizeof(topic) || memchr(data, 0, tl))
		return 0;
	memcpy(topic, data, tl);
	topic[tl] = 0;
	r = mqtt_stale_config("egw", "homeassistant", "0123abcd", ids, 3, topic, nl + 1,
			      size - tl - 1, avail, sizeof(avail));
	assert(r == 0 || r == 1);
	if (r == 1) {
		assert(strncmp(topic, "homeassistant/sensor/egw_0123abcd_", 34) == 0);
		assert(strncmp(topic, "homeassistant/sensor/egw_0123abcd_inv1/", 39) != 0);
		assert(strncmp(topic, "homeassistant/sensor/egw_0123abcd_meter_1/", 42) != 0);
		assert(strncmp(topic, "homeassistant/sensor/egw_0123abcd_dev0/", 39) != 0);
		assert(size - tl - 1 > 0);
		if (avail[0]) {
			assert(strncmp(avail, "egw/0123abcd/", 13) == 0);
			assert(strcmp(avail, "egw/0123abcd/inv1/availability") != 0);
			assert(strcmp(avail, "egw/0123abcd/meter.1/availability") != 0);
			assert(strcmp(avail, "egw/0123abcd/dev0/availability") != 0);
		}
	}
	return 0;
}
