/* SPDX-License-Identifier: Apache-2.0 */
/*
 * base64url on top of OpenSSL's EVP_EncodeBlock / EVP_DecodeBlock.
 *
 * EVP_DecodeBlock wants the standard alphabet with padding and reports the
 * padded length, so decoding translates into a small stack buffer (tokens are
 * short) or a heap one, pads, decodes and takes the padding back off. The
 * caller's buffer holds PG_B64URL_DECODED_MAX bytes, padding included.
 */
#include "b64url.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

/* The 6-bit value of a base64url character, or -1 for any other byte. */
static int b64url_value(char c)
{
	if (c >= 'A' && c <= 'Z') {
		return c - 'A';
	}
	if (c >= 'a' && c <= 'z') {
		return c - 'a' + 26;
	}
	if (c >= '0' && c <= '9') {
		return c - '0' + 52;
	}
	return c == '-' ? 62 : c == '_' ? 63 : -1;
}

int pg_b64url_decode(const char *in, size_t inlen, unsigned char *out, size_t outcap,
                     size_t *outlen)
{
	char stackbuf[1024];
	char *std = stackbuf;
	size_t pad, stdlen, i;
	int n, rc = PG_ERR_INVALID;

	if (inlen % 4 == 1 || inlen > 0x3fffffff) {
		return PG_ERR_INVALID;
	}
	pad = (4 - inlen % 4) % 4;
	stdlen = inlen + pad;
	if (stdlen / 4 * 3 > outcap) {
		return PG_ERR_INVALID;
	}
	if (stdlen + 1 > sizeof(stackbuf)) {
		std = malloc(stdlen + 1);
		if (std == NULL) {
			return PG_ERR_INVALID;
		}
	}
	for (i = 0; i < inlen; i++) {
		char c = in[i];
		if (b64url_value(c) < 0) {
			goto out;
		}
		std[i] = c == '-' ? '+' : c == '_' ? '/' : c;
	}
	/*
	 * The bits of the last character that fall beyond the data must be zero
	 * (RFC 4648 §3.5): otherwise several texts decode alike, and a token
	 * could be altered without its signature bytes changing.
	 */
	if (pad != 0 && (b64url_value(in[inlen - 1]) & (pad == 1 ? 0x03 : 0x0f)) != 0) {
		goto out;
	}
	for (; i < stdlen; i++) {
		std[i] = '=';
	}
	std[stdlen] = '\0';
	if (stdlen == 0) {
		*outlen = 0;
		rc = PG_OK;
		goto out;
	}
	n = EVP_DecodeBlock(out, (const unsigned char *)std, (int)stdlen);
	if (n < 0) {
		goto out;
	}
	*outlen = (size_t)n - pad;
	rc = PG_OK;
out:
	if (std != stackbuf) {
		free(std);
	}
	return rc;
}

int pg_b64url_encode(const unsigned char *in, size_t inlen, char *out, size_t outcap)
{
	int n, i;

	if (PG_B64URL_ENCODED_MAX(inlen) > outcap || inlen > 0x3fffffff) {
		return -1;
	}
	n = EVP_EncodeBlock((unsigned char *)out, in, (int)inlen);
	while (n > 0 && out[n - 1] == '=') {
		n--;
	}
	out[n] = '\0';
	for (i = 0; i < n; i++) {
		if (out[i] == '+') {
			out[i] = '-';
		} else if (out[i] == '/') {
			out[i] = '_';
		}
	}
	return n;
}
