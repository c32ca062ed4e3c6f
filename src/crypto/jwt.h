/* Compact JWS with ES256 (RFC 7515/7518): header.payload.signature, each
 * part base64url without padding; the signature is the raw 64-byte r||s.
 *
 * Both header and payload are serialized canonically with
 * egw_json_dumps(JSON_COMPACT | JSON_SORT_KEYS), so the same objects always give
 * the same signing input.  Signing costs one SHA-256 and one
 * signer_sign_digest(), which may block (ATECC over I2C): call jwt_sign from
 * a loop worker when the signer is a chip.
 *
 * The egw header is
 *   {"alg":"ES256","typ":"JWT","device":"<serial hex>","opr":"production",
 *    "model":"<profile>","dtype":"<device type>"}
 * (jwt_header_new builds it). */
#pragma once
#include <jansson.h>
#include <stdint.h>

struct signer;

/* Maximum length of a compact token jwt_verify_es256 accepts. */
#define JWT_MAX_LEN (1u << 20)

/* New header object for this signer; model and dtype may be NULL (then
 * omitted).  Returns NULL on allocation failure. */
json_t *jwt_header_new(const struct signer *s, const char *model, const char *dtype);

/* Signs payload (any JSON object) under header.  header must contain
 * "alg":"ES256" (or no "alg": the caller's object is not modified, a copy
 * with alg added is signed).  *ret_compact is malloc'd (free()).
 * Returns 0, -EINVAL (header/payload not objects, alg not ES256),
 * -ENOMEM, or -EGW_ESIGNER. */
int jwt_sign(struct signer *s, const json_t *header, const json_t *payload, char **ret_compact);

/* Same, from payload text already serialized by the caller (used for rows
 * kept in the store: the payload bytes are signed exactly as given). */
int jwt_sign_raw(struct signer *s, const json_t *header, const char *payload_json,
		 char **ret_compact);

/* Verifies a compact ES256 token against the public key X||Y.
 * Checks: three parts, strict base64url, header is a JSON object with
 * "alg":"ES256" (no "none", no other alg), signature is 64 bytes and
 * verifies, payload is a JSON object.  On success, if ret_payload is not
 * NULL, *ret_payload gets a new reference to the payload; if ret_header is
 * not NULL, likewise for the header.
 * Returns 0, -EBADMSG (malformed token), -EGW_EBADSIG (signature does not
 * verify), -EINVAL (bad public key) or -ENOMEM. */
int jwt_verify_es256(const char *compact, const uint8_t pub_xy[64], json_t **ret_payload);
int jwt_verify_es256_full(const char *compact, const uint8_t pub_xy[64], json_t **ret_header,
			  json_t **ret_payload);
