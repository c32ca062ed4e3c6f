/* Fuzz the check behind POST /api/inverter/modbus: the web UI's webui_write_allowed,
 * which matches a raw register write against the modbus_write_allowlist
 * setting (any JSON array: the settings schema only says "array").  Input:
 * a JSON object {"list": [...], "device": "id", "address": N, "count": N}
 * (address clamped to 0..65535 and count to 1..123, as the route does).
 * webui_write_allowed
 * Checks: no crash or undefined behaviour (UBSan) for any allowlist, and a
 * write allowed only when every register is covered by one entry (an
 * independent reading of the documented rule, in 128-bit arithmetic). */
#include "web/webui_int.h"

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool covered(const json_t *list, const char *device, unsigned a)
{
	size_t i;
	json_t *e;

	json_array_foreach(list, i, e) {
		__int128 first, n = 1;
		const char *dev = NULL;

		if (json_is_integer(e)) {
			first = json_integer_value(e);
		} else if (json_is_object(e) && json_is_integer(json_object_get(e, "address"))) {
			first = json_integer_value(json_object_get(e, "address"));
			if (json_is_integer(json_object_get(e, "count")))
				n = json_integer_value(json_object_get(e, "count"));
			dev = json_string_value(json_object_get(e, "device"));
		} else {
			continue;
		}
		if (dev && strcmp(dev, "*") != 0 && strcmp(dev, device) != 0)
			continue;
		if ((__int128)a >= first && (__int128)a < first + n)
			return true;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *o = json_loadb((const char *)data, size, 0, NULL);
	const json_t *list;
	const char *device;
	json_int_t addr, count;
	bool ok, want = true;

	if (!json_is_object(o)) {
		json_decref(o);
		return 0;
	}
	list = json_object_get(o, "list");
	device = json_string_value(json_object_get(o, "device"));
	if (!device)
		device = "dev1";
	addr = json_integer_value(json_object_get(o, "address"));
	count = json_integer_value(json_object_get(o, "count"));
	addr = addr < 0 ? 0 : addr > 65535 ? 65535 : addr;
	count = count < 1 ? 1 : count > 123 ? 123 : count;
	if (addr + count > 65536)
		count = 65536 - addr;
	ok = webui_write_allowed(list, device, (unsigned)addr, (unsigned)count);
	for (unsigned a = (unsigned)addr; a < (unsigned)(addr + count); a++)
		want = want && covered(list, device, a);
	assert(ok == want);
	json_decref(o);
	return 0;
}
