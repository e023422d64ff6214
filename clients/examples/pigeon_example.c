/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon-example: the smallest complete app on libpigeon-client
 * (docs/client.md, "The example program"). It
 *
 *   1. connects as uid:device with a token, keeping its cursor and outbox
 *      in a state directory;
 *   2. prints every message it is handed ("seq from: body"), exactly once
 *      and in seq order, also across restarts;
 *   3. sends one chat, which the library retries until the broker stored it;
 *   4. registers the device for push (a broker without pigeon_push answers
 *      501, which is printed like any other answer);
 *
 * and exits once it is synced, the chat was stored and the registration
 * was answered (or after 30 s).
 *
 *   pigeon-example SERVER UID DEVICE TOKEN STATE_DIR TO TEXT
 *   e.g. pigeon-example tcp://127.0.0.1:1883 alice phone "$TOKEN" ./state bob hello
 *
 * Threads: callbacks run on the library's client thread; main() waits on a
 * condition variable for what they report. Everything the two share is in
 * struct example under its mutex.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "pigeon_client.h"

/* What the callbacks tell main(). */
struct example {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool synced, sent, registered;
	int failed; /* a send or registration was refused */
};

/*
 * Called for every stored message in seq order, each seq once. When it
 * returns, the message counts as handled: the cursor moves past it and the
 * broker is told (ack), so an app saves it before returning.
 */
static void on_message(void *ud, const struct pigeon_envelope *env)
{
	(void)ud;
	printf("%" PRIu64 " %s: %.*s\n", env->seq, env->from, (int)env->body_len,
	       (const char *)env->body);
	fflush(stdout);
}

/* Seqs that will never come (a replaced notification, retention). */
static void on_gap(void *ud, uint64_t first, uint64_t last, enum pigeon_gap_reason why)
{
	(void)ud;
	printf("gap %" PRIu64 "..%" PRIu64 " (%s)\n", first, last,
	       why == PIGEON_GAP_RETENTION ? "retention" : "gone");
	fflush(stdout);
}

/* A send left the outbox: stored (code 0, its seq), or refused for good. */
static void on_sent(void *ud, const char *msg_id, int code, uint64_t seq, bool duplicate,
                    const char *error)
{
	struct example *ex = ud;

	if (code == 0) {
		printf("sent %s: seq %" PRIu64 "%s\n", msg_id, seq,
		       duplicate ? " (duplicate)" : "");
	} else {
		printf("send %s refused: %d %s\n", msg_id, code, error);
	}
	fflush(stdout);
	pthread_mutex_lock(&ex->mu);
	ex->sent = true;
	ex->failed |= code != 0;
	pthread_cond_signal(&ex->cv);
	pthread_mutex_unlock(&ex->mu);
}

/* The broker's answer to the registration. */
static void on_device(void *ud, int code, const char *error)
{
	struct example *ex = ud;

	printf("device: %d %s\n", code, code == 0 ? "registered" : error);
	fflush(stdout);
	pthread_mutex_lock(&ex->mu);
	ex->registered = true;
	pthread_cond_signal(&ex->cv);
	pthread_mutex_unlock(&ex->mu);
}

/* Connection state: an app would show "connecting..." from this. */
static void on_state(void *ud, enum pigeon_state state, int code, const char *text)
{
	struct example *ex = ud;

	if (code != 0) {
		fprintf(stderr, "pigeon-example: state %d: %s\n", (int)state, text);
	}
	if (state == PIGEON_SYNCED) {
		pthread_mutex_lock(&ex->mu);
		ex->synced = true;
		pthread_cond_signal(&ex->cv);
		pthread_mutex_unlock(&ex->mu);
	}
}

int main(int argc, char **argv)
{
	struct example ex = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	struct pigeon_client_options o;
	struct pigeon_send s;
	pigeon_client *c = NULL;
	struct timespec deadline;
	char msg_id[PIGEON_MSG_ID_MAX + 1];
	const char *servers[1];
	int rc, status = 1;

	if (argc != 8) {
		fprintf(stderr,
		        "usage: pigeon-example SERVER UID DEVICE TOKEN STATE_DIR TO TEXT\n");
		return 2;
	}
	servers[0] = argv[1];

	/* Options are copied by pigeon_client_new(); 0 means the default. */
	memset(&o, 0, sizeof(o));
	o.uid = argv[2];
	o.device = argv[3];
	o.token = argv[4];
	o.state_dir = argv[5]; /* cursor + outbox as files */
	o.servers = servers;
	o.n_servers = 1;
	o.cb.message = on_message;
	o.cb.gap = on_gap;
	o.cb.sent = on_sent;
	o.cb.device = on_device;
	o.cb.state = on_state;
	o.ud = &ex;
	rc = pigeon_client_new(&o, &c);
	if (rc != 0) {
		fprintf(stderr, "pigeon-example: %s\n", pigeon_strerror(rc));
		return 1;
	}

	/*
	 * A send is durable once this returns 0: if the app dies now, the next
	 * pigeon_client_new() on this state_dir sends it again, under the same
	 * msg_id, and the broker stores it once.
	 */
	memset(&s, 0, sizeof(s));
	s.to = argv[6];
	s.kind = PIGEON_CHAT;
	s.body = argv[7];
	s.body_len = strlen(argv[7]);
	s.content_type = "text/plain";
	rc = pigeon_client_send(c, &s, msg_id, sizeof(msg_id));
	if (rc != 0) {
		fprintf(stderr, "pigeon-example: send: %s\n", pigeon_strerror(rc));
		goto out;
	}

	/* Connect, subscribe, sync from the saved cursor: all on the client thread. */
	rc = pigeon_client_start(c);
	if (rc == 0) {
		/* Queued until connected; answered through on_device. */
		rc = pigeon_client_register_device(c, "webhook", "example-device-token", NULL,
		                                   false);
	}
	if (rc != 0) {
		fprintf(stderr, "pigeon-example: %s\n", pigeon_strerror(rc));
		goto out;
	}

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 30;
	pthread_mutex_lock(&ex.mu);
	rc = 0;
	while (!(ex.synced && ex.sent && ex.registered) && rc == 0) {
		rc = pthread_cond_timedwait(&ex.cv, &ex.mu, &deadline);
	}
	status = (rc == 0 && !ex.failed) ? 0 : 1;
	pthread_mutex_unlock(&ex.mu);
	if (rc != 0) {
		fprintf(stderr, "pigeon-example: timed out\n");
	}
out:
	/* Stops the thread and saves the cursor; an unsent send stays in the outbox. */
	pigeon_client_destroy(c);
	return status;
}
