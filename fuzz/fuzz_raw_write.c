/* Fuzz the body of POST /api/inverter/modbus: webui_raw_write_parse, which
 * takes the JSON the route has parsed and checks device, address and
 * values.
 * Checks, besides no crash or undefined behaviour: an accepted body has 1..123
 * values, every one the given integer in 16 bits, and stays within register
 * 65535; a refused one names the field and says why. */
#include "web/webui_int.h"

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *o = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	const char *device = NULL, *field = NULL, *msg = NULL;
	unsigned long addr = 0;
	uint16_t values[123];
	unsigned count = 0;

	if (!json_is_object(o)) {
		json_decref(o);
		return 0;
	}
	if (webui_raw_write_parse(o, &device, &addr, values, &count, &field, &msg) < 0) {
		assert(field && msg && strncmp(msg, field, strlen(field)) == 0);
		json_decref(o);
		return 0;
	}
	const json_t *v = json_object_get(o, "values");
	if (!v)
		v = json_object_get(o, "value");
	assert(count >= 1 && count <= 123 && addr <= 65535 && addr + count <= 65536);
	assert(json_is_array(v) ? json_array_size(v) == count : count == 1);
	for (unsigned i = 0; i < count; i++) {
		const json_t *x = json_is_array(v) ? json_array_get(v, i) : v;
		assert(values[i] == (uint16_t)json_integer_value(x));
	}
	assert(!device || device == json_string_value(json_object_get(o, "device")));
	json_decref(o);
	return 0;
}
