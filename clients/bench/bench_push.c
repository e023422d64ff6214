/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon-bench subcommands for push (docs/benchmarks.md, "Push"):
 *
 *   push-load  one service sender publishes N QoS 1 CHATs round-robin to the
 *              users <to>0 .. <to>U-1 (im/<to><i % U>/chat), at --rate R
 *              messages per second on a fixed schedule (message i is due at
 *              t0 + i/R), or as fast as a window of W unacknowledged
 *              publishes allows (--rate 0). msg/s = N / (first publish ->
 *              last PUBACK). The pushes themselves are counted by the caller
 *              (bench/push.sh asks the fake provider).
 *   latency    publish -> delivery latency at a fixed offered rate: a sender
 *              (main thread) publishes N QoS 1 CHATs to im/<to>/chat, message
 *              i due at t0 + i/R (an open-loop schedule: a late message is
 *              sent at once and its latency counts from when it was due, so
 *              a stalled broker is not hidden by a sender that waits), and
 *              the recipient <to>:phone, subscribed to im/<to>/# on its own
 *              connection and thread, takes the due time (CLOCK_MONOTONIC)
 *              and the index out of each delivered message (a "PGLT" marker
 *              in the body, found inside the envelope). Prints p50, p99,
 *              p99.9 and max over the messages after the first --warmup.
 *
 * Against pigeon only (tokens minted from --secret-file before anything is
 * timed). Every loop is bounded by a count and by --time-limit.
 */
#define _GNU_SOURCE /* ppoll */
#include "bench.h"
#include "stamp.h"

#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "ident.h"
#include "options.h"
#include "jws.h"
#include "token.h"
#include "tokens.h"

#define BP_MARKER "PGLT"

struct bp_args {
	const char *host;
	int port;
	const char *secret_file;
	const char *label;
	const char *to;
	unsigned count, size, window, users, warmup;
	double rate;
	double time_limit;
};

struct bp_client {
	struct mosquitto *m;
	bool connected;
	int connack_rc;
	bool subscribed;
	uint64_t acked;
	/* latency receiver */
	uint32_t *lat_us; /* per message index; UINT32_MAX: not received */
	uint8_t *seen;    /* per message index */
	unsigned count;
	atomic_ullong received, duplicates, foreign;
};

static uint64_t bp_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double bp_now(void)
{
	return (double)bp_now_ns() / 1e9;
}

static void bp_on_connect(struct mosquitto *m, void *obj, int rc, int flags,
                          const mosquitto_property *props)
{
	struct bp_client *c = obj;

	c->connected = true;
	c->connack_rc = rc;
}

static void bp_on_publish(struct mosquitto *m, void *obj, int mid, int rc,
                          const mosquitto_property *props)
{
	struct bp_client *c = obj;

	c->acked++;
}

static void bp_on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted,
                            const mosquitto_property *props)
{
	struct bp_client *c = obj;

	c->subscribed = true;
}

static void bp_on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                          const mosquitto_property *props)
{
	struct bp_client *c = obj;
	uint64_t now = bp_now_ns(), idx, due;

	if (c->lat_us == NULL) {
		return;
	}
	if (bench_stamp_find(msg->payload, (size_t)msg->payloadlen, BP_MARKER, &idx, &due) != 0 ||
	    idx >= c->count) {
		c->foreign++;
		return;
	}
	if (c->seen[idx]) {
		c->duplicates++;
		return;
	}
	c->seen[idx] = 1;
	c->lat_us[idx] = now > due
	                     ? (uint32_t)((now - due) / 1000 > UINT32_MAX - 1 ? UINT32_MAX - 1
	                                                                      : (now - due) / 1000)
	                     : 0;
	c->received++;
}

/*
 * One client's network I/O, waiting at most timeout_us (microseconds: a paced
 * sender must not spin on a zero timeout). false: the connection broke.
 */
static bool bp_io_us(struct bp_client *c, uint64_t timeout_us)
{
	struct pollfd pfd = {.fd = mosquitto_socket(c->m), .events = POLLIN};
	struct timespec ts = {.tv_sec = (time_t)(timeout_us / 1000000),
	                      .tv_nsec = (long)(timeout_us % 1000000) * 1000};
	int rc = MOSQ_ERR_SUCCESS;

	if (mosquitto_want_write(c->m)) {
		pfd.events |= POLLOUT;
	}
	if (ppoll(&pfd, 1, &ts, NULL) < 0) {
		return true; /* EINTR: try again */
	}
	if (pfd.revents & (POLLIN | POLLERR | POLLHUP)) {
		rc = mosquitto_loop_read(c->m, 1);
	}
	if (rc == MOSQ_ERR_SUCCESS && (pfd.revents & POLLOUT)) {
		rc = mosquitto_loop_write(c->m, 1);
	}
	if (rc == MOSQ_ERR_SUCCESS) {
		rc = mosquitto_loop_misc(c->m);
	}
	if (rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "pigeon-bench: connection lost: %s\n", mosquitto_strerror(rc));
		return false;
	}
	return true;
}

static bool bp_io(struct bp_client *c, int timeout_ms)
{
	return bp_io_us(c, (uint64_t)timeout_ms * 1000);
}

static char *bp_token(const struct bp_args *a, const char *uid, const char *dev, bool service)
{
	struct pg_signkey *key = bench_token_key(a->secret_file);
	char *tok = key ? bench_token_mint(key, uid, dev, service, 86400) : NULL;

	pg_signkey_free(key);
	return tok;
}

/* Connects uid:dev (MQTT 5, non-threaded); 0, or 1 with a message. */
static int bp_connect(const struct bp_args *a, struct bp_client *c, const char *uid,
                      const char *dev, bool service)
{
	char cid[160];
	char *tok;
	double deadline = bp_now() + 10;
	int rc;

	snprintf(cid, sizeof(cid), "%s:%s", uid, dev);
	c->m = mosquitto_new(cid, true, c);
	if (c->m == NULL) {
		return 1;
	}
	mosquitto_int_option(c->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	mosquitto_int_option(c->m, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_connect_v5_callback_set(c->m, bp_on_connect);
	mosquitto_publish_v5_callback_set(c->m, bp_on_publish);
	mosquitto_subscribe_v5_callback_set(c->m, bp_on_subscribe);
	mosquitto_message_v5_callback_set(c->m, bp_on_message);
	tok = bp_token(a, uid, dev, service);
	if (tok == NULL || mosquitto_username_pw_set(c->m, uid, tok) != MOSQ_ERR_SUCCESS) {
		free(tok);
		return 1;
	}
	free(tok);
	rc = mosquitto_connect(c->m, a->host, a->port, 60);
	if (rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "pigeon-bench: connect %s: %s\n", cid, mosquitto_strerror(rc));
		return 1;
	}
	while (!c->connected && bp_now() < deadline) {
		if (!bp_io(c, 10)) {
			break;
		}
	}
	if (!c->connected || c->connack_rc != 0) {
		fprintf(stderr, "pigeon-bench: connect %s refused or timed out\n", cid);
		return 1;
	}
	return 0;
}

static int bp_subscribe(struct bp_client *c, const char *filter)
{
	double deadline = bp_now() + 10;

	if (mosquitto_subscribe(c->m, NULL, filter, 1) != MOSQ_ERR_SUCCESS) {
		return 1;
	}
	while (!c->subscribed && bp_now() < deadline) {
		if (!bp_io(c, 10)) {
			return 1;
		}
	}
	return c->subscribed ? 0 : 1;
}

static void bp_close(struct bp_client *c)
{
	if (c->m == NULL) {
		return;
	}
	mosquitto_disconnect(c->m);
	mosquitto_loop_write(c->m, 1);
	mosquitto_destroy(c->m);
	c->m = NULL;
}

static int bp_parse(int argc, char **argv, struct bp_args *a, bool latency)
{
	static const struct option opts[] = {
	    {"host", required_argument, NULL, 'h'},
	    {"port", required_argument, NULL, 'p'},
	    {"count", required_argument, NULL, 'n'},
	    {"size", required_argument, NULL, 's'},
	    {"window", required_argument, NULL, 'w'},
	    {"secret-file", required_argument, NULL, 'k'},
	    {"label", required_argument, NULL, 'l'},
	    {"to", required_argument, NULL, 't'},
	    {"rate", required_argument, NULL, 'r'},
	    {"time-limit", required_argument, NULL, 'T'},
	    {"users", required_argument, NULL, 'u'},
	    {"warmup", required_argument, NULL, 'W'},
	    {NULL, 0, NULL, 0},
	};
	char err[256];
	uint64_t v;
	int c;

	a->host = "127.0.0.1";
	a->label = "pigeon";
	a->to = latency ? "lat0" : "pu";
	a->count = latency ? 20000 : 100000;
	a->size = 256;
	a->window = latency ? 100000 : 1000;
	a->users = 10000;
	a->rate = latency ? 2000 : 0;
	a->time_limit = 300;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		uint64_t min = 1, max = 10000000;
		switch (c) {
		case 'h':
			a->host = optarg;
			continue;
		case 'k':
			a->secret_file = optarg;
			continue;
		case 'l':
			a->label = optarg;
			continue;
		case 't':
			if (!pg_ident_valid_str(optarg)) {
				fprintf(stderr,
				        "pigeon-bench: --to takes a uid (or a uid prefix)\n");
				return 2;
			}
			a->to = optarg;
			continue;
		case 'p':
		case 'n':
		case 's':
		case 'w':
		case 'r':
		case 'T':
		case 'u':
		case 'W':
			if (c == 'p') {
				max = 65535;
			} else if (c == 's') {
				max = 1u << 20;
			} else if (c == 'r' || c == 'W') {
				min = 0;
			} else if (c == 'T') {
				max = 3600;
			}
			if (pg_opt_uint(optarg, min, max, &v, err, sizeof(err)) != 0) {
				fprintf(stderr, "pigeon-bench: --%s: %s\n",
				        c == 'p'   ? "port"
				        : c == 'n' ? "count"
				        : c == 's' ? "size"
				        : c == 'w' ? "window"
				        : c == 'r' ? "rate"
				        : c == 'T' ? "time-limit"
				        : c == 'u' ? "users"
				                   : "warmup",
				        err);
				return 2;
			}
			if (c == 'p') {
				a->port = (int)v;
			} else if (c == 'n') {
				a->count = (unsigned)v;
			} else if (c == 's') {
				a->size = (unsigned)v;
			} else if (c == 'w') {
				a->window = (unsigned)v;
			} else if (c == 'r') {
				a->rate = (double)v;
			} else if (c == 'T') {
				a->time_limit = (double)v;
			} else if (c == 'u') {
				a->users = (unsigned)v;
			} else {
				a->warmup = (unsigned)v;
			}
			continue;
		default:
			return 2;
		}
	}
	if (optind < argc || a->port == 0 || a->secret_file == NULL) {
		fprintf(stderr, "pigeon-bench: --port and --secret-file are required\n");
		return 2;
	}
	if (latency && (a->rate == 0 || a->size < BENCH_STAMP_LEN || a->warmup >= a->count)) {
		fprintf(stderr,
		        "pigeon-bench: latency needs --rate > 0, --size >= %d and "
		        "--warmup < --count\n",
		        BENCH_STAMP_LEN);
		return 2;
	}
	return 0;
}

/*
 * Publishes a->count QoS 1 messages from c on the schedule t0 + i/rate (rate
 * 0: at once), never more than a->window unacknowledged; topic_of names
 * message i's topic, stamp (if not NULL) writes its due time into the
 * payload. Returns 0 when everything is sent and acknowledged, 1 on failure
 * or at the deadline. *lag_max_us: how late the latest publish was.
 */
static int bp_send(const struct bp_args *a, struct bp_client *c,
                   void (*topic_of)(const struct bp_args *, unsigned, char *, size_t), bool stamp,
                   uint64_t t0, double deadline, uint64_t *lag_max_us)
{
	char topic[256];
	char *payload = malloc(a->size ? a->size : 1);
	double period_ns = a->rate > 0 ? 1e9 / a->rate : 0;
	unsigned i = 0;
	int rc = 1;

	*lag_max_us = 0;
	if (payload == NULL) {
		return 1;
	}
	memset(payload, 'x', a->size);
	while (bp_now() < deadline) {
		uint64_t now = bp_now_ns();
		uint64_t timeout_us = 10000;

		while (i < a->count && c->acked + a->window > i) {
			uint64_t due = t0 + (uint64_t)((double)i * period_ns);
			if (due > now) {
				/* Sleep until due (ppoll's precision), never spin on a zero
				 * timeout. */
				uint64_t wait = (due - now + 999) / 1000;
				timeout_us = wait < 10000 ? wait : 10000;
				break;
			}
			if (now - due > *lag_max_us * 1000) {
				*lag_max_us = (now - due) / 1000;
			}
			if (stamp) {
				bench_stamp_write(payload, BP_MARKER, i, due);
			}
			topic_of(a, i, topic, sizeof(topic));
			if (mosquitto_publish_v5(c->m, NULL, topic, (int)a->size, payload, 1, false,
			                         NULL) != MOSQ_ERR_SUCCESS) {
				fprintf(stderr, "pigeon-bench: publish %u failed\n", i);
				goto out;
			}
			i++;
			timeout_us = 0;
			if (period_ns > 0) {
				now = bp_now_ns();
			}
		}
		if (i == a->count && c->acked >= a->count) {
			rc = 0;
			break;
		}
		if (!bp_io_us(c, timeout_us)) {
			goto out;
		}
	}
	if (rc != 0) {
		fprintf(stderr, "pigeon-bench: time limit: sent %u, acked %llu of %u\n", i,
		        (unsigned long long)c->acked, a->count);
	}
out:
	free(payload);
	return rc;
}

/* ---- push-load ---------------------------------------------------------- */

static void load_topic(const struct bp_args *a, unsigned i, char *buf, size_t cap)
{
	snprintf(buf, cap, "im/%s%u/chat", a->to, i % a->users);
}

int bench_push_load(int argc, char **argv)
{
	struct bp_args a = {0};
	struct bp_client pub = {0};
	uint64_t lag, t0;
	double t1;
	int rc = bp_parse(argc, argv, &a, false);

	if (rc != 0) {
		return rc;
	}
	mosquitto_lib_init();
	if (bp_connect(&a, &pub, "s0", "pushload", true) != 0) {
		return 1;
	}
	t0 = bp_now_ns();
	rc = bp_send(&a, &pub, load_topic, false, t0, (double)t0 / 1e9 + a.time_limit, &lag);
	t1 = bp_now() - (double)t0 / 1e9;
	if (rc == 0) {
		printf("push-load %s %.0f msg/s count=%u users=%u rate=%.0f window=%u seconds=%.3f "
		       "lag_max_us=%llu\n",
		       a.label, (double)a.count / t1, a.count, a.users, a.rate, a.window, t1,
		       (unsigned long long)lag);
		fflush(stdout);
	}
	bp_close(&pub);
	mosquitto_lib_cleanup();
	return rc;
}

/* ---- latency ------------------------------------------------------------ */

struct bp_receiver {
	struct bp_client *c;
	double deadline;
	atomic_bool stop;
	bool failed;
};

static void *bp_receive(void *arg)
{
	struct bp_receiver *r = arg;

	while (!atomic_load(&r->stop) && r->c->received < r->c->count && bp_now() < r->deadline) {
		if (!bp_io(r->c, 10)) {
			r->failed = true;
			break;
		}
	}
	return NULL;
}

static void latency_topic(const struct bp_args *a, unsigned i, char *buf, size_t cap)
{
	snprintf(buf, cap, "im/%s/chat", a->to);
}

static int bp_u32_cmp(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;

	return a < b ? -1 : a > b;
}

int bench_latency(int argc, char **argv)
{
	struct bp_args a = {0};
	struct bp_client pub = {0}, sub = {0};
	struct bp_receiver r = {.c = &sub};
	pthread_t th;
	char filter[128];
	uint32_t *sorted = NULL;
	uint64_t lag = 0, t0, n, got, i;
	double deadline, drain;
	int rc = bp_parse(argc, argv, &a, true);

	if (rc != 0) {
		return rc;
	}
	mosquitto_lib_init();
	if (bp_connect(&a, &sub, a.to, "phone", false) != 0 ||
	    bp_connect(&a, &pub, "s0", "latency", true) != 0) {
		return 1;
	}
	snprintf(filter, sizeof(filter), "im/%s/#", a.to);
	if (bp_subscribe(&sub, filter) != 0) {
		fprintf(stderr, "pigeon-bench: subscribe %s failed\n", filter);
		return 1;
	}
	sub.count = a.count;
	sub.lat_us = calloc(a.count, sizeof(*sub.lat_us));
	sub.seen = calloc(a.count, 1);
	if (sub.lat_us == NULL || sub.seen == NULL) {
		fprintf(stderr, "pigeon-bench: out of memory\n");
		return 1;
	}
	/* Start the schedule 50 ms out, so the receiver thread is polling by then. */
	t0 = bp_now_ns() + 50000000;
	deadline = (double)t0 / 1e9 + a.time_limit;
	r.deadline = deadline;
	if (pthread_create(&th, NULL, bp_receive, &r) != 0) {
		fprintf(stderr, "pigeon-bench: cannot start the receiver thread\n");
		return 1;
	}
	rc = bp_send(&a, &pub, latency_topic, true, t0, deadline, &lag);
	/* Whatever is still on its way gets up to 10 s more (within the limit). */
	drain = bp_now() + 10;
	while (rc == 0 && sub.received < a.count && bp_now() < drain && bp_now() < deadline &&
	       !r.failed) {
		struct timespec ts = {0, 5000000};
		nanosleep(&ts, NULL);
		if (!bp_io(&pub, 0)) {
			rc = 1;
		}
	}
	atomic_store(&r.stop, true);
	pthread_join(th, NULL);
	got = sub.received;
	if (rc == 0 && (r.failed || got < a.count)) {
		fprintf(stderr, "pigeon-bench: received %llu of %u messages\n",
		        (unsigned long long)got, a.count);
		rc = 1;
	}
	if (rc == 0) {
		n = a.count - a.warmup;
		sorted = malloc(n * sizeof(*sorted));
		if (sorted == NULL) {
			rc = 1;
		}
	}
	if (rc == 0) {
		for (i = 0; i < n; i++) {
			sorted[i] = sub.lat_us[a.warmup + i];
		}
		qsort(sorted, n, sizeof(*sorted), bp_u32_cmp);
		printf("latency %s %u us p50_us=%u p99_us=%u p999_us=%u max_us=%u count=%u "
		       "measured=%llu rate=%.0f size=%u seconds=%.3f sender_lag_max_us=%llu "
		       "duplicates=%llu\n",
		       a.label, sorted[n * 99 / 100], sorted[n / 2], sorted[n * 99 / 100],
		       sorted[n * 999 / 1000], sorted[n - 1], a.count, (unsigned long long)n,
		       a.rate, a.size, (double)a.count / a.rate, (unsigned long long)lag,
		       (unsigned long long)sub.duplicates);
		fflush(stdout);
	}
	free(sorted);
	bp_close(&pub);
	bp_close(&sub);
	free(sub.lat_us);
	free(sub.seen);
	mosquitto_lib_cleanup();
	return rc;
}
