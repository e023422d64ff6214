/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: replay of a corrupted journal segment, the one file the
 * store reads back after a crash. The input is written as the only segment
 * of an empty store's directory, then
 *
 *   1. pg_journal_replay (journal.c) must hand over exactly the intact
 *      frames up to the first torn or corrupt one (checked against a frame
 *      walk of its own), and
 *   2. pg_store_open must replay those records into SQLite and give a
 *      working store: heads, syncs and unread counts of the users the
 *      records name, a new message taking head + 1, and a second open of
 *      the same directory agreeing with the first.
 *
 * A random mutation almost never keeps a frame's CRC-32 right, so the
 * custom mutator repairs the CRCs of most mutants: the fuzzer then explores
 * what the records say, not only where the CRC check stops. Inputs stay
 * real segment files either way (a crash input is the file as written).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "fuzz_check.h"
#include "fuzz_store.h"
#include "ident.h"
#include "journal.h"
#include "journal.pb-c.h"
#include "store.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);

#define FRAME_HEADER 8
#define MAX_UIDS 8

static char dir[4096], db_path[4200], segment[4300];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_tmpdir_new(dir, sizeof(dir), "fuzz-journal");
	snprintf(db_path, sizeof(db_path), "%s/pigeon.db", dir);
	snprintf(segment, sizeof(segment), "%s.jnl.%020d", db_path, 1);
	return 0;
}

static uint32_t get_u32le(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Length of the next intact frame at data[0..size), or 0 if there is none. */
static size_t frame_len(const uint8_t *data, size_t size)
{
	uint32_t len;

	if (size < FRAME_HEADER) {
		return 0;
	}
	len = get_u32le(data);
	if (len > PG_JOURNAL_RECORD_MAX || len > size - FRAME_HEADER ||
	    (uint32_t)crc32(0L, data + FRAME_HEADER, len) != get_u32le(data + 4)) {
		return 0;
	}
	return FRAME_HEADER + len;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	size_t pos = 0;

	size = LLVMFuzzerMutate(data, size, max_size);
	if (seed % 8 == 0) {
		return size; /* a CRC left as the mutation made it */
	}
	while (size - pos >= FRAME_HEADER) {
		uint32_t len = get_u32le(data + pos), crc;
		if (len > PG_JOURNAL_RECORD_MAX || len > size - pos - FRAME_HEADER) {
			break;
		}
		crc = (uint32_t)crc32(0L, data + pos + FRAME_HEADER, len);
		data[pos + 4] = (uint8_t)crc;
		data[pos + 5] = (uint8_t)(crc >> 8);
		data[pos + 6] = (uint8_t)(crc >> 16);
		data[pos + 7] = (uint8_t)(crc >> 24);
		pos += FRAME_HEADER + len;
	}
	return size;
}

struct replay_check {
	const uint8_t *data;
	size_t size, pos;
	int frames;
	char uids[MAX_UIDS][PG_IDENT_MAX + 1];
	int nuids;
};

static void note_uid(struct replay_check *rc, const char *uid)
{
	int i;

	if (!pg_ident_valid_str(uid) || rc->nuids == MAX_UIDS) {
		return;
	}
	for (i = 0; i < rc->nuids; i++) {
		if (strcmp(rc->uids[i], uid) == 0) {
			return;
		}
	}
	strcpy(rc->uids[rc->nuids++], uid);
}

/* Each frame replay hands over must be the next intact frame of the file. */
static int on_frame(const uint8_t *payload, size_t len, void *ud)
{
	struct replay_check *rc = ud;
	size_t flen = frame_len(rc->data + rc->pos, rc->size - rc->pos);
	Pigeon__Journal__Record *rec;

	FUZZ_CHECK(flen == FRAME_HEADER + len);
	/* An empty frame comes with payload NULL (nothing was read into a buffer). */
	FUZZ_CHECK(len == 0 || memcmp(payload, rc->data + rc->pos + FRAME_HEADER, len) == 0);
	rc->pos += flen;
	rc->frames++;
	rec = pigeon__journal__record__unpack(NULL, len, payload);
	if (rec != NULL) {
		if (rec->change_case == PIGEON__JOURNAL__RECORD__CHANGE_APPEND &&
		    rec->append->envelope != NULL) {
			note_uid(rc, rec->append->envelope->to);
		} else if (rec->change_case == PIGEON__JOURNAL__RECORD__CHANGE_CURSOR) {
			note_uid(rc, rec->cursor->uid);
		} else if (rec->change_case == PIGEON__JOURNAL__RECORD__CHANGE_PRESENCE) {
			note_uid(rc, rec->presence->uid);
		}
		pigeon__journal__record__free_unpacked(rec, NULL);
	}
	return 0;
}

static void count_online(const char *uid, void *ud)
{
	FUZZ_CHECK(uid != NULL);
	(*(int *)ud)++;
}

/* Reads what the store holds for uid; returns its head. */
static uint64_t read_user(struct pg_store *st, const char *uid)
{
	Pigeon__SyncReply *sr = NULL;
	uint64_t head = 0, cursor, unread;
	size_t i;

	FUZZ_CHECK(pg_store_head(st, uid, &head) == PG_OK);
	FUZZ_CHECK(pg_store_sync(st, uid, 0, 1000, 256 * 1024, fuzz_now_ms(), &sr) == PG_OK);
	FUZZ_CHECK(sr->head_seq == head);
	for (i = 0; i < sr->n_messages; i++) {
		FUZZ_CHECK(i == 0 || sr->messages[i]->seq > sr->messages[i - 1]->seq);
	}
	pg_store_sync_free(sr);
	FUZZ_CHECK(pg_store_unread(st, uid, "phone", fuzz_now_ms(), &cursor, &unread) == PG_OK);
	return head;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct replay_check rc = {.data = data, .size = size};
	struct pg_store_msg msg = {0};
	struct pg_store_accepted acc;
	uint64_t heads[MAX_UIDS], head;
	struct pg_store *st;
	char err[512];
	int torn = 0, online = 0, i;
	FILE *f = fopen(segment, "wb");

	FUZZ_CHECK(f != NULL);
	FUZZ_CHECK(fwrite(data, 1, size, f) == size);
	FUZZ_CHECK(fclose(f) == 0);

	/* 1. The frames. */
	FUZZ_CHECK(pg_journal_replay(db_path, on_frame, &rc, &torn, err, sizeof(err)) == 0);
	FUZZ_CHECK(frame_len(data + rc.pos, size - rc.pos) == 0);
	FUZZ_CHECK(torn == (rc.pos < size ? 1 : 0));

	/* 2. The store on top of them. */
	st = fuzz_store_open(db_path, "fuzz_journal");
	pg_store_foreach_online(st, count_online, &online);
	note_uid(&rc, "alice");
	for (i = 0; i < rc.nuids; i++) {
		heads[i] = read_user(st, rc.uids[i]);
	}
	FUZZ_CHECK(pg_store_head(st, "alice", &head) == PG_OK);
	msg.kind = PIGEON__KIND__CHAT;
	msg.from = "bob";
	msg.to = "alice";
	msg.body = (const uint8_t *)"hi";
	msg.body_len = 2;
	msg.now_ms = fuzz_now_ms();
	if (head >= INT64_MAX) {
		/* A record gave alice the last seq: no seq is left (seqs are signed 64-bit). */
		FUZZ_CHECK(pg_store_accept(st, &msg, malloc, free, &acc) == PG_ERR_IO);
		FUZZ_CHECK(acc.envelope == NULL);
	} else {
		FUZZ_CHECK(pg_store_accept(st, &msg, malloc, free, &acc) == PG_OK);
		FUZZ_CHECK(acc.seq == head + 1);
		free(acc.envelope);
		head = acc.seq;
	}
	pg_store_close(st);

	st = fuzz_store_open(db_path, "fuzz_journal");
	for (i = 0; i < rc.nuids; i++) {
		uint64_t h = read_user(st, rc.uids[i]);
		FUZZ_CHECK(h == (strcmp(rc.uids[i], "alice") == 0 ? head : heads[i]));
	}
	pg_store_close(st);
	fuzz_tmpdir_clear(dir);
	return 0;
}
