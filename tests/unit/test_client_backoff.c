/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reconnect backoff and randomness (clients/lib/backoff.h): equal jitter
 * stays in [ceiling/2, ceiling] for every attempt without overflow, the
 * jitter covers its range, and msg_ids are 32 lowercase hex characters,
 * all different.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "check.h"

static uint64_t ceiling_of(uint32_t attempt, uint32_t min_ms, uint32_t max_ms)
{
	uint64_t c = min_ms;
	uint32_t i;

	for (i = 0; i < attempt && c < max_ms; i++)
		c *= 2;
	return c > max_ms ? max_ms : c;
}

static void test_bounds_for_every_attempt(void)
{
	static const uint32_t rnds[] = {0, 1, 12345, 0x7fffffff, 0x80000000u, UINT32_MAX};
	static const uint32_t cfg[][2] = {{500, 60000}, {1, UINT32_MAX},
	                                  {1000, 1000}, {UINT32_MAX, UINT32_MAX},
	                                  {0, 60000},   {70000, 60000}};
	uint32_t attempt;
	size_t r, c;
	int bad = 0;

	for (c = 0; c < sizeof(cfg) / sizeof(cfg[0]); c++) {
		for (attempt = 0; attempt <= 100; attempt++) {
			uint64_t ceil = ceiling_of(attempt, cfg[c][0], cfg[c][1]);
			for (r = 0; r < sizeof(rnds) / sizeof(rnds[0]); r++) {
				uint32_t d =
				    pgc_backoff_delay_ms(attempt, cfg[c][0], cfg[c][1], rnds[r]);
				if ((d < ceil / 2 || d > ceil) && bad++ < 10) {
					fprintf(stderr, "  min %u max %u attempt %u rnd %u: %u\n",
					        cfg[c][0], cfg[c][1], attempt, rnds[r], d);
				}
			}
		}
	}
	CHECK_EQ(bad, 0);
	/* The defaults: 250-500 ms first, then doubling, 30-60 s from attempt 7 on. */
	CHECK_EQ(pgc_backoff_delay_ms(0, 500, 60000, 0), 250);
	CHECK_EQ(pgc_backoff_delay_ms(0, 500, 60000, 250), 500);
	CHECK_EQ(pgc_backoff_delay_ms(3, 500, 60000, 0), 2000);
	CHECK_EQ(pgc_backoff_delay_ms(7, 500, 60000, 0), 30000);
	CHECK_EQ(pgc_backoff_delay_ms(100, 500, 60000, 30000), 60000);
	CHECK_EQ(pgc_backoff_delay_ms(UINT32_MAX, 500, 60000, 0), 30000);
}

static void test_jitter_spreads_over_the_range(void)
{
	/* Ceiling 8000: delays in [4000, 8000]; 20,000 draws hit both ends' neighbourhoods and
	 * every 400 ms bucket. */
	int buckets[10] = {0}, i, empty = 0;
	uint32_t lo = UINT32_MAX, hi = 0;

	for (i = 0; i < 20000; i++) {
		uint32_t d = pgc_backoff_delay_ms(4, 500, 60000, pgc_random32());
		CHECK(d >= 4000 && d <= 8000);
		if (d < lo)
			lo = d;
		if (d > hi)
			hi = d;
		buckets[d == 8000 ? 9 : (d - 4000) / 400]++;
	}
	for (i = 0; i < 10; i++)
		empty += buckets[i] < 1000; /* 2000 expected in each */
	CHECK_EQ(empty, 0);
	CHECK(lo < 4010);
	CHECK(hi > 7990);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

static void test_msg_ids_are_hex_and_unique(void)
{
	enum { N = 10000 };
	static char ids[N][33];
	int i, bad = 0, dups = 0;

	for (i = 0; i < N; i++) {
		size_t j;
		memset(ids[i], 'x', sizeof(ids[i]));
		pgc_msg_id_new(ids[i]);
		bad += strlen(ids[i]) != 32;
		for (j = 0; j < 32; j++)
			bad += !((ids[i][j] >= '0' && ids[i][j] <= '9') ||
			         (ids[i][j] >= 'a' && ids[i][j] <= 'f'));
	}
	CHECK_EQ(bad, 0);
	qsort(ids, N, sizeof(ids[0]), cmp_str);
	for (i = 1; i < N; i++)
		dups += strcmp(ids[i - 1], ids[i]) == 0;
	CHECK_EQ(dups, 0);
}

static void test_random32_varies(void)
{
	uint32_t first = pgc_random32(), orr = 0, andd = UINT32_MAX;
	int i, same = 0;

	for (i = 0; i < 1000; i++) {
		uint32_t v = pgc_random32();
		same += v == first;
		orr |= v;
		andd &= v;
	}
	CHECK(same < 3);
	CHECK_EQ(orr, UINT32_MAX); /* every bit is sometimes 1 */
	CHECK_EQ(andd, 0);         /* and sometimes 0 */
}

int main(void)
{
	RUN(test_bounds_for_every_attempt);
	RUN(test_jitter_spreads_over_the_range);
	RUN(test_msg_ids_are_hex_and_unique);
	RUN(test_random32_varies);
	return check_exit();
}
