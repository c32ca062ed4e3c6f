/* P-256 helpers on OpenSSL 3 (see p256.h). */
#include "crypto/p256.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/file.h"

/* True when OpenSSL's error queue says an allocation failed (it raises
 * ERR_R_MALLOC_FAILURE): a good key or signature must not be refused as
 * bad for want of memory.  Empties the queue. */
static bool p256_failed_alloc(void)
{
	unsigned long e;
	bool oom = false;

	while ((e = ERR_get_error()) != 0)
		oom |= ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE;
	return oom;
}

static bool p256_is_p256(const EVP_PKEY *k)
{
	char group[32];
	size_t len = 0;

	if (!EVP_PKEY_is_a(k, "EC"))
		return false;
	if (!EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
					    &len))
		return false;
	return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

int p256_generate(EVP_PKEY **ret)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	if (!k)
		return -EGW_ESIGNER;
	*ret = k;
	return 0;
}

int p256_load_private(const char *path, EVP_PKEY **ret)
{
	EVP_PKEY *k;
	FILE *f = fopen(path, "re");

	if (!f)
		return -errno;
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!k)
		return -EGW_ESIGNER;
	if (!p256_is_p256(k)) {
		EVP_PKEY_free(k);
		return -EGW_ESIGNER;
	}
	*ret = k;
	return 0;
}

int p256_save_private(EVP_PKEY *k, const char *path)
{
	BIO *mem;
	char *data;
	long len;
	int r;

	mem = BIO_new(BIO_s_secmem());
	if (!mem)
		return -ENOMEM;
	if (!PEM_write_bio_PrivateKey(mem, k, NULL, NULL, 0, NULL, NULL)) {
		r = -EGW_ESIGNER;
		goto free_mem;
	}
	len = BIO_get_mem_data(mem, &data);
	r = file_write_atomic(path, data, (size_t)len, 0600);
free_mem:
	BIO_free(mem); /* secure memory BIO: cleansed on free */
	return r;
}

int p256_load_or_create(const char *path, EVP_PKEY **ret, bool *ret_created)
{
	EVP_PKEY *k = NULL;
	struct stat st;
	int r;

	r = p256_load_private(path, &k);
	if (r == 0) {
		/* A key readable by others is still ours; tighten it rather than refuse. */
		if (stat(path, &st) == 0 && (st.st_mode & 077))
			(void)chmod(path, 0600);
		*ret = k;
		if (ret_created)
			*ret_created = false;
		return 0;
	}
	if (r != -ENOENT)
		return r;
	r = p256_generate(&k);
	if (r < 0)
		return r;
	r = p256_save_private(k, path);
	if (r < 0) {
		EVP_PKEY_free(k);
		return r;
	}
	*ret = k;
	if (ret_created)
		*ret_created = true;
	return 0;
}

int p256_public_xy(const EVP_PKEY *k, uint8_t ret_xy[64])
{
	BIGNUM *x = NULL, *y = NULL;
	int r = -EGW_ESIGNER;

	if (!EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &x) ||
	    !EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &y))
		goto free_bn;
	if (BN_bn2binpad(x, ret_xy, 32) != 32 || BN_bn2binpad(y, ret_xy + 32, 32) != 32)
		goto free_bn;
	r = 0;
free_bn:
	BN_free(x);
	BN_free(y);
	return r;
}

int p256_from_xy(const uint8_t xy[64], EVP_PKEY **ret)
{
	uint8_t point[65];
	OSSL_PARAM_BLD *bld;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL, *check = NULL;
	EVP_PKEY *k = NULL;
	int r = -ENOMEM;

	point[0] = 0x04; /* uncompressed */
	memcpy(point + 1, xy, 64);
	bld = OSSL_PARAM_BLD_new();
	if (!bld)
		return -ENOMEM;
	if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)))
		goto free_bld;
	params = OSSL_PARAM_BLD_to_param(bld);
	if (!params)
		goto free_bld;
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!ctx)
		goto free_params;
	ERR_clear_error();
	if (EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
		r = p256_failed_alloc() ? -ENOMEM : -EINVAL;
		goto free_ctx;
	}
	/* fromdata decodes the point; make sure it is really on the curve. */
	check = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
	if (!check || EVP_PKEY_public_check(check) <= 0) {
		r = !check || p256_failed_alloc() ? -ENOMEM : -EINVAL;
		EVP_PKEY_free(k);
		goto free_check;
	}
	*ret = k;
	r = 0;
free_check:
	EVP_PKEY_CTX_free(check);
free_ctx:
	EVP_PKEY_CTX_free(ctx);
free_params:
	OSSL_PARAM_free(params);
free_bld:
	OSSL_PARAM_BLD_free(bld);
	return r;
}

int p256_public_pem(const EVP_PKEY *k, char **ret)
{
	BIO *mem = BIO_new(BIO_s_mem());
	char *data, *out;
	long len;
	int r = -ENOMEM;

	if (!mem)
		return -ENOMEM;
	if (!PEM_write_bio_PUBKEY(mem, k))
		goto free_mem;
	len = BIO_get_mem_data(mem, &data);
	out = malloc((size_t)len + 1);
	if (!out)
		goto free_mem;
	memcpy(out, data, (size_t)len);
	out[len] = '\0';
	*ret = out;
	r = 0;
free_mem:
	BIO_free(mem);
	return r;
}

int p256_sign_digest(EVP_PKEY *k, const uint8_t digest[32], uint8_t ret_rs[64])
{
	uint8_t der[80];
	size_t der_len = sizeof(der);
	const uint8_t *p = der;
	EVP_PKEY_CTX *ctx;
	ECDSA_SIG *sig = NULL;
	const BIGNUM *r_bn, *s_bn;
	int r = -EGW_ESIGNER;

	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
	if (!ctx)
		return -EGW_ESIGNER;
	if (EVP_PKEY_sign_init(ctx) <= 0 || EVP_PKEY_sign(ctx, der, &der_len, digest, 32) <= 0)
		goto free_ctx;
	sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	if (!sig)
		goto free_ctx;
	ECDSA_SIG_get0(sig, &r_bn, &s_bn);
	if (BN_bn2binpad(r_bn, ret_rs, 32) != 32 || BN_bn2binpad(s_bn, ret_rs + 32, 32) != 32)
		goto free_sig;
	r = 0;
free_sig:
	ECDSA_SIG_free(sig);
free_ctx:
	EVP_PKEY_CTX_free(ctx);
	return r;
}

int p256_verify_digest(EVP_PKEY *k, const uint8_t digest[32], const uint8_t rs[64])
{
	ECDSA_SIG *sig;
	BIGNUM *r_bn, *s_bn;
	uint8_t *der = NULL;
	int der_len, ok, r = -ENOMEM;
	EVP_PKEY_CTX *ctx;

	sig = ECDSA_SIG_new();
	r_bn = BN_bin2bn(rs, 32, NULL);
	s_bn = BN_bin2bn(rs + 32, 32, NULL);
	if (!sig || !r_bn || !s_bn || !ECDSA_SIG_set0(sig, r_bn, s_bn)) {
		BN_free(r_bn);
		BN_free(s_bn);
		ECDSA_SIG_free(sig);
		return -ENOMEM;
	}
	der_len = i2d_ECDSA_SIG(sig, &der);
	ECDSA_SIG_free(sig);
	if (der_len <= 0)
		return -ENOMEM;
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
	if (!ctx)
		goto free_der;
	ERR_clear_error();
	/* 0: the signature does not verify; below 0: OpenSSL failed, which
	 * for a signature built here from r||s means memory */
	if (EVP_PKEY_verify_init(ctx) <= 0) {
		r = p256_failed_alloc() ? -ENOMEM : -EGW_EBADSIG;
		goto free_ctx;
	}
	ok = EVP_PKEY_verify(ctx, der, (size_t)der_len, digest, 32);
	r = ok == 1 ? 0 : ok == 0 || !p256_failed_alloc() ? -EGW_EBADSIG : -ENOMEM;
free_ctx:
	EVP_PKEY_CTX_free(ctx);
free_der:
	OPENSSL_free(der);
	return r;
}

int p256_sha256(const void *data, size_t n, uint8_t ret_digest[32])
{
	unsigned int len = 0;

	if (!EVP_Digest(data, n, ret_digest, &len, EVP_sha256(), NULL) || len != 32)
		return -ENOMEM;
	return 0;
}
