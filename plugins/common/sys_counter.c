/* SPDX-License-Identifier: Apache-2.0 */
/* $SYS/broker/pigeon/<leaf> counters; see sys_counter.h. */
#include "sys_counter.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>

void pigeon_sys_publish(const char *leaf, uint64_t value)
{
	char topic[128], text[32];
	void *buf;
	int len;

	snprintf(topic, sizeof(topic), "$SYS/broker/pigeon/%s", leaf);
	len = snprintf(text, sizeof(text), "%" PRIu64, value);
	buf = mosquitto_malloc((size_t)len);
	if (buf == NULL) {
		return;
	}
	memcpy(buf, text, (size_t)len);
	if (mosquitto_broker_publish(NULL, topic, len, buf, 0, true, NULL) != MOSQ_ERR_SUCCESS) {
		mosquitto_free(buf);
	}
}
