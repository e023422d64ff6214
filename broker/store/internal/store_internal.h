/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals shared by the store's files: store.c and the files of its
 * broker-thread concerns (store_user.c, store_pending.c, store_dedup.c,
 * store_replay.c, store_sync.c) and store_apply.c (the store thread). Not
 * part of libpigeon_store's interface.
 */
#ifndef PIGEON_STORE_INTERNAL_H
#define PIGEON_STORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uthash.h>

#include "bloom.h"
#include "histogram.h"
#include "ident.h"
#include "journal.h"
#include "protocol.h"
#include "store.h"
#include "store_backend.h"

/* One journal record on its way to the database; owned by the queue, then the store thread. */
struct store_item {
	uint64_t lsn;
	size_t len;
	uint8_t data[]; /* packed pigeon.journal.Record */
};

/*
 * Broker thread -> store thread: every record journaled and not yet
 * committed to the database (the backlog). Bounded by store_queue_admit; the
 * broker thread never waits on it.
 */
struct store_queue {
	pthread_mutex_t mu;
	pthread_cond_t wake;    /* items arrived, or stop */
	pthread_cond_t applied; /* a batch was committed */
	struct store_item **items;
	size_t head, count, cap;
	size_t bytes; /* sum of the items' len */
	bool stop;
	bool idle; /* the store thread waits for work */
};

/* Default backlog bound (pg_store_config.backlog_max, backlog_max_bytes). */
#define STORE_BACKLOG_DEFAULT 65536
#define STORE_BACKLOG_BYTES_DEFAULT (64u << 20)
/* Beyond the bound, room kept for acks and presence (small records). */
#define STORE_BACKLOG_RESERVE 8192
#define STORE_BACKLOG_RESERVE_BYTES (4u << 20)
#define STORE_BATCH_MAX 8192
/* The store thread's nice value: background work (store_apply.c, Scheduling). */
#define STORE_THREAD_NICE 19
/* How long the store thread naps between batches under load. */
#define STORE_NAP_MS 25
/* Pause before retrying a failed batch: doubles from min to max. */
#define STORE_RETRY_MIN_MS 100
#define STORE_RETRY_MAX_MS 2000
/* How long a failing store thread keeps trying once asked to stop. */
#define STORE_STOP_MS 2000
/* Repeated failures (or refusals) are logged at most once per this. */
#define STORE_LOG_EVERY_MS 10000
/* How long pg_store_flush waits at most. */
#define STORE_FLUSH_MAX_MS 10000

/* The contract's msg_id limit (common/protocol.h), also the dedup key's. */
#define STORE_MSG_ID_MAX PG_MSG_ID_MAX

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
	uint64_t head;
	uint64_t max_cursor; /* highest cursor of any device: what "acknowledged" means */
	struct notify_slot *slots;
	struct device_cursor *cursors;
	struct store_pending *pending_head, *pending_tail;
	uint64_t last_lsn; /* newest record journaled for this user (append or cursor) */
	int64_t used_ms;   /* last accept / ack / sync / head / unread */
	/* st->lru_head..lru_tail: every cached user, least recently used first. */
	struct store_user *lru_prev, *lru_next;
	UT_hash_handle hh;
	char uid[]; /* NUL-terminated */
};

/* Users untouched this long, with everything applied, leave memory (reloaded on use). */
#define STORE_USER_IDLE_MS (10 * 60 * 1000)
/*
 * Default bound of the user cache (pg_store_config.users_max): beyond it,
 * loading a user evicts the least recently used ones that have everything
 * applied, looking at no more than STORE_USER_EVICT_SCAN of them.
 */
#define STORE_USERS_MAX_DEFAULT 100000
#define STORE_USER_EVICT_SCAN 16

struct store_dedup {
	uint64_t lsn;
	uint64_t seq;
	int64_t created_ms;
	UT_hash_handle hh;
	size_t keylen;
	char key[]; /* from '\0' to '\0' msg_id */
};

#define STORE_DEDUP_KEY_MAX (2 * (PG_IDENT_MAX + 1) + STORE_MSG_ID_MAX)

struct pg_store {
	struct pg_store_config cfg;
	char *db_path;
	const struct store_backend_ops *be_ops;
	struct store_be_config be_cfg;
	struct store_be *reader; /* broker thread */
	struct store_be *writer; /* store thread (and open-time replay) */
	struct pg_journal *journal;
	uint64_t next_lsn;
	_Atomic uint64_t applied_lsn;

	struct store_user *users; /* uthash by uid */
	struct store_user *lru_head, *lru_tail;
	struct store_dedup *dedup; /* uthash: (from, msg_id) not yet applied */
	/*
	 * Every dedup key of the last one to two windows: generation `bloom_cur`
	 * takes new keys, the other holds the previous window's; they swap
	 * (the older cleared) once a window. A miss in both means "new" without
	 * asking the database.
	 */
	struct pg_bloom bloom[2];
	int bloom_cur;
	int64_t bloom_rotated_ms;
	int64_t evicted_ms;              /* last sweep of idle users */
	struct store_pending *fifo_head; /* every pending entry, in LSN order */
	struct store_pending *fifo_tail;

	struct store_queue q;
	pthread_t thread;
	bool thread_started;
	struct store_item **apply_items; /* the store thread's batch */

	/* broker-thread counters */
	uint64_t accepted, merged, duplicates, acks, syncs, busy, users_cached;
	int64_t busy_logged_ms;    /* last "backlog full" log line */
	uint64_t busy_unlogged;    /* refusals since that line */
	int64_t journal_logged_ms; /* last "journal write failed" log line */
	uint64_t journal_errors;
	bool journal_failing; /* the last journal append failed (pg_store_writable) */
	/* store-thread counters and state */
	_Atomic uint64_t expired, capped, apply_errors;
	_Atomic bool apply_failing;        /* the last batch failed: retrying */
	char apply_errmsg[256];            /* why it failed (store thread) */
	struct pg_histogram apply_seconds; /* committed batches' durations (store thread) */
};

/* store.c */
int64_t store_now_ms(void);

/* store_user.c */
/*
 * The in-memory state of uid, loaded from the backend on first use. NULL on
 * failure. Loading may evict other users (the cache bound): hold no other
 * struct store_user across a call.
 */
struct store_user *store_user_get(struct pg_store *st, const char *uid);
void store_user_free(struct store_user *u);
/*
 * Drops idle users' state from memory. Only users with every record applied
 * (no pending entry, no cursor move still queued): the backend has all of
 * theirs, and a reload rebuilds the same state. Costs O(users evicted).
 */
void store_user_evict_idle(struct pg_store *st, int64_t now_ms);

/* store_pending.c */
/* A pending entry not yet linked (owned by the caller until store_pending_link). NULL without
 * memory. */
struct store_pending *store_pending_new(struct pg_store *st, struct store_user *u, uint64_t lsn,
                                        uint64_t seq, bool is_delete, const uint8_t *env,
                                        size_t env_len, int64_t expires_at_ms);
/* Appends p to its user's list and the global FIFO, which then own it. */
void store_pending_link(struct pg_store *st, struct store_pending *p);
/* Drops pending entries (and dedup entries) the store thread has applied. */
void store_pending_trim(struct pg_store *st);
void store_pending_free_all(struct pg_store *st);

/* store_dedup.c */
/*
 * Whether (from, to, msg_id) was accepted within the window: 0 with *found
 * (and *seq, the original's), or -1 if the backend could not be read.
 */
int store_dedup_lookup(struct pg_store *st, const char *from, const char *to, const char *msg_id,
                       int64_t now_ms, uint64_t *seq, bool *found);
/* Remembers an accepted key until it is applied (a failed allocation only costs a lookup). */
void store_dedup_remember(struct pg_store *st, const char *from, const char *to, const char *msg_id,
                          uint64_t lsn, uint64_t seq, int64_t now_ms);
/*
 * Sets up the Bloom filters and loads the window's keys from the backend.
 * 0, or -1 with err set (store_dedup_free releases what was made).
 */
int store_dedup_open(struct pg_store *st, char *err, size_t errlen);
/* Swaps the filter generations once a window (the tick). */
void store_dedup_rotate(struct pg_store *st, int64_t now_ms);
void store_dedup_free(struct pg_store *st);

/* store_replay.c */
/*
 * Applies journal records that the backend does not have yet, in one
 * transaction; sets st->applied_lsn and st->next_lsn. 0, or -1 with err set
 * (rolled back: the database is as before).
 */
int store_replay(struct pg_store *st, char *err, size_t errlen);

/* store_apply.c */
int store_queue_init(struct store_queue *q);
void store_queue_destroy(struct store_queue *q);
/*
 * Whether one more record of len bytes may be journaled: PG_OK (and
 * room for it is made), PG_ERR_BUSY when the backlog is at its bound (for
 * an append; other records get STORE_BACKLOG_RESERVE more), PG_ERR_NOMEM.
 * Never waits for the store thread.
 */
int store_queue_admit(struct pg_store *st, size_t len, bool append);
/* Hands a journaled item to the store thread; store_queue_admit made room for it. */
void store_queue_push(struct pg_store *st, struct store_item *item);
int store_thread_start(struct pg_store *st);
/* Applies what is queued, then stops the thread. */
void store_thread_stop(struct pg_store *st);
/*
 * Applies one packed record to the writer's open batch. 0, or -1 (the
 * writer's errmsg says why; the batch stays open for batch_abort). An
 * unreadable record is skipped.
 */
int store_apply_packed(struct pg_store *st, const uint8_t *data, size_t len);

#endif
