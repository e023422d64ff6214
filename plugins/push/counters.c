/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon_push's $SYS leaves (docs/push.md "Counters"), every
 * plugin_opt_sys_interval seconds on the broker thread: the core's counters
 * under push/, push/oldest_s, the providers' latency histograms, and the
 * connected devices and users by push platform.
 *
 * By platform: every session in the registry (sessions.h) is joined with
 * the device registry (pg_push_device_platform): a device counts under its
 * registered platform, or "none". A user counts once under each platform
 * that one of their connected devices has. O(sessions) per interval, with
 * one allocation (a set entry per session, for the users).
 */
#include "pigeon_push.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "sessions.h"
#include "sys_counter.h"

/* devices/online/<platform> slots: the push platforms, then "none". */
#define SLOT_NONE PG_PUSH_PLATFORM_COUNT
#define SLOTS (PG_PUSH_PLATFORM_COUNT + 1)

struct online_user {
	const char *uid; /* the session's (valid during the walk) */
	unsigned slots;  /* bit per slot with a connected device */
	UT_hash_handle hh;
};

struct online_walk {
	struct pg_push *push;
	struct online_user *users; /* uthash by uid, entries from pool */
	struct online_user *pool;
	size_t npool, cap;
	uint64_t devices[SLOTS];
};

static const char *slot_name(int slot)
{
	return slot == SLOT_NONE ? "none" : pg_push_platform_name((enum pg_push_platform)slot);
}

static void walk_session(const struct pg_session *s, void *ud)
{
	struct online_walk *w = ud;
	enum pg_push_platform platform;
	struct online_user *u;
	int slot = SLOT_NONE;

	if (pg_push_device_platform(w->push, s->uid, s->device, &platform)) {
		slot = (int)platform;
	}
	w->devices[slot]++;
	if (w->pool == NULL) {
		return;
	}
	HASH_FIND_STR(w->users, s->uid, u);
	if (u == NULL) {
		if (w->npool == w->cap) {
			return; /* cannot happen: one entry per session at most */
		}
		u = &w->pool[w->npool++];
		u->uid = s->uid;
		u->slots = 0;
		HASH_ADD_KEYPTR(hh, w->users, u->uid, strlen(u->uid), u);
	}
	u->slots |= 1u << slot;
}

static void publish_online(struct push_plugin *pp)
{
	struct online_walk w = {.push = pp->push};
	uint64_t users[SLOTS] = {0};
	char leaf[64];
	size_t i;
	int slot;

	w.cap = pg_sessions_count();
	w.pool = w.cap ? calloc(w.cap, sizeof(*w.pool)) : NULL;
	pg_sessions_foreach(NULL, walk_session, &w);
	for (i = 0; i < w.npool; i++) {
		for (slot = 0; slot < SLOTS; slot++) {
			users[slot] += (w.pool[i].slots >> slot) & 1u;
		}
	}
	HASH_CLEAR(hh, w.users);
	for (slot = 0; slot < SLOTS; slot++) {
		snprintf(leaf, sizeof(leaf), "devices/online/%s", slot_name(slot));
		pigeon_sys_publish(leaf, w.devices[slot]);
		/* Without memory for the set, the users' leaves wait for the next interval. */
		if (w.pool != NULL || w.cap == 0) {
			snprintf(leaf, sizeof(leaf), "users/online/%s", slot_name(slot));
			pigeon_sys_publish(leaf, users[slot]);
		}
	}
	free(w.pool);
}

static void publish_counter(const char *leaf, uint64_t value, void *ud)
{
	char topic[160];

	(void)ud;
	snprintf(topic, sizeof(topic), "push/%s", leaf);
	pigeon_sys_publish(topic, value);
}

void push_counters_publish(struct push_plugin *pp, int64_t now_ms)
{
	char leaf[96];
	int i;

	pg_push_counters(pp->push, publish_counter, NULL);
	pigeon_sys_publish("push/oldest_s", pg_push_oldest_s(pp->push, now_ms));
	for (i = 0; i < PG_PUSH_PLATFORM_COUNT; i++) {
		const struct pg_histogram *h =
		    pg_push_latency_histogram(pp->push, (enum pg_push_platform)i);

		if (h != NULL) {
			snprintf(leaf, sizeof(leaf), "histogram/push_latency_seconds/%s",
			         pg_push_platform_name((enum pg_push_platform)i));
			pigeon_sys_publish_histogram(leaf, h);
		}
	}
	publish_online(pp);
}
