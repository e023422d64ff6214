# SPDX-License-Identifier: Apache-2.0
"""
pigeon-send (clients/pigeon_send.c, docs/backend.md) against the real
broker: each kind, recipients from arguments / a file / stdin, the body from
an argument / a file / stdin, refusals per recipient (403, a bad uid line),
msg-id dedup, metadata reaching the envelope, a window's worth of
recipients many times over, a dropped connection (reconnect, the
unanswered resent, each stored once), a request repeated after 3 s without
a reply, and bad input (bad token, unreachable broker,
garbage on stdin, missing arguments): a clear message and the documented
exit status (0 all stored, 1 any failure, 2 usage), never a crash.

One broker (pigeon_auth + pigeon_inbox) serves the whole module; each test
uses its own recipient names.
"""

import os
import re
import subprocess
import time

import pytest

import inboxlib
from harness import SANITIZE, SANITIZER_LOG_RE, SLOW, build_path, free_port
from netproxy import NetProxy

RESULT_RE = re.compile(r"^(\S+) (\d+)( duplicate)?$")


def pigeon_send(*args, stdin=None, env_extra=None, timeout=60):
    """Runs pigeon-send; the CompletedProcess (stdout/stderr as text unless stdin is bytes)."""
    env = dict(os.environ)
    env.pop("PIGEON_TOKEN", None)
    env.pop("PIGEON_HOST", None)
    env.pop("PIGEON_PORT", None)
    if SANITIZE:
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    env.update(env_extra or {})
    binary = isinstance(stdin, bytes)
    p = subprocess.run([str(build_path("bin", "pigeon-send"))] + [str(a) for a in args],
                       input=stdin, capture_output=True, text=not binary, timeout=timeout * SLOW,
                       env=env)
    err = p.stderr.decode(errors="replace") if binary else p.stderr
    assert not SANITIZER_LOG_RE.search(err), err
    assert p.returncode in (0, 1, 2), f"exit {p.returncode}: {err}"
    return p


def results(stdout):
    """[(uid, seq, duplicate)] of the success lines, in order; errors are kept as raw lines."""
    out = []
    for line in stdout.splitlines():
        m = RESULT_RE.match(line)
        out.append((m.group(1), int(m.group(2)), bool(m.group(3))) if m else line)
    return out


@pytest.fixture(scope="module")
def broker(module_brokers, keys):
    return inboxlib.start_inbox_broker(module_brokers, keys, "send", send_rate=0)


@pytest.fixture(scope="module")
def svc(keys):
    """A service token (may send NOTIFY)."""
    return keys.token("backend", role="service", ttl=3600)


def base(broker, token):
    return ["-p", broker.port, "--token", token]


def synced(mqtt, broker, keys, uid):
    """Everything stored for uid (logged in as uid:check)."""
    d = inboxlib.Device.login(mqtt, broker, keys, uid, "check")
    msgs, _ = d.sync_all()
    d.close()
    return msgs


# ------------------------------------------------------------------ kinds


def test_chat_to_arguments_prints_each_seq_in_order(broker, svc, mqtt, keys, pb):
    p = pigeon_send(*base(broker, svc), "-m", "hello", "ca1", "ca2", "ca3")
    assert p.returncode == 0, p.stderr
    assert results(p.stdout) == [("ca1", 1, False), ("ca2", 1, False), ("ca3", 1, False)]
    msgs = synced(mqtt, broker, keys, "ca2")
    assert [(m.seq, m.kind, m.body, m.to) for m in msgs] == [(1, pb.CHAT, b"hello", "ca2")]
    assert getattr(msgs[0], "from") == "backend"


def test_notify_with_type_stores_a_notification(broker, svc, mqtt, keys, pb):
    p = pigeon_send(*base(broker, svc), "--type", "news", "-m", "n1", "no1")
    assert p.returncode == 0, p.stderr
    assert results(p.stdout) == [("no1", 1, False)]
    (m,) = synced(mqtt, broker, keys, "no1")
    assert (m.kind, m.type, m.body) == (pb.NOTIFY, "news", b"n1")


def test_instant_prints_seq_zero_and_is_not_stored(broker, svc, mqtt, keys, pb):
    online = inboxlib.Device.login(mqtt, broker, keys, "in1", "phone")
    p = pigeon_send(*base(broker, svc), "--kind", "instant", "-m", "now", "in1", "in2")
    assert p.returncode == 0, p.stderr
    assert results(p.stdout) == [("in1", 0, False), ("in2", 0, False)]
    env = online.wait_inbox(1)[0]
    assert (env.kind, env.seq, env.body) == (pb.INSTANT, 0, b"now")
    assert synced(mqtt, broker, keys, "in2") == []


def test_notify_from_a_user_token_is_refused_403(broker, keys):
    user = keys.token("plainuser")
    p = pigeon_send(*base(broker, user), "--type", "news", "-m", "x", "nu1", "nu2")
    assert p.returncode == 1
    lines = p.stdout.splitlines()
    assert len(lines) == 2
    assert all(re.match(r"^nu[12] error 403 \S", line) for line in lines), lines


# ------------------------------------------------------------- recipients


def test_recipients_from_a_file_skip_blanks_and_comments(broker, svc, tmp_path):
    f = tmp_path / "to.txt"
    f.write_text("# the list\nfi1\n\n   fi2  \r\n#fi9\nfi3")
    p = pigeon_send(*base(broker, svc), "-m", "x", "--to-file", f)
    assert p.returncode == 0, p.stderr
    assert [r[0] for r in results(p.stdout)] == ["fi1", "fi2", "fi3"]


def test_recipients_from_stdin_by_default_and_with_dash(broker, svc):
    p = pigeon_send(*base(broker, svc), "-m", "x", stdin="st1\nst2\n")
    assert p.returncode == 0, p.stderr
    assert results(p.stdout) == [("st1", 1, False), ("st2", 1, False)]
    p = pigeon_send(*base(broker, svc), "-m", "x", "--to-file", "-", stdin="st1\n")
    assert p.returncode == 0, p.stderr
    assert results(p.stdout) == [("st1", 2, False)]


def test_a_bad_uid_line_is_an_error_without_a_request(broker, svc, mqtt, keys):
    long_uid = "y" * 65
    p = pigeon_send(*base(broker, svc), "-m", "x",
                    stdin=f"bu1\nbad uid\n{long_uid}\nbu/2\nbu3\n")
    assert p.returncode == 1
    assert p.stdout.splitlines() == [
        "bu1 1", "bad uid error 400 bad uid", f"{'y' * 64}... error 400 bad uid",
        "bu/2 error 400 bad uid", "bu3 1"]
    assert [m.body for m in synced(mqtt, broker, keys, "bu3")] == [b"x"]


def test_garbage_on_stdin_is_reported_per_line_never_a_crash(broker, svc):
    garbage = bytes(range(256)) * 8 + b"\n\x00\x00\n" + os.urandom(3000) + b"\nok1\n"
    p = pigeon_send(*base(broker, svc), "-m", "x", stdin=garbage)
    assert p.returncode == 1
    out = p.stdout.decode()
    lines = out.splitlines()
    assert lines[-1] == "ok1 1"
    # Every other line is a printable "bad uid" error.
    assert all(line.endswith(" error 400 bad uid") for line in lines[:-1]), lines
    assert all(c.isprintable() for line in lines for c in line)


def test_a_window_of_recipients_many_times_over(broker, svc, tmp_path):
    n = 3000
    f = tmp_path / "many.txt"
    f.write_text("".join(f"w{i}\n" for i in range(n)))
    t0 = time.monotonic()
    p = pigeon_send(*base(broker, svc), "-m", "bulk", "--to-file", f, "--window", "200")
    took = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    assert results(p.stdout) == [(f"w{i}", 1, False) for i in range(n)]
    assert took < 20 * SLOW, f"{n} recipients took {took:.1f}s"


# ------------------------------------------------- a connection that fails


def send_popen(*args):
    """pigeon-send started with a pipe on stdin (recipients) and stdout; Popen."""
    env = dict(os.environ)
    for k in ("PIGEON_TOKEN", "PIGEON_HOST", "PIGEON_PORT"):
        env.pop(k, None)
    if SANITIZE:
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
    return subprocess.Popen([str(build_path("bin", "pigeon-send"))] + [str(a) for a in args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def wait_connected(proxy):
    """Until pigeon-send has connected through proxy and (0.3 s later) subscribed."""
    deadline = time.monotonic() + 5 * SLOW
    while proxy.accepted < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proxy.accepted == 1, "pigeon-send did not connect"
    time.sleep(0.3 * SLOW)


def close_stdin(p):
    """The end of the recipients (communicate() later must not touch stdin again)."""
    p.stdin.close()
    p.stdin = None


def test_a_dropped_connection_is_reconnected_and_the_unanswered_resent(broker, svc, mqtt, pb,
                                                                       keys):
    # Replies are held back, so requests are in flight unanswered when the
    # connection drops; after the reconnect each is sent again, the broker
    # dedups (same msg_id), and every recipient is printed once, stored once.
    with NetProxy(int(broker.port)) as proxy:
        p = send_popen("-p", proxy.port, "--token", svc, "-m", "again", "--timeout", "30")
        try:
            wait_connected(proxy)
            proxy.blackhole(up=False, down=True)
            p.stdin.write("".join(f"dr{i}\n" for i in range(50)))
            p.stdin.flush()
            time.sleep(0.5 * SLOW)
            assert proxy.drop_all() == 1
            proxy.forward()
            p.stdin.write("".join(f"dr{i}\n" for i in range(50, 80)))
            close_stdin(p)
            out, err = p.communicate(timeout=30 * SLOW)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        assert p.returncode == 0, err
        assert results(out) == [(f"dr{i}", 1, False) for i in range(80)]
        assert proxy.accepted >= 2, "no reconnect happened"
    for uid in ("dr0", "dr49", "dr79"):
        assert [m.body for m in synced(mqtt, broker, keys, uid)] == [b"again"]


def test_an_unanswered_request_is_repeated_after_3_s(broker, svc, mqtt, keys, pb):
    # Replies held back: the requests are sent again after 3 s (bytes go up
    # while nothing has come down); then the first replies arrive, and each
    # recipient is printed once, as stored (not as a duplicate).
    with NetProxy(int(broker.port)) as proxy:
        p = send_popen("-p", proxy.port, "--token", svc, "-m", "late", "--timeout", "30")
        try:
            p.stdin.write("".join(f"rt{i}\n" for i in range(20)))
            p.stdin.flush()
            wait_connected(proxy)
            proxy.blackhole(up=False, down=True)
            p.stdin.write("".join(f"rt{i}\n" for i in range(20, 40)))
            close_stdin(p)
            time.sleep(2.0)  # the requests went up long ago; the repeats are due at 3 s
            up_before = proxy.bytes["up"]
            deadline = time.monotonic() + 6 * SLOW
            while proxy.bytes["up"] == up_before and time.monotonic() < deadline:
                time.sleep(0.05)
            up_after = proxy.bytes["up"]
            proxy.forward()
            out, err = p.communicate(timeout=30 * SLOW)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        assert p.returncode == 0, err
        assert up_after > up_before, "nothing was repeated"
        assert results(out) == [(f"rt{i}", 1, False) for i in range(40)]
    for uid in ("rt0", "rt39"):
        assert [m.body for m in synced(mqtt, broker, keys, uid)] == [b"late"]


# ------------------------------------------------------------------- body


def test_body_from_a_file_and_from_stdin(broker, svc, mqtt, keys, tmp_path):
    blob = bytes(range(256)) * 4
    f = tmp_path / "body.bin"
    f.write_bytes(blob)
    p = pigeon_send(*base(broker, svc), "--body-file", f, "bo1")
    assert p.returncode == 0, p.stderr
    p = pigeon_send(*base(broker, svc), "--body-file", "-", "bo1", stdin=b"from stdin")
    assert p.returncode == 0, p.stderr
    assert [m.body for m in synced(mqtt, broker, keys, "bo1")] == [blob, b"from stdin"]


def test_stdin_cannot_be_both_recipients_and_body(broker, svc):
    p = pigeon_send(*base(broker, svc), "--body-file", "-", stdin="x\n")
    assert p.returncode == 2
    assert "stdin" in p.stderr


def test_a_body_over_the_broker_limit_is_refused_413(broker, svc):
    p = pigeon_send(*base(broker, svc), "--body-file", "-", "big1", stdin=b"z" * (70 * 1024))
    assert p.returncode == 1
    assert re.match(rb"^big1 error 413 ", p.stdout), p.stdout


# ---------------------------------------------------------- dedup, metadata


def test_the_same_msg_id_twice_is_a_duplicate(broker, svc, mqtt, keys):
    args = base(broker, svc) + ["-m", "once", "--msg-id", "order-17", "du1", "du2"]
    first = pigeon_send(*args)
    assert first.returncode == 0, first.stderr
    assert results(first.stdout) == [("du1", 1, False), ("du2", 1, False)]
    again = pigeon_send(*args)
    assert again.returncode == 0, again.stderr
    assert results(again.stdout) == [("du1", 1, True), ("du2", 1, True)]
    assert len(synced(mqtt, broker, keys, "du1")) == 1


def test_without_msg_id_each_run_is_a_new_message(broker, svc, mqtt, keys):
    for _ in range(2):
        assert pigeon_send(*base(broker, svc), "-m", "hi", "nm1").returncode == 0
    msgs = synced(mqtt, broker, keys, "nm1")
    assert len(msgs) == 2 and msgs[0].msg_id != msgs[1].msg_id
    assert all(m.msg_id for m in msgs)


def test_metadata_options_reach_the_envelope(broker, svc, mqtt, keys, pb):
    before = int(time.time() * 1000)
    p = pigeon_send(*base(broker, svc), "-m", "{}", "--ttl", "120", "--content-type",
                    "application/json", "--push-title", "Hi", "--push-body", "You have mail",
                    "--msg-id", "meta-1", "md1")
    assert p.returncode == 0, p.stderr
    (m,) = synced(mqtt, broker, keys, "md1")
    assert m.content_type == "application/json"
    assert m.msg_id == "meta-1"
    # ttl 120 s, where the broker's default retention is 7 days.
    assert m.expires_at_ms - m.sent_at_ms == 120_000
    assert before - 1000 <= m.sent_at_ms <= int(time.time() * 1000) + 1000


def test_push_fields_over_their_limits_are_refused_400(broker, svc):
    p = pigeon_send(*base(broker, svc), "-m", "x", "--push-title", "t" * 300, "pl1")
    assert p.returncode == 1
    assert re.match(r"^pl1 error 400 ", p.stdout), p.stdout


# ------------------------------------------------------------- bad input


def test_a_bad_token_is_a_clear_error(broker, keys):
    p = pigeon_send(*base(broker, "not-a-token"), "-m", "x", "bt1")
    assert p.returncode == 1 and p.stdout == ""
    assert "bad token" in p.stderr
    forged = keys.token("backend", role="service")[:-4] + "AAAA"
    p = pigeon_send(*base(broker, forged), "-m", "x", "bt1")
    assert p.returncode == 1 and p.stdout == ""
    assert "refused the login" in p.stderr


def test_an_unreachable_broker_is_a_clear_error(svc):
    p = pigeon_send("-p", free_port(), "--token", svc, "-m", "x", "ur1", timeout=30)
    assert p.returncode == 1 and p.stdout == ""
    assert "cannot connect" in p.stderr


def test_token_from_file_and_environment(broker, svc, tmp_path):
    f = tmp_path / "tok"
    f.write_text(svc + "\n")
    p = pigeon_send("-p", broker.port, "--token-file", f, "-m", "x", "tf1")
    assert p.returncode == 0, p.stderr
    p = pigeon_send("-m", "x", "tf1", env_extra={"PIGEON_TOKEN": svc,
                                                 "PIGEON_PORT": str(broker.port)})
    assert p.returncode == 0, p.stderr
    assert results(p.stdout) == [("tf1", 2, False)]


@pytest.mark.parametrize("args,what", [
    (["u1"], "no body"),
    (["--body", "x", "--body-file", "f", "u1"], "one of"),
    (["-m", "x", "--kind", "loud", "u1"], "--kind"),
    (["-m", "x", "--kind", "notify", "u1"], "--type"),
    (["-m", "x", "--kind", "chat", "--type", "t", "u1"], "--type"),
    (["-m", "x", "--type", "bad type", "u1"], "--type"),
    (["-m", "x", "--window", "1001", "u1"], "--window"),
    (["-m", "x", "--window", "0", "u1"], "--window"),
    (["-m", "x", "--ttl", "-5", "u1"], "--ttl"),
    (["-m", "x", "--timeout", "abc", "u1"], "--timeout"),
    (["-m", "x", "--msg-id", "", "u1"], "--msg-id"),
    (["-m", "x", "-p", "70000", "u1"], "port"),
    (["-m", "x", "--bogus", "u1"], "unknown option"),
    (["-m"], "needs a value"),
    (["-m", "x", "--to-file", "f", "u1", "u1"], "not both"),
])
def test_usage_errors_exit_2(svc, args, what):
    p = pigeon_send("--token", svc, *args)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert what in p.stderr and p.stderr.startswith("pigeon-send: ")
    assert p.stdout == ""


def test_no_token_is_a_usage_error():
    p = pigeon_send("-m", "x", "u1")
    assert p.returncode == 2 and "no token" in p.stderr


def test_help_exits_0():
    p = pigeon_send("--help")
    assert p.returncode == 0
    assert p.stdout.startswith("usage: pigeon-send") and "--window" in p.stdout
