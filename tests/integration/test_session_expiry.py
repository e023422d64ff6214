# SPDX-License-Identifier: Apache-2.0
"""
Sessions end with their token (issue 7, §2 point 10) and refusals do not
flood the log (point 9), through the real broker:

- a session is disconnected once its token's exp + plugin_opt_clock_skew_s
  has passed, not before, unless plugin_opt_expire_sessions is false;
- a reload (SIGHUP) that removes or changes the key that verified a
  session's token disconnects that session, and only sessions of such keys;
- a client repeating refused publishes or sends gets a bounded number of
  log lines, with a summary of what was held back, while the $SYS counters
  count every refusal.
"""

import os
import re
import socket
import struct
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import inboxlib
from harness import (
    CONNACK_NOT_AUTHORIZED_V5,
    CONNACK_OK,
    PUBACK_NOT_AUTHORIZED,
    SLOW,
    TIMEOUT,
    wait_until,
)

# Mosquitto 2.0's kick API sends MQTT 5 clients DISCONNECT 0x98
# "Administrative action" (the only reason it can give).
DISCONNECT_ADMINISTRATIVE_ACTION = 0x98

SKEW = 1  # plugin_opt_clock_skew_s in these tests


def _token(key, alg, sub="alice", exp=None, **claims):
    body = {"sub": sub, "iat": int(time.time()), "exp": exp or int(time.time()) + 600}
    body.update(claims)
    return jwt.encode(body, key, algorithm=alg)


def _sleep_until(t):
    d = t - time.time()
    if d > 0:
        time.sleep(d)


def _reload(b, expect=r"pigeon_auth: reloaded keys"):
    mark = b.mark()
    b.reload()
    b.expect_log(expect, mark)
    return mark


def _sys_value(client, topic, want, timeout=TIMEOUT + 3):
    """Waits until the retained/updated $SYS topic says want; the last value seen."""
    def latest():
        with client.cv:
            vals = [m.payload.decode() for m in client.messages if m.topic == topic]
        return vals[-1] if vals else None
    wait_until(lambda: latest() == str(want), timeout)
    return latest()


# ------------------------------------------------------------ token expiry


@pytest.mark.parametrize("protocol", [5, 3], ids=["mqtt5", "mqtt311"])
def test_session_is_disconnected_once_its_token_has_expired(brokers, keys, mqtt, protocol):
    b = brokers.start_auth(keys.auth_options(clock_skew_s=SKEW, login_fail_limit=0))
    b.expect_log(r"pigeon_auth: ready: .*expire sessions on")
    exp = int(time.time()) + int(2 + SLOW)  # room for two logins before exp, even sanitized
    alice, rc = mqtt.connect(b, "alice", "phone", keys.token("alice", exp=exp),
                             protocol=protocol)
    assert rc == CONNACK_OK
    carol, rc = mqtt.connect(b, "carol", "phone", keys.token("carol"), protocol=protocol)
    assert rc == CONNACK_OK
    mark = b.mark()

    # Not before exp + skew: a login with this token would still be accepted then.
    _sleep_until(exp + SKEW - 0.3)
    assert alice.ping() and alice.connected, "disconnected before exp + clock skew"

    # Shortly after: the broker's tick notices within about a second.
    assert alice.wait_disconnected(timeout=3 * SLOW + 2)
    assert time.time() >= exp + SKEW
    b.expect_log(r"pigeon_auth: disconnecting 'alice:phone': its token has expired", mark)
    # Sessions with a valid token are not touched.
    assert carol.ping() and carol.connected

    # The token is refused from now on; a fresh token is how a client renews.
    m = b.mark()
    again, rc = mqtt.connect(b, "alice", "phone", keys.token("alice", exp=exp),
                             protocol=protocol)
    assert rc != CONNACK_OK
    b.expect_log(r"refused login of client 'alice:phone' .*token expired", m)
    renewed, rc = mqtt.connect(b, "alice", "phone", keys.token("alice"), protocol=protocol)
    assert rc == CONNACK_OK
    assert renewed.ping() and renewed.connected


def _mqtt_str(s):
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def _varint(n):
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _raw_mqtt5_connect(broker, client_id, username, password):
    """
    A bare MQTT 5 connection (paho 1.6 drops the reason code of a server's
    DISCONNECT): sends CONNECT, returns (socket, CONNACK reason code).
    """
    var = _mqtt_str("MQTT") + bytes([5, 0xC2]) + struct.pack("!H", 60) + b"\x00"
    payload = _mqtt_str(client_id) + _mqtt_str(username) + _mqtt_str(password)
    body = var + payload
    sock = socket.create_connection((broker.host, broker.port), timeout=TIMEOUT)
    sock.sendall(b"\x10" + _varint(len(body)) + body)
    head = sock.recv(2)
    rest = sock.recv(head[1])
    assert head[0] == 0x20, head
    return sock, rest[1]


def test_mqtt5_client_is_told_administrative_action_at_expiry(brokers, keys):
    b = brokers.start_auth(keys.auth_options(clock_skew_s=0, login_fail_limit=0))
    exp = int(time.time()) + 2
    sock, rc = _raw_mqtt5_connect(b, "alice:raw", "alice", keys.token("alice", exp=exp))
    assert rc == CONNACK_OK
    sock.settimeout(4 * SLOW + 3)
    try:
        data = sock.recv(16)
    finally:
        sock.close()
    # DISCONNECT (0xE0) with reason 0x98, then the broker closes the connection.
    assert len(data) >= 3 and data[0] == 0xE0, data
    assert data[2] == DISCONNECT_ADMINISTRATIVE_ACTION, data
    assert time.time() >= exp


def test_expired_sessions_are_counted_and_each_disconnected_once(brokers, keys, mqtt):
    b = brokers.start_auth(keys.auth_options(clock_skew_s=0, login_fail_limit=0,
                                             sys_interval=1))
    svc, rc = mqtt.connect(b, "svc", "watch", keys.token("svc", role="service"))
    assert rc == CONNACK_OK
    assert svc.subscribe("$SYS/broker/pigeon/auth/#") == [1]
    exp = int(time.time()) + 2
    devices = [mqtt.connect(b, "dora", f"d{i}", keys.token("dora", exp=exp))[0] for i in range(5)]
    assert all(d.connected for d in devices)
    mark = b.mark()
    assert all(d.wait_disconnected(timeout=4 * SLOW + 2) for d in devices)
    assert _sys_value(svc, "$SYS/broker/pigeon/auth/disconnected/expired", 5) == "5"
    # One line per session, no repeats on later ticks.
    time.sleep(1.5)
    assert len(re.findall(r"disconnecting 'dora:d\d': its token has expired",
                          b.log_since(mark))) == 5
    assert svc.ping() and svc.connected


def test_sessions_stay_after_exp_when_expire_sessions_is_false(brokers, keys, mqtt):
    b = brokers.start_auth(keys.auth_options(clock_skew_s=0, login_fail_limit=0,
                                             expire_sessions="false"))
    b.expect_log(r"pigeon_auth: ready: .*expire sessions off")
    exp = int(time.time()) + 2
    alice, rc = mqtt.connect(b, "alice", "phone", keys.token("alice", exp=exp))
    assert rc == CONNACK_OK
    _sleep_until(exp + 2.5)
    assert alice.ping() and alice.connected
    assert "its token has expired" not in b.log_text()
    # New logins with the expired token are refused all the same.
    _, rc = mqtt.connect(b, "alice", "tablet", keys.token("alice", exp=exp))
    assert rc == CONNACK_NOT_AUTHORIZED_V5


def test_bad_expire_sessions_value_stops_the_broker(brokers, keys):
    rc, out = brokers.run_expecting_exit(
        [("pigeon_auth.so", keys.auth_options(expire_sessions="sometimes"))])
    assert rc != 0
    assert re.search(r"pigeon_auth: plugin_opt_expire_sessions: 'sometimes' is not true or false",
                     out), out


# ------------------------------------------------------------ key rotation


def _pub_pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def test_changed_secret_disconnects_its_sessions_on_sighup(brokers, mqtt, tmp_path):
    secret1, secret2 = os.urandom(40), os.urandom(40)
    secret_file = tmp_path / "jwt.secret"
    secret_file.write_bytes(secret1)
    b = brokers.start_auth({"jwt_secret_file": secret_file, "login_fail_limit": 0})
    alice, rc = mqtt.connect(b, "alice", "phone", _token(secret1, "HS256"))
    assert rc == CONNACK_OK
    bob, rc = mqtt.connect(b, "bob", "phone", _token(secret1, "HS256", sub="bob"))
    assert rc == CONNACK_OK

    # A reload with the same secret keeps everyone.
    mark = _reload(b)
    assert alice.ping() and bob.ping()
    assert "disconnecting" not in b.log_since(mark)

    secret_file.write_bytes(secret2)
    mark = _reload(b)
    assert alice.wait_disconnected() and bob.wait_disconnected()
    for who in ("alice", "bob"):
        b.expect_log(rf"pigeon_auth: disconnecting '{who}:phone': the key that verified its "
                     r"token is no longer configured", mark)
    _, rc = mqtt.connect(b, "alice", "phone", _token(secret1, "HS256"))
    assert rc == CONNACK_NOT_AUTHORIZED_V5
    fresh, rc = mqtt.connect(b, "alice", "phone", _token(secret2, "HS256"))
    assert rc == CONNACK_OK
    assert fresh.ping() and fresh.connected


def test_removed_public_key_disconnects_only_its_sessions(brokers, mqtt, tmp_path):
    key_a, key_b, key_c = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ed_key = ed25519.Ed25519PrivateKey.generate()
    secret = os.urandom(40)
    secret_file, pub_file = tmp_path / "jwt.secret", tmp_path / "jwt.pub.pem"
    secret_file.write_bytes(secret)
    pub_file.write_bytes(_pub_pem(key_a) + _pub_pem(key_b) + _pub_pem(ed_key))
    b = brokers.start_auth({"jwt_algs": "HS256,ES256,EdDSA", "jwt_secret_file": secret_file,
                            "jwt_public_key_file": pub_file, "login_fail_limit": 0})

    def login(key, alg, device):
        c, rc = mqtt.connect(b, "alice", device, _token(key, alg))
        assert rc == CONNACK_OK, device
        return c

    by_a, by_b = login(key_a, "ES256", "a"), login(key_b, "ES256", "b")
    by_ed, by_hs = login(ed_key, "EdDSA", "ed"), login(secret, "HS256", "hs")

    # Rotate: a leaves, c arrives; b (now listed first), Ed25519 and the secret stay.
    pub_file.write_bytes(_pub_pem(key_c) + _pub_pem(key_b) + _pub_pem(ed_key))
    mark = _reload(b, r"pigeon_auth: reloaded keys, 0 revocation entries, 4 keys")
    assert by_a.wait_disconnected()
    b.expect_log(r"disconnecting 'alice:a': the key that verified its token is no longer "
                 r"configured", mark)
    for c in (by_b, by_ed, by_hs):
        assert c.ping() and c.connected, c.client_id
    assert len(re.findall(r"pigeon_auth: disconnecting", b.log_since(mark))) == 1

    assert mqtt.connect(b, "alice", "a2", _token(key_a, "ES256"))[1] == CONNACK_NOT_AUTHORIZED_V5
    by_c = login(key_c, "ES256", "c")
    assert by_c.ping()


def test_bad_key_file_on_reload_disconnects_nobody(brokers, mqtt, tmp_path):
    key_a = ec.generate_private_key(ec.SECP256R1())
    pub_file = tmp_path / "jwt.pub.pem"
    pub_file.write_bytes(_pub_pem(key_a))
    b = brokers.start_auth({"jwt_algs": "ES256", "jwt_public_key_file": pub_file,
                            "login_fail_limit": 0})
    alice, rc = mqtt.connect(b, "alice", "phone", _token(key_a, "ES256"))
    assert rc == CONNACK_OK
    pub_file.write_bytes(b"not a key\n")
    mark = _reload(b, r"pigeon_auth: reload failed, keeping")
    time.sleep(0.3)
    assert alice.ping() and alice.connected
    assert "disconnecting" not in b.log_since(mark)


def test_revocation_on_reload_still_disconnects(brokers, keys, mqtt, tmp_path):
    # Revocation and key checks share one pass on reload; both reasons apply.
    revoked = tmp_path / "revoked.txt"
    revoked.write_text("")
    b = brokers.start_auth(keys.auth_options(revoked_file=revoked, login_fail_limit=0))
    alice, rc = mqtt.connect(b, "alice", "phone", keys.token("alice", jti="a-1"))
    assert rc == CONNACK_OK
    bob, rc = mqtt.connect(b, "bob", "phone", keys.token("bob", jti="b-1"))
    assert rc == CONNACK_OK
    revoked.write_text("jti a-1\n")
    mark = _reload(b, r"reloaded keys, 1 revocation entries")
    assert alice.wait_disconnected()
    b.expect_log(r"disconnecting 'alice:phone': its token is revoked", mark)
    assert bob.ping() and bob.connected


# ------------------------------------------------------- refusal log limit


def _pigeon_lines(text, pattern):
    return [line for line in text.splitlines() if re.search(pattern, line)]


def test_refused_publishes_log_a_bounded_number_of_lines_and_count_all(brokers, keys, mqtt):
    b = brokers.start_auth(keys.auth_options(login_fail_limit=0, sys_interval=1))
    svc, rc = mqtt.connect(b, "svc", "watch", keys.token("svc", role="service"))
    assert rc == CONNACK_OK
    assert svc.subscribe("$SYS/broker/pigeon/auth/#") == [1]
    mallory, rc = mqtt.connect(b, "mallory", "flood", keys.token("mallory"))
    assert rc == CONNACK_OK
    mark = b.mark()
    for i in range(500):
        assert mallory.publish("foo/bar", b"%d" % i) == PUBACK_NOT_AUTHORIZED
    # Another client's refusals have their own budget.
    eve, rc = mqtt.connect(b, "eve", "phone", keys.token("eve"))
    assert rc == CONNACK_OK
    assert eve.publish("im/bob/inbox") == PUBACK_NOT_AUTHORIZED
    b.expect_log(r"pigeon_auth: denied publish of 'im/bob/inbox' to eve:phone", mark)

    assert _sys_value(svc, "$SYS/broker/pigeon/auth/denied/publish", 501) == "501"
    log = b.log_since(mark)
    denied = _pigeon_lines(log, r"pigeon_auth: denied publish of 'foo/bar' to mallory:flood")
    # 5 at once, then one per 10 s: the loop takes well under 10 s, allow one more.
    assert 5 <= len(denied) <= 6, len(denied)
    assert mallory.connected

    # Leaving says how many were held back.
    m2 = b.mark()
    mallory.close()
    line = b.expect_log(r"pigeon_auth: (\d+) more refusals from mallory:flood suppressed in "
                        r"the last \d+ s", m2)
    assert int(line.group(1)) + len(denied) == 500
    assert len(_pigeon_lines(b.log_since(mark), r"pigeon_\w+: .*mallory:flood")) <= 8


def test_refused_sends_log_a_bounded_number_of_lines_and_count_all(brokers, keys, mqtt, pb):
    b = inboxlib.start_inbox_broker(brokers, keys, "inbox_flood", sys_interval=1)
    svc, rc = mqtt.connect(b, "svc", "watch", keys.token("svc", role="service"))
    assert rc == CONNACK_OK
    assert svc.subscribe("$SYS/broker/pigeon/#") == [1]
    mallory = inboxlib.Device.login(mqtt, b, keys, "mallory", "flood")
    mark = b.mark()
    # MESSAGE path: a bad ttl property, refused by pigeon_inbox with 0x87.
    codes = mallory.publish_many("im/bob/chat", [b"x"] * 500,
                                 properties=inboxlib.send_properties(ttl="-5"))
    assert codes == [PUBACK_NOT_AUTHORIZED] * 500
    # $CONTROL Send path: the same client's budget is already spent.
    for _ in range(20):
        r = mallory.send("bob", b"x" * 70000)  # over max_body (65536)
        assert r.code != 0
    assert _sys_value(svc, "$SYS/broker/pigeon/refused/bad_property", 500) == "500"
    assert _sys_value(svc, "$SYS/broker/pigeon/refused/body_too_large", 20) == "20"
    log = b.log_since(mark)
    lines = _pigeon_lines(log, r"pigeon_inbox: refused (send|Send) from mallory:flood")
    assert 5 <= len(lines) <= 6, len(lines)
    m2 = b.mark()
    mallory.close()
    line = b.expect_log(r"pigeon_auth: (\d+) more refusals from mallory:flood suppressed", m2)
    assert int(line.group(1)) + len(lines) == 520
