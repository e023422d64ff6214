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

/* Broker thread -> store thread. Bounded: the broker waits when it is full. */
struct store_queue {
	pthread_mutex_t mu;
	pthread_cond_t wake;    /* items arrived, or stop */
	pthread_cond_t applied; /* a batch was committed */
	struct store_item **items;
	size_t head, count, cap;
	bool stop;
	bool idle; /* the store thread waits for work */
};

#define STORE_QUEUE_MAX 262144
#define STORE_BATCH_MAX 8192
/* How long the store thread naps between batches under load. */
#define STORE_NAP_MS 2

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

	/* broker-thread counters */
	uint64_t accepted, merged, duplicates, acks, syncs;
	/* store-thread counters */
	_Atomic uint64_t expired, capped, apply_errors;
};

/* store_apply.c */
int store_queue_init(struct store_queue *q);
void store_queue_destroy(struct store_queue *q);
/* Hands item to the store thread, waiting while the queue is full. */
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
