/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's entry points (store.h) on the broker thread: open and close,
 * accept / ack / presence (each a journal record, handed to the store
 * thread once durable), housekeeping on tick, stats and flush. The other
 * concerns live beside it, sharing internal/store_internal.h:
 *
 *   store_user.c     the per-user cache (head, notify slots, cursors)
 *   store_pending.c  records journaled but not yet applied
 *   store_dedup.c    the dedup window (pending keys, Bloom filters)
 *   store_replay.c   journal replay at open
 *   store_sync.c     the merged read path: sync, head, unread
 *   store_apply.c    the store thread and its queue
 *   store_sqlite.c   the SQLite backend (internal/store_backend.h), all the SQL
 *   store_faulty.c   a backend that wraps another and fails on demand (tests)
 *
 * Thread: every function here runs on the broker thread. Ownership:
 * struct pg_store owns everything it points to; pg_store_close frees it.
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
#include "log.h"

int64_t store_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The backends pg_store_config.backend may name. */
static const struct store_backend_ops *const store_backends[] = {&store_sqlite_ops};

static const struct store_backend_ops *store_backend_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(store_backends) / sizeof(store_backends[0]); i++) {
		if (strcmp(store_backends[i]->name, name) == 0) {
			return store_backends[i];
		}
	}
	return NULL;
}

/*
 * Picks the backend cfg.backend names ("faulty:<name>" wraps <name>) and
 * opens the writer. 0, or -1 with err set (store_backend_close cleans up).
 */
static int store_backend_open(struct pg_store *st, char *err, size_t errlen)
{
	static const char faulty[] = "faulty:";
	const char *name = st->cfg.backend ? st->cfg.backend : "sqlite";
	bool wrap = strncmp(name, faulty, sizeof(faulty) - 1) == 0;

	st->be_cfg.inner = store_backend_find(wrap ? name + sizeof(faulty) - 1 : name);
	if (st->be_cfg.inner == NULL) {
		snprintf(err, errlen, "unknown store backend \"%s\"", name);
		return -1;
	}
	st->be_ops = wrap ? &store_faulty_ops : st->be_cfg.inner;
	st->be_cfg.path = st->db_path;
	st->be_cfg.sync_full = st->cfg.sync_full;
	st->be_cfg.max_per_user = st->cfg.max_per_user;
	st->writer = st->be_ops->open(&st->be_cfg, STORE_BE_WRITER, err, errlen);
	return st->writer != NULL ? 0 : -1;
}

static void store_backend_close(struct pg_store *st)
{
	if (st->be_ops != NULL) {
		st->be_ops->close(st->reader);
		st->be_ops->close(st->writer);
	}
	st->reader = st->writer = NULL;
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
	pg_histogram_init(&st->apply_seconds, &pg_histogram_store_apply_seconds);
	if (store_queue_init(&st->q) != 0) {
		free(st->db_path);
		free(st);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (store_backend_open(st, err, errlen) != 0 || store_replay(st, err, errlen) != 0 ||
	    (st->reader = st->be_ops->open(&st->be_cfg, STORE_BE_READER, err, errlen)) == NULL ||
	    pg_journal_open(st->db_path, st->next_lsn, cfg->sync_full, &st->journal, err, errlen) !=
	        0) {
		goto fail;
	}
	pg_journal_trim(st->db_path, atomic_load(&st->applied_lsn));
	if (store_dedup_open(st, err, errlen) != 0) {
		goto fail;
	}
	if (store_thread_start(st) != 0) {
		snprintf(err, errlen, "cannot start the store thread: %s", strerror(errno));
		goto fail;
	}
	*out = st;
	return 0;
fail:
	store_dedup_free(st);
	pg_journal_close(st->journal);
	store_backend_close(st);
	store_queue_destroy(&st->q);
	free(st->db_path);
	free(st);
	return -1;
}

void pg_store_close(struct pg_store *st)
{
	struct store_user *u, *utmp;

	if (st == NULL) {
		return;
	}
	store_thread_stop(st);
	pg_journal_close(st->journal);
	pg_journal_trim(st->db_path, atomic_load(&st->applied_lsn));
	store_pending_free_all(st);
	HASH_ITER(hh, st->users, u, utmp)
	{
		HASH_DEL(st->users, u);
		store_user_free(u);
	}
	store_dedup_free(st);
	store_backend_close(st);
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
	pg_log(PG_LOG_WARNING,
	       "pigeon store: SQLite is %zu records (%zu bytes) behind, the backlog bound: "
	       "refusing new stored sends (%llu refused since the last report)",
	       st->q.count, st->q.bytes, (unsigned long long)st->busy_unlogged);
	pthread_mutex_unlock(&st->q.mu);
	st->busy_logged_ms = now;
	st->busy_unlogged = 0;
}

/*
 * Packs rec (with the next LSN) and appends it to the journal; on success
 * hands it to the store thread and sets *lsn. On failure nothing was
 * journaled: PG_ERR_BUSY (backlog at its bound; an append gets the bound,
 * other records its reserve too), PG_ERR_NOMEM or PG_ERR_IO.
 */
static int store_journal(struct pg_store *st, Pigeon__Journal__Record *rec, bool append,
                         uint64_t *lsn)
{
	struct store_item *item;
	int rc;
	size_t len;

	rec->lsn = st->next_lsn;
	len = pigeon__journal__record__get_packed_size(rec);
	/* Room in the backlog first: a journaled record must reach the store thread. */
	rc = store_queue_admit(st, len, append);
	if (rc != PG_OK) {
		if (rc == PG_ERR_BUSY) {
			store_note_busy(st);
		}
		return rc;
	}
	item = malloc(sizeof(*item) + len);
	if (item == NULL) {
		return PG_ERR_NOMEM;
	}
	item->lsn = rec->lsn;
	item->len = len;
	pigeon__journal__record__pack(rec, item->data);
	if (pg_journal_append(st->journal, item->lsn, item->data, len) != 0) {
		int64_t now = store_now_ms();
		if (now - st->journal_logged_ms >= STORE_LOG_EVERY_MS) {
			pg_log(PG_LOG_ERR, "pigeon store: journal write failed: %s (refusing)",
			       strerror(errno));
			st->journal_logged_ms = now;
		}
		st->journal_errors++;
		st->journal_failing = true;
		free(item);
		return PG_ERR_IO;
	}
	st->journal_failing = false;
	st->next_lsn++;
	/* From here the store thread owns item (and may free it before push returns). */
	*lsn = item->lsn;
	store_queue_push(st, item);
	return PG_OK;
}

static char *nonempty(const char *s)
{
	return (char *)(s ? s : "");
}

int pg_store_accept(struct pg_store *st, const struct pg_store_msg *msg, void *(*alloc)(size_t),
                    void (*release)(void *), struct pg_store_accepted *out)
{
	Pigeon__Envelope env = PIGEON__ENVELOPE__INIT;
	Pigeon__Journal__Append app = PIGEON__JOURNAL__APPEND__INIT;
	Pigeon__Journal__Record rec = PIGEON__JOURNAL__RECORD__INIT;
	struct store_user *u = NULL;
	struct notify_slot *slot = NULL;
	struct store_pending *pa = NULL, *pd = NULL;
	int rc;
	uint64_t ttl_s, lsn = 0, dup_seq;
	bool found;

	memset(out, 0, sizeof(*out));
	if (!pg_ident_valid_str(msg->from) || !pg_ident_valid_str(msg->to) ||
	    (msg->kind == PIGEON__KIND__NOTIFY && !pg_ident_valid_str(msg->type)) ||
	    (msg->kind != PIGEON__KIND__CHAT && msg->kind != PIGEON__KIND__NOTIFY &&
	     msg->kind != PIGEON__KIND__INSTANT) ||
	    (msg->msg_id && strlen(msg->msg_id) > STORE_MSG_ID_MAX)) {
		return PG_ERR_INVALID;
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
			return PG_ERR_IO;
		}
		if (msg->msg_id && msg->msg_id[0]) {
			if (store_dedup_lookup(st, msg->from, msg->to, msg->msg_id, msg->now_ms,
			                       &dup_seq, &found) != 0) {
				return PG_ERR_IO;
			}
			if (found) {
				out->seq = dup_seq;
				out->duplicate = true;
				st->duplicates++;
				return PG_OK;
			}
		}
		if (u->head >= INT64_MAX) {
			/* Seqs are SQLite INTEGERs (signed 64 bits): none is left past
			 * INT64_MAX. Only a corrupt journal or database gets here. */
			return PG_ERR_IO;
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
		return PG_ERR_NOMEM;
	}
	pigeon__envelope__pack(&env, out->envelope);
	if (msg->kind == PIGEON__KIND__INSTANT) {
		return PG_OK;
	}

	/* Allocate everything before journaling, so nothing can fail after it. */
	pa = store_pending_new(st, u, 0, env.seq, false, out->envelope, out->envelope_len,
	                       (int64_t)env.expires_at_ms);
	if (app.replaces_seq) {
		/* With the replaced one's expiry: unread must not uncount an expired one. */
		pd = store_pending_new(st, u, 0, app.replaces_seq, true, NULL, 0,
		                       slot->expires_at_ms);
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
		rc = PG_ERR_NOMEM; /* an empty new slot left behind is harmless */
		goto fail;
	}
	rc = store_journal(st, &rec, true, &lsn);
	if (rc != PG_OK) {
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
	store_pending_link(st, pa);
	if (pd) {
		pd->lsn = lsn;
		store_pending_link(st, pd);
	}
	if (msg->msg_id && msg->msg_id[0]) {
		store_dedup_remember(st, msg->from, msg->to, msg->msg_id, lsn, env.seq,
		                     msg->now_ms);
	}
	st->accepted++;
	out->seq = env.seq;
	out->merged = env.merged;
	return PG_OK;
fail:
	free(pa);
	free(pd);
	release(out->envelope);
	out->envelope = NULL;
	out->envelope_len = 0;
	return rc;
}

int pg_store_ack(struct pg_store *st, const char *uid, const char *device, uint64_t seq,
                 uint64_t *cursor)
{
	Pigeon__Journal__Cursor cur = PIGEON__JOURNAL__CURSOR__INIT;
	Pigeon__Journal__Record rec = PIGEON__JOURNAL__RECORD__INIT;
	struct store_user *u;
	struct device_cursor *c;
	int rc;
	uint64_t lsn;

	if (!pg_ident_valid_str(uid) || !pg_ident_valid_str(device)) {
		return PG_ERR_INVALID;
	}
	u = store_user_get(st, uid);
	if (u == NULL) {
		return PG_ERR_IO;
	}
	HASH_FIND_STR(u->cursors, device, c);
	*cursor = c ? c->seq : 0;
	if (seq > u->head) {
		return PG_ERR_INVALID;
	}
	st->acks++;
	if (c != NULL && seq <= c->seq) {
		return PG_OK; /* never backward */
	}
	if (c == NULL) {
		c = calloc(1, sizeof(*c));
		if (c == NULL) {
			return PG_ERR_NOMEM;
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
	if (rc != PG_OK) {
		return rc; /* a new cursor entry at 0 is harmless */
	}
	u->last_lsn = lsn;
	c->seq = seq;
	if (seq > u->max_cursor) {
		u->max_cursor = seq;
	}
	*cursor = seq;
	return PG_OK;
}

int pg_store_set_presence(struct pg_store *st, const char *uid, bool online)
{
	Pigeon__Journal__Presence pr = PIGEON__JOURNAL__PRESENCE__INIT;
	Pigeon__Journal__Record rec = PIGEON__JOURNAL__RECORD__INIT;
	uint64_t lsn;

	/* Like every other entry point (an invalid uid was journaled and stored). */
	if (!pg_ident_valid_str(uid)) {
		return PG_ERR_INVALID;
	}
	pr.uid = (char *)uid;
	pr.online = online;
	rec.change_case = PIGEON__JOURNAL__RECORD__CHANGE_PRESENCE;
	rec.presence = &pr;
	return store_journal(st, &rec, false, &lsn);
}

void pg_store_foreach_online(struct pg_store *st, void (*fn)(const char *uid, void *ud), void *ud)
{
	st->reader->ops->online_users(st->reader, fn, ud);
}

void pg_store_tick(struct pg_store *st, int64_t now_ms)
{
	store_pending_trim(st);
	if (now_ms - st->evicted_ms >= 60 * 1000) {
		store_user_evict_idle(st, now_ms);
		st->evicted_ms = now_ms;
	}
	store_dedup_rotate(st, now_ms);
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
	o->journal_failing = st->journal_failing;
	o->pending = st->next_lsn - 1 - atomic_load(&st->applied_lsn);
	pthread_mutex_lock(&st->q.mu);
	o->pending_bytes = st->q.bytes;
	pthread_mutex_unlock(&st->q.mu);
}

bool pg_store_writable(struct pg_store *st)
{
	return !st->journal_failing &&
	       !atomic_load_explicit(&st->apply_failing, memory_order_relaxed);
}

const struct pg_histogram *pg_store_apply_histogram(struct pg_store *st)
{
	return &st->apply_seconds;
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
	store_pending_trim(st);
	return done;
}

int pg_store_test_hold_applier(struct pg_store *st, bool hold)
{
	return store_faulty_hold(st->writer, hold) == 0 ? PG_OK : PG_ERR_INVALID;
}
