# SPDX-License-Identifier: Apache-2.0
"""
Integration test harness: the real mosquitto broker with pigeon's plugins
on a free 127.0.0.1 port, real MQTT clients (paho-mqtt), tokens minted by an
independent JWT implementation (PyJWT).

Every wait here is bounded; a broker that does not come up, does not stop,
dies, or leaves a sanitizer report fails the test that used it.

Environment:
  PIGEON_BUILD_DIR  the CMake build dir holding lib/pigeon_*.so and bin/ (default: <repo>/build)
  PIGEON_MOSQUITTO  the broker binary (default /usr/sbin/mosquitto, Debian 12's 2.0.11;
                    scripts/test.sh also runs the suite with 2.0.21 from
                    scripts/fetch-mosquitto.sh)
  PIGEON_SANITIZE   1 when that build has ASan+UBSan: mosquitto then runs with
                    libasan preloaded and report files are checked on stop.
"""

import base64
import functools
import glob
import json
import os
import pwd
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import jwt
import paho.mqtt.client as paho
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("PIGEON_BUILD_DIR", REPO / "build")).resolve()
MOSQUITTO = os.environ.get("PIGEON_MOSQUITTO") or "/usr/sbin/mosquitto"


@functools.lru_cache(maxsize=None)
def mosquitto_version():
    """The broker's version as a tuple, e.g. (2, 0, 21), from `mosquitto -h`."""
    out = subprocess.run([MOSQUITTO, "-h"], capture_output=True, text=True).stdout
    m = re.search(r"mosquitto version (\d+)\.(\d+)\.(\d+)", out)
    if not m:
        raise RuntimeError(f"{MOSQUITTO} -h printed no version: {out[:200]!r}")
    return tuple(int(x) for x in m.groups())
SANITIZE = os.environ.get("PIGEON_SANITIZE", "") == "1"
# Sanitized plugins are slower to load and run; scale every timeout.
SLOW = 3.0 if SANITIZE else 1.0
TIMEOUT = 5.0 * SLOW
LSAN_SUPPRESSIONS = Path(__file__).resolve().parent / "lsan.supp"

# Reason codes the tests assert on.
CONNACK_OK = 0
CONNACK_NOT_AUTHORIZED_V5 = 0x87
CONNACK_NOT_AUTHORIZED_V3 = 5
SUBACK_REFUSED_V5 = 0x87
SUBACK_REFUSED_V3 = 0x80
PUBACK_OK = 0x00
PUBACK_NO_SUBSCRIBERS = 0x10
PUBACK_NOT_AUTHORIZED = 0x87

SANITIZER_LOG_RE = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|UndefinedBehaviorSanitizer"
)


def build_path(*parts):
    return BUILD_DIR.joinpath(*parts)


def plugin_path(name):
    """A plugin by file name (pigeon_auth.so) from the build, or a path as given."""
    return str(name) if "/" in str(name) else str(build_path("lib", name))


@functools.lru_cache(maxsize=None)
def libasan_path():
    return subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True,
                          check=True).stdout.strip()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=TIMEOUT, interval=0.02):
    """Polls predicate until it returns a true value (returned) or timeout (None)."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


_LEAK_BLOCK_RE = re.compile(r"^(?:Direct|Indirect) leak of .*?(?=^(?:Direct|Indirect) leak|^SUMMARY|\Z)",
                            re.M | re.S)
_FRAME_RE = re.compile(r"^\s+#(\d+) 0x[0-9a-f]+\s+(.*)$", re.M)
_LIBC_START = ("__libc_start_call_main", "__libc_start_main_impl", "_start")


def only_broker_leaks(report):
    """
    True if report is a LeakSanitizer report whose every leak was allocated
    by the broker binary alone: each frame but the allocator's is in the
    mosquitto executable or libc's start-up. Mosquitto exits without
    freeing its configuration when startup fails; 2.0.11's leaks are
    suppressed by name (lsan.supp), but the 2.0.21 binary is stripped, so
    for a broker that exits at start they are recognised by module instead.
    Used for startup failures only: while a broker runs, memory the broker
    allocated can be pigeon's to free.
    """
    if "ERROR: LeakSanitizer" not in report or "ERROR: AddressSanitizer" in report:
        return False
    blocks = [m.group(0) for m in _LEAK_BLOCK_RE.finditer(report)]
    if not blocks:
        return False
    broker = os.path.realpath(MOSQUITTO)
    for block in blocks:
        for num, rest in _FRAME_RE.findall(block):
            if num == "0":
                continue  # the sanitizer's allocator interceptor
            m = re.fullmatch(r"\((.+)\+0x[0-9a-f]+\)", rest.strip())
            if m and os.path.realpath(m.group(1)) == broker:
                continue
            if rest.startswith("in ") and rest.split()[1] in _LIBC_START:
                continue
            return False
    return True


class BrokerError(Exception):
    pass


# Brokers started and not yet stopped on purpose: checked after every test so
# that a crash is blamed on the test that caused it (see conftest.py).
RUNNING = set()


class Broker:
    """
    One mosquitto process with its own directory (config, logs, sanitizer
    reports). plugins is a list of (plugin, options): plugin a file name in
    the build's lib/ or a path, options a dict or a list of (key, value)
    pairs written as plugin_opt_<key> <value> lines under it. extra_config
    lines are appended verbatim. env: extra environment variables for the
    broker process. listeners: more listeners besides the main one, each a
    list of option lines written under its own `listener <port> 127.0.0.1`
    (e.g. ["certfile c.pem", "keyfile k.pem"] for TLS); each gets a free
    port, in self.listener_ports (same order), and start() waits for all.

    Mosquitto's own log goes to broker.log (log_dest file is flushed line by
    line; log_dest stdout is block-buffered when stdout is a file, so it is
    useless for waiting on a line). stdout/stderr go to mosquitto.out: that
    is where errors before the log is opened, and sanitizer output that could
    not reach its log_path, end up.
    """

    def __init__(self, workdir, plugins, extra_config=(), name="broker", env=None, listeners=()):
        self.dir = Path(workdir) / name
        self.extra_env = dict(env or {})
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.plugins = list(plugins)
        self.extra_config = list(extra_config)
        self.listeners = [list(lines) for lines in listeners]
        self.host = "127.0.0.1"
        self.port = None
        self.listener_ports = []
        self.proc = None
        self.returncode = None
        self.conf_path = self.dir / "mosquitto.conf"
        self.log_path = self.dir / "broker.log"
        self.out_path = self.dir / "mosquitto.out"
        self._stopping = False
        self._exited_at_start = False
        self._out = None
        # True: the broker keeps Python's ignored SIGPIPE and SIGXFSZ, so a
        # file size limit (RLIMIT_FSIZE, set with resource.prlimit on
        # self.proc.pid) makes its writes fail with EFBIG instead of killing
        # it: how the fault tests make a disk "full".
        self.keep_ignored_signals = False

    # ---- configuration

    def _config_text(self):
        lines = [
            "# written by tests/integration/harness.py",
            "per_listener_settings false",
            "allow_anonymous false",
            "set_tcp_nodelay true",
            f"listener {self.port} 127.0.0.1",
            f"log_dest file {self.log_path}",
            "log_type all",
        ]
        if os.geteuid() == 0:
            # As root mosquitto would switch to the 'mosquitto' user, which
            # cannot read pytest's 0700 tmp dirs (keys, revocation file).
            lines.append("user " + pwd.getpwuid(0).pw_name)
        for plugin, opts in self.plugins:
            lines.append(f"plugin {plugin_path(plugin)}")
            items = opts.items() if isinstance(opts, dict) else opts
            for k, v in items:
                lines.append(f"plugin_opt_{k} {v}")
        lines.extend(self.extra_config)
        # After the plugins and extra_config: a listener's options (certfile,
        # keyfile, ...) are the lines that follow its `listener` line.
        for port, opts in zip(self.listener_ports, self.listeners):
            lines.append(f"listener {port} 127.0.0.1")
            lines.extend(opts)
        return "\n".join(lines) + "\n"

    def _env(self):
        env = dict(os.environ)
        env.update(self.extra_env)
        if SANITIZE:
            # mosquitto itself is not instrumented, so the ASan runtime must be
            # preloaded for the sanitized plugins to load.
            #
            # Leaks are checked (detect_leaks=1): mosquitto 2.0.11 has two
            # leaks of its own, suppressed by name in lsan.supp. Its binary
            # has no frame pointers, so fast_unwind_on_malloc=0 (DWARF
            # unwinding) is what lets a leak's stack reach those names.
            # PIGEON_ASAN_OPTIONS appends options (e.g. detect_leaks=0).
            env["LD_PRELOAD"] = libasan_path()
            extra = os.environ.get("PIGEON_ASAN_OPTIONS")
            env["ASAN_OPTIONS"] = (
                f"log_path={self.dir}/asan:detect_leaks=1:abort_on_error=1"
                ":fast_unwind_on_malloc=0" + (":" + extra if extra else "")
            )
            env["LSAN_OPTIONS"] = f"suppressions={LSAN_SUPPRESSIONS}:print_suppressions=0"
            env["UBSAN_OPTIONS"] = (
                f"print_stacktrace=1:halt_on_error=1:log_path={self.dir}/ubsan"
            )
        return env

    # ---- lifecycle

    def start(self, expect_exit=False, timeout=None, port=None):
        """
        Starts mosquitto and waits until its port accepts connections. With
        expect_exit, waits instead for it to exit (a config error) and
        returns the exit code. Bounded by timeout (10 s, scaled). port: try
        this one first (a restart on the same port), else a free one.
        """
        timeout = timeout or 10.0 * SLOW
        previous = list(self.listener_ports)
        for attempt in range(3):
            self.port = port if (port and attempt == 0) else free_port()
            self.listener_ports = [
                previous[i] if (port and attempt == 0 and i < len(previous)) else free_port()
                for i in range(len(self.listeners))]
            self.conf_path.write_text(self._config_text())
            self._out = open(self.out_path, "ab")
            self.proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=self._out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                env=self._env(),
                restore_signals=not self.keep_ignored_signals,
            )
            self.returncode = None
            self._stopping = False
            if expect_exit:
                self._exited_at_start = True
                try:
                    self.returncode = self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.kill9()
                    raise BrokerError(f"{self.name}: expected to exit at start, still running\n"
                                      + self.log_text())
                self._stopping = True
                self._out.close()
                self.check_sanitizers()
                return self.returncode
            RUNNING.add(self)
            deadline = time.monotonic() + timeout
            waiting = [self.port] + self.listener_ports
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    socket.create_connection((self.host, waiting[0]), timeout=0.5).close()
                    waiting.pop(0)
                    if not waiting:
                        return self
                except OSError:
                    time.sleep(0.02)
            RUNNING.discard(self)
            if self.proc.poll() is None:
                self.kill9()
                raise BrokerError(f"{self.name}: port {waiting[0]} not open after {timeout}s\n"
                                  + self.log_text())
            self._stopping = True  # it is over: stop() has nothing more to say
            self.returncode = self.proc.returncode
            self._out.close()
            # Someone took the port between free_port() and bind: try another.
            if "Address already in use" in self.log_text() and attempt < 2:
                continue
            self.check_sanitizers()
            raise BrokerError(f"{self.name}: exited with {self.returncode} at start\n"
                              + self.log_text())
        raise BrokerError(f"{self.name}: no free port")

    def restart(self):
        """Starts again (after stop() or kill9()) in the same dir, on the same port if free."""
        assert not self.alive(), "restart() of a running broker"
        return self.start(port=self.port)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def reload(self):
        """SIGHUP: mosquitto re-reads its config and plugins get MOSQ_EVT_RELOAD."""
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, timeout=None):
        """
        SIGTERM and wait (bounded). Raises AssertionError if the broker had
        died on its own, exited non-zero, would not stop, or left a
        sanitizer report. Idempotent.
        """
        if self.proc is None or self._stopping:
            return
        self._stopping = True
        RUNNING.discard(self)
        problems = []
        rc = self.proc.poll()
        if rc is not None:
            problems.append(f"{self.name} died unexpectedly with exit code {rc}")
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout or 10.0 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait(5)
                problems.append(f"{self.name} did not stop within its timeout on SIGTERM")
            if rc != 0:
                problems.append(f"{self.name} exited with {rc} on SIGTERM")
        self.returncode = rc
        if self._out:
            self._out.close()
        problems.extend(self.sanitizer_problems())
        if problems:
            raise AssertionError("\n".join(problems) + "\n--- log ---\n" + self.log_text()[-6000:])

    def kill9(self):
        """SIGKILL, as a crash would; no checks (the caller wanted it dead)."""
        self._stopping = True
        RUNNING.discard(self)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None:
            self.returncode = self.proc.returncode
        if self._out:
            self._out.close()

    # ---- sanitizers and liveness

    def sanitizer_problems(self):
        problems = []
        for f in sorted(glob.glob(str(self.dir / "asan.*")) + glob.glob(str(self.dir / "ubsan.*"))):
            report = Path(f).read_text(errors="replace")
            if self._exited_at_start and only_broker_leaks(report):
                continue
            problems.append(f"sanitizer report {f}:\n" + report[:20000])
        out = self.out_path.read_text(errors="replace") if self.out_path.exists() else ""
        if SANITIZER_LOG_RE.search(out):
            problems.append("sanitizer error in mosquitto output:\n" + out[-20000:])
        return problems

    def check_sanitizers(self):
        problems = self.sanitizer_problems()
        if problems:
            raise AssertionError("\n".join(problems))

    def health_problems(self):
        """Why this broker, which should be running, is not healthy ([] if it is)."""
        problems = self.sanitizer_problems()
        if not self.alive():
            problems.insert(0, f"{self.name} died with exit code {self.proc.poll()}")
        return problems

    # ---- log

    def log_bytes(self, offset=0):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read()
        except FileNotFoundError:
            return b""

    def log_text(self):
        """Everything mosquitto printed: stdout/stderr, then its log file."""
        out = self.out_path.read_bytes() if self.out_path.exists() else b""
        return (out + self.log_bytes()).decode("utf-8", "replace")

    def mark(self):
        """A position in the log; log_since(mark) is what was logged after it."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, mark):
        return self.log_bytes(mark).decode("utf-8", "replace")

    def wait_log(self, pattern, since=0, timeout=TIMEOUT):
        """Waits for a line matching regex pattern after since; the match or None."""
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.log_since(since)), timeout)

    def expect_log(self, pattern, since=0, timeout=TIMEOUT):
        m = self.wait_log(pattern, since, timeout)
        assert m, (f"{self.name}: no log line matching {pattern!r}; log since mark:\n"
                   + self.log_since(since)[-4000:])
        return m


# ---------------------------------------------------------------- tokens

OMIT = object()  # a claim value meaning "leave this claim out"


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Keys:
    """
    Keys for one test session, written to dir: an HS256 secret, a P-256 and
    an Ed25519 key pair (PKCS#8 private PEMs for pigeon-token mint, SPKI
    public PEMs for plugin_opt_jwt_public_key_file), and public.pem holding
    both public keys.
    """

    def __init__(self, dir):
        self.dir = Path(dir)
        self.secret = os.urandom(48)
        self.secret_file = self.dir / "jwt.secret"
        self.secret_file.write_bytes(self.secret)
        self.es256 = ec.generate_private_key(ec.SECP256R1())
        self.eddsa = ed25519.Ed25519PrivateKey.generate()
        self.es256_key_file = self._write_private("es256.key.pem", self.es256)
        self.eddsa_key_file = self._write_private("ed25519.key.pem", self.eddsa)
        self.es256_pub_file = self._write_public("es256.pub.pem", self.es256)
        self.eddsa_pub_file = self._write_public("ed25519.pub.pem", self.eddsa)
        self.public_file = self.dir / "public.pem"
        self.public_file.write_bytes(self.es256_pub_file.read_bytes()
                                     + self.eddsa_pub_file.read_bytes())

    def _write_private(self, name, key):
        p = self.dir / name
        p.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return p

    def _write_public(self, name, key):
        p = self.dir / name
        p.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return p

    def signing_key(self, alg):
        return {"HS256": self.secret, "ES256": self.es256, "EdDSA": self.eddsa}[alg]

    def public_key(self, alg):
        return {
            "HS256": self.secret,
            "ES256": self.es256.public_key(),
            "EdDSA": self.eddsa.public_key(),
        }[alg]

    def sign(self, claims, alg="HS256", headers=None):
        """PyJWT-encodes claims as they are (no defaults added)."""
        return jwt.encode(claims, self.signing_key(alg), algorithm=alg, headers=headers)

    def token(self, sub="alice", alg="HS256", ttl=600, **claims):
        """
        A token for sub with iat = now and exp = now + ttl, plus claims
        (dev, role, jti, nbf, ...). A claim given as OMIT is left out, so
        token(sub=OMIT) or token(exp=OMIT) make incomplete tokens.
        """
        now = int(time.time())
        body = {"sub": sub, "iat": now, "exp": now + ttl}
        body.update(claims)
        return self.sign({k: v for k, v in body.items() if v is not OMIT}, alg)

    def auth_options(self, algs="HS256", **extra):
        """plugin_opt_* for pigeon_auth.so serving algs, plus extra options."""
        opts = {"jwt_algs": algs}
        if "HS256" in algs:
            opts["jwt_secret_file"] = self.secret_file
        if "ES256" in algs or "EdDSA" in algs:
            opts["jwt_public_key_file"] = self.public_file
        opts.update(extra)
        return opts


def unsigned_token(claims, header=None):
    """A JWS with alg none (or another header) and an empty signature."""
    header = header or {"alg": "none", "typ": "JWT"}
    return b64url(json.dumps(header)) + "." + b64url(json.dumps(claims)) + "."


def replace_claims(token, claims):
    """token's header and signature around other claims: a tampered token."""
    h, _, s = token.split(".")
    return h + "." + b64url(json.dumps(claims)) + "." + s


# ---------------------------------------------------------------- clients


class _Paho(paho.Client):
    """paho 1.6 drops the PUBACK reason code and PINGRESP; keep both."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.pigeon = None  # the MqttClient that owns this

    def _handle_pubackcomp(self, cmd):
        pkt = self._in_packet
        if cmd == "PUBACK" and len(pkt["packet"]) >= 2:
            mid = int.from_bytes(pkt["packet"][:2], "big")
            code = pkt["packet"][2] if pkt["remaining_length"] > 2 else 0
            self.pigeon._event("puback", mid, code)
        return super()._handle_pubackcomp(cmd)

    def _handle_pingresp(self):
        rc = super()._handle_pingresp()
        self.pigeon._event("pingresp", None, None)
        return rc


def _code(rc):
    """An int from paho's ReasonCodes (MQTT 5) or int (3.1.1)."""
    return rc.value if hasattr(rc, "value") else int(rc)


class MqttClient:
    """
    A synchronous face on a paho client running its network loop in a
    thread. Every call waits for its acknowledgement, bounded by timeout.
    It never reconnects on its own (a reconnect would be a second login,
    which matters to the failed-login limit).
    """

    def __init__(self, broker, client_id, username=None, password=None, protocol=5,
                 bind_address=None, keepalive=30):
        self.broker = broker
        self.client_id = client_id
        self.protocol = protocol
        self.bind_address = bind_address
        self.keepalive = keepalive
        v = paho.MQTTv5 if protocol == 5 else paho.MQTTv311
        self.c = _Paho(
            client_id=client_id,
            clean_session=None if protocol == 5 else True,
            protocol=v,
            reconnect_on_failure=False,
        )
        self.c.pigeon = self
        if username is not None or password is not None:
            self.c.username_pw_set(username, password)
        self.cv = threading.Condition()
        self.connack = None
        self.disconnects = []  # reason codes, in order
        self.subacks = {}
        self.pubacks = {}
        self.pingresps = 0
        self.messages = []
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = self._on_message
        self._started = False

    # paho callbacks (network thread)

    def _event(self, kind, key, value):
        with self.cv:
            if kind == "puback":
                self.pubacks[key] = value
            elif kind == "pingresp":
                self.pingresps += 1
            self.cv.notify_all()

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        with self.cv:
            self.connack = _code(rc)
            self.cv.notify_all()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        with self.cv:
            self.disconnects.append(_code(rc) if rc is not None else None)
            self.cv.notify_all()

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        with self.cv:
            self.subacks[mid] = [_code(g) for g in granted]
            self.cv.notify_all()

    def _on_message(self, client, userdata, msg):
        with self.cv:
            self.messages.append(msg)
            self.cv.notify_all()

    def _wait(self, predicate, timeout):
        with self.cv:
            return self.cv.wait_for(predicate, timeout)

    # operations (test thread)

    def connect(self, timeout=TIMEOUT):
        """
        Sends CONNECT and returns the CONNACK reason code (0 = accepted), or
        None if the connection closed without one.
        """
        kw = {"keepalive": self.keepalive, "bind_address": self.bind_address or ""}
        if self.protocol == 5:
            kw["clean_start"] = True
        self.c.connect(self.broker.host, self.broker.port, **kw)
        self.c.loop_start()
        self._started = True
        self._wait(lambda: self.connack is not None or self.disconnects, timeout)
        return self.connack

    @property
    def connected(self):
        return self.connack == 0 and not self.disconnects and self.c.is_connected()

    def subscribe(self, filters, qos=1, timeout=TIMEOUT):
        """Subscribes to one filter or a list; returns the SUBACK codes (a list)."""
        if isinstance(filters, str):
            filters = [filters]
        rc, mid = self.c.subscribe([(f, qos) for f in filters])
        assert rc == paho.MQTT_ERR_SUCCESS, f"subscribe not sent: {rc}"
        assert self._wait(lambda: mid in self.subacks, timeout), \
            f"{self.client_id}: no SUBACK for {filters} within {timeout}s"
        return self.subacks[mid]

    def publish(self, topic, payload=b"x", qos=1, retain=False, timeout=TIMEOUT):
        """Publishes QoS 1 and returns the PUBACK reason code (always 0 on 3.1.1)."""
        assert qos == 1, "publish() waits for a PUBACK: QoS 1 only"
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        assert info.rc == paho.MQTT_ERR_SUCCESS, f"publish not sent: {info.rc}"
        assert self._wait(lambda: info.mid in self.pubacks, timeout), \
            f"{self.client_id}: no PUBACK for {topic} within {timeout}s"
        return self.pubacks[info.mid]

    def ping(self, timeout=TIMEOUT):
        """Sends a PINGREQ; True if the PINGRESP came back in time."""
        with self.cv:
            before = self.pingresps
        self.c._send_pingreq()
        return self._wait(lambda: self.pingresps > before, timeout)

    def wait_message(self, topic=None, timeout=TIMEOUT):
        """The first received message (on topic, if given), or None."""
        def find():
            for m in self.messages:
                if topic is None or m.topic == topic:
                    return m
            return None
        with self.cv:
            self.cv.wait_for(lambda: find() is not None, timeout)
            return find()

    def wait_disconnected(self, timeout=TIMEOUT):
        """True once the connection has been closed (by the broker or us)."""
        return self._wait(lambda: bool(self.disconnects), timeout)

    def abort(self):
        """Drops the TCP connection without a DISCONNECT, as a crashed client would."""
        sock = self.c.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the network thread sees EOF and ends
            except OSError:
                pass
        self.c.loop_stop()
        self._started = False
        if sock is not None:
            sock.close()

    def close(self):
        if self._started:
            if self.c.is_connected():
                self.c.disconnect()
            self.c.loop_stop()
            self._started = False


class ClientPool:
    """Creates MqttClients and closes them all at the end of a test or module."""

    def __init__(self):
        self.clients = []

    def new(self, broker, client_id, username=None, password=None, **kw):
        c = MqttClient(broker, client_id, username, password, **kw)
        self.clients.append(c)
        return c

    def connect(self, broker, uid, device, token, client_id=None, username=None, **kw):
        """
        A client logging in the pigeon way: username uid, password token,
        client id <uid>:<device> (overridable). Returns (client, CONNACK code).
        """
        c = self.new(
            broker,
            client_id if client_id is not None else f"{uid}:{device}",
            username if username is not None else uid,
            token,
            **kw,
        )
        return c, c.connect()

    def close_all(self):
        for c in reversed(self.clients):
            c.close()
        self.clients.clear()


class BrokerPool:
    """Starts brokers in one directory and stops them all, failing on any problem."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.brokers = []

    def start(self, plugins, extra_config=(), name=None, env=None, listeners=()):
        name = name or f"broker{len(self.brokers)}"
        b = Broker(self.workdir, plugins, extra_config, name, env=env, listeners=listeners)
        self.brokers.append(b)
        b.start()
        return b

    def start_auth(self, auth_options, extra_config=(), name=None):
        """A broker with pigeon_auth.so only."""
        return self.start([("pigeon_auth.so", auth_options)], extra_config, name)

    def run_expecting_exit(self, plugins, extra_config=(), name=None):
        """Starts a broker that must refuse to start; returns (exit code, output)."""
        name = name or f"broker{len(self.brokers)}"
        b = Broker(self.workdir, plugins, extra_config, name)
        self.brokers.append(b)
        rc = b.start(expect_exit=True)
        return rc, b.log_text()

    def stop_all(self):
        errors = []
        for b in self.brokers:
            try:
                b.stop()
            except AssertionError as e:
                errors.append(str(e))
        self.brokers.clear()
        if errors:
            raise AssertionError("\n\n".join(errors))
