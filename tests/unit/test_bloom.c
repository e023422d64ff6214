/* SPDX-License-Identifier: Apache-2.0 */
/* Bloom filter: no false negatives ever; false positives near the design rate. */
#include <stdio.h>

#include "bloom.h"
#include "check.h"

static void test_added_keys_are_always_found(void)
{
	struct pg_bloom b;
	char key[32];
	int i, misses = 0;

	CHECK_EQ(pg_bloom_init(&b, 16, 7), 0);
	for (i = 0; i < 5000; i++) {
		int n = snprintf(key, sizeof(key), "alice m-%d", i);
		pg_bloom_add(&b, key, (size_t)n);
	}
	for (i = 0; i < 5000; i++) {
		int n = snprintf(key, sizeof(key), "alice m-%d", i);
		misses += !pg_bloom_maybe(&b, key, (size_t)n);
	}
	CHECK_EQ(misses, 0);
	pg_bloom_free(&b);
}

static void test_false_positive_rate_is_low(void)
{
	struct pg_bloom b;
	char key[32];
	int i, fp = 0;

	/* 2^16 bits, 7 probes, 5000 keys: about 1% expected. */
	CHECK_EQ(pg_bloom_init(&b, 16, 7), 0);
	for (i = 0; i < 5000; i++) {
		int n = snprintf(key, sizeof(key), "in-%d", i);
		pg_bloom_add(&b, key, (size_t)n);
	}
	for (i = 0; i < 100000; i++) {
		int n = snprintf(key, sizeof(key), "out-%d", i);
		fp += pg_bloom_maybe(&b, key, (size_t)n);
	}
	CHECK(fp < 3000); /* < 3% */
	pg_bloom_free(&b);
}

static void test_clear_forgets_everything(void)
{
	struct pg_bloom b;

	CHECK_EQ(pg_bloom_init(&b, 10, 4), 0);
	CHECK(!pg_bloom_maybe(&b, "x", 1));
	pg_bloom_add(&b, "x", 1);
	CHECK(pg_bloom_maybe(&b, "x", 1));
	pg_bloom_clear(&b);
	CHECK(!pg_bloom_maybe(&b, "x", 1));
	/* Length is part of the key. */
	pg_bloom_add(&b, "ab", 2);
	CHECK(pg_bloom_maybe(&b, "ab", 2));
	pg_bloom_free(&b);
}

int main(void)
{
	RUN(test_added_keys_are_always_found);
	RUN(test_false_positive_rate_is_low);
	RUN(test_clear_forgets_everything);
	return check_exit();
}
