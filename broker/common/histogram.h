/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fixed-bucket histograms for the $SYS tree (docs/protocol.md "Counters",
 * the histogram payload): cumulative "le" buckets like Prometheus's, so the
 * exporter can serve them as they are.
 *
 * Values are integers in a base tick: 10^-decimals of the unit the leaf is
 * in (decimals 6: microseconds of a seconds histogram; 0: bytes). Bounds are
 * in ticks too, ascending; a value equal to a bound falls in that bound's
 * bucket (value <= le). Nothing here allocates.
 *
 * Threads: any one thread observes (the counts and the sum are relaxed
 * atomics, so another thread, the broker thread, may format at any time
 * without a lock). A payload read while the writer runs may lag it by an
 * observation, never go backwards, and always has +Inf equal to the sum of
 * its buckets.
 */
#ifndef PIGEON_HISTOGRAM_H
#define PIGEON_HISTOGRAM_H

#include "export.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define PG_HISTOGRAM_BOUNDS_MAX 16
/* Room for any payload of up to PG_HISTOGRAM_BOUNDS_MAX bounds, NUL included. */
#define PG_HISTOGRAM_TEXT_MAX 1024

/* A histogram's shape: bounds in ticks (static storage), and the tick's scale. */
struct pg_histogram_spec {
	const uint64_t *bounds;
	size_t nbounds;    /* 1 .. PG_HISTOGRAM_BOUNDS_MAX */
	unsigned decimals; /* a tick is 10^-decimals of the unit (0 .. 9) */
};

/* The contract's shapes (docs/protocol.md, docs/push.md). */
PG_EXPORT extern const struct pg_histogram_spec pg_histogram_store_apply_seconds;
PG_EXPORT extern const struct pg_histogram_spec pg_histogram_sync_reply_bytes;
PG_EXPORT extern const struct pg_histogram_spec pg_histogram_push_latency_seconds;

struct pg_histogram {
	const struct pg_histogram_spec *spec;
	/* Per bucket, not cumulative; buckets[nbounds] is above the last bound. */
	_Atomic uint64_t buckets[PG_HISTOGRAM_BOUNDS_MAX + 1];
	_Atomic uint64_t sum; /* in ticks */
};

/* Empties h and gives it spec's shape (kept by pointer: static storage). */
PG_EXPORT void pg_histogram_init(struct pg_histogram *h, const struct pg_histogram_spec *spec);

/* Counts one value (in ticks). The one writer thread. */
PG_EXPORT void pg_histogram_observe(struct pg_histogram *h, uint64_t ticks);

/*
 * Writes the payload, NUL-terminated: "<le>:<cumulative> ... +Inf:<count>
 * sum:<sum>", le as the shortest decimal of the bound in the unit, sum in
 * the unit with %.9g. Returns its length, or -1 if it does not fit in len
 * (PG_HISTOGRAM_TEXT_MAX always does). Any thread.
 */
PG_EXPORT int pg_histogram_format(const struct pg_histogram *h, char *buf, size_t len);

/* Observations so far (the +Inf count). Any thread. */
PG_EXPORT uint64_t pg_histogram_count(const struct pg_histogram *h);

#endif
