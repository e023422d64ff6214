/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon_strerror (pigeon_client.h): the library's own codes (negative),
 * success, and the broker's Reply codes as docs/protocol.md defines them.
 * Static strings; any thread.
 */
#include "pigeon_client.h"

PIGEON_CLIENT_API const char *pigeon_strerror(int code)
{
	switch (code) {
	case PIGEON_OK:
		return "ok";
	case PIGEON_EINVAL:
		return "invalid argument";
	case PIGEON_ENOMEM:
		return "out of memory";
	case PIGEON_EPERSIST:
		return "persistence failed (state directory not writable or disk full)";
	case PIGEON_ESTATE:
		return "not allowed in the client's current state";
	case PIGEON_EMQTT:
		return "MQTT connection failed or lost";
	case PIGEON_EAUTH:
		return "the broker refused the login (bad or expired token)";
	case PIGEON_ETIMEOUT:
		return "no answer in time";
	case PIGEON_EPROTO:
		return "the broker sent something that is not the pigeon protocol";
	case 400:
		return "bad request: not a Request protobuf, unknown request type, invalid field";
	case 403:
		return "not allowed for this identity";
	case 413:
		return "body larger than the broker's max_body";
	case 429:
		return "send rate limit reached";
	case 500:
		return "the store failed; nothing changed";
	case 501:
		return "feature not enabled on the broker (push not loaded or the platform has no "
		       "credentials)";
	case 503:
		return "the store is behind: nothing changed, retry later";
	default:
		return "unknown error";
	}
}
