/* Modbus endpoints of egw-sim: TCP listeners and RTU lines (a pty we
 * create, or an existing tty), with the simulator-wide faults applied on
 * the way out.  Non-blocking, driven by the loop; fixed buffers. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "modbus/solarman.h"
#include "sim/sim.h"

#define RTU_SILENCE_USEC (100 * USEC_PER_MSEC)

static uint64_t rng_next(struct sim *s)
{
	/* xorshift64: garbage bytes only, quality does not matter */
	uint64_t x = s->rng ? s->rng : 0x2545F4914F6CDD1DULL;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	s->rng = x;
	return x;
}

/* Garbage: a frame-sized burst whose MBAP protocol id is not 0 and whose
 * RTU CRC cannot match, so no client takes it for an answer. */
static size_t garbage(struct sim *s, uint8_t *out, size_t len)
{
	for (size_t i = 0; i < len; i++)
		out[i] = (uint8_t)(rng_next(s) >> 24);
	if (len >= 4) {
		out[2] = 0xDE;
		out[3] = 0xAD;
	}
	if (len >= 2) {
		uint16_t crc = mb_crc16(out, len - 2);
		out[len - 2] = (uint8_t) ~(crc & 0xFF);
	}
	return len;
}

static struct sim_device *find_device(struct sim_port *p, uint8_t unit)
{
	for (unsigned i = 0; i < p->ndevs; i++)
		if (p->devs[i]->unit == unit)
			return p->devs[i];
	/* unit 0 / 255 on TCP: "the device behind this socket", as many
	 * single-device servers treat it */
	if (p->kind == SIM_TCP && (unit == 0 || unit == 255) && p->ndevs == 1)
		return p->devs[0];
	return NULL;
}

/* The answer PDU for q on endpoint p, faults included.  Returns the PDU
 * length, 0 for "no answer", or -errno. */
static int answer_pdu(struct sim_port *p, const struct mb_request *q, uint8_t *pdu, size_t cap)
{
	const struct sim_faults *f = &p->sim->faults;
	struct sim_device *d = find_device(p, q->unit);

	if (p->kind != SIM_TCP && q->unit == 0) {
		/* RTU broadcast: every device on the line acts on a write, none
		 * answers (a broadcast read means nothing) */
		if (!f->timeout && (q->fc == MB_FC_WRITE_SINGLE || q->fc == MB_FC_WRITE_MULTIPLE))
			for (unsigned i = 0; i < p->ndevs; i++)
				(void)sim_device_handle(p->devs[i], q, pdu, cap);
		return 0;
	}
	if (!d) {
		if (p->kind != SIM_TCP)
			return 0; /* not addressed to anyone on this line */
		return mb_build_exception(q->fc, MB_EX_GATEWAY_TARGET, pdu, cap);
	}
	if (f->timeout)
		return 0;
	if (f->exception) {
		d->requests++;
		return mb_build_exception(q->fc, f->exception, pdu, cap);
	}
	return sim_device_handle(d, q, pdu, cap);
}

/* ---- TCP connections ---------------------------------------------------- */

static void conn_service(struct sim_conn *c);

static void conn_close(struct sim_conn *c)
{
	if (!c->used)
		return;
	struct sim_port *p = c->port;
	struct loop *l = p->sim->loop;
	loop_task_cancel(l, &c->slow);
	int fd = c->io.fd;
	loop_io_del(l, &c->io);
	close(fd);
	c->used = false;
	p->nconns--;
}

void sim_port_drop_all(struct sim_port *p)
{
	for (unsigned i = 0; i < SIM_MAX_CONNS; i++)
		conn_close(&p->conns[i]);
}

static int conn_flush(struct sim_conn *c)
{
	if (c->held)
		return 0;
	while (c->txlen > 0) {
		ssize_t n = send(c->io.fd, c->tx, c->txlen, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		memmove(c->tx, c->tx + n, c->txlen - (size_t)n);
		c->txlen -= (size_t)n;
	}
	return 0;
}

/* Handle the complete requests in rx.  Returns 0, or -ECONNRESET when the
 * connection must be closed (fault drop, unframeable input). */
static int conn_process(struct sim_conn *c)
{
	struct sim_port *p = c->port;
	struct sim *s = p->sim;
	size_t off = 0;
	int ret = 0;

	while (off < c->rxlen && !c->held) {
		/* room for the largest answer plus the garbage fault's extra bytes */
		if (c->txlen + MB_TCP_ADU_MAX + 8 > sizeof(c->tx))
			break; /* wait for the client to read */
		struct mb_request q = { 0 };
		size_t used = 0;
		uint8_t pdu[MB_PDU_MAX];
		int n = mb_tcp_parse_request(c->rx + off, c->rxlen - off, &q, &used);
		if (n == -EAGAIN)
			break;
		if (n < 0) {
			int code = mb_exception_for(n);
			if (used == 0) {
				ret = -ECONNRESET; /* cannot resynchronise a TCP stream */
				break;
			}
			off += used;
			if (code == 0 || s->faults.timeout)
				continue;
			n = mb_build_exception(q.fc, (uint8_t)code, pdu, sizeof(pdu));
		} else {
			off += used;
			if (s->faults.drop) {
				ret = -ECONNRESET;
				break;
			}
			n = answer_pdu(p, &q, pdu, sizeof(pdu));
		}
		if (n <= 0)
			continue;
		uint16_t tid = s->faults.tid ? (uint16_t)(q.tid + 0x1000) : q.tid;
		uint8_t *adu = c->tx + c->txlen;
		int len = mb_tcp_wrap(tid, q.unit, pdu, (size_t)n, adu, sizeof(c->tx) - c->txlen);
		if (len < 0)
			continue;
		if (s->faults.garbage)
			len = (int)garbage(s, adu, (size_t)len + 3);
		c->txlen += (size_t)len;
		if (s->faults.slow_ms) {
			c->held = c->txlen;
			loop_task_add(s->loop, &c->slow,
				      loop_now(s->loop) +
					      (usec_t)s->faults.slow_ms * USEC_PER_MSEC);
		}
	}
	memmove(c->rx, c->rx + off, c->rxlen - off);
	c->rxlen -= off;
	return ret;
}

/* ---- a Solarman V5 data logger in front of the port's devices ----------
 *
 * Written from the "Solarman V5 Protocol" document of the pysolarmanv5
 * project: the client's request (control 0x4510) carries frame type 2,
 * sensor type, three time fields and the RTU frame; the logger answers with
 * control 0x1510, the first sequence byte echoed and the second its own
 * counter, its serial number, frame type 2, status 1, its total working
 * time, power-on time and offset time (seconds), the RTU answer, the
 * checksum and 0x15.  Between answers it sends frames of its own, such as
 * heartbeats (0x4710, one payload byte). */

#define V5_FACTORY_EPOCH 1577836800 /* 2020-01-01: "out of factory" */

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Append a V5 frame to c->tx.  Returns its length or -ENOSPC. */
static int v5_append(struct sim_conn *c, uint16_t control, uint8_t seq0, uint32_t serial,
		     const uint8_t *payload, size_t plen)
{
	struct sim_port *p = c->port;
	uint8_t seq[2] = { seq0, p->v5_seq++ };
	int n = solarman_encode(control, seq, serial, payload, plen, c->tx + c->txlen,
				sizeof(c->tx) - c->txlen);
	if (n > 0)
		c->txlen += (size_t)n;
	return n;
}

/* The response payload's prefix: frame type, status, the three times. */
static void v5_rsp_prefix(struct sim_port *p, uint8_t *out)
{
	uint32_t now = (uint32_t)time(NULL),
		 up = (uint32_t)((now_usec() - p->v5_started) / USEC_PER_SEC);
	out[0] = 0x02;                             /* the inverter's data */
	out[1] = 0x01;                             /* real time */
	put_le32(out + 2, now - V5_FACTORY_EPOCH); /* total working time */
	put_le32(out + 6, up);                     /* power-on time */
	put_le32(out + 10, V5_FACTORY_EPOCH);      /* offset: now - working time */
}

/* One request frame f: answer it (or not) into c->tx, faults applied.
 * Returns 0, or -ECONNRESET (fault drop). */
static int v5_request(struct sim_conn *c, const struct solarman_frame *f)
{
	struct sim_port *p = c->port;
	struct sim *s = p->sim;
	const struct sim_faults *fl = &s->faults;
	uint8_t payload[SOLARMAN_RSP_PREFIX + MB_RTU_ADU_MAX], pdu[MB_PDU_MAX];
	/* the logger-serial fault: another stick answers (one serial lower) */
	uint32_t serial = !fl->logger_serial ? p->logger_serial
		: p->logger_serial > 1       ? p->logger_serial - 1
					     : 2;
	struct mb_request q = { 0 };
	size_t used = 0, plen = SOLARMAN_RSP_PREFIX;
	size_t start = c->txlen;
	int n;

	if (fl->drop)
		return -ECONNRESET;
	if (fl->heartbeat) {
		uint8_t zero = 0;
		(void)v5_append(c, SOLARMAN_CTL_HEARTBEAT, 0, serial, &zero, 1);
		start = c->txlen;
	}
	v5_rsp_prefix(p, payload);
	if (f->serial != p->logger_serial) {
		/* addressed to another logger: an answer without a Modbus frame,
		 * under this logger's serial */
		log_info("sim", "logger %u: request for serial %u", p->logger_serial, f->serial);
	} else if (f->payload_len < SOLARMAN_REQ_PREFIX + 4 ||
		   mb_rtu_parse_request(f->payload + SOLARMAN_REQ_PREFIX,
					f->payload_len - SOLARMAN_REQ_PREFIX, &q, &used) < 0) {
		return 0; /* nothing the inverter would answer */
	} else {
		n = answer_pdu(p, &q, pdu, sizeof(pdu));
		if (n <= 0)
			return 0;
		n = mb_rtu_wrap(q.unit, pdu, (size_t)n, payload + plen, sizeof(payload) - plen);
		if (n < 0)
			return 0;
		plen += (size_t)n;
	}
	n = v5_append(c, SOLARMAN_CTL_RESPONSE, fl->tid ? (uint8_t)(f->seq[0] + 1) : f->seq[0],
		      serial, payload, plen);
	if (n < 0)
		return 0;
	if (fl->checksum)
		c->tx[start + (size_t)n - 2] ^= 0x5A;
	if (fl->garbage)
		(void)garbage(s, c->tx + start, (size_t)n);
	if (fl->slow_ms) {
		c->held = c->txlen;
		loop_task_add(s->loop, &c->slow,
			      loop_now(s->loop) + (usec_t)fl->slow_ms * USEC_PER_MSEC);
	}
	return 0;
}

/* The V5 frames in c->rx.  Bytes that start no frame are skipped, as a
 * logger does.  Returns 0 or -ECONNRESET. */
static int conn_process_v5(struct sim_conn *c)
{
	size_t off = 0;
	int ret = 0;

	while (off < c->rxlen && !c->held) {
		struct solarman_frame f;
		/* room for a heartbeat and the largest answer */
		if (c->txlen + 2 * SOLARMAN_FRAME_MAX > sizeof(c->tx))
			break;
		int n = solarman_parse(c->rx + off, c->rxlen - off, &f);
		if (n == 0)
			break;
		if (n < 0) {
			off++;
			continue;
		}
		off += (size_t)n;
		/* the client's answers to the logger's own frames need nothing */
		if (f.control != SOLARMAN_CTL_REQUEST)
			continue;
		ret = v5_request(c, &f);
		if (ret < 0)
			break;
	}
	memmove(c->rx, c->rx + off, c->rxlen - off);
	c->rxlen -= off;
	return ret;
}

static void conn_update_events(struct sim_conn *c)
{
	uint32_t ev = 0;
	if (!c->held && c->rxlen < sizeof(c->rx))
		ev |= EPOLLIN;
	if (!c->held && c->txlen > 0)
		ev |= EPOLLOUT;
	if (ev != c->io.events)
		loop_io_mod(c->port->sim->loop, &c->io, ev);
}

static int conn_input(struct sim_conn *c)
{
	if (c->port->p1) {
		/* A P1 port only sends: what a client writes to a bridge goes to
		 * the meter's request line and is never answered. */
		c->rxlen = 0;
		return 0;
	}
	return c->port->solarman ? conn_process_v5(c) : conn_process(c);
}

static void conn_service(struct sim_conn *c)
{
	if (conn_input(c) < 0 || conn_flush(c) < 0) {
		conn_close(c);
		return;
	}
	/* flushing may have made room for answers still waiting in rx */
	if (!c->held && c->rxlen > 0 && c->txlen == 0 && conn_input(c) == 0)
		(void)conn_flush(c);
	conn_update_events(c);
}

static void conn_cb(struct loop_io *io, uint32_t events)
{
	struct sim_conn *c = container_of(io, struct sim_conn, io);
	if (events & EPOLLIN) {
		ssize_t n = recv(io->fd, c->rx + c->rxlen, sizeof(c->rx) - c->rxlen, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			conn_close(c);
			return;
		}
		if (n > 0)
			c->rxlen += (size_t)n;
	} else if (events & (EPOLLHUP | EPOLLERR)) {
		conn_close(c);
		return;
	}
	conn_service(c);
}

static int slow_done(struct task *t, usec_t now)
{
	(void)now;
	struct sim_conn *c = container_of(t, struct sim_conn, slow);
	c->held = 0;
	conn_service(c);
	return 0;
}

static void accept_cb(struct loop_io *io, uint32_t events)
{
	(void)events;
	struct sim_port *p = container_of(io, struct sim_port, io);
	struct sim *s = p->sim;
	for (;;) {
		int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN, or a transient error: try on the next event */
		/* a real inverter with a single-client stack resets the newcomer */
		if (p->asleep || (s->faults.single_client && p->nconns >= 1) ||
		    p->nconns >= SIM_MAX_CONNS) {
			struct linger lg = { .l_onoff = 1, .l_linger = 0 };
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct sim_conn *c = NULL;
		for (unsigned i = 0; i < SIM_MAX_CONNS; i++) {
			if (!p->conns[i].used) {
				c = &p->conns[i];
				break;
			}
		}
		*c = (struct sim_conn){
			.port = p,
			.slow = { .name = "sim-slow", .run = slow_done, .idx = SCHED_NOT_QUEUED },
			.used = true,
		};
		if (loop_io_add(s->loop, &c->io, fd, EPOLLIN, conn_cb) < 0) {
			close(fd);
			c->used = false;
			continue;
		}
		p->nconns++;
	}
}

static int tcp_listen(struct sim_port *p)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST | AI_PASSIVE };
	struct addrinfo *ai = NULL;
	char portstr[8];
	int fd = -1, r;

	snprintf(portstr, sizeof(portstr), "%u", p->port);
	r = getaddrinfo(p->host, portstr, &hints, &ai);
	if (r != 0)
		return -EINVAL;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		goto out_ai;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0) {
		r = -errno;
		goto out_fd;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		r = -errno;
		goto out_fd;
	}
	p->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						 : ((struct sockaddr_in *)&ss)->sin_port);
	r = loop_io_add(p->sim->loop, &p->io, fd, EPOLLIN, accept_cb);
	if (r < 0)
		goto out_fd;
	p->fd = fd;
	freeaddrinfo(ai);
	return 0;
out_fd:
	close(fd);
out_ai:
	freeaddrinfo(ai);
	return r;
}

static void tcp_unlisten(struct sim_port *p)
{
	if (p->fd < 0)
		return;
	loop_io_del(p->sim->loop, &p->io);
	close(p->fd);
	p->fd = -1;
}

/* ---- RTU ---------------------------------------------------------------- */

static void rtu_send(struct sim_port *p, const uint8_t *buf, size_t len)
{
	/* A serial line has no backpressure worth keeping: what the pty cannot
	 * take now is lost, like bytes on a bus nobody listens to. */
	while (len > 0) {
		ssize_t n = write(p->fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

static void rtu_process(struct sim_port *p)
{
	struct sim *s = p->sim;
	size_t off = 0;

	while (off < p->rxlen) {
		struct mb_request q = { 0 };
		size_t used = 0;
		uint8_t pdu[MB_PDU_MAX], adu[MB_RTU_ADU_MAX + 8];
		int n = mb_rtu_parse_request(p->rx + off, p->rxlen - off, &q, &used);
		if (n == -EAGAIN)
			break;
		if (n < 0) {
			/* CRC errors and noise: skip the frame when its length is
			 * known, else one byte, and look for the next frame */
			int code = mb_exception_for(n);
			off += used ? used : 1;
			if (code == 0 || !used || p->asleep || s->faults.timeout ||
			    !find_device(p, q.unit))
				continue;
			n = mb_build_exception(q.fc, (uint8_t)code, pdu, sizeof(pdu));
		} else {
			off += used;
			if (p->asleep)
				continue;
			n = answer_pdu(p, &q, pdu, sizeof(pdu));
		}
		if (n <= 0)
			continue;
		int len = mb_rtu_wrap(q.unit, pdu, (size_t)n, adu, sizeof(adu));
		if (len < 0)
			continue;
		if (s->faults.garbage)
			len = (int)garbage(s, adu, (size_t)len);
		if (s->faults.slow_ms) {
			/* answer late from a timer; a newer answer replaces an older
			 * one still waiting (the client has given up on it) */
			memcpy(p->pending, adu, (size_t)len);
			p->npending = (size_t)len;
			loop_task_add(s->loop, &p->slow,
				      loop_now(s->loop) +
					      (usec_t)s->faults.slow_ms * USEC_PER_MSEC);
			continue;
		}
		rtu_send(p, adu, (size_t)len);
	}
	memmove(p->rx, p->rx + off, p->rxlen - off);
	p->rxlen -= off;
	if (p->rxlen > 0)
		loop_task_add(s->loop, &p->rtu_flush, loop_now(s->loop) + RTU_SILENCE_USEC);
	else
		loop_task_cancel(s->loop, &p->rtu_flush);
}

static int rtu_flush_run(struct task *t, usec_t now)
{
	(void)now;
	/* a partial frame followed by silence is noise */
	struct sim_port *p = container_of(t, struct sim_port, rtu_flush);
	p->rxlen = 0;
	return 0;
}

static int rtu_slow_run(struct task *t, usec_t now)
{
	(void)now;
	struct sim_port *p = container_of(t, struct sim_port, slow);
	if (p->npending && p->fd >= 0)
		rtu_send(p, p->pending, p->npending);
	p->npending = 0;
	return 0;
}

static void rtu_cb(struct loop_io *io, uint32_t events)
{
	struct sim_port *p = container_of(io, struct sim_port, io);
	if (events & EPOLLIN) {
		if (p->rxlen == sizeof(p->rx))
			p->rxlen = 0; /* a full buffer of noise */
		ssize_t n = read(io->fd, p->rx + p->rxlen, sizeof(p->rx) - p->rxlen);
		if (n > 0) {
			p->rxlen += (size_t)n;
			rtu_process(p);
		}
	}
}

static speed_t baud_const(unsigned baud)
{
	switch (baud) {
	case 1200:
		return B1200;
	case 2400:
		return B2400;
	case 4800:
		return B4800;
	case 19200:
		return B19200;
	case 38400:
		return B38400;
	case 57600:
		return B57600;
	case 115200:
		return B115200;
	default:
		return B9600;
	}
}

static int tty_raw(int fd, unsigned baud)
{
	struct termios t;
	if (tcgetattr(fd, &t) < 0)
		return -errno;
	cfmakeraw(&t);
	t.c_cflag |= CLOCAL | CREAD;
	cfsetispeed(&t, baud_const(baud));
	cfsetospeed(&t, baud_const(baud));
	if (tcsetattr(fd, TCSANOW, &t) < 0)
		return -errno;
	return 0;
}

static int rtu_open(struct sim_port *p)
{
	int fd = -1, keep = -1, r;

	if (p->kind == SIM_RTU_PTY) {
		fd = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (grantpt(fd) < 0 || unlockpt(fd) < 0 ||
		    ptsname_r(fd, p->pts, sizeof(p->pts)) != 0) {
			r = -errno;
			goto out_fd;
		}
		/* Hold the slave open: with no slave open the master reads EIO
		 * and polls as hung up, and the line settings would be lost
		 * between clients. */
		keep = open(p->pts, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
		if (keep < 0) {
			r = -errno;
			goto out_fd;
		}
		r = tty_raw(keep, p->baud);
		if (r < 0)
			goto out_keep;
		struct stat st;
		if (lstat(p->path, &st) == 0) {
			if (!S_ISLNK(st.st_mode)) {
				r = -EEXIST; /* never replace a real file */
				goto out_keep;
			}
			unlink(p->path);
		}
		if (symlink(p->pts, p->path) < 0) {
			r = -errno;
			goto out_keep;
		}
	} else {
		fd = open(p->path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		r = tty_raw(fd, p->baud);
		if (r < 0)
			goto out_fd;
	}
	r = loop_io_add(p->sim->loop, &p->io, fd, EPOLLIN, rtu_cb);
	if (r < 0)
		goto out_link;
	p->fd = fd;
	p->keep_fd = keep;
	return 0;
out_link:
	if (p->kind == SIM_RTU_PTY)
		unlink(p->path);
out_keep:
	if (keep >= 0)
		close(keep);
out_fd:
	close(fd);
	return r;
}

/* ---- endpoints ---------------------------------------------------------- */

/* Every second: the meter's telegram to every client, unless the timeout
 * fault holds the meter silent.  A client that cannot take it is dropped. */
static int p1_run(struct task *t, usec_t now)
{
	struct sim_port *p = container_of(t, struct sim_port, p1_task);
	char buf[2048];
	int n;
	UNUSED(now);

	if (p->asleep || p->sim->faults.timeout || !p->ndevs)
		return 0;
	n = sim_p1_telegram(p->devs[0], p->p1, time(NULL), buf, sizeof(buf));
	if (n < 0)
		return 0;
	p->p1_sent++;
	for (unsigned i = 0; i < SIM_MAX_CONNS; i++) {
		struct sim_conn *c = &p->conns[i];
		if (!c->used)
			continue;
		if (c->txlen + (size_t)n > sizeof(c->tx) || conn_flush(c) < 0) {
			conn_close(c);
			continue;
		}
		memcpy(c->tx + c->txlen, buf, (size_t)n);
		c->txlen += (size_t)n;
		if (conn_flush(c) < 0)
			conn_close(c);
	}
	return 0;
}

int sim_port_open(struct sim_port *p)
{
	struct sim *s = p->sim;
	int r;

	p->rtu_flush = (struct task){ .name = "sim-rtu-silence",
				      .run = rtu_flush_run,
				      .idx = SCHED_NOT_QUEUED };
	p->slow = (struct task){ .name = "sim-rtu-slow",
				 .run = rtu_slow_run,
				 .idx = SCHED_NOT_QUEUED };
	p->v5_started = now_usec();
	r = p->kind == SIM_TCP ? tcp_listen(p) : rtu_open(p);
	if (r < 0)
		return r;
	if (p->p1) {
		p->p1_task = (struct task){ .name = "sim-p1",
					    .run = p1_run,
					    .period = SIM_P1_INTERVAL_USEC,
					    .idx = SCHED_NOT_QUEUED };
		loop_task_add(s->loop, &p->p1_task, loop_now(s->loop));
		fprintf(s->out, "egw-sim: listening %s tcp %s:%u unit 1 profile p1\n",
			p->p1 == SIM_P1_SE ? "p1_se" : "p1", p->host, p->port);
		fflush(s->out);
		return 0;
	}
	for (unsigned i = 0; i < p->ndevs; i++) {
		const struct sim_device *d = p->devs[i];
		/* a variant served from its own map names the profile that reads it */
		bool variant = d->model && strcmp(d->model->name, d->prof->name) != 0;
		if (p->kind == SIM_TCP && p->solarman)
			fprintf(s->out, "egw-sim: listening %s tcp %s:%u unit %u%s%s solarman %u\n",
				variant ? d->model->name : d->prof->name, p->host, p->port, d->unit,
				variant ? " profile " : "", variant ? d->prof->name : "",
				p->logger_serial);
		else if (p->kind == SIM_TCP)
			fprintf(s->out, "egw-sim: listening %s tcp %s:%u unit %u%s%s\n",
				variant ? d->model->name : d->prof->name, p->host, p->port, d->unit,
				variant ? " profile " : "", variant ? d->prof->name : "");
		else
			fprintf(s->out, "egw-sim: listening %s rtu %s unit %u%s%s\n",
				variant ? d->model->name : d->prof->name, p->path, d->unit,
				variant ? " profile " : "", variant ? d->prof->name : "");
	}
	fflush(s->out);
	return 0;
}

void sim_port_close(struct sim_port *p)
{
	struct loop *l = p->sim->loop;
	if (p->p1_task.run)
		loop_task_cancel(l, &p->p1_task);
	if (p->rtu_flush.run) { /* set up by sim_port_open */
		loop_task_cancel(l, &p->rtu_flush);
		loop_task_cancel(l, &p->slow);
	}
	if (p->kind == SIM_TCP) {
		sim_port_drop_all(p);
		tcp_unlisten(p);
		return;
	}
	if (p->fd >= 0) {
		loop_io_del(l, &p->io);
		close(p->fd);
		p->fd = -1;
	}
	if (p->keep_fd >= 0) {
		close(p->keep_fd);
		p->keep_fd = -1;
		unlink(p->path);
	}
}

static void port_set_asleep(struct sim_port *p, bool asleep)
{
	if (p->asleep == asleep)
		return;
	p->asleep = asleep;
	if (p->kind != SIM_TCP)
		return; /* RTU: silent while asleep (checked per request) */
	if (asleep) {
		sim_port_drop_all(p);
		tcp_unlisten(p);
	} else if (p->fd < 0) {
		int r = tcp_listen(p); /* same port as before: p->port is the bound one */
		if (r < 0)
			log_warn("sim", "wake: cannot listen again on %s:%u: %s", p->host, p->port,
				 egw_strerror(r));
	}
}

/* Manual sleep puts every endpoint to sleep; night sleep only those with an
 * inverter on them (meters stay awake at night, as real ones do). */
static bool port_wants_sleep(const struct sim *s, const struct sim_port *p)
{
	if (s->faults.sleep)
		return true;
	if (!s->faults.night_sleep)
		return false;
	for (unsigned i = 0; i < p->ndevs; i++) {
		const struct sim_device *d = p->devs[i];
		bool meter = d->prof->dtype && !strcmp(d->prof->dtype, "meter");
		if (!meter && d->vals.night)
			return true;
	}
	return false;
}

void sim_update_sleep(struct sim *s)
{
	bool any = false;
	for (unsigned i = 0; i < s->nports; i++) {
		bool want = port_wants_sleep(s, &s->ports[i]);
		port_set_asleep(&s->ports[i], want);
		any |= want;
	}
	s->asleep = any;
}
