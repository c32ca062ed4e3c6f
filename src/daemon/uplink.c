/* The MQTT uplink in the daemon; see uplink.h. */
#include "daemon/uplink.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "backend/batch.h"
#include "backend/uplink_mqtt.h"
#include "base/err.h"
#include "base/log.h"
#include "base/util.h"
#include "config/settings.h"
#include "crypto/signer.h"
#include "daemon/pipeline.h"
#include "egw.h"
#include "web/web.h"

/* The settings the uplink depends on, as one string: a change of any
 * restarts it. */
static void signature(const struct settings *s, char *buf, size_t len)
{
	snprintf(buf, len, "%d|%s|%lld|%d|%s|%s|%s|%s|%s|%lld|%lld|%lld",
		 settings_values(s)->uplink_mqtt_enabled, settings_values(s)->uplink_mqtt_host,
		 (long long)settings_values(s)->uplink_mqtt_port,
		 settings_values(s)->uplink_mqtt_tls, settings_values(s)->uplink_mqtt_ca_file,
		 settings_values(s)->uplink_mqtt_topic, settings_values(s)->uplink_mqtt_username,
		 settings_values(s)->uplink_mqtt_auth, settings_values(s)->uplink_mqtt_password,
		 (long long)settings_values(s)->uplink_mqtt_jwt_lifetime_s,
		 (long long)settings_values(s)->uplink_mqtt_max_in_flight,
		 (long long)settings_values(s)->backend_rate_per_s);
}

/* topic with every "<serial>" replaced.  Returns 0 or -EINVAL (too long). */
static int expand_topic(const char *tmpl, const char *serial, char *out, size_t len)
{
	static const char mark[] = "<serial>";
	size_t n = 0;

	while (*tmpl) {
		const char *add = tmpl;
		size_t k = 1;
		if (!strncmp(tmpl, mark, sizeof(mark) - 1)) {
			add = serial;
			k = strlen(serial);
			tmpl += sizeof(mark) - 1;
		} else {
			tmpl++;
		}
		if (n + k >= len)
			return -EINVAL;
		memcpy(out + n, add, k);
		n += k;
	}
	out[n] = 0;
	return 0;
}

static void on_health(void *ud, bool ok, int err, long status, const char *detail)
{
	struct egw *e = ud;
	struct uplink_mqtt_stats st = { 0 };
	(void)status;
	(void)detail;

	if (e->uplink_mqtt)
		uplink_mqtt_get_stats(e->uplink_mqtt, &st);
	if (ok)
		log_info("uplink-mqtt", "broker takes batches again; delivering from seq %" PRIu64,
			 st.up.pending_seq);
	else
		log_warn("uplink-mqtt", "broker not taking batches: %s%s%s; retrying with backoff",
			 egw_strerror(err), st.last_error ? ": " : "",
			 st.last_error ? st.last_error : "");
}

static void stop(struct egw *e)
{
	if (e->batch)
		batch_set_uplink(e->batch, NULL);
	uplink_mqtt_free(e->uplink_mqtt);
	e->uplink_mqtt = NULL;
}

void uplink_egw_apply(struct egw *e)
{
	const struct settings *s = e->settings;
	char sig[sizeof(e->uplink_sig)], topic[UPLINK_MQTT_TOPIC_MAX];
	const char *serial, *user;
	bool jwt;
	int r;

	signature(s, sig, sizeof(sig));
	if (!strcmp(sig, e->uplink_sig))
		return;
	snprintf(e->uplink_sig, sizeof(e->uplink_sig), "%s", sig);
	stop(e);
	e->uplink_error[0] = 0;
	if (!settings_values(s)->uplink_mqtt_enabled)
		return;
	if (!e->store || !e->signer || !signer_identity_known(e->signer)) {
		snprintf(e->uplink_error, sizeof(e->uplink_error),
			 "no store or no signer identity");
		log_error("uplink-mqtt", "not started: %s", e->uplink_error);
		return;
	}
	serial = signer_serial_hex(e->signer);
	user = settings_values(s)->uplink_mqtt_username;
	jwt = !strcmp(settings_values(s)->uplink_mqtt_auth, "jwt");
	r = pipeline_acks(e);
	if (r >= 0)
		r = expand_topic(settings_values(s)->uplink_mqtt_topic, serial, topic,
				 sizeof(topic));
	if (r >= 0) {
		int64_t rate = settings_values(s)->backend_rate_per_s;
		struct uplink_mqtt_config cfg = {
			.host = settings_values(s)->uplink_mqtt_host,
			.port = (int)settings_values(s)->uplink_mqtt_port,
			.tls = settings_values(s)->uplink_mqtt_tls,
			.ca_file = settings_values(s)->uplink_mqtt_ca_file,
			.topic = topic,
			.client_id = serial,
			.username = user[0] ? user : serial,
			.password = jwt ? NULL : settings_values(s)->uplink_mqtt_password,
			.signer = jwt ? e->signer : NULL,
			.jwt_lifetime = (usec_t)settings_values(s)->uplink_mqtt_jwt_lifetime_s *
				USEC_PER_SEC,
			.max_in_flight = (unsigned)settings_values(s)->uplink_mqtt_max_in_flight,
			.rate_per_s = rate > 0 ? (unsigned)rate : 0,
			.acks = e->acks,
			.on_health = on_health,
			.health_ud = e,
		};
		r = uplink_mqtt_new(e->loop, &cfg, &uploader_store_source, e->store,
				    &e->uplink_mqtt);
	}
	if (r < 0) {
		snprintf(e->uplink_error, sizeof(e->uplink_error), "%s", egw_strerror(r));
		log_error("uplink-mqtt", "not started: %s", e->uplink_error);
		return;
	}
	if (e->batch)
		batch_set_uplink(e->batch, uplink_mqtt_uploader(e->uplink_mqtt));
	log_info("uplink-mqtt", "publishing signed batches to %s:%lld%s, topic %s, %s auth",
		 settings_values(s)->uplink_mqtt_host,
		 (long long)settings_values(s)->uplink_mqtt_port,
		 settings_values(s)->uplink_mqtt_tls ? " (TLS)" : "", topic,
		 jwt ? "JWT" : "password");
}

/* /api/state "uplink_mqtt". */
static json_t *section(void *ud)
{
	struct egw *e = ud;
	const struct settings *s = e->settings;
	struct uplink_mqtt_stats st;

	if (!settings_values(s)->uplink_mqtt_enabled)
		return json_pack("{sb}", "enabled", 0);
	if (!e->uplink_mqtt)
		return json_pack("{sbsbss}", "enabled", 1, "connected", 0, "last_error",
				 e->uplink_error[0] ? e->uplink_error
						    : "not started (see the log)");
	uplink_mqtt_get_stats(e->uplink_mqtt, &st);
	const struct {
		const char *k;
		int64_t v;
	} ints[] = {
		{ "port", settings_values(s)->uplink_mqtt_port },
		{ "connects", (int64_t)st.connects },
		{ "disconnects", (int64_t)st.disconnects },
		{ "refused", (int64_t)st.refused },
		{ "tokens", (int64_t)st.tokens },
		{ "token_exp", st.token_exp },
		{ "in_flight", st.up.in_flight },
		{ "max_in_flight", st.up.max_in_flight },
		{ "attempts", (int64_t)st.up.attempts },
		{ "failed", (int64_t)st.up.failed },
		{ "delivered", (int64_t)st.up.acked },
		{ "last_delivered_seq", (int64_t)st.up.last_acked_seq },
		{ "pending_seq", (int64_t)st.up.pending_seq },
		{ "backoff_ms", (int64_t)(st.up.backoff / USEC_PER_MSEC) },
	};
	json_t *o = json_pack("{sbsssbsssbss?}", "enabled", 1, "host",
			      settings_values(s)->uplink_mqtt_host, "tls",
			      settings_values(s)->uplink_mqtt_tls, "auth",
			      settings_values(s)->uplink_mqtt_auth, "connected", st.connected,
			      "last_error", st.last_error);
	for (size_t i = 0; o && i < ARRAY_SIZE(ints); i++) {
		if (json_object_set_new(o, ints[i].k, json_integer(ints[i].v)) < 0) {
			json_decref(o);
			o = NULL;
		}
	}
	return o;
}

static void metrics(void *ud, struct web_buf *b)
{
	struct egw *e = ud;
	struct uplink_mqtt_stats st;

	if (!e->uplink_mqtt)
		return;
	uplink_mqtt_get_stats(e->uplink_mqtt, &st);
	web_buf_printf(b,
		       "# HELP egw_uplink_mqtt_connected 1 while the MQTT uplink is connected.\n"
		       "# TYPE egw_uplink_mqtt_connected gauge\negw_uplink_mqtt_connected %d\n",
		       st.connected);
	web_buf_printf(b,
		       "# HELP egw_uplink_mqtt_in_flight Batches published and not acknowledged.\n"
		       "# TYPE egw_uplink_mqtt_in_flight gauge\negw_uplink_mqtt_in_flight %u\n"
		       "# TYPE egw_uplink_mqtt_max_in_flight gauge\n"
		       "egw_uplink_mqtt_max_in_flight %u\n",
		       st.up.in_flight, st.up.max_in_flight);
	web_buf_printf(b,
		       "# HELP egw_uplink_mqtt_delivered_total Batches the broker acknowledged "
		       "(PUBACK), in seq order.\n# TYPE egw_uplink_mqtt_delivered_total counter\n"
		       "egw_uplink_mqtt_delivered_total %" PRIu64 "\n"
		       "# TYPE egw_uplink_mqtt_failed_total counter\n"
		       "egw_uplink_mqtt_failed_total %" PRIu64 "\n"
		       "# TYPE egw_uplink_mqtt_connects_total counter\n"
		       "egw_uplink_mqtt_connects_total %" PRIu64 "\n",
		       st.up.acked, st.up.failed, st.connects);
}

int uplink_egw_init(struct egw *e)
{
	if (e->web) {
		web_add_section(e->web, "uplink_mqtt", section, e, true);
		web_add_metrics(e->web, metrics, e);
	}
	uplink_egw_apply(e);
	return 0;
}

void uplink_egw_fini(struct egw *e)
{
	stop(e);
	e->uplink_sig[0] = 0;
}
