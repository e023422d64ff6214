/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The message store (docs/protocol.md, docs/store.md): per-user sequence numbers, stored CHAT and
 * NOTIFY messages with same-type merging, device cursors, dedup, retention,
 * and the set of users marked online. One small interface over two layers:
 *
 *   accept / ack / presence  -> a journal record (journal.h), durable when
 *                               the call returns: the caller may acknowledge
 *   sync / head              <- SQLite (what the store thread has applied)
 *                               merged with the records not yet applied
 *
 * The store thread applies journal records to SQLite in large transactions
 * (WAL); on open, records not yet applied are replayed first. So the broker
 * thread pays one write(2) per accepted message, not one SQLite commit.
 *
 * Thread rules: every function here is for one thread, the broker thread
 * (the store thread is internal). Per-user state (head seq, notify slots,
 * cursors) is kept in memory, loaded from SQLite on first use, released
 * once the user is idle and everything of theirs is in SQLite.
 *
 * Faults: no function here waits for the store thread (pg_store_flush
 * aside). While SQLite cannot take writes (disk full, locked, read-only),
 * records wait in the journal and in memory up to the backlog bound;
 * beyond it new stored sends get PG_ERR_BUSY, and the store catches up by
 * itself once SQLite works again (docs/store.md).
 */
#ifndef PIGEON_STORE_H
#define PIGEON_STORE_H

#include "export.h"
#include "histogram.h"
#include "result.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pigeon.pb-c.h"

struct pg_store;

struct pg_store_config {
	const char *db_path;     /* SQLite file; journal segments beside it */
	bool sync_full;          /* fdatasync every journal append (power-loss safe) */
	uint64_t ttl_s;          /* default and longest message TTL */
	uint32_t max_per_user;   /* stored messages kept per user */
	uint64_t dedup_window_s; /* how long a (sender, recipient, msg_id) is remembered */
	/*
	 * Backlog bound: records journaled but not yet in SQLite beyond which
	 * accept answers PG_ERR_BUSY (0: 65536 records, 64 MiB).
	 */
	uint32_t backlog_max;
	size_t backlog_max_bytes;
	/*
	 * Users whose state (head, notification slots, device cursors) stays
	 * in memory between requests (0: 100,000); beyond, the least recently
	 * used are reloaded from the database on their next use.
	 */
	uint32_t users_max;
	/*
	 * The database behind the store (read during pg_store_open): NULL or
	 * "sqlite". "faulty:<name>" wraps <name> for tests
	 * (pg_store_test_hold_applier).
	 */
	const char *backend;
};

/*
 * Opens (creating or migrating) the database, replays the journal, starts
 * the store thread. Returns 0, or -1 with err set.
 */
PG_EXPORT int pg_store_open(const struct pg_store_config *cfg, struct pg_store **out, char *err,
                            size_t errlen);

/* Applies everything journaled, stops the store thread, closes. NULL is a no-op. */
PG_EXPORT void pg_store_close(struct pg_store *st);

/* A message to accept (borrowed strings; NULL or "" for absent ones). */
struct pg_store_msg {
	Pigeon__Kind kind;
	const char *from;
	const char *to;
	const char *type;   /* NOTIFY */
	const char *msg_id; /* dedup key with from and to */
	const char *content_type;
	const uint8_t *body;
	size_t body_len;
	uint32_t ttl_s; /* 0: the configured TTL */
	const char *push_title;
	const char *push_body;
	int64_t now_ms;
};

struct pg_store_accepted {
	uint64_t seq;      /* 0 for INSTANT */
	uint32_t merged;   /* NOTIFY: unacked notifications of the type it replaced */
	bool duplicate;    /* (from, to, msg_id) seen in the window: seq is the original's */
	uint8_t *envelope; /* packed Envelope to deliver (NULL for a duplicate) */
	size_t envelope_len;
};

/*
 * Every function here that can fail returns a pg_result (common/result.h):
 * PG_OK, PG_ERR_INVALID (a bad argument: kind, identifiers), PG_ERR_IO (the
 * journal or database failed: nothing was accepted), PG_ERR_NOMEM, or
 * PG_ERR_BUSY (the backlog is at its bound: nothing was accepted).
 */

/*
 * Accepts a message: CHAT and NOTIFY get the recipient's next seq, are
 * journaled (durable on return) and will be stored; a NOTIFY replaces the
 * stored one of its type. INSTANT only gets its envelope. A duplicate
 * (from, to, msg_id) returns the original seq with duplicate set and changes
 * nothing. The envelope is allocated with alloc (so a Mosquitto plugin can
 * hand it to the broker) and owned by the caller on PG_OK; on any
 * other status it has been freed with release and out->envelope is NULL.
 * PG_ERR_BUSY: the backlog is full (SQLite failing or far behind); the
 * send may be retried later.
 */
PG_EXPORT int pg_store_accept(struct pg_store *st, const struct pg_store_msg *msg,
                              void *(*alloc)(size_t), void (*release)(void *),
                              struct pg_store_accepted *out);

/*
 * Moves uid's device cursor to seq if that is forward (journaled when it
 * moves). *cursor is the cursor afterwards. PG_ERR_INVALID if seq is
 * beyond the user's head; PG_ERR_BUSY if even the backlog's reserve for
 * acks is full (the cursor did not move).
 */
PG_EXPORT int pg_store_ack(struct pg_store *st, const char *uid, const char *device, uint64_t seq,
                           uint64_t *cursor);

/*
 * The stored messages of uid with seq > after_seq, ascending, at most limit
 * and at most max_bytes of packed envelopes (each counted with its field
 * header in a SyncReply; at least one message whatever its size), with
 * head_seq, more and oldest_seq (the lowest seq still stored, head_seq + 1
 * when none is). Only the messages returned are read and unpacked.
 * *out is freed with pg_store_sync_free.
 */
PG_EXPORT int pg_store_sync(struct pg_store *st, const char *uid, uint64_t after_seq,
                            uint32_t limit, size_t max_bytes, int64_t now_ms,
                            Pigeon__SyncReply **out);
PG_EXPORT void pg_store_sync_free(Pigeon__SyncReply *reply);

/* The user's latest seq (0 if none yet). */
PG_EXPORT int pg_store_head(struct pg_store *st, const char *uid, uint64_t *head);

/*
 * Device's cursor and the number of stored messages above it (unread).
 * Cheap whatever the inbox holds (it counts whichever side of the cursor
 * is small, at most a few hundred index entries), exact but for messages
 * that expired in the last second or so; only a cursor with more than 500
 * messages on both sides costs a count of what is above it, up to
 * PG_STORE_UNREAD_MAX (the answer then says at most that).
 */
#define PG_STORE_UNREAD_MAX 10000
PG_EXPORT int pg_store_unread(struct pg_store *st, const char *uid, const char *device,
                              int64_t now_ms, uint64_t *cursor, uint64_t *unread);

/* Records (journaled) that uid is shown online or offline. */
PG_EXPORT int pg_store_set_presence(struct pg_store *st, const char *uid, bool online);

/* Calls fn for every user recorded online (at start: left over by a crash). */
PG_EXPORT void pg_store_foreach_online(struct pg_store *st, void (*fn)(const char *uid, void *ud),
                                       void *ud);

/* Housekeeping on the broker thread (the plugin's tick): releases applied state. */
PG_EXPORT void pg_store_tick(struct pg_store *st, int64_t now_ms);

struct pg_store_stats {
	uint64_t accepted; /* CHAT + NOTIFY journaled */
	uint64_t merged;   /* NOTIFYs that replaced a stored one */
	uint64_t duplicates;
	uint64_t acks;
	uint64_t syncs;
	uint64_t expired; /* removed by TTL (store thread) */
	uint64_t capped;  /* removed by the per-user cap (store thread) */
	uint64_t pending; /* journaled, not yet in SQLite */
	uint64_t pending_bytes;
	uint64_t apply_errors; /* SQLite failures of the store thread (retried) */
	uint64_t busy;         /* records refused: backlog at its bound */
	uint64_t users;        /* users whose state is in memory */
	bool failing;          /* the store thread's last SQLite write failed */
	bool journal_failing;  /* the last journal append failed (a send refused PG_ERR_IO) */
};
PG_EXPORT void pg_store_get_stats(struct pg_store *st, struct pg_store_stats *out);

/*
 * Whether the store takes writes now: false while the last journal append
 * failed (disk full: the record was refused PG_ERR_IO; cleared by the next
 * append that succeeds) or while the store thread's last database batch
 * failed (locked, read-only, disk full: stats.failing; cleared by its next
 * commit). Reads two flags, so it may be called on every loop iteration.
 */
PG_EXPORT bool pg_store_writable(struct pg_store *st);

/*
 * Seconds per database batch on the store thread, begin to commit, one
 * observation per committed batch (pg_histogram_store_apply_seconds; failed
 * batches are not observed). Owned by the store and valid until
 * pg_store_close; the store thread writes it, the broker thread may format
 * it at any time (histogram.h).
 */
PG_EXPORT const struct pg_histogram *pg_store_apply_histogram(struct pg_store *st);

/*
 * Blocks until the store thread has applied everything journaled so far, or
 * at most 10 s (a failing store). True if everything was applied.
 */
PG_EXPORT bool pg_store_flush(struct pg_store *st);

/*
 * For tests, on a store opened with backend "faulty:...": while hold is
 * set, the store thread's writes fail as if another process held the
 * database locked (it retries, and records wait in the journal and the
 * backlog, as in production); once cleared, the next retry applies them
 * (pg_store_flush cuts the pause short). Any thread. PG_ERR_INVALID for
 * another backend.
 */
PG_EXPORT int pg_store_test_hold_applier(struct pg_store *st, bool hold);

#endif
