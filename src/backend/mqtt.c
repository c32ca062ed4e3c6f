/* MQTT publishing with Home Assistant discovery (see mqtt.h). */
#include "backend/mqtt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egw-config.h"
#include "base/err.h"
#include "base/json.h"
#include "base/util.h"
#include "loop/loop.h"
#include "sched/sched.h"
#include "loop/resolve.h"
#include "profiles/profile.h"

/* ---- payloads (pure) ---------------------------------------------------- */

struct ha_unit {
	const char *unit;         /* reading_fields[].unit */
	const char *device_class; /* Home Assistant sensor device class */
	const char *ha_unit;      /* unit_of_measurement */
	const char *state_class;
	double mul;    /* shown value = value * mul */
	int precision; /* suggested_display_precision when the profile says nothing */
};

static const struct ha_unit ha_units[] = {
	{ "W", "power", "W", "measurement", 1, 0 },
	{ "VA", "apparent_power", "VA", "measurement", 1, 0 },
	{ "var", "reactive_power", "var", "measurement", 1, 0 },
	{ "PF", "power_factor", "%", "measurement", 100, 0 },
	{ "V", "voltage", "V", "measurement", 1, 1 },
	{ "A", "current", "A", "measurement", 1, 2 },
	{ "Hz", "frequency", "Hz", "measurement", 1, 2 },
	{ "C", "temperature",
	  "\xc2\xb0"
	  "C",
	  "measurement", 1, 1 },
	{ "Wh", "energy", "Wh", "total_increasing", 1, 0 },
	{ "fraction", "battery", "%", "measurement", 100, 0 },
	{ "m3", "gas", "m\xc2\xb3", "total_increasing", 1, 3 },
};

/* What Home Assistant shows for each field: the entity's own name (HA puts
 * the device name in front), and whether it is a constant of the device
 * (a diagnostic entity without statistics). */
static const struct {
	const char *name;
	bool constant;
	const char *device_class; /* instead of the unit's (m3: gas or water) */
	bool no_class;            /* no device class fits (state of health) */
} ha_fields[RF_COUNT] = {
	[RF_PV_W] = { "PV power" },
	[RF_PV_RATED_POWER_W] = { "Rated power", true },
	[RF_PV_MPPT1_V] = { "PV string 1 voltage" },
	[RF_PV_MPPT1_A] = { "PV string 1 current" },
	[RF_PV_MPPT2_V] = { "PV string 2 voltage" },
	[RF_PV_MPPT2_A] = { "PV string 2 current" },
	[RF_PV_HEATSINK_C] = { "Inverter temperature" },
	[RF_PV_TOTAL_GENERATION_WH] = { "PV energy generated" },
	[RF_BATTERY_W] = { "Battery power" },
	[RF_BATTERY_A] = { "Battery current" },
	[RF_BATTERY_V] = { "Battery voltage" },
	[RF_BATTERY_SOC_NOM_FRACT] = { "Battery state of charge" },
	[RF_BATTERY_HEATSINK_C] = { "Battery temperature" },
	[RF_BATTERY_TOTAL_CHARGE_WH] = { "Battery energy charged" },
	[RF_BATTERY_TOTAL_DISCHARGE_WH] = { "Battery energy discharged" },
	[RF_METER_W] = { "Grid power" },
	[RF_METER_HZ] = { "Grid frequency" },
	[RF_METER_L1_V] = { "Grid L1 voltage" },
	[RF_METER_L1_A] = { "Grid L1 current" },
	[RF_METER_L1_W] = { "Grid L1 power" },
	[RF_METER_L2_V] = { "Grid L2 voltage" },
	[RF_METER_L2_A] = { "Grid L2 current" },
	[RF_METER_L2_W] = { "Grid L2 power" },
	[RF_METER_L3_V] = { "Grid L3 voltage" },
	[RF_METER_L3_A] = { "Grid L3 current" },
	[RF_METER_L3_W] = { "Grid L3 power" },
	[RF_METER_TOTAL_IMPORT_WH] = { "Grid energy imported" },
	[RF_METER_TOTAL_EXPORT_WH] = { "Grid energy exported" },
	[RF_INVERTER_W] = { "Inverter AC power" },
	[RF_GAS_TOTAL_M3] = { "Gas consumed" },
	[RF_WATER_TOTAL_M3] = { "Water consumed", false, "water" },
	[RF_PV_MPPT1_W] = { "PV string 1 power" },
	[RF_PV_MPPT2_W] = { "PV string 2 power" },
	/* a percentage, not a charge level: HA's "battery" class would show it
	 * as one */
	[RF_BATTERY_SOH_FRACT] = { "Battery state of health", false, NULL, true },
	[RF_INVERTER_VA] = { "Inverter apparent power" },
	[RF_INVERTER_VAR] = { "Inverter reactive power" },
	[RF_INVERTER_PF] = { "Inverter power factor" },
	[RF_INVERTER_A] = { "Inverter AC current" },
	[RF_INVERTER_L1_V] = { "Inverter L1 voltage" },
	[RF_INVERTER_L1_A] = { "Inverter L1 current" },
	[RF_INVERTER_L1_W] = { "Inverter L1 power" },
	[RF_INVERTER_L2_V] = { "Inverter L2 voltage" },
	[RF_INVERTER_L2_A] = { "Inverter L2 current" },
	[RF_INVERTER_L2_W] = { "Inverter L2 power" },
	[RF_INVERTER_L3_V] = { "Inverter L3 voltage" },
	[RF_INVERTER_L3_A] = { "Inverter L3 current" },
	[RF_INVERTER_L3_W] = { "Inverter L3 power" },
	/* energy, total_increasing: Home Assistant takes the midnight reset
	 * of a total_increasing sensor as a new cycle */
	[RF_PV_DAILY_GENERATION_WH] = { "PV energy today" },
};

const char *mqtt_field_name(enum reading_field f)
{
	return (unsigned)f < RF_COUNT ? ha_fields[f].name : NULL;
}

static const struct ha_unit *ha_unit_of(const char *unit)
{
	for (size_t i = 0; i < ARRAY_SIZE(ha_units); i++)
		if (strcmp(ha_units[i].unit, unit) == 0)
			return &ha_units[i];
	return NULL;
}

/* Digits worth showing: from the finest integer register the profile maps
 * to f (raw step * scale * mul, in the unit HA shows).  A float register
 * carries no resolution, so the unit's default stands. */
static int precision_of(const struct profile *p, enum reading_field f, const struct ha_unit *u)
{
	double step = 0;

	for (unsigned k = 0; p && k < p->nregs; k++) {
		const struct reg_def *rd = &p->regs[k];
		double s;
		if (rd->field != (int)f || rd->type == REG_F32 || !(rd->scale > 0))
			continue;
		s = rd->scale * fabs(rd->mul) * u->mul;
		if (s > 0 && (step == 0 || s < step))
			step = s;
	}
	if (step == 0)
		return u->precision;
	if (step >= 1)
		return 0;
	int d = (int)ceil(-log10(step) - 1e-9);
	return d > 3 ? 3 : d;
}

/* A topic level: no wildcards, no separators, not empty. */
static bool topic_level_ok(const char *s)
{
	return s && *s && !strpbrk(s, "/+#") && strlen(s) < 64;
}

/* Prefixes may hold '/' (several levels) but no wildcard. */
static bool prefix_ok(const char *s)
{
	return s && *s && !strpbrk(s, "+#") && strlen(s) < 64 && s[0] != '/' &&
		s[strlen(s) - 1] != '/';
}

/* Home Assistant ids: [a-zA-Z0-9_-] only. */
static void ha_id(char *out, size_t len, const char *a, const char *b)
{
	size_t n = 0;
	const char *parts[] = { "egw_", a, "_", b };

	for (size_t i = 0; i < ARRAY_SIZE(parts); i++)
		for (const char *p = parts[i]; *p && n + 1 < len; p++) {
			char c = *p;
			bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				(c >= '0' && c <= '9') || c == '_' || c == '-';
			out[n++] = ok ? c : '_';
		}
	out[n] = 0;
}

/* An id with '.' escaped so no other id can give the same text: '_' and '.'
 * become "_5f" and "_2e" (every other id character is kept). */
static void ha_escaped(char *out, size_t len, const char *serial, const char *id)
{
	char esc[3 * 64 + 1];
	size_t n = 0;

	for (const char *p = id; *p && n + 4 < sizeof(esc); p++) {
		if (*p == '.' || *p == '_') {
			memcpy(esc + n, *p == '.' ? "_2e" : "_5f", 3);
			n += 3;
		} else {
			esc[n++] = *p;
		}
	}
	esc[n] = 0;
	ha_id(out, len, serial, esc);
}

/* Would ids a and b give the same node id by ha_id ('.' read as '_')? */
static bool ha_same(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (*a != *b && !((*a == '.' || *a == '_') && (*b == '.' || *b == '_')))
			return false;
	return *a == *b;
}

/* The nodes of all of ids[0..n) (n <= MQTT_MAX_DEVICES): see mqtt_ha_node. */
static void ha_nodes(const char *serial, const char *const *ids, unsigned n, char (*name)[128])
{
	for (unsigned k = 0; k < n; k++) {
		bool clash = false;

		for (unsigned j = 0; j < n && strchr(ids[k], '.'); j++)
			if (j != k && strcmp(ids[j], ids[k]) != 0 && ha_same(ids[j], ids[k]))
				clash = true;
		if (clash)
			ha_escaped(name[k], 128, serial, ids[k]);
		else
			ha_id(name[k], 128, serial, ids[k]);
		/* Only an id chosen to look like another's escape gets here. */
		char base[128];
		memcpy(base, name[k], sizeof(base));
		for (unsigned j = 0, sfx = 2; j < k;) {
			if (strcmp(name[j], name[k]) != 0) {
				j++;
				continue;
			}
			snprintf(name[k], 128, "%.116s_%u", base, sfx++);
			j = 0;
		}
	}
}

int mqtt_ha_node(const char *serial, const char *const *ids, unsigned n, unsigned i, char *out,
		 size_t len)
{
	char name[MQTT_MAX_DEVICES][128];

	if (i >= n || n > MQTT_MAX_DEVICES || len < sizeof(name[0]))
		return -EINVAL;
	ha_nodes(serial, ids, n, name);
	snprintf(out, len, "%s", name[i]);
	return 0;
}

/* The node of device `id` among ids (plain ha_id when it is not one of them). */
static void ha_node_in(const char *serial, const char *const *ids, unsigned n, const char *id,
		       char *out, size_t len)
{
	char name[MQTT_MAX_DEVICES][128];

	if (n <= MQTT_MAX_DEVICES)
		for (unsigned i = 0; i < n; i++)
			if (strcmp(ids[i], id) == 0) {
				ha_nodes(serial, ids, n, name);
				snprintf(out, len, "%s", name[i]);
				return;
			}
	ha_id(out, len, serial, id);
}

/* The gateway's node id, "egw_<serial>" (also its HA device identifier). */
static void gw_node(char *out, size_t len, const char *serial)
{
	ha_id(out, len, serial, "");
	if (*out)
		out[strlen(out) - 1] = 0; /* the separator ha_id put before "" */
}

json_t *mqtt_state_json(const char *device_id, const char *profile, int64_t ts_ms,
			const struct reading *r)
{
	json_t *j = reading_to_json(r);

	if (!j)
		return NULL;
	if (json_object_set_new(j, "ts_ms", json_integer(ts_ms)) < 0 ||
	    json_object_set_new(j, "device", json_string(device_id)) < 0 ||
	    json_object_set_new(j, "profile", json_string(profile ? profile : "")) < 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* Sets key to a string when there is one. */
static int set_opt(json_t *o, const char *key, const char *v)
{
	return v && *v ? json_object_set_new(o, key, json_string(v)) : 0;
}

int mqtt_discovery(const char *topic_prefix, const char *discovery_prefix,
		   const struct mqtt_gateway *gw, const struct mqtt_device *dev,
		   enum reading_field f, char *ret_topic, size_t topic_len, json_t **ret_config)
{
	const struct reading_field_info *fi;
	const struct ha_unit *u;
	char node[128], uid[192], object[64], tmpl[160], entity_id[200], via[96];
	char state_topic[MQTT_TOPIC_MAX], avail_topic[MQTT_TOPIC_MAX], status_topic[MQTT_TOPIC_MAX];
	json_t *cfg, *device;
	int n, r = 0;

	if ((unsigned)f >= RF_COUNT || !prefix_ok(topic_prefix) || !prefix_ok(discovery_prefix) ||
	    !gw || !dev || !topic_level_ok(gw->serial) || !topic_level_ok(dev->id))
		return -EINVAL;
	fi = &reading_fields[f];
	u = ha_unit_of(fi->unit);
	if (!u || !ha_fields[f].name) /* a field this table does not know yet */
		return -EINVAL;
	if (dev->node)
		snprintf(node, sizeof(node), "%s", dev->node);
	else
		ha_id(node, sizeof(node), gw->serial, dev->id);
	gw_node(via, sizeof(via), gw->serial);
	snprintf(object, sizeof(object), "%s_%s", fi->group, fi->name);
	snprintf(uid, sizeof(uid), "%s_%s", node, object);
	n = snprintf(entity_id, sizeof(entity_id), "sensor.%s", uid);
	for (int i = 0; i < n && entity_id[i]; i++)
		entity_id[i] = (char)(entity_id[i] >= 'A' && entity_id[i] <= 'Z' ? entity_id[i] + 32
										 : entity_id[i]);
	if (u->mul != 1)
		snprintf(tmpl, sizeof(tmpl), "{{ (value_json.%s.%s * %g) | round(%d) }}", fi->group,
			 fi->name, u->mul, precision_of(dev->profile, f, u) + 1);
	else
		snprintf(tmpl, sizeof(tmpl), "{{ value_json.%s.%s }}", fi->group, fi->name);
	snprintf(state_topic, sizeof(state_topic), "%s/%s/%s/state", topic_prefix, gw->serial,
		 dev->id);
	snprintf(avail_topic, sizeof(avail_topic), "%s/%s/%s/availability", topic_prefix,
		 gw->serial, dev->id);
	snprintf(status_topic, sizeof(status_topic), "%s/%s/status", topic_prefix, gw->serial);
	n = snprintf(ret_topic, topic_len, "%s/sensor/%s/%s/config", discovery_prefix, node,
		     object);
	if (n < 0 || (size_t)n >= topic_len)
		return -EINVAL;

	device = json_pack("{s:[s], s:s, s:s}", "identifiers", node, "name",
			   dev->name && *dev->name ? dev->name : dev->id, "via_device", via);
	if (!device)
		return -ENOMEM;
	r |= set_opt(device, "manufacturer", dev->manufacturer);
	r |= set_opt(device, "model", dev->model);
	r |= set_opt(device, "serial_number", dev->serial);
	r |= set_opt(device, "configuration_url", gw->url);
	cfg = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s,"
			" s:[{s:s},{s:s}], s:s, s:i, s:o}",
			"name", ha_fields[f].name, "unique_id", uid, "default_entity_id", entity_id,
			"state_topic", state_topic, "value_template", tmpl, "unit_of_measurement",
			u->ha_unit, "device_class",
			ha_fields[f].device_class ? ha_fields[f].device_class : u->device_class,
			"availability", "topic", status_topic, "topic", avail_topic,
			"availability_mode", "all", "suggested_display_precision",
			precision_of(dev->profile, f, u), "device", device);
	if (!cfg)
		return -ENOMEM;
	if (ha_fields[f].no_class)
		json_object_del(cfg, "device_class");
	if (ha_fields[f].constant)
		r |= set_opt(cfg, "entity_category", "diagnostic");
	else
		r |= set_opt(cfg, "state_class", u->state_class);
	if (r) {
		json_decref(cfg);
		return -ENOMEM;
	}
	*ret_config = cfg;
	return 0;
}

int mqtt_gateway_discovery(const char *topic_prefix, const char *discovery_prefix,
			   const struct mqtt_gateway *gw, char *ret_topic, size_t topic_len,
			   json_t **ret_config)
{
	char node[96], uid[128], entity_id[140], name[96], status_topic[MQTT_TOPIC_MAX];
	json_t *cfg, *device;
	int n, r = 0;

	if (!gw || !prefix_ok(topic_prefix) || !prefix_ok(discovery_prefix) ||
	    !topic_level_ok(gw->serial))
		return -EINVAL;
	gw_node(node, sizeof(node), gw->serial);
	snprintf(uid, sizeof(uid), "%s_status", node);
	n = snprintf(entity_id, sizeof(entity_id), "binary_sensor.%s", uid);
	for (int i = 0; i < n && entity_id[i]; i++)
		entity_id[i] = (char)(entity_id[i] >= 'A' && entity_id[i] <= 'Z' ? entity_id[i] + 32
										 : entity_id[i]);
	snprintf(name, sizeof(name), "egw gateway %.60s", gw->serial);
	snprintf(status_topic, sizeof(status_topic), "%s/%s/status", topic_prefix, gw->serial);
	n = snprintf(ret_topic, topic_len, "%s/binary_sensor/%s/status/config", discovery_prefix,
		     node);
	if (n < 0 || (size_t)n >= topic_len)
		return -EINVAL;
	device = json_pack("{s:[s], s:s, s:s, s:s, s:s}", "identifiers", node, "name", name,
			   "manufacturer", "egw", "model", "egw energy gateway", "serial_number",
			   gw->serial);
	if (!device)
		return -ENOMEM;
	r |= set_opt(device, "sw_version", gw->sw_version);
	r |= set_opt(device, "configuration_url", gw->url);
	cfg = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "name", "Status",
			"unique_id", uid, "default_entity_id", entity_id, "state_topic",
			status_topic, "payload_on", "online", "payload_off", "offline",
			"device_class", "connectivity", "entity_category", "diagnostic", "device",
			device);
	if (!cfg || r) {
		json_decref(cfg);
		return -ENOMEM;
	}
	*ret_config = cfg;
	return 0;
}

static bool in_ids(const char *const *ids, unsigned n, const char *serial, const char *node,
		   const char *id)
{
	char name[MQTT_MAX_DEVICES][128];

	if (node && n <= MQTT_MAX_DEVICES)
		ha_nodes(serial, ids, n, name);
	for (unsigned i = 0; i < n; i++) {
		if (id && strcmp(ids[i], id) == 0)
			return true;
		if (node && n <= MQTT_MAX_DEVICES && strcmp(name[i], node) == 0)
			return true;
	}
	return false;
}

int mqtt_stale_config(const char *topic_prefix, const char *discovery_prefix, const char *serial,
		      const char *const *ids, unsigned n, const char *topic, const void *payload,
		      size_t len, char *ret_avail, size_t avail_len)
{
	char mine[128], node[128], own[MQTT_TOPIC_MAX], id[64];
	const char *rest, *slash;
	size_t dl = strlen(discovery_prefix), ol;
	json_t *cfg, *a;
	size_t i;

	if (len == 0 || !topic || strncmp(topic, discovery_prefix, dl) != 0 ||
	    strncmp(topic + dl, "/sensor/", 8) != 0)
		return 0;
	rest = topic + dl + 8;
	slash = strchr(rest, '/');
	if (!slash || (size_t)(slash - rest) >= sizeof(node) ||
	    strcmp(strchr(slash + 1, '/') ? strchr(slash + 1, '/') : "", "/config") != 0)
		return 0;
	memcpy(node, rest, (size_t)(slash - rest));
	node[slash - rest] = 0;
	ha_id(mine, sizeof(mine), serial, "");
	if (strncmp(node, mine, strlen(mine)) != 0 || in_ids(ids, n, serial, node, NULL))
		return 0;

	/* The device's availability topic, from the config itself (the node id
	 * may not give the device id back: '.' became '_').  Only a topic of
	 * this gateway, for a device that is not current. */
	if (avail_len)
		ret_avail[0] = 0;
	snprintf(own, sizeof(own), "%s/%s/", topic_prefix, serial);
	ol = strlen(own);
	cfg = json_loadb(payload, len, 0, NULL);
	json_array_foreach (json_object_get(cfg, "availability"), i, a) {
		const char *t = json_string_value(json_object_get(a, "topic"));
		size_t tl = t ? strlen(t) : 0, il;
		if (tl <= ol + 13 || strncmp(t, own, ol) != 0 ||
		    strcmp(t + tl - 13, "/availability") != 0)
			continue;
		il = tl - ol - 13;
		if (il >= sizeof(id))
			continue;
		memcpy(id, t + ol, il);
		id[il] = 0;
		if (!topic_level_ok(id) || in_ids(ids, n, serial, NULL, id))
			continue;
		if (avail_len)
			snprintf(ret_avail, avail_len, "%s", t);
		break;
	}
	json_decref(cfg);
	return 1;
}

#if EGW_HAVE_MQTT
#include <arpa/inet.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "backend/mqtt_link.h"

/* ---- FIFO ---------------------------------------------------------------- */

struct mqtt_msg {
	char *topic;
	char *payload;
	size_t len;
	int qos;
	bool retain;
};

struct mqtt_dev {
	char id[64];
	uint64_t announced; /* bit per reading_field: discovery queued since connect */
	bool online_sent;
	char shown[192]; /* name and serial announced: a change announces again */
};

_Static_assert(RF_COUNT <= 64, "announced mask is 64 bits");

struct mqtt {
	struct loop *loop;
	struct mosquitto *mosq;
	struct loop_io io;
	struct task tick;
	char serial[64];
	char prefix[64];
	char disc[64];
	char status_topic[MQTT_TOPIC_MAX];
	usec_t retry_at;
	usec_t backoff;
	bool connected; /* CONNACK accepted */
	/* where to connect; a host name is looked up on the loop's worker pool */
	char host[256];
	int port, keepalive;
	bool tls;
	struct loop_resolve *res; /* lookup in flight */
	unsigned tries;           /* connects since the last success: picks the address */
	bool refused;             /* the broker refused this attempt's CONNECT */
	char detail[160];         /* libmosquitto's last error line (OpenSSL's reason) */
	struct mqtt_msg *q;       /* ring of MQTT_QUEUE_MAX */
	unsigned q_head, q_n;
	size_t q_bytes;
	struct mqtt_dev devs[MQTT_MAX_DEVICES];
	unsigned ndevs;
	char cur[MQTT_MAX_DEVICES][64]; /* the devices that exist (mqtt_set_devices) */
	unsigned ncur;
	bool cur_known;           /* set once: until then nothing is deleted */
	char sub[MQTT_TOPIC_MAX]; /* <disc>/sensor/+/+/config */
	char version[32];
	int ui_port;
	char url[96];              /* configuration_url, "" until connected */
	char gone[MQTT_TOPIC_MAX]; /* the last stale availability marked offline */
	struct mqtt_stats st;
};

#define MQTT_BACKOFF_MIN (1 * USEC_PER_SEC)
#define MQTT_BACKOFF_MAX (10 * USEC_PER_SEC)

static void msg_free(struct mqtt_msg *msg)
{
	free(msg->topic);
	free(msg->payload);
	*msg = (struct mqtt_msg){ 0 };
}

static void q_pop(struct mqtt *m)
{
	struct mqtt_msg *msg = &m->q[m->q_head];

	m->q_bytes -= msg->len;
	msg_free(msg);
	m->q_head = (m->q_head + 1) % MQTT_QUEUE_MAX;
	m->q_n--;
}

static void flush(struct mqtt *m);
static void sync_io(struct mqtt *m);

/* Takes ownership of topic and payload. */
static int q_push(struct mqtt *m, char *topic, char *payload, size_t len, int qos, bool retain)
{
	if (!topic || !payload) {
		free(topic);
		free(payload);
		return -ENOMEM;
	}
	while (m->q_n > 0 && (m->q_n == MQTT_QUEUE_MAX || m->q_bytes + len > MQTT_QUEUE_BYTES)) {
		q_pop(m);
		m->st.dropped++;
	}
	m->q[(m->q_head + m->q_n) % MQTT_QUEUE_MAX] = (struct mqtt_msg){
		.topic = topic,
		.payload = payload,
		.len = len,
		.qos = qos,
		.retain = retain,
	};
	m->q_n++;
	m->q_bytes += len;
	m->st.queued++;
	return 0;
}

static int q_push_str(struct mqtt *m, const char *topic, const char *text, int qos, bool retain)
{
	return q_push(m, strdup(topic), strdup(text), strlen(text), qos, retain);
}

static int q_push_json(struct mqtt *m, const char *topic, json_t *j, bool retain)
{
	char *s;

	if (!j)
		return -ENOMEM;
	s = egw_json_dumps(j, JSON_COMPACT | READING_JSON_REALS);
	json_decref(j);
	if (!s)
		return -ENOMEM;
	return q_push(m, strdup(topic), s, strlen(s), 1, retain);
}

/* ---- connection ---------------------------------------------------------- */

static void flush(struct mqtt *m)
{
	while (m->connected && m->q_n > 0 && m->st.inflight < MQTT_INFLIGHT) {
		struct mqtt_msg *msg = &m->q[m->q_head];
		int mid, rc;

		rc = mosquitto_publish(m->mosq, &mid, msg->topic, (int)msg->len, msg->payload,
				       msg->qos, msg->retain);
		if (rc != MOSQ_ERR_SUCCESS)
			break;
		m->st.published++;
		if (msg->qos > 0)
			m->st.inflight++;
		q_pop(m);
	}
}

/* libmosquitto reports OpenSSL's reason for a TLS failure ("certificate
 * verify failed") only through its log: keep the last error line. */
static void on_log(struct mosquitto *mosq, void *ud, int level, const char *text)
{
	struct mqtt *m = ud;
	(void)mosq;

	if (level == MOSQ_LOG_ERR && text)
		snprintf(m->detail, sizeof(m->detail), "%s", text);
}

static void gateway(const struct mqtt *m, struct mqtt_gateway *ret)
{
	*ret = (struct mqtt_gateway){
		.serial = m->serial,
		.sw_version = m->version[0] ? m->version : NULL,
		.url = m->url[0] ? m->url : NULL,
	};
}

/* The web UI as the broker's side of the link sees us: the address our end
 * of the connection has (the LAN address, where Home Assistant can reach us
 * too when it runs on or next to the broker). */
static void find_url(struct mqtt *m)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char text[INET6_ADDRSTRLEN];
	int fd = mosquitto_socket(m->mosq);

	m->url[0] = 0;
	if (m->ui_port <= 0 || fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET &&
	    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, text, sizeof(text)))
		snprintf(m->url, sizeof(m->url), "http://%s:%d/", text, m->ui_port);
	else if (ss.ss_family == AF_INET6 &&
		 inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, text, sizeof(text)))
		snprintf(m->url, sizeof(m->url), "http://[%s]:%d/", text, m->ui_port);
}

static void on_connect(struct mosquitto *mosq, void *ud, int rc)
{
	struct mqtt *m = ud;
	(void)mosq;

	if (rc != 0) {
		/* refused (bad credentials, ...): the broker closes, we back off */
		m->st.last_error = mosquitto_connack_string(rc);
		m->refused = true;
		return;
	}
	m->st.last_error = NULL;
	m->connected = true;
	m->st.connected = true;
	m->tries = 0;
	m->st.connects++;
	m->backoff = 0;
	for (unsigned i = 0; i < m->ndevs; i++) {
		m->devs[i].announced = 0;
		m->devs[i].online_sent = false;
	}
	find_url(m);
	/* The status goes straight out, ahead of the backlog. */
	if (mosquitto_publish(m->mosq, NULL, m->status_topic, 6, "online", 1, true) ==
	    MOSQ_ERR_SUCCESS)
		m->st.inflight++;
	/* The retained configs on the broker say which devices are announced
	 * (on_message deletes those of devices that no longer exist). */
	m->gone[0] = 0;
	mosquitto_subscribe(m->mosq, NULL, m->sub, 0);
	{
		struct mqtt_gateway gw;
		char topic[MQTT_TOPIC_MAX];
		json_t *cfg;
		gateway(m, &gw);
		if (mqtt_gateway_discovery(m->prefix, m->disc, &gw, topic, sizeof(topic), &cfg) ==
		    0)
			q_push_json(m, topic, cfg, true);
	}
	flush(m);
}

/* A retained discovery config under <disc>/sensor/: one of ours (node
 * egw_<serial>_..) for a device that does not exist any more is deleted,
 * and that device marked offline (once per node in a row). */
static void on_message(struct mosquitto *mosq, void *ud, const struct mosquitto_message *msg)
{
	struct mqtt *m = ud;
	const char *ids[MQTT_MAX_DEVICES];
	char avail[MQTT_TOPIC_MAX];
	(void)mosq;

	if (!m->cur_known || msg->payloadlen <= 0 || !msg->topic)
		return;
	for (unsigned i = 0; i < m->ncur; i++)
		ids[i] = m->cur[i];
	if (mqtt_stale_config(m->prefix, m->disc, m->serial, ids, m->ncur, msg->topic, msg->payload,
			      (size_t)msg->payloadlen, avail, sizeof(avail)) != 1)
		return;
	q_push_str(m, msg->topic, "", 1, true);
	if (avail[0] && strcmp(avail, m->gone) != 0) {
		snprintf(m->gone, sizeof(m->gone), "%s", avail);
		q_push_str(m, avail, "offline", 1, true);
	}
	m->st.removed++;
	flush(m); /* on_io follows the socket after this callback */
}

static void on_disconnect(struct mosquitto *mosq, void *ud, int rc)
{
	struct mqtt *m = ud;
	(void)mosq;
	(void)rc;

	if (m->connected)
		m->st.disconnects++;
	m->connected = false;
	m->st.connected = false;
}

static void on_publish(struct mosquitto *mosq, void *ud, int mid)
{
	struct mqtt *m = ud;
	(void)mosq;
	(void)mid;

	m->st.acked++;
	if (m->st.inflight > 0)
		m->st.inflight--;
	flush(m);
}

static void lost(struct mqtt *m)
{
	loop_io_del(m->loop, &m->io);
	if (m->connected)
		m->st.disconnects++;
	m->connected = false;
	m->st.connected = false;
	m->backoff = sched_backoff_next(m->backoff, MQTT_BACKOFF_MIN, MQTT_BACKOFF_MAX);
	m->retry_at = loop_now(m->loop) + m->backoff;
}

static void on_io(struct loop_io *io, uint32_t events)
{
	struct mqtt *m = container_of(io, struct mqtt, io);
	int rc = MOSQ_ERR_SUCCESS;

	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		rc = mosquitto_loop_read(m->mosq, 16);
	if (rc == MOSQ_ERR_SUCCESS && (events & EPOLLOUT))
		rc = mosquitto_loop_write(m->mosq, 16);
	if (rc != MOSQ_ERR_SUCCESS) {
		if (!m->refused) /* the CONNACK's reason says more than the close after it */
			m->st.last_error = mqtt_link_error(rc, m->detail);
		lost(m);
		return;
	}
	sync_io(m);
}

/* Follow libmosquitto's socket: it may have closed it, or want to write. */
static void sync_io(struct mqtt *m)
{
	int r = mqtt_link_watch(m->loop, &m->io, m->mosq, on_io);

	if (r == -ENOTCONN ? m->io.added || m->connected : r < 0)
		lost(m);
}

/* libmosquitto resolves the broker's name with a blocking getaddrinfo.  So
 * that a slow or absent DNS never stalls the loop, a name is first looked up
 * on the worker pool (loop/resolve.h): without TLS egwd then connects to the
 * address found; with TLS it passes the name (certificate check and SNI need
 * it), which the resolver has just answered. */
static void connect_to(struct mqtt *m, const char *host)
{
	const char *why;

	loop_io_del(m->loop, &m->io);
	m->refused = false;
	m->detail[0] = 0;
	why = mqtt_link_connect(m->mosq, host, m->port, m->keepalive);
	if (why) {
		m->st.last_error = why;
		lost(m);
		return;
	}
	sync_io(m);
}

static void resolved(void *ud, int err, const struct loop_resolved *res)
{
	struct mqtt *m = ud;
	char host[sizeof(m->host)];

	m->res = NULL;
	if (err)
		m->st.last_error = egw_strerror(err);
	if (err || mqtt_link_host(res, m->host, m->tls, &m->tries, host, sizeof(host)) < 0)
		lost(m);
	else
		connect_to(m, host);
}

static void start_connect(struct mqtt *m)
{
	if (mqtt_link_is_address(m->host)) {
		connect_to(m, m->host);
		return;
	}
	/* The tick retries after this if the lookup never completes. */
	m->retry_at = loop_now(m->loop) + MQTT_BACKOFF_MAX;
	if (!m->res)
		m->res = loop_resolve_start(m->loop, m->host, m->port, resolved, m);
}

static int on_tick(struct task *t, usec_t now)
{
	struct mqtt *m = container_of(t, struct mqtt, tick);

	if (m->io.added) {
		if (mosquitto_loop_misc(m->mosq) != MOSQ_ERR_SUCCESS) {
			lost(m);
			return 0;
		}
		flush(m);
		sync_io(m);
		return 0;
	}
	if (now < m->retry_at || m->res)
		return 0;
	start_connect(m);
	return 0;
}

int mqtt_new(struct loop *l, const struct mqtt_config *cfg, const char *serial, struct mqtt **ret)
{
	const char *prefix = cfg->topic_prefix && *cfg->topic_prefix ? cfg->topic_prefix : "egw";
	const char *disc = cfg->discovery_prefix && *cfg->discovery_prefix ? cfg->discovery_prefix
									   : "homeassistant";
	int port = cfg->port > 0 ? cfg->port : (cfg->tls ? 8883 : 1883);
	char client_id[96];
	struct mqtt *m;
	int r = -ENOMEM;

	if (!cfg->host || !*cfg->host || port > 65535 || !prefix_ok(prefix) || !prefix_ok(disc) ||
	    !topic_level_ok(serial))
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->q = calloc(MQTT_QUEUE_MAX, sizeof(m->q[0]));
	if (!m->q)
		goto err_m;
	m->loop = l;
	m->io.fd = -1;
	snprintf(m->serial, sizeof(m->serial), "%s", serial);
	snprintf(m->prefix, sizeof(m->prefix), "%s", prefix);
	snprintf(m->disc, sizeof(m->disc), "%s", disc);
	snprintf(m->status_topic, sizeof(m->status_topic), "%s/%s/status", prefix, serial);
	snprintf(m->sub, sizeof(m->sub), "%s/sensor/+/+/config", disc);
	snprintf(m->version, sizeof(m->version), "%s", cfg->sw_version ? cfg->sw_version : "");
	m->ui_port = cfg->ui_port;
	snprintf(client_id, sizeof(client_id), "%s",
		 cfg->client_id && *cfg->client_id ? cfg->client_id : "");
	if (!*client_id)
		snprintf(client_id, sizeof(client_id), "egw-%s", serial);

	mosquitto_lib_init();
	m->mosq = mosquitto_new(client_id, true, m);
	if (!m->mosq)
		goto err_q;
	r = -EINVAL;
	mosquitto_int_option(m->mosq, MOSQ_OPT_SEND_MAXIMUM, MQTT_INFLIGHT);
	mosquitto_connect_callback_set(m->mosq, on_connect);
	mosquitto_disconnect_callback_set(m->mosq, on_disconnect);
	mosquitto_publish_callback_set(m->mosq, on_publish);
	mosquitto_log_callback_set(m->mosq, on_log);
	mosquitto_message_callback_set(m->mosq, on_message);
	if (mosquitto_will_set(m->mosq, m->status_topic, 7, "offline", 1, true) != MOSQ_ERR_SUCCESS)
		goto err_mosq;
	if (cfg->username && *cfg->username &&
	    mosquitto_username_pw_set(m->mosq, cfg->username, cfg->password) != MOSQ_ERR_SUCCESS)
		goto err_mosq;
	/* A broker on the LAN often has a certificate of its own CA (ca_file);
	 * either way the certificate and the broker's name are checked. */
	if (cfg->tls &&
	    mosquitto_tls_set(m->mosq, cfg->ca_file && *cfg->ca_file ? cfg->ca_file : NULL,
			      cfg->ca_file && *cfg->ca_file ? NULL : "/etc/ssl/certs", NULL, NULL,
			      NULL) != MOSQ_ERR_SUCCESS)
		goto err_mosq;

	m->tick =
		(struct task){ .name = "mqtt", .run = on_tick, .period = USEC_PER_SEC, .prio = 5 };
	r = loop_task_add(l, &m->tick, loop_now(l) + USEC_PER_SEC);
	if (r < 0)
		goto err_mosq;
	snprintf(m->host, sizeof(m->host), "%s", cfg->host);
	m->port = port;
	m->keepalive = cfg->keepalive_s > 0 ? cfg->keepalive_s : 30;
	m->tls = cfg->tls;
	start_connect(m); /* failures are retried by the tick */
	*ret = m;
	return 0;

err_mosq:
	mosquitto_destroy(m->mosq);
	mosquitto_lib_cleanup();
err_q:
	free(m->q);
err_m:
	free(m);
	return r;
}

void mqtt_free(struct mqtt *m)
{
	if (!m)
		return;
	loop_task_cancel(m->loop, &m->tick);
	loop_resolve_cancel(m->res); /* the lookup frees itself when it completes */
	if (m->connected) {
		mosquitto_publish(m->mosq, NULL, m->status_topic, 7, "offline", 1, true);
		mosquitto_disconnect(m->mosq);
	}
	loop_io_del(m->loop, &m->io);
	mosquitto_destroy(m->mosq);
	mosquitto_lib_cleanup();
	while (m->q_n > 0)
		q_pop(m);
	free(m->q);
	free(m);
}

static struct mqtt_dev *dev_get(struct mqtt *m, const char *id)
{
	for (unsigned i = 0; i < m->ndevs; i++)
		if (strcmp(m->devs[i].id, id) == 0)
			return &m->devs[i];
	if (m->ndevs == MQTT_MAX_DEVICES || strlen(id) >= sizeof(m->devs[0].id))
		return NULL;
	snprintf(m->devs[m->ndevs].id, sizeof(m->devs[0].id), "%s", id);
	return &m->devs[m->ndevs++];
}

static int avail_push(struct mqtt *m, const char *device_id, bool online)
{
	char topic[MQTT_TOPIC_MAX];

	snprintf(topic, sizeof(topic), "%s/%s/%.63s/availability", m->prefix, m->serial, device_id);
	return q_push_str(m, topic, online ? "online" : "offline", 1, true);
}

int mqtt_publish_reading(struct mqtt *m, const struct mqtt_device *dev, int64_t ts_ms,
			 const struct reading *r)
{
	const char *device_id = dev->id;
	const char *profile = dev->profile ? dev->profile->name : NULL;
	char topic[MQTT_TOPIC_MAX];
	struct mqtt_gateway gw;
	struct mqtt_dev *d;
	int ret;

	if (!topic_level_ok(device_id))
		return -EINVAL;
	gateway(m, &gw);
	d = dev_get(m, device_id);
	if (!d)
		return -EINVAL;
	/* A new name (settings) or serial (a replaced unit) reaches HA's device. */
	char shown[sizeof(d->shown)];
	snprintf(shown, sizeof(shown), "%.95s|%.63s", dev->name ? dev->name : "",
		 dev->serial ? dev->serial : "");
	if (strcmp(shown, d->shown) != 0) {
		memcpy(d->shown, shown, sizeof(shown));
		d->announced = 0;
	}
	/* Its HA node among the current devices, so two ids never share one. */
	const char *cur[MQTT_MAX_DEVICES];
	char node[128];
	struct mqtt_device named = *dev;
	for (unsigned i = 0; i < m->ncur; i++)
		cur[i] = m->cur[i];
	ha_node_in(m->serial, cur, m->ncur, device_id, node, sizeof(node));
	named.node = node;
	for (int f = 0; f < RF_COUNT; f++) {
		json_t *cfg;

		if (isnan(r->v[f]) || (d->announced & (UINT64_C(1) << f)))
			continue;
		ret = mqtt_discovery(m->prefix, m->disc, &gw, &named, f, topic, sizeof(topic),
				     &cfg);
		if (ret == -EINVAL) {
			/* no HA entity for it; the state still carries it */
			d->announced |= UINT64_C(1) << f;
			continue;
		}
		if (ret < 0)
			return ret;
		ret = q_push_json(m, topic, cfg, true);
		if (ret < 0)
			return ret;
		d->announced |= UINT64_C(1) << f;
	}
	if (!d->online_sent) {
		ret = avail_push(m, device_id, true);
		if (ret < 0)
			return ret;
		d->online_sent = true;
	}
	snprintf(topic, sizeof(topic), "%s/%s/%s/state", m->prefix, m->serial, device_id);
	ret = q_push_json(m, topic, mqtt_state_json(device_id, profile, ts_ms, r), false);
	if (ret < 0)
		return ret;
	flush(m);
	if (m->io.added)
		sync_io(m);
	return 0;
}

int mqtt_publish_availability(struct mqtt *m, const char *device_id, bool online)
{
	struct mqtt_dev *d;
	int ret;

	if (!topic_level_ok(device_id))
		return -EINVAL;
	d = dev_get(m, device_id);
	if (!d)
		return -EINVAL;
	ret = avail_push(m, device_id, online);
	if (ret < 0)
		return ret;
	d->online_sent = online;
	flush(m);
	if (m->io.added)
		sync_io(m);
	return 0;
}

/* Deletes every config topic under HA node `node`. */
static int unannounce(struct mqtt *m, const char *node)
{
	char topic[MQTT_TOPIC_MAX];
	int r = 0;

	for (int f = 0; f < RF_COUNT && r == 0; f++) {
		snprintf(topic, sizeof(topic), "%s/sensor/%s/%s_%s/config", m->disc, node,
			 reading_fields[f].group, reading_fields[f].name);
		r = q_push_str(m, topic, "", 1, true);
	}
	return r;
}

/* Deletes every config topic device `id` could have (its node among the
 * devices it was one of) and marks it offline. */
static int retire(struct mqtt *m, const char *id, const char *const *was, unsigned nwas)
{
	char node[128];
	int r;

	ha_node_in(m->serial, was, nwas, id, node, sizeof(node));
	r = unannounce(m, node);
	if (r == 0)
		r = avail_push(m, id, false);
	m->st.removed++;
	return r;
}

int mqtt_set_devices(struct mqtt *m, const char *const *ids, unsigned n)
{
	char old[MQTT_MAX_DEVICES][64];
	const char *was[MQTT_MAX_DEVICES];
	unsigned nold = m->ncur, k;
	int r = 0;

	if (n > MQTT_MAX_DEVICES)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++)
		if (!topic_level_ok(ids[i]))
			return -EINVAL;
	memcpy(old, m->cur, sizeof(old));
	for (unsigned i = 0; i < nold; i++)
		was[i] = old[i];
	for (unsigned i = 0; i < n; i++)
		snprintf(m->cur[i], sizeof(m->cur[i]), "%s", ids[i]);
	m->ncur = n;
	for (unsigned i = 0; i < nold; i++) {
		for (k = 0; k < n && strcmp(old[i], ids[k]) != 0; k++)
			;
		if (k == n && retire(m, old[i], was, nold) < 0)
			r = -ENOMEM;
	}
	/* A device whose node changed (an id it collides with came or went):
	 * its configs move to the new node at its next reading. */
	for (unsigned i = 0; m->cur_known && i < n; i++) {
		char a[128], b[128];

		ha_node_in(m->serial, was, nold, ids[i], a, sizeof(a));
		ha_node_in(m->serial, ids, n, ids[i], b, sizeof(b));
		if (strcmp(a, b) == 0)
			continue;
		if (unannounce(m, a) < 0)
			r = -ENOMEM;
		for (unsigned j = 0; j < m->ndevs; j++)
			if (strcmp(m->devs[j].id, ids[i]) == 0)
				m->devs[j].announced = 0;
	}
	m->cur_known = true;
	/* Forget removed devices, so one added back is announced afresh. */
	for (unsigned i = 0; i < m->ndevs;) {
		for (k = 0; k < n && strcmp(m->devs[i].id, ids[k]) != 0; k++)
			;
		if (k == n)
			m->devs[i] = m->devs[--m->ndevs];
		else
			i++;
	}
	flush(m);
	if (m->io.added)
		sync_io(m);
	return r;
}

void mqtt_stats(const struct mqtt *m, struct mqtt_stats *ret)
{
	*ret = m->st;
	ret->backlog = m->q_n;
	ret->backlog_bytes = m->q_bytes;
}

#else /* !EGW_HAVE_MQTT */

int mqtt_new(struct loop *l, const struct mqtt_config *cfg, const char *serial, struct mqtt **ret)
{
	(void)l, (void)cfg, (void)serial, (void)ret;
	return -ENOTSUP;
}

void mqtt_free(struct mqtt *m)
{
	(void)m;
}

int mqtt_publish_reading(struct mqtt *m, const struct mqtt_device *dev, int64_t ts_ms,
			 const struct reading *r)
{
	(void)m, (void)dev, (void)ts_ms, (void)r;
	return -ENOTSUP;
}

int mqtt_set_devices(struct mqtt *m, const char *const *ids, unsigned n)
{
	(void)m, (void)ids, (void)n;
	return -ENOTSUP;
}

int mqtt_publish_availability(struct mqtt *m, const char *device_id, bool online)
{
	(void)m, (void)device_id, (void)online;
	return -ENOTSUP;
}

void mqtt_stats(const struct mqtt *m, struct mqtt_stats *ret)
{
	(void)m;
	*ret = (struct mqtt_stats){ 0 };
}
#endif
