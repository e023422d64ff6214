/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MOSQ_EVT_ACL_CHECK: every publish, subscription and delivery of a pigeon
 * client is judged by libpigeon's access matrix (broker/auth/acl.c) with the
 * identity recorded at login. This runs once per delivered message, so it is
 * a pointer hash lookup plus a topic parse. Refused publishes and
 * subscriptions are all counted, and logged through the client's log
 * limiter: a client repeating what it may not do gets a few lines, then a
 * line now and then with the number held back (loglimit.h).
 */
#include "pigeon_auth.h"

#include <string.h>

#include "acl.h"
#include "sessions.h"

int auth_acl_check_cb(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ed = event_data;
	struct auth_plugin *ap = userdata;
	const struct pg_session *s = pg_sessions_find(ed->client);
	struct pg_acl_subject who;
	enum pg_access access;
	const char *reason;
	char topic[128];

	if (s == NULL) {
		/* Not admitted by us (cannot happen while we are the auth plugin). */
		return MOSQ_ERR_ACL_DENIED;
	}
	switch (ed->access) {
	case MOSQ_ACL_READ:
		access = PG_ACCESS_READ;
		break;
	case MOSQ_ACL_WRITE:
		access = PG_ACCESS_WRITE;
		break;
	case MOSQ_ACL_SUBSCRIBE:
		access = PG_ACCESS_SUBSCRIBE;
		break;
	case MOSQ_ACL_UNSUBSCRIBE:
		access = PG_ACCESS_UNSUBSCRIBE;
		break;
	default:
		return MOSQ_ERR_ACL_DENIED;
	}
	who.role = s->role;
	who.uid = s->uid;
	who.user_notify = ap->cfg.user_notify;
	if (pg_acl_allows(&who, access, ed->topic, ed->retain, &reason)) {
		return MOSQ_ERR_SUCCESS;
	}
	/* Refused reads are Mosquitto asking per delivery, not the client doing anything. */
	if (access == PG_ACCESS_READ) {
		return MOSQ_ERR_ACL_DENIED;
	}
	if (access == PG_ACCESS_WRITE) {
		ap->counters.denied_publish++;
	} else {
		ap->counters.denied_subscribe++;
	}
	if (auth_log_refusal_allowed(ed->client, s->client_id)) {
		mosquitto_log_printf(MOSQ_LOG_NOTICE, AUTH_LOG_PREFIX "denied %s of '%s' to %s: %s",
		                     access == PG_ACCESS_WRITE ? "publish" : "subscribe",
		                     auth_printable(ed->topic, topic, sizeof(topic)), s->client_id,
		                     reason);
	}
	return MOSQ_ERR_ACL_DENIED;
}
