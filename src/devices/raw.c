/* Raw Modbus on a running device; see raw.h. */
#include "devices/raw.h"

#include "devices/device_int.h"

static const struct {
	const char *name;
	enum reg_type type;
	unsigned words;
} raw_types[] = {
	{ "u16", REG_U16, 1 }, { "i16", REG_I16, 1 }, { "u32", REG_U32, 2 }, { "i32", REG_I32, 2 },
	{ "u64", REG_U64, 4 }, { "f32", REG_F32, 2 }, { "str", REG_STR, 1 },
};

int raw_type_parse(const char *name, uint8_t *ret_type, unsigned *ret_words)
{
	for (size_t i = 0; name && i < ARRAY_SIZE(raw_types); i++) {
		if (strcmp(raw_types[i].name, name) == 0) {
			*ret_type = (uint8_t)raw_types[i].type;
			*ret_words = raw_types[i].words;
			return 0;
		}
	}
	return -EINVAL;
}

const char *raw_type_name(uint8_t type)
{
	for (size_t i = 0; i < ARRAY_SIZE(raw_types); i++)
		if ((uint8_t)raw_types[i].type == type)
			return raw_types[i].name;
	return NULL;
}

json_t *raw_decode(const struct raw_read *rr, const uint16_t *regs, unsigned count)
{
	json_t *vals = json_array();
	unsigned words = 1;
	uint8_t t;

	if (!vals)
		return NULL;
	if (rr->type == REG_STR) {
		char s[2 * 125 + 1];
		reg_ascii(regs, MIN(count, 125u), s, sizeof(s));
		if (json_array_append_new(vals, json_string(s)) < 0)
			goto oom;
		return vals;
	}
	raw_type_parse(raw_type_name(rr->type), &t, &words);
	struct reg_def d = { .addr = rr->addr,
			     .fc = rr->fc,
			     .words = (uint8_t)words,
			     .type = rr->type,
			     .order = rr->order,
			     .scale = rr->scale,
			     .sf_addr = REG_NO_SF,
			     .field = REG_NO_FIELD };
	for (unsigned i = 0; i + words <= count; i += words) {
		double v;
		json_t *x = reg_decode(&d, regs + i, &v) == 0 && isfinite(v) ? json_real(v)
									     : json_null();
		if (json_array_append_new(vals, x) < 0)
			goto oom;
	}
	return vals;
oom:
	json_decref(vals);
	return NULL;
}

/* The running device id with registers.  Returns it, or NULL with
 * -ENOENT / -ENOTSUP in *ret_err. */
static struct device *raw_device(struct devices *ds, const char *id, int *ret_err)
{
	struct device *d = ds ? devices_find(ds, id) : NULL;

	*ret_err = !d ? -ENOENT : !device_client(d) ? -ENOTSUP : 0;
	return *ret_err ? NULL : d;
}

int devices_raw_read(struct devices *ds, const char *id, uint8_t fc, uint16_t addr, uint16_t count,
		     mb_read_cb cb, void *ud, uint8_t *ret_unit)
{
	int r;
	struct device *d = raw_device(ds, id, &r);

	if (!d)
		return r;
	r = mb_client_read(device_client(d), device_unit(d), fc, addr, count, cb, ud);
	if (r < 0)
		return r;
	*ret_unit = device_unit(d);
	return 0;
}

int devices_raw_write(struct devices *ds, const char *id, uint16_t addr, const uint16_t *values,
		      uint16_t count, mb_write_cb cb, void *ud, uint8_t *ret_unit)
{
	int r;
	struct device *d = raw_device(ds, id, &r);

	if (!d)
		return r;
	r = mb_client_write(device_client(d), device_unit(d), count == 1 ? 6 : 16, addr, values,
			    count, cb, ud);
	if (r < 0)
		return r;
	*ret_unit = device_unit(d);
	return 0;
}
