/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keys with ids (keyset.h). Every key is in one keyring `all`, which does
 * the verifying; each public key is also alone in a keyring of its own,
 * used only to tell which of several keys of one algorithm verified a token.
 */
#include "keyset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* Keeps a secret's id apart from any public key's (ids hash different things). */
static const char keyset_secret_domain[] = "pigeon HS256 secret";

struct keyset_key {
	unsigned alg;
	struct pg_key_id id;
	struct pg_keyring *alone; /* this key only */
};

struct pg_keyset {
	struct pg_keyring *all;
	bool has_secret;
	struct pg_key_id secret_id;
	struct keyset_key keys[PG_KEYSET_MAX_KEYS];
	int nkeys;
};

static int keyset_hash(const void *prefix, size_t plen, const void *data, size_t len,
                       struct pg_key_id *id)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, prefix, plen) == 1 && EVP_DigestUpdate(ctx, data, len) == 1 &&
	     EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen >= PG_KEY_ID_LEN;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		return -1;
	}
	memcpy(id->b, md, PG_KEY_ID_LEN);
	return 0;
}

struct pg_keyset *pg_keyset_new(void)
{
	struct pg_keyset *ks = calloc(1, sizeof(*ks));

	if (ks == NULL) {
		return NULL;
	}
	ks->all = pg_keyring_new();
	if (ks->all == NULL) {
		free(ks);
		return NULL;
	}
	return ks;
}

void pg_keyset_free(struct pg_keyset *ks)
{
	int i;

	if (ks == NULL) {
		return;
	}
	for (i = 0; i < ks->nkeys; i++) {
		pg_keyring_free(ks->keys[i].alone);
	}
	pg_keyring_free(ks->all);
	free(ks);
}

int pg_keyset_set_secret(struct pg_keyset *ks, const unsigned char *secret, size_t len, char *err,
                         size_t errlen)
{
	struct pg_key_id id;

	if (len == 0) {
		snprintf(err, errlen, "the HS256 secret is empty");
		return PG_ERR_INVALID;
	}
	if (keyset_hash(keyset_secret_domain, sizeof(keyset_secret_domain), secret, len, &id) !=
	        0 ||
	    pg_keyring_set_secret(ks->all, secret, len) != 0) {
		snprintf(err, errlen, "out of memory");
		return PG_ERR_NOMEM;
	}
	ks->secret_id = id;
	ks->has_secret = true;
	return PG_OK;
}

/* Gives pkey its own keyring and id (re-encoded as PEM for the keyring API). */
static int keyset_add_one(struct pg_keyset *ks, EVP_PKEY *pkey, char *err, size_t errlen)
{
	struct keyset_key *k = &ks->keys[ks->nkeys];
	unsigned char *der = NULL;
	BIO *out = NULL;
	char *pem;
	long pemlen;
	int derlen, rc = -1;

	if (ks->nkeys == PG_KEYSET_MAX_KEYS) {
		snprintf(err, errlen, "more than %d public keys", PG_KEYSET_MAX_KEYS);
		return -1;
	}
	derlen = i2d_PUBKEY(pkey, &der);
	out = BIO_new(BIO_s_mem());
	k->alone = pg_keyring_new();
	if (derlen <= 0 || out == NULL || k->alone == NULL ||
	    keyset_hash("", 0, der, (size_t)derlen, &k->id) != 0 ||
	    PEM_write_bio_PUBKEY(out, pkey) != 1 || (pemlen = BIO_get_mem_data(out, &pem)) <= 0 ||
	    pg_keyring_add_public_pem(k->alone, pem, (size_t)pemlen, err, errlen) != 1) {
		if (err[0] == '\0') {
			snprintf(err, errlen, "out of memory");
		}
		pg_keyring_free(k->alone);
		k->alone = NULL;
		goto out;
	}
	k->alg = pg_keyring_algs(k->alone);
	ks->nkeys++;
	rc = 0;
out:
	OPENSSL_free(der);
	BIO_free(out);
	return rc;
}

int pg_keyset_add_public_pem(struct pg_keyset *ks, const char *pem, size_t len, char *err,
                             size_t errlen)
{
	EVP_PKEY *pkey;
	BIO *bio;
	int added;

	/* The shared keyring decides what is acceptable, with its messages. */
	added = pg_keyring_add_public_pem(ks->all, pem, len, err, errlen);
	if (added < 0) {
		return -1;
	}
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	err[0] = '\0';
	while ((pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL)) != NULL) {
		int rc = keyset_add_one(ks, pkey, err, errlen);
		EVP_PKEY_free(pkey);
		if (rc != 0) {
			BIO_free(bio);
			return -1;
		}
	}
	BIO_free(bio);
	return added;
}

unsigned pg_keyset_algs(const struct pg_keyset *ks)
{
	return pg_keyring_algs(ks->all);
}

size_t pg_keyset_count(const struct pg_keyset *ks)
{
	return (size_t)ks->nkeys + (ks->has_secret ? 1 : 0);
}

const struct pg_keyring *pg_keyset_keyring(const struct pg_keyset *ks)
{
	return ks->all;
}

enum pg_token_status pg_keyset_verify(const struct pg_keyset *ks,
                                      const struct pg_token_policy *policy, const char *token,
                                      size_t len, int64_t now_s, struct pg_claims *claims,
                                      struct pg_key_id *key_id, const char **detail)
{
	const struct keyset_key *only = NULL;
	enum pg_token_status st;
	struct pg_claims again;
	int i, n = 0;

	st = pg_token_verify(ks->all, policy, token, len, now_s, claims, detail);
	if (st != PG_TOKEN_OK) {
		return st;
	}
	if (claims->alg == PG_ALG_HS256) {
		*key_id = ks->secret_id; /* the only HS256 key */
		return st;
	}
	for (i = 0; i < ks->nkeys; i++) {
		if (ks->keys[i].alg == claims->alg) {
			only = &ks->keys[i];
			n++;
		}
	}
	if (n == 1) {
		*key_id = only->id;
		return st;
	}
	/* Several keys of this algorithm (a rotation): ask each alone. */
	for (i = 0; i < ks->nkeys; i++) {
		if (ks->keys[i].alg == claims->alg &&
		    pg_token_verify(ks->keys[i].alone, policy, token, len, now_s, &again, NULL) ==
		        PG_TOKEN_OK) {
			*key_id = ks->keys[i].id;
			return st;
		}
	}
	/* Unreachable while `all` holds exactly the keys of `keys`. */
	memset(claims, 0, sizeof(*claims));
	if (detail != NULL) {
		*detail = "signature does not verify";
	}
	return PG_TOKEN_BAD_SIGNATURE;
}

bool pg_keyset_has(const struct pg_keyset *ks, const struct pg_key_id *key_id)
{
	int i;

	if (ks->has_secret && memcmp(ks->secret_id.b, key_id->b, PG_KEY_ID_LEN) == 0) {
		return true;
	}
	for (i = 0; i < ks->nkeys; i++) {
		if (memcmp(ks->keys[i].id.b, key_id->b, PG_KEY_ID_LEN) == 0) {
			return true;
		}
	}
	return false;
}
