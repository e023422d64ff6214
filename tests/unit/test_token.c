/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JWS and JWT (jws.c, token.c; docs/auth.md): the RFC 7515 / RFC 8037 example
 * signatures, mint/verify round trips for HS256, ES256 and EdDSA with every
 * claim, and refusal of each kind of bad token with its status and detail:
 * tampering, alg none, unknown or unconfigured algorithms (including HS256
 * keyed with the ES256 public key), time claims around the skew, bad claims,
 * bad shapes and sizes, random garbage.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>

#include "b64url.h"
#include "check.h"
#include "pem.h"
#include "jws.h"
#include "token.h"

#define NOW 1700000000
#define SKEW 30

static const char hs_secret[] = "pigeon unit test secret, 32+ bytes long";

/* Keys made once in main. */
static EVP_PKEY *es_key, *es_key2, *ed_key;
static char *es_pub_pem, *es2_pub_pem, *ed_pub_pem;
static struct pg_signkey *hs_sign, *es_sign, *es2_sign, *ed_sign;
/* secret + es_key + ed_key */
static struct pg_keyring *kr_all;
/* es_key's public key only */
static struct pg_keyring *kr_es;

/* ---- helpers ---- */

static size_t b64d(const char *s, unsigned char *out, size_t cap)
{
	size_t n = 0;

	if (pg_b64url_decode(s, strlen(s), out, cap, &n) != 0) {
		fprintf(stderr, "test vector is not base64url: %s\n", s);
		abort();
	}
	return n;
}

/* malloc'd base64url of a NUL-terminated text. */
static char *b64e(const char *text)
{
	size_t len = strlen(text);
	char *out = malloc(PG_B64URL_ENCODED_MAX(len));

	if (out == NULL || pg_b64url_encode((const unsigned char *)text, len, out,
	                                    PG_B64URL_ENCODED_MAX(len)) < 0) {
		abort();
	}
	return out;
}

/* An EVP_PKEY of type name ("EC", "ED25519") from a public key's raw bytes. */
static EVP_PKEY *pubkey_from_raw(const char *name, const unsigned char *pub, size_t publen)
{
	char group[] = "prime256v1";
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, name, NULL);
	EVP_PKEY *pkey = NULL;
	int n = 0;

	if (strcmp(name, "EC") == 0) {
		params[n++] =
		    OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
	}
	params[n++] =
	    OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pub, publen);
	params[n] = OSSL_PARAM_construct_end();
	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		fprintf(stderr, "cannot build a %s public key\n", name);
		abort();
	}
	EVP_PKEY_CTX_free(ctx);
	return pkey;
}

/* PEM of the P-256 public key with JWK coordinates x, y (base64url). */
static char *es256_pub_pem_from_jwk(const char *x, const char *y)
{
	unsigned char pt[65];
	EVP_PKEY *pkey;
	char *pem;

	pt[0] = 0x04; /* uncompressed point */
	if (b64d(x, pt + 1, 33) != 32 || b64d(y, pt + 33, 33) != 32) {
		abort();
	}
	pkey = pubkey_from_raw("EC", pt, sizeof(pt));
	pem = pem_of(pkey, 0);
	EVP_PKEY_free(pkey);
	return pem;
}

/* PEM of the Ed25519 public key with JWK coordinate x (base64url). */
static char *ed25519_pub_pem_from_jwk(const char *x)
{
	unsigned char raw[33];
	EVP_PKEY *pkey;
	char *pem;

	if (b64d(x, raw, sizeof(raw)) != 32) {
		abort();
	}
	pkey = pubkey_from_raw("ED25519", raw, 32);
	pem = pem_of(pkey, 0);
	EVP_PKEY_free(pkey);
	return pem;
}

static struct pg_signkey *signkey_of(EVP_PKEY *pkey)
{
	char err[200] = "";
	char *pem = pem_of(pkey, 1);
	struct pg_signkey *key = pg_signkey_from_pem(pem, strlen(pem), err, sizeof(err));

	if (key == NULL) {
		fprintf(stderr, "pg_signkey_from_pem: %s\n", err);
		abort();
	}
	free(pem);
	return key;
}

static struct pg_keyring *keyring_of(const char *pem)
{
	char err[200] = "";
	struct pg_keyring *kr = pg_keyring_new();

	if (kr == NULL || pg_keyring_add_public_pem(kr, pem, strlen(pem), err, sizeof(err)) < 1) {
		fprintf(stderr, "pg_keyring_add_public_pem: %s\n", err);
		abort();
	}
	return kr;
}

/*
 * "h.p.<signature of h.p by key>" from the already encoded parts h and p;
 * "h.p." when key is NULL. malloc'd.
 */
static char *craft_parts(const char *h, const char *p, const struct pg_signkey *key)
{
	size_t hl = strlen(h), pl = strlen(p), cap = hl + pl + 2 + PG_B64URL_ENCODED_MAX(64);
	unsigned char sig[PG_JWS_SIG_MAX];
	char *tok = malloc(cap);
	size_t used, siglen;

	if (tok == NULL) {
		abort();
	}
	memcpy(tok, h, hl);
	tok[hl] = '.';
	memcpy(tok + hl + 1, p, pl);
	used = hl + 1 + pl;
	tok[used] = '\0';
	if (key != NULL && pg_jws_sign(key, (const unsigned char *)tok, used, sig, &siglen) != 0) {
		abort();
	}
	tok[used++] = '.';
	tok[used] = '\0';
	if (key != NULL && pg_b64url_encode(sig, siglen, tok + used, cap - used) < 0) {
		abort();
	}
	return tok;
}

/* A token of the JSON texts hdr and payload, signed by key (unsigned if NULL). */
static char *craft(const char *hdr, const char *payload, const struct pg_signkey *key)
{
	char *h = b64e(hdr), *p = b64e(payload);
	char *tok = craft_parts(h, p, key);

	free(h);
	free(p);
	return tok;
}

static enum pg_token_status verify_at(const struct pg_keyring *kr, unsigned algs, const char *tok,
                                      int64_t now, struct pg_claims *claims, const char **detail)
{
	struct pg_token_policy policy = {algs, SKEW};
	struct pg_claims dummy;

	*detail = NULL;
	return pg_token_verify(kr, &policy, tok, tok ? strlen(tok) : 0, now,
	                       claims ? claims : &dummy, detail);
}

/* Verifies tok against kr_all (all algs accepted) at NOW. */
static enum pg_token_status verify(const char *tok, const char **detail)
{
	return verify_at(kr_all, PG_ALG_ALL, tok, NOW, NULL, detail);
}

/* Asserts that tok gets status with a detail containing part. */
#define EXPECT_REFUSED(tok, status, part)                                                          \
	do {                                                                                       \
		const char *detail_;                                                               \
		CHECK_EQ(verify((tok), &detail_), (status));                                       \
		CHECK_CONTAINS(detail_, (part));                                                   \
	} while (0)

/* Same, for a token crafted from JSON texts and signed with HS256. */
#define EXPECT_CRAFTED(hdr, payload, status, part)                                                 \
	do {                                                                                       \
		char *tok_ = craft((hdr), (payload), hs_sign);                                     \
		EXPECT_REFUSED(tok_, (status), (part));                                            \
		free(tok_);                                                                        \
	} while (0)

#define HS_HDR "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define CLAIMS_OK "{\"sub\":\"alice\",\"exp\":1700003600}"

static uint32_t rng_state = 2463534242u;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

/* ---- RFC examples ---- */

/* The RFC 7515 examples' payload, a JWT claims set without sub. */
#define RFC7515_HDR_A1 "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
#define RFC7515_PAYLOAD                                                                            \
	"eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0" \
	"c"                                                                                        \
	"nVlfQ"

/* Splits a compact JWS; checks pg_jws_verify with kr and alg over it. */
static void check_rfc_signature(const struct pg_keyring *kr, unsigned alg, const char *jws)
{
	const char *dot2 = strrchr(jws, '.');
	unsigned char sig[128];
	size_t siglen = b64d(dot2 + 1, sig, sizeof(sig));
	size_t inlen = (size_t)(dot2 - jws);
	char *altered = strdup(jws);

	CHECK_EQ(pg_jws_verify(kr, alg, (const unsigned char *)jws, inlen, sig, siglen), 0);
	/* The same signature over other bytes, or another signature, is refused. */
	altered[inlen - 1] ^= 1;
	CHECK_EQ(pg_jws_verify(kr, alg, (const unsigned char *)altered, inlen, sig, siglen), -1);
	sig[siglen / 2] ^= 0x40;
	CHECK_EQ(pg_jws_verify(kr, alg, (const unsigned char *)jws, inlen, sig, siglen), -1);
	sig[siglen / 2] ^= 0x40;
	CHECK_EQ(pg_jws_verify(kr, alg, (const unsigned char *)jws, inlen, sig, siglen - 1), -1);
	free(altered);
}

static void test_rfc7515_a1_hs256(void)
{
	static const char k[] =
	    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4"
	    "hcgUuTwjAzZr1Z9CAow";
	static const char jws[] =
	    RFC7515_HDR_A1 "." RFC7515_PAYLOAD ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
	unsigned char key[66], sig[PG_JWS_SIG_MAX];
	char sigtext[PG_B64URL_ENCODED_MAX(PG_JWS_SIG_MAX)];
	size_t keylen = b64d(k, key, sizeof(key)), siglen = 0;
	struct pg_keyring *kr = pg_keyring_new();
	struct pg_signkey *sk = pg_signkey_from_secret(key, keylen);
	const char *detail;

	CHECK_EQ(keylen, 64);
	CHECK_EQ(pg_keyring_set_secret(kr, key, keylen), 0);
	CHECK_EQ(pg_keyring_algs(kr), PG_ALG_HS256);
	check_rfc_signature(kr, PG_ALG_HS256, jws);

	/* HMAC is deterministic: signing gives the RFC's signature exactly. */
	CHECK(sk != NULL);
	CHECK_EQ(pg_signkey_alg(sk), PG_ALG_HS256);
	CHECK_EQ(pg_jws_sign(sk, (const unsigned char *)jws, strrchr(jws, '.') - jws, sig, &siglen),
	         0);
	CHECK_EQ(siglen, 32);
	CHECK(pg_b64url_encode(sig, siglen, sigtext, sizeof(sigtext)) == 43);
	CHECK_STR(sigtext, strrchr(jws, '.') + 1);

	/* The signature passes, then the claim rules refuse a token without sub. */
	CHECK_EQ(verify_at(kr, PG_ALG_HS256, jws, NOW, NULL, &detail), PG_TOKEN_BAD_CLAIMS);
	CHECK_STR(detail, "sub claim missing");
	pg_signkey_free(sk);
	pg_keyring_free(kr);
}

static void test_rfc7515_a3_es256(void)
{
	static const char jws[] = "eyJhbGciOiJFUzI1NiJ9." RFC7515_PAYLOAD
	                          ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISl"
	                          "SApmWQxfKTUJqPP3-Kg6NU1Q";
	char *pem = es256_pub_pem_from_jwk("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
	                                   "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0");
	struct pg_keyring *kr = keyring_of(pem);
	const char *detail;

	CHECK_EQ(pg_keyring_algs(kr), PG_ALG_ES256);
	check_rfc_signature(kr, PG_ALG_ES256, jws);
	/* No key of another algorithm is tried. */
	{
		unsigned char sig[PG_B64URL_DECODED_MAX(86)];
		b64d(strrchr(jws, '.') + 1, sig, sizeof(sig));
		CHECK_EQ(pg_jws_verify(kr, PG_ALG_EDDSA, (const unsigned char *)jws,
		                       (size_t)(strrchr(jws, '.') - jws), sig, 64),
		         -2);
		CHECK_EQ(pg_jws_verify(kr, PG_ALG_HS256, (const unsigned char *)jws,
		                       (size_t)(strrchr(jws, '.') - jws), sig, 32),
		         -2);
	}
	CHECK_EQ(verify_at(kr, PG_ALG_ES256, jws, NOW, NULL, &detail), PG_TOKEN_BAD_CLAIMS);
	CHECK_STR(detail, "sub claim missing");
	CHECK_EQ(verify_at(kr, PG_ALG_ALL, jws, NOW, NULL, &detail), PG_TOKEN_BAD_CLAIMS);
	CHECK_STR(detail, "sub claim missing");
	pg_keyring_free(kr);
	free(pem);
}

static void test_rfc8037_a4_eddsa(void)
{
	static const char jws[] = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
	                          ".hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5"
	                          "BhVsPt9g7sVvpAr_MuM0KAg";
	/* RFC 8037 A.1: the private key "d" whose public key is A.4's "x". */
	static const char d[] = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
	static const char x[] = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
	char *pem = ed25519_pub_pem_from_jwk(x);
	struct pg_keyring *kr = keyring_of(pem);
	unsigned char priv[33], pub[32], sig[PG_JWS_SIG_MAX];
	char sigtext[PG_B64URL_ENCODED_MAX(PG_JWS_SIG_MAX)];
	size_t publen = sizeof(pub), siglen = 0;
	EVP_PKEY *pkey;
	struct pg_signkey *sk;
	const char *detail;

	CHECK_EQ(pg_keyring_algs(kr), PG_ALG_EDDSA);
	check_rfc_signature(kr, PG_ALG_EDDSA, jws);

	/* Ed25519 is deterministic: signing with d gives the RFC's signature. */
	CHECK_EQ(b64d(d, priv, sizeof(priv)), 32);
	pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv, 32);
	CHECK(pkey != NULL);
	CHECK(EVP_PKEY_get_raw_public_key(pkey, pub, &publen) == 1);
	CHECK_EQ(publen, 32);
	b64d(x, priv, sizeof(priv));
	CHECK_MEM(pub, priv, 32);
	sk = signkey_of(pkey);
	CHECK_EQ(pg_signkey_alg(sk), PG_ALG_EDDSA);
	CHECK_EQ(pg_jws_sign(sk, (const unsigned char *)jws, strrchr(jws, '.') - jws, sig, &siglen),
	         0);
	CHECK_EQ(siglen, 64);
	CHECK(pg_b64url_encode(sig, siglen, sigtext, sizeof(sigtext)) == 86);
	CHECK_STR(sigtext, strrchr(jws, '.') + 1);

	/*
	 * The example's payload is text, not a claims set: the signature passes
	 * and only then are the claims looked at and refused.
	 */
	CHECK_EQ(verify_at(kr, PG_ALG_EDDSA, jws, NOW, NULL, &detail), PG_TOKEN_MALFORMED);
	CHECK_STR(detail, "claims are not a base64url JSON object");
	pg_signkey_free(sk);
	EVP_PKEY_free(pkey);
	pg_keyring_free(kr);
	free(pem);
}

/* ---- round trips ---- */

/* Decodes part index (0 header, 1 claims) of tok as text into out. */
static void decode_part(const char *tok, int index, char *out, size_t cap)
{
	const char *start = tok, *end;
	size_t n = 0;

	if (index == 1) {
		start = strchr(tok, '.') + 1;
	}
	end = strchr(start, '.');
	if (pg_b64url_decode(start, (size_t)(end - start), (unsigned char *)out, cap - 1, &n) !=
	    0) {
		abort();
	}
	out[n] = '\0';
}

static void round_trip_all_claims(const struct pg_signkey *key, unsigned alg)
{
	struct pg_claims in, out;
	const char *detail = NULL;
	char *tok, hdr[256], want[64];

	memset(&in, 0, sizeof(in));
	strcpy(in.sub, "alice");
	strcpy(in.dev, "phone-1");
	strcpy(in.jti, "6f1c0b7e-jti/with:any+chars");
	in.role = PG_ROLE_SERVICE;
	in.iat = NOW - 10;
	in.has_iat = true;
	in.nbf = NOW - 5;
	in.has_nbf = true;
	in.exp = NOW + 3600;
	tok = pg_token_mint(key, &in);
	CHECK(tok != NULL);
	if (tok == NULL) {
		return;
	}
	CHECK_EQ(pg_signkey_alg(key), alg);

	/* The header names the algorithm and the type. */
	decode_part(tok, 0, hdr, sizeof(hdr));
	snprintf(want, sizeof(want), "\"alg\":\"%s\"", pg_alg_name(alg));
	CHECK_CONTAINS(hdr, want);
	CHECK_CONTAINS(hdr, "\"typ\":\"JWT\"");

	memset(&out, 0x5a, sizeof(out));
	CHECK_EQ(verify_at(kr_all, PG_ALG_ALL, tok, NOW, &out, &detail), PG_TOKEN_OK);
	CHECK_STR(detail, "ok");
	CHECK_STR(out.sub, "alice");
	CHECK_STR(out.dev, "phone-1");
	CHECK_STR(out.jti, in.jti);
	CHECK_EQ(out.role, PG_ROLE_SERVICE);
	CHECK_EQ(out.alg, alg);
	CHECK_EQ(out.exp, NOW + 3600);
	CHECK(out.has_iat);
	CHECK_EQ(out.iat, NOW - 10);
	CHECK(out.has_nbf);
	CHECK_EQ(out.nbf, NOW - 5);

	/* Only this algorithm's policy bit is needed. */
	CHECK_EQ(verify_at(kr_all, alg, tok, NOW, &out, &detail), PG_TOKEN_OK);
	CHECK_EQ(verify_at(kr_all, PG_ALG_ALL & ~alg, tok, NOW, &out, &detail),
	         PG_TOKEN_ALG_REFUSED);
	CHECK_STR(detail, "alg is not among the configured jwt_algs");
	/* detail may be NULL. */
	{
		struct pg_token_policy policy = {PG_ALG_ALL, SKEW};
		CHECK_EQ(pg_token_verify(kr_all, &policy, tok, strlen(tok), NOW, &out, NULL),
		         PG_TOKEN_OK);
	}
	free(tok);
}

static void test_round_trip_hs256_all_claims(void)
{
	round_trip_all_claims(hs_sign, PG_ALG_HS256);
}

static void test_round_trip_es256_all_claims(void)
{
	round_trip_all_claims(es_sign, PG_ALG_ES256);
}

static void test_round_trip_eddsa_all_claims(void)
{
	round_trip_all_claims(ed_sign, PG_ALG_EDDSA);
}

static void test_round_trip_minimal_claims_defaults(void)
{
	struct pg_signkey *keys[] = {hs_sign, es_sign, ed_sign};
	size_t i;

	for (i = 0; i < 3; i++) {
		struct pg_claims in, out;
		const char *detail;
		char *tok;

		memset(&in, 0, sizeof(in));
		strcpy(in.sub, "bob");
		in.exp = NOW + 60;
		tok = pg_token_mint(keys[i], &in);
		CHECK(tok != NULL);
		if (tok == NULL) {
			continue;
		}
		/* role user is the default and is not written; nor are absent claims. */
		{
			char payload[512];
			decode_part(tok, 1, payload, sizeof(payload));
			CHECK(strstr(payload, "role") == NULL);
			CHECK(strstr(payload, "dev") == NULL);
			CHECK(strstr(payload, "iat") == NULL);
			CHECK_CONTAINS(payload, "\"sub\":\"bob\"");
		}
		CHECK_EQ(verify_at(kr_all, PG_ALG_ALL, tok, NOW, &out, &detail), PG_TOKEN_OK);
		CHECK_STR(out.sub, "bob");
		CHECK_STR(out.dev, "");
		CHECK_STR(out.jti, "");
		CHECK_EQ(out.role, PG_ROLE_USER);
		CHECK(!out.has_iat);
		CHECK(!out.has_nbf);
		CHECK_EQ(out.exp, NOW + 60);
		CHECK_EQ(out.alg, pg_signkey_alg(keys[i]));
		free(tok);
	}
}

static void test_round_trip_longest_identifiers_and_jti(void)
{
	struct pg_claims in, out;
	const char *detail;
	char *tok;

	memset(&in, 0, sizeof(in));
	memset(in.sub, 's', PG_IDENT_MAX);
	memset(in.dev, 'd', PG_IDENT_MAX);
	memset(in.jti, 'j', PG_JTI_MAX);
	in.exp = NOW + 60;
	tok = pg_token_mint(es_sign, &in);
	CHECK(tok != NULL);
	CHECK_EQ(verify_at(kr_all, PG_ALG_ALL, tok, NOW, &out, &detail), PG_TOKEN_OK);
	CHECK_STR(out.sub, in.sub);
	CHECK_STR(out.dev, in.dev);
	CHECK_STR(out.jti, in.jti);
	free(tok);
}

static void test_key_rotation_any_key_of_the_alg_verifies(void)
{
	char both[8192], err[200];
	struct pg_keyring *kr = pg_keyring_new();
	struct pg_claims c;
	const char *detail;
	char *tok1, *tok2;

	snprintf(both, sizeof(both), "%s%s", es_pub_pem, es2_pub_pem);
	CHECK_EQ(pg_keyring_add_public_pem(kr, both, strlen(both), err, sizeof(err)), 2);
	memset(&c, 0, sizeof(c));
	strcpy(c.sub, "alice");
	c.exp = NOW + 60;
	tok1 = pg_token_mint(es_sign, &c);
	tok2 = pg_token_mint(es2_sign, &c);
	CHECK_EQ(verify_at(kr, PG_ALG_ES256, tok1, NOW, NULL, &detail), PG_TOKEN_OK);
	CHECK_EQ(verify_at(kr, PG_ALG_ES256, tok2, NOW, NULL, &detail), PG_TOKEN_OK);
	/* kr_all holds only the first key. */
	CHECK_EQ(verify_at(kr_all, PG_ALG_ALL, tok2, NOW, NULL, &detail), PG_TOKEN_BAD_SIGNATURE);
	CHECK_STR(detail, "signature does not verify");
	free(tok1);
	free(tok2);
	pg_keyring_free(kr);
}

/* ---- refusals ---- */

/* A fresh HS256 token with every claim. */
static char *good_token(const struct pg_signkey *key)
{
	struct pg_claims c;

	memset(&c, 0, sizeof(c));
	strcpy(c.sub, "alice");
	strcpy(c.dev, "phone");
	strcpy(c.jti, "j1");
	c.iat = NOW;
	c.has_iat = true;
	c.exp = NOW + 600;
	return pg_token_mint(key, &c);
}

static void test_tampered_header_payload_signature_refused(void)
{
	struct pg_signkey *keys[] = {hs_sign, es_sign, ed_sign};
	size_t i;

	for (i = 0; i < 3; i++) {
		char *tok = good_token(keys[i]);
		char *dot1 = strchr(tok, '.'), *dot2 = strrchr(tok, '.');
		char *hdr = NULL, *forged = NULL, *other;
		const char *detail;
		char alg_hdr[64], buf[8192];

		CHECK_EQ(verify(tok, &detail), PG_TOKEN_OK);

		/* Header: same alg, one more member. */
		snprintf(alg_hdr, sizeof(alg_hdr), "{\"alg\":\"%s\",\"kid\":\"x\"}",
		         pg_alg_name(pg_signkey_alg(keys[i])));
		hdr = b64e(alg_hdr);
		snprintf(buf, sizeof(buf), "%s%s", hdr, dot1);
		EXPECT_REFUSED(buf, PG_TOKEN_BAD_SIGNATURE, "signature does not verify");

		/* Payload: another sub. */
		forged = b64e("{\"sub\":\"mallory\",\"exp\":1700000600}");
		snprintf(buf, sizeof(buf), "%.*s.%s%s", (int)(dot1 - tok), tok, forged, dot2);
		EXPECT_REFUSED(buf, PG_TOKEN_BAD_SIGNATURE, "signature does not verify");

		/* Signature: one character in the middle changed. */
		snprintf(buf, sizeof(buf), "%s", tok);
		other = buf + (dot2 - tok) + 10;
		*other = *other == 'A' ? 'B' : 'A';
		EXPECT_REFUSED(buf, PG_TOKEN_BAD_SIGNATURE, "signature does not verify");

		/* The signature of another token by the same key. */
		{
			struct pg_claims c;
			char *tok2;
			memset(&c, 0, sizeof(c));
			strcpy(c.sub, "mallory");
			c.exp = NOW + 600;
			tok2 = pg_token_mint(keys[i], &c);
			snprintf(buf, sizeof(buf), "%.*s%s", (int)(dot2 - tok), tok,
			         strrchr(tok2, '.'));
			EXPECT_REFUSED(buf, PG_TOKEN_BAD_SIGNATURE, "signature does not verify");
			free(tok2);
		}
		free(hdr);
		free(forged);
		free(tok);
	}
}

static void test_every_single_character_change_refused(void)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
	struct pg_signkey *keys[] = {hs_sign, es_sign, ed_sign};
	size_t i, pos, len;

	for (i = 0; i < 3; i++) {
		char *tok = good_token(keys[i]);
		char *copy = strdup(tok);
		int accepted = 0;

		len = strlen(tok);
		for (pos = 0; pos < len; pos++) {
			int k;
			for (k = 0; k < 3; k++) {
				const char *detail;
				char c = alphabet[rng() % (sizeof(alphabet) - 1)];
				if (c == tok[pos]) {
					continue;
				}
				copy[pos] = c;
				if (verify(copy, &detail) == PG_TOKEN_OK) {
					fprintf(stderr, "accepted with [%zu] = '%c': %s\n", pos, c,
					        copy);
					accepted++;
				}
				copy[pos] = tok[pos];
			}
			/* Every prefix is refused too. */
			{
				const char *detail;
				struct pg_token_policy policy = {PG_ALG_ALL, SKEW};
				struct pg_claims cl;
				CHECK(pg_token_verify(kr_all, &policy, tok, pos, NOW, &cl,
				                      &detail) != PG_TOKEN_OK);
			}
		}
		CHECK_EQ(accepted, 0);
		free(copy);
		free(tok);
	}
}

static void test_alg_none_refused(void)
{
	static const char none_payload[] = "{\"sub\":\"alice\",\"exp\":1700003600}";
	char *tok, *signed_tok, buf[1024];

	/* No signature: "h.p." */
	tok = craft("{\"alg\":\"none\"}", none_payload, NULL);
	EXPECT_REFUSED(tok, PG_TOKEN_ALG_REFUSED, "alg \"none\" is refused");
	/* And without the empty signature part: two parts, not a JWS at all. */
	snprintf(buf, sizeof(buf), "%.*s", (int)strlen(tok) - 1, tok);
	EXPECT_REFUSED(buf, PG_TOKEN_MALFORMED, "not a compact JWS");
	free(tok);

	/* With a (valid HS256) signature over it. */
	signed_tok = craft("{\"alg\":\"none\",\"typ\":\"JWT\"}", none_payload, hs_sign);
	EXPECT_REFUSED(signed_tok, PG_TOKEN_ALG_REFUSED, "alg \"none\" is refused");
	free(signed_tok);

	/* Other spellings are not an algorithm pigeon knows. */
	tok = craft("{\"alg\":\"None\"}", none_payload, NULL);
	EXPECT_REFUSED(tok, PG_TOKEN_ALG_REFUSED, "alg is not one pigeon knows");
	free(tok);
	tok = craft("{\"alg\":\"NONE\"}", none_payload, hs_sign);
	EXPECT_REFUSED(tok, PG_TOKEN_ALG_REFUSED, "alg is not one pigeon knows");
	free(tok);
}

static void test_unknown_alg_refused(void)
{
	static const char *const algs[] = {
	    "{\"alg\":\"RS256\"}", "{\"alg\":\"HS512\"}",  "{\"alg\":\"hs256\"}",
	    "{\"alg\":\"\"}",      "{\"alg\":\"ES256K\"}", "{\"alg\":\"Ed25519\"}",
	};
	size_t i;

	for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		EXPECT_CRAFTED(algs[i], CLAIMS_OK, PG_TOKEN_ALG_REFUSED,
		               "alg is not one pigeon knows");
	}
	/* Missing or non-string alg: the header is not a JWS header. */
	EXPECT_CRAFTED("{\"typ\":\"JWT\"}", CLAIMS_OK, PG_TOKEN_MALFORMED, "header has no alg");
	EXPECT_CRAFTED("{\"alg\":256}", CLAIMS_OK, PG_TOKEN_MALFORMED, "header has no alg");
	EXPECT_CRAFTED("{\"alg\":null}", CLAIMS_OK, PG_TOKEN_MALFORMED, "header has no alg");
	EXPECT_CRAFTED("{\"ALG\":\"HS256\"}", CLAIMS_OK, PG_TOKEN_MALFORMED, "header has no alg");
}

static void test_alg_not_configured_refused(void)
{
	char *tok = good_token(ed_sign);
	const char *detail;

	CHECK_EQ(verify_at(kr_all, PG_ALG_HS256 | PG_ALG_ES256, tok, NOW, NULL, &detail),
	         PG_TOKEN_ALG_REFUSED);
	CHECK_STR(detail, "alg is not among the configured jwt_algs");
	/* Configured, but the keyring has no key for it. */
	CHECK_EQ(verify_at(kr_es, PG_ALG_ALL, tok, NOW, NULL, &detail), PG_TOKEN_ALG_REFUSED);
	CHECK_STR(detail, "no key configured for the token's alg");
	free(tok);
}

static void test_hs256_keyed_with_es256_public_key_refused(void)
{
	/*
	 * The classic algorithm confusion: an HS256 token whose HMAC key is the
	 * text of the broker's ES256 public key. A verifier that picked the key
	 * by the token's alg would accept it.
	 */
	struct pg_signkey *forger =
	    pg_signkey_from_secret((const unsigned char *)es_pub_pem, strlen(es_pub_pem));
	char *tok = good_token(forger);
	unsigned char sig[64];
	const char *detail;

	CHECK_EQ(verify_at(kr_es, PG_ALG_ES256, tok, NOW, NULL, &detail), PG_TOKEN_ALG_REFUSED);
	CHECK_STR(detail, "alg is not among the configured jwt_algs");
	/* Even when HS256 is configured, no secret means no HS256 key. */
	CHECK_EQ(verify_at(kr_es, PG_ALG_ALL, tok, NOW, NULL, &detail), PG_TOKEN_ALG_REFUSED);
	CHECK_STR(detail, "no key configured for the token's alg");
	memset(sig, 0, sizeof(sig));
	CHECK_EQ(pg_jws_verify(kr_es, PG_ALG_HS256, (const unsigned char *)"a.b", 3, sig, 32), -2);
	/* And the ES256 key itself does not take the HMAC as a signature. */
	CHECK_EQ(verify_at(kr_all, PG_ALG_ALL, tok, NOW, NULL, &detail), PG_TOKEN_BAD_SIGNATURE);
	free(tok);
	pg_signkey_free(forger);
}

static void test_signature_from_another_key_type_refused(void)
{
	/* An ES256 header over an Ed25519 signature (64 bytes as well). */
	char *h = b64e("{\"alg\":\"ES256\"}"), *p = b64e(CLAIMS_OK);
	char *tok = craft_parts(h, p, ed_sign);
	char zeros[200];
	unsigned char zsig[64];

	EXPECT_REFUSED(tok, PG_TOKEN_BAD_SIGNATURE, "signature does not verify");
	free(tok);
	/* An all-zero ES256 signature (r = s = 0). */
	memset(zsig, 0, sizeof(zsig));
	pg_b64url_encode(zsig, sizeof(zsig), zeros, sizeof(zeros));
	tok = craft_parts(h, p, NULL);
	tok = realloc(tok, strlen(tok) + strlen(zeros) + 1);
	strcat(tok, zeros);
	EXPECT_REFUSED(tok, PG_TOKEN_BAD_SIGNATURE, "signature does not verify");
	free(tok);
	/* An HS256-sized signature under ES256. */
	tok = craft_parts(h, p, hs_sign);
	EXPECT_REFUSED(tok, PG_TOKEN_BAD_SIGNATURE, "signature does not verify");
	free(tok);
	/* An empty signature. */
	free(h);
	h = b64e(HS_HDR);
	tok = craft_parts(h, p, NULL);
	EXPECT_REFUSED(tok, PG_TOKEN_BAD_SIGNATURE, "signature does not verify");
	free(tok);
	free(h);
	free(p);
}

static void test_crit_header_refused(void)
{
	EXPECT_CRAFTED("{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", CLAIMS_OK,
	               PG_TOKEN_MALFORMED, "crit");
	EXPECT_CRAFTED("{\"alg\":\"HS256\",\"crit\":[]}", CLAIMS_OK, PG_TOKEN_MALFORMED, "crit");
}

static void test_time_claims_and_skew(void)
{
	static const struct {
		const char *claims;
		enum pg_token_status status;
		const char *detail;
	} cases[] = {
	    /* exp: refused beyond the skew, accepted within it. */
	    {"{\"sub\":\"a\",\"exp\":1699999969}", PG_TOKEN_EXPIRED, "expired"},
	    {"{\"sub\":\"a\",\"exp\":1699999970}", PG_TOKEN_OK, "ok"},
	    {"{\"sub\":\"a\",\"exp\":1699999999}", PG_TOKEN_OK, "ok"},
	    {"{\"sub\":\"a\",\"exp\":1000}", PG_TOKEN_EXPIRED, "exp is in the past"},
	    /* nbf */
	    {"{\"sub\":\"a\",\"exp\":1700009999,\"nbf\":1700000031}", PG_TOKEN_NOT_YET_VALID,
	     "nbf is in the future"},
	    {"{\"sub\":\"a\",\"exp\":1700009999,\"nbf\":1700000030}", PG_TOKEN_OK, "ok"},
	    {"{\"sub\":\"a\",\"exp\":1700009999,\"nbf\":0}", PG_TOKEN_OK, "ok"},
	    /* iat */
	    {"{\"sub\":\"a\",\"exp\":1700009999,\"iat\":1700000031}", PG_TOKEN_NOT_YET_VALID,
	     "iat"},
	    {"{\"sub\":\"a\",\"exp\":1700009999,\"iat\":1700000030}", PG_TOKEN_OK, "ok"},
	    /* Fractions are allowed (NumericDate), and rounded down. */
	    {"{\"sub\":\"a\",\"exp\":1699999969.9}", PG_TOKEN_EXPIRED, "expired"},
	    {"{\"sub\":\"a\",\"exp\":1699999970.5}", PG_TOKEN_OK, "ok"},
	    /* Not NumericDates. */
	    {"{\"sub\":\"a\",\"exp\":\"1700009999\"}", PG_TOKEN_BAD_CLAIMS,
	     "exp is not a NumericDate"},
	    {"{\"sub\":\"a\",\"exp\":-1}", PG_TOKEN_BAD_CLAIMS, "exp is not a NumericDate"},
	    {"{\"sub\":\"a\",\"exp\":1e300}", PG_TOKEN_BAD_CLAIMS, "exp is not a NumericDate"},
	    {"{\"sub\":\"a\",\"exp\":null}", PG_TOKEN_BAD_CLAIMS, "exp is not a NumericDate"},
	    {"{\"sub\":\"a\",\"exp\":1700009999,\"nbf\":\"x\"}", PG_TOKEN_BAD_CLAIMS,
	     "nbf is not a NumericDate"},
	    {"{\"sub\":\"a\",\"exp\":1700009999,\"iat\":true}", PG_TOKEN_BAD_CLAIMS,
	     "iat is not a NumericDate"},
	    {"{\"sub\":\"a\"}", PG_TOKEN_BAD_CLAIMS, "exp claim missing"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *tok = craft(HS_HDR, cases[i].claims, hs_sign);
		const char *detail;
		enum pg_token_status st = verify(tok, &detail);

		if (st != cases[i].status) {
			fprintf(stderr, "claims %s: %s (%s)\n", cases[i].claims,
			        pg_token_status_name(st), detail);
		}
		CHECK_EQ(st, cases[i].status);
		CHECK_CONTAINS(detail, cases[i].detail);
		free(tok);
	}
}

static void test_skew_is_the_policys(void)
{
	char *tok = craft(HS_HDR, "{\"sub\":\"a\",\"exp\":1700000000,\"nbf\":1700000001}", hs_sign);
	struct pg_token_policy strict = {PG_ALG_HS256, 0};
	struct pg_claims c;
	const char *detail;

	CHECK_EQ(pg_token_verify(kr_all, &strict, tok, strlen(tok), NOW, &c, &detail),
	         PG_TOKEN_NOT_YET_VALID);
	CHECK_EQ(pg_token_verify(kr_all, &strict, tok, strlen(tok), NOW + 1, &c, &detail),
	         PG_TOKEN_EXPIRED);
	CHECK_EQ(verify(tok, &detail), PG_TOKEN_OK);
	free(tok);
}

static void test_bad_claims_refused(void)
{
	static const struct {
		const char *claims, *detail;
	} cases[] = {
	    {"{\"exp\":1700003600}", "sub claim missing"},
	    {"{\"Sub\":\"alice\",\"exp\":1700003600}", "sub claim missing"},
	    {"{\"sub\":\"a b\",\"exp\":1700003600}", "sub is not a valid uid"},
	    {"{\"sub\":\"\",\"exp\":1700003600}", "sub is not a valid uid"},
	    {"{\"sub\":\"alice/inbox\",\"exp\":1700003600}", "sub is not a valid uid"},
	    {"{\"sub\":\"+\",\"exp\":1700003600}", "sub is not a valid uid"},
	    {"{\"sub\":5,\"exp\":1700003600}", "sub is not a valid uid"},
	    {"{\"sub\":null,\"exp\":1700003600}", "sub is not a valid uid"},
	    {"{\"sub\":[\"alice\"],\"exp\":1700003600}", "sub is not a valid uid"},
	    {"{\"sub\":\"sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss\","
	     "\"exp\":1700003600}",
	     "sub is not a valid uid"},
	    {"{\"sub\":\"alice\",\"dev\":\"a:b\",\"exp\":1700003600}", "dev is not a valid device"},
	    {"{\"sub\":\"alice\",\"dev\":\"\",\"exp\":1700003600}", "dev is not a valid device"},
	    {"{\"sub\":\"alice\",\"dev\":7,\"exp\":1700003600}", "dev is not a valid device"},
	    {"{\"sub\":\"alice\",\"role\":\"admin\",\"exp\":1700003600}", "role is neither"},
	    {"{\"sub\":\"alice\",\"role\":\"Service\",\"exp\":1700003600}", "role is neither"},
	    {"{\"sub\":\"alice\",\"role\":1,\"exp\":1700003600}", "role is neither"},
	    {"{\"sub\":\"alice\",\"role\":\"\",\"exp\":1700003600}", "role is neither"},
	    {"{\"sub\":\"alice\",\"jti\":\"\",\"exp\":1700003600}", "jti is not a string"},
	    {"{\"sub\":\"alice\",\"jti\":42,\"exp\":1700003600}", "jti is not a string"},
	};
	char jti_claims[512], jti[PG_JTI_MAX + 2];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		EXPECT_CRAFTED(HS_HDR, cases[i].claims, PG_TOKEN_BAD_CLAIMS, cases[i].detail);
	}
	/* jti: 128 characters is the most. */
	memset(jti, 'j', PG_JTI_MAX + 1);
	jti[PG_JTI_MAX + 1] = '\0';
	snprintf(jti_claims, sizeof(jti_claims),
	         "{\"sub\":\"a\",\"jti\":\"%s\",\"exp\":1700003600}", jti);
	EXPECT_CRAFTED(HS_HDR, jti_claims, PG_TOKEN_BAD_CLAIMS, "jti is not a string of 1-128");
	jti[PG_JTI_MAX] = '\0';
	snprintf(jti_claims, sizeof(jti_claims),
	         "{\"sub\":\"a\",\"jti\":\"%s\",\"exp\":1700003600}", jti);
	EXPECT_CRAFTED(HS_HDR, jti_claims, PG_TOKEN_OK, "ok");
	/* role "user" may be spelt out. */
	{
		char *tok =
		    craft(HS_HDR, "{\"sub\":\"a\",\"role\":\"user\",\"exp\":1700003600}", hs_sign);
		struct pg_claims c;
		const char *detail;
		CHECK_EQ(verify_at(kr_all, PG_ALG_ALL, tok, NOW, &c, &detail), PG_TOKEN_OK);
		CHECK_EQ(c.role, PG_ROLE_USER);
		free(tok);
	}
}

static void test_non_json_parts_refused(void)
{
	char *h = b64e(HS_HDR), *tok;

	/* Header */
	EXPECT_CRAFTED("not json", CLAIMS_OK, PG_TOKEN_MALFORMED, "header is not base64url JSON");
	EXPECT_CRAFTED("[\"alg\",\"HS256\"]", CLAIMS_OK, PG_TOKEN_MALFORMED,
	               "header is not base64url JSON");
	EXPECT_CRAFTED("\"HS256\"", CLAIMS_OK, PG_TOKEN_MALFORMED, "header is not base64url JSON");
	EXPECT_CRAFTED("{\"alg\":\"HS256\"", CLAIMS_OK, PG_TOKEN_MALFORMED,
	               "header is not base64url JSON");
	EXPECT_CRAFTED("", CLAIMS_OK, PG_TOKEN_MALFORMED, "header is not base64url JSON");
	/* A JSON object followed by anything but whitespace is not JSON. */
	EXPECT_CRAFTED(HS_HDR "x", CLAIMS_OK, PG_TOKEN_MALFORMED, "header is not base64url JSON");
	EXPECT_CRAFTED(HS_HDR "{\"alg\":\"none\"}", CLAIMS_OK, PG_TOKEN_MALFORMED,
	               "header is not base64url JSON");
	tok = craft_parts("eyJhbGciOiJIUzI1NiJ9=", "e30", hs_sign);
	EXPECT_REFUSED(tok, PG_TOKEN_MALFORMED, "header is not base64url JSON");
	free(tok);
	tok = craft_parts("eyJhbGciOiJIUzI1NiJ9!", "e30", hs_sign);
	EXPECT_REFUSED(tok, PG_TOKEN_MALFORMED, "header is not base64url JSON");
	free(tok);

	/* Payload (correctly signed, so only the claims are wrong) */
	EXPECT_CRAFTED(HS_HDR, "not json", PG_TOKEN_MALFORMED, "claims are not a base64url JSON");
	EXPECT_CRAFTED(HS_HDR, "[{\"sub\":\"alice\",\"exp\":1700003600}]", PG_TOKEN_MALFORMED,
	               "claims are not a base64url JSON object");
	EXPECT_CRAFTED(HS_HDR, "[]", PG_TOKEN_MALFORMED, "claims are not a base64url JSON object");
	EXPECT_CRAFTED(HS_HDR, "42", PG_TOKEN_MALFORMED, "claims are not a base64url JSON object");
	EXPECT_CRAFTED(HS_HDR, "null", PG_TOKEN_MALFORMED,
	               "claims are not a base64url JSON object");
	EXPECT_CRAFTED(HS_HDR, "", PG_TOKEN_MALFORMED, "claims are not a base64url JSON object");
	EXPECT_CRAFTED(HS_HDR, CLAIMS_OK "x", PG_TOKEN_MALFORMED,
	               "claims are not a base64url JSON object");
	EXPECT_CRAFTED(HS_HDR, CLAIMS_OK "{\"sub\":\"bob\"}", PG_TOKEN_MALFORMED,
	               "claims are not a base64url JSON object");
	/* Whitespace around the JSON is JSON (RFC 7515's examples have CRLFs). */
	EXPECT_CRAFTED(" \r\n" HS_HDR "\r\n", " " CLAIMS_OK "\n\t ", PG_TOKEN_OK, "ok");
	{
		/* A NUL after the object. */
		static const char nul_claims[] = CLAIMS_OK "\0junk";
		char p64[128];
		pg_b64url_encode((const unsigned char *)nul_claims, sizeof(nul_claims) - 1, p64,
		                 sizeof(p64));
		tok = craft_parts(h, p64, hs_sign);
		EXPECT_REFUSED(tok, PG_TOKEN_MALFORMED, "claims are not a base64url JSON object");
		free(tok);
	}
	tok = craft_parts(h, "eyJzdWIiOiJhIn0+", hs_sign);
	EXPECT_REFUSED(tok, PG_TOKEN_MALFORMED, "claims are not a base64url JSON object");
	free(tok);

	/* Signature */
	tok = craft_parts(h, "e30", NULL);
	tok = realloc(tok, strlen(tok) + 8);
	strcat(tok, "abc+def");
	EXPECT_REFUSED(tok, PG_TOKEN_MALFORMED, "signature is not base64url");
	free(tok);
	free(h);
}

static void test_wrong_number_of_parts_refused(void)
{
	char *tok = good_token(hs_sign), buf[2048];

	snprintf(buf, sizeof(buf), "%.*s", (int)(strrchr(tok, '.') - tok), tok);
	EXPECT_REFUSED(buf, PG_TOKEN_MALFORMED, "not a compact JWS");
	snprintf(buf, sizeof(buf), "%s.%s", tok, strrchr(tok, '.') + 1);
	EXPECT_REFUSED(buf, PG_TOKEN_MALFORMED, "not a compact JWS");
	snprintf(buf, sizeof(buf), "%s.", tok);
	EXPECT_REFUSED(buf, PG_TOKEN_MALFORMED, "not a compact JWS");
	EXPECT_REFUSED("abc", PG_TOKEN_MALFORMED, "not a compact JWS");
	EXPECT_REFUSED(".", PG_TOKEN_MALFORMED, "not a compact JWS");
	EXPECT_REFUSED("...", PG_TOKEN_MALFORMED, "not a compact JWS");
	EXPECT_REFUSED("a.b.c.d.e", PG_TOKEN_MALFORMED, "not a compact JWS");
	EXPECT_REFUSED("..", PG_TOKEN_MALFORMED, "header is not base64url JSON");
	/* Whitespace around a good token is not stripped. */
	snprintf(buf, sizeof(buf), " %s", tok);
	EXPECT_REFUSED(buf, PG_TOKEN_MALFORMED, "header is not base64url JSON");
	snprintf(buf, sizeof(buf), "%s\n", tok);
	EXPECT_REFUSED(buf, PG_TOKEN_MALFORMED, "signature is not base64url");
	free(tok);
}

static void test_empty_token_refused(void)
{
	struct pg_token_policy policy = {PG_ALG_ALL, SKEW};
	struct pg_claims c;
	const char *detail = NULL;

	EXPECT_REFUSED("", PG_TOKEN_MALFORMED, "no token");
	CHECK_EQ(pg_token_verify(kr_all, &policy, NULL, 0, NOW, &c, &detail), PG_TOKEN_MALFORMED);
	CHECK_CONTAINS(detail, "no token");
	/* A length of 0 wins over the text. */
	CHECK_EQ(pg_token_verify(kr_all, &policy, "a.b.c", 0, NOW, &c, &detail),
	         PG_TOKEN_MALFORMED);
	CHECK_CONTAINS(detail, "no token");
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void test_one_mebibyte_of_garbage_refused_fast(void)
{
	size_t len = 1u << 20, i;
	char *junk = malloc(len);
	struct pg_token_policy policy = {PG_ALG_ALL, SKEW};
	struct pg_claims c;
	const char *detail = NULL;
	struct timespec t0;

	CHECK(junk != NULL);
	for (i = 0; i < len; i++) {
		junk[i] = (char)rng();
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_EQ(pg_token_verify(kr_all, &policy, junk, len, NOW, &c, &detail), PG_TOKEN_MALFORMED);
	/* Refused on its length, before anything reads it. */
	CHECK(seconds_since(&t0) < 0.05);
	CHECK_STR(detail, "token longer than 4096 bytes");
	free(junk);
}

/* An HS256 token of exactly len bytes (padding the claims), or NULL. */
static char *token_of_length(size_t len)
{
	static char payload[PG_TOKEN_MAX * 2];
	static char hdr[64];
	size_t spaces, pad;

	for (spaces = 0; spaces < 4; spaces++) {
		snprintf(hdr, sizeof(hdr), "{\"alg\":\"HS256\"%*s}", (int)spaces, "");
		for (pad = 0; pad < len; pad++) {
			size_t n = (size_t)snprintf(payload, sizeof(payload),
			                            "{\"sub\":\"alice\",\"exp\":1700003600,"
			                            "\"pad\":\"%*s\"}",
			                            (int)pad, "");
			size_t toklen = (4 * strlen(hdr) + 2) / 3 + 1 + (4 * n + 2) / 3 + 1 + 43;
			if (toklen == len) {
				char *tok = craft(hdr, payload, hs_sign);
				if (strlen(tok) != len) {
					abort();
				}
				return tok;
			}
			if (toklen > len) {
				break;
			}
		}
	}
	return NULL;
}

static void test_size_limit_is_4096_bytes(void)
{
	char *tok;
	const char *detail;

	tok = token_of_length(PG_TOKEN_MAX);
	CHECK(tok != NULL);
	CHECK_EQ(verify(tok, &detail), PG_TOKEN_OK);
	free(tok);
	tok = token_of_length(PG_TOKEN_MAX + 1);
	CHECK(tok != NULL);
	EXPECT_REFUSED(tok, PG_TOKEN_MALFORMED, "token longer than 4096 bytes");
	free(tok);
	/* A well-formed, correctly signed 5000-byte token. */
	tok = token_of_length(5000);
	CHECK(tok != NULL);
	EXPECT_REFUSED(tok, PG_TOKEN_MALFORMED, "token longer than 4096 bytes");
	free(tok);
}

static void test_random_garbage_never_accepted(void)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
	char buf[PG_TOKEN_MAX + 1];
	int round, ok = 0, bad_detail = 0;

	for (round = 0; round < 4000; round++) {
		struct pg_token_policy policy = {PG_ALG_ALL, SKEW};
		struct pg_claims c;
		const char *detail = NULL;
		size_t len = rng() % (round < 3000 ? 300 : PG_TOKEN_MAX + 1), i;
		enum pg_token_status st;

		for (i = 0; i < len; i++) {
			buf[i] = round % 2 ? (char)rng() : alphabet[rng() % (sizeof(alphabet) - 1)];
		}
		/* Make most of them three parts. */
		if (len > 10 && round % 4 == 0) {
			buf[len / 3] = '.';
			buf[2 * len / 3] = '.';
		}
		st = pg_token_verify(kr_all, &policy, buf, len, NOW, &c, &detail);
		ok += st == PG_TOKEN_OK;
		bad_detail += detail == NULL || detail[0] == '\0' ||
		              strcmp(pg_token_status_name(st), "unknown") == 0;
	}
	CHECK_EQ(ok, 0);
	CHECK_EQ(bad_detail, 0);
}

static void test_status_names(void)
{
	CHECK_STR(pg_token_status_name(PG_TOKEN_OK), "ok");
	CHECK_STR(pg_token_status_name(PG_TOKEN_MALFORMED), "malformed");
	CHECK_STR(pg_token_status_name(PG_TOKEN_ALG_REFUSED), "algorithm refused");
	CHECK_STR(pg_token_status_name(PG_TOKEN_BAD_SIGNATURE), "bad signature");
	CHECK_STR(pg_token_status_name(PG_TOKEN_EXPIRED), "expired");
	CHECK_STR(pg_token_status_name(PG_TOKEN_NOT_YET_VALID), "not yet valid");
	CHECK_STR(pg_token_status_name(PG_TOKEN_BAD_CLAIMS), "bad claims");
	CHECK_STR(pg_token_status_name((enum pg_token_status)99), "unknown");
}

/* ---- keys and algorithm names ---- */

static void test_alg_names_and_lists(void)
{
	unsigned set = 0;
	char err[200] = "";

	CHECK_STR(pg_alg_name(PG_ALG_HS256), "HS256");
	CHECK_STR(pg_alg_name(PG_ALG_ES256), "ES256");
	CHECK_STR(pg_alg_name(PG_ALG_EDDSA), "EdDSA");
	CHECK_STR(pg_alg_name(0), "?");
	CHECK_STR(pg_alg_name(PG_ALG_ALL), "?");
	CHECK_EQ(pg_alg_from_name("EdDSA", 5), PG_ALG_EDDSA);
	/* Only len bytes count. */
	CHECK_EQ(pg_alg_from_name("HS256xyz", 5), PG_ALG_HS256);
	CHECK_EQ(pg_alg_from_name("HS256", 4), 0);
	CHECK_EQ(pg_alg_from_name("HS256x", 6), 0);
	CHECK_EQ(pg_alg_from_name("eddsa", 5), 0);
	CHECK_EQ(pg_alg_from_name("none", 4), 0);

	CHECK_EQ(pg_alg_parse_list("HS256,EdDSA", &set, err, sizeof(err)), 0);
	CHECK_EQ(set, PG_ALG_HS256 | PG_ALG_EDDSA);
	CHECK_EQ(pg_alg_parse_list(" ES256 , HS256,,EdDSA ", &set, err, sizeof(err)), 0);
	CHECK_EQ(set, PG_ALG_ALL);
	CHECK_EQ(pg_alg_parse_list("ES256", &set, err, sizeof(err)), 0);
	CHECK_EQ(set, PG_ALG_ES256);
	set = 12345;
	CHECK_EQ(pg_alg_parse_list("", &set, err, sizeof(err)), PG_ERR_INVALID);
	CHECK_CONTAINS(err, "no JWT algorithm");
	CHECK_EQ(set, 12345);
	CHECK_EQ(pg_alg_parse_list(" , ", &set, err, sizeof(err)), PG_ERR_INVALID);
	CHECK_CONTAINS(err, "no JWT algorithm");
	CHECK_EQ(pg_alg_parse_list("HS256,RS256", &set, err, sizeof(err)), PG_ERR_INVALID);
	CHECK_CONTAINS(err, "unknown JWT algorithm 'RS256'");
	CHECK_EQ(pg_alg_parse_list("none", &set, err, sizeof(err)), PG_ERR_INVALID);
	CHECK_CONTAINS(err, "'none'");
}

static void test_keyring_loading(void)
{
	char err[200], *rsa_pem, *p384_pem, *priv_pem, *many;
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	struct pg_keyring *kr = pg_keyring_new();
	size_t i, len;

	CHECK(rsa != NULL && p384 != NULL && kr != NULL);
	CHECK_EQ(pg_keyring_algs(kr), 0);
	CHECK_EQ(pg_keyring_set_secret(kr, (const unsigned char *)"x", 0), PG_ERR_INVALID);
	CHECK_EQ(pg_keyring_algs(kr), 0);
	CHECK_EQ(pg_keyring_set_secret(kr, (const unsigned char *)"s1", 2), 0);
	CHECK_EQ(pg_keyring_set_secret(kr, (const unsigned char *)"s2", 2), 0);
	CHECK_EQ(pg_keyring_algs(kr), PG_ALG_HS256);

	/* Two blocks in one text, of two kinds. */
	{
		char two[8192];
		snprintf(two, sizeof(two), "# keys\n%s\n%s", es_pub_pem, ed_pub_pem);
		CHECK_EQ(pg_keyring_add_public_pem(kr, two, strlen(two), err, sizeof(err)), 2);
		CHECK_EQ(pg_keyring_algs(kr), PG_ALG_ALL);
	}
	pg_keyring_free(kr);

	rsa_pem = pem_of(rsa, 0);
	p384_pem = pem_of(p384, 0);
	priv_pem = pem_of(es_key, 1);
	kr = pg_keyring_new();
	err[0] = '\0';
	CHECK_EQ(pg_keyring_add_public_pem(kr, rsa_pem, strlen(rsa_pem), err, sizeof(err)), -1);
	CHECK_CONTAINS(err, "neither P-256 (ES256) nor Ed25519 (EdDSA)");
	err[0] = '\0';
	CHECK_EQ(pg_keyring_add_public_pem(kr, p384_pem, strlen(p384_pem), err, sizeof(err)), -1);
	CHECK_CONTAINS(err, "neither P-256");
	err[0] = '\0';
	CHECK_EQ(pg_keyring_add_public_pem(kr, "hello", 5, err, sizeof(err)), -1);
	CHECK_CONTAINS(err, "no PEM public key found");
	err[0] = '\0';
	CHECK_EQ(pg_keyring_add_public_pem(kr, "", 0, err, sizeof(err)), -1);
	CHECK_CONTAINS(err, "no PEM public key found");
	err[0] = '\0';
	CHECK_EQ(pg_keyring_add_public_pem(kr, priv_pem, strlen(priv_pem), err, sizeof(err)), -1);
	CHECK_CONTAINS(err, "no PEM public key found");
	/* A truncated PEM block. */
	err[0] = '\0';
	CHECK_EQ(
	    pg_keyring_add_public_pem(kr, es_pub_pem, strlen(es_pub_pem) / 2, err, sizeof(err)),
	    -1);
	CHECK_CONTAINS(err, "no PEM public key found");
	CHECK_EQ(pg_keyring_algs(kr), 0);

	/* At most 16 keys. */
	len = strlen(es_pub_pem);
	many = malloc(len * 17 + 1);
	for (i = 0; i < 17; i++) {
		memcpy(many + i * len, es_pub_pem, len);
	}
	many[len * 17] = '\0';
	err[0] = '\0';
	CHECK_EQ(pg_keyring_add_public_pem(kr, many, len * 17, err, sizeof(err)), -1);
	CHECK_CONTAINS(err, "more than 16 public keys");
	pg_keyring_free(kr);
	kr = pg_keyring_new();
	CHECK_EQ(pg_keyring_add_public_pem(kr, many, len * 16, err, sizeof(err)), 16);
	pg_keyring_free(kr);
	pg_keyring_free(NULL);

	free(many);
	free(rsa_pem);
	free(p384_pem);
	free(priv_pem);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(p384);
}

static void test_signkey_loading(void)
{
	char err[200], *pem;
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	struct pg_signkey *k;

	err[0] = '\0';
	CHECK(pg_signkey_from_pem(es_pub_pem, strlen(es_pub_pem), err, sizeof(err)) == NULL);
	CHECK_CONTAINS(err, "no PEM private key found");
	err[0] = '\0';
	CHECK(pg_signkey_from_pem("garbage", 7, err, sizeof(err)) == NULL);
	CHECK_CONTAINS(err, "no PEM private key found");
	pem = pem_of(p384, 1);
	err[0] = '\0';
	CHECK(pg_signkey_from_pem(pem, strlen(pem), err, sizeof(err)) == NULL);
	CHECK_CONTAINS(err, "neither P-256 (ES256) nor Ed25519 (EdDSA)");
	free(pem);
	CHECK_EQ(pg_signkey_alg(es_sign), PG_ALG_ES256);
	CHECK_EQ(pg_signkey_alg(ed_sign), PG_ALG_EDDSA);
	CHECK_EQ(pg_signkey_alg(hs_sign), PG_ALG_HS256);
	CHECK(pg_signkey_from_secret((const unsigned char *)"", 0) == NULL);
	k = pg_signkey_from_secret((const unsigned char *)"k", 1);
	CHECK(k != NULL);
	pg_signkey_free(k);
	pg_signkey_free(NULL);
	EVP_PKEY_free(p384);
}

static void setup(void)
{
	es_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	es_key2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ed_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (es_key == NULL || es_key2 == NULL || ed_key == NULL) {
		fprintf(stderr, "key generation failed\n");
		abort();
	}
	es_pub_pem = pem_of(es_key, 0);
	es2_pub_pem = pem_of(es_key2, 0);
	ed_pub_pem = pem_of(ed_key, 0);
	hs_sign = pg_signkey_from_secret((const unsigned char *)hs_secret, strlen(hs_secret));
	es_sign = signkey_of(es_key);
	es2_sign = signkey_of(es_key2);
	ed_sign = signkey_of(ed_key);

	kr_all = keyring_of(es_pub_pem);
	{
		char err[200];
		if (pg_keyring_add_public_pem(kr_all, ed_pub_pem, strlen(ed_pub_pem), err,
		                              sizeof(err)) != 1 ||
		    pg_keyring_set_secret(kr_all, (const unsigned char *)hs_secret,
		                          strlen(hs_secret)) != 0) {
			abort();
		}
	}
	kr_es = keyring_of(es_pub_pem);
}

static void teardown(void)
{
	pg_keyring_free(kr_all);
	pg_keyring_free(kr_es);
	pg_signkey_free(hs_sign);
	pg_signkey_free(es_sign);
	pg_signkey_free(es2_sign);
	pg_signkey_free(ed_sign);
	free(es_pub_pem);
	free(es2_pub_pem);
	free(ed_pub_pem);
	EVP_PKEY_free(es_key);
	EVP_PKEY_free(es_key2);
	EVP_PKEY_free(ed_key);
}

int main(void)
{
	setup();
	RUN(test_rfc7515_a1_hs256);
	RUN(test_rfc7515_a3_es256);
	RUN(test_rfc8037_a4_eddsa);
	RUN(test_round_trip_hs256_all_claims);
	RUN(test_round_trip_es256_all_claims);
	RUN(test_round_trip_eddsa_all_claims);
	RUN(test_round_trip_minimal_claims_defaults);
	RUN(test_round_trip_longest_identifiers_and_jti);
	RUN(test_key_rotation_any_key_of_the_alg_verifies);
	RUN(test_tampered_header_payload_signature_refused);
	RUN(test_every_single_character_change_refused);
	RUN(test_alg_none_refused);
	RUN(test_unknown_alg_refused);
	RUN(test_alg_not_configured_refused);
	RUN(test_hs256_keyed_with_es256_public_key_refused);
	RUN(test_signature_from_another_key_type_refused);
	RUN(test_crit_header_refused);
	RUN(test_time_claims_and_skew);
	RUN(test_skew_is_the_policys);
	RUN(test_bad_claims_refused);
	RUN(test_non_json_parts_refused);
	RUN(test_wrong_number_of_parts_refused);
	RUN(test_empty_token_refused);
	RUN(test_one_mebibyte_of_garbage_refused_fast);
	RUN(test_size_limit_is_4096_bytes);
	RUN(test_random_garbage_never_accepted);
	RUN(test_status_names);
	RUN(test_alg_names_and_lists);
	RUN(test_keyring_loading);
	RUN(test_signkey_loading);
	teardown();
	return check_exit();
}
