/* SPDX-License-Identifier: Apache-2.0 */
/* Topic grammar: parsing concrete topic names into what they address. */
#include "topic.h"

#include <stdio.h>
#include <string.h>

/* Copies the level [s, s+len) into dst if it is a valid identifier. */
static int topic_take_ident(char dst[PG_IDENT_MAX + 1], const char *s, size_t len)
{
	if (!pg_ident_valid(s, len)) {
		return -1;
	}
	memcpy(dst, s, len);
	dst[len] = '\0';
	return 0;
}

void pg_topic_parse(const char *topic, struct pg_topic *out)
{
	const char *uid, *slash, *leaf;
	size_t uidlen;

	memset(out, 0, sizeof(*out));
	if (strcmp(topic, PG_CONTROL_TOPIC) == 0) {
		out->kind = PG_TOPIC_CONTROL;
		return;
	}
	if (strncmp(topic, "im/", 3) != 0) {
		out->kind = PG_TOPIC_OTHER;
		return;
	}
	out->kind = PG_TOPIC_MALFORMED;
	uid = topic + 3;
	slash = strchr(uid, '/');
	if (slash == NULL) {
		return;
	}
	uidlen = (size_t)(slash - uid);
	if (topic_take_ident(out->uid, uid, uidlen) != 0) {
		out->uid[0] = '\0';
		return;
	}
	leaf = slash + 1;
	if (strcmp(leaf, "chat") == 0) {
		out->kind = PG_TOPIC_SEND_CHAT;
	} else if (strcmp(leaf, "instant") == 0) {
		out->kind = PG_TOPIC_SEND_INSTANT;
	} else if (strcmp(leaf, "inbox") == 0) {
		out->kind = PG_TOPIC_INBOX;
	} else if (strcmp(leaf, "reply") == 0) {
		out->kind = PG_TOPIC_REPLY;
	} else if (strcmp(leaf, "presence") == 0) {
		out->kind = PG_TOPIC_PRESENCE;
	} else if (strncmp(leaf, "notify/", 7) == 0 &&
	           topic_take_ident(out->type, leaf + 7, strlen(leaf + 7)) == 0) {
		out->kind = PG_TOPIC_SEND_NOTIFY;
	}
}

int pg_topic_is_send(enum pg_topic_kind kind)
{
	return kind == PG_TOPIC_SEND_CHAT || kind == PG_TOPIC_SEND_NOTIFY ||
	       kind == PG_TOPIC_SEND_INSTANT;
}

int pg_topic_format(char *buf, size_t cap, const char *uid, const char *leaf)
{
	int n = snprintf(buf, cap, "im/%s/%s", uid, leaf);
	return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}
