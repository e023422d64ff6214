/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Platform names (job.h): the strings RegisterDevice carries and the
 * devices table stores, so they never change. Pure functions: any thread.
 */
#include "job.h"

#include <string.h>

static const char *const platform_names[PG_PUSH_PLATFORM_COUNT] = {
    [PG_PUSH_APNS] = "apns",     [PG_PUSH_FCM] = "fcm",         [PG_PUSH_HUAWEI] = "huawei",
    [PG_PUSH_XIAOMI] = "xiaomi", [PG_PUSH_WEBHOOK] = "webhook",
};

const char *pg_push_platform_name(enum pg_push_platform p)
{
	if ((unsigned)p >= PG_PUSH_PLATFORM_COUNT) {
		return "?";
	}
	return platform_names[p];
}

int pg_push_platform_parse(const char *name, enum pg_push_platform *out)
{
	unsigned i;

	if (name == NULL) {
		return -1;
	}
	for (i = 0; i < PG_PUSH_PLATFORM_COUNT; i++) {
		if (strcmp(name, platform_names[i]) == 0) {
			*out = (enum pg_push_platform)i;
			return 0;
		}
	}
	return -1;
}
