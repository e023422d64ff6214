/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MOSQ_EVT_BASIC_AUTH: the MQTT CONNECT carries username = uid, password =
 * token, client id = "<uid>:<device>" (docs/auth.md). A login is admitted only
 * if the address is under its failed-login limit, the token verifies, its
 * sub equals both the username and the client id's uid, its dev (if any)
 * equals the client id's device, and it is not revoked. Admitted sessions
 * are recorded in libpigeon's session registry for the other plugins, with
 * the token's exp and the id of the key that verified it.
 *
 * The same file ends sessions: on MOSQ_EVT_DISCONNECT (registry), and by
 * kicking those whose token expired (tick) or was revoked, or whose key was
 * removed (reload). Kicks run on the broker thread, from a tick or reload
 * callback, never while the registry is being walked: kicking calls our
 * disconnect callback synchronously, which edits the registry.
 */
#include "pigeon_auth.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sessions.h"

const char *auth_printable(const char *s, char *buf, size_t cap)
{
	size_t i;

	if (s == NULL) {
		return "(none)";
	}
	for (i = 0; s[i] != '\0' && i + 1 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	buf[i] = '\0';
	return buf;
}

int64_t auth_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int auth_refuse(struct auth_plugin *ap, struct mosquitto *client, const char *username,
                       const char *reason, bool count_failure)
{
	char cid[PG_CLIENT_ID_MAX + 8], user[80];
	const char *addr = mosquitto_client_address(client);

	if (count_failure) {
		pg_loginlimit_fail(ap->loginlimit, addr, (int64_t)time(NULL));
	}
	ap->counters.logins_refused++;
	if (!count_failure) {
		/* A blocked address (or out of memory): this repeats on every retry. */
		struct pg_loglimit_note note;
		char summary[160];
		if (!pg_loglimit_allow(&ap->blocked_log, auth_now_ms(), &note)) {
			return MOSQ_ERR_AUTH;
		}
		if (note.held > 0) {
			mosquitto_log_printf(MOSQ_LOG_NOTICE, AUTH_LOG_PREFIX "%s",
			                     pg_loglimit_summary(&note, "refused logins",
			                                         "blocked addresses", summary,
			                                         sizeof(summary)));
		}
	}
	mosquitto_log_printf(
	    MOSQ_LOG_NOTICE, AUTH_LOG_PREFIX "refused login of client '%s' user '%s' from %s: %s",
	    auth_printable(mosquitto_client_id(client), cid, sizeof(cid)),
	    auth_printable(username, user, sizeof(user)), addr ? addr : "?", reason);
	return MOSQ_ERR_AUTH;
}

int auth_basic_auth_cb(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	struct auth_plugin *ap = userdata;
	struct pg_token_policy policy = {.algs = ap->cfg.algs, .skew_s = ap->cfg.clock_skew_s};
	char uid[PG_IDENT_MAX + 1], device[PG_IDENT_MAX + 1];
	struct pg_claims claims;
	struct pg_key_id key_id;
	enum pg_token_status st;
	const char *detail, *revoked;
	int64_t now = (int64_t)time(NULL);

	if (pg_loginlimit_blocked(ap->loginlimit, mosquitto_client_address(ed->client), now)) {
		return auth_refuse(ap, ed->client, ed->username,
		                   "too many failed logins from this address", false);
	}
	if (ed->username == NULL || ed->password == NULL) {
		return auth_refuse(ap, ed->client, ed->username,
		                   "username (uid) and password (token) are required", true);
	}
	if (pg_client_id_split(mosquitto_client_id(ed->client), uid, device) != 0) {
		return auth_refuse(ap, ed->client, ed->username, "client id must be <uid>:<device>",
		                   true);
	}
	st = pg_keyset_verify(ap->keys.keyset, &policy, ed->password, strlen(ed->password), now,
	                      &claims, &key_id, &detail);
	if (st != PG_TOKEN_OK) {
		return auth_refuse(ap, ed->client, ed->username, detail, true);
	}
	if (strcmp(ed->username, claims.sub) != 0) {
		return auth_refuse(ap, ed->client, ed->username, "username is not the token's sub",
		                   true);
	}
	if (strcmp(uid, claims.sub) != 0) {
		return auth_refuse(ap, ed->client, ed->username,
		                   "client id's uid is not the token's sub", true);
	}
	if (claims.dev[0] != '\0' && strcmp(device, claims.dev) != 0) {
		return auth_refuse(ap, ed->client, ed->username,
		                   "client id's device is not the token's dev", true);
	}
	revoked =
	    pg_revoked_check(ap->keys.revoked, claims.jti, claims.sub, claims.has_iat, claims.iat);
	if (revoked != NULL) {
		return auth_refuse(ap, ed->client, ed->username, revoked, true);
	}
	if (pg_sessions_add(ed->client, &claims, device, &key_id, auth_now_ms()) != 0) {
		return auth_refuse(ap, ed->client, ed->username, "out of memory", false);
	}
	ap->counters.logins_ok++;
	return MOSQ_ERR_SUCCESS;
}

bool auth_log_refusal_allowed(const struct mosquitto *client, const char *client_id)
{
	struct pg_loglimit_note note;
	char summary[PG_CLIENT_ID_MAX + 96];

	if (!pg_sessions_log_allow(client, auth_now_ms(), &note)) {
		return false;
	}
	if (note.held > 0) {
		mosquitto_log_printf(
		    MOSQ_LOG_NOTICE, AUTH_LOG_PREFIX "%s",
		    pg_loglimit_summary(&note, "refusals", client_id, summary, sizeof(summary)));
	}
	return true;
}

int auth_disconnect_cb(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_disconnect *ed = event_data;
	const struct pg_session *s = pg_sessions_find(ed->client);
	struct pg_loglimit_note note;
	char summary[PG_CLIENT_ID_MAX + 96];

	if (s != NULL) {
		/* Whatever the limiter held back is said now or never. */
		pg_sessions_log_flush(ed->client, auth_now_ms(), &note);
		if (note.held > 0) {
			mosquitto_log_printf(MOSQ_LOG_NOTICE, AUTH_LOG_PREFIX "%s",
			                     pg_loglimit_summary(&note, "refusals", s->client_id,
			                                         summary, sizeof(summary)));
		}
	}
	pg_sessions_remove(ed->client);
	return MOSQ_ERR_SUCCESS;
}

/*
 * A client id names at most one connected client, but a WebSockets client
 * that was taken over stays registered until Mosquitto gets round to its
 * DISCONNECT: kicking by its client id then would hit its successor. So
 * only the newest session of a client id (the last one added: the user's
 * list is in order of admission) is ever kicked.
 */
struct newest_search {
	const char *device;
	const struct pg_session *last;
};

static void auth_find_newest(const struct pg_session *s, void *ud)
{
	struct newest_search *ns = ud;

	if (strcmp(s->device, ns->device) == 0) {
		ns->last = s;
	}
}

static bool auth_session_is_newest(const struct pg_session *s)
{
	struct newest_search ns = {.device = s->device};

	pg_sessions_foreach(s->uid, auth_find_newest, &ns);
	return ns.last == s;
}

enum kick_reason {
	KICK_REVOKED,
	KICK_KEY_REMOVED,
	KICK_EXPIRED,
};

struct kick {
	char client_id[PG_CLIENT_ID_MAX];
	enum kick_reason why;
};

struct kick_list {
	const struct auth_plugin *ap;
	struct kick *kicks;
	size_t n, cap;
};

static void auth_kick_add(struct kick_list *kl, const struct pg_session *s, enum kick_reason why)
{
	if (kl->n < kl->cap && auth_session_is_newest(s)) {
		strcpy(kl->kicks[kl->n].client_id, s->client_id);
		kl->kicks[kl->n].why = why;
		kl->n++;
	}
}

/* Collect first, kick afterwards: kicking edits the registry. */
static void auth_kick_all(struct auth_plugin *ap, const struct kick_list *kl)
{
	static const char *const texts[] = {
	    [KICK_REVOKED] = "its token is revoked",
	    [KICK_KEY_REMOVED] = "the key that verified its token is no longer configured",
	    [KICK_EXPIRED] = "its token has expired",
	};
	size_t i;

	for (i = 0; i < kl->n; i++) {
		const struct kick *k = &kl->kicks[i];
		mosquitto_log_printf(MOSQ_LOG_NOTICE, AUTH_LOG_PREFIX "disconnecting '%s': %s",
		                     k->client_id, texts[k->why]);
		switch (k->why) {
		case KICK_REVOKED:
			ap->counters.kicked_revoked++;
			break;
		case KICK_KEY_REMOVED:
			ap->counters.kicked_key_removed++;
			break;
		case KICK_EXPIRED:
			ap->counters.kicked_expired++;
			break;
		}
		mosquitto_kick_client_by_clientid(k->client_id, false);
	}
}

static void auth_collect_stale(const struct pg_session *s, void *ud)
{
	struct kick_list *kl = ud;
	const struct auth_keys *keys = &kl->ap->keys;

	if (s->has_key_id && !pg_keyset_has(keys->keyset, &s->key_id)) {
		auth_kick_add(kl, s, KICK_KEY_REMOVED);
	} else if (pg_revoked_check(keys->revoked, s->jti, s->uid, s->has_iat, s->iat) != NULL) {
		auth_kick_add(kl, s, KICK_REVOKED);
	}
}

void auth_kick_stale(struct auth_plugin *ap)
{
	struct kick_list kl = {.ap = ap};

	/* One pass over every session: a reload is rare, and every one must be checked. */
	if (pg_sessions_count() == 0) {
		return;
	}
	kl.cap = pg_sessions_count();
	kl.kicks = mosquitto_calloc(kl.cap, sizeof(*kl.kicks));
	if (kl.kicks == NULL) {
		mosquitto_log_printf(MOSQ_LOG_ERR, AUTH_LOG_PREFIX
		                     "out of memory: sessions of revoked tokens or removed keys "
		                     "stay connected");
		return;
	}
	pg_sessions_foreach(NULL, auth_collect_stale, &kl);
	auth_kick_all(ap, &kl);
	mosquitto_free(kl.kicks);
}

/* At most this many expiry kicks per tick; the rest wait for the next tick. */
#define AUTH_EXPIRE_KICKS_PER_TICK 256

static void auth_collect_expired(const struct pg_session *s, void *ud)
{
	auth_kick_add(ud, s, KICK_EXPIRED);
}

void auth_kick_expired(struct auth_plugin *ap, int64_t now_s)
{
	static struct kick kicks[AUTH_EXPIRE_KICKS_PER_TICK];
	struct kick_list kl = {.ap = ap, .kicks = kicks, .cap = AUTH_EXPIRE_KICKS_PER_TICK};
	/*
	 * The token is over when a login with it would be refused: now > exp +
	 * skew (token.c), i.e. exp < now - skew. Any earlier and a client kicked
	 * at exp could log in again with the same token until exp + skew.
	 */
	int64_t before = now_s - ap->cfg.clock_skew_s;

	/* The usual tick: nothing due, one look at the heap's top. */
	if (pg_sessions_next_exp() >= before) {
		return;
	}
	pg_sessions_take_expired(before, AUTH_EXPIRE_KICKS_PER_TICK, auth_collect_expired, &kl);
	auth_kick_all(ap, &kl);
}
