/* SPDX-License-Identifier: Apache-2.0 */
/* pigeon_auth options: parsing plugin_opt_* and loading the files they name. */
#include "pigeon_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

#define AUTH_KEYFILE_MAX (1u << 20)
#define AUTH_REVOKED_MAX (64u << 20)

static int config_err(const char *key, const char *msg)
{
	mosquitto_log_printf(MOSQ_LOG_ERR, AUTH_LOG_PREFIX "plugin_opt_%s: %s", key, msg);
	return MOSQ_ERR_INVAL;
}

static int config_path(char **dst, const char *key, const char *value)
{
	free(*dst);
	*dst = strdup(value);
	return *dst ? MOSQ_ERR_SUCCESS : config_err(key, "out of memory");
}

int auth_config_parse(struct auth_config *cfg, struct mosquitto_opt *opts, int nopts)
{
	char err[256];
	uint64_t v;
	int i;

	memset(cfg, 0, sizeof(*cfg));
	cfg->algs = PG_ALG_HS256;
	cfg->clock_skew_s = 30;
	cfg->login_fail_limit = 5;
	cfg->login_fail_window_s = 60;
	cfg->expire_sessions = true;
	cfg->sys_interval_s = 10;

	for (i = 0; i < nopts; i++) {
		const char *k = opts[i].key, *val = opts[i].value ? opts[i].value : "";
		int rc = MOSQ_ERR_SUCCESS;

		if (strcmp(k, "jwt_algs") == 0) {
			if (pg_alg_parse_list(val, &cfg->algs, err, sizeof(err)) != 0) {
				rc = config_err(k, err);
			}
		} else if (strcmp(k, "jwt_secret_file") == 0) {
			rc = config_path(&cfg->secret_file, k, val);
		} else if (strcmp(k, "jwt_public_key_file") == 0) {
			rc = config_path(&cfg->public_key_file, k, val);
		} else if (strcmp(k, "revoked_file") == 0) {
			rc = config_path(&cfg->revoked_file, k, val);
		} else if (strcmp(k, "clock_skew_s") == 0) {
			if (pg_opt_uint(val, 0, 86400, &v, err, sizeof(err)) != 0) {
				rc = config_err(k, err);
			}
			cfg->clock_skew_s = (int64_t)v;
		} else if (strcmp(k, "login_fail_limit") == 0) {
			if (pg_opt_rate(val, 60, &cfg->login_fail_limit, &cfg->login_fail_window_s,
			                err, sizeof(err)) != 0) {
				rc = config_err(k, err);
			}
		} else if (strcmp(k, "user_notify") == 0) {
			if (pg_opt_bool(val, &cfg->user_notify, err, sizeof(err)) != 0) {
				rc = config_err(k, err);
			}
		} else if (strcmp(k, "expire_sessions") == 0) {
			if (pg_opt_bool(val, &cfg->expire_sessions, err, sizeof(err)) != 0) {
				rc = config_err(k, err);
			}
		} else if (strcmp(k, "sys_interval") == 0) {
			if (pg_opt_uint(val, 0, 86400, &v, err, sizeof(err)) != 0) {
				rc = config_err(k, err);
			}
			cfg->sys_interval_s = (unsigned)v;
		} else {
			/* Options of other plugins never reach us, so this is a typo. */
			rc = config_err(k,
			                "unknown option for pigeon_auth (see conf/mosquitto.conf)");
		}
		if (rc != MOSQ_ERR_SUCCESS) {
			auth_config_free(cfg);
			return rc;
		}
	}
	if ((cfg->algs & PG_ALG_HS256) && cfg->secret_file == NULL) {
		auth_config_free(cfg);
		return config_err("jwt_secret_file",
		                  "HS256 is in jwt_algs but no secret file is set");
	}
	if ((cfg->algs & (PG_ALG_ES256 | PG_ALG_EDDSA)) && cfg->public_key_file == NULL) {
		auth_config_free(cfg);
		return config_err("jwt_public_key_file",
		                  "ES256/EdDSA is in jwt_algs but no public key file is set");
	}
	return MOSQ_ERR_SUCCESS;
}

void auth_config_free(struct auth_config *cfg)
{
	free(cfg->secret_file);
	free(cfg->public_key_file);
	free(cfg->revoked_file);
	memset(cfg, 0, sizeof(*cfg));
}

int auth_keys_load(const struct auth_config *cfg, struct auth_keys *keys)
{
	char err[512];
	char *buf = NULL;
	size_t len;

	memset(keys, 0, sizeof(*keys));
	keys->keyset = pg_keyset_new();
	if (keys->keyset == NULL) {
		return config_err("jwt_secret_file", "out of memory");
	}
	if (cfg->algs & PG_ALG_HS256) {
		if (pg_read_file(cfg->secret_file, AUTH_KEYFILE_MAX, &buf, &len, err,
		                 sizeof(err)) != 0) {
			config_err("jwt_secret_file", err);
			goto fail;
		}
		if (len < 32) {
			config_err("jwt_secret_file", "an HS256 secret must be at least 32 bytes");
			goto fail;
		}
		if (pg_keyset_set_secret(keys->keyset, (unsigned char *)buf, len, err,
		                         sizeof(err)) != 0) {
			config_err("jwt_secret_file", err);
			goto fail;
		}
		free(buf);
		buf = NULL;
	}
	if (cfg->algs & (PG_ALG_ES256 | PG_ALG_EDDSA)) {
		unsigned want = cfg->algs & (PG_ALG_ES256 | PG_ALG_EDDSA);
		if (pg_read_file(cfg->public_key_file, AUTH_KEYFILE_MAX, &buf, &len, err,
		                 sizeof(err)) != 0 ||
		    pg_keyset_add_public_pem(keys->keyset, buf, len, err, sizeof(err)) < 0) {
			config_err("jwt_public_key_file", err);
			goto fail;
		}
		free(buf);
		buf = NULL;
		if ((pg_keyset_algs(keys->keyset) & want) == 0) {
			config_err("jwt_public_key_file",
			           "no key in it serves the configured jwt_algs");
			goto fail;
		}
	}
	if (cfg->revoked_file != NULL) {
		if (pg_read_file(cfg->revoked_file, AUTH_REVOKED_MAX, &buf, &len, err,
		                 sizeof(err)) != 0) {
			config_err("revoked_file", err);
			goto fail;
		}
		keys->revoked = pg_revoked_parse(buf, len, err, sizeof(err));
		free(buf);
		buf = NULL;
		if (keys->revoked == NULL) {
			mosquitto_log_printf(MOSQ_LOG_ERR, AUTH_LOG_PREFIX "%s: %s",
			                     cfg->revoked_file, err);
			goto fail;
		}
	}
	return MOSQ_ERR_SUCCESS;
fail:
	free(buf);
	auth_keys_free(keys);
	return MOSQ_ERR_INVAL;
}

void auth_keys_free(struct auth_keys *keys)
{
	pg_keyset_free(keys->keyset);
	pg_revoked_free(keys->revoked);
	memset(keys, 0, sizeof(*keys));
}
