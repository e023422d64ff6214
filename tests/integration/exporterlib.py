# SPDX-License-Identifier: Apache-2.0
"""
Helpers for the pigeon-exporter tests (test_exporter.py, test_prometheus.py),
on top of harness.py:

  parse_exposition(text)  a strict parser of the Prometheus text format
                          0.0.4: rejects anything the format does not allow
                          and everything pigeon-exporter promises not to do
                          (a family twice, HELP/TYPE missing or after its
                          samples, a histogram that is not cumulative, ...)
  promtool_check(text)    `promtool check metrics` on stdin: (rc, output)
  Exporter                one pigeon-exporter process serving HTTP on a free
                          port, with helpers to GET, parse and wait
  run_exporter(args)      one pigeon-exporter run to its end (--check, errors)
  FakeSysBroker           a minimal MQTT 5 server that accepts any login and
                          sends whatever $SYS messages a test gives it: the
                          only way to feed the real binary garbage, since
                          Mosquitto lets no client publish on $SYS

Under the ASan build (PIGEON_SANITIZE=1) pigeon-exporter is sanitized: every
run writes its reports to its own directory and a report fails the test.
Every wait is bounded.
"""

import http.client
import itertools
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import clientlib
import harness
from harness import SLOW, TIMEOUT, wait_until

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OWN_FAMILIES = {"pigeon_up", "pigeon_exporter_sys_age_seconds", "pigeon_exporter_connects_total"}

_runs = itertools.count(1)


def exporter_path():
    return str(harness.build_path("bin", "pigeon-exporter"))


# ---------------------------------------------------------------- the text format


class ExpositionError(AssertionError):
    pass


_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
_NAME_RE = re.compile(_NAME + r"\Z")
_LABEL_RE = re.compile(_LABEL + r"\Z")
# Go's strconv.ParseFloat as the text format uses it (no hex, no underscores).
_FLOAT_RE = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|Inf|inf)\Z|NaN\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def _float(text, where):
    if not _FLOAT_RE.match(text):
        raise ExpositionError(f"{where}: bad value {text!r}")
    return float(text)


def _unescape(s, where, quote):
    """A HELP text (quote False) or label value (quote True) with its escapes undone."""
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            if i + 1 == len(s):
                raise ExpositionError(f"{where}: a lone backslash")
            n = s[i + 1]
            if n == "\\":
                out.append("\\")
            elif n == "n":
                out.append("\n")
            elif n == '"' and quote:
                out.append('"')
            else:
                raise ExpositionError(f"{where}: bad escape \\{n}")
            i += 2
            continue
        if c == "\n" or (quote and c == '"'):
            raise ExpositionError(f"{where}: unescaped {c!r}")
        out.append(c)
        i += 1
    return "".join(out)


def _parse_labels(s, where):
    """'{a="x",b="y"}' at the start of s: (labels dict, rest of s)."""
    assert s.startswith("{")
    labels, i = {}, 1
    while True:
        if s[i:i + 1] == "}":
            return labels, s[i + 1:]
        m = re.compile(_LABEL).match(s, i)
        if not m or s[m.end():m.end() + 2] != '="':
            raise ExpositionError(f"{where}: bad label at {s[i:i + 30]!r}")
        name = m.group(0)
        if name.startswith("__"):
            raise ExpositionError(f"{where}: reserved label name {name}")
        j = m.end() + 2
        value = []
        while True:
            if j >= len(s):
                raise ExpositionError(f"{where}: unterminated label value")
            if s[j] == "\\":
                value.append(s[j:j + 2])
                j += 2
                continue
            if s[j] == '"':
                break
            value.append(s[j])
            j += 1
        if name in labels:
            raise ExpositionError(f"{where}: label {name} twice")
        labels[name] = _unescape("".join(value), where, True)
        i = j + 1
        if s[i:i + 1] == ",":
            i += 1
            if s[i:i + 1] == "}":
                raise ExpositionError(f"{where}: trailing comma")  # legal, never ours
        elif s[i:i + 1] != "}":
            raise ExpositionError(f"{where}: expected , or }} after a label")


class Family:
    def __init__(self, name):
        self.name = name
        self.type = None
        self.help = None
        self.samples = []  # (sample name, labels dict, value)

    def __repr__(self):
        return f"Family({self.name}, {self.type}, {len(self.samples)} samples)"


class Exposition:
    """A parsed /metrics page: families by name, in order."""

    def __init__(self, families):
        self.families = families

    def names(self):
        return set(self.families)

    def value(self, name, **labels):
        """The value of the series name{labels} (labels exactly), or None."""
        for fam in self.families.values():
            for sname, slabels, v in fam.samples:
                if sname == name and slabels == labels:
                    return v
        return None

    def series(self, name):
        """{frozenset(labels.items()): value} of every series named name."""
        return {frozenset(l.items()): v for fam in self.families.values()
                for sname, l, v in fam.samples if sname == name}

    def histogram(self, name, **labels):
        """{'buckets': [(le, count)], 'sum', 'count'} of name{labels}, or None."""
        fam = self.families.get(name)
        if fam is None:
            return None
        buckets = [(l["le"], v) for s, l, v in fam.samples if s == name + "_bucket"
                   and {k: x for k, x in l.items() if k != "le"} == labels]
        if not buckets:
            return None
        return {"buckets": buckets, "sum": self.value(name + "_sum", **labels),
                "count": self.value(name + "_count", **labels)}


def _family_of(sample, families, current):
    """The family a sample name belongs to (histograms: _bucket/_sum/_count)."""
    if current is not None:
        fam = families[current]
        if fam.type == "histogram":
            if sample in (current + "_bucket", current + "_sum", current + "_count"):
                return current
        elif sample == current:
            return current
    return sample


def parse_exposition(text):
    """
    Parses text (the body of /metrics) strictly; raises ExpositionError
    saying where it is wrong. Beyond the format itself it requires what
    pigeon-exporter promises: every family has HELP and TYPE, both once
    and before its samples; a family's lines are contiguous (each family
    once); no series twice; no blank or other comment lines; single spaces;
    counters not negative; histograms cumulative with a +Inf bucket equal to
    _count and a _sum.
    """
    if not text.endswith("\n"):
        raise ExpositionError("the text does not end with a newline")
    families = {}
    done = set()  # families whose lines are over
    current = None
    seen_series = set()
    for lineno, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {lineno} {line[:120]!r}"
        if line == "":
            raise ExpositionError(f"{where}: blank line")
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) < 3 or parts[0] != "#" or parts[1] not in ("HELP", "TYPE"):
                raise ExpositionError(f"{where}: not a HELP or TYPE line")
            name = parts[2]
            if not _NAME_RE.match(name):
                raise ExpositionError(f"{where}: bad metric name")
            if name != current:
                if name in done or name in families:
                    raise ExpositionError(f"{where}: family {name} appears twice")
                if current is not None:
                    done.add(current)
                current = name
                families[name] = Family(name)
            fam = families[name]
            if fam.samples:
                raise ExpositionError(f"{where}: {parts[1]} after the samples")
            if parts[1] == "HELP":
                if fam.help is not None:
                    raise ExpositionError(f"{where}: HELP twice")
                if len(parts) != 4 or parts[3] == "":
                    raise ExpositionError(f"{where}: empty HELP")
                fam.help = _unescape(parts[3], where, False)
            else:
                if fam.type is not None:
                    raise ExpositionError(f"{where}: TYPE twice")
                if len(parts) != 4 or parts[3] not in TYPES:
                    raise ExpositionError(f"{where}: bad TYPE")
                fam.type = parts[3]
            continue
        m = re.compile(_NAME).match(line)
        if not m:
            raise ExpositionError(f"{where}: no metric name")
        sname, rest = m.group(0), line[m.end():]
        labels = {}
        if rest.startswith("{"):
            labels, rest = _parse_labels(rest, where)
        if not rest.startswith(" ") or rest.startswith("  "):
            raise ExpositionError(f"{where}: expected one space before the value")
        fields = rest[1:].split(" ")
        if len(fields) > 2 or "" in fields:
            raise ExpositionError(f"{where}: bad value/timestamp")
        value = _float(fields[0], where)
        if len(fields) == 2 and not re.fullmatch(r"-?\d+", fields[1]):
            raise ExpositionError(f"{where}: bad timestamp")
        fname = _family_of(sname, families, current)
        if fname != current:
            raise ExpositionError(f"{where}: sample of {fname} outside its family's block "
                                  f"(HELP/TYPE missing, or the family split)")
        fam = families[fname]
        if fam.type is None or fam.help is None:
            raise ExpositionError(f"{where}: family {fname} without HELP or TYPE")
        if fam.type == "histogram" and sname == fname:
            raise ExpositionError(f"{where}: a histogram sample without a suffix")
        if fam.type == "histogram" and (sname.endswith("_bucket")) != ("le" in labels):
            raise ExpositionError(f"{where}: le belongs on _bucket samples only")
        key = (sname, frozenset(labels.items()))
        if key in seen_series:
            raise ExpositionError(f"{where}: series twice")
        seen_series.add(key)
        if fam.type == "counter" and (value < 0 or math.isnan(value)):
            raise ExpositionError(f"{where}: counter below 0 or NaN")
        fam.samples.append((sname, labels, value))
    for fam in families.values():
        if not fam.samples:
            raise ExpositionError(f"family {fam.name} has no samples")
        if fam.type == "histogram":
            _check_histogram(fam)
    return Exposition(families)


def _check_histogram(fam):
    groups = {}
    for sname, labels, v in fam.samples:
        base = frozenset((k, x) for k, x in labels.items() if k != "le")
        g = groups.setdefault(base, {"buckets": [], "sum": None, "count": None})
        if sname.endswith("_bucket"):
            g["buckets"].append((_float(labels["le"], fam.name + " le"), v))
        elif sname.endswith("_sum"):
            g["sum"] = v
        else:
            g["count"] = v
    for base, g in groups.items():
        where = f"histogram {fam.name}{dict(base)}"
        les = [le for le, _ in g["buckets"]]
        counts = [c for _, c in g["buckets"]]
        if not les or les[-1] != math.inf:
            raise ExpositionError(f"{where}: no +Inf bucket last")
        if les != sorted(set(les)):
            raise ExpositionError(f"{where}: le not strictly ascending: {les}")
        if counts != sorted(counts):
            raise ExpositionError(f"{where}: buckets not cumulative: {counts}")
        if g["count"] is None or g["sum"] is None:
            raise ExpositionError(f"{where}: _count or _sum missing")
        if g["count"] != counts[-1]:
            raise ExpositionError(f"{where}: _count {g['count']} != +Inf bucket {counts[-1]}")


def promtool_check(text):
    """`promtool check metrics` with text on stdin: (exit code, its output)."""
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=30)
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")


def promtool_problems(text):
    """promtool's complaints about text (a list; [] is clean: exit 0, nothing printed)."""
    rc, out = promtool_check(text)
    problems = [l.strip() for l in out.splitlines() if l.strip()]
    if rc != 0:
        problems.append(f"promtool exit code {rc}")
    return problems


# ---------------------------------------------------------------- the process


def _env(report_dir, extra=None):
    e = dict(os.environ)
    for k in ("PIGEON_TOKEN", "PIGEON_HOST", "PIGEON_PORT"):
        e.pop(k, None)
    e.update(clientlib.sanitizer_env(report_dir))
    e.update(extra or {})
    return e


def _reports(report_dir):
    return clientlib.sanitizer_reports(report_dir)


def broker_args(broker):
    return ["-h", broker.host, "-p", str(broker.port)]


def run_exporter(args, cwd, timeout=None, env=None):
    """Runs pigeon-exporter args to its end: CompletedProcess (text), sanitizer-checked."""
    cwd = Path(cwd)
    report_dir = cwd / f"exporter-run-{next(_runs)}"
    report_dir.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([exporter_path()] + [str(a) for a in args], cwd=report_dir,
                       env=_env(report_dir, env), capture_output=True, text=True,
                       timeout=timeout or 30 * SLOW)
    problems = _reports(report_dir)
    assert not problems, "\n".join(problems)
    return r


class Exporter:
    """
    A pigeon-exporter serving HTTP on a free 127.0.0.1 port (--listen
    127.0.0.1:0; the port from its "listening on" line). args: the rest of
    its command line (broker, token, ...). stop() asserts a clean exit 0
    on SIGTERM and no sanitizer report.
    """

    def __init__(self, workdir, args, name=None, env=None):
        self.name = name or f"exporter{next(_runs)}"
        self.dir = Path(workdir) / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.args = [exporter_path(), "--listen", "127.0.0.1:0"] + [str(a) for a in args]
        self.env = env
        self.err_path = self.dir / "stderr.log"
        self.proc = None
        self.port = None

    def start(self, timeout=10.0 * SLOW):
        self._err = open(self.err_path, "ab")
        self.proc = subprocess.Popen(self.args, cwd=self.dir, env=_env(self.dir, self.env),
                                     stdin=subprocess.DEVNULL, stdout=self._err,
                                     stderr=self._err)
        m = wait_until(lambda: re.search(r"listening on 127\.0\.0\.1:(\d+)", self.log_text())
                       or self.proc.poll() is not None, timeout)
        if not m or m is True:
            self.kill()
            raise AssertionError(f"{self.name} did not start listening:\n" + self.log_text())
        self.port = int(m.group(1))
        return self

    def log_text(self):
        try:
            return self.err_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # ---- HTTP

    def request(self, path, method="GET", body=None, timeout=5.0 * SLOW):
        """(status, headers dict with lower-case names, body bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def text(self):
        status, headers, body = self.request("/metrics")
        assert status == 200, f"/metrics answered {status}: {body[:500]!r}"
        assert headers.get("content-type") == METRICS_CONTENT_TYPE, headers
        return body.decode("utf-8")

    def metrics(self):
        """The parsed /metrics (strictly: a format error fails the test)."""
        text = self.text()
        try:
            return parse_exposition(text)
        except ExpositionError as e:
            raise AssertionError(f"{e}\n--- /metrics ---\n{text[:20000]}")

    def wait_metrics(self, predicate, timeout=TIMEOUT + 5, what="a condition"):
        """The first parsed /metrics for which predicate(exposition) is true (asserted)."""
        last = None

        def ok():
            nonlocal last
            last = self.metrics()
            return predicate(last)
        if not wait_until(ok, timeout, interval=0.1):
            shown = "\n".join(f"{s}{l} {v}" for f in (last.families.values() if last else ())
                              for s, l, v in f.samples if s.startswith(("pigeon", "mosquitto")))
            raise AssertionError(f"{self.name}: /metrics never showed {what} in {timeout}s:\n"
                                 + shown[-6000:] + "\n--- exporter log ---\n"
                                 + self.log_text()[-3000:])
        return last

    def wait_value(self, name, want, timeout=TIMEOUT + 5, **labels):
        """Waits until name{labels} == want (a number, or a predicate of the value or None)."""
        ok = want if callable(want) else (lambda v: v == want)
        return self.wait_metrics(lambda e: ok(e.value(name, **labels)), timeout,
                                 what=f"{name}{labels} {want!r}").value(name, **labels)

    def wait_up(self, timeout=TIMEOUT + 10):
        return self.wait_metrics(lambda e: e.value("pigeon_up") == 1
                                 and e.value("pigeon_messages_stored_total") is not None,
                                 timeout, what="pigeon_up 1 with pigeon's counters")

    # ---- lifecycle

    def stop(self, timeout=10.0 * SLOW):
        """SIGTERM; asserts exit 0 within timeout and no sanitizer report. Idempotent."""
        if self.proc is None:
            return
        problems = []
        rc = self.proc.poll()
        if rc is not None:
            problems.append(f"{self.name} died by itself with {rc}")
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                problems.append(f"{self.name} did not stop within {timeout}s of SIGTERM")
            else:
                if rc != 0:
                    problems.append(f"{self.name} exited with {rc} on SIGTERM")
        self.proc = None
        self._err.close()
        problems += _reports(self.dir)
        if problems:
            raise AssertionError("\n".join(problems) + "\n--- log ---\n" + self.log_text()[-4000:])

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


class ExporterPool:
    """Starts exporters in one directory and stops them all (checking each)."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.exporters = []

    def start(self, args, **kw):
        e = Exporter(self.workdir, args, **kw)
        self.exporters.append(e)
        return e.start()

    def stop_all(self):
        errors = []
        for e in self.exporters:
            try:
                e.stop()
            except AssertionError as ex:
                errors.append(str(ex))
        self.exporters.clear()
        if errors:
            raise AssertionError("\n\n".join(errors))


# ---------------------------------------------------------------- a fake $SYS source


def _varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(sock_file):
    mult, value = 1, 0
    for _ in range(4):
        b = sock_file.read(1)
        if not b:
            raise EOFError
        value += (b[0] & 0x7F) * mult
        if not b[0] & 0x80:
            return value
        mult *= 128
    raise ValueError("bad remaining length")


class FakeSysBroker:
    """
    A minimal MQTT 5 server (a thread per connection) on a free 127.0.0.1 port that
    CONNACKs any CONNECT, SUBACKs any SUBSCRIBE (granting QoS 0), then sends
    every (topic, payload bytes) of messages as a QoS 0 PUBLISH, and keeps
    answering PINGREQs. Enough of MQTT to feed pigeon-exporter whatever a
    test wants on $SYS, which a real Mosquitto refuses from clients.
    """

    def __init__(self, messages):
        self.messages = list(messages)
        self.host = "127.0.0.1"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.host, 0))
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.sent = threading.Event()  # every message written to a subscriber
        self.connects = 0
        self._conns = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._run_session, args=(conn,), daemon=True).start()

    def _run_session(self, conn):
        try:
            self._session(conn)
        except (EOFError, OSError, ValueError):
            pass
        finally:
            conn.close()

    def _session(self, conn):
        conn.settimeout(30)
        f = conn.makefile("rb")
        while not self._stop:
            h = f.read(1)
            if not h:
                return
            n = _read_varint(f)
            body = f.read(n)
            kind = h[0] >> 4
            if kind == 1:  # CONNECT
                self.connects += 1
                conn.sendall(bytes([0x20, 3, 0, 0, 0]))
            elif kind == 8:  # SUBSCRIBE: mid, properties, filters
                mid = body[:2]
                plen = body[2]  # a property length under 128 (libmosquitto sends 0)
                filters = body[3 + plen:]
                codes, i = bytearray(), 0
                while i < len(filters):
                    ln = struct.unpack(">H", filters[i:i + 2])[0]
                    i += 2 + ln + 1
                    codes.append(0)
                payload = mid + b"\x00" + bytes(codes)
                conn.sendall(bytes([0x90]) + _varint(len(payload)) + payload)
                for topic, data in self.messages:
                    t = topic.encode() if isinstance(topic, str) else topic
                    var = struct.pack(">H", len(t)) + t + b"\x00"
                    conn.sendall(bytes([0x31]) + _varint(len(var) + len(data)) + var + data)
                self.sent.set()
            elif kind == 12:  # PINGREQ
                conn.sendall(bytes([0xD0, 0]))
            elif kind == 14:  # DISCONNECT
                return

    def stop(self):
        """Closes the listening socket and the connection (the client sees it end)."""
        self._stop = True
        self.sock.close()
        for conn in self._conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)
