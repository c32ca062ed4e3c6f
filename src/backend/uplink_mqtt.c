/* MQTT uplink of signed batches (see uplink_mqtt.h). */
#include "backend/uplink_mqtt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egw-config.h"

#if EGW_HAVE_MQTT
#include <jansson.h>
#include <mosquitto.h>
#include <sys/random.h>

#include "backend/acks.h"
#include "backend/mqtt_link.h"
#include "base/err.h"
#include "base/util.h"
#include "crypto/jwt.h"
#include "crypto/signer.h"
#include "loop/loop.h"
#include "loop/resolve.h"
#include "sched/sched.h"

#define RECONNECT_MIN (1 * USEC_PER_SEC)
#define RECONNECT_MAX (30 * USEC_PER_SEC)

struct uplink_mqtt {
	struct loop *loop;
	struct uploader *up;
	struct mosquitto *mosq; /* one per connection attempt, NULL between */
	struct loop_io io;
	struct task tick;
	char host[256];
	int port, keepalive;
	bool tls;
	char *ca_file;
	char topic[UPLINK_MQTT_TOPIC_MAX];
	char *client_id, *username, *password;
	struct signer *signer;
	usec_t lifetime;

	/* The JWT password: signed on a worker before each connection. */
	struct loop_work sign_work;
	char *sign_out;
	int sign_r;
	int64_t sign_exp;
	char *token;
	usec_t token_at; /* monotonic time it was signed */

	bool closing;   /* uplink_mqtt_free waits for the sign worker */
	bool connected; /* CONNACK accepted */
	bool refused;   /* the broker refused this attempt's CONNECT */
	usec_t retry_at, backoff;
	unsigned tries; /* attempts since the last success: picks the address */
	struct loop_resolve *res;
	int mids[UPLOADER_MAX_IN_FLIGHT]; /* message id per uploader request, 0: none */
	char detail[160];                 /* libmosquitto's last error line (OpenSSL's reason) */
	struct uplink_mqtt_stats st;
};

static void connect_now(struct uplink_mqtt *m);
static void sync_io(struct uplink_mqtt *m);

/* ---- the JWT password ---- */

static void sign_work(struct loop_work *w)
{
	struct uplink_mqtt *m = container_of(w, struct uplink_mqtt, sign_work);
	uint8_t rnd[16];
	char jti[33];
	json_t *h = NULL, *p = NULL;
	int64_t iat = wall_ms() / 1000;

	m->sign_out = NULL;
	m->sign_r = signer_prepare(m->signer);
	if (m->sign_r < 0)
		return;
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		m->sign_r = -EIO;
		return;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(jti + 2 * i, 3, "%02x", rnd[i]);
	m->sign_exp = iat + (int64_t)(m->lifetime / USEC_PER_SEC);
	h = jwt_header_new(m->signer, NULL, "egw-mqtt-auth");
	p = json_pack("{sssIsIssss}", "sub", signer_serial_hex(m->signer), "iat", (json_int_t)iat,
		      "exp", (json_int_t)m->sign_exp, "jti", jti, "aud", m->host);
	m->sign_r = h && p ? jwt_sign(m->signer, h, p, &m->sign_out) : -ENOMEM;
	json_decref(h);
	json_decref(p);
}

static void sign_done(struct loop_work *w)
{
	struct uplink_mqtt *m = container_of(w, struct uplink_mqtt, sign_work);

	if (m->closing)
		return;
	if (m->sign_r < 0) {
		m->st.last_error = "cannot sign the JWT password (signer unavailable)";
		m->backoff = sched_backoff_next(m->backoff, RECONNECT_MIN, RECONNECT_MAX);
		m->retry_at = now_usec() + m->backoff;
		return;
	}
	free(m->token);
	m->token = m->sign_out;
	m->sign_out = NULL;
	m->token_at = now_usec();
	m->st.tokens++;
	m->st.token_exp = m->sign_exp;
	/* When connected with the old token, this goes again with the new one;
	 * the batches in flight are sent again on the new connection. */
	connect_now(m);
}

/* ---- connection ---- */

/* Batches in flight will get no PUBACK on this connection. */
static void fail_in_flight(struct uplink_mqtt *m, int err)
{
	for (unsigned i = 0; i < UPLOADER_MAX_IN_FLIGHT; i++) {
		if (m->mids[i]) {
			m->mids[i] = 0;
			uploader_sent(m->up, i, err);
		}
	}
}

static void drop_client(struct uplink_mqtt *m)
{
	loop_io_del(m->loop, &m->io);
	if (m->mosq) {
		if (m->connected)
			mosquitto_disconnect(m->mosq);
		mosquitto_destroy(m->mosq);
		m->mosq = NULL;
	}
	if (m->connected)
		m->st.disconnects++;
	m->connected = false;
	m->st.connected = false;
	fail_in_flight(m, -ECONNRESET);
}

static void lost(struct uplink_mqtt *m)
{
	drop_client(m);
	m->backoff = sched_backoff_next(m->backoff, RECONNECT_MIN, RECONNECT_MAX);
	m->retry_at = now_usec() + m->backoff;
}

static void on_log(struct mosquitto *mosq, void *ud, int level, const char *text)
{
	struct uplink_mqtt *m = ud;
	(void)mosq;

	if (level == MOSQ_LOG_ERR && text)
		snprintf(m->detail, sizeof(m->detail), "%s", text);
}

static void on_connect(struct mosquitto *mosq, void *ud, int rc)
{
	struct uplink_mqtt *m = ud;
	(void)mosq;

	if (rc != 0) {
		/* refused (bad credentials, ...): the broker closes, we back off */
		m->st.last_error = mosquitto_connack_string(rc);
		m->st.refused++;
		m->refused = true;
		return;
	}
	m->st.last_error = NULL;
	m->connected = true;
	m->st.connected = true;
	m->st.connects++;
	m->tries = 0;
	m->backoff = 0;
	uploader_resume(m->up);
}

static void on_disconnect(struct mosquitto *mosq, void *ud, int rc)
{
	(void)mosq;
	(void)ud;
	(void)rc; /* on_io / sync_io see the socket gone and call lost() */
}

static void on_publish(struct mosquitto *mosq, void *ud, int mid)
{
	struct uplink_mqtt *m = ud;
	(void)mosq;

	for (unsigned i = 0; i < UPLOADER_MAX_IN_FLIGHT; i++) {
		if (m->mids[i] == mid) {
			m->mids[i] = 0;
			uploader_sent(m->up, i, 0);
			return;
		}
	}
}

static void on_io(struct loop_io *io, uint32_t events)
{
	struct uplink_mqtt *m = container_of(io, struct uplink_mqtt, io);
	int rc = MOSQ_ERR_SUCCESS;

	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		rc = mosquitto_loop_read(m->mosq, 16);
	if (rc == MOSQ_ERR_SUCCESS && m->mosq && (events & EPOLLOUT))
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
static void sync_io(struct uplink_mqtt *m)
{
	int r = mqtt_link_watch(m->loop, &m->io, m->mosq, on_io);

	if (r == -ENOTCONN ? m->mosq != NULL : r < 0)
		lost(m);
}

static void connect_to(struct uplink_mqtt *m, const char *host)
{
	const char *pw = m->signer ? m->token : m->password;
	const char *why;

	drop_client(m);
	m->refused = false;
	m->detail[0] = 0;
	m->mosq = mosquitto_new(m->client_id, true, m);
	if (!m->mosq) {
		m->st.last_error = "out of memory";
		lost(m);
		return;
	}
	mosquitto_connect_callback_set(m->mosq, on_connect);
	mosquitto_disconnect_callback_set(m->mosq, on_disconnect);
	mosquitto_publish_callback_set(m->mosq, on_publish);
	mosquitto_log_callback_set(m->mosq, on_log);
	/* Every batch the uploader hands over goes out at once: libmosquitto
	 * queues none behind its own limit. */
	mosquitto_int_option(m->mosq, MOSQ_OPT_SEND_MAXIMUM, UPLOADER_MAX_IN_FLIGHT);
	if ((m->username &&
	     mosquitto_username_pw_set(m->mosq, m->username, pw && *pw ? pw : NULL) !=
		     MOSQ_ERR_SUCCESS) ||
	    (m->tls &&
	     mosquitto_tls_set(m->mosq, m->ca_file, m->ca_file ? NULL : "/etc/ssl/certs", NULL,
			       NULL, NULL) != MOSQ_ERR_SUCCESS)) {
		m->st.last_error = "bad TLS or credential settings";
		lost(m);
		return;
	}
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
	struct uplink_mqtt *m = ud;
	char host[sizeof(m->host)];

	m->res = NULL;
	if (err)
		m->st.last_error = egw_strerror(err);
	if (err || mqtt_link_host(res, m->host, m->tls, &m->tries, host, sizeof(host)) < 0)
		lost(m);
	else
		connect_to(m, host);
}

static void connect_now(struct uplink_mqtt *m)
{
	if (mqtt_link_is_address(m->host)) {
		connect_to(m, m->host);
		return;
	}
	drop_client(m);
	/* The tick retries after this if the lookup never completes. */
	m->retry_at = now_usec() + RECONNECT_MAX;
	if (!m->res)
		m->res = loop_resolve_start(m->loop, m->host, (uint16_t)m->port, resolved, m);
}

/* With a JWT password, a fresh token first (signed on a worker). */
static void start_connect(struct uplink_mqtt *m)
{
	if (!m->signer) {
		connect_now(m);
		return;
	}
	if (m->sign_work.busy)
		return;
	if (loop_work_submit(m->loop, &m->sign_work) < 0) {
		m->backoff = sched_backoff_next(m->backoff, RECONNECT_MIN, RECONNECT_MAX);
		m->retry_at = now_usec() + m->backoff;
	}
	/* continues in sign_done */
}

static int on_tick(struct task *t, usec_t now)
{
	struct uplink_mqtt *m = container_of(t, struct uplink_mqtt, tick);

	if (m->mosq) {
		if (m->io.added && mosquitto_loop_misc(m->mosq) != MOSQ_ERR_SUCCESS) {
			m->st.last_error = "keepalive: no answer from the broker";
			lost(m);
			return 0;
		}
		/* 80 % of the token's life gone: reconnect with a new one. */
		if (m->signer && m->connected && !m->sign_work.busy && now >= m->retry_at &&
		    now - m->token_at >= m->lifetime / 10 * 8)
			start_connect(m);
		sync_io(m);
		return 0;
	}
	if (now < m->retry_at || m->res || m->sign_work.busy)
		return 0;
	start_connect(m);
	return 0;
}

/* ---- the uploader's transport ---- */

static int tp_send(void *ud, unsigned id, uint64_t seq, const char *body, size_t len)
{
	struct uplink_mqtt *m = ud;
	int mid = 0, rc;
	(void)seq;

	if (!m->connected || id >= UPLOADER_MAX_IN_FLIGHT)
		return -ENOTCONN;
	rc = mosquitto_publish(m->mosq, &mid, m->topic, (int)len, body, 1, false);
	if (rc != MOSQ_ERR_SUCCESS)
		return rc == MOSQ_ERR_NOMEM ? -ENOMEM : -ENOTCONN;
	m->mids[id] = mid;
	sync_io(m);
	return 0;
}

static void tp_cancel(void *ud, unsigned id)
{
	struct uplink_mqtt *m = ud;

	if (id < UPLOADER_MAX_IN_FLIGHT)
		m->mids[id] = 0;
}

static const struct uploader_transport transport = {
	.send = tp_send,
	.cancel = tp_cancel,
};

/* ---- life ---- */

static bool topic_ok(const char *t)
{
	return t && *t && !strpbrk(t, "+#") && strlen(t) < UPLINK_MQTT_TOPIC_MAX;
}

static char *dup_or_null(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

int uplink_mqtt_new(struct loop *l, const struct uplink_mqtt_config *cfg,
		    const struct uploader_source *src, void *src_ud, struct uplink_mqtt **ret)
{
	struct uplink_mqtt *m;
	int port = cfg->port > 0 ? cfg->port : (cfg->tls ? 8883 : 1883);
	int r;

	if (!cfg->host || !*cfg->host || strlen(cfg->host) >= sizeof(m->host) || port > 65535 ||
	    !topic_ok(cfg->topic) || !cfg->client_id || !*cfg->client_id || !cfg->acks)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->loop = l;
	m->io.fd = -1;
	snprintf(m->host, sizeof(m->host), "%s", cfg->host);
	snprintf(m->topic, sizeof(m->topic), "%s", cfg->topic);
	m->port = port;
	m->tls = cfg->tls;
	m->keepalive = cfg->keepalive_s > 0 ? cfg->keepalive_s : 30;
	m->signer = cfg->signer;
	m->lifetime = cfg->jwt_lifetime > 0 ? cfg->jwt_lifetime : 3600 * USEC_PER_SEC;
	m->client_id = strdup(cfg->client_id);
	m->username = dup_or_null(cfg->username);
	m->password = dup_or_null(cfg->password);
	m->ca_file = dup_or_null(cfg->ca_file);
	if (!m->client_id || (cfg->username && *cfg->username && !m->username) ||
	    (cfg->password && *cfg->password && !m->password) ||
	    (cfg->ca_file && *cfg->ca_file && !m->ca_file)) {
		uplink_mqtt_free(m);
		return -ENOMEM;
	}
	struct uploader_config ucfg = {
		.rate_per_s = cfg->rate_per_s,
		.backoff_min = cfg->backoff_min,
		.backoff_max = cfg->backoff_max,
		.max_in_flight = cfg->max_in_flight,
		.transport = &transport,
		.transport_ud = m,
		.acks = cfg->acks,
		.on_health = cfg->on_health,
		.health_ud = cfg->health_ud,
	};
	r = uploader_new(l, NULL, &ucfg, src, src_ud, &m->up);
	if (r < 0) {
		uplink_mqtt_free(m);
		return r;
	}
	m->sign_work = (struct loop_work){ .work = sign_work, .done = sign_done };
	m->tick = (struct task){ .name = "uplink-mqtt",
				 .run = on_tick,
				 .period = USEC_PER_SEC,
				 .prio = 5 };
	mosquitto_lib_init();
	r = loop_task_add(l, &m->tick, now_usec() + USEC_PER_SEC);
	if (r < 0) {
		uplink_mqtt_free(m);
		return r;
	}
	start_connect(m); /* failures are retried by the tick */
	uploader_kick(m->up);
	*ret = m;
	return 0;
}

void uplink_mqtt_free(struct uplink_mqtt *m)
{
	if (!m)
		return;
	m->closing = true;
	loop_task_cancel(m->loop, &m->tick);
	loop_resolve_cancel(m->res);
	m->res = NULL;
	/* The uploader cancels what is in flight through tp_cancel. */
	uploader_free(m->up);
	m->up = NULL;
	while (m->sign_work.busy)
		loop_run_once(m->loop, 100 * USEC_PER_MSEC);
	loop_task_cancel(m->loop, &m->tick);
	drop_client(m);
	if (m->tick.run)
		mosquitto_lib_cleanup();
	free(m->sign_out);
	free(m->token);
	free(m->client_id);
	free(m->username);
	free(m->password);
	free(m->ca_file);
	free(m);
}

struct uploader *uplink_mqtt_uploader(struct uplink_mqtt *m)
{
	return m ? m->up : NULL;
}

void uplink_mqtt_get_stats(const struct uplink_mqtt *m, struct uplink_mqtt_stats *ret)
{
	*ret = m->st;
	uploader_get_stats(m->up, &ret->up);
}

#else /* !EGW_HAVE_MQTT */

int uplink_mqtt_new(struct loop *l, const struct uplink_mqtt_config *cfg,
		    const struct uploader_source *src, void *src_ud, struct uplink_mqtt **ret)
{
	(void)l;
	(void)cfg;
	(void)src;
	(void)src_ud;
	(void)ret;
	return -ENOTSUP;
}

void uplink_mqtt_free(struct uplink_mqtt *m)
{
	(void)m;
}

struct uploader *uplink_mqtt_uploader(struct uplink_mqtt *m)
{
	(void)m;
	return NULL;
}

void uplink_mqtt_get_stats(const struct uplink_mqtt *m, struct uplink_mqtt_stats *ret)
{
	(void)m;
	*ret = (struct uplink_mqtt_stats){ 0 };
}
#endif
