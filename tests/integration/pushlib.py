# SPDX-License-Identifier: Apache-2.0
"""
Helpers for the pigeon_push integration tests (test_fakepush.py,
test_push*.py), on top of harness.py and inboxlib.py:

  make_ca(dir)              a throwaway CA and a server certificate for
                            IP:127.0.0.1 and DNS:localhost signed by it
  make_apns_key(dir)        an APNs auth key (.p8) and its public half
  make_fcm_account(dir, token_url)  a Google service-account JSON and its public key
  make_webhook_secret(dir)  the webhook's HMAC secret, as a file
  FakeProvider              one fake provider (fakepush/fake_provider.js, a
                            node process) and its control API
  FakePool                  starts fakes with their keys for one test and
                            stops them all after it (the `fakes` fixture)
  push_plugin_opts(...)     the pigeon_push.so plugin entry for a broker
  push_plugins(...), start_push_broker(...)  auth + inbox + push brokers

The fakes check what the real providers check and record every push request
with their verdict (fakepush/fake_provider.js says how); a test asserts on
what the broker sent and what it was told. Every wait here is bounded.
"""

import datetime
import ipaddress
import json
import re
import os
import secrets
import select
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import harness
import inboxlib
from harness import SLOW, TIMEOUT

FAKE_PROVIDER = Path(__file__).resolve().parent / "fakepush" / "fake_provider.js"
NODE = os.environ.get("PIGEON_NODE") or "node"

KINDS = ("apns", "fcm", "huawei", "xiaomi", "webhook")
FCM_PROJECT = "pigeon-test"
FCM_CLIENT_EMAIL = "pigeon-push@pigeon-test.iam.gserviceaccount.com"
HUAWEI_APP_ID = "104000001"
APNS_TOPIC = "com.example.pigeon"
XIAOMI_PACKAGE = "com.example.pigeon"


def push_plugin_path():
    """pigeon_push.so in the build (lib/, where CMake puts every plugin; else plugins/push/)."""
    for p in (harness.build_path("lib", "pigeon_push.so"),
              harness.build_path("plugins", "push", "pigeon_push.so")):
        if p.exists():
            return str(p)
    return str(harness.build_path("lib", "pigeon_push.so"))


def have_push_plugin():
    return Path(push_plugin_path()).exists()


# ---------------------------------------------------------------- keys and certificates


def _pem_private(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_public(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


class CA(NamedTuple):
    ca_file: Path  # the CA certificate (plugin_opt_ca_file, curl --cacert)
    cert: Path     # the server certificate the fakes present
    key: Path      # its private key


def make_ca(dir):
    """A throwaway CA and a server certificate for IP:127.0.0.1 + DNS:localhost it signed."""
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pigeon test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = CA(dir / "ca.pem", dir / "server.pem", dir / "server.key")
    paths.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(_pem_private(key))
    return paths


def _key_id(n=10):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(n))


def make_apns_key(dir):
    """An APNs auth key: (.p8 path (PKCS#8 PEM P-256), public PEM path, key_id, team_id)."""
    dir = Path(dir)
    key = ec.generate_private_key(ec.SECP256R1())
    key_id, team_id = _key_id(), _key_id()
    p8 = dir / f"AuthKey_{key_id}.p8"
    pub = dir / f"apns_{key_id}.pub.pem"
    p8.write_bytes(_pem_private(key))
    pub.write_bytes(_pem_public(key))
    return p8, pub, key_id, team_id


def _fcm_key(dir):
    """The service account's RSA key, made once per dir: (private PEM bytes, public PEM path)."""
    dir = Path(dir)
    priv, pub = dir / "fcm_account.key.pem", dir / "fcm_account.pub.pem"
    if not priv.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        priv.write_bytes(_pem_private(key))
        pub.write_bytes(_pem_public(key))
    return priv.read_bytes(), pub


def make_fcm_account(dir, token_url):
    """A Google service-account JSON for token_url: (its path, the public PEM path)."""
    dir = Path(dir)
    priv, pub = _fcm_key(dir)
    account = {
        "type": "service_account",
        "project_id": FCM_PROJECT,
        "private_key_id": secrets.token_hex(20),
        "private_key": priv.decode(),
        "client_email": FCM_CLIENT_EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_url,
    }
    path = dir / "fcm_service_account.json"
    path.write_text(json.dumps(account, indent=2))
    return path, pub


def make_webhook_secret(dir):
    """The webhook secret: (file path, the secret as text; printable, a config-line value)."""
    secret = secrets.token_urlsafe(32)
    path = Path(dir) / "webhook.secret"
    path.write_bytes(secret.encode())
    return path, secret


# ---------------------------------------------------------------- the fake providers


class FakeError(Exception):
    pass


class FakeProvider:
    """
    One fake provider process. kind: apns, fcm, huawei, xiaomi or webhook;
    args: its command-line options (without --kind/--cert/--key/--port);
    creds: what the broker needs to talk to it (key files, ids), kept for
    push_plugin_opts. Its stderr (one line per request) goes to <dir>/fake-<name>.log.
    """

    def __init__(self, kind, dir, ca, args=(), creds=None, name=None):
        assert kind in KINDS, kind
        self.kind = kind
        self.dir = Path(dir)
        self.ca = ca
        self.name = name or kind
        self.args = list(args)
        self.creds = dict(creds or {})
        self.proc = None
        self.port = None
        self.control = None
        self.log_path = self.dir / f"fake-{self.name}.log"

    def start(self, timeout=10.0 * SLOW):
        cmd = [NODE, str(FAKE_PROVIDER), "--kind", self.kind, "--cert", str(self.ca.cert),
               "--key", str(self.ca.key), "--port", "0"] + [str(a) for a in self.args]
        self._log = open(self.log_path, "ab")
        # stdin is a pipe the fake watches: it exits when this process goes away.
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log)
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                break
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                c = os.read(self.proc.stdout.fileno(), 4096)
                if not c:
                    break
                line += c
        if not line.endswith(b"\n"):
            self.stop()
            raise FakeError(f"fake {self.name} did not start: {line!r}\n" + self.log_text())
        info = json.loads(line)
        self.port, self.control = info["port"], info["control"]
        return self

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    @property
    def token_url(self):
        """The OAuth token endpoint (FCM, Huawei)."""
        return self.url + {"fcm": "/token", "huawei": "/oauth2/v3/token"}.get(self.kind, "")

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except FileNotFoundError:
            return ""

    # ---- control API

    def _call(self, method, path, body=None, timeout=5.0 * SLOW):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.control}{path}", data=data,
                                     method=method, headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise FakeError(f"fake {self.name}: {method} {path}: {e.code} {e.read()!r}")

    def set_mode(self, mode, count=None, retry_after=None, delay_ms=None):
        body = {"mode": mode}
        if count is not None:
            body["count"] = count
        if retry_after is not None:
            body["retry_after"] = retry_after
        if delay_ms is not None:
            body["delay_ms"] = delay_ms
        return self._call("POST", "/mode", body)

    def requests(self):
        """Every push request so far (dicts: path, method, headers, body, json, verdict, ...)."""
        return self._call("GET", "/requests")

    def token_requests(self):
        return self._call("GET", "/token_requests")

    def stats(self):
        return self._call("GET", "/stats")

    def reset(self):
        return self._call("POST", "/reset")

    def wait_requests(self, n, timeout=TIMEOUT, predicate=None):
        """
        The recorded push requests (those predicate accepts, if given) once
        there are at least n of them; asserts that happens within timeout.
        """
        got = []

        def enough():
            nonlocal got
            got = [r for r in self.requests() if predicate is None or predicate(r)]
            return len(got) >= n
        if not harness.wait_until(enough, timeout, interval=0.05):
            raise AssertionError(
                f"fake {self.name}: {len(got)} of {n} push requests within {timeout}s: "
                + json.dumps([(r["path"], r["verdict"]) for r in got])[:3000]
                + "\n--- fake log ---\n" + self.log_text()[-3000:])
        return got

    def delivered(self):
        """The push requests the fake accepted (verdict ok)."""
        return [r for r in self.requests() if r["verdict"]["reason"] == "ok"]

    def wait_delivered(self, n, timeout=TIMEOUT):
        return self.wait_requests(n, timeout, predicate=lambda r: r["verdict"]["reason"] == "ok")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc:
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe:
                    pipe.close()
        if getattr(self, "_log", None):
            self._log.close()


class FakePool:
    """Makes fakes with fresh credentials in dir, and stops them all (the `fakes` fixture)."""

    def __init__(self, dir, ca=None):
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = ca or make_ca(self.dir / "ca")
        self.fakes = []

    def start(self, kind, name=None, like=None, **kw):
        """
        A started fake of kind, with credentials made for it (fake.creds),
        or like's credentials (an APNs sandbox next to its production fake).
        """
        name = name or f"{kind}{len(self.fakes)}"
        d = self.dir / name
        d.mkdir(parents=True, exist_ok=True)
        args, creds = [], {}
        if kind == "apns":
            if like is not None:
                c = like.creds
                p8, pub, key_id, team_id = c["key_file"], c["pub"], c["key_id"], c["team_id"]
            else:
                p8, pub, key_id, team_id = make_apns_key(d)
            args = ["--apns-key-pub", pub, "--apns-key-id", key_id, "--apns-team-id", team_id]
            if kw.get("topic_prefix"):
                args += ["--apns-topic-prefix", kw["topic_prefix"]]
            creds = dict(key_file=p8, pub=pub, key_id=key_id, team_id=team_id)
        elif kind == "fcm":
            _, pub = _fcm_key(d)
            args = ["--fcm-account-pub", pub, "--fcm-client-email", FCM_CLIENT_EMAIL,
                    "--fcm-project", FCM_PROJECT]
            creds = dict(pub=pub, project=FCM_PROJECT, client_email=FCM_CLIENT_EMAIL)
        elif kind == "huawei":
            creds = dict(app_id=HUAWEI_APP_ID, client_secret=secrets.token_hex(16))
            args = ["--huawei-app-id", creds["app_id"], "--huawei-client-secret",
                    creds["client_secret"]]
        elif kind == "xiaomi":
            creds = dict(app_secret=secrets.token_urlsafe(18))
            args = ["--xiaomi-app-secret", creds["app_secret"]]
        elif kind == "webhook":
            path, secret = make_webhook_secret(d)
            creds = dict(secret_file=path, secret=secret)
            args = ["--webhook-secret-file", path]
        f = FakeProvider(kind, d, self.ca, args, creds, name=name)
        self.fakes.append(f)
        f.start()
        if kind == "fcm":
            account, _ = make_fcm_account(d, f.token_url)
            f.creds["account_file"] = account
        return f

    def stop_all(self):
        for f in self.fakes:
            f.stop()
        self.fakes.clear()


# ---------------------------------------------------------------- brokers with pigeon_push


def push_plugin_opts(ca, db_path, apns=None, apns_sandbox=None, fcm=None, huawei=None,
                     xiaomi=None, webhook=None, webhook_path="/hook", **opts):
    """
    ("…/pigeon_push.so", options) for a broker whose providers are these
    fakes (FakeProviders; any may be None: that platform is not configured).
    apns_sandbox: a second APNs fake for sandbox devices, sharing apns's key
    (start it with FakePool.start("apns", like=apns)). opts:
    more plugin options (coalesce_ms, retry_base_ms, ...), overriding these.
    """
    o = {"db_path": db_path, "ca_file": ca.ca_file, "sys_interval": 1}
    if apns:
        c = apns.creds
        o.update(apns_key_file=c["key_file"], apns_key_id=c["key_id"], apns_team_id=c["team_id"],
                 apns_topic=APNS_TOPIC, apns_url=apns.url)
        if apns_sandbox:
            o["apns_sandbox_url"] = apns_sandbox.url
    if fcm:
        o.update(fcm_service_account_file=fcm.creds["account_file"], fcm_url=fcm.url,
                 fcm_token_url=fcm.token_url)
    if huawei:
        o.update(huawei_app_id=huawei.creds["app_id"],
                 huawei_client_secret=huawei.creds["client_secret"], huawei_url=huawei.url,
                 huawei_token_url=huawei.token_url)
    if xiaomi:
        o.update(xiaomi_app_secret=xiaomi.creds["app_secret"], xiaomi_url=xiaomi.url)
    if webhook:
        o.update(webhook_url=webhook.url + webhook_path, webhook_secret=webhook.creds["secret"])
    o.update(opts)
    return (push_plugin_path(), {k: v for k, v in o.items() if v is not None})


def push_plugins(keys, broker_name, workdir, ca, providers, inbox=None, auth=None, **push_opts):
    """
    auth + inbox + push for a broker named broker_name in workdir, every
    database in the broker's directory (so a restart reopens them; push in
    pigeon-push.db, its default name). providers: a dict of
    push_plugin_opts' fake arguments.
    """
    plugins = inboxlib.inbox_plugins(keys, broker_name, workdir, auth=auth,
                                     **dict({"send_rate": 0}, **(inbox or {})))
    db = Path(workdir) / broker_name / "pigeon-push.db"
    plugins.append(push_plugin_opts(ca, db, **providers, **push_opts))
    return plugins


def start_push_broker(pool, keys, name, ca, providers, extra_config=(), inbox=None, auth=None,
                      **push_opts):
    """Starts (in a harness.BrokerPool) a broker with auth, inbox and push; returns it."""
    return pool.start(push_plugins(keys, name, pool.workdir, ca, providers, inbox=inbox,
                                   auth=auth, **push_opts), extra_config, name=name)


# ---------------------------------------------------------------- one push test's world

SYS_PUSH = "$SYS/broker/pigeon/push/"

# Options that keep the push tests fast; each test may override them.
FAST = dict(coalesce_ms=200, retry_base_ms=200, retry_max_ms=2000, request_timeout_ms=3000,
            sys_interval=1)

# Device tokens that each provider's fake accepts the shape of.
def device_token(platform, n):
    """A plausible device token for platform, distinct for each n."""
    if platform == "apns":
        return f"{n:064x}"
    return f"{platform}-token-{n}"


class PushWorld:
    """
    A broker with auth + inbox + push whose providers are fakes, and the
    people of a push test: devices that register and go offline, a user
    (`bob`) and a service (`svc`) that send, and `ops`, a service watching
    $SYS/broker/pigeon/push/#. providers: {platform: FakeProvider} (and
    "apns_sandbox"); opts: pigeon_push options over FAST; inbox, auth:
    those plugins' options; extra_config: broker config lines.
    """

    def __init__(self, brokers, keys, mqtt, providers, name="push", inbox=None, auth=None,
                 extra_config=(), **opts):
        self.brokers, self.keys, self.mqtt = brokers, keys, mqtt
        self.providers = dict(providers)
        self.ca = next(iter(providers.values())).ca
        self.broker = start_push_broker(brokers, keys, name, self.ca, self.providers,
                                        extra_config=extra_config, inbox=inbox, auth=auth,
                                        **dict(FAST, **opts))
        self._bob = self._svc = self._ops = None

    # ---- people

    def login(self, uid, device="phone", **kw):
        return inboxlib.Device.login(self.mqtt, self.broker, self.keys, uid, device, **kw)

    @property
    def bob(self):
        if self._bob is None:
            self._bob = self.login("bob", "desk")
        return self._bob

    @property
    def svc(self):
        if self._svc is None:
            self._svc = self.login("svc", "backend", role="service")
        return self._svc

    @property
    def ops(self):
        if self._ops is None:
            self._ops = self.login("ops", "console", role="service",
                                   extra_filters=["$SYS/broker/pigeon/push/#"])
        return self._ops

    def forget_sessions(self):
        """After a broker restart: the old clients are gone, log in again when needed."""
        self._bob = self._svc = self._ops = None

    def register(self, uid, platform, token, device="phone", app="com.example.pigeon",
                 sandbox=False, offline=True):
        """
        Logs uid:device in, registers it for push (asserting code 0) and,
        if offline, disconnects it and waits until the broker has seen the
        disconnect. Returns the Device.
        """
        d = self.login(uid, device)
        r = self.register_reply(d, platform, token, app, sandbox)
        assert r.code == inboxlib.REPLY_OK, f"RegisterDevice {platform} {token}: {r}"
        if offline:
            self.offline(d)
        return d

    def register_reply(self, d, platform, token, app="com.example.pigeon", sandbox=False):
        return d.request(register_device=inboxlib.pb.RegisterDevice(
            platform=platform, token=token, app=app, sandbox=sandbox))

    def offline(self, d):
        """Disconnects d and waits for the broker's log line saying it is gone."""
        mark = self.broker.mark()
        d.close()
        self.broker.expect_log(
            rf"Client {re.escape(d.client_id())} (disconnected|closed its connection)", mark)

    # ---- counters

    def counter(self, leaf):
        """The latest value of $SYS/broker/pigeon/push/<leaf> (text), or None."""
        return self.ops._collect().sys.get(SYS_PUSH + leaf)

    def wait_counter(self, leaf, want, timeout=TIMEOUT + 3):
        """Waits until $SYS/broker/pigeon/push/<leaf> satisfies want (a value or a predicate)."""
        ok = want if callable(want) else (lambda v: v == str(want))
        got = harness.wait_until(lambda: ok(self.counter(leaf)), timeout, interval=0.05)
        assert got, (f"{SYS_PUSH}{leaf} = {self.counter(leaf)!r}, want {want!r}; push counters: "
                     + json.dumps({k: v for k, v in sorted(self.ops.sys.items())
                                   if k.startswith(SYS_PUSH)}))
