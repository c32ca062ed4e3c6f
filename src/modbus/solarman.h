/* Solarman V5 framing: the codec of the Wi-Fi data loggers of Deye, Sofar,
 * Solis and Afore inverters (TCP port 8899), which carry Modbus RTU frames
 * inside frames of their own.  Pure functions over byte buffers; no I/O.
 *
 *   0xA5 | length (u16 LE: the payload's) | control (u16 LE) |
 *   sequence (2 bytes) | logger serial (u32 LE) | payload | checksum | 0x15
 *
 * The checksum is the low byte of the sum of every byte after the start
 * byte up to the end of the payload.  Control codes: request 0x4510,
 * response 0x1510; a logger also sends frames of its own (heartbeats
 * 0x4710, and others), which a client skips.  A request's payload is the
 * frame type (0x02), the sensor type (u16, 0), three u32 time fields (0 from
 * a client) and the Modbus RTU frame; a response's payload is the frame
 * type, a status byte, the three time fields and the RTU frame (which may be
 * a Modbus exception).
 *
 * The Modbus client's solarman transport (client.h) uses it; so does
 * egw-sim's simulated logger.  Protocol facts: the pysolarmanv5 project's
 * "Solarman V5 Protocol" document (docs/solarmanv5_protocol.rst). */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "modbus/codec.h"

#define SOLARMAN_START 0xA5
#define SOLARMAN_END 0x15
#define SOLARMAN_HDR 11           /* start .. serial */
#define SOLARMAN_TRAILER 2        /* checksum, end */
#define SOLARMAN_REQ_PREFIX 15    /* frame type, sensor type, three times */
#define SOLARMAN_RSP_PREFIX 14    /* frame type, status, three times */
#define SOLARMAN_PAYLOAD_MAX 1024 /* larger length fields are refused as garbage */
#define SOLARMAN_FRAME_MAX (SOLARMAN_HDR + SOLARMAN_PAYLOAD_MAX + SOLARMAN_TRAILER)

enum solarman_control {
	SOLARMAN_CTL_REQUEST = 0x4510,
	SOLARMAN_CTL_RESPONSE = 0x1510,
	SOLARMAN_CTL_HEARTBEAT = 0x4710,
};

/* One frame as parsed; payload points into the parsed buffer. */
struct solarman_frame {
	uint16_t control;
	uint8_t seq[2];  /* the sequence bytes as sent */
	uint32_t serial; /* the logger's serial number */
	const uint8_t *payload;
	size_t payload_len;
};

/* The checksum of a frame's bytes buf[1 .. len-1]. */
uint8_t solarman_checksum(const uint8_t *buf, size_t len);

/* A frame of any control code with payload (plen bytes, may be 0) into
 * out.  Returns its length, or -ENOSPC / -EINVAL (plen over
 * SOLARMAN_PAYLOAD_MAX). */
int solarman_encode(uint16_t control, const uint8_t seq[2], uint32_t serial, const uint8_t *payload,
		    size_t plen, uint8_t *out, size_t cap);

/* A request frame carrying RTU frame rtu (unit, PDU, CRC) into out.
 * Returns its length, or -ENOSPC (cap too small) / -EINVAL (rtu empty or
 * longer than MB_RTU_ADU_MAX). */
int solarman_encode_request(const uint8_t seq[2], uint32_t serial, const uint8_t *rtu,
			    size_t rtu_len, uint8_t *out, size_t cap);

/* Parses the frame at the start of buf.  Returns its length (> 0; *ret
 * filled), 0 when more bytes are needed, -EGW_EFRAME when buf does not
 * start a frame (no start byte, a length over SOLARMAN_PAYLOAD_MAX, a
 * control code whose low byte is not 0x10, or no end byte where it
 * belongs: skip a byte and retry), or -EGW_ECRC (the
 * checksum does not match: a garbled frame; skip a byte and retry, as its
 * length field cannot be trusted either). */
int solarman_parse(const uint8_t *buf, size_t len, struct solarman_frame *ret);

/* The RTU frame inside a response frame.  Returns 0, or -EGW_EFRAME when
 * f is not a response or its payload is shorter than the prefix plus a
 * minimal RTU frame (unit, function, CRC). */
int solarman_response_rtu(const struct solarman_frame *f, const uint8_t **ret_rtu, size_t *ret_len);

/* The answer to request q inside response frame f (already matched by
 * sequence and serial).  A response without an RTU frame is the logger
 * saying the device behind it did not answer: the gateway exception "target
 * failed to respond".  Two zero bytes after the RTU CRC (some Deye loggers
 * send them) are tolerated.  Returns 0 (*ret filled), an exception error
 * (mb_is_exception_err), -EGW_ELENGTH (the RTU frame is cut short or
 * followed by other bytes) or an error of mb_rtu_parse_response (-EGW_ECRC,
 * -EGW_EPROTO, ...). */
int solarman_parse_response(const struct solarman_frame *f, const struct mb_request *q,
			    struct mb_response *ret);
