/* Settings: one JSON document, <state-dir>/settings.json, validated against
 * the schema (schema.h) and written with file_write_atomic (base/file.h;
 * mode 0600 because it may hold passwords).
 *
 * The document is nested by dotted key: "http.port" is {"http": {"port": N}}.
 * Three layers, later wins: the schema defaults, the file, and the command
 * line overrides (--port, --set KEY=VALUE).  The API reads the effective
 * document (passwords masked as "***") and writes the file layer; overrides
 * are never saved, and a key written through the API drops its override.
 *
 * Validation errors name the key, e.g. "http.port: 70000 is out of range
 * 1..65535", "devices[1].connection: unknown value \"usb\" (expected one of
 * tcp, rtu, rtu-over-tcp)", "foo: unknown key", "settings.json:3:7: malformed
 * JSON: ...".  On any error the settings object is left unchanged.
 *
 * Not thread-safe: use from the loop thread. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/schema.h"

struct settings;

/* The effective settings, typed: one member per schema row (schema.h),
 * filled once from the validated document on every change.  Strings and
 * arrays are borrowed from the settings object and stay valid until its next
 * change (load, set, override, patch, rollback); copy what must outlive it. */
#define SETTINGS_CTYPE_INT int64_t
#define SETTINGS_CTYPE_BOOL bool
#define SETTINGS_CTYPE_STR const char *
#define SETTINGS_CTYPE_ENUM const char *
#define SETTINGS_CTYPE_URL const char *
#define SETTINGS_CTYPE_HOST const char *
#define SETTINGS_CTYPE_BIND const char *
#define SETTINGS_CTYPE_I2C_BUS const char *
#define SETTINGS_CTYPE_URL_LIST const json_t *
#define SETTINGS_CTYPE_DEVICES const json_t *
#define SETTINGS_CTYPE_ARRAY const json_t *
#define SETTINGS_CTYPE_NAME_LIST const json_t *
#define SETTINGS_MEMBER(field, key, type, ...) SETTINGS_CTYPE_##type field;
struct settings_values {
	SETTINGS_SCHEMA(SETTINGS_MEMBER)
};
#undef SETTINGS_MEMBER

/* The typed view of s; never NULL.  Valid until s changes or is freed. */
const struct settings_values *settings_values(const struct settings *s);

struct settings_error {
	char key[128]; /* dotted key at fault, "" when not about one key */
	char msg[256]; /* the problem, without the key */
};

/* "key: msg" (or just msg) into buf; returns buf. */
const char *settings_error_str(const struct settings_error *e, char *buf, size_t len);

/* Defaults only; path is where settings_load/reload/save read and write.
 * Returns 0 or -ENOMEM. */
int settings_new(const char *path, struct settings **ret);
void settings_free(struct settings *s);
const char *settings_path(const struct settings *s);

/* Reads the file layer from the settings path.  A missing file is an empty
 * document (returns 0).  Returns -EGW_EJSON (malformed), -EGW_ESCHEMA
 * (invalid), -errno (unreadable); err says why.  Unchanged on error. */
int settings_load(struct settings *s, struct settings_error *err);

/* Validates a (partial) settings document.  Returns 0 or -EGW_ESCHEMA. */
int settings_validate(const json_t *doc, struct settings_error *err);

/* Sets one dotted key (a leaf or a whole group object) in the file layer
 * (settings_set) or the override layer (settings_override).  value is
 * borrowed.  Returns 0 or -EGW_ESCHEMA. */
int settings_set(struct settings *s, const char *key, const json_t *value,
		 struct settings_error *err);
int settings_override(struct settings *s, const char *key, const json_t *value,
		      struct settings_error *err);

/* Merges a partial document into the file layer (objects merge, everything
 * else replaces).  A secret given as "***" keeps its current value, so a
 * GET-edit-POST round trip does not wipe passwords.  Keys the patch sets
 * lose their command-line override (the API value is the newer one; it is
 * what the file keeps).  Returns 0,
 * -EGW_ESCHEMA (nothing changed) or -ENOMEM. */
int settings_patch(struct settings *s, const json_t *patch, struct settings_error *err);

/* Parses "KEY=VALUE" (--set): VALUE is JSON if it parses as JSON, otherwise
 * the literal string.  Returns 0 (ret_key filled, *ret_value a new
 * reference) or -EINVAL (no '=', empty or over-long key). */
int settings_parse_assignment(const char *arg, char *ret_key, size_t keylen, json_t **ret_value);

/* Atomically writes the file layer to the settings path (settings_save) or
 * to another path (settings_save_to, e.g. the last-known-good copy).  A file
 * that already holds the same text is not rewritten.  Returns 0 or -errno. */
int settings_save(const struct settings *s);
int settings_save_to(const struct settings *s, const char *path);

/* Reads the file layer from another file (the last-known-good copy), as
 * settings_load does; the settings path stays where settings_save writes. */
int settings_load_from(struct settings *s, const char *path, struct settings_error *err);

/* A copy of every layer, taken before applying a change; settings_rollback
 * puts it back (and frees it) when the change cannot be applied.
 * settings_snapshot returns NULL on ENOMEM; free an unused one with
 * settings_free. */
struct settings *settings_snapshot(const struct settings *s);
void settings_rollback(struct settings *s, struct settings *snap);


/* Getters by dotted key, for code that genuinely needs a key chosen at run
 * time (and for code written before settings_values; new code reads the
 * typed struct, where a misspelt key does not compile).  A key not in the
 * schema is a programmer error: it asserts (test builds) and reads as
 * 0 / "" / false / NULL in a release build.  settings_get_json also takes a
 * group ("mqtt"). */
int64_t settings_get_int(const struct settings *s, const char *key);
const char *settings_get_str(const struct settings *s, const char *key);
bool settings_get_bool(const struct settings *s, const char *key);
/* Borrowed reference, valid until the settings change. */
const json_t *settings_get_json(const struct settings *s, const char *key);

/* The effective document, secrets masked as "***" when mask and non-empty.
 * New reference, NULL on ENOMEM. */
json_t *settings_to_json(const struct settings *s, bool mask);

/* Bumped on every successful change (load, set, override, patch). */
uint64_t settings_generation(const struct settings *s);
