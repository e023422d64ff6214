/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Log-line limiter: a token bucket plus a count of what it held back
 * (loglimit.h). The bucket starts full, so a client's first PG_LOGLIMIT_BURST
 * refusals are always logged in full.
 */
#include "loglimit.h"

#include <inttypes.h>
#include <stdio.h>

#define LOGLIMIT_RATE (1000.0 / PG_LOGLIMIT_INTERVAL_MS)

static void loglimit_take_note(struct pg_loglimit *ll, int64_t now_ms,
                               struct pg_loglimit_note *note)
{
	note->held = ll->held;
	note->span_ms = ll->held && now_ms > ll->held_since_ms ? now_ms - ll->held_since_ms : 0;
	ll->held = 0;
	ll->held_since_ms = 0;
}

bool pg_loglimit_allow(struct pg_loglimit *ll, int64_t now_ms, struct pg_loglimit_note *note)
{
	/* pg_bucket treats last_ms 0 as "new"; a clock at 0 must not refill it. */
	if (now_ms <= 0) {
		now_ms = 1;
	}
	if (!pg_bucket_take(&ll->bucket, LOGLIMIT_RATE, PG_LOGLIMIT_BURST, now_ms)) {
		if (ll->held++ == 0) {
			ll->held_since_ms = now_ms;
		}
		return false;
	}
	loglimit_take_note(ll, now_ms, note);
	return true;
}

void pg_loglimit_flush(struct pg_loglimit *ll, int64_t now_ms, struct pg_loglimit_note *note)
{
	loglimit_take_note(ll, now_ms, note);
}

const char *pg_loglimit_summary(const struct pg_loglimit_note *note, const char *what,
                                const char *who, char *buf, size_t cap)
{
	/* Round the span up: "in the last 0 s" would read as nothing. */
	int64_t s = (note->span_ms + 999) / 1000;

	if (cap == 0) {
		return buf;
	}
	snprintf(buf, cap, "%" PRIu64 " more %s from %s suppressed in the last %" PRId64 " s",
	         note->held, what, who, s > 0 ? s : 1);
	return buf;
}
