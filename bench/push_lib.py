# SPDX-License-Identifier: Apache-2.0
"""
Helpers of bench/push.sh (run with /usr/bin/python3, which has the
integration tests' modules):

  creds DIR                 a throwaway CA + server certificate and an APNs
                            key (tests/integration/pushlib.py makes both), a
                            provider JWT for h2load and an APNs payload like
                            pigeon's; prints shell assignments to eval
  fill DB PREFIX N DEVICE   registers N APNs devices (uid PREFIX0..PREFIX<N-1>,
                            device DEVICE) straight into pigeon_push's
                            push_devices table (the broker made the schema;
                            registering 10,000+ devices over MQTT is slow)
  sample CONTROL TARGET SECONDS BROKER_PID FAKE_PID SENDER_PID
                            samples the fake's GET /stats and the processes'
                            CPU every 0.2 s until TARGET requests were seen,
                            nothing moved for 15 s, or SECONDS passed; then
                            prints the steady-state push rate (between 10 %
                            and 90 % of TARGET) and the CPU in that window
  snapshot PID FILE         the CPU ticks of each of PID's threads, into FILE
  cpudiff PID A B           cores each thread used between snapshots A and B
  stats CONTROL             the fake's /stats, one line of key=value
  mode CONTROL MODE         POST /mode; RESET: POST /reset

Every loop here is bounded in time.
"""

import hashlib
import json
import os
import sqlite3
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def creds(d):
    import jwt  # PyJWT, which the integration tests use too
    import pushlib

    d = Path(d)
    ca = pushlib.make_ca(d / "ca")
    p8, pub, key_id, team_id = pushlib.make_apns_key(d)
    tok = jwt.encode({"iss": team_id, "iat": int(time.time())}, p8.read_bytes(),
                     algorithm="ES256", headers={"kid": key_id})
    (d / "h2load.jwt").write_text(tok)
    # What pigeon_push sends for a CHAT (docs/push.md), so h2load's requests
    # cost the fake what pigeon's do.
    body = {"aps": {"alert": {"body": "New message"}, "badge": 1},
            "seq": 1, "from": "s0", "kind": "chat", "type": "", "count": 1}
    (d / "body.json").write_text(json.dumps(body, separators=(",", ":")))
    for k, v in (("CA_FILE", ca.ca_file), ("CERT", ca.cert), ("KEY", ca.key), ("P8", p8),
                 ("PUB", pub), ("KID", key_id), ("TEAM", team_id)):
        print(f"{k}='{v}'")


def token_of(uid, device):
    return hashlib.sha256(f"{uid}/{device}".encode()).hexdigest()


def fill(db, prefix, n, device):
    n = int(n)
    con = sqlite3.connect(db, timeout=10)
    now = int(time.time() * 1000)
    with con:
        con.executemany(
            "INSERT OR REPLACE INTO push_devices(uid, device, platform, token, app, sandbox,"
            " registered_ms) VALUES (?, ?, 'apns', ?, '', 0, ?)",
            ((f"{prefix}{i}", device, token_of(f"{prefix}{i}", device), now) for i in range(n)))
    got = con.execute("SELECT count(*) FROM push_devices").fetchone()[0]
    con.close()
    print(f"# push_devices in {Path(db).name}: {got} rows")


def get_stats(control, timeout=5):
    with urllib.request.urlopen(f"http://127.0.0.1:{control}/stats", timeout=timeout) as r:
        return json.loads(r.read())


def post(control, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{control}{path}",
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def ticks(pid):
    """utime + stime of a process (all its threads) in clock ticks, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    f = s[s.rindex(")") + 2:].split()
    return int(f[11]) + int(f[12])


def thread_ticks(pid):
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                s = f.read()
        except OSError:
            continue
        f = s[s.rindex(")") + 2:].split()
        out[int(tid)] = int(f[11]) + int(f[12])
    return out


def sample(control, target, seconds, broker, fake, sender):
    target, seconds = int(target), float(seconds)
    pids = {"broker": int(broker), "fake": int(fake), "sender": int(sender)}
    rows = []
    t_start = time.monotonic()
    last_change, last_req = t_start, -1
    while True:
        t = time.monotonic()
        st = get_stats(control)
        cpu = {k: ticks(p) for k, p in pids.items()}
        rows.append({"t": t, "req": st["requests"], "sessions": st["sessions"], "cpu": cpu,
                     "thr": thread_ticks(pids["broker"])})
        if st["requests"] != last_req:
            last_req, last_change = st["requests"], t
        if st["requests"] >= target or t - last_change > 15 or t - t_start > seconds:
            break
        time.sleep(0.2)
    last = rows[-1]
    first_push = next((r for r in rows if r["req"] > 0), last)

    # Fractions of what arrived, not of the target: with coalesce_ms 0 a
    # message stored while its device's push still waits joins that push
    # (its count says so), so a fast sender makes fewer pushes than messages.
    def at(frac):
        return next((r for r in rows if r["req"] >= frac * last["req"]), last)

    a, b = at(0.1), at(0.9)
    dt = b["t"] - a["t"]
    rate = (b["req"] - a["req"]) / dt if dt > 0 else 0.0

    def cores(k):
        if a["cpu"][k] is None or b["cpu"][k] is None or dt <= 0:
            return float("nan")
        return (b["cpu"][k] - a["cpu"][k]) / CLK_TCK / dt

    total = last["req"]
    span = last["t"] - first_push["t"]
    print(f"pushes pigeon {rate:.0f} pushes/s window=10-90% requests={total} target={target} "
          f"sessions={last['sessions']} window_s={dt:.2f} all_s={span:.2f} "
          f"broker_cores={cores('broker'):.2f} fake_cores={cores('fake'):.2f} "
          f"sender_cores={cores('sender'):.2f}")
    # The broker's threads in the order they were made: the main (Mosquitto)
    # thread, then the plugins' threads in the order the plugins start them.
    names = {pids["broker"]: "main"}
    k = 0
    for tid in sorted(b["thr"]):
        if tid != pids["broker"]:
            k += 1
            names[tid] = f"thread{k}"
    parts = []
    for tid in sorted(b["thr"]):
        if tid in a["thr"] and dt > 0:
            parts.append(f"{names[tid]}={(b['thr'][tid] - a['thr'][tid]) / CLK_TCK / dt:.2f}")
    print("broker threads (cores, by creation order) " + " ".join(parts))


def snapshot(pid, out):
    Path(out).write_text(json.dumps({"t": time.monotonic(), "thr": thread_ticks(int(pid))}))


def cpudiff(pid, a, b):
    """Cores each thread of pid used between two snapshots, by creation order."""
    pid = int(pid)
    a, b = json.loads(Path(a).read_text()), json.loads(Path(b).read_text())
    dt = b["t"] - a["t"]
    parts, k = [], 0
    for tid in sorted(b["thr"], key=int):
        if int(tid) == pid:
            name = "main"
        else:
            k += 1
            name = f"thread{k}"
        if tid in a["thr"] and dt > 0:
            parts.append(f"{name}={(b['thr'][tid] - a['thr'][tid]) / CLK_TCK / dt:.2f}")
    print(" ".join(parts))


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "creds" and len(argv) == 3:
        creds(argv[2])
    elif cmd == "fill" and len(argv) == 6:
        fill(*argv[2:])
    elif cmd == "sample" and len(argv) == 8:
        sample(*argv[2:])
    elif cmd == "snapshot" and len(argv) == 4:
        snapshot(*argv[2:])
    elif cmd == "cpudiff" and len(argv) == 5:
        cpudiff(*argv[2:])
    elif cmd == "stats" and len(argv) == 3:
        print(" ".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in get_stats(argv[2]).items()))
    elif cmd == "mode" and len(argv) == 4:
        if argv[3] == "RESET":
            post(argv[2], "/reset", {})
        else:
            post(argv[2], "/mode", {"mode": argv[3]})
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
