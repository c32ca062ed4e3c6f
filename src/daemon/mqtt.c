/* MQTT in the daemon; see mqtt.h. */
#include "daemon/mqtt.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "backend/mqtt.h"
#include "base/err.h"
#include "base/log.h"
#include "config/settings.h"
#include "crypto/signer.h"
#include "devices/device.h"
#include "egw.h"
#include "egw-config.h"
#include "profiles/profile.h"
#include "web/web.h"

/* The settings MQTT depends on, as one string: a change of any restarts it. */
static void signature(const struct settings_values *v, char *buf, size_t len)
{
	snprintf(buf, len, "%d|%s|%lld|%s|%s|%d|%s|%s|%s|%lld", v->mqtt_enabled, v->mqtt_host,
		 (long long)v->mqtt_port, v->mqtt_username, v->mqtt_password, v->mqtt_tls,
		 v->mqtt_topic_prefix, v->mqtt_discovery_prefix, v->mqtt_ca_file,
		 (long long)v->http_port);
}

/* Tells MQTT which devices exist: a device gone from the list (removed
 * through the API, or absent at start) is deleted from Home Assistant. */
static void set_devices(struct egw *e)
{
	const char *ids[MQTT_MAX_DEVICES];
	unsigned n = 0;
	int r;

	if (!e->mqtt || !e->devices)
		return;
	for (unsigned i = 0; i < devices_count(e->devices) && n < MQTT_MAX_DEVICES; i++)
		ids[n++] = device_id(devices_get(e->devices, i));
	r = mqtt_set_devices(e->mqtt, ids, n);
	if (r < 0)
		log_error("mqtt", "device list: %s", egw_strerror(r));
}

void mqtt_egw_apply(struct egw *e)
{
	const struct settings_values *v = settings_values(e->settings);
	char sig[sizeof(e->mqtt_sig)];
	int r;

	signature(v, sig, sizeof(sig));
	if (strcmp(sig, e->mqtt_sig) == 0) {
		set_devices(e);
		return;
	}
	snprintf(e->mqtt_sig, sizeof(e->mqtt_sig), "%s", sig);
	mqtt_free(e->mqtt);
	e->mqtt = NULL;
	if (!v->mqtt_enabled)
		return;
	struct mqtt_config cfg = {
		.host = v->mqtt_host,
		.port = (int)v->mqtt_port,
		.username = v->mqtt_username,
		.password = v->mqtt_password,
		.tls = v->mqtt_tls,
		.ca_file = v->mqtt_ca_file,
		.topic_prefix = v->mqtt_topic_prefix,
		.discovery_prefix = v->mqtt_discovery_prefix,
		.sw_version = EGW_VERSION,
		.ui_port = (int)v->http_port,
	};
	r = mqtt_new(e->loop, &cfg, e->signer ? signer_serial_hex(e->signer) : "gateway", &e->mqtt);
	if (r < 0) {
		log_error("mqtt", "MQTT to %s:%d: %s", cfg.host, cfg.port, egw_strerror(r));
		return;
	}
	log_info("mqtt", "MQTT publishing to %s:%d (prefix %s)", cfg.host, cfg.port,
		 cfg.topic_prefix);
	set_devices(e);
}

void mqtt_egw_on_reading(struct egw *e, struct device *d, int64_t ts_ms, const struct reading *r)
{
	const struct profile *p;

	if (!e->mqtt)
		return;
	p = device_profile(d);
	/* A profile without a serial register identifies by address or MAC:
	 * that is no serial number to show.  A P1 meter has no profile table:
	 * its serial is the meter's own identifier (empty when it sends none). */
	struct mqtt_device md = {
		.id = device_id(d),
		.name = device_name(d),
		.manufacturer = p && p->brand && *p->brand ? p->brand : NULL,
		.model = p ? p->name : device_profile_name(d),
		.serial = !p        ? (*device_serial(d) ? device_serial(d) : NULL)
			: p->serial ? device_serial(d)
				    : NULL,
		.profile = p,
	};
	mqtt_publish_reading(e->mqtt, &md, ts_ms, r);
}

void mqtt_egw_on_state(struct egw *e, struct device *d, int old_state, int new_state)
{
	if (e->mqtt && (old_state == DEV_POLLING) != (new_state == DEV_POLLING))
		mqtt_publish_availability(e->mqtt, device_id(d), new_state == DEV_POLLING);
}

/* /api/state "mqtt": whether MQTT is on, where to, and how it goes. */
static json_t *section(void *ud)
{
	struct egw *e = ud;
	const struct settings_values *v = settings_values(e->settings);
	struct mqtt_stats ms;

	if (!v->mqtt_enabled)
		return json_pack("{s:b}", "enabled", 0);
	if (!e->mqtt)
		return json_pack("{s:b,s:b,s:s}", "enabled", 1, "connected", 0, "last_error",
				 "not started (see the log)");
	mqtt_stats(e->mqtt, &ms);
	return json_pack("{s:b,s:s,s:I,s:b,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:s?}", "enabled", 1, "host",
			 v->mqtt_host, "port", (json_int_t)v->mqtt_port, "tls", v->mqtt_tls,
			 "connected", ms.connected, "connects", (json_int_t)ms.connects,
			 "disconnects", (json_int_t)ms.disconnects, "acked", (json_int_t)ms.acked,
			 "backlog", (json_int_t)ms.backlog, "dropped", (json_int_t)ms.dropped,
			 "removed", (json_int_t)ms.removed, "last_error", ms.last_error);
}

static void metrics(void *ud, struct web_buf *b)
{
	struct egw *e = ud;
	struct mqtt_stats ms;

	if (!e->mqtt)
		return;
	mqtt_stats(e->mqtt, &ms);
	web_buf_printf(b,
		       "# HELP egw_mqtt_connected 1 while connected to the MQTT broker.\n"
		       "# TYPE egw_mqtt_connected gauge\negw_mqtt_connected %d\n",
		       ms.connected);
	web_buf_printf(b,
		       "# HELP egw_mqtt_messages_total MQTT messages by stage (queued, "
		       "published, acked, dropped).\n# TYPE egw_mqtt_messages_total counter\n"
		       "egw_mqtt_messages_total{stage=\"queued\"} %" PRIu64 "\n"
		       "egw_mqtt_messages_total{stage=\"published\"} %" PRIu64 "\n"
		       "egw_mqtt_messages_total{stage=\"acked\"} %" PRIu64 "\n"
		       "egw_mqtt_messages_total{stage=\"dropped\"} %" PRIu64 "\n",
		       ms.queued, ms.published, ms.acked, ms.dropped);
	web_buf_printf(b,
		       "# HELP egw_mqtt_backlog_messages MQTT messages waiting for the broker.\n"
		       "# TYPE egw_mqtt_backlog_messages gauge\negw_mqtt_backlog_messages %u\n",
		       ms.backlog);
	web_buf_printf(b,
		       "# HELP egw_mqtt_connects_total Accepted MQTT connections.\n"
		       "# TYPE egw_mqtt_connects_total counter\negw_mqtt_connects_total %" PRIu64
		       "\n",
		       ms.connects);
}

int mqtt_egw_init(struct egw *e)
{
	if (e->web) {
		web_add_section(e->web, "mqtt", section, e, true);
		web_add_metrics(e->web, metrics, e);
	}
	mqtt_egw_apply(e);
	return 0;
}

void mqtt_egw_fini(struct egw *e)
{
	mqtt_free(e->mqtt);
	e->mqtt = NULL;
	e->mqtt_sig[0] = 0;
}
