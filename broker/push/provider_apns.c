/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Apple Push Notification service, HTTP/2 provider API with token auth
 * (DESIGN §7). The provider token is an ES256 JWT {"iss": team, "iat": t}
 * signed with the .p8 key; one token serves every request until it is
 * renewed, because Apple refuses providers that renew more often than every
 * 20 minutes (TooManyProviderTokenUpdates) and tokens older than an hour
 * (ExpiredProviderToken). Renewal after 50 minutes sits inside that window
 * with room for clock skew.
 *
 * Threads: create/destroy on the broker thread, the rest on the APNs
 * worker; the state (key, current JWT) belongs to that worker.
 */
#include "provider.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "jwt_sign.h"

#define APNS_URL "https://api.push.apple.com"
#define APNS_SANDBOX_URL "https://api.sandbox.push.apple.com"
#define APNS_PAYLOAD_MAX 4096
/* apns-collapse-id is at most 64 bytes */
#define APNS_COLLAPSE_MAX 64
#define APNS_JWT_RENEW_MS (50 * 60 * 1000LL)
#define APNS_JWT_MIN_AGE_MS (20 * 60 * 1000LL)

struct apns {
	struct pg_push_jwt_key *key;
	char *key_id, *team_id, *topic; /* topic may be NULL */
	char *url, *sandbox_url;
	char *jwt; /* the current provider token, NULL before the first authorize */
	int64_t jwt_made_ms;
	bool jwt_expired; /* Apple answered ExpiredProviderToken for the current one */
};

static bool apns_enabled(const struct pg_push_config *cfg)
{
	return cfg->apns_key_file != NULL && *cfg->apns_key_file;
}

static void apns_destroy(void *state)
{
	struct apns *a = state;

	if (a == NULL) {
		return;
	}
	pg_push_jwt_key_free(a->key);
	free(a->key_id);
	free(a->team_id);
	free(a->topic);
	free(a->url);
	free(a->sandbox_url);
	free(a->jwt);
	free(a);
}

static void *apns_create(const struct pg_push_config *cfg, char *err, size_t errlen)
{
	struct apns *a;
	char why[256];

	if (!apns_enabled(cfg)) {
		snprintf(err, errlen, "plugin_opt_apns_key_file is not set");
		return NULL;
	}
	if (cfg->apns_key_id == NULL || *cfg->apns_key_id == '\0') {
		snprintf(err, errlen,
		         "plugin_opt_apns_key_id is required with plugin_opt_apns_key_file");
		return NULL;
	}
	if (cfg->apns_team_id == NULL || *cfg->apns_team_id == '\0') {
		snprintf(err, errlen,
		         "plugin_opt_apns_team_id is required with plugin_opt_apns_key_file");
		return NULL;
	}
	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		goto nomem;
	}
	a->key = pg_push_jwt_key_load(cfg->apns_key_file, PG_PUSH_JWT_ES256, why, sizeof(why));
	if (a->key == NULL) {
		snprintf(err, errlen, "plugin_opt_apns_key_file: %s", why);
		apns_destroy(a);
		return NULL;
	}
	a->key_id = strdup(cfg->apns_key_id);
	a->team_id = strdup(cfg->apns_team_id);
	a->url = pg_push_base_url(cfg->apns_url, APNS_URL);
	a->sandbox_url = pg_push_base_url(cfg->apns_sandbox_url, APNS_SANDBOX_URL);
	if (cfg->apns_topic && *cfg->apns_topic) {
		a->topic = strdup(cfg->apns_topic);
		if (a->topic == NULL) {
			goto nomem;
		}
	}
	if (a->key_id == NULL || a->team_id == NULL || a->url == NULL || a->sandbox_url == NULL) {
		goto nomem;
	}
	return a;
nomem:
	apns_destroy(a);
	snprintf(err, errlen, "out of memory");
	return NULL;
}

/*
 * Keeps the current token, or signs a new one when there is none, when it
 * is 50 minutes old, and on force. force comes after Apple refused the
 * token: if it said ExpiredProviderToken the token must be replaced
 * whatever its age (Apple's clock is the one that counts, and a token it
 * calls expired will not get better); any other force is honoured only
 * once the token is 20 minutes old, because renewing sooner gets every
 * request refused with TooManyProviderTokenUpdates, which is worse than
 * the refusal that prompted it.
 */
static int apns_authorize(void *state, bool force, int64_t now_ms, char *err, size_t errlen)
{
	struct apns *a = state;
	int64_t age = now_ms - a->jwt_made_ms;
	cJSON *claims;
	char *claims_json, *jwt;

	if (a->jwt != NULL && age >= 0) {
		bool stale = age >= APNS_JWT_RENEW_MS;
		bool renew = stale || (force && (a->jwt_expired || age >= APNS_JWT_MIN_AGE_MS));
		if (!renew) {
			return 0;
		}
	}
	claims = cJSON_CreateObject();
	if (claims == NULL || !cJSON_AddStringToObject(claims, "iss", a->team_id) ||
	    pg_push_json_add_u64(claims, "iat", (uint64_t)(pg_push_wall_ms() / 1000)) != 0 ||
	    (claims_json = cJSON_PrintUnformatted(claims)) == NULL) {
		cJSON_Delete(claims);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	cJSON_Delete(claims);
	jwt = pg_push_jwt_sign(a->key, a->key_id, claims_json, err, errlen);
	free(claims_json);
	if (jwt == NULL) {
		return -1;
	}
	free(a->jwt);
	a->jwt = jwt;
	a->jwt_made_ms = now_ms;
	a->jwt_expired = false;
	return 0;
}

struct apns_payload {
	const struct pg_push_job *job;
};

static cJSON *apns_make(void *ctx, const char *title, const char *body)
{
	const struct pg_push_job *job = ((struct apns_payload *)ctx)->job;
	cJSON *root = cJSON_CreateObject();
	cJSON *aps = cJSON_AddObjectToObject(root, "aps");
	cJSON *alert = cJSON_AddObjectToObject(aps, "alert");

	if (alert == NULL || (*title && !cJSON_AddStringToObject(alert, "title", title)) ||
	    !cJSON_AddStringToObject(alert, "body", body) ||
	    pg_push_json_add_u64(aps, "badge", job->badge) != 0 ||
	    pg_push_json_add_u64(root, "seq", job->seq) != 0 ||
	    !cJSON_AddStringToObject(root, "from", job->from) ||
	    !cJSON_AddStringToObject(root, "kind", pg_push_kind_name(job->kind)) ||
	    !cJSON_AddStringToObject(root, "type", job->type) ||
	    pg_push_json_add_u64(root, "count", job->count) != 0) {
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

static int apns_build(void *state, const struct pg_push_job *job, struct pg_push_request *req,
                      char *err, size_t errlen)
{
	struct apns *a = state;
	struct apns_payload ctx = {job};
	const char *topic = job->app[0] ? job->app : a->topic;
	char collapse[APNS_COLLAPSE_MAX + 1];
	char *token;
	int n;

	if (a->jwt == NULL) {
		snprintf(err, errlen, "no provider token (authorize first)");
		return -1;
	}
	if (topic == NULL) {
		snprintf(err, errlen,
		         "no apns-topic: the device registered no app and "
		         "plugin_opt_apns_topic is not set");
		return -1;
	}
	token = pg_push_url_escape(job->token);
	if (token == NULL) {
		goto nomem;
	}
	n = snprintf(NULL, 0, "%s/3/device/%s", job->sandbox ? a->sandbox_url : a->url, token);
	req->url = malloc((size_t)n + 1);
	if (req->url == NULL) {
		free(token);
		goto nomem;
	}
	snprintf(req->url, (size_t)n + 1, "%s/3/device/%s", job->sandbox ? a->sandbox_url : a->url,
	         token);
	free(token);
	req->body = pg_push_json_fit(apns_make, &ctx, job->title, job->body, APNS_PAYLOAD_MAX,
	                             &req->body_len, err, errlen);
	if (req->body == NULL) {
		goto fail;
	}
	if (pg_push_request_header(req, "authorization: bearer %s", a->jwt) != 0 ||
	    pg_push_request_header(req, "apns-topic: %s", topic) != 0 ||
	    pg_push_request_header(req, "apns-push-type: alert") != 0 ||
	    pg_push_request_header(req, "apns-priority: 10") != 0 ||
	    pg_push_request_header(req, "apns-expiration: %" PRId64,
	                           job->expires_at_ms > 0 ? job->expires_at_ms / 1000 : 0) != 0 ||
	    pg_push_request_header(req, "content-type: application/json") != 0) {
		snprintf(err, errlen,
		         "bad header value (app or topic with a line break?) or out of memory");
		goto fail;
	}
	if (job->kind == PG_PUSH_KIND_NOTIFY && job->type[0]) {
		/* a type longer than Apple's limit collapses by its stable hash */
		if (strlen(job->type) <= APNS_COLLAPSE_MAX) {
			snprintf(collapse, sizeof(collapse), "%s", job->type);
		} else {
			snprintf(collapse, sizeof(collapse), "%016" PRIx64,
			         pg_push_hash(job->type));
		}
		if (pg_push_request_header(req, "apns-collapse-id: %s", collapse) != 0) {
			snprintf(err, errlen, "bad apns-collapse-id or out of memory");
			goto fail;
		}
	}
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	pg_push_request_clear(req);
	return -1;
}

static enum pg_push_verdict apns_classify(void *state, const struct pg_push_job *job,
                                          const struct pg_push_response *resp,
                                          struct pg_push_result *res)
{
	struct apns *a = state;
	cJSON *json = resp->body ? cJSON_ParseWithLength(resp->body, resp->body_len) : NULL;
	cJSON *r = cJSON_GetObjectItemCaseSensitive(json, "reason");
	char reason[128];
	long st = resp->status;
	enum pg_push_verdict verdict = PG_PUSH_VERDICT_DONE;

	snprintf(reason, sizeof(reason), "%s", cJSON_IsString(r) ? r->valuestring : "");
	cJSON_Delete(json);
	res->retry_after_ms = -1;
	if (st >= 200 && st <= 299) {
		pg_push_result_set(res, PG_PUSH_DELIVERED, "", reason);
	} else if (st == 410) {
		pg_push_result_set(res, PG_PUSH_REMOVE_DEVICE, "unregistered", reason);
	} else if (st == 400 && strcmp(reason, "BadDeviceToken") == 0) {
		pg_push_result_set(res, PG_PUSH_REMOVE_DEVICE, "bad_device_token", reason);
	} else if (st == 400 && strcmp(reason, "DeviceTokenNotForTopic") == 0) {
		/*
		 * The device's own app id: its registration is wrong, remove it.
		 * plugin_opt_apns_topic: the operator's setting is wrong, and
		 * removing would unregister every device that relies on it.
		 */
		if (job->app[0] != '\0') {
			pg_push_result_set(res, PG_PUSH_REMOVE_DEVICE, "token_not_for_topic", reason);
		} else {
			pg_push_result_set(res, PG_PUSH_FAILED, "token_not_for_topic", reason);
		}
	} else if (st == 403 && strcmp(reason, "ExpiredProviderToken") == 0) {
		/* the result stands if the renewed token is refused as well */
		pg_push_result_set(res, PG_PUSH_FAILED, "auth", reason);
		a->jwt_expired = true;
		verdict = PG_PUSH_VERDICT_REAUTHORIZE;
	} else if (st == 403) {
		pg_push_result_set(res, PG_PUSH_FAILED, "auth", reason);
	} else if (st == 429) {
		/* TooManyRequests for the device, or TooManyProviderTokenUpdates */
		pg_push_result_set(res, PG_PUSH_RETRY, "http_429", reason);
		res->retry_after_ms = pg_push_retry_after_ms(resp->retry_after, pg_push_wall_ms());
	} else if (st >= 500 && st <= 599) {
		pg_push_result_set(res, PG_PUSH_RETRY, "http_5xx", reason);
		res->retry_after_ms = pg_push_retry_after_ms(resp->retry_after, pg_push_wall_ms());
	} else if (st == 413) {
		pg_push_result_set(res, PG_PUSH_FAILED, "payload_too_large", reason);
	} else {
		pg_push_result_set(res, PG_PUSH_FAILED, "bad_request", reason);
	}
	return verdict;
}

const struct pg_push_provider_ops pg_push_apns = {
    .name = "apns",
    .platform = PG_PUSH_APNS,
    .enabled = apns_enabled,
    .create = apns_create,
    .destroy = apns_destroy,
    .authorize = apns_authorize,
    .build = apns_build,
    .classify = apns_classify,
};
