/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The log path (broker/common/log.c): lines on the sink's thread are written
 * at once, lines from other threads wait for pg_log_drain and keep their
 * order, a full queue drops and says how many, long lines are cut.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "log.h"

#define SEEN_MAX (PG_LOG_QUEUE + 64)

static struct {
	int n;
	enum pg_log_level level[SEEN_MAX];
	char line[SEEN_MAX][PG_LOG_LINE_MAX];
	void *ud[SEEN_MAX];
} seen;

static void sink(enum pg_log_level level, const char *line, void *ud)
{
	if (seen.n < SEEN_MAX) {
		seen.level[seen.n] = level;
		snprintf(seen.line[seen.n], PG_LOG_LINE_MAX, "%s", line);
		seen.ud[seen.n] = ud;
		seen.n++;
	}
}

static void *log_lines(void *arg)
{
	int i, n = *(int *)arg;

	for (i = 0; i < n; i++) {
		pg_log(PG_LOG_NOTICE, "other %d", i);
	}
	return NULL;
}

static void from_other_thread(int n)
{
	pthread_t t;

	pthread_create(&t, NULL, log_lines, &n);
	pthread_join(t, NULL);
}

static void test_sink_thread_lines_are_written_at_once(void)
{
	static int a;

	seen.n = 0;
	CHECK_EQ(pg_log_add_sink(sink, &a), 0);
	pg_log(PG_LOG_WARNING, "now %s", "here");
	CHECK_EQ(seen.n, 1);
	CHECK_STR(seen.line[0], "now here");
	CHECK_EQ(seen.level[0], PG_LOG_WARNING);
	CHECK(seen.ud[0] == &a);
	pg_log_remove_sink(sink, &a);
}

static void test_other_threads_wait_for_drain_in_order(void)
{
	static int a;

	seen.n = 0;
	pg_log_add_sink(sink, &a);
	from_other_thread(3);
	CHECK_EQ(seen.n, 0);
	pg_log_drain();
	CHECK_EQ(seen.n, 3);
	CHECK_STR(seen.line[0], "other 0");
	CHECK_STR(seen.line[2], "other 2");
	CHECK_EQ(seen.level[1], PG_LOG_NOTICE);
	pg_log_drain();
	CHECK_EQ(seen.n, 3);
	pg_log_remove_sink(sink, &a);
}

static void test_a_full_queue_drops_and_says_so(void)
{
	static int a;
	char last[32];

	seen.n = 0;
	pg_log_add_sink(sink, &a);
	from_other_thread(PG_LOG_QUEUE + 10);
	pg_log_drain();
	CHECK_EQ(seen.n, PG_LOG_QUEUE + 1);
	snprintf(last, sizeof(last), "other %d", PG_LOG_QUEUE - 1);
	CHECK_STR(seen.line[PG_LOG_QUEUE - 1], last);
	CHECK_CONTAINS(seen.line[PG_LOG_QUEUE], "10 log lines from other threads were dropped");
	CHECK_EQ(seen.level[PG_LOG_QUEUE], PG_LOG_WARNING);
	pg_log_remove_sink(sink, &a);
}

static void test_the_last_sink_added_is_used_until_removed(void)
{
	static int a, b;

	seen.n = 0;
	pg_log_add_sink(sink, &a);
	pg_log_add_sink(sink, &b);
	pg_log(PG_LOG_INFO, "to b");
	pg_log_remove_sink(sink, &b);
	pg_log(PG_LOG_INFO, "to a");
	CHECK_EQ(seen.n, 2);
	CHECK(seen.ud[0] == &b && seen.ud[1] == &a);
	/* Removing a sink first writes what other threads queued. */
	from_other_thread(1);
	pg_log_remove_sink(sink, &a);
	CHECK_EQ(seen.n, 3);
	CHECK(seen.ud[2] == &a);
}

static void test_long_lines_are_cut(void)
{
	static int a;
	char big[PG_LOG_LINE_MAX * 2];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	seen.n = 0;
	pg_log_add_sink(sink, &a);
	pg_log(PG_LOG_ERR, "%s", big);
	CHECK_EQ(seen.n, 1);
	CHECK_EQ(strlen(seen.line[0]), PG_LOG_LINE_MAX - 1);
	pg_log_remove_sink(sink, &a);
}

int main(void)
{
	RUN(test_sink_thread_lines_are_written_at_once);
	RUN(test_other_threads_wait_for_drain_in_order);
	RUN(test_a_full_queue_drops_and_says_so);
	RUN(test_the_last_sink_added_is_used_until_removed);
	RUN(test_long_lines_are_cut);
	return check_exit();
}
