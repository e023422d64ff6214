/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Requests on $CONTROL/pigeon/v1 (docs/protocol.md): every Request gets exactly one
 * Reply on im/<uid>/reply, published to the requesting client only,
 * malformed and unknown requests included. The callback always returns
 * success: in Mosquitto 2.0.11 an error from a CONTROL callback disconnects
 * the client, and a bad request must not.
 */
#include "pigeon_inbox.h"

#include <string.h>

#include "link.h"
#include "msglimits.h"
#include "topic.h"

static void reply_send(struct inbox_plugin *ip, const struct pg_session *s, Pigeon__Reply *r)
{
	char topic[PG_TOPIC_MAX];
	size_t len = pigeon__reply__get_packed_size(r);
	void *buf = mosquitto_malloc(len ? len : 1);

	if (buf == NULL) {
		return;
	}
	pigeon__reply__pack(r, buf);
	pg_topic_format(topic, sizeof(topic), s->uid, "reply");
	if (mosquitto_broker_publish(s->client_id, topic, (int)len, buf, 1, false, NULL) !=
	    MOSQ_ERR_SUCCESS) {
		mosquitto_free(buf);
	}
	ip->counters.requests++;
}

static void reply_error(Pigeon__Reply *r, uint32_t code, const char *why)
{
	r->code = code;
	r->error = (char *)why;
}

static void handle_sync(struct inbox_plugin *ip, const struct pg_session *s,
                        const Pigeon__SyncRequest *req, Pigeon__Reply *r, Pigeon__SyncReply **out)
{
	uint32_t limit = req->limit == 0 ? PG_SYNC_LIMIT_DEFAULT : req->limit;

	if (limit > PG_SYNC_LIMIT_MAX) {
		limit = PG_SYNC_LIMIT_MAX;
	}
	if (pg_store_sync(ip->store, s->uid, req->after_seq, limit, PG_SYNC_MAX_BYTES,
	                  inbox_now_ms(), out) != PG_OK) {
		reply_error(r, PG_REPLY_STORE_ERROR, "the store failed to read");
		return;
	}
	r->body_case = PIGEON__REPLY__BODY_SYNC;
	r->sync = *out;
	pg_histogram_observe(&ip->counters.sync_reply_bytes,
	                     pigeon__sync_reply__get_packed_size(*out));
}

static void handle_ack(struct inbox_plugin *ip, const struct pg_session *s, const Pigeon__Ack *req,
                       Pigeon__Reply *r)
{
	uint64_t cursor;

	switch (pg_store_ack(ip->store, s->uid, s->device, req->seq, &cursor)) {
	case PG_OK:
		break;
	case PG_ERR_INVALID:
		reply_error(r, PG_REPLY_BAD_REQUEST, "ack seq is beyond the user's head_seq");
		break;
	case PG_ERR_BUSY:
		reply_error(r, PG_REPLY_BUSY,
		            "the store is behind; the cursor did not move, retry later");
		break;
	default:
		reply_error(r, PG_REPLY_STORE_ERROR, "the store failed; the cursor did not move");
		break;
	}
}

static void handle_send(struct inbox_plugin *ip, const struct pg_session *s,
                        const Pigeon__Send *req, Pigeon__Reply *r, Pigeon__SendReply *sr)
{
	struct pg_store_msg msg;
	struct pg_store_accepted acc;
	struct pg_loglimit_note note;
	char summary[PG_CLIENT_ID_MAX + 96];
	const char *why = "";
	enum pg_reply_code code;

	if (pg_msg_from_send(req, s->uid, inbox_now_ms(), &msg, &why) != PG_OK) {
		reply_error(r, PG_REPLY_BAD_REQUEST, why);
		return;
	}
	code = inbox_send(ip, s, &msg, true, &acc, &why);
	if (code != PG_REPLY_OK) {
		reply_error(r, (uint32_t)code, why);
		/* Through the sender's log limiter (sessions.h); inbox_send counted it. */
		if (pg_sessions_log_allow(s->key, msg.now_ms, &note)) {
			if (note.held > 0) {
				mosquitto_log_printf(MOSQ_LOG_NOTICE, INBOX_LOG_PREFIX "%s",
				                     pg_loglimit_summary(&note, "refusals",
				                                         s->client_id, summary,
				                                         sizeof(summary)));
			}
			mosquitto_log_printf(MOSQ_LOG_NOTICE,
			                     INBOX_LOG_PREFIX "refused Send from %s: %s",
			                     s->client_id, why);
		}
		return;
	}
	sr->seq = acc.seq;
	sr->duplicate = acc.duplicate;
	r->body_case = PIGEON__REPLY__BODY_SEND;
	r->send = sr;
}

/*
 * RegisterDevice / UnregisterDevice belong to pigeon_push, which may not be
 * loaded; the request arrives here because $CONTROL/pigeon/v1 is the
 * inbox's topic (common/link.h).
 */
static void handle_device(struct inbox_plugin *ip, const struct pg_session *s,
                          const Pigeon__Request *req, Pigeon__Reply *r, char *why, size_t whylen)
{
	const struct pg_link_push *push = pg_link_push();
	int code;

	why[0] = '\0';
	if (push == NULL) {
		reply_error(r, PG_REPLY_NOT_AVAILABLE, "device registration needs pigeon_push");
		return;
	}
	if (req->body_case == PIGEON__REQUEST__BODY_REGISTER_DEVICE) {
		const Pigeon__RegisterDevice *d = req->register_device;

		code = push->register_device(push->ud, s->uid, s->device, d->platform, d->token,
		                             d->app, d->sandbox, why, whylen);
	} else {
		code = push->unregister_device(push->ud, s->uid, s->device, why, whylen);
	}
	if (code != PG_REPLY_OK) {
		if (code == PG_REPLY_BAD_REQUEST) {
			ip->counters.refused[REFUSED_BAD_REQUEST]++;
		}
		reply_error(r, (uint32_t)code, why);
	}
}

int inbox_control_cb(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_control *ed = event_data;
	struct inbox_plugin *ip = userdata;
	const struct pg_session *s = pg_sessions_find(ed->client);
	Pigeon__Reply r = PIGEON__REPLY__INIT;
	Pigeon__SendReply sr = PIGEON__SEND_REPLY__INIT;
	Pigeon__SyncReply *sync = NULL;
	Pigeon__Request *req;
	char why[256];

	if (s == NULL) {
		return MOSQ_ERR_SUCCESS; /* nobody to answer: not a pigeon session */
	}
	req = pigeon__request__unpack(NULL, ed->payloadlen, ed->payload);
	if (req == NULL) {
		ip->counters.refused[REFUSED_BAD_REQUEST]++;
		reply_error(&r, PG_REPLY_BAD_REQUEST, "payload is not a pigeon.Request protobuf");
		reply_send(ip, s, &r);
		return MOSQ_ERR_SUCCESS;
	}
	r.id = req->id;
	switch (req->body_case) {
	case PIGEON__REQUEST__BODY_SYNC:
		handle_sync(ip, s, req->sync, &r, &sync);
		break;
	case PIGEON__REQUEST__BODY_ACK:
		handle_ack(ip, s, req->ack, &r);
		break;
	case PIGEON__REQUEST__BODY_SEND:
		handle_send(ip, s, req->send, &r, &sr);
		break;
	case PIGEON__REQUEST__BODY_REGISTER_DEVICE:
	case PIGEON__REQUEST__BODY_UNREGISTER_DEVICE:
		handle_device(ip, s, req, &r, why, sizeof(why));
		break;
	default:
		ip->counters.refused[REFUSED_BAD_REQUEST]++;
		reply_error(&r, PG_REPLY_BAD_REQUEST, "unknown request type");
		break;
	}
	reply_send(ip, s, &r);
	pg_store_sync_free(sync);
	pigeon__request__free_unpacked(req, NULL);
	return MOSQ_ERR_SUCCESS;
}
