/* Modbus codec: framing (MBAP, RTU) and PDUs for fc 3, 4, 6, 16, 43/14. */
#include "modbus/codec.h"

#include <errno.h>
#include <string.h>

#include "base/util.h"

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Table-driven CRC-16/MODBUS: one table lookup per byte. */
static const uint16_t crc_table[256] = {
#define C1(n) (((n) >> 1) ^ (((n)&1u) * 0xA001u))
#define C2(n) C1(C1(n))
#define C4(n) C2(C2(n))
#define C8(n) C4(C4(n))
#define R4(n) C8(n), C8((n) + 1), C8((n) + 2), C8((n) + 3)
#define R16(n) R4(n), R4((n) + 4), R4((n) + 8), R4((n) + 12)
#define R64(n) R16(n), R16((n) + 16), R16((n) + 32), R16((n) + 48)
	R64(0u),
	R64(64u),
	R64(128u),
	R64(192u),
#undef R64
#undef R16
#undef R4
#undef C8
#undef C4
#undef C2
#undef C1
};

uint16_t mb_crc16(const uint8_t *buf, size_t len)
{
	uint16_t crc = 0xFFFF;
	for (size_t i = 0; i < len; i++)
		crc = (uint16_t)((crc >> 8) ^ crc_table[(crc ^ buf[i]) & 0xFF]);
	return crc;
}

const char *mb_devid_get(const struct mb_devid *d, uint8_t id)
{
	for (unsigned i = 0; i < d->n_objects; i++)
		if (d->ids[i] == id)
			return d->text + d->offs[i];
	return NULL;
}

/* ---- PDU level ---- */

int mb_build_request_pdu(const struct mb_request *q, uint8_t *pdu_out, size_t cap)
{
	size_t n;

	switch (q->fc) {
	case MB_FC_READ_HOLDING:
	case MB_FC_READ_INPUT:
		if (q->count < 1 || q->count > MB_MAX_READ)
			return -EINVAL;
		n = 5;
		if (cap < n)
			return -ENOBUFS;
		pdu_out[0] = q->fc;
		put16(pdu_out + 1, q->addr);
		put16(pdu_out + 3, q->count);
		return (int)n;
	case MB_FC_WRITE_SINGLE:
		if (q->count != 1)
			return -EINVAL;
		n = 5;
		if (cap < n)
			return -ENOBUFS;
		pdu_out[0] = q->fc;
		put16(pdu_out + 1, q->addr);
		put16(pdu_out + 3, q->values[0]);
		return (int)n;
	case MB_FC_WRITE_MULTIPLE:
		if (q->count < 1 || q->count > MB_MAX_WRITE)
			return -EINVAL;
		n = 6 + 2 * (size_t)q->count;
		if (cap < n)
			return -ENOBUFS;
		pdu_out[0] = q->fc;
		put16(pdu_out + 1, q->addr);
		put16(pdu_out + 3, q->count);
		pdu_out[5] = (uint8_t)(2 * q->count);
		for (unsigned i = 0; i < q->count; i++)
			put16(pdu_out + 6 + 2 * i, q->values[i]);
		return (int)n;
	case MB_FC_MEI:
		if (q->mei_type != MB_MEI_DEVID)
			return -EGW_EFUNCTION;
		if (q->devid_code < MB_DEVID_BASIC || q->devid_code > MB_DEVID_INDIVIDUAL)
			return -EINVAL;
		n = 4;
		if (cap < n)
			return -ENOBUFS;
		pdu_out[0] = q->fc;
		pdu_out[1] = q->mei_type;
		pdu_out[2] = q->devid_code;
		pdu_out[3] = q->object_id;
		return (int)n;
	default:
		return -EGW_EFUNCTION;
	}
}

int mb_parse_request_pdu(const uint8_t *pdu, size_t pdu_len, struct mb_request *ret)
{
	if (pdu_len < 1 || pdu_len > MB_PDU_MAX)
		return -EGW_EFRAME;
	ret->fc = pdu[0];
	switch (pdu[0]) {
	case MB_FC_READ_HOLDING:
	case MB_FC_READ_INPUT: {
		if (pdu_len != 5)
			return -EGW_EFRAME;
		uint16_t count = get16(pdu + 3);
		if (count < 1 || count > MB_MAX_READ)
			return -EGW_ELENGTH;
		ret->addr = get16(pdu + 1);
		ret->count = count;
		return 0;
	}
	case MB_FC_WRITE_SINGLE:
		if (pdu_len != 5)
			return -EGW_EFRAME;
		ret->addr = get16(pdu + 1);
		ret->count = 1;
		ret->values[0] = get16(pdu + 3);
		return 0;
	case MB_FC_WRITE_MULTIPLE: {
		if (pdu_len < 6)
			return -EGW_EFRAME;
		uint16_t count = get16(pdu + 3);
		if (count < 1 || count > MB_MAX_WRITE || pdu[5] != 2 * count ||
		    pdu_len != 6 + (size_t)pdu[5])
			return -EGW_ELENGTH;
		ret->addr = get16(pdu + 1);
		ret->count = count;
		for (unsigned i = 0; i < count; i++)
			ret->values[i] = get16(pdu + 6 + 2 * i);
		return 0;
	}
	case MB_FC_MEI:
		if (pdu_len < 2)
			return -EGW_EFRAME;
		if (pdu[1] != MB_MEI_DEVID)
			return -EGW_EFUNCTION;
		if (pdu_len != 4)
			return -EGW_EFRAME;
		if (pdu[2] < MB_DEVID_BASIC || pdu[2] > MB_DEVID_INDIVIDUAL)
			return -EGW_ELENGTH;
		ret->mei_type = pdu[1];
		ret->devid_code = pdu[2];
		ret->object_id = pdu[3];
		ret->count = 0;
		return 0;
	default:
		return -EGW_EFUNCTION;
	}
}

static int parse_devid(const struct mb_request *q, const uint8_t *pdu, size_t pdu_len,
		       struct mb_devid *d)
{
	size_t pos = 7, text = 0;

	if (pdu_len < 7)
		return -EGW_EFRAME;
	if (pdu[1] != MB_MEI_DEVID || pdu[2] != q->devid_code)
		return -EGW_EPROTO;
	if (pdu[4] != 0x00 && pdu[4] != 0xFF)
		return -EGW_EFRAME;
	d->code = pdu[2];
	d->conformity = pdu[3];
	d->more_follows = pdu[4];
	d->next_object_id = pdu[5];
	d->n_objects = pdu[6];
	if (d->n_objects > MB_DEVID_MAX_OBJECTS)
		return -EGW_ELENGTH;
	for (unsigned i = 0; i < d->n_objects; i++) {
		if (pos + 2 > pdu_len)
			return -EGW_ELENGTH;
		uint8_t len = pdu[pos + 1];
		if (pos + 2 + len > pdu_len)
			return -EGW_ELENGTH;
		/* pdu_len <= 253 bounds text: sum(len) + n <= 253 - 7 - n. */
		d->ids[i] = pdu[pos];
		d->lens[i] = len;
		d->offs[i] = (uint16_t)text;
		memcpy(d->text + text, pdu + pos + 2, len);
		text += len;
		d->text[text++] = '\0';
		pos += 2 + (size_t)len;
	}
	if (pos != pdu_len)
		return -EGW_ELENGTH;
	return 0;
}

int mb_parse_response_pdu(const struct mb_request *q, const uint8_t *pdu, size_t pdu_len,
			  struct mb_response *ret)
{
	if (pdu_len < 1 || pdu_len > MB_PDU_MAX)
		return -EGW_EFRAME;
	if (pdu[0] == (q->fc | MB_FC_EXCEPTION)) {
		if (pdu_len != 2 || pdu[1] == 0)
			return -EGW_EFRAME;
		ret->fc = q->fc;
		ret->exception = pdu[1];
		return MB_EXCEPTION_ERR(pdu[1]);
	}
	if (pdu[0] != q->fc)
		return -EGW_EPROTO;
	ret->fc = q->fc;
	ret->exception = 0;
	switch (q->fc) {
	case MB_FC_READ_HOLDING:
	case MB_FC_READ_INPUT:
		if (pdu_len < 2)
			return -EGW_EFRAME;
		if (pdu_len != 2 + (size_t)pdu[1] || pdu[1] != 2 * q->count ||
		    q->count > MB_MAX_READ)
			return -EGW_ELENGTH;
		ret->addr = q->addr;
		ret->count = q->count;
		for (unsigned i = 0; i < q->count; i++)
			ret->regs[i] = get16(pdu + 2 + 2 * i);
		return 0;
	case MB_FC_WRITE_SINGLE:
		if (pdu_len != 5)
			return -EGW_EFRAME;
		if (get16(pdu + 1) != q->addr || get16(pdu + 3) != q->values[0])
			return -EGW_EPROTO;
		ret->addr = q->addr;
		ret->count = 1;
		ret->regs[0] = q->values[0];
		return 0;
	case MB_FC_WRITE_MULTIPLE:
		if (pdu_len != 5)
			return -EGW_EFRAME;
		if (get16(pdu + 1) != q->addr || get16(pdu + 3) != q->count)
			return -EGW_EPROTO;
		ret->addr = q->addr;
		ret->count = q->count;
		return 0;
	case MB_FC_MEI:
		ret->count = 0;
		return parse_devid(q, pdu, pdu_len, &ret->devid);
	default:
		return -EGW_EFUNCTION;
	}
}

/* ---- server side: responses ---- */

int mb_build_read_response(const struct mb_request *q, const uint16_t *regs, uint8_t *pdu_out,
			   size_t cap)
{
	if ((q->fc != MB_FC_READ_HOLDING && q->fc != MB_FC_READ_INPUT) || q->count < 1 ||
	    q->count > MB_MAX_READ)
		return -EINVAL;
	size_t n = 2 + 2 * (size_t)q->count;
	if (cap < n)
		return -ENOBUFS;
	pdu_out[0] = q->fc;
	pdu_out[1] = (uint8_t)(2 * q->count);
	for (unsigned i = 0; i < q->count; i++)
		put16(pdu_out + 2 + 2 * i, regs[i]);
	return (int)n;
}

int mb_build_write_response(const struct mb_request *q, uint8_t *pdu_out, size_t cap)
{
	if (q->fc == MB_FC_WRITE_SINGLE) {
		if (q->count != 1)
			return -EINVAL;
	} else if (q->fc == MB_FC_WRITE_MULTIPLE) {
		if (q->count < 1 || q->count > MB_MAX_WRITE)
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	if (cap < 5)
		return -ENOBUFS;
	pdu_out[0] = q->fc;
	put16(pdu_out + 1, q->addr);
	put16(pdu_out + 3, q->fc == MB_FC_WRITE_SINGLE ? q->values[0] : q->count);
	return 5;
}

int mb_build_exception(uint8_t fc, uint8_t code, uint8_t *pdu_out, size_t cap)
{
	if (code == 0 || fc == 0 || (fc & MB_FC_EXCEPTION))
		return -EINVAL;
	if (cap < 2)
		return -ENOBUFS;
	pdu_out[0] = fc | MB_FC_EXCEPTION;
	pdu_out[1] = code;
	return 2;
}

/* Largest object value that fits a PDU alone: 253 - 7 header - 2. */
#define DEVID_VALUE_MAX (MB_PDU_MAX - 9)

int mb_build_devid_response(const struct mb_request *q, const char *const objects[], unsigned n,
			    uint8_t conformity, uint8_t *pdu_out, size_t cap)
{
	static const unsigned last_of_code[] = { [MB_DEVID_BASIC] = 0x02,
						 [MB_DEVID_REGULAR] = 0x7F,
						 [MB_DEVID_EXTENDED] = 0xFF };
	size_t limit = MIN(cap, (size_t)MB_PDU_MAX), pos = 7;
	unsigned first, last, count = 0;

	if (q->fc != MB_FC_MEI || q->mei_type != MB_MEI_DEVID || q->devid_code < MB_DEVID_BASIC ||
	    q->devid_code > MB_DEVID_INDIVIDUAL)
		return -EINVAL;
	if (q->devid_code == MB_DEVID_INDIVIDUAL) {
		if (q->object_id >= n || !objects[q->object_id])
			return -ENOENT;
		first = last = q->object_id;
	} else {
		last = last_of_code[q->devid_code];
		first = q->object_id;
		if (first > last || first >= n || !objects[first])
			first = 0;
	}
	if (limit < 7)
		return -ENOBUFS;
	pdu_out[0] = MB_FC_MEI;
	pdu_out[1] = MB_MEI_DEVID;
	pdu_out[2] = q->devid_code;
	pdu_out[3] = conformity;
	pdu_out[4] = 0x00;
	pdu_out[5] = 0x00;
	for (unsigned id = first; id <= last && id < n; id++) {
		if (!objects[id])
			continue;
		size_t len = MIN(strlen(objects[id]), (size_t)DEVID_VALUE_MAX);
		if (pos + 2 + len > limit) {
			if (count == 0)
				return -ENOBUFS;
			pdu_out[4] = 0xFF;
			pdu_out[5] = (uint8_t)id;
			break;
		}
		pdu_out[pos] = (uint8_t)id;
		pdu_out[pos + 1] = (uint8_t)len;
		memcpy(pdu_out + pos + 2, objects[id], len);
		pos += 2 + len;
		count++;
	}
	pdu_out[6] = (uint8_t)count;
	return (int)pos;
}

int mb_exception_for(int err)
{
	if (mb_is_exception_err(err))
		return mb_exception_code(err);
	switch (err) {
	case -EGW_EFUNCTION:
		return MB_EX_ILLEGAL_FUNCTION;
	case -ENOENT:
		return MB_EX_ILLEGAL_ADDRESS;
	case -EGW_ELENGTH:
	case -EINVAL:
		return MB_EX_ILLEGAL_VALUE;
	default:
		return 0;
	}
}

/* ---- framing ---- */

int mb_tcp_wrap(uint16_t tid, uint8_t unit, const uint8_t *pdu, size_t pdu_len, uint8_t *adu_out,
		size_t cap)
{
	if (pdu_len < 1 || pdu_len > MB_PDU_MAX)
		return -EINVAL;
	if (cap < MB_MBAP_LEN + pdu_len)
		return -ENOBUFS;
	memmove(adu_out + MB_MBAP_LEN, pdu, pdu_len);
	put16(adu_out, tid);
	put16(adu_out + 2, 0);
	put16(adu_out + 4, (uint16_t)(pdu_len + 1));
	adu_out[6] = unit;
	return (int)(MB_MBAP_LEN + pdu_len);
}

int mb_rtu_wrap(uint8_t unit, const uint8_t *pdu, size_t pdu_len, uint8_t *adu_out, size_t cap)
{
	if (pdu_len < 1 || pdu_len > MB_PDU_MAX)
		return -EINVAL;
	if (cap < pdu_len + 3)
		return -ENOBUFS;
	memmove(adu_out + 1, pdu, pdu_len);
	adu_out[0] = unit;
	uint16_t crc = mb_crc16(adu_out, pdu_len + 1);
	adu_out[pdu_len + 1] = (uint8_t)crc;
	adu_out[pdu_len + 2] = (uint8_t)(crc >> 8);
	return (int)(pdu_len + 3);
}

int mb_tcp_frame(const uint8_t *buf, size_t len, struct mb_tcp_header *ret_hdr, size_t *ret_need)
{
	if (len < MB_MBAP_LEN) {
		*ret_need = MB_MBAP_LEN;
		return -EAGAIN;
	}
	struct mb_tcp_header h = {
		.tid = get16(buf),
		.proto = get16(buf + 2),
		.length = get16(buf + 4),
		.unit = buf[6],
	};
	*ret_hdr = h;
	if (h.proto != 0)
		return -EGW_EPROTO;
	if (h.length < 2 || h.length > MB_PDU_MAX + 1)
		return -EGW_ELENGTH;
	size_t total = 6 + (size_t)h.length;
	if (len < total) {
		*ret_need = total;
		return -EAGAIN;
	}
	return (int)total;
}

/* Frame a TCP ADU for the parsers below.  Returns the ADU length or an
 * error with *ret_used set as codec.h promises. */
static int tcp_delimit(const uint8_t *buf, size_t len, struct mb_tcp_header *h, size_t *ret_used)
{
	size_t need = 0;
	int r = mb_tcp_frame(buf, len, h, &need);

	if (r == -EAGAIN) {
		*ret_used = need;
	} else if (r == -EGW_EPROTO) {
		/* The length field may still delimit the frame: skip just it. */
		size_t total = 6 + (size_t)h->length;
		*ret_used =
			h->length >= 2 && h->length <= MB_PDU_MAX + 1 && total <= len ? total : 0;
	} else if (r < 0) {
		*ret_used = 0;
	}
	return r;
}

/* ---- server side: requests ---- */

int mb_tcp_parse_request(const uint8_t *buf, size_t len, struct mb_request *ret, size_t *ret_used)
{
	struct mb_tcp_header h;
	int total = tcp_delimit(buf, len, &h, ret_used);

	if (total < 0) {
		if (total != -EAGAIN) {
			ret->tid = h.tid;
			ret->unit = h.unit;
			ret->fc = 0;
		}
		return total;
	}
	*ret_used = (size_t)total;
	ret->tid = h.tid;
	ret->unit = h.unit;
	return mb_parse_request_pdu(buf + MB_MBAP_LEN, (size_t)total - MB_MBAP_LEN, ret);
}

/* Total RTU length of a request from its first bytes: > 0, 0 when more
 * bytes are needed to tell, or -EGW_EFUNCTION / -EGW_ELENGTH. */
static int rtu_request_length(const uint8_t *buf, size_t len)
{
	switch (buf[1]) {
	case MB_FC_READ_HOLDING:
	case MB_FC_READ_INPUT:
	case MB_FC_WRITE_SINGLE:
		return 8;
	case MB_FC_WRITE_MULTIPLE:
		if (len < 7)
			return 0;
		if (9 + (size_t)buf[6] > MB_RTU_ADU_MAX)
			return -EGW_ELENGTH;
		return 9 + buf[6];
	case MB_FC_MEI:
		return 7;
	default:
		return -EGW_EFUNCTION;
	}
}

static bool rtu_crc_ok(const uint8_t *buf, size_t total)
{
	uint16_t crc = mb_crc16(buf, total - 2);
	return buf[total - 2] == (uint8_t)crc && buf[total - 1] == (uint8_t)(crc >> 8);
}

int mb_rtu_parse_request(const uint8_t *buf, size_t len, struct mb_request *ret, size_t *ret_used)
{
	if (len < 2) {
		*ret_used = 0;
		return -EAGAIN;
	}
	int total = rtu_request_length(buf, len);
	if (total == 0) {
		*ret_used = 7; /* fc 16: the byte count tells the rest */
		return -EAGAIN;
	}
	if (total == -EGW_EFUNCTION) {
		/* Unknown function: the frame has no known length.  Answer it
		 * only if the whole buffer is one intact frame. */
		if (len >= 4 && len <= MB_RTU_ADU_MAX && rtu_crc_ok(buf, len)) {
			ret->unit = buf[0];
			ret->fc = buf[1];
			ret->tid = 0;
			*ret_used = len;
			return -EGW_EFUNCTION;
		}
		*ret_used = 0;
		return -EAGAIN;
	}
	if (total < 0) {
		*ret_used = 0;
		return total;
	}
	if (len < (size_t)total) {
		*ret_used = (size_t)total;
		return -EAGAIN;
	}
	*ret_used = (size_t)total;
	ret->tid = 0;
	ret->unit = buf[0];
	ret->fc = buf[1];
	if (!rtu_crc_ok(buf, (size_t)total))
		return -EGW_ECRC;
	return mb_parse_request_pdu(buf + 1, (size_t)total - 3, ret);
}

/* ---- client side ---- */

int mb_tcp_build_request(const struct mb_request *q, uint8_t *adu_out, size_t cap)
{
	uint8_t pdu[MB_PDU_MAX];
	int n = mb_build_request_pdu(q, pdu, sizeof(pdu));
	if (n < 0)
		return n;
	return mb_tcp_wrap(q->tid, q->unit, pdu, (size_t)n, adu_out, cap);
}

int mb_rtu_build_request(const struct mb_request *q, uint8_t *adu_out, size_t cap)
{
	uint8_t pdu[MB_PDU_MAX];
	int n = mb_build_request_pdu(q, pdu, sizeof(pdu));
	if (n < 0)
		return n;
	return mb_rtu_wrap(q->unit, pdu, (size_t)n, adu_out, cap);
}

int mb_tcp_parse_response(const uint8_t *buf, size_t len, const struct mb_request *q,
			  struct mb_response *ret, size_t *ret_used)
{
	struct mb_tcp_header h;
	int total = tcp_delimit(buf, len, &h, ret_used);

	if (total < 0)
		return total;
	*ret_used = (size_t)total;
	ret->tid = h.tid;
	ret->unit = h.unit;
	ret->exception = 0;
	if (h.tid != q->tid)
		return -EGW_ETID;
	if (h.unit != q->unit)
		return -EGW_EPROTO;
	return mb_parse_response_pdu(q, buf + MB_MBAP_LEN, (size_t)total - MB_MBAP_LEN, ret);
}

/* Total RTU length of the response to q from its first bytes: > 0, 0 when
 * more bytes are needed, or a negative error. */
static int rtu_response_length(const struct mb_request *q, const uint8_t *buf, size_t len)
{
	if (buf[1] == (q->fc | MB_FC_EXCEPTION))
		return 5;
	if (buf[1] != q->fc)
		return -EGW_EPROTO;
	switch (q->fc) {
	case MB_FC_READ_HOLDING:
	case MB_FC_READ_INPUT:
		if (len < 3)
			return 0;
		if (5 + (size_t)buf[2] > MB_RTU_ADU_MAX)
			return -EGW_ELENGTH;
		return 5 + buf[2];
	case MB_FC_WRITE_SINGLE:
	case MB_FC_WRITE_MULTIPLE:
		return 8;
	case MB_FC_MEI: {
		/* unit fc mei code conf more next num, then (id, len, value)* */
		size_t pos = 8;
		if (len < pos)
			return 0;
		for (unsigned i = 0; i < buf[7]; i++) {
			if (len < pos + 2)
				return 0;
			pos += 2 + (size_t)buf[pos + 1];
			if (pos + 2 > MB_RTU_ADU_MAX)
				return -EGW_ELENGTH;
		}
		return (int)(pos + 2);
	}
	default:
		return -EGW_EFUNCTION;
	}
}

int mb_rtu_parse_response(const uint8_t *buf, size_t len, const struct mb_request *q,
			  struct mb_response *ret, size_t *ret_used)
{
	if (len < 2) {
		*ret_used = 0;
		return -EAGAIN;
	}
	if (buf[0] != q->unit) {
		*ret_used = 0;
		return -EGW_EPROTO;
	}
	int total = rtu_response_length(q, buf, len);
	if (total == 0) {
		*ret_used = 0;
		return -EAGAIN;
	}
	if (total < 0) {
		*ret_used = 0;
		return total;
	}
	if (len < (size_t)total) {
		*ret_used = (size_t)total;
		return -EAGAIN;
	}
	*ret_used = (size_t)total;
	ret->tid = 0;
	ret->unit = buf[0];
	ret->exception = 0;
	if (!rtu_crc_ok(buf, (size_t)total))
		return -EGW_ECRC;
	return mb_parse_response_pdu(q, buf + 1, (size_t)total - 3, ret);
}
