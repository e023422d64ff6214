/* SPDX-License-Identifier: Apache-2.0 */
/* Option value parsing shared by the plugins and tools. */
#include "options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int pg_opt_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *err, size_t errlen)
{
	unsigned long long v;
	char *end;

	if (s == NULL || *s < '0' || *s > '9') {
		snprintf(err, errlen, "'%s' is not a whole number", s ? s : "");
		return PG_ERR_INVALID;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max) {
		snprintf(err, errlen, "'%s' is not a whole number from %llu to %llu", s,
		         (unsigned long long)min, (unsigned long long)max);
		return PG_ERR_INVALID;
	}
	*out = v;
	return PG_OK;
}

int pg_opt_bool(const char *s, bool *out, char *err, size_t errlen)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	size_t i;

	for (i = 0; s != NULL && i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return PG_OK;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return PG_OK;
		}
	}
	snprintf(err, errlen, "'%s' is not true or false", s ? s : "");
	return PG_ERR_INVALID;
}

int pg_opt_rate(const char *s, unsigned default_per_s, unsigned *count, unsigned *per_s, char *err,
                size_t errlen)
{
	char buf[64];
	char *slash;
	uint64_t n, per = default_per_s;

	if (s == NULL || strlen(s) >= sizeof(buf)) {
		snprintf(err, errlen, "expected a rate N or N/SECONDS");
		return PG_ERR_INVALID;
	}
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash) {
		*slash = '\0';
	}
	if (pg_opt_uint(buf, 0, 1000000000, &n, err, errlen) != 0 ||
	    (slash && pg_opt_uint(slash + 1, 1, 86400, &per, err, errlen) != 0)) {
		return PG_ERR_INVALID;
	}
	*count = (unsigned)n;
	*per_s = (unsigned)per;
	return PG_OK;
}

int pg_read_file(const char *path, size_t max, char **buf, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	size_t n = 0, cap = 4096;

	if (f == NULL) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return PG_ERR_IO;
	}
	for (;;) {
		char *grown;
		size_t got;
		/*
		 * One byte more than max shows that the file is too large; written
		 * so that max == SIZE_MAX (no limit) does not wrap cap to 0.
		 */
		if (cap - 1 > max) {
			cap = max + 1;
		}
		grown = realloc(data, cap + 1);
		if (grown == NULL) {
			snprintf(err, errlen, "out of memory reading %s", path);
			goto fail;
		}
		data = grown;
		got = fread(data + n, 1, cap - n, f);
		n += got;
		if (n > max) {
			snprintf(err, errlen, "%s is larger than %zu bytes", path, max);
			goto fail;
		}
		if (got == 0 || n < cap) {
			if (ferror(f)) {
				snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
				goto fail;
			}
			if (feof(f)) {
				break;
			}
		}
		if (n == cap) {
			cap *= 2;
		}
	}
	fclose(f);
	data[n] = '\0';
	*buf = data;
	*len = n;
	return PG_OK;
fail:
	fclose(f);
	free(data);
	return PG_ERR_IO;
}
