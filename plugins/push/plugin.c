/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon_push entry points: parse the options, open the push core, offer
 * it to pigeon_inbox through the link (common/link.h: stored messages and
 * RegisterDevice arrive there), and on every tick apply the workers'
 * results, send what is due, publish the counters (counters.c) and drain
 * the log.
 *
 * Load it after pigeon_auth and pigeon_inbox. Which devices are connected
 * comes from the session registry that pigeon_auth fills (sessions.h): an
 * open MQTT connection, whatever presence shows.
 */
#include "pigeon_push.h"

#include "export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "log_sink.h"
#include "sessions.h"

static int64_t push_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool push_connected(void *ud, const char *uid, const char *device)
{
	(void)ud;
	return pg_sessions_device_connected(uid, device);
}

static int push_unread(void *ud, const char *uid, const char *device, int64_t now_ms,
                       uint64_t *unread)
{
	const struct pg_link_inbox *inbox = pg_link_inbox();

	(void)ud;
	if (inbox == NULL || inbox->unread == NULL) {
		return -1;
	}
	return inbox->unread(inbox->ud, uid, device, now_ms, unread);
}

static void link_stored(void *ud, const struct pg_link_stored *m)
{
	struct push_plugin *pp = ud;

	pg_push_stored(pp->push, m);
}

static int link_register(void *ud, const char *uid, const char *device, const char *platform,
                         const char *token, const char *app, bool sandbox, char *why, size_t whylen)
{
	struct push_plugin *pp = ud;

	return pg_push_register(pp->push, uid, device, platform, token, app, sandbox, push_now_ms(),
	                        why, whylen);
}

static int link_unregister(void *ud, const char *uid, const char *device, char *why, size_t whylen)
{
	struct push_plugin *pp = ud;

	return pg_push_unregister(pp->push, uid, device, why, whylen);
}

static int push_tick_cb(int event, void *event_data, void *userdata)
{
	struct push_plugin *pp = userdata;
	int64_t now = push_now_ms();

	(void)event;
	(void)event_data;
	pg_push_tick(pp->push, now);
	if (pp->cfg.sys_interval_s > 0 && now >= pp->next_sys_ms) {
		pp->next_sys_ms = now + (int64_t)pp->cfg.sys_interval_s * 1000;
		push_counters_publish(pp, now);
	}
	pg_log_drain();
	return MOSQ_ERR_SUCCESS;
}

static void push_free(struct push_plugin *pp)
{
	pg_push_close(pp->push);
	pigeon_log_sink_remove(pp); /* after the workers' last lines */
	push_config_free(&pp->cfg);
	free(pp);
}

PG_EXPORT int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                                    struct mosquitto_opt *options, int option_count)
{
	struct push_plugin *pp = calloc(1, sizeof(*pp));
	struct pg_push_env env = {.connected = push_connected, .unread = push_unread};
	char err[512];
	int rc, i, n = 0;

	if (pp == NULL) {
		return MOSQ_ERR_NOMEM;
	}
	pp->id = identifier;
	rc = push_config_parse(&pp->cfg, options, option_count);
	if (rc != MOSQ_ERR_SUCCESS) {
		push_config_free(&pp->cfg);
		free(pp);
		return rc;
	}
	pigeon_log_sink_install(pp); /* removed by push_free */
	if (pg_link_push() != NULL) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PUSH_LOG_PREFIX "loaded twice: one pigeon_push "
		                                                   "per broker");
		push_free(pp);
		return MOSQ_ERR_UNKNOWN;
	}
	if (pg_push_open(&pp->cfg.core, &env, push_now_ms(), &pp->push, err, sizeof(err)) !=
	    PG_OK) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PUSH_LOG_PREFIX "%s", err);
		push_free(pp);
		return MOSQ_ERR_UNKNOWN;
	}
	if (mosquitto_callback_register(identifier, MOSQ_EVT_TICK, push_tick_cb, NULL, pp) !=
	    MOSQ_ERR_SUCCESS) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PUSH_LOG_PREFIX "cannot register the tick");
		push_free(pp);
		return MOSQ_ERR_UNKNOWN;
	}
	pp->link.ud = pp;
	pp->link.stored = link_stored;
	pp->link.register_device = link_register;
	pp->link.unregister_device = link_unregister;
	pg_link_set_push(&pp->link);
	*userdata = pp;
	err[0] = '\0';
	for (i = 0; i < PG_PUSH_PLATFORM_COUNT; i++) {
		if (pg_push_enabled(pp->push, (enum pg_push_platform)i)) {
			size_t len = strlen(err);

			snprintf(err + len, sizeof(err) - len, "%s%s", n++ ? ", " : "",
			         pg_push_platform_name((enum pg_push_platform)i));
		}
	}
	mosquitto_log_printf(MOSQ_LOG_INFO,
	                     PUSH_LOG_PREFIX "ready: database %s, providers: %s; coalesce %llums, "
	                                     "%u attempts",
	                     pp->cfg.core.db_path, n ? err : "none configured",
	                     (unsigned long long)pp->cfg.core.coalesce_ms,
	                     pp->cfg.core.max_attempts);
	if (n == 0) {
		mosquitto_log_printf(MOSQ_LOG_WARNING,
		                     PUSH_LOG_PREFIX "no provider is configured: every "
		                                     "RegisterDevice will be answered 501");
	}
	return MOSQ_ERR_SUCCESS;
}

PG_EXPORT int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options,
                                       int option_count)
{
	struct push_plugin *pp = userdata;

	(void)options;
	(void)option_count;
	if (pp == NULL) {
		return MOSQ_ERR_SUCCESS;
	}
	if (pg_link_push() == &pp->link) {
		pg_link_set_push(NULL);
	}
	mosquitto_callback_unregister(pp->id, MOSQ_EVT_TICK, push_tick_cb, NULL);
	push_free(pp);
	return MOSQ_ERR_SUCCESS;
}
