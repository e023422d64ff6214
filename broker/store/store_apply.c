/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store thread: takes journaled records off the queue and applies them
 * to the database (the backend, internal/store_backend.h) in one batch per
 * transaction (up to STORE_BATCH_MAX records), committed with the last
 * applied LSN, so a crash between the journal write and the commit is
 * repaired by replay. Each committed batch's duration (begin to commit,
 * CLOCK_MONOTONIC) goes into st->apply_seconds (pg_store_apply_histogram).
 * Once a second it also expires messages, prunes the dedup window and
 * removes journal segments that are fully applied.
 *
 * A failed transaction (disk full, database locked or read-only, I/O
 * error) is rolled back and retried with the same batch after a pause that
 * doubles up to STORE_RETRY_MAX_MS: records are never dropped, and the
 * journal still holds them should the process die meanwhile. The broker
 * thread never waits for this thread: store_queue_admit refuses a record
 * once the backlog is at its bound (PG_ERR_BUSY), before it is journaled.
 * On stop, a store that keeps failing is given STORE_STOP_MS; what it could
 * not apply stays in the journal and is replayed at the next open.
 *
 * Logging goes through pg_log (log.h), which queues this thread's lines for
 * the broker thread: at most one line per STORE_LOG_EVERY_MS for repeated
 * failures, plus one when the store recovers.
 *
 * Scheduling: the thread runs SCHED_BATCH at nice 19 (Linux), i.e. as
 * background work. It competes for the cores with the broker thread and
 * with the clients, whose messages wait while it holds a core: a batch
 * (about 15 us a record) ran 2 ms at a time every nap at 5,000 msg/s, and
 * a tenth of the messages were late by that much (docs/performance.md). A
 * batch thread waking from its nap preempts nobody, and at nice 19 any
 * thread that wakes while it runs takes the core. Whenever a core is free
 * it runs at full speed; on a machine whose every core is saturated it gets
 * a small share, the backlog grows and new stored sends get PG_ERR_BUSY at
 * the bound, which sheds load until it catches up (SCHED_IDLE would give
 * it no share at all). Any thread may lower its own priority without
 * privileges (and cannot raise it again); where this is refused, nothing
 * changes.
 */
#define _GNU_SOURCE /* SCHED_BATCH */
#include "store_internal.h"

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static int64_t apply_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An absolute CLOCK_REALTIME time ms from now, for pthread_cond_timedwait. */
static struct timespec apply_deadline(long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
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

int store_queue_admit(struct pg_store *st, size_t len, bool append)
{
	struct store_queue *q = &st->q;
	size_t max_records = st->cfg.backlog_max;
	size_t max_bytes = st->cfg.backlog_max_bytes;
	int rc = PG_OK;

	if (!append) {
		max_records += STORE_BACKLOG_RESERVE;
		max_bytes += STORE_BACKLOG_RESERVE_BYTES;
	}
	pthread_mutex_lock(&q->mu);
	if (q->count >= max_records || q->bytes + len > max_bytes) {
		rc = PG_ERR_BUSY;
	} else if (q->count == q->cap && queue_grow(q) != 0) {
		rc = PG_ERR_NOMEM;
	}
	pthread_mutex_unlock(&q->mu);
	return rc;
}

void store_queue_push(struct pg_store *st, struct store_item *item)
{
	struct store_queue *q = &st->q;
	bool wake;

	pthread_mutex_lock(&q->mu);
	/* store_queue_admit made room, and only this thread adds items. */
	q->items[(q->head + q->count) % q->cap] = item;
	q->count++;
	q->bytes += item->len;
	wake = q->idle;
	pthread_mutex_unlock(&q->mu);
	if (wake) {
		pthread_cond_signal(&q->wake);
	}
}

int store_apply_packed(struct pg_store *st, const uint8_t *data, size_t len)
{
	Pigeon__Journal__Record *rec = pigeon__journal__record__unpack(NULL, len, data);
	int rc;

	if (rec == NULL) {
		/* Cannot happen for a frame whose CRC matched; skip rather than wedge. */
		return 0;
	}
	if ((rec->change_case == PIGEON__JOURNAL__RECORD__CHANGE_APPEND && rec->append->envelope &&
	     rec->append->envelope->seq > INT64_MAX) ||
	    (rec->change_case == PIGEON__JOURNAL__RECORD__CHANGE_CURSOR &&
	     rec->cursor->seq > INT64_MAX)) {
		/* Beyond the seq space (store.c refuses to give one out): a corrupt
		 * record that SQLite's signed INTEGER could not hold. */
		pg_log(PG_LOG_WARNING,
		       "pigeon store: skipping journal record %llu: seq beyond 2^63-1",
		       (unsigned long long)rec->lsn);
		pigeon__journal__record__free_unpacked(rec, NULL);
		return 0;
	}
	rc = st->writer->ops->batch_apply(st->writer, rec);
	pigeon__journal__record__free_unpacked(rec, NULL);
	return rc;
}

/*
 * One batch over items[0..n). 0, or -1: nothing of it stays in the
 * database, and st->apply_errmsg says why.
 */
static int apply_batch(struct pg_store *st, struct store_item **items, size_t n)
{
	struct store_be *w = st->writer;
	uint64_t last = 0, capped = 0;
	struct timespec t0, t1;
	size_t i;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (w->ops->batch_begin(w) != 0) {
		goto fail;
	}
	for (i = 0; i < n; i++) {
		if (store_apply_packed(st, items[i]->data, items[i]->len) != 0) {
			w->ops->batch_abort(w);
			goto fail;
		}
		last = items[i]->lsn;
	}
	if (w->ops->batch_commit(w, last, &capped) != 0) {
		goto fail;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pg_histogram_observe(&st->apply_seconds, (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000 +
	                                                    (t1.tv_nsec - t0.tv_nsec) / 1000));
	if (capped) {
		atomic_fetch_add(&st->capped, capped);
	}
	atomic_store(&st->applied_lsn, last);
	return 0;
fail:
	snprintf(st->apply_errmsg, sizeof(st->apply_errmsg), "%s", w->ops->errmsg(w));
	return -1;
}

static void apply_housekeeping(struct pg_store *st)
{
	struct store_be *w = st->writer;
	int64_t now = apply_now_ms();
	uint64_t n = 0;
	int rc = w->ops->expire(w, now, 10000, now - (int64_t)st->cfg.dedup_window_s * 1000, &n);

	/* Not started (1: the database is held elsewhere) is no error: the batches count that. */
	if (rc == 0) {
		atomic_fetch_add(&st->expired, n);
	} else if (rc < 0) {
		atomic_fetch_add(&st->apply_errors, 1);
	}
	pg_journal_trim(st->db_path, atomic_load(&st->applied_lsn));
}

/* Logs a failed batch: the first of a run at once, then one line per STORE_LOG_EVERY_MS. */
static void apply_log_failure(struct pg_store *st, size_t n, uint64_t failures, int64_t *logged_ms)
{
	int64_t now = apply_now_ms();

	if (failures > 1 && now - *logged_ms < STORE_LOG_EVERY_MS) {
		return;
	}
	*logged_ms = now;
	pg_log(PG_LOG_ERR,
	       "pigeon store: applying %zu journaled records to SQLite failed: %s (%llu failed "
	       "attempts so far; retrying; they are safe in the journal)",
	       n, st->apply_errmsg, (unsigned long long)failures);
}

static void apply_set_background_priority(void)
{
#ifdef SCHED_BATCH
	struct sched_param sp = {.sched_priority = 0};

	(void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
#endif
	/* Linux: PRIO_PROCESS with a thread id sets that thread's nice value only. */
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), STORE_THREAD_NICE);
}

static void *store_thread_main(void *arg)
{
	struct pg_store *st = arg;
	struct store_queue *q = &st->q;
	struct store_item **batch = st->apply_items;
	int64_t last_house = apply_now_ms(), stop_ms = 0, logged_ms = 0;
	uint64_t failures = 0, recovered;
	long retry_ms = STORE_RETRY_MIN_MS;
	size_t n, i, bytes, left;

	apply_set_background_priority();
	for (;;) {
		pthread_mutex_lock(&q->mu);
		/*
		 * Nap briefly without asking to be woken, so that under load the
		 * broker thread never pays a wake-up per message and batches
		 * grow; only a store thread that found nothing after its nap
		 * sleeps "idle", and the broker signals it then.
		 */
		if (q->count < STORE_BATCH_MAX && !q->stop) {
			struct timespec ts = apply_deadline(STORE_NAP_MS);
			pthread_cond_timedwait(&q->wake, &q->mu, &ts);
		}
		while (q->count == 0 && !q->stop) {
			struct timespec ts = apply_deadline(1000);
			q->idle = true;
			pthread_cond_timedwait(&q->wake, &q->mu, &ts);
			q->idle = false;
			if (apply_now_ms() - last_house >= 1000) {
				break;
			}
		}
		if (q->stop && stop_ms == 0) {
			stop_ms = apply_now_ms();
		}
		if (q->stop && (q->count == 0 ||
		                (failures > 0 && apply_now_ms() - stop_ms >= STORE_STOP_MS))) {
			n = q->count;
			pthread_mutex_unlock(&q->mu);
			if (n > 0) {
				pg_log(PG_LOG_WARNING,
				       "pigeon store: stopping with %zu records not yet in SQLite; "
				       "they stay in the journal and are applied at the next start",
				       n);
			}
			break;
		}
		/* Look at (not take) the oldest items: they leave the queue once committed. */
		n = q->count < STORE_BATCH_MAX ? q->count : STORE_BATCH_MAX;
		for (i = 0; i < n; i++) {
			batch[i] = q->items[(q->head + i) % q->cap];
		}
		pthread_mutex_unlock(&q->mu);

		if (n > 0) {
			if (apply_batch(st, batch, n) != 0) {
				struct timespec ts = apply_deadline(retry_ms);
				failures++;
				atomic_fetch_add(&st->apply_errors, 1);
				atomic_store(&st->apply_failing, true);
				apply_log_failure(st, n, failures, &logged_ms);
				pthread_mutex_lock(&q->mu);
				if (!q->stop) {
					pthread_cond_timedwait(&q->wake, &q->mu, &ts);
				}
				pthread_mutex_unlock(&q->mu);
				retry_ms = retry_ms * 2 > STORE_RETRY_MAX_MS ? STORE_RETRY_MAX_MS
				                                             : retry_ms * 2;
				continue;
			}
			/* Not failing any more by the time anyone sees the queue shrink. */
			recovered = failures;
			failures = 0;
			retry_ms = STORE_RETRY_MIN_MS;
			atomic_store(&st->apply_failing, false);
			for (i = 0, bytes = 0; i < n; i++) {
				bytes += batch[i]->len;
			}
			pthread_mutex_lock(&q->mu);
			q->head = (q->head + n) % q->cap;
			q->count -= n;
			q->bytes -= bytes;
			left = q->count;
			pthread_cond_broadcast(&q->applied);
			pthread_mutex_unlock(&q->mu);
			for (i = 0; i < n; i++) {
				free(batch[i]);
			}
			if (recovered > 0) {
				pg_log(PG_LOG_NOTICE,
				       "pigeon store: SQLite writes work again after %llu failed "
				       "attempts (%zu records applied, %zu still queued)",
				       (unsigned long long)recovered, n, left);
			}
		}
		if (apply_now_ms() - last_house >= 1000) {
			apply_housekeeping(st);
			last_house = apply_now_ms();
		}
	}
	return NULL;
}

int store_thread_start(struct pg_store *st)
{
	st->apply_items = calloc(STORE_BATCH_MAX, sizeof(*st->apply_items));
	if (st->apply_items == NULL) {
		errno = ENOMEM;
		return -1;
	}
	if (pthread_create(&st->thread, NULL, store_thread_main, st) != 0) {
		free(st->apply_items);
		st->apply_items = NULL;
		return -1;
	}
	st->thread_started = true;
	return 0;
}

void store_thread_stop(struct pg_store *st)
{
	if (st->thread_started) {
		pthread_mutex_lock(&st->q.mu);
		st->q.stop = true;
		pthread_mutex_unlock(&st->q.mu);
		pthread_cond_signal(&st->q.wake);
		pthread_join(st->thread, NULL);
		st->thread_started = false;
	}
	free(st->apply_items);
	st->apply_items = NULL;
}
