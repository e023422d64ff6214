/* SPDX-License-Identifier: Apache-2.0 */
/* Token bucket arithmetic. */
#include "ratelimit.h"

bool pg_bucket_take(struct pg_bucket *b, double rate, double burst, int64_t now_ms)
{
	if (rate <= 0) {
		return true;
	}
	if (b->last_ms == 0) {
		b->tokens = burst;
	} else if (now_ms > b->last_ms) {
		b->tokens += (double)(now_ms - b->last_ms) * rate / 1000.0;
		if (b->tokens > burst) {
			b->tokens = burst;
		}
	}
	b->last_ms = now_ms;
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return true;
	}
	return false;
}
