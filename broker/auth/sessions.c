/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Session registry: one uthash by key, and per uid a list of that user's
 * sessions (a second uthash of users), so "is uid:device connected" and
 * "how many devices does uid have" cost a hash lookup and a short walk.
 *
 * Memory: every broker keeps one entry per connection, so an entry holds
 * its identifiers at their length (one allocation with the entry: the
 * client id, whose tail is the device, and the jti if any; the uid is the
 * user entry's) and the refusal log limiter only once there was a refusal.
 *
 * Token expiry: a binary min-heap of entries ordered by exp; each entry
 * knows its heap position (heap_at), so removing a session is O(log n) and
 * the tick's "anything expired?" is a look at heap[0]. A heap rather than
 * time buckets because exp values are arbitrary (minutes to days ahead) and
 * the heap needs no tuning; rather than a periodic scan because a scan of
 * 100k sessions every second is 100k wasted comparisons a second.
 */
#include "sessions.h"

#include <stdlib.h>
#include <string.h>

#include <uthash.h>
#include <utlist.h>

#define SESSIONS_MAX_WATCHERS 8
#define HEAP_NONE SIZE_MAX

struct session_entry {
	struct pg_session s;
	struct pg_loglimit *log; /* NULL until the session's first refusal line */
	size_t heap_at;          /* position in heap, or HEAP_NONE once taken */
	struct user_entry *user;
	struct session_entry *next, *prev; /* within the user's list */
	UT_hash_handle hh;                 /* by key */
	char strings[];                    /* "<uid>:<device>" NUL [jti NUL] */
};

struct user_entry {
	struct session_entry *sessions;
	size_t count;
	UT_hash_handle hh; /* by uid */
	char uid[];        /* NUL-terminated */
};

static struct session_entry *by_key;
static struct user_entry *by_uid;
static struct {
	pg_session_watch_fn fn;
	void *ud;
} watchers[SESSIONS_MAX_WATCHERS];
static int nwatchers;
/* Entries by s.exp: heap[i]->s.exp <= heap[2i+1], heap[2i+2]; heap[i]->heap_at == i. */
static struct session_entry **heap;
static size_t heap_n, heap_cap;

static void heap_place(size_t i, struct session_entry *e)
{
	heap[i] = e;
	e->heap_at = i;
}

static void heap_up(size_t i)
{
	struct session_entry *e = heap[i];

	while (i > 0 && heap[(i - 1) / 2]->s.exp > e->s.exp) {
		heap_place(i, heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_place(i, e);
}

static void heap_down(size_t i)
{
	struct session_entry *e = heap[i];

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= heap_n) {
			break;
		}
		if (c + 1 < heap_n && heap[c + 1]->s.exp < heap[c]->s.exp) {
			c++;
		}
		if (heap[c]->s.exp >= e->s.exp) {
			break;
		}
		heap_place(i, heap[c]);
		i = c;
	}
	heap_place(i, e);
}

/* Room for one more entry; 0, or -1 when out of memory (heap unchanged). */
static int heap_reserve(void)
{
	struct session_entry **grown;
	size_t cap;

	if (heap_n < heap_cap) {
		return 0;
	}
	cap = heap_cap ? heap_cap * 2 : 64;
	grown = realloc(heap, cap * sizeof(*heap));
	if (grown == NULL) {
		return -1;
	}
	heap = grown;
	heap_cap = cap;
	return 0;
}

/* After heap_reserve succeeded. */
static void heap_push(struct session_entry *e)
{
	heap_place(heap_n++, e);
	heap_up(heap_n - 1);
}

static void heap_remove(struct session_entry *e)
{
	size_t i = e->heap_at;
	struct session_entry *last;

	if (i == HEAP_NONE) {
		return;
	}
	e->heap_at = HEAP_NONE;
	last = heap[--heap_n];
	if (i == heap_n) {
		return;
	}
	heap_place(i, last);
	if (i > 0 && heap[(i - 1) / 2]->s.exp > last->s.exp) {
		heap_up(i);
	} else {
		heap_down(i);
	}
}

static void sessions_notify(enum pg_session_event ev, const struct pg_session *s)
{
	int i;

	for (i = 0; i < nwatchers; i++) {
		watchers[i].fn(ev, s, watchers[i].ud);
	}
}

static struct user_entry *sessions_user(const char *uid)
{
	struct user_entry *u;

	HASH_FIND_STR(by_uid, uid, u);
	return u;
}

int pg_sessions_add(const void *key, const struct pg_claims *claims, const char *device,
                    const struct pg_key_id *key_id, int64_t now_ms)
{
	size_t ul = strlen(claims->sub), dl = strlen(device), jl = strlen(claims->jti);
	struct session_entry *e;
	struct user_entry *u;
	char *p;

	pg_sessions_remove(key);
	if (heap_reserve() != 0) {
		return PG_ERR_NOMEM;
	}
	e = calloc(1, sizeof(*e) + ul + 1 + dl + 1 + (jl ? jl + 1 : 0));
	if (e == NULL) {
		return PG_ERR_NOMEM;
	}
	u = sessions_user(claims->sub);
	if (u == NULL) {
		u = calloc(1, sizeof(*u) + ul + 1);
		if (u == NULL) {
			free(e);
			return PG_ERR_NOMEM;
		}
		memcpy(u->uid, claims->sub, ul + 1);
		HASH_ADD_STR(by_uid, uid, u);
	}
	p = e->strings;
	e->s.key = key;
	e->s.uid = u->uid;
	e->s.client_id = p;
	memcpy(p, claims->sub, ul);
	p[ul] = ':';
	e->s.device = p + ul + 1;
	memcpy(p + ul + 1, device, dl + 1);
	p += ul + 1 + dl + 1;
	if (jl) {
		memcpy(p, claims->jti, jl + 1);
		e->s.jti = p;
	} else {
		e->s.jti = "";
	}
	e->s.role = claims->role;
	e->s.has_iat = claims->has_iat;
	e->s.iat = claims->iat;
	e->s.exp = claims->exp;
	if (key_id != NULL) {
		e->s.key_id = *key_id;
		e->s.has_key_id = true;
	}
	e->s.since_ms = now_ms;
	e->user = u;
	DL_APPEND(u->sessions, e);
	u->count++;
	HASH_ADD_PTR(by_key, s.key, e);
	heap_push(e);
	sessions_notify(PG_SESSION_ADDED, &e->s);
	return PG_OK;
}

void pg_sessions_remove(const void *key)
{
	struct session_entry *e;
	struct user_entry *u;

	HASH_FIND_PTR(by_key, &key, e);
	if (e == NULL) {
		return;
	}
	sessions_notify(PG_SESSION_REMOVED, &e->s);
	heap_remove(e);
	HASH_DEL(by_key, e);
	u = e->user;
	DL_DELETE(u->sessions, e);
	u->count--;
	if (u->count == 0) {
		HASH_DEL(by_uid, u);
		free(u);
	}
	free(e->log);
	free(e);
}

const struct pg_session *pg_sessions_find(const void *key)
{
	struct session_entry *e;

	HASH_FIND_PTR(by_key, &key, e);
	return e ? &e->s : NULL;
}

size_t pg_sessions_user_count(const char *uid)
{
	struct user_entry *u = sessions_user(uid);

	return u ? u->count : 0;
}

bool pg_sessions_device_connected(const char *uid, const char *device)
{
	struct user_entry *u = sessions_user(uid);
	struct session_entry *e;

	if (u == NULL) {
		return false;
	}
	DL_FOREACH(u->sessions, e)
	{
		if (strcmp(e->s.device, device) == 0) {
			return true;
		}
	}
	return false;
}

size_t pg_sessions_count(void)
{
	return HASH_COUNT(by_key);
}

size_t pg_sessions_user_total(void)
{
	return HASH_COUNT(by_uid);
}

void pg_sessions_foreach(const char *uid, void (*fn)(const struct pg_session *s, void *ud),
                         void *ud)
{
	struct session_entry *e, *tmp;

	if (uid != NULL) {
		struct user_entry *u = sessions_user(uid);
		if (u == NULL) {
			return;
		}
		DL_FOREACH(u->sessions, e)
		{
			fn(&e->s, ud);
		}
		return;
	}
	HASH_ITER(hh, by_key, e, tmp)
	{
		fn(&e->s, ud);
	}
}

size_t pg_sessions_take_expired(int64_t before_s, size_t max,
                                void (*fn)(const struct pg_session *s, void *ud), void *ud)
{
	size_t n = 0;

	while (n < max && heap_n > 0 && heap[0]->s.exp < before_s) {
		struct session_entry *e = heap[0];
		heap_remove(e);
		fn(&e->s, ud);
		n++;
	}
	return n;
}

int64_t pg_sessions_next_exp(void)
{
	return heap_n > 0 ? heap[0]->s.exp : INT64_MAX;
}

bool pg_sessions_log_allow(const void *key, int64_t now_ms, struct pg_loglimit_note *note)
{
	struct session_entry *e;

	HASH_FIND_PTR(by_key, &key, e);
	if (e == NULL) {
		note->held = 0;
		note->span_ms = 0;
		return true;
	}
	if (e->log == NULL) {
		e->log = calloc(1, sizeof(*e->log)); /* zeroed: a fresh limiter */
		if (e->log == NULL) {
			/* No limiter, no line: the refusal is still counted by the caller. */
			note->held = 0;
			note->span_ms = 0;
			return false;
		}
	}
	return pg_loglimit_allow(e->log, now_ms, note);
}

void pg_sessions_log_flush(const void *key, int64_t now_ms, struct pg_loglimit_note *note)
{
	struct session_entry *e;

	HASH_FIND_PTR(by_key, &key, e);
	if (e == NULL || e->log == NULL) {
		note->held = 0;
		note->span_ms = 0;
		return;
	}
	pg_loglimit_flush(e->log, now_ms, note);
}

int pg_sessions_watch(pg_session_watch_fn fn, void *userdata)
{
	if (nwatchers == SESSIONS_MAX_WATCHERS) {
		return PG_ERR_NOMEM;
	}
	watchers[nwatchers].fn = fn;
	watchers[nwatchers].ud = userdata;
	nwatchers++;
	return PG_OK;
}

void pg_sessions_unwatch(pg_session_watch_fn fn, void *userdata)
{
	int i;

	for (i = 0; i < nwatchers; i++) {
		if (watchers[i].fn == fn && watchers[i].ud == userdata) {
			memmove(&watchers[i], &watchers[i + 1],
			        (size_t)(nwatchers - i - 1) * sizeof(watchers[0]));
			nwatchers--;
			return;
		}
	}
}

void pg_sessions_reset(void)
{
	struct session_entry *e, *etmp;
	struct user_entry *u, *utmp;

	HASH_ITER(hh, by_key, e, etmp)
	{
		HASH_DEL(by_key, e);
		free(e->log);
		free(e);
	}
	HASH_ITER(hh, by_uid, u, utmp)
	{
		HASH_DEL(by_uid, u);
		free(u);
	}
	free(heap);
	heap = NULL;
	heap_n = heap_cap = 0;
	nwatchers = 0;
}
