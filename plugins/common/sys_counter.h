/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon's $SYS counters: one retained text message per counter under
 * $SYS/broker/pigeon/, like Mosquitto's own $SYS tree. Broker thread only.
 */
#ifndef PIGEON_SYS_COUNTER_H
#define PIGEON_SYS_COUNTER_H

#include <stdint.h>

#include "histogram.h"

/* Publishes value as decimal text on $SYS/broker/pigeon/<leaf>, retained, QoS 0.
 * A counter that cannot be published (no memory) is skipped until next time. */
void pigeon_sys_publish(const char *leaf, uint64_t value);

/* The same with a text payload (borrowed; copied). */
void pigeon_sys_publish_text(const char *leaf, const char *text);

/* The same with h's payload (histogram.h, docs/protocol.md "Histogram payload"). */
void pigeon_sys_publish_histogram(const char *leaf, const struct pg_histogram *h);

#endif
