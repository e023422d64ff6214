/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The merged read path: sync, head and unread read the backend (what the
 * store thread has applied) and merge the user's pending entries (what is
 * journaled but not applied yet), so a read right after a send sees it.
 *
 * Thread: the broker thread only, on the reader connection. Ownership: a
 * SyncReply and its envelopes belong to the caller (pg_store_sync_free).
 */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "ident.h"

/*
 * A sync merges two seq-ascending streams: the user's database rows (read one
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
	size_t rows;       /* rows the database returned */
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

/*
 * The lowest seq max_per_user keeps once the user's pending records are
 * applied (0: nothing is dropped). The store thread enforces the cap at
 * each commit, so the database alone is within it; with appends pending,
 * a read would otherwise show more than the cap keeps, and messages that
 * the next commit drops (a client would take them, then be told by
 * oldest_seq that they were never there). The cap keeps the newest
 * max_per_user of what is left after pending deletes: the pending appends
 * (all newer than every row; counted whatever their expiry, as the cap
 * counts rows) and then rows below the first of them. Rows are bounded by
 * seq below that first append, so a commit landing meanwhile, which also
 * puts the appends into the database, changes nothing here.
 */
static int sync_retention_floor(struct pg_store *st, const struct store_user *u,
                                const struct sync_ctx *c, uint64_t *floor)
{
	uint32_t max = st->cfg.max_per_user, live = 0, want, n, skipped = 0;
	const struct store_pending *p, *first = NULL;
	uint64_t bound = 0, seq = 0;
	size_t i;

	*floor = 0;
	for (p = u->pending_head; p && max > 0; p = p->next_user) {
		if (p->is_delete) {
			continue;
		}
		bound = bound ? bound : p->seq;
		if (!sync_deleted(c, p->seq)) {
			first = first ? first : p;
			live++;
		}
	}
	if (first == NULL) {
		return 0; /* the database is within the cap, and nothing is added */
	}
	if (live >= max) {
		/* Past the live - max oldest live appends, to the next live one. */
		for (p = first, n = live; n > max; p = p->next_user) {
			n -= !p->is_delete && !sync_deleted(c, p->seq);
		}
		while (p->is_delete || sync_deleted(c, p->seq)) {
			p = p->next_user;
		}
		*floor = p->seq;
		return 0;
	}
	/* The want-th newest row below bound that no pending delete removes. */
	want = max - live;
	for (n = want;; n = want + skipped) {
		if (st->reader->ops->nth_newest(st->reader, u->uid, bound, n, &seq) != 0) {
			return -1;
		}
		if (seq == 0) {
			return 0; /* fewer rows than the cap leaves room for */
		}
		for (i = 0, skipped = 0; i < c->ndeleted; i++) {
			skipped += c->deleted[i] >= seq && c->deleted[i] < bound;
		}
		if (n == want + skipped) {
			break;
		}
	}
	*floor = seq;
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

int pg_store_sync(struct pg_store *st, const char *uid, uint64_t after_seq, uint32_t limit,
                  size_t max_bytes, int64_t now_ms, Pigeon__SyncReply **out)
{
	struct sync_ctx c = {0};
	Pigeon__SyncReply *r = NULL;
	struct store_user *u;
	const struct store_pending *p;
	uint64_t oldest = 0, floor = 0, sql_limit;
	size_t i;

	*out = NULL;
	if (!pg_ident_valid_str(uid) || limit == 0) {
		return PG_ERR_INVALID;
	}
	u = store_user_get(st, uid);
	if (u == NULL) {
		return PG_ERR_IO;
	}
	st->syncs++;
	store_pending_trim(st);
	r = calloc(1, sizeof(*r));
	c.msgs = calloc(limit, sizeof(*c.msgs));
	if (r == NULL || c.msgs == NULL || sync_collect_deletes(&c, u) != 0) {
		goto io;
	}
	pigeon__sync_reply__init(r);
	if (sync_retention_floor(st, u, &c, &floor) != 0) {
		goto io;
	}
	if (floor > 0 && after_seq < floor - 1) {
		after_seq = floor - 1; /* what retention is about to drop is not shown */
	}
	c.next = u->pending_head;
	c.after = after_seq;
	c.now_ms = now_ms;
	c.limit = limit;
	c.max_bytes = max_bytes;
	c.last_seq = after_seq;
	/* Enough rows for limit messages past the deleted ones, and one to tell "more". */
	sql_limit = (uint64_t)limit + c.ndeleted + 1;
	if (st->reader->ops->range(st->reader, uid, after_seq, now_ms, (uint32_t)sql_limit,
	                           sync_row, &c) != 0) {
		goto io;
	}
	if (!c.full && c.rows < sql_limit) {
		sync_pending_below(&c, UINT64_MAX);
	}
	/* Stopped at a message that did not fit, or the database may hold more than it returned. */
	r->more = c.full || c.rows >= sql_limit;
	r->messages = c.msgs;
	r->n_messages = c.n;
	c.msgs = NULL;

	r->head_seq = u->head;
	/*
	 * The lowest seq still stored. A replaced NOTIFY whose delete is still
	 * pending is in the database (and maybe among the pending appends) but is no
	 * longer stored: skip those, or oldest_seq would point at a hole. Of
	 * the ndeleted + 1 lowest rows at least one is not deleted.
	 */
	if (st->reader->ops->range(st->reader, uid, 0, now_ms, (uint32_t)c.ndeleted + 1,
	                           sync_oldest_row, &c) != 0) {
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
	if (oldest != 0 && oldest < floor) {
		oldest = floor;
	}
	r->oldest_seq = oldest ? oldest : u->head + 1;
	*out = r;
	return PG_OK;
io:
	for (i = 0; i < c.n; i++) {
		pigeon__envelope__free_unpacked(c.msgs[i], NULL);
	}
	free(c.msgs);
	free(c.deleted);
	free(r);
	return PG_ERR_IO;
}

int pg_store_head(struct pg_store *st, const char *uid, uint64_t *head)
{
	struct store_user *u;

	if (!pg_ident_valid_str(uid)) {
		return PG_ERR_INVALID;
	}
	u = store_user_get(st, uid);
	if (u == NULL) {
		return PG_ERR_IO;
	}
	*head = u->head;
	return PG_OK;
}

int pg_store_unread(struct pg_store *st, const char *uid, const char *device, int64_t now_ms,
                    uint64_t *cursor, uint64_t *unread)
{
	struct store_user *u;
	struct device_cursor *c;
	const struct store_pending *p;
	uint64_t n = 0;

	if (!pg_ident_valid_str(uid) || !pg_ident_valid_str(device)) {
		return PG_ERR_INVALID;
	}
	u = store_user_get(st, uid);
	if (u == NULL) {
		return PG_ERR_IO;
	}
	store_pending_trim(st);
	HASH_FIND_STR(u->cursors, device, c);
	*cursor = c ? c->seq : 0;
	if (st->reader->ops->count_above(st->reader, uid, *cursor, now_ms, &n) != 0) {
		return PG_ERR_IO;
	}
	for (p = u->pending_head; p; p = p->next_user) {
		if (p->seq <= *cursor) {
			continue;
		}
		/*
		 * A delete cancels the replaced message only if it was counted:
		 * neither the database's count nor the pending appends include an
		 * expired one (decrementing for it made a fresh notification
		 * replacing an expired one read as 0 unread until applied).
		 */
		if (p->is_delete && p->expires_at_ms > now_ms && n > 0) {
			n--;
		} else if (!p->is_delete && p->expires_at_ms > now_ms) {
			n++;
		}
	}
	/* Retention keeps the newest max_per_user, so at most that many are above the cursor. */
	if (st->cfg.max_per_user > 0 && n > st->cfg.max_per_user) {
		n = st->cfg.max_per_user;
	}
	*unread = n;
	return PG_OK;
}
