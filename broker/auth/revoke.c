/* SPDX-License-Identifier: Apache-2.0 */
/* Revocation list: two uthash sets, jtis and per-uid "issued before" times. */
#include "revoke.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

struct revoked_jti {
	UT_hash_handle hh;
	char jti[]; /* key */
};

struct revoked_sub {
	char uid[PG_IDENT_MAX + 1];
	int64_t before;
	UT_hash_handle hh;
};

struct pg_revoked {
	struct revoked_jti *jtis;
	struct revoked_sub *subs;
	size_t count;
};

void pg_revoked_free(struct pg_revoked *list)
{
	struct revoked_jti *j, *jt;
	struct revoked_sub *s, *st;

	if (list == NULL) {
		return;
	}
	HASH_ITER(hh, list->jtis, j, jt)
	{
		HASH_DEL(list->jtis, j);
		free(j);
	}
	HASH_ITER(hh, list->subs, s, st)
	{
		HASH_DEL(list->subs, s);
		free(s);
	}
	free(list);
}

size_t pg_revoked_count(const struct pg_revoked *list)
{
	return list ? list->count : 0;
}

static int revoke_add_jti(struct pg_revoked *list, const char *jti)
{
	struct revoked_jti *j;
	size_t len = strlen(jti);

	HASH_FIND_STR(list->jtis, jti, j);
	if (j != NULL) {
		return 0;
	}
	j = malloc(sizeof(*j) + len + 1);
	if (j == NULL) {
		return -1;
	}
	memcpy(j->jti, jti, len + 1);
	HASH_ADD_KEYPTR(hh, list->jtis, j->jti, len, j);
	list->count++;
	return 0;
}

static int revoke_add_sub(struct pg_revoked *list, const char *uid, int64_t before)
{
	struct revoked_sub *s;

	HASH_FIND_STR(list->subs, uid, s);
	if (s != NULL) {
		if (before > s->before) {
			s->before = before;
		}
		return 0;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		return -1;
	}
	strcpy(s->uid, uid);
	s->before = before;
	HASH_ADD_STR(list->subs, uid, s);
	list->count++;
	return 0;
}

/* Parses one line (NUL-terminated, no newline). 0, or -1 with err set. */
static int revoke_line(struct pg_revoked *list, char *line, char *err, size_t errlen)
{
	char *save = NULL, *word, *a, *b, *end;
	long long t;

	word = strtok_r(line, " \t\r", &save);
	if (word == NULL || word[0] == '#') {
		return 0;
	}
	a = strtok_r(NULL, " \t\r", &save);
	b = strtok_r(NULL, " \t\r", &save);
	if (strcmp(word, "jti") == 0) {
		if (a == NULL || b != NULL || strlen(a) > PG_JTI_MAX) {
			snprintf(err, errlen, "expected 'jti <id>' with an id of 1-128 characters");
			return -1;
		}
		return revoke_add_jti(list, a) == 0 ? 0
		                                    : (snprintf(err, errlen, "out of memory"), -1);
	}
	if (strcmp(word, "sub") == 0) {
		if (a == NULL || b == NULL || strtok_r(NULL, " \t\r", &save) != NULL ||
		    !pg_ident_valid_str(a)) {
			snprintf(err, errlen, "expected 'sub <uid> <unix-seconds>'");
			return -1;
		}
		errno = 0;
		t = strtoll(b, &end, 10);
		if (errno != 0 || *end != '\0' || end == b || t < 0) {
			snprintf(err, errlen, "'%s' is not a time in Unix seconds", b);
			return -1;
		}
		return revoke_add_sub(list, a, (int64_t)t) == 0
		           ? 0
		           : (snprintf(err, errlen, "out of memory"), -1);
	}
	snprintf(err, errlen, "unknown entry '%.32s' (expected jti or sub)", word);
	return -1;
}

struct pg_revoked *pg_revoked_parse(const char *text, size_t len, char *err, size_t errlen)
{
	struct pg_revoked *list = calloc(1, sizeof(*list));
	char *copy = malloc(len + 1), *line, *next;
	char lerr[160];
	int lineno = 0;

	if (list == NULL || copy == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	memcpy(copy, text, len);
	copy[len] = '\0';
	if (memchr(copy, '\0', len) != NULL) {
		snprintf(err, errlen, "revocation file contains a NUL byte");
		goto fail;
	}
	for (line = copy; line != NULL; line = next) {
		next = strchr(line, '\n');
		if (next) {
			*next++ = '\0';
		}
		lineno++;
		if (revoke_line(list, line, lerr, sizeof(lerr)) != 0) {
			snprintf(err, errlen, "line %d: %s", lineno, lerr);
			goto fail;
		}
	}
	free(copy);
	return list;
fail:
	free(copy);
	pg_revoked_free(list);
	return NULL;
}

const char *pg_revoked_check(const struct pg_revoked *list, const char *jti, const char *sub,
                             int has_iat, int64_t iat)
{
	struct revoked_jti *j;
	struct revoked_sub *s;

	if (list == NULL) {
		return NULL;
	}
	if (jti != NULL && jti[0] != '\0') {
		HASH_FIND_STR(list->jtis, jti, j);
		if (j != NULL) {
			return "token revoked (jti)";
		}
	}
	HASH_FIND_STR(list->subs, sub, s);
	if (s != NULL && (!has_iat || iat < s->before)) {
		return "token revoked (all of the user's tokens issued before a time)";
	}
	return NULL;
}
