/* Fuzz the strict base64url decoder: no crash, and every accepted input is
 * canonical (re-encoding what was decoded gives the input back); encoding any
 * bytes decodes back to them. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/b64url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t max = b64url_decoded_max(size);
	uint8_t *raw = malloc(max + 1), *back;
	char *enc;
	int n;

	if (!raw)
		return 0;
	n = b64url_decode((const char *)data, size, raw, max);
	if (n >= 0) {
		enc = b64url_encode_alloc(raw, (size_t)n);
		assert(enc && strlen(enc) == size && memcmp(enc, data, size) == 0);
		free(enc);
	}
	free(raw);

	enc = b64url_encode_alloc(data, size);
	if (!enc)
		return 0;
	back = malloc(size + 1);
	if (back) {
		n = b64url_decode(enc, strlen(enc), back, size);
		assert(n == (int)size && memcmp(back, data, size) == 0);
		free(back);
	}
	free(enc);
	return 0;
}
