/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon-dump's decoder (dump_line.h): the topic rules, hex, and the JSON
 * line of a payload. Moved out of clients/pigeon_dump.c unchanged in
 * behaviour so that tests/fuzz/fuzz_dump_line.c reaches the same code.
 *
 * Pure functions: any thread. The cJSON tree and the unpacked message of a
 * payload belong to pgdump_payload and are freed before it returns.
 */
#include "dump_line.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "pb_json.h"
#include "pigeon.pb-c.h"

static const struct {
	const char *name; /* the "type" printed */
	const ProtobufCMessageDescriptor *desc;
} pgdump_kinds[] = {
    [PGDUMP_NONE] = {"", NULL},
    [PGDUMP_ENVELOPE] = {"Envelope", &pigeon__envelope__descriptor},
    [PGDUMP_REPLY] = {"Reply", &pigeon__reply__descriptor},
    [PGDUMP_PRESENCE] = {"Presence", &pigeon__presence__descriptor},
    [PGDUMP_REQUEST] = {"Request", &pigeon__request__descriptor},
    [PGDUMP_CHAT] = {"chat", NULL},
    [PGDUMP_NOTIFY] = {"notify", NULL},
    [PGDUMP_INSTANT] = {"instant", NULL},
    [PGDUMP_SYS] = {"sys", NULL},
    [PGDUMP_OTHER] = {"raw", NULL},
};

const char *pgdump_kind_name(enum pgdump_kind k)
{
	if ((unsigned)k > PGDUMP_OTHER)
		return "";
	return pgdump_kinds[k].name;
}

enum pgdump_kind pgdump_parse_type(const char *s)
{
	for (int k = PGDUMP_ENVELOPE; k <= PGDUMP_LAST_MESSAGE; k++)
		if (strcasecmp(s, pgdump_kinds[k].name) == 0)
			return (enum pgdump_kind)k;
	return PGDUMP_NONE;
}

/*
 * 1 if t is im/<x>/<kind> (with_type 0) or im/<x>/<kind>/<type>
 * (with_type 1), every segment non-empty.
 */
static int pgdump_topic_is(const char *t, const char *kind, int with_type)
{
	if (strncmp(t, "im/", 3) != 0)
		return 0;
	const char *uid = t + 3, *slash = strchr(uid, '/');
	if (slash == NULL || slash == uid)
		return 0;
	size_t klen = strlen(kind);
	if (strncmp(slash + 1, kind, klen) != 0)
		return 0;
	const char *rest = slash + 1 + klen;
	if (!with_type)
		return *rest == '\0';
	return rest[0] == '/' && rest[1] != '\0' && strchr(rest + 1, '/') == NULL;
}

enum pgdump_kind pgdump_kind_of_topic(const char *t)
{
	if (pgdump_topic_is(t, "inbox", 0))
		return PGDUMP_ENVELOPE;
	if (pgdump_topic_is(t, "reply", 0))
		return PGDUMP_REPLY;
	if (pgdump_topic_is(t, "presence", 0))
		return PGDUMP_PRESENCE;
	if (strcmp(t, "$CONTROL/pigeon/v1") == 0)
		return PGDUMP_REQUEST;
	if (pgdump_topic_is(t, "chat", 0))
		return PGDUMP_CHAT;
	if (pgdump_topic_is(t, "notify", 1))
		return PGDUMP_NOTIFY;
	if (pgdump_topic_is(t, "instant", 0))
		return PGDUMP_INSTANT;
	if (strncmp(t, "$SYS/", 5) == 0)
		return PGDUMP_SYS;
	return PGDUMP_OTHER;
}

static int pgdump_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* 1 if s[0..n) is a whole number of hex bytes (n even, not 0). */
static int pgdump_is_hex(const char *s, size_t n)
{
	if (n == 0 || n % 2 != 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (pgdump_hexval((unsigned char)s[i]) < 0)
			return 0;
	return 1;
}

/* Decodes hex s[0..n) (pgdump_is_hex) in place: the bytes are n / 2 long. */
static size_t pgdump_unhex(char *s, size_t n)
{
	unsigned char *out = (unsigned char *)s;
	for (size_t i = 0; i < n; i += 2)
		out[i / 2] = (unsigned char)(pgdump_hexval((unsigned char)s[i]) << 4 |
		                             pgdump_hexval((unsigned char)s[i + 1]));
	return n / 2;
}

/* Why hex s[0..n) is not hex, for the error line. */
static void pgdump_why_not_hex(const char *s, size_t n, char *why, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (pgdump_hexval((unsigned char)s[i]) < 0) {
			snprintf(why, len, "not hex (character %zu)", i + 1);
			return;
		}
	snprintf(why, len, "not hex (odd length %zu)", n);
}

int pgdump_payload(const char *topic, enum pgdump_kind k, const uint8_t *p, size_t n, char **json,
                   char *why, size_t whylen)
{
	int rc = -1;
	ProtobufCMessage *m = NULL;
	cJSON *out = NULL;
	cJSON *msg = NULL;

	*json = NULL;
	if (k <= PGDUMP_NONE || k > PGDUMP_OTHER) {
		snprintf(why, whylen, "no such type (%d)", (int)k);
		return -1;
	}
	out = cJSON_CreateObject();
	if (out == NULL)
		goto oom;
	if (topic && !cJSON_AddStringToObject(out, "topic", topic))
		goto oom;
	if (!cJSON_AddStringToObject(out, "type", pgdump_kind_name(k)))
		goto oom;
	if (pgdump_kinds[k].desc != NULL) {
		if (n > PGDUMP_MESSAGE_MAX) {
			snprintf(why, whylen, "%s of %zu bytes, larger than pigeon sends (%u)",
			         pgdump_kinds[k].name, n, (unsigned)PGDUMP_MESSAGE_MAX);
			goto out;
		}
		m = protobuf_c_message_unpack(pgdump_kinds[k].desc, NULL, n, p);
		if (m == NULL) {
			snprintf(why, whylen, "not a valid %s (%zu bytes)", pgdump_kinds[k].name,
			         n);
			goto out;
		}
		/* Before anything is built: pb_json.h, PGCLI_PB_JSON_MAX_ELEMENTS. */
		if (pgcli_pb_elements(m) > PGCLI_PB_JSON_MAX_ELEMENTS) {
			snprintf(why, whylen,
			         "%s with more than %u repeated elements, more than pigeon sends",
			         pgdump_kinds[k].name, (unsigned)PGCLI_PB_JSON_MAX_ELEMENTS);
			goto out;
		}
		msg = pgcli_pb_to_cjson(m);
		if (msg == NULL)
			goto oom;
	} else {
		msg = cJSON_CreateObject();
		if (msg == NULL)
			goto oom;
		if (pgcli_json_add_bytes(msg, k == PGDUMP_SYS ? "value" : "body", p, n) != 0)
			goto oom;
	}
	cJSON_AddItemToObject(out, "message", msg);
	msg = NULL;
	*json = cJSON_PrintUnformatted(out);
	if (*json == NULL)
		goto oom;
	rc = 0;
	goto out;
oom:
	snprintf(why, whylen, "out of memory");
out:
	cJSON_Delete(msg);
	cJSON_Delete(out);
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

int pgdump_line(const struct pgdump_opts *o, int *text_mode, char *s, size_t n, char **json,
                char *why, size_t whylen)
{
	*json = NULL;
	if (n > 0 && s[n - 1] == '\r')
		s[--n] = '\0';
	if (n == 0)
		return 0;
	char *sp = memchr(s, ' ', n);
	if (sp == NULL) {
		if (!pgdump_is_hex(s, n)) {
			if (memchr(s, '/', n) != NULL && pgcli_utf8_text((const uint8_t *)s, n))
				snprintf(why, whylen, "a topic without a payload");
			else
				pgdump_why_not_hex(s, n, why, whylen);
			return -1;
		}
		n = pgdump_unhex(s, n);
		return pgdump_payload(NULL, o->forced ? o->forced : PGDUMP_ENVELOPE, (uint8_t *)s,
		                      n, json, why, whylen);
	}
	*sp = '\0';
	const char *topic = s;
	char *payload = sp + 1;
	size_t plen = n - (size_t)(payload - s);
	if (sp == s || !pgcli_utf8_text((const uint8_t *)topic, (size_t)(sp - s))) {
		snprintf(why, whylen, "no topic before the payload, or a topic that is not UTF-8");
		return -1;
	}
	enum pgdump_kind k = o->forced ? o->forced : pgdump_kind_of_topic(topic);
	if (k == PGDUMP_OTHER) {
		/* No pigeon client may see another topic: this is not a capture. */
		snprintf(why, whylen, "not a pigeon topic (see --help)");
		return -1;
	}
	/*
	 * A payload after a topic is hex (-F '%t %x') or as printed (-v), and
	 * a stream is all one or the other: the first payload that is not hex
	 * shows it is -v, and from then on every payload is taken as printed
	 * (a text "42" is not the byte 0x42). Until then a payload made of hex
	 * digits is hex, as in the README's pipe.
	 */
	if (!*text_mode && pgdump_is_hex(payload, plen))
		plen = pgdump_unhex(payload, plen);
	else if (plen > 0)
		*text_mode = 1;
	return pgdump_payload(topic, k, (uint8_t *)payload, plen, json, why, whylen);
}
