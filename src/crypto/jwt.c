/* Compact JWS ES256 (see jwt.h). */
#include "crypto/jwt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/json.h"
#include "crypto/b64url.h"
#include "crypto/p256.h"
#include "crypto/signer.h"

#define JWT_JSON_FLAGS (JSON_COMPACT | JSON_SORT_KEYS)

json_t *jwt_header_new(const struct signer *s, const char *model, const char *dtype)
{
	json_t *h = json_pack("{s:s, s:s, s:s, s:s}", "alg", "ES256", "typ", "JWT", "device",
			      signer_serial_hex(s), "opr", "production");

	if (!h)
		return NULL;
	if ((model && json_object_set_new(h, "model", json_string(model)) < 0) ||
	    (dtype && json_object_set_new(h, "dtype", json_string(dtype)) < 0)) {
		json_decref(h);
		return NULL;
	}
	return h;
}

/* Canonical text of the header, with "alg":"ES256" added if missing. */
static int header_text(const json_t *header, char **ret)
{
	json_t *copy, *alg;
	unsigned long failures;
	char *text;

	if (!json_is_object(header))
		return -EINVAL;
	alg = json_object_get(header, "alg");
	if (alg && (!json_is_string(alg) || strcmp(json_string_value(alg), "ES256") != 0))
		return -EINVAL;
	failures = egw_json_alloc_failures();
	copy = json_copy((json_t *)header);
	/* json_copy() leaves out, silently, a member it could not add */
	if (!copy || egw_json_alloc_failures() != failures) {
		json_decref(copy);
		return -ENOMEM;
	}
	if (!alg && json_object_set_new(copy, "alg", json_string("ES256")) < 0) {
		json_decref(copy);
		return -ENOMEM;
	}
	text = egw_json_dumps(copy, JWT_JSON_FLAGS);
	json_decref(copy);
	if (!text)
		return -ENOMEM;
	*ret = text;
	return 0;
}

int jwt_sign_raw(struct signer *s, const json_t *header, const char *payload_json,
		 char **ret_compact)
{
	char *htext = NULL, *out = NULL;
	size_t hlen, plen, n, elen;
	uint8_t digest[32], rs[64];
	int r;

	if (!payload_json)
		return -EINVAL;
	r = header_text(header, &htext);
	if (r < 0)
		return r;
	hlen = b64url_encoded_len(strlen(htext));
	plen = b64url_encoded_len(strlen(payload_json));
	elen = hlen + 1 + plen + 1 + b64url_encoded_len(64) + 1;
	out = malloc(elen);
	if (!out) {
		r = -ENOMEM;
		goto free_header;
	}
	n = (size_t)b64url_encode((const uint8_t *)htext, strlen(htext), out, elen);
	out[n++] = '.';
	n += (size_t)b64url_encode((const uint8_t *)payload_json, strlen(payload_json), out + n,
				   elen - n);
	r = p256_sha256(out, n, digest);
	if (r < 0)
		goto free_out;
	r = signer_sign_digest(s, digest, rs);
	if (r < 0)
		goto free_out;
	out[n++] = '.';
	b64url_encode(rs, sizeof(rs), out + n, elen - n);
	*ret_compact = out;
	out = NULL;
free_out:
	free(out);
free_header:
	free(htext);
	return r;
}

int jwt_sign(struct signer *s, const json_t *header, const json_t *payload, char **ret_compact)
{
	char *ptext;
	int r;

	if (!json_is_object(payload))
		return -EINVAL;
	ptext = egw_json_dumps(payload, JWT_JSON_FLAGS);
	if (!ptext)
		return -ENOMEM;
	r = jwt_sign_raw(s, header, ptext, ret_compact);
	free(ptext);
	return r;
}

/* Decodes one base64url part and parses it as a JSON object. */
static int decode_json_part(const char *part, size_t len, json_t **ret)
{
	size_t max = b64url_decoded_max(len);
	uint8_t *buf = malloc(max ? max : 1);
	json_error_t je;
	json_t *j;
	int n;

	if (!buf)
		return -ENOMEM;
	n = b64url_decode(part, len, buf, max);
	if (n < 0) {
		free(buf);
		return n == -ENOBUFS ? -ENOMEM : -EBADMSG;
	}
	j = egw_json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, &je);
	free(buf);
	if (!j && json_error_code(&je) == json_error_out_of_memory)
		return -ENOMEM; /* a good token must not be called malformed */
	if (!json_is_object(j)) {
		json_decref(j);
		return -EBADMSG;
	}
	*ret = j;
	return 0;
}

int jwt_verify_es256_full(const char *compact, const uint8_t pub_xy[64], json_t **ret_header,
			  json_t **ret_payload)
{
	const char *dot1, *dot2, *sig;
	size_t len, siglen;
	json_t *header = NULL, *payload = NULL, *alg;
	uint8_t rs[64], digest[32];
	EVP_PKEY *pub = NULL;
	int r;

	if (!compact || !pub_xy)
		return -EINVAL;
	len = strnlen(compact, JWT_MAX_LEN + 1);
	if (len > JWT_MAX_LEN)
		return -EBADMSG;
	dot1 = memchr(compact, '.', len);
	if (!dot1)
		return -EBADMSG;
	dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - compact));
	if (!dot2)
		return -EBADMSG;
	sig = dot2 + 1;
	siglen = len - (size_t)(sig - compact);
	if (memchr(sig, '.', siglen) || siglen != b64url_encoded_len(64) ||
	    b64url_decode(sig, siglen, rs, sizeof(rs)) != 64)
		return -EBADMSG;

	r = decode_json_part(compact, (size_t)(dot1 - compact), &header);
	if (r < 0)
		return r;
	alg = json_object_get(header, "alg");
	/* Only ES256: never "none", never an alg the caller did not ask for.
	 * A "crit" extension we cannot understand must be rejected (RFC 7515 4.1.11). */
	if (!json_is_string(alg) || strcmp(json_string_value(alg), "ES256") != 0 ||
	    json_object_get(header, "crit")) {
		r = -EBADMSG;
		goto free_header;
	}
	r = decode_json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1), &payload);
	if (r < 0)
		goto free_header;

	r = p256_from_xy(pub_xy, &pub);
	if (r < 0)
		goto free_payload;
	r = p256_sha256(compact, (size_t)(dot2 - compact), digest);
	if (r < 0)
		goto free_pub;
	r = p256_verify_digest(pub, digest, rs);
	if (r < 0)
		goto free_pub;
	if (ret_header) {
		*ret_header = header;
		header = NULL;
	}
	if (ret_payload) {
		*ret_payload = payload;
		payload = NULL;
	}
free_pub:
	EVP_PKEY_free(pub);
free_payload:
	json_decref(payload);
free_header:
	json_decref(header);
	return r;
}

int jwt_verify_es256(const char *compact, const uint8_t pub_xy[64], json_t **ret_payload)
{
	return jwt_verify_es256_full(compact, pub_xy, NULL, ret_payload);
}
