/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals shared by store.c (the broker-thread side) and store_apply.c
 * (the store thread). Not part of libpigeon's interface.
 */
#ifndef PIGEON_STORE_INTERNAL_H
#define PIGEON_STORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bloom.h"
#include "journal.h"
#include "store.h"
#include "store_db.h"

/* One journal record on its way to SQLite; owned by the queue, then the store thread. */
struct store_item {
	uint64_t lsn;
	size_t len;
	uint8_t data[]; /* packed pigeon.journal.Record */
};

/*
 * Broker thread -> store thread: every record journaled and not yet
 * committed to SQLite (the backlog). Bounded by store_queue_admit; the
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
/* How long the store thread naps between batches under load. */
#define STORE_NAP_MS 2
/* Pause before retrying a failed batch: doubles from min to max. */
#define STORE_RETRY_MIN_MS 100
#define STORE_RETRY_MAX_MS 2000
/* How long a failing store thread keeps trying once asked to stop. */
#define STORE_STOP_MS 2000
/* Repeated failures (or refusals) are logged at most once per this. */
#define STORE_LOG_EVERY_MS 10000
/* How long pg_store_flush waits at most. */
#define STORE_FLUSH_MAX_MS 10000

struct store_user;
struct store_pending;
struct store_dedup;

struct pg_store {
	struct pg_store_config cfg;
	char *db_path;
	struct store_db reader; /* broker thread */
	struct store_db writer; /* store thread (and open-time replay) */
	struct pg_journal *journal;
	uint64_t next_lsn;
	_Atomic uint64_t applied_lsn;

	struct store_user *users;  /* uthash by uid */
	struct store_dedup *dedup; /* uthash: (from, msg_id) not yet applied */
	/*
	 * Every dedup key of the last one to two windows: generation `bloom_cur`
	 * takes new keys, the other holds the previous window's; they swap
	 * (the older cleared) once a window. A miss in both means "new" without
	 * asking SQLite.
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
	/* store-thread counters and state */
	_Atomic uint64_t expired, capped, apply_errors;
	_Atomic bool apply_failing; /* the last batch failed: retrying */
	char apply_errmsg[256];     /* why it failed (store thread) */
};

/* store_apply.c */
int store_queue_init(struct store_queue *q);
void store_queue_destroy(struct store_queue *q);
/*
 * Whether one more record of len bytes may be journaled: PG_STORE_OK (and
 * room for it is made), PG_STORE_BUSY when the backlog is at its bound (for
 * an append; other records get STORE_BACKLOG_RESERVE more), PG_STORE_NOMEM.
 * Never waits for the store thread.
 */
enum pg_store_status store_queue_admit(struct pg_store *st, size_t len, bool append);
/* Hands a journaled item to the store thread; store_queue_admit made room for it. */
void store_queue_push(struct pg_store *st, struct store_item *item);
int store_thread_start(struct pg_store *st);
/* Applies what is queued, then stops the thread. */
void store_thread_stop(struct pg_store *st);
/*
 * Applies one packed record in the writer's open transaction, collecting
 * per-user changes in batch; store_apply_finish writes those (once per
 * transaction, before its commit).
 */
int store_apply_packed(struct pg_store *st, const uint8_t *data, size_t len,
                       struct store_batch *batch, uint64_t *lsn);
int store_apply_finish(struct pg_store *st, struct store_batch *batch);

#endif
