/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sends (docs/protocol.md): a publish on im/<to>/chat, im/<to>/notify/<type> or
 * im/<to>/instant becomes an Envelope from the authenticated sender, stored
 * (CHAT, NOTIFY) with the recipient's next seq before this callback returns,
 * i.e. before Mosquitto sends the PUBACK.
 *
 * Routing keeps sequence order. The fast path rewrites the publish in place
 * to im/<to>/inbox, so Mosquitto routes it right after this callback. A Send
 * request cannot be rewritten (it is a $CONTROL publish) and goes through
 * mosquitto_broker_publish, whose queue Mosquitto drains at the start of the
 * next loop iteration; once that has happened in an iteration, later sends
 * of the same iteration take the queue too, so no envelope can overtake one
 * with a lower seq. INSTANT goes through the queue to each connected device
 * at QoS 0, so a device that is not connected never gets it later.
 */
#include "pigeon_inbox.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uthash.h>

#include "acl.h"
#include "broker_compat.h"
#include "link.h"
#include "msglimits.h"
#include "topic.h"

struct rate_user {
	struct pg_bucket bucket;
	UT_hash_handle hh;
	char uid[PG_IDENT_MAX + 1];
};

static const char *const refusal_names[REFUSED_COUNT] = {
    [REFUSED_BODY_TOO_LARGE] = "body_too_large", [REFUSED_RATE_LIMITED] = "rate_limited",
    [REFUSED_BAD_PROPERTY] = "bad_property",     [REFUSED_NOT_AUTHORIZED] = "not_authorized",
    [REFUSED_STORE_ERROR] = "store_error",       [REFUSED_BAD_REQUEST] = "bad_request",
    [REFUSED_STORE_BUSY] = "store_busy",
};

const char *inbox_refusal_name(enum inbox_refusal r)
{
	return refusal_names[r];
}

int64_t inbox_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool inbox_rate_ok(struct inbox_plugin *ip, const char *uid, int64_t now_ms)
{
	struct rate_user *r;

	if (ip->cfg.send_rate == 0) {
		return true;
	}
	HASH_FIND_STR(ip->rates, uid, r);
	if (r == NULL) {
		r = calloc(1, sizeof(*r));
		if (r == NULL) {
			return true;
		}
		strcpy(r->uid, uid);
		HASH_ADD_STR(ip->rates, uid, r);
	}
	return pg_bucket_take(&r->bucket, ip->cfg.send_rate, ip->cfg.send_burst, now_ms);
}

/* Frees every send bucket: at cleanup, so that the broker exits without leaks. */
void inbox_rates_prune(struct inbox_plugin *ip, int64_t now_ms)
{
	struct rate_user *r, *tmp;
	/* After burst/rate seconds idle a bucket is full again: same as a new one. */
	int64_t refill_ms = ip->cfg.send_rate ? 1000LL * ip->cfg.send_burst / ip->cfg.send_rate : 0;

	HASH_ITER(hh, ip->rates, r, tmp)
	{
		if (now_ms - r->bucket.last_ms > refill_ms) {
			HASH_DEL(ip->rates, r);
			free(r);
		}
	}
}

void inbox_rates_free(struct inbox_plugin *ip)
{
	struct rate_user *r, *tmp;

	HASH_ITER(hh, ip->rates, r, tmp)
	{
		HASH_DEL(ip->rates, r);
		free(r);
	}
}

struct instant_ctx {
	const char *topic;
	const uint8_t *env;
	size_t len;
	int sent;
};

static void instant_to_device(const struct pg_session *s, void *ud)
{
	struct instant_ctx *c = ud;
	void *copy = mosquitto_malloc(c->len ? c->len : 1);

	if (copy == NULL) {
		return;
	}
	memcpy(copy, c->env, c->len);
	if (mosquitto_broker_publish(s->client_id, c->topic, (int)c->len, copy, 0, false, NULL) ==
	    MOSQ_ERR_SUCCESS) {
		c->sent++;
	} else {
		mosquitto_free(copy);
	}
}

/* Tells pigeon_push (if loaded) that msg is stored with seq (common/link.h). */
static void inbox_stored_note(struct inbox_plugin *ip, const struct pg_store_msg *msg, uint64_t seq)
{
	const struct pg_link_push *push = pg_link_push();
	uint64_t ttl_s = msg->ttl_s && msg->ttl_s < ip->cfg.ttl_s ? msg->ttl_s : ip->cfg.ttl_s;
	struct pg_link_stored m = {
	    .to = msg->to,
	    .from = msg->from,
	    .kind = msg->kind,
	    .type = msg->type ? msg->type : "",
	    .seq = seq,
	    .push_title = msg->push_title,
	    .push_body = msg->push_body,
	    .now_ms = msg->now_ms,
	    .expires_at_ms = msg->now_ms + (int64_t)ttl_s * 1000,
	};

	if (push != NULL && push->stored != NULL) {
		push->stored(push->ud, &m);
	}
}

enum pg_reply_code inbox_send(struct inbox_plugin *ip, const struct pg_session *from,
                              const struct pg_store_msg *msg, bool via_queue,
                              struct pg_store_accepted *acc, const char **why)
{
	char topic[PG_TOPIC_MAX];
	int rc;

	memset(acc, 0, sizeof(*acc));
	if (msg->body_len > ip->cfg.max_body) {
		ip->counters.refused[REFUSED_BODY_TOO_LARGE]++;
		*why = "body larger than plugin_opt_max_body";
		return PG_REPLY_TOO_LARGE;
	}
	if ((*why = pg_msg_metadata_error(msg)) != NULL) {
		ip->counters.refused[REFUSED_BAD_PROPERTY]++;
		return PG_REPLY_BAD_REQUEST;
	}
	if (msg->kind == PIGEON__KIND__NOTIFY && from->role != PG_ROLE_SERVICE &&
	    !pg_acl_user_notify()) {
		ip->counters.refused[REFUSED_NOT_AUTHORIZED]++;
		*why = "users may not send notifications";
		return PG_REPLY_FORBIDDEN;
	}
	if (!inbox_rate_ok(ip, from->uid, msg->now_ms)) {
		ip->counters.refused[REFUSED_RATE_LIMITED]++;
		*why = "send rate limit reached";
		return PG_REPLY_RATE_LIMITED;
	}
	rc = pg_store_accept(ip->store, msg, mosquitto_malloc, mosquitto_free, acc);
	if (rc == PG_ERR_INVALID) {
		ip->counters.refused[REFUSED_BAD_REQUEST]++;
		*why = "invalid recipient, type or msg-id";
		return PG_REPLY_BAD_REQUEST;
	}
	if (rc == PG_ERR_BUSY) {
		ip->counters.refused[REFUSED_STORE_BUSY]++;
		*why = "the store is behind (database not taking writes); retry later";
		return PG_REPLY_BUSY;
	}
	if (rc != PG_OK) {
		ip->counters.refused[REFUSED_STORE_ERROR]++;
		*why = "the store failed; the message was not accepted";
		return PG_REPLY_STORE_ERROR;
	}
	if (acc->duplicate) {
		return PG_REPLY_OK;
	}
	if (msg->kind != PIGEON__KIND__INSTANT) {
		inbox_stored_note(ip, msg, acc->seq);
	}
	pg_topic_format(topic, sizeof(topic), msg->to, "inbox");
	if (msg->kind == PIGEON__KIND__INSTANT) {
		struct instant_ctx c = {
		    .topic = topic, .env = acc->envelope, .len = acc->envelope_len};
		pg_sessions_foreach(msg->to, instant_to_device, &c);
		ip->counters.instant++;
		ip->counters.routed += (uint64_t)c.sent;
		ip->routed_via_queue = ip->routed_via_queue || c.sent > 0;
		mosquitto_free(acc->envelope);
		acc->envelope = NULL;
		return PG_REPLY_OK;
	}
	if (via_queue) {
		if (mosquitto_broker_publish(NULL, topic, (int)acc->envelope_len, acc->envelope, 1,
		                             false, NULL) != MOSQ_ERR_SUCCESS) {
			mosquitto_free(acc->envelope);
		}
		acc->envelope = NULL;
		ip->routed_via_queue = true;
	}
	ip->counters.routed++;
	return PG_REPLY_OK;
}

/*
 * Reads the MQTT 5 user properties pigeon understands. 0, or -1 with *why.
 * The strings are libmosquitto's (broker_compat.h): the caller free()s them.
 */
static int inbox_read_props(const mosquitto_property *props, char **msg_id, char **ttl,
                            char **title, char **body, char **content_type, const char **why)
{
	const mosquitto_property *p;
	char *name = NULL, *value = NULL;
	bool skip = false;

	for (p = props; (p = pigeon_compat_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name,
	                                                    &value, skip)) != NULL;
	     skip = true) {
		char **dst = strcmp(name, "msg-id") == 0       ? msg_id
		             : strcmp(name, "ttl") == 0        ? ttl
		             : strcmp(name, "push-title") == 0 ? title
		             : strcmp(name, "push-body") == 0  ? body
		                                               : NULL;
		free(name);
		if (dst != NULL) {
			free(*dst);
			*dst = value;
		} else {
			free(value);
		}
		name = value = NULL;
	}
	pigeon_compat_read_string(props, MQTT_PROP_CONTENT_TYPE, content_type, false);
	if (*msg_id && (*msg_id)[0] == '\0') {
		*why = "msg-id must be 1-128 bytes";
		return -1;
	}
	return 0;
}

static int inbox_parse_ttl(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v;

	if (s == NULL) {
		*out = 0;
		return 0;
	}
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || v == 0 || v > 0xffffffffUL || s[0] == '-') {
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

/*
 * Logs a refused send through the sender's log limiter (sessions.h, shared
 * with pigeon_auth's refusals): a few lines, then one now and then saying
 * how many were held back, so a client cannot flood the log. The callers
 * count every refusal whether or not it is logged. Returns what the MESSAGE
 * callback answers.
 */
static int inbox_refuse(const struct pg_session *s, const char *topic, const char *why)
{
	static struct pg_loglimit no_session; /* senders pigeon_auth did not admit, together */
	struct pg_loglimit_note note;
	char summary[PG_CLIENT_ID_MAX + 96];
	const char *who = s ? s->client_id : "?";
	int64_t now = inbox_now_ms();
	bool allowed = s ? pg_sessions_log_allow(s->key, now, &note)
	                 : pg_loglimit_allow(&no_session, now, &note);

	if (!allowed) {
		return MOSQ_ERR_ACL_DENIED;
	}
	if (note.held > 0) {
		mosquitto_log_printf(
		    MOSQ_LOG_NOTICE, INBOX_LOG_PREFIX "%s",
		    pg_loglimit_summary(&note, "refusals", who, summary, sizeof(summary)));
	}
	mosquitto_log_printf(MOSQ_LOG_NOTICE, INBOX_LOG_PREFIX "refused send from %s to '%s': %s",
	                     who, topic, why);
	return MOSQ_ERR_ACL_DENIED;
}

int inbox_message_cb(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_message *ed = event_data;
	struct inbox_plugin *ip = userdata;
	const struct pg_session *s = pg_sessions_find(ed->client);
	char *msg_id = NULL, *ttl = NULL, *title = NULL, *pbody = NULL, *ctype = NULL;
	struct pg_store_msg msg = {0};
	struct pg_store_accepted acc;
	struct pg_topic t;
	const char *why = NULL;
	char inbox[PG_TOPIC_MAX];
	int rc = MOSQ_ERR_SUCCESS;

	pg_topic_parse(ed->topic, &t);
	if (!pg_topic_is_send(t.kind)) {
		return MOSQ_ERR_SUCCESS; /* the ACL lets nothing else through */
	}
	if (s == NULL) {
		return inbox_refuse(NULL, ed->topic, "sender not authenticated by pigeon_auth");
	}
	if (inbox_read_props(ed->properties, &msg_id, &ttl, &title, &pbody, &ctype, &why) != 0 ||
	    inbox_parse_ttl(ttl, &msg.ttl_s) != 0) {
		ip->counters.refused[REFUSED_BAD_PROPERTY]++;
		rc = inbox_refuse(s, ed->topic,
		                  why ? why : "ttl must be a positive number of seconds");
		goto out;
	}
	msg.kind = t.kind == PG_TOPIC_SEND_CHAT     ? PIGEON__KIND__CHAT
	           : t.kind == PG_TOPIC_SEND_NOTIFY ? PIGEON__KIND__NOTIFY
	                                            : PIGEON__KIND__INSTANT;
	msg.from = s->uid;
	msg.to = t.uid;
	msg.type = t.type;
	msg.msg_id = msg_id;
	msg.content_type = ctype;
	msg.body = ed->payload;
	msg.body_len = ed->payloadlen;
	msg.push_title = title;
	msg.push_body = pbody;
	msg.now_ms = inbox_now_ms();

	/* A broker whose ownership rules are unknown gets every envelope through
	 * the queue, and the publish itself is left alone: the read ACL lets no
	 * one receive a send topic, so it reaches no one. */
	if (inbox_send(ip, s, &msg, ip->routed_via_queue || !pigeon_compat_can_rewrite(), &acc,
	               &why) != PG_REPLY_OK) {
		rc = inbox_refuse(s, ed->topic, why);
		goto out;
	}
	if (acc.envelope == NULL) {
		/* Duplicate, INSTANT or queued: this publish itself reaches no one. */
		if (pigeon_compat_can_rewrite() &&
		    pigeon_compat_set_topic(ed, PG_DISCARD_TOPIC) != 0) {
			rc = MOSQ_ERR_ACL_DENIED;
		}
		goto out;
	}
	pg_topic_format(inbox, sizeof(inbox), t.uid, "inbox");
	if (pigeon_compat_set_topic(ed, inbox) != 0) {
		mosquitto_free(acc.envelope);
		rc = inbox_refuse(s, ed->topic, "out of memory");
		goto out;
	}
	/* Mosquitto frees the payload it had; the envelope replaces it. */
	ed->payload = acc.envelope;
	ed->payloadlen = (uint32_t)acc.envelope_len;
	/* The sender's properties stay with the sender: the envelope carries what counts. */
	pigeon_compat_drop_properties(ed);
out:
	free(msg_id);
	free(ttl);
	free(title);
	free(pbody);
	free(ctype);
	return rc;
}
