/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Offline push (docs/push.md, DESIGN §7): the device registry, the trigger
 * that turns a stored message into pushes for the recipient's devices that
 * are not connected, per-device coalescing, and the durable outbox that the
 * provider workers (worker.h) drain.
 *
 *   stored message --pg_push_stored--> open window per device (outbox row)
 *   tick: window closed -> job (badge read now) -> provider's worker
 *   tick: results -> done (row deleted) | retry (row kept, due later)
 *
 * Durability: a device's registration is committed before the reply; a
 * push's outbox row is committed when its window opens, so a crash or a
 * restart loses no push: rows left at start are due at once. A push is
 * done (its row deleted) when the provider accepted it, the device was
 * removed, or max_attempts ran out. A push the provider accepted in the
 * last tick before a crash may be sent again (at least once, never lost).
 *
 * Threads: every function here is for the broker thread; the workers are
 * internal. Nothing here waits on the network. SQLite writes (WAL) are
 * small and happen on this thread; results are applied in one transaction
 * per tick.
 */
#ifndef PIGEON_PUSH_H
#define PIGEON_PUSH_H

#include "export.h"
#include "result.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "histogram.h"
#include "job.h"
#include "link.h"
#include "push_config.h"

struct pg_push;

/* What the core asks of the broker around it (the plugin fills it in). */
struct pg_push_env {
	void *ud;
	/* Is uid's device connected now (an open MQTT connection)? */
	bool (*connected)(void *ud, const char *uid, const char *device);
	/* The device's unread count now; -1 if unknown (the badge is then 0). */
	int (*unread)(void *ud, const char *uid, const char *device, int64_t now_ms,
	              uint64_t *unread);
};

/*
 * Opens (creating) the database at cfg->db_path, loads the devices and
 * the outbox, creates every enabled provider (a configuration error, such
 * as an unreadable key, fails the open) and starts their workers. cfg and
 * env are copied (strings too). PG_OK, or a pg_result with err set.
 */
PG_EXPORT int pg_push_open(const struct pg_push_config *cfg, const struct pg_push_env *env,
                           int64_t now_ms, struct pg_push **out, char *err, size_t errlen);

/*
 * Stops the workers (letting in-flight requests finish for a moment),
 * applies their last results, closes the database. NULL is a no-op.
 */
PG_EXPORT void pg_push_close(struct pg_push *p);

/* Is the platform's provider configured on this broker? */
PG_EXPORT bool pg_push_enabled(const struct pg_push *p, enum pg_push_platform platform);

/*
 * RegisterDevice for (uid, device): replaces the device's registration;
 * a (platform, token) registered elsewhere moves here. Returns a Reply
 * code: 0, 400 (unknown platform, empty or over-long token or app), 501
 * (platform not configured), 500 (the database failed: nothing changed),
 * with the reason in why.
 */
PG_EXPORT int pg_push_register(struct pg_push *p, const char *uid, const char *device,
                               const char *platform, const char *token, const char *app,
                               bool sandbox, int64_t now_ms, char *why, size_t whylen);

/* UnregisterDevice: 0 (also when nothing was registered) or 500. */
PG_EXPORT int pg_push_unregister(struct pg_push *p, const char *uid, const char *device, char *why,
                                 size_t whylen);

/*
 * A CHAT or NOTIFY was stored for m->to: opens (or extends) a coalescing
 * window for each of the user's registered devices not connected now.
 */
PG_EXPORT void pg_push_stored(struct pg_push *p, const struct pg_link_stored *m);

/* Applies results, sends what is due. Call often (every broker tick). */
PG_EXPORT void pg_push_tick(struct pg_push *p, int64_t now_ms);

/*
 * Calls fn for every counter, leaf names relative to the push folder:
 * "outbox", "devices", and for each configured provider "<provider>/sent",
 * "<provider>/retried", "<provider>/removed", "<provider>/failed" (the total
 * of its reasons), "<provider>/failed/<reason>", "<provider>/outbox",
 * "<provider>/latency_ms/p50" and ".../p99" (over the answers since the
 * previous call; 0 when none).
 */
PG_EXPORT void pg_push_counters(struct pg_push *p,
                                void (*fn)(const char *leaf, uint64_t value, void *ud), void *ud);

/*
 * Age in whole seconds at now_ms of the oldest push in the outbox (waiting
 * for its window, backing off or in flight), 0 when it is empty. A push
 * loaded at start counts from pg_push_open's now_ms. O(1).
 */
PG_EXPORT uint64_t pg_push_oldest_s(const struct pg_push *p, int64_t now_ms);

/*
 * The provider's answer times (the samples of latency_ms/p50 and p99, one
 * per result; pg_histogram_push_latency_seconds), or NULL if the platform is
 * not configured. Owned by p, valid until pg_push_close; broker thread.
 */
PG_EXPORT const struct pg_histogram *pg_push_latency_histogram(const struct pg_push *p,
                                                               enum pg_push_platform platform);

/*
 * The platform registered for (uid, device): true and *platform, or false
 * if the device has no registration. One hash lookup.
 */
PG_EXPORT bool pg_push_device_platform(struct pg_push *p, const char *uid, const char *device,
                                       enum pg_push_platform *platform);

#endif
