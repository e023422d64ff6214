/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one place that knows how Mosquitto 2.0.x releases differ for a plugin.
 * Every pigeon plugin links broker_compat.c; nothing else in plugins/ may
 * depend on a broker version.
 *
 * Two differences matter (docs/mosquitto.md has the details):
 *
 * - Exported symbols. Upstream's src/linker.syms exports the plugin API only
 *   (mosquitto_broker.h, mosquitto_property_add_*, mosquitto_property_free_all).
 *   Debian's 2.0.11 build happens to export everything, 2.0.21 does not, so
 *   the property readers pigeon needs are taken from libmosquitto itself
 *   (dlopen + dlsym on its handle, never the broker's copy): their results
 *   are allocated by libmosquitto's malloc and freed here with free(), which
 *   keeps the broker's heap accounting ($SYS/broker/heap) untouched.
 *
 * - MOSQ_EVT_MESSAGE ownership. Up to 2.0.14 the broker frees a replaced
 *   payload only; from 2.0.15 it also frees a replaced topic and property
 *   list. pigeon_compat_set_topic / pigeon_compat_drop_properties do the
 *   right thing for the running broker. When the version cannot be told,
 *   pigeon_compat_can_rewrite() is false and callers must leave topic and
 *   properties alone (the inbox then routes through mosquitto_broker_publish).
 *
 * Threads: everything here runs on the broker thread. pigeon_compat_init is
 * idempotent and is called from each plugin's mosquitto_plugin_init.
 */
#ifndef PIGEON_BROKER_COMPAT_H
#define PIGEON_BROKER_COMPAT_H

#include <stdbool.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

/*
 * Detects the running broker's version (see broker_compat.c for how; the
 * environment variable PIGEON_MOSQUITTO_VERSION overrides it, "unknown"
 * forces the version-independent mode) and resolves the libmosquitto
 * property readers. Returns MOSQ_ERR_SUCCESS, or MOSQ_ERR_UNKNOWN with a
 * logged reason when libmosquitto cannot be loaded; the plugin must then
 * refuse to start.
 */
int pigeon_compat_init(const char *log_prefix);

/* The detected version as "2.0.21", or "unknown". */
const char *pigeon_compat_version(void);

/* True when the broker's ownership rules for a replaced topic and property
 * list are known, so that a MESSAGE callback may replace them. */
bool pigeon_compat_can_rewrite(void);

/*
 * Replaces ed->topic with a copy of topic, freeing the old one when this
 * broker would not. Only when pigeon_compat_can_rewrite(). Returns 0, or -1
 * (out of memory) with ed->topic unchanged.
 */
int pigeon_compat_set_topic(struct mosquitto_evt_message *ed, const char *topic);

/* Removes the publish's property list (the broker frees it or we do). Only
 * when pigeon_compat_can_rewrite(). */
void pigeon_compat_drop_properties(struct mosquitto_evt_message *ed);

/*
 * libmosquitto's mosquitto_property_read_string_pair and _read_string
 * (same arguments and results). Strings returned are the caller's, freed
 * with free(), not mosquitto_free().
 */
const mosquitto_property *pigeon_compat_read_string_pair(const mosquitto_property *props,
                                                         int identifier, char **name, char **value,
                                                         bool skip_first);
const mosquitto_property *pigeon_compat_read_string(const mosquitto_property *props, int identifier,
                                                    char **value, bool skip_first);

#endif
