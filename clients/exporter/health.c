/* SPDX-License-Identifier: Apache-2.0 */
/* Liveness and readiness (health.h). */
#include "health.h"

#include <inttypes.h>

bool exp_health_live(const struct exp_facts *f, const struct exp_limits *lim)
{
	return f->connected && f->have_sys && f->sys_age_s <= lim->stale_after_s;
}

static bool broker_line(const struct exp_facts *f, const struct exp_limits *lim, struct exp_buf *r)
{
	if (exp_health_live(f, lim)) {
		exp_buf_printf(r, "broker ok\n");
		return true;
	}
	if (!f->connected) {
		exp_buf_printf(r, "broker down (%s)\n", f->error[0] ? f->error : "not connected");
	} else if (f->error[0]) {
		exp_buf_printf(r, "broker unusable (%s)\n", f->error);
	} else if (!f->have_sys) {
		exp_buf_printf(r, "broker stale (no $SYS message yet)\n");
	} else {
		exp_buf_printf(r, "broker stale (no $SYS message for %.0f s, over %.0f s)\n",
		               f->sys_age_s, lim->stale_after_s);
	}
	return false;
}

static bool store_line(const struct exp_facts *f, struct exp_buf *r)
{
	switch (f->store_failing) {
	case 0:
		exp_buf_printf(r, "store ok\n");
		return true;
	case -1:
		exp_buf_printf(r, "store unknown (no $SYS/broker/pigeon/store/failing)\n");
		return false;
	default:
		exp_buf_printf(r, "store failing (the last write failed)\n");
		return false;
	}
}

static bool push_line(const struct exp_facts *f, const struct exp_limits *lim, struct exp_buf *r)
{
	if (!f->push_loaded) {
		exp_buf_printf(r, "push not loaded\n");
		return true;
	}
	if (!f->have_push_oldest) {
		exp_buf_printf(r, "push ok (oldest unknown)\n");
		return true;
	}
	if (f->push_oldest_s > lim->push_stuck_after_s) {
		exp_buf_printf(r, "push stuck (oldest %" PRIu64 " s, over %" PRIu64 " s)\n",
		               f->push_oldest_s, lim->push_stuck_after_s);
		return false;
	}
	exp_buf_printf(r, "push ok (oldest %" PRIu64 " s)\n", f->push_oldest_s);
	return true;
}

bool exp_health_eval(enum exp_check check, const struct exp_facts *f, const struct exp_limits *lim,
                     struct exp_buf *report)
{
	bool ok = broker_line(f, lim, report);

	if (check == EXP_CHECK_READY) {
		/* Every line is written, whatever came before, so the report says it all. */
		ok = store_line(f, report) && ok;
		ok = push_line(f, lim, report) && ok;
	}
	return ok;
}
