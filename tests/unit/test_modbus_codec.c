/* Modbus codec tests: known frames, both directions of every function code,
 * every malformed-frame class with its specific error. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "base/util.h"
#include "modbus/codec.h"

#define BYTES(...) ((const uint8_t[]){ __VA_ARGS__ }), sizeof((const uint8_t[]){ __VA_ARGS__ })

static void test_crc_vectors(void **state)
{
	(void)state;
	assert_int_equal(mb_crc16((const uint8_t *)"123456789", 9), 0x4B37);
	/* 01 03 00 00 00 0A is sent with CRC bytes C5 CD */
	assert_int_equal(mb_crc16(BYTES(0x01, 0x03, 0x00, 0x00, 0x00, 0x0A)), 0xCDC5);
	/* 11 03 00 6B 00 03 -> 76 87 (Modbus over serial line guide) */
	assert_int_equal(mb_crc16(BYTES(0x11, 0x03, 0x00, 0x6B, 0x00, 0x03)), 0x8776);
	assert_int_equal(mb_crc16(NULL, 0), 0xFFFF);
}

static void test_tcp_read_request_known(void **state)
{
	(void)state;
	struct mb_request q = { .tid = 0x1234, .unit = 0x11, .fc = 3, .addr = 0x006B, .count = 3 };
	uint8_t adu[MB_TCP_ADU_MAX];
	const uint8_t want[] = { 0x12, 0x34, 0, 0, 0, 6, 0x11, 0x03, 0x00, 0x6B, 0x00, 0x03 };

	assert_int_equal(mb_tcp_build_request(&q, adu, sizeof(adu)), sizeof(want));
	assert_memory_equal(adu, want, sizeof(want));

	struct mb_request p = { 0 };
	size_t used = 0;
	assert_int_equal(mb_tcp_parse_request(adu, sizeof(want), &p, &used), 0);
	assert_int_equal(used, sizeof(want));
	assert_int_equal(p.tid, 0x1234);
	assert_int_equal(p.unit, 0x11);
	assert_int_equal(p.fc, 3);
	assert_int_equal(p.addr, 0x6B);
	assert_int_equal(p.count, 3);
}

static void test_rtu_read_request_known(void **state)
{
	(void)state;
	struct mb_request q = { .unit = 0x11, .fc = 3, .addr = 0x006B, .count = 3 };
	uint8_t adu[MB_RTU_ADU_MAX];
	const uint8_t want[] = { 0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87 };

	assert_int_equal(mb_rtu_build_request(&q, adu, sizeof(adu)), sizeof(want));
	assert_memory_equal(adu, want, sizeof(want));
	struct mb_request p = { 0 };
	size_t used = 0;
	assert_int_equal(mb_rtu_parse_request(adu, sizeof(want), &p, &used), 0);
	assert_int_equal(used, 8);
	assert_int_equal(p.unit, 0x11);
	assert_int_equal(p.addr, 0x6B);
	assert_int_equal(p.count, 3);
}

/* Build request -> parse request -> build response -> parse response, on
 * both framings, for one request. */
static void roundtrip(const struct mb_request *q, const uint16_t *regs, const char *const *objs,
		      unsigned nobjs, struct mb_response *ret)
{
	for (int rtu = 0; rtu < 2; rtu++) {
		uint8_t adu[MB_TCP_ADU_MAX], pdu[MB_PDU_MAX];
		struct mb_request p;
		size_t used = 0;
		int n, m;

		memset(&p, 0xAA, sizeof(p));
		n = rtu ? mb_rtu_build_request(q, adu, sizeof(adu)) : mb_tcp_build_request(q, adu, sizeof(adu));
		assert_true(n > 0);
		/* every strict prefix is incomplete */
		for (int k = 0; k < n; k++) {
			struct mb_request tmp;
			size_t u = 0;
			assert_int_equal(rtu ? mb_rtu_parse_request(adu, (size_t)k, &tmp, &u)
					     : mb_tcp_parse_request(adu, (size_t)k, &tmp, &u),
					 -EAGAIN);
		}
		assert_int_equal(rtu ? mb_rtu_parse_request(adu, (size_t)n, &p, &used)
				     : mb_tcp_parse_request(adu, (size_t)n, &p, &used),
				 0);
		assert_int_equal(used, (size_t)n);
		assert_int_equal(p.unit, q->unit);
		assert_int_equal(p.fc, q->fc);
		if (q->fc != MB_FC_MEI) {
			assert_int_equal(p.addr, q->addr);
			assert_int_equal(p.count, q->count);
		}
		if (q->fc == MB_FC_WRITE_SINGLE || q->fc == MB_FC_WRITE_MULTIPLE)
			assert_memory_equal(p.values, q->values, q->count * 2);
		if (q->fc == MB_FC_MEI) {
			assert_int_equal(p.devid_code, q->devid_code);
			assert_int_equal(p.object_id, q->object_id);
		}
		if (!rtu)
			assert_int_equal(p.tid, q->tid);

		switch (q->fc) {
		case MB_FC_READ_HOLDING:
		case MB_FC_READ_INPUT:
			m = mb_build_read_response(&p, regs, pdu, sizeof(pdu));
			break;
		case MB_FC_MEI:
			m = mb_build_devid_response(&p, objs, nobjs, 0x81, pdu, sizeof(pdu));
			break;
		default:
			m = mb_build_write_response(&p, pdu, sizeof(pdu));
		}
		assert_true(m > 0);
		n = rtu ? mb_rtu_wrap(p.unit, pdu, (size_t)m, adu, sizeof(adu))
			: mb_tcp_wrap(p.tid, p.unit, pdu, (size_t)m, adu, sizeof(adu));
		assert_true(n > 0);
		for (int k = 0; k < n; k++) {
			struct mb_response tmp;
			size_t u = 0;
			assert_int_equal(rtu ? mb_rtu_parse_response(adu, (size_t)k, q, &tmp, &u)
					     : mb_tcp_parse_response(adu, (size_t)k, q, &tmp, &u),
					 -EAGAIN);
		}
		memset(ret, 0, sizeof(*ret));
		assert_int_equal(rtu ? mb_rtu_parse_response(adu, (size_t)n, q, ret, &used)
				     : mb_tcp_parse_response(adu, (size_t)n, q, ret, &used),
				 0);
		assert_int_equal(used, (size_t)n);
		assert_int_equal(ret->unit, q->unit);
		assert_int_equal(ret->fc, q->fc);
		assert_int_equal(ret->exception, 0);
	}
}

static void test_roundtrip_reads(void **state)
{
	(void)state;
	uint16_t regs[MB_MAX_READ];
	struct mb_response r;
	for (unsigned i = 0; i < MB_MAX_READ; i++)
		regs[i] = (uint16_t)(0xA000 + i * 7);
	const uint16_t counts[] = { 1, 2, 10, MB_MAX_READ };
	for (unsigned fc = 3; fc <= 4; fc++) {
		for (size_t k = 0; k < ARRAY_SIZE(counts); k++) {
			struct mb_request q = { .tid = (uint16_t)(fc * 100 + k), .unit = 7, .fc = (uint8_t)fc,
						.addr = 40000, .count = counts[k] };
			roundtrip(&q, regs, NULL, 0, &r);
			assert_int_equal(r.count, counts[k]);
			assert_memory_equal(r.regs, regs, counts[k] * 2);
		}
	}
}

static void test_roundtrip_writes(void **state)
{
	(void)state;
	struct mb_response r;
	struct mb_request q6 = { .tid = 9, .unit = 1, .fc = 6, .addr = 0x1001, .count = 1,
				 .values = { 0xBEEF } };
	roundtrip(&q6, NULL, NULL, 0, &r);
	assert_int_equal(r.addr, 0x1001);
	assert_int_equal(r.regs[0], 0xBEEF);

	struct mb_request q16 = { .tid = 0xFFFF, .unit = 247, .fc = 16, .addr = 0x2000 };
	for (unsigned count = 1; count <= MB_MAX_WRITE; count += 61) {
		q16.count = (uint16_t)count;
		for (unsigned i = 0; i < count; i++)
			q16.values[i] = (uint16_t)(i * 3 + 1);
		roundtrip(&q16, NULL, NULL, 0, &r);
		assert_int_equal(r.count, count);
	}
	q16.count = MB_MAX_WRITE;
	roundtrip(&q16, NULL, NULL, 0, &r);
}

static void test_roundtrip_devid(void **state)
{
	(void)state;
	const char *objs[] = { "egw-sim", "SIM-1", "1.2.3", NULL, NULL, "Model X" };
	struct mb_response r;
	struct mb_request q = { .tid = 3, .unit = 1, .fc = MB_FC_MEI, .mei_type = MB_MEI_DEVID,
				.devid_code = MB_DEVID_BASIC };
	roundtrip(&q, NULL, objs, ARRAY_SIZE(objs), &r);
	assert_int_equal(r.devid.n_objects, 3);
	assert_int_equal(r.devid.conformity, 0x81);
	assert_int_equal(r.devid.more_follows, 0);
	assert_string_equal(mb_devid_get(&r.devid, 0), "egw-sim");
	assert_string_equal(mb_devid_get(&r.devid, 1), "SIM-1");
	assert_string_equal(mb_devid_get(&r.devid, 2), "1.2.3");
	assert_null(mb_devid_get(&r.devid, 5));

	q.devid_code = MB_DEVID_REGULAR;
	roundtrip(&q, NULL, objs, ARRAY_SIZE(objs), &r);
	assert_int_equal(r.devid.n_objects, 4);
	assert_string_equal(mb_devid_get(&r.devid, 5), "Model X");

	q.devid_code = MB_DEVID_INDIVIDUAL;
	q.object_id = 5;
	roundtrip(&q, NULL, objs, ARRAY_SIZE(objs), &r);
	assert_int_equal(r.devid.n_objects, 1);
	assert_int_equal(r.devid.ids[0], 5);

	/* absent object on individual access -> exception 2 */
	uint8_t pdu[MB_PDU_MAX];
	q.object_id = 3;
	int e = mb_build_devid_response(&q, objs, ARRAY_SIZE(objs), 0x81, pdu, sizeof(pdu));
	assert_int_equal(e, -ENOENT);
	assert_int_equal(mb_exception_for(e), MB_EX_ILLEGAL_ADDRESS);
	/* stream access starting at an absent object restarts at 0 */
	q.devid_code = MB_DEVID_BASIC;
	q.object_id = 0x40;
	roundtrip(&q, NULL, objs, ARRAY_SIZE(objs), &r);
	assert_int_equal(r.devid.ids[0], 0);
}

static void test_devid_more_follows(void **state)
{
	(void)state;
	char big[3][120];
	const char *objs[3];
	for (int i = 0; i < 3; i++) {
		memset(big[i], 'a' + i, sizeof(big[i]) - 1);
		big[i][sizeof(big[i]) - 1] = '\0';
		objs[i] = big[i];
	}
	struct mb_request q = { .unit = 1, .fc = MB_FC_MEI, .mei_type = MB_MEI_DEVID,
				.devid_code = MB_DEVID_BASIC };
	uint8_t pdu[MB_PDU_MAX];
	struct mb_response r;
	int n = mb_build_devid_response(&q, objs, 3, 0x01, pdu, sizeof(pdu));
	assert_int_equal(n, 7 + 2 * (2 + 119));
	assert_int_equal(mb_parse_response_pdu(&q, pdu, (size_t)n, &r), 0);
	assert_int_equal(r.devid.n_objects, 2);
	assert_int_equal(r.devid.more_follows, 0xFF);
	assert_int_equal(r.devid.next_object_id, 2);
	q.object_id = r.devid.next_object_id;
	n = mb_build_devid_response(&q, objs, 3, 0x01, pdu, sizeof(pdu));
	assert_int_equal(mb_parse_response_pdu(&q, pdu, (size_t)n, &r), 0);
	assert_int_equal(r.devid.n_objects, 1);
	assert_int_equal(r.devid.more_follows, 0);
	assert_string_equal(mb_devid_get(&r.devid, 2), big[2]);
}

static void test_exception_both_framings(void **state)
{
	(void)state;
	struct mb_request q = { .tid = 77, .unit = 3, .fc = 4, .addr = 5, .count = 2 };
	uint8_t pdu[8], adu[MB_TCP_ADU_MAX];
	struct mb_response r;
	size_t used;
	int n = mb_build_exception(4, MB_EX_ILLEGAL_ADDRESS, pdu, sizeof(pdu));
	assert_int_equal(n, 2);
	assert_int_equal(pdu[0], 0x84);

	int m = mb_tcp_wrap(77, 3, pdu, 2, adu, sizeof(adu));
	assert_int_equal(mb_tcp_parse_response(adu, (size_t)m, &q, &r, &used), MB_EXCEPTION_ERR(2));
	assert_int_equal(r.exception, 2);
	assert_int_equal(used, (size_t)m);
	assert_true(mb_is_exception_err(MB_EXCEPTION_ERR(2)));
	assert_int_equal(mb_exception_code(MB_EXCEPTION_ERR(2)), 2);

	m = mb_rtu_wrap(3, pdu, 2, adu, sizeof(adu));
	assert_int_equal(m, 5);
	assert_int_equal(mb_rtu_parse_response(adu, 4, &q, &r, &used), -EAGAIN);
	assert_int_equal(used, 5);
	assert_int_equal(mb_rtu_parse_response(adu, 5, &q, &r, &used), MB_EXCEPTION_ERR(2));

	/* invalid exception builds */
	assert_int_equal(mb_build_exception(4, 0, pdu, sizeof(pdu)), -EINVAL);
	assert_int_equal(mb_build_exception(0x84, 1, pdu, sizeof(pdu)), -EINVAL);
	assert_int_equal(mb_build_exception(4, 1, pdu, 1), -ENOBUFS);
	/* exception code 0 on the wire is malformed */
	assert_int_equal(mb_parse_response_pdu(&q, BYTES(0x84, 0x00), &r), -EGW_EFRAME);
	assert_int_equal(mb_parse_response_pdu(&q, BYTES(0x84, 0x02, 0x00), &r), -EGW_EFRAME);
}

static void test_tcp_malformed_requests(void **state)
{
	(void)state;
	struct mb_request p;
	size_t used;

	/* incomplete header, then incomplete body with the exact need */
	assert_int_equal(mb_tcp_parse_request(BYTES(0, 1, 0, 0, 0), &p, &used), -EAGAIN);
	assert_int_equal(used, 7);
	assert_int_equal(mb_tcp_parse_request(BYTES(0, 1, 0, 0, 0, 6, 1, 3), &p, &used), -EAGAIN);
	assert_int_equal(used, 12);
	/* protocol id */
	assert_int_equal(mb_tcp_parse_request(BYTES(0, 1, 0, 1, 0, 6, 1, 3, 0, 0, 0, 1), &p, &used),
			 -EGW_EPROTO);
	assert_int_equal(used, 12);
	/* length field out of range */
	assert_int_equal(mb_tcp_parse_request(BYTES(0, 1, 0, 0, 0, 1, 1, 3), &p, &used), -EGW_ELENGTH);
	assert_int_equal(used, 0);
	assert_int_equal(mb_tcp_parse_request(BYTES(0, 1, 0, 0, 1, 0, 1, 3), &p, &used), -EGW_ELENGTH);
	/* unsupported function: framed, server answers exception 1 */
	assert_int_equal(mb_tcp_parse_request(BYTES(0, 9, 0, 0, 0, 6, 5, 0x05, 0, 1, 0xFF, 0), &p, &used),
			 -EGW_EFUNCTION);
	assert_int_equal(used, 12);
	assert_int_equal(p.tid, 9);
	assert_int_equal(p.unit, 5);
	assert_int_equal(p.fc, 5);
	assert_int_equal(mb_exception_for(-EGW_EFUNCTION), MB_EX_ILLEGAL_FUNCTION);
	/* fc 3 with a trailing byte */
	assert_int_equal(mb_tcp_parse_request(BYTES(0, 1, 0, 0, 0, 7, 1, 3, 0, 0, 0, 1, 0), &p, &used),
			 -EGW_EFRAME);
	assert_int_equal(used, 13);
	/* count 0 and 126 -> illegal value */
	assert_int_equal(mb_tcp_parse_request(BYTES(0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 0), &p, &used),
			 -EGW_ELENGTH);
	assert_int_equal(mb_exception_for(-EGW_ELENGTH), MB_EX_ILLEGAL_VALUE);
	assert_int_equal(mb_tcp_parse_request(BYTES(0, 1, 0, 0, 0, 6, 1, 4, 0, 0, 0, 126), &p, &used),
			 -EGW_ELENGTH);
	/* fc 16: byte count disagrees with count, and with the data */
	assert_int_equal(mb_tcp_parse_request(BYTES(0, 1, 0, 0, 0, 9, 1, 16, 0, 0, 0, 1, 3, 0, 1), &p, &used),
			 -EGW_ELENGTH);
	assert_int_equal(mb_tcp_parse_request(BYTES(0, 1, 0, 0, 0, 10, 1, 16, 0, 0, 0, 1, 2, 0, 1, 9), &p, &used),
			 -EGW_ELENGTH);
	/* fc 43 with another MEI type, and a bad read device id code */
	assert_int_equal(mb_tcp_parse_request(BYTES(0, 1, 0, 0, 0, 5, 1, 43, 13, 1, 0), &p, &used),
			 -EGW_EFUNCTION);
	assert_int_equal(mb_tcp_parse_request(BYTES(0, 1, 0, 0, 0, 5, 1, 43, 14, 9, 0), &p, &used),
			 -EGW_ELENGTH);
	/* two requests back to back: the first is consumed alone */
	assert_int_equal(mb_tcp_parse_request(BYTES(0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1,
						    0, 2, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1),
					      &p, &used),
			 0);
	assert_int_equal(used, 12);
	assert_int_equal(mb_exception_for(-EGW_ECRC), 0);
	assert_int_equal(mb_exception_for(-EGW_EFRAME), 0);
}

static void test_rtu_malformed_requests(void **state)
{
	(void)state;
	struct mb_request q = { .unit = 1, .fc = 16, .addr = 2, .count = 2, .values = { 1, 2 } };
	uint8_t adu[MB_RTU_ADU_MAX];
	struct mb_request p;
	size_t used;
	int n = mb_rtu_build_request(&q, adu, sizeof(adu));

	/* fc 16: 7 bytes tell the length */
	assert_int_equal(mb_rtu_parse_request(adu, 1, &p, &used), -EAGAIN);
	assert_int_equal(used, 0);
	assert_int_equal(mb_rtu_parse_request(adu, 5, &p, &used), -EAGAIN);
	assert_int_equal(used, 7);
	assert_int_equal(mb_rtu_parse_request(adu, 8, &p, &used), -EAGAIN);
	assert_int_equal(used, (size_t)n);
	adu[4] ^= 0x01; /* corrupt: CRC */
	assert_int_equal(mb_rtu_parse_request(adu, (size_t)n, &p, &used), -EGW_ECRC);
	assert_int_equal(used, (size_t)n);
	assert_int_equal(mb_exception_for(-EGW_ECRC), 0);
	adu[4] ^= 0x01;
	assert_int_equal(mb_rtu_parse_request(adu, (size_t)n, &p, &used), 0);
	/* byte count too big for an RTU frame */
	assert_int_equal(mb_rtu_parse_request(BYTES(1, 16, 0, 0, 0, 125, 250), &p, &used), -EGW_ELENGTH);
	/* unknown function: answered only when the buffer is one intact frame */
	uint8_t pdu[] = { 0x07 };
	n = mb_rtu_wrap(1, pdu, 1, adu, sizeof(adu));
	assert_int_equal(mb_rtu_parse_request(adu, (size_t)n, &p, &used), -EGW_EFUNCTION);
	assert_int_equal(used, (size_t)n);
	assert_int_equal(p.fc, 7);
	adu[1] = 0x08;
	assert_int_equal(mb_rtu_parse_request(adu, (size_t)n, &p, &used), -EAGAIN);
}

static void test_tcp_malformed_responses(void **state)
{
	(void)state;
	struct mb_request q = { .tid = 5, .unit = 1, .fc = 3, .addr = 0, .count = 2 };
	struct mb_response r;
	size_t used;

	/* good */
	assert_int_equal(mb_tcp_parse_response(BYTES(0, 5, 0, 0, 0, 7, 1, 3, 4, 0, 1, 0, 2), &q, &r, &used), 0);
	assert_int_equal(r.regs[0], 1);
	assert_int_equal(r.regs[1], 2);
	/* stale tid: framed, skip it */
	assert_int_equal(mb_tcp_parse_response(BYTES(0, 4, 0, 0, 0, 7, 1, 3, 4, 0, 1, 0, 2, 0, 5), &q, &r, &used),
			 -EGW_ETID);
	assert_int_equal(used, 13);
	assert_int_equal(r.tid, 4);
	/* unit mismatch, function mismatch */
	assert_int_equal(mb_tcp_parse_response(BYTES(0, 5, 0, 0, 0, 7, 2, 3, 4, 0, 1, 0, 2), &q, &r, &used),
			 -EGW_EPROTO);
	assert_int_equal(mb_tcp_parse_response(BYTES(0, 5, 0, 0, 0, 7, 1, 4, 4, 0, 1, 0, 2), &q, &r, &used),
			 -EGW_EPROTO);
	assert_int_equal(used, 13);
	/* byte count vs. requested count, byte count vs. data */
	assert_int_equal(mb_tcp_parse_response(BYTES(0, 5, 0, 0, 0, 5, 1, 3, 2, 0, 1), &q, &r, &used),
			 -EGW_ELENGTH);
	assert_int_equal(mb_tcp_parse_response(BYTES(0, 5, 0, 0, 0, 6, 1, 3, 4, 0, 1, 0), &q, &r, &used),
			 -EGW_ELENGTH);
	/* truncated PDU */
	assert_int_equal(mb_tcp_parse_response(BYTES(0, 5, 0, 0, 0, 2, 1, 3), &q, &r, &used), -EGW_EFRAME);
	/* protocol id */
	assert_int_equal(mb_tcp_parse_response(BYTES(0, 5, 0, 7, 0, 7, 1, 3, 4, 0, 1, 0, 2), &q, &r, &used),
			 -EGW_EPROTO);
	/* write echoes that do not match */
	struct mb_request w6 = { .tid = 5, .unit = 1, .fc = 6, .addr = 10, .count = 1, .values = { 99 } };
	assert_int_equal(mb_tcp_parse_response(BYTES(0, 5, 0, 0, 0, 6, 1, 6, 0, 10, 0, 98), &w6, &r, &used),
			 -EGW_EPROTO);
	assert_int_equal(mb_tcp_parse_response(BYTES(0, 5, 0, 0, 0, 6, 1, 6, 0, 10, 0, 99), &w6, &r, &used), 0);
	assert_int_equal(mb_tcp_parse_response(BYTES(0, 5, 0, 0, 0, 5, 1, 6, 0, 10, 0), &w6, &r, &used),
			 -EGW_EFRAME);
	struct mb_request w16 = { .tid = 5, .unit = 1, .fc = 16, .addr = 10, .count = 3 };
	assert_int_equal(mb_tcp_parse_response(BYTES(0, 5, 0, 0, 0, 6, 1, 16, 0, 10, 0, 2), &w16, &r, &used),
			 -EGW_EPROTO);
	assert_int_equal(mb_tcp_parse_response(BYTES(0, 5, 0, 0, 0, 6, 1, 16, 0, 10, 0, 3), &w16, &r, &used), 0);
	/* devid: object overruns, trailing bytes, bad more-follows, wrong MEI */
	struct mb_request d = { .tid = 5, .unit = 1, .fc = 43, .mei_type = 14, .devid_code = 1 };
	assert_int_equal(mb_tcp_parse_response(BYTES(0, 5, 0, 0, 0, 12, 1, 43, 14, 1, 1, 0, 0, 1, 0, 5, 'a', 'b'),
					       &d, &r, &used),
			 -EGW_ELENGTH);
	assert_int_equal(mb_tcp_parse_response(BYTES(0, 5, 0, 0, 0, 12, 1, 43, 14, 1, 1, 0, 0, 1, 0, 1, 'a', 'b'),
					       &d, &r, &used),
			 -EGW_ELENGTH);
	assert_int_equal(mb_tcp_parse_response(BYTES(0, 5, 0, 0, 0, 11, 1, 43, 14, 1, 1, 7, 0, 1, 0, 1, 'a'),
					       &d, &r, &used),
			 -EGW_EFRAME);
	assert_int_equal(mb_tcp_parse_response(BYTES(0, 5, 0, 0, 0, 11, 1, 43, 13, 1, 1, 0, 0, 1, 0, 1, 'a'),
					       &d, &r, &used),
			 -EGW_EPROTO);
	assert_int_equal(mb_tcp_parse_response(BYTES(0, 5, 0, 0, 0, 11, 1, 43, 14, 1, 1, 0, 0, 1, 0, 1, 'a'),
					       &d, &r, &used),
			 0);
	assert_string_equal(mb_devid_get(&r.devid, 0), "a");
}

static void test_rtu_malformed_responses(void **state)
{
	(void)state;
	struct mb_request q = { .unit = 1, .fc = 3, .addr = 0, .count = 1 };
	uint16_t reg = 0x1234;
	uint8_t pdu[8], adu[MB_RTU_ADU_MAX];
	struct mb_response r;
	size_t used;
	int n = mb_build_read_response(&q, &reg, pdu, sizeof(pdu));
	int m = mb_rtu_wrap(1, pdu, (size_t)n, adu, sizeof(adu));

	assert_int_equal(m, 7);
	assert_int_equal(mb_rtu_parse_response(adu, 2, &q, &r, &used), -EAGAIN);
	assert_int_equal(mb_rtu_parse_response(adu, 3, &q, &r, &used), -EAGAIN);
	assert_int_equal(used, 7);
	assert_int_equal(mb_rtu_parse_response(adu, 7, &q, &r, &used), 0);
	assert_int_equal(r.regs[0], 0x1234);
	adu[6] ^= 0xFF;
	assert_int_equal(mb_rtu_parse_response(adu, 7, &q, &r, &used), -EGW_ECRC);
	assert_int_equal(used, 7);
	adu[6] ^= 0xFF;
	/* wrong unit / wrong function: not our frame, no length known */
	adu[0] = 2;
	assert_int_equal(mb_rtu_parse_response(adu, 7, &q, &r, &used), -EGW_EPROTO);
	assert_int_equal(used, 0);
	adu[0] = 1;
	adu[1] = 4;
	assert_int_equal(mb_rtu_parse_response(adu, 7, &q, &r, &used), -EGW_EPROTO);
	/* byte count that disagrees with the request (CRC valid) */
	const uint8_t bad[] = { 0x03, 0x04, 0, 1, 0, 2 };
	m = mb_rtu_wrap(1, bad, sizeof(bad), adu, sizeof(adu));
	assert_int_equal(mb_rtu_parse_response(adu, (size_t)m, &q, &r, &used), -EGW_ELENGTH);
	assert_int_equal(used, (size_t)m);
	/* byte count that cannot fit an RTU frame */
	assert_int_equal(mb_rtu_parse_response(BYTES(1, 3, 0xFF, 0), &q, &r, &used), -EGW_ELENGTH);
}

static void test_builders_reject(void **state)
{
	(void)state;
	uint8_t buf[MB_TCP_ADU_MAX];
	struct mb_request q = { .unit = 1, .fc = 3, .count = 0 };
	assert_int_equal(mb_tcp_build_request(&q, buf, sizeof(buf)), -EINVAL);
	q.count = 126;
	assert_int_equal(mb_tcp_build_request(&q, buf, sizeof(buf)), -EINVAL);
	q.count = 1;
	assert_int_equal(mb_tcp_build_request(&q, buf, 11), -ENOBUFS);
	assert_int_equal(mb_tcp_build_request(&q, buf, 12), 12);
	q.fc = 16;
	q.count = 124;
	assert_int_equal(mb_tcp_build_request(&q, buf, sizeof(buf)), -EINVAL);
	q.fc = 6;
	q.count = 2;
	assert_int_equal(mb_tcp_build_request(&q, buf, sizeof(buf)), -EINVAL);
	q.fc = 5;
	assert_int_equal(mb_tcp_build_request(&q, buf, sizeof(buf)), -EGW_EFUNCTION);
	q.fc = 43;
	q.mei_type = 14;
	q.devid_code = 5;
	assert_int_equal(mb_rtu_build_request(&q, buf, sizeof(buf)), -EINVAL);
	q.mei_type = 13;
	q.devid_code = 1;
	assert_int_equal(mb_rtu_build_request(&q, buf, sizeof(buf)), -EGW_EFUNCTION);
	assert_int_equal(mb_tcp_wrap(1, 1, buf, 0, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(mb_tcp_wrap(1, 1, buf, 254, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(mb_rtu_wrap(1, buf, 253, buf, 255), -ENOBUFS);
	assert_int_equal(mb_rtu_wrap(1, buf, 253, buf, MB_RTU_ADU_MAX), MB_RTU_ADU_MAX);
	struct mb_request w = { .fc = 3, .count = 1 };
	assert_int_equal(mb_build_write_response(&w, buf, sizeof(buf)), -EINVAL);
	uint16_t regs[1] = { 0 };
	w.fc = 6;
	assert_int_equal(mb_build_read_response(&w, regs, buf, sizeof(buf)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc_vectors),
		cmocka_unit_test(test_tcp_read_request_known),
		cmocka_unit_test(test_rtu_read_request_known),
		cmocka_unit_test(test_roundtrip_reads),
		cmocka_unit_test(test_roundtrip_writes),
		cmocka_unit_test(test_roundtrip_devid),
		cmocka_unit_test(test_devid_more_follows),
		cmocka_unit_test(test_exception_both_framings),
		cmocka_unit_test(test_tcp_malformed_requests),
		cmocka_unit_test(test_rtu_malformed_requests),
		cmocka_unit_test(test_tcp_malformed_responses),
		cmocka_unit_test(test_rtu_malformed_responses),
		cmocka_unit_test(test_builders_reject),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
