/* SPDX-License-Identifier: Apache-2.0 */
/*
 * base64url (RFC 4648 §5, no padding) as JWS uses it (RFC 7515 §2).
 * The coding itself is OpenSSL's; this file only maps the URL-safe alphabet
 * and the missing padding onto it, and refuses anything outside the alphabet.
 */
#ifndef PIGEON_B64URL_H
#define PIGEON_B64URL_H

#include "export.h"
#include "result.h"

#include <stddef.h>

/* Bytes needed to decode inlen characters (an upper bound). */
#define PG_B64URL_DECODED_MAX(inlen) ((((inlen) + 3) / 4) * 3)
/* Characters needed to encode inlen bytes, plus the terminating NUL. */
#define PG_B64URL_ENCODED_MAX(inlen) ((((inlen) + 2) / 3) * 4 + 1)

/*
 * Decodes in[0..inlen) into out, whose capacity outcap must be at least
 * PG_B64URL_DECODED_MAX(inlen). Padding ('='), whitespace, the standard
 * alphabet's '+' '/' and non-zero pad bits in the last character (a
 * non-canonical encoding) are refused. Returns PG_OK and sets *outlen,
 * or PG_ERR_INVALID on malformed input or a too small out.
 */
PG_EXPORT int pg_b64url_decode(const char *in, size_t inlen, unsigned char *out, size_t outcap,
                               size_t *outlen);

/*
 * Encodes in[0..inlen) into out (capacity outcap, NUL-terminated, no
 * padding). Returns the length written, or -1 if out is too small.
 */
PG_EXPORT int pg_b64url_encode(const unsigned char *in, size_t inlen, char *out, size_t outcap);

#endif
