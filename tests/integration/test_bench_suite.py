# SPDX-License-Identifier: Apache-2.0
"""
The benchmark suite's generator (bench/suite/report.py, plots.py) on a
recorded quick run (bench/suite/testdata/quick-results.json), no broker:
`bench/suite.py --report-only` must write a page with every workload's table
and valid PNGs, so that a change to the generator cannot silently break the
committed docs/benchmarks.md. Also the medians, ratios and verdicts on a
hand-made row.
"""

import json
import subprocess
import sys
from pathlib import Path

import harness

REPO = harness.REPO
BENCH = REPO / "bench"
RECORDED = BENCH / "suite" / "testdata" / "quick-results.json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TABLE_HEAD = "| workload | pigeon | plain | ratio | target | met |"

sys.path.insert(0, str(BENCH))
from suite import report  # noqa: E402


def test_summary_of_a_row():
    row = {"id": "x", "name": "x", "unit": "msg/s", "ratio_def": "pigeon/plain",
           "target": {"on": "ratio", "op": ">=", "value": 0.9},
           "reps": [{"pigeon": 90, "plain": 100, "ratio": 0.9},
                    {"pigeon": 200, "plain": 100, "ratio": 2.0},
                    {"pigeon": 80, "plain": 100, "ratio": 0.8}]}
    s = report.summarize(row)
    # medians of each broker, and the median of the per-repetition ratios
    # (not the ratio of the medians, 0.9)
    assert s["pigeon"] == 90 and s["plain"] == 100 and s["ratio"] == 0.9 and s["met"] is True
    row["reps"].pop(1)
    s = report.summarize(row)
    assert abs(s["ratio"] - 0.85) < 1e-9 and s["met"] is False
    row["target"] = {"on": "pigeon", "op": "<=", "value": 100}
    assert report.summarize(row)["met"] is True
    row["reps"] = []
    assert report.summarize(row) == {"pigeon": None, "plain": None, "ratio": None, "met": None}


def test_report_and_plots_from_recorded_results(tmp_path):
    results = json.loads(RECORDED.read_text())
    r = subprocess.run([sys.executable, str(BENCH / "suite.py"), "--report-only", str(RECORDED),
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    page = (tmp_path / "benchmarks.md").read_text()
    assert page.startswith("# Benchmarks")
    for fact in ("nproc", "model", "kernel", "mosquitto", "pigeon", "openssl"):
        assert str(results["meta"]["machine"][fact]) in page, fact
    assert results["meta"]["command"] in page

    # every workload of the suite has its section, its table and its rows
    sections = {key: title for key, title, *_ in report.SECTIONS}
    expected = {"throughput", "latency", "notify", "catchup", "growth", "memory", "load",
                "storms", "push", "send"}
    assert set(sections) == expected
    assert set(results["workloads"]) == expected, "the recorded run lacks a workload"
    for key, title in sections.items():
        head = f"## {title}\n"
        assert head in page, title
        body = page.split(head, 1)[1].split("\n## ", 1)[0]
        assert TABLE_HEAD in body, f"no table in {title}"
        for row in results["workloads"][key]["rows"]:
            assert f"| {row['name']} ({row['unit']}) |" in body, (title, row["name"])

    # the plots exist, are PNGs and the page links them
    pngs = sorted((tmp_path / "bench").glob("*.png"))
    names = {p.name for p in pngs}
    assert {"throughput.png", "memory.png"} <= names
    lat = [n for n in names if n.startswith("latency-")]
    assert len(lat) == len(results["workloads"]["latency"]["rows"])
    for p in pngs:
        assert p.read_bytes()[:8] == PNG_MAGIC, p.name
        assert p.stat().st_size > 2000, p.name
        assert f"](bench/{p.name})" in page, p.name
    assert json.loads((tmp_path / "bench" / "results.json").read_text()) == results
