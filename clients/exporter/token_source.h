/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where the exporter's token comes from, asked again at every (re)connect:
 * --token (as given), --token-file (re-read, so rotating the file works),
 * $PIGEON_TOKEN, or --secret-file (a fresh HS256 service token for
 * uid:device, valid one hour, minted with libpigeon from the broker's
 * plugin_opt_jwt_secret_file, re-read each time). Used by one thread at a
 * time (the MQTT thread once started).
 */
#ifndef PIGEON_EXPORTER_TOKEN_SOURCE_H
#define PIGEON_EXPORTER_TOKEN_SOURCE_H

#include <stddef.h>

/* How long a minted token is valid, in seconds. */
#define EXP_TOKEN_TTL_S 3600

struct exp_token_src {
	const char *token;        /* --token */
	const char *token_file;   /* --token-file */
	const char *secret_file;  /* --secret-file */
	const char *uid, *device; /* the identity minted into the token */
};

/*
 * A token from src (else $PIGEON_TOKEN): a malloc'd string the caller
 * frees, or NULL with the reason in err.
 */
char *exp_token_get(const struct exp_token_src *src, char *err, size_t errlen);

#endif
