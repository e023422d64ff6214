/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The signatures pigeon makes for push providers (broker/push/jwt_sign.c):
 * ES256 JWTs whose signature is 64 raw bytes r||s that verify under the
 * public key (converted back to DER here, as a verifier would), over many
 * signatures so short r or s values are covered; RS256 JWTs that verify;
 * the header and claims as given; key loading (.p8 PKCS#8 PEM, wrong key
 * types, encrypted keys refused without a prompt, files);
 * HMAC-SHA256 against RFC 4231 test case 2.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cjson/cJSON.h>

#include "b64url.h"
#include "check.h"
#include "jwt_sign.h"
#include "pem.h"

static EVP_PKEY *ec_key, *rsa_key;
static char *ec_pem, *rsa_pem;

/* The three parts of a compact JWS, decoded; signature bytes in sig. */
struct jwt_parts {
	char header[512];
	char claims[1024];
	unsigned char sig[600];
	size_t siglen;
	size_t signed_len; /* header.claims */
};

static int jwt_split(const char *jwt, struct jwt_parts *p)
{
	const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	size_t n;

	memset(p, 0, sizeof(*p));
	if (d2 == NULL || strchr(d2 + 1, '.') != NULL) {
		return -1;
	}
	if (pg_b64url_decode(jwt, (size_t)(d1 - jwt), (unsigned char *)p->header,
	                     sizeof(p->header) - 1, &n) != 0) {
		return -1;
	}
	if (pg_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), (unsigned char *)p->claims,
	                     sizeof(p->claims) - 1, &n) != 0) {
		return -1;
	}
	if (pg_b64url_decode(d2 + 1, strlen(d2 + 1), p->sig, sizeof(p->sig), &p->siglen) != 0) {
		return -1;
	}
	p->signed_len = (size_t)(d2 - jwt);
	return 0;
}

/* Verifies an ES256 r||s signature by turning it into DER, as OpenSSL wants it. */
static int verify_es256(EVP_PKEY *pub, const char *input, size_t len, const unsigned char *sig)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
	unsigned char *der = NULL;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int derlen, ok = 0;

	if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
		abort();
	}
	derlen = i2d_ECDSA_SIG(es, &der);
	ok = derlen > 0 && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) == 1 &&
	     EVP_DigestVerify(ctx, der, (size_t)derlen, (const unsigned char *)input, len) == 1;
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(ctx);
	return ok;
}

static int verify_rs256(EVP_PKEY *pub, const char *input, size_t len, const unsigned char *sig,
                        size_t siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) == 1 &&
	         EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)input, len) == 1;

	EVP_MD_CTX_free(ctx);
	return ok;
}

static void test_es256_signature_is_raw_r_s_and_verifies(void)
{
	char err[200] = "";
	struct pg_push_jwt_key *key =
	    pg_push_jwt_key_from_pem(ec_pem, strlen(ec_pem), PG_PUSH_JWT_ES256, err, sizeof(err));
	struct jwt_parts p;
	int i, bad = 0;

	CHECK(key != NULL);
	/* many signatures: some have an r or s with leading zero bytes, which
	 * DER shortens and the raw form must pad back to 32 */
	for (i = 0; i < 200; i++) {
		char *jwt = pg_push_jwt_sign(key, "ABC123DEFG",
		                             "{\"iss\":\"TEAM123456\",\"iat\":1700000000}", err,
		                             sizeof(err));
		if (jwt == NULL || jwt_split(jwt, &p) != 0 || p.siglen != 64 ||
		    !verify_es256(ec_key, jwt, p.signed_len, p.sig)) {
			bad++;
		}
		if (i == 0) {
			CHECK(jwt != NULL);
			CHECK_STR(p.header, "{\"alg\":\"ES256\",\"kid\":\"ABC123DEFG\"}");
			CHECK_STR(p.claims, "{\"iss\":\"TEAM123456\",\"iat\":1700000000}");
			CHECK_EQ(p.siglen, 64);
			/* a flipped byte does not verify */
			p.sig[10] ^= 1;
			CHECK(!verify_es256(ec_key, jwt, p.signed_len, p.sig));
		}
		free(jwt);
	}
	CHECK_EQ(bad, 0);
	pg_push_jwt_key_free(key);
}

static void test_rs256_verifies(void)
{
	char err[200] = "";
	struct pg_push_jwt_key *key =
	    pg_push_jwt_key_from_pem(rsa_pem, strlen(rsa_pem), PG_PUSH_JWT_RS256, err, sizeof(err));
	struct jwt_parts p;
	char *jwt;
	cJSON *h;

	CHECK(key != NULL);
	jwt = pg_push_jwt_sign(key, "kid-1", "{\"iss\":\"a@b.iam.gserviceaccount.com\"}", err,
	                       sizeof(err));
	CHECK(jwt != NULL);
	CHECK_EQ(jwt_split(jwt, &p), 0);
	h = cJSON_Parse(p.header);
	CHECK_STR(cJSON_GetObjectItem(h, "alg")->valuestring, "RS256");
	CHECK_STR(cJSON_GetObjectItem(h, "typ")->valuestring, "JWT");
	CHECK_STR(cJSON_GetObjectItem(h, "kid")->valuestring, "kid-1");
	cJSON_Delete(h);
	CHECK_EQ(p.siglen, 256);
	CHECK(verify_rs256(rsa_key, jwt, p.signed_len, p.sig, p.siglen));
	p.sig[0] ^= 0x80;
	CHECK(!verify_rs256(rsa_key, jwt, p.signed_len, p.sig, p.siglen));
	free(jwt);
	/* no kid: none in the header */
	jwt = pg_push_jwt_sign(key, NULL, "{}", err, sizeof(err));
	CHECK(jwt != NULL && jwt_split(jwt, &p) == 0);
	CHECK(strstr(p.header, "kid") == NULL);
	free(jwt);
	pg_push_jwt_key_free(key);
}

static void test_key_types_are_checked(void)
{
	char err[200] = "";
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	EVP_PKEY *rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	char *p384_pem = pem_of(p384, 1), *rsa1024_pem = pem_of(rsa1024, 1);

	CHECK(pg_push_jwt_key_from_pem(rsa_pem, strlen(rsa_pem), PG_PUSH_JWT_ES256, err,
	                               sizeof(err)) == NULL);
	CHECK_CONTAINS(err, "P-256");
	CHECK(pg_push_jwt_key_from_pem(p384_pem, strlen(p384_pem), PG_PUSH_JWT_ES256, err,
	                               sizeof(err)) == NULL);
	CHECK_CONTAINS(err, "P-256");
	CHECK(pg_push_jwt_key_from_pem(ec_pem, strlen(ec_pem), PG_PUSH_JWT_RS256, err,
	                               sizeof(err)) == NULL);
	CHECK_CONTAINS(err, "RSA");
	CHECK(pg_push_jwt_key_from_pem(rsa1024_pem, strlen(rsa1024_pem), PG_PUSH_JWT_RS256, err,
	                               sizeof(err)) == NULL);
	CHECK_CONTAINS(err, "2048");
	CHECK(pg_push_jwt_key_from_pem("garbage", 7, PG_PUSH_JWT_ES256, err, sizeof(err)) == NULL);
	CHECK_CONTAINS(err, "PRIVATE KEY");
	/* a public key is not a private key */
	{
		char *pub = pem_of(ec_key, 0);
		CHECK(pg_push_jwt_key_from_pem(pub, strlen(pub), PG_PUSH_JWT_ES256, err,
		                               sizeof(err)) == NULL);
		free(pub);
	}
	free(p384_pem);
	free(rsa1024_pem);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(rsa1024);
}

static void test_encrypted_key_refused_without_prompt(void)
{
	char err[200] = "", *data;
	BIO *bio = BIO_new(BIO_s_mem());
	long len;

	CHECK(PEM_write_bio_PKCS8PrivateKey(bio, ec_key, EVP_aes_256_cbc(), NULL, 0, NULL,
	                                    (void *)"passphrase") == 1);
	len = BIO_get_mem_data(bio, &data);
	CHECK(pg_push_jwt_key_from_pem(data, (size_t)len, PG_PUSH_JWT_ES256, err, sizeof(err)) ==
	      NULL);
	CHECK_CONTAINS(err, "unencrypted");
	BIO_free(bio);
}

static void test_key_files(void)
{
	char dir[] = "/tmp/pigeon-jwt-XXXXXX", path[64], err[300] = "";
	struct pg_push_jwt_key *key;
	FILE *f;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/AuthKey_ABC123DEFG.p8", dir);
	f = fopen(path, "w");
	fputs(ec_pem, f);
	fclose(f);
	key = pg_push_jwt_key_load(path, PG_PUSH_JWT_ES256, err, sizeof(err));
	CHECK(key != NULL);
	pg_push_jwt_key_free(key);
	key = pg_push_jwt_key_load(path, PG_PUSH_JWT_RS256, err, sizeof(err));
	CHECK(key == NULL);
	CHECK_CONTAINS(err, path);
	unlink(path);
	key = pg_push_jwt_key_load(path, PG_PUSH_JWT_ES256, err, sizeof(err));
	CHECK(key == NULL);
	CHECK_CONTAINS(err, "No such file");
	key = pg_push_jwt_key_load(dir, PG_PUSH_JWT_ES256, err, sizeof(err));
	CHECK(key == NULL);
	CHECK_CONTAINS(err, "not a regular file");
	rmdir(dir);
}

static void test_hmac_sha256_rfc4231_case_2(void)
{
	char hex[65];
	const char *data = "what do ya want for nothing?";

	CHECK_EQ(pg_push_hmac_sha256_hex("Jefe", 4, data, strlen(data), hex), 0);
	CHECK_STR(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

int main(void)
{
	ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	if (ec_key == NULL || rsa_key == NULL) {
		return 2;
	}
	/* PEM_write_bio_PrivateKey writes PKCS#8, the .p8 form */
	ec_pem = pem_of(ec_key, 1);
	rsa_pem = pem_of(rsa_key, 1);
	RUN(test_es256_signature_is_raw_r_s_and_verifies);
	RUN(test_rs256_verifies);
	RUN(test_key_types_are_checked);
	RUN(test_encrypted_key_refused_without_prompt);
	RUN(test_key_files);
	RUN(test_hmac_sha256_rfc4231_case_2);
	free(ec_pem);
	free(rsa_pem);
	EVP_PKEY_free(ec_key);
	EVP_PKEY_free(rsa_key);
	return check_exit();
}
