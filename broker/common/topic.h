/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Topic grammar (docs/protocol.md "Topics"). Every pigeon topic lives under "im/<uid>/":
 *
 *   im/<to>/chat            send a CHAT to <to>
 *   im/<to>/notify/<type>   send a NOTIFY of <type> to <to>
 *   im/<to>/instant         send an INSTANT to <to>
 *   im/<uid>/inbox          what <uid> receives (Envelope)
 *   im/<uid>/reply          replies to <uid>'s requests (Reply)
 *   im/<uid>/presence       retained presence of <uid> (Presence)
 *   $CONTROL/pigeon/v1      requests (Request)
 */
#ifndef PIGEON_TOPIC_H
#define PIGEON_TOPIC_H

#include "export.h"

#include <stddef.h>

#include "ident.h"

#define PG_CONTROL_TOPIC "$CONTROL/pigeon/v1"
/* "im/" uid "/notify/" type NUL fits in this. */
#define PG_TOPIC_MAX (3 + PG_IDENT_MAX + 8 + PG_IDENT_MAX + 1)

enum pg_topic_kind {
	PG_TOPIC_OTHER = 0, /* not a pigeon topic */
	PG_TOPIC_MALFORMED, /* under im/ but not in the grammar */
	PG_TOPIC_SEND_CHAT,
	PG_TOPIC_SEND_NOTIFY,
	PG_TOPIC_SEND_INSTANT,
	PG_TOPIC_INBOX,
	PG_TOPIC_REPLY,
	PG_TOPIC_PRESENCE,
	PG_TOPIC_CONTROL,
};

struct pg_topic {
	enum pg_topic_kind kind;
	char uid[PG_IDENT_MAX + 1];  /* <to> or <uid>; empty for OTHER/CONTROL */
	char type[PG_IDENT_MAX + 1]; /* notification type, SEND_NOTIFY only */
};

/* Classifies a concrete topic name (no wildcards). Never fails. */
PG_EXPORT void pg_topic_parse(const char *topic, struct pg_topic *out);

/* True for the three send kinds. */
PG_EXPORT int pg_topic_is_send(enum pg_topic_kind kind);

/*
 * Writes "im/<uid>/<leaf>" into buf. Returns 0, or -1 if it does not fit.
 * leaf is "inbox", "reply" or "presence".
 */
PG_EXPORT int pg_topic_format(char *buf, size_t cap, const char *uid, const char *leaf);

#endif
