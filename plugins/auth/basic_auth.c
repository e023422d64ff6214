/*
 * MOSQ_EVT_BASIC_AUTH: the MQTT CONNECT carries username = uid, password =
 * token, client id = "<uid>:<device>" (DESIGN §3). A login is admitted only
 * if the address is under its failed-login limit, the token verifies, its
 * sub equals both the username and the client id's uid, its dev (if any)
 * equals the client id's device, and it is not revoked. Admitted sessions
 * are recorded in libpigeon's session registry for the other plugins.
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

static int64_t auth_now_ms(void)
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
	ap->logins_refused++;
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
	st = pg_token_verify(ap->keys.keyring, &policy, ed->password, strlen(ed->password), now,
	                     &claims, &detail);
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
	if (pg_sessions_add(ed->client, &claims, device, auth_now_ms()) != 0) {
		return auth_refuse(ap, ed->client, ed->username, "out of memory", false);
	}
	ap->logins_ok++;
	return MOSQ_ERR_SUCCESS;
}

int auth_disconnect_cb(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_disconnect *ed = event_data;

	pg_sessions_remove(ed->client);
	return MOSQ_ERR_SUCCESS;
}

struct kick_list {
	const struct pg_revoked *revoked;
	char (*ids)[PG_CLIENT_ID_MAX];
	size_t n, cap;
};

static void auth_collect_revoked(const struct pg_session *s, void *ud)
{
	struct kick_list *kl = ud;

	if (kl->n < kl->cap &&
	    pg_revoked_check(kl->revoked, s->jti, s->uid, s->has_iat, s->iat) != NULL) {
		strcpy(kl->ids[kl->n++], s->client_id);
	}
}

void auth_kick_revoked(struct auth_plugin *ap)
{
	struct kick_list kl = {.revoked = ap->keys.revoked};
	size_t i;

	if (ap->keys.revoked == NULL || pg_sessions_count() == 0) {
		return;
	}
	/* Collect first: kicking calls our disconnect callback, which edits the registry. */
	kl.cap = pg_sessions_count();
	kl.ids = mosquitto_calloc(kl.cap, sizeof(*kl.ids));
	if (kl.ids == NULL) {
		return;
	}
	pg_sessions_foreach(NULL, auth_collect_revoked, &kl);
	for (i = 0; i < kl.n; i++) {
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
		                     AUTH_LOG_PREFIX "disconnecting '%s': its token is revoked",
		                     kl.ids[i]);
		mosquitto_kick_client_by_clientid(kl.ids[i], false);
	}
	mosquitto_free(kl.ids);
}
