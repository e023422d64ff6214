# SPDX-License-Identifier: Apache-2.0
"""
Every shell example of README.md and docs/debugging.md, run with bash
against a real broker, its output checked.

A runnable block is a ```sh fence right after a line
`<!-- example: NAME -->`; each NAME has a test here (and
test_every_example_has_a_test fails for one that has none). A block runs in
a temporary directory laid out like the repository root the docs assume:
build/ is PIGEON_BUILD_DIR, data/jwt.secret the test broker's HS256 secret,
proto/ the repository's. mosquitto_sub and mosquitto_pub find the test
broker through their default-options files ($XDG_CONFIG_HOME/mosquitto_sub
and .../mosquitto_pub: -h, -p), the pigeon tools through
$PIGEON_HOST/$PIGEON_PORT, and an explicit "-p 1883" in a block is replaced
by the test port, "127.0.0.1:9883" (pigeon-exporter's HTTP endpoint) by a
free one. Subscribers are started in the background in their own
session, waited for (their SUBSCRIBE in the broker log) and killed at the
end; every wait is bounded.

The examples using pigeon-client and pigeon-send are skipped (with the
reason) while those tools are not in the build dir.
"""

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

import harness
from harness import (SANITIZE, SANITIZER_LOG_RE, SLOW, TIMEOUT, build_path, free_port,
                     wait_until)
from inboxlib import PUBACK_ACCEPTED, Device, start_inbox_broker

DOCS = ["README.md", "docs/debugging.md"]
MARK_RE = re.compile(r"^<!-- example: ([A-Za-z0-9_-]+) -->\n```sh\n(.*?)^```", re.M | re.S)


def examples():
    """{name: (doc, text)} of every marked block."""
    out = {}
    for doc in DOCS:
        text = (harness.REPO / doc).read_text()
        for m in MARK_RE.finditer(text):
            assert m.group(1) not in out, f"example {m.group(1)} twice"
            out[m.group(1)] = (doc, m.group(2))
    return out


EXAMPLES = examples()
# The examples each test below runs; test_every_example_has_a_test compares.
COVERED = {"connect-sub", "connect-pub", "walkthrough-tokens", "walkthrough-phone",
           "walkthrough-send", "quick-app", "quick-backend", "quick-operator",
           "debug-watch-user", "debug-watch-service", "debug-decode", "debug-capture",
           "debug-jq", "quick-monitor", "quick-monitor-check"}


def block(name):
    return EXAMPLES[name][1]


def output_after(name):
    """The text of the first plain ``` block after example name (its documented output)."""
    doc, text = EXAMPLES[name]
    src = (harness.REPO / doc).read_text()
    rest = src[src.index(text) + len(text) + len("```\n"):]  # past the block's own fence
    m = re.search(r"^```\n(.*?)^```", rest, re.M | re.S)
    return m.group(1)


def need_tool(name):
    if not build_path("bin", name).exists():
        pytest.skip(f"{name} is not built yet in {harness.BUILD_DIR}")


class Shell:
    """A directory laid out like the repository root, and bash runs in it."""

    def __init__(self, root, broker, keys):
        self.root = Path(root)
        self.broker = broker
        self.procs = []
        self.http_port = free_port()
        self.root.mkdir(parents=True)
        (self.root / "build").symlink_to(harness.BUILD_DIR)
        (self.root / "proto").symlink_to(harness.REPO / "proto")
        (self.root / "data").mkdir()
        (self.root / "data" / "jwt.secret").write_bytes(keys.secret)
        xdg = self.root / "xdg"
        xdg.mkdir()
        for tool in ("mosquitto_sub", "mosquitto_pub"):
            (xdg / tool).write_text(f"-h 127.0.0.1\n-p {broker.port}\n")
        self.env = dict(os.environ, XDG_CONFIG_HOME=str(xdg), HOME=str(self.root),
                        PIGEON_HOST="127.0.0.1", PIGEON_PORT=str(broker.port))
        self.env.pop("PIGEON_TOKEN", None)
        if SANITIZE:
            self.env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
            self.env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"

    def _script(self, *names):
        return self.subst("\n".join(block(n) for n in names))

    def subst(self, text):
        """text with the documented ports replaced by the test's."""
        return (text.replace("-p 1883", f"-p {self.broker.port}")
                .replace("127.0.0.1:9883", f"127.0.0.1:{self.http_port}"))

    def run(self, *names, script=None, timeout=30):
        """Runs the blocks (concatenated) with bash -e -o pipefail; the CompletedProcess."""
        p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script or self._script(*names)],
                           cwd=self.root, env=self.env, capture_output=True,
                           timeout=timeout * SLOW)
        err = p.stderr.decode("utf-8", "replace")
        assert not SANITIZER_LOG_RE.search(err), err
        assert p.returncode == 0, f"{names}: exit {p.returncode}\n{err}"
        return p

    def start(self, *names, client_id):
        """
        Starts the blocks in the background (a new session, stdout and
        stderr to files) and waits until client_id has subscribed.
        """
        mark = self.broker.mark()
        out = self.root / f"bg{len(self.procs)}.out"
        err = self.root / f"bg{len(self.procs)}.err"
        p = subprocess.Popen(["bash", "-c", self._script(*names)], cwd=self.root, env=self.env,
                             stdout=open(out, "wb"), stderr=open(err, "wb"),
                             start_new_session=True)
        p.out, p.err = out, err
        self.procs.append(p)
        if not self.broker.wait_log(rf"Received SUBSCRIBE from {re.escape(client_id)}\b",
                                    since=mark, timeout=10 * SLOW):
            raise AssertionError(f"{names}: {client_id} did not subscribe\n"
                                 + err.read_text(errors="replace"))
        return p

    @staticmethod
    def lines(p):
        return p.out.read_bytes().decode("utf-8", "replace").splitlines()

    def wait_json(self, p, n, timeout=TIMEOUT):
        """The first n JSON lines p printed (asserts they come in time)."""
        ok = wait_until(lambda: len(self.lines(p)) >= n, timeout)
        assert ok, (f"{len(self.lines(p))} of {n} lines:\n" + p.out.read_text(errors="replace")
                    + p.err.read_text(errors="replace"))
        return [json.loads(x) for x in self.lines(p)[:n]]

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
            err = p.err.read_text(errors="replace")
            assert not SANITIZER_LOG_RE.search(err), err


@pytest.fixture
def broker(brokers, keys):
    return start_inbox_broker(brokers, keys, "docs", sys_interval=1)


@pytest.fixture
def sh(tmp_path, broker, keys):
    s = Shell(tmp_path / "root", broker, keys)
    yield s
    s.stop()


def test_every_example_has_a_test():
    assert set(EXAMPLES) == COVERED


def test_connecting(sh):
    sub = sh.start("connect-sub", client_id="alice:phone")
    sh.run("connect-pub")
    assert wait_until(lambda: b"hello alice" in sub.out.read_bytes(), TIMEOUT)
    assert sub.out.read_bytes().startswith(b"im/alice/inbox ")  # -v: topic, then the payload


def test_walkthrough(sh, broker, keys, mqtt, pb):
    phone = sh.start("walkthrough-tokens", "walkthrough-phone", client_id="alice:phone")
    sh.run("walkthrough-tokens", "walkthrough-send")
    chat, like = sh.wait_json(phone, 2)
    assert chat["topic"] == like["topic"] == "im/alice/inbox"
    assert chat["type"] == "Envelope"
    m = chat["message"]
    assert (m["seq"], m["from"], m["to"], m["kind"], m["msg_id"], m["body"]) == \
        (1, "backend", "alice", "CHAT", "m-1", "hello alice")
    m = like["message"]
    assert (m["seq"], m["kind"], m["type"], m["body"], m["merged"]) == \
        (2, "NOTIFY", "like", "bob liked it", 0)
    # The documented output lines have these keys in this order.
    for doc_line, got in zip(output_after("walkthrough-send").splitlines(), (chat, like)):
        assert doc_line.startswith(json.dumps({"topic": got["topic"], "type": got["type"]},
                                              separators=(",", ":"))[:-1])
    # "Stop the subscriber, send three more likes, and a later sync after 2
    # returns one stored like, seq 5 with merged 3."
    mark = broker.mark()
    sh.stop()
    broker.expect_log(r"Client alice:phone (closed its connection|disconnected)", since=mark)
    like_cmd = block("walkthrough-send").splitlines()[-1]
    sh.run(script=block("walkthrough-tokens") + "\n" + "\n".join([like_cmd] * 3))
    dev = Device.login(mqtt, broker, keys, "alice", device="tablet")
    s = dev.sync(after_seq=2)
    assert [(e.seq, e.type, e.merged) for e in s.messages] == [(5, "like", 3)]


def test_quick_start_app(sh):
    need_tool("pigeon-client")
    p = sh.run("quick-app", timeout=30)
    lines = [json.loads(x) for x in p.stdout.decode().splitlines() if x.startswith("{")]
    envs = [x for x in lines if "seq" in x and "body" in x]
    assert [(e["seq"], e["from"], e["to"], e["kind"], e["body"]) for e in envs] == \
        [(1, "alice", "bob", "CHAT", "hi bob")]
    # Run again: the cursor in bob-state is past it, nothing is printed.
    again = sh.run(script=block("quick-app").splitlines()[-1], timeout=30)
    assert not [x for x in again.stdout.decode().splitlines() if '"seq"' in x]


def test_quick_start_backend(sh):
    need_tool("pigeon-send")
    p = sh.run("quick-backend", timeout=60)
    assert p.stdout.decode().splitlines() == ["alice 1", "bob 1", "carol 1", "dave 1"]


def test_quick_start_monitoring(sh):
    need_tool("pigeon-send")
    exporter = sh.start("quick-monitor", client_id="pigeon-exporter:exporter")
    sh.run("quick-backend", timeout=60)

    def stored():
        first = block("quick-monitor-check").splitlines()[0]
        p = sh.run(script=sh.subst(first) + " || true", timeout=30)
        return p.stdout.decode().strip()

    # The documented line, once the inbox has published (sys_interval 1 here).
    assert wait_until(lambda: stored() == "pigeon_messages_stored_total 4", 10 * SLOW), stored()
    out = sh.run("quick-monitor-check", timeout=60).stdout.decode().splitlines()
    # pigeon_push is not loaded in this broker, so its line differs from the README's.
    assert out[0] == "pigeon_messages_stored_total 4"
    assert out[1:3] == ["broker ok", "store ok"] and out[3].startswith("push ")
    assert out[4:6] == ["broker ok", "store ok"] and out[6].startswith("push ")
    assert exporter.poll() is None


@pytest.mark.parametrize("name", ["quick-operator", "debug-watch-user"])
def test_watching_a_user(sh, broker, keys, mqtt, name):
    watch = sh.start(name, client_id="alice:debug")
    svc = Device.login(mqtt, broker, keys, "backend", role="service")
    assert svc.chat("alice", b"hi alice") in PUBACK_ACCEPTED
    assert svc.chat("alice", b"\xff\x00") in PUBACK_ACCEPTED
    first, second = sh.wait_json(watch, 2)
    assert first["topic"] == "im/alice/inbox" and first["type"] == "Envelope"
    assert (first["message"]["seq"], first["message"]["from"], first["message"]["body"]) == \
        (1, "backend", "hi alice")
    assert second["message"]["body_base64"] == "/wA="


def test_watching_presence_and_counters(sh, broker, keys, mqtt):
    watch = sh.start("debug-watch-service", client_id="ops:watch")
    Device.login(mqtt, broker, keys, "alice")

    def seen():
        got = [json.loads(x) for x in sh.lines(watch)]
        pres = [g for g in got if g["type"] == "Presence" and g["message"]["uid"] == "alice"
                and g["message"]["online"]]
        sys_ = [g for g in got if g["type"] == "sys"
                and g["topic"].startswith("$SYS/broker/pigeon/")]
        return (pres, sys_) if pres and sys_ else None

    r = wait_until(seen, 5 * SLOW)
    assert r, sh.lines(watch)
    pres, sys_ = r
    assert pres[0]["topic"] == "im/alice/presence"
    assert [d["device"] for d in pres[0]["message"]["devices"]] == ["phone"]
    assert all(isinstance(s["message"]["value"], str) for s in sys_)


def test_decoding_a_captured_payload(sh):
    p = sh.run("debug-decode")
    assert p.stdout.decode() == output_after("debug-decode")


def test_capture_and_jq_recipes(sh, broker, keys, mqtt):
    cap = sh.start("debug-capture", client_id="alice:debug")
    svc = Device.login(mqtt, broker, keys, "backend", role="service")
    assert svc.chat("alice", b"hi") in PUBACK_ACCEPTED
    assert svc.notify("alice", "like", b"bob liked it") in PUBACK_ACCEPTED
    cap.wait(10 * SLOW)  # -C 2: exits after two messages
    assert cap.returncode == 0, cap.err.read_text()
    p = sh.run("debug-jq")
    assert p.stdout.decode().splitlines() == [
        '{"seq":1,"from":"backend","body":"hi"}',
        '{"seq":2,"from":"backend","body":"bob liked it"}',
        '["like",0]',
    ]
