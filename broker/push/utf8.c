/* SPDX-License-Identifier: Apache-2.0 */
/*
 * UTF-8 boundaries and repair (utf8.h). Everything rests on utf8_seq(),
 * which says how long the valid sequence at a position is, or 0 when the
 * byte there starts none; callers then step over that one byte. Pure
 * functions, no allocation except pg_push_utf8_clean's result.
 */
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

/* Length (1..4) of the valid UTF-8 sequence at s[0..len), or 0 if there is none. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (c < 0x80) {
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		/* E0 would be overlong below A0; ED A0..BF are surrogates */
		if (c == 0xe0) {
			lo = 0xa0;
		} else if (c == 0xed) {
			hi = 0x9f;
		}
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		/* F0 would be overlong below 90; F4 90.. is above U+10FFFF */
		if (c == 0xf0) {
			lo = 0x90;
		} else if (c == 0xf4) {
			hi = 0x8f;
		}
	} else {
		return 0; /* a continuation byte, C0/C1 (overlong) or F5..FF */
	}
	if (len < n || s[1] < lo || s[1] > hi) {
		return 0;
	}
	for (i = 2; i < n; i++) {
		if (s[i] < 0x80 || s[i] > 0xbf) {
			return 0;
		}
	}
	return n;
}

/* The width of the character at s: its sequence, or 1 for an invalid byte. */
static size_t utf8_step(const unsigned char *s, size_t len)
{
	size_t n = utf8_seq(s, len);

	return n ? n : 1;
}

size_t pg_push_utf8_char_len(const char *s, size_t len)
{
	return utf8_step((const unsigned char *)s, len);
}

bool pg_push_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		size_t n = utf8_seq(p + i, len - i);
		if (n == 0) {
			return false;
		}
		i += n;
	}
	return true;
}

size_t pg_push_utf8_chars(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, chars = 0;

	while (i < len) {
		i += utf8_step(p + i, len - i);
		chars++;
	}
	return chars;
}

size_t pg_push_utf8_prefix_bytes(const char *s, size_t len, size_t max_bytes)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	if (len <= max_bytes) {
		return len;
	}
	while (i < len) {
		size_t n = utf8_step(p + i, len - i);
		if (i + n > max_bytes) {
			break;
		}
		i += n;
	}
	return i;
}

size_t pg_push_utf8_prefix_chars(const char *s, size_t len, size_t max_chars)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, chars = 0;

	while (i < len && chars < max_chars) {
		i += utf8_step(p + i, len - i);
		chars++;
	}
	return i;
}

void pg_push_utf8_shorten_bytes(char *s, size_t max_bytes)
{
	s[pg_push_utf8_prefix_bytes(s, strlen(s), max_bytes)] = '\0';
}

void pg_push_utf8_shorten_chars(char *s, size_t max_chars)
{
	s[pg_push_utf8_prefix_chars(s, strlen(s), max_chars)] = '\0';
}

char *pg_push_utf8_clean(const char *s, size_t len, size_t *outlen)
{
	static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, o = 0;
	char *out;

	/* every input byte becomes at most the 3 bytes of U+FFFD */
	if (len > (((size_t)-1) - 1) / 3 || (out = malloc(len * 3 + 1)) == NULL) {
		return NULL;
	}
	while (i < len) {
		size_t n = p[i] == 0 ? 0 : utf8_seq(p + i, len - i);
		if (n == 0) {
			memcpy(out + o, replacement, 3);
			o += 3;
			i++;
		} else {
			memcpy(out + o, p + i, n);
			o += n;
			i += n;
		}
	}
	out[o] = '\0';
	if (outlen) {
		*outlen = o;
	}
	return out;
}
