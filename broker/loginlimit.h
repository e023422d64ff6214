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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PG_LOGINLIMIT_MAX_ADDRS 100000

struct pg_loginlimit;

/* A new limiter (NULL when out of memory). limit 0 disables it. */
struct pg_loginlimit *pg_loginlimit_new(unsigned limit, unsigned window_s);
void pg_loginlimit_free(struct pg_loginlimit *ll);

/* True if addr has reached the limit in its current window. */
bool pg_loginlimit_blocked(struct pg_loginlimit *ll, const char *addr, int64_t now_s);

/* Counts one failed login from addr. */
void pg_loginlimit_fail(struct pg_loginlimit *ll, const char *addr, int64_t now_s);

/* Drops windows that have ended; call now and then (the plugin's tick). */
void pg_loginlimit_expire(struct pg_loginlimit *ll, int64_t now_s);

/* Addresses tracked now. */
size_t pg_loginlimit_tracked(const struct pg_loginlimit *ll);

#endif
