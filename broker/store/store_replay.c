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
	struct store_batch batch;
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
	rc->rc = store_apply_packed(rc->st, payload, len, &rc->batch, &lsn);
	if (rc->rc != SQLITE_OK) {
		return 1;
	}
	rc->replayed++;
	return 0;
}

/* Applies journal records that SQLite does not have yet; sets st->next_lsn. */
int store_replay(struct pg_store *st, char *err, size_t errlen)
{
	struct replay_ctx ctx = {.st = st};
	int torn = 0;

	if (store_db_get_applied(&st->writer, &ctx.applied) != SQLITE_OK) {
		snprintf(err, errlen, "reading applied_lsn: %s", store_db_errmsg(&st->writer));
		return -1;
	}
	ctx.max_lsn = ctx.applied;
	if (store_db_exec_simple(&st->writer, SQL_BEGIN) != SQLITE_OK) {
		snprintf(err, errlen, "replay: %s", store_db_errmsg(&st->writer));
		return -1;
	}
	if (pg_journal_replay(st->db_path, replay_one, &ctx, &torn, err, errlen) < 0 ||
	    ctx.rc != SQLITE_OK || (ctx.rc = store_apply_finish(st, &ctx.batch)) != SQLITE_OK) {
		store_db_batch_finish(&st->writer, &ctx.batch, 0);
		if (ctx.rc != SQLITE_OK) {
			snprintf(err, errlen, "replaying the journal: %s",
			         store_db_errmsg(&st->writer));
		}
		store_db_exec_simple(&st->writer, SQL_ROLLBACK);
		return -1;
	}
	if (store_db_set_applied(&st->writer, ctx.max_lsn) != SQLITE_OK ||
	    store_db_exec_simple(&st->writer, SQL_COMMIT) != SQLITE_OK) {
		snprintf(err, errlen, "replay commit: %s", store_db_errmsg(&st->writer));
		store_db_exec_simple(&st->writer, SQL_ROLLBACK);
		return -1;
	}
	if (ctx.replayed > 0 || torn > 0) {
		pg_log(PG_LOG_NOTICE, "pigeon store: replayed %llu journal records%s",
		        (unsigned long long)ctx.replayed,
		        torn
		            ? " (a torn tail was ignored: records after it were never acknowledged "
		              "with sync=full)"
		            : "");
	}
	atomic_store(&st->applied_lsn, ctx.max_lsn);
	st->next_lsn = ctx.max_lsn + 1;
	return 0;
}
