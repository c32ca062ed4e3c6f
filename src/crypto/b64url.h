/* base64url (RFC 4648 §5) without padding, as JWS uses it.
 * Decoding is strict: only the 64 URL-safe characters, no '=' padding, no
 * whitespace, no length that leaves a lone character (len % 4 == 1), and the
 * unused low bits of the last character must be zero (one encoding per
 * byte string). */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* Characters needed to encode n bytes (without the NUL). */
static inline size_t b64url_encoded_len(size_t n)
{
	return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}
/* Upper bound of the bytes decoded from len characters. */
static inline size_t b64url_decoded_max(size_t len)
{
	return len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
}

/* Encodes n bytes into out (NUL-terminated).  Returns the number of
 * characters written (without the NUL) or -ENOBUFS if out_size is too small. */
int b64url_encode(const uint8_t *in, size_t n, char *out, size_t out_size);
/* Returns a malloc'd NUL-terminated encoding or NULL on allocation failure. */
char *b64url_encode_alloc(const uint8_t *in, size_t n);
/* Decodes len characters.  Returns the number of bytes written, -EINVAL if the
 * input is not strict base64url, or -ENOBUFS if out_size is too small. */
int b64url_decode(const char *in, size_t len, uint8_t *out, size_t out_size);
