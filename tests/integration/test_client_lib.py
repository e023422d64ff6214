# SPDX-License-Identifier: Apache-2.0
"""
libpigeon-client against the real broker (docs/client.md), driven through
pigeon-client: its stdout is what the library handed to the app, one JSON
line per callback. A NetProxy (netproxy.py) between the two makes the
network fail: connections dropped mid-stream, or blackholed (dead without
a word, as on a mobile network).

What is proven:
  - every stored message reaches the app exactly once and in seq order
    while the broker is kill -9'd and restarted and connections dropped;
  - a restarted client syncs from its saved cursor: nothing twice;
  - replaced notifications are a gap "gone", retention a gap "retention";
  - a send whose answer is lost is retried across a reconnect and across a
    kill -9 of the client process, and stored exactly once;
  - the parallel connect takes the live address well within the connect
    timeout when the first one is dead, and remembers it;
  - the keepalive interval grows while heartbeats are answered, a silent
    death is detected within interval + timeout, and the interval falls back;
  - device registration gets the broker's answer (501 without pigeon_push,
    0 with it, and then the device gets pushes).
Every wait is bounded.
"""

import time

import pytest

import pushlib
from clientlib import ClientProc, Sender
from harness import SLOW, wait_until
from inboxlib import PUBACK_ACCEPTED, Device, start_inbox_broker
from netproxy import NetProxy

# Fast reconnects and request repeats, so failures are recovered from in test time.
FAST = ["--reconnect-min", "100", "--reconnect-max", "800", "--request-timeout", "1000",
        "--connect-timeout", "2000"]


@pytest.fixture
def proxies():
    made = []
    yield made
    for p in made:
        p.close()


def client(procs, tmp_path, keys, uid, servers, *extra, device="phone", state=None, stdin=False,
           env=None):
    """A pigeon-client for uid:device on servers (URIs), state in tmp_path/<state or uid>."""
    state_dir = tmp_path / (state or f"state-{uid}-{device}")
    args = ["--token", keys.token(uid, dev=device), "--state-dir", state_dir] + FAST
    for s in servers:
        args += ["--server", s]
    p = ClientProc(args + list(extra), tmp_path, stdin=stdin, env=env)
    procs.append(p)
    return p


def uri(broker):
    return f"tcp://127.0.0.1:{broker.port}"


def seqs(envs):
    return [e["seq"] for e in envs]


# ------------------------------------------------------------ exactly once, in order


def test_every_message_once_in_order_through_broker_kills_and_dropped_connections(
        brokers, keys, pb, tmp_path, procs, proxies):
    n = 150
    b = start_inbox_broker(brokers, keys, "kills", send_rate=0)
    proxy = NetProxy(b.port)
    proxies.append(proxy)
    c = client(procs, tmp_path, keys, "k-alice", [proxy.uri], "--count", n, "--stats")
    c.expect_err(r"online")
    sender = Sender(b, keys, "k-svc", "k-alice", n, pace=0.01)
    sender.start()
    kills = drops = 0
    for cycle in range(3):
        target = (cycle + 1) * n // 5
        assert wait_until(lambda: sender.acked >= target, 20 * SLOW), \
            f"sender stuck at {sender.acked}"
        b.kill9()
        kills += 1
        time.sleep(0.2)
        b.restart()
        proxy.target_port = b.port
        # Back online before the next kill, so every kill costs a reconnect
        # (a kill during the backoff wait would not).
        assert wait_until(lambda: c.stderr_text().count(": online ") >= 1 + kills, 20 * SLOW), \
            c.stderr_text()[-3000:]
        assert wait_until(lambda: sender.acked >= target + n // 10, 20 * SLOW), \
            f"sender stuck at {sender.acked} after restart {cycle}"
        drops += proxy.drop_all() > 0
    sender.join(60 * SLOW)
    assert sender.error is None and sender.acked == n, (sender.error, sender.acked)
    assert c.wait(30 * SLOW) == 0, c.stderr_text()[-3000:]
    envs = c.envelopes()
    assert seqs(envs) == list(range(1, n + 1)), c.stderr_text()[-3000:]
    assert [e["body"] for e in envs] == [Sender.body(i) for i in range(n)]
    assert all(e["kind"] == "CHAT" and e["from"] == "k-svc" for e in envs)
    (st,) = c.items("stats")
    assert st["delivered"] == n and st["cursor"] == n
    assert st["connects"] >= 1 + kills, st  # it came back after every kill
    assert kills == 3 and drops >= 1


def test_a_restarted_client_syncs_from_its_saved_cursor_and_gets_nothing_twice(
        brokers, keys, mqtt, pb, tmp_path, procs):
    b = start_inbox_broker(brokers, keys, "cursor", send_rate=0)
    svc = Device.login(mqtt, b, keys, "c-svc", role="service")
    for i in range(5):
        assert svc.chat("c-alice", b"a%d" % i) in PUBACK_ACCEPTED
    first = client(procs, tmp_path, keys, "c-alice", [uri(b)], "--until-synced")
    assert first.wait() == 0
    assert seqs(first.envelopes()) == [1, 2, 3, 4, 5]

    # Stored while it was stopped: exactly those arrive on the next start.
    for i in range(5, 9):
        assert svc.chat("c-alice", b"a%d" % i) in PUBACK_ACCEPTED
    second = client(procs, tmp_path, keys, "c-alice", [uri(b)], "--until-synced")
    assert second.wait() == 0
    assert seqs(second.envelopes()) == [6, 7, 8, 9]
    assert [e["body"] for e in second.envelopes()] == ["a5", "a6", "a7", "a8"]

    # Live messages, then SIGTERM: a clean stop saves the cursor too.
    live = client(procs, tmp_path, keys, "c-alice", [uri(b)])
    live.expect_err(r"synced")
    for i in range(9, 12):
        assert svc.chat("c-alice", b"a%d" % i) in PUBACK_ACCEPTED
    assert seqs(live.wait_envelopes(3)) == [10, 11, 12]
    assert live.terminate() == 0
    assert svc.chat("c-alice", b"a12") in PUBACK_ACCEPTED
    last = client(procs, tmp_path, keys, "c-alice", [uri(b)], "--until-synced")
    assert last.wait() == 0
    assert seqs(last.envelopes()) == [13]


# ------------------------------------------------------------ gaps


def test_replaced_notifications_are_a_gap_gone(brokers, keys, mqtt, pb, tmp_path, procs):
    b = start_inbox_broker(brokers, keys, "gone", send_rate=0)
    svc = Device.login(mqtt, b, keys, "g-svc", role="service")
    assert svc.chat("g-alice", b"before") in PUBACK_ACCEPTED  # seq 1
    for i in range(3):  # seqs 2, 3, 4: only 4 stays, 2 and 3 are replaced
        assert svc.notify("g-alice", "like", b"like %d" % i) in PUBACK_ACCEPTED
    assert svc.chat("g-alice", b"after") in PUBACK_ACCEPTED  # seq 5
    c = client(procs, tmp_path, keys, "g-alice", [uri(b)], "--until-synced")
    assert c.wait() == 0, c.stderr_text()
    got = [("gap", o["gap"]["first"], o["gap"]["last"], o["gap"]["reason"]) if "gap" in o
           else ("msg", o["seq"], o["body"], o["merged"]) for o in c.out]
    assert got == [("msg", 1, "before", 0), ("gap", 2, 3, "gone"), ("msg", 4, "like 2", 2),
                   ("msg", 5, "after", 0)]


def test_messages_dropped_by_retention_are_a_gap_retention(brokers, keys, mqtt, pb, tmp_path,
                                                          procs):
    b = start_inbox_broker(brokers, keys, "retention", send_rate=0, max_per_user=3)
    svc = Device.login(mqtt, b, keys, "r-svc", role="service")
    for i in range(6):
        assert svc.chat("r-alice", b"r%d" % i) in PUBACK_ACCEPTED
    c = client(procs, tmp_path, keys, "r-alice", [uri(b)], "--until-synced")
    assert c.wait() == 0, c.stderr_text()
    got = [("gap", o["gap"]["first"], o["gap"]["last"], o["gap"]["reason"]) if "gap" in o
           else ("msg", o["seq"], o["body"]) for o in c.out]
    assert got == [("gap", 1, 3, "retention"), ("msg", 4, "r3"), ("msg", 5, "r4"),
                   ("msg", 6, "r5")]


# ------------------------------------------------------------ sends that survive


def stored_for(mqtt, b, keys, uid, device="check"):
    """What uid's inbox holds now (a sync from another device)."""
    d = Device.login(mqtt, b, keys, uid, device=device, subscribe=True)
    msgs, _ = d.sync_all()
    d.close()
    return msgs


def test_a_send_whose_answer_is_lost_is_retried_across_a_reconnect_and_stored_once(
        brokers, keys, mqtt, pb, tmp_path, procs, proxies):
    b = start_inbox_broker(brokers, keys, "resend", send_rate=0)
    proxy = NetProxy(b.port)
    proxies.append(proxy)
    c = client(procs, tmp_path, keys, "s-alice", [proxy.uri], "--stdin", "--keepalive-min", 1,
               "--keepalive-max", 1, "--keepalive-timeout", 1, "--stats", stdin=True)
    c.expect_err(r"synced")
    proxy.blackhole(up=False, down=True)  # the send reaches the broker, its answer does not
    t0 = time.monotonic()
    c.write("s-bob hello across a reconnect")
    c.expect_err(r"queued cli-")
    assert wait_until(lambda: len(stored_for(mqtt, b, keys, "s-bob")) == 1, 5 * SLOW)
    c.expect_err(r"offline", since=t0, timeout=10 * SLOW)  # the dead connection was noticed
    proxy.forward()
    assert c.wait_out(lambda p: p.items("sent"), 15 * SLOW), c.stderr_text()[-3000:]
    (sent,) = c.items("sent")
    # duplicate is true when the resend's answer came first, false when the
    # broker redelivered the first answer to the new connection (a persistent
    # session): either way the one stored message.
    assert sent["to"] == "s-bob" and sent["seq"] == 1, sent
    c.close_stdin()
    assert c.wait() == 0
    assert c.items("stats")[0]["connects"] >= 2
    msgs = stored_for(mqtt, b, keys, "s-bob")
    assert [(m.seq, m.body, getattr(m, "from")) for m in msgs] == \
        [(1, b"hello across a reconnect", "s-alice")]


@pytest.mark.parametrize("stored_before_kill", [True, False])
def test_a_send_survives_a_kill9_of_the_client_and_is_stored_once(
        brokers, keys, mqtt, pb, tmp_path, procs, proxies, stored_before_kill):
    b = start_inbox_broker(brokers, keys, "outbox", send_rate=0)
    proxy = NetProxy(b.port)
    proxies.append(proxy)
    c = client(procs, tmp_path, keys, "o-alice", [proxy.uri], "--stdin", stdin=True,
               state="outbox-state")
    c.expect_err(r"synced")
    # Answer lost (stored) or request lost (not stored): either way no answer came.
    proxy.blackhole(up=not stored_before_kill, down=True)
    c.write("o-bob survives a crash")
    msg_id = c.expect_err(r"queued (cli-[0-9a-f]+)")[1].group(1)
    if stored_before_kill:
        assert wait_until(lambda: len(stored_for(mqtt, b, keys, "o-bob")) == 1, 5 * SLOW)
    c.kill9()
    assert c.items("sent") == []

    again = client(procs, tmp_path, keys, "o-alice", [uri(b)], "--drain", "--stats",
                   state="outbox-state")
    assert again.wait(15 * SLOW) == 0, again.stderr_text()
    (sent,) = again.items("sent")
    assert sent["msg_id"] == msg_id and sent["seq"] == 1
    assert sent["duplicate"] is stored_before_kill
    assert again.items("stats")[0]["outbox"] == 0
    msgs = stored_for(mqtt, b, keys, "o-bob")
    assert [(m.seq, m.body, m.msg_id) for m in msgs] == [(1, b"survives a crash", msg_id)]


# ------------------------------------------------------------ weak networks


def test_the_parallel_connect_takes_the_live_address_and_remembers_it(
        brokers, keys, pb, tmp_path, procs, proxies):
    b = start_inbox_broker(brokers, keys, "race")
    dead = NetProxy(b.port)  # accepts TCP, never answers MQTT
    dead.blackhole()
    proxies.append(dead)
    servers = [dead.uri, uri(b)]
    t0 = time.monotonic()
    c = client(procs, tmp_path, keys, "p-alice", servers, "--connect-timeout", 10000,
               "--until-synced", "--stats", state="race-state")
    assert c.wait(15 * SLOW) == 0, c.stderr_text()
    elapsed = time.monotonic() - t0
    # One after the other would take the 10 s connect timeout of the dead one first.
    assert elapsed < 4 * SLOW, f"{elapsed:.2f}s to connect"
    assert c.expect_err(r"online (\S+)")[1].group(1) == uri(b)
    assert c.items("stats")[0]["server"] == uri(b)
    remembered = [f for f in (tmp_path / "race-state").rglob("*")
                  if f.is_file() and uri(b).encode() in f.read_bytes()]
    assert remembered, f"the winner is in no file of {list((tmp_path / 'race-state').rglob('*'))}"

    # The next start tries the remembered winner first: quick again.
    t0 = time.monotonic()
    c2 = client(procs, tmp_path, keys, "p-alice", servers, "--connect-timeout", 10000,
                "--until-synced", state="race-state")
    assert c2.wait(15 * SLOW) == 0
    assert time.monotonic() - t0 < 4 * SLOW
    assert c2.expect_err(r"online (\S+)")[1].group(1) == uri(b)


def test_keepalive_grows_detects_a_silent_death_and_falls_back(
        brokers, keys, pb, tmp_path, procs, proxies):
    b = start_inbox_broker(brokers, keys, "keepalive")
    proxy = NetProxy(b.port)
    proxies.append(proxy)
    c = client(procs, tmp_path, keys, "h-alice", [proxy.uri], "--keepalive-min", 1,
               "--keepalive-max", 3, "--keepalive-step", 1, "--keepalive-timeout", 1, "--stats")
    c.expect_err(r"online")
    c.expect_err(r"keepalive 1s")
    c.expect_err(r"keepalive 2s", timeout=15 * SLOW)
    c.expect_err(r"keepalive 3s", timeout=20 * SLOW)  # grown while heartbeats were answered

    proxy.blackhole()  # the connection dies without a word
    t0 = time.monotonic()
    t_off, _ = c.expect_err(r"offline", since=t0, timeout=10 * SLOW)
    # Noticed within the interval (3 s) + the heartbeat timeout (1 s), plus scheduling slack.
    assert t_off - t0 <= (3 + 1 + 1.5) * SLOW, f"silent death noticed after {t_off - t0:.2f}s"
    proxy.forward()
    c.expect_err(r"online", since=t_off, timeout=10 * SLOW)
    # Back to the longest interval that survived, settled there.
    c.expect_err(r"keepalive [12]s", since=t0, timeout=5 * SLOW)
    assert c.terminate() == 0
    (st,) = c.items("stats")
    assert st["silent_deaths"] >= 1 and st["connects"] >= 2, st
    assert st["keepalive_s"] < 3, st


# ------------------------------------------------------------ devices


def test_registering_without_pigeon_push_gets_501(brokers, keys, pb, tmp_path, procs):
    b = start_inbox_broker(brokers, keys, "nopush")
    c = client(procs, tmp_path, keys, "d-alice", [uri(b)], "--register", "webhook:tok-1",
               "--until-synced")
    assert c.wait() == 0, c.stderr_text()
    (d,) = c.items("device")
    assert d["code"] == 501 and d["error"], d


@pytest.mark.skipif(not pushlib.have_push_plugin(), reason="pigeon_push.so not built")
def test_a_registered_device_gets_a_push_when_offline(brokers, keys, mqtt, pb, tmp_path, procs,
                                                       push_ca, fakes):
    hook = fakes.start("webhook")
    b = pushlib.start_push_broker(brokers, keys, "push", push_ca, {"webhook": hook},
                                  **pushlib.FAST)
    c = client(procs, tmp_path, keys, "w-alice", [uri(b)], "--register", "webhook:hook-dev-1",
               "--until-synced")
    assert c.wait() == 0, c.stderr_text()
    assert c.items("device") == [{"code": 0, "error": ""}]
    bob = Device.login(mqtt, b, keys, "w-bob")
    assert bob.chat("w-alice", b"are you there", push_title="Bob") in PUBACK_ACCEPTED
    (r,) = hook.wait_delivered(1)
    assert r["json"]["token"] == "hook-dev-1"

    c2 = client(procs, tmp_path, keys, "w-alice", [uri(b)], "--unregister", "--until-synced")
    assert c2.wait() == 0
    assert c2.items("device") == [{"code": 0, "error": ""}]
    assert [e["body"] for e in c2.envelopes()] == ["are you there"]
