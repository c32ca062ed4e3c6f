/* P-256 (secp256r1) helpers on OpenSSL 3's EVP API, shared by the software
 * signer, the ATECC608 fake and the JWT verifier.  Signatures are raw r||s
 * (32 bytes each, big-endian) as in JWS and as the ATECC608 returns them.
 * Keys are EVP_PKEY; free them with EVP_PKEY_free. */
#pragma once
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>

/* Returns 0 or -EGW_ESIGNER. */
int p256_generate(EVP_PKEY **ret);
/* Loads a private key PEM; it must be an EC P-256 key.  Returns 0, -errno
 * from open (-ENOENT if missing) or -EGW_ESIGNER (not a P-256 private key). */
int p256_load_private(const char *path, EVP_PKEY **ret);
/* Writes the private key as PKCS#8 PEM, mode 0600, with file_write_atomic
 * (base/file.h).  Returns 0, -ENOMEM, -EGW_ESIGNER or -errno. */
int p256_save_private(EVP_PKEY *k, const char *path);
/* Loads path, or creates a key there if it does not exist.  Also resets the
 * file's mode to 0600 if it was looser.  Returns as the calls above. */
int p256_load_or_create(const char *path, EVP_PKEY **ret, bool *ret_created);

/* X||Y of the public point.  Returns 0 or -EGW_ESIGNER. */
int p256_public_xy(const EVP_PKEY *k, uint8_t ret_xy[64]);
/* Public key from X||Y; the point must be on the curve.  Returns 0, -EINVAL or -ENOMEM. */
int p256_from_xy(const uint8_t xy[64], EVP_PKEY **ret);
/* SubjectPublicKeyInfo PEM, malloc'd.  Returns 0 or -ENOMEM. */
int p256_public_pem(const EVP_PKEY *k, char **ret);

/* ECDSA over a 32-byte digest.  Returns 0 or -EGW_ESIGNER. */
int p256_sign_digest(EVP_PKEY *k, const uint8_t digest[32], uint8_t ret_rs[64]);
/* Returns 0 if rs is a valid signature of digest under k, -EGW_EBADSIG if
 * not, -ENOMEM on allocation failure. */
int p256_verify_digest(EVP_PKEY *k, const uint8_t digest[32], const uint8_t rs[64]);

/* SHA-256 of n bytes.  Returns 0 or -ENOMEM. */
int p256_sha256(const void *data, size_t n, uint8_t ret_digest[32]);
