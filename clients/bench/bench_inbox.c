/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon-bench subcommands for the inbox (docs/benchmarks.md):
 *
 *   chat     one sender -> one online recipient, QoS 1, N messages of B bytes.
 *            The sender keeps at most W messages published but not yet
 *            received (end-to-end flow control, so neither broker ever drops
 *            a message for max_queued_messages); msg/s = N / (first publish ->
 *            last message received and every PUBACK back).
 *   catchup  N messages stored for an offline user (untimed), then timed: the
 *            user connects, subscribes and syncs everything, 1000 per request.
 *   notify   N notifications of T types spread over U offline users, QoS 1,
 *            W unacknowledged at most; msg/s by PUBACKs.
 *
 * The same client code runs against plain Mosquitto (--anonymous: no
 * username, same topics, same QoS and payload) and against pigeon (tokens
 * minted from --secret-file before anything is timed). Every wait is bounded
 * by --time-limit. All clients run on this one thread over poll(2) and
 * libmosquitto's non-threaded calls, so the load generator spends its CPU on
 * MQTT, not on waking threads.
 */
#include "bench.h"

#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "options.h"
#include "pigeon.pb-c.h"
#include "jws.h"
#include "token.h"
#include "tokens.h"

struct bi_args {
	const char *host;
	int port;
	const char *secret_file;
	bool anonymous;
	const char *label;
	const char *to;
	unsigned count, size, window, users, types;
	double time_limit;
	bool msg_id;
};

struct bi_client {
	struct mosquitto *m;
	bool connected;
	int connack_rc;
	uint64_t received; /* messages received */
	uint64_t acked;    /* PUBACKs received */
	bool subscribed;
	/* catchup */
	uint64_t sync_messages, sync_last_seq;
	bool sync_more, sync_done, sync_error;
};

static double bi_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bi_on_connect(struct mosquitto *m, void *obj, int rc, int flags,
                          const mosquitto_property *props)
{
	struct bi_client *c = obj;

	c->connected = true;
	c->connack_rc = rc;
}

static void bi_on_publish(struct mosquitto *m, void *obj, int mid, int rc,
                          const mosquitto_property *props)
{
	struct bi_client *c = obj;

	c->acked++;
}

static void bi_on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted,
                            const mosquitto_property *props)
{
	struct bi_client *c = obj;

	c->subscribed = true;
}

static void bi_on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                          const mosquitto_property *props)
{
	struct bi_client *c = obj;
	size_t tl = strlen(msg->topic);

	if (tl > 6 && strcmp(msg->topic + tl - 6, "/reply") == 0) {
		Pigeon__Reply *r =
		    pigeon__reply__unpack(NULL, (size_t)msg->payloadlen, msg->payload);
		if (r == NULL || r->code != 0 || r->body_case != PIGEON__REPLY__BODY_SYNC) {
			c->sync_error = true;
		} else {
			c->sync_messages += r->sync->n_messages;
			if (r->sync->n_messages > 0) {
				c->sync_last_seq = r->sync->messages[r->sync->n_messages - 1]->seq;
			}
			c->sync_more = r->sync->more;
		}
		c->sync_done = true;
		pigeon__reply__free_unpacked(r, NULL);
	} else {
		c->received++;
	}
}

/*
 * Runs every client's network I/O on this thread until pred(arg) holds or
 * the deadline passes (false). step, if not NULL, runs before each poll
 * (publishers publish there). A broken connection ends the wait too.
 */
static struct bi_client *bi_all[4];
static int bi_nall;

static bool bi_pump(bool (*pred)(const void *), const void *arg, void (*step)(void *), void *ud,
                    double deadline)
{
	struct pollfd pfd[4];
	int i;

	while (!pred(arg)) {
		if (bi_now() > deadline) {
			return false;
		}
		if (step) {
			step(ud);
		}
		for (i = 0; i < bi_nall; i++) {
			pfd[i].fd = mosquitto_socket(bi_all[i]->m);
			pfd[i].events = POLLIN | (mosquitto_want_write(bi_all[i]->m) ? POLLOUT : 0);
			pfd[i].revents = 0;
		}
		if (poll(pfd, (nfds_t)bi_nall, 10) < 0) {
			return false;
		}
		for (i = 0; i < bi_nall; i++) {
			struct mosquitto *m = bi_all[i]->m;
			int rc = MOSQ_ERR_SUCCESS;
			if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) {
				rc = mosquitto_loop_read(m, 1);
			}
			if (rc == MOSQ_ERR_SUCCESS && (pfd[i].revents & POLLOUT)) {
				rc = mosquitto_loop_write(m, 1);
			}
			if (rc == MOSQ_ERR_SUCCESS) {
				rc = mosquitto_loop_misc(m);
			}
			if (rc != MOSQ_ERR_SUCCESS) {
				fprintf(stderr, "pigeon-bench: connection lost: %s\n",
				        mosquitto_strerror(rc));
				return false;
			}
		}
	}
	return true;
}

static bool pred_connected(const void *arg)
{
	return ((const struct bi_client *)arg)->connected;
}

static bool pred_subscribed(const void *arg)
{
	return ((const struct bi_client *)arg)->subscribed;
}

static char *bi_token(const struct bi_args *a, const char *uid, const char *dev, bool service)
{
	struct pg_signkey *key = bench_token_key(a->secret_file);
	char *tok = key ? bench_token_mint(key, uid, dev, service, 86400) : NULL;

	pg_signkey_free(key);
	return tok;
}

/* Connects uid:dev (MQTT 5, threaded loop). Returns 0, or 1 with a message. */
static int bi_connect(const struct bi_args *a, struct bi_client *c, const char *uid,
                      const char *dev, bool service)
{
	char cid[160];
	char *tok = NULL;
	int rc;

	memset(c, 0, sizeof(*c));
	snprintf(cid, sizeof(cid), "%s:%s", uid, dev);
	c->m = mosquitto_new(cid, true, c);
	if (c->m == NULL) {
		return 1;
	}
	mosquitto_int_option(c->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	mosquitto_int_option(c->m, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_connect_v5_callback_set(c->m, bi_on_connect);
	mosquitto_publish_v5_callback_set(c->m, bi_on_publish);
	mosquitto_subscribe_v5_callback_set(c->m, bi_on_subscribe);
	mosquitto_message_v5_callback_set(c->m, bi_on_message);
	if (!a->anonymous) {
		tok = bi_token(a, uid, dev, service);
		if (tok == NULL || mosquitto_username_pw_set(c->m, uid, tok) != MOSQ_ERR_SUCCESS) {
			free(tok);
			return 1;
		}
		free(tok);
	}
	rc = mosquitto_connect(c->m, a->host, a->port, 60);
	if (rc != MOSQ_ERR_SUCCESS || bi_nall == 4) {
		fprintf(stderr, "pigeon-bench: connect %s: %s\n", cid, mosquitto_strerror(rc));
		return 1;
	}
	bi_all[bi_nall++] = c;
	if (!bi_pump(pred_connected, c, NULL, NULL, bi_now() + 10) || c->connack_rc != 0) {
		fprintf(stderr, "pigeon-bench: connect %s refused or timed out\n", cid);
		return 1;
	}
	return 0;
}

static int bi_subscribe(struct bi_client *c, const char *filter)
{
	if (mosquitto_subscribe(c->m, NULL, filter, 1) != MOSQ_ERR_SUCCESS) {
		return 1;
	}
	return bi_pump(pred_subscribed, c, NULL, NULL, bi_now() + 10) ? 0 : 1;
}

static void bi_close(struct bi_client *c)
{
	int i;

	if (c->m == NULL) {
		return;
	}
	for (i = 0; i < bi_nall; i++) {
		if (bi_all[i] == c) {
			bi_all[i] = bi_all[--bi_nall];
			break;
		}
	}
	mosquitto_disconnect(c->m);
	mosquitto_loop_write(c->m, 1);
	mosquitto_destroy(c->m);
	c->m = NULL;
}

/* Publishes one QoS 1 message, with a msg-id user property if asked. */
static int bi_publish(struct bi_client *c, const char *topic, const void *payload, unsigned size,
                      bool with_msg_id, unsigned i)
{
	mosquitto_property *props = NULL;
	char id[32];
	int rc;

	if (with_msg_id) {
		snprintf(id, sizeof(id), "m%u-%ld", i, (long)time(NULL));
		mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "msg-id", id);
	}
	rc = mosquitto_publish_v5(c->m, NULL, topic, (int)size, payload, 1, false, props);
	mosquitto_property_free_all(&props);
	return rc == MOSQ_ERR_SUCCESS ? 0 : 1;
}

static int bi_parse(int argc, char **argv, struct bi_args *a)
{
	static const struct option opts[] = {
	    {"host", required_argument, NULL, 'h'},   {"port", required_argument, NULL, 'p'},
	    {"count", required_argument, NULL, 'n'},  {"size", required_argument, NULL, 's'},
	    {"window", required_argument, NULL, 'w'}, {"secret-file", required_argument, NULL, 'k'},
	    {"anonymous", no_argument, NULL, 'a'},    {"label", required_argument, NULL, 'l'},
	    {"to", required_argument, NULL, 't'},     {"time-limit", required_argument, NULL, 'T'},
	    {"msg-id", no_argument, NULL, 'm'},       {"users", required_argument, NULL, 'u'},
	    {"types", required_argument, NULL, 'y'},  {NULL, 0, NULL, 0},
	};
	char err[256];
	uint64_t v;
	int c;

	a->host = "127.0.0.1";
	a->label = "pigeon";
	a->to = "r0";
	a->count = 100000;
	a->size = 256;
	a->window = 500;
	a->users = 1000;
	a->types = 10;
	a->time_limit = 300;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		uint64_t max = c == 'p' ? 65535 : c == 's' ? 1u << 20 : 10000000;
		switch (c) {
		case 'h':
			a->host = optarg;
			continue;
		case 'k':
			a->secret_file = optarg;
			continue;
		case 'a':
			a->anonymous = true;
			continue;
		case 'l':
			a->label = optarg;
			continue;
		case 't':
			if (!pg_ident_valid_str(optarg)) {
				fprintf(stderr, "pigeon-bench: --to takes a uid\n");
				return 2;
			}
			a->to = optarg;
			continue;
		case 'm':
			a->msg_id = true;
			continue;
		case 'p':
		case 'n':
		case 's':
		case 'w':
		case 'T':
		case 'u':
		case 'y':
			if (pg_opt_uint(optarg, c == 's' ? 0 : 1, max, &v, err, sizeof(err)) != 0) {
				fprintf(stderr, "pigeon-bench: %s\n", err);
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
			} else if (c == 'T') {
				a->time_limit = (double)v;
			} else if (c == 'u') {
				a->users = (unsigned)v;
			} else {
				a->types = (unsigned)v;
			}
			continue;
		default:
			return 2;
		}
	}
	if (a->port == 0 || (!a->anonymous && a->secret_file == NULL)) {
		fprintf(
		    stderr,
		    "pigeon-bench: --port and one of --secret-file / --anonymous are required\n");
		return 2;
	}
	return 0;
}

/*
 * A stream of count QoS 1 publishes from pub, at most `window` of them not
 * yet done, where done means received by `flow` (end to end) or, without a
 * receiver, acknowledged to pub.
 */
struct bi_stream {
	const struct bi_args *a;
	struct bi_client *pub;
	struct bi_client *rcv; /* NULL: count PUBACKs */
	void (*topic_of)(const struct bi_args *, unsigned, char *, size_t);
	char *payload;
	unsigned sent;
	bool failed;
};

static uint64_t bi_done(const struct bi_stream *s)
{
	return s->rcv ? s->rcv->received : s->pub->acked;
}

static void bi_stream_step(void *ud)
{
	struct bi_stream *s = ud;
	char topic[256];

	while (!s->failed && s->sent < s->a->count && s->sent - bi_done(s) < s->a->window) {
		s->topic_of(s->a, s->sent, topic, sizeof(topic));
		if (bi_publish(s->pub, topic, s->payload, s->a->size, s->a->msg_id, s->sent) != 0) {
			fprintf(stderr, "pigeon-bench: publish %u failed\n", s->sent);
			s->failed = true;
			return;
		}
		s->sent++;
	}
}

static bool pred_stream_done(const void *arg)
{
	const struct bi_stream *s = arg;

	return s->failed || (s->sent == s->a->count && bi_done(s) >= s->a->count &&
	                     s->pub->acked >= s->a->count);
}

/* Runs the whole stream; 0, or 1 on failure or timeout. */
static int bi_stream_run(const struct bi_args *a, struct bi_client *pub, struct bi_client *rcv,
                         void (*topic_of)(const struct bi_args *, unsigned, char *, size_t),
                         double deadline)
{
	struct bi_stream s = {.a = a, .pub = pub, .rcv = rcv, .topic_of = topic_of};
	bool ok;

	s.payload = malloc(a->size ? a->size : 1);
	if (s.payload == NULL) {
		return 1;
	}
	memset(s.payload, 'x', a->size);
	ok = bi_pump(pred_stream_done, &s, bi_stream_step, &s, deadline) && !s.failed;
	free(s.payload);
	if (!ok) {
		fprintf(stderr,
		        "pigeon-bench: stream stopped: sent %u, done %llu, acked %llu of %u\n",
		        s.sent, (unsigned long long)bi_done(&s), (unsigned long long)pub->acked,
		        a->count);
	}
	return ok ? 0 : 1;
}

static void chat_topic(const struct bi_args *a, unsigned i, char *buf, size_t cap)
{
	snprintf(buf, cap, "im/%s/chat", a->to);
}

int bench_chat(int argc, char **argv)
{
	struct bi_args a = {0};
	struct bi_client pub, sub;
	char filter[128];
	double t0, t1;
	int rc = bi_parse(argc, argv, &a);

	if (rc != 0) {
		return rc;
	}
	mosquitto_lib_init();
	if (bi_connect(&a, &sub, a.to, "bench", false) != 0 ||
	    bi_connect(&a, &pub, "s0", "bench", true) != 0) {
		return 1;
	}
	snprintf(filter, sizeof(filter), "im/%s/#", a.to);
	if (bi_subscribe(&sub, filter) != 0) {
		fprintf(stderr, "pigeon-bench: subscribe %s failed\n", filter);
		return 1;
	}
	t0 = bi_now();
	rc = bi_stream_run(&a, &pub, &sub, chat_topic, t0 + a.time_limit);
	t1 = bi_now();
	if (rc == 0) {
		printf("chat %s %.0f msg/s count=%u size=%u window=%u seconds=%.3f msg_id=%s\n",
		       a.label, (double)a.count / (t1 - t0), a.count, a.size, a.window, t1 - t0,
		       a.msg_id ? "yes" : "no");
		fflush(stdout);
	}
	bi_close(&pub);
	bi_close(&sub);
	mosquitto_lib_cleanup();
	return rc;
}

static bool pred_sync_done(const void *arg)
{
	return ((const struct bi_client *)arg)->sync_done;
}

static int bi_sync_request(struct bi_client *c, uint64_t id, uint64_t after)
{
	Pigeon__Request req = PIGEON__REQUEST__INIT;
	Pigeon__SyncRequest sr = PIGEON__SYNC_REQUEST__INIT;
	uint8_t buf[64];
	size_t len;

	sr.after_seq = after;
	sr.limit = 1000;
	req.id = id;
	req.body_case = PIGEON__REQUEST__BODY_SYNC;
	req.sync = &sr;
	len = pigeon__request__pack(&req, buf);
	return mosquitto_publish(c->m, NULL, "$CONTROL/pigeon/v1", (int)len, buf, 1, false) ==
	               MOSQ_ERR_SUCCESS
	           ? 0
	           : 1;
}

int bench_catchup(int argc, char **argv)
{
	struct bi_args a = {0};
	struct bi_client pub, user;
	char filter[128];
	uint64_t id = 0;
	double t0, t1, deadline;
	int rc = bi_parse(argc, argv, &a);

	if (rc != 0) {
		return rc;
	}
	if (a.anonymous) {
		fprintf(stderr, "pigeon-bench: catchup needs pigeon (--secret-file)\n");
		return 2;
	}
	mosquitto_lib_init();
	if (bi_connect(&a, &pub, "s0", "fill", true) != 0) {
		return 1;
	}
	deadline = bi_now() + a.time_limit;
	rc = bi_stream_run(&a, &pub, NULL, chat_topic, deadline);
	bi_close(&pub);
	if (rc != 0) {
		fprintf(stderr, "pigeon-bench: filling the inbox failed\n");
		return 1;
	}

	t0 = bi_now();
	if (bi_connect(&a, &user, a.to, "catchup", false) != 0) {
		return 1;
	}
	snprintf(filter, sizeof(filter), "im/%s/#", a.to);
	if (bi_subscribe(&user, filter) != 0) {
		return 1;
	}
	user.sync_more = true;
	while (user.sync_more) {
		user.sync_done = false;
		if (bi_sync_request(&user, ++id, user.sync_last_seq) != 0 ||
		    !bi_pump(pred_sync_done, &user, NULL, NULL, deadline) || user.sync_error) {
			fprintf(stderr, "pigeon-bench: sync failed or timed out\n");
			return 1;
		}
	}
	t1 = bi_now();
	printf("catchup %s %.0f ms messages=%llu requests=%llu size=%u\n", a.label, (t1 - t0) * 1e3,
	       (unsigned long long)user.sync_messages, (unsigned long long)id, a.size);
	fflush(stdout);
	rc = user.sync_messages >= a.count ? 0 : 1;
	if (rc) {
		fprintf(stderr, "pigeon-bench: synced %llu of %u messages\n",
		        (unsigned long long)user.sync_messages, a.count);
	}
	bi_close(&user);
	mosquitto_lib_cleanup();
	return rc;
}

static void notify_topic(const struct bi_args *a, unsigned i, char *buf, size_t cap)
{
	snprintf(buf, cap, "im/%s%u/notify/t%u", a->to, i % a->users, (i / a->users) % a->types);
}

int bench_notify(int argc, char **argv)
{
	struct bi_args a = {0};
	struct bi_client pub;
	double t0, t1;
	int rc = bi_parse(argc, argv, &a);

	if (rc != 0) {
		return rc;
	}
	mosquitto_lib_init();
	if (bi_connect(&a, &pub, "s0", "notify", true) != 0) {
		return 1;
	}
	t0 = bi_now();
	rc = bi_stream_run(&a, &pub, NULL, notify_topic, t0 + a.time_limit);
	t1 = bi_now();
	if (rc == 0) {
		printf("notify %s %.0f msg/s count=%u users=%u types=%u seconds=%.3f\n", a.label,
		       (double)a.count / (t1 - t0), a.count, a.users, a.types, t1 - t0);
		fflush(stdout);
	}
	bi_close(&pub);
	mosquitto_lib_cleanup();
	return rc;
}
