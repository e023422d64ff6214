/* SPDX-License-Identifier: Apache-2.0 */
/* pigeon_push options (docs/configuration.md, docs/push.md): parsed once at start. */
#include "pigeon_push.h"

#include <stdlib.h>
#include <string.h>

#include "options.h"

static int config_err(const char *key, const char *msg)
{
	mosquitto_log_printf(MOSQ_LOG_ERR, PUSH_LOG_PREFIX "plugin_opt_%s: %s", key, msg);
	return MOSQ_ERR_INVAL;
}

/* The string options, by name: each is a pointer into the core config. */
static const char **string_option(struct pg_push_config *c, const char *k)
{
	static const struct {
		const char *name;
		size_t offset;
	} names[] = {
#define S(field) {#field, offsetof(struct pg_push_config, field)}
	    S(db_path),
	    S(default_title),
	    S(default_body),
	    S(ca_file),
	    S(apns_key_file),
	    S(apns_key_id),
	    S(apns_team_id),
	    S(apns_topic),
	    S(apns_url),
	    S(apns_sandbox_url),
	    S(fcm_service_account_file),
	    S(fcm_url),
	    S(fcm_token_url),
	    S(huawei_app_id),
	    S(huawei_client_secret),
	    S(huawei_url),
	    S(huawei_token_url),
	    S(xiaomi_app_secret),
	    S(xiaomi_url),
	    S(webhook_url),
	    S(webhook_secret),
#undef S
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(k, names[i].name) == 0) {
			return (const char **)((char *)c + names[i].offset);
		}
	}
	return NULL;
}

int push_config_parse(struct push_plugin_config *cfg, struct mosquitto_opt *opts, int nopts)
{
	struct pg_push_config *c = &cfg->core;
	char err[256];
	uint64_t v;
	int i;

	memset(cfg, 0, sizeof(*cfg));
	c->coalesce_ms = 1000;
	c->max_attempts = 5;
	c->request_timeout_ms = 10000;
	c->connect_timeout_ms = 5000;
	c->retry_base_ms = 1000;
	c->retry_max_ms = 60000;
	cfg->sys_interval_s = 10;

	for (i = 0; i < nopts; i++) {
		const char *k = opts[i].key, *val = opts[i].value ? opts[i].value : "";
		const char **s = string_option(c, k);
		int rc = 0;

		if (s != NULL) {
			char *copy;

			if (val[0] == '\0') {
				return config_err(k, "is empty");
			}
			if (cfg->nowned == (int)(sizeof(cfg->owned) / sizeof(cfg->owned[0])) ||
			    (copy = strdup(val)) == NULL) {
				return config_err(k, "out of memory");
			}
			cfg->owned[cfg->nowned++] = copy;
			*s = copy;
		} else if (strcmp(k, "coalesce_ms") == 0) {
			rc = pg_opt_uint(val, 0, 3600000, &c->coalesce_ms, err, sizeof(err));
		} else if (strcmp(k, "max_attempts") == 0) {
			rc = pg_opt_uint(val, 1, 100, &v, err, sizeof(err));
			c->max_attempts = (uint32_t)v;
		} else if (strcmp(k, "request_timeout_ms") == 0) {
			rc =
			    pg_opt_uint(val, 100, 600000, &c->request_timeout_ms, err, sizeof(err));
		} else if (strcmp(k, "connect_timeout_ms") == 0) {
			rc =
			    pg_opt_uint(val, 100, 600000, &c->connect_timeout_ms, err, sizeof(err));
		} else if (strcmp(k, "retry_base_ms") == 0) {
			rc = pg_opt_uint(val, 10, 3600000, &c->retry_base_ms, err, sizeof(err));
		} else if (strcmp(k, "retry_max_ms") == 0) {
			rc = pg_opt_uint(val, 10, 86400000, &c->retry_max_ms, err, sizeof(err));
		} else if (strcmp(k, "sys_interval") == 0) {
			rc = pg_opt_uint(val, 0, 86400, &cfg->sys_interval_s, err, sizeof(err));
		} else {
			return config_err(k, "unknown option (docs/configuration.md lists them)");
		}
		if (rc != 0) {
			return config_err(k, err);
		}
	}
	if (c->retry_max_ms < c->retry_base_ms) {
		return config_err("retry_max_ms", "is below retry_base_ms");
	}
	if (c->db_path == NULL) {
		char *copy = strdup("pigeon-push.db");

		if (copy == NULL) {
			return config_err("db_path", "out of memory");
		}
		cfg->owned[cfg->nowned++] = copy;
		c->db_path = copy;
	}
	if (c->default_body == NULL) {
		c->default_body = "New message";
	}
	return MOSQ_ERR_SUCCESS;
}

void push_config_free(struct push_plugin_config *cfg)
{
	int i;

	for (i = 0; i < cfg->nowned; i++) {
		free(cfg->owned[i]);
	}
	memset(cfg, 0, sizeof(*cfg));
}
