/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metadata limits of a send (broker/protocol.h, docs/protocol.md), in
 * one function shared by every send path, so a publish and a Send request
 * are judged alike.
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

#endif
