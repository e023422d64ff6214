/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's database behind a small interface, in the spirit of Redis's
 * rio: a struct of operations, one implementation per file. store_sqlite.c
 * is the database pigeon ships with; store_faulty.c wraps another backend
 * and fails on demand (pg_store_test_hold_applier), for tests.
 *
 * The store opens two connections to the same database: a writer, used by
 * the store thread (and by journal replay at open, before that thread
 * starts), and a reader, used by the broker thread. Each connection is used
 * by one thread at a time; the backend gives the reader a consistent view
 * of what the writer has committed (SQLite: WAL snapshots).
 *
 * Results: every operation returns 0 on success or -1 on failure (errmsg
 * then says why), unless its comment says otherwise; no backend's own codes
 * leave the backend. The backend owns its transactions: the store applies
 * journal records as a batch (batch_begin, batch_apply..., batch_commit)
 * that becomes visible, together with its applied position, at once or
 * not at all; a failed write leaves the database as it was.
 */
#ifndef PIGEON_STORE_BACKEND_H
#define PIGEON_STORE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "journal.pb-c.h"

/*
 * One connection. Each backend's own connection struct begins with this
 * (the rest is private to its file); the store calls be->ops->...(be, ...).
 */
struct store_be {
	const struct store_backend_ops *ops;
};

enum store_be_role {
	STORE_BE_READER, /* the broker thread: reads only */
	STORE_BE_WRITER, /* the store thread: creates, migrates, writes */
};

struct store_be_config {
	const char *path;      /* pg_store_config.db_path */
	bool sync_full;        /* survive power loss at each commit */
	uint32_t max_per_user; /* stored messages kept per user (0: no cap) */
	/* store_faulty_ops only: the backend it wraps. */
	const struct store_backend_ops *inner;
};

/* Called for each stored NOTIFY of a user (load_user). */
typedef void (*store_be_slot_fn)(const char *type, uint64_t seq, uint32_t merged,
                                 int64_t expires_at_ms, void *ud);
/* Called for each device cursor of a user (load_user). */
typedef void (*store_be_cursor_fn)(const char *device, uint64_t seq, void *ud);
/* Called for each message of a range: the packed Envelope. Non-zero stops the range. */
typedef int (*store_be_row_fn)(uint64_t seq, const void *env, size_t len, void *ud);

struct store_backend_ops {
	const char *name; /* pg_store_config.backend */

	/*
	 * Opens a connection to cfg->path. The writer creates the database if
	 * missing (private to the owner) and brings its schema up to date; a
	 * reader expects that done. NULL with err set on failure (nothing left
	 * open).
	 */
	struct store_be *(*open)(const struct store_be_config *cfg, enum store_be_role role,
	                         char *err, size_t errlen);
	/* Closes be (an open batch is rolled back). NULL is a no-op. */
	void (*close)(struct store_be *be);
	/* Why the connection's last operation failed; valid until the next call on be. */
	const char *(*errmsg)(struct store_be *be);

	/* --- the writer --- */

	/* The LSN of the last journal record applied (0 for a new database). */
	int (*get_applied)(struct store_be *be, uint64_t *lsn);
	/* Opens a batch (one transaction). On failure nothing is open. */
	int (*batch_begin)(struct store_be *be);
	/*
	 * Applies one journal record to the open batch. On failure the batch
	 * stays open and must be ended with batch_abort.
	 */
	int (*batch_apply)(struct store_be *be, const Pigeon__Journal__Record *rec);
	/*
	 * Records applied_lsn, enforces max_per_user on the users the batch
	 * touched (*capped = rows it removed), and commits. On failure the
	 * batch is rolled back. The batch is over either way.
	 */
	int (*batch_commit)(struct store_be *be, uint64_t applied_lsn, uint64_t *capped);
	/* Rolls the open batch back. */
	void (*batch_abort)(struct store_be *be);
	/*
	 * Housekeeping, in one transaction: deletes up to max messages expired
	 * at now_ms (*expired = how many) and forgets dedup keys created before
	 * dedup_before_ms. 0 done; 1 not started (the database would not begin
	 * a transaction, e.g. held by another process: nothing to undo); -1
	 * failed and rolled back.
	 */
	int (*expire)(struct store_be *be, int64_t now_ms, int max, int64_t dedup_before_ms,
	              uint64_t *expired);

	/* --- the reader --- */

	/*
	 * A user's head seq (0 if unknown), calling slot for each stored
	 * NOTIFY and cursor for each device cursor.
	 */
	int (*load_user)(struct store_be *be, const char *uid, uint64_t *head,
	                 store_be_slot_fn slot, store_be_cursor_fn cursor, void *ud);
	/*
	 * Calls fn for the stored messages of uid with seq > after, not
	 * expired at now_ms, ascending, at most limit, until fn returns
	 * non-zero.
	 */
	int (*range)(struct store_be *be, const char *uid, uint64_t after, int64_t now_ms,
	             uint32_t limit, store_be_row_fn fn, void *ud);
	/* Number of stored messages of uid above seq, not expired at now_ms. */
	int (*count_above)(struct store_be *be, const char *uid, uint64_t seq, int64_t now_ms,
	                   uint64_t *n);
	/*
	 * The seq of the n-th newest (n >= 1) stored message of uid with seq
	 * below `below`, expired ones included as max_per_user counts them;
	 * *seq 0 if there are fewer.
	 */
	int (*nth_newest)(struct store_be *be, const char *uid, uint64_t below, uint32_t n,
	                  uint64_t *seq);
	/*
	 * The seq stored under (sender, recipient, msg_id) created at or after
	 * since_ms; *found false if none.
	 */
	int (*dedup_find)(struct store_be *be, const char *sender, const char *recipient,
	                  const char *msg_id, int64_t since_ms, uint64_t *seq, bool *found);
	/* Calls fn for every dedup key created at or after since_ms. */
	int (*dedup_keys)(struct store_be *be, int64_t since_ms,
	                  void (*fn)(const char *sender, const char *recipient, const char *msg_id,
	                             void *ud),
	                  void *ud);
	/* Calls fn for every user recorded online. */
	int (*online_users)(struct store_be *be, void (*fn)(const char *uid, void *ud), void *ud);
};

/* store_sqlite.c */
extern const struct store_backend_ops store_sqlite_ops;
/* store_faulty.c */
extern const struct store_backend_ops store_faulty_ops;
/*
 * Makes a store_faulty_ops writer fail every batch_begin and expire (as a
 * database held by another process would) while hold is set; setting it
 * waits for a batch under way to end. 0, or -1 if be was not opened by
 * store_faulty_ops.
 */
int store_faulty_hold(struct store_be *be, bool hold);

#endif
