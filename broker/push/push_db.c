/* SPDX-License-Identifier: Apache-2.0 */
/*
 * push_db.h over SQLite: prepared statements kept for the life of the
 * connection, WAL, a short busy timeout (the file may be shared with the
 * inbox's store thread, whose transactions are short; the broker thread
 * must not wait long), and checkpoints on a thread of their own.
 */
#include "push_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <time.h>

#include <sqlite3.h>

#include "log.h"

#define PUSH_DB_BUSY_MS 200
/* The checkpointer copies the WAL into the database this often. */
#define PUSH_DB_CHECKPOINT_MS 1000

enum {
	ST_DEV_DEL_TOKEN, /* the (platform, token) under another device */
	ST_DEV_PUT,
	ST_DEV_DEL,
	ST_DEV_DEL_IF_TOKEN,
	ST_DEV_LOAD,
	ST_OB_INSERT,
	ST_OB_UPDATE,
	ST_OB_DELETE,
	ST_OB_LOAD,
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_COUNT
};

static const char *const sql_text[ST_COUNT] = {
    [ST_DEV_DEL_TOKEN] = "DELETE FROM push_devices WHERE platform = ?1 AND token = ?2 "
                         "AND NOT (uid = ?3 AND device = ?4)",
    [ST_DEV_PUT] = "INSERT OR REPLACE INTO push_devices(uid, device, platform, token, app, "
                   "sandbox, registered_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_DEV_DEL] = "DELETE FROM push_devices WHERE uid = ?1 AND device = ?2",
    [ST_DEV_DEL_IF_TOKEN] = "DELETE FROM push_devices WHERE uid = ?1 AND device = ?2 AND "
                            "token = ?3",
    [ST_DEV_LOAD] = "SELECT uid, device, platform, token, app, sandbox FROM push_devices",
    [ST_OB_INSERT] = "INSERT INTO push_outbox(uid, device, platform, seq, from_uid, kind, type, "
                     "count, title, body, expires_at_ms, attempts, due_ms) VALUES "
                     "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [ST_OB_UPDATE] = "UPDATE push_outbox SET seq = ?4, from_uid = ?5, kind = ?6, type = ?7, "
                     "count = ?8, title = ?9, body = ?10, expires_at_ms = ?11, attempts = ?12, "
                     "due_ms = ?13 WHERE id = ?14",
    [ST_OB_DELETE] = "DELETE FROM push_outbox WHERE id = ?1",
    [ST_OB_LOAD] = "SELECT id, uid, device, platform, seq, from_uid, kind, type, count, title, "
                   "body, expires_at_ms, attempts, due_ms FROM push_outbox ORDER BY id",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS push_devices("
    " uid TEXT NOT NULL, device TEXT NOT NULL, platform TEXT NOT NULL,"
    " token TEXT NOT NULL, app TEXT NOT NULL DEFAULT '', sandbox INTEGER NOT NULL DEFAULT 0,"
    " registered_ms INTEGER NOT NULL, PRIMARY KEY (uid, device));"
    "CREATE UNIQUE INDEX IF NOT EXISTS push_devices_token ON push_devices(platform, token);"
    "CREATE TABLE IF NOT EXISTS push_outbox("
    " id INTEGER PRIMARY KEY, uid TEXT NOT NULL, device TEXT NOT NULL,"
    " platform TEXT NOT NULL, seq INTEGER NOT NULL, from_uid TEXT NOT NULL,"
    " kind INTEGER NOT NULL, type TEXT NOT NULL, count INTEGER NOT NULL,"
    " title TEXT NOT NULL, body TEXT NOT NULL, expires_at_ms INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL, due_ms INTEGER NOT NULL);";

/*
 * Checkpoints run on a thread of their own with its own connection: a
 * checkpoint writes the WAL back into the database and syncs both files,
 * tens of milliseconds on a slow disk, which the broker thread must not
 * wait for (its connection has automatic checkpoints off). PASSIVE: it
 * never blocks the broker thread's writes.
 */
struct push_checkpointer {
	sqlite3 *db;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	bool started;
};

struct push_db {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	bool in_tx;
	struct push_checkpointer cp;
};

static void *checkpointer_main(void *arg)
{
	struct push_checkpointer *cp = arg;
	struct timespec until;

	pthread_mutex_lock(&cp->mu);
	while (!cp->stop) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += (PUSH_DB_CHECKPOINT_MS % 1000) * 1000000L;
		until.tv_sec += PUSH_DB_CHECKPOINT_MS / 1000 + until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&cp->cv, &cp->mu, &until);
		if (cp->stop) {
			break;
		}
		pthread_mutex_unlock(&cp->mu);
		/* Busy (a writer in the way) is fine: the next round catches up. */
		sqlite3_wal_checkpoint_v2(cp->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		pthread_mutex_lock(&cp->mu);
	}
	pthread_mutex_unlock(&cp->mu);
	return NULL;
}

static int checkpointer_start(struct push_checkpointer *cp, const char *path, char *err,
                              size_t errlen)
{
	if (sqlite3_open_v2(path, &cp->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open a second connection: %s",
		         cp->db ? sqlite3_errmsg(cp->db) : "out of memory");
		return -1;
	}
	sqlite3_busy_timeout(cp->db, PUSH_DB_BUSY_MS);
	pthread_mutex_init(&cp->mu, NULL);
	pthread_cond_init(&cp->cv, NULL);
	if (pthread_create(&cp->thread, NULL, checkpointer_main, cp) != 0) {
		snprintf(err, errlen, "cannot start the checkpoint thread");
		pthread_mutex_destroy(&cp->mu);
		pthread_cond_destroy(&cp->cv);
		return -1;
	}
	cp->started = true;
	return 0;
}

static void checkpointer_stop(struct push_checkpointer *cp)
{
	if (cp->started) {
		pthread_mutex_lock(&cp->mu);
		cp->stop = true;
		pthread_cond_signal(&cp->cv);
		pthread_mutex_unlock(&cp->mu);
		pthread_join(cp->thread, NULL);
		pthread_mutex_destroy(&cp->mu);
		pthread_cond_destroy(&cp->cv);
		cp->started = false;
	}
	sqlite3_close(cp->db); /* NULL is a no-op */
	cp->db = NULL;
}

static int db_fail(struct push_db *db, const char *what)
{
	pg_log(PG_LOG_ERR, "pigeon_push: database: %s: %s", what, sqlite3_errmsg(db->db));
	return -1;
}

/* Runs a statement whose parameters are bound; resets it whatever happens. */
static int db_step(struct push_db *db, int which, const char *what)
{
	sqlite3_stmt *s = db->st[which];
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		return db_fail(db, what);
	}
	return 0;
}

int push_db_open(const char *path, struct push_db **out, char *err, size_t errlen)
{
	struct push_db *db = calloc(1, sizeof(*db));
	char *msg = NULL;
	int i;

	*out = NULL;
	if (db == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (sqlite3_open_v2(path, &db->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "cannot open: %s",
		         db->db ? sqlite3_errmsg(db->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(db->db, PUSH_DB_BUSY_MS);
	if (sqlite3_exec(db->db,
	                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
	                 " PRAGMA wal_autocheckpoint=0;",
	                 NULL, NULL, &msg) != SQLITE_OK ||
	    sqlite3_exec(db->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "cannot create the push tables: %s",
		         msg ? msg : sqlite3_errmsg(db->db));
		sqlite3_free(msg);
		goto fail;
	}
	for (i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(db->db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT,
		                       &db->st[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "cannot prepare a statement: %s",
			         sqlite3_errmsg(db->db));
			goto fail;
		}
	}
	if (checkpointer_start(&db->cp, path, err, errlen) != 0) {
		goto fail;
	}
	*out = db;
	return 0;
fail:
	push_db_close(db);
	return -1;
}

void push_db_close(struct push_db *db)
{
	int i;

	if (db == NULL) {
		return;
	}
	if (db->in_tx) {
		push_db_rollback(db);
	}
	checkpointer_stop(&db->cp);
	for (i = 0; i < ST_COUNT; i++) {
		sqlite3_finalize(db->st[i]);
	}
	/* The last connection to close checkpoints what is left in the WAL. */
	sqlite3_close(db->db);
	free(db);
}

int push_db_begin(struct push_db *db)
{
	if (db_step(db, ST_BEGIN, "begin") != 0) {
		return -1;
	}
	db->in_tx = true;
	return 0;
}

int push_db_commit(struct push_db *db)
{
	if (db_step(db, ST_COMMIT, "commit") != 0) {
		push_db_rollback(db);
		return -1;
	}
	db->in_tx = false;
	return 0;
}

void push_db_rollback(struct push_db *db)
{
	/* Fails harmlessly if SQLite already rolled the transaction back. */
	sqlite3_step(db->st[ST_ROLLBACK]);
	sqlite3_reset(db->st[ST_ROLLBACK]);
	db->in_tx = false;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	sqlite3_bind_text(s, i, v ? v : "", -1, SQLITE_STATIC);
}

int push_db_device_put(struct push_db *db, const struct push_db_device *d, int64_t now_ms)
{
	const char *platform = pg_push_platform_name(d->platform);
	sqlite3_stmt *s;
	bool own_tx = !db->in_tx;

	if (own_tx && push_db_begin(db) != 0) {
		return -1;
	}
	s = db->st[ST_DEV_DEL_TOKEN];
	bind_text(s, 1, platform);
	bind_text(s, 2, d->token);
	bind_text(s, 3, d->uid);
	bind_text(s, 4, d->device);
	if (db_step(db, ST_DEV_DEL_TOKEN, "move a device token") != 0) {
		goto fail;
	}
	s = db->st[ST_DEV_PUT];
	bind_text(s, 1, d->uid);
	bind_text(s, 2, d->device);
	bind_text(s, 3, platform);
	bind_text(s, 4, d->token);
	bind_text(s, 5, d->app);
	sqlite3_bind_int(s, 6, d->sandbox);
	sqlite3_bind_int64(s, 7, now_ms);
	if (db_step(db, ST_DEV_PUT, "register a device") != 0) {
		goto fail;
	}
	return own_tx ? push_db_commit(db) : 0;
fail:
	if (own_tx) {
		push_db_rollback(db);
	}
	return -1;
}

int push_db_device_delete(struct push_db *db, const char *uid, const char *device,
                          const char *token)
{
	int which = token ? ST_DEV_DEL_IF_TOKEN : ST_DEV_DEL;
	sqlite3_stmt *s = db->st[which];

	bind_text(s, 1, uid);
	bind_text(s, 2, device);
	if (token) {
		bind_text(s, 3, token);
	}
	return db_step(db, which, "remove a device");
}

static const char *col_text(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return t ? (const char *)t : "";
}

int push_db_devices_load(struct push_db *db, void (*fn)(const struct push_db_device *d, void *ud),
                         void *ud)
{
	sqlite3_stmt *s = db->st[ST_DEV_LOAD];
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct push_db_device d = {
		    .uid = col_text(s, 0),
		    .device = col_text(s, 1),
		    .token = col_text(s, 3),
		    .app = col_text(s, 4),
		    .sandbox = sqlite3_column_int(s, 5) != 0,
		};

		if (pg_push_platform_parse(col_text(s, 2), &d.platform) != 0) {
			pg_log(PG_LOG_WARNING,
			       "pigeon_push: device %s:%s has an unknown platform "
			       "'%s': skipped",
			       d.uid, d.device, col_text(s, 2));
			continue;
		}
		fn(&d, ud);
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : db_fail(db, "load the devices");
}

static void bind_job(sqlite3_stmt *s, const struct pg_push_job *job, uint32_t attempts,
                     int64_t due_ms)
{
	bind_text(s, 1, job->uid);
	bind_text(s, 2, job->device);
	bind_text(s, 3, pg_push_platform_name(job->platform));
	sqlite3_bind_int64(s, 4, (sqlite3_int64)job->seq);
	bind_text(s, 5, job->from);
	sqlite3_bind_int(s, 6, (int)job->kind);
	bind_text(s, 7, job->type);
	sqlite3_bind_int64(s, 8, job->count);
	bind_text(s, 9, job->title);
	bind_text(s, 10, job->body);
	sqlite3_bind_int64(s, 11, job->expires_at_ms);
	sqlite3_bind_int64(s, 12, attempts);
	sqlite3_bind_int64(s, 13, due_ms);
}

int push_db_outbox_insert(struct push_db *db, const struct pg_push_job *job, uint32_t attempts,
                          int64_t due_ms, uint64_t *id)
{
	bind_job(db->st[ST_OB_INSERT], job, attempts, due_ms);
	if (db_step(db, ST_OB_INSERT, "add a push to the outbox") != 0) {
		return -1;
	}
	*id = (uint64_t)sqlite3_last_insert_rowid(db->db);
	return 0;
}

int push_db_outbox_update(struct push_db *db, uint64_t id, const struct pg_push_job *job,
                          uint32_t attempts, int64_t due_ms)
{
	sqlite3_stmt *s = db->st[ST_OB_UPDATE];

	bind_job(s, job, attempts, due_ms);
	sqlite3_bind_int64(s, 14, (sqlite3_int64)id);
	return db_step(db, ST_OB_UPDATE, "update an outbox push");
}

int push_db_outbox_delete(struct push_db *db, uint64_t id)
{
	sqlite3_bind_int64(db->st[ST_OB_DELETE], 1, (sqlite3_int64)id);
	return db_step(db, ST_OB_DELETE, "remove a push from the outbox");
}

static void copy_col(char *dst, size_t size, sqlite3_stmt *s, int i)
{
	snprintf(dst, size, "%s", col_text(s, i));
}

int push_db_outbox_load(struct push_db *db,
                        void (*fn)(const struct pg_push_job *job, uint32_t attempts, int64_t due_ms,
                                   void *ud),
                        void *ud)
{
	sqlite3_stmt *s = db->st[ST_OB_LOAD];
	struct pg_push_job *job = malloc(sizeof(*job));
	int rc;

	if (job == NULL) {
		return -1;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int kind = sqlite3_column_int(s, 6);

		memset(job, 0, sizeof(*job));
		job->id = (uint64_t)sqlite3_column_int64(s, 0);
		copy_col(job->uid, sizeof(job->uid), s, 1);
		copy_col(job->device, sizeof(job->device), s, 2);
		if (pg_push_platform_parse(col_text(s, 3), &job->platform) != 0 ||
		    (kind != PG_PUSH_KIND_CHAT && kind != PG_PUSH_KIND_NOTIFY)) {
			continue; /* not ours to understand: left in place */
		}
		job->seq = (uint64_t)sqlite3_column_int64(s, 4);
		copy_col(job->from, sizeof(job->from), s, 5);
		job->kind = (enum pg_push_kind)kind;
		copy_col(job->type, sizeof(job->type), s, 7);
		job->count = (uint32_t)sqlite3_column_int64(s, 8);
		copy_col(job->title, sizeof(job->title), s, 9);
		copy_col(job->body, sizeof(job->body), s, 10);
		job->expires_at_ms = sqlite3_column_int64(s, 11);
		fn(job, (uint32_t)sqlite3_column_int64(s, 12), sqlite3_column_int64(s, 13), ud);
	}
	sqlite3_reset(s);
	free(job);
	return rc == SQLITE_DONE ? 0 : db_fail(db, "load the outbox");
}
