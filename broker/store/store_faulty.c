/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A backend that wraps another (store_be_config.inner) and fails on demand,
 * for tests: while its writer is held (store_faulty_hold, reached through
 * pg_store_test_hold_applier), every batch_begin fails and expire does not
 * start, as with a database another process holds locked; like taking such
 * a lock, holding waits for a batch already under way to end. The store thread
 * then retries as it would, and every record accepted meanwhile lives only
 * in the journal and the broker thread's pending entries, whatever the
 * database underneath. Everything else is passed through.
 *
 * Thread: hold is set from any thread (under mu, which a batch keeps from
 * batch_begin to its end); the rest follows the wrapped connection's rules. Ownership: a faulty
 * connection owns the one it wraps.
 */
#include "store_backend.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct store_faulty {
	struct store_be be; /* first: the interface's view */
	struct store_be *inner;
	pthread_mutex_t mu; /* held from batch_begin to the batch's end, and by expire */
	_Atomic bool hold;
	bool failed; /* the last call failed here, not in inner */
};

/* How long a held batch_begin takes to fail. */
#define FAULTY_WAIT_MS 10
#define FAULTY_ERRMSG "held by a test (pg_store_test_hold_applier)"

static struct store_faulty *faulty_of(struct store_be *be)
{
	return (struct store_faulty *)be;
}

/* The wrapped connection, for a call passed through. */
static struct store_be *faulty_inner(struct store_be *be)
{
	struct store_faulty *f = faulty_of(be);

	f->failed = false;
	return f->inner;
}

static struct store_be *faulty_open(const struct store_be_config *cfg, enum store_be_role role,
                                    char *err, size_t errlen)
{
	struct store_faulty *f;

	if (cfg->inner == NULL || cfg->inner == &store_faulty_ops) {
		snprintf(err, errlen, "the faulty store backend needs another backend to wrap");
		return NULL;
	}
	f = calloc(1, sizeof(*f));
	if (f == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	f->inner = cfg->inner->open(cfg, role, err, errlen);
	if (f->inner == NULL) {
		free(f);
		return NULL;
	}
	pthread_mutex_init(&f->mu, NULL);
	f->be.ops = &store_faulty_ops;
	return &f->be;
}

static void faulty_close(struct store_be *be)
{
	struct store_faulty *f = faulty_of(be);

	if (f == NULL) {
		return;
	}
	f->inner->ops->close(f->inner);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

static const char *faulty_errmsg(struct store_be *be)
{
	struct store_faulty *f = faulty_of(be);

	return f->failed ? FAULTY_ERRMSG : f->inner->ops->errmsg(f->inner);
}

static int faulty_get_applied(struct store_be *be, uint64_t *lsn)
{
	struct store_be *in = faulty_inner(be);

	return in->ops->get_applied(in, lsn);
}

static int faulty_batch_begin(struct store_be *be)
{
	struct store_faulty *f = faulty_of(be);
	struct store_be *in = faulty_inner(be);

	pthread_mutex_lock(&f->mu);
	if (atomic_load(&f->hold)) {
		pthread_mutex_unlock(&f->mu);
		f->failed = true;
		/* A lock wait, shortened: a stopping store retries without pausing. */
		nanosleep(&(struct timespec){.tv_nsec = FAULTY_WAIT_MS * 1000000L}, NULL);
		return -1;
	}
	if (in->ops->batch_begin(in) != 0) {
		pthread_mutex_unlock(&f->mu);
		return -1;
	}
	return 0;
}

static int faulty_batch_apply(struct store_be *be, const Pigeon__Journal__Record *rec)
{
	struct store_be *in = faulty_inner(be);

	return in->ops->batch_apply(in, rec);
}

static int faulty_batch_commit(struct store_be *be, uint64_t applied_lsn, uint64_t *capped)
{
	struct store_be *in = faulty_inner(be);
	int rc = in->ops->batch_commit(in, applied_lsn, capped);

	pthread_mutex_unlock(&faulty_of(be)->mu);
	return rc;
}

static void faulty_batch_abort(struct store_be *be)
{
	struct store_be *in = faulty_inner(be);

	in->ops->batch_abort(in);
	pthread_mutex_unlock(&faulty_of(be)->mu);
}

static int faulty_expire(struct store_be *be, int64_t now_ms, int max, int64_t dedup_before_ms,
                         uint64_t *expired)
{
	struct store_faulty *f = faulty_of(be);
	struct store_be *in = faulty_inner(be);

	int rc;

	pthread_mutex_lock(&f->mu);
	if (atomic_load(&f->hold)) {
		pthread_mutex_unlock(&f->mu);
		*expired = 0;
		f->failed = true;
		return 1;
	}
	rc = in->ops->expire(in, now_ms, max, dedup_before_ms, expired);
	pthread_mutex_unlock(&f->mu);
	return rc;
}

static int faulty_load_user(struct store_be *be, const char *uid, uint64_t *head,
                            store_be_slot_fn slot, store_be_cursor_fn cursor, void *ud)
{
	struct store_be *in = faulty_inner(be);

	return in->ops->load_user(in, uid, head, slot, cursor, ud);
}

static int faulty_range(struct store_be *be, const char *uid, uint64_t after, int64_t now_ms,
                        uint32_t limit, store_be_row_fn fn, void *ud)
{
	struct store_be *in = faulty_inner(be);

	return in->ops->range(in, uid, after, now_ms, limit, fn, ud);
}

static int faulty_count_above(struct store_be *be, const char *uid, uint64_t seq, int64_t now_ms,
                              uint64_t *n)
{
	struct store_be *in = faulty_inner(be);

	return in->ops->count_above(in, uid, seq, now_ms, n);
}

static int faulty_nth_newest(struct store_be *be, const char *uid, uint64_t below, uint32_t n,
                             uint64_t *seq)
{
	struct store_be *in = faulty_inner(be);

	return in->ops->nth_newest(in, uid, below, n, seq);
}

static int faulty_dedup_find(struct store_be *be, const char *sender, const char *recipient,
                             const char *msg_id, int64_t since_ms, uint64_t *seq, bool *found)
{
	struct store_be *in = faulty_inner(be);

	return in->ops->dedup_find(in, sender, recipient, msg_id, since_ms, seq, found);
}

static int faulty_dedup_keys(struct store_be *be, int64_t since_ms,
                             void (*fn)(const char *sender, const char *recipient,
                                        const char *msg_id, void *ud),
                             void *ud)
{
	struct store_be *in = faulty_inner(be);

	return in->ops->dedup_keys(in, since_ms, fn, ud);
}

static int faulty_online_users(struct store_be *be, void (*fn)(const char *uid, void *ud), void *ud)
{
	struct store_be *in = faulty_inner(be);

	return in->ops->online_users(in, fn, ud);
}

const struct store_backend_ops store_faulty_ops = {
    .name = "faulty",
    .open = faulty_open,
    .close = faulty_close,
    .errmsg = faulty_errmsg,
    .get_applied = faulty_get_applied,
    .batch_begin = faulty_batch_begin,
    .batch_apply = faulty_batch_apply,
    .batch_commit = faulty_batch_commit,
    .batch_abort = faulty_batch_abort,
    .expire = faulty_expire,
    .load_user = faulty_load_user,
    .range = faulty_range,
    .count_above = faulty_count_above,
    .nth_newest = faulty_nth_newest,
    .dedup_find = faulty_dedup_find,
    .dedup_keys = faulty_dedup_keys,
    .online_users = faulty_online_users,
};

int store_faulty_hold(struct store_be *be, bool hold)
{
	struct store_faulty *f = faulty_of(be);

	if (be == NULL || be->ops != &store_faulty_ops) {
		return -1;
	}
	pthread_mutex_lock(&f->mu);
	atomic_store(&f->hold, hold);
	pthread_mutex_unlock(&f->mu);
	return 0;
}
