# SPDX-License-Identifier: Apache-2.0
"""
The real Prometheus (Debian's /usr/bin/prometheus) scraping pigeon-exporter
every second, on 127.0.0.1 with a throwaway configuration and TSDB
directory: after N messages are stored, Prometheus's own query API answers
pigeon_messages_stored_total = N. What the operator's Prometheus does
(conf/prometheus/), end to end, with every wait bounded.
"""

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from exporterlib import ExporterPool, broker_args
from harness import SLOW, TIMEOUT, free_port, wait_until
from inboxlib import PUBACK_ACCEPTED, Device, start_inbox_broker

PROMETHEUS = os.environ.get("PIGEON_PROMETHEUS") or shutil.which("prometheus") or \
    "/usr/bin/prometheus"

pytestmark = pytest.mark.skipif(not Path(PROMETHEUS).exists(),
                                reason="no prometheus binary (Debian package prometheus)")


class Prometheus:
    """One Prometheus process scraping targets every second; its API on a free port."""

    def __init__(self, dir, targets):
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = self.dir / "prometheus.yml"
        self.conf.write_text(
            "# written by tests/integration/test_prometheus.py\n"
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: pigeon\n"
            "    static_configs:\n"
            f"      - targets: {json.dumps(list(targets))}\n")
        self.log_path = self.dir / "prometheus.log"
        self.proc = None

    def start(self, timeout=30.0 * SLOW):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.conf}",
             f"--storage.tsdb.path={self.dir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--storage.tsdb.retention.time=1h", "--log.level=warn"],
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        if not wait_until(lambda: self.proc.poll() is not None or self._ready(), timeout, 0.2) \
                or self.proc.poll() is not None:
            self.stop()
            raise AssertionError("prometheus did not become ready:\n" + self.log_text())
        return self

    def _ready(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def api(self, path, **params):
        """GET /api/v1/<path>?params: the JSON answer's data (asserting status success)."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr):
        """An instant query's samples: [(labels, float value)]."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return [(s["metric"], float(s["value"][1])) for s in data["result"]]

    def scalar(self, expr):
        """The value of a query that answers one sample, else None."""
        got = self.query(expr)
        return got[0][1] if len(got) == 1 else None

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()


def test_prometheus_scrapes_every_stored_message(brokers, keys, mqtt, tmp_path, pb):
    b = start_inbox_broker(brokers, keys, "prom", extra_config=["sys_interval 1"],
                           sys_interval=1, auth={"sys_interval": 1})
    exporters = ExporterPool(tmp_path / "exporters")
    prom = None
    try:
        e = exporters.start(broker_args(b) + ["--secret-file", keys.secret_file])
        e.wait_up()
        prom = Prometheus(tmp_path / "prometheus", [f"127.0.0.1:{e.port}"]).start()

        def target_up():
            t = prom.api("targets", state="active")["activeTargets"]
            return len(t) == 1 and t[0]["health"] == "up" and t[0]["lastError"] == ""
        assert wait_until(target_up, 30 * SLOW, 0.25), \
            json.dumps(prom.api("targets"), indent=1) + "\n" + prom.log_text()
        assert wait_until(lambda: prom.scalar("pigeon_messages_stored_total") == 0,
                          30 * SLOW, 0.25)
        n = 25
        svc = Device.login(mqtt, b, keys, "p-svc", role="service")
        Device.login(mqtt, b, keys, "p-bob")
        codes = svc.publish_many("im/p-bob/chat", [b"m%d" % i for i in range(n)])
        assert all(c in PUBACK_ACCEPTED for c in codes), codes
        t0 = time.monotonic()
        got = wait_until(lambda: prom.scalar("pigeon_messages_stored_total") == n, 30 * SLOW, 0.25)
        assert got, (f"Prometheus says pigeon_messages_stored_total = "
                     f"{prom.query('pigeon_messages_stored_total')} after {time.monotonic() - t0:.1f}"
                     f" s, want {n}\n" + prom.log_text())
        # The rest of the page made it too: the exporter's gauge, a labelled
        # counter, and a histogram Prometheus can compute with.
        assert prom.scalar('up{job="pigeon"}') == 1
        assert prom.scalar("pigeon_up") == 1
        assert prom.scalar('pigeon_auth_logins_total{result="accepted"}') >= 2
        assert wait_until(lambda: (prom.scalar("pigeon_store_apply_seconds_count") or 0) > 0,
                          TIMEOUT + 5, 0.25)
        q = prom.query("histogram_quantile(0.5, pigeon_store_apply_seconds_bucket)")
        assert len(q) == 1 and q[0][1] >= 0
        version = prom.query("mosquitto_build_info")
        assert len(version) == 1 and version[0][0]["version"].startswith("2.0.")
    finally:
        if prom is not None:
            prom.stop()
        exporters.stop_all()
