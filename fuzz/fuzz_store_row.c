/* Fuzz the parser of rows read back from the store: store_gap_absorb, which
 * reads the payload of an old gap row ({"ranges":[[a,b],...],"dropped":K})
 * when store_enforce_bounds drops it, followed by store_gap_merge and
 * store_gap_payload, as the enforcement does.  The surviving rows that
 * merging asks about are every seq that is a multiple of 1000, so both
 * answers (a row between, none) occur.
 * Checks: no crash or undefined behaviour on any payload (a corrupt row
 * included); the merged ranges are sorted, at most STORE_MAX_RANGES, and
 * neighbours are separated by a surviving row;
 * the new gap payload parses back to the same ranges. */
#include <assert.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "store/gap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SURVIVOR 1000

/* A row survives at every multiple of SURVIVOR: is one strictly between? */
static int between(void *ud, int64_t after, int64_t before)
{
	(void)ud;
	if (after >= before - 1)
		return SQLITE_DONE;
	/* the first multiple above after, computed without overflow */
	int64_t q = after / SURVIVOR + (after >= 0);
	if (q > INT64_MAX / SURVIVOR || q < INT64_MIN / SURVIVOR)
		return SQLITE_DONE;
	return q * SURVIVOR < before ? SQLITE_ROW : SQLITE_DONE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_gap g = { 0 }, back = { 0 };
	char *payload, *text;

	if (size > 65536)
		return 0;
	payload = malloc(size + 1);
	if (!payload)
		return 0;
	memcpy(payload, data, size);
	payload[size] = 0;

	/* twice, as when two old gap rows are dropped in one enforcement */
	store_gap_absorb(&g, payload);
	store_gap_absorb(&g, payload);
	assert(g.dropped >= 0);
	if (!g.oom && store_gap_merge(&g, between, NULL) == SQLITE_OK) {
		assert(g.n <= STORE_MAX_RANGES);
		for (unsigned i = 0; i + 1 < g.n; i++) {
			assert(g.ranges[i].first <= g.ranges[i + 1].first);
			assert(between(NULL, g.ranges[i].last, g.ranges[i + 1].first) == SQLITE_ROW);
		}
		text = store_gap_payload(&g, 1, 0, "max_bytes");
		if (text) {
			store_gap_absorb(&back, text);
			assert(back.oom || back.n == g.n);
			for (unsigned i = 0; !back.oom && i < g.n; i++)
				assert(back.ranges[i].first == g.ranges[i].first &&
				       back.ranges[i].last == g.ranges[i].last);
			free(text);
		}
	}
	store_gap_clear(&g);
	store_gap_clear(&back);
	free(payload);
	return 0;
}
