/* The one rule for what a device or broker "host" setting may be. */
#pragma once
#include <stdbool.h>

/* True for an IPv4 or IPv6 literal, or a host name of RFC 1123 syntax:
 * labels of letters, digits and '-' (not first or last), 1..63 bytes each,
 * 253 bytes in all, an optional final '.' excluded. */
bool host_ok(const char *host);
