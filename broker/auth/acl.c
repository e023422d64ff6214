/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Access matrix. Subscription filters are judged by what they could match:
 * a filter is allowed only if every topic it matches is readable, so
 * wildcards cannot widen access (im/+/inbox, im/#, # are refused for users).
 */
#include "acl.h"

#include <string.h>

#include "topic.h"

#define ACL_MAX_LEVELS 8

struct acl_levels {
	const char *s[ACL_MAX_LEVELS];
	size_t len[ACL_MAX_LEVELS];
	int n; /* -1: more levels than we look at */
};

static void acl_split(const char *filter, struct acl_levels *lv)
{
	const char *p = filter;

	lv->n = 0;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (lv->n == ACL_MAX_LEVELS) {
			lv->n = -1;
			return;
		}
		lv->s[lv->n] = p;
		lv->len[lv->n] = len;
		lv->n++;
		if (slash == NULL) {
			return;
		}
		p = slash + 1;
	}
}

static bool acl_level_is(const struct acl_levels *lv, int i, const char *want)
{
	return lv->len[i] == strlen(want) && memcmp(lv->s[i], want, lv->len[i]) == 0;
}

static bool acl_subscribe_allowed(const struct pg_acl_subject *who, const char *filter,
                                  const char **reason)
{
	struct acl_levels lv;

	/* $share/<group>/<filter>: judge the filter, the group is free. */
	if (strncmp(filter, "$share/", 7) == 0) {
		const char *rest = strchr(filter + 7, '/');
		if (rest == NULL || rest == filter + 7) {
			*reason = "malformed shared subscription";
			return false;
		}
		filter = rest + 1;
	}
	if (who->role == PG_ROLE_SERVICE && strncmp(filter, "$SYS/", 5) == 0) {
		return true;
	}
	acl_split(filter, &lv);
	if (lv.n == 3 && acl_level_is(&lv, 0, "im")) {
		bool own =
		    lv.len[1] == strlen(who->uid) && memcmp(lv.s[1], who->uid, lv.len[1]) == 0;
		if (own && (acl_level_is(&lv, 2, "#") || acl_level_is(&lv, 2, "+") ||
		            acl_level_is(&lv, 2, "inbox") || acl_level_is(&lv, 2, "reply"))) {
			return true;
		}
		if (who->role == PG_ROLE_SERVICE && acl_level_is(&lv, 2, "presence") &&
		    (acl_level_is(&lv, 1, "+") || pg_ident_valid(lv.s[1], lv.len[1]))) {
			return true;
		}
	}
	*reason = who->role == PG_ROLE_SERVICE
	              ? "services may subscribe to im/<self>/#, im/+/presence and $SYS/#"
	              : "users may subscribe to im/<self>/# only";
	return false;
}

static bool acl_read_allowed(const struct pg_acl_subject *who, const char *topic,
                             const char **reason)
{
	struct pg_topic t;

	if (who->role == PG_ROLE_SERVICE && strncmp(topic, "$SYS/", 5) == 0) {
		return true;
	}
	pg_topic_parse(topic, &t);
	switch (t.kind) {
	case PG_TOPIC_INBOX:
	case PG_TOPIC_REPLY:
		if (strcmp(t.uid, who->uid) == 0) {
			return true;
		}
		*reason = "another user's topic";
		return false;
	case PG_TOPIC_PRESENCE:
		if (who->role == PG_ROLE_SERVICE) {
			return true;
		}
		*reason = "presence is for services";
		return false;
	default:
		*reason = "not a readable pigeon topic";
		return false;
	}
}

static bool acl_write_allowed(const struct pg_acl_subject *who, const char *topic, bool retain,
                              const char **reason)
{
	struct pg_topic t;

	pg_topic_parse(topic, &t);
	switch (t.kind) {
	case PG_TOPIC_CONTROL:
	case PG_TOPIC_SEND_CHAT:
	case PG_TOPIC_SEND_INSTANT:
		break;
	case PG_TOPIC_SEND_NOTIFY:
		if (who->role != PG_ROLE_SERVICE && !who->user_notify) {
			*reason = "users may not send notifications";
			return false;
		}
		break;
	case PG_TOPIC_INBOX:
	case PG_TOPIC_REPLY:
	case PG_TOPIC_PRESENCE:
		*reason = "only the broker publishes inbox, reply and presence";
		return false;
	case PG_TOPIC_MALFORMED:
		*reason = "malformed pigeon topic";
		return false;
	default:
		*reason = "topic outside pigeon's namespace";
		return false;
	}
	if (retain) {
		*reason = "retained publishes are refused";
		return false;
	}
	return true;
}

bool pg_acl_allows(const struct pg_acl_subject *who, enum pg_access access, const char *topic,
                   bool retain, const char **reason)
{
	const char *dummy;

	if (reason == NULL) {
		reason = &dummy;
	}
	if (topic == NULL || who == NULL || who->uid == NULL) {
		*reason = "no topic or identity";
		return false;
	}
	/*
	 * uid is compared with topic levels as text: one that is not an
	 * identifier ("+", "#", "a/b") would make im/+/inbox "own" and open
	 * every user's inbox. Tokens only carry valid uids; do not rely on it.
	 */
	if (access != PG_ACCESS_UNSUBSCRIBE && !pg_ident_valid_str(who->uid)) {
		*reason = "identity is not a valid uid";
		return false;
	}
	switch (access) {
	case PG_ACCESS_READ:
		return acl_read_allowed(who, topic, reason);
	case PG_ACCESS_WRITE:
		return acl_write_allowed(who, topic, retain, reason);
	case PG_ACCESS_SUBSCRIBE:
		return acl_subscribe_allowed(who, topic, reason);
	case PG_ACCESS_UNSUBSCRIBE:
		return true;
	}
	*reason = "unknown access";
	return false;
}

static bool acl_user_notify;

void pg_acl_set_user_notify(bool allowed)
{
	acl_user_notify = allowed;
}

bool pg_acl_user_notify(void)
{
	return acl_user_notify;
}
