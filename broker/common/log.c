/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The log path (log.h): a few installed sinks, a bounded ring of lines from
 * other threads, one mutex. The ring is a fixed array so that logging never
 * allocates; the mutex is held only to copy a line in or out, never while a
 * sink writes.
 */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define LOG_SINKS_MAX 4

struct log_sink {
	pg_log_sink_fn fn;
	void *ud;
};

struct log_line {
	enum pg_log_level level;
	char text[PG_LOG_LINE_MAX];
};

static struct {
	pthread_mutex_t mu;
	struct log_sink sinks[LOG_SINKS_MAX];
	int nsinks;
	pthread_t sink_thread;
	struct log_line ring[PG_LOG_QUEUE];
	unsigned head, count; /* oldest line, lines queued */
	uint64_t dropped;     /* since the last drain */
} lg = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void log_stderr(enum pg_log_level level, const char *line)
{
	(void)level;
	fprintf(stderr, "%s\n", line);
}

int pg_log_add_sink(pg_log_sink_fn fn, void *ud)
{
	int rc = -1;

	pthread_mutex_lock(&lg.mu);
	if (lg.nsinks < LOG_SINKS_MAX) {
		lg.sinks[lg.nsinks].fn = fn;
		lg.sinks[lg.nsinks].ud = ud;
		lg.nsinks++;
		lg.sink_thread = pthread_self();
		rc = 0;
	}
	pthread_mutex_unlock(&lg.mu);
	return rc;
}

void pg_log_remove_sink(pg_log_sink_fn fn, void *ud)
{
	int i;

	pg_log_drain();
	pthread_mutex_lock(&lg.mu);
	for (i = lg.nsinks - 1; i >= 0; i--) {
		if (lg.sinks[i].fn == fn && lg.sinks[i].ud == ud) {
			memmove(&lg.sinks[i], &lg.sinks[i + 1],
			        sizeof(lg.sinks[0]) * (size_t)(lg.nsinks - i - 1));
			lg.nsinks--;
			break;
		}
	}
	pthread_mutex_unlock(&lg.mu);
}

/* The sink lines go to now, if the caller is the sink thread. Holds lg.mu. */
static bool log_direct(struct log_sink *out)
{
	if (lg.nsinks == 0) {
		out->fn = NULL;
		return true;
	}
	if (!pthread_equal(pthread_self(), lg.sink_thread)) {
		return false;
	}
	*out = lg.sinks[lg.nsinks - 1];
	return true;
}

/* Writes line through sink, or to stderr when there is none. */
static void log_emit(const struct log_sink *sink, enum pg_log_level level, const char *line)
{
	if (sink->fn != NULL) {
		sink->fn(level, line, sink->ud);
	} else {
		log_stderr(level, line);
	}
}

void pg_log(enum pg_log_level level, const char *fmt, ...)
{
	char text[PG_LOG_LINE_MAX];
	struct log_sink sink;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);

	pthread_mutex_lock(&lg.mu);
	if (log_direct(&sink)) {
		pthread_mutex_unlock(&lg.mu);
		log_emit(&sink, level, text);
		return;
	}
	if (lg.count == PG_LOG_QUEUE) {
		lg.dropped++;
	} else {
		struct log_line *l = &lg.ring[(lg.head + lg.count) % PG_LOG_QUEUE];
		l->level = level;
		memcpy(l->text, text, sizeof(text));
		lg.count++;
	}
	pthread_mutex_unlock(&lg.mu);
}

void pg_log_drain(void)
{
	struct log_line line;
	struct log_sink sink;
	uint64_t dropped;

	for (;;) {
		pthread_mutex_lock(&lg.mu);
		if (!log_direct(&sink)) {
			pthread_mutex_unlock(&lg.mu);
			return; /* not the sink thread: its tick will drain */
		}
		if (lg.count == 0) {
			dropped = lg.dropped;
			lg.dropped = 0;
			pthread_mutex_unlock(&lg.mu);
			if (dropped > 0) {
				snprintf(line.text, sizeof(line.text),
				         "pigeon: %llu log lines from other threads were dropped "
				         "(queue full)",
				         (unsigned long long)dropped);
				log_emit(&sink, PG_LOG_WARNING, line.text);
			}
			return;
		}
		line = lg.ring[lg.head];
		lg.head = (lg.head + 1) % PG_LOG_QUEUE;
		lg.count--;
		pthread_mutex_unlock(&lg.mu);
		log_emit(&sink, line.level, line.text);
	}
}
