/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reconnect delays and the randomness behind them and behind msg_ids
 * (backoff.h). Equal jitter: the delay is a uniform pick in [c/2, c] of the
 * ceiling c = min(min_ms * 2^attempt, max_ms), so clients that lost one
 * broker together spread over half the window instead of returning in one
 * wave, and none retries sooner than half the ceiling.
 *
 * Any thread (getrandom is thread-safe; the fallback counter is atomic).
 */
#include <stdatomic.h>
#include <errno.h>
#include <stddef.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"

uint32_t pgc_backoff_delay_ms(uint32_t attempt, uint32_t min_ms, uint32_t max_ms, uint32_t rnd)
{
	uint64_t ceiling, half;

	/* min_ms << attempt in 64 bits cannot overflow for attempt < 32, and is then compared
	 * with a 32-bit cap; 2^32 and up is always past it. */
	if (min_ms == 0)
		ceiling = 0;
	else if (attempt >= 32)
		ceiling = max_ms;
	else
		ceiling = (uint64_t)min_ms << attempt;
	if (ceiling > max_ms)
		ceiling = max_ms;
	half = ceiling / 2;
	return (uint32_t)(half + (uint64_t)rnd % (ceiling - half + 1));
}

/* splitmix64's finalizer: spreads a clock reading over all 64 bits. */
static uint64_t backoff_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Fills buf from getrandom, or (no getrandom: an old kernel, a seccomp filter) from the clock,
 * the pid and a counter: not secret, but different for every call and process. */
static void backoff_random(void *buf, size_t len)
{
	static atomic_uint_fast64_t counter;
	unsigned char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = getrandom(p + got, len - got, 0);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
	while (got < len) {
		struct timespec ts;
		uint64_t x;
		size_t i;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		x = backoff_mix((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec);
		x = backoff_mix(x ^ ((uint64_t)getpid() << 32) ^ atomic_fetch_add(&counter, 1));
		for (i = 0; i < 8 && got < len; i++, x >>= 8)
			p[got++] = (unsigned char)x;
	}
}

uint32_t pgc_random32(void)
{
	uint32_t v;

	backoff_random(&v, sizeof(v));
	return v;
}

void pgc_msg_id_new(char out[33])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	size_t i;

	backoff_random(b, sizeof(b));
	for (i = 0; i < sizeof(b); i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[32] = '\0';
}
