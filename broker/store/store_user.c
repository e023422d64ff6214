/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-user cache: each user's head seq, stored notification of each
 * type and device cursors, loaded from the backend on first use and
 * released once the user is idle and everything of theirs is applied.
 * Accepting a message then costs no database access.
 *
 * Bounded: the users are also on a list in order of use (st->lru_head is
 * the least recently used), so the tick's idle sweep stops at the first
 * user in use, and a load beyond cfg.users_max evicts the least recently
 * used ones that have everything applied. A broker that has seen a million
 * users keeps at most users_max of them (plus those with records still on
 * their way to the database, bounded by the backlog).
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

static void lru_unlink(struct pg_store *st, struct store_user *u)
{
	if (u->lru_prev) {
		u->lru_prev->lru_next = u->lru_next;
	} else {
		st->lru_head = u->lru_next;
	}
	if (u->lru_next) {
		u->lru_next->lru_prev = u->lru_prev;
	} else {
		st->lru_tail = u->lru_prev;
	}
	u->lru_prev = u->lru_next = NULL;
}

static void lru_append(struct pg_store *st, struct store_user *u)
{
	u->lru_prev = st->lru_tail;
	u->lru_next = NULL;
	if (st->lru_tail) {
		st->lru_tail->lru_next = u;
	} else {
		st->lru_head = u;
	}
	st->lru_tail = u;
}

/* Everything of u is in the backend: a reload rebuilds the same state. */
static bool user_evictable(const struct store_user *u, uint64_t applied)
{
	return u->pending_head == NULL && u->last_lsn <= applied;
}

static void user_evict(struct pg_store *st, struct store_user *u)
{
	lru_unlink(st, u);
	HASH_DEL(st->users, u);
	store_user_free(u);
	st->users_cached--;
}

/*
 * Over the bound: evicts from the least recently used end (never keep, just
 * loaded). A user passed over (records not yet applied: journaled moments
 * ago) counts as just used and goes to the other end, so that such users
 * cannot hide the evictable ones behind them and the list stays in used_ms
 * order.
 */
static void users_trim(struct pg_store *st, struct store_user *keep)
{
	uint32_t max = st->cfg.users_max ? st->cfg.users_max : STORE_USERS_MAX_DEFAULT;
	uint64_t applied = atomic_load(&st->applied_lsn);
	struct store_user *u = st->lru_head, *next;
	int scanned = 0;

	while (st->users_cached > max && u != NULL && u != keep &&
	       scanned++ < STORE_USER_EVICT_SCAN) {
		next = u->lru_next;
		if (user_evictable(u, applied)) {
			user_evict(st, u);
		} else {
			u->used_ms = keep->used_ms;
			lru_unlink(st, u);
			lru_append(st, u);
		}
		u = next;
	}
}

struct store_user *store_user_get(struct pg_store *st, const char *uid)
{
	size_t len = strlen(uid);
	struct store_user *u;

	HASH_FIND(hh, st->users, uid, len, u);
	if (u != NULL) {
		u->used_ms = store_now_ms();
		if (u != st->lru_tail) {
			lru_unlink(st, u);
			lru_append(st, u);
		}
		return u;
	}
	u = calloc(1, sizeof(*u) + len + 1);
	if (u == NULL) {
		return NULL;
	}
	memcpy(u->uid, uid, len + 1);
	/*
	 * Everything of this user is in the backend: records journaled since open
	 * were made from this in-memory state, which did not exist yet.
	 */
	if (st->reader->ops->load_user(st->reader, uid, &u->head, load_slot, load_cursor, u) != 0) {
		store_user_free(u);
		return NULL;
	}
	u->used_ms = store_now_ms();
	HASH_ADD_KEYPTR(hh, st->users, u->uid, len, u);
	lru_append(st, u);
	st->users_cached++;
	users_trim(st, u);
	return u;
}

/*
 * Drops idle users' state from memory. Only users with every record applied
 * (no pending entry, no cursor move still queued): the backend has all of theirs,
 * and a reload rebuilds the same state. The list is in order of use, so the
 * sweep ends at the first user used within STORE_USER_IDLE_MS.
 */
void store_user_evict_idle(struct pg_store *st, int64_t now_ms)
{
	uint64_t applied = atomic_load(&st->applied_lsn);
	struct store_user *u = st->lru_head, *next;

	while (u != NULL && now_ms - u->used_ms > STORE_USER_IDLE_MS) {
		next = u->lru_next;
		if (user_evictable(u, applied)) {
			user_evict(st, u);
		}
		u = next;
	}
}
