/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The plugins' end of libpigeon's log path (broker/common/log.h): a sink
 * that writes through mosquitto_log_printf, so lines of every pigeon thread
 * end up where Mosquitto's log_dest says. Broker thread only.
 */
#ifndef PIGEON_LOG_SINK_H
#define PIGEON_LOG_SINK_H

/* Installs this plugin's sink (at init; ud tells the plugins apart). 0 or -1. */
int pigeon_log_sink_install(void *ud);

/* Removes it (at cleanup), after writing what is queued. */
void pigeon_log_sink_remove(void *ud);

#endif
