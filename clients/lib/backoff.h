/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reconnect delays: exponential backoff with jitter, so a million phones
 * that lost one broker do not come back in one wave. Pure; the caller
 * passes the random number.
 */
#ifndef PIGEON_CLIENT_BACKOFF_H
#define PIGEON_CLIENT_BACKOFF_H

#include <stdint.h>

/*
 * The delay before reconnect attempt `attempt` (0 for the first after a
 * loss): the ceiling min_ms * 2^attempt, capped at max_ms, then a uniform
 * pick in [ceiling/2, ceiling] from rnd ("equal jitter": never sooner than
 * half, so retries stay spread but bounded).
 */
uint32_t pgc_backoff_delay_ms(uint32_t attempt, uint32_t min_ms, uint32_t max_ms, uint32_t rnd);

/* A random 32-bit number from the OS (getrandom); falls back to a clock mix. */
uint32_t pgc_random32(void);

/* A fresh msg_id: 32 lowercase hex characters of OS randomness (out >= 33 bytes). */
void pgc_msg_id_new(char out[33]);

#endif
