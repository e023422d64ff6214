/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The adaptive heartbeat (clients/lib/keepalive.h), on a fake clock: it
 * grows by a step after `confirm` idle answers, ignores non-idle ones,
 * caps at max and settles, falls back to the last good interval when one
 * dies, restarts from min when the settled one (or min) dies, and probes
 * upward again after reprobe_s.
 */
#include <stdint.h>

#include "check.h"
#include "keepalive.h"

/* The fake clock: each heartbeat happens one interval after the previous one. */
static uint64_t now_ms;

static void beat(struct pgc_keepalive *k, bool idle)
{
	now_ms += (uint64_t)pgc_keepalive_interval(k) * 1000;
	pgc_keepalive_answered(k, idle, now_ms);
}

static void die(struct pgc_keepalive *k)
{
	now_ms += (uint64_t)pgc_keepalive_interval(k) * 1000;
	pgc_keepalive_died(k, now_ms);
}

static const struct pgc_keepalive_config small = {
    .min_s = 60, .max_s = 180, .step_s = 30, .confirm = 3, .reprobe_s = 1800};

static void test_defaults(void)
{
	struct pgc_keepalive k;

	pgc_keepalive_init(&k, NULL);
	CHECK_EQ(k.cfg.min_s, 60);
	CHECK_EQ(k.cfg.max_s, 600);
	CHECK_EQ(k.cfg.step_s, 30);
	CHECK_EQ(k.cfg.confirm, 3);
	CHECK_EQ(k.cfg.reprobe_s, 1800);
	CHECK_EQ(pgc_keepalive_interval(&k), 60);
	CHECK(!k.settled);
	CHECK_EQ(k.good_s, 0);

	/* max below min is raised to min: one fixed interval. */
	struct pgc_keepalive_config c = {.min_s = 100, .max_s = 50};
	pgc_keepalive_init(&k, &c);
	CHECK_EQ(k.cfg.max_s, 100);
	CHECK_EQ(pgc_keepalive_interval(&k), 100);
}

static void test_grows_by_step_after_confirm_answers(void)
{
	struct pgc_keepalive k;

	now_ms = 0;
	pgc_keepalive_init(&k, &small);
	beat(&k, true);
	beat(&k, true);
	CHECK_EQ(pgc_keepalive_interval(&k), 60); /* two of three */
	beat(&k, true);
	CHECK_EQ(pgc_keepalive_interval(&k), 90);
	CHECK_EQ(k.good_s, 60);
	beat(&k, true);
	beat(&k, true);
	beat(&k, true);
	CHECK_EQ(pgc_keepalive_interval(&k), 120);
	CHECK_EQ(k.good_s, 90);
	CHECK(!k.settled);
}

static void test_non_idle_answers_do_not_count(void)
{
	struct pgc_keepalive k;
	int i;

	now_ms = 0;
	pgc_keepalive_init(&k, &small);
	for (i = 0; i < 10; i++)
		beat(&k, false);
	CHECK_EQ(pgc_keepalive_interval(&k), 60);
	CHECK_EQ(k.good_s, 0);
	beat(&k, true);
	beat(&k, false);
	beat(&k, true);
	beat(&k, false);
	CHECK_EQ(pgc_keepalive_interval(&k), 60); /* two idle ones so far */
	beat(&k, true);
	CHECK_EQ(pgc_keepalive_interval(&k), 90);
}

static void test_caps_at_max_and_settles(void)
{
	struct pgc_keepalive k;
	int i;

	now_ms = 0;
	pgc_keepalive_init(&k, &small);
	for (i = 0; i < 9; i++) /* 60, 90, 120: three each */
		beat(&k, true);
	CHECK_EQ(pgc_keepalive_interval(&k), 150);
	for (i = 0; i < 3; i++)
		beat(&k, true);
	CHECK_EQ(pgc_keepalive_interval(&k), 180); /* max, not proven yet */
	CHECK(!k.settled);
	for (i = 0; i < 3; i++)
		beat(&k, true);
	CHECK(k.settled);
	CHECK_EQ(k.good_s, 180);
	for (i = 0; i < 20; i++)
		beat(&k, true);
	CHECK_EQ(pgc_keepalive_interval(&k), 180); /* never past max */

	/* A step that does not divide the range lands on max exactly. */
	struct pgc_keepalive_config c = {.min_s = 60, .max_s = 100, .step_s = 30, .confirm = 1};
	pgc_keepalive_init(&k, &c);
	beat(&k, true);
	beat(&k, true);
	CHECK_EQ(pgc_keepalive_interval(&k), 100);
	beat(&k, true);
	CHECK(k.settled);
}

static void test_death_falls_back_to_last_good_and_settles(void)
{
	struct pgc_keepalive k;
	int i;

	now_ms = 0;
	pgc_keepalive_init(&k, &small);
	for (i = 0; i < 6; i++) /* 60 and 90 proven; now at 120 */
		beat(&k, true);
	CHECK_EQ(pgc_keepalive_interval(&k), 120);
	beat(&k, true); /* one answer at 120: not proven */
	die(&k);        /* the NAT forgot us somewhere below 120 s */
	CHECK(k.settled);
	CHECK_EQ(pgc_keepalive_interval(&k), 90);
	CHECK_EQ(k.good_s, 90);
	CHECK_EQ(k.deaths, 0);   /* the death was at 120, not at the settled 90 */
	for (i = 0; i < 19; i++) /* 1710 s: short of reprobe_s */
		beat(&k, true);
	CHECK_EQ(pgc_keepalive_interval(&k), 90); /* settled: no more growth */
}

static void test_repeated_deaths_restart_from_min(void)
{
	struct pgc_keepalive k;
	int i;

	now_ms = 0;
	pgc_keepalive_init(&k, &small);
	for (i = 0; i < 6; i++)
		beat(&k, true);
	die(&k); /* at 120: settles at 90 */
	CHECK_EQ(pgc_keepalive_interval(&k), 90);

	/* One death at the settled interval is counted, an idle answer clears it. */
	die(&k);
	CHECK(k.settled);
	CHECK_EQ(k.deaths, 1);
	CHECK_EQ(pgc_keepalive_interval(&k), 90);
	beat(&k, false);
	CHECK_EQ(k.deaths, 1); /* a busy answer proves nothing */
	beat(&k, true);
	CHECK_EQ(k.deaths, 0);

	/* Two in a row: the network changed; start over from min knowing nothing. */
	die(&k);
	die(&k);
	CHECK(!k.settled);
	CHECK_EQ(pgc_keepalive_interval(&k), 60);
	CHECK_EQ(k.good_s, 0);
	CHECK_EQ(k.deaths, 0);
	for (i = 0; i < 3; i++)
		beat(&k, true);
	CHECK_EQ(pgc_keepalive_interval(&k), 90); /* probing again */
}

static void test_death_at_min_restarts(void)
{
	struct pgc_keepalive k;
	int i;

	now_ms = 0;
	pgc_keepalive_init(&k, &small);
	beat(&k, true);
	beat(&k, true);
	die(&k); /* even the safe interval died */
	CHECK(!k.settled);
	CHECK_EQ(pgc_keepalive_interval(&k), 60);
	CHECK_EQ(k.answered, 0); /* the two answers before are forgotten */
	for (i = 0; i < 3; i++)
		beat(&k, true);
	CHECK_EQ(pgc_keepalive_interval(&k), 90);

	/* A death at 90 with nothing proven above min falls back to min; then one at min
	 * restarts. */
	die(&k);
	CHECK(k.settled);
	CHECK_EQ(pgc_keepalive_interval(&k), 60);
	die(&k);
	CHECK(!k.settled);
	CHECK_EQ(pgc_keepalive_interval(&k), 60);
	CHECK_EQ(k.good_s, 0);
}

static void test_reprobe_after_reprobe_s(void)
{
	struct pgc_keepalive k;
	uint64_t settled_at;
	int i;

	now_ms = 0;
	pgc_keepalive_init(&k, &small);
	for (i = 0; i < 6; i++)
		beat(&k, true);
	die(&k); /* settled at 90 */
	settled_at = now_ms;
	CHECK_EQ(k.settled_at_ms, settled_at);

	/* 1800 s = 20 heartbeats of 90 s; the 19th is at 1710 s: still settled. */
	for (i = 0; i < 19; i++)
		beat(&k, true);
	CHECK(k.settled);
	CHECK_EQ(pgc_keepalive_interval(&k), 90);
	beat(&k, true); /* at 1800 s */
	CHECK(!k.settled);
	CHECK_EQ(pgc_keepalive_interval(&k), 120); /* one step up from the settled one */
	CHECK_EQ(k.good_s, 90);

	/* 120 died again: back to 90, settled, and the clock restarts. */
	die(&k);
	CHECK(k.settled);
	CHECK_EQ(pgc_keepalive_interval(&k), 90);
	CHECK_EQ(k.settled_at_ms, now_ms);

	/* This time 120 holds: it is proven and probing goes on. */
	now_ms += 1800 * 1000;
	pgc_keepalive_answered(&k, true, now_ms);
	CHECK_EQ(pgc_keepalive_interval(&k), 120);
	for (i = 0; i < 3; i++)
		beat(&k, true);
	CHECK_EQ(k.good_s, 120);
	CHECK_EQ(pgc_keepalive_interval(&k), 150);

	/* Settled at max: a reprobe has nowhere to go and stays settled. */
	for (i = 0; i < 6; i++)
		beat(&k, true);
	CHECK(k.settled);
	CHECK_EQ(pgc_keepalive_interval(&k), 180);
	now_ms += 3600 * 1000;
	pgc_keepalive_answered(&k, true, now_ms);
	CHECK(k.settled);
	CHECK_EQ(pgc_keepalive_interval(&k), 180);
	CHECK_EQ(k.settled_at_ms, now_ms);
}

static void test_default_timeline(void)
{
	/* With the defaults and a network that never drops an idle connection: 19 intervals,
	 * 60..600, three proven each, so max is settled after 3 * (60 + 90 + ... + 600) s. */
	struct pgc_keepalive k;
	int beats = 0;

	now_ms = 0;
	pgc_keepalive_init(&k, NULL);
	while (!k.settled && beats < 1000) {
		beat(&k, true);
		beats++;
	}
	CHECK_EQ(beats, 57);
	CHECK_EQ(now_ms, 3ULL * (19 * 60 + 30 * 171) * 1000); /* 18810 s, 5 h 13.5 min */
	CHECK_EQ(pgc_keepalive_interval(&k), 600);
}

int main(void)
{
	RUN(test_defaults);
	RUN(test_grows_by_step_after_confirm_answers);
	RUN(test_non_idle_answers_do_not_count);
	RUN(test_caps_at_max_and_settles);
	RUN(test_death_falls_back_to_last_good_and_settles);
	RUN(test_repeated_deaths_restart_from_min);
	RUN(test_death_at_min_restarts);
	RUN(test_reprobe_after_reprobe_s);
	RUN(test_default_timeline);
	return check_exit();
}
