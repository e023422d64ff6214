# SPDX-License-Identifier: Apache-2.0
"""results -> PNGs through gnuplot (Debian's gnuplot-nox has pngcairo):

  throughput.png        bars of msg/s per case (workloads 1 and 9), both brokers
  latency-<case>.png    percentile curves of each latency row, both brokers,
                        log-x 1/(1-p)
  memory.png            bars of bytes per idle connection, both batches

make(results, dir) writes them into dir and returns {section key: [file names]}.
Data files go to a temporary directory; gnuplot reads its script on stdin
(bounded by a timeout). Single-threaded, no state.
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

from .report import median, summarize

TERMINAL = "set terminal pngcairo size 900,520 font 'sans,10'"
COLORS = {"pigeon": "#1f77b4", "plain": "#ff7f0e"}


def gnuplot(script, limit_s=60):
    exe = shutil.which("gnuplot")
    if not exe:
        raise RuntimeError("gnuplot not found (Debian: gnuplot-nox, in scripts/debian-packages.txt)")
    r = subprocess.run([exe], input=script, capture_output=True, text=True, timeout=limit_s)
    if r.returncode != 0:
        raise RuntimeError(f"gnuplot failed: {r.stderr[-800:]}")


def _q(s):
    return s.replace('"', "'")


def bars(path, title, ylabel, cases, tmp):
    """cases: [(label, pigeon, plain)]; clustered bars."""
    dat = Path(tmp) / (Path(path).stem + ".dat")
    with open(dat, "w") as f:
        f.write("# case pigeon plain\n")
        for label, g, p in cases:
            f.write(f'"{_q(label)}" {g if g is not None else 0} {p if p is not None else 0}\n')
    gnuplot(f"""{TERMINAL}
set output "{path}"
set title "{_q(title)}"
set ylabel "{_q(ylabel)}"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:*]
set grid ytics
set key top right
set xtics noenhanced
plot "{dat}" using 2:xtic(1) title "pigeon" lc rgb "{COLORS['pigeon']}", \\
     "" using 3 title "plain" lc rgb "{COLORS['plain']}"
""")


def curves(path, title, series, tmp):
    """series: {broker: [[percentile, us, x], ...]}: latency against 1/(1-p), log-x."""
    plots = []
    for kind, pts in series.items():
        pts = [p for p in pts if p[2] >= 1]
        if not pts:
            continue
        dat = Path(tmp) / f"{Path(path).stem}-{kind}.dat"
        with open(dat, "w") as f:
            for p, us, x in pts:
                f.write(f"{x} {us} {p}\n")
        plots.append(f'"{dat}" using 1:2 with linespoints pt 7 ps 0.5 lw 2 '
                     f'lc rgb "{COLORS.get(kind, "#444444")}" title "{kind}"')
    if not plots:
        plots.append("1/0 title 'no data'")
    gnuplot(f"""{TERMINAL}
set output "{path}"
set title "{_q(title)}"
set logscale x 10
set logscale y 10
set xrange [1:*]
set xlabel "percentile (axis: 1/(1-p))"
set ylabel "latency (us)"
set xtics ("0%%" 1, "50%%" 2, "90%%" 10, "99%%" 100, "99.9%%" 1000, "99.99%%" 10000, "99.999%%" 100000)
set grid xtics ytics mytics
set key top left
plot {", ".join(plots)}
""")


def pick_curve(curve_list, reps, kind):
    """The curve of the repetition whose p99 is the median (or the first)."""
    if not curve_list:
        return []
    p99s = [rep.get(kind) for rep in reps]
    m = median(p99s)
    for i, v in enumerate(p99s):
        if v == m and i < len(curve_list):
            return curve_list[i]
    # an even count: the median is between two; take the nearer
    best = min(range(min(len(p99s), len(curve_list))),
               key=lambda i: abs((p99s[i] or 0) - (m or 0)), default=0)
    return curve_list[best]


def make(results, out_dir):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    w = results.get("workloads", {})
    images = {}
    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        for key in ("throughput", "load"):
            for r in (w.get(key) or {}).get("rows", []):
                if r["unit"] == "msg/s":
                    s = summarize(r)
                    label = r["name"]
                    if key == "load":
                        label = "1->1, " + label.split(", ", 1)[1].replace(
                            " other idle connections", " idle").replace(
                            " other idle connection", " idle")
                    cases.append((label, s["pigeon"], s["plain"]))
        if cases:
            bars(out_dir / "throughput.png", "Throughput, QoS 1, 256 B (median msg/s)", "msg/s",
                 cases, tmp)
            images.setdefault("throughput", []).append("throughput.png")
        lat = w.get("latency")
        if lat:
            for r in lat["rows"]:
                rid = r["id"]
                name = (f"latency-{r['rate']}.png" if r.get("publishers", 1) == 1
                        else f"latency-{r['publishers']}x{r['publishers']}-{r['rate']}.png")
                cv = lat.get("curves", {}).get(rid, {})
                series = {k: pick_curve(cv.get(k, []), r["reps"], k) for k in ("pigeon", "plain")}
                curves(out_dir / name, f"Latency, {r['name']} (QoS 1, 256 B)", series, tmp)
                images.setdefault("latency", []).append(name)
        mem = w.get("memory")
        if mem:
            cases = []
            for r in mem["rows"]:
                if r["unit"] == "B":
                    s = summarize(r)
                    cases.append((r["name"].replace("bytes per connection, ", ""), s["pigeon"],
                                  s["plain"]))
            bars(out_dir / "memory.png", "Broker memory per idle connection (median VmRSS growth)",
                 "bytes per connection", cases, tmp)
            images.setdefault("memory", []).append("memory.png")
    return images
