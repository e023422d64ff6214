/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The $SYS histograms (broker/common/histogram.h): the exact payload of the
 * contract's shapes (docs/protocol.md "Histogram payload"), cumulative
 * counts, le semantics (a value equal to a bound is in that bound's
 * bucket), +Inf, the sum with %.9g, bounds printed as the shortest decimal,
 * a buffer too small, and a reader on another thread that never sees a
 * count go backwards while one writer observes.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "histogram.h"

static struct pg_histogram h;

static const char *fmt(const struct pg_histogram *hist)
{
	static char buf[PG_HISTOGRAM_TEXT_MAX];

	if (pg_histogram_format(hist, buf, sizeof(buf)) < 0) {
		return "(did not fit)";
	}
	return buf;
}

static void test_empty_payloads_list_every_bound(void)
{
	pg_histogram_init(&h, &pg_histogram_store_apply_seconds);
	CHECK_STR(fmt(&h), "0.0005:0 0.001:0 0.0025:0 0.005:0 0.01:0 0.025:0 0.05:0 0.1:0 0.25:0 "
	                   "0.5:0 1:0 2.5:0 5:0 10:0 +Inf:0 sum:0");
	pg_histogram_init(&h, &pg_histogram_sync_reply_bytes);
	CHECK_STR(fmt(&h), "256:0 1024:0 4096:0 16384:0 65536:0 262144:0 1048576:0 4194304:0 "
	                   "+Inf:0 sum:0");
	pg_histogram_init(&h, &pg_histogram_push_latency_seconds);
	CHECK_STR(fmt(&h), "0.005:0 0.01:0 0.025:0 0.05:0 0.1:0 0.25:0 0.5:0 1:0 2.5:0 5:0 10:0 "
	                   "30:0 +Inf:0 sum:0");
	CHECK_EQ(pg_histogram_count(&h), 0);
}

static void test_seconds_are_cumulative_with_le_bounds(void)
{
	pg_histogram_init(&h, &pg_histogram_store_apply_seconds);
	pg_histogram_observe(&h, 500);      /* exactly 0.0005: in le 0.0005 */
	pg_histogram_observe(&h, 501);      /* just above: le 0.001 */
	pg_histogram_observe(&h, 1000);     /* exactly 0.001 */
	pg_histogram_observe(&h, 10000000); /* exactly 10 */
	pg_histogram_observe(&h, 20000000); /* 20 s: +Inf only */
	CHECK_STR(fmt(&h), "0.0005:1 0.001:3 0.0025:3 0.005:3 0.01:3 0.025:3 0.05:3 0.1:3 0.25:3 "
	                   "0.5:3 1:3 2.5:3 5:3 10:4 +Inf:5 sum:30.002001");
	CHECK_EQ(pg_histogram_count(&h), 5);
}

static void test_bytes_and_zero(void)
{
	pg_histogram_init(&h, &pg_histogram_sync_reply_bytes);
	pg_histogram_observe(&h, 0);
	pg_histogram_observe(&h, 256);
	pg_histogram_observe(&h, 257);
	pg_histogram_observe(&h, 4194304);
	pg_histogram_observe(&h, 4194305);
	CHECK_STR(fmt(&h), "256:2 1024:3 4096:3 16384:3 65536:3 262144:3 1048576:3 4194304:4 "
	                   "+Inf:5 sum:8389122");
}

static void test_sum_is_printed_with_nine_significant_digits(void)
{
	static const uint64_t one[] = {1000000};
	static const struct pg_histogram_spec spec = {one, 1, 6};

	pg_histogram_init(&h, &spec);
	pg_histogram_observe(&h, 12345);
	CHECK_STR(fmt(&h), "1:1 +Inf:1 sum:0.012345");
	pg_histogram_observe(&h, 333);
	CHECK_STR(fmt(&h), "1:2 +Inf:2 sum:0.012678");
	pg_histogram_observe(&h, UINT64_C(123456789012)); /* 123456.789012 s */
	CHECK_STR(fmt(&h), "1:2 +Inf:3 sum:123456.802");
}

static void test_bounds_are_the_shortest_decimal(void)
{
	static const uint64_t b[] = {1, 10, 1500, 2000, 123456};
	static const struct pg_histogram_spec spec = {b, 5, 3};

	pg_histogram_init(&h, &spec);
	CHECK_STR(fmt(&h), "0.001:0 0.01:0 1.5:0 2:0 123.456:0 +Inf:0 sum:0");
}

static void test_a_short_buffer_is_refused(void)
{
	char small[16];

	pg_histogram_init(&h, &pg_histogram_sync_reply_bytes);
	CHECK_EQ(pg_histogram_format(&h, small, sizeof(small)), -1);
	CHECK_EQ(pg_histogram_format(&h, small, 0), -1);
	{
		char exact[128];
		int n = pg_histogram_format(&h, exact, sizeof(exact));

		CHECK(n > 0);
		CHECK_EQ(pg_histogram_format(&h, exact, (size_t)n + 1), n);
		CHECK_EQ(pg_histogram_format(&h, exact, (size_t)n), -1);
	}
}

#define WRITES 200000

static void *writer(void *arg)
{
	struct pg_histogram *hist = arg;
	uint64_t i;

	for (i = 0; i < WRITES; i++) {
		pg_histogram_observe(hist, (i * 7919) % 5000000);
	}
	return NULL;
}

/* Parses "le:count" pairs; checks each cumulative count against prev[] and updates it. */
static bool counts_never_decrease(const char *text, uint64_t *prev, size_t n)
{
	const char *p = text;
	uint64_t last = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		const char *colon = strchr(p, ':');
		uint64_t v;

		if (colon == NULL) {
			return false;
		}
		v = strtoull(colon + 1, (char **)&p, 10);
		if (v < prev[i] || v < last) {
			return false;
		}
		prev[i] = last = v;
	}
	return true;
}

static void test_a_reader_on_another_thread_sees_no_count_go_back(void)
{
	pthread_t t;
	uint64_t prev[PG_HISTOGRAM_BOUNDS_MAX + 1] = {0};
	size_t n = pg_histogram_push_latency_seconds.nbounds + 1;
	int reads = 0;
	bool ok = true;

	pg_histogram_init(&h, &pg_histogram_push_latency_seconds);
	CHECK_EQ(pthread_create(&t, NULL, writer, &h), 0);
	while (pg_histogram_count(&h) < WRITES && reads < 1000000) {
		ok = ok && counts_never_decrease(fmt(&h), prev, n);
		reads++;
	}
	pthread_join(t, NULL);
	CHECK(ok);
	CHECK(counts_never_decrease(fmt(&h), prev, n));
	CHECK_EQ(prev[n - 1], WRITES);
	CHECK_EQ(pg_histogram_count(&h), WRITES);
}

int main(void)
{
	RUN(test_empty_payloads_list_every_bound);
	RUN(test_seconds_are_cumulative_with_le_bounds);
	RUN(test_bytes_and_zero);
	RUN(test_sum_is_printed_with_nine_significant_digits);
	RUN(test_bounds_are_the_shortest_decimal);
	RUN(test_a_short_buffer_is_refused);
	RUN(test_a_reader_on_another_thread_sees_no_count_go_back);
	return check_exit();
}
