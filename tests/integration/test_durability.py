# SPDX-License-Identifier: Apache-2.0
"""
Durability (docs/store.md): an accepted message is journaled before its PUBACK,
so a broker killed with SIGKILL in the middle of a QoS 1 storm loses no
acknowledged message, stores none twice, and never reuses or skips-then-
fills a sequence number after the restart (with plugin_opt_sync normal and
full); dedup and device cursors survive the same crash.
"""

import time

import pytest

from harness import SLOW
from inboxlib import PUBACK_ACCEPTED, REPLY_OK, Device, start_inbox_broker


@pytest.mark.parametrize("sync,n", [("normal", 20000), ("full", 2000)])
def test_kill9_during_a_qos1_storm_loses_no_acknowledged_message(brokers, keys, mqtt, pb, sync, n):
    """
    A service publishes n chats to one offline user as fast as PUBACKs allow,
    recording which were acknowledged; SIGKILL at 40%; restart on the same
    database and sync everything.
    """
    b = start_inbox_broker(brokers, keys, "storm", send_rate=0, max_per_user=2 * n, sync=sync)
    svc = Device.login(mqtt, b, keys, "storm-svc", role="service")
    c = svc.client
    # The whole storm queued in paho: it goes out as fast as PUBACKs come back,
    # up to 100 in flight (Mosquitto holds no incoming QoS 1 state to limit).
    c.c.max_inflight_messages_set(100)
    index_of_mid = {}
    for i in range(n):
        index_of_mid[c.publish_nowait("im/d-bob/chat", b"m%05d" % i).mid] = i
    assert len(index_of_mid) == n
    kill_at = n * 2 // 5
    ok = c._wait(lambda: len(c.pubacks) >= kill_at, 60 * SLOW)
    assert ok, f"only {len(c.pubacks)} PUBACKs"
    b.kill9()
    with c.cv:
        acked = {index_of_mid[mid] for mid, code in c.pubacks.items() if code in PUBACK_ACCEPTED}
        refused = {mid: code for mid, code in c.pubacks.items() if code not in PUBACK_ACCEPTED}
    assert not refused, f"refused during the storm: {refused}"
    assert kill_at <= len(acked) < n, "the kill did not land in the middle of the storm"
    mqtt.close_all()

    b.restart()
    bob = Device.login(mqtt, b, keys, "d-bob")
    t = time.monotonic()
    msgs, s = bob.sync_all()
    sync_s = time.monotonic() - t
    seqs = [m.seq for m in msgs]
    indexes = [int(m.body[1:]) for m in msgs]
    # Sequence numbers: 1, 2, 3, ... with no hole and none used twice.
    assert seqs == list(range(1, len(msgs) + 1)) and s.head_seq == len(msgs)
    # Every acknowledged message exactly once; what is stored is the storm's
    # first messages in order (some accepted whose PUBACK the kill cut off).
    assert len(set(indexes)) == len(indexes), "a message is stored twice"
    missing = sorted(acked - set(indexes))
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:10]}"
    assert indexes == list(range(len(indexes)))
    assert all(m.body == b"m%05d" % i for m, i in zip(msgs, indexes))
    assert sync_s < 30 * SLOW

    # New messages after the restart take seqs above every old one.
    svc = Device.login(mqtt, b, keys, "storm-svc", role="service")
    r = svc.send("d-bob", b"after restart")
    assert r.code == REPLY_OK and r.send.seq == s.head_seq + 1 and not r.send.duplicate
    assert svc.chat("d-bob", b"and live") in PUBACK_ACCEPTED
    envs = bob.wait_inbox(2)
    assert [(e.seq, e.body) for e in envs] == [(s.head_seq + 1, b"after restart"),
                                               (s.head_seq + 2, b"and live")]


def test_dedup_and_cursors_survive_kill9(brokers, keys, mqtt, pb):
    b = start_inbox_broker(brokers, keys, "dedup")
    svc = Device.login(mqtt, b, keys, "e-svc", role="service")
    alice = Device.login(mqtt, b, keys, "e-alice")
    for i in range(50):
        assert svc.chat("e-alice", b"%d" % i, msg_id="e-%d" % i) in PUBACK_ACCEPTED
    assert [e.seq for e in alice.wait_inbox(50)] == list(range(1, 51))
    for i in range(3):
        assert svc.notify("e-alice", "like", b"like %d" % i) in PUBACK_ACCEPTED
    assert alice.ack(53).code == REPLY_OK  # alice has seen everything
    b.kill9()
    mqtt.close_all()
    b.restart()
    svc = Device.login(mqtt, b, keys, "e-svc", role="service")
    # Resends are still recognised, with their original seq.
    for i in (0, 29, 49):
        r = svc.send("e-alice", b"resent", msg_id="e-%d" % i)
        assert (r.code, r.send.seq, r.send.duplicate) == (REPLY_OK, i + 1, True), r
    r = svc.send("e-alice", b"new", msg_id="e-50")
    assert (r.send.seq, r.send.duplicate) == (54, False)
    # The cursor survived: the "like" it covered is not counted as unread.
    assert svc.notify("e-alice", "like", b"like after restart") in PUBACK_ACCEPTED
    alice = Device.login(mqtt, b, keys, "e-alice")
    msgs, s = alice.sync_all(after_seq=50)
    assert [(m.seq, m.body, m.merged) for m in msgs] == [(54, b"new", 0),
                                                        (55, b"like after restart", 0)]
    assert alice.ack(56).code == 400 and alice.ack(55).code == REPLY_OK
