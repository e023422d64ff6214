/* SPDX-License-Identifier: Apache-2.0 */
/*
 * $SYS/broker/pigeon/... counters (docs/protocol.md "Counters"), published retained as text
 * every plugin_opt_sys_interval seconds, like Mosquitto's own $SYS tree. store/failing is
 * also published on the tick it changes, so that a health check sees a full disk at once:
 * a refused journal append is seen in the same loop iteration (the send's callback runs
 * before the tick), a failing store thread one iteration after its batch failed.
 */
#include "pigeon_inbox.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sys_counter.h"

static void count_device(const struct pg_session *s, void *ud)
{
	(void)s;
	(*(uint64_t *)ud)++;
}

void inbox_counters_init(struct inbox_plugin *ip)
{
	pg_histogram_init(&ip->counters.sync_reply_bytes, &pg_histogram_sync_reply_bytes);
}

void inbox_counters_tick(struct inbox_plugin *ip, int64_t now_ms)
{
	struct pg_store_stats ss;
	char leaf[64];
	uint64_t devices = 0, users = 0;
	bool failing;
	int i;

	if (ip->cfg.sys_interval_s == 0) {
		return;
	}
	failing = !pg_store_writable(ip->store);
	if (failing != ip->failing_shown) {
		ip->failing_shown = failing;
		pigeon_sys_publish("store/failing", failing);
	}
	if (now_ms < ip->next_sys_ms) {
		return;
	}
	ip->next_sys_ms = now_ms + (int64_t)ip->cfg.sys_interval_s * 1000;
	pg_store_get_stats(ip->store, &ss);
	pg_sessions_foreach(NULL, count_device, &devices);
	users = inbox_presence_count(ip);
	pigeon_sys_publish("messages/stored", ss.accepted);
	pigeon_sys_publish("messages/merged", ss.merged);
	pigeon_sys_publish("messages/duplicates", ss.duplicates);
	pigeon_sys_publish("messages/delivered", ip->counters.routed);
	pigeon_sys_publish("messages/instant", ip->counters.instant);
	pigeon_sys_publish("messages/dropped/expired", ss.expired);
	pigeon_sys_publish("messages/dropped/cap", ss.capped);
	pigeon_sys_publish("requests/answered", ip->counters.requests);
	pigeon_sys_publish("requests/syncs", ss.syncs);
	pigeon_sys_publish("requests/acks", ss.acks);
	pigeon_sys_publish("store/pending", ss.pending);
	pigeon_sys_publish("store/pending_bytes", ss.pending_bytes);
	pigeon_sys_publish("store/errors", ss.apply_errors);
	pigeon_sys_publish("store/failing", failing);
	pigeon_sys_publish_histogram("histogram/store_apply_seconds",
	                             pg_store_apply_histogram(ip->store));
	pigeon_sys_publish_histogram("histogram/sync_reply_bytes", &ip->counters.sync_reply_bytes);
	pigeon_sys_publish("devices/online", devices);
	pigeon_sys_publish("users/online", users);
	for (i = 0; i < REFUSED_COUNT; i++) {
		snprintf(leaf, sizeof(leaf), "refused/%s",
		         inbox_refusal_name((enum inbox_refusal)i));
		pigeon_sys_publish(leaf, ip->counters.refused[i]);
	}
}
