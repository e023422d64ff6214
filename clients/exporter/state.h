/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the exporter knows, shared between its threads under one mutex:
 * the latest value of every known leaf of this MQTT session (keyed by
 * topic), whether the session is up and why not, when the last $SYS
 * message came, and how many sessions were opened.
 *
 * Writers: the MQTT thread (mqtt.c). Readers: the HTTP thread (http.c)
 * and --check (check.c), which can also wait for a change. Every call
 * takes the mutex for its own duration only; none blocks on I/O.
 */
#ifndef PIGEON_EXPORTER_STATE_H
#define PIGEON_EXPORTER_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include "health.h"
#include "render.h"

/* At most this many leaves are kept; further new ones are ignored. */
#define EXP_LEAVES_MAX 1024

struct exp_state;

/* Seconds on CLOCK_MONOTONIC, the clock of every timestamp here. */
double exp_now(void);

/* A new, empty state (NULL when out of memory); verbose: log ignored leaves once each. */
struct exp_state *exp_state_new(bool verbose);
void exp_state_free(struct exp_state *st);

/* A session was opened (CONNACK accepted): counted; values start empty. */
void exp_state_session_up(struct exp_state *st);
/*
 * The session ended, or a connect failed (why: a short reason, copied):
 * every broker value is dropped, so nothing stale is ever served.
 */
void exp_state_session_down(struct exp_state *st, const char *why);
/* The session is up but of no use (its $SYS subscription was refused). */
void exp_state_set_error(struct exp_state *st, const char *why);
/* --check: the retained leaves have arrived (synced) / the session failed for good. */
void exp_state_set_synced(struct exp_state *st);
void exp_state_give_up(struct exp_state *st, const char *why);

/*
 * A message on topic: if topic is a $SYS leaf of the table with a valid
 * payload, its value replaces the previous one (an empty payload, a
 * cleared retained message, removes it). Returns 1 kept, 0 ignored. Any
 * $SYS message, kept or not, counts as a sign of life.
 */
int exp_state_update(struct exp_state *st, const char *topic, const void *payload, size_t len);

/* A snapshot of what the health checks need, at time now (exp_now). */
void exp_state_facts(struct exp_state *st, double now, struct exp_facts *f);

/*
 * Appends the /metrics exposition to out: the broker's values only while
 * live (exp_health_live with lim), the exporter's own always.
 */
void exp_state_render(struct exp_state *st, double now, const struct exp_limits *lim,
                      struct exp_buf *out);

/*
 * Waits until something changed since *generation (then updated) or the
 * deadline (exp_now seconds) passed.
 */
void exp_state_wait(struct exp_state *st, unsigned *generation, double deadline);

#endif
