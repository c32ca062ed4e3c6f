/* Signer wiring (see wire.h). */
#include "daemon/signer.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "backend/name.h"
#include "base/err.h"
#include "base/log.h"
#include "config/settings.h"
#include "crypto/signer.h"
#include "egw.h"
#include "web/web.h"

static json_t *crypto_section(void *ud)
{
	struct egw *e = ud;
	const char *name = e->namequery ? namequery_name(e->namequery) : NULL;
	json_t *o;

	if (!e->signer || signer_public_key_json(e->signer, &o) < 0)
		return NULL;
	json_object_set_new(o, "deviceName", name ? json_string(name) : json_null());
	return o;
}

static json_t *signer_section(void *ud)
{
	struct egw *e = ud;
	const char *err;

	if (!e->signer)
		return NULL;
	err = signer_last_error(e->signer);
	return json_pack("{s:s, s:s, s:b, s:o, s:b, s:s}", "backend", signer_backend_name(e->signer),
			 "serial", signer_serial_hex(e->signer), "healthy", signer_healthy(e->signer),
			 "last_error", err ? json_string(err) : json_null(), "fallback", signer_is_fallback(e->signer),
			 "configured", settings_get_str(e->settings, "signer.backend"));
}

static void signer_metrics(void *ud, struct web_buf *b)
{
	struct egw *e = ud;

	if (!e->signer)
		return;
	web_buf_printf(b, "# TYPE egw_signer_healthy gauge\negw_signer_healthy{backend=\"%s\"} %d\n",
		       signer_backend_name(e->signer), signer_healthy(e->signer) ? 1 : 0);
}

int crypto_egw_init(struct egw *e)
{
	const char *backend = settings_get_str(e->settings, "signer.backend");
	struct signer_config cfg = {
		.backend = backend && strcmp(backend, "atecc608") == 0 ? SIGNER_ATECC608 : SIGNER_SOFTWARE,
		.state_dir = e->state_dir,
		.i2c_bus = settings_get_str(e->settings, "signer.i2c_bus"),
		.i2c_address = (unsigned)settings_get_int(e->settings, "signer.i2c_address"),
		.fallback_software = true,
	};
	int r;

	r = signer_open(&cfg, &e->signer);
	if (r < 0) {
		log_error("crypto", "cannot open the %s signer (state dir %s): %s",
			  cfg.backend == SIGNER_SOFTWARE ? "software" : "ATECC608", e->state_dir,
			  egw_strerror(r));
		return r;
	}
	if (signer_is_fallback(e->signer))
		log_warn("crypto", "ATECC608 on %s at 0x%02x unavailable (%s); using the software key in %s/device-key.pem",
			 cfg.i2c_bus ? cfg.i2c_bus : "?", cfg.i2c_address,
			 egw_strerror(signer_fallback_reason(e->signer)), e->state_dir);
	log_info("crypto", "signer: %s, serial %s", signer_backend_name(e->signer),
		 signer_serial_hex(e->signer));
	if (e->web) {
		web_add_section(e->web, "crypto", crypto_section, e, false);
		web_add_section(e->web, "signer", signer_section, e, true);
		web_add_metrics(e->web, signer_metrics, e);
	}
	return 0;
}

void crypto_egw_fini(struct egw *e)
{
	struct signer *s = e->signer;

	e->signer = NULL;
	signer_close(s);
}
