/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The verification keys pigeon_auth holds (one HS256 secret, any number of
 * ES256/EdDSA public keys), each with a stable identity, so that a session
 * can remember which key admitted it and a reload can tell whether that key
 * is still configured (docs/auth.md "Key rotation": disconnects the sessions of a key
 * that was removed, and only those).
 *
 * A key's id is the first PG_KEY_ID_LEN bytes of SHA-256 over the key: the
 * secret's raw bytes (domain-separated from public keys) or the public key's
 * DER SubjectPublicKeyInfo, so re-encoding or reordering a PEM file keeps
 * every key's id, and a changed secret is a new key.
 *
 * Verification itself is pg_token_verify over one keyring holding every key
 * (the same rules and error details as before keys had ids); the id of the
 * key that verified is found afterwards, at no extra cost when only one key
 * serves the token's algorithm (the usual case; during a rotation, two).
 *
 * Immutable once loaded; the caller owns it (free with pg_keyset_free). May
 * be shared between threads for verification.
 */
#ifndef PIGEON_KEYSET_H
#define PIGEON_KEYSET_H

#include "export.h"
#include "result.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jws.h"
#include "token.h"

#define PG_KEY_ID_LEN 16
#define PG_KEYSET_MAX_KEYS 16

struct pg_key_id {
	unsigned char b[PG_KEY_ID_LEN];
};

struct pg_keyset;

/* A new, empty keyset, or NULL when out of memory. */
PG_EXPORT struct pg_keyset *pg_keyset_new(void);
PG_EXPORT void pg_keyset_free(struct pg_keyset *ks);

/*
 * Sets the HS256 secret (copied; at most one: a second replaces the first).
 * Returns PG_OK, or PG_ERR_INVALID (empty secret) / PG_ERR_NOMEM with a
 * message in err; on
 * failure the keyset is unchanged.
 */
PG_EXPORT int pg_keyset_set_secret(struct pg_keyset *ks, const unsigned char *secret, size_t len,
                                   char *err, size_t errlen);

/*
 * Adds every "PUBLIC KEY" PEM block of pem[0..len), as
 * pg_keyring_add_public_pem does (same errors). Returns the number of keys
 * added (>= 1), or -1 with a message in err; after a failure the keyset must
 * be freed, not used.
 */
PG_EXPORT int pg_keyset_add_public_pem(struct pg_keyset *ks, const char *pem, size_t len, char *err,
                                       size_t errlen);

/* The algorithms the keyset holds a key for (PG_ALG_*). */
PG_EXPORT unsigned pg_keyset_algs(const struct pg_keyset *ks);

/* Number of keys (the secret counts as one). */
PG_EXPORT size_t pg_keyset_count(const struct pg_keyset *ks);

/*
 * pg_token_verify against every key of the set. On PG_TOKEN_OK also sets
 * *key_id to the id of the key that verified the token.
 */
PG_EXPORT enum pg_token_status pg_keyset_verify(const struct pg_keyset *ks,
                                                const struct pg_token_policy *policy,
                                                const char *token, size_t len, int64_t now_s,
                                                struct pg_claims *claims, struct pg_key_id *key_id,
                                                const char **detail);

/* True if a key with this id is in the set. */
PG_EXPORT bool pg_keyset_has(const struct pg_keyset *ks, const struct pg_key_id *key_id);

/* The keyring holding every key of the set (for callers that need no ids). */
const struct pg_keyring *pg_keyset_keyring(const struct pg_keyset *ks);

#endif
