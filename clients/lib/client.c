/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libpigeon-client's public API (pigeon_client.h) and the client thread.
 *
 * The client thread is a small event loop: it takes everything queued on
 * c->evq (Paho's events, the API's commands) under c->mu, handles it
 * without the lock (conn.c for connections, session.c for the protocol),
 * runs the timers, publishes its counters to c->st, and sleeps on c->cv
 * until the next event or the earliest timer. All protocol state and every
 * app callback live on that thread; the API functions only validate, copy
 * and queue (pigeon_client_send also makes its record durable first).
 *
 * Ownership: pigeon_client_new copies every string it is given; the client
 * owns its events until handled, its outbox and its Paho handles;
 * pigeon_client_destroy frees all of it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backoff.h"
#include "engine.h"
#include "persist_files.h"

#define PGC_EV_FREE_MAX 256 /* recycled event nodes kept */

uint64_t pgc_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the event queue */

struct pgc_event *pgc_event_new(struct pigeon_client *c)
{
	struct pgc_event *ev = NULL;
	pthread_mutex_lock(&c->mu);
	if (c->ev_free) {
		ev = c->ev_free;
		c->ev_free = ev->next;
		c->ev_free_n--;
	}
	pthread_mutex_unlock(&c->mu);
	if (ev == NULL) {
		ev = malloc(sizeof(*ev));
		if (ev == NULL) {
			return NULL;
		}
	}
	memset(ev, 0, sizeof(*ev));
	return ev;
}

/* Frees what ev carries and recycles the node. */
void pgc_event_free(struct pigeon_client *c, struct pgc_event *ev)
{
	if (ev == NULL) {
		return;
	}
	if (ev->msg) {
		MQTTAsync_freeMessage(&ev->msg);
	}
	if (ev->topic) {
		MQTTAsync_free(ev->topic);
	}
	free(ev->text);
	free(ev->data);
	pthread_mutex_lock(&c->mu);
	if (c->ev_free_n < PGC_EV_FREE_MAX) {
		ev->next = c->ev_free;
		c->ev_free = ev;
		c->ev_free_n++;
		ev = NULL;
	}
	pthread_mutex_unlock(&c->mu);
	free(ev);
}

void pgc_post(struct pigeon_client *c, struct pgc_event *ev)
{
	ev->next = NULL;
	pthread_mutex_lock(&c->mu);
	if (c->evq_tail) {
		c->evq_tail->next = ev;
	} else {
		c->evq_head = ev;
	}
	c->evq_tail = ev;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

void pgc_set_state(struct pigeon_client *c, enum pigeon_state s, int code, const char *text)
{
	c->state_now = s;
	pgc_stats_publish(c); /* a state callback that asks for stats sees this moment */
	if (c->cb.state) {
		c->cb.state(c->ud, s, code, text ? text : "");
	}
}

/* ---- persistence, one call at a time */

int pgc_persist_save_cursor(struct pigeon_client *c, uint64_t seq)
{
	pthread_mutex_lock(&c->pmu);
	int rc = c->persist->save_cursor(c->persist_ud, seq);
	pthread_mutex_unlock(&c->pmu);
	return rc;
}

int pgc_persist_outbox_del(struct pigeon_client *c, const char *msg_id)
{
	pthread_mutex_lock(&c->pmu);
	int rc = c->persist->outbox_del(c->persist_ud, msg_id);
	pthread_mutex_unlock(&c->pmu);
	return rc;
}

/* ---- the client thread */

static void client_handle(struct pigeon_client *c, struct pgc_event *ev, uint64_t now)
{
	switch (ev->type) {
	case PGC_CMD_SEND:
		pgc_session_add_outbox(c, ev->text, ev->data, ev->len);
		ev->text = NULL;
		ev->data = NULL;
		break;
	case PGC_CMD_DEVICE:
		pgc_session_device(c, ev->data, ev->len, now);
		ev->data = NULL;
		break;
	case PGC_CMD_FLUSH:
		pgc_session_flush_acks(c, now);
		break;
	case PGC_CMD_TOKEN:
		/* Waiting out a refusal: the new token deserves a try now. */
		if (c->link == PGC_LINK_IDLE && c->auth_refused) {
			c->reconnect_ms = now;
		}
		break;
	default:
		pgc_conn_event(c, ev, now);
		break;
	}
}

void pgc_stats_publish(struct pigeon_client *c)
{
	c->priv.cursor = pgc_order_cursor(c->order);
	c->priv.keepalive_s = pgc_keepalive_interval(&c->ka);
	c->priv.keepalive_settled = c->ka.settled;
	pthread_mutex_lock(&c->mu);
	size_t outbox = c->st.outbox;
	c->st = c->priv;
	c->st.outbox = outbox;
	pthread_mutex_unlock(&c->mu);
}

static void *client_thread(void *arg)
{
	struct pigeon_client *c = arg;
	uint64_t now = pgc_now_ms();

	pgc_set_state(c, PIGEON_CONNECTING, 0, "");
	pgc_conn_start_race(c, now);
	for (;;) {
		pthread_mutex_lock(&c->mu);
		struct pgc_event *batch = c->evq_head;
		c->evq_head = c->evq_tail = NULL;
		bool stopping = c->stopping;
		pthread_mutex_unlock(&c->mu);

		now = pgc_now_ms();
		while (batch) {
			struct pgc_event *ev = batch;
			batch = ev->next;
			client_handle(c, ev, now);
			pgc_event_free(c, ev);
		}
		if (stopping) {
			break;
		}
		now = pgc_now_ms();
		uint64_t next = now + 60000;
		pgc_conn_timers(c, now, &next);
		pgc_session_timers(c, now, &next);
		/* The session may have dropped the link just now (a silent death). */
		if (c->link == PGC_LINK_IDLE && c->reconnect_ms < next) {
			next = c->reconnect_ms;
		}
		pgc_conn_free_retired(c, false);
		pgc_stats_publish(c);

		pthread_mutex_lock(&c->mu);
		if (c->evq_head == NULL && !c->stopping) {
			now = pgc_now_ms();
			if (next > now) {
				struct timespec ts;
				clock_gettime(CLOCK_MONOTONIC, &ts);
				uint64_t wait = next - now;
				ts.tv_sec += (time_t)(wait / 1000u);
				ts.tv_nsec += (long)(wait % 1000u) * 1000000L;
				if (ts.tv_nsec >= 1000000000L) {
					ts.tv_sec++;
					ts.tv_nsec -= 1000000000L;
				}
				pthread_cond_timedwait(&c->cv, &c->mu, &ts);
			}
		}
		pthread_mutex_unlock(&c->mu);
	}

	/* Stopping: the pending ack goes out before the goodbye. */
	now = pgc_now_ms();
	pgc_session_flush_acks(c, now);
	bool was_up = c->link == PGC_LINK_UP;
	pgc_conn_close(c, 1000);
	pgc_session_down(c);
	pgc_session_save_cursor(c);
	pgc_stats_publish(c);
	if (was_up) {
		pgc_set_state(c, PIGEON_OFFLINE, 0, "stopped");
	}
	return NULL;
}

/* ---- options */

static bool client_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n < 1 || n > 64) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-')) {
			return false;
		}
	}
	return true;
}

static bool client_uri_ok(const char *s)
{
	if (s == NULL) {
		return false;
	}
	const char *rest = NULL;
	if (strncmp(s, "tcp://", 6) == 0) {
		rest = s + 6;
	} else if (strncmp(s, "ssl://", 6) == 0) {
		rest = s + 6;
	} else {
		return false;
	}
	const char *colon = strrchr(rest, ':');
	if (colon == NULL || colon == rest || colon[1] == '\0' || strlen(s) >= 256) {
		return false;
	}
	char *end = NULL;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	return errno == 0 && *end == '\0' && port >= 1 && port <= 65535;
}

static uint32_t client_or(uint32_t v, uint32_t dflt)
{
	return v ? v : dflt;
}

static char *client_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static char *client_fmt(const char *a, const char *b, const char *c_)
{
	size_t n = strlen(a) + strlen(b) + strlen(c_) + 1;
	char *s = malloc(n);
	if (s) {
		snprintf(s, n, "%s%s%s", a, b, c_);
	}
	return s;
}

/* The outbox_load callback: one record into the in-memory outbox. */
static int client_load_each(void *arg, const char *msg_id, const void *rec, size_t len)
{
	struct pigeon_client *c = arg;
	char *id = strdup(msg_id);
	uint8_t *copy = malloc(len ? len : 1);
	if (id == NULL || copy == NULL) {
		free(id);
		free(copy);
		return PIGEON_ENOMEM;
	}
	memcpy(copy, rec, len);
	pthread_mutex_lock(&c->mu);
	c->st.outbox++; /* pgc_session_add_outbox takes it back for a msg_id it has already */
	pthread_mutex_unlock(&c->mu);
	pgc_session_add_outbox(c, id, copy, len);
	return 0;
}

static void client_free(struct pigeon_client *c)
{
	if (c == NULL) {
		return;
	}
	pgc_session_free(c);
	pgc_conn_free_retired(c, true);
	for (struct pgc_event *ev = c->evq_head; ev;) {
		struct pgc_event *n = ev->next;
		pgc_event_free(c, ev);
		ev = n;
	}
	while (c->ev_free) {
		struct pgc_event *n = c->ev_free->next;
		free(c->ev_free);
		c->ev_free = n;
	}
	if (c->persist && c->persist->close) {
		c->persist->close(c->persist_ud);
	}
	free(c->uid);
	free(c->device);
	free(c->client_id);
	for (size_t i = 0; i < c->n_servers; i++) {
		free(c->servers[i]);
	}
	free(c->tls_ca_file);
	free(c->inbox_topic);
	free(c->reply_topic);
	free(c->sub_topic);
	free(c->token);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->pmu);
	pthread_cond_destroy(&c->cv);
	free(c);
}

int pigeon_client_new(const struct pigeon_client_options *o, pigeon_client **out)
{
	if (out) {
		*out = NULL;
	}
	if (o == NULL || out == NULL || !client_name_ok(o->uid) || !client_name_ok(o->device) ||
	    o->token == NULL || o->token[0] == '\0' || o->n_servers > PGC_MAX_SERVERS ||
	    (o->n_servers > 0 && o->servers == NULL) ||
	    (o->persist == NULL && (o->state_dir == NULL || o->state_dir[0] == '\0'))) {
		return PIGEON_EINVAL;
	}
	if (o->persist &&
	    (!o->persist->load_cursor || !o->persist->save_cursor || !o->persist->outbox_put ||
	     !o->persist->outbox_del || !o->persist->outbox_load || !o->persist->load_server ||
	     !o->persist->save_server)) {
		return PIGEON_EINVAL;
	}
	for (size_t i = 0; i < o->n_servers; i++) {
		if (!client_uri_ok(o->servers[i])) {
			return PIGEON_EINVAL;
		}
	}

	struct pigeon_client *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		return PIGEON_ENOMEM;
	}
	int rc = PIGEON_ENOMEM;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->pmu, NULL);
	c->active = -1;

	c->uid = strdup(o->uid);
	c->device = strdup(o->device);
	c->token = strdup(o->token);
	c->tls_ca_file = client_strdup(o->tls_ca_file);
	c->tls_insecure = o->tls_insecure;
	if (c->uid == NULL || c->device == NULL || c->token == NULL ||
	    (o->tls_ca_file && c->tls_ca_file == NULL)) {
		goto fail;
	}
	c->client_id = client_fmt(o->uid, ":", o->device);
	c->inbox_topic = client_fmt("im/", o->uid, "/inbox");
	c->reply_topic = client_fmt("im/", o->uid, "/reply");
	c->sub_topic = client_fmt("im/", o->uid, "/#");
	if (!c->client_id || !c->inbox_topic || !c->reply_topic || !c->sub_topic) {
		goto fail;
	}
	c->topic_len = strlen(c->inbox_topic);
	if (o->n_servers == 0) {
		c->servers[0] = strdup("tcp://127.0.0.1:1883");
		c->n_servers = 1;
		if (c->servers[0] == NULL) {
			goto fail;
		}
	} else {
		for (size_t i = 0; i < o->n_servers; i++) {
			c->servers[i] = strdup(o->servers[i]);
			if (c->servers[i] == NULL) {
				goto fail;
			}
			c->n_servers = i + 1;
		}
	}
	c->cb = o->cb;
	c->ud = o->ud;
	c->connect_timeout_ms = client_or(o->connect_timeout_ms, 10000);
	c->race_delay_ms = client_or(o->race_delay_ms, 250);
	c->reconnect_min_ms = client_or(o->reconnect_min_ms, 500);
	c->reconnect_max_ms = client_or(o->reconnect_max_ms, 60000);
	if (c->reconnect_max_ms < c->reconnect_min_ms) {
		c->reconnect_max_ms = c->reconnect_min_ms;
	}
	c->request_timeout_ms = client_or(o->request_timeout_ms, 5000);
	c->keepalive_timeout_s = client_or(o->keepalive_timeout_s, 10);
	c->ack_batch = client_or(o->ack_batch, 100);
	c->ack_delay_ms = client_or(o->ack_delay_ms, 500);
	c->sync_limit = client_or(o->sync_limit, 500);
	if (c->sync_limit > 1000) {
		c->sync_limit = 1000;
	}
	c->ka_cfg.min_s = client_or(o->keepalive_min_s, 60);
	c->ka_cfg.max_s = client_or(o->keepalive_max_s, 600);
	if (c->ka_cfg.max_s < c->ka_cfg.min_s) {
		c->ka_cfg.max_s = c->ka_cfg.min_s;
	}
	c->ka_cfg.step_s = client_or(o->keepalive_step_s, 30);
	pgc_keepalive_init(&c->ka, &c->ka_cfg);

	if (o->persist) {
		c->persist = o->persist;
		c->persist_ud = o->persist_ud;
	} else {
		char err[256] = "";
		rc = pgc_persist_files_open(o->state_dir, &c->persist_ud, err, sizeof(err));
		if (rc != 0) {
			rc = PIGEON_EPERSIST;
			goto fail;
		}
		c->persist = &pgc_persist_files_ops;
		c->persist_own = true;
	}

	uint64_t cursor = 0;
	if (c->persist->load_cursor(c->persist_ud, &cursor) != 0) {
		rc = PIGEON_EPERSIST;
		goto fail;
	}
	if (pgc_session_init(c, cursor) != 0) {
		rc = PIGEON_ENOMEM;
		goto fail;
	}
	if (c->persist->outbox_load(c->persist_ud, client_load_each, c) != 0) {
		rc = PIGEON_EPERSIST;
		goto fail;
	}
	c->priv.cursor = cursor;
	pgc_stats_publish(c);
	*out = c;
	return 0;
fail:
	client_free(c);
	return rc;
}

int pigeon_client_start(pigeon_client *c)
{
	if (c == NULL) {
		return PIGEON_EINVAL;
	}
	pthread_mutex_lock(&c->mu);
	bool again = c->started || c->stopping;
	c->started = true;
	pthread_mutex_unlock(&c->mu);
	if (again) {
		return PIGEON_ESTATE;
	}
	if (pthread_create(&c->thread, NULL, client_thread, c) != 0) {
		pthread_mutex_lock(&c->mu);
		c->started = false;
		pthread_mutex_unlock(&c->mu);
		return PIGEON_ENOMEM;
	}
	return 0;
}

static int client_command(struct pigeon_client *c, enum pgc_ev_type type, char *text, void *data,
                          size_t len)
{
	struct pgc_event *ev = pgc_event_new(c);
	if (ev == NULL) {
		free(text);
		free(data);
		return PIGEON_ENOMEM;
	}
	ev->type = type;
	ev->text = text;
	ev->data = data;
	ev->len = len;
	pgc_post(c, ev);
	return 0;
}

static bool client_len_ok(const char *s, size_t max)
{
	return s == NULL || strlen(s) <= max;
}

int pigeon_client_send(pigeon_client *c, const struct pigeon_send *s, char *msg_id_out,
                       size_t msg_id_len)
{
	if (c == NULL || s == NULL || s->to == NULL || s->to[0] == '\0' ||
	    (s->kind != PIGEON_CHAT && s->kind != PIGEON_NOTIFY && s->kind != PIGEON_INSTANT) ||
	    (s->kind == PIGEON_NOTIFY && (s->type == NULL || s->type[0] == '\0')) ||
	    (s->msg_id && (s->msg_id[0] == '\0' || strlen(s->msg_id) > PIGEON_MSG_ID_MAX)) ||
	    (s->body_len > 0 && s->body == NULL) || !client_len_ok(s->content_type, 255) ||
	    !client_len_ok(s->push_title, 256) || !client_len_ok(s->push_body, 1024) ||
	    !client_len_ok(s->to, 64) || !client_len_ok(s->type, 64) ||
	    s->body_len > 1024u * 1024u - 4096u) {
		return PIGEON_EINVAL;
	}
	char gen[33];
	const char *msg_id = s->msg_id;
	if (msg_id == NULL) {
		pgc_msg_id_new(gen);
		msg_id = gen;
	}
	if (msg_id_out) {
		if (msg_id_len <= strlen(msg_id)) {
			return PIGEON_EINVAL;
		}
		memcpy(msg_id_out, msg_id, strlen(msg_id) + 1);
	}

	Pigeon__Send m = PIGEON__SEND__INIT;
	m.to = (char *)s->to;
	m.kind = (Pigeon__Kind)s->kind;
	m.type = (char *)(s->type ? s->type : "");
	m.msg_id = (char *)msg_id;
	m.body.data = (uint8_t *)s->body;
	m.body.len = s->body_len;
	m.content_type = (char *)(s->content_type ? s->content_type : "");
	m.ttl_s = s->ttl_s;
	m.push_title = (char *)(s->push_title ? s->push_title : "");
	m.push_body = (char *)(s->push_body ? s->push_body : "");
	size_t len = pigeon__send__get_packed_size(&m);
	uint8_t *rec = malloc(len ? len : 1);
	char *id = strdup(msg_id);
	if (rec == NULL || id == NULL) {
		free(rec);
		free(id);
		return PIGEON_ENOMEM;
	}
	pigeon__send__pack(&m, rec);

	/* Durable before anyone is told: the record first, then the queue. */
	pthread_mutex_lock(&c->pmu);
	int rc = c->persist->outbox_put(c->persist_ud, msg_id, rec, len);
	pthread_mutex_unlock(&c->pmu);
	if (rc != 0) {
		free(rec);
		free(id);
		return PIGEON_EPERSIST;
	}
	pthread_mutex_lock(&c->mu);
	c->st.outbox++;
	pthread_mutex_unlock(&c->mu);
	return client_command(c, PGC_CMD_SEND, id, rec, len);
}

int pigeon_client_register_device(pigeon_client *c, const char *platform, const char *token,
                                  const char *app, bool sandbox)
{
	if (c == NULL || platform == NULL || platform[0] == '\0' || token == NULL ||
	    token[0] == '\0') {
		return PIGEON_EINVAL;
	}
	Pigeon__RegisterDevice m = PIGEON__REGISTER_DEVICE__INIT;
	m.platform = (char *)platform;
	m.token = (char *)token;
	m.app = (char *)(app ? app : "");
	m.sandbox = sandbox;
	size_t len = pigeon__register_device__get_packed_size(&m);
	uint8_t *buf = malloc(len ? len : 1);
	if (buf == NULL) {
		return PIGEON_ENOMEM;
	}
	pigeon__register_device__pack(&m, buf);
	return client_command(c, PGC_CMD_DEVICE, NULL, buf, len);
}

int pigeon_client_unregister_device(pigeon_client *c)
{
	if (c == NULL) {
		return PIGEON_EINVAL;
	}
	return client_command(c, PGC_CMD_DEVICE, NULL, NULL, 0);
}

int pigeon_client_set_token(pigeon_client *c, const char *token)
{
	if (c == NULL || token == NULL || token[0] == '\0') {
		return PIGEON_EINVAL;
	}
	char *t = strdup(token);
	if (t == NULL) {
		return PIGEON_ENOMEM;
	}
	pthread_mutex_lock(&c->mu);
	free(c->token);
	c->token = t;
	pthread_mutex_unlock(&c->mu);
	return client_command(c, PGC_CMD_TOKEN, NULL, NULL, 0);
}

int pigeon_client_flush_acks(pigeon_client *c)
{
	if (c == NULL) {
		return PIGEON_EINVAL;
	}
	return client_command(c, PGC_CMD_FLUSH, NULL, NULL, 0);
}

void pigeon_client_stats(pigeon_client *c, struct pigeon_client_stats *st)
{
	if (c == NULL || st == NULL) {
		return;
	}
	pthread_mutex_lock(&c->mu);
	*st = c->st;
	pthread_mutex_unlock(&c->mu);
}

void pigeon_client_destroy(pigeon_client *c)
{
	if (c == NULL) {
		return;
	}
	pthread_mutex_lock(&c->mu);
	bool started = c->started && !c->stopping;
	c->stopping = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	if (started) {
		pthread_join(c->thread, NULL);
	} else {
		pgc_session_save_cursor(c);
	}
	client_free(c);
}
