/* Fuzz the server-side Modbus TCP request parser: no crash, consumed length
 * within the input, and every accepted request is canonical: building it
 * again gives back exactly the bytes that were consumed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "modbus/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mb_request q;
	uint8_t adu[MB_TCP_ADU_MAX];
	size_t used = 0;
	int r;

	memset(&q, 0, sizeof(q));
	r = mb_tcp_parse_request(data, size, &q, &used);
	if (r == -EAGAIN) {
		if (used && used <= size)
			abort(); /* "need more" must ask for more than we have */
		return 0;
	}
	if (used > size)
		abort();
	if (r < 0)
		return 0;
	int n = mb_tcp_build_request(&q, adu, sizeof(adu));
	if (n < 0 || (size_t)n != used || memcmp(adu, data, used) != 0)
		abort();
	return 0;
}
