/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's journal: the durability step that an acknowledgement waits
 * for. A record is one frame appended to the current segment file with a
 * single write(2) (plus fdatasync(2) when the store runs with sync=full):
 * once pg_journal_append returns, the record survives the broker process
 * being killed at any instant, because the page cache outlives the process.
 * The store thread applies records to SQLite later, in large transactions,
 * and removes segments whose records are all applied; at start, records not
 * yet applied are replayed.
 *
 * Frame: u32 length (little endian), u32 CRC-32 (zlib) of the payload, then
 * the payload (a pigeon.journal.Record). A torn or corrupt frame (power loss
 * with sync=normal) ends its segment: replay stops there.
 *
 * Files: <prefix>.jnl.<first lsn, 20 digits>, rotated at PG_JOURNAL_SEGMENT_MAX.
 * Thread rules: append/rotate from one thread (the broker thread); trim from
 * another (the store thread) is safe, as it never touches the newest segment.
 */
#ifndef PIGEON_JOURNAL_H
#define PIGEON_JOURNAL_H

#include "export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PG_JOURNAL_SEGMENT_MAX (64u << 20)
/* Longest payload a frame may carry (a 64 KiB body with its envelope fits). */
#define PG_JOURNAL_RECORD_MAX (4u << 20)

struct pg_journal;

/*
 * Opens a journal that writes a new segment starting at first_lsn.
 * sync_full makes every append fdatasync. Returns 0, or -1 with err set.
 */
PG_EXPORT int pg_journal_open(const char *prefix, uint64_t first_lsn, bool sync_full,
                              struct pg_journal **out, char *err, size_t errlen);

/* Closes the current segment (the file stays until trimmed). */
PG_EXPORT void pg_journal_close(struct pg_journal *j);

/*
 * Appends one frame holding payload[0..len); lsn is the record's LSN (used
 * to name a new segment when this append rotates). Returns 0 once the frame
 * is in the kernel (and on disk with sync_full), or -1 with errno set.
 */
PG_EXPORT int pg_journal_append(struct pg_journal *j, uint64_t lsn, const uint8_t *payload,
                                size_t len);

/* Bytes appended to the current segment. */
PG_EXPORT uint64_t pg_journal_segment_bytes(const struct pg_journal *j);

/*
 * Calls fn for each intact frame of every segment under prefix, oldest
 * first. fn returns 0 to go on, non-zero to stop (that value is returned).
 * Returns 0, or -1 with err set when a segment cannot be read.
 * *torn (if not NULL) counts segments that ended in a torn/corrupt frame.
 */
PG_EXPORT int pg_journal_replay(const char *prefix,
                                int (*fn)(const uint8_t *payload, size_t len, void *ud), void *ud,
                                int *torn, char *err, size_t errlen);

/*
 * Removes every segment all of whose records have LSN <= applied_lsn (a
 * segment's records end where the next segment begins; the newest is never
 * removed). Returns the number of files removed.
 */
PG_EXPORT int pg_journal_trim(const char *prefix, uint64_t applied_lsn);

#endif
