/* Solarman V5 framing (modbus/solarman.h): frames laid out byte by byte
 * here, parsed back, and every way a frame can be short or garbled. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/err.h"
#include "modbus/codec.h"
#include "modbus/solarman.h"

static uint8_t sum(const uint8_t *b, size_t from, size_t to)
{
	unsigned s = 0;
	for (size_t i = from; i < to; i++)
		s += b[i];
	return (uint8_t)s;
}

/* Read 10 holding registers from 0 of unit 1, through logger 2712345678. */
static void test_request_layout(void **state)
{
	static const uint8_t rtu[] = { 0x01, 0x03, 0x00, 0x00, 0x00, 0x0a, 0xc5, 0xcd };
	const uint8_t seq[2] = { 0x42, 0x00 };
	uint8_t out[64];
	struct solarman_frame f;
	int n;
	(void)state;

	assert_int_equal(mb_crc16(rtu, 6), (uint16_t)(0xcd << 8 | 0xc5));
	n = solarman_encode_request(seq, 2712345678u, rtu, sizeof(rtu), out, sizeof(out));
	assert_int_equal(n, 11 + 15 + 8 + 2);
	static const uint8_t head[] = { 0xa5, 23, 0x00, 0x10, 0x45, 0x42, 0x00,
					0x4e, 0x1c, 0xab, 0xa1, /* 2712345678 = 0xA1AB1C4E */
					0x02, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	assert_memory_equal(out, head, sizeof(head));
	assert_memory_equal(out + 26, rtu, sizeof(rtu));
	assert_int_equal(out[n - 2], sum(out, 1, (size_t)n - 2));
	assert_int_equal(out[n - 1], 0x15);

	assert_int_equal(solarman_parse(out, (size_t)n, &f), n);
	assert_int_equal(f.control, SOLARMAN_CTL_REQUEST);
	assert_int_equal(f.serial, 2712345678u);
	assert_int_equal(f.seq[0], 0x42);
	assert_int_equal(f.payload_len, 23);
	assert_int_equal(solarman_encode_request(seq, 1, rtu, sizeof(rtu), out, 35), -ENOSPC);
	assert_int_equal(solarman_encode_request(seq, 1, rtu, 0, out, sizeof(out)), -EINVAL);
}

/* A heartbeat, then the response to a read: both parsed from one buffer. */
static void test_response_after_heartbeat(void **state)
{
	uint8_t b[128];
	size_t n = 0, hb, rsp_start;
	static const uint8_t rtu[] = { 0x01, 0x03, 0x02, 0x00, 0x2a, 0x39, 0x9b };
	const uint8_t *r;
	size_t rl;
	struct solarman_frame f;
	int k;
	(void)state;

	assert_int_equal(mb_crc16(rtu, 5), (uint16_t)(0x9b << 8 | 0x39));
	/* heartbeat: payload one byte */
	static const uint8_t h[] = { 0xa5, 0x01, 0x00, 0x10, 0x47, 0x00, 0x01, 0x4e, 0x1c, 0xab,
				     0xa1, 0x00 };
	memcpy(b, h, sizeof(h));
	n = sizeof(h);
	b[n] = sum(b, 1, n);
	n++;
	b[n++] = 0x15;
	hb = n;
	/* response: frame type, status, three times, RTU */
	rsp_start = n;
	static const uint8_t rh[] = { 0xa5, 14 + 7, 0x00, 0x10, 0x15, 0x43, 0x42, 0x4e, 0x1c,
				      0xab, 0xa1, 0x02, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	memcpy(b + n, rh, sizeof(rh));
	n += sizeof(rh);
	memcpy(b + n, rtu, sizeof(rtu));
	n += sizeof(rtu);
	b[n] = sum(b, rsp_start + 1, n);
	n++;
	b[n++] = 0x15;

	k = solarman_parse(b, n, &f);
	assert_int_equal(k, (int)hb);
	assert_int_equal(f.control, SOLARMAN_CTL_HEARTBEAT);
	assert_int_equal(solarman_response_rtu(&f, &r, &rl), -EGW_EFRAME);
	k = solarman_parse(b + hb, n - hb, &f);
	assert_int_equal(k, (int)(n - hb));
	assert_int_equal(f.control, SOLARMAN_CTL_RESPONSE);
	assert_int_equal(f.seq[1], 0x42);
	assert_int_equal(solarman_response_rtu(&f, &r, &rl), 0);
	assert_int_equal(rl, sizeof(rtu));
	assert_memory_equal(r, rtu, sizeof(rtu));

	/* every prefix: more bytes needed */
	for (size_t i = 0; i < n - hb; i++)
		assert_int_equal(solarman_parse(b + hb, i, &f), 0);
	/* garbled: checksum, end byte, start byte, length */
	b[n - 2] ^= 1;
	assert_int_equal(solarman_parse(b + hb, n - hb, &f), -EGW_ECRC);
	b[n - 2] ^= 1;
	b[n - 1] = 0x16;
	assert_int_equal(solarman_parse(b + hb, n - hb, &f), -EGW_EFRAME);
	b[n - 1] = 0x15;
	b[hb] = 0xa4;
	assert_int_equal(solarman_parse(b + hb, n - hb, &f), -EGW_EFRAME);
	b[hb] = 0xa5;
	b[hb + 2] = 0x10; /* 4096 + 21 bytes of payload */
	assert_int_equal(solarman_parse(b + hb, n - hb, &f), -EGW_EFRAME);
}

/* A response frame with payload prefix + rtu (len bytes) into out. */
static size_t response(uint8_t *out, const uint8_t *rtu, size_t len)
{
	const uint8_t seq[2] = { 0x42, 0x07 };
	uint8_t payload[SOLARMAN_RSP_PREFIX + 64] = { 0x02, 0x01 };
	int n;

	memcpy(payload + SOLARMAN_RSP_PREFIX, rtu, len);
	n = solarman_encode(SOLARMAN_CTL_RESPONSE, seq, 2712345678u, payload,
			    SOLARMAN_RSP_PREFIX + len, out, 128);
	assert_true(n > 0);
	return (size_t)n;
}

/* The answer inside a response, as the client takes it: exact, with the two
 * zero bytes some Deye loggers append, an exception, an empty answer (the
 * inverter behind the logger did not answer), and broken ones. */
static void test_parse_response(void **state)
{
	const struct mb_request q = { .unit = 1, .fc = 3, .addr = 0, .count = 1 };
	uint8_t rtu[16] = { 0x01, 0x03, 0x02, 0x00, 0x2a, 0x39, 0x9b };
	uint8_t b[128];
	struct solarman_frame f;
	struct mb_response resp;
	size_t n;
	(void)state;

	n = response(b, rtu, 7);
	assert_int_equal(solarman_parse(b, n, &f), (int)n);
	assert_int_equal(solarman_parse_response(&f, &q, &resp), 0);
	assert_int_equal(resp.count, 1);
	assert_int_equal(resp.regs[0], 42);

	n = response(b, rtu, 9); /* rtu[7], rtu[8]: 0 0 */
	assert_int_equal(solarman_parse(b, n, &f), (int)n);
	assert_int_equal(solarman_parse_response(&f, &q, &resp), 0);
	assert_int_equal(resp.regs[0], 42);

	rtu[7] = 1; /* two bytes more that are not zeros */
	n = response(b, rtu, 9);
	assert_int_equal(solarman_parse(b, n, &f), (int)n);
	assert_int_equal(solarman_parse_response(&f, &q, &resp), -EGW_ELENGTH);

	n = response(b, rtu, 6); /* cut short */
	assert_int_equal(solarman_parse(b, n, &f), (int)n);
	assert_true(solarman_parse_response(&f, &q, &resp) < 0);

	n = response(b, rtu, 0);
	assert_int_equal(solarman_parse(b, n, &f), (int)n);
	assert_int_equal(solarman_parse_response(&f, &q, &resp),
			 MB_EXCEPTION_ERR(MB_EX_GATEWAY_TARGET));

	static const uint8_t ex[] = { 0x01, 0x83, 0x02, 0xc0, 0xf1 };
	assert_int_equal(mb_crc16(ex, 3), (uint16_t)(0xf1 << 8 | 0xc0));
	n = response(b, ex, sizeof(ex));
	assert_int_equal(solarman_parse(b, n, &f), (int)n);
	assert_int_equal(solarman_parse_response(&f, &q, &resp), MB_EXCEPTION_ERR(2));

	rtu[6] ^= 1; /* RTU CRC */
	n = response(b, rtu, 7);
	assert_int_equal(solarman_parse(b, n, &f), (int)n);
	assert_int_equal(solarman_parse_response(&f, &q, &resp), -EGW_ECRC);

	/* 0xA5 inside other bytes: a control code whose first byte is not 0x10 */
	b[3] = 0x11;
	assert_int_equal(solarman_parse(b, n, &f), -EGW_EFRAME);
	assert_int_equal(solarman_parse(b, 3, &f), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_layout),
		cmocka_unit_test(test_response_after_heartbeat),
		cmocka_unit_test(test_parse_response),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
