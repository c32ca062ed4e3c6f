/* Fuzz the ES256 compact-token verifier with a fixed public key.  The corpus
 * holds tokens validly signed by that key's (discarded) private key, so the
 * fuzzer starts past the signature check and mutates from there.  Anything
 * accepted must carry a header with alg ES256 and an object payload. */
#include <assert.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fuzz_pub[64] = {
	0x07, 0xc1, 0x7e, 0x0e, 0x8f, 0xcb, 0x4c, 0x63, 0xf8, 0x98, 0xd9, 0x80, 0x80, 0xd0, 0x62, 0x3f,
	0x07, 0xa1, 0xaf, 0x94, 0xe1, 0x96, 0x1c, 0x93, 0xf8, 0x9d, 0x65, 0x3f, 0xbc, 0x5c, 0x56, 0x3a,
	0xab, 0xc9, 0xf3, 0x7c, 0x34, 0x27, 0x88, 0x57, 0xaa, 0x98, 0x6d, 0x7a, 0x6a, 0xdd, 0xa8, 0xc6,
	0xec, 0x40, 0x19, 0xf3, 0xb3, 0xa9, 0xa8, 0xbe, 0xa3, 0x6b, 0x92, 0xe7, 0x20, 0xb3, 0xd7, 0x2c,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *tok = malloc(size + 1);
	json_t *h = NULL, *p = NULL;

	if (!tok)
		return 0;
	memcpy(tok, data, size);
	tok[size] = '\0';
	if (jwt_verify_es256_full(tok, fuzz_pub, &h, &p) == 0) {
		assert(json_is_object(p));
		assert(strcmp(json_string_value(json_object_get(h, "alg")), "ES256") == 0);
		json_decref(h);
		json_decref(p);
	}
	free(tok);
	return 0;
}
