/* Shared by the Modbus response fuzzers: the first MB_FUZZ_HDR input bytes
 * choose the request the response answers, the rest is the frame. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "modbus/codec.h"

#define MB_FUZZ_HDR 9

/* [sel][unit][tid hi][tid lo][addr hi][addr lo][count][value hi][value lo] */
static inline void mb_fuzz_request(const uint8_t *h, struct mb_request *q)
{
	static const uint8_t fcs[] = { 3, 4, 6, 16, 43 };

	memset(q, 0, sizeof(*q));
	q->fc = fcs[h[0] % sizeof(fcs)];
	q->unit = h[1];
	q->tid = (uint16_t)(h[2] << 8 | h[3]);
	q->addr = (uint16_t)(h[4] << 8 | h[5]);
	switch (q->fc) {
	case 3:
	case 4:
		q->count = (uint16_t)(h[6] % MB_MAX_READ + 1);
		break;
	case 6:
		q->count = 1;
		q->values[0] = (uint16_t)(h[7] << 8 | h[8]);
		break;
	case 16:
		q->count = (uint16_t)(h[6] % MB_MAX_WRITE + 1);
		break;
	default:
		q->mei_type = MB_MEI_DEVID;
		q->devid_code = (uint8_t)(h[6] % 4 + 1);
		q->object_id = h[7];
	}
}

/* The PDU a server would send for response r to q (fc 3, 4, 6, 16 and
 * exceptions; 0 for fc 43, whose encoding has freedom). */
static inline int mb_fuzz_rebuild(const struct mb_request *q, const struct mb_response *r, int err,
				  uint8_t *pdu, size_t cap)
{
	if (mb_is_exception_err(err))
		return mb_build_exception(q->fc, (uint8_t)mb_exception_code(err), pdu, cap);
	if (q->fc == 3 || q->fc == 4)
		return mb_build_read_response(q, r->regs, pdu, cap);
	if (q->fc == 6 || q->fc == 16)
		return mb_build_write_response(q, pdu, cap);
	return 0;
}
