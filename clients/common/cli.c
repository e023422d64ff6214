/* SPDX-License-Identifier: Apache-2.0 */
/* Broker address and token sources shared by the pigeon tools (cli.h). */
#include "cli.h"

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
