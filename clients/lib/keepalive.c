/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The adaptive heartbeat (keepalive.h; docs/client.md, "Keepalive: how the
 * interval adapts"). The whole decision, as a state machine over two
 * events:
 *
 *   probing   interval_s above good_s (or good_s unknown). `confirm`
 *             idle heartbeats answered in a row at interval_s prove it:
 *             good_s = interval_s, then interval_s += step_s (capped at
 *             max_s); a proven max_s settles.
 *   settled   interval_s is the one to keep. An idle answer clears the
 *             death count; the first answer (idle or not) once reprobe_s
 *             have passed since settling probes upward again from here.
 *
 *   died      at min_s: the network changed (the safe interval failed):
 *             forget good_s, probe from min_s. Probing: fall back to good_s
 *             (min_s when none) and settle there. Settled: count it; the
 *             second death in a row at the settled interval means the
 *             network changed: forget good_s, probe from min_s.
 *
 * A non-idle answer proves nothing about idle survival (traffic kept the
 * NAT mapping fresh), so it never counts towards `confirm`.
 *
 * Pure and deterministic: the caller passes the clock (ms, monotonic).
 * One thread; no locking.
 */
#include <stddef.h>

#include "keepalive.h"

#define KEEPALIVE_MIN_S 60
#define KEEPALIVE_MAX_S 600
#define KEEPALIVE_STEP_S 30
#define KEEPALIVE_CONFIRM 3
#define KEEPALIVE_REPROBE_S 1800
#define KEEPALIVE_DEATHS_TO_RESTART 2

void pgc_keepalive_init(struct pgc_keepalive *k, const struct pgc_keepalive_config *cfg)
{
	struct pgc_keepalive_config c = {0};

	if (cfg != NULL)
		c = *cfg;
	if (c.min_s == 0)
		c.min_s = KEEPALIVE_MIN_S;
	if (c.max_s == 0)
		c.max_s = c.min_s > KEEPALIVE_MAX_S ? c.min_s : KEEPALIVE_MAX_S;
	if (c.max_s < c.min_s)
		c.max_s = c.min_s;
	if (c.step_s == 0)
		c.step_s = KEEPALIVE_STEP_S;
	if (c.confirm == 0)
		c.confirm = KEEPALIVE_CONFIRM;
	if (c.reprobe_s == 0)
		c.reprobe_s = KEEPALIVE_REPROBE_S;
	*k = (struct pgc_keepalive){.cfg = c, .interval_s = c.min_s};
}

uint32_t pgc_keepalive_interval(const struct pgc_keepalive *k)
{
	return k->interval_s;
}

/* Probing again from min_s, knowing nothing: the network is not the one we learned. */
static void keepalive_restart(struct pgc_keepalive *k)
{
	k->interval_s = k->cfg.min_s;
	k->good_s = 0;
	k->answered = 0;
	k->deaths = 0;
	k->settled = false;
}

static void keepalive_settle(struct pgc_keepalive *k, uint64_t now_ms)
{
	k->settled = true;
	k->settled_at_ms = now_ms;
	k->answered = 0;
	k->deaths = 0;
}

/* The next interval up: step_s more, never past max_s (no overflow). */
static uint32_t keepalive_longer(const struct pgc_keepalive *k, uint32_t s)
{
	return k->cfg.max_s - s <= k->cfg.step_s ? k->cfg.max_s : s + k->cfg.step_s;
}

void pgc_keepalive_answered(struct pgc_keepalive *k, bool idle, uint64_t now_ms)
{
	if (k->settled) {
		if (now_ms >= k->settled_at_ms &&
		    now_ms - k->settled_at_ms >= (uint64_t)k->cfg.reprobe_s * 1000) {
			if (k->interval_s >= k->cfg.max_s) {
				keepalive_settle(k, now_ms); /* nothing above to try */
				return;
			}
			/* interval_s is good_s (or min_s, good_s unknown): a death up there falls
			 * back to it. */
			k->interval_s = keepalive_longer(k, k->interval_s);
			k->answered = 0;
			k->deaths = 0;
			k->settled = false;
			return;
		}
		if (idle)
			k->deaths =
			    0; /* the settled interval survived again: deaths are not in a row */
		return;
	}
	if (!idle)
		return;
	if (++k->answered < k->cfg.confirm)
		return;
	k->good_s = k->interval_s;
	if (k->interval_s >= k->cfg.max_s) {
		keepalive_settle(k, now_ms);
		return;
	}
	k->interval_s = keepalive_longer(k, k->interval_s);
	k->answered = 0;
}

void pgc_keepalive_died(struct pgc_keepalive *k, uint64_t now_ms)
{
	if (k->interval_s <= k->cfg.min_s) {
		keepalive_restart(k);
		return;
	}
	if (k->settled) {
		if (++k->deaths >= KEEPALIVE_DEATHS_TO_RESTART)
			keepalive_restart(k);
		return;
	}
	k->interval_s = k->good_s != 0 ? k->good_s : k->cfg.min_s;
	keepalive_settle(k, now_ms);
}
