/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon_push: offline push to APNs, FCM, Huawei, Xiaomi and webhooks
 * (docs/push.md). A thin adapter: the push core (broker/push/push.h) does
 * the work; this plugin parses the options, ties the core to the session
 * registry and to pigeon_inbox (common/link.h), and runs it on the tick.
 * Internal header shared by the plugin's files.
 */
#ifndef PIGEON_PUSH_PLUGIN_H
#define PIGEON_PUSH_PLUGIN_H

#include <stdint.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "link.h"
#include "push.h"

#define PUSH_LOG_PREFIX "pigeon_push: "

struct push_plugin_config {
	struct pg_push_config core; /* strings point into owned[] */
	char *owned[32];
	int nowned;
	uint64_t sys_interval_s;
};

struct push_plugin {
	mosquitto_plugin_id_t *id;
	struct push_plugin_config cfg;
	struct pg_push *push;
	struct pg_link_push link;
	int64_t next_sys_ms;
};

/* counters.c: every $SYS leaf of pigeon_push, now (the sys interval is the caller's). */
void push_counters_publish(struct push_plugin *pp, int64_t now_ms);

/* config.c */
int push_config_parse(struct push_plugin_config *cfg, struct mosquitto_opt *opts, int nopts);
void push_config_free(struct push_plugin_config *cfg);

#endif
