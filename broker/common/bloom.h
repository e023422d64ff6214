/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A fixed-size Bloom filter over byte strings: "certainly not seen" or
 * "maybe seen". The store puts it in front of its dedup table so that a new
 * (sender, msg-id) — the common case — costs no SQLite lookup.
 */
#ifndef PIGEON_BLOOM_H
#define PIGEON_BLOOM_H

#include "export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pg_bloom {
	uint64_t *bits;
	uint64_t nbits; /* a power of two */
	unsigned k;     /* probes per key */
};

/* Sets up a filter of 2^log2_bits bits and k probes. Returns 0, or -1 (no memory). */
PG_EXPORT int pg_bloom_init(struct pg_bloom *b, unsigned log2_bits, unsigned k);
PG_EXPORT void pg_bloom_free(struct pg_bloom *b);
PG_EXPORT void pg_bloom_clear(struct pg_bloom *b);
PG_EXPORT void pg_bloom_add(struct pg_bloom *b, const void *key, size_t len);
/* False: key was never added since the last clear. True: it may have been. */
PG_EXPORT bool pg_bloom_maybe(const struct pg_bloom *b, const void *key, size_t len);

#endif
