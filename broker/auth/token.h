/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon's JWT rules (docs/auth.md): a compact JWS whose header names an
 * allowed algorithm and whose claims carry sub (the uid), exp, and optionally
 * iat, nbf, dev (the one device it is good for), role and jti.
 *
 * Verification never trusts the header to choose a key type: the algorithm
 * must be in the configured set and the keyring must hold a key of that
 * algorithm, so an HS256 token cannot be checked against a public key.
 */
#ifndef PIGEON_TOKEN_H
#define PIGEON_TOKEN_H

#include "export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ident.h"
#include "jws.h"

/* Longest token accepted; anything longer is refused unparsed. */
#define PG_TOKEN_MAX 4096
#define PG_JTI_MAX 128

struct pg_claims {
	char sub[PG_IDENT_MAX + 1];
	char dev[PG_IDENT_MAX + 1]; /* empty: not bound to a device */
	char jti[PG_JTI_MAX + 1];   /* empty: none */
	enum pg_role role;
	unsigned alg; /* the algorithm it was signed with */
	int64_t exp;
	int64_t iat; /* valid if has_iat */
	int64_t nbf; /* valid if has_nbf */
	bool has_iat;
	bool has_nbf;
};

enum pg_token_status {
	PG_TOKEN_OK = 0,
	PG_TOKEN_MALFORMED,     /* not a compact JWS with JSON header/claims */
	PG_TOKEN_ALG_REFUSED,   /* none, unknown, or not configured */
	PG_TOKEN_BAD_SIGNATURE, /* no configured key verifies it */
	PG_TOKEN_EXPIRED,
	PG_TOKEN_NOT_YET_VALID, /* nbf or iat in the future */
	PG_TOKEN_BAD_CLAIMS,    /* a required claim missing or invalid */
};

struct pg_token_policy {
	unsigned algs;  /* accepted algorithms (PG_ALG_*) */
	int64_t skew_s; /* clock skew tolerance for exp, nbf, iat */
};

/*
 * Verifies token[0..len) at time now_s (Unix seconds). Returns PG_TOKEN_OK
 * and fills *claims, or another status with *detail (if not NULL) pointing at
 * a static text that says exactly what was wrong. The token itself is never
 * copied into detail, so details are safe to log.
 */
PG_EXPORT enum pg_token_status pg_token_verify(const struct pg_keyring *kr,
                                               const struct pg_token_policy *policy,
                                               const char *token, size_t len, int64_t now_s,
                                               struct pg_claims *claims, const char **detail);

/* Short name of a status, e.g. "expired". */
PG_EXPORT const char *pg_token_status_name(enum pg_token_status status);

/*
 * Mints a token for claims (sub and exp required; dev, jti, iat, nbf, role
 * written when set; role only when service) signed by key. Returns a
 * malloc'd NUL-terminated token the caller frees, or NULL.
 */
PG_EXPORT char *pg_token_mint(const struct pg_signkey *key, const struct pg_claims *claims);

#endif
