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
 *   pigeon-example --state-file FILE [--fail-outbox] SERVER UID DEVICE TOKEN TO TEXT
 *   e.g. pigeon-example tcp://127.0.0.1:1883 alice phone "$TOKEN" ./state bob hello
 *
 * STATE_DIR: the library's own files keep the cursor and the outbox. With
 * --state-file the app keeps them itself, through a persistence hook
 * (struct pigeon_persist_ops): one file holding the cursor, the last
 * winning address and the outbox records, rewritten atomically on every
 * change, as an app would keep them in its own database. --fail-outbox
 * makes the hook's outbox_put fail, as a full disk would: the send is then
 * refused (PIGEON_EPERSIST), nothing is sent, and the example exits 1 once
 * synced.
 *
 * Threads: callbacks run on the library's client thread; main() waits on a
 * condition variable for what they report. Everything the two share is in
 * struct example under its mutex. The library makes the hook's calls one at
 * a time (under its own lock), from the client thread or from
 * pigeon_client_new/send, so struct hook needs no lock of its own.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* ---- the persistence hook: the app's own storage, here one file */

/* One send not yet stored by the broker: the library's opaque record. */
struct hook_rec {
	char *msg_id;
	unsigned char *rec;
	size_t len;
};

/*
 * The whole state, in memory and in `path`. The file is text, one item a
 * line: "cursor N", "server URI", then "outbox MSG_ID_HEX REC_HEX" per
 * send, oldest first (hex keeps any byte of a msg_id or record on one line).
 */
struct hook {
	const char *path;
	bool fail_outbox; /* --fail-outbox: outbox_put fails */
	uint64_t cursor;
	char server[256];
	struct hook_rec *recs;
	size_t n;
};

static void hook_hex(FILE *f, const void *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		fprintf(f, "%02x", ((const unsigned char *)p)[i]);
	}
}

/* Decodes hex text into a new buffer (+ a NUL, for a msg_id); NULL if not hex. */
static unsigned char *hook_unhex(const char *s, size_t *len)
{
	size_t n = strlen(s) / 2;
	if (strspn(s, "0123456789abcdef") != 2 * n || s[2 * n] != '\0') {
		return NULL;
	}
	unsigned char *out = malloc(n + 1);
	for (size_t i = 0; out && i < n; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1) {
			free(out);
			return NULL;
		}
		out[i] = (unsigned char)v;
	}
	if (out) {
		out[n] = '\0';
		*len = n;
	}
	return out;
}

/*
 * Writes the whole state to path.tmp, fsyncs it, renames it over path and
 * fsyncs the directory: after a crash the file is the old state or the new
 * one, never a mix. The library promises a send only once this returned 0.
 */
static int hook_save(struct hook *h)
{
	char tmp[4096], dir[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", h->path);
	FILE *f = fopen(tmp, "w");
	if (f == NULL) {
		return -1;
	}
	fprintf(f, "cursor %" PRIu64 "\nserver %s\n", h->cursor, h->server);
	for (size_t i = 0; i < h->n; i++) {
		fputs("outbox ", f);
		hook_hex(f, h->recs[i].msg_id, strlen(h->recs[i].msg_id));
		fputc(' ', f);
		hook_hex(f, h->recs[i].rec, h->recs[i].len);
		fputc('\n', f);
	}
	int rc = (fflush(f) == 0 && fsync(fileno(f)) == 0) ? 0 : -1;
	rc |= fclose(f);
	if (rc == 0) {
		rc = rename(tmp, h->path);
	}
	snprintf(dir, sizeof(dir), "%s", h->path);
	int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
	if (dfd >= 0) {
		rc |= fsync(dfd);
		close(dfd);
	}
	return rc == 0 ? 0 : PIGEON_EPERSIST;
}

/* Reads path (a missing file is an empty state). 0, or -1 if unreadable. */
static int hook_open(struct hook *h)
{
	char *line = NULL;
	size_t cap = 0;
	int rc = 0;
	FILE *f = fopen(h->path, "r");
	if (f == NULL) {
		return 0; /* first run */
	}
	while (rc == 0 && getline(&line, &cap, f) > 0) {
		line[strcspn(line, "\n")] = '\0';
		char *rec_hex = strchr(line + 7, ' ');
		if (strncmp(line, "cursor ", 7) == 0) {
			h->cursor = strtoull(line + 7, NULL, 10);
		} else if (strncmp(line, "server ", 7) == 0) {
			snprintf(h->server, sizeof(h->server), "%s", line + 7);
		} else if (strncmp(line, "outbox ", 7) == 0 && rec_hex) {
			struct hook_rec r;
			size_t idlen;
			*rec_hex++ = '\0';
			r.msg_id = (char *)hook_unhex(line + 7, &idlen);
			r.rec = hook_unhex(rec_hex, &r.len);
			struct hook_rec *more = realloc(h->recs, (h->n + 1) * sizeof(*more));
			if (more != NULL) {
				h->recs = more;
			}
			if (r.msg_id == NULL || r.rec == NULL || more == NULL) {
				free(r.msg_id);
				free(r.rec);
				rc = -1;
			} else {
				h->recs[h->n++] = r;
			}
		}
	}
	free(line);
	fclose(f);
	return rc;
}

static int hook_load_cursor(void *ud, uint64_t *seq)
{
	*seq = ((struct hook *)ud)->cursor;
	return 0;
}

/* Called before each ack goes out: the broker's cursor never passes this one. */
static int hook_save_cursor(void *ud, uint64_t seq)
{
	struct hook *h = ud;
	h->cursor = seq;
	return hook_save(h);
}

static int hook_outbox_put(void *ud, const char *msg_id, const void *rec, size_t len)
{
	struct hook *h = ud;
	if (h->fail_outbox) {
		return PIGEON_EPERSIST; /* as a full disk would */
	}
	struct hook_rec *more = realloc(h->recs, (h->n + 1) * sizeof(*more));
	if (more == NULL) {
		return PIGEON_ENOMEM;
	}
	h->recs = more;
	struct hook_rec *r = &h->recs[h->n];
	r->msg_id = strdup(msg_id);
	r->rec = malloc(len ? len : 1);
	if (r->msg_id == NULL || r->rec == NULL) {
		free(r->msg_id);
		free(r->rec);
		return PIGEON_ENOMEM;
	}
	memcpy(r->rec, rec, len);
	r->len = len;
	h->n++;
	int rc = hook_save(h);
	if (rc != 0) { /* not durable: not promised, so not kept */
		h->n--;
		free(r->msg_id);
		free(r->rec);
	}
	return rc;
}

/* The broker stored the send (or refused it for good): forget it. */
static int hook_outbox_del(void *ud, const char *msg_id)
{
	struct hook *h = ud;
	for (size_t i = 0; i < h->n; i++) {
		if (strcmp(h->recs[i].msg_id, msg_id) == 0) {
			free(h->recs[i].msg_id);
			free(h->recs[i].rec);
			memmove(&h->recs[i], &h->recs[i + 1], (h->n - i - 1) * sizeof(*h->recs));
			h->n--;
			return hook_save(h);
		}
	}
	return 0;
}

/* At pigeon_client_new(): every pending send, oldest first, to be sent again. */
static int hook_outbox_load(void *ud, int (*each)(void *, const char *, const void *, size_t),
                            void *arg)
{
	struct hook *h = ud;
	for (size_t i = 0; i < h->n; i++) {
		if (each(arg, h->recs[i].msg_id, h->recs[i].rec, h->recs[i].len) != 0) {
			break;
		}
	}
	return 0;
}

static int hook_load_server(void *ud, char *buf, size_t len)
{
	snprintf(buf, len, "%s", ((struct hook *)ud)->server);
	return 0;
}

static int hook_save_server(void *ud, const char *server)
{
	struct hook *h = ud;
	snprintf(h->server, sizeof(h->server), "%s", server);
	return hook_save(h);
}

/* At pigeon_client_destroy(): the file is up to date already; free the memory. */
static void hook_close(void *ud)
{
	struct hook *h = ud;
	for (size_t i = 0; i < h->n; i++) {
		free(h->recs[i].msg_id);
		free(h->recs[i].rec);
	}
	free(h->recs);
	h->recs = NULL;
	h->n = 0;
}

static const struct pigeon_persist_ops hook_ops = {
    .load_cursor = hook_load_cursor,
    .save_cursor = hook_save_cursor,
    .outbox_put = hook_outbox_put,
    .outbox_del = hook_outbox_del,
    .outbox_load = hook_outbox_load,
    .load_server = hook_load_server,
    .save_server = hook_save_server,
    .close = hook_close,
};

/* ---- the app */

int main(int argc, char **argv)
{
	struct example ex = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	struct hook h = {0};
	struct pigeon_client_options o;
	struct pigeon_send s;
	pigeon_client *c = NULL;
	struct timespec deadline;
	char msg_id[PIGEON_MSG_ID_MAX + 1];
	const char *servers[1], *to, *text;
	int rc, status = 1;

	/* --state-file FILE [--fail-outbox]: the hook instead of STATE_DIR. */
	if (argc > 2 && strcmp(argv[1], "--state-file") == 0) {
		h.path = argv[2];
		argv += 2, argc -= 2;
		if (argc > 1 && strcmp(argv[1], "--fail-outbox") == 0) {
			h.fail_outbox = true;
			argv++, argc--;
		}
	}
	if (argc != (h.path ? 7 : 8)) {
		fprintf(stderr,
		        "usage: pigeon-example SERVER UID DEVICE TOKEN STATE_DIR TO TEXT\n"
		        "       pigeon-example --state-file FILE [--fail-outbox] SERVER UID "
		        "DEVICE TOKEN TO TEXT\n");
		return 2;
	}
	servers[0] = argv[1];
	to = argv[h.path ? 5 : 6]; /* no STATE_DIR with the hook */
	text = argv[h.path ? 6 : 7];

	/* Options are copied by pigeon_client_new(); 0 means the default. */
	memset(&o, 0, sizeof(o));
	o.uid = argv[2];
	o.device = argv[3];
	o.token = argv[4];
	if (h.path) {
		if (hook_open(&h) != 0) {
			fprintf(stderr, "pigeon-example: cannot read %s\n", h.path);
			hook_close(&h);
			return 1;
		}
		o.persist = &hook_ops; /* the app's storage: state_dir is not used */
		o.persist_ud = &h;
	} else {
		o.state_dir = argv[5]; /* cursor + outbox as files */
	}
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
		hook_close(&h); /* harmless twice: the library may have closed it */
		return 1;
	}

	/*
	 * A send is durable once this returns 0: if the app dies now, the next
	 * pigeon_client_new() on this state sends it again, under the same
	 * msg_id, and the broker stores it once. If the persistence failed
	 * (PIGEON_EPERSIST) nothing was queued: the app must tell its user.
	 */
	memset(&s, 0, sizeof(s));
	s.to = to;
	s.kind = PIGEON_CHAT;
	s.body = text;
	s.body_len = strlen(text);
	s.content_type = "text/plain";
	rc = pigeon_client_send(c, &s, msg_id, sizeof(msg_id));
	if (rc == 0) {
		printf("queued %s\n", msg_id);
		fflush(stdout);
	} else if (rc == PIGEON_EPERSIST) {
		/* Not queued, so no sent callback will come: sync all the same, then exit 1. */
		printf("send not queued: %s\n", pigeon_strerror(rc));
		fflush(stdout);
		ex.sent = true;
		ex.failed = 1;
	} else {
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
