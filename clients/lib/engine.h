/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The engine of libpigeon-client: the client struct the engine files share,
 * and their internal entry points (never exported; the library builds with
 * hidden visibility).
 *
 *   client.c   the public API, the event queue, the client thread's loop
 *   conn.c     the Paho MQTTAsync connections: the race, reconnects,
 *              Paho's callbacks (which only queue events)
 *   session.c  the protocol on a live connection: requests and replies,
 *              sync and the reorder buffer, acks, heartbeats, the outbox
 *
 * Threads. Paho calls its callbacks on its own threads; they lock c->mu,
 * append an event to c->evq and signal c->cv, nothing else. The API
 * functions do the same with commands. Everything below "client thread
 * only" is touched by the client thread alone, without a lock; everything
 * under "c->mu" only with it held. Persistence calls are serialized by
 * c->pmu (pigeon_client_send calls outbox_put from the app's thread).
 * The client thread never calls Paho or an app callback with c->mu held.
 */
#ifndef PIGEON_CLIENT_ENGINE_H
#define PIGEON_CLIENT_ENGINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <MQTTAsync.h>
#include <uthash.h>

#include "keepalive.h"
#include "order.h"
#include "pigeon.pb-c.h"
#include "pigeon_client.h"

#define PGC_CONTROL_TOPIC "$CONTROL/pigeon/v1"
#define PGC_SEND_WINDOW 100         /* Send requests in flight at most */
#define PGC_SEND_RETRY_MAX_MS 30000 /* longest wait before a refused (429/5xx) send is retried */
#define PGC_MAX_SERVERS 16

enum pgc_ev_type {
	/* From Paho (gen says which handle; stale ones are ignored). */
	PGC_EV_CONN_OK = 1,
	PGC_EV_CONN_FAIL,
	PGC_EV_LOST,
	PGC_EV_SUB_OK,
	PGC_EV_SUB_FAIL,
	PGC_EV_INBOX, /* a message on im/<uid>/inbox */
	PGC_EV_REPLY, /* a message on im/<uid>/reply */
	PGC_EV_OTHER, /* any other topic: ignored */
	PGC_EV_DISCONNECTED,
	PGC_EV_TLS_ERROR, /* OpenSSL's error text of a failing handshake (text) */
	/* From the API. */
	PGC_CMD_SEND,   /* a new outbox record (msg_id, data = packed Send) */
	PGC_CMD_DEVICE, /* register (data = packed RegisterDevice) or unregister (data NULL) */
	PGC_CMD_FLUSH,  /* send the pending ack now */
	PGC_CMD_TOKEN,  /* the token changed: reconnect now if waiting after a refusal */
};

/* One queued event or command; owned by the queue, then by the client thread. */
struct pgc_event {
	struct pgc_event *next;
	enum pgc_ev_type type;
	uint64_t gen; /* the Paho handle's generation (PGC_EV_*) */
	int code;     /* Paho code or MQTT reason code (failures) */
	int reason;
	MQTTAsync_message
	    *msg;    /* PGC_EV_INBOX/REPLY/OTHER: Paho's, freed with MQTTAsync_freeMessage */
	char *topic; /* Paho's, freed with MQTTAsync_free */
	char *text;  /* malloc'd (failure text, msg_id of PGC_CMD_SEND) or NULL */
	void *data;  /* malloc'd payload of a command */
	size_t len;
};

/* What Paho's callbacks get as their context: immutable once made. */
struct pgc_conn_ctx {
	struct pigeon_client *c;
	uint64_t gen;
	struct pgc_conn_ctx *next; /* on c->retired */
	uint64_t retired_ms;
};

enum pgc_conn_state { PGC_CONN_WAITING = 0, PGC_CONN_CONNECTING, PGC_CONN_FAILED };

/* One address of the race. */
struct pgc_conn {
	const char *uri; /* c->servers[i] */
	MQTTAsync h;     /* NULL when not created */
	struct pgc_conn_ctx *ctx;
	enum pgc_conn_state state;
	uint64_t start_ms;    /* when its connect starts */
	uint64_t deadline_ms; /* when its connect attempt times out */
	/* The first OpenSSL error of this attempt ("" when none): why a TLS connect failed. */
	char tls_error[256];
};

enum pgc_link {
	PGC_LINK_IDLE = 0, /* waiting for reconnect_ms */
	PGC_LINK_RACING,   /* connecting to the addresses */
	PGC_LINK_SUBSCRIBING,
	PGC_LINK_UP, /* subscribed: the protocol runs */
};

enum pgc_req_kind {
	PGC_REQ_SYNC = 1,
	PGC_REQ_HEARTBEAT,
	PGC_REQ_ACK,
	PGC_REQ_SEND,
	PGC_REQ_DEVICE,
};

struct pgc_outbox;

/* An outstanding request (client thread only). */
struct pgc_req {
	uint64_t id;
	enum pgc_req_kind kind;
	uint8_t *buf; /* the packed Request, repeated as is */
	size_t len;
	uint64_t sent_ms;
	uint64_t arg;          /* SYNC: after_seq; ACK: seq */
	struct pgc_outbox *ob; /* SEND */
	UT_hash_handle hh;
};

/* One pending send (client thread only; its record is in the persistence too). */
struct pgc_outbox {
	char *msg_id;
	uint8_t *rec; /* the packed Send */
	size_t len;
	struct pgc_req *req; /* in flight, or NULL */
	uint64_t next_ms;    /* not before (a refused send waits) */
	uint32_t attempts;
	struct pgc_outbox *prev, *next; /* c->ob_head list, oldest first */
	UT_hash_handle hh;              /* c->ob_by_id */
};

struct pigeon_client {
	/* Immutable after pigeon_client_new. */
	char *uid, *device, *client_id;
	char *servers[PGC_MAX_SERVERS];
	size_t n_servers;
	char *tls_ca_file;
	bool tls_insecure;
	struct pigeon_callbacks cb;
	void *ud;
	const struct pigeon_persist_ops *persist;
	void *persist_ud;
	bool persist_own; /* the default files: closed with persist->close */
	uint32_t connect_timeout_ms, race_delay_ms, reconnect_min_ms, reconnect_max_ms;
	uint32_t request_timeout_ms, keepalive_timeout_s, ack_batch, ack_delay_ms, sync_limit;
	struct pgc_keepalive_config ka_cfg;
	char *inbox_topic, *reply_topic, *sub_topic;
	size_t topic_len; /* of inbox_topic and reply_topic (both im/<uid>/ + 5) */

	pthread_t thread;
	pthread_mutex_t pmu; /* serializes the persistence calls */

	/* c->mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct pgc_event *evq_head, *evq_tail;
	struct pgc_event *ev_free; /* recycled event nodes */
	size_t ev_free_n;
	bool started, stopping;
	char *token;
	struct pigeon_client_stats st; /* copied from `priv` each loop turn; st.outbox kept live */

	/* Client thread only. */
	struct pigeon_client_stats priv;
	struct pgc_order *order;
	struct pgc_keepalive ka;
	enum pgc_link link;
	struct pgc_conn conns[PGC_MAX_SERVERS];
	int active; /* the winner's index in conns, or -1 */
	uint64_t gen_next;
	struct pgc_conn_ctx *retired;
	uint64_t reconnect_ms;
	uint32_t attempt; /* reconnect attempts since the last successful connect */
	bool auth_refused;
	int last_code;
	char last_text[384];
	bool proto_noted; /* a PIGEON_EPROTO note was given on this connection */
	enum pigeon_state state_now;

	uint64_t req_next_id;
	struct pgc_req *reqs; /* by id */
	struct pgc_req *sync_req;
	struct pgc_req *hb_req;
	bool initial_sync;   /* the connect-time sync is running: SYNCED when it ends */
	uint64_t last_rx_ms; /* the last message received: proves the connection alive */
	uint64_t last_tx_ms; /* the last publish */
	bool hb_idle;        /* nothing was sent in the interval the heartbeat tests */

	uint64_t acked;          /* the highest seq whose ack the broker answered */
	uint64_t saved_cursor;   /* the cursor the persistence has */
	struct pgc_req *ack_req; /* the ack in flight */
	uint32_t unacked;        /* handed over since the last ack */
	uint64_t ack_due_ms;     /* 0: no ack pending */
	bool ack_now;

	struct pgc_outbox *ob_head, *ob_tail, *ob_by_id;
	size_t ob_inflight;

	uint8_t *dev_body; /* the pending device request (packed), or NULL */
	size_t dev_len;
	bool dev_pending, dev_unregister;
	struct pgc_req *dev_req;
};

/* client.c */
uint64_t pgc_now_ms(void);
/* Queues an event (called from Paho's threads); takes msg/topic/text. */
void pgc_post(struct pigeon_client *c, struct pgc_event *ev);
struct pgc_event *pgc_event_new(struct pigeon_client *c);
void pgc_event_free(struct pigeon_client *c, struct pgc_event *ev);
void pgc_set_state(struct pigeon_client *c, enum pigeon_state s, int code, const char *text);
/* Copies the client thread's counters to what pigeon_client_stats() returns. */
void pgc_stats_publish(struct pigeon_client *c);

/* conn.c */
void pgc_conn_start_race(struct pigeon_client *c, uint64_t now);
/* Drops every handle (winner included); the link becomes IDLE, reconnecting at `at_ms`. */
void pgc_conn_drop(struct pigeon_client *c, uint64_t at_ms);
/* The connection was lost or dropped: OFFLINE, then reconnect with backoff (or now). */
void pgc_conn_lost(struct pigeon_client *c, int code, const char *text, bool now);
void pgc_conn_event(struct pigeon_client *c, struct pgc_event *ev, uint64_t now);
void pgc_conn_timers(struct pigeon_client *c, uint64_t now, uint64_t *next);
/* Publishes QoS 1 on the winner: 0, or PIGEON_EMQTT. */
int pgc_conn_publish(struct pigeon_client *c, const char *topic, const void *buf, size_t len);
/* Disconnects the winner cleanly (waiting up to timeout_ms) and destroys every handle. */
void pgc_conn_close(struct pigeon_client *c, uint32_t timeout_ms);
void pgc_conn_free_retired(struct pigeon_client *c, bool all);

/* session.c */
int pgc_session_init(struct pigeon_client *c, uint64_t cursor);
void pgc_session_free(struct pigeon_client *c);
/* The link is up (subscribed): sync, resend the outbox, etc. */
void pgc_session_up(struct pigeon_client *c, uint64_t now);
/* The link went down: forget the requests in flight. */
void pgc_session_down(struct pigeon_client *c);
void pgc_session_inbox(struct pigeon_client *c, const void *buf, size_t len, uint64_t now);
void pgc_session_reply(struct pigeon_client *c, const void *buf, size_t len, uint64_t now);
void pgc_session_timers(struct pigeon_client *c, uint64_t now, uint64_t *next);
/* Takes ownership of msg_id and rec (malloc'd). */
void pgc_session_add_outbox(struct pigeon_client *c, char *msg_id, uint8_t *rec, size_t len);
void pgc_session_device(struct pigeon_client *c, uint8_t *body, size_t len, uint64_t now);
void pgc_session_flush_acks(struct pigeon_client *c, uint64_t now);
/* Saves the cursor (destroy). */
void pgc_session_save_cursor(struct pigeon_client *c);

/* Persistence, serialized by c->pmu. */
int pgc_persist_save_cursor(struct pigeon_client *c, uint64_t seq);
int pgc_persist_outbox_del(struct pigeon_client *c, const char *msg_id);

#endif
