/* The device API: GET/POST/DELETE /api/device, /api/device/supported,
 * /api/frequency. */
#include "web/webui_int.h"

/* ---- device API --------------------------------------------------------- */

int webui_h_device_get(struct web_request *rq)
{
	struct egw *e = rq->egw;
	json_t *arr = e->devices ? devices_to_json(e->devices) : json_array();

	return web_reply_json(rq, 200, arr ? json_pack("{s:o}", "devices", arr) : NULL);
}

/* The device list through the one settings path: validated by the same
 * parser the device layer runs (devices/devconf.h), applied, then saved.
 * Answered ok_status only once applied; a refusal saves nothing and names
 * the field: for the device being added (index `focus`) the bare field
 * ("serial_port"), otherwise the settings key ("devices[2].host"). */
static int devices_commit(struct web_request *rq, json_t *arr, unsigned ok_status, json_t *reply,
			  long focus, const char *id, const char *done)
{
	struct egw *e = rq->egw;
	struct settings_error err = { 0 };
	char prefix[32], field[sizeof(err.key)];
	int r;

	/* A patch, not a set: the API's list is the newer one and replaces a
	 * --set devices=... given on the command line (the demo starts that way). */
	json_t *patch = json_pack("{sO}", "devices", arr);
	r = patch ? e->settings_commit(e, patch, &err) : -ENOMEM;
	json_decref(patch);
	if (r == -ENOMEM) {
		json_decref(reply);
		return web_reply_error(rq, 500, "out of memory", NULL);
	}
	if (r == -EGW_ESCHEMA) {
		json_decref(reply);
		snprintf(field, sizeof(field), "%s", err.key);
		int n = snprintf(prefix, sizeof(prefix), "devices[%ld].", focus);
		if (focus >= 0 && strncmp(err.key, prefix, (size_t)n) == 0)
			snprintf(field, sizeof(field), "%s", err.key + n);
		else if (focus >= 0 && strcmp(err.key, prefix) == 0)
			snprintf(field, sizeof(field), "body");
		char msg[sizeof(err.key) + sizeof(err.msg) + 4];
		snprintf(msg, sizeof(msg), "%s: %s", field, err.msg);
		return web_reply_error(rq, 400, msg, field);
	}
	if (r < 0) {
		json_decref(reply);
		return web_reply_error(rq, 500,
				       err.msg[0] ? err.msg : "could not save the settings", NULL);
	}
	log_info("webui", "device %s %s", id, done);
	return web_reply_json(rq, ok_status, reply);
}

static bool id_taken(const json_t *arr, const char *id)
{
	size_t i;
	json_t *d;
	char cur[DEVCONF_ID_LEN];

	json_array_foreach (arr, i, d) {
		devconf_entry_id(d, i, cur, sizeof(cur));
		if (strcmp(cur, id) == 0)
			return true;
	}
	return false;
}

/* The id a unit with this serial last had (<state-dir>/device-serials.json),
 * when no device in arr has it now. */
static bool reuse_id(const json_t *serials, const json_t *arr, const char *serial, char *buf,
		     size_t len)
{
	const char *key;
	json_t *v;

	json_object_foreach ((json_t *)serials, key, v) {
		if (json_is_string(v) && strcmp(json_string_value(v), serial) == 0 &&
		    devconf_id_ok(key) && !id_taken(arr, key)) {
			snprintf(buf, len, "%s", key);
			return true;
		}
	}
	return false;
}

int webui_h_device_post(struct web_request *rq)
{
	struct egw *e = rq->egw;
	char err[256], id[DEVCONF_ID_LEN];
	const json_t *cur;
	json_t *o, *arr, *reply;
	long index;
	int r;

	o = webui_body_json(rq, err, sizeof(err));
	if (!o)
		return web_reply_error(rq, 400, err, "body");
	if (!json_is_object(o)) {
		json_decref(o);
		return web_reply_error(rq, 400, "body: expected a JSON object (a device)", "body");
	}
	/* "serial": what a scan found there (not saved).  A device already
	 * identified with that serial is this one: refused, so that one unit is
	 * never polled, published and counted twice. */
	char serial[DEVCONF_NAME_LEN] = "";
	if (json_object_get(o, "serial")) {
		const char *s = json_string_value(json_object_get(o, "serial"));
		unsigned n = devices_count(e->devices);
		if (!s) {
			json_decref(o);
			return web_reply_error(rq, 400, "serial: expected a string", "serial");
		}
		for (unsigned i = 0; *s && i < n; i++) {
			struct device *d = devices_get(e->devices, i);
			if (strcmp(device_serial(d), s) == 0) {
				snprintf(err, sizeof(err),
					 "serial: device %s is this device (serial %.60s)",
					 device_id(d), s);
				json_decref(o);
				return web_reply_error(rq, 409, err, "serial");
			}
		}
		snprintf(serial, sizeof(serial), "%s", s);
		json_object_del(o, "serial");
	}
	cur = settings_values(e->settings)->devices;
	arr = json_is_array(cur) ? json_deep_copy(cur) : json_array();
	if (!arr) {
		json_decref(o);
		return web_reply_error(rq, 500, "out of memory", NULL);
	}
	if (json_array_size(arr) >= DEVCONF_MAX) {
		json_decref(o);
		json_decref(arr);
		return web_reply_error(rq, 400, "devices: at most 32 devices", "devices");
	}
	if (json_is_string(json_object_get(o, "id"))) {
		snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(o, "id")));
		if (id_taken(arr, id)) {
			json_decref(o);
			json_decref(arr);
			return web_reply_error(rq, 400, "id: a device with this id exists", "id");
		}
	} else if (!json_object_get(o, "id") && *serial &&
		   reuse_id(e->dev_serials, arr, serial, id, sizeof(id))) {
		/* The unit was here before: back under its id, so its history
		 * (HA entities, totals) carries on. */
		json_object_set_new(o, "id", json_string(id));
	} else if (!json_object_get(o, "id")) {
		/* A stable id, so removing another device never renames this one. */
		for (unsigned n = 1;; n++) {
			snprintf(id, sizeof(id), "dev%u", n);
			if (!id_taken(arr, id))
				break;
		}
		json_object_set_new(o, "id", json_string(id));
	}
	index = (long)json_array_size(arr);
	snprintf(id, sizeof(id), "%s",
		 json_is_string(json_object_get(o, "id"))
			 ? json_string_value(json_object_get(o, "id"))
			 : "?");
	reply = json_pack("{s:O}", "device", o);
	json_array_append_new(arr, o);
	r = devices_commit(rq, arr, 201, reply, index, id, "added");
	json_decref(arr);
	return r;
}

int webui_h_device_delete(struct web_request *rq)
{
	struct egw *e = rq->egw;
	const char *id = webui_query(rq, "id");
	json_t *body = NULL, *arr;
	const json_t *cur;
	char err[256], cid[64];
	size_t i;
	json_t *d;
	int r;

	if (!id && rq->body_len > 0) {
		body = webui_body_json(rq, err, sizeof(err));
		if (!body)
			return web_reply_error(rq, 400, err, "body");
		id = json_string_value(json_object_get(body, "id"));
	}
	if (!id || !*id) {
		json_decref(body);
		return web_reply_error(rq, 400, "id: required (?id= or {\"id\": ...})", "id");
	}
	cur = settings_values(e->settings)->devices;
	arr = json_is_array(cur) ? json_deep_copy(cur) : json_array();
	if (!arr) {
		json_decref(body);
		return web_reply_error(rq, 500, "out of memory", NULL);
	}
	json_array_foreach (arr, i, d) {
		devconf_entry_id(d, i, cid, sizeof(cid));
		if (strcmp(cid, id) == 0)
			break;
	}
	if (i == json_array_size(arr)) {
		r = web_reply_error(rq, 404, "no device with this id", "id");
		json_decref(arr);
		json_decref(body);
		return r;
	}
	/* Entries after it without an explicit id would shift: pin their ids. */
	for (size_t k = i + 1; k < json_array_size(arr); k++) {
		json_t *x = json_array_get(arr, k);
		if (!json_object_get(x, "id")) {
			devconf_entry_id(x, k, cid, sizeof(cid));
			json_object_set_new(x, "id", json_string(cid));
		}
	}
	snprintf(cid, sizeof(cid), "%s", id);
	json_array_remove(arr, i);
	json_decref(body);
	r = devices_commit(rq, arr, 200, json_pack("{s:s}", "deleted", cid), -1, cid, "removed");
	json_decref(arr);
	return r;
}

/* Profile p1 has no register table: the meter's telegram fields it maps
 * (devices/p1.h), and the lines it comes on. */
static const enum reading_field p1_reads[] = {
	RF_METER_W,
	RF_METER_L1_V,
	RF_METER_L1_A,
	RF_METER_L1_W,
	RF_METER_L2_V,
	RF_METER_L2_A,
	RF_METER_L2_W,
	RF_METER_L3_V,
	RF_METER_L3_A,
	RF_METER_L3_W,
	RF_METER_TOTAL_IMPORT_WH,
	RF_METER_TOTAL_EXPORT_WH,
	RF_GAS_TOTAL_M3,
	RF_WATER_TOTAL_M3,
};

static json_t *p1_supported(void)
{
	json_t *reads = json_array();

	for (size_t k = 0; reads && k < ARRAY_SIZE(p1_reads); k++) {
		char name[64];
		snprintf(name, sizeof(name), "%s.%s", reading_fields[p1_reads[k]].group,
			 reading_fields[p1_reads[k]].name);
		json_array_append_new(reads, json_string(name));
	}
	/* The line settings: DSMR 4/5 and the Swedish HAN port at 115200 8N1,
	 * DSMR 2.2 and 3 at 9600 7E1. */
	return json_pack(
		"{s:s,s:s,s:s,s:s,s:o,s:b,s:b,s:[s,s],s:{s:i,s:s,s:i,s:i,s:{s:i,s:s,s:i,s:i}}}",
		"name", "p1", "brand", "P1 smart meter (DSMR / HAN)", "family", "p1", "dtype",
		"meter", "reads", reads ? reads : json_array(), "identity", true, "sunspec", false,
		"connections", "tcp", "serial", "serial", "baudrate", 115200, "parity", "N",
		"databits", 8, "stopbits", 1, "dsmr22", "baudrate", 9600, "parity", "E", "databits",
		7, "stopbits", 1);
}

int webui_h_supported(struct web_request *rq)
{
	unsigned n;
	const struct profile *const *all = profile_all(&n);
	json_t *arr = json_array();

	for (unsigned i = 0; arr && i < n; i++) {
		const struct profile *p = all[i];
		json_t *reads = json_array();
		uint64_t seen = 0;
		/* a brand read through the SunSpec walk reads what the walk of its
		 * documented chain decodes */
		struct profile *walked = NULL;
		if (p->ss_models &&
		    sunspec_build_as(p, p->sunspec_base, p->ss_models, p->nss_models, &walked) < 0)
			walked = NULL;
		const struct profile *rp = walked ? walked : p;

		for (unsigned k = 0; reads && k < rp->nregs; k++) {
			int f = rp->regs[k].field;
			char name[64];
			if (f < 0 || f >= RF_COUNT || (seen & (UINT64_C(1) << f)))
				continue;
			seen |= UINT64_C(1) << f;
			snprintf(name, sizeof(name), "%s.%s", reading_fields[f].group,
				 reading_fields[f].name);
			json_array_append_new(reads, json_string(name));
		}
		profile_free(walked);
		json_array_append_new(
			arr,
			json_pack("{s:s,s:s,s:s,s:s,s:o,s:b,s:b}", "name", p->name, "brand",
				  p->brand ? p->brand : "", "family", p->family ? p->family : "",
				  "dtype", p->dtype ? p->dtype : "", "reads",
				  reads ? reads : json_array(), "identity", p->serial != NULL,
				  "sunspec",
				  p->sunspec_base != 0 || strcmp(p->name, "sunspec") == 0));
	}
	if (arr)
		json_array_append_new(arr, p1_supported());
	return web_reply_json(rq, 200, arr ? json_pack("{s:o}", "profiles", arr) : NULL);
}

int webui_h_frequency(struct web_request *rq)
{
	struct egw *e = rq->egw;

	if (!e->devices)
		return web_reply_json(rq, 200, json_pack("{s:n,s:n}", "device", "latest"));
	return web_reply_json(rq, 200, devices_frequency_json(e->devices));
}
