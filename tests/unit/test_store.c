/* store tests, on real SQLite files in a temp directory: append/peek/ack
 * across reopen, persistent seq, sign-later rows, bounds with gap rows,
 * a corrupt file moved aside, a full disk, async append on the worker pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "base/err.h"
#include "base/log.h"
#include "base/util.h"
#include "crypto/b64url.h"
#include "loop/loop.h"
#include "store/store.h"

struct fixture {
	char dir[64];
	char path[128];
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/egw-test-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/store.db", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static struct store *open_store(struct fixture *f, int64_t max_bytes, int64_t max_age_s)
{
	struct store_config cfg = { .path = f->path, .max_bytes = max_bytes, .max_age_s = max_age_s };
	struct store *s = NULL;
	assert_int_equal(store_open(NULL, &cfg, &s), 0);
	return s;
}

static int64_t append_one(struct store *s, int64_t created_ms, bool signed_)
{
	char payload[128], jwt[160];
	int64_t seq = store_next_seq(s);
	snprintf(payload, sizeof(payload), "{\"seq\":%lld,\"v\":\"%032d\"}", (long long)seq, 7);
	/* a signed row keeps only its token (~100 bytes here) */
	snprintf(jwt, sizeof(jwt),
	         "jwt-%lld-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	         (long long)seq);
	assert_int_equal(store_append(s, seq, created_ms, payload, signed_ ? jwt : NULL), 0);
	return seq;
}

static void test_append_peek_ack_reopen(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f, 0, 0);
	struct store_row rows[8];
	struct store_stats st;
	int64_t seqs[5];
	unsigned n;

	for (int i = 0; i < 5; i++)
		seqs[i] = append_one(s, 1000 + i, true);
	for (int i = 1; i < 5; i++)
		assert_true(seqs[i] > seqs[i - 1]);
	store_get_stats(s, &st);
	assert_int_equal(st.backlog, 5);
	assert_int_equal(st.last_seq, seqs[4]);
	store_close(s);

	s = open_store(f, 0, 0);
	assert_int_equal(store_peek(s, 0, 3, rows, &n), 0);
	assert_int_equal(n, 3);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(rows[i].seq, seqs[i]);
		assert_int_equal(rows[i].kind, STORE_BATCH);
		assert_int_equal(rows[i].created_ms, 1000 + (int)i);
		assert_non_null(strstr(rows[i].jwt, "jwt-"));
		assert_null(rows[i].payload);
	}
	store_rows_clear(rows, n);
	/* after_seq pages on */
	assert_int_equal(store_peek(s, seqs[2], 8, rows, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(rows[0].seq, seqs[3]);
	store_rows_clear(rows, n);

	assert_int_equal(store_ack(s, seqs[0]), 0);
	assert_int_equal(store_ack(s, seqs[1]), 0);
	assert_int_equal(store_ack(s, seqs[1]), -ENOENT);
	store_close(s);

	s = open_store(f, 0, 0);
	store_get_stats(s, &st);
	assert_int_equal(st.backlog, 3);
	assert_int_equal(st.delivered, 2);
	assert_int_equal(st.last_seq, seqs[4]);
	assert_int_equal(store_peek(s, 0, 8, rows, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(rows[0].seq, seqs[2]);
	store_rows_clear(rows, n);
	store_close(s);
}

static void test_seq_survives_restart(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f, 0, 0);
	int64_t last, a, b;

	last = append_one(s, 1, true);
	assert_int_equal(store_ack(s, last), 0); /* store now empty: seq lives in meta */
	b = store_next_seq(s); /* reserved, never used */
	store_close(s);

	s = open_store(f, 0, 0);
	a = store_next_seq(s);
	assert_true(a > last);
	assert_true(a >= b);
	assert_int_equal(store_append(s, a, 2, "{}", "t"), 0);
	assert_true(store_next_seq(s) > a);
	/* invalid seqs */
	assert_int_equal(store_append(s, a, 2, "{}", "t"), -EEXIST);
	assert_int_equal(store_append(s, 0, 2, "{}", "t"), -EINVAL);
	assert_int_equal(store_append(s, a + 1000, 2, "{}", "t"), -EINVAL);
	assert_int_equal(store_append(s, a, 2, NULL, "t"), -EINVAL);
	store_close(s);

	s = open_store(f, 0, 0);
	assert_true(store_next_seq(s) > a);
	store_close(s);
}

static void test_sign_later(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f, 0, 0);
	struct store_row rows[8];
	struct store_stats st;
	unsigned n;
	int64_t a = append_one(s, 1, true);
	int64_t b = append_one(s, 2, false);
	int64_t c = append_one(s, 3, true);

	store_get_stats(s, &st);
	assert_int_equal(st.unsigned_rows, 1);
	/* the uploader sees only a: b is unsigned and c must wait behind it */
	assert_int_equal(store_peek(s, 0, 8, rows, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].seq, a);
	store_rows_clear(rows, n);

	assert_int_equal(store_unsigned(s, 8, rows, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].seq, b);
	assert_int_equal(rows[0].created_ms, 2);
	assert_non_null(strstr(rows[0].payload, "\"seq\":"));
	assert_null(rows[0].jwt);
	store_rows_clear(rows, n);

	assert_int_equal(store_set_jwt(s, b, "signed-b"), 0);
	assert_int_equal(store_set_jwt(s, b, "again"), -EEXIST);
	assert_int_equal(store_set_jwt(s, 999, "x"), -ENOENT);
	store_get_stats(s, &st);
	assert_int_equal(st.unsigned_rows, 0);
	assert_int_equal(store_peek(s, 0, 8, rows, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(rows[1].jwt, "signed-b");
	assert_int_equal(rows[2].seq, c);
	store_rows_clear(rows, n);
	store_close(s);
}

static json_t *gap_of(struct store *s, int64_t *ret_seq)
{
	struct store_row rows[64];
	unsigned n;
	json_t *j = NULL;

	assert_int_equal(store_unsigned(s, 64, rows, &n), 0);
	for (unsigned i = 0; i < n; i++)
		if (rows[i].kind == STORE_GAP) {
			json_decref(j);
			j = json_loads(rows[i].payload, 0, NULL);
			*ret_seq = rows[i].seq;
		}
	store_rows_clear(rows, n);
	assert_non_null(j);
	return j;
}

static void test_bounds_bytes(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f, 2000, 0);
	struct store_stats st;
	struct store_row rows[64];
	int64_t seqs[40], gseq, g2seq;
	unsigned n;
	json_t *g, *r;
	int dropped;

	for (int i = 0; i < 40; i++)
		seqs[i] = append_one(s, 1000 + i, true); /* ~100 bytes each */
	store_get_stats(s, &st);
	assert_true(st.bytes > 2000);
	dropped = store_enforce_bounds(s, 5000);
	assert_true(dropped > 0);
	store_get_stats(s, &st);
	assert_true(st.bytes <= 2000);
	assert_int_equal(st.dropped, dropped);
	assert_int_equal(st.unsigned_rows, 1);

	g = gap_of(s, &gseq);
	assert_true(gseq > seqs[39]);
	assert_string_equal(json_string_value(json_object_get(g, "type")), "gap");
	assert_string_equal(json_string_value(json_object_get(g, "reason")), "max_bytes");
	assert_int_equal(json_integer_value(json_object_get(g, "seq")), gseq);
	assert_int_equal(json_integer_value(json_object_get(g, "dropped")), dropped);
	r = json_object_get(g, "ranges");
	assert_int_equal(json_array_size(r), 1);
	assert_int_equal(json_integer_value(json_array_get(json_array_get(r, 0), 0)), seqs[0]);
	assert_int_equal(json_integer_value(json_array_get(json_array_get(r, 0), 1)), seqs[dropped - 1]);
	json_decref(g);

	/* the oldest survivors are the next ones; nothing is dropped twice */
	assert_int_equal(store_peek(s, 0, 1, rows, &n), 0);
	assert_int_equal(rows[0].seq, seqs[dropped]);
	store_rows_clear(rows, n);
	assert_int_equal(store_enforce_bounds(s, 5000), 0);

	/* more data: the next drop swallows the first gap row and merges its range */
	for (int i = 0; i < 30; i++)
		append_one(s, 2000 + i, true);
	int d2 = store_enforce_bounds(s, 6000);
	assert_true(d2 > 0);
	g = gap_of(s, &g2seq);
	assert_true(g2seq > gseq);
	r = json_object_get(g, "ranges");
	assert_int_equal(json_array_size(r), 1);
	assert_int_equal(json_integer_value(json_array_get(json_array_get(r, 0), 0)), seqs[0]);
	assert_true(json_integer_value(json_array_get(json_array_get(r, 0), 1)) >= gseq);
	/* dropped counts every batch lost, including the first gap's */
	store_get_stats(s, &st);
	assert_int_equal(json_integer_value(json_object_get(g, "dropped")), st.dropped);
	json_decref(g);

	/* the gap row is signed and uploaded like a batch */
	assert_int_equal(store_set_jwt(s, g2seq, "gap-token"), 0);
	int64_t after = 0;
	bool seen = false;
	for (;;) {
		assert_int_equal(store_peek(s, after, 64, rows, &n), 0);
		if (n == 0)
			break;
		for (unsigned i = 0; i < n; i++)
			if (rows[i].seq == g2seq) {
				assert_int_equal(rows[i].kind, STORE_GAP);
				assert_string_equal(rows[i].jwt, "gap-token");
				seen = true;
			}
		after = rows[n - 1].seq;
		store_rows_clear(rows, n);
	}
	assert_true(seen);
	store_close(s);

	/* dropped is persisted */
	s = open_store(f, 2000, 0);
	struct store_stats st2;
	store_get_stats(s, &st2);
	assert_int_equal(st2.dropped, st.dropped);
	store_close(s);
}

static void test_bounds_age(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f, 0, 60);
	struct store_stats st;
	struct store_row rows[8];
	unsigned n;
	int64_t gseq, keep;
	json_t *g;

	append_one(s, 1000, true);
	append_one(s, 2000, false); /* unsigned rows age out too */
	keep = append_one(s, 100000, true);
	assert_int_equal(store_enforce_bounds(s, 61000), 0); /* nothing older than 1000 */
	assert_int_equal(store_enforce_bounds(s, 70000), 2);
	store_get_stats(s, &st);
	assert_int_equal(st.backlog, 2);
	assert_int_equal(st.dropped, 2);
	g = gap_of(s, &gseq);
	assert_string_equal(json_string_value(json_object_get(g, "reason")), "max_age");
	assert_int_equal(json_integer_value(json_object_get(g, "dropped")), 2);
	json_decref(g);
	assert_int_equal(store_peek(s, 0, 8, rows, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].seq, keep);
	store_rows_clear(rows, n);
	store_close(s);
}

static void test_corrupt_moved_aside(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f, 0, 0);
	struct store_stats st;
	char garbage[8192];
	FILE *fp;
	DIR *d;
	struct dirent *e;
	bool found = false;
	int64_t seq;

	append_one(s, 1, true);
	store_close(s);
	store_get_stats(s = open_store(f, 0, 0), &st);
	assert_false(st.recovered);
	store_close(s);

	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (char)(i * 131 + 7);
	fp = fopen(f->path, "w");
	assert_non_null(fp);
	fwrite(garbage, 1, sizeof(garbage), fp);
	fclose(fp);

	s = open_store(f, 0, 0);
	store_get_stats(s, &st);
	assert_true(st.recovered);
	assert_int_equal(st.backlog, 0);
	seq = store_next_seq(s);
	assert_int_equal(store_append(s, seq, 5, "{}", "t"), 0);
	store_close(s);

	d = opendir(f->dir);
	assert_non_null(d);
	while ((e = readdir(d)))
		if (strncmp(e->d_name, "store.db.corrupt-", 17) == 0)
			found = true;
	closedir(d);
	assert_true(found);

	/* the fresh store keeps working across reopen */
	s = open_store(f, 0, 0);
	store_get_stats(s, &st);
	assert_false(st.recovered);
	assert_int_equal(st.backlog, 1);
	store_close(s);
}

static void test_disk_full(void **state)
{
	struct fixture *f = *state;
	struct store_config cfg = { .path = f->path, .max_file_bytes = 64 * 1024 };
	struct store *s;
	struct store_stats st;
	char payload[2048];
	int64_t seq, committed = 0, failed_seq = 0;
	unsigned n, total = 0;
	struct store_row rows[64];
	int r = 0;

	memset(payload, 'x', sizeof(payload));
	memcpy(payload, "{\"p\":\"", 6);
	strcpy(payload + sizeof(payload) - 3, "\"}");
	assert_int_equal(store_open(NULL, &cfg, &s), 0);
	for (int i = 0; i < 200; i++) {
		seq = store_next_seq(s);
		r = store_append(s, seq, i, payload, payload); /* kept once, as the token */
		if (r < 0) {
			failed_seq = seq;
			break;
		}
		committed++;
	}
	assert_int_equal(r, -ENOSPC);
	assert_true(committed > 3);
	store_get_stats(s, &st);
	assert_true(st.disk_full);
	assert_int_equal(st.last_err, -ENOSPC);
	assert_int_equal(st.backlog, committed);
	store_close(s);

	/* everything committed is still there; the failed batch can be retried
	 * once there is room (here: a larger cap) */
	cfg.max_file_bytes = 0;
	assert_int_equal(store_open(NULL, &cfg, &s), 0);
	store_get_stats(s, &st);
	assert_false(st.disk_full);
	assert_int_equal(st.backlog, committed);
	int64_t after = 0;
	for (;;) {
		assert_int_equal(store_peek(s, after, 64, rows, &n), 0);
		if (!n)
			break;
		total += n;
		after = rows[n - 1].seq;
		store_rows_clear(rows, n);
	}
	assert_int_equal(total, committed);
	assert_true(store_next_seq(s) > failed_seq - 1);
	seq = store_next_seq(s);
	assert_int_equal(store_append(s, seq, 0, payload, "tok"), 0);
	store_close(s);
}

struct async_ctx {
	struct store_append_req req;
	struct loop *l;
	int done;
};

static void on_appended(struct store_append_req *req)
{
	struct async_ctx *c = (struct async_ctx *)req;
	c->done++;
	loop_stop(c->l);
}

static void test_async_append(void **state)
{
	struct fixture *f = *state;
	struct store_config cfg = { .path = f->path };
	struct async_ctx c = { 0 };
	struct store *s;
	struct store_stats st;

	assert_int_equal(loop_new(&c.l), 0);
	assert_int_equal(store_open(c.l, &cfg, &s), 0);
	c.req.seq = store_next_seq(s);
	c.req.created_ms = 42;
	c.req.payload_json = "{\"a\":1}";
	c.req.jwt = NULL;
	c.req.done = on_appended;
	assert_int_equal(store_append_async(s, &c.req), 0);
	assert_int_equal(store_append_async(s, &c.req), -EBUSY);
	for (int i = 0; i < 100 && !c.done; i++)
		loop_run_once(c.l, 100 * 1000);
	assert_int_equal(c.done, 1);
	assert_int_equal(c.req.result, 0);
	store_get_stats(s, &st);
	assert_int_equal(st.backlog, 1);
	assert_int_equal(st.unsigned_rows, 1);

	/* an error comes back the same way */
	c.req.seq = 0;
	assert_int_equal(store_append_async(s, &c.req), 0);
	for (int i = 0; i < 100 && c.done < 2; i++)
		loop_run_once(c.l, 100 * 1000);
	assert_int_equal(c.done, 2);
	assert_int_equal(c.req.result, -EINVAL);
	store_close(s);
	loop_free(c.l);
}


/* header.payload.signature, each part base64url.  Malloc'd. */
static char *join_token(const char *hdr, const char *payload, const uint8_t sig[64])
{
	char *h = b64url_encode_alloc((const uint8_t *)hdr, strlen(hdr));
	char *p = b64url_encode_alloc((const uint8_t *)payload, strlen(payload));
	char *g = b64url_encode_alloc(sig, 64);
	char *t = malloc(strlen(h) + strlen(p) + strlen(g) + 3);
	sprintf(t, "%s.%s.%s", h, p, g);
	free(h);
	free(p);
	free(g);
	return t;
}

/* A token shaped like the gateway's: base64url header, payload, 64-byte
 * signature.  Malloc'd. */
static char *make_token(int64_t seq)
{
	char payload[4096], hdr[] = "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"device\":\"01ab\"}";
	uint8_t sig[64];
	int n = snprintf(payload, sizeof(payload), "{\"seq\":%lld,\"v\":2,\"devices\":[",
	                 (long long)seq);
	for (int i = 0; i < 40; i++)
		n += snprintf(payload + n, sizeof(payload) - (size_t)n, "%s{\"t\":1000,\"b\":\"3f\"}",
		              i ? "," : "");
	snprintf(payload + n, sizeof(payload) - (size_t)n, "]}");
	for (int i = 0; i < 64; i++)
		sig[i] = (uint8_t)(i * 37 + seq);
	return join_token(hdr, payload, sig);
}

static void test_stored_once_compressed(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f, 0, 0);
	struct store_row rows[4];
	struct store_stats st;
	unsigned n;
	char *tok[3];
	int64_t seq[3];
	size_t text = 0;

	for (int i = 0; i < 3; i++) {
		seq[i] = store_next_seq(s);
		tok[i] = make_token(seq[i]);
		text += strlen(tok[i]);
	}
	/* signed at once, signed later, and a token that is not a JWS */
	assert_int_equal(store_append(s, seq[0], 1, "{\"seq\":1}", tok[0]), 0);
	assert_int_equal(store_append(s, seq[1], 2, "{\"seq\":2}", NULL), 0);
	assert_int_equal(store_set_jwt(s, seq[1], tok[1]), 0);
	assert_int_equal(store_append(s, seq[2], 3, "{\"seq\":3}", "not.a-token"), 0);
	store_get_stats(s, &st);
	/* one copy each, the two tokens packed well under their text */
	assert_true(st.bytes < (int64_t)(strlen(tok[0]) + strlen(tok[1])) / 2 + 11);
	store_close(s);

	/* on disk: no payload kept beside a token */
	sqlite3 *db;
	sqlite3_stmt *q;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT SUM(LENGTH(payload)), COUNT(*), "
	                                        "SUM(typeof(jwt) = 'blob') FROM rows", -1, &q, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(q, 0), 0);
	assert_int_equal(sqlite3_column_int(q, 1), 3);
	assert_int_equal(sqlite3_column_int(q, 2), 2);
	sqlite3_finalize(q);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(q, 0), 1024);
	sqlite3_finalize(q);
	sqlite3_close(db);

	/* the tokens come back exactly, after a reopen */
	s = open_store(f, 0, 0);
	assert_int_equal(store_peek(s, 0, 4, rows, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(rows[0].jwt, tok[0]);
	assert_string_equal(rows[1].jwt, tok[1]);
	assert_string_equal(rows[2].jwt, "not.a-token");
	store_rows_clear(rows, n);
	store_close(s);
	(void)text;
	for (int i = 0; i < 3; i++)
		free(tok[i]);
}

/* A gap row signed (so only its token is kept) and later dropped itself:
 * the next gap row still takes over its ranges, read from the token. */
static void test_signed_gap_row_merged(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f, 2000, 0);
	int64_t first = 0, gseq = 0, g2seq = 0;

	for (int i = 0; i < 40; i++) {
		int64_t q = append_one(s, 1000 + i, true);
		if (!first)
			first = q;
	}
	assert_true(store_enforce_bounds(s, 5000) > 0);
	json_t *g = gap_of(s, &gseq);
	char *text = json_dumps(g, JSON_COMPACT);
	json_decref(g);
	const char hdr[] = "{\"alg\":\"ES256\",\"dtype\":\"egw-gap\"}";
	uint8_t sig[64] = {1, 2, 3};
	char *h = b64url_encode_alloc((const uint8_t *)hdr, strlen(hdr));
	char *p = b64url_encode_alloc((const uint8_t *)text, strlen(text));
	char *sg = b64url_encode_alloc(sig, sizeof(sig));
	char tok[2048];
	snprintf(tok, sizeof(tok), "%s.%s.%s", h, p, sg);
	free(h);
	free(p);
	free(sg);
	free(text);
	assert_int_equal(store_set_jwt(s, gseq, tok), 0);
	for (int i = 0; i < 60; i++)
		append_one(s, 2000 + i, true);
	assert_true(store_enforce_bounds(s, 6000) > 0);
	g = gap_of(s, &g2seq);
	assert_true(g2seq > gseq);
	json_t *r = json_object_get(g, "ranges");
	assert_int_equal(json_integer_value(json_array_get(json_array_get(r, 0), 0)), first);
	assert_true(json_integer_value(json_array_get(json_array_get(r, 0), 1)) >= gseq);
	json_decref(g);
	store_close(s);
}

static void copy_file(const char *from, const char *to)
{
	char buf[8192];
	size_t n;
	FILE *in = fopen(from, "rb"), *out;

	unlink(to);
	if (!in)
		return; /* no WAL: nothing to copy */
	out = fopen(to, "wb");
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
}

/* Rows committed, as a crash would leave them: the store holds its file
 * locked while open, so a copy of the file and its WAL is read. */
static int64_t rows_on_disk(struct fixture *f)
{
	char from[160], to[160];
	sqlite3 *db;
	sqlite3_stmt *q;
	int64_t n;
	snprintf(to, sizeof(to), "%s.copy", f->path);
	copy_file(f->path, to);
	snprintf(from, sizeof(from), "%s-wal", f->path);
	snprintf(to, sizeof(to), "%s.copy-wal", f->path);
	copy_file(from, to);
	snprintf(to, sizeof(to), "%s.copy-shm", f->path);
	unlink(to);
	snprintf(to, sizeof(to), "%s.copy", f->path);
	assert_int_equal(sqlite3_open(to, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM rows", -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	n = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(db);
	return n;
}

/* Acknowledgements cost no commit of their own: the deletes ride on the next
 * append (or go alone once a few wait); meanwhile the rows are gone for
 * peek and the counters. */
static void test_acks_ride_on_next_commit(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f, 0, 0);
	struct store_row rows[8];
	struct store_stats st;
	int64_t seqs[8];
	unsigned n;

	for (int i = 0; i < 3; i++)
		seqs[i] = append_one(s, 1000 + i, true);
	assert_int_equal(store_ack(s, seqs[0]), 0);
	assert_int_equal(store_ack(s, seqs[0]), -ENOENT);
	store_get_stats(s, &st);
	assert_int_equal(st.backlog, 2);
	assert_int_equal(st.delivered, 1);
	assert_int_equal(store_peek(s, 0, 1, rows, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].seq, seqs[1]);
	store_rows_clear(rows, n);
	assert_int_equal(rows_on_disk(f), 3); /* not written yet */
	seqs[3] = append_one(s, 1003, true);
	assert_int_equal(rows_on_disk(f), 3); /* deleted with the append's commit */
	/* two waiting: committed on their own */
	assert_int_equal(store_ack(s, seqs[1]), 0);
	assert_int_equal(rows_on_disk(f), 3);
	assert_int_equal(store_ack(s, seqs[2]), 0);
	assert_int_equal(rows_on_disk(f), 1);
	assert_int_equal(store_ack(s, seqs[3]), 0);
	assert_int_equal(rows_on_disk(f), 1);
	store_close(s); /* and the rest at close */
	assert_int_equal(rows_on_disk(f), 0);
	s = open_store(f, 0, 0);
	store_get_stats(s, &st);
	assert_int_equal(st.delivered, 4);
	assert_int_equal(st.backlog, 0);
	assert_true(store_next_seq(s) > seqs[3]); /* the empty store still knows */
	store_close(s);
}

static int64_t wal_size(struct fixture *f)
{
	char wal[160];
	struct stat sb;

	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	return stat(wal, &sb) == 0 ? (int64_t)sb.st_size : 0;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Frames in the WAL since it was last restarted: the run of frames from the
 * start that carry the header's salt (what SQLite would read back). */
static int64_t wal_frames(struct fixture *f)
{
	char wal[160];
	unsigned char hdr[32], fh[24];
	int64_t n = 0;
	FILE *fp;

	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	fp = fopen(wal, "rb");
	if (!fp)
		return 0;
	if (fread(hdr, 1, sizeof(hdr), fp) == sizeof(hdr)) {
		uint32_t page = be32(hdr + 8);
		while (fseek(fp, 32 + n * (int64_t)(page + 24), SEEK_SET) == 0 &&
		       fread(fh, 1, sizeof(fh), fp) == sizeof(fh) &&
		       memcmp(fh + 8, hdr + 16, 8) == 0)
			n++;
	}
	fclose(fp);
	return n;
}

static void fill_jwt(char *jwt, size_t size, int64_t seq)
{
	/* incompressible text, so the row keeps its size */
	unsigned x = (unsigned)seq * 2654435761u;
	for (size_t k = 0; k + 1 < size - 50; k++) {
		x = x * 1103515245u + 12345u;
		jwt[k] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[(x >> 16) % 52];
	}
	jwt[size - 51] = '\0';
}

/* A token like a batch's: readings that drift a little from one batch to
 * the next and a register block that mostly does not.  Malloc'd. */
static char *make_batch_token(int64_t seq)
{
	static const char *const names[] = { "L1_V", "L2_V", "L3_V", "L1_A", "L2_A",
					     "L3_A", "W",    "var",  "PF",   "mppt1_V",
					     "mppt1_A", "mppt2_V", "mppt2_A", "heatsink_C" };
	char payload[8192], hdr[] = "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"device\":\"01ab\"}";
	uint8_t regs[180], sig[64];
	unsigned x = (unsigned)seq * 2654435761u;
	int n = snprintf(payload, sizeof(payload), "{\"v\":2,\"seq\":%lld,\"devices\":[{\"kf\":\"",
			 (long long)seq);

	for (size_t i = 0; i < sizeof(regs); i++)
		regs[i] = i % 7 == 0 ? (uint8_t)(seq + i) : (uint8_t)(i < 90 ? 0 : i * 13);
	n += b64url_encode(regs, sizeof(regs), payload + n, sizeof(payload) - (size_t)n);
	n += snprintf(payload + n, sizeof(payload) - (size_t)n, "\",\"polls\":[");
	for (int poll = 0; poll < 10; poll++) {
		n += snprintf(payload + n, sizeof(payload) - (size_t)n, "%s{\"t\":1000,\"r\":{",
			      poll ? "," : "");
		for (unsigned k = 0; k < ARRAY_SIZE(names); k++) {
			x = x * 1103515245u + 12345u;
			n += snprintf(payload + n, sizeof(payload) - (size_t)n, "%s\"%s\":%u.%u",
				      k ? "," : "", names[k], 200 + (x >> 16) % 40, (x >> 8) % 10);
		}
		n += snprintf(payload + n, sizeof(payload) - (size_t)n, "}}");
	}
	snprintf(payload + n, sizeof(payload) - (size_t)n, "]}]}");
	for (int i = 0; i < 64; i++) {
		x = x * 1103515245u + 12345u;
		sig[i] = (uint8_t)(x >> 16);
	}
	return join_token(hdr, payload, sig);
}

static int64_t count_dicts(struct fixture *f)
{
	sqlite3 *db;
	sqlite3_stmt *q;
	int64_t n;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM dicts", -1, &q, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	n = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(db);
	return n;
}

/* Flash writes: a token is packed with an earlier token of the store as
 * zlib's dictionary, which takes a third or more off a row.  The tokens come
 * back exactly after a reopen and across a change of dictionary (every 360
 * appends), and a dictionary is deleted once no stored row needs it. */
static void test_dictionary_packing(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f, 0, 0);
	struct store_row rows[4];
	struct store_stats st;
	int64_t seq, kept[3], before, plain = 0, primed = 0;
	char *keep_tok[3];
	unsigned n;

	for (int i = 0; i < 800; i++) {
		char *tok;
		seq = store_next_seq(s);
		tok = make_batch_token(seq);
		store_get_stats(s, &st);
		before = st.appended;
		assert_int_equal(store_append(s, seq, 1000 + i, "{}", tok), 0);
		store_get_stats(s, &st);
		if (i == 0)
			plain = st.appended - before; /* no dictionary yet */
		if (i == 1)
			primed = st.appended - before;
		if (i < 3) {
			/* the first three stay unacknowledged through two
			 * changes of dictionary */
			kept[i] = seq;
			keep_tok[i] = tok;
			continue;
		}
		if (i == 500) {
			/* a token packed with the second dictionary reads back */
			assert_int_equal(store_peek(s, seq - 1, 1, rows, &n), 0);
			assert_int_equal(n, 1);
			assert_string_equal(rows[0].jwt, tok);
			store_rows_clear(rows, n);
		}
		assert_int_equal(store_ack(s, seq), 0);
		free(tok);
	}
	assert_true(primed > 0 && plain > 0);
	assert_true(primed * 4 < plain * 3);
	store_close(s);
	/* the first dictionary is kept for the unacknowledged rows */
	assert_true(count_dicts(f) >= 2);

	s = open_store(f, 0, 0);
	assert_int_equal(store_peek(s, 0, 4, rows, &n), 0);
	assert_int_equal(n, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rows[i].seq, kept[i]);
		assert_string_equal(rows[i].jwt, keep_tok[i]);
		assert_int_equal(store_ack(s, kept[i]), 0);
		free(keep_tok[i]);
	}
	store_rows_clear(rows, n);
	/* with them gone, the next change of dictionary deletes the old ones */
	for (int i = 0; i < 400; i++) {
		seq = store_next_seq(s);
		char *tok = make_batch_token(seq);
		assert_int_equal(store_append(s, seq, 5000 + i, "{}", tok), 0);
		assert_int_equal(store_ack(s, seq), 0);
		free(tok);
	}
	store_close(s);
	/* the newest, and the one the last row was packed with */
	assert_int_equal(count_dicts(f), 2);
}

static void exec_sql(struct fixture *f, const char *sql)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* A row that cannot be read back (a damaged blob, a lost dictionary) is
 * skipped with a log line: the rows after it are still handed out, so one
 * bad row does not stop every upload behind it. */
static void test_damaged_row_skipped(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f, 0, 0);
	struct store_row rows[8];
	int64_t seq[4];
	char *tok[4];
	unsigned n;

	for (int i = 0; i < 4; i++) {
		seq[i] = store_next_seq(s);
		tok[i] = make_batch_token(seq[i]);
		assert_int_equal(store_append(s, seq[i], 1000 + i, "{}", tok[i]), 0);
	}
	store_close(s);

	char sql[160];
	snprintf(sql, sizeof(sql),
		 "UPDATE rows SET jwt = X'454A320000100000000001789C0BC9C8' WHERE seq = %lld",
		 (long long)seq[1]);
	exec_sql(f, sql);
	s = open_store(f, 0, 0);
	assert_int_equal(store_peek(s, 0, 8, rows, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(rows[0].seq, seq[0]);
	assert_string_equal(rows[0].jwt, tok[0]);
	assert_int_equal(rows[1].seq, seq[2]);
	assert_string_equal(rows[1].jwt, tok[2]);
	assert_int_equal(rows[2].seq, seq[3]);
	store_rows_clear(rows, n);
	store_close(s);

	/* without its dictionaries, only the first row (packed before there
	 * was one) reads back */
	exec_sql(f, "DELETE FROM dicts");
	s = open_store(f, 0, 0);
	assert_int_equal(store_peek(s, 0, 8, rows, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].seq, seq[0]);
	store_rows_clear(rows, n);
	store_close(s);
	for (int i = 0; i < 4; i++)
		free(tok[i]);
}

/* Flash writes: at the usual pace (each batch acknowledged before the next
 * one is stored, the bounds checked after each append, as egwd does) a
 * commit puts one page into the WAL: the delivered row's page, reused for
 * the new one.  Rows the size of a seed batch (~850 bytes, one per page). */
static void test_one_page_per_commit(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f, 64 << 20, 7 * 24 * 3600);
	char jwt[900];
	int64_t before = 0;
	const int rounds = 20;

	for (int i = 0; i < 5 + rounds; i++) {
		int64_t seq = store_next_seq(s);
		if (i == 5)
			before = wal_frames(f);
		fill_jwt(jwt, sizeof(jwt), seq);
		assert_int_equal(store_append(s, seq, 1000 + i, "{}", jwt), 0);
		assert_true(store_enforce_bounds(s, 2000 + i) >= 0);
		assert_int_equal(store_ack(s, seq), 0);
	}
	int64_t grew = wal_frames(f) - before;
	assert_true(grew > 0);
	assert_true(grew <= rounds);
	store_close(s);
}

/* Flash writes: the WAL file has its full size from the start and keeps it
 * through commits and a checkpoint (the WAL restarting at its head), so a
 * commit's fsync never has a file size or a block allocation to write. */
static void test_wal_keeps_its_size(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f, 64 << 20, 7 * 24 * 3600);
	char jwt[900];
	int64_t size = 0, peak = 0, seq = 0;
	bool restarted = false;

	for (int i = 0; i < 1100; i++) {
		seq = store_next_seq(s);
		fill_jwt(jwt, sizeof(jwt), seq);
		assert_int_equal(store_append(s, seq, 1000 + i, "{}", jwt), 0);
		assert_true(store_enforce_bounds(s, 2000 + i) >= 0);
		if (i == 0) {
			size = wal_size(f);
			/* 1000 frames of a 1 KiB page before a checkpoint */
			assert_true(size >= 32 + 1000 * (1024 + 24));
		}
		assert_int_equal(wal_size(f), size);
		int64_t n = wal_frames(f);
		if (n < peak)
			restarted = true;
		peak = n > peak ? n : peak;
		if (i + 1 < 1100)
			assert_int_equal(store_ack(s, seq), 0);
	}
	assert_true(restarted);
	store_close(s);
	/* the last batch is still there after a reopen, and the WAL is as big */
	s = open_store(f, 64 << 20, 7 * 24 * 3600);
	assert_int_equal(wal_size(f), size);
	struct store_row row = { 0 };
	unsigned got = 0;
	assert_int_equal(store_peek(s, 0, 1, &row, &got), 0);
	assert_int_equal(got, 1);
	assert_int_equal(row.seq, seq);
	store_rows_clear(&row, 1);
	store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_append_peek_ack_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seq_survives_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sign_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounds_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounds_age, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_moved_aside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_append, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stored_once_compressed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signed_gap_row_merged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acks_ride_on_next_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_page_per_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_keeps_its_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dictionary_packing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_row_skipped, setup, teardown),
	};
	log_set_level(LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
