/* Fuzz the client-side Modbus TCP response parser against a request chosen
 * by the first bytes: no crash, consumed length within the input, accepted
 * responses (and exceptions) re-encode to exactly the consumed bytes. */
#include <stdlib.h>

#include "fuzz/mb_fuzz_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mb_request q;
	struct mb_response r;
	uint8_t pdu[MB_PDU_MAX], adu[MB_TCP_ADU_MAX];
	size_t used = 0;

	if (size < MB_FUZZ_HDR)
		return 0;
	mb_fuzz_request(data, &q);
	data += MB_FUZZ_HDR;
	size -= MB_FUZZ_HDR;
	int err = mb_tcp_parse_response(data, size, &q, &r, &used);
	if (err == -EAGAIN) {
		if (used && used <= size)
			abort();
		return 0;
	}
	if (used > size)
		abort();
	if (err == -EGW_ETID && (used == 0 || r.tid == q.tid))
		abort();
	if (err != 0 && !mb_is_exception_err(err))
		return 0;
	if (q.fc == 43 && err == 0) {
		for (unsigned i = 0; i < r.devid.n_objects; i++)
			if (mb_devid_get(&r.devid, r.devid.ids[i]) == NULL)
				abort();
		return 0;
	}
	int n = mb_fuzz_rebuild(&q, &r, err, pdu, sizeof(pdu));
	if (n <= 0)
		abort();
	n = mb_tcp_wrap(q.tid, q.unit, pdu, (size_t)n, adu, sizeof(adu));
	if (n < 0 || (size_t)n != used || memcmp(adu, data, used) != 0)
		abort();
	return 0;
}
