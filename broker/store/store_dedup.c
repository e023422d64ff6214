/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Dedup: whether (from, to, msg_id) was accepted within the dedup window.
 * Three layers, cheapest first: the keys accepted but not yet applied (a
 * hash, dropped by store_pending_trim once applied), two Bloom filter
 * generations holding every key of the last one to two windows (a miss in
 * both means "new" without asking the backend), then the backend's dedup
 * table.
 *
 * Thread: the broker thread only. Ownership: st->dedup owns its entries,
 * st->bloom its filters; both are freed by store_dedup_free.
 */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

static size_t dedup_key(char *buf, size_t cap, const char *from, const char *to, const char *msg_id)
{
	size_t fl = strlen(from), tl = strlen(to), ml = strlen(msg_id);

	if (fl + 1 + tl + 1 + ml > cap) {
		return 0;
	}
	memcpy(buf, from, fl);
	buf[fl] = '\0';
	memcpy(buf + fl + 1, to, tl);
	buf[fl + 1 + tl] = '\0';
	memcpy(buf + fl + 1 + tl + 1, msg_id, ml);
	return fl + 1 + tl + 1 + ml;
}

/* Bloom filter sizing: 2^24 bits (2 MiB) a generation, 7 probes: under 1%
 * false positives up to ~1.7 million keys a window; beyond, more lookups. */
#define STORE_BLOOM_LOG2_BITS 24
#define STORE_BLOOM_PROBES 7

static void dedup_bloom_load(const char *sender, const char *recipient, const char *msg_id,
                             void *ud)
{
	struct pg_store *st = ud;
	char key[STORE_DEDUP_KEY_MAX];
	size_t klen = dedup_key(key, sizeof(key), sender, recipient, msg_id);

	if (klen) {
		pg_bloom_add(&st->bloom[st->bloom_cur], key, klen);
	}
}

int store_dedup_lookup(struct pg_store *st, const char *from, const char *to, const char *msg_id,
                       int64_t now_ms, uint64_t *seq, bool *found)
{
	char key[STORE_DEDUP_KEY_MAX];
	size_t klen = dedup_key(key, sizeof(key), from, to, msg_id);
	int64_t since = now_ms - (int64_t)st->cfg.dedup_window_s * 1000;
	struct store_dedup *d;

	HASH_FIND(hh, st->dedup, key, klen, d);
	if (d != NULL && d->created_ms >= since) {
		*seq = d->seq;
		*found = true;
		return 0;
	}
	if (!pg_bloom_maybe(&st->bloom[0], key, klen) &&
	    !pg_bloom_maybe(&st->bloom[1], key, klen)) {
		*found = false;
		return 0;
	}
	return st->reader->ops->dedup_find(st->reader, from, to, msg_id, since, seq, found);
}

void store_dedup_remember(struct pg_store *st, const char *from, const char *to, const char *msg_id,
                          uint64_t lsn, uint64_t seq, int64_t now_ms)
{
	char key[STORE_DEDUP_KEY_MAX];
	size_t klen = dedup_key(key, sizeof(key), from, to, msg_id);
	struct store_dedup *d = malloc(sizeof(*d) + klen);

	pg_bloom_add(&st->bloom[st->bloom_cur], key, klen);
	if (d == NULL) {
		return; /* only costs a backend lookup later */
	}
	d->lsn = lsn;
	d->seq = seq;
	d->created_ms = now_ms;
	d->keylen = klen;
	memcpy(d->key, key, klen);
	HASH_ADD_KEYPTR(hh, st->dedup, d->key, klen, d);
}

int store_dedup_open(struct pg_store *st, char *err, size_t errlen)
{
	if (pg_bloom_init(&st->bloom[0], STORE_BLOOM_LOG2_BITS, STORE_BLOOM_PROBES) != 0 ||
	    pg_bloom_init(&st->bloom[1], STORE_BLOOM_LOG2_BITS, STORE_BLOOM_PROBES) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	st->bloom_rotated_ms = store_now_ms();
	if (st->reader->ops->dedup_keys(
	        st->reader, st->bloom_rotated_ms - (int64_t)st->cfg.dedup_window_s * 1000,
	        dedup_bloom_load, st) != 0) {
		snprintf(err, errlen, "loading dedup keys: %s",
		         st->reader->ops->errmsg(st->reader));
		return -1;
	}
	return 0;
}

void store_dedup_rotate(struct pg_store *st, int64_t now_ms)
{
	/* A key stays in the filters one to two windows: at least its window. */
	if (now_ms - st->bloom_rotated_ms >= (int64_t)st->cfg.dedup_window_s * 1000) {
		st->bloom_cur ^= 1;
		pg_bloom_clear(&st->bloom[st->bloom_cur]);
		st->bloom_rotated_ms = now_ms;
	}
}

void store_dedup_free(struct pg_store *st)
{
	struct store_dedup *d, *dtmp;

	HASH_ITER(hh, st->dedup, d, dtmp)
	{
		HASH_DEL(st->dedup, d);
		free(d);
	}
	pg_bloom_free(&st->bloom[0]);
	pg_bloom_free(&st->bloom[1]);
}
