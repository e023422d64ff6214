/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shared state (state.h): a uthash of leaves keyed by topic, each
 * holding its exp_value, under one mutex with a condition variable
 * (CLOCK_MONOTONIC) for --check's waits. Rendering copies nothing: it
 * sorts pointers to the values and renders them while holding the mutex
 * (a few hundred lines of text; the MQTT thread waits that long at most).
 */
#include "state.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uthash.h>

#include "payload.h"

#define SYS_PREFIX "$SYS/"
#define BROKER_PREFIX "$SYS/broker/"
#define STORE_FAILING_TOPIC "$SYS/broker/pigeon/store/failing"
#define PUSH_OLDEST_TOPIC "$SYS/broker/pigeon/push/oldest_s"
#define PUSH_DEVICES_TOPIC "$SYS/broker/pigeon/push/devices"
/* Ignored topics are logged once each (--verbose), up to this many. */
#define LOGGED_MAX 256

struct leaf {
	char *topic; /* the key */
	struct exp_value v;
	UT_hash_handle hh;
};

struct logged {
	UT_hash_handle hh;
	char topic[]; /* the key */
};

struct exp_state {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned generation;
	struct leaf *leaves;
	unsigned nleaves;
	bool connected, have_sys, ever_sys, synced, gave_up;
	double last_sys;
	uint64_t connects;
	char error[200];
	bool verbose;
	struct logged *logged;
	unsigned nlogged;
};

double exp_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct exp_state *exp_state_new(bool verbose)
{
	struct exp_state *st = calloc(1, sizeof(*st));
	pthread_condattr_t ca;

	if (st == NULL) {
		return NULL;
	}
	st->verbose = verbose;
	pthread_mutex_init(&st->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st->cv, &ca);
	pthread_condattr_destroy(&ca);
	return st;
}

static void leaf_free(struct leaf *l)
{
	free(l->topic);
	free(l->v.hist);
	free(l);
}

/* Drops every value (the mutex held). */
static void clear_leaves(struct exp_state *st)
{
	struct leaf *l, *tmp;

	HASH_ITER(hh, st->leaves, l, tmp)
	{
		HASH_DEL(st->leaves, l);
		leaf_free(l);
	}
	st->nleaves = 0;
}

void exp_state_free(struct exp_state *st)
{
	struct logged *g, *tmp;

	if (st == NULL) {
		return;
	}
	clear_leaves(st);
	HASH_ITER(hh, st->logged, g, tmp)
	{
		HASH_DEL(st->logged, g);
		free(g);
	}
	pthread_cond_destroy(&st->cv);
	pthread_mutex_destroy(&st->mu);
	free(st);
}

/* The mutex held: wake the waiters. */
static void changed(struct exp_state *st)
{
	st->generation++;
	pthread_cond_broadcast(&st->cv);
}

void exp_state_session_up(struct exp_state *st)
{
	pthread_mutex_lock(&st->mu);
	clear_leaves(st);
	st->connected = true;
	st->have_sys = false;
	st->synced = false;
	st->connects++;
	st->error[0] = '\0';
	changed(st);
	pthread_mutex_unlock(&st->mu);
}

void exp_state_session_down(struct exp_state *st, const char *why)
{
	pthread_mutex_lock(&st->mu);
	clear_leaves(st);
	st->connected = false;
	st->have_sys = false;
	st->synced = false;
	snprintf(st->error, sizeof(st->error), "%s", why ? why : "");
	changed(st);
	pthread_mutex_unlock(&st->mu);
}

void exp_state_set_error(struct exp_state *st, const char *why)
{
	pthread_mutex_lock(&st->mu);
	snprintf(st->error, sizeof(st->error), "%s", why);
	changed(st);
	pthread_mutex_unlock(&st->mu);
}

void exp_state_set_synced(struct exp_state *st)
{
	pthread_mutex_lock(&st->mu);
	st->synced = true;
	changed(st);
	pthread_mutex_unlock(&st->mu);
}

void exp_state_give_up(struct exp_state *st, const char *why)
{
	pthread_mutex_lock(&st->mu);
	st->gave_up = true;
	if (why) {
		snprintf(st->error, sizeof(st->error), "%s", why);
	}
	changed(st);
	pthread_mutex_unlock(&st->mu);
}

/* Logs an ignored topic once (--verbose; the mutex held). */
static void log_ignored(struct exp_state *st, const char *topic, const char *why)
{
	struct logged *g;
	size_t n;

	if (!st->verbose || st->nlogged >= LOGGED_MAX) {
		return;
	}
	HASH_FIND_STR(st->logged, topic, g);
	if (g != NULL) {
		return;
	}
	n = strlen(topic);
	g = malloc(sizeof(*g) + n + 1);
	if (g == NULL) {
		return;
	}
	memcpy(g->topic, topic, n + 1);
	HASH_ADD_STR(st->logged, topic, g);
	st->nlogged++;
	fprintf(stderr, "pigeon-exporter: debug: ignoring %.200s: %s (logged once)\n", topic, why);
}

/* Reads payload into v by the row's kind: 0, or -1 with *why set. */
static int parse_value(struct exp_value *v, const char *p, size_t n, const char **why)
{
	const struct exp_metric *m = &exp_metrics[v->row];
	struct exp_label *l;

	switch (m->kind) {
	case EXP_KIND_UINT:
		*why = "not an unsigned integer";
		return exp_payload_uint(p, n, &v->number);
	case EXP_KIND_UPTIME:
		*why = "not '<n> seconds'";
		return exp_payload_uptime(p, n, &v->number);
	case EXP_KIND_VERSION:
		*why = "not 'mosquitto version <v>'";
		if (v->nlabels == EXP_LABELS_MAX) {
			return -1;
		}
		l = &v->labels[v->nlabels];
		if (exp_payload_version(p, n, l->value, sizeof(l->value)) != 0) {
			return -1;
		}
		snprintf(l->name, sizeof(l->name), "version");
		v->nlabels++;
		v->number = 1;
		return 0;
	case EXP_KIND_HISTOGRAM:
		*why = "not a histogram payload";
		v->hist = malloc(sizeof(*v->hist));
		if (v->hist == NULL) {
			*why = "out of memory";
			return -1;
		}
		if (exp_payload_histogram(p, n, v->hist) != 0) {
			free(v->hist);
			v->hist = NULL;
			return -1;
		}
		return 0;
	case EXP_KIND_OWN:
		break;
	}
	*why = "not a leaf";
	return -1;
}

/* Replaces (or, v NULL, removes) topic's leaf (the mutex held): 1 kept, 0 not. */
static int put_leaf(struct exp_state *st, const char *topic, struct exp_value *v)
{
	struct leaf *l;

	HASH_FIND_STR(st->leaves, topic, l);
	if (v == NULL) {
		if (l != NULL) {
			HASH_DEL(st->leaves, l);
			leaf_free(l);
			st->nleaves--;
		}
		return 0;
	}
	if (l != NULL) {
		free(l->v.hist);
		l->v = *v;
		return 1;
	}
	if (st->nleaves >= EXP_LEAVES_MAX) {
		free(v->hist);
		log_ignored(st, topic, "too many leaves");
		return 0;
	}
	l = calloc(1, sizeof(*l));
	if (l == NULL || (l->topic = strdup(topic)) == NULL) {
		free(l);
		free(v->hist);
		return 0;
	}
	l->v = *v;
	HASH_ADD_KEYPTR(hh, st->leaves, l->topic, strlen(l->topic), l);
	st->nleaves++;
	return 1;
}

int exp_state_update(struct exp_state *st, const char *topic, const void *payload, size_t len)
{
	const size_t plen = sizeof(BROKER_PREFIX) - 1;
	struct exp_value v;
	const char *why = "not a leaf pigeon-exporter knows";
	size_t tlen;
	int rc = 0;

	if (strncmp(topic, SYS_PREFIX, sizeof(SYS_PREFIX) - 1) != 0) {
		return 0;
	}
	tlen = strlen(topic);
	memset(&v, 0, sizeof(v));
	pthread_mutex_lock(&st->mu);
	st->have_sys = st->ever_sys = true;
	st->last_sys = exp_now();
	if (tlen > plen && strncmp(topic, BROKER_PREFIX, plen) == 0 &&
	    exp_metric_match(topic + plen, tlen - plen, &v) >= 0) {
		if (len == 0) {
			put_leaf(st, topic, NULL);
		} else if (len > EXP_PAYLOAD_MAX) {
			log_ignored(st, topic, "payload too long");
		} else if (parse_value(&v, payload, len, &why) != 0) {
			log_ignored(st, topic, why);
		} else {
			rc = put_leaf(st, topic, &v);
		}
	} else {
		log_ignored(st, topic, why);
	}
	changed(st);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

/* A leaf's number, or false (the mutex held). */
static bool leaf_number(struct exp_state *st, const char *topic, uint64_t *out)
{
	struct leaf *l;

	HASH_FIND_STR(st->leaves, topic, l);
	if (l == NULL) {
		return false;
	}
	*out = l->v.number;
	return true;
}

/* exp_state_facts with the mutex held. */
static void facts_locked(struct exp_state *st, double now, struct exp_facts *f)
{
	uint64_t v;

	memset(f, 0, sizeof(*f));
	f->connected = st->connected;
	f->have_sys = st->have_sys;
	f->sys_age_s = st->have_sys ? now - st->last_sys : 0;
	snprintf(f->error, sizeof(f->error), "%s", st->error);
	f->store_failing = leaf_number(st, STORE_FAILING_TOPIC, &v) ? (v != 0) : -1;
	f->have_push_oldest = leaf_number(st, PUSH_OLDEST_TOPIC, &f->push_oldest_s);
	f->push_loaded = f->have_push_oldest || leaf_number(st, PUSH_DEVICES_TOPIC, &v);
	f->synced = st->synced;
	f->gave_up = st->gave_up;
}

void exp_state_facts(struct exp_state *st, double now, struct exp_facts *f)
{
	pthread_mutex_lock(&st->mu);
	facts_locked(st, now, f);
	pthread_mutex_unlock(&st->mu);
}

void exp_state_render(struct exp_state *st, double now, const struct exp_limits *lim,
                      struct exp_buf *out)
{
	const struct exp_value **vals = NULL;
	struct exp_facts f;
	struct exp_own own;
	struct leaf *l, *tmp;
	size_t n = 0;

	pthread_mutex_lock(&st->mu);
	facts_locked(st, now, &f);
	own.up = exp_health_live(&f, lim);
	own.have_age = st->ever_sys;
	own.age_s = now - st->last_sys;
	own.connects = st->connects;
	if (own.up && st->nleaves > 0) {
		vals = malloc(st->nleaves * sizeof(*vals));
		if (vals == NULL) {
			out->failed = true;
			pthread_mutex_unlock(&st->mu);
			return;
		}
		HASH_ITER(hh, st->leaves, l, tmp)
		{
			vals[n++] = &l->v;
		}
		qsort(vals, n, sizeof(*vals), exp_value_cmp);
	}
	exp_render(out, &own, vals, n);
	pthread_mutex_unlock(&st->mu);
	free(vals);
}

void exp_state_wait(struct exp_state *st, unsigned *generation, double deadline)
{
	struct timespec ts;
	double whole;

	pthread_mutex_lock(&st->mu);
	while (st->generation == *generation) {
		double left = deadline - exp_now();

		if (left <= 0) {
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		left += (double)ts.tv_nsec / 1e9;
		whole = (double)(long)left;
		ts.tv_sec += (time_t)whole;
		ts.tv_nsec = (long)((left - whole) * 1e9);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&st->cv, &st->mu, &ts);
	}
	*generation = st->generation;
	pthread_mutex_unlock(&st->mu);
}
