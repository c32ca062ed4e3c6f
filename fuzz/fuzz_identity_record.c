/* Fuzz the identity record parser (<state-dir>/identity): no crash, and an
 * accepted record names a known backend and prints back to text that parses
 * to the same identity. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "crypto/signer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct signer_identity id, again;
	char text[512];
	int n, off;

	if (signer_identity_parse((const char *)data, size, &id) < 0)
		return 0;
	assert(strcmp(id.backend, "software") == 0 || strcmp(id.backend, "atecc608") == 0);
	n = snprintf(text, sizeof(text), "backend %s\nserial ", id.backend);
	for (size_t i = 0; i < sizeof(id.serial); i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, "%02x", id.serial[i]);
	n += snprintf(text + n, sizeof(text) - (size_t)n, "\npublic_key ");
	for (size_t i = 0; i < sizeof(id.xy); i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, "%02x", id.xy[i]);
	off = snprintf(text + n, sizeof(text) - (size_t)n, "\n");
	assert(signer_identity_parse(text, (size_t)(n + off), &again) == 0);
	assert(memcmp(&id, &again, sizeof(id)) == 0);
	return 0;
}
