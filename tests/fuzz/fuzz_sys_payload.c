/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: what pigeon-exporter takes from the broker, a $SYS
 * topic and its payload (clients/exporter/: the leaf table's matcher, the
 * payload parsers, the state and the exposition renderer). Anything a
 * broker, or whatever sits where the broker should be, publishes must be
 * kept or ignored, never crash, leak or make the output malformed.
 *
 * Input: a topic (up to the first NUL; with the first byte 0x01 instead,
 * a leaf of the table's own shapes is picked by the second byte, so the
 * fuzzer reaches the parsers without guessing topics), then the payload.
 * Checks, beyond memory safety: the payload parsers accept only what they
 * say (a parsed integer prints back to the same digits, leading zeros
 * aside); the exposition
 * is NUL-free text of whole lines, and every sample line names a family
 * of the table.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_check.h"
#include "metrics.h"
#include "payload.h"
#include "render.h"
#include "state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const leaves[] = {
    "$SYS/broker/pigeon/messages/stored",
    "$SYS/broker/pigeon/refused/store_error",
    "$SYS/broker/pigeon/store/failing",
    "$SYS/broker/pigeon/push/oldest_s",
    "$SYS/broker/pigeon/push/apns/failed/http_5xx",
    "$SYS/broker/pigeon/devices/online/apns",
    "$SYS/broker/pigeon/histogram/store_apply_seconds",
    "$SYS/broker/pigeon/histogram/sync_reply_bytes",
    "$SYS/broker/pigeon/histogram/push_latency_seconds/fcm",
    "$SYS/broker/uptime",
    "$SYS/broker/version",
    "$SYS/broker/clients/connected",
};

/* Every sample line starts with a family name of the table (plus a histogram suffix). */
static void check_exposition(const struct exp_buf *b)
{
	const char *line = b->data, *nl;

	FUZZ_CHECK(b->data != NULL && strlen(b->data) == b->len);
	FUZZ_CHECK(b->len == 0 || b->data[b->len - 1] == '\n');
	for (; line && *line; line = nl + 1) {
		size_t i, n;
		bool known = false;

		nl = strchr(line, '\n');
		FUZZ_CHECK(nl != NULL);
		if (line[0] == '#') {
			continue;
		}
		n = strcspn(line, "{ ");
		for (i = 0; i < exp_metrics_count && !known; i++) {
			static const char *const suffixes[] = {"", "_bucket", "_sum", "_count"};
			size_t m = strlen(exp_metrics[i].name), k;

			for (k = 0; k < sizeof(suffixes) / sizeof(*suffixes) && !known; k++) {
				size_t sl = strlen(suffixes[k]);
				known = n == m + sl && memcmp(line, exp_metrics[i].name, m) == 0 &&
				        memcmp(line + m, suffixes[k], sl) == 0;
			}
		}
		FUZZ_CHECK(known);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct exp_state *st;
	static unsigned inputs;
	const struct exp_limits lim = {.stale_after_s = 1e9, .push_stuck_after_s = 300};
	char topic[256];
	const uint8_t *payload;
	size_t tlen, plen;
	struct exp_buf out = {0};
	struct exp_hist h;
	uint64_t u;
	char digits[24], version[64];

	/*
	 * Kept across inputs, as in the exporter, but only for 64 of them: a
	 * state grown to its 1,024 leaves renders slowly and the fuzzer would
	 * crawl.
	 */
	if (st != NULL && ++inputs % 64 == 0) {
		exp_state_free(st);
		st = NULL;
	}
	if (st == NULL) {
		st = exp_state_new(false);
		FUZZ_CHECK(st != NULL);
		exp_state_session_up(st);
	}
	if (size >= 2 && data[0] == 0x01) {
		snprintf(topic, sizeof(topic), "%s", leaves[data[1] % (sizeof(leaves) / sizeof(*leaves))]);
		payload = data + 2;
		plen = size - 2;
	} else {
		const uint8_t *nul = memchr(data, 0, size);
		tlen = nul ? (size_t)(nul - data) : size;
		payload = nul ? nul + 1 : data + size;
		plen = (size_t)(data + size - payload);
		if (tlen >= sizeof(topic)) {
			tlen = sizeof(topic) - 1; /* the topic is cut, its payload is not */
		}
		memcpy(topic, data, tlen);
		topic[tlen] = '\0';
	}

	if (exp_payload_uint((const char *)payload, plen, &u) == 0) {
		/* The same digits, leading zeros aside. */
		size_t z = 0;
		while (z + 1 < plen && payload[z] == '0') {
			z++;
		}
		snprintf(digits, sizeof(digits), "%" PRIu64, u);
		FUZZ_CHECK(strlen(digits) == plen - z && memcmp(digits, payload + z, plen - z) == 0);
	}
	(void)exp_payload_uptime((const char *)payload, plen, &u);
	(void)exp_payload_version((const char *)payload, plen, version, sizeof(version));
	if (exp_payload_histogram((const char *)payload, plen, &h) == 0) {
		FUZZ_CHECK(h.n <= EXP_HIST_BUCKETS_MAX);
		FUZZ_CHECK(h.n == 0 || h.count[h.n - 1] <= h.total);
		FUZZ_CHECK(h.sum >= 0);
	}

	(void)exp_state_update(st, topic, payload, plen);
	exp_state_render(st, exp_now(), &lim, &out);
	FUZZ_CHECK(!out.failed);
	check_exposition(&out);
	exp_buf_free(&out);
	return 0;
}
