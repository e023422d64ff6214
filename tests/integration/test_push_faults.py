# SPDX-License-Identifier: Apache-2.0
"""
pigeon_push when providers misbehave (docs/push.md "Retries", "Connections
and isolation", "The outbox"): expired provider credentials are renewed
once; throttling, server errors, outages, stalls and GOAWAY are retried
with backoff (Retry-After honoured) until max_attempts; pushes pending in
the outbox survive kill -9; a stalled provider does not hold up another,
nor online delivery. "Exactly once" below means one request the fake
accepted per push.

Retry options are small (retry_base_ms 200) so every test stays within
seconds, except the 30 s outage; every wait is bounded.
"""

import collections
import time

import pytest

from harness import TIMEOUT
from inboxlib import PUBACK_ACCEPTED
from pushlib import PushWorld, device_token
from test_push import NO_PUSH_WAIT, view

OK = "ok"


@pytest.fixture
def world(brokers, keys, mqtt, fakes, pb):
    def make(*platforms, **opts):
        providers = {p: fakes.start(p) for p in platforms}
        opts.setdefault("default_title", "Pigeon")
        return PushWorld(brokers, keys, mqtt, providers, **opts)
    return make


def delivered_tokens(platform, fake):
    """{device token: how many pushes to it the fake accepted}."""
    return collections.Counter(view(platform, r)["token"] for r in fake.delivered())


def register_many(w, platform, n, prefix="u"):
    """n users with one offline device each; their tokens, by uid."""
    toks = {}
    for i in range(n):
        uid = f"{prefix}{i}"
        toks[uid] = device_token(platform, 1000 + i)
        w.register(uid, platform, toks[uid])
    return toks


# ------------------------------------------------------------ expired credentials


def test_apns_expired_provider_token_is_renewed_once_and_the_push_delivered(world):
    w = world("apns")
    apns = w.providers["apns"]
    w.register("alice", "apns", device_token("apns", 1))
    apns.set_mode("expired_token", count=1)
    w.bob.chat("alice", b"x")
    reqs = apns.wait_delivered(1)
    all_reqs = apns.requests()
    assert [r["verdict"]["reason"] for r in all_reqs] == ["expired_token", OK]
    assert apns.stats()["distinct_provider_tokens"] == 2
    # The new JWT serves the pushes after it: no renewal per request.
    w.bob.chat("alice", b"y")
    apns.wait_delivered(2)
    time.sleep(0.5)
    assert apns.stats()["distinct_provider_tokens"] == 2
    assert view("apns", reqs[0])["token"] == device_token("apns", 1)


@pytest.mark.parametrize("platform", ["fcm", "huawei"])
def test_oauth_token_expired_is_fetched_again_once_and_the_push_delivered(world, platform):
    w = world(platform)
    fake = w.providers[platform]
    w.register("alice", platform, device_token(platform, 1))
    w.bob.chat("alice", b"warm up")  # the first token
    fake.wait_delivered(1)
    assert fake.stats()["token_requests"] == 1
    fake.set_mode("expired_token", count=1)
    w.bob.chat("alice", b"x")
    fake.wait_delivered(2)
    assert [r["verdict"]["reason"] for r in fake.requests()] == [OK, "expired_token", OK]
    s = fake.stats()
    assert (s["token_requests"], s["distinct_provider_tokens"]) == (2, 2)


def test_one_provider_token_serves_many_pushes(world):
    w = world("apns", "fcm")
    toks = register_many(w, "apns", 5, prefix="a")
    ftoks = register_many(w, "fcm", 5, prefix="f")
    for uid in list(toks) + list(ftoks):
        w.bob.chat(uid, b"x")
    w.providers["apns"].wait_delivered(5)
    w.providers["fcm"].wait_delivered(5)
    assert w.providers["apns"].stats()["distinct_provider_tokens"] == 1
    assert w.providers["fcm"].stats()["token_requests"] == 1


# ------------------------------------------------------------ retries


def test_throttle_with_retry_after_1_is_retried_after_at_least_a_second(world):
    w = world("apns", retry_base_ms=100)
    apns = w.providers["apns"]
    w.register("alice", "apns", device_token("apns", 1))
    apns.set_mode("throttle", count=1, retry_after=1)
    w.bob.chat("alice", b"x")
    apns.wait_delivered(1, timeout=TIMEOUT + 2)
    first, second = apns.requests()
    assert (first["verdict"]["status"], second["verdict"]["reason"]) == (429, OK)
    gap = second["t_ms"] - first["t_ms"]
    assert gap >= 1000, f"retried {gap} ms after a Retry-After of 1 s"
    assert gap < 1000 + 3000, f"retried only {gap} ms later"
    w.wait_counter("apns/retried", lambda v: v is not None and int(v) >= 1)
    w.wait_counter("apns/sent", 1)


@pytest.mark.parametrize("platform, mode", [("apns", "error503"), ("fcm", "error500"),
                                            ("huawei", "throttle"), ("xiaomi", "throttle"),
                                            ("webhook", "error503")])
def test_server_errors_and_throttling_are_retried_until_delivered(world, platform, mode):
    w = world(platform)
    fake = w.providers[platform]
    w.register("alice", platform, device_token(platform, 1))
    fake.set_mode(mode, count=2)
    w.bob.chat("alice", b"x")
    fake.wait_delivered(1, timeout=TIMEOUT + 3)
    assert [r["verdict"]["reason"] for r in fake.requests()] == [mode, mode, OK]
    t = [r["t_ms"] for r in fake.requests()]
    # Backoff: base 200 ms drawn between half and all; the second delay doubles.
    assert t[1] - t[0] >= 100 and t[2] - t[1] >= 200, t


def test_backoff_doubles_between_attempts(world):
    w = world("apns", retry_base_ms=300, retry_max_ms=10000, max_attempts=5)
    apns = w.providers["apns"]
    w.register("alice", "apns", device_token("apns", 1))
    apns.set_mode("error500", count=4)
    w.bob.chat("alice", b"x")
    apns.wait_delivered(1, timeout=15)
    t = [r["t_ms"] for r in apns.requests()]
    gaps = [b - a for a, b in zip(t, t[1:])]
    # Delay n is drawn in [base*2^(n-1)/2, base*2^(n-1)]: 150-300, 300-600, 600-1200, 1200-2400.
    for n, g in enumerate(gaps):
        lo, hi = 300 * 2 ** n / 2, 300 * 2 ** n
        assert lo - 20 <= g <= hi + 1000, f"delay {n + 1} was {g} ms: gaps {gaps}"
    assert sum(gaps) >= 150 + 300 + 600 + 1200


def test_giving_up_after_max_attempts_counts_a_failure(world):
    w = world("apns", max_attempts=3)
    apns = w.providers["apns"]
    w.register("alice", "apns", device_token("apns", 1))
    apns.set_mode("error500")
    w.bob.chat("alice", b"x")
    apns.wait_requests(3, timeout=TIMEOUT + 3)
    time.sleep(2.5)  # well past the next backoff (at most 800 ms here)
    reqs = apns.requests()
    assert len(reqs) == 3, f"max_attempts 3 counts the first: {len(reqs)} requests"
    w.wait_counter("apns/failed/http_5xx", 1)
    w.wait_counter("apns/retried", 2)
    w.wait_counter("outbox", 0)
    # The device is still registered: the next message is pushed once the provider is back.
    apns.set_mode("ok")
    w.bob.chat("alice", b"y")
    apns.wait_delivered(1)


def test_a_request_that_times_out_is_retried(world):
    w = world("apns", request_timeout_ms=500)
    apns = w.providers["apns"]
    w.register("alice", "apns", device_token("apns", 1))
    apns.set_mode("stall", count=1)
    w.bob.chat("alice", b"x")
    apns.wait_delivered(1, timeout=TIMEOUT)
    assert [r["verdict"]["reason"] for r in apns.requests()] == ["stall", OK]
    assert delivered_tokens("apns", apns) == {device_token("apns", 1): 1}


# ------------------------------------------------------------ outages


def test_a_provider_down_for_30_s_then_back_gets_every_push_exactly_once(world):
    # Ten attempts with a 20 s cap span at least about 33 s even with the
    # lowest jitter draws, so every push outlives the 30 s outage.
    w = world("fcm", max_attempts=10, retry_base_ms=200, retry_max_ms=20000,
              request_timeout_ms=2000)
    fcm = w.providers["fcm"]
    toks = register_many(w, "fcm", 5)
    w.bob.chat("u0", b"warm up")  # the connection and the OAuth token exist before the outage
    fcm.wait_delivered(1)
    fcm.set_mode("down")
    t_down = time.monotonic()
    for uid in toks:
        assert w.bob.chat(uid, b"during the outage") in PUBACK_ACCEPTED
    time.sleep(10)
    for uid in ("u1", "u3"):
        # folds into the pending push
        assert w.bob.chat(uid, b"later in the outage") in PUBACK_ACCEPTED
    time.sleep(max(0.0, 30 - (time.monotonic() - t_down)))
    fcm.set_mode("ok")
    got = {}

    def all_delivered():
        nonlocal got
        got = delivered_tokens("fcm", fcm)
        return all(got.get(t, 0) >= (2 if uid == "u0" else 1) for uid, t in toks.items())
    from harness import wait_until
    assert wait_until(all_delivered, 25, interval=0.2), f"delivered {dict(got)}"
    time.sleep(NO_PUSH_WAIT)
    got = delivered_tokens("fcm", fcm)
    want = {t: (2 if uid == "u0" else 1) for uid, t in toks.items()}
    assert dict(got) == want, "every push exactly once (u0: the warm-up and one more)"
    # The pushes that waited carry the latest message of their device.
    last = {view("fcm", r)["token"]: view("fcm", r) for r in fcm.delivered()}
    assert last[toks["u1"]]["data"]["count"] == "2" and last[toks["u1"]]["data"]["seq"] == "2"
    w.wait_counter("outbox", 0)


@pytest.mark.parametrize("fault", ["stall", "down"])
def test_pending_pushes_survive_kill9_and_are_sent_after_restart(world, fault):
    w = world("apns", max_attempts=10, retry_max_ms=1000, request_timeout_ms=1500)
    apns = w.providers["apns"]
    toks = register_many(w, "apns", 4)
    apns.set_mode(fault)
    for uid in toks:
        assert w.bob.chat(uid, b"x") in PUBACK_ACCEPTED
    if fault == "stall":
        apns.wait_requests(4)  # every push is out, none answered
    else:
        time.sleep(1.0)  # windows closed, attempts failing
    w.broker.kill9()
    apns.reset()  # ok again (stalled streams dropped)
    w.broker.restart()
    w.forget_sessions()
    got = {}

    def all_delivered():
        nonlocal got
        got = delivered_tokens("apns", apns)
        return set(got) >= set(toks.values())
    from harness import wait_until
    assert wait_until(all_delivered, TIMEOUT + 5, interval=0.1), \
        f"after restart, delivered {dict(got)} of {sorted(toks.values())}"
    time.sleep(NO_PUSH_WAIT)
    assert dict(delivered_tokens("apns", apns)) == {t: 1 for t in toks.values()}
    w.wait_counter("outbox", 0)


def test_a_stalled_provider_does_not_hold_up_another_nor_online_delivery(world):
    w = world("apns", "fcm", request_timeout_ms=10000)
    apns, fcm = w.providers["apns"], w.providers["fcm"]
    w.register("alice", "apns", device_token("apns", 1), device="phone")
    w.register("alice", "fcm", device_token("fcm", 1), device="pixel")
    online = w.login("carol", "phone")
    apns.set_mode("stall")
    t0 = time.monotonic()
    w.bob.chat("alice", b"x")
    fcm.wait_delivered(1, timeout=3)
    assert time.monotonic() - t0 < 3
    assert apns.wait_requests(1)[0]["verdict"]["reason"] == "stall"
    # Meanwhile online delivery is as fast as ever.
    for i in range(20):
        t = time.monotonic()
        assert w.bob.chat("carol", b"%d" % i) in PUBACK_ACCEPTED
        online.wait_inbox(i + 1, timeout=1)
        assert time.monotonic() - t < 0.5, f"online message {i} took {time.monotonic() - t:.3f}s"
    # More pushes through fcm while apns still stalls.
    w.register("dave", "fcm", device_token("fcm", 2))
    w.bob.chat("dave", b"y")
    fcm.wait_delivered(2, timeout=3)
    apns.set_mode("ok")  # drops the stalled stream: it comes back as a retry
    apns.wait_delivered(1, timeout=TIMEOUT)
    time.sleep(NO_PUSH_WAIT)
    assert dict(delivered_tokens("apns", apns)) == {device_token("apns", 1): 1}


def test_goaway_mid_burst_delivers_every_push_exactly_once(world):
    w = world("apns", coalesce_ms=300)
    apns = w.providers["apns"]
    toks = register_many(w, "apns", 12)
    w.bob.chat("u0", b"warm up")  # one session, open before the burst
    apns.wait_delivered(1)
    apns.set_mode("goaway", count=1)
    for uid in toks:
        w.bob.chat(uid, b"burst")
    got = {}

    def all_delivered():
        nonlocal got
        got = delivered_tokens("apns", apns)
        return all(got.get(t, 0) >= (2 if uid == "u0" else 1) for uid, t in toks.items())
    from harness import wait_until
    assert wait_until(all_delivered, TIMEOUT + 3, interval=0.1), f"delivered {dict(got)}"
    time.sleep(NO_PUSH_WAIT)
    got = delivered_tokens("apns", apns)
    assert dict(got) == {t: (2 if uid == "u0" else 1) for uid, t in toks.items()}
    reasons = [r["verdict"]["reason"] for r in apns.requests()]
    assert "goaway" in reasons
    assert apns.stats()["sessions"] >= 2, "after GOAWAY the broker opens a new connection"


def test_device_removed_while_a_retry_is_pending_is_not_pushed_again(world):
    w = world("apns", retry_base_ms=500)
    apns = w.providers["apns"]
    w.register("alice", "apns", device_token("apns", 1))
    apns.set_mode("error503", count=1)
    w.bob.chat("alice", b"x")
    apns.wait_requests(1)
    apns.set_mode("unregistered", count=1)
    apns.wait_requests(2, timeout=TIMEOUT)
    w.wait_counter("apns/removed", 1)
    apns.set_mode("ok")
    w.bob.chat("alice", b"y")
    time.sleep(NO_PUSH_WAIT)
    assert len(apns.requests()) == 2
