/* Signer: the device identity and the only holder of its private key.
 *
 * One interface, two backends:
 *   - SIGNER_SOFTWARE: an OpenSSL P-256 key in <state_dir>/device-key.pem
 *     (created at first open with mode 0600; never logged, never served).
 *     Its serial is 0x01 followed by the first 8 bytes of SHA-256(X||Y),
 *     9 bytes like an ATECC608 serial.
 *   - SIGNER_ATECC608: slot 0 of a Microchip ATECC608 through cryptoauthlib
 *     (see atcab.h).  Built when the real library is installed
 *     (EGW_HAVE_ATECC) or against the OpenSSL fake used by the tests
 *     (EGW_HAVE_ATECC_FAKE; the fake only works when EGW_ATECC_FAKE_DIR is
 *     set or atcab_fake_setup() was called, so it never poses as a chip).
 *
 * The serial and public key are read once at open and never change, so the
 * read-only accessors are safe from any thread.  signer_sign_digest() may
 * block (I2C to the chip): call it from a loop worker (loop_work_submit).
 * It is serialized internally.  No function signs caller-chosen data on
 * behalf of a remote peer: the caller (the batch pipeline) chooses what to
 * sign.
 *
 * Health: a failed signature marks the signer unhealthy and records a short
 * static reason (signer_last_error); the next signer_sign_digest() retries
 * (the ATECC backend re-initializes the chip first) and a success marks it
 * healthy again.  Retry pacing (backoff) belongs to the caller's task. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct signer;

enum signer_backend { SIGNER_SOFTWARE, SIGNER_ATECC608 };

struct signer_config {
	enum signer_backend backend;
	const char *state_dir;   /* software: directory holding device-key.pem */
	const char *i2c_bus;     /* atecc: "/dev/i2c-1" or "1" */
	unsigned i2c_address;    /* atecc: 7-bit address, e.g. 0x60 (0 means 0x60) */
	bool fallback_software;  /* atecc: if the chip cannot be opened, open the
	                          * software key in state_dir instead */
};

#define SIGNER_SERIAL_LEN 9
#define SIGNER_SERIAL_HEX_LEN (2 * SIGNER_SERIAL_LEN)

/* Opens the signer.  Software: loads <state_dir>/device-key.pem or creates it
 * (mode 0600, atomically).  ATECC: initializes the chip, reads serial and
 * slot-0 public key.
 * Returns 0, -EINVAL (bad config), -ENOTSUP (backend not built in),
 * -EGW_ESIGNER (chip unreachable or key file unusable), -ENOMEM or -errno
 * from file I/O.  On failure the daemon may fall back to SIGNER_SOFTWARE. */
int signer_open(const struct signer_config *cfg, struct signer **ret);
/* Accepts NULL. */
void signer_close(struct signer *s);
/* True when SIGNER_ATECC608 was asked for and the software key is used
 * instead (fallback_software); signer_fallback_reason() then returns the
 * chip's error (negative), else 0. */
bool signer_is_fallback(const struct signer *s);
int signer_fallback_reason(const struct signer *s);

/* "software" or "atecc608" (or "atecc608-fake" when built on the fake). */
const char *signer_backend_name(const struct signer *s);
/* 18 lowercase hex characters, NUL-terminated; valid until signer_close. */
const char *signer_serial_hex(const struct signer *s);
/* Raw serial (9 bytes).  Returns 0. */
int signer_serial(const struct signer *s, uint8_t ret_serial[SIGNER_SERIAL_LEN]);
/* Uncompressed public key without the 0x04 prefix: X||Y, 32 bytes each.  Returns 0. */
int signer_public_key(const struct signer *s, uint8_t ret_xy[64]);
/* 128 lowercase hex characters of X||Y, NUL-terminated; valid until close. */
const char *signer_public_key_hex(const struct signer *s);
/* SubjectPublicKeyInfo PEM ("-----BEGIN PUBLIC KEY-----..."), NUL-terminated. */
const char *signer_public_key_pem(const struct signer *s);
/* The /api/crypto object minus deviceName (the caller adds it):
 *   {"serialNumber": "<18 hex>", "publicKey": "<128 hex>",
 *    "publicKey_pem": "-----BEGIN PUBLIC KEY-----\n...",
 *    "publicKey_jwk": {"kty":"EC","crv":"P-256","x":"<b64url>","y":"<b64url>"},
 *    "backend": "software"}
 * Returns 0 or -ENOMEM; *ret is a new reference. */
int signer_public_key_json(const struct signer *s, json_t **ret);

/* Signs a SHA-256 digest; writes the raw signature r||s (32 bytes each,
 * big-endian, low-S not enforced).  May block: call from a worker.
 * Returns 0 or -EGW_ESIGNER (then signer_healthy() is false). */
int signer_sign_digest(struct signer *s, const uint8_t digest[32], uint8_t ret_rs[64]);

/* False after a failed signature, until a signature succeeds again.
 * Thread-safe. */
bool signer_healthy(const struct signer *s);
/* Static string naming the last failure, or NULL if none.  Thread-safe. */
const char *signer_last_error(const struct signer *s);
