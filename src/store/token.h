/* Tokens at rest.  A row is stored once: unsigned, its payload JSON (jwt
 * NULL); signed, its token only (payload ''), since the token carries the
 * payload.  A token is kept as a BLOB when that is smaller than its text:
 *   "EJ1" | u32 big-endian n | zlib(u16 hlen | header | u32 plen | payload | signature)
 * with header, payload and signature the bytes its three base64url parts
 * decode to (n: the inflated size).  base64url without padding is one-to-one
 * for the strict decoder, so re-encoding gives the token back exactly.
 * Rows written by older versions (payload and token both as text) read as
 * before.  Internal to the store. */
#pragma once
#include <sqlite3.h>
#include <stdint.h>

/* Binds jwt to parameter i of st: packed when that is smaller.  Returns the
 * bytes stored; *ret_free gets what to free after the step (NULL when the
 * text was bound). */
int64_t store_token_bind(sqlite3_stmt *st, int i, const char *jwt, void **ret_free);

/* The token text of a stored jwt column (TEXT as is, BLOB unpacked), or
 * NULL (no memory, or a damaged blob: logged).  Free with free(). */
char *store_token_column(sqlite3_stmt *st, int col);

/* The payload JSON of a stored token (gap rows, whose ranges a later gap row
 * takes over), or NULL.  Free with free(). */
char *store_token_payload(sqlite3_stmt *st, int col);
