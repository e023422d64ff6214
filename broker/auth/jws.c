/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JWS signing and verification over OpenSSL 3 EVP.
 *
 * ES256 signatures travel as the fixed-size concatenation r||s (RFC 7518
 * §3.4) while OpenSSL speaks DER ECDSA-Sig-Value, so both directions convert
 * through ECDSA_SIG. HS256 compares MACs in constant time.
 */
#include "jws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#define KEYRING_MAX_KEYS 16

struct pg_keyring {
	unsigned char *secret;
	size_t secret_len;
	EVP_PKEY *keys[KEYRING_MAX_KEYS];
	unsigned key_alg[KEYRING_MAX_KEYS];
	int nkeys;
};

struct pg_signkey {
	unsigned alg;
	unsigned char *secret;
	size_t secret_len;
	EVP_PKEY *pkey;
};

static const struct {
	const char *name;
	unsigned alg;
} jws_algs[] = {
    {"HS256", PG_ALG_HS256},
    {"ES256", PG_ALG_ES256},
    {"EdDSA", PG_ALG_EDDSA},
};

const char *pg_alg_name(unsigned alg)
{
	size_t i;

	for (i = 0; i < sizeof(jws_algs) / sizeof(jws_algs[0]); i++) {
		if (jws_algs[i].alg == alg) {
			return jws_algs[i].name;
		}
	}
	return "?";
}

unsigned pg_alg_from_name(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(jws_algs) / sizeof(jws_algs[0]); i++) {
		if (strlen(jws_algs[i].name) == len && memcmp(jws_algs[i].name, name, len) == 0) {
			return jws_algs[i].alg;
		}
	}
	return 0;
}

int pg_alg_parse_list(const char *list, unsigned *out, char *err, size_t errlen)
{
	const char *p = list;
	unsigned set = 0;

	while (*p) {
		const char *start, *end;
		unsigned alg;

		while (*p == ' ' || *p == ',') {
			p++;
		}
		if (*p == '\0') {
			break;
		}
		start = p;
		while (*p && *p != ',' && *p != ' ') {
			p++;
		}
		end = p;
		alg = pg_alg_from_name(start, (size_t)(end - start));
		if (alg == 0) {
			snprintf(err, errlen,
			         "unknown JWT algorithm '%.*s' (known: HS256, ES256, EdDSA)",
			         (int)(end - start), start);
			return PG_ERR_INVALID;
		}
		set |= alg;
	}
	if (set == 0) {
		snprintf(err, errlen, "no JWT algorithm given");
		return PG_ERR_INVALID;
	}
	*out = set;
	return PG_OK;
}

struct pg_keyring *pg_keyring_new(void)
{
	return calloc(1, sizeof(struct pg_keyring));
}

void pg_keyring_free(struct pg_keyring *kr)
{
	int i;

	if (kr == NULL) {
		return;
	}
	if (kr->secret) {
		OPENSSL_cleanse(kr->secret, kr->secret_len);
		free(kr->secret);
	}
	for (i = 0; i < kr->nkeys; i++) {
		EVP_PKEY_free(kr->keys[i]);
	}
	free(kr);
}

static unsigned char *jws_dup_secret(const unsigned char *secret, size_t len)
{
	unsigned char *copy;

	if (len == 0) {
		return NULL;
	}
	copy = malloc(len);
	if (copy) {
		memcpy(copy, secret, len);
	}
	return copy;
}

int pg_keyring_set_secret(struct pg_keyring *kr, const unsigned char *secret, size_t len)
{
	unsigned char *copy;

	if (len == 0) {
		return PG_ERR_INVALID;
	}
	copy = jws_dup_secret(secret, len);
	if (copy == NULL) {
		return PG_ERR_NOMEM;
	}
	if (kr->secret) {
		OPENSSL_cleanse(kr->secret, kr->secret_len);
		free(kr->secret);
	}
	kr->secret = copy;
	kr->secret_len = len;
	return PG_OK;
}

/* Which JWS algorithm a key serves: ES256 for P-256, EdDSA for Ed25519, else 0. */
static unsigned jws_key_alg(EVP_PKEY *pkey)
{
	char group[32];

	if (EVP_PKEY_is_a(pkey, "ED25519")) {
		return PG_ALG_EDDSA;
	}
	if (EVP_PKEY_is_a(pkey, "EC") &&
	    EVP_PKEY_get_utf8_string_param(pkey, "group", group, sizeof(group), NULL) == 1 &&
	    (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)) {
		return PG_ALG_ES256;
	}
	return 0;
}

int pg_keyring_add_public_pem(struct pg_keyring *kr, const char *pem, size_t len, char *err,
                              size_t errlen)
{
	BIO *bio;
	EVP_PKEY *pkey;
	int added = 0;

	if (len > 1 << 20) {
		snprintf(err, errlen, "public key file is larger than 1 MiB");
		return -1;
	}
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	while ((pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL)) != NULL) {
		unsigned alg = jws_key_alg(pkey);
		if (alg == 0) {
			snprintf(err, errlen,
			         "public key is neither P-256 (ES256) nor Ed25519 (EdDSA)");
			EVP_PKEY_free(pkey);
			BIO_free(bio);
			return -1;
		}
		if (kr->nkeys == KEYRING_MAX_KEYS) {
			snprintf(err, errlen, "more than %d public keys", KEYRING_MAX_KEYS);
			EVP_PKEY_free(pkey);
			BIO_free(bio);
			return -1;
		}
		kr->keys[kr->nkeys] = pkey;
		kr->key_alg[kr->nkeys] = alg;
		kr->nkeys++;
		added++;
	}
	BIO_free(bio);
	if (added == 0) {
		snprintf(err, errlen,
		         "no PEM public key found (expected -----BEGIN PUBLIC KEY-----)");
		return -1;
	}
	return added;
}

unsigned pg_keyring_algs(const struct pg_keyring *kr)
{
	unsigned algs = kr->secret ? PG_ALG_HS256 : 0;
	int i;

	for (i = 0; i < kr->nkeys; i++) {
		algs |= kr->key_alg[i];
	}
	return algs;
}

/* DER ECDSA-Sig-Value from the JWS r||s form; returns its length or -1. */
static int jws_es256_to_der(const unsigned char *sig, unsigned char *der, size_t dercap)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, 32, NULL);
	BIGNUM *s = BN_bin2bn(sig + 32, 32, NULL);
	unsigned char *p = der;
	int n = -1;

	if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(es);
		return -1;
	}
	if (i2d_ECDSA_SIG(es, NULL) <= (int)dercap) {
		n = i2d_ECDSA_SIG(es, &p);
	}
	ECDSA_SIG_free(es);
	return n;
}

/* The JWS r||s form of a DER ECDSA-Sig-Value; 0 or -1. */
static int jws_es256_from_der(const unsigned char *der, size_t derlen, unsigned char *sig)
{
	const unsigned char *p = der;
	ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
	int rc = -1;

	if (es == NULL) {
		return -1;
	}
	if (BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32) == 32 &&
	    BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32) == 32) {
		rc = 0;
	}
	ECDSA_SIG_free(es);
	return rc;
}

static int jws_verify_pkey(EVP_PKEY *pkey, unsigned alg, const unsigned char *input, size_t inlen,
                           const unsigned char *sig, size_t siglen)
{
	unsigned char der[80];
	EVP_MD_CTX *ctx;
	int rc = -1;

	if (siglen != 64) {
		return -1;
	}
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL) {
		return -1;
	}
	if (alg == PG_ALG_ES256) {
		int derlen = jws_es256_to_der(sig, der, sizeof(der));
		if (derlen > 0 && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey) == 1 &&
		    EVP_DigestVerify(ctx, der, (size_t)derlen, input, inlen) == 1) {
			rc = 0;
		}
	} else if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
	           EVP_DigestVerify(ctx, sig, siglen, input, inlen) == 1) {
		rc = 0;
	}
	EVP_MD_CTX_free(ctx);
	return rc;
}

static int jws_hs256(const unsigned char *secret, size_t secret_len, const unsigned char *input,
                     size_t inlen, unsigned char mac[32])
{
	unsigned int maclen = 0;

	if (HMAC(EVP_sha256(), secret, (int)secret_len, input, inlen, mac, &maclen) == NULL ||
	    maclen != 32) {
		return -1;
	}
	return 0;
}

int pg_jws_verify(const struct pg_keyring *kr, unsigned alg, const unsigned char *input,
                  size_t inlen, const unsigned char *sig, size_t siglen)
{
	int i, found = 0;

	if (alg == PG_ALG_HS256) {
		unsigned char mac[32];
		if (kr->secret == NULL) {
			return -2;
		}
		if (siglen != 32 || jws_hs256(kr->secret, kr->secret_len, input, inlen, mac) != 0) {
			return -1;
		}
		return CRYPTO_memcmp(mac, sig, 32) == 0 ? 0 : -1;
	}
	for (i = 0; i < kr->nkeys; i++) {
		if (kr->key_alg[i] != alg) {
			continue;
		}
		found = 1;
		if (jws_verify_pkey(kr->keys[i], alg, input, inlen, sig, siglen) == 0) {
			return 0;
		}
	}
	return found ? -1 : -2;
}

struct pg_signkey *pg_signkey_from_secret(const unsigned char *secret, size_t len)
{
	struct pg_signkey *key = calloc(1, sizeof(*key));

	if (key == NULL) {
		return NULL;
	}
	key->alg = PG_ALG_HS256;
	key->secret = jws_dup_secret(secret, len);
	key->secret_len = len;
	if (key->secret == NULL) {
		free(key);
		return NULL;
	}
	return key;
}

struct pg_signkey *pg_signkey_from_pem(const char *pem, size_t len, char *err, size_t errlen)
{
	struct pg_signkey *key;
	EVP_PKEY *pkey;
	BIO *bio = BIO_new_mem_buf(pem, (int)len);

	if (bio == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (pkey == NULL) {
		snprintf(err, errlen, "no PEM private key found");
		return NULL;
	}
	key = calloc(1, sizeof(*key));
	if (key == NULL) {
		EVP_PKEY_free(pkey);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	key->pkey = pkey;
	key->alg = jws_key_alg(pkey);
	if (key->alg == 0) {
		snprintf(err, errlen, "private key is neither P-256 (ES256) nor Ed25519 (EdDSA)");
		pg_signkey_free(key);
		return NULL;
	}
	return key;
}

void pg_signkey_free(struct pg_signkey *key)
{
	if (key == NULL) {
		return;
	}
	if (key->secret) {
		OPENSSL_cleanse(key->secret, key->secret_len);
		free(key->secret);
	}
	EVP_PKEY_free(key->pkey);
	free(key);
}

unsigned pg_signkey_alg(const struct pg_signkey *key)
{
	return key->alg;
}

int pg_jws_sign(const struct pg_signkey *key, const unsigned char *input, size_t inlen,
                unsigned char sig[PG_JWS_SIG_MAX], size_t *siglen)
{
	unsigned char der[80];
	size_t len;
	EVP_MD_CTX *ctx;
	int rc = -1;

	if (key->alg == PG_ALG_HS256) {
		*siglen = 32;
		return jws_hs256(key->secret, key->secret_len, input, inlen, sig);
	}
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL) {
		return -1;
	}
	if (key->alg == PG_ALG_ES256) {
		len = sizeof(der);
		if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
		    EVP_DigestSign(ctx, der, &len, input, inlen) == 1 &&
		    jws_es256_from_der(der, len, sig) == 0) {
			*siglen = 64;
			rc = 0;
		}
	} else {
		len = PG_JWS_SIG_MAX;
		if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, key->pkey) == 1 &&
		    EVP_DigestSign(ctx, sig, &len, input, inlen) == 1 && len == 64) {
			*siglen = 64;
			rc = 0;
		}
	}
	EVP_MD_CTX_free(ctx);
	return rc;
}
