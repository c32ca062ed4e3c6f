/* Web UI building blocks: the embedded asset table and the SSE hub. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <math.h>

#include "backend/mqtt.h"
#include "base/util.h"
#include "profiles/reading.h"
#include "web/assets.h"
#include "web/sse.h"
#include "web/webui.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

static void test_assets_table_sorted_and_typed(void **state)
{
	(void)state;
	assert_true(assets_count >= 4);
	for (unsigned i = 0; i < assets_count; i++) {
		const struct asset *a = &assets_table[i];

		assert_non_null(a->type);
		assert_int_equal(a->data[a->size], 0);
		assert_int_equal(strlen(a->etag), 18);
		assert_int_equal(a->etag[0], '"');
		if (i > 0)
			assert_true(strcmp(assets_table[i - 1].path, a->path) < 0);
	}
}

static void test_assets_find(void **state)
{
	const struct asset *a, *idx;
	(void)state;

	idx = assets_find("/index.html");
	assert_non_null(idx);
	assert_string_equal(idx->type, "text/html; charset=utf-8");
	assert_ptr_equal(assets_find("/"), idx);
	assert_true(strstr((const char *)idx->data, "<!doctype html>") != NULL);
	a = assets_find("/app.js");
	assert_non_null(a);
	assert_string_equal(a->type, "text/javascript; charset=utf-8");
	assert_non_null(assets_find("/app.css"));
	assert_string_equal(assets_find("/favicon.svg")->type, "image/svg+xml");
	/* Nothing but exact table entries. */
	assert_null(assets_find("/../index.html"));
	assert_null(assets_find("//index.html"));
	assert_null(assets_find("/%2e%2e/etc/passwd"));
	assert_null(assets_find("/../../etc/passwd"));
	assert_null(assets_find("index.html"));
	assert_null(assets_find("/embed.py"));
	assert_null(assets_find("/meson.build"));
	assert_null(assets_find(""));
	assert_null(assets_find(NULL));
}

static void test_assets_etag(void **state)
{
	const struct asset *a = assets_find("/app.js");
	char buf[128];
	(void)state;

	assert_false(assets_not_modified(a, NULL));
	assert_false(assets_not_modified(a, ""));
	assert_false(assets_not_modified(a, "\"0000000000000000\""));
	assert_true(assets_not_modified(a, a->etag));
	assert_true(assets_not_modified(a, "*"));
	snprintf(buf, sizeof(buf), "\"x\", W/%s", a->etag);
	assert_true(assets_not_modified(a, buf));
	snprintf(buf, sizeof(buf), "\"abc\" ,%s , \"def\"", a->etag);
	assert_true(assets_not_modified(a, buf));
	/* A prefix of the tag is not the tag. */
	snprintf(buf, sizeof(buf), "%.10s\"", a->etag);
	assert_false(assets_not_modified(a, buf));
}

struct waker {
	int woken;
};

static void on_wake(void *ud)
{
	((struct waker *)ud)->woken++;
}

static void test_sse_frames_and_wake(void **state)
{
	struct sse_hub *h;
	struct sse_client *c;
	struct waker w = { 0 };
	char buf[256];
	ssize_t n;
	(void)state;

	assert_int_equal(sse_hub_new(0, 2, &h), 0);
	assert_int_equal(sse_hub_publish(h, "freq", "{\"hz\":50}", 9), 0); /* before attach: not seen */
	assert_int_equal(sse_client_attach(h, on_wake, &w, &c), 0);
	assert_int_equal(sse_client_read(c, buf, sizeof(buf)), 0); /* now waiting */
	assert_int_equal(sse_hub_publish(h, "freq", "{\"hz\":50.01}", 12), 0);
	assert_int_equal(w.woken, 1);
	assert_int_equal(sse_hub_publish(h, "reading", "{}", 2), 0);
	assert_int_equal(w.woken, 1); /* woken once until it reads again */
	n = sse_client_read(c, buf, sizeof(buf));
	assert_true(n > 0);
	buf[n] = 0;
	assert_string_equal(buf, "event: freq\ndata: {\"hz\":50.01}\n\nevent: reading\ndata: {}\n\n");
	assert_int_equal(sse_client_read(c, buf, sizeof(buf)), 0);
	assert_int_equal(sse_hub_comment(h, "ping"), 0);
	assert_int_equal(w.woken, 2);
	n = sse_client_read(c, buf, 3); /* partial reads continue where they stopped */
	assert_int_equal(n, 3);
	n = sse_client_read(c, buf + 3, sizeof(buf) - 3);
	assert_int_equal(n, 5);
	assert_memory_equal(buf, ": ping\n\n", 8);
	sse_client_detach(c);
	sse_hub_free(h);
}

static void test_sse_rejects_bad_input(void **state)
{
	struct sse_hub *h;
	static char big[SSE_MAX_FRAME];
	struct sse_stats st;
	(void)state;

	assert_int_equal(sse_hub_new(1024, 0, &h), -EINVAL); /* ring smaller than 4 frames */
	assert_int_equal(sse_hub_new(0, 0, &h), 0);
	assert_int_equal(sse_hub_publish(h, "Freq", "{}", 2), -EINVAL);
	assert_int_equal(sse_hub_publish(h, "", "{}", 2), -EINVAL);
	assert_int_equal(sse_hub_publish(h, "x", "{\n}", 3), -EINVAL);
	assert_int_equal(sse_hub_publish(h, "x", "{\r}", 3), -EINVAL);
	assert_int_equal(sse_hub_comment(h, "a\nb"), -EINVAL);
	memset(big, 'a', sizeof(big));
	assert_int_equal(sse_hub_publish(h, "x", big, sizeof(big)), -E2BIG);
	sse_hub_stats(h, &st);
	assert_int_equal(st.too_big, 1);
	assert_int_equal(st.events, 0);
	sse_hub_free(h);
}

static void test_sse_slow_client_dropped_others_not(void **state)
{
	struct sse_hub *h;
	struct sse_client *fast, *slow, *c3, *rej;
	struct sse_stats st;
	char data[1000], buf[4096];
	uint64_t total = 0;
	(void)state;

	memset(data, 'x', sizeof(data));
	assert_int_equal(sse_hub_new(4 * SSE_MAX_FRAME, 3, &h), 0);
	assert_int_equal(sse_client_attach(h, NULL, NULL, &fast), 0);
	assert_int_equal(sse_client_attach(h, NULL, NULL, &slow), 0);
	assert_int_equal(sse_client_attach(h, NULL, NULL, &c3), 0);
	assert_int_equal(sse_client_attach(h, NULL, NULL, &rej), -EMFILE);
	sse_client_detach(c3);
	/* Publish well over the ring; the fast client keeps up, the slow never reads. */
	for (int i = 0; i < 200; i++) {
		ssize_t n;

		assert_int_equal(sse_hub_publish(h, "x", data, sizeof(data)), 0);
		while ((n = sse_client_read(fast, buf, sizeof(buf))) > 0)
			total += (uint64_t)n;
		assert_int_equal(n, 0);
	}
	assert_int_equal(total, 200u * (1000 + 1 + 16));
	assert_true(sse_client_lag(slow) > 4 * SSE_MAX_FRAME);
	assert_int_equal(sse_client_read(slow, buf, sizeof(buf)), -EPIPE);
	assert_int_equal(sse_client_read(slow, buf, sizeof(buf)), -EPIPE);
	sse_hub_stats(h, &st);
	assert_int_equal(st.dropped, 1);
	assert_int_equal(st.clients, 2);
	assert_int_equal(st.rejected, 1);
	assert_int_equal(st.attached, 3);
	sse_client_detach(slow);
	/* A freed slot is reusable and starts at the head. */
	assert_int_equal(sse_client_attach(h, NULL, NULL, &c3), 0);
	assert_int_equal(sse_client_read(c3, buf, sizeof(buf)), 0);
	sse_client_detach(c3);
	sse_client_detach(fast);
	sse_hub_free(h);
}

/* Frames wrapping the end of the ring read back intact. */
static void test_sse_wraparound(void **state)
{
	struct sse_hub *h;
	struct sse_client *c;
	char data[3001], buf[8192], want[8192];
	(void)state;

	assert_int_equal(sse_hub_new(4 * SSE_MAX_FRAME, 1, &h), 0);
	assert_int_equal(sse_client_attach(h, NULL, NULL, &c), 0);
	for (int i = 0; i < 100; i++) {
		ssize_t n, got = 0;
		int wl;

		memset(data, 'a' + i % 26, sizeof(data) - 1);
		data[sizeof(data) - 1] = 0;
		assert_int_equal(sse_hub_publish(h, "w", data, strlen(data)), 0);
		wl = snprintf(want, sizeof(want), "event: w\ndata: %s\n\n", data);
		while ((n = sse_client_read(c, buf + got, 1000)) > 0)
			got += n;
		assert_int_equal(got, wl);
		assert_memory_equal(buf, want, (size_t)wl);
	}
	sse_client_detach(c);
	sse_hub_free(h);
}

/* mqtt_discovery for gateway serial gs and device id, with a made-up device. */
static int disc(const char *pre, const char *dpre, const char *gs, const char *id,
		enum reading_field f, char *topic, size_t len, json_t **cfg)
{
	struct mqtt_gateway gw = { .serial = gs, .sw_version = "1.2.3",
				   .url = "http://192.0.2.1:5000/" };
	struct mqtt_device d = { .id = id, .name = "Roof inverter", .manufacturer = "Sungrow",
				 .model = "sungrow_hybrid", .serial = "A2231" };
	return mqtt_discovery(pre, dpre, &gw, &d, f, topic, len, cfg);
}

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static void test_mqtt_discovery_payloads(void **state)
{
	char topic[MQTT_TOPIC_MAX];
	json_t *cfg, *dev;
	(void)state;

	assert_int_equal(disc("egw", "homeassistant", "0123abcd", "inv1", RF_PV_W, topic,
			      sizeof(topic), &cfg), 0);
	assert_string_equal(topic, "homeassistant/sensor/egw_0123abcd_inv1/pv_W/config");
	assert_string_equal(jstr(cfg, "device_class"), "power");
	assert_string_equal(jstr(cfg, "unit_of_measurement"), "W");
	assert_string_equal(jstr(cfg, "state_class"), "measurement");
	assert_string_equal(jstr(cfg, "state_topic"), "egw/0123abcd/inv1/state");
	assert_string_equal(jstr(cfg, "value_template"), "{{ value_json.pv.W }}");
	assert_string_equal(jstr(cfg, "unique_id"), "egw_0123abcd_inv1_pv_W");
	assert_string_equal(jstr(cfg, "name"), "PV power");
	assert_string_equal(jstr(cfg, "default_entity_id"), "sensor.egw_0123abcd_inv1_pv_w");
	assert_null(json_object_get(cfg, "object_id"));
	assert_int_equal(json_integer_value(json_object_get(cfg, "suggested_display_precision")), 0);
	assert_int_equal(json_array_size(json_object_get(cfg, "availability")), 2);
	dev = json_object_get(cfg, "device");
	assert_string_equal(jstr(dev, "name"), "Roof inverter");
	assert_string_equal(jstr(dev, "manufacturer"), "Sungrow");
	assert_string_equal(jstr(dev, "model"), "sungrow_hybrid");
	assert_string_equal(jstr(dev, "serial_number"), "A2231");
	assert_string_equal(jstr(dev, "via_device"), "egw_0123abcd");
	assert_string_equal(jstr(dev, "configuration_url"), "http://192.0.2.1:5000/");
	json_decref(cfg);

	assert_int_equal(disc("site/egw", "ha", "s1", "meter.1", RF_METER_TOTAL_IMPORT_WH, topic,
			      sizeof(topic), &cfg), 0);
	/* '.' is not allowed in Home Assistant ids: replaced in the node id. */
	assert_string_equal(topic, "ha/sensor/egw_s1_meter_1/meter_total_import_Wh/config");
	assert_string_equal(jstr(cfg, "state_class"), "total_increasing");
	assert_string_equal(jstr(cfg, "device_class"), "energy");
	assert_string_equal(jstr(cfg, "state_topic"), "site/egw/s1/meter.1/state");
	json_decref(cfg);

	assert_int_equal(disc("egw", "homeassistant", "s", "d", RF_BATTERY_SOC_NOM_FRACT, topic,
			      sizeof(topic), &cfg), 0);
	assert_string_equal(jstr(cfg, "unit_of_measurement"), "%");
	assert_string_equal(jstr(cfg, "name"), "Battery state of charge");
	assert_non_null(strstr(jstr(cfg, "value_template"), "* 100"));
	json_decref(cfg);
	assert_int_equal(disc("egw", "homeassistant", "s", "d", RF_PV_HEATSINK_C, topic,
			      sizeof(topic), &cfg), 0);
	assert_string_equal(jstr(cfg, "unit_of_measurement"), "\xc2\xb0" "C");
	json_decref(cfg);
	/* A constant is a diagnostic entity, not a measurement. */
	assert_int_equal(disc("egw", "homeassistant", "s", "d", RF_PV_RATED_POWER_W, topic,
			      sizeof(topic), &cfg), 0);
	assert_string_equal(jstr(cfg, "entity_category"), "diagnostic");
	assert_null(json_object_get(cfg, "state_class"));
	json_decref(cfg);
	/* Grid frequency with no profile: two digits, not float32 noise. */
	assert_int_equal(disc("egw", "homeassistant", "s", "d", RF_METER_HZ, topic,
			      sizeof(topic), &cfg), 0);
	assert_int_equal(json_integer_value(json_object_get(cfg, "suggested_display_precision")), 2);
	assert_string_equal(jstr(cfg, "name"), "Grid frequency");
	json_decref(cfg);

	/* The gas and water meters a P1 meter relays: m3 counters of their own class. */
	assert_int_equal(disc("egw", "homeassistant", "s", "p1", RF_GAS_TOTAL_M3, topic,
			      sizeof(topic), &cfg), 0);
	assert_string_equal(topic, "homeassistant/sensor/egw_s_p1/gas_total_m3/config");
	assert_string_equal(jstr(cfg, "device_class"), "gas");
	assert_string_equal(jstr(cfg, "unit_of_measurement"), "m\xc2\xb3");
	assert_string_equal(jstr(cfg, "state_class"), "total_increasing");
	assert_string_equal(jstr(cfg, "value_template"), "{{ value_json.gas.total_m3 }}");
	assert_int_equal(json_integer_value(json_object_get(cfg, "suggested_display_precision")), 3);
	json_decref(cfg);
	assert_int_equal(disc("egw", "homeassistant", "s", "p1", RF_WATER_TOTAL_M3, topic,
			      sizeof(topic), &cfg), 0);
	assert_string_equal(jstr(cfg, "device_class"), "water");
	assert_string_equal(jstr(cfg, "unit_of_measurement"), "m\xc2\xb3");
	assert_string_equal(jstr(cfg, "state_class"), "total_increasing");
	json_decref(cfg);

	/* Every field of the data model has an HA entity with a name in words. */
	for (int f = 0; f < RF_COUNT; f++) {
		assert_non_null(mqtt_field_name(f));
		assert_int_equal(disc("egw", "homeassistant", "s", "d", f, topic, sizeof(topic), &cfg), 0);
		json_decref(cfg);
	}

	/* The gateway's own device, which every device names as via_device. */
	struct mqtt_gateway gw = { .serial = "0123abcd", .sw_version = "1.2.3" };
	assert_int_equal(mqtt_gateway_discovery("egw", "homeassistant", &gw, topic, sizeof(topic),
						&cfg), 0);
	assert_string_equal(topic, "homeassistant/binary_sensor/egw_0123abcd/status/config");
	dev = json_object_get(cfg, "device");
	assert_string_equal(json_string_value(json_array_get(json_object_get(dev, "identifiers"), 0)),
			    "egw_0123abcd");
	assert_string_equal(jstr(dev, "sw_version"), "1.2.3");
	assert_string_equal(jstr(cfg, "state_topic"), "egw/0123abcd/status");
	json_decref(cfg);

	/* Wildcards or separators in a topic level are refused. */
	assert_int_equal(disc("egw", "homeassistant", "s", "a/b", RF_PV_W, topic, sizeof(topic),
			      &cfg), -EINVAL);
	assert_int_equal(disc("egw", "homeassistant", "s#", "d", RF_PV_W, topic, sizeof(topic),
			      &cfg), -EINVAL);
	assert_int_equal(disc("egw/+", "homeassistant", "s", "d", RF_PV_W, topic, sizeof(topic),
			      &cfg), -EINVAL);
	assert_int_equal(disc("egw", "homeassistant", "s", "d", RF_COUNT, topic, sizeof(topic),
			      &cfg), -EINVAL);
	assert_int_equal(disc("egw", "homeassistant", "s", "d", RF_PV_W, topic, 10, &cfg), -EINVAL);
}

static void test_mqtt_stale_config(void **state)
{
	static const char *const ids[] = { "inv1", "meter.1" };
	const char *cfg = "{\"availability\":[{\"topic\":\"egw/s1/status\"},"
			  "{\"topic\":\"egw/s1/old.1/availability\"}]}";
	char avail[MQTT_TOPIC_MAX];
	(void)state;

	/* a device of this gateway that no longer exists: delete, and mark offline */
	assert_int_equal(mqtt_stale_config("egw", "homeassistant", "s1", ids, 2,
					   "homeassistant/sensor/egw_s1_old_1/pv_W/config", cfg,
					   strlen(cfg), avail, sizeof(avail)), 1);
	assert_string_equal(avail, "egw/s1/old.1/availability");
	/* current devices (also through the '.' -> '_' node), other gateways, other
	 * integrations and empty payloads are left alone */
	assert_int_equal(mqtt_stale_config("egw", "homeassistant", "s1", ids, 2,
					   "homeassistant/sensor/egw_s1_inv1/pv_W/config", cfg,
					   strlen(cfg), avail, sizeof(avail)), 0);
	assert_int_equal(mqtt_stale_config("egw", "homeassistant", "s1", ids, 2,
					   "homeassistant/sensor/egw_s1_meter_1/meter_W/config", cfg,
					   strlen(cfg), avail, sizeof(avail)), 0);
	assert_int_equal(mqtt_stale_config("egw", "homeassistant", "s1", ids, 2,
					   "homeassistant/sensor/egw_s2_old/pv_W/config", cfg,
					   strlen(cfg), avail, sizeof(avail)), 0);
	assert_int_equal(mqtt_stale_config("egw", "homeassistant", "s1", ids, 2,
					   "homeassistant/sensor/lamp/x/config", cfg, strlen(cfg),
					   avail, sizeof(avail)), 0);
	assert_int_equal(mqtt_stale_config("egw", "homeassistant", "s1", ids, 2,
					   "homeassistant/sensor/egw_s1_old_1/pv_W/config", "", 0,
					   avail, sizeof(avail)), 0);
	/* a stale config naming a current device's availability: deleted, but
	 * that device is not marked offline */
	cfg = "{\"availability\":[{\"topic\":\"egw/s1/inv1/availability\"}]}";
	assert_int_equal(mqtt_stale_config("egw", "homeassistant", "s1", ids, 2,
					   "homeassistant/sensor/egw_s1_x/pv_W/config", cfg,
					   strlen(cfg), avail, sizeof(avail)), 1);
	assert_string_equal(avail, "");
}

/* Device ids to HA node ids: different ids never share a node; ids that
 * collide with no other keep the node they always had. */
static void test_mqtt_ha_node(void **state)
{
	static const char *const ids[] = { "a.b", "a_b", "grid.meter", "x.y_z", "x_y.z",
					   "a_2eb", "A.b" };
	static const char *const want[] = { "egw_s1_a_2eb", "egw_s1_a_b", "egw_s1_grid_meter",
					     "egw_s1_x_2ey_5fz", "egw_s1_x_5fy_2ez",
					     "egw_s1_a_2eb_2", "egw_s1_A_b" };
	char node[128], cfg_topic[192];
	const char *cfg = "{}";
	(void)state;

	for (unsigned i = 0; i < ARRAY_SIZE(ids); i++) {
		assert_int_equal(mqtt_ha_node("s1", ids, ARRAY_SIZE(ids), i, node, sizeof(node)), 0);
		assert_string_equal(node, want[i]);
		for (unsigned j = 0; j < i; j++) {
			char other[128];
			assert_int_equal(mqtt_ha_node("s1", ids, ARRAY_SIZE(ids), j, other,
						      sizeof(other)), 0);
			assert_string_not_equal(node, other);
		}
		/* each current device's configs are its own, not stale */
		snprintf(cfg_topic, sizeof(cfg_topic), "homeassistant/sensor/%s/pv_W/config", node);
		assert_int_equal(mqtt_stale_config("egw", "homeassistant", "s1", ids, ARRAY_SIZE(ids),
						   cfg_topic, cfg, strlen(cfg), NULL, 0), 0);
	}
	/* alone, "a.b" keeps its node; the escaped one left from a collision is stale */
	assert_int_equal(mqtt_ha_node("s1", ids, 1, 0, node, sizeof(node)), 0);
	assert_string_equal(node, "egw_s1_a_b");
	assert_int_equal(mqtt_stale_config("egw", "homeassistant", "s1", ids, 1,
					   "homeassistant/sensor/egw_s1_a_2eb/pv_W/config", cfg,
					   strlen(cfg), NULL, 0), 1);
	assert_int_equal(mqtt_ha_node("s1", ids, 2, 2, node, sizeof(node)), -EINVAL);
}

static void test_mqtt_state_json(void **state)
{
	struct reading r;
	json_t *j;
	(void)state;

	reading_clear(&r);
	r.v[RF_PV_W] = -3000;
	r.v[RF_METER_HZ] = 50.01;
	j = mqtt_state_json("inv1", "sunspec", 1700000000123, &r);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "ts_ms")), 1700000000123);
	assert_string_equal(json_string_value(json_object_get(j, "device")), "inv1");
	assert_true(fabs(json_real_value(json_object_get(json_object_get(j, "pv"), "W")) + 3000) < 1e-9);
	assert_null(json_object_get(j, "battery")); /* nothing available: no group */
	json_decref(j);
}

static void set_if(struct ifaddrs *i, struct sockaddr_in *addr, struct sockaddr_in *mask,
		   const char *a, const char *m, unsigned flags, struct ifaddrs *next)
{
	memset(i, 0, sizeof(*i));
	memset(addr, 0, sizeof(*addr));
	memset(mask, 0, sizeof(*mask));
	addr->sin_family = mask->sin_family = AF_INET;
	inet_pton(AF_INET, a, &addr->sin_addr);
	inet_pton(AF_INET, m, &mask->sin_addr);
	i->ifa_name = (char *)"test0";
	i->ifa_flags = flags;
	i->ifa_addr = (struct sockaddr *)addr;
	i->ifa_netmask = (struct sockaddr *)mask;
	i->ifa_next = next;
}

/* hosts=local: which networks a scan of "this gateway's networks" covers.
 * Pure function over an interface list, so no test scans a real LAN. */
static void test_scan_local_networks(void **state)
{
	struct ifaddrs ifs[7];
	struct sockaddr_in addr[7], mask[7];
	char buf[256];
	(void)state;

	set_if(&ifs[0], &addr[0], &mask[0], "127.0.0.1", "255.0.0.0", IFF_UP | IFF_LOOPBACK, &ifs[1]);
	set_if(&ifs[1], &addr[1], &mask[1], "192.168.1.37", "255.255.255.0", IFF_UP, &ifs[2]);
	/* a /16 is narrowed to the /24 around the address */
	set_if(&ifs[2], &addr[2], &mask[2], "10.20.30.40", "255.255.0.0", IFF_UP, &ifs[3]);
	set_if(&ifs[3], &addr[3], &mask[3], "172.16.5.66", "255.255.255.240", IFF_UP, &ifs[4]);
	/* down, point to point, and a repeat of 192.168.1.0/24: left out */
	set_if(&ifs[4], &addr[4], &mask[4], "192.168.9.1", "255.255.255.0", 0, &ifs[5]);
	set_if(&ifs[5], &addr[5], &mask[5], "100.64.0.1", "255.255.255.255", IFF_UP, &ifs[6]);
	set_if(&ifs[6], &addr[6], &mask[6], "192.168.1.200", "255.255.255.0", IFF_UP, NULL);
	assert_int_equal(webui_local_networks(ifs, buf, sizeof(buf)), 3);
	assert_string_equal(buf, "192.168.1.0/24,10.20.30.0/24,172.16.5.64/28");
	/* only loopback: nothing to scan */
	ifs[0].ifa_next = NULL;
	assert_int_equal(webui_local_networks(ifs, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	/* a short buffer holds whole entries only */
	ifs[0].ifa_next = &ifs[1];
	assert_int_equal(webui_local_networks(ifs, buf, 20), 1);
	assert_string_equal(buf, "192.168.1.0/24");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_assets_table_sorted_and_typed),
		cmocka_unit_test(test_assets_find),
		cmocka_unit_test(test_assets_etag),
		cmocka_unit_test(test_sse_frames_and_wake),
		cmocka_unit_test(test_sse_rejects_bad_input),
		cmocka_unit_test(test_sse_slow_client_dropped_others_not),
		cmocka_unit_test(test_sse_wraparound),
		cmocka_unit_test(test_mqtt_discovery_payloads),
		cmocka_unit_test(test_mqtt_stale_config),
		cmocka_unit_test(test_mqtt_ha_node),
		cmocka_unit_test(test_mqtt_state_json),
		cmocka_unit_test(test_scan_local_networks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
