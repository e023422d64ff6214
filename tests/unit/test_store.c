/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The message store (broker/store/) through its public interface:
 * per-recipient CHAT seqs; sync paging (limit, max_bytes, more,
 * head_seq, oldest_seq); NOTIFY merging and its reset by an ack; dedup;
 * reads that merge records not yet applied to SQLite; acks and unread
 * counts; INSTANT; invalid input; the per-user cap; TTL; presence; the
 * bound of the user cache; and
 * durability: a process that dies without closing (fork + _exit) loses no
 * accepted record, and a clean restart keeps everything and trims the
 * journal.
 *
 * "Not yet applied" is made deterministic by holding the store thread's
 * writes (block_writer: pg_store_test_hold_applier on the "faulty" backend
 * that wraps SQLite): the store thread then cannot commit, as if another
 * process held the database locked, so every record accepted meanwhile
 * lives only in the journal and in the broker thread's pending entries. The
 * integration tests (test_store_faults.py) hold SQLite's real lock.
 *
 * Each test uses its own mkdtemp directory, removed at its end.
 */
#define _GNU_SOURCE /* SCHED_BATCH */
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "check.h"
#include "protocol.h"
#include "store.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------- fixture: a temp directory with a store in it ---------- */

struct fx {
	char dir[64];
	char db[128];
	struct pg_store_config cfg;
	struct pg_store *st;
};

static void fx_init(struct fx *f, uint32_t max_per_user)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/pigeon-store-XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		perror("mkdtemp");
		exit(2);
	}
	snprintf(f->db, sizeof(f->db), "%s/store.db", f->dir);
	f->cfg.db_path = f->db;
	f->cfg.sync_full = false;
	f->cfg.ttl_s = 3600;
	f->cfg.max_per_user = max_per_user;
	f->cfg.dedup_window_s = 600;
	/* The real database, wrapped so that tests can hold its writes (block_writer). */
	f->cfg.backend = "faulty:sqlite";
}

static struct pg_store *fx_open(struct fx *f)
{
	char err[256] = "";

	f->st = NULL;
	if (pg_store_open(&f->cfg, &f->st, err, sizeof(err)) != 0 || f->st == NULL) {
		/* Nothing else can be checked without a store. */
		fprintf(stderr, "pg_store_open(%s) failed: %s\n", f->db, err);
		exit(1);
	}
	return f->st;
}

static void fx_close(struct fx *f)
{
	pg_store_close(f->st);
	f->st = NULL;
}

/* Closes the store and removes the directory with everything in it. */
static void fx_done(struct fx *f)
{
	char pattern[160];
	glob_t g;
	size_t i;

	fx_close(f);
	snprintf(pattern, sizeof(pattern), "%s/*", f->dir);
	if (glob(pattern, 0, NULL, &g) == 0) {
		for (i = 0; i < g.gl_pathc; i++) {
			unlink(g.gl_pathv[i]);
		}
		globfree(&g);
	}
	CHECK_EQ(rmdir(f->dir), 0);
}

/* Journal segment files beside the database. */
static size_t jnl_count(const struct fx *f)
{
	char pattern[160];
	glob_t g;
	size_t n = 0;

	snprintf(pattern, sizeof(pattern), "%s.jnl.*", f->db);
	if (glob(pattern, 0, NULL, &g) == 0) {
		n = g.gl_pathc;
		globfree(&g);
	}
	return n;
}

/*
 * Holds the store thread's writes (pg_store_test_hold_applier, the faulty
 * backend) so that nothing accepted meanwhile reaches the database.
 */
static void block_writer(const struct fx *f)
{
	CHECK_EQ(pg_store_test_hold_applier(f->st, true), PG_OK);
}

static void unblock_writer(const struct fx *f)
{
	CHECK_EQ(pg_store_test_hold_applier(f->st, false), PG_OK);
}

static uint64_t pending(struct pg_store *st)
{
	struct pg_store_stats s;

	pg_store_get_stats(st, &s);
	return s.pending;
}

/* ---------- sending ---------- */

struct sent {
	int rc;
	uint64_t seq;
	uint32_t merged;
	bool duplicate;
	uint8_t *packed; /* the envelope as returned by accept (NULL if none) */
	size_t packed_len;
	Pigeon__Envelope *env; /* packed, unpacked */
};

static void sent_free(struct sent *s)
{
	free(s->packed);
	if (s->env) {
		pigeon__envelope__free_unpacked(s->env, NULL);
	}
	memset(s, 0, sizeof(*s));
}

static struct sent send_full(struct pg_store *st, const struct pg_store_msg *m)
{
	struct pg_store_accepted a;
	struct sent s;

	memset(&s, 0, sizeof(s));
	memset(&a, 0x55, sizeof(a)); /* accept must set every field */
	s.rc = pg_store_accept(st, m, malloc, free, &a);
	s.seq = a.seq;
	s.merged = a.merged;
	s.duplicate = a.duplicate;
	s.packed = a.envelope;
	s.packed_len = a.envelope_len;
	if (a.envelope != NULL) {
		s.env = pigeon__envelope__unpack(NULL, a.envelope_len, a.envelope);
		CHECK(s.env != NULL);
	}
	return s;
}

static struct pg_store_msg msg_of(Pigeon__Kind kind, const char *from, const char *to,
                                  const char *type, const char *msg_id, const char *body,
                                  int64_t now)
{
	struct pg_store_msg m;

	memset(&m, 0, sizeof(m));
	m.kind = kind;
	m.from = from;
	m.to = to;
	m.type = type;
	m.msg_id = msg_id;
	m.content_type = "text/plain";
	m.body = (const uint8_t *)body;
	m.body_len = body ? strlen(body) : 0;
	m.now_ms = now;
	return m;
}

/* Accepts a CHAT and returns its seq (0 on failure, which fails a check). */
static uint64_t chat(struct pg_store *st, const char *from, const char *to, const char *msg_id,
                     const char *body)
{
	struct pg_store_msg m = msg_of(PIGEON__KIND__CHAT, from, to, NULL, msg_id, body, now_ms());
	struct sent s = send_full(st, &m);
	uint64_t seq = s.seq;

	CHECK_EQ(s.rc, PG_OK);
	CHECK(!s.duplicate);
	CHECK(s.packed != NULL);
	sent_free(&s);
	return seq;
}

/* Accepts a NOTIFY; returns the whole result (caller frees). */
static struct sent notify(struct pg_store *st, const char *to, const char *type, const char *body,
                          int64_t now, uint32_t ttl_s)
{
	struct pg_store_msg m = msg_of(PIGEON__KIND__NOTIFY, "svc", to, type, NULL, body, now);

	m.ttl_s = ttl_s;
	return send_full(st, &m);
}

static Pigeon__SyncReply *sync_of(struct pg_store *st, const char *uid, uint64_t after,
                                  uint32_t limit, size_t max_bytes)
{
	Pigeon__SyncReply *r = NULL;

	CHECK_EQ(pg_store_sync(st, uid, after, limit, max_bytes, now_ms(), &r), PG_OK);
	CHECK(r != NULL);
	return r;
}

static bool body_is(const Pigeon__Envelope *e, const char *want)
{
	return e->body.len == strlen(want) && memcmp(e->body.data, want, e->body.len) == 0;
}

static uint64_t head_of(struct pg_store *st, const char *uid)
{
	uint64_t h = 12345;

	CHECK_EQ(pg_store_head(st, uid, &h), PG_OK);
	return h;
}

static uint64_t unread_of(struct pg_store *st, const char *uid, const char *device,
                          uint64_t *cursor)
{
	uint64_t c = 12345, n = 12345;

	CHECK_EQ(pg_store_unread(st, uid, device, now_ms(), &c, &n), PG_OK);
	if (cursor) {
		*cursor = c;
	}
	return n;
}

/* ---------- tests ---------- */

static void test_chat_seqs_per_recipient(void)
{
	struct fx f;
	struct pg_store *st;
	struct pg_store_msg m;
	struct sent s;
	int64_t t0 = now_ms();

	fx_init(&f, 1000);
	st = fx_open(&f);
	CHECK_EQ(head_of(st, "bob"), 0);

	m = msg_of(PIGEON__KIND__CHAT, "alice", "bob", NULL, "a1", "hello bob", t0);
	s = send_full(st, &m);
	CHECK_EQ(s.rc, PG_OK);
	CHECK_EQ(s.seq, 1);
	CHECK_EQ(s.merged, 0);
	CHECK(!s.duplicate);
	/* The envelope is what will be delivered: every field filled in. */
	CHECK(s.env != NULL);
	if (s.env) {
		CHECK_EQ(s.env->seq, 1);
		CHECK_STR(s.env->from, "alice");
		CHECK_STR(s.env->to, "bob");
		CHECK_EQ(s.env->kind, PIGEON__KIND__CHAT);
		CHECK_STR(s.env->type, "");
		CHECK_STR(s.env->msg_id, "a1");
		CHECK_STR(s.env->content_type, "text/plain");
		CHECK(body_is(s.env, "hello bob"));
		CHECK_EQ(s.env->sent_at_ms, t0);
		CHECK_EQ(s.env->expires_at_ms, t0 + 3600 * 1000);
		CHECK_EQ(s.env->merged, 0);
	}
	sent_free(&s);

	CHECK_EQ(chat(st, "alice", "bob", NULL, "two"), 2);
	CHECK_EQ(chat(st, "alice", "carol", NULL, "c-one"), 1);
	CHECK_EQ(chat(st, "dave", "bob", "", "three"), 3);
	CHECK_EQ(chat(st, "bob", "carol", NULL, "c-two"), 2);
	CHECK_EQ(chat(st, "bob", "bob", NULL, "to self"), 4);
	CHECK_EQ(head_of(st, "bob"), 4);
	CHECK_EQ(head_of(st, "carol"), 2);
	CHECK_EQ(head_of(st, "alice"), 0);

	/* A TTL longer than the configured one is cut to it; a shorter one is kept. */
	m = msg_of(PIGEON__KIND__CHAT, "alice", "erin", NULL, NULL, "x", t0);
	m.ttl_s = 999999;
	s = send_full(st, &m);
	CHECK(s.env && s.env->expires_at_ms == (uint64_t)(t0 + 3600 * 1000));
	sent_free(&s);
	m.ttl_s = 60;
	s = send_full(st, &m);
	CHECK_EQ(s.seq, 2);
	CHECK(s.env && s.env->expires_at_ms == (uint64_t)(t0 + 60 * 1000));
	sent_free(&s);

	{
		struct pg_store_stats stats;
		pg_store_get_stats(st, &stats);
		CHECK_EQ(stats.accepted, 8);
		pg_store_flush(st);
		pg_store_get_stats(st, &stats);
		CHECK_EQ(stats.pending, 0);
		CHECK_EQ(stats.apply_errors, 0);
	}
	/* Heads come back from SQLite after a restart. */
	fx_close(&f);
	st = fx_open(&f);
	CHECK_EQ(head_of(st, "bob"), 4);
	CHECK_EQ(head_of(st, "carol"), 2);
	CHECK_EQ(chat(st, "alice", "bob", NULL, "five"), 5);
	fx_done(&f);
}

/* Checks that r holds exactly seqs first..last with bodies "m<seq>". */
static void check_range(const Pigeon__SyncReply *r, uint64_t first, uint64_t last)
{
	size_t i;
	char want[32];

	CHECK_EQ(r->n_messages, last >= first ? last - first + 1 : 0);
	for (i = 0; i < r->n_messages && first + i <= last; i++) {
		CHECK_EQ(r->messages[i]->seq, first + i);
		snprintf(want, sizeof(want), "m%llu", (unsigned long long)(first + i));
		CHECK(body_is(r->messages[i], want));
	}
}

/* r holds exactly seqs first..last (bodies not checked). */
static void check_seqs(const Pigeon__SyncReply *r, uint64_t first, uint64_t last)
{
	size_t i;

	CHECK_EQ(r->n_messages, last >= first ? last - first + 1 : 0);
	for (i = 0; i < r->n_messages && first + i <= last; i++) {
		CHECK_EQ(r->messages[i]->seq, first + i);
	}
}

/* A sync of uid after `after` holds exactly seqs first..last, and oldest_seq is oldest. */
static void check_sync(struct pg_store *st, const char *uid, uint64_t after, uint64_t first,
                       uint64_t last, uint64_t oldest)
{
	Pigeon__SyncReply *r = sync_of(st, uid, after, 100, 1 << 20);

	check_seqs(r, first, last);
	CHECK_EQ(r->oldest_seq, oldest);
	CHECK(!r->more);
	pg_store_sync_free(r);
}

static void sync_paging_checks(struct pg_store *st)
{
	Pigeon__SyncReply *r;
	size_t one;

	r = sync_of(st, "bob", 0, 4, 1 << 20);
	check_range(r, 1, 4);
	CHECK(r->more);
	CHECK_EQ(r->head_seq, 10);
	CHECK_EQ(r->oldest_seq, 1);
	pg_store_sync_free(r);

	r = sync_of(st, "bob", 4, 4, 1 << 20);
	check_range(r, 5, 8);
	CHECK(r->more);
	CHECK_EQ(r->oldest_seq, 1);
	pg_store_sync_free(r);

	r = sync_of(st, "bob", 8, 4, 1 << 20);
	check_range(r, 9, 10);
	CHECK(!r->more);
	CHECK_EQ(r->head_seq, 10);
	pg_store_sync_free(r);

	r = sync_of(st, "bob", 0, 10, 1 << 20);
	check_range(r, 1, 10);
	CHECK(!r->more);
	pg_store_sync_free(r);

	r = sync_of(st, "bob", 10, 100, 1 << 20);
	check_range(r, 1, 0);
	CHECK(!r->more);
	CHECK_EQ(r->head_seq, 10);
	CHECK_EQ(r->oldest_seq, 1);
	pg_store_sync_free(r);

	/* max_bytes counts whole envelopes as a SyncReply carries them: room for 2.5 -> 2. */
	r = sync_of(st, "bob", 0, 1, 1 << 20);
	one = pigeon__envelope__get_packed_size(r->messages[0]) + 2;
	pg_store_sync_free(r);
	r = sync_of(st, "bob", 0, 100, 2 * one + one / 2);
	check_range(r, 1, 2);
	CHECK(r->more);
	pg_store_sync_free(r);
	/* At least one message whatever max_bytes says. */
	r = sync_of(st, "bob", 3, 100, 0);
	check_range(r, 4, 4);
	CHECK(r->more);
	pg_store_sync_free(r);

	/* carol's stream is independent. */
	r = sync_of(st, "carol", 0, 100, 1 << 20);
	check_range(r, 1, 2);
	CHECK_EQ(r->head_seq, 2);
	pg_store_sync_free(r);

	/* A user with nothing: no messages, head 0, oldest = head + 1. */
	r = sync_of(st, "nobody", 0, 100, 1 << 20);
	CHECK_EQ(r->n_messages, 0);
	CHECK(!r->more);
	CHECK_EQ(r->head_seq, 0);
	CHECK_EQ(r->oldest_seq, 1);
	pg_store_sync_free(r);
}

static void test_sync_paging(void)
{
	struct fx f;
	struct pg_store *st;
	char body[16];
	int i;

	fx_init(&f, 1000);
	st = fx_open(&f);
	/* First with every message pending (SQLite blocked), then applied. */
	block_writer(&f);
	for (i = 1; i <= 10; i++) {
		snprintf(body, sizeof(body), "m%d", i);
		CHECK_EQ(chat(st, "alice", "bob", NULL, body), (uint64_t)i);
	}
	CHECK_EQ(chat(st, "alice", "carol", NULL, "m1"), 1);
	CHECK_EQ(chat(st, "alice", "carol", NULL, "m2"), 2);
	CHECK_EQ(pending(st), 12);
	sync_paging_checks(st);
	unblock_writer(&f);
	pg_store_flush(st);
	CHECK_EQ(pending(st), 0);
	sync_paging_checks(st);

	/* Half applied, half pending: the merge gives the same pages. */
	fx_done(&f);
	fx_init(&f, 1000);
	st = fx_open(&f);
	for (i = 1; i <= 5; i++) {
		snprintf(body, sizeof(body), "m%d", i);
		chat(st, "alice", "bob", NULL, body);
	}
	chat(st, "alice", "carol", NULL, "m1");
	pg_store_flush(st);
	block_writer(&f);
	for (i = 6; i <= 10; i++) {
		snprintf(body, sizeof(body), "m%d", i);
		CHECK_EQ(chat(st, "alice", "bob", NULL, body), (uint64_t)i);
	}
	chat(st, "alice", "carol", NULL, "m2");
	CHECK_EQ(pending(st), 6);
	sync_paging_checks(st);
	unblock_writer(&f);
	pg_store_flush(st);
	sync_paging_checks(st);

	/* Invalid sync arguments. */
	{
		Pigeon__SyncReply *r = (Pigeon__SyncReply *)&r;
		CHECK_EQ(pg_store_sync(st, "bob", 0, 0, 1000, now_ms(), &r), PG_ERR_INVALID);
		CHECK(r == NULL);
		CHECK_EQ(pg_store_sync(st, "bo/b", 0, 10, 1000, now_ms(), &r), PG_ERR_INVALID);
		CHECK_EQ(pg_store_sync(st, NULL, 0, 10, 1000, now_ms(), &r), PG_ERR_INVALID);
		pg_store_sync_free(NULL);
	}
	fx_done(&f);
}

/* Envelopes returned by sync are byte for byte those accept returned. */
static void test_sync_returns_delivered_bytes(void)
{
	struct fx f;
	struct pg_store *st;
	struct sent s[6];
	Pigeon__SyncReply *r;
	int pass, i;
	char body[32];

	fx_init(&f, 1000);
	st = fx_open(&f);
	block_writer(&f);
	for (i = 0; i < 6; i++) {
		struct pg_store_msg m;
		snprintf(body, sizeof(body), "payload %d \x01\x02", i);
		m = i % 2 ? msg_of(PIGEON__KIND__NOTIFY, "svc", "bob", i == 3 ? "b" : "a", NULL,
		                   body, now_ms())
		          : msg_of(PIGEON__KIND__CHAT, "alice", "bob", NULL, "id", body, now_ms());
		m.msg_id = i % 2 ? NULL : (i == 0 ? "id0" : i == 2 ? "id2" : "id4");
		m.push_title = "title";
		m.push_body = "push";
		s[i] = send_full(st, &m);
		CHECK_EQ(s[i].rc, PG_OK);
		CHECK_EQ(s[i].seq, (uint64_t)i + 1);
	}
	/* seq 2 (type a) was replaced by seq 6: stored are 1, 3, 4, 5, 6. */
	for (pass = 0; pass < 2; pass++) {
		const int want[] = {0, 2, 3, 4, 5};
		r = sync_of(st, "bob", 0, 100, 1 << 20);
		CHECK_EQ(r->n_messages, 5);
		for (i = 0; i < 5 && (size_t)i < r->n_messages; i++) {
			const struct sent *w = &s[want[i]];
			size_t len = pigeon__envelope__get_packed_size(r->messages[i]);
			uint8_t *buf = malloc(len ? len : 1);
			pigeon__envelope__pack(r->messages[i], buf);
			CHECK_EQ(len, w->packed_len);
			if (len == w->packed_len) {
				CHECK_MEM(buf, w->packed, len);
			}
			free(buf);
		}
		CHECK_EQ(r->oldest_seq, 1);
		pg_store_sync_free(r);
		if (pass == 0) {
			CHECK(pending(st) > 0);
			unblock_writer(&f);
			pg_store_flush(st);
		}
	}
	for (i = 0; i < 6; i++) {
		sent_free(&s[i]);
	}
	fx_done(&f);
}

static void notify_checks_30_20(struct pg_store *st)
{
	Pigeon__SyncReply *r = sync_of(st, "bob", 0, 100, 1 << 20);

	CHECK_EQ(r->n_messages, 2);
	if (r->n_messages == 2) {
		CHECK_EQ(r->messages[0]->seq, 30);
		CHECK_STR(r->messages[0]->type, "like");
		CHECK_EQ(r->messages[0]->merged, 29);
		CHECK(body_is(r->messages[0], "like 29"));
		CHECK_EQ(r->messages[1]->seq, 50);
		CHECK_STR(r->messages[1]->type, "follow");
		CHECK_EQ(r->messages[1]->merged, 19);
		CHECK(body_is(r->messages[1], "follow 19"));
	}
	CHECK(!r->more);
	CHECK_EQ(r->head_seq, 50);
	/* Seqs 1..29 are replaced: the lowest still stored is 30. */
	CHECK_EQ(r->oldest_seq, 30);
	pg_store_sync_free(r);

	/* A page of one, and the next page. */
	r = sync_of(st, "bob", 0, 1, 1 << 20);
	CHECK_EQ(r->n_messages, 1);
	CHECK(r->n_messages == 1 && r->messages[0]->seq == 30);
	CHECK(r->more);
	pg_store_sync_free(r);
	r = sync_of(st, "bob", 30, 1, 1 << 20);
	CHECK_EQ(r->n_messages, 1);
	CHECK(r->n_messages == 1 && r->messages[0]->seq == 50);
	pg_store_sync_free(r);

	CHECK_EQ(unread_of(st, "bob", "phone", NULL), 2);
}

static void test_notify_merging(void)
{
	struct fx f;
	struct pg_store *st;
	struct pg_store_stats stats;
	struct sent s;
	char body[32];
	int i;

	fx_init(&f, 1000);
	st = fx_open(&f);
	block_writer(&f);
	for (i = 0; i < 30; i++) {
		snprintf(body, sizeof(body), "like %d", i);
		s = notify(st, "bob", "like", body, now_ms(), 0);
		CHECK_EQ(s.rc, PG_OK);
		CHECK_EQ(s.seq, (uint64_t)i + 1);
		CHECK_EQ(s.merged, (uint32_t)i);
		CHECK(s.env && s.env->merged == (uint32_t)i && s.env->kind == PIGEON__KIND__NOTIFY);
		sent_free(&s);
	}
	for (i = 0; i < 20; i++) {
		snprintf(body, sizeof(body), "follow %d", i);
		s = notify(st, "bob", "follow", body, now_ms(), 0);
		CHECK_EQ(s.seq, (uint64_t)i + 31);
		CHECK_EQ(s.merged, (uint32_t)i);
		sent_free(&s);
	}
	pg_store_get_stats(st, &stats);
	CHECK_EQ(stats.accepted, 50);
	CHECK_EQ(stats.merged, 48);
	/* All pending (with pending deletes of the replaced ones) ... */
	CHECK_EQ(pending(st), 50);
	notify_checks_30_20(st);
	/* ... then all applied: SQLite holds the same two. */
	unblock_writer(&f);
	pg_store_flush(st);
	notify_checks_30_20(st);

	/* Merged counts survive a restart (the slots are reloaded from SQLite). */
	fx_close(&f);
	st = fx_open(&f);
	notify_checks_30_20(st);

	/*
	 * A device acks past the stored like (30) but not the follow (50): the
	 * next like starts over at merged 0, the next follow goes on at 20.
	 * Pending deletes of rows that are in SQLite are merged too.
	 */
	{
		uint64_t cur = 0;
		CHECK_EQ(pg_store_ack(st, "bob", "phone", 30, &cur), PG_OK);
		CHECK_EQ(cur, 30);
	}
	block_writer(&f);
	s = notify(st, "bob", "like", "like again", now_ms(), 0);
	CHECK_EQ(s.seq, 51);
	CHECK_EQ(s.merged, 0);
	sent_free(&s);
	s = notify(st, "bob", "follow", "follow again", now_ms(), 0);
	CHECK_EQ(s.seq, 52);
	CHECK_EQ(s.merged, 20);
	sent_free(&s);
	for (i = 0; i < 2; i++) {
		Pigeon__SyncReply *r = sync_of(st, "bob", 0, 100, 1 << 20);
		CHECK_EQ(r->n_messages, 2);
		if (r->n_messages == 2) {
			CHECK_EQ(r->messages[0]->seq, 51);
			CHECK_EQ(r->messages[0]->merged, 0);
			CHECK(body_is(r->messages[0], "like again"));
			CHECK_EQ(r->messages[1]->seq, 52);
			CHECK_EQ(r->messages[1]->merged, 20);
		}
		CHECK_EQ(r->oldest_seq, 51);
		CHECK_EQ(r->head_seq, 52);
		pg_store_sync_free(r);
		CHECK_EQ(unread_of(st, "bob", "phone", NULL), 2);
		CHECK_EQ(unread_of(st, "bob", "tablet", NULL), 2);
		if (i == 0) {
			unblock_writer(&f);
			pg_store_flush(st);
		}
	}
	/* An ack of everything: the next of each type is merged 0. */
	{
		uint64_t cur = 0;
		CHECK_EQ(pg_store_ack(st, "bob", "tablet", 52, &cur), PG_OK);
	}
	s = notify(st, "bob", "follow", "f", now_ms(), 0);
	CHECK_EQ(s.merged, 0);
	sent_free(&s);
	s = notify(st, "bob", "like", "l", now_ms(), 0);
	CHECK_EQ(s.merged, 0);
	sent_free(&s);
	/* Other users' types are their own. */
	s = notify(st, "carol", "like", "l", now_ms(), 0);
	CHECK_EQ(s.seq, 1);
	CHECK_EQ(s.merged, 0);
	sent_free(&s);
	fx_done(&f);
}

/* A stored notification that expired is not counted as merged, nor as unread. */
static void test_notify_replacing_expired(void)
{
	struct fx f;
	struct pg_store *st;
	struct sent s;
	Pigeon__SyncReply *r;
	int pass;

	fx_init(&f, 1000);
	st = fx_open(&f);
	for (pass = 0; pass < 2; pass++) {
		const char *uid = pass == 0 ? "bob" : "carol";
		/* pass 0: the expired one is pending too; pass 1: it is in SQLite. */
		if (pass == 0) {
			block_writer(&f);
		}
		s = notify(st, uid, "like", "old", now_ms() - 10000, 1);
		CHECK_EQ(s.seq, 1);
		sent_free(&s);
		if (pass == 1) {
			pg_store_flush(st);
			block_writer(&f);
		}
		s = notify(st, uid, "like", "new", now_ms(), 0);
		CHECK_EQ(s.seq, 2);
		CHECK_EQ(s.merged, 0);
		sent_free(&s);
		CHECK_EQ(unread_of(st, uid, "phone", NULL), 1);
		r = sync_of(st, uid, 0, 100, 1 << 20);
		CHECK_EQ(r->n_messages, 1);
		CHECK(r->n_messages == 1 && r->messages[0]->seq == 2);
		CHECK_EQ(r->oldest_seq, 2);
		pg_store_sync_free(r);
		unblock_writer(&f);
		pg_store_flush(st);
		CHECK_EQ(unread_of(st, uid, "phone", NULL), 1);
	}
	fx_done(&f);
}

/*
 * With replaced notifications still pending (their deletes not yet in
 * SQLite), a sync that returns everything says more = false.
 */
static void test_more_is_exact_with_pending_deletes(void)
{
	struct fx f;
	struct pg_store *st;
	struct sent s;
	Pigeon__SyncReply *r;
	int i;

	fx_init(&f, 1000);
	st = fx_open(&f);
	/* Five likes in SQLite, then two more pending: two deletes pending. */
	for (i = 0; i < 5; i++) {
		s = notify(st, "dana", "like", "l", now_ms(), 0);
		sent_free(&s);
	}
	pg_store_flush(st);
	block_writer(&f);
	for (i = 0; i < 2; i++) {
		s = notify(st, "dana", "like", "l", now_ms(), 0);
		sent_free(&s);
	}
	CHECK(pending(st) > 0);
	/* One message is stored (seq 7); a page of 1 holds it all. */
	r = sync_of(st, "dana", 0, 1, 1 << 20);
	CHECK_EQ(r->n_messages, 1);
	CHECK(r->n_messages == 1 && r->messages[0]->seq == 7);
	CHECK(!r->more);
	pg_store_sync_free(r);
	unblock_writer(&f);
	fx_done(&f);
}

static void test_dedup(void)
{
	struct fx f;
	struct pg_store *st;
	struct pg_store_msg m;
	struct pg_store_stats stats;
	struct sent s;

	fx_init(&f, 1000);
	st = fx_open(&f);
	CHECK_EQ(chat(st, "alice", "bob", "m-1", "first"), 1);
	CHECK_EQ(chat(st, "alice", "bob", "m-2", "second"), 2);

	/* The same (from, msg_id): the original seq, nothing stored, no envelope. */
	m = msg_of(PIGEON__KIND__CHAT, "alice", "bob", NULL, "m-1", "first again", now_ms());
	s = send_full(st, &m);
	CHECK_EQ(s.rc, PG_OK);
	CHECK(s.duplicate);
	CHECK_EQ(s.seq, 1);
	CHECK(s.packed == NULL);
	CHECK_EQ(s.merged, 0);
	sent_free(&s);
	CHECK_EQ(head_of(st, "bob"), 2);

	/* Another sender with the same msg_id is a new message. */
	CHECK_EQ(chat(st, "carol", "bob", "m-1", "carol's"), 3);
	/* No msg_id: never a duplicate. */
	CHECK_EQ(chat(st, "alice", "bob", NULL, "first"), 4);
	CHECK_EQ(chat(st, "alice", "bob", "", "first"), 5);

	/* Still a duplicate once applied (looked up in SQLite), and a NOTIFY too. */
	pg_store_flush(st);
	s = send_full(st, &m);
	CHECK(s.duplicate);
	CHECK_EQ(s.seq, 1);
	sent_free(&s);
	m = msg_of(PIGEON__KIND__NOTIFY, "alice", "bob", "like", "m-2", "n", now_ms());
	s = send_full(st, &m);
	CHECK(s.duplicate);
	CHECK_EQ(s.seq, 2);
	sent_free(&s);
	pg_store_get_stats(st, &stats);
	CHECK_EQ(stats.duplicates, 3);
	CHECK_EQ(stats.accepted, 5);

	/* And after a restart. */
	fx_close(&f);
	st = fx_open(&f);
	m = msg_of(PIGEON__KIND__CHAT, "carol", "bob", NULL, "m-1", "again", now_ms());
	s = send_full(st, &m);
	CHECK(s.duplicate);
	CHECK_EQ(s.seq, 3);
	sent_free(&s);
	CHECK_EQ(chat(st, "carol", "bob", "m-3", "new"), 6);

	{
		Pigeon__SyncReply *r = sync_of(st, "bob", 0, 100, 1 << 20);
		CHECK_EQ(r->n_messages, 6);
		CHECK(r->n_messages == 6 && body_is(r->messages[0], "first") &&
		      body_is(r->messages[2], "carol's"));
		pg_store_sync_free(r);
	}
	fx_done(&f);
}

/*
 * Unread counts of a big inbox, in SQLite: each side of the cursor small or
 * large (store_sqlite.c counts the small side), exact in every case.
 */
static void test_unread_of_a_big_inbox(void)
{
	static const uint64_t cursors[] = {0, 100, 700, 1190, 1200};
	struct fx f;
	struct pg_store *st;
	uint64_t cur, i;
	size_t k;

	fx_init(&f, 100000);
	st = fx_open(&f);
	for (i = 1; i <= 1200; i++) {
		CHECK_EQ(chat(st, "alice", "bob", NULL, "x"), i);
	}
	CHECK(pg_store_flush(st));
	for (k = 0; k < sizeof(cursors) / sizeof(cursors[0]); k++) {
		if (cursors[k] > 0) {
			CHECK_EQ(pg_store_ack(st, "bob", "phone", cursors[k], &cur), PG_OK);
			CHECK(pg_store_flush(st));
		}
		CHECK_EQ(unread_of(st, "bob", "phone", &cur), 1200 - cursors[k]);
		CHECK_EQ(cur, cursors[k]);
		/* another device that never acked sees them all */
		CHECK_EQ(unread_of(st, "bob", "tablet", NULL), 1200);
	}
	/* and after a reopen (state from SQLite alone) */
	fx_close(&f);
	st = fx_open(&f);
	CHECK_EQ(unread_of(st, "bob", "tablet", NULL), 1200);
	CHECK_EQ(unread_of(st, "bob", "phone", NULL), 0);
	fx_done(&f);
}

static void test_ack_and_unread(void)
{
	struct fx f;
	struct pg_store *st;
	uint64_t cur = 99, n;
	int pass;

	fx_init(&f, 1000);
	st = fx_open(&f);
	/* Nothing yet: seq 0 is the head, anything above is refused. */
	CHECK_EQ(pg_store_ack(st, "bob", "phone", 1, &cur), PG_ERR_INVALID);
	CHECK_EQ(cur, 0);
	CHECK_EQ(unread_of(st, "bob", "phone", &cur), 0);
	CHECK_EQ(cur, 0);

	block_writer(&f);
	chat(st, "alice", "bob", NULL, "1");
	chat(st, "alice", "bob", NULL, "2");
	chat(st, "alice", "bob", NULL, "3");
	for (pass = 0; pass < 3; pass++) {
		/* pass 0: all pending; 1: applied; 2: after a restart */
		if (pass == 0) {
			CHECK_EQ(unread_of(st, "bob", "phone", &cur), 3);
			CHECK_EQ(pg_store_ack(st, "bob", "phone", 2, &cur), PG_OK);
			CHECK_EQ(cur, 2);
			CHECK_EQ(pg_store_ack(st, "bob", "laptop", 1, &cur), PG_OK);
			CHECK_EQ(cur, 1);
		}
		/* Never backward. */
		CHECK_EQ(pg_store_ack(st, "bob", "phone", 1, &cur), PG_OK);
		CHECK_EQ(cur, 2);
		CHECK_EQ(pg_store_ack(st, "bob", "phone", 0, &cur), PG_OK);
		CHECK_EQ(cur, 2);
		CHECK_EQ(pg_store_ack(st, "bob", "phone", 2, &cur), PG_OK);
		CHECK_EQ(cur, 2);
		/* Beyond the head: refused, cursor unchanged. */
		CHECK_EQ(pg_store_ack(st, "bob", "phone", 4, &cur), PG_ERR_INVALID);
		CHECK_EQ(cur, 2);
		CHECK_EQ(pg_store_ack(st, "bob", "phone", UINT64_MAX, &cur), PG_ERR_INVALID);
		CHECK_EQ(cur, 2);
		/* Per device. */
		CHECK_EQ(unread_of(st, "bob", "phone", &cur), 1);
		CHECK_EQ(cur, 2);
		CHECK_EQ(unread_of(st, "bob", "laptop", &cur), 2);
		CHECK_EQ(cur, 1);
		CHECK_EQ(unread_of(st, "bob", "watch", &cur), 3);
		CHECK_EQ(cur, 0);
		CHECK_EQ(unread_of(st, "carol", "phone", &cur), 0);
		if (pass == 0) {
			unblock_writer(&f);
			pg_store_flush(st);
		} else if (pass == 1) {
			fx_close(&f);
			st = fx_open(&f);
		}
	}
	/* Forward again; ack of the head reads zero unread. */
	CHECK_EQ(pg_store_ack(st, "bob", "phone", 3, &cur), PG_OK);
	CHECK_EQ(cur, 3);
	n = unread_of(st, "bob", "phone", &cur);
	CHECK_EQ(n, 0);
	/* Invalid identifiers. */
	CHECK_EQ(pg_store_ack(st, "bob", "ph/one", 1, &cur), PG_ERR_INVALID);
	CHECK_EQ(pg_store_ack(st, "", "phone", 1, &cur), PG_ERR_INVALID);
	CHECK_EQ(pg_store_unread(st, "bob", NULL, now_ms(), &cur, &n), PG_ERR_INVALID);
	CHECK_EQ(pg_store_head(st, "b b", &n), PG_ERR_INVALID);
	{
		struct pg_store_stats stats;
		pg_store_get_stats(st, &stats);
		CHECK(stats.acks > 0);
	}
	fx_done(&f);
}

static void test_instant(void)
{
	struct fx f;
	struct pg_store *st;
	struct pg_store_msg m;
	struct pg_store_stats stats;
	struct sent s;
	Pigeon__SyncReply *r;
	int i;

	fx_init(&f, 1000);
	st = fx_open(&f);
	CHECK_EQ(chat(st, "alice", "bob", NULL, "stored"), 1);
	for (i = 0; i < 2; i++) {
		/* The same msg_id twice: INSTANT is not deduplicated either. */
		m = msg_of(PIGEON__KIND__INSTANT, "alice", "bob", NULL, "i-1", "typing", now_ms());
		s = send_full(st, &m);
		CHECK_EQ(s.rc, PG_OK);
		CHECK_EQ(s.seq, 0);
		CHECK(!s.duplicate);
		CHECK(s.env != NULL);
		if (s.env) {
			CHECK_EQ(s.env->kind, PIGEON__KIND__INSTANT);
			CHECK_EQ(s.env->seq, 0);
			CHECK(body_is(s.env, "typing"));
			CHECK_STR(s.env->to, "bob");
		}
		sent_free(&s);
	}
	CHECK_EQ(head_of(st, "bob"), 1);
	pg_store_get_stats(st, &stats);
	CHECK_EQ(stats.accepted, 1);
	pg_store_flush(st);
	r = sync_of(st, "bob", 0, 100, 1 << 20);
	CHECK_EQ(r->n_messages, 1);
	CHECK(r->n_messages == 1 && body_is(r->messages[0], "stored"));
	pg_store_sync_free(r);
	CHECK_EQ(unread_of(st, "bob", "phone", NULL), 1);
	/* Only the CHAT was journaled. */
	pg_store_get_stats(st, &stats);
	CHECK_EQ(stats.pending, 0);
	fx_done(&f);
}

static void test_invalid_input(void)
{
	struct fx f;
	struct pg_store *st;
	struct pg_store_stats stats;
	struct pg_store_msg m;
	struct sent s;
	char long_uid[80], long_id[200];
	Pigeon__SyncReply *r;
	size_t i;

	fx_init(&f, 1000);
	st = fx_open(&f);
	CHECK_EQ(chat(st, "alice", "bob", NULL, "ok"), 1);
	pg_store_flush(st);

	memset(long_uid, 'u', sizeof(long_uid) - 1);
	long_uid[sizeof(long_uid) - 1] = '\0';
	memset(long_id, 'i', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	{
		struct pg_store_msg bad[] = {
		    msg_of(PIGEON__KIND__CHAT, "alice", "bo/b", NULL, NULL, "x", now_ms()),
		    msg_of(PIGEON__KIND__CHAT, "alice", "", NULL, NULL, "x", now_ms()),
		    msg_of(PIGEON__KIND__CHAT, "alice", NULL, NULL, NULL, "x", now_ms()),
		    msg_of(PIGEON__KIND__CHAT, "al ice", "bob", NULL, NULL, "x", now_ms()),
		    msg_of(PIGEON__KIND__CHAT, NULL, "bob", NULL, NULL, "x", now_ms()),
		    msg_of(PIGEON__KIND__CHAT, "alice", long_uid, NULL, NULL, "x", now_ms()),
		    msg_of(PIGEON__KIND__CHAT, "alice", "bob", NULL, long_id, "x", now_ms()),
		    msg_of(PIGEON__KIND__KIND_UNSPECIFIED, "alice", "bob", NULL, NULL, "x",
		           now_ms()),
		    msg_of((Pigeon__Kind)7, "alice", "bob", NULL, NULL, "x", now_ms()),
		    msg_of(PIGEON__KIND__NOTIFY, "alice", "bob", NULL, NULL, "x", now_ms()),
		    msg_of(PIGEON__KIND__NOTIFY, "alice", "bob", "", NULL, "x", now_ms()),
		    msg_of(PIGEON__KIND__NOTIFY, "alice", "bob", "li#ke", NULL, "x", now_ms()),
		    msg_of(PIGEON__KIND__INSTANT, "alice", "b\nob", NULL, NULL, "x", now_ms()),
		};
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			s = send_full(st, &bad[i]);
			if (s.rc != PG_ERR_INVALID) {
				fprintf(stderr, "  bad message %zu accepted\n", i);
			}
			CHECK_EQ(s.rc, PG_ERR_INVALID);
			CHECK_EQ(s.seq, 0);
			CHECK(!s.duplicate);
			CHECK(s.packed == NULL);
			sent_free(&s);
		}
	}
	/* Nothing changed: head, stored messages, counters, the journal. */
	CHECK_EQ(head_of(st, "bob"), 1);
	pg_store_get_stats(st, &stats);
	CHECK_EQ(stats.accepted, 1);
	CHECK_EQ(stats.pending, 0);
	r = sync_of(st, "bob", 0, 100, 1 << 20);
	CHECK_EQ(r->n_messages, 1);
	pg_store_sync_free(r);
	/* A msg_id of exactly 128 bytes is fine. */
	long_id[128] = '\0';
	m = msg_of(PIGEON__KIND__CHAT, "alice", "bob", NULL, long_id, "x", now_ms());
	s = send_full(st, &m);
	CHECK_EQ(s.rc, PG_OK);
	CHECK_EQ(s.seq, 2);
	sent_free(&s);
	/* The next valid message gets the next seq: no number was used up. */
	CHECK_EQ(chat(st, "alice", "bob", NULL, "ok"), 3);
	/* Presence needs a valid uid too. */
	CHECK_EQ(pg_store_set_presence(st, "bo/b", true), PG_ERR_INVALID);
	CHECK_EQ(pg_store_set_presence(st, NULL, true), PG_ERR_INVALID);
	fx_done(&f);
}

static void test_max_per_user(void)
{
	struct fx f;
	struct pg_store *st;
	struct pg_store_stats stats;
	Pigeon__SyncReply *r;
	char body[16];
	int i;

	fx_init(&f, 5);
	st = fx_open(&f);
	for (i = 1; i <= 8; i++) {
		snprintf(body, sizeof(body), "m%d", i);
		CHECK_EQ(chat(st, "alice", "bob", NULL, body), (uint64_t)i);
	}
	CHECK_EQ(chat(st, "alice", "carol", NULL, "m1"), 1);
	pg_store_flush(st);
	r = sync_of(st, "bob", 0, 100, 1 << 20);
	check_range(r, 4, 8);
	CHECK(!r->more);
	CHECK_EQ(r->head_seq, 8);
	CHECK_EQ(r->oldest_seq, 4);
	pg_store_sync_free(r);
	/* Asking from below the oldest gives the same. */
	r = sync_of(st, "bob", 2, 100, 1 << 20);
	check_range(r, 4, 8);
	pg_store_sync_free(r);
	CHECK_EQ(unread_of(st, "bob", "phone", NULL), 5);
	pg_store_get_stats(st, &stats);
	CHECK_EQ(stats.capped, 3);
	/* carol is under the cap. */
	r = sync_of(st, "carol", 0, 100, 1 << 20);
	check_range(r, 1, 1);
	pg_store_sync_free(r);

	/* The cap goes on after a restart (the stored count is kept). */
	fx_close(&f);
	st = fx_open(&f);
	CHECK_EQ(chat(st, "alice", "bob", NULL, "m9"), 9);
	pg_store_flush(st);
	r = sync_of(st, "bob", 0, 100, 1 << 20);
	check_range(r, 5, 9);
	CHECK_EQ(r->oldest_seq, 5);
	pg_store_sync_free(r);
	fx_done(&f);
}

/*
 * What max_per_user is about to drop is not shown while the appends that
 * push it out are still pending: the read path applies the cap the next
 * commit applies (a sync would otherwise return messages that then vanish,
 * and an oldest_seq below them).
 */
static void test_max_per_user_with_writes_pending(void)
{
	struct fx f;
	struct pg_store *st;
	struct sent s;
	int i;

	fx_init(&f, 3);
	st = fx_open(&f);
	/* Everything pending: 6 appends, the cap keeps 4..6. */
	block_writer(&f);
	for (i = 1; i <= 6; i++) {
		CHECK_EQ(chat(st, "alice", "bob", NULL, "b"), (uint64_t)i);
	}
	CHECK(pending(st) > 0);
	check_sync(st, "bob", 0, 4, 6, 4);
	CHECK_EQ(unread_of(st, "bob", "phone", NULL), 3);
	unblock_writer(&f);
	pg_store_flush(st);
	check_sync(st, "bob", 0, 4, 6, 4);

	/* Rows 4..6 applied, 7 and 8 pending: the cap keeps 6..8. */
	block_writer(&f);
	CHECK_EQ(chat(st, "alice", "bob", NULL, "b"), 7);
	CHECK_EQ(chat(st, "alice", "bob", NULL, "b"), 8);
	check_sync(st, "bob", 0, 6, 8, 6);
	/* From a cursor above the floor nothing changes. */
	check_sync(st, "bob", 6, 7, 8, 6);
	unblock_writer(&f);
	pg_store_flush(st);
	check_sync(st, "bob", 0, 6, 8, 6);

	/*
	 * carol: a like applied (seq 1), chats 2 and 3 applied; then a second
	 * like replaces seq 1 while pending (a pending delete of a row) and
	 * one more chat: kept are 3, 4 (the like), 5.
	 */
	s = notify(st, "carol", "like", "l", now_ms(), 0);
	sent_free(&s);
	CHECK_EQ(chat(st, "alice", "carol", NULL, "c"), 2);
	CHECK_EQ(chat(st, "alice", "carol", NULL, "c"), 3);
	pg_store_flush(st);
	block_writer(&f);
	s = notify(st, "carol", "like", "l", now_ms(), 0);
	CHECK_EQ(s.seq, 4);
	sent_free(&s);
	CHECK_EQ(chat(st, "alice", "carol", NULL, "c"), 5);
	check_sync(st, "carol", 0, 3, 5, 3);
	/* One more chat pushes 3 out too: only the pending ones are left. */
	CHECK_EQ(chat(st, "alice", "carol", NULL, "c"), 6);
	check_sync(st, "carol", 0, 4, 6, 4);
	unblock_writer(&f);
	pg_store_flush(st);
	check_sync(st, "carol", 0, 4, 6, 4);
	fx_done(&f);
}

static void test_ttl(void)
{
	struct fx f;
	struct pg_store *st;
	struct pg_store_msg m;
	struct sent s;
	Pigeon__SyncReply *r;
	int pass;

	fx_init(&f, 1000);
	st = fx_open(&f);
	block_writer(&f);
	/* Accepted 10 s ago with a 1 s TTL: expired now. */
	m = msg_of(PIGEON__KIND__CHAT, "alice", "bob", NULL, NULL, "gone", now_ms() - 10000);
	m.ttl_s = 1;
	s = send_full(st, &m);
	CHECK_EQ(s.rc, PG_OK);
	CHECK_EQ(s.seq, 1);
	sent_free(&s);
	CHECK_EQ(chat(st, "alice", "bob", NULL, "here"), 2);
	/* erin's only message expired. */
	m.to = "erin";
	s = send_full(st, &m);
	CHECK_EQ(s.seq, 1);
	sent_free(&s);
	for (pass = 0; pass < 2; pass++) {
		r = sync_of(st, "bob", 0, 100, 1 << 20);
		CHECK_EQ(r->n_messages, 1);
		CHECK(r->n_messages == 1 && r->messages[0]->seq == 2 &&
		      body_is(r->messages[0], "here"));
		CHECK_EQ(r->head_seq, 2);
		CHECK_EQ(r->oldest_seq, 2);
		pg_store_sync_free(r);
		CHECK_EQ(unread_of(st, "bob", "phone", NULL), 1);

		r = sync_of(st, "erin", 0, 100, 1 << 20);
		CHECK_EQ(r->n_messages, 0);
		CHECK_EQ(r->head_seq, 1);
		CHECK_EQ(r->oldest_seq, 2);
		pg_store_sync_free(r);
		CHECK_EQ(unread_of(st, "erin", "phone", NULL), 0);
		if (pass == 0) {
			unblock_writer(&f);
			pg_store_flush(st);
		}
	}
	/* The head is kept even though nothing of erin's is stored. */
	fx_close(&f);
	st = fx_open(&f);
	CHECK_EQ(head_of(st, "erin"), 1);
	fx_done(&f);
}

#define MAX_ONLINE 8

struct online {
	int n;
	char uid[MAX_ONLINE][72];
};

static void collect_online(const char *uid, void *ud)
{
	struct online *o = ud;

	if (o->n < MAX_ONLINE) {
		snprintf(o->uid[o->n], sizeof(o->uid[0]), "%s", uid);
	}
	o->n++;
}

static bool online_has(const struct online *o, const char *uid)
{
	int i;

	for (i = 0; i < o->n && i < MAX_ONLINE; i++) {
		if (strcmp(o->uid[i], uid) == 0) {
			return true;
		}
	}
	return false;
}

static void test_presence(void)
{
	struct fx f;
	struct pg_store *st;
	struct online o;

	fx_init(&f, 1000);
	st = fx_open(&f);
	memset(&o, 0, sizeof(o));
	pg_store_foreach_online(st, collect_online, &o);
	CHECK_EQ(o.n, 0);

	CHECK_EQ(pg_store_set_presence(st, "alice", true), PG_OK);
	CHECK_EQ(pg_store_set_presence(st, "bob", true), PG_OK);
	CHECK_EQ(pg_store_set_presence(st, "carol", true), PG_OK);
	CHECK_EQ(pg_store_set_presence(st, "carol", false), PG_OK);
	CHECK_EQ(pg_store_set_presence(st, "alice", true), PG_OK); /* twice: once */
	CHECK_EQ(pg_store_set_presence(st, "dave", false), PG_OK); /* never on */
	pg_store_flush(st);
	memset(&o, 0, sizeof(o));
	pg_store_foreach_online(st, collect_online, &o);
	CHECK_EQ(o.n, 2);
	CHECK(online_has(&o, "alice"));
	CHECK(online_has(&o, "bob"));

	/* What a restart finds (the plugin then turns them off). */
	fx_close(&f);
	st = fx_open(&f);
	memset(&o, 0, sizeof(o));
	pg_store_foreach_online(st, collect_online, &o);
	CHECK_EQ(o.n, 2);
	CHECK(online_has(&o, "alice"));
	CHECK(online_has(&o, "bob"));
	CHECK_EQ(pg_store_set_presence(st, "alice", false), PG_OK);
	CHECK_EQ(pg_store_set_presence(st, "bob", false), PG_OK);
	pg_store_flush(st);
	memset(&o, 0, sizeof(o));
	pg_store_foreach_online(st, collect_online, &o);
	CHECK_EQ(o.n, 0);
	fx_done(&f);
}

/* ---------- durability ---------- */

#define CRASH_N 100

struct crash_report {
	uint64_t seq[CRASH_N]; /* seq of message i (body "body-<i>", msg_id "id-<i>") */
	uint64_t carol_head;
	uint64_t pending_at_exit; /* journaled but not in SQLite when the child died */
	int ok;
};

/*
 * The child: opens the store, accepts CRASH_N CHATs to bob (the first half
 * applied, the second half with SQLite blocked, so only in the journal),
 * NOTIFYs and a presence, moves a cursor, reports, and dies without
 * closing anything. Runs without check.h (its counters die with it).
 */
static void crash_child(const struct fx *fin, int wfd, int first, int count, int notify_n,
                        bool extras)
{
	struct fx f = *fin;
	struct crash_report rep;
	char err[256] = "", body[32], id[32];
	uint64_t cur;
	int i;

	memset(&rep, 0, sizeof(rep));
	if (pg_store_open(&f.cfg, &f.st, err, sizeof(err)) != 0) {
		fprintf(stderr, "child: %s\n", err);
		_exit(3);
	}
	for (i = first; i < first + count; i++) {
		struct pg_store_accepted a;
		struct pg_store_msg m;
		if (i == first + count / 2) {
			/* From here nothing reaches SQLite: replay must bring it back. */
			pg_store_flush(f.st);
			if (pg_store_test_hold_applier(f.st, true) != PG_OK) {
				_exit(4);
			}
		}
		snprintf(body, sizeof(body), "body-%d", i);
		snprintf(id, sizeof(id), "id-%d", i);
		m = msg_of(PIGEON__KIND__CHAT, "alice", "bob", NULL, id, body, now_ms());
		if (pg_store_accept(f.st, &m, malloc, free, &a) != PG_OK || a.duplicate) {
			_exit(5);
		}
		free(a.envelope);
		rep.seq[i - first] = a.seq;
	}
	for (i = 0; i < notify_n; i++) {
		struct pg_store_accepted a;
		struct pg_store_msg m;
		snprintf(body, sizeof(body), "n-%d", i);
		m = msg_of(PIGEON__KIND__NOTIFY, "svc", "carol", "like", NULL, body, now_ms());
		if (pg_store_accept(f.st, &m, malloc, free, &a) != PG_OK) {
			_exit(6);
		}
		free(a.envelope);
		rep.carol_head = a.seq;
	}
	/* The cursor stops 10 short of the head. */
	if (extras && (pg_store_ack(f.st, "bob", "phone", rep.seq[count - 11], &cur) != PG_OK ||
	               pg_store_set_presence(f.st, "bob", true) != PG_OK)) {
		_exit(7);
	}
	{
		struct pg_store_stats s;
		pg_store_get_stats(f.st, &s);
		rep.pending_at_exit = s.pending;
	}
	rep.ok = 1;
	if (write(wfd, &rep, sizeof(rep)) != (ssize_t)sizeof(rep)) {
		_exit(8);
	}
	/* The crash: no pg_store_close, no flush, the store thread dies too. */
	_exit(0);
}

/* Runs crash_child in a child process; returns its report (ok == 0 on failure). */
static struct crash_report run_crash_child(const struct fx *f, int first, int count, int notify_n,
                                           bool extras)
{
	struct crash_report rep;
	int fds[2], status = -1;
	size_t got = 0;
	pid_t pid;

	memset(&rep, 0, sizeof(rep));
	CHECK_EQ(pipe(fds), 0);
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		crash_child(f, fds[1], first, count, notify_n, extras);
	}
	close(fds[1]);
	while (got < sizeof(rep)) {
		ssize_t n = read(fds[0], (char *)&rep + got, sizeof(rep) - got);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break;
		}
		got += (size_t)n;
	}
	close(fds[0]);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	CHECK_EQ(got, sizeof(rep));
	if (got != sizeof(rep)) {
		rep.ok = 0;
	}
	CHECK_EQ(rep.ok, 1);
	return rep;
}

/* bob must hold exactly messages first..first+count-1 with their seqs. */
static void check_bob(struct pg_store *st, const struct crash_report *rep, int first, int count,
                      uint64_t seq_base)
{
	Pigeon__SyncReply *r = sync_of(st, "bob", seq_base, 1000, 1 << 24);
	char body[32];
	size_t i;

	CHECK_EQ(r->n_messages, (size_t)count);
	CHECK(!r->more);
	for (i = 0; i < r->n_messages && i < (size_t)count; i++) {
		snprintf(body, sizeof(body), "body-%d", first + (int)i);
		CHECK_EQ(r->messages[i]->seq, rep->seq[i]);
		CHECK_EQ(r->messages[i]->seq, seq_base + i + 1);
		if (!body_is(r->messages[i], body)) {
			fprintf(stderr, "  seq %llu: wrong body\n",
			        (unsigned long long)r->messages[i]->seq);
			CHECK(0);
		}
	}
	CHECK_EQ(r->head_seq, rep->seq[count - 1]);
	pg_store_sync_free(r);
}

static void test_crash_replay(void)
{
	struct fx f;
	struct pg_store *st;
	struct crash_report rep, rep2;
	struct pg_store_msg m;
	struct online o;
	struct sent s;
	uint64_t cur = 0;
	size_t i;

	fx_init(&f, 1000);
	rep = run_crash_child(&f, 0, CRASH_N, 25, true);
	if (!rep.ok) {
		fx_done(&f);
		return;
	}
	/* The second half, the notifications, the ack and the presence were journal-only. */
	CHECK(rep.pending_at_exit >= CRASH_N / 2 + 25 + 2);
	for (i = 0; i < CRASH_N; i++) {
		CHECK_EQ(rep.seq[i], i + 1);
	}
	CHECK(jnl_count(&f) >= 1);

	st = fx_open(&f);
	check_bob(st, &rep, 0, CRASH_N, 0);
	CHECK_EQ(head_of(st, "bob"), CRASH_N);
	CHECK_EQ(unread_of(st, "bob", "phone", &cur), 10);
	CHECK_EQ(cur, CRASH_N - 10);
	/* The NOTIFY slot came back: the next one replaces it and counts it merged. */
	CHECK_EQ(head_of(st, "carol"), 25);
	s = notify(st, "carol", "like", "n-after", now_ms(), 0);
	CHECK_EQ(s.seq, 26);
	CHECK_EQ(s.merged, 25);
	sent_free(&s);
	{
		Pigeon__SyncReply *r = sync_of(st, "carol", 0, 100, 1 << 20);
		CHECK_EQ(r->n_messages, 1);
		CHECK(r->n_messages == 1 && r->messages[0]->seq == 26);
		CHECK_EQ(r->oldest_seq, 26);
		pg_store_sync_free(r);
	}
	memset(&o, 0, sizeof(o));
	pg_store_foreach_online(st, collect_online, &o);
	CHECK_EQ(o.n, 1);
	CHECK(online_has(&o, "bob"));

	/* Dedup keys of both halves (SQLite-applied and journal-only) survived. */
	m = msg_of(PIGEON__KIND__CHAT, "alice", "bob", NULL, "id-3", "dup", now_ms());
	s = send_full(st, &m);
	CHECK(s.duplicate);
	CHECK_EQ(s.seq, rep.seq[3]);
	sent_free(&s);
	m.msg_id = "id-97";
	s = send_full(st, &m);
	CHECK(s.duplicate);
	CHECK_EQ(s.seq, rep.seq[97]);
	sent_free(&s);
	/* The next message gets head + 1: no seq reused or skipped. */
	CHECK_EQ(chat(st, "alice", "bob", "id-new", "body-100"), CRASH_N + 1);
	fx_close(&f);

	/* A second crash, after a replay: seqs go on, nothing doubles. */
	rep2 = run_crash_child(&f, 101, 40, 0, true);
	if (rep2.ok) {
		CHECK_EQ(rep2.seq[0], CRASH_N + 2);
		st = fx_open(&f);
		check_bob(st, &rep2, 101, 40, CRASH_N + 1);
		{
			Pigeon__SyncReply *r = sync_of(st, "bob", 0, 1000, 1 << 24);
			CHECK_EQ(r->n_messages, CRASH_N + 1 + 40);
			for (i = 0; i < r->n_messages; i++) {
				CHECK_EQ(r->messages[i]->seq, i + 1);
			}
			pg_store_sync_free(r);
		}
		/* The ack of the second child is the cursor now (it moved forward). */
		CHECK_EQ(unread_of(st, "bob", "phone", &cur), 10);
		CHECK_EQ(cur, rep2.seq[40 - 11]);
		CHECK_EQ(chat(st, "alice", "bob", NULL, "last"), CRASH_N + 1 + 40 + 1);
		fx_close(&f);
	}
	fx_done(&f);
}

/*
 * A crash that also tore the journal's last frame (power loss with
 * sync=normal): replay keeps every intact record, and the lost one's seq
 * goes to the next message, so no seq is shown for two different messages.
 */
static void test_crash_torn_tail(void)
{
	struct fx f;
	struct pg_store *st;
	struct crash_report rep;
	char pattern[160];
	glob_t g;
	struct pg_store_msg m;
	struct sent s;

	fx_init(&f, 1000);
	rep = run_crash_child(&f, 0, 20, 0, false);
	if (!rep.ok) {
		fx_done(&f);
		return;
	}
	CHECK_EQ(rep.seq[19], 20);
	CHECK(rep.pending_at_exit >= 10);
	/* Cut 2 bytes off the newest segment: the frame of message 20 is torn. */
	snprintf(pattern, sizeof(pattern), "%s.jnl.*", f.db);
	CHECK_EQ(glob(pattern, 0, NULL, &g), 0);
	if (g.gl_pathc > 0) {
		struct stat sb;
		const char *last = g.gl_pathv[g.gl_pathc - 1];
		CHECK_EQ(stat(last, &sb), 0);
		CHECK_EQ(truncate(last, sb.st_size - 2), 0);
		globfree(&g);
	}

	st = fx_open(&f);
	check_bob(st, &rep, 0, 19, 0);
	CHECK_EQ(head_of(st, "bob"), 19);
	/* The torn message was never acknowledged: its msg_id is new, its seq reused. */
	m = msg_of(PIGEON__KIND__CHAT, "alice", "bob", NULL, "id-19", "body-19", now_ms());
	s = send_full(st, &m);
	CHECK(!s.duplicate);
	CHECK_EQ(s.seq, 20);
	sent_free(&s);
	m.msg_id = "id-18";
	s = send_full(st, &m);
	CHECK(s.duplicate);
	CHECK_EQ(s.seq, 19);
	sent_free(&s);
	/* New records do not land behind the torn frame: they survive a restart. */
	CHECK_EQ(chat(st, "alice", "bob", NULL, "body-20"), 21);
	fx_close(&f);
	CHECK_EQ(jnl_count(&f), 1);
	st = fx_open(&f);
	{
		Pigeon__SyncReply *r = sync_of(st, "bob", 0, 100, 1 << 20);
		size_t i;
		char body[32];
		CHECK_EQ(r->n_messages, 21);
		for (i = 0; i < r->n_messages; i++) {
			snprintf(body, sizeof(body), "body-%zu", i);
			CHECK_EQ(r->messages[i]->seq, i + 1);
			CHECK(body_is(r->messages[i], body));
		}
		pg_store_sync_free(r);
	}
	fx_done(&f);
}

/* A clean close applies everything; a restart keeps it and trims the journal. */
static void test_clean_restart(void)
{
	struct fx f;
	struct pg_store *st;
	Pigeon__SyncReply *r;
	char body[32], id[32];
	uint64_t cur = 0;
	int i, round;

	fx_init(&f, 1000);
	for (round = 0; round < 3; round++) {
		st = fx_open(&f);
		CHECK_EQ(jnl_count(&f), 1);
		for (i = 0; i < 50; i++) {
			int n = round * 50 + i;
			snprintf(body, sizeof(body), "m%d", n + 1);
			snprintf(id, sizeof(id), "id-%d", n);
			CHECK_EQ(chat(st, "alice", "bob", id, body), (uint64_t)n + 1);
		}
		CHECK_EQ(pg_store_ack(st, "bob", "phone", (uint64_t)round * 50 + 25, &cur), PG_OK);
		/* No flush: close must apply what is still queued. */
		fx_close(&f);
		/* Only the newest segment is left. */
		CHECK_EQ(jnl_count(&f), 1);
	}
	st = fx_open(&f);
	CHECK_EQ(jnl_count(&f), 1);
	CHECK_EQ(head_of(st, "bob"), 150);
	r = sync_of(st, "bob", 0, 1000, 1 << 24);
	check_range(r, 1, 150);
	pg_store_sync_free(r);
	CHECK_EQ(unread_of(st, "bob", "phone", &cur), 25);
	CHECK_EQ(cur, 125);
	{
		struct pg_store_msg m =
		    msg_of(PIGEON__KIND__CHAT, "alice", "bob", NULL, "id-7", "x", now_ms());
		struct sent s = send_full(st, &m);
		CHECK(s.duplicate);
		CHECK_EQ(s.seq, 8);
		sent_free(&s);
	}
	pg_store_tick(st, now_ms());
	fx_close(&f);
	CHECK_EQ(jnl_count(&f), 1);

	/* Close/open of an idle store keeps one segment too. */
	st = fx_open(&f);
	fx_close(&f);
	CHECK_EQ(jnl_count(&f), 1);
	fx_done(&f);
}

/* ---------- faults and bounds ---------- */

/* Waits (at most timeout_ms) until the store's expired counter reaches n. */
static bool wait_expired(struct pg_store *st, uint64_t n, int timeout_ms)
{
	struct pg_store_stats s;
	int waited;

	for (waited = 0; waited < timeout_ms; waited += 20) {
		pg_store_get_stats(st, &s);
		if (s.expired >= n) {
			return true;
		}
		usleep(20 * 1000);
	}
	return false;
}

/* Users whose users.stored differs from the rows they have (0 when no count drifted). */
static int drifted_users(const struct fx *f)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *q = NULL;
	int n = -1;

	CHECK_EQ(sqlite3_open_v2(f->db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	CHECK_EQ(sqlite3_prepare_v2(h,
	                            "SELECT count(*) FROM users WHERE stored != (SELECT count(*)"
	                            " FROM messages WHERE messages.uid = users.uid)",
	                            -1, &q, NULL),
	         SQLITE_OK);
	if (q != NULL && sqlite3_step(q) == SQLITE_ROW) {
		n = sqlite3_column_int(q, 0);
	}
	sqlite3_finalize(q);
	sqlite3_close(h);
	return n;
}

#define MANY_USERS 1000

/*
 * One expiry pass removing messages of 1000 users (more than any per-pass
 * bookkeeping of the old code) leaves every user's stored count exact, so
 * the cap then removes only what is really over it: no acknowledged
 * message is dropped early, before or after a restart.
 */
static void test_expiry_of_many_users_keeps_the_cap_exact(void)
{
	struct fx f;
	struct pg_store *st;
	struct pg_store_msg m;
	struct pg_store_stats stats;
	struct sent s;
	char uid[32], body[32];
	int i, k, round;

	fx_init(&f, 3);
	st = fx_open(&f);
	for (i = 0; i < MANY_USERS; i++) {
		snprintf(uid, sizeof(uid), "u%d", i);
		m = msg_of(PIGEON__KIND__CHAT, "svc", uid, NULL, NULL, "old", now_ms() - 10000);
		m.ttl_s = 1;
		s = send_full(st, &m);
		CHECK_EQ(s.rc, PG_OK);
		sent_free(&s);
	}
	pg_store_flush(st);
	CHECK(wait_expired(st, MANY_USERS, 5000));
	CHECK_EQ(drifted_users(&f), 0);
	for (round = 0; round < 2; round++) {
		/* Up to the cap (3) after the expired one: all kept; then one over: one capped. */
		for (i = 0; i < MANY_USERS; i++) {
			snprintf(uid, sizeof(uid), "u%d", i);
			for (k = 0; k < (round == 0 ? 3 : 1); k++) {
				snprintf(body, sizeof(body), "m%d", round == 0 ? 2 + k : 5);
				CHECK_EQ(chat(st, "svc", uid, NULL, body),
				         (uint64_t)(round == 0 ? 2 + k : 5));
			}
		}
		pg_store_flush(st);
		CHECK_EQ(drifted_users(&f), 0);
		for (i = 0; i < MANY_USERS; i += 37) {
			Pigeon__SyncReply *r;
			snprintf(uid, sizeof(uid), "u%d", i);
			r = sync_of(st, uid, 0, 100, 1 << 20);
			check_range(r, round == 0 ? 2 : 3, round == 0 ? 4 : 5);
			pg_store_sync_free(r);
		}
		pg_store_get_stats(st, &stats);
		CHECK_EQ(stats.capped, round == 0 ? 0 : MANY_USERS);
		/* The counts are in SQLite: a restart caps by the same numbers. */
		fx_close(&f);
		st = fx_open(&f);
	}
	fx_done(&f);
}

/* A schema 1 database, as pigeon before schema 2 made it (with a drifted count). */
static void make_v1_db(const struct fx *f, int64_t now)
{
	static const char *const v1[] = {
	    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
	    "INSERT INTO meta(key, value) VALUES('applied_lsn', 0)",
	    "CREATE TABLE users(uid TEXT PRIMARY KEY, head_seq INTEGER NOT NULL,"
	    " stored INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID",
	    "CREATE TABLE messages(id INTEGER PRIMARY KEY, uid TEXT NOT NULL, seq INTEGER NOT NULL,"
	    " kind INTEGER NOT NULL, type TEXT, merged INTEGER NOT NULL DEFAULT 0,"
	    " expires_at_ms INTEGER NOT NULL, envelope BLOB NOT NULL, push_title TEXT,"
	    " push_body TEXT)",
	    "CREATE UNIQUE INDEX messages_by_user ON messages(uid, seq)",
	    "CREATE INDEX messages_by_expiry ON messages(expires_at_ms)",
	    "CREATE TABLE cursors(uid TEXT NOT NULL, device TEXT NOT NULL, seq INTEGER NOT NULL,"
	    " PRIMARY KEY(uid, device)) WITHOUT ROWID",
	    "CREATE TABLE dedup(sender TEXT NOT NULL, msg_id TEXT NOT NULL, seq INTEGER NOT NULL,"
	    " recipient TEXT NOT NULL, created_ms INTEGER NOT NULL, PRIMARY KEY(sender, msg_id))"
	    " WITHOUT ROWID",
	    "CREATE INDEX dedup_by_age ON dedup(created_ms)",
	    "CREATE TABLE presence(uid TEXT PRIMARY KEY) WITHOUT ROWID",
	    "PRAGMA user_version = 1",
	    NULL,
	};
	Pigeon__Envelope env = PIGEON__ENVELOPE__INIT;
	uint8_t buf[256];
	size_t len;
	sqlite3 *h = NULL;
	sqlite3_stmt *q = NULL;
	int i;

	CHECK_EQ(sqlite3_open(f->db, &h), SQLITE_OK);
	for (i = 0; v1[i] != NULL; i++) {
		CHECK_EQ(sqlite3_exec(h, v1[i], NULL, NULL, NULL), SQLITE_OK);
	}
	env.seq = 1;
	env.from = "alice";
	env.to = "bob";
	env.kind = PIGEON__KIND__CHAT;
	env.msg_id = "x-1";
	env.sent_at_ms = (uint64_t)now;
	env.expires_at_ms = (uint64_t)now + 3600 * 1000;
	env.body.data = (uint8_t *)"old";
	env.body.len = 3;
	len = pigeon__envelope__pack(&env, buf);
	CHECK_EQ(sqlite3_prepare_v2(h,
	                            "INSERT INTO messages(uid, seq, kind, expires_at_ms, envelope)"
	                            " VALUES('bob', 1, 1, ?1, ?2)",
	                            -1, &q, NULL),
	         SQLITE_OK);
	sqlite3_bind_int64(q, 1, (sqlite3_int64)env.expires_at_ms);
	sqlite3_bind_blob(q, 2, buf, (int)len, SQLITE_STATIC);
	CHECK_EQ(sqlite3_step(q), SQLITE_DONE);
	sqlite3_finalize(q);
	/* stored 7 for one row: the drift schema 2 repairs. */
	CHECK_EQ(sqlite3_exec(h, "INSERT INTO users VALUES('bob', 1, 7)", NULL, NULL, NULL),
	         SQLITE_OK);
	q = NULL;
	CHECK_EQ(sqlite3_prepare_v2(h, "INSERT INTO dedup VALUES('alice', 'x-1', 1, 'bob', ?1)", -1,
	                            &q, NULL),
	         SQLITE_OK);
	sqlite3_bind_int64(q, 1, now);
	CHECK_EQ(sqlite3_step(q), SQLITE_DONE);
	sqlite3_finalize(q);
	sqlite3_close(h);
}

/*
 * users.stored is counted per batch (schema 4), not per inserted row: over
 * batches of chats, notifications replacing their type and cap deletions,
 * and across a restart, every user's count equals the rows they have.
 */
static void test_stored_counts_per_batch_stay_exact(void)
{
	struct fx f;
	struct pg_store *st;
	struct sent s;
	char uid[32], body[32];
	int i, round;

	fx_init(&f, 5);
	st = fx_open(&f);
	for (round = 0; round < 4; round++) {
		for (i = 0; i < 50; i++) {
			snprintf(uid, sizeof(uid), "c%d", i);
			snprintf(body, sizeof(body), "r%d", round);
			CHECK(chat(st, "svc", uid, NULL, body) > 0);
			CHECK(chat(st, "svc", uid, NULL, body) > 0);
			s = notify(st, uid, i % 2 ? "like" : "follow", body, now_ms(), 0);
			CHECK_EQ(s.rc, PG_OK);
			sent_free(&s);
		}
		pg_store_flush(st);
		CHECK_EQ(drifted_users(&f), 0);
		if (round == 1) {
			fx_close(&f);
			st = fx_open(&f);
		}
	}
	/* 8 chats and one notification each, capped at 5: the newest 5 are kept. */
	{
		Pigeon__SyncReply *r = sync_of(st, "c7", 0, 100, 1 << 20);
		CHECK_EQ(r->n_messages, 5);
		pg_store_sync_free(r);
	}
	fx_done(&f);
}

/*
 * Dedup is per (sender, recipient, msg_id): one msg_id to several users is
 * stored for each, a resend to each is a duplicate of that user's own
 * message; in memory, in SQLite, after a restart, and in a database made by
 * schema 1 (migrated on open, its drifted count repaired).
 */
static void test_dedup_per_recipient(void)
{
	struct fx f;
	struct pg_store *st;
	struct pg_store_msg m;
	struct sent s;
	const char *to[] = {"bob", "carol", "dave"};
	uint64_t want[] = {2, 1, 1};
	int i, pass;

	fx_init(&f, 2);
	make_v1_db(&f, now_ms());
	st = fx_open(&f);
	CHECK_EQ(drifted_users(&f), 0);
	CHECK_EQ(head_of(st, "bob"), 1);
	/* The schema 1 entry still dedups (its recipient was recorded). */
	m = msg_of(PIGEON__KIND__CHAT, "alice", "bob", NULL, "x-1", "again", now_ms());
	s = send_full(st, &m);
	CHECK(s.duplicate);
	CHECK_EQ(s.seq, 1);
	sent_free(&s);

	for (i = 0; i < 3; i++) {
		m = msg_of(PIGEON__KIND__CHAT, "svc", to[i], NULL, "broadcast-1", "hi", now_ms());
		s = send_full(st, &m);
		CHECK_EQ(s.rc, PG_OK);
		CHECK(!s.duplicate);
		CHECK_EQ(s.seq, want[i]);
		sent_free(&s);
	}
	for (pass = 0; pass < 3; pass++) {
		/* pass 0: from memory; 1: from SQLite; 2: after a restart. */
		if (pass == 1) {
			pg_store_flush(st);
		} else if (pass == 2) {
			fx_close(&f);
			st = fx_open(&f);
		}
		for (i = 0; i < 3; i++) {
			m = msg_of(PIGEON__KIND__CHAT, "svc", to[i], NULL, "broadcast-1", "hi",
			           now_ms());
			s = send_full(st, &m);
			CHECK_EQ(s.rc, PG_OK);
			CHECK(s.duplicate);
			CHECK_EQ(s.seq, want[i]);
			CHECK(s.packed == NULL);
			sent_free(&s);
		}
	}
	/* bob's cap (2) counts exactly his rows: the old one and the broadcast. */
	CHECK_EQ(chat(st, "svc", "bob", NULL, "m3"), 3);
	pg_store_flush(st);
	{
		Pigeon__SyncReply *r = sync_of(st, "bob", 0, 100, 1 << 20);
		CHECK_EQ(r->n_messages, 2);
		CHECK(r->n_messages == 2 && r->messages[0]->seq == 2 && r->messages[1]->seq == 3);
		pg_store_sync_free(r);
	}
	fx_close(&f);
	{
		sqlite3 *h = NULL;
		sqlite3_stmt *q = NULL;
		CHECK_EQ(sqlite3_open_v2(f.db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
		CHECK_EQ(sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &q, NULL), SQLITE_OK);
		CHECK_EQ(sqlite3_step(q), SQLITE_ROW);
		CHECK_EQ(sqlite3_column_int(q, 0), 4);
		sqlite3_finalize(q);
		sqlite3_close(h);
	}
	fx_done(&f);
}

/*
 * Every refused accept frees the envelope it had made (LeakSanitizer checks
 * that in the ASan build) and leaves out->envelope NULL: a full backlog
 * (PG_ERR_BUSY) and a journal that cannot grow (PG_ERR_IO, the file
 * size limit standing in for a full disk).
 */
static void test_refused_accept_frees_its_envelope(void)
{
	struct fx f;
	struct pg_store *st;
	struct pg_store_msg m;
	struct sent s;
	struct rlimit old, lim;
	void (*old_xfsz)(int);

	fx_init(&f, 1000);
	f.cfg.backlog_max = 2;
	st = fx_open(&f);
	block_writer(&f);
	CHECK_EQ(chat(st, "alice", "bob", NULL, "m1"), 1);
	CHECK_EQ(chat(st, "alice", "bob", NULL, "m2"), 2);
	m = msg_of(PIGEON__KIND__CHAT, "alice", "bob", NULL, NULL, "m3", now_ms());
	s = send_full(st, &m);
	CHECK_EQ(s.rc, PG_ERR_BUSY);
	CHECK(s.packed == NULL);
	CHECK_EQ(s.seq, 0);
	sent_free(&s);
	unblock_writer(&f);
	CHECK(pg_store_flush(st));

	old_xfsz = signal(SIGXFSZ, SIG_IGN);
	CHECK_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 1;
	CHECK_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
	s = send_full(st, &m);
	CHECK_EQ(s.rc, PG_ERR_IO);
	CHECK(s.packed == NULL);
	sent_free(&s);
	CHECK_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, old_xfsz);
	/* Nothing of the refused ones was stored; the next takes seq 3. */
	CHECK_EQ(chat(st, "alice", "bob", NULL, "m3"), 3);
	fx_close(&f);
	st = fx_open(&f);
	{
		Pigeon__SyncReply *r = sync_of(st, "bob", 0, 100, 1 << 20);
		check_range(r, 1, 3);
		pg_store_sync_free(r);
	}
	fx_done(&f);
}

static double elapsed_s(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/*
 * While the database takes no writes (held, as by another process holding
 * SQLite's write lock for longer than the store's lock wait): accept never
 * waits; records queue up to the backlog bound (records and bytes), then
 * new stored sends get PG_ERR_BUSY, counted, while acks (within the
 * reserve), sync of what is stored or journaled, and INSTANT keep working.
 * Once the hold is gone the store catches up by itself and accepts again;
 * nothing accepted is lost.
 */
static void test_backlog_bound_while_writes_are_held(void)
{
	struct fx f;
	struct pg_store *st;
	struct pg_store_msg m;
	struct pg_store_stats stats;
	struct timespec t0;
	struct sent s;
	Pigeon__SyncReply *r;
	uint64_t cur = 0;
	char big[2000];
	int i, accepted = 0;

	fx_init(&f, 1000);
	f.cfg.backlog_max = 20;
	f.cfg.backlog_max_bytes = 16 * 1024;
	st = fx_open(&f);
	CHECK_EQ(chat(st, "alice", "bob", NULL, "m1"), 1);
	CHECK(pg_store_flush(st));
	block_writer(&f);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 2; i <= 21; i++) {
		char body[16];
		snprintf(body, sizeof(body), "m%d", i);
		CHECK_EQ(chat(st, "alice", "bob", NULL, body), (uint64_t)i);
	}
	/* The 21st pending record is over the bound of 20. */
	m = msg_of(PIGEON__KIND__CHAT, "alice", "bob", NULL, "id-22", "m22", now_ms());
	s = send_full(st, &m);
	CHECK_EQ(s.rc, PG_ERR_BUSY);
	CHECK(s.packed == NULL);
	sent_free(&s);
	/* A NOTIFY too; INSTANT is not stored and still goes. */
	s = notify(st, "bob", "like", "n", now_ms(), 0);
	CHECK_EQ(s.rc, PG_ERR_BUSY);
	sent_free(&s);
	m = msg_of(PIGEON__KIND__INSTANT, "alice", "bob", NULL, NULL, "typing", now_ms());
	s = send_full(st, &m);
	CHECK_EQ(s.rc, PG_OK);
	CHECK(s.packed != NULL);
	sent_free(&s);
	/* Acks use the reserve beyond the bound. */
	CHECK_EQ(pg_store_ack(st, "bob", "phone", 5, &cur), PG_OK);
	CHECK_EQ(cur, 5);
	/* None of that waited for the store thread. */
	CHECK(elapsed_s(&t0) < 0.5);
	r = sync_of(st, "bob", 0, 100, 1 << 20);
	check_range(r, 1, 21);
	CHECK_EQ(r->head_seq, 21);
	pg_store_sync_free(r);
	CHECK_EQ(unread_of(st, "bob", "phone", NULL), 16);
	/* The store thread's batch fails: it is failing, and retrying. */
	for (i = 0; i < 250; i++) {
		pg_store_get_stats(st, &stats);
		if (stats.failing) {
			break;
		}
		usleep(20 * 1000);
	}
	CHECK_EQ(stats.busy, 2);
	CHECK_EQ(stats.pending, 21);
	CHECK(stats.failing);
	CHECK(stats.apply_errors >= 1);

	unblock_writer(&f);
	CHECK(pg_store_flush(st));
	pg_store_get_stats(st, &stats);
	CHECK_EQ(stats.pending, 0);
	CHECK(!stats.failing);
	m = msg_of(PIGEON__KIND__CHAT, "alice", "bob", NULL, "id-22", "m22", now_ms());
	s = send_full(st, &m);
	CHECK_EQ(s.rc, PG_OK);
	CHECK(!s.duplicate);
	CHECK_EQ(s.seq, 22);
	sent_free(&s);

	/* The bytes bound: 2000-byte bodies fill 16 KiB after a handful. */
	block_writer(&f);
	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (i = 0; i < 20; i++) {
		m = msg_of(PIGEON__KIND__CHAT, "alice", "carol", NULL, NULL, big, now_ms());
		s = send_full(st, &m);
		if (s.rc == PG_OK) {
			accepted++;
		} else {
			CHECK_EQ(s.rc, PG_ERR_BUSY);
		}
		sent_free(&s);
	}
	CHECK(accepted >= 6 && accepted <= 8);
	unblock_writer(&f);
	CHECK(pg_store_flush(st));
	r = sync_of(st, "carol", 0, 100, 1 << 20);
	CHECK_EQ(r->n_messages, accepted);
	pg_store_sync_free(r);
	fx_done(&f);
}

/*
 * A store whose database stays held still closes in bounded time; what it
 * could not apply is in the journal and is applied at the next open.
 */
static void test_close_while_writes_are_held(void)
{
	struct fx f;
	struct pg_store *st;
	struct timespec t0;
	Pigeon__SyncReply *r;
	uint64_t cur = 0;
	int i;

	fx_init(&f, 1000);
	st = fx_open(&f);
	block_writer(&f);
	for (i = 1; i <= 30; i++) {
		char body[16];
		snprintf(body, sizeof(body), "m%d", i);
		CHECK_EQ(chat(st, "alice", "bob", NULL, body), (uint64_t)i);
	}
	CHECK_EQ(pg_store_ack(st, "bob", "phone", 10, &cur), PG_OK);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	fx_close(&f);
	CHECK(elapsed_s(&t0) < 6.0);
	/* The hold ended with that store: the new one applies the journal. */
	st = fx_open(&f);
	r = sync_of(st, "bob", 0, 100, 1 << 20);
	check_range(r, 1, 30);
	pg_store_sync_free(r);
	CHECK_EQ(unread_of(st, "bob", "phone", &cur), 20);
	CHECK_EQ(cur, 10);
	CHECK_EQ(chat(st, "alice", "bob", NULL, "m31"), 31);
	fx_done(&f);
}

/*
 * Idle users leave memory even though traffic never lets the store thread
 * catch up completely: what matters is that everything of *theirs* is in
 * SQLite. A user with records still pending stays.
 */
static void test_idle_users_evicted_under_traffic(void)
{
	struct fx f;
	struct pg_store *st;
	struct pg_store_stats stats;
	uint64_t cur = 0;
	char uid[16];
	int i;

	fx_init(&f, 1000);
	st = fx_open(&f);
	for (i = 0; i < 50; i++) {
		snprintf(uid, sizeof(uid), "idle%d", i);
		CHECK_EQ(chat(st, "alice", uid, NULL, "m1"), 1);
	}
	CHECK_EQ(pg_store_ack(st, "idle0", "phone", 1, &cur), PG_OK);
	CHECK(pg_store_flush(st));
	/* Traffic that is not applied yet: the store never "caught up". */
	block_writer(&f);
	CHECK_EQ(chat(st, "alice", "busy", NULL, "m1"), 1);
	CHECK_EQ(pg_store_ack(st, "idle1", "tablet", 1, &cur), PG_OK);
	pg_store_get_stats(st, &stats);
	CHECK_EQ(stats.users, 51);
	pg_store_tick(st, now_ms() + 11 * 60 * 1000);
	pg_store_get_stats(st, &stats);
	/* idle1 (its ack pending) and busy stay; the 49 others go. */
	CHECK_EQ(stats.users, 2);
	unblock_writer(&f);
	CHECK(pg_store_flush(st));
	pg_store_tick(st, now_ms() + 22 * 60 * 1000);
	pg_store_get_stats(st, &stats);
	CHECK_EQ(stats.users, 0);
	/* Reloaded from SQLite as they were. */
	CHECK_EQ(head_of(st, "idle7"), 1);
	CHECK_EQ(unread_of(st, "idle0", "phone", &cur), 0);
	CHECK_EQ(cur, 1);
	CHECK_EQ(unread_of(st, "idle1", "tablet", &cur), 0);
	CHECK_EQ(cur, 1);
	CHECK_EQ(chat(st, "alice", "idle7", NULL, "m2"), 2);
	fx_done(&f);
}

/*
 * The user cache is bounded in the number of users ever seen: with
 * users_max 8, a thousand users loaded one after another leave at most 8
 * in memory (plus, briefly, those with records not yet applied: never
 * evicted), and an evicted user comes back from the database as it was.
 */
static void test_user_cache_is_bounded(void)
{
	struct fx f;
	struct pg_store *st;
	struct pg_store_stats stats;
	uint64_t most = 0;
	char uid[16];
	int i;

	fx_init(&f, 1000);
	f.cfg.users_max = 8;
	st = fx_open(&f);
	for (i = 0; i < 50; i++) {
		snprintf(uid, sizeof(uid), "sent%d", i);
		CHECK_EQ(chat(st, "alice", uid, NULL, "m1"), 1);
	}
	CHECK(pg_store_flush(st));
	for (i = 0; i < 1000; i++) {
		snprintf(uid, sizeof(uid), "seen%d", i);
		CHECK_EQ(head_of(st, uid), 0);
		pg_store_get_stats(st, &stats);
		if (i >= 10 && stats.users > most) {
			most = stats.users;
		}
	}
	CHECK(most <= 8);
	CHECK_EQ(stats.users, 8);
	/* Users with records on their way to the database stay, whatever the bound. */
	block_writer(&f);
	for (i = 0; i < 20; i++) {
		snprintf(uid, sizeof(uid), "held%d", i);
		CHECK_EQ(chat(st, "alice", uid, NULL, "m1"), 1);
	}
	for (i = 0; i < 100; i++) {
		snprintf(uid, sizeof(uid), "more%d", i);
		CHECK_EQ(head_of(st, uid), 0);
	}
	pg_store_get_stats(st, &stats);
	CHECK(stats.users >= 20 && stats.users <= 28);
	for (i = 0; i < 20; i++) {
		snprintf(uid, sizeof(uid), "held%d", i);
		CHECK_EQ(chat(st, "alice", uid, NULL, "m2"), 2);
	}
	unblock_writer(&f);
	CHECK(pg_store_flush(st));
	for (i = 0; i < 100; i++) {
		snprintf(uid, sizeof(uid), "late%d", i);
		CHECK_EQ(head_of(st, uid), 0);
	}
	pg_store_get_stats(st, &stats);
	CHECK_EQ(stats.users, 8);
	/* Evicted long ago: reloaded with their seqs. */
	CHECK_EQ(head_of(st, "sent7"), 1);
	CHECK_EQ(chat(st, "alice", "sent7", NULL, "m2"), 2);
	CHECK_EQ(head_of(st, "held3"), 2);
	fx_done(&f);
}

/*
 * Sync's size bound counts whole envelopes, metadata included: messages
 * with large metadata (a 16 KiB content type, which the store itself does
 * not limit) and tiny bodies give replies within PG_SYNC_MAX_BYTES, and
 * paging still returns every message once.
 */
static void test_sync_bound_counts_whole_envelopes(void)
{
	struct fx f;
	struct pg_store *st;
	struct pg_store_msg m;
	struct sent s;
	static char ctype[16 * 1024];
	uint64_t after = 0, seen = 0;
	int i, pages = 0;

	memset(ctype, 'c', sizeof(ctype) - 1);
	fx_init(&f, 1000);
	st = fx_open(&f);
	for (i = 1; i <= 60; i++) {
		if (i == 41) {
			pg_store_flush(st);
			block_writer(&f); /* the last 20 only pending */
		}
		m = msg_of(PIGEON__KIND__CHAT, "alice", "bob", NULL, NULL, "x", now_ms());
		m.content_type = ctype;
		s = send_full(st, &m);
		CHECK_EQ(s.rc, PG_OK);
		sent_free(&s);
	}
	for (;;) {
		Pigeon__SyncReply *r =
		    sync_of(st, "bob", after, PG_SYNC_LIMIT_MAX, PG_SYNC_MAX_BYTES);
		size_t k;
		CHECK(pigeon__sync_reply__get_packed_size(r) <= PG_SYNC_MAX_BYTES);
		CHECK(r->n_messages > 0);
		for (k = 0; k < r->n_messages; k++) {
			CHECK_EQ(r->messages[k]->seq, after + k + 1);
		}
		seen += r->n_messages;
		pages++;
		if (r->n_messages > 0) {
			after = r->messages[r->n_messages - 1]->seq;
		}
		if (!r->more || r->n_messages == 0) {
			pg_store_sync_free(r);
			break;
		}
		pg_store_sync_free(r);
	}
	CHECK_EQ(seen, 60);
	CHECK(pages >= 4);
	unblock_writer(&f);
	fx_done(&f);
}

/*
 * With a permissive umask (0000): the directories the store creates are
 * 0700, and the database, its -wal and -shm and the journal 0600; an
 * existing database readable by others is made private at open.
 */
static void test_file_modes(void)
{
	struct fx f;
	struct stat sb;
	char path[200], sub[160], subsub[170];
	mode_t old = umask(0);

	fx_init(&f, 1000);
	snprintf(sub, sizeof(sub), "%s/data", f.dir);
	snprintf(subsub, sizeof(subsub), "%s/data/pigeon", f.dir);
	snprintf(f.db, sizeof(f.db), "%s/data/pigeon/store.db", f.dir);
	fx_open(&f);
	CHECK_EQ(chat(f.st, "alice", "bob", NULL, "m1"), 1);
	CHECK(pg_store_flush(f.st));
	CHECK_EQ(stat(sub, &sb), 0);
	CHECK_EQ(sb.st_mode & 07777, 0700);
	CHECK_EQ(stat(subsub, &sb), 0);
	CHECK_EQ(sb.st_mode & 07777, 0700);
	CHECK_EQ(stat(f.db, &sb), 0);
	CHECK_EQ(sb.st_mode & 07777, 0600);
	snprintf(path, sizeof(path), "%s-wal", f.db);
	CHECK_EQ(stat(path, &sb), 0);
	CHECK_EQ(sb.st_mode & 07777, 0600);
	snprintf(path, sizeof(path), "%s-shm", f.db);
	CHECK_EQ(stat(path, &sb), 0);
	CHECK_EQ(sb.st_mode & 07777, 0600);
	snprintf(path, sizeof(path), "%s.jnl.%020d", f.db, 1);
	CHECK_EQ(stat(path, &sb), 0);
	CHECK_EQ(sb.st_mode & 07777, 0600);
	fx_close(&f);
	CHECK_EQ(chmod(f.db, 0644), 0);
	fx_open(&f);
	CHECK_EQ(stat(f.db, &sb), 0);
	CHECK_EQ(sb.st_mode & 07777, 0600);
	umask(old);
	fx_close(&f);
	/* fx_done removes f.dir's files only: empty the nested directories first. */
	{
		char pattern[200];
		glob_t g;
		size_t i;
		snprintf(pattern, sizeof(pattern), "%s/*", subsub);
		if (glob(pattern, 0, NULL, &g) == 0) {
			for (i = 0; i < g.gl_pathc; i++) {
				unlink(g.gl_pathv[i]);
			}
			globfree(&g);
		}
		CHECK_EQ(rmdir(subsub), 0);
		CHECK_EQ(rmdir(sub), 0);
	}
	fx_done(&f);
}

/*
 * Found by fuzz_journal (tests/fuzz/corpus/journal/crash-seq-exhausted): a
 * corrupt journal record or database row can leave a user's head at the
 * last seq; the next message then got seq 0 (INSTANT's), was acknowledged,
 * and was never stored. Now it is refused; other users are unaffected.
 */
static void test_seq_space_exhausted_refuses(void)
{
	struct pg_store_msg m;
	struct sent s;
	struct fx f;
	sqlite3 *db;

	fx_init(&f, 0);
	fx_open(&f);
	CHECK_EQ(chat(f.st, "alice", "bob", NULL, "one"), 1);
	fx_close(&f);
	CHECK_EQ(sqlite3_open(f.db, &db), SQLITE_OK);
	CHECK_EQ(
	    sqlite3_exec(db, "UPDATE users SET head_seq = -1 WHERE uid = 'bob'", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);

	fx_open(&f);
	CHECK_EQ(head_of(f.st, "bob"), UINT64_MAX);
	m = msg_of(PIGEON__KIND__CHAT, "alice", "bob", NULL, NULL, "two", now_ms());
	s = send_full(f.st, &m);
	CHECK_EQ(s.rc, PG_ERR_IO);
	CHECK(s.packed == NULL);
	sent_free(&s);
	CHECK_EQ(head_of(f.st, "bob"), UINT64_MAX);
	CHECK_EQ(chat(f.st, "alice", "carol", NULL, "three"), 1);
	fx_done(&f);
}

/* Threads of this process running SCHED_BATCH (from /proc/self/task). */
static int batch_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	while (d != NULL && (e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.' && sched_getscheduler(atoi(e->d_name)) == SCHED_BATCH) {
			errno = 0;
			/* Background work: the lowest nice value too. */
			CHECK_EQ(getpriority(PRIO_PROCESS, (id_t)atoi(e->d_name)), 19);
			n++;
		}
	}
	if (d != NULL) {
		closedir(d);
	}
	return n;
}

/* The store thread runs as background work: SCHED_BATCH at nice 19. */
static void test_store_thread_runs_as_background_work(void)
{
	struct fx f;
	int i, n = 0;

	fx_init(&f, 10);
	CHECK_EQ(batch_threads(), 0);
	fx_open(&f);
	/* The thread sets its policy as it starts: give it a moment. */
	for (i = 0; i < 200 && (n = batch_threads()) == 0; i++) {
		usleep(5000);
	}
	CHECK_EQ(n, 1);
	fx_close(&f);
	CHECK_EQ(batch_threads(), 0);
	fx_done(&f);
}

/*
 * pg_store_config.backend picks the database: "sqlite" (also NULL), the
 * test wrapper "faulty:<name>"; an unknown name fails the open and says so.
 * The test hook only works on the wrapper.
 */
static void test_backend_is_chosen_by_name(void)
{
	static const char *const unknown[] = {"nosuch", "faulty:nosuch", "faulty:faulty:sqlite",
	                                      "faulty"};
	struct pg_store *st = NULL;
	char err[256];
	struct fx f;
	size_t i;

	fx_init(&f, 0);
	for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		f.cfg.backend = unknown[i];
		err[0] = '\0';
		CHECK_EQ(pg_store_open(&f.cfg, &st, err, sizeof(err)), -1);
		CHECK(strstr(err, "unknown store backend") != NULL);
	}
	f.cfg.backend = "sqlite";
	fx_open(&f);
	CHECK_EQ(pg_store_test_hold_applier(f.st, true), PG_ERR_INVALID);
	CHECK_EQ(chat(f.st, "alice", "bob", NULL, "one"), 1);
	CHECK(pg_store_flush(f.st));
	fx_close(&f);
	f.cfg.backend = NULL;
	fx_open(&f);
	CHECK_EQ(head_of(f.st, "bob"), 1);
	fx_done(&f);
}

/* Polls writable until it is want, for at most 5 s. */
static bool writable_becomes(struct pg_store *st, bool want)
{
	int i;

	for (i = 0; i < 500; i++) {
		if (pg_store_writable(st) == want) {
			return true;
		}
		usleep(10000);
	}
	return pg_store_writable(st) == want;
}

/*
 * The store thread observes each committed batch's duration, one
 * observation per commit, and none for a batch that failed (held writes);
 * the payload is the contract's (histogram.h).
 */
static void test_apply_histogram_counts_committed_batches(void)
{
	struct fx f;
	struct pg_store *st;
	const struct pg_histogram *h;
	char text[PG_HISTOGRAM_TEXT_MAX];
	uint64_t before;
	int i;

	fx_init(&f, 1000);
	st = fx_open(&f);
	h = pg_store_apply_histogram(st);
	CHECK(h != NULL);
	CHECK_EQ(pg_histogram_count(h), 0);
	CHECK(pg_histogram_format(h, text, sizeof(text)) > 0);
	CHECK_STR(text, "0.0005:0 0.001:0 0.0025:0 0.005:0 0.01:0 0.025:0 0.05:0 0.1:0 0.25:0 "
	                "0.5:0 1:0 2.5:0 5:0 10:0 +Inf:0 sum:0");
	for (i = 0; i < 3; i++) {
		chat(st, "alice", "bob", NULL, "m");
		CHECK(pg_store_flush(st));
	}
	/* Each flush waited for its one record's commit: one batch each. */
	before = pg_histogram_count(h);
	CHECK_EQ(before, 3);

	block_writer(&f);
	chat(st, "alice", "bob", NULL, "held");
	CHECK(writable_becomes(st, false)); /* the held batch failed at least once */
	CHECK_EQ(pg_histogram_count(h), before);
	unblock_writer(&f);
	CHECK(pg_store_flush(st));
	CHECK(writable_becomes(st, true));
	CHECK_EQ(pg_histogram_count(h), before + 1);
	CHECK(pg_histogram_format(h, text, sizeof(text)) > 0);
	CHECK_CONTAINS(text, "+Inf:");
	fx_done(&f);
}

/*
 * pg_store_writable: true on a healthy store; false while the store
 * thread's batches fail (held writes, as a locked database) and again true
 * after its next commit; false once a journal append failed (the file size
 * limit standing in for a full disk: the send is refused PG_ERR_IO), and it
 * stays false, though the disk has room again, until an append succeeds.
 */
static void test_writable_follows_journal_and_apply_failures(void)
{
	struct fx f;
	struct pg_store *st;
	struct pg_store_msg m;
	struct pg_store_stats ss;
	struct sent s;
	struct rlimit old, lim;
	void (*old_xfsz)(int);

	fx_init(&f, 1000);
	st = fx_open(&f);
	CHECK(pg_store_writable(st));
	chat(st, "alice", "bob", NULL, "m1");
	CHECK(pg_store_flush(st));
	CHECK(pg_store_writable(st));

	block_writer(&f);
	chat(st, "alice", "bob", NULL, "m2");
	CHECK(writable_becomes(st, false));
	pg_store_get_stats(st, &ss);
	CHECK(ss.failing);
	CHECK(!ss.journal_failing);
	unblock_writer(&f);
	CHECK(pg_store_flush(st));
	CHECK(writable_becomes(st, true));

	m = msg_of(PIGEON__KIND__CHAT, "alice", "bob", NULL, NULL, "m3", now_ms());
	old_xfsz = signal(SIGXFSZ, SIG_IGN);
	CHECK_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 1;
	CHECK_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
	s = send_full(st, &m);
	CHECK_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, old_xfsz);
	CHECK_EQ(s.rc, PG_ERR_IO);
	sent_free(&s);
	CHECK(!pg_store_writable(st));
	pg_store_get_stats(st, &ss);
	CHECK(ss.journal_failing);
	CHECK(!ss.failing);
	/* The limit is gone, but nothing was appended since: still not writable. */
	usleep(50000);
	CHECK(!pg_store_writable(st));
	CHECK_EQ(chat(st, "alice", "bob", NULL, "m3"), 3);
	CHECK(pg_store_writable(st));
	pg_store_get_stats(st, &ss);
	CHECK(!ss.journal_failing);
	/* An ack's append clears it too (any record of the journal). */
	lim.rlim_cur = 1;
	old_xfsz = signal(SIGXFSZ, SIG_IGN);
	CHECK_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
	s = send_full(st, &m);
	CHECK_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, old_xfsz);
	CHECK_EQ(s.rc, PG_ERR_IO);
	sent_free(&s);
	CHECK(!pg_store_writable(st));
	{
		uint64_t cursor = 0;

		CHECK_EQ(pg_store_ack(st, "bob", "phone", 3, &cursor), PG_OK);
		CHECK_EQ(cursor, 3);
	}
	CHECK(pg_store_writable(st));
	CHECK(pg_store_flush(st));
	fx_done(&f);
}

int main(void)
{
	RUN(test_chat_seqs_per_recipient);
	RUN(test_sync_paging);
	RUN(test_sync_returns_delivered_bytes);
	RUN(test_notify_merging);
	RUN(test_notify_replacing_expired);
	RUN(test_more_is_exact_with_pending_deletes);
	RUN(test_dedup);
	RUN(test_ack_and_unread);
	RUN(test_unread_of_a_big_inbox);
	RUN(test_instant);
	RUN(test_invalid_input);
	RUN(test_max_per_user);
	RUN(test_max_per_user_with_writes_pending);
	RUN(test_ttl);
	RUN(test_presence);
	RUN(test_crash_replay);
	RUN(test_crash_torn_tail);
	RUN(test_clean_restart);
	RUN(test_expiry_of_many_users_keeps_the_cap_exact);
	RUN(test_stored_counts_per_batch_stay_exact);
	RUN(test_dedup_per_recipient);
	RUN(test_refused_accept_frees_its_envelope);
	RUN(test_backlog_bound_while_writes_are_held);
	RUN(test_close_while_writes_are_held);
	RUN(test_idle_users_evicted_under_traffic);
	RUN(test_user_cache_is_bounded);
	RUN(test_sync_bound_counts_whole_envelopes);
	RUN(test_file_modes);
	RUN(test_seq_space_exhausted_refuses);
	RUN(test_backend_is_chosen_by_name);
	RUN(test_store_thread_runs_as_background_work);
	RUN(test_apply_histogram_counts_committed_batches);
	RUN(test_writable_follows_journal_and_apply_failures);
	return check_exit();
}
