# SPDX-License-Identifier: Apache-2.0
"""The suite's workloads. Each is a function of the run's Context that
returns a section of results.json:

    {"rows": [row...], "notes": [...], ...workload-specific keys}
    row = {"id", "name", "unit", "better": "higher"|"lower",
           "target": {"on": "ratio"|"pigeon", "op": ">="|"<=", "value": x} or None,
           "ratio_def": "pigeon/plain" (or e.g. "1M/1k"),
           "reps": [{"pigeon": v, "plain": v|None, "ratio": r|None, ...raw}]}

report.summarize() turns the reps into medians, ratios and verdicts; nothing
here computes a median, so that the report can be regenerated from
results.json alone.

Every pigeon-bench run goes through Context.bench(): bounded by a timeout,
its CPU and the brokers' subtracted from the machine's busy time to give the
CPU other processes used meanwhile (the noise guard); a run over
--max-other-cpu percent of one core is run once more and the second kept.
Uids never repeat within a run (Context.prefix()), so runs on one broker do
not meet each other's stored messages. Single-threaded.
"""

import hashlib
import json
import math
import os
import re
import select
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from . import brokers as B

HERE = Path(__file__).resolve().parent


class BenchError(RuntimeError):
    pass


def parse_line(line):
    """`<what> <label> <figure> <unit> [key=value...]` -> dict."""
    f = line.split()
    if len(f) < 4:
        raise BenchError(f"not a result line: {line!r}")
    out = {"what": f[0], "label": f[1], "unit": f[3]}
    try:
        out["figure"] = float(f[2])
    except ValueError:
        raise BenchError(f"no figure in {line!r}")
    for kv in f[4:]:
        if "=" in kv:
            k, v = kv.split("=", 1)
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out


def read_curve(path):
    """The --curve file: '<percentile> <latency_us> <1/(1-p)>' lines."""
    pts = []
    try:
        text = Path(path).read_text()
    except OSError:
        return pts
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        v = line.split()
        try:
            p, us = float(v[0]), float(v[1])
        except (ValueError, IndexError):
            continue
        x = 1.0 / (1.0 - p / 100.0) if p < 100 else None
        if len(v) > 2:
            try:
                x = float(v[2])
            except ValueError:
                pass
        if x is None or not math.isfinite(x):
            continue  # the 100 % (max) point has no place on a 1/(1-p) axis
        pts.append([p, us, x])
    return pts


class Holder:
    """A background `pigeon-bench idle` holding K connections until release()."""

    def __init__(self, ctx, broker, count, prefix, label):
        self.ctx, self.broker, self.count = ctx, broker, count
        # plain gets pigeon's very CONNECTs (username + token): Mosquitto keeps
        # the username and password of each connection, about 200 B of it
        cmd = [str(ctx.bench_bin), "idle", "--port", str(broker.port),
               *ctx.auth(broker, same_credentials=True),
               "--count", str(count), "--prefix", prefix, "--label", label,
               "--time-limit", "600"]
        self.err = open(Path(ctx.tmp) / f"idle-{ctx.next_id()}.err", "w+")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, preexec_fn=B.preexec, text=True)
        self.line = None

    def wait_ready(self, limit_s=300):
        deadline = time.monotonic() + limit_s
        buf = ""
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if r:
                chunk = self.proc.stdout.readline()
                if not chunk:
                    break
                buf = chunk.strip()
                if buf.startswith("idle "):
                    self.line = parse_line(buf)
                    return self.line
            elif self.proc.poll() is not None:
                break
        self.err.flush()
        self.err.seek(0)
        why = self.err.read()[-800:]
        self.release()
        if "Cannot assign requested address" in why:
            size, used = B.ephemeral_ports()
            why += (f" [the ephemeral port range is exhausted: {used} of {size} ports in use, "
                    f"by other processes' connections or TIME_WAIT]")
        raise BenchError(f"idle --count {self.count} did not get ready (exit "
                         f"{self.proc.returncode}): {why} broker: {self.broker.tail()}")

    def release(self, limit_s=120):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=limit_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.err.close()


class Context:
    def __init__(self, *, root, build, mosquitto, tmp, quick, reps, max_other, log, only=None):
        self.root, self.build = Path(root), Path(build)
        self.bench_bin = self.build / "bin" / "pigeon-bench"
        self.mosquitto = mosquitto
        self.tmp = Path(tmp)
        self.quick, self.reps, self.max_other = quick, reps, max_other
        self.log = log
        self.only = only
        self.keys = B.Keys(self.tmp)
        self._n = 0
        self.run_tag = os.urandom(2).hex()
        self.extra_pids = []  # background processes of ours (idle holders, the fake APNs)
        self.redone = 0

    def next_id(self):
        self._n += 1
        return self._n

    def prefix(self, what):
        """A uid prefix no other run of this suite uses (letters and digits)."""
        return f"{what}{self.run_tag}n{self.next_id()}x"

    def auth(self, broker, same_credentials=False):
        if broker.kind == "pigeon" or same_credentials:
            return ["--secret-file", str(self.keys.secret)]
        return ["--anonymous"]

    def order(self, rep):
        """Which broker goes first alternates every repetition."""
        return ("pigeon", "plain") if rep % 2 == 0 else ("plain", "pigeon")

    def bench(self, broker, mode, args, label, timeout=300, auth=None, curve=None, redo=True,
              same_uids=False):
        """One pigeon-bench run; its parsed line with other_cpu (percent of one
        core) and the broker's CPU per second; redone once if disturbed (not in
        quick mode), with fresh uid prefixes unless same_uids."""
        for attempt in (1, 2):
            if attempt == 2 and not same_uids:
                args = [re.sub(r"n\d+x$", f"n{self.next_id()}x", a)
                        if isinstance(a, str) and self.run_tag in a else a for a in args]
            res = self._bench_once(broker, mode, args, label, timeout, auth, curve)
            # quick mode (a smoke test within 2 minutes) reports, never redoes
            if res["other_cpu"] <= self.max_other or attempt == 2 or self.quick or not redo:
                if attempt == 2:
                    res["redone"] = 1
                    self.redone += 1
                return res
            self.log(f"#   other processes used {res['other_cpu']:.0f} % of a core: once more")
        return res

    def _bench_once(self, broker, mode, args, label, timeout, auth, curve):
        cmd = [str(self.bench_bin), mode, "--port", str(broker.port)]
        cmd += auth if auth is not None else self.auth(broker)
        cmd += [str(a) for a in args] + ["--label", label]
        if curve:
            cmd += ["--curve", str(curve)]
        n = self.next_id()
        out_path, err_path = self.tmp / f"run-{n}.out", self.tmp / f"run-{n}.err"
        own = [broker.pid()] + [p for p in self.extra_pids if p]
        busy0 = B.busy_ticks()
        own0 = sum(B.proc_ticks(p) for p in own)
        broker0 = B.proc_ticks(broker.pid())
        self0 = os.times()
        t0 = time.monotonic()
        with open(out_path, "w") as out, open(err_path, "w") as err:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    preexec_fn=B.preexec)
        status, ru = None, None
        deadline = t0 + timeout
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                _, status, ru = os.wait4(proc.pid, 0)
                proc.returncode = -9
                raise BenchError(f"{' '.join(cmd)}: no result within {timeout} s")
            time.sleep(0.01)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        busy1 = B.busy_ticks()
        own1 = sum(B.proc_ticks(p) for p in own)
        self1 = os.times()
        text = out_path.read_text()
        if proc.returncode != 0:
            raise BenchError(f"{' '.join(cmd)} exited {proc.returncode}: "
                             f"{err_path.read_text()[-800:]} broker: {broker.tail()}")
        if not broker.alive():
            raise BenchError(f"broker {broker.name} died during {mode}: {broker.tail()}")
        lines = [l for l in text.splitlines() if l.strip() and not l.startswith("#")]
        if not lines:
            raise BenchError(f"{' '.join(cmd)} printed no result line")
        res = parse_line(lines[-1])
        client_s = ru.ru_utime + ru.ru_stime
        self_s = (self1.user - self0.user) + (self1.system - self0.system)
        other_s = (busy1 - busy0) / B.CLK_TCK - (own1 - own0) / B.CLK_TCK - client_s - self_s
        res["other_cpu"] = round(max(0.0, other_s) * 100 / wall, 1) if wall > 0 else 0.0
        res["broker_cores"] = round((B.proc_ticks(broker.pid()) - broker0) / B.CLK_TCK / wall,
                                    2) if wall > 0 else 0.0
        res["wall_s"] = round(wall, 3)
        if curve:
            res["curve"] = read_curve(curve)
        self.log(f"    {lines[-1]}  [other_cpu={res['other_cpu']:.0f}%]")
        return res

    def broker(self, kind, **kw):
        b = B.Broker(self, kind, **kw).start()
        self.log(f"#   {kind} broker on 127.0.0.1:{b.port} (pid {b.pid()})")
        return b


def row(rid, name, unit, better="higher", target=None, ratio_def="pigeon/plain"):
    return {"id": rid, "name": name, "unit": unit, "better": better, "target": target,
            "ratio_def": ratio_def, "reps": []}


def ratio(a, b):
    return round(a / b, 4) if a is not None and b else None


def pair_rep(rep_list, ctx, rep, fn):
    """Runs fn(kind) for both brokers in this repetition's order; appends
    {"pigeon": v, "plain": v, "ratio": pigeon/plain, "raw": {...}}."""
    vals, raw = {}, {}
    for kind in ctx.order(rep):
        v, r = fn(kind)
        vals[kind], raw[kind] = v, r
    rep_list.append({"pigeon": vals.get("pigeon"), "plain": vals.get("plain"),
                     "ratio": ratio(vals.get("pigeon"), vals.get("plain")),
                     "first": ctx.order(rep)[0], "raw": raw})


def slim(res, keys):
    return {k: res[k] for k in keys if k in res}


# ---------------------------------------------------------------- 1 ----
def throughput(ctx):
    q = ctx.quick
    count = 20000 if q else 60000
    pairs = (1, 10, 100)
    rows = {p: row(f"tp{p}", f"{p}->{p}", "msg/s",
                   target={"on": "ratio", "op": ">=", "value": 0.9}) for p in pairs}
    bro = {k: ctx.broker(k) for k in ("pigeon", "plain")}
    try:
        for rep in range(ctx.reps):
            for p in pairs:
                def one(kind, p=p):
                    r = ctx.bench(bro[kind], "throughput",
                                  ["--pairs", p, "--count", count, "--window", 100, "--size", 256,
                                   "--threads", 2, "--to", ctx.prefix("tp")], kind)
                    return r["figure"], slim(r, ("figure", "p50_us", "p99_us", "seconds",
                                                  "other_cpu", "broker_cores", "redone"))
                pair_rep(rows[p]["reps"], ctx, rep, one)
    finally:
        for b in bro.values():
            b.stop()
    return {"rows": list(rows.values()), "params": {"count": count, "window": 100, "size": 256}}


# ---------------------------------------------------------------- 2 ----
def latency(ctx):
    q = ctx.quick
    seconds = 3 if q else 5
    cases = [(1, 1000)] if q else [(1, 1000), (1, 5000), (1, 10000)]
    fan = (10, 2000) if q else (10, 5000)
    cases.append(fan)
    rows, curves = [], {}
    bro = {k: ctx.broker(k) for k in ("pigeon", "plain")}
    keys = ("p50_us", "p90_us", "p99_us", "p999_us", "max_us", "mean_us", "lost", "duplicates",
            "sent", "measured", "received", "sender_lag_max_us", "other_cpu", "broker_cores",
            "redone")
    try:
        for n, rate in cases:
            rid = f"lat{n}x{rate}"
            r = row(rid, f"{n}->{n} at {rate:,} msg/s", "p99 us", better="lower",
                    target={"on": "ratio", "op": "<=", "value": 1.5})
            r["rate"], r["publishers"] = rate, n
            curves[rid] = {"pigeon": [], "plain": []}
            for rep in range(ctx.reps):
                def one(kind):
                    cf = ctx.tmp / f"curve-{ctx.next_id()}.txt"
                    res = ctx.bench(bro[kind], "open",
                                    ["--rate", rate, "--publishers", n, "--subscribers", n,
                                     "--threads", 2, "--seconds", seconds, "--warmup", 1,
                                     "--size", 256, "--to", ctx.prefix("ol")], kind,
                                    timeout=seconds + 60, curve=cf)
                    curves[rid][kind].append(res.get("curve", []))
                    return res["p99_us"], slim(res, keys)
                pair_rep(r["reps"], ctx, rep, one)
            rows.append(r)
    finally:
        for b in bro.values():
            b.stop()
    return {"rows": rows, "curves": curves, "params": {"seconds": seconds, "warmup": 1}}


# ---------------------------------------------------------------- 3 ----
def notify(ctx):
    q = ctx.quick
    count, users, types = (10000, 100, 10) if q else (50000, 1000, 10)
    r = row("notify", f"{count:,} notifications, {types} types, {users:,} offline users", "msg/s")
    bro = {k: ctx.broker(k) for k in ("pigeon", "plain")}
    prefixes = []
    try:
        for rep in range(ctx.reps):
            def one(kind):
                pre = ctx.prefix("nt")
                if kind == "pigeon":
                    prefixes.append(pre)
                res = ctx.bench(bro[kind], "notify", ["--count", count, "--users", users,
                                                      "--types", types, "--to", pre], kind)
                return res["figure"], slim(res, ("seconds", "other_cpu", "broker_cores", "redone"))
            pair_rep(r["reps"], ctx, rep, one)
    finally:
        for b in bro.values():
            b.stop()
    # Merging kept exactly the latest of each type per user (the broker
    # applied its journal on the way out).
    con = sqlite3.connect(bro["pigeon"].dir / "pigeon.db", timeout=10)
    stored = sum(con.execute("SELECT count(*) FROM messages WHERE uid LIKE ?",
                             (pre + "%",)).fetchone()[0] for pre in prefixes)
    con.close()
    expected = len(prefixes) * min(users * types, count)
    ctx.log(f"    notify: {stored} stored rows (expected {expected})")
    if stored != expected:
        raise BenchError(f"the notifications left {stored} stored rows, not {expected}")
    return {"rows": [r], "params": {"count": count, "users": users, "types": types,
                                    "stored_rows": stored}}


# ---------------------------------------------------------------- 4 ----
def catchup(ctx):
    count = 2000 if ctx.quick else 10000
    a = row("catchup", f"catch-up of {count:,} (pigeon-bench catchup)", "ms", better="lower",
            target={"on": "pigeon", "op": "<=", "value": 1000})
    c = row("client-catchup", f"catch-up of {count:,} (libpigeon-client)", "ms", better="lower",
            target={"on": "pigeon", "op": "<=", "value": 1000})
    b = ctx.broker("pigeon")
    try:
        for rep in range(max(ctx.reps, 1)):
            res = ctx.bench(b, "catchup", ["--count", count, "--to", ctx.prefix("cu")], "pigeon",
                            timeout=300)
            a["reps"].append({"pigeon": res["figure"], "plain": None, "ratio": None,
                              "raw": {"pigeon": slim(res, ("messages", "requests", "other_cpu",
                                                           "redone"))}})
            res = ctx.bench(b, "client-catchup", ["--count", count, "--to", ctx.prefix("cc")],
                            "pigeon", timeout=300)
            ms = count / res["figure"] * 1000 if res["figure"] else None
            c["reps"].append({"pigeon": round(ms, 1), "plain": None, "ratio": None,
                              "raw": {"pigeon": {"msg_per_s": res["figure"],
                                                 **slim(res, ("seconds", "other_cpu", "redone"))}}})
    finally:
        b.stop()
    return {"rows": [a, c], "params": {"count": count},
            "plain": "n/a: no pigeon-bench mode times a persistent session's queued messages"}


# ---------------------------------------------------------------- 5 ----
def growth(ctx):
    q = ctx.quick
    small, fill, count = (1000, 10000, 5000) if q else (1000, 1000000, 20000)
    rs = row("growth-small", f"chat to a user with {small:,} stored", "msg/s")
    r = row("growth", f"chat to a user with {fill:,} stored", "msg/s",
            target={"on": "ratio", "op": ">=", "value": 0.8},
            ratio_def=f"vs {small:,} stored")
    r["small"], r["fill"] = small, fill
    b = ctx.broker("pigeon")
    big = ctx.prefix("gbig")
    try:
        t0 = time.monotonic()
        # untimed, and never redone: a second fill would double the big inbox
        fres = ctx.bench(b, "chat", ["--count", fill, "--window", 1000, "--to", big], "fill",
                         timeout=900, redo=False)
        fill_s = time.monotonic() - t0
        for rep in range(ctx.reps):
            su = ctx.prefix("gs")
            ctx.bench(b, "chat", ["--count", small, "--to", su], "fill-small", redo=False)
            time.sleep(1 if q else 2)  # the store thread catches up with the fills
            vals = {}
            for u in ((su, big) if rep % 2 == 0 else (big, su)):
                res = ctx.bench(b, "chat", ["--count", count, "--to", u],
                                "big" if u == big else "small", same_uids=True)
                vals["big" if u == big else "small"] = res
            rs["reps"].append({"pigeon": vals["small"]["figure"], "plain": None, "ratio": None,
                               "raw": {"pigeon": slim(vals["small"], ("seconds", "other_cpu",
                                                                      "redone"))}})
            r["reps"].append({"pigeon": vals["big"]["figure"], "plain": None,
                              "ratio": ratio(vals["big"]["figure"], vals["small"]["figure"]),
                              "raw": {"pigeon": slim(vals["big"], ("seconds", "other_cpu",
                                                                   "redone"))}})
    finally:
        b.stop()
    return {"rows": [rs, r], "params": {"small": small, "fill": fill, "count": count,
                                        "fill_s": round(fill_s, 1),
                                        "fill_msg_per_s": round(fres["figure"])}}


# ---------------------------------------------------------- 6 and 9 ----
def _rss(b):
    return {"rss": b.status("VmRSS"), "pss": b.pss()}


def memory_and_load(ctx):
    """Workloads 6 (bytes per idle connection, two batches of new uids) and
    9 (1->1 throughput with 19,000 others connected vs 1), on one fresh
    broker per kind and repetition."""
    q = ctx.quick
    k = 2000 if q else 19000
    count = 20000 if q else 50000
    # Two repetitions at most: four batches of 19,000 connects per broker are
    # the slow part of the full mode, and RSS is a steadier figure than a rate.
    reps = min(ctx.reps, 2)
    m1 = row("mem1", f"bytes per connection, {k:,} connections", "B", better="lower",
             target={"on": "ratio", "op": "<=", "value": 1.3})
    m2 = row("mem2", f"bytes per connection, a second {k:,} new uids", "B", better="lower",
             target={"on": "ratio", "op": "<=", "value": 1.3})
    flat = row("memflat", "second batch / first batch", "x", better="lower",
               target={"on": "pigeon", "op": "<=", "value": 1.1}, ratio_def="-")
    l1 = row("load1", "1->1 throughput, 1 other idle connection", "msg/s",
             target={"on": "ratio", "op": ">=", "value": 0.9})
    lk = row("loadk", f"1->1 throughput, {k:,} other idle connections", "msg/s",
             target={"on": "ratio", "op": ">=", "value": 0.9})
    lc = row("loadcost", f"throughput with {k:,} idle / with 1", "x", ratio_def="-")
    # pigeon's presence grace (10 s default) plus a margin; quick mode does not
    # wait for it (its second batch then overstates pigeon's figure)
    grace_s = 1 if q else 11
    for rep in range(reps):
        vals = {}
        for kind in ctx.order(rep):
            b = ctx.broker(kind)
            v = {}
            try:
                w = Holder(ctx, b, 1, ctx.prefix("w"), "warmup")
                ctx.extra_pids.append(w.proc.pid)
                w.wait_ready()
                w.release()
                ctx.extra_pids.remove(w.proc.pid)
                time.sleep(1)
                v["before"] = _rss(b)
                for batch in ("a", "b"):
                    h = Holder(ctx, b, k, ctx.prefix("m" + batch), kind)
                    ctx.extra_pids.append(h.proc.pid)
                    line = h.wait_ready()
                    ctx.log(f"    idle {kind} batch {batch}: {k} connected in "
                            f"{line.get('seconds', 0):.1f} s")
                    time.sleep(1)
                    v["held_" + batch] = _rss(b)
                    if batch == "b":
                        # workload 9, while the second batch is held
                        res = ctx.bench(b, "throughput", ["--pairs", 1, "--count", count,
                                                          "--window", 100, "--to",
                                                          ctx.prefix("ld")], kind)
                        v["tp_loaded"] = slim(res, ("figure", "p50_us", "p99_us", "other_cpu",
                                                    "redone"))
                    h.release()
                    ctx.extra_pids.remove(h.proc.pid)
                    if batch == "a":
                        if kind == "pigeon":
                            time.sleep(grace_s)  # the first batch's presence grace ends
                        v["after_a"] = _rss(b)
                one = Holder(ctx, b, 1, ctx.prefix("o"), kind)
                ctx.extra_pids.append(one.proc.pid)
                one.wait_ready()
                res = ctx.bench(b, "throughput", ["--pairs", 1, "--count", count, "--window", 100,
                                                  "--to", ctx.prefix("ld")], kind)
                v["tp_one"] = slim(res, ("figure", "p50_us", "p99_us", "other_cpu", "redone"))
                one.release()
                ctx.extra_pids.remove(one.proc.pid)
            finally:
                b.stop()
                ctx.extra_pids = []
            v["bpc_a"] = round((v["held_a"]["rss"] - v["before"]["rss"]) / k, 1)
            v["bpc_b"] = round((v["held_b"]["rss"] - v["before"]["rss"]) / k, 1)
            ctx.log(f"    memory {kind}: {v['bpc_a']:.0f} B/connection, second batch "
                    f"{v['bpc_b']:.0f} B/connection")
            vals[kind] = v
        first = ctx.order(rep)[0]
        g, p = vals["pigeon"], vals["plain"]
        for r, key in ((m1, "bpc_a"), (m2, "bpc_b")):
            r["reps"].append({"pigeon": g[key], "plain": p[key], "ratio": ratio(g[key], p[key]),
                              "first": first})
        flat["reps"].append({"pigeon": ratio(g["bpc_b"], g["bpc_a"]),
                             "plain": ratio(p["bpc_b"], p["bpc_a"]), "ratio": None})
        for r, key in ((l1, "tp_one"), (lk, "tp_loaded")):
            r["reps"].append({"pigeon": g[key]["figure"], "plain": p[key]["figure"],
                              "ratio": ratio(g[key]["figure"], p[key]["figure"]), "first": first})
        lc["reps"].append({"pigeon": ratio(g["tp_loaded"]["figure"], g["tp_one"]["figure"]),
                           "plain": ratio(p["tp_loaded"]["figure"], p["tp_one"]["figure"]),
                           "ratio": None})
        m1["reps"][-1]["raw"] = vals
    return {"memory": {"rows": [m1, m2, flat], "params": {"connections": k,
                                                           "wait_after_first_s": grace_s}},
            "load": {"rows": [l1, lk, lc], "params": {"connections": k, "count": count}}}


# ---------------------------------------------------------------- 7 ----
def storms(ctx):
    q = ctx.quick
    count, warm = (2000, 200) if q else (10000, 1000)
    algs = (("HS256", ["--secret-file", str(ctx.keys.secret)], 0.9),
            ("ES256", ["--key-file", str(ctx.keys.es256_private)], None))
    rows = {a: row(f"storm{a}", f"{a}: {count:,} sequential connects", "connects/s",
                   target={"on": "ratio", "op": ">=", "value": t} if t else None)
            for a, _, t in algs}
    tokens = ctx_tokens(ctx)
    bro = {k: ctx.broker(k) for k in ("pigeon", "plain")}
    try:
        for alg, cred, _ in algs:
            for kind in ("pigeon", "plain"):
                ctx.bench(bro[kind], "connect", ["--count", warm, "--time-limit", 120],
                          f"warmup-{kind}", auth=cred)
        for rep in range(ctx.reps):
            for alg, cred, _ in algs:
                def one(kind, cred=cred):
                    res = ctx.bench(bro[kind], "connect", ["--count", count, "--time-limit", 120],
                                    kind, auth=cred, timeout=200)
                    return res["figure"], slim(res, ("p50_us", "p99_us", "max_us", "other_cpu",
                                                      "broker_cores", "redone"))
                pair_rep(rows[alg]["reps"], ctx, rep, one)
    finally:
        for b in bro.values():
            b.stop()
    return {"rows": list(rows.values()), "tokens": tokens, "params": {"count": count}}


def ctx_tokens(ctx):
    """pigeon-bench tokens: verifications per second on one core, per algorithm."""
    try:
        r = subprocess.run([str(ctx.bench_bin), "tokens", "--seconds", "1"], capture_output=True,
                           text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return {}
    out = {}
    for line in r.stdout.splitlines():
        try:
            p = parse_line(line)
        except BenchError:
            continue
        out[p["label"]] = p["figure"]
    return out


# ---------------------------------------------------------------- 8 ----
class FakeApns:
    """bench/fake_apns.js on a free port, with a throwaway CA and APNs key made
    by the integration tests' pushlib; its control API for the counters."""

    def __init__(self, ctx):
        sys.path.insert(0, str(ctx.root / "tests" / "integration"))
        import pushlib  # the integration tests' CA and APNs key makers
        d = ctx.tmp / "fake"
        d.mkdir()
        self.ca = pushlib.make_ca(d / "ca")
        self.p8, pub, self.kid, self.team = pushlib.make_apns_key(d)
        self.err = open(d / "fake.log", "w")
        self.proc = subprocess.Popen(
            [os.environ.get("PIGEON_NODE", "node"), str(ctx.root / "bench" / "fake_apns.js"),
             "--cert", str(self.ca.cert), "--key", str(self.ca.key), "--port", "0",
             "--apns-key-pub", str(pub), "--apns-key-id", self.kid, "--apns-team-id", self.team],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True)
        r, _, _ = select.select([self.proc.stdout], [], [], 20)
        if not r:
            self.stop()
            raise BenchError("the fake APNs server did not start")
        info = json.loads(self.proc.stdout.readline())
        self.port, self.control = info["port"], info["control"]
        ctx.extra_pids.append(self.proc.pid)

    def _call(self, path, body=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.control}{path}",
                                     data=None if body is None else json.dumps(body).encode(),
                                     method="GET" if body is None else "POST",
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def stats(self):
        return self._call("/stats")

    def reset(self):
        self._call("/reset", {})

    def mode(self, mode):
        """'ok', or 'stall': every later request is held without an answer."""
        self._call("/mode", {"mode": mode})

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.err.close()


def push(ctx):
    q = ctx.quick
    count, users = (5000, 1000) if q else (40000, 20000)
    r = row("push", f"{count:,} CHATs to {users:,} offline users with an APNs device",
            "pushes/s", target={"on": "pigeon", "op": ">=", "value": 5000})
    fake = FakeApns(ctx)
    b = None
    try:
        opts = {"ca_file": fake.ca.ca_file, "apns_key_file": fake.p8, "apns_key_id": fake.kid,
                "apns_team_id": fake.team, "apns_topic": "com.example.pigeon",
                "apns_url": f"https://127.0.0.1:{fake.port}", "coalesce_ms": 0,
                "request_timeout_ms": 10000}
        b = B.Broker(ctx, "pigeon", name="push", max_queued=100000, push=opts).start()
        b.stop()  # pigeon_push made its tables; devices go straight into them
        pre = ctx.prefix("pu")
        con = sqlite3.connect(b.dir / "pigeon-push.db", timeout=10)
        now = int(time.time() * 1000)
        with con:
            con.executemany(
                "INSERT OR REPLACE INTO push_devices(uid, device, platform, token, app, sandbox,"
                " registered_ms) VALUES (?, 'ios', 'apns', ?, '', 0, ?)",
                ((f"{pre}{i}", hashlib.sha256(f"{pre}{i}/ios".encode()).hexdigest(), now)
                 for i in range(users)))
        con.close()
        b.start()
        ctx.log(f"#   push broker on 127.0.0.1:{b.port}, {users} devices, fake APNs :{fake.port}")
        ctx.extra_pids.append(fake.proc.pid)
        for rep in range(ctx.reps + 1):  # the first is an untimed warm-up
            n = min(count, 10000) if rep == 0 else count
            fake.reset()
            t_start = time.monotonic()
            cmd = [str(ctx.bench_bin), "push-load", "--port", str(b.port), "--secret-file",
                   str(ctx.keys.secret), "--count", str(n), "--users", str(users), "--to", pre,
                   "--rate", "0", "--label", "pigeon"]
            sender = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
            rows_ = []
            last_change, last_req = t_start, -1
            while True:
                t = time.monotonic()
                st = fake.stats()
                rows_.append((t, st["requests"], B.proc_ticks(b.pid())))
                if st["requests"] != last_req:
                    last_req, last_change = st["requests"], t
                if st["requests"] >= n or t - last_change > 15 or t - t_start > 240:
                    break
                time.sleep(0.2)
            try:
                out, err = sender.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                sender.kill()
                raise BenchError("push-load did not finish")
            if sender.returncode != 0:
                raise BenchError(f"push-load exited {sender.returncode}: {err[-600:]}")
            total = rows_[-1][1]

            def at(frac):
                return next((x for x in rows_ if x[1] >= frac * total), rows_[-1])
            a, z = at(0.1), at(0.9)
            dt = z[0] - a[0]
            rate = (z[1] - a[1]) / dt if dt > 0 else 0.0
            cores = (z[2] - a[2]) / B.CLK_TCK / dt if dt > 0 else 0.0
            st = fake.stats()
            ctx.log(f"    push {'warm-up' if rep == 0 else rep}: {rate:.0f} pushes/s requests="
                    f"{total} ok={st.get('ok')} messages={st.get('messages')} "
                    f"broker_cores={cores:.2f}")
            if rep:
                r["reps"].append({"pigeon": round(rate), "plain": None, "ratio": None,
                                  "raw": {"pigeon": {"requests": total, "ok": st.get("ok"),
                                                     "messages": st.get("messages"),
                                                     "sessions": st.get("sessions"),
                                                     "broker_cores": round(cores, 2),
                                                     "load": out.strip()}}})
        b.stop()
        b = None
        lat = push_stall_latency(ctx, fake, opts)
    finally:
        if b:
            b.stop()
        fake.stop()
        ctx.extra_pids = [p for p in ctx.extra_pids if p != fake.proc.pid]
    return {"rows": [r, lat], "params": {"count": count, "users": users, "coalesce_ms": 0}}


def push_stall_latency(ctx, fake, opts):
    """bench/push.sh's latency part: publish -> delivery latency to an online
    device whose user also has an offline APNs device, the provider never
    answering (every push stalls, coalesce_ms 1000), against pigeon without a
    provider."""
    q = ctx.quick
    rate, seconds = 2000, (2 if q else 6)
    r = row("push-stall", f"p99 latency at {rate:,} msg/s, provider stalled vs no provider",
            "us", better="lower", target={"on": "ratio", "op": "<=", "value": 1.2},
            ratio_def="stalled/none")
    opts = dict(opts, coalesce_ms=1000)
    pre = ctx.prefix("pl")
    st = B.Broker(ctx, "pigeon", name="pushstall", max_queued=100000, push=opts).start()
    st.stop()
    con = sqlite3.connect(st.dir / "pigeon-push.db", timeout=10)
    with con:
        con.executemany(
            "INSERT OR REPLACE INTO push_devices(uid, device, platform, token, app, sandbox,"
            " registered_ms) VALUES (?, 'ipad', 'apns', ?, '', 0, ?)",
            ((f"{pre}{i}", hashlib.sha256(f"{pre}{i}/ipad".encode()).hexdigest(),
              int(time.time() * 1000)) for i in range(ctx.reps)))
    con.close()
    fake.reset()
    fake.mode("stall")
    st.start()
    none = ctx.broker("pigeon")
    keys = ("p50_us", "p99_us", "p999_us", "max_us", "other_cpu", "redone")
    try:
        for rep in range(ctx.reps):
            vals = {}
            for name in (("stall", "none") if rep % 2 == 0 else ("none", "stall")):
                res = ctx.bench(st if name == "stall" else none, "latency",
                                ["--to", f"{pre}{rep}", "--rate", rate, "--count", rate * seconds,
                                 "--warmup", rate // 2, "--time-limit", seconds + 30], name,
                                timeout=seconds + 60, same_uids=True)
                vals[name] = res
            r["reps"].append({"pigeon": vals["stall"]["p99_us"], "plain": vals["none"]["p99_us"],
                              "ratio": ratio(vals["stall"]["p99_us"], vals["none"]["p99_us"]),
                              "raw": {"pigeon": slim(vals["stall"], keys),
                                      "plain": slim(vals["none"], keys)}})
        r["fake"] = fake.stats()
    finally:
        st.stop()
        none.stop()
        fake.reset()
    return r


# --------------------------------------------------------------- 10 ----
def send(ctx):
    """bench/clients.sh's send part: pigeon-send to N users from a file vs the
    raw CHAT throughput of `pigeon-bench chat` on the same broker."""
    count, window = (2000 if ctx.quick else 10000), 500
    r = row("send", f"pigeon-send to {count:,} users (window {window})", "msg/s",
            target={"on": "ratio", "op": ">=", "value": 0.8},
            ratio_def="vs chat")
    rc = row("send-chat", f"pigeon-bench chat, {count:,} messages (window {window})", "msg/s")
    b = ctx.broker("pigeon")
    try:
        tok = subprocess.run([str(ctx.build / "bin" / "pigeon-token"), "mint", "--secret-file",
                              str(ctx.keys.secret), "--sub", "backend", "--role", "service",
                              "--ttl", "86400"], capture_output=True, text=True, timeout=30,
                             check=True).stdout.strip()
        body = ctx.tmp / "body"
        body.write_bytes(b"x" * 256)
        for rep in range(ctx.reps):
            vals = {}
            for what in (("send", "chat") if rep % 2 == 0 else ("chat", "send")):
                if what == "chat":
                    res = ctx.bench(b, "chat", ["--count", count, "--window", window,
                                                "--to", ctx.prefix("sc")], "pigeon")
                    vals["chat"] = res["figure"]
                    continue
                users = ctx.tmp / f"users-{ctx.next_id()}"
                pre = ctx.prefix("su")
                users.write_text("".join(f"{pre}{i}\n" for i in range(count)))
                out = ctx.tmp / f"send-{ctx.next_id()}.out"
                t0 = time.monotonic()
                with open(out, "w") as f:
                    p = subprocess.run([str(ctx.build / "bin" / "pigeon-send"), "-p", str(b.port),
                                        "--token", tok, "--body-file", str(body), "--to-file",
                                        str(users), "--window", str(window), "--timeout", "300"],
                                       stdout=f, stderr=subprocess.PIPE, text=True, timeout=330)
                dt = time.monotonic() - t0
                if p.returncode != 0:
                    raise BenchError(f"pigeon-send exited {p.returncode}: {p.stderr[-600:]}")
                stored = sum(1 for line in out.read_text().splitlines()
                             if len(line.split()) == 2 and line.split()[1].isdigit()
                             and int(line.split()[1]) > 0)
                if stored != count:
                    raise BenchError(f"pigeon-send stored {stored} of {count}")
                vals["send"] = round(count / dt)
                ctx.log(f"    send pigeon {vals['send']} msg/s count={count} seconds={dt:.3f}")
            r["reps"].append({"pigeon": vals["send"], "plain": None,
                              "ratio": ratio(vals["send"], vals["chat"])})
            rc["reps"].append({"pigeon": vals["chat"], "plain": None, "ratio": None})
    finally:
        b.stop()
    return {"rows": [r, rc], "params": {"count": count, "window": window}}


# name -> (function, the results keys it fills)
ALL = [
    ("throughput", throughput),
    ("latency", latency),
    ("notify", notify),
    ("catchup", catchup),
    ("growth", growth),
    ("memory", memory_and_load),  # fills "memory" and "load"
    ("storms", storms),
    ("push", push),
    ("send", send),
]
