/* SPDX-License-Identifier: Apache-2.0 */
/* pigeon-bench's token minting (tokens.h), over the project's token code. */
#include "tokens.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jws.h"
#include "options.h"
#include "token.h"

#define BENCH_TOKEN_KEYFILE_MAX (1u << 20)

struct pg_signkey *bench_token_key(const char *secret_file)
{
	struct pg_signkey *key;
	char err[256], *buf;
	size_t len;

	if (pg_read_file(secret_file, BENCH_TOKEN_KEYFILE_MAX, &buf, &len, err, sizeof(err)) != 0) {
		fprintf(stderr, "pigeon-bench: %s\n", err);
		return NULL;
	}
	key = len ? pg_signkey_from_secret((unsigned char *)buf, len) : NULL;
	free(buf);
	if (key == NULL) {
		fprintf(stderr, "pigeon-bench: no HS256 secret in %s\n", secret_file);
	}
	return key;
}

char *bench_token_mint(const struct pg_signkey *key, const char *uid, const char *dev, bool service,
                       long valid_s)
{
	struct pg_claims cl = {0};
	char *tok, *copy;

	snprintf(cl.sub, sizeof(cl.sub), "%s", uid);
	snprintf(cl.dev, sizeof(cl.dev), "%s", dev);
	cl.role = service ? PG_ROLE_SERVICE : PG_ROLE_USER;
	cl.exp = (int64_t)time(NULL) + valid_s;
	/* pg_token_mint's buffer is larger than the token: keep only the token. */
	tok = pg_token_mint(key, &cl);
	copy = tok ? strdup(tok) : NULL;
	free(tok);
	if (copy == NULL) {
		fprintf(stderr, "pigeon-bench: cannot mint a token for %s\n", uid);
	}
	return copy;
}
