/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Token bucket (per-user send rate, docs/configuration.md): `rate` tokens a second,
 * holding at most `burst`. Caller owns the bucket; no allocation.
 */
#ifndef PIGEON_RATELIMIT_H
#define PIGEON_RATELIMIT_H

#include "export.h"

#include <stdbool.h>
#include <stdint.h>

struct pg_bucket {
	double tokens;
	int64_t last_ms; /* 0: new bucket, starts full */
};

/* Takes one token if there is one. rate 0 means unlimited. */
PG_EXPORT bool pg_bucket_take(struct pg_bucket *b, double rate, double burst, int64_t now_ms);

#endif
