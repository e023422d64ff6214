/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Blocking HTTP for credentials (OAuth2 token endpoints), on a provider's
 * worker thread only: one POST through a libcurl easy handle with the same
 * trust anchors and timeouts as the pushes themselves. Never on the broker
 * thread.
 */
#ifndef PIGEON_PUSH_HTTP_H
#define PIGEON_PUSH_HTTP_H

#include <stddef.h>

struct pg_push_http_answer {
	long status;  /* 0 if no answer */
	char *body;   /* malloc'd, NUL-terminated; NULL if no answer */
	size_t body_len;
	char error[256]; /* transport error when status is 0 */
};

/* Trust anchors and timeouts for every request (set once at start). */
struct pg_push_transport {
	const char *ca_file;         /* extra anchors beside the system's, or NULL */
	long request_timeout_ms;
	long connect_timeout_ms;
};

/*
 * POSTs body (content_type) to url. 0 when an HTTP answer came (any
 * status; *ans filled, body freed by the caller with free()), -1 on a
 * transport error (ans->error says what).
 */
int pg_push_http_post(const struct pg_push_transport *t, const char *url, const char *content_type,
                      const char *body, size_t body_len, struct pg_push_http_answer *ans);

/* Applies t's trust anchors and timeouts to a curl easy handle (void *: CURL *). */
void pg_push_transport_apply(const struct pg_push_transport *t, void *curl);

#endif
