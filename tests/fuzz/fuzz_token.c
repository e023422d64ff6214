/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: a whole compact token, as a client sends it in the MQTT
 * password of every CONNECT, through pg_token_verify (token.c, jws.c) and
 * each of its dot-separated parts through base64url (b64url.c).
 *
 * The keyring holds the fixed HS256 secret and the ES256 and EdDSA public
 * keys of fuzz_keys.h, so the corpus's validly signed tokens lead the
 * fuzzer past the signature into the claims. Beyond "no crash, no leak, no
 * undefined behaviour" it checks what verification promises: an accepted
 * token has a valid uid, an unexpired exp and an algorithm that was
 * allowed, and a keyring without keys accepts nothing.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "b64url.h"
#include "fuzz_check.h"
#include "fuzz_keys.h"
#include "token.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pg_keyring *full, *empty;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char pems[] = FUZZ_ES256_PUBLIC FUZZ_EDDSA_PUBLIC;
	char err[256];

	full = pg_keyring_new();
	empty = pg_keyring_new();
	FUZZ_CHECK(full != NULL && empty != NULL);
	FUZZ_CHECK(pg_keyring_set_secret(full, (const unsigned char *)FUZZ_HS256_SECRET,
	                                 strlen(FUZZ_HS256_SECRET)) == 0);
	FUZZ_CHECK(pg_keyring_add_public_pem(full, pems, strlen(pems), err, sizeof(err)) == 2);
	FUZZ_CHECK(pg_keyring_algs(full) == PG_ALG_ALL);
	return 0;
}

/* base64url: a part that decodes must be the canonical encoding of what it decodes to. */
static void check_b64url(const char *part, size_t len)
{
	/* Room to decode len characters, and to encode len bytes (the larger). */
	unsigned char *bin = malloc(PG_B64URL_DECODED_MAX(len) + len + 1);
	char *text = malloc(PG_B64URL_ENCODED_MAX(len));
	size_t n = 0;

	FUZZ_CHECK(bin != NULL && text != NULL);
	if (pg_b64url_decode(part, len, bin, PG_B64URL_DECODED_MAX(len), &n) == 0) {
		int m = pg_b64url_encode(bin, n, text, PG_B64URL_ENCODED_MAX(n));
		FUZZ_CHECK(n <= PG_B64URL_DECODED_MAX(len));
		FUZZ_CHECK(m >= 0 && (size_t)m == len && memcmp(text, part, len) == 0);
	}
	/* The other direction, with the part's bytes as data. */
	{
		int m = pg_b64url_encode((const unsigned char *)part, len, text,
		                         PG_B64URL_ENCODED_MAX(len));
		FUZZ_CHECK(m >= 0);
		FUZZ_CHECK(pg_b64url_decode(text, (size_t)m, bin, PG_B64URL_DECODED_MAX((size_t)m),
		                            &n) == 0);
		FUZZ_CHECK(n == len && memcmp(bin, part, len) == 0);
	}
	free(bin);
	free(text);
}

static void check_accepted(const struct pg_claims *c, unsigned algs)
{
	FUZZ_CHECK(pg_ident_valid_str(c->sub));
	FUZZ_CHECK(c->dev[0] == '\0' || pg_ident_valid_str(c->dev));
	FUZZ_CHECK(strlen(c->jti) <= PG_JTI_MAX);
	FUZZ_CHECK(c->role == PG_ROLE_USER || c->role == PG_ROLE_SERVICE);
	FUZZ_CHECK((c->alg & algs) != 0 && (c->alg & (c->alg - 1)) == 0);
	FUZZ_CHECK(FUZZ_NOW_S <= c->exp + 60);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct pg_token_policy all = {.algs = PG_ALG_ALL, .skew_s = 60};
	const struct pg_token_policy hs = {.algs = PG_ALG_HS256, .skew_s = 60};
	const char *tok = (const char *)data, *detail = NULL, *p, *end = tok + size;
	struct pg_claims c;
	enum pg_token_status st;
	int parts = 0;

	st = pg_token_verify(full, &all, tok, size, FUZZ_NOW_S, &c, &detail);
	FUZZ_CHECK(detail != NULL && pg_token_status_name(st) != NULL);
	if (st == PG_TOKEN_OK) {
		check_accepted(&c, all.algs);
	}
	st = pg_token_verify(full, &hs, tok, size, FUZZ_NOW_S, &c, NULL);
	if (st == PG_TOKEN_OK) {
		check_accepted(&c, hs.algs);
	}
	st = pg_token_verify(empty, &all, tok, size, FUZZ_NOW_S, &c, &detail);
	FUZZ_CHECK(st != PG_TOKEN_OK && st != PG_TOKEN_BAD_SIGNATURE);

	for (p = tok; parts < 4; parts++) {
		const char *dot = memchr(p, '.', (size_t)(end - p));
		const char *stop = dot ? dot : end;
		check_b64url(p, (size_t)(stop - p));
		if (dot == NULL) {
			break;
		}
		p = dot + 1;
	}
	return 0;
}
