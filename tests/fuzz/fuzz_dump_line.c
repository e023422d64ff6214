/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: pigeon-dump's decoder (clients/common/dump_line.c) and
 * the protobuf-to-JSON walk under it (clients/common/pb_json.c). What
 * pigeon-dump reads is a capture of the wire, or whatever an operator
 * pipes into it: hostile input, and the tool must print or refuse each
 * line, never crash.
 *
 * Input: byte 0 is the mode (low 3 bits: --type, 0 none, 1 envelope, 2
 * reply, 3 presence, 4 request, 5-7 none; bit 3: --raw, the rest is one
 * binary message for pgdump_payload; bit 4: the stream is already in text
 * mode, as after a mosquitto_sub -v payload). Without --raw the rest is
 * lines separated by '\n', each given to pgdump_line in turn (text mode
 * carried from one to the next) as pigeon-dump's reader hands it over: in
 * a buffer of its own, NUL-terminated right after it, so ASan sees any
 * read beyond it. A line may hold any byte, NUL included.
 *
 * Checks, beyond memory safety: a refused line comes with a reason, one
 * line of text; an empty line (or a lone '\r') prints nothing; any other
 * accepted line prints one line of valid JSON, an object whose "type" is
 * what the rules say (--type, else the topic, else Envelope for bare hex)
 * and whose "topic" is the line's up to its first space (absent for bare
 * hex and --raw). The payload is worked out here independently (hex
 * decoded unless the stream is in text mode, a stream turning to text
 * mode at its first payload that is not hex, never back): a protobuf
 * type's "message" is exactly pgcli_pb_to_cjson of that payload unpacked
 * here, which must not fail on a message that unpacks (within
 * PGCLI_PB_JSON_MAX_ELEMENTS, which a fuzz input is too short to pass),
 * and stays the same
 * after the message is packed and unpacked again (the JSON shows the
 * message, not its encoding); a payload type's "body" (or $SYS "value") is
 * the payload itself as a string, or "body_base64" whose base64 decodes
 * back to it, and a string only when it is UTF-8 without NUL.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "dump_line.h"
#include "fuzz_check.h"
#include "pb_json.h"
#include "pigeon.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCMessageDescriptor *const descs[] = {
    [PGDUMP_ENVELOPE] = &pigeon__envelope__descriptor,
    [PGDUMP_REPLY] = &pigeon__reply__descriptor,
    [PGDUMP_PRESENCE] = &pigeon__presence__descriptor,
    [PGDUMP_REQUEST] = &pigeon__request__descriptor,
};

/* ---- an independent model of the input ---- */

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	c = (uint8_t)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * 1 and the bytes in out (n / 2 of them; out may be s) if s[0..n) is
 * non-empty, even-length hex; 0 and out untouched if not.
 */
static bool unhex(uint8_t *s, size_t n, uint8_t *out)
{
	if (n == 0 || n % 2 != 0) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (hexval(s[i]) < 0) {
			return false;
		}
	}
	for (size_t i = 0; i < n; i += 2) {
		out[i / 2] = (uint8_t)(hexval(s[i]) << 4 | hexval(s[i + 1]));
	}
	return true;
}

/* RFC 4648 base64 with padding, strictly: the decoded length, or -1. */
static long unbase64(const char *s, uint8_t *out)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t len = strlen(s), n = 0;

	if (len % 4 != 0) {
		return -1;
	}
	for (size_t i = 0; i < len; i += 4) {
		uint32_t v = 0;
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			const char *p = s[i + k] == '=' ? NULL : strchr(abc, s[i + k]);
			if (s[i + k] == '\0' || (p == NULL && s[i + k] != '=')) {
				return -1;
			}
			if (p == NULL) {
				pad++;
			} else if (pad > 0) {
				return -1; /* a digit after '=' */
			}
			v = v << 6 | (p ? (uint32_t)(p - abc) : 0);
		}
		if (pad > 2 || (pad > 0 && i + 4 != len)) {
			return -1;
		}
		out[n++] = (uint8_t)(v >> 16);
		if (pad < 2) {
			out[n++] = (uint8_t)(v >> 8);
		}
		if (pad < 1) {
			out[n++] = (uint8_t)v;
		}
	}
	return (long)n;
}

/* The JSON line printed must be one line, an object; returns it parsed. */
static cJSON *parse_line(const char *json)
{
	FUZZ_CHECK(strchr(json, '\n') == NULL && strchr(json, '\r') == NULL);
	cJSON *j = cJSON_Parse(json);
	FUZZ_CHECK(j != NULL && cJSON_IsObject(j));
	return j;
}

/* 1 if m or a message in it kept unknown fields (protobuf-c packs them back as they came). */
static bool has_unknown(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;

	if (m->n_unknown_fields > 0) {
		return true;
	}
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->type != PROTOBUF_C_TYPE_MESSAGE) {
			continue;
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			ProtobufCMessage *const *a =
			    *(ProtobufCMessage *const *const *)(base + f->offset);
			for (size_t k = 0; k < n; k++) {
				if (has_unknown(a[k])) {
					return true;
				}
			}
			continue;
		}
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id) {
			continue;
		}
		const ProtobufCMessage *sub = *(ProtobufCMessage *const *)(base + f->offset);
		if (sub != NULL && has_unknown(sub)) {
			return true;
		}
	}
	return false;
}

/* A protobuf message's JSON as pgcli_pb_to_cjson gives it; NULL if p does not unpack. */
static cJSON *message_json(enum pgdump_kind k, const uint8_t *p, size_t n, bool repack)
{
	ProtobufCMessage *m = protobuf_c_message_unpack(descs[k], NULL, n, p);
	if (m == NULL) {
		return NULL;
	}
	cJSON *j = pgcli_pb_to_cjson(m);
	/* A message that unpacked prints unless it is too big to (pb_json.h). */
	if (pgcli_pb_elements(m) > PGCLI_PB_JSON_MAX_ELEMENTS) {
		FUZZ_CHECK(j == NULL);
		protobuf_c_message_free_unpacked(m, NULL);
		return NULL;
	}
	FUZZ_CHECK(j != NULL);
	if (repack) {
		size_t n2 = protobuf_c_message_get_packed_size(m);
		uint8_t *p2 = malloc(n2 ? n2 : 1);
		FUZZ_CHECK(p2 != NULL);
		FUZZ_CHECK(protobuf_c_message_pack(m, p2) == n2);
		cJSON *j2 = message_json(k, p2, n2, false);
		/*
		 * Unknown fields go back as they came, and protobuf-c 1.4.1 reads
		 * a key of field 0 in an overlong varint (80 00) but packs it
		 * short (00), which it then refuses: only then may it not unpack.
		 */
		FUZZ_CHECK(j2 != NULL || has_unknown(m));
		FUZZ_CHECK(j2 == NULL || cJSON_Compare(j, j2, true));
		cJSON_Delete(j2);
		free(p2);
		/* pgcli_pb_to_json is the same tree, printed on one line. */
		char *s = pgcli_pb_to_json(m);
		FUZZ_CHECK(s != NULL);
		cJSON_Delete(parse_line(s));
		free(s);
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return j;
}

/* Checks that the JSON line json (kind k, topic or NULL) shows payload p[0..n). */
static void check_output(const char *json, const char *topic, enum pgdump_kind k, const uint8_t *p,
                         size_t n)
{
	cJSON *j = parse_line(json), *t = cJSON_GetObjectItemCaseSensitive(j, "topic");
	cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
	cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");

	FUZZ_CHECK(cJSON_GetArraySize(j) == (topic ? 3 : 2));
	if (topic) {
		FUZZ_CHECK(cJSON_IsString(t) && strcmp(t->valuestring, topic) == 0);
	}
	FUZZ_CHECK(cJSON_IsString(type) && strcmp(type->valuestring, pgdump_kind_name(k)) == 0);
	FUZZ_CHECK(cJSON_IsObject(msg));
	if (k <= PGDUMP_LAST_MESSAGE) {
		cJSON *want = message_json(k, p, n, true);
		FUZZ_CHECK(want != NULL); /* printed, so it unpacked */
		FUZZ_CHECK(cJSON_Compare(msg, want, true));
		cJSON_Delete(want);
	} else {
		const char *key = k == PGDUMP_SYS ? "value" : "body";
		char b64key[16];
		snprintf(b64key, sizeof(b64key), "%s_base64", key);
		cJSON *v = cJSON_GetObjectItemCaseSensitive(msg, key);
		cJSON *b = cJSON_GetObjectItemCaseSensitive(msg, b64key);
		FUZZ_CHECK(cJSON_GetArraySize(msg) == 1);
		if (v != NULL) {
			FUZZ_CHECK(cJSON_IsString(v) && pgcli_utf8_text(p, n));
			FUZZ_CHECK(strlen(v->valuestring) == n &&
			           memcmp(v->valuestring, p, n) == 0);
		} else {
			FUZZ_CHECK(cJSON_IsString(b) && !pgcli_utf8_text(p, n));
			uint8_t *back = malloc(strlen(b->valuestring) / 4 * 3 + 1);
			FUZZ_CHECK(back != NULL);
			FUZZ_CHECK(unbase64(b->valuestring, back) == (long)n);
			FUZZ_CHECK(n == 0 || memcmp(back, p, n) == 0);
			free(back);
		}
	}
	cJSON_Delete(j);
}

static void check_refusal(int rc, const char *json, const char *why)
{
	FUZZ_CHECK(rc == -1 && json == NULL);
	FUZZ_CHECK(why[0] != '\0' && strchr(why, '\n') == NULL);
}

/* One line s[0..n) of the stream as pigeon-dump reads it. */
static void one_line(const struct pgdump_opts *o, int *text_mode, const uint8_t *s, size_t n)
{
	/* The copy the decoder may change, and the model's own. */
	char *line = malloc(n + 1), *json = (char *)"unset", why[256] = "";
	uint8_t *model = malloc(n + 1);
	int was_text = *text_mode;

	FUZZ_CHECK(line != NULL && model != NULL);
	memcpy(line, s, n);
	line[n] = '\0';
	memcpy(model, s, n);
	model[n] = '\0';
	int rc = pgdump_line(o, text_mode, line, n, &json, why, sizeof(why));
	FUZZ_CHECK(*text_mode == 0 || *text_mode == 1);
	FUZZ_CHECK(!was_text || *text_mode); /* never back to hex */

	if (n > 0 && model[n - 1] == '\r') {
		n--;
	}
	uint8_t *sp = memchr(model, ' ', n);
	if (n == 0) {
		FUZZ_CHECK(rc == 0 && json == NULL);
	} else if (sp == NULL) {
		/* Bare hex, an Envelope unless --type says otherwise. */
		FUZZ_CHECK(*text_mode == was_text);
		if (!unhex(model, n, model)) {
			check_refusal(rc, json, why);
		} else {
			enum pgdump_kind k = o->forced ? o->forced : PGDUMP_ENVELOPE;
			if (rc == 0) {
				check_output(json, NULL, k, model, n / 2);
			} else {
				check_refusal(rc, json, why);
				FUZZ_CHECK(message_json(k, model, n / 2, false) == NULL);
			}
		}
	} else {
		size_t tlen = (size_t)(sp - model);
		uint8_t *payload = sp + 1;
		size_t plen = n - tlen - 1;
		*sp = '\0';
		enum pgdump_kind k = o->forced ? o->forced : pgdump_kind_of_topic((char *)model);
		if (tlen == 0 || !pgcli_utf8_text(model, tlen) || k == PGDUMP_OTHER) {
			check_refusal(rc, json, why);
			FUZZ_CHECK(*text_mode == was_text);
		} else {
			if (!was_text && unhex(payload, plen, payload)) {
				plen /= 2;
				FUZZ_CHECK(*text_mode == 0);
			} else {
				FUZZ_CHECK(*text_mode == (was_text || plen > 0));
			}
			if (rc == 0) {
				check_output(json, (char *)model, k, payload, plen);
			} else {
				/* Only a protobuf payload that does not unpack is refused. */
				check_refusal(rc, json, why);
				FUZZ_CHECK(k <= PGDUMP_LAST_MESSAGE);
				FUZZ_CHECK(message_json(k, payload, plen, false) == NULL);
			}
		}
	}
	if (rc == 0) {
		free(json);
	}
	free(line);
	free(model);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0) {
		return 0;
	}
	uint8_t mode = data[0];
	struct pgdump_opts o = {PGDUMP_NONE, (mode & 8) != 0};
	int text_mode = (mode & 16) != 0;

	if ((mode & 7) >= PGDUMP_ENVELOPE && (mode & 7) <= PGDUMP_LAST_MESSAGE) {
		o.forced = (enum pgdump_kind)(mode & 7);
	}
	data++;
	size--;
	if (o.raw) {
		/* A buffer of its own, exactly the message, as --raw reads it. */
		uint8_t *p = malloc(size ? size : 1);
		char *json = NULL, why[256] = "";
		enum pgdump_kind k = o.forced ? o.forced : PGDUMP_ENVELOPE;
		FUZZ_CHECK(p != NULL);
		memcpy(p, data, size);
		int rc = pgdump_payload(NULL, k, p, size, &json, why, sizeof(why));
		if (rc == 0) {
			check_output(json, NULL, k, p, size);
			free(json);
		} else {
			check_refusal(rc, json, why);
			FUZZ_CHECK(message_json(k, p, size, false) == NULL);
		}
		free(p);
		return 0;
	}
	while (size > 0) {
		const uint8_t *nl = memchr(data, '\n', size);
		size_t n = nl ? (size_t)(nl - data) : size;
		one_line(&o, &text_mode, data, n);
		if (nl == NULL) {
			break;
		}
		data += n + 1;
		size -= n + 1;
	}
	return 0;
}
