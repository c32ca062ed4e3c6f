/* mem: the usage figures are read and consistent, and a trim hands freed
 * heap back (private memory falls) without touching what is in use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/mem.h"

static void test_usage(void **state)
{
	struct mem_usage u;
	(void)state;
	assert_int_equal(mem_usage_read(&u), 0);
	assert_true(u.rss_kb > 0 && u.pss_kb > 0 && u.private_kb > 0 && u.anon_kb > 0);
	assert_true(u.pss_kb <= u.rss_kb);
	assert_true(u.private_kb <= u.pss_kb + 4);
	assert_true(u.private_dirty_kb <= u.private_kb);
}

static void test_trim_returns_freed_heap(void **state)
{
	enum { N = 4096, SZ = 1000 }; /* 4 MB in small blocks: not mmap'd, stays in the heap */
	struct mem_usage a, b, c;
	static char *blocks[N];
	char *keep = malloc(SZ);
	(void)state;

#if defined(__SANITIZE_ADDRESS__)
	/* ASan's allocator keeps freed memory in quarantine; malloc_trim is
	 * glibc's and has nothing to hand back there. */
	free(keep);
	skip();
#endif
	memset(keep, 0x5a, SZ);
	for (unsigned i = 0; i < N; i++) {
		blocks[i] = malloc(SZ);
		assert_non_null(blocks[i]);
		memset(blocks[i], (int)i, SZ);
	}
	assert_int_equal(mem_usage_read(&a), 0);
	/* Free all but the first (it keeps the heap's low end in use). */
	for (unsigned i = 0; i < N; i++)
		free(blocks[i]);
	assert_int_equal(mem_usage_read(&b), 0);
	mem_trim();
	assert_int_equal(mem_usage_read(&c), 0);
	/* At least 3 of the 4 MB go back to the kernel. */
	assert_true(a.private_dirty_kb > c.private_dirty_kb + 3000);
	for (unsigned i = 0; i < SZ; i++)
		assert_int_equal((unsigned char)keep[i], 0x5a);
	free(keep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_usage),
		cmocka_unit_test(test_trim_returns_freed_heap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
