/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The webhook: one JSON POST per push to webhook_url, for platforms pigeon
 * does not speak itself (docs/push-providers.md has the format). The body
 * is signed with HMAC-SHA256 under the raw webhook_secret, hex in
 * "X-Pigeon-Signature: sha256=<hex>", so the receiver can tell pigeon's
 * pushes from anyone else's; the signature covers the exact bytes sent,
 * sent_at_ms included, which lets a receiver refuse replays.
 *
 * Threads: create/destroy on the broker thread, the rest on the webhook
 * worker, which owns the state.
 */
#include "provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <cjson/cJSON.h>

#include "jwt_sign.h"

struct webhook {
	char *url;
	char *secret; /* raw bytes of the HMAC key */
	size_t secret_len;
};

static bool webhook_enabled(const struct pg_push_config *cfg)
{
	return cfg->webhook_url != NULL && *cfg->webhook_url;
}

static void webhook_destroy(void *state)
{
	struct webhook *w = state;

	if (w == NULL) {
		return;
	}
	free(w->url);
	if (w->secret) {
		OPENSSL_cleanse(w->secret, w->secret_len);
		free(w->secret);
	}
	free(w);
}

static void *webhook_create(const struct pg_push_config *cfg, char *err, size_t errlen)
{
	struct webhook *w;

	if (!webhook_enabled(cfg)) {
		snprintf(err, errlen, "plugin_opt_webhook_url is not set");
		return NULL;
	}
	/* an unsigned webhook would let anyone who finds the URL forge pushes */
	if (cfg->webhook_secret == NULL || *cfg->webhook_secret == '\0') {
		snprintf(err, errlen,
		         "plugin_opt_webhook_secret is required with plugin_opt_webhook_url");
		return NULL;
	}
	if (strncmp(cfg->webhook_url, "https://", 8) != 0 &&
	    strncmp(cfg->webhook_url, "http://", 7) != 0) {
		snprintf(err, errlen, "plugin_opt_webhook_url must be an http:// or https:// URL");
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL || (w->url = strdup(cfg->webhook_url)) == NULL ||
	    (w->secret = strdup(cfg->webhook_secret)) == NULL) {
		webhook_destroy(w);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->secret_len = strlen(w->secret);
	return w;
}

static int webhook_authorize(void *state, bool force, int64_t now_ms, char *err, size_t errlen)
{
	return 0;
}

struct webhook_payload {
	const struct pg_push_job *job;
	int64_t sent_at_ms;
};

static cJSON *webhook_make(void *ctx, const char *title, const char *body)
{
	const struct webhook_payload *p = ctx;
	const struct pg_push_job *job = p->job;
	cJSON *root = cJSON_CreateObject();
	cJSON *data;

	if (root == NULL || !cJSON_AddStringToObject(root, "platform", "webhook") ||
	    !cJSON_AddStringToObject(root, "token", job->token) ||
	    !cJSON_AddStringToObject(root, "uid", job->uid) ||
	    !cJSON_AddStringToObject(root, "device", job->device) ||
	    !cJSON_AddStringToObject(root, "app", job->app) ||
	    !cJSON_AddStringToObject(root, "title", title) ||
	    !cJSON_AddStringToObject(root, "body", body) ||
	    pg_push_json_add_u64(root, "badge", job->badge) != 0) {
		goto fail;
	}
	data = cJSON_AddObjectToObject(root, "data");
	if (data == NULL || pg_push_json_add_u64(data, "seq", job->seq) != 0 ||
	    !cJSON_AddStringToObject(data, "from", job->from) ||
	    !cJSON_AddStringToObject(data, "kind", pg_push_kind_name(job->kind)) ||
	    !cJSON_AddStringToObject(data, "type", job->type) ||
	    pg_push_json_add_u64(data, "count", job->count) != 0 ||
	    pg_push_json_add_u64(root, "sent_at_ms", (uint64_t)p->sent_at_ms) != 0) {
		goto fail;
	}
	return root;
fail:
	cJSON_Delete(root);
	return NULL;
}

static int webhook_build(void *state, const struct pg_push_job *job, struct pg_push_request *req,
                         char *err, size_t errlen)
{
	struct webhook *w = state;
	struct webhook_payload ctx = {job, pg_push_wall_ms()};
	char hex[65];

	req->url = strdup(w->url);
	if (req->url == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* no size limit of its own: pg_push_json_fit only makes the text valid UTF-8 */
	req->body = pg_push_json_fit(webhook_make, &ctx, job->title, job->body, (size_t)-1,
	                             &req->body_len, err, errlen);
	if (req->body == NULL) {
		goto fail;
	}
	if (pg_push_hmac_sha256_hex(w->secret, w->secret_len, req->body, req->body_len, hex) != 0) {
		snprintf(err, errlen, "HMAC-SHA256 failed (OpenSSL)");
		goto fail;
	}
	if (pg_push_request_header(req, "content-type: application/json") != 0 ||
	    pg_push_request_header(req, "x-pigeon-signature: sha256=%s", hex) != 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return 0;
fail:
	pg_push_request_clear(req);
	return -1;
}

static enum pg_push_verdict webhook_classify(void *state, const struct pg_push_job *job,
                                             const struct pg_push_response *resp,
                                             struct pg_push_result *res)
{
	char detail[512]; /* pg_push_result_set cuts it to size */
	long st = resp->status;

	snprintf(detail, sizeof(detail), "HTTP %ld%s%.400s", st,
	         resp->body && resp->body_len ? ": " : "", resp->body ? resp->body : "");
	res->retry_after_ms = -1;
	if (st >= 200 && st <= 299) {
		pg_push_result_set(res, PG_PUSH_DELIVERED, "", "");
	} else if (st == 404 || st == 410) {
		pg_push_result_set(res, PG_PUSH_REMOVE_DEVICE, "unregistered", detail);
	} else if (st == 429) {
		pg_push_result_set(res, PG_PUSH_RETRY, "http_429", detail);
		res->retry_after_ms = pg_push_retry_after_ms(resp->retry_after, pg_push_wall_ms());
	} else if (st >= 500 && st <= 599) {
		pg_push_result_set(res, PG_PUSH_RETRY, "http_5xx", detail);
		res->retry_after_ms = pg_push_retry_after_ms(resp->retry_after, pg_push_wall_ms());
	} else {
		pg_push_result_set(res, PG_PUSH_FAILED, "bad_request", detail);
	}
	return PG_PUSH_VERDICT_DONE;
}

const struct pg_push_provider_ops pg_push_webhook = {
    .name = "webhook",
    .platform = PG_PUSH_WEBHOOK,
    .enabled = webhook_enabled,
    .create = webhook_create,
    .destroy = webhook_destroy,
    .authorize = webhook_authorize,
    .build = webhook_build,
    .classify = webhook_classify,
};
