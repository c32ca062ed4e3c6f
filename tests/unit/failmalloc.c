/* failmalloc: see failmalloc.h. */
#include "failmalloc.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_ulong fm_count;  /* allocations counted since the arm */
static atomic_ulong fm_failed; /* allocations failed since the arm */
static atomic_ulong fm_target; /* 0: disarmed */
static atomic_bool fm_persist;
static atomic_uint fm_mask;
static sqlite3_mem_methods fm_sqlite_orig;

/* True when this allocation (from source src) must fail. */
static bool fm_fail(unsigned src)
{
	unsigned long target = atomic_load(&fm_target), n;

	if (target == 0 || !(atomic_load(&fm_mask) & src))
		return false;
	n = atomic_fetch_add(&fm_count, 1) + 1;
	/* jansson's allocations fail one at a time even in persistent mode: its
	 * lexer asserts (load.c, lex_unget_unsave) when it gives back a
	 * character it could not save, so a run of failures inside a parse
	 * aborts the process in jansson itself. */
	if (n == target || (n > target && atomic_load(&fm_persist) && src != FM_JSON)) {
		atomic_fetch_add(&fm_failed, 1);
		return true;
	}
	return false;
}

void failmalloc_arm(unsigned long n, bool persist, unsigned mask)
{
	atomic_store(&fm_target, 0);
	atomic_store(&fm_count, 0);
	atomic_store(&fm_failed, 0);
	atomic_store(&fm_persist, persist);
	atomic_store(&fm_mask, mask);
	atomic_store(&fm_target, n);
}

unsigned long failmalloc_disarm(void)
{
	atomic_store(&fm_target, 0);
	return atomic_load(&fm_failed);
}

unsigned long failmalloc_count(void)
{
	return atomic_load(&fm_count);
}

/* ---- egw's own calls (ld --wrap) ---- */

void *__wrap_malloc(size_t n)
{
	return fm_fail(FM_EGW) ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return fm_fail(FM_EGW) ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	return fm_fail(FM_EGW) ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	return fm_fail(FM_EGW) ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
	return fm_fail(FM_EGW) ? NULL : __real_strndup(s, n);
}

/* ---- jansson ---- */

static void *fm_json_malloc(size_t n)
{
	return fm_fail(FM_JSON) ? NULL : __real_malloc(n);
}

static void fm_json_free(void *p)
{
	free(p);
}

/* ---- SQLite: its default methods, with the counter in front ---- */

static void *fm_sqlite_malloc(int n)
{
	return fm_fail(FM_SQLITE) ? NULL : fm_sqlite_orig.xMalloc(n);
}

static void *fm_sqlite_realloc(void *p, int n)
{
	return fm_fail(FM_SQLITE) ? NULL : fm_sqlite_orig.xRealloc(p, n);
}

/* ---- OpenSSL ---- */

static void *fm_ssl_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return fm_fail(FM_SSL) ? NULL : __real_malloc(n);
}

static void *fm_ssl_realloc(void *p, size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return fm_fail(FM_SSL) ? NULL : __real_realloc(p, n);
}

static void fm_ssl_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	free(p);
}

int failmalloc_install(void)
{
	sqlite3_mem_methods m;

	if (!CRYPTO_set_mem_functions(fm_ssl_malloc, fm_ssl_realloc, fm_ssl_free))
		return -1;
	json_set_alloc_funcs(fm_json_malloc, fm_json_free);
	if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &fm_sqlite_orig) != SQLITE_OK)
		return -1;
	m = fm_sqlite_orig;
	m.xMalloc = fm_sqlite_malloc;
	m.xRealloc = fm_sqlite_realloc;
	if (sqlite3_config(SQLITE_CONFIG_MALLOC, &m) != SQLITE_OK)
		return -1;
	return sqlite3_initialize() == SQLITE_OK ? 0 : -1;
}
