# SPDX-License-Identifier: Apache-2.0
"""
pigeon-dump (clients/pigeon_dump.c, docs/debugging.md): payloads captured
from the real broker (with paho, and with mosquitto_sub -F '%t %x') decode
to the JSON the protobuf module agrees with; bare hex with --type; --raw;
and bad input (garbage lines, binary garbage, huge lines, bad options)
gives a message naming the line, the other lines still printed, and a
non-zero exit, never a crash.
"""

import json
import os
import random
import shutil
import subprocess
import time

import pytest

import inboxlib
from harness import SANITIZE, SANITIZER_LOG_RE, SLOW, TIMEOUT, build_path, wait_until
from inboxlib import PUBACK_ACCEPTED, Device, start_inbox_broker

DUMP = build_path("bin", "pigeon-dump")


def tool_env():
    env = dict(os.environ)
    if SANITIZE:
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env


def dump(*args, stdin=b""):
    """Runs pigeon-dump; (exit code, stdout lines as JSON, stderr text)."""
    if isinstance(stdin, str):
        stdin = stdin.encode()
    p = subprocess.run([str(DUMP)] + [str(a) for a in args], input=stdin, capture_output=True,
                       timeout=30 * SLOW, env=tool_env())
    err = p.stderr.decode("utf-8", "replace")
    assert not SANITIZER_LOG_RE.search(err), err
    assert p.returncode in (0, 1, 2), f"pigeon-dump died: {p.returncode}\n{err}"
    return p.returncode, [json.loads(line) for line in p.stdout.decode().splitlines()], err


def envelope_json(pb, env):
    """What pigeon-dump prints for an Envelope (every scalar, body as text)."""
    return {"seq": env.seq, "from": getattr(env, "from"), "to": env.to,
            "kind": pb.Kind.Name(env.kind), "type": env.type, "msg_id": env.msg_id,
            "sent_at_ms": env.sent_at_ms, "expires_at_ms": env.expires_at_ms,
            "content_type": env.content_type, "body": env.body.decode(), "merged": env.merged}


@pytest.fixture(scope="module")
def broker(module_brokers, keys):
    return start_inbox_broker(module_brokers, keys, "dump", sys_interval=1)


def test_every_message_type_from_broker_traffic_decodes(broker, keys, mqtt, pb, tmp_path):
    svc = Device.login(mqtt, broker, keys, "backend", role="service",
                       extra_filters=["im/+/presence", "$SYS/broker/pigeon/messages/stored"])
    alice = Device.login(mqtt, broker, keys, "alice")
    assert svc.wait(lambda d: any(p.uid == "alice" and p.online for p in d.presence))
    assert svc.chat("alice", b"hello alice", msg_id="m-1") in PUBACK_ACCEPTED
    assert svc.notify("alice", "like", b"bob liked it") in PUBACK_ACCEPTED
    inbox = alice.wait_inbox(2)
    request = pb.Request(id=77, sync=pb.SyncRequest(after_seq=0, limit=10))
    reply = alice.request_raw(request.SerializeToString(), 77)
    stored = "$SYS/broker/pigeon/messages/stored"
    assert svc.wait(lambda d: int(d.sys.get(stored, "0")) >= 2, 5 * SLOW)

    # Everything the two clients received, as mosquitto_sub -F '%t %x' prints it.
    msgs = alice.client.messages + svc.client.messages
    lines = [f"{m.topic} {m.payload.hex()}" for m in msgs]
    lines.append(f"$CONTROL/pigeon/v1 {request.SerializeToString().hex()}")
    rc, out, err = dump(stdin="\n".join(lines) + "\n")
    assert rc == 0, err
    assert len(out) == len(lines)
    by_type = {}
    for o in out:
        by_type.setdefault(o["type"], []).append(o)

    envs = [o for o in by_type["Envelope"] if o["topic"] == "im/alice/inbox"]
    assert [e["message"] for e in envs] == [envelope_json(pb, e) for e in inbox]
    assert envs[0]["message"]["body"] == "hello alice" and envs[0]["message"]["kind"] == "CHAT"
    assert envs[0]["message"]["msg_id"] == "m-1"
    assert envs[1]["message"]["kind"] == "NOTIFY" and envs[1]["message"]["type"] == "like"

    (rep,) = by_type["Reply"]
    assert rep["topic"] == "im/alice/reply"
    assert rep["message"]["id"] == 77 and rep["message"]["code"] == 0
    sync = rep["message"]["sync"]
    assert sync["head_seq"] == reply.sync.head_seq and sync["more"] is False
    assert [m["seq"] for m in sync["messages"]] == [m.seq for m in reply.sync.messages]
    assert sync["messages"][0]["body"] == "hello alice"
    assert "send" not in rep["message"]  # a oneof prints only its set member

    pres = [o for o in by_type["Presence"] if o["message"]["uid"] == "alice"]
    assert pres and pres[-1]["topic"] == "im/alice/presence"
    assert pres[-1]["message"]["online"] is True
    assert [d["device"] for d in pres[-1]["message"]["devices"]] == ["phone"]

    (req,) = by_type["Request"]
    assert req["message"] == {"id": 77, "sync": {"after_seq": 0, "limit": 10}}

    sys_ = [o for o in by_type["sys"] if o["topic"] == stored]
    assert sys_ and int(sys_[-1]["message"]["value"]) >= 2


@pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="mosquitto_sub not installed")
def test_mosquitto_sub_pipe_prints_envelopes_live(broker, keys, mqtt, pb):
    token = keys.token("carol", dev="tap")
    cmd = (f"mosquitto_sub -h 127.0.0.1 -p {broker.port} -V mqttv5 -u carol -P '{token}' "
           f"-i carol:tap -q 1 -t 'im/carol/#' -F '%t %x' -C 2 -W {int(20 * SLOW)} | '{DUMP}'")
    mark = broker.mark()
    p = subprocess.Popen(["bash", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=tool_env())
    try:
        broker.expect_log(r"carol:tap 1 im/carol/#", since=mark)
        svc = Device.login(mqtt, broker, keys, "backend", device="api2", role="service")
        assert svc.chat("carol", b"hi carol") in PUBACK_ACCEPTED
        assert svc.chat("carol", b"\x00\xff binary") in PUBACK_ACCEPTED
        out, err = p.communicate(timeout=20 * SLOW)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    assert p.returncode == 0, err
    lines = [json.loads(x) for x in out.decode().splitlines()]
    assert [x["topic"] for x in lines] == ["im/carol/inbox"] * 2
    m1, m2 = (x["message"] for x in lines)
    assert (m1["seq"], m1["from"], m1["body"]) == (1, "backend", "hi carol")
    assert m2["seq"] == 2 and "body" not in m2
    assert m2["body_base64"] == "AP8gYmluYXJ5"  # b"\x00\xff binary", not UTF-8 text


def test_bare_hex_is_an_envelope_unless_type_says_otherwise(pb):
    env = pb.Envelope(seq=9, to="alice", kind=pb.CHAT, body=b"x")
    rc, out, _ = dump(stdin=env.SerializeToString().hex() + "\n")
    assert rc == 0 and out == [{"type": "Envelope", "message": envelope_json(pb, env)}]

    reply = pb.Reply(id=3, code=403, error="not allowed", send=pb.SendReply(seq=4))
    rc, out, _ = dump("--type", "reply", stdin=reply.SerializeToString().hex().upper() + "\r\n")
    assert rc == 0
    assert out == [{"type": "Reply", "message": {"id": 3, "code": 403, "error": "not allowed",
                                                 "send": {"seq": 4, "duplicate": False}}}]
    # --type wins over the topic too.
    pres = pb.Presence(uid="bob", online=True, changed_at_ms=2**60)
    rc, out, _ = dump("--type", "Presence",
                      stdin=f"im/bob/inbox {pres.SerializeToString().hex()}\n")
    assert rc == 0 and out[0]["type"] == "Presence"
    assert out[0]["message"]["changed_at_ms"] == str(2**60)  # beyond 2^53: a string


def test_raw_reads_the_whole_input_as_one_message(pb, tmp_path):
    env = pb.Envelope(seq=1, body=b"line one\nline two\n", kind=pb.NOTIFY, merged=3)
    rc, out, _ = dump("--raw", stdin=env.SerializeToString())
    assert rc == 0 and len(out) == 1
    assert out[0]["message"]["body"] == "line one\nline two\n"
    assert out[0]["message"]["merged"] == 3

    f = tmp_path / "req.bin"
    f.write_bytes(pb.Request(id=5, ack=pb.Ack(seq=8)).SerializeToString())
    rc, out, _ = dump("--raw", "--type", "request", f, f)
    assert rc == 0 and [o["message"] for o in out] == [{"id": 5, "ack": {"seq": 8}}] * 2


def test_garbage_lines_are_reported_and_the_others_printed(pb):
    good = pb.Envelope(seq=1, body=b"ok").SerializeToString().hex()
    lines = [good, "not hex at all", "abc", "", "im/alice/inbox ffff", good,
             "im/alice/inbox", good]
    rc, out, err = dump(stdin="\n".join(lines) + "\n")
    assert rc == 1
    assert len(out) == 3 and all(o["message"]["body"] == "ok" for o in out)
    errs = err.splitlines()
    assert [e.split(":")[1].strip() for e in errs] == ["line 2", "line 3", "line 5", "line 7"]
    assert "not a pigeon topic" in errs[0] and "odd length" in errs[1]
    assert "not a valid Envelope" in errs[2]


def test_text_payloads_as_mosquitto_sub_v_prints_them():
    text = ("im/bob/chat hello bob\n"
            "$SYS/broker/pigeon/messages/stored 42\n"
            "im/bob/notify/like 6869\n")
    rc, out, err = dump(stdin=text)
    assert rc == 0, err
    assert [(o["type"], o["message"]) for o in out] == [
        ("chat", {"body": "hello bob"}), ("sys", {"value": "42"}), ("notify", {"body": "6869"})]
    # The same stream as -F '%t %x' prints it.
    hexed = "".join(f"{t} {p.encode().hex()}\n" for t, p in
                    [("im/bob/instant", "hey"), ("$SYS/broker/pigeon/messages/stored", "42")])
    rc, out, _ = dump(stdin=hexed)
    assert rc == 0
    assert [(o["type"], o["message"]) for o in out] == [("instant", {"body": "hey"}),
                                                        ("sys", {"value": "42"})]


def test_binary_garbage_never_crashes(pb):
    for seed in range(5):
        garbage = random.Random(seed).randbytes(200_000) + b"\n" + bytes(range(256)) * 10
        rc, _, err = dump(stdin=garbage)
        assert rc == 1 and "pigeon-dump: line " in err
        # Every message is one line naming a line number: no garbage echoed.
        assert all(e.startswith("pigeon-dump: line ") for e in err.splitlines())
    rc, out, err = dump("--raw", "--type", "reply", stdin=b"\xff" * 1000)
    assert rc == 1 and out == [] and "not a valid Reply" in err
    rc, out, _ = dump("--raw", stdin=b"")
    assert rc == 0 and out[0]["message"]["seq"] == 0  # empty bytes: an all-default Envelope


def test_huge_lines(pb):
    body = b"b" * 65536  # a 64 KiB body: 128 KiB of hex
    big = pb.Envelope(seq=2, body=body).SerializeToString().hex()
    too_long = "00" * (5 << 20)  # 10 MiB of hex: over the limit
    rc, out, err = dump(stdin=f"im/a/inbox {big}\n{too_long}\n{big}\n")
    assert rc == 1
    assert [len(o["message"]["body"]) for o in out] == [65536, 65536]
    assert "line 2: longer than" in err


def test_huge_messages_are_refused_before_they_cost_gigabytes(pb):
    # An empty Envelope is 2 bytes on the wire and ~1.8 KB as a cJSON tree:
    # 2M of them in an 8 MiB line took 3.7 GB and 13 s before the bounds
    # (PGCLI_PB_JSON_MAX_ELEMENTS 16384, PGDUMP_MESSAGE_MAX 2 MiB).
    def sync_of(n):
        return pb.Reply(id=1, sync=pb.SyncReply(messages=[pb.Envelope()] * n)).SerializeToString()
    ok, over = sync_of(16000), sync_of(16385)
    rc, out, err = dump(stdin=f"im/a/reply {ok.hex()}\nim/a/reply {over.hex()}\n")
    assert rc == 1 and len(out) == 1 and len(out[0]["message"]["sync"]["messages"]) == 16000
    assert "line 2: Reply with more than 16384 repeated elements" in err
    # 1M empty Envelopes in a 2 MiB Reply: refused without building anything.
    rc, out, err = dump("--raw", "--type", "reply", stdin=sync_of(1_048_570))
    assert rc == 1 and out == [] and "more than 16384 repeated elements" in err
    # Over PGDUMP_MESSAGE_MAX: refused before unpacking, and the next line goes on.
    big = pb.Envelope(seq=3, body=b"x" * (3 << 20)).SerializeToString()
    small = pb.Envelope(seq=4, body=b"y" * (1 << 20)).SerializeToString()  # max_body's maximum
    rc, out, err = dump(stdin=f"{big.hex()}\n{small.hex()}\n")
    assert rc == 1 and [o["message"]["seq"] for o in out] == [4]
    assert "line 1: Envelope of" in err and "larger than pigeon sends" in err
    rc, out, err = dump("--raw", stdin=big)
    assert rc == 1 and out == [] and "larger than pigeon sends" in err
    # Payloads that are not protobuf have only the line bound.
    rc, out, _ = dump(stdin=f"im/a/chat {(b'z' * (3 << 20)).hex()}\n")
    assert rc == 0 and len(out[0]["message"]["body"]) == 3 << 20


def test_options():
    p = subprocess.run([str(DUMP), "--help"], capture_output=True, text=True, timeout=10,
                       env=tool_env())
    assert p.returncode == 0 and p.stdout.startswith("usage: pigeon-dump")
    for bad in (["--type", "bogus"], ["--type"], ["--nope"]):
        rc, out, err = dump(*bad)
        assert rc == 2 and out == [] and err.startswith("pigeon-dump: "), (bad, err)
        assert len(err.splitlines()) == 1
    rc, _, err = dump("/nonexistent/file")
    assert rc == 1 and "/nonexistent/file" in err
