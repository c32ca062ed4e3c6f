/* Fuzz the Solarman V5 frame parser (modbus/solarman.h) as a client reads a
 * logger's stream: parse, skip a byte on an error, move on after a frame.
 * Checks: no crash; a frame lies within the input; a response's RTU frame
 * lies within its payload; a request re-encoded from a frame's RTU part
 * parses back to the same serial, sequence and RTU bytes; the RTU answer
 * inside a response, taken as the answer to a read request made from the
 * input's first bytes (the client's path), yields a defined result and, on
 * success, the registers asked for. */
#include "base/err.h"
#include "modbus/solarman.h"

#include <assert.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	/* the request the stream answers: unit, fc 3 or 4, count 1..125 */
	struct mb_request q = {
		.unit = size > 0 ? data[0] : 1,
		.fc = size > 1 && (data[1] & 1) ? MB_FC_READ_INPUT : MB_FC_READ_HOLDING,
		.count = (uint16_t)(size > 2 ? data[2] % MB_MAX_READ + 1 : 1),
	};

	while (off < size) {
		struct solarman_frame f;
		const uint8_t *rtu;
		size_t rl;
		int n = solarman_parse(data + off, size - off, &f);
		if (n == 0)
			break;
		if (n < 0) {
			assert(n == -EGW_EFRAME || n == -EGW_ECRC);
			off++;
			continue;
		}
		assert((size_t)n <= size - off && f.payload_len + 13 == (size_t)n);
		assert(f.payload == data + off + SOLARMAN_HDR);
		if (f.control == SOLARMAN_CTL_RESPONSE) {
			struct mb_response resp;
			int r = solarman_parse_response(&f, &q, &resp);
			assert(r == 0 || mb_is_exception_err(r) || r == -EGW_ELENGTH ||
			       r == -EGW_ECRC || r == -EGW_EPROTO || r == -EGW_EFRAME ||
			       r == -EGW_EFUNCTION);
			if (r == 0)
				assert(resp.count == q.count);
		}
		if (solarman_response_rtu(&f, &rtu, &rl) == 0) {
			uint8_t out[SOLARMAN_FRAME_MAX];
			struct solarman_frame g;
			int m;
			assert(rtu >= f.payload && rtu + rl == f.payload + f.payload_len);
			m = solarman_encode_request(f.seq, f.serial, rtu, rl, out, sizeof(out));
			if (rl <= MB_RTU_ADU_MAX) {
				assert(m > 0);
				assert(solarman_parse(out, (size_t)m, &g) == m);
				assert(g.serial == f.serial && g.seq[0] == f.seq[0] &&
				       g.seq[1] == f.seq[1] && g.control == SOLARMAN_CTL_REQUEST);
				assert(memcmp(g.payload + SOLARMAN_REQ_PREFIX, rtu, rl) == 0);
			} else {
				assert(m == -EINVAL);
			}
		}
		off += (size_t)n;
	}
	return 0;
}
