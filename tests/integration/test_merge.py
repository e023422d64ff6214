# SPDX-License-Identifier: Apache-2.0
"""
Notification merging (docs/protocol.md, NOTIFY): per (recipient, type) only the
latest notification stays stored, with `merged` = how many earlier ones of
that type it replaced that no device had acknowledged. Replaced messages
leave holes in the sequence; every notification still takes the next seq.
"""

import pytest

from harness import PUBACK_NOT_AUTHORIZED, PUBACK_OK
from inboxlib import PUBACK_ACCEPTED, REPLY_FORBIDDEN, REPLY_OK, Device, start_inbox_broker


@pytest.fixture(scope="module")
def broker(module_brokers, keys):
    return start_inbox_broker(module_brokers, keys, "merge", send_rate=0)


def login(mqtt, broker, keys, uid, device="phone", **kw):
    return Device.login(mqtt, broker, keys, uid, device, **kw)


def test_notifications_to_an_offline_user_merge_per_type(broker, keys, mqtt, pb):
    svc = login(mqtt, broker, keys, "m-svc", role="service")
    # 30 "like" and 20 "comment", interleaved; the last of each is kept.
    sent = []
    for i in range(50):
        t = "comment" if i % 5 in (1, 3) else "like"
        sent.append(t)
        assert svc.notify("m-alice", t, b"%s %d" % (t.encode(), i)) in PUBACK_ACCEPTED
    assert sent.count("like") == 30 and sent.count("comment") == 20
    last_like = max(i for i, t in enumerate(sent) if t == "like")
    last_comment = max(i for i, t in enumerate(sent) if t == "comment")

    alice = login(mqtt, broker, keys, "m-alice")
    msgs, s = alice.sync_all()
    assert s.head_seq == 50 and s.oldest_seq == min(last_like, last_comment) + 1
    got = {m.type: m for m in msgs}
    assert len(msgs) == 2 and set(got) == {"like", "comment"}
    assert [m.seq for m in msgs] == sorted([last_like + 1, last_comment + 1])
    assert (got["like"].merged, got["like"].body) == (29, b"like %d" % last_like)
    assert (got["comment"].merged, got["comment"].body) == (19, b"comment %d" % last_comment)
    assert all(m.kind == pb.NOTIFY and getattr(m, "from") == "m-svc" for m in msgs)

    # The user has seen everything: the next "like" replaced nothing unread.
    assert alice.ack(s.head_seq).code == REPLY_OK
    alice.close()
    assert svc.notify("m-alice", "like", b"like after ack") in PUBACK_ACCEPTED
    alice = login(mqtt, broker, keys, "m-alice")
    msgs, s = alice.sync_all()
    got = {m.type: m for m in msgs}
    assert (got["like"].seq, got["like"].merged, got["like"].body) == (51, 0, b"like after ack")
    assert got["comment"].seq == last_comment + 1  # untouched
    # Unacknowledged again: the next one counts it.
    alice.close()
    assert svc.notify("m-alice", "like", b"like again") in PUBACK_ACCEPTED
    alice = login(mqtt, broker, keys, "m-alice")
    msgs, s = alice.sync_all(after_seq=50)
    assert [(m.seq, m.type, m.merged, m.body) for m in msgs] == [(52, "like", 1, b"like again")]


def test_merged_counts_only_notifications_no_device_acknowledged(broker, keys, mqtt, pb):
    svc = login(mqtt, broker, keys, "a-svc", role="service")
    laptop = login(mqtt, broker, keys, "a-alice", "laptop")
    for i in range(5):
        assert svc.notify("a-alice", "follow", b"f%d" % i) == PUBACK_OK
    laptop.wait_inbox(5)
    assert laptop.ack(5).code == REPLY_OK  # one device acknowledging is enough
    laptop.close()
    for i in range(5, 8):
        assert svc.notify("a-alice", "follow", b"f%d" % i) in PUBACK_ACCEPTED
    phone = login(mqtt, broker, keys, "a-alice", "phone")
    msgs, s = phone.sync_all()
    # 8 sent, 1 stored: it replaced 2 unacknowledged ones (f5, f6), not the acked f4.
    assert [(m.seq, m.merged, m.body) for m in msgs] == [(8, 2, b"f7")]
    assert (s.head_seq, s.oldest_seq) == (8, 8)


def test_connected_devices_get_every_notification_live(broker, keys, mqtt, pb):
    alice = login(mqtt, broker, keys, "l-alice")
    svc = login(mqtt, broker, keys, "l-svc", role="service")
    for i in range(4):
        assert svc.notify("l-alice", "like", b"%d" % i) == PUBACK_OK
    envs = alice.wait_inbox(4)
    assert [(e.seq, e.body) for e in envs] == [(1, b"0"), (2, b"1"), (3, b"2"), (4, b"3")]
    msgs, _ = alice.sync_all()
    assert [(m.seq, m.body) for m in msgs] == [(4, b"3")]


def test_notify_by_send_request_merges_like_a_publish(broker, keys, mqtt, pb):
    svc = login(mqtt, broker, keys, "r-svc", role="service")
    r1 = svc.send("r-alice", b"one", kind=pb.NOTIFY, type="mention")
    r2 = svc.send("r-alice", b"two", kind=pb.NOTIFY, type="mention")
    assert (r1.code, r1.send.seq, r2.code, r2.send.seq) == (REPLY_OK, 1, REPLY_OK, 2)
    r = svc.send("r-alice", b"no type", kind=pb.NOTIFY)
    assert r.code == 400 and "type" in r.error, r
    alice = login(mqtt, broker, keys, "r-alice")
    msgs, _ = alice.sync_all()
    assert [(m.seq, m.type, m.merged, m.body) for m in msgs] == [(2, "mention", 1, b"two")]


def test_users_may_not_send_notifications(broker, keys, mqtt, pb):
    bob = login(mqtt, broker, keys, "w-bob")
    assert bob.notify("w-alice", "like", b"x") == PUBACK_NOT_AUTHORIZED
    r = bob.send("w-alice", b"x", kind=pb.NOTIFY, type="like")
    assert r.code == REPLY_FORBIDDEN, r
    assert bob.client.connected
    alice = login(mqtt, broker, keys, "w-alice")
    s = alice.sync()
    assert (list(s.messages), s.head_seq) == ([], 0)


def test_sync_right_after_a_merge_skips_the_replaced_notifications(broker, keys, mqtt, pb):
    """
    A sync pipelined right behind the sends is answered before the store
    thread has written them: what it returns (and oldest_seq) must already
    leave out the replaced notifications.
    """
    svc = login(mqtt, broker, keys, "p-svc", role="service")  # sends to itself
    c = svc.client
    head = 0
    for rnd in range(20):
        for i in range(10):
            c.publish_nowait("im/p-svc/notify/t%d" % rnd, b"%d/%d" % (rnd, i))
        head += 10
        rid = 900000 + rnd
        req = pb.Request(id=rid, sync=pb.SyncRequest(after_seq=head - 10))
        c.publish_nowait("$CONTROL/pigeon/v1", req.SerializeToString())
        assert svc.wait(lambda d: rid in d.replies), f"no reply {rid}"
        s = svc.replies[rid].sync
        assert [(m.seq, m.merged, m.body) for m in s.messages] == [(head, 9, b"%d/9" % rnd)]
        assert (s.head_seq, s.oldest_seq) == (head, 10), f"round {rnd}: {s}"
