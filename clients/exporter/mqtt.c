/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MQTT thread (mqtt.h). Its loop, every step bounded:
 *
 *   take a token -> mosquitto_connect_async -> mosquitto_loop (250 ms at a
 *   time, checking the stop flag) until the connection fails -> the state
 *   drops every value and records why -> wait the backoff -> again
 *
 * libmosquitto's own mosquitto_loop_forever is not used: it gives up for
 * good on some errors (a TLS handshake that fails, a protocol error) and
 * has no hook to change the password before it reconnects.
 */
#include "mqtt.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "token_source.h"

#define KEEPALIVE_S 20
#define LOOP_MS 250
#define BACKOFF_MIN_S 0.25
#define BACKOFF_MAX_S 4.0
#define SYS_FILTER "$SYS/#"

struct exp_mqtt {
	const struct exp_opts *o;
	struct exp_state *st;
	bool once;
	struct mosquitto *mosq;
	pthread_t thread;
	bool thread_started;
	atomic_bool stop;
	pthread_mutex_t mu; /* with cv: the backoff wait, cut short by exp_mqtt_stop */
	pthread_cond_t cv;
	char client_id[2 * EXP_ID_MAX + 2];
	char marker_topic[EXP_ID_MAX + 16];
	/* The thread's own (callbacks run on it): */
	int sys_mid, marker_mid;
	bool up;            /* CONNACK accepted in this connection */
	char refused[160];  /* CONNACK refused: why */
	char last_log[200]; /* the last failure logged (each is logged once until it changes) */
};

/* A line on stderr, except in --check mode (whose output is its report). */
__attribute__((format(printf, 2, 3))) static void mlog(struct exp_mqtt *m, const char *fmt, ...)
{
	va_list ap;

	if (m->once) {
		return;
	}
	fputs("pigeon-exporter: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
	struct exp_mqtt *m = obj;

	(void)flags;
	(void)props;
	if (rc != 0) {
		snprintf(m->refused, sizeof(m->refused), "connection refused: %s",
		         mosquitto_reason_string(rc));
		return;
	}
	m->up = true;
	m->last_log[0] = '\0';
	exp_state_session_up(m->st);
	mlog(m, "connected to %s:%d as %s", m->o->broker.host, m->o->broker.port, m->client_id);
	if (mosquitto_subscribe(mosq, &m->sys_mid, SYS_FILTER, 0) != MOSQ_ERR_SUCCESS) {
		exp_state_set_error(m->st, "cannot subscribe to " SYS_FILTER);
		return;
	}
	if (m->once) {
		/* Answered after every retained $SYS message of the first one. */
		mosquitto_subscribe(mosq, &m->marker_mid, m->marker_topic, 0);
	}
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int count, const int *granted,
                         const mosquitto_property *props)
{
	struct exp_mqtt *m = obj;

	(void)mosq;
	(void)props;
	if (mid == m->sys_mid && count >= 1 && granted[0] >= 0x80) {
		char why[160];

		snprintf(why, sizeof(why),
		         "the " SYS_FILTER " subscription was refused: %s (is the token a "
		         "service's?)",
		         mosquitto_reason_string(granted[0]));
		exp_state_set_error(m->st, why);
		mlog(m, "%s", why);
		if (m->once) {
			exp_state_give_up(m->st, NULL);
		}
	} else if (m->once && mid == m->marker_mid) {
		exp_state_set_synced(m->st);
	}
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
	struct exp_mqtt *m = obj;

	(void)mosq;
	(void)props;
	if (msg->topic != NULL && msg->payloadlen >= 0) {
		exp_state_update(m->st, msg->topic, msg->payload, (size_t)msg->payloadlen);
	}
}

/* Waits up to s seconds, or until exp_mqtt_stop. */
static void backoff_wait(struct exp_mqtt *m, double s)
{
	struct timespec ts;
	long ns;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ns = ts.tv_nsec + (long)((s - (double)(long)s) * 1e9);
	ts.tv_sec += (time_t)s + ns / 1000000000L;
	ts.tv_nsec = ns % 1000000000L;
	pthread_mutex_lock(&m->mu);
	while (!atomic_load(&m->stop)) {
		if (pthread_cond_timedwait(&m->cv, &m->mu, &ts) == ETIMEDOUT) {
			break;
		}
	}
	pthread_mutex_unlock(&m->mu);
}

/* Why a connection attempt or session ended, from libmosquitto's rc (errno read at once). */
static void failure_reason(struct exp_mqtt *m, int rc, int err, bool connected, char *why,
                           size_t len)
{
	const char *what = rc == MOSQ_ERR_ERRNO ? strerror(err) : mosquitto_strerror(rc);

	if (m->refused[0]) {
		snprintf(why, len, "%s", m->refused);
	} else if (connected) {
		snprintf(why, len, "connection lost: %s", what);
	} else {
		snprintf(why, len, "cannot connect to %s:%d: %s", m->o->broker.host,
		         m->o->broker.port, what);
	}
}

/* One connection, from the token to its end: 0 when stopped, else the failure in why. */
static int session(struct exp_mqtt *m, char *why, size_t len)
{
	char err[256], *tok;
	int rc;

	tok = exp_token_get(&m->o->token, err, sizeof(err));
	if (tok == NULL) {
		snprintf(why, len, "no token: %.160s", err);
		return -1;
	}
	rc = mosquitto_username_pw_set(m->mosq, m->o->uid, tok);
	free(tok);
	if (rc != MOSQ_ERR_SUCCESS) {
		snprintf(why, len, "%s", mosquitto_strerror(rc));
		return -1;
	}
	m->up = false;
	m->refused[0] = '\0';
	rc = mosquitto_connect_async(m->mosq, m->o->broker.host, m->o->broker.port, KEEPALIVE_S);
	if (rc != MOSQ_ERR_SUCCESS) {
		failure_reason(m, rc, errno, false, why, len);
		return -1;
	}
	while (!atomic_load(&m->stop)) {
		rc = mosquitto_loop(m->mosq, LOOP_MS, 1);
		if (rc != MOSQ_ERR_SUCCESS) {
			failure_reason(m, rc, errno, m->up, why, len);
			mosquitto_disconnect(m->mosq); /* closes what is left of the socket */
			return -1;
		}
	}
	if (m->up) {
		/* A clean DISCONNECT, then one loop turn to write it. */
		mosquitto_disconnect(m->mosq);
		mosquitto_loop(m->mosq, 100, 1);
	}
	return 0;
}

static void *run(void *arg)
{
	struct exp_mqtt *m = arg;
	double backoff = BACKOFF_MIN_S;
	char why[200];

	while (!atomic_load(&m->stop)) {
		if (session(m, why, sizeof(why)) == 0) {
			break;
		}
		if (m->up) {
			backoff = BACKOFF_MIN_S; /* a session that was up starts the backoff over */
		}
		exp_state_session_down(m->st, why);
		if (m->once) {
			exp_state_give_up(m->st, why);
			break;
		}
		if (strcmp(why, m->last_log) != 0) {
			mlog(m, "%s; retrying (every %.2g s at most)", why, BACKOFF_MAX_S);
			snprintf(m->last_log, sizeof(m->last_log), "%s", why);
		}
		backoff_wait(m, backoff);
		backoff = backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : backoff * 2;
	}
	return NULL;
}

struct exp_mqtt *exp_mqtt_start(const struct exp_opts *o, struct exp_state *st, bool once,
                                char *err, size_t errlen)
{
	struct exp_mqtt *m = calloc(1, sizeof(*m));
	pthread_condattr_t ca;
	int rc;

	if (m == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	m->o = o;
	m->st = st;
	m->once = once;
	atomic_init(&m->stop, false);
	pthread_mutex_init(&m->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cv, &ca);
	pthread_condattr_destroy(&ca);
	exp_opts_client_id(o, m->client_id, sizeof(m->client_id));
	snprintf(m->marker_topic, sizeof(m->marker_topic), "im/%s/reply", o->uid);
	m->mosq = mosquitto_new(m->client_id, true, m);
	if (m->mosq == NULL) {
		snprintf(err, errlen, "cannot create an MQTT client: %s", strerror(errno));
		goto fail;
	}
	mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	if (o->cafile) {
		rc = mosquitto_tls_set(m->mosq, o->cafile, NULL, NULL, NULL, NULL);
		if (rc != MOSQ_ERR_SUCCESS) {
			snprintf(err, errlen, "--cafile %s: %s", o->cafile,
			         rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
			goto fail;
		}
	}
	mosquitto_connect_v5_callback_set(m->mosq, on_connect);
	mosquitto_subscribe_v5_callback_set(m->mosq, on_subscribe);
	mosquitto_message_v5_callback_set(m->mosq, on_message);
	rc = pthread_create(&m->thread, NULL, run, m);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the MQTT thread: %s", strerror(rc));
		goto fail;
	}
	m->thread_started = true;
	return m;
fail:
	exp_mqtt_stop(m);
	return NULL;
}

void exp_mqtt_stop(struct exp_mqtt *m)
{
	if (m == NULL) {
		return;
	}
	pthread_mutex_lock(&m->mu);
	atomic_store(&m->stop, true);
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
	if (m->thread_started) {
		pthread_join(m->thread, NULL);
	}
	if (m->mosq) {
		mosquitto_destroy(m->mosq);
	}
	pthread_cond_destroy(&m->cv);
	pthread_mutex_destroy(&m->mu);
	free(m);
}
