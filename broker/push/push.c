/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The push core (push.h): devices in memory and in push_db, one pending
 * entry per outbox row, one min-heap of waiting entries per provider, and
 * the provider workers. Broker thread only.
 *
 * An entry is either waiting (in its provider's heap, due at due_ms: a
 * coalescing window that closes, or a retry that comes due) or in flight
 * (submitted to the worker, found again by id when its result comes).
 * A device points at its waiting entry, if any: messages stored while it
 * waits fold into it (latest message's data, count + 1), so a device has at
 * most one push waiting, whatever the burst.
 *
 * Each provider has its own heap and a cap on what it has in flight, so a
 * provider that is down or slow piles up only its own entries; dispatching
 * the others goes on.
 *
 * Every entry, waiting or in flight, is also on one list by creation time
 * (oldest first: entries are only ever created "now"), so the age of the
 * oldest push in the outbox (pg_push_oldest_s) costs O(1). Entries loaded
 * at start count from the start: the outbox rows keep no creation time.
 */
#include "push.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uthash.h>

#include "ident.h"
#include "log.h"
#include "loglimit.h"
#include "provider.h"
#include "push_db.h"
#include "worker.h"

/* Jobs a provider may have queued or in flight at once (the rest wait). */
#define PUSH_INFLIGHT_MAX 4096
/* Results taken from the queue at a time (one transaction each). */
#define PUSH_RESULTS_BATCH 256
/*
 * Broker-thread time a tick may spend on push (results, then dispatch)
 * while there is a backlog: a quarter of the time since the previous tick,
 * within [PUSH_BUDGET_MIN_US, PUSH_BUDGET_MAX_US]; the rest waits for the
 * next tick. A busy broker ticks often and push takes small slices between
 * its deliveries, which bounds what push adds to their latency whatever
 * piles up (an outage's retries coming due at once); an idle broker ticks
 * every 100 ms and push may use a good part of that.
 */
#define PUSH_BUDGET_MIN_US 500
#define PUSH_BUDGET_MAX_US 25000
#define PUSH_LATENCY_SAMPLES 4096
#define PUSH_REASONS_MAX 24
/* A stop lets in-flight requests finish for this long. */
#define PUSH_STOP_GRACE_MS 2000
/* An id for a push the database could not take (kept in memory only). */
#define PUSH_MEMORY_ID_BASE (UINT64_C(1) << 62)

enum entry_state { ENTRY_WAITING, ENTRY_IN_FLIGHT };

struct push_entry {
	struct pg_push_job job; /* id, uid, device, platform and the message data */
	uint32_t attempts;      /* attempts made so far */
	int64_t due_ms;
	int64_t created_ms; /* its window opened (loaded at start: the start) */
	/* p->oldest..newest: every entry, by created_ms (push/oldest_s) */
	struct push_entry *older, *newer;
	enum entry_state state;
	bool dirty;        /* content changed since the row was written */
	bool persisted;    /* the row exists */
	size_t heap_at;    /* index in its provider's heap while waiting */
	UT_hash_handle hh; /* entries, by job.id */
};

struct push_device {
	char key[PG_IDENT_MAX * 2 + 2]; /* uid '/' device */
	char uid[PG_IDENT_MAX + 1];
	char device[PG_IDENT_MAX + 1];
	enum pg_push_platform platform;
	char *token;
	char *tkey; /* platform ':' token */
	char *app;
	bool sandbox;
	struct push_entry *waiting; /* its entry in a heap, or NULL */
	struct push_device *next;   /* the user's devices */
	UT_hash_handle hh;          /* devices, by key */
	UT_hash_handle hh_token;    /* by_token, by tkey */
};

struct push_user {
	char uid[PG_IDENT_MAX + 1];
	struct push_device *devices;
	UT_hash_handle hh;
};

struct push_reason {
	char name[32];
	uint64_t count;
};

struct push_provider {
	const struct pg_push_provider_ops *ops;
	void *state;
	struct pg_push_worker *worker;
	struct push_entry **heap;
	size_t heap_len, heap_cap;
	size_t in_flight;
	uint64_t outbox; /* waiting + in flight */
	uint64_t sent, retried, removed;
	struct push_reason reasons[PUSH_REASONS_MAX];
	size_t nreasons;
	int64_t latency[PUSH_LATENCY_SAMPLES];
	size_t nlatency;
	struct pg_histogram latency_hist; /* every answer since the start */
	struct pg_loglimit log;
};

struct pg_push {
	struct pg_push_config cfg; /* strings below are this struct's copies */
	char *strings[32];
	size_t nstrings;
	struct pg_push_env env;
	struct push_db *db;
	struct pg_push_results *results;
	struct push_provider providers[PG_PUSH_PLATFORM_COUNT];
	struct push_user *users;
	struct push_device *devices;  /* by key */
	struct push_device *by_token; /* by tkey */
	size_t ndevices;
	struct push_entry *entries; /* by id */
	struct push_entry *oldest, *newest;
	int64_t opened_ms; /* pg_push_open's now_ms: created_ms of the entries it loads */
	uint64_t memory_ids;
	uint64_t rand_state;
	struct pg_push_result *batch; /* PUSH_RESULTS_BATCH results */
	int next_provider;            /* dispatch starts here, in turn */
	int64_t last_tick_us;         /* monotonic */
};

/* ---- small helpers ------------------------------------------------------ */

static uint64_t push_rand(struct pg_push *p)
{
	/* xorshift64*: jitter only, not secrets */
	uint64_t x = p->rand_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	p->rand_state = x;
	return x * UINT64_C(2685821657736338717);
}

static void device_key(char *buf, size_t size, const char *uid, const char *device)
{
	snprintf(buf, size, "%s/%s", uid, device);
}

static const char *keep_string(struct pg_push *p, const char *s)
{
	char *copy;

	if (s == NULL || p->nstrings == sizeof(p->strings) / sizeof(p->strings[0])) {
		return NULL;
	}
	copy = strdup(s);
	if (copy != NULL) {
		p->strings[p->nstrings++] = copy;
	}
	return copy;
}

static void copy_config(struct pg_push *p, const struct pg_push_config *cfg)
{
	const char **fields[] = {
	    &p->cfg.db_path,
	    &p->cfg.default_title,
	    &p->cfg.default_body,
	    &p->cfg.ca_file,
	    &p->cfg.apns_key_file,
	    &p->cfg.apns_key_id,
	    &p->cfg.apns_team_id,
	    &p->cfg.apns_topic,
	    &p->cfg.apns_url,
	    &p->cfg.apns_sandbox_url,
	    &p->cfg.fcm_service_account_file,
	    &p->cfg.fcm_url,
	    &p->cfg.fcm_token_url,
	    &p->cfg.huawei_app_id,
	    &p->cfg.huawei_client_secret,
	    &p->cfg.huawei_url,
	    &p->cfg.huawei_token_url,
	    &p->cfg.xiaomi_app_secret,
	    &p->cfg.xiaomi_url,
	    &p->cfg.webhook_url,
	    &p->cfg.webhook_secret,
	};
	size_t i;

	p->cfg = *cfg;
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		*fields[i] = keep_string(p, *fields[i]);
	}
	if (p->cfg.coalesce_ms > 24 * 3600 * 1000ULL) {
		p->cfg.coalesce_ms = 24 * 3600 * 1000ULL;
	}
	if (p->cfg.max_attempts == 0) {
		p->cfg.max_attempts = 5;
	}
	if (p->cfg.retry_base_ms == 0) {
		p->cfg.retry_base_ms = 1000;
	}
	if (p->cfg.retry_max_ms < p->cfg.retry_base_ms) {
		p->cfg.retry_max_ms = p->cfg.retry_base_ms > 60000 ? p->cfg.retry_base_ms : 60000;
	}
	if (p->cfg.request_timeout_ms == 0) {
		p->cfg.request_timeout_ms = 10000;
	}
	if (p->cfg.connect_timeout_ms == 0) {
		p->cfg.connect_timeout_ms = 5000;
	}
}

/* ---- the per-provider heap of waiting entries, by due_ms ---------------- */

static void heap_swap(struct push_provider *pv, size_t a, size_t b)
{
	struct push_entry *t = pv->heap[a];

	pv->heap[a] = pv->heap[b];
	pv->heap[b] = t;
	pv->heap[a]->heap_at = a;
	pv->heap[b]->heap_at = b;
}

static void heap_up(struct push_provider *pv, size_t i)
{
	while (i > 0 && pv->heap[(i - 1) / 2]->due_ms > pv->heap[i]->due_ms) {
		heap_swap(pv, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void heap_down(struct push_provider *pv, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < pv->heap_len && pv->heap[l]->due_ms < pv->heap[m]->due_ms) {
			m = l;
		}
		if (r < pv->heap_len && pv->heap[r]->due_ms < pv->heap[m]->due_ms) {
			m = r;
		}
		if (m == i) {
			return;
		}
		heap_swap(pv, i, m);
		i = m;
	}
}

static int heap_push(struct push_provider *pv, struct push_entry *e)
{
	if (pv->heap_len == pv->heap_cap) {
		size_t cap = pv->heap_cap ? pv->heap_cap * 2 : 64;
		struct push_entry **h = realloc(pv->heap, cap * sizeof(*h));

		if (h == NULL) {
			return -1;
		}
		pv->heap = h;
		pv->heap_cap = cap;
	}
	e->heap_at = pv->heap_len;
	pv->heap[pv->heap_len++] = e;
	heap_up(pv, e->heap_at);
	return 0;
}

static struct push_entry *heap_pop(struct push_provider *pv)
{
	struct push_entry *top = pv->heap[0];

	pv->heap_len--;
	if (pv->heap_len > 0) {
		pv->heap[0] = pv->heap[pv->heap_len];
		pv->heap[0]->heap_at = 0;
		heap_down(pv, 0);
	}
	return top;
}

/* Takes e (waiting, at e->heap_at) out of pv's heap. */
static void heap_remove(struct push_provider *pv, struct push_entry *e)
{
	size_t i = e->heap_at;

	pv->heap_len--;
	if (i == pv->heap_len) {
		return;
	}
	pv->heap[i] = pv->heap[pv->heap_len];
	pv->heap[i]->heap_at = i;
	heap_up(pv, i);
	heap_down(pv, pv->heap[i]->heap_at);
}

/* ---- devices ------------------------------------------------------------ */

static struct push_device *device_find(struct pg_push *p, const char *uid, const char *device)
{
	char key[PG_IDENT_MAX * 2 + 2];
	struct push_device *d;

	device_key(key, sizeof(key), uid, device);
	HASH_FIND_STR(p->devices, key, d);
	return d;
}

static void device_free(struct push_device *d)
{
	free(d->token);
	free(d->tkey);
	free(d->app);
	free(d);
}

/* Takes d out of every index and frees it; its waiting entry is dropped at dispatch. */
static void device_forget(struct pg_push *p, struct push_device *d)
{
	struct push_user *u;
	struct push_device **pp;

	HASH_FIND_STR(p->users, d->uid, u);
	if (u != NULL) {
		for (pp = &u->devices; *pp; pp = &(*pp)->next) {
			if (*pp == d) {
				*pp = d->next;
				break;
			}
		}
		if (u->devices == NULL) {
			HASH_DEL(p->users, u);
			free(u);
		}
	}
	HASH_DEL(p->devices, d);
	HASH_DELETE(hh_token, p->by_token, d);
	p->ndevices--;
	device_free(d);
}

/*
 * Records the registration in memory (the database already has it):
 * updates (uid, device) in place, moving (platform, token) away from any
 * other device. Returns -1 if out of memory (memory then lacks the device
 * until a restart reloads it).
 */
static int device_remember(struct pg_push *p, const struct push_db_device *r)
{
	size_t tlen = strlen(r->token) + 16;
	char *tkey = malloc(tlen), *token = strdup(r->token), *app = strdup(r->app ? r->app : "");
	struct push_device *d, *other;
	struct push_user *u;

	if (tkey == NULL || token == NULL || app == NULL) {
		goto nomem;
	}
	snprintf(tkey, tlen, "%s:%s", pg_push_platform_name(r->platform), r->token);
	d = device_find(p, r->uid, r->device);
	HASH_FIND(hh_token, p->by_token, tkey, strlen(tkey), other);
	if (other != NULL && other != d) {
		device_forget(p, other);
	}
	if (d == NULL) {
		HASH_FIND_STR(p->users, r->uid, u);
		if (u == NULL) {
			u = calloc(1, sizeof(*u));
			if (u == NULL) {
				goto nomem;
			}
			snprintf(u->uid, sizeof(u->uid), "%s", r->uid);
			HASH_ADD_STR(p->users, uid, u);
		}
		d = calloc(1, sizeof(*d));
		if (d == NULL) {
			goto nomem;
		}
		device_key(d->key, sizeof(d->key), r->uid, r->device);
		snprintf(d->uid, sizeof(d->uid), "%s", r->uid);
		snprintf(d->device, sizeof(d->device), "%s", r->device);
		d->next = u->devices;
		u->devices = d;
		HASH_ADD_STR(p->devices, key, d);
		p->ndevices++;
	} else {
		HASH_DELETE(hh_token, p->by_token, d);
		free(d->token);
		free(d->tkey);
		free(d->app);
		if (d->platform != r->platform) {
			/* The waiting push is for the old provider (dispatch drops it):
			 * later messages open a window for the new one. */
			d->waiting = NULL;
		}
	}
	d->platform = r->platform;
	d->token = token;
	d->tkey = tkey;
	d->app = app;
	d->sandbox = r->sandbox;
	HASH_ADD_KEYPTR(hh_token, p->by_token, d->tkey, strlen(d->tkey), d);
	return 0;
nomem:
	free(tkey);
	free(token);
	free(app);
	return -1;
}

static void device_loaded(const struct push_db_device *d, void *ud)
{
	struct pg_push *p = ud;

	if (device_remember(p, d) != 0) {
		pg_log(PG_LOG_ERR, "pigeon_push: out of memory loading device %s:%s", d->uid,
		       d->device);
	}
}

int pg_push_register(struct pg_push *p, const char *uid, const char *device, const char *platform,
                     const char *token, const char *app, bool sandbox, int64_t now_ms, char *why,
                     size_t whylen)
{
	struct push_db_device r = {
	    .uid = uid, .device = device, .token = token, .app = app, .sandbox = sandbox};

	if (platform == NULL || pg_push_platform_parse(platform, &r.platform) != 0) {
		snprintf(why, whylen,
		         "unknown platform '%.32s' (apns, fcm, huawei, xiaomi, webhook)",
		         platform ? platform : "");
		return PG_REPLY_BAD_REQUEST;
	}
	if (token == NULL || token[0] == '\0') {
		snprintf(why, whylen, "the device token is empty");
		return PG_REPLY_BAD_REQUEST;
	}
	if (strlen(token) > PG_PUSH_TOKEN_MAX || strpbrk(token, "\r\n/?#%") != NULL) {
		snprintf(why, whylen,
		         "the device token is longer than %d bytes or has characters "
		         "a token never has",
		         PG_PUSH_TOKEN_MAX);
		return PG_REPLY_BAD_REQUEST;
	}
	if (app != NULL && (strlen(app) > PG_PUSH_APP_MAX || strpbrk(app, "\r\n") != NULL)) {
		snprintf(why, whylen, "app is longer than %d bytes or holds a line break",
		         PG_PUSH_APP_MAX);
		return PG_REPLY_BAD_REQUEST;
	}
	if (!pg_push_enabled(p, r.platform)) {
		snprintf(why, whylen, "push platform %s is not configured on this broker",
		         platform);
		return PG_REPLY_NOT_AVAILABLE;
	}
	if (push_db_device_put(p->db, &r, now_ms) != 0) {
		snprintf(why, whylen, "the push database failed; the device was not registered");
		return PG_REPLY_STORE_ERROR;
	}
	if (device_remember(p, &r) != 0) {
		snprintf(why, whylen, "out of memory (registered; active after a restart)");
		return PG_REPLY_STORE_ERROR;
	}
	return PG_REPLY_OK;
}

int pg_push_unregister(struct pg_push *p, const char *uid, const char *device, char *why,
                       size_t whylen)
{
	struct push_device *d;

	if (push_db_device_delete(p->db, uid, device, NULL) != 0) {
		snprintf(why, whylen, "the push database failed; the device is still registered");
		return PG_REPLY_STORE_ERROR;
	}
	d = device_find(p, uid, device);
	if (d != NULL) {
		device_forget(p, d);
	}
	return PG_REPLY_OK;
}

bool pg_push_enabled(const struct pg_push *p, enum pg_push_platform platform)
{
	return (unsigned)platform < PG_PUSH_PLATFORM_COUNT && p->providers[platform].worker != NULL;
}

/* ---- entries ------------------------------------------------------------ */

/* Appends e, the newest entry, to the age list. */
static void entry_link(struct pg_push *p, struct push_entry *e)
{
	e->older = p->newest;
	e->newer = NULL;
	if (p->newest != NULL) {
		p->newest->newer = e;
	} else {
		p->oldest = e;
	}
	p->newest = e;
}

static void entry_free(struct pg_push *p, struct push_entry *e)
{
	struct push_provider *pv = &p->providers[e->job.platform];

	if (e->older != NULL) {
		e->older->newer = e->newer;
	} else {
		p->oldest = e->newer;
	}
	if (e->newer != NULL) {
		e->newer->older = e->older;
	} else {
		p->newest = e->older;
	}
	HASH_DEL(p->entries, e);
	pv->outbox--;
	free(e);
}

/* Deletes the entry's row (inside the caller's transaction, if any) and frees it. */
static void entry_done(struct pg_push *p, struct push_entry *e)
{
	if (e->persisted) {
		push_db_outbox_delete(p->db, e->job.id);
	}
	entry_free(p, e);
}

static void job_set_text(struct pg_push *p, struct pg_push_job *job, const char *title,
                         const char *body)
{
	const char *t = title && title[0] ? title : p->cfg.default_title;
	const char *b = body && body[0] ? body : p->cfg.default_body;

	snprintf(job->title, sizeof(job->title), "%s", t ? t : "");
	snprintf(job->body, sizeof(job->body), "%s", b ? b : "");
}

static void job_set_message(struct pg_push *p, struct pg_push_job *job,
                            const struct pg_link_stored *m)
{
	job->seq = m->seq;
	snprintf(job->from, sizeof(job->from), "%s", m->from ? m->from : "");
	job->kind = m->kind == PG_PUSH_KIND_NOTIFY ? PG_PUSH_KIND_NOTIFY : PG_PUSH_KIND_CHAT;
	snprintf(job->type, sizeof(job->type), "%s",
	         job->kind == PG_PUSH_KIND_NOTIFY && m->type ? m->type : "");
	job->expires_at_ms = m->expires_at_ms;
	job_set_text(p, job, m->push_title, m->push_body);
}

static void entry_add_loaded(const struct pg_push_job *job, uint32_t attempts, int64_t due_ms,
                             void *ud)
{
	struct pg_push *p = ud;
	struct push_provider *pv = &p->providers[job->platform];
	struct push_entry *e = calloc(1, sizeof(*e));
	struct push_device *d;

	(void)due_ms; /* a restart sends what was pending at once */
	if (e == NULL) {
		return; /* the row stays; the next restart tries again */
	}
	e->job = *job;
	e->attempts = attempts;
	e->due_ms = 0;
	e->persisted = true;
	if (heap_push(pv, e) != 0) {
		free(e);
		return;
	}
	HASH_ADD(hh, p->entries, job.id, sizeof(e->job.id), e);
	e->created_ms = p->opened_ms;
	entry_link(p, e);
	pv->outbox++;
	d = device_find(p, job->uid, job->device);
	if (d != NULL && d->waiting == NULL && d->platform == job->platform) {
		d->waiting = e;
	}
}

/* A message for d: folds it into d's waiting push or opens a window. */
static void device_push(struct pg_push *p, struct push_device *d, const struct pg_link_stored *m)
{
	struct push_provider *pv = &p->providers[d->platform];
	struct push_entry *e = d->waiting;

	if (e != NULL) {
		job_set_message(p, &e->job, m);
		e->job.count++;
		e->dirty = true;
		return;
	}
	e = calloc(1, sizeof(*e));
	if (e == NULL) {
		pg_log(PG_LOG_ERR, "pigeon_push: out of memory: no push for %s", d->key);
		return;
	}
	e->job.platform = d->platform;
	snprintf(e->job.uid, sizeof(e->job.uid), "%s", d->uid);
	snprintf(e->job.device, sizeof(e->job.device), "%s", d->device);
	job_set_message(p, &e->job, m);
	e->job.count = 1;
	e->due_ms = m->now_ms + (int64_t)p->cfg.coalesce_ms;
	if (push_db_outbox_insert(p->db, &e->job, 0, e->due_ms, &e->job.id) == 0) {
		e->persisted = true;
	} else {
		/* Sent all the same, but it would not survive a crash (logged by push_db). */
		e->job.id = PUSH_MEMORY_ID_BASE + ++p->memory_ids;
	}
	if (heap_push(pv, e) != 0) {
		if (e->persisted) {
			push_db_outbox_delete(p->db, e->job.id);
		}
		free(e);
		return;
	}
	HASH_ADD(hh, p->entries, job.id, sizeof(e->job.id), e);
	e->created_ms = m->now_ms;
	entry_link(p, e);
	pv->outbox++;
	d->waiting = e;
}

void pg_push_stored(struct pg_push *p, const struct pg_link_stored *m)
{
	struct push_user *u;
	struct push_device *d;

	if (m->kind != PG_PUSH_KIND_CHAT && m->kind != PG_PUSH_KIND_NOTIFY) {
		return;
	}
	HASH_FIND_STR(p->users, m->to, u);
	if (u == NULL) {
		return;
	}
	for (d = u->devices; d; d = d->next) {
		if (!pg_push_enabled(p, d->platform) ||
		    (p->env.connected && p->env.connected(p->env.ud, d->uid, d->device))) {
			continue;
		}
		device_push(p, d, m);
	}
}

/* ---- counters ----------------------------------------------------------- */

static void count_reason(struct push_provider *pv, const char *reason)
{
	size_t i;

	if (reason == NULL || reason[0] == '\0') {
		reason = "other";
	}
	for (i = 0; i < pv->nreasons; i++) {
		if (strcmp(pv->reasons[i].name, reason) == 0) {
			pv->reasons[i].count++;
			return;
		}
	}
	if (pv->nreasons == PUSH_REASONS_MAX) {
		reason = "other";
		for (i = 0; i < pv->nreasons; i++) {
			if (strcmp(pv->reasons[i].name, reason) == 0) {
				pv->reasons[i].count++;
				return;
			}
		}
		i = pv->nreasons - 1; /* the last slot becomes "other" */
	} else {
		i = pv->nreasons++;
	}
	snprintf(pv->reasons[i].name, sizeof(pv->reasons[i].name), "%s", reason);
	pv->reasons[i].count++;
}

static void note_latency(struct push_provider *pv, int64_t ms)
{
	if (ms < 0) {
		ms = 0;
	}
	if (pv->nlatency < PUSH_LATENCY_SAMPLES) {
		pv->latency[pv->nlatency++] = ms;
	}
	pg_histogram_observe(&pv->latency_hist, (uint64_t)ms * 1000);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

void pg_push_counters(struct pg_push *p, void (*fn)(const char *leaf, uint64_t value, void *ud),
                      void *ud)
{
	char leaf[96];
	uint64_t outbox = 0;
	int i;

	for (i = 0; i < PG_PUSH_PLATFORM_COUNT; i++) {
		struct push_provider *pv = &p->providers[i];
		const char *name = pg_push_platform_name((enum pg_push_platform)i);
		uint64_t p50 = 0, p99 = 0, failed = 0;
		size_t r;

		outbox += pv->outbox;
		if (pv->worker == NULL) {
			continue;
		}
		if (pv->nlatency > 0) {
			qsort(pv->latency, pv->nlatency, sizeof(pv->latency[0]), cmp_i64);
			p50 = (uint64_t)pv->latency[(pv->nlatency - 1) / 2];
			p99 = (uint64_t)pv->latency[(pv->nlatency * 99 + 99) / 100 - 1];
			pv->nlatency = 0;
		}
#define LEAF(fmt, ...) (snprintf(leaf, sizeof(leaf), fmt, __VA_ARGS__), leaf)
		fn(LEAF("%s/sent", name), pv->sent, ud);
		fn(LEAF("%s/retried", name), pv->retried, ud);
		fn(LEAF("%s/removed", name), pv->removed, ud);
		fn(LEAF("%s/outbox", name), pv->outbox, ud);
		for (r = 0; r < pv->nreasons; r++) {
			failed += pv->reasons[r].count;
		}
		fn(LEAF("%s/failed", name), failed, ud);
		fn(LEAF("%s/latency_ms/p50", name), p50, ud);
		fn(LEAF("%s/latency_ms/p99", name), p99, ud);
		for (r = 0; r < pv->nreasons; r++) {
			fn(LEAF("%s/failed/%s", name, pv->reasons[r].name), pv->reasons[r].count,
			   ud);
		}
#undef LEAF
	}
	fn("outbox", outbox, ud);
	fn("devices", p->ndevices, ud);
}

uint64_t pg_push_oldest_s(const struct pg_push *p, int64_t now_ms)
{
	int64_t age;

	if (p->oldest == NULL) {
		return 0;
	}
	age = now_ms - p->oldest->created_ms;
	return age > 0 ? (uint64_t)(age / 1000) : 0;
}

const struct pg_histogram *pg_push_latency_histogram(const struct pg_push *p,
                                                     enum pg_push_platform platform)
{
	return pg_push_enabled(p, platform) ? &p->providers[platform].latency_hist : NULL;
}

bool pg_push_device_platform(struct pg_push *p, const char *uid, const char *device,
                             enum pg_push_platform *platform)
{
	struct push_device *d = device_find(p, uid, device);

	if (d == NULL) {
		return false;
	}
	*platform = d->platform;
	return true;
}

/* ---- results ------------------------------------------------------------ */

static int64_t retry_delay_ms(struct pg_push *p, const struct pg_push_result *r, uint32_t attempts)
{
	uint64_t d = p->cfg.retry_base_ms;
	uint32_t i;

	if (r->retry_after_ms >= 0) {
		/* The provider's word, within reason: an hour at most. */
		return r->retry_after_ms < 3600 * 1000 ? r->retry_after_ms : 3600 * 1000;
	}
	for (i = 1; i < attempts && d < p->cfg.retry_max_ms; i++) {
		d *= 2;
	}
	if (d > p->cfg.retry_max_ms) {
		d = p->cfg.retry_max_ms;
	}
	/* Equal jitter: between half and all of the backoff, so that pushes
	 * that failed together (a provider outage) do not return together. */
	return (int64_t)(d / 2 + push_rand(p) % (d / 2 + 1));
}

static void log_outcome(struct pg_push *p, struct push_provider *pv, const struct pg_push_result *r,
                        const char *what, int64_t now_ms)
{
	struct pg_loglimit_note note;
	char summary[160];

	(void)p;
	if (!pg_loglimit_allow(&pv->log, now_ms, &note)) {
		return;
	}
	if (note.held > 0) {
		pg_log(PG_LOG_NOTICE, "pigeon_push: %s",
		       pg_loglimit_summary(&note, "push outcomes", pv->ops->name, summary,
		                           sizeof(summary)));
	}
	pg_log(PG_LOG_NOTICE, "pigeon_push: %s push to %s:%s %s (%s, HTTP %ld): %s", pv->ops->name,
	       r->uid, r->device, what, r->reason, r->http_status, r->detail);
}

static void remove_device(struct pg_push *p, const struct pg_push_result *r)
{
	struct push_device *d = device_find(p, r->uid, r->device);

	/* Only if it still has the token the provider refused: it may have
	 * registered a new one meanwhile. */
	if (push_db_device_delete(p->db, r->uid, r->device, r->token) != 0) {
		return;
	}
	if (d != NULL && d->platform == r->platform && strcmp(d->token, r->token) == 0) {
		device_forget(p, d);
	}
}

static void apply_result(struct pg_push *p, const struct pg_push_result *r, int64_t now_ms)
{
	struct push_entry *e;
	struct push_provider *pv;
	struct push_device *d;
	char what[64];

	HASH_FIND(hh, p->entries, &r->id, sizeof(r->id), e);
	if (e == NULL || e->state != ENTRY_IN_FLIGHT) {
		return;
	}
	pv = &p->providers[e->job.platform];
	pv->in_flight--;
	note_latency(pv, r->latency_ms);
	switch (r->outcome) {
	case PG_PUSH_DELIVERED:
		pv->sent++;
		entry_done(p, e);
		return;
	case PG_PUSH_REMOVE_DEVICE:
		pv->removed++;
		log_outcome(p, pv, r, "removed the device", now_ms);
		remove_device(p, r);
		entry_done(p, e);
		return;
	case PG_PUSH_FAILED:
		count_reason(pv, r->reason);
		log_outcome(p, pv, r, "failed", now_ms);
		entry_done(p, e);
		return;
	case PG_PUSH_RETRY:
		break;
	}
	e->attempts = e->job.attempt;
	if (e->attempts >= p->cfg.max_attempts) {
		count_reason(pv, r->reason);
		snprintf(what, sizeof(what), "gave up after %u attempts", e->attempts);
		log_outcome(p, pv, r, what, now_ms);
		entry_done(p, e);
		return;
	}
	pv->retried++;
	e->state = ENTRY_WAITING;
	e->due_ms = now_ms + retry_delay_ms(p, r, e->attempts);
	d = device_find(p, e->job.uid, e->job.device);
	if (d != NULL && d->platform == e->job.platform && d->waiting != NULL && d->waiting != e) {
		/*
		 * Messages came while e was in flight and opened a push of their
		 * own: that push joins e (which keeps its attempts and backoff),
		 * so the device still gets one push, with the latest message and
		 * the count of both.
		 */
		struct push_entry *w = d->waiting;
		uint32_t count = e->job.count + w->job.count;

		e->job.seq = w->job.seq;
		memcpy(e->job.from, w->job.from, sizeof(e->job.from));
		e->job.kind = w->job.kind;
		memcpy(e->job.type, w->job.type, sizeof(e->job.type));
		e->job.expires_at_ms = w->job.expires_at_ms;
		memcpy(e->job.title, w->job.title, sizeof(e->job.title));
		memcpy(e->job.body, w->job.body, sizeof(e->job.body));
		e->job.count = count;
		e->dirty = true;
		heap_remove(pv, w);
		d->waiting = NULL;
		entry_done(p, w);
	}
	if (e->persisted &&
	    push_db_outbox_update(p->db, e->job.id, &e->job, e->attempts, e->due_ms) == 0) {
		e->dirty = false;
	}
	if (heap_push(pv, e) != 0) {
		entry_done(p, e);
		return;
	}
	if (d != NULL && d->waiting == NULL && d->platform == e->job.platform) {
		d->waiting = e; /* later messages fold into the retry */
	}
}

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Applies results, a batch per transaction, until none is left or deadline_us. */
static void take_results(struct pg_push *p, int64_t now_ms, int64_t deadline_us)
{
	size_t n, i;
	bool tx;

	do {
		n = pg_push_results_take(p->results, p->batch, PUSH_RESULTS_BATCH);
		if (n == 0) {
			return;
		}
		tx = push_db_begin(p->db) == 0;
		for (i = 0; i < n; i++) {
			apply_result(p, &p->batch[i], now_ms);
		}
		if (tx) {
			push_db_commit(p->db);
		}
	} while (mono_us() < deadline_us);
}

/* ---- dispatch ----------------------------------------------------------- */

/* Sends pv's due entries, as far as its in-flight cap and deadline_us allow. */
static void dispatch(struct pg_push *p, struct push_provider *pv, int64_t now_ms,
                     int64_t deadline_us)
{
	struct push_entry *e;
	struct push_device *d;
	uint64_t unread;
	unsigned n = 0;

	while (pv->heap_len > 0 && pv->heap[0]->due_ms <= now_ms &&
	       pv->in_flight < PUSH_INFLIGHT_MAX) {
		if (++n % 16 == 0 && mono_us() >= deadline_us) {
			return;
		}
		e = heap_pop(pv);
		d = device_find(p, e->job.uid, e->job.device);
		if (d != NULL && d->waiting == e) {
			d->waiting = NULL;
		}
		if (d == NULL || d->platform != e->job.platform) {
			entry_done(p, e); /* unregistered or removed meanwhile */
			continue;
		}
		if (p->env.connected && p->env.connected(p->env.ud, d->uid, d->device)) {
			/* Back online before the push went out: it has the messages. */
			entry_done(p, e);
			continue;
		}
		snprintf(e->job.token, sizeof(e->job.token), "%s", d->token);
		snprintf(e->job.app, sizeof(e->job.app), "%s", d->app);
		e->job.sandbox = d->sandbox;
		unread = 0;
		if (p->env.unread == NULL ||
		    p->env.unread(p->env.ud, d->uid, d->device, now_ms, &unread) != 0) {
			unread = 0;
		}
		e->job.badge = unread;
		e->job.attempt = e->attempts + 1;
		if (e->dirty && e->persisted &&
		    push_db_outbox_update(p->db, e->job.id, &e->job, e->attempts, e->due_ms) == 0) {
			e->dirty = false;
		}
		if (pg_push_worker_submit(pv->worker, &e->job) != 0) {
			e->due_ms = now_ms + 1000;
			heap_push(pv, e); /* cannot fail: the slot was just freed */
			return;
		}
		e->state = ENTRY_IN_FLIGHT;
		pv->in_flight++;
	}
}

/* Whether dispatch would send anything now: a provider with a due entry and a free slot. */
static bool any_due(const struct pg_push *p, int64_t now_ms)
{
	int i;

	for (i = 0; i < PG_PUSH_PLATFORM_COUNT; i++) {
		const struct push_provider *pv = &p->providers[i];

		if (pv->worker != NULL && pv->heap_len > 0 && pv->heap[0]->due_ms <= now_ms &&
		    pv->in_flight < PUSH_INFLIGHT_MAX) {
			return true;
		}
	}
	return false;
}

void pg_push_tick(struct pg_push *p, int64_t now_ms)
{
	int64_t start = mono_us();
	int64_t budget = (start - p->last_tick_us) / 4;
	bool tx;
	int i;

	p->last_tick_us = start;
	budget = budget < PUSH_BUDGET_MIN_US   ? PUSH_BUDGET_MIN_US
	         : budget > PUSH_BUDGET_MAX_US ? PUSH_BUDGET_MAX_US
	                                       : budget;
	/* Results first, within half the budget: they free in-flight slots. */
	take_results(p, now_ms, start + budget / 2);
	/*
	 * Mosquitto ticks once per loop iteration, i.e. thousands of times a
	 * second under load: a transaction on every tick (an empty BEGIN/COMMIT
	 * still takes SQLite's WAL read lock with fcntl) cost the broker thread
	 * a fifth of its time and its tail latency. Only a due entry opens one.
	 */
	if (!any_due(p, now_ms)) {
		return;
	}
	tx = push_db_begin(p->db) == 0;
	/* Providers take turns at going first, so none starves the others of
	 * the budget. Rows of a provider no longer configured stay in place. */
	for (i = 0; i < PG_PUSH_PLATFORM_COUNT; i++) {
		struct push_provider *pv =
		    &p->providers[(p->next_provider + i) % PG_PUSH_PLATFORM_COUNT];

		if (pv->worker != NULL) {
			dispatch(p, pv, now_ms, start + budget);
		}
	}
	p->next_provider = (p->next_provider + 1) % PG_PUSH_PLATFORM_COUNT;
	if (tx) {
		push_db_commit(p->db);
	}
}

/* ---- open / close ------------------------------------------------------- */

static int start_providers(struct pg_push *p, char *err, size_t errlen)
{
	struct pg_push_worker_config wc = {
	    .transport = {.ca_file = p->cfg.ca_file,
	                  .request_timeout_ms = (long)p->cfg.request_timeout_ms,
	                  .connect_timeout_ms = (long)p->cfg.connect_timeout_ms},
	    .max_streams = 100,
	    .idle_max_s = 60,
	};
	char why[256];
	int i;

	for (i = 0; i < PG_PUSH_PLATFORM_COUNT; i++) {
		struct push_provider *pv = &p->providers[i];
		const struct pg_push_provider_ops *ops = pg_push_provider((enum pg_push_platform)i);

		pv->ops = ops;
		if (ops == NULL || !ops->enabled(&p->cfg)) {
			continue;
		}
		why[0] = '\0';
		pv->state = ops->create(&p->cfg, why, sizeof(why));
		if (pv->state == NULL) {
			snprintf(err, errlen, "%s: %s", ops->name, why);
			return -1;
		}
		pv->worker =
		    pg_push_worker_start(ops, pv->state, &wc, p->results, why, sizeof(why));
		if (pv->worker == NULL) {
			snprintf(err, errlen, "%s: cannot start its worker: %s", ops->name, why);
			return -1;
		}
	}
	return 0;
}

int pg_push_open(const struct pg_push_config *cfg, const struct pg_push_env *env, int64_t now_ms,
                 struct pg_push **out, char *err, size_t errlen)
{
	struct pg_push *p = calloc(1, sizeof(*p));
	char why[256];
	int i;

	*out = NULL;
	if (p == NULL) {
		snprintf(err, errlen, "out of memory");
		return PG_ERR_NOMEM;
	}
	copy_config(p, cfg);
	p->opened_ms = now_ms;
	for (i = 0; i < PG_PUSH_PLATFORM_COUNT; i++) {
		pg_histogram_init(&p->providers[i].latency_hist,
		                  &pg_histogram_push_latency_seconds);
	}
	if (env != NULL) {
		p->env = *env;
	}
	p->rand_state = (uint64_t)now_ms ^ (uint64_t)(uintptr_t)p ^ UINT64_C(0x9e3779b97f4a7c15);
	p->batch = calloc(PUSH_RESULTS_BATCH, sizeof(*p->batch));
	p->results = pg_push_results_new();
	if (p->batch == NULL || p->results == NULL) {
		snprintf(err, errlen, "out of memory");
		pg_push_close(p);
		return PG_ERR_NOMEM;
	}
	if (p->cfg.db_path == NULL || push_db_open(p->cfg.db_path, &p->db, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "database %s: %s", p->cfg.db_path ? p->cfg.db_path : "(none)",
		         p->cfg.db_path ? why : "no db_path");
		pg_push_close(p);
		return PG_ERR_IO;
	}
	if (start_providers(p, err, errlen) != 0) {
		pg_push_close(p);
		return PG_ERR_INVALID;
	}
	if (push_db_devices_load(p->db, device_loaded, p) != 0 ||
	    push_db_outbox_load(p->db, entry_add_loaded, p) != 0) {
		snprintf(err, errlen, "database %s: cannot read the devices or the outbox",
		         p->cfg.db_path);
		pg_push_close(p);
		return PG_ERR_IO;
	}
	*out = p;
	return PG_OK;
}

void pg_push_close(struct pg_push *p)
{
	struct push_user *u, *utmp;
	struct push_device *d, *dtmp;
	struct push_entry *e, *etmp;
	size_t i;

	if (p == NULL) {
		return;
	}
	/* All workers' graces run at once: a stop waits 2 s, not 2 s per provider. */
	for (i = 0; i < PG_PUSH_PLATFORM_COUNT; i++) {
		pg_push_worker_stop_begin(p->providers[i].worker, PUSH_STOP_GRACE_MS);
	}
	for (i = 0; i < PG_PUSH_PLATFORM_COUNT; i++) {
		pg_push_worker_stop(p->providers[i].worker, PUSH_STOP_GRACE_MS);
		p->providers[i].worker = NULL;
	}
	/* What finished during the grace is done: its rows go. The rest stay. */
	if (p->db != NULL && p->results != NULL && p->batch != NULL) {
		take_results(p, 0, INT64_MAX);
	}
	for (i = 0; i < PG_PUSH_PLATFORM_COUNT; i++) {
		if (p->providers[i].state != NULL) {
			p->providers[i].ops->destroy(p->providers[i].state);
		}
		free(p->providers[i].heap);
	}
	HASH_ITER(hh, p->entries, e, etmp)
	{
		HASH_DEL(p->entries, e);
		free(e);
	}
	HASH_ITER(hh, p->devices, d, dtmp)
	{
		HASH_DEL(p->devices, d);
		HASH_DELETE(hh_token, p->by_token, d);
		device_free(d);
	}
	HASH_ITER(hh, p->users, u, utmp)
	{
		HASH_DEL(p->users, u);
		free(u);
	}
	push_db_close(p->db);
	pg_push_results_free(p->results);
	free(p->batch);
	for (i = 0; i < p->nstrings; i++) {
		free(p->strings[i]);
	}
	free(p);
}
