/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon-dump: pigeon's protobuf payloads as JSON lines, the operator's way
 * to read the wire (docs/debugging.md):
 *
 *   mosquitto_sub ... -t 'im/alice/#' -F '%t %x' | pigeon-dump
 *
 * Each input line is HEX (mosquitto_sub -F %x), TOPIC HEX (-F '%t %x') or
 * TOPIC PAYLOAD (-v, a printable payload); the topic picks the message
 * type (pgdump_kind_of_topic), --type forces one, bare hex without it is an
 * Envelope. --raw reads each input (a file, or stdin) whole as one binary
 * message. One JSON object per line on stdout, flushed at once (it sits in
 * live pipes); a line that does not decode is reported on stderr with its
 * number, the next lines go on, and the exit status is 1 at the end.
 *
 * The decoding is clients/common/dump_line.c (also fuzzed there,
 * tests/fuzz/fuzz_dump_line.c); this file has the arguments and the I/O.
 *
 * Single-threaded. Every buffer is owned by main's loop (the line buffer,
 * reused) or by the function that allocates it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dump_line.h"

/* A 64 KiB body is 128 KiB of hex; a 256 KiB SyncReply 512 KiB. Room to spare. */
#define DUMP_LINE_MAX (8u << 20)
/* --raw: the largest message read whole. */
#define DUMP_RAW_MAX (64u << 20)

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

/*
 * Writes one JSON line and flushes it (pigeon-dump sits in live pipes).
 * 0, or -2 with why when stdout failed.
 */
static int dump_print(const char *json, char *why, size_t whylen)
{
	if (fputs(json, stdout) == EOF || fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
		snprintf(why, whylen, "writing the output: %s", strerror(errno));
		return -2;
	}
	return 0;
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
static int dump_lines(const struct pgdump_opts *o, FILE *f, const char *name)
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
			char *json = NULL;
			r = pgdump_line(o, &text_mode, buf, len, &json, why, sizeof(why));
			if (r == 0 && json != NULL)
				r = dump_print(json, why, sizeof(why));
			free(json);
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
static int dump_raw(const struct pgdump_opts *o, FILE *f, const char *name)
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
	char *json = NULL;
	int r = pgdump_payload(NULL, o->forced ? o->forced : PGDUMP_ENVELOPE, buf, n, &json, why,
	                       sizeof(why));
	if (r == 0)
		r = dump_print(json, why, sizeof(why));
	free(json);
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
	struct pgdump_opts o = {PGDUMP_NONE, 0};
	int c, status = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (c) {
		case 't':
			o.forced = pgdump_parse_type(optarg);
			if (o.forced == PGDUMP_NONE) {
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
