/* Raw Modbus reads and writes on a running device (/api/inverter/modbus...):
 * the requests' bodies and the answers.  The Modbus side is the device
 * layer's (devices/raw.h). */
#include "web/webui_int.h"
#include "devices/devconf.h"

/* ---- raw read / write ----------------------------------------------------- */

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
	const struct raw_read *rr = &op->rr;
	json_t *raw, *vals, *reply;

	op->pending = false;
	if (!op->u) {
		free(op);
		return;
	}
	if (op->done)
		return;
	if (err < 0) {
		raw_finish(op, err_status(err),
			   json_pack("{s:s,s:s,s:i}", "error", egw_strerror(err), "device",
				     op->device, "code", -err));
		return;
	}
	raw = json_array();
	for (unsigned i = 0; raw && i < count; i++)
		json_array_append_new(raw, json_integer(regs[i]));
	vals = raw_decode(rr, regs, count);
	reply = raw && vals
		? json_pack("{s:s,s:i,s:i,s:i,s:s,s:s,s:f,s:O,s:O,s:O}", "device", op->device, "fc",
			    rr->fc, "address", rr->addr, "count", count, "type",
			    raw_type_name(rr->type), "order",
			    rr->order == WO_LITTLE ? "little" : "big", "scale", rr->scale, "raw",
			    raw, "values", vals, "value",
			    json_array_size(vals) ? json_array_get(vals, 0) : json_null())
		: NULL;
	json_decref(raw);
	json_decref(vals);
	if (!reply) {
		raw_finish(op, 500, json_pack("{s:s}", "error", "out of memory"));
		return;
	}
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
		log_warn("webui", "modbus write to %s at %u failed: %s", op->device, op->rr.addr,
			 egw_strerror(err));
		raw_finish(op, err_status(err),
			   json_pack("{s:s,s:s,s:i}", "error", egw_strerror(err), "device",
				     op->device, "code", -err));
		return;
	}
	raw_finish(op, 200,
		   json_pack("{s:s,s:i,s:i,s:i,s:b}", "device", op->device, "fc", op->rr.fc,
			     "address", op->rr.addr, "count", op->rr.count, "written", 1));
}

/* A new op for device, or NULL with the status and message to answer. */
static struct raw_op *raw_new(struct web_request *rq, const char *device, char *err, size_t errlen,
			      int *ret_status)
{
	struct webui *u = webui_of(rq);
	struct raw_op *op;

	if (u->nraw >= WEBUI_RAW_PENDING_MAX) {
		*ret_status = 503;
		snprintf(err, errlen, "too many raw Modbus requests in flight");
		return NULL;
	}
	op = calloc(1, sizeof(*op));
	if (!op) {
		*ret_status = 500;
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	op->u = u;
	op->rq = *rq;
	op->rq.body = NULL;
	op->rq.body_len = 0;
	snprintf(op->device, sizeof(op->device), "%s", device);
	return op;
}

/* Answers a request devices_raw_read/write did not queue. */
static int raw_refused(struct web_request *rq, int r)
{
	if (r == -ENOENT)
		return web_reply_error(rq, 404, "device: no running device with this id", "device");
	if (r == -ENOTSUP)
		return web_reply_error(rq, 400, "device: a P1 meter has no Modbus registers",
				       "device");
	return web_reply_error(rq, r == -ENOBUFS ? 503 : 500, egw_strerror(r), NULL);
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

/* The only device when exactly one is configured (its id into buf), else
 * NULL. */
static const char *default_device(struct egw *e, char *buf, size_t len)
{
	const json_t *arr = settings_values(e->settings)->devices;
	if (json_array_size(arr) != 1)
		return NULL;
	devconf_entry_id(json_array_get(arr, 0), 0, buf, len);
	return buf;
}

int webui_h_modbus_get(struct web_request *rq)
{
	return web_reply_error(rq, 405,
			       "raw reads are POST /api/inverter/modbus/read with the "
			       "token and a JSON body {device, fc, address, count, type, order, "
			       "scale}",
			       NULL);
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
	unsigned long fc = 3, addr = 65536, count;
	uint8_t type = REG_U16;
	unsigned words = 1;
	enum word_order order = WO_BIG;
	double scale = 1;
	struct raw_op *op;
	const json_t *v;
	const char *device, *s;
	char err[160], who[64], dflt[64];
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
	device = v ? json_string_value(v) : default_device(rq->egw, dflt, sizeof(dflt));
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
		if (raw_type_parse(json_string_value(v), &type, &words) < 0) {
			json_decref(o);
			return web_reply_error(rq, 400, "type: one of " RAW_TYPE_NAMES, "type");
		}
	}
	count = words;
	if (webui_opt_uint(o, "count", 1, 125, &count) < 0 || count < words ||
	    addr + count > 65536) {
		json_decref(o);
		return web_reply_error(
			rq, 400, "count: 1..125, enough for the type, not past 65535", "count");
	}
	if ((v = json_object_get(o, "order"))) {
		s = json_string_value(v);
		if (s && (strcmp(s, "big") == 0 || strcmp(s, "abcd") == 0))
			order = WO_BIG;
		else if (s && (strcmp(s, "little") == 0 || strcmp(s, "cdab") == 0))
			order = WO_LITTLE;
		else {
			json_decref(o);
			return web_reply_error(rq, 400, "order: big (ABCD) or little (CDAB)",
					       "order");
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
		return web_reply_error(rq, 429,
				       "too many raw reads: at most 10 a second from one "
				       "address, 20 in all",
				       NULL);
	}
	op = raw_new(rq, device, err, sizeof(err), &status);
	json_decref(o);
	if (!op)
		return web_reply_error(rq, (unsigned)status, err, NULL);
	op->rr = (struct raw_read){ .fc = (uint8_t)fc,
				    .addr = (uint16_t)addr,
				    .count = (uint16_t)count,
				    .type = type,
				    .order = (uint8_t)order,
				    .scale = scale };
	r = devices_raw_read(rq->egw->devices, op->device, op->rr.fc, op->rr.addr, op->rr.count,
			     raw_read_done, op, &unit);
	if (r < 0) {
		free(op);
		return raw_refused(rq, r);
	}
	webui_client_addr(rq, who, sizeof(who));
	log_info("webui",
		 "modbus read by client %s (token): device %s unit %u fc %u address %lu "
		 "count %lu",
		 who, op->device, unit, op->rr.fc, addr, count);
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
	char err[256], who[64], vals_text[200], dflt[64];
	uint16_t values[123];
	unsigned count = 0;
	unsigned long addr = 0;
	const char *device, *field = NULL, *msg = NULL;
	json_t *o;
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
		device = default_device(e, dflt, sizeof(dflt));
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
		log_warn("webui",
			 "modbus write refused (not on modbus_write_allowlist): client %s, "
			 "device %s, address %lu, %u register(s)",
			 who, device, addr, count);
		json_decref(o);
		return web_reply_error(
			rq, 403, "address: not on the modbus_write_allowlist setting", "address");
	}
	op = raw_new(rq, device, err, sizeof(err), &status);
	json_decref(o);
	if (!op)
		return web_reply_error(rq, (unsigned)status, err, NULL);
	op->rr = (struct raw_read){ .fc = count == 1 ? 6 : 16,
				    .addr = (uint16_t)addr,
				    .count = (uint16_t)count };
	r = devices_raw_write(e->devices, op->device, op->rr.addr, values, op->rr.count,
			      raw_write_done, op, &unit);
	if (r < 0) {
		free(op);
		return raw_refused(rq, r);
	}
	/* The audit line: who wrote what where, before it happens. */
	log_info("webui",
		 "modbus write by client %s (token): device %s unit %u fc %u address %lu "
		 "values [%s]",
		 who, op->device, unit, op->rr.fc, addr, vals_text);
	u->raw_writes++;
	raw_start(u, op);
	return MHD_YES;
}
