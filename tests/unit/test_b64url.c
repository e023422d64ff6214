/* SPDX-License-Identifier: Apache-2.0 */
/*
 * base64url (b64url.c): RFC 4648 test vectors in the URL-safe alphabet
 * without padding, round trips of every length and byte value, and refusal
 * of everything outside the unpadded URL-safe form.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "b64url.h"
#include "check.h"

/* Decodes a NUL-terminated string; returns what pg_b64url_decode returns. */
static int decode_str(const char *in, unsigned char *out, size_t outcap, size_t *outlen)
{
	return pg_b64url_decode(in, strlen(in), out, outcap, outlen);
}

static void test_rfc4648_vectors_encode_unpadded(void)
{
	/* RFC 4648 §10, with the padding taken off (RFC 7515 §2). */
	static const struct {
		const char *plain, *coded;
	} v[] = {
	    {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
	    {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
	};
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char enc[16];
		unsigned char dec[16];
		size_t declen = 99;
		size_t plen = strlen(v[i].plain);

		CHECK_EQ(
		    pg_b64url_encode((const unsigned char *)v[i].plain, plen, enc, sizeof(enc)),
		    strlen(v[i].coded));
		CHECK_STR(enc, v[i].coded);
		CHECK_EQ(decode_str(v[i].coded, dec, sizeof(dec), &declen), 0);
		CHECK_EQ(declen, plen);
		CHECK_MEM(dec, v[i].plain, plen);
	}
}

static void test_url_safe_alphabet_replaces_plus_and_slash(void)
{
	/* 0xfb 0xff 0xbf is "+/+/" in the standard alphabet. */
	static const unsigned char bytes[] = {0xfb, 0xff, 0xbf};
	unsigned char dec[8];
	char enc[8];
	size_t declen;

	CHECK_EQ(pg_b64url_encode(bytes, 3, enc, sizeof(enc)), 4);
	CHECK_STR(enc, "-_-_");
	CHECK_EQ(pg_b64url_encode(bytes, 2, enc, sizeof(enc)), 3);
	CHECK_STR(enc, "-_8");
	CHECK_EQ(decode_str("-_-_", dec, sizeof(dec), &declen), 0);
	CHECK_EQ(declen, 3);
	CHECK_MEM(dec, bytes, 3);
	CHECK_EQ(decode_str("-_8", dec, sizeof(dec), &declen), 0);
	CHECK_EQ(declen, 2);
	CHECK_MEM(dec, bytes, 2);
}

static void test_round_trip_every_length_and_byte(void)
{
	unsigned char in[3000], dec[3000];
	char enc[PG_B64URL_ENCODED_MAX(3000)];
	uint32_t x = 2463534242u;
	size_t len, i;

	for (i = 0; i < sizeof(in); i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		in[i] = (unsigned char)(i < 256 ? i : x);
	}
	/* Short lengths use the decoder's stack buffer, long ones its heap one. */
	for (len = 0; len <= sizeof(in); len += len < 300 ? 1 : 349) {
		size_t declen = 0;
		int n = pg_b64url_encode(in, len, enc, sizeof(enc));

		CHECK_EQ(n, (4 * len + 2) / 3);
		CHECK_EQ(strlen(enc), (size_t)n);
		CHECK(strpbrk(enc, "=+/") == NULL);
		CHECK_EQ(pg_b64url_decode(enc, (size_t)n, dec, sizeof(dec), &declen), 0);
		CHECK_EQ(declen, len);
		CHECK_MEM(dec, in, len);
	}
}

static void test_refuses_padding(void)
{
	unsigned char out[16];
	size_t outlen;

	CHECK_EQ(decode_str("Zg==", out, sizeof(out), &outlen), PG_ERR_INVALID);
	CHECK_EQ(decode_str("Zm8=", out, sizeof(out), &outlen), PG_ERR_INVALID);
	CHECK_EQ(decode_str("Zg=", out, sizeof(out), &outlen), PG_ERR_INVALID);
	CHECK_EQ(decode_str("====", out, sizeof(out), &outlen), PG_ERR_INVALID);
	CHECK_EQ(decode_str("Zm=v", out, sizeof(out), &outlen), PG_ERR_INVALID);
}

static void test_refuses_standard_alphabet(void)
{
	unsigned char out[16];
	size_t outlen;

	CHECK_EQ(decode_str("+/+/", out, sizeof(out), &outlen), PG_ERR_INVALID);
	CHECK_EQ(decode_str("-_+_", out, sizeof(out), &outlen), PG_ERR_INVALID);
	CHECK_EQ(decode_str("-_8/", out, sizeof(out), &outlen), PG_ERR_INVALID);
}

static void test_refuses_whitespace_and_other_bytes(void)
{
	static const char *const bad[] = {
	    "Zm9v ",  " Zm9v", "Zm 9v", "Zm9v\n",      "\nZm9v", "Zm\r\n9v",
	    "\tZm9v", "Zm9v.", "Zm9v!", "Zm9\xc3\xa9", "Zm9v*",
	};
	unsigned char out[16];
	size_t i, outlen;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_EQ(decode_str(bad[i], out, sizeof(out), &outlen), PG_ERR_INVALID);
	}
	/* An embedded NUL inside the given length is not base64url either. */
	CHECK_EQ(pg_b64url_decode("Zm\0v", 4, out, sizeof(out), &outlen), PG_ERR_INVALID);
}

static void test_refuses_length_mod_4_is_1(void)
{
	unsigned char out[16];
	size_t outlen;

	CHECK_EQ(decode_str("Z", out, sizeof(out), &outlen), PG_ERR_INVALID);
	CHECK_EQ(decode_str("Zm9vY", out, sizeof(out), &outlen), PG_ERR_INVALID);
	CHECK_EQ(decode_str("Zm9vYmFyZ", out, sizeof(out), &outlen), PG_ERR_INVALID);
}

static void test_refuses_non_canonical_trailing_bits(void)
{
	unsigned char out[16];
	size_t outlen;

	/* "f" is "Zg"; "Zh" carries the same byte with a non-zero pad bit. */
	CHECK_EQ(decode_str("Zg", out, sizeof(out), &outlen), 0);
	CHECK_EQ(decode_str("Zh", out, sizeof(out), &outlen), PG_ERR_INVALID);
	CHECK_EQ(decode_str("Z_", out, sizeof(out), &outlen), PG_ERR_INVALID);
	/* "fo" is "Zm8"; "Zm9" has a non-zero pad bit. */
	CHECK_EQ(decode_str("Zm8", out, sizeof(out), &outlen), 0);
	CHECK_EQ(decode_str("Zm9", out, sizeof(out), &outlen), PG_ERR_INVALID);
}

static void test_empty_input_decodes_to_nothing(void)
{
	unsigned char out[1];
	size_t outlen = 99;

	CHECK_EQ(pg_b64url_decode("", 0, out, sizeof(out), &outlen), 0);
	CHECK_EQ(outlen, 0);
}

static void test_output_capacity_is_enforced(void)
{
	unsigned char out[8];
	char enc[16];
	size_t outlen;

	/* "Zm9vYmFy" needs PG_B64URL_DECODED_MAX(8) == 6 bytes. */
	CHECK_EQ(PG_B64URL_DECODED_MAX(8), 6);
	CHECK_EQ(pg_b64url_decode("Zm9vYmFy", 8, out, 5, &outlen), PG_ERR_INVALID);
	CHECK_EQ(pg_b64url_decode("Zm9vYmFy", 8, out, 6, &outlen), 0);
	CHECK_EQ(outlen, 6);
	/* "Zm9vYg" (4 bytes) needs room for 6 padded bytes. */
	CHECK_EQ(pg_b64url_decode("Zm9vYg", 6, out, 5, &outlen), PG_ERR_INVALID);
	CHECK_EQ(pg_b64url_decode("Zm9vYg", 6, out, 6, &outlen), 0);
	CHECK_EQ(outlen, 4);

	/* "foob" needs PG_B64URL_ENCODED_MAX(4) == 9 characters with the NUL. */
	CHECK_EQ(PG_B64URL_ENCODED_MAX(4), 9);
	CHECK_EQ(pg_b64url_encode((const unsigned char *)"foob", 4, enc, 8), -1);
	CHECK_EQ(pg_b64url_encode((const unsigned char *)"foob", 4, enc, 9), 6);
	CHECK_STR(enc, "Zm9vYg");
	CHECK_EQ(pg_b64url_encode((const unsigned char *)"", 0, enc, 1), 0);
	CHECK_STR(enc, "");
	CHECK_EQ(pg_b64url_encode((const unsigned char *)"", 0, enc, 0), -1);
}

int main(void)
{
	RUN(test_rfc4648_vectors_encode_unpadded);
	RUN(test_url_safe_alphabet_replaces_plus_and_slash);
	RUN(test_round_trip_every_length_and_byte);
	RUN(test_refuses_padding);
	RUN(test_refuses_standard_alphabet);
	RUN(test_refuses_whitespace_and_other_bytes);
	RUN(test_refuses_length_mod_4_is_1);
	RUN(test_refuses_non_canonical_trailing_bits);
	RUN(test_empty_input_decodes_to_nothing);
	RUN(test_output_capacity_is_enforced);
	return check_exit();
}
