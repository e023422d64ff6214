/*
 * $SYS/broker/pigeon/... counters (DESIGN §4), published retained as text
 * every plugin_opt_sys_interval seconds, like Mosquitto's own $SYS tree.
 */
#include "pigeon_inbox.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void sys_publish(const char *leaf, uint64_t value)
{
	char topic[128], text[32];
	void *buf;
	int len;

	snprintf(topic, sizeof(topic), "$SYS/broker/pigeon/%s", leaf);
	len = snprintf(text, sizeof(text), "%" PRIu64, value);
	buf = mosquitto_malloc((size_t)len);
	if (buf == NULL) {
		return;
	}
	memcpy(buf, text, (size_t)len);
	if (mosquitto_broker_publish(NULL, topic, len, buf, 0, true, NULL) != MOSQ_ERR_SUCCESS) {
		mosquitto_free(buf);
	}
}

static void count_device(const struct pg_session *s, void *ud)
{
	(void)s;
	(*(uint64_t *)ud)++;
}

void inbox_counters_tick(struct inbox_plugin *ip, int64_t now_ms)
{
	struct pg_store_stats ss;
	char leaf[64];
	uint64_t devices = 0, users = 0;
	int i;

	if (ip->cfg.sys_interval_s == 0 || now_ms < ip->next_sys_ms) {
		return;
	}
	ip->next_sys_ms = now_ms + (int64_t)ip->cfg.sys_interval_s * 1000;
	pg_store_get_stats(ip->store, &ss);
	pg_sessions_foreach(NULL, count_device, &devices);
	users = inbox_presence_count(ip);
	sys_publish("messages/stored", ss.accepted);
	sys_publish("messages/merged", ss.merged);
	sys_publish("messages/duplicates", ss.duplicates);
	sys_publish("messages/delivered", ip->counters.routed);
	sys_publish("messages/instant", ip->counters.instant);
	sys_publish("messages/dropped/expired", ss.expired);
	sys_publish("messages/dropped/cap", ss.capped);
	sys_publish("requests/answered", ip->counters.requests);
	sys_publish("requests/syncs", ss.syncs);
	sys_publish("requests/acks", ss.acks);
	sys_publish("store/pending", ss.pending);
	sys_publish("store/errors", ss.apply_errors);
	sys_publish("devices/online", devices);
	sys_publish("users/online", users);
	for (i = 0; i < REFUSED_COUNT; i++) {
		snprintf(leaf, sizeof(leaf), "refused/%s",
		         inbox_refusal_name((enum inbox_refusal)i));
		sys_publish(leaf, ip->counters.refused[i]);
	}
}
