# SPDX-License-Identifier: Apache-2.0
"""
pigeon_push through the real broker and fake providers (docs/push.md,
DESIGN §7): who gets a push (registered devices that are not connected),
where it goes (each platform's provider, APNs sandbox), what it says
(title/body, custom data, badge, collapse id), coalescing, device
registration and its errors, tokens that move or are replaced, and each
provider's "device gone" answers removing the device.

Faults (expired credentials, throttling, server errors, outages, stalls,
GOAWAY, kill -9) are in test_push_faults.py. The fakes (fakepush/) check
each request the way the real provider does; a push counts as delivered
when the fake's verdict is "ok".
"""

import hashlib
import hmac
import json
import time
import urllib.parse

import pytest

from harness import TIMEOUT
from inboxlib import PUBACK_ACCEPTED, REPLY_BAD_REQUEST, REPLY_NOT_AVAILABLE, REPLY_OK
from pushlib import APNS_TOPIC, PushWorld, device_token

# How long a test waits to be sure that no push comes: well past a 200 ms
# coalescing window and a retry.
NO_PUSH_WAIT = 1.5


@pytest.fixture
def world(brokers, keys, mqtt, fakes, pb):
    """world(platforms..., **push options) -> PushWorld with one fresh fake per platform."""
    def make(*platforms, sandbox=False, **opts):
        providers = {p: fakes.start(p) for p in platforms}
        if sandbox:
            providers["apns_sandbox"] = fakes.start("apns", name="apns-sandbox",
                                                    like=providers["apns"])
        opts.setdefault("default_title", "Pigeon")
        return PushWorld(brokers, keys, mqtt, providers, **opts)
    return make


def view(platform, r):
    """
    What a recorded push request says, whatever the provider's layout:
    {token, title, body, badge, collapse, data{seq, from, kind, type, count}}
    with data values as sent (FCM's are strings).
    """
    j = r["json"]
    if platform == "apns":
        aps = j["aps"]
        return dict(token=r["path"].rsplit("/", 1)[1], title=aps["alert"].get("title"),
                    body=aps["alert"].get("body"), badge=aps["badge"],
                    collapse=r["headers"].get("apns-collapse-id"),
                    data={k: j.get(k) for k in ("seq", "from", "kind", "type", "count")})
    if platform == "fcm":
        m = j["message"]
        note = m.get("notification") or {}
        return dict(token=m["token"], title=note.get("title"), body=note.get("body"),
                    badge=int(m["data"]["badge"]) if "badge" in m["data"] else None,
                    collapse=(m.get("android") or {}).get("collapse_key"), data=m["data"])
    if platform == "huawei":
        m = j["message"]
        n = m["android"]["notification"]
        return dict(token=m["token"][0], title=n.get("title"), body=n.get("body"),
                    badge=n["badge"]["set_num"], collapse=m["android"]["collapse_key"],
                    data=json.loads(m["data"]))
    if platform == "xiaomi":
        f = dict(urllib.parse.parse_qsl(r["body"], keep_blank_values=True))
        data = json.loads(f["payload"])
        return dict(token=f["registration_id"], title=f["title"], body=f["description"],
                    badge=data.get("badge"), collapse=int(f["notify_id"]), data=data,
                    package=f["restricted_package_name"])
    if platform == "webhook":
        return dict(token=j["token"], title=j.get("title"), body=j.get("body"),
                    badge=j.get("badge"), collapse=None, data=j.get("data") or {}, raw=j)
    raise AssertionError(platform)


def settle():
    time.sleep(NO_PUSH_WAIT)


# ------------------------------------------------------------ who gets a push


def test_push_goes_only_to_registered_devices_that_are_not_connected(world):
    w = world("apns", "fcm")
    apns, fcm = w.providers["apns"], w.providers["fcm"]
    w.register("alice", "apns", device_token("apns", 1), device="phone")
    tablet = w.register("alice", "fcm", device_token("fcm", 1), device="tablet", offline=False)
    w.login("alice", "laptop")  # connected, never registered: nothing to push to anyway
    assert w.bob.chat("alice", b"hi") in PUBACK_ACCEPTED
    (r,) = apns.wait_delivered(1)
    assert view("apns", r)["token"] == device_token("apns", 1)
    assert tablet.wait_inbox(1)[0].body == b"hi"
    settle()
    assert len(apns.requests()) == 1
    assert fcm.requests() == [], "the tablet is connected: it gets the message, not a push"
    w.wait_counter("apns/sent", 1)
    w.wait_counter("outbox", 0)


def test_instant_messages_and_duplicates_push_nothing(world):
    w = world("apns")
    apns = w.providers["apns"]
    w.register("alice", "apns", device_token("apns", 1))
    assert w.bob.instant("alice", b"typing") in PUBACK_ACCEPTED
    settle()
    assert apns.requests() == []
    assert w.bob.chat("alice", b"one", msg_id="m-1") in PUBACK_ACCEPTED
    apns.wait_delivered(1)
    assert w.bob.chat("alice", b"one", msg_id="m-1") in PUBACK_ACCEPTED  # a resend
    settle()
    assert len(apns.requests()) == 1


def test_a_device_back_online_before_its_window_closes_gets_no_push(world):
    w = world("apns", coalesce_ms=1500)
    apns = w.providers["apns"]
    w.register("alice", "apns", device_token("apns", 1))
    assert w.bob.chat("alice", b"hi") in PUBACK_ACCEPTED
    w.login("alice", "phone")  # back within the 1.5 s window
    time.sleep(1.5 + NO_PUSH_WAIT)
    assert apns.requests() == []


@pytest.mark.parametrize("platform", ["apns", "fcm", "huawei", "xiaomi", "webhook"])
def test_each_platform_gets_the_contract_payload(world, platform):
    w = world(platform)
    fake = w.providers[platform]
    token = device_token(platform, 7)
    w.register("alice", platform, token)
    assert w.bob.chat("alice", b"hello", push_title="Bob", push_body="hello there") \
        in PUBACK_ACCEPTED
    (r,) = fake.wait_delivered(1)
    v = view(platform, r)
    assert v["token"] == token
    assert (v["title"], v["body"]) == ("Bob", "hello there")
    assert v["badge"] == 1
    d = v["data"]
    as_sent = str if platform == "fcm" else (lambda x: x)
    assert d["seq"] == as_sent(1) and d["from"] == "bob" and d["kind"] == "chat"
    assert d["type"] == "" and d["count"] == as_sent(1)
    if platform == "apns":
        h = r["headers"]
        assert h["apns-topic"] == APNS_TOPIC and h["apns-push-type"] == "alert"
        assert "apns-collapse-id" not in h, "a CHAT has no collapse id"
    if platform == "huawei":
        assert v["collapse"] == -1, "Push Kit's collapse_key is -1 for a CHAT"
    if platform == "xiaomi":
        assert v["collapse"] == 0 and v["package"] == "com.example.pigeon"
    if platform == "webhook":
        assert v["raw"]["platform"] == "webhook"
    w.wait_counter(f"{platform}/sent", 1)
    w.wait_counter(f"{platform}/latency_ms/p50", lambda x: x is not None and int(x) >= 0)
    w.wait_counter(f"{platform}/latency_ms/p99", lambda x: x is not None and int(x) >= 0)


def test_apns_topic_is_the_devices_app_else_the_configured_topic(world):
    w = world("apns")
    apns = w.providers["apns"]
    w.register("alice", "apns", device_token("apns", 1), app="com.example.other")
    w.register("carol", "apns", device_token("apns", 2), app="")
    w.bob.chat("alice", b"a")
    w.bob.chat("carol", b"c")
    reqs = apns.wait_delivered(2)
    topics = {view("apns", r)["token"]: r["headers"]["apns-topic"] for r in reqs}
    assert topics == {device_token("apns", 1): "com.example.other",
                      device_token("apns", 2): APNS_TOPIC}


def test_sandbox_devices_go_to_the_sandbox_url(world):
    w = world("apns", sandbox=True)
    prod, sandbox = w.providers["apns"], w.providers["apns_sandbox"]
    w.register("alice", "apns", device_token("apns", 1), sandbox=False)
    w.register("carol", "apns", device_token("apns", 2), sandbox=True)
    w.bob.chat("alice", b"to production")
    w.bob.chat("carol", b"to sandbox")
    (p,) = prod.wait_delivered(1)
    (s,) = sandbox.wait_delivered(1)
    assert view("apns", p)["token"] == device_token("apns", 1)
    assert view("apns", s)["token"] == device_token("apns", 2)
    settle()
    assert len(prod.requests()) == 1 and len(sandbox.requests()) == 1


# ------------------------------------------------------------ coalescing and badges


def test_a_burst_of_20_becomes_one_push_with_count_20_and_badge_20(world):
    w = world("apns", coalesce_ms=1000)
    apns = w.providers["apns"]
    w.register("alice", "apns", device_token("apns", 1))
    codes = w.bob.publish_many("im/alice/chat", [b"m%02d" % i for i in range(20)])
    assert all(c in PUBACK_ACCEPTED for c in codes)
    (r,) = apns.wait_delivered(1, timeout=TIMEOUT + 1)
    v = view("apns", r)
    assert (v["badge"], v["data"]["count"], v["data"]["seq"]) == (20, 20, 20)
    time.sleep(1.0 + NO_PUSH_WAIT)
    assert len(apns.requests()) == 1, [view("apns", x)["data"] for x in apns.requests()]


def test_huawei_badge_over_99_is_capped_to_what_push_kit_takes(world):
    """Push Kit's badge set_num is 0..99 (the fake refuses more, as Push Kit does)."""
    w = world("huawei", coalesce_ms=1500)
    hms = w.providers["huawei"]
    w.register("alice", "huawei", device_token("huawei", 1))
    codes = w.bob.publish_many("im/alice/chat", [b"m%03d" % i for i in range(120)])
    assert all(c in PUBACK_ACCEPTED for c in codes)
    (r,) = hms.wait_requests(1, timeout=TIMEOUT + 2)
    assert r["verdict"]["reason"] == "ok", r["verdict"]
    assert view("huawei", r)["badge"] == 99
    assert view("huawei", r)["data"]["count"] == 120


def test_messages_after_the_window_make_a_second_push(world):
    w = world("apns")
    apns = w.providers["apns"]
    w.register("alice", "apns", device_token("apns", 1))
    w.bob.chat("alice", b"one")
    apns.wait_delivered(1)
    w.bob.chat("alice", b"two")
    reqs = apns.wait_delivered(2)
    assert [view("apns", r)["badge"] for r in reqs] == [1, 2]
    assert [view("apns", r)["data"]["seq"] for r in reqs] == [1, 2]
    assert [view("apns", r)["data"]["count"] for r in reqs] == [1, 1]


def test_badge_counts_the_messages_above_the_devices_acked_cursor(world):
    w = world("apns")
    apns = w.providers["apns"]
    phone = w.register("alice", "apns", device_token("apns", 1), offline=False)
    for i in range(3):
        w.bob.chat("alice", b"seen %d" % i)
    assert [e.seq for e in phone.wait_inbox(3)] == [1, 2, 3]
    assert phone.ack(2).code == REPLY_OK
    w.offline(phone)
    w.bob.chat("alice", b"unseen 1")
    w.bob.chat("alice", b"unseen 2")
    (r,) = apns.wait_delivered(1)
    v = view("apns", r)
    # Stored above cursor 2: seqs 3, 4, 5. The push stands for the two
    # messages stored while the phone was away.
    assert (v["badge"], v["data"]["count"], v["data"]["seq"]) == (3, 2, 5)


def test_another_devices_ack_does_not_lower_this_devices_badge(world):
    w = world("apns")
    apns = w.providers["apns"]
    w.register("alice", "apns", device_token("apns", 1), device="phone")
    laptop = w.login("alice", "laptop")
    for i in range(4):
        w.bob.chat("alice", b"m%d" % i)
    laptop.wait_inbox(4)
    assert laptop.ack(4).code == REPLY_OK
    (r,) = apns.wait_delivered(1)
    assert view("apns", r)["badge"] == 4


def test_notify_collapse_id_is_its_type(world):
    w = world("apns", "huawei", "xiaomi")
    w.register("alice", "apns", device_token("apns", 1), device="phone")
    w.register("alice", "huawei", device_token("huawei", 1), device="honor")
    w.register("alice", "xiaomi", device_token("xiaomi", 1), device="redmi")
    assert w.svc.notify("alice", "like", b"{}") in PUBACK_ACCEPTED
    (a,) = w.providers["apns"].wait_delivered(1)
    va = view("apns", a)
    assert va["collapse"] == "like"
    assert (va["data"]["kind"], va["data"]["type"], va["data"]["from"]) == ("notify", "like", "svc")
    (h,) = w.providers["huawei"].wait_delivered(1)
    assert 0 <= view("huawei", h)["collapse"] <= 100
    (x,) = w.providers["xiaomi"].wait_delivered(1)
    assert view("xiaomi", x)["collapse"] > 0, "a NOTIFY's notify_id is not CHAT's 0"
    # The same type maps to the same collapse number again.
    w.svc.notify("alice", "like", b"{}")
    h2 = w.providers["huawei"].wait_delivered(2)[1]
    x2 = w.providers["xiaomi"].wait_delivered(2)[1]
    assert view("huawei", h2)["collapse"] == view("huawei", h)["collapse"]
    assert view("xiaomi", x2)["collapse"] == view("xiaomi", x)["collapse"]


def test_title_and_body_come_from_the_message_else_the_defaults(world):
    w = world("apns", "fcm", default_title="Pigeon", default_body="You have mail")
    w.register("alice", "apns", device_token("apns", 1), device="phone")
    w.register("alice", "fcm", device_token("fcm", 1), device="pixel")
    w.bob.chat("alice", b"1", push_title="From MQTT", push_body="user properties")
    for name in ("apns", "fcm"):
        (r,) = w.providers[name].wait_delivered(1)
        assert (view(name, r)["title"], view(name, r)["body"]) == ("From MQTT", "user properties")
    r = w.bob.send("alice", b"2", push_title="From Send", push_body="request fields")
    assert r.code == REPLY_OK, r
    for name in ("apns", "fcm"):
        r = w.providers[name].wait_delivered(2)[1]
        assert (view(name, r)["title"], view(name, r)["body"]) == ("From Send", "request fields")
    w.bob.chat("alice", b"3")
    for name in ("apns", "fcm"):
        r = w.providers[name].wait_delivered(3)[2]
        assert (view(name, r)["title"], view(name, r)["body"]) == ("Pigeon", "You have mail")


def test_without_configured_texts_the_body_is_new_message_and_there_is_no_title(world):
    w = world("apns", default_title=None)
    apns = w.providers["apns"]
    w.register("alice", "apns", device_token("apns", 1))
    w.bob.chat("alice", b"x")
    (r,) = apns.wait_delivered(1)
    v = view("apns", r)
    assert v["body"] == "New message" and not v["title"]


def test_huawei_push_without_a_default_title_is_accepted_by_push_kit(world):
    """
    Push Kit requires android.notification.title (the fake refuses a
    notification without one, as Push Kit does). With no push-title and no
    default_title the broker must still send something Push Kit accepts.
    """
    w = world("huawei", default_title=None)
    hms = w.providers["huawei"]
    w.register("alice", "huawei", device_token("huawei", 1))
    w.bob.chat("alice", b"x")
    (r,) = hms.wait_requests(1)
    assert r["verdict"]["reason"] == "ok", r["verdict"]
    note = r["json"]["message"]["android"]["notification"]
    assert note["title"] == note["body"] == "New message"


def test_long_texts_are_shortened_to_what_each_provider_takes(world):
    w = world("apns", "xiaomi")
    w.register("alice", "apns", device_token("apns", 1), device="phone")
    w.register("alice", "xiaomi", device_token("xiaomi", 1), device="redmi")
    title = "标" * 85  # 255 bytes (push_title's limit is 256), 85 characters
    body = "é" * 512   # 1024 bytes: push_body's limit, 512 characters
    assert w.bob.chat("alice", b"x", push_title=title, push_body=body) in PUBACK_ACCEPTED
    (a,) = w.providers["apns"].wait_delivered(1)
    (x,) = w.providers["xiaomi"].wait_delivered(1)
    va, vx = view("apns", a), view("xiaomi", x)
    assert (va["title"], va["body"]) == (title, body), "APNs takes them whole (4096 bytes)"
    assert len(vx["title"]) < 50 and len(vx["body"]) < 128
    assert title.startswith(vx["title"]) and body.startswith(vx["body"])


# ------------------------------------------------------------ registration


def test_register_device_errors(world, pb):
    w = world("apns")
    d = w.login("alice", "phone")
    assert w.register_reply(d, "blackberry", "t").code == REPLY_BAD_REQUEST
    assert w.register_reply(d, "", "t").code == REPLY_BAD_REQUEST
    assert w.register_reply(d, "apns", "").code == REPLY_BAD_REQUEST
    r = w.register_reply(d, "xiaomi", "mi-1")
    assert r.code == REPLY_NOT_AVAILABLE and r.error, "no xiaomi credentials on this broker"
    assert w.register_reply(d, "fcm", "fcm-1").code == REPLY_NOT_AVAILABLE
    assert w.register_reply(d, "apns", device_token("apns", 1)).code == REPLY_OK
    # The refusals changed nothing: the registration that worked is the one used.
    w.offline(d)
    w.bob.chat("alice", b"x")
    (r,) = w.providers["apns"].wait_delivered(1)
    assert view("apns", r)["token"] == device_token("apns", 1)


def test_unregister_device_stops_its_pushes(world, pb):
    w = world("apns")
    apns = w.providers["apns"]
    d = w.register("alice", "apns", device_token("apns", 1), offline=False)
    assert d.request(unregister_device=pb.UnregisterDevice()).code == REPLY_OK
    assert d.request(unregister_device=pb.UnregisterDevice()).code == REPLY_OK  # again: still 0
    w.offline(d)
    w.bob.chat("alice", b"x")
    settle()
    assert apns.requests() == []


def test_re_registration_replaces_the_token(world):
    w = world("apns")
    apns = w.providers["apns"]
    w.register("alice", "apns", device_token("apns", 1))
    w.register("alice", "apns", device_token("apns", 2))
    w.bob.chat("alice", b"x")
    (r,) = apns.wait_delivered(1)
    assert view("apns", r)["token"] == device_token("apns", 2)
    settle()
    assert len(apns.requests()) == 1


def test_a_token_registered_by_another_user_moves_to_that_user(world):
    w = world("apns")
    apns = w.providers["apns"]
    tok = device_token("apns", 1)
    w.register("alice", "apns", tok)
    w.register("carol", "apns", tok)  # the phone changed hands
    w.bob.chat("alice", b"for alice")
    settle()
    assert apns.requests() == [], "alice's messages must not reach carol's phone"
    w.bob.chat("carol", b"for carol")
    (r,) = apns.wait_delivered(1)
    assert view("apns", r)["token"] == tok and view("apns", r)["data"]["seq"] == 1


def test_registration_survives_a_restart(world):
    w = world("apns")
    apns = w.providers["apns"]
    w.register("alice", "apns", device_token("apns", 1))
    w.broker.stop()
    w.broker.restart()
    w.forget_sessions()
    w.bob.chat("alice", b"x")
    (r,) = apns.wait_delivered(1)
    assert view("apns", r)["token"] == device_token("apns", 1)


# ------------------------------------------------------------ device removal


REMOVALS = [("apns", "unregistered"), ("apns", "bad_device_token"), ("fcm", "unregistered"),
            ("fcm", "invalid_token"), ("huawei", "unregistered"), ("huawei", "illegal_token"),
            ("xiaomi", "unregistered"), ("xiaomi", "bad_regids"), ("webhook", "unregistered")]


@pytest.mark.parametrize("platform, mode", REMOVALS)
def test_the_providers_device_gone_answer_removes_the_device(world, platform, mode):
    w = world(platform)
    fake = w.providers[platform]
    w.register("alice", platform, device_token(platform, 1))
    w.register("alice", platform, device_token(platform, 2), device="tablet")
    fake.set_mode(mode, count=1)
    w.bob.chat("alice", b"one")
    reqs = fake.wait_requests(2)
    gone = [view(platform, r)["token"] for r in reqs if r["verdict"]["reason"] == mode]
    assert len(gone) == 1, [r["verdict"] for r in reqs]
    w.wait_counter(f"{platform}/removed", 1)
    w.wait_counter("devices", 1)
    settle()
    assert len(fake.requests()) == 2, "a removal is final: no retry"
    w.bob.chat("alice", b"two")
    settle()
    later = fake.requests()[2:]
    assert [view(platform, r)["token"] for r in later] == \
        [t for t in (device_token(platform, 1), device_token(platform, 2)) if t not in gone]
    assert all(r["verdict"]["reason"] == "ok" for r in later)


def test_a_removal_does_not_remove_a_token_registered_again_meanwhile(world):
    """The device re-registered a new token while the old one's push was out."""
    w = world("apns")
    apns = w.providers["apns"]
    w.register("alice", "apns", device_token("apns", 1))
    apns.set_mode("unregistered", delay_ms=800, count=1)
    w.bob.chat("alice", b"one")
    apns.wait_requests(1)
    w.register("alice", "apns", device_token("apns", 2))  # before the 410 comes back
    time.sleep(1.0)
    w.bob.chat("alice", b"two")
    reqs = apns.wait_delivered(1)
    assert view("apns", reqs[0])["token"] == device_token("apns", 2)


# ------------------------------------------------------------ webhook


def test_webhook_post_is_signed_with_the_secret_and_carries_the_push(world):
    w = world("webhook")
    hook = w.providers["webhook"]
    w.register("alice", "webhook", "hook-device-1")
    w.bob.chat("alice", b"x", push_title="T", push_body="B")
    (r,) = hook.wait_delivered(1)  # the fake checked X-Pigeon-Signature
    sig = r["headers"]["x-pigeon-signature"]
    want = hmac.new(hook.creds["secret"].encode(), r["body"].encode(), hashlib.sha256).hexdigest()
    assert sig == "sha256=" + want
    j = r["json"]
    assert (j["token"], j["platform"], j["title"], j["body"], j["badge"]) == (
        "hook-device-1", "webhook", "T", "B", 1)
    assert (j["data"]["seq"], j["data"]["from"], j["data"]["kind"]) == (1, "bob", "chat")
