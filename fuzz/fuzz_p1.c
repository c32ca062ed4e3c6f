/* Fuzz the P1 telegram parser (devices/p1.h): the input is fed whole, then
 * again in pieces whose sizes come from the input itself.  Checks: no crash,
 * the same telegrams either way, and every delivered telegram decodes to
 * finite values with a terminated serial and header. */
#include "devices/p1.h"

#include <assert.h>
#include <math.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct count {
	unsigned n;
	double sum;
};

static void on_telegram(void *ud, const struct p1_telegram *t)
{
	struct count *c = ud;
	c->n++;
	assert(memchr(t->serial, '\0', sizeof(t->serial)));
	assert(memchr(t->header, '\0', sizeof(t->header)));
	/* an M-Bus reading time is 0 or a time of the years 2000..2099 */
	for (unsigned k = 0; k < P1_MBUS_MAX; k++)
		assert(t->mbus[k].ts_ms == 0 ||
		       (t->mbus[k].ts_ms > 946000000000LL && t->mbus[k].ts_ms < 4103000000000LL));
	for (unsigned f = 0; f < RF_COUNT; f++) {
		assert(!isinf(t->r.v[f]));
		if (!isnan(t->r.v[f]))
			c->sum += t->r.v[f];
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct count whole = { 0 }, pieces = { 0 };
	struct p1_parser *a, *b;
	struct p1_stats sa, sb;
	size_t off = 0, k = 0;

	if (p1_parser_new(on_telegram, &whole, &a) < 0)
		return 0;
	if (p1_parser_new(on_telegram, &pieces, &b) < 0) {
		p1_parser_free(a);
		return 0;
	}
	p1_parser_feed(a, data, size);
	while (off < size) {
		size_t len = 1 + (size ? data[k++ % size] % 64 : 0);
		if (len > size - off)
			len = size - off;
		p1_parser_feed(b, data + off, len);
		off += len;
	}
	p1_parser_stats(a, &sa);
	p1_parser_stats(b, &sb);
	assert(whole.n == pieces.n && sa.telegrams == whole.n);
	assert(memcmp(&sa, &sb, sizeof(sa)) == 0);
	assert(whole.sum == pieces.sum || (isnan(whole.sum) && isnan(pieces.sum)));
	p1_parser_free(a);
	p1_parser_free(b);
	return 0;
}
