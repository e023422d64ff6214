/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Journal replay at open: applies, in one transaction, every journal record
 * after the backend's applied position, so a crash between a journal write
 * and the store thread's commit loses nothing. Runs before the store thread
 * starts and before the broker accepts clients.
 *
 * Thread: the opening thread, alone (the writer connection is not shared
 * yet). Ownership: records are borrowed from the journal's callback.
 */
#include "store_internal.h"

#include <stdio.h>

#include "journal.pb-c.h"
#include "log.h"

struct replay_ctx {
	struct pg_store *st;
	uint64_t applied;
	uint64_t max_lsn;
	uint64_t replayed;
	int rc;
};

static int replay_one(const uint8_t *payload, size_t len, void *ud)
{
	struct replay_ctx *rc = ud;
	Pigeon__Journal__Record *rec = pigeon__journal__record__unpack(NULL, len, payload);
	uint64_t lsn;

	if (rec == NULL) {
		return 0;
	}
	lsn = rec->lsn;
	pigeon__journal__record__free_unpacked(rec, NULL);
	if (lsn > rc->max_lsn) {
		rc->max_lsn = lsn;
	}
	if (lsn <= rc->applied) {
		return 0;
	}
	rc->rc = store_apply_packed(rc->st, payload, len);
	if (rc->rc != 0) {
		return 1;
	}
	rc->replayed++;
	return 0;
}

int store_replay(struct pg_store *st, char *err, size_t errlen)
{
	struct replay_ctx ctx = {.st = st};
	int torn = 0;

	struct store_be *w = st->writer;
	uint64_t capped = 0;

	if (w->ops->get_applied(w, &ctx.applied) != 0) {
		snprintf(err, errlen, "reading applied_lsn: %s", w->ops->errmsg(w));
		return -1;
	}
	ctx.max_lsn = ctx.applied;
	if (w->ops->batch_begin(w) != 0) {
		snprintf(err, errlen, "replay: %s", w->ops->errmsg(w));
		return -1;
	}
	if (pg_journal_replay(st->db_path, replay_one, &ctx, &torn, err, errlen) < 0 ||
	    ctx.rc != 0) {
		if (ctx.rc != 0) {
			snprintf(err, errlen, "replaying the journal: %s", w->ops->errmsg(w));
		}
		w->ops->batch_abort(w);
		return -1;
	}
	if (w->ops->batch_commit(w, ctx.max_lsn, &capped) != 0) {
		snprintf(err, errlen, "replay commit: %s", w->ops->errmsg(w));
		return -1;
	}
	if (capped) {
		atomic_fetch_add(&st->capped, capped);
	}
	if (ctx.replayed > 0 || torn > 0) {
		pg_log(PG_LOG_NOTICE, "pigeon store: replayed %llu journal records%s",
		       (unsigned long long)ctx.replayed,
		       torn ? " (a torn tail was ignored: records after it were never acknowledged "
		              "with sync=full)"
		            : "");
	}
	atomic_store(&st->applied_lsn, ctx.max_lsn);
	st->next_lsn = ctx.max_lsn + 1;
	return 0;
}
