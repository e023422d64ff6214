/* SPDX-License-Identifier: Apache-2.0 */
/*
 * UTF-8 for the providers' length limits (DESIGN §7): title and body are
 * shortened on a character boundary to what a provider accepts, never
 * refused. APNs and FCM count bytes, MiPush counts characters.
 *
 * A valid sequence (RFC 3629: no overlongs, no surrogates, nothing above
 * U+10FFFF) is one character and is never split. Any other byte is a
 * character of its own, one byte long, so that bad input is shortened as
 * predictably as good input; pg_push_utf8_clean() replaces such bytes with
 * U+FFFD before the text goes into JSON. Pure functions: any thread.
 */
#ifndef PIGEON_PUSH_UTF8_H
#define PIGEON_PUSH_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* True if s[0..len) is valid UTF-8. */
bool pg_push_utf8_valid(const char *s, size_t len);

/* Bytes of the character at s[0..len) (len > 0): its sequence, or 1 for an invalid byte. */
size_t pg_push_utf8_char_len(const char *s, size_t len);

/* Characters in s[0..len) (an invalid byte counts as one). */
size_t pg_push_utf8_chars(const char *s, size_t len);

/*
 * Length in bytes of the longest prefix of s[0..len) that is at most
 * max_bytes long and ends on a character boundary.
 */
size_t pg_push_utf8_prefix_bytes(const char *s, size_t len, size_t max_bytes);

/* Length in bytes of the first max_chars characters of s[0..len). */
size_t pg_push_utf8_prefix_chars(const char *s, size_t len, size_t max_chars);

/* Shortens the NUL-terminated s in place to at most max_bytes bytes / max_chars characters. */
void pg_push_utf8_shorten_bytes(char *s, size_t max_bytes);
void pg_push_utf8_shorten_chars(char *s, size_t max_chars);

/*
 * A malloc'd, NUL-terminated copy of s[0..len) that is valid UTF-8: each
 * invalid byte (and each NUL) becomes U+FFFD. *outlen (if not NULL) gets its
 * length. NULL if out of memory. The caller frees it.
 */
char *pg_push_utf8_clean(const char *s, size_t len, size_t *outlen);

#endif
