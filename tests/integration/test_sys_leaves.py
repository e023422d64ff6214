# SPDX-License-Identifier: Apache-2.0
"""
The $SYS leaves that pigeon-exporter serves (docs/protocol.md "Counters",
docs/push.md "Counters"), on a real broker with plugin_opt_sys_interval 1,
read by a service subscribed to $SYS/broker/pigeon/#, with exact values:

- store/failing is 0 on a healthy store, 1 as soon as a send is refused
  because the journal cannot be written (RLIMIT_FSIZE 0 on the broker, as in
  test_store_faults.py), published at once (not at the next interval), and
  0 again once the disk has room and a send succeeds;
- store/pending_bytes is published;
- histogram/sync_reply_bytes counts exactly one observation per sync, and its
  sum moves by exactly the packed SyncReplys' sizes; histogram/store_apply_seconds
  counts committed batches; both have the contract's payload format;
- pigeon_push: devices/online/<platform> and users/online/<platform> for all
  six platforms, push/<provider>/failed (the total of its reasons),
  push/oldest_s with a stalled provider, and
  histogram/push_latency_seconds/<provider> counting every provider answer.
"""

import re
import resource
import time

from harness import PUBACK_NOT_AUTHORIZED, SLOW, wait_until
from inboxlib import PUBACK_ACCEPTED, Device, start_inbox_broker
from test_store_faults import set_fsize, start_fault_broker  # the disk-full technique

SYS = "$SYS/broker/pigeon/"

APPLY_BOUNDS = ["0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
                "0.5", "1", "2.5", "5", "10"]
SYNC_BOUNDS = ["256", "1024", "4096", "16384", "65536", "262144", "1048576", "4194304"]
PUSH_BOUNDS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
               "30"]
PLATFORMS = ["apns", "fcm", "huawei", "xiaomi", "webhook", "none"]


def parse_histogram(text, bounds):
    """(cumulative counts by bound, count, sum) of a payload, asserting its exact format."""
    parts = text.split(" ")
    assert len(parts) == len(bounds) + 2, text
    cum = []
    for part, le in zip(parts, bounds):
        m = re.fullmatch(r"([0-9.]+):([0-9]+)", part)
        assert m and m.group(1) == le, (text, le)
        cum.append(int(m.group(2)))
    m = re.fullmatch(r"\+Inf:([0-9]+)", parts[-2])
    assert m, text
    count = int(m.group(1))
    assert cum == sorted(cum) and (not cum or cum[-1] <= count), text
    m = re.fullmatch(r"sum:([0-9.e+-]+)", parts[-1])
    assert m, text
    return cum, count, float(m.group(1))


def ops_login(mqtt, b, keys, uid="ops"):
    return Device.login(mqtt, b, keys, uid, "sys", role="service",
                        extra_filters=[SYS + "#"])


def leaf(ops, name):
    ops._collect()
    return ops.sys.get(SYS + name)


def wait_leaf(ops, name, value, timeout=5 * SLOW):
    """Waits until the leaf reads value (a string); asserts it does."""
    ok = ops.wait(lambda d: d.sys.get(SYS + name) == value, timeout)
    assert ok, f"{name} is {ops.sys.get(SYS + name)!r}, not {value!r}"


def hist_of(ops, name, bounds):
    text = leaf(ops, name)
    assert text is not None, f"{name} not published"
    return parse_histogram(text, bounds)


def wait_hist_count(ops, name, bounds, pred, timeout=5 * SLOW):
    """The histogram (cum, count, sum) once pred(count) holds; asserts it does in time."""
    got = []

    def check(d):
        text = d.sys.get(SYS + name)
        if text is None:
            return False
        h = parse_histogram(text, bounds)
        got[:] = [h]
        return pred(h[1])
    assert ops.wait(check, timeout), f"{name}: {got}"
    return got[0]


# ------------------------------------------------------------ pigeon_inbox


def test_inbox_leaves_and_histograms(brokers, keys, mqtt, pb):
    b = start_inbox_broker(brokers, keys, "leaves", sys_interval=1, send_rate=0)
    ops = ops_login(mqtt, b, keys)
    bob = Device.login(mqtt, b, keys, "l-bob")
    svc = Device.login(mqtt, b, keys, "l-svc", role="service")
    wait_leaf(ops, "store/failing", "0")
    assert leaf(ops, "store/pending_bytes") is not None
    assert hist_of(ops, "histogram/sync_reply_bytes", SYNC_BOUNDS) == ([0] * 8, 0, 0.0)
    c0, s0 = 0, 0
    _, a0, _ = hist_of(ops, "histogram/store_apply_seconds", APPLY_BOUNDS)

    for i in range(5):
        assert svc.chat("l-bob", b"x" * (100 * i + 1)) in PUBACK_ACCEPTED
    # Three syncs: an empty page and two with messages; each SyncReply observed once.
    sizes = []
    for after in (5, 0, 3):
        s = bob.sync(after_seq=after)
        sizes.append(len(s.SerializeToString()))
    cum, c1, s1 = wait_hist_count(ops, "histogram/sync_reply_bytes", SYNC_BOUNDS,
                                  lambda c: c >= c0 + 3)
    assert c1 == c0 + 3
    assert s1 - s0 == sum(sizes), (sizes, s0, s1)
    # Per bucket: le semantics over the sizes seen.
    assert cum == [sum(1 for x in sizes if x <= int(le)) for le in SYNC_BOUNDS], (cum, sizes)
    # The count stays: no observation without a sync.
    time.sleep(1.5)
    assert hist_of(ops, "histogram/sync_reply_bytes", SYNC_BOUNDS)[1] == c1
    # The store thread committed batches for the five sends.
    _, a1, asum = wait_hist_count(ops, "histogram/store_apply_seconds", APPLY_BOUNDS,
                                  lambda c: c > a0)
    assert a1 > 0 and asum > 0
    wait_leaf(ops, "store/pending_bytes", "0")
    wait_leaf(ops, "store/pending", "0")
    assert leaf(ops, "store/failing") == "0"


def test_store_failing_while_the_disk_is_full(brokers, keys, mqtt, pb):
    # A long interval: store/failing must be published on the change itself.
    b = start_fault_broker(brokers, keys, "full", sys_interval=30)
    ops = ops_login(mqtt, b, keys)
    svc = Device.login(mqtt, b, keys, "d-svc", role="service")
    Device.login(mqtt, b, keys, "d-bob")
    assert svc.chat("d-bob", b"before") in PUBACK_ACCEPTED
    wait_leaf(ops, "store/failing", "0")
    set_fsize(b, 0)
    try:
        t = time.monotonic()
        assert svc.chat("d-bob", b"refused") == PUBACK_NOT_AUTHORIZED
        wait_leaf(ops, "store/failing", "1", timeout=2 * SLOW)
        assert time.monotonic() - t < 2 * SLOW
    finally:
        set_fsize(b, resource.RLIM_INFINITY)
    # Room again, but no append has succeeded since: still failing.
    time.sleep(0.5)
    assert leaf(ops, "store/failing") == "1"
    assert svc.chat("d-bob", b"after") in PUBACK_ACCEPTED
    wait_leaf(ops, "store/failing", "0", timeout=2 * SLOW)


def test_store_failing_at_every_interval(brokers, keys, mqtt, pb):
    """With sys_interval 1 the leaf is re-published every second, 1 while failing."""
    b = start_fault_broker(brokers, keys, "full1", sys_interval=1)
    ops = ops_login(mqtt, b, keys)
    svc = Device.login(mqtt, b, keys, "e-svc", role="service")
    wait_leaf(ops, "store/failing", "0")
    set_fsize(b, 0)
    try:
        assert svc.chat("e-bob", b"refused") == PUBACK_NOT_AUTHORIZED
        wait_leaf(ops, "store/failing", "1")
        wait_leaf(ops, "refused/store_error", "1")
        ones = publishes(ops, "store/failing", b"1")
        # At least two interval publishes in 2.5 s, each saying 1.
        assert wait_until(lambda: publishes(ops, "store/failing", b"1") >= ones + 2, 2.5 * SLOW)
    finally:
        set_fsize(b, resource.RLIM_INFINITY)
    assert svc.chat("e-bob", b"ok") in PUBACK_ACCEPTED
    wait_leaf(ops, "store/failing", "0")


def publishes(dev, name, payload):
    """How many times dev received the leaf with payload."""
    with dev.client.cv:
        return sum(1 for m in dev.client.messages
                   if m.topic == SYS + name and m.payload == payload)


# ------------------------------------------------------------ pigeon_push


def online_leaves(ops):
    ops._collect()
    return {k[len(SYS):]: v for k, v in ops.sys.items()
            if re.fullmatch(re.escape(SYS) + r"(devices|users)/online/[a-z]+", k)}


def test_push_leaves_by_platform_latency_failed_and_oldest(brokers, keys, mqtt, fakes, pb):
    from pushlib import PushWorld, device_token

    apns, fcm = fakes.start("apns"), fakes.start("fcm")
    w = PushWorld(brokers, keys, mqtt, {"apns": apns, "fcm": fcm}, inbox={"sys_interval": 1},
                  max_attempts=3)
    ops = w.login("ops", "sys", role="service", extra_filters=[SYS + "#"])

    # By platform: alice's phone registered for APNs and her unregistered web
    # session, both connected; ops (a service, never registered) is a "none" device too.
    phone = w.register("alice", "apns", device_token("apns", 1), device="phone", offline=False)
    w.login("alice", "web")
    want = {f"{kind}/online/{p}": "0" for kind in ("devices", "users") for p in PLATFORMS}
    want.update({"devices/online/apns": "1", "users/online/apns": "1",
                 "devices/online/none": "2", "users/online/none": "2"})
    assert ops.wait(lambda d: online_leaves(d) == want, 5 * SLOW), online_leaves(ops)
    wait_leaf(ops, "devices/online", "3")  # the inbox's total: the six add up to it
    # The phone goes away: only the web session is left for alice.
    w.offline(phone)
    want.update({"devices/online/apns": "0", "users/online/apns": "0",
                 "devices/online/none": "2", "users/online/none": "2"})
    assert ops.wait(lambda d: online_leaves(d) == want, 5 * SLOW), online_leaves(ops)

    # Every configured provider has a failed total, 0 so far; an empty outbox is 0 s old.
    wait_leaf(ops, "push/apns/failed", "0")
    wait_leaf(ops, "push/fcm/failed", "0")
    wait_leaf(ops, "push/oldest_s", "0")
    assert leaf(ops, "push/xiaomi/failed") is None  # not configured
    assert leaf(ops, "histogram/push_latency_seconds/xiaomi") is None
    assert hist_of(ops, "histogram/push_latency_seconds/apns", PUSH_BOUNDS) == \
        ([0] * len(PUSH_BOUNDS), 0, 0.0)

    # One push delivered, then one that fails three times (max_attempts 3): four answers.
    assert w.bob.chat("alice", b"one") in PUBACK_ACCEPTED
    apns.wait_delivered(1)
    apns.set_mode("error500", count=3)
    assert w.bob.chat("alice", b"two") in PUBACK_ACCEPTED
    apns.wait_requests(4, timeout=15 * SLOW)
    wait_leaf(ops, "push/apns/failed/http_5xx", "1", timeout=10 * SLOW)
    wait_leaf(ops, "push/apns/failed", "1")
    wait_leaf(ops, "push/apns/retried", "2")
    _, count, total = wait_hist_count(ops, "histogram/push_latency_seconds/apns", PUSH_BOUNDS,
                                      lambda c: c >= 4)
    assert count == len(apns.requests()) == 4
    assert total >= 0
    wait_leaf(ops, "push/oldest_s", "0")

    # A stalled provider: the push waits in the outbox and push/oldest_s grows.
    w.register("dave", "fcm", device_token("fcm", 2))
    fcm.set_mode("stall")
    t = time.monotonic()
    assert w.bob.chat("dave", b"stuck") in PUBACK_ACCEPTED
    assert fcm.wait_requests(1)[0]["verdict"]["reason"] == "stall"
    assert ops.wait(lambda d: int(d.sys.get(SYS + "push/oldest_s", "0")) >= 2, 5 * SLOW), \
        leaf(ops, "push/oldest_s")
    age = int(leaf(ops, "push/oldest_s"))
    assert age <= time.monotonic() - t + 1
    assert leaf(ops, "push/fcm/outbox") == "1"
    fcm.set_mode("ok")  # drops the stalled stream: retried, then delivered
    fcm.wait_delivered(1, timeout=10 * SLOW)
    wait_leaf(ops, "push/oldest_s", "0")
    wait_leaf(ops, "push/fcm/failed", "0")
    wait_leaf(ops, "push/outbox", "0")
    _, fcount, _ = wait_hist_count(ops, "histogram/push_latency_seconds/fcm", PUSH_BOUNDS,
                                   lambda c: c >= 2)
    assert fcount == len(fcm.requests())
