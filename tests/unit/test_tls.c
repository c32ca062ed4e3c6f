/* The HTTPS certificate: made once, loaded after, never overwritten when it
 * exists but does not load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "web/tls.h"

struct dir {
	char path[64], cert[96], key[96];
};

static void dir_make(struct dir *d)
{
	snprintf(d->path, sizeof(d->path), "/tmp/egw-tls-XXXXXX");
	assert_non_null(mkdtemp(d->path));
	snprintf(d->cert, sizeof(d->cert), "%s/https-cert.pem", d->path);
	snprintf(d->key, sizeof(d->key), "%s/https-key.pem", d->path);
}

static void dir_remove(struct dir *d)
{
	unlink(d->cert);
	unlink(d->key);
	rmdir(d->path);
}

static void write_text(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	fclose(f);
}

static unsigned mode_of(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

static void test_made_once_then_loaded(void **state)
{
	struct tls_cert a = { 0 }, b = { 0 };
	struct dir d;
	char err[256] = "";
	bool created = false;
	(void)state;

	dir_make(&d);
	assert_int_equal(tls_cert_load_or_create(d.cert, d.key, true, &a, &created, err,
						 sizeof(err)), 0);
	assert_true(created);
	assert_int_equal(mode_of(d.key), 0600);
	assert_int_equal(mode_of(d.cert), 0644);
	assert_int_equal(strlen(a.fingerprint), 32 * 3 - 1);
	assert_non_null(strstr(a.cert_pem, "-----BEGIN CERTIFICATE-----"));
	assert_non_null(strstr(a.key_pem, "-----BEGIN PRIVATE KEY-----"));
	/* ten years on */
	assert_int_equal(strlen(a.not_after), 20);
	assert_true(strncmp(a.not_after, "2035", 4) >= 0);

	assert_int_equal(tls_cert_load_or_create(d.cert, d.key, true, &b, &created, err,
						 sizeof(err)), 0);
	assert_false(created);
	assert_string_equal(a.fingerprint, b.fingerprint);
	tls_cert_clear(&b);

	/* a key without its certificate: a new pair */
	unlink(d.cert);
	assert_int_equal(tls_cert_load_or_create(d.cert, d.key, true, &b, &created, err,
						 sizeof(err)), 0);
	assert_true(created);
	assert_string_not_equal(a.fingerprint, b.fingerprint);
	tls_cert_clear(&a);
	tls_cert_clear(&b);
	tls_cert_clear(NULL);
	dir_remove(&d);
}

static void test_not_generating_missing(void **state)
{
	struct tls_cert c = { 0 };
	struct dir d;
	char err[256] = "";
	bool created = false;
	(void)state;

	dir_make(&d);
	assert_int_equal(tls_cert_load_or_create(d.cert, d.key, false, &c, &created, err,
						 sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "does not exist"));
	assert_int_equal(access(d.cert, F_OK), -1);
	assert_int_equal(access(d.key, F_OK), -1);
	dir_remove(&d);
}

static void test_bad_files_refused_and_kept(void **state)
{
	struct tls_cert c = { 0 };
	struct dir d, e;
	char err[320] = "", buf[128];
	bool created = false;
	FILE *f;
	(void)state;

	dir_make(&d);
	dir_make(&e);
	assert_int_equal(tls_cert_load_or_create(d.cert, d.key, true, &c, &created, err,
						 sizeof(err)), 0);
	tls_cert_clear(&c);
	assert_int_equal(tls_cert_load_or_create(e.cert, e.key, true, &c, &created, err,
						 sizeof(err)), 0);
	tls_cert_clear(&c);

	/* d's certificate with e's key */
	assert_int_equal(tls_cert_load_or_create(d.cert, e.key, true, &c, &created, err,
						 sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "does not match"));
	assert_null(c.cert_pem);

	/* not PEM */
	write_text(d.cert, "hello\n", 6);
	assert_int_equal(tls_cert_load_or_create(d.cert, d.key, true, &c, &created, err,
						 sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a PEM certificate"));
	assert_non_null(strstr(err, d.cert));
	f = fopen(d.cert, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "hello\n");  /* kept */
	{
		static const char junk[] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
		write_text(e.key, junk, sizeof(junk) - 1);
	}
	assert_int_equal(tls_cert_load_or_create(e.cert, e.key, true, &c, &created, err,
						 sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a PEM private key"));

	/* too big to be a certificate */
	char *big = malloc(70000);
	assert_non_null(big);
	memset(big, 'A', 70000);
	write_text(d.cert, big, 70000);
	free(big);
	assert_int_equal(tls_cert_load_or_create(d.cert, d.key, true, &c, &created, err,
						 sizeof(err)), -EFBIG);
	dir_remove(&d);
	dir_remove(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_made_once_then_loaded),
		cmocka_unit_test(test_not_generating_missing),
		cmocka_unit_test(test_bad_files_refused_and_kept),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
