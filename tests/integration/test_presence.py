# SPDX-License-Identifier: Apache-2.0
"""
Presence (docs/protocol.md "Presence"): the retained im/<uid>/presence turns online when the
user's first device connects, offline only after the last one has been gone
for plugin_opt_presence_grace_ms (quick reconnects make no events), and
after a broker crash and restart no user is left shown online.
"""

import time

import pytest

from harness import SLOW
from inboxlib import Device, start_inbox_broker

GRACE_S = 1.5


@pytest.fixture(scope="module")
def broker(module_brokers, keys):
    return start_inbox_broker(module_brokers, keys, "presence", presence_grace_ms=int(GRACE_S * 1000))


def login(mqtt, broker, keys, uid, device="phone", **kw):
    return Device.login(mqtt, broker, keys, uid, device, **kw)


def watch(mqtt, broker, keys, uid="watcher", filt="im/+/presence"):
    """A service subscribed to presence."""
    return login(mqtt, broker, keys, uid, "svc", role="service", extra_filters=[filt])


def events(watcher, uid):
    return [p for p in watcher._collect().presence if p.uid == uid]


def wait_events(watcher, uid, n, timeout=5 * SLOW):
    ok = watcher.wait(lambda w: len(events(w, uid)) >= n, timeout)
    assert ok, f"{len(events(watcher, uid))} of {n} presence events of {uid}: {events(watcher, uid)}"
    return events(watcher, uid)


def now_ms():
    return int(time.time() * 1000)


def test_presence_turns_online_when_the_first_device_connects(broker, keys, mqtt, pb):
    w = watch(mqtt, broker, keys, "watcher-1")
    t0 = now_ms()
    login(mqtt, broker, keys, "o-alice", "phone")
    (p,) = wait_events(w, "o-alice", 1)
    assert p.online and [d.device for d in p.devices] == ["phone"]
    assert t0 <= p.devices[0].since_ms <= p.changed_at_ms <= now_ms()
    # A second device of a user already online changes nothing.
    login(mqtt, broker, keys, "o-alice", "laptop")
    time.sleep(0.5)
    assert len(events(w, "o-alice")) == 1
    # Retained: a service subscribing later is told at once.
    late = watch(mqtt, broker, keys, "watcher-2", "im/o-alice/presence")
    (p,) = wait_events(late, "o-alice", 1)
    assert p.online


def test_quick_reconnect_makes_no_event_and_offline_follows_the_grace(broker, keys, mqtt, pb):
    w = watch(mqtt, broker, keys, "watcher-3")
    phone = login(mqtt, broker, keys, "g-alice", "phone")
    wait_events(w, "g-alice", 1)
    # Reconnects within the grace, and one device of two leaving for longer.
    for _ in range(2):
        phone.close()
        time.sleep(0.3)
        phone = login(mqtt, broker, keys, "g-alice", "phone")
    laptop = login(mqtt, broker, keys, "g-alice", "laptop")
    phone.close()
    time.sleep(GRACE_S + 0.5)
    assert [p.online for p in events(w, "g-alice")] == [True]
    # The last device leaves: offline once the grace has passed, not before.
    t = time.monotonic()
    laptop.close()
    ps = wait_events(w, "g-alice", 2, timeout=GRACE_S + 5 * SLOW)
    elapsed = time.monotonic() - t
    assert [p.online for p in ps] == [True, False]
    assert list(ps[1].devices) == []
    assert elapsed >= GRACE_S - 0.05, f"offline after {elapsed:.2f}s, grace {GRACE_S}s"
    # And back online when a device returns.
    login(mqtt, broker, keys, "g-alice", "tablet")
    ps = wait_events(w, "g-alice", 3)
    assert ps[2].online and [d.device for d in ps[2].devices] == ["tablet"]


def test_session_takeover_makes_no_presence_event(broker, keys, mqtt, pb):
    """A second connection with the same client id replaces the first one."""
    w = watch(mqtt, broker, keys, "watcher-6")
    old = login(mqtt, broker, keys, "t-alice", "phone")
    wait_events(w, "t-alice", 1)
    new = login(mqtt, broker, keys, "t-alice", "phone")
    assert old.client.wait_disconnected()
    time.sleep(GRACE_S + 0.5)
    assert [p.online for p in events(w, "t-alice")] == [True]
    # The new connection is the one that counts: it leaving turns the user offline.
    new.close()
    ps = wait_events(w, "t-alice", 2, timeout=GRACE_S + 5 * SLOW)
    assert [p.online for p in ps] == [True, False]


def test_no_user_is_left_online_after_a_broker_crash(brokers, keys, mqtt, pb):
    b = start_inbox_broker(brokers, keys, "crash", presence_grace_ms=int(GRACE_S * 1000))
    w = watch(mqtt, b, keys, "watcher-4")
    login(mqtt, b, keys, "k-alice", "phone")
    login(mqtt, b, keys, "k-bob", "phone")
    assert wait_events(w, "k-alice", 1)[0].online
    assert wait_events(w, "k-bob", 1)[0].online
    b.kill9()
    mqtt.close_all()
    b.restart()
    # Mosquitto keeps no retained messages here (no persistence): what a new
    # subscriber is told comes from pigeon_inbox, which publishes offline at
    # start for everyone it had shown online.
    w = watch(mqtt, b, keys, "watcher-5")
    for uid in ("k-alice", "k-bob"):
        ps = wait_events(w, uid, 1)
        assert [p.online for p in ps] == [False], ps
    # The grace of a user who comes back after the restart works as usual.
    login(mqtt, b, keys, "k-alice", "phone")
    ps = wait_events(w, "k-alice", 2)
    assert ps[-1].online


def test_users_leaving_one_after_another_each_go_offline_after_their_own_grace(
        broker, keys, mqtt, pb):
    """Graces overlap: each ends on time, and a user back within it stays online."""
    w = watch(mqtt, broker, keys, "watcher-7")
    uids = ["l-ann", "l-bob", "l-cat"]
    devs = {u: login(mqtt, broker, keys, u) for u in uids}
    for u in uids:
        wait_events(w, u, 1)
    left = {}
    for u in uids:
        devs[u].close()
        left[u] = time.monotonic()
        time.sleep(0.3)
    devs["l-bob"] = login(mqtt, broker, keys, "l-bob")  # back within its grace
    for u in ("l-ann", "l-cat"):
        ps = wait_events(w, u, 2, timeout=GRACE_S + 5 * SLOW)
        assert [p.online for p in ps] == [True, False]
        elapsed = time.monotonic() - left[u]
        assert elapsed >= GRACE_S - 0.05, f"{u} offline after {elapsed:.2f}s"
    time.sleep(0.5)
    assert [p.online for p in events(w, "l-bob")] == [True]


def test_presence_offline_clear_keeps_no_retained_message_for_users_who_left(
        module_brokers, keys, mqtt, pb):
    """plugin_opt_presence_offline clear: live subscribers see offline, late ones nothing."""
    b = start_inbox_broker(module_brokers, keys, "presence-clear",
                           presence_grace_ms=int(GRACE_S * 1000), presence_offline="clear")
    w = watch(mqtt, b, keys, "watcher-c1")
    gone = login(mqtt, b, keys, "c-gone")
    stays = login(mqtt, b, keys, "c-stays")
    wait_events(w, "c-gone", 1)
    gone.close()
    ps = wait_events(w, "c-gone", 2, timeout=GRACE_S + 5 * SLOW)
    assert [p.online for p in ps] == [True, False]
    # A service subscribing now is told about the user online, not the one who left.
    late = watch(mqtt, b, keys, "watcher-c2")
    (p,) = wait_events(late, "c-stays", 1)
    assert p.online
    time.sleep(0.5)
    assert events(late, "c-gone") == []
    stays.close()
