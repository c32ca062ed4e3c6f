/* Raw Modbus reads and writes on a configured device
 * (/api/inverter/modbus...). */
#include "web/webui_int.h"
#include "devices/devconf.h"

/* ---- Modbus client for a configured device ------------------------------ */

/* Raw requests go through the running device's own client (raw_new); this
 * is the fallback for a device id that is in the settings but not in the
 * running set (settings not applied): a short-lived TCP client of its own.
 * Finds the settings entry of a device id and builds a client config from
 * it.  Strings point into the settings (valid until they change; the client
 * copies what it keeps).  Returns 0, -ENOENT, -ENOTSUP (serial rtu). */
static int device_client_config(struct egw *e, const char *id, struct mb_client_config *cfg,
                                uint8_t *ret_unit)
{
	const json_t *arr = settings_values(e->settings)->devices;
	size_t i;
	json_t *d;
	char cid[64];

	json_array_foreach(arr, i, d) {
		const char *conn;
		devconf_entry_id(d, i, cid, sizeof(cid));
		if (strcmp(cid, id) != 0)
			continue;
		conn = json_string_value(json_object_get(d, "connection"));
		if (!conn || strcmp(conn, "rtu") == 0 || strcmp(conn, "serial") == 0 ||
		    strcmp(json_string_value(json_object_get(d, "profile")) ?: "", "p1") == 0)
			return -ENOTSUP;
		*cfg = (struct mb_client_config){
			.kind = strcmp(conn, "rtu-over-tcp") == 0 ? MB_TRANSPORT_RTU_OVER_TCP
			                                          : MB_TRANSPORT_TCP,
			.host = json_string_value(json_object_get(d, "host")),
			.port = (uint16_t)json_integer_value(json_object_get(d, "port")),
			.timeout = RAW_TIMEOUT,
			.connect_timeout = RAW_TIMEOUT,
			.max_timeouts = 1,
		};
		if (!cfg->port)
			cfg->port = 502;
		*ret_unit = json_object_get(d, "unit_id")
			? (uint8_t)json_integer_value(json_object_get(d, "unit_id")) : 1;
		return 0;
	}
	return -ENOENT;
}

/* ---- raw read / write ----------------------------------------------------- */

struct type_name {
	const char *name;
	enum reg_type type;
	unsigned words;
};

static const struct type_name type_names[] = {
	{ "u16", REG_U16, 1 }, { "i16", REG_I16, 1 }, { "u32", REG_U32, 2 }, { "i32", REG_I32, 2 },
	{ "u64", REG_U64, 4 }, { "f32", REG_F32, 2 }, { "str", REG_STR, 1 },
};

/* Frees the answered raw ops.  The task belongs to the webui, not to an op:
 * the scheduler touches a task after its run() returns, so a task must never
 * free the struct it is embedded in (it did: a use after free under
 * valgrind on every GET /api/inverter/modbus). */
int webui_raw_gc(struct task *t, usec_t now)
{
	struct webui *u = container_of(t, struct webui, raw_gc);
	(void)now;

	for (struct raw_op **pp = &u->raw; *pp;) {
		struct raw_op *op = *pp;
		if (!op->done || op->pending) {
			pp = &op->next;
			continue;
		}
		*pp = op->next;
		u->nraw--;
		mb_client_free(op->client);
		free(op);
	}
	return 0;
}

/* Answers the suspended request and schedules the cleanup. */
static void raw_finish(struct raw_op *op, unsigned status, json_t *reply)
{
	int q;
	op->done = true;
	q = web_reply_json(&op->rq, status, reply);
	log_debug("webui", "raw reply %u queued: %d", status, q);
	webui_resume(op->u, op->rq.conn);
	loop_task_add(op->u->e->loop, &op->u->raw_gc, loop_now(op->u->e->loop));
}

static unsigned err_status(int err)
{
	if (err == -ETIMEDOUT)
		return 504;
	if (err == -ECANCELED)
		return 503; /* the device's connection was reset or the device removed */
	if (err <= -EGW_EMB_EXCEPTION_BASE && err > -(EGW_EMB_EXCEPTION_BASE + 256))
		return 502;
	return 502;
}

static void raw_read_done(void *ud, int err, const uint16_t *regs, unsigned count)
{
	struct raw_op *op = ud;
	const struct type_name *tn = NULL;
	json_t *raw, *vals, *reply;

	op->pending = false;
	if (!op->u) {
		free(op);
		return;
	}
	if (op->done)
		return;
	if (err < 0) {
		raw_finish(op, err_status(err), json_pack("{s:s,s:s,s:i}", "error", egw_strerror(err),
		                                           "device", op->device, "code", -err));
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(type_names); i++)
		if (type_names[i].type == op->type)
			tn = &type_names[i];
	raw = json_array();
	vals = json_array();
	for (unsigned i = 0; i < count; i++)
		json_array_append_new(raw, json_integer(regs[i]));
	if (op->type == REG_STR) {
		char s[2 * 125 + 1];
		reg_ascii(regs, count, s, sizeof(s));
		json_array_append_new(vals, json_string(s));
	} else {
		struct reg_def d = { .addr = op->addr, .fc = op->fc, .words = (uint8_t)tn->words,
		                     .type = op->type, .order = op->order, .scale = op->scale,
		                     .sf_addr = REG_NO_SF, .field = REG_NO_FIELD };
		for (unsigned i = 0; i + tn->words <= count; i += tn->words) {
			double v;
			if (reg_decode(&d, regs + i, &v) == 0 && isfinite(v))
				json_array_append_new(vals, json_real(v));
			else
				json_array_append_new(vals, json_null()); /* sentinel: unavailable */
		}
	}
	reply = json_pack("{s:s,s:i,s:i,s:i,s:s,s:s,s:f,s:o,s:O,s:O}", "device", op->device,
	                  "fc", op->fc, "address", op->addr, "count", count, "type", tn->name,
	                  "order", op->order == WO_LITTLE ? "little" : "big", "scale", op->scale,
	                  "raw", raw, "values", vals, "value",
	                  json_array_size(vals) ? json_array_get(vals, 0) : json_null());
	json_decref(vals);
	raw_finish(op, 200, reply);
}

static void raw_write_done(void *ud, int err)
{
	struct raw_op *op = ud;

	op->pending = false;
	if (!op->u) {
		free(op);
		return;
	}
	if (op->done)
		return;
	if (err < 0) {
		log_warn("webui", "modbus write to %s at %u failed: %s", op->device, op->addr,
		         egw_strerror(err));
		raw_finish(op, err_status(err), json_pack("{s:s,s:s,s:i}", "error", egw_strerror(err),
		                                           "device", op->device, "code", -err));
		return;
	}
	raw_finish(op, 200, json_pack("{s:s,s:i,s:i,s:i,s:b}", "device", op->device, "fc", op->fc,
	                              "address", op->addr, "count", op->count, "written", 1));
}

/* A new op for device and the client to queue it on (*ret_client, valid
 * only until the handler returns): the running device's own client, or, for
 * a device only in the settings, a client of the op's own. */
static struct raw_op *raw_new(struct web_request *rq, const char *device, char *err, size_t errlen,
                              struct mb_client **ret_client, uint8_t *ret_unit, int *ret_status)
{
	struct webui *u = webui_of(rq);
	struct mb_client_config cfg;
	struct raw_op *op;
	struct device *d;
	int r;

	*ret_status = 400;
	if (u->nraw >= WEBUI_RAW_PENDING_MAX) {
		*ret_status = 503;
		snprintf(err, errlen, "too many raw Modbus requests in flight");
		return NULL;
	}
	d = devices_find(rq->egw->devices, device);
	if (d && !device_client(d)) {
		*ret_status = 400;
		snprintf(err, errlen, "device: a P1 meter has no Modbus registers");
		return NULL;
	}
	if (d) {
		op = calloc(1, sizeof(*op));
		if (!op) {
			*ret_status = 500;
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
		*ret_client = device_client(d);
		*ret_unit = device_unit(d);
		goto fill;
	}
	r = device_client_config(rq->egw, device, &cfg, ret_unit);
	if (r == -ENOENT) {
		*ret_status = 404;
		snprintf(err, errlen, "device: no device with this id");
		return NULL;
	}
	if (r < 0) {
		snprintf(err, errlen, "device: not running, and a serial (rtu) line is only reached "
		         "through its running device");
		return NULL;
	}
	op = calloc(1, sizeof(*op));
	if (!op) {
		*ret_status = 500;
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r = mb_client_new(u->e->loop, &cfg, &op->client);
	if (r < 0) {
		free(op);
		*ret_status = 500;
		snprintf(err, errlen, "modbus client: %s", egw_strerror(r));
		return NULL;
	}
	*ret_client = op->client;
fill:
	op->u = u;
	op->rq = *rq;
	op->rq.body = NULL;
	op->rq.body_len = 0;
	snprintf(op->device, sizeof(op->device), "%s", device);
	return op;
}

/* The request is queued: its callback will run. */
static void raw_start(struct webui *u, struct raw_op *op)
{
	op->pending = true;
	op->next = u->raw;
	u->raw = op;
	u->nraw++;
	MHD_suspend_connection(op->rq.conn);
}

/* The only device when exactly one is configured. */
static const char *default_device(struct egw *e)
{
	const json_t *arr = settings_values(e->settings)->devices;
	if (json_array_size(arr) != 1)
		return NULL;
	return json_string_value(json_object_get(json_array_get(arr, 0), "id"))
		? json_string_value(json_object_get(json_array_get(arr, 0), "id")) : "dev0";
}

int webui_h_modbus_get(struct web_request *rq)
{
	return web_reply_error(rq, 405, "raw reads are POST /api/inverter/modbus/read with the "
	                       "token and a JSON body {device, fc, address, count, type, order, "
	                       "scale}", NULL);
}

/* An optional integer member of o in [min, max] (*ret unchanged when absent).
 * Returns 0 or -EINVAL. */
int webui_opt_uint(const json_t *o, const char *key, unsigned long min, unsigned long max,
                    unsigned long *ret)
{
	const json_t *v = json_object_get(o, key);

	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)min ||
	    json_integer_value(v) > (json_int_t)max)
		return -EINVAL;
	*ret = (unsigned long)json_integer_value(v);
	return 0;
}

int webui_h_modbus_read(struct web_request *rq)
{
	struct webui *u = webui_of(rq);
	const struct type_name *tn = &type_names[0];
	unsigned long fc = 3, addr = 65536, count;
	enum word_order order = WO_BIG;
	double scale = 1;
	struct mb_client *client;
	struct raw_op *op;
	const json_t *v;
	const char *device, *s;
	char err[160], who[64];
	uint8_t unit;
	int status, r;
	json_t *o;

	o = webui_body_json(rq, err, sizeof(err));
	if (!o)
		return web_reply_error(rq, 400, err, "body");
	v = json_object_get(o, "device");
	if (v && !json_is_string(v)) {
		json_decref(o);
		return web_reply_error(rq, 400, "device: a device id (string)", "device");
	}
	device = v ? json_string_value(v) : default_device(rq->egw);
	if (!device) {
		json_decref(o);
		return web_reply_error(rq, 400, "device: required (a device id)", "device");
	}
	if (webui_opt_uint(o, "fc", 3, 4, &fc) < 0) {
		json_decref(o);
		return web_reply_error(rq, 400, "fc: must be 3 (holding) or 4 (input)", "fc");
	}
	if (webui_opt_uint(o, "address", 0, 65535, &addr) < 0 || addr > 65535) {
		json_decref(o);
		return web_reply_error(rq, 400, "address: required, 0..65535", "address");
	}
	if ((v = json_object_get(o, "type"))) {
		s = json_string_value(v);
		tn = NULL;
		for (size_t i = 0; s && i < ARRAY_SIZE(type_names); i++)
			if (strcmp(type_names[i].name, s) == 0)
				tn = &type_names[i];
		if (!tn) {
			json_decref(o);
			return web_reply_error(rq, 400, "type: one of u16, i16, u32, i32, u64, f32, str",
			                       "type");
		}
	}
	count = tn->words;
	if (webui_opt_uint(o, "count", 1, 125, &count) < 0 || count < tn->words || addr + count > 65536) {
		json_decref(o);
		return web_reply_error(rq, 400, "count: 1..125, enough for the type, not past 65535",
		                       "count");
	}
	if ((v = json_object_get(o, "order"))) {
		s = json_string_value(v);
		if (s && (strcmp(s, "big") == 0 || strcmp(s, "abcd") == 0))
			order = WO_BIG;
		else if (s && (strcmp(s, "little") == 0 || strcmp(s, "cdab") == 0))
			order = WO_LITTLE;
		else {
			json_decref(o);
			return web_reply_error(rq, 400, "order: big (ABCD) or little (CDAB)", "order");
		}
	}
	if ((v = json_object_get(o, "scale"))) {
		scale = json_number_value(v);
		if (!json_is_number(v) || !isfinite(scale) || scale == 0) {
			json_decref(o);
			return web_reply_error(rq, 400, "scale: a non-zero number", "scale");
		}
	}
	if (!webui_limit(&u->read_limit, rq, loop_now(u->e->loop))) {
		json_decref(o);
		return web_reply_error(rq, 429, "too many raw reads: at most 10 a second from one "
		                       "address, 20 in all", NULL);
	}
	op = raw_new(rq, device, err, sizeof(err), &client, &unit, &status);
	json_decref(o);
	if (!op)
		return web_reply_error(rq, (unsigned)status, err, status == 400 || status == 404 ? "device" : NULL);
	op->fc = (uint8_t)fc;
	op->addr = (uint16_t)addr;
	op->count = (uint16_t)count;
	op->type = (uint8_t)tn->type;
	op->order = (uint8_t)order;
	op->scale = scale;
	r = mb_client_read(client, unit, op->fc, op->addr, op->count, raw_read_done, op);
	if (r < 0) {
		mb_client_free(op->client);
		free(op);
		return web_reply_error(rq, r == -ENOBUFS ? 503 : 500, egw_strerror(r), NULL);
	}
	webui_client_addr(rq, who, sizeof(who));
	log_info("webui", "modbus read by client %s (token): device %s unit %u fc %u address %lu "
	         "count %lu", who, op->device, unit, op->fc, addr, count);
	u->raw_reads++;
	raw_start(u, op);
	return MHD_YES;
}

/* The body of POST /api/inverter/modbus: {"device"?: id, "address": 0..65535,
 * "values": [1..123 registers] or "value": one}, each value 0..65535 (or
 * -32768..-1, written as its 16-bit two's complement).  On success returns 0
 * with *ret_device (borrowed from o, NULL when absent), the address and the
 * values; otherwise -EINVAL with the field at fault and a message. */
int webui_raw_write_parse(const json_t *o, const char **ret_device, unsigned long *ret_addr,
                           uint16_t values[123], unsigned *ret_count, const char **ret_field,
                           const char **ret_msg)
{
	static const char vmsg[] = "values: 1..123 register values (0..65535)";
	const json_t *d = json_object_get(o, "device");
	json_t *v;
	unsigned long addr;
	unsigned count = 0;

	if (d && !json_is_string(d)) {
		*ret_field = "device";
		*ret_msg = "device: a device id (string)";
		return -EINVAL;
	}
	v = json_object_get(o, "address");
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 65535) {
		*ret_field = "address";
		*ret_msg = "address: required, 0..65535";
		return -EINVAL;
	}
	addr = (unsigned long)json_integer_value(v);
	v = json_object_get(o, "values");
	if (!v && json_object_get(o, "value"))
		v = json_pack("[O]", json_object_get(o, "value"));
	else
		json_incref(v);
	if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > 123) {
		json_decref(v);
		*ret_field = "values";
		*ret_msg = vmsg;
		return -EINVAL;
	}
	for (size_t i = 0; i < json_array_size(v); i++) {
		json_t *x = json_array_get(v, i);
		if (!json_is_integer(x) || json_integer_value(x) < -32768 ||
		    json_integer_value(x) > 65535) {
			json_decref(v);
			*ret_field = "values";
			*ret_msg = vmsg;
			return -EINVAL;
		}
		values[count++] = (uint16_t)json_integer_value(x);
	}
	json_decref(v);
	if (addr + count > 65536) {
		*ret_field = "values";
		*ret_msg = "values: past register 65535";
		return -EINVAL;
	}
	*ret_device = d ? json_string_value(d) : NULL;
	*ret_addr = addr;
	*ret_count = count;
	return 0;
}

int webui_h_modbus_post(struct web_request *rq)
{
	struct webui *u = webui_of(rq);
	struct egw *e = rq->egw;
	char err[256], who[64], vals_text[200];
	uint16_t values[123];
	unsigned count = 0;
	unsigned long addr = 0;
	const char *device, *field = NULL, *msg = NULL;
	json_t *o;
	struct mb_client *client;
	struct raw_op *op;
	uint8_t unit;
	int status, r;
	size_t off = 0;

	o = webui_body_json(rq, err, sizeof(err));
	if (!o)
		return web_reply_error(rq, 400, err, "body");
	if (webui_raw_write_parse(o, &device, &addr, values, &count, &field, &msg) < 0) {
		json_decref(o);
		return web_reply_error(rq, 400, msg, field);
	}
	if (!device)
		device = default_device(e);
	if (!device) {
		json_decref(o);
		return web_reply_error(rq, 400, "device: required (a device id)", "device");
	}
	for (unsigned i = 0; i < count && off < sizeof(vals_text); i++)
		off += (size_t)snprintf(vals_text + off, sizeof(vals_text) - off, "%s%u",
		                        i ? "," : "", values[i]);
	webui_client_addr(rq, who, sizeof(who));
	if (!devconf_write_allowed(settings_values(e->settings)->modbus_write_allowlist, device,
	                   (unsigned)addr, count)) {
		u->raw_refused++;
		log_warn("webui", "modbus write refused (not on modbus_write_allowlist): client %s, "
		         "device %s, address %lu, %u register(s)", who, device, addr, count);
		json_decref(o);
		return web_reply_error(rq, 403, "address: not on the modbus_write_allowlist setting",
		                       "address");
	}
	op = raw_new(rq, device, err, sizeof(err), &client, &unit, &status);
	if (!op) {
		json_decref(o);
		return web_reply_error(rq, (unsigned)status, err, status == 400 || status == 404 ? "device" : NULL);
	}
	json_decref(o);
	op->write = true;
	op->addr = (uint16_t)addr;
	op->count = (uint16_t)count;
	op->fc = count == 1 ? 6 : 16;
	r = mb_client_write(client, unit, op->fc, op->addr, values, (uint16_t)count,
	                    raw_write_done, op);
	if (r < 0) {
		mb_client_free(op->client);
		free(op);
		return web_reply_error(rq, r == -ENOBUFS ? 503 : 500, egw_strerror(r), NULL);
	}
	/* The audit line: who wrote what where, before it happens. */
	log_info("webui", "modbus write by client %s (token): device %s unit %u fc %u address %lu "
	         "values [%s]", who, op->device, unit, op->fc, addr, vals_text);
	u->raw_writes++;
	raw_start(u, op);
	return MHD_YES;
}
