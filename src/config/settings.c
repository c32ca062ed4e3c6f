#include "config/settings.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/file.h"
#include "base/host.h"
#include "base/mask.h"
#include "base/json.h"
#include "base/util.h"
#include "crypto/signer.h"
#include "devices/devconf.h"
#include "grid/fcr.h"

enum stype {
	ST_INT,
	ST_BOOL,
	ST_STR,
	ST_ENUM,
	ST_URL,       /* "" or http(s)://... */
	ST_URL_LIST,  /* array of http(s) URLs */
	ST_DEVICES,   /* array of device objects (devices/devconf.h) */
	ST_HOST,      /* an IP address literal or a host name (base/host.h) */
	ST_BIND,      /* an IPv4 address literal to listen on */
	ST_ARRAY,     /* array of anything (checked by its consumer) */
	ST_NAME_LIST, /* array of host names */
	ST_I2C_BUS,   /* "" or an I2C bus: /dev/i2c-N, i2c-N or N (crypto/signer.h) */
};

#define SF_SECRET 1u

struct skey {
	const char *key;
	enum stype type;
	int64_t def;               /* ST_INT, ST_BOOL */
	const char *def_str;       /* ST_STR, ST_ENUM, ST_URL */
	int64_t min, max;          /* ST_INT */
	const char *const *values; /* ST_ENUM, NULL-terminated */
	unsigned flags;
};

static const char *const signer_backends[] = { "auto", "software", "atecc608", NULL };
static const char *const log_levels[] = { "error", "warn", "info", "debug", NULL };
static const char *const compressions[] = { "auto", "gzip", "none", NULL };
static const char *const batch_formats[] = { "egw", "srcful", NULL };
static const char *const uplink_auths[] = { "jwt", "password", NULL };

#define MIB (INT64_C(1) << 20)
#define DAY_S INT64_C(86400)

/* The schema (schema.h) as the validation table, in key order. */
#define SKEY_ROW(field, key, type, ...) { key, ST_##type, __VA_ARGS__ },
static const struct skey schema[] = { SETTINGS_SCHEMA(SKEY_ROW) };
#undef SKEY_ROW

#define MAX_URLS 8 /* UPLOADER_MAX_URLS */
#define MAX_ARRAY 256
#define MAX_ARRAY_ENTRY 256 /* bytes of one ST_ARRAY entry, serialized */
#define MAX_NAMES 16
#define MAX_DOC_BYTES (256 * 1024) /* the whole document, serialized */

struct settings {
	json_t *file;             /* file layer */
	json_t *over;             /* command line layer */
	json_t *eff;              /* defaults + file + over */
	struct settings_values v; /* eff, typed; borrows from eff */
	uint64_t generation;
	char path[PATH_MAX];
};

static void set_err(struct settings_error *e, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(struct settings_error *e, const char *key, const char *fmt, ...)
{
	va_list ap;
	if (!e)
		return;
	snprintf(e->key, sizeof(e->key), "%s", key ? key : "");
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

const char *settings_error_str(const struct settings_error *e, char *buf, size_t len)
{
	if (e->key[0])
		snprintf(buf, len, "%s: %s", e->key, e->msg);
	else
		snprintf(buf, len, "%s", e->msg);
	return buf;
}

static const struct skey *schema_find(const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(schema); i++)
		if (strcmp(schema[i].key, key) == 0)
			return &schema[i];
	return NULL;
}

/* True when key is a group ("http") of some schema key ("http.port"). */
static bool schema_is_group(const char *key)
{
	size_t n = strlen(key);
	for (size_t i = 0; i < ARRAY_SIZE(schema); i++)
		if (strncmp(schema[i].key, key, n) == 0 && schema[i].key[n] == '.')
			return true;
	return false;
}

static bool in_list(const char *const *values, const char *v)
{
	for (; *values; values++)
		if (strcmp(*values, v) == 0)
			return true;
	return false;
}

static void list_str(const char *const *values, char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = 0;
	for (const char *const *p = values; *p && off < len; p++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", p == values ? "" : ", ", *p);
}

static int check_enum(const char *key, const json_t *v, const char *const *values,
		      struct settings_error *err)
{
	char list[128];
	if (!json_is_string(v)) {
		set_err(err, key, "expected a string, got %s", egw_json_kind(v));
		return -EGW_ESCHEMA;
	}
	if (!in_list(values, json_string_value(v))) {
		list_str(values, list, sizeof(list));
		set_err(err, key, "unknown value \"%.40s\" (expected one of %s)",
			json_string_value(v), list);
		return -EGW_ESCHEMA;
	}
	return 0;
}

static int check_int(const char *key, const json_t *v, int64_t min, int64_t max,
		     struct settings_error *err)
{
	if (!json_is_integer(v)) {
		set_err(err, key, "expected an integer, got %s", egw_json_kind(v));
		return -EGW_ESCHEMA;
	}
	int64_t x = json_integer_value(v);
	if (x < min || x > max) {
		set_err(err, key, "%" PRId64 " is out of range %" PRId64 "..%" PRId64, x, min, max);
		return -EGW_ESCHEMA;
	}
	return 0;
}

static bool is_url(const char *s)
{
	return (strncmp(s, "http://", 7) == 0 && s[7]) || (strncmp(s, "https://", 8) == 0 && s[8]);
}

static int check_value(const struct skey *k, const json_t *v, struct settings_error *err)
{
	char ikey[160];
	size_t i;
	const json_t *e;
	int r;

	switch (k->type) {
	case ST_INT:
		return check_int(k->key, v, k->min, k->max, err);
	case ST_BOOL:
		if (!json_is_boolean(v)) {
			set_err(err, k->key, "expected a boolean, got %s", egw_json_kind(v));
			return -EGW_ESCHEMA;
		}
		return 0;
	case ST_STR:
		if (!json_is_string(v)) {
			set_err(err, k->key, "expected a string, got %s", egw_json_kind(v));
			return -EGW_ESCHEMA;
		}
		if (json_string_length(v) > 1024) {
			set_err(err, k->key, "longer than 1024 bytes");
			return -EGW_ESCHEMA;
		}
		return 0;
	case ST_ENUM:
		return check_enum(k->key, v, k->values, err);
	case ST_HOST:
		if (!json_is_string(v)) {
			set_err(err, k->key, "expected a string, got %s", egw_json_kind(v));
			return -EGW_ESCHEMA;
		}
		if (!host_ok(json_string_value(v))) {
			set_err(err, k->key, "\"%.60s\" is not an IP address or a host name",
				json_string_value(v));
			return -EGW_ESCHEMA;
		}
		return 0;
	case ST_BIND: {
		struct in_addr a;
		if (!json_is_string(v)) {
			set_err(err, k->key, "expected a string, got %s", egw_json_kind(v));
			return -EGW_ESCHEMA;
		}
		if (inet_pton(AF_INET, json_string_value(v), &a) != 1) {
			set_err(err, k->key,
				"\"%.60s\" is not an IPv4 address (0.0.0.0: every "
				"interface, 127.0.0.1: this machine only)",
				json_string_value(v));
			return -EGW_ESCHEMA;
		}
		return 0;
	}
	case ST_I2C_BUS: {
		unsigned bus;
		if (!json_is_string(v)) {
			set_err(err, k->key, "expected a string, got %s", egw_json_kind(v));
			return -EGW_ESCHEMA;
		}
		if (signer_i2c_bus_number(json_string_value(v), &bus) < 0) {
			set_err(err, k->key,
				"\"%.60s\" is not an I2C bus (/dev/i2c-N, i2c-N or N, N up to 255)",
				json_string_value(v));
			return -EGW_ESCHEMA;
		}
		return 0;
	}
	case ST_URL:
		if (!json_is_string(v)) {
			set_err(err, k->key, "expected a string, got %s", egw_json_kind(v));
			return -EGW_ESCHEMA;
		}
		if (json_string_length(v) && !is_url(json_string_value(v))) {
			set_err(err, k->key, "expected an http:// or https:// URL or \"\"");
			return -EGW_ESCHEMA;
		}
		return 0;
	case ST_URL_LIST:
	case ST_DEVICES:
	case ST_ARRAY:
	case ST_NAME_LIST:
		if (!json_is_array(v)) {
			set_err(err, k->key, "expected an array, got %s", egw_json_kind(v));
			return -EGW_ESCHEMA;
		}
		if (k->type == ST_DEVICES) {
			struct devconf_error de = { 0 };
			r = devconf_validate_list(v, &de);
			if (r == -EGW_EPROFILE)
				r = -EGW_ESCHEMA;
			if (r < 0)
				set_err(err, de.key, "%s", r == -ENOMEM ? "out of memory" : de.msg);
			return r;
		}
		int max = k->type == ST_URL_LIST  ? MAX_URLS
			: k->type == ST_NAME_LIST ? MAX_NAMES
						  : MAX_ARRAY;
		if (json_array_size(v) > (size_t)max) {
			set_err(err, k->key, "more than %d entries", max);
			return -EGW_ESCHEMA;
		}
		json_array_foreach (v, i, e) {
			snprintf(ikey, sizeof(ikey), "%s[%zu]", k->key, i);
			if (k->type == ST_ARRAY) {
				/* Bounded, so that the document and every answer
				 * that carries it stay small (see MAX_DOC_BYTES). */
				size_t n = json_dumpb(e, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
				if (n == 0 || n > MAX_ARRAY_ENTRY) {
					set_err(err, ikey, "longer than %d bytes", MAX_ARRAY_ENTRY);
					return -EGW_ESCHEMA;
				}
			} else if (k->type == ST_NAME_LIST) {
				if (!json_is_string(e) || !host_ok(json_string_value(e))) {
					set_err(err, ikey,
						"expected a host name (letters, digits, "
						"'-' and '.', at most 253)");
					return -EGW_ESCHEMA;
				}
			} else if (!json_is_string(e) || !is_url(json_string_value(e))) {
				set_err(err, ikey, "expected an http:// or https:// URL");
				return -EGW_ESCHEMA;
			}
		}
		return 0;
	}
	return 0;
}

/* Validates the members of object `o` found under dotted `prefix` ("" at top). */
static int validate_at(const char *prefix, const json_t *o, struct settings_error *err)
{
	const char *name;
	const json_t *v;
	char key[128];
	int r;

	json_object_foreach ((json_t *)o, name, v) {
		int n = snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "", name);
		if (n < 0 || (size_t)n >= sizeof(key)) {
			set_err(err, "", "key too long");
			return -EGW_ESCHEMA;
		}
		const struct skey *k = schema_find(key);
		if (k) {
			r = check_value(k, v, err);
		} else if (schema_is_group(key)) {
			if (!json_is_object(v)) {
				set_err(err, key, "expected an object, got %s", egw_json_kind(v));
				return -EGW_ESCHEMA;
			}
			r = validate_at(key, v, err);
		} else {
			set_err(err, key, "unknown key");
			r = -EGW_ESCHEMA;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

int settings_validate(const json_t *doc, struct settings_error *err)
{
	if (!json_is_object(doc)) {
		set_err(err, "", "the settings document must be a JSON object, got %s",
			doc ? egw_json_kind(doc) : "nothing");
		return -EGW_ESCHEMA;
	}
	int r = validate_at("", doc, err);
	if (r < 0)
		return r;
	/* Every key is bounded on its own; this bounds them together, so a
	 * GET /api/settings answer stays small whatever was posted. */
	if (json_dumpb(doc, NULL, 0, JSON_COMPACT) > MAX_DOC_BYTES) {
		set_err(err, "", "the settings document is larger than %d KiB",
			MAX_DOC_BYTES / 1024);
		return -EGW_ESCHEMA;
	}
	return 0;
}

/* Finds or creates the object holding the last component of a dotted key
 * inside doc; *ret_leaf points at that component. */
static json_t *parent_for(json_t *doc, const char *key, char *buf, size_t len,
			  const char **ret_leaf)
{
	char *dot, *p;
	json_t *o = doc;

	snprintf(buf, len, "%s", key);
	p = buf;
	while ((dot = strchr(p, '.'))) {
		*dot = 0;
		json_t *c = json_object_get(o, p);
		if (!json_is_object(c)) {
			c = json_object();
			if (!c || json_object_set_new(o, p, c) < 0)
				return NULL;
		}
		o = c;
		p = dot + 1;
	}
	*ret_leaf = p;
	return o;
}

static const json_t *lookup(const json_t *doc, const char *key)
{
	char buf[128], *dot, *p = buf;
	const json_t *o = doc;

	if (snprintf(buf, sizeof(buf), "%s", key) >= (int)sizeof(buf))
		return NULL;
	while ((dot = strchr(p, '.'))) {
		*dot = 0;
		o = json_object_get(o, p);
		if (!json_is_object(o))
			return NULL;
		p = dot + 1;
	}
	return json_object_get(o, p);
}

/* Readers for fill_values, one per schema type.  eff is valid, so every
 * key is present with its type; the fallbacks only keep a broken invariant
 * from turning into a NULL dereference. */
static int64_t get_INT(const json_t *eff, const char *key)
{
	const json_t *v = lookup(eff, key);
	assert(json_is_integer(v));
	return json_is_integer(v) ? json_integer_value(v) : 0;
}

static bool get_BOOL(const json_t *eff, const char *key)
{
	assert(json_is_boolean(lookup(eff, key)));
	return json_is_true(lookup(eff, key));
}

static const char *get_STR(const json_t *eff, const char *key)
{
	const json_t *v = lookup(eff, key);
	assert(json_is_string(v));
	return json_is_string(v) ? json_string_value(v) : "";
}

static const json_t *get_ARRAY(const json_t *eff, const char *key)
{
	assert(json_is_array(lookup(eff, key)));
	return lookup(eff, key);
}

#define get_ENUM get_STR
#define get_URL get_STR
#define get_HOST get_STR
#define get_BIND get_STR
#define get_I2C_BUS get_STR
#define get_URL_LIST get_ARRAY
#define get_DEVICES get_ARRAY
#define get_NAME_LIST get_ARRAY

/* Fills the typed view from the effective document; run on every change. */
static void fill_values(struct settings_values *v, const json_t *eff)
{
#define FILL(field, key, type, ...) v->field = get_##type(eff, key);
	SETTINGS_SCHEMA(FILL)
#undef FILL
}

const struct settings_values *settings_values(const struct settings *s)
{
	return &s->v;
}

/* Deep merge: objects merge recursively, anything else replaces. */
static int merge(json_t *dst, const json_t *src)
{
	const char *name;
	json_t *v;

	json_object_foreach ((json_t *)src, name, v) {
		json_t *d = json_object_get(dst, name);
		if (json_is_object(d) && json_is_object(v)) {
			if (merge(d, v) < 0)
				return -ENOMEM;
		} else if (json_object_set_new(dst, name, json_deep_copy(v)) < 0) {
			return -ENOMEM;
		}
	}
	return 0;
}

static json_t *defaults_doc(void)
{
	json_t *doc = json_object(), *v = NULL;
	char buf[128];
	const char *leaf;

	if (!doc)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(schema); i++) {
		const struct skey *k = &schema[i];
		switch (k->type) {
		case ST_INT:
			v = json_integer(k->def);
			break;
		case ST_BOOL:
			v = json_boolean(k->def);
			break;
		case ST_STR:
		case ST_ENUM:
		case ST_HOST:
		case ST_BIND:
		case ST_I2C_BUS:
		case ST_URL:
			v = json_string(k->def_str);
			break;
		default:
			v = json_array();
			break;
		}
		json_t *parent = parent_for(doc, k->key, buf, sizeof(buf), &leaf);
		if (!v || !parent) {
			json_decref(v);
			goto err;
		}
		if (json_object_set_new(parent, leaf, v) < 0) /* takes v, even on failure */
			goto err;
	}
	return doc;
err:
	json_decref(doc);
	return NULL;
}

/* Builds defaults + file + over into a new effective document. */
static json_t *effective(const json_t *file, const json_t *over)
{
	json_t *eff = defaults_doc();
	if (!eff || merge(eff, file) < 0 || merge(eff, over) < 0) {
		json_decref(eff);
		return NULL;
	}
	return eff;
}

/* Replaces the layers with the given ones (stolen) if the result is valid. */
static int commit(struct settings *s, json_t *file, json_t *over, struct settings_error *err)
{
	json_t *eff;
	int r;

	if (!file || !over) {
		/* a caller's copy failed: not a schema error */
		r = -ENOMEM;
		set_err(err, "", "out of memory");
		goto err;
	}
	r = settings_validate(file, err);
	if (r >= 0)
		r = settings_validate(over, err);
	if (r < 0)
		goto err;
	eff = effective(file, over);
	if (!eff) {
		r = -ENOMEM;
		set_err(err, "", "out of memory");
		goto err;
	}
	/* Rules across keys (FCR names devices and the frequency source) hold
	 * on the document egwd runs with, whichever layer changed. */
	struct fcr_conf fc;
	struct fcr_conf_error fe = { 0 };
	r = fcr_conf_parse(eff, &fc, &fe);
	if (r >= 0 && json_object_size(over)) {
		/* and on what is saved alone: the command line is not saved, so a
		 * file that leans on it would be refused at the next start */
		json_t *empty = json_object();
		json_t *saved = empty ? effective(file, empty) : NULL;
		r = saved ? fcr_conf_parse(saved, &fc, &fe) : -ENOMEM;
		if (r == -EGW_ESCHEMA) {
			size_t n = strlen(fe.msg);
			snprintf(fe.msg + n, sizeof(fe.msg) - n,
				 " (in the saved settings, without "
				 "the command line's --set)");
		}
		json_decref(saved);
		json_decref(empty);
	}
	if (r < 0) {
		json_decref(eff);
		if (r == -ENOMEM)
			set_err(err, "", "out of memory");
		else
			set_err(err, fe.key, "%s", fe.msg);
		goto err;
	}
	json_decref(s->file);
	json_decref(s->over);
	json_decref(s->eff);
	s->file = file;
	s->over = over;
	s->eff = eff;
	fill_values(&s->v, eff);
	s->generation++;
	return 0;
err:
	json_decref(file);
	json_decref(over);
	return r;
}

int settings_new(const char *path, struct settings **ret)
{
	struct settings *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	snprintf(s->path, sizeof(s->path), "%s", path ? path : "settings.json");
	s->file = json_object();
	s->over = json_object();
	s->eff = effective(s->file, s->over);
	if (!s->file || !s->over || !s->eff) {
		settings_free(s);
		return -ENOMEM;
	}
	fill_values(&s->v, s->eff);
	*ret = s;
	return 0;
}

void settings_free(struct settings *s)
{
	if (!s)
		return;
	json_decref(s->file);
	json_decref(s->over);
	json_decref(s->eff);
	free(s);
}

const char *settings_path(const struct settings *s)
{
	return s->path;
}
uint64_t settings_generation(const struct settings *s)
{
	return s->generation;
}

int settings_load(struct settings *s, struct settings_error *err)
{
	json_error_t je;
	json_t *doc;
	struct stat st;

	if (stat(s->path, &st) < 0) {
		if (errno != ENOENT) {
			int r = -errno;
			set_err(err, "", "%s: %s", s->path, strerror(errno));
			return r;
		}
		doc = json_object();
	} else {
		doc = egw_json_load_file(s->path, JSON_REJECT_DUPLICATES, &je);
		if (!doc && json_error_code(&je) == json_error_out_of_memory) {
			set_err(err, "", "%s: out of memory", s->path);
			return -ENOMEM;
		}
		if (!doc) {
			set_err(err, "", "%s:%d:%d: malformed JSON: %s", s->path, je.line,
				je.column, je.text);
			return -EGW_EJSON;
		}
	}
	if (!doc) {
		set_err(err, "", "out of memory");
		return -ENOMEM;
	}
	return commit(s, doc, json_deep_copy(s->over), err);
}

static int set_in(json_t *doc, const char *key, const json_t *value, struct settings_error *err)
{
	char buf[128];
	const char *leaf;
	json_t *partial = json_object(), *parent;
	int r;

	/* Validate the key in isolation first so errors name it precisely. */
	if (!partial)
		return -ENOMEM;
	if (!schema_find(key) && !schema_is_group(key)) {
		json_decref(partial);
		set_err(err, key, "unknown key");
		return -EGW_ESCHEMA;
	}
	parent = parent_for(partial, key, buf, sizeof(buf), &leaf);
	if (!parent || json_object_set_new(parent, leaf, json_deep_copy(value)) < 0) {
		json_decref(partial);
		return -ENOMEM;
	}
	r = settings_validate(partial, err);
	if (r >= 0)
		r = merge(doc, partial);
	json_decref(partial);
	return r;
}

int settings_set(struct settings *s, const char *key, const json_t *value,
		 struct settings_error *err)
{
	json_t *file = json_deep_copy(s->file);
	int r;
	if (!file)
		return -ENOMEM;
	r = set_in(file, key, value, err);
	if (r < 0) {
		json_decref(file);
		return r;
	}
	return commit(s, file, json_deep_copy(s->over), err);
}

int settings_override(struct settings *s, const char *key, const json_t *value,
		      struct settings_error *err)
{
	json_t *over = json_deep_copy(s->over);
	int r;
	if (!over)
		return -ENOMEM;
	r = set_in(over, key, value, err);
	if (r < 0) {
		json_decref(over);
		return r;
	}
	return commit(s, json_deep_copy(s->file), over, err);
}

/* The value a key will have once patch is applied: patch's, else the
 * current one. */
static const json_t *after_patch(const json_t *patch, const json_t *eff, const char *key)
{
	const json_t *v = lookup(patch, key);
	return v ? v : lookup(eff, key);
}

/* A URL posted with masked parts ("***"): the stored URL (of cur, a string
 * or an array of them) that masks to exactly that text, else NULL.  The
 * masked text keeps scheme, host, port and path, so the stored secret only
 * ever goes back to where it was given for. */
static const json_t *unmask_url(const char *posted, const json_t *cur)
{
	size_t i, n = json_is_array(cur) ? json_array_size(cur) : 1;

	for (i = 0; i < n; i++) {
		const json_t *c = json_is_array(cur) ? json_array_get(cur, i) : cur;
		char *m;
		bool same;

		if (!json_is_string(c))
			continue;
		m = mask_url(json_string_value(c));
		same = m && strcmp(m, posted) == 0;
		free(m);
		if (same)
			return c;
	}
	return NULL;
}

/* Replaces a URL given with "***" in it by the stored one it was masked
 * from; *v is the posted string (patch owns it).  Returns 0 or
 * -EGW_ESCHEMA (no stored URL masks to it). */
static int unmask_url_at(json_t *holder, size_t index, const char *leaf, const json_t *cur,
			 const char *key, struct settings_error *err)
{
	json_t *v = leaf ? json_object_get(holder, leaf) : json_array_get(holder, index);
	const json_t *c;

	if (!json_is_string(v) || !strstr(json_string_value(v), MASK))
		return 0;
	c = unmask_url(json_string_value(v), cur);
	if (!c) {
		set_err(err, key,
			"holds masked credentials (" MASK ") but is not a stored URL "
			"with that scheme, host, port and path: a stored secret is only reused "
			"where it was given for; enter the credentials again");
		return -EGW_ESCHEMA;
	}
	return leaf ? json_object_set_new(holder, leaf, json_deep_copy(c))
		    : json_array_set_new(holder, index, json_deep_copy(c));
}

/* In patch (a copy), puts back the secrets the API showed masked, where it
 * is safe to: a password given as "***" only while the host and port it
 * was given for stay (a changed mqtt.host with mqtt.password "***" would
 * send the stored password to the new host: refused, naming the password,
 * rather than cleared, so the user knows to type it for the new host); a
 * URL with "***" in it only for the stored URL it was masked from.
 * Returns 0 or -EGW_ESCHEMA. */
static int unmask(json_t *patch, const json_t *eff, struct settings_error *err)
{
	for (size_t i = 0; i < ARRAY_SIZE(schema); i++) {
		const struct skey *k = &schema[i];
		char buf[128], ikey[160];
		const char *leaf = NULL;
		json_t *parent, *v = (json_t *)lookup(patch, k->key);
		int r;

		if (!v)
			continue;
		if (k->type == ST_URL) {
			parent = parent_for(patch, k->key, buf, sizeof(buf), &leaf);
			r = parent
				? unmask_url_at(parent, 0, leaf, lookup(eff, k->key), k->key, err)
				: -ENOMEM;
			if (r < 0)
				return r;
			continue;
		}
		if (k->type == ST_URL_LIST && json_is_array(v)) {
			for (size_t j = 0; j < json_array_size(v); j++) {
				snprintf(ikey, sizeof(ikey), "%s[%zu]", k->key, j);
				r = unmask_url_at(v, j, NULL, lookup(eff, k->key), ikey, err);
				if (r < 0)
					return r;
			}
			continue;
		}
		if (!(k->flags & SF_SECRET) || !json_is_string(v) ||
		    strcmp(json_string_value(v), MASK) != 0)
			continue;
		/* The secret's group ("mqtt", "uplink.mqtt") names where it goes:
		 * host and port. */
		char group[64], hk[80], pk[80];
		const char *dot = strrchr(k->key, '.');
		snprintf(group, sizeof(group), "%.*s", dot ? (int)(dot - k->key) : 0, k->key);
		snprintf(hk, sizeof(hk), "%s.host", group);
		snprintf(pk, sizeof(pk), "%s.port", group);
		if (!json_equal((json_t *)after_patch(patch, eff, hk), (json_t *)lookup(eff, hk)) ||
		    !json_equal((json_t *)after_patch(patch, eff, pk), (json_t *)lookup(eff, pk))) {
			set_err(err, k->key,
				MASK
				" keeps the stored password only for the host and "
				"port it was given for; %s or %s changes: enter the password for the "
				"new one",
				hk, pk);
			return -EGW_ESCHEMA;
		}
		parent = parent_for(patch, k->key, buf, sizeof(buf), &leaf);
		const json_t *cur = lookup(eff, k->key);
		if (!parent || (cur && json_object_set_new(parent, leaf, json_deep_copy(cur)) < 0))
			return -ENOMEM;
	}
	return 0;
}

/* Removes from `over` every leaf that `patch` sets: a value written through
 * the API is newer than the command line it started with. */
static void drop_overridden(json_t *over, const json_t *patch)
{
	const char *k;
	json_t *v;
	void *tmp;

	json_object_foreach_safe ((json_t *)patch, tmp, k, v) {
		json_t *o = json_object_get(over, k);
		if (!o)
			continue;
		if (json_is_object(v) && json_is_object(o)) {
			drop_overridden(o, v);
			if (json_object_size(o) == 0)
				json_object_del(over, k);
		} else {
			json_object_del(over, k);
		}
	}
}

int settings_patch(struct settings *s, const json_t *patch, struct settings_error *err)
{
	json_t *p, *file, *over;
	int r;

	r = settings_validate(patch, err);
	if (r < 0)
		return r;
	p = json_deep_copy(patch);
	file = json_deep_copy(s->file);
	if (!p || !file) {
		r = -ENOMEM;
		goto out;
	}
	r = unmask(p, s->eff, err);
	if (r < 0)
		goto out;
	r = merge(file, p);
	if (r < 0)
		goto out;
	over = json_deep_copy(s->over);
	if (!over) {
		r = -ENOMEM;
		goto out;
	}
	drop_overridden(over, p);
	r = commit(s, file, over, err);
	file = NULL;
out:
	json_decref(p);
	json_decref(file);
	return r;
}

int settings_parse_assignment(const char *arg, char *ret_key, size_t keylen, json_t **ret_value)
{
	const char *eq = strchr(arg, '=');
	json_t *v;
	size_t n;

	if (!eq || eq == arg)
		return -EINVAL;
	n = (size_t)(eq - arg);
	if (n >= keylen)
		return -EINVAL;
	v = json_loads(eq + 1, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
	if (!v)
		v = json_string(eq + 1);
	if (!v)
		return -ENOMEM;
	memcpy(ret_key, arg, n);
	ret_key[n] = 0;
	*ret_value = v;
	return 0;
}

/* The file layer as the text settings_save writes: sorted keys, two-space
 * indent, a final newline as an editor would leave.  NULL on ENOMEM. */
static char *file_text(const struct settings *s, size_t *ret_len)
{
	char *text = egw_json_dumps(s->file, JSON_INDENT(2) | JSON_SORT_KEYS);
	char *t2;
	size_t n;

	if (!text)
		return NULL;
	n = strlen(text);
	t2 = realloc(text, n + 2);
	if (!t2) {
		free(text);
		return NULL;
	}
	t2[n] = '\n';
	t2[n + 1] = 0;
	*ret_len = n + 1;
	return t2;
}

/* True when path holds exactly len bytes equal to data. */
static bool file_equals(const char *path, const char *data, size_t len)
{
	char buf[4096];
	size_t off = 0;
	bool same = true;
	FILE *f = fopen(path, "rbe");

	if (!f)
		return false;
	for (;;) {
		size_t n = fread(buf, 1, sizeof(buf), f);
		if (n == 0)
			break;
		if (off + n > len || memcmp(buf, data + off, n) != 0) {
			same = false;
			break;
		}
		off += n;
	}
	fclose(f);
	return same && off == len;
}

int settings_save_to(const struct settings *s, const char *path)
{
	size_t n;
	char *text = file_text(s, &n);
	int r;

	if (!text)
		return -ENOMEM;
	/* Flash wears with every write: an unchanged file is left alone. */
	r = file_equals(path ? path : s->path, text, n)
		? 0
		: file_write_atomic(path ? path : s->path, text, n, 0600);
	free(text);
	return r;
}

int settings_save(const struct settings *s)
{
	return settings_save_to(s, NULL);
}

struct settings *settings_snapshot(const struct settings *s)
{
	struct settings *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	memcpy(c->path, s->path, sizeof(c->path));
	c->generation = s->generation;
	c->file = json_deep_copy(s->file);
	c->over = json_deep_copy(s->over);
	c->eff = json_deep_copy(s->eff);
	if (!c->file || !c->over || !c->eff) {
		settings_free(c);
		return NULL;
	}
	fill_values(&c->v, c->eff);
	return c;
}

void settings_rollback(struct settings *s, struct settings *snap)
{
	json_t *t;
#define SWAP(f) (t = s->f, s->f = snap->f, snap->f = t)
	SWAP(file);
	SWAP(over);
	SWAP(eff);
#undef SWAP
	fill_values(&s->v, s->eff);
	s->generation++;
	settings_free(snap);
}

int settings_load_from(struct settings *s, const char *path, struct settings_error *err)
{
	char keep[PATH_MAX];
	int r;

	memcpy(keep, s->path, sizeof(keep));
	snprintf(s->path, sizeof(s->path), "%s", path);
	r = settings_load(s, err);
	memcpy(s->path, keep, sizeof(s->path));
	return r;
}

/* Every getter names a schema key: a typo is a programmer error, caught by
 * the assert in every test build rather than read silently as 0. */
static const json_t *get(const struct settings *s, const char *key, bool scalar)
{
	const struct skey *k = schema_find(key);
	assert(k && "settings: key not in the schema");
	assert(!k ||
	       scalar == (k->type != ST_URL_LIST && k->type != ST_DEVICES && k->type != ST_ARRAY));
	UNUSED(scalar);
	return k ? lookup(s->eff, key) : NULL;
}

const json_t *settings_get_json(const struct settings *s, const char *key)
{
	const struct skey *k = schema_find(key);
	assert((k || schema_is_group(key)) && "settings: key not in the schema");
	UNUSED(k);
	return lookup(s->eff, key);
}

int64_t settings_get_int(const struct settings *s, const char *key)
{
	const json_t *v = get(s, key, true);
	return json_is_integer(v) ? json_integer_value(v) : 0;
}

const char *settings_get_str(const struct settings *s, const char *key)
{
	const json_t *v = get(s, key, true);
	return json_is_string(v) ? json_string_value(v) : "";
}

bool settings_get_bool(const struct settings *s, const char *key)
{
	return json_is_true(get(s, key, true));
}

/* URL values in doc (string or array of strings at key) masked in place.
 * Returns 0 or -ENOMEM (a value may then be left unmasked: drop doc). */
static int mask_urls_at(json_t *doc, const char *key)
{
	json_t *v = (json_t *)lookup(doc, key);
	size_t n = json_is_array(v) ? json_array_size(v) : 1;

	for (size_t i = 0; v && i < n; i++) {
		json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
		char *m;

		if (!json_is_string(e))
			continue;
		m = mask_url(json_string_value(e));
		if (!m || json_string_set(e, m) < 0) {
			free(m);
			return -ENOMEM;
		}
		free(m);
	}
	return 0;
}

json_t *settings_to_json(const struct settings *s, bool mask)
{
	json_t *doc = json_deep_copy(s->eff);
	if (!doc || !mask)
		return doc;
	for (size_t i = 0; i < ARRAY_SIZE(schema); i++) {
		if ((schema[i].type == ST_URL || schema[i].type == ST_URL_LIST) &&
		    mask_urls_at(doc, schema[i].key) < 0) {
			json_decref(doc);
			return NULL;
		}
		if (!(schema[i].flags & SF_SECRET))
			continue;
		const json_t *v = lookup(doc, schema[i].key);
		if (!json_is_string(v) || !json_string_length(v))
			continue;
		char buf[128];
		const char *leaf;
		json_t *parent = parent_for(doc, schema[i].key, buf, sizeof(buf), &leaf);
		/* never hand out a document with a secret left unmasked */
		if (!parent || json_object_set_new(parent, leaf, json_string(MASK)) < 0) {
			json_decref(doc);
			return NULL;
		}
	}
	return doc;
}
