/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP endpoint (http.h). libmicrohttpd runs one internal polling
 * thread (poll or epoll, no per-connection threads), so every request is
 * answered on that thread, one at a time; each answer is a few kilobytes
 * rendered from the state under its mutex. Bounds: 32 connections, 10 s
 * idle timeout, 16 KiB of request memory each.
 */
#include "http.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#define CONNECTIONS_MAX 32
#define IDLE_TIMEOUT_S 10
#define CONNECTION_MEMORY (16u * 1024u)

#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CT_TEXT "text/plain; charset=utf-8"

struct exp_http {
	struct MHD_Daemon *d;
	struct exp_state *st;
	struct exp_limits lim;
};

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	fputs("pigeon-exporter: http: ", stderr);
	vfprintf(stderr, fmt, ap);
	if (fmt[0] != '\0' && fmt[strlen(fmt) - 1] != '\n') {
		fputc('\n', stderr);
	}
}

/* Queues body (taken over, freed by MHD) with status and content type. */
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *type,
                             struct exp_buf *body)
{
	struct MHD_Response *r;
	enum MHD_Result rc;

	if (body->failed || body->data == NULL) {
		exp_buf_free(body);
		return MHD_NO; /* out of memory: MHD closes the connection */
	}
	r = MHD_create_response_from_buffer(body->len, body->data, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		exp_buf_free(body);
		return MHD_NO;
	}
	body->data = NULL; /* MHD's now */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	}
	rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	struct exp_http *h = cls;
	struct exp_buf body = {0};
	struct exp_facts f;
	double now = exp_now();
	unsigned status = MHD_HTTP_OK;
	const char *type = CT_TEXT;

	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
		exp_buf_printf(&body, "method %s not allowed: GET or HEAD\n", method);
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, CT_TEXT, &body);
	}
	if (strcmp(url, "/metrics") == 0) {
		exp_state_render(h->st, now, &h->lim, &body);
		type = CT_METRICS;
	} else if (strcmp(url, "/health/live") == 0 || strcmp(url, "/health/ready") == 0) {
		enum exp_check c = url[8] == 'l' ? EXP_CHECK_LIVE : EXP_CHECK_READY;

		exp_state_facts(h->st, now, &f);
		if (!exp_health_eval(c, &f, &h->lim, &body)) {
			status = MHD_HTTP_SERVICE_UNAVAILABLE;
		}
	} else {
		exp_buf_printf(&body, "not found: /metrics, /health/live or /health/ready\n");
		status = MHD_HTTP_NOT_FOUND;
	}
	return reply(conn, status, type, &body);
}

struct exp_http *exp_http_start(const struct sockaddr *addr, socklen_t addrlen,
                                struct exp_state *st, const struct exp_limits *lim, int *port,
                                char *err, size_t errlen)
{
	struct exp_http *h = calloc(1, sizeof(*h));
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *info;

	(void)addrlen;
	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->st = st;
	h->lim = *lim;
	if (addr->sa_family == AF_INET6) {
		flags |= MHD_USE_IPv6;
	}
	/* The port argument is ignored with MHD_OPTION_SOCK_ADDR, which carries it. */
	errno = 0;
	/* The logger first: MHD logs through it only the options that follow. */
	h->d = MHD_start_daemon(
	    flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
	    MHD_OPTION_SOCK_ADDR, addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTIONS_MAX,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY, MHD_OPTION_END);
	if (h->d == NULL) {
		snprintf(err, errlen, "cannot listen: %s",
		         errno ? strerror(errno) : "libmicrohttpd refused to start");
		free(h);
		return NULL;
	}
	info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	*port = info ? (int)info->port : 0;
	return h;
}

void exp_http_stop(struct exp_http *h)
{
	if (h == NULL) {
		return;
	}
	MHD_stop_daemon(h->d);
	free(h);
}
