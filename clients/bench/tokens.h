/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Token minting shared by pigeon-bench's modes: the HS256 key is read once
 * from the secret file, then any number of tokens are minted before a run's
 * clock starts (minting is never timed).
 */
#ifndef PIGEON_BENCH_TOKENS_H
#define PIGEON_BENCH_TOKENS_H

#include <stdbool.h>

struct pg_signkey;

/* The HS256 key in secret_file (its whole content), or NULL with a message on stderr. */
struct pg_signkey *bench_token_key(const char *secret_file);
/*
 * A token for uid on device dev (role service or user), valid for
 * valid_s seconds from now: a malloc'd string the caller frees, or NULL with
 * a message on stderr.
 */
char *bench_token_mint(const struct pg_signkey *key, const char *uid, const char *dev, bool service,
                       long valid_s);

#endif
