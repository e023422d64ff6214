/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JWS signatures (RFC 7515/7518/8037) for the three algorithms pigeon
 * accepts: HS256 (shared secret), ES256 (ECDSA P-256, raw r||s signatures)
 * and EdDSA (Ed25519). All cryptography is OpenSSL 3's EVP interface.
 *
 * A keyring holds what the broker verifies with: at most one HS256 secret and
 * any number of public keys (several keys of one kind allow key rotation: a
 * token verifies if any key of its algorithm accepts it). A signing key holds
 * what a token issuer signs with. Both are immutable once loaded and may be
 * shared between threads for verification.
 */
#ifndef PIGEON_JWS_H
#define PIGEON_JWS_H

#include "export.h"
#include "result.h"

#include <stddef.h>

enum pg_alg {
	PG_ALG_HS256 = 1u << 0,
	PG_ALG_ES256 = 1u << 1,
	PG_ALG_EDDSA = 1u << 2,
};
#define PG_ALG_ALL (PG_ALG_HS256 | PG_ALG_ES256 | PG_ALG_EDDSA)

/* The JOSE name of alg ("HS256", "ES256", "EdDSA"). */
PG_EXPORT const char *pg_alg_name(unsigned alg);
/* The alg named name[0..len), or 0 if pigeon does not know it. */
PG_EXPORT unsigned pg_alg_from_name(const char *name, size_t len);
/*
 * Parses a comma list ("HS256,EdDSA", spaces allowed) into a set of algs.
 * Returns PG_OK, or PG_ERR_INVALID with a message in err for an unknown or
 * empty list.
 */
PG_EXPORT int pg_alg_parse_list(const char *list, unsigned *out, char *err, size_t errlen);

struct pg_keyring;

/* A new, empty keyring (NULL on allocation failure); free with pg_keyring_free. */
PG_EXPORT struct pg_keyring *pg_keyring_new(void);
PG_EXPORT void pg_keyring_free(struct pg_keyring *kr);
/* Sets the HS256 secret (copied). Returns PG_OK, PG_ERR_INVALID if len is 0, or
 * PG_ERR_NOMEM. */
PG_EXPORT int pg_keyring_set_secret(struct pg_keyring *kr, const unsigned char *secret, size_t len);
/*
 * Adds every "PUBLIC KEY" PEM block in pem[0..len): P-256 EC keys serve
 * ES256, Ed25519 keys serve EdDSA. Returns the number of keys added (>= 1),
 * or -1 with a message in err if the text holds no usable key.
 */
PG_EXPORT int pg_keyring_add_public_pem(struct pg_keyring *kr, const char *pem, size_t len,
                                        char *err, size_t errlen);
/* The set of algorithms this keyring holds at least one key for. */
PG_EXPORT unsigned pg_keyring_algs(const struct pg_keyring *kr);

/*
 * Verifies sig over input with alg. Returns 0 if a key of alg accepts it,
 * -1 if none does, -2 if the keyring has no key for alg.
 */
PG_EXPORT int pg_jws_verify(const struct pg_keyring *kr, unsigned alg, const unsigned char *input,
                            size_t inlen, const unsigned char *sig, size_t siglen);

struct pg_signkey;

/* A signing key from an HS256 secret (copied). */
PG_EXPORT struct pg_signkey *pg_signkey_from_secret(const unsigned char *secret, size_t len);
/*
 * A signing key from a PEM private key: P-256 EC signs ES256, Ed25519 signs
 * EdDSA. NULL with a message in err if the key is unusable.
 */
PG_EXPORT struct pg_signkey *pg_signkey_from_pem(const char *pem, size_t len, char *err,
                                                 size_t errlen);
PG_EXPORT void pg_signkey_free(struct pg_signkey *key);
/* The algorithm this key signs with. */
PG_EXPORT unsigned pg_signkey_alg(const struct pg_signkey *key);

/* Largest JWS signature pigeon produces (ES256/EdDSA: 64 bytes). */
#define PG_JWS_SIG_MAX 64

/*
 * Signs input into sig (PG_JWS_SIG_MAX bytes) and sets *siglen.
 * Returns 0, or -1 on a cryptographic failure.
 */
PG_EXPORT int pg_jws_sign(const struct pg_signkey *key, const unsigned char *input, size_t inlen,
                          unsigned char sig[PG_JWS_SIG_MAX], size_t *siglen);

#endif
