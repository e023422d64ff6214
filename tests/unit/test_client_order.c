/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The client's reorder buffer (clients/lib/order.h): every seq comes out
 * once, in order, as a message or inside a gap; duplicates are dropped;
 * sync settles turn proven holes into gaps split at oldest_seq, never over
 * an envelope that is held.
 */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "order.h"

static Pigeon__Envelope *env_new(uint64_t seq)
{
	Pigeon__Envelope *e = malloc(sizeof(*e));

	pigeon__envelope__init(e);
	e->seq = seq;
	return e;
}

/* Pops one item and frees its envelope; returns whether there was one. */
static bool pop_expect(struct pgc_order *o, bool is_msg, uint64_t first, uint64_t last,
                       enum pigeon_gap_reason why)
{
	struct pgc_item it;
	bool ok;

	if (!pgc_order_pop(o, &it))
		return false;
	ok = (it.env != NULL) == is_msg && it.first == first && it.last == last;
	if (is_msg)
		ok = ok && it.env->seq == first;
	else
		ok = ok && it.why == why;
	if (!ok)
		fprintf(stderr, "  got %s %llu..%llu why %d\n", it.env ? "msg" : "gap",
		        (unsigned long long)it.first, (unsigned long long)it.last, (int)it.why);
	if (it.env != NULL)
		pigeon__envelope__free_unpacked(it.env, NULL);
	return ok;
}

static void test_in_order_is_ready_at_once(void)
{
	struct pgc_order *o = pgc_order_new(0);
	uint64_t s;

	for (s = 1; s <= 5; s++) {
		CHECK_EQ(pgc_order_offer(o, env_new(s)), PGC_OFFER_READY);
		CHECK(pop_expect(o, true, s, s, 0));
		CHECK_EQ(pgc_order_cursor(o), s);
	}
	struct pgc_item it;
	CHECK(!pgc_order_pop(o, &it));
	CHECK_EQ(pgc_order_held(o), 0);
	CHECK_EQ(pgc_order_highest(o), 5);
	pgc_order_free(o);
}

static void test_duplicates_are_dropped(void)
{
	struct pgc_order *o = pgc_order_new(10);

	CHECK_EQ(pgc_order_offer(o, env_new(10)), PGC_OFFER_DUPLICATE); /* at the cursor */
	CHECK_EQ(pgc_order_offer(o, env_new(3)), PGC_OFFER_DUPLICATE);  /* below it */
	CHECK_EQ(pgc_order_offer(o, env_new(0)), PGC_OFFER_DUPLICATE);  /* INSTANT's seq */
	CHECK_EQ(pgc_order_offer(o, env_new(12)), PGC_OFFER_WAITING);
	CHECK_EQ(pgc_order_offer(o, env_new(12)), PGC_OFFER_DUPLICATE); /* held already */
	CHECK_EQ(pgc_order_held(o), 1);
	CHECK_EQ(pgc_order_offer(o, env_new(11)), PGC_OFFER_READY);
	CHECK(pop_expect(o, true, 11, 11, 0));
	CHECK(pop_expect(o, true, 12, 12, 0));
	CHECK_EQ(pgc_order_offer(o, env_new(11)), PGC_OFFER_DUPLICATE); /* handed over */
	CHECK_EQ(pgc_order_held(o), 0);
	pgc_order_free(o);
}

static void test_out_of_order_waits_then_releases(void)
{
	struct pgc_order *o = pgc_order_new(0);
	struct pgc_item it;

	CHECK_EQ(pgc_order_offer(o, env_new(4)), PGC_OFFER_WAITING);
	CHECK_EQ(pgc_order_offer(o, env_new(2)), PGC_OFFER_WAITING);
	CHECK_EQ(pgc_order_offer(o, env_new(3)), PGC_OFFER_WAITING);
	CHECK(!pgc_order_pop(o, &it));
	CHECK_EQ(pgc_order_held(o), 3);
	CHECK_EQ(pgc_order_highest(o), 4);
	CHECK_EQ(pgc_order_cursor(o), 0);
	CHECK_EQ(pgc_order_offer(o, env_new(1)), PGC_OFFER_READY);
	CHECK(pop_expect(o, true, 1, 1, 0));
	CHECK(pop_expect(o, true, 2, 2, 0));
	CHECK(pop_expect(o, true, 3, 3, 0));
	CHECK(pop_expect(o, true, 4, 4, 0));
	CHECK(!pgc_order_pop(o, &it));
	pgc_order_free(o);
}

static void test_settle_makes_gaps_split_at_oldest(void)
{
	struct pgc_order *o = pgc_order_new(0);
	struct pgc_item it;

	/* Sync after 0: the page held 7 and 9, oldest_seq 5, head 10: 1-4 were dropped by
	 * retention, 5, 6, 8 and 10 are gone. */
	CHECK_EQ(pgc_order_offer(o, env_new(7)), PGC_OFFER_WAITING);
	CHECK_EQ(pgc_order_offer(o, env_new(9)), PGC_OFFER_WAITING);
	CHECK_EQ(pgc_order_settle(o, 0, 10, 5), 0);
	CHECK(pop_expect(o, false, 1, 4, PIGEON_GAP_RETENTION));
	CHECK(pop_expect(o, false, 5, 6, PIGEON_GAP_GONE));
	CHECK(pop_expect(o, true, 7, 7, 0));
	CHECK(pop_expect(o, false, 8, 8, PIGEON_GAP_GONE));
	CHECK(pop_expect(o, true, 9, 9, 0));
	CHECK(pop_expect(o, false, 10, 10, PIGEON_GAP_GONE));
	CHECK(!pgc_order_pop(o, &it));
	CHECK_EQ(pgc_order_cursor(o), 10);
	CHECK_EQ(pgc_order_highest(o), 10);
	pgc_order_free(o);
}

static void test_settle_all_retention_and_all_gone(void)
{
	struct pgc_order *o = pgc_order_new(0);

	/* oldest above upto: everything is retention. */
	CHECK_EQ(pgc_order_settle(o, 0, 3, 100), 0);
	CHECK(pop_expect(o, false, 1, 3, PIGEON_GAP_RETENTION));
	/* oldest at or below the range (or 0): everything gone. */
	CHECK_EQ(pgc_order_settle(o, 3, 6, 1), 0);
	CHECK(pop_expect(o, false, 4, 6, PIGEON_GAP_GONE));
	CHECK_EQ(pgc_order_settle(o, 6, 8, 0), 0);
	CHECK(pop_expect(o, false, 7, 8, PIGEON_GAP_GONE));
	pgc_order_free(o);
}

static void test_settle_never_overrides_a_held_envelope(void)
{
	struct pgc_order *o = pgc_order_new(0);
	struct pgc_item it;

	CHECK_EQ(pgc_order_offer(o, env_new(2)), PGC_OFFER_WAITING);
	CHECK_EQ(pgc_order_settle(o, 0, 3, 0), 0);
	CHECK(pop_expect(o, false, 1, 1, PIGEON_GAP_GONE));
	CHECK(pop_expect(o, true, 2, 2, 0));
	/* An envelope that shows up after its seq was settled (the settle is stale) still
	 * wins over the gap. */
	CHECK_EQ(pgc_order_offer(o, env_new(3)), PGC_OFFER_READY);
	CHECK(pop_expect(o, true, 3, 3, 0));
	CHECK(!pgc_order_pop(o, &it));
	pgc_order_free(o);
}

static void test_settle_below_the_cursor_is_ignored(void)
{
	struct pgc_order *o = pgc_order_new(20);
	struct pgc_item it;

	CHECK_EQ(pgc_order_settle(o, 0, 20, 0), 0); /* all at or below the cursor */
	CHECK(!pgc_order_pop(o, &it));
	CHECK_EQ(pgc_order_settle(o, 30, 25, 0), 0); /* upto below after_seq: nothing */
	CHECK(!pgc_order_pop(o, &it));
	/* Partly below: only the part above the cursor becomes a gap. */
	CHECK_EQ(pgc_order_settle(o, 10, 22, 0), 0);
	CHECK(pop_expect(o, false, 21, 22, PIGEON_GAP_GONE));
	CHECK_EQ(pgc_order_cursor(o), 22);
	/* after_seq above the cursor: the seqs in between stay unknown. */
	CHECK_EQ(pgc_order_settle(o, 25, 27, 0), 0);
	CHECK(!pgc_order_pop(o, &it));
	CHECK_EQ(pgc_order_settle(o, 22, 25, 0), 0);
	CHECK(pop_expect(o, false, 23, 27, PIGEON_GAP_GONE)); /* the two merged */
	pgc_order_free(o);
}

static void test_overlapping_settles_keep_the_first_reason(void)
{
	struct pgc_order *o = pgc_order_new(0);

	CHECK_EQ(pgc_order_settle(o, 4, 6, 0), 0);   /* 5-6 gone */
	CHECK_EQ(pgc_order_settle(o, 0, 8, 100), 0); /* 1-8 retention, but 5-6 were proven gone */
	CHECK(pop_expect(o, false, 1, 4, PIGEON_GAP_RETENTION));
	CHECK(pop_expect(o, false, 5, 6, PIGEON_GAP_GONE));
	CHECK(pop_expect(o, false, 7, 8, PIGEON_GAP_RETENTION));
	pgc_order_free(o);
}

static void test_seqs_near_uint64_max(void)
{
	struct pgc_order *o = pgc_order_new(UINT64_MAX - 3);
	struct pgc_item it;

	CHECK_EQ(pgc_order_offer(o, env_new(UINT64_MAX)), PGC_OFFER_WAITING);
	CHECK_EQ(pgc_order_settle(o, UINT64_MAX - 3, UINT64_MAX, 0), 0);
	CHECK(pop_expect(o, false, UINT64_MAX - 2, UINT64_MAX - 1, PIGEON_GAP_GONE));
	CHECK(pop_expect(o, true, UINT64_MAX, UINT64_MAX, 0));
	CHECK(!pgc_order_pop(o, &it));
	CHECK_EQ(pgc_order_offer(o, env_new(UINT64_MAX)), PGC_OFFER_DUPLICATE);
	pgc_order_free(o);
}

static void test_free_releases_what_is_held(void)
{
	/* Run under ASan, a leak here fails the test. */
	struct pgc_order *o = pgc_order_new(0);
	uint64_t s;

	for (s = 2; s < 200; s++)
		CHECK_EQ(pgc_order_offer(o, env_new(s)), PGC_OFFER_WAITING);
	CHECK_EQ(pgc_order_settle(o, 300, 400, 350), 0);
	pgc_order_free(o);
	pgc_order_free(NULL);
}

/* xorshift64*: reproducible from the seed printed on failure. */
static uint64_t rng_state;
static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

/* The seed: $PIGEON_TEST_SEED to replay a failure, else the clock. */
static uint64_t test_seed(void)
{
	const char *env = getenv("PIGEON_TEST_SEED");

	return (env != NULL ? strtoull(env, NULL, 10) : (uint64_t)time(NULL)) | 1;
}

/*
 * The property: an inbox of N seqs where some exist (will be offered) and the others are
 * gone; every existing seq offered 1-3 times, in a random order; settles come in as sync
 * pages would (each page proves its range, only after the messages of that range were
 * offered). Whatever the order, the output covers 1..N exactly once, in order, messages
 * exactly where they exist, gaps only where they do not.
 */
static void test_random_arrivals_yield_each_seq_once_in_order(void)
{
	enum { N = 2000, ROUNDS = 40 };
	uint64_t seed = test_seed();
	int round;

	rng_state = seed;
	for (round = 0; round < ROUNDS; round++) {
		static bool exists[N + 1];
		static uint64_t offers[3 * N];
		size_t n_offers = 0, i;
		uint64_t expect = 1, oldest = 1 + rng() % 50, s;
		struct pgc_order *o = pgc_order_new(0);
		struct pgc_item it;
		bool ok = true;

		for (s = 1; s <= N; s++) {
			exists[s] = s >= oldest && rng() % 4 != 0;
			if (exists[s]) {
				int copies = 1 + (int)(rng() % 3);
				while (copies-- > 0)
					offers[n_offers++] = s;
			}
		}
		for (i = n_offers; i > 1; i--) { /* Fisher-Yates */
			size_t j = (size_t)(rng() % i);
			uint64_t t = offers[i - 1];
			offers[i - 1] = offers[j];
			offers[j] = t;
		}
		for (i = 0; i < n_offers && ok; i++) {
			int rc = pgc_order_offer(o, env_new(offers[i]));
			ok = rc >= 0;
			/* Now and then a sync page proves a range whose messages were all offered:
			 * the page after the cursor, up to the highest seq offered so far that has
			 * every existing seq below it offered. */
			if (rng() % 16 == 0) {
				uint64_t after = pgc_order_cursor(o), upto = after, k;
				size_t m;
				static bool seen[N + 1];
				memset(seen, 0, sizeof(seen));
				for (m = 0; m <= i; m++)
					seen[offers[m]] = true;
				for (k = after + 1; k <= N && (!exists[k] || seen[k]); k++)
					upto = k;
				ok = ok && pgc_order_settle(o, after, upto, oldest) == 0;
			}
			while (ok && pgc_order_pop(o, &it)) {
				if (it.first != expect || it.last < it.first || it.last > N)
					ok = false;
				for (s = it.first; ok && s <= it.last; s++)
					ok = it.env
					         ? exists[s] && it.env->seq == s
					         : !exists[s] && (it.why == PIGEON_GAP_RETENTION) ==
					                             (s < oldest);
				if (it.env)
					pigeon__envelope__free_unpacked(it.env, NULL);
				expect = it.last + 1;
			}
		}
		/* The last page: after the cursor to the head. */
		CHECK_EQ(pgc_order_settle(o, pgc_order_cursor(o), N, oldest), 0);
		while (ok && pgc_order_pop(o, &it)) {
			if (it.first != expect)
				ok = false;
			for (s = it.first; ok && s <= it.last; s++)
				ok = it.env ? exists[s] : !exists[s];
			if (it.env)
				pigeon__envelope__free_unpacked(it.env, NULL);
			expect = it.last + 1;
		}
		if (!ok || expect != N + 1 || pgc_order_held(o) != 0)
			fprintf(stderr, "  seed %llu round %d: expect %llu held %zu\n",
			        (unsigned long long)seed, round, (unsigned long long)expect,
			        pgc_order_held(o));
		CHECK(ok);
		CHECK_EQ(expect, N + 1);
		CHECK_EQ(pgc_order_held(o), 0);
		pgc_order_free(o);
	}
}

/*
 * The same with settles that lie (random ranges, as a stale or reordered sync reply might
 * prove): what comes out is still each seq 1..N exactly once, in order, and every message
 * carries the seq it is handed over as.
 */
static void test_random_settles_never_break_exactly_once(void)
{
	enum { N = 1000, ROUNDS = 40 };
	uint64_t seed = test_seed() + 1;
	int round;

	rng_state = seed;
	for (round = 0; round < ROUNDS; round++) {
		struct pgc_order *o = pgc_order_new(0);
		struct pgc_item it;
		uint64_t expect = 1, s;
		bool ok = true;
		int i;

		for (i = 0; i < 3 * N && ok; i++) {
			if (rng() % 8 == 0) {
				uint64_t after = rng() % (N + 1), upto = rng() % (N + 1);
				ok = pgc_order_settle(o, after, upto, rng() % (N + 2)) == 0;
			} else {
				ok = pgc_order_offer(o, env_new(1 + rng() % N)) >= 0;
			}
			while (ok && pgc_order_pop(o, &it)) {
				ok = it.first == expect && it.last >= it.first && it.last <= N &&
				     (it.env == NULL
				          ? it.why == PIGEON_GAP_RETENTION ||
				                it.why == PIGEON_GAP_GONE
				          : it.env->seq == it.first && it.last == it.first);
				if (it.env)
					pigeon__envelope__free_unpacked(it.env, NULL);
				expect = it.last + 1;
			}
		}
		CHECK_EQ(pgc_order_settle(o, 0, N, 0), 0); /* whatever is left is gone */
		while (ok && pgc_order_pop(o, &it)) {
			ok = it.first == expect;
			if (it.env)
				pigeon__envelope__free_unpacked(it.env, NULL);
			expect = it.last + 1;
		}
		for (s = 1; ok && s <= N; s++)
			ok = pgc_order_offer(o, env_new(s)) == PGC_OFFER_DUPLICATE;
		if (!ok || expect != N + 1)
			fprintf(stderr, "  seed %llu round %d: expect %llu\n",
			        (unsigned long long)seed, round, (unsigned long long)expect);
		CHECK(ok);
		CHECK_EQ(expect, N + 1);
		CHECK_EQ(pgc_order_held(o), 0);
		pgc_order_free(o);
	}
}

/* A 10,000-message catch-up, live deliveries ahead of the sync, runs in well under a
 * second (it is O(n log n)). */
static void test_catch_up_of_10000_is_fast(void)
{
	enum { N = 10000 };
	struct pgc_order *o = pgc_order_new(0);
	struct pgc_item it;
	struct timespec t0, t1;
	uint64_t s, got = 0;
	double ms;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (s = N; s > N / 2; s--) /* live, newest first: all waiting */
		pgc_order_offer(o, env_new(s));
	for (s = 1; s <= N; s++) { /* sync pages, overlapping the live ones */
		pgc_order_offer(o, env_new(s));
		while (pgc_order_pop(o, &it)) {
			got += it.env != NULL;
			pigeon__envelope__free_unpacked(it.env, NULL);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	printf("  catch-up of %d (plus %d duplicates): %.2f ms\n", N, N / 2, ms);
	CHECK_EQ(got, N);
	CHECK(ms < 1000);
	pgc_order_free(o);
}

int main(void)
{
	RUN(test_in_order_is_ready_at_once);
	RUN(test_duplicates_are_dropped);
	RUN(test_out_of_order_waits_then_releases);
	RUN(test_settle_makes_gaps_split_at_oldest);
	RUN(test_settle_all_retention_and_all_gone);
	RUN(test_settle_never_overrides_a_held_envelope);
	RUN(test_settle_below_the_cursor_is_ignored);
	RUN(test_overlapping_settles_keep_the_first_reason);
	RUN(test_seqs_near_uint64_max);
	RUN(test_free_releases_what_is_held);
	RUN(test_random_arrivals_yield_each_seq_once_in_order);
	RUN(test_random_settles_never_break_exactly_once);
	RUN(test_catch_up_of_10000_is_fast);
	return check_exit();
}
