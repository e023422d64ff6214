/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the two store targets (fuzz_request, fuzz_journal) share: a store
 * opened on their private directory with small, fixed limits, and the wall
 * clock in milliseconds.
 */
#ifndef PIGEON_FUZZ_STORE_H
#define PIGEON_FUZZ_STORE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "store.h"

/* Opens the store at db_path; aborts (naming the target `who`) if it cannot. */
static inline struct pg_store *fuzz_store_open(const char *db_path, const char *who)
{
	const struct pg_store_config cfg = {
	    .db_path = db_path,
	    .sync_full = false,
	    .ttl_s = 3600,
	    .max_per_user = 16,
	    .dedup_window_s = 600,
	};
	struct pg_store *st = NULL;
	char err[512];

	if (pg_store_open(&cfg, &st, err, sizeof(err)) != PG_OK) {
		fprintf(stderr, "%s: pg_store_open: %s\n", who, err);
		abort();
	}
	return st;
}

static inline int64_t fuzz_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
