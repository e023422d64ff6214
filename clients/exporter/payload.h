/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading $SYS payloads. Every parser takes the raw bytes (p, n: not
 * NUL-terminated, any content) and either fills its result and returns 0,
 * or returns -1 and leaves nothing half-written that matters: a payload
 * that is not exactly what the contract says (non-numeric, negative,
 * too long, overflowing, a malformed histogram) is refused whole.
 * Pure functions; any thread.
 */
#ifndef PIGEON_EXPORTER_PAYLOAD_H
#define PIGEON_EXPORTER_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

/* The longest payload looked at; longer ones are refused unread. */
#define EXP_PAYLOAD_MAX 4096u

/* A histogram has at most this many finite bounds. */
#define EXP_HIST_BUCKETS_MAX 32
#define EXP_HIST_LE_MAX 24

/*
 * A histogram as published (the contract's "Histogram payload"):
 * ascending finite bounds with cumulative counts, the +Inf count (the
 * total) and the sum. le[i] is the bound as written, validated.
 */
struct exp_hist {
	unsigned n;
	char le[EXP_HIST_BUCKETS_MAX][EXP_HIST_LE_MAX];
	uint64_t count[EXP_HIST_BUCKETS_MAX];
	uint64_t total;
	double sum;
};

/* A decimal unsigned integer, 1-20 digits, at most UINT64_MAX, nothing else. */
int exp_payload_uint(const char *p, size_t n, uint64_t *out);
/* Mosquitto's uptime: "<uint> seconds". */
int exp_payload_uptime(const char *p, size_t n, uint64_t *out);
/*
 * Mosquitto's version: "mosquitto version <v>", v 1 to outlen - 1
 * characters of [A-Za-z0-9.+~_-], into out.
 */
int exp_payload_version(const char *p, size_t n, char *out, size_t outlen);
/*
 * `<le>:<count> ... +Inf:<count> sum:<sum>`, single spaces: le decimal
 * numbers ([0-9]+ or [0-9]+.[0-9]+) strictly ascending, counts
 * non-decreasing up to the +Inf one, sum finite and not negative.
 */
int exp_payload_histogram(const char *p, size_t n, struct exp_hist *h);

#endif
