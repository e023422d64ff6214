/* SPDX-License-Identifier: Apache-2.0 */
/* --check (check_once.h). */
#include "check_once.h"

#include <stdio.h>

#include "health.h"
#include "mqtt.h"
#include "state.h"

/* Is there enough to judge? (Else the wait goes on, up to the deadline.) */
static bool settled(const struct exp_opts *o, const struct exp_facts *f)
{
	if (f->gave_up) {
		return true;
	}
	if (!f->synced || !f->have_sys) {
		return false;
	}
	return o->check == EXP_CHECK_LIVE || f->store_failing >= 0;
}

int exp_check_run(const struct exp_opts *o)
{
	struct exp_state *st = exp_state_new(o->verbose);
	struct exp_buf report = {0};
	struct exp_mqtt *m;
	struct exp_facts f;
	char err[256];
	unsigned gen = 0;
	double deadline;
	bool ok;

	if (st == NULL) {
		fprintf(stderr, "pigeon-exporter: out of memory\n");
		return 1;
	}
	m = exp_mqtt_start(o, st, true, err, sizeof(err));
	if (m == NULL) {
		fprintf(stderr, "pigeon-exporter: %s\n", err);
		exp_state_free(st);
		return 1;
	}
	deadline = exp_now() + o->timeout_s;
	for (;;) {
		exp_state_facts(st, exp_now(), &f);
		if (settled(o, &f) || exp_now() >= deadline) {
			break;
		}
		exp_state_wait(st, &gen, deadline);
	}
	if (!f.connected && f.error[0] == '\0') {
		snprintf(f.error, sizeof(f.error), "no answer from %s:%d within %.0f s",
		         o->broker.host, o->broker.port, o->timeout_s);
	}
	ok = exp_health_eval(o->check, &f, &o->limits, &report) && !report.failed;
	exp_mqtt_stop(m);
	exp_state_free(st);
	fputs(report.failed ? "out of memory\n" : report.data, stdout);
	exp_buf_free(&report);
	return ok ? 0 : 1;
}
