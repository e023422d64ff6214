/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the push core hands a provider's worker (one push to one device) and
 * what comes back. Plain values with fixed buffers: a job is copied into
 * the worker and a result out of it, so nothing is shared across threads.
 */
#ifndef PIGEON_PUSH_JOB_H
#define PIGEON_PUSH_JOB_H

#include "export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ident.h"
#include "protocol.h"

enum pg_push_platform {
	PG_PUSH_APNS,
	PG_PUSH_FCM,
	PG_PUSH_HUAWEI,
	PG_PUSH_XIAOMI,
	PG_PUSH_WEBHOOK,
	PG_PUSH_PLATFORM_COUNT
};

/* Device tokens and app ids are at most this many bytes (RegisterDevice). */
#define PG_PUSH_TOKEN_MAX 512
#define PG_PUSH_APP_MAX 255
/* Notification type: the topic grammar's limit (common/topic.h) */
#define PG_PUSH_TYPE_MAX PG_IDENT_MAX

/* "apns", "fcm", ... */
PG_EXPORT const char *pg_push_platform_name(enum pg_push_platform p);
/* 0 and *out for a known name, -1 otherwise. */
PG_EXPORT int pg_push_platform_parse(const char *name, enum pg_push_platform *out);

enum pg_push_kind {
	PG_PUSH_KIND_CHAT = 1, /* the values of Pigeon__Kind */
	PG_PUSH_KIND_NOTIFY = 2,
};

struct pg_push_job {
	uint64_t id; /* outbox row: echoed in the result */
	enum pg_push_platform platform;
	char uid[PG_IDENT_MAX + 1];
	char device[PG_IDENT_MAX + 1];
	char token[PG_PUSH_TOKEN_MAX + 1];
	char app[PG_PUSH_APP_MAX + 1]; /* "" if the device gave none */
	bool sandbox;
	/* the custom data: the latest message of the coalesced ones */
	uint64_t seq;
	char from[PG_IDENT_MAX + 1];
	enum pg_push_kind kind;
	char type[PG_PUSH_TYPE_MAX + 1]; /* NOTIFY; "" for CHAT */
	uint32_t count;                  /* messages this push stands for (>= 1) */
	uint64_t badge;                  /* the device's unread count when dispatched */
	int64_t expires_at_ms;           /* the latest message's expiry (0: none) */
	/* push-title / push-body of the message, else the configured defaults;
	 * NUL-terminated UTF-8, at most the contract's limits */
	char title[PG_PUSH_TITLE_MAX + 1];
	char body[PG_PUSH_BODY_MAX + 1];
	uint32_t attempt; /* 1 for the first attempt */
};

enum pg_push_outcome {
	PG_PUSH_DELIVERED,     /* the provider accepted it: done */
	PG_PUSH_REMOVE_DEVICE, /* the provider says the token is invalid: done, device removed */
	PG_PUSH_RETRY,         /* throttled, server error, network, timeout: try again later */
	PG_PUSH_FAILED,        /* refused for good (bad request, credentials): done */
};

struct pg_push_result {
	uint64_t id;
	enum pg_push_platform platform;
	char uid[PG_IDENT_MAX + 1];
	char device[PG_IDENT_MAX + 1];
	char token[PG_PUSH_TOKEN_MAX + 1]; /* removal applies only if the device still has it */
	enum pg_push_outcome outcome;
	int64_t retry_after_ms; /* RETRY: the provider's Retry-After, else -1 */
	long http_status;       /* 0 if no answer */
	int64_t latency_ms;     /* request sent to answer (or failure) */
	/* Counter leaf for FAILED / RETRY / REMOVE_DEVICE, [a-z0-9_]: "unregistered",
	 * "http_429", "http_5xx", "network", "timeout", "bad_request", "auth", ... */
	char reason[32];
	char detail[256]; /* for the log: the provider's words */
};

#endif
