/* The P1 smart-meter driver: a device of the set (same states, hooks and
 * API as the Modbus devices) that reads a stream of telegrams from a TCP
 * bridge or a serial line and publishes each one as a reading.
 *
 * connecting: the line is being opened, and stays "connecting" until the
 *   first intact telegram (a bridge that accepts but sends nothing, or a
 *   serial line without a meter, is a failed attempt: it backs off and goes
 *   asleep like a device that does not answer);
 * identifying -> polling: at the first telegram (the serial comes from it);
 * backing off: the connection closed, or no telegram for three intervals;
 *   retried with the set's backoff, which resets at the next telegram. */
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "devices/device_int.h"
#include "modbus/transport.h"
#include "devices/p1.h"
#include "loop/resolve.h"

#define P1_SILENT_INTERVALS 3

struct p1dev {
	struct device *d;
	struct p1_parser *parser;
	int fd;
	struct loop_io io;
	struct loop_resolve *resolve;
	struct task watch; /* connect deadline, then the silence limit */
	bool connected;
	uint64_t bytes;
	struct p1_mbus mbus[P1_MBUS_MAX]; /* the M-Bus channels of the last telegram */
};

static usec_t silence_limit(const struct device *d)
{
	return (usec_t)device_poll_ms(d) * P1_SILENT_INTERVALS * USEC_PER_MSEC;
}

static void arm_watch(struct p1dev *p, usec_t after)
{
	struct loop *l = p->d->set->loop;
	loop_task_cancel(l, &p->watch);
	loop_task_add(l, &p->watch, loop_now(l) + after);
}

void p1dev_stop(struct p1dev *p)
{
	struct loop *l;

	if (!p)
		return;
	l = p->d->set->loop;
	loop_task_cancel(l, &p->watch);
	loop_resolve_cancel(p->resolve);
	p->resolve = NULL;
	if (p->fd >= 0) {
		loop_io_del(l, &p->io);
		close(p->fd);
		p->fd = -1;
	}
	p->connected = false;
	p1_parser_reset(p->parser);
}

/* The line failed: a connection attempt, or a connection that delivered. */
static void line_failed(struct p1dev *p, int err, const char *what)
{
	struct device *d = p->d;

	if (d->fsm.state == DEV_CONNECTING) {
		device_connect_failed(d, err);
		return;
	}
	d->st.last_error = err;
	d->st.errors++;
	device_go(d, DEV_BACKING_OFF, "%s", what);
}

static void on_telegram(void *ud, const struct p1_telegram *t)
{
	struct p1dev *p = ud;
	struct device *d = p->d;
	const struct device_hooks *h = &d->set->hooks;
	struct reading fresh = t->r, before = t->r;
	int64_t ts = wall_ms();
	int refused;

	d->st.polls++;
	if (d->fsm.state == DEV_CONNECTING) {
		char old[DEV_SERIAL_LEN];
		device_go(d, DEV_IDENTIFYING, "first telegram");
		snprintf(old, sizeof(old), "%s", d->serial);
		if (d->identified && strcmp(old, t->serial) != 0) {
			d->st.identity_changes++;
			if (h->on_identity_change)
				h->on_identity_change(d->set->ud, d, old, t->serial);
		}
		snprintf(d->serial, sizeof(d->serial), "%s", t->serial);
		d->identified = true;
		device_go(d, DEV_POLLING, "identified %.40s", d->serial[0] ? d->serial : "(no id)");
	}
	if (d->fsm.state != DEV_POLLING)
		return;
	arm_watch(p, silence_limit(d));
	memcpy(p->mbus, t->mbus, sizeof(p->mbus));
	d->st.polls_ok++;
	d->st.last_good_ms = ts;
	refused = reading_mono_apply(&d->mono, &fresh);
	if (refused > 0)
		d->st.totals_suppressed += (uint64_t)refused;
	for (unsigned f = 0; f < RF_COUNT; f++) {
		double v = fresh.v[f];
		if (isnan(v) && !isnan(before.v[f]) && reading_fields[f].total)
			v = d->mono.last[f];
		d->last.v[f] = v;
	}
	d->have_reading = true;
	if (h->on_reading)
		h->on_reading(d->set->ud, d, ts, &fresh, NULL,
			      0); /* no registers behind a telegram */
}

static void on_io(struct loop_io *io, uint32_t events)
{
	struct p1dev *p = container_of(io, struct p1dev, io);
	char buf[2048];

	if (!p->connected) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			line_failed(p, -err, "connect");
			return;
		}
		p->connected = true;
		loop_io_mod(p->d->set->loop, &p->io, EPOLLIN);
		arm_watch(p, silence_limit(p->d));
		return;
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	/* One read per wake-up: the telegram callbacks may close the line. */
	ssize_t n = read(p->fd, buf, sizeof(buf));
	if (n > 0) {
		p->bytes += (uint64_t)n;
		p1_parser_feed(p->parser, buf, (size_t)n);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == 0 && p->d->conf.kind == MB_TRANSPORT_RTU)
		return; /* a tty with VMIN 0: nothing yet */
	line_failed(p, n == 0 ? -ECONNRESET : -errno, n == 0 ? "connection closed" : "read");
}

static int watch_run(struct task *t, usec_t now)
{
	struct p1dev *p = container_of(t, struct p1dev, watch);
	UNUSED(now);
	if (p->d->fsm.state == DEV_CONNECTING)
		device_connect_failed(p->d, -ETIMEDOUT);
	else
		line_failed(p, -ETIMEDOUT, "no telegram");
	return 0;
}

static int open_serial(struct p1dev *p)
{
	const struct dev_conf *c = &p->d->conf;
	int fd, r;

	r = mb_serial_line_open(c->serial_port, c->baudrate, c->parity, c->databits, c->stopbits,
				O_RDONLY, &fd);
	return r < 0 ? r : fd;
}

static void resolved(void *ud, int err, const struct loop_resolved *res)
{
	struct p1dev *p = ud;
	struct loop *l = p->d->set->loop;
	int fd;

	p->resolve = NULL;
	if (err < 0) {
		device_connect_failed(p->d, err);
		return;
	}
	fd = socket(res->addr[0].ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		device_connect_failed(p->d, -errno);
		return;
	}
	if (connect(fd, (const struct sockaddr *)&res->addr[0], res->len[0]) < 0 &&
	    errno != EINPROGRESS) {
		int r = -errno;
		close(fd);
		device_connect_failed(p->d, r);
		return;
	}
	p->fd = fd;
	if (loop_io_add(l, &p->io, fd, EPOLLOUT, on_io) < 0) {
		close(fd);
		p->fd = -1;
		device_connect_failed(p->d, -ENOMEM);
		return;
	}
	arm_watch(p, (usec_t)p->d->set->cfg.connect_timeout_ms * USEC_PER_MSEC);
}

void p1dev_start(struct p1dev *p)
{
	struct device *d = p->d;

	p1dev_stop(p);
	if (d->conf.kind == MB_TRANSPORT_RTU) {
		int fd = open_serial(p);
		if (fd < 0) {
			device_connect_failed(d, fd);
			return;
		}
		p->fd = fd;
		p->connected = true;
		if (loop_io_add(d->set->loop, &p->io, fd, EPOLLIN, on_io) < 0) {
			close(fd);
			p->fd = -1;
			device_connect_failed(d, -ENOMEM);
			return;
		}
		arm_watch(p, silence_limit(d));
		return;
	}
	p->resolve = loop_resolve_start(d->set->loop, d->conf.host, d->conf.port, resolved, p);
	if (!p->resolve)
		device_connect_failed(d, -ENOMEM);
}

int p1dev_new(struct device *d, struct p1dev **ret)
{
	struct p1dev *p = calloc(1, sizeof(*p));
	int r;

	if (!p)
		return -ENOMEM;
	p->d = d;
	p->fd = -1;
	p->watch = (struct task){ .name = "p1-watch",
				  .run = watch_run,
				  .prio = 10,
				  .idx = SCHED_NOT_QUEUED };
	r = p1_parser_new(on_telegram, p, &p->parser);
	if (r < 0) {
		free(p);
		return r;
	}
	*ret = p;
	return 0;
}

void p1dev_free(struct p1dev *p)
{
	if (!p)
		return;
	p1dev_stop(p);
	p1_parser_free(p->parser);
	free(p);
}

json_t *p1dev_json(const struct p1dev *p)
{
	struct p1_stats st;
	json_t *mbus = json_array();

	/* The M-Bus meters as the last telegram told them, each with the time
	 * it took its reading (gas meters report every 5 minutes or every
	 * hour, not with every telegram). */
	for (unsigned k = 0; mbus && k < P1_MBUS_MAX; k++) {
		const struct p1_mbus *mb = &p->mbus[k];
		json_t *o;
		if (!mb->present)
			continue;
		o = json_pack("{si si sf ss}", "channel", (int)k + 1, "type", (int)mb->type,
			      "value", mb->value, "unit", mb->unit);
		if (o && mb->type == P1_MBUS_GAS)
			json_object_set_new(o, "kind", json_string("gas"));
		else if (o && mb->type == P1_MBUS_WATER)
			json_object_set_new(o, "kind", json_string("water"));
		if (o && mb->ts_ms)
			json_object_set_new(o, "ts_ms", json_integer(mb->ts_ms));
		json_array_append_new(mbus, o);
	}
	p1_parser_stats(p->parser, &st);
	return json_pack("{sI sI sI sI sI sb so}", "telegrams", (json_int_t)st.telegrams,
			 "crc_errors", (json_int_t)st.crc_errors, "oversize",
			 (json_int_t)st.oversize, "cut", (json_int_t)st.cut, "bytes",
			 (json_int_t)p->bytes, "connected", p->connected, "mbus",
			 mbus ? mbus : json_array());
}
