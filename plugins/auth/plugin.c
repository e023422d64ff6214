/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon_auth entry points: load options and keys, register the callbacks,
 * reload keys and the revocation list on SIGHUP (disconnecting the sessions
 * they no longer admit), and on the tick: disconnect sessions whose token
 * expired, expire login-limit windows, publish the $SYS counters. The work
 * itself is in basic_auth.c and acl_check.c.
 */
#include "pigeon_auth.h"

#include "export.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "sessions.h"
#include "log.h"
#include "log_sink.h"
#include "sys_counter.h"

/*
 * SIGHUP. Mosquitto 2.0.11 passes no options here and stops at the first
 * RELOAD callback that does not defer, so this re-reads the files the start
 * options named and always defers, letting the other pigeon plugins reload.
 * The broker calls it from its main loop (not while walking its clients),
 * so kicking from here is safe, as it is from the tick.
 */
static int auth_reload_cb(int event, void *event_data, void *userdata)
{
	struct auth_plugin *ap = userdata;
	struct auth_keys fresh;

	if (auth_keys_load(&ap->cfg, &fresh) != MOSQ_ERR_SUCCESS) {
		mosquitto_log_printf(MOSQ_LOG_ERR, AUTH_LOG_PREFIX
		                     "reload failed, keeping the keys and revocation "
		                     "list loaded before");
		return MOSQ_ERR_PLUGIN_DEFER;
	}
	auth_keys_free(&ap->keys);
	ap->keys = fresh;
	mosquitto_log_printf(MOSQ_LOG_INFO,
	                     AUTH_LOG_PREFIX "reloaded keys, %zu revocation entries, %zu keys",
	                     pg_revoked_count(ap->keys.revoked), pg_keyset_count(ap->keys.keyset));
	auth_kick_stale(ap);
	return MOSQ_ERR_PLUGIN_DEFER;
}

static void auth_sys_tick(struct auth_plugin *ap, int64_t now_ms)
{
	const struct auth_counters *c = &ap->counters;

	if (ap->cfg.sys_interval_s == 0 || now_ms < ap->next_sys_ms) {
		return;
	}
	ap->next_sys_ms = now_ms + (int64_t)ap->cfg.sys_interval_s * 1000;
	pigeon_sys_publish("auth/logins/accepted", c->logins_ok);
	pigeon_sys_publish("auth/logins/refused", c->logins_refused);
	pigeon_sys_publish("auth/denied/publish", c->denied_publish);
	pigeon_sys_publish("auth/denied/subscribe", c->denied_subscribe);
	pigeon_sys_publish("auth/disconnected/expired", c->kicked_expired);
	pigeon_sys_publish("auth/disconnected/key_removed", c->kicked_key_removed);
	pigeon_sys_publish("auth/disconnected/revoked", c->kicked_revoked);
}

static int auth_tick_cb(int event, void *event_data, void *userdata)
{
	struct auth_plugin *ap = userdata;
	int64_t now = (int64_t)time(NULL);

	if (ap->cfg.expire_sessions) {
		auth_kick_expired(ap, now);
	}
	pg_loginlimit_expire(ap->loginlimit, now);
	auth_sys_tick(ap, auth_now_ms());
	pg_log_drain();
	return MOSQ_ERR_SUCCESS;
}

static const struct {
	int event;
	MOSQ_FUNC_generic_callback cb;
} auth_callbacks[] = {
    {MOSQ_EVT_BASIC_AUTH, auth_basic_auth_cb},
    {MOSQ_EVT_ACL_CHECK, auth_acl_check_cb},
    {MOSQ_EVT_DISCONNECT, auth_disconnect_cb},
    {MOSQ_EVT_RELOAD, auth_reload_cb},
    {MOSQ_EVT_TICK, auth_tick_cb},
};
#define AUTH_NCALLBACKS (sizeof(auth_callbacks) / sizeof(auth_callbacks[0]))

static void auth_free(struct auth_plugin *ap)
{
	auth_keys_free(&ap->keys);
	auth_config_free(&ap->cfg);
	pg_loginlimit_free(ap->loginlimit);
	free(ap);
}

PG_EXPORT int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                                    struct mosquitto_opt *options, int option_count)
{
	struct auth_plugin *ap = calloc(1, sizeof(*ap));
	size_t i;
	int rc;

	if (ap == NULL) {
		return MOSQ_ERR_NOMEM;
	}
	ap->id = identifier;
	rc = auth_config_parse(&ap->cfg, options, option_count);
	if (rc == MOSQ_ERR_SUCCESS) {
		rc = auth_keys_load(&ap->cfg, &ap->keys);
	}
	if (rc != MOSQ_ERR_SUCCESS) {
		auth_free(ap);
		return rc;
	}
	pg_acl_set_user_notify(ap->cfg.user_notify);
	ap->loginlimit = pg_loginlimit_new(ap->cfg.login_fail_limit, ap->cfg.login_fail_window_s);
	if (ap->loginlimit == NULL) {
		auth_free(ap);
		return MOSQ_ERR_NOMEM;
	}
	for (i = 0; i < AUTH_NCALLBACKS; i++) {
		rc = mosquitto_callback_register(identifier, auth_callbacks[i].event,
		                                 auth_callbacks[i].cb, NULL, ap);
		if (rc != MOSQ_ERR_SUCCESS) {
			mosquitto_log_printf(MOSQ_LOG_ERR,
			                     AUTH_LOG_PREFIX "cannot register callback %d",
			                     auth_callbacks[i].event);
			while (i-- > 0) {
				mosquitto_callback_unregister(identifier, auth_callbacks[i].event,
				                              auth_callbacks[i].cb, NULL);
			}
			auth_free(ap);
			return rc;
		}
	}
	*userdata = ap;
	pigeon_log_sink_install(ap);
	mosquitto_log_printf(MOSQ_LOG_INFO,
	                     AUTH_LOG_PREFIX "ready: algorithms 0x%x, clock skew %llds, login fail "
	                                     "limit %u per %us, user notify %s, expire sessions %s",
	                     ap->cfg.algs, (long long)ap->cfg.clock_skew_s,
	                     ap->cfg.login_fail_limit, ap->cfg.login_fail_window_s,
	                     ap->cfg.user_notify ? "on" : "off",
	                     ap->cfg.expire_sessions ? "on" : "off");
	return MOSQ_ERR_SUCCESS;
}

PG_EXPORT int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options,
                                       int option_count)
{
	struct auth_plugin *ap = userdata;
	size_t i;

	if (ap == NULL) {
		return MOSQ_ERR_SUCCESS;
	}
	pigeon_log_sink_remove(ap);
	for (i = 0; i < AUTH_NCALLBACKS; i++) {
		mosquitto_callback_unregister(ap->id, auth_callbacks[i].event, auth_callbacks[i].cb,
		                              NULL);
	}
	pg_sessions_reset();
	auth_free(ap);
	return MOSQ_ERR_SUCCESS;
}
