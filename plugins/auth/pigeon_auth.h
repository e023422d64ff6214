/*
 * pigeon_auth: token authentication and the per-user ACL (DESIGN §3-4).
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
#include "loginlimit.h"
#include "revoke.h"
#include "token.h"

#define AUTH_LOG_PREFIX "pigeon_auth: "

/* Everything read from plugin_opt_* (DESIGN §9), parsed once at start and on reload. */
struct auth_config {
	unsigned algs;
	char *secret_file;
	char *public_key_file;
	char *revoked_file;
	int64_t clock_skew_s;
	unsigned login_fail_limit;
	unsigned login_fail_window_s;
	bool user_notify;
};

/* What the config loads: replaced whole on reload, so a bad reload changes nothing. */
struct auth_keys {
	struct pg_keyring *keyring;
	struct pg_revoked *revoked;
};

struct auth_plugin {
	mosquitto_plugin_id_t *id;
	struct auth_config cfg;
	struct auth_keys keys;
	struct pg_loginlimit *loginlimit;
	uint64_t logins_ok;
	uint64_t logins_refused;
};

/* config.c */
int auth_config_parse(struct auth_config *cfg, struct mosquitto_opt *opts, int nopts);
void auth_config_free(struct auth_config *cfg);
int auth_keys_load(const struct auth_config *cfg, struct auth_keys *keys);
void auth_keys_free(struct auth_keys *keys);

/* basic_auth.c */
int auth_basic_auth_cb(int event, void *event_data, void *userdata);
int auth_disconnect_cb(int event, void *event_data, void *userdata);
/* Disconnects every session whose token the current revocation list refuses. */
void auth_kick_revoked(struct auth_plugin *ap);

/* acl_check.c */
int auth_acl_check_cb(int event, void *event_data, void *userdata);

/* Writes s into buf with anything unprintable replaced, for logging client input. */
const char *auth_printable(const char *s, char *buf, size_t cap);

#endif
