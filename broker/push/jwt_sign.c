/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JWT signing over OpenSSL 3 EVP (jwt_sign.h).
 *
 * ES256: OpenSSL's ECDSA answers a DER ECDSA-Sig-Value, whose integers
 * drop leading zeros and may carry a sign byte, while JWS wants r and s as
 * fixed 32-byte big-endian numbers side by side (RFC 7518 §3.4); so the
 * DER goes through ECDSA_SIG and BN_bn2binpad. Apple refuses a DER
 * signature. RS256 signatures are used as OpenSSL gives them.
 */
#include "jwt_sign.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <cjson/cJSON.h>

#include "b64url.h"
#include "provider.h"

/* Key files are small; anything larger is not a key. */
#define JWT_KEY_FILE_MAX (64 * 1024)
/* RSA signatures up to 8192 bits */
#define JWT_SIG_MAX 1024

struct pg_push_jwt_key {
	enum pg_push_jwt_alg alg;
	EVP_PKEY *pkey;
};

/* PEM passphrase callback: never prompt on the broker's terminal. */
static int jwt_no_passphrase(char *buf, int size, int rwflag, void *ud)
{
	return -1;
}

/* Whether pkey fits alg; a description of what is wrong in err otherwise. */
static int jwt_key_check(EVP_PKEY *pkey, enum pg_push_jwt_alg alg, char *err, size_t errlen)
{
	char group[32];

	if (alg == PG_PUSH_JWT_ES256) {
		if (!EVP_PKEY_is_a(pkey, "EC") ||
		    EVP_PKEY_get_utf8_string_param(pkey, "group", group, sizeof(group), NULL) !=
		        1 ||
		    (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0)) {
			snprintf(err, errlen, "the key is not an EC P-256 key (ES256)");
			return -1;
		}
		return 0;
	}
	if (!EVP_PKEY_is_a(pkey, "RSA")) {
		snprintf(err, errlen, "the key is not an RSA key (RS256)");
		return -1;
	}
	if (EVP_PKEY_get_bits(pkey) < 2048) {
		snprintf(err, errlen, "the RSA key has %d bits; RS256 needs 2048 or more",
		         EVP_PKEY_get_bits(pkey));
		return -1;
	}
	return 0;
}

struct pg_push_jwt_key *pg_push_jwt_key_from_pem(const char *pem, size_t len,
                                                 enum pg_push_jwt_alg alg, char *err, size_t errlen)
{
	struct pg_push_jwt_key *key;
	EVP_PKEY *pkey;
	BIO *bio;

	if (len > JWT_KEY_FILE_MAX) {
		snprintf(err, errlen, "the key is larger than %d bytes", JWT_KEY_FILE_MAX);
		return NULL;
	}
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, jwt_no_passphrase, NULL);
	BIO_free(bio);
	if (pkey == NULL) {
		snprintf(
		    err, errlen,
		    "no unencrypted PEM private key found (expected -----BEGIN PRIVATE KEY-----)");
		return NULL;
	}
	if (jwt_key_check(pkey, alg, err, errlen) != 0) {
		EVP_PKEY_free(pkey);
		return NULL;
	}
	key = calloc(1, sizeof(*key));
	if (key == NULL) {
		EVP_PKEY_free(pkey);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	key->alg = alg;
	key->pkey = pkey;
	return key;
}

struct pg_push_jwt_key *pg_push_jwt_key_load(const char *path, enum pg_push_jwt_alg alg, char *err,
                                             size_t errlen)
{
	struct pg_push_jwt_key *key;
	char why[200];
	size_t len;
	char *pem = pg_push_read_file(path, JWT_KEY_FILE_MAX, &len, err, errlen);

	if (pem == NULL) {
		return NULL;
	}
	key = pg_push_jwt_key_from_pem(pem, len, alg, why, sizeof(why));
	OPENSSL_cleanse(pem, len);
	free(pem);
	if (key == NULL) {
		snprintf(err, errlen, "%s: %s", path, why);
	}
	return key;
}

void pg_push_jwt_key_free(struct pg_push_jwt_key *key)
{
	if (key == NULL) {
		return;
	}
	EVP_PKEY_free(key->pkey);
	free(key);
}

/* Appends the base64url of data at out + *used (cap bytes in all). 0 or -1. */
static int jwt_append_b64(char *out, size_t cap, size_t *used, const void *data, size_t len)
{
	int n = pg_b64url_encode(data, len, out + *used, cap - *used);

	if (n < 0) {
		return -1;
	}
	*used += (size_t)n;
	return 0;
}

/* The JWS signature of input into sig (JWT_SIG_MAX bytes); its length, or -1. */
static int jwt_signature(const struct pg_push_jwt_key *key, const char *input, size_t inlen,
                         unsigned char *sig)
{
	unsigned char der[80];
	size_t len = key->alg == PG_PUSH_JWT_ES256 ? sizeof(der) : JWT_SIG_MAX;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	ECDSA_SIG *es = NULL;
	const unsigned char *p = der;
	int n = -1;

	if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key->pkey) != 1 ||
	    EVP_DigestSign(ctx, key->alg == PG_PUSH_JWT_ES256 ? der : sig, &len,
	                   (const unsigned char *)input, inlen) != 1) {
		goto out;
	}
	if (key->alg == PG_PUSH_JWT_RS256) {
		n = (int)len;
		goto out;
	}
	es = d2i_ECDSA_SIG(NULL, &p, (long)len);
	if (es != NULL && BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32) == 32 &&
	    BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32) == 32) {
		n = 64;
	}
out:
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(ctx);
	return n;
}

char *pg_push_jwt_sign(const struct pg_push_jwt_key *key, const char *kid, const char *claims_json,
                       char *err, size_t errlen)
{
	unsigned char sig[JWT_SIG_MAX];
	cJSON *hdr = cJSON_CreateObject();
	char *hdr_json = NULL, *tok = NULL;
	size_t hlen, clen, cap, used = 0;
	int siglen;

	if (hdr == NULL ||
	    !cJSON_AddStringToObject(hdr, "alg",
	                             key->alg == PG_PUSH_JWT_ES256 ? "ES256" : "RS256") ||
	    (key->alg == PG_PUSH_JWT_RS256 && !cJSON_AddStringToObject(hdr, "typ", "JWT")) ||
	    (kid && *kid && !cJSON_AddStringToObject(hdr, "kid", kid)) ||
	    (hdr_json = cJSON_PrintUnformatted(hdr)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	hlen = strlen(hdr_json);
	clen = strlen(claims_json);
	cap = PG_B64URL_ENCODED_MAX(hlen) + PG_B64URL_ENCODED_MAX(clen) +
	      PG_B64URL_ENCODED_MAX(JWT_SIG_MAX) + 2;
	tok = malloc(cap);
	if (tok == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (jwt_append_b64(tok, cap, &used, hdr_json, hlen) != 0) {
		goto encode_fail;
	}
	tok[used++] = '.';
	if (jwt_append_b64(tok, cap, &used, claims_json, clen) != 0) {
		goto encode_fail;
	}
	siglen = jwt_signature(key, tok, used, sig);
	if (siglen < 0) {
		snprintf(err, errlen, "signing the JWT failed (OpenSSL)");
		goto fail;
	}
	tok[used++] = '.';
	if (jwt_append_b64(tok, cap, &used, sig, (size_t)siglen) != 0) {
		goto encode_fail;
	}
	cJSON_Delete(hdr);
	free(hdr_json);
	return tok;
encode_fail:
	snprintf(err, errlen, "JWT encoding failed");
fail:
	cJSON_Delete(hdr);
	free(hdr_json);
	free(tok);
	return NULL;
}

int pg_push_hmac_sha256_hex(const void *key, size_t keylen, const void *data, size_t len,
                            char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char mac[32];
	unsigned int maclen = 0;
	int i;

	if (keylen > 0x7fffffff ||
	    HMAC(EVP_sha256(), key, (int)keylen, data, len, mac, &maclen) == NULL || maclen != 32) {
		return -1;
	}
	for (i = 0; i < 32; i++) {
		hex[2 * i] = digits[mac[i] >> 4];
		hex[2 * i + 1] = digits[mac[i] & 15];
	}
	hex[64] = '\0';
	return 0;
}
