/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Presence (docs/protocol.md "Presence"): the retained im/<uid>/presence turns online when a
 * user's first device connects and offline only after the last one has been
 * gone for plugin_opt_presence_grace_ms, so a quick reconnect publishes
 * nothing. Connections come from libpigeon's session registry (pigeon_auth
 * records them; Mosquitto 2.0.11 has no CONNECT event). Who is shown online
 * is journaled, so after a crash the next start turns them offline.
 *
 * A user is shown online while the registry has a session of theirs, or
 * while they are in their grace: only the latter need an entry here, so a
 * connected user costs this plugin nothing (the registry already knows
 * them) and the entries are bounded by the disconnects of one grace period.
 */
#include "pigeon_inbox.h"

#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "topic.h"

/* A user whose last device left: offline at offline_at_ms unless one comes back. */
struct presence_user {
	int64_t offline_at_ms;
	/*
	 * On ip's leaving list, which holds every entry. Every user gets the
	 * same grace, so appending keeps the list in offline_at_ms order and the
	 * tick stops at the first one not due: O(due), not O(online users), on
	 * every Mosquitto loop iteration.
	 */
	struct presence_user *leave_prev, *leave_next;
	UT_hash_handle hh;
	char uid[]; /* NUL-terminated */
};

struct device_list {
	Pigeon__PresenceDevice items[16];
	Pigeon__PresenceDevice *ptrs[16];
	size_t n;
};

static void collect_device(const struct pg_session *s, void *ud)
{
	struct device_list *dl = ud;

	if (dl->n < 16) {
		pigeon__presence_device__init(&dl->items[dl->n]);
		dl->items[dl->n].device = (char *)s->device;
		dl->items[dl->n].since_ms = (uint64_t)s->since_ms;
		dl->ptrs[dl->n] = &dl->items[dl->n];
		dl->n++;
	}
}

static void presence_publish(struct inbox_plugin *ip, const char *uid, bool online)
{
	Pigeon__Presence p = PIGEON__PRESENCE__INIT;
	struct device_list dl = {.n = 0};
	char topic[PG_TOPIC_MAX];
	size_t len;
	void *buf;
	bool retain;

	if (online) {
		pg_sessions_foreach(uid, collect_device, &dl);
	}
	p.uid = (char *)uid;
	p.online = online;
	p.n_devices = dl.n;
	p.devices = dl.ptrs;
	p.changed_at_ms = (uint64_t)inbox_now_ms();
	len = pigeon__presence__get_packed_size(&p);
	buf = mosquitto_malloc(len ? len : 1);
	if (buf == NULL) {
		return;
	}
	pigeon__presence__pack(&p, buf);
	pg_topic_format(topic, sizeof(topic), uid, "presence");
	/*
	 * presence_offline clear: Mosquitto keeps a retained message (about
	 * 1.1 KB with its topic-tree nodes) for every user who ever connected,
	 * so a broker's memory grows with users ever seen. An empty retained
	 * publish deletes it (subscribers receive that empty payload too), then
	 * the offline Presence goes to the live subscribers only, unretained.
	 */
	retain = online || !ip->cfg.presence_clear_offline;
	if (!retain) {
		mosquitto_broker_publish(NULL, topic, 0, NULL, 1, true, NULL);
	}
	if (mosquitto_broker_publish(NULL, topic, (int)len, buf, 1, retain, NULL) !=
	    MOSQ_ERR_SUCCESS) {
		mosquitto_free(buf);
	}
	if (pg_store_set_presence(ip->store, uid, online) != PG_OK) {
		mosquitto_log_printf(MOSQ_LOG_WARNING,
		                     INBOX_LOG_PREFIX "could not journal presence of %s", uid);
	}
}

/* Takes p off the leaving list and out of the hash, and frees it. */
static void leaving_drop(struct inbox_plugin *ip, struct presence_user *p)
{
	if (p->leave_prev) {
		p->leave_prev->leave_next = p->leave_next;
	} else {
		ip->leaving_head = p->leave_next;
	}
	if (p->leave_next) {
		p->leave_next->leave_prev = p->leave_prev;
	} else {
		ip->leaving_tail = p->leave_prev;
	}
	HASH_DEL(ip->presence, p);
	free(p);
}

/* uid's last device left: starts the grace (offline now if out of memory). */
static void leaving_start(struct inbox_plugin *ip, const char *uid)
{
	size_t len = strlen(uid);
	struct presence_user *p = calloc(1, sizeof(*p) + len + 1);

	if (p == NULL) {
		presence_publish(ip, uid, false);
		return;
	}
	memcpy(p->uid, uid, len + 1);
	p->offline_at_ms = inbox_now_ms() + (int64_t)ip->cfg.presence_grace_ms;
	p->leave_prev = ip->leaving_tail;
	if (ip->leaving_tail) {
		ip->leaving_tail->leave_next = p;
	} else {
		ip->leaving_head = p;
	}
	ip->leaving_tail = p;
	HASH_ADD_STR(ip->presence, uid, p);
}

void inbox_presence_watch(enum pg_session_event ev, const struct pg_session *s, void *ud)
{
	struct inbox_plugin *ip = ud;
	struct presence_user *p;

	if (ev == PG_SESSION_ADDED) {
		/* ADDED is reported once the session counts. */
		if (pg_sessions_user_count(s->uid) > 1) {
			return; /* another device is connected: already online */
		}
		HASH_FIND_STR(ip->presence, s->uid, p);
		if (p != NULL) {
			leaving_drop(ip, p); /* back within the grace: no event */
			return;
		}
		presence_publish(ip, s->uid, true);
		return;
	}
	/* REMOVED is reported while the session still counts. */
	if (pg_sessions_user_count(s->uid) <= 1) {
		leaving_start(ip, s->uid);
	}
}

void inbox_presence_tick(struct inbox_plugin *ip, int64_t now_ms)
{
	struct presence_user *p;

	while ((p = ip->leaving_head) != NULL && now_ms >= p->offline_at_ms) {
		/* A device back within the grace dropped the entry; checked anyway. */
		if (pg_sessions_user_count(p->uid) == 0) {
			presence_publish(ip, p->uid, false);
		}
		leaving_drop(ip, p);
	}
}

/* Shown online: connected, or within the grace after the last device left. */
static bool presence_shown_online(struct inbox_plugin *ip, const char *uid)
{
	struct presence_user *p;

	if (pg_sessions_user_count(uid) > 0) {
		return true;
	}
	HASH_FIND_STR(ip->presence, uid, p);
	return p != NULL;
}

static void reset_one(const char *uid, void *ud)
{
	struct inbox_plugin *ip = ud;

	if (pg_ident_valid_str(uid) && !presence_shown_online(ip, uid)) {
		presence_publish(ip, uid, false);
	}
}

void inbox_presence_reset_stale(struct inbox_plugin *ip)
{
	/* pg_store_open replayed the journal into SQLite, so its online set is
	 * complete without waiting for the store thread (which a locked
	 * database could stall); users who connected since (or left again and
	 * are in their grace) are skipped. */
	pg_store_foreach_online(ip->store, reset_one, ip);
}

void inbox_presence_free(struct inbox_plugin *ip)
{
	struct presence_user *p, *tmp;

	HASH_ITER(hh, ip->presence, p, tmp)
	{
		HASH_DEL(ip->presence, p);
		free(p);
	}
	ip->leaving_head = ip->leaving_tail = NULL;
}

size_t inbox_presence_count(struct inbox_plugin *ip)
{
	/* Disjoint: a user's grace entry goes when a device of theirs connects. */
	return pg_sessions_user_total() + HASH_COUNT(ip->presence);
}
