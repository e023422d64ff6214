/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon-dump: pigeon's protobuf payloads as JSON lines, the operator's way
 * to read the wire (docs/debugging.md):
 *
 *   mosquitto_sub ... -t 'im/alice/#' -F '%t %x' | pigeon-dump
 *
 * Each input line is HEX (mosquitto_sub -F %x), TOPIC HEX (-F '%t %x') or
 * TOPIC PAYLOAD (-v, a printable payload); the topic picks the message
 * type (pg_dump_kind_of_topic), --type forces one, bare hex without it is an
 * Envelope. --raw reads each input (a file, or stdin) whole as one binary
 * message. One JSON object per line on stdout, flushed at once (it sits in
 * live pipes); a line that does not decode is reported on stderr with its
 * number, the next lines go on, and the exit status is 1 at the end.
 *
 * Single-threaded. Every buffer is owned by main's loop (the line buffer,
 * reused) or by the function that allocates it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "pb_json.h"
#include "pigeon.pb-c.h"

/* A 64 KiB body is 128 KiB of hex; a 256 KiB SyncReply 512 KiB. Room to spare. */
#define DUMP_LINE_MAX (8u << 20)
/* --raw: the largest message read whole. */
#define DUMP_RAW_MAX (64u << 20)

/* What a payload is: one of the four protobuf messages, or a raw body. */
enum dump_kind {
	DUMP_NONE = 0,
	DUMP_ENVELOPE,
	DUMP_REPLY,
	DUMP_PRESENCE,
	DUMP_REQUEST,
	DUMP_CHAT,    /* im/<to>/chat: the body as sent */
	DUMP_NOTIFY,  /* im/<to>/notify/<type> */
	DUMP_INSTANT, /* im/<to>/instant */
	DUMP_SYS,     /* $SYS/...: a text value */
	DUMP_OTHER,   /* any other topic: refused unless --type is given */
};

static const struct {
	const char *name; /* the "type" printed */
	const ProtobufCMessageDescriptor *desc;
} dump_kinds[] = {
    [DUMP_NONE] = {"", NULL},
    [DUMP_ENVELOPE] = {"Envelope", &pigeon__envelope__descriptor},
    [DUMP_REPLY] = {"Reply", &pigeon__reply__descriptor},
    [DUMP_PRESENCE] = {"Presence", &pigeon__presence__descriptor},
    [DUMP_REQUEST] = {"Request", &pigeon__request__descriptor},
    [DUMP_CHAT] = {"chat", NULL},
    [DUMP_NOTIFY] = {"notify", NULL},
    [DUMP_INSTANT] = {"instant", NULL},
    [DUMP_SYS] = {"sys", NULL},
    [DUMP_OTHER] = {"raw", NULL},
};

struct dump_opts {
	enum dump_kind forced; /* --type, DUMP_NONE if not given */
	int raw;
};

static void dump_usage(FILE *out)
{
	fprintf(out,
	        "usage: pigeon-dump [--type envelope|reply|presence|request] [--raw] [FILE...]\n"
	        "\n"
	        "Decodes pigeon's protobuf payloads to JSON lines. Each input line (FILEs,\n"
	        "or standard input; '-' is standard input) is one of:\n"
	        "  HEX             as printed by mosquitto_sub -F %%x\n"
	        "  TOPIC HEX       as printed by mosquitto_sub -F '%%t %%x'\n"
	        "  TOPIC PAYLOAD   as printed by mosquitto_sub -v (a printable payload)\n"
	        "The topic picks the type: im/<uid>/inbox Envelope, im/<uid>/reply Reply,\n"
	        "im/<uid>/presence Presence, $CONTROL/pigeon/v1 Request; the send topics\n"
	        "(chat, notify/<type>, instant) and $SYS/... print their payload as is.\n"
	        "Bare hex is an Envelope unless --type says otherwise. A stream is hex or\n"
	        "-v throughout: once a payload is not hex, later ones are read as printed.\n"
	        "\n"
	        "  --type T   decode every payload as T, whatever the topic\n"
	        "  --raw      each input is one binary message (a file, or standard input)\n"
	        "  --help     this text\n"
	        "\n"
	        "Output, one line each: {\"topic\":...,\"type\":\"Envelope\",\"message\":{...}}\n"
	        "(no \"topic\" for bare hex or --raw). A line that does not decode is\n"
	        "reported on standard error and skipped; the exit status is then 1.\n"
	        "Usage errors exit 2. docs/debugging.md has the details and jq recipes.\n");
}

/* --type's argument, DUMP_NONE if unknown. Case-insensitive. */
static enum dump_kind dump_parse_type(const char *s)
{
	for (int k = DUMP_ENVELOPE; k <= DUMP_REQUEST; k++)
		if (strcasecmp(s, dump_kinds[k].name) == 0)
			return (enum dump_kind)k;
	return DUMP_NONE;
}

/*
 * 1 if t is im/<x>/<kind> (with_type 0) or im/<x>/<kind>/<type>
 * (with_type 1), every segment non-empty.
 */
static int dump_topic_is(const char *t, const char *kind, int with_type)
{
	if (strncmp(t, "im/", 3) != 0)
		return 0;
	const char *uid = t + 3, *slash = strchr(uid, '/');
	if (slash == NULL || slash == uid)
		return 0;
	size_t klen = strlen(kind);
	if (strncmp(slash + 1, kind, klen) != 0)
		return 0;
	const char *rest = slash + 1 + klen;
	if (!with_type)
		return *rest == '\0';
	return rest[0] == '/' && rest[1] != '\0' && strchr(rest + 1, '/') == NULL;
}

/* The type a topic carries (docs/protocol.md, Topics). */
static enum dump_kind dump_kind_of_topic(const char *t)
{
	if (dump_topic_is(t, "inbox", 0))
		return DUMP_ENVELOPE;
	if (dump_topic_is(t, "reply", 0))
		return DUMP_REPLY;
	if (dump_topic_is(t, "presence", 0))
		return DUMP_PRESENCE;
	if (strcmp(t, "$CONTROL/pigeon/v1") == 0)
		return DUMP_REQUEST;
	if (dump_topic_is(t, "chat", 0))
		return DUMP_CHAT;
	if (dump_topic_is(t, "notify", 1))
		return DUMP_NOTIFY;
	if (dump_topic_is(t, "instant", 0))
		return DUMP_INSTANT;
	if (strncmp(t, "$SYS/", 5) == 0)
		return DUMP_SYS;
	return DUMP_OTHER;
}

static int dump_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* 1 if s[0..n) is a whole number of hex bytes (n even, not 0). */
static int dump_is_hex(const char *s, size_t n)
{
	if (n == 0 || n % 2 != 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (dump_hexval((unsigned char)s[i]) < 0)
			return 0;
	return 1;
}

/* Decodes hex s[0..n) (dump_is_hex) in place: the bytes are n / 2 long. */
static size_t dump_unhex(char *s, size_t n)
{
	unsigned char *out = (unsigned char *)s;
	for (size_t i = 0; i < n; i += 2)
		out[i / 2] = (unsigned char)(dump_hexval((unsigned char)s[i]) << 4 |
		                             dump_hexval((unsigned char)s[i + 1]));
	return n / 2;
}

/* Why hex s[0..n) is not hex, for the error line. */
static void dump_why_not_hex(const char *s, size_t n, char *why, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (dump_hexval((unsigned char)s[i]) < 0) {
			snprintf(why, len, "not hex (character %zu)", i + 1);
			return;
		}
	snprintf(why, len, "not hex (odd length %zu)", n);
}

/*
 * Prints {"topic":...,"type":...,"message":...} for payload p[0..n) of
 * kind k, topic NULL for none. 0, or -1 with the reason in why.
 */
static int dump_emit(const char *topic, enum dump_kind k, const uint8_t *p, size_t n, char *why,
                     size_t whylen)
{
	int rc = -1;
	ProtobufCMessage *m = NULL;
	cJSON *out = cJSON_CreateObject();
	cJSON *msg = NULL;
	char *line = NULL;

	if (out == NULL)
		goto oom;
	if (topic && !cJSON_AddStringToObject(out, "topic", topic))
		goto oom;
	if (!cJSON_AddStringToObject(out, "type", dump_kinds[k].name))
		goto oom;
	if (dump_kinds[k].desc != NULL) {
		m = protobuf_c_message_unpack(dump_kinds[k].desc, NULL, n, p);
		if (m == NULL) {
			snprintf(why, whylen, "not a valid %s (%zu bytes)", dump_kinds[k].name, n);
			goto out;
		}
		msg = pgcli_pb_to_cjson(m);
		if (msg == NULL)
			goto oom;
	} else {
		msg = cJSON_CreateObject();
		if (msg == NULL)
			goto oom;
		if (pgcli_json_add_bytes(msg, k == DUMP_SYS ? "value" : "body", p, n) != 0)
			goto oom;
	}
	cJSON_AddItemToObject(out, "message", msg);
	msg = NULL;
	line = cJSON_PrintUnformatted(out);
	if (line == NULL)
		goto oom;
	if (fputs(line, stdout) == EOF || fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
		snprintf(why, whylen, "writing the output: %s", strerror(errno));
		rc = -2;
		goto out;
	}
	rc = 0;
	goto out;
oom:
	snprintf(why, whylen, "out of memory");
out:
	free(line);
	cJSON_Delete(msg);
	cJSON_Delete(out);
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

/*
 * One input line s[0..n) (no newline, NUL-terminated at n; modified in
 * place); *text_mode is the stream's (see below). 0 when printed or skipped, -1 with why when it
 * does not decode, -2 when stdout failed.
 */
static int dump_line(const struct dump_opts *o, int *text_mode, char *s, size_t n, char *why,
                     size_t whylen)
{
	if (n > 0 && s[n - 1] == '\r')
		s[--n] = '\0';
	if (n == 0)
		return 0;
	char *sp = memchr(s, ' ', n);
	if (sp == NULL) {
		if (!dump_is_hex(s, n)) {
			if (memchr(s, '/', n) != NULL && pgcli_utf8_text((const uint8_t *)s, n))
				snprintf(why, whylen, "a topic without a payload");
			else
				dump_why_not_hex(s, n, why, whylen);
			return -1;
		}
		n = dump_unhex(s, n);
		return dump_emit(NULL, o->forced ? o->forced : DUMP_ENVELOPE, (uint8_t *)s, n, why,
		                 whylen);
	}
	*sp = '\0';
	const char *topic = s;
	char *payload = sp + 1;
	size_t plen = n - (size_t)(payload - s);
	if (sp == s || !pgcli_utf8_text((const uint8_t *)topic, (size_t)(sp - s))) {
		snprintf(why, whylen, "no topic before the payload, or a topic that is not UTF-8");
		return -1;
	}
	enum dump_kind k = o->forced ? o->forced : dump_kind_of_topic(topic);
	if (k == DUMP_OTHER) {
		/* No pigeon client may see another topic: this is not a capture. */
		snprintf(why, whylen, "not a pigeon topic (see --help)");
		return -1;
	}
	/*
	 * A payload after a topic is hex (-F '%t %x') or as printed (-v), and
	 * a stream is all one or the other: the first payload that is not hex
	 * shows it is -v, and from then on every payload is taken as printed
	 * (a text "42" is not the byte 0x42). Until then a payload made of hex
	 * digits is hex, as in the README's pipe.
	 */
	if (!*text_mode && dump_is_hex(payload, plen))
		plen = dump_unhex(payload, plen);
	else if (plen > 0)
		*text_mode = 1;
	return dump_emit(topic, k, (uint8_t *)payload, plen, why, whylen);
}

/*
 * Reads one line of f into *buf (grown, at most DUMP_LINE_MAX; the caller
 * frees it), without its newline and NUL-terminated. 1 with *len, 0 at end
 * of input, -1 when the line is too long (consumed to its end) or a read
 * failed (errno set).
 */
static int dump_read_line(FILE *f, char **buf, size_t *cap, size_t *len)
{
	size_t n = 0;
	int c, too_long = 0;
	while ((c = getc(f)) != EOF && c != '\n') {
		if (too_long)
			continue;
		if (n + 1 >= *cap) {
			if (*cap >= DUMP_LINE_MAX) {
				too_long = 1;
				continue;
			}
			size_t ncap = *cap ? *cap * 2 : 4096;
			char *nb = realloc(*buf, ncap);
			if (nb == NULL) {
				too_long = 1;
				continue;
			}
			*buf = nb;
			*cap = ncap;
		}
		(*buf)[n++] = (char)c;
	}
	if (c == EOF && ferror(f))
		return -1;
	if (too_long) {
		errno = EMSGSIZE;
		return -1;
	}
	if (c == EOF && n == 0)
		return 0;
	(*buf)[n] = '\0';
	*len = n;
	return 1;
}

/* Every line of f; name is NULL for standard input. 0, 1 if a line failed, 2 if stdout did. */
static int dump_lines(const struct dump_opts *o, FILE *f, const char *name)
{
	char *buf = NULL, why[256];
	size_t cap = 0, len = 0;
	unsigned long lineno = 0;
	int status = 0, r, text_mode = 0;

	while ((r = dump_read_line(f, &buf, &cap, &len)) != 0) {
		lineno++;
		if (r < 0) {
			if (errno != EMSGSIZE) {
				fprintf(stderr, "pigeon-dump: %s%sreading: %s\n", name ? name : "",
				        name ? ": " : "", strerror(errno));
				status = 1;
				break;
			}
			snprintf(why, sizeof(why), "longer than %u bytes, skipped",
			         (unsigned)DUMP_LINE_MAX);
		} else {
			r = dump_line(o, &text_mode, buf, len, why, sizeof(why));
			if (r == 0)
				continue;
			if (r == -2) {
				fprintf(stderr, "pigeon-dump: %s\n", why);
				status = 2;
				break;
			}
		}
		fprintf(stderr, "pigeon-dump: %s%sline %lu: %s\n", name ? name : "",
		        name ? ": " : "", lineno, why);
		status = 1;
	}
	free(buf);
	return status;
}

/* All of f as one message (--raw). 0, 1 if it did not decode, 2 if stdout failed. */
static int dump_raw(const struct dump_opts *o, FILE *f, const char *name)
{
	char why[256];
	size_t cap = 65536, n = 0;
	uint8_t *buf = malloc(cap);
	int status = 1;

	if (buf == NULL) {
		snprintf(why, sizeof(why), "out of memory");
		goto fail;
	}
	for (;;) {
		if (n == cap) {
			uint8_t *nb = cap < DUMP_RAW_MAX ? realloc(buf, cap * 2) : NULL;
			if (nb == NULL) {
				snprintf(why, sizeof(why), "larger than %u bytes",
				         (unsigned)DUMP_RAW_MAX);
				goto fail;
			}
			buf = nb;
			cap *= 2;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		snprintf(why, sizeof(why), "reading: %s", strerror(errno));
		goto fail;
	}
	int r = dump_emit(NULL, o->forced ? o->forced : DUMP_ENVELOPE, buf, n, why, sizeof(why));
	if (r == -2) {
		fprintf(stderr, "pigeon-dump: %s\n", why);
		free(buf);
		return 2;
	}
	if (r == 0) {
		free(buf);
		return 0;
	}
fail:
	fprintf(stderr, "pigeon-dump: %s: %s\n", name ? name : "standard input", why);
	free(buf);
	return status;
}

int main(int argc, char **argv)
{
	static const struct option long_opts[] = {
	    {"type", required_argument, NULL, 't'},
	    {"raw", no_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'H'},
	    {NULL, 0, NULL, 0},
	};
	struct dump_opts o = {DUMP_NONE, 0};
	int c, status = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (c) {
		case 't':
			o.forced = dump_parse_type(optarg);
			if (o.forced == DUMP_NONE) {
				fprintf(stderr,
				        "pigeon-dump: unknown --type '%s' (envelope, reply, "
				        "presence or "
				        "request)\n",
				        optarg);
				return 2;
			}
			break;
		case 'r':
			o.raw = 1;
			break;
		case 'H':
			dump_usage(stdout);
			return 0;
		default:
			if (optopt == 't')
				fprintf(stderr, "pigeon-dump: --type needs an argument\n");
			else
				fprintf(stderr, "pigeon-dump: unknown option '%s' (see --help)\n",
				        argv[optind - 1]);
			return 2;
		}
	}

	if (optind == argc) {
		status = o.raw ? dump_raw(&o, stdin, NULL) : dump_lines(&o, stdin, NULL);
		return status ? (status == 2 ? 1 : status) : 0;
	}
	for (int i = optind; i < argc; i++) {
		int is_stdin = strcmp(argv[i], "-") == 0;
		FILE *f = is_stdin ? stdin : fopen(argv[i], "rb");
		if (f == NULL) {
			fprintf(stderr, "pigeon-dump: %s: %s\n", argv[i], strerror(errno));
			status = 1;
			continue;
		}
		int r = o.raw ? dump_raw(&o, f, argv[i]) : dump_lines(&o, f, argv[i]);
		if (!is_stdin)
			fclose(f);
		if (r == 2)
			return 1;
		if (r)
			status = 1;
	}
	return status;
}
