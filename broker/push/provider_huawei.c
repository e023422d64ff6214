/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Huawei Push Kit server API, v1 messages:send (DESIGN §7). Credentials are
 * an app's client id and secret, traded at the OAuth 2.0 endpoint for an
 * access token (client_credentials grant), cached until shortly before it
 * expires.
 *
 * Push Kit answers with a "code" in the JSON body that decides, whatever
 * the HTTP status carrying it (80300007 comes with 400, 80200003 with 401);
 * the code is a string ("80000000") in the documentation and a number in
 * some answers, and both are read.
 *
 * Threads: create/destroy on the broker thread, the rest on the Huawei
 * worker, which owns the state.
 */
#include "provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <cjson/cJSON.h>

#include "http.h"
#include "oauth.h"

#define HUAWEI_URL "https://push-api.cloud.huawei.com"
#define HUAWEI_TOKEN_URL "https://oauth-login.cloud.huawei.com/oauth2/v3/token"
/* Push Kit's message limit, as APNs and FCM */
#define HUAWEI_PAYLOAD_MAX 4096

#define HUAWEI_OK "80000000"
#define HUAWEI_PARTIAL "80100000"   /* some tokens refused: msg lists them */
#define HUAWEI_BAD_TOKEN "80300007" /* all tokens invalid */
#define HUAWEI_EXPIRED "80200003"   /* OAuth access token expired */

struct huawei {
	char *app_id, *client_secret;
	char *send_url; /* <huawei_url>/v1/<app id>/messages:send */
	char *token_url;
	char *ca_file;
	struct pg_push_transport transport;
	struct pg_push_oauth oauth;
};

static bool huawei_enabled(const struct pg_push_config *cfg)
{
	return cfg->huawei_app_id != NULL && *cfg->huawei_app_id;
}

static void huawei_destroy(void *state)
{
	struct huawei *h = state;

	if (h == NULL) {
		return;
	}
	free(h->app_id);
	if (h->client_secret) {
		OPENSSL_cleanse(h->client_secret, strlen(h->client_secret));
		free(h->client_secret);
	}
	free(h->send_url);
	free(h->token_url);
	free(h->ca_file);
	pg_push_oauth_clear(&h->oauth);
	free(h);
}

static void *huawei_create(const struct pg_push_config *cfg, char *err, size_t errlen)
{
	struct huawei *h;
	char *base, *app;
	int n;

	if (!huawei_enabled(cfg)) {
		snprintf(err, errlen, "plugin_opt_huawei_app_id is not set");
		return NULL;
	}
	if (cfg->huawei_client_secret == NULL || *cfg->huawei_client_secret == '\0') {
		snprintf(
		    err, errlen,
		    "plugin_opt_huawei_client_secret is required with plugin_opt_huawei_app_id");
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		goto nomem;
	}
	h->app_id = strdup(cfg->huawei_app_id);
	h->client_secret = strdup(cfg->huawei_client_secret);
	h->token_url =
	    strdup(cfg->huawei_token_url && *cfg->huawei_token_url ? cfg->huawei_token_url
	                                                           : HUAWEI_TOKEN_URL);
	if (cfg->ca_file && *cfg->ca_file && (h->ca_file = strdup(cfg->ca_file)) == NULL) {
		goto nomem;
	}
	base = pg_push_base_url(cfg->huawei_url, HUAWEI_URL);
	app = pg_push_url_escape(cfg->huawei_app_id);
	if (base && app) {
		n = snprintf(NULL, 0, "%s/v1/%s/messages:send", base, app);
		if ((h->send_url = malloc((size_t)n + 1)) != NULL) {
			snprintf(h->send_url, (size_t)n + 1, "%s/v1/%s/messages:send", base, app);
		}
	}
	free(base);
	free(app);
	if (h->app_id == NULL || h->client_secret == NULL || h->token_url == NULL ||
	    h->send_url == NULL) {
		goto nomem;
	}
	h->transport.ca_file = h->ca_file;
	h->transport.request_timeout_ms = (long)cfg->request_timeout_ms;
	h->transport.connect_timeout_ms = (long)cfg->connect_timeout_ms;
	return h;
nomem:
	huawei_destroy(h);
	snprintf(err, errlen, "out of memory");
	return NULL;
}

static int huawei_authorize(void *state, bool force, int64_t now_ms, char *err, size_t errlen)
{
	struct huawei *h = state;
	const char *pairs[6] = {"grant_type", "client_credentials", "client_id",
	                        h->app_id,    "client_secret",      h->client_secret};
	char *form;
	int rc;

	if (!force && pg_push_oauth_fresh(&h->oauth, now_ms)) {
		return 0;
	}
	form = pg_push_form_encode(pairs, 3);
	if (form == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc = pg_push_oauth_fetch(&h->oauth, &h->transport, h->token_url, form, now_ms, err, errlen);
	OPENSSL_cleanse(form, strlen(form));
	free(form);
	return rc;
}

/*
 * Push Kit's collapse_key: -1 (never collapse) for a CHAT, for a NOTIFY a
 * number from 0 to 100 that depends on the type alone, so a newer
 * notification of a type replaces the older one on the device.
 */
static int huawei_collapse_key(const struct pg_push_job *job)
{
	if (job->kind != PG_PUSH_KIND_NOTIFY || job->type[0] == '\0') {
		return -1;
	}
	return (int)(pg_push_hash(job->type) % 101);
}

struct huawei_payload {
	const struct pg_push_job *job;
	const char *data; /* the custom data as a JSON text */
};

/* Push Kit takes a badge set_num of 0..99; the exact count is in the data's "badge". */
#define HUAWEI_BADGE_MAX 99

static cJSON *huawei_make(void *ctx, const char *title, const char *body)
{
	const struct huawei_payload *p = ctx;
	const struct pg_push_job *job = p->job;
	cJSON *root = cJSON_CreateObject();
	cJSON *msg = cJSON_AddObjectToObject(root, "message");
	cJSON *tokens = cJSON_AddArrayToObject(msg, "token");
	cJSON *android, *note, *click, *badge, *tok;

	if (tokens == NULL || (tok = cJSON_CreateString(job->token)) == NULL) {
		goto fail;
	}
	cJSON_AddItemToArray(tokens, tok);
	android = cJSON_AddObjectToObject(msg, "android");
	if (android == NULL ||
	    !cJSON_AddNumberToObject(android, "collapse_key", huawei_collapse_key(job))) {
		goto fail;
	}
	note = cJSON_AddObjectToObject(android, "notification");
	/* Push Kit requires a title: without one (no push-title, no
	 * default_title) the body stands in, rather than the push failing. */
	if (note == NULL || !cJSON_AddStringToObject(note, "title", *title ? title : body) ||
	    !cJSON_AddStringToObject(note, "body", body)) {
		goto fail;
	}
	/* type 3: open the app */
	click = cJSON_AddObjectToObject(note, "click_action");
	badge = cJSON_AddObjectToObject(note, "badge");
	if (click == NULL || !cJSON_AddNumberToObject(click, "type", 3) || badge == NULL ||
	    pg_push_json_add_u64(badge, "set_num", job->badge < HUAWEI_BADGE_MAX
	                                               ? job->badge
	                                               : HUAWEI_BADGE_MAX) != 0 ||
	    !cJSON_AddStringToObject(msg, "data", p->data)) {
		goto fail;
	}
	return root;
fail:
	cJSON_Delete(root);
	return NULL;
}

static int huawei_build(void *state, const struct pg_push_job *job, struct pg_push_request *req,
                        char *err, size_t errlen)
{
	struct huawei *h = state;
	struct huawei_payload ctx = {job, NULL};

	if (h->oauth.access_token == NULL) {
		snprintf(err, errlen, "no access token (authorize first)");
		return -1;
	}
	ctx.data = pg_push_data_json(job);
	req->url = strdup(h->send_url);
	if (ctx.data == NULL || req->url == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	req->body = pg_push_json_fit(huawei_make, &ctx, job->title, job->body, HUAWEI_PAYLOAD_MAX,
	                             &req->body_len, err, errlen);
	if (req->body == NULL) {
		goto fail;
	}
	if (pg_push_request_header(req, "authorization: Bearer %s", h->oauth.access_token) != 0 ||
	    pg_push_request_header(req, "content-type: application/json; charset=utf-8") != 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	free((char *)ctx.data);
	return 0;
fail:
	free((char *)ctx.data);
	pg_push_request_clear(req);
	return -1;
}

static enum pg_push_verdict huawei_classify(void *state, const struct pg_push_job *job,
                                            const struct pg_push_response *resp,
                                            struct pg_push_result *res)
{
	cJSON *json = resp->body ? cJSON_ParseWithLength(resp->body, resp->body_len) : NULL;
	cJSON *c = cJSON_GetObjectItemCaseSensitive(json, "code");
	cJSON *m = cJSON_GetObjectItemCaseSensitive(json, "msg");
	const char *msg = cJSON_IsString(m) ? m->valuestring : "";
	char code[32] = "", detail[512]; /* pg_push_result_set cuts it to size */
	long st = resp->status;
	enum pg_push_verdict verdict = PG_PUSH_VERDICT_DONE;

	if (cJSON_IsString(c)) {
		snprintf(code, sizeof(code), "%s", c->valuestring);
	} else if (cJSON_IsNumber(c) && c->valuedouble >= 0 && c->valuedouble < 1e15) {
		snprintf(code, sizeof(code), "%.0f", c->valuedouble);
	}
	if (*code) {
		snprintf(detail, sizeof(detail), "code %s: %s", code, msg);
	} else {
		snprintf(detail, sizeof(detail), "HTTP %ld without a code", st);
	}
	res->retry_after_ms = -1;
	if (strcmp(code, HUAWEI_OK) == 0) {
		pg_push_result_set(res, PG_PUSH_DELIVERED, "", "");
	} else if (strcmp(code, HUAWEI_BAD_TOKEN) == 0 ||
	           (strcmp(code, HUAWEI_PARTIAL) == 0 && job->token[0] &&
	            strstr(msg, job->token) != NULL)) {
		/* a single-token request: the partial failure (illegal_tokens in
		 * msg) is a failure of this one token */
		pg_push_result_set(res, PG_PUSH_REMOVE_DEVICE, "invalid_token", detail);
	} else if (strcmp(code, HUAWEI_EXPIRED) == 0) {
		pg_push_result_set(res, PG_PUSH_FAILED, "auth", detail);
		verdict = PG_PUSH_VERDICT_REAUTHORIZE;
	} else if (st == 429) {
		pg_push_result_set(res, PG_PUSH_RETRY, "http_429", detail);
		res->retry_after_ms = pg_push_retry_after_ms(resp->retry_after, pg_push_wall_ms());
	} else if (st >= 500 && st <= 599) {
		pg_push_result_set(res, PG_PUSH_RETRY, "http_5xx", detail);
		res->retry_after_ms = pg_push_retry_after_ms(resp->retry_after, pg_push_wall_ms());
	} else if (strncmp(code, "802", 3) == 0 || st == 401 || st == 403) {
		/* 802xxxxx: OAuth and permission codes */
		pg_push_result_set(res, PG_PUSH_FAILED, "auth", detail);
	} else {
		pg_push_result_set(res, PG_PUSH_FAILED, "bad_request", detail);
	}
	cJSON_Delete(json);
	return verdict;
}

const struct pg_push_provider_ops pg_push_huawei = {
    .name = "huawei",
    .platform = PG_PUSH_HUAWEI,
    .enabled = huawei_enabled,
    .create = huawei_create,
    .destroy = huawei_destroy,
    .authorize = huawei_authorize,
    .build = huawei_build,
    .classify = huawei_classify,
};
