/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The default persistence (struct pigeon_persist_ops) over a directory:
 *
 *   <dir>/lock              flock'd while open: one client per directory
 *   <dir>/cursor            the cursor, decimal, one line
 *   <dir>/server            the address that won the last race
 *   <dir>/outbox/<n>-<hex>  one file per pending send: n (20 digits) orders
 *                           them, hex is the msg_id hex-encoded (its first
 *                           112 bytes); the file holds the msg_id itself
 *
 * Every write goes to a temporary file that is fsync'd and renamed over
 * the old one, and the directory is fsync'd, so a crash leaves the old
 * value or the new one, never a torn file; an op returns 0 only then, and
 * PIGEON_EPERSIST on any I/O error (a full disk), the old file intact.
 * Leftover temporary files are deleted on open; outbox files that do not
 * parse are skipped (and left alone). outbox_put takes msg_ids of 1..128
 * bytes and records up to 1 MiB (else PIGEON_EINVAL); a put again of a
 * msg_id replaces its record in place; outbox_del of an unknown msg_id is
 * 0. A cursor file that is not what save_cursor writes loads as 0.
 * One thread at a time.
 */
#ifndef PIGEON_CLIENT_PERSIST_FILES_H
#define PIGEON_CLIENT_PERSIST_FILES_H

#include <stddef.h>

#include "pigeon_client.h"

extern const struct pigeon_persist_ops pgc_persist_files_ops;

/*
 * Opens (creating if needed, with its parents, mode 0700) dir; *ud is what
 * the ops take, freed by their close. PIGEON_EPERSIST with a reason in err
 * when the directory cannot be made or written or another client has it
 * open; PIGEON_EINVAL for an empty or NULL dir; PIGEON_ENOMEM.
 */
int pgc_persist_files_open(const char *dir, void **ud, char *err, size_t errlen);

#endif
