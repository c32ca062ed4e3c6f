#include "base/host.h"

#include <arpa/inet.h>
#include <string.h>

static bool alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool host_ok(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	size_t n = strlen(host), label = 0;

	if (inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1)
		return true;
	if (n == 0 || n > 253)
		return false;
	for (size_t k = 0; k < n; k++) {
		char c = host[k];
		if (c == '.') {
			if (label == 0 || host[k - 1] == '-')
				return false;
			label = 0;
		} else if (alnum(c) || (c == '-' && label > 0)) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return host[n - 1] != '-';
}
