/* Wiring of the signer into the daemon (struct egw, egw.h).
 *
 * Opens e->signer from the settings signer.backend ("software" or
 * "atecc608"), signer.i2c_bus and signer.i2c_address; the software key lives
 * in <state-dir>/device-key.pem.  If the ATECC608 cannot be reached at start,
 * the gateway falls back to the software key (logged as a warning, shown as
 * "fallback": true), as the original gateway does when the secure element is
 * missing.  Registers:
 *   - the "crypto" section, answering GET /api/crypto with deviceName
 *     (the name from the name query, null until known), serialNumber,
 *     publicKey (hex X||Y), publicKey_pem, publicKey_jwk, backend;
 *   - the "signer" section of /api/state: backend, serial, healthy,
 *     last_error, fallback, configured;
 *   - /metrics: egw_signer_healthy.
 * A change of the signer settings takes effect at the next start. */
#pragma once

struct egw;

/* Returns 0, or the error of signer_open (logged once here). */
int crypto_egw_init(struct egw *e);
void crypto_egw_fini(struct egw *e);
