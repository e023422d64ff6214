/*
 * The store thread: takes journaled records off the queue and applies them
 * to SQLite in one transaction per batch (up to STORE_BATCH_MAX records),
 * recording the last applied LSN in the same transaction, so a crash between
 * the journal write and the SQLite commit is repaired by replay. Once a
 * second it also expires messages, prunes the dedup window and removes
 * journal segments that are fully applied.
 *
 * A failed transaction (disk full, I/O error) is rolled back and retried
 * with the same batch after a pause: records are never dropped, and the
 * journal still holds them should the process die meanwhile.
 */
#include "store_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t apply_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int store_queue_init(struct store_queue *q)
{
	memset(q, 0, sizeof(*q));
	q->cap = 1024;
	q->items = calloc(q->cap, sizeof(*q->items));
	if (q->items == NULL) {
		return -1;
	}
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->wake, NULL);
	pthread_cond_init(&q->applied, NULL);
	return 0;
}

void store_queue_destroy(struct store_queue *q)
{
	size_t i;

	for (i = 0; i < q->count; i++) {
		free(q->items[(q->head + i) % q->cap]);
	}
	free(q->items);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->wake);
	pthread_cond_destroy(&q->applied);
}

static int queue_grow(struct store_queue *q)
{
	size_t ncap = q->cap * 2, i;
	struct store_item **ni = calloc(ncap, sizeof(*ni));

	if (ni == NULL) {
		return -1;
	}
	for (i = 0; i < q->count; i++) {
		ni[i] = q->items[(q->head + i) % q->cap];
	}
	free(q->items);
	q->items = ni;
	q->cap = ncap;
	q->head = 0;
	return 0;
}

void store_queue_push(struct pg_store *st, struct store_item *item)
{
	struct store_queue *q = &st->q;
	bool wake;

	pthread_mutex_lock(&q->mu);
	/* Backpressure: the broker waits rather than grow memory without bound. */
	while (q->count >= STORE_QUEUE_MAX || (q->count == q->cap && queue_grow(q) != 0)) {
		pthread_cond_wait(&q->applied, &q->mu);
	}
	q->items[(q->head + q->count) % q->cap] = item;
	q->count++;
	wake = q->idle;
	pthread_mutex_unlock(&q->mu);
	if (wake) {
		pthread_cond_signal(&q->wake);
	}
}

int store_apply_packed(struct pg_store *st, const uint8_t *data, size_t len,
                       struct store_batch *batch, uint64_t *lsn)
{
	Pigeon__Journal__Record *rec = pigeon__journal__record__unpack(NULL, len, data);
	int rc;

	if (rec == NULL) {
		/* Cannot happen for a frame whose CRC matched; skip rather than wedge. */
		return SQLITE_OK;
	}
	*lsn = rec->lsn;
	rc = store_db_apply(&st->writer, rec, batch);
	pigeon__journal__record__free_unpacked(rec, NULL);
	return rc;
}

int store_apply_finish(struct pg_store *st, struct store_batch *batch)
{
	int rc = store_db_batch_finish(&st->writer, batch, st->cfg.max_per_user);

	if (rc == SQLITE_OK && batch->capped) {
		atomic_fetch_add(&st->capped, batch->capped);
	}
	batch->capped = 0;
	return rc;
}

/* One transaction over items[0..n). Returns the SQLite result. */
static int apply_batch(struct pg_store *st, struct store_item **items, size_t n)
{
	struct store_batch batch = {0};
	uint64_t lsn = 0, last = 0;
	size_t i;
	int rc = store_db_exec_simple(&st->writer, SQL_BEGIN);

	for (i = 0; rc == SQLITE_OK && i < n; i++) {
		rc = store_apply_packed(st, items[i]->data, items[i]->len, &batch, &lsn);
		last = items[i]->lsn;
	}
	if (rc == SQLITE_OK) {
		rc = store_apply_finish(st, &batch);
	} else {
		store_db_batch_finish(&st->writer, &batch, 0); /* frees it; rolled back below */
	}
	if (rc == SQLITE_OK) {
		rc = store_db_set_applied(&st->writer, last);
	}
	if (rc == SQLITE_OK) {
		rc = store_db_exec_simple(&st->writer, SQL_COMMIT);
	}
	if (rc != SQLITE_OK) {
		store_db_exec_simple(&st->writer, SQL_ROLLBACK);
		return rc;
	}
	atomic_store(&st->applied_lsn, last);
	return SQLITE_OK;
}

static void apply_housekeeping(struct pg_store *st)
{
	int64_t now = apply_now_ms();
	uint64_t n = 0;

	if (store_db_exec_simple(&st->writer, SQL_BEGIN) != SQLITE_OK) {
		return;
	}
	if (store_db_expire(&st->writer, now, 10000, &n) == SQLITE_OK &&
	    store_db_prune_dedup(&st->writer, now - (int64_t)st->cfg.dedup_window_s * 1000) ==
	        SQLITE_OK &&
	    store_db_exec_simple(&st->writer, SQL_COMMIT) == SQLITE_OK) {
		atomic_fetch_add(&st->expired, n);
	} else {
		store_db_exec_simple(&st->writer, SQL_ROLLBACK);
		atomic_fetch_add(&st->apply_errors, 1);
	}
	pg_journal_trim(st->db_path, atomic_load(&st->applied_lsn));
}

static void *store_thread_main(void *arg)
{
	struct pg_store *st = arg;
	struct store_queue *q = &st->q;
	struct store_item **batch = calloc(STORE_BATCH_MAX, sizeof(*batch));
	int64_t last_house = apply_now_ms();
	size_t n, i;

	if (batch == NULL) {
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&q->mu);
		/*
		 * Nap briefly without asking to be woken, so that under load the
		 * broker thread never pays a wake-up per message and batches
		 * grow; only a store thread that found nothing after its nap
		 * sleeps "idle", and the broker signals it then.
		 */
		if (q->count < STORE_BATCH_MAX && !q->stop) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += STORE_NAP_MS * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&q->wake, &q->mu, &ts);
		}
		while (q->count == 0 && !q->stop) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			q->idle = true;
			pthread_cond_timedwait(&q->wake, &q->mu, &ts);
			q->idle = false;
			if (apply_now_ms() - last_house >= 1000) {
				break;
			}
		}
		if (q->count == 0 && q->stop) {
			pthread_mutex_unlock(&q->mu);
			break;
		}
		/* Look at (not take) the oldest items: they leave the queue once committed. */
		n = q->count < STORE_BATCH_MAX ? q->count : STORE_BATCH_MAX;
		for (i = 0; i < n; i++) {
			batch[i] = q->items[(q->head + i) % q->cap];
		}
		pthread_mutex_unlock(&q->mu);

		if (n > 0) {
			if (apply_batch(st, batch, n) != SQLITE_OK) {
				struct timespec pause = {0, 100 * 1000 * 1000};
				atomic_fetch_add(&st->apply_errors, 1);
				fprintf(
				    stderr,
				    "pigeon store: applying %zu records failed: %s (retrying)\n", n,
				    store_db_errmsg(&st->writer));
				nanosleep(&pause, NULL);
				continue;
			}
			pthread_mutex_lock(&q->mu);
			q->head = (q->head + n) % q->cap;
			q->count -= n;
			pthread_cond_broadcast(&q->applied);
			pthread_mutex_unlock(&q->mu);
			for (i = 0; i < n; i++) {
				free(batch[i]);
			}
		}
		if (apply_now_ms() - last_house >= 1000) {
			apply_housekeeping(st);
			last_house = apply_now_ms();
		}
	}
	free(batch);
	return NULL;
}

int store_thread_start(struct pg_store *st)
{
	if (pthread_create(&st->thread, NULL, store_thread_main, st) != 0) {
		return -1;
	}
	st->thread_started = true;
	return 0;
}

void store_thread_stop(struct pg_store *st)
{
	if (!st->thread_started) {
		return;
	}
	pthread_mutex_lock(&st->q.mu);
	st->q.stop = true;
	pthread_mutex_unlock(&st->q.mu);
	pthread_cond_signal(&st->q.wake);
	pthread_join(st->thread, NULL);
	st->thread_started = false;
}
