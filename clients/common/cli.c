/* SPDX-License-Identifier: Apache-2.0 */
/* Broker address and token sources shared by the pigeon tools (cli.h). */
#include "cli.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PGCLI_TOKEN_MAX (64u * 1024u)

void pgcli_broker_defaults(struct pgcli_broker *b)
{
	const char *h = getenv("PIGEON_HOST");
	const char *p = getenv("PIGEON_PORT");
	char err[64];

	b->host = h && *h ? h : "127.0.0.1";
	b->port = 1883;
	if (p && *p && pgcli_parse_port(p, &b->port, err, sizeof(err)) != 0) {
		b->port = 1883;
	}
}

int pgcli_parse_port(const char *s, int *port, char *err, size_t errlen)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 65535) {
		snprintf(err, errlen, "bad port '%s' (1 to 65535)", s);
		return -1;
	}
	*port = (int)v;
	return 0;
}

static char *trimmed_copy(const char *s, size_t n)
{
	char *out;

	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1])) {
		n--;
	}
	out = malloc(n + 1);
	if (out) {
		memcpy(out, s, n);
		out[n] = '\0';
	}
	return out;
}

int pgcli_token_load(const char *token, const char *token_file, char **out, char *err,
                     size_t errlen)
{
	const char *env = getenv("PIGEON_TOKEN");
	char *t = NULL;

	*out = NULL;
	if (token) {
		t = trimmed_copy(token, strlen(token));
	} else if (token_file) {
		char buf[PGCLI_TOKEN_MAX];
		size_t n, line;
		FILE *f = fopen(token_file, "r");

		if (!f) {
			snprintf(err, errlen, "cannot read token file %s: %s", token_file,
			         strerror(errno));
			return -1;
		}
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		line = strcspn(buf, "\n");
		t = trimmed_copy(buf, line);
	} else if (env && *env) {
		t = trimmed_copy(env, strlen(env));
	} else {
		snprintf(err, errlen, "no token: give --token, --token-file or set PIGEON_TOKEN");
		return -1;
	}
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (*t == '\0') {
		free(t);
		snprintf(err, errlen, "the token is empty");
		return -1;
	}
	*out = t;
	return 0;
}

void pgcli_server_uri(const struct pgcli_broker *b, char *buf, size_t len)
{
	snprintf(buf, len, "tcp://%s:%d", b->host, b->port);
}

/* One base64url character's value, -1 for anything else ('=' included). */
static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z') {
		return c - 'A';
	}
	if (c >= 'a' && c <= 'z') {
		return c - 'a' + 26;
	}
	if (c >= '0' && c <= '9') {
		return c - '0' + 52;
	}
	if (c == '-') {
		return 62;
	}
	if (c == '_') {
		return 63;
	}
	return -1;
}

/*
 * Decodes n base64url characters (padding optional) into a new
 * NUL-terminated buffer; NULL on a bad character or an impossible length.
 */
static char *b64url_decode(const char *s, size_t n)
{
	char *out;
	size_t o = 0;
	unsigned acc = 0;
	int bits = 0;

	while (n > 0 && s[n - 1] == '=') {
		n--;
	}
	if (n % 4 == 1) {
		return NULL;
	}
	out = malloc(n * 3 / 4 + 1);
	if (!out) {
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		int v = b64url_value((unsigned char)s[i]);

		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xffu);
		}
	}
	out[o] = '\0';
	return out;
}

/* Copies the string claim name into buf: 0, 1 when absent, -1 when bad. */
static int token_claim_copy(const cJSON *json, const char *name, char *buf, size_t len, char *err,
                            size_t errlen)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(json, name);
	size_t n;

	buf[0] = '\0';
	if (!item) {
		return 1;
	}
	if (!cJSON_IsString(item) || item->valuestring == NULL) {
		snprintf(err, errlen, "the token's %s is not a string", name);
		return -1;
	}
	n = strlen(item->valuestring);
	if (n >= len) {
		snprintf(err, errlen, "the token's %s is too long", name);
		return -1;
	}
	memcpy(buf, item->valuestring, n + 1);
	return 0;
}

int pgcli_token_claims(const char *token, char *uid, size_t uidlen, char *dev, size_t devlen,
                       char *err, size_t errlen)
{
	const char *p1 = strchr(token, '.');
	const char *p2 = p1 ? strchr(p1 + 1, '.') : NULL;
	char *text;
	cJSON *json;
	int rc = -1;

	if (uidlen > 0) {
		uid[0] = '\0';
	}
	if (devlen > 0) {
		dev[0] = '\0';
	}
	if (!p1 || !p2 || strchr(p2 + 1, '.') != NULL || uidlen == 0 || devlen == 0) {
		snprintf(err, errlen, "malformed token: not three dot-separated parts");
		return -1;
	}
	text = b64url_decode(p1 + 1, (size_t)(p2 - p1 - 1));
	if (!text) {
		snprintf(err, errlen, "malformed token: the payload is not base64url");
		return -1;
	}
	json = cJSON_Parse(text);
	free(text);
	if (!cJSON_IsObject(json)) {
		snprintf(err, errlen, "malformed token: the payload is not a JSON object");
		goto fail;
	}
	switch (token_claim_copy(json, "sub", uid, uidlen, err, errlen)) {
	case 0:
		break;
	case 1:
		snprintf(err, errlen, "malformed token: no sub claim");
		goto fail;
	default:
		goto fail;
	}
	if (uid[0] == '\0') {
		snprintf(err, errlen, "malformed token: empty sub claim");
		goto fail;
	}
	if (token_claim_copy(json, "dev", dev, devlen, err, errlen) < 0) {
		uid[0] = '\0';
		goto fail;
	}
	rc = 0;
fail:
	cJSON_Delete(json);
	return rc;
}
