/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A provider's delivery worker: one thread per enabled provider, each with
 * its own libcurl multi handle, so a dead, stalled or throttled provider
 * holds up nothing but its own pushes (DESIGN §2: the broker thread never
 * touches the network).
 *
 * The broker thread submits jobs (copied in); the worker sends each as an
 * HTTP/2 request, multiplexed over one reused connection per host, and
 * posts one pg_push_result per job to the shared result queue, which the
 * broker thread drains on its tick. The worker never calls Mosquitto and
 * logs through pg_log (common/log.h).
 *
 * Connections: streams a server refuses or a GOAWAY cuts off, timeouts and
 * network errors become RETRY results (the core retries on a new
 * connection, the outbox keeps the push). Idle connections are closed and
 * reopened (TCP keepalive, a maximum idle age), and every request has a
 * timeout, so a silently dead connection costs one timeout, not a hang.
 * When the provider asks for it (VERDICT_REAUTHORIZE), the worker renews
 * the credentials once and resends; a second refusal is the result.
 */
#ifndef PIGEON_PUSH_WORKER_H
#define PIGEON_PUSH_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "job.h"
#include "provider.h"

/* Results from every worker, in completion order (mutex-protected). */
struct pg_push_results;

struct pg_push_results *pg_push_results_new(void);
void pg_push_results_free(struct pg_push_results *q);
/* Any thread. 0, or -1 if out of memory (the result is lost: the push
 * stays in the outbox and is retried after a restart). */
int pg_push_results_put(struct pg_push_results *q, const struct pg_push_result *r);
/* Moves up to max results into out; returns how many. Broker thread. */
size_t pg_push_results_take(struct pg_push_results *q, struct pg_push_result *out, size_t max);

struct pg_push_worker;

struct pg_push_worker_config {
	struct pg_push_transport transport;
	uint32_t max_streams; /* concurrent requests (HTTP/2 streams) [1000] */
	long idle_max_s;      /* a connection idle this long is reopened [60] */
};

/*
 * Starts the worker thread for provider ops with its state (created by
 * ops->create; still owned by the caller, who destroys it after stop).
 * Returns the worker, or NULL with err set.
 */
struct pg_push_worker *pg_push_worker_start(const struct pg_push_provider_ops *ops, void *state,
                                            const struct pg_push_worker_config *wc,
                                            struct pg_push_results *results, char *err,
                                            size_t errlen);

/*
 * Queues a copy of job (broker thread; never blocks on the network).
 * 0, or -1 if out of memory.
 */
int pg_push_worker_submit(struct pg_push_worker *w, const struct pg_push_job *job);

/* Jobs submitted and not yet answered (queued or in flight). Any thread. */
size_t pg_push_worker_pending(struct pg_push_worker *w);

/*
 * Lets in-flight requests finish for up to grace_ms, then stops the thread
 * and frees the worker. Jobs not answered by then get no result (they stay
 * in the outbox). NULL is a no-op.
 */
void pg_push_worker_stop(struct pg_push_worker *w, long grace_ms);

/*
 * Tells the worker to stop (the grace starts now) without waiting, so that
 * several workers spend their grace at the same time; pg_push_worker_stop
 * then waits and frees (its grace_ms is ignored after this). NULL is a
 * no-op.
 */
void pg_push_worker_stop_begin(struct pg_push_worker *w, long grace_ms);

#endif
