# SPDX-License-Identifier: Apache-2.0
"""
pigeon_auth.so through the real broker (docs/auth.md, docs/configuration.md): every login
accepted or refused by a real MQTT CONNECT, the access matrix by real
SUBSCRIBE/PUBLISH, revocation on SIGHUP, the failed-login limit, and the
broker refusing to start on a bad configuration. Tokens are minted by PyJWT,
an implementation independent of ours.

Most tests share one broker (module scope) that accepts HS256, ES256 and
EdDSA with the failed-login limit off, so that the many refusals here do not
block 127.0.0.1; tests whose state matters start their own.
"""

import hashlib
import hmac
import json
import os
import re
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from harness import (
    CONNACK_NOT_AUTHORIZED_V3,
    CONNACK_NOT_AUTHORIZED_V5,
    CONNACK_OK,
    OMIT,
    PUBACK_NO_SUBSCRIBERS,
    PUBACK_NOT_AUTHORIZED,
    PUBACK_OK,
    SUBACK_REFUSED_V3,
    SUBACK_REFUSED_V5,
    TIMEOUT,
    b64url,
    replace_claims,
    unsigned_token,
)

ALGS = ["HS256", "ES256", "EdDSA"]


def refused_line(client_id, reason):
    """The log line pigeon_auth writes for a refused login."""
    return (r"pigeon_auth: refused login of client '" + re.escape(client_id)
            + r"' user '[^']*' from [0-9.]+: " + reason)


@pytest.fixture(scope="module")
def broker(module_brokers, keys):
    return module_brokers.start_auth(keys.auth_options("HS256,ES256,EdDSA", login_fail_limit=0),
                                     name="all_algs")


@pytest.fixture(scope="module")
def es256_broker(module_brokers, keys):
    return module_brokers.start_auth(
        {"jwt_algs": "ES256", "jwt_public_key_file": keys.es256_pub_file, "login_fail_limit": 0},
        name="es256_only")


# ------------------------------------------------------------------ logins


@pytest.mark.parametrize("protocol", [5, 3], ids=["mqtt5", "mqtt311"])
@pytest.mark.parametrize("alg", ALGS)
def test_valid_token_logs_in(broker, keys, mqtt, alg, protocol):
    device = f"{alg.lower()}-v{protocol}"
    mark = broker.mark()
    c, rc = mqtt.connect(broker, "alice", device, keys.token("alice", alg=alg), protocol=protocol)
    assert rc == CONNACK_OK
    assert c.connected
    broker.expect_log(rf"New client connected from 127\.0\.0\.1:\d+ as alice:{device} ", mark)
    assert "refused login" not in broker.log_since(mark)


def _bad_login_cases():
    """(id, make(keys) -> (client_id, username, password), reason regex)."""
    now = int(time.time())

    def std(tok_fn, client_id="alice:phone", username="alice"):
        return lambda k: (client_id, username, tok_fn(k))

    return [
        ("tampered_claims", std(lambda k: replace_claims(
            k.token("alice"), {"sub": "alice", "exp": now + 600, "role": "service"})),
         "signature does not verify"),
        ("tampered_signature", std(lambda k: k.token("alice")[:-6] + ("A" * 6)),
         "signature does not verify|signature is not base64url"),
        ("signed_by_another_secret", std(lambda k: jwt.encode(
            {"sub": "alice", "exp": now + 600}, os.urandom(48), algorithm="HS256")),
         "signature does not verify"),
        ("alg_none", std(lambda k: unsigned_token({"sub": "alice", "exp": now + 600})),
         re.escape('alg "none" is refused')),
        ("alg_none_with_signature", std(lambda k: unsigned_token(
            {"sub": "alice", "exp": now + 600}) + k.token("alice").split(".")[2]),
         re.escape('alg "none" is refused')),
        ("alg_unknown_hs512", std(lambda k: jwt.encode(
            {"sub": "alice", "exp": now + 600}, k.secret, algorithm="HS512")),
         "alg is not one pigeon knows"),
        ("expired", std(lambda k: k.token("alice", iat=now - 7200, exp=now - 3600)),
         re.escape("token expired (exp is in the past)")),
        ("nbf_in_future", std(lambda k: k.token("alice", nbf=now + 600)),
         re.escape("token not valid yet (nbf is in the future)")),
        ("iat_in_future", std(lambda k: k.token("alice", iat=now + 600, exp=now + 1200)),
         re.escape("token issued in the future (iat)")),
        ("missing_sub", std(lambda k: k.token(OMIT)), "sub claim missing"),
        ("missing_exp", std(lambda k: k.token("alice", exp=OMIT)), "exp claim missing"),
        ("exp_not_a_number", std(lambda k: k.token("alice", exp="tomorrow")),
         "exp is not a NumericDate"),
        ("sub_not_an_identifier", std(lambda k: k.token("al/ice"), username="al/ice"),
         "sub is not a valid uid"),
        ("role_unknown", std(lambda k: k.token("alice", role="admin")),
         "role is neither"),
        ("non_json_garbage", std(lambda k: "this is not a token"),
         re.escape("not a compact JWS (header.payload.signature)")),
        ("three_parts_of_garbage", std(lambda k: "aGVsbG8.d29ybGQ.c2ln"),
         "header is not base64url JSON"),
        ("claims_not_json", std(lambda k: _sign_raw_hs256(k, b"[1,2,3]")),
         "claims are not a base64url JSON object"),
        ("claims_with_trailing_garbage", std(lambda k: _sign_raw_hs256(
            k, json.dumps({"sub": "alice", "exp": now + 600}).encode() + b"}{x")),
         "claims are not a base64url JSON object"),
        ("password_60kb_garbage", std(lambda k: "x" * 60000),
         re.escape("token longer than 4096 bytes")),
        ("username_not_sub", std(lambda k: k.token("alice"), username="bob"),
         re.escape("username is not the token's sub")),
        ("no_username_no_password", lambda k: ("alice:phone", None, None),
         re.escape("username (uid) and password (token) are required")),
        ("username_without_password", lambda k: ("alice:phone", "alice", None),
         re.escape("username (uid) and password (token) are required")),
        ("client_id_device_too_long", std(lambda k: k.token("alice"),
                                          client_id="alice:" + "p" * 65),
         re.escape("client id must be <uid>:<device>")),
        ("client_id_bad_character", std(lambda k: k.token("alice"), client_id="alice:ph/one"),
         re.escape("client id must be <uid>:<device>")),
        ("client_id_without_device", std(lambda k: k.token("alice"), client_id="alice"),
         re.escape("client id must be <uid>:<device>")),
        ("client_id_empty_device", std(lambda k: k.token("alice"), client_id="alice:"),
         re.escape("client id must be <uid>:<device>")),
        ("client_id_two_colons", std(lambda k: k.token("alice"), client_id="alice:phone:2"),
         re.escape("client id must be <uid>:<device>")),
        ("client_id_of_another_user", std(lambda k: k.token("alice"), client_id="bob:phone"),
         re.escape("client id's uid is not the token's sub")),
        ("client_id_device_not_token_dev", std(lambda k: k.token("alice", dev="phone"),
                                               client_id="alice:tablet"),
         re.escape("client id's device is not the token's dev")),
    ]


def _sign_raw_hs256(keys, payload):
    signing_input = b64url(json.dumps({"alg": "HS256"})) + "." + b64url(payload)
    sig = hmac.new(keys.secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


BAD_LOGINS = _bad_login_cases()


@pytest.mark.parametrize("make,reason", [c[1:] for c in BAD_LOGINS], ids=[c[0] for c in BAD_LOGINS])
def test_bad_login_is_refused_and_logged(broker, keys, mqtt, make, reason):
    client_id, username, password = make(keys)
    mark = broker.mark()
    c = mqtt.new(broker, client_id, username, password)
    assert c.connect() == CONNACK_NOT_AUTHORIZED_V5
    assert c.wait_disconnected()
    broker.expect_log(refused_line(client_id, reason), mark)
    assert "New client connected" not in broker.log_since(mark)


@pytest.mark.parametrize("name", ["tampered_claims", "expired", "client_id_of_another_user"])
def test_bad_login_is_refused_on_mqtt311(broker, keys, mqtt, name):
    make, reason = next(c[1:] for c in BAD_LOGINS if c[0] == name)
    client_id, username, password = make(keys)
    mark = broker.mark()
    c = mqtt.new(broker, client_id, username, password, protocol=3)
    assert c.connect() == CONNACK_NOT_AUTHORIZED_V3
    broker.expect_log(refused_line(client_id, reason), mark)


def test_empty_client_id_is_refused(broker, keys, mqtt):
    # MQTT 5 lets the broker assign an id to an empty one; it is not <uid>:<device>.
    mark = broker.mark()
    c = mqtt.new(broker, "", "alice", keys.token("alice"))
    assert c.connect() == CONNACK_NOT_AUTHORIZED_V5
    broker.expect_log(r"refused login of client '[^']*' user 'alice' from 127\.0\.0\.1: "
                      + re.escape("client id must be <uid>:<device>"), mark)


def test_expired_token_within_clock_skew_logs_in(broker, keys, mqtt):
    now = int(time.time())
    _, rc = mqtt.connect(broker, "alice", "skew", keys.token("alice", iat=now - 600, exp=now - 5))
    assert rc == CONNACK_OK
    _, rc = mqtt.connect(broker, "alice", "skew2", keys.token("alice", nbf=now + 5))
    assert rc == CONNACK_OK


def test_hs256_token_refused_by_es256_only_broker(es256_broker, keys, mqtt):
    mark = es256_broker.mark()
    _, rc = mqtt.connect(es256_broker, "alice", "phone", keys.token("alice", alg="HS256"))
    assert rc == CONNACK_NOT_AUTHORIZED_V5
    es256_broker.expect_log(refused_line("alice:phone", "alg is not among the configured jwt_algs"),
                            mark)
    _, rc = mqtt.connect(es256_broker, "alice", "phone", keys.token("alice", alg="EdDSA"))
    assert rc == CONNACK_NOT_AUTHORIZED_V5
    _, rc = mqtt.connect(es256_broker, "alice", "phone", keys.token("alice", alg="ES256"))
    assert rc == CONNACK_OK


def test_hs256_token_keyed_with_the_public_key_is_refused(es256_broker, keys, mqtt):
    # The classic algorithm confusion: HMAC keyed with the broker's public PEM.
    now = int(time.time())
    signing_input = (b64url(json.dumps({"alg": "HS256", "typ": "JWT"})) + "."
                     + b64url(json.dumps({"sub": "alice", "exp": now + 600})))
    sig = hmac.new(keys.es256_pub_file.read_bytes(), signing_input.encode(), hashlib.sha256)
    mark = es256_broker.mark()
    _, rc = mqtt.connect(es256_broker, "alice", "phone", signing_input + "." + b64url(sig.digest()))
    assert rc == CONNACK_NOT_AUTHORIZED_V5
    es256_broker.expect_log(refused_line("alice:phone", "alg is not among the configured"), mark)


def test_token_cannot_take_over_another_users_session(broker, keys, mqtt):
    mark = broker.mark()
    bob, rc = mqtt.connect(broker, "bob", "phone", keys.token("bob"))
    assert rc == CONNACK_OK
    alice_token = keys.token("alice")
    # alice's token with bob's client id, first as alice, then claiming to be bob.
    for username, reason in [("alice", "client id's uid is not the token's sub"),
                             ("bob", "username is not the token's sub")]:
        m = broker.mark()
        thief = mqtt.new(broker, "bob:phone", username, alice_token)
        assert thief.connect() == CONNACK_NOT_AUTHORIZED_V5
        broker.expect_log(refused_line("bob:phone", re.escape(reason)), m)
    # bob's connection is untouched: no disconnect, and it still answers.
    assert bob.ping()
    assert bob.subscribe("im/bob/#") == [1]
    assert bob.publish("im/carol/chat") in (PUBACK_OK, PUBACK_NO_SUBSCRIBERS)
    assert bob.disconnects == [] and bob.connected
    log = broker.log_since(mark)
    assert "closing old connection" not in log
    # (2.0.21 logs the refused thief as "Client bob:phone disconnected, not
    # authorised."; that line is about the thief, not bob's connection.)
    assert not re.search(r"Client bob:phone (disconnected(?!, not authorised)|closed|been disconnected)",
                         log)


def test_same_device_reconnecting_takes_over_its_own_session(broker, keys, mqtt):
    # The one legitimate takeover: the same uid:device logging in again. The
    # new connection must keep its identity for the ACL after the broker
    # drops the old one (the old one's DISCONNECT must not forget the new).
    first, rc = mqtt.connect(broker, "erin", "phone", keys.token("erin"))
    assert rc == CONNACK_OK
    mark = broker.mark()
    second, rc = mqtt.connect(broker, "erin", "phone", keys.token("erin"))
    assert rc == CONNACK_OK
    assert first.wait_disconnected()
    broker.expect_log(r"Client erin:phone already connected, closing old connection", mark)
    assert second.subscribe("im/erin/#") == [1]
    assert second.publish("im/bob/chat") in (PUBACK_OK, PUBACK_NO_SUBSCRIBERS)
    assert second.ping() and second.connected


def test_device_bound_token_logs_in_only_as_that_device(broker, keys, mqtt):
    tok = keys.token("alice", dev="phone")
    mark = broker.mark()
    _, rc = mqtt.connect(broker, "alice", "tablet", tok)
    assert rc == CONNACK_NOT_AUTHORIZED_V5
    broker.expect_log(refused_line("alice:tablet",
                                   re.escape("client id's device is not the token's dev")), mark)
    c, rc = mqtt.connect(broker, "alice", "phone", tok)
    assert rc == CONNACK_OK


def test_token_without_dev_logs_in_as_any_device_at_once(broker, keys, mqtt):
    tok = keys.token("alice")
    clients = [mqtt.connect(broker, "alice", d, tok) for d in ("phone", "tablet", "laptop")]
    assert [rc for _, rc in clients] == [CONNACK_OK] * 3
    assert all(c.ping() and c.connected for c, _ in clients)


@pytest.mark.parametrize("alg", ALGS)
def test_service_role_token_logs_in(broker, keys, mqtt, alg):
    c, rc = mqtt.connect(broker, "svc", alg.lower(), keys.token("svc", alg=alg, role="service"))
    assert rc == CONNACK_OK
    # The role is honoured: only services may subscribe to presence.
    assert c.subscribe("im/+/presence") == [1]


# ------------------------------------------------------------- the ACL matrix


@pytest.fixture(scope="module")
def alice(broker, keys, module_mqtt):
    c, rc = module_mqtt.connect(broker, "alice", "acl", keys.token("alice"))
    assert rc == CONNACK_OK
    return c


@pytest.fixture(scope="module")
def alice311(broker, keys, module_mqtt):
    c, rc = module_mqtt.connect(broker, "alice", "acl311", keys.token("alice"), protocol=3)
    assert rc == CONNACK_OK
    return c


@pytest.fixture(scope="module")
def svc(broker, keys, module_mqtt):
    c, rc = module_mqtt.connect(broker, "svc", "acl", keys.token("svc", role="service"))
    assert rc == CONNACK_OK
    return c


_fresh_devices = iter(range(1, 1 << 30))


def _fresh_client(broker, keys, mqtt, role):
    """
    A new session for a refused case: refusal lines are rate limited per
    session (a few, then one per 10 s), so each case that looks for its line
    needs a session that has not used up its lines.
    """
    uid = "alice" if role == "user" else "svc"
    claims = {"role": "service"} if role == "service" else {}
    c, rc = mqtt.connect(broker, uid, f"deny-{next(_fresh_devices)}", keys.token(uid, **claims))
    assert rc == CONNACK_OK
    return c


SUBSCRIBE_MATRIX = [
    # (role, filter, allowed)
    ("user", "im/alice/#", True),
    ("user", "im/alice/inbox", True),
    ("user", "im/alice/reply", True),
    ("user", "im/alice/+", True),
    ("user", "$share/g/im/alice/#", True),
    ("user", "im/+/inbox", False),
    ("user", "im/#", False),
    ("user", "#", False),
    ("user", "+/alice/inbox", False),
    ("user", "im/bob/#", False),
    ("user", "im/bob/inbox", False),
    ("user", "im/alice/presence", False),
    ("user", "im/+/presence", False),
    ("user", "im/alice/chat", False),
    ("user", "$SYS/#", False),
    ("user", "$share/g/im/bob/#", False),
    ("user", "$share/g/#", False),
    ("user", "foo/bar", False),
    ("service", "im/svc/#", True),
    ("service", "im/+/presence", True),
    ("service", "im/bob/presence", True),
    ("service", "$SYS/#", True),
    ("service", "$share/g/im/+/presence", True),
    ("service", "$share/g/im/svc/#", True),
    ("service", "im/+/inbox", False),
    ("service", "im/bob/#", False),
    ("service", "im/bob/inbox", False),
    ("service", "im/#", False),
    ("service", "#", False),
    ("service", "im/+/+", False),
]


@pytest.mark.parametrize("role,filt,allowed", SUBSCRIBE_MATRIX,
                         ids=[f"{r}-{f}-{'ok' if a else 'refused'}"
                              for r, f, a in SUBSCRIBE_MATRIX])
def test_subscribe_acl(broker, keys, mqtt, alice, svc, role, filt, allowed):
    client = alice if role == "user" else svc
    if not allowed:
        client = _fresh_client(broker, keys, mqtt, role)
    mark = broker.mark()
    assert client.subscribe(filt) == ([1] if allowed else [SUBACK_REFUSED_V5])
    if not allowed:
        broker.expect_log(r"pigeon_auth: denied subscribe of '" + re.escape(filt) + "' to "
                          + re.escape(client.client_id), mark)
    assert client.connected


def test_subscribe_acl_on_mqtt311(alice311):
    assert alice311.subscribe(["im/alice/#", "im/+/inbox", "#", "im/bob/#"]) == \
        [1, SUBACK_REFUSED_V3, SUBACK_REFUSED_V3, SUBACK_REFUSED_V3]
    assert alice311.connected


SENT = (PUBACK_OK, PUBACK_NO_SUBSCRIBERS)
PUBLISH_MATRIX = [
    # (role, topic, retain, allowed)
    ("user", "im/bob/chat", False, True),
    ("user", "im/bob/instant", False, True),
    ("user", "im/alice/chat", False, True),
    ("user", "$CONTROL/pigeon/v1", False, True),
    ("user", "im/bob/notify/like", False, False),
    ("user", "im/bob/inbox", False, False),
    ("user", "im/alice/inbox", False, False),
    ("user", "im/bob/reply", False, False),
    ("user", "im/bob/presence", False, False),
    ("user", "im/bob/chat", True, False),
    ("user", "foo/bar", False, False),
    ("user", "im/bob", False, False),
    ("user", "im/bob/chat/x", False, False),
    ("user", "im/bob/notify", False, False),
    ("user", "$CONTROL/pigeon/v2", False, False),
    ("user", "$SYS/broker/x", False, False),
    ("service", "im/bob/notify/like", False, True),
    ("service", "im/bob/chat", False, True),
    ("service", "im/bob/instant", False, True),
    ("service", "$CONTROL/pigeon/v1", False, True),
    ("service", "im/bob/inbox", False, False),
    ("service", "im/bob/reply", False, False),
    ("service", "im/bob/presence", False, False),
    ("service", "im/bob/notify/like", True, False),
    ("service", "foo/bar", False, False),
]


@pytest.mark.parametrize(
    "role,topic,retain,allowed", PUBLISH_MATRIX,
    ids=[f"{r}-{t}{'-retained' if rt else ''}-{'ok' if a else 'refused'}"
         for r, t, rt, a in PUBLISH_MATRIX])
def test_publish_acl(broker, keys, mqtt, alice, svc, role, topic, retain, allowed):
    client = alice if role == "user" else svc
    if not allowed:
        client = _fresh_client(broker, keys, mqtt, role)
    mark = broker.mark()
    rc = client.publish(topic, retain=retain)
    if allowed:
        assert rc in SENT
    else:
        assert rc == PUBACK_NOT_AUTHORIZED
        broker.expect_log(r"Denied PUBLISH from " + re.escape(client.client_id) + r" .*'"
                          + re.escape(topic) + "'", mark)
        if not topic.startswith("$SYS/"):  # mosquitto refuses those before asking plugins
            broker.expect_log(r"pigeon_auth: denied publish of '" + re.escape(topic) + "' to "
                              + re.escape(client.client_id), mark)
    assert client.connected


def test_user_may_send_notify_when_user_notify_is_on(module_brokers, keys, mqtt):
    b = module_brokers.start_auth(keys.auth_options(user_notify="true"), name="user_notify")
    c, rc = mqtt.connect(b, "alice", "phone", keys.token("alice"))
    assert rc == CONNACK_OK
    assert c.publish("im/bob/notify/like") in SENT
    # Still only a send: inbox stays the broker's.
    assert c.publish("im/bob/inbox") == PUBACK_NOT_AUTHORIZED


def test_send_topic_is_never_delivered_raw(broker, keys, alice, svc):
    # alice holds im/alice/#, which matches im/alice/chat; the read ACL must
    # still refuse to deliver a raw send (only the broker's envelope on
    # inbox is readable). The PUBACK 0x00 says the broker did route it.
    assert alice.subscribe("im/alice/#") == [1]
    before = len(alice.messages)
    assert svc.publish("im/alice/chat", b"raw") == PUBACK_OK
    # Routing happens before that PUBACK; a PINGRESP to alice now comes
    # after anything that had been queued for her.
    assert alice.ping()
    assert len(alice.messages) == before


def test_will_message_cannot_forge_an_inbox_message(broker, keys, mqtt):
    # A will is published by the broker on the client's behalf when it drops
    # off; it must pass the same write ACL as a publish.
    bob, rc = mqtt.connect(broker, "bob", "will-target", keys.token("bob"))
    assert rc == CONNACK_OK
    assert bob.subscribe("im/bob/#") == [1]
    for topic in ("im/bob/inbox", "im/bob/chat"):
        mallory = mqtt.new(broker, "mallory:will", "mallory", keys.token("mallory"))
        mallory.c.will_set(topic, b"forged envelope", qos=1)
        assert mallory.connect() == CONNACK_OK
        mark = broker.mark()
        mallory.abort()
        broker.expect_log(r"Client mallory:will closed its connection", mark)
        # The will, had it been queued, was queued for bob before this PINGRESP.
        assert bob.ping()
    assert bob.messages == []
    assert bob.connected


def test_service_receives_sys(broker, svc):
    assert svc.subscribe("$SYS/broker/version") == [1]
    m = svc.wait_message("$SYS/broker/version")
    assert m is not None and b"mosquitto" in m.payload


# ---------------------------------------------------------------- revocation


@pytest.fixture
def revoked_file(tmp_path):
    p = tmp_path / "revoked.txt"
    p.write_text("# revoked tokens\n")
    return p


def _reload(b, expect):
    mark = b.mark()
    b.reload()
    b.expect_log(expect, mark)
    return mark


def test_revoked_jti_disconnects_its_session_on_sighup(brokers, keys, mqtt, revoked_file):
    b = brokers.start_auth(keys.auth_options(revoked_file=revoked_file))
    alice_tok = keys.token("alice", jti="alice-1")
    alice, rc = mqtt.connect(b, "alice", "phone", alice_tok)
    assert rc == CONNACK_OK
    carol, rc = mqtt.connect(b, "carol", "phone", keys.token("carol", jti="carol-1"))
    assert rc == CONNACK_OK

    revoked_file.write_text("jti alice-1\n")
    mark = _reload(b, r"pigeon_auth: reloaded keys, 1 revocation entries")
    assert alice.wait_disconnected(timeout=TIMEOUT)
    b.expect_log(r"pigeon_auth: disconnecting 'alice:phone': its token is revoked", mark)
    assert carol.ping() and carol.connected

    m = b.mark()
    _, rc = mqtt.connect(b, "alice", "phone", alice_tok)
    assert rc == CONNACK_NOT_AUTHORIZED_V5
    b.expect_log(refused_line("alice:phone", re.escape("token revoked (jti)")), m)
    # Another token of alice's is not affected.
    _, rc = mqtt.connect(b, "alice", "phone", keys.token("alice", jti="alice-2"))
    assert rc == CONNACK_OK


def test_revoked_sub_refuses_tokens_issued_before_its_time(brokers, keys, mqtt, revoked_file):
    b = brokers.start_auth(keys.auth_options(revoked_file=revoked_file))
    now = int(time.time())
    old_tok = keys.token("alice", iat=now - 120)
    alice, rc = mqtt.connect(b, "alice", "phone", old_tok)
    assert rc == CONNACK_OK
    alice_tablet, rc = mqtt.connect(b, "alice", "tablet", keys.token("alice", iat=now - 90))
    assert rc == CONNACK_OK
    carol, rc = mqtt.connect(b, "carol", "phone", keys.token("carol", iat=now - 120))
    assert rc == CONNACK_OK

    revoked_file.write_text(f"sub alice {now - 60}\n")
    mark = _reload(b, r"pigeon_auth: reloaded keys, 1 revocation entries")
    # Every device of alice's goes, not only the first found.
    assert alice.wait_disconnected() and alice_tablet.wait_disconnected()
    b.expect_log(r"disconnecting 'alice:phone': its token is revoked", mark)
    b.expect_log(r"disconnecting 'alice:tablet': its token is revoked", mark)
    assert carol.ping() and carol.connected

    reason = re.escape("token revoked (all of the user's tokens issued before a time)")
    m = b.mark()
    _, rc = mqtt.connect(b, "alice", "phone", old_tok)
    assert rc == CONNACK_NOT_AUTHORIZED_V5
    b.expect_log(refused_line("alice:phone", reason), m)
    # A token without iat counts as old.
    _, rc = mqtt.connect(b, "alice", "tablet", keys.token("alice", iat=OMIT))
    assert rc == CONNACK_NOT_AUTHORIZED_V5
    # A token issued after the revocation time works.
    _, rc = mqtt.connect(b, "alice", "phone", keys.token("alice"))
    assert rc == CONNACK_OK


def test_revocation_file_is_read_at_start_and_after_a_crash(brokers, keys, mqtt, revoked_file):
    revoked_file.write_text("# one revoked token\njti stolen-1\n")
    b = brokers.start_auth(keys.auth_options(revoked_file=revoked_file))
    b.expect_log(r"pigeon_auth: ready")
    stolen = keys.token("alice", jti="stolen-1")
    for _ in range(2):
        m = b.mark()
        _, rc = mqtt.connect(b, "alice", "phone", stolen)
        assert rc == CONNACK_NOT_AUTHORIZED_V5
        b.expect_log(refused_line("alice:phone", re.escape("token revoked (jti)")), m)
        _, rc = mqtt.connect(b, "alice", "phone", keys.token("alice", jti="fresh-1"))
        assert rc == CONNACK_OK
        b.kill9()
        b.restart()


def test_bad_revocation_file_on_reload_keeps_the_old_list(brokers, keys, mqtt, revoked_file):
    revoked_file.write_text("jti old-1\n")
    b = brokers.start_auth(keys.auth_options(revoked_file=revoked_file))
    alice, rc = mqtt.connect(b, "alice", "phone", keys.token("alice", jti="alice-1"))
    assert rc == CONNACK_OK

    # A bad line makes the whole file refused: alice-1 is not revoked, old-1 still is.
    revoked_file.write_text("jti alice-1\nrevoke everything\n")
    mark = _reload(b, r"pigeon_auth: reload failed, keeping the keys and revocation list")
    b.expect_log(r"pigeon_auth: .*revoked\.txt: line 2: unknown entry 'revoke'", mark)
    assert "reloaded keys" not in b.log_since(mark)
    assert alice.ping() and alice.connected
    _, rc = mqtt.connect(b, "alice", "tablet", keys.token("alice", jti="alice-1"))
    assert rc == CONNACK_OK
    _, rc = mqtt.connect(b, "alice", "laptop", keys.token("alice", jti="old-1"))
    assert rc == CONNACK_NOT_AUTHORIZED_V5

    # So does a file that went missing.
    revoked_file.unlink()
    mark = _reload(b, r"pigeon_auth: reload failed, keeping")
    b.expect_log(r"plugin_opt_revoked_file: cannot open", mark)
    assert alice.ping() and alice.connected

    # Fixed, the next reload applies it.
    revoked_file.write_text("jti alice-1\n")
    _reload(b, r"pigeon_auth: reloaded keys, 1 revocation entries")
    assert alice.wait_disconnected()


# ------------------------------------------------------------ key rotation


def _es256_pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def test_sighup_reloads_keys_and_a_bad_key_file_keeps_the_old_ones(brokers, mqtt, tmp_path):
    secret1, secret2 = os.urandom(40), os.urandom(40)
    key_a, key_b = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    secret_file, pub_file = tmp_path / "jwt.secret", tmp_path / "jwt.pub.pem"
    secret_file.write_bytes(secret1)
    pub_file.write_bytes(_es256_pem(key_a))
    b = brokers.start_auth({"jwt_algs": "HS256,ES256", "jwt_secret_file": secret_file,
                            "jwt_public_key_file": pub_file, "login_fail_limit": 0})

    def login(key, alg, device):
        tok = jwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, key, algorithm=alg)
        return mqtt.connect(b, "alice", device, tok)[1]

    assert login(secret1, "HS256", "d1") == CONNACK_OK
    assert login(key_a, "ES256", "d2") == CONNACK_OK
    assert login(key_b, "ES256", "d3") == CONNACK_NOT_AUTHORIZED_V5

    # Rotate: a new secret, and both public keys while tokens of either are out.
    secret_file.write_bytes(secret2)
    pub_file.write_bytes(_es256_pem(key_a) + _es256_pem(key_b))
    _reload(b, r"pigeon_auth: reloaded keys")
    mark = b.mark()
    assert login(secret1, "HS256", "d4") == CONNACK_NOT_AUTHORIZED_V5
    b.expect_log(refused_line("alice:d4", "signature does not verify"), mark)
    assert login(secret2, "HS256", "d5") == CONNACK_OK
    assert login(key_a, "ES256", "d6") == CONNACK_OK
    assert login(key_b, "ES256", "d7") == CONNACK_OK

    # A bad secret on reload changes nothing.
    secret_file.write_bytes(b"too short")
    mark = _reload(b, r"pigeon_auth: reload failed, keeping")
    b.expect_log(r"plugin_opt_jwt_secret_file: an HS256 secret must be at least 32 bytes", mark)
    assert login(secret2, "HS256", "d8") == CONNACK_OK


# ------------------------------------------------------ failed-login limit


def test_failed_login_limit_blocks_the_address_only(brokers, keys, mqtt):
    b = brokers.start_auth(keys.auth_options(login_fail_limit="3/60"))
    b.expect_log(r"login fail limit 3 per 60s")
    carol, rc = mqtt.connect(b, "carol", "phone", keys.token("carol"))
    assert rc == CONNACK_OK

    for bad in ("garbage", keys.token("alice", exp=OMIT), keys.token("mallory")):
        _, rc = mqtt.connect(b, "alice", "phone", bad)
        assert rc == CONNACK_NOT_AUTHORIZED_V5

    mark = b.mark()
    _, rc = mqtt.connect(b, "alice", "phone", keys.token("alice"))
    assert rc == CONNACK_NOT_AUTHORIZED_V5
    b.expect_log(refused_line("alice:phone", "too many failed logins from this address"), mark)

    mark = b.mark()
    c, rc = mqtt.connect(b, "alice", "phone", keys.token("alice"), bind_address="127.0.0.2")
    assert rc == CONNACK_OK
    b.expect_log(r"New client connected from 127\.0\.0\.2:\d+ as alice:phone", mark)
    # Sessions already open from the blocked address are not affected.
    assert carol.ping() and carol.connected


# ---------------------------------------------------- configuration errors


def _p384_public_pem(tmp_path):
    p = tmp_path / "p384.pub.pem"
    p.write_bytes(ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return p


CONFIG_ERRORS = [
    ("unknown_option", lambda k, t: k.auth_options(jwt_agls="HS256"),
     r"plugin_opt_jwt_agls: unknown option for pigeon_auth"),
    ("missing_secret_file", lambda k, t: {"jwt_secret_file": t / "nope.secret"},
     r"plugin_opt_jwt_secret_file: cannot open .*nope\.secret"),
    ("no_secret_for_hs256", lambda k, t: {"jwt_algs": "HS256"},
     r"HS256 is in jwt_algs but no secret file is set"),
    ("short_secret", lambda k, t: {"jwt_secret_file": _write(t / "short", b"0123456789")},
     r"an HS256 secret must be at least 32 bytes"),
    ("unknown_alg", lambda k, t: k.auth_options(jwt_algs="HS256,RS256"),
     r"plugin_opt_jwt_algs: unknown JWT algorithm 'RS256'"),
    ("no_public_key_for_es256", lambda k, t: {"jwt_algs": "ES256"},
     r"ES256/EdDSA is in jwt_algs but no public key file is set"),
    ("public_key_not_pem", lambda k, t: {"jwt_algs": "ES256",
                                         "jwt_public_key_file": k.secret_file},
     r"plugin_opt_jwt_public_key_file: no PEM public key found"),
    ("public_key_wrong_curve", lambda k, t: {"jwt_algs": "ES256",
                                             "jwt_public_key_file": _p384_public_pem(t)},
     r"plugin_opt_jwt_public_key_file: public key is neither P-256"),
    ("public_key_for_another_alg", lambda k, t: {"jwt_algs": "EdDSA",
                                                 "jwt_public_key_file": k.es256_pub_file},
     r"no key in it serves the configured jwt_algs"),
    ("bad_revocation_file", lambda k, t: k.auth_options(
        revoked_file=_write(t / "rev.txt", b"jti a\nsub bob yesterday\n")),
     r"rev\.txt: line 2: 'yesterday' is not a time"),
    ("missing_revocation_file", lambda k, t: k.auth_options(revoked_file=t / "none.txt"),
     r"plugin_opt_revoked_file: cannot open"),
    ("bad_login_fail_limit", lambda k, t: k.auth_options(login_fail_limit="3/0"),
     r"plugin_opt_login_fail_limit: "),
    ("bad_clock_skew", lambda k, t: k.auth_options(clock_skew_s="-1"),
     r"plugin_opt_clock_skew_s: '-1' is not a whole number"),
    ("bad_user_notify", lambda k, t: k.auth_options(user_notify="maybe"),
     r"plugin_opt_user_notify: 'maybe' is not true or false"),
]


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make,message", [c[1:] for c in CONFIG_ERRORS],
                         ids=[c[0] for c in CONFIG_ERRORS])
def test_bad_config_stops_the_broker_at_start(brokers, keys, tmp_path, make, message):
    rc, out = brokers.run_expecting_exit([("pigeon_auth.so", make(keys, tmp_path))])
    assert rc != 0
    assert re.search(r"pigeon_auth: .*" + message, out), out
    assert "Error: Plugin returned" in out
    assert "mosquitto version 2.0.11 running" not in out


# ------------------------------------------------------------------ last


def test_broker_still_serves_after_all_bad_input(broker, keys, mqtt):
    # Runs last in this module: the shared broker has seen every bad login
    # and refused operation above.
    assert broker.alive()
    c, rc = mqtt.connect(broker, "zed", "phone", keys.token("zed"))
    assert rc == CONNACK_OK
    assert c.subscribe("im/zed/#") == [1]
    assert c.publish("im/alice/chat") in SENT
    assert c.ping()
