/* ATECC608 tests: the signer and egwd's chip commands through the real
 * cryptoauthlib and its unchanged Linux I2C HAL, on the emulated chip
 * (sim/atecc_emu.c behind sim/atecc_shim.c, linked into this program):
 * no chip, a blank chip, an unlocked one, provisioning (twice), serial and public key,
 * signatures that verify, faults on the line and recovery, the identity
 * record and its refusal of another key. */
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
#include "crypto/atcab.h"
#include "crypto/jwt.h"
#include "crypto/p256.h"
#include "crypto/signer.h"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

struct fx {
	char dir[64];     /* the chip's directory */
	char state[96];   /* egwd's state directory */
	struct signer_config cfg;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/egw-test-atecc-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->state, sizeof(f->state), "%s/state", f->dir);
	assert_int_equal(mkdir(f->state, 0700), 0);
	f->cfg = (struct signer_config){ .backend = SIGNER_ATECC608, .state_dir = f->state,
		.i2c_bus = "/dev/i2c-1", .i2c_address = 0x60 };
	assert_int_equal(setenv("EGW_ATECC_EMU_DIR", f->dir, 1), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	unsetenv("EGW_ATECC_EMU_DIR");
	nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void faults(struct fx *f, const char *words)
{
	char path[128];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/faults", f->dir);
	if (!words) {
		unlink(path);
		return;
	}
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(words, fp);
	fclose(fp);
}

static void sign_verifies(struct signer *s, const char *text)
{
	uint8_t d[32], rs[64], xy[64];
	EVP_PKEY *pub;

	assert_int_equal(p256_sha256(text, strlen(text), d), 0);
	assert_int_equal(signer_sign_digest(s, d, rs), 0);
	assert_true(signer_healthy(s));
	assert_int_equal(signer_public_key(s, xy), 0);
	assert_int_equal(p256_from_xy(xy, &pub), 0);
	assert_int_equal(p256_verify_digest(pub, d, rs), 0);
	EVP_PKEY_free(pub);
}

static void sign_fails(struct signer *s)
{
	uint8_t d[32] = { 1 }, rs[64];

	assert_int_equal(signer_sign_digest(s, d, rs), -EGW_ESIGNER);
	assert_false(signer_healthy(s));
	assert_non_null(signer_last_error(s));
}

static void test_atecc_no_chip(void **state)
{
	struct fx *f = *state;
	struct signer_chip_info ci;
	struct signer *s;

	unsetenv("EGW_ATECC_EMU_DIR"); /* nothing behind /dev/i2c-1 */
	assert_int_equal(signer_chip_info(&f->cfg, &ci), -EGW_ESIGNER);
	assert_int_equal(signer_open(&f->cfg, &s), -EGW_ESIGNER);
	/* egwd's way: the signer waits, signs nothing, knows no identity */
	f->cfg.wait_for_chip = true;
	f->cfg.record_identity = true;
	assert_int_equal(signer_open(&f->cfg, &s), 0);
	assert_string_equal(signer_backend_name(s), "atecc608");
	assert_false(signer_identity_known(s));
	assert_string_equal(signer_serial_hex(s), "unknown");
	sign_fails(s);
	assert_non_null(strstr(signer_last_error(s), "/dev/i2c-1 at 0x60"));
	signer_close(s);
	/* bad addresses and buses */
	f->cfg.i2c_address = 0x80;
	assert_int_equal(signer_open(&f->cfg, &s), -EINVAL);
	f->cfg.i2c_address = 0x60;
	f->cfg.i2c_bus = "/dev/i2c-x";
	assert_int_equal(signer_open(&f->cfg, &s), -EINVAL);
}

static void test_atecc_provision_and_sign(void **state)
{
	struct fx *f = *state;
	struct signer_chip_info ci;
	struct signer *s;
	uint8_t xy[64], xy2[64], serial[9];
	json_t *h, *p, *got;
	char *tok = NULL;

	/* blank chip: unlocked, slot 0 empty; the signer cannot use it */
	assert_int_equal(signer_chip_info(&f->cfg, &ci), 0);
	assert_false(ci.config_locked);
	assert_false(ci.data_locked);
	assert_false(ci.slot0_key_valid);
	assert_int_equal(ci.serial[0], 0x01);
	assert_int_equal(ci.serial[1], 0x23);
	assert_int_equal(ci.revision[2], 0x60);
	assert_int_equal(signer_open(&f->cfg, &s), -EGW_ESIGNER);

	assert_int_equal(signer_chip_provision(&f->cfg, xy), 0);
	assert_int_equal(signer_chip_provision(&f->cfg, xy2), -EEXIST);
	assert_int_equal(signer_chip_info(&f->cfg, &ci), 0);
	assert_true(ci.config_locked);
	assert_true(ci.data_locked);
	assert_true(ci.slot0_egw);
	assert_true(ci.slot0_key_valid);
	assert_memory_equal(ci.slot0_xy, xy, 64);

	f->cfg.record_identity = true;
	assert_int_equal(signer_open(&f->cfg, &s), 0);
	assert_string_equal(signer_backend_name(s), "atecc608");
	assert_int_equal(signer_serial(s, serial), 0);
	assert_memory_equal(serial, ci.serial, 9);
	assert_int_equal(signer_public_key(s, xy2), 0);
	assert_memory_equal(xy2, xy, 64);

	h = jwt_header_new(s, "sim", "pv");
	p = json_pack("{s:i}", "n", 1);
	assert_int_equal(jwt_sign(s, h, p, &tok), 0);
	assert_int_equal(jwt_verify_es256(tok, xy, &got), 0);
	json_decref(got);
	free(tok);
	json_decref(h);
	json_decref(p);
	signer_close(s);
}

/* Configured and keyed but the data zone left unlocked: the chip refuses
 * to sign (execution error) until it is locked. */
static void test_atecc_unlocked_chip(void **state)
{
	struct fx *f = *state;
	ATCAIfaceCfg c = cfg_ateccx08a_i2c_default;
	uint8_t w[4], xy[64];
	bool locked = true;
	struct signer *s;

	c.devtype = ATECC608;
	c.atcai2c.bus = 1;
	c.atcai2c.address = 0x60 << 1;
	c.atcai2c.baud = 100000;
	assert_int_equal(atcab_init(&c), ATCA_SUCCESS);
	assert_int_equal(atcab_read_bytes_zone(ATCA_ZONE_CONFIG, 0, 20, w, 4), ATCA_SUCCESS);
	w[0] = 0x83;
	w[1] = 0x00;
	assert_int_equal(atcab_write_bytes_zone(ATCA_ZONE_CONFIG, 0, 20, w, 4), ATCA_SUCCESS);
	assert_int_equal(atcab_read_bytes_zone(ATCA_ZONE_CONFIG, 0, 96, w, 4), ATCA_SUCCESS);
	w[0] = 0x13;
	w[1] = 0x00;
	assert_int_equal(atcab_write_bytes_zone(ATCA_ZONE_CONFIG, 0, 96, w, 4), ATCA_SUCCESS);
	/* bytes 0-15 are the factory's */
	assert_int_not_equal(atcab_write_bytes_zone(ATCA_ZONE_CONFIG, 0, 0, w, 4), ATCA_SUCCESS);
	assert_int_equal(atcab_lock_config_zone(), ATCA_SUCCESS);
	assert_int_not_equal(atcab_write_bytes_zone(ATCA_ZONE_CONFIG, 0, 20, w, 4), ATCA_SUCCESS);
	assert_int_equal(atcab_genkey(0, xy), ATCA_SUCCESS);
	assert_int_equal(atcab_is_data_locked(&locked), ATCA_SUCCESS);
	assert_false(locked);
	atcab_release();

	/* The key is there but the data zone is open: no identity, no signature. */
	assert_int_equal(signer_open(&f->cfg, &s), -EGW_ESIGNER);
	f->cfg.wait_for_chip = true;
	assert_int_equal(signer_open(&f->cfg, &s), 0);
	assert_false(signer_identity_known(s));
	sign_fails(s);
	assert_non_null(strstr(signer_last_error(s), "data zone is not locked"));
	assert_false(signer_identity_known(s));
	assert_int_equal(atcab_init(&c), ATCA_SUCCESS);
	assert_int_equal(atcab_lock_data_zone(), ATCA_SUCCESS);
	/* the key is permanent now: GenKey may not replace it */
	assert_int_not_equal(atcab_genkey(0, xy), ATCA_SUCCESS);
	atcab_release();
	sign_verifies(s, "locked");
	signer_close(s);
}

/* A configuration zone locked by someone else is never provisioned over;
 * one locked as egw's with the data zone open is finished with a new key. */
static void test_atecc_provision_resume_or_refuse(void **state)
{
	struct fx *f = *state;
	ATCAIfaceCfg c = cfg_ateccx08a_i2c_default;
	uint8_t w[4], xy_before[64], xy[64];
	struct signer_chip_info ci;
	bool locked = true;
	char path[128];

	c.devtype = ATECC608;
	c.atcai2c.bus = 1;
	c.atcai2c.address = 0x60 << 1;
	c.atcai2c.baud = 100000;
	/* slot 0 as egw's, configuration locked, a key, data zone open */
	assert_int_equal(atcab_init(&c), ATCA_SUCCESS);
	assert_int_equal(atcab_read_bytes_zone(ATCA_ZONE_CONFIG, 0, 20, w, 4), ATCA_SUCCESS);
	w[0] = 0x83;
	w[1] = 0x00;
	assert_int_equal(atcab_write_bytes_zone(ATCA_ZONE_CONFIG, 0, 20, w, 4), ATCA_SUCCESS);
	assert_int_equal(atcab_read_bytes_zone(ATCA_ZONE_CONFIG, 0, 96, w, 4), ATCA_SUCCESS);
	w[0] = 0x13;
	w[1] = 0x00;
	assert_int_equal(atcab_write_bytes_zone(ATCA_ZONE_CONFIG, 0, 96, w, 4), ATCA_SUCCESS);
	assert_int_equal(atcab_lock_config_zone(), ATCA_SUCCESS);
	assert_int_equal(atcab_genkey(0, xy_before), ATCA_SUCCESS);
	atcab_release();
	assert_int_equal(signer_chip_provision(&f->cfg, xy), 0);
	assert_memory_not_equal(xy, xy_before, sizeof(xy));
	assert_int_equal(signer_chip_info(&f->cfg, &ci), 0);
	assert_true(ci.config_locked && ci.data_locked && ci.slot0_egw && ci.slot0_key_valid);
	assert_memory_equal(ci.slot0_xy, xy, sizeof(xy));
	assert_int_equal(signer_chip_provision(&f->cfg, xy_before), -EEXIST);

	/* another chip, slot 0 configured otherwise and locked: refused, untouched */
	snprintf(path, sizeof(path), "%s/other", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(setenv("EGW_ATECC_EMU_DIR", path, 1), 0); /* a blank chip */
	assert_int_equal(atcab_init(&c), ATCA_SUCCESS);
	assert_int_equal(atcab_read_bytes_zone(ATCA_ZONE_CONFIG, 0, 20, w, 4), ATCA_SUCCESS);
	w[0] = 0x8F;
	w[1] = 0x20;
	assert_int_equal(atcab_write_bytes_zone(ATCA_ZONE_CONFIG, 0, 20, w, 4), ATCA_SUCCESS);
	assert_int_equal(atcab_lock_config_zone(), ATCA_SUCCESS);
	atcab_release();
	assert_int_equal(signer_chip_provision(&f->cfg, xy), -EEXIST);
	assert_int_equal(atcab_init(&c), ATCA_SUCCESS);
	assert_int_equal(atcab_is_data_locked(&locked), ATCA_SUCCESS);
	assert_false(locked);
	atcab_release();
}

static void test_atecc_line_faults(void **state)
{
	static const char *const words[] = { "absent", "nowake", "crc-in", "crc-out", "busy", "slow",
					     "watchdog=60" };
	struct fx *f = *state;
	struct signer *s;
	uint8_t xy[64];

	assert_int_equal(signer_chip_provision(&f->cfg, xy), 0);
	assert_int_equal(signer_open(&f->cfg, &s), 0);
	sign_verifies(s, "before");
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		faults(f, words[i]);
		sign_fails(s);
		faults(f, NULL);
		sign_verifies(s, words[i]);
	}
	signer_close(s);
}

static void test_atecc_identity(void **state)
{
	struct fx *f = *state;
	struct signer_config soft = { .backend = SIGNER_SOFTWARE, .record_identity = true };
	struct signer *s;
	uint8_t xy[64];
	char serial[32], path[160];

	soft.state_dir = f->state;
	assert_int_equal(signer_chip_provision(&f->cfg, xy), 0);
	f->cfg.record_identity = true;
	f->cfg.wait_for_chip = true;
	assert_int_equal(signer_open(&f->cfg, &s), 0);
	snprintf(serial, sizeof(serial), "%s", signer_serial_hex(s));
	sign_verifies(s, "first");
	signer_close(s);
	snprintf(path, sizeof(path), "%s/identity", f->state);
	assert_int_equal(access(path, F_OK), 0);

	/* the software key is another identity: refused, nothing signed */
	assert_int_equal(signer_open(&soft, &s), 0);
	assert_true(signer_identity_refused(s));
	sign_fails(s);
	signer_close(s);

	/* auto follows the record: the chip, even while it is away */
	faults(f, "absent");
	soft.backend = SIGNER_AUTO;
	soft.wait_for_chip = true;
	assert_int_equal(signer_open(&soft, &s), 0);
	assert_string_equal(signer_backend_name(s), "atecc608");
	assert_string_equal(signer_serial_hex(s), serial); /* the recorded one */
	sign_fails(s);
	faults(f, NULL);
	sign_verifies(s, "back");
	signer_close(s);

	/* accepted explicitly: the software key signs and becomes the record */
	soft.backend = SIGNER_SOFTWARE;
	soft.accept_new_identity = true;
	assert_int_equal(signer_open(&soft, &s), 0);
	assert_false(signer_identity_refused(s));
	sign_verifies(s, "new");
	signer_close(s);
	f->cfg.accept_new_identity = false;
	assert_int_equal(signer_open(&f->cfg, &s), 0);
	assert_true(signer_identity_refused(s)); /* now the chip is the stranger */
	sign_fails(s);
	signer_close(s);

	/* a record that cannot be read: the signer opens, signs nothing */
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("backend atecc608\nserial zz\n", fp);
	fclose(fp);
	assert_int_equal(signer_open(&f->cfg, &s), 0);
	assert_true(signer_identity_refused(s));
	sign_fails(s);
	assert_non_null(strstr(signer_last_error(s), "unreadable"));
	signer_close(s);
	f->cfg.accept_new_identity = true;
	assert_int_equal(signer_open(&f->cfg, &s), 0);
	sign_verifies(s, "replaced");
	signer_close(s);
	fp = fopen(path, "r");
	assert_non_null(fp);
	char line[64];
	assert_non_null(fgets(line, sizeof(line), fp));
	fclose(fp);
	assert_string_equal(line, "backend atecc608\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_atecc_no_chip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_atecc_provision_and_sign, setup, teardown),
		cmocka_unit_test_setup_teardown(test_atecc_unlocked_chip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_atecc_provision_resume_or_refuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_atecc_line_faults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_atecc_identity, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
