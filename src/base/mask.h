/* Masking of secrets in text shown to others (API answers, the status page,
 * log lines).  One rule, used everywhere a URL or a password is shown:
 *
 *   - the user information of a URL ("user:pw" before the '@' of the host)
 *     becomes the three stars of MASK;
 *   - the value of every key-like query parameter (a name containing key,
 *     token, secret, pass, pwd, auth, sig, credential or session, any case):
 *     "?api_key=abc&x=1" -> "?api_key=***&x=1".
 *
 * Scheme, host, port, path and the other parameters stay, so a masked URL
 * still says where it points, and two URLs that differ there never mask to
 * the same text (settings use that to take a masked URL posted back only for
 * the URL it was made from). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#define MASK "***"

/* The masked copy of url (malloc'd; NULL when out of memory).  Text that
 * is not a URL ("scheme://...") comes back unchanged. */
char *mask_url(const char *url);

/* True when url masks to something else than itself. */
bool mask_url_has_secret(const char *url);
