/* The uploader's source on top of src/store: signed rows, oldest first. */
#include <errno.h>

#include "backend/uploader.h"
#include "store/store.h"

static int store_src_peek(void *ud, uint64_t after_seq, uint64_t *ret_seq, char **ret_jwt)
{
	struct store *s = ud;
	struct store_row row = { 0 };
	struct store_stats st;
	unsigned n = 0;
	int r = store_peek(s, (int64_t)after_seq, 1, &row, &n);

	if (r < 0)
		return r;
	if (n == 0) {
		store_get_stats(s, &st);
		return st.unsigned_rows > 0 ? -EAGAIN : -ENOENT;
	}
	*ret_seq = (uint64_t)row.seq;
	*ret_jwt = row.jwt;
	row.jwt = NULL;
	store_rows_clear(&row, 1);
	return 0;
}

static int store_src_ack(void *ud, uint64_t seq)
{
	return store_ack(ud, (int64_t)seq);
}

const struct uploader_source uploader_store_source = {
	.peek = store_src_peek,
	.ack = store_src_ack,
};
