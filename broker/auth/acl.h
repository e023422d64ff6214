/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The access matrix (docs/auth.md "The ACL"), as one pure function of who is asking, what
 * access and which topic. Used by pigeon_auth's ACL callback; kept free of
 * Mosquitto types so the whole matrix is unit-tested here.
 *
 * users     read/subscribe: im/<self>/inbox, im/<self>/reply (filters
 *           im/<self>/#, im/<self>/+ and the two names);
 *           write: im/<any>/chat, im/<any>/instant, $CONTROL/pigeon/v1, and
 *           im/<any>/notify/<type> when user_notify is on.
 * services  the same, plus notify always, plus read/subscribe of
 *           im/<any>/presence (im/+/presence) and $SYS/...
 * nobody    writes inbox, reply or presence (the broker publishes those),
 *           publishes retained, or subscribes to a filter that could match a
 *           topic they may not read.
 */
#ifndef PIGEON_ACL_H
#define PIGEON_ACL_H

#include "export.h"

#include <stdbool.h>

#include "ident.h"

enum pg_access {
	PG_ACCESS_READ,        /* a message about to be delivered */
	PG_ACCESS_WRITE,       /* a publish from the client */
	PG_ACCESS_SUBSCRIBE,   /* a subscription filter */
	PG_ACCESS_UNSUBSCRIBE, /* always allowed */
};

struct pg_acl_subject {
	enum pg_role role;
	const char *uid;  /* the authenticated uid */
	bool user_notify; /* may role user send NOTIFY (plugin_opt_user_notify) */
};

/*
 * True if who may have access to topic (a topic name, or a filter for
 * SUBSCRIBE). On false, *reason (if not NULL) points at a static text.
 * A who->uid that is not a valid uid (ident.h) is refused everything but
 * UNSUBSCRIBE.
 */
PG_EXPORT bool pg_acl_allows(const struct pg_acl_subject *who, enum pg_access access,
                             const char *topic, bool retain, const char **reason);

/*
 * The process-wide "may users send NOTIFY" policy: pigeon_auth sets it from
 * plugin_opt_user_notify, and pigeon_inbox applies the same rule to Send
 * requests. Broker thread only.
 */
PG_EXPORT void pg_acl_set_user_notify(bool allowed);
PG_EXPORT bool pg_acl_user_notify(void);

#endif
