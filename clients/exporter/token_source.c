/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The exporter's token sources (token.h): the tools' common loader
 * (clients/common/cli.c) for a given token, and libpigeon's token code
 * (pg_signkey_from_secret, pg_token_mint), as pigeon-token uses it, for
 * a minted one.
 */
#include "token_source.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "jws.h"
#include "options.h"
#include "token.h"

/* The broker reads a secret file of at most this size too. */
#define SECRET_FILE_MAX (1u << 20)

static char *mint(const struct exp_token_src *src, char *err, size_t errlen)
{
	struct pg_claims cl = {0};
	struct pg_signkey *key;
	char *buf, *tok, *copy;
	size_t len;

	if (pg_read_file(src->secret_file, SECRET_FILE_MAX, &buf, &len, err, errlen) != 0) {
		return NULL;
	}
	key = len ? pg_signkey_from_secret((unsigned char *)buf, len) : NULL;
	free(buf);
	if (key == NULL) {
		snprintf(err, errlen, "no HS256 secret in %s", src->secret_file);
		return NULL;
	}
	snprintf(cl.sub, sizeof(cl.sub), "%s", src->uid);
	snprintf(cl.dev, sizeof(cl.dev), "%s", src->device);
	cl.role = PG_ROLE_SERVICE;
	cl.iat = (int64_t)time(NULL);
	cl.has_iat = true;
	cl.exp = cl.iat + EXP_TOKEN_TTL_S;
	tok = pg_token_mint(key, &cl);
	pg_signkey_free(key);
	/* pg_token_mint's buffer is larger than the token: keep only the token. */
	copy = tok ? strdup(tok) : NULL;
	free(tok);
	if (copy == NULL) {
		snprintf(err, errlen, "cannot mint a token");
	}
	return copy;
}

char *exp_token_get(const struct exp_token_src *src, char *err, size_t errlen)
{
	char *tok;

	if (src->secret_file) {
		return mint(src, err, errlen);
	}
	if (pgcli_token_load(src->token, src->token_file, &tok, err, errlen) != 0) {
		return NULL;
	}
	return tok;
}
