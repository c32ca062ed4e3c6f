/* Signer wiring (see signer.h). */
#include "daemon/signer.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "backend/name.h"
#include "base/err.h"
#include "base/log.h"
#include "config/settings.h"
#include "base/util.h"
#include "crypto/signer.h"
#include "daemon/pipeline.h"
#include "daemon/uplink.h"
#include "egw.h"
#include "loop/loop.h"
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

/* Why nothing is signed right now, or NULL when signing works. */
static const char *not_signing_reason(const struct signer *s)
{
	if (signer_identity_refused(s))
		return signer_last_error(s);
	return signer_healthy(s) ? NULL : signer_last_error(s);
}

static json_t *signer_section(void *ud)
{
	struct egw *e = ud;
	const char *err, *why;

	if (!e->signer)
		return NULL;
	err = signer_last_error(e->signer);
	why = not_signing_reason(e->signer);
	return json_pack("{s:s, s:o, s:b, s:o, s:b, s:o, s:b, s:s}", "backend",
			 signer_backend_name(e->signer), "serial",
			 signer_identity_known(e->signer)
				 ? json_string(signer_serial_hex(e->signer))
				 : json_null(),
			 "healthy", signer_healthy(e->signer), "last_error",
			 err ? json_string(err) : json_null(), "signing", why == NULL,
			 "not_signing_reason", why ? json_string(why) : json_null(),
			 "identity_refused", signer_identity_refused(e->signer), "configured",
			 settings_values(e->settings)->signer_backend);
}

static void signer_metrics(void *ud, struct web_buf *b)
{
	struct egw *e = ud;

	if (!e->signer)
		return;
	web_buf_printf(b,
		       "# TYPE egw_signer_healthy gauge\negw_signer_healthy{backend=\"%s\"} %d\n",
		       signer_backend_name(e->signer), signer_healthy(e->signer) ? 1 : 0);
}

static void signer_config_from(const struct settings *st, const char *state_dir,
			       struct signer_config *ret)
{
	const char *backend = settings_values(st)->signer_backend;

	*ret = (struct signer_config){
		.backend = !backend || strcmp(backend, "auto") == 0 ? SIGNER_AUTO
			: strcmp(backend, "atecc608") == 0          ? SIGNER_ATECC608
								    : SIGNER_SOFTWARE,
		.state_dir = state_dir,
		.i2c_bus = settings_values(st)->signer_i2c_bus,
		.i2c_address = (unsigned)settings_values(st)->signer_i2c_address,
		.wait_for_chip = true,
		.record_identity = true,
	};
}

/* What is started with the signer's serial (the name query asks the
 * backend by it; the MQTT uplink logs in with it) waits while no identity is
 * known: a chip that answers only after the start.  Once it is known, they
 * are started with it. */
static int identity_watch_run(struct task *t, usec_t now)
{
	struct egw *e = container_of(t, struct egw, identity_watch);

	UNUSED(now);
	if (!e->signer || !signer_identity_known(e->signer))
		return 0;
	loop_task_cancel(e->loop, t);
	log_info("crypto", "signer: %s, serial %s: starting the name query and the uplink with it",
		 signer_backend_name(e->signer), signer_serial_hex(e->signer));
	pipeline_apply_settings(e);
	e->uplink_sig[0] = '\0'; /* same settings, now with an identity */
	uplink_egw_apply(e);
	return 0;
}

int crypto_egw_init(struct egw *e)
{
	struct signer_config cfg;
	int r;

	signer_config_from(e->settings, e->state_dir, &cfg);
	cfg.accept_new_identity = e->accept_new_identity;
	r = signer_open(&cfg, &e->signer);
	if (r < 0) {
		log_error("crypto", "cannot open the signer (state dir %s): %s", e->state_dir,
			  egw_strerror(r));
		return r;
	}
	if (signer_identity_refused(e->signer))
		log_error("crypto",
			  "signer %s: %s (%s/identity, recorded serial %s); readings are stored, "
			  "nothing is signed",
			  signer_backend_name(e->signer), signer_last_error(e->signer),
			  e->state_dir, signer_serial_hex(e->signer));
	else if (!signer_healthy(e->signer))
		log_warn("crypto", "signer %s: %s; readings are stored and signed when it answers",
			 signer_backend_name(e->signer), signer_last_error(e->signer));
	else
		log_info("crypto", "signer: %s, serial %s", signer_backend_name(e->signer),
			 signer_serial_hex(e->signer));
	if (!signer_identity_known(e->signer)) {
		e->identity_watch = (struct task){
			.name = "identity",
			.run = identity_watch_run,
			.period = USEC_PER_SEC,
			.prio = 5,
		};
		loop_task_add(e->loop, &e->identity_watch, loop_now(e->loop) + USEC_PER_SEC);
	}
	if (e->web) {
		web_add_section(e->web, "crypto", crypto_section, e, false);
		web_add_section(e->web, "signer", signer_section, e, true);
		web_add_metrics(e->web, signer_metrics, e);
	}
	return 0;
}

static void print_hex(const char *label, const uint8_t *p, size_t n)
{
	printf("%s", label);
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
	printf("\n");
}

int crypto_chip_command(const struct settings *st, const char *state_dir, enum crypto_chip_cmd cmd)
{
	struct signer_config cfg;
	struct signer_chip_info ci;
	uint8_t xy[64];
	int r;

	signer_config_from(st, state_dir, &cfg);
	r = signer_chip_info(&cfg, &ci);
	if (r < 0) {
		fprintf(stderr,
			"egwd: no ATECC608 answers on %s at 0x%02x (settings signer.i2c_bus, "
			"signer.i2c_address): %s\n",
			cfg.i2c_bus ? cfg.i2c_bus : "/dev/i2c-1",
			cfg.i2c_address ? cfg.i2c_address : 0x60,
			r == -ENOTSUP ? "built without cryptoauthlib" : egw_strerror(r));
		return 1;
	}
	if (cmd == CHIP_INFO) {
		print_hex("serial: ", ci.serial, sizeof(ci.serial));
		print_hex("revision: ", ci.revision, sizeof(ci.revision));
		printf("config zone: %s\ndata zone: %s\n", ci.config_locked ? "locked" : "unlocked",
		       ci.data_locked ? "locked" : "unlocked");
		printf("slot 0: SlotConfig %04x, KeyConfig %04x, %s, %s, %s\n", ci.slot0_config,
		       ci.slot0_key_config,
		       ci.slot0_egw ? "configured for egw" : "not configured for egw",
		       ci.slot0_key_valid ? "key present" : "no key",
		       ci.slot0_locked ? "slot locked" : "slot not locked");
		if (ci.slot0_key_valid && ci.slot0_egw)
			print_hex("public key: 04", ci.slot0_xy, sizeof(ci.slot0_xy));
		return 0;
	}
	/* Configuration locked as ours, data open: an interrupted run, finished. */
	bool resume = ci.config_locked && !ci.data_locked && ci.slot0_egw;

	if ((ci.config_locked && !resume) || ci.data_locked) {
		fprintf(stderr,
			"egwd: the ATECC608 on %s at 0x%02x is already locked (config %s, data %s): "
			"refusing to provision it\n",
			cfg.i2c_bus ? cfg.i2c_bus : "/dev/i2c-1",
			cfg.i2c_address ? cfg.i2c_address : 0x60,
			ci.config_locked ? "locked" : "unlocked",
			ci.data_locked ? "locked" : "unlocked");
		return 1;
	}
	printf("%s the %s ATECC608 (serial ",
	       cmd == CHIP_PROVISION_DRY_RUN ? "would provision" : "provisioning",
	       resume ? "half-provisioned (configuration locked for egw, data zone open)"
		      : "blank");
	for (size_t i = 0; i < sizeof(ci.serial); i++)
		printf("%02x", ci.serial[i]);
	printf("):\n");
	for (size_t i = resume ? SIGNER_PROVISION_AFTER_CONFIG_LOCK : 0; signer_provision_plan[i];
	     i++)
		printf("  %zu. %s\n", i + 1, signer_provision_plan[i]);
	if (cmd == CHIP_PROVISION_DRY_RUN) {
		printf("dry run: nothing written\n");
		return 0;
	}
	fflush(stdout);
	r = signer_chip_provision(&cfg, xy);
	if (r < 0) {
		fprintf(stderr, "egwd: provisioning failed: %s\n",
			r == -EEXIST ? "the chip is already locked" : egw_strerror(r));
		return 1;
	}
	printf("done: configuration and data zones locked\n");
	print_hex("public key: 04", xy, sizeof(xy));
	return 0;
}

void crypto_egw_fini(struct egw *e)
{
	struct signer *s = e->signer;

	loop_task_cancel(e->loop, &e->identity_watch);
	e->signer = NULL;
	signer_close(s);
}
