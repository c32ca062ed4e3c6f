/* An OpenSSL stand-in for the ATECC608 calls in atcab.h, so the ATECC signer
 * backend runs in CI where no chip (and no cryptoauthlib) exists.
 *
 * Like the real library it keeps process-wide state (one chip per process);
 * that state is guarded by a mutex.  The serial looks like a real one
 * (01 23 .. .. .. .. .. .. EE), its middle derived from the public key. */
#include "crypto/atcab.h"

#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto/p256.h"

static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static char fake_dir[PATH_MAX];
static bool fake_dir_set;
static atomic_bool fake_failing;
static atomic_uint fake_inits;
static EVP_PKEY *fake_key;  /* non-NULL between init and release */

void atcab_fake_setup(const char *dir)
{
	pthread_mutex_lock(&fake_lock);
	fake_dir_set = dir && snprintf(fake_dir, sizeof(fake_dir), "%s", dir) < (int)sizeof(fake_dir);
	pthread_mutex_unlock(&fake_lock);
}

void atcab_fake_set_failing(bool failing)
{
	atomic_store(&fake_failing, failing);
}

unsigned atcab_fake_init_count(void)
{
	return atomic_load(&fake_inits);
}

/* Called with fake_lock held.  Returns the chip directory or NULL. */
static const char *fake_dir_locked(void)
{
	const char *env;

	if (fake_dir_set)
		return fake_dir;
	env = getenv("EGW_ATECC_FAKE_DIR");
	return env && *env ? env : NULL;
}

/* Called with fake_lock held. */
static bool fake_broken_locked(void)
{
	char path[PATH_MAX + 8];
	const char *dir = fake_dir_locked();

	if (atomic_load(&fake_failing) || !dir)
		return true;
	snprintf(path, sizeof(path), "%s/fail", dir);
	return access(path, F_OK) == 0;
}

ATCA_STATUS atcab_init(ATCAIfaceCfg *cfg)
{
	char path[PATH_MAX + 32];
	EVP_PKEY *k = NULL;
	ATCA_STATUS st = ATCA_COMM_FAIL;

	if (!cfg || cfg->iface_type != ATCA_I2C_IFACE)
		return ATCA_BAD_PARAM;
	pthread_mutex_lock(&fake_lock);
	if (fake_broken_locked())
		goto unlock;
	snprintf(path, sizeof(path), "%s/atecc-fake-slot0.pem", fake_dir_locked());
	if (p256_load_or_create(path, &k, NULL) < 0)
		goto unlock;
	EVP_PKEY_free(fake_key);
	fake_key = k;
	atomic_fetch_add(&fake_inits, 1);
	st = ATCA_SUCCESS;
unlock:
	pthread_mutex_unlock(&fake_lock);
	return st;
}

ATCA_STATUS atcab_release(void)
{
	pthread_mutex_lock(&fake_lock);
	EVP_PKEY_free(fake_key);
	fake_key = NULL;
	pthread_mutex_unlock(&fake_lock);
	return ATCA_SUCCESS;
}

ATCA_STATUS atcab_read_serial_number(uint8_t *serial_number)
{
	uint8_t xy[64], h[32];
	ATCA_STATUS st = ATCA_COMM_FAIL;

	pthread_mutex_lock(&fake_lock);
	if (!fake_key) {
		st = ATCA_NOT_INITIALIZED;
		goto unlock;
	}
	if (fake_broken_locked() || p256_public_xy(fake_key, xy) < 0 || p256_sha256(xy, 64, h) < 0)
		goto unlock;
	serial_number[0] = 0x01;
	serial_number[1] = 0x23;
	memcpy(serial_number + 2, h, 6);
	serial_number[8] = 0xEE;
	st = ATCA_SUCCESS;
unlock:
	pthread_mutex_unlock(&fake_lock);
	return st;
}

ATCA_STATUS atcab_get_pubkey(uint16_t key_id, uint8_t *public_key)
{
	ATCA_STATUS st = ATCA_COMM_FAIL;

	if (key_id != 0)
		return ATCA_BAD_PARAM; /* the fake holds a key in slot 0 only */
	pthread_mutex_lock(&fake_lock);
	if (!fake_key)
		st = ATCA_NOT_INITIALIZED;
	else if (!fake_broken_locked() && p256_public_xy(fake_key, public_key) == 0)
		st = ATCA_SUCCESS;
	pthread_mutex_unlock(&fake_lock);
	return st;
}

ATCA_STATUS atcab_sign(uint16_t key_id, const uint8_t *msg, uint8_t *signature)
{
	ATCA_STATUS st = ATCA_COMM_FAIL;

	if (key_id != 0)
		return ATCA_BAD_PARAM;
	pthread_mutex_lock(&fake_lock);
	if (!fake_key)
		st = ATCA_NOT_INITIALIZED;
	else if (!fake_broken_locked() && p256_sign_digest(fake_key, msg, signature) == 0)
		st = ATCA_SUCCESS;
	pthread_mutex_unlock(&fake_lock);
	return st;
}
