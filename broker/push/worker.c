/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A provider's delivery worker (worker.h): one thread, one libcurl multi
 * handle, every push a POST multiplexed over one HTTP/2 connection per
 * host.
 *
 * Threads. The broker thread submits: the job is copied into a transfer
 * (struct xfer, taken from the free list when one is there), appended to
 * the input list under mu, and curl_multi_wakeup interrupts the worker's
 * curl_multi_poll (only when the list was empty: a non-empty list has a
 * wake-up on its way already). The worker thread takes the whole input
 * list at once, makes sure the credentials are ready (authorize, once per
 * batch), builds each request and hands it to the multi handle; finished
 * transfers become one pg_push_result each on the shared result queue, and
 * the transfer, with its easy handle and answer buffer, goes back to the
 * free list. Everything below "worker thread only" in struct
 * pg_push_worker, the multi handle's transfers and the provider's state
 * belong to the worker thread; pending is atomic.
 *
 * Connections. CURLMOPT_MAX_HOST_CONNECTIONS 1 with CURLOPT_PIPEWAIT: all
 * requests to a host share one connection, up to max_streams at a time;
 * the others wait in libcurl's pending queue until a stream frees up. A
 * GOAWAY, a refused stream, a reset or a dead connection fails only the
 * transfers it cuts off (libcurl itself resends refused streams it knows
 * the server never processed), and the next transfers open a new
 * connection. Every request has a timeout; connections idle longer than
 * idle_max_s are not reused; TCP keepalive and TCP_USER_TIMEOUT (the
 * request timeout) let the kernel drop a connection whose peer vanished.
 * A stalled server that still acknowledges at the TCP level costs each
 * request its timeout (RETRY "timeout") and keeps the connection.
 *
 * Answers go to the provider's classify. VERDICT_REAUTHORIZE renews the
 * credentials (authorize(force), once per renewal: a hundred transfers
 * that all come back with an expired token cause one renewal, the others
 * are rebuilt with the new credentials) and resends the job once; a second
 * refusal is FAILED "auth". A failed authorize is not retried for
 * WORKER_AUTH_HOLDOFF_MS, so a dead token endpoint costs one blocking
 * attempt per second, not one per push.
 *
 * Logging (pg_log) is per change of state, never per push: the first
 * transport error after an answer, the first answer after errors, and the
 * same for credentials.
 */
#include "worker.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <curl/curl.h>

#include "log.h"

#define WORKER_POLL_MS 1000
#define WORKER_BODY_MAX (64 * 1024) /* answer bytes kept for classify; the rest is dropped */
#define WORKER_BODY_KEEP 4096       /* a transfer on the free list keeps a buffer this big */
#define WORKER_FREE_MAX 128         /* idle transfers kept for reuse */
#define WORKER_AUTH_HOLDOFF_MS 1000
#define WORKER_DEFAULT_STREAMS 1000
#define WORKER_DEFAULT_IDLE_S 60
#define WORKER_DEFAULT_TIMEOUT_MS 10000

/* One job on its way: in the input list, in flight, or idle on the free list. */
struct xfer {
	struct xfer *next, *prev; /* lists: input and free use next only */
	CURL *easy;               /* made on first send, kept for reuse */
	struct pg_push_job job;
	struct pg_push_request req;
	struct curl_slist *headers;
	char *body; /* the answer, NUL-terminated, at most WORKER_BODY_MAX bytes */
	size_t body_len;
	size_t body_cap;
	char retry_after[64];
	bool has_retry_after;
	bool reauthorized;  /* resent once after VERDICT_REAUTHORIZE */
	uint64_t auth_gen;  /* the worker's auth_gen when the request was built */
	int64_t started_ms; /* monotonic, when first sent; 0 before */
	char errbuf[CURL_ERROR_SIZE];
};

enum worker_reach { REACH_UNKNOWN, REACH_UP, REACH_DOWN };

struct pg_push_worker {
	const struct pg_push_provider_ops *ops;
	void *state;
	struct pg_push_transport transport; /* ca_file is a copy we own */
	uint32_t max_streams;
	long idle_max_s;
	struct pg_push_results *results;
	CURLM *multi; /* made and freed on the broker thread, driven by the worker */
	pthread_t thread;
	atomic_size_t pending;

	pthread_mutex_t mu; /* guards the input list, the free list and stopping */
	struct xfer *in_head, *in_tail;
	struct xfer *free_list;
	size_t nfree;
	bool stopping;
	long grace_ms;

	/* worker thread only */
	struct xfer *flying; /* in the multi handle */
	size_t nflying;
	bool stop_seen;
	uint64_t auth_gen;        /* successful forced renewals so far */
	int64_t auth_retry_at_ms; /* monotonic; no authorize before this (0: any time) */
	bool auth_failing;
	char auth_err[256]; /* why the last authorize failed */
	enum worker_reach reach;
};

static pthread_once_t worker_curl_once = PTHREAD_ONCE_INIT;
static CURLcode worker_curl_rc;

static void worker_curl_init(void)
{
	/* Never paired with curl_global_cleanup: other libcurl users may share
	 * the process, and the plugin can be loaded once per process only. */
	worker_curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------- transfers ---------- */

static void xfer_destroy(struct xfer *x)
{
	if (x->easy) {
		curl_easy_cleanup(x->easy);
	}
	pg_push_request_clear(&x->req);
	curl_slist_free_all(x->headers);
	free(x->body);
	free(x);
}

static void xfer_list_destroy(struct xfer *x)
{
	while (x) {
		struct xfer *next = x->next;

		xfer_destroy(x);
		x = next;
	}
}

/* Worker thread: a finished transfer goes back to the free list (or away). */
static void xfer_release(struct pg_push_worker *w, struct xfer *x)
{
	/*
	 * The easy handle is not reused: libcurl 7.88 can still have frames of
	 * the finished stream on its way when the handle is removed, and a
	 * handle reset and added again for a new stream then fails the whole
	 * connection ("Error in the HTTP2 framing layer", every stream on it
	 * lost until its timeout). A fresh handle costs microseconds.
	 */
	if (x->easy) {
		curl_easy_cleanup(x->easy);
		x->easy = NULL;
	}
	pg_push_request_clear(&x->req);
	curl_slist_free_all(x->headers);
	x->headers = NULL;
	if (x->body_cap > WORKER_BODY_KEEP) {
		free(x->body);
		x->body = NULL;
		x->body_cap = 0;
	}
	x->body_len = 0;
	pthread_mutex_lock(&w->mu);
	if (w->nfree < WORKER_FREE_MAX) {
		x->next = w->free_list;
		w->free_list = x;
		w->nfree++;
		x = NULL;
	}
	pthread_mutex_unlock(&w->mu);
	if (x) {
		xfer_destroy(x);
	}
}

static void flying_link(struct pg_push_worker *w, struct xfer *x)
{
	x->prev = NULL;
	x->next = w->flying;
	if (w->flying) {
		w->flying->prev = x;
	}
	w->flying = x;
	w->nflying++;
}

static void flying_unlink(struct pg_push_worker *w, struct xfer *x)
{
	if (x->prev) {
		x->prev->next = x->next;
	} else {
		w->flying = x->next;
	}
	if (x->next) {
		x->next->prev = x->prev;
	}
	x->next = x->prev = NULL;
	w->nflying--;
}

static size_t xfer_on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nmemb;
	size_t keep = WORKER_BODY_MAX - x->body_len;

	if (keep > n) {
		keep = n;
	}
	if (keep == 0) {
		return n;
	}
	if (x->body_len + keep + 1 > x->body_cap) {
		size_t cap = x->body_cap ? x->body_cap : 1024;
		char *grown;

		while (cap < x->body_len + keep + 1) {
			cap *= 2;
		}
		grown = realloc(x->body, cap);
		if (grown == NULL) {
			return 0; /* CURLE_WRITE_ERROR: a network-class RETRY */
		}
		x->body = grown;
		x->body_cap = cap;
	}
	memcpy(x->body + x->body_len, data, keep);
	x->body_len += keep;
	x->body[x->body_len] = '\0';
	return n;
}

/* Keeps Retry-After of the last response (a status line starts a new one). */
static size_t xfer_on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	static const char name[] = "retry-after:";
	struct xfer *x = ud;
	size_t n = size * nmemb;
	const char *v, *end;
	size_t len;

	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		x->has_retry_after = false;
	} else if (n > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
		v = data + sizeof(name) - 1;
		end = data + n;
		while (v < end && (*v == ' ' || *v == '\t')) {
			v++;
		}
		while (end > v &&
		       (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t')) {
			end--;
		}
		len = (size_t)(end - v);
		if (len >= sizeof(x->retry_after)) {
			len = sizeof(x->retry_after) - 1;
		}
		memcpy(x->retry_after, v, len);
		x->retry_after[len] = '\0';
		x->has_retry_after = true;
	}
	return n;
}

/*
 * A new connection's socket: sent data unacknowledged for a request timeout
 * makes the kernel drop the connection (TCP_USER_TIMEOUT), so a peer that
 * vanished silently fails the streams on it at once and the next requests
 * reconnect, instead of each timing out on it for the ~15 minutes TCP
 * retransmits; it also bounds the keepalive probes of an idle connection.
 * Best effort: an error leaves the socket as it was.
 */
static int xfer_on_socket(void *ud, curl_socket_t fd, curlsocktype purpose)
{
	const struct pg_push_worker *w = ud;
	unsigned int ms = (unsigned int)w->transport.request_timeout_ms;

	if (purpose == CURLSOCKTYPE_IPCXN) {
		(void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
	}
	return CURL_SOCKOPT_OK;
}

/* Sets up x's easy handle for its built request and adds it. 0, or -1 with err. */
static int xfer_send(struct pg_push_worker *w, struct xfer *x, char *err, size_t errlen)
{
	struct curl_slist *h;
	CURL *e;
	size_t i;

	if (x->easy == NULL) {
		x->easy = curl_easy_init();
		if (x->easy == NULL) {
			snprintf(err, errlen, "curl_easy_init failed");
			return -1;
		}
	} else {
		curl_easy_reset(x->easy);
	}
	e = x->easy;
	curl_slist_free_all(x->headers);
	x->headers = NULL;
	for (i = 0; i <= x->req.nheaders; i++) {
		/* the last one: no "Expect: 100-continue" pause for HTTP/1.1 bodies */
		h = curl_slist_append(x->headers,
		                      i < x->req.nheaders ? x->req.headers[i] : "Expect:");
		if (h == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		x->headers = h;
	}
	x->body_len = 0;
	x->has_retry_after = false;
	x->errbuf[0] = '\0';

	pg_push_transport_apply(&w->transport, e);
	curl_easy_setopt(e, CURLOPT_URL, x->req.url);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->req.body ? x->req.body : "");
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->req.body_len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, xfer_on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, xfer_on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, w->transport.request_timeout_ms);
	curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, w->idle_max_s);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, xfer_on_socket);
	curl_easy_setopt(e, CURLOPT_SOCKOPTDATA, (void *)w);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)x);
	if (curl_multi_add_handle(w->multi, e) != CURLM_OK) {
		snprintf(err, errlen, "curl_multi_add_handle failed");
		return -1;
	}
	flying_link(w, x);
	return 0;
}

/* ---------- results ---------- */

static void result_init(const struct xfer *x, struct pg_push_result *r)
{
	memset(r, 0, sizeof(*r));
	r->id = x->job.id;
	r->platform = x->job.platform;
	memcpy(r->uid, x->job.uid, sizeof(r->uid));
	memcpy(r->device, x->job.device, sizeof(r->device));
	memcpy(r->token, x->job.token, sizeof(r->token));
	r->retry_after_ms = -1;
	r->latency_ms = x->started_ms ? mono_ms() - x->started_ms : 0;
}

/* Posts r for x's job and recycles x. */
static void xfer_answer(struct pg_push_worker *w, struct xfer *x, const struct pg_push_result *r)
{
	if (pg_push_results_put(w->results, r) != 0) {
		pg_log(PG_LOG_ERR, "pigeon_push: %s: out of memory: push %llu's result is lost",
		       w->ops->name, (unsigned long long)r->id);
	}
	atomic_fetch_sub(&w->pending, 1);
	xfer_release(w, x);
}

static void xfer_fail(struct pg_push_worker *w, struct xfer *x, enum pg_push_outcome outcome,
                      const char *reason, const char *detail)
{
	struct pg_push_result r;

	result_init(x, &r);
	r.outcome = outcome;
	snprintf(r.reason, sizeof(r.reason), "%s", reason);
	snprintf(r.detail, sizeof(r.detail), "%s", detail);
	xfer_answer(w, x, &r);
}

/* Logs a change of reachability: the first error after answers, and back. */
static void worker_reach(struct pg_push_worker *w, bool up, const char *detail)
{
	if (up) {
		if (w->reach == REACH_DOWN) {
			pg_log(PG_LOG_NOTICE, "pigeon_push: %s: provider reachable again",
			       w->ops->name);
		}
		w->reach = REACH_UP;
	} else {
		if (w->reach != REACH_DOWN) {
			pg_log(PG_LOG_WARNING, "pigeon_push: %s: provider unreachable: %s",
			       w->ops->name, detail);
		}
		w->reach = REACH_DOWN;
	}
}

/*
 * Makes the provider's credentials ready. 0, or -1 with w->auth_err set
 * (also without asking while a failure's hold-off lasts).
 */
static int worker_authorize(struct pg_push_worker *w, bool force)
{
	char err[sizeof(w->auth_err)] = "";
	int64_t now = mono_ms();

	if (w->ops->authorize == NULL) {
		return 0;
	}
	if (w->auth_retry_at_ms != 0 && now < w->auth_retry_at_ms) {
		return -1;
	}
	if (w->ops->authorize(w->state, force, wall_ms(), err, sizeof(err)) != 0) {
		snprintf(w->auth_err, sizeof(w->auth_err), "%s", err[0] ? err : "authorize failed");
		w->auth_retry_at_ms = mono_ms() + WORKER_AUTH_HOLDOFF_MS;
		if (!w->auth_failing) {
			pg_log(PG_LOG_WARNING, "pigeon_push: %s: credentials unavailable: %s",
			       w->ops->name, w->auth_err);
			w->auth_failing = true;
		}
		return -1;
	}
	if (w->auth_failing) {
		pg_log(PG_LOG_NOTICE, "pigeon_push: %s: credentials ready again", w->ops->name);
		w->auth_failing = false;
	}
	w->auth_retry_at_ms = 0;
	if (force) {
		w->auth_gen++;
	}
	return 0;
}

/* Builds x's request with the current credentials and sends it. */
static void xfer_start(struct pg_push_worker *w, struct xfer *x)
{
	char err[256] = "";

	pg_push_request_clear(&x->req);
	x->auth_gen = w->auth_gen;
	if (w->ops->build(w->state, &x->job, &x->req, err, sizeof(err)) != 0) {
		xfer_fail(w, x, PG_PUSH_FAILED, "build", err);
		return;
	}
	if (x->started_ms == 0) {
		x->started_ms = mono_ms();
	}
	if (xfer_send(w, x, err, sizeof(err)) != 0) {
		xfer_fail(w, x, PG_PUSH_RETRY, "internal", err);
	}
}

/* VERDICT_REAUTHORIZE: renew (unless done since x was built) and resend once. */
static void xfer_reauthorize(struct pg_push_worker *w, struct xfer *x, struct pg_push_result *r)
{
	if (x->reauthorized) {
		r->outcome = PG_PUSH_FAILED;
		snprintf(r->reason, sizeof(r->reason), "auth");
		if (r->detail[0] == '\0') {
			snprintf(r->detail, sizeof(r->detail),
			         "credentials refused again after renewal (HTTP %ld)",
			         r->http_status);
		}
		xfer_answer(w, x, r);
		return;
	}
	if (w->stop_seen) {
		/* stopping: no blocking renewal now; the push stays in the outbox */
		atomic_fetch_sub(&w->pending, 1);
		xfer_release(w, x);
		return;
	}
	x->reauthorized = true;
	if (x->auth_gen == w->auth_gen && worker_authorize(w, true) != 0) {
		xfer_fail(w, x, PG_PUSH_RETRY, "auth_unavailable", w->auth_err);
		return;
	}
	xfer_start(w, x);
}

/* A transfer finished (it is out of the multi handle and the flying list). */
static void xfer_done(struct pg_push_worker *w, struct xfer *x, CURLcode rc)
{
	struct pg_push_response resp;
	struct pg_push_result r;
	long status = 0;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	result_init(x, &r);
	if (rc != CURLE_OK) {
		/* http_status stays 0: a status line without the rest is no answer */
		r.outcome = PG_PUSH_RETRY;
		snprintf(r.reason, sizeof(r.reason), "%s",
		         rc == CURLE_OPERATION_TIMEDOUT ? "timeout" : "network");
		snprintf(r.detail, sizeof(r.detail), "%s",
		         x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
		worker_reach(w, false, r.detail);
		xfer_answer(w, x, &r);
		return;
	}
	worker_reach(w, true, NULL);
	memset(&resp, 0, sizeof(resp));
	resp.error = "";
	resp.status = status;
	resp.body = x->body ? x->body : "";
	resp.body_len = x->body_len;
	resp.retry_after = x->has_retry_after ? x->retry_after : NULL;
	if (w->ops->classify(w->state, &x->job, &resp, &r) == PG_PUSH_VERDICT_REAUTHORIZE) {
		r.http_status = status;
		xfer_reauthorize(w, x, &r);
		return;
	}
	r.http_status = status;
	xfer_answer(w, x, &r);
}

/* ---------- the thread ---------- */

static void worker_intake(struct pg_push_worker *w, struct xfer *batch)
{
	bool ready = worker_authorize(w, false) == 0;

	while (batch) {
		struct xfer *x = batch;

		batch = x->next;
		x->next = NULL;
		if (!ready) {
			xfer_fail(w, x, PG_PUSH_RETRY, "auth_unavailable", w->auth_err);
		} else {
			xfer_start(w, x);
		}
	}
}

static void worker_collect(struct pg_push_worker *w)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(w->multi, &left)) != NULL) {
		CURL *e = m->easy_handle;
		CURLcode rc = m->data.result;
		void *p = NULL;

		if (m->msg != CURLMSG_DONE) {
			continue;
		}
		curl_easy_getinfo(e, CURLINFO_PRIVATE, &p);
		curl_multi_remove_handle(w->multi, e); /* m is gone from here on */
		flying_unlink(w, p);
		xfer_done(w, p, rc);
	}
}

/*
 * Under mu: takes as many input jobs as there are free streams. The
 * worker, not libcurl, queues what does not fit: a transfer added beyond
 * the streams a connection has makes libcurl 7.88 open further connections
 * (or a refused stream close this one), where one connection, always
 * full, is what a provider wants; and a request's timeout starts when it
 * is sent, not while it waits for a stream.
 */
static struct xfer *worker_take_input(struct pg_push_worker *w)
{
	size_t room = w->max_streams > w->nflying ? w->max_streams - w->nflying : 0;
	struct xfer *head = w->in_head, *x = head;

	if (head == NULL || room == 0) {
		return NULL;
	}
	while (--room > 0 && x->next != NULL) {
		x = x->next;
	}
	w->in_head = x->next;
	if (w->in_head == NULL) {
		w->in_tail = NULL;
	}
	x->next = NULL;
	return head;
}

static void *worker_main(void *arg)
{
	struct pg_push_worker *w = arg;
	int64_t deadline = 0;
	bool poll_failed = false;

	for (;;) {
		struct xfer *batch = NULL;
		int running, timeout = WORKER_POLL_MS;
		CURLMcode mc;

		pthread_mutex_lock(&w->mu);
		if (w->stopping && !w->stop_seen) {
			w->stop_seen = true;
			deadline = mono_ms() + w->grace_ms;
		}
		if (!w->stop_seen) {
			batch = worker_take_input(w);
		}
		pthread_mutex_unlock(&w->mu);
		if (batch) {
			worker_intake(w, batch);
		}
		curl_multi_perform(w->multi, &running);
		worker_collect(w);
		pthread_mutex_lock(&w->mu);
		if (w->in_head != NULL && w->nflying < w->max_streams && !w->stop_seen) {
			timeout = 0; /* streams freed up and jobs wait: no sleep */
		}
		pthread_mutex_unlock(&w->mu);
		if (w->stop_seen) {
			int64_t left = deadline - mono_ms();

			if (w->nflying == 0 || left <= 0) {
				break;
			}
			if (left < timeout) {
				timeout = (int)left;
			}
		}
		mc = curl_multi_poll(w->multi, NULL, 0, timeout, NULL);
		if (mc != CURLM_OK) {
			struct timespec pause = {0, 10 * 1000000L}; /* no busy loop */

			if (!poll_failed) {
				pg_log(PG_LOG_ERR, "pigeon_push: %s: curl_multi_poll: %s",
				       w->ops->name, curl_multi_strerror(mc));
				poll_failed = true;
			}
			nanosleep(&pause, NULL);
		}
	}
	/* grace is over: what is still in flight gets no result */
	while (w->flying) {
		struct xfer *x = w->flying;

		curl_multi_remove_handle(w->multi, x->easy);
		flying_unlink(w, x);
		atomic_fetch_sub(&w->pending, 1);
		xfer_destroy(x);
	}
	return NULL;
}

/* ---------- the broker thread's side ---------- */

struct pg_push_worker *pg_push_worker_start(const struct pg_push_provider_ops *ops, void *state,
                                            const struct pg_push_worker_config *wc,
                                            struct pg_push_results *results, char *err,
                                            size_t errlen)
{
	struct pg_push_worker *w;
	sigset_t all, old;
	int rc;

	pthread_once(&worker_curl_once, worker_curl_init);
	if (worker_curl_rc != CURLE_OK) {
		snprintf(err, errlen, "curl_global_init: %s", curl_easy_strerror(worker_curl_rc));
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->ops = ops;
	w->state = state;
	w->results = results;
	w->transport = wc->transport;
	w->transport.ca_file = NULL;
	if (wc->transport.ca_file &&
	    (w->transport.ca_file = strdup(wc->transport.ca_file)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (w->transport.request_timeout_ms <= 0) {
		w->transport.request_timeout_ms = WORKER_DEFAULT_TIMEOUT_MS;
	}
	w->max_streams = wc->max_streams ? wc->max_streams : WORKER_DEFAULT_STREAMS;
	w->idle_max_s = wc->idle_max_s > 0 ? wc->idle_max_s : WORKER_DEFAULT_IDLE_S;
	atomic_init(&w->pending, 0);
	w->multi = curl_multi_init();
	if (w->multi == NULL) {
		snprintf(err, errlen, "curl_multi_init failed");
		goto fail;
	}
	curl_multi_setopt(w->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	curl_multi_setopt(w->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 1L);
	curl_multi_setopt(w->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, (long)w->max_streams);
	pthread_mutex_init(&w->mu, NULL);

	/* the thread takes no signals: they are the broker's main thread's */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&w->thread, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "%s: cannot start the worker thread: %s", ops->name,
		         strerror(rc));
		pthread_mutex_destroy(&w->mu);
		goto fail;
	}
	return w;
fail:
	if (w->multi) {
		curl_multi_cleanup(w->multi);
	}
	free((char *)w->transport.ca_file);
	free(w);
	return NULL;
}

int pg_push_worker_submit(struct pg_push_worker *w, const struct pg_push_job *job)
{
	struct xfer *x;
	bool wake;

	pthread_mutex_lock(&w->mu);
	x = w->free_list;
	if (x) {
		w->free_list = x->next;
		w->nfree--;
	}
	pthread_mutex_unlock(&w->mu);
	if (x == NULL && (x = calloc(1, sizeof(*x))) == NULL) {
		return -1;
	}
	x->next = x->prev = NULL;
	x->job = *job;
	x->job.uid[sizeof(x->job.uid) - 1] = '\0';
	x->job.device[sizeof(x->job.device) - 1] = '\0';
	x->job.token[sizeof(x->job.token) - 1] = '\0';
	x->job.app[sizeof(x->job.app) - 1] = '\0';
	x->job.from[sizeof(x->job.from) - 1] = '\0';
	x->job.type[sizeof(x->job.type) - 1] = '\0';
	x->job.title[sizeof(x->job.title) - 1] = '\0';
	x->job.body[sizeof(x->job.body) - 1] = '\0';
	x->reauthorized = false;
	x->started_ms = 0;
	atomic_fetch_add(&w->pending, 1);

	pthread_mutex_lock(&w->mu);
	wake = w->in_head == NULL;
	if (w->in_tail) {
		w->in_tail->next = x;
	} else {
		w->in_head = x;
	}
	w->in_tail = x;
	pthread_mutex_unlock(&w->mu);
	if (wake) {
		curl_multi_wakeup(w->multi);
	}
	return 0;
}

size_t pg_push_worker_pending(struct pg_push_worker *w)
{
	return atomic_load(&w->pending);
}

void pg_push_worker_stop_begin(struct pg_push_worker *w, long grace_ms)
{
	if (w == NULL) {
		return;
	}
	pthread_mutex_lock(&w->mu);
	if (!w->stopping) {
		w->stopping = true;
		w->grace_ms = grace_ms > 0 ? grace_ms : 0;
	}
	pthread_mutex_unlock(&w->mu);
	curl_multi_wakeup(w->multi);
}

void pg_push_worker_stop(struct pg_push_worker *w, long grace_ms)
{
	if (w == NULL) {
		return;
	}
	pg_push_worker_stop_begin(w, grace_ms);
	pthread_join(w->thread, NULL);

	xfer_list_destroy(w->in_head); /* submitted, never taken: no result */
	xfer_list_destroy(w->free_list);
	curl_multi_cleanup(w->multi);
	pthread_mutex_destroy(&w->mu);
	free((char *)w->transport.ca_file);
	free(w);
}
