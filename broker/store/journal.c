/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Journal segments: append with one write(2), replay with CRC checks, trim
 * by LSN. See journal.h for the format and the durability argument.
 */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
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

/* The segment files of a prefix, oldest first. */
struct journal_segs {
	char **paths;
	uint64_t *first; /* each one's first LSN (from its name) */
	size_t n;
};

static void journal_segs_free(struct journal_segs *g)
{
	size_t i;

	for (i = 0; i < g->n; i++) {
		free(g->paths[i]);
	}
	free(g->paths);
	free(g->first);
	memset(g, 0, sizeof(*g));
}

/* The LSN in a segment name's tail ("<20 digits>"), or false if it is not one. */
static bool journal_name_lsn(const char *tail, uint64_t *lsn)
{
	const char *p;

	if (*tail == '\0') {
		return false;
	}
	for (p = tail; *p; p++) {
		if (*p < '0' || *p > '9') {
			return false;
		}
	}
	*lsn = strtoull(tail, NULL, 10);
	return true;
}

static int journal_segs_add(struct journal_segs *g, size_t *cap, const char *dir, const char *name,
                            uint64_t lsn)
{
	size_t len = strlen(dir) + 1 + strlen(name) + 1;
	char *path;

	if (g->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		char **np = realloc(g->paths, ncap * sizeof(*np));
		uint64_t *nf;
		if (np == NULL) {
			return -1;
		}
		g->paths = np;
		nf = realloc(g->first, ncap * sizeof(*nf));
		if (nf == NULL) {
			return -1;
		}
		g->first = nf;
		*cap = ncap;
	}
	path = malloc(len);
	if (path == NULL) {
		return -1;
	}
	snprintf(path, len, "%s/%s", dir, name);
	g->paths[g->n] = path;
	g->first[g->n] = lsn;
	g->n++;
	return 0;
}

/*
 * Lists the segments of prefix by reading its directory (names are taken
 * literally: a prefix may hold any character). 0, or -1 with errno set and
 * *g empty.
 */
static int journal_list(const char *prefix, struct journal_segs *g)
{
	char dir[4096];
	const char *base, *slash = strrchr(prefix, '/');
	size_t baselen, cap = 0, i, k;
	struct dirent *de;
	DIR *d;

	memset(g, 0, sizeof(*g));
	if (slash == NULL) {
		strcpy(dir, ".");
		base = prefix;
	} else {
		size_t dl = slash == prefix ? 1 : (size_t)(slash - prefix);
		if (dl >= sizeof(dir)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(dir, prefix, dl);
		dir[dl] = '\0';
		base = slash + 1;
	}
	baselen = strlen(base);
	d = opendir(dir);
	if (d == NULL) {
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		uint64_t lsn;
		if (strncmp(de->d_name, base, baselen) != 0 ||
		    strncmp(de->d_name + baselen, ".jnl.", 5) != 0 ||
		    !journal_name_lsn(de->d_name + baselen + 5, &lsn)) {
			continue;
		}
		if (journal_segs_add(g, &cap, dir, de->d_name, lsn) != 0) {
			closedir(d);
			journal_segs_free(g);
			errno = ENOMEM;
			return -1;
		}
	}
	closedir(d);
	/* Insertion sort by first LSN: a journal has a handful of segments. */
	for (i = 1; i < g->n; i++) {
		for (k = i; k > 0 && g->first[k - 1] > g->first[k]; k--) {
			char *tp = g->paths[k];
			uint64_t tf = g->first[k];
			g->paths[k] = g->paths[k - 1];
			g->first[k] = g->first[k - 1];
			g->paths[k - 1] = tp;
			g->first[k - 1] = tf;
		}
	}
	return 0;
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
	struct journal_segs g;
	int dummy = 0, rc = 0;
	size_t i;

	if (torn == NULL) {
		torn = &dummy;
	}
	*torn = 0;
	if (journal_list(prefix, &g) != 0) {
		snprintf(err, errlen, "cannot list journal segments %s.jnl.*: %s", prefix,
		         strerror(errno));
		return -1;
	}
	for (i = 0; i < g.n && rc == 0; i++) {
		rc = journal_replay_file(g.paths[i], fn, ud, torn, err, errlen);
	}
	journal_segs_free(&g);
	return rc;
}

int pg_journal_trim(const char *prefix, uint64_t applied_lsn)
{
	struct journal_segs g;
	size_t i;
	int removed = 0;

	if (journal_list(prefix, &g) != 0) {
		return 0;
	}
	for (i = 0; i + 1 < g.n; i++) {
		uint64_t next_first = g.first[i + 1];
		if (next_first == 0 || next_first - 1 > applied_lsn) {
			break;
		}
		if (unlink(g.paths[i]) == 0) {
			removed++;
		}
	}
	journal_segs_free(&g);
	return removed;
}
