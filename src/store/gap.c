/* The gap row's ranges; see gap.h. */
#include "store/gap.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/util.h"

void store_gap_add(struct store_gap *g, int64_t first, int64_t last)
{
	if (g->n == g->cap) {
		unsigned cap = g->cap ? 2 * g->cap : 16;
		struct store_seq_range *r = realloc(g->ranges, cap * sizeof(*r));
		if (!r) {
			g->oom = true;
			return;
		}
		g->ranges = r;
		g->cap = cap;
	}
	g->ranges[g->n++] = (struct store_seq_range){ first, last };
}

void store_gap_absorb(struct store_gap *g, const char *payload)
{
	json_error_t je;
	json_t *j = payload ? egw_json_loads(payload, 0, &je) : NULL;
	json_t *ranges = json_object_get(j, "ranges"), *r;
	json_int_t k = json_integer_value(json_object_get(j, "dropped"));
	size_t i;

	/* Out of memory, the row's ranges and count would be lost with it
	 * (a corrupt row has nothing to give and is skipped). */
	if (!payload || (!j && json_error_code(&je) == json_error_out_of_memory)) {
		g->oom = true;
		return;
	}

	/* A corrupt row must not overflow the count (undefined behaviour). */
	if (k > 0)
		g->dropped = k > INT64_MAX - g->dropped ? INT64_MAX : g->dropped + k;
	json_array_foreach (ranges, i, r) {
		json_t *a = json_array_get(r, 0), *b = json_array_get(r, 1);
		if (json_is_integer(a) && json_is_integer(b))
			store_gap_add(g, json_integer_value(a), json_integer_value(b));
	}
	json_decref(j);
}

static int range_cmp(const void *a, const void *b)
{
	const struct store_seq_range *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

int store_gap_merge(struct store_gap *g, store_gap_between_fn *between, void *ud)
{
	unsigned out = 0;

	if (g->n == 0)
		return SQLITE_OK;
	qsort(g->ranges, g->n, sizeof(*g->ranges), range_cmp);
	for (unsigned i = 1; i < g->n; i++) {
		struct store_seq_range *cur = &g->ranges[out], *next = &g->ranges[i];
		/* cur->last + 1 overflows for a corrupt row ending at INT64_MAX */
		bool join = cur->last == INT64_MAX || next->first <= cur->last + 1;
		if (!join) {
			int rc = between(ud, cur->last, next->first);
			if (rc != SQLITE_ROW && rc != SQLITE_DONE)
				return rc;
			join = rc == SQLITE_DONE;
		}
		if (join)
			cur->last = MAX(cur->last, next->last);
		else
			g->ranges[++out] = *next;
	}
	g->n = out + 1;
	/* Keep the newest ranges exact; fold the oldest together. */
	if (g->n > STORE_MAX_RANGES) {
		unsigned fold = g->n - STORE_MAX_RANGES;
		g->ranges[fold].first = g->ranges[0].first;
		memmove(g->ranges, g->ranges + fold, STORE_MAX_RANGES * sizeof(*g->ranges));
		g->n = STORE_MAX_RANGES;
	}
	return SQLITE_OK;
}

char *store_gap_payload(const struct store_gap *g, int64_t seq, int64_t now_ms, const char *reason)
{
	json_t *ranges = json_array(), *o;
	char *text;

	if (!ranges)
		return NULL;
	for (unsigned i = 0; i < g->n; i++) {
		/* a gap row that lost a range would hide which seqs were dropped */
		if (json_array_append_new(ranges,
					  json_pack("[I, I]", (json_int_t)g->ranges[i].first,
						    (json_int_t)g->ranges[i].last)) < 0) {
			json_decref(ranges);
			return NULL;
		}
	}
	o = json_pack("{s:s, s:I, s:I, s:s, s:o, s:I}", "type", "gap", "seq", (json_int_t)seq,
		      "created_ms", (json_int_t)now_ms, "reason", reason, "ranges", ranges,
		      "dropped", (json_int_t)g->dropped);
	if (!o)
		return NULL;
	text = egw_json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return text;
}

void store_gap_clear(struct store_gap *g)
{
	free(g->ranges);
	*g = (struct store_gap){ 0 };
}
