/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libpigeon is built with -fvisibility=hidden: only what a public header
 * marks PG_EXPORT is in its dynamic symbol table, so nothing internal can
 * clash with another library in the broker's process. The plugins use it
 * for their mosquitto_plugin_* entry points, the only symbols they export.
 */
#ifndef PIGEON_EXPORT_H
#define PIGEON_EXPORT_H

#define PG_EXPORT __attribute__((visibility("default")))

#endif
