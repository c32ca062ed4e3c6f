/* The few cryptoauthlib calls the ATECC608 signer uses.
 *
 * With the real library installed (EGW_HAVE_ATECC) this header just includes
 * <cryptoauthlib.h>.  Otherwise it declares the same names with the same
 * signatures as the library's public API (cryptoauthlib 3.x: basic/atca_basic.h,
 * atca_iface.h, atca_status.h), written here from its documentation, so
 * signer.c compiles unchanged against the OpenSSL fake (atcab_fake.c,
 * EGW_HAVE_ATECC_FAKE) used by the tests.
 *
 * Calls used: atcab_init, atcab_release, atcab_read_serial_number (9 bytes),
 * atcab_get_pubkey (64 bytes X||Y of a slot's key), atcab_sign (ECDSA P-256
 * over a 32-byte digest, 64 bytes r||s). */
#pragma once
#include "egw-config.h"

#if EGW_HAVE_ATECC
#include <cryptoauthlib.h>
#else
#include <stdbool.h>
#include <stdint.h>

typedef enum {
	ATCA_SUCCESS = 0x00,
	ATCA_WAKE_FAILED = 0xD0,
	ATCA_FUNC_FAIL = 0xE0,
	ATCA_GEN_FAIL = 0xE1,
	ATCA_BAD_PARAM = 0xE2,
	ATCA_COMM_FAIL = 0xF0,
	ATCA_NOT_INITIALIZED = 0xF7,
} ATCA_STATUS;

typedef enum { ATCA_I2C_IFACE = 0 } ATCAIfaceType;
typedef enum { ATECC608A = 3, ATECC608 = 3 } ATCADeviceType;

typedef struct {
	ATCAIfaceType iface_type;
	ATCADeviceType devtype;
	union {
		struct {
			uint8_t address; /* 8-bit bus address: 7-bit address << 1 */
			uint8_t bus;
			uint32_t baud;
		} atcai2c;
	};
	uint16_t wake_delay;
	int rx_retries;
	void *cfg_data;
} ATCAIfaceCfg;

ATCA_STATUS atcab_init(ATCAIfaceCfg *cfg);
ATCA_STATUS atcab_release(void);
ATCA_STATUS atcab_read_serial_number(uint8_t *serial_number);
ATCA_STATUS atcab_get_pubkey(uint16_t key_id, uint8_t *public_key);
ATCA_STATUS atcab_sign(uint16_t key_id, const uint8_t *msg, uint8_t *signature);

#if EGW_HAVE_ATECC_FAKE
/* The fake chip keeps its slot-0 key in <dir>/atecc-fake-slot0.pem (created
 * on first init).  dir comes from atcab_fake_setup() or, if that was never
 * called, from the environment variable EGW_ATECC_FAKE_DIR; without either,
 * atcab_init fails with ATCA_COMM_FAIL (no chip), so a build that carries the
 * fake never signs with it by accident.  Pass NULL to forget the directory. */
void atcab_fake_setup(const char *dir);
/* Every call fails with ATCA_COMM_FAIL while failing is true, or while the
 * file <dir>/fail exists (so a test can break a running daemon's chip). */
void atcab_fake_set_failing(bool failing);
/* Number of atcab_init calls that succeeded (to observe re-initialization). */
unsigned atcab_fake_init_count(void);
#endif
#endif
