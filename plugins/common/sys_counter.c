/* SPDX-License-Identifier: Apache-2.0 */
/* $SYS/broker/pigeon/<leaf> counters; see sys_counter.h. */
#include "sys_counter.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>

void pigeon_sys_publish_text(const char *leaf, const char *text)
{
	char topic[160];
	size_t len = strlen(text);
	void *buf;

	snprintf(topic, sizeof(topic), "$SYS/broker/pigeon/%s", leaf);
	buf = mosquitto_malloc(len ? len : 1);
	if (buf == NULL) {
		return;
	}
	memcpy(buf, text, len);
	if (mosquitto_broker_publish(NULL, topic, (int)len, buf, 0, true, NULL) !=
	    MOSQ_ERR_SUCCESS) {
		mosquitto_free(buf);
	}
}

void pigeon_sys_publish(const char *leaf, uint64_t value)
{
	char text[32];

	snprintf(text, sizeof(text), "%" PRIu64, value);
	pigeon_sys_publish_text(leaf, text);
}

void pigeon_sys_publish_histogram(const char *leaf, const struct pg_histogram *h)
{
	char text[PG_HISTOGRAM_TEXT_MAX];

	if (h != NULL && pg_histogram_format(h, text, sizeof(text)) > 0) {
		pigeon_sys_publish_text(leaf, text);
	}
}
