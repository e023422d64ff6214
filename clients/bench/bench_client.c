/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon-bench client-catchup (docs/benchmarks.md, "Clients"): how fast
 * libpigeon-client hands a backlog to the app.
 *
 *   pigeon-bench client-catchup --port P --secret-file F [--count N (10000)]
 *                [--to UID (cc0)] [--size B (256)] [--host H] [--label L]
 *                [--time-limit S (300)]
 *
 * Untimed: N CHAT messages are stored for UID by a service client over
 * libmosquitto (QoS 1, at most 500 unacknowledged), and a fresh state
 * directory is made (cursor 0). Timed: pigeon_client_start() to the N-th
 * message callback, i.e. connect, subscribe, every sync page, the in-order
 * buffer and the app's callback. messages/s = N / that time.
 *
 * Threads: the fill runs libmosquitto's loop on this thread; the library
 * calls back on its own client thread, which only counts under bc_mu.
 */
#define _XOPEN_SOURCE 700
#include "bench.h"

#include <ftw.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "options.h"
#include "pigeon_client.h"
#include "token.h"

#define BC_KEYFILE_MAX (1u << 20)
#define BC_FILL_WINDOW 500u

struct bc_args {
	const char *host, *secret_file, *to, *label;
	int port;
	unsigned count, size;
	double time_limit;
};

/* What the library's callbacks report to the waiting main thread. */
struct bc_app {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t got, last_seq, out_of_order;
	unsigned want;
	double done_at;
	int auth_error;
};

static double bc_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *bc_token(const struct bc_args *a, const char *uid, const char *dev, bool service)
{
	struct pg_claims cl = {0};
	struct pg_signkey *key;
	char err[256], *buf, *tok;
	size_t len;

	if (pg_read_file(a->secret_file, BC_KEYFILE_MAX, &buf, &len, err, sizeof(err)) != 0) {
		fprintf(stderr, "pigeon-bench: %s\n", err);
		return NULL;
	}
	key = pg_signkey_from_secret((unsigned char *)buf, len);
	free(buf);
	if (key == NULL) {
		return NULL;
	}
	snprintf(cl.sub, sizeof(cl.sub), "%s", uid);
	snprintf(cl.dev, sizeof(cl.dev), "%s", dev);
	cl.role = service ? PG_ROLE_SERVICE : PG_ROLE_USER;
	cl.exp = (int64_t)time(NULL) + 86400;
	tok = pg_token_mint(key, &cl);
	pg_signkey_free(key);
	return tok;
}

/* ---- the fill (libmosquitto, this thread) ----------------------------- */

struct bc_fill {
	bool connected;
	int connack_rc;
	unsigned acked, refused;
};

static void bc_on_connect(struct mosquitto *m, void *obj, int rc, int flags,
                          const mosquitto_property *props)
{
	struct bc_fill *f = obj;

	(void)m;
	(void)flags;
	(void)props;
	f->connected = true;
	f->connack_rc = rc;
}

static void bc_on_publish(struct mosquitto *m, void *obj, int mid, int rc,
                          const mosquitto_property *props)
{
	struct bc_fill *f = obj;

	(void)m;
	(void)mid;
	(void)props;
	f->acked++;
	/* 0x10 "no matching subscribers": stored all the same (the user is offline). */
	if (rc != 0 && rc != MQTT_RC_NO_MATCHING_SUBSCRIBERS) {
		f->refused++;
	}
}

/* Stores a->count CHATs for a->to. 0, or 1 with a message. */
static int bc_fill_inbox(const struct bc_args *a)
{
	struct bc_fill f = {0};
	struct mosquitto *m = NULL;
	char topic[128], *tok = NULL, *payload = NULL;
	unsigned sent = 0;
	double deadline = bc_now() + a->time_limit;
	int rc = 1;

	snprintf(topic, sizeof(topic), "im/%s/chat", a->to);
	payload = malloc(a->size + 1);
	tok = bc_token(a, "s0", "fill", true);
	m = mosquitto_new("s0:fill", true, &f);
	if (!payload || !tok || !m) {
		fprintf(stderr, "pigeon-bench: client-catchup: cannot set up the fill\n");
		goto out;
	}
	memset(payload, 'x', a->size);
	mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_connect_v5_callback_set(m, bc_on_connect);
	mosquitto_publish_v5_callback_set(m, bc_on_publish);
	mosquitto_username_pw_set(m, "s0", tok);
	if (mosquitto_connect(m, a->host, a->port, 60) != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "pigeon-bench: client-catchup: cannot connect to %s:%d\n", a->host,
		        a->port);
		goto out;
	}
	while (!f.connected && bc_now() < deadline) {
		mosquitto_loop(m, 100, 1);
	}
	if (!f.connected || f.connack_rc != 0) {
		fprintf(stderr, "pigeon-bench: client-catchup: the fill login was refused\n");
		goto out;
	}
	while (f.acked < a->count && bc_now() < deadline) {
		while (sent < a->count && sent - f.acked < BC_FILL_WINDOW) {
			if (mosquitto_publish_v5(m, NULL, topic, (int)a->size, payload, 1, false,
			                         NULL) != MOSQ_ERR_SUCCESS) {
				break;
			}
			sent++;
		}
		if (mosquitto_loop(m, 100, 1) != MOSQ_ERR_SUCCESS) {
			fprintf(stderr,
			        "pigeon-bench: client-catchup: the fill connection failed\n");
			goto out;
		}
	}
	if (f.acked < a->count || f.refused) {
		fprintf(stderr, "pigeon-bench: client-catchup: stored %u of %u (%u refused)\n",
		        f.acked - f.refused, a->count, f.refused);
		goto out;
	}
	rc = 0;
out:
	if (m) {
		mosquitto_disconnect(m);
		mosquitto_loop(m, 100, 1);
		mosquitto_destroy(m);
	}
	free(tok);
	free(payload);
	return rc;
}

/* ---- the library (its client thread) ---------------------------------- */

static void bc_on_message(void *ud, const struct pigeon_envelope *env)
{
	struct bc_app *app = ud;

	pthread_mutex_lock(&app->mu);
	if (env->seq <= app->last_seq) {
		app->out_of_order++;
	}
	app->last_seq = env->seq;
	if (++app->got == app->want) {
		app->done_at = bc_now();
		pthread_cond_broadcast(&app->cv);
	}
	pthread_mutex_unlock(&app->mu);
}

static void bc_on_state(void *ud, enum pigeon_state state, int code, const char *text)
{
	struct bc_app *app = ud;

	(void)state;
	(void)text;
	if (code == PIGEON_EAUTH) {
		pthread_mutex_lock(&app->mu);
		app->auth_error = code;
		pthread_cond_broadcast(&app->cv);
		pthread_mutex_unlock(&app->mu);
	}
}

static int bc_parse(int argc, char **argv, struct bc_args *a)
{
	static const struct option opts[] = {
	    {"host", required_argument, NULL, 'h'},
	    {"port", required_argument, NULL, 'p'},
	    {"count", required_argument, NULL, 'n'},
	    {"size", required_argument, NULL, 's'},
	    {"to", required_argument, NULL, 't'},
	    {"secret-file", required_argument, NULL, 'k'},
	    {"label", required_argument, NULL, 'l'},
	    {"time-limit", required_argument, NULL, 'T'},
	    {NULL, 0, NULL, 0},
	};
	char err[256];
	uint64_t v;
	int c;

	a->host = "127.0.0.1";
	a->to = "cc0";
	a->label = "pigeon";
	a->count = 10000;
	a->size = 256;
	a->time_limit = 300;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			a->host = optarg;
			break;
		case 'k':
			a->secret_file = optarg;
			break;
		case 'l':
			a->label = optarg;
			break;
		case 't':
			if (!pg_ident_valid_str(optarg)) {
				fprintf(stderr, "pigeon-bench: --to takes a uid\n");
				return 2;
			}
			a->to = optarg;
			break;
		case 'p':
		case 'n':
		case 's':
		case 'T':
			if (pg_opt_uint(optarg, 1,
			                c == 'p'   ? 65535
			                : c == 's' ? 65536
			                : c == 'T' ? 3600
			                           : 10000000,
			                &v, err, sizeof(err)) != 0) {
				fprintf(stderr, "pigeon-bench: %s\n", err);
				return 2;
			}
			if (c == 'p') {
				a->port = (int)v;
			} else if (c == 'n') {
				a->count = (unsigned)v;
			} else if (c == 's') {
				a->size = (unsigned)v;
			} else {
				a->time_limit = (double)v;
			}
			break;
		default:
			return 2;
		}
	}
	if (a->port == 0 || a->secret_file == NULL) {
		fprintf(stderr, "pigeon-bench: client-catchup needs --port and --secret-file\n");
		return 2;
	}
	return 0;
}

/* nftw callback: removes each entry of the state dir, children first. */
static int bc_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int bench_client_catchup(int argc, char **argv)
{
	struct bc_args a = {0};
	struct bc_app app = {.want = 0};
	struct pigeon_client_options o = {0};
	pigeon_client *c = NULL;
	char server[300], dir[] = "/tmp/pigeon-bench-client.XXXXXX", *tok = NULL;
	const char *servers[1] = {server};
	double t0 = 0, deadline;
	int rc = bc_parse(argc, argv, &a);

	if (rc != 0) {
		return rc;
	}
	mosquitto_lib_init();
	rc = bc_fill_inbox(&a);
	mosquitto_lib_cleanup();
	if (rc != 0) {
		return 1;
	}
	if (mkdtemp(dir) == NULL || (tok = bc_token(&a, a.to, "bench", false)) == NULL) {
		fprintf(stderr, "pigeon-bench: client-catchup: no state dir or token\n");
		free(tok);
		return 1;
	}
	pthread_mutex_init(&app.mu, NULL);
	pthread_cond_init(&app.cv, NULL);
	app.want = a.count;
	snprintf(server, sizeof(server), "tcp://%s:%d", a.host, a.port);
	o.uid = a.to;
	o.device = "bench";
	o.token = tok;
	o.servers = servers;
	o.n_servers = 1;
	o.state_dir = dir;
	o.cb.message = bc_on_message;
	o.cb.state = bc_on_state;
	o.ud = &app;
	rc = pigeon_client_new(&o, &c);
	if (rc != 0) {
		fprintf(stderr, "pigeon-bench: pigeon_client_new: %s\n", pigeon_strerror(rc));
		rc = 1;
		goto out;
	}
	t0 = bc_now();
	rc = pigeon_client_start(c);
	if (rc != 0) {
		fprintf(stderr, "pigeon-bench: pigeon_client_start: %s\n", pigeon_strerror(rc));
		rc = 1;
		goto out;
	}
	deadline = t0 + a.time_limit;
	pthread_mutex_lock(&app.mu);
	while (app.got < app.want && !app.auth_error && bc_now() < deadline) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&app.cv, &app.mu, &ts);
	}
	rc = app.got >= app.want && app.out_of_order == 0 ? 0 : 1;
	if (rc == 0) {
		double s = app.done_at - t0;

		printf("client-catchup %s %.0f msg/s count=%u size=%u seconds=%.3f\n", a.label,
		       (double)a.count / s, a.count, a.size, s);
		fflush(stdout);
	} else {
		fprintf(
		    stderr,
		    "pigeon-bench: client-catchup: %llu of %u handed over, %llu out of order%s\n",
		    (unsigned long long)app.got, a.count, (unsigned long long)app.out_of_order,
		    app.auth_error ? ", login refused" : "");
	}
	pthread_mutex_unlock(&app.mu);
out:
	pigeon_client_destroy(c);
	pthread_cond_destroy(&app.cv);
	pthread_mutex_destroy(&app.mu);
	free(tok);
	if (nftw(dir, bc_rm, 8, FTW_DEPTH | FTW_PHYS) != 0) {
		fprintf(stderr, "pigeon-bench: could not remove %s\n", dir);
	}
	return rc;
}
