/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon-bench throughput: closed-loop message rate, N publishers -> N
 * recipients (docs/benchmarks.md).
 *
 * Publisher i (uid <to>p<i>, device bench) sends only to recipient i (uid
 * <to><i>, device phone, subscribed to im/<to><i>/#), QoS 1, its share of
 * --count, keeping at most --window messages published but not yet received
 * by its recipient (end-to-end flow control, so that neither broker drops
 * anything for max_queued_messages). Each body carries a stamp ("PGTP", the
 * message's sequence number within its pair and the send time), found by
 * scanning the payload (pigeon wraps it in an Envelope). msg/s = messages
 * received / (first publish -> last reception); p50/p99 are publish ->
 * reception times. Every message must arrive exactly once (one "seen" byte
 * per message and a count per recipient); a loss, a duplicate or the time
 * limit is exit status 1.
 *
 * Threads (the pool's): with T >= 2 publishers on threads 0 .. T/2-1,
 * recipients on the others; a recipient whose reception reopens a full
 * window wakes its publisher's thread (bench_pool_wake; the publisher says
 * it waits with a flag it sets before checking the windows a last time).
 */
#include "bench.h"

#include <getopt.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>

#include "hist.h"
#include "ident.h"
#include "jws.h"
#include "options.h"
#include "pool.h"
#include "stamp.h"
#include "tokens.h"

#define TP_MARKER "PGTP"
#define TP_COUNT_MAX 50000000ULL

struct tp_args {
	const char *host, *secret_file, *to, *label;
	bool anonymous;
	int port;
	double time_limit;
	unsigned pairs, window, size, threads, connect_window;
	uint64_t count;
};

struct tp_pair {
	struct bench_conn *pub, *sub;
	uint64_t quota, sent; /* sent: the publisher's thread only */
	atomic_ullong received;
	uint64_t duplicates; /* the recipient's thread only */
	uint8_t *seen;
};

struct tp_thread {
	struct bench_hist hist;
	uint64_t last_rx_ns, foreign;
	struct tp_pair **pairs; /* the pairs whose publisher is here */
	unsigned npairs;
	char *payload;
	atomic_bool waiting;
};

struct tp_run {
	const struct tp_args *a;
	unsigned pub_threads;
	struct tp_pair *pairs;
	struct tp_thread *threads;
	atomic_ullong first_tx_ns, received;
};

static void tp_on_message(struct bench_conn *c, const struct mosquitto_message *msg)
{
	struct tp_run *r = bench_pool_ud(c->pool);
	struct tp_thread *th = &r->threads[c->thread];
	struct tp_pair *pr = c->ud;
	uint64_t now = bench_now_ns(), seq, sent_ns;
	unsigned pt;

	if (pr == NULL ||
	    bench_stamp_find(msg->payload, (size_t)msg->payloadlen, TP_MARKER, &seq, &sent_ns) !=
	        0 ||
	    seq >= pr->quota) {
		th->foreign++;
		return;
	}
	if (pr->seen[seq]) {
		pr->duplicates++;
		return;
	}
	pr->seen[seq] = 1;
	bench_hist_record(&th->hist, now - sent_ns);
	th->last_rx_ns = now;
	atomic_fetch_add(&pr->received, 1);
	atomic_fetch_add(&r->received, 1);
	pt = pr->pub->thread;
	if (pt != c->thread && atomic_load(&r->threads[pt].waiting) &&
	    atomic_exchange(&r->threads[pt].waiting, false)) {
		bench_pool_wake(c->pool, pt);
	}
}

/* Sends what the windows of thread t's pairs allow. true: some pair is blocked by its window. */
static bool tp_send(struct tp_run *r, unsigned t, bool *error)
{
	struct tp_thread *th = &r->threads[t];
	const struct tp_args *a = r->a;
	char topic[256];
	bool blocked = false;
	unsigned i;

	for (i = 0; i < th->npairs; i++) {
		struct tp_pair *pr = th->pairs[i];
		while (pr->sent < pr->quota && pr->sent - atomic_load(&pr->received) < a->window) {
			uint64_t now = bench_now_ns();
			unsigned long long zero = 0; /* the atomic_ullong's own type (clang) */
			int rc;
			if (pr->sent == 0) {
				atomic_compare_exchange_strong(&r->first_tx_ns, &zero, now);
			}
			bench_stamp_write(th->payload, TP_MARKER, pr->sent, now);
			snprintf(topic, sizeof(topic), "im/%s%u/chat", a->to,
			         (unsigned)(pr - r->pairs));
			rc = bench_pool_publish(pr->pub, topic, (int)a->size, th->payload, 1);
			if (rc != MOSQ_ERR_SUCCESS) {
				fprintf(stderr, "pigeon-bench: publish failed: %s\n",
				        mosquitto_strerror(rc));
				*error = true;
				return false;
			}
			pr->sent++;
		}
		if (pr->sent < pr->quota) {
			blocked = true;
		}
	}
	return blocked;
}

static uint64_t tp_tick(struct bench_pool *p, unsigned t)
{
	struct tp_run *r = bench_pool_ud(p);
	struct tp_thread *th = &r->threads[t];
	bool error = false;

	if (th->npairs == 0) {
		return UINT64_MAX;
	}
	if (!tp_send(r, t, &error) || error) {
		return UINT64_MAX;
	}
	/* Blocked: say so, then look once more (a reception may have come in between). */
	atomic_store(&th->waiting, true);
	if (!tp_send(r, t, &error) || error) {
		atomic_store(&th->waiting, false);
	}
	return UINT64_MAX;
}

static const struct bench_pool_ops tp_ops = {.on_message = tp_on_message, .tick = tp_tick};

static int tp_parse(int argc, char **argv, struct tp_args *a)
{
	static const struct option opts[] = {
	    {"host", required_argument, NULL, 'h'},
	    {"port", required_argument, NULL, 'p'},
	    {"secret-file", required_argument, NULL, 'k'},
	    {"anonymous", no_argument, NULL, 'a'},
	    {"pairs", required_argument, NULL, 'N'},
	    {"count", required_argument, NULL, 'n'},
	    {"window", required_argument, NULL, 'w'},
	    {"size", required_argument, NULL, 'b'},
	    {"threads", required_argument, NULL, 'T'},
	    {"to", required_argument, NULL, 't'},
	    {"label", required_argument, NULL, 'l'},
	    {"time-limit", required_argument, NULL, 'L'},
	    {"connect-window", required_argument, NULL, 'W'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	*a = (struct tp_args){.host = "127.0.0.1",
	                      .to = "tp",
	                      .time_limit = 120,
	                      .pairs = 1,
	                      .window = 100,
	                      .size = 256,
	                      .threads = 2,
	                      .connect_window = BENCH_POOL_CONNECT_WINDOW,
	                      .count = 100000};
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			a->host = optarg;
			break;
		case 'p':
			a->port = (int)bench_opt_uint("port", optarg, 1, 65535);
			break;
		case 'k':
			a->secret_file = optarg;
			break;
		case 'a':
			a->anonymous = true;
			break;
		case 'N':
			a->pairs = (unsigned)bench_opt_uint("pairs", optarg, 1, 10000);
			break;
		case 'n':
			a->count = bench_opt_uint("count", optarg, 1, TP_COUNT_MAX);
			break;
		case 'w':
			a->window = (unsigned)bench_opt_uint("window", optarg, 1, 1000000);
			break;
		case 'b':
			a->size =
			    (unsigned)bench_opt_uint("size", optarg, BENCH_STAMP_LEN, 1u << 20);
			break;
		case 'T':
			a->threads = (unsigned)bench_opt_uint("threads", optarg, 1, 64);
			break;
		case 't':
			if (!pg_ident_valid_str(optarg)) {
				fprintf(stderr, "pigeon-bench: --to takes a uid prefix\n");
				return 2;
			}
			a->to = optarg;
			break;
		case 'l':
			a->label = optarg;
			break;
		case 'L':
			a->time_limit = (double)bench_opt_uint("time-limit", optarg, 1, 7200);
			break;
		case 'W':
			a->connect_window =
			    (unsigned)bench_opt_uint("connect-window", optarg, 1, 100000);
			break;
		default:
			return 2;
		}
	}
	if (optind < argc || a->port == 0 || (a->secret_file != NULL) == a->anonymous) {
		fprintf(stderr, "pigeon-bench: throughput needs --port and one of --secret-file, "
		                "--anonymous\n");
		return 2;
	}
	if (a->count < a->pairs) {
		fprintf(stderr, "pigeon-bench: throughput: --count below --pairs\n");
		return 2;
	}
	if (a->label == NULL) {
		a->label = a->anonymous ? "anonymous" : "pigeon";
	}
	return 0;
}

static int tp_add_conns(const struct tp_args *a, struct bench_pool *pool, struct tp_run *r)
{
	struct pg_signkey *key = NULL;
	unsigned i, nthreads = bench_pool_threads(pool);
	long valid = (long)a->time_limit + 3600;
	char uid[PG_IDENT_MAX + 1], filter[PG_IDENT_MAX + 16], *tok = NULL;

	if (!a->anonymous && (key = bench_token_key(a->secret_file)) == NULL) {
		return 1;
	}
	for (i = 0; i < a->pairs; i++) {
		struct tp_pair *pr = &r->pairs[i];
		unsigned pt = i % r->pub_threads;
		unsigned st = nthreads >= 2 ? r->pub_threads + i % (nthreads - r->pub_threads) : 0;
		struct tp_thread *th = &r->threads[pt];

		snprintf(uid, sizeof(uid), "%s%u", a->to, i);
		snprintf(filter, sizeof(filter), "im/%s/#", uid);
		if ((!a->anonymous &&
		     (tok = bench_token_mint(key, uid, "phone", false, valid)) == NULL) ||
		    (pr->sub = bench_pool_add(pool, st, uid, "phone", tok, filter, pr)) == NULL) {
			goto fail;
		}
		free(tok);
		tok = NULL;
		snprintf(uid, sizeof(uid), "%sp%u", a->to, i);
		if ((!a->anonymous &&
		     (tok = bench_token_mint(key, uid, "bench", false, valid)) == NULL) ||
		    (pr->pub = bench_pool_add(pool, pt, uid, "bench", tok, NULL, NULL)) == NULL) {
			goto fail;
		}
		free(tok);
		tok = NULL;
		th->pairs[th->npairs++] = pr;
	}
	pg_signkey_free(key);
	return 0;
fail:
	fprintf(stderr, "pigeon-bench: cannot set up connection %s\n", uid);
	free(tok);
	pg_signkey_free(key);
	return 1;
}

int bench_throughput(int argc, char **argv)
{
	struct tp_args a;
	struct tp_run r = {0};
	struct bench_pool *pool = NULL;
	struct bench_pool_conf pc;
	struct bench_hist *all = NULL;
	uint64_t last_rx = 0, got, bad = 0, dups = 0, foreign = 0;
	double deadline, seconds;
	unsigned i, nthreads;
	bool lib = false;
	int rc = tp_parse(argc, argv, &a);

	if (rc != 0) {
		return rc;
	}
	deadline = bench_now_s() + a.time_limit;
	nthreads = a.threads;
	r.a = &a;
	r.pub_threads = nthreads >= 2 ? nthreads / 2 : 1;
	r.pairs = calloc(a.pairs, sizeof(*r.pairs));
	r.threads = calloc(nthreads, sizeof(*r.threads));
	all = malloc(sizeof(*all));
	if (r.pairs == NULL || r.threads == NULL || all == NULL) {
		goto oom;
	}
	for (i = 0; i < a.pairs; i++) {
		r.pairs[i].quota = a.count / a.pairs + (i < a.count % a.pairs);
		if ((r.pairs[i].seen = calloc(r.pairs[i].quota, 1)) == NULL) {
			goto oom;
		}
	}
	for (i = 0; i < nthreads; i++) {
		bench_hist_init(&r.threads[i].hist);
		r.threads[i].pairs = calloc(a.pairs, sizeof(*r.threads[i].pairs));
		r.threads[i].payload = malloc(a.size);
		if (r.threads[i].pairs == NULL || r.threads[i].payload == NULL) {
			goto oom;
		}
		memset(r.threads[i].payload, 'x', a.size);
	}
	mosquitto_lib_init();
	lib = true;
	pc = (struct bench_pool_conf){.host = a.host,
	                              .port = a.port,
	                              .threads = nthreads,
	                              .connect_window = a.connect_window,
	                              .keepalive = 60,
	                              .sub_qos = 1,
	                              .ops = &tp_ops,
	                              .ud = &r};
	if ((pool = bench_pool_new(&pc)) == NULL || tp_add_conns(&a, pool, &r) != 0 ||
	    bench_pool_start(pool) != 0 || bench_pool_wait_ready(pool, deadline) != 0) {
		rc = 1;
		goto out;
	}
	bench_pool_run(pool);
	while (atomic_load(&r.received) < a.count && !bench_pool_failed(pool) &&
	       bench_now_s() < deadline) {
		struct timespec ts = {0, 2000000};
		nanosleep(&ts, NULL);
	}
	bench_pool_stop(pool);
	if (bench_pool_failed(pool)) {
		rc = 1;
		goto out;
	}
	bench_hist_init(all);
	for (i = 0; i < nthreads; i++) {
		bench_hist_merge(all, &r.threads[i].hist);
		foreign += r.threads[i].foreign;
		if (r.threads[i].last_rx_ns > last_rx) {
			last_rx = r.threads[i].last_rx_ns;
		}
	}
	for (i = 0; i < a.pairs; i++) {
		dups += r.pairs[i].duplicates;
		if (atomic_load(&r.pairs[i].received) != r.pairs[i].quota) {
			if (bad++ < 5) {
				fprintf(
				    stderr, "pigeon-bench: recipient %s%u received %llu of %llu\n",
				    a.to, i, (unsigned long long)atomic_load(&r.pairs[i].received),
				    (unsigned long long)r.pairs[i].quota);
			}
		}
	}
	got = atomic_load(&r.received);
	if (got < a.count || bad || dups) {
		fprintf(stderr,
		        "pigeon-bench: throughput: %llu of %llu received, %llu recipients short, "
		        "%llu duplicates%s\n",
		        (unsigned long long)got, (unsigned long long)a.count,
		        (unsigned long long)bad, (unsigned long long)dups,
		        bench_now_s() >= deadline ? " (time limit reached)" : "");
		rc = 1;
		goto out;
	}
	if (foreign) {
		fprintf(stderr, "pigeon-bench: %llu messages without a stamp of this run\n",
		        (unsigned long long)foreign);
	}
	seconds = (double)(last_rx - atomic_load(&r.first_tx_ns)) / 1e9;
	printf("throughput %s %.0f msg/s pairs=%u count=%llu seconds=%.3f window=%u p50_us=%.0f "
	       "p99_us=%.0f\n",
	       a.label, (double)got / seconds, a.pairs, (unsigned long long)a.count, seconds,
	       a.window, (double)bench_hist_value_at(all, 50) / 1e3,
	       (double)bench_hist_value_at(all, 99) / 1e3);
	fflush(stdout);
	goto out;
oom:
	fprintf(stderr, "pigeon-bench: out of memory\n");
	rc = 1;
out:
	bench_pool_free(pool);
	if (lib) {
		mosquitto_lib_cleanup();
	}
	for (i = 0; r.pairs && i < a.pairs; i++) {
		free(r.pairs[i].seen);
	}
	for (i = 0; r.threads && i < nthreads; i++) {
		free(r.threads[i].pairs);
		free(r.threads[i].payload);
	}
	free(r.pairs);
	free(r.threads);
	free(all);
	return rc;
}
