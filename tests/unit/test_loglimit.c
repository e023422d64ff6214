/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Log-line limiter (loglimit.c): a full burst first, then one line per
 * interval; every line held back is counted and handed to the next line let
 * through (or to a flush), with the span since the first one held; the
 * summary text; a clock at 0 or going backwards.
 */
#include <stdint.h>

#include "check.h"
#include "loglimit.h"

static void test_burst_then_one_per_interval_with_counts(void)
{
	struct pg_loglimit ll = {0};
	struct pg_loglimit_note note;
	int i, allowed = 0;

	for (i = 0; i < PG_LOGLIMIT_BURST; i++) {
		CHECK(pg_loglimit_allow(&ll, 1000, &note));
		CHECK_EQ(note.held, 0);
	}
	for (i = 0; i < 495; i++) {
		allowed += pg_loglimit_allow(&ll, 1000 + i, &note);
	}
	CHECK_EQ(allowed, 0);
	/* Just before one interval has refilled a token: still held. */
	CHECK(!pg_loglimit_allow(&ll, 1000 + PG_LOGLIMIT_INTERVAL_MS - 10, &note));
	/* 496 were held, the first at 1000. */
	CHECK(pg_loglimit_allow(&ll, 1000 + PG_LOGLIMIT_INTERVAL_MS + 500, &note));
	CHECK_EQ(note.held, 496);
	CHECK_EQ(note.span_ms, PG_LOGLIMIT_INTERVAL_MS + 500);
	/* The count starts again. */
	CHECK(!pg_loglimit_allow(&ll, 1000 + PG_LOGLIMIT_INTERVAL_MS + 600, &note));
	CHECK(pg_loglimit_allow(&ll, 1000 + 3 * PG_LOGLIMIT_INTERVAL_MS, &note));
	CHECK_EQ(note.held, 1);
}

static void test_quiet_source_gets_its_burst_back(void)
{
	struct pg_loglimit ll = {0};
	struct pg_loglimit_note note;
	int i, allowed = 0;

	for (i = 0; i < 50; i++) {
		pg_loglimit_allow(&ll, 10, &note);
	}
	for (i = 0; i < 50; i++) {
		allowed += pg_loglimit_allow(&ll, 10 + 100LL * PG_LOGLIMIT_INTERVAL_MS, &note);
	}
	/* Refilled to the burst, never beyond it. */
	CHECK_EQ(allowed, PG_LOGLIMIT_BURST);
}

static void test_flush_hands_over_what_is_held(void)
{
	struct pg_loglimit ll = {0};
	struct pg_loglimit_note note;
	int i;

	pg_loglimit_flush(&ll, 5, &note);
	CHECK_EQ(note.held, 0);
	CHECK_EQ(note.span_ms, 0);
	for (i = 0; i < PG_LOGLIMIT_BURST + 7; i++) {
		pg_loglimit_allow(&ll, 100 + i, &note);
	}
	pg_loglimit_flush(&ll, 2100, &note);
	CHECK_EQ(note.held, 7);
	CHECK_EQ(note.span_ms, 2100 - (100 + PG_LOGLIMIT_BURST));
	pg_loglimit_flush(&ll, 2200, &note);
	CHECK_EQ(note.held, 0);
}

static void test_clock_at_zero_or_backwards(void)
{
	struct pg_loglimit ll = {0};
	struct pg_loglimit_note note;
	int i, allowed = 0;

	/* now 0 must not look like a new bucket on every call (unlimited). */
	for (i = 0; i < 100; i++) {
		allowed += pg_loglimit_allow(&ll, 0, &note);
	}
	CHECK_EQ(allowed, PG_LOGLIMIT_BURST);
	/* A clock stepping back refills nothing and never reports a negative span. */
	CHECK(!pg_loglimit_allow(&ll, -5000, &note));
	pg_loglimit_flush(&ll, -9000, &note);
	CHECK_EQ(note.held, 96);
	CHECK_EQ(note.span_ms, 0);
}

static void test_summary_text(void)
{
	struct pg_loglimit_note note = {.held = 495, .span_ms = 9001};
	char buf[128], tiny[8];

	CHECK_STR(pg_loglimit_summary(&note, "refusals", "alice:phone", buf, sizeof(buf)),
	          "495 more refusals from alice:phone suppressed in the last 10 s");
	note.span_ms = 0;
	CHECK_STR(pg_loglimit_summary(&note, "refusals", "x", buf, sizeof(buf)),
	          "495 more refusals from x suppressed in the last 1 s");
	CHECK_STR(pg_loglimit_summary(&note, "refusals", "x", tiny, sizeof(tiny)), "495 mor");
}

int main(void)
{
	RUN(test_burst_then_one_per_interval_with_counts);
	RUN(test_quiet_source_gets_its_burst_back);
	RUN(test_flush_hands_over_what_is_held);
	RUN(test_clock_at_zero_or_backwards);
	RUN(test_summary_text);
	return check_exit();
}
