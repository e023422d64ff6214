# SPDX-License-Identifier: Apache-2.0
"""
Offline retention and sync (docs/protocol.md): what a user missed is kept and
paged to them by SyncRequest (limit default 100, max 1000, `more`,
`head_seq`); live delivery plus sync give every message exactly once and in
order across disconnects; TTL and the per-user cap drop messages, and
`oldest_seq` tells the client so.
"""

import time

import pytest

from harness import PUBACK_NOT_AUTHORIZED, SLOW, TIMEOUT
from inboxlib import PUBACK_ACCEPTED, REPLY_OK, Device, start_inbox_broker


@pytest.fixture(scope="module")
def broker(module_brokers, keys):
    return start_inbox_broker(module_brokers, keys, "sync", send_rate=0)


def login(mqtt, broker, keys, uid, device="phone", **kw):
    return Device.login(mqtt, broker, keys, uid, device, **kw)


def test_offline_messages_are_kept_and_synced_in_pages(broker, keys, mqtt, pb):
    svc = login(mqtt, broker, keys, "q-svc", role="service")
    n = 1200
    codes = svc.publish_many("im/q-alice/chat", [b"m%04d" % i for i in range(n)],
                             timeout=TIMEOUT * 4)
    assert set(codes) <= set(PUBACK_ACCEPTED)
    alice = login(mqtt, broker, keys, "q-alice")
    assert not alice.quiet_inbox(0.2), "nothing is delivered live after the fact"

    # Default limit: 100.
    s = alice.sync()
    assert [m.seq for m in s.messages] == list(range(1, 101))
    assert (s.more, s.head_seq, s.oldest_seq) == (True, n, 1)
    assert [m.body for m in s.messages] == [b"m%04d" % i for i in range(100)]
    # A page in the middle.
    s = alice.sync(after_seq=50, limit=10)
    assert [m.seq for m in s.messages] == list(range(51, 61)) and s.more
    # A limit above 1000 is capped at 1000.
    s = alice.sync(limit=5000)
    assert len(s.messages) == 1000 and s.more and s.messages[-1].seq == 1000
    # The last page.
    s = alice.sync(after_seq=1000, limit=1000)
    assert [m.seq for m in s.messages] == list(range(1001, n + 1))
    assert (s.more, s.head_seq) == (False, n)
    # Nothing after the head.
    s = alice.sync(after_seq=n)
    assert (list(s.messages), s.more, s.head_seq, s.oldest_seq) == ([], False, n, 1)
    # Paging from 0 gives every message once, in order.
    msgs, _ = alice.sync_all()
    assert [m.body for m in msgs] == [b"m%04d" % i for i in range(n)]
    assert all(getattr(m, "from") == "q-svc" and m.to == "q-alice" for m in msgs)


def test_sync_of_a_user_without_messages_is_empty(broker, keys, mqtt, pb):
    alice = login(mqtt, broker, keys, "q-nobody")
    s = alice.sync()
    assert (list(s.messages), s.more, s.head_seq, s.oldest_seq) == ([], False, 0, 1)


def test_sync_pages_large_bodies_by_size(broker, keys, mqtt, pb):
    """A SyncReply carries about 256 KiB of bodies at most (at least one message)."""
    svc = login(mqtt, broker, keys, "b-svc", role="service")
    bodies = [bytes([65 + i]) * 60000 for i in range(10)]
    for body in bodies:
        assert svc.chat("b-alice", body) in PUBACK_ACCEPTED
    alice = login(mqtt, broker, keys, "b-alice")
    s = alice.sync()
    assert 1 <= len(s.messages) <= 256 * 1024 // 60000 and s.more
    msgs, s = alice.sync_all()
    assert [m.body for m in msgs] == bodies and not s.more


def contiguous(got):
    """The highest seq s such that 1..s are all in got."""
    s = 0
    while s + 1 in got:
        s += 1
    return s


def test_ten_thousand_messages_arrive_exactly_once_and_in_order_across_reconnects(
        brokers, keys, mqtt, pb):
    """
    A service sends 10,000 chats as fast as PUBACKs allow while the user
    connects and disconnects: two clean sessions, then a persistent one
    (clean_start=False, expiry 300 s) and its resumption, and again. Each
    connection syncs from what the client has, then takes live deliveries
    (a resumed session also gets what was in flight); the client merges by
    seq. Every message is there exactly once, in the order sent, and live
    delivery is in seq order.
    """
    n = 10000
    b = start_inbox_broker(brokers, keys, "tenk", send_rate=0, max_per_user=n)
    svc = login(mqtt, b, keys, "k-svc", role="service")
    infos = [svc.client.publish_nowait("im/k-alice/chat", b"m%05d" % i) for i in range(n)]
    got = {}             # seq -> body
    seqs_of_body = {}    # body -> set of seqs (a message stored twice would show here)
    live = synced = resumed = 0
    cycle = 0
    deadline = time.monotonic() + 90 * SLOW

    def merge(seq, body):
        assert got.setdefault(seq, body) == body, f"seq {seq} came with two bodies"
        seqs_of_body.setdefault(body, set()).add(seq)

    def all_acked():
        with svc.client.cv:
            return len(svc.client.pubacks) >= n

    while cycle < 6 or not all_acked():
        assert time.monotonic() < deadline, f"not done in time: {len(got)} of {n} after {cycle}"
        persistent = cycle % 4 in (2, 3)
        alice = login(mqtt, b, keys, "k-alice", clean_start=not persistent,
                      session_expiry=300 if persistent else None)
        resumed += bool(alice.client.session_present)
        msgs, s = alice.sync_all(after_seq=contiguous(got))
        synced += len(msgs)
        for m in msgs:
            merge(m.seq, m.body)
        time.sleep(0.25)
        alice.close()
        envs = alice._collect().inbox
        seqs = [e.seq for e in envs]
        assert seqs == sorted(set(seqs)), f"live delivery out of seq order in cycle {cycle}"
        for e in envs:
            merge(e.seq, e.body)
        live += len(envs)
        cycle += 1

    codes = [svc.client.pubacks[i.mid] for i in infos]
    assert set(codes) <= set(PUBACK_ACCEPTED), set(codes)
    alice = login(mqtt, b, keys, "k-alice")
    msgs, s = alice.sync_all(after_seq=contiguous(got))
    synced += len(msgs)
    for m in msgs:
        merge(m.seq, m.body)
    assert s.head_seq == n and not s.more
    assert sorted(got) == list(range(1, n + 1)), f"missing: {sorted(set(range(1, n + 1)) - set(got))[:20]}"
    assert [got[i] for i in range(1, n + 1)] == [b"m%05d" % i for i in range(n)]
    assert all(len(v) == 1 for v in seqs_of_body.values()), "a message was stored twice"
    # Both paths carried messages (the test exercised what it claims to).
    assert live > 0 and synced > 0 and resumed > 0, (live, synced, resumed)


# ------------------------------------------------------------ retention


@pytest.fixture(scope="module")
def retention(module_brokers, keys):
    """Every message lives 3 s at most; 5 stored per user."""
    return start_inbox_broker(module_brokers, keys, "retention", send_rate=0, ttl_s=3,
                              max_per_user=5)


def sleep_until_ms(t_ms):
    time.sleep(max(0.0, t_ms / 1000 - time.time()))


def test_expired_messages_leave_sync_and_oldest_seq_tells_the_client(retention, keys, mqtt, pb):
    svc = login(mqtt, retention, keys, "t-svc", role="service")
    assert svc.chat("t-alice", b"one second", ttl=1) in PUBACK_ACCEPTED
    assert svc.chat("t-alice", b"default (3 s)") in PUBACK_ACCEPTED
    r = svc.send("t-alice", b"one second by Send", ttl_s=1)
    assert r.code == REPLY_OK and r.send.seq == 3
    assert svc.chat("t-alice", b"ttl above the maximum", ttl=3600) in PUBACK_ACCEPTED
    # A ttl that is not a positive number is refused.
    assert svc.chat("t-alice", b"bad", ttl="soon") == PUBACK_NOT_AUTHORIZED
    assert svc.chat("t-alice", b"bad", ttl=0) == PUBACK_NOT_AUTHORIZED
    alice = login(mqtt, retention, keys, "t-alice")
    s = alice.sync()
    assert [m.seq for m in s.messages] == [1, 2, 3, 4] and s.oldest_seq == 1
    sent = {m.seq: m for m in s.messages}
    assert sent[1].expires_at_ms == sent[1].sent_at_ms + 1000
    assert sent[3].expires_at_ms == sent[3].sent_at_ms + 1000
    assert sent[2].expires_at_ms == sent[2].sent_at_ms + 3000
    assert sent[4].expires_at_ms == sent[4].sent_at_ms + 3000  # capped at ttl_s

    sleep_until_ms(max(sent[1].expires_at_ms, sent[3].expires_at_ms) + 100)
    assert time.time() * 1000 < sent[2].expires_at_ms
    s = alice.sync()
    assert [m.body for m in s.messages] == [b"default (3 s)", b"ttl above the maximum"]
    assert (s.oldest_seq, s.head_seq) == (2, 4)

    sleep_until_ms(sent[4].expires_at_ms + 100)
    s = alice.sync()
    assert (list(s.messages), s.oldest_seq, s.head_seq) == ([], 5, 4)
    # Expiry frees no seq: the next message takes 5.
    assert svc.chat("t-alice", b"fresh") in PUBACK_ACCEPTED
    s = alice.sync()
    assert [m.seq for m in s.messages] == [5] and s.oldest_seq == 5


def test_per_user_cap_drops_the_oldest_and_oldest_seq_tells_the_client(retention, keys, mqtt, pb):
    svc = login(mqtt, retention, keys, "x-svc", role="service")
    codes = svc.publish_many("im/x-alice/chat", [b"m%d" % i for i in range(1, 9)])
    assert set(codes) <= set(PUBACK_ACCEPTED)
    alice = login(mqtt, retention, keys, "x-alice")
    # The cap is applied when the store thread writes the messages: wait for it.
    seen = []

    def capped(d):
        s = d.sync()
        seen.append(([m.seq for m in s.messages], s.oldest_seq, s.head_seq, time.time()))
        return s if len(s.messages) == 5 else None
    s = alice.wait(capped)
    assert s, f"sync never came down to the cap: {seen[:5]} ... {seen[-5:]}"
    assert [m.seq for m in s.messages] == [4, 5, 6, 7, 8]
    assert [m.body for m in s.messages] == [b"m4", b"m5", b"m6", b"m7", b"m8"]
    assert (s.oldest_seq, s.head_seq, s.more) == (4, 8, False)
    # A client that had seen up to 2 learns that 3 was dropped, not lost in transit.
    s = alice.sync(after_seq=2)
    assert s.oldest_seq == 4 and s.messages[0].seq == 4
