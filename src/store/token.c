/* Tokens at rest; see token.h. */
#include "store/token.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/log.h"
#include "base/util.h"
#include "crypto/b64url.h"

#define JWT_PACK_MAGIC "EJ1"
#define JWT_PACK_MAGIC_DICT "EJ2"
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

/* The raw form of jwt: u16 hlen | header | u32 plen | payload | signature,
 * the bytes its three base64url parts decode to; NULL when jwt is not a
 * compact JWS (or too big, or no memory). */
uint8_t *store_token_raw(const char *jwt, size_t *ret_n)
{
	const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	size_t len = strlen(jwt), hl, pl, sl;
	uint8_t *raw;
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
	*ret_n = 2 + hl + 4 + pl + sl;
	return raw;
fail:
	free(raw);
	return NULL;
}

/* zlib of raw, primed with dict when there is one; Z_OK or a zlib error. */
static int deflate_with(const uint8_t *raw, size_t rn, const struct token_dict *dict, uint8_t *out,
			size_t *ret_zn)
{
	z_stream z = { 0 };
	int rc;

	if (deflateInit(&z, 9) != Z_OK)
		return Z_MEM_ERROR;
	rc = dict ? deflateSetDictionary(&z, dict->data, (uInt)MIN(dict->n, TOKEN_DICT_MAX)) : Z_OK;
	if (rc == Z_OK) {
		z.next_in = (Bytef *)raw;
		z.avail_in = (uInt)rn;
		z.next_out = out;
		z.avail_out = (uInt)*ret_zn;
		rc = deflate(&z, Z_FINISH);
		rc = rc == Z_STREAM_END ? Z_OK : Z_BUF_ERROR;
		*ret_zn = z.total_out;
	}
	deflateEnd(&z);
	return rc;
}

/* The packed form of jwt, or NULL (malformed token, no memory, or not
 * smaller than the text: then the text is stored).  *ret_raw gets the raw
 * form when asked for (the next dictionary). */
static uint8_t *jwt_pack(const char *jwt, const struct token_dict *dict, size_t *ret_n,
			 uint8_t **ret_raw, size_t *ret_rn)
{
	size_t len = strlen(jwt), rn = 0, zn, hdr = dict ? 11 : 7;
	uint8_t *raw = store_token_raw(jwt, &rn), *out = NULL;

	if (!raw)
		return NULL;
	zn = compressBound(rn);
	out = malloc(hdr + zn);
	if (!out || deflate_with(raw, rn, dict, out + hdr, &zn) != Z_OK || hdr + zn >= len)
		goto fail;
	memcpy(out, dict ? JWT_PACK_MAGIC_DICT : JWT_PACK_MAGIC, 3);
	put_be(out + 3, (uint32_t)rn, 4);
	if (dict)
		put_be(out + 7, (uint32_t)dict->id, 4);
	*ret_n = hdr + zn;
	if (ret_raw) {
		*ret_raw = raw;
		*ret_rn = rn;
	} else {
		free(raw);
	}
	return out;
fail:
	free(raw);
	free(out);
	return NULL;
}

/* Inflates a packed token body into raw (rn bytes); Z_OK when it fills raw
 * exactly.  A stream that asks for a dictionary gets the one whose id the
 * row names, and only if its checksum is the one the stream expects. */
static int inflate_with(const uint8_t *z_in, size_t zn, uint8_t *raw, size_t rn, int64_t dict_id,
			token_dict_fn lookup, void *ud)
{
	struct token_dict d = { 0 };
	z_stream z = { 0 };
	int rc;

	if (inflateInit(&z) != Z_OK)
		return Z_MEM_ERROR;
	z.next_in = (Bytef *)z_in;
	z.avail_in = (uInt)zn;
	z.next_out = raw;
	z.avail_out = (uInt)rn;
	rc = inflate(&z, Z_FINISH);
	if (rc == Z_NEED_DICT) {
		rc = Z_DATA_ERROR;
		if (dict_id > 0 && lookup && lookup(ud, dict_id, &d) == 0 &&
		    inflateSetDictionary(&z, d.data, (uInt)MIN(d.n, TOKEN_DICT_MAX)) == Z_OK)
			rc = inflate(&z, Z_FINISH);
	}
	if (rc == Z_STREAM_END && z.total_out == rn && z.avail_in == 0)
		rc = Z_OK;
	else if (rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR)
		rc = Z_DATA_ERROR;
	inflateEnd(&z);
	return rc;
}

char *store_token_column(sqlite3_stmt *st, int col, token_dict_fn lookup, void *ud)
{
	const uint8_t *b;
	uint8_t *raw = NULL;
	char *out = NULL;
	size_t n, rn, hl, pl, sl;
	int64_t dict_id = 0;
	unsigned hdr = 7;

	if (sqlite3_column_type(st, col) != SQLITE_BLOB) {
		const unsigned char *t = sqlite3_column_text(st, col);
		return t ? strdup((const char *)t) : NULL;
	}
	b = sqlite3_column_blob(st, col);
	n = (size_t)sqlite3_column_bytes(st, col);
	if (b && n >= 11 && memcmp(b, JWT_PACK_MAGIC_DICT, 3) == 0) {
		dict_id = get_be(b + 7, 4);
		hdr = 11;
	} else if (!b || n < 7 || memcmp(b, JWT_PACK_MAGIC, 3) != 0) {
		goto bad;
	}
	rn = get_be(b + 3, 4);
	if (rn < 6 || rn > JWT_PACK_MAX)
		goto bad;
	raw = malloc(rn);
	if (!raw)
		return NULL;
	int zr = inflate_with(b + hdr, n - hdr, raw, rn, dict_id, lookup, ud);
	if (zr == Z_MEM_ERROR) {
		errno = ENOMEM;
		goto out;
	}
	if (zr != Z_OK)
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
	errno = EBADMSG;
out:
	free(raw);
	return out;
}

char *store_token_payload(sqlite3_stmt *st, int col, token_dict_fn lookup, void *ud)
{
	char *jwt = store_token_column(st, col, lookup, ud), *out = NULL;
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

int64_t store_token_bind(sqlite3_stmt *st, int i, const char *jwt, const struct token_dict *dict,
			 void **ret_free, uint8_t **ret_raw, size_t *ret_rn)
{
	size_t n;
	uint8_t *p = jwt_pack(jwt, dict && dict->data ? dict : NULL, &n, ret_raw, ret_rn);

	*ret_free = p;
	if (p) {
		sqlite3_bind_blob(st, i, p, (int)n, SQLITE_STATIC);
		return (int64_t)n;
	}
	sqlite3_bind_text(st, i, jwt, -1, SQLITE_STATIC);
	return (int64_t)strlen(jwt);
}
