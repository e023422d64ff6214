/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon-exporter: the broker's $SYS counters as Prometheus metrics
 * (docs/operations.md). It is an MQTT client of the broker (a service
 * subscribed to $SYS/#), not a thread in a plugin, so HTTP and scrapers
 * stay outside the broker process.
 *
 * Threads: main (options, then waits for SIGTERM/SIGINT), the MQTT thread
 * (mqtt.c) and libmicrohttpd's polling thread (http.c), meeting in the
 * state (state.c). --check (check_once.c) and --list-metrics run on main alone.
 * main owns everything and frees it on the way out.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>

#include "check_once.h"
#include "http.h"
#include "mqtt.h"
#include "opts.h"
#include "render.h"
#include "state.h"
#include "token_source.h"

static int list_metrics(void)
{
	struct exp_buf b = {0};
	int rc = 0;

	exp_render_list(&b);
	if (b.failed || fputs(b.data, stdout) == EOF || fflush(stdout) != 0) {
		fprintf(stderr, "pigeon-exporter: cannot write the list\n");
		rc = 1;
	}
	exp_buf_free(&b);
	return rc;
}

/* Until SIGTERM or SIGINT (blocked in every thread, taken here by sigwait). */
static void wait_for_stop(const sigset_t *set)
{
	int sig = 0;

	for (;;) {
		if (sigwait(set, &sig) != 0) {
			continue;
		}
		if (sig == SIGTERM || sig == SIGINT) {
			return;
		}
	}
}

static int serve(const struct exp_opts *o)
{
	struct exp_state *st = NULL;
	struct exp_mqtt *m = NULL;
	struct exp_http *h = NULL;
	char err[256];
	sigset_t set;
	int port, rc = 1;

	/* Before any thread starts, so that all of them inherit the mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	st = exp_state_new(o->verbose);
	if (st == NULL) {
		fprintf(stderr, "pigeon-exporter: out of memory\n");
		goto out;
	}
	h = exp_http_start((const struct sockaddr *)&o->listen, o->listen_len, st, &o->limits,
	                   &port, err, sizeof(err));
	if (h == NULL) {
		fprintf(stderr, "pigeon-exporter: --listen %s: %s\n", o->listen_text, err);
		goto out;
	}
	fprintf(stderr, "pigeon-exporter: listening on %.*s:%d\n",
	        (int)(strrchr(o->listen_text, ':') - o->listen_text), o->listen_text, port);
	m = exp_mqtt_start(o, st, false, err, sizeof(err));
	if (m == NULL) {
		fprintf(stderr, "pigeon-exporter: %s\n", err);
		goto out;
	}
	wait_for_stop(&set);
	rc = 0;
out:
	exp_http_stop(h);
	exp_mqtt_stop(m);
	exp_state_free(st);
	return rc;
}

int main(int argc, char **argv)
{
	struct exp_opts o;
	char err[256], *tok;
	int rc;

	rc = exp_opts_parse(argc, argv, &o);
	if (rc != 0) {
		return rc == 1 ? 0 : rc;
	}
	if (o.mode == EXP_MODE_LIST) {
		return list_metrics();
	}
	/* A secret that cannot mint is a usage error, found now rather than at every connect. */
	tok = exp_token_get(&o.token, err, sizeof(err));
	if (tok == NULL) {
		fprintf(stderr, "pigeon-exporter: %s\n", err);
		return 2;
	}
	free(tok);
	signal(SIGPIPE, SIG_IGN);
	mosquitto_lib_init();
	rc = o.mode == EXP_MODE_CHECK ? exp_check_run(&o) : serve(&o);
	mosquitto_lib_cleanup();
	return rc;
}
