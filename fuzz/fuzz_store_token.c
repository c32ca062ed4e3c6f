/* Fuzz the store's tokens at rest (store/token.c).  The first byte picks:
 *   even: the rest is a stored jwt column, a BLOB as read back from a
 *         damaged or foreign file ("EJ1" plain, "EJ2" naming a dictionary;
 *         dictionary 1 exists, any other id does not);
 *   odd:  the rest is a token text, packed (with dictionary 1 when the
 *         second byte is odd) and read back.
 * Checks: no crash or undefined behaviour; what unpacks is a compact JWS
 * (three parts), and a packed token reads back byte for byte. */
#include <assert.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "store/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The dictionary: a small batch token's raw form. */
static const char dict_token[] =
	"eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImRldmljZSI6IjAxYWIifQ.eyJ2IjoyLCJzZXEiOjcsImRldmljZXM"
	"iOlt7ImlkIjoiaHVhd2VpMCIsInBvbGxzIjpbeyJ0IjoxLCJyIjp7ImludmVydGVyIjp7IlciOi00NTM4LCJMMV9WI"
	"joyMzEuNn19fV19XX0.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ"
	"1Njc4OTo7PD0-Pw";

static uint8_t *dict_raw;
static size_t dict_n;

static int lookup(void *ud, int64_t id, struct token_dict *ret)
{
	(void)ud;
	if (id != 1 || !dict_raw)
		return -ENOENT;
	*ret = (struct token_dict){ .id = 1, .data = dict_raw, .n = dict_n };
	return 0;
}

static sqlite3_stmt *select_param(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "SELECT ?1", -1, &st, NULL) != SQLITE_OK)
		return NULL;
	return st;
}

static void check_jws(const char *t)
{
	const char *d1 = strchr(t, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	assert(d1 && d2 && !strchr(d2 + 1, '.'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st;
	char *out;

	if (size < 1 || size > 65536)
		return 0;
	if (!dict_raw) {
		dict_raw = store_token_raw(dict_token, &dict_n);
		assert(dict_raw);
	}
	if (sqlite3_open(":memory:", &db) != SQLITE_OK || !(st = select_param(db))) {
		sqlite3_close(db);
		return 0;
	}
	if (data[0] % 2 == 0) {
		sqlite3_bind_blob(st, 1, data + 1, (int)(size - 1), SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			out = store_token_column(st, 0, lookup, NULL);
			if (out && sqlite3_column_type(st, 0) == SQLITE_BLOB)
				check_jws(out);
			free(out);
			out = store_token_payload(st, 0, lookup, NULL);
			free(out);
		}
	} else if (size >= 2 && !memchr(data + 2, 0, size - 2)) {
		char *text = malloc(size - 1);
		struct token_dict d = { .id = 1, .data = dict_raw, .n = dict_n };
		void *packed = NULL;
		uint8_t *raw = NULL;
		size_t rn = 0;

		assert(text);
		memcpy(text, data + 2, size - 2);
		text[size - 2] = '\0';
		int64_t n = store_token_bind(st, 1, text, data[1] % 2 ? &d : NULL, &packed, &raw,
					     &rn);
		assert(n >= 0 && ((size_t)n <= strlen(text) || packed));
		if (sqlite3_step(st) == SQLITE_ROW) {
			out = store_token_column(st, 0, lookup, NULL);
			assert(out && strcmp(out, text) == 0);
			free(out);
		}
		free(raw);
		free(packed);
		free(text);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return 0;
}
