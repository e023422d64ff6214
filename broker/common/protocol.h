/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Protocol constants shared by the plugins and clients (docs/protocol.md):
 * Reply codes, request limits, and the topic that swallows a publish that
 * was accepted but must not be routed (a duplicate).
 */
#ifndef PIGEON_PROTOCOL_H
#define PIGEON_PROTOCOL_H

/* Reply.code values; documented in docs/protocol.md. */
enum pg_reply_code {
	PG_REPLY_OK = 0,
	PG_REPLY_BAD_REQUEST = 400,   /* malformed or invalid request */
	PG_REPLY_FORBIDDEN = 403,     /* not allowed for this identity */
	PG_REPLY_TOO_LARGE = 413,     /* body over plugin_opt_max_body */
	PG_REPLY_RATE_LIMITED = 429,  /* plugin_opt_send_rate exceeded */
	PG_REPLY_STORE_ERROR = 500,   /* the store failed; nothing changed */
	PG_REPLY_NOT_AVAILABLE = 501, /* the feature is not enabled on this broker */
	PG_REPLY_BUSY = 503,          /* the store is behind: nothing changed, retry later */
};

#define PG_SYNC_LIMIT_DEFAULT 100
#define PG_SYNC_LIMIT_MAX 1000
/* A SyncReply carries at most this many bytes of packed envelopes (at least one message). */
#define PG_SYNC_MAX_BYTES (256 * 1024)

/*
 * Limits on a send's metadata, in bytes of the UTF-8 encoding (the contract,
 * docs/protocol.md "Limits"). They keep a stored envelope within the body
 * limit plus about 2 KiB, whichever path the send took.
 */
#define PG_MSG_ID_MAX 128
#define PG_CONTENT_TYPE_MAX 255
#define PG_PUSH_TITLE_MAX 256
#define PG_PUSH_BODY_MAX 1024

/* Accepted publishes that must reach no one are rewritten to this topic. */
#define PG_DISCARD_TOPIC "$pigeon/discard"

#endif
