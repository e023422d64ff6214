/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon-bench's latency histogram (clients/bench/hist.c): percentiles within
 * 1 % of the exact ones over 1 us .. 100 s, exact min/max, merge equals
 * recording everything in one, values above the range clamped, an empty
 * histogram, and the percentile curve's steps (increasing x, 100 = max).
 */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "hist.h"

static struct bench_hist h1, h2, h3;

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The exact value at pct of sorted[0..n): the smallest with >= pct % at or below. */
static uint64_t exact_at(const uint64_t *sorted, size_t n, double pct)
{
	double r = pct / 100.0 * (double)n;
	size_t rank = (size_t)r;

	if ((double)rank < r) {
		rank++;
	}
	return sorted[rank ? rank - 1 : 0];
}

static int within(uint64_t got, uint64_t want, double rel)
{
	double d = (double)got - (double)want;

	if (d < 0) {
		d = -d;
	}
	return d <= rel * (double)want;
}

static uint64_t rnd_state = 88172645463325252ULL;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static void test_percentiles_within_one_percent_over_the_range(void)
{
	enum { N = 200000 };
	static const double pcts[] = {1, 10, 25, 50, 75, 90, 99, 99.9, 99.99};
	uint64_t *v = malloc(N * sizeof(*v));
	size_t i, bad = 0;

	CHECK(v != NULL);
	if (v == NULL) {
		return;
	}
	bench_hist_init(&h1);
	/* Log-uniform from 1 us to 100 s, in ns. */
	for (i = 0; i < N; i++) {
		double e = 3.0 + 8.0 * (double)(rnd() % 1000000) / 1e6;
		double x = 1.0;
		int k;
		for (k = 0; k < (int)e; k++) {
			x *= 10;
		}
		x *= 1.0 + 9.0 * (e - (int)e);
		v[i] = (uint64_t)x;
		bench_hist_record(&h1, v[i]);
	}
	qsort(v, N, sizeof(*v), u64_cmp);
	for (i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
		uint64_t got = bench_hist_value_at(&h1, pcts[i]), want = exact_at(v, N, pcts[i]);
		if (!within(got, want, 0.01)) {
			fprintf(stderr, "p%g: %llu, exact %llu\n", pcts[i], (unsigned long long)got,
			        (unsigned long long)want);
			bad++;
		}
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(bench_hist_value_at(&h1, 0), v[0]);
	CHECK_EQ(bench_hist_value_at(&h1, 100), v[N - 1]);
	CHECK_EQ(h1.total, N);
	free(v);
}

static void test_every_single_value_reads_back_within_half_a_percent(void)
{
	uint64_t v;
	size_t bad = 0;

	/* One value alone: every percentile is that value, to the bucket. */
	for (v = 1000; v <= BENCH_HIST_MAX; v = v * 3 / 2 + 7) {
		bench_hist_init(&h1);
		bench_hist_record(&h1, v);
		bench_hist_record(&h1, v + 1);
		if (!within(bench_hist_value_at(&h1, 50), v, 0.005)) {
			bad++;
		}
	}
	CHECK_EQ(bad, 0);
	/* Small values are exact. */
	bench_hist_init(&h1);
	bench_hist_record(&h1, 3);
	bench_hist_record(&h1, 200);
	CHECK_EQ(bench_hist_value_at(&h1, 50), 3);
	CHECK_EQ(bench_hist_value_at(&h1, 99), 200);
}

static void test_merge_equals_one_histogram(void)
{
	uint64_t i, x;

	bench_hist_init(&h1);
	bench_hist_init(&h2);
	bench_hist_init(&h3);
	for (i = 0; i < 50000; i++) {
		x = 1000 + rnd() % 10000000;
		bench_hist_record(i % 3 ? &h1 : &h2, x);
		bench_hist_record(&h3, x);
	}
	bench_hist_merge(&h1, &h2);
	CHECK_EQ(h1.total, h3.total);
	CHECK_EQ(h1.min, h3.min);
	CHECK_EQ(h1.max, h3.max);
	CHECK(memcmp(h1.counts, h3.counts, sizeof(h1.counts)) == 0);
	CHECK_EQ(bench_hist_value_at(&h1, 99), bench_hist_value_at(&h3, 99));
	CHECK((long long)bench_hist_mean(&h1) == (long long)bench_hist_mean(&h3));
}

static void test_above_the_range_is_clamped_and_empty_is_zero(void)
{
	bench_hist_init(&h1);
	CHECK_EQ(bench_hist_value_at(&h1, 50), 0);
	CHECK_EQ(bench_hist_value_at(&h1, 100), 0);
	CHECK(bench_hist_mean(&h1) == 0);
	bench_hist_record(&h1, BENCH_HIST_MAX * 10);
	bench_hist_record(&h1, UINT64_MAX);
	CHECK_EQ(h1.clamped, 2);
	CHECK_EQ(bench_hist_value_at(&h1, 50), BENCH_HIST_MAX);
	CHECK_EQ(h1.max, BENCH_HIST_MAX);
}

static void test_curve_steps_halve_the_tail_and_end_at_the_max(void)
{
	char *buf = NULL, *line, *save = NULL;
	size_t len = 0, lines = 0;
	double prev_x = 0, prev_p = -1, p, val, x, last_val = 0, last_p = 0;
	FILE *f = open_memstream(&buf, &len);
	uint64_t i;

	bench_hist_init(&h1);
	for (i = 1; i <= 100000; i++) {
		bench_hist_record(&h1, i * 1000);
	}
	CHECK(f != NULL);
	if (f == NULL) {
		return;
	}
	CHECK_EQ(bench_hist_write_curve(&h1, f, 1000.0, "test"), 0);
	fclose(f);
	CHECK(buf[0] == '#');
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#') {
			continue;
		}
		CHECK_EQ(sscanf(line, "%lf %lf %lf", &p, &val, &x), 3);
		CHECK(p > prev_p);
		CHECK(x > prev_x);
		if (lines == 1) {
			CHECK(p == 50.0);
			CHECK(within((uint64_t)val, 50000, 0.01));
		}
		prev_p = p;
		prev_x = x;
		last_p = p;
		last_val = val;
		lines++;
	}
	CHECK(lines >= 18);
	CHECK(last_p == 100.0);
	CHECK(last_val == 100000.0);
	free(buf);
}

int main(void)
{
	RUN(test_percentiles_within_one_percent_over_the_range);
	RUN(test_every_single_value_reads_back_within_half_a_percent);
	RUN(test_merge_equals_one_histogram);
	RUN(test_above_the_range_is_clamped_and_empty_is_zero);
	RUN(test_curve_steps_halve_the_tail_and_end_at_the_max);
	return check_exit();
}
