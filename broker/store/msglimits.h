/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What makes a send valid: the metadata limits (common/protocol.h,
 * docs/protocol.md), in one function shared by every send path so that a
 * publish and a Send request are judged alike, and the shape of a Send
 * request.
 */
#ifndef PIGEON_MSGLIMITS_H
#define PIGEON_MSGLIMITS_H

#include "export.h"

#include "store.h"

/*
 * NULL when msg's msg_id, content_type, push_title and push_body are within
 * their limits, else a sentence naming the field and its limit. A NULL
 * field is absent and always fine; an empty msg_id is checked by the caller
 * where the wire can tell it from an absent one (an MQTT user property).
 */
PG_EXPORT const char *pg_msg_metadata_error(const struct pg_store_msg *msg);

/*
 * Fills *msg from a Send request of sender `from` received at now_ms (msg
 * points into req: it lives as long as req does). Returns PG_OK, or
 * PG_ERR_INVALID with *why set when the recipient, kind or type is not
 * valid; the limits are pg_msg_metadata_error's, checked by the caller with
 * every other send.
 */
PG_EXPORT int pg_msg_from_send(const Pigeon__Send *req, const char *from, int64_t now_ms,
                               struct pg_store_msg *msg, const char **why);

#endif
