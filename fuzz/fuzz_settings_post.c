/* Fuzz the body of POST /api/settings through the functions the route calls:
 * json_loadb (JSON_REJECT_DUPLICATES) then settings_patch on a fresh
 * settings object, as h_settings_post does (without the save).
 * Checks: no crash; a rejected patch leaves the document unchanged and says
 * why; an accepted one leaves an effective document that validates again,
 * and the masked view never shows a non-empty mqtt.password. */
#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/err.h"
#include "config/settings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_masked(const struct settings *s)
{
	json_t *m = settings_to_json(s, true);
	const char *pw = settings_values(s)->mqtt_password;
	const char *shown = json_string_value(json_object_get(json_object_get(m, "mqtt"), "password"));

	assert(m);
	if (pw && *pw)
		assert(shown && strcmp(shown, "***") == 0);
	json_decref(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct settings_error err = { 0 };
	struct settings *s = NULL;
	json_error_t je;
	json_t *patch, *before, *after;
	int r;

	patch = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
	if (!patch)
		return 0;
	if (settings_new("/nonexistent/egw-fuzz/settings.json", &s) < 0) {
		json_decref(patch);
		return 0;
	}
	(void)settings_validate(patch, &err);
	memset(&err, 0, sizeof(err));
	before = settings_to_json(s, false);
	r = settings_patch(s, patch, &err);
	after = settings_to_json(s, false);
	assert(before && after);
	if (r < 0) {
		assert(r == -EGW_ESCHEMA || r == -ENOMEM);
		if (r == -EGW_ESCHEMA)
			assert(err.msg[0] != '\0');
		assert(json_equal(before, after));
	} else {
		struct settings_error e2 = { 0 };
		assert(settings_validate(after, &e2) == 0);
		check_masked(s);
	}
	json_decref(before);
	json_decref(after);
	json_decref(patch);
	settings_free(s);
	return 0;
}
