/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-user cache: each user's head seq, stored notification of each
 * type and device cursors, loaded from the backend on first use and
 * released once the user is idle and everything of theirs is applied.
 * Accepting a message then costs no database access.
 *
 * Thread: the broker thread only. Ownership: st->users owns every
 * struct store_user, and each user its slots and cursors.
 */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "ident.h"

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

void store_user_free(struct store_user *u)
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

/* The in-memory state of uid, loaded from the backend on first use. NULL on failure. */
struct store_user *store_user_get(struct pg_store *st, const char *uid)
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
	 * Everything of this user is in the backend: records journaled since open
	 * were made from this in-memory state, which did not exist yet.
	 */
	if (st->reader->ops->load_user(st->reader, uid, &u->head, load_slot, load_cursor, u) != 0) {
		store_user_free(u);
		return NULL;
	}
	u->used_ms = store_now_ms();
	HASH_ADD_STR(st->users, uid, u);
	st->users_cached++;
	return u;
}

/*
 * Drops idle users' state from memory. Only users with every record applied
 * (no pending entry, no cursor move still queued): the backend has all of theirs,
 * and a reload rebuilds the same state.
 */
void store_user_evict_idle(struct pg_store *st, int64_t now_ms)
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
