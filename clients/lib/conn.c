/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Paho MQTTAsync connections of a client (docs/client.md, "Several
 * broker addresses" and "Reconnect"):
 *
 *   - the race: one MQTTAsync handle per address, the remembered winner
 *     first and the others race_delay_ms later (at once when every started
 *     attempt already failed); the first CONNACK success wins, every other
 *     handle is destroyed, and the winner is saved;
 *   - a failed race waits pgc_backoff_delay_ms(attempt) and races again,
 *     or reconnect_max_ms after the broker refused the login (the app may
 *     call pigeon_client_set_token, which cuts the wait);
 *   - Paho's callbacks, on Paho's threads, only copy what happened into the
 *     client's event queue. Each handle gets its own context with a
 *     generation number, so an event of a handle destroyed since is
 *     recognized and ignored. A context outlives its handle by a while
 *     (c->retired): a callback that was already running when the handle
 *     was destroyed may still read it.
 *
 * Client thread only, except the on_* callbacks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <MQTTReasonCodes.h>

#include "backoff.h"
#include "engine.h"
#include "nodelay.h"

#define PGC_RETIRE_MS 10000 /* a context is freed this long after its handle */

/* ---- Paho's callbacks (Paho's threads) */

static void conn_post(struct pgc_conn_ctx *ctx, enum pgc_ev_type type, int code, int reason,
                      const char *text)
{
	struct pgc_event *ev = pgc_event_new(ctx->c);
	if (ev == NULL) {
		return; /* without memory the event is lost; the timers still bound every wait */
	}
	ev->type = type;
	ev->gen = ctx->gen;
	ev->code = code;
	ev->reason = reason;
	ev->text = text ? strdup(text) : NULL;
	pgc_post(ctx->c, ev);
}

static void on_connect_ok(void *context, MQTTAsync_successData5 *r)
{
	conn_post(context, PGC_EV_CONN_OK, 0, 0, NULL);
}

static void on_connect_fail(void *context, MQTTAsync_failureData5 *r)
{
	conn_post(context, PGC_EV_CONN_FAIL, r ? r->code : MQTTASYNC_FAILURE,
	          r ? (int)r->reasonCode : 0, r && r->message ? r->message : NULL);
}

static void on_sub_ok(void *context, MQTTAsync_successData5 *r)
{
	/* A SUBACK reason of 0x80 or more refuses the subscription. */
	if (r && (int)r->reasonCode >= 0x80) {
		conn_post(context, PGC_EV_SUB_FAIL, 0, (int)r->reasonCode, "subscription refused");
	} else {
		conn_post(context, PGC_EV_SUB_OK, 0, 0, NULL);
	}
}

static void on_sub_fail(void *context, MQTTAsync_failureData5 *r)
{
	conn_post(context, PGC_EV_SUB_FAIL, r ? r->code : MQTTASYNC_FAILURE,
	          r ? (int)r->reasonCode : 0,
	          r && r->message ? r->message : "subscription refused");
}

static void on_disc(void *context, MQTTAsync_successData5 *r)
{
	conn_post(context, PGC_EV_DISCONNECTED, 0, 0, NULL);
}

static void on_disc_fail(void *context, MQTTAsync_failureData5 *r)
{
	conn_post(context, PGC_EV_DISCONNECTED, r ? r->code : MQTTASYNC_FAILURE, 0, NULL);
}

static void on_lost(void *context, char *cause)
{
	conn_post(context, PGC_EV_LOST, 0, 0, cause ? cause : "connection lost");
}

/*
 * Paho hands OpenSSL's error queue here, one line each, when a TLS
 * handshake (or loading tls_ca_file) fails; its connect failure itself
 * only says "TCP/TLS connect failure". The first line is the cause.
 */
static int on_tls_error(const char *str, size_t len, void *u)
{
	char line[512];

	snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) ? len : sizeof(line) - 1),
	         str);
	line[strcspn(line, "\r\n")] = '\0';
	conn_post(u, PGC_EV_TLS_ERROR, 0, 0, line);
	return 0; /* stop: the rest of the queue only repeats the context */
}

/* The message goes to the client thread as Paho made it: no copy. */
static int on_message(void *context, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct pgc_conn_ctx *ctx = context;
	struct pigeon_client *c = ctx->c;
	struct pgc_event *ev = pgc_event_new(c);
	if (ev == NULL) {
		/* Lost: an inbox message comes back with the next sync. */
		MQTTAsync_freeMessage(&m);
		MQTTAsync_free(topic);
		return 1;
	}
	ev->type = PGC_EV_OTHER;
	/* topic_len is 0 when strlen() may be trusted (Paho passes it either way). */
	size_t n = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	if (n == c->topic_len && memcmp(topic, c->inbox_topic, n) == 0) {
		ev->type = PGC_EV_INBOX;
	} else if (n == c->topic_len && memcmp(topic, c->reply_topic, n) == 0) {
		ev->type = PGC_EV_REPLY;
	}
	ev->gen = ctx->gen;
	ev->msg = m;
	ev->topic = topic;
	pgc_post(c, ev);
	return 1;
}

/* ---- handles */

static void conn_retire_ctx(struct pigeon_client *c, struct pgc_conn_ctx *ctx)
{
	if (ctx == NULL) {
		return;
	}
	ctx->retired_ms = pgc_now_ms();
	ctx->next = c->retired;
	c->retired = ctx;
}

void pgc_conn_free_retired(struct pigeon_client *c, bool all)
{
	uint64_t now = pgc_now_ms();
	struct pgc_conn_ctx **pp = &c->retired;
	while (*pp) {
		struct pgc_conn_ctx *ctx = *pp;
		if (all || now - ctx->retired_ms > PGC_RETIRE_MS) {
			*pp = ctx->next;
			free(ctx);
		} else {
			pp = &ctx->next;
		}
	}
}

/* Destroys conn's handle (Paho closes the socket, sending DISCONNECT if it was connected). */
static void conn_destroy(struct pigeon_client *c, struct pgc_conn *k)
{
	if (k->h) {
		MQTTAsync_destroy(&k->h);
		k->h = NULL;
	}
	conn_retire_ctx(c, k->ctx);
	k->ctx = NULL;
}

/* Paho gives a CONNACK refusal as reasonCode, or (1.3.11) as a positive code. */
static bool conn_is_auth_code(int v)
{
	return v == MQTTREASONCODE_BAD_USER_NAME_OR_PASSWORD ||
	       v == MQTTREASONCODE_NOT_AUTHORIZED || v == MQTTREASONCODE_BAD_AUTHENTICATION_METHOD;
}

static bool conn_is_auth_refusal(int code, int reason)
{
	return conn_is_auth_code(reason) || conn_is_auth_code(code) ||
	       (reason == 0 && (code == 4 || code == 5)); /* MQTT 3 CONNACK */
}

/*
 * The reason of one OpenSSL error line, "<tid>:error:<code>:<lib>:<func>:
 * <reason>:<file>:<line>:<data>" (OpenSSL 3; 1.1 has no <tid>), copied to
 * out; the whole line when it has another shape.
 */
static void conn_tls_reason(const char *line, char *out, size_t len)
{
	const char *p = strstr(line, "error:");
	if (p != NULL) {
		p += 6;
		for (int field = 0; field < 3 && p != NULL; field++) { /* code, lib, func */
			p = strchr(p, ':');
			p = p ? p + 1 : NULL;
		}
	}
	if (p == NULL || *p == '\0' || *p == ':') {
		snprintf(out, len, "%s", line);
		return;
	}
	snprintf(out, len, "%.*s", (int)strcspn(p, ":"), p);
}

/*
 * Why the connect of k failed, as the user should read it. A TLS failure
 * says it was the certificate, or the CA file, and what to do about it:
 *   - OpenSSL's "SSL routines" errors come from the handshake (the chain did
 *     not verify); any other OpenSSL error came from loading tls_ca_file,
 *     the only file Paho reads before it connects;
 *   - a certificate that verifies but names another host leaves no OpenSSL
 *     error (Paho checks the name itself and only says "TCP/TLS connect
 *     failure", as for a refused TCP connect), hence the hint.
 */
static void conn_note_failure(struct pigeon_client *c, int code, int reason, const char *text,
                              const struct pgc_conn *k)
{
	const char *why = text && text[0] ? text : MQTTAsync_strerror(code);
	char host[128] = "";

	if (conn_is_auth_refusal(code, reason)) {
		c->auth_refused = true;
		c->last_code = PIGEON_EAUTH;
		snprintf(c->last_text, sizeof(c->last_text), "%s: login refused (reason 0x%02x)",
		         k->uri, (unsigned)(reason ? reason : code));
		return;
	}
	if (c->auth_refused) {
		return; /* a refusal says more than another address's timeout: keep it */
	}
	c->last_code = PIGEON_EMQTT;
	if (k->tls_error[0] && strstr(k->tls_error, "SSL routines") == NULL && c->tls_ca_file) {
		char r[160];
		conn_tls_reason(k->tls_error, r, sizeof(r));
		snprintf(c->last_text, sizeof(c->last_text),
		         "%s: TLS: cannot load tls_ca_file %s: %s", k->uri, c->tls_ca_file, r);
	} else if (k->tls_error[0] && strstr(k->tls_error, "certificate verify failed")) {
		snprintf(
		    c->last_text, sizeof(c->last_text),
		    "%s: TLS: certificate verify failed: the broker's certificate is not signed "
		    "by %s",
		    k->uri, c->tls_ca_file ? "the CA in tls_ca_file" : "a CA the system trusts");
	} else if (k->tls_error[0]) {
		char r[160];
		conn_tls_reason(k->tls_error, r, sizeof(r));
		snprintf(c->last_text, sizeof(c->last_text), "%s: TLS handshake failed: %s", k->uri,
		         r);
	} else if (strncmp(k->uri, "ssl://", 6) == 0 && !c->tls_insecure &&
	           strcmp(why, "TCP/TLS connect failure") == 0) {
		snprintf(host, sizeof(host), "%.*s", (int)strcspn(k->uri + 6, ":"), k->uri + 6);
		snprintf(c->last_text, sizeof(c->last_text),
		         "%s: %s (no TLS error: the broker is unreachable, or its certificate is "
		         "not for %s)",
		         k->uri, why, host);
	} else {
		snprintf(c->last_text, sizeof(c->last_text), "%s: %s", k->uri, why);
	}
}

/* Starts connecting k: 0, or -1 (k is FAILED and the reason noted). */
static int conn_begin(struct pigeon_client *c, struct pgc_conn *k, uint64_t now)
{
	struct pgc_conn_ctx *ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL) {
		k->state = PGC_CONN_FAILED;
		conn_note_failure(c, MQTTASYNC_FAILURE, 0, "out of memory", k);
		return -1;
	}
	ctx->c = c;
	ctx->gen = ++c->gen_next;
	k->ctx = ctx;
	k->tls_error[0] = '\0';

	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
	int rc = MQTTAsync_createWithOptions(&k->h, k->uri, c->client_id,
	                                     MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
	if (rc != MQTTASYNC_SUCCESS) {
		k->h = NULL;
		goto fail;
	}
	rc = MQTTAsync_setCallbacks(k->h, ctx, on_lost, on_message, NULL);
	if (rc != MQTTASYNC_SUCCESS) {
		goto fail;
	}

	MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer5;
	/* Our heartbeat comes first; Paho's PINGREQ is only the backstop. */
	o.keepAliveInterval = (int)(c->ka_cfg.max_s + c->keepalive_timeout_s);
	o.cleanstart = 1;
	o.username = c->uid;
	o.connectTimeout = (int)((c->connect_timeout_ms + 999) / 1000);
	o.automaticReconnect = 0;
	o.onSuccess5 = on_connect_ok;
	o.onFailure5 = on_connect_fail;
	o.context = ctx;
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
	if (strncmp(k->uri, "ssl://", 6) == 0) {
		ssl.trustStore = c->tls_ca_file;
		ssl.enableServerCertAuth = c->tls_insecure ? 0 : 1;
		ssl.verify = c->tls_insecure ? 0 : 1;
		ssl.ssl_error_cb = on_tls_error; /* struct_version 3 and later */
		ssl.ssl_error_context = ctx;
		o.ssl = &ssl;
	}
	/* Paho copies the password (and every option) before connect returns. */
	pthread_mutex_lock(&c->mu);
	char *token = strdup(c->token);
	pthread_mutex_unlock(&c->mu);
	if (token == NULL) {
		rc = MQTTASYNC_FAILURE;
		goto fail;
	}
	o.password = token;
	rc = MQTTAsync_connect(k->h, &o);
	free(token);
	if (rc != MQTTASYNC_SUCCESS) {
		goto fail;
	}
	k->state = PGC_CONN_CONNECTING;
	k->deadline_ms = now + c->connect_timeout_ms;
	return 0;
fail:
	conn_note_failure(c, rc, 0, NULL, k);
	conn_destroy(c, k);
	k->state = PGC_CONN_FAILED;
	return -1;
}

void pgc_conn_start_race(struct pigeon_client *c, uint64_t now)
{
	char won[256] = "";
	pthread_mutex_lock(&c->pmu);
	if (c->persist->load_server(c->persist_ud, won, sizeof(won)) != 0) {
		won[0] = '\0';
	}
	pthread_mutex_unlock(&c->pmu);
	won[sizeof(won) - 1] = '\0';

	size_t first = 0;
	for (size_t i = 0; i < c->n_servers; i++) {
		if (strcmp(c->servers[i], won) == 0) {
			first = i;
			break;
		}
	}
	/* conns[0] is the remembered winner; the others keep their order. */
	size_t n = 0;
	c->conns[n++].uri = c->servers[first];
	for (size_t i = 0; i < c->n_servers; i++) {
		if (i != first) {
			c->conns[n++].uri = c->servers[i];
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct pgc_conn *k = &c->conns[i];
		k->h = NULL;
		k->ctx = NULL;
		k->state = PGC_CONN_WAITING;
		k->start_ms = i == 0 ? now : now + c->race_delay_ms;
	}
	c->active = -1;
	c->auth_refused = false;
	c->last_code = 0;
	c->last_text[0] = '\0';
	c->link = PGC_LINK_RACING;
}

void pgc_conn_drop(struct pigeon_client *c, uint64_t at_ms)
{
	for (size_t i = 0; i < c->n_servers; i++) {
		conn_destroy(c, &c->conns[i]);
		c->conns[i].state = PGC_CONN_FAILED;
	}
	c->active = -1;
	c->link = PGC_LINK_IDLE;
	c->reconnect_ms = at_ms;
}

static uint32_t conn_backoff(struct pigeon_client *c)
{
	uint32_t d = pgc_backoff_delay_ms(c->attempt, c->reconnect_min_ms, c->reconnect_max_ms,
	                                  pgc_random32());
	if (c->attempt < 31) {
		c->attempt++;
	}
	return d;
}

void pgc_conn_lost(struct pigeon_client *c, int code, const char *text, bool now)
{
	uint64_t t = pgc_now_ms();
	pgc_session_down(c);
	pgc_conn_drop(c, now ? t : t + conn_backoff(c));
	c->proto_noted = false;
	pgc_set_state(c, PIGEON_OFFLINE, code, text);
	c->last_code = 0;
	c->last_text[0] = '\0';
}

static void conn_race_failed(struct pigeon_client *c, uint64_t now)
{
	uint32_t delay = c->auth_refused ? c->reconnect_max_ms : conn_backoff(c);
	int code = c->last_code ? c->last_code : PIGEON_EMQTT;
	char text[sizeof(c->last_text)];
	snprintf(text, sizeof(text), "%s", c->last_text[0] ? c->last_text : "connect failed");
	bool auth = c->auth_refused;
	pgc_conn_drop(c, now + delay);
	c->auth_refused = auth;
	pgc_set_state(c, PIGEON_CONNECTING, code, text);
}

static void conn_won(struct pigeon_client *c, size_t i, uint64_t now)
{
	struct pgc_conn *k = &c->conns[i];
	for (size_t j = 0; j < c->n_servers; j++) {
		if (j != i) {
			conn_destroy(c, &c->conns[j]);
			c->conns[j].state = PGC_CONN_FAILED;
		}
	}
	c->active = (int)i;
	c->priv.connects++;
	snprintf(c->priv.server, sizeof(c->priv.server), "%s", k->uri);
	pthread_mutex_lock(&c->pmu);
	int prc = c->persist->save_server(c->persist_ud, k->uri);
	pthread_mutex_unlock(&c->pmu);
	(void)prc;               /* only a head start is lost if it failed */
	pgc_nodelay_for(k->uri); /* before the first sync: nodelay.h */

	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.onSuccess5 = on_sub_ok;
	ro.onFailure5 = on_sub_fail;
	ro.context = k->ctx;
	int rc = MQTTAsync_subscribe(k->h, c->sub_topic, 1, &ro);
	if (rc != MQTTASYNC_SUCCESS) {
		char text[128];
		snprintf(text, sizeof(text), "subscribe: %s", MQTTAsync_strerror(rc));
		pgc_conn_lost(c, PIGEON_EMQTT, text, false);
		return;
	}
	c->link = PGC_LINK_SUBSCRIBING;
	k->deadline_ms = now + c->connect_timeout_ms;
	c->last_rx_ms = c->last_tx_ms = now;
}

static int conn_find(struct pigeon_client *c, uint64_t gen)
{
	for (size_t i = 0; i < c->n_servers; i++) {
		if (c->conns[i].ctx && c->conns[i].ctx->gen == gen) {
			return (int)i;
		}
	}
	return -1;
}

void pgc_conn_event(struct pigeon_client *c, struct pgc_event *ev, uint64_t now)
{
	int i = conn_find(c, ev->gen);
	if (i < 0) {
		return; /* a handle destroyed since: nothing to do */
	}
	struct pgc_conn *k = &c->conns[i];
	switch (ev->type) {
	case PGC_EV_CONN_OK:
		if (c->link == PGC_LINK_RACING) {
			conn_won(c, (size_t)i, now);
		}
		break;
	case PGC_EV_CONN_FAIL:
		if (c->link == PGC_LINK_RACING) {
			conn_note_failure(c, ev->code, ev->reason, ev->text, k);
			conn_destroy(c, k);
			k->state = PGC_CONN_FAILED;
		}
		break;
	case PGC_EV_TLS_ERROR:
		/* Before the CONN_FAIL of the same handle (one queue, in order). */
		if (k->tls_error[0] == '\0' && ev->text) {
			snprintf(k->tls_error, sizeof(k->tls_error), "%s", ev->text);
		}
		break;
	case PGC_EV_SUB_OK:
		if (c->link == PGC_LINK_SUBSCRIBING && i == c->active) {
			c->link = PGC_LINK_UP;
			c->attempt = 0;
			pgc_session_up(c, now);
		}
		break;
	case PGC_EV_SUB_FAIL:
		if (i == c->active) {
			char text[300];
			snprintf(text, sizeof(text), "subscribe %s: %s (reason 0x%02x)",
			         c->sub_topic, ev->text ? ev->text : "refused",
			         (unsigned)ev->reason);
			pgc_conn_lost(c, PIGEON_EMQTT, text, false);
		}
		break;
	case PGC_EV_LOST:
		if (i == c->active) {
			pgc_conn_lost(c, PIGEON_EMQTT, ev->text ? ev->text : "connection lost",
			              false);
		}
		break;
	case PGC_EV_INBOX:
	case PGC_EV_REPLY:
		if (i == c->active && c->link == PGC_LINK_UP) {
			c->last_rx_ms = now;
			const void *p = ev->msg->payload;
			size_t n = ev->msg->payloadlen > 0 ? (size_t)ev->msg->payloadlen : 0;
			if (ev->type == PGC_EV_INBOX) {
				pgc_session_inbox(c, p, n, now);
			} else {
				pgc_session_reply(c, p, n, now);
			}
		}
		break;
	default:
		break;
	}
}

void pgc_conn_timers(struct pigeon_client *c, uint64_t now, uint64_t *next)
{
	switch (c->link) {
	case PGC_LINK_IDLE:
		if (now >= c->reconnect_ms) {
			if (c->state_now != PIGEON_CONNECTING) {
				pgc_set_state(c, PIGEON_CONNECTING, 0, "");
			}
			pgc_conn_start_race(c, now);
			break; /* fall to the racing checks on the next turn */
		}
		if (c->reconnect_ms < *next) {
			*next = c->reconnect_ms;
		}
		return;
	case PGC_LINK_SUBSCRIBING:
		if (c->active >= 0 && now >= c->conns[c->active].deadline_ms) {
			pgc_conn_lost(c, PIGEON_ETIMEOUT, "no SUBACK in time", false);
			return;
		}
		if (c->active >= 0 && c->conns[c->active].deadline_ms < *next) {
			*next = c->conns[c->active].deadline_ms;
		}
		return;
	case PGC_LINK_RACING:
		break;
	case PGC_LINK_UP:
		return;
	}
	/* RACING (just started above, or going on). */
	bool pending = false, connecting = false;
	for (size_t i = 0; i < c->n_servers; i++) {
		struct pgc_conn *k = &c->conns[i];
		if (k->state == PGC_CONN_CONNECTING && now >= k->deadline_ms) {
			conn_note_failure(c, MQTTASYNC_FAILURE, 0, "connect timed out", k);
			conn_destroy(c, k);
			k->state = PGC_CONN_FAILED;
		}
		if (k->state == PGC_CONN_CONNECTING) {
			connecting = true;
		}
		if (k->state == PGC_CONN_WAITING) {
			pending = true;
		}
	}
	for (size_t i = 0; i < c->n_servers; i++) {
		struct pgc_conn *k = &c->conns[i];
		/* Everyone started failed already: the rest need not wait their turn. */
		if (k->state == PGC_CONN_WAITING && (now >= k->start_ms || !connecting)) {
			if (conn_begin(c, k, now) == 0) {
				connecting = true;
			}
		}
	}
	pending = false;
	for (size_t i = 0; i < c->n_servers; i++) {
		struct pgc_conn *k = &c->conns[i];
		if (k->state == PGC_CONN_WAITING) {
			pending = true;
			if (k->start_ms < *next) {
				*next = k->start_ms;
			}
		} else if (k->state == PGC_CONN_CONNECTING && k->deadline_ms < *next) {
			*next = k->deadline_ms;
		}
	}
	if (!pending && !connecting) {
		conn_race_failed(c, now);
		if (c->reconnect_ms < *next) {
			*next = c->reconnect_ms;
		}
	}
}

int pgc_conn_publish(struct pigeon_client *c, const char *topic, const void *buf, size_t len)
{
	if (c->active < 0 || c->conns[c->active].h == NULL) {
		return PIGEON_EMQTT;
	}
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	/* MQTTAsync_send copies the payload. */
	int rc = MQTTAsync_send(c->conns[c->active].h, topic, (int)len, buf, 1, 0, &ro);
	if (rc != MQTTASYNC_SUCCESS) {
		return PIGEON_EMQTT;
	}
	c->last_tx_ms = pgc_now_ms();
	return 0;
}

void pgc_conn_close(struct pigeon_client *c, uint32_t timeout_ms)
{
	if (c->active >= 0 && c->conns[c->active].h) {
		struct pgc_conn *k = &c->conns[c->active];
		MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;
		d.timeout = (int)timeout_ms; /* in-flight publishes (the last ack) may complete */
		d.onSuccess5 = on_disc;
		d.onFailure5 = on_disc_fail;
		d.context = k->ctx;
		if (MQTTAsync_disconnect(k->h, &d) == MQTTASYNC_SUCCESS) {
			uint64_t deadline = pgc_now_ms() + timeout_ms + 500;
			uint64_t gen = k->ctx->gen;
			bool done = false;
			while (!done) {
				pthread_mutex_lock(&c->mu);
				for (struct pgc_event *ev = c->evq_head; ev; ev = ev->next) {
					if (ev->gen == gen && ev->type == PGC_EV_DISCONNECTED) {
						done = true;
					}
				}
				uint64_t now = pgc_now_ms();
				if (!done && now < deadline) {
					struct timespec ts;
					clock_gettime(CLOCK_MONOTONIC, &ts);
					ts.tv_nsec += 20L * 1000000L;
					if (ts.tv_nsec >= 1000000000L) {
						ts.tv_sec++;
						ts.tv_nsec -= 1000000000L;
					}
					pthread_cond_timedwait(&c->cv, &c->mu, &ts);
				} else {
					done = true;
				}
				pthread_mutex_unlock(&c->mu);
			}
		}
	}
	pgc_conn_drop(c, 0);
}
