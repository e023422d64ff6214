/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Identity grammar (docs/protocol.md "Limits", docs/auth.md): uid, device
 * and notification type are 1-64 characters of [A-Za-z0-9._-]; an MQTT
 * client id is "<uid>:<device>".
 */
#ifndef PIGEON_IDENT_H
#define PIGEON_IDENT_H

#include "export.h"
#include "result.h"

#include <stdbool.h>
#include <stddef.h>

#define PG_IDENT_MAX 64
/* uid ':' device NUL */
#define PG_CLIENT_ID_MAX (PG_IDENT_MAX * 2 + 2)

enum pg_role {
	PG_ROLE_USER = 0,
	PG_ROLE_SERVICE = 1,
};

/* True if s[0..len) is a valid uid / device / type. */
PG_EXPORT bool pg_ident_valid(const char *s, size_t len);

/* Same, for a NUL-terminated string (NULL is not valid). */
PG_EXPORT bool pg_ident_valid_str(const char *s);

/*
 * Splits a client id "<uid>:<device>" into uid and device, each validated.
 * Returns PG_OK, or PG_ERR_INVALID if the client id does not have that shape.
 */
PG_EXPORT int pg_client_id_split(const char *client_id, char uid[PG_IDENT_MAX + 1],
                                 char device[PG_IDENT_MAX + 1]);

/* "user" / "service" for a role; the reverse returns PG_ERR_INVALID for anything else. */
PG_EXPORT const char *pg_role_name(enum pg_role role);
PG_EXPORT int pg_role_parse(const char *s, enum pg_role *out);

#endif
