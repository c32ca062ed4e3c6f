/* json: jansson without silent loss under allocation failure.
 *
 * jansson's json_dumps() ignores a failure to write an object's key (in
 * dump.c the result of dump_string() for keys is not checked): when the
 * buffer cannot grow while a key is written, the key is dropped and the rest
 * of the document is written after it, giving text such as
 * {"alg":"ES256",:"k1"} and reporting success.  egw signs and stores that
 * text, so egw_json_dumps() writes through json_dump_callback() into its own
 * buffer, whose first failed append fails the whole dump.
 *
 * jansson's parser has the same weakness: a character the lexer cannot
 * append to its token buffer is dropped ("https://a.example" loads as
 * "https://a.examle", 50.01 as 50.009999999999977) and the load succeeds;
 * and a load that fails for want of memory is often reported as a syntax
 * error ("string or '}' expected near ...") or with no message at all.  A
 * good settings file taken for malformed is set aside; a value silently
 * changed is worse.  json_copy() likewise drops members it cannot add.
 * So jansson's allocator is wrapped (at the first call of egw_json_load*()
 * or egw_json_alloc_failures(), in front of whatever allocator is installed:
 * egwd's first is the settings load, before any thread starts) to count the
 * allocations that fail on each thread, and a load during which one failed
 * is an out-of-memory failure, whatever jansson said. */
#pragma once
#include <jansson.h>
#include <stddef.h>

/* Like json_dumps(j, flags): a malloc'd NUL-terminated text (free()), or NULL
 * when out of memory or when j cannot be encoded with these flags. */
char *egw_json_dumps(const json_t *j, size_t flags);

/* Like json_loadb(), json_loads() and json_load_file(), except that if any
 * allocation failed during the load the result is NULL with
 * json_error_code(err) == json_error_out_of_memory (text "out of memory").
 * err may be NULL. */
json_t *egw_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *err);
json_t *egw_json_loads(const char *text, size_t flags, json_error_t *err);
json_t *egw_json_load_file(const char *path, size_t flags, json_error_t *err);

/* How many of jansson's allocations have failed on the calling thread: equal
 * before and after a jansson call means none failed during it. */
unsigned long egw_json_alloc_failures(void);

/* The JSON type of v in words for error messages ("an integer", "a string",
 * "null", ...). */
const char *egw_json_kind(const json_t *v);
