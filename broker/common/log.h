/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One log path for every thread. Mosquitto's mosquitto_log_printf may only
 * be called on the broker thread, and pigeon has other threads (the store
 * thread, later push workers). A plugin installs a sink at init, on the
 * broker thread; pg_log on that thread writes through the sink at once,
 * pg_log on any other thread queues the line, and the plugin drains the
 * queue on the broker thread (MOSQ_EVT_TICK), so every line ends up where
 * Mosquitto's log_dest says, in the order each thread logged it.
 *
 * The queue is bounded (PG_LOG_QUEUE lines); lines beyond it are dropped
 * and counted, and the next drain says how many. With no sink installed
 * (tools, unit tests) lines go to stderr. Lines longer than PG_LOG_LINE_MAX
 * are cut. Every function here is thread-safe.
 */
#ifndef PIGEON_LOG_H
#define PIGEON_LOG_H

#include "export.h"
#include "result.h"

#define PG_LOG_QUEUE 1024
#define PG_LOG_LINE_MAX 512

enum pg_log_level {
	PG_LOG_ERR,
	PG_LOG_WARNING,
	PG_LOG_NOTICE,
	PG_LOG_INFO,
	PG_LOG_DEBUG,
};

/* Writes one line (no newline) somewhere; called on the sink's thread only. */
typedef void (*pg_log_sink_fn)(enum pg_log_level level, const char *line, void *ud);

/*
 * Installs fn as the sink; the calling thread becomes the one whose lines
 * are written at once. Several plugins may each install one: the last
 * installed is used until it is removed. Returns PG_OK, or PG_ERR_NOMEM when too many are
 * installed (the previous sink stays).
 */
PG_EXPORT int pg_log_add_sink(pg_log_sink_fn fn, void *ud);

/* Removes a sink added with these arguments (its queued lines are drained to
 * it first when called on the sink thread). */
PG_EXPORT void pg_log_remove_sink(pg_log_sink_fn fn, void *ud);

/* Logs one line at level, printf-style. Never blocks on I/O off the sink thread. */
PG_EXPORT void pg_log(enum pg_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Writes queued lines through the sink; call on the sink thread (a tick). */
PG_EXPORT void pg_log_drain(void);

#endif
