# SPDX-License-Identifier: Apache-2.0
"""
pigeon_inbox through the real broker (docs/protocol.md): sends become Envelopes
on im/<to>/inbox in sequence order, INSTANT is never stored, devices have
their own cursors, replies go to the requesting device only, resends are
deduplicated, bad input gets clear errors without a disconnect, and the
$SYS/broker/pigeon counters are published.

Most tests share one broker (module scope, no rate limit) and use their own
uids; tests whose options matter start their own broker.
"""

import sqlite3
import time

import pytest

from harness import PUBACK_NOT_AUTHORIZED, PUBACK_OK, SLOW, TIMEOUT, wait_until
from inboxlib import (
    CONTROL_TOPIC,
    PUBACK_ACCEPTED,
    REPLY_BAD_REQUEST,
    REPLY_NOT_AVAILABLE,
    REPLY_OK,
    REPLY_RATE_LIMITED,
    REPLY_TOO_LARGE,
    Device,
    start_inbox_broker,
)

DEFAULT_TTL_MS = 604800 * 1000


@pytest.fixture(scope="module")
def broker(module_brokers, keys):
    return start_inbox_broker(module_brokers, keys, "inbox", send_rate=0)


def login(mqtt, broker, keys, uid, device="phone", **kw):
    return Device.login(mqtt, broker, keys, uid, device, **kw)


def now_ms():
    return int(time.time() * 1000)


def query_db(broker, sql, *args):
    """
    Rows from the broker's store, read-only. Cursors and push texts have no
    reply of their own in the protocol, so tests read them where the store
    keeps them (docs/store.md), waiting for the store thread to write them.
    """
    con = sqlite3.connect(f"file:{broker.dir / 'pigeon.db'}?mode=ro", uri=True, timeout=5)
    try:
        return list(con.execute(sql, args))
    finally:
        con.close()


def wait_for_cursors(broker, uid, want):
    """Waits until the device cursors of uid are want ({device: seq})."""
    got = {}

    def check():
        nonlocal got
        got = dict(query_db(broker, "SELECT device, seq FROM cursors WHERE uid = ?", uid))
        return got == want
    assert wait_until(check, TIMEOUT, interval=0.05), f"cursors {got}, want {want}"


# ------------------------------------------------------------ delivery


def test_chat_is_delivered_online_in_seq_order_as_an_envelope(broker, keys, mqtt, pb):
    alice = login(mqtt, broker, keys, "d-alice")
    bob = login(mqtt, broker, keys, "d-bob")
    t0 = now_ms()
    for i in range(5):
        assert bob.chat("d-alice", b"hello %d" % i, content_type="text/plain") == PUBACK_OK
    t1 = now_ms()
    envs = alice.wait_inbox(5)
    assert [e.seq for e in envs] == [1, 2, 3, 4, 5]
    for i, e in enumerate(envs):
        assert getattr(e, "from") == "d-bob"
        assert e.to == "d-alice"
        assert e.kind == pb.CHAT
        assert e.body == b"hello %d" % i
        assert e.content_type == "text/plain"
        assert t0 <= e.sent_at_ms <= t1
        assert e.expires_at_ms == e.sent_at_ms + DEFAULT_TTL_MS
        assert e.merged == 0 and e.type == "" and e.msg_id == ""
    # The sender gets nothing: the send topic is never delivered raw.
    assert not bob.quiet_inbox(0.2) and not bob.other


def test_notify_from_a_service_is_delivered_with_its_type(broker, keys, mqtt, pb):
    alice = login(mqtt, broker, keys, "n-alice")
    svc = login(mqtt, broker, keys, "n-svc", role="service")
    assert svc.notify("n-alice", "like", b"{}", content_type="application/json",
                      msg_id="n-1") == PUBACK_OK
    (e,) = alice.wait_inbox(1)
    assert (e.seq, e.kind, e.type, e.msg_id, e.content_type, e.body) == (
        1, pb.NOTIFY, "like", "n-1", "application/json", b"{}")
    assert getattr(e, "from") == "n-svc"


def test_sender_cannot_spoof_from(broker, keys, mqtt, pb):
    alice = login(mqtt, broker, keys, "s-alice")
    mallory = login(mqtt, broker, keys, "s-mallory")
    # A payload that is itself an Envelope "from" someone else, and a user
    # property claiming to be that someone: both are just data.
    fake = pb.Envelope(seq=99, to="s-alice", kind=pb.CHAT, body=b"pay me", **{"from": "s-bank"})
    payload = fake.SerializeToString()
    assert mallory.chat("s-alice", payload, user=[("from", "s-bank")]) == PUBACK_OK
    r = mallory.send("s-alice", payload)
    assert r.code == REPLY_OK, r
    envs = alice.wait_inbox(2)
    assert [getattr(e, "from") for e in envs] == ["s-mallory", "s-mallory"]
    assert [e.body for e in envs] == [payload, payload]  # untouched
    assert [e.seq for e in envs] == [1, 2]


def test_delivery_order_is_seq_order_when_publishes_and_send_requests_interleave(
        broker, keys, mqtt, pb):
    """Send requests are routed through Mosquitto's queue; publishes must not overtake them."""
    alice = login(mqtt, broker, keys, "o-alice")
    bob = login(mqtt, broker, keys, "o-bob")
    n = 400
    infos = []
    for i in range(n):
        body = b"%04d" % i
        if i % 3 == 1:
            req = pb.Request(id=100000 + i, send=pb.Send(to="o-alice", kind=pb.CHAT, body=body))
            infos.append(bob.client.publish_nowait(CONTROL_TOPIC, req.SerializeToString()))
        else:
            infos.append(bob.client.publish_nowait("im/o-alice/chat", body))
    envs = alice.wait_inbox(n, timeout=TIMEOUT * 4)
    assert [e.seq for e in envs] == list(range(1, n + 1))
    assert [e.body for e in envs] == [b"%04d" % i for i in range(n)]
    assert bob.wait(lambda d: len(d.replies) >= n // 3)
    assert all(r.code == REPLY_OK and r.send.seq == int(r.id) - 100000 + 1
               for r in bob.replies.values())


def test_push_properties_are_stored_with_the_message(broker, keys, mqtt, pb):
    svc = login(mqtt, broker, keys, "h-svc", role="service")
    assert svc.chat("h-alice", b"x", push_title="New message", push_body="from h-svc") in \
        PUBACK_ACCEPTED
    r = svc.send("h-alice", b"y", push_title="By request", push_body="body")
    assert r.code == REPLY_OK

    def rows():
        return query_db(broker, "SELECT seq, push_title, push_body FROM messages"
                                " WHERE uid = ? ORDER BY seq", "h-alice")
    want = [(1, "New message", "from h-svc"), (2, "By request", "body")]
    assert wait_until(lambda: rows() == want, TIMEOUT, interval=0.05), rows()


def test_bad_send_properties_are_refused_without_a_disconnect(broker, keys, mqtt, pb):
    bob = login(mqtt, broker, keys, "j-bob")
    assert bob.chat("j-alice", b"x", msg_id="m" * 129) == PUBACK_NOT_AUTHORIZED
    assert bob.chat("j-alice", b"x", msg_id="") == PUBACK_NOT_AUTHORIZED
    assert bob.chat("j-alice", b"x", ttl="-5") == PUBACK_NOT_AUTHORIZED
    r = bob.send("j-alice", b"x", msg_id="m" * 129)
    assert r.code == REPLY_BAD_REQUEST, r
    r = bob.send("j-alice~", b"x")
    assert r.code == REPLY_BAD_REQUEST and "uid" in r.error, r
    r = bob.send("j-alice", b"x", kind=pb.KIND_UNSPECIFIED)
    assert r.code == REPLY_BAD_REQUEST and "kind" in r.error, r
    assert bob.client.connected
    assert bob.chat("j-alice", b"fine", msg_id="m" * 128) in PUBACK_ACCEPTED
    alice = login(mqtt, broker, keys, "j-alice")
    msgs, s = alice.sync_all()
    assert [(m.seq, m.body) for m in msgs] == [(1, b"fine")] and s.head_seq == 1


def test_mqtt311_client_sends_by_request_and_receives_envelopes(broker, keys, mqtt, pb):
    """Clients without MQTT 5 properties use Send for msg_id, content_type and ttl."""
    c = mqtt.new(broker, "w-alice:old", "w-alice", keys.token("w-alice"), protocol=3)
    assert c.connect() == 0 and c.subscribe("im/w-alice/#") == [1]
    alice = Device(c, "w-alice", "old")
    bob = login(mqtt, broker, keys, "w-bob")
    r = alice.send("w-bob", b"hi", msg_id="w-1", content_type="text/plain", ttl_s=60)
    assert r.code == REPLY_OK and r.send.seq == 1
    (e,) = bob.wait_inbox(1)
    assert (getattr(e, "from"), e.msg_id, e.content_type, e.body) == ("w-alice", "w-1",
                                                                       "text/plain", b"hi")
    assert e.expires_at_ms == e.sent_at_ms + 60000
    assert bob.chat("w-alice", b"hello old client") == PUBACK_OK
    (e,) = alice.wait_inbox(1)
    assert (e.seq, e.body) == (1, b"hello old client")
    assert alice.sync().head_seq == 1


# ------------------------------------------------------------ instant


def test_instant_reaches_connected_devices_only_and_is_never_stored(broker, keys, mqtt, pb):
    phone = login(mqtt, broker, keys, "i-alice", "phone")
    tablet = login(mqtt, broker, keys, "i-alice", "tablet")
    bob = login(mqtt, broker, keys, "i-bob")
    assert bob.chat("i-alice", b"stored") in PUBACK_ACCEPTED
    assert bob.instant("i-alice", b"typing...", content_type="text/plain") in PUBACK_ACCEPTED
    assert bob.chat("i-alice", b"stored too") in PUBACK_ACCEPTED
    for d in (phone, tablet):
        envs = d.wait_inbox(3)
        assert [(e.kind, e.seq, e.body) for e in envs] == [
            (pb.CHAT, 1, b"stored"), (pb.INSTANT, 0, b"typing..."), (pb.CHAT, 2, b"stored too")]
        assert getattr(envs[1], "from") == "i-bob" and envs[1].content_type == "text/plain"
    msgs, s = phone.sync_all()
    assert [m.body for m in msgs] == [b"stored", b"stored too"]
    assert s.head_seq == 2  # the instant took no seq


def test_instant_is_not_delivered_later_to_a_persistent_session(broker, keys, mqtt, pb):
    # laptop: persistent session (clean_start=False, expiry 300 s), QoS 1 subscription.
    laptop = login(mqtt, broker, keys, "p-alice", "laptop", clean_start=False, session_expiry=300)
    bob = login(mqtt, broker, keys, "p-bob")
    laptop.close()
    assert bob.instant("p-alice", b"while you were away") in PUBACK_ACCEPTED
    assert bob.chat("p-alice", b"chat while away") in PUBACK_ACCEPTED
    laptop = login(mqtt, broker, keys, "p-alice", "laptop", clean_start=False, session_expiry=300)
    assert laptop.client.session_present  # the same session, with its QoS 1 subscription
    # A live instant after the reconnect arrives: everything before it has been flushed.
    assert bob.instant("p-alice", b"now") in PUBACK_ACCEPTED
    assert laptop.wait(lambda d: any(e.body == b"now" for e in d.inbox))
    assert b"while you were away" not in [e.body for e in laptop.quiet_inbox(0.3)]
    # The chat is there for sync; the instant never is.
    msgs, s = laptop.sync_all()
    assert [m.body for m in msgs] == [b"chat while away"] and s.head_seq == 1


# ------------------------------------------------------------ cursors and replies


def test_devices_have_independent_cursors_that_never_move_backward(broker, keys, mqtt, pb):
    phone = login(mqtt, broker, keys, "c-alice", "phone")
    laptop = login(mqtt, broker, keys, "c-alice", "laptop")
    svc = login(mqtt, broker, keys, "c-svc", role="service")
    for i in range(5):
        assert svc.chat("c-alice", b"m%d" % i) == PUBACK_OK
    phone.wait_inbox(5)
    assert phone.ack(3).code == REPLY_OK
    assert laptop.ack(1).code == REPLY_OK
    wait_for_cursors(broker, "c-alice", {"phone": 3, "laptop": 1})
    # Backward is accepted and ignored; forward moves only this device.
    assert phone.ack(2).code == REPLY_OK
    assert laptop.ack(5).code == REPLY_OK
    wait_for_cursors(broker, "c-alice", {"phone": 3, "laptop": 5})
    # Beyond the head: an error, and nothing moves.
    r = phone.ack(6)
    assert r.code == REPLY_BAD_REQUEST and "head" in r.error, r
    assert phone.ack(4).code == REPLY_OK
    wait_for_cursors(broker, "c-alice", {"phone": 4, "laptop": 5})
    # Sync is not affected by cursors: every device can still read everything.
    msgs, s = laptop.sync_all()
    assert [m.seq for m in msgs] == [1, 2, 3, 4, 5] and s.head_seq == 5




def test_sync_reply_reaches_only_the_requesting_device(broker, keys, mqtt, pb):
    phone = login(mqtt, broker, keys, "r-alice", "phone")
    laptop = login(mqtt, broker, keys, "r-alice", "laptop")  # also subscribed to im/r-alice/#
    bob = login(mqtt, broker, keys, "r-bob")
    assert bob.chat("r-alice", b"x") == PUBACK_OK
    s = phone.sync()
    assert [m.body for m in s.messages] == [b"x"]
    r = laptop.send("r-bob", b"y")
    assert r.code == REPLY_OK
    # Each device saw exactly its own reply, and a later request of each
    # (a barrier) shows nothing else was on its way.
    phone.sync()
    laptop.sync()
    assert len(phone.replies) == 2 and len(laptop.replies) == 2
    assert not set(phone.replies) & set(laptop.replies)
    assert not phone.other and not laptop.other


# ------------------------------------------------------------ dedup


def test_resent_msg_id_is_delivered_once_even_across_a_reconnect(broker, keys, mqtt, pb):
    alice = login(mqtt, broker, keys, "u-alice")
    bob = login(mqtt, broker, keys, "u-bob")
    carol = login(mqtt, broker, keys, "u-carol")
    assert bob.chat("u-alice", b"first", msg_id="m-1") == PUBACK_OK
    # A resend is acknowledged (the sender can stop retrying) and swallowed.
    assert bob.chat("u-alice", b"first (resent)", msg_id="m-1") in PUBACK_ACCEPTED
    bob.close()
    bob = login(mqtt, broker, keys, "u-bob")
    assert bob.chat("u-alice", b"first (after reconnect)", msg_id="m-1") in PUBACK_ACCEPTED
    # The same msg-id from another sender is another message.
    assert carol.chat("u-alice", b"carol's", msg_id="m-1") == PUBACK_OK
    assert bob.chat("u-alice", b"barrier", msg_id="m-2") == PUBACK_OK
    envs = alice.wait_inbox(3)
    assert [(e.seq, e.body, getattr(e, "from")) for e in alice.quiet_inbox(0.2)] == [
        (1, b"first", "u-bob"), (2, b"carol's", "u-carol"), (3, b"barrier", "u-bob")]
    msgs, _ = alice.sync_all()
    assert [m.body for m in msgs] == [e.body for e in envs]


def test_send_request_resend_returns_the_original_seq_as_duplicate(broker, keys, mqtt, pb):
    alice = login(mqtt, broker, keys, "v-alice")
    bob = login(mqtt, broker, keys, "v-bob")
    assert bob.chat("v-alice", b"zero") == PUBACK_OK
    r1 = bob.send("v-alice", b"one", msg_id="k-1")
    assert r1.code == REPLY_OK and r1.send.seq == 2 and not r1.send.duplicate
    # Resent by Send, by a publish with the same msg-id, and by Send after a reconnect.
    r2 = bob.send("v-alice", b"one again", msg_id="k-1")
    assert r2.code == REPLY_OK and r2.send.seq == 2 and r2.send.duplicate
    assert bob.chat("v-alice", b"one by publish", msg_id="k-1") in PUBACK_ACCEPTED
    bob.close()
    bob = login(mqtt, broker, keys, "v-bob")
    r3 = bob.send("v-alice", b"one after reconnect", msg_id="k-1")
    assert r3.code == REPLY_OK and r3.send.seq == 2 and r3.send.duplicate
    r4 = bob.send("v-alice", b"two", msg_id="k-2")
    assert r4.send.seq == 3 and not r4.send.duplicate
    alice.wait_inbox(3)
    assert [(e.seq, e.body) for e in alice.quiet_inbox(0.2)] == [
        (1, b"zero"), (2, b"one"), (3, b"two")]


def test_msg_id_is_accepted_again_after_the_dedup_window(brokers, keys, mqtt, pb):
    b = start_inbox_broker(brokers, keys, "window", dedup_window_s=1)
    bob = login(mqtt, b, keys, "x-bob")
    r1 = bob.send("x-alice", b"one", msg_id="k")
    r2 = bob.send("x-alice", b"one again", msg_id="k")
    assert (r1.send.seq, r2.send.seq, r2.send.duplicate) == (1, 1, True)
    time.sleep(1.3)
    r3 = bob.send("x-alice", b"one, a day later", msg_id="k")
    assert (r3.code, r3.send.seq, r3.send.duplicate) == (REPLY_OK, 2, False)
    r4 = bob.send("x-alice", b"and its resend", msg_id="k")
    assert (r4.send.seq, r4.send.duplicate) == (2, True)


# ------------------------------------------------------------ bad input


@pytest.fixture(scope="module")
def strict(module_brokers, keys):
    """max_body 1024, send_rate 5 per second (burst 10) per sender."""
    return start_inbox_broker(module_brokers, keys, "strict", max_body=1024, send_rate=5)


def assert_still_serves(dev):
    """The client is connected and a request still works."""
    assert dev.client.connected
    s = dev.sync()
    assert s.head_seq >= 0


def test_malformed_request_gets_400_and_the_client_stays_connected(strict, keys, mqtt, pb):
    alice = login(mqtt, strict, keys, "b-alice")
    # Not a protobuf at all: no id can be read, so the Reply has id 0.
    r = alice.request_raw(b"\xff\xff\xff\xff garbage", 0)
    assert r.code == REPLY_BAD_REQUEST and "protobuf" in r.error, r
    assert_still_serves(alice)
    # A truncated Request (a length beyond the payload).
    del alice.replies[0]
    r = alice.request_raw(b"\x08\x07\x12\x40\x08", 0)
    assert r.code == REPLY_BAD_REQUEST, r
    assert_still_serves(alice)


def test_request_without_a_body_gets_400_unknown_request(strict, keys, mqtt, pb):
    alice = login(mqtt, strict, keys, "e-alice")
    r = alice.request_raw(pb.Request(id=4242).SerializeToString(), 4242)
    assert r.code == REPLY_BAD_REQUEST and r.error == "unknown request type", r
    assert_still_serves(alice)


def test_register_device_gets_501_until_push_is_available(strict, keys, mqtt, pb):
    alice = login(mqtt, strict, keys, "g-alice")
    r = alice.request(register_device=pb.RegisterDevice(platform="fcm", token="t", app="a"))
    assert r.code == REPLY_NOT_AVAILABLE and r.error, r
    r = alice.request(unregister_device=pb.UnregisterDevice())
    assert r.code == REPLY_NOT_AVAILABLE, r
    assert_still_serves(alice)


def test_oversized_body_is_refused_0x87_or_413_and_nothing_is_stored(strict, keys, mqtt, pb):
    alice = login(mqtt, strict, keys, "z-alice")
    bob = login(mqtt, strict, keys, "z-bob")
    assert bob.chat("z-alice", b"x" * 1024) == PUBACK_OK  # exactly the limit
    assert bob.chat("z-alice", b"x" * 1025) == PUBACK_NOT_AUTHORIZED
    r = bob.send("z-alice", b"y" * 1025)
    assert r.code == REPLY_TOO_LARGE and "max_body" in r.error, r
    assert bob.client.connected
    assert bob.chat("z-alice", b"small") == PUBACK_OK
    envs = alice.wait_inbox(2)
    assert [len(e.body) for e in alice.quiet_inbox(0.2)] == [1024, 5]
    assert [e.seq for e in envs] == [1, 2]
    strict.expect_log(r"pigeon_inbox: refused send from z-bob:phone to 'im/z-alice/chat': "
                      r"body larger than plugin_opt_max_body")


def test_send_rate_limit_gives_0x87_and_429_then_recovers(strict, keys, mqtt, pb):
    alice = login(mqtt, strict, keys, "l-alice")
    bob = login(mqtt, strict, keys, "l-bob")
    codes = [bob.chat("l-alice", b"%d" % i) for i in range(20)]
    # Burst 10 (2x the rate) plus what refills while sending.
    accepted = codes.count(PUBACK_OK)
    assert 10 <= accepted < 20 and codes[:10] == [PUBACK_OK] * 10, codes
    assert set(codes) == {PUBACK_OK, PUBACK_NOT_AUTHORIZED}
    r = bob.send("l-alice", b"by request")
    assert r.code == REPLY_RATE_LIMITED and "rate" in r.error, r
    assert bob.client.connected
    # Another sender is not limited by bob's bucket.
    carol = login(mqtt, strict, keys, "l-carol")
    assert carol.chat("l-alice", b"carol") == PUBACK_OK
    # The bucket refills at 5 per second.
    time.sleep(0.5)
    assert bob.chat("l-alice", b"later") == PUBACK_OK
    alice.wait_inbox(accepted + 2)
    assert [e.seq for e in alice.quiet_inbox(0.2)] == list(range(1, accepted + 3))


def test_sighup_reload_keeps_the_inbox_and_its_state(brokers, keys, mqtt, pb):
    b = start_inbox_broker(brokers, keys, "reload")
    alice = login(mqtt, b, keys, "h-alice")
    svc = login(mqtt, b, keys, "h-svc", role="service")
    assert svc.chat("h-alice", b"before", msg_id="h-1") == PUBACK_OK
    mark = b.mark()
    b.reload()
    b.expect_log(r"Reloading config", mark)
    # Same connections, same store: seq continues, dedup remembers.
    assert svc.chat("h-alice", b"before (resent)", msg_id="h-1") in PUBACK_ACCEPTED
    assert svc.chat("h-alice", b"after") == PUBACK_OK
    envs = alice.wait_inbox(2)
    assert [(e.seq, e.body) for e in alice.quiet_inbox(0.2)] == [(1, b"before"), (2, b"after")]
    assert [e.seq for e in envs] == [1, 2]
    msgs, s = alice.sync_all()
    assert [m.body for m in msgs] == [b"before", b"after"] and s.head_seq == 2


# ------------------------------------------------------------ $SYS


def test_sys_counters_are_published_under_broker_pigeon(brokers, keys, mqtt, pb):
    b = start_inbox_broker(brokers, keys, "sys", sys_interval=1)
    ops = login(mqtt, b, keys, "ops", role="service", extra_filters=["$SYS/broker/pigeon/#"])
    alice = login(mqtt, b, keys, "y-alice")
    bob = login(mqtt, b, keys, "y-bob")
    for i in range(3):
        assert bob.chat("y-alice", b"%d" % i, msg_id="y-%d" % i) == PUBACK_OK
    assert bob.chat("y-alice", b"0", msg_id="y-0") in PUBACK_ACCEPTED  # a duplicate
    assert bob.instant("y-alice", b"i") in PUBACK_ACCEPTED
    alice.sync()

    def counters_seen(d):
        s = d.sys
        return (s.get("$SYS/broker/pigeon/messages/stored") == "3"
                and s.get("$SYS/broker/pigeon/messages/duplicates") == "1"
                and s.get("$SYS/broker/pigeon/messages/instant") == "1"
                and int(s.get("$SYS/broker/pigeon/requests/syncs", "0")) >= 1
                and s.get("$SYS/broker/pigeon/users/online") == "3"
                and s.get("$SYS/broker/pigeon/devices/online") == "3")
    assert ops.wait(counters_seen, timeout=5 * SLOW), ops.sys
    for leaf in ("messages/merged", "messages/delivered", "messages/dropped/expired",
                 "messages/dropped/cap", "requests/answered", "requests/acks", "store/pending",
                 "store/errors", "refused/body_too_large", "refused/rate_limited"):
        assert f"$SYS/broker/pigeon/{leaf}" in ops.sys, leaf
    assert int(ops.sys["$SYS/broker/pigeon/messages/delivered"]) >= 4
