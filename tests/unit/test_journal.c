/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Journal segments (journal.c): append then replay returns every frame in
 * order with identical bytes; segments (by open and by real rotation at
 * PG_JOURNAL_SEGMENT_MAX) replay oldest first; a torn or corrupt tail (short
 * frame, bad CRC, absurd length) ends its segment only and is counted;
 * trim removes exactly the fully applied segments, never the newest;
 * a prefix holding glob characters is taken literally.
 * Each test works in its own mkdtemp directory, removed at its end.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "journal.h"

/* ---------- temp directories ---------- */

struct tdir {
	char dir[64];
	char prefix[128];
};

static void tdir_make(struct tdir *t)
{
	snprintf(t->dir, sizeof(t->dir), "/tmp/pigeon-journal-XXXXXX");
	if (mkdtemp(t->dir) == NULL) {
		perror("mkdtemp");
		exit(2);
	}
	snprintf(t->prefix, sizeof(t->prefix), "%s/db", t->dir);
}

static void tdir_remove(struct tdir *t)
{
	char pattern[160];
	glob_t g;
	size_t i;

	snprintf(pattern, sizeof(pattern), "%s/*", t->dir);
	if (glob(pattern, 0, NULL, &g) == 0) {
		for (i = 0; i < g.gl_pathc; i++) {
			unlink(g.gl_pathv[i]);
		}
		globfree(&g);
	}
	CHECK_EQ(rmdir(t->dir), 0);
}

/* Number of segment files under prefix. */
static size_t seg_count(const char *prefix)
{
	char pattern[160];
	glob_t g;
	size_t n = 0;

	snprintf(pattern, sizeof(pattern), "%s.jnl.*", prefix);
	if (glob(pattern, 0, NULL, &g) == 0) {
		n = g.gl_pathc;
		globfree(&g);
	}
	return n;
}

static void seg_path(char *buf, size_t cap, const char *prefix, uint64_t first_lsn)
{
	snprintf(buf, cap, "%s.jnl.%020" PRIu64, prefix, first_lsn);
}

static bool seg_exists(const char *prefix, uint64_t first_lsn)
{
	char path[200];
	struct stat sb;

	seg_path(path, sizeof(path), prefix, first_lsn);
	return stat(path, &sb) == 0;
}

static off_t seg_size(const char *prefix, uint64_t first_lsn)
{
	char path[200];
	struct stat sb;

	seg_path(path, sizeof(path), prefix, first_lsn);
	return stat(path, &sb) == 0 ? sb.st_size : -1;
}

/* ---------- payloads and a recording replay callback ---------- */

/* Deterministic payload i of length len (distinct per i). */
static void fill(uint8_t *p, size_t len, unsigned i)
{
	size_t k;

	for (k = 0; k < len; k++) {
		p[k] = (uint8_t)(i * 31u + k * 7u + (k >> 8));
	}
}

#define REC_MAX 64

struct rec {
	size_t n;
	size_t len[REC_MAX];
	uint8_t *data[REC_MAX];
	size_t stop_after; /* return 7 after this many calls (0: never) */
};

static int rec_fn(const uint8_t *payload, size_t len, void *ud)
{
	struct rec *r = ud;

	if (r->n == REC_MAX) {
		return 99;
	}
	r->len[r->n] = len;
	r->data[r->n] = malloc(len ? len : 1);
	if (len) {
		memcpy(r->data[r->n], payload, len);
	}
	r->n++;
	return r->stop_after && r->n == r->stop_after ? 7 : 0;
}

static void rec_free(struct rec *r)
{
	size_t i;

	for (i = 0; i < r->n; i++) {
		free(r->data[i]);
	}
	memset(r, 0, sizeof(*r));
}

/* Frame i of the recording is payload fill(len, id). */
static void check_frame(const struct rec *r, size_t i, size_t len, unsigned id)
{
	uint8_t *want = malloc(len ? len : 1);

	fill(want, len, id);
	CHECK(i < r->n);
	if (i < r->n) {
		CHECK_EQ(r->len[i], len);
		if (r->len[i] == len) {
			CHECK_MEM(r->data[i], want, len);
		}
	}
	free(want);
}

static int append_fill(struct pg_journal *j, uint64_t lsn, size_t len, unsigned id)
{
	uint8_t *p = malloc(len ? len : 1);
	int rc;

	fill(p, len, id);
	rc = pg_journal_append(j, lsn, p, len);
	free(p);
	return rc;
}

/* Payload lengths used by the round-trip tests: empty, tiny, odd, > 4 KiB buffer. */
static const size_t lens[] = {0, 1, 17, 300, 4095, 5000, 70000, 3, 64, 12345};
#define NLENS (sizeof(lens) / sizeof(lens[0]))

/* ---------- tests ---------- */

static void test_empty_replay(void)
{
	struct tdir t;
	struct rec r = {0};
	char err[256] = "";
	int torn = -1;

	tdir_make(&t);
	/* No segment at all: nothing to replay, not an error. */
	CHECK_EQ(pg_journal_replay(t.prefix, rec_fn, &r, &torn, err, sizeof(err)), 0);
	CHECK_EQ(r.n, 0);
	CHECK_EQ(torn, 0);
	/* torn may be NULL. */
	CHECK_EQ(pg_journal_replay(t.prefix, rec_fn, &r, NULL, err, sizeof(err)), 0);
	rec_free(&r);
	tdir_remove(&t);
}

static void test_append_replay_roundtrip(void)
{
	struct tdir t;
	struct pg_journal *j = NULL;
	struct rec r = {0};
	char err[256] = "";
	uint64_t bytes = 0;
	int torn = -1;
	size_t i;

	tdir_make(&t);
	CHECK_EQ(pg_journal_open(t.prefix, 1, false, &j, err, sizeof(err)), 0);
	if (j == NULL) {
		tdir_remove(&t);
		return;
	}
	CHECK(seg_exists(t.prefix, 1));
	CHECK_EQ(pg_journal_segment_bytes(j), 0);
	for (i = 0; i < NLENS; i++) {
		CHECK_EQ(append_fill(j, 1 + i, lens[i], (unsigned)i), 0);
		bytes += 8 + lens[i];
		CHECK_EQ(pg_journal_segment_bytes(j), bytes);
	}
	/* Replay sees the frames while the journal is still open (page cache). */
	CHECK_EQ(pg_journal_replay(t.prefix, rec_fn, &r, &torn, err, sizeof(err)), 0);
	CHECK_EQ(torn, 0);
	CHECK_EQ(r.n, NLENS);
	for (i = 0; i < NLENS; i++) {
		check_frame(&r, i, lens[i], (unsigned)i);
	}
	rec_free(&r);
	pg_journal_close(j);

	/* Closing keeps the file; a second replay is identical. */
	CHECK_EQ(seg_size(t.prefix, 1), (off_t)bytes);
	CHECK_EQ(pg_journal_replay(t.prefix, rec_fn, &r, &torn, err, sizeof(err)), 0);
	CHECK_EQ(r.n, NLENS);
	for (i = 0; i < NLENS; i++) {
		check_frame(&r, i, lens[i], (unsigned)i);
	}
	rec_free(&r);
	tdir_remove(&t);
}

static void test_sync_full_append(void)
{
	struct tdir t;
	struct pg_journal *j = NULL;
	struct rec r = {0};
	char err[256] = "";
	int torn = -1;

	tdir_make(&t);
	CHECK_EQ(pg_journal_open(t.prefix, 5, true, &j, err, sizeof(err)), 0);
	if (j != NULL) {
		CHECK_EQ(append_fill(j, 5, 100, 1), 0);
		CHECK_EQ(append_fill(j, 6, 200, 2), 0);
		pg_journal_close(j);
	}
	CHECK_EQ(pg_journal_replay(t.prefix, rec_fn, &r, &torn, err, sizeof(err)), 0);
	CHECK_EQ(torn, 0);
	CHECK_EQ(r.n, 2);
	check_frame(&r, 0, 100, 1);
	check_frame(&r, 1, 200, 2);
	rec_free(&r);
	tdir_remove(&t);
}

static void test_record_too_large(void)
{
	struct tdir t;
	struct pg_journal *j = NULL;
	struct rec r = {0};
	char err[256] = "";
	uint8_t *big = calloc(1, PG_JOURNAL_RECORD_MAX + 1);
	int torn = -1;

	tdir_make(&t);
	CHECK_EQ(pg_journal_open(t.prefix, 1, false, &j, err, sizeof(err)), 0);
	if (j != NULL && big != NULL) {
		CHECK_EQ(append_fill(j, 1, 10, 1), 0);
		errno = 0;
		CHECK_EQ(pg_journal_append(j, 2, big, PG_JOURNAL_RECORD_MAX + 1), -1);
		CHECK_EQ(errno, EMSGSIZE);
		CHECK_EQ(pg_journal_segment_bytes(j), 8 + 10);
		CHECK_EQ(append_fill(j, 2, 20, 2), 0);
		pg_journal_close(j);
	}
	CHECK_EQ(pg_journal_replay(t.prefix, rec_fn, &r, &torn, err, sizeof(err)), 0);
	CHECK_EQ(torn, 0);
	CHECK_EQ(r.n, 2);
	check_frame(&r, 0, 10, 1);
	check_frame(&r, 1, 20, 2);
	rec_free(&r);
	free(big);
	tdir_remove(&t);
}

/* Writes frames ids[0..n) of length len to a segment starting at first_lsn. */
static void write_segment(const char *prefix, uint64_t first_lsn, const unsigned *ids, size_t n,
                          size_t len)
{
	struct pg_journal *j = NULL;
	char err[256] = "";
	size_t i;

	CHECK_EQ(pg_journal_open(prefix, first_lsn, false, &j, err, sizeof(err)), 0);
	if (j == NULL) {
		return;
	}
	for (i = 0; i < n; i++) {
		CHECK_EQ(append_fill(j, first_lsn + i, len, ids[i]), 0);
	}
	pg_journal_close(j);
}

static void test_segments_replay_in_lsn_order(void)
{
	struct tdir t;
	struct rec r = {0};
	char err[256] = "";
	const unsigned a[] = {1, 2, 3, 4, 5, 6, 7, 8}, b[] = {9}, c[] = {10, 11, 12},
	               d[] = {13, 14};
	int torn = -1;
	unsigned i;

	tdir_make(&t);
	/*
	 * Created out of order, and with first LSNs whose decimal strings sort
	 * wrongly without the zero padding (9 > 10 > 100 as text): replay must
	 * still go by LSN.
	 */
	write_segment(t.prefix, 100, d, 2, 40);
	write_segment(t.prefix, 1, a, 8, 40);
	write_segment(t.prefix, 10, c, 3, 40);
	write_segment(t.prefix, 9, b, 1, 40);
	CHECK_EQ(seg_count(t.prefix), 4);
	CHECK_EQ(pg_journal_replay(t.prefix, rec_fn, &r, &torn, err, sizeof(err)), 0);
	CHECK_EQ(torn, 0);
	CHECK_EQ(r.n, 14);
	for (i = 0; i < 14; i++) {
		check_frame(&r, i, 40, i + 1);
	}
	rec_free(&r);

	/* fn's non-zero return stops the whole replay (across segments) and is returned. */
	r.stop_after = 9;
	CHECK_EQ(pg_journal_replay(t.prefix, rec_fn, &r, &torn, err, sizeof(err)), 7);
	CHECK_EQ(r.n, 9);
	rec_free(&r);

	/* A file that is not a segment (no digits after .jnl.) is ignored. */
	{
		char path[200];
		FILE *f;
		snprintf(path, sizeof(path), "%s.jnl.tmp", t.prefix);
		f = fopen(path, "wb");
		CHECK(f != NULL);
		if (f) {
			fputs("garbage", f);
			fclose(f);
		}
	}
	CHECK_EQ(pg_journal_replay(t.prefix, rec_fn, &r, &torn, err, sizeof(err)), 0);
	CHECK_EQ(torn, 0);
	CHECK_EQ(r.n, 14);
	rec_free(&r);
	tdir_remove(&t);
}

struct big_verify {
	uint64_t n;
	int bad;
};

/* Frame i (from 1) is PG_JOURNAL_RECORD_MAX bytes of i, first byte i*3, last i*5. */
static int big_verify_fn(const uint8_t *payload, size_t len, void *ud)
{
	struct big_verify *v = ud;
	uint64_t i = ++v->n;

	if (len != PG_JOURNAL_RECORD_MAX || payload[0] != (uint8_t)(i * 3) ||
	    payload[len - 1] != (uint8_t)(i * 5) || payload[len / 2] != (uint8_t)i) {
		v->bad++;
	}
	return 0;
}

/* Real rotation: 16 frames of PG_JOURNAL_RECORD_MAX exceed PG_JOURNAL_SEGMENT_MAX. */
static void test_rotation_at_segment_max(void)
{
	struct tdir t;
	struct pg_journal *j = NULL;
	char err[256] = "";
	const size_t len = PG_JOURNAL_RECORD_MAX;
	const uint64_t per_seg = PG_JOURNAL_SEGMENT_MAX / (8 + PG_JOURNAL_RECORD_MAX);
	uint8_t *p = malloc(len);
	int torn = -1;
	uint64_t i;

	tdir_make(&t);
	CHECK_EQ(per_seg, 15);
	CHECK_EQ(pg_journal_open(t.prefix, 1, false, &j, err, sizeof(err)), 0);
	if (j == NULL || p == NULL) {
		free(p);
		pg_journal_close(j);
		tdir_remove(&t);
		return;
	}
	for (i = 1; i <= per_seg + 2; i++) {
		memset(p, (int)i, len);
		p[0] = (uint8_t)(i * 3);
		p[len - 1] = (uint8_t)(i * 5);
		CHECK_EQ(pg_journal_append(j, i, p, len), 0);
		if (i <= per_seg) {
			CHECK_EQ(pg_journal_segment_bytes(j), i * (8 + len));
			CHECK_EQ(seg_count(t.prefix), 1);
		}
	}
	/* Frame per_seg + 1 did not fit: it started the segment named by its LSN. */
	CHECK_EQ(seg_count(t.prefix), 2);
	CHECK(seg_exists(t.prefix, 1));
	CHECK(seg_exists(t.prefix, per_seg + 1));
	CHECK_EQ(seg_size(t.prefix, 1), (off_t)(per_seg * (8 + len)));
	CHECK_EQ(pg_journal_segment_bytes(j), 2 * (8 + len));
	pg_journal_close(j);

	free(p);
	/* Replay checks each frame's length and marker bytes (too big to keep all). */
	{
		struct big_verify v = {0, 0};
		CHECK_EQ(pg_journal_replay(t.prefix, big_verify_fn, &v, &torn, err, sizeof(err)),
		         0);
		CHECK_EQ(torn, 0);
		CHECK_EQ(v.n, per_seg + 2);
		CHECK_EQ(v.bad, 0);
	}
	/* Once everything up to per_seg is applied, trim removes the first segment. */
	CHECK_EQ(pg_journal_trim(t.prefix, per_seg - 1), 0);
	CHECK_EQ(pg_journal_trim(t.prefix, per_seg), 1);
	CHECK_EQ(seg_count(t.prefix), 1);
	CHECK(seg_exists(t.prefix, per_seg + 1));
	tdir_remove(&t);
}

/* Cuts the last `cut` bytes off a segment. */
static void seg_truncate_by(const char *prefix, uint64_t first_lsn, off_t cut)
{
	char path[200];
	off_t size = seg_size(prefix, first_lsn);

	seg_path(path, sizeof(path), prefix, first_lsn);
	CHECK(size >= cut);
	CHECK_EQ(truncate(path, size - cut), 0);
}

static void seg_append_raw(const char *prefix, uint64_t first_lsn, const void *bytes, size_t n)
{
	char path[200];
	int fd;

	seg_path(path, sizeof(path), prefix, first_lsn);
	fd = open(path, O_WRONLY | O_APPEND);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK_EQ(write(fd, bytes, n), (ssize_t)n);
		close(fd);
	}
}

/* Flips one byte at offset from the end of the segment. */
static void seg_flip_byte(const char *prefix, uint64_t first_lsn, off_t from_end)
{
	char path[200];
	off_t size = seg_size(prefix, first_lsn);
	uint8_t c;
	int fd;

	seg_path(path, sizeof(path), prefix, first_lsn);
	fd = open(path, O_RDWR);
	CHECK(fd >= 0);
	if (fd < 0) {
		return;
	}
	CHECK_EQ(pread(fd, &c, 1, size - from_end), 1);
	c ^= 0x5a;
	CHECK_EQ(pwrite(fd, &c, 1, size - from_end), 1);
	close(fd);
}

/*
 * Two segments: 1 (frames 1..5) and 6 (frames 6..8). damage() hurts the
 * first segment's tail; replay must give frames 1..4 (the intact ones),
 * then all of segment 6, with torn == 1.
 */
static void torn_case(const char *name, void (*damage)(const char *prefix))
{
	struct tdir t;
	struct rec r = {0};
	char err[256] = "";
	const unsigned a[] = {1, 2, 3, 4, 5}, b[] = {6, 7, 8};
	int torn = -1;
	unsigned i;

	tdir_make(&t);
	write_segment(t.prefix, 1, a, 5, 50);
	write_segment(t.prefix, 6, b, 3, 50);
	damage(t.prefix);
	CHECK_EQ(pg_journal_replay(t.prefix, rec_fn, &r, &torn, err, sizeof(err)), 0);
	CHECK_EQ(torn, 1);
	CHECK_EQ(r.n, 7);
	for (i = 0; i < 4 && i < r.n; i++) {
		check_frame(&r, i, 50, i + 1);
	}
	for (i = 4; i < 7 && i < r.n; i++) {
		check_frame(&r, i, 50, i + 2);
	}
	if (r.n != 7 || torn != 1) {
		fprintf(stderr, "  (torn case: %s)\n", name);
	}
	rec_free(&r);
	tdir_remove(&t);
}

static void damage_truncate_payload(const char *prefix)
{
	seg_truncate_by(prefix, 1, 3); /* last frame's payload is 3 bytes short */
}

static void damage_truncate_header(const char *prefix)
{
	seg_truncate_by(prefix, 1, 50 + 3); /* only 5 of the last header's 8 bytes left */
}

static void damage_flip_payload(const char *prefix)
{
	seg_flip_byte(prefix, 1, 10); /* CRC mismatch */
}

static void damage_flip_crc(const char *prefix)
{
	seg_flip_byte(prefix, 1, 50 + 2); /* a byte of the stored CRC itself */
}

/* The last frame replaced by one whose length field is absurd. */
static void damage_huge_length(const char *prefix)
{
	uint8_t hdr[8 + 50];

	seg_truncate_by(prefix, 1, 8 + 50);
	memset(hdr, 0xab, sizeof(hdr));
	hdr[0] = (uint8_t)(PG_JOURNAL_RECORD_MAX + 1);
	hdr[1] = (uint8_t)((PG_JOURNAL_RECORD_MAX + 1) >> 8);
	hdr[2] = (uint8_t)((PG_JOURNAL_RECORD_MAX + 1) >> 16);
	hdr[3] = (uint8_t)((PG_JOURNAL_RECORD_MAX + 1) >> 24);
	seg_append_raw(prefix, 1, hdr, sizeof(hdr));
}

static void damage_length_ffffffff(const char *prefix)
{
	uint8_t hdr[8 + 50];

	seg_truncate_by(prefix, 1, 8 + 50);
	memset(hdr, 0xff, sizeof(hdr));
	seg_append_raw(prefix, 1, hdr, sizeof(hdr));
}

static void damage_zero_page(const char *prefix)
{
	/* A tail zero-filled by power loss, behind a plausible length: CRC 0 fails. */
	uint8_t z[8 + 50];

	seg_truncate_by(prefix, 1, 8 + 50);
	memset(z, 0, sizeof(z));
	z[0] = 50;
	seg_append_raw(prefix, 1, z, sizeof(z));
}

static void test_torn_tails(void)
{
	torn_case("truncated payload", damage_truncate_payload);
	torn_case("truncated header", damage_truncate_header);
	torn_case("flipped payload byte", damage_flip_payload);
	torn_case("flipped crc byte", damage_flip_crc);
	torn_case("length > PG_JOURNAL_RECORD_MAX", damage_huge_length);
	torn_case("length 0xffffffff", damage_length_ffffffff);
	torn_case("zeroed frame", damage_zero_page);
}

/* Garbage appended after intact frames (a torn next frame) ends the segment there. */
static void test_garbage_after_last_frame(void)
{
	struct tdir t;
	struct rec r = {0};
	char err[256] = "";
	const unsigned a[] = {1, 2, 3};
	const uint8_t junk[] = {0x10, 0x00, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3};
	int torn = -1;

	tdir_make(&t);
	write_segment(t.prefix, 1, a, 3, 20);
	seg_append_raw(t.prefix, 1, junk, sizeof(junk));
	CHECK_EQ(pg_journal_replay(t.prefix, rec_fn, &r, &torn, err, sizeof(err)), 0);
	CHECK_EQ(torn, 1);
	CHECK_EQ(r.n, 3);
	check_frame(&r, 0, 20, 1);
	check_frame(&r, 1, 20, 2);
	check_frame(&r, 2, 20, 3);
	rec_free(&r);

	/* A corrupt frame in the middle hides the rest of its segment (by design). */
	seg_flip_byte(t.prefix, 1, (off_t)sizeof(junk) + 2 * 28 - 10); /* frame 2's payload */
	CHECK_EQ(pg_journal_replay(t.prefix, rec_fn, &r, &torn, err, sizeof(err)), 0);
	CHECK_EQ(torn, 1);
	CHECK_EQ(r.n, 1);
	check_frame(&r, 0, 20, 1);
	rec_free(&r);
	tdir_remove(&t);
}

/* Torn tails in two segments are counted once each. */
static void test_torn_counts_segments(void)
{
	struct tdir t;
	struct rec r = {0};
	char err[256] = "";
	const unsigned a[] = {1, 2}, b[] = {3, 4}, c[] = {5};
	int torn = -1;

	tdir_make(&t);
	write_segment(t.prefix, 1, a, 2, 30);
	write_segment(t.prefix, 3, b, 2, 30);
	write_segment(t.prefix, 5, c, 1, 30);
	seg_truncate_by(t.prefix, 1, 1);
	seg_flip_byte(t.prefix, 3, 1);
	CHECK_EQ(pg_journal_replay(t.prefix, rec_fn, &r, &torn, err, sizeof(err)), 0);
	CHECK_EQ(torn, 2);
	CHECK_EQ(r.n, 3);
	check_frame(&r, 0, 30, 1);
	check_frame(&r, 1, 30, 3);
	check_frame(&r, 2, 30, 5);
	rec_free(&r);
	tdir_remove(&t);
}

/*
 * Reopening at an LSN whose segment already exists (a new segment whose
 * first frame was torn: replay stopped before it, so the next LSN names
 * the same file) must not leave new frames behind the torn one.
 */
static void test_reopen_over_torn_segment(void)
{
	struct tdir t;
	struct rec r = {0};
	struct pg_journal *j = NULL;
	char err[256] = "";
	const unsigned a[] = {1, 2, 3}, b[] = {4};
	int torn = -1;

	tdir_make(&t);
	write_segment(t.prefix, 1, a, 3, 25);
	write_segment(t.prefix, 4, b, 1, 25);
	seg_truncate_by(t.prefix, 4, 5); /* frame 4 torn: it was never acknowledged */
	CHECK_EQ(pg_journal_replay(t.prefix, rec_fn, &r, &torn, err, sizeof(err)), 0);
	CHECK_EQ(torn, 1);
	CHECK_EQ(r.n, 3);
	rec_free(&r);

	/* The restart: the last LSN replayed is 3, so the journal opens at 4. */
	CHECK_EQ(pg_journal_open(t.prefix, 4, false, &j, err, sizeof(err)), 0);
	if (j != NULL) {
		CHECK_EQ(append_fill(j, 4, 25, 40), 0);
		CHECK_EQ(append_fill(j, 5, 25, 50), 0);
		pg_journal_close(j);
	}
	CHECK_EQ(pg_journal_replay(t.prefix, rec_fn, &r, &torn, err, sizeof(err)), 0);
	CHECK_EQ(torn, 0);
	CHECK_EQ(r.n, 5);
	check_frame(&r, 0, 25, 1);
	check_frame(&r, 2, 25, 3);
	check_frame(&r, 3, 25, 40);
	check_frame(&r, 4, 25, 50);
	rec_free(&r);
	tdir_remove(&t);
}

static void test_trim(void)
{
	struct tdir t;
	struct rec r = {0};
	char err[256] = "";
	const unsigned a[] = {1, 2, 3, 4}, b[] = {5, 6, 7, 8, 9}, c[] = {10, 11};
	int torn = -1;

	tdir_make(&t);
	/* Segments 1 (LSN 1..4), 5 (5..9), 10 (10..11, the newest). */
	write_segment(t.prefix, 1, a, 4, 16);
	write_segment(t.prefix, 5, b, 5, 16);
	write_segment(t.prefix, 10, c, 2, 16);
	CHECK_EQ(seg_count(t.prefix), 3);

	CHECK_EQ(pg_journal_trim(t.prefix, 0), 0);
	CHECK_EQ(pg_journal_trim(t.prefix, 3), 0); /* LSN 4 not applied yet */
	CHECK_EQ(seg_count(t.prefix), 3);
	CHECK_EQ(pg_journal_trim(t.prefix, 4), 1);
	CHECK(!seg_exists(t.prefix, 1));
	CHECK(seg_exists(t.prefix, 5));
	CHECK(seg_exists(t.prefix, 10));
	CHECK_EQ(pg_journal_trim(t.prefix, 4), 0); /* idempotent */
	CHECK_EQ(pg_journal_trim(t.prefix, 8), 0);
	CHECK_EQ(seg_count(t.prefix), 2);
	/* Everything applied: all but the newest go, the newest stays. */
	CHECK_EQ(pg_journal_trim(t.prefix, 1000), 1);
	CHECK_EQ(seg_count(t.prefix), 1);
	CHECK(seg_exists(t.prefix, 10));
	CHECK_EQ(pg_journal_trim(t.prefix, UINT64_MAX), 0);
	CHECK(seg_exists(t.prefix, 10));

	/* What is left replays intact. */
	CHECK_EQ(pg_journal_replay(t.prefix, rec_fn, &r, &torn, err, sizeof(err)), 0);
	CHECK_EQ(r.n, 2);
	check_frame(&r, 0, 16, 10);
	check_frame(&r, 1, 16, 11);
	rec_free(&r);

	/* Several segments at once, and an empty directory. */
	write_segment(t.prefix, 12, c, 2, 16);
	write_segment(t.prefix, 14, c, 2, 16);
	write_segment(t.prefix, 16, c, 1, 16);
	CHECK_EQ(pg_journal_trim(t.prefix, 15), 3);
	CHECK_EQ(seg_count(t.prefix), 1);
	CHECK(seg_exists(t.prefix, 16));
	tdir_remove(&t);

	tdir_make(&t);
	CHECK_EQ(pg_journal_trim(t.prefix, 100), 0);
	tdir_remove(&t);
}

/* Trimming while a journal is open never removes the segment it writes. */
static void test_trim_while_open(void)
{
	struct tdir t;
	struct pg_journal *j = NULL;
	struct rec r = {0};
	char err[256] = "";
	const unsigned a[] = {1, 2};
	int torn = -1;

	tdir_make(&t);
	write_segment(t.prefix, 1, a, 2, 16);
	CHECK_EQ(pg_journal_open(t.prefix, 3, false, &j, err, sizeof(err)), 0);
	if (j != NULL) {
		CHECK_EQ(pg_journal_trim(t.prefix, 2), 1);
		CHECK_EQ(pg_journal_trim(t.prefix, 100), 0);
		CHECK_EQ(append_fill(j, 3, 16, 3), 0);
		pg_journal_close(j);
	}
	CHECK_EQ(seg_count(t.prefix), 1);
	CHECK_EQ(pg_journal_replay(t.prefix, rec_fn, &r, &torn, err, sizeof(err)), 0);
	CHECK_EQ(r.n, 1);
	check_frame(&r, 0, 16, 3);
	rec_free(&r);
	tdir_remove(&t);
}

/*
 * A prefix with glob metacharacters ([, ], *, ?) names its files
 * literally: replay finds every segment and trim removes the applied ones,
 * and files that merely match the characters as a pattern are ignored.
 */
static void test_prefix_with_glob_characters(void)
{
	struct tdir t;
	struct rec r = {0};
	char prefix[200], decoy[200], err[256] = "";
	const unsigned a[] = {1, 2, 3}, b[] = {4, 5};
	int torn = -1, fd;

	tdir_make(&t);
	snprintf(prefix, sizeof(prefix), "%s/d[b]*?.db", t.dir);
	write_segment(prefix, 1, a, 3, 20);
	write_segment(prefix, 4, b, 2, 20);
	CHECK(seg_exists(prefix, 1));
	CHECK(seg_exists(prefix, 4));
	/* "db1x.db" matches "d[b]*?.db" as a glob: not a segment of this journal. */
	snprintf(decoy, sizeof(decoy), "%s/db1x.db.jnl.%020d", t.dir, 2);
	fd = open(decoy, O_WRONLY | O_CREAT, 0600);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK_EQ(write(fd, "junk", 4), 4);
		close(fd);
	}

	CHECK_EQ(pg_journal_replay(prefix, rec_fn, &r, &torn, err, sizeof(err)), 0);
	CHECK_EQ(torn, 0);
	CHECK_EQ(r.n, 5);
	check_frame(&r, 0, 20, 1);
	check_frame(&r, 3, 20, 4);
	check_frame(&r, 4, 20, 5);
	rec_free(&r);

	CHECK_EQ(pg_journal_trim(prefix, 3), 1);
	CHECK(!seg_exists(prefix, 1));
	CHECK(seg_exists(prefix, 4));
	CHECK_EQ(access(decoy, F_OK), 0);
	tdir_remove(&t);
}

static void test_open_fails_cleanly(void)
{
	struct pg_journal *j = NULL;
	char err[256] = "";

	CHECK_EQ(pg_journal_open("/nonexistent-dir-pigeon/db", 1, false, &j, err, sizeof(err)), -1);
	CHECK(j == NULL);
	CHECK_CONTAINS(err, "journal");
	pg_journal_close(NULL);
}

int main(void)
{
	RUN(test_empty_replay);
	RUN(test_append_replay_roundtrip);
	RUN(test_sync_full_append);
	RUN(test_record_too_large);
	RUN(test_segments_replay_in_lsn_order);
	RUN(test_rotation_at_segment_max);
	RUN(test_torn_tails);
	RUN(test_garbage_after_last_frame);
	RUN(test_torn_counts_segments);
	RUN(test_reopen_over_torn_segment);
	RUN(test_trim);
	RUN(test_trim_while_open);
	RUN(test_open_fails_cleanly);
	RUN(test_prefix_with_glob_characters);
	return check_exit();
}
