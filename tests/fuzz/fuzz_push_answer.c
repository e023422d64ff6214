/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: what a push provider answers (broker/push). A provider
 * is a network peer, so its answers are hostile input: the status, the
 * Retry-After header and the body go to every provider's classify()
 * (APNs, FCM, Huawei Push Kit, Xiaomi MiPush, webhook), to
 * pg_push_oauth_parse (a token endpoint's answer, FCM's and Huawei's) and
 * to pg_push_retry_after_ms (provider.c).
 *
 * Input: byte 0 chooses what reads the answer (low 3 bits: 0 apns, 1 fcm,
 * 2 huawei, 3 xiaomi, 4 webhook, 5 pg_push_oauth_parse, 6
 * pg_push_retry_after_ms, 7 all five providers; bit 3: the job's device
 * registered no app). Bytes 1-2 are the HTTP status, big-endian: taken as
 * is when it is in 100..599, else mapped into that range. Then the
 * Retry-After value up to the first NUL (an empty value: no header), and
 * after that NUL the body; an input without a NUL has no Retry-After and
 * the rest is all body. The body is copied into a buffer of its own with a
 * NUL after it, as the worker hands it over (struct pg_push_response).
 *
 * Each provider's state is created once, on the first input, with keys
 * generated then (an EC P-256 .p8 for APNs, an RSA service account for
 * FCM) in a temporary directory that is removed once they are read. There
 * is no network I/O: APNs' authorize() only signs its JWT locally and is
 * called once; FCM's and Huawei's would fetch a token and are never called
 * (their classify() does not need one).
 *
 * Checks, beyond memory safety, on every classify() (either verdict): the
 * outcome is one of the four; reason is NUL-terminated, [a-z0-9_]{0,31}
 * (it becomes a $SYS topic leaf) and empty only for DELIVERED; detail is
 * NUL-terminated and has no control characters (it goes into one log
 * line); retry_after_ms is -1 or in [0, one week], and -1 unless the
 * outcome is RETRY and a Retry-After came; 2xx is DELIVERED for APNs, FCM
 * and webhook; REAUTHORIZE comes with FAILED "auth", only on 401 or 403,
 * or Huawei's 80200003, or FCM's own UNAUTHENTICATED or
 * THIRD_PARTY_AUTH_ERROR code (FCM reads its code before the status,
 * docs/push.md), and never from Xiaomi or the webhook. pg_push_oauth_parse
 * keeps the previous token on failure, and on success holds a visible-
 * ASCII token that is fresh now and renewed before it expires, within a
 * year; its error never quotes a 2xx body that has an access_token (a
 * secret in the log). pg_push_retry_after_ms gives -1 or [0, one week],
 * whole seconds for delta-seconds, and a date it read formats back to a
 * date it reads the same.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cjson/cJSON.h>

#include "fuzz_check.h"
#include "job.h"
#include "oauth.h"
#include "provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WEEK_MS (7 * 86400 * 1000LL)
#define YEAR_MS (365 * 86400 * 1000LL)
/* 2023-11-14T22:13:20Z, as FUZZ_NOW_S of fuzz_keys.h */
#define NOW_MS 1700000000000LL
#define JOB_TOKEN "a1b2c3d4e5f6"

enum { T_APNS, T_FCM, T_HUAWEI, T_XIAOMI, T_WEBHOOK, T_OAUTH, T_RETRY_AFTER, T_ALL };

static const struct pg_push_provider_ops *const providers[] = {
    [T_APNS] = &pg_push_apns,     [T_FCM] = &pg_push_fcm,         [T_HUAWEI] = &pg_push_huawei,
    [T_XIAOMI] = &pg_push_xiaomi, [T_WEBHOOK] = &pg_push_webhook,
};
static void *states[T_WEBHOOK + 1];

/* ---- the providers' credentials, once ---- */

static char tmpdir[4096], key_path[4200], account_path[4200];

static void remove_tmpdir(void)
{
	if (tmpdir[0] != '\0') {
		unlink(key_path);
		unlink(account_path);
		rmdir(tmpdir);
		tmpdir[0] = '\0';
	}
}

static char *pem_of(EVP_PKEY *pkey)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *mem, *pem;
	long len;

	FUZZ_CHECK(bio != NULL);
	FUZZ_CHECK(PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) == 1);
	len = BIO_get_mem_data(bio, &mem);
	FUZZ_CHECK(len > 0 && (pem = malloc((size_t)len + 1)) != NULL);
	memcpy(pem, mem, (size_t)len);
	pem[len] = '\0';
	BIO_free(bio);
	return pem;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	FUZZ_CHECK(f != NULL);
	FUZZ_CHECK(fputs(text, f) >= 0);
	FUZZ_CHECK(fclose(f) == 0);
}

static void init_providers(void)
{
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	struct pg_push_config cfg;
	cJSON *account = cJSON_CreateObject();
	char err[512] = "", *pem, *text;
	size_t i;

	FUZZ_CHECK(ec != NULL && rsa != NULL && account != NULL);
	fuzz_tmpdir_new(tmpdir, sizeof(tmpdir), "push-answer");
	atexit(remove_tmpdir);
	snprintf(key_path, sizeof(key_path), "%s/AuthKey_ABC123DEFG.p8", tmpdir);
	snprintf(account_path, sizeof(account_path), "%s/service-account.json", tmpdir);
	pem = pem_of(ec);
	write_file(key_path, pem);
	free(pem);
	pem = pem_of(rsa);
	cJSON_AddStringToObject(account, "type", "service_account");
	cJSON_AddStringToObject(account, "project_id", "pigeon-fuzz");
	cJSON_AddStringToObject(account, "private_key_id", "f00dcafe");
	cJSON_AddStringToObject(account, "private_key", pem);
	cJSON_AddStringToObject(account, "client_email",
	                        "push@pigeon-fuzz.iam.gserviceaccount.com");
	/* never fetched: FCM's authorize() is not called */
	cJSON_AddStringToObject(account, "token_uri", "https://oauth2.googleapis.com/token");
	text = cJSON_Print(account);
	FUZZ_CHECK(text != NULL);
	write_file(account_path, text);
	free(text);
	free(pem);
	cJSON_Delete(account);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(rsa);

	memset(&cfg, 0, sizeof(cfg));
	cfg.request_timeout_ms = 10000;
	cfg.connect_timeout_ms = 5000;
	cfg.apns_key_file = key_path;
	cfg.apns_key_id = "ABC123DEFG";
	cfg.apns_team_id = "TEAM123456";
	cfg.apns_topic = "com.example.default";
	cfg.fcm_service_account_file = account_path;
	cfg.huawei_app_id = "10086";
	cfg.huawei_client_secret = "s+cret&=";
	cfg.xiaomi_app_secret = "mi-secret==";
	cfg.webhook_url = "https://hooks.example.com/push";
	cfg.webhook_secret = "Jefe";
	for (i = 0; i < sizeof(providers) / sizeof(providers[0]); i++) {
		FUZZ_CHECK(providers[i]->enabled(&cfg));
		states[i] = providers[i]->create(&cfg, err, sizeof(err));
		if (states[i] == NULL) {
			fprintf(stderr, "fuzz_push_answer: %s: %s\n", providers[i]->name, err);
		}
		FUZZ_CHECK(states[i] != NULL);
	}
	/* local signing only: APNs' JWT, as the worker makes it before sending */
	FUZZ_CHECK(pg_push_apns.authorize(states[T_APNS], false, NOW_MS, err, sizeof(err)) == 0);
	remove_tmpdir();
}

/* ---- checks ---- */

static bool leaf_ok(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);

	if (n == cap) {
		return false; /* not NUL-terminated */
	}
	for (; *s; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) {
			return false;
		}
	}
	return true;
}

static bool str_is(const cJSON *item, const char *s)
{
	return cJSON_IsString(item) && strcmp(item->valuestring, s) == 0;
}

/* True if FCM's answer carries UNAUTHENTICATED or THIRD_PARTY_AUTH_ERROR as
 * its RPC status or as an error code of a detail (whichever FCM reads). */
static bool fcm_auth_code(const cJSON *json)
{
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(json, "error"), *d;

	if (str_is(cJSON_GetObjectItemCaseSensitive(error, "status"), "UNAUTHENTICATED") ||
	    str_is(cJSON_GetObjectItemCaseSensitive(error, "status"), "THIRD_PARTY_AUTH_ERROR")) {
		return true;
	}
	cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(error, "details"))
	{
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(d, "errorCode");
		if (str_is(code, "UNAUTHENTICATED") || str_is(code, "THIRD_PARTY_AUTH_ERROR")) {
			return true;
		}
	}
	return false;
}

/* True if Huawei's answer has the code 80200003 (a string, or a number
 * that prints as it). */
static bool huawei_expired_code(const cJSON *json)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(json, "code");

	return str_is(c, "80200003") ||
	       (cJSON_IsNumber(c) && c->valuedouble > 80200002.4 && c->valuedouble < 80200003.6);
}

static void check_classify(int which, bool no_app, long status, const char *retry_after,
                           const char *body, size_t body_len)
{
	const struct pg_push_provider_ops *ops = providers[which];
	struct pg_push_response resp;
	struct pg_push_result res;
	struct pg_push_job job;
	enum pg_push_verdict v;
	size_t i, n;

	memset(&job, 0, sizeof(job));
	job.id = 7;
	job.platform = ops->platform;
	strcpy(job.uid, "alice");
	strcpy(job.device, "phone");
	strcpy(job.token, JOB_TOKEN);
	strcpy(job.app, no_app ? "" : "com.example.chat");
	job.seq = 9007199254740993ULL;
	strcpy(job.from, "bob");
	job.kind = PG_PUSH_KIND_CHAT;
	job.count = 1;
	strcpy(job.body, "New message");
	job.attempt = 1;

	memset(&resp, 0, sizeof(resp));
	resp.error = "";
	resp.status = status;
	resp.body = body;
	resp.body_len = body_len;
	resp.retry_after = retry_after;
	/* garbage everywhere: whatever classify does not fill shows */
	memset(&res, 0xab, sizeof(res));

	v = ops->classify(states[which], &job, &resp, &res);
	FUZZ_CHECK(v == PG_PUSH_VERDICT_DONE || v == PG_PUSH_VERDICT_REAUTHORIZE);
	FUZZ_CHECK(res.outcome == PG_PUSH_DELIVERED || res.outcome == PG_PUSH_REMOVE_DEVICE ||
	           res.outcome == PG_PUSH_RETRY || res.outcome == PG_PUSH_FAILED);
	FUZZ_CHECK(leaf_ok(res.reason, sizeof(res.reason)));
	FUZZ_CHECK(res.reason[0] != '\0' || res.outcome == PG_PUSH_DELIVERED);
	n = strnlen(res.detail, sizeof(res.detail));
	FUZZ_CHECK(n < sizeof(res.detail));
	for (i = 0; i < n; i++) {
		FUZZ_CHECK((unsigned char)res.detail[i] >= 0x20 && res.detail[i] != 0x7f);
	}
	FUZZ_CHECK(res.retry_after_ms == -1 ||
	           (res.retry_after_ms >= 0 && res.retry_after_ms <= WEEK_MS));
	if (res.outcome != PG_PUSH_RETRY || retry_after == NULL) {
		FUZZ_CHECK(res.retry_after_ms == -1);
	}
	if (status >= 200 && status <= 299 &&
	    (which == T_APNS || which == T_FCM || which == T_WEBHOOK)) {
		FUZZ_CHECK(res.outcome == PG_PUSH_DELIVERED && v == PG_PUSH_VERDICT_DONE);
	}
	if (v == PG_PUSH_VERDICT_REAUTHORIZE) {
		/* the result stands if the resend is refused too (worker.c) */
		FUZZ_CHECK(res.outcome == PG_PUSH_FAILED && strcmp(res.reason, "auth") == 0);
		FUZZ_CHECK(which != T_XIAOMI && which != T_WEBHOOK);
		if (status != 401 && status != 403) {
			cJSON *json = cJSON_ParseWithLength(body, body_len);
			FUZZ_CHECK((which == T_HUAWEI && huawei_expired_code(json)) ||
			           (which == T_FCM && fcm_auth_code(json)));
			cJSON_Delete(json);
		}
	}
	/* Apple's and the webhook's own statuses mean what they say */
	if (which == T_APNS || which == T_WEBHOOK) {
		if (status == 410) {
			FUZZ_CHECK(res.outcome == PG_PUSH_REMOVE_DEVICE);
		}
		if (status == 429 || (status >= 500 && status <= 599)) {
			FUZZ_CHECK(res.outcome == PG_PUSH_RETRY);
		}
	}
}

static void check_oauth(long status, const char *body, size_t body_len)
{
	static const char prev[] = "previous-token";
	struct pg_push_oauth o;
	char err[256];
	int rc;

	memset(&o, 0, sizeof(o));
	o.access_token = strdup(prev);
	FUZZ_CHECK(o.access_token != NULL);
	o.expires_at_ms = NOW_MS + 1000;
	o.renew_at_ms = NOW_MS + 500;
	memset(err, 'x', sizeof(err));
	rc = pg_push_oauth_parse(&o, status, body, body_len, NOW_MS, err, sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == -1);
	if (rc == 0) {
		const char *p = o.access_token;
		FUZZ_CHECK(status >= 200 && status <= 299);
		FUZZ_CHECK(p != NULL && *p != '\0');
		for (; *p; p++) {
			FUZZ_CHECK((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f);
		}
		FUZZ_CHECK(o.expires_at_ms > NOW_MS && o.expires_at_ms <= NOW_MS + YEAR_MS);
		FUZZ_CHECK(o.renew_at_ms > NOW_MS && o.renew_at_ms < o.expires_at_ms);
		FUZZ_CHECK(o.renew_at_ms >= o.expires_at_ms - 60000);
		FUZZ_CHECK(pg_push_oauth_fresh(&o, NOW_MS));
		FUZZ_CHECK(!pg_push_oauth_fresh(&o, o.expires_at_ms));
	} else {
		FUZZ_CHECK(strnlen(err, sizeof(err)) < sizeof(err));
		FUZZ_CHECK(o.access_token != NULL && strcmp(o.access_token, prev) == 0);
		FUZZ_CHECK(o.expires_at_ms == NOW_MS + 1000 && o.renew_at_ms == NOW_MS + 500);
		if (status >= 200 && status <= 299) {
			/* a 2xx answer with a token string: nothing of it is quoted */
			cJSON *json = cJSON_ParseWithLength(body, body_len);
			if (cJSON_IsString(
			        cJSON_GetObjectItemCaseSensitive(json, "access_token"))) {
				FUZZ_CHECK(strchr(err, ':') == NULL);
			}
			cJSON_Delete(json);
		}
	}
	pg_push_oauth_clear(&o);
	FUZZ_CHECK(o.access_token == NULL);
}

/* t (seconds since the epoch) as an IMF-fixdate, by hand (strftime follows the locale). */
static void imf_fixdate(char *out, size_t cap, time_t t)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;

	FUZZ_CHECK(gmtime_r(&t, &tm) != NULL);
	snprintf(out, cap, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
	         months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void check_retry_after(const char *value, int64_t now_ms)
{
	int64_t ms = pg_push_retry_after_ms(value, now_ms);
	const char *p = value;

	FUZZ_CHECK(ms == -1 || (ms >= 0 && ms <= WEEK_MS));
	if (ms < 0) {
		return;
	}
	FUZZ_CHECK(value != NULL);
	while (*p == ' ' || *p == '\t') {
		p++;
	}
	if (*p >= '0' && *p <= '9') {
		/* delta-seconds */
		FUZZ_CHECK(ms % 1000 == 0);
		if (strspn(p, "0123456789") <= 6 && p[strspn(p, "0123456789")] == '\0') {
			long long s = atoll(p);
			FUZZ_CHECK(ms == (s < 7 * 86400 ? s : 7 * 86400) * 1000);
		}
	} else if (ms > 0 && ms < WEEK_MS) {
		/* a date within the week: it formats back to one read the same */
		char again[64];
		imf_fixdate(again, sizeof(again), (time_t)((now_ms + ms) / 1000));
		FUZZ_CHECK(pg_push_retry_after_ms(again, now_ms) == ms);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	const uint8_t *rest, *nul;
	size_t rest_len, body_len;
	char *retry_after = NULL, *body;
	unsigned which, code;
	bool no_app;
	long status;
	int i;

	if (!ready) {
		init_providers();
		ready = true;
	}
	if (size < 3) {
		return 0;
	}
	which = data[0] & 7;
	no_app = (data[0] & 8) != 0;
	code = (unsigned)data[1] << 8 | data[2];
	status = code >= 100 && code <= 599 ? (long)code : 100 + (long)(code % 500);
	rest = data + 3;
	rest_len = size - 3;
	nul = memchr(rest, '\0', rest_len);
	if (nul != NULL) {
		size_t n = (size_t)(nul - rest);
		if (n > 0) {
			retry_after = malloc(n + 1);
			FUZZ_CHECK(retry_after != NULL);
			memcpy(retry_after, rest, n);
			retry_after[n] = '\0';
		}
		rest = nul + 1;
		rest_len -= n + 1;
	}
	/* its own allocation, so that ASan sees any read past body_len + 1 */
	body_len = rest_len;
	body = malloc(body_len + 1);
	FUZZ_CHECK(body != NULL);
	if (body_len > 0) {
		memcpy(body, rest, body_len);
	}
	body[body_len] = '\0';

	switch (which) {
	case T_OAUTH:
		check_oauth(status, body, body_len);
		break;
	case T_RETRY_AFTER:
		check_retry_after(retry_after, pg_push_wall_ms());
		check_retry_after(retry_after, NOW_MS);
		check_retry_after(retry_after, 0);
		check_retry_after(body, pg_push_wall_ms());
		check_retry_after(body, NOW_MS);
		break;
	case T_ALL:
		for (i = T_APNS; i <= T_WEBHOOK; i++) {
			check_classify(i, no_app, status, retry_after, body, body_len);
		}
		break;
	default:
		check_classify((int)which, no_app, status, retry_after, body, body_len);
		break;
	}
	free(retry_after);
	free(body);
	return 0;
}
