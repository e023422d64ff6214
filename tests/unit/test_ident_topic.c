/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Identity and topic grammar (ident.c, topic.c; docs/protocol.md): what a uid is,
 * how a client id splits, and how every topic kind parses, malformed ones
 * included.
 */
#include <string.h>

#include "check.h"
#include "ident.h"
#include "topic.h"

static void test_ident_length_is_1_to_64(void)
{
	char s[80];

	memset(s, 'a', sizeof(s));
	s[64] = '\0';
	CHECK(pg_ident_valid(s, 64));
	CHECK(pg_ident_valid_str(s));
	s[64] = 'a';
	s[65] = '\0';
	CHECK(!pg_ident_valid(s, 65));
	CHECK(!pg_ident_valid_str(s));
	CHECK(pg_ident_valid("a", 1));
	CHECK(!pg_ident_valid("", 0));
	CHECK(!pg_ident_valid_str(""));
	CHECK(!pg_ident_valid(NULL, 3));
	CHECK(!pg_ident_valid_str(NULL));
	/* Only len bytes are looked at. */
	CHECK(pg_ident_valid("ab cd", 2));
}

static void test_ident_charset(void)
{
	static const char *const good[] = {
	    "alice", "Bob",
	    "u-1",   "u_1",
	    "u.1",   "0123456789",
	    "...",   "-",
	    "_",     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._",
	};
	static const char *const bad[] = {
	    "a b", "a/b",         "a+b",  "a#b", "+",  "#",    "a:b",
	    "a@b", "caf\xc3\xa9", "a\tb", "a$",  "a*", "a\\b", "a,b",
	};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		CHECK(pg_ident_valid_str(good[i]));
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(!pg_ident_valid_str(bad[i]));
	}
	/* An embedded NUL inside the given length is not an identifier byte. */
	CHECK(!pg_ident_valid("ab\0c", 4));
}

static void test_client_id_split(void)
{
	char uid[PG_IDENT_MAX + 1], dev[PG_IDENT_MAX + 1];
	char longid[200];

	CHECK_EQ(pg_client_id_split("a:b", uid, dev), 0);
	CHECK_STR(uid, "a");
	CHECK_STR(dev, "b");
	CHECK_EQ(pg_client_id_split("alice:phone-1", uid, dev), 0);
	CHECK_STR(uid, "alice");
	CHECK_STR(dev, "phone-1");

	CHECK_EQ(pg_client_id_split(":b", uid, dev), PG_ERR_INVALID);
	CHECK_EQ(pg_client_id_split("a:", uid, dev), PG_ERR_INVALID);
	CHECK_EQ(pg_client_id_split(":", uid, dev), PG_ERR_INVALID);
	CHECK_EQ(pg_client_id_split("a:b:c", uid, dev), PG_ERR_INVALID);
	CHECK_EQ(pg_client_id_split("alice", uid, dev), PG_ERR_INVALID);
	CHECK_EQ(pg_client_id_split("", uid, dev), PG_ERR_INVALID);
	CHECK_EQ(pg_client_id_split("a b:c", uid, dev), PG_ERR_INVALID);
	CHECK_EQ(pg_client_id_split("a:c d", uid, dev), PG_ERR_INVALID);
	CHECK_EQ(pg_client_id_split(NULL, uid, dev), PG_ERR_INVALID);

	/* 64:64 is the longest client id; 65 characters on either side is not. */
	memset(longid, 'u', 64);
	longid[64] = ':';
	memset(longid + 65, 'd', 64);
	longid[129] = '\0';
	CHECK_EQ(pg_client_id_split(longid, uid, dev), 0);
	CHECK_EQ(strlen(uid), 64);
	CHECK_EQ(strlen(dev), 64);
	CHECK_EQ(uid[0], 'u');
	CHECK_EQ(dev[63], 'd');
	longid[129] = 'd';
	longid[130] = '\0';
	CHECK_EQ(pg_client_id_split(longid, uid, dev), PG_ERR_INVALID);
	memset(longid, 'u', 65);
	longid[65] = ':';
	memset(longid + 66, 'd', 3);
	longid[69] = '\0';
	CHECK_EQ(pg_client_id_split(longid, uid, dev), PG_ERR_INVALID);
	/* A very long client id is refused without reading it all. */
	memset(longid, 'x', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	longid[1] = ':';
	CHECK_EQ(pg_client_id_split(longid, uid, dev), PG_ERR_INVALID);
}

static void test_role_names(void)
{
	enum pg_role r = PG_ROLE_SERVICE;

	CHECK_STR(pg_role_name(PG_ROLE_USER), "user");
	CHECK_STR(pg_role_name(PG_ROLE_SERVICE), "service");
	CHECK_EQ(pg_role_parse("user", &r), 0);
	CHECK_EQ(r, PG_ROLE_USER);
	CHECK_EQ(pg_role_parse("service", &r), 0);
	CHECK_EQ(r, PG_ROLE_SERVICE);
	CHECK_EQ(pg_role_parse("admin", &r), PG_ERR_INVALID);
	CHECK_EQ(pg_role_parse("Service", &r), PG_ERR_INVALID);
	CHECK_EQ(pg_role_parse("", &r), PG_ERR_INVALID);
	CHECK_EQ(r, PG_ROLE_SERVICE);
}

/* Parses topic and checks kind, uid and type. */
static void expect_topic(const char *topic, enum pg_topic_kind kind, const char *uid,
                         const char *type)
{
	struct pg_topic t;

	memset(&t, 0x55, sizeof(t));
	pg_topic_parse(topic, &t);
	if (t.kind != kind) {
		fprintf(stderr, "topic \"%s\": kind %d, expected %d\n", topic, t.kind, kind);
	}
	CHECK_EQ(t.kind, kind);
	if (uid != NULL) {
		CHECK_STR(t.uid, uid);
	}
	if (type != NULL) {
		CHECK_STR(t.type, type);
	}
}

static void test_topic_every_kind(void)
{
	expect_topic("im/bob/chat", PG_TOPIC_SEND_CHAT, "bob", "");
	expect_topic("im/bob/notify/order.shipped", PG_TOPIC_SEND_NOTIFY, "bob", "order.shipped");
	expect_topic("im/bob/instant", PG_TOPIC_SEND_INSTANT, "bob", "");
	expect_topic("im/alice/inbox", PG_TOPIC_INBOX, "alice", "");
	expect_topic("im/alice/reply", PG_TOPIC_REPLY, "alice", "");
	expect_topic("im/alice/presence", PG_TOPIC_PRESENCE, "alice", "");
	expect_topic("$CONTROL/pigeon/v1", PG_TOPIC_CONTROL, "", "");

	CHECK(pg_topic_is_send(PG_TOPIC_SEND_CHAT));
	CHECK(pg_topic_is_send(PG_TOPIC_SEND_NOTIFY));
	CHECK(pg_topic_is_send(PG_TOPIC_SEND_INSTANT));
	CHECK(!pg_topic_is_send(PG_TOPIC_INBOX));
	CHECK(!pg_topic_is_send(PG_TOPIC_REPLY));
	CHECK(!pg_topic_is_send(PG_TOPIC_PRESENCE));
	CHECK(!pg_topic_is_send(PG_TOPIC_CONTROL));
	CHECK(!pg_topic_is_send(PG_TOPIC_MALFORMED));
	CHECK(!pg_topic_is_send(PG_TOPIC_OTHER));
}

static void test_topic_longest_names(void)
{
	char uid[PG_IDENT_MAX + 2], type[PG_IDENT_MAX + 2], topic[300];

	memset(uid, 'u', PG_IDENT_MAX);
	uid[PG_IDENT_MAX] = '\0';
	memset(type, 't', PG_IDENT_MAX);
	type[PG_IDENT_MAX] = '\0';
	snprintf(topic, sizeof(topic), "im/%s/notify/%s", uid, type);
	CHECK_EQ(strlen(topic) + 1, PG_TOPIC_MAX);
	expect_topic(topic, PG_TOPIC_SEND_NOTIFY, uid, type);

	/* One character more in the uid or the type is malformed. */
	snprintf(topic, sizeof(topic), "im/%su/chat", uid);
	expect_topic(topic, PG_TOPIC_MALFORMED, "", NULL);
	snprintf(topic, sizeof(topic), "im/%s/notify/%st", uid, type);
	expect_topic(topic, PG_TOPIC_MALFORMED, NULL, "");
}

static void test_topic_malformed(void)
{
	static const char *const bad[] = {
	    "im/",
	    "im/a",
	    "im//chat",
	    "im/a/",
	    "im/a/notify",
	    "im/a/notify/",
	    "im/a/notify/x/y",
	    "im/a/notify/x y",
	    "im/a b/chat",
	    "im/a+b/chat",
	    "im/+/inbox",
	    "im/#",
	    "im/a/chat/x",
	    "im/a/chat/",
	    "im/a/Chat",
	    "im/a/inbox/x",
	    "im/a/presence/",
	    "im/a/unknown",
	    "im/a//chat",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		expect_topic(bad[i], PG_TOPIC_MALFORMED, NULL, "");
	}
	/* An invalid uid is never reported. */
	expect_topic("im/a b/chat", PG_TOPIC_MALFORMED, "", "");
}

static void test_topic_outside_pigeon(void)
{
	static const char *const other[] = {
	    "",
	    "im",
	    "IM/a/chat",
	    "/im/a/chat",
	    "chat",
	    "$SYS/broker/uptime",
	    "$CONTROL/pigeon/v2",
	    "$CONTROL/pigeon/v1/x",
	    "$CONTROL/dynamic-security/v1",
	    "a/im/b/chat",
	};
	size_t i;

	for (i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		expect_topic(other[i], PG_TOPIC_OTHER, "", "");
	}
}

static void test_topic_format(void)
{
	char buf[PG_TOPIC_MAX];
	char small[14];

	CHECK_EQ(pg_topic_format(buf, sizeof(buf), "alice", "inbox"), 0);
	CHECK_STR(buf, "im/alice/inbox");
	CHECK_EQ(pg_topic_format(buf, sizeof(buf), "bob", "presence"), 0);
	CHECK_STR(buf, "im/bob/presence");
	/* "im/alice/inbox" is 14 characters: it needs 15 bytes. */
	CHECK_EQ(pg_topic_format(small, sizeof(small), "alice", "inbox"), -1);
	CHECK_EQ(pg_topic_format(buf, 15, "alice", "inbox"), 0);
	CHECK_STR(buf, "im/alice/inbox");
}

int main(void)
{
	RUN(test_ident_length_is_1_to_64);
	RUN(test_ident_charset);
	RUN(test_client_id_split);
	RUN(test_role_names);
	RUN(test_topic_every_kind);
	RUN(test_topic_longest_names);
	RUN(test_topic_malformed);
	RUN(test_topic_outside_pigeon);
	RUN(test_topic_format);
	return check_exit();
}
