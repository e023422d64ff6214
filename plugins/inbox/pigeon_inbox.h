/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon_inbox: message classes, the per-user ordered inbox, sync / ack /
 * send requests, dedup, retention, presence and counters (docs/protocol.md, docs/configuration.md).
 * Internal header shared by the plugin's files.
 */
#ifndef PIGEON_INBOX_H
#define PIGEON_INBOX_H

#include <stdbool.h>
#include <stdint.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <mqtt_protocol.h>

#include "histogram.h"
#include "link.h"
#include "protocol.h"
#include "ratelimit.h"
#include "sessions.h"
#include "store.h"

#define INBOX_LOG_PREFIX "pigeon_inbox: "

struct inbox_config {
	char *db_path;
	uint64_t ttl_s;
	uint32_t max_per_user;
	uint64_t dedup_window_s;
	uint64_t presence_grace_ms;
	bool presence_clear_offline; /* offline: clear the retained presence (see presence.c) */
	uint32_t max_body;
	unsigned send_rate;  /* per second per user; 0 = unlimited */
	unsigned send_burst; /* bucket size (2x the rate) */
	bool sync_full;
	uint64_t sys_interval_s;
};

/* Why a send was refused; each is counted under $SYS/broker/pigeon/refused/<name>. */
enum inbox_refusal {
	REFUSED_BODY_TOO_LARGE,
	REFUSED_RATE_LIMITED,
	REFUSED_BAD_PROPERTY,
	REFUSED_NOT_AUTHORIZED,
	REFUSED_STORE_ERROR,
	REFUSED_BAD_REQUEST,
	REFUSED_STORE_BUSY, /* the store's backlog is at its bound */
	REFUSED_COUNT
};

struct inbox_counters {
	uint64_t routed;   /* envelopes handed to Mosquitto for delivery */
	uint64_t instant;  /* INSTANT messages accepted */
	uint64_t requests; /* $CONTROL requests answered */
	uint64_t refused[REFUSED_COUNT];
	struct pg_histogram sync_reply_bytes; /* packed size of each SyncReply sent */
};

struct presence_user;
struct rate_user;

struct inbox_plugin {
	mosquitto_plugin_id_t *id;
	struct inbox_config cfg;
	struct pg_store *store;
	struct inbox_counters counters;
	/*
	 * Users in their grace, by uid and oldest first (connected users are
	 * shown online from the session registry, sessions.h).
	 */
	struct presence_user *presence;
	struct presence_user *leaving_head, *leaving_tail;
	struct rate_user *rates;   /* uthash: send buckets */
	struct pg_link_inbox link; /* what pigeon_push asks of the inbox */
	bool routed_via_queue;     /* a broker_publish delivery this loop iteration */
	bool started;              /* first tick done (startup presence reset) */
	int64_t next_sys_ms;
	int64_t rates_pruned_ms;
	bool failing_shown; /* store/failing as last published */
};

int64_t inbox_now_ms(void);

/* config.c */
int inbox_config_parse(struct inbox_config *cfg, struct mosquitto_opt *opts, int nopts);
void inbox_config_free(struct inbox_config *cfg);

/* send.c */
int inbox_message_cb(int event, void *event_data, void *userdata);
/*
 * Validates, rate-limits, stores and routes one message from `from`.
 * Returns PG_REPLY_OK with *acc filled (acc->envelope already handed over), or
 * the Reply.code of the refusal with *why set (the plugin edge: store results
 * become reply codes here). via_queue: the caller cannot rewrite a
 * publish, so CHAT/NOTIFY go through mosquitto_broker_publish.
 */
enum pg_reply_code inbox_send(struct inbox_plugin *ip, const struct pg_session *from,
                              const struct pg_store_msg *msg, bool via_queue,
                              struct pg_store_accepted *acc, const char **why);
const char *inbox_refusal_name(enum inbox_refusal r);
void inbox_rates_free(struct inbox_plugin *ip);
/* Forgets send buckets idle long enough to be full again. */
void inbox_rates_prune(struct inbox_plugin *ip, int64_t now_ms);

/* requests.c */
int inbox_control_cb(int event, void *event_data, void *userdata);

/* presence.c */
void inbox_presence_watch(enum pg_session_event ev, const struct pg_session *s, void *ud);
void inbox_presence_tick(struct inbox_plugin *ip, int64_t now_ms);
void inbox_presence_reset_stale(struct inbox_plugin *ip);
void inbox_presence_free(struct inbox_plugin *ip);
/* Users shown online (including those within their grace period). */
size_t inbox_presence_count(struct inbox_plugin *ip);

/* counters.c */
void inbox_counters_init(struct inbox_plugin *ip);
/*
 * Every tick (once per loop iteration): publishes store/failing at once
 * when it changed (two flag reads otherwise), and everything every
 * sys_interval.
 */
void inbox_counters_tick(struct inbox_plugin *ip, int64_t now_ms);

#endif
