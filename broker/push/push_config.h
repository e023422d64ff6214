/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon_push's settings (DESIGN §9, docs/configuration.md): what the plugin
 * parsed from its plugin_opt_* lines, read by the core, the workers and the
 * providers. Strings are owned by whoever filled the struct; NULL means
 * "not set". A provider is enabled when its credentials are set (APNs: key
 * file; FCM: service account; Huawei: app id; Xiaomi: app secret; webhook:
 * URL).
 */
#ifndef PIGEON_PUSH_CONFIG_H
#define PIGEON_PUSH_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

struct pg_push_config {
	const char *db_path;       /* devices and outbox (may be the inbox's file) */
	uint64_t coalesce_ms;      /* [1000] */
	const char *default_title; /* [NULL: no title] */
	const char *default_body;  /* ["New message"] */
	uint32_t max_attempts;     /* [5], the first attempt included */
	const char *ca_file;       /* extra trust anchors beside the system's */

	/* transport, per request [10000] and per connect [5000]; see worker.h */
	uint64_t request_timeout_ms;
	uint64_t connect_timeout_ms;
	/* retries: the first after about retry_base_ms [1000], doubling with
	 * jitter up to retry_max_ms [60000]; a provider's Retry-After wins */
	uint64_t retry_base_ms;
	uint64_t retry_max_ms;

	const char *apns_key_file; /* .p8 (PKCS#8 PEM EC P-256 key) */
	const char *apns_key_id;
	const char *apns_team_id;
	const char *apns_topic;       /* default apns-topic when the device has no app */
	const char *apns_url;         /* [https://api.push.apple.com] */
	const char *apns_sandbox_url; /* [https://api.sandbox.push.apple.com] */

	const char *fcm_service_account_file; /* Google's service-account JSON */
	const char *fcm_url;                  /* [https://fcm.googleapis.com] */
	const char *fcm_token_url;            /* [the account's token_uri, else
	                                         https://oauth2.googleapis.com/token] */

	const char *huawei_app_id;
	const char *huawei_client_secret;
	const char *huawei_url;       /* [https://push-api.cloud.huawei.com] */
	const char *huawei_token_url; /* [https://oauth-login.cloud.huawei.com/oauth2/v3/token] */

	const char *xiaomi_app_secret;
	const char *xiaomi_url; /* [https://api.xmpush.xiaomi.com] */

	const char *webhook_url;
	const char *webhook_secret; /* raw bytes of the HMAC-SHA256 key */
};

#endif
