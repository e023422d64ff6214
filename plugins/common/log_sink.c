/* SPDX-License-Identifier: Apache-2.0 */
/* libpigeon's log lines into Mosquitto's log; see log_sink.h. */
#include "log_sink.h"

#include <mosquitto.h>
#include <mosquitto_broker.h>

#include "log.h"

static void log_sink_write(enum pg_log_level level, const char *line, void *ud)
{
	static const int mosq_level[] = {
	    [PG_LOG_ERR] = MOSQ_LOG_ERR,       [PG_LOG_WARNING] = MOSQ_LOG_WARNING,
	    [PG_LOG_NOTICE] = MOSQ_LOG_NOTICE, [PG_LOG_INFO] = MOSQ_LOG_INFO,
	    [PG_LOG_DEBUG] = MOSQ_LOG_DEBUG,
	};

	(void)ud;
	mosquitto_log_printf(mosq_level[level], "%s", line);
}

int pigeon_log_sink_install(void *ud)
{
	return pg_log_add_sink(log_sink_write, ud);
}

void pigeon_log_sink_remove(void *ud)
{
	pg_log_remove_sink(log_sink_write, ud);
}
