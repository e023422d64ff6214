/* SPDX-License-Identifier: Apache-2.0 */
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
 *
 * Each session also carries what outlives a single event:
 * - its token's exp, kept in a min-heap so that "which sessions' tokens
 *   have expired" costs O(1) when none has and O(log n) per expired one, at
 *   any number of sessions (pigeon_auth asks on every broker tick);
 * - the id of the key that verified its token (keyset.h), so a key reload
 *   can find the sessions of a key that is gone;
 * - a log limiter (loglimit.h) shared by every plugin that logs refusals
 *   about this client, so one client cannot flood the log through any of
 *   them; allocated on the session's first refusal (an idle connection
 *   carries none).
 */
#ifndef PIGEON_SESSIONS_H
#define PIGEON_SESSIONS_H

#include "export.h"
#include "result.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ident.h"
#include "keyset.h"
#include "loglimit.h"
#include "token.h"

/*
 * The strings point into the registry's own copy, allocated to their length
 * (a session costs what its identifiers need, not PG_IDENT_MAX each): valid
 * while the session is registered.
 */
struct pg_session {
	const void *key;
	const char *uid;
	const char *device;
	const char *client_id; /* "<uid>:<device>" */
	const char *jti;       /* the token's jti, "" if it had none */
	enum pg_role role;
	bool has_iat;
	bool has_key_id;
	int64_t iat;
	int64_t exp;             /* the token's exp, Unix s */
	struct pg_key_id key_id; /* the key that verified the token (if has_key_id) */
	int64_t since_ms;        /* when it was admitted, Unix ms */
};

enum pg_session_event {
	PG_SESSION_ADDED,
	PG_SESSION_REMOVED, /* called before the session is freed */
};

typedef void (*pg_session_watch_fn)(enum pg_session_event ev, const struct pg_session *s,
                                    void *userdata);

/*
 * Records that key is connected as uid:device with claims, verified by the
 * key key_id (NULL: unknown). A session already under key is replaced:
 * removed, then added. Returns PG_OK, or PG_ERR_NOMEM (then key has no
 * session: the old one is gone). Watchers are called after the change.
 */
PG_EXPORT int pg_sessions_add(const void *key, const struct pg_claims *claims, const char *device,
                              const struct pg_key_id *key_id, int64_t now_ms);

/* Forgets key (no-op if unknown), calling watchers first. */
PG_EXPORT void pg_sessions_remove(const void *key);

/* The session under key, or NULL. Valid until it is removed. */
PG_EXPORT const struct pg_session *pg_sessions_find(const void *key);

/* How many sessions uid has open (all devices). */
PG_EXPORT size_t pg_sessions_user_count(const char *uid);

/* True if uid has a session from device open. */
PG_EXPORT bool pg_sessions_device_connected(const char *uid, const char *device);

/* Total sessions open. */
PG_EXPORT size_t pg_sessions_count(void);

/* How many users have at least one session open. */
PG_EXPORT size_t pg_sessions_user_total(void);

/*
 * Calls fn for each session (of uid, if uid is not NULL). fn must not add or
 * remove sessions; collect what to change and do it afterwards.
 */
PG_EXPORT void pg_sessions_foreach(const char *uid,
                                   void (*fn)(const struct pg_session *s, void *ud), void *ud);

/*
 * Calls fn, earliest exp first, for up to max sessions whose token's exp is
 * before before_s, and takes each out of the expiry order: a session is
 * reported once (it stays registered until it is removed, e.g. when the
 * disconnect it leads to arrives). Returns how many were reported. fn must
 * not add or remove sessions. Cost: O(log n) per session reported.
 */
PG_EXPORT size_t pg_sessions_take_expired(int64_t before_s, size_t max,
                                          void (*fn)(const struct pg_session *s, void *ud),
                                          void *ud);

/* The earliest exp among sessions not yet taken by take_expired, or INT64_MAX. */
PG_EXPORT int64_t pg_sessions_next_exp(void);

/*
 * May one more refusal line about the client under key be logged at now_ms?
 * (pg_loglimit_allow on the session's limiter; *note as there.) A key with
 * no session is always allowed, with nothing held.
 */
PG_EXPORT bool pg_sessions_log_allow(const void *key, int64_t now_ms,
                                     struct pg_loglimit_note *note);

/* Takes what the session's limiter held back (held 0 if nothing or no session). */
PG_EXPORT void pg_sessions_log_flush(const void *key, int64_t now_ms,
                                     struct pg_loglimit_note *note);

/*
 * Adds a watcher called on every add/remove. Returns PG_OK, or PG_ERR_NOMEM
 * if too many.
 * Watchers must not add or remove sessions from inside the call.
 */
PG_EXPORT int pg_sessions_watch(pg_session_watch_fn fn, void *userdata);
/* Removes a watcher added with the same fn and userdata. */
PG_EXPORT void pg_sessions_unwatch(pg_session_watch_fn fn, void *userdata);

/* Forgets every session and watcher, without calling watchers (shutdown, tests). */
PG_EXPORT void pg_sessions_reset(void);

#endif
