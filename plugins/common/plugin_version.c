/* SPDX-License-Identifier: Apache-2.0 */
/* The plugin API version check every pigeon plugin answers the same way. */
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "export.h"

PG_EXPORT int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	int i;

	for (i = 0; i < supported_version_count; i++) {
		if (supported_versions[i] == 5) {
			return 5;
		}
	}
	return -1;
}
