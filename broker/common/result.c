/* SPDX-License-Identifier: Apache-2.0 */
/* Names of the core's result codes; see result.h. */
#include "result.h"

const char *pg_result_name(int rc)
{
	switch (rc) {
	case PG_OK:
		return "ok";
	case PG_ERR_INVALID:
		return "invalid";
	case PG_ERR_NOMEM:
		return "out of memory";
	case PG_ERR_IO:
		return "I/O error";
	case PG_ERR_BUSY:
		return "busy";
	}
	return "unknown";
}
