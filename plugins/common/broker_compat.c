/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Broker version differences (broker_compat.h says which and why).
 *
 * How the version is told: the plugin API of 2.0.x has no version call and
 * linker.syms is identical from 2.0.11 to 2.0.21, so neither the API nor the
 * symbol table can say. Every 2.0 broker carries its VERSION macro as one
 * string literal ("2.0.21"), printed by `mosquitto -h` and at startup; we
 * read the running executable (/proc/self/exe) and accept the answer only if
 * exactly one NUL-delimited string of the form 2.0.<n> is there. Anything
 * else is "unknown", and callers fall back to never replacing topic or
 * properties, which is correct on every version.
 */
#include "broker_compat.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The first 2.0 release whose broker frees a replaced topic and properties. */
#define COMPAT_BROKER_FREES_PATCH 15

typedef const mosquitto_property *(*read_pair_fn)(const mosquitto_property *, int, char **, char **,
                                                  bool);
typedef const mosquitto_property *(*read_string_fn)(const mosquitto_property *, int, char **, bool);

static struct {
	bool ready;
	int patch; /* 2.0.<patch>; -1 when unknown */
	char version[16];
	void *libmosq;
	read_pair_fn read_pair;
	read_string_fn read_string;
} compat = {.patch = -1};

/* Parses "2.0.<n>" exactly; returns n or -1. */
static int compat_parse_version(const char *s, size_t len)
{
	int n = 0;
	size_t i;

	if (len < 5 || len > 8 || memcmp(s, "2.0.", 4) != 0) {
		return -1;
	}
	for (i = 4; i < len; i++) {
		if (s[i] < '0' || s[i] > '9') {
			return -1;
		}
		n = n * 10 + (s[i] - '0');
	}
	return n;
}

/* The single 2.0.<n> literal in the executable, or -1 (none, or several). */
static int compat_scan_executable(void)
{
	struct stat st;
	const char *p;
	size_t i, start;
	int fd, found = -1;

	fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return -1;
	}
	if (fstat(fd, &st) != 0 || st.st_size <= 0) {
		close(fd);
		return -1;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		return -1;
	}
	for (i = 1; i + 5 < (size_t)st.st_size; i++) {
		int n;
		if (p[i] != '2' || p[i - 1] != '\0' || p[i + 1] != '.') {
			continue;
		}
		start = i;
		while (i < (size_t)st.st_size && p[i] != '\0' && i - start <= 8) {
			i++;
		}
		if (i >= (size_t)st.st_size || p[i] != '\0') {
			continue;
		}
		n = compat_parse_version(p + start, i - start);
		if (n < 0) {
			continue;
		}
		if (found >= 0 && found != n) {
			found = -2; /* two different candidates: trust neither */
			break;
		}
		found = n;
	}
	munmap((void *)p, (size_t)st.st_size);
	return found < 0 ? -1 : found;
}

static void compat_detect(void)
{
	const char *env = getenv("PIGEON_MOSQUITTO_VERSION");

	if (env != NULL && env[0] != '\0') {
		compat.patch = compat_parse_version(env, strlen(env));
	} else {
		compat.patch = compat_scan_executable();
	}
	if (compat.patch >= 0) {
		snprintf(compat.version, sizeof(compat.version), "2.0.%d", compat.patch);
	} else {
		snprintf(compat.version, sizeof(compat.version), "unknown");
	}
}

int pigeon_compat_init(const char *log_prefix)
{
	if (compat.ready) {
		return MOSQ_ERR_SUCCESS;
	}
	compat_detect();
	/* libmosquitto's own copy, whatever the broker exports (see the header). */
	compat.libmosq = dlopen("libmosquitto.so.1", RTLD_NOW | RTLD_LOCAL);
	if (compat.libmosq != NULL) {
		compat.read_pair =
		    (read_pair_fn)dlsym(compat.libmosq, "mosquitto_property_read_string_pair");
		compat.read_string =
		    (read_string_fn)dlsym(compat.libmosq, "mosquitto_property_read_string");
	}
	if (compat.read_pair == NULL || compat.read_string == NULL) {
		mosquitto_log_printf(MOSQ_LOG_ERR,
		                     "%scannot load libmosquitto.so.1 (package libmosquitto1): %s",
		                     log_prefix, dlerror());
		if (compat.libmosq != NULL) {
			dlclose(compat.libmosq);
			compat.libmosq = NULL;
		}
		return MOSQ_ERR_UNKNOWN;
	}
	if (compat.patch < 0) {
		mosquitto_log_printf(MOSQ_LOG_WARNING,
		                     "%sbroker version unknown: publishes are routed without being "
		                     "rewritten (correct on every 2.0.x, a little slower)",
		                     log_prefix);
	} else {
		mosquitto_log_printf(MOSQ_LOG_INFO, "%sbroker %s: %s replaced topics", log_prefix,
		                     compat.version,
		                     compat.patch >= COMPAT_BROKER_FREES_PATCH ? "the broker frees"
		                                                               : "pigeon frees");
	}
	compat.ready = true;
	return MOSQ_ERR_SUCCESS;
}

const char *pigeon_compat_version(void)
{
	return compat.version[0] ? compat.version : "unknown";
}

bool pigeon_compat_can_rewrite(void)
{
	return compat.patch >= 0;
}

int pigeon_compat_set_topic(struct mosquitto_evt_message *ed, const char *topic)
{
	char *t = mosquitto_strdup(topic);

	if (t == NULL) {
		return -1;
	}
	if (compat.patch < COMPAT_BROKER_FREES_PATCH) {
		mosquitto_free(ed->topic);
	}
	ed->topic = t;
	return 0;
}

void pigeon_compat_drop_properties(struct mosquitto_evt_message *ed)
{
	if (compat.patch < COMPAT_BROKER_FREES_PATCH) {
		mosquitto_property_free_all(&ed->properties);
	}
	ed->properties = NULL;
}

const mosquitto_property *pigeon_compat_read_string_pair(const mosquitto_property *props,
                                                         int identifier, char **name, char **value,
                                                         bool skip_first)
{
	return compat.read_pair(props, identifier, name, value, skip_first);
}

const mosquitto_property *pigeon_compat_read_string(const mosquitto_property *props, int identifier,
                                                    char **value, bool skip_first)
{
	return compat.read_string(props, identifier, value, skip_first);
}
