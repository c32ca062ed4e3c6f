/* Fuzz a device object as POST /api/device receives it, through the one
 * device-config parser (devices/devconf.h) and the settings schema that
 * uses it.  Checks: no crash; a refusal names a key of the device and says
 * why; the settings schema and the device parser agree on every input (the
 * rule that keeps the API from saving what the device layer refuses). */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "config/settings.h"
#include "devices/devconf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct settings *fuzz_settings(void)
{
	static struct settings *s;
	if (!s && settings_new("/nonexistent/egw-fuzz/settings.json", &s) < 0)
		s = NULL;
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct settings *s = fuzz_settings();
	struct settings_error se = { 0 };
	struct devconf_error de = { 0 };
	json_t *o, *arr;
	int r1, r2;

	if (!s || size > 65536)
		return 0;
	o = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
	if (!o)
		return 0;
	arr = json_array();
	json_array_append(arr, o);
	/* A second device, so the list rules (ids, addresses, shared lines) run. */
	json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:i}", "connection", "tcp", "host",
					      "127.0.0.1", "profile", "sunspec", "unit_id", 7));
	r1 = devconf_validate_list(arr, &de);
	r2 = settings_set(s, "devices", arr, &se);
	if (r1 < 0) {
		assert(r1 == -EGW_ESCHEMA || r1 == -EGW_EPROFILE);
		assert(strncmp(de.key, "devices", 7) == 0 && de.msg[0]);
	}
	assert((r1 < 0) == (r2 < 0));
	if (r2 < 0)
		assert(r2 == -EGW_ESCHEMA && strncmp(se.key, "devices", 7) == 0 && se.msg[0]);
	json_decref(arr);
	json_decref(o);
	return 0;
}
