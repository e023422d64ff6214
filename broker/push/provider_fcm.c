/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Firebase Cloud Messaging, HTTP v1 API (DESIGN §7). Credentials are a
 * Google service account: its RSA key signs an RS256 assertion (RFC 7523)
 * that the token endpoint trades for an hour-long OAuth2 access token,
 * cached in struct pg_push_oauth and sent as "Authorization: Bearer".
 *
 * Answers are read by FCM's own error code first (the FcmError detail),
 * the HTTP status second: the status alone does not tell an invalid token
 * (400 INVALID_ARGUMENT) from a malformed request.
 *
 * Threads: create/destroy on the broker thread, the rest on the FCM worker,
 * which owns the state.
 */
#include "provider.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <cjson/cJSON.h>

#include "http.h"
#include "jwt_sign.h"
#include "oauth.h"

#define FCM_URL "https://fcm.googleapis.com"
#define FCM_TOKEN_URL "https://oauth2.googleapis.com/token"
#define FCM_SCOPE "https://www.googleapis.com/auth/firebase.messaging"
#define FCM_PAYLOAD_MAX 4096
#define FCM_ACCOUNT_FILE_MAX (64 * 1024)
#define FCM_ERROR_TYPE "type.googleapis.com/google.firebase.fcm.v1.FcmError"

struct fcm {
	struct pg_push_jwt_key *key;
	char *project_id, *client_email, *key_id; /* key_id may be NULL */
	char *send_url;                           /* <fcm_url>/v1/projects/<id>/messages:send */
	char *token_url;
	char *ca_file;
	struct pg_push_transport transport;
	struct pg_push_oauth oauth;
};

static bool fcm_enabled(const struct pg_push_config *cfg)
{
	return cfg->fcm_service_account_file != NULL && *cfg->fcm_service_account_file;
}

static void fcm_destroy(void *state)
{
	struct fcm *f = state;

	if (f == NULL) {
		return;
	}
	pg_push_jwt_key_free(f->key);
	free(f->project_id);
	free(f->client_email);
	free(f->key_id);
	free(f->send_url);
	free(f->token_url);
	free(f->ca_file);
	pg_push_oauth_clear(&f->oauth);
	free(f);
}

/* The string member name of the account, or NULL. */
static const char *fcm_account_string(const cJSON *account, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(account, name);

	return cJSON_IsString(v) && *v->valuestring ? v->valuestring : NULL;
}

static void *fcm_create(const struct pg_push_config *cfg, char *err, size_t errlen)
{
	const char *path = cfg->fcm_service_account_file;
	const char *missing = NULL, *pem, *token_uri;
	struct fcm *f = NULL;
	cJSON *account = NULL;
	char why[256];
	char *text;
	size_t len;
	int n;

	if (!fcm_enabled(cfg)) {
		snprintf(err, errlen, "plugin_opt_fcm_service_account_file is not set");
		return NULL;
	}
	text = pg_push_read_file(path, FCM_ACCOUNT_FILE_MAX, &len, why, sizeof(why));
	if (text == NULL) {
		snprintf(err, errlen, "plugin_opt_fcm_service_account_file: %s", why);
		return NULL;
	}
	account = cJSON_ParseWithLength(text, len);
	OPENSSL_cleanse(text, len);
	free(text);
	if (!cJSON_IsObject(account)) {
		snprintf(err, errlen, "plugin_opt_fcm_service_account_file: %s is not JSON", path);
		goto fail;
	}
	if (fcm_account_string(account, "project_id") == NULL) {
		missing = "project_id";
	} else if (fcm_account_string(account, "client_email") == NULL) {
		missing = "client_email";
	} else if (fcm_account_string(account, "private_key") == NULL) {
		missing = "private_key";
	}
	if (missing) {
		snprintf(err, errlen,
		         "plugin_opt_fcm_service_account_file: %s has no \"%s\" (is it a service "
		         "account key file?)",
		         path, missing);
		goto fail;
	}
	f = calloc(1, sizeof(*f));
	if (f == NULL) {
		goto nomem;
	}
	pem = fcm_account_string(account, "private_key");
	f->key = pg_push_jwt_key_from_pem(pem, strlen(pem), PG_PUSH_JWT_RS256, why, sizeof(why));
	if (f->key == NULL) {
		snprintf(err, errlen, "plugin_opt_fcm_service_account_file: %s: private_key: %s",
		         path, why);
		goto fail;
	}
	f->project_id = strdup(fcm_account_string(account, "project_id"));
	f->client_email = strdup(fcm_account_string(account, "client_email"));
	if (fcm_account_string(account, "private_key_id") != NULL &&
	    (f->key_id = strdup(fcm_account_string(account, "private_key_id"))) == NULL) {
		goto nomem;
	}
	token_uri = cfg->fcm_token_url && *cfg->fcm_token_url ? cfg->fcm_token_url
	            : fcm_account_string(account, "token_uri")
	                ? fcm_account_string(account, "token_uri")
	                : FCM_TOKEN_URL;
	f->token_url = strdup(token_uri);
	if (cfg->ca_file && *cfg->ca_file && (f->ca_file = strdup(cfg->ca_file)) == NULL) {
		goto nomem;
	}
	{
		char *base = pg_push_base_url(cfg->fcm_url, FCM_URL);
		char *project = f->project_id ? pg_push_url_escape(f->project_id) : NULL;
		if (base && project) {
			n = snprintf(NULL, 0, "%s/v1/projects/%s/messages:send", base, project);
			f->send_url = malloc((size_t)n + 1);
			if (f->send_url) {
				snprintf(f->send_url, (size_t)n + 1,
				         "%s/v1/projects/%s/messages:send", base, project);
			}
		}
		free(base);
		free(project);
	}
	if (f->project_id == NULL || f->client_email == NULL || f->token_url == NULL ||
	    f->send_url == NULL) {
		goto nomem;
	}
	f->transport.ca_file = f->ca_file;
	f->transport.request_timeout_ms = (long)cfg->request_timeout_ms;
	f->transport.connect_timeout_ms = (long)cfg->connect_timeout_ms;
	/* the account held the private key: scrub cJSON's copy */
	OPENSSL_cleanse((void *)pem, strlen(pem));
	cJSON_Delete(account);
	return f;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	if (account) {
		const char *k = fcm_account_string(account, "private_key");
		if (k) {
			OPENSSL_cleanse((void *)k, strlen(k));
		}
	}
	cJSON_Delete(account);
	fcm_destroy(f);
	return NULL;
}

/* The signed assertion for the token endpoint (RFC 7523 §2.1), malloc'd. */
static char *fcm_assertion(struct fcm *f, char *err, size_t errlen)
{
	uint64_t iat = (uint64_t)(pg_push_wall_ms() / 1000);
	cJSON *claims = cJSON_CreateObject();
	char *claims_json = NULL, *jwt;

	if (claims == NULL || !cJSON_AddStringToObject(claims, "iss", f->client_email) ||
	    !cJSON_AddStringToObject(claims, "scope", FCM_SCOPE) ||
	    !cJSON_AddStringToObject(claims, "aud", f->token_url) ||
	    pg_push_json_add_u64(claims, "iat", iat) != 0 ||
	    pg_push_json_add_u64(claims, "exp", iat + 3600) != 0 ||
	    (claims_json = cJSON_PrintUnformatted(claims)) == NULL) {
		cJSON_Delete(claims);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	cJSON_Delete(claims);
	jwt = pg_push_jwt_sign(f->key, f->key_id, claims_json, err, errlen);
	free(claims_json);
	return jwt;
}

static int fcm_authorize(void *state, bool force, int64_t now_ms, char *err, size_t errlen)
{
	struct fcm *f = state;
	const char *pairs[4] = {"grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer",
	                        "assertion", NULL};
	char *jwt, *form;
	int rc;

	if (!force && pg_push_oauth_fresh(&f->oauth, now_ms)) {
		return 0;
	}
	jwt = fcm_assertion(f, err, errlen);
	if (jwt == NULL) {
		return -1;
	}
	pairs[3] = jwt;
	form = pg_push_form_encode(pairs, 2);
	free(jwt);
	if (form == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc = pg_push_oauth_fetch(&f->oauth, &f->transport, f->token_url, form, now_ms, err, errlen);
	free(form);
	return rc;
}

struct fcm_payload {
	const struct pg_push_job *job;
};

static cJSON *fcm_make(void *ctx, const char *title, const char *body)
{
	const struct pg_push_job *job = ((struct fcm_payload *)ctx)->job;
	uint64_t count = job->badge > INT32_MAX ? INT32_MAX : job->badge;
	cJSON *root = cJSON_CreateObject();
	cJSON *msg = cJSON_AddObjectToObject(root, "message");
	cJSON *note, *data, *android, *anote, *aps;
	char ttl[32];

	if (msg == NULL || !cJSON_AddStringToObject(msg, "token", job->token)) {
		goto fail;
	}
	note = cJSON_AddObjectToObject(msg, "notification");
	if (note == NULL || (*title && !cJSON_AddStringToObject(note, "title", title)) ||
	    !cJSON_AddStringToObject(note, "body", body)) {
		goto fail;
	}
	/* FCM's data values are strings, numbers included */
	data = cJSON_AddObjectToObject(msg, "data");
	if (data == NULL || pg_push_json_add_u64_string(data, "seq", job->seq) != 0 ||
	    !cJSON_AddStringToObject(data, "from", job->from) ||
	    !cJSON_AddStringToObject(data, "kind", pg_push_kind_name(job->kind)) ||
	    !cJSON_AddStringToObject(data, "type", job->type) ||
	    pg_push_json_add_u64_string(data, "count", job->count) != 0 ||
	    pg_push_json_add_u64_string(data, "badge", job->badge) != 0) {
		goto fail;
	}
	android = cJSON_AddObjectToObject(msg, "android");
	if (android == NULL ||
	    (job->kind == PG_PUSH_KIND_NOTIFY && job->type[0] &&
	     !cJSON_AddStringToObject(android, "collapse_key", job->type)) ||
	    !cJSON_AddStringToObject(android, "priority", "high")) {
		goto fail;
	}
	if (job->expires_at_ms > 0) {
		/* what is left of the message's life, so FCM does not keep it longer */
		int64_t left = (job->expires_at_ms - pg_push_wall_ms()) / 1000;
		snprintf(ttl, sizeof(ttl), "%" PRId64 "s", left > 0 ? left : 0);
		if (!cJSON_AddStringToObject(android, "ttl", ttl)) {
			goto fail;
		}
	}
	anote = cJSON_AddObjectToObject(android, "notification");
	if (anote == NULL || pg_push_json_add_u64(anote, "notification_count", count) != 0) {
		goto fail;
	}
	aps = cJSON_AddObjectToObject(
	    cJSON_AddObjectToObject(cJSON_AddObjectToObject(msg, "apns"), "payload"), "aps");
	if (aps == NULL || pg_push_json_add_u64(aps, "badge", count) != 0) {
		goto fail;
	}
	return root;
fail:
	cJSON_Delete(root);
	return NULL;
}

static int fcm_build(void *state, const struct pg_push_job *job, struct pg_push_request *req,
                     char *err, size_t errlen)
{
	struct fcm *f = state;
	struct fcm_payload ctx = {job};

	if (f->oauth.access_token == NULL) {
		snprintf(err, errlen, "no access token (authorize first)");
		return -1;
	}
	req->url = strdup(f->send_url);
	if (req->url == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	req->body = pg_push_json_fit(fcm_make, &ctx, job->title, job->body, FCM_PAYLOAD_MAX,
	                             &req->body_len, err, errlen);
	if (req->body == NULL) {
		goto fail;
	}
	if (pg_push_request_header(req, "authorization: Bearer %s", f->oauth.access_token) != 0 ||
	    pg_push_request_header(req, "content-type: application/json; charset=utf-8") != 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return 0;
fail:
	pg_push_request_clear(req);
	return -1;
}

/* True if hay contains needle, ASCII case ignored (strcasestr is a GNU extension). */
static bool contains_nocase(const char *hay, const char *needle)
{
	size_t n = strlen(needle), i;

	for (; *hay; hay++) {
		for (i = 0; i < n && hay[i]; i++) {
			char a = hay[i], b = needle[i];
			if (a >= 'A' && a <= 'Z') {
				a = (char)(a - 'A' + 'a');
			}
			if (b >= 'A' && b <= 'Z') {
				b = (char)(b - 'A' + 'a');
			}
			if (a != b) {
				break;
			}
		}
		if (i == n) {
			return true;
		}
	}
	return false;
}

/* error.details[] entry of type FcmError: its errorCode, or "". */
static const char *fcm_error_code(const cJSON *error)
{
	const cJSON *d;

	cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(error, "details"))
	{
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(d, "@type");
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(d, "errorCode");
		if (cJSON_IsString(type) && strcmp(type->valuestring, FCM_ERROR_TYPE) == 0 &&
		    cJSON_IsString(code)) {
			return code->valuestring;
		}
	}
	return "";
}

static enum pg_push_verdict fcm_classify(void *state, const struct pg_push_job *job,
                                         const struct pg_push_response *resp,
                                         struct pg_push_result *res)
{
	cJSON *json = resp->body ? cJSON_ParseWithLength(resp->body, resp->body_len) : NULL;
	cJSON *error = cJSON_GetObjectItemCaseSensitive(json, "error");
	cJSON *m = cJSON_GetObjectItemCaseSensitive(error, "message");
	cJSON *s = cJSON_GetObjectItemCaseSensitive(error, "status");
	const char *code = fcm_error_code(error);
	const char *status = cJSON_IsString(s) ? s->valuestring : "";
	const char *message = cJSON_IsString(m) ? m->valuestring : "";
	char detail[512]; /* pg_push_result_set cuts it to size */
	long st = resp->status;
	enum pg_push_verdict verdict = PG_PUSH_VERDICT_DONE;

	/* FCM's own code when it gave one, else the RPC status */
	if (*code == '\0') {
		code = status;
	}
	snprintf(detail, sizeof(detail), "%s%s%s", code, *code && *message ? ": " : "", message);
	res->retry_after_ms = -1;
	if (st >= 200 && st <= 299) {
		pg_push_result_set(res, PG_PUSH_DELIVERED, "", "");
	} else if (strcmp(code, "UNREGISTERED") == 0) {
		pg_push_result_set(res, PG_PUSH_REMOVE_DEVICE, "unregistered", detail);
	} else if (strcmp(code, "INVALID_ARGUMENT") == 0) {
		/* only an argument FCM names as the registration token condemns the device */
		if (contains_nocase(message, "registration token")) {
			pg_push_result_set(res, PG_PUSH_REMOVE_DEVICE, "invalid_token", detail);
		} else {
			pg_push_result_set(res, PG_PUSH_FAILED, "bad_request", detail);
		}
	} else if (strcmp(code, "SENDER_ID_MISMATCH") == 0) {
		pg_push_result_set(res, PG_PUSH_REMOVE_DEVICE, "sender_id_mismatch", detail);
	} else if (strcmp(code, "QUOTA_EXCEEDED") == 0 || st == 429) {
		pg_push_result_set(res, PG_PUSH_RETRY, "http_429", detail);
		res->retry_after_ms = pg_push_retry_after_ms(resp->retry_after, pg_push_wall_ms());
	} else if (strcmp(code, "UNAVAILABLE") == 0 || strcmp(code, "INTERNAL") == 0 ||
	           (st >= 500 && st <= 599)) {
		pg_push_result_set(res, PG_PUSH_RETRY, "http_5xx", detail);
		res->retry_after_ms = pg_push_retry_after_ms(resp->retry_after, pg_push_wall_ms());
	} else if (st == 401 || strcmp(code, "UNAUTHENTICATED") == 0 ||
	           strcmp(code, "THIRD_PARTY_AUTH_ERROR") == 0) {
		/* a new access token and one resend; the result stands if that fails too */
		pg_push_result_set(res, PG_PUSH_FAILED, "auth", detail);
		verdict = PG_PUSH_VERDICT_REAUTHORIZE;
	} else if (st == 403 || strcmp(code, "PERMISSION_DENIED") == 0) {
		pg_push_result_set(res, PG_PUSH_FAILED, "auth", detail);
	} else {
		pg_push_result_set(res, PG_PUSH_FAILED, "bad_request", detail);
	}
	cJSON_Delete(json);
	return verdict;
}

const struct pg_push_provider_ops pg_push_fcm = {
    .name = "fcm",
    .platform = PG_PUSH_FCM,
    .enabled = fcm_enabled,
    .create = fcm_create,
    .destroy = fcm_destroy,
    .authorize = fcm_authorize,
    .build = fcm_build,
    .classify = fcm_classify,
};
