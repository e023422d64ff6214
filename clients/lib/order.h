/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reorder buffer: turns envelopes arriving live and from sync, in any
 * order and any number of times, into one stream in seq order where each
 * seq appears exactly once, either as a message or inside a gap.
 *
 * `next` is the lowest seq not handed over yet (cursor + 1). An offered
 * envelope below `next`, or already held, is a duplicate; one above `next`
 * waits. A sync page proves which seqs will never come (sync returns every
 * stored message above after_seq, so a seq it skipped is gone): those
 * become gaps, tagged retention below the inbox's oldest_seq.
 *
 * One thread (the client thread); no locking.
 */
#ifndef PIGEON_CLIENT_ORDER_H
#define PIGEON_CLIENT_ORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pigeon.pb-c.h"
#include "pigeon_client.h"

struct pgc_order;

enum pgc_offer {
	PGC_OFFER_READY = 0,    /* held; pgc_order_pop now returns something */
	PGC_OFFER_WAITING = 1,  /* held, ahead of a gap: sync after pgc_order_cursor() */
	PGC_OFFER_DUPLICATE = 2 /* seq handed over or held already: dropped (and freed) */
};

/* What pgc_order_pop hands over: a message or a gap. */
struct pgc_item {
	Pigeon__Envelope
	    *env; /* the caller's (pigeon__envelope__free_unpacked), or NULL for a gap */
	uint64_t first, last; /* the seq (env) or the gap's range, inclusive */
	enum pigeon_gap_reason why;
};

/* A buffer whose cursor is `cursor` (the highest seq handed over). NULL without memory. */
struct pgc_order *pgc_order_new(uint64_t cursor);
void pgc_order_free(struct pgc_order *o);

/* The highest seq handed over (as a message or in a gap). */
uint64_t pgc_order_cursor(const struct pgc_order *o);
/* The number of envelopes held, waiting for a gap to close. */
size_t pgc_order_held(const struct pgc_order *o);
/* The highest seq held or handed over. */
uint64_t pgc_order_highest(const struct pgc_order *o);

/*
 * Offers one stored envelope (env->seq >= 1; seq 0 counts as a duplicate;
 * takes ownership of env in every case). -1 without memory (env freed).
 */
int pgc_order_offer(struct pgc_order *o, Pigeon__Envelope *env);

/*
 * A sync page after `after_seq` proved that every seq in (after_seq,
 * upto] not held or handed over will never come: upto is the last seq of
 * the page, or head_seq when `more` was false. Those become gaps; the ones
 * below oldest_seq have PGC reason RETENTION, the others GONE. Seqs at or
 * below the cursor are ignored; a seq already proven keeps its first
 * reason; a held envelope always wins over a gap (pop hands it over and
 * the gap resumes after it). -1 without memory (nothing changed).
 */
int pgc_order_settle(struct pgc_order *o, uint64_t after_seq, uint64_t upto, uint64_t oldest_seq);

/*
 * Takes the next item in order into *it (a message whose seq is cursor+1,
 * or a gap starting there, as long as the proven-missing run of one reason
 * goes, stopping before the lowest held seq) and moves the cursor past it:
 * true, or false when the next seq is not here yet.
 */
bool pgc_order_pop(struct pgc_order *o, struct pgc_item *it);

#endif
