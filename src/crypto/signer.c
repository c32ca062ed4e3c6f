/* Signer backends behind one interface (see signer.h). */
#include "crypto/signer.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/file.h"
#include "crypto/b64url.h"
#include "crypto/p256.h"
#include "egw-config.h"

#if EGW_HAVE_ATECC
#include "crypto/atcab.h"
#endif

/* Who the signer is: serial and public key, in every form served. */
struct ident {
	char backend[16];
	uint8_t serial[SIGNER_SERIAL_LEN];
	char serial_hex[SIGNER_SERIAL_HEX_LEN + 1];
	uint8_t xy[64];
	char xy_hex[129];
	char *pem;
	EVP_PKEY *pub;
};

struct signer_ops {
	const char *name;
	int (*prepare)(struct signer *s);
	int (*sign)(struct signer *s, const uint8_t digest[32], uint8_t ret_rs[64]);
	void (*close)(struct signer *s);
};

struct signer {
	const struct signer_ops *ops;
	struct signer_config cfg;
	char state_dir[PATH_MAX];
	pthread_mutex_t lock; /* serializes signatures */
	atomic_bool healthy;
	bool reinit;         /* a failure: start the chip afresh */
	atomic_bool refused; /* key is not the recorded identity */
	_Atomic(const char *) last_error;
	_Atomic(struct ident *) shown; /* NULL: no identity known */
	struct ident own;              /* the key in use (valid when have_own) */
	struct ident rec;              /* <state_dir>/identity (valid when have_rec) */
	bool have_own, have_rec;
	bool bad_rec;  /* the record exists but cannot be read */
	bool checked;  /* own matches rec, or rec replaced */
	bool recorded; /* the record on disk is own */
	EVP_PKEY *key; /* software: the private key */
#if EGW_HAVE_ATECC
	ATCAIfaceCfg atcfg;
	bool at_ready;     /* atcab_init succeeded, not released since */
	char at_error[96]; /* "no ATECC608 answers on ... at 0x.." */
#endif
};

static void hex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* the record is written in lowercase */
}

static int unhex(const char *in, uint8_t *out, size_t n)
{
	if (strlen(in) != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(in[2 * i]), lo = hexval(in[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* Copies src when it fits, else leaves dst empty (the record is then invalid). */
static void copy_field(char *dst, size_t n, const char *src)
{
	size_t len = strlen(src);

	dst[0] = '\0';
	if (len < n)
		memcpy(dst, src, len + 1);
}

static void signer_fail(struct signer *s, const char *why)
{
	s->reinit = true;
	atomic_store(&s->last_error, why);
	atomic_store(&s->healthy, false);
}

/* Fills the derived forms of id from its serial and xy. */
static int ident_finish(struct ident *id)
{
	int r;

	hex(id->serial, sizeof(id->serial), id->serial_hex);
	hex(id->xy, sizeof(id->xy), id->xy_hex);
	r = p256_from_xy(id->xy, &id->pub);
	if (r < 0)
		return -EGW_ESIGNER; /* a point off the curve */
	return p256_public_pem(id->pub, &id->pem);
}

static void ident_clear(struct ident *id)
{
	EVP_PKEY_free(id->pub);
	free(id->pem);
	memset(id, 0, sizeof(*id));
}

static bool ident_same(const struct ident *a, const struct ident *b)
{
	return memcmp(a->serial, b->serial, sizeof(a->serial)) == 0 &&
		memcmp(a->xy, b->xy, sizeof(a->xy)) == 0;
}

/* ---- the identity record: "backend B\nserial HEX\npublic_key HEX\n" ---- */

static int record_path(const struct signer *s, char *out, size_t n)
{
	if (snprintf(out, n, "%s/identity", s->state_dir) >= (int)n)
		return -ENAMETOOLONG;
	return 0;
}

int signer_identity_parse(const char *text, size_t n, struct signer_identity *ret)
{
	struct signer_identity id = { 0 };
	char buf[1024], serial[64] = "", xy[160] = "", *line, *save;

	if (n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, text, n);
	buf[n] = '\0';
	if (strlen(buf) != n)
		return -EINVAL; /* a NUL inside */
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "backend ", 8) == 0)
			copy_field(id.backend, sizeof(id.backend), line + 8);
		else if (strncmp(line, "serial ", 7) == 0)
			copy_field(serial, sizeof(serial), line + 7);
		else if (strncmp(line, "public_key ", 11) == 0)
			copy_field(xy, sizeof(xy), line + 11);
		else
			return -EINVAL;
	}
	if (unhex(serial, id.serial, sizeof(id.serial)) < 0 ||
	    unhex(xy, id.xy, sizeof(id.xy)) < 0 ||
	    (strcmp(id.backend, "software") != 0 && strcmp(id.backend, "atecc608") != 0))
		return -EINVAL;
	*ret = id;
	return 0;
}

static int record_load(struct signer *s)
{
	char path[PATH_MAX], text[1024];
	struct signer_identity id;
	size_t n;
	FILE *f;
	int r;

	r = record_path(s, path, sizeof(path));
	if (r < 0)
		return r;
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	n = fread(text, 1, sizeof(text), f);
	r = ferror(f) ? -EIO : 0;
	fclose(f);
	if (r < 0)
		return r;
	r = signer_identity_parse(text, n, &id);
	if (r < 0)
		return r;
	memcpy(s->rec.backend, id.backend, sizeof(s->rec.backend));
	memcpy(s->rec.serial, id.serial, sizeof(s->rec.serial));
	memcpy(s->rec.xy, id.xy, sizeof(s->rec.xy));
	if (ident_finish(&s->rec) < 0) {
		ident_clear(&s->rec);
		return -EINVAL; /* a point off the curve */
	}
	s->have_rec = true;
	return 0;
}

static int record_save(struct signer *s)
{
	char path[PATH_MAX], buf[320];
	int n, r;

	r = record_path(s, path, sizeof(path));
	if (r < 0)
		return r;
	n = snprintf(buf, sizeof(buf), "backend %s\nserial %s\npublic_key %s\n", s->ops->name,
		     s->own.serial_hex, s->own.xy_hex);
	return file_write_atomic(path, buf, (size_t)n, 0644);
}

/* The key in use is known: compare it with the record.  Called with the
 * lock held (or before the signer is shared). */
static void check_identity(struct signer *s)
{
	if (s->checked)
		return;
	if (!s->cfg.record_identity || s->cfg.accept_new_identity ||
	    (!s->bad_rec && (!s->have_rec || ident_same(&s->own, &s->rec)))) {
		s->checked = true;
		s->recorded = s->have_rec && ident_same(&s->own, &s->rec);
		atomic_store(&s->refused, false);
		atomic_store(&s->shown, &s->own);
		return;
	}
	atomic_store(&s->refused, true);
	signer_fail(
		s,
		s->bad_rec
			? "the identity record is unreadable (start egwd with --accept-new-identity to replace it)"
			: "key differs from the recorded identity (start egwd with --accept-new-identity to accept it)");
}

/* ---- software backend ---- */

static int soft_sign(struct signer *s, const uint8_t digest[32], uint8_t ret_rs[64])
{
	if (p256_sign_digest(s->key, digest, ret_rs) < 0) {
		signer_fail(s, "OpenSSL signature failed");
		return -EGW_ESIGNER;
	}
	return 0;
}

static int soft_prepare(struct signer *s)
{
	(void)s;
	return 0;
}

static void soft_close(struct signer *s)
{
	EVP_PKEY_free(s->key);
	s->key = NULL;
}

static const struct signer_ops soft_ops = {
	.name = "software",
	.prepare = soft_prepare,
	.sign = soft_sign,
	.close = soft_close,
};

static int soft_open(struct signer *s)
{
	char path[PATH_MAX];
	uint8_t h[32];
	int r;

	if (!s->state_dir[0])
		return -EINVAL;
	if (snprintf(path, sizeof(path), "%s/device-key.pem", s->state_dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	r = p256_load_or_create(path, &s->key, NULL);
	if (r < 0)
		return r;
	s->ops = &soft_ops;
	r = p256_public_xy(s->key, s->own.xy);
	if (r < 0)
		return r;
	r = p256_sha256(s->own.xy, sizeof(s->own.xy), h);
	if (r < 0)
		return r;
	/* 0x01 first, like an ATECC608 serial, then a digest of the key. */
	s->own.serial[0] = 0x01;
	memcpy(s->own.serial + 1, h, SIGNER_SERIAL_LEN - 1);
	r = ident_finish(&s->own);
	if (r < 0)
		return r;
	s->have_own = true;
	return 0;
}

int signer_i2c_bus_number(const char *bus, unsigned *ret)
{
	const char *p;
	char *end;
	unsigned long v;

	if (!bus || !*bus) {
		*ret = 1; /* the Raspberry Pi's header bus */
		return 0;
	}
	p = bus + strlen(bus);
	while (p > bus && p[-1] >= '0' && p[-1] <= '9')
		p--;
	if (!*p)
		return -EINVAL;
	errno = 0;
	v = strtoul(p, &end, 10);
	if (errno || *end || v > 255)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

/* ---- ATECC608 backend ---- */

#if EGW_HAVE_ATECC
static int atcfg_from(const struct signer_config *cfg, ATCAIfaceCfg *ret)
{
	unsigned addr = cfg->i2c_address ? cfg->i2c_address : 0x60, bus;
	ATCAIfaceCfg c = {
		.iface_type = ATCA_I2C_IFACE,
		.devtype = ATECC608,
		.wake_delay = 1500,
		.rx_retries = 20,
	};
	int r;

	if (addr > 0x7f)
		return -EINVAL;
	c.atcai2c.address = (uint8_t)(addr << 1);
	c.atcai2c.baud = 100000;
	r = signer_i2c_bus_number(cfg->i2c_bus, &bus);
	if (r < 0)
		return r;
	c.atcai2c.bus = (uint8_t)bus;
	*ret = c;
	return 0;
}

static int chip_init(ATCAIfaceCfg *c)
{
	if (atcab_init(c) != ATCA_SUCCESS) {
		atcab_release();
		return -EGW_ESIGNER;
	}
	return 0;
}

static void atecc_release(struct signer *s)
{
	if (s->at_ready)
		atcab_release();
	s->at_ready = false;
}

/* Reaches the chip and reads who it is.  Called with the lock held. */
static int atecc_connect(struct signer *s)
{
	struct ident id = { 0 };
	bool data_locked = false;
	int r;

	/* After a failure the bus or the chip may be wedged: start it afresh. */
	if (s->reinit)
		atecc_release(s);
	s->reinit = false;
	if (s->at_ready && s->have_own)
		return 0;
	atecc_release(s);
	if (chip_init(&s->atcfg) < 0) {
		signer_fail(s, s->at_error);
		return -EGW_ESIGNER;
	}
	s->at_ready = true;
	if (atcab_read_serial_number(id.serial) != ATCA_SUCCESS) {
		signer_fail(s, s->at_error);
		return -EGW_ESIGNER;
	}
	if (atcab_get_pubkey(0, id.xy) != ATCA_SUCCESS) {
		signer_fail(
			s,
			"ATECC608 slot 0 holds no key (provision the chip: egwd --chip-provision)");
		return -EGW_ESIGNER;
	}
	/* A key in a chip whose data zone is open is no identity yet: the chip
	 * refuses Sign, and until the lock the slot can still be rewritten. */
	if (atcab_is_data_locked(&data_locked) != ATCA_SUCCESS) {
		signer_fail(s, s->at_error);
		return -EGW_ESIGNER;
	}
	if (!data_locked) {
		signer_fail(s,
			    "ATECC608 data zone is not locked: provisioning was not finished "
			    "(egwd --chip-provision finishes it)");
		return -EGW_ESIGNER;
	}
	if (s->have_own) {
		/* Once known, the chip's identity never changes under us. */
		if (!ident_same(&id, &s->own)) {
			signer_fail(s, "ATECC608 slot 0 key changed");
			return -EGW_ESIGNER;
		}
		return 0;
	}
	r = ident_finish(&id);
	if (r < 0) {
		ident_clear(&id);
		signer_fail(s, "ATECC608 returned an invalid public key");
		return r;
	}
	snprintf(id.backend, sizeof(id.backend), "atecc608");
	s->own = id;
	s->have_own = true;
	check_identity(s);
	return 0;
}

static int atecc_sign(struct signer *s, const uint8_t digest[32], uint8_t ret_rs[64])
{
	if (atecc_connect(s) < 0)
		return -EGW_ESIGNER;
	if (!s->checked)
		return -EGW_ESIGNER;
	if (atcab_sign(0, digest, ret_rs) != ATCA_SUCCESS) {
		signer_fail(s, "ATECC608 sign failed");
		return -EGW_ESIGNER;
	}
	/* A glitch could return garbage: never hand out a signature our
	 * public key rejects. */
	if (p256_verify_digest(s->own.pub, digest, ret_rs) < 0) {
		signer_fail(s, "ATECC608 returned an invalid signature");
		return -EGW_ESIGNER;
	}
	return 0;
}

static void atecc_close(struct signer *s)
{
	atecc_release(s);
}

static const struct signer_ops atecc_ops = {
	.name = "atecc608",
	.prepare = atecc_connect,
	.sign = atecc_sign,
	.close = atecc_close,
};

static int atecc_open(struct signer *s)
{
	int r = atcfg_from(&s->cfg, &s->atcfg);

	if (r < 0)
		return r;
	snprintf(s->at_error, sizeof(s->at_error), "no ATECC608 answers on /dev/i2c-%u at 0x%02x",
		 s->atcfg.atcai2c.bus, s->atcfg.atcai2c.address >> 1);
	s->ops = &atecc_ops;
	r = atecc_connect(s);
	if (r < 0 && !s->cfg.wait_for_chip)
		return r;
	return 0;
}
#endif

#if !EGW_HAVE_ATECC
/* signer.backend=atecc608 in a build without the chip backend: like a chip
 * that never answers (with wait_for_chip), egwd runs, stores and signs
 * nothing, and says why.  Without wait_for_chip (--chip-info and the other
 * one-shot commands) it is an error. */
static const char nochip_error[] = "this egwd was built without ATECC608 support "
				   "(signer.backend=atecc608): nothing is signed";

static int nochip_prepare(struct signer *s)
{
	signer_fail(s, nochip_error);
	return -EGW_ESIGNER;
}

static int nochip_sign(struct signer *s, const uint8_t digest[32], uint8_t ret_rs[64])
{
	(void)digest;
	(void)ret_rs;
	return nochip_prepare(s);
}

static void nochip_close(struct signer *s)
{
	(void)s;
}

static const struct signer_ops nochip_ops = {
	.name = "atecc608",
	.prepare = nochip_prepare,
	.sign = nochip_sign,
	.close = nochip_close,
};

static int nochip_open(struct signer *s)
{
	if (!s->cfg.wait_for_chip)
		return -ENOTSUP;
	s->ops = &nochip_ops;
	signer_fail(s, nochip_error);
	return 0;
}
#endif

/* ---- the chip itself ---- */

/* Slot 0 as --chip-provision configures it.  SlotConfig 0x0083: IsSecret,
 * ReadKey bits 0-1 (external and internal signatures), WriteConfig 0 (once
 * the data zone is locked nothing, not even GenKey, replaces the key).
 * KeyConfig 0x0013: Private, PubInfo, KeyType 4 (P-256). */
#define PROV_SLOT0_CONFIG 0x0083
#define PROV_SLOT0_KEY_CONFIG 0x0013

const char *const signer_provision_plan[] = {
	"write config bytes 20-21 (SlotConfig[0]) = 83 00: secret; external and internal signatures; no writes",
	"write config bytes 96-97 (KeyConfig[0]) = 13 00: P-256 private key, public key derivable",
	"lock the configuration zone (with the CRC of the 128 bytes read back)",
	"GenKey slot 0: a P-256 private key generated inside the chip; it never leaves it",
	"lock the data and OTP zones",
	NULL,
};

#if EGW_HAVE_ATECC
int signer_chip_info(const struct signer_config *cfg, struct signer_chip_info *ret)
{
	struct signer_chip_info ci = { 0 };
	uint8_t config[128], kv[4];
	ATCAIfaceCfg c;
	int r = atcfg_from(cfg, &c);

	if (r < 0)
		return r;
	r = chip_init(&c);
	if (r < 0)
		return r;
	r = -EGW_ESIGNER;
	if (atcab_read_serial_number(ci.serial) != ATCA_SUCCESS ||
	    atcab_info(ci.revision) != ATCA_SUCCESS ||
	    atcab_read_config_zone(config) != ATCA_SUCCESS ||
	    atcab_info_base(INFO_MODE_KEY_VALID, 0, kv) != ATCA_SUCCESS)
		goto out;
	ci.config_locked = config[87] != 0x55;
	ci.data_locked = config[86] != 0x55;
	ci.slot0_config = (uint16_t)(config[20] | config[21] << 8);
	ci.slot0_key_config = (uint16_t)(config[96] | config[97] << 8);
	ci.slot0_locked = !(config[88] & 1u);
	ci.slot0_key_valid = kv[0] == 1;
	ci.slot0_egw = ci.slot0_config == PROV_SLOT0_CONFIG &&
		ci.slot0_key_config == PROV_SLOT0_KEY_CONFIG;
	if (ci.slot0_key_valid && ci.slot0_egw && atcab_get_pubkey(0, ci.slot0_xy) != ATCA_SUCCESS)
		goto out;
	*ret = ci;
	r = 0;
out:
	atcab_release();
	return r;
}

static int write_config_word(uint16_t offset, uint16_t value)
{
	uint8_t w[4];

	/* Read the word first: its other half belongs to the next slot. */
	if (atcab_read_bytes_zone(ATCA_ZONE_CONFIG, 0, offset, w, 4) != ATCA_SUCCESS)
		return -EGW_ESIGNER;
	w[0] = (uint8_t)(value & 0xff);
	w[1] = (uint8_t)(value >> 8);
	if (atcab_write_bytes_zone(ATCA_ZONE_CONFIG, 0, offset, w, 4) != ATCA_SUCCESS)
		return -EGW_ESIGNER;
	return 0;
}

int signer_chip_provision(const struct signer_config *cfg, uint8_t ret_xy[64])
{
	uint8_t config[128], crc[2], xy[64];
	bool cl, dl;
	ATCAIfaceCfg c;
	int r = atcfg_from(cfg, &c);

	if (r < 0)
		return r;
	r = chip_init(&c);
	if (r < 0)
		return r;
	r = -EGW_ESIGNER;
	if (atcab_is_config_locked(&cl) != ATCA_SUCCESS ||
	    atcab_is_data_locked(&dl) != ATCA_SUCCESS)
		goto out;
	if (dl) {
		r = -EEXIST;
		goto out;
	}
	if (cl) {
		/* Stopped after the configuration lock: finish only a chip whose
		 * slot 0 is configured as ours. */
		if (atcab_read_config_zone(config) != ATCA_SUCCESS)
			goto out;
		if ((config[20] | config[21] << 8) != PROV_SLOT0_CONFIG ||
		    (config[96] | config[97] << 8) != PROV_SLOT0_KEY_CONFIG) {
			r = -EEXIST;
			goto out;
		}
	} else {
		r = write_config_word(20, PROV_SLOT0_CONFIG);
		if (r == 0)
			r = write_config_word(96, PROV_SLOT0_KEY_CONFIG);
		if (r < 0)
			goto out;
		r = -EGW_ESIGNER;
		if (atcab_read_config_zone(config) != ATCA_SUCCESS)
			goto out;
		atCRC(sizeof(config), config, crc);
		if (atcab_lock_config_zone_crc((uint16_t)(crc[0] | crc[1] << 8)) != ATCA_SUCCESS)
			goto out;
	}
	/* Always a fresh key: one made before an interrupted run could have been
	 * written from outside while the data zone was open. */
	if (atcab_genkey(0, xy) != ATCA_SUCCESS || atcab_lock_data_zone() != ATCA_SUCCESS)
		goto out;
	memcpy(ret_xy, xy, sizeof(xy));
	r = 0;
out:
	atcab_release();
	return r;
}
#else
int signer_chip_info(const struct signer_config *cfg, struct signer_chip_info *ret)
{
	(void)cfg;
	(void)ret;
	return -ENOTSUP;
}

int signer_chip_provision(const struct signer_config *cfg, uint8_t ret_xy[64])
{
	(void)cfg;
	(void)ret_xy;
	return -ENOTSUP;
}
#endif

/* ---- interface ---- */

static int open_backend(struct signer *s)
{
	enum signer_backend be = s->cfg.backend;

	if (be == SIGNER_AUTO) {
		if (s->have_rec && s->cfg.record_identity && !s->cfg.accept_new_identity)
			be = strcmp(s->rec.backend, "atecc608") == 0 ? SIGNER_ATECC608
								     : SIGNER_SOFTWARE;
		else {
#if EGW_HAVE_ATECC
			ATCAIfaceCfg c;
			int r = atcfg_from(&s->cfg, &c);

			if (r < 0)
				return r;
			be = chip_init(&c) == 0 ? SIGNER_ATECC608 : SIGNER_SOFTWARE;
			atcab_release();
#else
			be = SIGNER_SOFTWARE;
#endif
		}
	}
	switch (be) {
	case SIGNER_SOFTWARE:
		return soft_open(s);
	case SIGNER_ATECC608:
#if EGW_HAVE_ATECC
		return atecc_open(s);
#else
		return nochip_open(s);
#endif
	default:
		return -EINVAL;
	}
}

int signer_open(const struct signer_config *cfg, struct signer **ret)
{
	struct signer *s;
	int r;

	if (!cfg || !ret)
		return -EINVAL;
	if (cfg->record_identity && (!cfg->state_dir || !*cfg->state_dir))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
		free(s);
		return -ENOMEM;
	}
	s->cfg = *cfg;
	if (cfg->state_dir)
		snprintf(s->state_dir, sizeof(s->state_dir), "%s", cfg->state_dir);
	s->cfg.state_dir = s->state_dir;
	atomic_init(&s->healthy, true);
	atomic_init(&s->refused, false);
	atomic_init(&s->last_error, NULL);
	atomic_init(&s->shown, NULL);
	if (cfg->record_identity) {
		/* An unreadable record is no reason to stop storing readings, but
		 * nothing is signed until it is replaced explicitly. */
		r = record_load(s);
		if (r == -EINVAL)
			s->bad_rec = true;
		else if (r < 0)
			goto fail;
	}
	r = open_backend(s);
	s->cfg.i2c_bus = NULL; /* parsed into atcfg; the caller's string may go */
	if (r < 0)
		goto fail;
	if (s->have_own)
		check_identity(s);
	/* Until the chip answers, show what is recorded. */
	if (!atomic_load(&s->shown) && s->have_rec)
		atomic_store(&s->shown, &s->rec);
	*ret = s;
	return 0;
fail:
	signer_close(s);
	return r;
}

void signer_close(struct signer *s)
{
	if (!s)
		return;
	if (s->ops)
		s->ops->close(s);
	ident_clear(&s->own);
	ident_clear(&s->rec);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

const char *signer_backend_name(const struct signer *s)
{
	return s->ops->name;
}

bool signer_identity_known(const struct signer *s)
{
	return atomic_load(&s->shown) != NULL;
}

const char *signer_serial_hex(const struct signer *s)
{
	const struct ident *id = atomic_load(&s->shown);

	return id ? id->serial_hex : "unknown";
}

int signer_serial(const struct signer *s, uint8_t ret_serial[SIGNER_SERIAL_LEN])
{
	const struct ident *id = atomic_load(&s->shown);

	if (!id)
		return -EAGAIN;
	memcpy(ret_serial, id->serial, SIGNER_SERIAL_LEN);
	return 0;
}

int signer_public_key(const struct signer *s, uint8_t ret_xy[64])
{
	const struct ident *id = atomic_load(&s->shown);

	if (!id)
		return -EAGAIN;
	memcpy(ret_xy, id->xy, 64);
	return 0;
}

const char *signer_public_key_hex(const struct signer *s)
{
	const struct ident *id = atomic_load(&s->shown);

	return id ? id->xy_hex : NULL;
}

const char *signer_public_key_pem(const struct signer *s)
{
	const struct ident *id = atomic_load(&s->shown);

	return id ? id->pem : NULL;
}

int signer_public_key_json(const struct signer *s, json_t **ret)
{
	const struct ident *id = atomic_load(&s->shown);
	char x[44], y[44];
	json_t *jwk, *o;

	if (!id)
		return -EAGAIN;
	b64url_encode(id->xy, 32, x, sizeof(x));
	b64url_encode(id->xy + 32, 32, y, sizeof(y));
	jwk = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x", x, "y", y);
	if (!jwk)
		return -ENOMEM;
	o = json_pack("{s:s, s:s, s:s, s:o, s:s}", "serialNumber", id->serial_hex, "publicKey",
		      id->xy_hex, "publicKey_pem", id->pem, "publicKey_jwk", jwk, "backend",
		      s->ops->name);
	if (!o)
		return -ENOMEM; /* json_pack's "o" consumed jwk */
	*ret = o;
	return 0;
}

int signer_prepare(struct signer *s)
{
	int r;

	pthread_mutex_lock(&s->lock);
	r = s->ops->prepare(s);
	if (r == 0 && s->have_own)
		check_identity(s);
	if (r == 0 && !s->checked)
		r = -EGW_ESIGNER;
	pthread_mutex_unlock(&s->lock);
	return r;
}

int signer_sign_digest(struct signer *s, const uint8_t digest[32], uint8_t ret_rs[64])
{
	uint8_t rs[64];
	int r;

	pthread_mutex_lock(&s->lock);
	if (s->have_own && !s->checked) {
		check_identity(s);
		if (!s->checked) {
			r = -EGW_ESIGNER;
			goto out;
		}
	}
	r = s->ops->sign(s, digest, rs);
	if (r < 0)
		goto out;
	/* The first signature under a key makes it the recorded identity. */
	if (s->cfg.record_identity && !s->recorded) {
		r = record_save(s);
		if (r < 0) {
			signer_fail(s, "cannot record the identity in the state directory");
			r = -EGW_ESIGNER;
			goto out;
		}
		s->recorded = true;
	}
	atomic_store(&s->healthy, true);
	atomic_store(&s->last_error, NULL);
	memcpy(ret_rs, rs, sizeof(rs));
out:
	pthread_mutex_unlock(&s->lock);
	return r;
}

bool signer_healthy(const struct signer *s)
{
	return atomic_load(&s->healthy);
}

const char *signer_last_error(const struct signer *s)
{
	return atomic_load(&s->last_error);
}

bool signer_identity_refused(const struct signer *s)
{
	return atomic_load(&s->refused);
}
