# SPDX-License-Identifier: Apache-2.0
"""
libpigeon-client over TLS (ssl:// addresses, tls_ca_file, tls_insecure),
driven through pigeon-client (--server ssl://..., --ca-file, --insecure)
against the real broker with two TLS listeners besides its plain one:

  good   a certificate for IP:127.0.0.1, signed by a throwaway CA
  other  a certificate for IP:127.0.0.2 / DNS:other.example, same CA

The CA and both certificates are made with the openssl CLI (not with the
library under test's own OpenSSL calls). What is proven:
  - with --ca-file the client connects, syncs and receives a chat sent over
    the plain listener, stored before it connected and live after;
  - without a CA file (the system's CAs) the connect is refused, the reason
    names the certificate, and --timeout ends it with exit 1;
  - --insecure connects to both listeners;
  - a certificate for another address fails verification even though its
    CA is given, and the error says the certificate may not be for 127.0.0.1;
  - a CA file that cannot be read is named in the error;
  - the examples of docs/client.md "### TLS" run as shown.
Every wait is bounded.
"""

import re
import subprocess

import pytest

from clientlib import ClientProc, doc_examples, run_doc_examples
from harness import SLOW
from inboxlib import PUBACK_ACCEPTED, Device, inbox_plugins



def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True,
                   timeout=30)


def make_pki(d):
    """ca.pem, and good.{pem,key} / other.{pem,key} it signed, in d."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=pigeon test CA", cwd=d)
    for name, san in (("good", "IP:127.0.0.1"), ("other", "IP:127.0.0.2,DNS:other.example")):
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}", cwd=d)
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\n"
                                       "basicConstraints=critical,CA:FALSE\n"
                                       "extendedKeyUsage=serverAuth\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "1",
                "-extfile", f"{name}.ext", cwd=d)
    return d


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def broker(module_brokers, keys, pki):
    """The inbox broker: plain listener broker.port, TLS listener_ports = [good, other]."""
    name = "tls"
    b = module_brokers.start(
        inbox_plugins(keys, name, module_brokers.workdir, send_rate=0), name=name,
        listeners=[[f"certfile {pki / n}.pem", f"keyfile {pki / n}.key"]
                   for n in ("good", "other")])
    return b


def ssl_uri(port):
    return f"ssl://127.0.0.1:{port}"


def start(procs, tmp_path, keys, uid, port, *extra):
    args = ["--token", keys.token(uid, dev="phone"), "--server", ssl_uri(port),
            "--state-dir", tmp_path / f"state-{uid}", "--reconnect-min", "100",
            "--reconnect-max", "500"] + list(extra)
    p = ClientProc(args, tmp_path)
    procs.append(p)
    return p


def last_attempt(p):
    """The reason of the last failed connect pigeon-client reported."""
    m = re.findall(r"connecting \(last attempt: (.*)\)$", p.stderr_text(), re.M)
    assert m, p.stderr_text()
    return m[-1]


def test_with_the_ca_file_it_syncs_and_receives_chats(broker, keys, mqtt, pb, pki, procs,
                                                      tmp_path):
    bob = Device.login(mqtt, broker, keys, "t-bob")  # over the plain listener
    assert bob.chat("t-alice", b"stored before") in PUBACK_ACCEPTED
    p = start(procs, tmp_path, keys, "t-alice", broker.listener_ports[0],
              "--ca-file", pki / "ca.pem", "--count", 2, "--timeout", 20)
    p.expect_err(r"online ssl://127\.0\.0\.1:%d" % broker.listener_ports[0])
    p.expect_err(r"synced")
    assert bob.chat("t-alice", b"live after") in PUBACK_ACCEPTED
    assert p.wait(20 * SLOW) == 0, p.stderr_text()
    envs = p.envelopes()
    assert [(e["seq"], e["from"], e["body"]) for e in envs] == \
        [(1, "t-bob", "stored before"), (2, "t-bob", "live after")]
    assert "last attempt" not in p.stderr_text()


def test_without_the_ca_the_connect_is_refused_and_says_it_was_the_certificate(
        broker, keys, procs, tmp_path):
    p = start(procs, tmp_path, keys, "n-alice", broker.listener_ports[0], "--timeout", 2)
    assert p.wait(10 * SLOW) == 1
    assert p.envelopes() == []
    assert last_attempt(p) == (
        f"{ssl_uri(broker.listener_ports[0])}: TLS: certificate verify failed: the broker's "
        "certificate is not signed by a CA the system trusts")
    assert "timed out after 2 s (never connected" in p.stderr_text().splitlines()[-1]
    assert "online" not in p.stderr_text()


def test_a_ca_that_did_not_sign_it_is_refused_too(broker, keys, procs, tmp_path):
    stranger = make_pki(tmp_path / "stranger")  # another CA of the same shape
    p = start(procs, tmp_path, keys, "s-alice", broker.listener_ports[0],
              "--ca-file", stranger / "ca.pem", "--timeout", 2)
    assert p.wait(10 * SLOW) == 1
    assert "certificate verify failed: the broker's certificate is not signed by the CA in " \
           "tls_ca_file" in last_attempt(p)


@pytest.mark.parametrize("listener", [0, 1], ids=["good", "other"])
def test_insecure_connects_without_verifying(broker, keys, procs, tmp_path, listener):
    p = start(procs, tmp_path, keys, f"i{listener}-alice", broker.listener_ports[listener],
              "--insecure", "--until-synced", "--timeout", 10)
    assert p.wait(15 * SLOW) == 0, p.stderr_text()
    assert "synced (cursor 0)" in p.stderr_text()


def test_a_certificate_for_another_address_fails_verification(broker, keys, pki, procs,
                                                             tmp_path):
    port = broker.listener_ports[1]
    p = start(procs, tmp_path, keys, "o-alice", port, "--ca-file", pki / "ca.pem",
              "--timeout", 2)
    assert p.wait(10 * SLOW) == 1
    assert "online" not in p.stderr_text()
    assert last_attempt(p) == (
        f"{ssl_uri(port)}: TCP/TLS connect failure (no TLS error: the broker is unreachable, "
        "or its certificate is not for 127.0.0.1)")
    # The broker saw a TLS handshake, but no login: the token never left the client.
    assert "o-alice:phone" not in broker.log_text()


def test_an_unreadable_ca_file_is_named(broker, keys, procs, tmp_path):
    missing = tmp_path / "no-such-ca.pem"
    p = start(procs, tmp_path, keys, "m-alice", broker.listener_ports[0],
              "--ca-file", missing, "--timeout", 2)
    assert p.wait(10 * SLOW) == 1
    assert re.fullmatch(re.escape(f"{ssl_uri(broker.listener_ports[0])}: TLS: cannot load "
                                  f"tls_ca_file {missing}: ") + r".*no such file.*",
                        last_attempt(p), re.I), last_attempt(p)


def test_every_documented_tls_example_runs_as_shown(broker, keys, mqtt, pb, pki, tmp_path):
    bob = Device.login(mqtt, broker, keys, "bob")
    assert bob.chat("alice", b"hello over TLS") in PUBACK_ACCEPTED  # the docs' premise
    (tmp_path / "ca.pem").write_bytes((pki / "ca.pem").read_bytes())
    run_doc_examples(doc_examples("### TLS", 3), tmp_path,
                     {"TLS_PORT": str(broker.listener_ports[0]),
                      "PIGEON_TOKEN": keys.token("alice")})
