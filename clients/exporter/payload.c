/* SPDX-License-Identifier: Apache-2.0 */
/*
 * $SYS payload parsers (payload.h). They never read past n, never trust a
 * NUL, and copy what strtod needs into a bounded local buffer first.
 */
#include "payload.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int exp_payload_uint(const char *p, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 20) {
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned d;

		if (!is_digit(p[i])) {
			return -1;
		}
		d = (unsigned)(p[i] - '0');
		if (v > (UINT64_MAX - d) / 10) {
			return -1;
		}
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int exp_payload_uptime(const char *p, size_t n, uint64_t *out)
{
	static const char suffix[] = " seconds";
	const size_t slen = sizeof(suffix) - 1;

	if (n <= slen || memcmp(p + n - slen, suffix, slen) != 0) {
		return -1;
	}
	return exp_payload_uint(p, n - slen, out);
}

static bool version_char(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
	       c == '+' || c == '~' || c == '_' || c == '-';
}

int exp_payload_version(const char *p, size_t n, char *out, size_t outlen)
{
	static const char prefix[] = "mosquitto version ";
	const size_t plen = sizeof(prefix) - 1;
	size_t vlen;

	if (n <= plen || memcmp(p, prefix, plen) != 0) {
		return -1;
	}
	vlen = n - plen;
	if (vlen >= outlen) {
		return -1;
	}
	for (size_t i = 0; i < vlen; i++) {
		if (!version_char(p[plen + i])) {
			return -1;
		}
	}
	memcpy(out, p + plen, vlen);
	out[vlen] = '\0';
	return 0;
}

/* A bound as the contract writes it: [0-9]+ or [0-9]+.[0-9]+ (no sign, no exponent). */
static bool plain_decimal(const char *s, size_t n)
{
	size_t i = 0, int_digits = 0, frac_digits = 0;

	while (i < n && is_digit(s[i])) {
		i++;
		int_digits++;
	}
	if (i < n && s[i] == '.') {
		i++;
		while (i < n && is_digit(s[i])) {
			i++;
			frac_digits++;
		}
		if (frac_digits == 0) {
			return false;
		}
	}
	return int_digits > 0 && i == n;
}

/* A %.9g-style float (digits, '.', 'e', sign) of at most 63 characters, into *out. */
static int parse_double(const char *s, size_t n, double *out)
{
	char buf[64], *end;

	if (n == 0 || n >= sizeof(buf)) {
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!(is_digit(c) || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')) {
			return -1;
		}
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	*out = strtod(buf, &end);
	return end == buf + n && isfinite(*out) ? 0 : -1;
}

int exp_payload_histogram(const char *p, size_t n, struct exp_hist *h)
{
	const char *end = p + n;
	double prev_le = -1.0;
	uint64_t prev_count = 0;
	bool have_inf = false, have_sum = false;

	if (n == 0 || n > EXP_PAYLOAD_MAX) {
		return -1;
	}
	h->n = 0;
	while (p < end) {
		const char *sp = memchr(p, ' ', (size_t)(end - p));
		const char *tok_end = sp ? sp : end;
		const char *colon = memchr(p, ':', (size_t)(tok_end - p));
		size_t klen, vlen;
		uint64_t count;

		if (colon == NULL || have_sum) {
			return -1; /* not key:value, or something after sum */
		}
		klen = (size_t)(colon - p);
		vlen = (size_t)(tok_end - colon - 1);
		if (klen == 3 && memcmp(p, "sum", 3) == 0) {
			if (!have_inf || parse_double(colon + 1, vlen, &h->sum) != 0 ||
			    h->sum < 0) {
				return -1;
			}
			have_sum = true;
		} else {
			if (have_inf || exp_payload_uint(colon + 1, vlen, &count) != 0 ||
			    count < prev_count) {
				return -1;
			}
			if (klen == 4 && memcmp(p, "+Inf", 4) == 0) {
				h->total = count;
				have_inf = true;
			} else {
				double le;

				if (h->n == EXP_HIST_BUCKETS_MAX || klen >= EXP_HIST_LE_MAX ||
				    !plain_decimal(p, klen) || parse_double(p, klen, &le) != 0 ||
				    le <= prev_le) {
					return -1;
				}
				memcpy(h->le[h->n], p, klen);
				h->le[h->n][klen] = '\0';
				h->count[h->n++] = count;
				prev_le = le;
			}
			prev_count = count;
		}
		if (sp == NULL) {
			break;
		}
		p = sp + 1;
		if (p == end) {
			return -1; /* a trailing space */
		}
	}
	return have_sum ? 0 : -1;
}
