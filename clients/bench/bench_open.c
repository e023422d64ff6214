/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon-bench open: publish -> delivery latency at a fixed offered rate,
 * N publishers -> M subscribers (docs/benchmarks.md).
 *
 * Message k (k = 0, 1, ...) is due at t0 + k/R (CLOCK_MONOTONIC) and is sent
 * by publisher k % N (uid <to>p<k % N>, device bench) to im/<to><k % M>/chat,
 * QoS 1 (or --qos 0). Recipient <to><i> (device phone) subscribes
 * im/<to><i>/#: from pigeon it gets the message on .../inbox inside an
 * Envelope, from plain Mosquitto (--anonymous) as sent; either way the body
 * carries a stamp ("PGOL", k and the due time, in hex) found by scanning the
 * payload. A publisher that is late sends at once and the latency is counted
 * from the due time (open loop: a stalled broker is not hidden by a sender
 * that waits for it, "coordinated omission"). Messages due in the first
 * --warmup seconds are sent but not measured; then --seconds of measured
 * messages, then up to 10 s for stragglers.
 *
 * Threads (the pool's): with T >= 2 the publishers live on threads
 * 0 .. T/2-1 and the subscribers on the others, so a slow receive path
 * never delays the schedule (it shows in the latency, not in the sending).
 * With T = 1 one thread does both: each loop turn first sends everything due
 * (at most 1,000 messages, then the sockets are served), then waits in
 * epoll only until the next due time; how late the sender got is printed as
 * sender_lag_max_us, so a run where receiving held up sending is visible.
 *
 * Each receiving thread records into its own histogram (hist.h), merged at
 * the end; each message k has one "seen" byte, written only by the thread of
 * its recipient. Output: one "open" line (see pigeon-bench --help).
 */
#include "bench.h"

#include <getopt.h>
#include <math.h>
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

#define OL_MARKER "PGOL"
#define OL_MESSAGES_MAX 50000000ULL
#define OL_BURST_MAX 1000
#define OL_DRAIN_S 10.0

struct ol_args {
	const char *host, *secret_file, *to, *curve, *label;
	bool anonymous;
	int port, qos;
	double rate, seconds, warmup, time_limit;
	unsigned publishers, subscribers, threads, size, connect_window;
};

/* One thread's sending side: the messages k whose publisher lives here. */
struct ol_sender {
	uint64_t next_k, sent, lag_max_ns;
	bool done;
	char *payload;
};

/* One thread's receiving side. */
struct ol_receiver {
	struct bench_hist hist;
	uint64_t received, measured, duplicates, foreign;
};

struct ol_run {
	const struct ol_args *a;
	uint64_t t0, k_total, k_measured0;
	double period_ns;
	unsigned pub_threads; /* publishers on threads [0, pub_threads) */
	struct bench_conn **pubs;
	uint8_t *seen;
	struct ol_sender *senders;
	struct ol_receiver *receivers;
	atomic_uint senders_done;
	atomic_ullong received;
};

static unsigned ol_pub_thread(const struct ol_run *r, unsigned j)
{
	return j % r->pub_threads;
}

/* The first k >= from sent by a publisher of thread t. */
static uint64_t ol_next_k(const struct ol_run *r, unsigned t, uint64_t from)
{
	while (from < r->k_total && ol_pub_thread(r, (unsigned)(from % r->a->publishers)) != t) {
		from++;
	}
	return from;
}

static void ol_on_message(struct bench_conn *c, const struct mosquitto_message *msg)
{
	struct ol_run *r = bench_pool_ud(c->pool);
	struct ol_receiver *rv = &r->receivers[c->thread];
	uint64_t now = bench_now_ns(), k, due;

	if (bench_stamp_find(msg->payload, (size_t)msg->payloadlen, OL_MARKER, &k, &due) != 0 ||
	    k >= r->k_total) {
		rv->foreign++;
		return;
	}
	if (r->seen[k]) {
		rv->duplicates++;
		return;
	}
	r->seen[k] = 1;
	rv->received++;
	if (k >= r->k_measured0) {
		bench_hist_record(&rv->hist, now > due ? now - due : 0);
		rv->measured++;
	}
	atomic_fetch_add(&r->received, 1);
}

static uint64_t ol_tick(struct bench_pool *p, unsigned t)
{
	struct ol_run *r = bench_pool_ud(p);
	const struct ol_args *a = r->a;
	struct ol_sender *s = &r->senders[t];
	char topic[256];
	unsigned burst = 0;
	uint64_t now;

	if (t >= r->pub_threads || s->done) {
		return UINT64_MAX;
	}
	now = bench_now_ns();
	while (s->next_k < r->k_total) {
		uint64_t k = s->next_k;
		uint64_t due = r->t0 + (uint64_t)llround((double)k * r->period_ns);
		struct bench_conn *pub = r->pubs[k % a->publishers];
		int rc;
		if (due > now) {
			return (due - now + 999) / 1000;
		}
		if (burst++ == OL_BURST_MAX) {
			return 0; /* serve the sockets, then come back at once */
		}
		if (now - due > s->lag_max_ns) {
			s->lag_max_ns = now - due;
		}
		bench_stamp_write(s->payload, OL_MARKER, k, due);
		snprintf(topic, sizeof(topic), "im/%s%u/chat", a->to,
		         (unsigned)(k % a->subscribers));
		rc = bench_pool_publish(pub, topic, (int)a->size, s->payload, a->qos);
		if (rc != MOSQ_ERR_SUCCESS) {
			fprintf(stderr, "pigeon-bench: publish %llu failed: %s\n",
			        (unsigned long long)k, mosquitto_strerror(rc));
			break;
		}
		s->sent++;
		s->next_k = ol_next_k(r, t, k + 1);
		now = bench_now_ns();
	}
	s->done = true;
	atomic_fetch_add(&r->senders_done, 1);
	return UINT64_MAX;
}

static const struct bench_pool_ops ol_ops = {.on_message = ol_on_message, .tick = ol_tick};

static double ol_opt_num(const char *name, const char *s, double min, double max)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end != '\0' || !(v >= min && v <= max)) {
		fprintf(stderr, "pigeon-bench: --%s: a number in [%g, %g]\n", name, min, max);
		exit(2);
	}
	return v;
}

static int ol_parse(int argc, char **argv, struct ol_args *a)
{
	static const struct option opts[] = {
	    {"host", required_argument, NULL, 'h'},
	    {"port", required_argument, NULL, 'p'},
	    {"secret-file", required_argument, NULL, 'k'},
	    {"anonymous", no_argument, NULL, 'a'},
	    {"rate", required_argument, NULL, 'r'},
	    {"publishers", required_argument, NULL, 'N'},
	    {"subscribers", required_argument, NULL, 'M'},
	    {"threads", required_argument, NULL, 'T'},
	    {"seconds", required_argument, NULL, 's'},
	    {"warmup", required_argument, NULL, 'w'},
	    {"size", required_argument, NULL, 'b'},
	    {"qos", required_argument, NULL, 'q'},
	    {"to", required_argument, NULL, 't'},
	    {"curve", required_argument, NULL, 'c'},
	    {"label", required_argument, NULL, 'l'},
	    {"time-limit", required_argument, NULL, 'L'},
	    {"connect-window", required_argument, NULL, 'W'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	*a = (struct ol_args){.host = "127.0.0.1",
	                      .to = "ol",
	                      .qos = 1,
	                      .seconds = 10,
	                      .warmup = 1,
	                      .publishers = 1,
	                      .subscribers = 1,
	                      .threads = 1,
	                      .size = 256,
	                      .connect_window = BENCH_POOL_CONNECT_WINDOW};
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
		case 'r':
			a->rate = ol_opt_num("rate", optarg, 0.001, 10000000);
			break;
		case 'N':
			a->publishers = (unsigned)bench_opt_uint("publishers", optarg, 1, 10000);
			break;
		case 'M':
			a->subscribers = (unsigned)bench_opt_uint("subscribers", optarg, 1, 10000);
			break;
		case 'T':
			a->threads = (unsigned)bench_opt_uint("threads", optarg, 1, 64);
			break;
		case 's':
			a->seconds = ol_opt_num("seconds", optarg, 0.001, 3600);
			break;
		case 'w':
			a->warmup = ol_opt_num("warmup", optarg, 0, 3600);
			break;
		case 'b':
			a->size =
			    (unsigned)bench_opt_uint("size", optarg, BENCH_STAMP_LEN, 1u << 20);
			break;
		case 'q':
			a->qos = (int)bench_opt_uint("qos", optarg, 0, 1);
			break;
		case 't':
			if (!pg_ident_valid_str(optarg)) {
				fprintf(stderr, "pigeon-bench: --to takes a uid prefix\n");
				return 2;
			}
			a->to = optarg;
			break;
		case 'c':
			a->curve = optarg;
			break;
		case 'l':
			a->label = optarg;
			break;
		case 'L':
			a->time_limit = ol_opt_num("time-limit", optarg, 1, 7200);
			break;
		case 'W':
			a->connect_window =
			    (unsigned)bench_opt_uint("connect-window", optarg, 1, 100000);
			break;
		default:
			return 2;
		}
	}
	if (optind < argc || a->port == 0 || a->rate == 0 ||
	    (a->secret_file != NULL) == a->anonymous) {
		fprintf(stderr, "pigeon-bench: open needs --port, --rate and one of --secret-file, "
		                "--anonymous\n");
		return 2;
	}
	if (a->rate * (a->warmup + a->seconds) > (double)OL_MESSAGES_MAX) {
		fprintf(stderr, "pigeon-bench: open: at most %llu messages a run\n",
		        OL_MESSAGES_MAX);
		return 2;
	}
	if (a->time_limit == 0) {
		a->time_limit = a->warmup + a->seconds + 30;
	}
	if (a->label == NULL) {
		a->label = a->anonymous ? "anonymous" : "pigeon";
	}
	return 0;
}

/* Adds the subscribers and publishers to the pool, tokens minted now. 0, or 1. */
static int ol_add_conns(const struct ol_args *a, struct bench_pool *pool, struct ol_run *r)
{
	struct pg_signkey *key = NULL;
	unsigned i, nthreads = bench_pool_threads(pool);
	long valid = (long)a->time_limit + 3600;
	char uid[PG_IDENT_MAX + 1], filter[PG_IDENT_MAX + 16], *tok = NULL;

	if (!a->anonymous && (key = bench_token_key(a->secret_file)) == NULL) {
		return 1;
	}
	for (i = 0; i < a->subscribers; i++) {
		unsigned t = nthreads >= 2 ? r->pub_threads + i % (nthreads - r->pub_threads) : 0;
		snprintf(uid, sizeof(uid), "%s%u", a->to, i);
		snprintf(filter, sizeof(filter), "im/%s/#", uid);
		if ((!a->anonymous &&
		     (tok = bench_token_mint(key, uid, "phone", false, valid)) == NULL) ||
		    bench_pool_add(pool, t, uid, "phone", tok, filter, NULL) == NULL) {
			goto fail;
		}
		free(tok);
		tok = NULL;
	}
	for (i = 0; i < a->publishers; i++) {
		snprintf(uid, sizeof(uid), "%sp%u", a->to, i);
		if ((!a->anonymous &&
		     (tok = bench_token_mint(key, uid, "bench", false, valid)) == NULL) ||
		    (r->pubs[i] = bench_pool_add(pool, ol_pub_thread(r, i), uid, "bench", tok, NULL,
		                                 NULL)) == NULL) {
			goto fail;
		}
		free(tok);
		tok = NULL;
	}
	pg_signkey_free(key);
	return 0;
fail:
	fprintf(stderr, "pigeon-bench: cannot set up connection %s\n", uid);
	free(tok);
	pg_signkey_free(key);
	return 1;
}

static int ol_write_curve(const struct ol_args *a, const struct bench_hist *h)
{
	char note[256];
	FILE *f = fopen(a->curve, "w");

	if (f == NULL) {
		fprintf(stderr, "pigeon-bench: %s: cannot write\n", a->curve);
		return 1;
	}
	snprintf(note, sizeof(note),
	         "(latency in us; open %s rate=%g publishers=%u subscribers=%u size=%u qos=%d)",
	         a->label, a->rate, a->publishers, a->subscribers, a->size, a->qos);
	if (bench_hist_write_curve(h, f, 1000.0, note) != 0 || fclose(f) != 0) {
		fprintf(stderr, "pigeon-bench: %s: write error\n", a->curve);
		return 1;
	}
	return 0;
}

int bench_open(int argc, char **argv)
{
	struct ol_args a;
	struct ol_run r = {0};
	struct bench_pool *pool = NULL;
	struct bench_pool_conf pc = {0};
	struct bench_hist *all = NULL;
	uint64_t sent = 0, received = 0, measured_rx = 0, dups = 0, foreign = 0, lag = 0, measured;
	double start, deadline, drain;
	unsigned i, nthreads;
	bool lib = false;
	int rc = ol_parse(argc, argv, &a);

	if (rc != 0) {
		return rc;
	}
	start = bench_now_s();
	deadline = start + a.time_limit;
	nthreads = a.threads;
	r.a = &a;
	r.pub_threads = nthreads >= 2 ? nthreads / 2 : 1;
	r.period_ns = 1e9 / a.rate;
	r.k_total = (uint64_t)ceil(a.rate * (a.warmup + a.seconds));
	r.k_measured0 = (uint64_t)ceil(a.rate * a.warmup);
	r.pubs = calloc(a.publishers, sizeof(*r.pubs));
	r.seen = calloc(r.k_total ? r.k_total : 1, 1);
	r.senders = calloc(nthreads, sizeof(*r.senders));
	r.receivers = calloc(nthreads, sizeof(*r.receivers));
	all = malloc(sizeof(*all));
	if (r.pubs == NULL || r.seen == NULL || r.senders == NULL || r.receivers == NULL ||
	    all == NULL) {
		fprintf(stderr, "pigeon-bench: out of memory\n");
		rc = 1;
		goto out;
	}
	for (i = 0; i < nthreads; i++) {
		bench_hist_init(&r.receivers[i].hist);
		r.senders[i].next_k = ol_next_k(&r, i, 0);
		r.senders[i].done = i >= r.pub_threads;
		if ((r.senders[i].payload = malloc(a.size)) == NULL) {
			rc = 1;
			goto out;
		}
		memset(r.senders[i].payload, 'x', a.size);
	}
	mosquitto_lib_init();
	lib = true;
	pc = (struct bench_pool_conf){.host = a.host,
	                              .port = a.port,
	                              .threads = nthreads,
	                              .connect_window = a.connect_window,
	                              .keepalive = 60,
	                              .sub_qos = a.qos,
	                              .ops = &ol_ops,
	                              .ud = &r};
	if ((pool = bench_pool_new(&pc)) == NULL || ol_add_conns(&a, pool, &r) != 0 ||
	    bench_pool_start(pool) != 0 || bench_pool_wait_ready(pool, deadline) != 0) {
		rc = 1;
		goto out;
	}
	/* The schedule starts 50 ms out, so every thread is polling by then. */
	r.t0 = bench_now_ns() + 50000000;
	bench_pool_run(pool);
	while (atomic_load(&r.senders_done) < r.pub_threads && !bench_pool_failed(pool) &&
	       bench_now_s() < deadline) {
		struct timespec ts = {0, 5000000};
		nanosleep(&ts, NULL);
	}
	drain = bench_now_s() + OL_DRAIN_S;
	while (atomic_load(&r.received) < r.k_total && !bench_pool_failed(pool) &&
	       bench_now_s() < drain && bench_now_s() < deadline) {
		struct timespec ts = {0, 5000000};
		nanosleep(&ts, NULL);
	}
	bench_pool_stop(pool);
	if (bench_pool_failed(pool)) {
		rc = 1;
		goto out;
	}
	if (atomic_load(&r.senders_done) < r.pub_threads) {
		fprintf(stderr, "pigeon-bench: time limit of %.0f s reached while sending\n",
		        a.time_limit);
		rc = 1;
		goto out;
	}
	bench_hist_init(all);
	for (i = 0; i < nthreads; i++) {
		sent += r.senders[i].sent;
		if (r.senders[i].lag_max_ns > lag) {
			lag = r.senders[i].lag_max_ns;
		}
		received += r.receivers[i].received;
		measured_rx += r.receivers[i].measured;
		dups += r.receivers[i].duplicates;
		foreign += r.receivers[i].foreign;
		bench_hist_merge(all, &r.receivers[i].hist);
	}
	measured = r.k_total - r.k_measured0;
	if (sent != r.k_total) {
		fprintf(stderr, "pigeon-bench: sent %llu of %llu\n", (unsigned long long)sent,
		        (unsigned long long)r.k_total);
		rc = 1;
		goto out;
	}
	if (received < r.k_total) {
		fprintf(stderr, "pigeon-bench: %llu of %llu messages never arrived\n",
		        (unsigned long long)(r.k_total - received), (unsigned long long)r.k_total);
	}
	if (foreign) {
		fprintf(stderr, "pigeon-bench: %llu messages without a stamp of this run\n",
		        (unsigned long long)foreign);
	}
	printf("open %s %.0f us rate=%g publishers=%u subscribers=%u sent=%llu measured=%llu "
	       "received=%llu lost=%llu duplicates=%llu p50_us=%.0f p90_us=%.0f p99_us=%.0f "
	       "p999_us=%.0f max_us=%.0f mean_us=%.0f sender_lag_max_us=%.0f seconds=%.3f\n",
	       a.label, (double)bench_hist_value_at(all, 99) / 1e3, a.rate, a.publishers,
	       a.subscribers, (unsigned long long)sent, (unsigned long long)measured,
	       (unsigned long long)received, (unsigned long long)(measured - measured_rx),
	       (unsigned long long)dups, (double)bench_hist_value_at(all, 50) / 1e3,
	       (double)bench_hist_value_at(all, 90) / 1e3,
	       (double)bench_hist_value_at(all, 99) / 1e3,
	       (double)bench_hist_value_at(all, 99.9) / 1e3, (double)all->max / 1e3,
	       bench_hist_mean(all) / 1e3, (double)lag / 1e3, (double)measured / a.rate);
	fflush(stdout);
	if (a.curve && ol_write_curve(&a, all) != 0) {
		rc = 1;
	}
out:
	bench_pool_free(pool);
	if (lib) {
		mosquitto_lib_cleanup();
	}
	for (i = 0; r.senders && i < nthreads; i++) {
		free(r.senders[i].payload);
	}
	free(r.senders);
	free(r.receivers);
	free(r.pubs);
	free(r.seen);
	free(all);
	return rc;
}
