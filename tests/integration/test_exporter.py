# SPDX-License-Identifier: Apache-2.0
"""
pigeon-exporter (docs/operations.md, the issue 12 contract) against the real
broker: pigeon_auth + pigeon_inbox + pigeon_push with a fake APNs, and
Mosquitto's and every plugin's sys_interval at 1 s.

- /metrics is valid text format 0.0.4: `promtool check metrics` finds
  nothing to say (but the one name the contract gives a _total gauge), and
  a strict parser (exporterlib.parse_exposition) accepts it.
- The counters move by exactly what was done: N sends, deliveries,
  refusals by reason, syncs, acks, logins, a push through the fake provider,
  the histograms' counts; Mosquitto's own figures are there and move.
- While the broker is down only the exporter's own metrics are served
  (pigeon_up 0); after a restart it reconnects by itself.
- --check live|ready and /health/live|ready: 0/200 while serving, 1/503
  with the broker down or the store failing (a full disk: RLIMIT_FSIZE 0 on
  the broker, as test_store_faults.py makes it), and back after recovery.
- Bad command lines and unusable brokers get a clear message and the
  documented exit code; garbage on $SYS (from a fake MQTT server, since
  Mosquitto lets no client publish there) never crashes it.
"""

import os
import random
import re
import resource
import socket
import time

import pytest

import harness
import pushlib
from exporterlib import (OWN_FAMILIES, ExporterPool, FakeSysBroker, broker_args,
                         parse_exposition, promtool_problems, run_exporter)
from harness import SLOW, TIMEOUT, free_port, wait_until
from inboxlib import PUBACK_ACCEPTED, REPLY_OK, Device, inbox_plugins
from pushlib import PushWorld, device_token
from test_store_faults import DbLock, set_fsize  # the store fault techniques

SYS1 = ["sys_interval 1"]  # Mosquitto's own $SYS every second
PLATFORMS = ("apns", "fcm", "huawei", "xiaomi", "webhook", "none")
MAX_BODY = 1024

# Every family of the contract (/tmp/spec/metrics.md), the exporter's own included.
CONTRACT_FAMILIES = {
    "pigeon_messages_stored_total", "pigeon_messages_merged_total",
    "pigeon_messages_duplicates_total", "pigeon_messages_delivered_total",
    "pigeon_messages_instant_total", "pigeon_messages_dropped_total", "pigeon_requests_total",
    "pigeon_syncs_total", "pigeon_acks_total", "pigeon_refused_total",
    "pigeon_store_backlog_records", "pigeon_store_backlog_bytes", "pigeon_store_errors_total",
    "pigeon_store_failing", "pigeon_devices_online", "pigeon_users_online",
    "pigeon_store_apply_seconds", "pigeon_sync_reply_bytes",
    "pigeon_push_total", "pigeon_push_failures_total", "pigeon_push_outbox",
    "pigeon_push_outbox_oldest_seconds", "pigeon_push_devices_registered",
    "pigeon_push_latency_seconds", "pigeon_devices_online_by_platform",
    "pigeon_users_online_by_platform",
    "pigeon_auth_logins_total", "pigeon_auth_denied_total", "pigeon_auth_disconnected_total",
    "mosquitto_clients_connected", "mosquitto_clients_disconnected", "mosquitto_clients_maximum",
    "mosquitto_clients_registered", "mosquitto_messages_received_total",
    "mosquitto_messages_sent_total", "mosquitto_publish_messages_received_total",
    "mosquitto_publish_messages_sent_total", "mosquitto_publish_messages_dropped_total",
    "mosquitto_bytes_received_total", "mosquitto_bytes_sent_total", "mosquitto_store_messages",
    "mosquitto_store_messages_bytes", "mosquitto_retained_messages", "mosquitto_subscriptions",
    "mosquitto_uptime_seconds", "mosquitto_build_info",
} | OWN_FAMILIES

# What a broker with the three plugins always publishes, traffic or not.
ALWAYS = CONTRACT_FAMILIES - {"pigeon_push_failures_total", "pigeon_exporter_sys_age_seconds"}
# The same without pigeon_push.
INBOX_ALWAYS = {n for n in ALWAYS if not n.startswith("pigeon_push") and "by_platform" not in n}

STORE_APPLY_BOUNDS = ["0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
                      "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]
SYNC_REPLY_BOUNDS = ["256", "1024", "4096", "16384", "65536", "262144", "1048576", "4194304",
                     "+Inf"]
PUSH_LATENCY_BOUNDS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
                       "10", "30", "+Inf"]

# Longer than a $SYS interval and a half: a counter that was going to move has moved.
SETTLE = 2.2 * SLOW


@pytest.fixture(scope="module")
def world(module_brokers, keys, module_mqtt, push_ca, tmp_path_factory, pb):
    """
    A PushWorld (auth + inbox + push, a fake APNs; send_rate 1 so that a
    third quick send is refused, max_body 1 KiB) with an exporter on it
    that mints its own token from the broker's secret (world.exporter).
    """
    fakes = pushlib.FakePool(tmp_path_factory.mktemp("exporter-fakes"), push_ca)
    exporters = ExporterPool(tmp_path_factory.mktemp("exporters"))
    try:
        w = PushWorld(module_brokers, keys, module_mqtt, {"apns": fakes.start("apns")},
                      name="exp", inbox={"sys_interval": 1, "max_body": MAX_BODY, "send_rate": 1},
                      auth={"sys_interval": 1}, extra_config=SYS1)
        w.exporter = exporters.start(broker_args(w.broker) + ["--secret-file", keys.secret_file])
        # Mosquitto publishes some leaves only once they change: wait for all.
        w.exporter.wait_metrics(lambda x: ALWAYS <= x.names(), what="every family")
        w.exporters = exporters
        yield w
    finally:
        exporters.stop_all()
        fakes.stop_all()


@pytest.fixture
def exporters(tmp_path):
    pool = ExporterPool(tmp_path / "exporters")
    yield pool
    pool.stop_all()


def pigeon_series(exp):
    """{(sample name, labels): value} of every pigeon_* series but the exporter's own."""
    return {(s, frozenset(l.items())): v for f in exp.families.values()
            if f.name.startswith("pigeon_") and f.name not in OWN_FAMILIES
            for s, l, v in f.samples}


def settled(exporter, timeout=20 * SLOW):
    """/metrics once pigeon's series stand still across a $SYS interval and a half."""
    prev = pigeon_series(exporter.wait_up())

    def still():
        nonlocal prev
        time.sleep(1.5)
        cur = pigeon_series(exporter.metrics())
        same, prev = cur == prev, cur
        return same
    assert wait_until(still, timeout, interval=0), "pigeon's counters never stood still"
    return exporter.metrics()


def deltas(before, after, wanted):
    """{key: after - before} for each (name, labels dict) key of wanted."""
    out = {}
    for name, labels in wanted:
        a, b = after.value(name, **labels), before.value(name, **labels)
        out[(name, tuple(sorted(labels.items())))] = None if a is None else a - (b or 0)
    return out


def expect_deltas(exporter, before, want, timeout=TIMEOUT + 10):
    """
    Waits until every series moved by exactly its wanted delta (want:
    {(name, labels tuple): delta}), then checks that it stays so across
    another interval: nothing moved more than what was done.
    """
    keys = [(n, dict(l)) for n, l in want]
    got = {}

    def ok(exp):
        nonlocal got
        got = deltas(before, exp, keys)
        return got == want
    try:
        exporter.wait_metrics(ok, timeout, what="the wanted deltas")
    except AssertionError as e:
        raise AssertionError(f"deltas {got} != wanted {want}\n{e}")
    time.sleep(SETTLE)
    assert deltas(before, exporter.metrics(), keys) == want


def check_once(args, cwd):
    r = run_exporter(args, cwd)
    return r.returncode, r.stdout, r.stderr


# ------------------------------------------------------------ the text format


def test_metrics_pass_promtool_and_a_strict_parser(world):
    e = world.exporter
    text = e.text()
    problems = promtool_problems(text)
    assert not problems, "promtool check metrics:\n" + "\n".join(problems) + "\n" + text
    exp = parse_exposition(text)
    missing = ALWAYS - exp.names()
    assert not missing, f"families missing from /metrics: {sorted(missing)}"
    assert exp.names() <= CONTRACT_FAMILIES
    assert exp.value("pigeon_up") == 1
    assert exp.value("pigeon_exporter_connects_total") == 1
    assert 0 <= exp.value("pigeon_exporter_sys_age_seconds") < 30
    version = ".".join(map(str, harness.mosquitto_version()))
    assert exp.value("mosquitto_build_info", version=version) == 1
    assert exp.families["pigeon_refused_total"].type == "counter"
    assert exp.families["pigeon_store_failing"].type == "gauge"
    assert exp.value("pigeon_store_failing") == 0
    # The histograms with the contract's bounds, le merged with the other labels.
    for name, labels, bounds in (("pigeon_store_apply_seconds", {}, STORE_APPLY_BOUNDS),
                                 ("pigeon_sync_reply_bytes", {}, SYNC_REPLY_BOUNDS),
                                 ("pigeon_push_latency_seconds", {"provider": "apns"},
                                  PUSH_LATENCY_BOUNDS)):
        h = exp.histogram(name, **labels)
        assert h is not None, f"no {name}{labels}"
        assert [le for le, _ in h["buckets"]] == bounds
        assert exp.families[name].type == "histogram"
    for p in PLATFORMS:
        assert exp.value("pigeon_devices_online_by_platform", platform=p) is not None
        assert exp.value("pigeon_users_online_by_platform", platform=p) is not None
    for outcome in ("sent", "retried", "removed", "failed"):
        assert exp.value("pigeon_push_total", provider="apns", outcome=outcome) is not None
    # Only the configured provider is published.
    assert not [l for l, _ in exp.series("pigeon_push_total").items()
                if dict(l)["provider"] != "apns"]
    for reason in ("body_too_large", "rate_limited", "bad_property", "not_authorized",
                   "bad_request", "store_error", "store_busy"):
        assert exp.value("pigeon_refused_total", reason=reason) is not None


def test_http_methods_paths_and_headers(world):
    e = world.exporter
    status, headers, body = e.request("/metrics", "HEAD")
    assert status == 200 and body == b""
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert int(headers["content-length"]) > 1000
    for method in ("POST", "PUT", "DELETE"):
        status, headers, _ = e.request("/metrics", method, body=b"x=1")
        assert status == 405 and headers["allow"] == "GET, HEAD"
    for path in ("/", "/metric", "/metrics/x", "/health", "/health/", "/../metrics"):
        assert e.request(path)[0] == 404, path
    # A query string does not change the path.
    assert e.request("/metrics?name[]=pigeon_up")[0] == 200
    status, headers, body = e.request("/health/live")
    assert (status, body) == (200, b"broker ok\n")
    assert headers["content-type"] == "text/plain; charset=utf-8"
    status, _, body = e.request("/health/ready")
    assert status == 200
    assert body.decode().startswith("broker ok\nstore ok\npush ok (oldest ")


def test_list_metrics_prints_every_family_of_the_contract(tmp_path):
    r = run_exporter(["--list-metrics"], tmp_path)
    assert r.returncode == 0 and r.stderr == ""
    names = r.stdout.splitlines()
    assert len(names) == len(set(names))
    assert set(names) == CONTRACT_FAMILIES


# ------------------------------------------------------------ exact deltas


def test_counters_move_by_exactly_what_was_done(world):
    e = world.exporter
    n, k = 5, 3
    alice = world.login("x-alice", "phone")
    before = settled(e)
    # n CHATs, each from its own sender (send_rate 1: a sender's burst is 2).
    senders = [world.login(f"x-sender{i}", "desk") for i in range(n)]
    for s in senders:
        assert s.chat("x-alice", b"hello") in PUBACK_ACCEPTED
    # Refused: a body over max_body, and a third send in a burst of 2.
    big = world.login("x-big", "desk")
    assert big.chat("x-alice", b"x" * (MAX_BODY + 1)) not in PUBACK_ACCEPTED
    rl = world.login("x-rl", "desk")
    codes = rl.publish_many("im/x-alice/chat", [b"r1", b"r2", b"r3"])
    assert sum(c not in PUBACK_ACCEPTED for c in codes) == 1, codes
    alice.wait_inbox(n + 2)
    # k syncs, one ack.
    for _ in range(k):
        alice.sync()
    assert alice.ack(n + 2).code == REPLY_OK
    logins = n + 2  # alice logged in before
    expect_deltas(e, before, {
        ("pigeon_messages_stored_total", ()): n + 2,
        ("pigeon_messages_delivered_total", ()): n + 2,
        ("pigeon_messages_duplicates_total", ()): 0,
        ("pigeon_messages_instant_total", ()): 0,
        ("pigeon_refused_total", (("reason", "body_too_large"),)): 1,
        ("pigeon_refused_total", (("reason", "rate_limited"),)): 1,
        ("pigeon_refused_total", (("reason", "store_error"),)): 0,
        ("pigeon_syncs_total", ()): k,
        ("pigeon_acks_total", ()): 1,
        ("pigeon_requests_total", ()): k + 1,
        ("pigeon_sync_reply_bytes_count", ()): k,
        ("pigeon_auth_logins_total", (("result", "accepted"),)): logins,
        ("pigeon_auth_logins_total", (("result", "refused"),)): 0,
        ("pigeon_auth_denied_total", (("action", "publish"),)): 0,
    })
    after = e.metrics()
    # Stored batches were applied: the histogram counted them.
    assert after.value("pigeon_store_apply_seconds_count") > \
        before.value("pigeon_store_apply_seconds_count")
    # Every connected device is in exactly one platform (none: not registered).
    total = sum(after.value("pigeon_devices_online_by_platform", platform=p) for p in PLATFORMS)
    assert total == after.value("pigeon_devices_online")
    assert after.value("pigeon_devices_online_by_platform", platform="none") >= n + 3
    assert after.value("pigeon_users_online") >= n + 3


def test_a_push_through_the_fake_provider_is_counted_once(world):
    e = world.exporter
    apns = world.providers["apns"]
    world.register("x-carol", "apns", device_token("apns", 7))
    before = settled(e)
    sender = world.login("x-pusher", "desk")
    assert sender.chat("x-carol", b"wake up") in PUBACK_ACCEPTED
    apns.wait_delivered(1)
    expect_deltas(e, before, {
        ("pigeon_push_total", (("outcome", "sent"), ("provider", "apns"))): 1,
        ("pigeon_push_total", (("outcome", "failed"), ("provider", "apns"))): 0,
        ("pigeon_push_total", (("outcome", "retried"), ("provider", "apns"))): 0,
        ("pigeon_push_latency_seconds_count", (("provider", "apns"),)): 1,
        ("pigeon_messages_stored_total", ()): 1,
        # Handed to Mosquitto all the same (one per CHAT, docs/protocol.md "Counters").
        ("pigeon_messages_delivered_total", ()): 1,
    })
    after = e.wait_value("pigeon_push_outbox_oldest_seconds", 0)
    assert after == 0
    exp = e.metrics()
    assert exp.value("pigeon_push_outbox", provider="apns") == 0
    assert exp.value("pigeon_push_devices_registered") >= 1
    h = exp.histogram("pigeon_push_latency_seconds", provider="apns")
    assert h["sum"] > 0


def test_mosquittos_own_figures_are_there_and_move(world):
    e = world.exporter
    before = e.wait_up()
    dev = world.login("x-moving", "desk")
    for _ in range(3):
        assert dev.client.ping()

    def moved(exp):
        return (exp.value("mosquitto_uptime_seconds") > before.value("mosquitto_uptime_seconds")
                and exp.value("mosquitto_messages_received_total")
                > before.value("mosquitto_messages_received_total")
                and exp.value("mosquitto_bytes_received_total")
                > before.value("mosquitto_bytes_received_total")
                and exp.value("mosquitto_publish_messages_sent_total")
                > before.value("mosquitto_publish_messages_sent_total"))
    exp = e.wait_metrics(moved, what="Mosquitto's counters moving")
    # This test's client and the exporter at least.
    assert exp.value("mosquitto_clients_connected") >= 2
    assert exp.value("mosquitto_clients_maximum") >= exp.value("mosquitto_clients_connected")
    assert exp.value("mosquitto_subscriptions") >= 2
    assert exp.value("mosquitto_retained_messages") > 10  # $SYS itself, presence
    assert exp.value("mosquitto_store_messages") >= 0


# ------------------------------------------------------------ the broker goes away


def test_only_the_exporters_own_metrics_while_the_broker_is_down(brokers, keys, exporters,
                                                                   tmp_path):
    b = brokers.start(inbox_plugins(keys, "down", brokers.workdir, sys_interval=1,
                                    auth={"sys_interval": 1}), SYS1, name="down")
    e = exporters.start(broker_args(b) + ["--secret-file", keys.secret_file])
    e.wait_up()
    b.kill9()
    exp = e.wait_metrics(lambda x: x.value("pigeon_up") == 0, what="pigeon_up 0")
    assert exp.names() <= OWN_FAMILIES, f"broker metrics while it is down: {exp.names()}"
    assert exp.value("pigeon_exporter_connects_total") == 1
    assert exp.value("pigeon_exporter_sys_age_seconds") >= 0
    status, _, body = e.request("/health/live")
    assert status == 503
    assert body.decode().startswith("broker down (")
    status, _, body = e.request("/health/ready")
    assert status == 503
    assert body.decode() == (body.decode().splitlines()[0] + "\nstore unknown "
                             "(no $SYS/broker/pigeon/store/failing)\npush not loaded\n")
    rc, out, _ = check_once(broker_args(b) + ["--secret-file", keys.secret_file, "--check",
                                              "live"], tmp_path)
    assert (rc, out) == (1, f"broker down (cannot connect to 127.0.0.1:{b.port}: "
                            "Connection refused)\n")
    # Back on the same port: the exporter reconnects by itself.
    b.start(port=b.port)
    e.wait_up(timeout=TIMEOUT + 15)
    exp = e.wait_metrics(lambda x: INBOX_ALWAYS <= x.names(), what="every family")
    assert exp.value("pigeon_exporter_connects_total") == 2
    assert e.request("/health/live")[0] == 200


# ------------------------------------------------------------ health and --check


def test_readiness_follows_the_store_through_a_full_disk(brokers, keys, mqtt, exporters,
                                                        tmp_path, pb):
    b = harness.Broker(brokers.workdir, inbox_plugins(keys, "full", brokers.workdir, send_rate=0,
                                                      sys_interval=1, auth={"sys_interval": 1}),
                       SYS1, name="full")
    b.keep_ignored_signals = True  # SIGXFSZ ignored: writes fail with EFBIG
    brokers.brokers.append(b)
    b.start()
    e = exporters.start(broker_args(b) + ["--secret-file", keys.secret_file])
    check = broker_args(b) + ["--secret-file", keys.secret_file, "--check"]
    svc = Device.login(mqtt, b, keys, "d-svc", role="service")
    Device.login(mqtt, b, keys, "d-bob")
    assert svc.chat("d-bob", b"before") in PUBACK_ACCEPTED
    e.wait_up()
    e.wait_value("pigeon_store_failing", 0)
    assert e.request("/health/ready")[0] == 200
    assert check_once(check + ["ready"], tmp_path)[:2] == (0, "broker ok\nstore ok\n"
                                                              "push not loaded\n")
    assert check_once(check + ["live"], tmp_path)[:2] == (0, "broker ok\n")
    set_fsize(b, 0)
    try:
        assert svc.chat("d-bob", b"disk full") not in PUBACK_ACCEPTED
        e.wait_value("pigeon_store_failing", 1)
        status, _, body = e.request("/health/ready")
        assert (status, body) == (503, b"broker ok\nstore failing (the last write failed)\n"
                                       b"push not loaded\n")
        assert e.request("/health/live")[0] == 200
        assert check_once(check + ["ready"], tmp_path)[:2] == (
            1, "broker ok\nstore failing (the last write failed)\npush not loaded\n")
        assert check_once(check + ["live"], tmp_path)[:2] == (0, "broker ok\n")
        # store/failing is published at once, the counters at the next interval.
        e.wait_value("pigeon_refused_total", lambda v: v is not None and v >= 1,
                     reason="store_error")
    finally:
        set_fsize(b, resource.RLIM_INFINITY)
    # Space is back: the next write clears it.
    assert svc.chat("d-bob", b"after") in PUBACK_ACCEPTED
    e.wait_value("pigeon_store_failing", 0)
    assert e.request("/health/ready")[0] == 200
    assert check_once(check + ["ready"], tmp_path)[:2] == (0, "broker ok\nstore ok\n"
                                                              "push not loaded\n")


def test_readiness_follows_the_store_through_a_locked_database(brokers, keys, mqtt, exporters,
                                                              tmp_path, pb):
    """
    Another process holds the database (test_store_faults.DbLock): every batch
    of the store thread fails, sends are still acknowledged (journaled), and
    readiness says the store is failing until the lock goes and the backlog
    is applied.
    """
    b = harness.Broker(brokers.workdir, inbox_plugins(keys, "lock", brokers.workdir, send_rate=0,
                                                      sys_interval=1, auth={"sys_interval": 1}),
                       SYS1, name="lock")
    brokers.brokers.append(b)
    b.start()
    e = exporters.start(broker_args(b) + ["--secret-file", keys.secret_file])
    check = broker_args(b) + ["--secret-file", keys.secret_file, "--check", "ready"]
    svc = Device.login(mqtt, b, keys, "l-svc", role="service")
    assert svc.chat("l-bob", b"before") in PUBACK_ACCEPTED
    e.wait_up()
    e.wait_value("pigeon_store_failing", 0)
    lock = DbLock(b)
    try:
        for i in range(5):
            assert svc.chat("l-bob", b"locked %d" % i) in PUBACK_ACCEPTED
        e.wait_value("pigeon_store_failing", 1)
        e.wait_value("pigeon_store_backlog_records", lambda v: v is not None and v >= 5)
        status, _, body = e.request("/health/ready")
        assert (status, body) == (503, b"broker ok\nstore failing (the last write failed)\n"
                                       b"push not loaded\n")
        assert e.request("/health/live")[0] == 200
        assert check_once(check, tmp_path)[0] == 1
    finally:
        lock.release()
    # The store thread retries by itself: no send is needed to recover.
    e.wait_value("pigeon_store_failing", 0)
    e.wait_value("pigeon_store_backlog_records", 0)
    assert e.request("/health/ready")[0] == 200
    assert check_once(check, tmp_path)[:2] == (0, "broker ok\nstore ok\npush not loaded\n")
    got = Device.login(mqtt, b, keys, "l-bob").sync()
    assert [m.body for m in got.messages] == [b"before"] + [b"locked %d" % i for i in range(5)]


def test_check_exits_1_when_the_broker_is_unreachable_or_refuses(world, keys, tmp_path):
    port = free_port()
    rc, out, err = check_once(["-p", port, "--secret-file", keys.secret_file, "--check", "live"],
                              tmp_path)
    assert (rc, out) == (1, f"broker down (cannot connect to 127.0.0.1:{port}: "
                            "Connection refused)\n")
    rc, out, _ = check_once(["-p", port, "--secret-file", keys.secret_file, "--check", "ready"],
                            tmp_path)
    assert rc == 1 and out.startswith("broker down (") and "push not loaded\n" in out
    # A secret the broker does not know: the login is refused.
    wrong = tmp_path / "wrong.secret"
    wrong.write_bytes(os.urandom(48))
    rc, out, _ = check_once(broker_args(world.broker) + ["--secret-file", wrong, "--check",
                                                         "live"], tmp_path)
    assert (rc, out) == (1, "broker down (connection refused: Not authorized)\n")
    # A user's token: logged in, but $SYS/# is a service's.
    rc, out, _ = check_once(broker_args(world.broker) + ["--token", keys.token("x-user"),
                                                         "--check", "live"], tmp_path)
    assert rc == 1
    assert out.startswith("broker unusable (the $SYS/# subscription was refused"), out
    # --token-file and PIGEON_TOKEN work as --secret-file does.
    tf = tmp_path / "svc.token"
    tf.write_text(keys.token("x-svc", role="service") + "\n")
    rc, out, _ = check_once(broker_args(world.broker) + ["--token-file", tf, "--check", "ready"],
                            tmp_path)
    assert rc == 0 and out.startswith("broker ok\nstore ok\npush ok (oldest "), out
    r = run_exporter(broker_args(world.broker) + ["--check", "live"], tmp_path,
                     env={"PIGEON_TOKEN": keys.token("x-svc2", role="service")})
    assert (r.returncode, r.stdout) == (0, "broker ok\n")
    # --check never kicks the running exporter off: it logs in as exporter-check.
    assert world.exporter.metrics().value("pigeon_exporter_connects_total") == 1


# ------------------------------------------------------------ bad input


def test_bad_command_lines_say_why_and_exit_2(keys, tmp_path):
    s = ["--secret-file", str(keys.secret_file)]
    cases = [
        ([], "no token: give --token, --token-file or --secret-file, or set PIGEON_TOKEN"),
        (["--token", "a", "--secret-file", "f"],
         "give one of --token, --token-file and --secret-file"),
        (s + ["--listen", "localhost:9883"], "bad --listen 'localhost:9883' (ADDR:PORT"),
        (s + ["--listen", "127.0.0.1"], "bad --listen '127.0.0.1'"),
        (s + ["--listen", "127.0.0.1:65536"], "bad --listen '127.0.0.1:65536'"),
        (s + ["--listen", "[::1:9883"], "bad --listen '[::1:9883'"),
        (s + ["--listen", ":9883"], "bad --listen ':9883'"),
        (s + ["--check", "sometimes"], "bad --check 'sometimes' (live or ready)"),
        (s + ["--check", "live", "--list-metrics"], "give one of --check and --list-metrics"),
        (s + ["--stale-after", "0"], "bad --stale-after '0' (1 to 86400 seconds)"),
        (s + ["--timeout", "x"], "bad --timeout 'x'"),
        (s + ["--push-stuck-after", "-1"], "bad --push-stuck-after '-1'"),
        (s + ["-p", "0"], "bad port '0' (1 to 65535)"),
        (s + ["--uid", "not a uid"], "bad --uid 'not a uid'"),
        (s + ["--device", ""], "bad --device ''"),
        (s + ["--bogus"], "unknown option '--bogus'"),
        (s + ["--timeout"], "--timeout needs a value"),
        (s + ["extra"], "unexpected argument 'extra'"),
        (["--secret-file", str(tmp_path / "missing")], "cannot open"),
        (["--token", "not-a-jwt"], "bad token: malformed token"),
        (["--token-file", str(tmp_path / "missing")], "cannot read token file"),
    ]
    for args, message in cases:
        r = run_exporter(args, tmp_path)
        assert r.returncode == 2 and r.stdout == "", (args, r)
        assert r.stderr.startswith("pigeon-exporter: ") and message in r.stderr, (args, r.stderr)
        assert len(r.stderr.splitlines()) == 1, r.stderr


def test_help_names_every_option(tmp_path):
    r = run_exporter(["--help"], tmp_path)
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.startswith("usage: pigeon-exporter [options]\n")
    for opt in ("-h, --host", "-p, --port", "--cafile", "--listen ADDR:PORT", "--uid", "--device",
                "--token T", "--token-file F", "--secret-file F", "--stale-after S",
                "--push-stuck-after S", "--check live|ready", "--timeout S", "--list-metrics",
                "--help", "Exit status"):
        assert opt in r.stdout, opt


def test_a_listen_address_in_use_is_a_clear_error(keys, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = run_exporter(["--secret-file", keys.secret_file, "--listen", f"127.0.0.1:{port}",
                          "-p", free_port()], tmp_path)
    assert r.returncode == 1
    assert f"pigeon-exporter: --listen 127.0.0.1:{port}: cannot listen: Address already in use" \
        in r.stderr


def fake_token():
    return (harness.b64url('{"alg":"HS256"}') + "." + harness.b64url('{"sub":"fake-exp"}')
            + ".c2ln")


def test_garbage_on_sys_is_ignored_and_never_crashes_it(exporters, tmp_path):
    rnd = random.Random(12)
    P = "$SYS/broker/pigeon/"
    good = [
        ("$SYS/broker/uptime", b"9 seconds"),
        ("$SYS/broker/version", b"mosquitto version 9.9.9"),
        (P + "messages/stored", b"5"),
        (P + "store/failing", b"0"),
        (P + "histogram/sync_reply_bytes", b"256:1 1024:2 +Inf:3 sum:700"),
        (P + "push/apns/failed/http_429", b"2"),
    ]
    garbage = [
        (P + "messages/stored", b"-1"),          # after a good value: the good one stays
        (P + "messages/stored", b"5x"),
        (P + "messages/delivered", b"-1"),
        (P + "messages/merged", b"1e3"),
        (P + "messages/duplicates", b"0x10"),
        (P + "messages/instant", b" 1"),
        (P + "requests/syncs", b"18446744073709551616"),
        (P + "requests/acks", b"\x00\xff\xfe"),
        (P + "requests/answered", b"9" * (1 << 20)),     # a megabyte
        (P + "refused/rate_limited", "١٢".encode()),     # Arabic-Indic digits
        (P + "histogram/store_apply_seconds", b"0.001:3 0.0005:4 +Inf:4 sum:1"),
        (P + "histogram/store_apply_seconds", b"0.001:5 +Inf:4 sum:1"),
        (P + "histogram/store_apply_seconds", b"0.001:1 +Inf:1 sum:nan"),
        (P + "histogram/store_apply_seconds", b"0.001:1 +Inf:1"),
        (P + "histogram/sync_reply_bytes", b"garbage"),   # after a good one: it stays
        (P + "histogram/push_latency_seconds/apns", b"1:1 " * 40 + b"+Inf:1 sum:1"),
        ("$SYS/broker/version", b'mosquitto version 1"} 1\nfake_metric 1'),
        ("$SYS/broker/uptime", b"-3 seconds"),
        (P + "push/apns/failed/a\"b", b"1"),
        (P + "push/apns/failed/" + "x" * 200, b"1"),
        (P + "push/nokia/sent", b"1"),
        (P + "refused/new_reason", b"1"),
        (P + "store/failing/extra", b"1"),
        ("$SYS/broker/pigeon", b"1"),
        ("$SYS/", b"1"),
        ("$SYS/broker/load/bytes/received/1min", b"3.5"),
    ]
    noise = [(P + rnd.choice(["messages/stored", "histogram/sync_reply_bytes", "store/pending",
                              "push/fcm/outbox", "devices/online/none"]) + "x" * rnd.randint(0, 1),
              bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 64)))) for _ in range(300)]
    fake = FakeSysBroker(good + garbage + noise)
    try:
        e = exporters.start(["-p", fake.port, "--token", fake_token(), "-v"])
        assert fake.sent.wait(TIMEOUT), "the fake never got a subscription"
        exp = e.wait_metrics(lambda x: x.value("mosquitto_uptime_seconds") == 9,
                             what="the fake's values")
        text = e.text()
        assert not promtool_problems(text), promtool_problems(text)
        exp = parse_exposition(text)
        assert exp.value("pigeon_up") == 1
        assert exp.value("pigeon_messages_stored_total") == 5
        assert exp.value("mosquitto_build_info", version="9.9.9") == 1
        assert exp.value("pigeon_push_failures_total", provider="apns", reason="http_429") == 2
        assert exp.histogram("pigeon_sync_reply_bytes")["count"] == 3
        for absent in ("pigeon_messages_delivered_total", "pigeon_messages_merged_total",
                       "pigeon_store_apply_seconds", "pigeon_push_latency_seconds",
                       "pigeon_syncs_total", "pigeon_acks_total", "pigeon_requests_total"):
            assert absent not in exp.names(), absent
        assert "fake_metric" not in text
        assert len(exp.series("pigeon_push_failures_total")) == 1
        assert len(exp.series("mosquitto_build_info")) == 1
        assert exp.names() <= CONTRACT_FAMILIES
        # Ignored leaves are logged once each with -v, and it keeps serving.
        assert e.log_text().count("ignoring $SYS/broker/pigeon/refused/new_reason") == 1
        assert e.alive()
        status, _, body = e.request("/health/ready")
        assert (status, body) == (200, b"broker ok\nstore ok\npush not loaded\n")
    finally:
        fake.stop()
    # The fake gone: the session is down, only the exporter's own.
    exp = e.wait_metrics(lambda x: x.value("pigeon_up") == 0, what="pigeon_up 0")
    assert exp.names() <= OWN_FAMILIES


def test_stale_sys_and_a_stuck_push_outbox(exporters, tmp_path):
    P = "$SYS/broker/pigeon/"
    fake = FakeSysBroker([(P + "messages/stored", b"1"), (P + "store/failing", b"0"),
                          (P + "push/devices", b"3"), (P + "push/oldest_s", b"400")])
    try:
        e = exporters.start(["-p", fake.port, "--token", fake_token(), "--stale-after", "2"])
        e.wait_up()
        status, _, body = e.request("/health/ready")
        assert (status, body) == (503, b"broker ok\nstore ok\npush stuck (oldest 400 s, "
                                       b"over 300 s)\n")
        check = ["-p", fake.port, "--token", fake_token(), "--check"]
        assert check_once(check + ["ready"], tmp_path)[:2] == (
            1, "broker ok\nstore ok\npush stuck (oldest 400 s, over 300 s)\n")
        assert check_once(check + ["ready", "--push-stuck-after", "400"], tmp_path)[:2] == (
            0, "broker ok\nstore ok\npush ok (oldest 400 s)\n")
        assert check_once(check + ["live"], tmp_path)[:2] == (0, "broker ok\n")
        # The fake says nothing more: after --stale-after, $SYS is stale.
        exp = e.wait_metrics(lambda x: x.value("pigeon_up") == 0, what="pigeon_up 0")
        assert exp.names() <= OWN_FAMILIES
        assert exp.value("pigeon_exporter_sys_age_seconds") > 2
        status, _, body = e.request("/health/live")
        assert status == 503
        assert re.fullmatch(rb"broker stale \(no \$SYS message for \d+ s, over 2 s\)\n", body), body
    finally:
        fake.stop()


def test_the_token_file_is_read_again_at_every_connect(brokers, keys, exporters, tmp_path):
    b = brokers.start(inbox_plugins(keys, "rot", brokers.workdir, sys_interval=1,
                                    auth={"sys_interval": 1}), SYS1, name="rot")
    tf = tmp_path / "exporter.token"
    # Signed with a secret the broker does not know: refused at every try...
    bad = harness.Keys(tmp_path).sign({"sub": "x-rot", "role": "service",
                                       "exp": int(time.time()) + 600}, "HS256")
    tf.write_text(bad + "\n")
    e = exporters.start(broker_args(b) + ["--token-file", tf])
    b.expect_log(r"pigeon_auth: refused login of client 'x-rot:exporter'")
    status, _, body = e.request("/health/live")
    assert (status, body) == (503, b"broker down (connection refused: Not authorized)\n")
    # Never a $SYS message yet: pigeon_up 0, no age, nothing of the broker's.
    exp = e.metrics()
    assert exp.value("pigeon_up") == 0
    assert exp.names() == {"pigeon_up", "pigeon_exporter_connects_total"}
    assert exp.value("pigeon_exporter_connects_total") == 0
    # ...until the file holds a good token: the next attempt logs in with it.
    tf.write_text(keys.token("x-rot", role="service") + "\n")
    exp = e.wait_up(timeout=TIMEOUT + 10)
    assert exp.value("pigeon_exporter_connects_total") == 1
    e.wait_value("pigeon_auth_logins_total", lambda v: v is not None and v >= 1,
                 result="refused")
