/* Signer: the device identity and the only holder of its private key.
 *
 * Backends:
 *   - SIGNER_SOFTWARE: an OpenSSL P-256 key in <state_dir>/device-key.pem
 *     (created at first open with mode 0600; never logged, never served).
 *     Its serial is 0x01 followed by the first 8 bytes of SHA-256(X||Y),
 *     9 bytes like an ATECC608 serial.
 *   - SIGNER_ATECC608: slot 0 of a Microchip ATECC608 through cryptoauthlib
 *     (atcab.h), on the Linux I2C bus signer.i2c_bus at signer.i2c_address.
 *   - SIGNER_AUTO: the backend the recorded identity names; without a
 *     record, the chip if one answers at open, else the software key.
 *
 * Identity (record_identity): <state_dir>/identity holds the backend, serial
 * and public key of the first signature ever made.  A signer whose key is
 * another one signs nothing (signer_last_error says why) unless
 * accept_new_identity is set, which replaces the record at the next
 * signature.  So a missing chip never turns into a software key silently.
 *
 * With wait_for_chip, an ATECC608 that does not answer at open is not an
 * error: the signer opens, shows the recorded identity (or none), and every
 * signer_sign_digest() tries the chip again.  Retry pacing (backoff) belongs
 * to the caller's task.
 *
 * The identity shown is replaced at most once (unknown or recorded -> the
 * chip's) and the old one stays valid until close, so the accessors are
 * safe from any thread.  signer_sign_digest() may block (I2C to the chip):
 * call it from a loop worker (loop_work_submit).  It is serialized
 * internally.  No function signs caller-chosen data on behalf of a remote
 * peer: the caller (the batch pipeline) chooses what to sign. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct signer;

enum signer_backend { SIGNER_AUTO, SIGNER_SOFTWARE, SIGNER_ATECC608 };

struct signer_config {
	enum signer_backend backend;
	const char *state_dir;    /* device-key.pem and identity */
	const char *i2c_bus;      /* atecc: "/dev/i2c-1" or "1" */
	unsigned i2c_address;     /* atecc: 7-bit address, e.g. 0x60 (0 means 0x60) */
	bool wait_for_chip;       /* atecc: open even when the chip does not answer */
	bool record_identity;     /* keep and enforce <state_dir>/identity */
	bool accept_new_identity; /* replace a recorded identity that differs */
};

#define SIGNER_SERIAL_LEN 9
#define SIGNER_SERIAL_HEX_LEN (2 * SIGNER_SERIAL_LEN)

/* Opens the signer.  Software: loads <state_dir>/device-key.pem or creates it
 * (mode 0600, atomically).  ATECC: initializes the chip, reads serial and
 * slot-0 public key (without wait_for_chip, a chip that does not answer is
 * an error).  A recorded identity that differs is not an error here: the
 * signer opens and refuses to sign.
 * An unreadable identity record is not an error either: nothing is signed
 * until accept_new_identity replaces it.
 * Returns 0, -EINVAL (bad config), -ENOTSUP
 * (backend not built in), -EGW_ESIGNER (chip unreachable or key file
 * unusable), -ENOMEM or -errno from file I/O. */
int signer_open(const struct signer_config *cfg, struct signer **ret);
/* The bus number of an I2C bus named "/dev/i2c-1", "i2c-1" or "1" ("" or
 * NULL: 1, the Raspberry Pi's header bus).  Returns 0, or -EINVAL when the
 * name does not end in a number up to 255. */
int signer_i2c_bus_number(const char *bus, unsigned *ret);
/* Accepts NULL. */
void signer_close(struct signer *s);

/* "software" or "atecc608" (or "atecc608-fake" when built on the fake). */
const char *signer_backend_name(const struct signer *s);
/* True when an identity is known: the signer's own, or the recorded one
 * while the chip is away. */
bool signer_identity_known(const struct signer *s);
/* 18 lowercase hex characters, or "unknown" while no identity is known;
 * valid until signer_close. */
const char *signer_serial_hex(const struct signer *s);
/* Raw serial (9 bytes).  Returns 0 or -EAGAIN (no identity known). */
int signer_serial(const struct signer *s, uint8_t ret_serial[SIGNER_SERIAL_LEN]);
/* Uncompressed public key without the 0x04 prefix: X||Y, 32 bytes each.
 * Returns 0 or -EAGAIN (no identity known). */
int signer_public_key(const struct signer *s, uint8_t ret_xy[64]);
/* 128 lowercase hex characters of X||Y, or NULL while no identity is known. */
const char *signer_public_key_hex(const struct signer *s);
/* SubjectPublicKeyInfo PEM ("-----BEGIN PUBLIC KEY-----..."), or NULL. */
const char *signer_public_key_pem(const struct signer *s);
/* The /api/crypto object minus deviceName (the caller adds it):
 *   {"serialNumber": "<18 hex>", "publicKey": "<128 hex>",
 *    "publicKey_pem": "-----BEGIN PUBLIC KEY-----\n...",
 *    "publicKey_jwk": {"kty":"EC","crv":"P-256","x":"<b64url>","y":"<b64url>"},
 *    "backend": "software"}
 * Returns 0, -EAGAIN (no identity known) or -ENOMEM; *ret is a new reference. */
int signer_public_key_json(const struct signer *s, json_t **ret);

/* Makes sure the next signature can be made under the identity shown:
 * reaches the chip (starting it afresh after a failure) and checks the
 * identity record.  Call it before building what names the signer (a JWT
 * header's device).  May block: call from a worker.  Returns 0 or
 * -EGW_ESIGNER (then signer_last_error says why). */
int signer_prepare(struct signer *s);

/* Signs a SHA-256 digest; writes the raw signature r||s (32 bytes each,
 * big-endian, low-S not enforced).  May block: call from a worker.
 * Returns 0 or -EGW_ESIGNER (then signer_healthy() is false). */
int signer_sign_digest(struct signer *s, const uint8_t digest[32], uint8_t ret_rs[64]);

/* False after a failed signature, until a signature succeeds again.
 * Thread-safe. */
bool signer_healthy(const struct signer *s);
/* Static string naming the last failure, or NULL if none.  Thread-safe. */
const char *signer_last_error(const struct signer *s);
/* True while signatures are refused because the key is not the recorded
 * identity (see accept_new_identity).  Thread-safe. */
bool signer_identity_refused(const struct signer *s);

/* The identity record, "backend B\nserial HEX\npublic_key HEX\n" (B software
 * or atecc608, 18 and 128 lowercase hex digits; any other line is an
 * error).  Exposed for its fuzzer.  Returns 0 or -EINVAL. */
struct signer_identity {
	char backend[16];
	uint8_t serial[SIGNER_SERIAL_LEN];
	uint8_t xy[64];
};
int signer_identity_parse(const char *text, size_t n, struct signer_identity *ret);

/* ---- the chip itself (egwd --chip-info, --chip-provision) ---- */

struct signer_chip_info {
	uint8_t serial[SIGNER_SERIAL_LEN];
	uint8_t revision[4];
	bool config_locked, data_locked;
	uint16_t slot0_config, slot0_key_config; /* SlotConfig[0], KeyConfig[0] */
	bool slot0_locked;                       /* SlotLocked bit */
	bool slot0_key_valid;                    /* Info KeyValid */
	bool slot0_egw;                          /* configured as --chip-provision does */
	uint8_t slot0_xy[64];                    /* valid when slot0_key_valid and slot0_egw */
};

/* What --chip-provision writes, one line each, for --dry-run and docs. */
extern const char *const signer_provision_plan[];
/* The first step of the plan after the configuration lock: where a run on a
 * chip left with its configuration locked (as ours) and its data zone open
 * goes on from. */
#define SIGNER_PROVISION_AFTER_CONFIG_LOCK 3

/* Reads the chip on cfg->i2c_bus at cfg->i2c_address.  Returns 0,
 * -ENOTSUP (built without cryptoauthlib) or -EGW_ESIGNER (no chip answers). */
int signer_chip_info(const struct signer_config *cfg, struct signer_chip_info *ret);
/* Provisions a blank chip as signer_provision_plan says: slot 0 and its key
 * configured, the configuration zone locked, a P-256 key generated inside
 * slot 0, the data zone locked.  A chip whose configuration zone is already
 * locked with slot 0 configured as the plan says, and whose data zone is
 * open (an interrupted run), gets the steps from
 * SIGNER_PROVISION_AFTER_CONFIG_LOCK on, with a new key.  Writes the public
 * key.  Returns 0, -EEXIST (the data zone is locked, or the configuration
 * zone is locked with another slot 0 configuration: nothing is written),
 * -ENOTSUP or -EGW_ESIGNER (the chip failed; it may be half provisioned). */
int signer_chip_provision(const struct signer_config *cfg, uint8_t ret_xy[64]);
