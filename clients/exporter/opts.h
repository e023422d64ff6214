/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon-exporter's command line: the options, their defaults and checks,
 * and the --help text. Parsed once by main() before any thread starts;
 * read-only afterwards.
 */
#ifndef PIGEON_EXPORTER_OPTS_H
#define PIGEON_EXPORTER_OPTS_H

#include <stdbool.h>
#include <stdint.h>

#include <sys/socket.h>

#include "cli.h"
#include "health.h"
#include "token_source.h"

enum exp_mode {
	EXP_MODE_SERVE, /* HTTP endpoint (default) */
	EXP_MODE_CHECK, /* --check live|ready */
	EXP_MODE_LIST,  /* --list-metrics */
};

#define EXP_ID_MAX 64

struct exp_opts {
	enum exp_mode mode;
	enum exp_check check;
	struct pgcli_broker broker;
	const char *cafile;
	struct sockaddr_storage listen; /* --listen, parsed */
	socklen_t listen_len;
	char listen_text[80];
	struct exp_token_src token; /* uid and device point into the two arrays below */
	char uid[EXP_ID_MAX + 1], device[EXP_ID_MAX + 1];
	struct exp_limits limits;
	double timeout_s; /* --check */
	bool verbose;
};

/*
 * Parses argv into o: 0 to go on, 1 when --help was printed (exit 0),
 * 2 on a usage error (printed on stderr with the reason; exit 2). A given
 * token (--token, --token-file, $PIGEON_TOKEN) is read once here, for its
 * sub and dev: the default --uid and --device.
 */
int exp_opts_parse(int argc, char **argv, struct exp_opts *o);

/* "<uid>:<device>", the client id pigeon_auth requires (docs/auth.md). */
void exp_opts_client_id(const struct exp_opts *o, char *buf, size_t len);

#endif
