/* Solarman V5 framing; see solarman.h. */
#include "modbus/solarman.h"

#include <errno.h>
#include <string.h>

#include "base/err.h"

static void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	put_u16(p, (uint16_t)v);
	put_u16(p + 2, (uint16_t)(v >> 16));
}

static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_u32(const uint8_t *p)
{
	return get_u16(p) | (uint32_t)get_u16(p + 2) << 16;
}

uint8_t solarman_checksum(const uint8_t *buf, size_t len)
{
	uint8_t sum = 0;
	for (size_t i = 1; i < len; i++)
		sum = (uint8_t)(sum + buf[i]);
	return sum;
}

int solarman_encode(uint16_t control, const uint8_t seq[2], uint32_t serial, const uint8_t *payload,
		    size_t plen, uint8_t *out, size_t cap)
{
	size_t n = SOLARMAN_HDR + plen + SOLARMAN_TRAILER;

	if (plen > SOLARMAN_PAYLOAD_MAX)
		return -EINVAL;
	if (cap < n)
		return -ENOSPC;
	out[0] = SOLARMAN_START;
	put_u16(out + 1, (uint16_t)plen);
	put_u16(out + 3, control);
	out[5] = seq[0];
	out[6] = seq[1];
	put_u32(out + 7, serial);
	if (plen)
		memmove(out + SOLARMAN_HDR, payload, plen);
	out[n - 2] = solarman_checksum(out, n - 2);
	out[n - 1] = SOLARMAN_END;
	return (int)n;
}

int solarman_encode_request(const uint8_t seq[2], uint32_t serial, const uint8_t *rtu,
			    size_t rtu_len, uint8_t *out, size_t cap)
{
	uint8_t payload[SOLARMAN_REQ_PREFIX + MB_RTU_ADU_MAX];

	if (rtu_len == 0 || rtu_len > MB_RTU_ADU_MAX)
		return -EINVAL;
	memset(payload, 0, SOLARMAN_REQ_PREFIX); /* sensor type and times: 0 from a client */
	payload[0] = 0x02;                       /* frame type: inverter data */
	memcpy(payload + SOLARMAN_REQ_PREFIX, rtu, rtu_len);
	return solarman_encode(SOLARMAN_CTL_REQUEST, seq, serial, payload,
			       SOLARMAN_REQ_PREFIX + rtu_len, out, cap);
}

int solarman_parse(const uint8_t *buf, size_t len, struct solarman_frame *ret)
{
	size_t plen, n;

	if (len == 0)
		return 0;
	if (buf[0] != SOLARMAN_START)
		return -EGW_EFRAME;
	if (len < 3)
		return 0;
	plen = get_u16(buf + 1);
	if (plen > SOLARMAN_PAYLOAD_MAX)
		return -EGW_EFRAME;
	/* every control code is 0x??10: its first byte tells a frame start
	 * from a 0xA5 inside other bytes */
	if (len > 3 && buf[3] != 0x10)
		return -EGW_EFRAME;
	n = SOLARMAN_HDR + plen + SOLARMAN_TRAILER;
	if (len < n)
		return 0;
	if (buf[n - 1] != SOLARMAN_END)
		return -EGW_EFRAME;
	if (buf[n - 2] != solarman_checksum(buf, n - 2))
		return -EGW_ECRC;
	*ret = (struct solarman_frame){
		.control = get_u16(buf + 3),
		.seq = { buf[5], buf[6] },
		.serial = get_u32(buf + 7),
		.payload = buf + SOLARMAN_HDR,
		.payload_len = plen,
	};
	return (int)n;
}

int solarman_response_rtu(const struct solarman_frame *f, const uint8_t **ret_rtu, size_t *ret_len)
{
	/* unit, function, CRC: the shortest RTU frame */
	if (f->control != SOLARMAN_CTL_RESPONSE || f->payload_len < SOLARMAN_RSP_PREFIX + 4)
		return -EGW_EFRAME;
	*ret_rtu = f->payload + SOLARMAN_RSP_PREFIX;
	*ret_len = f->payload_len - SOLARMAN_RSP_PREFIX;
	return 0;
}

int solarman_parse_response(const struct solarman_frame *f, const struct mb_request *q,
			    struct mb_response *ret)
{
	const uint8_t *rtu;
	size_t len, used = 0;
	int r;

	if (solarman_response_rtu(f, &rtu, &len) < 0)
		return MB_EXCEPTION_ERR(MB_EX_GATEWAY_TARGET);
	r = mb_rtu_parse_response(rtu, len, q, ret, &used);
	if (r == -EAGAIN)
		return -EGW_ELENGTH;
	if (r < 0 && !mb_is_exception_err(r))
		return r;
	/* Deye loggers append two zero bytes after the RTU CRC */
	if (used != len && !(used + 2 == len && rtu[used] == 0 && rtu[used + 1] == 0))
		return -EGW_ELENGTH;
	return r;
}
