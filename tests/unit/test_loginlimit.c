/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Failed-login limiter (loginlimit.c, docs/auth.md): blocking after N failures
 * within a window, per address, unblocking when the window ends, expiry,
 * the memory bound, and limit 0 meaning off.
 */
#include <stdio.h>

#include "check.h"
#include "loginlimit.h"

static void test_blocks_after_limit_failures_within_window(void)
{
	struct pg_loginlimit *ll = pg_loginlimit_new(3, 60);

	CHECK(ll != NULL);
	CHECK(!pg_loginlimit_blocked(ll, "10.0.0.1", 100));
	pg_loginlimit_fail(ll, "10.0.0.1", 100);
	CHECK(!pg_loginlimit_blocked(ll, "10.0.0.1", 100));
	pg_loginlimit_fail(ll, "10.0.0.1", 120);
	CHECK(!pg_loginlimit_blocked(ll, "10.0.0.1", 120));
	pg_loginlimit_fail(ll, "10.0.0.1", 159);
	CHECK(pg_loginlimit_blocked(ll, "10.0.0.1", 159));
	/* More failures while blocked keep it blocked, in the same window. */
	pg_loginlimit_fail(ll, "10.0.0.1", 159);
	CHECK(pg_loginlimit_blocked(ll, "10.0.0.1", 159));
	CHECK_EQ(pg_loginlimit_tracked(ll), 1);
	pg_loginlimit_free(ll);
}

static void test_failures_spread_over_windows_do_not_block(void)
{
	struct pg_loginlimit *ll = pg_loginlimit_new(3, 60);

	pg_loginlimit_fail(ll, "10.0.0.1", 0);
	pg_loginlimit_fail(ll, "10.0.0.1", 59);
	/* The window opened by the first failure ends at 60; this opens another. */
	pg_loginlimit_fail(ll, "10.0.0.1", 60);
	CHECK(!pg_loginlimit_blocked(ll, "10.0.0.1", 60));
	pg_loginlimit_fail(ll, "10.0.0.1", 61);
	CHECK(!pg_loginlimit_blocked(ll, "10.0.0.1", 61));
	pg_loginlimit_fail(ll, "10.0.0.1", 119);
	CHECK(pg_loginlimit_blocked(ll, "10.0.0.1", 119));
	pg_loginlimit_free(ll);
}

static void test_limit_is_per_address(void)
{
	struct pg_loginlimit *ll = pg_loginlimit_new(2, 60);

	pg_loginlimit_fail(ll, "10.0.0.1", 10);
	pg_loginlimit_fail(ll, "10.0.0.1", 11);
	pg_loginlimit_fail(ll, "10.0.0.2", 11);
	CHECK(pg_loginlimit_blocked(ll, "10.0.0.1", 12));
	CHECK(!pg_loginlimit_blocked(ll, "10.0.0.2", 12));
	CHECK(!pg_loginlimit_blocked(ll, "10.0.0.10", 12));
	CHECK(!pg_loginlimit_blocked(ll, "::1", 12));
	CHECK_EQ(pg_loginlimit_tracked(ll), 2);
	pg_loginlimit_free(ll);
}

static void test_unblocks_when_window_ends(void)
{
	struct pg_loginlimit *ll = pg_loginlimit_new(2, 60);

	pg_loginlimit_fail(ll, "10.0.0.1", 1000);
	pg_loginlimit_fail(ll, "10.0.0.1", 1001);
	CHECK(pg_loginlimit_blocked(ll, "10.0.0.1", 1001));
	CHECK(pg_loginlimit_blocked(ll, "10.0.0.1", 1059));
	CHECK(!pg_loginlimit_blocked(ll, "10.0.0.1", 1060));
	/* The ended window was dropped: a new failure starts counting at 1. */
	CHECK_EQ(pg_loginlimit_tracked(ll), 0);
	pg_loginlimit_fail(ll, "10.0.0.1", 1061);
	CHECK(!pg_loginlimit_blocked(ll, "10.0.0.1", 1061));
	pg_loginlimit_fail(ll, "10.0.0.1", 1062);
	CHECK(pg_loginlimit_blocked(ll, "10.0.0.1", 1062));
	pg_loginlimit_free(ll);
}

static void test_expire_drops_ended_windows(void)
{
	struct pg_loginlimit *ll = pg_loginlimit_new(5, 60);

	pg_loginlimit_fail(ll, "a", 0);
	pg_loginlimit_fail(ll, "b", 30);
	pg_loginlimit_fail(ll, "c", 45);
	pg_loginlimit_fail(ll, "a", 50);
	CHECK_EQ(pg_loginlimit_tracked(ll), 3);
	pg_loginlimit_expire(ll, 59);
	CHECK_EQ(pg_loginlimit_tracked(ll), 3);
	pg_loginlimit_expire(ll, 60);
	CHECK_EQ(pg_loginlimit_tracked(ll), 2);
	pg_loginlimit_expire(ll, 90);
	CHECK_EQ(pg_loginlimit_tracked(ll), 1);
	pg_loginlimit_expire(ll, 104);
	CHECK_EQ(pg_loginlimit_tracked(ll), 1);
	pg_loginlimit_expire(ll, 1000000);
	CHECK_EQ(pg_loginlimit_tracked(ll), 0);
	pg_loginlimit_expire(ll, 1000001);
	CHECK_EQ(pg_loginlimit_tracked(ll), 0);
	pg_loginlimit_free(ll);
}

static void test_limit_zero_disables(void)
{
	struct pg_loginlimit *ll = pg_loginlimit_new(0, 60);
	int i;

	CHECK(ll != NULL);
	for (i = 0; i < 100; i++) {
		pg_loginlimit_fail(ll, "10.0.0.1", 5);
	}
	CHECK(!pg_loginlimit_blocked(ll, "10.0.0.1", 5));
	CHECK_EQ(pg_loginlimit_tracked(ll), 0);
	pg_loginlimit_free(ll);
}

static void test_null_limiter_and_address_are_harmless(void)
{
	struct pg_loginlimit *ll = pg_loginlimit_new(1, 60);

	CHECK(!pg_loginlimit_blocked(NULL, "10.0.0.1", 5));
	pg_loginlimit_fail(NULL, "10.0.0.1", 5);
	pg_loginlimit_expire(NULL, 5);
	CHECK_EQ(pg_loginlimit_tracked(NULL), 0);
	pg_loginlimit_free(NULL);
	pg_loginlimit_fail(ll, NULL, 5);
	CHECK(!pg_loginlimit_blocked(ll, NULL, 5));
	CHECK_EQ(pg_loginlimit_tracked(ll), 0);
	pg_loginlimit_free(ll);
}

static void test_memory_bound_drops_oldest(void)
{
	struct pg_loginlimit *ll = pg_loginlimit_new(1, 3600);
	char addr[32];
	int i;

	for (i = 0; i < PG_LOGINLIMIT_MAX_ADDRS; i++) {
		snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		pg_loginlimit_fail(ll, addr, 100 + i / 1000);
	}
	CHECK_EQ(pg_loginlimit_tracked(ll), PG_LOGINLIMIT_MAX_ADDRS);
	CHECK(pg_loginlimit_blocked(ll, "10.0.0.0", 300));
	pg_loginlimit_fail(ll, "192.168.0.1", 300);
	CHECK_EQ(pg_loginlimit_tracked(ll), PG_LOGINLIMIT_MAX_ADDRS);
	CHECK(pg_loginlimit_blocked(ll, "192.168.0.1", 300));
	/* The oldest window went; the next oldest stays. */
	CHECK(!pg_loginlimit_blocked(ll, "10.0.0.0", 300));
	CHECK(pg_loginlimit_blocked(ll, "10.0.0.1", 300));
	pg_loginlimit_free(ll);
}

int main(void)
{
	RUN(test_blocks_after_limit_failures_within_window);
	RUN(test_failures_spread_over_windows_do_not_block);
	RUN(test_limit_is_per_address);
	RUN(test_unblocks_when_window_ends);
	RUN(test_expire_drops_ended_windows);
	RUN(test_limit_zero_disables);
	RUN(test_null_limiter_and_address_are_harmless);
	RUN(test_memory_bound_drops_oldest);
	return check_exit();
}
