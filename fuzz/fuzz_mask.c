/* Fuzz what makes text safe to show: base/mask.c's mask_url (the input as a
 * URL) and base/log.c's log_escape (the input as a log message).
 * Checks: no crash; mask_url keeps the scheme, is idempotent (a masked URL
 * masks to itself, which settings rely on to match a URL posted back), and
 * leaves no user information before the host but "***"; log_escape writes
 * no control character and stays within its buffer. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mask.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_mask(const char *in)
{
	char *m = mask_url(in), *m2;
	const char *se = strstr(in, "://");

	if (!m)
		return;
	assert(strlen(m) <= 2 * strlen(in) + 8);
	if (se && strcspn(in, "/?#") >= (size_t)(se - in)) {
		size_t sl = (size_t)(se - in) + 3;
		const char *auth = m + sl;
		size_t alen = strcspn(auth, "/?#");
		const char *at = memchr(auth, '@', alen);

		assert(strncmp(m, in, sl) == 0);
		/* only the mask may come before an '@' of the authority */
		if (at)
			assert(at - auth == (ptrdiff_t)strlen(MASK) && strncmp(auth, MASK, strlen(MASK)) == 0);
	} else {
		assert(strcmp(m, in) == 0);
	}
	m2 = mask_url(m);
	if (m2)
		assert(strcmp(m, m2) == 0);
	free(m2);
	free(m);
}

static void check_escape(const char *in)
{
	char out[128];
	size_t n = log_escape(out, sizeof(out), in);

	assert(n < sizeof(out) && out[n] == 0 && strlen(out) == n);
	for (size_t i = 0; i < n; i++)
		assert((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	check_mask(s);
	check_escape(s);
	free(s);
	return 0;
}
