/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every SQL statement of the store, prepared once per connection. The store
 * thread's connection writes (applies journal records, expires, prunes);
 * the broker thread's connection only reads. Internal to the store.
 */
#ifndef PIGEON_STORE_DB_H
#define PIGEON_STORE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "journal.pb-c.h"

#define STORE_SCHEMA_VERSION 2
/* SQLite lock waits: the store thread's (it retries itself), the broker thread's. */
#define STORE_DB_WRITER_BUSY_MS 1000
#define STORE_DB_READER_BUSY_MS 200

enum store_stmt {
	SQL_GET_APPLIED,
	SQL_SET_APPLIED,
	SQL_USER_UPSERT_HEAD,
	SQL_USER_STORED,
	SQL_USER_GET,
	SQL_MSG_INSERT,
	SQL_MSG_DELETE,
	SQL_MSG_CAP,
	SQL_MSG_EXPIRE,
	SQL_MSG_RANGE,
	SQL_MSG_COUNT_ABOVE,
	SQL_MSG_NOTIFY_SLOTS,
	SQL_CURSOR_SET,
	SQL_CURSOR_LOAD,
	SQL_DEDUP_INSERT,
	SQL_DEDUP_FIND,
	SQL_DEDUP_PRUNE,
	SQL_DEDUP_KEYS,
	SQL_PRESENCE_ON,
	SQL_PRESENCE_OFF,
	SQL_PRESENCE_ALL,
	SQL_BEGIN,
	SQL_COMMIT,
	SQL_ROLLBACK,
	SQL_NSTMTS
};

struct store_db {
	sqlite3 *db;
	sqlite3_stmt *stmt[SQL_NSTMTS];
};

/*
 * Opens path. The writer creates the file (0600, missing directories 0700,
 * group and other access taken from existing files and their -wal/-shm),
 * migrates the schema and sets WAL and synchronous (FULL if sync_full, else
 * NORMAL); a reader expects all that done.
 */
int store_db_open(struct store_db *d, const char *path, bool writer, bool sync_full, char *err,
                  size_t errlen);
void store_db_close(struct store_db *d);
/* Text of the connection's last error. */
const char *store_db_errmsg(struct store_db *d);

int store_db_exec_simple(struct store_db *d, enum store_stmt which);
int store_db_get_applied(struct store_db *d, uint64_t *lsn);
int store_db_set_applied(struct store_db *d, uint64_t lsn);

/*
 * What one transaction changes per user, so users.head_seq is written and
 * the cap checked once per user per batch, not once per message
 * (users.stored follows every row by trigger).
 */
struct store_batch_user;
struct store_batch {
	struct store_batch_user *users; /* uthash by uid */
	uint64_t capped;                /* rows removed by the per-user cap */
};

/* Applies one record inside the caller's transaction. 0 or an SQLite code. */
int store_db_apply(struct store_db *d, const Pigeon__Journal__Record *rec,
                   struct store_batch *batch);
/*
 * Writes the batch's per-user heads and counts and enforces max_per_user
 * (0: no cap); frees the batch's users either way. 0 or an SQLite code.
 */
int store_db_batch_finish(struct store_db *d, struct store_batch *batch, uint32_t max_per_user);

/* Deletes up to `batch` messages expired at now_ms; *n = how many. */
int store_db_expire(struct store_db *d, int64_t now_ms, int batch, uint64_t *n);
/* Forgets dedup entries created before before_ms. */
int store_db_prune_dedup(struct store_db *d, int64_t before_ms);

/* --- reads (broker thread) --- */

/* head (0 if the user is unknown). */
int store_db_user_head(struct store_db *d, const char *uid, uint64_t *head);
/* Calls fn for each stored NOTIFY of uid: its type, seq, merged, expiry. */
int store_db_notify_slots(struct store_db *d, const char *uid,
                          void (*fn)(const char *type, uint64_t seq, uint32_t merged,
                                     int64_t expires_at_ms, void *ud),
                          void *ud);
/* Calls fn for each device cursor of uid. */
int store_db_cursors(struct store_db *d, const char *uid,
                     void (*fn)(const char *device, uint64_t seq, void *ud), void *ud);
/*
 * Calls fn for stored messages of uid with seq > after, not expired at now,
 * ascending, at most limit. fn gets the packed Envelope.
 */
int store_db_range(struct store_db *d, const char *uid, uint64_t after, int64_t now_ms,
                   uint32_t limit, int (*fn)(uint64_t seq, const void *env, size_t len, void *ud),
                   void *ud);
/* Number of stored, unexpired messages of uid above seq. */
int store_db_count_above(struct store_db *d, const char *uid, uint64_t seq, int64_t now_ms,
                         uint64_t *n);
/*
 * The seq under (sender, recipient, msg_id) created at or after since_ms;
 * *found false if none.
 */
int store_db_dedup_find(struct store_db *d, const char *sender, const char *recipient,
                        const char *msg_id, int64_t since_ms, uint64_t *seq, bool *found);
/* Calls fn for every dedup entry created at or after since_ms. */
int store_db_dedup_keys(struct store_db *d, int64_t since_ms,
                        void (*fn)(const char *sender, const char *recipient, const char *msg_id,
                                   void *ud),
                        void *ud);
int store_db_online_users(struct store_db *d, void (*fn)(const char *uid, void *ud), void *ud);

#endif
