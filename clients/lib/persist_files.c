/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The default persistence (persist_files.h): the cursor, the last winning
 * address and the outbox as files in a directory the app names.
 *
 * Durability: every write goes to a dot-named temporary file in the same
 * directory, is fsync'd, renamed over its final name, and the directory is
 * fsync'd; an op returns 0 only after all of that. A crash at any instant
 * leaves the old file or the new one; the only debris is a temporary
 * file, which open deletes (every name starting with '.' is one).
 *
 * Outbox files are named <n>-<hex>: n, 20 zero-padded digits, orders them
 * (open continues after the highest n on disk), and hex is the msg_id
 * hex-encoded (its first 112 bytes, to stay under NAME_MAX), so no byte of
 * a msg_id ever reaches a path as itself. The file's contents are the
 * authority: a header (magic, lengths, an FNV-1a checksum), the msg_id and
 * the record. A file that fails to parse is skipped, never fatal, and left
 * where it is for a human to look at.
 *
 * In memory: a uthash map msg_id -> (n, file name) of the valid outbox
 * files, built on open, so outbox_del is one lookup. A `lock` file held
 * with flock(2) keeps a second client (in this process or another) out of
 * the directory while this one has it open.
 *
 * One thread at a time (the client's); the state is freed by close.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <uthash.h>

#include "persist_files.h"

#define PF_MAGIC "PGOUTBX1"
#define PF_HEADER 24 /* magic 8, msg_id length 4, record length 4, checksum 8 */
#define PF_MSG_ID_MAX 128
#define PF_REC_MAX (1024 * 1024)
#define PF_NAME_HEX_BYTES 112 /* 20 + 1 + 224 characters: under NAME_MAX (255) */
#define PF_NAME_LEN (20 + 1 + 2 * PF_NAME_HEX_BYTES)
#define PF_SERVER_MAX 4096

struct pf_entry {
	char *msg_id; /* the key, NUL-terminated, 1..128 bytes */
	uint64_t n;
	char name[PF_NAME_LEN + 1];
	UT_hash_handle hh;
};

struct pf_state {
	int dirfd, outfd, lockfd;
	uint64_t next_n;
	struct pf_entry *map;
};

/* ---- small helpers ---- */

static void pf_put_le(unsigned char *p, uint64_t v, int bytes)
{
	int i;

	for (i = 0; i < bytes; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t pf_get_le(const unsigned char *p, int bytes)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint64_t pf_fnv1a(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t pf_checksum(const char *msg_id, size_t id_len, const void *rec, size_t len)
{
	uint64_t h = pf_fnv1a(0xcbf29ce484222325ULL, msg_id, id_len);
	return pf_fnv1a(h, rec, len);
}

static void pf_outbox_name(char out[PF_NAME_LEN + 1], uint64_t n, const char *msg_id)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, len = strlen(msg_id);
	int k = snprintf(out, PF_NAME_LEN + 1, "%020" PRIu64 "-", n);

	if (len > PF_NAME_HEX_BYTES)
		len = PF_NAME_HEX_BYTES;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)msg_id[i];
		out[k++] = hex[c >> 4];
		out[k++] = hex[c & 15];
	}
	out[k] = '\0';
}

/* Writes everything, retrying short writes and EINTR: 0 or -1 (errno set). */
static int pf_write_all(int fd, struct iovec *iov, int iovcnt)
{
	while (iovcnt > 0) {
		ssize_t n = writev(fd, iov, iovcnt);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/*
 * Replaces dfd/name with the bytes of iov, atomically and durably: tmp, fsync, rename,
 * fsync of the directory. 0 or PIGEON_EPERSIST (the tmp file removed, name untouched).
 * iov is consumed.
 */
static int pf_write_atomic(int dfd, const char *tmp, const char *name, struct iovec *iov,
                           int iovcnt)
{
	int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		return PIGEON_EPERSIST;
	if (pf_write_all(fd, iov, iovcnt) != 0 || fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (renameat(dfd, tmp, dfd, name) != 0)
		goto fail;
	if (fsync(dfd) != 0)
		return PIGEON_EPERSIST; /* renamed, but not known durable: say so */
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlinkat(dfd, tmp, 0);
	return PIGEON_EPERSIST;
}

/*
 * Reads dfd/name whole when it is at most max bytes: *out (malloc'd, NUL-terminated, the
 * caller's) and *len. 0; 1 when it does not exist; PIGEON_EPERSIST on an I/O error; 2 when
 * it is too large or not a regular file.
 */
static int pf_read_file(int dfd, const char *name, size_t max, char **out, size_t *len)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int rc = PIGEON_EPERSIST, fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return errno == ENOENT ? 1 : errno == ELOOP ? 2 : PIGEON_EPERSIST;
	if (fstat(fd, &st) != 0)
		goto out;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		rc = 2;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		rc = PIGEON_ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto out;
		if (n == 0)
			break; /* shrank meanwhile: what was read is what there is */
		got += (size_t)n;
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

/*
 * Parses an outbox file's bytes: 0 with msg_id (a NUL-terminated copy in id) and the record
 * (pointing into buf), or -1 when it is not a whole, intact record.
 */
static int pf_parse_record(const char *buf, size_t len, char id[PF_MSG_ID_MAX + 1],
                           const void **rec, size_t *rec_len)
{
	const unsigned char *p = (const unsigned char *)buf;
	uint64_t id_len, r_len;

	if (len < PF_HEADER || memcmp(p, PF_MAGIC, 8) != 0)
		return -1;
	id_len = pf_get_le(p + 8, 4);
	r_len = pf_get_le(p + 12, 4);
	if (id_len < 1 || id_len > PF_MSG_ID_MAX || r_len > PF_REC_MAX ||
	    PF_HEADER + id_len + r_len != len)
		return -1;
	if (memchr(p + PF_HEADER, '\0', id_len) != NULL)
		return -1;
	if (pf_get_le(p + 16, 8) !=
	    pf_checksum(buf + PF_HEADER, id_len, p + PF_HEADER + id_len, r_len))
		return -1;
	memcpy(id, p + PF_HEADER, id_len);
	id[id_len] = '\0';
	*rec = p + PF_HEADER + id_len;
	*rec_len = r_len;
	return 0;
}

/* ---- cursor and server ---- */

static int pf_load_cursor(void *ud, uint64_t *seq)
{
	struct pf_state *s = ud;
	char *buf = NULL, *end;
	size_t len;
	unsigned long long v;
	int rc = pf_read_file(s->dirfd, "cursor", 64, &buf, &len);

	*seq = 0;
	if (rc < 0)
		return rc;
	if (rc > 0)
		return 0; /* none (or not a file we wrote): start from 0 */
	/* Only what save_cursor writes counts: digits and a newline. Anything else was not
	 * written by us (a rename is atomic): treated as no cursor. */
	errno = 0;
	if (len >= 2 && buf[0] >= '0' && buf[0] <= '9' && buf[len - 1] == '\n') {
		v = strtoull(buf, &end, 10);
		if (errno == 0 && end == buf + len - 1)
			*seq = v;
	}
	free(buf);
	return 0;
}

static int pf_save_cursor(void *ud, uint64_t seq)
{
	struct pf_state *s = ud;
	char line[32];
	int n = snprintf(line, sizeof(line), "%" PRIu64 "\n", seq);
	struct iovec iov = {line, (size_t)n};

	return pf_write_atomic(s->dirfd, ".cursor.tmp", "cursor", &iov, 1);
}

static int pf_load_server(void *ud, char *out, size_t outlen)
{
	struct pf_state *s = ud;
	char *buf = NULL;
	size_t len;
	int rc = pf_read_file(s->dirfd, "server", PF_SERVER_MAX + 1, &buf, &len);

	if (outlen > 0)
		out[0] = '\0';
	if (rc < 0)
		return rc;
	if (rc > 0)
		return 0;
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	/* One line that fits whole; a truncated address would be a wrong one. */
	if (len < outlen && strchr(buf, '\n') == NULL && strlen(buf) == len)
		memcpy(out, buf, len + 1);
	free(buf);
	return 0;
}

static int pf_save_server(void *ud, const char *server)
{
	struct pf_state *s = ud;
	size_t len = strlen(server);
	struct iovec iov[2] = {{(void *)server, len}, {"\n", 1}};

	if (len > PF_SERVER_MAX || strchr(server, '\n') != NULL)
		return PIGEON_EINVAL;
	return pf_write_atomic(s->dirfd, ".server.tmp", "server", iov, 2);
}

/* ---- outbox ---- */

static int pf_outbox_put(void *ud, const char *msg_id, const void *rec, size_t len)
{
	struct pf_state *s = ud;
	struct pf_entry *e;
	unsigned char head[PF_HEADER];
	size_t id_len = msg_id ? strlen(msg_id) : 0;
	struct iovec iov[3];
	bool fresh = false;
	int rc;

	if (id_len < 1 || id_len > PF_MSG_ID_MAX || len > PF_REC_MAX || (rec == NULL && len > 0))
		return PIGEON_EINVAL;
	HASH_FIND(hh, s->map, msg_id, id_len, e);
	if (e == NULL) {
		/* A new msg_id takes the next n; a put again of one replaces its file in place,
		 * keeping its place in the order. */
		e = calloc(1, sizeof(*e));
		if (e == NULL || (e->msg_id = strdup(msg_id)) == NULL) {
			free(e);
			return PIGEON_ENOMEM;
		}
		e->n = s->next_n++;
		pf_outbox_name(e->name, e->n, msg_id);
		fresh = true;
	}
	memcpy(head, PF_MAGIC, 8);
	pf_put_le(head + 8, id_len, 4);
	pf_put_le(head + 12, len, 4);
	pf_put_le(head + 16, pf_checksum(msg_id, id_len, rec, len), 8);
	iov[0] = (struct iovec){head, sizeof(head)};
	iov[1] = (struct iovec){(void *)msg_id, id_len};
	iov[2] = (struct iovec){(void *)rec, len};
	rc = pf_write_atomic(s->outfd, ".put.tmp", e->name, iov, 3);
	if (fresh) {
		if (rc == 0) {
			HASH_ADD_KEYPTR(hh, s->map, e->msg_id, id_len, e);
		} else {
			free(e->msg_id);
			free(e);
		}
	}
	return rc;
}

static int pf_outbox_del(void *ud, const char *msg_id)
{
	struct pf_state *s = ud;
	struct pf_entry *e;

	if (msg_id == NULL)
		return PIGEON_EINVAL;
	HASH_FIND(hh, s->map, msg_id, strlen(msg_id), e);
	if (e == NULL)
		return 0; /* not there: already deleted */
	if (unlinkat(s->outfd, e->name, 0) != 0 && errno != ENOENT)
		return PIGEON_EPERSIST;
	HASH_DEL(s->map, e);
	free(e->msg_id);
	free(e);
	return fsync(s->outfd) == 0 ? 0 : PIGEON_EPERSIST;
}

struct pf_snap {
	uint64_t n;
	char name[PF_NAME_LEN + 1];
};

static int pf_snap_cmp(const void *a, const void *b)
{
	const struct pf_snap *x = a, *y = b;
	return x->n < y->n ? -1 : x->n > y->n;
}

static int pf_outbox_load(void *ud,
                          int (*each)(void *arg, const char *msg_id, const void *rec, size_t len),
                          void *arg)
{
	struct pf_state *s = ud;
	struct pf_entry *e, *tmp;
	struct pf_snap *snap;
	size_t n = HASH_COUNT(s->map), i = 0;

	/* A snapshot of the names in n order, so each() may put and delete freely: a record it
	 * deleted is not found and skipped; one it put is not visited. */
	snap = malloc((n ? n : 1) * sizeof(*snap));
	if (snap == NULL)
		return PIGEON_ENOMEM;
	HASH_ITER(hh, s->map, e, tmp)
	{
		snap[i].n = e->n;
		memcpy(snap[i].name, e->name, sizeof(e->name));
		i++;
	}
	qsort(snap, n, sizeof(*snap), pf_snap_cmp);
	for (i = 0; i < n; i++) {
		char *buf = NULL, id[PF_MSG_ID_MAX + 1];
		const void *rec;
		size_t len, rec_len;
		int stop = 0;

		if (pf_read_file(s->outfd, snap[i].name, PF_HEADER + PF_MSG_ID_MAX + PF_REC_MAX,
		                 &buf, &len) != 0)
			continue;
		if (pf_parse_record(buf, len, id, &rec, &rec_len) == 0)
			stop = each(arg, id, rec, rec_len);
		free(buf);
		if (stop)
			break;
	}
	free(snap);
	return 0;
}

static void pf_close(void *ud)
{
	struct pf_state *s = ud;
	struct pf_entry *e, *tmp;

	if (s == NULL)
		return;
	HASH_ITER(hh, s->map, e, tmp)
	{
		HASH_DEL(s->map, e);
		free(e->msg_id);
		free(e);
	}
	if (s->outfd >= 0)
		close(s->outfd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	if (s->lockfd >= 0)
		close(s->lockfd); /* releases the flock */
	free(s);
}

const struct pigeon_persist_ops pgc_persist_files_ops = {
    .load_cursor = pf_load_cursor,
    .save_cursor = pf_save_cursor,
    .outbox_put = pf_outbox_put,
    .outbox_del = pf_outbox_del,
    .outbox_load = pf_outbox_load,
    .load_server = pf_load_server,
    .save_server = pf_save_server,
    .close = pf_close,
};

/* ---- open ---- */

/* mkdir -p: 0, or -1 with errno. */
static int pf_mkdirs(const char *dir)
{
	char *p, *path = strdup(dir);
	int rc = 0;

	if (path == NULL) {
		errno = ENOMEM;
		return -1;
	}
	for (p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST) {
			rc = -1;
			goto out;
		}
		*p = '/';
	}
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		rc = -1;
out:
	free(path);
	return rc;
}

/* Whether name is <20 digits>-..., and its n. */
static bool pf_parse_name(const char *name, uint64_t *n)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 20; i++) {
		if (name[i] < '0' || name[i] > '9')
			return false;
		if (v > (UINT64_MAX - (uint64_t)(name[i] - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	if (name[20] != '-')
		return false;
	*n = v;
	return true;
}

/* Reads the outbox directory into s->map and s->next_n, deleting temporary files. */
static int pf_scan_outbox(struct pf_state *s)
{
	struct dirent *d;
	DIR *dir;
	int fd = dup(s->outfd);
	bool have = false;
	uint64_t max_n = 0;

	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return PIGEON_EPERSIST;
	}
	while ((d = readdir(dir)) != NULL) {
		char *buf = NULL, id[PF_MSG_ID_MAX + 1];
		const void *rec;
		size_t len, rec_len, id_len;
		struct pf_entry *e;
		uint64_t n;

		if (d->d_name[0] == '.') {
			if (strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0)
				unlinkat(s->outfd, d->d_name, 0); /* a write a crash interrupted */
			continue;
		}
		if (strlen(d->d_name) > PF_NAME_LEN || !pf_parse_name(d->d_name, &n))
			continue; /* not ours */
		/* Every n on disk is taken, valid file or not: never reuse a name. */
		if (!have || n > max_n)
			max_n = n;
		have = true;
		if (pf_read_file(s->outfd, d->d_name, PF_HEADER + PF_MSG_ID_MAX + PF_REC_MAX, &buf,
		                 &len) != 0)
			continue;
		if (pf_parse_record(buf, len, id, &rec, &rec_len) != 0) {
			free(buf);
			continue;
		}
		free(buf);
		id_len = strlen(id);
		HASH_FIND(hh, s->map, id, id_len, e);
		if (e != NULL) {
			/* Two files for one msg_id (not something put writes): keep the older. */
			if (e->n > n && strlen(d->d_name) < sizeof(e->name)) {
				e->n = n;
				memcpy(e->name, d->d_name, strlen(d->d_name) + 1);
			}
			continue;
		}
		e = calloc(1, sizeof(*e));
		if (e == NULL || (e->msg_id = strdup(id)) == NULL) {
			free(e);
			closedir(dir);
			return PIGEON_ENOMEM;
		}
		e->n = n;
		/* Our names always fit (pf_name); a longer one is not ours to track. */
		if (strlen(d->d_name) >= sizeof(e->name)) {
			free(e->msg_id);
			free(e);
			continue;
		}
		memcpy(e->name, d->d_name, strlen(d->d_name) + 1);
		HASH_ADD_KEYPTR(hh, s->map, e->msg_id, id_len, e);
	}
	closedir(dir);
	if (have && max_n == UINT64_MAX)
		return PIGEON_EPERSIST; /* no n left (only a hand-made file can do this) */
	s->next_n = have ? max_n + 1 : 1;
	return 0;
}

int pgc_persist_files_open(const char *dir, void **ud, char *err, size_t errlen)
{
	struct pf_state *s;
	const char *what = NULL;
	int rc = PIGEON_EPERSIST, saved;

	*ud = NULL;
	if (dir == NULL || dir[0] == '\0') {
		snprintf(err, errlen, "state_dir: empty");
		return PIGEON_EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		snprintf(err, errlen, "state_dir %s: out of memory", dir);
		return PIGEON_ENOMEM;
	}
	s->dirfd = s->outfd = s->lockfd = -1;
	if (pf_mkdirs(dir) != 0) {
		what = "cannot create it";
		goto fail;
	}
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		what = "cannot open it";
		goto fail;
	}
	s->lockfd = openat(s->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lockfd < 0) {
		what = "cannot write in it";
		goto fail;
	}
	if (flock(s->lockfd, LOCK_EX | LOCK_NB) != 0) {
		what = errno == EWOULDBLOCK ? "in use by another client" : "cannot lock it";
		if (errno == EWOULDBLOCK)
			errno = 0;
		goto fail;
	}
	if (mkdirat(s->dirfd, "outbox", 0700) == 0) {
		if (fsync(s->dirfd) != 0) {
			what = "cannot sync it";
			goto fail;
		}
	} else if (errno != EEXIST) {
		what = "cannot create outbox/";
		goto fail;
	}
	s->outfd = openat(s->dirfd, "outbox", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->outfd < 0) {
		what = "cannot open outbox/";
		goto fail;
	}
	unlinkat(s->dirfd, ".cursor.tmp", 0);
	unlinkat(s->dirfd, ".server.tmp", 0);
	rc = pf_scan_outbox(s);
	if (rc != 0) {
		what = rc == PIGEON_ENOMEM ? "out of memory" : "cannot read outbox/";
		goto fail;
	}
	*ud = s;
	return 0;
fail:
	saved = errno;
	if (saved != 0 && rc != PIGEON_ENOMEM)
		snprintf(err, errlen, "state_dir %s: %s: %s", dir, what, strerror(saved));
	else
		snprintf(err, errlen, "state_dir %s: %s", dir, what);
	pf_close(s);
	return rc;
}
