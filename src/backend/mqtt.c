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

/* ---- payloads (pure) ---------------------------------------------------- */

struct ha_unit {
	const char *unit;         /* reading_fields[].unit */
	const char *device_class; /* Home Assistant sensor device class */
	const char *ha_unit;      /* unit_of_measurement */
	const char *state_class;
	double mul;               /* shown value = value * mul */
};

static const struct ha_unit ha_units[] = {
	{ "W", "power", "W", "measurement", 1 },
	{ "V", "voltage", "V", "measurement", 1 },
	{ "A", "current", "A", "measurement", 1 },
	{ "Hz", "frequency", "Hz", "measurement", 1 },
	{ "C", "temperature", "\xc2\xb0" "C", "measurement", 1 },
	{ "Wh", "energy", "Wh", "total_increasing", 1 },
	{ "fraction", "battery", "%", "measurement", 100 },
};

static const struct ha_unit *ha_unit_of(const char *unit)
{
	for (size_t i = 0; i < ARRAY_SIZE(ha_units); i++)
		if (strcmp(ha_units[i].unit, unit) == 0)
			return &ha_units[i];
	return NULL;
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

int mqtt_discovery(const char *topic_prefix, const char *discovery_prefix, const char *serial,
                   const char *device_id, const char *profile, enum reading_field f,
                   char *ret_topic, size_t topic_len, json_t **ret_config)
{
	const struct reading_field_info *fi;
	const struct ha_unit *u;
	char node[128], uid[192], object[64], name[96], tmpl[160];
	char state_topic[MQTT_TOPIC_MAX], avail_topic[MQTT_TOPIC_MAX], status_topic[MQTT_TOPIC_MAX];
	json_t *cfg;
	int n;

	if ((unsigned)f >= RF_COUNT || !prefix_ok(topic_prefix) || !prefix_ok(discovery_prefix) ||
	    !topic_level_ok(serial) || !topic_level_ok(device_id))
		return -EINVAL;
	fi = &reading_fields[f];
	u = ha_unit_of(fi->unit);
	if (!u)
		return -EINVAL;
	ha_id(node, sizeof(node), serial, device_id);
	snprintf(object, sizeof(object), "%s_%s", fi->group, fi->name);
	snprintf(uid, sizeof(uid), "%s_%s", node, object);
	snprintf(name, sizeof(name), "%s %s", fi->group, fi->name);
	if (u->mul != 1)
		snprintf(tmpl, sizeof(tmpl), "{{ (value_json.%s.%s * %g) | round(1) }}", fi->group,
		         fi->name, u->mul);
	else
		snprintf(tmpl, sizeof(tmpl), "{{ value_json.%s.%s }}", fi->group, fi->name);
	snprintf(state_topic, sizeof(state_topic), "%s/%s/%s/state", topic_prefix, serial, device_id);
	snprintf(avail_topic, sizeof(avail_topic), "%s/%s/%s/availability", topic_prefix, serial,
	         device_id);
	snprintf(status_topic, sizeof(status_topic), "%s/%s/status", topic_prefix, serial);
	n = snprintf(ret_topic, topic_len, "%s/sensor/%s/%s/config", discovery_prefix, node, object);
	if (n < 0 || (size_t)n >= topic_len)
		return -EINVAL;

	cfg = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s,"
	                " s:[{s:s},{s:s}], s:s,"
	                " s:{s:[s], s:s, s:s, s:s}}",
	                "name", name,
	                "unique_id", uid,
	                "object_id", uid,
	                "state_topic", state_topic,
	                "value_template", tmpl,
	                "unit_of_measurement", u->ha_unit,
	                "device_class", u->device_class,
	                "state_class", u->state_class,
	                "json_attributes_topic", state_topic,
	                "availability", "topic", status_topic, "topic", avail_topic,
	                "availability_mode", "all",
	                "device", "identifiers", node, "name", device_id,
	                "model", profile ? profile : "", "manufacturer", "egw");
	if (!cfg)
		return -ENOMEM;
	/* json_attributes_topic would copy the whole reading into every entity. */
	json_object_del(cfg, "json_attributes_topic");
	*ret_config = cfg;
	return 0;
}

#if EGW_HAVE_MQTT
#include <arpa/inet.h>
#include <mosquitto.h>
#include <netinet/in.h>

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
	uint32_t announced; /* bit per reading_field: discovery queued since connect */
	bool online_sent;
};

_Static_assert(RF_COUNT <= 32, "announced mask is 32 bits");

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
	bool connected;     /* CONNACK accepted */
	/* where to connect; a host name is looked up on the loop's worker pool */
	char host[256];
	int port, keepalive;
	bool tls;
	struct loop_resolve *res; /* lookup in flight */
	unsigned tries;           /* connects since the last success: picks the address */
	bool refused;             /* the broker refused this attempt's CONNECT */
	char detail[160];         /* libmosquitto's last error line (OpenSSL's reason) */
	struct mqtt_msg *q; /* ring of MQTT_QUEUE_MAX */
	unsigned q_head, q_n;
	size_t q_bytes;
	struct mqtt_dev devs[MQTT_MAX_DEVICES];
	unsigned ndevs;
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
		.topic = topic, .payload = payload, .len = len, .qos = qos, .retain = retain,
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
	/* The status goes straight out, ahead of the backlog. */
	if (mosquitto_publish(m->mosq, NULL, m->status_topic, 6, "online", 1, true) ==
	    MOSQ_ERR_SUCCESS)
		m->st.inflight++;
	flush(m);
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
			m->st.last_error = rc == MOSQ_ERR_TLS && m->detail[0] ? m->detail
									     : mosquitto_strerror(rc);
		lost(m);
		return;
	}
	sync_io(m);
}

/* Follow libmosquitto's socket: it may have closed it, or want to write. */
static void sync_io(struct mqtt *m)
{
	int fd = mosquitto_socket(m->mosq);
	uint32_t ev;

	if (fd < 0) {
		if (m->io.added || m->connected)
			lost(m);
		return;
	}
	ev = EPOLLIN | (mosquitto_want_write(m->mosq) ? EPOLLOUT : 0);
	if (m->io.added && m->io.fd != fd)
		loop_io_del(m->loop, &m->io);
	if (!m->io.added) {
		if (loop_io_add(m->loop, &m->io, fd, ev, on_io) < 0)
			lost(m);
		return;
	}
	loop_io_mod(m->loop, &m->io, ev);
}

/* libmosquitto resolves the broker's name with a blocking getaddrinfo.  So
 * that a slow or absent DNS never stalls the loop, a name is first looked up
 * on the worker pool (loop/resolve.h): without TLS egwd then connects to the
 * address found; with TLS it passes the name (certificate check and SNI need
 * it), which the resolver has just answered. */
static void connect_to(struct mqtt *m, const char *host)
{
	int rc;

	loop_io_del(m->loop, &m->io);
	m->refused = false;
	m->detail[0] = 0;
	rc = mosquitto_connect_async(m->mosq, host, m->port, m->keepalive);
	if (rc != MOSQ_ERR_SUCCESS) {
		m->st.last_error = rc == MOSQ_ERR_ERRNO ? egw_strerror(-errno) : mosquitto_strerror(rc);
		lost(m);
		return;
	}
	sync_io(m);
}

static void resolved(void *ud, int err, const struct loop_resolved *res)
{
	struct mqtt *m = ud;
	char text[INET6_ADDRSTRLEN];
	const struct sockaddr_storage *addr;
	const void *a;

	m->res = NULL;
	if (err) {
		m->st.last_error = egw_strerror(err);
		lost(m);
		return;
	}
	/* After each failed attempt, the next address the name has. */
	addr = &res->addr[m->tries++ % (unsigned)res->n];
	a = addr->ss_family == AF_INET ? (const void *)&((const struct sockaddr_in *)addr)->sin_addr
				       : (const void *)&((const struct sockaddr_in6 *)addr)->sin6_addr;
	if (!inet_ntop(addr->ss_family, a, text, sizeof(text)))
		lost(m);
	else
		connect_to(m, m->tls ? m->host : text);
}

static bool is_address(const char *h)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
}

static void start_connect(struct mqtt *m)
{
	if (is_address(m->host)) {
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

int mqtt_new(struct loop *l, const struct mqtt_config *cfg, const char *serial,
             struct mqtt **ret)
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

	m->tick = (struct task){ .name = "mqtt", .run = on_tick, .period = USEC_PER_SEC, .prio = 5 };
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

	snprintf(topic, sizeof(topic), "%s/%s/%s/availability", m->prefix, m->serial, device_id);
	return q_push_str(m, topic, online ? "online" : "offline", 1, true);
}

int mqtt_publish_reading(struct mqtt *m, const char *device_id, const char *profile,
                         int64_t ts_ms, const struct reading *r)
{
	char topic[MQTT_TOPIC_MAX];
	struct mqtt_dev *d;
	int ret;

	if (!topic_level_ok(device_id))
		return -EINVAL;
	d = dev_get(m, device_id);
	if (!d)
		return -EINVAL;
	for (int f = 0; f < RF_COUNT; f++) {
		json_t *cfg;

		if (isnan(r->v[f]) || (d->announced & (1u << f)))
			continue;
		ret = mqtt_discovery(m->prefix, m->disc, m->serial, device_id, profile, f, topic,
		                     sizeof(topic), &cfg);
		if (ret < 0)
			return ret;
		ret = q_push_json(m, topic, cfg, true);
		if (ret < 0)
			return ret;
		d->announced |= 1u << f;
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

void mqtt_stats(const struct mqtt *m, struct mqtt_stats *ret)
{
	*ret = m->st;
	ret->backlog = m->q_n;
	ret->backlog_bytes = m->q_bytes;
}

#else /* !EGW_HAVE_MQTT */

int mqtt_new(struct loop *l, const struct mqtt_config *cfg, const char *serial,
             struct mqtt **ret)
{
	(void)l, (void)cfg, (void)serial, (void)ret;
	return -ENOTSUP;
}

void mqtt_free(struct mqtt *m)
{
	(void)m;
}

int mqtt_publish_reading(struct mqtt *m, const char *device_id, const char *profile,
                         int64_t ts_ms, const struct reading *r)
{
	(void)m, (void)device_id, (void)profile, (void)ts_ms, (void)r;
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
