/* The emulated ATECC608 (see atecc_emu.h). */
#include "atecc_emu.h"

#include <errno.h>
#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto/p256.h"

#define WATCHDOG_US 1300000u /* tWATCHDOG, typical */
#define SLOW_US 2000000u

enum {
	ST_OK = 0x00,
	ST_PARSE = 0x03,
	ST_EXEC = 0x0F,
	ST_WAKE = 0x11,
	ST_WDT = 0xEE,
	ST_CRC = 0xFF
};
enum {
	OP_READ = 0x02,
	OP_WRITE = 0x12,
	OP_NONCE = 0x16,
	OP_LOCK = 0x17,
	OP_RANDOM = 0x1B,
	OP_INFO = 0x30,
	OP_GENKEY = 0x40,
	OP_SIGN = 0x41,
	OP_SHA = 0x47
};
enum power { P_SLEEP, P_IDLE, P_AWAKE };

/* Configuration zone offsets. */
enum {
	CF_REV = 4,
	CF_I2C_ADDR = 16,
	CF_SLOTCFG = 20,
	CF_LOCK_VALUE = 86,
	CF_LOCK_CONFIG = 87,
	CF_SLOT_LOCKED = 88,
	CF_KEYCFG = 96
};

/* Data zone: slots 0-7 hold 36 bytes, slot 8 416, slots 9-15 72. */
#define DATA_SIZE (8 * 36 + 416 + 7 * 72)

/* The persistent chip, as stored in <dir>/chip. */
struct chip {
	char magic[8];
	uint8_t config[128];
	uint8_t otp[64];
	uint8_t data[DATA_SIZE];
	uint8_t pub[16][64]; /* public key of each private-key slot */
	uint16_t key_valid;
};

/* Execution times in ms (ATECC608 at the default clock). */
static const struct {
	uint8_t op;
	uint16_t ms;
} exec_ms[] = {
	{ OP_READ, 5 }, { OP_WRITE, 45 },   { OP_NONCE, 20 }, { OP_LOCK, 35 }, { OP_RANDOM, 23 },
	{ OP_INFO, 5 }, { OP_GENKEY, 115 }, { OP_SIGN, 115 }, { OP_SHA, 36 },
};

struct atecc_emu {
	char path[PATH_MAX];
	char faults_path[PATH_MAX];
	struct chip c;
	enum power power;
	uint64_t wake_us; /* watchdog start */
	uint64_t busy_until;
	uint64_t sleep_at; /* slow fault: the watchdog fires mid-command */
	uint8_t out[80];
	size_t out_len, out_pos;
	uint8_t tempkey[64];
	bool tempkey_valid;
	uint8_t msgdig[32];
	bool msgdig_valid;
	uint8_t altkey[32];
	EVP_MD_CTX *sha;
	/* faults */
	bool f_absent, f_nowake, f_crc_in, f_crc_out, f_busy, f_slow;
	uint64_t watchdog_us;
};

void atecc_emu_crc(const uint8_t *data, size_t n, uint8_t ret_crc[2])
{
	uint16_t crc = 0;

	for (size_t i = 0; i < n; i++)
		for (unsigned bit = 0; bit < 8; bit++) {
			unsigned in = (data[i] >> bit) & 1u;
			unsigned top = crc >> 15;

			crc = (uint16_t)(crc << 1);
			if (in != top)
				crc ^= 0x8005;
		}
	ret_crc[0] = (uint8_t)(crc & 0xff);
	ret_crc[1] = (uint8_t)(crc >> 8);
}

static uint16_t crc_value(const uint8_t *data, size_t n)
{
	uint8_t c[2];

	atecc_emu_crc(data, n, c);
	return (uint16_t)(c[0] | c[1] << 8);
}

/* ---- persistence ---- */

static void chip_blank(struct chip *c)
{
	memset(c, 0, sizeof(*c));
	memcpy(c->magic, "ATECC1\n", 8);
	c->config[0] = 0x01;
	c->config[1] = 0x23;
	if (RAND_bytes(c->config + 2, 2) != 1 || RAND_bytes(c->config + 8, 4) != 1)
		abort();
	c->config[12] = 0xEE;
	c->config[CF_REV + 2] = 0x60;
	c->config[CF_REV + 3] = 0x03;
	c->config[14] = 0x01; /* I2C_Enable */
	c->config[CF_I2C_ADDR] = ATECC_EMU_ADDR << 1;
	c->config[CF_LOCK_VALUE] = 0x55;
	c->config[CF_LOCK_CONFIG] = 0x55;
	c->config[CF_SLOT_LOCKED] = 0xFF;
	c->config[CF_SLOT_LOCKED + 1] = 0xFF;
}

static int chip_load(struct atecc_emu *e)
{
	FILE *f = fopen(e->path, "rb");
	size_t n;

	if (!f)
		return -errno;
	n = fread(&e->c, 1, sizeof(e->c), f);
	fclose(f);
	if (n != sizeof(e->c) || memcmp(e->c.magic, "ATECC1\n", 8) != 0)
		return -EINVAL;
	return 0;
}

static int chip_save(struct atecc_emu *e)
{
	char tmp[PATH_MAX + 32];
	FILE *f;
	int r = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", e->path, (long)getpid());
	f = fopen(tmp, "wb");
	if (!f)
		return -errno;
	if (fwrite(&e->c, 1, sizeof(e->c), f) != sizeof(e->c))
		r = -EIO;
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, e->path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

static void read_faults(struct atecc_emu *e)
{
	char buf[256], *tok, *save;
	FILE *f = fopen(e->faults_path, "r");
	size_t n = 0;

	e->f_absent = e->f_nowake = e->f_crc_in = e->f_crc_out = e->f_busy = e->f_slow = false;
	e->watchdog_us = WATCHDOG_US;
	if (!f)
		return;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	for (tok = strtok_r(buf, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save)) {
		if (strcmp(tok, "absent") == 0)
			e->f_absent = true;
		else if (strcmp(tok, "nowake") == 0)
			e->f_nowake = true;
		else if (strcmp(tok, "crc-in") == 0)
			e->f_crc_in = true;
		else if (strcmp(tok, "crc-out") == 0)
			e->f_crc_out = true;
		else if (strcmp(tok, "busy") == 0)
			e->f_busy = true;
		else if (strcmp(tok, "slow") == 0)
			e->f_slow = true;
		else if (strncmp(tok, "watchdog=", 9) == 0)
			e->watchdog_us = strtoull(tok + 9, NULL, 10) * 1000u;
	}
}

int atecc_emu_open(const char *dir, struct atecc_emu **ret)
{
	struct atecc_emu *e = calloc(1, sizeof(*e));
	int r;

	if (!e)
		return -ENOMEM;
	if (snprintf(e->path, sizeof(e->path), "%s/chip", dir) >= (int)sizeof(e->path) ||
	    snprintf(e->faults_path, sizeof(e->faults_path), "%s/faults", dir) >=
		    (int)sizeof(e->faults_path)) {
		free(e);
		return -ENAMETOOLONG;
	}
	r = chip_load(e);
	if (r == -ENOENT) {
		chip_blank(&e->c);
		r = chip_save(e);
	}
	if (r < 0) {
		free(e);
		return r;
	}
	e->power = P_SLEEP;
	e->watchdog_us = WATCHDOG_US;
	*ret = e;
	return 0;
}

void atecc_emu_close(struct atecc_emu *e)
{
	if (!e)
		return;
	EVP_MD_CTX_free(e->sha);
	OPENSSL_cleanse(&e->c, sizeof(e->c));
	free(e);
}

/* ---- configuration rules ---- */

static bool config_locked(const struct atecc_emu *e)
{
	return e->c.config[CF_LOCK_CONFIG] != 0x55;
}

static bool data_locked(const struct atecc_emu *e)
{
	return e->c.config[CF_LOCK_VALUE] != 0x55;
}

static uint16_t slot_config(const struct atecc_emu *e, unsigned slot)
{
	return (uint16_t)(e->c.config[CF_SLOTCFG + 2 * slot] |
			  e->c.config[CF_SLOTCFG + 2 * slot + 1] << 8);
}

static uint16_t key_config(const struct atecc_emu *e, unsigned slot)
{
	return (uint16_t)(e->c.config[CF_KEYCFG + 2 * slot] |
			  e->c.config[CF_KEYCFG + 2 * slot + 1] << 8);
}

static bool slot_locked(const struct atecc_emu *e, unsigned slot)
{
	uint16_t bits =
		(uint16_t)(e->c.config[CF_SLOT_LOCKED] | e->c.config[CF_SLOT_LOCKED + 1] << 8);

	return !(bits & (1u << slot));
}

/* KeyConfig: Private (bit 0) with KeyType P-256 (bits 2-4 = 4). */
static bool is_p256_private(const struct atecc_emu *e, unsigned slot)
{
	uint16_t kc = key_config(e, slot);

	return (kc & 1u) && ((kc >> 2) & 7u) == 4;
}

static size_t slot_size(unsigned slot)
{
	return slot < 8 ? 36 : slot == 8 ? 416 : 72;
}

static uint8_t *slot_data(struct atecc_emu *e, unsigned slot)
{
	size_t off = slot <= 8 ? slot * 36u : 8u * 36 + 416 + (slot - 9) * 72u;

	return e->c.data + off;
}

/* ---- responses ---- */

static void respond(struct atecc_emu *e, const uint8_t *data, size_t n)
{
	e->out[0] = (uint8_t)(n + 3);
	memcpy(e->out + 1, data, n);
	atecc_emu_crc(e->out, n + 1, e->out + n + 1);
	e->out_len = n + 3;
	e->out_pos = 0;
}

static void respond_status(struct atecc_emu *e, uint8_t status)
{
	respond(e, &status, 1);
}

static void go_to_sleep(struct atecc_emu *e)
{
	e->power = P_SLEEP;
	e->tempkey_valid = false;
	e->msgdig_valid = false;
	e->out_len = e->out_pos = 0;
	e->busy_until = e->sleep_at = 0;
	EVP_MD_CTX_free(e->sha);
	e->sha = NULL;
}

/* ---- commands: each returns the status byte or 0 after respond() ---- */

static int cmd_info(struct atecc_emu *e, uint8_t mode, uint16_t p2, size_t n)
{
	uint8_t r[4] = { 0 };

	if (n != 0)
		return ST_PARSE;
	if (mode == 0x00) {
		memcpy(r, e->c.config + CF_REV, 4);
	} else if (mode == 0x01) {
		if (p2 > 15)
			return ST_PARSE;
		r[0] = (e->c.key_valid >> p2) & 1u;
	} else {
		return ST_PARSE;
	}
	respond(e, r, sizeof(r));
	return 0;
}

/* Locates a 4- or 32-byte block of a zone; NULL if out of range. */
static uint8_t *zone_at(struct atecc_emu *e, unsigned zone, uint16_t p2, size_t len,
			unsigned *ret_slot)
{
	unsigned block, offset, slot;
	size_t at;

	switch (zone) {
	case 0:
	case 1: {
		size_t size = zone == 0 ? sizeof(e->c.config) : sizeof(e->c.otp);

		block = (p2 >> 3) & 3u;
		offset = p2 & 7u;
		at = block * 32u + (len == 32 ? 0 : offset * 4u);
		if (p2 > 0x1F || at + len > size)
			return NULL;
		return (zone == 0 ? e->c.config : e->c.otp) + at;
	}
	case 2:
		slot = (p2 >> 3) & 15u;
		block = p2 >> 8;
		offset = p2 & 7u;
		at = block * 32u + (len == 32 ? 0 : offset * 4u);
		if (at + len > slot_size(slot))
			return NULL;
		*ret_slot = slot;
		return slot_data(e, slot) + at;
	default:
		return NULL;
	}
}

static int cmd_read(struct atecc_emu *e, uint8_t mode, uint16_t p2, size_t n)
{
	size_t len = mode & 0x80 ? 32 : 4;
	unsigned zone = mode & 3u, slot = 0;
	uint8_t *p;

	if (n != 0 || (mode & 0x7C))
		return ST_PARSE;
	p = zone_at(e, zone, p2, len, &slot);
	if (!p)
		return ST_PARSE;
	if (zone != 0 && !data_locked(e))
		return ST_EXEC;
	/* IsSecret or EncryptRead: not readable in clear text. */
	if (zone == 2 && (slot_config(e, slot) & 0xC0))
		return ST_EXEC;
	respond(e, p, len);
	return 0;
}

static int cmd_write(struct atecc_emu *e, uint8_t mode, uint16_t p2, const uint8_t *data, size_t n)
{
	size_t len = mode & 0x80 ? 32 : 4;
	unsigned zone = mode & 3u, slot = 0;
	uint8_t *p;

	if (mode & 0x40)
		return ST_EXEC; /* encrypted writes need a write key: not emulated */
	if ((mode & 0x3C) || n != len)
		return ST_PARSE;
	p = zone_at(e, zone, p2, len, &slot);
	if (!p)
		return ST_PARSE;
	if (zone == 0) {
		size_t at = (size_t)(p - e->c.config);

		if (config_locked(e))
			return ST_EXEC;
		/* 0-15 are fixed at the factory; 84-87 change through UpdateExtra and Lock. */
		if (at < 16 || (at < 88 && at + len > 84))
			return ST_EXEC;
	} else {
		if (!config_locked(e))
			return ST_EXEC;
		if (zone == 1 && data_locked(e))
			return ST_EXEC;
		if (zone == 2) {
			if (key_config(e, slot) & 1u)
				return ST_EXEC; /* private keys: GenKey or PrivWrite only */
			if (data_locked(e) &&
			    (slot_locked(e, slot) || (slot_config(e, slot) >> 12) != 0))
				return ST_EXEC;
		}
	}
	memcpy(p, data, len);
	if (chip_save(e) < 0)
		return ST_EXEC;
	respond_status(e, ST_OK);
	return 0;
}

static int cmd_lock(struct atecc_emu *e, uint8_t mode, uint16_t p2, size_t n)
{
	bool check = !(mode & 0x80);
	unsigned slot;

	if (n != 0 || (mode & 0x40))
		return ST_PARSE;
	switch (mode & 3u) {
	case 0:
		if (config_locked(e) ||
		    (check && crc_value(e->c.config, sizeof(e->c.config)) != p2))
			return ST_EXEC;
		e->c.config[CF_LOCK_CONFIG] = 0x00;
		break;
	case 1:
		if (!config_locked(e) || data_locked(e))
			return ST_EXEC;
		if (check) {
			uint8_t all[DATA_SIZE + 64];

			memcpy(all, e->c.data, DATA_SIZE);
			memcpy(all + DATA_SIZE, e->c.otp, 64);
			if (crc_value(all, sizeof(all)) != p2)
				return ST_EXEC;
		}
		e->c.config[CF_LOCK_VALUE] = 0x00;
		break;
	case 2:
		slot = (mode >> 2) & 15u;
		if (!data_locked(e) || slot_locked(e, slot) || !(key_config(e, slot) & 0x20))
			return ST_EXEC;
		e->c.config[CF_SLOT_LOCKED + slot / 8] &= (uint8_t) ~(1u << (slot % 8));
		break;
	default:
		return ST_PARSE;
	}
	if (chip_save(e) < 0)
		return ST_EXEC;
	respond_status(e, ST_OK);
	return 0;
}

/* A signing key from the stored scalar and public point. */
static EVP_PKEY *slot_key(struct atecc_emu *e, unsigned slot)
{
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *k = NULL;
	BIGNUM *d = BN_bin2bn(slot_data(e, slot) + 4, 32, NULL);
	uint8_t pt[65];

	pt[0] = 0x04;
	memcpy(pt + 1, e->c.pub[slot], 64);
	if (!b || !d ||
	    !OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
	    !OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PRIV_KEY, d) ||
	    !OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)))
		goto out;
	params = OSSL_PARAM_BLD_to_param(b);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_KEYPAIR, params) <= 0)
		k = NULL;
out:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(b);
	BN_clear_free(d);
	return k;
}

static int cmd_genkey(struct atecc_emu *e, uint8_t mode, uint16_t p2, size_t n)
{
	BIGNUM *d = NULL;
	EVP_PKEY *k = NULL;
	int st = ST_EXEC;

	if ((n != 0 && n != 3) || p2 > 15 || (mode != 0x00 && mode != 0x04))
		return ST_PARSE; /* the digest and MAC modes are not emulated */
	if (!config_locked(e) || !is_p256_private(e, p2))
		return ST_EXEC;
	if (mode == 0x00) {
		if (!((e->c.key_valid >> p2) & 1u))
			return ST_EXEC;
		respond(e, e->c.pub[p2], 64);
		return 0;
	}
	/* Once the data zone is locked only WriteConfig bit 1 lets GenKey
	 * replace a key, and never in a locked slot. */
	if (data_locked(e) && (slot_locked(e, p2) || !((slot_config(e, p2) >> 13) & 1u)))
		return ST_EXEC;
	if (p256_generate(&k) < 0 || p256_public_xy(k, e->c.pub[p2]) < 0 ||
	    !EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PRIV_KEY, &d) ||
	    BN_bn2binpad(d, slot_data(e, p2) + 4, 32) != 32)
		goto out;
	e->c.key_valid |= (uint16_t)(1u << p2);
	if (chip_save(e) < 0)
		goto out;
	respond(e, e->c.pub[p2], 64);
	st = 0;
out:
	BN_clear_free(d);
	EVP_PKEY_free(k);
	return st;
}

static void random_bytes(struct atecc_emu *e, uint8_t out[32])
{
	/* Before the configuration zone is locked the RNG answers a fixed pattern. */
	if (!config_locked(e)) {
		for (unsigned i = 0; i < 32; i++)
			out[i] = (i % 4) < 2 ? 0xFF : 0x00;
		return;
	}
	if (RAND_bytes(out, 32) != 1)
		memset(out, 0, 32);
}

static int cmd_random(struct atecc_emu *e, uint8_t mode, uint16_t p2, size_t n)
{
	uint8_t r[32];

	if (mode > 1 || p2 != 0 || n != 0)
		return ST_PARSE;
	random_bytes(e, r);
	respond(e, r, sizeof(r));
	return 0;
}

static int cmd_nonce(struct atecc_emu *e, uint8_t mode, uint16_t p2, const uint8_t *data, size_t n)
{
	uint8_t rnd[32], msg[32 + 20 + 3];
	unsigned target = mode & 0xC0u;
	size_t len;

	if ((mode & 3u) == 3) {
		len = mode & 0x20 ? 64 : 32;
		if (n != len || p2 != 0 || (mode & 0x1C) || target == 0xC0 ||
		    (len == 64 && target != 0))
			return ST_PARSE;
		if (target == 0x00) {
			memcpy(e->tempkey, data, len);
			e->tempkey_valid = true;
		} else if (target == 0x40) {
			memcpy(e->msgdig, data, 32);
			e->msgdig_valid = true;
		} else {
			memcpy(e->altkey, data, 32);
		}
		respond_status(e, ST_OK);
		return 0;
	}
	if ((mode & 3u) == 2 || (mode & 0xFC) || n != 20)
		return ST_PARSE;
	random_bytes(e, rnd);
	memcpy(msg, rnd, 32);
	memcpy(msg + 32, data, 20);
	msg[52] = OP_NONCE;
	msg[53] = mode;
	msg[54] = 0x00;
	if (p256_sha256(msg, sizeof(msg), e->tempkey) < 0)
		return ST_EXEC;
	e->tempkey_valid = true;
	respond(e, rnd, sizeof(rnd));
	return 0;
}

static int cmd_sign(struct atecc_emu *e, uint8_t mode, uint16_t p2, size_t n)
{
	bool from_msgdig = mode & 0x20;
	uint8_t rs[64];
	EVP_PKEY *k;
	int r;

	if (!(mode & 0x80) || (mode & 0x5F) || n != 0 || p2 > 15)
		return ST_PARSE; /* internal-message signatures are not emulated */
	if (!config_locked(e) || !data_locked(e) || !is_p256_private(e, p2) ||
	    !((e->c.key_valid >> p2) & 1u) || !(slot_config(e, p2) & 1u))
		return ST_EXEC;
	if (from_msgdig ? !e->msgdig_valid : !e->tempkey_valid)
		return ST_EXEC;
	k = slot_key(e, p2);
	if (!k)
		return ST_EXEC;
	r = p256_sign_digest(k, from_msgdig ? e->msgdig : e->tempkey, rs);
	EVP_PKEY_free(k);
	e->tempkey_valid = false;
	e->msgdig_valid = false;
	if (r < 0)
		return ST_EXEC;
	respond(e, rs, sizeof(rs));
	return 0;
}

static int cmd_sha(struct atecc_emu *e, uint8_t mode, uint16_t p2, const uint8_t *data, size_t n)
{
	uint8_t md[32];
	unsigned mdlen = 0;

	switch (mode & 7u) {
	case 0:
		if (n != 0)
			return ST_PARSE;
		EVP_MD_CTX_free(e->sha);
		e->sha = EVP_MD_CTX_new();
		if (!e->sha || !EVP_DigestInit_ex(e->sha, EVP_sha256(), NULL))
			return ST_EXEC;
		respond_status(e, ST_OK);
		return 0;
	case 1:
		if (n != 64 || p2 != 64)
			return ST_PARSE;
		if (!e->sha || !EVP_DigestUpdate(e->sha, data, n))
			return ST_EXEC;
		respond_status(e, ST_OK);
		return 0;
	case 2:
		if (n > 63 || p2 != n)
			return ST_PARSE;
		if (!e->sha || !EVP_DigestUpdate(e->sha, data, n) ||
		    !EVP_DigestFinal_ex(e->sha, md, &mdlen))
			return ST_EXEC;
		EVP_MD_CTX_free(e->sha);
		e->sha = NULL;
		respond(e, md, sizeof(md));
		return 0;
	default:
		return ST_PARSE;
	}
}

static uint64_t exec_time_us(uint8_t op)
{
	for (size_t i = 0; i < sizeof(exec_ms) / sizeof(exec_ms[0]); i++)
		if (exec_ms[i].op == op)
			return exec_ms[i].ms * 1000u;
	return 1000u;
}

/* A command packet after the word address 0x03. */
static void command(struct atecc_emu *e, const uint8_t *pkt, size_t n, uint64_t now)
{
	uint8_t in[200];
	uint8_t op, p1, c[2];
	uint16_t p2;
	int st;

	if (n < 7 || n > sizeof(in) || pkt[0] != n) {
		respond_status(e, ST_CRC);
		return;
	}
	memcpy(in, pkt, n);
	if (e->f_crc_in)
		in[n / 2] ^= 0x10;
	atecc_emu_crc(in, n - 2, c);
	if (c[0] != in[n - 2] || c[1] != in[n - 1]) {
		respond_status(e, ST_CRC);
		return;
	}
	op = in[1];
	p1 = in[2];
	p2 = (uint16_t)(in[3] | in[4] << 8);
	/* A command that cannot finish before the watchdog is refused. */
	if (now + exec_time_us(op) >= e->wake_us + e->watchdog_us) {
		respond_status(e, ST_WDT);
		return;
	}
	switch (op) {
	case OP_INFO:
		st = cmd_info(e, p1, p2, n - 7);
		break;
	case OP_READ:
		st = cmd_read(e, p1, p2, n - 7);
		break;
	case OP_WRITE:
		st = cmd_write(e, p1, p2, in + 5, n - 7);
		break;
	case OP_LOCK:
		st = cmd_lock(e, p1, p2, n - 7);
		break;
	case OP_GENKEY:
		st = cmd_genkey(e, p1, p2, n - 7);
		break;
	case OP_NONCE:
		st = cmd_nonce(e, p1, p2, in + 5, n - 7);
		break;
	case OP_SIGN:
		st = cmd_sign(e, p1, p2, n - 7);
		break;
	case OP_RANDOM:
		st = cmd_random(e, p1, p2, n - 7);
		break;
	case OP_SHA:
		st = cmd_sha(e, p1, p2, in + 5, n - 7);
		break;
	default:
		st = ST_PARSE;
	}
	if (st > 0)
		respond_status(e, (uint8_t)st);
	e->busy_until = now + exec_time_us(op);
	if (e->f_busy)
		e->busy_until = UINT64_MAX;
	else if (e->f_slow)
		e->busy_until = now + SLOW_US;
}

/* Time passes: the watchdog sends an awake chip to sleep. */
static void tick(struct atecc_emu *e, uint64_t now)
{
	if (e->power == P_AWAKE && now >= e->wake_us + e->watchdog_us)
		go_to_sleep(e);
}

static unsigned chip_addr(const struct atecc_emu *e)
{
	return e->c.config[CF_I2C_ADDR] >> 1;
}

int atecc_emu_write(struct atecc_emu *e, unsigned addr, const uint8_t *buf, size_t n, uint64_t now)
{
	read_faults(e);
	tick(e, now);
	if (e->f_absent)
		return -ENXIO;
	if (addr == 0x00) {
		/* The wake pulse: SDA low through the whole address byte. */
		if (!e->f_nowake && e->power != P_AWAKE) {
			/* Another process (egwd --chip-provision) may have changed the
			 * chip: its persistent zones are re-read at every wake. */
			(void)chip_load(e);
			e->power = P_AWAKE;
			e->wake_us = now;
			e->busy_until = 0;
			respond_status(e, ST_WAKE);
		}
		return -ENXIO;
	}
	if (addr != chip_addr(e) || e->power != P_AWAKE || now < e->busy_until || n == 0)
		return -ENXIO;
	switch (buf[0]) {
	case 0x00:
		e->out_pos = 0;
		return 0;
	case 0x01:
		go_to_sleep(e);
		return 0;
	case 0x02:
		e->power = P_IDLE;
		return 0;
	case 0x03:
		command(e, buf + 1, n - 1, now);
		return 0;
	default:
		return 0; /* reserved word addresses are ignored */
	}
}

int atecc_emu_read(struct atecc_emu *e, unsigned addr, uint8_t *ret_buf, size_t n, uint64_t now)
{
	read_faults(e);
	tick(e, now);
	if (e->f_absent || addr != chip_addr(e) || e->power != P_AWAKE || now < e->busy_until)
		return -ENXIO;
	for (size_t i = 0; i < n; i++) {
		uint8_t b = e->out_pos < e->out_len ? e->out[e->out_pos] : 0xFF;

		/* The first data byte is hit: the count still reads right. */
		if (e->f_crc_out && e->out_pos == 1)
			b ^= 0x01;
		ret_buf[i] = b;
		if (e->out_pos < sizeof(e->out))
			e->out_pos++;
	}
	return 0;
}
