# SPDX-License-Identifier: Apache-2.0
"""
The persistence hook (struct pigeon_persist_ops), through the example
program's app-supplied hook (pigeon-example --state-file FILE: one file with
the cursor, the last winning address and the outbox records, rewritten
atomically; clients/examples/pigeon_example.c) against the real broker.

What is proven:
  - the cursor lives in the hook's file: a second run hands over only what
    arrived since, nothing twice;
  - a send queued through the hook (outbox_put returned, pigeon_client_send
    returned 0) survives a kill -9 of the example before it ever connected
    and is stored once after the restart; the hook's file then holds no
    outbox record (outbox_del);
  - the record put back as if the crash had come after the broker stored it
    but before outbox_del: the resend is a duplicate, still stored once;
  - a hook whose outbox_put fails makes pigeon_client_send return
    PIGEON_EPERSIST; the client still connects and syncs, and nothing is sent.
Every wait is bounded.
"""

import os
import re
import select
import shutil
import subprocess
import time

import pytest

from clientlib import sanitizer_env, sanitizer_reports, tool
from harness import SLOW, free_port
from inboxlib import PUBACK_ACCEPTED, Device, start_inbox_broker

EPERSIST_TEXT = "persistence failed (state directory not writable or disk full)"


@pytest.fixture(scope="module")
def broker(module_brokers, keys):
    return start_inbox_broker(module_brokers, keys, "hook", send_rate=0)


def example_args(keys, state, server, uid, to, text, fail=False):
    return [tool("pigeon-example"), "--state-file", str(state)] + \
        (["--fail-outbox"] if fail else []) + \
        [server, uid, "phone", keys.token(uid, dev="phone"), to, text]


def run_example(tmp_path, *args):
    e = dict(os.environ, **sanitizer_env(tmp_path / "san"))
    p = subprocess.run(list(args), env=e, capture_output=True, text=True, timeout=40 * SLOW)
    problems = sanitizer_reports(tmp_path / "san")
    assert not problems, "\n".join(problems)
    return p


def messages(stdout):
    """The 'seq from: body' lines."""
    return [line for line in stdout.splitlines() if re.match(r"\d+ \S+: ", line)]


def outbox_lines(state):
    return [line for line in state.read_text().splitlines() if line.startswith("outbox ")]


def stored(mqtt, broker, keys, uid):
    dev = Device.login(mqtt, broker, keys, uid, device="check")
    msgs, _ = dev.sync_all()
    dev.client.close()
    return [(m.body.decode(), m.msg_id) for m in msgs]


def test_the_hooks_cursor_hands_over_nothing_twice(broker, keys, mqtt, pb, tmp_path):
    svc = Device.login(mqtt, broker, keys, "c-svc", role="service")
    for body in (b"one", b"two"):
        assert svc.chat("c-alice", body) in PUBACK_ACCEPTED
    run_dir = tmp_path / "app"
    run_dir.mkdir()
    state = run_dir / "state.txt"
    uri = f"tcp://127.0.0.1:{broker.port}"
    p = run_example(tmp_path, *example_args(keys, state, uri, "c-alice", "c-bob", "first"))
    assert p.returncode == 0, p.stderr
    assert messages(p.stdout) == ["1 c-svc: one", "2 c-svc: two"]
    lines = state.read_text().splitlines()
    assert lines == ["cursor 2", f"server {uri}"], lines  # sent: the outbox is empty again
    assert sorted(os.listdir(run_dir)) == ["state.txt"]  # no state_dir files, no .tmp left

    assert svc.chat("c-alice", b"three") in PUBACK_ACCEPTED
    p = run_example(tmp_path, *example_args(keys, state, uri, "c-alice", "c-bob", "second"))
    assert p.returncode == 0, p.stderr
    assert messages(p.stdout) == ["3 c-svc: three"]
    assert state.read_text().splitlines()[0] == "cursor 3"
    assert [b for b, _ in stored(mqtt, broker, keys, "c-bob")] == ["first", "second"]


def wait_line(proc, pattern, timeout):
    """Reads proc's stdout until a line matches pattern (bounded); the match."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc.stdout], [], [], 0.1)
        if r:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            for line in buf.decode(errors="replace").splitlines():
                m = rx.fullmatch(line)
                if m:
                    return m
    raise AssertionError(f"no line matching {pattern!r} within {timeout}s: {buf!r}")


def test_a_send_queued_through_the_hook_survives_kill_9_and_is_stored_once(
        broker, keys, mqtt, pb, tmp_path):
    state = tmp_path / "state.txt"
    dead = f"tcp://127.0.0.1:{free_port()}"  # nothing listens: it never connects
    e = dict(os.environ, **sanitizer_env(tmp_path / "san-killed"))
    proc = subprocess.Popen(example_args(keys, state, dead, "k-alice", "k-bob",
                                         "before the kill"),
                            env=e, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        msg_id = wait_line(proc, r"queued (\S+)", 10 * SLOW).group(1)
        # pigeon_client_send returned 0: the record is in the hook's file already.
        assert outbox_lines(state) == [f"outbox {msg_id.encode().hex()} " +
                                       outbox_lines(state)[0].split(" ")[2]]
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == -9
    crashed = tmp_path / "state.crashed"
    shutil.copy(state, crashed)

    uri = f"tcp://127.0.0.1:{broker.port}"
    p = run_example(tmp_path, *example_args(keys, state, uri, "k-alice", "k-bob",
                                            "after the restart"))
    assert p.returncode == 0, p.stderr
    assert f"sent {msg_id}: seq 1" in p.stdout.splitlines(), p.stdout
    assert outbox_lines(state) == []
    assert stored(mqtt, broker, keys, "k-bob") == [("before the kill", msg_id),
                                                    ("after the restart", _id(p, msg_id))]

    # As if the crash had come after the broker stored it, before outbox_del:
    # the restart sends it again, and the broker's dedup keeps it once.
    shutil.copy(crashed, state)
    p = run_example(tmp_path, *example_args(keys, state, uri, "k-alice", "k-bob", "third run"))
    assert p.returncode == 0, p.stderr
    assert f"sent {msg_id}: seq 1 (duplicate)" in p.stdout.splitlines(), p.stdout
    assert [b for b, _ in stored(mqtt, broker, keys, "k-bob")] == \
        ["before the kill", "after the restart", "third run"]
    assert outbox_lines(state) == []


def _id(p, other):
    """The msg_id the run p queued itself (not other)."""
    ids = re.findall(r"^queued (\S+)$", p.stdout, re.M)
    assert len(ids) == 1 and ids[0] != other, p.stdout
    return ids[0]


def test_a_failing_outbox_put_refuses_the_send_and_nothing_is_sent(broker, keys, mqtt, pb,
                                                                     tmp_path):
    state = tmp_path / "state.txt"
    uri = f"tcp://127.0.0.1:{broker.port}"
    p = run_example(tmp_path, *example_args(keys, state, uri, "f-alice", "f-bob", "lost",
                                            fail=True))
    assert p.returncode == 1, p.stderr
    lines = p.stdout.splitlines()
    assert f"send not queued: {EPERSIST_TEXT}" in lines, lines
    assert not any(line.startswith(("queued ", "sent ")) for line in lines), lines
    assert any(line.startswith("device: 501 ") for line in lines), lines  # it did connect
    assert "timed out" not in p.stderr
    assert stored(mqtt, broker, keys, "f-bob") == []
    assert outbox_lines(state) == []  # the hook kept nothing it could not write
