/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's broker-thread side: per-user state in memory, accept / ack /
 * sync over the journal and the reader connection. See store.h.
 *
 * Pending entries. A journaled record is invisible to SQLite readers until
 * the store thread commits it, so every accepted append (and every delete it
 * implies: a replaced notification) is also kept as a pending entry, in LSN
 * order both per user and globally. Sync reads SQLite, then merges the
 * user's pending entries by seq; entries whose LSN is applied are dropped.
 * The applied LSN is read *before* the SQLite snapshot, so an entry is
 * dropped only once SQLite surely has it; if the store thread commits in
 * between, the merge sees a seq twice and keeps it once.
 */
#include "store_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uthash.h>

#include "ident.h"
#include "journal.pb-c.h"

#define STORE_MSG_ID_MAX 128

struct store_pending {
	struct store_pending *next_user; /* the user's list, LSN order */
	struct store_pending *next_fifo; /* all users, LSN order */
	struct store_user *user;
	uint64_t lsn;
	uint64_t seq;
	int64_t expires_at_ms; /* a delete: the replaced message's */
	bool is_delete;
	size_t env_len;
	uint8_t env[]; /* packed Envelope (appends) */
};

struct notify_slot {
	uint64_t seq;
	uint32_t merged;
	int64_t expires_at_ms;
	UT_hash_handle hh;
	char type[PG_IDENT_MAX + 1];
};

struct device_cursor {
	uint64_t seq;
	UT_hash_handle hh;
	char device[PG_IDENT_MAX + 1];
};

struct store_user {
	char uid[PG_IDENT_MAX + 1];
	uint64_t head;
	uint64_t max_cursor; /* highest cursor of any device: what "acknowledged" means */
	struct notify_slot *slots;
	struct device_cursor *cursors;
	struct store_pending *pending_head, *pending_tail;
	uint64_t last_lsn; /* newest record journaled for this user (append or cursor) */
	int64_t used_ms;   /* last accept / ack / sync / head / unread */
	UT_hash_handle hh;
};

/* Users untouched this long, with everything applied, leave memory (reloaded on use). */
#define STORE_USER_IDLE_MS (10 * 60 * 1000)

struct store_dedup {
	uint64_t lsn;
	uint64_t seq;
	int64_t created_ms;
	UT_hash_handle hh;
	size_t keylen;
	char key[]; /* from '\0' to '\0' msg_id */
};

#define STORE_DEDUP_KEY_MAX (2 * (PG_IDENT_MAX + 1) + STORE_MSG_ID_MAX)

static int64_t store_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------- user state ---------- */

static void load_slot(const char *type, uint64_t seq, uint32_t merged, int64_t expires_at_ms,
                      void *ud)
{
	struct store_user *u = ud;
	struct notify_slot *s;

	if (!pg_ident_valid_str(type)) {
		return;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		return;
	}
	strcpy(s->type, type);
	s->seq = seq;
	s->merged = merged;
	s->expires_at_ms = expires_at_ms;
	HASH_ADD_STR(u->slots, type, s);
}

static void load_cursor(const char *device, uint64_t seq, void *ud)
{
	struct store_user *u = ud;
	struct device_cursor *c;

	if (!pg_ident_valid_str(device)) {
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		return;
	}
	strcpy(c->device, device);
	c->seq = seq;
	HASH_ADD_STR(u->cursors, device, c);
	if (seq > u->max_cursor) {
		u->max_cursor = seq;
	}
}

static void store_user_free(struct store_user *u)
{
	struct notify_slot *s, *stmp;
	struct device_cursor *c, *ctmp;

	HASH_ITER(hh, u->slots, s, stmp)
	{
		HASH_DEL(u->slots, s);
		free(s);
	}
	HASH_ITER(hh, u->cursors, c, ctmp)
	{
		HASH_DEL(u->cursors, c);
		free(c);
	}
	free(u);
}

/* The in-memory state of uid, loaded from SQLite on first use. NULL on failure. */
static struct store_user *store_user_get(struct pg_store *st, const char *uid)
{
	struct store_user *u;

	HASH_FIND_STR(st->users, uid, u);
	if (u != NULL) {
		u->used_ms = store_now_ms();
		return u;
	}
	u = calloc(1, sizeof(*u));
	if (u == NULL) {
		return NULL;
	}
	strcpy(u->uid, uid);
	/*
	 * Everything of this user is in SQLite: records journaled since open
	 * were made from this in-memory state, which did not exist yet.
	 */
	if (store_db_user_head(&st->reader, uid, &u->head) != SQLITE_OK ||
	    store_db_notify_slots(&st->reader, uid, load_slot, u) != SQLITE_OK ||
	    store_db_cursors(&st->reader, uid, load_cursor, u) != SQLITE_OK) {
		store_user_free(u);
		return NULL;
	}
	u->used_ms = store_now_ms();
	HASH_ADD_STR(st->users, uid, u);
	st->users_cached++;
	return u;
}

/* ---------- pending entries ---------- */

static struct store_pending *pending_new(struct pg_store *st, struct store_user *u, uint64_t lsn,
                                         uint64_t seq, bool is_delete, const uint8_t *env,
                                         size_t env_len, int64_t expires_at_ms)
{
	struct store_pending *p = malloc(sizeof(*p) + env_len);

	if (p == NULL) {
		return NULL;
	}
	p->next_user = NULL;
	p->next_fifo = NULL;
	p->user = u;
	p->lsn = lsn;
	p->seq = seq;
	p->is_delete = is_delete;
	p->expires_at_ms = expires_at_ms;
	p->env_len = env_len;
	if (env_len) {
		memcpy(p->env, env, env_len);
	}
	return p;
}

static void pending_link(struct pg_store *st, struct store_pending *p)
{
	struct store_user *u = p->user;

	if (u->pending_tail) {
		u->pending_tail->next_user = p;
	} else {
		u->pending_head = p;
	}
	u->pending_tail = p;
	if (st->fifo_tail) {
		st->fifo_tail->next_fifo = p;
	} else {
		st->fifo_head = p;
	}
	st->fifo_tail = p;
}

/* Drops pending entries (and dedup entries) the store thread has applied. */
static void pending_trim(struct pg_store *st)
{
	uint64_t applied = atomic_load(&st->applied_lsn);
	struct store_dedup *d, *dtmp;

	while (st->fifo_head && st->fifo_head->lsn <= applied) {
		struct store_pending *p = st->fifo_head;
		struct store_user *u = p->user;
		st->fifo_head = p->next_fifo;
		if (st->fifo_head == NULL) {
			st->fifo_tail = NULL;
		}
		/* The oldest entry overall is also its user's oldest. */
		u->pending_head = p->next_user;
		if (u->pending_head == NULL) {
			u->pending_tail = NULL;
		}
		free(p);
	}
	/* Dedup entries were added in LSN order too (uthash keeps insertion order). */
	HASH_ITER(hh, st->dedup, d, dtmp)
	{
		if (d->lsn > applied) {
			break;
		}
		HASH_DEL(st->dedup, d);
		free(d);
	}
}

/* ---------- dedup ---------- */

static size_t dedup_key(char *buf, size_t cap, const char *from, const char *to, const char *msg_id)
{
	size_t fl = strlen(from), tl = strlen(to), ml = strlen(msg_id);

	if (fl + 1 + tl + 1 + ml > cap) {
		return 0;
	}
	memcpy(buf, from, fl);
	buf[fl] = '\0';
	memcpy(buf + fl + 1, to, tl);
	buf[fl + 1 + tl] = '\0';
	memcpy(buf + fl + 1 + tl + 1, msg_id, ml);
	return fl + 1 + tl + 1 + ml;
}

/* Bloom filter sizing: 2^24 bits (2 MiB) a generation, 7 probes: under 1%
 * false positives up to ~1.7 million keys a window; beyond, more lookups. */
#define STORE_BLOOM_LOG2_BITS 24
#define STORE_BLOOM_PROBES 7

static void dedup_bloom_load(const char *sender, const char *recipient, const char *msg_id,
                             void *ud)
{
	struct pg_store *st = ud;
	char key[STORE_DEDUP_KEY_MAX];
	size_t klen = dedup_key(key, sizeof(key), sender, recipient, msg_id);

	if (klen) {
		pg_bloom_add(&st->bloom[st->bloom_cur], key, klen);
	}
}

static int dedup_lookup(struct pg_store *st, const char *from, const char *to, const char *msg_id,
                        int64_t now_ms, uint64_t *seq, bool *found)
{
	char key[STORE_DEDUP_KEY_MAX];
	size_t klen = dedup_key(key, sizeof(key), from, to, msg_id);
	int64_t since = now_ms - (int64_t)st->cfg.dedup_window_s * 1000;
	struct store_dedup *d;

	HASH_FIND(hh, st->dedup, key, klen, d);
	if (d != NULL && d->created_ms >= since) {
		*seq = d->seq;
		*found = true;
		return 0;
	}
	if (!pg_bloom_maybe(&st->bloom[0], key, klen) &&
	    !pg_bloom_maybe(&st->bloom[1], key, klen)) {
		*found = false;
		return 0;
	}
	return store_db_dedup_find(&st->reader, from, to, msg_id, since, seq, found) == SQLITE_OK
	           ? 0
	           : -1;
}

static void dedup_remember(struct pg_store *st, const char *from, const char *to,
                           const char *msg_id, uint64_t lsn, uint64_t seq, int64_t now_ms)
{
	char key[STORE_DEDUP_KEY_MAX];
	size_t klen = dedup_key(key, sizeof(key), from, to, msg_id);
	struct store_dedup *d = malloc(sizeof(*d) + klen);

	pg_bloom_add(&st->bloom[st->bloom_cur], key, klen);
	if (d == NULL) {
		return; /* only costs a SQLite lookup later */
	}
	d->lsn = lsn;
	d->seq = seq;
	d->created_ms = now_ms;
	d->keylen = klen;
	memcpy(d->key, key, klen);
	HASH_ADD_KEYPTR(hh, st->dedup, d->key, klen, d);
}

/* ---------- open / close ---------- */

struct replay_ctx {
	struct pg_store *st;
	struct store_batch batch;
	uint64_t applied;
	uint64_t max_lsn;
	uint64_t replayed;
	int rc;
};

static int replay_one(const uint8_t *payload, size_t len, void *ud)
{
	struct replay_ctx *rc = ud;
	Pigeon__Journal__Record *rec = pigeon__journal__record__unpack(NULL, len, payload);
	uint64_t lsn;

	if (rec == NULL) {
		return 0;
	}
	lsn = rec->lsn;
	pigeon__journal__record__free_unpacked(rec, NULL);
	if (lsn > rc->max_lsn) {
		rc->max_lsn = lsn;
	}
	if (lsn <= rc->applied) {
		return 0;
	}
	rc->rc = store_apply_packed(rc->st, payload, len, &rc->batch, &lsn);
	if (rc->rc != SQLITE_OK) {
		return 1;
	}
	rc->replayed++;
	return 0;
}

/* Applies journal records that SQLite does not have yet; sets st->next_lsn. */
static int store_replay(struct pg_store *st, char *err, size_t errlen)
{
	struct replay_ctx ctx = {.st = st};
	int torn = 0;

	if (store_db_get_applied(&st->writer, &ctx.applied) != SQLITE_OK) {
		snprintf(err, errlen, "reading applied_lsn: %s", store_db_errmsg(&st->writer));
		return -1;
	}
	ctx.max_lsn = ctx.applied;
	if (store_db_exec_simple(&st->writer, SQL_BEGIN) != SQLITE_OK) {
		snprintf(err, errlen, "replay: %s", store_db_errmsg(&st->writer));
		return -1;
	}
	if (pg_journal_replay(st->db_path, replay_one, &ctx, &torn, err, errlen) < 0 ||
	    ctx.rc != SQLITE_OK || (ctx.rc = store_apply_finish(st, &ctx.batch)) != SQLITE_OK) {
		store_db_batch_finish(&st->writer, &ctx.batch, 0);
		if (ctx.rc != SQLITE_OK) {
			snprintf(err, errlen, "replaying the journal: %s",
			         store_db_errmsg(&st->writer));
		}
		store_db_exec_simple(&st->writer, SQL_ROLLBACK);
		return -1;
	}
	if (store_db_set_applied(&st->writer, ctx.max_lsn) != SQLITE_OK ||
	    store_db_exec_simple(&st->writer, SQL_COMMIT) != SQLITE_OK) {
		snprintf(err, errlen, "replay commit: %s", store_db_errmsg(&st->writer));
		store_db_exec_simple(&st->writer, SQL_ROLLBACK);
		return -1;
	}
	if (ctx.replayed > 0 || torn > 0) {
		fprintf(stderr, "pigeon store: replayed %llu journal records%s\n",
		        (unsigned long long)ctx.replayed,
		        torn
		            ? " (a torn tail was ignored: records after it were never acknowledged "
		              "with sync=full)"
		            : "");
	}
	atomic_store(&st->applied_lsn, ctx.max_lsn);
	st->next_lsn = ctx.max_lsn + 1;
	return 0;
}

int pg_store_open(const struct pg_store_config *cfg, struct pg_store **out, char *err,
                  size_t errlen)
{
	struct pg_store *st = calloc(1, sizeof(*st));

	err[0] = '\0';
	if (st == NULL || (st->db_path = strdup(cfg->db_path)) == NULL) {
		free(st);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	st->cfg = *cfg;
	st->cfg.db_path = st->db_path;
	if (st->cfg.backlog_max == 0) {
		st->cfg.backlog_max = STORE_BACKLOG_DEFAULT;
	}
	if (st->cfg.backlog_max_bytes == 0) {
		st->cfg.backlog_max_bytes = STORE_BACKLOG_BYTES_DEFAULT;
	}
	if (store_queue_init(&st->q) != 0) {
		free(st->db_path);
		free(st);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (store_db_open(&st->writer, st->db_path, true, cfg->sync_full, err, errlen) != 0 ||
	    store_replay(st, err, errlen) != 0 ||
	    store_db_open(&st->reader, st->db_path, false, cfg->sync_full, err, errlen) != 0 ||
	    pg_journal_open(st->db_path, st->next_lsn, cfg->sync_full, &st->journal, err, errlen) !=
	        0) {
		goto fail;
	}
	pg_journal_trim(st->db_path, atomic_load(&st->applied_lsn));
	if (pg_bloom_init(&st->bloom[0], STORE_BLOOM_LOG2_BITS, STORE_BLOOM_PROBES) != 0 ||
	    pg_bloom_init(&st->bloom[1], STORE_BLOOM_LOG2_BITS, STORE_BLOOM_PROBES) != 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	st->bloom_rotated_ms = store_now_ms();
	if (store_db_dedup_keys(&st->reader,
	                        st->bloom_rotated_ms - (int64_t)cfg->dedup_window_s * 1000,
	                        dedup_bloom_load, st) != SQLITE_OK) {
		snprintf(err, errlen, "loading dedup keys: %s", store_db_errmsg(&st->reader));
		goto fail;
	}
	if (store_thread_start(st) != 0) {
		snprintf(err, errlen, "cannot start the store thread: %s", strerror(errno));
		goto fail;
	}
	*out = st;
	return 0;
fail:
	pg_bloom_free(&st->bloom[0]);
	pg_bloom_free(&st->bloom[1]);
	pg_journal_close(st->journal);
	store_db_close(&st->reader);
	store_db_close(&st->writer);
	store_queue_destroy(&st->q);
	free(st->db_path);
	free(st);
	return -1;
}

void pg_store_close(struct pg_store *st)
{
	struct store_user *u, *utmp;
	struct store_dedup *d, *dtmp;
	struct store_pending *p, *pn;

	if (st == NULL) {
		return;
	}
	store_thread_stop(st);
	pg_journal_close(st->journal);
	pg_journal_trim(st->db_path, atomic_load(&st->applied_lsn));
	for (p = st->fifo_head; p; p = pn) {
		pn = p->next_fifo;
		free(p);
	}
	HASH_ITER(hh, st->users, u, utmp)
	{
		HASH_DEL(st->users, u);
		store_user_free(u);
	}
	HASH_ITER(hh, st->dedup, d, dtmp)
	{
		HASH_DEL(st->dedup, d);
		free(d);
	}
	pg_bloom_free(&st->bloom[0]);
	pg_bloom_free(&st->bloom[1]);
	store_db_close(&st->reader);
	store_db_close(&st->writer);
	store_queue_destroy(&st->q);
	free(st->db_path);
	free(st);
}

/* ---------- journaling ---------- */

/* Counts a refusal for a full backlog and logs it (one line per STORE_LOG_EVERY_MS). */
static void store_note_busy(struct pg_store *st)
{
	int64_t now = store_now_ms();

	st->busy++;
	st->busy_unlogged++;
	if (now - st->busy_logged_ms < STORE_LOG_EVERY_MS) {
		return;
	}
	pthread_mutex_lock(&st->q.mu);
	fprintf(stderr,
	        "pigeon store: SQLite is %zu records (%zu bytes) behind, the backlog bound: "
	        "refusing new stored sends (%llu refused since the last report)\n",
	        st->q.count, st->q.bytes, (unsigned long long)st->busy_unlogged);
	pthread_mutex_unlock(&st->q.mu);
	st->busy_logged_ms = now;
	st->busy_unlogged = 0;
}

/*
 * Packs rec (with the next LSN) and appends it to the journal; on success
 * hands it to the store thread and sets *lsn. On failure nothing was
 * journaled: PG_STORE_BUSY (backlog at its bound; an append gets the bound,
 * other records its reserve too), PG_STORE_NOMEM or PG_STORE_IO.
 */
static enum pg_store_status store_journal(struct pg_store *st, Pigeon__Journal__Record *rec,
                                          bool append, uint64_t *lsn)
{
	struct store_item *item;
	enum pg_store_status rc;
	size_t len;

	rec->lsn = st->next_lsn;
	len = pigeon__journal__record__get_packed_size(rec);
	/* Room in the backlog first: a journaled record must reach the store thread. */
	rc = store_queue_admit(st, len, append);
	if (rc != PG_STORE_OK) {
		if (rc == PG_STORE_BUSY) {
			store_note_busy(st);
		}
		return rc;
	}
	item = malloc(sizeof(*item) + len);
	if (item == NULL) {
		return PG_STORE_NOMEM;
	}
	item->lsn = rec->lsn;
	item->len = len;
	pigeon__journal__record__pack(rec, item->data);
	if (pg_journal_append(st->journal, item->lsn, item->data, len) != 0) {
		int64_t now = store_now_ms();
		if (now - st->journal_logged_ms >= STORE_LOG_EVERY_MS) {
			fprintf(stderr, "pigeon store: journal write failed: %s (refusing)\n",
			        strerror(errno));
			st->journal_logged_ms = now;
		}
		st->journal_errors++;
		free(item);
		return PG_STORE_IO;
	}
	st->next_lsn++;
	/* From here the store thread owns item (and may free it before push returns). */
	*lsn = item->lsn;
	store_queue_push(st, item);
	return PG_STORE_OK;
}

static char *nonempty(const char *s)
{
	return (char *)(s ? s : "");
}

enum pg_store_status pg_store_accept(struct pg_store *st, const struct pg_store_msg *msg,
                                     void *(*alloc)(size_t), void (*release)(void *),
                                     struct pg_store_accepted *out)
{
	Pigeon__Envelope env = PIGEON__ENVELOPE__INIT;
	Pigeon__Journal__Append app = PIGEON__JOURNAL__APPEND__INIT;
	Pigeon__Journal__Record rec = PIGEON__JOURNAL__RECORD__INIT;
	struct store_user *u = NULL;
	struct notify_slot *slot = NULL;
	struct store_pending *pa = NULL, *pd = NULL;
	enum pg_store_status rc;
	uint64_t ttl_s, lsn = 0, dup_seq;
	bool found;

	memset(out, 0, sizeof(*out));
	if (!pg_ident_valid_str(msg->from) || !pg_ident_valid_str(msg->to) ||
	    (msg->kind == PIGEON__KIND__NOTIFY && !pg_ident_valid_str(msg->type)) ||
	    (msg->kind != PIGEON__KIND__CHAT && msg->kind != PIGEON__KIND__NOTIFY &&
	     msg->kind != PIGEON__KIND__INSTANT) ||
	    (msg->msg_id && strlen(msg->msg_id) > STORE_MSG_ID_MAX)) {
		return PG_STORE_INVALID;
	}
	env.from = (char *)msg->from;
	env.to = (char *)msg->to;
	env.kind = msg->kind;
	env.type = nonempty(msg->kind == PIGEON__KIND__NOTIFY ? msg->type : NULL);
	env.msg_id = nonempty(msg->msg_id);
	env.sent_at_ms = (uint64_t)msg->now_ms;
	env.content_type = nonempty(msg->content_type);
	env.body.data = (uint8_t *)msg->body;
	env.body.len = msg->body_len;

	if (msg->kind != PIGEON__KIND__INSTANT) {
		u = store_user_get(st, msg->to);
		if (u == NULL) {
			return PG_STORE_IO;
		}
		if (msg->msg_id && msg->msg_id[0]) {
			if (dedup_lookup(st, msg->from, msg->to, msg->msg_id, msg->now_ms, &dup_seq,
			                 &found) != 0) {
				return PG_STORE_IO;
			}
			if (found) {
				out->seq = dup_seq;
				out->duplicate = true;
				st->duplicates++;
				return PG_STORE_OK;
			}
		}
		if (u->head == UINT64_MAX) {
			/* Only a corrupt journal or database: seq 0 would mean INSTANT. */
			return PG_STORE_IO;
		}
		ttl_s = msg->ttl_s && msg->ttl_s < st->cfg.ttl_s ? msg->ttl_s : st->cfg.ttl_s;
		env.seq = u->head + 1;
		env.expires_at_ms = (uint64_t)msg->now_ms + ttl_s * 1000;
		if (msg->kind == PIGEON__KIND__NOTIFY) {
			HASH_FIND_STR(u->slots, msg->type, slot);
			if (slot != NULL) {
				app.replaces_seq = slot->seq;
				/* Count it only if it is still stored and no device has acked it.
				 */
				if (slot->expires_at_ms > msg->now_ms &&
				    slot->seq > u->max_cursor) {
					env.merged = slot->merged + 1;
				}
			}
		}
		app.envelope = &env;
		app.push_title = nonempty(msg->push_title);
		app.push_body = nonempty(msg->push_body);
		rec.change_case = PIGEON__JOURNAL__RECORD__CHANGE_APPEND;
		rec.append = &app;
	}

	out->envelope_len = pigeon__envelope__get_packed_size(&env);
	out->envelope = alloc(out->envelope_len ? out->envelope_len : 1);
	if (out->envelope == NULL) {
		return PG_STORE_NOMEM;
	}
	pigeon__envelope__pack(&env, out->envelope);
	if (msg->kind == PIGEON__KIND__INSTANT) {
		return PG_STORE_OK;
	}

	/* Allocate everything before journaling, so nothing can fail after it. */
	pa = pending_new(st, u, 0, env.seq, false, out->envelope, out->envelope_len,
	                 (int64_t)env.expires_at_ms);
	if (app.replaces_seq) {
		/* With the replaced one's expiry: unread must not uncount an expired one. */
		pd = pending_new(st, u, 0, app.replaces_seq, true, NULL, 0, slot->expires_at_ms);
	}
	if (slot == NULL && msg->kind == PIGEON__KIND__NOTIFY) {
		slot = calloc(1, sizeof(*slot));
		if (slot) {
			strcpy(slot->type, msg->type);
			HASH_ADD_STR(u->slots, type, slot);
		}
	}
	if (pa == NULL || (app.replaces_seq && pd == NULL) ||
	    (msg->kind == PIGEON__KIND__NOTIFY && slot == NULL)) {
		rc = PG_STORE_NOMEM; /* an empty new slot left behind is harmless */
		goto fail;
	}
	rc = store_journal(st, &rec, true, &lsn);
	if (rc != PG_STORE_OK) {
		goto fail;
	}
	/* Durable: now the in-memory state follows. */
	u->head = env.seq;
	u->last_lsn = lsn;
	if (slot != NULL) {
		slot->seq = env.seq;
		slot->merged = env.merged;
		slot->expires_at_ms = (int64_t)env.expires_at_ms;
		st->merged += app.replaces_seq ? 1 : 0;
	}
	pa->lsn = lsn;
	pending_link(st, pa);
	if (pd) {
		pd->lsn = lsn;
		pending_link(st, pd);
	}
	if (msg->msg_id && msg->msg_id[0]) {
		dedup_remember(st, msg->from, msg->to, msg->msg_id, lsn, env.seq, msg->now_ms);
	}
	st->accepted++;
	out->seq = env.seq;
	out->merged = env.merged;
	return PG_STORE_OK;
fail:
	free(pa);
	free(pd);
	release(out->envelope);
	out->envelope = NULL;
	out->envelope_len = 0;
	return rc;
}

enum pg_store_status pg_store_ack(struct pg_store *st, const char *uid, const char *device,
                                  uint64_t seq, uint64_t *cursor)
{
	Pigeon__Journal__Cursor cur = PIGEON__JOURNAL__CURSOR__INIT;
	Pigeon__Journal__Record rec = PIGEON__JOURNAL__RECORD__INIT;
	struct store_user *u;
	struct device_cursor *c;
	enum pg_store_status rc;
	uint64_t lsn;

	if (!pg_ident_valid_str(uid) || !pg_ident_valid_str(device)) {
		return PG_STORE_INVALID;
	}
	u = store_user_get(st, uid);
	if (u == NULL) {
		return PG_STORE_IO;
	}
	HASH_FIND_STR(u->cursors, device, c);
	*cursor = c ? c->seq : 0;
	if (seq > u->head) {
		return PG_STORE_INVALID;
	}
	st->acks++;
	if (c != NULL && seq <= c->seq) {
		return PG_STORE_OK; /* never backward */
	}
	if (c == NULL) {
		c = calloc(1, sizeof(*c));
		if (c == NULL) {
			return PG_STORE_NOMEM;
		}
		strcpy(c->device, device);
		HASH_ADD_STR(u->cursors, device, c);
	}
	cur.uid = (char *)uid;
	cur.device = (char *)device;
	cur.seq = seq;
	rec.change_case = PIGEON__JOURNAL__RECORD__CHANGE_CURSOR;
	rec.cursor = &cur;
	rc = store_journal(st, &rec, false, &lsn);
	if (rc != PG_STORE_OK) {
		return rc; /* a new cursor entry at 0 is harmless */
	}
	u->last_lsn = lsn;
	c->seq = seq;
	if (seq > u->max_cursor) {
		u->max_cursor = seq;
	}
	*cursor = seq;
	return PG_STORE_OK;
}

/* ---------- sync ---------- */

/*
 * A sync merges two seq-ascending streams: the user's SQLite rows (read one
 * at a time, stopping at the first message that does not fit) and the
 * user's pending appends (in LSN order, which is seq order). Only messages
 * that go into the reply are unpacked.
 */
struct sync_ctx {
	const struct store_pending *next; /* next pending entry to consider */
	uint64_t after;
	int64_t now_ms;
	uint32_t limit;
	size_t max_bytes, bytes;
	Pigeon__Envelope **msgs; /* limit entries */
	size_t n;
	uint64_t last_seq; /* highest seq taken or skipped as a duplicate */
	size_t rows;       /* rows SQLite returned */
	uint64_t *deleted; /* seqs of the user's pending deletes, sorted */
	size_t ndeleted;
	bool full;       /* a message did not fit: more */
	uint64_t oldest; /* sync_oldest_row's result (0: none found) */
};

static int seq_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* True if a pending delete (a replaced notification) removes seq. */
static bool sync_deleted(const struct sync_ctx *c, uint64_t seq)
{
	return c->ndeleted > 0 &&
	       bsearch(&seq, c->deleted, c->ndeleted, sizeof(*c->deleted), seq_cmp) != NULL;
}

/* Collects the user's pending deletes into c (sorted). 0, or -1 without memory. */
static int sync_collect_deletes(struct sync_ctx *c, const struct store_user *u)
{
	const struct store_pending *p;
	size_t n = 0;

	for (p = u->pending_head; p; p = p->next_user) {
		n += p->is_delete;
	}
	if (n == 0) {
		return 0;
	}
	c->deleted = malloc(n * sizeof(*c->deleted));
	if (c->deleted == NULL) {
		return -1;
	}
	for (p = u->pending_head; p; p = p->next_user) {
		if (p->is_delete) {
			c->deleted[c->ndeleted++] = p->seq;
		}
	}
	qsort(c->deleted, c->ndeleted, sizeof(*c->deleted), seq_cmp);
	return 0;
}

/* Bytes an envelope of len bytes takes in a packed SyncReply besides itself (tag, length). */
static size_t sync_header(size_t len)
{
	size_t n = 2;

	while (len >= 128) {
		len >>= 7;
		n++;
	}
	return n;
}

/*
 * Takes one message into the reply unless it is a duplicate, removed, or
 * does not fit (then c->full, and 1 to stop). 0 to go on.
 */
static int sync_take(struct sync_ctx *c, uint64_t seq, const void *env, size_t len)
{
	size_t cost = sync_header(len) + len;
	Pigeon__Envelope *e;

	if (seq <= c->last_seq || sync_deleted(c, seq)) {
		return 0; /* seen in both streams (the store thread committed meanwhile) */
	}
	if (c->n == c->limit || (c->n > 0 && c->bytes + cost > c->max_bytes)) {
		c->full = true;
		return 1;
	}
	c->last_seq = seq;
	e = pigeon__envelope__unpack(NULL, len, env);
	if (e == NULL) {
		return 0; /* unreadable row: skip rather than fail the whole sync */
	}
	c->msgs[c->n++] = e;
	c->bytes += cost;
	return 0;
}

/* Takes the pending appends with seq below `below`. 1 once the reply is full. */
static int sync_pending_below(struct sync_ctx *c, uint64_t below)
{
	for (; c->next && c->next->seq < below; c->next = c->next->next_user) {
		const struct store_pending *p = c->next;
		if (p->is_delete || p->seq <= c->after || p->expires_at_ms <= c->now_ms) {
			continue;
		}
		if (sync_take(c, p->seq, p->env, p->env_len) != 0) {
			return 1;
		}
	}
	return 0;
}

static int sync_row(uint64_t seq, const void *env, size_t len, void *ud)
{
	struct sync_ctx *c = ud;

	c->rows++;
	if (sync_pending_below(c, seq) != 0) {
		return 1;
	}
	return sync_take(c, seq, env, len);
}

/* Keeps the first (lowest) seq that no pending delete removed. */
static int sync_oldest_row(uint64_t seq, const void *env, size_t len, void *ud)
{
	struct sync_ctx *c = ud;

	(void)env;
	(void)len;
	if (sync_deleted(c, seq)) {
		return 0;
	}
	c->oldest = seq;
	return 1;
}

void pg_store_sync_free(Pigeon__SyncReply *reply)
{
	size_t i;

	if (reply == NULL) {
		return;
	}
	for (i = 0; i < reply->n_messages; i++) {
		pigeon__envelope__free_unpacked(reply->messages[i], NULL);
	}
	free(reply->messages);
	free(reply);
}

enum pg_store_status pg_store_sync(struct pg_store *st, const char *uid, uint64_t after_seq,
                                   uint32_t limit, size_t max_bytes, int64_t now_ms,
                                   Pigeon__SyncReply **out)
{
	struct sync_ctx c = {0};
	Pigeon__SyncReply *r = NULL;
	struct store_user *u;
	const struct store_pending *p;
	uint64_t oldest = 0, sql_limit;
	size_t i;

	*out = NULL;
	if (!pg_ident_valid_str(uid) || limit == 0) {
		return PG_STORE_INVALID;
	}
	u = store_user_get(st, uid);
	if (u == NULL) {
		return PG_STORE_IO;
	}
	st->syncs++;
	pending_trim(st);
	r = calloc(1, sizeof(*r));
	c.msgs = calloc(limit, sizeof(*c.msgs));
	if (r == NULL || c.msgs == NULL || sync_collect_deletes(&c, u) != 0) {
		goto io;
	}
	pigeon__sync_reply__init(r);
	c.next = u->pending_head;
	c.after = after_seq;
	c.now_ms = now_ms;
	c.limit = limit;
	c.max_bytes = max_bytes;
	c.last_seq = after_seq;
	/* Enough rows for limit messages past the deleted ones, and one to tell "more". */
	sql_limit = (uint64_t)limit + c.ndeleted + 1;
	if (store_db_range(&st->reader, uid, after_seq, now_ms, (uint32_t)sql_limit, sync_row,
	                   &c) != SQLITE_OK) {
		goto io;
	}
	if (!c.full && c.rows < sql_limit) {
		sync_pending_below(&c, UINT64_MAX);
	}
	/* Stopped at a message that did not fit, or SQLite may hold more than it returned. */
	r->more = c.full || c.rows >= sql_limit;
	r->messages = c.msgs;
	r->n_messages = c.n;
	c.msgs = NULL;

	r->head_seq = u->head;
	/*
	 * The lowest seq still stored. A replaced NOTIFY whose delete is still
	 * pending is in SQLite (and maybe among the pending appends) but is no
	 * longer stored: skip those, or oldest_seq would point at a hole. Of
	 * the ndeleted + 1 lowest rows at least one is not deleted.
	 */
	if (store_db_range(&st->reader, uid, 0, now_ms, (uint32_t)c.ndeleted + 1, sync_oldest_row,
	                   &c) != SQLITE_OK) {
		c.oldest = 0;
	}
	oldest = c.oldest;
	for (p = u->pending_head; p; p = p->next_user) {
		if (!p->is_delete && p->expires_at_ms > now_ms &&
		    (oldest == 0 || p->seq < oldest) && !sync_deleted(&c, p->seq)) {
			oldest = p->seq;
		}
	}
	free(c.deleted);
	r->oldest_seq = oldest ? oldest : u->head + 1;
	*out = r;
	return PG_STORE_OK;
io:
	for (i = 0; i < c.n; i++) {
		pigeon__envelope__free_unpacked(c.msgs[i], NULL);
	}
	free(c.msgs);
	free(c.deleted);
	free(r);
	return PG_STORE_IO;
}

enum pg_store_status pg_store_head(struct pg_store *st, const char *uid, uint64_t *head)
{
	struct store_user *u;

	if (!pg_ident_valid_str(uid)) {
		return PG_STORE_INVALID;
	}
	u = store_user_get(st, uid);
	if (u == NULL) {
		return PG_STORE_IO;
	}
	*head = u->head;
	return PG_STORE_OK;
}

enum pg_store_status pg_store_unread(struct pg_store *st, const char *uid, const char *device,
                                     int64_t now_ms, uint64_t *cursor, uint64_t *unread)
{
	struct store_user *u;
	struct device_cursor *c;
	const struct store_pending *p;
	uint64_t n = 0;

	if (!pg_ident_valid_str(uid) || !pg_ident_valid_str(device)) {
		return PG_STORE_INVALID;
	}
	u = store_user_get(st, uid);
	if (u == NULL) {
		return PG_STORE_IO;
	}
	pending_trim(st);
	HASH_FIND_STR(u->cursors, device, c);
	*cursor = c ? c->seq : 0;
	if (store_db_count_above(&st->reader, uid, *cursor, now_ms, &n) != SQLITE_OK) {
		return PG_STORE_IO;
	}
	for (p = u->pending_head; p; p = p->next_user) {
		if (p->seq <= *cursor) {
			continue;
		}
		/*
		 * A delete cancels the replaced message only if it was counted:
		 * neither SQLite's count nor the pending appends include an
		 * expired one (decrementing for it made a fresh notification
		 * replacing an expired one read as 0 unread until applied).
		 */
		if (p->is_delete && p->expires_at_ms > now_ms && n > 0) {
			n--;
		} else if (!p->is_delete && p->expires_at_ms > now_ms) {
			n++;
		}
	}
	*unread = n;
	return PG_STORE_OK;
}

enum pg_store_status pg_store_set_presence(struct pg_store *st, const char *uid, bool online)
{
	Pigeon__Journal__Presence pr = PIGEON__JOURNAL__PRESENCE__INIT;
	Pigeon__Journal__Record rec = PIGEON__JOURNAL__RECORD__INIT;
	uint64_t lsn;

	/* Like every other entry point (an invalid uid was journaled and stored). */
	if (!pg_ident_valid_str(uid)) {
		return PG_STORE_INVALID;
	}
	pr.uid = (char *)uid;
	pr.online = online;
	rec.change_case = PIGEON__JOURNAL__RECORD__CHANGE_PRESENCE;
	rec.presence = &pr;
	return store_journal(st, &rec, false, &lsn);
}

void pg_store_foreach_online(struct pg_store *st, void (*fn)(const char *uid, void *ud), void *ud)
{
	store_db_online_users(&st->reader, fn, ud);
}

/*
 * Drops idle users' state from memory. Only users with every record applied
 * (no pending entry, no cursor move still queued): SQLite has all of theirs,
 * and a reload rebuilds the same state.
 */
static void store_evict_idle(struct pg_store *st, int64_t now_ms)
{
	uint64_t applied = atomic_load(&st->applied_lsn);
	struct store_user *u, *tmp;

	HASH_ITER(hh, st->users, u, tmp)
	{
		if (u->pending_head == NULL && u->last_lsn <= applied &&
		    now_ms - u->used_ms > STORE_USER_IDLE_MS) {
			HASH_DEL(st->users, u);
			store_user_free(u);
			st->users_cached--;
		}
	}
}

void pg_store_tick(struct pg_store *st, int64_t now_ms)
{
	pending_trim(st);
	if (now_ms - st->evicted_ms >= 60 * 1000) {
		store_evict_idle(st, now_ms);
		st->evicted_ms = now_ms;
	}
	/* A key stays in the filters one to two windows: at least its window. */
	if (now_ms - st->bloom_rotated_ms >= (int64_t)st->cfg.dedup_window_s * 1000) {
		st->bloom_cur ^= 1;
		pg_bloom_clear(&st->bloom[st->bloom_cur]);
		st->bloom_rotated_ms = now_ms;
	}
}

void pg_store_get_stats(struct pg_store *st, struct pg_store_stats *o)
{
	memset(o, 0, sizeof(*o));
	o->accepted = st->accepted;
	o->merged = st->merged;
	o->duplicates = st->duplicates;
	o->acks = st->acks;
	o->syncs = st->syncs;
	o->busy = st->busy;
	o->users = st->users_cached;
	o->expired = atomic_load(&st->expired);
	o->capped = atomic_load(&st->capped);
	o->apply_errors = atomic_load(&st->apply_errors);
	o->failing = atomic_load(&st->apply_failing);
	o->pending = st->next_lsn - 1 - atomic_load(&st->applied_lsn);
	pthread_mutex_lock(&st->q.mu);
	o->pending_bytes = st->q.bytes;
	pthread_mutex_unlock(&st->q.mu);
}

bool pg_store_flush(struct pg_store *st)
{
	struct timespec ts;
	bool done;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += STORE_FLUSH_MAX_MS / 1000;
	pthread_mutex_lock(&st->q.mu);
	/* Cut a retry pause short: the caller wants it done now. */
	pthread_cond_signal(&st->q.wake);
	while (st->q.count > 0 &&
	       pthread_cond_timedwait(&st->q.applied, &st->q.mu, &ts) != ETIMEDOUT) {
	}
	done = st->q.count == 0;
	pthread_mutex_unlock(&st->q.mu);
	pending_trim(st);
	return done;
}
