# SPDX-License-Identifier: Apache-2.0
"""
Fixtures for the integration tests (see harness.py):

  keys            session-wide JWT keys (HS256 secret, ES256 and EdDSA pairs)
  brokers         starts brokers for one test, stops and checks them after it
  module_brokers  the same for a whole module (one broker shared by its tests)
  mqtt            MQTT clients for one test, closed after it
  module_mqtt     MQTT clients for a whole module
  pb              pigeon_pb2, generated from proto/pigeon.proto for this session
  push_ca         a session-wide throwaway CA and server certificate (pushlib.make_ca)
  fakes           fake push providers for one test, stopped after it (pushlib.FakePool)

After every test, each broker that should be running is checked (alive, no
sanitizer report), so a crash fails the test that caused it.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402


def pytest_report_header(config):
    v = ".".join(map(str, harness.mosquitto_version()))
    return f"broker: {harness.MOSQUITTO} (mosquitto {v})"


def pytest_sessionstart(session):
    missing = [p for p in (harness.build_path("lib", "pigeon_auth.so"),
                           harness.build_path("bin", "pigeon-token")) if not p.exists()]
    if missing:
        raise pytest.UsageError(
            f"not built: {', '.join(map(str, missing))} (set PIGEON_BUILD_DIR to a build dir)"
        )


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    return harness.Keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def brokers(tmp_path):
    pool = harness.BrokerPool(tmp_path)
    yield pool
    pool.stop_all()


@pytest.fixture(scope="module")
def module_brokers(tmp_path_factory, request):
    pool = harness.BrokerPool(tmp_path_factory.mktemp(request.module.__name__))
    yield pool
    pool.stop_all()


@pytest.fixture
def mqtt():
    pool = harness.ClientPool()
    yield pool
    pool.close_all()


@pytest.fixture(scope="module")
def module_mqtt():
    pool = harness.ClientPool()
    yield pool
    pool.close_all()


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    import inboxlib

    return inboxlib.load_pb(tmp_path_factory.mktemp("proto"))


@pytest.fixture(autouse=True)
def brokers_stay_healthy():
    yield
    problems = []
    for b in list(harness.RUNNING):
        p = b.health_problems()
        if p:
            harness.RUNNING.discard(b)
            problems.append("\n".join(p) + "\n--- log ---\n" + b.log_text()[-6000:])
    if problems:
        pytest.fail("broker unhealthy after this test:\n" + "\n\n".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def push_ca(tmp_path_factory):
    import pushlib

    return pushlib.make_ca(tmp_path_factory.mktemp("push-ca"))


@pytest.fixture
def fakes(tmp_path, push_ca):
    import pushlib

    pool = pushlib.FakePool(tmp_path / "fakes", push_ca)
    yield pool
    pool.stop_all()


@pytest.fixture
def procs():
    """The pigeon-client processes (clientlib.ClientProc) of one test: killed if still running, sanitizer-checked."""
    started = []
    yield started
    for p in started:
        p.stop()
    for p in started:
        p.check()
