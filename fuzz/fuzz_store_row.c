/* Fuzz the parser of rows read back from the store: store.c's gap_absorb,
 * which reads the payload of an old gap row ({"ranges":[[a,b],...],
 * "dropped":K}) when store_enforce_bounds drops it, followed by gap_merge
 * (against a real, empty store) and gap_payload, as the enforcement does.
 * They are static, so this file compiles store.c into itself.
 * Checks: no crash or undefined behaviour on any payload (a corrupt row
 * included); the merged ranges are sorted, disjoint, at most
 * STORE_MAX_RANGES; and the new gap payload parses back to the same ranges. */
/* clang warns about style in the included module that gcc accepts. */
#ifdef __clang__
#pragma clang diagnostic ignored "-Wstring-concatenation"
#endif
#include "store/store.c"

#include <assert.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct store *fuzz_store;
static char fuzz_dir[128];

static void cleanup(void)
{
	char p[192];
	static const char *const files[] = { "store.db", "store.db-wal", "store.db-shm" };

	store_close(fuzz_store);
	fuzz_store = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		snprintf(p, sizeof(p), "%s/%s", fuzz_dir, files[i]);
		unlink(p);
	}
	rmdir(fuzz_dir);
}

static struct store *get_store(void)
{
	char path[192];
	struct store_config cfg = { 0 };

	if (fuzz_store)
		return fuzz_store;
	snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/egw-fuzz-store-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(fuzz_dir))
		return NULL;
	snprintf(path, sizeof(path), "%s/store.db", fuzz_dir);
	cfg.path = path;
	if (store_open(NULL, &cfg, &fuzz_store) < 0)
		return NULL;
	atexit(cleanup);
	return fuzz_store;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store *s = get_store();
	struct gap g = { 0 }, back = { 0 };
	char *payload, *text;

	if (!s || size > 65536)
		return 0;
	payload = malloc(size + 1);
	if (!payload)
		return 0;
	memcpy(payload, data, size);
	payload[size] = 0;

	pthread_mutex_lock(&s->lock);
	/* twice, as when two old gap rows are dropped in one enforcement */
	gap_absorb(&g, payload);
	gap_absorb(&g, payload);
	assert(g.dropped >= 0);
	if (!g.oom && gap_merge(s, &g) == SQLITE_OK) {
		assert(g.n <= STORE_MAX_RANGES);
		for (unsigned i = 0; i + 1 < g.n; i++)
			assert(g.ranges[i].first <= g.ranges[i + 1].first);
		text = gap_payload(&g, 1, 0, "max_bytes");
		if (text) {
			gap_absorb(&back, text);
			assert(back.oom || back.n == g.n);
			for (unsigned i = 0; !back.oom && i < g.n; i++)
				assert(back.ranges[i].first == g.ranges[i].first &&
				       back.ranges[i].last == g.ranges[i].last);
			free(text);
		}
	}
	pthread_mutex_unlock(&s->lock);
	free(g.ranges);
	free(back.ranges);
	free(payload);
	return 0;
}
