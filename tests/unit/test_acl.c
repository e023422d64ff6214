/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The access matrix (acl.c, docs/auth.md) for role user and role service:
 * subscribe (wildcards and shared subscriptions included), write (publish)
 * and read (delivery), each case with the outcome and, on refusal, the
 * reason's gist.
 */
#include <stdbool.h>
#include <string.h>

#include "acl.h"
#include "check.h"

static const struct pg_acl_subject alice = {PG_ROLE_USER, "alice", false};
static const struct pg_acl_subject alice_notify = {PG_ROLE_USER, "alice", true};
static const struct pg_acl_subject ali = {PG_ROLE_USER, "ali", false};
static const struct pg_acl_subject svc = {PG_ROLE_SERVICE, "svc", false};

struct acl_case {
	const struct pg_acl_subject *who;
	const char *topic;
	bool retain;
	bool allow;
	const char *reason; /* a part of the refusal reason, or NULL */
};

static const char *access_name(enum pg_access access)
{
	switch (access) {
	case PG_ACCESS_READ:
		return "read";
	case PG_ACCESS_WRITE:
		return "write";
	case PG_ACCESS_SUBSCRIBE:
		return "subscribe";
	case PG_ACCESS_UNSUBSCRIBE:
		return "unsubscribe";
	}
	return "?";
}

static void run_cases(enum pg_access access, const struct acl_case *cases, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const struct acl_case *c = &cases[i];
		const char *reason = NULL;
		bool got = pg_acl_allows(c->who, access, c->topic, c->retain, &reason);

		if (got != c->allow) {
			fprintf(stderr, "%s %s %s%s: %s, expected %s (reason: %s)\n",
			        pg_role_name(c->who->role), c->who->uid, access_name(access),
			        c->retain ? " retained" : "", c->topic, got ? "allowed" : "refused",
			        reason ? reason : "(none)");
		}
		CHECK_EQ(got, c->allow);
		if (!got) {
			/* Every refusal says why. */
			CHECK(reason != NULL && reason[0] != '\0');
			if (c->reason != NULL) {
				CHECK_CONTAINS(reason, c->reason);
			}
		}
		/* reason may be NULL; the answer is the same. */
		CHECK_EQ(pg_acl_allows(c->who, access, c->topic, c->retain, NULL), c->allow);
	}
}

static void test_user_subscribe(void)
{
	static const struct acl_case cases[] = {
	    {&alice, "im/alice/#", false, true, NULL},
	    {&alice, "im/alice/+", false, true, NULL},
	    {&alice, "im/alice/inbox", false, true, NULL},
	    {&alice, "im/alice/reply", false, true, NULL},
	    {&alice, "$share/g/im/alice/#", false, true, NULL},
	    {&alice, "$share/workers/im/alice/inbox", false, true, NULL},

	    {&alice, "im/+/inbox", false, false, "im/<self>/#"},
	    {&alice, "im/+/#", false, false, NULL},
	    {&alice, "im/#", false, false, NULL},
	    {&alice, "#", false, false, NULL},
	    {&alice, "+/alice/#", false, false, NULL},
	    {&alice, "+/+/+", false, false, NULL},
	    {&alice, "im/bob/#", false, false, NULL},
	    {&alice, "im/bob/inbox", false, false, NULL},
	    {&alice, "im/bob/+", false, false, NULL},
	    {&alice, "im/alice/presence", false, false, NULL},
	    {&alice, "im/+/presence", false, false, NULL},
	    {&alice, "im/alice/chat", false, false, NULL},
	    {&alice, "im/alice/notify/+", false, false, NULL},
	    {&alice, "im/alice/inbox/#", false, false, NULL},
	    {&alice, "im/alice", false, false, NULL},
	    {&alice, "im/alice/", false, false, NULL},
	    {&alice, "$SYS/#", false, false, NULL},
	    {&alice, "$SYS/broker/uptime", false, false, NULL},
	    {&alice, "$CONTROL/pigeon/v1", false, false, NULL},
	    {&alice, "", false, false, NULL},
	    {&alice, "im/alice/a/b/c/d/e/f/g/h/i", false, false, NULL},
	    {&alice, "$share/g/im/bob/#", false, false, NULL},
	    {&alice, "$share/g/im/+/inbox", false, false, NULL},
	    {&alice, "$share/g/#", false, false, NULL},
	    {&alice, "$share/g/$SYS/#", false, false, NULL},
	    {&alice, "$share//im/alice/#", false, false, "malformed shared subscription"},
	    {&alice, "$share/g", false, false, "malformed shared subscription"},
	    /* uid comparisons are whole levels, not prefixes. */
	    {&ali, "im/alice/#", false, false, NULL},
	    {&alice, "im/ali/#", false, false, NULL},
	    {&ali, "im/ali/#", false, true, NULL},
	};

	run_cases(PG_ACCESS_SUBSCRIBE, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_service_subscribe(void)
{
	static const struct acl_case cases[] = {
	    {&svc, "im/+/presence", false, true, NULL},
	    {&svc, "im/bob/presence", false, true, NULL},
	    {&svc, "$share/g/im/+/presence", false, true, NULL},
	    {&svc, "$SYS/#", false, true, NULL},
	    {&svc, "$SYS/broker/pigeon/+", false, true, NULL},
	    {&svc, "$share/g/$SYS/#", false, true, NULL},
	    {&svc, "im/svc/#", false, true, NULL},
	    {&svc, "im/svc/+", false, true, NULL},
	    {&svc, "im/svc/inbox", false, true, NULL},
	    {&svc, "im/svc/reply", false, true, NULL},

	    {&svc, "im/+/inbox", false, false, "im/+/presence"},
	    {&svc, "im/+/reply", false, false, NULL},
	    {&svc, "im/+/#", false, false, NULL},
	    {&svc, "im/+/+", false, false, NULL},
	    {&svc, "im/#", false, false, NULL},
	    {&svc, "#", false, false, NULL},
	    {&svc, "+/+/presence", false, false, NULL},
	    {&svc, "im/#/presence", false, false, NULL},
	    {&svc, "im/a b/presence", false, false, NULL},
	    {&svc, "im/bob/#", false, false, NULL},
	    {&svc, "im/bob/inbox", false, false, NULL},
	    {&svc, "im/bob/chat", false, false, NULL},
	    {&svc, "$CONTROL/pigeon/v1", false, false, NULL},
	    {&svc, "$share/g/im/+/inbox", false, false, NULL},
	};

	run_cases(PG_ACCESS_SUBSCRIBE, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_user_write(void)
{
	static const struct acl_case cases[] = {
	    {&alice, "im/bob/chat", false, true, NULL},
	    {&alice, "im/alice/chat", false, true, NULL},
	    {&alice, "im/bob/instant", false, true, NULL},
	    {&alice, "im/u-1.x_y/chat", false, true, NULL},
	    {&alice, "$CONTROL/pigeon/v1", false, true, NULL},

	    {&alice, "im/bob/notify/news", false, false, "users may not send notifications"},
	    {&alice_notify, "im/bob/notify/news", false, true, NULL},
	    {&alice, "im/bob/inbox", false, false, "only the broker publishes"},
	    {&alice, "im/alice/inbox", false, false, "only the broker publishes"},
	    {&alice, "im/alice/reply", false, false, "only the broker publishes"},
	    {&alice, "im/bob/reply", false, false, "only the broker publishes"},
	    {&alice, "im/alice/presence", false, false, "only the broker publishes"},
	    {&alice_notify, "im/bob/inbox", false, false, "only the broker publishes"},

	    {&alice, "im/bob/chat", true, false, "retained"},
	    {&alice, "im/bob/instant", true, false, "retained"},
	    {&alice, "$CONTROL/pigeon/v1", true, false, "retained"},
	    {&alice_notify, "im/bob/notify/news", true, false, "retained"},

	    {&alice, "im/bob/chat/x", false, false, "malformed"},
	    {&alice, "im/a b/chat", false, false, "malformed"},
	    {&alice, "im/+/chat", false, false, "malformed"},
	    {&alice, "im/#", false, false, "malformed"},
	    {&alice, "im/bob", false, false, "malformed"},
	    {&alice, "im/bob/notify/", false, false, "malformed"},
	    {&alice, "im/", false, false, "malformed"},
	    {&alice, "foo/bar", false, false, "outside"},
	    {&alice, "$SYS/broker/uptime", false, false, "outside"},
	    {&alice, "$CONTROL/pigeon/v2", false, false, "outside"},
	    {&alice, "", false, false, "outside"},
	};

	run_cases(PG_ACCESS_WRITE, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_service_write(void)
{
	static const struct acl_case cases[] = {
	    {&svc, "im/bob/chat", false, true, NULL},
	    {&svc, "im/bob/instant", false, true, NULL},
	    {&svc, "im/bob/notify/order.shipped", false, true, NULL},
	    {&svc, "$CONTROL/pigeon/v1", false, true, NULL},

	    {&svc, "im/bob/inbox", false, false, "only the broker publishes"},
	    {&svc, "im/bob/reply", false, false, "only the broker publishes"},
	    {&svc, "im/bob/presence", false, false, "only the broker publishes"},
	    {&svc, "im/svc/presence", false, false, "only the broker publishes"},
	    {&svc, "im/bob/notify/x", true, false, "retained"},
	    {&svc, "im/bob/chat", true, false, "retained"},
	    {&svc, "im/bob/notify/x/y", false, false, "malformed"},
	    {&svc, "$SYS/broker/pigeon/x", false, false, "outside"},
	    {&svc, "other", false, false, "outside"},
	};

	run_cases(PG_ACCESS_WRITE, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_user_read(void)
{
	static const struct acl_case cases[] = {
	    {&alice, "im/alice/inbox", false, true, NULL},
	    {&alice, "im/alice/reply", false, true, NULL},

	    {&alice, "im/bob/inbox", false, false, "another user's topic"},
	    {&alice, "im/bob/reply", false, false, "another user's topic"},
	    {&ali, "im/alice/inbox", false, false, "another user's topic"},
	    {&alice, "im/alice/presence", false, false, "presence is for services"},
	    {&alice, "im/bob/presence", false, false, "presence is for services"},
	    {&alice, "im/alice/chat", false, false, "not a readable"},
	    {&alice, "im/alice/instant", false, false, "not a readable"},
	    {&alice, "im/alice/notify/x", false, false, "not a readable"},
	    {&alice, "$SYS/broker/uptime", false, false, "not a readable"},
	    {&alice, "$CONTROL/pigeon/v1", false, false, "not a readable"},
	    {&alice, "im/alice/inbox/x", false, false, "not a readable"},
	    {&alice, "foo", false, false, "not a readable"},
	};

	run_cases(PG_ACCESS_READ, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_service_read(void)
{
	static const struct acl_case cases[] = {
	    {&svc, "im/svc/inbox", false, true, NULL},
	    {&svc, "im/svc/reply", false, true, NULL},
	    {&svc, "im/bob/presence", false, true, NULL},
	    {&svc, "im/svc/presence", false, true, NULL},
	    {&svc, "$SYS/broker/uptime", false, true, NULL},

	    {&svc, "im/bob/inbox", false, false, "another user's topic"},
	    {&svc, "im/bob/reply", false, false, "another user's topic"},
	    {&svc, "im/bob/chat", false, false, "not a readable"},
	    {&svc, "$CONTROL/pigeon/v1", false, false, "not a readable"},
	};

	run_cases(PG_ACCESS_READ, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_unsubscribe_always_allowed(void)
{
	static const struct acl_case cases[] = {
	    {&alice, "im/bob/#", false, true, NULL},
	    {&alice, "#", false, true, NULL},
	    {&svc, "$SYS/#", false, true, NULL},
	};

	run_cases(PG_ACCESS_UNSUBSCRIBE, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_missing_identity_or_topic_refused(void)
{
	const struct pg_acl_subject nobody = {PG_ROLE_USER, NULL, false};
	const char *reason = NULL;

	CHECK(!pg_acl_allows(&nobody, PG_ACCESS_SUBSCRIBE, "im/alice/#", false, &reason));
	CHECK_STR(reason, "no topic or identity");
	reason = NULL;
	CHECK(!pg_acl_allows(NULL, PG_ACCESS_WRITE, "im/bob/chat", false, &reason));
	CHECK_STR(reason, "no topic or identity");
	reason = NULL;
	CHECK(!pg_acl_allows(&alice, PG_ACCESS_READ, NULL, false, &reason));
	CHECK_STR(reason, "no topic or identity");
	CHECK(!pg_acl_allows(&alice, (enum pg_access)42, "im/alice/inbox", false, &reason));
	CHECK_STR(reason, "unknown access");
}

/*
 * Found by fuzzing (tests/fuzz/corpus/topic/crash-acl-wildcard-uid): a uid
 * is matched against topic levels as text, so a subject whose uid is "+"
 * owned im/+/inbox, i.e. every inbox. No uid that is not an identifier gets
 * any access.
 */
static void test_invalid_uid_refused(void)
{
	static const struct pg_acl_subject plus = {PG_ROLE_USER, "+", false};
	static const struct pg_acl_subject hash = {PG_ROLE_USER, "#", false};
	static const struct pg_acl_subject slash = {PG_ROLE_SERVICE, "a/b", false};
	static const struct pg_acl_subject empty = {PG_ROLE_USER, "", false};
	static const struct acl_case subscribe[] = {
	    {&plus, "im/+/inbox", false, false, "not a valid uid"},
	    {&plus, "im/+/#", false, false, "not a valid uid"},
	    {&hash, "im/#/#", false, false, "not a valid uid"},
	    {&slash, "im/a/b/#", false, false, "not a valid uid"},
	    {&empty, "im//#", false, false, "not a valid uid"},
	};
	static const struct acl_case read[] = {
	    {&plus, "im/+/inbox", false, false, "not a valid uid"},
	    {&empty, "im//inbox", false, false, "not a valid uid"},
	};
	static const struct acl_case write[] = {
	    {&plus, "im/bob/chat", false, false, "not a valid uid"},
	};
	static const struct acl_case unsubscribe[] = {
	    {&plus, "im/+/inbox", false, true, NULL},
	};

	run_cases(PG_ACCESS_SUBSCRIBE, subscribe, sizeof(subscribe) / sizeof(subscribe[0]));
	run_cases(PG_ACCESS_READ, read, sizeof(read) / sizeof(read[0]));
	run_cases(PG_ACCESS_WRITE, write, sizeof(write) / sizeof(write[0]));
	run_cases(PG_ACCESS_UNSUBSCRIBE, unsubscribe, sizeof(unsubscribe) / sizeof(unsubscribe[0]));
}

int main(void)
{
	RUN(test_user_subscribe);
	RUN(test_service_subscribe);
	RUN(test_user_write);
	RUN(test_service_write);
	RUN(test_user_read);
	RUN(test_service_read);
	RUN(test_unsubscribe_always_allowed);
	RUN(test_missing_identity_or_topic_refused);
	RUN(test_invalid_uid_refused);
	return check_exit();
}
