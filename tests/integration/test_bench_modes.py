# SPDX-License-Identifier: Apache-2.0
"""
pigeon-bench's pool-based modes (clients/bench/: open, throughput, idle)
against the real broker, short runs only: each result line parses as the
benchmark suite (bench/suite.py) reads it, nothing is lost or duplicated,
the counts add up, the percentile curve is well formed, idle holds its
connections until stdin closes, and a refused connect or a usage error gets
its exit status (1, 2).

One pigeon broker (pigeon_auth + pigeon_inbox, send_rate 0, plus
pigeon_push without providers when built) and one plain Mosquitto
(allow_anonymous, no plugin) serve the whole module; each test uses its
own uid prefix.
"""

import re
import subprocess

import pytest

import inboxlib
import pushlib
from harness import SANITIZE, SANITIZER_LOG_RE, SLOW, build_path

KV_RE = re.compile(r"(\w+)=(\S+)")


def bench(*args, timeout=60):
    """Runs pigeon-bench; the CompletedProcess (text)."""
    p = subprocess.run([str(build_path("bin", "pigeon-bench"))] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout * SLOW)
    assert not SANITIZER_LOG_RE.search(p.stderr), p.stderr
    return p


def result(stdout, what):
    """(label, figure, unit, {key: value}) of the one `what` line of stdout."""
    lines = [ln for ln in stdout.splitlines() if ln.split(" ", 1)[0] == what]
    assert len(lines) == 1, stdout
    f = lines[0].split()
    kv = dict(KV_RE.findall(lines[0]))
    assert all("=" in x for x in f[4:]), lines[0]
    return f[1], float(f[2]), f[3], kv


@pytest.fixture(scope="module")
def pigeon(module_brokers, keys):
    plugins = inboxlib.inbox_plugins(keys, "bench", module_brokers.workdir, send_rate=0)
    if pushlib.have_push_plugin():
        plugins.append((pushlib.push_plugin_path(),
                        {"db_path": module_brokers.workdir / "push.db", "sys_interval": 0}))
    return module_brokers.start(plugins, ["max_queued_messages 1000"], name="bench")


@pytest.fixture(scope="module")
def plain(module_brokers):
    return module_brokers.start([], ["allow_anonymous true", "max_queued_messages 1000"],
                                name="plain")


def auth(keys, broker):
    return ["--port", broker.port, "--secret-file", keys.secret_file]


def test_open_n_to_m_loses_nothing_and_its_line_parses(pigeon, keys, tmp_path):
    curve = tmp_path / "curve.txt"
    p = bench("open", *auth(keys, pigeon), "--rate", 400, "--seconds", 1, "--warmup", 0.5,
              "--publishers", 2, "--subscribers", 3, "--threads", 2, "--to", "bmo",
              "--curve", curve, "--label", "t")
    assert p.returncode == 0, p.stderr
    label, p99, unit, kv = result(p.stdout, "open")
    assert (label, unit) == ("t", "us")
    assert int(kv["sent"]) == 600 and int(kv["measured"]) == 400
    assert int(kv["received"]) == 600
    assert int(kv["lost"]) == 0 and int(kv["duplicates"]) == 0
    assert (kv["publishers"], kv["subscribers"]) == ("2", "3")
    assert float(kv["p99_us"]) == p99
    pcts = [float(kv[k]) for k in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us")]
    assert pcts == sorted(pcts) and pcts[0] > 0
    lines = curve.read_text().splitlines()
    assert lines[0].startswith("#")
    rows = [tuple(float(x) for x in ln.split()) for ln in lines[1:]]
    assert rows[0][0] == 0 and rows[1][0] == 50 and rows[-1][0] == 100
    assert [r[2] for r in rows] == sorted(r[2] for r in rows)
    # The curve's 100 % is the line's max (to the printed precision).
    assert abs(rows[-1][1] - float(kv["max_us"])) <= 1


def test_open_against_plain_mosquitto_with_qos0_too(plain):
    p = bench("open", "--port", plain.port, "--anonymous", "--rate", 500, "--seconds", 1,
              "--warmup", 0, "--qos", 0, "--to", "bmq")
    assert p.returncode == 0, p.stderr
    label, _, _, kv = result(p.stdout, "open")
    assert label == "anonymous"
    assert int(kv["sent"]) == int(kv["measured"]) == 500
    assert int(kv["lost"]) == 0


def test_throughput_delivers_every_message_once(pigeon, keys):
    p = bench("throughput", *auth(keys, pigeon), "--pairs", 3, "--count", 3000, "--window", 50,
              "--to", "bmt")
    assert p.returncode == 0, p.stderr
    label, rate, unit, kv = result(p.stdout, "throughput")
    assert (label, unit) == ("pigeon", "msg/s") and rate > 0
    assert (kv["pairs"], kv["count"], kv["window"]) == ("3", "3000", "50")
    assert float(kv["seconds"]) > 0 and float(kv["p99_us"]) >= float(kv["p50_us"]) > 0


def test_throughput_on_one_thread_against_plain(plain):
    p = bench("throughput", "--port", plain.port, "--anonymous", "--count", 2000, "--threads", 1,
              "--to", "bmu")
    assert p.returncode == 0, p.stderr
    assert result(p.stdout, "throughput")[3]["count"] == "2000"


def test_idle_holds_until_stdin_closes(pigeon, keys):
    cmd = [str(build_path("bin", "pigeon-bench")), "idle", *map(str, auth(keys, pigeon)),
           "--count", "300", "--prefix", "bmi", "--label", "held"]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        first = p.stdout.readline()
        assert first.startswith("idle held 300 connections "), first + p.stderr.read()
        kv = dict(KV_RE.findall(first))
        assert float(kv["seconds"]) > 0 and kv["threads"] == "2"
        assert p.poll() is None  # still holding
        p.stdin.close()
        p.stdin = None  # communicate() would flush it
        rest, err = p.communicate(timeout=30 * SLOW)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert rest.strip() == "idle-done held 300 connections"


def test_idle_hold_seconds_and_no_subscribe_against_plain(plain):
    p = bench("idle", "--port", plain.port, "--anonymous", "--count", 100, "--hold", 1,
              "--no-subscribe", "--threads", 1, "--prefix", "bmj")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "idle-done anonymous 100 connections"


def test_refused_connect_is_exit_1_with_the_reason(pigeon, tmp_path):
    wrong = tmp_path / "wrong.secret"
    wrong.write_bytes(b"not the broker's secret, long enough for HS256 anyway")
    p = bench("idle", "--port", pigeon.port, "--secret-file", wrong, "--count", 3, "--hold", 1,
              "--prefix", "bmk")
    assert p.returncode == 1
    assert "refused" in p.stderr and p.stdout == ""


def test_usage_errors_are_exit_2():
    assert bench("open", "--port", 1, "--anonymous").returncode == 2  # no --rate
    assert bench("throughput", "--anonymous").returncode == 2  # no --port
    assert bench("idle", "--port", 1, "--anonymous", "--secret-file", "x",
                 "--count", 1).returncode == 2
