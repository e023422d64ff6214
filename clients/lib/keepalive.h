/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Adaptive heartbeat (docs/client.md, "Keepalive"): how long an idle
 * connection waits before it proves it is alive. Mobile networks drop idle
 * NAT mappings after an unknown time without telling either end; a phone
 * that heartbeats too often wakes its radio for nothing, one that
 * heartbeats too rarely loses its connection silently. So: start from a
 * safe interval, lengthen it by a step after a few heartbeats at it were
 * answered, and when one goes unanswered (the connection died silently),
 * fall back to the last interval that worked and settle there. Repeated
 * deaths at the settled interval mean the network changed: start over
 * from the safe one. After a long settled time, probe upward again.
 *
 * Pure logic on a caller-given clock (milliseconds), so tests drive it
 * with a fake one. One thread; no locking.
 */
#ifndef PIGEON_CLIENT_KEEPALIVE_H
#define PIGEON_CLIENT_KEEPALIVE_H

#include <stdbool.h>
#include <stdint.h>

struct pgc_keepalive_config {
	uint32_t min_s;     /* the safe interval to start from (60) */
	uint32_t max_s;     /* never longer (600; raised to min_s if below) */
	uint32_t step_s;    /* lengthen by this much (30) */
	uint32_t confirm;   /* answered heartbeats at an interval before lengthening (3) */
	uint32_t reprobe_s; /* settled this long: probe upward again (1800) */
};

struct pgc_keepalive {
	struct pgc_keepalive_config cfg;
	uint32_t interval_s; /* the current interval */
	uint32_t good_s;     /* the longest interval known to survive (0: none yet) */
	uint32_t answered;   /* answered heartbeats at interval_s */
	uint32_t deaths;     /* consecutive silent deaths at the settled interval */
	bool settled;
	uint64_t settled_at_ms;
};

/* Starts at cfg->min_s; zero fields take the defaults above. */
void pgc_keepalive_init(struct pgc_keepalive *k, const struct pgc_keepalive_config *cfg);

/* The interval to wait, idle, before the next heartbeat (seconds). */
uint32_t pgc_keepalive_interval(const struct pgc_keepalive *k);

/*
 * A heartbeat sent after interval_s of idleness was answered (idle: true
 * only when nothing else crossed the connection meanwhile, so the
 * interval was really tested). Idle: counts towards `confirm` (probing) or
 * clears the death count (settled). Either kind, once settled for
 * reprobe_s: probes one step up from the settled interval.
 */
void pgc_keepalive_answered(struct pgc_keepalive *k, bool idle, uint64_t now_ms);

/*
 * A heartbeat went unanswered: the connection died silently at interval_s.
 * Probing: back to good_s (min_s when none), settled. Settled: counted;
 * the second in a row, or any death at min_s, restarts from min_s with
 * good_s forgotten.
 */
void pgc_keepalive_died(struct pgc_keepalive *k, uint64_t now_ms);

#endif
