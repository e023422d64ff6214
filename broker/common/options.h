/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers for plugin options (plugin_opt_* values) and the small files they
 * name. Each returns PG_OK, or a PG_ERR_* code (common/result.h) with a
 * message for the operator in err.
 */
#ifndef PIGEON_OPTIONS_H
#define PIGEON_OPTIONS_H

#include "export.h"
#include "result.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A decimal integer in [min, max]. */
PG_EXPORT int pg_opt_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *err,
                          size_t errlen);

/* true/false, yes/no, on/off, 1/0. */
PG_EXPORT int pg_opt_bool(const char *s, bool *out, char *err, size_t errlen);

/*
 * A rate "N/S" (N events per S seconds) or "N" (per default_per_s seconds).
 * N may be 0 (disabled); S is 1..86400.
 */
PG_EXPORT int pg_opt_rate(const char *s, unsigned default_per_s, unsigned *count, unsigned *per_s,
                          char *err, size_t errlen);

/*
 * Reads the whole file at path (at most max bytes) into a malloc'd buffer
 * that the caller frees, NUL-terminated (the NUL is not counted in *len).
 */
PG_EXPORT int pg_read_file(const char *path, size_t max, char **buf, size_t *len, char *err,
                           size_t errlen);

#endif
