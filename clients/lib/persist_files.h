/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The default persistence (struct pigeon_persist_ops) over a directory:
 *
 *   <dir>/cursor            the cursor, decimal, one line
 *   <dir>/server            the address that won the last race
 *   <dir>/outbox/<n>-<msg_id>  one file per pending send; n orders them
 *
 * Every write goes to a temporary file that is fsync'd and renamed over
 * the old one, and the directory is fsync'd, so a crash leaves the old
 * value or the new one, never a torn file. One thread at a time.
 */
#ifndef PIGEON_CLIENT_PERSIST_FILES_H
#define PIGEON_CLIENT_PERSIST_FILES_H

#include <stddef.h>

#include "pigeon_client.h"

extern const struct pigeon_persist_ops pgc_persist_files_ops;

/*
 * Opens (creating if needed) dir; *ud is what the ops take, freed by their
 * close. PIGEON_EPERSIST with a reason in err when the directory cannot be
 * made or written.
 */
int pgc_persist_files_open(const char *dir, void **ud, char *err, size_t errlen);

#endif
