/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The push providers (broker/push/provider_*.c), one section each: what
 * enables them and what create() refuses; the request build() makes from a
 * job (URL, headers, body parsed as JSON or as a form, exact integers,
 * data values as strings where the provider wants strings, collapse ids,
 * size limits and UTF-8-safe shortening); and the outcome classify()
 * gives each kind of answer (success, each removal, reauthorization,
 * throttling with Retry-After, server errors, the rest).
 *
 * APNs signs its JWT locally, so authorize() is tested for real (reuse,
 * 50-minute renewal, the 20-minute floor, renewal after
 * ExpiredProviderToken). FCM and Huawei fetch an OAuth2 token: a tiny
 * HTTP/1.1 server on 127.0.0.1 in a thread of this test answers, so the
 * form and the RS256 assertion are checked as a token endpoint sees them.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cjson/cJSON.h>

#include "b64url.h"
#include "check.h"
#include "jwt_sign.h"
#include "pem.h"
#include "provider.h"
#include "utf8.h"

#define MIN_MS (60 * 1000LL)

static EVP_PKEY *ec_key, *rsa_key;
static char tmpdir[] = "/tmp/pigeon-prov-XXXXXX";
static char apns_key_path[128], fcm_account_path[128], rsa_as_p8_path[128];

/* ---- a token endpoint on 127.0.0.1 ---- */

static struct {
	int fd, port;
	pthread_t thread;
	pthread_mutex_t mu;
	int stop;
	/* what to answer */
	int status;
	char answer[1024];
	/* what came */
	int requests;
	char path[256];
	char body[8192];
} fake = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *fake_serve(void *ud)
{
	(void)ud;
	for (;;) {
		char buf[16384], reply[2048];
		size_t used = 0, need = 0;
		char *end = NULL, *cl;
		int c = accept(fake.fd, NULL, NULL);
		ssize_t n;

		if (c < 0) {
			continue;
		}
		pthread_mutex_lock(&fake.mu);
		if (fake.stop) {
			pthread_mutex_unlock(&fake.mu);
			close(c);
			return NULL;
		}
		pthread_mutex_unlock(&fake.mu);
		while (used < sizeof(buf) - 1 &&
		       (n = read(c, buf + used, sizeof(buf) - 1 - used)) > 0) {
			used += (size_t)n;
			buf[used] = '\0';
			if (end == NULL && (end = strstr(buf, "\r\n\r\n")) != NULL) {
				cl = strstr(buf, "\r\nContent-Length:"); /* curl's spelling */
				need =
				    (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 17, NULL, 10) : 0);
			}
			if (end != NULL && used >= need) {
				break;
			}
		}
		buf[used] = '\0';
		pthread_mutex_lock(&fake.mu);
		fake.requests++;
		sscanf(buf, "POST %255s", fake.path);
		snprintf(fake.body, sizeof(fake.body), "%s", end ? end + 4 : "");
		snprintf(
		    reply, sizeof(reply),
		    "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		    "Connection: close\r\n\r\n%s",
		    fake.status, strlen(fake.answer), fake.answer);
		pthread_mutex_unlock(&fake.mu);
		if (write(c, reply, strlen(reply)) < 0) {
			perror("fake write");
		}
		close(c);
	}
}

static void fake_start(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fake.fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fake.fd < 0 || bind(fake.fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(fake.fd, 8) != 0 || getsockname(fake.fd, (struct sockaddr *)&a, &alen) != 0) {
		perror("fake server");
		abort();
	}
	fake.port = ntohs(a.sin_port);
	pthread_create(&fake.thread, NULL, fake_serve, NULL);
}

static void fake_stop(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	int c = socket(AF_INET, SOCK_STREAM, 0);

	pthread_mutex_lock(&fake.mu);
	fake.stop = 1;
	pthread_mutex_unlock(&fake.mu);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)fake.port);
	if (connect(c, (struct sockaddr *)&a, sizeof(a)) != 0) {
		perror("fake stop");
	}
	close(c);
	pthread_join(fake.thread, NULL);
	close(fake.fd);
}

static void fake_answer(int status, const char *answer)
{
	pthread_mutex_lock(&fake.mu);
	fake.status = status;
	snprintf(fake.answer, sizeof(fake.answer), "%s", answer);
	pthread_mutex_unlock(&fake.mu);
}

static int fake_requests(void)
{
	int n;

	pthread_mutex_lock(&fake.mu);
	n = fake.requests;
	pthread_mutex_unlock(&fake.mu);
	return n;
}

/* ---- helpers ---- */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
		perror(path);
		abort();
	}
}

static struct pg_push_config base_config(void)
{
	struct pg_push_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.request_timeout_ms = 5000;
	cfg.connect_timeout_ms = 2000;
	return cfg;
}

static struct pg_push_job make_job(enum pg_push_platform platform, enum pg_push_kind kind)
{
	struct pg_push_job job;

	memset(&job, 0, sizeof(job));
	job.id = 7;
	job.platform = platform;
	strcpy(job.uid, "alice");
	strcpy(job.device, "phone");
	strcpy(job.token, "a1b2c3d4e5f6");
	strcpy(job.app, "com.example.chat");
	/* above 2^53: a double would round it */
	job.seq = 9007199254740993ULL;
	strcpy(job.from, "bob");
	job.kind = kind;
	if (kind == PG_PUSH_KIND_NOTIFY) {
		strcpy(job.type, "order.shipped");
	}
	job.count = 3;
	job.badge = 12;
	strcpy(job.title, "Bob");
	strcpy(job.body, "Hello \xf0\x9f\x91\x8b");
	job.attempt = 1;
	return job;
}

/* The value of header name (case ignored) in req, or NULL. */
static const char *header(const struct pg_push_request *req, const char *name)
{
	size_t i, n = strlen(name);

	for (i = 0; i < req->nheaders; i++) {
		if (strncasecmp(req->headers[i], name, n) == 0 && req->headers[i][n] == ':') {
			return req->headers[i] + n + 2;
		}
	}
	return NULL;
}

static cJSON *at(cJSON *json, const char *path)
{
	char buf[256], *tok, *save = NULL;

	snprintf(buf, sizeof(buf), "%s", path);
	for (tok = strtok_r(buf, ".", &save); tok && json; tok = strtok_r(NULL, ".", &save)) {
		json = cJSON_GetObjectItemCaseSensitive(json, tok);
	}
	return json;
}

static const char *str_at(cJSON *json, const char *path)
{
	cJSON *v = at(json, path);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num_at(cJSON *json, const char *path)
{
	cJSON *v = at(json, path);

	return cJSON_IsNumber(v) ? v->valuedouble : -12345;
}

static struct pg_push_response answer(long status, const char *body, const char *retry_after)
{
	struct pg_push_response r;

	memset(&r, 0, sizeof(r));
	r.error = "";
	r.status = status;
	r.body = body;
	r.body_len = strlen(body);
	r.retry_after = retry_after;
	return r;
}

/* classify() of an answer: its verdict, the result in *res. */
static enum pg_push_verdict classify(const struct pg_push_provider_ops *ops, void *st,
                                     const struct pg_push_job *job, long status, const char *body,
                                     const char *retry_after, struct pg_push_result *res)
{
	struct pg_push_response r = answer(status, body, retry_after);

	memset(res, 0, sizeof(*res));
	res->retry_after_ms = 12345;
	return ops->classify(st, job, &r, res);
}

#define EXPECT_OUTCOME(ops, st, job, status, body, ra, outcome_, reason_)                          \
	do {                                                                                       \
		struct pg_push_result r_;                                                          \
		CHECK_EQ(classify(ops, st, job, status, body, ra, &r_), PG_PUSH_VERDICT_DONE);     \
		CHECK_EQ(r_.outcome, outcome_);                                                    \
		CHECK_STR(r_.reason, reason_);                                                     \
	} while (0)

/* The decoded parts of a compact JWS. */
static int jwt_decode(const char *jwt, cJSON **header_json, cJSON **claims, unsigned char *sig,
                      size_t *siglen, size_t *signed_len)
{
	const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	char h[512], c[1024];
	size_t n;

	if (d2 == NULL ||
	    pg_b64url_decode(jwt, (size_t)(d1 - jwt), (unsigned char *)h, sizeof(h) - 1, &n) != 0) {
		return -1;
	}
	h[n] = '\0';
	if (pg_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), (unsigned char *)c, sizeof(c) - 1,
	                     &n) != 0) {
		return -1;
	}
	c[n] = '\0';
	if (pg_b64url_decode(d2 + 1, strlen(d2 + 1), sig, 600, siglen) != 0) {
		return -1;
	}
	*header_json = cJSON_Parse(h);
	*claims = cJSON_Parse(c);
	*signed_len = (size_t)(d2 - jwt);
	return 0;
}

static int verify_es256(const char *jwt)
{
	cJSON *h = NULL, *c = NULL;
	unsigned char sig[600], *der = NULL;
	size_t siglen = 0, signed_len = 0;
	ECDSA_SIG *es = ECDSA_SIG_new();
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int derlen, ok = 0;

	if (jwt_decode(jwt, &h, &c, sig, &siglen, &signed_len) == 0 && siglen == 64 &&
	    ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL)) == 1 &&
	    (derlen = i2d_ECDSA_SIG(es, &der)) > 0) {
		ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, ec_key) == 1 &&
		     EVP_DigestVerify(ctx, der, (size_t)derlen, (const unsigned char *)jwt,
		                      signed_len) == 1;
	}
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(ctx);
	cJSON_Delete(h);
	cJSON_Delete(c);
	return ok;
}

/* Decodes an application/x-www-form-urlencoded value of name in form, malloc'd, or NULL. */
static char *form_value(const char *form, const char *name)
{
	size_t n = strlen(name);
	const char *p = form;

	while (p && *p) {
		if (strncmp(p, name, n) == 0 && p[n] == '=') {
			const char *v = p + n + 1;
			char *out = malloc(strlen(v) + 1), *o = out;
			for (; *v && *v != '&'; v++) {
				if (*v == '%' && v[1] && v[2]) {
					char hex[3] = {v[1], v[2], 0};
					*o++ = (char)strtol(hex, NULL, 16);
					v += 2;
				} else {
					*o++ = *v == '+' ? ' ' : *v;
				}
			}
			*o = '\0';
			return out;
		}
		p = strchr(p, '&');
		p = p ? p + 1 : NULL;
	}
	return NULL;
}

/* ================= APNs ================= */

static struct pg_push_config apns_config(void)
{
	struct pg_push_config cfg = base_config();

	cfg.apns_key_file = apns_key_path;
	cfg.apns_key_id = "ABC123DEFG";
	cfg.apns_team_id = "TEAM123456";
	return cfg;
}

static void test_apns_enabled_and_create_errors(void)
{
	struct pg_push_config cfg = base_config();
	char err[300] = "";

	CHECK(!pg_push_apns.enabled(&cfg));
	cfg = apns_config();
	CHECK(pg_push_apns.enabled(&cfg));
	cfg.apns_key_id = NULL;
	CHECK(pg_push_apns.create(&cfg, err, sizeof(err)) == NULL);
	CHECK_CONTAINS(err, "plugin_opt_apns_key_id is required with plugin_opt_apns_key_file");
	cfg = apns_config();
	cfg.apns_team_id = "";
	CHECK(pg_push_apns.create(&cfg, err, sizeof(err)) == NULL);
	CHECK_CONTAINS(err, "plugin_opt_apns_team_id");
	cfg = apns_config();
	cfg.apns_key_file = "/nonexistent/AuthKey.p8";
	CHECK(pg_push_apns.create(&cfg, err, sizeof(err)) == NULL);
	CHECK_CONTAINS(err, "plugin_opt_apns_key_file: /nonexistent/AuthKey.p8");
	cfg.apns_key_file = rsa_as_p8_path;
	CHECK(pg_push_apns.create(&cfg, err, sizeof(err)) == NULL);
	CHECK_CONTAINS(err, "P-256");
}

static void test_apns_build_request(void)
{
	struct pg_push_config cfg = apns_config();
	char err[300] = "";
	void *st = pg_push_apns.create(&cfg, err, sizeof(err));
	struct pg_push_job job = make_job(PG_PUSH_APNS, PG_PUSH_KIND_NOTIFY);
	struct pg_push_request req = {0};
	cJSON *json;
	const char *auth;

	CHECK(st != NULL);
	/* no provider token yet */
	CHECK_EQ(pg_push_apns.build(st, &job, &req, err, sizeof(err)), -1);
	CHECK_EQ(pg_push_apns.authorize(st, false, 1000, err, sizeof(err)), 0);
	job.expires_at_ms = 1800000000123LL;
	CHECK_EQ(pg_push_apns.build(st, &job, &req, err, sizeof(err)), 0);
	CHECK_STR(req.url, "https://api.push.apple.com/3/device/a1b2c3d4e5f6");
	CHECK_STR(header(&req, "apns-topic"), "com.example.chat");
	CHECK_STR(header(&req, "apns-push-type"), "alert");
	CHECK_STR(header(&req, "apns-priority"), "10");
	CHECK_STR(header(&req, "apns-expiration"), "1800000000");
	CHECK_STR(header(&req, "apns-collapse-id"), "order.shipped");
	CHECK_STR(header(&req, "content-type"), "application/json");
	auth = header(&req, "authorization");
	CHECK(auth != NULL && strncmp(auth, "bearer ", 7) == 0);
	CHECK(auth != NULL && verify_es256(auth + 7));
	CHECK_EQ(req.body_len, strlen(req.body));
	json = cJSON_ParseWithLength(req.body, req.body_len);
	CHECK(json != NULL);
	CHECK_STR(str_at(json, "aps.alert.title"), "Bob");
	CHECK_STR(str_at(json, "aps.alert.body"), "Hello \xf0\x9f\x91\x8b");
	CHECK_EQ(num_at(json, "aps.badge"), 12);
	CHECK(at(json, "aps.sound") == NULL);
	CHECK_STR(str_at(json, "from"), "bob");
	CHECK_STR(str_at(json, "kind"), "notify");
	CHECK_STR(str_at(json, "type"), "order.shipped");
	CHECK_EQ(num_at(json, "count"), 3);
	/* seq printed exactly, not through a double */
	CHECK_CONTAINS(req.body, "\"seq\":9007199254740993");
	cJSON_Delete(json);
	pg_push_request_clear(&req);

	/* CHAT: no collapse id; no title: no title key; sandbox URL; no expiry: 0 */
	job = make_job(PG_PUSH_APNS, PG_PUSH_KIND_CHAT);
	job.title[0] = '\0';
	job.sandbox = true;
	CHECK_EQ(pg_push_apns.build(st, &job, &req, err, sizeof(err)), 0);
	CHECK_STR(req.url, "https://api.sandbox.push.apple.com/3/device/a1b2c3d4e5f6");
	CHECK(header(&req, "apns-collapse-id") == NULL);
	CHECK_STR(header(&req, "apns-expiration"), "0");
	json = cJSON_ParseWithLength(req.body, req.body_len);
	CHECK(at(json, "aps.alert.title") == NULL);
	CHECK_STR(str_at(json, "kind"), "chat");
	CHECK_STR(str_at(json, "type"), "");
	cJSON_Delete(json);
	pg_push_request_clear(&req);

	/* no app: no topic at all, then the configured one */
	job.app[0] = '\0';
	CHECK_EQ(pg_push_apns.build(st, &job, &req, err, sizeof(err)), -1);
	CHECK_CONTAINS(err, "no apns-topic");
	CHECK(req.url == NULL && req.nheaders == 0);
	pg_push_apns.destroy(st);
	cfg.apns_topic = "com.example.default";
	cfg.apns_url = "http://127.0.0.1:9/";
	cfg.apns_sandbox_url = "http://127.0.0.1:10";
	st = pg_push_apns.create(&cfg, err, sizeof(err));
	CHECK_EQ(pg_push_apns.authorize(st, false, 1000, err, sizeof(err)), 0);
	CHECK_EQ(pg_push_apns.build(st, &job, &req, err, sizeof(err)), 0);
	CHECK_STR(header(&req, "apns-topic"), "com.example.default");
	CHECK_STR(req.url, "http://127.0.0.1:10/3/device/a1b2c3d4e5f6");
	pg_push_request_clear(&req);
	job.sandbox = false;
	/* a token is a path segment: anything odd in it is escaped */
	strcpy(job.token, "ab/../cd?x");
	CHECK_EQ(pg_push_apns.build(st, &job, &req, err, sizeof(err)), 0);
	CHECK_STR(req.url, "http://127.0.0.1:9/3/device/ab%2F..%2Fcd%3Fx");
	pg_push_request_clear(&req);
	pg_push_apns.destroy(st);
}

static void test_apns_payload_limit(void)
{
	struct pg_push_config cfg = apns_config();
	char err[300] = "";
	void *st = pg_push_apns.create(&cfg, err, sizeof(err));
	struct pg_push_job job = make_job(PG_PUSH_APNS, PG_PUSH_KIND_NOTIFY);
	struct pg_push_request req = {0};
	char body[PG_PUSH_BODY_MAX + 1];
	const char *b;
	cJSON *json;
	size_t i;

	CHECK_EQ(pg_push_apns.authorize(st, false, 1000, err, sizeof(err)), 0);
	/* 600 control characters (6 bytes each in JSON) then 141 euro signs:
	 * 4000+ bytes of payload, cut inside the euro signs */
	memset(body, 1, 600);
	for (i = 0; i < 141; i++) {
		memcpy(body + 600 + 3 * i, "\xe2\x82\xac", 3);
	}
	body[600 + 3 * 141] = '\0';
	strcpy(job.body, body);
	memset(job.title, 2, PG_PUSH_TITLE_MAX);
	job.title[PG_PUSH_TITLE_MAX] = '\0';
	CHECK_EQ(pg_push_apns.build(st, &job, &req, err, sizeof(err)), 0);
	CHECK(req.body_len <= 4096);
	CHECK(req.body_len > 4080);
	CHECK(pg_push_utf8_valid(req.body, req.body_len));
	json = cJSON_ParseWithLength(req.body, req.body_len);
	b = str_at(json, "aps.alert.body");
	CHECK(b != NULL && strlen(b) < strlen(body) && strncmp(b, body, strlen(b)) == 0);
	CHECK(b != NULL && (strlen(b) - 600) % 3 == 0);
	/* the title is kept whole while the body can give */
	CHECK_EQ(strlen(str_at(json, "aps.alert.title")), PG_PUSH_TITLE_MAX);
	cJSON_Delete(json);
	pg_push_request_clear(&req);
	pg_push_apns.destroy(st);
}

static void test_apns_jwt_reuse_and_renewal(void)
{
	struct pg_push_config cfg = apns_config();
	char err[300] = "", first[512], *tok;
	void *st = pg_push_apns.create(&cfg, err, sizeof(err));
	struct pg_push_job job = make_job(PG_PUSH_APNS, PG_PUSH_KIND_CHAT);
	struct pg_push_request req = {0};
	struct pg_push_result res;
	int64_t t0 = 5 * MIN_MS;
	cJSON *h = NULL, *c = NULL;
	unsigned char sig[600];
	size_t siglen, signed_len;

#define CURRENT_JWT(buf)                                                                           \
	do {                                                                                       \
		CHECK_EQ(pg_push_apns.build(st, &job, &req, err, sizeof(err)), 0);                 \
		snprintf(buf, sizeof(buf), "%s", header(&req, "authorization") + 7);               \
		pg_push_request_clear(&req);                                                       \
	} while (0)

	char now_jwt[512];
	CHECK_EQ(pg_push_apns.authorize(st, false, t0, err, sizeof(err)), 0);
	CURRENT_JWT(first);
	CHECK_EQ(jwt_decode(first, &h, &c, sig, &siglen, &signed_len), 0);
	CHECK_STR(str_at(h, "alg"), "ES256");
	CHECK_STR(str_at(h, "kid"), "ABC123DEFG");
	CHECK_STR(str_at(c, "iss"), "TEAM123456");
	CHECK(num_at(c, "iat") > 1.7e9);
	cJSON_Delete(h);
	cJSON_Delete(c);
	tok = first;
	/* reused for every request */
	CHECK_EQ(pg_push_apns.authorize(st, false, t0 + 49 * MIN_MS, err, sizeof(err)), 0);
	CURRENT_JWT(now_jwt);
	CHECK_STR(now_jwt, tok);
	/* force under 20 minutes without an expiry refusal: kept (Apple would
	 * refuse a faster renewal with TooManyProviderTokenUpdates) */
	CHECK_EQ(pg_push_apns.authorize(st, true, t0 + 19 * MIN_MS, err, sizeof(err)), 0);
	CURRENT_JWT(now_jwt);
	CHECK_STR(now_jwt, tok);
	/* 50 minutes: renewed */
	CHECK_EQ(pg_push_apns.authorize(st, false, t0 + 50 * MIN_MS, err, sizeof(err)), 0);
	CURRENT_JWT(now_jwt);
	CHECK(strcmp(now_jwt, first) != 0);
	CHECK(verify_es256(now_jwt));
	snprintf(first, sizeof(first), "%s", now_jwt); /* made at t0 + 50 min */
	/* Apple calls it expired: force renews at once */
	CHECK_EQ(classify(&pg_push_apns, st, &job, 403, "{\"reason\":\"ExpiredProviderToken\"}",
	                  NULL, &res),
	         PG_PUSH_VERDICT_REAUTHORIZE);
	CHECK_EQ(pg_push_apns.authorize(st, true, t0 + 51 * MIN_MS, err, sizeof(err)), 0);
	CURRENT_JWT(now_jwt);
	CHECK(strcmp(now_jwt, first) != 0);
	snprintf(first, sizeof(first), "%s", now_jwt); /* made at t0 + 51 min */
	/* and the refusal is forgotten with the old token */
	CHECK_EQ(pg_push_apns.authorize(st, true, t0 + 52 * MIN_MS, err, sizeof(err)), 0);
	CURRENT_JWT(now_jwt);
	CHECK_STR(now_jwt, first);
	/* force at 20 minutes or more: renewed */
	CHECK_EQ(pg_push_apns.authorize(st, true, t0 + 71 * MIN_MS, err, sizeof(err)), 0);
	CURRENT_JWT(now_jwt);
	CHECK(strcmp(now_jwt, first) != 0);
#undef CURRENT_JWT
	pg_push_apns.destroy(st);
}

static void test_apns_classify(void)
{
	struct pg_push_config cfg = apns_config();
	char err[300] = "";
	void *st = pg_push_apns.create(&cfg, err, sizeof(err));
	struct pg_push_job job = make_job(PG_PUSH_APNS, PG_PUSH_KIND_CHAT);
	const struct pg_push_provider_ops *o = &pg_push_apns;
	struct pg_push_result res;

	EXPECT_OUTCOME(o, st, &job, 200, "", NULL, PG_PUSH_DELIVERED, "");
	EXPECT_OUTCOME(o, st, &job, 410, "{\"reason\":\"Unregistered\",\"timestamp\":1}", NULL,
	               PG_PUSH_REMOVE_DEVICE, "unregistered");
	EXPECT_OUTCOME(o, st, &job, 400, "{\"reason\":\"BadDeviceToken\"}", NULL,
	               PG_PUSH_REMOVE_DEVICE, "bad_device_token");
	/* Not for the device's own app: its registration goes. Not for
	 * plugin_opt_apns_topic: the setting is wrong, no device is removed. */
	snprintf(job.app, sizeof(job.app), "com.example.chat");
	EXPECT_OUTCOME(o, st, &job, 400, "{\"reason\":\"DeviceTokenNotForTopic\"}", NULL,
	               PG_PUSH_REMOVE_DEVICE, "token_not_for_topic");
	job.app[0] = '\0';
	EXPECT_OUTCOME(o, st, &job, 400, "{\"reason\":\"DeviceTokenNotForTopic\"}", NULL,
	               PG_PUSH_FAILED, "token_not_for_topic");
	snprintf(job.app, sizeof(job.app), "com.example.chat");
	EXPECT_OUTCOME(o, st, &job, 400, "{\"reason\":\"BadTopic\"}", NULL, PG_PUSH_FAILED,
	               "bad_request");
	EXPECT_OUTCOME(o, st, &job, 403, "{\"reason\":\"InvalidProviderToken\"}", NULL,
	               PG_PUSH_FAILED, "auth");
	EXPECT_OUTCOME(o, st, &job, 403, "not json", NULL, PG_PUSH_FAILED, "auth");
	EXPECT_OUTCOME(o, st, &job, 413, "{\"reason\":\"PayloadTooLarge\"}", NULL, PG_PUSH_FAILED,
	               "payload_too_large");
	EXPECT_OUTCOME(o, st, &job, 405, "{\"reason\":\"MethodNotAllowed\"}", NULL, PG_PUSH_FAILED,
	               "bad_request");
	EXPECT_OUTCOME(o, st, &job, 503, "{\"reason\":\"ServiceUnavailable\"}", NULL, PG_PUSH_RETRY,
	               "http_5xx");
	EXPECT_OUTCOME(o, st, &job, 500, "", NULL, PG_PUSH_RETRY, "http_5xx");
	CHECK_EQ(classify(o, st, &job, 429, "{\"reason\":\"TooManyRequests\"}", "30", &res),
	         PG_PUSH_VERDICT_DONE);
	CHECK_EQ(res.outcome, PG_PUSH_RETRY);
	CHECK_STR(res.reason, "http_429");
	CHECK_EQ(res.retry_after_ms, 30000);
	CHECK_STR(res.detail, "TooManyRequests");
	classify(o, st, &job, 429, "{\"reason\":\"TooManyProviderTokenUpdates\"}", NULL, &res);
	CHECK_EQ(res.outcome, PG_PUSH_RETRY);
	CHECK_EQ(res.retry_after_ms, -1);
	classify(o, st, &job, 410, "{\"reason\":\"Unregistered\"}", NULL, &res);
	CHECK_STR(res.detail, "Unregistered");
	CHECK_EQ(res.retry_after_ms, -1);
	/* expired provider token: renew and resend, else an auth failure */
	CHECK_EQ(classify(o, st, &job, 403, "{\"reason\":\"ExpiredProviderToken\"}", NULL, &res),
	         PG_PUSH_VERDICT_REAUTHORIZE);
	CHECK_EQ(res.outcome, PG_PUSH_FAILED);
	CHECK_STR(res.reason, "auth");
	pg_push_apns.destroy(st);
}

/* ================= FCM ================= */

static char *service_account_json(const char *token_uri, int with_key)
{
	cJSON *a = cJSON_CreateObject();
	char *pem = pem_of(rsa_key, 1), *text;

	cJSON_AddStringToObject(a, "type", "service_account");
	cJSON_AddStringToObject(a, "project_id", "pigeon-test");
	cJSON_AddStringToObject(a, "private_key_id", "f00dcafe");
	if (with_key) {
		cJSON_AddStringToObject(a, "private_key", pem);
	}
	cJSON_AddStringToObject(a, "client_email", "push@pigeon-test.iam.gserviceaccount.com");
	cJSON_AddStringToObject(a, "token_uri", token_uri);
	text = cJSON_Print(a);
	cJSON_Delete(a);
	free(pem);
	return text;
}

static struct pg_push_config fcm_config(char *token_url, size_t cap)
{
	struct pg_push_config cfg = base_config();

	snprintf(token_url, cap, "http://127.0.0.1:%d/token", fake.port);
	cfg.fcm_service_account_file = fcm_account_path;
	cfg.fcm_token_url = token_url;
	return cfg;
}

static void test_fcm_enabled_and_create_errors(void)
{
	struct pg_push_config cfg = base_config();
	char err[300] = "", path[160], *text;

	CHECK(!pg_push_fcm.enabled(&cfg));
	cfg.fcm_service_account_file = "/nonexistent.json";
	CHECK(pg_push_fcm.enabled(&cfg));
	CHECK(pg_push_fcm.create(&cfg, err, sizeof(err)) == NULL);
	CHECK_CONTAINS(err, "plugin_opt_fcm_service_account_file: /nonexistent.json");
	snprintf(path, sizeof(path), "%s/bad.json", tmpdir);
	write_file(path, "{not json");
	cfg.fcm_service_account_file = path;
	CHECK(pg_push_fcm.create(&cfg, err, sizeof(err)) == NULL);
	CHECK_CONTAINS(err, "is not JSON");
	text = service_account_json("https://oauth2.googleapis.com/token", 0);
	write_file(path, text);
	free(text);
	CHECK(pg_push_fcm.create(&cfg, err, sizeof(err)) == NULL);
	CHECK_CONTAINS(err, "\"private_key\"");
	unlink(path);
}

static void test_fcm_authorize_and_build(void)
{
	char token_url[128], err[300] = "";
	struct pg_push_config cfg = fcm_config(token_url, sizeof(token_url));
	void *st = pg_push_fcm.create(&cfg, err, sizeof(err));
	struct pg_push_job job = make_job(PG_PUSH_FCM, PG_PUSH_KIND_NOTIFY);
	struct pg_push_request req = {0};
	char *grant, *assertion;
	cJSON *h = NULL, *c = NULL, *json, *v;
	unsigned char sig[600];
	size_t siglen = 0, signed_len = 0;
	EVP_MD_CTX *ctx;
	int before, data_values = 0, all_strings = 1;
	const char *ttl;

	CHECK(st != NULL);
	CHECK_EQ(pg_push_fcm.build(st, &job, &req, err, sizeof(err)), -1);
	fake_answer(200, "{\"access_token\":\"ya29.fcm-1\",\"expires_in\":3599,"
	                 "\"token_type\":\"Bearer\"}");
	before = fake_requests();
	CHECK_EQ(pg_push_fcm.authorize(st, false, 1000, err, sizeof(err)), 0);
	CHECK_EQ(fake_requests(), before + 1);
	/* the token endpoint saw a jwt-bearer grant with an RS256 assertion */
	pthread_mutex_lock(&fake.mu);
	CHECK_STR(fake.path, "/token");
	grant = form_value(fake.body, "grant_type");
	assertion = form_value(fake.body, "assertion");
	pthread_mutex_unlock(&fake.mu);
	CHECK_STR(grant, "urn:ietf:params:oauth:grant-type:jwt-bearer");
	CHECK(assertion != NULL && jwt_decode(assertion, &h, &c, sig, &siglen, &signed_len) == 0);
	CHECK_STR(str_at(h, "alg"), "RS256");
	CHECK_STR(str_at(h, "kid"), "f00dcafe");
	CHECK_STR(str_at(c, "iss"), "push@pigeon-test.iam.gserviceaccount.com");
	CHECK_STR(str_at(c, "scope"), "https://www.googleapis.com/auth/firebase.messaging");
	/* fcm_token_url overrides the account's token_uri, and is the audience */
	CHECK_STR(str_at(c, "aud"), token_url);
	CHECK_EQ(num_at(c, "exp") - num_at(c, "iat"), 3600);
	ctx = EVP_MD_CTX_new();
	CHECK(assertion && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, rsa_key) == 1 &&
	      EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)assertion, signed_len) ==
	          1);
	EVP_MD_CTX_free(ctx);
	cJSON_Delete(h);
	cJSON_Delete(c);
	free(grant);
	free(assertion);
	/* cached until a minute before it expires */
	CHECK_EQ(pg_push_fcm.authorize(st, false, 1000 + 3500 * 1000LL, err, sizeof(err)), 0);
	CHECK_EQ(fake_requests(), before + 1);
	CHECK_EQ(pg_push_fcm.authorize(st, true, 2000, err, sizeof(err)), 0);
	CHECK_EQ(fake_requests(), before + 2);

	job.expires_at_ms = pg_push_wall_ms() + 3600 * 1000LL + 500;
	CHECK_EQ(pg_push_fcm.build(st, &job, &req, err, sizeof(err)), 0);
	CHECK_STR(req.url, "https://fcm.googleapis.com/v1/projects/pigeon-test/messages:send");
	CHECK_STR(header(&req, "authorization"), "Bearer ya29.fcm-1");
	CHECK_CONTAINS(header(&req, "content-type"), "application/json");
	json = cJSON_ParseWithLength(req.body, req.body_len);
	CHECK(json != NULL);
	CHECK_STR(str_at(json, "message.token"), "a1b2c3d4e5f6");
	CHECK_STR(str_at(json, "message.notification.title"), "Bob");
	CHECK_STR(str_at(json, "message.notification.body"), "Hello \xf0\x9f\x91\x8b");
	/* data: every value a string */
	cJSON_ArrayForEach(v, at(json, "message.data"))
	{
		data_values++;
		all_strings &= cJSON_IsString(v);
	}
	CHECK_EQ(data_values, 6);
	CHECK(all_strings);
	CHECK_STR(str_at(json, "message.data.seq"), "9007199254740993");
	CHECK_STR(str_at(json, "message.data.from"), "bob");
	CHECK_STR(str_at(json, "message.data.kind"), "notify");
	CHECK_STR(str_at(json, "message.data.type"), "order.shipped");
	CHECK_STR(str_at(json, "message.data.count"), "3");
	CHECK_STR(str_at(json, "message.data.badge"), "12");
	CHECK_STR(str_at(json, "message.android.collapse_key"), "order.shipped");
	CHECK_STR(str_at(json, "message.android.priority"), "high");
	ttl = str_at(json, "message.android.ttl");
	CHECK(ttl && (strcmp(ttl, "3600s") == 0 || strcmp(ttl, "3599s") == 0));
	CHECK_EQ(num_at(json, "message.android.notification.notification_count"), 12);
	CHECK_EQ(num_at(json, "message.apns.payload.aps.badge"), 12);
	cJSON_Delete(json);
	pg_push_request_clear(&req);

	/* CHAT: no collapse key; no expiry: no ttl; no title */
	job = make_job(PG_PUSH_FCM, PG_PUSH_KIND_CHAT);
	job.title[0] = '\0';
	CHECK_EQ(pg_push_fcm.build(st, &job, &req, err, sizeof(err)), 0);
	json = cJSON_ParseWithLength(req.body, req.body_len);
	CHECK(at(json, "message.android.collapse_key") == NULL);
	CHECK(at(json, "message.android.ttl") == NULL);
	CHECK(at(json, "message.notification.title") == NULL);
	CHECK_STR(str_at(json, "message.data.kind"), "chat");
	cJSON_Delete(json);
	pg_push_request_clear(&req);

	/* the 4096-byte limit */
	memset(job.body, 1, PG_PUSH_BODY_MAX);
	job.body[PG_PUSH_BODY_MAX] = '\0';
	CHECK_EQ(pg_push_fcm.build(st, &job, &req, err, sizeof(err)), 0);
	CHECK(req.body_len <= 4096 && req.body_len > 4080);
	json = cJSON_ParseWithLength(req.body, req.body_len);
	CHECK(json != NULL);
	cJSON_Delete(json);
	pg_push_request_clear(&req);
	pg_push_fcm.destroy(st);
}

static void test_fcm_token_endpoint_errors(void)
{
	char token_url[128], err[300] = "";
	struct pg_push_config cfg = fcm_config(token_url, sizeof(token_url));
	void *st = pg_push_fcm.create(&cfg, err, sizeof(err));

	fake_answer(400, "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT\"}");
	CHECK_EQ(pg_push_fcm.authorize(st, false, 1000, err, sizeof(err)), -1);
	CHECK_CONTAINS(err, token_url);
	CHECK_CONTAINS(err, "HTTP 400");
	CHECK_CONTAINS(err, "invalid_grant");
	fake_answer(200, "{\"expires_in\":3600}");
	CHECK_EQ(pg_push_fcm.authorize(st, false, 1000, err, sizeof(err)), -1);
	CHECK_CONTAINS(err, "access_token");
	pg_push_fcm.destroy(st);
	/* nothing listening: a transport error */
	cfg.fcm_token_url = "http://127.0.0.1:9/token";
	st = pg_push_fcm.create(&cfg, err, sizeof(err));
	CHECK_EQ(pg_push_fcm.authorize(st, false, 1000, err, sizeof(err)), -1);
	CHECK_CONTAINS(err, "token endpoint");
	pg_push_fcm.destroy(st);
}

static void test_fcm_classify(void)
{
	char token_url[128], err[300] = "";
	struct pg_push_config cfg = fcm_config(token_url, sizeof(token_url));
	void *st = pg_push_fcm.create(&cfg, err, sizeof(err));
	struct pg_push_job job = make_job(PG_PUSH_FCM, PG_PUSH_KIND_CHAT);
	const struct pg_push_provider_ops *o = &pg_push_fcm;
	struct pg_push_result res;
	char body[1024];

#define FCM_ERROR(code, message, status, fcm_code)                                                 \
	(snprintf(body, sizeof(body),                                                              \
	          "{\"error\":{\"code\":%d,\"message\":\"%s\",\"status\":\"%s\",\"details\":[{"    \
	          "\"@type\":\"type.googleapis.com/google.firebase.fcm.v1.FcmError\","             \
	          "\"errorCode\":\"%s\"}]}}",                                                      \
	          code, message, status, fcm_code),                                                \
	 body)

	EXPECT_OUTCOME(o, st, &job, 200, "{\"name\":\"projects/pigeon-test/messages/0:1\"}", NULL,
	               PG_PUSH_DELIVERED, "");
	EXPECT_OUTCOME(
	    o, st, &job, 404,
	    FCM_ERROR(404, "Requested entity was not found.", "NOT_FOUND", "UNREGISTERED"), NULL,
	    PG_PUSH_REMOVE_DEVICE, "unregistered");
	EXPECT_OUTCOME(o, st, &job, 400,
	               FCM_ERROR(400,
	                         "The registration token is not a valid FCM registration token",
	                         "INVALID_ARGUMENT", "INVALID_ARGUMENT"),
	               NULL, PG_PUSH_REMOVE_DEVICE, "invalid_token");
	EXPECT_OUTCOME(o, st, &job, 400,
	               FCM_ERROR(400, "Invalid value at 'message.data[0].value'",
	                         "INVALID_ARGUMENT", "INVALID_ARGUMENT"),
	               NULL, PG_PUSH_FAILED, "bad_request");
	/* INVALID_ARGUMENT without the FcmError detail: the RPC status decides */
	EXPECT_OUTCOME(o, st, &job, 400,
	               "{\"error\":{\"code\":400,\"message\":\"The registration token is not a "
	               "valid FCM registration token\",\"status\":\"INVALID_ARGUMENT\"}}",
	               NULL, PG_PUSH_REMOVE_DEVICE, "invalid_token");
	EXPECT_OUTCOME(
	    o, st, &job, 403,
	    FCM_ERROR(403, "SenderId mismatch", "PERMISSION_DENIED", "SENDER_ID_MISMATCH"), NULL,
	    PG_PUSH_REMOVE_DEVICE, "sender_id_mismatch");
	EXPECT_OUTCOME(o, st, &job, 503,
	               FCM_ERROR(503, "unavailable", "UNAVAILABLE", "UNAVAILABLE"), NULL,
	               PG_PUSH_RETRY, "http_5xx");
	EXPECT_OUTCOME(o, st, &job, 500, FCM_ERROR(500, "internal", "INTERNAL", "INTERNAL"), NULL,
	               PG_PUSH_RETRY, "http_5xx");
	EXPECT_OUTCOME(o, st, &job, 502, "<html>bad gateway</html>", NULL, PG_PUSH_RETRY,
	               "http_5xx");
	EXPECT_OUTCOME(o, st, &job, 403,
	               "{\"error\":{\"code\":403,\"message\":\"Permission denied\","
	               "\"status\":\"PERMISSION_DENIED\"}}",
	               NULL, PG_PUSH_FAILED, "auth");
	EXPECT_OUTCOME(o, st, &job, 404, "{\"error\":{\"code\":404,\"status\":\"NOT_FOUND\"}}",
	               NULL, PG_PUSH_FAILED, "bad_request");
	CHECK_EQ(classify(o, st, &job, 429,
	                  FCM_ERROR(429, "quota", "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), "7",
	                  &res),
	         PG_PUSH_VERDICT_DONE);
	CHECK_EQ(res.outcome, PG_PUSH_RETRY);
	CHECK_STR(res.reason, "http_429");
	CHECK_EQ(res.retry_after_ms, 7000);
	CHECK_CONTAINS(res.detail, "QUOTA_EXCEEDED");
	classify(o, st, &job, 429, "", NULL, &res);
	CHECK_EQ(res.outcome, PG_PUSH_RETRY);
	CHECK_EQ(res.retry_after_ms, -1);
	CHECK_EQ(
	    classify(o, st, &job, 401,
	             "{\"error\":{\"code\":401,\"message\":\"Request had invalid authentication "
	             "credentials.\",\"status\":\"UNAUTHENTICATED\"}}",
	             NULL, &res),
	    PG_PUSH_VERDICT_REAUTHORIZE);
	CHECK_EQ(res.outcome, PG_PUSH_FAILED);
	CHECK_STR(res.reason, "auth");
	CHECK_EQ(classify(o, st, &job, 401,
	                  FCM_ERROR(401, "apns auth", "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"),
	                  NULL, &res),
	         PG_PUSH_VERDICT_REAUTHORIZE);
#undef FCM_ERROR
	pg_push_fcm.destroy(st);
}

/* ================= Huawei ================= */

static struct pg_push_config huawei_config(char *token_url, size_t cap)
{
	struct pg_push_config cfg = base_config();

	snprintf(token_url, cap, "http://127.0.0.1:%d/oauth2/v3/token", fake.port);
	cfg.huawei_app_id = "10086";
	cfg.huawei_client_secret = "s+cret&=";
	cfg.huawei_token_url = token_url;
	return cfg;
}

static void test_huawei_create_authorize_build(void)
{
	char token_url[128], err[300] = "", *v;
	struct pg_push_config cfg = base_config();
	void *st;
	struct pg_push_job job = make_job(PG_PUSH_HUAWEI, PG_PUSH_KIND_NOTIFY);
	struct pg_push_request req = {0};
	cJSON *json, *data;
	int key1, key2;

	CHECK(!pg_push_huawei.enabled(&cfg));
	cfg = huawei_config(token_url, sizeof(token_url));
	CHECK(pg_push_huawei.enabled(&cfg));
	cfg.huawei_client_secret = NULL;
	CHECK(pg_push_huawei.create(&cfg, err, sizeof(err)) == NULL);
	CHECK_CONTAINS(err,
	               "plugin_opt_huawei_client_secret is required with plugin_opt_huawei_app_id");
	cfg = huawei_config(token_url, sizeof(token_url));
	st = pg_push_huawei.create(&cfg, err, sizeof(err));
	CHECK(st != NULL);
	CHECK_EQ(pg_push_huawei.build(st, &job, &req, err, sizeof(err)), -1);

	fake_answer(
	    200, "{\"access_token\":\"CF3Ahw==\",\"expires_in\":3600,\"token_type\":\"Bearer\"}");
	CHECK_EQ(pg_push_huawei.authorize(st, false, 0, err, sizeof(err)), 0);
	pthread_mutex_lock(&fake.mu);
	CHECK_STR(fake.path, "/oauth2/v3/token");
	CHECK_STR(fake.body,
	          "grant_type=client_credentials&client_id=10086&client_secret=s%2Bcret%26%3D");
	pthread_mutex_unlock(&fake.mu);
	v = form_value(fake.body, "client_secret");
	CHECK_STR(v, "s+cret&=");
	free(v);

	CHECK_EQ(pg_push_huawei.build(st, &job, &req, err, sizeof(err)), 0);
	CHECK_STR(req.url, "https://push-api.cloud.huawei.com/v1/10086/messages:send");
	CHECK_STR(header(&req, "authorization"), "Bearer CF3Ahw==");
	json = cJSON_ParseWithLength(req.body, req.body_len);
	CHECK(json != NULL);
	CHECK(cJSON_IsArray(at(json, "message.token")));
	CHECK_EQ(cJSON_GetArraySize(at(json, "message.token")), 1);
	CHECK_STR(cJSON_GetArrayItem(at(json, "message.token"), 0)->valuestring, "a1b2c3d4e5f6");
	key1 = (int)num_at(json, "message.android.collapse_key");
	CHECK(key1 >= 0 && key1 <= 100);
	CHECK_STR(str_at(json, "message.android.notification.title"), "Bob");
	CHECK_STR(str_at(json, "message.android.notification.body"), "Hello \xf0\x9f\x91\x8b");
	CHECK_EQ(num_at(json, "message.android.notification.click_action.type"), 3);
	CHECK_EQ(num_at(json, "message.android.notification.badge.set_num"), 12);
	/* data is a JSON string */
	CHECK(str_at(json, "message.data") != NULL);
	data = cJSON_Parse(str_at(json, "message.data"));
	CHECK(data != NULL);
	CHECK_CONTAINS(str_at(json, "message.data"), "\"seq\":9007199254740993");
	CHECK_STR(str_at(data, "from"), "bob");
	CHECK_STR(str_at(data, "kind"), "notify");
	CHECK_STR(str_at(data, "type"), "order.shipped");
	cJSON_Delete(data);
	cJSON_Delete(json);
	pg_push_request_clear(&req);

	/* the same type collapses the same way; another type almost surely not */
	CHECK_EQ(pg_push_huawei.build(st, &job, &req, err, sizeof(err)), 0);
	json = cJSON_ParseWithLength(req.body, req.body_len);
	CHECK_EQ(num_at(json, "message.android.collapse_key"), key1);
	cJSON_Delete(json);
	pg_push_request_clear(&req);
	strcpy(job.type, "order.cancelled");
	CHECK_EQ(pg_push_huawei.build(st, &job, &req, err, sizeof(err)), 0);
	json = cJSON_ParseWithLength(req.body, req.body_len);
	key2 = (int)num_at(json, "message.android.collapse_key");
	CHECK(key2 >= 0 && key2 <= 100);
	cJSON_Delete(json);
	pg_push_request_clear(&req);
	/* CHAT: -1, never collapsed */
	job = make_job(PG_PUSH_HUAWEI, PG_PUSH_KIND_CHAT);
	CHECK_EQ(pg_push_huawei.build(st, &job, &req, err, sizeof(err)), 0);
	json = cJSON_ParseWithLength(req.body, req.body_len);
	CHECK_EQ(num_at(json, "message.android.collapse_key"), -1);
	cJSON_Delete(json);
	pg_push_request_clear(&req);
	pg_push_huawei.destroy(st);
}

static void test_huawei_classify(void)
{
	char token_url[128], err[300] = "";
	struct pg_push_config cfg = huawei_config(token_url, sizeof(token_url));
	void *st = pg_push_huawei.create(&cfg, err, sizeof(err));
	struct pg_push_job job = make_job(PG_PUSH_HUAWEI, PG_PUSH_KIND_CHAT);
	const struct pg_push_provider_ops *o = &pg_push_huawei;
	struct pg_push_result res;

	EXPECT_OUTCOME(o, st, &job, 200,
	               "{\"code\":\"80000000\",\"msg\":\"Success\",\"requestId\":\"1\"}", NULL,
	               PG_PUSH_DELIVERED, "");
	EXPECT_OUTCOME(o, st, &job, 200, "{\"code\":80000000,\"msg\":\"Success\"}", NULL,
	               PG_PUSH_DELIVERED, "");
	EXPECT_OUTCOME(o, st, &job, 400,
	               "{\"code\":\"80300007\",\"msg\":\"All the tokens are invalid\"}", NULL,
	               PG_PUSH_REMOVE_DEVICE, "invalid_token");
	EXPECT_OUTCOME(o, st, &job, 200,
	               "{\"code\":\"80100000\",\"msg\":\"{\\\"success\\\":0,\\\"failure\\\":1,"
	               "\\\"illegal_tokens\\\":[\\\"a1b2c3d4e5f6\\\"]}\"}",
	               NULL, PG_PUSH_REMOVE_DEVICE, "invalid_token");
	/* a partial failure that does not name this token is not a removal */
	EXPECT_OUTCOME(o, st, &job, 200,
	               "{\"code\":\"80100000\",\"msg\":\"Some request parameters are invalid\"}",
	               NULL, PG_PUSH_FAILED, "bad_request");
	CHECK_EQ(classify(o, st, &job, 401,
	                  "{\"code\":\"80200003\",\"msg\":\"OAuth token expired\"}", NULL, &res),
	         PG_PUSH_VERDICT_REAUTHORIZE);
	CHECK_STR(res.reason, "auth");
	classify(o, st, &job, 429, "{\"code\":\"80300010\",\"msg\":\"too many\"}", "2", &res);
	CHECK_EQ(res.outcome, PG_PUSH_RETRY);
	CHECK_STR(res.reason, "http_429");
	CHECK_EQ(res.retry_after_ms, 2000);
	EXPECT_OUTCOME(o, st, &job, 503, "", NULL, PG_PUSH_RETRY, "http_5xx");
	EXPECT_OUTCOME(o, st, &job, 500, "{\"code\":\"81000001\",\"msg\":\"System inner error\"}",
	               NULL, PG_PUSH_RETRY, "http_5xx");
	classify(o, st, &job, 400,
	         "{\"code\":\"80300008\",\"msg\":\"The message body size exceeds\"}", NULL, &res);
	CHECK_EQ(res.outcome, PG_PUSH_FAILED);
	CHECK_STR(res.reason, "bad_request");
	CHECK_CONTAINS(res.detail, "80300008");
	EXPECT_OUTCOME(o, st, &job, 401,
	               "{\"code\":\"80200001\",\"msg\":\"OAuth authentication error\"}", NULL,
	               PG_PUSH_FAILED, "auth");
	EXPECT_OUTCOME(o, st, &job, 200, "{}", NULL, PG_PUSH_FAILED, "bad_request");
	pg_push_huawei.destroy(st);
}

/* ================= Xiaomi ================= */

static void test_xiaomi_build(void)
{
	struct pg_push_config cfg = base_config();
	char err[300] = "", *v;
	void *st;
	struct pg_push_job job = make_job(PG_PUSH_XIAOMI, PG_PUSH_KIND_NOTIFY);
	struct pg_push_request req = {0};
	cJSON *payload;
	unsigned id1;
	size_t i;

	CHECK(!pg_push_xiaomi.enabled(&cfg));
	cfg.xiaomi_app_secret = "mi-secret==";
	cfg.xiaomi_url = "http://127.0.0.1:9/";
	CHECK(pg_push_xiaomi.enabled(&cfg));
	st = pg_push_xiaomi.create(&cfg, err, sizeof(err));
	CHECK(st != NULL);
	CHECK_EQ(pg_push_xiaomi.authorize(st, false, 0, err, sizeof(err)), 0);
	CHECK_EQ(pg_push_xiaomi.build(st, &job, &req, err, sizeof(err)), 0);
	CHECK_STR(req.url, "http://127.0.0.1:9/v3/message/regid");
	CHECK_STR(header(&req, "authorization"), "key=mi-secret==");
	CHECK_CONTAINS(header(&req, "content-type"), "application/x-www-form-urlencoded");
	CHECK_EQ(req.body_len, strlen(req.body));
#define FIELD(name, want)                                                                          \
	do {                                                                                       \
		v = form_value(req.body, name);                                                    \
		CHECK_STR(v, want);                                                                \
		free(v);                                                                           \
	} while (0)
	FIELD("registration_id", "a1b2c3d4e5f6");
	FIELD("restricted_package_name", "com.example.chat");
	FIELD("title", "Bob");
	FIELD("description", "Hello \xf0\x9f\x91\x8b");
	FIELD("notify_type", "-1");
	FIELD("pass_through", "0");
	v = form_value(req.body, "notify_id");
	id1 = (unsigned)strtoul(v ? v : "0", NULL, 10);
	CHECK(id1 >= 1 && id1 <= 1000);
	free(v);
	v = form_value(req.body, "payload");
	payload = cJSON_Parse(v ? v : "");
	CHECK(payload != NULL);
	CHECK_CONTAINS(v, "\"seq\":9007199254740993");
	CHECK_EQ(num_at(payload, "badge"), 12);
	CHECK_EQ(num_at(payload, "count"), 3);
	CHECK_STR(str_at(payload, "from"), "bob");
	CHECK_STR(str_at(payload, "kind"), "notify");
	CHECK_STR(str_at(payload, "type"), "order.shipped");
	cJSON_Delete(payload);
	free(v);
	pg_push_request_clear(&req);
	/* stable for the type */
	CHECK_EQ(pg_push_xiaomi.build(st, &job, &req, err, sizeof(err)), 0);
	v = form_value(req.body, "notify_id");
	CHECK_EQ(strtoul(v, NULL, 10), id1);
	free(v);
	pg_push_request_clear(&req);

	/* CHAT: notify_id 0; characters, not bytes, are counted: 49 and 127 */
	job = make_job(PG_PUSH_XIAOMI, PG_PUSH_KIND_CHAT);
	job.app[0] = '\0';
	for (i = 0; i < 80; i++) {
		memcpy(job.title + 3 * i, "\xe4\xbd\xa0", 3); /* 你 */
	}
	job.title[240] = '\0';
	for (i = 0; i < 200; i++) {
		memcpy(job.body + 4 * i, "\xf0\x9f\x98\x80", 4); /* 😀 */
	}
	job.body[800] = '\0';
	CHECK_EQ(pg_push_xiaomi.build(st, &job, &req, err, sizeof(err)), 0);
	FIELD("notify_id", "0");
	v = form_value(req.body, "title");
	CHECK(v && pg_push_utf8_valid(v, strlen(v)) && pg_push_utf8_chars(v, strlen(v)) == 49 &&
	      strlen(v) == 147);
	free(v);
	v = form_value(req.body, "description");
	CHECK(v && pg_push_utf8_valid(v, strlen(v)) && pg_push_utf8_chars(v, strlen(v)) == 127 &&
	      strlen(v) == 508);
	free(v);
	/* no app: the field is left out */
	CHECK(strstr(req.body, "restricted_package_name") == NULL);
#undef FIELD
	pg_push_request_clear(&req);
	pg_push_xiaomi.destroy(st);
}

static void test_xiaomi_classify(void)
{
	struct pg_push_config cfg = base_config();
	char err[300] = "";
	void *st;
	struct pg_push_job job = make_job(PG_PUSH_XIAOMI, PG_PUSH_KIND_CHAT);
	const struct pg_push_provider_ops *o = &pg_push_xiaomi;
	struct pg_push_result res;

	cfg.xiaomi_app_secret = "mi-secret";
	st = pg_push_xiaomi.create(&cfg, err, sizeof(err));
	EXPECT_OUTCOME(o, st, &job, 200,
	               "{\"result\":\"ok\",\"trace_id\":\"x\",\"code\":0,\"data\":{\"id\":\"m1\"},"
	               "\"description\":\"success\"}",
	               NULL, PG_PUSH_DELIVERED, "");
	EXPECT_OUTCOME(o, st, &job, 200,
	               "{\"result\":\"error\",\"code\":20301,\"reason\":\"Invalid regId\"}", NULL,
	               PG_PUSH_REMOVE_DEVICE, "invalid_token");
	EXPECT_OUTCOME(o, st, &job, 200,
	               "{\"result\":\"ok\",\"code\":0,\"data\":{\"id\":\"m1\","
	               "\"bad_regids\":\"zz, a1b2c3d4e5f6\"}}",
	               NULL, PG_PUSH_REMOVE_DEVICE, "invalid_token");
	/* another token's refusal, or a token that merely contains ours, is not ours */
	EXPECT_OUTCOME(
	    o, st, &job, 200,
	    "{\"result\":\"ok\",\"code\":0,\"data\":{\"bad_regids\":\"a1b2c3d4e5f6xx\"}}", NULL,
	    PG_PUSH_DELIVERED, "");
	EXPECT_OUTCOME(o, st, &job, 200,
	               "{\"result\":\"error\",\"code\":10027,\"reason\":\"too frequent\"}", NULL,
	               PG_PUSH_RETRY, "too_frequent");
	classify(o, st, &job, 429, "", "Sun, 06 Nov 1994 08:49:37 GMT", &res);
	CHECK_EQ(res.outcome, PG_PUSH_RETRY);
	CHECK_STR(res.reason, "http_429");
	CHECK_EQ(res.retry_after_ms, 0); /* a date long past */
	EXPECT_OUTCOME(o, st, &job, 502, "", NULL, PG_PUSH_RETRY, "http_5xx");
	classify(o, st, &job, 200,
	         "{\"result\":\"error\",\"code\":22000,\"reason\":\"bad package\"}", NULL, &res);
	CHECK_EQ(res.outcome, PG_PUSH_FAILED);
	CHECK_STR(res.reason, "bad_request");
	CHECK_CONTAINS(res.detail, "22000");
	CHECK_CONTAINS(res.detail, "bad package");
	EXPECT_OUTCOME(o, st, &job, 200,
	               "{\"result\":\"error\",\"code\":21301,\"reason\":\"auth\"}", NULL,
	               PG_PUSH_FAILED, "auth");
	EXPECT_OUTCOME(o, st, &job, 200, "garbage", NULL, PG_PUSH_FAILED, "bad_request");
	/* a code beyond long is no code (converting it was UB: fuzz_push_answer) */
	EXPECT_OUTCOME(o, st, &job, 200, "{\"result\":\"error\",\"code\":1e300}", NULL,
	               PG_PUSH_FAILED, "bad_request");
	pg_push_xiaomi.destroy(st);
}

/* ================= webhook ================= */

static void test_webhook_create(void)
{
	struct pg_push_config cfg = base_config();
	char err[300] = "";

	CHECK(!pg_push_webhook.enabled(&cfg));
	cfg.webhook_url = "https://hooks.example.com/push";
	CHECK(pg_push_webhook.enabled(&cfg));
	CHECK(pg_push_webhook.create(&cfg, err, sizeof(err)) == NULL);
	CHECK_CONTAINS(err, "plugin_opt_webhook_secret is required with plugin_opt_webhook_url");
	cfg.webhook_secret = "k";
	cfg.webhook_url = "ftp://x";
	CHECK(pg_push_webhook.create(&cfg, err, sizeof(err)) == NULL);
	CHECK_CONTAINS(err, "plugin_opt_webhook_url");
}

static void test_webhook_build_and_signature(void)
{
	struct pg_push_config cfg = base_config();
	char err[300] = "", hex[65];
	void *st;
	struct pg_push_job job = make_job(PG_PUSH_WEBHOOK, PG_PUSH_KIND_NOTIFY);
	struct pg_push_request req = {0};
	unsigned char mac[32];
	unsigned maclen = 0;
	const char *sighdr;
	int64_t before = pg_push_wall_ms();
	cJSON *json;
	int i;

	cfg.webhook_url = "https://hooks.example.com/push";
	cfg.webhook_secret = "Jefe";
	st = pg_push_webhook.create(&cfg, err, sizeof(err));
	CHECK(st != NULL);
	CHECK_EQ(pg_push_webhook.authorize(st, false, 0, err, sizeof(err)), 0);
	CHECK_EQ(pg_push_webhook.build(st, &job, &req, err, sizeof(err)), 0);
	CHECK_STR(req.url, "https://hooks.example.com/push");
	CHECK_STR(header(&req, "content-type"), "application/json");
	json = cJSON_ParseWithLength(req.body, req.body_len);
	CHECK(json != NULL);
	CHECK_STR(str_at(json, "platform"), "webhook");
	CHECK_STR(str_at(json, "token"), "a1b2c3d4e5f6");
	CHECK_STR(str_at(json, "uid"), "alice");
	CHECK_STR(str_at(json, "device"), "phone");
	CHECK_STR(str_at(json, "app"), "com.example.chat");
	CHECK_STR(str_at(json, "title"), "Bob");
	CHECK_STR(str_at(json, "body"), "Hello \xf0\x9f\x91\x8b");
	CHECK_EQ(num_at(json, "badge"), 12);
	CHECK_CONTAINS(req.body, "\"seq\":9007199254740993");
	CHECK_STR(str_at(json, "data.from"), "bob");
	CHECK_STR(str_at(json, "data.kind"), "notify");
	CHECK_STR(str_at(json, "data.type"), "order.shipped");
	CHECK_EQ(num_at(json, "data.count"), 3);
	CHECK(num_at(json, "sent_at_ms") >= (double)before &&
	      num_at(json, "sent_at_ms") <= (double)pg_push_wall_ms());
	cJSON_Delete(json);
	/* the signature: HMAC-SHA256 of the exact body under the raw secret */
	sighdr = header(&req, "x-pigeon-signature");
	CHECK(HMAC(EVP_sha256(), "Jefe", 4, (const unsigned char *)req.body, req.body_len, mac,
	           &maclen) != NULL);
	for (i = 0; i < 32; i++) {
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
	}
	CHECK(sighdr != NULL && strncmp(sighdr, "sha256=", 7) == 0);
	CHECK(sighdr != NULL && strcmp(sighdr + 7, hex) == 0);
	pg_push_request_clear(&req);
	pg_push_webhook.destroy(st);
}

static void test_webhook_classify(void)
{
	struct pg_push_config cfg = base_config();
	char err[300] = "";
	void *st;
	struct pg_push_job job = make_job(PG_PUSH_WEBHOOK, PG_PUSH_KIND_CHAT);
	const struct pg_push_provider_ops *o = &pg_push_webhook;
	struct pg_push_result res;

	cfg.webhook_url = "http://127.0.0.1:9/";
	cfg.webhook_secret = "s";
	st = pg_push_webhook.create(&cfg, err, sizeof(err));
	EXPECT_OUTCOME(o, st, &job, 200, "", NULL, PG_PUSH_DELIVERED, "");
	EXPECT_OUTCOME(o, st, &job, 204, "", NULL, PG_PUSH_DELIVERED, "");
	EXPECT_OUTCOME(o, st, &job, 404, "no such device", NULL, PG_PUSH_REMOVE_DEVICE,
	               "unregistered");
	EXPECT_OUTCOME(o, st, &job, 410, "", NULL, PG_PUSH_REMOVE_DEVICE, "unregistered");
	classify(o, st, &job, 429, "slow down", "5", &res);
	CHECK_EQ(res.outcome, PG_PUSH_RETRY);
	CHECK_STR(res.reason, "http_429");
	CHECK_EQ(res.retry_after_ms, 5000);
	CHECK_CONTAINS(res.detail, "slow down");
	EXPECT_OUTCOME(o, st, &job, 500, "", NULL, PG_PUSH_RETRY, "http_5xx");
	EXPECT_OUTCOME(o, st, &job, 400, "bad", NULL, PG_PUSH_FAILED, "bad_request");
	EXPECT_OUTCOME(o, st, &job, 401, "", NULL, PG_PUSH_FAILED, "bad_request");
	pg_push_webhook.destroy(st);
}

/* ---- setup ---- */

static void setup(void)
{
	char *pem, *account;

	/* the token endpoint is on 127.0.0.1: no proxy in between */
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	unsetenv("all_proxy");
	unsetenv("ALL_PROXY");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	if (ec_key == NULL || rsa_key == NULL || mkdtemp(tmpdir) == NULL) {
		abort();
	}
	snprintf(apns_key_path, sizeof(apns_key_path), "%s/AuthKey_ABC123DEFG.p8", tmpdir);
	snprintf(fcm_account_path, sizeof(fcm_account_path), "%s/service-account.json", tmpdir);
	snprintf(rsa_as_p8_path, sizeof(rsa_as_p8_path), "%s/rsa.p8", tmpdir);
	pem = pem_of(ec_key, 1);
	write_file(apns_key_path, pem);
	free(pem);
	pem = pem_of(rsa_key, 1);
	write_file(rsa_as_p8_path, pem);
	free(pem);
	account = service_account_json("https://oauth2.googleapis.com/token", 1);
	write_file(fcm_account_path, account);
	free(account);
	fake_start();
}

static void teardown(void)
{
	fake_stop();
	unlink(apns_key_path);
	unlink(fcm_account_path);
	unlink(rsa_as_p8_path);
	rmdir(tmpdir);
	EVP_PKEY_free(ec_key);
	EVP_PKEY_free(rsa_key);
	curl_global_cleanup();
}

int main(void)
{
	setup();
	RUN(test_apns_enabled_and_create_errors);
	RUN(test_apns_build_request);
	RUN(test_apns_payload_limit);
	RUN(test_apns_jwt_reuse_and_renewal);
	RUN(test_apns_classify);
	RUN(test_fcm_enabled_and_create_errors);
	RUN(test_fcm_authorize_and_build);
	RUN(test_fcm_token_endpoint_errors);
	RUN(test_fcm_classify);
	RUN(test_huawei_create_authorize_build);
	RUN(test_huawei_classify);
	RUN(test_xiaomi_build);
	RUN(test_xiaomi_classify);
	RUN(test_webhook_create);
	RUN(test_webhook_build_and_signature);
	RUN(test_webhook_classify);
	teardown();
	return check_exit();
}
