/* SPDX-License-Identifier: Apache-2.0 */
/* The metadata limits of a send (broker/store/msglimits.c): each at and one byte past its bound. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "msglimits.h"
#include "protocol.h"

static const struct {
	size_t offset; /* of the field in struct pg_store_msg */
	size_t limit;
	const char *name; /* named in the reason */
} fields[] = {
    {offsetof(struct pg_store_msg, msg_id), PG_MSG_ID_MAX, "msg-id"},
    {offsetof(struct pg_store_msg, content_type), PG_CONTENT_TYPE_MAX, "content-type"},
    {offsetof(struct pg_store_msg, push_title), PG_PUSH_TITLE_MAX, "push-title"},
    {offsetof(struct pg_store_msg, push_body), PG_PUSH_BODY_MAX, "push-body"},
};

static char *filled(size_t n)
{
	char *s = malloc(n + 1);

	memset(s, 'a', n);
	s[n] = '\0';
	return s;
}

static void test_absent_fields_are_fine(void)
{
	struct pg_store_msg m = {0};

	CHECK(pg_msg_metadata_error(&m) == NULL);
}

static void test_each_field_at_and_past_its_limit(void)
{
	size_t i;

	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		struct pg_store_msg m = {0};
		const char **slot = (const char **)((char *)&m + fields[i].offset);
		char *at = filled(fields[i].limit), *past = filled(fields[i].limit + 1);
		const char *why;

		*slot = at;
		CHECK(pg_msg_metadata_error(&m) == NULL);
		*slot = past;
		why = pg_msg_metadata_error(&m);
		CHECK(why != NULL && strstr(why, fields[i].name) != NULL);
		free(at);
		free(past);
	}
}

static void test_limits_count_bytes_not_characters(void)
{
	struct pg_store_msg m = {0};
	char title[PG_PUSH_TITLE_MAX + 2];
	size_t i;

	/* 128 two-byte characters and an x: 129 characters, 257 bytes, over the limit. */
	for (i = 0; i + 1 < sizeof(title); i += 2) {
		title[i] = (char)0xc3;
		title[i + 1] = (char)0xa9;
	}
	title[PG_PUSH_TITLE_MAX + 1] = '\0';
	title[PG_PUSH_TITLE_MAX] = 'x';
	m.push_title = title;
	CHECK(pg_msg_metadata_error(&m) != NULL);
}

static void test_a_send_request_becomes_a_message(void)
{
	Pigeon__Send req = PIGEON__SEND__INIT;
	struct pg_store_msg m;
	const char *why = NULL;
	uint8_t body[] = "hi";

	req.to = "alice";
	req.kind = PIGEON__KIND__NOTIFY;
	req.type = "like";
	req.msg_id = "m-1";
	req.body.data = body;
	req.body.len = 2;
	req.ttl_s = 60;
	CHECK_EQ(pg_msg_from_send(&req, "bob", 1234, &m, &why), PG_OK);
	CHECK_STR(m.from, "bob");
	CHECK_STR(m.to, "alice");
	CHECK_STR(m.type, "like");
	CHECK_STR(m.msg_id, "m-1");
	CHECK_EQ(m.kind, PIGEON__KIND__NOTIFY);
	CHECK_EQ(m.body_len, 2);
	CHECK_EQ(m.ttl_s, 60);
	CHECK_EQ(m.now_ms, 1234);

	req.type = "";
	CHECK_EQ(pg_msg_from_send(&req, "bob", 1, &m, &why), PG_ERR_INVALID);
	CHECK_CONTAINS(why, "NOTIFY needs a valid type");
	req.kind = (Pigeon__Kind)7;
	CHECK_EQ(pg_msg_from_send(&req, "bob", 1, &m, &why), PG_ERR_INVALID);
	CHECK_CONTAINS(why, "kind must be");
	req.kind = PIGEON__KIND__CHAT;
	req.to = "not a uid";
	CHECK_EQ(pg_msg_from_send(&req, "bob", 1, &m, &why), PG_ERR_INVALID);
	CHECK_CONTAINS(why, "to is not a valid uid");
}

int main(void)
{
	RUN(test_absent_fields_are_fine);
	RUN(test_each_field_at_and_past_its_limit);
	RUN(test_limits_count_bytes_not_characters);
	RUN(test_a_send_request_becomes_a_message);
	return check_exit();
}
