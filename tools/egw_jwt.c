/* egw-jwt: the device's signer from the command line, for tests, peers and
 * operators.  It signs only what its own user gives it on the command line
 * (it runs with access to the key file, so it is no remote signing oracle).
 *
 *   egw-jwt --state-dir D --payload '{"a":1}' [--model M] [--dtype T]   print a JWT
 *   egw-jwt --state-dir D --pubkey-pem | --pubkey-hex | --pubkey-json | --serial
 *   egw-jwt --state-dir D --verify TOKEN        print the payload; exit 1 if invalid
 *   egw-jwt --state-dir D --bench N             sign and verify N tokens, print rates
 * --atecc [--i2c-bus B --i2c-address A] uses the ATECC608 backend (it fails
 * when no chip answers; the daemon's identity record is not consulted). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/time.h"
#include "crypto/jwt.h"
#include "crypto/signer.h"

enum action { ACT_SIGN, ACT_PEM, ACT_HEX, ACT_JSON, ACT_SERIAL, ACT_VERIFY, ACT_BENCH };

static void usage(FILE *f)
{
	fputs("usage: egw-jwt --state-dir DIR [--atecc [--i2c-bus B] [--i2c-address A]]\n"
	      "               (--payload JSON [--model M] [--dtype T] | --pubkey-pem | --pubkey-hex |\n"
	      "                --pubkey-json | --serial | --verify TOKEN | --bench N)\n",
	      f);
}

static int bench(struct signer *s, long n)
{
	json_t *h = jwt_header_new(s, "bench", "pv");
	json_t *p = json_pack("{s:I, s:s}", "seq", (json_int_t)1, "data",
			      "0123456789012345678901234567890123456789012345678901234567890123");
	char **toks = calloc((size_t)n, sizeof(*toks));
	uint8_t xy[64];
	usec_t t0, t1, t2;
	int r = 0;

	if (!h || !p || !toks) {
		r = -ENOMEM;
		goto out;
	}
	signer_public_key(s, xy);
	t0 = now_usec();
	for (long i = 0; i < n && r == 0; i++)
		r = jwt_sign(s, h, p, &toks[i]);
	t1 = now_usec();
	for (long i = 0; i < n && r == 0; i++)
		r = jwt_verify_es256(toks[i], xy, NULL);
	t2 = now_usec();
	if (r == 0)
		printf("{\"backend\":\"%s\",\"n\":%ld,\"sign_us\":%.1f,\"verify_us\":%.1f,"
		       "\"sign_per_s\":%.0f,\"verify_per_s\":%.0f}\n",
		       signer_backend_name(s), n, (double)(t1 - t0) / (double)n,
		       (double)(t2 - t1) / (double)n, (double)n * 1e6 / (double)(t1 - t0),
		       (double)n * 1e6 / (double)(t2 - t1));
out:
	for (long i = 0; toks && i < n; i++)
		free(toks[i]);
	free(toks);
	json_decref(h);
	json_decref(p);
	return r;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 'd' },
		{ "payload", required_argument, NULL, 'p' },
		{ "model", required_argument, NULL, 'm' },
		{ "dtype", required_argument, NULL, 't' },
		{ "pubkey-pem", no_argument, NULL, 'P' },
		{ "pubkey-hex", no_argument, NULL, 'H' },
		{ "pubkey-json", no_argument, NULL, 'J' },
		{ "serial", no_argument, NULL, 'S' },
		{ "verify", required_argument, NULL, 'v' },
		{ "bench", required_argument, NULL, 'b' },
		{ "atecc", no_argument, NULL, 'a' },
		{ "i2c-bus", required_argument, NULL, 'B' },
		{ "i2c-address", required_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct signer_config cfg = { .backend = SIGNER_SOFTWARE };
	const char *payload = NULL, *model = NULL, *dtype = NULL, *token = NULL;
	enum action act = ACT_SIGN;
	long bench_n = 0;
	struct signer *s;
	json_t *j = NULL, *h = NULL;
	char *out = NULL;
	int c, r, rc = 1;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			cfg.state_dir = optarg;
			break;
		case 'p':
			payload = optarg;
			break;
		case 'm':
			model = optarg;
			break;
		case 't':
			dtype = optarg;
			break;
		case 'P':
			act = ACT_PEM;
			break;
		case 'H':
			act = ACT_HEX;
			break;
		case 'J':
			act = ACT_JSON;
			break;
		case 'S':
			act = ACT_SERIAL;
			break;
		case 'v':
			act = ACT_VERIFY;
			token = optarg;
			break;
		case 'b':
			act = ACT_BENCH;
			bench_n = strtol(optarg, NULL, 10);
			break;
		case 'a':
			cfg.backend = SIGNER_ATECC608;
			break;
		case 'B':
			cfg.i2c_bus = optarg;
			break;
		case 'A':
			cfg.i2c_address = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if ((cfg.backend == SIGNER_SOFTWARE && !cfg.state_dir) || optind != argc ||
	    (act == ACT_SIGN && !payload) || (act == ACT_BENCH && bench_n <= 0)) {
		usage(stderr);
		return 2;
	}
	r = signer_open(&cfg, &s);
	if (r < 0) {
		fprintf(stderr, "egw-jwt: cannot open the signer: %s\n", egw_strerror(r));
		return 1;
	}
	switch (act) {
	case ACT_SIGN:
		j = json_loads(payload, JSON_REJECT_DUPLICATES, NULL);
		h = jwt_header_new(s, model, dtype);
		if (!json_is_object(j)) {
			fprintf(stderr, "egw-jwt: --payload must be a JSON object\n");
			break;
		}
		r = h ? jwt_sign(s, h, j, &out) : -ENOMEM;
		if (r < 0) {
			fprintf(stderr, "egw-jwt: signing failed: %s\n", egw_strerror(r));
			break;
		}
		printf("%s\n", out);
		rc = 0;
		break;
	case ACT_PEM:
		fputs(signer_public_key_pem(s), stdout);
		rc = 0;
		break;
	case ACT_HEX:
		printf("%s\n", signer_public_key_hex(s));
		rc = 0;
		break;
	case ACT_SERIAL:
		printf("%s\n", signer_serial_hex(s));
		rc = 0;
		break;
	case ACT_JSON:
		if (signer_public_key_json(s, &j) == 0 &&
		    json_dumpf(j, stdout, JSON_INDENT(2)) == 0) {
			putchar('\n');
			rc = 0;
		}
		break;
	case ACT_VERIFY: {
		uint8_t xy[64];
		signer_public_key(s, xy);
		r = jwt_verify_es256(token, xy, &j);
		if (r < 0) {
			fprintf(stderr, "egw-jwt: invalid token: %s\n", egw_strerror(r));
			break;
		}
		out = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
		printf("%s\n", out ? out : "");
		rc = 0;
		break;
	}
	case ACT_BENCH:
		r = bench(s, bench_n);
		if (r < 0)
			fprintf(stderr, "egw-jwt: bench failed: %s\n", egw_strerror(r));
		rc = r < 0;
		break;
	}
	free(out);
	json_decref(j);
	json_decref(h);
	signer_close(s);
	return rc;
}
