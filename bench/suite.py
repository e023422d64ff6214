#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""pigeon's benchmark suite: every workload against pigeon (Mosquitto + all
plugins) and plain Mosquitto, one report.

  bench/suite.py [--quick] [--out DIR] [--reps N] [--mosquitto PATH]
                 [--build-dir DIR (build-bench)] [--only W,W] [--skip W,W]
                 [--max-other-cpu PCT (10)] [--wait-quiet S (30; quick 0)]
                 [--report-only RESULTS.json]

Workloads: throughput, latency, notify, catchup, growth, memory (memory per
idle connection and throughput under load), storms, push. Full mode: 3
repetitions, the counts of docs/benchmarks.md (<= 15 minutes on 2 cores);
--quick: 1 repetition, small counts, every workload (<= 2 minutes).

Writes DIR/benchmarks.md, DIR/bench/*.png and DIR/bench/results.json. DIR
defaults to docs/ in full mode and to build-bench/quick/ with --quick, so a
quick run never overwrites the committed report. --report-only regenerates
the page and the plots from a results file, without running anything.

Expects pigeon-bench and the plugins built in --build-dir (scripts/bench.sh
builds them). Exit status: 0 when every workload ran, 1 when one failed
(the report says which), 2 on a usage error. Brokers, idle holders and the
fake APNs server are stopped on every exit path.
"""

import argparse
import datetime
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite import brokers, plots, report, workloads  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NAMES = [n for n, _ in workloads.ALL]


def log(msg):
    print(msg, flush=True)


def write_outputs(results, out):
    out = Path(out)
    img_dir = out / "bench"
    img_dir.mkdir(parents=True, exist_ok=True)
    (img_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    images = plots.make(results, img_dir)
    rel = {k: [f"bench/{f}" for f in v] for k, v in images.items()}
    (out / "benchmarks.md").write_text(report.render(results, rel))
    return out / "benchmarks.md"


def wait_quiet(limit_s, max_other):
    """Up to limit_s seconds for a 2 s window in which the machine is (nearly) idle."""
    t_end = time.monotonic() + limit_s
    while time.monotonic() < t_end:
        b0 = brokers.busy_ticks()
        time.sleep(2)
        pct = (brokers.busy_ticks() - b0) / brokers.CLK_TCK / 2 * 100
        if pct <= max_other:
            return True
    return limit_s == 0


def main(argv):
    ap = argparse.ArgumentParser(prog="bench/suite.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--mosquitto", default=os.environ.get("PIGEON_MOSQUITTO", "/usr/sbin/mosquitto"))
    ap.add_argument("--build-dir", default=str(ROOT / "build-bench"))
    ap.add_argument("--only", default="")
    ap.add_argument("--skip", default="")
    ap.add_argument("--max-other-cpu", type=float, default=10.0)
    ap.add_argument("--wait-quiet", type=float)
    ap.add_argument("--report-only")
    ap.add_argument("--command", help=argparse.SUPPRESS)  # the command the report names
    a = ap.parse_args(argv)

    out = Path(a.out) if a.out else (Path(a.build_dir) / "quick" if a.quick else ROOT / "docs")
    if a.report_only:
        results = json.loads(Path(a.report_only).read_text())
        log(f"wrote {write_outputs(results, out)}")
        return 0

    only = [w for w in a.only.split(",") if w]
    skip = [w for w in a.skip.split(",") if w]
    for w in only + skip:
        if w not in NAMES:
            ap.error(f"no workload '{w}' (workloads: {', '.join(NAMES)})")
    reps = a.reps or (1 if a.quick else 3)
    if not 1 <= reps <= 20:
        ap.error("--reps is 1..20")
    build = Path(a.build_dir)
    for f in (build / "bin" / "pigeon-bench", build / "lib" / "pigeon_auth.so",
              build / "lib" / "pigeon_inbox.so", build / "lib" / "pigeon_push.so"):
        if not f.exists():
            ap.error(f"not built: {f} (scripts/bench.sh builds it)")
    if not shutil.which(a.mosquitto):
        ap.error(f"no broker at {a.mosquitto}")

    t_start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="pigeon-suite.")
    # SIGTERM/SIGINT unwind through the workloads' finally blocks (brokers stopped).
    def on_signal(sig, _frame):
        raise KeyboardInterrupt(f"signal {sig}")
    signal.signal(signal.SIGTERM, on_signal)

    mode = "quick" if a.quick else "full"
    cmd = a.command or ("./scripts/bench.sh" + (" --quick" if a.quick else ""))
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "mode": mode, "reps": reps, "command": cmd, "mosquitto_path": a.mosquitto,
            "machine": brokers.machine(a.mosquitto, ROOT), "max_other": a.max_other_cpu,
            "skipped": [], "failed": {}, "seconds": {}}
    results = {"meta": meta, "workloads": {}}
    rc = 0
    try:
        wq = a.wait_quiet if a.wait_quiet is not None else (0 if a.quick else 30)
        if not wait_quiet(wq, a.max_other_cpu):
            log(f"# WARNING: the machine was still busy after {wq:.0f} s")
        ctx = workloads.Context(root=ROOT, build=build, mosquitto=a.mosquitto, tmp=tmp,
                                quick=a.quick, reps=reps, max_other=a.max_other_cpu, log=log)
        log(f"# pigeon benchmark suite, {mode} mode, {reps} repetition(s), "
            f"{meta['machine']['mosquitto']}, pigeon {meta['machine']['pigeon']}")
        for name, fn in workloads.ALL:
            if (only and name not in only) or name in skip:
                meta["skipped"].append(name)
                continue
            t0 = time.monotonic()
            log(f"## {name}")
            try:
                sec = fn(ctx)
            except (workloads.BenchError, RuntimeError, OSError, KeyError, ValueError) as e:
                log(f"# {name} FAILED: {e}")
                traceback.print_exc(file=sys.stdout)
                meta["failed"][name] = str(e)[:300]
                rc = 1
                sec = None
            if sec is not None:
                if name == "memory":
                    results["workloads"].update(sec)
                else:
                    results["workloads"][name] = sec
            meta["seconds"][name] = round(time.monotonic() - t0, 1)
            log(f"# {name}: {meta['seconds'][name]:.0f} s")
        meta["redone"] = ctx.redone
    except KeyboardInterrupt as e:
        log(f"# interrupted ({e})")
        meta["failed"]["interrupted"] = str(e)
        rc = 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    meta["total_s"] = round(time.monotonic() - t_start, 1)
    for key, sec in results["workloads"].items():
        for r in sec["rows"]:
            s = report.summarize(r)
            log(f"{key:10s} {r['name']:55s} pigeon {report.fmt(s['pigeon'], r['unit']):>10s} "
                f"plain {report.fmt(s['plain'], r['unit']):>10s} ratio "
                f"{report.fmt(s['ratio'], 'x'):>5s} met {report.met_text(s['met'])}")
    try:
        page = write_outputs(results, out)
        log(f"wrote {page} and {out / 'bench'}/")
    except (RuntimeError, OSError) as e:
        log(f"# writing the report failed: {e}")
        rc = 1
    log(f"total time {meta['total_s']:.0f} s ({mode} mode)")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
