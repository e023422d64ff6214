/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Protobuf messages to JSON (pb_json.h): one recursive walk over a
 * ProtobufCMessageDescriptor, reading each field where protobuf-c's
 * generated struct keeps it (offset), its presence or count where the
 * descriptor says (quantifier_offset): a oneof's case, a repeated field's
 * n_<name>. Nothing here knows pigeon's messages.
 *
 * Pure functions: any thread; every cJSON node built here belongs to the
 * tree returned, freed with it.
 */
#include "pb_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deeper than any pigeon message; a guard for recursive schemas. */
#define PB_JSON_MAX_DEPTH 32

/* The largest integer a double holds exactly, and every one below it. */
#define PB_JSON_EXACT ((uint64_t)1 << 53)

static cJSON *pb_json_message(const ProtobufCMessage *m, int depth);

int pgcli_utf8_text(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = s[i];
		size_t n;
		uint32_t cp;
		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (len - i <= n)
			return 0;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		/* Overlong forms, surrogates and beyond U+10FFFF are not UTF-8. */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return 0;
		i += n + 1;
	}
	return 1;
}

char *pgcli_base64(const uint8_t *d, size_t len)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
		return NULL;
	char *out = malloc((len + 2) / 3 * 4 + 1);
	if (out == NULL)
		return NULL;
	char *p = out;
	size_t i = 0;
	for (; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
		*p++ = abc[v >> 18];
		*p++ = abc[(v >> 12) & 63];
		*p++ = abc[(v >> 6) & 63];
		*p++ = abc[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < len ? (uint32_t)d[i + 1] << 8 : 0);
		*p++ = abc[v >> 18];
		*p++ = abc[(v >> 12) & 63];
		*p++ = i + 1 < len ? abc[(v >> 6) & 63] : '=';
		*p++ = '=';
	}
	*p = '\0';
	return out;
}

/* A cJSON string of data[0..len), which holds no NUL (cJSON's strings end at one). */
static cJSON *pb_json_string(const uint8_t *data, size_t len)
{
	char *s = malloc(len + 1);
	if (s == NULL)
		return NULL;
	if (len > 0)
		memcpy(s, data, len);
	s[len] = '\0';
	cJSON *v = cJSON_CreateString(s);
	free(s);
	return v;
}

int pgcli_json_add_bytes(cJSON *obj, const char *name, const uint8_t *data, size_t len)
{
	static const uint8_t none[1] = {0};
	if (data == NULL)
		data = none; /* len is 0 then: an empty string */
	if (pgcli_utf8_text(data, len)) {
		cJSON *v = pb_json_string(data, len);
		if (v == NULL)
			return -1;
		cJSON_AddItemToObject(obj, name, v);
		return 0;
	}
	size_t klen = strlen(name) + sizeof("_base64");
	char *key = malloc(klen);
	char *b64 = pgcli_base64(data, len);
	cJSON *v = b64 ? cJSON_CreateString(b64) : NULL;
	free(b64);
	if (key == NULL || v == NULL) {
		free(key);
		cJSON_Delete(v);
		return -1;
	}
	snprintf(key, klen, "%s_base64", name);
	cJSON_AddItemToObject(obj, key, v);
	free(key);
	return 0;
}

/* An integer as a number while a double holds it exactly, else as a string. */
static cJSON *pb_json_u64(uint64_t v)
{
	if (v <= PB_JSON_EXACT)
		return cJSON_CreateNumber((double)v);
	char buf[24];
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	return cJSON_CreateString(buf);
}

static cJSON *pb_json_i64(int64_t v)
{
	if (v >= -(int64_t)PB_JSON_EXACT && v <= (int64_t)PB_JSON_EXACT)
		return cJSON_CreateNumber((double)v);
	char buf[24];
	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	return cJSON_CreateString(buf);
}

static cJSON *pb_json_double(double d)
{
	return isfinite(d) ? cJSON_CreateNumber(d) : cJSON_CreateNull();
}

static size_t pb_json_elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	default:
		return 4; /* the 32-bit integers and enums */
	}
}

/*
 * Adds the value at p (one element, of f's type) to obj under f's name
 * (obj an object) or appended (obj an array: bytes and strings that are
 * not text then become {"base64": "..."} objects, since an array element
 * has no key to rename). 0, or -1 when out of memory.
 */
static int pb_json_value(cJSON *obj, const ProtobufCFieldDescriptor *f, const void *p, int depth)
{
	int in_array = cJSON_IsArray(obj);
	cJSON *v = NULL;
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		v = cJSON_CreateNumber(*(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		v = cJSON_CreateNumber(*(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		v = pb_json_i64(*(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		v = pb_json_u64(*(const uint64_t *)p);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		v = pb_json_double(*(const float *)p);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		v = pb_json_double(*(const double *)p);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		v = cJSON_CreateBool(*(const protobuf_c_boolean *)p);
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		int e = *(const int *)p;
		const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
		    (const ProtobufCEnumDescriptor *)f->descriptor, e);
		v = ev ? cJSON_CreateString(ev->name) : cJSON_CreateNumber(e);
		break;
	}
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_BYTES: {
		const uint8_t *data;
		size_t len;
		if (f->type == PROTOBUF_C_TYPE_STRING) {
			/* protobuf-c keeps strings NUL-terminated; NULL only if unset. */
			const char *s = *(const char *const *)p;
			data = (const uint8_t *)(s ? s : "");
			len = strlen((const char *)data);
		} else {
			const ProtobufCBinaryData *b = p;
			data = b->data;
			len = b->len;
		}
		if (!in_array)
			return pgcli_json_add_bytes(obj, f->name, data, len);
		if (pgcli_utf8_text(data ? data : (const uint8_t *)"", len)) {
			v = pb_json_string(data, len);
		} else {
			char *b64 = pgcli_base64(data, len);
			v = cJSON_CreateObject();
			if (b64 == NULL || v == NULL ||
			    !cJSON_AddStringToObject(v, "base64", b64)) {
				free(b64);
				cJSON_Delete(v);
				return -1;
			}
			free(b64);
		}
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)p;
		if (sub == NULL)
			return 0; /* absent: not printed (an array never holds NULL) */
		v = pb_json_message(sub, depth + 1);
		break;
	}
	default:
		return 0;
	}
	if (v == NULL)
		return -1;
	if (in_array)
		cJSON_AddItemToArray(obj, v);
	else
		cJSON_AddItemToObject(obj, f->name, v);
	return 0;
}

static cJSON *pb_json_message(const ProtobufCMessage *m, int depth)
{
	if (m == NULL || m->descriptor == NULL || depth > PB_JSON_MAX_DEPTH)
		return NULL;
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;
	cJSON *obj = cJSON_CreateObject();
	if (obj == NULL)
		return NULL;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const void *p = base + f->offset;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			const char *arr = *(const char *const *)p;
			size_t sz = pb_json_elem_size(f->type);
			cJSON *a = cJSON_CreateArray();
			if (a == NULL)
				goto fail;
			cJSON_AddItemToObject(obj, f->name, a);
			for (size_t k = 0; k < n && arr != NULL; k++)
				if (pb_json_value(a, f, arr + k * sz, depth) != 0)
					goto fail;
			continue;
		}
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			/* The case member holds the set field's number, 0 if none. */
			uint32_t which = *(const uint32_t *)(base + f->quantifier_offset);
			if (which != f->id)
				continue;
		}
		if (pb_json_value(obj, f, p, depth) != 0)
			goto fail;
	}
	return obj;
fail:
	cJSON_Delete(obj);
	return NULL;
}

/* pgcli_pb_elements below depth; stops counting past the bound (never overflows). */
static size_t pb_json_elements(const ProtobufCMessage *m, int depth)
{
	if (m == NULL || m->descriptor == NULL || depth > PB_JSON_MAX_DEPTH)
		return 0;
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;
	size_t total = 0;
	for (unsigned i = 0; i < d->n_fields && total <= PGCLI_PB_JSON_MAX_ELEMENTS; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const void *p = base + f->offset;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			total +=
			    n > PGCLI_PB_JSON_MAX_ELEMENTS ? PGCLI_PB_JSON_MAX_ELEMENTS + 1 : n;
			const ProtobufCMessage *const *arr =
			    *(const ProtobufCMessage *const *const *)p;
			if (f->type != PROTOBUF_C_TYPE_MESSAGE || arr == NULL)
				continue;
			for (size_t k = 0; k < n && total <= PGCLI_PB_JSON_MAX_ELEMENTS; k++)
				total += pb_json_elements(arr[k], depth + 1);
			continue;
		}
		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		total += pb_json_elements(*(const ProtobufCMessage *const *)p, depth + 1);
	}
	return total;
}

size_t pgcli_pb_elements(const ProtobufCMessage *m)
{
	return pb_json_elements(m, 0);
}

cJSON *pgcli_pb_to_cjson(const ProtobufCMessage *m)
{
	/* Bounded before anything is built: see PGCLI_PB_JSON_MAX_ELEMENTS. */
	if (pgcli_pb_elements(m) > PGCLI_PB_JSON_MAX_ELEMENTS)
		return NULL;
	return pb_json_message(m, 0);
}

char *pgcli_pb_to_json(const ProtobufCMessage *m)
{
	cJSON *j = pgcli_pb_to_cjson(m);
	if (j == NULL)
		return NULL;
	char *s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return s;
}
