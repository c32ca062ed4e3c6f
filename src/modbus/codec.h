/* Modbus codec: pure functions over byte buffers, no I/O, no allocation.
 *
 * Framing: Modbus TCP (7-byte MBAP header + PDU) and RTU (unit + PDU +
 * CRC-16, low byte first).  Function codes: 3 and 4 (read holding/input
 * registers), 6 (write single register), 16 (write multiple registers),
 * 43/14 (read device identification), and exception responses (fc | 0x80).
 *
 * Both sides are covered:
 *   - client: build requests, parse responses (checking them against the
 *     request that was sent);
 *   - server (egw-sim, the in-memory transport): parse requests, build
 *     responses and exceptions.
 *
 * Error classes, shared by every parse function:
 *   -EAGAIN         input is an incomplete frame; *ret_used holds the total
 *                   frame length needed when it is already known, else 0
 *   -EGW_EFRAME     malformed frame (too short for its function, bad layout)
 *   -EGW_ECRC       RTU CRC mismatch
 *   -EGW_ELENGTH    a length/count field disagrees with the data or is out of
 *                   the protocol's range (e.g. register count 0 or > 125)
 *   -EGW_EFUNCTION  function code (or MEI type) not supported
 *   -EGW_EPROTO     MBAP protocol id != 0, or the response's unit, function,
 *                   address or count does not match the request
 *   -EGW_ETID       (TCP responses) a complete, well-framed response whose
 *                   transaction id is not the request's: skip *ret_used bytes
 *                   and keep reading
 *   -(EGW_EMB_EXCEPTION_BASE + code)  the server answered with exception
 *                   `code` (responses only)
 * Exception to the "out-params only on success" rule, on purpose: on any
 * error other than -EAGAIN, *ret_used is the length of the offending frame
 * when the framing tells it (always for TCP once the MBAP header is sane;
 * for RTU when the function code fixes the length), else 0 (the caller
 * drops its buffer / waits for the inter-frame silence).  Request parsers
 * also fill ret->tid, ret->unit and ret->fc as soon as they are known so a
 * server can answer the faulty request with an exception
 * (see mb_exception_for()).
 *
 * Fixed sizes come from the protocol: a PDU is at most 253 bytes, a TCP ADU
 * 260, an RTU ADU 256. */
#pragma once
#include <errno.h> /* -EAGAIN and friends in the returns */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define MB_PDU_MAX 253
#define MB_MBAP_LEN 7
#define MB_TCP_ADU_MAX 260       /* MBAP 7 + PDU 253 */
#define MB_RTU_ADU_MAX 256       /* unit 1 + PDU 253 + CRC 2 */
#define MB_MAX_READ 125          /* registers per fc 3/4 */
#define MB_MAX_WRITE 123         /* registers per fc 16 */
#define MB_DEVID_MAX_OBJECTS 123 /* (253 - 7) / 2: empty objects fill a PDU */

enum mb_fc {
	MB_FC_READ_HOLDING = 3,
	MB_FC_READ_INPUT = 4,
	MB_FC_WRITE_SINGLE = 6,
	MB_FC_WRITE_MULTIPLE = 16,
	MB_FC_MEI = 43,
};
#define MB_MEI_DEVID 14 /* MEI type for "read device identification" */
#define MB_FC_EXCEPTION 0x80

enum mb_exception {
	MB_EX_ILLEGAL_FUNCTION = 1,
	MB_EX_ILLEGAL_ADDRESS = 2,
	MB_EX_ILLEGAL_VALUE = 3,
	MB_EX_DEVICE_FAILURE = 4,
	MB_EX_ACKNOWLEDGE = 5,
	MB_EX_BUSY = 6,
	MB_EX_GATEWAY_PATH = 10,
	MB_EX_GATEWAY_TARGET = 11,
};

/* Read device id access codes (fc 43/14). */
enum mb_devid_code {
	MB_DEVID_BASIC = 1,      /* objects 0x00..0x02, stream */
	MB_DEVID_REGULAR = 2,    /* objects 0x00..0x7F, stream */
	MB_DEVID_EXTENDED = 3,   /* objects 0x00..0xFF, stream */
	MB_DEVID_INDIVIDUAL = 4, /* one object */
};
/* Basic object ids. */
#define MB_DEVID_VENDOR 0x00
#define MB_DEVID_PRODUCT_CODE 0x01
#define MB_DEVID_REVISION 0x02

/* Exception error code helpers. */
#define MB_EXCEPTION_ERR(code) (-(EGW_EMB_EXCEPTION_BASE + (int)(code)))
static inline bool mb_is_exception_err(int err)
{
	return err < -EGW_EMB_EXCEPTION_BASE && err > -(EGW_EMB_EXCEPTION_BASE + 256);
}
/* The exception code in err (1..255), or 0 when err is not an exception. */
static inline int mb_exception_code(int err)
{
	return mb_is_exception_err(err) ? -err - EGW_EMB_EXCEPTION_BASE : 0;
}

/* A request, as built by a client or parsed by a server. */
struct mb_request {
	uint16_t tid; /* TCP transaction id (ignored by RTU) */
	uint8_t unit;
	uint8_t fc;                    /* enum mb_fc */
	uint16_t addr;                 /* fc 3, 4, 6, 16 */
	uint16_t count;                /* fc 3/4: 1..125; fc 16: 1..123; fc 6: 1 */
	uint16_t values[MB_MAX_WRITE]; /* fc 6 (values[0]) and 16 */
	uint8_t mei_type;              /* fc 43: MB_MEI_DEVID */
	uint8_t devid_code;            /* fc 43/14: enum mb_devid_code */
	uint8_t object_id;             /* fc 43/14: first (or only) object */
};

/* Device identification objects from one fc 43/14 response. */
struct mb_devid {
	uint8_t code; /* read device id code echoed */
	uint8_t conformity;
	uint8_t more_follows; /* 0xFF: ask again from next_object_id */
	uint8_t next_object_id;
	uint8_t n_objects;
	uint8_t ids[MB_DEVID_MAX_OBJECTS];
	uint8_t lens[MB_DEVID_MAX_OBJECTS];
	uint16_t offs[MB_DEVID_MAX_OBJECTS]; /* into text: NUL-terminated value */
	char text[MB_PDU_MAX + 3];
};
/* The value of object `id` (NUL-terminated; may contain other NULs, use
 * lens[] for binary objects), or NULL if absent from d. */
const char *mb_devid_get(const struct mb_devid *d, uint8_t id);

/* A parsed response. */
struct mb_response {
	uint16_t tid; /* TCP only */
	uint8_t unit;
	uint8_t fc;                 /* without the exception bit */
	uint8_t exception;          /* 0, or the exception code */
	uint16_t addr;              /* fc 6/16 echo */
	uint16_t count;             /* fc 3/4: registers; fc 16: echo; fc 6: 1 */
	uint16_t regs[MB_MAX_READ]; /* fc 3/4 registers; fc 6: regs[0] echoed value */
	struct mb_devid devid;      /* fc 43/14 */
};

/* CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF) of buf.  Appended to an
 * RTU frame low byte first. */
uint16_t mb_crc16(const uint8_t *buf, size_t len);

/* ---- PDU level (no framing) ---- */

/* Encode q (fc, addr, count, values, devid fields) as a request PDU.
 * Returns the PDU length, -EINVAL (count out of range for fc, fc 6 with
 * count != 1, bad devid code), -EGW_EFUNCTION (fc unsupported) or -ENOBUFS
 * (cap too small). */
int mb_build_request_pdu(const struct mb_request *q, uint8_t *pdu_out, size_t cap);

/* Decode a request PDU into ret (fc, addr, count, values, devid fields;
 * tid and unit are left as they are).  pdu_len is exact.  Returns 0,
 * -EGW_EFRAME, -EGW_ELENGTH, -EGW_EFUNCTION (see the top of this file). */
int mb_parse_request_pdu(const uint8_t *pdu, size_t pdu_len, struct mb_request *ret);

/* Decode a response PDU to request q into ret (tid and unit left as they
 * are).  Returns 0, an exception error, -EGW_EFRAME, -EGW_ELENGTH,
 * -EGW_EPROTO (fc/addr/count/value echo mismatch), -EGW_EFUNCTION. */
int mb_parse_response_pdu(const struct mb_request *q, const uint8_t *pdu, size_t pdu_len,
			  struct mb_response *ret);

/* ---- server side: responses ---- */

/* Response to a fc 3/4 request: q->count registers from regs.  Returns the
 * PDU length, -EINVAL (q is not a valid read) or -ENOBUFS. */
int mb_build_read_response(const struct mb_request *q, const uint16_t *regs, uint8_t *pdu_out,
			   size_t cap);
/* Response to a fc 6/16 request (the echo).  Returns the PDU length,
 * -EINVAL or -ENOBUFS. */
int mb_build_write_response(const struct mb_request *q, uint8_t *pdu_out, size_t cap);
/* Exception response for function fc (without the 0x80 bit) with code
 * 1..255.  Returns 2, -EINVAL or -ENOBUFS. */
int mb_build_exception(uint8_t fc, uint8_t code, uint8_t *pdu_out, size_t cap);
/* Response to a fc 43/14 request.  objects[id] is the value of object id
 * (NULL: the server does not have it), for id < n.  Streams objects in the
 * category of q->devid_code starting at q->object_id (restarting at 0 when
 * that object is absent, as the spec says), setting more_follows /
 * next_object_id when they do not fit in one PDU; code 4 returns exactly
 * q->object_id.  Returns the PDU length, -ENOENT (code 4 and object absent:
 * answer exception 2), -EINVAL (bad code: answer exception 3) or -ENOBUFS. */
int mb_build_devid_response(const struct mb_request *q, const char *const objects[], unsigned n,
			    uint8_t conformity, uint8_t *pdu_out, size_t cap);

/* The exception code a server should answer when parsing a request or
 * building its response failed with err: -EGW_EFUNCTION -> 1, -ENOENT -> 2,
 * -EGW_ELENGTH / -EINVAL -> 3, an exception error -> its code.  Returns 0
 * when no answer should be sent (-EGW_ECRC, -EGW_EFRAME, -EGW_EPROTO,
 * -EAGAIN: drop the frame). */
int mb_exception_for(int err);

/* ---- framing ---- */

/* Prefix pdu with an MBAP header.  Returns the ADU length (7 + pdu_len),
 * -EINVAL (pdu_len 0 or > 253) or -ENOBUFS. */
int mb_tcp_wrap(uint16_t tid, uint8_t unit, const uint8_t *pdu, size_t pdu_len, uint8_t *adu_out,
		size_t cap);
/* unit + pdu + CRC.  Returns the ADU length (pdu_len + 3), -EINVAL or -ENOBUFS. */
int mb_rtu_wrap(uint8_t unit, const uint8_t *pdu, size_t pdu_len, uint8_t *adu_out, size_t cap);

struct mb_tcp_header {
	uint16_t tid;
	uint16_t proto;
	uint16_t length; /* unit + PDU */
	uint8_t unit;
};
/* Delimit one MBAP frame at the start of buf.  Returns the ADU length
 * (7 + PDU length) when the whole frame is in buf, -EAGAIN (*ret_need: total
 * bytes needed, 7 while the header is incomplete), -EGW_EPROTO (protocol id
 * != 0) or -EGW_ELENGTH (length field < 2 or > 254).  *ret_hdr is written
 * once the header is complete. */
int mb_tcp_frame(const uint8_t *buf, size_t len, struct mb_tcp_header *ret_hdr, size_t *ret_need);

/* ---- server side: requests ---- */

/* Parse one request frame at the start of buf (see the top of this file for
 * the returns and *ret_used). */
int mb_tcp_parse_request(const uint8_t *buf, size_t len, struct mb_request *ret, size_t *ret_used);
int mb_rtu_parse_request(const uint8_t *buf, size_t len, struct mb_request *ret, size_t *ret_used);

/* ---- client side ---- */

/* Build the ADU for q (tid used by TCP, unit by both).  Returns the ADU
 * length or the errors of mb_build_request_pdu(). */
int mb_tcp_build_request(const struct mb_request *q, uint8_t *adu_out, size_t cap);
int mb_rtu_build_request(const struct mb_request *q, uint8_t *adu_out, size_t cap);

/* Parse the response to q at the start of buf.  Returns 0 with *ret filled
 * and *ret_used = frame length, or an error (top of this file).  On
 * -EGW_ETID ret->tid is the stale frame's tid; on an exception error
 * ret->exception is its code. */
int mb_tcp_parse_response(const uint8_t *buf, size_t len, const struct mb_request *q,
			  struct mb_response *ret, size_t *ret_used);
int mb_rtu_parse_response(const uint8_t *buf, size_t len, const struct mb_request *q,
			  struct mb_response *ret, size_t *ret_used);
