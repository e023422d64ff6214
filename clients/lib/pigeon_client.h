/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libpigeon-client: the app side of the pigeon protocol (docs/client.md),
 * over Eclipse Paho C (MQTT 5). It does what an IM app otherwise gets wrong
 * by hand:
 *
 *   - connects as uid / device / token (TLS optional), subscribes
 *     im/<uid>/#, and on every (re)connect syncs from the persisted cursor,
 *     paging until `more` is false;
 *   - hands every stored message to the app exactly once and in seq order:
 *     live deliveries ahead of a gap wait until sync fills it, duplicates
 *     are dropped by seq, and holes that will never be filled (a replaced
 *     notification, an expired message, retention) are reported as gaps;
 *   - acks what the app was handed, in batches;
 *   - keeps every send in a persisted outbox, under a generated msg_id,
 *     until the broker stored it: across reconnects and app restarts, safe
 *     because the broker dedups by msg_id;
 *   - reconnects with exponential backoff and jitter, races several broker
 *     addresses and keeps the first that answers (and remembers it), and
 *     adapts its heartbeat interval to what the network lets an idle
 *     connection survive.
 *
 * Threads: pigeon_client_start() starts one thread per client, the client
 * thread. Every callback is called on it, one at a time, never from inside
 * an API call. Every API function may be called from any thread, including
 * from a callback, except pigeon_client_destroy() (not from a callback).
 *
 * Ownership: strings and options passed in are copied; what a callback
 * receives is valid only until the callback returns.
 *
 * Errors: functions return 0 or a negative PIGEON_E* code; the broker's
 * reply codes (docs/protocol.md: 400, 403, 413, 429, 500, 501, 503) reach
 * callbacks as positive codes. pigeon_strerror() names both.
 */
#ifndef PIGEON_CLIENT_H
#define PIGEON_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define PIGEON_CLIENT_API __attribute__((visibility("default")))
#else
#define PIGEON_CLIENT_API
#endif

/* Error codes (negative); 0 is success. */
enum pigeon_error {
	PIGEON_OK = 0,
	PIGEON_EINVAL = -1,   /* a bad argument (missing uid, a malformed address, ...) */
	PIGEON_ENOMEM = -2,   /* out of memory */
	PIGEON_EPERSIST = -3, /* the persistence hook failed (a full disk, a bad state_dir) */
	PIGEON_ESTATE = -4,   /* not allowed now (started twice, already stopped) */
	PIGEON_EMQTT = -5,    /* the MQTT layer failed (connect error, lost connection) */
	PIGEON_EAUTH = -6,    /* the broker refused the login (bad or expired token) */
	PIGEON_ETIMEOUT = -7, /* no answer in time */
	PIGEON_EPROTO = -8,   /* the broker sent something that is not the pigeon protocol */
};

/* A static English text for code (negative, 0, or a broker reply code). */
PIGEON_CLIENT_API const char *pigeon_strerror(int code);

enum pigeon_kind {
	PIGEON_CHAT = 1,    /* stored, never merged */
	PIGEON_NOTIFY = 2,  /* stored, same-type merging while offline */
	PIGEON_INSTANT = 3, /* never stored, only to devices connected now; seq 0 */
};

/* One message as the broker delivered it (proto/pigeon.proto Envelope). */
struct pigeon_envelope {
	uint64_t seq; /* 0 for INSTANT */
	const char *from;
	const char *to;
	enum pigeon_kind kind;
	const char *type; /* "" unless NOTIFY */
	const char *msg_id;
	uint64_t sent_at_ms;
	uint64_t expires_at_ms;
	const char *content_type;
	const void *body;
	size_t body_len;
	uint32_t merged;
};

/* Why seqs will never be delivered (the gap callback). */
enum pigeon_gap_reason {
	PIGEON_GAP_RETENTION = 1, /* below the inbox's oldest_seq: dropped by TTL or the per-user cap */
	PIGEON_GAP_GONE = 2,      /* a notification replaced by a later one, or an expired message */
};

enum pigeon_state {
	PIGEON_CONNECTING = 1, /* (re)connecting; code/text say why the last attempt failed, if it did */
	PIGEON_ONLINE = 2,     /* connected, subscribed; the first sync has been sent */
	PIGEON_SYNCED = 3,     /* every message stored when the connection began has been handed over */
	PIGEON_OFFLINE = 4,    /* the connection is gone; a reconnect is scheduled (or the client stops) */
};

struct pigeon_callbacks {
	/*
	 * A stored message (CHAT or NOTIFY), in seq order, each seq once; or an
	 * INSTANT message (seq 0) as it arrives. Once it returns, the message
	 * counts as handed over: the cursor moves past it and it is acked.
	 */
	void (*message)(void *ud, const struct pigeon_envelope *env);
	/* seqs first..last (inclusive) will never come, for the reason given. */
	void (*gap)(void *ud, uint64_t first, uint64_t last, enum pigeon_gap_reason why);
	/*
	 * A send left the outbox: code 0 and its seq (0 for INSTANT) once the
	 * broker stored it (duplicate: it had been stored before, under this
	 * msg_id), or the broker's refusal code and text (400, 403, 413), which
	 * a retry cannot fix. 429, 500 and 503 are retried, not reported.
	 */
	void (*sent)(void *ud, const char *msg_id, int code, uint64_t seq, bool duplicate,
	             const char *error);
	/* The broker's answer to register/unregister_device: 0, or its code and text. */
	void (*device)(void *ud, int code, const char *error);
	/* The connection changed state; code and text say why (0 and "" when nothing failed). */
	void (*state)(void *ud, enum pigeon_state state, int code, const char *text);
};

/*
 * Persistence: where the cursor, the outbox and the last winning address
 * live. Every function is called on the client thread (or in
 * pigeon_client_new / pigeon_client_send), returns 0 or a negative code,
 * and must make what it wrote durable before it returns (a send is only
 * promised once outbox_put returned 0). NULL in the options means files
 * in state_dir (docs/client.md lists them).
 */
struct pigeon_persist_ops {
	/* The saved cursor (the highest seq handed over, or 0 when none). */
	int (*load_cursor)(void *ud, uint64_t *seq);
	int (*save_cursor)(void *ud, uint64_t seq);
	/* One outbox record (opaque bytes, at most 1 MiB) under its msg_id. */
	int (*outbox_put)(void *ud, const char *msg_id, const void *rec, size_t len);
	int (*outbox_del)(void *ud, const char *msg_id);
	/* Calls each() for every record, oldest put first; stops when each() returns non-zero. */
	int (*outbox_load)(void *ud,
	                   int (*each)(void *arg, const char *msg_id, const void *rec, size_t len),
	                   void *arg);
	/* The address that won the last race ("" when none); saved on each win. */
	int (*load_server)(void *ud, char *buf, size_t len);
	int (*save_server)(void *ud, const char *server);
	/* Called once by pigeon_client_destroy(). May be NULL. */
	void (*close)(void *ud);
};

struct pigeon_client_options {
	const char *uid;    /* required */
	const char *device; /* required; the client id is <uid>:<device> */
	const char *token;  /* required; replace it with pigeon_client_set_token() */
	/*
	 * Broker addresses, "tcp://host:port" or "ssl://host:port"; raced in
	 * parallel, the remembered winner first (docs/client.md). NULL/0:
	 * tcp://127.0.0.1:1883.
	 */
	const char *const *servers;
	size_t n_servers;
	/* TLS (ssl:// addresses): CA file to verify the broker with; NULL: the system's. */
	const char *tls_ca_file;
	bool tls_insecure; /* skip verifying the broker's certificate and name (tests only) */

	/* Default persistence: files in this directory (created if missing). */
	const char *state_dir;
	/* Or the app's own; when set, state_dir is not used. */
	const struct pigeon_persist_ops *persist;
	void *persist_ud;

	struct pigeon_callbacks cb;
	void *ud; /* passed to every callback */

	/* Tuning; 0 takes the default given. */
	uint32_t connect_timeout_ms;  /* one connect attempt (10000) */
	uint32_t race_delay_ms;       /* head start of the remembered winner (250) */
	uint32_t reconnect_min_ms;    /* first reconnect delay (500) */
	uint32_t reconnect_max_ms;    /* longest reconnect delay (60000) */
	uint32_t request_timeout_ms;  /* a request unanswered this long is repeated (5000) */
	uint32_t keepalive_min_s;     /* the safe heartbeat interval to start from (60) */
	uint32_t keepalive_max_s;     /* never longer than this (600) */
	uint32_t keepalive_step_s;    /* lengthened by this much at a time (30) */
	uint32_t keepalive_timeout_s; /* a heartbeat unanswered this long: the connection died (10) */
	uint32_t ack_batch;           /* ack after this many messages (100) */
	uint32_t ack_delay_ms;        /* or this long after the first unacked one (500) */
	uint32_t sync_limit;          /* messages per sync page (500; at most 1000) */
};

/* What a send carries (proto Send); msg_id NULL: one is generated. */
struct pigeon_send {
	const char *to; /* required */
	enum pigeon_kind kind;
	const char *type; /* required for NOTIFY (services only) */
	const char *msg_id;
	const void *body;
	size_t body_len;
	const char *content_type;
	uint32_t ttl_s;
	const char *push_title;
	const char *push_body;
};

/* Counters and the current adaptive state, for apps and tests. */
struct pigeon_client_stats {
	uint64_t connects;        /* successful connects */
	uint64_t delivered;       /* messages handed to the app */
	uint64_t duplicates;      /* deliveries dropped because their seq was handed over already */
	uint64_t syncs;           /* sync requests sent */
	uint64_t heartbeats;      /* heartbeats answered */
	uint64_t silent_deaths;   /* connections declared dead by an unanswered heartbeat */
	uint64_t cursor;          /* the highest seq handed over */
	uint32_t keepalive_s;     /* the current heartbeat interval */
	bool keepalive_settled;   /* the interval stopped growing: the network's limit is known */
	size_t outbox;            /* sends not yet stored */
	char server[256];         /* the connected (or last) address, "" before the first */
};

typedef struct pigeon_client pigeon_client;

/*
 * Creates a client (nothing connects yet): copies the options, opens the
 * persistence, loads the cursor and the outbox. *out is the caller's, freed
 * by pigeon_client_destroy(). On failure nothing is left open.
 */
PIGEON_CLIENT_API int pigeon_client_new(const struct pigeon_client_options *o,
                                        pigeon_client **out);

/* Starts the client thread: connect, subscribe, sync, and keep at it. */
PIGEON_CLIENT_API int pigeon_client_start(pigeon_client *c);

/*
 * Queues a send: gives it a msg_id (copied to msg_id_out when not NULL,
 * at most PIGEON_MSG_ID_MAX bytes plus the NUL), writes it to the outbox
 * (durable when this returns 0) and sends it as soon as the client is
 * connected, again after every reconnect or restart until the broker
 * answers. The sent callback reports the outcome.
 */
#define PIGEON_MSG_ID_MAX 128
PIGEON_CLIENT_API int pigeon_client_send(pigeon_client *c, const struct pigeon_send *s,
                                         char *msg_id_out, size_t msg_id_len);

/* Registers this device for offline push (platform apns/fcm/huawei/xiaomi/webhook). */
PIGEON_CLIENT_API int pigeon_client_register_device(pigeon_client *c, const char *platform,
                                                    const char *token, const char *app,
                                                    bool sandbox);
PIGEON_CLIENT_API int pigeon_client_unregister_device(pigeon_client *c);

/* Replaces the token used from the next connect on (a refreshed token). */
PIGEON_CLIENT_API int pigeon_client_set_token(pigeon_client *c, const char *token);

/* Sends any pending ack now (e.g. before the app goes to the background). */
PIGEON_CLIENT_API int pigeon_client_flush_acks(pigeon_client *c);

PIGEON_CLIENT_API void pigeon_client_stats(pigeon_client *c, struct pigeon_client_stats *st);

/*
 * Stops the client thread, disconnects, saves the cursor, closes the
 * persistence and frees c. Sends still in the outbox stay there for the
 * next pigeon_client_new() on the same state. NULL is fine.
 */
PIGEON_CLIENT_API void pigeon_client_destroy(pigeon_client *c);

#ifdef __cplusplus
}
#endif

#endif
