# SPDX-License-Identifier: Apache-2.0
"""
Dedup scope (docs/protocol.md): the key is (sender, recipient, msg_id). A backend
that sends one msg-id to many users stores it once for each of them: every
recipient gets its own seq and none is a duplicate; a resend to any of them
is a duplicate of that recipient's own message, on both send paths, and
after a restart.
"""

from inboxlib import PUBACK_ACCEPTED, REPLY_OK, Device, start_inbox_broker


def test_one_msg_id_to_two_users_is_stored_for_each(brokers, keys, mqtt, pb):
    b = start_inbox_broker(brokers, keys, "scope")
    svc = Device.login(mqtt, b, keys, "s-svc", role="service")
    bob = Device.login(mqtt, b, keys, "s-bob")
    carol = Device.login(mqtt, b, keys, "s-carol")
    assert bob.chat("s-carol", b"carol's own first") in PUBACK_ACCEPTED  # carol is one ahead

    r_bob = svc.send("s-bob", b"broadcast", msg_id="campaign-1")
    r_carol = svc.send("s-carol", b"broadcast", msg_id="campaign-1")
    assert r_bob.code == REPLY_OK and not r_bob.send.duplicate and r_bob.send.seq == 1
    assert r_carol.code == REPLY_OK and not r_carol.send.duplicate and r_carol.send.seq == 2
    assert [e.body for e in bob.wait_inbox(1)] == [b"broadcast"]
    assert [e.body for e in carol.wait_inbox(2)][1] == b"broadcast"

    # The same msg-id over MQTT 5 to a third user is new as well.
    assert svc.chat("s-dave", b"broadcast", msg_id="campaign-1") in PUBACK_ACCEPTED

    def resend_is_duplicate():
        for dev, seq in ((bob, 1), (carol, 2)):
            r = svc.send(dev.uid, b"broadcast again", msg_id="campaign-1")
            assert r.code == REPLY_OK and r.send.duplicate and r.send.seq == seq, r
            assert svc.chat(dev.uid, b"broadcast again", msg_id="campaign-1") in PUBACK_ACCEPTED

    resend_is_duplicate()
    assert bob.sync().head_seq == 1 and carol.sync().head_seq == 2
    assert len(bob.quiet_inbox()) == 1 and len(carol.quiet_inbox()) == 2

    mqtt.close_all()
    b.stop()
    b.restart()
    svc = Device.login(mqtt, b, keys, "s-svc", role="service")
    bob = Device.login(mqtt, b, keys, "s-bob")
    carol = Device.login(mqtt, b, keys, "s-carol")
    resend_is_duplicate()
    msgs, s = bob.sync_all()
    assert [(m.seq, m.body) for m in msgs] == [(1, b"broadcast")]
    msgs, s = carol.sync_all()
    assert [(m.seq, m.body) for m in msgs] == [(1, b"carol's own first"), (2, b"broadcast")]
