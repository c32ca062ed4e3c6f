/* Tokens at rest; see token.h. */
#include "store/token.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/log.h"
#include "crypto/b64url.h"

#define JWT_PACK_MAGIC "EJ1"
#define JWT_PACK_MAX (16u << 20)

static void put_be(uint8_t *p, uint32_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static uint32_t get_be(const uint8_t *p, unsigned n)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* The packed form of jwt, or NULL (malformed token, no memory, or not
 * smaller than the text: then the text is stored). */
static uint8_t *jwt_pack(const char *jwt, size_t *ret_n)
{
	const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	size_t len = strlen(jwt), hl, pl, sl;
	uint8_t *raw = NULL, *out = NULL;
	uLongf zn;
	int n;

	if (!d1 || !d2 || strchr(d2 + 1, '.') || len > JWT_PACK_MAX)
		return NULL;
	raw = malloc(len + 16);
	if (!raw)
		return NULL;
	n = b64url_decode(jwt, (size_t)(d1 - jwt), raw + 2, len);
	if (n < 0 || n > 0xffff)
		goto fail;
	hl = (size_t)n;
	put_be(raw, (uint32_t)hl, 2);
	n = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), raw + 2 + hl + 4, len);
	if (n < 0)
		goto fail;
	pl = (size_t)n;
	put_be(raw + 2 + hl, (uint32_t)pl, 4);
	n = b64url_decode(d2 + 1, strlen(d2 + 1), raw + 2 + hl + 4 + pl, len);
	if (n < 0)
		goto fail;
	sl = (size_t)n;
	size_t rn = 2 + hl + 4 + pl + sl;
	zn = compressBound(rn);
	out = malloc(7 + zn);
	if (!out || compress2(out + 7, &zn, raw, rn, 6) != Z_OK || 7 + zn >= len)
		goto fail;
	memcpy(out, JWT_PACK_MAGIC, 3);
	put_be(out + 3, (uint32_t)rn, 4);
	free(raw);
	*ret_n = 7 + zn;
	return out;
fail:
	free(raw);
	free(out);
	return NULL;
}

char *store_token_column(sqlite3_stmt *st, int col)
{
	const uint8_t *b;
	uint8_t *raw = NULL;
	char *out = NULL;
	size_t n, rn, hl, pl, sl;
	uLongf got;

	if (sqlite3_column_type(st, col) != SQLITE_BLOB) {
		const unsigned char *t = sqlite3_column_text(st, col);
		return t ? strdup((const char *)t) : NULL;
	}
	b = sqlite3_column_blob(st, col);
	n = (size_t)sqlite3_column_bytes(st, col);
	if (!b || n < 7 || memcmp(b, JWT_PACK_MAGIC, 3) != 0)
		goto bad;
	rn = get_be(b + 3, 4);
	if (rn < 6 || rn > JWT_PACK_MAX)
		goto bad;
	raw = malloc(rn);
	if (!raw)
		return NULL;
	got = rn;
	if (uncompress(raw, &got, b + 7, n - 7) != Z_OK || got != rn)
		goto bad;
	hl = get_be(raw, 2);
	if (2 + hl + 4 > rn)
		goto bad;
	pl = get_be(raw + 2 + hl, 4);
	if (pl > rn - 2 - hl - 4)
		goto bad;
	sl = rn - 2 - hl - 4 - pl;
	size_t cap = b64url_encoded_len(hl) + b64url_encoded_len(pl) + b64url_encoded_len(sl) + 3;
	out = malloc(cap);
	if (!out)
		goto out;
	int a = b64url_encode(raw + 2, hl, out, cap);
	out[a] = '.';
	int c = b64url_encode(raw + 2 + hl + 4, pl, out + a + 1, cap - (size_t)a - 1);
	out[a + 1 + c] = '.';
	b64url_encode(raw + 2 + hl + 4 + pl, sl, out + a + c + 2, cap - (size_t)(a + c + 2));
	goto out;
bad:
	log_error("store", "a stored token does not unpack (damaged row)");
out:
	free(raw);
	return out;
}

char *store_token_payload(sqlite3_stmt *st, int col)
{
	char *jwt = store_token_column(st, col), *out = NULL;
	const char *d1 = jwt ? strchr(jwt, '.') : NULL, *d2 = d1 ? strchr(d1 + 1, '.') : NULL;

	if (d2) {
		size_t n = (size_t)(d2 - d1 - 1);
		out = malloc(n + 1);
		int r = out ? b64url_decode(d1 + 1, n, (uint8_t *)out, n + 1) : -ENOMEM;
		if (r < 0) {
			free(out);
			out = NULL;
		} else {
			out[r] = '\0';
		}
	}
	free(jwt);
	return out;
}

int64_t store_token_bind(sqlite3_stmt *st, int i, const char *jwt, void **ret_free)
{
	size_t n;
	uint8_t *p = jwt_pack(jwt, &n);

	*ret_free = p;
	if (p) {
		sqlite3_bind_blob(st, i, p, (int)n, SQLITE_STATIC);
		return (int64_t)n;
	}
	sqlite3_bind_text(st, i, jwt, -1, SQLITE_STATIC);
	return (int64_t)strlen(jwt);
}
