/*
 * Session registry: one uthash by key, and per uid a list of that user's
 * sessions (a second uthash of users), so "is uid:device connected" and
 * "how many devices does uid have" cost a hash lookup and a short walk.
 */
#include "sessions.h"

#include <stdlib.h>
#include <string.h>

#include <uthash.h>
#include <utlist.h>

#define SESSIONS_MAX_WATCHERS 8

struct session_entry {
	struct pg_session s;
	struct user_entry *user;
	struct session_entry *next, *prev; /* within the user's list */
	UT_hash_handle hh;                 /* by key */
};

struct user_entry {
	char uid[PG_IDENT_MAX + 1];
	struct session_entry *sessions;
	size_t count;
	UT_hash_handle hh; /* by uid */
};

static struct session_entry *by_key;
static struct user_entry *by_uid;
static struct {
	pg_session_watch_fn fn;
	void *ud;
} watchers[SESSIONS_MAX_WATCHERS];
static int nwatchers;

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
                    int64_t now_ms)
{
	struct session_entry *e;
	struct user_entry *u;

	pg_sessions_remove(key);
	e = calloc(1, sizeof(*e));
	if (e == NULL) {
		return -1;
	}
	u = sessions_user(claims->sub);
	if (u == NULL) {
		u = calloc(1, sizeof(*u));
		if (u == NULL) {
			free(e);
			return -1;
		}
		strcpy(u->uid, claims->sub);
		HASH_ADD_STR(by_uid, uid, u);
	}
	e->s.key = key;
	strcpy(e->s.uid, claims->sub);
	strcpy(e->s.device, device);
	strcpy(e->s.client_id, claims->sub);
	strcat(e->s.client_id, ":");
	strcat(e->s.client_id, device);
	strcpy(e->s.jti, claims->jti);
	e->s.role = claims->role;
	e->s.has_iat = claims->has_iat;
	e->s.iat = claims->iat;
	e->s.since_ms = now_ms;
	e->user = u;
	DL_APPEND(u->sessions, e);
	u->count++;
	HASH_ADD_PTR(by_key, s.key, e);
	sessions_notify(PG_SESSION_ADDED, &e->s);
	return 0;
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
	HASH_DEL(by_key, e);
	u = e->user;
	DL_DELETE(u->sessions, e);
	u->count--;
	if (u->count == 0) {
		HASH_DEL(by_uid, u);
		free(u);
	}
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

int pg_sessions_watch(pg_session_watch_fn fn, void *userdata)
{
	if (nwatchers == SESSIONS_MAX_WATCHERS) {
		return -1;
	}
	watchers[nwatchers].fn = fn;
	watchers[nwatchers].ud = userdata;
	nwatchers++;
	return 0;
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
		free(e);
	}
	HASH_ITER(hh, by_uid, u, utmp)
	{
		HASH_DEL(by_uid, u);
		free(u);
	}
	nwatchers = 0;
}
