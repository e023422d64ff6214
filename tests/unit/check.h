/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The unit tests' whole framework: CHECK and a few typed variants that print
 * file:line, the expression and (for the typed ones) both values, and count
 * failures; RUN runs one test function and says ok/FAIL; check_exit() prints
 * the tally and is main's return value (non-zero on any failure).
 *
 * Each test program is one translation unit that includes this once.
 */
#ifndef PIGEON_TEST_CHECK_H
#define PIGEON_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_total;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		check_total++;                                                                     \
		if (!(cond)) {                                                                     \
			check_failures++;                                                          \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
		}                                                                                  \
	} while (0)

/* Integers (any integer type, compared as long long). */
#define CHECK_EQ(a, b)                                                                             \
	do {                                                                                       \
		long long check_a_ = (long long)(a), check_b_ = (long long)(b);                    \
		check_total++;                                                                     \
		if (check_a_ != check_b_) {                                                        \
			check_failures++;                                                          \
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n",          \
			        __FILE__, __LINE__, #a, #b, check_a_, check_b_);                   \
		}                                                                                  \
	} while (0)

/* NUL-terminated strings; NULL only equals NULL. */
#define CHECK_STR(a, b)                                                                            \
	do {                                                                                       \
		const char *check_a_ = (a), *check_b_ = (b);                                       \
		check_total++;                                                                     \
		if (check_a_ == NULL || check_b_ == NULL ? check_a_ != check_b_                    \
		                                         : strcmp(check_a_, check_b_) != 0) {      \
			check_failures++;                                                          \
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s (\"%s\" != \"%s\")\n",      \
			        __FILE__, __LINE__, #a, #b, check_a_ ? check_a_ : "(null)",        \
			        check_b_ ? check_b_ : "(null)");                                   \
		}                                                                                  \
	} while (0)

/* hay (NUL-terminated, not NULL) contains needle. */
#define CHECK_CONTAINS(hay, needle)                                                                \
	do {                                                                                       \
		const char *check_h_ = (hay), *check_n_ = (needle);                                \
		check_total++;                                                                     \
		if (check_h_ == NULL || strstr(check_h_, check_n_) == NULL) {                      \
			check_failures++;                                                          \
			fprintf(                                                                   \
			    stderr, "%s:%d: CHECK failed: %s contains \"%s\" (it is \"%s\")\n",    \
			    __FILE__, __LINE__, #hay, check_n_, check_h_ ? check_h_ : "(null)");   \
		}                                                                                  \
	} while (0)

/* Bytes. */
#define CHECK_MEM(a, b, len)                                                                       \
	do {                                                                                       \
		check_total++;                                                                     \
		if (memcmp((a), (b), (len)) != 0) {                                                \
			check_failures++;                                                          \
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%zu bytes differ)\n",      \
			        __FILE__, __LINE__, #a, #b, (size_t)(len));                        \
		}                                                                                  \
	} while (0)

#define RUN(test)                                                                                  \
	do {                                                                                       \
		int check_before_ = check_failures;                                                \
		test();                                                                            \
		printf("%s %s\n", check_failures == check_before_ ? "ok  " : "FAIL", #test);       \
		fflush(stdout);                                                                    \
	} while (0)

static inline int check_exit(void)
{
	printf("%d checks, %d failed\n", check_total, check_failures);
	return check_failures == 0 ? 0 : 1;
}

#endif
