/* failmalloc: a test-only allocator that counts allocations and fails the
 * n-th one on demand, in the manner of SQLite's test_malloc.c.
 *
 * It sees four sources of heap allocations:
 *   - egw's own calls to malloc, calloc, realloc, strdup and strndup, through
 *     GNU ld's --wrap (the test executable is linked with
 *     -Wl,--wrap=malloc,...; only the objects of that link are redirected,
 *     i.e. egw's code from libegw.a and the test itself, never glibc);
 *   - jansson, through json_set_alloc_funcs;
 *   - SQLite, through SQLITE_CONFIG_MALLOC (a wrapper of its default methods);
 *   - OpenSSL, through CRYPTO_set_mem_functions.
 * Every allocation from an enabled source takes the next number from one
 * counter shared by all threads; the armed one returns NULL (as a real
 * out-of-memory would), and in persistent mode every later one too (except
 * jansson's: see fm_fail in failmalloc.c).
 *
 * failmalloc_install() must run before anything touches jansson, SQLite or
 * OpenSSL (first thing in main). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

enum fm_source {
	FM_EGW = 1u << 0,
	FM_JSON = 1u << 1,
	FM_SQLITE = 1u << 2,
	FM_SSL = 1u << 3,
	FM_ALL = FM_EGW | FM_JSON | FM_SQLITE | FM_SSL,
};

/* Installs the jansson, SQLite and OpenSSL hooks.  Returns 0 or -1 (a library
 * refused: it had allocated already). */
int failmalloc_install(void);

/* Starts counting allocations from the sources in `mask` at 0 and makes the
 * n-th one (n >= 1) fail; with `persist`, every one after it fails too. */
void failmalloc_arm(unsigned long n, bool persist, unsigned mask);
/* Stops failing.  Returns how many allocations were failed since the arm
 * (0: the operation finished before reaching the n-th). */
unsigned long failmalloc_disarm(void);
/* Allocations counted since the last arm. */
unsigned long failmalloc_count(void);

/* The --wrap targets (called by the linker's redirection, not by hand). */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
