/* Modbus client core: queue, pacing, timeouts, tid resync, reconnects.
 *
 * Everything happens in three entry points on the loop thread: the step
 * task (timers: timeouts, pacing, reconnect backoff), the fd watch (connect
 * completion, input, output) and the in-memory transport's delivery task.
 * Each runs with c->depth raised so that a callback may call
 * mb_client_free(); the outermost frame then releases the memory. */
#include "modbus/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "base/host.h"
#include "base/util.h"
#include "modbus/transport.h"

const usec_t mb_lat_bounds[MB_LAT_BUCKETS - 1] = {
	1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000, 1000000, 2000000,
};

static void process(struct mb_client *c);
static void read_input(struct mb_client *c);
static void client_io(struct loop_io *io, uint32_t events);

static usec_t min_usec(usec_t a, usec_t b)
{
	return a < b ? a : b;
}

/* Queue the step task at `due` unless it already runs earlier. */
static void kick(struct mb_client *c, usec_t due)
{
	if (c->freed)
		return;
	if (!sched_queued(&c->step) || c->step.due > due)
		loop_task_add(c->loop, &c->step, due);
}

static uint64_t rng_next(struct mb_client *c)
{
	/* xorshift64: jitter only, not security */
	uint64_t x = c->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	c->rng = x;
	return x;
}

static usec_t backoff_delay(struct mb_client *c)
{
	unsigned n = c->fail_streak ? MIN(c->fail_streak, 31u) : 1;
	usec_t d = 0;
	/* the wait the scheduler's rule gives after fail_streak failures */
	while (n--)
		d = sched_backoff_next(d, c->cfg.backoff_min, c->cfg.backoff_max);
	/* "equal jitter": half fixed, half random, so clients spread out */
	return d / 2 + (usec_t)(rng_next(c) % (uint64_t)(d / 2 + 1));
}

static struct mb_pending *head(struct mb_client *c)
{
	return &c->q[c->q_head];
}

static void record_latency(struct mb_client *c, usec_t lat)
{
	unsigned b = 0;
	while (b < MB_LAT_BUCKETS - 1 && lat > mb_lat_bounds[b])
		b++;
	c->stats.latency_hist[b]++;
	c->stats.last_latency = lat;
	c->stats.latency_sum += lat;
}

/* Run p's callback.  Returns false when the callback freed the client. */
static bool deliver(struct mb_client *c, const struct mb_pending *p, int err,
		    const struct mb_response *resp)
{
	if (err) {
		c->stats.errors++;
		c->stats.last_err = err;
	}
	if (mb_is_exception_err(err))
		c->stats.exceptions++;
	c->depth++;
	switch (p->kind) {
	case MB_REQ_READ:
		p->cb.read(p->ud, err, err ? NULL : resp->regs, err ? 0 : resp->count);
		break;
	case MB_REQ_WRITE:
		p->cb.write(p->ud, err);
		break;
	case MB_REQ_DEVID:
		p->cb.devid(p->ud, err, err ? NULL : &resp->devid);
		break;
	}
	c->depth--;
	return !c->freed;
}

/* Pop the head request and complete it with err (resp when err == 0).
 * Returns false when the client was freed by the callback. */
static bool finish_head(struct mb_client *c, int err, const struct mb_response *resp)
{
	struct mb_pending p = *head(c);

	c->q_head = (c->q_head + 1) % MB_CLIENT_QUEUE_MAX;
	c->q_len--;
	c->inflight = false;
	return deliver(c, &p, err, resp);
}

static void close_conn(struct mb_client *c)
{
	if (c->tr->has_fd)
		loop_io_del(c->loop, &c->io);
	c->tr->close(c);
	c->fd = -1;
	c->state = MB_DOWN;
	c->rx_len = 0;
	c->tx_len = c->tx_off = 0;
	c->timeout_streak = 0;
}

/* The connection failed or broke: close it, fail the request in flight,
 * schedule a reconnect with backoff.  Returns false if the client was freed. */
static bool conn_lost(struct mb_client *c, int err)
{
	usec_t now = now_usec();
	bool was_up = c->state == MB_UP;

	close_conn(c);
	if (was_up) {
		/* Requests that waited behind a connection that just broke get a
		 * fresh window for the reconnect. */
		for (unsigned i = 0; i < c->q_len; i++)
			c->q[(c->q_head + i) % MB_CLIENT_QUEUE_MAX].queued_at = now;
	}
	c->conn_err = err;
	c->fail_streak++;
	c->reconnect_at = now + backoff_delay(c);
	if (c->inflight && !finish_head(c, err, NULL))
		return false;
	kick(c, now);
	return true;
}

static void connected(struct mb_client *c)
{
	c->state = MB_UP;
	c->conn_err = 0;
	c->stats.connects++;
	c->rx_len = 0;
	c->last_rx = 0;
	if (c->tr->has_fd)
		loop_io_mod(c->loop, &c->io, EPOLLIN | EPOLLRDHUP);
	kick(c, now_usec());
}

/* Host names (a container's service name, a DNS name on the LAN) are looked
 * up on the loop's worker pool (loop/resolve.h), afresh before every connect
 * attempt, so an address that changed is picked up; a name with several
 * addresses (IPv6 and IPv4) is tried at each in turn. */
static void resolved(void *ud, int err, const struct loop_resolved *res)
{
	struct mb_client *c = ud;
	usec_t now = now_usec();
	int i;

	c->resolve = NULL;
	if (err) {
		c->conn_err = err;
		c->fail_streak++;
		c->reconnect_at = now + backoff_delay(c);
	} else {
		/* After each failed attempt, the next address the name has. */
		i = (int)(c->fail_streak % (unsigned)res->n);
		c->addr = res->addr[i];
		c->addr_len = res->len[i];
		c->resolved = true;
		c->reconnect_at = now;
	}
	kick(c, now);
}

/* Start a lookup; the step task retries start_connect when it completes. */
static void start_resolve(struct mb_client *c, usec_t now)
{
	/* Guard against a lost completion: try again after the connect timeout. */
	c->reconnect_at = now + c->cfg.connect_timeout;
	if (!c->resolve)
		c->resolve = loop_resolve_start(c->loop, c->host, c->cfg.port, resolved, c);
}

static bool start_connect(struct mb_client *c, usec_t now)
{
	int r;

	if (c->need_resolve && !c->resolved) {
		start_resolve(c, now);
		return true;
	}
	/* A name is looked up again before the next attempt. */
	c->resolved = false;
	if (c->stats.connects || c->stats.reconnects || c->fail_streak)
		c->stats.reconnects++;
	r = c->tr->open(c);
	if (r == 0 || r == -EINPROGRESS) {
		if (c->tr->has_fd) {
			int a = loop_io_add(c->loop, &c->io, c->fd,
					    r == 0 ? EPOLLIN | EPOLLRDHUP : EPOLLOUT, client_io);
			if (a < 0) {
				c->tr->close(c);
				c->fd = -1;
				r = a;
				goto fail;
			}
		}
		if (r == 0) {
			connected(c);
		} else {
			c->state = MB_CONNECTING;
			c->connect_deadline = now + c->cfg.connect_timeout;
		}
		return true;
	}
fail:
	c->state = MB_DOWN;
	c->conn_err = r;
	c->fail_streak++;
	c->reconnect_at = now + backoff_delay(c);
	return true;
}

/* Write what is left of c->tx.  Returns false if the client was freed. */
static bool write_tx(struct mb_client *c)
{
	while (c->tx_off < c->tx_len) {
		ssize_t n = c->tr->send(c, c->tx + c->tx_off, c->tx_len - c->tx_off);
		if (n == -EAGAIN || n == -EINTR)
			break;
		if (n < 0)
			return conn_lost(c, (int)n);
		c->tx_off += (size_t)n;
	}
	if (c->tr->has_fd && c->state == MB_UP)
		loop_io_mod(c->loop, &c->io,
			    EPOLLIN | EPOLLRDHUP | (c->tx_off < c->tx_len ? EPOLLOUT : 0));
	return true;
}

/* RTU has no transaction id: whatever is buffered before a request is sent
 * is a late answer or line noise.  Returns false if the client was freed. */
static bool flush_input(struct mb_client *c)
{
	uint8_t junk[64];

	c->stats.bytes_garbage += c->rx_len;
	c->rx_len = 0;
	for (;;) {
		ssize_t n = c->tr->recv(c, junk, sizeof(junk));
		if (n > 0) {
			c->stats.bytes_garbage += (uint64_t)n;
			continue;
		}
		if (n == -EAGAIN || n == -EINTR)
			return true;
		return conn_lost(c, n == 0 ? -ECONNRESET : (int)n);
	}
}

static bool send_head(struct mb_client *c, usec_t now)
{
	struct mb_pending *p = head(c);
	int n;

	if (c->tr->solarman) {
		/* The logger echoes the first sequence byte: the low byte of the
		 * tid.  The second is the logger's own counter; 0 from a client. */
		uint8_t rtu[MB_RTU_ADU_MAX], seq[2];
		p->q.tid = c->next_tid++;
		seq[0] = (uint8_t)p->q.tid;
		seq[1] = 0;
		n = mb_rtu_build_request(&p->q, rtu, sizeof(rtu));
		if (n > 0)
			n = solarman_encode_request(seq, c->cfg.logger_serial, rtu, (size_t)n,
						    c->tx, sizeof(c->tx));
	} else if (c->tr->rtu) {
		if (!flush_input(c))
			return false;
		if (c->state != MB_UP)
			return true;
		n = mb_rtu_build_request(&p->q, c->tx, sizeof(c->tx));
	} else {
		p->q.tid = c->next_tid++;
		n = mb_tcp_build_request(&p->q, c->tx, sizeof(c->tx));
	}
	if (n < 0)
		return finish_head(c, n, NULL);
	c->tx_len = (size_t)n;
	c->tx_off = 0;
	c->inflight = true;
	c->sent_at = now;
	/* the frame's own time on the wire does not count against the device */
	c->deadline = now + c->cfg.timeout + (usec_t)n * c->char_time;
	c->stats.requests++;
	return write_tx(c);
}

static void complete_ok(struct mb_client *c)
{
	usec_t now = now_usec();
	c->timeout_streak = 0;
	c->fail_streak = 0;
	c->stats.responses++;
	c->stats.last_ok_ms = wall_ms();
	record_latency(c, now - c->sent_at);
	c->next_send_at = now + MAX(c->cfg.min_gap, c->t35);
}

static void consume(struct mb_client *c, size_t n)
{
	memmove(c->rx, c->rx + n, c->rx_len - n);
	c->rx_len -= n;
}

/* Solarman V5: take frames out of c->rx; bytes that start no frame are
 * skipped one at a time (a V5 stream resynchronises on its start byte).
 * Returns false if the client was freed. */
static bool parse_rx_solarman(struct mb_client *c)
{
	while (c->rx_len > 0 && c->state == MB_UP) {
		struct solarman_frame f;
		struct mb_response resp;
		int n = solarman_parse(c->rx, c->rx_len, &f), r;

		if (n == 0)
			return true;
		if (n < 0) {
			c->stats.bytes_garbage++;
			consume(c, 1);
			/* A frame whose checksum fails may have been our answer. */
			if (n == -EGW_ECRC && c->inflight) {
				c->next_send_at = now_usec() + c->cfg.min_gap;
				kick(c, c->next_send_at);
				if (!finish_head(c, n, NULL))
					return false;
			}
			continue;
		}
		c->stats.logger_serial_seen = f.serial;
		if (f.control != SOLARMAN_CTL_RESPONSE) {
			/* the logger's own frames: heartbeats and the like */
			c->stats.unsolicited++;
			consume(c, (size_t)n);
			continue;
		}
		if (!c->inflight || f.seq[0] != (uint8_t)head(c)->q.tid) {
			/* an answer to a request that timed out */
			c->stats.tid_mismatches++;
			consume(c, (size_t)n);
			continue;
		}
		if (f.serial != c->cfg.logger_serial)
			r = -EGW_ELOGGER;
		else
			r = solarman_parse_response(&f, &head(c)->q, &resp);
		consume(c, (size_t)n);
		if (r == 0 || mb_is_exception_err(r)) {
			complete_ok(c);
		} else {
			c->stats.bytes_garbage += (uint64_t)n;
			c->next_send_at = now_usec() + c->cfg.min_gap;
		}
		kick(c, c->next_send_at);
		if (!finish_head(c, r, &resp))
			return false;
	}
	return true;
}

/* Take complete frames out of c->rx.  Returns false if the client was freed. */
static bool parse_rx(struct mb_client *c)
{
	if (c->tr->solarman)
		return parse_rx_solarman(c);
	while (c->rx_len > 0 && c->state == MB_UP) {
		struct mb_response resp;
		size_t used = 0;
		int r;

		if (!c->inflight) {
			/* Nothing asked: a late answer (TCP: skip the frame) or noise. */
			struct mb_tcp_header h;
			if (!c->tr->rtu) {
				r = mb_tcp_frame(c->rx, c->rx_len, &h, &used);
				if (r == -EAGAIN)
					return true;
				if (r > 0) {
					c->stats.tid_mismatches++;
					consume(c, (size_t)r);
					continue;
				}
				c->stats.bytes_garbage += c->rx_len;
				return conn_lost(c, r);
			}
			c->stats.bytes_garbage += c->rx_len;
			c->rx_len = 0;
			/* RTU: the line is busy (a late answer still arriving); only
			 * transmit after t3.5 of silence. */
			if (c->t35)
				c->next_send_at = MAX(c->next_send_at, now_usec() + c->t35);
			return true;
		}
		struct mb_pending *p = head(c);
		if (c->tr->rtu)
			r = mb_rtu_parse_response(c->rx, c->rx_len, &p->q, &resp, &used);
		else
			r = mb_tcp_parse_response(c->rx, c->rx_len, &p->q, &resp, &used);
		if (r == -EAGAIN)
			return true;
		if (r == -EGW_ETID) {
			/* A stale answer to a request that timed out: drain it and
			 * keep waiting for ours. */
			c->stats.tid_mismatches++;
			consume(c, used);
			continue;
		}
		if (used == 0) {
			if (!c->tr->rtu) {
				/* The MBAP stream is out of step: only a new connection
				 * resynchronises it. */
				c->stats.bytes_garbage += c->rx_len;
				return conn_lost(c, r);
			}
			/* RTU: slide one byte and look for a frame start again. */
			c->stats.bytes_garbage++;
			consume(c, 1);
			continue;
		}
		consume(c, used);
		if (r == 0 || mb_is_exception_err(r)) {
			complete_ok(c);
		} else {
			c->stats.bytes_garbage += used;
			c->next_send_at = now_usec() + MAX(c->cfg.min_gap, c->t35);
		}
		kick(c, c->next_send_at);
		if (!finish_head(c, r, &resp))
			return false;
	}
	return true;
}

static void read_input(struct mb_client *c)
{
	while (c->state == MB_UP) {
		if (c->rx_len == sizeof(c->rx)) {
			/* cannot happen with sane framing: a frame is < half of rx */
			c->stats.bytes_garbage += c->rx_len;
			c->rx_len = 0;
		}
		size_t want = sizeof(c->rx) - c->rx_len;
		ssize_t n = c->tr->recv(c, c->rx + c->rx_len, want);
		if (n == -EAGAIN || n == -EINTR)
			return;
		if (n <= 0) {
			conn_lost(c, n == 0 ? -ECONNRESET : (int)n);
			return;
		}
		c->rx_len += (size_t)n;
		c->last_rx = now_usec();
		if (!parse_rx(c))
			return;
		/* A short read drained the kernel buffer: skip the recv that would
		 * only say EAGAIN (the watch is level-triggered). */
		if ((size_t)n < want && c->tr->has_fd)
			return;
	}
}

static void reap(struct mb_client *c, bool in_task);

static void client_io(struct loop_io *io, uint32_t events)
{
	struct mb_client *c = container_of(io, struct mb_client, io);

	c->depth++;
	if (c->state == MB_CONNECTING) {
		int r = c->tr->check_connect(c);
		if (r == 0)
			connected(c);
		else if (r != -EINPROGRESS)
			conn_lost(c, r);
	} else if (c->state == MB_UP) {
		if ((events & EPOLLOUT) && c->tx_off < c->tx_len)
			write_tx(c);
		if (!c->freed && c->state == MB_UP &&
		    (events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)))
			read_input(c);
	}
	c->depth--;
	if (c->freed && c->depth == 0)
		reap(c, false);
}

static int step_run(struct task *t, usec_t now)
{
	struct mb_client *c = container_of(t, struct mb_client, step);
	UNUSED(now);
	c->depth++;
	process(c);
	c->depth--;
	if (c->freed && c->depth == 0)
		reap(c, true);
	return 0;
}

static void process(struct mb_client *c)
{
	usec_t now = now_usec(), next = USEC_INFINITY;

	if (c->state == MB_CONNECTING && now >= c->connect_deadline && !conn_lost(c, -ETIMEDOUT))
		return;
	if (c->state == MB_UP && c->inflight && now >= c->deadline) {
		c->stats.timeouts++;
		c->timeout_streak++;
		c->next_send_at = now + MAX(c->cfg.min_gap, c->t35);
		if (c->tr->solarman) {
			/* a frame begun and not finished in a whole timeout is noise */
			c->stats.bytes_garbage += c->rx_len;
			c->rx_len = 0;
		}
		if (!finish_head(c, -ETIMEDOUT, NULL))
			return;
		/* Too many timeouts in a row: the peer is probably gone without
		 * a FIN (half-open).  Start over with a fresh connection. */
		if (c->state == MB_UP && c->timeout_streak >= c->cfg.max_timeouts &&
		    !conn_lost(c, -ETIMEDOUT))
			return;
	}
	/* While there is no connection, requests wait at most their timeout. */
	while (c->state != MB_UP && c->q_len && now >= head(c)->queued_at + c->cfg.timeout) {
		if (!finish_head(c, c->conn_err ? c->conn_err : -ETIMEDOUT, NULL))
			return;
	}
	if (c->state == MB_DOWN && c->q_len && now >= c->reconnect_at && !start_connect(c, now))
		return;
	if (c->state == MB_UP && !c->inflight && c->q_len && now >= c->next_send_at &&
	    !send_head(c, now))
		return;

	if (c->state == MB_CONNECTING)
		next = min_usec(next, c->connect_deadline);
	if (c->state == MB_UP && c->inflight)
		next = min_usec(next, c->deadline);
	if (c->state == MB_UP && !c->inflight && c->q_len)
		next = min_usec(next, c->next_send_at);
	if (c->state == MB_DOWN && c->q_len)
		next = min_usec(next, c->reconnect_at);
	if (c->state != MB_UP && c->q_len)
		next = min_usec(next, head(c)->queued_at + c->cfg.timeout);
	if (next != USEC_INFINITY)
		kick(c, MAX(next, now));
}

/* ---- lifetime ---- */

static void reaper_work(struct loop_work *w)
{
	UNUSED(w);
}

static void reaper_done(struct loop_work *w)
{
	free(container_of(w, struct mb_client, reaper));
}

static void reap(struct mb_client *c, bool in_task)
{
	/* The scheduler still touches a task after its run() returns, so a
	 * client freed from a task callback is released one hop later. */
	if (in_task) {
		c->reaper.work = reaper_work;
		c->reaper.done = reaper_done;
		/* if even that fails, leak rather than corrupt the heap */
		loop_work_submit(c->loop, &c->reaper);
		return;
	}
	free(c);
}

static int mem_task_run(struct task *t, usec_t now);

static int parse_host(struct mb_client *c, const char *host, uint16_t port)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)&c->addr;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&c->addr;

	memset(&c->addr, 0, sizeof(c->addr));
	if (strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		c->addr_len = sizeof(*in4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		c->addr_len = sizeof(*in6);
		return 0;
	}
	return -EINVAL;
}

int mb_client_new(struct loop *l, const struct mb_client_config *cfg, struct mb_client **ret)
{
	struct mb_client *c;
	int r = -EINVAL;

	if (!l || !cfg)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->loop = l;
	c->cfg = *cfg;
	c->fd = -1;
	c->state = MB_DOWN;
	c->step = (struct task){ .name = "modbus-client", .run = step_run };
	c->mem_task = (struct task){ .name = "modbus-mem", .run = mem_task_run };
	c->step.idx = c->mem_task.idx = SCHED_NOT_QUEUED;
	c->rng = (uint64_t)now_usec() ^ (uint64_t)(uintptr_t)c ^ 0x9E3779B97F4A7C15ull;
	c->next_tid = (uint16_t)(rng_next(c) & 0xFFFF);

	if (!c->cfg.timeout)
		c->cfg.timeout = USEC_PER_SEC;
	if (!c->cfg.connect_timeout)
		c->cfg.connect_timeout = c->cfg.timeout;
	if (!c->cfg.max_timeouts)
		c->cfg.max_timeouts = 3;
	if (!c->cfg.backoff_min)
		c->cfg.backoff_min = 100 * USEC_PER_MSEC;
	if (!c->cfg.backoff_max)
		c->cfg.backoff_max = 30 * USEC_PER_SEC;
	if (c->cfg.backoff_max < c->cfg.backoff_min)
		c->cfg.backoff_max = c->cfg.backoff_min;
	if (!c->cfg.queue_max || c->cfg.queue_max > MB_CLIENT_QUEUE_MAX)
		c->cfg.queue_max = MB_CLIENT_QUEUE_MAX;
	if (c->cfg.timeout < 0 || c->cfg.min_gap < 0)
		goto err_free;

	switch (cfg->kind) {
	case MB_TRANSPORT_TCP:
	case MB_TRANSPORT_RTU_OVER_TCP:
	case MB_TRANSPORT_SOLARMAN:
		c->tr = cfg->kind == MB_TRANSPORT_TCP        ? &mb_transport_tcp
			: cfg->kind == MB_TRANSPORT_SOLARMAN ? &mb_transport_solarman
							     : &mb_transport_rtu_over_tcp;
		if (!cfg->host || strlen(cfg->host) >= sizeof(c->host))
			goto err_free;
		strcpy(c->host, cfg->host);
		c->cfg.host = c->host;
		if (!c->cfg.port)
			c->cfg.port = cfg->kind == MB_TRANSPORT_SOLARMAN ? 8899 : 502;
		if (parse_host(c, c->host, c->cfg.port) < 0) {
			if (!host_ok(c->host))
				goto err_free;
			c->need_resolve = true;
		}
		break;
	case MB_TRANSPORT_RTU: {
		c->tr = &mb_transport_rtu;
		if (!cfg->serial_port || strlen(cfg->serial_port) >= sizeof(c->serial_port))
			goto err_free;
		strcpy(c->serial_port, cfg->serial_port);
		c->cfg.serial_port = c->serial_port;
		if (!c->cfg.baudrate)
			c->cfg.baudrate = 9600;
		if (!mb_serial_baud_ok(c->cfg.baudrate))
			goto err_free;
		if (!c->cfg.parity)
			c->cfg.parity = 'E';
		if (c->cfg.parity != 'N' && c->cfg.parity != 'E' && c->cfg.parity != 'O')
			goto err_free;
		if (!c->cfg.stopbits)
			c->cfg.stopbits = c->cfg.parity == 'N' ? 2 : 1;
		if (c->cfg.stopbits > 2)
			goto err_free;
		unsigned bits = 1 + 8 + (c->cfg.parity != 'N') + c->cfg.stopbits;
		c->char_time = (usec_t)bits * USEC_PER_SEC / c->cfg.baudrate;
		/* The spec fixes t3.5 at 1.75 ms above 19200 baud. */
		c->t35 = c->cfg.baudrate > 19200 ? 1750 : (c->char_time * 7 + 1) / 2;
		break;
	}
	case MB_TRANSPORT_MEM:
		c->tr = &mb_transport_mem;
		if (!cfg->mem || (!cfg->mem->handle && !cfg->mem->handle_raw))
			goto err_free;
		break;
	default:
		goto err_free;
	}
	*ret = c;
	return 0;

err_free:
	free(c);
	return r;
}

void mb_client_free(struct mb_client *c)
{
	if (!c || c->freed)
		return;
	c->freed = true;
	loop_resolve_cancel(c->resolve); /* the lookup frees itself when it completes */
	loop_task_cancel(c->loop, &c->step);
	loop_task_cancel(c->loop, &c->mem_task);
	if (c->state != MB_DOWN)
		close_conn(c);
	c->depth++;
	while (c->q_len) {
		struct mb_pending p = *head(c);
		c->q_head = (c->q_head + 1) % MB_CLIENT_QUEUE_MAX;
		c->q_len--;
		deliver(c, &p, -ECANCELED, NULL);
	}
	c->inflight = false;
	c->depth--;
	if (c->depth == 0)
		free(c);
}

static int enqueue(struct mb_client *c, const struct mb_pending *p)
{
	if (c->freed)
		return -ESHUTDOWN;
	if (c->q_len >= c->cfg.queue_max)
		return -ENOBUFS;
	struct mb_pending *slot = &c->q[(c->q_head + c->q_len) % MB_CLIENT_QUEUE_MAX];
	*slot = *p;
	slot->queued_at = now_usec();
	c->q_len++;
	kick(c, slot->queued_at);
	return 0;
}

int mb_client_read(struct mb_client *c, uint8_t unit, uint8_t fc, uint16_t addr, uint16_t count,
		   mb_read_cb cb, void *ud)
{
	if (!c || !cb || (fc != MB_FC_READ_HOLDING && fc != MB_FC_READ_INPUT) || count < 1 ||
	    count > MB_MAX_READ)
		return -EINVAL;
	struct mb_pending p = {
		.kind = MB_REQ_READ,
		.q = { .unit = unit, .fc = fc, .addr = addr, .count = count },
		.cb.read = cb,
		.ud = ud,
	};
	return enqueue(c, &p);
}

int mb_client_write(struct mb_client *c, uint8_t unit, uint8_t fc, uint16_t addr,
		    const uint16_t *values, uint16_t count, mb_write_cb cb, void *ud)
{
	if (!c || !cb || !values)
		return -EINVAL;
	if (!(fc == MB_FC_WRITE_SINGLE && count == 1) &&
	    !(fc == MB_FC_WRITE_MULTIPLE && count >= 1 && count <= MB_MAX_WRITE))
		return -EINVAL;
	struct mb_pending p = {
		.kind = MB_REQ_WRITE,
		.q = { .unit = unit, .fc = fc, .addr = addr, .count = count },
		.cb.write = cb,
		.ud = ud,
	};
	memcpy(p.q.values, values, count * sizeof(values[0]));
	return enqueue(c, &p);
}

int mb_client_read_devid(struct mb_client *c, uint8_t unit, uint8_t code, uint8_t object_id,
			 mb_devid_cb cb, void *ud)
{
	if (!c || !cb || code < MB_DEVID_BASIC || code > MB_DEVID_INDIVIDUAL)
		return -EINVAL;
	struct mb_pending p = {
		.kind = MB_REQ_DEVID,
		.q = { .unit = unit,
		       .fc = MB_FC_MEI,
		       .mei_type = MB_MEI_DEVID,
		       .devid_code = code,
		       .object_id = object_id },
		.cb.devid = cb,
		.ud = ud,
	};
	return enqueue(c, &p);
}

bool mb_client_connected(const struct mb_client *c)
{
	return c && c->state == MB_UP;
}

unsigned mb_client_pending(const struct mb_client *c)
{
	return c ? c->q_len : 0;
}

const struct mb_client_stats *mb_client_stats(const struct mb_client *c)
{
	return &c->stats;
}

usec_t mb_client_latency_percentile(const struct mb_client *c, double pct)
{
	uint64_t total = 0, acc = 0, want;

	for (unsigned b = 0; b < MB_LAT_BUCKETS; b++)
		total += c->stats.latency_hist[b];
	if (!total)
		return 0;
	want = (uint64_t)((double)total * pct / 100.0 + 0.5);
	if (!want)
		want = 1;
	for (unsigned b = 0; b < MB_LAT_BUCKETS - 1; b++) {
		acc += c->stats.latency_hist[b];
		if (acc >= want)
			return mb_lat_bounds[b];
	}
	return USEC_INFINITY;
}

/* ---- in-memory transport's delivery task (needs the core's guards) ---- */

static int mem_task_run(struct task *t, usec_t now)
{
	struct mb_client *c = container_of(t, struct mb_client, mem_task);
	UNUSED(now);
	c->depth++;
	if (c->state == MB_UP)
		read_input(c);
	if (!c->freed && c->state == MB_UP)
		mb_mem_schedule(c);
	c->depth--;
	if (c->freed && c->depth == 0)
		reap(c, true);
	return 0;
}
