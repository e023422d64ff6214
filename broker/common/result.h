/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The core's one result convention. A function that can fail returns an
 * int: PG_OK (0), or one of enum pg_result saying what kind of failure it
 * was; the human-readable reason, where a caller needs one, goes into an
 * err buffer the caller passes (char *err, size_t errlen). Results come back
 * through out-parameters; a constructor returns a pointer, NULL on failure.
 * Verdicts are not failures: a refused token is a pg_token_status, an ACL
 * decision a bool, a JWS check 0/-1/-2 (jws.h). A function whose result is
 * a length or a count, like snprintf (pg_b64url_encode, pg_topic_format,
 * pg_jws_sign, pg_keyring_add_public_pem, pg_keyset_add_public_pem),
 * returns it, or -1. The plugins translate these codes at their edge (to
 * MOSQ_ERR_* for Mosquitto, to Reply.code for a client), nowhere else.
 */
#ifndef PIGEON_RESULT_H
#define PIGEON_RESULT_H

#include "export.h"

enum pg_result {
	PG_OK = 0,
	PG_ERR_INVALID, /* bad input or argument: nothing changed */
	PG_ERR_NOMEM,   /* out of memory: nothing changed */
	PG_ERR_IO,      /* a file, the journal or the database failed: nothing changed */
	PG_ERR_BUSY,    /* the store is behind (backlog at its bound): retry later */
};

/* "ok", "invalid", "out of memory", "I/O error", "busy"; "unknown" otherwise. */
PG_EXPORT const char *pg_result_name(int rc);

#endif
