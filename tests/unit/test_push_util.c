/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The push providers' building blocks (broker/push/): UTF-8 shortening by
 * bytes and by characters on character boundaries, with invalid input;
 * UTF-8 repair; payloads shortened to a size limit (a 5000-byte multibyte
 * body fits 4096 bytes and stays valid); Retry-After as delta-seconds and
 * as an IMF-fixdate; form encoding; request headers (no line breaks, a
 * bound); platform names; OAuth2 token answers and their cache times.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "job.h"
#include "oauth.h"
#include "provider.h"
#include "utf8.h"

/* ---- UTF-8 ---- */

static void test_utf8_valid_and_count(void)
{
	CHECK(pg_push_utf8_valid("", 0));
	CHECK(pg_push_utf8_valid("abc", 3));
	CHECK(pg_push_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9)); /* é € 😀 */
	CHECK(!pg_push_utf8_valid("\xc3", 1));                                /* truncated */
	CHECK(!pg_push_utf8_valid("\x80", 1));             /* lone continuation */
	CHECK(!pg_push_utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
	CHECK(!pg_push_utf8_valid("\xe0\x80\xaf", 3));     /* overlong */
	CHECK(!pg_push_utf8_valid("\xed\xa0\x80", 3));     /* surrogate D800 */
	CHECK(!pg_push_utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
	CHECK(!pg_push_utf8_valid("\xff", 1));
	CHECK(pg_push_utf8_valid("\xf4\x8f\xbf\xbf", 4)); /* U+10FFFF */
	CHECK_EQ(pg_push_utf8_chars("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9), 3);
	/* an invalid byte is one character */
	CHECK_EQ(pg_push_utf8_chars("a\x80\xff"
	                            "b",
	                            4),
	         4);
	/* a truncated sequence: each of its bytes stands alone */
	CHECK_EQ(pg_push_utf8_chars("\xe2\x82", 2), 2);
}

static void test_utf8_prefix_bytes_never_splits(void)
{
	const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"; /* a é € 😀: 1+2+3+4 */
	size_t len = strlen(s), max;

	CHECK_EQ(pg_push_utf8_prefix_bytes(s, len, 100), len);
	CHECK_EQ(pg_push_utf8_prefix_bytes(s, len, len), len);
	CHECK_EQ(pg_push_utf8_prefix_bytes(s, len, 0), 0);
	CHECK_EQ(pg_push_utf8_prefix_bytes(s, len, 1), 1);
	CHECK_EQ(pg_push_utf8_prefix_bytes(s, len, 2), 1);
	CHECK_EQ(pg_push_utf8_prefix_bytes(s, len, 3), 3);
	CHECK_EQ(pg_push_utf8_prefix_bytes(s, len, 5), 3);
	CHECK_EQ(pg_push_utf8_prefix_bytes(s, len, 6), 6);
	CHECK_EQ(pg_push_utf8_prefix_bytes(s, len, 9), 6);
	for (max = 0; max <= len; max++) {
		size_t n = pg_push_utf8_prefix_bytes(s, len, max);
		CHECK(n <= max);
		CHECK(pg_push_utf8_valid(s, n));
	}
	/* invalid bytes are cut like one-byte characters, valid ones around them kept whole */
	CHECK_EQ(pg_push_utf8_prefix_bytes("\x80\x80\xc3\xa9", 4, 3), 2);
	CHECK_EQ(pg_push_utf8_prefix_bytes("\x80\x80\xc3\xa9", 4, 4), 4);
}

static void test_utf8_prefix_chars(void)
{
	const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
	size_t len = strlen(s);

	CHECK_EQ(pg_push_utf8_prefix_chars(s, len, 0), 0);
	CHECK_EQ(pg_push_utf8_prefix_chars(s, len, 1), 1);
	CHECK_EQ(pg_push_utf8_prefix_chars(s, len, 2), 3);
	CHECK_EQ(pg_push_utf8_prefix_chars(s, len, 3), 6);
	CHECK_EQ(pg_push_utf8_prefix_chars(s, len, 4), 10);
	CHECK_EQ(pg_push_utf8_prefix_chars(s, len, 99), 10);
}

static void test_utf8_shorten_in_place(void)
{
	char s[64];

	strcpy(s, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"); /* 日本語 */
	pg_push_utf8_shorten_bytes(s, 8);
	CHECK_STR(s, "\xe6\x97\xa5\xe6\x9c\xac");
	pg_push_utf8_shorten_chars(s, 1);
	CHECK_STR(s, "\xe6\x97\xa5");
	pg_push_utf8_shorten_bytes(s, 2);
	CHECK_STR(s, "");
	strcpy(s, "short");
	pg_push_utf8_shorten_chars(s, 49);
	CHECK_STR(s, "short");
}

static void test_utf8_clean_replaces_invalid_bytes(void)
{
	size_t n = 0;
	char *c = pg_push_utf8_clean("a\x80"
	                             "b\xc3\xa9\xed\xa0\x80",
	                             8, &n);

	CHECK(c != NULL);
	/* 0x80 and each byte of the surrogate become U+FFFD; é stays */
	CHECK_STR(c, "a\xef\xbf\xbd"
	             "b\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	CHECK_EQ(n, strlen(c));
	CHECK(pg_push_utf8_valid(c, n));
	free(c);
	c = pg_push_utf8_clean("", 0, &n);
	CHECK_STR(c, "");
	CHECK_EQ(n, 0);
	free(c);
}

/* ---- payloads with a size limit ---- */

static cJSON *make_alert(void *ctx, const char *title, const char *body)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *alert = cJSON_AddObjectToObject(cJSON_AddObjectToObject(root, "aps"), "alert");

	(void)ctx;
	if (*title) {
		cJSON_AddStringToObject(alert, "title", title);
	}
	cJSON_AddStringToObject(alert, "body", body);
	return root;
}

/* n bytes of a mix of 2-, 3- and 4-byte characters (and quotes), malloc'd. */
static char *multibyte_text(size_t n)
{
	static const char *const pieces[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\""};
	char *s = malloc(n + 1);
	size_t used = 0, i = 0;

	for (;;) {
		const char *p = pieces[i++ % 4];
		if (used + strlen(p) > n) {
			break;
		}
		memcpy(s + used, p, strlen(p));
		used += strlen(p);
	}
	s[used] = '\0';
	return s;
}

static void test_json_fit_shortens_body_on_boundary(void)
{
	char *body = multibyte_text(5000), *out;
	char err[200] = "";
	size_t len = 0;
	cJSON *json, *b;

	CHECK(strlen(body) >= 4990);
	out = pg_push_json_fit(make_alert, NULL, "Title", body, 4096, &len, err, sizeof(err));
	CHECK(out != NULL);
	CHECK(len <= 4096);
	CHECK(len > 4096 - 4); /* shortened to fit, no more */
	CHECK_EQ(strlen(out), len);
	CHECK(pg_push_utf8_valid(out, len));
	json = cJSON_Parse(out);
	b = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(json, "aps"), "alert"),
	                        "body");
	CHECK(cJSON_IsString(b));
	/* a prefix of the original, ending on a character boundary */
	CHECK(strncmp(body, b->valuestring, strlen(b->valuestring)) == 0);
	CHECK(pg_push_utf8_valid(b->valuestring, strlen(b->valuestring)));
	CHECK_STR(cJSON_GetObjectItem(
	              cJSON_GetObjectItem(cJSON_GetObjectItem(json, "aps"), "alert"), "title")
	              ->valuestring,
	          "Title");
	cJSON_Delete(json);
	free(out);
	free(body);
}

static void test_json_fit_shortens_title_once_body_is_empty(void)
{
	char *title = multibyte_text(5000), *out;
	char err[200] = "";
	size_t len = 0;
	cJSON *json, *t;

	out = pg_push_json_fit(make_alert, NULL, title, "body", 4096, &len, err, sizeof(err));
	CHECK(out != NULL);
	CHECK(len <= 4096);
	json = cJSON_Parse(out);
	t = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(json, "aps"), "alert"),
	                        "title");
	/* as long as fits: a cut character is at most 4 bytes wide */
	CHECK(len > 4096 - 4);
	CHECK(cJSON_IsString(t) && strlen(t->valuestring) > 3000);
	CHECK(strncmp(title, t->valuestring, strlen(t->valuestring)) == 0);
	/* the body went first */
	CHECK_STR(cJSON_GetObjectItem(
	              cJSON_GetObjectItem(cJSON_GetObjectItem(json, "aps"), "alert"), "body")
	              ->valuestring,
	          "");
	cJSON_Delete(json);
	free(out);
	free(title);
}

static void test_json_fit_escapes_and_invalid_utf8(void)
{
	char body[1100], *out;
	char err[200] = "";
	size_t len = 0;

	/* control characters print as \u0001: six bytes each */
	memset(body, 1, 1000);
	body[1000] = '\0';
	out = pg_push_json_fit(make_alert, NULL, "", body, 4096, &len, err, sizeof(err));
	CHECK(out != NULL && len <= 4096 && len > 4080);
	free(out);
	/* invalid bytes become U+FFFD: the JSON is valid UTF-8 */
	out =
	    pg_push_json_fit(make_alert, NULL, "t\xff", "b\x80\xc3", 4096, &len, err, sizeof(err));
	CHECK(out != NULL);
	CHECK(pg_push_utf8_valid(out, len));
	CHECK_CONTAINS(out, "\"t\xef\xbf\xbd\"");
	CHECK_CONTAINS(out, "\"b\xef\xbf\xbd\xef\xbf\xbd\"");
	free(out);
	/* too small for the payload even without title and body */
	out = pg_push_json_fit(make_alert, NULL, "t", "b", 10, &len, err, sizeof(err));
	CHECK(out == NULL);
	CHECK_CONTAINS(err, "without title and body");
}

/* ---- Retry-After ---- */

static void test_retry_after(void)
{
	/* RFC 9110's example date is 784111777 s after the epoch */
	int64_t date_ms = 784111777000LL;

	CHECK_EQ(pg_push_retry_after_ms(NULL, 0), -1);
	CHECK_EQ(pg_push_retry_after_ms("", 0), -1);
	CHECK_EQ(pg_push_retry_after_ms("120", 0), 120000);
	CHECK_EQ(pg_push_retry_after_ms(" 0 ", 0), 0);
	CHECK_EQ(pg_push_retry_after_ms("12a", 0), -1);
	CHECK_EQ(pg_push_retry_after_ms("-5", 0), -1);
	/* absurd values are capped at a week, never overflow */
	CHECK_EQ(pg_push_retry_after_ms("99999999999999999999999", 0), 7 * 86400 * 1000LL);
	CHECK_EQ(pg_push_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", date_ms - 5000), 5000);
	CHECK_EQ(pg_push_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", date_ms + 5000), 0);
	CHECK_EQ(pg_push_retry_after_ms("Wed, 02 Dec 2026 01:00:00 GMT", 1796173200000LL - 30000),
	         30000);
	CHECK_EQ(pg_push_retry_after_ms("Sat, 29 Feb 2020 00:00:01 GMT", 1582934400000LL), 1000);
	/* not IMF-fixdate */
	CHECK_EQ(pg_push_retry_after_ms("Sunday, 06-Nov-94 08:49:37 GMT", 0), -1);
	CHECK_EQ(pg_push_retry_after_ms("Sun Nov  6 08:49:37 1994", 0), -1);
	CHECK_EQ(pg_push_retry_after_ms("Sun, 06 Nov 1994 08:49:37 UTC", 0), -1);
	CHECK_EQ(pg_push_retry_after_ms("Sun, 06 Xyz 1994 08:49:37 GMT", 0), -1);
	CHECK_EQ(pg_push_retry_after_ms("Sun, 06 Nov 1994 25:49:37 GMT", 0), -1);
}

/* ---- forms, headers, names ---- */

static void test_form_encode(void)
{
	const char *pairs[] = {"grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer",
	                       "skip",       NULL,
	                       "a b",        "x+y&z=\xc3\xa9~._-"};
	char *f = pg_push_form_encode(pairs, 3);

	CHECK_STR(f, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
	             "&a%20b=x%2By%26z%3D%C3%A9~._-");
	free(f);
	f = pg_push_form_encode(pairs, 0);
	CHECK_STR(f, "");
	free(f);
}

static void test_request_headers(void)
{
	struct pg_push_request req = {0};
	int i;

	CHECK_EQ(pg_push_request_header(&req, "apns-topic: %s", "com.example"), 0);
	CHECK_STR(req.headers[0], "apns-topic: com.example");
	/* a value with a line break would smuggle a header in: refused */
	CHECK_EQ(pg_push_request_header(&req, "apns-topic: %s", "x\r\nevil: 1"), -1);
	CHECK_EQ(req.nheaders, 1);
	for (i = 1; i < PG_PUSH_MAX_HEADERS; i++) {
		CHECK_EQ(pg_push_request_header(&req, "h%d: v", i), 0);
	}
	CHECK_EQ(pg_push_request_header(&req, "one: too many"), -1);
	CHECK_EQ(req.nheaders, PG_PUSH_MAX_HEADERS);
	pg_push_request_clear(&req);
	CHECK_EQ(req.nheaders, 0);
	CHECK(req.url == NULL && req.body == NULL);
}

static void test_platform_names_and_providers(void)
{
	static const char *const names[] = {"apns", "fcm", "huawei", "xiaomi", "webhook"};
	enum pg_push_platform p;
	unsigned i;

	for (i = 0; i < PG_PUSH_PLATFORM_COUNT; i++) {
		CHECK_STR(pg_push_platform_name((enum pg_push_platform)i), names[i]);
		CHECK_EQ(pg_push_platform_parse(names[i], &p), 0);
		CHECK_EQ(p, i);
		CHECK(pg_push_provider(p) != NULL);
		CHECK_STR(pg_push_provider(p)->name, names[i]);
		CHECK_EQ(pg_push_provider(p)->platform, p);
	}
	CHECK_EQ(pg_push_platform_parse("APNS", &p), -1);
	CHECK_EQ(pg_push_platform_parse("gcm", &p), -1);
	CHECK_EQ(pg_push_platform_parse("", &p), -1);
	CHECK_EQ(pg_push_platform_parse(NULL, &p), -1);
	CHECK_STR(pg_push_platform_name(PG_PUSH_PLATFORM_COUNT), "?");
	CHECK(pg_push_provider(PG_PUSH_PLATFORM_COUNT) == NULL);
}

static void test_stable_hash(void)
{
	/* FNV-1a 64: published values, so ids derived from types never move */
	CHECK_EQ(pg_push_hash(""), 0xcbf29ce484222325ULL);
	CHECK_EQ(pg_push_hash("a"), 0xaf63dc4c8601ec8cULL);
	CHECK_EQ(pg_push_hash("foobar"), 0x85944171f73967e8ULL);
}

static void test_base_url(void)
{
	char *u = pg_push_base_url("https://h:8443//", "https://d");

	CHECK_STR(u, "https://h:8443");
	free(u);
	u = pg_push_base_url(NULL, "https://d");
	CHECK_STR(u, "https://d");
	free(u);
	u = pg_push_base_url("", "https://d/");
	CHECK_STR(u, "https://d");
	free(u);
}

static void test_result_detail_cut_on_boundary(void)
{
	struct pg_push_result res;
	char *long_detail = multibyte_text(1000);

	memset(&res, 0, sizeof(res));
	pg_push_result_set(&res, PG_PUSH_RETRY, "http_5xx", long_detail);
	CHECK_EQ(res.outcome, PG_PUSH_RETRY);
	CHECK_STR(res.reason, "http_5xx");
	CHECK(strlen(res.detail) <= sizeof(res.detail) - 1);
	CHECK(strlen(res.detail) >= sizeof(res.detail) - 4);
	CHECK(pg_push_utf8_valid(res.detail, strlen(res.detail)));
	/* one log line: no line breaks */
	pg_push_result_set(&res, PG_PUSH_FAILED, "bad_request", "a\nb\r\tc");
	CHECK_STR(res.detail, "a b  c");
	pg_push_result_set(&res, PG_PUSH_DELIVERED, "", NULL);
	CHECK_STR(res.detail, "");
	free(long_detail);
}

/* ---- OAuth2 answers ---- */

static void test_oauth_parse_and_cache_times(void)
{
	struct pg_push_oauth o = {0};
	char err[300] = "";
	const char *a =
	    "{\"access_token\":\"ya29.abc\",\"expires_in\":3599,\"token_type\":\"Bearer\"}";

	CHECK(!pg_push_oauth_fresh(&o, 0));
	CHECK_EQ(pg_push_oauth_parse(&o, 200, a, strlen(a), 1000, err, sizeof(err)), 0);
	CHECK_STR(o.access_token, "ya29.abc");
	CHECK_EQ(o.expires_at_ms, 1000 + 3599000);
	/* a long-lived token is renewed 60 s before it expires */
	CHECK_EQ(o.renew_at_ms, 1000 + 3599000 - 60000);
	CHECK(pg_push_oauth_fresh(&o, 1000 + 3599000 - 60001));
	CHECK(!pg_push_oauth_fresh(&o, 1000 + 3599000 - 60000));
	/* a short-lived one 10% of its life before */
	a = "{\"access_token\":\"t2\",\"expires_in\":\"100\"}";
	CHECK_EQ(pg_push_oauth_parse(&o, 200, a, strlen(a), 0, err, sizeof(err)), 0);
	CHECK_STR(o.access_token, "t2");
	CHECK_EQ(o.renew_at_ms, 90000);
	/* no expires_in: an hour */
	a = "{\"access_token\":\"t3\"}";
	CHECK_EQ(pg_push_oauth_parse(&o, 200, a, strlen(a), 0, err, sizeof(err)), 0);
	CHECK_EQ(o.expires_at_ms, 3600000);
	pg_push_oauth_clear(&o);
	CHECK(o.access_token == NULL);
}

static void test_oauth_errors_leave_the_token(void)
{
	struct pg_push_oauth o = {0};
	char err[300] = "";
	const char *good = "{\"access_token\":\"keep\",\"expires_in\":3600}";
	const char *a;

	CHECK_EQ(pg_push_oauth_parse(&o, 200, good, strlen(good), 0, err, sizeof(err)), 0);
	a = "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT Signature.\"}";
	CHECK_EQ(pg_push_oauth_parse(&o, 400, a, strlen(a), 0, err, sizeof(err)), -1);
	CHECK_CONTAINS(err, "HTTP 400");
	CHECK_CONTAINS(err, "invalid_grant");
	CHECK_STR(o.access_token, "keep");
	a = "{\"token_type\":\"Bearer\"}";
	CHECK_EQ(pg_push_oauth_parse(&o, 200, a, strlen(a), 0, err, sizeof(err)), -1);
	CHECK_CONTAINS(err, "access_token");
	a = "{\"access_token\":\"two words\"}";
	CHECK_EQ(pg_push_oauth_parse(&o, 200, a, strlen(a), 0, err, sizeof(err)), -1);
	CHECK(strstr(err, "two words") == NULL); /* never a token in a message */
	a = "{\"access_token\":\"t\",\"expires_in\":0}";
	CHECK_EQ(pg_push_oauth_parse(&o, 200, a, strlen(a), 0, err, sizeof(err)), -1);
	CHECK_CONTAINS(err, "expires_in");
	/* beyond long long: refused, not converted (UB; fuzz_push_answer's crash input) */
	a = "{\"access_token\":\"t\",\"expires_in\":-1e300}";
	CHECK_EQ(pg_push_oauth_parse(&o, 200, a, strlen(a), 0, err, sizeof(err)), -1);
	CHECK_CONTAINS(err, "expires_in");
	CHECK_STR(o.access_token, "keep");
	a = "not json\n<html>";
	CHECK_EQ(pg_push_oauth_parse(&o, 200, a, strlen(a), 0, err, sizeof(err)), -1);
	CHECK_CONTAINS(err, "not json <html>");
	CHECK_EQ(pg_push_oauth_parse(&o, 502, NULL, 0, 0, err, sizeof(err)), -1);
	CHECK_CONTAINS(err, "HTTP 502");
	CHECK_STR(o.access_token, "keep");
	pg_push_oauth_clear(&o);
}

int main(void)
{
	RUN(test_utf8_valid_and_count);
	RUN(test_utf8_prefix_bytes_never_splits);
	RUN(test_utf8_prefix_chars);
	RUN(test_utf8_shorten_in_place);
	RUN(test_utf8_clean_replaces_invalid_bytes);
	RUN(test_json_fit_shortens_body_on_boundary);
	RUN(test_json_fit_shortens_title_once_body_is_empty);
	RUN(test_json_fit_escapes_and_invalid_utf8);
	RUN(test_retry_after);
	RUN(test_form_encode);
	RUN(test_request_headers);
	RUN(test_platform_names_and_providers);
	RUN(test_stable_hash);
	RUN(test_base_url);
	RUN(test_result_detail_cut_on_boundary);
	RUN(test_oauth_parse_and_cache_times);
	RUN(test_oauth_errors_leave_the_token);
	return check_exit();
}
