/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the claims of a validly signed token. The input is the
 * claims text (meant to be JSON, any bytes allowed); the target wraps it in
 * a JWS signed with each fixed key of fuzz_keys.h (HS256, ES256, EdDSA) and
 * verifies it, so every input reaches the claims rules of token.c, which a
 * fuzzer could never reach through a signature it cannot forge.
 *
 * Checks: a correctly signed token is never refused for its algorithm or
 * signature; the three algorithms judge the same claims alike; and claims
 * that are accepted survive pg_token_mint: minting them again gives a token
 * that verifies to the same claims.
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

#define NKEYS 3

static struct pg_keyring *keyring;
static struct pg_signkey *keys[NKEYS];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char pems[] = FUZZ_ES256_PUBLIC FUZZ_EDDSA_PUBLIC;
	char err[256];

	keyring = pg_keyring_new();
	FUZZ_CHECK(keyring != NULL);
	FUZZ_CHECK(pg_keyring_set_secret(keyring, (const unsigned char *)FUZZ_HS256_SECRET,
	                                 strlen(FUZZ_HS256_SECRET)) == 0);
	FUZZ_CHECK(pg_keyring_add_public_pem(keyring, pems, strlen(pems), err, sizeof(err)) == 2);
	keys[0] = pg_signkey_from_secret((const unsigned char *)FUZZ_HS256_SECRET,
	                                 strlen(FUZZ_HS256_SECRET));
	keys[1] =
	    pg_signkey_from_pem(FUZZ_ES256_PRIVATE, strlen(FUZZ_ES256_PRIVATE), err, sizeof(err));
	keys[2] =
	    pg_signkey_from_pem(FUZZ_EDDSA_PRIVATE, strlen(FUZZ_EDDSA_PRIVATE), err, sizeof(err));
	FUZZ_CHECK(keys[0] && keys[1] && keys[2]);
	FUZZ_CHECK(pg_signkey_alg(keys[1]) == PG_ALG_ES256);
	FUZZ_CHECK(pg_signkey_alg(keys[2]) == PG_ALG_EDDSA);
	return 0;
}

/*
 * "<header>.<claims>.<signature>" with key; a malloc'd token the caller frees.
 * The header is {"alg":"<alg>","typ":"JWT"}, as pg_token_mint writes it.
 */
static char *sign_claims(const struct pg_signkey *key, const uint8_t *claims, size_t len,
                         size_t *toklen)
{
	char header[64];
	unsigned char sig[PG_JWS_SIG_MAX];
	size_t cap = PG_B64URL_ENCODED_MAX(sizeof(header)) + PG_B64URL_ENCODED_MAX(len) +
	             PG_B64URL_ENCODED_MAX(PG_JWS_SIG_MAX) + 2;
	char *tok = malloc(cap);
	size_t used, siglen;
	int n;

	FUZZ_CHECK(tok != NULL);
	n = snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\"}",
	             pg_alg_name(pg_signkey_alg(key)));
	n = pg_b64url_encode((const unsigned char *)header, (size_t)n, tok, cap);
	FUZZ_CHECK(n > 0);
	used = (size_t)n;
	tok[used++] = '.';
	n = pg_b64url_encode(claims, len, tok + used, cap - used);
	FUZZ_CHECK(n >= 0);
	used += (size_t)n;
	FUZZ_CHECK(pg_jws_sign(key, (const unsigned char *)tok, used, sig, &siglen) == 0);
	tok[used++] = '.';
	n = pg_b64url_encode(sig, siglen, tok + used, cap - used);
	FUZZ_CHECK(n > 0);
	*toklen = used + (size_t)n;
	return tok;
}

static void check_same_claims(const struct pg_claims *a, const struct pg_claims *b)
{
	FUZZ_CHECK(strcmp(a->sub, b->sub) == 0);
	FUZZ_CHECK(strcmp(a->dev, b->dev) == 0);
	FUZZ_CHECK(strcmp(a->jti, b->jti) == 0);
	FUZZ_CHECK(a->role == b->role);
	FUZZ_CHECK(a->exp == b->exp);
	FUZZ_CHECK(a->has_iat == b->has_iat && (!a->has_iat || a->iat == b->iat));
	FUZZ_CHECK(a->has_nbf == b->has_nbf && (!a->has_nbf || a->nbf == b->nbf));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct pg_token_policy policy = {.algs = PG_ALG_ALL, .skew_s = 60};
	enum pg_token_status first = PG_TOKEN_OK;
	struct pg_claims c, first_claims;
	int i;

	for (i = 0; i < NKEYS; i++) {
		size_t len;
		char *tok = sign_claims(keys[i], data, size, &len);
		enum pg_token_status st =
		    pg_token_verify(keyring, &policy, tok, len, FUZZ_NOW_S, &c, NULL);
		free(tok);
		if (len > PG_TOKEN_MAX) {
			FUZZ_CHECK(st == PG_TOKEN_MALFORMED);
			return 0;
		}
		FUZZ_CHECK(st != PG_TOKEN_ALG_REFUSED && st != PG_TOKEN_BAD_SIGNATURE);
		if (i == 0) {
			first = st;
			first_claims = c;
		} else {
			FUZZ_CHECK(st == first);
			if (st == PG_TOKEN_OK) {
				FUZZ_CHECK(c.alg == pg_signkey_alg(keys[i]));
				check_same_claims(&c, &first_claims);
			}
		}
	}
	if (first == PG_TOKEN_OK) {
		struct pg_claims again;
		char *tok = pg_token_mint(keys[0], &first_claims);
		FUZZ_CHECK(tok != NULL);
		FUZZ_CHECK(pg_token_verify(keyring, &policy, tok, strlen(tok), FUZZ_NOW_S, &again,
		                           NULL) == PG_TOKEN_OK);
		check_same_claims(&first_claims, &again);
		free(tok);
	}
	return 0;
}
