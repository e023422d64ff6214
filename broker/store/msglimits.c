/* SPDX-License-Identifier: Apache-2.0 */
/* Metadata limits of a send; see msglimits.h. */
#include "msglimits.h"

#include <string.h>

#include "ident.h"
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

int pg_msg_from_send(const Pigeon__Send *req, const char *from, int64_t now_ms,
                     struct pg_store_msg *msg, const char **why)
{
	memset(msg, 0, sizeof(*msg));
	if (!pg_ident_valid_str(req->to)) {
		*why = "to is not a valid uid";
		return PG_ERR_INVALID;
	}
	if (req->kind != PIGEON__KIND__CHAT && req->kind != PIGEON__KIND__NOTIFY &&
	    req->kind != PIGEON__KIND__INSTANT) {
		*why = "kind must be CHAT, NOTIFY or INSTANT";
		return PG_ERR_INVALID;
	}
	if (req->kind == PIGEON__KIND__NOTIFY && !pg_ident_valid_str(req->type)) {
		*why = "a NOTIFY needs a valid type";
		return PG_ERR_INVALID;
	}
	msg->kind = req->kind;
	msg->from = from;
	msg->to = req->to;
	msg->type = req->type;
	msg->msg_id = req->msg_id;
	msg->content_type = req->content_type;
	msg->body = req->body.data;
	msg->body_len = req->body.len;
	msg->ttl_s = req->ttl_s;
	msg->push_title = req->push_title;
	msg->push_body = req->push_body;
	msg->now_ms = now_ms;
	return PG_OK;
}
