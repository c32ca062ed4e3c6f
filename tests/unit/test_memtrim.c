/* memtrim: the pages it unmaps come back intact, and nothing written is lost.
 *
 * The test touches code and constant data of its own and of the libraries
 * egwd uses, unmaps them with memtrim_release(), then uses them again: a
 * digest, a JSON round trip, an SQLite query and a constant table must give
 * what they gave before, and a static variable, the heap and the GOT (every
 * library call goes through it) must be untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include "base/memtrim.h"

/* constant data of our own, in .rodata */
static const uint32_t table[1024] = { [0] = 1, [511] = 0xdeadbeef, [1023] = 7 };
/* Written data, several pages of each kind, so that whole pages of them
 * exist: MADV_DONTNEED on .data would bring back the file's contents, on
 * .bss zeros, on RELRO the pointers before relocation. */
static int written = 5;
static int big_data[8192] = { 1 };
static int big_bss[8192];
static const char *const relro[2048] = { [0 ... 2047] = "relocated" };

static uint64_t sum_table(void)
{
	uint64_t s = 0;
	for (unsigned i = 0; i < 1024; i++)
		s = s * 31 + table[i];
	return s;
}

static void digest(unsigned char out[32])
{
	unsigned int n = 0;
	EVP_Digest("egw", 3, out, &n, EVP_sha256(), NULL);
	assert_int_equal(n, 32);
}

static char *json_round_trip(void)
{
	json_t *o = json_pack("{s:I,s:s}", "seq", (json_int_t)1234567890123LL, "p", "x");
	char *s = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
	json_decref(o);
	return s;
}

static int64_t sqlite_sum(void)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
					    "SELECT x + 1 FROM c WHERE x < 100) SELECT sum(x) FROM c",
					    -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void test_pages_come_back_intact(void **state)
{
	unsigned char d0[32], d1[32];
	struct memtrim_result r;
	char *heap = malloc(100000);
	(void)state;

	memset(heap, 0x5a, 100000);
	digest(d0);
	char *j0 = json_round_trip();
	uint64_t t0 = sum_table();
	assert_int_equal(sqlite_sum(), 5050);
	written = 6;
	for (unsigned i = 0; i < 8192; i++) {
		big_data[i] = (int)i;
		big_bss[i] = (int)i + 1;
	}

	memtrim_release(&r);
	assert_false(r.traced);
	/* the test, libc, libcrypto, jansson, sqlite, ... */
	assert_true(r.objects >= 5);
	assert_true(r.segments >= 10);
	assert_true(r.before.rss_kb > 0 && r.after.rss_kb > 0);
	/* file pages were unmapped, and the process's own memory was not lost */
	assert_true(r.after.file_kb < r.before.file_kb);

	digest(d1);
	assert_memory_equal(d0, d1, 32);
	char *j1 = json_round_trip();
	assert_string_equal(j0, j1);
	assert_string_equal(j1, "{\"p\":\"x\",\"seq\":1234567890123}");
	assert_int_equal(sum_table(), t0);
	assert_int_equal(sqlite_sum(), 5050);
	assert_int_equal(written, 6);
	for (unsigned i = 0; i < 8192; i++)
		if (big_data[i] != (int)i || big_bss[i] != (int)i + 1)
			fail_msg("written data at %u lost", i);
	for (unsigned i = 0; i < 2048; i++)
		if (strcmp(relro[i], "relocated") != 0)
			fail_msg("relocated pointer %u lost", i);
	for (unsigned i = 0; i < 100000; i++)
		if (heap[i] != 0x5a)
			fail_msg("heap byte %u changed", i);
	free(j0);
	free(j1);
	free(heap);

	/* again, right away: nothing breaks when little is left to unmap */
	memtrim_release(&r);
	digest(d1);
	assert_memory_equal(d0, d1, 32);
}

static void test_usage(void **state)
{
	struct mem_usage u;
	(void)state;
	assert_int_equal(mem_usage_read(&u), 0);
	assert_true(u.rss_kb > 0);
	assert_true(u.anon_kb > 0 && u.file_kb > 0);
	assert_true(u.anon_kb + u.file_kb <= u.rss_kb + 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_usage),
		cmocka_unit_test(test_pages_come_back_intact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
