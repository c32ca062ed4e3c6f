/* Fuzz the Modbus proxy's request parser over a client's byte stream
 * (proxy_split): no crash; every step consumes 1..len bytes or stops; a
 * request consumed is canonical (building it again gives the bytes back); an
 * exception carries a code 1..255. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/proxy.h"
#include "modbus/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (off < size) {
		struct mb_request q;
		uint8_t adu[MB_TCP_ADU_MAX];
		size_t used;
		uint8_t code;
		int n, r = proxy_split(data + off, size - off, &q, &used, &code);

		if (r == PROXY_MORE || r == PROXY_DROP) {
			if (used != 0)
				abort();
			break;
		}
		if (used == 0 || used > size - off)
			abort();
		if (r == PROXY_EXCEPTION) {
			if (code == 0)
				abort();
		} else if (r == PROXY_REQUEST) {
			n = mb_tcp_build_request(&q, adu, sizeof(adu));
			if (n < 0 || (size_t)n != used || memcmp(adu, data + off, used) != 0)
				abort();
		} else {
			abort();
		}
		off += used;
	}
	return 0;
}
