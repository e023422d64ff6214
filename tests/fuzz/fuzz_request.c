/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: Requests as clients publish them on $CONTROL/pigeon/v1,
 * decoded with protobuf-c and handled the way plugins/inbox/requests.c
 * does (the same checks, the same store calls: sync, ack, accept of a
 * Send), against a real store in a temporary directory, with the Reply
 * packed as the plugin would send it. Only libpigeon is linked.
 *
 * Input: a sequence of operations. Each starts with one byte: bits 0-1 pick
 * the session (alice:phone, alice:tablet, bob:phone as users,
 * backend:api as a service), bits 2-4 the operation (0-3: a Request follows
 * as a 16-bit little-endian length and that many bytes; 4: wait until the
 * store thread has applied everything, comparing the requester's sync
 * before and after; 5: housekeeping tick; 6: close and reopen the store,
 * replaying its journal; 7: nothing), bits 5-7 how many seconds the clock
 * moves on first. Every input starts from an empty store.
 *
 * Checks, beyond memory safety and leaks: sync returns ascending seqs above
 * after_seq, within the limit, addressed to the requester, not above the
 * head; an accepted CHAT/NOTIFY takes head + 1 and its envelope says what
 * was sent; acks never move a cursor back; applying pending records to
 * SQLite makes no message appear in a sync; heads survive a reopen.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuzz_check.h"
#include "fuzz_store.h"
#include "ident.h"
#include "msglimits.h"
#include "pigeon.pb-c.h"
#include "protocol.h"
#include "store.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OPS 64
#define MAX_BODY (64 * 1024) /* plugin_opt_max_body's default */

struct session {
	const char *uid, *device;
	enum pg_role role;
};

static const struct session sessions[4] = {
    {"alice", "phone", PG_ROLE_USER},
    {"alice", "tablet", PG_ROLE_USER},
    {"bob", "phone", PG_ROLE_USER},
    {"backend", "api", PG_ROLE_SERVICE},
};
static const char *const uids[] = {"alice", "bob", "backend"};
#define NUIDS (sizeof(uids) / sizeof(uids[0]))

static char dir[4096], db_path[4200];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_tmpdir_new(dir, sizeof(dir), "fuzz-request");
	snprintf(db_path, sizeof(db_path), "%s/pigeon.db", dir);
	return 0;
}

static uint64_t head_of(struct pg_store *st, const char *uid)
{
	uint64_t head = 0;

	FUZZ_CHECK(pg_store_head(st, uid, &head) == PG_OK);
	return head;
}

/* requests.c's handle_sync, and what the reply must look like. */
static void handle_sync(struct pg_store *st, const struct session *s,
                        const Pigeon__SyncRequest *req, int64_t now_ms, Pigeon__Reply *r,
                        Pigeon__SyncReply **out)
{
	uint32_t limit = req->limit == 0 ? PG_SYNC_LIMIT_DEFAULT : req->limit;
	const Pigeon__SyncReply *sr;
	size_t i, bytes = 0;

	if (limit > PG_SYNC_LIMIT_MAX) {
		limit = PG_SYNC_LIMIT_MAX;
	}
	if (pg_store_sync(st, s->uid, req->after_seq, limit, PG_SYNC_MAX_BYTES, now_ms, out) !=
	    PG_OK) {
		r->code = PG_REPLY_STORE_ERROR;
		return;
	}
	sr = *out;
	FUZZ_CHECK(sr->n_messages <= limit);
	/* The byte bound counts each envelope as a SyncReply holds it (tag, length, bytes). */
	for (i = 0; i < sr->n_messages; i++) {
		size_t n = pigeon__envelope__get_packed_size(sr->messages[i]);
		bytes += 1 + n;
		for (; n >= 0x80; n >>= 7) {
			bytes++;
		}
		bytes++;
	}
	FUZZ_CHECK(sr->n_messages <= 1 || bytes <= PG_SYNC_MAX_BYTES);
	FUZZ_CHECK(sr->head_seq == head_of(st, s->uid));
	FUZZ_CHECK(sr->oldest_seq >= 1 && sr->oldest_seq <= sr->head_seq + 1);
	for (i = 0; i < sr->n_messages; i++) {
		const Pigeon__Envelope *e = sr->messages[i];
		FUZZ_CHECK(e->seq > req->after_seq && e->seq <= sr->head_seq);
		FUZZ_CHECK(e->seq >= sr->oldest_seq);
		FUZZ_CHECK(i == 0 || e->seq > sr->messages[i - 1]->seq);
		FUZZ_CHECK(e->to != NULL && strcmp(e->to, s->uid) == 0);
		FUZZ_CHECK(e->kind == PIGEON__KIND__CHAT || e->kind == PIGEON__KIND__NOTIFY);
		FUZZ_CHECK(e->expires_at_ms > (uint64_t)now_ms);
	}
	r->body_case = PIGEON__REPLY__BODY_SYNC;
	r->sync = *out;
}

/* requests.c's handle_ack. */
static void handle_ack(struct pg_store *st, const struct session *s, const Pigeon__Ack *req,
                       int64_t now_ms, Pigeon__Reply *r)
{
	uint64_t before = 0, after = 0, unread;
	int rc;

	FUZZ_CHECK(pg_store_unread(st, s->uid, s->device, now_ms, &before, &unread) == PG_OK);
	rc = pg_store_ack(st, s->uid, s->device, req->seq, &after);
	if (rc == PG_OK) {
		FUZZ_CHECK(after == (req->seq > before ? req->seq : before));
	} else {
		FUZZ_CHECK(rc == PG_ERR_INVALID && req->seq > head_of(st, s->uid));
		r->code = PG_REPLY_BAD_REQUEST;
	}
}

/* requests.c's handle_send (pg_msg_from_send) and inbox_send's checks (send.c), with
 * pigeon_inbox's defaults. */
static void handle_send(struct pg_store *st, const struct session *s, const Pigeon__Send *req,
                        int64_t now_ms, Pigeon__Reply *r, Pigeon__SendReply *sr)
{
	struct pg_store_msg msg;
	struct pg_store_accepted acc;
	const char *why = NULL;
	Pigeon__Envelope *e;
	int rc;
	uint64_t head = 0;
	bool stored;

	if (pg_msg_from_send(req, s->uid, now_ms, &msg, &why) != PG_OK) {
		FUZZ_CHECK(why != NULL && why[0] != '\0');
		r->code = PG_REPLY_BAD_REQUEST;
		return;
	}
	/* inbox_send's checks, in its order. */
	if (msg.body_len > MAX_BODY) {
		r->code = PG_REPLY_TOO_LARGE;
		return;
	}
	if (pg_msg_metadata_error(&msg) != NULL) {
		r->code = PG_REPLY_BAD_REQUEST;
		return;
	}
	/* plugin_opt_user_notify defaults to off. */
	if (req->kind == PIGEON__KIND__NOTIFY && s->role != PG_ROLE_SERVICE) {
		r->code = PG_REPLY_FORBIDDEN;
		return;
	}
	stored = req->kind != PIGEON__KIND__INSTANT;
	if (stored) {
		head = head_of(st, req->to);
	}
	rc = pg_store_accept(st, &msg, malloc, free, &acc);
	FUZZ_CHECK(rc == PG_OK);
	if (acc.duplicate) {
		FUZZ_CHECK(stored && acc.envelope == NULL && acc.seq >= 1 && acc.seq <= head);
	} else {
		e = pigeon__envelope__unpack(NULL, acc.envelope_len, acc.envelope);
		FUZZ_CHECK(e != NULL);
		FUZZ_CHECK(strcmp(e->to, req->to) == 0 && strcmp(e->from, s->uid) == 0);
		FUZZ_CHECK(e->kind == req->kind && e->body.len == req->body.len);
		FUZZ_CHECK(e->body.len == 0 ||
		           memcmp(e->body.data, req->body.data, e->body.len) == 0);
		if (stored) {
			FUZZ_CHECK(acc.seq == head + 1 && e->seq == acc.seq);
			FUZZ_CHECK(head_of(st, req->to) == acc.seq);
			FUZZ_CHECK(e->expires_at_ms > (uint64_t)now_ms);
		} else {
			FUZZ_CHECK(acc.seq == 0 && e->seq == 0);
		}
		pigeon__envelope__free_unpacked(e, NULL);
		free(acc.envelope);
	}
	sr->seq = acc.seq;
	sr->duplicate = acc.duplicate;
	r->body_case = PIGEON__REPLY__BODY_SEND;
	r->send = sr;
}

/* requests.c's inbox_control_cb, up to the packed Reply. */
static void handle_request(struct pg_store *st, const struct session *s, const uint8_t *payload,
                           size_t len, int64_t now_ms)
{
	Pigeon__Reply r = PIGEON__REPLY__INIT, *back;
	Pigeon__SendReply sr = PIGEON__SEND_REPLY__INIT;
	Pigeon__SyncReply *sync = NULL;
	Pigeon__Request *req = pigeon__request__unpack(NULL, len, payload);
	uint8_t *packed;
	size_t plen;

	if (req == NULL) {
		r.code = PG_REPLY_BAD_REQUEST;
	} else {
		r.id = req->id;
		switch (req->body_case) {
		case PIGEON__REQUEST__BODY_SYNC:
			handle_sync(st, s, req->sync, now_ms, &r, &sync);
			break;
		case PIGEON__REQUEST__BODY_ACK:
			handle_ack(st, s, req->ack, now_ms, &r);
			break;
		case PIGEON__REQUEST__BODY_SEND:
			handle_send(st, s, req->send, now_ms, &r, &sr);
			break;
		case PIGEON__REQUEST__BODY_REGISTER_DEVICE:
		case PIGEON__REQUEST__BODY_UNREGISTER_DEVICE:
			r.code = PG_REPLY_NOT_AVAILABLE;
			break;
		default:
			r.code = PG_REPLY_BAD_REQUEST;
			break;
		}
	}
	plen = pigeon__reply__get_packed_size(&r);
	packed = malloc(plen ? plen : 1);
	FUZZ_CHECK(packed != NULL);
	FUZZ_CHECK(pigeon__reply__pack(&r, packed) == plen);
	back = pigeon__reply__unpack(NULL, plen, packed);
	FUZZ_CHECK(back != NULL && back->id == r.id && back->code == r.code);
	pigeon__reply__free_unpacked(back, NULL);
	free(packed);
	pg_store_sync_free(sync);
	if (req != NULL) {
		pigeon__request__free_unpacked(req, NULL);
	}
}

/*
 * Lets the store thread apply everything, and checks that nothing uid could
 * sync before appears only afterwards: a sync merges SQLite with what is
 * still pending, and must not depend on how far the store thread got. (The
 * other way round is allowed: applying enforces the per-user cap.)
 */
static void flush_and_compare(struct pg_store *st, const char *uid, int64_t now_ms)
{
	Pigeon__SyncReply *before = NULL, *after = NULL;
	size_t i, j = 0;

	FUZZ_CHECK(pg_store_sync(st, uid, 0, PG_SYNC_LIMIT_MAX, 1u << 30, now_ms, &before) ==
	           PG_OK);
	pg_store_flush(st);
	FUZZ_CHECK(pg_store_sync(st, uid, 0, PG_SYNC_LIMIT_MAX, 1u << 30, now_ms, &after) == PG_OK);
	FUZZ_CHECK(after->head_seq == before->head_seq);
	FUZZ_CHECK(!before->more && !after->more);
	for (i = 0; i < after->n_messages; i++) {
		while (j < before->n_messages &&
		       before->messages[j]->seq < after->messages[i]->seq) {
			j++;
		}
		FUZZ_CHECK(j < before->n_messages &&
		           before->messages[j]->seq == after->messages[i]->seq);
		FUZZ_CHECK(before->messages[j]->body.len == after->messages[i]->body.len);
	}
	pg_store_sync_free(before);
	pg_store_sync_free(after);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pg_store *st = fuzz_store_open(db_path, "fuzz_request");
	int64_t now_ms = fuzz_now_ms();
	size_t pos = 0;
	int ops = 0;

	while (pos < size && ops++ < MAX_OPS) {
		uint8_t op = data[pos++];
		const struct session *s = &sessions[op & 3];
		unsigned action = (op >> 2) & 7;

		now_ms += (int64_t)(op >> 5) * 1000;
		if (action <= 3) {
			size_t len;
			if (size - pos < 2) {
				break;
			}
			len = (size_t)data[pos] | (size_t)data[pos + 1] << 8;
			pos += 2;
			if (len > size - pos) {
				len = size - pos;
			}
			handle_request(st, s, data + pos, len, now_ms);
			pos += len;
		} else if (action == 4) {
			flush_and_compare(st, s->uid, now_ms);
		} else if (action == 5) {
			now_ms += 11 * 60 * 1000; /* past the idle eviction of users */
			pg_store_tick(st, now_ms);
		} else if (action == 6) {
			uint64_t heads[NUIDS];
			size_t i;
			for (i = 0; i < NUIDS; i++) {
				heads[i] = head_of(st, uids[i]);
			}
			pg_store_close(st);
			st = fuzz_store_open(db_path, "fuzz_request");
			for (i = 0; i < NUIDS; i++) {
				FUZZ_CHECK(head_of(st, uids[i]) == heads[i]);
			}
		}
	}
	pg_store_close(st);
	fuzz_tmpdir_clear(dir);
	return 0;
}
