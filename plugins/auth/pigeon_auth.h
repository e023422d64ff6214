/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon_auth: token authentication and the per-user ACL (docs/auth.md).
 * Internal header shared by the plugin's files.
 */
#ifndef PIGEON_AUTH_H
#define PIGEON_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "jws.h"
#include "keyset.h"
#include "loginlimit.h"
#include "loglimit.h"
#include "revoke.h"
#include "token.h"

#define AUTH_LOG_PREFIX "pigeon_auth: "

/* Everything read from plugin_opt_* (docs/configuration.md), parsed once at start and on reload. */
struct auth_config {
	unsigned algs;
	char *secret_file;
	char *public_key_file;
	char *revoked_file;
	int64_t clock_skew_s;
	unsigned login_fail_limit;
	unsigned login_fail_window_s;
	bool user_notify;
	bool expire_sessions;    /* disconnect a session once its token has expired */
	unsigned sys_interval_s; /* between $SYS/broker/pigeon/auth/... updates; 0 = never */
};

/* What the config loads: replaced whole on reload, so a bad reload changes nothing. */
struct auth_keys {
	struct pg_keyset *keyset;
	struct pg_revoked *revoked;
};

/* Counted on every event, whatever is logged; published under $SYS/broker/pigeon/auth/. */
struct auth_counters {
	uint64_t logins_ok;
	uint64_t logins_refused;
	uint64_t denied_publish;
	uint64_t denied_subscribe;
	uint64_t kicked_expired;     /* token expired while connected */
	uint64_t kicked_key_removed; /* its key is no longer configured (reload) */
	uint64_t kicked_revoked;     /* its token was revoked (reload) */
};

struct auth_plugin {
	mosquitto_plugin_id_t *id;
	struct auth_config cfg;
	struct auth_keys keys;
	struct pg_loginlimit *loginlimit;
	struct auth_counters counters;
	/* Refusals of blocked addresses: one limiter for all (each address has
	 * had its login_fail_limit lines logged in full before it was blocked). */
	struct pg_loglimit blocked_log;
	int64_t next_sys_ms;
};

/* config.c */
int auth_config_parse(struct auth_config *cfg, struct mosquitto_opt *opts, int nopts);
void auth_config_free(struct auth_config *cfg);
int auth_keys_load(const struct auth_config *cfg, struct auth_keys *keys);
void auth_keys_free(struct auth_keys *keys);

/* basic_auth.c */
int auth_basic_auth_cb(int event, void *event_data, void *userdata);
int auth_disconnect_cb(int event, void *event_data, void *userdata);
/*
 * After a reload: disconnects every session whose token the current
 * revocation list refuses or whose verifying key is no longer configured.
 */
void auth_kick_stale(struct auth_plugin *ap);
/* Disconnects sessions whose token expired (exp + clock skew) before now_s. */
void auth_kick_expired(struct auth_plugin *ap, int64_t now_s);
int64_t auth_now_ms(void);

/* acl_check.c */
int auth_acl_check_cb(int event, void *event_data, void *userdata);

/* Writes s into buf with anything unprintable replaced, for logging client input. */
const char *auth_printable(const char *s, char *buf, size_t cap);
/*
 * Whether a refusal line about client may be written now (its session's log
 * limiter); logs the summary of what was held back before it, if anything.
 */
bool auth_log_refusal_allowed(const struct mosquitto *client, const char *client_id);

#endif
