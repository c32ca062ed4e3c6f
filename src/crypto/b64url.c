/* base64url without padding, strict decoder (see b64url.h). */
#include "crypto/b64url.h"

#include <errno.h>
#include <stdlib.h>

static const char b64url_alphabet[64] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Value of each character, or -1 when it is not in the alphabet. */
static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int b64url_encode(const uint8_t *in, size_t n, char *out, size_t out_size)
{
	size_t need = b64url_encoded_len(n);
	size_t i, o = 0;

	if (out_size < need + 1 || need > INT32_MAX)
		return -ENOBUFS;
	for (i = 0; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64url_alphabet[v >> 18 & 63];
		out[o++] = b64url_alphabet[v >> 12 & 63];
		out[o++] = b64url_alphabet[v >> 6 & 63];
		out[o++] = b64url_alphabet[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = b64url_alphabet[v >> 18 & 63];
		out[o++] = b64url_alphabet[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64url_alphabet[v >> 18 & 63];
		out[o++] = b64url_alphabet[v >> 12 & 63];
		out[o++] = b64url_alphabet[v >> 6 & 63];
	}
	out[o] = '\0';
	return (int)o;
}

char *b64url_encode_alloc(const uint8_t *in, size_t n)
{
	size_t size = b64url_encoded_len(n) + 1;
	char *out = malloc(size);

	if (!out)
		return NULL;
	if (b64url_encode(in, n, out, size) < 0) {
		free(out);
		return NULL;
	}
	return out;
}

int b64url_decode(const char *in, size_t len, uint8_t *out, size_t out_size)
{
	size_t need, i, o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;

	if (len % 4 == 1)
		return -EINVAL;
	need = b64url_decoded_max(len);
	if (need > INT32_MAX)
		return -EINVAL;
	if (out_size < need)
		return -ENOBUFS;
	for (i = 0; i < len; i++) {
		int v = b64url_value((unsigned char)in[i]);
		if (v < 0)
			return -EINVAL;
		acc = (acc << 6 | (uint32_t)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* Leftover bits must be zero, or two inputs would decode alike. */
	if (bits && (acc & ((1u << bits) - 1)))
		return -EINVAL;
	return (int)o;
}
