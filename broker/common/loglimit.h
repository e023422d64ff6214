/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Log-line limiter for repetitive per-client lines (refused publishes,
 * subscriptions and sends): a client that keeps doing what it may not must
 * not be able to fill the broker's log, yet an operator must still learn
 * that it happened and how often.
 *
 * A token bucket (ratelimit.c) of PG_LOGLIMIT_BURST lines refilled at one
 * line per PG_LOGLIMIT_INTERVAL_MS: a few lines at once, then one now and
 * then. Lines held back are counted, and the next line let through (or a
 * final flush when the client leaves) carries the count and the time span,
 * so "N more refusals suppressed in the last T s" can be written. Counting
 * the refusals themselves (the $SYS counters) is the caller's business and
 * never depends on this.
 *
 * The caller owns the struct (zeroed = fresh); no allocation, no locking:
 * each limiter is used by one thread (pigeon's: the broker thread).
 */
#ifndef PIGEON_LOGLIMIT_H
#define PIGEON_LOGLIMIT_H

#include "export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ratelimit.h"

#define PG_LOGLIMIT_BURST 5
#define PG_LOGLIMIT_INTERVAL_MS 10000

struct pg_loglimit {
	struct pg_bucket bucket;
	uint64_t held;         /* lines held back since the last one let through */
	int64_t held_since_ms; /* when the first of those was held back */
};

/* What was held back before the line now let through. */
struct pg_loglimit_note {
	uint64_t held;   /* 0: nothing */
	int64_t span_ms; /* from the first line held back to now */
};

/*
 * One more line about this source at now_ms. Returns true if it may be
 * logged; then *note says how many were held back before it (and the limiter
 * forgets them). Returns false if it must not be logged: it is counted.
 */
PG_EXPORT bool pg_loglimit_allow(struct pg_loglimit *ll, int64_t now_ms,
                                 struct pg_loglimit_note *note);

/*
 * Takes what is held back without letting a line through (the source is
 * going away): fills *note (held 0 if nothing) and forgets it.
 */
PG_EXPORT void pg_loglimit_flush(struct pg_loglimit *ll, int64_t now_ms,
                                 struct pg_loglimit_note *note);

/*
 * Writes "<held> more <what> from <who> suppressed in the last <T> s" into
 * buf (cap bytes, always NUL-terminated, truncated if short). Returns buf.
 */
PG_EXPORT const char *pg_loglimit_summary(const struct pg_loglimit_note *note, const char *what,
                                          const char *who, char *buf, size_t cap);

#endif
