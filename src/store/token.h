/* Tokens at rest.  A row is stored once: unsigned, its payload JSON (jwt
 * NULL); signed, its token only (payload ''), since the token carries the
 * payload.  A token is kept as a BLOB when that is smaller than its text:
 *   "EJ1" | u32 n | zlib(raw)
 *   "EJ2" | u32 n | u32 dictionary id | zlib(raw) primed with that dictionary
 * raw being u16 hlen | header | u32 plen | payload | signature, the bytes the
 * token's three base64url parts decode to (n: its size), and the integers
 * big-endian.  base64url without padding is one-to-one for the strict
 * decoder, so re-encoding gives the token back exactly.
 * A dictionary is the raw form of an earlier batch's token: the next batch
 * repeats most of its keys, blocks and values, so a row primed with it takes
 * about half the bytes (the store keeps the dictionaries; see store.c).
 * zlib's stream carries the dictionary's checksum, so a wrong one is found.
 * Rows written by older versions (payload and token both as text) read as
 * before.  Internal to the store. */
#pragma once
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* zlib's window: a longer dictionary's first TOKEN_DICT_MAX bytes are used. */
#define TOKEN_DICT_MAX 32768

struct token_dict {
	int64_t id;
	const uint8_t *data;
	size_t n;
};

/* Finds dictionary id for reading; 0, or negative when there is none. */
typedef int (*token_dict_fn)(void *ud, int64_t id, struct token_dict *ret);

/* The raw form of a compact JWS, or NULL (not one, or no memory).  Free with
 * free(). */
uint8_t *store_token_raw(const char *jwt, size_t *ret_n);

/* Binds jwt to parameter i of st: packed (with dict when given) when that is
 * smaller.  Returns the bytes stored; *ret_free gets what to free after the
 * step (NULL when the text was bound).  With ret_raw, a packed token's raw
 * form is handed over too (else *ret_raw is left alone). */
int64_t store_token_bind(sqlite3_stmt *st, int i, const char *jwt, const struct token_dict *dict,
			 void **ret_free, uint8_t **ret_raw, size_t *ret_rn);

/* The token text of a stored jwt column (TEXT as is, BLOB unpacked, asking
 * lookup for its dictionary), or NULL with errno ENOMEM (no memory) or
 * EBADMSG (a damaged blob or a missing dictionary: logged).  Free with
 * free(). */
char *store_token_column(sqlite3_stmt *st, int col, token_dict_fn lookup, void *ud);

/* The payload JSON of a stored token (gap rows, whose ranges a later gap row
 * takes over), or NULL.  Free with free(). */
char *store_token_payload(sqlite3_stmt *st, int col, token_dict_fn lookup, void *ud);
