/* Transports: TCP, RTU over a serial port, RTU over TCP, in-memory. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "base/util.h"
#include "modbus/transport.h"

/* ---- TCP (and RTU over TCP: same socket, RTU framing) ---- */

static void set_opt(int fd, int level, int name, int value)
{
	/* Best effort: a socket without keepalive tuning still works. */
	(void)setsockopt(fd, level, name, &value, sizeof(value));
}

static int tcp_open(struct mb_client *c)
{
	int fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	set_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
	set_opt(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
	set_opt(fd, IPPROTO_TCP, TCP_KEEPIDLE, 10);
	set_opt(fd, IPPROTO_TCP, TCP_KEEPINTVL, 5);
	set_opt(fd, IPPROTO_TCP, TCP_KEEPCNT, 3);
	c->fd = fd;
	if (connect(fd, (const struct sockaddr *)&c->addr, c->addr_len) == 0)
		return 0;
	if (errno == EINPROGRESS)
		return -EINPROGRESS;
	int r = -errno;
	close(fd);
	c->fd = -1;
	return r;
}

static int tcp_check_connect(struct mb_client *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return err ? -err : 0;
}

static ssize_t fd_send(struct mb_client *c, const uint8_t *buf, size_t len)
{
	ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
	return n < 0 ? -errno : n;
}

static ssize_t fd_recv(struct mb_client *c, uint8_t *buf, size_t cap)
{
	ssize_t n = recv(c->fd, buf, cap, 0);
	return n < 0 ? -errno : n;
}

static void fd_close(struct mb_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

const struct mb_transport mb_transport_tcp = {
	.name = "tcp",
	.rtu = false,
	.has_fd = true,
	.open = tcp_open,
	.check_connect = tcp_check_connect,
	.send = fd_send,
	.recv = fd_recv,
	.close = fd_close,
};

const struct mb_transport mb_transport_rtu_over_tcp = {
	.name = "rtu-over-tcp",
	.rtu = true,
	.has_fd = true,
	.open = tcp_open,
	.check_connect = tcp_check_connect,
	.send = fd_send,
	.recv = fd_recv,
	.close = fd_close,
};

/* Solarman V5: a TCP socket; the core wraps and unwraps the V5 frames. */
const struct mb_transport mb_transport_solarman = {
	.name = "solarman",
	.rtu = true,
	.has_fd = true,
	.solarman = true,
	.open = tcp_open,
	.check_connect = tcp_check_connect,
	.send = fd_send,
	.recv = fd_recv,
	.close = fd_close,
};

/* ---- RTU on a serial port ---- */

static const struct {
	unsigned baud;
	speed_t speed;
} bauds[] = {
	{ 1200, B1200 },   { 2400, B2400 },     { 4800, B4800 },
	{ 9600, B9600 },   { 19200, B19200 },   { 38400, B38400 },
	{ 57600, B57600 }, { 115200, B115200 }, { 230400, B230400 },
};

static speed_t speed_of(unsigned baud)
{
	for (size_t i = 0; i < ARRAY_SIZE(bauds); i++)
		if (bauds[i].baud == baud)
			return bauds[i].speed;
	return 0;
}

bool mb_serial_baud_ok(unsigned baud)
{
	return speed_of(baud) != 0;
}

int mb_serial_line_open(const char *path, unsigned baud, char parity, unsigned databits,
			unsigned stopbits, int access, int *ret_fd)
{
	struct termios tio;
	speed_t speed = speed_of(baud);
	int fd, r;

	if (!speed)
		return -EINVAL;
	fd = open(path, access | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (tcgetattr(fd, &tio) < 0)
		goto err_close;
	cfmakeraw(&tio);
	cfsetispeed(&tio, speed);
	cfsetospeed(&tio, speed);
	tio.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | PARODD | CSTOPB | CRTSCTS);
	tio.c_cflag |= (databits == 7 ? CS7 : CS8) | CLOCAL | CREAD;
	if (parity == 'E')
		tio.c_cflag |= PARENB;
	else if (parity == 'O')
		tio.c_cflag |= PARENB | PARODD;
	if (stopbits == 2)
		tio.c_cflag |= CSTOPB;
	tio.c_cc[VMIN] = 0;
	tio.c_cc[VTIME] = 0;
	if (tcsetattr(fd, TCSANOW, &tio) < 0)
		goto err_close;
	tcflush(fd, TCIOFLUSH);
	*ret_fd = fd;
	return 0;

err_close:
	r = -errno;
	close(fd);
	return r;
}

static int serial_open(struct mb_client *c)
{
	return mb_serial_line_open(c->cfg.serial_port, c->cfg.baudrate, c->cfg.parity, 8,
				   c->cfg.stopbits, O_RDWR, &c->fd);
}

static int serial_check_connect(struct mb_client *c)
{
	UNUSED(c);
	return 0;
}

static ssize_t serial_send(struct mb_client *c, const uint8_t *buf, size_t len)
{
	ssize_t n = write(c->fd, buf, len);
	return n < 0 ? -errno : n;
}

static ssize_t serial_recv(struct mb_client *c, uint8_t *buf, size_t cap)
{
	ssize_t n = read(c->fd, buf, cap);
	if (n == 0)
		return -EAGAIN; /* a tty with VMIN 0: no data, not end of stream */
	return n < 0 ? -errno : n;
}

const struct mb_transport mb_transport_rtu = {
	.name = "rtu",
	.rtu = true,
	.has_fd = true,
	.open = serial_open,
	.check_connect = serial_check_connect,
	.send = serial_send,
	.recv = serial_recv,
	.close = fd_close,
};

/* ---- in-memory: the server is a callback in the same process ---- */

static int mem_open(struct mb_client *c)
{
	if (c->cfg.mem->refuse)
		return -ECONNREFUSED;
	c->cfg.mem->connects++;
	c->mem_n = c->mem_first = 0;
	c->mem_in_len = 0;
	return 0;
}

static int mem_check_connect(struct mb_client *c)
{
	UNUSED(c);
	return 0;
}

void mb_mem_schedule(struct mb_client *c)
{
	if (c->mem_n)
		loop_task_add(c->loop, &c->mem_task, c->mem_replies[c->mem_first].due);
}

/* Serve one parsed request; queue its reply (if any) for later delivery. */
static void mem_serve(struct mb_client *c, const struct mb_request *q, int perr)
{
	struct mb_mem_server *m = c->cfg.mem;
	uint8_t pdu[MB_PDU_MAX];
	int n;

	m->requests++;
	if (m->handle_raw) {
		struct mb_mem_reply *raw =
			&c->mem_replies[(c->mem_first + c->mem_n) % MB_MEM_SLOTS];
		if (c->mem_n == MB_MEM_SLOTS)
			return;
		n = m->handle_raw(m->ud, q, raw->buf, sizeof(raw->buf));
		if (n <= 0)
			return;
		raw->len = MIN((size_t)n, sizeof(raw->buf));
		raw->off = 0;
		raw->due = now_usec() + m->delay;
		c->mem_n++;
		mb_mem_schedule(c);
		return;
	}
	if (perr < 0)
		n = mb_exception_for(perr) ? MB_EXCEPTION_ERR(mb_exception_for(perr)) : 0;
	else
		n = m->handle(m->ud, q, pdu, sizeof(pdu));
	if (n < 0 && mb_is_exception_err(n))
		n = mb_build_exception(q->fc, (uint8_t)mb_exception_code(n), pdu, sizeof(pdu));
	if (n <= 0 || c->mem_n == MB_MEM_SLOTS)
		return; /* no answer: the client will time out */
	struct mb_mem_reply *r = &c->mem_replies[(c->mem_first + c->mem_n) % MB_MEM_SLOTS];
	int len = mb_tcp_wrap(q->tid, q->unit, pdu, (size_t)n, r->buf, sizeof(r->buf));
	if (len < 0)
		return;
	r->len = (size_t)len;
	r->off = 0;
	r->due = now_usec() + m->delay;
	c->mem_n++;
	mb_mem_schedule(c);
}

static ssize_t mem_send(struct mb_client *c, const uint8_t *buf, size_t len)
{
	if (len > sizeof(c->mem_in) - c->mem_in_len)
		return -EAGAIN;
	memcpy(c->mem_in + c->mem_in_len, buf, len);
	c->mem_in_len += len;
	for (;;) {
		struct mb_request q = { 0 };
		size_t used = 0;
		int r = mb_tcp_parse_request(c->mem_in, c->mem_in_len, &q, &used);
		if (r == -EAGAIN)
			break;
		if (used == 0) {
			c->mem_in_len = 0; /* unframeable: a real server would hang up */
			break;
		}
		mem_serve(c, &q, r);
		memmove(c->mem_in, c->mem_in + used, c->mem_in_len - used);
		c->mem_in_len -= used;
	}
	return (ssize_t)len;
}

static ssize_t mem_recv(struct mb_client *c, uint8_t *buf, size_t cap)
{
	if (!c->mem_n)
		return -EAGAIN;
	struct mb_mem_reply *r = &c->mem_replies[c->mem_first];
	if (r->due > now_usec())
		return -EAGAIN;
	size_t n = MIN(cap, r->len - r->off);
	memcpy(buf, r->buf + r->off, n);
	r->off += n;
	if (r->off == r->len) {
		c->mem_first = (c->mem_first + 1) % MB_MEM_SLOTS;
		c->mem_n--;
	}
	return (ssize_t)n;
}

static void mem_close(struct mb_client *c)
{
	loop_task_cancel(c->loop, &c->mem_task);
	c->mem_n = c->mem_first = 0;
	c->mem_in_len = 0;
}

const struct mb_transport mb_transport_mem = {
	.name = "mem",
	.rtu = false,
	.has_fd = false,
	.open = mem_open,
	.check_connect = mem_check_connect,
	.send = mem_send,
	.recv = mem_recv,
	.close = mem_close,
};
