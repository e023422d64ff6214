/* SPDX-License-Identifier: Apache-2.0 */
/* pigeon_inbox options (docs/configuration.md): parsed once at start. */
#include "pigeon_inbox.h"

#include <stdlib.h>
#include <string.h>

#include "options.h"

static int config_err(const char *key, const char *msg)
{
	mosquitto_log_printf(MOSQ_LOG_ERR, INBOX_LOG_PREFIX "plugin_opt_%s: %s", key, msg);
	return MOSQ_ERR_INVAL;
}

int inbox_config_parse(struct inbox_config *cfg, struct mosquitto_opt *opts, int nopts)
{
	char err[256];
	uint64_t v;
	unsigned per;
	int i;

	memset(cfg, 0, sizeof(*cfg));
	cfg->ttl_s = 604800;
	cfg->max_per_user = 10000;
	cfg->dedup_window_s = 86400;
	cfg->presence_grace_ms = 10000;
	cfg->max_body = 65536;
	cfg->send_rate = 100;
	cfg->sys_interval_s = 10;

	for (i = 0; i < nopts; i++) {
		const char *k = opts[i].key, *val = opts[i].value ? opts[i].value : "";
		int rc = 0;

		if (strcmp(k, "db_path") == 0) {
			free(cfg->db_path);
			cfg->db_path = strdup(val);
		} else if (strcmp(k, "ttl_s") == 0) {
			rc =
			    pg_opt_uint(val, 1, 10ULL * 365 * 86400, &cfg->ttl_s, err, sizeof(err));
		} else if (strcmp(k, "max_per_user") == 0) {
			rc = pg_opt_uint(val, 1, 100000000, &v, err, sizeof(err));
			cfg->max_per_user = (uint32_t)v;
		} else if (strcmp(k, "dedup_window_s") == 0) {
			rc = pg_opt_uint(val, 0, 30ULL * 86400, &cfg->dedup_window_s, err,
			                 sizeof(err));
		} else if (strcmp(k, "presence_grace_ms") == 0) {
			rc =
			    pg_opt_uint(val, 0, 3600000, &cfg->presence_grace_ms, err, sizeof(err));
		} else if (strcmp(k, "presence_offline") == 0) {
			if (strcmp(val, "retain") == 0 || strcmp(val, "clear") == 0) {
				cfg->presence_clear_offline = strcmp(val, "clear") == 0;
			} else {
				rc = -1;
				strcpy(err, "presence_offline is retain (keep the offline Presence "
				            "retained) or clear (remove it)");
			}
		} else if (strcmp(k, "max_body") == 0) {
			rc = pg_opt_uint(val, 1, 1u << 20, &v, err, sizeof(err));
			cfg->max_body = (uint32_t)v;
		} else if (strcmp(k, "send_rate") == 0) {
			rc = pg_opt_rate(val, 1, &cfg->send_rate, &per, err, sizeof(err));
			if (rc == 0 && per != 1) {
				rc = -1;
				strcpy(err, "send_rate is messages per second: N or N/1");
			}
		} else if (strcmp(k, "sync") == 0) {
			if (strcmp(val, "normal") == 0 || strcmp(val, "full") == 0) {
				cfg->sync_full = strcmp(val, "full") == 0;
			} else {
				rc = -1;
				strcpy(err, "sync is normal (survives a broker crash) or full "
				            "(survives power loss)");
			}
		} else if (strcmp(k, "sys_interval") == 0) {
			rc = pg_opt_uint(val, 0, 86400, &cfg->sys_interval_s, err, sizeof(err));
		} else {
			rc = -1;
			strcpy(err, "unknown option for pigeon_inbox (see conf/mosquitto.conf)");
		}
		if (rc != 0) {
			inbox_config_free(cfg);
			return config_err(k, err);
		}
	}
	if (cfg->db_path == NULL) {
		cfg->db_path = strdup("pigeon.db");
	}
	if (cfg->db_path == NULL) {
		return config_err("db_path", "out of memory");
	}
	cfg->send_burst = cfg->send_rate * 2;
	return MOSQ_ERR_SUCCESS;
}

void inbox_config_free(struct inbox_config *cfg)
{
	free(cfg->db_path);
	memset(cfg, 0, sizeof(*cfg));
}
