/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon-send: CHAT / NOTIFY / INSTANT from a backend to one user or many
 * (docs/backend.md), over Eclipse Paho's synchronous MQTTClient API, MQTT 5,
 * single-threaded.
 *
 * Every recipient gets one `Request{id, send{...}}` on $CONTROL/pigeon/v1;
 * its `Reply` (same id) comes back on im/<uid>/reply, subscribed before the
 * first request, and carries the seq: the Reply is the acknowledgement, so
 * requests go at QoS 0 (see ps_publish) and replies come at QoS 1.
 * Requests are pipelined: at most
 * --window of them are unanswered at a time (Mosquitto drops messages for a
 * client more than max_queued_messages behind, replies included, so the
 * window never exceeds its default of 1000).
 *
 * Recipients are streamed: a ring of `window` slots in input order holds
 * every recipient read and not yet printed, so memory is bounded by the
 * window whatever the length of the list, and results are printed in input
 * order (a slow head holds later results back, never more than a window).
 *
 * Safety of repeats: one msg_id per run (given, or random) is shared by all
 * recipients, and the broker deduplicates on (sender, recipient, msg_id);
 * so an unanswered request is simply sent again, after PS_RETRY_S and after
 * every reconnect. A duplicate reply to a request we sent more than once may
 * be our own earlier attempt, so it is printed as a plain store.
 *
 * Threads: one. No Paho callback is set, so MQTTClient runs in its
 * single-threaded mode: every Paho call (connect, subscribe, a QoS 0
 * publish, which is written at once, and MQTTClient_receive, which also
 * sends the PUBACKs of replies and the keepalive pings) does its work on
 * this thread, and nothing contends for Paho's mutex; Paho's TCP connect
 * goes through this file's connect() (see there). (MQTTAsync, used
 * before, handed every message between the caller, its send thread and its
 * receive thread: about 15 futex calls per message, and 16,000 messages/s
 * against the broker's 28,000.) Everything is owned by main() and freed on
 * the way out.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <MQTTClient.h>

#include "cli.h"
#include "pigeon.pb-c.h"

#define PS_CONTROL_TOPIC "$CONTROL/pigeon/v1"
#define PS_WINDOW_DEFAULT 500u
#define PS_WINDOW_MAX 1000u
#define PS_TIMEOUT_DEFAULT 30.0
#define PS_BODY_MAX (16u * 1024u * 1024u)
#define PS_UID_MAX 64u
/* A recipient line is read up to this many bytes; longer ones are bad uids. */
#define PS_LINE_MAX 256u
/* An unanswered request is repeated after this long. */
#define PS_RETRY_S 3.0
/* Reconnect backoff bounds. */
#define PS_BACKOFF_MIN_S 0.2
#define PS_BACKOFF_MAX_S 2.0
/*
 * The longest wait for a reply, in ms, when there is nothing to send. Under
 * 100: Paho's receive sleeps 100 ms after a poll that returned early with
 * nothing for waits of 100 ms or more.
 */
#define PS_WAIT_MS 50L

enum ps_slot_state {
	PS_SLOT_UNSENT, /* read, request not (or no longer) on the wire */
	PS_SLOT_SENT,   /* request published, no reply yet */
	PS_SLOT_DONE,   /* result known, waiting to be printed in order */
};

/* One recipient between being read and being printed. */
struct ps_slot {
	uint64_t id; /* the Request.id; (id - 1) % cap is this slot's index */
	enum ps_slot_state state;
	unsigned attempts;
	double sent_at;
	char uid[PS_LINE_MAX + 1]; /* as read (for a bad uid: shown sanitized) */
	uint64_t seq;
	bool duplicate;
	unsigned code;   /* 0 stored, else the error code */
	char error[128]; /* the error text, one line */
};

struct ps_state {
	MQTTClient client;
	int conn_reason; /* MQTT reason code of a refused CONNACK/SUBACK, else 0 */
	char conn_error[256];
	char reply_topic[PS_UID_MAX + 16];
	/* The ring: slots[(head + i) % cap] for i < count, in input order. */
	struct ps_slot *slots;
	size_t cap, head, count;
};

struct ps_opts {
	struct pgcli_broker broker;
	const char *token, *token_file, *uid, *device;
	const char *to_file, *body, *body_file;
	const char *type, *push_title, *push_body, *msg_id, *content_type;
	Pigeon__Kind kind;
	bool kind_given;
	uint32_t ttl;
	unsigned window;
	double timeout;
	char **uids;
	int nuids;
};

static double ps_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void ps_usage(FILE *f)
{
	fputs("usage: pigeon-send [options] [UID...]\n"
	      "Sends one message to each recipient through the broker's Send request and\n"
	      "prints '<uid> <seq>' per recipient in input order ('<uid> <seq> duplicate'\n"
	      "when the broker already had it, '<uid> error <code> <text>' when refused).\n"
	      "\n"
	      "  -h, --host HOST         broker host ($PIGEON_HOST, else 127.0.0.1)\n"
	      "  -p, --port PORT         broker port ($PIGEON_PORT, else 1883)\n"
	      "      --token T           the JWT (else --token-file, else $PIGEON_TOKEN)\n"
	      "      --token-file F      the JWT from the first line of F\n"
	      "      --uid UID           login uid (default: the token's sub)\n"
	      "      --device DEV        login device (default: the token's dev, else 'send')\n"
	      "      --to-file F         recipients, one per line ('-' = stdin); blank lines\n"
	      "                          and '#' comments are skipped. With neither UIDs nor\n"
	      "                          --to-file, recipients are read from stdin.\n"
	      "  -m, --body TEXT         the body\n"
	      "      --body-file F       the body from a file ('-' = stdin)\n"
	      "      --kind K            chat (default), notify or instant\n"
	      "      --type T            notification type (implies --kind notify)\n"
	      "      --push-title S      push notification title\n"
	      "      --push-body S       push notification text\n"
	      "      --msg-id ID         the dedup key (default: random, one per run)\n"
	      "      --ttl SECONDS       retention, at most the broker's ttl_s\n"
	      "      --content-type S    copied into the envelope\n"
	      "      --window N          requests in flight (default 500, at most 1000)\n"
	      "      --timeout S         overall time limit in seconds (default 30)\n"
	      "      --help              this text\n"
	      "\n"
	      "Exit status: 0 all stored (or delivered, for instant), 1 any failure,\n"
	      "2 usage error.\n",
	      f);
}

__attribute__((format(printf, 1, 2))) static int ps_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("pigeon-send: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (try pigeon-send --help)\n", stderr);
	return 2;
}

/* The uid / device / type grammar: 1..64 of [A-Za-z0-9._-]. */
static bool ps_ident_valid(const char *s, size_t n)
{
	if (n == 0 || n > PS_UID_MAX) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-')) {
			return false;
		}
	}
	return true;
}

static int ps_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9') {
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max) {
		return -1;
	}
	*out = v;
	return 0;
}

enum {
	OPT_TOKEN = 256,
	OPT_TOKEN_FILE,
	OPT_UID,
	OPT_DEVICE,
	OPT_TO_FILE,
	OPT_BODY_FILE,
	OPT_KIND,
	OPT_TYPE,
	OPT_PUSH_TITLE,
	OPT_PUSH_BODY,
	OPT_MSG_ID,
	OPT_TTL,
	OPT_CONTENT_TYPE,
	OPT_WINDOW,
	OPT_TIMEOUT,
	OPT_HELP,
};

/* 0 parsed, 1 --help printed, 2 usage error (printed). */
static int ps_parse(int argc, char **argv, struct ps_opts *o)
{
	static const struct option opts[] = {
	    {"host", required_argument, NULL, 'h'},
	    {"port", required_argument, NULL, 'p'},
	    {"body", required_argument, NULL, 'm'},
	    {"token", required_argument, NULL, OPT_TOKEN},
	    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
	    {"uid", required_argument, NULL, OPT_UID},
	    {"device", required_argument, NULL, OPT_DEVICE},
	    {"to-file", required_argument, NULL, OPT_TO_FILE},
	    {"body-file", required_argument, NULL, OPT_BODY_FILE},
	    {"kind", required_argument, NULL, OPT_KIND},
	    {"type", required_argument, NULL, OPT_TYPE},
	    {"push-title", required_argument, NULL, OPT_PUSH_TITLE},
	    {"push-body", required_argument, NULL, OPT_PUSH_BODY},
	    {"msg-id", required_argument, NULL, OPT_MSG_ID},
	    {"ttl", required_argument, NULL, OPT_TTL},
	    {"content-type", required_argument, NULL, OPT_CONTENT_TYPE},
	    {"window", required_argument, NULL, OPT_WINDOW},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"help", no_argument, NULL, OPT_HELP},
	    {NULL, 0, NULL, 0},
	};
	char err[256];
	uint64_t v;
	int c;

	pgcli_broker_defaults(&o->broker);
	o->kind = PIGEON__KIND__CHAT;
	o->window = PS_WINDOW_DEFAULT;
	o->timeout = PS_TIMEOUT_DEFAULT;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h:p:m:", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			o->broker.host = optarg;
			break;
		case 'p':
			if (pgcli_parse_port(optarg, &o->broker.port, err, sizeof(err)) != 0) {
				return ps_usage_error("%s", err);
			}
			break;
		case 'm':
			o->body = optarg;
			break;
		case OPT_TOKEN:
			o->token = optarg;
			break;
		case OPT_TOKEN_FILE:
			o->token_file = optarg;
			break;
		case OPT_UID:
			if (!ps_ident_valid(optarg, strlen(optarg))) {
				return ps_usage_error("bad --uid '%s' (1 to 64 of A-Za-z0-9._-)",
				                      optarg);
			}
			o->uid = optarg;
			break;
		case OPT_DEVICE:
			if (!ps_ident_valid(optarg, strlen(optarg))) {
				return ps_usage_error("bad --device '%s' (1 to 64 of A-Za-z0-9._-)",
				                      optarg);
			}
			o->device = optarg;
			break;
		case OPT_TO_FILE:
			o->to_file = optarg;
			break;
		case OPT_BODY_FILE:
			o->body_file = optarg;
			break;
		case OPT_KIND:
			if (strcmp(optarg, "chat") == 0) {
				o->kind = PIGEON__KIND__CHAT;
			} else if (strcmp(optarg, "notify") == 0) {
				o->kind = PIGEON__KIND__NOTIFY;
			} else if (strcmp(optarg, "instant") == 0) {
				o->kind = PIGEON__KIND__INSTANT;
			} else {
				return ps_usage_error("bad --kind '%s' (chat, notify or instant)",
				                      optarg);
			}
			o->kind_given = true;
			break;
		case OPT_TYPE:
			if (!ps_ident_valid(optarg, strlen(optarg))) {
				return ps_usage_error("bad --type '%s' (1 to 64 of A-Za-z0-9._-)",
				                      optarg);
			}
			o->type = optarg;
			break;
		case OPT_PUSH_TITLE:
			o->push_title = optarg;
			break;
		case OPT_PUSH_BODY:
			o->push_body = optarg;
			break;
		case OPT_MSG_ID:
			if (strlen(optarg) < 1 || strlen(optarg) > 128) {
				return ps_usage_error("bad --msg-id '%s' (1 to 128 bytes)", optarg);
			}
			o->msg_id = optarg;
			break;
		case OPT_TTL:
			if (ps_parse_uint(optarg, 1, UINT32_MAX, &v) != 0) {
				return ps_usage_error("bad --ttl '%s' (seconds, at least 1)",
				                      optarg);
			}
			o->ttl = (uint32_t)v;
			break;
		case OPT_CONTENT_TYPE:
			o->content_type = optarg;
			break;
		case OPT_WINDOW:
			if (ps_parse_uint(optarg, 1, PS_WINDOW_MAX, &v) != 0) {
				return ps_usage_error("bad --window '%s' (1 to 1000)", optarg);
			}
			o->window = (unsigned)v;
			break;
		case OPT_TIMEOUT:
			if (ps_parse_uint(optarg, 1, 86400, &v) != 0) {
				return ps_usage_error("bad --timeout '%s' (1 to 86400 seconds)",
				                      optarg);
			}
			o->timeout = (double)v;
			break;
		case OPT_HELP:
			ps_usage(stdout);
			return 1;
		case ':':
			return ps_usage_error("%s needs a value", argv[optind - 1]);
		default:
			return ps_usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	o->uids = argv + optind;
	o->nuids = argc - optind;
	if (o->type) {
		if (o->kind_given && o->kind != PIGEON__KIND__NOTIFY) {
			return ps_usage_error("%s", "--type is for --kind notify only");
		}
		o->kind = PIGEON__KIND__NOTIFY;
	} else if (o->kind == PIGEON__KIND__NOTIFY) {
		return ps_usage_error("%s", "--kind notify needs --type");
	}
	if (o->body && o->body_file) {
		return ps_usage_error("%s", "give one of --body and --body-file");
	}
	if (!o->body && !o->body_file) {
		return ps_usage_error("%s", "no body: give --body TEXT or --body-file F");
	}
	if (o->nuids > 0 && o->to_file) {
		return ps_usage_error("%s", "give recipients as arguments or --to-file, not both");
	}
	if (o->body_file && strcmp(o->body_file, "-") == 0 &&
	    (o->nuids == 0 && (!o->to_file || strcmp(o->to_file, "-") == 0))) {
		return ps_usage_error("%s", "stdin cannot be both the recipients and the body");
	}
	return 0;
}

/* Reads the whole body into *out (malloc'd, the caller frees); 0 or -1. */
static int ps_read_body(const struct ps_opts *o, uint8_t **out, size_t *len)
{
	FILE *f;
	uint8_t *buf;
	size_t n = 0, cap = 4096;
	bool is_stdin;

	if (o->body) {
		*len = strlen(o->body);
		*out = malloc(*len + 1);
		if (!*out) {
			fprintf(stderr, "pigeon-send: out of memory\n");
			return -1;
		}
		memcpy(*out, o->body, *len + 1);
		return 0;
	}
	is_stdin = strcmp(o->body_file, "-") == 0;
	f = is_stdin ? stdin : fopen(o->body_file, "rb");
	if (!f) {
		fprintf(stderr, "pigeon-send: cannot read %s: %s\n", o->body_file, strerror(errno));
		return -1;
	}
	buf = malloc(cap);
	while (buf) {
		size_t got;

		if (n == cap) {
			uint8_t *nb;

			if (cap > PS_BODY_MAX) {
				fprintf(stderr, "pigeon-send: the body is larger than %u bytes\n",
				        PS_BODY_MAX);
				goto fail;
			}
			nb = realloc(buf, cap * 2);
			if (!nb) {
				break;
			}
			buf = nb;
			cap *= 2;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0) {
			if (ferror(f)) {
				fprintf(stderr, "pigeon-send: reading %s failed\n", o->body_file);
				goto fail;
			}
			break;
		}
	}
	if (!buf) {
		fprintf(stderr, "pigeon-send: out of memory\n");
		goto fail;
	}
	if (n > PS_BODY_MAX) {
		fprintf(stderr, "pigeon-send: the body is larger than %u bytes\n", PS_BODY_MAX);
		goto fail;
	}
	if (!is_stdin) {
		fclose(f);
	}
	*out = buf;
	*len = n;
	return 0;
fail:
	free(buf);
	if (!is_stdin) {
		fclose(f);
	}
	return -1;
}

/* ---- recipients ------------------------------------------------------ */

struct ps_input {
	char **args; /* recipients from the command line, or NULL */
	int nargs, next;
	FILE *f; /* else one per line from this */
	bool own_f;
	uint64_t line;
};

/*
 * The next recipient into buf (at least PS_LINE_MAX + 1): 1, 0 at the end,
 * -1 on a read error. *too_long: the line was cut at PS_LINE_MAX bytes.
 * Blank lines and '#' comments are skipped; surrounding blanks and a CR
 * are trimmed. Bytes are kept as read (NULs included, as '\0' would cut
 * the uid short, they become '?').
 */
static int ps_input_next(struct ps_input *in, char *buf, bool *too_long)
{
	*too_long = false;
	if (in->args) {
		size_t n;

		if (in->next >= in->nargs) {
			return 0;
		}
		n = strlen(in->args[in->next]);
		*too_long = n > PS_LINE_MAX;
		n = n > PS_LINE_MAX ? PS_LINE_MAX : n;
		memcpy(buf, in->args[in->next++], n);
		buf[n] = '\0';
		return 1;
	}
	for (;;) {
		size_t n = 0, start = 0;
		int c;
		bool any = false;

		*too_long = false;
		while ((c = getc_unlocked(in->f)) != EOF) {
			any = true;
			if (c == '\n') {
				break;
			}
			if (n < PS_LINE_MAX) {
				buf[n++] = c == '\0' ? '?' : (char)c;
			} else {
				*too_long = true;
			}
		}
		if (!any) {
			return ferror(in->f) ? -1 : 0;
		}
		in->line++;
		while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t' || buf[n - 1] == '\r')) {
			n--;
		}
		while (start < n && (buf[start] == ' ' || buf[start] == '\t')) {
			start++;
		}
		if (start == n || buf[start] == '#') {
			if (c == EOF) {
				return ferror(in->f) ? -1 : 0;
			}
			continue;
		}
		memmove(buf, buf + start, n - start);
		buf[n - start] = '\0';
		return 1;
	}
}

/* ---- replies ------------------------------------------------------------ */

/* Copies text as one printable line: no control bytes, and only ASCII if ascii. */
static void ps_copy_line(char *dst, size_t cap, const char *src, size_t n, bool ascii)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 1 < cap; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[o++] = (c < 0x20 || c == 0x7f || (ascii && c > 0x7f)) ? '?' : (char)c;
	}
	dst[o] = '\0';
}

/* Records a Reply in its slot if that request is still waiting. */
static void ps_on_reply(struct ps_state *s, const Pigeon__Reply *r)
{
	struct ps_slot *slot;

	if (r->id == 0 || s->count == 0) {
		return;
	}
	slot = &s->slots[(r->id - 1) % s->cap];
	if (slot->id != r->id || slot->state == PS_SLOT_DONE) {
		return; /* an old attempt's second answer, or not ours */
	}
	slot->state = PS_SLOT_DONE;
	slot->code = r->code;
	if (r->code == 0) {
		slot->seq = r->body_case == PIGEON__REPLY__BODY_SEND ? r->send->seq : 0;
		slot->duplicate = r->body_case == PIGEON__REPLY__BODY_SEND && r->send->duplicate &&
		                  slot->attempts == 1;
	} else {
		const char *e = r->error && *r->error ? r->error : "refused";

		ps_copy_line(slot->error, sizeof(slot->error), e, strlen(e), false);
	}
}

/* One message from MQTTClient_receive: a Reply on our topic, else ignored. */
static void ps_on_message(struct ps_state *s, const char *topic, const MQTTClient_message *m)
{
	Pigeon__Reply *r;

	if (strcmp(topic, s->reply_topic) != 0 || m->payloadlen < 0) {
		return;
	}
	r = pigeon__reply__unpack(NULL, (size_t)m->payloadlen, m->payload);
	if (r) {
		ps_on_reply(s, r);
		pigeon__reply__free_unpacked(r, NULL);
	}
}

/* ---- the connection ------------------------------------------------------ */

/* How long the connect(2) below waits for the TCP handshake; set by ps_connect. */
static int ps_tcp_wait_ms = 10000;
/* Why the last TCP connect failed (an errno, ETIMEDOUT for no answer), else 0. */
static int ps_tcp_errno;

/*
 * connect(2) for Paho: this executable's definition takes the place of
 * libc's for libpaho-mqtt3c (the only caller in this program). Given
 * EINPROGRESS, Paho 1.3.11's single-threaded connect learns of the
 * completion only after a 100 ms read poll on a socket that has nothing to
 * read yet: 100 ms added to every connect, a quarter of a 10,000-recipient
 * run. So this waits here (poll, up to ps_tcp_wait_ms) for the handshake
 * and returns 0, and Paho sends its CONNECT at once.
 *
 * A failed handshake returns -1 with its errno (ECONNREFUSED, ...), as a
 * blocking connect would; on a timeout, EINPROGRESS is returned and Paho
 * goes on waiting by itself, within its connectTimeout.
 *
 * Nagle stays on (no TCP_NODELAY): requests written while earlier ones are
 * unacknowledged go out together, which measured 15% faster end to end
 * (0.25-0.32 s against 0.32-0.36 s for 10,000 recipients) as the broker
 * reads them in fewer calls; the broker's replies acknowledge promptly.
 */
int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	int rc = (int)syscall(SYS_connect, fd, addr, len);

	if (rc != 0 && errno == EINPROGRESS) {
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};
		int n, err = 0;
		socklen_t elen = sizeof(err);

		do {
			n = poll(&pfd, 1, ps_tcp_wait_ms);
		} while (n < 0 && errno == EINTR);
		if (n <= 0) {
			ps_tcp_errno = ETIMEDOUT;
			errno = EINPROGRESS;
			return -1;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0) {
			ps_tcp_errno = errno;
			return -1;
		}
		if (err != 0) {
			ps_tcp_errno = err;
			errno = err;
			return -1;
		}
		rc = 0;
	} else if (rc != 0) {
		ps_tcp_errno = errno;
	}
	return rc;
}

/* Records why the connection is not up; reason is an MQTT reason code or 0. */
static void ps_fail_conn(struct ps_state *s, int reason, const char *what, const char *msg)
{
	s->conn_reason = reason;
	snprintf(s->conn_error, sizeof(s->conn_error), "%s%s%s", what, msg ? ": " : "",
	         msg ? msg : "");
}

/*
 * Connects and subscribes, within deadline: 0 up, -1 failed (the reason in
 * s->conn_error, and s->conn_reason when the broker refused).
 */
static int ps_connect(struct ps_state *s, const char *uid, const char *token, double deadline)
{
	MQTTClient_connectOptions co = MQTTClient_connectOptions_initializer5;
	MQTTSubscribe_options so = MQTTSubscribe_options_initializer;
	MQTTResponse r;
	int rc, left = (int)(deadline - ps_now() + 0.999);

	s->conn_reason = 0;
	s->conn_error[0] = '\0';
	co.keepAliveInterval = 30;
	co.cleanstart = 1;
	co.username = uid;
	co.password = token;
	co.connectTimeout = left < 1 ? 1 : left > 10 ? 10 : left;
	ps_tcp_wait_ms = co.connectTimeout * 1000;
	ps_tcp_errno = 0;
	r = MQTTClient_connect5(s->client, &co, NULL, NULL);
	rc = r.reasonCode;
	MQTTResponse_free(r);
	if (rc != MQTTCLIENT_SUCCESS) {
		/* Positive: the CONNACK's reason code; negative: Paho's own error. */
		if (rc < 0) {
			/* Paho says only "Failure"; the TCP connect, if that failed, says why. */
			ps_fail_conn(s, 0, "cannot connect",
			             ps_tcp_errno ? strerror(ps_tcp_errno)
			                          : MQTTClient_strerror(rc));
		} else if (rc == MQTTREASONCODE_NOT_AUTHORIZED ||
		           rc == MQTTREASONCODE_BAD_USER_NAME_OR_PASSWORD) {
			ps_fail_conn(s, rc, "the broker refused the login",
			             "not authorized (a bad, expired or revoked token, or a uid or "
			             "device that does not match it)");
		} else {
			ps_fail_conn(s, rc, "the broker refused the login",
			             MQTTReasonCode_toString((enum MQTTReasonCodes)rc));
		}
		return -1;
	}
	r = MQTTClient_subscribe5(s->client, s->reply_topic, 1, &so, NULL);
	rc = r.reasonCode;
	MQTTResponse_free(r);
	if (rc < 0) {
		ps_fail_conn(s, 0, "subscribing to the reply topic failed",
		             MQTTClient_strerror(rc));
	} else if (rc != MQTTREASONCODE_GRANTED_QOS_1 && rc != MQTTREASONCODE_GRANTED_QOS_0) {
		ps_fail_conn(s, rc, "the broker refused the reply subscription",
		             MQTTReasonCode_toString((enum MQTTReasonCodes)rc));
	} else {
		return 0;
	}
	if (MQTTClient_isConnected(s->client)) {
		MQTTClient_disconnect5(s->client, 0, MQTTREASONCODE_SUCCESS, NULL);
	}
	return -1;
}

struct ps_send_ctx {
	Pigeon__Send send;
	uint8_t *buf;
	size_t cap;
};

/*
 * Publishes the Send request for uid with this id: 0 sent, -1 not (not
 * connected, or Paho refused it: the caller retries later).
 */
static int ps_publish(struct ps_state *s, struct ps_send_ctx *sc, uint64_t id, char *uid)
{
	Pigeon__Request req = PIGEON__REQUEST__INIT;
	MQTTResponse r;
	size_t len;

	sc->send.to = uid;
	req.id = id;
	req.body_case = PIGEON__REQUEST__BODY_SEND;
	req.send = &sc->send;
	len = pigeon__request__get_packed_size(&req);
	if (len > sc->cap) {
		return -1; /* cap was sized for the longest uid at start */
	}
	pigeon__request__pack(&req, sc->buf);
	/*
	 * QoS 0: the Reply is the acknowledgement (end to end, with the seq),
	 * and an unanswered request is repeated anyway. A QoS 1 PUBACK would
	 * add nothing but a round trip, and cannot be pipelined past the
	 * broker's Receive Maximum (Mosquitto's max_inflight_messages, 20):
	 * Paho's MQTTClient_publish5 blocks once that many QoS 1 publishes are
	 * unacknowledged (docs/backend.md, "Why requests go at QoS 0").
	 * A QoS 0 publish is written to the socket before this returns (Paho
	 * finishes a partial write before returning, reading meanwhile).
	 */
	r = MQTTClient_publish5(s->client, PS_CONTROL_TOPIC, (int)len, sc->buf, 0, 0, NULL, NULL);
	MQTTResponse_free(r);
	return r.reasonCode == MQTTCLIENT_SUCCESS ? 0 : -1;
}

/*
 * (Re)sends every slot that is unsent, or sent more than PS_RETRY_S ago
 * (all = every unanswered one, after a reconnect). Returns how many went.
 */
static unsigned ps_resend(struct ps_state *s, struct ps_send_ctx *sc, bool all)
{
	unsigned sent = 0;
	double now = ps_now();

	for (size_t i = 0; i < s->count; i++) {
		struct ps_slot *slot = &s->slots[(s->head + i) % s->cap];

		if (slot->state == PS_SLOT_DONE ||
		    (slot->state == PS_SLOT_SENT && !all && now - slot->sent_at < PS_RETRY_S)) {
			continue;
		}
		slot->state = PS_SLOT_SENT;
		slot->sent_at = now;
		slot->attempts++;
		if (ps_publish(s, sc, slot->id, slot->uid) != 0) {
			if (slot->state == PS_SLOT_SENT) {
				slot->state = PS_SLOT_UNSENT;
			}
			break;
		}
		sent++;
	}
	return sent;
}

/* Prints one result line; true if it is a failure. */
static bool ps_print(const struct ps_slot *slot)
{
	if (slot->code == 0) {
		printf("%s %llu%s\n", slot->uid, (unsigned long long)slot->seq,
		       slot->duplicate ? " duplicate" : "");
		return false;
	}
	if (slot->code == 400 && strcmp(slot->error, "bad uid") == 0) {
		char shown[80];
		size_t n = strlen(slot->uid);

		ps_copy_line(shown, 65, slot->uid, n, true);
		printf("%s%s error 400 bad uid\n", shown, n > 64 ? "..." : "");
		return true;
	}
	printf("%s error %u %s\n", slot->uid, slot->code, slot->error);
	return true;
}

/* Prints the done slots at the head of the ring; counts the failures. */
static void ps_drain(struct ps_state *s, uint64_t *failed)
{
	while (s->count > 0 && s->slots[s->head].state == PS_SLOT_DONE) {
		*failed += ps_print(&s->slots[s->head]);
		s->slots[s->head].id = 0;
		s->head = (s->head + 1) % s->cap;
		s->count--;
	}
}

/*
 * Takes in replies: waits up to ms for the first (0: only what has already
 * arrived), then everything else already there, at most a window's worth.
 * Returns with the connection down if it dropped.
 */
static void ps_receive(struct ps_state *s, long ms)
{
	static double flushed;
	double now = ps_now();

	/* Results reach a pipe within 0.2 s, without a write per line. */
	if (now - flushed >= 0.2) {
		fflush(stdout);
		flushed = now;
	}
	for (size_t n = 0; n <= s->cap; n++) {
		char *topic = NULL;
		int topic_len = 0, rc;
		MQTTClient_message *m = NULL;

		rc = MQTTClient_receive(s->client, &topic, &topic_len, &m,
		                        n == 0 && ms > 0 ? (unsigned long)ms : 0ul);
		if (m) {
			ps_on_message(s, topic, m);
			MQTTClient_freeMessage(&m);
		}
		if (topic) {
			MQTTClient_free(topic);
		}
		if (rc != MQTTCLIENT_SUCCESS || !m) {
			return; /* nothing more now, or the connection is down */
		}
	}
}

static char *ps_random_msg_id(char *buf, size_t cap)
{
	uint8_t r[12];
	size_t got = 0;

	while (got < sizeof(r)) {
		ssize_t n = getrandom(r + got, sizeof(r) - got, 0);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			/* No entropy source: time and pid still make a run unique. */
			snprintf(buf, cap, "ps-%llx-%x", (unsigned long long)time(NULL),
			         (unsigned)getpid());
			return buf;
		}
		got += (size_t)n;
	}
	snprintf(buf, cap, "ps-");
	for (size_t i = 0; i < sizeof(r); i++) {
		snprintf(buf + 3 + 2 * i, cap - 3 - 2 * i, "%02x", r[i]);
	}
	return buf;
}

/*
 * Reads the next recipient into the next slot and sends it: 1 read, 0 at
 * the end of the input (or a read error, counted in *failed).
 */
static int ps_fill_one(struct ps_state *s, struct ps_input *in, struct ps_send_ctx *sc, uint64_t id,
                       uint64_t *failed)
{
	char line[PS_LINE_MAX + 1];
	struct ps_slot *slot;
	bool too_long;
	int rc = ps_input_next(in, line, &too_long);

	if (rc <= 0) {
		if (rc < 0) {
			fprintf(stderr, "pigeon-send: reading the recipients failed\n");
			(*failed)++;
		}
		return 0;
	}
	slot = &s->slots[(id - 1) % s->cap];
	memset(slot, 0, sizeof(*slot));
	slot->id = id;
	memcpy(slot->uid, line, strlen(line) + 1);
	s->count++;
	if (too_long || !ps_ident_valid(line, strlen(line))) {
		slot->state = PS_SLOT_DONE;
		slot->code = 400;
		snprintf(slot->error, sizeof(slot->error), "bad uid");
		if (too_long) {
			slot->uid[PS_LINE_MAX] = '\0';
		}
		return 1;
	}
	slot->state = PS_SLOT_SENT;
	slot->attempts = 1;
	slot->sent_at = ps_now();
	/* Sent at once; if not (the connection is down), at the reconnect. */
	if (ps_publish(s, sc, id, slot->uid) != 0 && slot->state == PS_SLOT_SENT) {
		slot->state = PS_SLOT_UNSENT;
	}
	return 1;
}

/*
 * The send loop: reads recipients into the ring while it has room, sends
 * each at once, prints results in order, repeats the unanswered, reconnects.
 * Returns the exit status.
 */
static int ps_run(struct ps_state *s, struct ps_input *in, struct ps_send_ctx *sc, const char *uid,
                  const char *token, double deadline)
{
	uint64_t failed = 0, next_id = 1, total = 0;
	double backoff = PS_BACKOFF_MIN_S, last_scan = ps_now();
	bool eof = false;

	for (;;) {
		double now = ps_now();
		long ms;

		if (now >= deadline) {
			break;
		}
		if (!MQTTClient_isConnected(s->client)) {
			/* Lost: reconnect with backoff, then repeat every unanswered request. */
			struct timespec d;

			fflush(stdout);
			if (ps_connect(s, uid, token, deadline) != 0) {
				if (s->conn_reason != 0) {
					fprintf(stderr, "pigeon-send: reconnecting: %s\n",
					        s->conn_error);
					break;
				}
				d.tv_sec = (time_t)backoff;
				d.tv_nsec = (long)((backoff - (double)d.tv_sec) * 1e9);
				nanosleep(&d, NULL);
				backoff =
				    backoff * 2 > PS_BACKOFF_MAX_S ? PS_BACKOFF_MAX_S : backoff * 2;
				continue;
			}
			backoff = PS_BACKOFF_MIN_S;
			ps_resend(s, sc, true);
			last_scan = ps_now();
			continue;
		}
		/* Fill the ring: a new recipient is sent as soon as it is read. */
		while (!eof && s->count < s->cap) {
			if (ps_fill_one(s, in, sc, next_id, &failed) == 0) {
				eof = true;
				break;
			}
			next_id++;
			total++;
		}
		ps_drain(s, &failed);
		if (eof && s->count == 0) {
			break;
		}
		if (ps_now() - last_scan >= 0.5) {
			ps_resend(s, sc, false);
			last_scan = ps_now();
		}
		/*
		 * Room in the ring and more to read: take only what has arrived,
		 * and go on sending. Otherwise wait for a reply (bounded, so the
		 * retry scan and the deadline still run).
		 */
		ms = (long)((deadline - ps_now()) * 1000.0);
		ms = ms < 0 ? 0 : ms > PS_WAIT_MS ? PS_WAIT_MS : ms;
		ps_receive(s, (!eof && s->count < s->cap) ? 0 : ms);
		ps_drain(s, &failed);
	}
	/* Out of time (or the login was refused on a reconnect): report what is left. */
	ps_drain(s, &failed);
	while (s->count > 0) {
		struct ps_slot *slot = &s->slots[s->head];

		if (slot->state != PS_SLOT_DONE) {
			slot->state = PS_SLOT_DONE;
			slot->code = 504;
			snprintf(slot->error, sizeof(slot->error), "no reply in time");
		}
		failed += ps_print(slot);
		slot->id = 0;
		s->head = (s->head + 1) % s->cap;
		s->count--;
	}
	if (!eof) {
		fprintf(stderr,
		        "pigeon-send: stopped after %llu recipients (time limit or connection "
		        "refused); the rest of the list was not sent\n",
		        (unsigned long long)total);
		failed++;
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "pigeon-send: writing the results failed\n");
		return 1;
	}
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct ps_opts o = {0};
	struct ps_state s = {0};
	struct ps_input in = {0};
	struct ps_send_ctx sc = {.send = PIGEON__SEND__INIT};
	MQTTClient_createOptions cr = MQTTClient_createOptions_initializer;
	char err[256], tok_uid[PS_UID_MAX + 1], tok_dev[PS_UID_MAX + 1], uri[320];
	char client_id[2 * PS_UID_MAX + 2], msg_id[64];
	char *token = NULL;
	uint8_t *body = NULL;
	size_t body_len = 0;
	const char *uid, *device;
	bool created = false;
	double deadline;
	int rc;

	signal(SIGPIPE, SIG_IGN);
	rc = ps_parse(argc, argv, &o);
	if (rc != 0) {
		return rc == 1 ? 0 : 2;
	}
	deadline = ps_now() + o.timeout;
	if (pgcli_token_load(o.token, o.token_file, &token, err, sizeof(err)) != 0) {
		fprintf(stderr, "pigeon-send: %s\n", err);
		return 2;
	}
	uid = o.uid;
	device = o.device;
	if (!uid || !device) {
		if (pgcli_token_claims(token, tok_uid, sizeof(tok_uid), tok_dev, sizeof(tok_dev),
		                       err, sizeof(err)) != 0) {
			fprintf(stderr, "pigeon-send: bad token: %s\n", err);
			rc = 1;
			goto out;
		}
		if (!uid) {
			if (!ps_ident_valid(tok_uid, strlen(tok_uid))) {
				fprintf(stderr, "pigeon-send: bad token: its sub is not a uid\n");
				rc = 1;
				goto out;
			}
			uid = tok_uid;
		}
		if (!device) {
			device = tok_dev[0] && ps_ident_valid(tok_dev, strlen(tok_dev)) ? tok_dev
			                                                                : "send";
		}
	}
	if (ps_read_body(&o, &body, &body_len) != 0) {
		rc = 1;
		goto out;
	}
	if (o.nuids > 0) {
		in.args = o.uids;
		in.nargs = o.nuids;
	} else if (o.to_file && strcmp(o.to_file, "-") != 0) {
		in.f = fopen(o.to_file, "r");
		if (!in.f) {
			fprintf(stderr, "pigeon-send: cannot read %s: %s\n", o.to_file,
			        strerror(errno));
			rc = 1;
			goto out;
		}
		in.own_f = true;
	} else {
		in.f = stdin;
	}

	/* The Send fields shared by every request; `to` is set per recipient. */
	sc.send.kind = o.kind;
	sc.send.type = (char *)(o.type ? o.type : "");
	sc.send.msg_id = o.msg_id ? (char *)o.msg_id : ps_random_msg_id(msg_id, sizeof(msg_id));
	sc.send.body.data = body;
	sc.send.body.len = body_len;
	sc.send.content_type = (char *)(o.content_type ? o.content_type : "");
	sc.send.ttl_s = o.ttl;
	sc.send.push_title = (char *)(o.push_title ? o.push_title : "");
	sc.send.push_body = (char *)(o.push_body ? o.push_body : "");
	{
		/* Room for the longest uid (only valid uids are sent) and a 10-byte id. */
		Pigeon__Request req = PIGEON__REQUEST__INIT;
		char longest[PS_UID_MAX + 1];

		memset(longest, 'x', PS_UID_MAX);
		longest[PS_UID_MAX] = '\0';
		sc.send.to = longest;
		req.id = UINT64_MAX;
		req.body_case = PIGEON__REQUEST__BODY_SEND;
		req.send = &sc.send;
		sc.cap = pigeon__request__get_packed_size(&req);
		sc.send.to = (char *)"";
		sc.buf = malloc(sc.cap);
	}
	s.cap = o.window;
	cr.MQTTVersion = MQTTVERSION_5;
	s.slots = calloc(s.cap, sizeof(*s.slots));
	if (!sc.buf || !s.slots) {
		fprintf(stderr, "pigeon-send: out of memory\n");
		rc = 1;
		goto out;
	}
	snprintf(s.reply_topic, sizeof(s.reply_topic), "im/%s/reply", uid);
	snprintf(client_id, sizeof(client_id), "%s:%s", uid, device);
	pgcli_server_uri(&o.broker, uri, sizeof(uri));
	rc = MQTTClient_createWithOptions(&s.client, uri, client_id, MQTTCLIENT_PERSISTENCE_NONE,
	                                  NULL, &cr);
	if (rc != MQTTCLIENT_SUCCESS) {
		fprintf(stderr, "pigeon-send: cannot create the client for %s: %s\n", uri,
		        MQTTClient_strerror(rc));
		rc = 1;
		goto out_client;
	}
	created = true;
	/* No MQTTClient_setCallbacks: that is what keeps Paho on this thread. */
	if (ps_connect(&s, uid, token, deadline) != 0) {
		fprintf(stderr, "pigeon-send: %s:%d as %s: %s\n", o.broker.host, o.broker.port,
		        client_id, s.conn_error);
		rc = 1;
		goto out_client;
	}
	rc = ps_run(&s, &in, &sc, uid, token, deadline);
	if (MQTTClient_isConnected(s.client)) {
		MQTTClient_disconnect5(s.client, 1000, MQTTREASONCODE_SUCCESS, NULL);
	}
out_client:
	if (created) {
		MQTTClient_destroy(&s.client);
	}
out:
	if (in.own_f) {
		fclose(in.f);
	}
	free(s.slots);
	free(sc.buf);
	free(body);
	free(token);
	return rc;
}
