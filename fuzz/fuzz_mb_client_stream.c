/* Fuzz the client's receive path end to end: an in-memory server answers
 * each request with raw bytes taken from the input (stale, foreign, short,
 * split or garbage frames).  Properties: no crash, no leak, every callback
 * runs exactly once and the client never wedges.
 *
 * Input: [fc bit][count-1] then one chunk per request: [flags][len][bytes];
 * flags bit 0 writes the request's tid over the first two bytes, bit 1 makes
 * it the previous tid (a stale answer). */
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "loop/loop.h"
#include "modbus/client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
	const uint8_t *d;
	size_t n;
	unsigned calls[3];
};

static int raw(void *ud, const struct mb_request *q, uint8_t *out, size_t cap)
{
	struct fz *f = ud;
	if (f->n < 2)
		return 0;
	uint8_t flags = f->d[0];
	size_t len = MIN((size_t)f->d[1], f->n - 2);
	len = MIN(len, cap);
	memcpy(out, f->d + 2, len);
	f->d += 2 + len;
	f->n -= 2 + len;
	if (len >= 2 && (flags & 1)) {
		uint16_t t = (uint16_t)(flags & 2 ? q->tid - 1 : q->tid);
		out[0] = (uint8_t)(t >> 8);
		out[1] = (uint8_t)t;
	}
	return (int)len;
}

static void on_read(void *ud, int err, const uint16_t *regs, unsigned count)
{
	(void)err;
	if (regs && count)
		(void)regs[count - 1];
	((unsigned *)ud)[0]++;
}

static void on_write(void *ud, int err)
{
	(void)err;
	((unsigned *)ud)[0]++;
}

static void on_devid(void *ud, int err, const struct mb_devid *d)
{
	if (!err && d->n_objects)
		(void)mb_devid_get(d, d->ids[0]);
	((unsigned *)ud)[0]++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { 0 };
	struct mb_mem_server m = { .handle_raw = raw, .ud = &f };
	struct mb_client_config cfg = {
		.kind = MB_TRANSPORT_MEM, .mem = &m, .timeout = 1000, .max_timeouts = 2,
		.backoff_min = 500, .backoff_max = 1000,
	};
	struct loop *l;
	struct mb_client *c;
	uint16_t vals[2] = { 1, 2 };

	if (size < 2)
		return 0;
	f.d = data + 2;
	f.n = size - 2;
	if (loop_new(&l) < 0)
		return 0;
	if (mb_client_new(l, &cfg, &c) < 0)
		abort();
	if (mb_client_read(c, 1, data[0] & 1 ? 4 : 3, 0, (uint16_t)(data[1] % MB_MAX_READ + 1), on_read,
			   &f.calls[0]) < 0 ||
	    mb_client_write(c, 1, MB_FC_WRITE_MULTIPLE, 10, vals, 2, on_write, &f.calls[1]) < 0 ||
	    mb_client_read_devid(c, 1, MB_DEVID_BASIC, 0, on_devid, &f.calls[2]) < 0)
		abort();
	usec_t end = now_usec() + 5 * USEC_PER_SEC;
	while ((f.calls[0] == 0 || f.calls[1] == 0 || f.calls[2] == 0) && now_usec() < end)
		loop_run_once(l, 1000);
	for (int i = 0; i < 3; i++)
		if (f.calls[i] != 1)
			abort(); /* lost or doubled callback, or a wedged client */
	if (mb_client_pending(c) != 0)
		abort();
	mb_client_free(c);
	loop_free(l);
	return 0;
}
