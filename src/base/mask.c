#include "base/mask.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const char *const secret_words[] = {
	"key", "token", "secret", "pass", "pwd", "auth", "sig", "credential", "session",
};

/* A query parameter name that names a secret (n bytes at name). */
static bool secret_name(const char *name, size_t n)
{
	char low[64];

	if (n == 0)
		return false;
	if (n >= sizeof(low))
		return true; /* an odd name that long: mask rather than guess */
	for (size_t i = 0; i < n; i++)
		low[i] = (char)tolower((unsigned char)name[i]);
	low[n] = 0;
	for (size_t i = 0; i < sizeof(secret_words) / sizeof(secret_words[0]); i++)
		if (strstr(low, secret_words[i]))
			return true;
	return false;
}

char *mask_url(const char *url)
{
	const char *scheme_end = strstr(url, "://");
	size_t len = strlen(url);
	/* each replaced part grows by at most strlen(MASK) */
	char *out = malloc(2 * len + 8), *o = out;
	const char *p, *auth_end, *at = NULL;

	if (!out)
		return NULL;
	if (!scheme_end || strcspn(url, "/?#") < (size_t)(scheme_end - url)) {
		memcpy(out, url, len + 1);
		return out;
	}
	p = scheme_end + 3;
	auth_end = p + strcspn(p, "/?#");
	for (const char *q = p; q < auth_end; q++)
		if (*q == '@')
			at = q;
	memcpy(o, url, (size_t)(p - url));
	o += p - url;
	if (at) {
		memcpy(o, MASK, strlen(MASK));
		o += strlen(MASK);
		p = at;
	}
	/* host, port, path */
	{
		size_t n = strcspn(p, "?#");
		memcpy(o, p, n);
		o += n;
		p += n;
	}
	if (*p == '?') {
		*o++ = *p++;
		while (*p && *p != '#') {
			size_t n = strcspn(p, "&#");
			const char *eq = memchr(p, '=', n);
			if (eq && secret_name(p, (size_t)(eq - p))) {
				memcpy(o, p, (size_t)(eq - p) + 1);
				o += eq - p + 1;
				memcpy(o, MASK, strlen(MASK));
				o += strlen(MASK);
			} else {
				memcpy(o, p, n);
				o += n;
			}
			p += n;
			if (*p == '&')
				*o++ = *p++;
		}
	}
	strcpy(o, p); /* the fragment */
	return out;
}

bool mask_url_has_secret(const char *url)
{
	char *m = mask_url(url);
	bool r = !m || strcmp(m, url) != 0;
	free(m);
	return r;
}
