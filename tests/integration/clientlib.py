# SPDX-License-Identifier: Apache-2.0
"""
Helpers for the tests of libpigeon-client and pigeon-client
(test_client_lib.py, test_client_tool.py), on top of harness.py:

  ClientProc    one pigeon-client process: its stdout JSON lines and stderr
                lines collected live by reader threads, bounded waits on
                them, stdin for --stdin sends, kill -9 / SIGTERM
  Sender        a thread that sends n CHATs (msg-id m-<i>, body m<i>) one at
                a time over its own MQTT connection, each retried (same
                msg-id) until a PUBACK accepts it, reconnecting through
                broker kills: so the store holds exactly m0..m<n-1> in order
  tool(name)    the path of a built tool
  doc_examples(heading, least) / run_doc_examples(pairs, cwd, env)
                the ```sh + ```text pairs of a docs/client.md section, run
                with bash and compared with what the doc shows

Under the ASan build (PIGEON_SANITIZE=1) the tools are sanitized
themselves: each run writes its reports under its own directory and
ClientProc.check() fails on any.
"""

import glob
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import harness
import inboxlib
from harness import SANITIZE, SLOW, TIMEOUT

SPECIAL = ("gap", "sent", "device", "stats")


def tool(name):
    return str(harness.build_path("bin", name))


def sanitizer_env(report_dir):
    """ASan/UBSan options for a sanitized tool, reports under report_dir."""
    if not SANITIZE:
        return {}
    Path(report_dir).mkdir(parents=True, exist_ok=True)
    return {
        "ASAN_OPTIONS": f"log_path={report_dir}/asan:detect_leaks=1:abort_on_error=1",
        "LSAN_OPTIONS": f"suppressions={harness.LSAN_SUPPRESSIONS}:print_suppressions=0",
        "UBSAN_OPTIONS": f"print_stacktrace=1:halt_on_error=1:log_path={report_dir}/ubsan",
    }


def sanitizer_reports(report_dir):
    out = []
    for f in sorted(glob.glob(f"{report_dir}/asan.*") + glob.glob(f"{report_dir}/ubsan.*")):
        out.append(f"{f}:\n" + Path(f).read_text(errors="replace")[:20000])
    return out


CLIENT_DOC = harness.REPO / "docs" / "client.md"


def doc_examples(heading, least):
    """(command, expected output) of each sh block under `heading` in docs/client.md."""
    level = heading.split(" ", 1)[0]
    m = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^#{{2,{len(level)}}} |\Z)",
                  CLIENT_DOC.read_text(), re.S | re.M)
    assert m, f"docs/client.md has no {heading} section"
    pairs = re.findall(r"```sh\n(.*?)```\n```text\n(.*?)```", m.group(1), re.S)
    assert len(pairs) >= least, pairs
    return pairs


def run_doc_examples(pairs, cwd, extra_env):
    """Runs each example with bash (pigeon-client on PATH, sanitized under
    ASan) and asserts its stdout is exactly what the doc shows."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIGEON_")}
    env.update(sanitizer_env(Path(cwd) / "san"))
    env.update(extra_env, PATH=f"{tool('pigeon-client').rsplit('/', 1)[0]}:{os.environ['PATH']}")
    for cmd, expected in pairs:
        p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=cwd, env=env,
                           capture_output=True, text=True, timeout=30 * SLOW)
        assert p.stdout == expected, f"{cmd}\n--- got:\n{p.stdout}\n--- stderr:\n{p.stderr}"
    problems = sanitizer_reports(Path(cwd) / "san")
    assert not problems, "\n".join(problems)


_runs = iter(range(1, 1 << 30))


class ClientProc:
    """
    pigeon-client with args (a list), started in cwd. stdout lines are
    parsed as JSON (a line that is not JSON fails check()); stderr lines are
    kept as text. Every wait is bounded and returns None on timeout.
    """

    def __init__(self, args, cwd, stdin=False, env=None):
        self.args = [tool("pigeon-client")] + [str(a) for a in args]
        self.cwd = Path(cwd)
        self.report_dir = self.cwd / f"san-{next(_runs)}"
        e = dict(os.environ)
        e.pop("PIGEON_TOKEN", None)
        e.update(sanitizer_env(self.report_dir))
        e.update(env or {})
        self.cv = threading.Condition()
        self.out = []      # parsed JSON objects
        self.bad_out = []  # stdout lines that were not JSON
        self.err = []      # stderr lines
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.args, cwd=self.cwd, env=e,
                                     stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._threads = [threading.Thread(target=self._read, args=(self.proc.stdout, True),
                                          daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, False),
                                          daemon=True)]
        for t in self._threads:
            t.start()

    def _read(self, f, is_out):
        for raw in f:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.cv:
                if is_out:
                    try:
                        self.out.append(json.loads(line))
                    except ValueError:
                        self.bad_out.append(line)
                else:
                    self.err.append((time.monotonic(), line))
                self.cv.notify_all()

    # ---- reading

    def envelopes(self):
        with self.cv:
            return [o for o in self.out if not any(k in o for k in SPECIAL)]

    def items(self, key):
        with self.cv:
            return [o[key] for o in self.out if key in o]

    def stderr_text(self):
        with self.cv:
            return "\n".join(line for _, line in self.err)

    def wait_out(self, predicate, timeout=TIMEOUT):
        with self.cv:
            ok = self.cv.wait_for(lambda: predicate(self), timeout)
        return ok or None

    def wait_envelopes(self, n, timeout=TIMEOUT):
        ok = self.wait_out(lambda c: len(c.envelopes()) >= n, timeout)
        assert ok, (f"{len(self.envelopes())} of {n} envelopes within {timeout}s\n"
                    + self.stderr_text()[-3000:])
        return self.envelopes()

    def wait_err(self, pattern, since=0.0, timeout=TIMEOUT):
        """The first stderr line after monotonic time since matching pattern (a re.Match)."""
        rx = re.compile(pattern)

        def find():
            for t, line in self.err:
                if t >= since:
                    m = rx.search(line)
                    if m:
                        return (t, m)
            return None
        with self.cv:
            self.cv.wait_for(lambda: find() is not None, timeout)
            return find()

    def expect_err(self, pattern, since=0.0, timeout=TIMEOUT):
        r = self.wait_err(pattern, since, timeout)
        assert r, f"no stderr line matching {pattern!r} within {timeout}s:\n" \
                  + self.stderr_text()[-3000:]
        return r

    # ---- stdin and lifecycle

    def write(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def close_stdin(self):
        self.proc.stdin.close()

    def wait(self, timeout=TIMEOUT):
        """The exit status (asserting it exits in time), once both readers are done."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"pigeon-client did not exit within {timeout}s\n"
                                 + self.stderr_text()[-3000:])
        for t in self._threads:
            t.join(5)
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait(10)
        for t in self._threads:
            t.join(5)

    def terminate(self, timeout=TIMEOUT):
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def stop(self):
        """For cleanup: SIGKILL if still running."""
        if self.proc.poll() is None:
            self.kill9()

    def check(self):
        """No sanitizer report, every stdout line JSON."""
        problems = sanitizer_reports(self.report_dir)
        assert not problems, "\n".join(problems)
        assert not self.bad_out, f"stdout lines that are not JSON: {self.bad_out[:5]}"


class Sender(threading.Thread):
    """
    Sends n CHATs from uid (a service) to `to`, one at a time over MQTT with
    msg-id m-<i> and body m<i:04d>, each retried until accepted; reconnects
    to broker.port (read anew each time: a restart may move it). acked: how
    many were accepted so far. Bounded by deadline_s.
    """

    def __init__(self, broker, keys, uid, to, n, pace=0.005, deadline_s=60):
        super().__init__(daemon=True)
        self.broker, self.keys, self.uid, self.to, self.n = broker, keys, uid, to, n
        self.pace = pace
        self.deadline = time.monotonic() + deadline_s * SLOW
        self.acked = 0
        self.reconnects = 0
        self.stopped = False
        self.error = None

    @staticmethod
    def body(i):
        return f"m{i:04d}"

    def _connect(self):
        c = inboxlib.PigeonClient(self.broker, f"{self.uid}:sender", self.uid,
                                  self.keys.token(self.uid, role="service"))
        try:
            if c.connect(timeout=2) == 0:
                return c
        except OSError:
            pass
        c.close()
        return None

    def run(self):
        c = None
        try:
            while self.acked < self.n and not self.stopped and time.monotonic() < self.deadline:
                if c is None:
                    c = self._connect()
                    if c is None:
                        time.sleep(0.05)
                        continue
                    self.reconnects += 1
                i = self.acked
                try:
                    code = c.publish(f"im/{self.to}/chat", self.body(i).encode(), timeout=2,
                                     properties=inboxlib.send_properties(msg_id=f"m-{i}"))
                except (AssertionError, OSError):
                    code = None
                if code in inboxlib.PUBACK_ACCEPTED:
                    self.acked += 1
                    if self.pace:
                        time.sleep(self.pace)
                else:
                    c.close()
                    c = None
        except Exception as e:  # reported by the test
            self.error = e
        finally:
            if c is not None:
                c.close()
