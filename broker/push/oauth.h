/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A cached OAuth2 bearer token (FCM's service-account grant, Huawei's
 * client credentials): fetched from a token endpoint with a form-encoded
 * POST the provider composes, kept until shortly before it expires.
 *
 * Threads: one provider's worker thread owns its struct pg_push_oauth; the
 * fetch blocks that thread only (http.h). Times are the worker's now_ms,
 * whatever clock it keeps, as long as it is the same on every call.
 */
#ifndef PIGEON_PUSH_OAUTH_H
#define PIGEON_PUSH_OAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

/* Token endpoints that give no expires_in: RFC 6749 leaves it optional. */
#define PG_PUSH_OAUTH_DEFAULT_TTL_S 3600

struct pg_push_oauth {
	char *access_token; /* malloc'd, NULL when none */
	int64_t expires_at_ms;
	int64_t renew_at_ms; /* expires_at_ms less min(60 s, 10% of expires_in) */
};

/* Forgets the token (cleansed) and zeroes o; o may be zeroed already. */
void pg_push_oauth_clear(struct pg_push_oauth *o);

/* True if a token is held and now_ms is before its renewal time. */
bool pg_push_oauth_fresh(const struct pg_push_oauth *o, int64_t now_ms);

/*
 * Reads a token endpoint's answer (status, body[0..len)): on HTTP 2xx with
 * {"access_token": "...", "expires_in": N} (N a number or a string of
 * digits) replaces o's token and times; otherwise leaves o as it is and
 * says why in err (the status and an excerpt of the body, or what was
 * missing). 0 or -1.
 */
int pg_push_oauth_parse(struct pg_push_oauth *o, long status, const char *body, size_t len,
                        int64_t now_ms, char *err, size_t errlen);

/*
 * POSTs form (application/x-www-form-urlencoded) to url through t and
 * parses the answer into o. 0, or -1 with err set ("<url>: ..."); o keeps
 * its previous token on failure (it may still be good until it expires).
 */
int pg_push_oauth_fetch(struct pg_push_oauth *o, const struct pg_push_transport *t, const char *url,
                        const char *form, int64_t now_ms, char *err, size_t errlen);

#endif
