/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon-bench idle: connection scale (docs/benchmarks.md). Opens K
 * connections (uid <prefix><i>, device phone, keepalive --keepalive), each
 * subscribing im/<uid>/# QoS 1 as an app does (unless --no-subscribe),
 * spread over the pool's T threads, at most --connect-window CONNECTs
 * unanswered at a time. When all are connected and subscribed it prints the
 * "idle" line and flushes stdout, then holds them (the pool's threads answer
 * the broker and send the keepalive pings) until stdin reaches EOF, SIGTERM
 * or SIGINT, or --hold seconds, disconnects all cleanly and prints
 * "idle-done". --time-limit bounds the whole run: connecting (exit 1 if not
 * all are ready by then) and the hold (released at the limit, with a note
 * on stderr). A caller (bench/suite.py) reads the broker's memory while the
 * connections are held. Any refused or failed connect, or a connection lost
 * while held, is exit status 1 with the reason.
 *
 * Per connection this process keeps one libmosquitto client and a small
 * struct (the client id, username and token are freed once it is ready).
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>

#include "ident.h"
#include "jws.h"
#include "options.h"
#include "pool.h"
#include "stamp.h"
#include "tokens.h"

#define IDLE_COUNT_MAX 1000000

struct idle_args {
	const char *host, *secret_file, *prefix, *label;
	bool anonymous, subscribe;
	int port, keepalive;
	unsigned count, threads, connect_window;
	double hold, time_limit;
};

static volatile sig_atomic_t idle_signal;

static void idle_on_signal(int sig)
{
	idle_signal = sig;
}

static int idle_parse(int argc, char **argv, struct idle_args *a)
{
	static const struct option opts[] = {
	    {"host", required_argument, NULL, 'h'},
	    {"port", required_argument, NULL, 'p'},
	    {"secret-file", required_argument, NULL, 'k'},
	    {"anonymous", no_argument, NULL, 'a'},
	    {"count", required_argument, NULL, 'n'},
	    {"threads", required_argument, NULL, 'T'},
	    {"prefix", required_argument, NULL, 'P'},
	    {"keepalive", required_argument, NULL, 'K'},
	    {"hold", required_argument, NULL, 'H'},
	    {"no-subscribe", no_argument, NULL, 'S'},
	    {"label", required_argument, NULL, 'l'},
	    {"time-limit", required_argument, NULL, 'L'},
	    {"connect-window", required_argument, NULL, 'W'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	*a = (struct idle_args){.host = "127.0.0.1",
	                        .prefix = "idle",
	                        .subscribe = true,
	                        .keepalive = 600,
	                        .threads = 2,
	                        .connect_window = BENCH_POOL_CONNECT_WINDOW,
	                        .time_limit = 600};
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
		case 'n':
			a->count = (unsigned)bench_opt_uint("count", optarg, 1, IDLE_COUNT_MAX);
			break;
		case 'T':
			a->threads = (unsigned)bench_opt_uint("threads", optarg, 1, 64);
			break;
		case 'P':
			if (!pg_ident_valid_str(optarg)) {
				fprintf(stderr, "pigeon-bench: --prefix takes a uid prefix\n");
				return 2;
			}
			a->prefix = optarg;
			break;
		case 'K':
			a->keepalive = (int)bench_opt_uint("keepalive", optarg, 5, 65535);
			break;
		case 'H':
			a->hold = (double)bench_opt_uint("hold", optarg, 0, 86400);
			break;
		case 'S':
			a->subscribe = false;
			break;
		case 'l':
			a->label = optarg;
			break;
		case 'L':
			a->time_limit = (double)bench_opt_uint("time-limit", optarg, 1, 86400);
			break;
		case 'W':
			a->connect_window =
			    (unsigned)bench_opt_uint("connect-window", optarg, 1, 100000);
			break;
		default:
			return 2;
		}
	}
	if (optind < argc || a->port == 0 || a->count == 0 ||
	    (a->secret_file != NULL) == a->anonymous) {
		fprintf(stderr,
		        "pigeon-bench: idle needs --port, --count and one of --secret-file, "
		        "--anonymous\n");
		return 2;
	}
	if (a->label == NULL) {
		a->label = a->anonymous ? "anonymous" : "pigeon";
	}
	return 0;
}

static int idle_add_conns(const struct idle_args *a, struct bench_pool *pool)
{
	struct pg_signkey *key = NULL;
	long valid = (long)a->time_limit + 3600;
	char uid[PG_IDENT_MAX + 1], filter[PG_IDENT_MAX + 16], *tok = NULL;
	unsigned i;

	if (!a->anonymous && (key = bench_token_key(a->secret_file)) == NULL) {
		return 1;
	}
	for (i = 0; i < a->count; i++) {
		snprintf(uid, sizeof(uid), "%s%u", a->prefix, i);
		snprintf(filter, sizeof(filter), "im/%s/#", uid);
		if ((!a->anonymous &&
		     (tok = bench_token_mint(key, uid, "phone", false, valid)) == NULL) ||
		    bench_pool_add(pool, i % a->threads, uid, "phone", tok,
		                   a->subscribe ? filter : NULL, NULL) == NULL) {
			fprintf(stderr, "pigeon-bench: cannot set up connection %s\n", uid);
			free(tok);
			pg_signkey_free(key);
			return 1;
		}
		free(tok);
		tok = NULL;
	}
	pg_signkey_free(key);
	return 0;
}

/*
 * Holds until stdin's EOF, a signal, --hold or the time limit. Returns 0, or
 * 1 if a connection was lost meanwhile.
 */
static int idle_hold(const struct idle_args *a, struct bench_pool *pool, double start)
{
	double until = a->hold > 0 ? bench_now_s() + a->hold : 0;
	bool watch_stdin = a->hold == 0;
	char buf[256];

	while (!idle_signal && !bench_pool_failed(pool)) {
		struct pollfd pfd = {.fd = 0, .events = POLLIN};
		double now = bench_now_s();
		if (until > 0 && now >= until) {
			break;
		}
		if (now - start >= a->time_limit) {
			fprintf(stderr, "pigeon-bench: idle: time limit of %.0f s, releasing\n",
			        a->time_limit);
			break;
		}
		if (!watch_stdin) {
			struct timespec ts = {0, 50000000};
			nanosleep(&ts, NULL);
			continue;
		}
		if (poll(&pfd, 1, 100) < 0) {
			continue; /* EINTR: a signal, seen above */
		}
		if (pfd.revents & POLLNVAL) {
			break; /* no stdin at all */
		}
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(0, buf, sizeof(buf));
			if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
				break;
			}
		}
	}
	return bench_pool_failed(pool) ? 1 : 0;
}

int bench_idle(int argc, char **argv)
{
	struct idle_args a;
	struct bench_pool *pool = NULL;
	struct bench_pool_conf pc;
	struct sigaction sa;
	double start, ready;
	int rc = idle_parse(argc, argv, &a);

	if (rc != 0) {
		return rc;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = idle_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	mosquitto_lib_init();
	pc = (struct bench_pool_conf){.host = a.host,
	                              .port = a.port,
	                              .threads = a.threads,
	                              .connect_window = a.connect_window,
	                              .keepalive = a.keepalive,
	                              .sub_qos = 1};
	if ((pool = bench_pool_new(&pc)) == NULL || idle_add_conns(&a, pool) != 0) {
		rc = 1;
		goto out;
	}
	/* The clock starts after minting, at the first CONNECT. */
	start = bench_now_s();
	if (bench_pool_start(pool) != 0 || bench_pool_wait_ready(pool, start + a.time_limit) != 0) {
		rc = 1;
		goto out;
	}
	ready = bench_now_s() - start;
	printf("idle %s %u connections seconds=%.3f connects_per_s=%.0f threads=%u\n", a.label,
	       a.count, ready, (double)a.count / ready, a.threads);
	fflush(stdout);
	bench_pool_run(pool);
	rc = idle_hold(&a, pool, start);
	bench_pool_stop(pool);
	if (rc == 0) {
		printf("idle-done %s %u connections\n", a.label, a.count);
		fflush(stdout);
	}
out:
	bench_pool_free(pool);
	mosquitto_lib_cleanup();
	return rc;
}
