/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reorder buffer (order.h): envelopes in, one stream in seq order out.
 *
 * Three pieces of state, with these invariants:
 *
 *   cursor   the highest seq handed over (as a message or inside a gap);
 *            everything at or below it is a duplicate from now on.
 *   held     the envelopes above the cursor, each seq once: a uthash table
 *            by seq (duplicate checks) plus a binary min-heap of the same
 *            entries (the lowest held seq in O(1), removal in O(log n)).
 *            Every held seq is > cursor.
 *   gaps     the seqs a sync proved will never come, as a sorted array of
 *            disjoint inclusive ranges, each with its reason, all above the
 *            cursor, adjacent ranges of one reason merged. A held envelope
 *            inside a range wins over it (it came after all): pop hands
 *            the envelope over and the gap resumes after it. The array
 *            stays tiny: consecutive sync pages settle adjacent ranges,
 *            which merge into one.
 *
 * Pop takes the held envelope at cursor+1 if there is one, else the gap
 * range starting at cursor+1, cut short before the lowest held seq. So
 * every seq comes out exactly once, in order, whatever the arrival order.
 * Costs: offer and pop O(log held), settle O(ranges).
 *
 * Seqs are uint64_t; cursor + 1 and last + 1 are never computed when they
 * would wrap (UINT64_MAX is a valid seq).
 *
 * One thread (the client thread); no locking. The buffer owns the held
 * envelopes until pop hands them to the caller.
 */
#include <stdlib.h>
#include <string.h>

/* A failed allocation inside HASH_ADD undoes the add and marks the entry, instead of exit(). */
#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(elt) ((elt)->oom = true)
#include <uthash.h>

#include "order.h"

struct order_held {
	uint64_t seq;
	Pigeon__Envelope *env;
	bool oom; /* set by uthash when HASH_ADD could not grow the table */
	UT_hash_handle hh;
};

struct order_gap {
	uint64_t first, last; /* inclusive, first <= last */
	enum pigeon_gap_reason why;
};

struct pgc_order {
	uint64_t cursor;
	uint64_t highest;
	struct order_held *by_seq; /* uthash head */
	struct order_held **heap;  /* min-heap on seq, n_held entries */
	size_t n_held, heap_cap;
	struct order_gap *gaps; /* sorted, disjoint, all above cursor */
	size_t n_gaps;
};

struct pgc_order *pgc_order_new(uint64_t cursor)
{
	struct pgc_order *o = calloc(1, sizeof(*o));

	if (o == NULL)
		return NULL;
	o->cursor = cursor;
	o->highest = cursor;
	return o;
}

void pgc_order_free(struct pgc_order *o)
{
	struct order_held *h, *tmp;

	if (o == NULL)
		return;
	HASH_ITER(hh, o->by_seq, h, tmp)
	{
		HASH_DEL(o->by_seq, h);
		pigeon__envelope__free_unpacked(h->env, NULL);
		free(h);
	}
	free(o->heap);
	free(o->gaps);
	free(o);
}

uint64_t pgc_order_cursor(const struct pgc_order *o)
{
	return o->cursor;
}

size_t pgc_order_held(const struct pgc_order *o)
{
	return o->n_held;
}

uint64_t pgc_order_highest(const struct pgc_order *o)
{
	return o->highest;
}

/* ---- the heap of held entries ---- */

static void order_heap_swap(struct order_held **a, struct order_held **b)
{
	struct order_held *t = *a;
	*a = *b;
	*b = t;
}

/* Adds h (room has been made). */
static void order_heap_push(struct pgc_order *o, struct order_held *h)
{
	size_t i = o->n_held++;

	o->heap[i] = h;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (o->heap[parent]->seq <= o->heap[i]->seq)
			break;
		order_heap_swap(&o->heap[parent], &o->heap[i]);
		i = parent;
	}
}

/* Removes and returns the lowest entry (n_held > 0). */
static struct order_held *order_heap_pop(struct pgc_order *o)
{
	struct order_held *top = o->heap[0];
	size_t i = 0, n = --o->n_held;

	o->heap[0] = o->heap[n];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && o->heap[l]->seq < o->heap[m]->seq)
			m = l;
		if (r < n && o->heap[r]->seq < o->heap[m]->seq)
			m = r;
		if (m == i)
			break;
		order_heap_swap(&o->heap[m], &o->heap[i]);
		i = m;
	}
	return top;
}

/* ---- gaps ---- */

/* Drops what the cursor has passed from the front of the gap list. */
static void order_gaps_trim(struct pgc_order *o)
{
	size_t drop = 0;

	while (drop < o->n_gaps && o->gaps[drop].last <= o->cursor)
		drop++;
	if (drop > 0) {
		memmove(o->gaps, o->gaps + drop, (o->n_gaps - drop) * sizeof(*o->gaps));
		o->n_gaps -= drop;
	}
	if (o->n_gaps > 0 && o->gaps[0].first <= o->cursor)
		o->gaps[0].first = o->cursor + 1; /* last > cursor, so no wrap */
}

/* Appends [first, last] to out (n entries), merging with the previous one when adjacent and of
 * the same reason. */
static void order_gaps_emit(struct order_gap *out, size_t *n, uint64_t first, uint64_t last,
                            enum pigeon_gap_reason why)
{
	if (*n > 0) {
		struct order_gap *prev = &out[*n - 1];
		if (prev->why == why && prev->last != UINT64_MAX && prev->last + 1 == first) {
			prev->last = last;
			return;
		}
	}
	out[*n] = (struct order_gap){first, last, why};
	(*n)++;
}

/*
 * Writes into out the union of the ranges in (n_in of them) and the new
 * range [a, b]: existing ranges keep their reason (the first proof
 * stands), the new one fills only what they do not cover. out has room for
 * 2 * n_in + 1.
 */
static size_t order_gaps_merge(const struct order_gap *in, size_t n_in, struct order_gap *out,
                               uint64_t a, uint64_t b, enum pigeon_gap_reason why)
{
	size_t n = 0, i;
	uint64_t cur = a; /* the lowest seq of [a, b] not yet covered; valid while !done */
	bool done = false;

	for (i = 0; i < n_in; i++) {
		const struct order_gap *g = &in[i];
		if (!done && cur < g->first) {
			uint64_t end =
			    b < g->first - 1 ? b : g->first - 1; /* g->first > cur >= 1 */
			order_gaps_emit(out, &n, cur, end, why);
			if (end == b)
				done = true;
			else
				cur = end + 1;
		}
		order_gaps_emit(out, &n, g->first, g->last, g->why);
		if (!done && g->last >= cur) {
			if (g->last >= b)
				done = true;
			else
				cur = g->last + 1; /* g->last < b, so no wrap */
		}
	}
	if (!done)
		order_gaps_emit(out, &n, cur, b, why);
	return n;
}

/* ---- the contract ---- */

/* Whether pop would hand something over now. */
static bool order_ready(const struct pgc_order *o)
{
	if (o->cursor == UINT64_MAX)
		return false;
	if (o->n_held > 0 && o->heap[0]->seq == o->cursor + 1)
		return true;
	return o->n_gaps > 0 && o->gaps[0].first == o->cursor + 1;
}

int pgc_order_offer(struct pgc_order *o, Pigeon__Envelope *env)
{
	struct order_held *h;
	uint64_t seq = env->seq;

	/* seq 0 (never a stored message) falls here too: 0 <= cursor. */
	if (seq <= o->cursor)
		goto duplicate;
	HASH_FIND(hh, o->by_seq, &seq, sizeof(seq), h);
	if (h != NULL)
		goto duplicate;

	if (o->n_held == o->heap_cap) {
		size_t cap = o->heap_cap ? 2 * o->heap_cap : 64;
		struct order_held **heap = realloc(o->heap, cap * sizeof(*heap));
		if (heap == NULL)
			goto nomem;
		o->heap = heap;
		o->heap_cap = cap;
	}
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		goto nomem;
	h->seq = seq;
	h->env = env;
	HASH_ADD(hh, o->by_seq, seq, sizeof(h->seq), h);
	if (h->oom) {
		free(h);
		goto nomem;
	}
	order_heap_push(o, h);
	if (seq > o->highest)
		o->highest = seq;
	return order_ready(o) ? PGC_OFFER_READY : PGC_OFFER_WAITING;

duplicate:
	pigeon__envelope__free_unpacked(env, NULL);
	return PGC_OFFER_DUPLICATE;
nomem:
	pigeon__envelope__free_unpacked(env, NULL);
	return -1;
}

int pgc_order_settle(struct pgc_order *o, uint64_t after_seq, uint64_t upto, uint64_t oldest_seq)
{
	struct order_gap *one = NULL, *two = NULL;
	size_t n_one, n_two;
	uint64_t lo;

	if (upto <= o->cursor || upto <= after_seq)
		return 0;
	lo = after_seq > o->cursor ? after_seq + 1 : o->cursor + 1; /* both < upto: no wrap */

	/* [lo, oldest_seq - 1] is retention, [max(lo, oldest_seq), upto] gone: merged in two
	 * passes into fresh arrays, both allocated first, so running out of memory changes
	 * nothing. */
	one = malloc((2 * o->n_gaps + 1) * sizeof(*one));
	two = malloc((4 * o->n_gaps + 3) * sizeof(*two));
	if (one == NULL || two == NULL) {
		free(one);
		free(two);
		return -1;
	}
	if (oldest_seq > lo)
		n_one = order_gaps_merge(o->gaps, o->n_gaps, one, lo,
		                         oldest_seq - 1 < upto ? oldest_seq - 1 : upto,
		                         PIGEON_GAP_RETENTION);
	else
		n_one = order_gaps_merge(o->gaps, o->n_gaps, one, lo, upto, PIGEON_GAP_GONE);
	if (oldest_seq > lo && oldest_seq <= upto) {
		n_two = order_gaps_merge(one, n_one, two, oldest_seq, upto, PIGEON_GAP_GONE);
		free(one);
	} else {
		free(two);
		two = one;
		n_two = n_one;
	}
	free(o->gaps);
	o->gaps = two;
	o->n_gaps = n_two;
	return 0;
}

bool pgc_order_pop(struct pgc_order *o, struct pgc_item *it)
{
	uint64_t next, end;

	if (o->cursor == UINT64_MAX)
		return false;
	next = o->cursor + 1;
	if (o->n_held > 0 && o->heap[0]->seq == next) {
		struct order_held *h = order_heap_pop(o);
		HASH_DEL(o->by_seq, h);
		*it = (struct pgc_item){.env = h->env, .first = next, .last = next, .why = 0};
		free(h);
		o->cursor = next;
		order_gaps_trim(o);
		return true;
	}
	if (o->n_gaps == 0 || o->gaps[0].first != next)
		return false;
	end = o->gaps[0].last;
	if (o->n_held > 0 && o->heap[0]->seq - 1 < end)
		end = o->heap[0]->seq - 1; /* the lowest held seq is > next here */
	*it = (struct pgc_item){.env = NULL, .first = next, .last = end, .why = o->gaps[0].why};
	o->cursor = end;
	if (end > o->highest)
		o->highest = end;
	order_gaps_trim(o);
	return true;
}
