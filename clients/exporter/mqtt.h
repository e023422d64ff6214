/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MQTT side: one thread of its own running a libmosquitto client
 * (MQTT 5) that logs in as a service, subscribes to $SYS/# and feeds every
 * message to the state (state.h). It reconnects by itself with a backoff
 * of 0.25 s doubling to 4 s, taking a fresh token for every connect
 * (token_source.h). In --check mode (once) it does not reconnect: the
 * first failure gives up, and after $SYS/# a second subscription (the
 * exporter's own im/<uid>/reply) marks the moment every retained leaf
 * has arrived, since the broker answers subscriptions in order.
 *
 * The libmosquitto handle and its callbacks belong to that thread alone;
 * exp_mqtt_start and exp_mqtt_stop are called by main.
 */
#ifndef PIGEON_EXPORTER_MQTT_H
#define PIGEON_EXPORTER_MQTT_H

#include <stdbool.h>
#include <stddef.h>

#include "opts.h"
#include "state.h"

struct exp_mqtt;

/*
 * Starts the MQTT thread for o (broker, TLS, identity, token) feeding st;
 * once: --check mode. NULL with the reason in err. mosquitto_lib_init()
 * must have been called.
 */
struct exp_mqtt *exp_mqtt_start(const struct exp_opts *o, struct exp_state *st, bool once,
                                char *err, size_t errlen);
/* Disconnects, stops the thread (within about 0.3 s) and frees everything. */
void exp_mqtt_stop(struct exp_mqtt *m);

#endif
