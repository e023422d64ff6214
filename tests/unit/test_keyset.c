/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keys with ids (keyset.c): a token verifies exactly as with a keyring and
 * reports the id of the key that verified it (one or several keys of an
 * algorithm); ids are stable across reloads and PEM re-encoding, differ
 * between keys, and a changed secret is a different key; pg_keyset_has
 * answers for a reloaded set; the keyring's errors come through unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "check.h"
#include "pem.h"
#include "keyset.h"
#include "token.h"

static const char secret1[] = "pigeon keyset unit test secret number one";
static const char secret2[] = "pigeon keyset unit test secret number two";

static EVP_PKEY *es_a, *es_b, *ed_a;
static char *es_a_pem, *es_b_pem, *ed_a_pem;

static char *cat3(const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	char *s = malloc(la + lb + lc + 1);

	if (s == NULL) {
		abort();
	}
	memcpy(s, a, la);
	memcpy(s + la, b, lb);
	memcpy(s + la + lb, c, lc + 1);
	return s;
}

/* A keyset from an optional secret and an optional PEM text; aborts on error. */
static struct pg_keyset *keyset_of(const char *secret, const char *pem)
{
	struct pg_keyset *ks = pg_keyset_new();
	char err[200] = "";

	if (ks == NULL ||
	    (secret && pg_keyset_set_secret(ks, (const unsigned char *)secret, strlen(secret), err,
	                                    sizeof(err)) != 0) ||
	    (pem && pg_keyset_add_public_pem(ks, pem, strlen(pem), err, sizeof(err)) < 1)) {
		fprintf(stderr, "keyset_of: %s\n", err);
		abort();
	}
	return ks;
}

static char *token_by(EVP_PKEY *pkey, const char *secret)
{
	struct pg_signkey *key;
	struct pg_claims c;
	char err[200], *pem, *tok;

	if (secret != NULL) {
		key = pg_signkey_from_secret((const unsigned char *)secret, strlen(secret));
	} else {
		pem = pem_of(pkey, 1);
		key = pg_signkey_from_pem(pem, strlen(pem), err, sizeof(err));
		free(pem);
	}
	memset(&c, 0, sizeof(c));
	strcpy(c.sub, "alice");
	c.exp = (int64_t)time(NULL) + 600;
	tok = key ? pg_token_mint(key, &c) : NULL;
	pg_signkey_free(key);
	if (tok == NULL) {
		abort();
	}
	return tok;
}

static const struct pg_token_policy policy = {.algs = PG_ALG_ALL, .skew_s = 30};

/* Verifies tok against ks; returns the status and the key id. */
static enum pg_token_status verify(const struct pg_keyset *ks, const char *tok,
                                   struct pg_key_id *id)
{
	struct pg_claims c;
	const char *detail;

	memset(id, 0, sizeof(*id));
	return pg_keyset_verify(ks, &policy, tok, strlen(tok), (int64_t)time(NULL), &c, id,
	                        &detail);
}

static bool same_id(const struct pg_key_id *a, const struct pg_key_id *b)
{
	return memcmp(a->b, b->b, PG_KEY_ID_LEN) == 0;
}

static void test_ids_name_the_key_that_verified(void)
{
	char *both = cat3(es_a_pem, es_b_pem, ed_a_pem);
	struct pg_keyset *ks = keyset_of(secret1, both);
	char *t_hs = token_by(NULL, secret1), *t_a = token_by(es_a, NULL),
	     *t_b = token_by(es_b, NULL), *t_ed = token_by(ed_a, NULL);
	struct pg_key_id id_hs, id_a, id_b, id_ed;

	CHECK_EQ(pg_keyset_count(ks), 4);
	CHECK_EQ(pg_keyset_algs(ks), PG_ALG_ALL);
	CHECK_EQ(verify(ks, t_hs, &id_hs), PG_TOKEN_OK);
	/* Two ES256 keys: each token is attributed to its own. */
	CHECK_EQ(verify(ks, t_a, &id_a), PG_TOKEN_OK);
	CHECK_EQ(verify(ks, t_b, &id_b), PG_TOKEN_OK);
	CHECK_EQ(verify(ks, t_ed, &id_ed), PG_TOKEN_OK);
	CHECK(!same_id(&id_a, &id_b));
	CHECK(!same_id(&id_a, &id_hs) && !same_id(&id_a, &id_ed) && !same_id(&id_hs, &id_ed));
	CHECK(pg_keyset_has(ks, &id_hs) && pg_keyset_has(ks, &id_a) && pg_keyset_has(ks, &id_b) &&
	      pg_keyset_has(ks, &id_ed));
	pg_keyset_free(ks);

	/* Only key b, alone: a's token is refused, b's has the same id as before. */
	ks = keyset_of(NULL, es_b_pem);
	{
		struct pg_key_id id;
		CHECK_EQ(verify(ks, t_a, &id), PG_TOKEN_BAD_SIGNATURE);
		CHECK_EQ(verify(ks, t_b, &id), PG_TOKEN_OK);
		CHECK(same_id(&id, &id_b));
		CHECK(!pg_keyset_has(ks, &id_a));
		CHECK(!pg_keyset_has(ks, &id_hs));
	}
	pg_keyset_free(ks);
	free(both);
	free(t_hs);
	free(t_a);
	free(t_b);
	free(t_ed);
}

static void test_ids_are_stable_across_reloads_and_order(void)
{
	char *ab = cat3(es_a_pem, es_b_pem, ""), *ba = cat3("# rotated\n", es_b_pem, es_a_pem);
	struct pg_keyset *k1 = keyset_of(secret1, ab), *k2 = keyset_of(secret1, ba);
	char *t_a = token_by(es_a, NULL), *t_hs = token_by(NULL, secret1);
	struct pg_key_id id1, id2;

	CHECK_EQ(verify(k1, t_a, &id1), PG_TOKEN_OK);
	CHECK_EQ(verify(k2, t_a, &id2), PG_TOKEN_OK);
	CHECK(same_id(&id1, &id2));
	CHECK_EQ(verify(k1, t_hs, &id1), PG_TOKEN_OK);
	CHECK(pg_keyset_has(k2, &id1));
	pg_keyset_free(k2);

	/* A new secret is a new key: the old secret's sessions have no key any more. */
	k2 = keyset_of(secret2, ab);
	CHECK(!pg_keyset_has(k2, &id1));
	CHECK_EQ(verify(k2, t_hs, &id2), PG_TOKEN_BAD_SIGNATURE);
	pg_keyset_free(k1);
	pg_keyset_free(k2);
	free(ab);
	free(ba);
	free(t_a);
	free(t_hs);
}

static void test_errors_are_the_keyrings(void)
{
	struct pg_keyset *ks = pg_keyset_new();
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	char err[200] = "", *pem = pem_of(p384, 0);
	char *t = token_by(NULL, secret1);
	struct pg_key_id id;

	CHECK_EQ(pg_keyset_set_secret(ks, (const unsigned char *)"", 0, err, sizeof(err)),
	         PG_ERR_INVALID);
	CHECK_EQ(pg_keyset_add_public_pem(ks, "nothing", 7, err, sizeof(err)), -1);
	CHECK(strstr(err, "no PEM public key found") != NULL);
	CHECK_EQ(pg_keyset_add_public_pem(ks, pem, strlen(pem), err, sizeof(err)), -1);
	CHECK(strstr(err, "neither P-256") != NULL);
	pg_keyset_free(ks);
	/* A token whose algorithm has no key: the keyring's own answer. */
	ks = keyset_of(NULL, es_a_pem);
	CHECK_EQ(verify(ks, t, &id), PG_TOKEN_ALG_REFUSED);
	pg_keyset_free(ks);
	EVP_PKEY_free(p384);
	free(pem);
	free(t);
}

static void test_seventeen_keys_refused(void)
{
	struct pg_keyset *ks = pg_keyset_new();
	char err[200] = "";
	int i, rc = 0;

	for (i = 0; i < 17 && rc >= 0; i++) {
		EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		char *pem = pem_of(k, 0);
		rc = pg_keyset_add_public_pem(ks, pem, strlen(pem), err, sizeof(err));
		free(pem);
		EVP_PKEY_free(k);
	}
	CHECK_EQ(i, 17);
	CHECK_EQ(rc, -1);
	CHECK(strstr(err, "more than 16") != NULL);
	pg_keyset_free(ks);
}

int main(void)
{
	es_a = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	es_b = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ed_a = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (es_a == NULL || es_b == NULL || ed_a == NULL) {
		return 2;
	}
	es_a_pem = pem_of(es_a, 0);
	es_b_pem = pem_of(es_b, 0);
	ed_a_pem = pem_of(ed_a, 0);
	RUN(test_ids_name_the_key_that_verified);
	RUN(test_ids_are_stable_across_reloads_and_order);
	RUN(test_errors_are_the_keyrings);
	RUN(test_seventeen_keys_refused);
	EVP_PKEY_free(es_a);
	EVP_PKEY_free(es_b);
	EVP_PKEY_free(ed_a);
	free(es_a_pem);
	free(es_b_pem);
	free(ed_a_pem);
	return check_exit();
}
