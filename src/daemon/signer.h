/* Wiring of the signer into the daemon (struct egw, egw.h).
 *
 * Opens e->signer from the settings signer.backend ("auto", "software" or
 * "atecc608"), signer.i2c_bus and signer.i2c_address, recording and
 * enforcing the identity in <state-dir>/identity (signer.h); the software
 * key lives in <state-dir>/device-key.pem.  A chip that does not answer is
 * not a start-up failure: egwd runs, stores readings unsigned and signs them
 * when it answers.  Registers:
 *   - the "crypto" section, answering GET /api/crypto with deviceName
 *     (the name from the name query, null until known), serialNumber,
 *     publicKey (hex X||Y), publicKey_pem, publicKey_jwk, backend (absent
 *     while no identity is known);
 *   - the "signer" section of /api/state: backend, serial (null while
 *     unknown), healthy, last_error, signing, not_signing_reason,
 *     identity_refused, configured;
 *   - /metrics: egw_signer_healthy.
 * A change of the signer settings takes effect at the next start. */
#pragma once

struct egw;
struct settings;

enum crypto_chip_cmd { CHIP_INFO, CHIP_PROVISION, CHIP_PROVISION_DRY_RUN };

/* Returns 0, or the error of signer_open (logged once here). */
int crypto_egw_init(struct egw *e);
void crypto_egw_fini(struct egw *e);
/* egwd --chip-info / --chip-provision [--dry-run] on the chip the settings
 * name; prints to stdout, errors to stderr.  Returns the exit code. */
int crypto_chip_command(const struct settings *st, const char *state_dir, enum crypto_chip_cmd cmd);
