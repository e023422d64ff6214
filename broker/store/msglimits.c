/* SPDX-License-Identifier: Apache-2.0 */
/* Metadata limits of a send; see msglimits.h. */
#include "msglimits.h"

#include <string.h>

#include "protocol.h"

const char *pg_msg_metadata_error(const struct pg_store_msg *msg)
{
	if (msg->msg_id != NULL && strlen(msg->msg_id) > PG_MSG_ID_MAX) {
		return "msg-id is longer than 128 bytes";
	}
	if (msg->content_type != NULL && strlen(msg->content_type) > PG_CONTENT_TYPE_MAX) {
		return "content-type is longer than 255 bytes";
	}
	if (msg->push_title != NULL && strlen(msg->push_title) > PG_PUSH_TITLE_MAX) {
		return "push-title is longer than 256 bytes";
	}
	if (msg->push_body != NULL && strlen(msg->push_body) > PG_PUSH_BODY_MAX) {
		return "push-body is longer than 1024 bytes";
	}
	return NULL;
}
