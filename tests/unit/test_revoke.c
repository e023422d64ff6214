/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Revocation list (revoke.c, docs/auth.md): parsing a good file (comments,
 * blank lines, jti and sub entries), refusing a file with any bad line and
 * naming that line, and checking tokens by jti and by sub + iat.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "revoke.h"

static struct pg_revoked *parse(const char *text, char *err, size_t errlen)
{
	err[0] = '\0';
	return pg_revoked_parse(text, strlen(text), err, errlen);
}

static void test_parse_good_file(void)
{
	static const char text[] = "# pigeon revocation list\n"
	                           "\n"
	                           "jti 6f1c0b7e-1\n"
	                           "   jti\ttok/2+x   \n"
	                           "   # an indented comment\n"
	                           "sub alice 1700000000\n"
	                           "sub bob 100\r\n"
	                           "\t\n"
	                           "\tsub carol 0\n"
	                           "jti 6f1c0b7e-1\n"
	                           "sub alice 1600000000\n"
	                           "jti last-line-without-newline";
	char err[200];
	struct pg_revoked *list = parse(text, err, sizeof(err));

	CHECK(list != NULL);
	if (list == NULL) {
		fprintf(stderr, "parse: %s\n", err);
		return;
	}
	/* Repeated entries count once: 3 jtis, 3 subs. */
	CHECK_EQ(pg_revoked_count(list), 6);

	CHECK_STR(pg_revoked_check(list, "6f1c0b7e-1", "dave", 1, 1), "token revoked (jti)");
	CHECK_STR(pg_revoked_check(list, "tok/2+x", "dave", 0, 0), "token revoked (jti)");
	CHECK_STR(pg_revoked_check(list, "last-line-without-newline", "dave", 0, 0),
	          "token revoked (jti)");
	CHECK_STR(pg_revoked_check(list, "6f1c0b7e", "dave", 1, 1), NULL);
	CHECK_STR(pg_revoked_check(list, "6f1c0b7e-10", "dave", 1, 1), NULL);
	CHECK_STR(pg_revoked_check(list, "#", "dave", 1, 1), NULL);
	pg_revoked_free(list);
}

static void test_check_by_sub_and_iat(void)
{
	static const char text[] = "sub alice 1700000000\n"
	                           "sub alice 1600000000\n" /* the later time is kept */
	                           "sub bob 100\n"
	                           "sub carol 0\n";
	char err[200];
	struct pg_revoked *list = parse(text, err, sizeof(err));
	const char *why;

	CHECK(list != NULL);
	if (list == NULL) {
		return;
	}
	CHECK_EQ(pg_revoked_count(list), 3);
	/* Issued before the time: revoked. */
	why = pg_revoked_check(list, NULL, "alice", 1, 1699999999);
	CHECK(why != NULL);
	CHECK_CONTAINS(why, "issued before a time");
	CHECK(pg_revoked_check(list, "", "alice", 1, 1650000000) != NULL);
	/* At or after the time: not revoked. */
	CHECK_STR(pg_revoked_check(list, NULL, "alice", 1, 1700000000), NULL);
	CHECK_STR(pg_revoked_check(list, "some-jti", "alice", 1, 1800000000), NULL);
	/* Without iat a token counts as old. */
	CHECK(pg_revoked_check(list, NULL, "alice", 0, 0) != NULL);
	CHECK(pg_revoked_check(list, "j", "alice", 0, 1800000000) != NULL);
	/* Other users and their times. */
	CHECK(pg_revoked_check(list, NULL, "bob", 1, 99) != NULL);
	CHECK_STR(pg_revoked_check(list, NULL, "bob", 1, 100), NULL);
	CHECK_STR(pg_revoked_check(list, NULL, "carol", 1, 0), NULL);
	CHECK(pg_revoked_check(list, NULL, "carol", 0, 0) != NULL);
	CHECK_STR(pg_revoked_check(list, NULL, "dave", 0, 0), NULL);
	CHECK_STR(pg_revoked_check(list, NULL, "alic", 0, 0), NULL);
	CHECK_STR(pg_revoked_check(list, NULL, "Alice", 0, 0), NULL);
	pg_revoked_free(list);

	/* A later entry for the same user moves the time forward. */
	list = parse("sub alice 100\nsub alice 200\n", err, sizeof(err));
	CHECK(list != NULL);
	CHECK(pg_revoked_check(list, NULL, "alice", 1, 150) != NULL);
	CHECK_STR(pg_revoked_check(list, NULL, "alice", 1, 200), NULL);
	pg_revoked_free(list);
}

static void test_empty_and_null_lists_revoke_nothing(void)
{
	char err[200];
	struct pg_revoked *list = parse("", err, sizeof(err));

	CHECK(list != NULL);
	CHECK_EQ(pg_revoked_count(list), 0);
	CHECK_STR(pg_revoked_check(list, "j", "alice", 0, 0), NULL);
	pg_revoked_free(list);
	list = parse("# nothing yet\n\n   \n", err, sizeof(err));
	CHECK(list != NULL);
	CHECK_EQ(pg_revoked_count(list), 0);
	pg_revoked_free(list);

	CHECK_STR(pg_revoked_check(NULL, "j", "alice", 0, 0), NULL);
	CHECK_EQ(pg_revoked_count(NULL), 0);
	pg_revoked_free(NULL);
}

static void test_bad_lines_refused_with_line_number(void)
{
	static const struct {
		const char *line, *err;
	} cases[] = {
	    {"jti", "expected 'jti <id>'"},
	    {"jti a b", "expected 'jti <id>'"},
	    {"sub", "expected 'sub <uid> <unix-seconds>'"},
	    {"sub alice", "expected 'sub <uid> <unix-seconds>'"},
	    {"sub alice 5 6", "expected 'sub <uid> <unix-seconds>'"},
	    {"sub a:b 5", "expected 'sub <uid> <unix-seconds>'"},
	    {"sub alice x", "'x' is not a time in Unix seconds"},
	    {"sub alice 12x", "'12x' is not a time"},
	    {"sub alice -5", "'-5' is not a time"},
	    {"sub alice 1.5", "'1.5' is not a time"},
	    {"sub alice 99999999999999999999999", "is not a time"},
	    {"deny alice", "unknown entry 'deny' (expected jti or sub)"},
	    {"JTI abc", "unknown entry 'JTI'"},
	    {"jti abc # trailing comment", "expected 'jti <id>'"},
	};
	char text[512], err[200], longjti[PG_JTI_MAX + 2];
	struct pg_revoked *list;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* The bad line is line 3, after a good entry and a comment. */
		snprintf(text, sizeof(text), "jti ok\n# comment\n%s\njti later\n", cases[i].line);
		list = parse(text, err, sizeof(err));
		CHECK(list == NULL);
		pg_revoked_free(list);
		CHECK_CONTAINS(err, "line 3: ");
		CHECK_CONTAINS(err, cases[i].err);
	}

	/* jti: 128 characters is the most. */
	memset(longjti, 'j', PG_JTI_MAX);
	longjti[PG_JTI_MAX] = '\0';
	snprintf(text, sizeof(text), "jti %s\n", longjti);
	list = parse(text, err, sizeof(err));
	CHECK(list != NULL);
	CHECK(pg_revoked_check(list, longjti, "a", 0, 0) != NULL);
	pg_revoked_free(list);
	longjti[PG_JTI_MAX] = 'j';
	longjti[PG_JTI_MAX + 1] = '\0';
	snprintf(text, sizeof(text), "\n\n\n\njti %s\n", longjti);
	list = parse(text, err, sizeof(err));
	CHECK(list == NULL);
	CHECK_CONTAINS(err, "line 5: expected 'jti <id>' with an id of 1-128 characters");

	/* A NUL byte anywhere refuses the file. */
	err[0] = '\0';
	list = pg_revoked_parse("jti a\n\0jti b\n", 13, err, sizeof(err));
	CHECK(list == NULL);
	CHECK_CONTAINS(err, "NUL byte");

	/* Only len bytes are read: the text need not be NUL-terminated. */
	list = pg_revoked_parse("jti a\njti b\nbogus", 12, err, sizeof(err));
	CHECK(list != NULL);
	CHECK_EQ(pg_revoked_count(list), 2);
	pg_revoked_free(list);
}

static void test_refused_file_keeps_nothing_half_loaded(void)
{
	char err[200];
	/* The good entries before the bad line do not make a list. */
	struct pg_revoked *list = parse("jti a\nsub alice 5\nsub bob\n", err, sizeof(err));

	CHECK(list == NULL);
	CHECK_CONTAINS(err, "line 3:");
}

int main(void)
{
	RUN(test_parse_good_file);
	RUN(test_check_by_sub_and_iat);
	RUN(test_empty_and_null_lists_revoke_nothing);
	RUN(test_bad_lines_refused_with_line_number);
	RUN(test_refused_file_keeps_nothing_half_loaded);
	return check_exit();
}
