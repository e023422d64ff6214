/*
 * Journal segments: append with one write(2), replay with CRC checks, trim
 * by LSN. See journal.h for the format and the durability argument.
 */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#define FRAME_HEADER 8

struct pg_journal {
	char *prefix;
	int fd;
	bool sync_full;
	bool broken; /* a failed append could not be undone: start a new segment */
	uint64_t bytes;
	uint8_t *buf; /* header + payload, reused so a frame is one write */
	size_t bufcap;
};

static void put_u32le(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32le(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int journal_segment_open(struct pg_journal *j, uint64_t first_lsn)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s.jnl.%020" PRIu64, j->prefix, first_lsn);
	/*
	 * A segment of this name can only exist without an intact record (any
	 * record in it would have an LSN >= first_lsn, and first_lsn is past
	 * every LSN replay saw), e.g. a torn first frame after a power loss:
	 * start it empty, or new frames would sit behind the torn one.
	 */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0) {
		return -1;
	}
	if (j->fd >= 0) {
		if (j->sync_full) {
			fdatasync(j->fd);
		}
		close(j->fd);
	}
	j->fd = fd;
	j->bytes = 0;
	/* Make the new file's name durable too when every append must be. */
	if (j->sync_full) {
		char dir[4096], *slash;
		int dfd;
		snprintf(dir, sizeof(dir), "%s", path);
		slash = strrchr(dir, '/');
		if (slash) {
			*slash = '\0';
		} else {
			strcpy(dir, ".");
		}
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	return 0;
}

int pg_journal_open(const char *prefix, uint64_t first_lsn, bool sync_full, struct pg_journal **out,
                    char *err, size_t errlen)
{
	struct pg_journal *j = calloc(1, sizeof(*j));

	if (j == NULL || (j->prefix = strdup(prefix)) == NULL) {
		free(j);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	j->fd = -1;
	j->sync_full = sync_full;
	if (journal_segment_open(j, first_lsn) != 0) {
		snprintf(err, errlen, "cannot create journal segment %s.jnl.*: %s", prefix,
		         strerror(errno));
		free(j->prefix);
		free(j);
		return -1;
	}
	*out = j;
	return 0;
}

void pg_journal_close(struct pg_journal *j)
{
	if (j == NULL) {
		return;
	}
	if (j->fd >= 0) {
		if (j->sync_full) {
			fdatasync(j->fd);
		}
		close(j->fd);
	}
	free(j->buf);
	free(j->prefix);
	free(j);
}

int pg_journal_append(struct pg_journal *j, uint64_t lsn, const uint8_t *payload, size_t len)
{
	size_t need = FRAME_HEADER + len;
	ssize_t n;

	if (len > PG_JOURNAL_RECORD_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	if (((j->bytes + need > PG_JOURNAL_SEGMENT_MAX && j->bytes > 0) || j->broken) &&
	    journal_segment_open(j, lsn) != 0) {
		return -1;
	}
	j->broken = false;
	if (need > j->bufcap) {
		size_t cap = need < 4096 ? 4096 : need * 2;
		uint8_t *nb = realloc(j->buf, cap);
		if (nb == NULL) {
			errno = ENOMEM;
			return -1;
		}
		j->buf = nb;
		j->bufcap = cap;
	}
	put_u32le(j->buf, (uint32_t)len);
	put_u32le(j->buf + 4, (uint32_t)crc32(0L, payload, (uInt)len));
	memcpy(j->buf + FRAME_HEADER, payload, len);
	do {
		n = write(j->fd, j->buf, need);
	} while (n < 0 && errno == EINTR);
	if (n != (ssize_t)need || (j->sync_full && fdatasync(j->fd) != 0)) {
		int saved = n >= 0 && n != (ssize_t)need ? ENOSPC : errno;
		/*
		 * The caller refuses this record, so it must not come back at
		 * replay, and a torn frame would hide every later frame of the
		 * segment: cut the file back to the last good frame, or failing
		 * that, write the next record to a new segment.
		 */
		if (ftruncate(j->fd, (off_t)j->bytes) != 0) {
			j->broken = true;
		}
		errno = saved;
		return -1;
	}
	j->bytes += need;
	return 0;
}

uint64_t pg_journal_segment_bytes(const struct pg_journal *j)
{
	return j->bytes;
}

/* Sorted segment paths under prefix (glob sorts; names are zero-padded). */
static int journal_list(const char *prefix, glob_t *g)
{
	char pattern[4096];
	int rc;

	snprintf(pattern, sizeof(pattern), "%s.jnl.[0-9]*", prefix);
	rc = glob(pattern, 0, NULL, g);
	if (rc == GLOB_NOMATCH) {
		g->gl_pathc = 0;
		return 0;
	}
	return rc == 0 ? 0 : -1;
}

static int journal_replay_file(const char *path, int (*fn)(const uint8_t *, size_t, void *),
                               void *ud, int *torn, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	uint8_t hdr[FRAME_HEADER], *buf = NULL;
	size_t cap = 0;
	int rc = 0;

	if (f == NULL) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		size_t got = fread(hdr, 1, FRAME_HEADER, f);
		uint32_t len, crc;
		if (got == 0 && feof(f)) {
			break;
		}
		if (got != FRAME_HEADER) {
			(*torn)++;
			break;
		}
		len = get_u32le(hdr);
		crc = get_u32le(hdr + 4);
		if (len > PG_JOURNAL_RECORD_MAX) {
			(*torn)++;
			break;
		}
		if (len > cap) {
			uint8_t *nb = realloc(buf, len ? len : 1);
			if (nb == NULL) {
				snprintf(err, errlen, "out of memory replaying %s", path);
				rc = -1;
				break;
			}
			buf = nb;
			cap = len;
		}
		if (fread(buf, 1, len, f) != len || (uint32_t)crc32(0L, buf, len) != crc) {
			(*torn)++;
			break;
		}
		rc = fn(buf, len, ud);
		if (rc != 0) {
			break;
		}
	}
	free(buf);
	fclose(f);
	return rc;
}

int pg_journal_replay(const char *prefix, int (*fn)(const uint8_t *payload, size_t len, void *ud),
                      void *ud, int *torn, char *err, size_t errlen)
{
	glob_t g;
	int dummy = 0, rc = 0;
	size_t i;

	if (torn == NULL) {
		torn = &dummy;
	}
	*torn = 0;
	if (journal_list(prefix, &g) != 0) {
		snprintf(err, errlen, "cannot list journal segments %s.jnl.*", prefix);
		return -1;
	}
	for (i = 0; i < g.gl_pathc && rc == 0; i++) {
		rc = journal_replay_file(g.gl_pathv[i], fn, ud, torn, err, errlen);
	}
	if (g.gl_pathc > 0) {
		globfree(&g);
	}
	return rc;
}

static uint64_t journal_first_lsn(const char *path)
{
	const char *dot = strrchr(path, '.');

	return dot ? strtoull(dot + 1, NULL, 10) : 0;
}

int pg_journal_trim(const char *prefix, uint64_t applied_lsn)
{
	glob_t g;
	size_t i;
	int removed = 0;

	if (journal_list(prefix, &g) != 0 || g.gl_pathc == 0) {
		return 0;
	}
	for (i = 0; i + 1 < g.gl_pathc; i++) {
		uint64_t next_first = journal_first_lsn(g.gl_pathv[i + 1]);
		if (next_first == 0 || next_first - 1 > applied_lsn) {
			break;
		}
		if (unlink(g.gl_pathv[i]) == 0) {
			removed++;
		}
	}
	globfree(&g);
	return removed;
}
