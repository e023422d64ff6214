/*
 * The registry of authenticated, connected MQTT sessions, shared by every
 * pigeon plugin in the broker process.
 *
 * Mosquitto 2.0.11 has no CONNECT event and lets only the first plugin that
 * does not defer see BASIC_AUTH, so pigeon_auth records each session here
 * when it admits it and removes it on MOSQ_EVT_DISCONNECT. The inbox and push
 * plugins link the same libpigeon (one copy per process) and ask it which
 * (uid, device) pairs are connected, or watch it for changes (presence).
 *
 * A session is keyed by an opaque pointer that the adapter chooses (the
 * Mosquitto client). Thread rule: broker thread only; nothing here locks.
 */
#ifndef PIGEON_SESSIONS_H
#define PIGEON_SESSIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ident.h"
#include "token.h"

struct pg_session {
	const void *key;
	char uid[PG_IDENT_MAX + 1];
	char device[PG_IDENT_MAX + 1];
	char client_id[PG_CLIENT_ID_MAX];
	char jti[PG_JTI_MAX + 1];
	enum pg_role role;
	bool has_iat;
	int64_t iat;
	int64_t since_ms; /* when it was admitted, Unix ms */
};

enum pg_session_event {
	PG_SESSION_ADDED,
	PG_SESSION_REMOVED, /* called before the session is freed */
};

typedef void (*pg_session_watch_fn)(enum pg_session_event ev, const struct pg_session *s,
                                    void *userdata);

/*
 * Records that key is connected as uid:device with claims (a session already
 * under key is replaced: removed, then added). Returns 0, or -1 when out of
 * memory. Watchers are called after the change.
 */
int pg_sessions_add(const void *key, const struct pg_claims *claims, const char *device,
                    int64_t now_ms);

/* Forgets key (no-op if unknown), calling watchers first. */
void pg_sessions_remove(const void *key);

/* The session under key, or NULL. Valid until it is removed. */
const struct pg_session *pg_sessions_find(const void *key);

/* How many sessions uid has open (all devices). */
size_t pg_sessions_user_count(const char *uid);

/* True if uid has a session from device open. */
bool pg_sessions_device_connected(const char *uid, const char *device);

/* Total sessions open. */
size_t pg_sessions_count(void);

/*
 * Calls fn for each session (of uid, if uid is not NULL). fn must not add or
 * remove sessions; collect what to change and do it afterwards.
 */
void pg_sessions_foreach(const char *uid, void (*fn)(const struct pg_session *s, void *ud),
                         void *ud);

/*
 * Adds a watcher called on every add/remove. Returns 0, or -1 if too many.
 * Watchers must not add or remove sessions from inside the call.
 */
int pg_sessions_watch(pg_session_watch_fn fn, void *userdata);
/* Removes a watcher added with the same fn and userdata. */
void pg_sessions_unwatch(pg_session_watch_fn fn, void *userdata);

/* Forgets every session and watcher, without calling watchers (shutdown, tests). */
void pg_sessions_reset(void);

#endif
