/* SPDX-License-Identifier: Apache-2.0 */
/*
 * --check live|ready: one MQTT session, no HTTP. It waits (at most
 * --timeout) until the retained leaves have arrived, and, for ready, until
 * store/failing has too; then prints the health report (health.h) on
 * stdout and returns the exit status: 0 healthy, 1 not (the broker
 * unreachable or refusing the login included). Runs on main's thread.
 */
#ifndef PIGEON_EXPORTER_CHECK_ONCE_H
#define PIGEON_EXPORTER_CHECK_ONCE_H

#include "opts.h"

int exp_check_run(const struct exp_opts *o);

#endif
