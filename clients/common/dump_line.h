/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon-dump's decoder (clients/pigeon_dump.c, docs/debugging.md): one
 * input line, or one binary payload, to the JSON line pigeon-dump prints.
 * The tool keeps the arguments and the I/O; tests/fuzz/fuzz_dump_line.c
 * drives these functions directly.
 *
 * A line is HEX (mosquitto_sub -F %x), TOPIC HEX (-F '%t %x') or TOPIC
 * PAYLOAD (-v, a printable payload); the topic picks the message type
 * (pgdump_kind_of_topic), --type forces one, bare hex without it is an
 * Envelope. The JSON: {"topic":...,"type":"Envelope","message":{...}}, no
 * "topic" for bare hex or a raw payload, "message" in pb_json.h's shape.
 *
 * Pure functions apart from the caller's text_mode: any thread. Every
 * string returned is malloc'd and the caller's (free).
 */
#ifndef PIGEON_DUMP_LINE_H
#define PIGEON_DUMP_LINE_H

#include <stddef.h>
#include <stdint.h>

/* What a payload is: one of the four protobuf messages, or a raw body. */
enum pgdump_kind {
	PGDUMP_NONE = 0,
	PGDUMP_ENVELOPE,
	PGDUMP_REPLY,
	PGDUMP_PRESENCE,
	PGDUMP_REQUEST,
	PGDUMP_CHAT,    /* im/<to>/chat: the body as sent */
	PGDUMP_NOTIFY,  /* im/<to>/notify/<type> */
	PGDUMP_INSTANT, /* im/<to>/instant */
	PGDUMP_SYS,     /* $SYS/...: a text value */
	PGDUMP_OTHER,   /* any other topic: refused unless --type is given */
};

/*
 * The largest protobuf payload decoded, in bytes. The largest message
 * pigeon sends is a SyncReply: 256 KiB of envelopes and at least one,
 * which may be as large as plugin_opt_max_body (at most 1 MiB) plus about
 * 2 KiB (docs/protocol.md, Limits). Unpacking costs up to ~70 times the
 * input (an empty submessage is 2 bytes on the wire, a struct and a
 * pointer unpacked), so the bound is what keeps a hostile payload cheap;
 * payloads that are not protobuf (chat, $SYS, ...) have no such bound.
 */
#define PGDUMP_MESSAGE_MAX (2u << 20)

/* The last protobuf kind: --type takes PGDUMP_ENVELOPE..PGDUMP_LAST_MESSAGE. */
#define PGDUMP_LAST_MESSAGE PGDUMP_REQUEST

struct pgdump_opts {
	enum pgdump_kind forced; /* --type, PGDUMP_NONE if not given */
	int raw;                 /* --raw (the caller's: pgdump_line ignores it) */
};

/* The "type" printed for k ("Envelope", "chat", ...); "" for PGDUMP_NONE. */
const char *pgdump_kind_name(enum pgdump_kind k);

/* --type's argument, case-insensitive; PGDUMP_NONE if unknown. */
enum pgdump_kind pgdump_parse_type(const char *s);

/* The type topic t carries (docs/protocol.md, Topics); PGDUMP_OTHER if none. */
enum pgdump_kind pgdump_kind_of_topic(const char *t);

/*
 * The JSON line of payload p[0..n) of kind k (not PGDUMP_NONE), topic NULL
 * for none: 0 with *json (no newline), or -1 with the reason in why and
 * *json NULL: a message that does not unpack, is larger than
 * PGDUMP_MESSAGE_MAX or holds more than PGCLI_PB_JSON_MAX_ELEMENTS
 * repeated elements (pb_json.h), or out of memory.
 */
int pgdump_payload(const char *topic, enum pgdump_kind k, const uint8_t *p, size_t n, char **json,
                   char *why, size_t whylen);

/*
 * One input line s[0..n) (no newline, NUL-terminated at n; modified in
 * place). *text_mode is the stream's, 0 at its start: set once a payload
 * after a topic is not hex (mosquitto_sub -v), after which every payload
 * is taken as printed. 0 with *json, or 0 with *json NULL for an empty
 * line (skipped); -1 with why when the line does not decode.
 */
int pgdump_line(const struct pgdump_opts *o, int *text_mode, char *s, size_t n, char **json,
                char *why, size_t whylen);

#endif
