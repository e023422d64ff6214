# SPDX-License-Identifier: Apache-2.0
"""
The project's set-up promises: one package list used by the README's commands,
.ci/run and the Docker image (no drift); the README's run command working from
a clean clone; the example configuration loading in the real broker.
"""

import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

import harness

REPO = harness.REPO


def package_list():
    lines = (REPO / "scripts" / "debian-packages.txt").read_text().splitlines()
    return [l.strip() for l in lines if l.strip() and not l.strip().startswith("#")]


def test_package_list_is_read_by_install_script():
    script = (REPO / "scripts" / "install-deps.sh").read_text()
    assert "debian-packages.txt" in script
    pkgs = package_list()
    for needed in ("mosquitto", "libmosquitto-dev", "libpaho-mqtt-dev", "libssl-dev",
                   "libsqlite3-dev", "uthash-dev", "libprotobuf-c-dev", "protobuf-c-compiler",
                   "libcjson-dev", "libcurl4-openssl-dev"):
        assert needed in pkgs, needed
    assert len(pkgs) == len(set(pkgs)), "a package is listed twice"


def test_dockerfile_installs_exactly_the_setup_script_packages():
    docker = (REPO / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM debian:12\b", docker, re.M)
    # The image installs through the very same script and list...
    assert "scripts/install-deps.sh" in docker and "scripts/debian-packages.txt" in docker
    assert re.search(r"RUN bash /src/scripts/install-deps.sh", docker)
    # ...and names no package of its own.
    assert "apt-get install" not in docker and "apt install" not in docker
    entry = (REPO / "docker" / "entrypoint.sh").read_text()
    assert "apt" not in entry


@pytest.mark.skipif(os.geteuid() != 0, reason="the entrypoint chowns the volume: root only")
def test_docker_entrypoint_keeps_the_volume_private(tmp_path):
    # The image's entrypoint, run on a scratch volume with a command that
    # creates a file the way the broker would.
    data = tmp_path / "volume"
    data.mkdir(mode=0o755)
    subprocess.run(["sh", str(REPO / "docker" / "entrypoint.sh"), "sh", "-c",
                    f"echo x > {data}/pigeon.db"], check=True, timeout=30,
                   env=dict(os.environ, PIGEON_DATA=str(data)), capture_output=True)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "pigeon.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "jwt.secret").stat().st_mode) == 0o600


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    first_block = re.search(r"```sh\n(.*?)```", readme, re.S).group(1)
    commands = [l.split("#")[0].strip() for l in first_block.splitlines() if l.strip()]
    assert commands[0] == "./scripts/run-broker.sh"
    assert commands[1] == "./scripts/test.sh"
    ci = (REPO / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci


def _wait_port(port, proc, timeout):
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(harness.SANITIZE, reason="runs once, on the normal build")
def test_readme_run_command_from_a_clean_clone(tmp_path, pb):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=60)
    port = harness.free_port()
    data = tmp_path / "data"
    env = dict(os.environ, PIGEON_PORT=str(port), PIGEON_DATA=str(data))
    env.pop("PIGEON_BUILD_DIR", None)
    out = open(tmp_path / "run.out", "w")
    proc = subprocess.Popen(["./scripts/run-broker.sh"], cwd=clone, env=env, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # A clean clone builds from scratch: allow for it (bounded).
        assert _wait_port(port, proc, 300), (tmp_path / "run.out").read_text()[-3000:]
        text = (tmp_path / "run.out").read_text()
        assert "generated a development HS256 signing key" in text
        assert "mosquitto_sub" in text and "pigeon-token mint" in text
        secret = data / "jwt.secret"
        assert secret.stat().st_size == 32
        tok = clone / "build" / "bin" / "pigeon-token"

        def mint(*args):
            return subprocess.run([str(tok), "mint", "--secret-file", str(secret), *args],
                                  capture_output=True, text=True, check=True).stdout.strip()

        alice = mint("--sub", "alice", "--dev", "phone")
        svc = mint("--sub", "backend", "--dev", "api", "--role", "service")
        sub = subprocess.Popen(["mosquitto_sub", "-p", str(port), "-V", "mqttv5", "-u", "alice",
                                "-P", alice, "-i", "alice:phone", "-q", "1", "-t", "im/alice/#",
                                "-C", "1", "-W", "10", "-F", "%x"],
                               stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        subprocess.run(["mosquitto_pub", "-p", str(port), "-V", "mqttv5", "-u", "backend", "-P",
                        svc, "-i", "backend:api", "-q", "1", "-t", "im/alice/chat", "-m",
                        "hello alice"], check=True, timeout=10)
        hexline, _ = sub.communicate(timeout=15)
        env_msg = pb.Envelope()
        env_msg.ParseFromString(bytes.fromhex(hexline.strip()))
        assert env_msg.seq == 1
        assert getattr(env_msg, "from") == "backend"
        assert env_msg.body == b"hello alice"
        assert (data / "pigeon.db").exists()
        # Every local user could read every message otherwise.
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        for f in data.iterdir():
            assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, f"{f} is {oct(f.stat().st_mode)}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        out.close()


def test_example_config_loads_in_the_real_broker(tmp_path, keys, mqtt, pb):
    """conf/mosquitto.conf, with its paths pointed at the build and a tmp dir."""
    text = (REPO / "conf" / "mosquitto.conf").read_text()
    port = harness.free_port()
    lib = str(harness.build_path("lib"))
    text = text.replace("/usr/local/lib/pigeon", lib).replace("/var/lib/pigeon", str(tmp_path))
    text = re.sub(r"^listener 1883 127.0.0.1$", f"listener {port} 127.0.0.1", text, flags=re.M)
    text = re.sub(r"^log_dest stdout$", f"log_dest file {tmp_path}/broker.log", text, flags=re.M)
    if os.geteuid() == 0:
        text += "user root\n"
    (tmp_path / "jwt.secret").write_bytes(keys.secret)
    conf = tmp_path / "example.conf"
    conf.write_text(text)
    env = harness.Broker(tmp_path, [])._env()
    proc = subprocess.Popen([harness.MOSQUITTO, "-c", str(conf)], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert _wait_port(port, proc, harness.TIMEOUT * 2), proc.stderr.read().decode()
        target = harness.Broker(tmp_path, [], name="example")  # only its host and port are used
        target.port = port
        _, code = mqtt.connect(target, "alice", "phone", keys.token(sub="alice"))
        assert code == harness.CONNACK_OK
        log = (tmp_path / "broker.log").read_text()
        assert "pigeon_auth: ready" in log and "pigeon_inbox: ready" in log
        assert "pigeon_push: ready" in log
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def test_readme_layout_table_matches_the_tree():
    # Every folder the table names exists, and every top-level folder and
    # broker module of the repository is in the table.
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Layout"):]
    table = table[:table.index("\n## ", 1)]
    named = set(re.findall(r"^\| `([^`]+)/` \|", table, re.M))
    for folder in named:
        assert (REPO / folder).is_dir(), f"README names {folder}/, which does not exist"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    top = {p.split("/")[0] for p in tracked if "/" in p and not p.startswith(".")}
    modules = {"/".join(p.split("/")[:2]) for p in tracked
               if p.startswith("broker/") and p.count("/") >= 2}
    missing = (top | modules) - named
    assert not missing, f"README's layout table lacks {sorted(missing)}"


def test_every_source_file_carries_the_licence():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    sources = [p for p in tracked
               if re.search(r"\.(c|h|py|sh|proto)$|(^|/)CMakeLists\.txt$", p) or p == ".ci/run"]
    assert (REPO / "LICENSE").read_text().lstrip().startswith("Apache License")
    missing = [p for p in sources
               if "SPDX-License-Identifier: Apache-2.0" not in (REPO / p).read_text()[:300]]
    assert not missing, f"no SPDX line in {missing}"


# --- docker/: the health check, the exporter and Prometheus (docs/operations.md) ---

def _compose_services():
    """docker/compose.yaml's services, each as its block of text (the file is
    plain block YAML; PyYAML is not among the packages)."""
    text = (REPO / "docker" / "compose.yaml").read_text()
    body = text[text.index("\nservices:\n") + len("\nservices:\n"):]
    body = re.split(r"^\S", body, maxsplit=1, flags=re.M)[0]
    parts = re.split(r"^  ([A-Za-z0-9_-]+):\n", body, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def _flow_list(block, key):
    m = re.search(rf"^\s+{key}: (\[.*\])$", block, re.M)
    assert m, f"no one-line {key}: [...] in\n{block}"
    import json
    return json.loads(m.group(1))


def test_image_healthcheck_is_the_exporter_ready_check():
    docker = (REPO / "docker" / "Dockerfile").read_text()
    m = re.search(r"^HEALTHCHECK ((?:--[a-z-]+=\S+\s+)+)\\\n\s+CMD (\[.*\])$", docker, re.M)
    assert m, "no HEALTHCHECK with options and an exec-form CMD"
    opts = dict(re.findall(r"--([a-z-]+)=(\S+)", m.group(1)))
    assert set(opts) == {"interval", "timeout", "start-period", "retries"}, opts
    import json
    cmd = json.loads(m.group(2))
    assert cmd[0] == "/usr/local/bin/pigeon-exporter"
    line = " ".join(cmd)
    assert "--check ready" in line and "--secret-file /var/lib/pigeon/jwt.secret" in line
    # Its own device: a check must not take over a running exporter's client id.
    assert "--device" in cmd and cmd[cmd.index("--device") + 1] != "exporter"
    # Docker's timeout leaves room for the check's own wait for $SYS.
    check_timeout = float(cmd[cmd.index("--timeout") + 1]) if "--timeout" in cmd else 5.0
    assert float(opts["timeout"].rstrip("s")) > check_timeout
    # The image installs pigeon-exporter where the health check runs it.
    cmake = "".join(p.read_text() for p in (REPO / "clients").rglob("CMakeLists.txt"))
    assert re.search(r"install\(TARGETS[^)]*\bpigeon-exporter\b[^)]*RUNTIME", cmake), \
        "pigeon-exporter is not installed to bin/"


def test_prometheus_image_installs_only_listed_packages():
    text = (REPO / "docker" / "prometheus.Dockerfile").read_text()
    assert text.startswith("# SPDX-License-Identifier: Apache-2.0")
    assert re.search(r"^FROM debian:12\b", text, re.M)
    installs = re.findall(r"apt-get install ([^\n&\\]+)", text)
    assert installs, "prometheus.Dockerfile installs nothing"
    pkgs = [w for line in installs for w in line.split() if not w.startswith("-")]
    assert pkgs == ["prometheus"], pkgs
    assert all("--no-install-recommends" in line for line in installs)
    assert set(pkgs) <= set(package_list()), "a package the shared list does not have"
    # It reads its configuration from the directory compose mounts conf/prometheus/ on.
    conf = re.search(r"--config\.file=(/etc/pigeon/prometheus)/([\w.-]+)", text)
    assert conf and (REPO / "conf" / "prometheus" / conf.group(2)).is_file(), conf
    prom = _compose_services()["prometheus"]
    assert re.search(rf"^\s+- \.\./conf/prometheus:{conf.group(1)}:ro$", prom, re.M), prom
    assert re.search(r"^\s+dockerfile: prometheus\.Dockerfile$", prom, re.M)


def test_compose_exporter_and_prometheus():
    services = _compose_services()
    assert {"pigeon", "exporter", "prometheus"} <= set(services), sorted(services)
    text = (REPO / "docker" / "compose.yaml").read_text()
    # Every published port is on the host's loopback only.
    published = re.findall(r"^\s+- \"([^\"]+)\"$", text, re.M)
    ports = [p for p in published if re.fullmatch(r"[\d.]*:?\d+:\d+", p)]
    assert len(ports) == 3 and all(p.startswith("127.0.0.1:") for p in ports), ports
    exp = services["exporter"]
    # The same image as the broker's...
    assert "build: *pigeon-build" in services["pigeon"] and "build: *pigeon-build" in exp
    assert re.search(r"^x-pigeon-build: &pigeon-build\n  context: \.\.\n  dockerfile: docker/Dockerfile$",
                     text, re.M)
    # ...running pigeon-exporter, not the broker's entrypoint.
    argv = _flow_list(exp, "entrypoint") + _flow_list(exp, "command")
    assert argv[0] == "/usr/local/bin/pigeon-exporter"
    line = " ".join(argv)
    for opt in ("--host pigeon", "--listen 0.0.0.0:9883", "--secret-file /var/lib/pigeon/jwt.secret"):
        assert opt in line, opt
    assert re.search(r"^\s+- pigeon-data:/var/lib/pigeon:ro$", exp, re.M)
    assert re.search(r"^\s+- pigeon-data:/var/lib/pigeon$", services["pigeon"], re.M)
    assert re.search(r"^    depends_on:\n      pigeon:\n        condition: service_healthy$", exp, re.M)
    assert "127.0.0.1:9883:9883" in exp and "127.0.0.1:9090:9090" in services["prometheus"]
    # Its own health check (the image's asks a broker on its own loopback),
    # with a tool the image has.
    health = _flow_list(exp, "test")
    assert health[0] == "CMD" and health[1] in package_list() and "9883" in health[-1]
    # Prometheus in compose scrapes the exporter service on its port.
    scrape = (REPO / "conf" / "prometheus" / "prometheus-compose.yml").read_text()
    assert re.search(r'targets: \["exporter:9883"\]', scrape)
