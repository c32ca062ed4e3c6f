/* Non-blocking Modbus client on the event loop (src/loop/loop.h).
 *
 * One client per device = one connection (many inverters accept a single
 * client).  Requests are queued (at most MB_CLIENT_QUEUE_MAX; beyond that
 * -ENOBUFS), sent one at a time, paced by a minimum gap, and each has a
 * timeout.  TCP responses are matched by transaction id: a response with an
 * older tid (a late answer to a request that already timed out) is drained
 * and counted in tid_mismatches, and the client keeps waiting for its own.
 * Bytes that cannot be framed are dropped (bytes_garbage) and the stream
 * resynchronised: TCP drops the connection (an MBAP stream out of step has
 * no other way back); RTU slides byte by byte to the next frame start,
 * discards whatever is buffered before sending a request, and transmits only
 * after t3.5 of line silence.  RTU has no transaction id: an answer that
 * arrives after its request timed out AND after the next request was sent
 * cannot be told apart (same limit as every RTU master).
 *
 * The connection is opened on demand (non-blocking connect, completion on
 * EPOLLOUT, TCP keepalive on, TCP_NODELAY) and re-opened after failures with
 * exponential backoff plus jitter.  max_timeouts consecutive timeouts
 * count as a half-open connection: it is closed and re-opened.  While
 * disconnected, queued requests wait for the connection until their own
 * timeout runs out (counted again from the moment a working connection
 * broke); then their callback gets the connect error (e.g. -ECONNREFUSED)
 * or -ETIMEDOUT.  A request in flight when the connection breaks fails with
 * the transport error (e.g. -ECONNRESET); it is never re-sent.
 *
 * Transports (one const table of functions, see transport.h):
 *   MB_TRANSPORT_TCP            Modbus TCP (MBAP)
 *   MB_TRANSPORT_RTU            RTU on a serial port (termios, raw, 8 data
 *                               bits); 3.5-character inter-frame silence
 *                               enforced by timer before every request
 *   MB_TRANSPORT_RTU_OVER_TCP   RTU frames over a TCP socket
 *   MB_TRANSPORT_SOLARMAN       RTU frames inside Solarman V5 frames (solarman.h)
 *                               to a data logger on TCP (default port 8899):
 *                               answers matched by the sequence byte the
 *                               logger echoes, frames from another logger
 *                               serial refused (EGW_ELOGGER), the logger's
 *                               own frames (heartbeats, ...) skipped and
 *                               counted (unsolicited), bytes that frame
 *                               nothing skipped one at a time (a garbled
 *                               frame fails the request in flight with
 *                               -EGW_ECRC)
 *   MB_TRANSPORT_MEM            in-process server callback (tests, sim):
 *                               client and server run back to back in one
 *                               loop, responses are delivered by a task.
 *
 * Every callback runs exactly once, on the loop thread, never from inside
 * the call that queued it.  Nothing here blocks. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/time.h"
#include "modbus/codec.h"

struct loop;
struct mb_client;

#define MB_CLIENT_QUEUE_MAX 64
#define MB_LAT_BUCKETS 12
/* Latency histogram upper bounds in microseconds; the last bucket is +Inf. */
extern const usec_t mb_lat_bounds[MB_LAT_BUCKETS - 1];

enum mb_transport_kind {
	MB_TRANSPORT_TCP,
	MB_TRANSPORT_RTU,
	MB_TRANSPORT_RTU_OVER_TCP,
	MB_TRANSPORT_MEM,
	MB_TRANSPORT_SOLARMAN,
};

/* In-memory server for MB_TRANSPORT_MEM.  The owner fills it and keeps it
 * alive as long as any client uses it.
 *
 * handle() gets each parsed request and writes a response PDU into pdu_out;
 * it returns the PDU length (> 0), 0 to send nothing (the client times
 * out), or an exception error MB_EXCEPTION_ERR(code) to answer with that
 * exception.  The response is delivered `delay` after the request.
 * handle_raw, when set, replaces handle for tests of broken servers: it
 * writes the raw bytes the client receives (any bytes, no framing added)
 * and returns their count, or 0 for no answer. */
struct mb_mem_server {
	int (*handle)(void *ud, const struct mb_request *q, uint8_t *pdu_out, size_t cap);
	int (*handle_raw)(void *ud, const struct mb_request *q, uint8_t *adu_out, size_t cap);
	void *ud;
	usec_t delay;
	bool refuse; /* connects fail with -ECONNREFUSED while set */
	/* counters, written by the transport */
	uint64_t connects;
	uint64_t requests;
};

struct mb_client_config {
	enum mb_transport_kind kind;
	const char *host;          /* tcp, rtu-over-tcp, solarman: numeric IPv4/IPv6, "localhost",
				    * or a DNS name, looked up on the loop's worker pool
				    * before every connect attempt */
	uint16_t port;             /* default 502 (solarman: 8899) */
	uint32_t logger_serial;    /* solarman: the data logger's serial number */
	const char *serial_port;   /* rtu: e.g. /dev/ttyUSB0 */
	unsigned baudrate;         /* rtu: 1200, 2400, ... 115200, 230400; default 9600 */
	char parity;               /* rtu: 'N', 'E' (default) or 'O' */
	unsigned stopbits;         /* rtu: 1 or 2; 0 means 1 (2 when parity 'N') */
	struct mb_mem_server *mem; /* mem */
	usec_t timeout;            /* per request, from when it is sent; default 1 s */
	usec_t connect_timeout;    /* default: timeout */
	usec_t min_gap;            /* between the end of one exchange and the next
				    * request; default 0 (RTU: at least 3.5 chars) */
	unsigned max_timeouts;     /* consecutive timeouts before reconnecting; default 3 */
	usec_t backoff_min;        /* first reconnect delay; default 100 ms */
	usec_t backoff_max;        /* cap; default 30 s */
	unsigned queue_max;        /* default and maximum MB_CLIENT_QUEUE_MAX */
};

/* err is 0, -ETIMEDOUT, -ECANCELED, -ECONNREFUSED/-ECONNRESET/... (-errno
 * of the transport), an exception error (mb_exception_code(err)), or a
 * codec error for a malformed response.  regs are valid during the call. */
typedef void (*mb_read_cb)(void *ud, int err, const uint16_t *regs, unsigned count);
typedef void (*mb_write_cb)(void *ud, int err);
/* d is valid during the call; NULL when err != 0. */
typedef void (*mb_devid_cb)(void *ud, int err, const struct mb_devid *d);

/* Returns 0, -EINVAL (bad config: missing host/port/serial port/mem,
 * host neither an address nor a valid DNS name, unsupported baud rate or
 * parity) or -ENOMEM.  Does not connect yet: the first request does (the
 * serial port is opened then, and re-opened after failures). */
int mb_client_new(struct loop *l, const struct mb_client_config *cfg, struct mb_client **ret);
/* Closes the connection; every pending callback runs with -ECANCELED from
 * inside this call (they must not queue on c: that returns -ESHUTDOWN).
 * Accepts NULL.  May be called from inside one of c's own callbacks: the
 * memory is released once that callback has returned. */
void mb_client_free(struct mb_client *c);

/* Queue a read of count (1..125) registers with fc 3 or 4.  Returns 0
 * (cb will run exactly once, later), -EINVAL, -ENOBUFS (queue full) or
 * -ESHUTDOWN (inside mb_client_free). */
int mb_client_read(struct mb_client *c, uint8_t unit, uint8_t fc, uint16_t addr, uint16_t count,
		   mb_read_cb cb, void *ud);
/* Queue a write with fc 6 (count must be 1) or 16 (count 1..123); values
 * are copied.  Returns 0, -EINVAL or -ENOBUFS. */
int mb_client_write(struct mb_client *c, uint8_t unit, uint8_t fc, uint16_t addr,
		    const uint16_t *values, uint16_t count, mb_write_cb cb, void *ud);
/* Queue one fc 43/14 request (code enum mb_devid_code, starting at
 * object_id).  If more_follows is set the caller asks again from
 * next_object_id.  Returns 0, -EINVAL or -ENOBUFS. */
int mb_client_read_devid(struct mb_client *c, uint8_t unit, uint8_t code, uint8_t object_id,
			 mb_devid_cb cb, void *ud);

bool mb_client_connected(const struct mb_client *c);
/* Requests queued or in flight. */
unsigned mb_client_pending(const struct mb_client *c);

struct mb_client_stats {
	uint64_t requests;  /* sent */
	uint64_t responses; /* good responses (exceptions included) */
	uint64_t errors;    /* callbacks with err != 0 */
	uint64_t timeouts;
	uint64_t exceptions;
	uint64_t connects;           /* successful connections */
	uint64_t reconnects;         /* connection attempts after the first one */
	uint64_t tid_mismatches;     /* stale responses drained */
	uint64_t bytes_garbage;      /* bytes dropped while resynchronising */
	uint64_t unsolicited;        /* frames the peer sent unasked (V5 heartbeats) */
	uint32_t logger_serial_seen; /* solarman: the serial of the last frame read, 0 */
	usec_t last_latency;         /* send to response */
	usec_t latency_sum;
	uint64_t latency_hist[MB_LAT_BUCKETS]; /* per bucket, not cumulative */
	int64_t last_ok_ms;                    /* wall clock of the last response (exceptions
				   * too: the device answered), 0: never */
	int last_err;                          /* last err given to a callback, 0 */
};
const struct mb_client_stats *mb_client_stats(const struct mb_client *c);
/* Estimate a latency percentile (0..100) from the histogram, in usec. */
usec_t mb_client_latency_percentile(const struct mb_client *c, double pct);
