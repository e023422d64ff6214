/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OAuth2 access tokens (oauth.h). The renewal margin is min(60 s, 10% of
 * the lifetime): a token is never used in its last minute, when a request
 * could outlive it in flight, and a short-lived token (a test server's
 * few seconds) is still used for most of its life instead of not at all.
 * An access token goes into an HTTP header, so anything but visible ASCII
 * in it is refused rather than sent.
 */
#include "oauth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <cjson/cJSON.h>

#include "utf8.h"

/* Bytes of an error answer quoted in err. */
#define OAUTH_EXCERPT 160
/* Lifetimes beyond a year are read as a year (no overflow, no forever). */
#define OAUTH_TTL_MAX_S (365LL * 86400)

void pg_push_oauth_clear(struct pg_push_oauth *o)
{
	if (o->access_token) {
		OPENSSL_cleanse(o->access_token, strlen(o->access_token));
		free(o->access_token);
	}
	memset(o, 0, sizeof(*o));
}

bool pg_push_oauth_fresh(const struct pg_push_oauth *o, int64_t now_ms)
{
	return o->access_token != NULL && now_ms < o->renew_at_ms;
}

/* body[0..len) quoted for one log line: control characters as spaces, cut. */
static void oauth_excerpt(char *out, size_t cap, const char *body, size_t len)
{
	size_t max = OAUTH_EXCERPT < cap ? OAUTH_EXCERPT : cap - 1;
	size_t i, n = pg_push_utf8_prefix_bytes(body, len, max);

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)body[i];
		out[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	out[n] = '\0';
}

static bool oauth_token_ok(const char *s)
{
	if (*s == '\0') {
		return false;
	}
	for (; *s; s++) {
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f) {
			return false;
		}
	}
	return true;
}

int pg_push_oauth_parse(struct pg_push_oauth *o, long status, const char *body, size_t len,
                        int64_t now_ms, char *err, size_t errlen)
{
	char excerpt[OAUTH_EXCERPT + 1];
	cJSON *json = NULL, *tok, *exp;
	long long ttl_s = PG_PUSH_OAUTH_DEFAULT_TTL_S;
	int64_t margin_ms;
	char *copy;
	int rc = -1;

	oauth_excerpt(excerpt, sizeof(excerpt), body ? body : "", body ? len : 0);
	if (status < 200 || status > 299) {
		snprintf(err, errlen, "token endpoint answered HTTP %ld: %s", status, excerpt);
		return -1;
	}
	json = body ? cJSON_ParseWithLength(body, len) : NULL;
	tok = cJSON_GetObjectItemCaseSensitive(json, "access_token");
	if (!cJSON_IsString(tok) || !oauth_token_ok(tok->valuestring)) {
		/* no excerpt when a token is there: it would put a secret in the log */
		snprintf(err, errlen,
		         "token endpoint answered HTTP %ld without a usable access_token%s%s",
		         status, cJSON_IsString(tok) ? "" : ": ",
		         cJSON_IsString(tok) ? "" : excerpt);
		goto out;
	}
	exp = cJSON_GetObjectItemCaseSensitive(json, "expires_in");
	if (cJSON_IsNumber(exp)) {
		/* a double outside long long's range must not be converted (UB) */
		ttl_s = exp->valuedouble >= (double)OAUTH_TTL_MAX_S ? OAUTH_TTL_MAX_S
		        : exp->valuedouble > 0                      ? (long long)exp->valuedouble
		                                                    : -1;
	} else if (cJSON_IsString(exp)) {
		char *end;
		ttl_s = strtoll(exp->valuestring, &end, 10);
		if (end == exp->valuestring || *end != '\0') {
			ttl_s = -1;
		} else if (ttl_s > OAUTH_TTL_MAX_S) {
			ttl_s = OAUTH_TTL_MAX_S;
		}
	} else if (exp != NULL && !cJSON_IsNull(exp)) {
		ttl_s = -1;
	}
	if (ttl_s <= 0) {
		snprintf(err, errlen, "token endpoint answered an unusable expires_in");
		goto out;
	}
	copy = strdup(tok->valuestring);
	if (copy == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	pg_push_oauth_clear(o);
	o->access_token = copy;
	o->expires_at_ms = now_ms + ttl_s * 1000;
	margin_ms = ttl_s * 100; /* 10% of the lifetime, in ms */
	if (margin_ms > 60000) {
		margin_ms = 60000;
	}
	o->renew_at_ms = o->expires_at_ms - margin_ms;
	rc = 0;
out:
	/* the answer held the token: scrub cJSON's copy before it is freed */
	if (cJSON_IsString(tok)) {
		OPENSSL_cleanse(tok->valuestring, strlen(tok->valuestring));
	}
	cJSON_Delete(json);
	return rc;
}

int pg_push_oauth_fetch(struct pg_push_oauth *o, const struct pg_push_transport *t, const char *url,
                        const char *form, int64_t now_ms, char *err, size_t errlen)
{
	struct pg_push_http_answer ans;
	char why[256];
	int rc;

	if (pg_push_http_post(t, url, "application/x-www-form-urlencoded", form, strlen(form),
	                      &ans) != 0) {
		snprintf(err, errlen, "token endpoint: %s", ans.error);
		return -1;
	}
	rc = pg_push_oauth_parse(o, ans.status, ans.body, ans.body_len, now_ms, why, sizeof(why));
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", url, why);
	}
	if (ans.body) {
		OPENSSL_cleanse(ans.body, ans.body_len);
	}
	free(ans.body);
	return rc;
}
