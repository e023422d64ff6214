/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Blocking HTTP POST for credentials (http.h) and the transport settings
 * every push request shares. One curl easy handle per call, made and freed
 * here: token endpoints are asked about once an hour, so reusing a
 * connection is not worth a handle that outlives the call.
 *
 * Threads: a provider's worker thread (authorize). libcurl must have been
 * initialised (curl_global_init) by the plugin before any worker starts;
 * CURLOPT_NOSIGNAL keeps libcurl's timeouts off SIGALRM, which is the
 * broker's process to own.
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

/* Answers beyond this are cut: a token endpoint's JSON is a few hundred bytes. */
#define HTTP_ANSWER_MAX (1 << 20)

/* The system's hashed certificate directory (Debian's ca-certificates). */
#define HTTP_SYSTEM_CAPATH "/etc/ssl/certs"

struct http_buf {
	char *data;
	size_t len;
	size_t cap;
};

static size_t http_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct http_buf *b = ud;
	size_t n = size * nmemb;
	char *grown;

	if (b->len + n > HTTP_ANSWER_MAX) {
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < b->len + n + 1) {
			cap *= 2;
		}
		grown = realloc(b->data, cap);
		if (grown == NULL) {
			return 0;
		}
		b->data = grown;
		b->cap = cap;
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

void pg_push_transport_apply(const struct pg_push_transport *t, void *curl)
{
	CURL *c = curl;

	/*
	 * ca_file adds anchors, it does not replace the system's: CAINFO is
	 * the file and CAPATH the system's directory, and OpenSSL trusts
	 * both. Without ca_file libcurl's built-in defaults stay.
	 */
	if (t->ca_file && *t->ca_file) {
		curl_easy_setopt(c, CURLOPT_CAINFO, t->ca_file);
		curl_easy_setopt(c, CURLOPT_CAPATH, HTTP_SYSTEM_CAPATH);
	}
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (t->request_timeout_ms > 0) {
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, t->request_timeout_ms);
	}
	if (t->connect_timeout_ms > 0) {
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, t->connect_timeout_ms);
	}
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	/* a connection that died silently is found by the kernel, not by a hang */
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 30L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 15L);
	/* HTTP/2 over TLS (APNs requires it), HTTP/1.1 for plain http test servers */
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	/* a provider that redirects is misconfigured: its answer is the result */
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
}

int pg_push_http_post(const struct pg_push_transport *t, const char *url, const char *content_type,
                      const char *body, size_t body_len, struct pg_push_http_answer *ans)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct http_buf buf = {0};
	struct curl_slist *headers = NULL, *h;
	char ctype[256];
	CURL *c;
	CURLcode rc;
	int ret = -1;

	memset(ans, 0, sizeof(*ans));
	c = curl_easy_init();
	if (c == NULL) {
		snprintf(ans->error, sizeof(ans->error), "curl_easy_init failed");
		return -1;
	}
	snprintf(ctype, sizeof(ctype), "Content-Type: %s", content_type);
	/* curl_slist_append returns the list's head, or NULL leaving it as it was */
	headers = curl_slist_append(NULL, ctype);
	h = headers ? curl_slist_append(headers, "Accept: application/json") : NULL;
	/* no "Expect: 100-continue" wait for the odd kilobyte of a JWT assertion */
	h = h ? curl_slist_append(headers, "Expect:") : NULL;
	if (h == NULL) {
		snprintf(ans->error, sizeof(ans->error), "out of memory");
		goto out;
	}
	pg_push_transport_apply(t, c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &buf);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		snprintf(ans->error, sizeof(ans->error), "%.120s: %.120s", url,
		         errbuf[0] ? errbuf : curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &ans->status);
	if (buf.data == NULL && (buf.data = calloc(1, 1)) == NULL) {
		ans->status = 0;
		snprintf(ans->error, sizeof(ans->error), "out of memory");
		goto out;
	}
	ans->body = buf.data;
	ans->body_len = buf.len;
	buf.data = NULL;
	ret = 0;
out:
	free(buf.data);
	curl_slist_free_all(headers);
	curl_easy_cleanup(c);
	return ret;
}
