/* crypto tests: base64url vectors and strict decoding, P-256 helpers, the
 * software signer (key file, reload), ES256 JWT sign/verify and tampering.
 * The ATECC608 backend is tested in test_atecc.c, on the emulated chip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "crypto/b64url.h"
#include "crypto/jwt.h"
#include "crypto/p256.h"
#include "crypto/signer.h"
#include "egw-config.h"

/* ---- temp dirs ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static char *tmpdir_new(void)
{
	char *d = strdup("/tmp/egw-test-crypto-XXXXXX");
	assert_non_null(d);
	assert_non_null(mkdtemp(d));
	return d;
}

static void tmpdir_free(char *d)
{
	nftw(d, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(d);
}

/* ---- base64url ---- */

static void test_b64url_vectors(void **state)
{
	static const struct {
		const char *raw, *enc;
	} v[] = {
		/* RFC 4648 §10, without padding */
		{ "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" },
		/* the two URL-safe characters */
		{ "\xfb\xff", "-_8" }, { "\xff\xff\xfe", "___-" },
	};
	char out[32];
	uint8_t raw[32];
	(void)state;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		size_t n = strlen(v[i].raw);
		assert_int_equal(b64url_encode((const uint8_t *)v[i].raw, n, out, sizeof(out)),
				 (int)strlen(v[i].enc));
		assert_string_equal(out, v[i].enc);
		assert_int_equal(b64url_encoded_len(n), strlen(v[i].enc));
		assert_int_equal(b64url_decode(v[i].enc, strlen(v[i].enc), raw, sizeof(raw)), (int)n);
		assert_memory_equal(raw, v[i].raw, n);
	}
}

static void test_b64url_strict(void **state)
{
	static const char *const bad[] = {
		"Zg==",  /* padding */
		"Zm8=",  /* padding */
		"Z",     /* lone character */
		"Zh",    /* non-zero unused bits */
		"Zm9",   /* non-zero unused bits */
		"Zm9v!", /* not in the alphabet (and len % 4 == 1) */
		"Zm9vYg+", "Zm9vY/", "Zm 9v", "Zm9v\n", "+/8",
	};
	uint8_t raw[16];
	char out[8];
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(b64url_decode(bad[i], strlen(bad[i]), raw, sizeof(raw)), -EINVAL);
	/* embedded NUL inside the given length */
	assert_int_equal(b64url_decode("Zm\0v", 4, raw, sizeof(raw)), -EINVAL);
	/* buffers too small */
	assert_int_equal(b64url_decode("Zm9vYmFy", 8, raw, 5), -ENOBUFS);
	assert_int_equal(b64url_encode((const uint8_t *)"foobar", 6, out, 8), -ENOBUFS);
}

static void test_b64url_roundtrip(void **state)
{
	uint8_t in[200], back[200];
	char enc[300];
	(void)state;

	for (size_t n = 0; n < sizeof(in); n++) {
		for (size_t i = 0; i < n; i++)
			in[i] = (uint8_t)(i * 37 + n * 11);
		int len = b64url_encode(in, n, enc, sizeof(enc));
		assert_true(len >= 0);
		assert_int_equal(b64url_decode(enc, (size_t)len, back, b64url_decoded_max((size_t)len)),
				 (int)n);
		assert_memory_equal(in, back, n);
		char *a = b64url_encode_alloc(in, n);
		assert_string_equal(a, enc);
		free(a);
	}
}

/* ---- P-256 ---- */

static void test_p256_sign_verify(void **state)
{
	EVP_PKEY *k, *pub;
	uint8_t xy[64], d[32], rs[64];
	(void)state;

	assert_int_equal(p256_generate(&k), 0);
	assert_int_equal(p256_public_xy(k, xy), 0);
	assert_int_equal(p256_from_xy(xy, &pub), 0);
	assert_int_equal(p256_sha256("abc", 3, d), 0);
	/* FIPS 180-2 SHA-256("abc") starts ba7816bf */
	assert_int_equal(d[0], 0xba);
	assert_int_equal(d[3], 0xbf);
	assert_int_equal(p256_sign_digest(k, d, rs), 0);
	assert_int_equal(p256_verify_digest(pub, d, rs), 0);
	rs[10] ^= 1;
	assert_int_equal(p256_verify_digest(pub, d, rs), -EGW_EBADSIG);
	rs[10] ^= 1;
	d[0] ^= 1;
	assert_int_equal(p256_verify_digest(pub, d, rs), -EGW_EBADSIG);
	/* a point off the curve is refused */
	xy[63] ^= 1;
	EVP_PKEY *bad = NULL;
	assert_int_equal(p256_from_xy(xy, &bad), -EINVAL);
	assert_null(bad);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(k);
}

/* ---- software signer ---- */

static bool is_hex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789abcdef", s[i]))
			return false;
	return true;
}

static void test_software_signer(void **state)
{
	char *dir = tmpdir_new(), path[512];
	struct signer_config cfg = { .backend = SIGNER_SOFTWARE, .state_dir = dir };
	struct signer *s, *s2;
	uint8_t xy[64], xy2[64], d[32], rs[64];
	char serial[SIGNER_SERIAL_HEX_LEN + 1];
	struct stat st;
	EVP_PKEY *pub;
	json_t *j;
	(void)state;

	assert_int_equal(signer_open(&cfg, &s), 0);
	snprintf(path, sizeof(path), "%s/device-key.pem", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_string_equal(signer_backend_name(s), "software");
	assert_true(is_hex(signer_serial_hex(s), 18));
	assert_memory_equal(signer_serial_hex(s), "01", 2);
	assert_true(is_hex(signer_public_key_hex(s), 128));
	assert_non_null(strstr(signer_public_key_pem(s), "-----BEGIN PUBLIC KEY-----"));
	assert_true(signer_healthy(s));
	assert_null(signer_last_error(s));
	assert_int_equal(signer_public_key(s, xy), 0);
	strcpy(serial, signer_serial_hex(s));

	/* signature verifies under the published key */
	assert_int_equal(p256_sha256("x", 1, d), 0);
	assert_int_equal(signer_sign_digest(s, d, rs), 0);
	assert_int_equal(p256_from_xy(xy, &pub), 0);
	assert_int_equal(p256_verify_digest(pub, d, rs), 0);
	EVP_PKEY_free(pub);

	/* /api/crypto fields */
	assert_int_equal(signer_public_key_json(s, &j), 0);
	assert_string_equal(json_string_value(json_object_get(j, "serialNumber")), serial);
	assert_string_equal(json_string_value(json_object_get(j, "publicKey")), signer_public_key_hex(s));
	assert_string_equal(json_string_value(json_object_get(j, "publicKey_pem")), signer_public_key_pem(s));
	json_t *jwk = json_object_get(j, "publicKey_jwk");
	assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "EC");
	assert_string_equal(json_string_value(json_object_get(jwk, "crv")), "P-256");
	uint8_t x[32];
	const char *xs = json_string_value(json_object_get(jwk, "x"));
	assert_int_equal(b64url_decode(xs, strlen(xs), x, sizeof(x)), 32);
	assert_memory_equal(x, xy, 32);
	json_decref(j);
	signer_close(s);

	/* reloaded: same identity; a looser mode is tightened again */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(signer_open(&cfg, &s2), 0);
	assert_string_equal(signer_serial_hex(s2), serial);
	assert_int_equal(signer_public_key(s2, xy2), 0);
	assert_memory_equal(xy, xy2, 64);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	signer_close(s2);

	/* an unusable key file is an error, not silently replaced */
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n", f);
	fclose(f);
	assert_int_equal(signer_open(&cfg, &s2), -EGW_ESIGNER);

	/* bad configs */
	cfg.state_dir = NULL;
	assert_int_equal(signer_open(&cfg, &s2), -EINVAL);
	cfg.state_dir = "/nonexistent/egw";
	assert_int_equal(signer_open(&cfg, &s2), -ENOENT);
	tmpdir_free(dir);
}

/* ---- JWT ---- */

static char *flip(const char *tok, size_t pos)
{
	char *t = strdup(tok);
	assert_non_null(t);
	/* change one base64url character to another valid one */
	t[pos] = t[pos] == 'A' ? 'B' : 'A';
	return t;
}

static void test_jwt(void **state)
{
	char *dir = tmpdir_new();
	struct signer_config cfg = { .backend = SIGNER_SOFTWARE, .state_dir = dir };
	struct signer *s, *other;
	char *other_dir = tmpdir_new();
	struct signer_config ocfg = { .backend = SIGNER_SOFTWARE, .state_dir = other_dir };
	uint8_t xy[64], oxy[64];
	json_t *h, *p, *got = NULL, *goth = NULL;
	char *tok, *t2;
	(void)state;

	assert_int_equal(signer_open(&cfg, &s), 0);
	assert_int_equal(signer_open(&ocfg, &other), 0);
	signer_public_key(s, xy);
	signer_public_key(other, oxy);

	h = jwt_header_new(s, "sungrow_sh", "hybrid");
	assert_non_null(h);
	p = json_pack("{s:i, s:s, s:I}", "a", 1, "b", "x\"y", "seq", (json_int_t)9007199254740993LL);
	assert_int_equal(jwt_sign(s, h, p, &tok), 0);
	assert_int_equal(jwt_verify_es256_full(tok, xy, &goth, &got), 0);
	assert_true(json_equal(got, p));
	assert_string_equal(json_string_value(json_object_get(goth, "alg")), "ES256");
	assert_string_equal(json_string_value(json_object_get(goth, "typ")), "JWT");
	assert_string_equal(json_string_value(json_object_get(goth, "opr")), "production");
	assert_string_equal(json_string_value(json_object_get(goth, "device")), signer_serial_hex(s));
	assert_string_equal(json_string_value(json_object_get(goth, "model")), "sungrow_sh");
	assert_string_equal(json_string_value(json_object_get(goth, "dtype")), "hybrid");
	json_decref(got);
	json_decref(goth);

	/* canonical: header part is the sorted compact JSON */
	char hdr[256];
	const char *dot = strchr(tok, '.');
	uint8_t raw[256];
	int n = b64url_decode(tok, (size_t)(dot - tok), raw, sizeof(raw));
	assert_true(n > 0);
	snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"device\":\"%s\",\"dtype\":\"hybrid\","
		 "\"model\":\"sungrow_sh\",\"opr\":\"production\",\"typ\":\"JWT\"}", signer_serial_hex(s));
	assert_int_equal((size_t)n, strlen(hdr));
	assert_memory_equal(raw, hdr, (size_t)n);

	/* wrong key */
	assert_int_equal(jwt_verify_es256(tok, oxy, NULL), -EGW_EBADSIG);

	/* one changed character in header, payload or signature */
	const char *dot2 = strchr(dot + 1, '.');
	size_t positions[] = { 3, (size_t)(dot - tok) + 5, (size_t)(dot2 - tok) + 10, strlen(tok) - 10 };
	for (size_t i = 0; i < sizeof(positions) / sizeof(positions[0]); i++) {
		t2 = flip(tok, positions[i]);
		int r = jwt_verify_es256(t2, xy, NULL);
		assert_true(r == -EGW_EBADSIG || r == -EBADMSG);
		free(t2);
	}

	/* structure */
	assert_int_equal(jwt_verify_es256("", xy, NULL), -EBADMSG);
	assert_int_equal(jwt_verify_es256("a.b", xy, NULL), -EBADMSG);
	assert_int_equal(jwt_verify_es256("a.b.c.d", xy, NULL), -EBADMSG);
	size_t len = strlen(tok);
	t2 = malloc(len + 2);
	memcpy(t2, tok, len);
	strcpy(t2 + len, "A"); /* signature longer than 64 bytes */
	assert_int_equal(jwt_verify_es256(t2, xy, NULL), -EBADMSG);
	free(t2);

	/* alg none / HS256 headers are refused even with a valid-looking rest */
	{
		const char *hn = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
		char *eh = b64url_encode_alloc((const uint8_t *)hn, strlen(hn));
		char buf[1024];
		snprintf(buf, sizeof(buf), "%s%s", eh, dot);
		assert_int_equal(jwt_verify_es256(buf, xy, NULL), -EBADMSG);
		free(eh);
	}

	/* header with another alg cannot be signed */
	json_t *bad = json_pack("{s:s}", "alg", "HS256");
	char *t3 = NULL;
	assert_int_equal(jwt_sign(s, bad, p, &t3), -EINVAL);
	assert_null(t3);
	json_decref(bad);
	/* payload must be an object */
	json_t *arr = json_array();
	assert_int_equal(jwt_sign(s, h, arr, &t3), -EINVAL);
	json_decref(arr);

	/* alg is added when missing; raw payload text is signed as given */
	json_t *h2 = json_object();
	assert_int_equal(jwt_sign_raw(s, h2, "{\"z\":1,\"a\":2}", &t3), 0);
	assert_int_equal(jwt_verify_es256(t3, xy, &got), 0);
	assert_int_equal(json_integer_value(json_object_get(got, "z")), 1);
	json_decref(got);
	const char *pd = strchr(t3, '.') + 1;
	assert_memory_equal(pd, "eyJ6IjoxLCJhIjoyfQ", 18); /* {"z":1,"a":2} */
	free(t3);
	json_decref(h2);

	free(tok);
	json_decref(h);
	json_decref(p);
	signer_close(s);
	signer_close(other);
	tmpdir_free(dir);
	tmpdir_free(other_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64url_vectors),
		cmocka_unit_test(test_b64url_strict),
		cmocka_unit_test(test_b64url_roundtrip),
		cmocka_unit_test(test_p256_sign_verify),
		cmocka_unit_test(test_software_signer),
		cmocka_unit_test(test_jwt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
