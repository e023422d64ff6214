/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Failed-login limit per client address (docs/auth.md, plugin_opt_login_fail_limit):
 * after `limit` failures within `window_s` seconds, every login from that
 * address is refused until the window of the first failure has passed.
 * Memory is bounded: at most PG_LOGINLIMIT_MAX_ADDRS addresses are tracked;
 * when full, the oldest windows are dropped first.
 */
#ifndef PIGEON_LOGINLIMIT_H
#define PIGEON_LOGINLIMIT_H

#include "export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PG_LOGINLIMIT_MAX_ADDRS 100000

struct pg_loginlimit;

/* A new limiter (NULL when out of memory). limit 0 disables it. */
PG_EXPORT struct pg_loginlimit *pg_loginlimit_new(unsigned limit, unsigned window_s);
PG_EXPORT void pg_loginlimit_free(struct pg_loginlimit *ll);

/* True if addr has reached the limit in its current window. */
PG_EXPORT bool pg_loginlimit_blocked(struct pg_loginlimit *ll, const char *addr, int64_t now_s);

/* Counts one failed login from addr. */
PG_EXPORT void pg_loginlimit_fail(struct pg_loginlimit *ll, const char *addr, int64_t now_s);

/* Drops windows that have ended; call now and then (the plugin's tick). */
PG_EXPORT void pg_loginlimit_expire(struct pg_loginlimit *ll, int64_t now_s);

/* Addresses tracked now. */
PG_EXPORT size_t pg_loginlimit_tracked(const struct pg_loginlimit *ll);

#endif
