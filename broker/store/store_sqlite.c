/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The SQLite backend of the store (internal/store_backend.h): the only file
 * that knows SQLite. The writer connection applies journal records, a batch
 * per transaction (BEGIN IMMEDIATE ... COMMIT), expires and prunes; the
 * reader connection only reads, from WAL snapshots. SQLite's result codes
 * stay in here: each operation returns 0 or -1, keeping the error's text
 * for errmsg. Schema and migrations, and every statement, prepared once per
 * connection and reused (reset after each use).
 *
 * Tables:
 *   users(uid, head_seq, stored)         head survives restarts; stored counts rows,
 *                                        kept by triggers on messages, so every
 *                                        statement that adds or removes a row
 *                                        also counts it (schema 2)
 *   messages(uid, seq, kind, type, ...)  one row per stored message; the packed
 *                                        Envelope is kept as sent, so sync
 *                                        returns exactly what was delivered
 *   cursors(uid, device, seq)            acknowledged position per device
 *   dedup(sender, recipient, msg_id, ..) the dedup window (schema 2: per recipient)
 *   presence(uid)                        users shown online (reset at start)
 *   meta(key, value)                     applied_lsn: journal records applied
 * "messages of uid after seq N" is a range scan of messages_by_user.
 *
 * Thread: each connection is used by one thread (SQLITE_OPEN_NOMUTEX).
 * Ownership: a connection owns its statements and the batch's per-user
 * entries; close frees them.
 */
#include "store_backend.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>
#include <uthash.h>

#define STORE_SCHEMA_VERSION 4
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
	SQL_MSG_COUNT_UPTO,
	SQL_MSG_NTH_NEWEST,
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

static void store_db_close(struct store_db *d);

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

static const char *const schema_v1[] = {
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    "INSERT INTO meta(key, value) VALUES('applied_lsn', 0)",
    "CREATE TABLE users(uid TEXT PRIMARY KEY, head_seq INTEGER NOT NULL,"
    " stored INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID",
    "CREATE TABLE messages(id INTEGER PRIMARY KEY, uid TEXT NOT NULL, seq INTEGER NOT NULL,"
    " kind INTEGER NOT NULL, type TEXT, merged INTEGER NOT NULL DEFAULT 0,"
    " expires_at_ms INTEGER NOT NULL, envelope BLOB NOT NULL, push_title TEXT,"
    " push_body TEXT)",
    "CREATE UNIQUE INDEX messages_by_user ON messages(uid, seq)",
    "CREATE INDEX messages_by_expiry ON messages(expires_at_ms)",
    "CREATE TABLE cursors(uid TEXT NOT NULL, device TEXT NOT NULL, seq INTEGER NOT NULL,"
    " PRIMARY KEY(uid, device)) WITHOUT ROWID",
    "CREATE TABLE dedup(sender TEXT NOT NULL, msg_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " recipient TEXT NOT NULL, created_ms INTEGER NOT NULL, PRIMARY KEY(sender, msg_id))"
    " WITHOUT ROWID",
    "CREATE INDEX dedup_by_age ON dedup(created_ms)",
    "CREATE TABLE presence(uid TEXT PRIMARY KEY) WITHOUT ROWID",
    NULL,
};

/*
 * Schema 2: dedup keyed by (sender, recipient, msg_id) (docs/protocol.md), and
 * users.stored maintained by triggers in the statement that inserts or
 * deletes a message, recounted once here.
 */
static const char *const schema_v2[] = {
    "CREATE TABLE dedup_v2(sender TEXT NOT NULL, recipient TEXT NOT NULL, msg_id TEXT NOT NULL,"
    " seq INTEGER NOT NULL, created_ms INTEGER NOT NULL, PRIMARY KEY(sender, recipient, msg_id))"
    " WITHOUT ROWID",
    "INSERT OR IGNORE INTO dedup_v2(sender, recipient, msg_id, seq, created_ms)"
    " SELECT sender, recipient, msg_id, seq, created_ms FROM dedup",
    "DROP TABLE dedup",
    "ALTER TABLE dedup_v2 RENAME TO dedup",
    "CREATE INDEX dedup_by_age ON dedup(created_ms)",
    "UPDATE users SET stored = (SELECT count(*) FROM messages WHERE messages.uid = users.uid)",
    "INSERT OR IGNORE INTO users(uid, head_seq, stored)"
    " SELECT uid, max(seq), count(*) FROM messages GROUP BY uid",
    "CREATE TRIGGER messages_count_in AFTER INSERT ON messages BEGIN"
    " INSERT INTO users(uid, head_seq, stored) VALUES(NEW.uid, NEW.seq, 1)"
    " ON CONFLICT(uid) DO UPDATE SET stored = stored + 1; END",
    "CREATE TRIGGER messages_count_out AFTER DELETE ON messages BEGIN"
    " UPDATE users SET stored = stored - 1 WHERE uid = OLD.uid; END",
    NULL,
};

/* migrations[v] brings a database at user_version v to v + 1. */
/*
 * Schema 3: an index that covers the unread count (uid, seq, expires_at_ms),
 * so that counting a device's unread messages (push badges, on the broker
 * thread) reads index entries only, not each message's row and envelope.
 */
static const char *const schema_v3[] = {
    "CREATE INDEX messages_live ON messages(uid, seq, expires_at_ms)",
    NULL,
};

/*
 * Schema 4: users.stored counts inserted messages once per user and batch
 * (store_db_finish_user), not in a trigger per inserted row: the trigger's
 * upsert was 28 % of the store thread's time per message. Deletes still
 * count down in messages_count_out, one row at a time as they happen.
 */
static const char *const schema_v4[] = {
    "DROP TRIGGER messages_count_in",
    NULL,
};

static const char *const *const migrations[STORE_SCHEMA_VERSION] = {schema_v1, schema_v2, schema_v3,
                                                                    schema_v4};

static const char *const sql_text[SQL_NSTMTS] = {
    [SQL_GET_APPLIED] = "SELECT value FROM meta WHERE key = 'applied_lsn'",
    [SQL_SET_APPLIED] = "UPDATE meta SET value = ?1 WHERE key = 'applied_lsn'",
    [SQL_USER_UPSERT_HEAD] = "INSERT INTO users(uid, head_seq, stored) VALUES(?1, ?2, ?3)"
                             " ON CONFLICT(uid) DO UPDATE SET head_seq = max(head_seq, ?2),"
                             " stored = stored + ?3",
    [SQL_USER_STORED] = "SELECT stored FROM users WHERE uid = ?1",
    [SQL_USER_GET] = "SELECT head_seq FROM users WHERE uid = ?1",
    [SQL_MSG_INSERT] = "INSERT OR IGNORE INTO messages(uid, seq, kind, type, merged,"
                       " expires_at_ms, envelope, push_title, push_body)"
                       " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [SQL_MSG_DELETE] = "DELETE FROM messages WHERE uid = ?1 AND seq = ?2",
    [SQL_MSG_CAP] = "DELETE FROM messages WHERE id IN (SELECT id FROM messages"
                    " WHERE uid = ?1 ORDER BY seq LIMIT ?2)",
    [SQL_MSG_EXPIRE] = "DELETE FROM messages WHERE id IN (SELECT id FROM messages"
                       " WHERE expires_at_ms <= ?1 LIMIT ?2)",
    [SQL_MSG_RANGE] = "SELECT seq, envelope FROM messages WHERE uid = ?1 AND seq > ?2"
                      " AND expires_at_ms > ?3 ORDER BY seq LIMIT ?4",
    [SQL_MSG_COUNT_ABOVE] = "SELECT count(*) FROM (SELECT 1 FROM messages INDEXED BY messages_live"
                            " WHERE uid = ?1 AND seq > ?2 AND expires_at_ms > ?3 LIMIT ?4)",
    [SQL_MSG_COUNT_UPTO] =
        "SELECT count(*) FROM (SELECT 1 FROM messages INDEXED BY messages_by_user"
        " WHERE uid = ?1 AND seq <= ?2 LIMIT ?3)",
    [SQL_MSG_NTH_NEWEST] = "SELECT seq FROM messages INDEXED BY messages_by_user"
                           " WHERE uid = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT 1 OFFSET ?3",
    [SQL_MSG_NOTIFY_SLOTS] = "SELECT type, seq, merged, expires_at_ms FROM messages"
                             " WHERE uid = ?1 AND kind = 2",
    [SQL_CURSOR_SET] = "INSERT INTO cursors(uid, device, seq) VALUES(?1, ?2, ?3)"
                       " ON CONFLICT(uid, device) DO UPDATE SET seq = max(seq, ?3)",
    [SQL_CURSOR_LOAD] = "SELECT device, seq FROM cursors WHERE uid = ?1",
    [SQL_DEDUP_INSERT] = "INSERT OR IGNORE INTO dedup(sender, msg_id, seq, recipient,"
                         " created_ms) VALUES(?1, ?2, ?3, ?4, ?5)",
    [SQL_DEDUP_FIND] = "SELECT seq FROM dedup WHERE sender = ?1 AND recipient = ?2"
                       " AND msg_id = ?3 AND created_ms >= ?4",
    [SQL_DEDUP_PRUNE] = "DELETE FROM dedup WHERE created_ms < ?1",
    [SQL_DEDUP_KEYS] = "SELECT sender, recipient, msg_id FROM dedup WHERE created_ms >= ?1",
    [SQL_PRESENCE_ON] = "INSERT OR IGNORE INTO presence(uid) VALUES(?1)",
    [SQL_PRESENCE_OFF] = "DELETE FROM presence WHERE uid = ?1",
    [SQL_PRESENCE_ALL] = "SELECT uid FROM presence",
    [SQL_BEGIN] = "BEGIN IMMEDIATE",
    [SQL_COMMIT] = "COMMIT",
    [SQL_ROLLBACK] = "ROLLBACK",
};

static const char *store_db_errmsg(struct store_db *d)
{
	return d->db ? sqlite3_errmsg(d->db) : "no database";
}

static int store_db_migrate(struct store_db *d, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int version = 0, rc;

	rc = sqlite3_prepare_v2(d->db, "PRAGMA user_version", -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		version = sqlite3_column_int(st, 0);
	}
	sqlite3_finalize(st);
	if (version > STORE_SCHEMA_VERSION) {
		snprintf(err, errlen, "database schema version %d is newer than this pigeon (%d)",
		         version, STORE_SCHEMA_VERSION);
		return -1;
	}
	while (version < STORE_SCHEMA_VERSION) {
		const char *const *step = migrations[version];
		char pragma[64];
		if (sqlite3_exec(d->db, "BEGIN EXCLUSIVE", NULL, NULL, NULL) != SQLITE_OK) {
			goto fail;
		}
		for (; *step != NULL; step++) {
			if (sqlite3_exec(d->db, *step, NULL, NULL, NULL) != SQLITE_OK) {
				sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
				goto fail;
			}
		}
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", version + 1);
		if (sqlite3_exec(d->db, pragma, NULL, NULL, NULL) != SQLITE_OK ||
		    sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
			goto fail;
		}
		version++;
	}
	return 0;
fail:
	snprintf(err, errlen, "migrating the database to schema %d: %s", version + 1,
	         sqlite3_errmsg(d->db));
	return -1;
}

/*
 * Creates every missing directory above path with mode 0700 (whatever the
 * umask). 0, or -1 with errno set; directories made before a failure stay.
 */
static int store_db_mkdirs(const char *path)
{
	char dir[4096];
	char *p;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	p = strrchr(dir, '/');
	if (p == NULL || p == dir) {
		return 0;
	}
	*p = '\0';
	for (p = dir + 1;; p++) {
		bool last = *p == '\0';
		if (*p != '/' && !last) {
			continue;
		}
		*p = '\0';
		if (mkdir(dir, 0700) == 0) {
			if (chmod(dir, 0700) != 0) {
				return -1;
			}
		} else if (errno != EEXIST) {
			return -1;
		}
		if (last) {
			return 0;
		}
		*p = '/';
	}
}

/* Takes group and other access away from path if it exists. 0, or -1 with errno set. */
static int store_db_private(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) != 0) {
		return errno == ENOENT ? 0 : -1;
	}
	if ((sb.st_mode & 077) == 0) {
		return 0;
	}
	return chmod(path, sb.st_mode & 0700);
}

/*
 * The database file exists with mode 0600 before SQLite opens it (SQLite
 * gives -wal and -shm the database file's mode), with its directories
 * created 0700 if missing. 0, or -1 with err set.
 */
static int store_db_create_file(const char *path, char *err, size_t errlen)
{
	int fd;

	if (store_db_mkdirs(path) != 0) {
		snprintf(err, errlen, "cannot create the directory of %s: %s", path,
		         strerror(errno));
		return -1;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	close(fd);
	if (store_db_private(path) != 0) {
		snprintf(err, errlen, "cannot make %s private: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Makes <path><suffix> private (the WAL files SQLite made). */
static void store_db_private_aux(const char *path, const char *suffix)
{
	char aux[4200];

	snprintf(aux, sizeof(aux), "%s%s", path, suffix);
	store_db_private(aux);
}

/*
 * Opens path. The writer creates the file (0600, missing directories 0700,
 * group and other access taken from existing files and their -wal/-shm),
 * migrates the schema and sets WAL and synchronous (FULL if sync_full, else
 * NORMAL); a reader expects all that done. 0, or -1 with err set (closed).
 */
static int store_db_open(struct store_db *d, const char *path, bool writer, bool sync_full,
                         char *err, size_t errlen)
{
	/* The reader opens read-write too (it never writes): WAL readers need the -shm file. */
	int flags = writer ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READWRITE;
	int i;

	memset(d, 0, sizeof(*d));
	if (writer && store_db_create_file(path, err, errlen) != 0) {
		return -1;
	}
	if (sqlite3_open_v2(path, &d->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", path, store_db_errmsg(d));
		store_db_close(d);
		return -1;
	}
	/*
	 * Short lock waits: the writer retries a failed batch itself (and must
	 * stop in bounded time), and the reader runs on the broker thread.
	 */
	sqlite3_busy_timeout(d->db, writer ? STORE_DB_WRITER_BUSY_MS : STORE_DB_READER_BUSY_MS);
	if (writer) {
		char pragmas[160];
		snprintf(
		    pragmas, sizeof(pragmas),
		    "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA cache_size=-65536;",
		    sync_full ? "FULL" : "NORMAL");
		if (sqlite3_exec(d->db, pragmas, NULL, NULL, NULL) != SQLITE_OK ||
		    store_db_migrate(d, err, errlen) != 0) {
			if (err[0] == '\0') {
				snprintf(err, errlen, "%s: %s", path, store_db_errmsg(d));
			}
			store_db_close(d);
			return -1;
		}
		store_db_private_aux(path, "-wal");
		store_db_private_aux(path, "-shm");
	} else {
		sqlite3_exec(d->db, "PRAGMA cache_size=-16384", NULL, NULL, NULL);
	}
	for (i = 0; i < SQL_NSTMTS; i++) {
		if (sqlite3_prepare_v3(d->db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT,
		                       &d->stmt[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "preparing statement %d: %s", i, store_db_errmsg(d));
			store_db_close(d);
			return -1;
		}
	}
	return 0;
}

static void store_db_close(struct store_db *d)
{
	int i;

	for (i = 0; i < SQL_NSTMTS; i++) {
		sqlite3_finalize(d->stmt[i]);
	}
	if (d->db) {
		sqlite3_close(d->db);
	}
	memset(d, 0, sizeof(*d));
}

/* Steps a statement that returns no rows we need, then resets it. */
static int store_db_run(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s == NULL || s[0] == '\0') {
		sqlite3_bind_null(st, i);
	} else {
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	}
}

static int store_db_exec_simple(struct store_db *d, enum store_stmt which)
{
	return store_db_run(d->stmt[which]);
}

static int store_db_get_applied(struct store_db *d, uint64_t *lsn)
{
	sqlite3_stmt *st = d->stmt[SQL_GET_APPLIED];
	int rc = sqlite3_step(st);

	*lsn = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int store_db_set_applied(struct store_db *d, uint64_t lsn)
{
	sqlite3_stmt *st = d->stmt[SQL_SET_APPLIED];

	sqlite3_bind_int64(st, 1, (sqlite3_int64)lsn);
	return store_db_run(st);
}

struct store_batch_user {
	uint64_t head;
	int64_t inserted; /* rows this batch added to messages (users.stored += it) */
	UT_hash_handle hh;
	char uid[]; /* key */
};

static struct store_batch_user *batch_user(struct store_batch *b, const char *uid)
{
	struct store_batch_user *u;
	size_t len = strlen(uid);

	HASH_FIND(hh, b->users, uid, len, u);
	if (u == NULL) {
		u = calloc(1, sizeof(*u) + len + 1);
		if (u == NULL) {
			return NULL;
		}
		memcpy(u->uid, uid, len + 1);
		HASH_ADD_KEYPTR(hh, b->users, u->uid, len, u);
	}
	return u;
}

static int store_db_apply_append(struct store_db *d, const Pigeon__Journal__Append *a,
                                 struct store_batch *batch)
{
	const Pigeon__Envelope *e = a->envelope;
	struct store_batch_user *bu;
	sqlite3_stmt *st;
	uint8_t stackbuf[4096], *packed = stackbuf;
	size_t len;
	int rc;

	if (e == NULL || !e->to || e->to[0] == '\0' || e->seq == 0) {
		return SQLITE_OK; /* nothing storable; cannot happen for records we wrote */
	}
	bu = batch_user(batch, e->to);
	if (bu == NULL) {
		return SQLITE_NOMEM;
	}
	if (e->seq > bu->head) {
		bu->head = e->seq;
	}
	if (a->replaces_seq != 0) {
		st = d->stmt[SQL_MSG_DELETE];
		sqlite3_bind_text(st, 1, e->to, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)a->replaces_seq);
		if ((rc = store_db_run(st)) != SQLITE_OK) {
			return rc;
		}
	}
	len = pigeon__envelope__get_packed_size(e);
	if (len > sizeof(stackbuf) && (packed = sqlite3_malloc64(len)) == NULL) {
		return SQLITE_NOMEM;
	}
	pigeon__envelope__pack(e, packed);
	st = d->stmt[SQL_MSG_INSERT];
	sqlite3_bind_text(st, 1, e->to, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)e->seq);
	sqlite3_bind_int(st, 3, (int)e->kind);
	bind_text(st, 4, e->type);
	sqlite3_bind_int(st, 5, (int)e->merged);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)e->expires_at_ms);
	sqlite3_bind_blob(st, 7, packed, (int)len, SQLITE_STATIC);
	bind_text(st, 8, a->push_title);
	bind_text(st, 9, a->push_body);
	rc = store_db_run(st);
	if (packed != stackbuf) {
		sqlite3_free(packed);
	}
	if (rc != SQLITE_OK) {
		return rc;
	}
	/* 0 when OR IGNORE skipped it (a record replayed after its commit). */
	bu->inserted += sqlite3_changes(d->db);
	if (e->msg_id != NULL && e->msg_id[0] != '\0') {
		st = d->stmt[SQL_DEDUP_INSERT];
		sqlite3_bind_text(st, 1, e->from, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, e->msg_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)e->seq);
		sqlite3_bind_text(st, 4, e->to, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, (sqlite3_int64)e->sent_at_ms);
		if ((rc = store_db_run(st)) != SQLITE_OK) {
			return rc;
		}
	}
	return SQLITE_OK;
}

/* Applies one record inside the caller's transaction. 0 or an SQLite code. */
static int store_db_apply(struct store_db *d, const Pigeon__Journal__Record *rec,
                          struct store_batch *batch)
{
	sqlite3_stmt *st;

	switch (rec->change_case) {
	case PIGEON__JOURNAL__RECORD__CHANGE_APPEND:
		return store_db_apply_append(d, rec->append, batch);
	case PIGEON__JOURNAL__RECORD__CHANGE_CURSOR:
		st = d->stmt[SQL_CURSOR_SET];
		sqlite3_bind_text(st, 1, rec->cursor->uid, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, rec->cursor->device, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)rec->cursor->seq);
		return store_db_run(st);
	case PIGEON__JOURNAL__RECORD__CHANGE_PRESENCE:
		st = d->stmt[rec->presence->online ? SQL_PRESENCE_ON : SQL_PRESENCE_OFF];
		sqlite3_bind_text(st, 1, rec->presence->uid, -1, SQLITE_STATIC);
		return store_db_run(st);
	default:
		return SQLITE_OK;
	}
}

/* The first column of a one-row statement bound to uid (0 if no row). */
static int store_db_user_int64(sqlite3_stmt *st, const char *uid, int64_t *out)
{
	int rc;

	sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	*out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* users.stored of uid (0 if unknown). */
static int store_db_stored(struct store_db *d, const char *uid, int64_t *stored)
{
	return store_db_user_int64(d->stmt[SQL_USER_STORED], uid, stored);
}

static int store_db_finish_user(struct store_db *d, const struct store_batch_user *bu,
                                uint32_t max_per_user, uint64_t *capped)
{
	sqlite3_stmt *st = d->stmt[SQL_USER_UPSERT_HEAD];
	int64_t stored = 0;
	int rc;

	sqlite3_bind_text(st, 1, bu->uid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)bu->head);
	sqlite3_bind_int64(st, 3, bu->inserted);
	if ((rc = store_db_run(st)) != SQLITE_OK ||
	    (rc = store_db_stored(d, bu->uid, &stored)) != SQLITE_OK) {
		return rc;
	}
	if (max_per_user > 0 && stored > (int64_t)max_per_user) {
		st = d->stmt[SQL_MSG_CAP];
		sqlite3_bind_text(st, 1, bu->uid, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, stored - (int64_t)max_per_user);
		if ((rc = store_db_run(st)) != SQLITE_OK) {
			return rc;
		}
		*capped += (uint64_t)sqlite3_changes(d->db);
	}
	return SQLITE_OK;
}

/*
 * Writes the batch's per-user heads and counts and enforces max_per_user
 * (0: no cap); frees the batch's users either way. 0 or an SQLite code.
 */
static int store_db_batch_finish(struct store_db *d, struct store_batch *batch,
                                 uint32_t max_per_user)
{
	struct store_batch_user *bu, *tmp;
	int rc = SQLITE_OK;

	HASH_ITER(hh, batch->users, bu, tmp)
	{
		if (rc == SQLITE_OK) {
			rc = store_db_finish_user(d, bu, max_per_user, &batch->capped);
		}
		HASH_DEL(batch->users, bu);
		free(bu);
	}
	return rc;
}

static int store_db_expire(struct store_db *d, int64_t now_ms, int batch, uint64_t *n)
{
	sqlite3_stmt *st = d->stmt[SQL_MSG_EXPIRE];
	int rc;

	*n = 0;
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_int(st, 2, batch);
	rc = store_db_run(st);
	if (rc == SQLITE_OK) {
		*n = (uint64_t)sqlite3_changes(d->db);
	}
	return rc;
}

static int store_db_prune_dedup(struct store_db *d, int64_t before_ms)
{
	sqlite3_stmt *st = d->stmt[SQL_DEDUP_PRUNE];

	sqlite3_bind_int64(st, 1, before_ms);
	return store_db_run(st);
}

static int store_db_user_head(struct store_db *d, const char *uid, uint64_t *head)
{
	int64_t v;
	int rc = store_db_user_int64(d->stmt[SQL_USER_GET], uid, &v);

	*head = (uint64_t)v;
	return rc;
}

static int store_db_notify_slots(struct store_db *d, const char *uid,
                                 void (*fn)(const char *type, uint64_t seq, uint32_t merged,
                                            int64_t expires_at_ms, void *ud),
                                 void *ud)
{
	sqlite3_stmt *st = d->stmt[SQL_MSG_NOTIFY_SLOTS];
	int rc;

	sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *type = (const char *)sqlite3_column_text(st, 0);
		if (type != NULL) {
			fn(type, (uint64_t)sqlite3_column_int64(st, 1),
			   (uint32_t)sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3), ud);
		}
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int store_db_cursors(struct store_db *d, const char *uid,
                            void (*fn)(const char *device, uint64_t seq, void *ud), void *ud)
{
	sqlite3_stmt *st = d->stmt[SQL_CURSOR_LOAD];
	int rc;

	sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		fn((const char *)sqlite3_column_text(st, 0), (uint64_t)sqlite3_column_int64(st, 1),
		   ud);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int store_db_range(struct store_db *d, const char *uid, uint64_t after, int64_t now_ms,
                          uint32_t limit,
                          int (*fn)(uint64_t seq, const void *env, size_t len, void *ud), void *ud)
{
	sqlite3_stmt *st = d->stmt[SQL_MSG_RANGE];
	int rc;

	sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)after);
	sqlite3_bind_int64(st, 3, now_ms);
	sqlite3_bind_int64(st, 4, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (fn((uint64_t)sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1),
		       (size_t)sqlite3_column_bytes(st, 1), ud) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* count(*) of a statement bound to (uid, a[, b], limit). */
static int store_db_count(sqlite3_stmt *st, const char *uid, int64_t a, const int64_t *b,
                          int64_t limit, uint64_t *out)
{
	int rc, i = 1;

	sqlite3_bind_text(st, i++, uid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, i++, a);
	if (b != NULL) {
		sqlite3_bind_int64(st, i++, *b);
	}
	sqlite3_bind_int64(st, i, limit);
	rc = sqlite3_step(st);
	*out = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/*
 * Unexpired messages of uid above seq. Counting costs one index entry per
 * message counted, and the caller is the broker thread (push badges), so
 * this counts the smaller side: up to STORE_COUNT_STEP above seq; if there
 * are more, up to STORE_COUNT_STEP at or below it, and then the answer is
 * users.stored less those (which may include, for the second or so until
 * retention removes them, messages that have just expired). Only when both
 * sides are large (a cursor in the middle of a big inbox) does it count
 * above, up to PG_STORE_UNREAD_MAX.
 */
#define STORE_COUNT_STEP 500
static int store_db_count_above(struct store_db *d, const char *uid, uint64_t seq, int64_t now_ms,
                                uint64_t *n)
{
	uint64_t above, upto;
	int64_t stored;
	int rc;

	rc = store_db_count(d->stmt[SQL_MSG_COUNT_ABOVE], uid, (int64_t)seq, &now_ms,
	                    STORE_COUNT_STEP, &above);
	if (rc != SQLITE_OK || above < STORE_COUNT_STEP) {
		*n = above;
		return rc;
	}
	rc = store_db_count(d->stmt[SQL_MSG_COUNT_UPTO], uid, (int64_t)seq, NULL, STORE_COUNT_STEP,
	                    &upto);
	if (rc == SQLITE_OK && upto < STORE_COUNT_STEP) {
		rc = store_db_stored(d, uid, &stored);
		if (rc == SQLITE_OK && stored >= 0 && (uint64_t)stored >= upto + above) {
			*n = (uint64_t)stored - upto;
			return SQLITE_OK;
		}
	}
	if (rc != SQLITE_OK) {
		return rc;
	}
	return store_db_count(d->stmt[SQL_MSG_COUNT_ABOVE], uid, (int64_t)seq, &now_ms,
	                      PG_STORE_UNREAD_MAX, n);
}

static int store_db_nth_newest(struct store_db *d, const char *uid, uint64_t below, uint32_t n,
                               uint64_t *seq)
{
	sqlite3_stmt *st = d->stmt[SQL_MSG_NTH_NEWEST];
	int rc;

	sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, below > INT64_MAX ? INT64_MAX : (sqlite3_int64)below);
	sqlite3_bind_int64(st, 3, n > 0 ? (sqlite3_int64)n - 1 : 0);
	rc = sqlite3_step(st);
	*seq = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int store_db_dedup_find(struct store_db *d, const char *sender, const char *recipient,
                               const char *msg_id, int64_t since_ms, uint64_t *seq, bool *found)
{
	sqlite3_stmt *st = d->stmt[SQL_DEDUP_FIND];
	int rc;

	sqlite3_bind_text(st, 1, sender, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, recipient, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, msg_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, since_ms);
	rc = sqlite3_step(st);
	*found = rc == SQLITE_ROW;
	*seq = *found ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int store_db_online_users(struct store_db *d, void (*fn)(const char *uid, void *ud),
                                 void *ud)
{
	sqlite3_stmt *st = d->stmt[SQL_PRESENCE_ALL];
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		fn((const char *)sqlite3_column_text(st, 0), ud);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int store_db_dedup_keys(struct store_db *d, int64_t since_ms,
                               void (*fn)(const char *sender, const char *recipient,
                                          const char *msg_id, void *ud),
                               void *ud)
{
	sqlite3_stmt *st = d->stmt[SQL_DEDUP_KEYS];
	int rc;

	sqlite3_bind_int64(st, 1, since_ms);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *sender = (const char *)sqlite3_column_text(st, 0);
		const char *recipient = (const char *)sqlite3_column_text(st, 1);
		const char *msg_id = (const char *)sqlite3_column_text(st, 2);
		if (sender && recipient && msg_id) {
			fn(sender, recipient, msg_id, ud);
		}
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* ---------- the backend interface ---------- */

struct store_sqlite {
	struct store_be be; /* first: the interface's view */
	struct store_db d;
	uint32_t max_per_user;
	struct store_batch batch; /* the open batch's users */
	char err[256];            /* the last failure's text */
};

static struct store_sqlite *sq_of(struct store_be *be)
{
	return (struct store_sqlite *)be;
}

/* 0 for SQLITE_OK; else keeps the connection's error text (before any rollback) and -1. */
static int sq_result(struct store_sqlite *c, int rc)
{
	if (rc == SQLITE_OK) {
		return 0;
	}
	snprintf(c->err, sizeof(c->err), "%s",
	         c->d.db && sqlite3_errcode(c->d.db) != SQLITE_OK ? sqlite3_errmsg(c->d.db)
	                                                          : sqlite3_errstr(rc));
	return -1;
}

/* Frees the batch's per-user entries without writing them. */
static void sq_batch_reset(struct store_batch *batch)
{
	struct store_batch_user *bu, *tmp;

	HASH_ITER(hh, batch->users, bu, tmp)
	{
		HASH_DEL(batch->users, bu);
		free(bu);
	}
	batch->capped = 0;
}

static struct store_be *sq_open(const struct store_be_config *cfg, enum store_be_role role,
                                char *err, size_t errlen)
{
	struct store_sqlite *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (store_db_open(&c->d, cfg->path, role == STORE_BE_WRITER, cfg->sync_full, err, errlen) !=
	    0) {
		free(c);
		return NULL;
	}
	c->be.ops = &store_sqlite_ops;
	c->max_per_user = cfg->max_per_user;
	return &c->be;
}

static void sq_close(struct store_be *be)
{
	struct store_sqlite *c = sq_of(be);

	if (c == NULL) {
		return;
	}
	sq_batch_reset(&c->batch);
	store_db_close(&c->d); /* sqlite3_close rolls an open transaction back */
	free(c);
}

static const char *sq_errmsg(struct store_be *be)
{
	struct store_sqlite *c = sq_of(be);

	return c->err[0] ? c->err : store_db_errmsg(&c->d);
}

static int sq_get_applied(struct store_be *be, uint64_t *lsn)
{
	struct store_sqlite *c = sq_of(be);

	return sq_result(c, store_db_get_applied(&c->d, lsn));
}

static int sq_batch_begin(struct store_be *be)
{
	struct store_sqlite *c = sq_of(be);

	return sq_result(c, store_db_exec_simple(&c->d, SQL_BEGIN));
}

static int sq_batch_apply(struct store_be *be, const Pigeon__Journal__Record *rec)
{
	struct store_sqlite *c = sq_of(be);

	return sq_result(c, store_db_apply(&c->d, rec, &c->batch));
}

static int sq_batch_commit(struct store_be *be, uint64_t applied_lsn, uint64_t *capped)
{
	struct store_sqlite *c = sq_of(be);
	int rc = store_db_batch_finish(&c->d, &c->batch, c->max_per_user);

	*capped = 0;
	if (rc == SQLITE_OK) {
		rc = store_db_set_applied(&c->d, applied_lsn);
	}
	if (rc == SQLITE_OK) {
		rc = store_db_exec_simple(&c->d, SQL_COMMIT);
	}
	if (sq_result(c, rc) != 0) {
		store_db_exec_simple(&c->d, SQL_ROLLBACK);
		c->batch.capped = 0;
		return -1;
	}
	*capped = c->batch.capped;
	c->batch.capped = 0;
	return 0;
}

static void sq_batch_abort(struct store_be *be)
{
	struct store_sqlite *c = sq_of(be);

	sq_batch_reset(&c->batch);
	store_db_exec_simple(&c->d, SQL_ROLLBACK);
}

static int sq_expire(struct store_be *be, int64_t now_ms, int max, int64_t dedup_before_ms,
                     uint64_t *expired)
{
	struct store_sqlite *c = sq_of(be);
	int rc;

	*expired = 0;
	if (sq_result(c, store_db_exec_simple(&c->d, SQL_BEGIN)) != 0) {
		return 1;
	}
	if ((rc = store_db_expire(&c->d, now_ms, max, expired)) != SQLITE_OK ||
	    (rc = store_db_prune_dedup(&c->d, dedup_before_ms)) != SQLITE_OK ||
	    (rc = store_db_exec_simple(&c->d, SQL_COMMIT)) != SQLITE_OK) {
		sq_result(c, rc);
		store_db_exec_simple(&c->d, SQL_ROLLBACK);
		*expired = 0;
		return -1;
	}
	return 0;
}

static int sq_load_user(struct store_be *be, const char *uid, uint64_t *head, store_be_slot_fn slot,
                        store_be_cursor_fn cursor, void *ud)
{
	struct store_sqlite *c = sq_of(be);
	int rc = store_db_user_head(&c->d, uid, head);

	if (rc == SQLITE_OK) {
		rc = store_db_notify_slots(&c->d, uid, slot, ud);
	}
	if (rc == SQLITE_OK) {
		rc = store_db_cursors(&c->d, uid, cursor, ud);
	}
	return sq_result(c, rc);
}

static int sq_range(struct store_be *be, const char *uid, uint64_t after, int64_t now_ms,
                    uint32_t limit, store_be_row_fn fn, void *ud)
{
	struct store_sqlite *c = sq_of(be);

	return sq_result(c, store_db_range(&c->d, uid, after, now_ms, limit, fn, ud));
}

static int sq_count_above(struct store_be *be, const char *uid, uint64_t seq, int64_t now_ms,
                          uint64_t *n)
{
	struct store_sqlite *c = sq_of(be);

	return sq_result(c, store_db_count_above(&c->d, uid, seq, now_ms, n));
}

static int sq_nth_newest(struct store_be *be, const char *uid, uint64_t below, uint32_t n,
                         uint64_t *seq)
{
	struct store_sqlite *c = sq_of(be);

	return sq_result(c, store_db_nth_newest(&c->d, uid, below, n, seq));
}

static int sq_dedup_find(struct store_be *be, const char *sender, const char *recipient,
                         const char *msg_id, int64_t since_ms, uint64_t *seq, bool *found)
{
	struct store_sqlite *c = sq_of(be);

	return sq_result(
	    c, store_db_dedup_find(&c->d, sender, recipient, msg_id, since_ms, seq, found));
}

static int sq_dedup_keys(struct store_be *be, int64_t since_ms,
                         void (*fn)(const char *sender, const char *recipient, const char *msg_id,
                                    void *ud),
                         void *ud)
{
	struct store_sqlite *c = sq_of(be);

	return sq_result(c, store_db_dedup_keys(&c->d, since_ms, fn, ud));
}

static int sq_online_users(struct store_be *be, void (*fn)(const char *uid, void *ud), void *ud)
{
	struct store_sqlite *c = sq_of(be);

	return sq_result(c, store_db_online_users(&c->d, fn, ud));
}

const struct store_backend_ops store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .errmsg = sq_errmsg,
    .get_applied = sq_get_applied,
    .batch_begin = sq_batch_begin,
    .batch_apply = sq_batch_apply,
    .batch_commit = sq_batch_commit,
    .batch_abort = sq_batch_abort,
    .expire = sq_expire,
    .load_user = sq_load_user,
    .range = sq_range,
    .count_above = sq_count_above,
    .nth_newest = sq_nth_newest,
    .dedup_find = sq_dedup_find,
    .dedup_keys = sq_dedup_keys,
    .online_users = sq_online_users,
};
