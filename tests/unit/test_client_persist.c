/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The default persistence (clients/lib/persist_files.h): the cursor, the
 * server and the outbox survive a reopen; the outbox keeps put order,
 * deletes by msg_id and keeps any msg_id's bytes out of file names;
 * debris of an interrupted write is ignored; a directory that cannot be
 * used, a full disk and a second opener are errors, never crashes.
 *
 * Tests run as root, so permissions cannot make a directory unusable: a
 * regular file in its place, /proc and RLIMIT_FSIZE do instead.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "persist_files.h"

static const struct pigeon_persist_ops *ops = &pgc_persist_files_ops;
static char root[64];

static void dir_new(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", root, name);
}

static void *open_ok(const char *dir)
{
	void *ud = NULL;
	char err[256] = "";
	int rc = pgc_persist_files_open(dir, &ud, err, sizeof(err));

	if (rc != 0)
		fprintf(stderr, "  open %s: %d %s\n", dir, rc, err);
	CHECK_EQ(rc, 0);
	return ud;
}

/* What outbox_load hands over, collected. */
struct seen {
	int n;
	char ids[16][200];
	char recs[16][64];
	size_t lens[16];
	int stop_after; /* 0: never */
};

static int collect(void *arg, const char *msg_id, const void *rec, size_t len)
{
	struct seen *s = arg;

	if (s->n < 16) {
		snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", msg_id);
		memcpy(s->recs[s->n], rec, len < 64 ? len : 64);
		s->lens[s->n] = len;
	}
	s->n++;
	return s->stop_after != 0 && s->n >= s->stop_after;
}

static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return n;
}

static void test_cursor_and_server_round_trip(void)
{
	char dir[128], buf[64];
	uint64_t seq = 99;
	void *ud;

	dir_new(dir, sizeof(dir), "a/b/c"); /* created with its parents */
	ud = open_ok(dir);
	CHECK_EQ(ops->load_cursor(ud, &seq), 0);
	CHECK_EQ(seq, 0); /* none yet */
	CHECK_EQ(ops->load_server(ud, buf, sizeof(buf)), 0);
	CHECK_STR(buf, "");
	CHECK_EQ(ops->save_cursor(ud, 41), 0);
	CHECK_EQ(ops->save_cursor(ud, UINT64_MAX), 0);
	CHECK_EQ(ops->save_server(ud, "tcp://10.0.0.2:1883"), 0);
	CHECK_EQ(ops->save_server(ud, "bad\nline"), PIGEON_EINVAL);
	ops->close(ud);

	ud = open_ok(dir);
	CHECK_EQ(ops->load_cursor(ud, &seq), 0);
	CHECK(seq == UINT64_MAX);
	CHECK_EQ(ops->load_server(ud, buf, sizeof(buf)), 0);
	CHECK_STR(buf, "tcp://10.0.0.2:1883");
	CHECK_EQ(ops->load_server(ud, buf, 5), 0); /* does not fit: none, not a piece */
	CHECK_STR(buf, "");
	ops->close(ud);
}

static void test_corrupt_cursor_reads_as_none(void)
{
	char dir[128], path[192];
	uint64_t seq = 7;
	void *ud;
	FILE *f;

	dir_new(dir, sizeof(dir), "corrupt-cursor");
	ud = open_ok(dir);
	ops->close(ud);
	snprintf(path, sizeof(path), "%s/cursor", dir);
	f = fopen(path, "w");
	fputs("12x\n", f);
	fclose(f);
	ud = open_ok(dir);
	CHECK_EQ(ops->load_cursor(ud, &seq), 0);
	CHECK_EQ(seq, 0);
	ops->close(ud);
}

static void test_outbox_order_and_delete_across_reopen(void)
{
	char dir[128];
	struct seen s = {0};
	void *ud;

	dir_new(dir, sizeof(dir), "outbox-order");
	ud = open_ok(dir);
	CHECK_EQ(ops->outbox_put(ud, "m-3", "three", 5), 0);
	CHECK_EQ(ops->outbox_put(ud, "m-1", "one", 3), 0);
	CHECK_EQ(ops->outbox_put(ud, "m-2", "two", 3), 0);
	CHECK_EQ(ops->outbox_put(ud, "m-empty", "", 0), 0);
	CHECK_EQ(ops->outbox_put(ud, "m-1", "ONE!", 4), 0); /* a put again keeps its place */
	CHECK_EQ(ops->outbox_del(ud, "m-2"), 0);
	CHECK_EQ(ops->outbox_del(ud, "never-put"), 0);
	ops->close(ud);

	ud = open_ok(dir);
	CHECK_EQ(ops->outbox_load(ud, collect, &s), 0);
	CHECK_EQ(s.n, 3);
	CHECK_STR(s.ids[0], "m-3");
	CHECK_EQ(s.lens[0], 5);
	CHECK_MEM(s.recs[0], "three", 5);
	CHECK_STR(s.ids[1], "m-1");
	CHECK_EQ(s.lens[1], 4);
	CHECK_MEM(s.recs[1], "ONE!", 4);
	CHECK_STR(s.ids[2], "m-empty");
	CHECK_EQ(s.lens[2], 0);

	/* New puts go after the ones found on open, even after a delete of the last. */
	CHECK_EQ(ops->outbox_del(ud, "m-empty"), 0);
	CHECK_EQ(ops->outbox_put(ud, "m-4", "four", 4), 0);
	ops->close(ud);
	ud = open_ok(dir);
	CHECK_EQ(ops->outbox_put(ud, "m-5", "five", 4), 0);
	memset(&s, 0, sizeof(s));
	CHECK_EQ(ops->outbox_load(ud, collect, &s), 0);
	CHECK_EQ(s.n, 4);
	CHECK_STR(s.ids[0], "m-3");
	CHECK_STR(s.ids[1], "m-1");
	CHECK_STR(s.ids[2], "m-4");
	CHECK_STR(s.ids[3], "m-5");

	/* each() returning non-zero stops the walk. */
	memset(&s, 0, sizeof(s));
	s.stop_after = 2;
	CHECK_EQ(ops->outbox_load(ud, collect, &s), 0);
	CHECK_EQ(s.n, 2);

	CHECK_EQ(ops->outbox_del(ud, "m-3"), 0);
	CHECK_EQ(ops->outbox_del(ud, "m-1"), 0);
	CHECK_EQ(ops->outbox_del(ud, "m-4"), 0);
	CHECK_EQ(ops->outbox_del(ud, "m-5"), 0);
	ops->close(ud);
	char out[160];
	snprintf(out, sizeof(out), "%s/outbox", dir);
	CHECK_EQ(count_files(out), 0);
}

/* each() that deletes the record it is handed, as the engine may. */
static void *del_ud;
static int delete_each(void *arg, const char *msg_id, const void *rec, size_t len)
{
	(*(int *)arg)++;
	return ops->outbox_del(del_ud, msg_id) != 0;
}

static void test_load_callback_may_delete(void)
{
	char dir[128];
	int n = 0;
	struct seen s = {0};

	dir_new(dir, sizeof(dir), "outbox-del-in-load");
	del_ud = open_ok(dir);
	CHECK_EQ(ops->outbox_put(del_ud, "a", "1", 1), 0);
	CHECK_EQ(ops->outbox_put(del_ud, "b", "2", 1), 0);
	CHECK_EQ(ops->outbox_load(del_ud, delete_each, &n), 0);
	CHECK_EQ(n, 2);
	CHECK_EQ(ops->outbox_load(del_ud, collect, &s), 0);
	CHECK_EQ(s.n, 0);
	ops->close(del_ud);
}

static void test_hostile_msg_ids_stay_out_of_paths(void)
{
	char dir[128], out[160], longid[129];
	struct seen s = {0};
	void *ud;
	DIR *d;
	struct dirent *e;
	int bad = 0;

	memset(longid, 0xff, 128);
	longid[128] = '\0';
	dir_new(dir, sizeof(dir), "hostile");
	ud = open_ok(dir);
	CHECK_EQ(ops->outbox_put(ud, "../../escape", "x", 1), 0);
	CHECK_EQ(ops->outbox_put(ud, "a/b\nc", "y", 1), 0);
	CHECK_EQ(ops->outbox_put(ud, "..", "z", 1), 0);
	CHECK_EQ(ops->outbox_put(ud, longid, "w", 1), 0); /* 128 bytes, none printable */
	CHECK_EQ(ops->outbox_put(ud, "", "v", 1), PIGEON_EINVAL);
	char toolong[130];
	memset(toolong, 'a', 129);
	toolong[129] = '\0';
	CHECK_EQ(ops->outbox_put(ud, toolong, "v", 1), PIGEON_EINVAL);
	ops->close(ud);

	/* Nothing escaped (../../escape from outbox/ would be <root>/escape); the outbox holds
	 * four files named with digits, '-' and lowercase hex only. */
	snprintf(out, sizeof(out), "%s/escape", root);
	CHECK(access(out, F_OK) != 0);
	snprintf(out, sizeof(out), "%s/outbox", dir);
	CHECK_EQ(count_files(out), 4);
	d = opendir(out);
	while (d != NULL && (e = readdir(d)) != NULL) {
		const char *p;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		for (p = e->d_name; *p; p++)
			bad += !((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || *p == '-');
		bad += strlen(e->d_name) > 255;
	}
	if (d != NULL)
		closedir(d);
	CHECK_EQ(bad, 0);

	ud = open_ok(dir);
	CHECK_EQ(ops->outbox_load(ud, collect, &s), 0);
	CHECK_EQ(s.n, 4);
	CHECK_STR(s.ids[0], "../../escape");
	CHECK_STR(s.ids[1], "a/b\nc");
	CHECK_STR(s.ids[2], "..");
	CHECK_STR(s.ids[3], longid);
	CHECK_EQ(ops->outbox_del(ud, "a/b\nc"), 0);
	CHECK_EQ(ops->outbox_del(ud, longid), 0);
	ops->close(ud);
	CHECK_EQ(count_files(out), 2);
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK_EQ(write(fd, data, len), (long long)len);
		close(fd);
	}
}

static void test_debris_and_corrupt_files_are_ignored(void)
{
	char dir[128], path[256];
	struct seen s = {0};
	uint64_t seq;
	void *ud;

	dir_new(dir, sizeof(dir), "debris");
	ud = open_ok(dir);
	CHECK_EQ(ops->outbox_put(ud, "good", "kept", 4), 0);
	CHECK_EQ(ops->save_cursor(ud, 5), 0);
	ops->close(ud);

	/* A crash mid-write leaves a temporary file: a torn one of each kind. */
	snprintf(path, sizeof(path), "%s/outbox/.put.tmp", dir);
	write_file(path, "PGOUTBX1\x05", 9);
	snprintf(path, sizeof(path), "%s/.cursor.tmp", dir);
	write_file(path, "9", 1);
	/* A damaged record, a truncated one, one with a bad checksum, a foreign file. */
	snprintf(path, sizeof(path), "%s/outbox/00000000000000000007-6262", dir);
	write_file(path, "garbage", 7);
	snprintf(path, sizeof(path), "%s/outbox/00000000000000000008-6363", dir);
	write_file(path, "", 0);
	snprintf(path, sizeof(path), "%s/outbox/README", dir);
	write_file(path, "hello", 5);
	{
		/* A well-formed header whose checksum does not match. */
		unsigned char rec[24 + 2 + 3] = "PGOUTBX1";
		rec[8] = 2;
		rec[12] = 3;
		memcpy(rec + 24, "ddabc", 5);
		snprintf(path, sizeof(path), "%s/outbox/00000000000000000009-6464", dir);
		write_file(path, rec, sizeof(rec));
	}

	ud = open_ok(dir);
	CHECK_EQ(ops->load_cursor(ud, &seq), 0);
	CHECK_EQ(seq, 5); /* the old value, not the torn tmp's */
	CHECK_EQ(ops->outbox_load(ud, collect, &s), 0);
	CHECK_EQ(s.n, 1);
	CHECK_STR(s.ids[0], "good");
	/* The next n is past every numbered file, readable or not. */
	CHECK_EQ(ops->outbox_put(ud, "next", "n", 1), 0);
	ops->close(ud);
	snprintf(path, sizeof(path), "%s/outbox/.put.tmp", dir);
	CHECK(access(path, F_OK) != 0); /* deleted on open */
	snprintf(path, sizeof(path), "%s/.cursor.tmp", dir);
	CHECK(access(path, F_OK) != 0);
	snprintf(path, sizeof(path), "%s/outbox/00000000000000000010-6e657874", dir);
	CHECK_EQ(access(path, F_OK), 0);
}

static void test_unusable_directory_is_an_error(void)
{
	char file[128], under[160], err[256];
	void *ud = (void *)1;

	/* A regular file where the directory should be, and a directory beneath one. */
	dir_new(file, sizeof(file), "plain-file");
	write_file(file, "x", 1);
	CHECK_EQ(pgc_persist_files_open(file, &ud, err, sizeof(err)), PIGEON_EPERSIST);
	CHECK(ud == NULL);
	CHECK_CONTAINS(err, file);
	snprintf(under, sizeof(under), "%s/sub", file);
	CHECK_EQ(pgc_persist_files_open(under, &ud, err, sizeof(err)), PIGEON_EPERSIST);
	CHECK_CONTAINS(err, "Not a directory");
	/* /proc takes no new directories, even from root. */
	CHECK_EQ(pgc_persist_files_open("/proc/pigeon-test", &ud, err, sizeof(err)),
	         PIGEON_EPERSIST);
	CHECK_EQ(pgc_persist_files_open("/proc/self", &ud, err, sizeof(err)), PIGEON_EPERSIST);
	CHECK_EQ(pgc_persist_files_open("", &ud, err, sizeof(err)), PIGEON_EINVAL);
}

static void test_second_opener_is_refused(void)
{
	char dir[128], err[256];
	void *ud, *ud2 = NULL;

	dir_new(dir, sizeof(dir), "locked");
	ud = open_ok(dir);
	CHECK_EQ(pgc_persist_files_open(dir, &ud2, err, sizeof(err)), PIGEON_EPERSIST);
	CHECK_CONTAINS(err, "in use by another client");
	ops->close(ud);
	ud2 = open_ok(dir); /* free again once closed */
	ops->close(ud2);
}

static void test_full_disk_is_an_error_and_keeps_the_old(void)
{
	char dir[128], out[160];
	struct rlimit old, lim;
	static char big[64 * 1024];
	struct seen s = {0};
	uint64_t seq;
	void *ud;

	/* RLIMIT_FSIZE makes writes past 16 KiB fail (EFBIG) as a full disk would. */
	dir_new(dir, sizeof(dir), "full");
	ud = open_ok(dir);
	CHECK_EQ(ops->outbox_put(ud, "small", "ok", 2), 0);
	CHECK_EQ(ops->save_cursor(ud, 3), 0);
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = 16 * 1024;
	CHECK_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
	memset(big, 'b', sizeof(big));
	CHECK_EQ(ops->outbox_put(ud, "big", big, sizeof(big)), PIGEON_EPERSIST);
	CHECK_EQ(ops->outbox_put(ud, "small", big, sizeof(big)), PIGEON_EPERSIST);
	CHECK_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);

	/* Nothing half-written: the old record stands, "big" was never there, no tmp left. */
	CHECK_EQ(ops->outbox_load(ud, collect, &s), 0);
	CHECK_EQ(s.n, 1);
	CHECK_STR(s.ids[0], "small");
	CHECK_EQ(s.lens[0], 2);
	CHECK_EQ(ops->load_cursor(ud, &seq), 0);
	CHECK_EQ(seq, 3);
	snprintf(out, sizeof(out), "%s/outbox", dir);
	CHECK_EQ(count_files(out), 1);

	/* The limits of a record: 1 MiB is fine, a byte more is refused. */
	char *mib = malloc(1024 * 1024 + 1);
	memset(mib, 'm', 1024 * 1024 + 1);
	CHECK_EQ(ops->outbox_put(ud, "mib", mib, 1024 * 1024), 0);
	CHECK_EQ(ops->outbox_put(ud, "mib+1", mib, 1024 * 1024 + 1), PIGEON_EINVAL);
	free(mib);
	memset(&s, 0, sizeof(s));
	CHECK_EQ(ops->outbox_load(ud, collect, &s), 0);
	CHECK_EQ(s.n, 2);
	CHECK_EQ(s.lens[1], 1024 * 1024);
	ops->close(ud);
}

int main(void)
{
	char cmd[128];
	int rc;

	snprintf(root, sizeof(root), "/tmp/pigeon-test-persist-XXXXXX");
	if (mkdtemp(root) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_cursor_and_server_round_trip);
	RUN(test_corrupt_cursor_reads_as_none);
	RUN(test_outbox_order_and_delete_across_reopen);
	RUN(test_load_callback_may_delete);
	RUN(test_hostile_msg_ids_stay_out_of_paths);
	RUN(test_debris_and_corrupt_files_are_ignored);
	RUN(test_unusable_directory_is_an_error);
	RUN(test_second_opener_is_refused);
	RUN(test_full_disk_is_an_error_and_keeps_the_old);
	rc = check_exit();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", root);
	return rc;
}
