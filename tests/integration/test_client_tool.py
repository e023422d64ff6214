# SPDX-License-Identifier: Apache-2.0
"""
pigeon-client's own contract (docs/client.md, "## pigeon-client"): --help,
usage errors (exit 2 with a one-line reason), a refused token and an
unreachable broker (exit 1, a clear message), the --send output; every
example of that section run as written, its output compared with the
text block that follows it; and the example program
(clients/examples/pigeon_example.c) run against a broker.
"""

import os
import re
import subprocess

import pytest

from clientlib import doc_examples, run_doc_examples, sanitizer_env, sanitizer_reports, tool
from harness import SLOW, TIMEOUT
from inboxlib import PUBACK_ACCEPTED, Device, start_inbox_broker



@pytest.fixture(scope="module")
def broker(module_brokers, keys):
    return start_inbox_broker(module_brokers, keys, "tool", send_rate=0)


def run(args, cwd, env=None, timeout=TIMEOUT, stdin=None):
    """pigeon-client args (no token from the environment unless env gives one)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("PIGEON_TOKEN")}
    e.update(sanitizer_env(cwd / "san"))
    e.update(env or {})
    p = subprocess.run([tool("pigeon-client")] + [str(a) for a in args], cwd=cwd, env=e,
                       capture_output=True, text=True, timeout=timeout * 3, input=stdin)
    problems = sanitizer_reports(cwd / "san")
    assert not problems, "\n".join(problems)
    return p


def one_line_error(p):
    lines = p.stderr.strip().splitlines()
    assert lines and lines[0].startswith("pigeon-client: "), p.stderr
    return lines[0]


def test_help_prints_usage_and_exits_0(tmp_path):
    p = run(["--help"], tmp_path)
    assert p.returncode == 0 and p.stdout.startswith("usage: pigeon-client")
    for opt in ("--server", "--token-file", "--send UID TEXT", "--register", "--until-synced",
                "--keepalive-min", "--stdin", "--timeout"):
        assert opt in p.stdout, opt


@pytest.mark.parametrize("args,reason", [
    ([], r"no token"),
    (["--bogus"], r"unknown option '--bogus'"),
    (["-x"], r"unknown option"),
    (["--token"], r"needs an argument"),
    (["--token", "t", "--send", "bob"], r"--send needs UID and TEXT"),
    (["--token", "t", "--count", "abc"], r"bad --count 'abc'"),
    (["--token", "t", "--count", "0"], r"bad --count '0'"),
    (["--token", "t", "--count", "-3"], r"bad --count"),
    (["--token", "t", "--timeout", "nan"], r"bad --timeout"),
    (["--token", "t", "-p", "70000"], r"bad port"),
    (["--token", "t", "--server", "http://x:1"], r"bad --server"),
    (["--token", "t", "--register", "webhook"], r"PLATFORM:TOKEN"),
    (["--token", "t", "--register", "a:b", "--unregister"], r"together"),
    (["--token", "t", "--keepalive-min", "9", "--keepalive-max", "3"], r"above"),
    (["--token", "t", "stray"], r"unexpected argument 'stray'"),
    (["--token", "not-a-jwt"], r"no uid: give --uid"),
])
def test_usage_errors_exit_2_with_the_reason(tmp_path, args, reason):
    p = run(args, tmp_path)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert re.search(reason, one_line_error(p)), p.stderr
    assert p.stdout == ""


def test_an_unreadable_token_file_exits_1(tmp_path):
    p = run(["--token-file", tmp_path / "missing"], tmp_path)
    assert p.returncode == 1 and "cannot read token file" in one_line_error(p)


def test_a_refused_token_exits_1_after_the_first_refusal(broker, keys, tmp_path):
    bad = keys.token("t-alice", dev="phone", exp=1)  # expired long ago
    p = run(["--token", bad, "-p", broker.port, "--timeout", 8], tmp_path)
    assert p.returncode == 1, p.stderr
    assert "refused the login as t-alice:phone" in p.stderr and "token" in p.stderr
    assert "timed out" not in p.stderr  # the first refusal ended it


def test_an_unreachable_broker_with_a_timeout_exits_1(tmp_path, keys):
    p = run(["--token", keys.token("u-alice"), "--server", "tcp://127.0.0.1:1", "--timeout", 1],
            tmp_path)
    assert p.returncode == 1
    assert "timed out after 1 s (never connected" in p.stderr


def test_send_prints_the_outcome_and_exits(broker, keys, mqtt, pb, tmp_path):
    p = run(["--token", keys.token("x-alice"), "-p", broker.port, "--send", "x-bob", "one",
             "--send", "x-bob", "two", "--timeout", 10], tmp_path)
    assert p.returncode == 0, p.stderr
    import json

    sent = [json.loads(line)["sent"] for line in p.stdout.splitlines()]
    assert sorted((s["to"], s["seq"], s["duplicate"]) for s in sent) == \
        [("x-bob", 1, False), ("x-bob", 2, False)]
    assert all(re.fullmatch(r"[0-9A-Za-z._:-]{1,128}", s["msg_id"]) for s in sent)
    bob = Device.login(mqtt, broker, keys, "x-bob")
    msgs, _ = bob.sync_all()
    assert sorted(m.body for m in msgs) == [b"one", b"two"]


def test_a_refused_send_is_reported_and_exits_1(broker, keys, tmp_path):
    # A user may not send to an invalid uid: the broker refuses it (400), for good.
    p = run(["--token", keys.token("y-alice"), "-p", broker.port, "--send", "bad uid!", "x",
             "--timeout", 10], tmp_path)
    assert p.returncode in (1, 2), p.stderr
    assert "pigeon-client: " in p.stderr


def test_garbage_on_stdin_is_skipped_never_a_crash(broker, keys, tmp_path):
    garbage = "nospace\n\n \x01\x02\xff\n" + "a" * 100000 + "\n" + "z-bob fine\n"
    p = run(["--token", keys.token("z-alice"), "-p", broker.port, "--stdin", "--timeout", 10],
            tmp_path, stdin=garbage)
    assert p.returncode in (0, 1), p.stderr  # exit 1 if the broker refused a garbage uid
    assert "not 'UID TEXT', skipped" in p.stderr
    assert '"to":"z-bob"' in p.stdout


def test_every_documented_example_runs_as_shown(module_brokers, keys, mqtt, pb, tmp_path):
    b = start_inbox_broker(module_brokers, keys, "docs", send_rate=0)
    bob = Device.login(mqtt, b, keys, "bob")
    assert bob.chat("alice", b"hello alice") in PUBACK_ACCEPTED  # the docs' premise
    run_doc_examples(doc_examples("## pigeon-client", 5), tmp_path,
                     {"PIGEON_PORT": str(b.port), "PIGEON_TOKEN": keys.token("alice")})


def test_the_example_program_connects_prints_sends_and_registers(broker, keys, mqtt, pb, tmp_path):
    svc = Device.login(mqtt, broker, keys, "e-svc", role="service")
    assert svc.chat("e-alice", b"welcome") in PUBACK_ACCEPTED
    e = dict(os.environ, **sanitizer_env(tmp_path / "san"))
    p = subprocess.run([tool("pigeon-example"), f"tcp://127.0.0.1:{broker.port}", "e-alice",
                        "phone", keys.token("e-alice", dev="phone"), tmp_path / "state", "e-bob",
                        "hello from the example"], env=e, capture_output=True, text=True,
                       timeout=40 * SLOW)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "1 e-svc: welcome" in lines
    assert any(re.fullmatch(r"sent \S+: seq 1", line) for line in lines), lines
    assert any(line.startswith("device: 501 ") for line in lines), lines  # no pigeon_push here
    bob = Device.login(mqtt, broker, keys, "e-bob")
    msgs, _ = bob.sync_all()
    assert [(m.body, m.content_type) for m in msgs] == [(b"hello from the example", "text/plain")]
    assert not sanitizer_reports(tmp_path / "san")
    assert subprocess.run([tool("pigeon-example")], capture_output=True).returncode == 2
