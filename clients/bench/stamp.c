/* SPDX-License-Identifier: Apache-2.0 */
/* Body stamps and numeric options of pigeon-bench (stamp.h). */
#include "stamp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

void bench_stamp_write(char *dst, const char *marker, uint64_t index, uint64_t ns)
{
	char s[BENCH_STAMP_LEN + 1];

	snprintf(s, sizeof(s), "%.4s%016llx:%016llx", marker, (unsigned long long)index,
	         (unsigned long long)ns);
	memcpy(dst, s, BENCH_STAMP_LEN);
}

static uint64_t stamp_hex16(const char *s)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 16; i++) {
		char ch = s[i];
		v = v << 4 | (uint64_t)(ch >= 'a' ? ch - 'a' + 10 : ch - '0');
	}
	return v;
}

int bench_stamp_find(const void *buf, size_t len, const char *marker, uint64_t *index, uint64_t *ns)
{
	const char *b = buf;
	size_t i;

	for (i = 0; i + BENCH_STAMP_LEN <= len; i++) {
		if (b[i] == marker[0] && memcmp(b + i, marker, BENCH_MARKER_LEN) == 0) {
			*index = stamp_hex16(b + i + BENCH_MARKER_LEN);
			*ns = stamp_hex16(b + i + BENCH_MARKER_LEN + 17);
			return 0;
		}
	}
	return -1;
}

uint64_t bench_opt_uint(const char *name, const char *s, uint64_t min, uint64_t max)
{
	char err[256];
	uint64_t v;

	if (pg_opt_uint(s, min, max, &v, err, sizeof(err)) != 0) {
		fprintf(stderr, "pigeon-bench: --%s: %s\n", name, err);
		exit(2);
	}
	return v;
}
