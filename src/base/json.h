/* json: serializing a jansson value without silent loss.
 *
 * jansson's json_dumps() ignores a failure to write an object's key (in
 * dump.c the result of dump_string() for keys is not checked): when the
 * buffer cannot grow while a key is written, the key is dropped and the rest
 * of the document is written after it, giving text such as
 * {"alg":"ES256",:"k1"} and reporting success.  egw signs and stores that
 * text, so egw_json_dumps() writes through json_dump_callback() into its own
 * buffer, whose first failed append fails the whole dump. */
#pragma once
#include <jansson.h>
#include <stddef.h>

/* Like json_dumps(j, flags): a malloc'd NUL-terminated text (free()), or NULL
 * when out of memory or when j cannot be encoded with these flags. */
char *egw_json_dumps(const json_t *j, size_t flags);
