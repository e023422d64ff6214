/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Xiaomi MiPush server API, /v3/message/regid (DESIGN §7): a form-encoded
 * POST authorised by the app secret itself ("Authorization: key=..."), so
 * there is nothing to fetch or renew.
 *
 * MiPush limits title and description in characters (title under 50,
 * description under 128), not bytes, and has no badge field: the unread
 * count travels in the payload as "badge". Its answers come with HTTP 200
 * whatever happened; the JSON's code and data.bad_regids decide.
 *
 * Threads: create/destroy on the broker thread, the rest on the Xiaomi
 * worker, which owns the state.
 */
#include "provider.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <cjson/cJSON.h>

#include "utf8.h"

#define XIAOMI_URL "https://api.xmpush.xiaomi.com"
#define XIAOMI_TITLE_MAX_CHARS 49        /* "under 50" */
#define XIAOMI_DESCRIPTION_MAX_CHARS 127 /* "under 128" */
/* notify_id of a NOTIFY: 1..XIAOMI_NOTIFY_IDS from its type (0 is CHAT's) */
#define XIAOMI_NOTIFY_IDS 1000

#define XIAOMI_BAD_REGID 20301
#define XIAOMI_TOO_FREQUENT 10027
#define XIAOMI_AUTH_FAILED 21301

struct xiaomi {
	char *app_secret;
	char *send_url; /* <xiaomi_url>/v3/message/regid */
};

static bool xiaomi_enabled(const struct pg_push_config *cfg)
{
	return cfg->xiaomi_app_secret != NULL && *cfg->xiaomi_app_secret;
}

static void xiaomi_destroy(void *state)
{
	struct xiaomi *x = state;

	if (x == NULL) {
		return;
	}
	if (x->app_secret) {
		OPENSSL_cleanse(x->app_secret, strlen(x->app_secret));
		free(x->app_secret);
	}
	free(x->send_url);
	free(x);
}

static void *xiaomi_create(const struct pg_push_config *cfg, char *err, size_t errlen)
{
	struct xiaomi *x;
	char *base;
	int n;

	if (!xiaomi_enabled(cfg)) {
		snprintf(err, errlen, "plugin_opt_xiaomi_app_secret is not set");
		return NULL;
	}
	x = calloc(1, sizeof(*x));
	if (x == NULL) {
		goto nomem;
	}
	if (strpbrk(cfg->xiaomi_app_secret, "\r\n") != NULL) {
		snprintf(err, errlen, "plugin_opt_xiaomi_app_secret holds a line break");
		xiaomi_destroy(x);
		return NULL;
	}
	x->app_secret = strdup(cfg->xiaomi_app_secret);
	base = pg_push_base_url(cfg->xiaomi_url, XIAOMI_URL);
	if (base) {
		n = snprintf(NULL, 0, "%s/v3/message/regid", base);
		if ((x->send_url = malloc((size_t)n + 1)) != NULL) {
			snprintf(x->send_url, (size_t)n + 1, "%s/v3/message/regid", base);
		}
		free(base);
	}
	if (x->app_secret == NULL || x->send_url == NULL) {
		goto nomem;
	}
	return x;
nomem:
	xiaomi_destroy(x);
	snprintf(err, errlen, "out of memory");
	return NULL;
}

/* Nothing to renew: the app secret is the credential. */
static int xiaomi_authorize(void *state, bool force, int64_t now_ms, char *err, size_t errlen)
{
	return 0;
}

/* 0 for a CHAT (no replacing), else a stable number from the type. */
static unsigned xiaomi_notify_id(const struct pg_push_job *job)
{
	if (job->kind != PG_PUSH_KIND_NOTIFY || job->type[0] == '\0') {
		return 0;
	}
	return 1 + (unsigned)(pg_push_hash(job->type) % XIAOMI_NOTIFY_IDS);
}

static int xiaomi_build(void *state, const struct pg_push_job *job, struct pg_push_request *req,
                        char *err, size_t errlen)
{
	struct xiaomi *x = state;
	char *title = pg_push_utf8_clean(job->title, strlen(job->title), NULL);
	char *desc = pg_push_utf8_clean(job->body, strlen(job->body), NULL);
	char *payload = pg_push_data_json(job);
	char notify_id[16];
	const char *pairs[16];
	size_t n = 0;
	int rc = -1;

	if (title == NULL || desc == NULL || payload == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	pg_push_utf8_shorten_chars(title, XIAOMI_TITLE_MAX_CHARS);
	pg_push_utf8_shorten_chars(desc, XIAOMI_DESCRIPTION_MAX_CHARS);
	snprintf(notify_id, sizeof(notify_id), "%u", xiaomi_notify_id(job));
	pairs[n++] = "registration_id";
	pairs[n++] = job->token;
	/* a device that registered no app leaves MiPush to match the secret's app */
	pairs[n++] = "restricted_package_name";
	pairs[n++] = job->app[0] ? job->app : NULL;
	pairs[n++] = "title";
	pairs[n++] = title;
	pairs[n++] = "description";
	pairs[n++] = desc;
	pairs[n++] = "notify_type";
	pairs[n++] = "-1";
	pairs[n++] = "pass_through";
	pairs[n++] = "0";
	pairs[n++] = "payload";
	pairs[n++] = payload;
	pairs[n++] = "notify_id";
	pairs[n++] = notify_id;
	req->url = strdup(x->send_url);
	req->body = pg_push_form_encode(pairs, n / 2);
	if (req->url == NULL || req->body == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	req->body_len = strlen(req->body);
	if (pg_push_request_header(req, "authorization: key=%s", x->app_secret) != 0 ||
	    pg_push_request_header(
	        req, "content-type: application/x-www-form-urlencoded;charset=UTF-8") != 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = 0;
out:
	if (rc != 0) {
		pg_push_request_clear(req);
	}
	free(title);
	free(desc);
	free(payload);
	return rc;
}

/* True if the comma-separated list names token exactly. */
static bool xiaomi_list_has(const char *list, const char *token)
{
	size_t n = strlen(token);
	const char *p = list;

	if (n == 0) {
		return false;
	}
	while (*p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		while (len > 0 && *p == ' ') {
			p++;
			len--;
		}
		while (len > 0 && p[len - 1] == ' ') {
			len--;
		}
		if (len == n && memcmp(p, token, n) == 0) {
			return true;
		}
		if (end == NULL) {
			break;
		}
		p = end + 1;
	}
	return false;
}

static enum pg_push_verdict xiaomi_classify(void *state, const struct pg_push_job *job,
                                            const struct pg_push_response *resp,
                                            struct pg_push_result *res)
{
	cJSON *json = resp->body ? cJSON_ParseWithLength(resp->body, resp->body_len) : NULL;
	cJSON *r = cJSON_GetObjectItemCaseSensitive(json, "result");
	cJSON *c = cJSON_GetObjectItemCaseSensitive(json, "code");
	cJSON *why = cJSON_GetObjectItemCaseSensitive(json, "reason");
	cJSON *bad = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(json, "data"), "bad_regids");
	bool ok = cJSON_IsString(r) && strcmp(r->valuestring, "ok") == 0;
	long code = -1;
	char detail[512]; /* pg_push_result_set cuts it to size */
	long st = resp->status;

	/* a number beyond any code is none (converting it to long would be UB) */
	if (cJSON_IsNumber(c) && c->valuedouble > -1e9 && c->valuedouble < 1e9) {
		code = (long)c->valuedouble;
	} else if (cJSON_IsString(c)) {
		code = strtol(c->valuestring, NULL, 10);
	}
	if (json != NULL) {
		snprintf(detail, sizeof(detail), "code %ld: %s", code,
		         cJSON_IsString(why) ? why->valuestring : "");
	} else {
		snprintf(detail, sizeof(detail), "HTTP %ld without a JSON answer", st);
	}
	res->retry_after_ms = -1;
	if ((cJSON_IsString(bad) && xiaomi_list_has(bad->valuestring, job->token)) ||
	    code == XIAOMI_BAD_REGID) {
		pg_push_result_set(res, PG_PUSH_REMOVE_DEVICE, "invalid_token", detail);
	} else if (st == 429) {
		pg_push_result_set(res, PG_PUSH_RETRY, "http_429", detail);
		res->retry_after_ms = pg_push_retry_after_ms(resp->retry_after, pg_push_wall_ms());
	} else if (st >= 500 && st <= 599) {
		pg_push_result_set(res, PG_PUSH_RETRY, "http_5xx", detail);
		res->retry_after_ms = pg_push_retry_after_ms(resp->retry_after, pg_push_wall_ms());
	} else if (code == XIAOMI_TOO_FREQUENT) {
		pg_push_result_set(res, PG_PUSH_RETRY, "too_frequent", detail);
	} else if (st >= 200 && st <= 299 && ok && code == 0) {
		pg_push_result_set(res, PG_PUSH_DELIVERED, "", "");
	} else if (code == XIAOMI_AUTH_FAILED || st == 401 || st == 403) {
		pg_push_result_set(res, PG_PUSH_FAILED, "auth", detail);
	} else {
		pg_push_result_set(res, PG_PUSH_FAILED, "bad_request", detail);
	}
	cJSON_Delete(json);
	return PG_PUSH_VERDICT_DONE;
}

const struct pg_push_provider_ops pg_push_xiaomi = {
    .name = "xiaomi",
    .platform = PG_PUSH_XIAOMI,
    .enabled = xiaomi_enabled,
    .create = xiaomi_create,
    .destroy = xiaomi_destroy,
    .authorize = xiaomi_authorize,
    .build = xiaomi_build,
    .classify = xiaomi_classify,
};
