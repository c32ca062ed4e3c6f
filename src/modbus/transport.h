/* Private to src/modbus: the transport interface (one const table of
 * functions per transport) and the client object the transports work on.
 *
 * A transport moves bytes; the client core (client.c) does framing, the
 * queue, timeouts and reconnects.  fd-based transports put their fd in
 * c->fd and let the core watch it (c->io); the in-memory transport has no fd
 * and the core reads it from c->mem_task when a reply is due. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "loop/loop.h"
#include "loop/resolve.h"
#include "modbus/client.h"
#include "modbus/solarman.h"

struct mb_transport {
	const char *name;
	bool rtu;      /* RTU framing (unit + PDU + CRC), else MBAP */
	bool has_fd;   /* c->fd is watched by the core */
	bool solarman; /* RTU frames inside Solarman V5 frames */
	/* Start connecting.  Returns 0 when connected, -EINPROGRESS when the
	 * core must wait for EPOLLOUT on c->fd (then check_connect), or -errno. */
	int (*open)(struct mb_client *c);
	/* After EPOLLOUT while connecting: 0 or -errno (e.g. -ECONNREFUSED). */
	int (*check_connect)(struct mb_client *c);
	/* Write bytes: the count written (possibly partial), -EAGAIN or -errno. */
	ssize_t (*send)(struct mb_client *c, const uint8_t *buf, size_t len);
	/* Read bytes: the count (> 0), 0 at end of stream, -EAGAIN or -errno. */
	ssize_t (*recv)(struct mb_client *c, uint8_t *buf, size_t cap);
	/* Close; safe when not open. */
	void (*close)(struct mb_client *c);
};

extern const struct mb_transport mb_transport_tcp;
extern const struct mb_transport mb_transport_rtu;
extern const struct mb_transport mb_transport_rtu_over_tcp;
extern const struct mb_transport mb_transport_mem;
extern const struct mb_transport mb_transport_solarman;

enum mb_req_kind { MB_REQ_READ, MB_REQ_WRITE, MB_REQ_DEVID };

struct mb_pending {
	enum mb_req_kind kind;
	struct mb_request q;
	union {
		mb_read_cb read;
		mb_write_cb write;
		mb_devid_cb devid;
	} cb;
	void *ud;
	usec_t queued_at;
};

enum mb_conn_state { MB_DOWN, MB_CONNECTING, MB_UP };

/* a whole V5 frame of the largest length a logger may announce, plus more */
#define MB_RX_CAP (SOLARMAN_FRAME_MAX + MB_TCP_ADU_MAX)
/* the largest request: an RTU frame inside a V5 frame */
#define MB_TX_CAP (SOLARMAN_HDR + SOLARMAN_REQ_PREFIX + MB_RTU_ADU_MAX + SOLARMAN_TRAILER)
#define MB_MEM_SLOTS 4

struct mb_mem_reply {
	usec_t due;
	size_t len, off;
	uint8_t buf[MB_TCP_ADU_MAX];
};

struct mb_client {
	struct loop *loop;
	const struct mb_transport *tr;
	struct mb_client_config cfg;
	char host[64];
	char serial_port[128];

	/* connection */
	enum mb_conn_state state;
	int fd;
	struct loop_io io;
	struct sockaddr_storage addr; /* parsed once, or resolved per connect for names */
	socklen_t addr_len;
	bool need_resolve;            /* host is a DNS name, not an address */
	bool resolved;                /* addr holds a resolution not yet tried */
	struct loop_resolve *resolve; /* lookup in flight on the worker pool */
	usec_t connect_deadline;
	usec_t reconnect_at;  /* while down: earliest next attempt */
	unsigned fail_streak; /* connection failures since the last good response */
	int conn_err;         /* why the last attempt/connection failed */
	unsigned timeout_streak;
	uint64_t rng;

	/* serial timing (rtu) */
	usec_t char_time; /* one character on the wire */
	usec_t t35;       /* inter-frame silence */
	usec_t last_rx;   /* last byte received */

	/* queue: ring of pending requests; the head is in flight when `inflight` */
	struct mb_pending q[MB_CLIENT_QUEUE_MAX];
	unsigned q_head, q_len;
	bool inflight;
	uint16_t next_tid;
	usec_t sent_at;
	usec_t deadline;
	usec_t next_send_at;

	uint8_t tx[MB_TX_CAP];
	size_t tx_len, tx_off;
	uint8_t rx[MB_RX_CAP];
	size_t rx_len;

	struct task step;

	/* in-memory transport */
	struct task mem_task;
	struct mb_mem_reply mem_replies[MB_MEM_SLOTS];
	unsigned mem_n;
	unsigned mem_first;
	uint8_t mem_in[MB_RX_CAP];
	size_t mem_in_len;

	/* lifetime: freed while a callback runs -> reaped by the outer frame */
	unsigned depth;
	bool freed;
	struct loop_work reaper;

	struct mb_client_stats stats;
};

/* Whether the serial transport supports this line speed. */
bool mb_serial_baud_ok(unsigned baud);
/* Opens a serial line raw and non-blocking at baud (one mb_serial_baud_ok
 * accepts), parity 'N', 'E' or 'O', 7 or 8 data bits, 1 or 2 stop bits;
 * access O_RDONLY or O_RDWR.  Both Modbus RTU and P1 meters use it.
 * Returns 0 with *ret_fd, -EINVAL (baud rate) or -errno. */
int mb_serial_line_open(const char *path, unsigned baud, char parity, unsigned databits,
			unsigned stopbits, int access, int *ret_fd);
/* In-memory transport: queue its delivery task for the earliest reply. */
void mb_mem_schedule(struct mb_client *c);
