/* Modbus TCP proxy in front of the devices; see proxy.h. */
#include "devices/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/util.h"
#include "devices/devconf.h"
#include "devices/device.h"
#include "loop/loop.h"
#include "modbus/client.h"
#include "modbus/codec.h"

#define PROXY_IN_MAX (2 * MB_TCP_ADU_MAX)
#define PROXY_OUT_MAX (8 * MB_TCP_ADU_MAX)
#define PROXY_PEER_LEN 64
#define PROXY_SWEEP_US (250 * USEC_PER_MSEC)

struct pclient {
	struct proxy *p;
	struct pclient *next;
	struct loop_io io;
	int fd;
	char peer[PROXY_PEER_LEN];
	uint8_t in[PROXY_IN_MAX];
	size_t nin;
	uint8_t out[PROXY_OUT_MAX];
	size_t nout;
	unsigned pending; /* requests waiting for a device */
	usec_t last_active;
};

/* One client's request waiting for a device's answer. */
struct waiter {
	struct waiter *next;
	struct pclient *c; /* NULL once that client is gone */
	struct mb_request q;
};

/* One request queued on a device's client; several identical reads share it.
 * It outlives the proxy when the proxy is freed first (p is then NULL). */
struct fwd {
	struct proxy *p;
	struct fwd *next;
	char dev[DEVCONF_ID_LEN];
	char peer[PROXY_PEER_LEN]; /* writes: who asked, for the log */
	uint8_t fc;
	uint16_t addr, count;
	struct waiter *waiters;
};

struct proxy {
	struct loop *loop;
	struct devices *ds;
	struct loop_io lio;
	int lfd;
	uint16_t port;
	usec_t max_age;
	bool allow_writes;
	json_t *allowlist;
	unsigned max_clients;
	usec_t idle_timeout;
	struct pclient *clients;
	struct fwd *fwds;       /* in flight */
	struct fwd *completing; /* the one whose waiters are being answered */
	unsigned nfwd;
	struct task sweep;
	struct proxy_stats st;
};

static void client_process(struct pclient *c);

/* ---- clients ------------------------------------------------------------ */

static void forget_client(struct fwd *f, const struct pclient *c)
{
	for (; f; f = f->next)
		for (struct waiter *w = f->waiters; w; w = w->next)
			if (w->c == c)
				w->c = NULL;
}

static void client_close(struct pclient *c, const char *why)
{
	struct proxy *p = c->p;

	for (struct pclient **pp = &p->clients; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	forget_client(p->fwds, c);
	if (p->completing)
		forget_client(p->completing, c);
	loop_io_del(p->loop, &c->io);
	close(c->fd);
	p->st.clients--;
	if (why) {
		p->st.clients_dropped++;
		log_info("proxy", "client %s dropped: %s", c->peer, why);
	}
	free(c);
}

static void client_want(struct pclient *c)
{
	uint32_t ev = 0;

	if (c->pending < PROXY_CLIENT_PENDING)
		ev |= EPOLLIN;
	if (c->nout)
		ev |= EPOLLOUT;
	if (ev != c->io.events)
		loop_io_mod(c->p->loop, &c->io, ev);
}

/* Flushes what it can.  Returns 0, or -1 when the client was closed. */
static int client_flush(struct pclient *c)
{
	while (c->nout) {
		ssize_t n = send(c->fd, c->out, c->nout, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			client_close(c, NULL);
			return -1;
		}
		memmove(c->out, c->out + n, c->nout - (size_t)n);
		c->nout -= (size_t)n;
	}
	client_want(c);
	return 0;
}

/* Queues one answer.  Returns 0, or -1 when the client was closed (it does
 * not read its answers). */
static int client_send_pdu(struct pclient *c, const struct mb_request *q, const uint8_t *pdu,
			   int pdu_len)
{
	uint8_t adu[MB_TCP_ADU_MAX];
	int n = pdu_len > 0 ? mb_tcp_wrap(q->tid, q->unit, pdu, (size_t)pdu_len, adu, sizeof(adu))
			    : -EINVAL;

	if (n < 0)
		return 0;
	if (c->nout + (size_t)n > sizeof(c->out)) {
		client_close(c, "does not read its answers");
		return -1;
	}
	memcpy(c->out + c->nout, adu, (size_t)n);
	c->nout += (size_t)n;
	return client_flush(c);
}

static int client_exception(struct pclient *c, const struct mb_request *q, uint8_t code)
{
	uint8_t pdu[2];
	return client_send_pdu(c, q, pdu, mb_build_exception(q->fc, code, pdu, sizeof(pdu)));
}

/* ---- requests to devices ------------------------------------------------ */

static void fwd_answer(struct proxy *p, struct waiter *w, int err, const uint16_t *regs,
		       unsigned count)
{
	uint8_t pdu[MB_PDU_MAX];
	int n, code;

	w->c->pending--;
	if (err == 0 && (w->q.fc == MB_FC_READ_HOLDING || w->q.fc == MB_FC_READ_INPUT)) {
		if (count != w->q.count) {
			p->st.no_answer++;
			client_exception(w->c, &w->q, MB_EX_GATEWAY_TARGET);
			return;
		}
		n = mb_build_read_response(&w->q, regs, pdu, sizeof(pdu));
		client_send_pdu(w->c, &w->q, pdu, n);
		return;
	}
	if (err == 0) {
		n = mb_build_write_response(&w->q, pdu, sizeof(pdu));
		client_send_pdu(w->c, &w->q, pdu, n);
		return;
	}
	code = mb_exception_code(err);
	if (code) {
		p->st.device_exceptions++;
	} else {
		/* Timeout, connection error, cancelled (device reopened), or an
		 * answer that does not parse: the target did not respond. */
		code = MB_EX_GATEWAY_TARGET;
		p->st.no_answer++;
	}
	client_exception(w->c, &w->q, (uint8_t)code);
}

static void fwd_done(struct fwd *f, int err, const uint16_t *regs, unsigned count)
{
	struct proxy *p = f->p;
	struct waiter *w, *next;

	if (p) {
		for (struct fwd **pp = &p->fwds; *pp; pp = &(*pp)->next)
			if (*pp == f) {
				*pp = f->next;
				break;
			}
		f->next = NULL;
		p->nfwd--;
		if (f->fc == MB_FC_WRITE_SINGLE || f->fc == MB_FC_WRITE_MULTIPLE) {
			if (err == 0)
				p->st.writes_ok++;
			else
				p->st.writes_failed++;
			log_info("proxy", "write from %s to %s fc %u registers %u..%u: %s", f->peer,
				 f->dev, f->fc, f->addr, f->addr + f->count - 1,
				 err == 0 ? "done" : egw_strerror(err));
		}
		p->completing = f;
		for (w = f->waiters; w; w = w->next)
			if (w->c)
				fwd_answer(p, w, err, regs, count);
		/* Answers first, then let the clients send more. */
		for (w = f->waiters; w; w = w->next)
			if (w->c)
				client_process(w->c);
		p->completing = NULL;
	}
	for (w = f->waiters; w; w = next) {
		next = w->next;
		free(w);
	}
	free(f);
}

static void fwd_read_cb(void *ud, int err, const uint16_t *regs, unsigned count)
{
	fwd_done(ud, err, regs, count);
}

static void fwd_write_cb(void *ud, int err)
{
	fwd_done(ud, err, NULL, 0);
}

static bool is_read(uint8_t fc)
{
	return fc == MB_FC_READ_HOLDING || fc == MB_FC_READ_INPUT;
}

/* Returns 0, or -1 when the client was closed. */
static int forward(struct pclient *c, struct device *d, const struct mb_request *q)
{
	struct proxy *p = c->p;
	struct waiter *w;
	struct fwd *f = NULL;
	int r;

	for (f = is_read(q->fc) ? p->fwds : NULL; f; f = f->next)
		if (f->fc == q->fc && f->addr == q->addr && f->count == q->count &&
		    strcmp(f->dev, device_id(d)) == 0)
			break;
	w = calloc(1, sizeof(*w));
	if (!w) {
		p->st.busy++;
		return client_exception(c, q, MB_EX_BUSY);
	}
	w->c = c;
	w->q = *q;
	if (f) {
		w->next = f->waiters;
		f->waiters = w;
		c->pending++;
		p->st.coalesced++;
		return 0;
	}
	if (p->nfwd >= PROXY_FWD_MAX || !device_client(d) || !(f = calloc(1, sizeof(*f)))) {
		free(w);
		p->st.busy++;
		return client_exception(c, q, MB_EX_BUSY);
	}
	f->p = p;
	snprintf(f->dev, sizeof(f->dev), "%s", device_id(d));
	snprintf(f->peer, sizeof(f->peer), "%s", c->peer);
	f->fc = q->fc;
	f->addr = q->addr;
	f->count = q->count;
	f->waiters = w;
	if (is_read(q->fc))
		r = mb_client_read(device_client(d), device_unit(d), q->fc, q->addr, q->count,
				   fwd_read_cb, f);
	else
		r = mb_client_write(device_client(d), device_unit(d), q->fc, q->addr, q->values,
				    q->count, fwd_write_cb, f);
	if (r < 0) {
		free(w);
		free(f);
		if (r == -ENOBUFS) {
			p->st.busy++;
			return client_exception(c, q, MB_EX_BUSY);
		}
		p->st.no_answer++;
		return client_exception(c, q, MB_EX_GATEWAY_TARGET);
	}
	f->next = p->fwds;
	p->fwds = f;
	p->nfwd++;
	c->pending++;
	p->st.forwarded++;
	return 0;
}

/* One well-formed request.  Returns 0, or -1 when the client was closed. */
static int client_request(struct pclient *c, const struct mb_request *q)
{
	struct proxy *p = c->p;
	uint16_t words[MB_MAX_READ];
	struct device *d;
	uint8_t pdu[MB_PDU_MAX];

	p->st.requests++;
	d = devices_find_proxy_unit(p->ds, q->unit);
	if (!d) {
		p->st.unknown_unit++;
		return client_exception(c, q, MB_EX_GATEWAY_PATH);
	}
	switch (q->fc) {
	case MB_FC_READ_HOLDING:
	case MB_FC_READ_INPUT:
		if (device_cached_words(d, q->fc, q->addr, q->count, p->max_age,
					loop_now_update(p->loop), words) == 0) {
			p->st.cached++;
			return client_send_pdu(c, q, pdu,
					       mb_build_read_response(q, words, pdu, sizeof(pdu)));
		}
		return forward(c, d, q);
	case MB_FC_WRITE_SINGLE:
	case MB_FC_WRITE_MULTIPLE:
		if (!p->allow_writes ||
		    !devconf_write_allowed(p->allowlist, device_id(d), q->addr, q->count)) {
			p->st.refused++;
			log_info("proxy", "write from %s to %s fc %u registers %u..%u refused (%s)",
				 c->peer, device_id(d), q->fc, q->addr, q->addr + q->count - 1,
				 p->allow_writes ? "not in modbus_write_allowlist"
						 : "proxy.allow_writes is off");
			return client_exception(c, q, MB_EX_ILLEGAL_FUNCTION);
		}
		return forward(c, d, q);
	default:
		p->st.refused++;
		return client_exception(c, q, MB_EX_ILLEGAL_FUNCTION);
	}
}

int proxy_split(const uint8_t *buf, size_t len, struct mb_request *ret_q, size_t *ret_used,
		uint8_t *ret_code)
{
	size_t used = 0;
	int r, code;

	memset(ret_q, 0, sizeof(*ret_q));
	*ret_used = 0;
	*ret_code = 0;
	r = mb_tcp_parse_request(buf, len, ret_q, &used);
	if (r == -EAGAIN)
		return PROXY_MORE;
	if (r == 0 && used >= 1 && used <= len) {
		*ret_used = used;
		return PROXY_REQUEST;
	}
	/* A frame the MBAP header delimits but whose PDU is bad gets its
	 * exception; anything else has lost the framing. */
	code = r < 0 ? mb_exception_for(r) : 0;
	if (!code || code > 255 || used == 0 || used > len)
		return PROXY_DROP;
	*ret_used = used;
	*ret_code = (uint8_t)code;
	return PROXY_EXCEPTION;
}

/* Parses and serves buffered requests while the client may have more
 * pending. */
static void client_process(struct pclient *c)
{
	while (c->pending < PROXY_CLIENT_PENDING && c->nin) {
		struct mb_request q;
		size_t used;
		uint8_t code;
		int r = proxy_split(c->in, c->nin, &q, &used, &code);

		if (r == PROXY_MORE)
			break;
		if (r == PROXY_DROP) {
			client_close(c, "not Modbus TCP");
			return;
		}
		memmove(c->in, c->in + used, c->nin - used);
		c->nin -= used;
		if (r == PROXY_EXCEPTION) {
			if (code == MB_EX_ILLEGAL_FUNCTION)
				c->p->st.refused++;
			if (client_exception(c, &q, code) < 0)
				return;
			continue;
		}
		if (client_request(c, &q) < 0)
			return;
	}
	client_want(c);
}

static void client_io(struct loop_io *io, uint32_t events)
{
	struct pclient *c = container_of(io, struct pclient, io);

	if (events & EPOLLOUT)
		if (client_flush(c) < 0)
			return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		ssize_t n;

		if (c->nin >= sizeof(c->in)) {
			if (events & (EPOLLHUP | EPOLLERR))
				client_close(c, NULL);
			else
				client_want(c);
			return;
		}
		n = recv(c->fd, c->in + c->nin, sizeof(c->in) - c->nin, 0);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (n <= 0) {
			client_close(c, NULL);
			return;
		}
		c->nin += (size_t)n;
		c->last_active = loop_now_update(c->p->loop);
		client_process(c);
	}
}

static void peer_name(const struct sockaddr_storage *sa, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		port = ntohs(s4->sin_port);
		snprintf(buf, len, "%s:%u", a, port);
	} else if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		port = ntohs(s6->sin6_port);
		snprintf(buf, len, "[%s]:%u", a, port);
	} else {
		snprintf(buf, len, "?");
	}
}

static void listener_io(struct loop_io *io, uint32_t events)
{
	struct proxy *p = container_of(io, struct proxy, lio);
	UNUSED(events);

	for (;;) {
		struct sockaddr_storage sa;
		socklen_t slen = sizeof(sa);
		int one = 1;
		int fd = accept4(p->lfd, (struct sockaddr *)&sa, &slen,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct pclient *c;

		if (fd < 0)
			return; /* EAGAIN, or an error the next accept sees again */
		if (p->st.clients >= p->max_clients || !(c = calloc(1, sizeof(*c)))) {
			p->st.clients_rejected++;
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->p = p;
		c->fd = fd;
		peer_name(&sa, c->peer, sizeof(c->peer));
		c->last_active = loop_now_update(p->loop);
		if (loop_io_add(p->loop, &c->io, fd, EPOLLIN, client_io) < 0) {
			close(fd);
			free(c);
			p->st.clients_rejected++;
			continue;
		}
		c->next = p->clients;
		p->clients = c;
		p->st.clients++;
		p->st.clients_total++;
		log_debug("proxy", "client %s connected", c->peer);
	}
}

/* Closes clients idle for idle_timeout (none of their requests pending). */
static int sweep_run(struct task *t, usec_t now)
{
	struct proxy *p = container_of(t, struct proxy, sweep);
	struct pclient *c = p->clients, *next;

	for (; c; c = next) {
		next = c->next;
		if (!c->pending && now - c->last_active > p->idle_timeout)
			client_close(c, "idle");
	}
	return 0;
}

/* ---- the proxy ---------------------------------------------------------- */

static int listen_on(const char *bind_addr, uint16_t port, int *ret_fd, uint16_t *ret_port)
{
	struct sockaddr_storage sa = { 0 };
	struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
	socklen_t slen;
	int one = 1, fd, r;

	if (inet_pton(AF_INET, bind_addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		slen = sizeof(*s4);
	} else if (inet_pton(AF_INET6, bind_addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		slen = sizeof(*s6);
	} else {
		return -EINVAL;
	}
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, slen) < 0 || listen(fd, 16) < 0)
		goto fail;
	slen = sizeof(sa);
	if (getsockname(fd, (struct sockaddr *)&sa, &slen) < 0)
		goto fail;
	*ret_port = ntohs(sa.ss_family == AF_INET ? s4->sin_port : s6->sin6_port);
	*ret_fd = fd;
	return 0;
fail:
	r = -errno;
	close(fd);
	return r;
}

int proxy_new(struct loop *l, struct devices *ds, const struct proxy_config *cfg,
	      struct proxy **ret)
{
	struct proxy *p = calloc(1, sizeof(*p));
	int r;

	if (!p)
		return -ENOMEM;
	p->loop = l;
	p->ds = ds;
	p->lfd = -1;
	p->max_clients = cfg->max_clients ? cfg->max_clients : PROXY_MAX_CLIENTS;
	p->idle_timeout = cfg->idle_timeout ? cfg->idle_timeout : 60 * USEC_PER_SEC;
	r = proxy_set_policy(p, cfg->max_age, cfg->allow_writes, cfg->allowlist);
	if (r < 0)
		goto free_proxy;
	r = listen_on(cfg->bind ? cfg->bind : "0.0.0.0", cfg->port, &p->lfd, &p->port);
	if (r < 0)
		goto free_proxy;
	r = loop_io_add(l, &p->lio, p->lfd, EPOLLIN, listener_io);
	if (r < 0)
		goto close_fd;
	p->sweep = (struct task){ .name = "proxy-sweep",
				  .run = sweep_run,
				  .period = PROXY_SWEEP_US,
				  .prio = 20,
				  .idx = SCHED_NOT_QUEUED };
	r = loop_task_add(l, &p->sweep, loop_now(l) + PROXY_SWEEP_US);
	if (r < 0)
		goto del_io;
	*ret = p;
	return 0;
del_io:
	loop_io_del(l, &p->lio);
close_fd:
	close(p->lfd);
free_proxy:
	json_decref(p->allowlist);
	free(p);
	return r;
}

void proxy_free(struct proxy *p)
{
	if (!p)
		return;
	while (p->clients)
		client_close(p->clients, NULL);
	for (struct fwd *f = p->fwds; f; f = f->next)
		f->p = NULL; /* their callbacks free them */
	loop_task_cancel(p->loop, &p->sweep);
	loop_io_del(p->loop, &p->lio);
	close(p->lfd);
	json_decref(p->allowlist);
	free(p);
}

int proxy_set_policy(struct proxy *p, usec_t max_age, bool allow_writes, const json_t *allowlist)
{
	json_t *copy = allowlist ? json_deep_copy(allowlist) : json_array();

	if (!copy)
		return -ENOMEM;
	json_decref(p->allowlist);
	p->allowlist = copy;
	p->max_age = max_age;
	p->allow_writes = allow_writes;
	return 0;
}

void proxy_stats(const struct proxy *p, struct proxy_stats *ret)
{
	*ret = p->st;
}

uint16_t proxy_port(const struct proxy *p)
{
	return p->port;
}
