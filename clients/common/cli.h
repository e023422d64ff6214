/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What every pigeon command-line client shares: where the broker is and
 * where the token comes from, the same way in each tool.
 *
 *   broker  --host/-h (default $PIGEON_HOST, else 127.0.0.1),
 *           --port/-p (default $PIGEON_PORT, else 1883)
 *   token   --token T, else --token-file F (first line), else $PIGEON_TOKEN
 */
#ifndef PIGEON_CLI_H
#define PIGEON_CLI_H

#include <stddef.h>

struct pgcli_broker {
	const char *host;
	int port;
};

/* Fills b with the defaults above. */
void pgcli_broker_defaults(struct pgcli_broker *b);

/*
 * Parses a port (1..65535) into *port: 0, or -1 with a reason in err.
 */
int pgcli_parse_port(const char *s, int *port, char *err, size_t errlen);

/*
 * The token from the first source given (see above), trimmed of
 * whitespace; *out is the caller's (free). -1 with the reason in err when
 * no source is given, the file cannot be read or the token is empty.
 */
int pgcli_token_load(const char *token, const char *token_file, char **out, char *err,
                     size_t errlen);

/*
 * The token's `sub` into uid and `dev` into dev ("" when absent), read
 * from its payload (base64url JSON) without checking the signature: the
 * broker verifies. 0, or -1 with the reason in err when the token is not
 * three dot-separated parts, the payload is not base64url JSON, `sub` is
 * missing or a claim does not fit its buffer.
 */
int pgcli_token_claims(const char *token, char *uid, size_t uidlen, char *dev, size_t devlen,
                       char *err, size_t errlen);

/* "tcp://host:port" into buf (at least 300 bytes). */
void pgcli_server_uri(const struct pgcli_broker *b, char *buf, size_t len);

#endif
