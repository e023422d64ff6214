/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon-client: a phone from the terminal (docs/client.md), on
 * libpigeon-client. It logs in as uid:device, syncs from the cursor kept in
 * its state directory, prints every envelope as one JSON line on stdout
 * (pgcli_pb_to_json of the Envelope, the shape pigeon-dump prints), acks
 * what it printed, and reconnects by itself. --send queues chats (retried
 * until the broker stored them, across restarts), --register registers the
 * device for push.
 *
 * stdout: one JSON object per line, flushed after each: an envelope, or
 * {"gap":...}, {"sent":...}, {"device":...}, {"stats":...}. stderr:
 * "pigeon-client: ..." lines for state changes, keepalive changes, queued
 * sends and errors.
 *
 * Threads: main() parses, creates and starts the client, then waits on a
 * condition variable for a stop condition (--count, --until-synced, every
 * --send answered, --drain, --timeout) or a signal; SIGINT and SIGTERM are
 * blocked in every thread and taken by a small signal thread, which sets
 * the stop flag. Callbacks run on the library's client thread; everything
 * they share with main() is in struct cli_run under its mutex, which also
 * serialises writes to stdout.
 *
 * Exit: 0 done (or stopped by a signal: the client is destroyed, so the
 * cursor is saved), 1 runtime failure (login refused, timeout, a send
 * refused), 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "pb_json.h"
#include "pigeon.pb-c.h"
#include "pigeon_client.h"

#define CLI_MAX_SERVERS 16
#define CLI_MAX_SENDS 64
#define CLI_PATH_MAX 4096

/* One --send given on the command line. */
struct cli_send {
	const char *to;   /* argv, or (--stdin) in_to */
	const char *text; /* argv; unused for --stdin */
	char in_to[72];
	char msg_id[PIGEON_MSG_ID_MAX + 1];
	bool answered;
};

/* What the command line asked for. */
struct cli_opts {
	struct pgcli_broker broker;
	const char *servers[CLI_MAX_SERVERS];
	size_t n_servers;
	const char *ca_file;
	bool insecure;
	const char *token;
	const char *token_file;
	const char *uid;
	const char *device;
	const char *state_dir;
	const char *register_arg; /* PLATFORM:TOKEN */
	bool unregister;
	struct cli_send sends[CLI_MAX_SENDS];
	size_t n_sends;
	uint64_t count;
	bool until_synced;
	bool drain;
	bool use_stdin;
	double timeout_s;
	bool retry_auth;
	bool stats;
	uint32_t keepalive_min, keepalive_max, keepalive_step, keepalive_timeout;
	uint32_t connect_timeout_ms, reconnect_min_ms, reconnect_max_ms, request_timeout_ms;
};

/* Shared by the callbacks (client thread) and main(); under mu. */
struct cli_run {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cli_opts *o;
	pigeon_client *client;
	uint64_t printed; /* envelopes printed */
	bool synced;
	bool device_answered;
	bool stop; /* a signal, or a fatal error */
	int fatal; /* the exit status a fatal error asks for (0: none) */
	size_t sends_answered;
	/* --stdin: sends read from standard input, by the stdin thread (grows). */
	struct cli_send *in;
	size_t n_in, cap_in, in_answered;
	bool stdin_eof;
	bool closing; /* main() is about to destroy the client: no more sends */
	bool ended;   /* the exit status is decided and its line printed: it stays the last */
	bool send_refused;
	uint32_t keepalive_s; /* last printed */
};

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: pigeon-client [options]\n"
	    "A pigeon device from the terminal: prints every message as a JSON line.\n"
	    "\n"
	    "  -h, --host H, -p, --port P   broker (default $PIGEON_HOST/$PIGEON_PORT, else\n"
	    "                               127.0.0.1:1883)\n"
	    "  --server URI                 tcp://h:p or ssl://h:p; repeatable: raced in\n"
	    "                               parallel, the winner remembered (overrides -h/-p)\n"
	    "  --ca-file F, --insecure      TLS: verify with F / skip verifying (tests only)\n"
	    "  --token T, --token-file F    the JWT (else $PIGEON_TOKEN)\n"
	    "  --uid U, --device D          default: the token's sub and dev claims\n"
	    "                               (device \"cli\" when the token has no dev)\n"
	    "  --state-dir DIR              cursor, outbox, last server (default\n"
	    "                               ./.pigeon-client/<uid>:<device>)\n"
	    "  --register PLATFORM:TOKEN    register this device for push (apns, fcm, huawei,\n"
	    "                               xiaomi, webhook); prints {\"device\":...}\n"
	    "  --unregister                 unregister this device\n"
	    "  --send UID TEXT              send a chat (repeatable); prints {\"sent\":...};\n"
	    "                               the tool exits once every send got its outcome\n"
	    "  --count N                    exit after N messages\n"
	    "  --until-synced               exit once every stored message was printed\n"
	    "  --drain                      exit once the outbox is empty\n"
	    "  --stdin                      read sends from standard input, one 'UID TEXT'\n"
	    "                               a line (at its end: exit once all are answered)\n"
	    "  --timeout S                  give up after S seconds (exit 1)\n"
	    "  --retry-auth                 keep retrying when the broker refuses the login\n"
	    "  --stats                      print {\"stats\":...} on exit\n"
	    "  --keepalive-min S, --keepalive-max S, --keepalive-step S, --keepalive-timeout S\n"
	    "  --connect-timeout MS, --reconnect-min MS, --reconnect-max MS,\n"
	    "  --request-timeout MS         the library's tuning (docs/client.md)\n"
	    "  --help                       this text\n"
	    "\n"
	    "With --count, --until-synced, --send, --drain or --stdin, the tool exits once all of\n"
	    "them are met (and --register/--unregister was answered); else it runs until\n"
	    "SIGINT or SIGTERM. Exit status: 0 done, 1 runtime failure, 2 usage error.\n");
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "pigeon-client: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nTry 'pigeon-client --help'.\n");
	va_end(ap);
	return 2;
}

/* A positive integer up to max into *out: 0, or -1. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || *s == '\0' || *s == '-' || *s == '+') {
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0 || v > max) {
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_u32(const char *s, uint32_t *out)
{
	uint64_t v;

	if (parse_u64(s, 86400u * 1000u, &v) != 0) {
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

/* ------------------------------------------------------------ output */

/* Prints one JSON line (takes ownership of j); caller holds r->mu. */
static void print_json(cJSON *j)
{
	char *s = j ? cJSON_PrintUnformatted(j) : NULL;

	if (s) {
		fputs(s, stdout);
		fputc('\n', stdout);
		fflush(stdout);
	}
	free(s);
	cJSON_Delete(j);
}

/* {"<key>": inner} */
static cJSON *wrap(const char *key, cJSON *inner)
{
	cJSON *j = cJSON_CreateObject();

	if (!j) {
		cJSON_Delete(inner);
		return NULL;
	}
	cJSON_AddItemToObject(j, key, inner);
	return j;
}

/* ------------------------------------------------------------ callbacks (client thread) */

static void on_message(void *ud, const struct pigeon_envelope *env)
{
	struct cli_run *r = ud;
	Pigeon__Envelope e = PIGEON__ENVELOPE__INIT;
	char *json;

	/* The library's view, rebuilt as the wire message so the JSON is pigeon-dump's. */
	e.seq = env->seq;
	e.from = (char *)(env->from ? env->from : "");
	e.to = (char *)(env->to ? env->to : "");
	e.kind = (Pigeon__Kind)env->kind;
	e.type = (char *)(env->type ? env->type : "");
	e.msg_id = (char *)(env->msg_id ? env->msg_id : "");
	e.sent_at_ms = env->sent_at_ms;
	e.expires_at_ms = env->expires_at_ms;
	e.content_type = (char *)(env->content_type ? env->content_type : "");
	e.body.data = (uint8_t *)env->body;
	e.body.len = env->body_len;
	e.merged = env->merged;
	json = pgcli_pb_to_json(&e.base);

	pthread_mutex_lock(&r->mu);
	if (json) {
		fputs(json, stdout);
		fputc('\n', stdout);
		fflush(stdout);
	} else {
		fprintf(stderr, "pigeon-client: cannot print message seq %" PRIu64 " as JSON\n",
		        env->seq);
	}
	r->printed++;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	free(json);
}

static void on_gap(void *ud, uint64_t first, uint64_t last, enum pigeon_gap_reason why)
{
	struct cli_run *r = ud;
	cJSON *g = cJSON_CreateObject();

	if (g) {
		cJSON_AddNumberToObject(g, "first", (double)first);
		cJSON_AddNumberToObject(g, "last", (double)last);
		cJSON_AddStringToObject(g, "reason",
		                        why == PIGEON_GAP_RETENTION ? "retention" : "gone");
	}
	pthread_mutex_lock(&r->mu);
	print_json(wrap("gap", g));
	pthread_mutex_unlock(&r->mu);
}

static void on_sent(void *ud, const char *msg_id, int code, uint64_t seq, bool duplicate,
                    const char *error)
{
	struct cli_run *r = ud;
	cJSON *s = cJSON_CreateObject();
	size_t i;

	pthread_mutex_lock(&r->mu);
	if (s) {
		cJSON_AddStringToObject(s, "msg_id", msg_id ? msg_id : "");
	}
	/* Sends from an earlier run's outbox have no --send here: no "to". */
	for (i = 0; msg_id && i < r->o->n_sends + r->n_in; i++) {
		bool arg = i < r->o->n_sends;
		struct cli_send *cs = arg ? &r->o->sends[i] : &r->in[i - r->o->n_sends];

		if (strcmp(cs->msg_id, msg_id) == 0) {
			if (s) {
				cJSON_AddStringToObject(s, "to", cs->to);
			}
			if (!cs->answered) {
				cs->answered = true;
				if (arg) {
					r->sends_answered++;
				} else {
					r->in_answered++;
				}
			}
			break;
		}
	}
	if (s) {
		if (code == 0) {
			cJSON_AddNumberToObject(s, "seq", (double)seq);
			cJSON_AddBoolToObject(s, "duplicate", duplicate);
		} else {
			cJSON_AddNumberToObject(s, "code", code);
			cJSON_AddStringToObject(s, "error", error ? error : pigeon_strerror(code));
		}
	}
	if (code != 0) {
		r->send_refused = true;
		fprintf(stderr, "pigeon-client: send %s refused: %d %s\n", msg_id ? msg_id : "?",
		        code, error && *error ? error : pigeon_strerror(code));
	}
	print_json(wrap("sent", s));
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void on_device(void *ud, int code, const char *error)
{
	struct cli_run *r = ud;
	cJSON *d = cJSON_CreateObject();

	if (d) {
		cJSON_AddNumberToObject(d, "code", code);
		cJSON_AddStringToObject(d, "error", error ? error : "");
	}
	pthread_mutex_lock(&r->mu);
	print_json(wrap("device", d));
	r->device_answered = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void on_state(void *ud, enum pigeon_state state, int code, const char *text)
{
	struct cli_run *r = ud;
	struct pigeon_client_stats st;
	const char *why = text && *text ? text : (code ? pigeon_strerror(code) : "");

	memset(&st, 0, sizeof(st));
	if (r->client) {
		pigeon_client_stats(r->client, &st);
	}
	pthread_mutex_lock(&r->mu);
	if (r->ended) {
		/* The client thread runs on until destroy: its next state is not news. */
		pthread_mutex_unlock(&r->mu);
		return;
	}
	switch (state) {
	case PIGEON_CONNECTING:
		if (code) {
			fprintf(stderr, "pigeon-client: connecting (last attempt: %s)\n", why);
		} else {
			fprintf(stderr, "pigeon-client: connecting\n");
		}
		break;
	case PIGEON_ONLINE:
		fprintf(stderr, "pigeon-client: online %s\n", st.server);
		break;
	case PIGEON_SYNCED:
		fprintf(stderr, "pigeon-client: synced (cursor %" PRIu64 ")\n", st.cursor);
		r->synced = true;
		break;
	case PIGEON_OFFLINE:
		fprintf(stderr, "pigeon-client: offline%s%s\n", *why ? ": " : "", why);
		break;
	}
	if (code == PIGEON_EAUTH && !r->o->retry_auth && !r->fatal) {
		fprintf(
		    stderr,
		    "pigeon-client: the broker refused the login as %s:%s: %s (a bad or expired "
		    "token?)\n",
		    r->o->uid, r->o->device, why);
		r->fatal = 1;
		r->stop = true;
	}
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* ------------------------------------------------------------ main thread */

static volatile sig_atomic_t cli_signalled;

/* Takes SIGINT/SIGTERM (blocked everywhere else) and wakes main(). */
static void *signal_thread(void *arg)
{
	struct cli_run *r = arg;
	sigset_t set;
	int sig = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigwait(&set, &sig) == 0) {
		pthread_mutex_lock(&r->mu);
		cli_signalled = sig;
		r->stop = true;
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
	}
	return NULL;
}

/* A fresh msg_id: "cli-" and 32 hex digits from the kernel's random source. */
static int new_msg_id(char *buf, size_t len)
{
	unsigned char raw[16];
	size_t i;

	if (len < 4 + 2 * sizeof(raw) + 1 ||
	    getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		return -1;
	}
	memcpy(buf, "cli-", 4);
	for (i = 0; i < sizeof(raw); i++) {
		snprintf(buf + 4 + 2 * i, 3, "%02x", raw[i]);
	}
	return 0;
}

/*
 * --stdin: each line "UID TEXT" is queued as a chat under a msg_id made
 * here and recorded (under r->mu) before the library can answer it. A bad
 * line is reported and skipped. At EOF, stdin_eof is set.
 */
static void *stdin_thread(void *arg)
{
	struct cli_run *r = arg;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned long lineno = 0;

	while ((n = getline(&line, &cap, stdin)) >= 0) {
		struct pigeon_send s;
		struct cli_send *cs;
		char *sp, msg_id[PIGEON_MSG_ID_MAX + 1], to[72];
		int rc;

		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
			line[--n] = '\0';
		}
		if (n == 0) {
			continue;
		}
		sp = strchr(line, ' ');
		if (!sp || sp == line || (size_t)(sp - line) >= sizeof(to)) {
			fprintf(stderr, "pigeon-client: stdin line %lu: not 'UID TEXT', skipped\n",
			        lineno);
			continue;
		}
		memcpy(to, line, (size_t)(sp - line));
		to[sp - line] = '\0';
		if (new_msg_id(msg_id, sizeof(msg_id)) != 0) {
			fprintf(stderr, "pigeon-client: no random source for a msg_id\n");
			break;
		}
		/*
		 * r->mu is held across pigeon_client_send(): main() sets closing
		 * under it before destroying the client, so no send races the
		 * destroy. (The library never holds its own lock while calling back.)
		 */
		pthread_mutex_lock(&r->mu);
		if (r->closing) {
			pthread_mutex_unlock(&r->mu);
			break;
		}
		if (r->n_in == r->cap_in) {
			size_t ncap = r->cap_in ? 2 * r->cap_in : 16;
			struct cli_send *nin = realloc(r->in, ncap * sizeof(*nin));

			if (!nin) {
				pthread_mutex_unlock(&r->mu);
				fprintf(stderr, "pigeon-client: out of memory\n");
				break;
			}
			r->in = nin;
			r->cap_in = ncap;
			/* in_to moved with its entry: re-point every to. */
			for (size_t k = 0; k < r->n_in; k++) {
				r->in[k].to = r->in[k].in_to;
			}
		}
		cs = &r->in[r->n_in];
		memset(cs, 0, sizeof(*cs));
		memcpy(cs->in_to, to, sizeof(to));
		cs->to = cs->in_to;
		memcpy(cs->msg_id, msg_id, sizeof(msg_id));
		r->n_in++;

		memset(&s, 0, sizeof(s));
		s.to = to;
		s.kind = PIGEON_CHAT;
		s.msg_id = msg_id;
		s.body = sp + 1;
		s.body_len = strlen(sp + 1);
		rc = pigeon_client_send(r->client, &s, NULL, 0);
		if (rc != 0) {
			fprintf(stderr,
			        "pigeon-client: stdin line %lu: cannot queue the send: %s\n",
			        lineno, pigeon_strerror(rc));
			/* Counted as answered: it never will be. */
			for (size_t k = 0; k < r->n_in; k++) {
				if (strcmp(r->in[k].msg_id, msg_id) == 0 && !r->in[k].answered) {
					r->in[k].answered = true;
					r->in_answered++;
				}
			}
			r->send_refused = true;
		} else {
			fprintf(stderr, "pigeon-client: queued %s to %s\n", msg_id, to);
		}
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
	}
	free(line);
	pthread_mutex_lock(&r->mu);
	r->stdin_eof = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static bool has_stop_condition(const struct cli_opts *o)
{
	return o->count > 0 || o->until_synced || o->n_sends > 0 || o->drain || o->use_stdin;
}

/* Every stop condition asked for is met; caller holds r->mu. */
static bool done(struct cli_run *r, size_t outbox)
{
	const struct cli_opts *o = r->o;

	if (!has_stop_condition(o)) {
		return false;
	}
	if (o->count > 0 && r->printed < o->count) {
		return false;
	}
	if (o->until_synced && !r->synced) {
		return false;
	}
	if (o->n_sends > 0 && r->sends_answered < o->n_sends) {
		return false;
	}
	if (o->use_stdin && (!r->stdin_eof || r->in_answered < r->n_in)) {
		return false;
	}
	if ((o->drain || o->n_sends > 0 || o->use_stdin) && outbox > 0) {
		return false;
	}
	if ((o->register_arg || o->unregister) && !r->device_answered) {
		return false;
	}
	return true;
}

static void print_stats(struct cli_run *r)
{
	struct pigeon_client_stats st;
	cJSON *s = cJSON_CreateObject();

	pigeon_client_stats(r->client, &st);
	if (s) {
		cJSON_AddNumberToObject(s, "connects", (double)st.connects);
		cJSON_AddNumberToObject(s, "delivered", (double)st.delivered);
		cJSON_AddNumberToObject(s, "duplicates", (double)st.duplicates);
		cJSON_AddNumberToObject(s, "syncs", (double)st.syncs);
		cJSON_AddNumberToObject(s, "heartbeats", (double)st.heartbeats);
		cJSON_AddNumberToObject(s, "silent_deaths", (double)st.silent_deaths);
		cJSON_AddNumberToObject(s, "cursor", (double)st.cursor);
		cJSON_AddNumberToObject(s, "keepalive_s", st.keepalive_s);
		cJSON_AddBoolToObject(s, "keepalive_settled", st.keepalive_settled);
		cJSON_AddNumberToObject(s, "outbox", (double)st.outbox);
		cJSON_AddStringToObject(s, "server", st.server);
	}
	pthread_mutex_lock(&r->mu);
	print_json(wrap("stats", s));
	pthread_mutex_unlock(&r->mu);
}

/* mkdir -p for a relative or absolute directory path. */
static int make_dirs(const char *path)
{
	char buf[CLI_PATH_MAX];
	size_t n = strlen(path), i;

	if (n == 0 || n >= sizeof(buf)) {
		return -1;
	}
	memcpy(buf, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] == '/' || buf[i] == '\0') {
			char c = buf[i];

			buf[i] = '\0';
			if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
				return -1;
			}
			buf[i] = c;
		}
	}
	return 0;
}

enum {
	OPT_SERVER = 256,
	OPT_CA_FILE,
	OPT_INSECURE,
	OPT_TOKEN,
	OPT_TOKEN_FILE,
	OPT_UID,
	OPT_DEVICE,
	OPT_STATE_DIR,
	OPT_REGISTER,
	OPT_UNREGISTER,
	OPT_SEND,
	OPT_COUNT,
	OPT_UNTIL_SYNCED,
	OPT_DRAIN,
	OPT_STDIN,
	OPT_TIMEOUT,
	OPT_RETRY_AUTH,
	OPT_STATS,
	OPT_KA_MIN,
	OPT_KA_MAX,
	OPT_KA_STEP,
	OPT_KA_TIMEOUT,
	OPT_CONNECT_TIMEOUT,
	OPT_RECONNECT_MIN,
	OPT_RECONNECT_MAX,
	OPT_REQUEST_TIMEOUT,
	OPT_HELP,
};

static const struct option cli_longopts[] = {
    {"host", required_argument, NULL, 'h'},
    {"port", required_argument, NULL, 'p'},
    {"server", required_argument, NULL, OPT_SERVER},
    {"ca-file", required_argument, NULL, OPT_CA_FILE},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"token", required_argument, NULL, OPT_TOKEN},
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"uid", required_argument, NULL, OPT_UID},
    {"device", required_argument, NULL, OPT_DEVICE},
    {"state-dir", required_argument, NULL, OPT_STATE_DIR},
    {"register", required_argument, NULL, OPT_REGISTER},
    {"unregister", no_argument, NULL, OPT_UNREGISTER},
    {"send", required_argument, NULL, OPT_SEND},
    {"count", required_argument, NULL, OPT_COUNT},
    {"until-synced", no_argument, NULL, OPT_UNTIL_SYNCED},
    {"drain", no_argument, NULL, OPT_DRAIN},
    {"stdin", no_argument, NULL, OPT_STDIN},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"retry-auth", no_argument, NULL, OPT_RETRY_AUTH},
    {"stats", no_argument, NULL, OPT_STATS},
    {"keepalive-min", required_argument, NULL, OPT_KA_MIN},
    {"keepalive-max", required_argument, NULL, OPT_KA_MAX},
    {"keepalive-step", required_argument, NULL, OPT_KA_STEP},
    {"keepalive-timeout", required_argument, NULL, OPT_KA_TIMEOUT},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"reconnect-min", required_argument, NULL, OPT_RECONNECT_MIN},
    {"reconnect-max", required_argument, NULL, OPT_RECONNECT_MAX},
    {"request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* Fills o from argv: 0, 1 for --help (printed), or 2 (a usage error, printed). */
static int parse_args(int argc, char **argv, struct cli_opts *o)
{
	char err[256];
	uint32_t *u32 = NULL;
	const char *name = NULL;
	int c;

	pgcli_broker_defaults(&o->broker);
	opterr = 0;
	/* '+': no permutation, so --send can take its second argument from argv[optind]. */
	while ((c = getopt_long(argc, argv, "+:h:p:", cli_longopts, NULL)) != -1) {
		u32 = NULL;
		switch (c) {
		case 'h':
			if (*optarg == '\0') {
				return usage_error("empty --host");
			}
			o->broker.host = optarg;
			break;
		case 'p':
			if (pgcli_parse_port(optarg, &o->broker.port, err, sizeof(err)) != 0) {
				return usage_error("%s", err);
			}
			break;
		case OPT_SERVER:
			if (strncmp(optarg, "tcp://", 6) != 0 &&
			    strncmp(optarg, "ssl://", 6) != 0) {
				return usage_error(
				    "bad --server '%s' (tcp://host:port or ssl://host:port)",
				    optarg);
			}
			if (o->n_servers == CLI_MAX_SERVERS) {
				return usage_error("more than 16 --server");
			}
			o->servers[o->n_servers++] = optarg;
			break;
		case OPT_CA_FILE:
			o->ca_file = optarg;
			break;
		case OPT_INSECURE:
			o->insecure = true;
			break;
		case OPT_TOKEN:
			o->token = optarg;
			break;
		case OPT_TOKEN_FILE:
			o->token_file = optarg;
			break;
		case OPT_UID:
			o->uid = optarg;
			break;
		case OPT_DEVICE:
			o->device = optarg;
			break;
		case OPT_STATE_DIR:
			o->state_dir = optarg;
			break;
		case OPT_REGISTER: {
			const char *colon = strchr(optarg, ':');

			if (!colon || colon == optarg || colon[1] == '\0') {
				return usage_error("bad --register '%s' (PLATFORM:TOKEN)", optarg);
			}
			o->register_arg = optarg;
			break;
		}
		case OPT_UNREGISTER:
			o->unregister = true;
			break;
		case OPT_SEND:
			if (optind >= argc) {
				return usage_error("--send needs UID and TEXT");
			}
			if (*optarg == '\0') {
				return usage_error("--send: empty UID");
			}
			if (o->n_sends == CLI_MAX_SENDS) {
				return usage_error("more than 64 --send");
			}
			o->sends[o->n_sends].to = optarg;
			o->sends[o->n_sends].text = argv[optind++];
			o->n_sends++;
			break;
		case OPT_COUNT:
			if (parse_u64(optarg, UINT64_MAX, &o->count) != 0) {
				return usage_error("bad --count '%s' (a positive integer)", optarg);
			}
			break;
		case OPT_UNTIL_SYNCED:
			o->until_synced = true;
			break;
		case OPT_DRAIN:
			o->drain = true;
			break;
		case OPT_STDIN:
			o->use_stdin = true;
			break;
		case OPT_TIMEOUT: {
			char *end;

			errno = 0;
			o->timeout_s = strtod(optarg, &end);
			if (errno != 0 || end == optarg || *end != '\0' || !(o->timeout_s > 0) ||
			    o->timeout_s > 1e7) {
				return usage_error("bad --timeout '%s' (seconds, > 0)", optarg);
			}
			break;
		}
		case OPT_RETRY_AUTH:
			o->retry_auth = true;
			break;
		case OPT_STATS:
			o->stats = true;
			break;
		case OPT_KA_MIN:
			u32 = &o->keepalive_min, name = "--keepalive-min";
			break;
		case OPT_KA_MAX:
			u32 = &o->keepalive_max, name = "--keepalive-max";
			break;
		case OPT_KA_STEP:
			u32 = &o->keepalive_step, name = "--keepalive-step";
			break;
		case OPT_KA_TIMEOUT:
			u32 = &o->keepalive_timeout, name = "--keepalive-timeout";
			break;
		case OPT_CONNECT_TIMEOUT:
			u32 = &o->connect_timeout_ms, name = "--connect-timeout";
			break;
		case OPT_RECONNECT_MIN:
			u32 = &o->reconnect_min_ms, name = "--reconnect-min";
			break;
		case OPT_RECONNECT_MAX:
			u32 = &o->reconnect_max_ms, name = "--reconnect-max";
			break;
		case OPT_REQUEST_TIMEOUT:
			u32 = &o->request_timeout_ms, name = "--request-timeout";
			break;
		case OPT_HELP:
			usage(stdout);
			return 1;
		case ':':
			return usage_error("option %s needs an argument", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
		if (u32) {
			if (parse_u32(optarg, u32) != 0) {
				snprintf(err, sizeof(err), "bad %s '%s' (a positive integer)", name,
				         optarg);
				return usage_error("%s", err);
			}
		}
	}
	if (optind < argc) {
		return usage_error("unexpected argument '%s'", argv[optind]);
	}
	if (o->register_arg && o->unregister) {
		return usage_error("--register and --unregister together");
	}
	if (o->keepalive_min && o->keepalive_max && o->keepalive_min > o->keepalive_max) {
		return usage_error("--keepalive-min is above --keepalive-max");
	}
	return 0;
}

/* Waits (bounded by the deadline, if any) until done or stopped; the exit status. */
static int wait_for_end(struct cli_run *r, const struct timespec *deadline)
{
	int status = -1;

	pthread_mutex_lock(&r->mu);
	while (status < 0) {
		struct pigeon_client_stats st;
		struct timespec now, wake;

		if (r->stop) {
			status = r->fatal;
			break;
		}
		/* Stats take the library's lock: not under ours, which callbacks take. */
		pthread_mutex_unlock(&r->mu);
		pigeon_client_stats(r->client, &st);
		pthread_mutex_lock(&r->mu);
		if (st.keepalive_s != r->keepalive_s) {
			fprintf(stderr, "pigeon-client: keepalive %" PRIu32 "s%s\n", st.keepalive_s,
			        st.keepalive_settled ? " (settled)" : "");
			r->keepalive_s = st.keepalive_s;
		}
		if (done(r, st.outbox)) {
			status = r->send_refused ? 1 : 0;
			break;
		}
		clock_gettime(CLOCK_REALTIME, &now);
		if (deadline &&
		    (now.tv_sec > deadline->tv_sec ||
		     (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec))) {
			fprintf(stderr,
			        "pigeon-client: timed out after %g s (%s; %" PRIu64
			        " messages, %zu of %zu sends answered, %zu in the outbox)\n",
			        r->o->timeout_s,
			        st.connects == 0 ? "never connected"
			        : r->synced      ? "synced"
			                         : "not synced",
			        r->printed, r->sends_answered + r->in_answered,
			        r->o->n_sends + r->n_in, st.outbox);
			status = 1;
			break;
		}
		/* Poll the stats (keepalive, outbox) every 100 ms; callbacks wake us sooner. */
		wake = now;
		wake.tv_nsec += 100 * 1000000L;
		if (wake.tv_nsec >= 1000000000L) {
			wake.tv_sec++;
			wake.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&r->cv, &r->mu, &wake);
	}
	r->ended = true;
	pthread_mutex_unlock(&r->mu);
	return status;
}

int main(int argc, char **argv)
{
	static struct cli_opts o;
	struct cli_run r;
	struct pigeon_client_options co;
	char err[512] = "", uri[300], state_dir[CLI_PATH_MAX];
	char *token = NULL, claim_sub[128] = "", claim_dev[128] = "";
	const char *default_server[1];
	struct timespec deadline;
	pthread_t sig_thread;
	sigset_t set;
	size_t i;
	int rc, status = 1;

	memset(&r, 0, sizeof(r));
	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.cv, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	rc = parse_args(argc, argv, &o);
	if (rc == 1) {
		return 0;
	}
	if (rc != 0) {
		return rc;
	}
	if (!o.token && !o.token_file && !getenv("PIGEON_TOKEN")) {
		return usage_error("no token: give --token, --token-file or set $PIGEON_TOKEN");
	}
	if (pgcli_token_load(o.token, o.token_file, &token, err, sizeof(err)) != 0) {
		fprintf(stderr, "pigeon-client: %s\n", err);
		return 1;
	}
	/* Claims are read, not verified: the broker verifies the token. */
	if (pgcli_token_claims(token, claim_sub, sizeof(claim_sub), claim_dev, sizeof(claim_dev),
	                       err, sizeof(err)) != 0) {
		claim_sub[0] = claim_dev[0] = '\0';
	}
	if (!o.uid) {
		o.uid = claim_sub;
	}
	if (!o.device) {
		o.device = claim_dev[0] ? claim_dev : "cli";
	}
	if (!o.uid || !*o.uid) {
		fprintf(stderr,
		        "pigeon-client: no uid: give --uid or a token with a sub claim (%s)\n"
		        "Try 'pigeon-client --help'.\n",
		        err[0] ? err : "empty sub");
		status = 2;
		goto out;
	}
	if (!o.state_dir) {
		rc =
		    snprintf(state_dir, sizeof(state_dir), ".pigeon-client/%s:%s", o.uid, o.device);
		if (rc < 0 || (size_t)rc >= sizeof(state_dir) || strchr(o.uid, '/') ||
		    strchr(o.device, '/')) {
			fprintf(stderr, "pigeon-client: bad uid or device for a state directory\n");
			status = 2;
			goto out;
		}
		o.state_dir = state_dir;
	}
	if (make_dirs(o.state_dir) != 0) {
		fprintf(stderr, "pigeon-client: cannot create state directory %s: %s\n",
		        o.state_dir, strerror(errno));
		goto out;
	}

	r.o = &o;

	memset(&co, 0, sizeof(co));
	co.uid = o.uid;
	co.device = o.device;
	co.token = token;
	if (o.n_servers > 0) {
		co.servers = o.servers;
		co.n_servers = o.n_servers;
	} else {
		pgcli_server_uri(&o.broker, uri, sizeof(uri));
		default_server[0] = uri;
		co.servers = default_server;
		co.n_servers = 1;
	}
	co.tls_ca_file = o.ca_file;
	co.tls_insecure = o.insecure;
	co.state_dir = o.state_dir;
	co.cb.message = on_message;
	co.cb.gap = on_gap;
	co.cb.sent = on_sent;
	co.cb.device = on_device;
	co.cb.state = on_state;
	co.ud = &r;
	co.connect_timeout_ms = o.connect_timeout_ms;
	co.reconnect_min_ms = o.reconnect_min_ms;
	co.reconnect_max_ms = o.reconnect_max_ms;
	co.request_timeout_ms = o.request_timeout_ms;
	co.keepalive_min_s = o.keepalive_min;
	co.keepalive_max_s = o.keepalive_max;
	co.keepalive_step_s = o.keepalive_step;
	co.keepalive_timeout_s = o.keepalive_timeout;

	/* Blocked before any thread exists, so every thread inherits the mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (pthread_create(&sig_thread, NULL, signal_thread, &r) != 0) {
		fprintf(stderr, "pigeon-client: cannot start the signal thread\n");
		goto out;
	}
	pthread_detach(sig_thread);

	rc = pigeon_client_new(&co, &r.client);
	if (rc != 0) {
		fprintf(stderr, "pigeon-client: %s\n", pigeon_strerror(rc));
		status = rc == PIGEON_EINVAL ? 2 : 1;
		goto out;
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	if (o.timeout_s > 0) {
		double whole = (double)(time_t)o.timeout_s;

		deadline.tv_sec += (time_t)o.timeout_s;
		deadline.tv_nsec += (long)((o.timeout_s - whole) * 1e9);
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	/* Queued before the thread starts, so every msg_id is known when its answer comes. */
	for (i = 0; i < o.n_sends; i++) {
		struct pigeon_send s;

		memset(&s, 0, sizeof(s));
		s.to = o.sends[i].to;
		s.kind = PIGEON_CHAT;
		s.body = o.sends[i].text;
		s.body_len = strlen(o.sends[i].text);
		rc = pigeon_client_send(r.client, &s, o.sends[i].msg_id, sizeof(o.sends[i].msg_id));
		if (rc != 0) {
			fprintf(stderr, "pigeon-client: cannot queue the send to %s: %s\n", s.to,
			        pigeon_strerror(rc));
			status = rc == PIGEON_EINVAL ? 2 : 1;
			goto out;
		}
		fprintf(stderr, "pigeon-client: queued %s to %s\n", o.sends[i].msg_id, s.to);
	}
	rc = pigeon_client_start(r.client);
	if (rc != 0) {
		fprintf(stderr, "pigeon-client: cannot start: %s\n", pigeon_strerror(rc));
		goto out;
	}
	if (o.use_stdin) {
		pthread_t in_thread;

		if (pthread_create(&in_thread, NULL, stdin_thread, &r) != 0) {
			fprintf(stderr, "pigeon-client: cannot start the stdin thread\n");
			goto out;
		}
		/* Never joined: it may sit in getline() when we exit. */
		pthread_detach(in_thread);
	}
	if (o.register_arg) {
		char platform[64];
		const char *colon = strchr(o.register_arg, ':');
		size_t n = (size_t)(colon - o.register_arg);

		if (n >= sizeof(platform)) {
			n = sizeof(platform) - 1;
		}
		memcpy(platform, o.register_arg, n);
		platform[n] = '\0';
		rc = pigeon_client_register_device(r.client, platform, colon + 1, NULL, false);
	} else if (o.unregister) {
		rc = pigeon_client_unregister_device(r.client);
	}
	if (rc != 0) {
		fprintf(stderr, "pigeon-client: cannot %s the device: %s\n",
		        o.unregister ? "unregister" : "register", pigeon_strerror(rc));
		status = rc == PIGEON_EINVAL ? 2 : 1;
		goto out;
	}

	status = wait_for_end(&r, o.timeout_s > 0 ? &deadline : NULL);
	if (cli_signalled) {
		fprintf(stderr, "pigeon-client: stopping (%s)\n",
		        cli_signalled == SIGINT ? "SIGINT" : "SIGTERM");
	}
out:
	pthread_mutex_lock(&r.mu);
	r.closing = true;
	pthread_mutex_unlock(&r.mu);
	if (r.client) {
		if (o.stats) {
			print_stats(&r);
		}
		/* Saves the cursor; unsent sends stay in the outbox for the next run. */
		pigeon_client_destroy(r.client);
		r.client = NULL;
	}
	pthread_mutex_lock(&r.mu);
	free(r.in);
	r.in = NULL;
	r.n_in = r.cap_in = 0;
	pthread_mutex_unlock(&r.mu);
	free(token);
	return status;
}
