/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Failed-login limiter: a fixed window per address, opened by the first
 * failure. Entries are kept in insertion order (uthash keeps it), which is
 * also the order their windows end, so expiry stops at the first live one.
 */
#include "loginlimit.h"

#include <stdlib.h>
#include <string.h>

#include <uthash.h>

struct addr_entry {
	int64_t window_start;
	unsigned failures;
	UT_hash_handle hh;
	char addr[]; /* key */
};

struct pg_loginlimit {
	unsigned limit;
	unsigned window_s;
	struct addr_entry *addrs;
};

struct pg_loginlimit *pg_loginlimit_new(unsigned limit, unsigned window_s)
{
	struct pg_loginlimit *ll = calloc(1, sizeof(*ll));

	if (ll) {
		ll->limit = limit;
		ll->window_s = window_s;
	}
	return ll;
}

void pg_loginlimit_free(struct pg_loginlimit *ll)
{
	struct addr_entry *e, *tmp;

	if (ll == NULL) {
		return;
	}
	HASH_ITER(hh, ll->addrs, e, tmp)
	{
		HASH_DEL(ll->addrs, e);
		free(e);
	}
	free(ll);
}

static void loginlimit_drop(struct pg_loginlimit *ll, struct addr_entry *e)
{
	HASH_DEL(ll->addrs, e);
	free(e);
}

static struct addr_entry *loginlimit_find(struct pg_loginlimit *ll, const char *addr, int64_t now_s)
{
	struct addr_entry *e;

	HASH_FIND_STR(ll->addrs, addr, e);
	if (e != NULL && now_s >= e->window_start + (int64_t)ll->window_s) {
		loginlimit_drop(ll, e);
		e = NULL;
	}
	return e;
}

bool pg_loginlimit_blocked(struct pg_loginlimit *ll, const char *addr, int64_t now_s)
{
	struct addr_entry *e;

	if (ll == NULL || ll->limit == 0 || addr == NULL) {
		return false;
	}
	e = loginlimit_find(ll, addr, now_s);
	return e != NULL && e->failures >= ll->limit;
}

void pg_loginlimit_fail(struct pg_loginlimit *ll, const char *addr, int64_t now_s)
{
	struct addr_entry *e;
	size_t len;

	if (ll == NULL || ll->limit == 0 || addr == NULL) {
		return;
	}
	e = loginlimit_find(ll, addr, now_s);
	if (e != NULL) {
		e->failures++;
		return;
	}
	if (HASH_COUNT(ll->addrs) >= PG_LOGINLIMIT_MAX_ADDRS) {
		loginlimit_drop(ll, ll->addrs); /* the oldest window */
	}
	len = strlen(addr);
	e = malloc(sizeof(*e) + len + 1);
	if (e == NULL) {
		return;
	}
	memcpy(e->addr, addr, len + 1);
	e->window_start = now_s;
	e->failures = 1;
	HASH_ADD_KEYPTR(hh, ll->addrs, e->addr, len, e);
}

void pg_loginlimit_expire(struct pg_loginlimit *ll, int64_t now_s)
{
	struct addr_entry *e, *tmp;

	if (ll == NULL) {
		return;
	}
	HASH_ITER(hh, ll->addrs, e, tmp)
	{
		if (now_s < e->window_start + (int64_t)ll->window_s) {
			break;
		}
		loginlimit_drop(ll, e);
	}
}

size_t pg_loginlimit_tracked(const struct pg_loginlimit *ll)
{
	return ll ? HASH_COUNT(ll->addrs) : 0;
}
