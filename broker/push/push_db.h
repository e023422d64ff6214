/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The push module's SQLite tables (the only file that includes sqlite3.h
 * is push_db.c): devices, and the outbox of pushes not yet done. The file
 * may be the inbox's own (the tables have their own names) or another.
 *
 *   push_devices(uid, device, platform, token, app, sandbox, registered_ms)
 *       primary key (uid, device); unique (platform, token)
 *   push_outbox(id, uid, device, platform, seq, from_uid, kind, type,
 *       count, title, body, expires_at_ms, attempts, due_ms)
 *
 * WAL, synchronous NORMAL: a commit survives the broker process dying.
 * Checkpoints (the WAL written back, both files synced) run on a thread of
 * push_db's own, never on the caller's.
 * Thread rule: one thread (the broker thread). Every function returns 0, or
 * -1 with the SQLite error logged (pg_log) and nothing changed.
 */
#ifndef PIGEON_PUSH_DB_H
#define PIGEON_PUSH_DB_H

#include <stdbool.h>
#include <stdint.h>

#include "job.h"

struct push_db;

struct push_db_device {
	const char *uid;
	const char *device;
	enum pg_push_platform platform;
	const char *token;
	const char *app;
	bool sandbox;
};

/* Opens or creates the tables at path. 0, or -1 with err set. */
int push_db_open(const char *path, struct push_db **out, char *err, size_t errlen);
void push_db_close(struct push_db *db);

/* One transaction around several writes (nesting is not supported). */
int push_db_begin(struct push_db *db);
int push_db_commit(struct push_db *db);
void push_db_rollback(struct push_db *db);

/* Inserts or replaces (uid, device); the same (platform, token) under any
 * other device is deleted first, in the same transaction. */
int push_db_device_put(struct push_db *db, const struct push_db_device *d, int64_t now_ms);
/* Deletes (uid, device); with token, only if the device still has it. */
int push_db_device_delete(struct push_db *db, const char *uid, const char *device,
                          const char *token);
int push_db_devices_load(struct push_db *db,
                         void (*fn)(const struct push_db_device *d, void *ud), void *ud);

/* job's content (uid, device, platform, seq, ...), attempts done so far and due time. */
int push_db_outbox_insert(struct push_db *db, const struct pg_push_job *job, uint32_t attempts,
                          int64_t due_ms, uint64_t *id);
int push_db_outbox_update(struct push_db *db, uint64_t id, const struct pg_push_job *job,
                          uint32_t attempts, int64_t due_ms);
int push_db_outbox_delete(struct push_db *db, uint64_t id);
/* Calls fn for each row, oldest first (job->id set, token/app/badge empty). */
int push_db_outbox_load(struct push_db *db,
                        void (*fn)(const struct pg_push_job *job, uint32_t attempts,
                                   int64_t due_ms, void *ud),
                        void *ud);

#endif
