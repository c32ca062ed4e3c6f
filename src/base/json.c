/* jansson without silent loss: serializing, parsing, failed allocations
 * counted (see json.h). */
#include "base/json.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dump_buf {
	char *data;
	size_t len, cap;
	bool failed; /* sticky: jansson goes on after a failed key */
};

static int dump_append(const char *s, size_t n, void *ud)
{
	struct dump_buf *b = ud;

	if (b->failed)
		return -1;
	if (n >= b->cap - b->len || !b->data) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap - b->len <= n) {
			if (cap > SIZE_MAX / 2)
				goto fail;
			cap *= 2;
		}
		p = realloc(b->data, cap);
		if (!p)
			goto fail;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	return 0;
fail:
	b->failed = true;
	return -1;
}

char *egw_json_dumps(const json_t *j, size_t flags)
{
	struct dump_buf b = { 0 };

	if (json_dump_callback(j, dump_append, &b, flags) < 0 || b.failed || !b.data) {
		free(b.data);
		return NULL;
	}
	b.data[b.len] = '\0';
	return b.data;
}

/* Failed jansson allocations on this thread.  jansson's own results do not
 * always say (see json.h), so its allocator is wrapped to count them. */
static _Thread_local unsigned long alloc_failures;
static json_malloc_t next_malloc;
static json_free_t next_free;
static pthread_once_t hook_once = PTHREAD_ONCE_INIT;

static void *hook_malloc(size_t n)
{
	void *p = next_malloc(n);

	if (!p)
		alloc_failures++;
	return p;
}

static void hook_free(void *p)
{
	next_free(p);
}

static void hook_install(void)
{
	/* In front of whatever is installed (malloc/free, or a test's). */
	json_get_alloc_funcs(&next_malloc, &next_free);
	json_set_alloc_funcs(hook_malloc, hook_free);
}

unsigned long egw_json_alloc_failures(void)
{
	pthread_once(&hook_once, hook_install);
	return alloc_failures;
}

/* Turns a result built while an allocation failed into a clean failure. */
static json_t *checked(json_t *j, unsigned long before, json_error_t *err)
{
	if (alloc_failures == before)
		return j;
	json_decref(j);
	if (err) {
		snprintf(err->text, JSON_ERROR_TEXT_LENGTH - 1, "out of memory");
		/* where json_error_code() reads the code (jansson.h) */
		err->text[JSON_ERROR_TEXT_LENGTH - 1] = (char)json_error_out_of_memory;
	}
	return NULL;
}

json_t *egw_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *err)
{
	unsigned long before = egw_json_alloc_failures();

	return checked(json_loadb(buf, len, flags, err), before, err);
}

json_t *egw_json_loads(const char *text, size_t flags, json_error_t *err)
{
	unsigned long before = egw_json_alloc_failures();

	return checked(json_loads(text, flags, err), before, err);
}

json_t *egw_json_load_file(const char *path, size_t flags, json_error_t *err)
{
	unsigned long before = egw_json_alloc_failures();

	return checked(json_load_file(path, flags, err), before, err);
}

const char *egw_json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number with a fraction";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "?";
}
