/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Option values (options.c): whole numbers in a range, boolean words, rates
 * "N" and "N/S", the operator-facing error texts, and pg_read_file with its
 * size limit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "options.h"

static void test_uint_in_range(void)
{
	char err[200];
	uint64_t v = 0;

	CHECK_EQ(pg_opt_uint("0", 0, 10, &v, err, sizeof(err)), 0);
	CHECK_EQ(v, 0);
	CHECK_EQ(pg_opt_uint("10", 0, 10, &v, err, sizeof(err)), 0);
	CHECK_EQ(v, 10);
	CHECK_EQ(pg_opt_uint("007", 0, 10, &v, err, sizeof(err)), 0);
	CHECK_EQ(v, 7);
	CHECK_EQ(pg_opt_uint("18446744073709551615", 0, UINT64_MAX, &v, err, sizeof(err)), 0);
	CHECK(v == UINT64_MAX);
}

static void test_uint_refusals(void)
{
	static const struct {
		const char *s;
		uint64_t min, max;
		const char *err;
	} cases[] = {
	    {"11", 0, 10, "'11' is not a whole number from 0 to 10"},
	    {"0", 1, 10, "'0' is not a whole number from 1 to 10"},
	    {"", 0, 10, "'' is not a whole number"},
	    {"-1", 0, 10, "'-1' is not a whole number"},
	    {"+1", 0, 10, "'+1' is not a whole number"},
	    {" 1", 0, 10, "' 1' is not a whole number"},
	    {"1 ", 0, 10, "'1 ' is not a whole number from 0 to 10"},
	    {"1x", 0, 10, "is not a whole number"},
	    {"0x10", 0, 100, "is not a whole number"},
	    {"1.5", 0, 10, "is not a whole number"},
	    {"1e3", 0, 10000, "is not a whole number"},
	    {"ten", 0, 10, "'ten' is not a whole number"},
	    {"18446744073709551616", 0, UINT64_MAX, "is not a whole number"},
	    {"99999999999999999999999", 0, UINT64_MAX, "is not a whole number"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[200] = "";
		uint64_t v = 4242;

		CHECK_EQ(pg_opt_uint(cases[i].s, cases[i].min, cases[i].max, &v, err, sizeof(err)),
		         PG_ERR_INVALID);
		CHECK_CONTAINS(err, cases[i].err);
		CHECK_EQ(v, 4242);
	}
	{
		char err[200] = "";
		uint64_t v = 4242;
		CHECK_EQ(pg_opt_uint(NULL, 0, 10, &v, err, sizeof(err)), PG_ERR_INVALID);
		CHECK_CONTAINS(err, "is not a whole number");
		CHECK_EQ(v, 4242);
	}
}

static void test_bool_words(void)
{
	static const char *const yes[] = {"true", "TRUE", "True", "yes", "Yes", "on", "ON", "1"};
	static const char *const no[] = {"false", "FALSE", "no", "NO", "off", "Off", "0"};
	static const char *const bad[] = {"",       "2",     "tru",   "y", "n",
	                                  "enable", " true", "true ", "01"};
	char err[200];
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		bool b = false;
		CHECK_EQ(pg_opt_bool(yes[i], &b, err, sizeof(err)), 0);
		CHECK(b);
	}
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		bool b = true;
		CHECK_EQ(pg_opt_bool(no[i], &b, err, sizeof(err)), 0);
		CHECK(!b);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		bool b = true;
		err[0] = '\0';
		CHECK_EQ(pg_opt_bool(bad[i], &b, err, sizeof(err)), PG_ERR_INVALID);
		CHECK_CONTAINS(err, "is not true or false");
		CHECK(b);
	}
	err[0] = '\0';
	{
		bool b = true;
		CHECK_EQ(pg_opt_bool(NULL, &b, err, sizeof(err)), PG_ERR_INVALID);
		CHECK_CONTAINS(err, "is not true or false");
	}
}

static void test_rate_forms(void)
{
	char err[200];
	unsigned n = 99, per = 99;

	CHECK_EQ(pg_opt_rate("5", 60, &n, &per, err, sizeof(err)), 0);
	CHECK_EQ(n, 5);
	CHECK_EQ(per, 60);
	CHECK_EQ(pg_opt_rate("5/1", 60, &n, &per, err, sizeof(err)), 0);
	CHECK_EQ(n, 5);
	CHECK_EQ(per, 1);
	CHECK_EQ(pg_opt_rate("5/60", 1, &n, &per, err, sizeof(err)), 0);
	CHECK_EQ(n, 5);
	CHECK_EQ(per, 60);
	CHECK_EQ(pg_opt_rate("0", 60, &n, &per, err, sizeof(err)), 0);
	CHECK_EQ(n, 0);
	CHECK_EQ(per, 60);
	CHECK_EQ(pg_opt_rate("0/10", 60, &n, &per, err, sizeof(err)), 0);
	CHECK_EQ(n, 0);
	CHECK_EQ(per, 10);
	CHECK_EQ(pg_opt_rate("100/86400", 60, &n, &per, err, sizeof(err)), 0);
	CHECK_EQ(n, 100);
	CHECK_EQ(per, 86400);
	CHECK_EQ(pg_opt_rate("1000000000", 60, &n, &per, err, sizeof(err)), 0);
	CHECK_EQ(n, 1000000000);
}

static void test_rate_refusals(void)
{
	static const struct {
		const char *s, *err;
	} cases[] = {
	    {"", "'' is not a whole number"},
	    {"a", "'a' is not a whole number"},
	    {"-1", "'-1' is not a whole number"},
	    {"5/", "'' is not a whole number"},
	    {"/5", "'' is not a whole number"},
	    {"5/0", "'0' is not a whole number from 1 to 86400"},
	    {"5/86401", "'86401' is not a whole number from 1 to 86400"},
	    {"5/60/2", "'60/2' is not a whole number"},
	    {"5 / 60", "is not a whole number"},
	    {"5/x", "'x' is not a whole number"},
	    {"1000000001", "'1000000001' is not a whole number from 0 to 1000000000"},
	    {"1111111111111111111111111111111111111111111111111111111111111111111111",
	     "expected a rate N or N/SECONDS"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[200] = "";
		unsigned n = 7, per = 8;

		CHECK_EQ(pg_opt_rate(cases[i].s, 60, &n, &per, err, sizeof(err)), PG_ERR_INVALID);
		CHECK_CONTAINS(err, cases[i].err);
		CHECK_EQ(n, 7);
		CHECK_EQ(per, 8);
	}
	{
		char err[200] = "";
		unsigned n = 7, per = 8;
		CHECK_EQ(pg_opt_rate(NULL, 60, &n, &per, err, sizeof(err)), PG_ERR_INVALID);
		CHECK_CONTAINS(err, "expected a rate N or N/SECONDS");
	}
}

static char tmpdir[256];

/* Writes len bytes (a pattern) to a new file in tmpdir; returns its path. */
static const char *write_file(const char *name, size_t len)
{
	static char path[512];
	FILE *f;
	size_t i;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "wb");
	if (f == NULL) {
		abort();
	}
	for (i = 0; i < len; i++) {
		fputc('a' + (int)(i % 26), f);
	}
	fclose(f);
	return path;
}

/* Reads path with max and checks it returns len pattern bytes, NUL-terminated. */
static void expect_read(const char *path, size_t max, size_t len)
{
	char err[300] = "", *buf = NULL;
	size_t got = 12345, i;
	int bad = 0;

	CHECK_EQ(pg_read_file(path, max, &buf, &got, err, sizeof(err)), 0);
	if (buf == NULL) {
		fprintf(stderr, "pg_read_file(%s, %zu): %s\n", path, max, err);
		return;
	}
	CHECK_EQ(got, len);
	CHECK_EQ(buf[len], '\0');
	for (i = 0; i < len; i++) {
		bad += buf[i] != 'a' + (int)(i % 26);
	}
	CHECK_EQ(bad, 0);
	free(buf);
}

static void expect_refused(const char *path, size_t max, const char *errpart)
{
	char err[300] = "", *buf = (char *)"untouched";
	size_t got = 12345;

	CHECK_EQ(pg_read_file(path, max, &buf, &got, err, sizeof(err)), PG_ERR_IO);
	CHECK_CONTAINS(err, errpart);
	CHECK_STR(buf, "untouched");
	CHECK_EQ(got, 12345);
}

static void test_read_file_sizes(void)
{
	const char *p;

	p = write_file("empty", 0);
	expect_read(p, 100, 0);
	expect_read(p, 0, 0);

	p = write_file("small", 10);
	expect_read(p, 10, 10);
	expect_read(p, 11, 10);
	expect_read(p, 1 << 20, 10);
	expect_refused(p, 9, "is larger than 9 bytes");
	expect_refused(p, 0, "is larger than 0 bytes");

	/* Around the first buffer (4096) and its doubling. */
	p = write_file("4096", 4096);
	expect_read(p, 4096, 4096);
	expect_read(p, 4097, 4096);
	expect_read(p, 1 << 20, 4096);
	expect_refused(p, 4095, "is larger than 4095 bytes");
	p = write_file("4097", 4097);
	expect_read(p, 4097, 4097);
	expect_refused(p, 4096, "is larger than 4096 bytes");

	p = write_file("big", 100000);
	expect_read(p, 100000, 100000);
	expect_read(p, 1 << 20, 100000);
	expect_refused(p, 99999, "is larger than 99999 bytes");
	expect_refused(p, 5000, "is larger than 5000 bytes");
	/* No limit at all. */
	expect_read(p, SIZE_MAX, 100000);
	expect_read(p, SIZE_MAX - 1, 100000);
}

static void test_read_file_errors(void)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/does-not-exist", tmpdir);
	expect_refused(path, 100, "cannot open");
	expect_refused(path, 100, "does-not-exist");
	expect_refused(path, 100, "No such file");
	/* A directory opens but does not read. */
	expect_refused(tmpdir, 100, "cannot read");
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	static const char *const names[] = {"empty", "small", "4096", "4097", "big"};
	size_t i;
	int rc;

	snprintf(tmpdir, sizeof(tmpdir), "%s/pigeon-test-options-XXXXXX",
	         base && base[0] ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_uint_in_range);
	RUN(test_uint_refusals);
	RUN(test_bool_words);
	RUN(test_rate_forms);
	RUN(test_rate_refusals);
	RUN(test_read_file_sizes);
	RUN(test_read_file_errors);
	rc = check_exit();
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		unlink(path);
	}
	rmdir(tmpdir);
	return rc;
}
