/* Fuzz the body of POST /api/device (and DELETE /api/device's {"id": ...})
 * through the functions the routes call: body_json, device_validate, then the
 * devices array written with settings_set as devices_commit does.  The web UI
 * module keeps those functions static, so this file compiles webui.c into
 * itself (the archive's copy of webui.o is then never linked).
 * Checks: no crash; a rejected body names the field; a body device_validate
 * accepts is also accepted by the settings schema (the two validators agree),
 * so the route never answers 400 after its own validation passed. */
#include "web/webui.c"

#include <assert.h>

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
	struct web_request rq = { 0 };
	char err[256], field[64] = "", *body;
	json_t *o, *arr;
	int r;

	if (!s || size > 65536)
		return 0;
	body = malloc(size + 1);
	if (!body)
		return 0;
	memcpy(body, data, size);
	body[size] = 0;
	rq.body = body;
	rq.body_len = size;
	o = body_json(&rq, err, sizeof(err));
	if (!o) {
		assert(err[0]);
		free(body);
		return 0;
	}
	/* DELETE's body: only "id" is read. */
	(void)json_string_value(json_object_get(o, "id"));

	r = device_validate(o, field, sizeof(field), err, sizeof(err));
	if (r < 0) {
		assert(r == -EGW_ESCHEMA && field[0] && err[0]);
	} else {
		struct settings_error se = { 0 };
		char msg[512];

		if (!json_object_get(o, "id"))
			json_object_set_new(o, "id", json_string("dev1"));
		arr = json_array();
		json_array_append(arr, o);
		r = settings_set(s, "devices", arr, &se);
		if (r < 0)
			fprintf(stderr, "device_validate accepted, settings refused: %s\n",
				settings_error_str(&se, msg, sizeof(msg)));
		assert(r == 0);
		json_decref(arr);
	}
	json_decref(o);
	free(body);
	return 0;
}
