/* The device-config parser and validator; see devconf.h. */
#include "devices/devconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"
#include "base/json.h"
#include "base/host.h"
#include "base/util.h"
#include "modbus/transport.h"
#include "profiles/profile.h"

static void set_err(struct devconf_error *e, const char *fmt_key, unsigned i, const char *field,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* key is "devices[i].field", "devices[i]" (field NULL) or "devices" (fmt_key NULL). */
static void set_err(struct devconf_error *e, const char *fmt_key, unsigned i, const char *field,
		    const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return;
	if (!fmt_key)
		snprintf(e->key, sizeof(e->key), "devices");
	else if (field)
		snprintf(e->key, sizeof(e->key), "devices[%u].%.32s", i, field);
	else
		snprintf(e->key, sizeof(e->key), "devices[%u]", i);
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}
#define FAIL(i, field, ...) (set_err(err, "", (i), (field), __VA_ARGS__), -EGW_ESCHEMA)

const char *devconf_error_str(const struct devconf_error *e, char *buf, size_t len)
{
	snprintf(buf, len, "%s: %s", e->key, e->msg);
	return buf;
}

bool devconf_id_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= DEVCONF_ID_LEN)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
			return false;
	return true;
}

/* No control characters (they would reach logs, MQTT and the UI). */
static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

void devconf_entry_id(const json_t *entry, size_t index, char *buf, size_t len)
{
	const char *id = json_string_value(json_object_get(entry, "id"));
	if (id)
		snprintf(buf, len, "%s", id);
	else
		snprintf(buf, len, "dev%zu", index);
}

enum ftype { F_STR, F_INT, F_ENUM };

struct field {
	const char *name;
	enum ftype type;
	long long min, max;        /* F_INT; F_STR: length 1..max */
	const char *const *values; /* F_ENUM */
};

static const char *const connections[] = {
	"tcp", "rtu", "rtu-over-tcp", "serial", "solarman", NULL
};
static const char *const parities[] = { "N", "E", "O", NULL };

/* Sorted by name; every key a device object may have. */
static const struct field fields[] = {
	{ "baudrate", F_INT, 300, 4000000 },
	{ "connection", F_ENUM, .values = connections },
	{ "databits", F_INT, 7, 8 },
	{ "host", F_STR, 1, DEVCONF_HOST_LEN - 1 },
	{ "id", F_STR, 1, DEVCONF_ID_LEN - 1 },
	{ "logger_serial", F_INT, 1, 4294967295LL },
	{ "name", F_STR, 1, DEVCONF_NAME_LEN - 1 },
	{ "parity", F_ENUM, .values = parities },
	{ "poll_interval_ms", F_INT, 10, 3600000 },
	{ "port", F_INT, 1, 65535 },
	{ "profile", F_STR, 1, 63 },
	{ "proxy_unit_id", F_INT, 0, 255 },
	{ "serial_port", F_STR, 1, DEVCONF_HOST_LEN - 1 },
	{ "stopbits", F_INT, 1, 2 },
	{ "unit_id", F_INT, 0, 255 },
};

static const struct field *field_find(const char *name)
{
	for (size_t k = 0; k < ARRAY_SIZE(fields); k++)
		if (strcmp(fields[k].name, name) == 0)
			return &fields[k];
	return NULL;
}

/* Type and range of every member; unknown keys refused. */
static int check_fields(const json_t *o, unsigned i, struct devconf_error *err)
{
	const char *name;
	const json_t *v;

	json_object_foreach ((json_t *)o, name, v) {
		const struct field *f = field_find(name);
		if (!f)
			return FAIL(i, name, "unknown key");
		switch (f->type) {
		case F_STR:
			if (!json_is_string(v))
				return FAIL(i, name, "expected a string, got %s", egw_json_kind(v));
			if (json_string_length(v) < (size_t)f->min ||
			    json_string_length(v) > (size_t)f->max)
				return FAIL(i, name, "must be 1..%lld characters", f->max);
			if (strlen(json_string_value(v)) != json_string_length(v) ||
			    !printable(json_string_value(v)))
				return FAIL(i, name, "must not contain control characters");
			break;
		case F_INT:
			if (!json_is_integer(v))
				return FAIL(i, name, "expected an integer, got %s",
					    egw_json_kind(v));
			if (json_integer_value(v) < f->min || json_integer_value(v) > f->max)
				return FAIL(i, name, "%lld is out of range %lld..%lld",
					    (long long)json_integer_value(v), f->min, f->max);
			break;
		case F_ENUM: {
			const char *s = json_string_value(v);
			bool ok = false;
			for (const char *const *p = f->values; s && *p; p++)
				ok = ok || strcmp(*p, s) == 0;
			if (!ok) {
				char list[64] = "";
				size_t off = 0;
				for (const char *const *p = f->values; *p; p++)
					off += (size_t)snprintf(list + off, sizeof(list) - off,
								"%s%s", p == f->values ? "" : ", ",
								*p);
				if (!s)
					return FAIL(i, name, "expected a string, got %s",
						    egw_json_kind(v));
				return FAIL(i, name, "unknown value \"%.40s\" (expected one of %s)",
					    s, list);
			}
			break;
		}
		}
	}
	return 0;
}

static const char *str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static long long int_or(const json_t *o, const char *key, long long def)
{
	const json_t *v = json_object_get(o, key);
	return v ? json_integer_value(v) : def;
}

static int parse_one(const json_t *o, unsigned i, struct dev_conf *c, struct devconf_error *err)
{
	const char *conn, *prof, *s;
	int r;

	memset(c, 0, sizeof(*c));
	if (!json_is_object(o))
		return FAIL(i, NULL, "expected an object, got %s", egw_json_kind(o));
	r = check_fields(o, i, err);
	if (r < 0)
		return r;

	conn = str(o, "connection");
	if (!conn)
		conn = "tcp";
	prof = str(o, "profile");
	c->p1 = prof && strcmp(prof, "p1") == 0;
	if (c->p1 && strcmp(conn, "tcp") != 0 && strcmp(conn, "serial") != 0)
		return FAIL(i, "connection",
			    "profile p1 reads the meter's telegrams from \"tcp\" "
			    "(a serial-to-TCP bridge) or \"serial\", not \"%s\"",
			    conn);
	if (!c->p1 && strcmp(conn, "serial") == 0)
		return FAIL(i, "connection",
			    "\"serial\" is for profile p1 (a Modbus device on a "
			    "serial line is \"rtu\")");
	if (strcmp(conn, "solarman") == 0 && !json_object_get(o, "logger_serial"))
		return FAIL(i, "logger_serial",
			    "missing (required for connection \"solarman\": the "
			    "serial number printed on the data logger)");
	if (strcmp(conn, "solarman") != 0 && json_object_get(o, "logger_serial"))
		return FAIL(i, "logger_serial", "only for connection \"solarman\"");
	if (!c->p1 && json_object_get(o, "databits"))
		return FAIL(i, "databits", "only for profile p1 (Modbus RTU has 8 data bits)");
	if (c->p1 && json_object_get(o, "unit_id"))
		return FAIL(i, "unit_id", "not used by profile p1 (the meter sends by itself)");
	if (c->p1 && strcmp(conn, "tcp") == 0 && !json_object_get(o, "port"))
		return FAIL(i, "port",
			    "missing (required for profile p1 over tcp: the bridge's port)");
	c->kind = strcmp(conn, "rtu") == 0 || strcmp(conn, "serial") == 0 ? MB_TRANSPORT_RTU
		: strcmp(conn, "rtu-over-tcp") == 0 ? MB_TRANSPORT_RTU_OVER_TCP
		: strcmp(conn, "solarman") == 0     ? MB_TRANSPORT_SOLARMAN
						    : MB_TRANSPORT_TCP;

	if (c->kind == MB_TRANSPORT_RTU) {
		s = str(o, "serial_port");
		if (!s)
			return FAIL(i, "serial_port",
				    "missing (required for connection \"%s\", "
				    "e.g. /dev/ttyUSB0)",
				    conn);
		if (s[0] != '/')
			return FAIL(i, "serial_port",
				    "must be an absolute path such as /dev/ttyUSB0");
		snprintf(c->serial_port, sizeof(c->serial_port), "%s", s);
		if (!mb_serial_baud_ok((unsigned)int_or(o, "baudrate", c->p1 ? 115200 : 9600)))
			return FAIL(i, "baudrate",
				    "%lld is not a baud rate this system supports "
				    "(1200 ... 230400)",
				    int_or(o, "baudrate", 9600));
		if (json_object_get(o, "host"))
			return FAIL(i, "host", "not used by connection \"%s\" (use serial_port)",
				    conn);
	} else {
		s = str(o, "host");
		if (!s)
			return FAIL(i, "host", "missing (required for connection \"%s\")", conn);
		if (!host_ok(s))
			return FAIL(i, "host", "\"%.60s\" is not an IP address or a host name", s);
		snprintf(c->host, sizeof(c->host), "%s", s);
		if (json_object_get(o, "serial_port"))
			return FAIL(i, "serial_port", "not used by connection \"%s\" (use host)",
				    conn);
	}
	c->port = (uint16_t)int_or(o, "port", c->kind == MB_TRANSPORT_SOLARMAN ? 8899 : 502);
	c->logger_serial = (uint32_t)int_or(o, "logger_serial", 0);
	c->unit = (uint8_t)int_or(o, "unit_id", c->p1 ? 0 : 1);
	c->proxy_unit = (uint8_t)int_or(o, "proxy_unit_id", c->unit);
	c->proxy_unit_set = json_object_get(o, "proxy_unit_id") != NULL;
	c->baudrate = (unsigned)int_or(o, "baudrate", c->p1 ? 115200 : 9600);
	c->stopbits = (unsigned)int_or(o, "stopbits", 0);
	c->databits = (unsigned)int_or(o, "databits", 8);
	c->poll_interval_ms = (unsigned)int_or(o, "poll_interval_ms", 0);
	s = str(o, "parity");
	c->parity = s ? s[0] : c->p1 ? 'N' : 'E';

	s = str(o, "id");
	if (s && !devconf_id_ok(s))
		return FAIL(i, "id", "1..%d characters of A-Z a-z 0-9 _ - .", DEVCONF_ID_LEN - 1);
	devconf_entry_id(o, i, c->id, sizeof(c->id));
	s = str(o, "name");
	snprintf(c->name, sizeof(c->name), "%s", s ? s : c->id);

	if (!prof)
		return FAIL(i, "profile",
			    "missing (a name from /api/device/supported, or sunspec)");
	if (c->p1)
		return 0;
	c->profile = profile_find(prof);
	if (!c->profile) {
		set_err(err, "", i, "profile",
			"unknown profile \"%.60s\" (see /api/device/supported)", prof);
		return -EGW_EPROFILE;
	}
	/* "sunspec" and the brands read through the SunSpec walk */
	c->sunspec = c->profile->sunspec_base != 0;
	return 0;
}

/* Two entries that would talk to one device (a P1 meter has its line alone). */
static bool same_address(const struct dev_conf *a, const struct dev_conf *b)
{
	if ((a->p1 || b->p1) && a->kind == b->kind)
		return a->kind == MB_TRANSPORT_RTU
			? strcmp(a->serial_port, b->serial_port) == 0
			: a->port == b->port && strcasecmp(a->host, b->host) == 0;
	if (a->unit != b->unit || (a->kind == MB_TRANSPORT_RTU) != (b->kind == MB_TRANSPORT_RTU))
		return false;
	if (a->kind == MB_TRANSPORT_RTU)
		return strcmp(a->serial_port, b->serial_port) == 0;
	return a->port == b->port && strcasecmp(a->host, b->host) == 0;
}

static int check_list(const struct dev_conf *c, unsigned n, struct devconf_error *err)
{
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = 0; j < i; j++) {
			if (strcmp(c[j].id, c[i].id) == 0)
				return FAIL(i, "id", "\"%s\" is already used by devices[%u]",
					    c[i].id, j);
			/* Devices on one serial line share its client: one line, one setting. */
			if (!c[i].p1 && !c[j].p1 && c[i].kind == MB_TRANSPORT_RTU &&
			    c[j].kind == MB_TRANSPORT_RTU &&
			    strcmp(c[i].serial_port, c[j].serial_port) == 0 &&
			    (c[i].baudrate != c[j].baudrate || c[i].parity != c[j].parity ||
			     c[i].stopbits != c[j].stopbits))
				return FAIL(i, "baudrate",
					    "baudrate, parity and stopbits must match "
					    "devices[%u] on the same serial port",
					    j);
			if (c[i].proxy_unit == c[j].proxy_unit &&
			    (c[i].proxy_unit_set || c[j].proxy_unit_set))
				return FAIL(i, c[i].proxy_unit_set ? "proxy_unit_id" : "unit_id",
					    "the Modbus proxy already answers unit %u for "
					    "devices[%u] (%s): set a different proxy_unit_id",
					    c[i].proxy_unit, j, c[j].id);
			/* One logger, one serial number: its devices share a connection. */
			if (c[i].kind == MB_TRANSPORT_SOLARMAN &&
			    c[j].kind == MB_TRANSPORT_SOLARMAN && c[i].port == c[j].port &&
			    strcasecmp(c[i].host, c[j].host) == 0 &&
			    c[i].logger_serial != c[j].logger_serial)
				return FAIL(i, "logger_serial",
					    "devices[%u] (%s) reaches the logger at "
					    "this host and port as serial %u",
					    j, c[j].id, (unsigned)c[j].logger_serial);
			if (same_address(&c[i], &c[j]) && (c[i].p1 || c[j].p1))
				return FAIL(
					i, c[i].kind == MB_TRANSPORT_RTU ? "serial_port" : "host",
					"devices[%u] (%s) uses this %s; a P1 meter's line is its own",
					j, c[j].id,
					c[i].kind == MB_TRANSPORT_RTU ? "serial port"
								      : "host and port");
			if (same_address(&c[i], &c[j]))
				return FAIL(i,
					    c[i].kind == MB_TRANSPORT_RTU ? "serial_port" : "host",
					    "devices[%u] (%s) is already this device (same %s and "
					    "unit_id)",
					    j, c[j].id,
					    c[i].kind == MB_TRANSPORT_RTU ? "serial port"
									  : "host, port");
		}
	return 0;
}

/* Devices without a proxy_unit_id whose unit_id an earlier such device
 * already answers for (two inverters at different hosts, both unit 1) get
 * the lowest unit 1..247 that no device holds, explicitly or by default, so
 * the proxy reaches every device.  It depends only on the list: the same
 * settings give the same units at every start. */
static void resolve_proxy_units(struct dev_conf *c, unsigned n)
{
	bool held[256] = { false };

	for (unsigned i = 0; i < n; i++)
		if (!c[i].p1)
			held[c[i].proxy_unit] = true;
	for (unsigned i = 0; i < n; i++) {
		if (c[i].p1 || c[i].proxy_unit_set)
			continue;
		for (unsigned j = 0; j < i; j++) {
			if (c[j].p1 || c[j].proxy_unit != c[i].proxy_unit)
				continue;
			for (unsigned u = 1; u <= 247; u++)
				if (!held[u]) {
					held[u] = true;
					c[i].proxy_unit = (uint8_t)u;
					break;
				}
			break;
		}
	}
}

void devconf_free(struct dev_conf *confs, unsigned n)
{
	for (unsigned i = 0; confs && i < n; i++)
		json_decref(confs[i].json);
	free(confs);
}

int devconf_parse_list(const json_t *arr, struct dev_conf **ret, unsigned *ret_n,
		       struct devconf_error *err)
{
	struct dev_conf *confs = NULL;
	unsigned n;
	int r;

	if (arr && !json_is_null(arr) && !json_is_array(arr)) {
		set_err(err, NULL, 0, NULL, "expected an array, got %s", egw_json_kind(arr));
		return -EGW_ESCHEMA;
	}
	n = json_is_array(arr) ? (unsigned)MIN(json_array_size(arr), (size_t)UINT32_MAX) : 0;
	if (n > DEVCONF_MAX) {
		set_err(err, NULL, 0, NULL, "at most %d devices (got %u)", DEVCONF_MAX, n);
		return -EGW_ESCHEMA;
	}
	if (n) {
		confs = calloc(n, sizeof(*confs));
		if (!confs)
			return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		r = parse_one(json_array_get(arr, i), i, &confs[i], err);
		if (r < 0)
			goto fail;
	}
	r = check_list(confs, n, err);
	if (r < 0)
		goto fail;
	resolve_proxy_units(confs, n);
	for (unsigned i = 0; i < n; i++)
		confs[i].json = json_incref(json_array_get(arr, i));
	*ret = confs;
	*ret_n = n;
	return 0;
fail:
	free(confs);
	return r;
}

int devconf_validate_list(const json_t *arr, struct devconf_error *err)
{
	struct dev_conf *c;
	unsigned n;
	int r = devconf_parse_list(arr, &c, &n, err);
	if (r >= 0)
		devconf_free(c, n);
	return r;
}

/* Allow-list entries: an address (any device), or {"device": id (optional,
 * "*" for any), "address": first, "count": n (default 1)}. */
bool devconf_write_allowed(const json_t *list, const char *device, unsigned addr, unsigned count)
{
	for (unsigned a = addr; a < addr + count; a++) {
		bool ok = false;
		size_t i;
		json_t *e;

		json_array_foreach (list, i, e) {
			json_int_t first, n = 1;
			const char *dev = NULL;

			if (json_is_integer(e)) {
				first = json_integer_value(e);
			} else if (json_is_object(e) &&
				   json_is_integer(json_object_get(e, "address"))) {
				first = json_integer_value(json_object_get(e, "address"));
				if (json_is_integer(json_object_get(e, "count")))
					n = json_integer_value(json_object_get(e, "count"));
				dev = json_string_value(json_object_get(e, "device"));
			} else {
				continue;
			}
			if (dev && strcmp(dev, "*") != 0 && strcmp(dev, device) != 0)
				continue;
			/* first + n may overflow (the list is any JSON array); a - first
			 * in unsigned arithmetic is exact once a >= first. */
			if ((json_int_t)a >= first && n > 0 &&
			    (uint64_t)a - (uint64_t)first < (uint64_t)n)
				ok = true;
		}
		if (!ok)
			return false;
	}
	return true;
}
