/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The result queue of worker.h: every provider worker puts one
 * pg_push_result per answered job, the broker thread takes them on its
 * tick. A ring of result values that doubles when full, under one mutex:
 * a put is a copy, a take moves a batch out in at most two memcpy calls,
 * and nothing is allocated per result once the ring has grown to the
 * traffic.
 *
 * Threads: put from any thread, take from the broker thread; new and free
 * while no worker runs. Ownership: the queue owns its ring; results are
 * plain values copied in and out.
 */
#include "worker.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RESULTS_INITIAL_CAP 256

struct pg_push_results {
	pthread_mutex_t mu;
	struct pg_push_result *ring;
	size_t cap;   /* slots in ring */
	size_t head;  /* oldest result */
	size_t count; /* results queued */
};

struct pg_push_results *pg_push_results_new(void)
{
	struct pg_push_results *q = calloc(1, sizeof(*q));

	if (q == NULL) {
		return NULL;
	}
	q->ring = malloc(RESULTS_INITIAL_CAP * sizeof(*q->ring));
	if (q->ring == NULL) {
		free(q);
		return NULL;
	}
	q->cap = RESULTS_INITIAL_CAP;
	pthread_mutex_init(&q->mu, NULL);
	return q;
}

void pg_push_results_free(struct pg_push_results *q)
{
	if (q == NULL) {
		return;
	}
	pthread_mutex_destroy(&q->mu);
	free(q->ring);
	free(q);
}

/* Doubles the ring, the oldest result moving to slot 0. Called with mu held. */
static int results_grow(struct pg_push_results *q)
{
	size_t cap = q->cap * 2;
	size_t first = q->cap - q->head; /* results from head to the ring's end */
	struct pg_push_result *ring;

	if (cap < q->cap || cap > SIZE_MAX / sizeof(*ring)) {
		return -1;
	}
	ring = malloc(cap * sizeof(*ring));
	if (ring == NULL) {
		return -1;
	}
	if (first > q->count) {
		first = q->count;
	}
	memcpy(ring, q->ring + q->head, first * sizeof(*ring));
	memcpy(ring + first, q->ring, (q->count - first) * sizeof(*ring));
	free(q->ring);
	q->ring = ring;
	q->cap = cap;
	q->head = 0;
	return 0;
}

int pg_push_results_put(struct pg_push_results *q, const struct pg_push_result *r)
{
	int rc = 0;

	pthread_mutex_lock(&q->mu);
	if (q->count == q->cap && results_grow(q) != 0) {
		rc = -1;
	} else {
		q->ring[(q->head + q->count) % q->cap] = *r;
		q->count++;
	}
	pthread_mutex_unlock(&q->mu);
	return rc;
}

size_t pg_push_results_take(struct pg_push_results *q, struct pg_push_result *out, size_t max)
{
	size_t n, first;

	pthread_mutex_lock(&q->mu);
	n = q->count < max ? q->count : max;
	if (n == 0) {
		pthread_mutex_unlock(&q->mu);
		return 0;
	}
	first = q->cap - q->head;
	if (first > n) {
		first = n;
	}
	memcpy(out, q->ring + q->head, first * sizeof(*out));
	memcpy(out + first, q->ring, (n - first) * sizeof(*out));
	q->head = q->count == n ? 0 : (q->head + n) % q->cap;
	q->count -= n;
	pthread_mutex_unlock(&q->mu);
	return n;
}
