/* Allocation-failure injection (failmalloc.h): every target operation runs
 * once for each n = 1, 2, ... with the n-th allocation failing (then with the
 * n-th and every later one failing), until it completes without reaching the
 * n-th.  Each run must end in success or a clean error (-ENOMEM or the
 * module's documented error), leave no state half-changed (the object is as
 * before, or as after a successful call), and leak nothing (the sanitizer
 * build runs this under LeakSanitizer).
 *
 * Targets: settings (new, load of a file with devices, patch, set, override,
 * save, to_json), the device-config parser, base64url and JWT (sign, verify), the
 * profile parsers that allocate (raw map, reading JSON, SunSpec profile), the
 * store (open, append, peek, unsigned, set_jwt, ack, enforce_bounds) and the
 * batch builder (new; add, seal, the worker's sign and commit; the resign
 * task).  jwt_sign and jwt_verify also run with OpenSSL's allocations
 * failing.  The Modbus codec allocates nothing and the client only in
 * mb_client_new: no parser of theirs is a target. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define _XOPEN_SOURCE_EXTENDED 1
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/batch.h"
#include "base/err.h"
#include "base/log.h"
#include "base/time.h"
#include "base/util.h"
#include "config/settings.h"
#include "crypto/b64url.h"
#include "crypto/jwt.h"
#include "crypto/signer.h"
#include "devices/devconf.h"
#include "failmalloc.h"
#include "loop/loop.h"
#include "profiles/profile.h"
#include "profiles/reading.h"
#include "store/store.h"

/* No operation here comes near it; a run that does is a runaway. */
#define MAX_N 20000

/* One target: before() prepares a fresh state (not counted), op() is the
 * operation under injection, after() checks the outcome and frees. */
struct target {
	const char *name;
	unsigned mask; /* allocation sources that fail (failmalloc.h) */
	void (*before)(void *ctx);
	int (*op)(void *ctx);
	void (*after)(void *ctx, int r, unsigned long failed);
};

/* The run under way, for failure messages. */
static unsigned long cur_n;
static bool cur_persist;

static void sweep(const struct target *t, void *ctx)
{
	for (int persist = 0; persist < 2; persist++) {
		unsigned long n, failed = 1;
		usec_t start = now_usec();

		for (n = 1; n <= MAX_N && failed; n++) {
			cur_n = n;
			cur_persist = persist;
			if (t->before)
				t->before(ctx);
			failmalloc_arm(n, persist, t->mask);
			int r = t->op(ctx);
			failed = failmalloc_disarm();
			if (failed == 0 && r < 0)
				fail_msg("%s: failed with %d (%s) without an injected failure",
				         t->name, r, egw_strerror(r));
			t->after(ctx, r, failed);
		}
		assert_true(failed == 0);
		/* n - 1 was the run that completed: it made n - 2 allocations */
		print_message("%-28s %-10s n = 1..%-5lu %5lld ms\n", t->name,
		              persist ? "persistent" : "one-shot", n - 2,
		              (long long)((now_usec() - start) / USEC_PER_MSEC));
	}
}

/* Asserts r is 0 or one of the errors listed (0-terminated). */
static void assert_clean(const char *what, int r, ...)
{
	va_list ap;
	int e;

	if (r >= 0)
		return;
	va_start(ap, r);
	while ((e = va_arg(ap, int)) != 0)
		if (r == e)
			break;
	va_end(ap);
	if (e == 0)
		fail_msg("%s (n = %lu%s): error %d (%s) is not a clean out-of-memory error", what,
		         cur_n, cur_persist ? ", persistent" : "", r, egw_strerror(r));
}

static char *dump(const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	assert_non_null(s);
	return s;
}

static void assert_json_text(const json_t *j, const char *want)
{
	char *s = dump(j);
	assert_string_equal(s, want);
	free(s);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* The temp directories made, removed by the group teardown even when a
 * test failed half-way. */
static char made_dirs[8][80];
static unsigned nmade;

static void remove_dir(const char *dir)
{
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static int remove_made_dirs(void **state)
{
	(void)state;
	for (unsigned i = 0; i < nmade; i++)
		remove_dir(made_dirs[i]);
	nmade = 0;
	return 0;
}

/* A temp directory; tmpfs when there is one, so fsync costs nothing. */
static void make_dir(char *dir, size_t len, const char *name)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, len, "%s/egw-test-%s-XXXXXX", base, name);
	assert_non_null(mkdtemp(dir));
	assert_true(nmade < ARRAY_SIZE(made_dirs));
	snprintf(made_dirs[nmade++], sizeof(made_dirs[0]), "%s", dir);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* The whole file into a malloc'd string ("" if missing). */
static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 65536);
	assert_non_null(buf);
	if (f) {
		size_t n = fread(buf, 1, 65535, f);
		buf[n] = 0;
		fclose(f);
	}
	return buf;
}

/* ---- settings ---------------------------------------------------------- */

static const char settings_file[] =
    "{\"http\": {\"port\": 8080},\n"
    " \"mqtt\": {\"enabled\": true, \"host\": \"broker.lan\", \"password\": \"s3cret\"},\n"
    " \"backend\": {\"data_urls\": [\"https://a.example/x\", \"http://b.example/y\"]},\n"
    " \"devices\": [\n"
    "  {\"connection\": \"tcp\", \"profile\": \"sungrow\", \"host\": \"192.168.1.20\","
    " \"unit_id\": 1, \"id\": \"inv1\", \"name\": \"Roof\"},\n"
    "  {\"connection\": \"rtu\", \"profile\": \"sdm630\", \"serial_port\": \"/dev/ttyUSB0\","
    " \"baudrate\": 9600, \"parity\": \"N\", \"unit_id\": 2},\n"
    "  {\"connection\": \"rtu-over-tcp\", \"profile\": \"huawei\", \"host\": \"gw.lan\","
    " \"port\": 8899, \"unit_id\": 3, \"poll_interval_ms\": 5000}]}\n";

struct sctx {
	char dir[64];
	char path[128];
	struct settings *s;
	char *before; /* effective document before the operation */
	uint64_t gen; /* generation before the operation */
	char *expect; /* effective document after a successful operation */
	json_t *patch;
	json_t *out;                     /* settings_to_json's result */
	char *file_before, *file_expect; /* settings_save */
};

static char *settings_text(const struct settings *s)
{
	json_t *j = settings_to_json(s, false);
	char *t;
	assert_non_null(j);
	t = dump(j);
	json_decref(j);
	return t;
}

static void sctx_open(struct sctx *c, bool load)
{
	struct settings_error err;

	assert_int_equal(settings_new(c->path, &c->s), 0);
	if (load)
		assert_int_equal(settings_load(c->s, &err), 0);
	c->before = settings_text(c->s);
	c->gen = settings_generation(c->s);
}

/* After a failed call the settings are exactly as before; after a
 * successful one they are what the same call gives without injection. */
static void sctx_check(struct sctx *c, const char *what, int r)
{
	char *now = settings_text(c->s);

	assert_clean(what, r, -ENOMEM, 0);
	if (r < 0) {
		assert_string_equal(now, c->before);
		assert_int_equal(settings_generation(c->s), c->gen);
	} else {
		assert_string_equal(now, c->expect);
	}
	free(now);
	free(c->before);
	c->before = NULL;
	settings_free(c->s);
	c->s = NULL;
}

static int op_settings_new(void *ctx)
{
	struct sctx *c = ctx;
	return settings_new(c->path, &c->s);
}

static void after_settings_new(void *ctx, int r, unsigned long failed)
{
	struct sctx *c = ctx;
	(void)failed;
	assert_clean("settings_new", r, -ENOMEM, 0);
	if (r == 0) {
		assert_int_equal(settings_values(c->s)->http_port, 5000);
		assert_int_equal(json_array_size(settings_values(c->s)->devices), 0);
		settings_free(c->s);
	}
	c->s = NULL;
}

static void before_unloaded(void *ctx)
{
	sctx_open(ctx, false);
}

static void before_loaded(void *ctx)
{
	sctx_open(ctx, true);
}

static int op_settings_load(void *ctx)
{
	struct sctx *c = ctx;
	struct settings_error err;
	return settings_load(c->s, &err);
}

static void after_settings_load(void *ctx, int r, unsigned long failed)
{
	(void)failed;
	sctx_check(ctx, "settings_load", r);
}

static int op_settings_patch(void *ctx)
{
	struct sctx *c = ctx;
	struct settings_error err;
	return settings_patch(c->s, c->patch, &err);
}

static void after_settings_patch(void *ctx, int r, unsigned long failed)
{
	(void)failed;
	sctx_check(ctx, "settings_patch", r);
}

static int op_settings_set(void *ctx)
{
	struct sctx *c = ctx;
	struct settings_error err;
	json_t *v = json_object_get(c->patch, "http");
	return settings_set(c->s, "http", v, &err);
}

static void after_settings_set(void *ctx, int r, unsigned long failed)
{
	(void)failed;
	sctx_check(ctx, "settings_set", r);
}

static int op_settings_override(void *ctx)
{
	struct sctx *c = ctx;
	struct settings_error err;
	json_t *v = json_object_get(c->patch, "mqtt");
	return settings_override(c->s, "mqtt", v, &err);
}

static void after_settings_override(void *ctx, int r, unsigned long failed)
{
	(void)failed;
	sctx_check(ctx, "settings_override", r);
}

static int op_settings_to_json(void *ctx)
{
	struct sctx *c = ctx;
	c->out = settings_to_json(c->s, true);
	return c->out ? 0 : -ENOMEM;
}

static void after_settings_to_json(void *ctx, int r, unsigned long failed)
{
	struct sctx *c = ctx;
	(void)failed;
	/* Never a partly masked document: all of it, or nothing. */
	if (r == 0)
		assert_json_text(c->out, c->expect);
	json_decref(c->out);
	c->out = NULL;
	free(c->before);
	c->before = NULL;
	settings_free(c->s);
	c->s = NULL;
}

static void before_save(void *ctx)
{
	struct sctx *c = ctx;
	struct settings_error err;
	json_t *port = json_pack("{s:i}", "port", 8081);

	sctx_open(c, true);
	write_text(c->path, settings_file);
	assert_int_equal(settings_set(c->s, "http", port, &err), 0);
	json_decref(port);
}

static int op_settings_save(void *ctx)
{
	struct sctx *c = ctx;
	return settings_save(c->s);
}

static void after_settings_save(void *ctx, int r, unsigned long failed)
{
	struct sctx *c = ctx;
	char *now = read_text(c->path);
	(void)failed;

	assert_clean("settings_save", r, -ENOMEM, 0);
	assert_string_equal(now, r == 0 ? c->file_expect : c->file_before);
	free(now);
	free(c->before);
	c->before = NULL;
	settings_free(c->s);
	c->s = NULL;
}

static void test_settings(void **state)
{
	struct sctx c = {0};
	struct settings_error err;
	json_t *j;
	(void)state;

	make_dir(c.dir, sizeof(c.dir), "allocfail-settings");
	snprintf(c.path, sizeof(c.path), "%s/settings.json", c.dir);

	sweep(&(struct target){"settings_new", FM_ALL, NULL, op_settings_new, after_settings_new},
	      &c);

	write_text(c.path, settings_file);
	assert_int_equal(settings_new(c.path, &c.s), 0);
	assert_int_equal(settings_load(c.s, &err), 0);
	c.expect = settings_text(c.s);
	settings_free(c.s);
	c.s = NULL;
	sweep(&(struct target){"settings_load", FM_ALL, before_unloaded, op_settings_load,
	                       after_settings_load},
	      &c);
	free(c.expect);

	/* A GET-edit-POST round trip: the masked password must keep its value. */
	c.patch = json_loads("{\"http\": {\"port\": 8081}, \"mqtt\": {\"password\": \"***\","
	                     " \"topic_prefix\": \"home\"}, \"devices\": [{\"profile\": \"goodwe\","
	                     " \"host\": \"10.0.0.9\", \"id\": \"gw\"}]}",
	                     0, NULL);
	assert_non_null(c.patch);
	sctx_open(&c, true);
	assert_int_equal(settings_patch(c.s, c.patch, &err), 0);
	c.expect = settings_text(c.s);
	assert_non_null(strstr(c.expect, "\"password\":\"s3cret\""));
	free(c.before);
	settings_free(c.s);
	sweep(&(struct target){"settings_patch", FM_ALL, before_loaded, op_settings_patch,
	                       after_settings_patch},
	      &c);
	free(c.expect);

	sctx_open(&c, true);
	assert_int_equal(settings_set(c.s, "http", json_object_get(c.patch, "http"), &err), 0);
	c.expect = settings_text(c.s);
	free(c.before);
	settings_free(c.s);
	sweep(&(struct target){"settings_set", FM_ALL, before_loaded, op_settings_set,
	                       after_settings_set},
	      &c);
	free(c.expect);

	/* --set mqtt={"password":"***","port":1884}: an override is literal */
	sctx_open(&c, true);
	assert_int_equal(settings_override(c.s, "mqtt", json_object_get(c.patch, "mqtt"), &err), 0);
	c.expect = settings_text(c.s);
	free(c.before);
	settings_free(c.s);
	sweep(&(struct target){"settings_override", FM_ALL, before_loaded, op_settings_override,
	                       after_settings_override},
	      &c);
	free(c.expect);

	sctx_open(&c, true);
	j = settings_to_json(c.s, true);
	c.expect = dump(j);
	json_decref(j);
	assert_null(strstr(c.expect, "s3cret"));
	free(c.before);
	settings_free(c.s);
	sweep(&(struct target){"settings_to_json", FM_ALL, before_loaded, op_settings_to_json,
	                       after_settings_to_json},
	      &c);
	free(c.expect);

	before_save(&c);
	c.file_before = read_text(c.path);
	assert_int_equal(settings_save(c.s), 0);
	c.file_expect = read_text(c.path);
	assert_string_not_equal(c.file_before, c.file_expect);
	free(c.before);
	settings_free(c.s);
	sweep(&(struct target){"settings_save", FM_ALL, before_save, op_settings_save,
	                       after_settings_save},
	      &c);
	free(c.file_before);
	free(c.file_expect);

	json_decref(c.patch);
}

/* ---- device-config parser ---------------------------------------------- */

struct dctx {
	json_t *arr;
	struct dev_conf *confs;
	unsigned n;
};

static int op_devconf_parse(void *ctx)
{
	struct dctx *c = ctx;
	struct devconf_error err;
	c->confs = NULL;
	c->n = 0;
	return devconf_parse_list(c->arr, &c->confs, &c->n, &err);
}

static void after_devconf_parse(void *ctx, int r, unsigned long failed)
{
	struct dctx *c = ctx;
	(void)failed;
	assert_clean("devconf_parse_list", r, -ENOMEM, 0);
	if (r == 0) {
		assert_int_equal(c->n, 3);
		assert_string_equal(c->confs[0].id, "inv1");
		assert_string_equal(c->confs[1].serial_port, "/dev/ttyUSB0");
		assert_int_equal(c->confs[2].port, 8899);
		devconf_free(c->confs, c->n);
	}
}

static int op_devconf_validate(void *ctx)
{
	struct dctx *c = ctx;
	struct devconf_error err;
	return devconf_validate_list(c->arr, &err);
}

static void after_devconf_validate(void *ctx, int r, unsigned long failed)
{
	(void)ctx;
	(void)failed;
	assert_clean("devconf_validate_list", r, -ENOMEM, 0);
}

static void test_devconf(void **state)
{
	json_t *doc = json_loads(settings_file, 0, NULL);
	struct dctx c = {.arr = json_object_get(doc, "devices")};
	(void)state;

	assert_non_null(c.arr);
	sweep(&(struct target){"devconf_parse_list", FM_ALL, NULL, op_devconf_parse,
	                       after_devconf_parse},
	      &c);
	sweep(&(struct target){"devconf_validate_list", FM_ALL, NULL, op_devconf_validate,
	                       after_devconf_validate},
	      &c);
	json_decref(doc);
}

/* ---- base64url and JWT ------------------------------------------------- */

struct jctx {
	char dir[64];
	struct signer *sg;
	uint8_t pub[64];
	json_t *header, *payload;
	char *token;
	json_t *got_header, *got_payload;
	char *text;
	char *expect, *expect_header;
	bool ssl; /* OpenSSL's allocations fail too */
};

static int op_b64url(void *ctx)
{
	struct jctx *c = ctx;
	c->text = b64url_encode_alloc((const uint8_t *)"any carnal pleasure.", 20);
	return c->text ? 0 : -ENOMEM;
}

static void after_b64url(void *ctx, int r, unsigned long failed)
{
	struct jctx *c = ctx;
	(void)failed;
	if (r == 0)
		assert_string_equal(c->text, "YW55IGNhcm5hbCBwbGVhc3VyZS4");
	free(c->text);
	c->text = NULL;
}

static int op_jwt_header(void *ctx)
{
	struct jctx *c = ctx;
	c->got_header = jwt_header_new(c->sg, "sungrow", "egw-batch");
	return c->got_header ? 0 : -ENOMEM;
}

static void after_jwt_header(void *ctx, int r, unsigned long failed)
{
	struct jctx *c = ctx;
	(void)failed;
	if (r == 0)
		assert_json_text(c->got_header, c->expect);
	json_decref(c->got_header);
	c->got_header = NULL;
}

static int op_jwt_sign(void *ctx)
{
	struct jctx *c = ctx;
	c->token = NULL;
	return jwt_sign(c->sg, c->header, c->payload, &c->token);
}

static void after_jwt_sign(void *ctx, int r, unsigned long failed)
{
	struct jctx *c = ctx;
	json_t *p = NULL;
	char *again = NULL;
	(void)failed;

	assert_clean("jwt_sign", r, -ENOMEM, -EGW_ESIGNER, 0);
	if (r == 0) {
		json_t *h = NULL;
		int v = jwt_verify_es256_full(c->token, c->pub, &h, &p);
		if (v != 0)
			fail_msg("jwt_sign (n = %lu%s) gave a token that does not verify (%s): %s",
			         cur_n, cur_persist ? ", persistent" : "", egw_strerror(v),
			         c->token);
		assert_json_text(p, c->expect);
		/* the caller's header, every member of it, with "alg" added */
		assert_json_text(h, c->expect_header);
		json_decref(h);
		json_decref(p);
		free(c->token);
	} else {
		assert_null(c->token);
	}
	/* A failure does not break the signer. */
	assert_int_equal(jwt_sign(c->sg, c->header, c->payload, &again), 0);
	free(again);
}

static int op_jwt_verify(void *ctx)
{
	struct jctx *c = ctx;
	c->got_header = c->got_payload = NULL;
	return jwt_verify_es256_full(c->token, c->pub, &c->got_header, &c->got_payload);
}

static void after_jwt_verify(void *ctx, int r, unsigned long failed)
{
	struct jctx *c = ctx;
	(void)failed;

	/* The token is good: the only acceptable failure is running out of memory. */
	if (c->ssl)
		/* OpenSSL does not always say that an allocation failed
		 * (EVP_PKEY_fromdata answers "internal error"): the key may be
		 * refused as bad (-EINVAL) or the signature (-EGW_EBADSIG) */
		assert_clean("jwt_verify_es256_full", r, -ENOMEM, -EINVAL, -EGW_EBADSIG, 0);
	else
		assert_clean("jwt_verify_es256_full", r, -ENOMEM, 0);
	if (r == 0) {
		assert_json_text(c->got_payload, c->expect);
		assert_string_equal(json_string_value(json_object_get(c->got_header, "alg")),
		                    "ES256");
		json_decref(c->got_header);
		json_decref(c->got_payload);
	} else {
		assert_null(c->got_header);
		assert_null(c->got_payload);
	}
}

static void test_jwt(void **state)
{
	struct jctx c = {0};
	struct signer_config cfg = {.backend = SIGNER_SOFTWARE};
	json_t *h;
	(void)state;

	make_dir(c.dir, sizeof(c.dir), "allocfail-jwt");
	cfg.state_dir = c.dir;
	assert_int_equal(signer_open(&cfg, &c.sg), 0);
	assert_int_equal(signer_public_key(c.sg, c.pub), 0);

	sweep(&(struct target){"b64url_encode_alloc", FM_ALL, NULL, op_b64url, after_b64url}, &c);

	h = jwt_header_new(c.sg, "sungrow", "egw-batch");
	assert_non_null(h);
	c.expect = dump(h);
	json_decref(h);
	sweep(&(struct target){"jwt_header_new", FM_ALL, NULL, op_jwt_header, after_jwt_header},
	      &c);
	free(c.expect);

	c.header = json_pack("{s:s, s:s}", "typ", "JWT", "kid", "k1");
	c.payload =
	    json_pack("{s:i, s:s, s:[i, f]}", "seq", 7, "gateway", "abc", "samples", 1, 50.01);
	assert_non_null(c.header);
	assert_non_null(c.payload);
	c.expect = dump(c.payload);
	c.expect_header = strdup("{\"alg\":\"ES256\",\"kid\":\"k1\",\"typ\":\"JWT\"}");
	sweep(&(struct target){"jwt_sign", FM_ALL, NULL, op_jwt_sign, after_jwt_sign}, &c);

	assert_int_equal(jwt_sign(c.sg, c.header, c.payload, &c.token), 0);
	sweep(&(struct target){"jwt_verify_es256_full", FM_EGW | FM_JSON, NULL, op_jwt_verify,
	                       after_jwt_verify},
	      &c);
	c.ssl = true;
	sweep(
	    &(struct target){"jwt_verify (OpenSSL)", FM_SSL, NULL, op_jwt_verify, after_jwt_verify},
	    &c);
	free(c.token);
	free(c.expect);
	free(c.expect_header);

	json_decref(c.header);
	json_decref(c.payload);
	signer_close(c.sg);
}

/* ---- profile parsers that allocate ------------------------------------- */

struct pctx {
	struct block_result res[3];
	struct reading rd;
	struct sunspec_model_hdr models[4];
	json_t *out;
	struct profile *prof;
	char *expect;
};

static int op_raw_json(void *ctx)
{
	struct pctx *c = ctx;
	c->out = profile_raw_json(c->res, 3);
	return c->out ? 0 : -ENOMEM;
}

static int op_reading_json(void *ctx)
{
	struct pctx *c = ctx;
	c->out = reading_to_json(&c->rd);
	return c->out ? 0 : -ENOMEM;
}

static void after_json_out(void *ctx, int r, unsigned long failed)
{
	struct pctx *c = ctx;
	(void)failed;
	if (r == 0)
		assert_json_text(c->out, c->expect);
	json_decref(c->out);
	c->out = NULL;
}

static int op_sunspec(void *ctx)
{
	struct pctx *c = ctx;
	c->prof = NULL;
	return sunspec_build_profile(40000, c->models, 4, &c->prof);
}

static void after_sunspec(void *ctx, int r, unsigned long failed)
{
	struct pctx *c = ctx;
	(void)failed;
	assert_clean("sunspec_build_profile", r, -ENOMEM, 0);
	if (r == 0) {
		assert_true(c->prof->nregs > 0);
		assert_string_equal(c->prof->dtype, "hybrid");
		profile_free(c->prof);
	} else {
		assert_null(c->prof);
	}
}

static void test_profiles(void **state)
{
	struct pctx c = {0};
	(void)state;

	c.res[0].b = (struct mb_block){.fc = REG_FC_HOLDING, .addr = 5000, .count = 4};
	c.res[1].b = (struct mb_block){.fc = REG_FC_INPUT, .addr = 5002, .count = 6};
	c.res[2].b = (struct mb_block){.fc = REG_FC_INPUT, .addr = 30000, .count = 2};
	c.res[2].err = -ETIMEDOUT;
	for (unsigned i = 0; i < 6; i++)
		c.res[0].regs[i] = (uint16_t)(100 + i), c.res[1].regs[i] = (uint16_t)(200 + i);
	c.out = profile_raw_json(c.res, 3);
	c.expect = dump(c.out);
	json_decref(c.out);
	sweep(&(struct target){"profile_raw_json", FM_ALL, NULL, op_raw_json, after_json_out}, &c);
	free(c.expect);

	reading_clear(&c.rd);
	c.rd.v[RF_PV_W] = -3000.0;
	c.rd.v[RF_BATTERY_W] = 250.5;
	c.rd.v[RF_METER_HZ] = 50.02;
	c.rd.v[RF_METER_W] = -12.0;
	c.out = reading_to_json(&c.rd);
	c.expect = dump(c.out);
	json_decref(c.out);
	sweep(&(struct target){"reading_to_json", FM_ALL, NULL, op_reading_json, after_json_out},
	      &c);
	free(c.expect);

	c.models[0] = (struct sunspec_model_hdr){.id = 1, .addr = 40002, .len = 66};
	c.models[1] = (struct sunspec_model_hdr){.id = 103, .addr = 40070, .len = 50};
	c.models[2] = (struct sunspec_model_hdr){.id = 203, .addr = 40122, .len = 105};
	c.models[3] = (struct sunspec_model_hdr){.id = 802, .addr = 40229, .len = 62};
	sweep(&(struct target){"sunspec_build_profile", FM_ALL, NULL, op_sunspec, after_sunspec},
	      &c);
}

/* ---- store ------------------------------------------------------------- */

struct stctx {
	char dir[80];
	char path[128];
	char golden[128]; /* the seeded store, copied over path before each run */
	int64_t max_bytes;
	struct store *s;
	struct store_stats st; /* before the operation */
	int64_t seq;
	struct store_row rows[8];
	unsigned n;
};

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	size_t n;

	assert_non_null(in);
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
}

/* True when both files hold the same bytes (and no WAL is left beside a). */
static bool same_file(const char *a, const char *b)
{
	char wal[160];
	char *x, *y;
	bool same;
	struct stat sa, sb;

	snprintf(wal, sizeof(wal), "%s-wal", a);
	if (stat(wal, &sa) == 0 && sa.st_size > 0)
		return false;
	if (stat(a, &sa) < 0 || stat(b, &sb) < 0 || sa.st_size != sb.st_size || sa.st_size > 65535)
		return false;
	x = read_text(a);
	y = read_text(b);
	same = memcmp(x, y, (size_t)sa.st_size) == 0;
	free(x);
	free(y);
	return same;
}

static struct store *store_reopen(struct stctx *c)
{
	struct store_config cfg = {.path = c->path, .max_bytes = c->max_bytes};
	struct store *s = NULL;
	assert_int_equal(store_open(NULL, &cfg, &s), 0);
	return s;
}

/* Nothing was moved aside as corrupt. */
static void assert_no_corrupt(const struct stctx *c)
{
	DIR *d = opendir(c->dir);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".corrupt-"))
			fail_msg("n = %lu%s: a good store was moved aside: %s", cur_n,
			         cur_persist ? " (persistent)" : "", de->d_name);
	closedir(d);
}

/* The counters the store keeps in memory are what it finds on disk. */
static void assert_same_counts(const struct store_stats *a, const struct store_stats *b)
{
	assert_int_equal(a->backlog, b->backlog);
	assert_int_equal(a->unsigned_rows, b->unsigned_rows);
	assert_int_equal(a->delivered, b->delivered);
	assert_int_equal(a->dropped, b->dropped);
	assert_int_equal(a->last_seq, b->last_seq);
	assert_int_equal(a->bytes, b->bytes);
}

static void store_restore(struct stctx *c)
{
	char p[160];
	snprintf(p, sizeof(p), "%s-wal", c->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", c->path);
	unlink(p);
	copy_file(c->golden, c->path);
}

static void before_store(void *ctx)
{
	struct stctx *c = ctx;
	store_restore(c);
	c->s = store_reopen(c);
	store_get_stats(c->s, &c->st);
	memset(c->rows, 0, sizeof(c->rows));
	c->n = 0;
}

/* Closes the store, reopens it without injection and compares: what a
 * failed or successful call left in memory is what is on disk. */
static void store_settle(struct stctx *c)
{
	struct store_stats mem, disk;
	store_get_stats(c->s, &mem);
	store_close(c->s);
	assert_no_corrupt(c);
	c->s = store_reopen(c);
	store_get_stats(c->s, &disk);
	assert_same_counts(&mem, &disk);
	store_close(c->s);
	c->s = NULL;
}

static void assert_store_clean(const char *what, int r)
{
	assert_clean(what, r, -ENOMEM, -EGW_ESTORE, 0);
}

static void before_store_closed(void *ctx)
{
	store_restore(ctx);
}

static int op_store_open(void *ctx)
{
	struct stctx *c = ctx;
	struct store_config cfg = {.path = c->path};
	c->s = NULL;
	return store_open(NULL, &cfg, &c->s);
}

static void after_store_open(void *ctx, int r, unsigned long failed)
{
	struct stctx *c = ctx;
	struct store_stats st;
	(void)failed;

	assert_store_clean("store_open", r);
	assert_no_corrupt(c);
	if (r < 0) {
		assert_null(c->s);
		/* the seeded file, byte for byte, is known good; else open it */
		if (same_file(c->path, c->golden))
			return;
		c->s = store_reopen(c);
	}
	store_get_stats(c->s, &st);
	assert_int_equal(st.backlog, 3);
	assert_int_equal(st.last_seq, 3);
	assert_false(st.recovered);
	store_close(c->s);
	c->s = NULL;
}

static int op_store_append(void *ctx)
{
	struct stctx *c = ctx;
	c->seq = store_next_seq(c->s);
	return store_append(c->s, c->seq, 5000, "{\"seq\":4,\"devices\":[]}", "h.p.s");
}

static void after_store_append(void *ctx, int r, unsigned long failed)
{
	struct stctx *c = ctx;
	struct store_stats st;
	(void)failed;

	assert_store_clean("store_append", r);
	store_get_stats(c->s, &st);
	assert_int_equal(st.backlog, c->st.backlog + (r == 0));
	/* The caller keeps the batch and tries again with the same seq. */
	if (r < 0)
		assert_int_equal(
		    store_append(c->s, c->seq, 5000, "{\"seq\":4,\"devices\":[]}", "h.p.s"), 0);
	store_settle(c);
}

static int op_store_peek(void *ctx)
{
	struct stctx *c = ctx;
	return store_peek(c->s, 0, 8, c->rows, &c->n);
}

static void after_store_peek(void *ctx, int r, unsigned long failed)
{
	struct stctx *c = ctx;
	(void)failed;

	assert_store_clean("store_peek", r);
	if (r == 0) {
		assert_int_equal(c->n, 2);
		assert_string_equal(c->rows[0].jwt, "jwt-1");
		assert_string_equal(c->rows[1].jwt, "jwt-2");
		store_rows_clear(c->rows, c->n);
	}
	for (unsigned i = 0; i < 8; i++)
		assert_null(c->rows[i].jwt);
	store_settle(c);
}

static int op_store_unsigned(void *ctx)
{
	struct stctx *c = ctx;
	return store_unsigned(c->s, 8, c->rows, &c->n);
}

static void after_store_unsigned(void *ctx, int r, unsigned long failed)
{
	struct stctx *c = ctx;
	(void)failed;

	assert_store_clean("store_unsigned", r);
	if (r == 0) {
		assert_int_equal(c->n, 1);
		assert_int_equal(c->rows[0].seq, 3);
		assert_string_equal(c->rows[0].payload, "{\"seq\":3}");
		store_rows_clear(c->rows, c->n);
	}
	for (unsigned i = 0; i < 8; i++)
		assert_null(c->rows[i].payload);
	store_settle(c);
}

static int op_store_set_jwt(void *ctx)
{
	struct stctx *c = ctx;
	return store_set_jwt(c->s, 3, "jwt-3");
}

static void after_store_set_jwt(void *ctx, int r, unsigned long failed)
{
	struct stctx *c = ctx;
	struct store_stats st;
	(void)failed;

	assert_store_clean("store_set_jwt", r);
	store_get_stats(c->s, &st);
	assert_int_equal(st.unsigned_rows, c->st.unsigned_rows - (r == 0));
	if (r < 0)
		assert_int_equal(store_set_jwt(c->s, 3, "jwt-3"), 0);
	store_settle(c);
}

static int op_store_ack(void *ctx)
{
	struct stctx *c = ctx;
	return store_ack(c->s, 1);
}

static void after_store_ack(void *ctx, int r, unsigned long failed)
{
	struct stctx *c = ctx;
	struct store_stats st;
	(void)failed;

	assert_store_clean("store_ack", r);
	store_get_stats(c->s, &st);
	assert_int_equal(st.backlog, c->st.backlog - (r == 0));
	assert_int_equal(st.delivered, c->st.delivered + (r == 0));
	if (r < 0)
		assert_int_equal(store_ack(c->s, 1), 0);
	store_settle(c);
}

static int op_store_bounds(void *ctx)
{
	struct stctx *c = ctx;
	return store_enforce_bounds(c->s, 10000);
}

/* The gap row, read back: {"ranges": ..., "dropped": ...} as text. */
static char *gap_text(struct stctx *c)
{
	struct store_row rows[8];
	unsigned n = 0;
	char *t = NULL;

	memset(rows, 0, sizeof(rows));
	assert_int_equal(store_unsigned(c->s, 8, rows, &n), 0);
	for (unsigned i = 0; i < n; i++) {
		if (rows[i].kind != STORE_GAP)
			continue;
		json_t *g = json_loads(rows[i].payload, 0, NULL), *o;
		assert_non_null(g);
		o = json_pack("{s:O, s:O, s:O}", "ranges", json_object_get(g, "ranges"), "dropped",
		              json_object_get(g, "dropped"), "reason",
		              json_object_get(g, "reason"));
		t = dump(o);
		json_decref(o);
		json_decref(g);
	}
	store_rows_clear(rows, n);
	return t;
}

static char *bounds_expect;

static void after_store_bounds(void *ctx, int r, unsigned long failed)
{
	struct stctx *c = ctx;
	struct store_stats st;
	(void)failed;

	assert_store_clean("store_enforce_bounds", r);
	store_get_stats(c->s, &st);
	if (r < 0) {
		assert_same_counts(&st, &c->st);
		r = store_enforce_bounds(c->s, 10000);
		assert_true(r > 0);
	}
	/* Whether at once or after a failure: the same rows gone, the same gap. */
	char *t = gap_text(c);
	assert_non_null(t);
	assert_string_equal(t, bounds_expect);
	free(t);
	store_settle(c);
}

/* Seeds c->golden: rows 1 and 2 signed, 3 unsigned (max_bytes 0) or, for
 * the bounds test, a gap row, then enough rows that max_bytes drops some. */
static void seed_store(struct stctx *c, bool for_bounds)
{
	struct store_config cfg = {.path = c->golden};
	struct store *s;
	char p[160];

	unlink(c->golden);
	assert_int_equal(store_open(NULL, &cfg, &s), 0);
	if (!for_bounds) {
		assert_int_equal(store_next_seq(s), 1);
		assert_int_equal(store_next_seq(s), 2);
		assert_int_equal(store_next_seq(s), 3);
		assert_int_equal(store_append(s, 1, 1000, "{\"seq\":1}", "jwt-1"), 0);
		assert_int_equal(store_append(s, 2, 1001, "{\"seq\":2}", "jwt-2"), 0);
		assert_int_equal(store_append(s, 3, 1002, "{\"seq\":3}", NULL), 0);
	} else {
		/* Seqs 1..3 dropped by age into gap row 5 (4: reserved, never
		 * stored), then 20 rows of 200 bytes over a 2000-byte bound: the
		 * gap row is the oldest and its ranges are absorbed. */
		/* The store keeps a signed row's token only, packed when that
		 * is smaller: tokens of 199 characters that do not compress. */
		char payload[256];
		uint32_t x = 2463534242u;
		for (int k = 0; k < 199; k++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			payload[k] = (char)('A' + x % 26);
		}
		payload[199] = 0;
		for (int i = 1; i <= 4; i++)
			assert_int_equal(store_next_seq(s), i);
		for (int i = 1; i <= 3; i++)
			assert_int_equal(store_append(s, i, 1000, "{}", payload), 0);
		store_set_bounds(s, 0, 1); /* everything older than 1 s */
		assert_int_equal(store_enforce_bounds(s, 5000), 3);
		for (int i = 6; i <= 25; i++) {
			assert_int_equal(store_next_seq(s), i);
			assert_int_equal(store_append(s, i, 9000, "{}", payload), 0);
		}
	}
	store_close(s);
	snprintf(p, sizeof(p), "%s-wal", c->golden);
	assert_int_equal(access(p, F_OK), -1); /* a clean close leaves one file */
}

static void test_store(void **state)
{
	struct stctx c = {0};
	(void)state;

	make_dir(c.dir, sizeof(c.dir), "allocfail-store");
	snprintf(c.path, sizeof(c.path), "%s/store.db", c.dir);
	snprintf(c.golden, sizeof(c.golden), "%s/golden.db", c.dir);
	seed_store(&c, false);

	sweep(&(struct target){"store_open", FM_ALL, before_store_closed, op_store_open,
	                       after_store_open},
	      &c);
	sweep(&(struct target){"store_append", FM_ALL, before_store, op_store_append,
	                       after_store_append},
	      &c);
	sweep(&(struct target){"store_peek", FM_ALL, before_store, op_store_peek, after_store_peek},
	      &c);
	sweep(&(struct target){"store_unsigned", FM_ALL, before_store, op_store_unsigned,
	                       after_store_unsigned},
	      &c);
	sweep(&(struct target){"store_set_jwt", FM_ALL, before_store, op_store_set_jwt,
	                       after_store_set_jwt},
	      &c);
	sweep(&(struct target){"store_ack", FM_ALL, before_store, op_store_ack, after_store_ack},
	      &c);

	seed_store(&c, true);
	c.max_bytes = 2000;
	before_store(&c);
	assert_true(store_enforce_bounds(c.s, 10000) > 0);
	bounds_expect = gap_text(&c);
	assert_non_null(bounds_expect);
	/* 1..3 from the absorbed gap row, 4 never stored, 5 the gap row. */
	assert_non_null(strstr(bounds_expect, "\"ranges\":[[1,"));
	store_close(c.s);
	sweep(&(struct target){"store_enforce_bounds", FM_ALL, before_store, op_store_bounds,
	                       after_store_bounds},
	      &c);
	free(bounds_expect);
}

/* ---- batch builder ----------------------------------------------------- */

struct bctx {
	char dir[80];
	char db[128];
	struct loop *l;
	struct signer *sg;
	uint8_t pub[64];
	struct store *st;
	struct batch *b;
	struct reading rd;
	struct block_result blk;  /* one poll's block: holding 5016..5017 */
	int64_t t0;
	int r[6]; /* add inv1 (block + reading), inv1 (reading), m2 (block), 2 x freq, seal */
	int64_t last_seq; /* of the row the last run stored */
};

static void bctx_store_open(struct bctx *c)
{
	struct store_config sc = {.path = c->db};
	char p[160];

	unlink(c->db);
	snprintf(p, sizeof(p), "%s-wal", c->db);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", c->db);
	unlink(p);
	assert_int_equal(store_open(c->l, &sc, &c->st), 0);
}

/* A commit that failed (the payload or the append under injection) goes
 * again after 1 ms, not egwd's 1 s: each n waits for that retry. */
static const struct batch_config bcfg = {.interval = 3600 * USEC_PER_SEC,
                                         .freq_interval_ms = 100,
                                         .resign_interval = 20 * USEC_PER_MSEC,
                                         .retry_interval = USEC_PER_MSEC};
/* the resign task runs at once and again 1 ms after a failure */
static const struct batch_config bcfg_resign = {.interval = 3600 * USEC_PER_SEC,
                                                .resign_interval = USEC_PER_MSEC};

static int op_batch_new(void *ctx)
{
	struct bctx *c = ctx;
	c->b = NULL;
	return batch_new(c->l, c->st, c->sg, &bcfg, &c->b);
}

static void after_batch_new(void *ctx, int r, unsigned long failed)
{
	struct bctx *c = ctx;
	(void)failed;
	assert_clean("batch_new", r, -ENOMEM, 0);
	if (r == 0)
		batch_free(c->b);
	else
		assert_null(c->b);
	c->b = NULL;
}

/* Runs the loop until the batch is stored and every row is signed. */
static void batch_settle(struct bctx *c)
{
	usec_t end = now_usec() + 5 * USEC_PER_SEC;
	struct store_stats ss;

	for (;;) {
		store_get_stats(c->st, &ss);
		if (!batch_busy(c->b) && ss.unsigned_rows == 0)
			break;
		if (now_usec() > end)
			fail_msg("n = %lu%s: the batch did not settle (pending %d, unsigned %lld)",
			         cur_n, cur_persist ? " (persistent)" : "", batch_busy(c->b),
			         (long long)ss.unsigned_rows);
		loop_run_once(c->l, 10 * USEC_PER_MSEC);
	}
}

static void before_batch(void *ctx)
{
	struct bctx *c = ctx;
	assert_int_equal(batch_new(c->l, c->st, c->sg, &bcfg, &c->b), 0);
	c->t0 = wall_ms() - 1000;
	memset(c->r, 0, sizeof(c->r));
}

static int op_batch(void *ctx)
{
	struct bctx *c = ctx;
	usec_t end = now_usec() + 5 * USEC_PER_SEC;

	c->r[0] = batch_add_reading(c->b, "inv1", "sungrow", "A1", c->t0, &c->rd, &c->blk, 1);
	c->r[1] = batch_add_reading(c->b, "inv1", "sungrow", "A1", c->t0 + 100, &c->rd, NULL, 0);
	c->r[2] = batch_add_reading(c->b, "m2", NULL, NULL, c->t0 + 50, NULL, &c->blk, 1);
	c->r[3] = batch_add_freq(c->b, "inv1", c->t0, 50.01);
	c->r[4] = batch_add_freq(c->b, "inv1", c->t0 + 100, 49.99);
	c->r[5] = batch_seal_now(c->b);
	/* The worker signs and commits under injection too.  A commit that
	 * failed is retried, and under persistent failure fails each time:
	 * its first failure ends the run (after() lets the retry through). */
	for (;;) {
		struct batch_stats bs;
		batch_get_stats(c->b, &bs);
		if (!batch_busy(c->b) || bs.store_errors > 0 || now_usec() >= end)
			break;
		loop_run_once(c->l, 10 * USEC_PER_MSEC);
	}
	for (unsigned i = 0; i < 6; i++)
		if (c->r[i] < 0)
			return c->r[i];
	return 0;
}

static json_t *dev_in(json_t *payload, const char *id)
{
	size_t i;
	json_t *d;

	json_array_foreach(json_object_get(payload, "devices"), i,
	                   d) if (strcmp(json_string_value(json_object_get(d, "id")), id) ==
	                          0) return d;
	return NULL;
}

/* The polls a device has in a compact batch (doc/batch-format.md). */
static size_t npolls(json_t *dev)
{
	return json_array_size(json_object_get(dev, "polls"));
}

static void after_batch(void *ctx, int r, unsigned long failed)
{
	struct bctx *c = ctx;
	struct store_row rows[4];
	unsigned n = 0, nfreq = 0;
	json_t *pl = NULL, *inv, *m2;
	(void)r;
	(void)failed;

	for (unsigned i = 0; i < 6; i++)
		assert_clean("batch_add/seal", c->r[i], -ENOMEM, 0);
	/* A seal that failed keeps what was collected: seal again. */
	if (c->r[5] < 0)
		assert_int_equal(batch_seal_now(c->b), 0);
	batch_settle(c);

	memset(rows, 0, sizeof(rows));
	assert_int_equal(store_peek(c->st, 0, 4, rows, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(jwt_verify_es256(rows[0].jwt, c->pub, &pl), 0);
	/* a failed attempt keeps its seq: no hole between runs */
	if (c->last_seq)
		assert_int_equal(rows[0].seq, c->last_seq + 1);
	c->last_seq = rows[0].seq;
	/* delivered: the next run finds the store empty again */
	assert_int_equal(store_ack(c->st, rows[0].seq), 0);
	store_rows_clear(rows, n);

	/* What was added is there, what failed is not there at all. */
	inv = dev_in(pl, "inv1");
	m2 = dev_in(pl, "m2");
	assert_int_equal(inv ? npolls(inv) : 0, (c->r[0] == 0) + (c->r[1] == 0));
	assert_int_equal(m2 ? npolls(m2) : 0, c->r[2] == 0);
	/* samples: the non-null slots of the compact frequency's "d" */
	nfreq = (c->r[3] == 0) + (c->r[4] == 0);
	{
		json_t *d = json_object_get(json_object_get(pl, "frequency"), "d"), *x;
		size_t k;
		unsigned got = 0;
		json_array_foreach(d, k, x) got += !json_is_null(x);
		assert_int_equal(got, nfreq);
	}
	json_decref(pl);

	batch_free(c->b);
	c->b = NULL;
}

/* A batch row stored unsigned (the signer was down), signed by the
 * builder's resign task under injection. */
static void before_resign(void *ctx)
{
	struct bctx *c = ctx;
	int64_t seq;

	bctx_store_open(c);
	seq = store_next_seq(c->st);
	assert_int_equal(store_append(c->st, seq, wall_ms(),
	                              "{\"devices\":[{\"id\":\"inv1\",\"profile\":\"sungrow\"}],"
	                              "\"seq\":1}",
	                              NULL),
	                 0);
	assert_int_equal(batch_new(c->l, c->st, c->sg, &bcfg_resign, &c->b), 0);
}

static int op_resign(void *ctx)
{
	struct bctx *c = ctx;
	usec_t end = now_usec() + 2 * USEC_PER_SEC;
	struct batch_stats bs;

	/* one round of the resign task: it signs the row or fails */
	do {
		loop_run_once(c->l, 5 * USEC_PER_MSEC);
		batch_get_stats(c->b, &bs);
	} while (bs.resigned == 0 && bs.sign_errors == 0 && now_usec() < end);
	return bs.resigned ? 0 : bs.last_error;
}

static void after_resign(void *ctx, int r, unsigned long failed)
{
	struct bctx *c = ctx;
	struct store_row rows[2];
	unsigned n = 0;
	json_t *h = NULL;
	(void)failed;

	assert_clean("batch resign", r, -ENOMEM, -EGW_ESTORE, 0);
	batch_settle(c);
	memset(rows, 0, sizeof(rows));
	assert_int_equal(store_peek(c->st, 0, 2, rows, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(jwt_verify_es256_full(rows[0].jwt, c->pub, &h, NULL), 0);
	store_rows_clear(rows, n);
	/* signed as the batch it is, whatever failed on the way */
	assert_string_equal(json_string_value(json_object_get(h, "model")), "sungrow");
	assert_string_equal(json_string_value(json_object_get(h, "dtype")), "egw-batch");
	json_decref(h);
	batch_free(c->b);
	c->b = NULL;
	store_close(c->st);
	c->st = NULL;
}

static void test_batch(void **state)
{
	struct bctx c = {0};
	struct signer_config scfg = {.backend = SIGNER_SOFTWARE};
	(void)state;

	make_dir(c.dir, sizeof(c.dir), "allocfail-batch");
	snprintf(c.db, sizeof(c.db), "%s/store.db", c.dir);
	scfg.state_dir = c.dir;
	assert_int_equal(loop_new(&c.l), 0);
	assert_int_equal(signer_open(&scfg, &c.sg), 0);
	assert_int_equal(signer_public_key(c.sg, c.pub), 0);
	reading_clear(&c.rd);
	c.rd.v[RF_PV_W] = -3000.0;
	c.rd.v[RF_METER_HZ] = 50.01;
	c.blk = (struct block_result){ .b = { .fc = 3, .addr = 5016, .count = 2 } };
	c.blk.regs[0] = 3000;
	c.blk.regs[1] = 65535;

	bctx_store_open(&c);
	sweep(&(struct target){"batch_new", FM_ALL, NULL, op_batch_new, after_batch_new}, &c);
	store_close(c.st);
	c.st = NULL;

	/* The builder's own allocations and jansson's, in the loop thread and
	 * the worker (SQLite's are the store test's). */
	bctx_store_open(&c);
	sweep(&(struct target){"batch add+seal+commit", FM_EGW | FM_JSON, before_batch, op_batch,
	                       after_batch},
	      &c);
	store_close(c.st);
	c.st = NULL;

	sweep(&(struct target){"batch resign", FM_EGW | FM_JSON, before_resign, op_resign,
	                       after_resign},
	      &c);

	signer_close(c.sg);
	loop_free(c.l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_settings), cmocka_unit_test(test_devconf),
	    cmocka_unit_test(test_jwt),      cmocka_unit_test(test_profiles),
	    cmocka_unit_test(test_store),    cmocka_unit_test(test_batch),
	};

	if (failmalloc_install() < 0) {
		fprintf(stderr, "failmalloc: a library allocated before its hooks were set\n");
		return 1;
	}
	log_set_level(LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, remove_made_dirs);
}
