/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fixed-bucket histograms and their $SYS payload; see histogram.h. The
 * contract's bucket bounds live here, in ticks, so that one table says what
 * docs/protocol.md and docs/push.md list.
 */
#include "histogram.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Seconds in microseconds: 0.0005 0.001 0.0025 ... 10 */
static const uint64_t store_apply_us[] = {500,     1000,    2500,    5000,    10000,
                                          25000,   50000,   100000,  250000,  500000,
                                          1000000, 2500000, 5000000, 10000000};
static const uint64_t sync_reply_bytes[] = {256,   1024,   4096,    16384,
                                            65536, 262144, 1048576, 4194304};
/* Seconds in microseconds: 0.005 0.01 ... 30 */
static const uint64_t push_latency_us[] = {5000,   10000,   25000,   50000,   100000,   250000,
                                           500000, 1000000, 2500000, 5000000, 10000000, 30000000};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const struct pg_histogram_spec pg_histogram_store_apply_seconds = {store_apply_us,
                                                                   COUNT(store_apply_us), 6};
const struct pg_histogram_spec pg_histogram_sync_reply_bytes = {sync_reply_bytes,
                                                                COUNT(sync_reply_bytes), 0};
const struct pg_histogram_spec pg_histogram_push_latency_seconds = {push_latency_us,
                                                                    COUNT(push_latency_us), 6};

void pg_histogram_init(struct pg_histogram *h, const struct pg_histogram_spec *spec)
{
	size_t i;

	h->spec = spec;
	for (i = 0; i <= PG_HISTOGRAM_BOUNDS_MAX; i++) {
		atomic_init(&h->buckets[i], 0);
	}
	atomic_init(&h->sum, 0);
}

void pg_histogram_observe(struct pg_histogram *h, uint64_t ticks)
{
	const struct pg_histogram_spec *s = h->spec;
	size_t i = 0;

	while (i < s->nbounds && ticks > s->bounds[i]) {
		i++;
	}
	atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum, ticks, memory_order_relaxed);
}

uint64_t pg_histogram_count(const struct pg_histogram *h)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i <= h->spec->nbounds; i++) {
		n += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
	}
	return n;
}

/* ticks as an exact decimal of the unit without trailing zeros: 500 at 6 -> "0.0005". */
static int format_bound(char *buf, size_t len, uint64_t ticks, unsigned decimals)
{
	uint64_t scale = 1, frac;
	unsigned i;
	char digits[24];
	size_t n;

	for (i = 0; i < decimals; i++) {
		scale *= 10;
	}
	frac = ticks % scale;
	if (frac == 0) {
		return snprintf(buf, len, "%" PRIu64, ticks / scale);
	}
	snprintf(digits, sizeof(digits), "%0*" PRIu64, (int)decimals, frac);
	n = strlen(digits);
	while (n > 0 && digits[n - 1] == '0') {
		digits[--n] = '\0';
	}
	return snprintf(buf, len, "%" PRIu64 ".%s", ticks / scale, digits);
}

int pg_histogram_format(const struct pg_histogram *h, char *buf, size_t len)
{
	const struct pg_histogram_spec *s = h->spec;
	double scale = 1;
	uint64_t cum = 0;
	size_t off = 0, i;
	int n;

	for (i = 0; i < s->decimals; i++) {
		scale *= 10;
	}
	for (i = 0; i < s->nbounds; i++) {
		cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
		n = format_bound(buf + off, len - off, s->bounds[i], s->decimals);
		if (n < 0 || (size_t)n >= len - off) {
			return -1;
		}
		off += (size_t)n;
		n = snprintf(buf + off, len - off, ":%" PRIu64 " ", cum);
		if (n < 0 || (size_t)n >= len - off) {
			return -1;
		}
		off += (size_t)n;
	}
	cum += atomic_load_explicit(&h->buckets[s->nbounds], memory_order_relaxed);
	n = snprintf(buf + off, len - off, "+Inf:%" PRIu64 " sum:%.9g", cum,
	             (double)atomic_load_explicit(&h->sum, memory_order_relaxed) / scale);
	if (n < 0 || (size_t)n >= len - off) {
		return -1;
	}
	return (int)(off + (size_t)n);
}
