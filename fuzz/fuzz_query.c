/* Fuzz the query strings of the routes: the bytes are split and unescaped as
 * libmicrohttpd does for MHD_GET_ARGUMENT_KIND (key=value pairs separated by
 * '&', percent and '+' decoding with MHD_http_unescape), and each value goes
 * to the parser the route uses for that key (webui_parse_uint with the
 * route's range, devconf_id_ok, webui_scan_targets; web/webui_int.h).
 * Checks: no crash, accepted numbers lie in range, scan targets stay within
 * their table and are well-formed dotted quads. */
#include "devices/devconf.h"
#include "web/webui_int.h"

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_uint(const char *v, unsigned long min, unsigned long max)
{
	unsigned long x = 0;
	if (webui_parse_uint(v, min, max, &x) == 0)
		assert(x >= min && x <= max);
}

static void one_arg(const char *k, const char *v, const char **hosts,
		    const char **ports)
{
	if (strcmp(k, "fc") == 0)
		check_uint(v, 3, 4);
	else if (strcmp(k, "address") == 0)
		check_uint(v, 0, 65535);
	else if (strcmp(k, "count") == 0)
		check_uint(v, 1, 125);
	else if (strcmp(k, "unit_id") == 0)
		check_uint(v, 0, 255);
	else if (strcmp(k, "id") == 0 || strcmp(k, "device") == 0)
		(void)devconf_id_ok(v);
	else if (strcmp(k, "hosts") == 0)
		*hosts = v;
	else if (strcmp(k, "ports") == 0)
		*ports = v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct scan_target targets[SCAN_TARGETS_MAX];
	unsigned n = 0;
	const char *hosts = NULL, *ports = NULL, *field = NULL;
	char *q, *save = NULL, *pair;
	int r;

	if (size > 8192)
		return 0;
	q = malloc(size + 1);
	if (!q)
		return 0;
	memcpy(q, data, size);
	q[size] = 0;
	for (pair = strtok_r(q, "&", &save); pair; pair = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(pair, '=');
		const char *v = "";
		if (eq) {
			*eq = 0;
			v = eq + 1;
			MHD_http_unescape(eq + 1);
		}
		MHD_http_unescape(pair);
		one_arg(pair, v, &hosts, &ports);
	}
	if (hosts || ports) {
		r = webui_scan_targets(targets, &n, hosts ? hosts : "", ports ? ports : "502",
				       &field);
		if (r == 0) {
			assert(n > 0 && n <= SCAN_TARGETS_MAX);
			for (unsigned i = 0; i < n; i++) {
				struct in_addr a;
				assert(inet_pton(AF_INET, targets[i].host, &a) == 1);
				assert(targets[i].port > 0);
			}
		} else {
			assert(field && (strcmp(field, "hosts") == 0 || strcmp(field, "ports") == 0));
		}
	}
	free(q);
	return 0;
}
