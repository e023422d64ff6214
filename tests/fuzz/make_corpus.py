#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""
Writes the seed corpus of the fuzz targets into tests/fuzz/corpus/<target>/:
a handful of valid inputs and edge cases per target. Run once; the output is
committed (regenerating gives the same files, except for the ES256
signatures, which are randomised). Crash inputs found later are added by
hand as corpus/<target>/crash-<what> and are not touched by this script.

Needs protoc, python3-protobuf, python3-jwt and python3-cryptography (all in
scripts/debian-packages.txt).
"""

import json
import re
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import jwt

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CORPUS = HERE / "corpus"
FAR = 4102444800  # 2100-01-01: later than any run of the fuzzers
NOW = 1700000000  # FUZZ_NOW_S of fuzz_keys.h


def keys():
    text = (HERE / "fuzz_keys.h").read_text()

    def macro(name):
        body = text.split("#define " + name)[1].split("\n\n")[0]
        return "".join(json.loads(s) for s in re.findall(r'"(?:[^"\\]|\\.)*"', body))

    return macro("FUZZ_HS256_SECRET"), macro("FUZZ_ES256_PRIVATE"), macro("FUZZ_EDDSA_PRIVATE")


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


def b64(data):
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def tokens():
    secret, es, ed = keys()
    base = {"sub": "alice", "dev": "phone", "exp": FAR}
    write("token", "valid-hs256", jwt.encode(base, secret, algorithm="HS256"))
    write("token", "valid-es256", jwt.encode(base, es, algorithm="ES256"))
    write("token", "valid-eddsa", jwt.encode(base, ed, algorithm="EdDSA"))
    write("token", "service-all-claims", jwt.encode(
        {"sub": "backend", "role": "service", "jti": "j-1", "iat": NOW - 10, "nbf": NOW - 10,
         "exp": FAR}, secret, algorithm="HS256"))
    write("token", "expired", jwt.encode({"sub": "alice", "exp": NOW - 3600}, secret,
                                         algorithm="HS256"))
    hdr = b64(b'{"alg":"none","typ":"JWT"}')
    write("token", "alg-none", f"{hdr}.{b64(json.dumps(base).encode())}.")
    good = jwt.encode(base, secret, algorithm="HS256")
    write("token", "bad-signature", good[:-2] + ("AA" if good[-2:] != "AA" else "BA"))
    write("token", "two-parts", good.rsplit(".", 1)[0])
    write("token", "header-not-json", f"{b64(b'alg')}.{b64(b'{}')}.AAAA")
    write("token", "padded", good + "==")


def claims():
    write("claims", "minimal", json.dumps({"sub": "alice", "exp": FAR}))
    write("claims", "all-claims", json.dumps(
        {"sub": "backend", "dev": "api", "role": "service", "jti": "x" * 128, "iat": NOW,
         "nbf": NOW, "exp": FAR}))
    write("claims", "expired", json.dumps({"sub": "alice", "exp": NOW - 61}))
    write("claims", "exp-huge", '{"sub":"alice","exp":1e300}')
    write("claims", "exp-fraction", '{"sub":"alice","exp":4102444800.999,"nbf":-0.5}')
    write("claims", "sub-65", json.dumps({"sub": "a" * 65, "exp": FAR}))
    write("claims", "jti-129", json.dumps({"sub": "alice", "jti": "j" * 129, "exp": FAR}))
    write("claims", "nul-in-string", '{"sub":"alice\\u0000x","exp":4102444800}')
    write("claims", "duplicate-keys", '{"sub":"alice","sub":"bob","exp":4102444800}')
    write("claims", "not-object", "[1,2,3]")
    write("claims", "trailing", '{"sub":"alice","exp":4102444800} x')


def topics():
    cases = [
        ("user-inbox", 0, "alice", "im/alice/inbox", "im/alice/inbox"),
        ("user-sub-own", 0, "alice", "im/alice/#", "im/alice/reply"),
        ("user-sub-plus", 0, "alice", "im/+/inbox", "im/bob/inbox"),
        ("shared-sub", 0, "alice", "$share/g/im/alice/+", "im/alice/inbox"),
        ("service-presence", 1, "backend", "im/+/presence", "im/bob/presence"),
        ("service-sys", 1, "backend", "$SYS/#", "$SYS/broker/uptime"),
        ("notify", 2, "alice", "im/bob/notify/like", "im/bob/notify/like"),
        ("retained-chat", 16, "alice", "im/bob/chat", "im/bob/chat"),
        ("control", 0, "alice:phone", "$CONTROL/pigeon/v1", "im//chat"),
        ("rate", 0, "alice", "10/60", "im/a/b/c/d/e/f/g/h/i"),
    ]
    for name, flags, uid, topic, other in cases:
        write("topic", name, bytes([flags]) + f"{uid}\0{topic}\0{other}".encode())


def load_pb():
    out = Path(tempfile.mkdtemp())
    subprocess.run(["protoc", f"-I{REPO / 'proto'}", f"--python_out={out}", "pigeon.proto",
                    "journal.proto"], check=True)
    sys.path.insert(0, str(out))
    import journal_pb2
    import pigeon_pb2

    return pigeon_pb2, journal_pb2


def requests(pb):
    # op byte: bits 0-1 session (0 alice:phone, 1 alice:tablet, 2 bob:phone, 3 backend:api),
    # bits 2-4 action (0 request, 4 flush, 5 tick, 6 reopen), bits 5-7 seconds to advance.
    def req(session, r):
        data = r.SerializeToString()
        return bytes([session]) + struct.pack("<H", len(data)) + data

    def op(session, action):
        return bytes([session | action << 2])

    def send(i, to, kind, **kw):
        r = pb.Request(id=i)
        r.send.to = to
        r.send.kind = kind
        for k, v in kw.items():
            setattr(r.send, k, v)
        return r

    def sync(i, after=0, limit=0):
        r = pb.Request(id=i)
        r.sync.after_seq = after
        r.sync.limit = limit
        return r

    def ack(i, seq):
        r = pb.Request(id=i)
        r.ack.seq = seq
        return r

    write("request", "sync-empty", req(0, sync(1)))
    write("request", "send-chat", req(2, send(1, "alice", pb.CHAT, body=b"hi", msg_id="m1")))
    write("request", "chat-sync-ack",
          req(2, send(1, "alice", pb.CHAT, body=b"one")) +
          req(2, send(2, "alice", pb.CHAT, body=b"two")) +
          req(0, sync(3, 0, 1)) + req(0, ack(4, 1)) + req(1, sync(5, 1)) + req(0, ack(6, 9)))
    write("request", "notify-merge-flush-reopen",
          req(3, send(1, "bob", pb.NOTIFY, type="like", body=b"1", push_title="t")) +
          req(3, send(2, "bob", pb.NOTIFY, type="like", body=b"2", push_body="b")) +
          op(0, 4) + req(3, send(3, "bob", pb.NOTIFY, type="like", body=b"3")) +
          op(0, 6) + req(2, sync(4)) + op(0, 5) + req(2, sync(5, 0, 1000)))
    write("request", "duplicate-msg-id",
          req(0, send(1, "bob", pb.CHAT, msg_id="same", body=b"a")) +
          req(0, send(2, "bob", pb.CHAT, msg_id="same", body=b"b")) +
          req(0, send(3, "backend", pb.CHAT, msg_id="same", body=b"c")) + req(2, sync(4)))
    write("request", "instant-and-ttl",
          req(0, send(1, "bob", pb.INSTANT, body=b"typing")) +
          req(0, send(2, "bob", pb.CHAT, ttl_s=1, body=b"short")) +
          bytes([2 | 7 << 5 | 7 << 2]) + req(2, sync(3)))
    r = pb.Request(id=9)
    r.register_device.platform = "fcm"
    r.register_device.token = "t"
    write("request", "register-device", req(0, r))
    write("request", "invalid-sends",
          req(0, send(1, "bad/uid", pb.CHAT)) + req(0, send(2, "bob", pb.NOTIFY, type="x")) +
          req(0, send(3, "bob", 7)) + req(0, send(4, "bob", pb.CHAT, msg_id="m" * 129)))
    write("request", "not-protobuf", b"\x00\x05\x00\xff\xff\xff\xff\xff")


def frame(payload):
    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


def journals(pb, jpb):
    def append(lsn, to, seq, kind=1, **kw):
        rec = jpb.Record(lsn=lsn)
        e = rec.append.envelope
        e.seq, e.to, e.kind, e.body = seq, to, kind, b"body"
        setattr(e, "from", "bob")
        e.sent_at_ms = 1 << 40
        e.expires_at_ms = 1 << 62
        for k, v in kw.items():
            setattr(e, k, v)
        return rec.SerializeToString()

    def cursor(lsn, uid, dev, seq):
        rec = jpb.Record(lsn=lsn)
        rec.cursor.uid, rec.cursor.device, rec.cursor.seq = uid, dev, seq
        return rec.SerializeToString()

    def presence(lsn, uid, online):
        rec = jpb.Record(lsn=lsn)
        rec.presence.uid, rec.presence.online = uid, online
        return rec.SerializeToString()

    good = [append(1, "alice", 1, msg_id="m1"), append(2, "alice", 2, kind=2, type="like"),
            cursor(3, "alice", "phone", 1), presence(4, "alice", True)]
    seg = b"".join(frame(p) for p in good)
    write("journal", "records", seg)
    write("journal", "empty", b"")
    write("journal", "torn-header", seg + frame(good[0])[:5])
    write("journal", "torn-payload", seg[:-3])
    bad = bytearray(seg)
    bad[10] ^= 0xFF
    write("journal", "bad-crc-first", bytes(bad))
    write("journal", "length-too-large", struct.pack("<II", 5 << 20, 0) + b"x" * 16)
    rec = jpb.Record(lsn=5)
    rec.append.envelope.seq = 3
    rec.append.envelope.to = "alice"
    rec.append.replaces_seq = 2
    write("journal", "replaces-and-garbage",
          seg + frame(rec.SerializeToString()) + frame(b"\xff\xff\xff") + frame(b""))
    write("journal", "same-lsn-twice", frame(good[0]) + frame(good[0]))
    write("journal", "lsn-max", frame(append(2**64 - 1, "alice", 1)))
    write("journal", "cursor-max", frame(cursor(1, "alice", "phone", 2**64 - 1)))
    write("journal", "presence-bad-uid",
          frame(append(1, "a" * 65, 1)) + frame(presence(3, "bad/uid", True)))


def push_answers():
    """Provider answers as fuzz_push_answer reads them: a selector byte (0 apns,
    1 fcm, 2 huawei, 3 xiaomi, 4 webhook, 5 OAuth token endpoint, 6
    Retry-After, 7 every provider; +8: the device has no app), the HTTP
    status (2 bytes, big-endian), Retry-After NUL (only when given), the body."""
    fcm_error = "type.googleapis.com/google.firebase.fcm.v1.FcmError"

    def fcm(code, status, message, rpc):
        return json.dumps({"error": {"code": code, "message": message, "status": rpc,
                                     "details": [{"@type": fcm_error, "errorCode": status}]}})

    cases = [
        ("apns-ok", 0, 200, None, ""),
        ("apns-bad-device-token", 0, 400, None, '{"reason":"BadDeviceToken"}'),
        ("apns-not-for-topic-no-app", 8, 400, None, '{"reason":"DeviceTokenNotForTopic"}'),
        ("apns-expired-provider-token", 0, 403, None, '{"reason":"ExpiredProviderToken"}'),
        ("apns-unregistered", 0, 410, None,
         '{"reason":"Unregistered","timestamp":1700000000000}'),
        ("apns-too-many-retry-date", 0, 429, "Wed, 21 Oct 2099 07:28:00 GMT",
         '{"reason":"TooManyRequests"}'),
        ("fcm-ok", 1, 200, None, '{"name":"projects/pigeon-fuzz/messages/0:1700000000"}'),
        ("fcm-unregistered", 1, 404, None,
         fcm(404, "UNREGISTERED", "Requested entity was not found.", "NOT_FOUND")),
        ("fcm-invalid-token", 1, 400, None,
         fcm(400, "INVALID_ARGUMENT",
             "The registration token is not a valid FCM registration token",
             "INVALID_ARGUMENT")),
        ("fcm-unauthenticated", 1, 401, None, json.dumps(
            {"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                       "status": "UNAUTHENTICATED"}})),
        ("fcm-quota-retry-after", 1, 429, "30",
         fcm(429, "QUOTA_EXCEEDED", "Quota exceeded.", "RESOURCE_EXHAUSTED")),
        ("huawei-ok", 2, 200, None,
         '{"code":"80000000","msg":"Success","requestId":"170000000012345678"}'),
        ("huawei-illegal-tokens", 2, 200, None, json.dumps(
            {"code": "80100000", "requestId": "170000000012345679",
             "msg": json.dumps({"success": 0, "failure": 1,
                                "illegal_tokens": ["a1b2c3d4e5f6"]})})),
        ("huawei-token-expired", 2, 401, None,
         '{"code":80200003,"msg":"OAuth token expired.","requestId":"1"}'),
        ("xiaomi-ok", 3, 200, None, json.dumps(
            {"result": "ok", "code": 0, "trace_id": "Xcm5", "data": {"id": "slm1"},
             "description": "ok", "info": "Received push messages for 1 REGID"})),
        ("xiaomi-bad-regid", 3, 200, None, json.dumps(
            {"result": "error", "code": 20301, "reason": "Invalid regId",
             "description": "bad regid"})),
        ("xiaomi-bad-regids", 3, 200, None, json.dumps(
            {"result": "ok", "code": 0,
             "data": {"id": "slm2", "bad_regids": "zz99, a1b2c3d4e5f6"}})),
        ("webhook-503-past-date", 4, 503, "Sun, 06 Nov 1994 08:49:37 GMT", "upstream down"),
        ("oauth-google", 5, 200, None,
         '{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"}'),
        ("oauth-huawei-string-ttl", 5, 200, None,
         '{"access_token":"CV7x+/=","expires_in":"3600","token_type":"Bearer"}'),
        ("oauth-invalid-grant", 5, 400, None,
         '{"error":"invalid_grant","error_description":"Invalid JWT Signature."}'),
        ("retry-after-date", 6, 503, "Fri, 01 Jan 2100 00:00:00 GMT", " 120 "),
        ("all-server-error", 7, 500, "5", '{"error":{"status":"INTERNAL"},"code":"80000000"}'),
    ]
    for name, sel, status, retry_after, body in cases:
        head = bytes([sel]) + status.to_bytes(2, "big")
        if retry_after is not None:
            head += retry_after.encode() + b"\0"
        write("push_answer", name, head + body.encode())


def main():
    tokens()
    claims()
    topics()
    pb, jpb = load_pb()
    requests(pb)
    journals(pb, jpb)
    push_answers()


if __name__ == "__main__":
    main()
