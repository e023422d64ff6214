/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: what a client names in PUBLISH and SUBSCRIBE packets
 * and in its CONNECT: topic names (topic.c), subscription filters and the
 * access matrix (acl.c's pg_acl_allows), client ids and identifiers
 * (ident.c), and, because it costs nothing more, the option parsers of
 * options.c.
 *
 * Input: one flags byte, then NUL-separated strings: the subject's uid, a
 * topic or filter, and a second, concrete topic. Checks, beyond memory
 * safety: a parsed topic formats back to itself; a split client id joins
 * back to itself; nobody may write inbox, reply or presence, or publish
 * retained; and a filter a user may subscribe to matches no topic outside
 * im/<self> (checked with a small MQTT matcher of its own against the
 * second topic).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "fuzz_check.h"
#include "ident.h"
#include "options.h"
#include "topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* MQTT 3.1.1 §4.7 matching of a concrete topic against a filter. */
static bool mqtt_matches(const char *filter, const char *topic)
{
	/* Wildcards at the first level do not match $-topics. */
	if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#')) {
		return false;
	}
	for (;;) {
		const char *fs = strchr(filter, '/'), *ts = strchr(topic, '/');
		size_t fl = fs ? (size_t)(fs - filter) : strlen(filter);
		size_t tl = ts ? (size_t)(ts - topic) : strlen(topic);

		if (fl == 1 && filter[0] == '#') {
			return fs == NULL;
		}
		if (!(fl == 1 && filter[0] == '+') &&
		    (fl != tl || memcmp(filter, topic, fl) != 0)) {
			return false;
		}
		if (fs == NULL || ts == NULL) {
			/* "a/#" also matches "a". */
			return fs == NULL && ts == NULL ? true
			                                : ts == NULL && strcmp(fs, "/#") == 0;
		}
		filter = fs + 1;
		topic = ts + 1;
	}
}

static void check_topic(const char *topic)
{
	static const char *const leaves[] = {
	    [PG_TOPIC_SEND_CHAT] = "chat",    [PG_TOPIC_SEND_INSTANT] = "instant",
	    [PG_TOPIC_INBOX] = "inbox",       [PG_TOPIC_REPLY] = "reply",
	    [PG_TOPIC_PRESENCE] = "presence",
	};
	char buf[PG_TOPIC_MAX + 16], leaf[PG_IDENT_MAX + 8];
	struct pg_topic t;

	pg_topic_parse(topic, &t);
	switch (t.kind) {
	case PG_TOPIC_OTHER:
		FUZZ_CHECK(strncmp(topic, "im/", 3) != 0);
		break;
	case PG_TOPIC_CONTROL:
		FUZZ_CHECK(strcmp(topic, PG_CONTROL_TOPIC) == 0);
		break;
	case PG_TOPIC_MALFORMED:
		FUZZ_CHECK(strncmp(topic, "im/", 3) == 0);
		break;
	case PG_TOPIC_SEND_NOTIFY:
		FUZZ_CHECK(pg_ident_valid_str(t.type));
		snprintf(leaf, sizeof(leaf), "notify/%s", t.type);
		FUZZ_CHECK(pg_ident_valid_str(t.uid));
		FUZZ_CHECK(pg_topic_format(buf, sizeof(buf), t.uid, leaf) == 0);
		FUZZ_CHECK(strcmp(buf, topic) == 0);
		FUZZ_CHECK(pg_topic_is_send(t.kind));
		break;
	default:
		FUZZ_CHECK(t.kind < sizeof(leaves) / sizeof(leaves[0]) && leaves[t.kind] != NULL);
		FUZZ_CHECK(pg_ident_valid_str(t.uid) && t.type[0] == '\0');
		FUZZ_CHECK(pg_topic_format(buf, sizeof(buf), t.uid, leaves[t.kind]) == 0);
		FUZZ_CHECK(strcmp(buf, topic) == 0);
		break;
	}
}

static void check_client_id(const char *id)
{
	char uid[PG_IDENT_MAX + 1], dev[PG_IDENT_MAX + 1], joined[PG_CLIENT_ID_MAX + 1];

	if (pg_client_id_split(id, uid, dev) == 0) {
		FUZZ_CHECK(pg_ident_valid_str(uid) && pg_ident_valid_str(dev));
		snprintf(joined, sizeof(joined), "%s:%s", uid, dev);
		FUZZ_CHECK(strcmp(joined, id) == 0);
	}
}

static void check_acl(const struct pg_acl_subject *who, const char *topic, const char *other,
                      bool retain)
{
	const char *reason = NULL;
	struct pg_topic t;
	bool w = pg_acl_allows(who, PG_ACCESS_WRITE, topic, retain, &reason);

	FUZZ_CHECK(w || reason != NULL);
	pg_topic_parse(topic, &t);
	if (w) {
		FUZZ_CHECK(!retain);
		FUZZ_CHECK(t.kind == PG_TOPIC_CONTROL || pg_topic_is_send(t.kind));
	}
	if (pg_acl_allows(who, PG_ACCESS_READ, topic, retain, &reason) &&
	    who->role == PG_ROLE_USER) {
		FUZZ_CHECK((t.kind == PG_TOPIC_INBOX || t.kind == PG_TOPIC_REPLY) &&
		           strcmp(t.uid, who->uid) == 0);
	}
	if (pg_acl_allows(who, PG_ACCESS_SUBSCRIBE, topic, retain, &reason)) {
		const char *filter = topic;
		char own[PG_IDENT_MAX + 8];
		if (strncmp(filter, "$share/", 7) == 0) {
			filter = strchr(filter + 7, '/');
			FUZZ_CHECK(filter != NULL);
			filter++;
		}
		snprintf(own, sizeof(own), "im/%s/", who->uid);
		/* im/<self>/# matches im/<self> too, which is nobody else's either. */
		if (who->role == PG_ROLE_USER && mqtt_matches(filter, other)) {
			FUZZ_CHECK(strncmp(other, own, strlen(own)) == 0 ||
			           strncmp(other, own, strlen(own) - 1) == 0 &&
			               other[strlen(own) - 1] == '\0');
		}
	}
	FUZZ_CHECK(pg_acl_allows(who, PG_ACCESS_UNSUBSCRIBE, topic, retain, NULL));
}

static void check_options(const char *s)
{
	char err[128];
	uint64_t v;
	unsigned count, per;
	bool b;

	if (pg_opt_uint(s, 3, 1000, &v, err, sizeof(err)) == 0) {
		FUZZ_CHECK(v >= 3 && v <= 1000);
	}
	(void)pg_opt_bool(s, &b, err, sizeof(err));
	if (pg_opt_rate(s, 60, &count, &per, err, sizeof(err)) == 0) {
		FUZZ_CHECK(per >= 1 && per <= 86400 && count <= 1000000000);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Three NUL-terminated strings (missing ones empty), in one copy. */
	char *buf = malloc(size + 3), *uid, *topic, *other;
	struct pg_acl_subject who;
	uint8_t flags;

	if (size == 0 || buf == NULL) {
		free(buf);
		return 0;
	}
	flags = data[0];
	memcpy(buf, data + 1, size - 1);
	/* buf[size - 1 .. size + 1] are NUL: each of the three strings ends in buf. */
	memset(buf + size - 1, 0, 3);
	uid = buf;
	topic = uid + strlen(uid) + 1;
	other = topic + strlen(topic) + 1;

	who.role = flags & 1 ? PG_ROLE_SERVICE : PG_ROLE_USER;
	who.user_notify = (flags & 2) != 0;
	/* The plugin passes the token's uid (valid); flag 4 tries any string. */
	who.uid = flags & 4 || pg_ident_valid_str(uid) ? uid : "alice";

	check_topic(topic);
	check_topic(other);
	check_client_id(uid);
	check_client_id(topic);
	(void)pg_ident_valid(topic, strlen(topic));
	{
		enum pg_role r;
		if (pg_role_parse(uid, &r) == 0) {
			FUZZ_CHECK(strcmp(pg_role_name(r), uid) == 0);
		}
	}
	check_acl(&who, topic, other, (flags & 16) != 0);
	check_options(topic);
	free(buf);
	return 0;
}
