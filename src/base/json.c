/* Serializing a jansson value without silent loss (see json.h). */
#include "base/json.h"

#include <stdbool.h>
#include <stdint.h>
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
