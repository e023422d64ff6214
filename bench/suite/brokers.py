# SPDX-License-Identifier: Apache-2.0
"""Brokers for the benchmark suite, and what the suite reads of the machine.

Both brokers are the same Mosquitto binary on a free 127.0.0.1 port, started
with RLIMIT_NOFILE at 20,000 (or the hard limit) and the same listener
settings; `pigeon` loads all three plugins, `plain` none. A Broker owns its
process and its files under the run's temporary directory; stop() waits for
the exit (pigeon applies its journal on the way out) and kills after a bound.
Single-threaded: the driver starts and stops brokers between runs only.
"""

import os
import resource
import socket
import subprocess
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
NOFILE = 20000


def free_port():
    """A port nothing listens on now (the kernel's choice, below no guarantee)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def preexec():
    """For every child: the fd limit the 19,000-connection workloads need."""
    _raise_nofile()


class Keys:
    """The run's signing keys: an HS256 secret and an ES256 key pair."""

    def __init__(self, tmp):
        tmp = Path(tmp)
        self.secret = tmp / "jwt.secret"
        old = os.umask(0o077)
        try:
            self.secret.write_bytes(os.urandom(32))
            self.es256_private = tmp / "es256-private.pem"
            self.es256_public = tmp / "es256-public.pem"
            subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-out", str(self.es256_private)],
                           check=True, capture_output=True, timeout=30)
            subprocess.run(["openssl", "pkey", "-in", str(self.es256_private), "-pubout",
                            "-out", str(self.es256_public)],
                           check=True, capture_output=True, timeout=30)
        finally:
            os.umask(old)


class Broker:
    """One mosquitto process. kind is 'pigeon' or 'plain'."""

    def __init__(self, ctx, kind, name=None, max_queued=1000, push=None, log_all=False):
        self.ctx, self.kind = ctx, kind
        self.name = name or kind
        self.max_queued = max_queued
        self.push = push  # None, or a dict of pigeon_push options (the fake APNs)
        self.log_all = log_all
        self.proc = None
        self.port = None
        n = ctx.next_id()
        self.dir = Path(ctx.tmp) / f"{self.name}-{n}"
        self.dir.mkdir(parents=True)
        self.conf = self.dir / "mosquitto.conf"
        self.log = self.dir / "broker.log"

    # -- configuration --------------------------------------------------
    def conf_text(self, port):
        c = self.ctx
        lines = [
            f"listener {port} 127.0.0.1",
            "set_tcp_nodelay true",
            "persistence false",
            "max_connections -1",
            f"max_queued_messages {self.max_queued}",
            "connection_messages false",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
        ]
        if os.getuid() == 0:
            # As root, mosquitto would switch to the 'mosquitto' user, which
            # cannot read a build tree under /work or /root.
            lines.append("user root")
        if self.kind == "plain":
            lines.append("allow_anonymous true")
            return "\n".join(lines) + "\n"
        lib = c.build / "lib"
        lines += [
            "allow_anonymous false",
            f"plugin {lib / 'pigeon_auth.so'}",
            "plugin_opt_jwt_algs HS256,ES256",
            f"plugin_opt_jwt_secret_file {c.keys.secret}",
            f"plugin_opt_jwt_public_key_file {c.keys.es256_public}",
            "plugin_opt_login_fail_limit 0",
            "plugin_opt_sys_interval 0",
            f"plugin {lib / 'pigeon_inbox.so'}",
            f"plugin_opt_db_path {self.dir / 'pigeon.db'}",
            "plugin_opt_send_rate 0",
            "plugin_opt_max_per_user 2000000",
            "plugin_opt_sys_interval 0",
            f"plugin {lib / 'pigeon_push.so'}",
            f"plugin_opt_db_path {self.dir / 'pigeon-push.db'}",
            "plugin_opt_sys_interval 0",
        ]
        for k, v in (self.push or {}).items():
            lines.append(f"plugin_opt_{k} {v}")
        return "\n".join(lines) + "\n"

    # -- life -----------------------------------------------------------
    def start(self, limit_s=10):
        for _attempt in range(5):
            port = free_port()
            self.conf.write_text(self.conf_text(port))
            out = open(self.dir / "broker.out", "ab")
            self.proc = subprocess.Popen([str(self.ctx.mosquitto), "-c", str(self.conf)],
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, preexec_fn=preexec)
            out.close()
            deadline = time.monotonic() + limit_s
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break  # port taken meanwhile, or a bad configuration
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        self.port = port
                        return self
                except OSError:
                    time.sleep(0.05)
            self._kill()
        raise RuntimeError(f"broker {self.name} did not start: {self.tail()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def stop(self, limit_s=30):
        if not self.alive():
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            self._kill()

    def tail(self, n=15):
        parts = []
        for f in (self.dir / "broker.out", self.log):
            try:
                parts += f.read_text(errors="replace").splitlines()[-n:]
            except OSError:
                pass
        return " | ".join(parts)

    # -- what the suite reads -------------------------------------------
    def pid(self):
        return self.proc.pid

    def status(self, key):
        """A kB field of /proc/<pid>/status (VmRSS, VmHWM), in bytes."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        return None

    def pss(self):
        try:
            with open(f"/proc/{self.proc.pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return None


def proc_ticks(pid):
    """utime + stime of a process (all its threads) in clock ticks, or 0."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return 0
    f = s[s.rindex(")") + 2:].split()
    return int(f[11]) + int(f[12])


def busy_ticks():
    """Clock ticks the whole machine spent busy (user nice system irq softirq; not
    steal, which is the hypervisor's, nor iowait)."""
    with open("/proc/stat") as f:
        v = f.readline().split()
    return int(v[1]) + int(v[2]) + int(v[3]) + int(v[6]) + int(v[7])


def ephemeral_ports():
    """(size of the ephemeral port range, local TCP sockets now on a port in it)."""
    try:
        lo, hi = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return 0, 0
    used = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f, None)
                for line in f:
                    port = int(line.split(None, 2)[1].rsplit(":", 1)[1], 16)
                    if lo <= port <= hi:
                        used += 1
        except (OSError, ValueError, IndexError):
            pass
    return hi - lo + 1, used


def machine(mosquitto, root):
    """The facts the report's header gives."""
    def run(*cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            return (r.stdout or r.stderr).strip()
        except (OSError, subprocess.SubprocessError):
            return "unknown"

    info = {"nproc": os.cpu_count()}
    model = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                info["memtotal"] = f"{int(line.split()[1]) // 1024} MiB"
                break
    except OSError:
        pass
    info["model"] = model
    info["kernel"] = os.uname().release
    try:
        info["debian"] = Path("/etc/debian_version").read_text().strip()
    except OSError:
        info["debian"] = "unknown"
    info["mosquitto"] = run(str(mosquitto), "-h").splitlines()[0] if run(str(mosquitto), "-h") else "unknown"
    info["pigeon"] = run("git", "-C", str(root), "describe", "--always", "--dirty")
    info["openssl"] = run("openssl", "version")
    info["node"] = run("node", "--version")
    return info
