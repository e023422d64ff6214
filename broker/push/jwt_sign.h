/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The signatures pigeon makes as a client of the push providers: ES256 JWTs
 * (APNs provider tokens), RS256 JWTs (Google's service-account assertion,
 * RFC 7523) and the webhook's HMAC-SHA256. Verification is auth/'s business
 * (jws.c); this side only signs, with keys loaded from PEM.
 *
 * Threads: a key is loaded on the broker thread (provider create) and then
 * used by one worker thread only; nothing here is shared otherwise.
 */
#ifndef PIGEON_PUSH_JWT_SIGN_H
#define PIGEON_PUSH_JWT_SIGN_H

#include <stddef.h>

enum pg_push_jwt_alg {
	PG_PUSH_JWT_ES256, /* EC P-256, signature r||s (RFC 7518 §3.4) */
	PG_PUSH_JWT_RS256, /* RSA PKCS#1 v1.5 with SHA-256, 2048 bits or more */
};

struct pg_push_jwt_key;

/*
 * A private key of alg from PEM text (PKCS#8 "PRIVATE KEY", as Apple's .p8
 * and Google's service accounts carry, or the traditional EC/RSA forms).
 * Encrypted keys are refused, never prompted for. NULL with err set.
 * Freed with pg_push_jwt_key_free.
 */
struct pg_push_jwt_key *pg_push_jwt_key_from_pem(const char *pem, size_t len,
                                                 enum pg_push_jwt_alg alg, char *err,
                                                 size_t errlen);
/* The same from a file (err names the file). */
struct pg_push_jwt_key *pg_push_jwt_key_load(const char *path, enum pg_push_jwt_alg alg, char *err,
                                             size_t errlen);
void pg_push_jwt_key_free(struct pg_push_jwt_key *key);

/*
 * A compact JWS: header {"alg":<alg>,"kid":kid} (kid left out when NULL or
 * empty; RS256 adds "typ":"JWT" as Google's examples do, ES256 stays
 * exactly as Apple documents it) and claims_json as the payload, signed
 * with key.
 * Returns the token, malloc'd, freed by the caller; NULL with err set.
 */
char *pg_push_jwt_sign(const struct pg_push_jwt_key *key, const char *kid, const char *claims_json,
                       char *err, size_t errlen);

/* Lowercase hex of HMAC-SHA256(key, data) into hex (65 bytes, NUL-terminated). 0 or -1. */
int pg_push_hmac_sha256_hex(const void *key, size_t keylen, const void *data, size_t len,
                            char hex[65]);

#endif
