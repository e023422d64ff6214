/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pending entries. A journaled record is invisible to the backend's readers
 * until the store thread commits it, so every accepted append (and every
 * delete it implies: a replaced notification) is also kept as a pending
 * entry, in LSN order both per user and globally. Sync reads the backend,
 * then merges the user's pending entries by seq (store_sync.c); entries
 * whose LSN is applied are dropped here. The applied LSN is read *before*
 * the backend's snapshot, so an entry is dropped only once the backend
 * surely has it; if the store thread commits in between, the merge sees a
 * seq twice and keeps it once.
 *
 * Thread: the broker thread only (applied_lsn is the store thread's,
 * read atomically). Ownership: the global FIFO (st->fifo_head) owns every
 * entry; a user's list only links them.
 */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#include <uthash.h>

struct store_pending *store_pending_new(struct pg_store *st, struct store_user *u, uint64_t lsn,
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

void store_pending_link(struct pg_store *st, struct store_pending *p)
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

void store_pending_trim(struct pg_store *st)
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

void store_pending_free_all(struct pg_store *st)
{
	struct store_pending *p, *pn;

	for (p = st->fifo_head; p; p = pn) {
		pn = p->next_fifo;
		free(p);
	}
	st->fifo_head = st->fifo_tail = NULL;
}
