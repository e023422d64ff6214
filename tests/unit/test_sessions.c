/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Session registry (sessions.c): add/find/remove, per-user counts across
 * devices, device_connected, replacing the session under a key, watchers on
 * add and remove (and unwatch), foreach, reset; the expiry order (earliest
 * exp first, bounded takes, each session reported once, removal anywhere in
 * the heap, checked against brute force), the key id kept per session, and
 * the per-session refusal log limiter.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sessions.h"

/* Keys are opaque pointers; any distinct addresses do. */
static int key_a, key_b, key_c, key_d;

static struct pg_claims claims_for(const char *sub, const char *jti, enum pg_role role)
{
	struct pg_claims c;

	memset(&c, 0, sizeof(c));
	strcpy(c.sub, sub);
	strcpy(c.jti, jti);
	c.role = role;
	c.exp = 2000000000;
	return c;
}

#define MAX_EVENTS 32

struct recorder {
	int n;
	enum pg_session_event ev[MAX_EVENTS];
	const void *key[MAX_EVENTS];
	char client_id[MAX_EVENTS][PG_CLIENT_ID_MAX];
	size_t user_count[MAX_EVENTS]; /* pg_sessions_user_count at the call */
	bool found[MAX_EVENTS];        /* pg_sessions_find(key) != NULL at the call */
};

static void record(enum pg_session_event ev, const struct pg_session *s, void *ud)
{
	struct recorder *r = ud;

	if (r->n == MAX_EVENTS) {
		abort();
	}
	r->ev[r->n] = ev;
	r->key[r->n] = s->key;
	strcpy(r->client_id[r->n], s->client_id);
	r->user_count[r->n] = pg_sessions_user_count(s->uid);
	r->found[r->n] = pg_sessions_find(s->key) != NULL;
	r->n++;
}

static void test_add_find_remove(void)
{
	struct pg_claims c = claims_for("alice", "jti-1", PG_ROLE_USER);
	const struct pg_session *s;

	pg_sessions_reset();
	c.has_iat = true;
	c.iat = 1700000000;
	CHECK(pg_sessions_find(&key_a) == NULL);
	CHECK_EQ(pg_sessions_add(&key_a, &c, "phone", NULL, 1700000000123), 0);
	s = pg_sessions_find(&key_a);
	CHECK(s != NULL);
	if (s != NULL) {
		CHECK(s->key == &key_a);
		CHECK_STR(s->uid, "alice");
		CHECK_STR(s->device, "phone");
		CHECK_STR(s->client_id, "alice:phone");
		CHECK_STR(s->jti, "jti-1");
		CHECK_EQ(s->role, PG_ROLE_USER);
		CHECK(s->has_iat);
		CHECK_EQ(s->iat, 1700000000);
		CHECK_EQ(s->since_ms, 1700000000123);
	}
	CHECK(pg_sessions_find(&key_b) == NULL);
	CHECK_EQ(pg_sessions_count(), 1);

	pg_sessions_remove(&key_a);
	CHECK(pg_sessions_find(&key_a) == NULL);
	CHECK_EQ(pg_sessions_count(), 0);
	CHECK_EQ(pg_sessions_user_count("alice"), 0);
	/* Removing an unknown key is a no-op. */
	pg_sessions_remove(&key_a);
	pg_sessions_remove(NULL);
	CHECK_EQ(pg_sessions_count(), 0);
}

static void test_user_count_across_devices(void)
{
	struct pg_claims alice = claims_for("alice", "", PG_ROLE_USER);
	struct pg_claims bob = claims_for("bob", "", PG_ROLE_USER);
	struct pg_claims svc = claims_for("svc", "", PG_ROLE_SERVICE);

	pg_sessions_reset();
	CHECK_EQ(pg_sessions_add(&key_a, &alice, "phone", NULL, 1), 0);
	CHECK_EQ(pg_sessions_add(&key_b, &alice, "laptop", NULL, 2), 0);
	CHECK_EQ(pg_sessions_add(&key_c, &bob, "phone", NULL, 3), 0);
	CHECK_EQ(pg_sessions_add(&key_d, &svc, "worker-1", NULL, 4), 0);
	CHECK_EQ(pg_sessions_count(), 4);
	CHECK_EQ(pg_sessions_user_count("alice"), 2);
	CHECK_EQ(pg_sessions_user_count("bob"), 1);
	CHECK_EQ(pg_sessions_user_count("svc"), 1);
	CHECK_EQ(pg_sessions_user_count("carol"), 0);
	CHECK_EQ(pg_sessions_user_count("alic"), 0);
	CHECK_EQ(pg_sessions_find(&key_d)->role, PG_ROLE_SERVICE);

	CHECK(pg_sessions_device_connected("alice", "phone"));
	CHECK(pg_sessions_device_connected("alice", "laptop"));
	CHECK(!pg_sessions_device_connected("alice", "tablet"));
	CHECK(pg_sessions_device_connected("bob", "phone"));
	CHECK(!pg_sessions_device_connected("bob", "laptop"));
	CHECK(!pg_sessions_device_connected("carol", "phone"));

	pg_sessions_remove(&key_a);
	CHECK_EQ(pg_sessions_user_count("alice"), 1);
	CHECK(!pg_sessions_device_connected("alice", "phone"));
	CHECK(pg_sessions_device_connected("alice", "laptop"));
	CHECK(pg_sessions_device_connected("bob", "phone"));
	pg_sessions_remove(&key_b);
	CHECK_EQ(pg_sessions_user_count("alice"), 0);
	CHECK(!pg_sessions_device_connected("alice", "laptop"));
	CHECK_EQ(pg_sessions_count(), 2);
	pg_sessions_reset();
}

static void test_add_on_same_key_replaces(void)
{
	struct pg_claims alice = claims_for("alice", "old", PG_ROLE_USER);
	struct pg_claims alice2 = claims_for("alice", "new", PG_ROLE_USER);
	struct pg_claims bob = claims_for("bob", "", PG_ROLE_USER);
	struct recorder rec;

	pg_sessions_reset();
	memset(&rec, 0, sizeof(rec));
	CHECK_EQ(pg_sessions_add(&key_a, &alice, "phone", NULL, 1), 0);
	CHECK_EQ(pg_sessions_watch(record, &rec), 0);
	CHECK_EQ(pg_sessions_add(&key_a, &alice2, "tablet", NULL, 2), 0);
	CHECK_EQ(pg_sessions_count(), 1);
	CHECK_EQ(pg_sessions_user_count("alice"), 1);
	CHECK_STR(pg_sessions_find(&key_a)->jti, "new");
	CHECK_STR(pg_sessions_find(&key_a)->client_id, "alice:tablet");
	CHECK(!pg_sessions_device_connected("alice", "phone"));
	CHECK(pg_sessions_device_connected("alice", "tablet"));
	/* Replacing is a remove then an add. */
	CHECK_EQ(rec.n, 2);
	CHECK_EQ(rec.ev[0], PG_SESSION_REMOVED);
	CHECK_STR(rec.client_id[0], "alice:phone");
	CHECK_EQ(rec.ev[1], PG_SESSION_ADDED);
	CHECK_STR(rec.client_id[1], "alice:tablet");

	/* The key may come back as another user. */
	CHECK_EQ(pg_sessions_add(&key_a, &bob, "phone", NULL, 3), 0);
	CHECK_EQ(pg_sessions_count(), 1);
	CHECK_EQ(pg_sessions_user_count("alice"), 0);
	CHECK_EQ(pg_sessions_user_count("bob"), 1);
	CHECK_EQ(rec.n, 4);
	pg_sessions_reset();
}

static void test_watchers_see_add_and_remove(void)
{
	struct pg_claims alice = claims_for("alice", "", PG_ROLE_USER);
	struct recorder r1, r2;

	pg_sessions_reset();
	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	CHECK_EQ(pg_sessions_watch(record, &r1), 0);
	CHECK_EQ(pg_sessions_watch(record, &r2), 0);

	CHECK_EQ(pg_sessions_add(&key_a, &alice, "phone", NULL, 1), 0);
	CHECK_EQ(pg_sessions_add(&key_b, &alice, "laptop", NULL, 2), 0);
	pg_sessions_remove(&key_a);
	CHECK_EQ(r1.n, 3);
	CHECK_EQ(r2.n, 3);
	CHECK_EQ(r1.ev[0], PG_SESSION_ADDED);
	CHECK(r1.key[0] == &key_a);
	CHECK_STR(r1.client_id[0], "alice:phone");
	/* ADDED is called after the change... */
	CHECK(r1.found[0]);
	CHECK_EQ(r1.user_count[0], 1);
	CHECK_EQ(r1.user_count[1], 2);
	/* ...REMOVED before it, with the session still readable. */
	CHECK_EQ(r1.ev[2], PG_SESSION_REMOVED);
	CHECK(r1.key[2] == &key_a);
	CHECK_STR(r1.client_id[2], "alice:phone");
	CHECK(r1.found[2]);
	CHECK_EQ(r1.user_count[2], 2);

	/* Unwatch stops one watcher; the other still hears. */
	pg_sessions_unwatch(record, &r1);
	pg_sessions_remove(&key_b);
	CHECK_EQ(r1.n, 3);
	CHECK_EQ(r2.n, 4);
	CHECK_EQ(r2.ev[3], PG_SESSION_REMOVED);
	CHECK_STR(r2.client_id[3], "alice:laptop");
	/* Unwatching an unknown pair changes nothing. */
	pg_sessions_unwatch(record, &r1);
	pg_sessions_unwatch(record, NULL);
	CHECK_EQ(pg_sessions_add(&key_c, &alice, "phone", NULL, 3), 0);
	CHECK_EQ(r2.n, 5);
	CHECK_EQ(r1.n, 3);
	pg_sessions_unwatch(record, &r2);
	pg_sessions_remove(&key_c);
	CHECK_EQ(r2.n, 5);
	pg_sessions_reset();
}

static void test_watcher_limit_and_unwatch_middle(void)
{
	struct recorder rec[9];
	struct pg_claims alice = claims_for("alice", "", PG_ROLE_USER);
	int i;

	pg_sessions_reset();
	memset(rec, 0, sizeof(rec));
	for (i = 0; i < 8; i++) {
		CHECK_EQ(pg_sessions_watch(record, &rec[i]), 0);
	}
	CHECK_EQ(pg_sessions_watch(record, &rec[8]), PG_ERR_NOMEM);
	pg_sessions_unwatch(record, &rec[3]);
	CHECK_EQ(pg_sessions_watch(record, &rec[8]), 0);
	CHECK_EQ(pg_sessions_add(&key_a, &alice, "phone", NULL, 1), 0);
	for (i = 0; i < 9; i++) {
		CHECK_EQ(rec[i].n, i == 3 ? 0 : 1);
	}
	pg_sessions_reset();
}

struct collect {
	int n;
	char ids[8][PG_CLIENT_ID_MAX];
};

static void collect_fn(const struct pg_session *s, void *ud)
{
	struct collect *c = ud;

	if (c->n < 8) {
		strcpy(c->ids[c->n], s->client_id);
	}
	c->n++;
}

static bool collected(const struct collect *c, const char *id)
{
	int i;

	for (i = 0; i < c->n && i < 8; i++) {
		if (strcmp(c->ids[i], id) == 0) {
			return true;
		}
	}
	return false;
}

static void test_foreach_by_uid_and_all(void)
{
	struct pg_claims alice = claims_for("alice", "", PG_ROLE_USER);
	struct pg_claims bob = claims_for("bob", "", PG_ROLE_USER);
	struct collect c;

	pg_sessions_reset();
	pg_sessions_add(&key_a, &alice, "phone", NULL, 1);
	pg_sessions_add(&key_b, &bob, "phone", NULL, 2);
	pg_sessions_add(&key_c, &alice, "laptop", NULL, 3);

	memset(&c, 0, sizeof(c));
	pg_sessions_foreach("alice", collect_fn, &c);
	CHECK_EQ(c.n, 2);
	CHECK(collected(&c, "alice:phone"));
	CHECK(collected(&c, "alice:laptop"));

	memset(&c, 0, sizeof(c));
	pg_sessions_foreach("bob", collect_fn, &c);
	CHECK_EQ(c.n, 1);
	CHECK(collected(&c, "bob:phone"));

	memset(&c, 0, sizeof(c));
	pg_sessions_foreach("carol", collect_fn, &c);
	CHECK_EQ(c.n, 0);

	memset(&c, 0, sizeof(c));
	pg_sessions_foreach(NULL, collect_fn, &c);
	CHECK_EQ(c.n, 3);
	CHECK(collected(&c, "alice:phone"));
	CHECK(collected(&c, "alice:laptop"));
	CHECK(collected(&c, "bob:phone"));
	pg_sessions_reset();
}

static void test_reset_forgets_sessions_and_watchers(void)
{
	struct pg_claims alice = claims_for("alice", "", PG_ROLE_USER);
	struct recorder rec;

	pg_sessions_reset();
	memset(&rec, 0, sizeof(rec));
	pg_sessions_watch(record, &rec);
	pg_sessions_add(&key_a, &alice, "phone", NULL, 1);
	pg_sessions_add(&key_b, &alice, "laptop", NULL, 1);
	CHECK_EQ(rec.n, 2);
	pg_sessions_reset();
	/* No watcher is called by reset, and none is left afterwards. */
	CHECK_EQ(rec.n, 2);
	CHECK_EQ(pg_sessions_count(), 0);
	CHECK_EQ(pg_sessions_user_count("alice"), 0);
	CHECK(!pg_sessions_device_connected("alice", "phone"));
	CHECK(pg_sessions_find(&key_a) == NULL);
	pg_sessions_add(&key_a, &alice, "phone", NULL, 1);
	CHECK_EQ(rec.n, 2);
	CHECK_EQ(pg_sessions_user_count("alice"), 1);
	pg_sessions_reset();
}

static void test_longest_identifiers(void)
{
	struct pg_claims c;
	char dev[PG_IDENT_MAX + 1];
	const struct pg_session *s;

	pg_sessions_reset();
	memset(&c, 0, sizeof(c));
	memset(c.sub, 'u', PG_IDENT_MAX);
	memset(c.jti, 'j', PG_JTI_MAX);
	memset(dev, 'd', PG_IDENT_MAX);
	dev[PG_IDENT_MAX] = '\0';
	CHECK_EQ(pg_sessions_add(&key_a, &c, dev, NULL, 1), 0);
	s = pg_sessions_find(&key_a);
	CHECK(s != NULL);
	CHECK_EQ(strlen(s->client_id), 2 * PG_IDENT_MAX + 1);
	CHECK_EQ(s->client_id[PG_IDENT_MAX], ':');
	CHECK_EQ(strlen(s->jti), PG_JTI_MAX);
	CHECK(pg_sessions_device_connected(c.sub, dev));
	pg_sessions_reset();
}

struct taken {
	size_t n;
	const void *key[64];
	int64_t exp[64];
};

static void record_taken(const struct pg_session *s, void *ud)
{
	struct taken *t = ud;

	if (t->n < 64) {
		t->key[t->n] = s->key;
		t->exp[t->n] = s->exp;
	}
	t->n++;
}

static void test_expired_sessions_are_taken_earliest_first_once(void)
{
	struct pg_claims a = claims_for("alice", "", PG_ROLE_USER);
	struct pg_claims b = claims_for("bob", "", PG_ROLE_USER);
	struct pg_claims c = claims_for("carol", "", PG_ROLE_USER);
	struct taken t = {0};

	pg_sessions_reset();
	CHECK_EQ(pg_sessions_next_exp(), INT64_MAX);
	a.exp = 300;
	b.exp = 100;
	c.exp = 200;
	pg_sessions_add(&key_a, &a, "phone", NULL, 1);
	pg_sessions_add(&key_b, &b, "phone", NULL, 1);
	pg_sessions_add(&key_c, &c, "phone", NULL, 1);
	CHECK_EQ(pg_sessions_next_exp(), 100);
	CHECK_EQ(pg_sessions_find(&key_b)->exp, 100);

	/* Strictly before: exp == before_s is not yet over. */
	CHECK_EQ(pg_sessions_take_expired(100, 10, record_taken, &t), 0);
	CHECK_EQ(pg_sessions_take_expired(250, 10, record_taken, &t), 2);
	CHECK_EQ(t.n, 2);
	CHECK(t.key[0] == &key_b && t.key[1] == &key_c);
	CHECK_EQ(t.exp[0], 100);
	/* Reported once, yet still registered until removed. */
	CHECK_EQ(pg_sessions_take_expired(250, 10, record_taken, &t), 0);
	CHECK(pg_sessions_find(&key_b) != NULL);
	CHECK_EQ(pg_sessions_count(), 3);
	CHECK_EQ(pg_sessions_next_exp(), 300);
	/* Removing a taken session is fine. */
	pg_sessions_remove(&key_b);
	CHECK_EQ(pg_sessions_count(), 2);

	/* A session replaced under its key (a new token) is scheduled by the new exp. */
	c.exp = 1000;
	pg_sessions_add(&key_c, &c, "phone", NULL, 2);
	CHECK_EQ(pg_sessions_next_exp(), 300);
	t.n = 0;
	CHECK_EQ(pg_sessions_take_expired(999, 10, record_taken, &t), 1);
	CHECK(t.key[0] == &key_a);
	CHECK_EQ(pg_sessions_next_exp(), 1000);
	pg_sessions_reset();
	CHECK_EQ(pg_sessions_next_exp(), INT64_MAX);
}

static void test_take_expired_is_bounded(void)
{
	static char keys[100];
	struct pg_claims c = claims_for("alice", "", PG_ROLE_USER);
	struct taken t = {0};
	char dev[16];
	int i;

	pg_sessions_reset();
	for (i = 0; i < 100; i++) {
		c.exp = 1000 - i; /* added latest-first */
		snprintf(dev, sizeof(dev), "d%d", i);
		CHECK_EQ(pg_sessions_add(&keys[i], &c, dev, NULL, 1), 0);
	}
	CHECK_EQ(pg_sessions_take_expired(2000, 30, record_taken, &t), 30);
	CHECK_EQ(t.exp[0], 901);
	CHECK_EQ(t.exp[29], 930);
	t.n = 0;
	CHECK_EQ(pg_sessions_take_expired(2000, 1000, record_taken, &t), 70);
	CHECK_EQ(t.exp[0], 931);
	CHECK_EQ(pg_sessions_next_exp(), INT64_MAX);
	pg_sessions_reset();
}

/* What a brute-force scan says is the earliest exp among keys still scheduled. */
static int64_t brute_min(const int64_t *exp, const bool *live, int n)
{
	int64_t m = INT64_MAX;
	int i;

	for (i = 0; i < n; i++) {
		if (live[i] && exp[i] < m) {
			m = exp[i];
		}
	}
	return m;
}

struct order_check {
	int64_t last;
	bool ordered;
	size_t n;
};

static void check_order(const struct pg_session *s, void *ud)
{
	struct order_check *oc = ud;

	if (s->exp < oc->last) {
		oc->ordered = false;
	}
	oc->last = s->exp;
	oc->n++;
}

static void test_expiry_order_survives_random_adds_and_removes(void)
{
	enum { N = 5000 };
	static char keys[N];
	static int64_t exp[N];
	static bool live[N];
	struct pg_claims c = claims_for("u", "", PG_ROLE_USER);
	struct order_check oc = {.last = INT64_MIN, .ordered = true};
	unsigned seed = 12345;
	char dev[16];
	int i, round, mismatches = 0;
	size_t nlive = 0;

	pg_sessions_reset();
	memset(live, 0, sizeof(live));
	for (round = 0; round < 40000; round++) {
		seed = seed * 1103515245u + 12345u;
		i = (int)((seed >> 8) % N);
		if (live[i] && (seed & 1)) {
			pg_sessions_remove(&keys[i]);
			live[i] = false;
			nlive--;
		} else {
			seed = seed * 1103515245u + 12345u;
			exp[i] = (int64_t)((seed >> 4) % 100000);
			c.exp = exp[i];
			snprintf(dev, sizeof(dev), "d%d", i);
			if (pg_sessions_add(&keys[i], &c, dev, NULL, 1) != 0) {
				mismatches++;
			}
			if (!live[i]) {
				nlive++;
			}
			live[i] = true;
		}
		if (pg_sessions_next_exp() != brute_min(exp, live, N)) {
			mismatches++;
		}
	}
	CHECK_EQ(mismatches, 0);
	CHECK_EQ(pg_sessions_count(), nlive);
	/* Taking everything yields every live session once, in exp order. */
	CHECK_EQ(pg_sessions_take_expired(INT64_MAX, SIZE_MAX, check_order, &oc), nlive);
	CHECK(oc.ordered);
	CHECK_EQ(oc.n, nlive);
	pg_sessions_reset();
}

static void test_key_id_is_kept(void)
{
	struct pg_claims c = claims_for("alice", "", PG_ROLE_USER);
	struct pg_key_id id;
	const struct pg_session *s;

	pg_sessions_reset();
	memset(id.b, 0xab, sizeof(id.b));
	pg_sessions_add(&key_a, &c, "phone", &id, 1);
	pg_sessions_add(&key_b, &c, "tablet", NULL, 1);
	s = pg_sessions_find(&key_a);
	CHECK(s->has_key_id);
	CHECK(memcmp(s->key_id.b, id.b, PG_KEY_ID_LEN) == 0);
	CHECK(!pg_sessions_find(&key_b)->has_key_id);
	pg_sessions_reset();
}

static void test_refusal_log_limit_is_per_session(void)
{
	struct pg_claims a = claims_for("alice", "", PG_ROLE_USER);
	struct pg_claims b = claims_for("bob", "", PG_ROLE_USER);
	struct pg_loglimit_note note;
	int i, allowed = 0;

	pg_sessions_reset();
	pg_sessions_add(&key_a, &a, "phone", NULL, 1);
	pg_sessions_add(&key_b, &b, "phone", NULL, 1);
	for (i = 0; i < 100; i++) {
		allowed += pg_sessions_log_allow(&key_a, 5000, &note);
	}
	CHECK_EQ(allowed, PG_LOGLIMIT_BURST);
	/* bob's budget is his own. */
	CHECK(pg_sessions_log_allow(&key_b, 5000, &note));
	CHECK_EQ(note.held, 0);
	/* A key without a session (not admitted by us) is never held back. */
	for (i = 0; i < 100; i++) {
		CHECK(pg_sessions_log_allow(&key_c, 5000, &note));
	}
	/* alice leaves: what was held back is handed over once. */
	pg_sessions_log_flush(&key_a, 6000, &note);
	CHECK_EQ(note.held, 100 - PG_LOGLIMIT_BURST);
	CHECK_EQ(note.span_ms, 1000);
	pg_sessions_log_flush(&key_a, 6000, &note);
	CHECK_EQ(note.held, 0);
	/* A new session under the same key starts with a full budget. */
	pg_sessions_add(&key_a, &a, "phone", NULL, 7000);
	CHECK(pg_sessions_log_allow(&key_a, 7000, &note));
	pg_sessions_reset();
}

int main(void)
{
	RUN(test_add_find_remove);
	RUN(test_user_count_across_devices);
	RUN(test_add_on_same_key_replaces);
	RUN(test_watchers_see_add_and_remove);
	RUN(test_watcher_limit_and_unwatch_middle);
	RUN(test_foreach_by_uid_and_all);
	RUN(test_reset_forgets_sessions_and_watchers);
	RUN(test_longest_identifiers);
	RUN(test_expired_sessions_are_taken_earliest_first_once);
	RUN(test_take_expired_is_bounded);
	RUN(test_expiry_order_survives_random_adds_and_removes);
	RUN(test_key_id_is_kept);
	RUN(test_refusal_log_limit_is_per_session);
	return check_exit();
}
