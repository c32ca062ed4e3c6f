/* Who may ask: the Host check against DNS rebinding, the API token and the
 * slowing of wrong tokens per client address. */
#include "web/web_int.h"

#include "base/file.h"

/* ---- Host check --------------------------------------------------------- */

static bool port_suffix_ok(const char *s)
{
	size_t n;

	if (!*s)
		return true;
	if (*s++ != ':')
		return false;
	n = strspn(s, "0123456789");
	return n >= 1 && n <= 5 && !s[n];
}

static bool name_is(const char *a, size_t n, const char *b)
{
	size_t m = strlen(b);

	if (m && b[m - 1] == '.')
		m--;
	return m == n && strncasecmp(a, b, n) == 0;
}

/* A name public DNS cannot answer for, so no page on the internet can make
 * it resolve here: one label ("raspberrypi", found through the LAN's own
 * resolver), or under .local (mDNS), .home.arpa or .internal.  This is what
 * the gateway is reached by when its own host name is not known to it (in a
 * container the host name is the container's). */
static bool name_is_local(const char *host, size_t n)
{
	static const char *const suffixes[] = { ".local", ".home.arpa", ".internal" };

	for (size_t i = 0; i < n; i++)
		if (!((host[i] >= 'a' && host[i] <= 'z') || (host[i] >= 'A' && host[i] <= 'Z') ||
		      (host[i] >= '0' && host[i] <= '9') || host[i] == '-' || host[i] == '.'))
			return false;
	if (!memchr(host, '.', n))
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
		size_t k = strlen(suffixes[i]);
		if (n > k && strncasecmp(host + n - k, suffixes[i], k) == 0)
			return true;
	}
	return false;
}

/* Against DNS rebinding: a page from attacker.example whose name is then
 * made to resolve to this gateway reads it as its own origin, but its
 * requests still say Host: attacker.example.  So only names that are this
 * gateway's are answered: an IP literal (a.b.c.d, [v6]), localhost, the
 * machine's host name, a local name (name_is_local: <host name>.local among
 * them), and http.allowed_hosts; each with an optional :port.  A request
 * without Host (HTTP/1.0) is no browser's and passes. */
bool web_host_allowed(const struct web *w, const char *host)
{
	char buf[INET6_ADDRSTRLEN + 1], hn[256];
	const char *colon;
	const json_t *allowed, *e;
	struct in6_addr a6;
	size_t n, i;

	if (!host)
		return true;
	if (host[0] == '[') {
		const char *end = strchr(host, ']');
		if (!end || (size_t)(end - host - 1) >= sizeof(buf))
			return false;
		memcpy(buf, host + 1, (size_t)(end - host - 1));
		buf[end - host - 1] = 0;
		return inet_pton(AF_INET6, buf, &a6) == 1 && port_suffix_ok(end + 1);
	}
	colon = strchr(host, ':');
	n = colon ? (size_t)(colon - host) : strlen(host);
	if (colon && !port_suffix_ok(colon))
		return false;
	if (n && host[n - 1] == '.') /* "localhost." is localhost */
		n--;
	if (n == 0)
		return false;
	if (n < sizeof(buf)) {
		memcpy(buf, host, n);
		buf[n] = 0;
		if (inet_pton(AF_INET, buf, &a6) == 1)
			return true;
	}
	if (name_is(host, n, "localhost") || name_is_local(host, n))
		return true;
	if (gethostname(hn, sizeof(hn)) == 0) {
		hn[sizeof(hn) - 1] = 0;
		if (hn[0] && name_is(host, n, hn))
			return true;
	}
	allowed = settings_values(w->egw->settings)->http_allowed_hosts;
	json_array_foreach (allowed, i, e)
		if (json_is_string(e) && name_is(host, n, json_string_value(e)))
			return true;
	return false;
}

/* ---- token ------------------------------------------------------------ */

static bool is_hex_token(const char *s, size_t n)
{
	if (n != WEB_TOKEN_HEX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int web_token_load_or_create(const char *state_dir, char ret_token[WEB_TOKEN_HEX + 1],
			     bool *ret_created)
{
	char path[PATH_MAX], buf[WEB_TOKEN_HEX + 2];
	unsigned char raw[WEB_TOKEN_HEX / 2];
	int fd, r;

	if (snprintf(path, sizeof(path), "%s/api-token", state_dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf));
		close(fd);
		if (n < 0)
			return -errno;
		while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
			n--;
		if (!is_hex_token(buf, (size_t)n))
			return -EINVAL;
		memcpy(ret_token, buf, WEB_TOKEN_HEX);
		ret_token[WEB_TOKEN_HEX] = 0;
		*ret_created = false;
		return 0;
	}
	if (errno != ENOENT)
		return -errno;
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -EIO;
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(buf + 2 * i, 3, "%02x", raw[i]);
	buf[WEB_TOKEN_HEX] = '\n';
	r = file_write_atomic(path, buf, WEB_TOKEN_HEX + 1, 0600);
	OPENSSL_cleanse(raw, sizeof(raw));
	if (r < 0)
		return r;
	memcpy(ret_token, buf, WEB_TOKEN_HEX);
	ret_token[WEB_TOKEN_HEX] = 0;
	*ret_created = true;
	return 0;
}

bool web_token_ok(const char *token, const char *authorization)
{
	static const char prefix[] = "Bearer ";
	char given[WEB_TOKEN_HEX];
	size_t n;

	if (!authorization || strncasecmp(authorization, prefix, sizeof(prefix) - 1) != 0)
		return false;
	authorization += sizeof(prefix) - 1;
	while (*authorization == ' ')
		authorization++;
	n = strlen(authorization);
	while (n > 0 && authorization[n - 1] == ' ')
		n--;
	/* Always compare WEB_TOKEN_HEX bytes so the time does not depend on
	 * where the first difference is; the length is checked separately. */
	memset(given, 0, sizeof(given));
	memcpy(given, authorization, MIN(n, sizeof(given)));
	bool same = CRYPTO_memcmp(given, token, WEB_TOKEN_HEX) == 0;
	return same && n == WEB_TOKEN_HEX && strlen(token) == WEB_TOKEN_HEX;
}

void web_peer_key(struct MHD_Connection *c, uint8_t key[16])
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	memset(key, 0, 16);
	if (sa && sa->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	} else if (sa && sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	}
}

static unsigned recent(const int64_t *ring, unsigned n, int64_t now_ms)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++)
		if (ring[i] && now_ms - ring[i] < AUTH_WINDOW_MS)
			k++;
	return k;
}

static struct auth_peer *auth_peer_find(struct web *w, const uint8_t key[16])
{
	for (unsigned i = 0; i < AUTH_PEERS; i++)
		if (w->auth_peers[i].last_ms && memcmp(w->auth_peers[i].addr, key, 16) == 0)
			return &w->auth_peers[i];
	return NULL;
}

/* 10 failures from one address within 10 s: that address's wrong tokens
 * get 429 until the oldest failure leaves the window. */
bool web_auth_limited(struct web *w, const uint8_t key[16], int64_t now_ms)
{
	struct auth_peer *p = auth_peer_find(w, key);

	return p && recent(p->fail_ms, AUTH_MAX_FAILURES, now_ms) >= AUTH_MAX_FAILURES;
}

void web_auth_failed(struct web *w, const uint8_t key[16], int64_t now_ms)
{
	struct auth_peer *p = auth_peer_find(w, key);

	w->auth_failures++;
	if (!p) { /* a free slot, else the address heard from least recently */
		p = &w->auth_peers[0];
		for (unsigned i = 1; i < AUTH_PEERS && p->last_ms; i++)
			if (w->auth_peers[i].last_ms < p->last_ms)
				p = &w->auth_peers[i];
		memset(p, 0, sizeof(*p));
		memcpy(p->addr, key, 16);
	}
	p->last_ms = now_ms;
	p->fail_ms[p->next] = now_ms;
	p->next = (p->next + 1) % AUTH_MAX_FAILURES;
}
