/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Token revocation list (docs/auth.md "Revocation"), loaded from plugin_opt_revoked_file and
 * reloaded on SIGHUP. The file is text, one entry a line:
 *
 *   # comment
 *   jti <id>             revokes the token whose jti is <id>
 *   sub <uid> <time>     revokes every token of <uid> issued before <time>
 *                        (Unix seconds; a token without iat counts as old)
 *
 * A file with any bad line is refused whole, so a typo never silently
 * un-revokes anything: the caller keeps the list it had.
 */
#ifndef PIGEON_REVOKE_H
#define PIGEON_REVOKE_H

#include "export.h"

#include <stddef.h>

#include "token.h"

struct pg_revoked;

/*
 * Parses text[0..len). Returns a new list (free with pg_revoked_free), or
 * NULL with a message naming the line in err.
 */
PG_EXPORT struct pg_revoked *pg_revoked_parse(const char *text, size_t len, char *err,
                                              size_t errlen);
PG_EXPORT void pg_revoked_free(struct pg_revoked *list);

/* Entries in the list (jti and sub lines). */
PG_EXPORT size_t pg_revoked_count(const struct pg_revoked *list);

/*
 * NULL if a token with this jti / sub / iat is not revoked, else a static
 * text saying why. list may be NULL (nothing revoked).
 */
PG_EXPORT const char *pg_revoked_check(const struct pg_revoked *list, const char *jti,
                                       const char *sub, int has_iat, int64_t iat);

#endif
