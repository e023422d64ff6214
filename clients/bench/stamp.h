/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What pigeon-bench's timed modes share: the stamp a message body carries
 * (a 4-character marker naming the mode, then two 16-hex-digit numbers: a
 * message index and a time in ns, "PGOL<16 hex>:<16 hex>"), found again
 * inside whatever wraps the body (pigeon's Envelope, or nothing on plain
 * Mosquitto), and the parsing of numeric options. No state; any thread.
 */
#ifndef PIGEON_BENCH_STAMP_H
#define PIGEON_BENCH_STAMP_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_MARKER_LEN 4
#define BENCH_STAMP_LEN (BENCH_MARKER_LEN + 16 + 1 + 16)

/* Writes the BENCH_STAMP_LEN bytes of a stamp at dst (no terminating NUL). */
void bench_stamp_write(char *dst, const char *marker, uint64_t index, uint64_t ns);

/*
 * Finds marker's first stamp in buf[0..len); 0 with its numbers, or -1 if
 * there is none.
 */
int bench_stamp_find(const void *buf, size_t len, const char *marker, uint64_t *index,
                     uint64_t *ns);

/* A decimal option value in [min, max]; a usage error (exit status 2) otherwise. */
uint64_t bench_opt_uint(const char *name, const char *s, uint64_t min, uint64_t max);

#endif
