/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Any protobuf-c message as JSON, by walking its descriptor: so Envelope,
 * Reply, Presence, Request and whatever is nested in them print the same
 * way in pigeon-dump and pigeon-client, and a field added to the .proto
 * shows up without a line of code here.
 *
 * The shape (stable, so jq filters keep working):
 *   - keys are the .proto field names (snake_case);
 *   - every scalar field is printed, even at its default (0, "", false);
 *     a submessage only when present; a oneof only its set member;
 *   - repeated fields are arrays (empty when none);
 *   - enums by value name ("CHAT"), or the number if the value is unknown;
 *   - integers are JSON numbers, except a 64-bit value beyond 2^53 in
 *     magnitude (which a double cannot hold exactly): a decimal string;
 *   - bool is true/false; float/double are numbers (null if not finite);
 *   - string and bytes: a JSON string when the value is valid UTF-8 without
 *     NUL bytes (cJSON escapes control characters), else the base64
 *     (RFC 4648, padded) of the value under the key "<name>_base64" (in a
 *     repeated field, an element {"base64": "..."}).
 *
 * Pure functions, no state: any thread.
 */
#ifndef PIGEON_PB_JSON_H
#define PIGEON_PB_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <protobuf-c/protobuf-c.h>

/*
 * The most elements, in all repeated fields of a message and of the
 * messages in it together, that pgcli_pb_to_cjson prints. Each element
 * costs a cJSON node per field (a 2-byte empty Envelope in a SyncReply
 * becomes about 1.8 KB of tree), so without a bound a few MiB of input
 * would take gigabytes. 16 times a full SyncReply (1000 messages,
 * docs/protocol.md); a Presence lists a user's few devices.
 */
#define PGCLI_PB_JSON_MAX_ELEMENTS 16384

/*
 * The number of elements in all repeated fields of m and of the messages
 * in it (0 for NULL): what PGCLI_PB_JSON_MAX_ELEMENTS bounds. Counting
 * stops once past it: then some number above the bound, not the total.
 */
size_t pgcli_pb_elements(const ProtobufCMessage *m);

/*
 * m as a cJSON object (the caller's: cJSON_Delete), NULL when out of
 * memory, m is NULL or it holds more than PGCLI_PB_JSON_MAX_ELEMENTS
 * repeated elements (pgcli_pb_elements tells which).
 */
cJSON *pgcli_pb_to_cjson(const ProtobufCMessage *m);

/*
 * m as a one-line JSON object, no trailing newline; malloc'd, the caller's
 * (free). NULL as pgcli_pb_to_cjson.
 */
char *pgcli_pb_to_json(const ProtobufCMessage *m);

/*
 * Adds data to obj the way a bytes field is printed: obj[name] a string
 * when data is valid UTF-8 without NUL, else obj["<name>_base64"]. 0, or
 * -1 when out of memory (obj unchanged).
 */
int pgcli_json_add_bytes(cJSON *obj, const char *name, const uint8_t *data, size_t len);

/* 1 if data[0..len) is valid UTF-8 (no overlongs, no surrogates) without NUL. */
int pgcli_utf8_text(const uint8_t *data, size_t len);

/*
 * The padded base64 of data, NUL-terminated; malloc'd, the caller's
 * (free). NULL when out of memory.
 */
char *pgcli_base64(const uint8_t *data, size_t len);

#endif
