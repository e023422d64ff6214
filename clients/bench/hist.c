/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The log-linear histogram of hist.h. A value v >= 256 with highest bit e
 * falls into bucket 256 + (e - 8) * 128 + (the 7 bits below the highest):
 * the bucket is 2^(e-7) wide and starts at >= 2^e, hence the relative
 * precision. Percentiles walk the buckets (3,968 of them) once.
 */
#include "hist.h"

#include <string.h>

static unsigned hist_index(uint64_t v)
{
	unsigned e;

	if (v < 2 * BENCH_HIST_SUB) {
		return (unsigned)v;
	}
	e = 63u - (unsigned)__builtin_clzll(v);
	return 2 * BENCH_HIST_SUB + (e - 8) * BENCH_HIST_SUB +
	       (unsigned)((v >> (e - BENCH_HIST_SUB_BITS)) - BENCH_HIST_SUB);
}

/* The midpoint of bucket i: what a value in it is reported as. */
static uint64_t hist_mid(unsigned i)
{
	unsigned e, sub;
	uint64_t width;

	if (i < 2 * BENCH_HIST_SUB) {
		return i;
	}
	e = 8 + (i - 2 * BENCH_HIST_SUB) / BENCH_HIST_SUB;
	sub = (i - 2 * BENCH_HIST_SUB) % BENCH_HIST_SUB;
	width = 1ULL << (e - BENCH_HIST_SUB_BITS);
	return ((uint64_t)(BENCH_HIST_SUB + sub) << (e - BENCH_HIST_SUB_BITS)) + width / 2;
}

void bench_hist_init(struct bench_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void bench_hist_record(struct bench_hist *h, uint64_t v)
{
	if (v > BENCH_HIST_MAX) {
		v = BENCH_HIST_MAX;
		h->clamped++;
	}
	h->counts[hist_index(v)]++;
	h->total++;
	h->sum += (double)v;
	if (v < h->min) {
		h->min = v;
	}
	if (v > h->max) {
		h->max = v;
	}
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
	unsigned i;

	for (i = 0; i < BENCH_HIST_BUCKETS; i++) {
		dst->counts[i] += src->counts[i];
	}
	dst->total += src->total;
	dst->clamped += src->clamped;
	dst->sum += src->sum;
	if (src->min < dst->min) {
		dst->min = src->min;
	}
	if (src->max > dst->max) {
		dst->max = src->max;
	}
}

uint64_t bench_hist_value_at(const struct bench_hist *h, double pct)
{
	uint64_t rank, cum = 0, v;
	double r;
	unsigned i;

	if (h->total == 0) {
		return 0;
	}
	if (pct <= 0) {
		return h->min;
	}
	if (pct >= 100) {
		return h->max;
	}
	r = pct / 100.0 * (double)h->total;
	rank = (uint64_t)r;
	if ((double)rank < r) {
		rank++;
	}
	if (rank == 0) {
		rank = 1;
	}
	for (i = 0; i < BENCH_HIST_BUCKETS; i++) {
		cum += h->counts[i];
		if (cum >= rank) {
			break;
		}
	}
	v = hist_mid(i < BENCH_HIST_BUCKETS ? i : BENCH_HIST_BUCKETS - 1);
	/* The bucket's midpoint may lie outside what was seen. */
	return v < h->min ? h->min : v > h->max ? h->max : v;
}

double bench_hist_mean(const struct bench_hist *h)
{
	return h->total ? h->sum / (double)h->total : 0;
}

int bench_hist_write_curve(const struct bench_hist *h, FILE *f, double divisor, const char *note)
{
	double tail = 1.0, x = 1.0;

	fprintf(f, "# percentile value 1/(1-p) count=%llu%s%s\n", (unsigned long long)h->total,
	        note ? " " : "", note ? note : "");
	/* 0, 50, 75, ...: the tail halves each line. */
	while (tail >= 1e-5) {
		x = 1.0 / tail;
		fprintf(f, "%.6f %.3f %.3f\n", 100.0 * (1.0 - tail),
		        (double)bench_hist_value_at(h, 100.0 * (1.0 - tail)) / divisor, x);
		tail /= 2;
	}
	fprintf(f, "%.6f %.3f %.3f\n", 99.999, (double)bench_hist_value_at(h, 99.999) / divisor,
	        1e5);
	x = (double)h->total > 2e5 ? (double)h->total : 2e5;
	fprintf(f, "%.6f %.3f %.3f\n", 100.0, (double)h->max / divisor, x);
	return ferror(f) ? -1 : 0;
}
