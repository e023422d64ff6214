# SPDX-License-Identifier: Apache-2.0
"""
Every example of docs/backend.md, run as written against a fresh broker
(pigeon_auth + pigeon_inbox), its output compared with the page's.

The page marks a runnable fenced block with a `<!-- example: NAME -->` line
just before it and its expected output with `<!-- output: NAME -->`. sh
blocks run under bash -e in a scratch directory with the build's bin/ first
on PATH; python blocks run with /usr/bin/python3 and pigeon_pb2 (generated
by protoc, as the page says) on PYTHONPATH. Both get PIGEON_HOST,
PIGEON_PORT and PIGEON_TOKEN (a service token for "backend"). A block
without a case below fails the test: a new example must be wired in here.
"""

import os
import re
import subprocess

import pytest

import inboxlib
from harness import REPO, SLOW, build_path

DOC = REPO / "docs" / "backend.md"
MARK_RE = re.compile(r"^<!-- (example|output): ([A-Za-z0-9_-]+) -->$")


def doc_blocks():
    """{("example"|"output", name): (language, text)} of the marked fenced blocks."""
    lines = DOC.read_text().splitlines()
    blocks = {}
    i = 0
    while i < len(lines):
        m = MARK_RE.match(lines[i])
        if m:
            assert i + 1 < len(lines) and lines[i + 1].startswith("```"), \
                f"docs/backend.md:{i + 1}: a mark not followed by a fenced block"
            lang = lines[i + 1][3:].strip()
            end = i + 2
            while end < len(lines) and lines[end] != "```":
                end += 1
            assert end < len(lines), f"docs/backend.md:{i + 1}: unterminated block"
            key = (m.group(1), m.group(2))
            assert key not in blocks, f"two blocks marked {key}"
            blocks[key] = (lang, "\n".join(lines[i + 2:end]) + "\n")
            i = end
        i += 1
    return blocks


BLOCKS = doc_blocks()
EXAMPLES = sorted(name for kind, name in BLOCKS if kind == "example")

# Per example: arguments to a python program, and the users to bring online first.
PY_ARGS = {"python-send": ["alice", "bob"], "python-presence": []}
ONLINE = {"python-presence": [("alice", "phone")]}
PY_ENV = {"python-presence": {"PRESENCE_COUNT": "1", "PRESENCE_SECONDS": "10"}}


def test_the_page_has_its_examples():
    assert {"send-args", "send-notify-file", "send-dedup", "send-pipe", "python-send",
            "python-presence"} <= set(EXAMPLES)
    for name in EXAMPLES:
        assert ("output", name) in BLOCKS, f"example {name} has no output block"


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_and_prints_what_the_page_says(name, brokers, keys, mqtt, pb, tmp_path):
    lang, code = BLOCKS[("example", name)]
    _, expected = BLOCKS[("output", name)]
    broker = inboxlib.start_inbox_broker(brokers, keys, "ex", send_rate=0)
    for uid, device in ONLINE.get(name, []):
        inboxlib.Device.login(mqtt, broker, keys, uid, device)
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ)
    env.update(PIGEON_HOST=broker.host, PIGEON_PORT=str(broker.port),
               PIGEON_TOKEN=keys.token("backend", role="service", ttl=600),
               PATH=f"{build_path('bin')}:{env.get('PATH', '/usr/bin:/bin')}")
    env.update(PY_ENV.get(name, {}))
    if lang == "sh":
        cmd = ["bash", "-e", "-c", code]
    elif lang == "python":
        assert name in PY_ARGS, f"python example {name} has no arguments in PY_ARGS"
        prog = work / f"{name}.py"
        prog.write_text(code)
        # pigeon_pb2 as the page says to make it: protoc --python_out.
        subprocess.run(["protoc", f"--proto_path={REPO / 'proto'}", f"--python_out={work}",
                        str(REPO / "proto" / "pigeon.proto")], check=True)
        env["PYTHONPATH"] = str(work)
        cmd = ["/usr/bin/python3", str(prog)] + PY_ARGS[name]
    else:
        pytest.fail(f"example {name}: unknown language {lang!r}")
    p = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                       timeout=30 * SLOW)
    assert p.returncode == 0, f"{name} exited {p.returncode}:\n{p.stderr}"
    assert p.stdout == expected, f"{name} printed:\n{p.stdout}\nstderr:\n{p.stderr}"


def test_the_notify_example_stores_its_metadata(brokers, keys, mqtt, pb, tmp_path):
    """send-notify-file's options reach alice's envelope (and bob, commented out, gets none)."""
    _, code = BLOCKS[("example", "send-notify-file")]
    broker = inboxlib.start_inbox_broker(brokers, keys, "ex", send_rate=0)
    env = dict(os.environ, PIGEON_HOST=broker.host, PIGEON_PORT=str(broker.port),
               PIGEON_TOKEN=keys.token("backend", role="service", ttl=600),
               PATH=f"{build_path('bin')}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    p = subprocess.run(["bash", "-e", "-c", code], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=30 * SLOW)
    assert p.returncode == 0, p.stderr
    alice = inboxlib.Device.login(mqtt, broker, keys, "alice", "phone")
    (m,) = alice.sync_all()[0]
    assert (m.kind, m.type, m.content_type, m.body) == \
        (pb.NOTIFY, "promo", "application/json", b'{"sale": 20}')
    bob = inboxlib.Device.login(mqtt, broker, keys, "bob", "phone")
    assert bob.sync_all()[0] == []
