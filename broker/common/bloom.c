/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bloom filter with double hashing (Kirsch and Mitzenmacher): probe i is
 * h1 + i * h2, both halves of one 64-bit FNV-1a hash, masked to nbits.
 */
#include "bloom.h"

#include <stdlib.h>
#include <string.h>

static uint64_t bloom_hash(const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	/* Final mix (from MurmurHash3's fmix64) so both halves are well spread. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

int pg_bloom_init(struct pg_bloom *b, unsigned log2_bits, unsigned k)
{
	b->nbits = (uint64_t)1 << log2_bits;
	b->k = k;
	b->bits = calloc((size_t)(b->nbits / 64), sizeof(uint64_t));
	return b->bits ? 0 : -1;
}

void pg_bloom_free(struct pg_bloom *b)
{
	free(b->bits);
	b->bits = NULL;
}

void pg_bloom_clear(struct pg_bloom *b)
{
	memset(b->bits, 0, (size_t)(b->nbits / 64) * sizeof(uint64_t));
}

void pg_bloom_add(struct pg_bloom *b, const void *key, size_t len)
{
	uint64_t h = bloom_hash(key, len), h1 = h & 0xffffffffu, h2 = (h >> 32) | 1;
	unsigned i;

	for (i = 0; i < b->k; i++) {
		uint64_t bit = (h1 + i * h2) & (b->nbits - 1);
		b->bits[bit / 64] |= (uint64_t)1 << (bit % 64);
	}
}

bool pg_bloom_maybe(const struct pg_bloom *b, const void *key, size_t len)
{
	uint64_t h = bloom_hash(key, len), h1 = h & 0xffffffffu, h2 = (h >> 32) | 1;
	unsigned i;

	for (i = 0; i < b->k; i++) {
		uint64_t bit = (h1 + i * h2) & (b->nbits - 1);
		if (!(b->bits[bit / 64] & ((uint64_t)1 << (bit % 64)))) {
			return false;
		}
	}
	return true;
}
