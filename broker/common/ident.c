/* SPDX-License-Identifier: Apache-2.0 */
/* Identity grammar: the one place that says what a uid, device or type is. */
#include "ident.h"

#include <string.h>

bool pg_ident_valid(const char *s, size_t len)
{
	size_t i;

	if (s == NULL || len == 0 || len > PG_IDENT_MAX) {
		return false;
	}
	for (i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-')) {
			return false;
		}
	}
	return true;
}

bool pg_ident_valid_str(const char *s)
{
	return s != NULL && pg_ident_valid(s, strnlen(s, PG_IDENT_MAX + 1));
}

int pg_client_id_split(const char *client_id, char uid[PG_IDENT_MAX + 1],
                       char device[PG_IDENT_MAX + 1])
{
	const char *colon;
	size_t len, ulen, dlen;

	if (client_id == NULL) {
		return PG_ERR_INVALID;
	}
	len = strnlen(client_id, PG_CLIENT_ID_MAX + 1);
	if (len > PG_CLIENT_ID_MAX - 1) {
		return PG_ERR_INVALID;
	}
	colon = memchr(client_id, ':', len);
	if (colon == NULL) {
		return PG_ERR_INVALID;
	}
	ulen = (size_t)(colon - client_id);
	dlen = len - ulen - 1;
	if (!pg_ident_valid(client_id, ulen) || !pg_ident_valid(colon + 1, dlen)) {
		return PG_ERR_INVALID;
	}
	memcpy(uid, client_id, ulen);
	uid[ulen] = '\0';
	memcpy(device, colon + 1, dlen);
	device[dlen] = '\0';
	return PG_OK;
}

const char *pg_role_name(enum pg_role role)
{
	return role == PG_ROLE_SERVICE ? "service" : "user";
}

int pg_role_parse(const char *s, enum pg_role *out)
{
	if (strcmp(s, "user") == 0) {
		*out = PG_ROLE_USER;
	} else if (strcmp(s, "service") == 0) {
		*out = PG_ROLE_SERVICE;
	} else {
		return PG_ERR_INVALID;
	}
	return PG_OK;
}
