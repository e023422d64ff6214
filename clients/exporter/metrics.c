/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The leaf -> metric table (metrics.h) and the matcher. Adding a metric is
 * adding a row here: --list-metrics, the renderer and the tests follow.
 */
#include "metrics.h"

#include <string.h>

#define PROVIDERS "apns|fcm|huawei|xiaomi|webhook"
#define PLATFORMS PROVIDERS "|none"
#define REFUSALS                                                                                   \
	"body_too_large|rate_limited|bad_property|not_authorized|bad_request|store_error|store_"   \
	"busy"

/* A label value of a `{name}` level (no list): the charset of pigeon's reason words. */
#define FREE_VALUE_MAX 40

const struct exp_metric exp_metrics[] = {
    /* pigeon_inbox (docs/protocol.md "Counters") */
    {"pigeon_messages_stored_total", EXP_COUNTER, EXP_KIND_UINT, "pigeon/messages/stored",
     "Messages (CHAT and NOTIFY) stored in an inbox."},
    {"pigeon_messages_merged_total", EXP_COUNTER, EXP_KIND_UINT, "pigeon/messages/merged",
     "NOTIFY messages merged into one already waiting (same type)."},
    {"pigeon_messages_duplicates_total", EXP_COUNTER, EXP_KIND_UINT, "pigeon/messages/duplicates",
     "Sends recognised as duplicates of a stored message (same sender, recipient, msg-id)."},
    {"pigeon_messages_delivered_total", EXP_COUNTER, EXP_KIND_UINT, "pigeon/messages/delivered",
     "Envelopes handed to Mosquitto for delivery to connected devices."},
    {"pigeon_messages_instant_total", EXP_COUNTER, EXP_KIND_UINT, "pigeon/messages/instant",
     "INSTANT messages accepted (never stored)."},
    {"pigeon_messages_dropped_total", EXP_COUNTER, EXP_KIND_UINT,
     "pigeon/messages/dropped/{reason=expired|cap}",
     "Stored messages dropped before being acknowledged, by reason."},
    {"pigeon_requests_total", EXP_COUNTER, EXP_KIND_UINT, "pigeon/requests/answered",
     "Requests on $CONTROL/pigeon/v1 answered."},
    {"pigeon_syncs_total", EXP_COUNTER, EXP_KIND_UINT, "pigeon/requests/syncs",
     "Sync requests answered."},
    {"pigeon_acks_total", EXP_COUNTER, EXP_KIND_UINT, "pigeon/requests/acks",
     "Ack requests taken."},
    {"pigeon_refused_total", EXP_COUNTER, EXP_KIND_UINT, "pigeon/refused/{reason=" REFUSALS "}",
     "Sends refused, by reason."},
    {"pigeon_store_backlog_records", EXP_GAUGE, EXP_KIND_UINT, "pigeon/store/pending",
     "Records journaled and not yet applied to the database."},
    {"pigeon_store_backlog_bytes", EXP_GAUGE, EXP_KIND_UINT, "pigeon/store/pending_bytes",
     "Bytes journaled and not yet applied to the database."},
    {"pigeon_store_errors_total", EXP_COUNTER, EXP_KIND_UINT, "pigeon/store/errors",
     "Database batches of the store thread that failed."},
    {"pigeon_store_failing", EXP_GAUGE, EXP_KIND_UINT, "pigeon/store/failing",
     "1 while the store cannot write (the last journal append or database batch failed)."},
    {"pigeon_devices_online", EXP_GAUGE, EXP_KIND_UINT, "pigeon/devices/online",
     "Devices connected."},
    {"pigeon_users_online", EXP_GAUGE, EXP_KIND_UINT, "pigeon/users/online",
     "Users with at least one device connected."},
    {"pigeon_store_apply_seconds", EXP_HISTOGRAM, EXP_KIND_HISTOGRAM,
     "pigeon/histogram/store_apply_seconds",
     "Time the store thread takes per database batch (begin to commit)."},
    {"pigeon_sync_reply_bytes", EXP_HISTOGRAM, EXP_KIND_HISTOGRAM,
     "pigeon/histogram/sync_reply_bytes", "Packed size of each SyncReply sent."},
    /* pigeon_push (docs/push.md "Counters") */
    {"pigeon_push_total", EXP_COUNTER, EXP_KIND_UINT,
     "pigeon/push/{provider=" PROVIDERS "}/{outcome=sent|retried|removed|failed}",
     "Pushes by provider and outcome (sent: accepted by the provider; retried: a retry "
     "scheduled; removed: the device removed on the provider's word; failed: dropped)."},
    {"pigeon_push_failures_total", EXP_COUNTER, EXP_KIND_UINT,
     "pigeon/push/{provider=" PROVIDERS "}/failed/{reason}",
     "Pushes dropped, by provider and the last reason."},
    {"pigeon_push_outbox", EXP_GAUGE, EXP_KIND_UINT, "pigeon/push/{provider=" PROVIDERS "}/outbox",
     "Pushes pending for the provider (waiting for their window, a retry or an answer)."},
    {"pigeon_push_outbox_oldest_seconds", EXP_GAUGE, EXP_KIND_UINT, "pigeon/push/oldest_s",
     "Age of the oldest push still waiting in the outbox, 0 when it is empty."},
    {"pigeon_push_devices_registered", EXP_GAUGE, EXP_KIND_UINT, "pigeon/push/devices",
     "Devices registered for push."},
    {"pigeon_push_latency_seconds", EXP_HISTOGRAM, EXP_KIND_HISTOGRAM,
     "pigeon/histogram/push_latency_seconds/{provider=" PROVIDERS "}",
     "Time from a push request to the provider's answer."},
    {"pigeon_devices_online_by_platform", EXP_GAUGE, EXP_KIND_UINT,
     "pigeon/devices/online/{platform=" PLATFORMS "}",
     "Connected devices by the platform of their push registration (none: not registered)."},
    {"pigeon_users_online_by_platform", EXP_GAUGE, EXP_KIND_UINT,
     "pigeon/users/online/{platform=" PLATFORMS "}",
     "Users with a connected device of the platform (none: a device not registered)."},
    /* pigeon_auth (docs/auth.md "Counters") */
    {"pigeon_auth_logins_total", EXP_COUNTER, EXP_KIND_UINT,
     "pigeon/auth/logins/{result=accepted|refused}", "Logins, accepted or refused."},
    {"pigeon_auth_denied_total", EXP_COUNTER, EXP_KIND_UINT,
     "pigeon/auth/denied/{action=publish|subscribe}",
     "Publishes and subscriptions refused by the ACL."},
    {"pigeon_auth_disconnected_total", EXP_COUNTER, EXP_KIND_UINT,
     "pigeon/auth/disconnected/{reason=expired|key_removed|revoked}",
     "Sessions disconnected by pigeon_auth, by reason."},
    /* Mosquitto's own $SYS/broker/... (2.0.11 and 2.0.21) */
    {"mosquitto_clients_connected", EXP_GAUGE, EXP_KIND_UINT, "clients/connected",
     "Clients connected."},
    {"mosquitto_clients_disconnected", EXP_GAUGE, EXP_KIND_UINT, "clients/disconnected",
     "Persistent clients disconnected (sessions kept)."},
    {"mosquitto_clients_maximum", EXP_GAUGE, EXP_KIND_UINT, "clients/maximum",
     "Most clients connected at once since the broker started."},
    {"mosquitto_clients_registered", EXP_GAUGE, EXP_KIND_UINT, "clients/total",
     "Clients connected and disconnected persistent ones."},
    {"mosquitto_messages_received_total", EXP_COUNTER, EXP_KIND_UINT, "messages/received",
     "MQTT packets of any type received."},
    {"mosquitto_messages_sent_total", EXP_COUNTER, EXP_KIND_UINT, "messages/sent",
     "MQTT packets of any type sent."},
    {"mosquitto_publish_messages_received_total", EXP_COUNTER, EXP_KIND_UINT,
     "publish/messages/received", "PUBLISH packets received."},
    {"mosquitto_publish_messages_sent_total", EXP_COUNTER, EXP_KIND_UINT, "publish/messages/sent",
     "PUBLISH packets sent."},
    {"mosquitto_publish_messages_dropped_total", EXP_COUNTER, EXP_KIND_UINT,
     "publish/messages/dropped", "PUBLISH messages dropped (queue limits, offline clients)."},
    {"mosquitto_bytes_received_total", EXP_COUNTER, EXP_KIND_UINT, "bytes/received",
     "Bytes received."},
    {"mosquitto_bytes_sent_total", EXP_COUNTER, EXP_KIND_UINT, "bytes/sent", "Bytes sent."},
    {"mosquitto_store_messages", EXP_GAUGE, EXP_KIND_UINT, "store/messages/count",
     "Messages held in Mosquitto's message store."},
    {"mosquitto_store_messages_bytes", EXP_GAUGE, EXP_KIND_UINT, "store/messages/bytes",
     "Payload bytes held in Mosquitto's message store."},
    {"mosquitto_retained_messages", EXP_GAUGE, EXP_KIND_UINT, "retained messages/count",
     "Retained messages."},
    {"mosquitto_subscriptions", EXP_GAUGE, EXP_KIND_UINT, "subscriptions/count", "Subscriptions."},
    {"mosquitto_uptime_seconds", EXP_GAUGE, EXP_KIND_UPTIME, "uptime",
     "Seconds since the broker started."},
    {"mosquitto_build_info", EXP_GAUGE, EXP_KIND_VERSION, "version",
     "Always 1; the version label is the broker's."},
    /* The exporter's own */
    {"pigeon_up", EXP_GAUGE, EXP_KIND_OWN, NULL,
     "1 while the exporter's MQTT session is up and a $SYS message arrived within "
     "--stale-after, else 0 (then no broker metric is served)."},
    {"pigeon_exporter_sys_age_seconds", EXP_GAUGE, EXP_KIND_OWN, NULL,
     "Seconds since the last $SYS message."},
    {"pigeon_exporter_connects_total", EXP_COUNTER, EXP_KIND_OWN, NULL,
     "MQTT sessions the exporter opened."},
};

const size_t exp_metrics_count = sizeof(exp_metrics) / sizeof(exp_metrics[0]);

int exp_metric_row(const char *name)
{
	for (size_t i = 0; i < exp_metrics_count; i++) {
		if (strcmp(exp_metrics[i].name, name) == 0) {
			return (int)i;
		}
	}
	return -1;
}

static bool free_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

/* Is s[0..n) one of the '|'-separated words of list[0..listlen)? */
static bool in_list(const char *list, size_t listlen, const char *s, size_t n)
{
	const char *p = list, *end = list + listlen;

	while (p < end) {
		const char *bar = memchr(p, '|', (size_t)(end - p));
		size_t wlen = (size_t)((bar ? bar : end) - p);

		if (wlen == n && memcmp(p, s, n) == 0) {
			return true;
		}
		p += wlen + 1;
	}
	return false;
}

/* Matches leaf[0..n) against pat; labels into v. */
static bool match(const char *pat, const char *leaf, size_t n, struct exp_value *v)
{
	size_t i = 0;

	v->nlabels = 0;
	while (*pat != '\0') {
		const char *close, *eq, *list = NULL;
		size_t namelen, listlen = 0, vlen = 0;
		struct exp_label *l;

		if (*pat != '{') {
			if (i == n || leaf[i] != *pat) {
				return false;
			}
			pat++;
			i++;
			continue;
		}
		close = strchr(pat, '}');
		eq = memchr(pat, '=', (size_t)(close - pat));
		namelen = (size_t)((eq ? eq : close) - pat - 1);
		if (eq) {
			list = eq + 1;
			listlen = (size_t)(close - list);
		}
		while (i + vlen < n && leaf[i + vlen] != '/') {
			vlen++;
		}
		if (vlen == 0 || v->nlabels == EXP_LABELS_MAX || namelen >= EXP_LABEL_NAME_MAX) {
			return false;
		}
		if (list ? !in_list(list, listlen, leaf + i, vlen) : vlen > FREE_VALUE_MAX) {
			return false;
		}
		for (size_t k = 0; !list && k < vlen; k++) {
			if (!free_char(leaf[i + k])) {
				return false;
			}
		}
		l = &v->labels[v->nlabels++];
		memcpy(l->name, pat + 1, namelen);
		l->name[namelen] = '\0';
		memcpy(l->value, leaf + i, vlen);
		l->value[vlen] = '\0';
		i += vlen;
		pat = close + 1;
	}
	return i == n;
}

int exp_metric_match(const char *leaf, size_t n, struct exp_value *v)
{
	for (size_t r = 0; r < exp_metrics_count; r++) {
		if (exp_metrics[r].leaf != NULL && match(exp_metrics[r].leaf, leaf, n, v)) {
			v->row = (int)r;
			return (int)r;
		}
	}
	return -1;
}
