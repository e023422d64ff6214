/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pigeon protocol on a live connection (docs/protocol.md), on the
 * client thread:
 *
 *   - requests: every Request gets the next id and waits in c->reqs until
 *     its Reply comes (matched by id; unknown ids are ignored). One
 *     unanswered for request_timeout_ms is published again as is: every
 *     request is idempotent. A new connection forgets them all; what still
 *     matters (sync, the ack, the outbox, a device request) is sent anew;
 *   - sync and the reorder buffer: sync pages (after the cursor, paging
 *     while `more`) and live envelopes go into the order buffer, each page
 *     settles what it proves will never come, and what is in order is
 *     handed to the app; a live envelope waiting behind a gap starts a
 *     sync, at most one at a time. INSTANT envelopes skip the buffer;
 *   - acks: after ack_batch messages or ack_delay_ms, the cursor is saved
 *     (first, so the broker's cursor is never ahead of the saved one) and
 *     acked;
 *   - heartbeats: after pgc_keepalive_interval() idle seconds a 1-message
 *     sync proves the connection alive; unanswered within
 *     keepalive_timeout_s it is declared dead and dropped;
 *   - the outbox: every pending send as Request{send}, at most
 *     PGC_SEND_WINDOW in flight, until the broker stores or refuses it.
 *
 * Ownership: the client thread owns every request, outbox entry and
 * envelope here; envelopes are handed to the app for the duration of its
 * callback only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "engine.h"

/* ---- requests */

/* Appends v as a protobuf varint at p; returns the bytes written. */
static size_t session_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/*
 * Request{id, <field>: body} where body is an already packed sub-message:
 * written by hand, so an outbox record goes out without being unpacked and
 * packed again. *out is malloc'd.
 */
static int session_wrap(uint64_t id, unsigned field, const uint8_t *body, size_t len, uint8_t **out,
                        size_t *out_len)
{
	uint8_t *p = malloc(1 + 10 + 1 + 10 + len);
	if (p == NULL) {
		return PIGEON_ENOMEM;
	}
	size_t n = 0;
	p[n++] = 0x08; /* field 1 (id), varint */
	n += session_varint(p + n, id);
	p[n++] = (uint8_t)(field << 3 | 2); /* length-delimited */
	n += session_varint(p + n, len);
	if (len) {
		memcpy(p + n, body, len);
	}
	*out = p;
	*out_len = n + len;
	return 0;
}

static struct pgc_req *session_req_add(struct pigeon_client *c, enum pgc_req_kind kind, uint64_t id,
                                       uint8_t *buf, size_t len)
{
	struct pgc_req *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		free(buf);
		return NULL;
	}
	r->id = id;
	r->kind = kind;
	r->buf = buf;
	r->len = len;
	HASH_ADD(hh, c->reqs, id, sizeof(r->id), r);
	return r;
}

static void session_req_publish(struct pigeon_client *c, struct pgc_req *r, uint64_t now)
{
	r->sent_ms = now;
	/* A failed publish is a connection going down: the timeout repeats it. */
	(void)pgc_conn_publish(c, PGC_CONTROL_TOPIC, r->buf, r->len);
}

static void session_req_remove(struct pigeon_client *c, struct pgc_req *r)
{
	if (r == NULL) {
		return;
	}
	HASH_DEL(c->reqs, r);
	if (c->sync_req == r) {
		c->sync_req = NULL;
	}
	if (c->hb_req == r) {
		c->hb_req = NULL;
	}
	if (c->ack_req == r) {
		c->ack_req = NULL;
	}
	if (c->dev_req == r) {
		c->dev_req = NULL;
	}
	if (r->ob) {
		r->ob->req = NULL;
		c->ob_inflight--;
	}
	free(r->buf);
	free(r);
}

/* Packs and sends a Request built by the caller (r.id is set here). */
static struct pgc_req *session_request(struct pigeon_client *c, enum pgc_req_kind kind,
                                       Pigeon__Request *rq, uint64_t now)
{
	rq->id = c->req_next_id++;
	size_t len = pigeon__request__get_packed_size(rq);
	uint8_t *buf = malloc(len);
	if (buf == NULL) {
		return NULL;
	}
	pigeon__request__pack(rq, buf);
	struct pgc_req *r = session_req_add(c, kind, rq->id, buf, len);
	if (r) {
		session_req_publish(c, r, now);
	}
	return r;
}

static void session_proto_error(struct pigeon_client *c, const char *what)
{
	/* Counted always, said once per connection: a broker may send garbage in a loop. */
	if (!c->proto_noted) {
		c->proto_noted = true;
		char text[160];
		snprintf(text, sizeof(text), "ignored a malformed %s from the broker", what);
		pgc_set_state(c, c->state_now, PIGEON_EPROTO, text);
	}
}

/* ---- sync, order, hand-over */

static void session_sync(struct pigeon_client *c, uint64_t after, uint32_t limit,
                         enum pgc_req_kind kind, uint64_t now)
{
	Pigeon__SyncRequest s = PIGEON__SYNC_REQUEST__INIT;
	s.after_seq = after;
	s.limit = limit;
	Pigeon__Request rq = PIGEON__REQUEST__INIT;
	rq.body_case = PIGEON__REQUEST__BODY_SYNC;
	rq.sync = &s;
	struct pgc_req *r = session_request(c, kind, &rq, now);
	if (r == NULL) {
		return;
	}
	r->arg = after;
	if (kind == PGC_REQ_SYNC) {
		c->sync_req = r;
		c->priv.syncs++;
	} else {
		c->hb_req = r;
	}
}

static void session_sync_after_cursor(struct pigeon_client *c, uint64_t now)
{
	if (c->sync_req == NULL && c->link == PGC_LINK_UP) {
		session_sync(c, pgc_order_cursor(c->order), c->sync_limit, PGC_REQ_SYNC, now);
	}
}

static void session_deliver(struct pigeon_client *c, const Pigeon__Envelope *m)
{
	struct pigeon_envelope e = {
	    .seq = m->seq,
	    .from = m->from ? m->from : "",
	    .to = m->to ? m->to : "",
	    .kind = (enum pigeon_kind)m->kind,
	    .type = m->type ? m->type : "",
	    .msg_id = m->msg_id ? m->msg_id : "",
	    .sent_at_ms = m->sent_at_ms,
	    .expires_at_ms = m->expires_at_ms,
	    .content_type = m->content_type ? m->content_type : "",
	    .body = m->body.data,
	    .body_len = m->body.len,
	    .merged = m->merged,
	};
	c->priv.delivered++;
	if (m->seq) {
		/* Exact while the app looks: it may stop at the message it counts. */
		pgc_stats_publish(c);
	}
	if (c->cb.message) {
		c->cb.message(c->ud, &e);
	}
}

static void session_ack(struct pigeon_client *c, uint64_t now);

/* Hands over everything in order; acks when a batch is full. */
static void session_drain(struct pigeon_client *c, uint64_t now)
{
	struct pgc_item it;
	while (pgc_order_pop(c->order, &it)) {
		if (it.env) {
			session_deliver(c, it.env);
			pigeon__envelope__free_unpacked(it.env, NULL);
		} else if (c->cb.gap) {
			c->cb.gap(c->ud, it.first, it.last, it.why);
		}
		if (c->unacked++ == 0) {
			c->ack_due_ms = now + c->ack_delay_ms;
		}
	}
	/* One ack per batch handed over, not per message: an ack costs an fsync. */
	if (c->unacked >= c->ack_batch) {
		session_ack(c, now);
	}
}

static void session_offer(struct pigeon_client *c, Pigeon__Envelope *m)
{
	int rc = pgc_order_offer(c->order, m);
	if (rc == PGC_OFFER_DUPLICATE) {
		c->priv.duplicates++;
	}
}

void pgc_session_inbox(struct pigeon_client *c, const void *buf, size_t len, uint64_t now)
{
	Pigeon__Envelope *m = pigeon__envelope__unpack(NULL, len, buf);
	if (m == NULL) {
		session_proto_error(c, "envelope");
		return;
	}
	if (m->seq == 0) {
		/* INSTANT: never stored, nothing to order. */
		session_deliver(c, m);
		pigeon__envelope__free_unpacked(m, NULL);
		return;
	}
	int rc = pgc_order_offer(c->order, m);
	if (rc == PGC_OFFER_DUPLICATE) {
		c->priv.duplicates++;
	} else if (rc == PGC_OFFER_WAITING) {
		session_sync_after_cursor(c, now);
	}
	session_drain(c, now);
}

static void session_sync_reply(struct pigeon_client *c, struct pgc_req *r, Pigeon__Reply *rep,
                               uint64_t now)
{
	if (rep->code != 0 || rep->body_case != PIGEON__REPLY__BODY_SYNC || rep->sync == NULL) {
		/* 500/503: the store is busy; the timeout repeats the page. */
		return;
	}
	Pigeon__SyncReply *s = rep->sync;
	uint64_t after = r->arg, last = after;
	for (size_t i = 0; i < s->n_messages; i++) {
		Pigeon__Envelope *m = s->messages[i];
		s->messages[i] = NULL; /* the order buffer owns it now */
		if (m == NULL) {
			continue;
		}
		if (m->seq == 0) {
			pigeon__envelope__free_unpacked(m, NULL);
			continue;
		}
		if (m->seq > last) {
			last = m->seq;
		}
		session_offer(c, m);
	}
	s->n_messages = 0;
	bool more = s->more && last > after;
	uint64_t upto = more ? last : s->head_seq;
	if (upto > after) {
		(void)pgc_order_settle(c->order, after, upto, s->oldest_seq);
	}
	session_req_remove(c, r);
	session_drain(c, now);
	if (more) {
		session_sync(c, last, c->sync_limit, PGC_REQ_SYNC, now);
		return;
	}
	if (c->initial_sync) {
		c->initial_sync = false;
		pgc_set_state(c, PIGEON_SYNCED, 0, "");
		if (c->link != PGC_LINK_UP) {
			return; /* the callback may not destroy the client, but be careful anyway */
		}
	}
	/* Live envelopes newer than this sync's head still wait for a hole. */
	if (pgc_order_held(c->order) > 0) {
		session_sync_after_cursor(c, now);
	}
}

static void session_heartbeat_reply(struct pigeon_client *c, struct pgc_req *r, Pigeon__Reply *rep,
                                    uint64_t now)
{
	session_req_remove(c, r);
	/* Any answer, even an error, proves the connection alive. */
	pgc_keepalive_answered(&c->ka, c->hb_idle, now);
	c->priv.heartbeats++;
	if (rep->code == 0 && rep->body_case == PIGEON__REPLY__BODY_SYNC && rep->sync &&
	    rep->sync->head_seq > pgc_order_cursor(c->order)) {
		session_sync_after_cursor(c, now); /* a message we missed */
	}
}

/* ---- acks */

static void session_ack(struct pigeon_client *c, uint64_t now)
{
	uint64_t cursor = pgc_order_cursor(c->order);
	if (c->link != PGC_LINK_UP || cursor == 0 ||
	    (cursor <= c->acked && c->ack_req == NULL && c->unacked == 0)) {
		return;
	}
	if (cursor != c->saved_cursor) {
		if (pgc_persist_save_cursor(c, cursor) != 0) {
			/* Not acked: the broker's cursor must not pass the saved one. */
			c->ack_due_ms = now + c->request_timeout_ms;
			pgc_set_state(c, c->state_now, PIGEON_EPERSIST, "saving the cursor failed");
			return;
		}
		c->saved_cursor = cursor;
	}
	c->unacked = 0;
	c->ack_due_ms = 0;
	if (cursor <= c->acked) {
		return;
	}
	session_req_remove(c, c->ack_req); /* superseded */
	Pigeon__Ack a = PIGEON__ACK__INIT;
	a.seq = cursor;
	Pigeon__Request rq = PIGEON__REQUEST__INIT;
	rq.body_case = PIGEON__REQUEST__BODY_ACK;
	rq.ack = &a;
	struct pgc_req *r = session_request(c, PGC_REQ_ACK, &rq, now);
	if (r) {
		r->arg = cursor;
		c->ack_req = r;
	}
}

void pgc_session_flush_acks(struct pigeon_client *c, uint64_t now)
{
	if (c->unacked > 0 || pgc_order_cursor(c->order) > c->acked) {
		c->unacked = c->unacked ? c->unacked : 1;
		session_ack(c, now);
	}
}

void pgc_session_save_cursor(struct pigeon_client *c)
{
	uint64_t cursor = pgc_order_cursor(c->order);
	if (cursor != c->saved_cursor && pgc_persist_save_cursor(c, cursor) == 0) {
		c->saved_cursor = cursor;
	}
}

/* ---- the outbox */

void pgc_session_add_outbox(struct pigeon_client *c, char *msg_id, uint8_t *rec, size_t len)
{
	struct pgc_outbox *ob = NULL;
	HASH_FIND_STR(c->ob_by_id, msg_id, ob);
	if (ob == NULL) {
		ob = calloc(1, sizeof(*ob));
	} else {
		ob = NULL; /* the same send again: the one queued already stands */
		goto drop;
	}
	if (ob == NULL) {
		goto drop;
	}
	ob->msg_id = msg_id;
	ob->rec = rec;
	ob->len = len;
	ob->prev = c->ob_tail;
	if (c->ob_tail) {
		c->ob_tail->next = ob;
	} else {
		c->ob_head = ob;
	}
	c->ob_tail = ob;
	HASH_ADD_KEYPTR(hh, c->ob_by_id, ob->msg_id, strlen(ob->msg_id), ob);
	return;
drop:
	free(msg_id);
	free(rec);
	pthread_mutex_lock(&c->mu);
	c->st.outbox--;
	pthread_mutex_unlock(&c->mu);
}

static void session_outbox_remove(struct pigeon_client *c, struct pgc_outbox *ob)
{
	if (ob->req) {
		ob->req->ob = NULL;
		session_req_remove(c, ob->req);
		c->ob_inflight--;
	}
	if (ob->prev) {
		ob->prev->next = ob->next;
	} else {
		c->ob_head = ob->next;
	}
	if (ob->next) {
		ob->next->prev = ob->prev;
	} else {
		c->ob_tail = ob->prev;
	}
	HASH_DEL(c->ob_by_id, ob);
	free(ob->msg_id);
	free(ob->rec);
	free(ob);
	pthread_mutex_lock(&c->mu);
	c->st.outbox--;
	pthread_mutex_unlock(&c->mu);
}

static void session_outbox_pump(struct pigeon_client *c, uint64_t now, uint64_t *next)
{
	if (c->link != PGC_LINK_UP) {
		return;
	}
	for (struct pgc_outbox *ob = c->ob_head; ob && c->ob_inflight < PGC_SEND_WINDOW;
	     ob = ob->next) {
		if (ob->req) {
			continue;
		}
		if (ob->next_ms > now) {
			if (ob->next_ms < *next) {
				*next = ob->next_ms;
			}
			continue;
		}
		uint64_t id = c->req_next_id++;
		uint8_t *buf = NULL;
		size_t len = 0;
		if (session_wrap(id, 6, ob->rec, ob->len, &buf, &len) != 0) {
			return;
		}
		struct pgc_req *r = session_req_add(c, PGC_REQ_SEND, id, buf, len);
		if (r == NULL) {
			return;
		}
		r->ob = ob;
		ob->req = r;
		c->ob_inflight++;
		session_req_publish(c, r, now);
	}
}

static bool session_send_retryable(uint32_t code)
{
	return code == 429 || code == 500 || code == 503;
}

static void session_send_reply(struct pigeon_client *c, struct pgc_req *r, Pigeon__Reply *rep,
                               uint64_t now)
{
	struct pgc_outbox *ob = r->ob;
	session_req_remove(c, r);
	if (ob == NULL) {
		return;
	}
	if (session_send_retryable(rep->code)) {
		ob->next_ms = now + pgc_backoff_delay_ms(ob->attempts, c->reconnect_min_ms,
		                                         PGC_SEND_RETRY_MAX_MS, pgc_random32());
		if (ob->attempts < 31) {
			ob->attempts++;
		}
		return;
	}
	/* Stored or refused for good: out of the outbox, then the app is told. */
	(void)pgc_persist_outbox_del(c, ob->msg_id);
	char msg_id[PIGEON_MSG_ID_MAX + 1];
	snprintf(msg_id, sizeof(msg_id), "%s", ob->msg_id);
	session_outbox_remove(c, ob);
	if (c->cb.sent == NULL) {
		return;
	}
	if (rep->code == 0) {
		bool ok = rep->body_case == PIGEON__REPLY__BODY_SEND && rep->send;
		c->cb.sent(c->ud, msg_id, 0, ok ? rep->send->seq : 0, ok && rep->send->duplicate,
		           NULL);
	} else {
		c->cb.sent(c->ud, msg_id, (int)rep->code, 0, false,
		           rep->error && rep->error[0] ? rep->error
		                                       : pigeon_strerror((int)rep->code));
	}
}

/* ---- devices */

static void session_device_send(struct pigeon_client *c, uint64_t now)
{
	if (!c->dev_pending || c->dev_req || c->link != PGC_LINK_UP) {
		return;
	}
	uint64_t id = c->req_next_id++;
	uint8_t *buf = NULL;
	size_t len = 0;
	if (session_wrap(id, c->dev_unregister ? 5 : 4, c->dev_body, c->dev_len, &buf, &len) != 0) {
		return;
	}
	struct pgc_req *r = session_req_add(c, PGC_REQ_DEVICE, id, buf, len);
	if (r) {
		c->dev_req = r;
		session_req_publish(c, r, now);
	}
}

void pgc_session_device(struct pigeon_client *c, uint8_t *body, size_t len, uint64_t now)
{
	/* The latest request replaces one not answered yet. */
	session_req_remove(c, c->dev_req);
	free(c->dev_body);
	c->dev_body = body;
	c->dev_len = body ? len : 0;
	c->dev_unregister = body == NULL;
	c->dev_pending = true;
	session_device_send(c, now);
}

static void session_device_reply(struct pigeon_client *c, struct pgc_req *r, Pigeon__Reply *rep)
{
	session_req_remove(c, r);
	c->dev_pending = false;
	free(c->dev_body);
	c->dev_body = NULL;
	if (c->cb.device) {
		c->cb.device(c->ud, (int)rep->code,
		             rep->code == 0
		                 ? ""
		                 : (rep->error && rep->error[0] ? rep->error
		                                                : pigeon_strerror((int)rep->code)));
	}
}

/* ---- replies */

void pgc_session_reply(struct pigeon_client *c, const void *buf, size_t len, uint64_t now)
{
	Pigeon__Reply *rep = pigeon__reply__unpack(NULL, len, buf);
	if (rep == NULL) {
		session_proto_error(c, "reply");
		return;
	}
	struct pgc_req *r = NULL;
	HASH_FIND(hh, c->reqs, &rep->id, sizeof(rep->id), r);
	if (r == NULL) {
		goto out; /* answered already, or from before a reconnect */
	}
	switch (r->kind) {
	case PGC_REQ_SYNC:
		session_sync_reply(c, r, rep, now);
		break;
	case PGC_REQ_HEARTBEAT:
		session_heartbeat_reply(c, r, rep, now);
		break;
	case PGC_REQ_ACK:
		if (rep->code == 0 && r->arg > c->acked) {
			c->acked = r->arg;
		}
		/* A refused ack (beyond head_seq) would be refused again: not repeated. */
		session_req_remove(c, r);
		break;
	case PGC_REQ_SEND:
		session_send_reply(c, r, rep, now);
		break;
	case PGC_REQ_DEVICE:
		session_device_reply(c, r, rep);
		break;
	}
out:
	pigeon__reply__free_unpacked(rep, NULL);
}

/* ---- the connection's life */

void pgc_session_up(struct pigeon_client *c, uint64_t now)
{
	c->proto_noted = false;
	c->last_rx_ms = c->last_tx_ms = now;
	c->initial_sync = true;
	session_sync(c, pgc_order_cursor(c->order), c->sync_limit, PGC_REQ_SYNC, now);
	pgc_set_state(c, PIGEON_ONLINE, 0, "");
	if (c->link != PGC_LINK_UP) {
		return;
	}
	session_device_send(c, now);
	if (pgc_order_cursor(c->order) > c->acked) {
		c->unacked = c->unacked ? c->unacked : 1;
		session_ack(c, now);
	}
}

void pgc_session_down(struct pigeon_client *c)
{
	struct pgc_req *r, *tmp;
	HASH_ITER(hh, c->reqs, r, tmp)
	{
		session_req_remove(c, r);
	}
	c->initial_sync = false;
}

void pgc_session_timers(struct pigeon_client *c, uint64_t now, uint64_t *next)
{
	if (c->link != PGC_LINK_UP) {
		return;
	}
	/* Requests unanswered too long go out again (the heartbeat instead decides). */
	struct pgc_req *r, *tmp;
	HASH_ITER(hh, c->reqs, r, tmp)
	{
		if (r->kind == PGC_REQ_HEARTBEAT) {
			continue;
		}
		uint64_t due = r->sent_ms + c->request_timeout_ms;
		if (now >= due) {
			session_req_publish(c, r, now);
			due = now + c->request_timeout_ms;
		}
		if (due < *next) {
			*next = due;
		}
	}

	if (c->unacked > 0) {
		if (c->unacked >= c->ack_batch || now >= c->ack_due_ms) {
			session_ack(c, now);
		}
		if (c->unacked > 0 && c->ack_due_ms < *next) {
			*next = c->ack_due_ms;
		}
	}

	session_outbox_pump(c, now, next);

	/* The heartbeat. */
	if (c->hb_req) {
		uint64_t dead = c->hb_req->sent_ms + (uint64_t)c->keepalive_timeout_s * 1000u;
		if (now >= dead) {
			pgc_keepalive_died(&c->ka, now);
			c->priv.silent_deaths++;
			pgc_conn_lost(c, PIGEON_ETIMEOUT,
			              "heartbeat unanswered: the connection died", true);
			return;
		}
		if (dead < *next) {
			*next = dead;
		}
	} else {
		/* Only what is received proves the connection alive: sends alone do not. */
		uint64_t due = c->last_rx_ms + (uint64_t)pgc_keepalive_interval(&c->ka) * 1000u;
		if (now >= due) {
			c->hb_idle = c->last_tx_ms <= c->last_rx_ms;
			session_sync(c, pgc_order_cursor(c->order), 1, PGC_REQ_HEARTBEAT, now);
			if (c->hb_req) {
				due = now + (uint64_t)c->keepalive_timeout_s * 1000u;
			} else {
				due = now + 1000u;
			}
		}
		if (due < *next) {
			*next = due;
		}
	}
}

int pgc_session_init(struct pigeon_client *c, uint64_t cursor)
{
	c->order = pgc_order_new(cursor);
	if (c->order == NULL) {
		return PIGEON_ENOMEM;
	}
	c->acked = cursor;
	c->saved_cursor = cursor;
	c->req_next_id = 1;
	return 0;
}

void pgc_session_free(struct pigeon_client *c)
{
	pgc_session_down(c);
	while (c->ob_head) {
		session_outbox_remove(c, c->ob_head);
	}
	free(c->dev_body);
	c->dev_body = NULL;
	if (c->order) {
		pgc_order_free(c->order);
		c->order = NULL;
	}
}
