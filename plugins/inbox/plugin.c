/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon_inbox entry points: open the store, register the callbacks, and
 * run the per-tick housekeeping (presence grace, counters, store trimming).
 * The work is in send.c, requests.c, presence.c and counters.c.
 */
#include "pigeon_inbox.h"

#include "export.h"

#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "broker_compat.h"
#include "log.h"
#include "log_sink.h"
#include "topic.h"

static int inbox_tick_cb(int event, void *event_data, void *userdata)
{
	struct inbox_plugin *ip = userdata;
	int64_t now = inbox_now_ms();

	/* Queued deliveries are drained before the next iteration's publishes. */
	ip->routed_via_queue = false;
	if (!ip->started) {
		ip->started = true;
		inbox_presence_reset_stale(ip);
	}
	pg_store_tick(ip->store, now);
	inbox_presence_tick(ip, now);
	inbox_counters_tick(ip, now);
	pg_log_drain();
	if (now - ip->rates_pruned_ms >= 60 * 1000) {
		inbox_rates_prune(ip, now);
		ip->rates_pruned_ms = now;
	}
	return MOSQ_ERR_SUCCESS;
}

/* Mosquitto 2.0.11 stops at the first RELOAD callback that does not defer. */
static int inbox_reload_cb(int event, void *event_data, void *userdata)
{
	return MOSQ_ERR_PLUGIN_DEFER;
}

static int inbox_register(struct inbox_plugin *ip, bool on)
{
	static const struct {
		int event;
		MOSQ_FUNC_generic_callback cb;
	} cbs[] = {
	    {MOSQ_EVT_MESSAGE, inbox_message_cb},
	    {MOSQ_EVT_CONTROL, inbox_control_cb},
	    {MOSQ_EVT_TICK, inbox_tick_cb},
	    {MOSQ_EVT_RELOAD, inbox_reload_cb},
	};
	size_t i;

	for (i = 0; i < sizeof(cbs) / sizeof(cbs[0]); i++) {
		const void *data = cbs[i].event == MOSQ_EVT_CONTROL ? PG_CONTROL_TOPIC : NULL;
		if (!on) {
			mosquitto_callback_unregister(ip->id, cbs[i].event, cbs[i].cb, data);
		} else if (mosquitto_callback_register(ip->id, cbs[i].event, cbs[i].cb, data, ip) !=
		           MOSQ_ERR_SUCCESS) {
			mosquitto_log_printf(MOSQ_LOG_ERR,
			                     INBOX_LOG_PREFIX "cannot register callback %d",
			                     cbs[i].event);
			while (i-- > 0) {
				mosquitto_callback_unregister(
				    ip->id, cbs[i].event, cbs[i].cb,
				    cbs[i].event == MOSQ_EVT_CONTROL ? PG_CONTROL_TOPIC : NULL);
			}
			return MOSQ_ERR_UNKNOWN;
		}
	}
	return MOSQ_ERR_SUCCESS;
}

/* Push badges (common/link.h): the device's unread count from the store. */
static int inbox_link_unread(void *ud, const char *uid, const char *device, int64_t now_ms,
                             uint64_t *unread)
{
	struct inbox_plugin *ip = ud;
	uint64_t cursor;

	return pg_store_unread(ip->store, uid, device, now_ms, &cursor, unread) == PG_OK ? 0 : -1;
}

static void inbox_free(struct inbox_plugin *ip)
{
	inbox_presence_free(ip);
	inbox_rates_free(ip);
	pg_store_close(ip->store);
	pigeon_log_sink_remove(ip); /* after the store thread's last lines */
	inbox_config_free(&ip->cfg);
	free(ip);
}

PG_EXPORT int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                                    struct mosquitto_opt *options, int option_count)
{
	struct inbox_plugin *ip = calloc(1, sizeof(*ip));
	struct pg_store_config sc = {0};
	char err[512];
	int rc;

	if (ip == NULL) {
		return MOSQ_ERR_NOMEM;
	}
	ip->id = identifier;
	inbox_counters_init(ip);
	if (pigeon_compat_init(INBOX_LOG_PREFIX) != MOSQ_ERR_SUCCESS) {
		free(ip);
		return MOSQ_ERR_UNKNOWN;
	}
	rc = inbox_config_parse(&ip->cfg, options, option_count);
	if (rc != MOSQ_ERR_SUCCESS) {
		free(ip);
		return rc;
	}
	pigeon_log_sink_install(ip); /* removed by inbox_free */
	memset(&sc, 0, sizeof(sc));
	sc.db_path = ip->cfg.db_path;
	sc.sync_full = ip->cfg.sync_full;
	sc.ttl_s = ip->cfg.ttl_s;
	sc.max_per_user = ip->cfg.max_per_user;
	sc.dedup_window_s = ip->cfg.dedup_window_s;
	if (pg_store_open(&sc, &ip->store, err, sizeof(err)) != 0) {
		mosquitto_log_printf(MOSQ_LOG_ERR, INBOX_LOG_PREFIX "store %s: %s", ip->cfg.db_path,
		                     err);
		inbox_free(ip);
		return MOSQ_ERR_UNKNOWN;
	}
	if (pg_sessions_watch(inbox_presence_watch, ip) != 0 ||
	    inbox_register(ip, true) != MOSQ_ERR_SUCCESS) {
		pg_sessions_unwatch(inbox_presence_watch, ip);
		inbox_free(ip);
		return MOSQ_ERR_UNKNOWN;
	}
	ip->link.ud = ip;
	ip->link.unread = inbox_link_unread;
	pg_link_set_inbox(&ip->link);
	*userdata = ip;
	mosquitto_log_printf(MOSQ_LOG_INFO,
	                     INBOX_LOG_PREFIX "ready: store %s (sync %s), ttl %llus, %u per user, "
	                                      "dedup %llus, presence grace %llums",
	                     ip->cfg.db_path, ip->cfg.sync_full ? "full" : "normal",
	                     (unsigned long long)ip->cfg.ttl_s, ip->cfg.max_per_user,
	                     (unsigned long long)ip->cfg.dedup_window_s,
	                     (unsigned long long)ip->cfg.presence_grace_ms);
	return MOSQ_ERR_SUCCESS;
}

PG_EXPORT int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options,
                                       int option_count)
{
	struct inbox_plugin *ip = userdata;

	if (ip == NULL) {
		return MOSQ_ERR_SUCCESS;
	}
	if (pg_link_inbox() == &ip->link) {
		pg_link_set_inbox(NULL);
	}
	inbox_register(ip, false);
	pg_sessions_unwatch(inbox_presence_watch, ip);
	inbox_free(ip);
	return MOSQ_ERR_SUCCESS;
}
