/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Liveness and readiness, decided in one place for /health/live,
 * /health/ready, pigeon_up and --check:
 *
 *   live   the MQTT session is up and a $SYS message arrived within
 *          --stale-after seconds
 *   ready  live, store/failing is 0, and push is not loaded or
 *          push/oldest_s is at most --push-stuck-after
 *
 * Each check adds one line to the report ("broker ok", "store failing (the
 * last write failed)", "push ok (oldest 0 s)", ...). Pure functions over a
 * snapshot of the facts; any thread.
 */
#ifndef PIGEON_EXPORTER_HEALTH_H
#define PIGEON_EXPORTER_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "render.h"

enum exp_check {
	EXP_CHECK_LIVE,
	EXP_CHECK_READY,
};

/* What the checks look at (exp_state_facts). */
struct exp_facts {
	bool connected;        /* the MQTT session is up */
	bool have_sys;         /* a $SYS message arrived in this session */
	double sys_age_s;      /* since the last one (have_sys) */
	char error[200];       /* why the session is down or useless, "" if nothing is known */
	int store_failing;     /* store/failing: 0, 1, or -1 not received */
	bool push_loaded;      /* a push/ leaf was received */
	bool have_push_oldest; /* push/oldest_s was received */
	uint64_t push_oldest_s;
	/* --check only */
	bool synced;  /* the retained leaves of this session have all arrived */
	bool gave_up; /* the session failed for good (no reconnect in --check) */
};

struct exp_limits {
	double stale_after_s;
	uint64_t push_stuck_after_s;
};

bool exp_health_live(const struct exp_facts *f, const struct exp_limits *lim);

/* Evaluates check; appends one line per part to report; true when healthy. */
bool exp_health_eval(enum exp_check check, const struct exp_facts *f, const struct exp_limits *lim,
                     struct exp_buf *report);

#endif
