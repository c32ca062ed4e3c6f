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
#include "crypto/b64url.h"
#include "crypto/p256.h"
#include "egw-config.h"

#define SIGNER_HAVE_ATECC (EGW_HAVE_ATECC || EGW_HAVE_ATECC_FAKE)
#if SIGNER_HAVE_ATECC
#include "crypto/atcab.h"
#endif

struct signer_ops {
	const char *name;
	int (*sign)(struct signer *s, const uint8_t digest[32], uint8_t ret_rs[64]);
	void (*close)(struct signer *s);
};

struct signer {
	const struct signer_ops *ops;
	pthread_mutex_t lock;          /* serializes signatures */
	atomic_bool healthy;
	_Atomic(const char *) last_error;
	uint8_t serial[SIGNER_SERIAL_LEN];
	char serial_hex[SIGNER_SERIAL_HEX_LEN + 1];
	uint8_t xy[64];
	char xy_hex[129];
	char *pem;
	int fallback_err;              /* < 0: the chip failed, software key used */
	EVP_PKEY *pub;                 /* public key, to check what a chip returns */
	EVP_PKEY *key;                 /* software: the private key */
#if SIGNER_HAVE_ATECC
	ATCAIfaceCfg atcfg;
	bool at_ready;                 /* atcab_init succeeded, not released since */
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

static void signer_fail(struct signer *s, const char *why)
{
	atomic_store(&s->last_error, why);
	atomic_store(&s->healthy, false);
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

static void soft_close(struct signer *s)
{
	EVP_PKEY_free(s->key);
}

static const struct signer_ops soft_ops = {
	.name = "software",
	.sign = soft_sign,
	.close = soft_close,
};

static int soft_open(struct signer *s, const struct signer_config *cfg)
{
	char path[PATH_MAX];
	uint8_t h[32];
	int r;

	if (!cfg->state_dir || !*cfg->state_dir)
		return -EINVAL;
	if (snprintf(path, sizeof(path), "%s/device-key.pem", cfg->state_dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	r = p256_load_or_create(path, &s->key, NULL);
	if (r < 0)
		return r;
	s->ops = &soft_ops;
	r = p256_public_xy(s->key, s->xy);
	if (r < 0)
		return r;
	r = p256_sha256(s->xy, sizeof(s->xy), h);
	if (r < 0)
		return r;
	/* 0x01 first, like an ATECC608 serial, then a digest of the key. */
	s->serial[0] = 0x01;
	memcpy(s->serial + 1, h, SIGNER_SERIAL_LEN - 1);
	return 0;
}

/* ---- ATECC608 backend ---- */

#if SIGNER_HAVE_ATECC
static int atecc_init(struct signer *s)
{
	if (s->at_ready)
		return 0;
	if (atcab_init(&s->atcfg) != ATCA_SUCCESS) {
		atcab_release();
		return -EGW_ESIGNER;
	}
	s->at_ready = true;
	return 0;
}

static void atecc_release(struct signer *s)
{
	if (s->at_ready)
		atcab_release();
	s->at_ready = false;
}

static int atecc_sign(struct signer *s, const uint8_t digest[32], uint8_t ret_rs[64])
{
	uint8_t xy[64];

	/* After a failure the bus or the chip may be wedged: start it afresh. */
	if (!atomic_load(&s->healthy))
		atecc_release(s);
	if (atecc_init(s) < 0) {
		signer_fail(s, "ATECC608 init failed");
		return -EGW_ESIGNER;
	}
	if (atcab_sign(0, digest, ret_rs) != ATCA_SUCCESS) {
		signer_fail(s, "ATECC608 sign failed");
		return -EGW_ESIGNER;
	}
	/* A re-initialized bus could reach a different chip; and a glitch could
	 * return garbage.  Never hand out a signature our public key rejects. */
	if (p256_verify_digest(s->pub, digest, ret_rs) < 0) {
		if (atcab_get_pubkey(0, xy) == ATCA_SUCCESS && memcmp(xy, s->xy, 64) != 0)
			signer_fail(s, "ATECC608 slot 0 key changed");
		else
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
#if EGW_HAVE_ATECC
	.name = "atecc608",
#else
	.name = "atecc608-fake",
#endif
	.sign = atecc_sign,
	.close = atecc_close,
};

/* "/dev/i2c-1", "i2c-1" or "1" -> 1. */
static int parse_i2c_bus(const char *bus, uint8_t *ret)
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
	*ret = (uint8_t)v;
	return 0;
}

static int atecc_open(struct signer *s, const struct signer_config *cfg)
{
	unsigned addr = cfg->i2c_address ? cfg->i2c_address : 0x60;
	int r;

	if (addr > 0x7f)
		return -EINVAL;
	s->atcfg = (ATCAIfaceCfg){
		.iface_type = ATCA_I2C_IFACE,
		.devtype = ATECC608A,
		.wake_delay = 1500,
		.rx_retries = 20,
	};
	s->atcfg.atcai2c.address = (uint8_t)(addr << 1);
	s->atcfg.atcai2c.baud = 100000;
	r = parse_i2c_bus(cfg->i2c_bus, &s->atcfg.atcai2c.bus);
	if (r < 0)
		return r;
	s->ops = &atecc_ops;
	r = atecc_init(s);
	if (r < 0)
		return r;
	if (atcab_read_serial_number(s->serial) != ATCA_SUCCESS ||
	    atcab_get_pubkey(0, s->xy) != ATCA_SUCCESS)
		return -EGW_ESIGNER;
	return 0;
}
#endif

/* ---- interface ---- */

int signer_open(const struct signer_config *cfg, struct signer **ret)
{
	struct signer *s;
	int r;

	if (!cfg || !ret)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
		free(s);
		return -ENOMEM;
	}
	atomic_init(&s->healthy, true);
	atomic_init(&s->last_error, NULL);
	switch (cfg->backend) {
	case SIGNER_SOFTWARE:
		r = soft_open(s, cfg);
		break;
	case SIGNER_ATECC608:
#if SIGNER_HAVE_ATECC
		r = atecc_open(s, cfg);
#else
		r = -ENOTSUP;
#endif
		if (r < 0 && cfg->fallback_software) {
			if (s->ops)
				s->ops->close(s);
			s->ops = NULL;
			s->fallback_err = r;
			r = soft_open(s, cfg);
		}
		break;
	default:
		r = -EINVAL;
	}
	if (r < 0)
		goto fail;
	hex(s->serial, sizeof(s->serial), s->serial_hex);
	hex(s->xy, sizeof(s->xy), s->xy_hex);
	r = p256_from_xy(s->xy, &s->pub);
	if (r < 0) {
		r = -EGW_ESIGNER; /* a chip handing out a point off the curve */
		goto fail;
	}
	r = p256_public_pem(s->pub, &s->pem);
	if (r < 0)
		goto fail;
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
	EVP_PKEY_free(s->pub);
	free(s->pem);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

bool signer_is_fallback(const struct signer *s)
{
	return s->fallback_err < 0;
}

int signer_fallback_reason(const struct signer *s)
{
	return s->fallback_err;
}

const char *signer_backend_name(const struct signer *s)
{
	return s->ops->name;
}

const char *signer_serial_hex(const struct signer *s)
{
	return s->serial_hex;
}

int signer_serial(const struct signer *s, uint8_t ret_serial[SIGNER_SERIAL_LEN])
{
	memcpy(ret_serial, s->serial, SIGNER_SERIAL_LEN);
	return 0;
}

int signer_public_key(const struct signer *s, uint8_t ret_xy[64])
{
	memcpy(ret_xy, s->xy, 64);
	return 0;
}

const char *signer_public_key_hex(const struct signer *s)
{
	return s->xy_hex;
}

const char *signer_public_key_pem(const struct signer *s)
{
	return s->pem;
}

int signer_public_key_json(const struct signer *s, json_t **ret)
{
	char x[44], y[44];
	json_t *jwk, *o;

	b64url_encode(s->xy, 32, x, sizeof(x));
	b64url_encode(s->xy + 32, 32, y, sizeof(y));
	jwk = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x", x, "y", y);
	if (!jwk)
		return -ENOMEM;
	o = json_pack("{s:s, s:s, s:s, s:o, s:s}", "serialNumber", s->serial_hex,
		      "publicKey", s->xy_hex, "publicKey_pem", s->pem, "publicKey_jwk", jwk,
		      "backend", s->ops->name);
	if (!o)
		return -ENOMEM; /* json_pack's "o" consumed jwk */
	*ret = o;
	return 0;
}

int signer_sign_digest(struct signer *s, const uint8_t digest[32], uint8_t ret_rs[64])
{
	uint8_t rs[64];
	int r;

	pthread_mutex_lock(&s->lock);
	r = s->ops->sign(s, digest, rs);
	if (r == 0) {
		atomic_store(&s->healthy, true);
		memcpy(ret_rs, rs, sizeof(rs));
	}
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
