/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A log-linear latency histogram in the manner of HdrHistogram, for
 * pigeon-bench's open and throughput modes. Values are unsigned integers in
 * any unit (the modes record nanoseconds); every value below 256 has its own
 * bucket, above that each power of two is split into 128 buckets, so a
 * reported value (its bucket's midpoint) is within 1/256 (0.4 %) of every
 * value recorded in that bucket. Values above BENCH_HIST_MAX (100 s in ns)
 * count as BENCH_HIST_MAX; the exact minimum and maximum are kept aside.
 *
 * Fixed memory (one struct, ~32 KB, no allocation), O(1) record. Not
 * thread-safe: one histogram per thread, merged at the end (bench_hist_merge).
 */
#ifndef PIGEON_BENCH_HIST_H
#define PIGEON_BENCH_HIST_H

#include <stdint.h>
#include <stdio.h>

/* 100 s in nanoseconds: the largest value told apart from larger ones. */
#define BENCH_HIST_MAX 100000000000ULL
#define BENCH_HIST_SUB_BITS 7
#define BENCH_HIST_SUB (1u << BENCH_HIST_SUB_BITS)
/* 256 exact buckets, then 128 per power of two from 2^8 to 2^36 (> 100 s). */
#define BENCH_HIST_BUCKETS (2 * BENCH_HIST_SUB + (36 - 8 + 1) * BENCH_HIST_SUB)

struct bench_hist {
	uint64_t counts[BENCH_HIST_BUCKETS];
	uint64_t total;
	uint64_t min, max; /* exact, of the values as recorded (after the clamp) */
	uint64_t clamped;  /* values above BENCH_HIST_MAX */
	double sum;
};

/* Empties h. A zeroed struct is not empty (min): call this first. */
void bench_hist_init(struct bench_hist *h);
void bench_hist_record(struct bench_hist *h, uint64_t v);
/* Adds every value of src to dst. */
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);
/*
 * The value at percentile pct (0..100): the smallest recorded value v (to the
 * bucket's precision) such that at least pct % of the values are <= v. 0 is
 * the minimum and 100 the maximum, both exact. An empty histogram gives 0.
 */
uint64_t bench_hist_value_at(const struct bench_hist *h, double pct);
double bench_hist_mean(const struct bench_hist *h);
/*
 * Writes the percentile curve for gnuplot: a '#' comment line (what the
 * columns are, and note), then "<percentile> <value/divisor> <1/(1-p)>" at
 * HdrHistogram's steps halving the tail (0, 50, 75, 87.5, ... while 1-p >=
 * 1e-5), then 99.999, then "100 <max>" whose third column is the number of
 * values (the maximum is the 1-in-n value) but at least 2e5 (twice the
 * 99.999 line's), so that the x axis keeps increasing. Returns 0, or -1 on a
 * write error.
 */
int bench_hist_write_curve(const struct bench_hist *h, FILE *f, double divisor, const char *note);

#endif
