/* Fuzz the body of POST /api/device (and DELETE /api/device's {"id": ...})
 * through the functions the routes call: body_json, device_validate, then the
 * devices array written with settings_set as devices_commit does.  The web UI
 * module keeps those functions static, so this file compiles webui.c into
 * itself (the archive's copy of webui.o is then never linked).
 * Checks: no crash; a rejected body says why; a body device_validate accepts
 * is written by settings_set, or refused by the schema naming a field of the
 * new entry (never another error). */
/* clang warns about style in the included module that gcc accepts. */
#ifdef __clang__
#pragma clang diagnostic ignored "-Wstring-concatenation"
#endif
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
		/* field is the offending key, which may be "" (an empty key). */
		assert(r == -EGW_ESCHEMA && err[0]);
	} else {
		struct settings_error se = { 0 };
		char msg[512];

		if (!json_object_get(o, "id"))
			json_object_set_new(o, "id", json_string("dev1"));
		arr = json_array();
		json_array_append(arr, o);
		r = settings_set(s, "devices", arr, &se);
		/* device_validate skips the serial fields of a tcp device that the
		 * settings schema still type-checks (found by this fuzzer, see
		 * corpus/device_body/tcp_with_bad_baudrate): the route then answers
		 * 400 naming the field.  What must hold: refused only as a schema
		 * error that names a key of the new entry. */
		if (r < 0) {
			(void)settings_error_str(&se, msg, sizeof(msg));
			assert(r == -EGW_ESCHEMA && strncmp(se.key, "devices[0].", 11) == 0);
		}
		json_decref(arr);
	}
	json_decref(o);
	free(body);
	return 0;
}
