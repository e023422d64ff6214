/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What one pigeon plugin offers another in the same broker process.
 *
 * Mosquitto gives plugins no way to talk to each other, and the events that
 * would tell pigeon_push about stored messages are not there to see: a
 * $CONTROL topic belongs to the one plugin that registered it (pigeon_inbox
 * owns $CONTROL/pigeon/v1, where RegisterDevice arrives), the inbox stores a
 * message inside its MESSAGE callback and delivers envelopes through
 * mosquitto_broker_publish, which raises no event at all. Every pigeon
 * plugin links the same libpigeon (one copy per process), so each plugin
 * registers here what it offers and looks up what the others offer:
 *
 *   pigeon_push  -> link_push:  "a message was stored", device registration
 *   pigeon_inbox -> link_inbox: a device's unread count (push badges)
 *
 * A side that is not loaded is simply absent (NULL): the inbox then answers
 * device registration with 501, and push badges are 0.
 *
 * Thread rule: broker thread only; the callbacks are called there too.
 * The structs are borrowed: the registrant keeps them alive until it
 * clears them (NULL), at its cleanup.
 */
#ifndef PIGEON_LINK_H
#define PIGEON_LINK_H

#include "export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A CHAT or NOTIFY the inbox has just stored (journaled: durable). */
struct pg_link_stored {
	const char *to;
	const char *from;
	int kind;         /* Pigeon__Kind: CHAT or NOTIFY */
	const char *type; /* NOTIFY's type, "" for CHAT */
	uint64_t seq;
	const char *push_title; /* NULL if the message carried none */
	const char *push_body;
	int64_t now_ms;        /* when it was accepted */
	int64_t expires_at_ms; /* when it expires from the inbox */
};

struct pg_link_push {
	void *ud;
	void (*stored)(void *ud, const struct pg_link_stored *m);
	/*
	 * RegisterDevice / UnregisterDevice for (uid, device). Return a Reply
	 * code (common/protocol.h) and, for an error, a reason in why.
	 */
	int (*register_device)(void *ud, const char *uid, const char *device, const char *platform,
	                       const char *token, const char *app, bool sandbox, char *why,
	                       size_t whylen);
	int (*unregister_device)(void *ud, const char *uid, const char *device, char *why,
	                         size_t whylen);
};

struct pg_link_inbox {
	void *ud;
	/* 0 and *unread (stored messages above the device's cursor), or -1. */
	int (*unread)(void *ud, const char *uid, const char *device, int64_t now_ms,
	              uint64_t *unread);
};

/* Registers (or, with NULL, clears) a side. The previous one is replaced. */
PG_EXPORT void pg_link_set_push(const struct pg_link_push *push);
PG_EXPORT void pg_link_set_inbox(const struct pg_link_inbox *inbox);

/* The registered side, or NULL. */
PG_EXPORT const struct pg_link_push *pg_link_push(void);
PG_EXPORT const struct pg_link_inbox *pg_link_inbox(void);

#endif
