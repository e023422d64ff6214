/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The delivery worker (broker/push/worker.c) against a real HTTP/2 server
 * over TLS: push_worker_server.js under Node, with a self-signed
 * certificate made by openssl in a mkdtemp directory, listening on a port
 * of its choosing. A fake provider defined here stands in for Apple: its
 * build() POSTs to https://127.0.0.1:<port>/<the job's token>, the path
 * telling the server how to answer (see the server's header), and its
 * classify() maps statuses to outcomes.
 *
 * What is proved: a burst of 1000 jobs is answered exactly once each over
 * one connection; a GOAWAY in the middle of a burst still gives every job
 * exactly one result (cut-off ones RETRY "network", unless libcurl resent
 * a refused stream itself) and later jobs go over a new connection; a
 * stalled server costs RETRY "timeout" after the request timeout while a
 * second worker keeps delivering; statuses, Retry-After and build failures
 * become the right results; VERDICT_REAUTHORIZE renews the credentials
 * once (also for many jobs at a time) and resends once; a failed
 * authorize is RETRY "auth_unavailable" with no request sent; stop with
 * requests in flight returns within its grace and gives them no result.
 *
 * Skipped (exit 77) when node or openssl is missing.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "check.h"
#include "provider.h"
#include "worker.h"

#define SKIP 77
#define MAX_RESULTS 4096

static char tmpdir[64];
static char key_pem[128];
static char cert_pem[128];

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* ---------- the server ---------- */

struct server {
	pid_t pid;
	int port;
};

static bool server_start(struct server *s)
{
	int fds[2];
	FILE *out;
	char line[64];

	s->pid = -1;
	s->port = 0;
	if (pipe(fds) != 0) {
		return false;
	}
	s->pid = fork();
	if (s->pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		close(fds[0]);
		close(fds[1]);
		execlp("node", "node", PUSH_WORKER_SERVER_JS, key_pem, cert_pem, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	out = fdopen(fds[0], "r");
	if (out == NULL) {
		close(fds[0]);
		return false;
	}
	if (s->pid > 0 && fgets(line, sizeof(line), out) != NULL) {
		sscanf(line, "PORT %d", &s->port);
	}
	fclose(out);
	return s->port > 0;
}

static void server_stop(struct server *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
		s->pid = -1;
	}
}

struct stats {
	int sessions; /* sessions that carried a POST */
	int posts;
	int first; /* POSTs over the first session */
};

static size_t stats_body(char *data, size_t size, size_t nmemb, void *ud)
{
	char *buf = ud;
	size_t n = size * nmemb, len = strlen(buf);

	if (len + n < 256) {
		memcpy(buf + len, data, n);
		buf[len + n] = '\0';
	}
	return n;
}

/* GET /stats on its own connection (not counted: it carries no POST). */
static struct stats server_stats(const struct server *s)
{
	struct stats st = {-1, -1, -1};
	char url[64], body[256] = "";
	CURL *c = curl_easy_init();

	snprintf(url, sizeof(url), "https://127.0.0.1:%d/stats", s->port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, cert_pem);
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, stats_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	if (curl_easy_perform(c) == CURLE_OK) {
		sscanf(body, "{\"sessions\":%d,\"posts\":%d,\"first\":%d}", &st.sessions, &st.posts,
		       &st.first);
	}
	curl_easy_cleanup(c);
	return st;
}

/* ---------- the fake provider ---------- */

struct fake {
	int port;
	atomic_int authorize_calls;
	atomic_int force_calls;
	atomic_int gen;        /* the credentials' generation, sent as "bearer <gen>" */
	atomic_bool fail_auth; /* authorize fails */
};

static int fake_authorize(void *state, bool force, int64_t now_ms, char *err, size_t errlen)
{
	struct fake *f = state;

	atomic_fetch_add(&f->authorize_calls, 1);
	if (atomic_load(&f->fail_auth)) {
		snprintf(err, errlen, "token endpoint down");
		return -1;
	}
	if (force) {
		atomic_fetch_add(&f->force_calls, 1);
		atomic_fetch_add(&f->gen, 1);
	}
	return 0;
}

static int fake_build(void *state, const struct pg_push_job *job, struct pg_push_request *req,
                      char *err, size_t errlen)
{
	struct fake *f = state;
	char url[PG_PUSH_TOKEN_MAX + 64], body[64];

	if (strcmp(job->token, "nobuild") == 0) {
		snprintf(err, errlen, "cannot build this one");
		return -1;
	}
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/%s", f->port, job->token);
	snprintf(body, sizeof(body), "{\"id\":%llu}", (unsigned long long)job->id);
	req->url = strdup(url);
	req->body = strdup(body);
	req->body_len = strlen(body);
	if (req->url == NULL || req->body == NULL ||
	    pg_push_request_header(req, "content-type: application/json") != 0 ||
	    pg_push_request_header(req, "authorization: bearer %d", atomic_load(&f->gen)) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static enum pg_push_verdict fake_classify(void *state, const struct pg_push_job *job,
                                          const struct pg_push_response *resp,
                                          struct pg_push_result *res)
{
	res->retry_after_ms = -1;
	if (resp->status == 200) {
		res->outcome = PG_PUSH_DELIVERED;
	} else if (resp->status == 403) {
		return PG_PUSH_VERDICT_REAUTHORIZE;
	} else if (resp->status == 410) {
		res->outcome = PG_PUSH_REMOVE_DEVICE;
		snprintf(res->reason, sizeof(res->reason), "unregistered");
	} else if (resp->status == 429) {
		res->outcome = PG_PUSH_RETRY;
		snprintf(res->reason, sizeof(res->reason), "http_429");
		if (resp->retry_after) {
			res->retry_after_ms = atoll(resp->retry_after) * 1000;
		}
	} else if (resp->status >= 500) {
		res->outcome = PG_PUSH_RETRY;
		snprintf(res->reason, sizeof(res->reason), "http_5xx");
	} else {
		res->outcome = PG_PUSH_FAILED;
		snprintf(res->reason, sizeof(res->reason), "bad_request");
	}
	snprintf(res->detail, sizeof(res->detail), "%.*s", (int)resp->body_len, resp->body);
	return PG_PUSH_VERDICT_DONE;
}

static const struct pg_push_provider_ops fake_ops = {
    .name = "fake",
    .platform = PG_PUSH_APNS,
    .authorize = fake_authorize,
    .build = fake_build,
    .classify = fake_classify,
};

/* ---------- fixture: a server, a fake provider, a worker ---------- */

struct fx {
	struct server srv;
	struct fake fake;
	struct pg_push_results *q;
	struct pg_push_worker *w;
	struct pg_push_result *got; /* MAX_RESULTS */
	size_t ngot;
};

static bool fx_init(struct fx *f, long request_timeout_ms)
{
	struct pg_push_worker_config wc;
	char err[256] = "";

	memset(f, 0, sizeof(*f));
	f->got = calloc(MAX_RESULTS, sizeof(*f->got));
	if (!server_start(&f->srv)) {
		fprintf(stderr, "cannot start the node server\n");
		CHECK(false);
		return false;
	}
	f->fake.port = f->srv.port;
	atomic_init(&f->fake.gen, 0);
	f->q = pg_push_results_new();
	memset(&wc, 0, sizeof(wc));
	wc.transport.ca_file = cert_pem;
	wc.transport.request_timeout_ms = request_timeout_ms;
	wc.transport.connect_timeout_ms = 5000;
	wc.max_streams = 1000;
	wc.idle_max_s = 60;
	f->w = pg_push_worker_start(&fake_ops, &f->fake, &wc, f->q, err, sizeof(err));
	CHECK(f->w != NULL);
	if (f->w == NULL) {
		fprintf(stderr, "pg_push_worker_start: %s\n", err);
		return false;
	}
	return true;
}

static void fx_done(struct fx *f)
{
	pg_push_worker_stop(f->w, 1000);
	pg_push_results_free(f->q);
	server_stop(&f->srv);
	free(f->got);
}

static void submit(struct fx *f, uint64_t id, const char *path)
{
	struct pg_push_job job;

	memset(&job, 0, sizeof(job));
	job.id = id;
	job.platform = PG_PUSH_APNS;
	snprintf(job.uid, sizeof(job.uid), "u%llu", (unsigned long long)id);
	snprintf(job.device, sizeof(job.device), "d%llu", (unsigned long long)id);
	snprintf(job.token, sizeof(job.token), "%s", path);
	job.kind = PG_PUSH_KIND_CHAT;
	job.count = 1;
	job.attempt = 1;
	snprintf(job.body, sizeof(job.body), "hello");
	CHECK_EQ(pg_push_worker_submit(f->w, &job), 0);
}

/* Collects results until n have come (in all) or timeout_ms has passed. */
static size_t collect(struct fx *f, size_t n, long timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;

	for (;;) {
		size_t k = pg_push_results_take(f->q, f->got + f->ngot, MAX_RESULTS - f->ngot);

		f->ngot += k;
		if (f->ngot >= n || mono_ms() >= deadline) {
			return f->ngot;
		}
		if (k == 0) {
			sleep_ms(2);
		}
	}
}

static const struct pg_push_result *result_of(const struct fx *f, uint64_t id)
{
	size_t i;

	for (i = 0; i < f->ngot; i++) {
		if (f->got[i].id == id) {
			return &f->got[i];
		}
	}
	return NULL;
}

/* Every id in [first, last] has exactly one result, and nothing else came. */
static void check_each_once(const struct fx *f, uint64_t first, uint64_t last)
{
	size_t n = (size_t)(last - first + 1), i, dup = 0, stray = 0, missing = 0;
	unsigned char *seen = calloc(n, 1);

	for (i = 0; i < f->ngot; i++) {
		uint64_t id = f->got[i].id;

		if (id < first || id > last) {
			stray++;
		} else if (seen[id - first]++) {
			dup++;
		}
	}
	for (i = 0; i < n; i++) {
		missing += seen[i] == 0;
	}
	CHECK_EQ(dup, 0);
	CHECK_EQ(stray, 0);
	CHECK_EQ(missing, 0);
	free(seen);
}

/* ---------- tests ---------- */

static void test_burst_is_answered_once_over_one_connection(void)
{
	struct fx f;
	struct stats st;
	int64_t t0, ms;
	size_t i, bad = 0;

	if (!fx_init(&f, 10000)) {
		fx_done(&f);
		return;
	}
	t0 = mono_ms();
	for (i = 1; i <= 1000; i++) {
		submit(&f, i, "ok");
	}
	CHECK_EQ(collect(&f, 1000, 20000), 1000);
	ms = mono_ms() - t0;
	printf("     1000 pushes in %lld ms\n", (long long)ms);
	sleep_ms(100);
	collect(&f, MAX_RESULTS, 0);
	CHECK_EQ(f.ngot, 1000);
	check_each_once(&f, 1, 1000);
	for (i = 0; i < f.ngot; i++) {
		const struct pg_push_result *r = &f.got[i];
		char want[32];

		snprintf(want, sizeof(want), "u%llu", (unsigned long long)r->id);
		bad += r->outcome != PG_PUSH_DELIVERED || r->http_status != 200 ||
		       r->latency_ms < 0 || r->latency_ms > ms || strcmp(r->uid, want) != 0 ||
		       strcmp(r->token, "ok") != 0 || r->platform != PG_PUSH_APNS;
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(pg_push_worker_pending(f.w), 0);
	st = server_stats(&f.srv);
	CHECK_EQ(st.sessions, 1);
	CHECK_EQ(st.posts, 1000);
	CHECK_EQ(atomic_load(&f.fake.force_calls), 0);
	fx_done(&f);
}

static void test_answers_become_results(void)
{
	struct fx f;
	const struct pg_push_result *r;

	if (!fx_init(&f, 10000)) {
		fx_done(&f);
		return;
	}
	submit(&f, 1, "status/429");
	submit(&f, 2, "status/410");
	submit(&f, 3, "status/503");
	submit(&f, 4, "status/400");
	submit(&f, 5, "nobuild");
	CHECK_EQ(collect(&f, 5, 5000), 5);
	r = result_of(&f, 1);
	CHECK(r && r->outcome == PG_PUSH_RETRY);
	CHECK(r && r->http_status == 429 && r->retry_after_ms == 7000);
	CHECK_STR(r ? r->reason : NULL, "http_429");
	CHECK_CONTAINS(r ? r->detail : NULL, "status 429");
	r = result_of(&f, 2);
	CHECK(r && r->outcome == PG_PUSH_REMOVE_DEVICE && r->http_status == 410);
	CHECK(r && r->retry_after_ms == -1);
	r = result_of(&f, 3);
	CHECK(r && r->outcome == PG_PUSH_RETRY && r->http_status == 503);
	r = result_of(&f, 4);
	CHECK(r && r->outcome == PG_PUSH_FAILED && r->http_status == 400);
	r = result_of(&f, 5);
	CHECK(r && r->outcome == PG_PUSH_FAILED && r->http_status == 0);
	CHECK_STR(r ? r->reason : NULL, "build");
	CHECK_STR(r ? r->detail : NULL, "cannot build this one");
	CHECK_EQ(server_stats(&f.srv).posts, 4);
	CHECK_EQ(pg_push_worker_pending(f.w), 0);
	fx_done(&f);
}

static void test_goaway_mid_burst(void)
{
	struct fx f;
	struct stats st;
	size_t i, delivered = 0, cut = 0, other = 0;

	if (!fx_init(&f, 10000)) {
		fx_done(&f);
		return;
	}
	for (i = 1; i <= 1000; i++) {
		submit(&f, i, "goaway/300");
	}
	CHECK_EQ(collect(&f, 1000, 20000), 1000);
	sleep_ms(200);
	collect(&f, MAX_RESULTS, 0);
	CHECK_EQ(f.ngot, 1000);
	check_each_once(&f, 1, 1000);
	for (i = 0; i < f.ngot; i++) {
		const struct pg_push_result *r = &f.got[i];

		if (r->outcome == PG_PUSH_DELIVERED) {
			delivered++;
		} else if (r->outcome == PG_PUSH_RETRY && strcmp(r->reason, "network") == 0) {
			cut++;
		} else {
			other++;
		}
	}
	st = server_stats(&f.srv);
	printf("     GOAWAY after 300: %zu delivered, %zu RETRY network, %d sessions, %d posts "
	       "(%d over the first)\n",
	       delivered, cut, st.sessions, st.posts, st.first);
	CHECK(st.first >= 300);
	CHECK(delivered >= 300);
	CHECK_EQ(delivered + cut, 1000);
	CHECK_EQ(other, 0);
	CHECK(st.sessions >= 2);
	CHECK_EQ(st.posts, (int)delivered); /* nothing the server processed was sent twice */

	/* later jobs go over a new connection */
	for (i = 1001; i <= 1100; i++) {
		submit(&f, i, "ok");
	}
	CHECK_EQ(collect(&f, 1100, 10000), 1100);
	for (i = 1001; i <= 1100; i++) {
		const struct pg_push_result *r = result_of(&f, i);

		CHECK(r && r->outcome == PG_PUSH_DELIVERED);
	}
	CHECK_EQ(pg_push_worker_pending(f.w), 0);
	fx_done(&f);
}

static void test_connection_cut_mid_answer(void)
{
	struct fx f;
	size_t i, cut = 0;
	struct stats st;

	if (!fx_init(&f, 10000)) {
		fx_done(&f);
		return;
	}
	for (i = 1; i <= 100; i++) {
		submit(&f, i, "cut/100");
	}
	CHECK_EQ(collect(&f, 100, 10000), 100);
	check_each_once(&f, 1, 100);
	for (i = 0; i < f.ngot; i++) {
		const struct pg_push_result *r = &f.got[i];

		cut += r->outcome == PG_PUSH_RETRY && strcmp(r->reason, "network") == 0 &&
		       r->http_status == 0 && r->detail[0] != '\0';
	}
	CHECK_EQ(cut, 100);
	printf("     cut: \"%s\"\n", f.got[0].detail);

	/* the next ones go over a new connection */
	for (i = 101; i <= 150; i++) {
		submit(&f, i, "ok");
	}
	CHECK_EQ(collect(&f, 150, 10000), 150);
	for (i = 101; i <= 150; i++) {
		const struct pg_push_result *r = result_of(&f, i);

		CHECK(r && r->outcome == PG_PUSH_DELIVERED);
	}
	st = server_stats(&f.srv);
	CHECK_EQ(st.sessions, 2);
	CHECK_EQ(st.posts, 150);
	CHECK_EQ(pg_push_worker_pending(f.w), 0);
	fx_done(&f);
}

static void test_stall_times_out_while_another_worker_delivers(void)
{
	struct fx a, b;
	int64_t t0, b_done = -1, a_done;
	size_t i, timeouts = 0, late = 0;
	struct stats st;

	bool ok_a = fx_init(&a, 500);
	bool ok_b = fx_init(&b, 500);

	if (!ok_a || !ok_b) {
		fx_done(&a);
		fx_done(&b);
		return;
	}
	t0 = mono_ms();
	for (i = 1; i <= 20; i++) {
		submit(&a, i, "stall");
	}
	/* b keeps delivering, in rounds, while a's requests hang */
	for (i = 0; i < 4; i++) {
		size_t k;

		for (k = 1; k <= 50; k++) {
			submit(&b, i * 50 + k, "ok");
		}
		CHECK_EQ(collect(&b, (i + 1) * 50, 2000), (i + 1) * 50);
		sleep_ms(20);
	}
	b_done = mono_ms() - t0;
	CHECK_EQ(pg_push_worker_pending(a.w), 20); /* a's are still hanging */
	check_each_once(&b, 1, 200);
	for (i = 0; i < b.ngot; i++) {
		late += b.got[i].outcome != PG_PUSH_DELIVERED;
	}
	CHECK_EQ(late, 0);
	CHECK_EQ(collect(&a, 20, 3000), 20);
	a_done = mono_ms() - t0;
	printf("     stall: b delivered 200 by %lld ms, a timed out by %lld ms\n",
	       (long long)b_done, (long long)a_done);
	CHECK(b_done < 450); /* all of b's before a's first timeout */
	CHECK(a_done >= 450 && a_done < 1500);
	check_each_once(&a, 1, 20);
	for (i = 0; i < a.ngot; i++) {
		const struct pg_push_result *r = &a.got[i];

		timeouts += r->outcome == PG_PUSH_RETRY && strcmp(r->reason, "timeout") == 0 &&
		            r->http_status == 0 && r->latency_ms >= 450 && r->detail[0] != '\0';
	}
	CHECK_EQ(timeouts, 20);
	CHECK_CONTAINS(a.got[0].detail, "imed out");

	/* a recovers as soon as its server answers again */
	submit(&a, 21, "ok");
	CHECK_EQ(collect(&a, 21, 3000), 21);
	CHECK(result_of(&a, 21) && result_of(&a, 21)->outcome == PG_PUSH_DELIVERED);
	st = server_stats(&a.srv);
	printf("     after the timeouts: %d sessions\n", st.sessions);
	fx_done(&a);
	fx_done(&b);
}

static void test_reauthorize_renews_once_and_resends_once(void)
{
	struct fx f;
	const struct pg_push_result *r;
	size_t i, ok = 0;
	long posts;

	if (!fx_init(&f, 10000)) {
		fx_done(&f);
		return;
	}
	atomic_store(&f.fake.gen, 1); /* odd: the server says expired */
	submit(&f, 1, "auth");
	CHECK_EQ(collect(&f, 1, 5000), 1);
	r = result_of(&f, 1);
	CHECK(r && r->outcome == PG_PUSH_DELIVERED && r->http_status == 200);
	CHECK_EQ(atomic_load(&f.fake.force_calls), 1);
	CHECK_EQ(server_stats(&f.srv).posts, 2);

	/* many at once, all with expired credentials: one renewal for all */
	atomic_store(&f.fake.gen, 3);
	for (i = 2; i <= 51; i++) {
		submit(&f, i, "auth");
	}
	CHECK_EQ(collect(&f, 51, 5000), 51);
	for (i = 2; i <= 51; i++) {
		r = result_of(&f, i);
		ok += r && r->outcome == PG_PUSH_DELIVERED;
	}
	CHECK_EQ(ok, 50);
	CHECK_EQ(atomic_load(&f.fake.force_calls), 2);
	/* Each job is sent at most twice: those the worker built before the
	 * renewal are refused and resent, those it took after it (submissions
	 * and the worker's batches interleave) go through at once. */
	posts = server_stats(&f.srv).posts;
	CHECK(posts >= 2 + 50 && posts <= 2 + 100);

	/* refused again after the renewal: FAILED "auth" */
	submit(&f, 52, "auth-never");
	CHECK_EQ(collect(&f, 52, 5000), 52);
	r = result_of(&f, 52);
	CHECK(r && r->outcome == PG_PUSH_FAILED && r->http_status == 403);
	CHECK_STR(r ? r->reason : NULL, "auth");
	CHECK_EQ(atomic_load(&f.fake.force_calls), 3);
	CHECK_EQ(server_stats(&f.srv).posts, posts + 2);
	CHECK_EQ(pg_push_worker_pending(f.w), 0);
	fx_done(&f);
}

static void test_authorize_failure_sends_nothing(void)
{
	struct fx f;
	const struct pg_push_result *r;

	if (!fx_init(&f, 10000)) {
		fx_done(&f);
		return;
	}
	atomic_store(&f.fake.fail_auth, true);
	submit(&f, 1, "ok");
	submit(&f, 2, "ok");
	CHECK_EQ(collect(&f, 2, 5000), 2);
	r = result_of(&f, 1);
	CHECK(r && r->outcome == PG_PUSH_RETRY && r->http_status == 0);
	CHECK_STR(r ? r->reason : NULL, "auth_unavailable");
	CHECK_STR(r ? r->detail : NULL, "token endpoint down");
	r = result_of(&f, 2);
	CHECK(r && r->outcome == PG_PUSH_RETRY);
	CHECK_EQ(server_stats(&f.srv).posts, 0);

	/* after the hold-off, the credentials are asked for again */
	atomic_store(&f.fake.fail_auth, false);
	sleep_ms(1100);
	submit(&f, 3, "ok");
	CHECK_EQ(collect(&f, 3, 5000), 3);
	r = result_of(&f, 3);
	CHECK(r && r->outcome == PG_PUSH_DELIVERED);
	fx_done(&f);
}

static void test_stop_with_requests_in_flight(void)
{
	struct fx f;
	int64_t t0, ms;
	size_t i;

	if (!fx_init(&f, 10000)) {
		fx_done(&f);
		return;
	}
	/* answered within the grace: their results come */
	for (i = 1; i <= 20; i++) {
		submit(&f, i, "delay/200");
	}
	/* never answered: no result, and stop waits only its grace */
	for (i = 21; i <= 70; i++) {
		submit(&f, i, "stall");
	}
	sleep_ms(100);
	CHECK_EQ(pg_push_worker_pending(f.w), 70);
	t0 = mono_ms();
	pg_push_worker_stop(f.w, 500);
	ms = mono_ms() - t0;
	printf("     stop with 50 stalled in flight: %lld ms (grace 500)\n", (long long)ms);
	CHECK(ms >= 450 && ms < 1000);
	collect(&f, MAX_RESULTS, 0);
	CHECK_EQ(f.ngot, 20);
	check_each_once(&f, 1, 20);

	/* stop right after submitting: nothing taken yet is lost quietly */
	{
		char err[256];
		struct pg_push_worker_config wc;

		memset(&wc, 0, sizeof(wc));
		wc.transport.ca_file = cert_pem;
		f.w = pg_push_worker_start(&fake_ops, &f.fake, &wc, f.q, err, sizeof(err));
		CHECK(f.w != NULL);
		for (i = 100; i < 300; i++) {
			submit(&f, i, "stall");
		}
		pg_push_worker_stop(f.w, 0);
		f.w = NULL;
	}
	pg_push_worker_stop(NULL, 0);
	fx_done(&f);
}

int main(void)
{
	char cmd[512];

	if (system("command -v node >/dev/null 2>&1") != 0 ||
	    system("command -v openssl >/dev/null 2>&1") != 0) {
		printf("SKIP: test_push_worker needs node and openssl\n");
		return SKIP;
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/pg_push_worker_XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(key_pem, sizeof(key_pem), "%s/key.pem", tmpdir);
	snprintf(cert_pem, sizeof(cert_pem), "%s/cert.pem", tmpdir);
	snprintf(cmd, sizeof(cmd),
	         "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
	         "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -days 2 "
	         "-keyout %s -out %s >/dev/null 2>&1",
	         key_pem, cert_pem);
	if (system(cmd) != 0) {
		fprintf(stderr, "openssl could not make a certificate\n");
		return 1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);

	RUN(test_burst_is_answered_once_over_one_connection);
	RUN(test_answers_become_results);
	RUN(test_goaway_mid_burst);
	RUN(test_connection_cut_mid_answer);
	RUN(test_stall_times_out_while_another_worker_delivers);
	RUN(test_reauthorize_renews_once_and_resends_once);
	RUN(test_authorize_failure_sends_nothing);
	RUN(test_stop_with_requests_in_flight);

	unlink(key_pem);
	unlink(cert_pem);
	rmdir(tmpdir);
	curl_global_cleanup();
	return check_exit();
}
