# SPDX-License-Identifier: Apache-2.0
"""results.json -> docs/benchmarks.md. The page's explanatory text lives
here (SECTIONS), so a regenerated page always says what the figures are.

summarize() computes, from a row's repetitions only: the medians of pigeon
and plain, the ratio (the median of the per-repetition ratios when both ran
in the same repetition, else the ratio of the medians) and whether the
target is met. Pure functions of the results dictionary: no broker, no
clock, so tests/integration/test_bench_suite.py runs them on a recorded file.
"""

import math

COMMAND_FULL = "./scripts/bench.sh"
COMMAND_QUICK = "./scripts/bench.sh --quick"


def median(vals):
    v = sorted(x for x in vals if x is not None and not (isinstance(x, float) and math.isnan(x)))
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def summarize(row):
    reps = row.get("reps", [])
    g = median([r.get("pigeon") for r in reps])
    p = median([r.get("plain") for r in reps])
    rr = [r.get("ratio") for r in reps if r.get("ratio") is not None]
    if rr:
        ratio = median(rr)
    elif g is not None and p:
        ratio = g / p if row.get("ratio_def", "pigeon/plain") != "-" else None
    else:
        ratio = None
    met = None
    t = row.get("target")
    if t:
        x = ratio if t["on"] == "ratio" else g
        if x is not None:
            met = x >= t["value"] if t["op"] == ">=" else x <= t["value"]
    return {"pigeon": g, "plain": p, "ratio": ratio, "met": met}


def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if unit == "x" or (abs(v) < 10 and v != int(v)):
        return f"{v:.2f}"
    return f"{v:,.0f}"


def target_text(row):
    t = row.get("target")
    if not t:
        return "-"
    what = "ratio" if t["on"] == "ratio" else "pigeon"
    unit = "" if t["on"] == "ratio" or row["unit"] == "x" else " " + row["unit"]
    v = t["value"]
    vs = f"{v:g}" if v < 10 else f"{v:,.0f}"
    return f"{what} {t['op']} {vs}{unit}"


def met_text(m):
    return "-" if m is None else ("yes" if m else "**no**")


def table(rows):
    out = ["| workload | pigeon | plain | ratio | target | met |",
           "|---|---:|---:|---:|---|---|"]
    for r in rows:
        s = summarize(r)
        rd = r.get("ratio_def", "pigeon/plain")
        ratio = "-" if rd == "-" else fmt(s["ratio"], "x")
        if rd not in ("pigeon/plain", "-") and s["ratio"] is not None:
            ratio += f" ({rd})"
        out.append(f"| {r['name']} ({r['unit']}) | {fmt(s['pigeon'], r['unit'])} | "
                   f"{fmt(s['plain'], r['unit'])} | {ratio} | {target_text(r)} | "
                   f"{met_text(s['met'])} |")
    return "\n".join(out)


def raw_lines(rows):
    out = []
    for r in rows:
        parts = []
        for i, rep in enumerate(r.get("reps", []), 1):
            s = f"{fmt(rep.get('pigeon'), r['unit'])}"
            if rep.get("plain") is not None:
                s += f" / {fmt(rep.get('plain'), r['unit'])}"
            if rep.get("ratio") is not None:
                s += f" ({rep['ratio']:.2f})"
            others = []
            for kind, raw in (rep.get("raw") or {}).items():
                if isinstance(raw, dict) and raw.get("other_cpu") is not None:
                    others.append(f"{raw['other_cpu']:.0f}")
                if isinstance(raw, dict) and raw.get("redone") and "redone" not in s:
                    s += " redone"
            if others:
                s += f" [other CPU {'/'.join(others)} %]"
            parts.append(f"r{i} {s}")
        out.append(f"- {r['name']}: " + "; ".join(parts))
    return "\n".join(out)


def latency_detail(sec):
    out = ["| case | broker | p50 | p90 | p99 | p99.9 | max | lost |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in sec["rows"]:
        for kind in ("pigeon", "plain"):
            raws = [rep["raw"].get(kind, {}) for rep in r["reps"] if rep.get("raw")]

            def m(k):
                return fmt(median([x.get(k) for x in raws]))
            out.append(f"| {r['name']} | {kind} | {m('p50_us')} | {m('p90_us')} | {m('p99_us')} |"
                       f" {m('p999_us')} | {m('max_us')} | {m('lost')} |")
    return "\n".join(out)


# The fixed text of each section: (key in results, title, what it does, how to read it).
SECTIONS = [
    ("throughput", "Throughput (closed loop)",
     "`pigeon-bench throughput --pairs N --window 100 --size 256`: N publishers each send to "
     "their own online recipient (QoS 1 publish and subscription), each keeping at most 100 "
     "messages published but not yet received. msg/s = messages received / (first publish -> "
     "last reception); every message must arrive exactly once. Against pigeon every message "
     "is a CHAT, stored durably in the recipient's inbox before it is delivered (wrapped in an "
     "Envelope); against plain Mosquitto the same topics are plain MQTT.",
     "Higher is better. The ratio is pigeon/plain: what the inbox, auth and push plugins cost "
     "on the message path. Target: >= 0.9.",
     ["throughput.png"]),
    ("latency", "Latency (open loop)",
     "`pigeon-bench open --rate R`: message k is due at t0 + k/R and is sent then (late "
     "publishers send at once); latency = reception - due time, so a stall delays every "
     "message behind it (no coordinated omission). 1 s of warm-up is not recorded. Percentiles "
     "from an HDR-style histogram (<= 1 % error). One row per offered rate (1 publisher -> 1 "
     "subscriber), plus a fan-in/fan-out row: 10 publishers -> 10 subscribers.",
     "Lower is better; the figure is the p99. Target: p99 pigeon/plain <= 1.5. The curves plot "
     "latency against 1/(1-p) on a log axis: 10 = p90, 100 = p99, 1000 = p99.9.",
     []),
    ("notify", "Notifications with merging",
     "`pigeon-bench notify`: one service publishes notifications of several types round-robin "
     "to offline users; pigeon stores them and keeps only the latest of each type per user "
     "(merging). Plain Mosquitto gets the very same publishes but has no subscriber for them "
     "and drops them: its figure is the cost of receiving and discarding. After the runs the "
     "suite checks that pigeon's store holds exactly users x types messages per run.",
     "Higher is better. No target: the plain figure is a floor (receive + drop), not an "
     "equivalent.", []),
    ("catchup", "Catch-up",
     "A user with 10,000 stored messages (2,000 in quick mode) connects and receives them all: "
     "`pigeon-bench catchup` (connect, subscribe, sync requests until the last message) and "
     "`pigeon-bench client-catchup` (libpigeon-client, from pigeon_client_start() to the last "
     "message handed to the app; ms = count / its msg/s).",
     "Lower is better. Target: < 1 s (1,000 ms). Plain: n/a - the equivalent (a persistent "
     "session, offline while 10,000 QoS 1 messages were queued, timed from reconnect to the last "
     "message) needs a pigeon-bench mode that does not exist yet; Python would be too slow to "
     "time it fairly.", []),
    ("growth", "Inbox growth",
     "`pigeon-bench chat` (1 sender -> 1 online recipient, QoS 1, 256 B) to a user whose inbox "
     "already holds 1,000 messages vs one holding 1,000,000 (10,000 in quick mode), on the same "
     "pigeon broker; the big inbox is filled through the broker first (`chat --window 1000`). "
     "Pigeon only, the two users alternating which goes first.",
     "Higher is better; the ratio is big inbox / small inbox. Target: >= 0.8 (within 20 %).",
     []),
    ("memory", "Memory per idle connection",
     "A fresh broker, one warm-up connection, then VmRSS (/proc/<pid>/status); `pigeon-bench "
     "idle --count K` opens K connections (client id `<uid>:phone`, username and token on "
     "both brokers, each subscribed to "
     "`im/<uid>/#` QoS 1 like an app) and holds them; VmRSS again: bytes per connection = "
     "(held - before) / K. Then those K disconnect (full mode waits 11 s for pigeon's 10 s "
     "presence grace to end; quick mode 1 s) and "
     "K connections of NEW uids are held: their bytes per connection (against the same "
     "baseline) show whether the broker keeps memory per user ever seen.",
     "Lower is better. Target: pigeon/plain <= 1.3 for both batches, and pigeon's second batch "
     "within 1.1 x its first (flat in users ever seen). The suite runs pigeon's defaults: "
     "`plugin_opt_presence_offline retain` keeps a retained last-seen Presence per user ever "
     "seen (about 1.1 KB each, docs/configuration.md); `clear` makes the second batch flat on "
     "Mosquitto >= 2.0.16.",
     ["memory.png"]),
    ("load", "Throughput under load",
     "1->1 `throughput` (window 100) while the memory workload's second batch of K idle "
     "connections is held, then with a single other idle connection, on the same broker.",
     "Higher is better. `with K idle / with 1` shows how the cost grows with connected users "
     "(1.0 = not at all). Target: pigeon/plain >= 0.9 in both.", []),
    ("storms", "Connect storms",
     "`pigeon-bench connect`: sequential connect -> CONNACK -> disconnect cycles (MQTT 5, "
     "client id `b<i>:bench`, one token per connect minted before the clock starts), HS256 "
     "tokens (`--secret-file`) and ES256 tokens (`--key-file`); after one warm-up storm. Plain "
     "Mosquitto gets the very same CONNECT packets (it ignores the credentials), so the "
     "difference is pigeon_auth and the session bookkeeping.",
     "Higher is better. Target: HS256 pigeon/plain >= 0.9. ES256 has no target (signature "
     "verification dominates; see the verifications per core below).", []),
    ("push", "Push fan-out",
     "Pigeon only. U offline users with one APNs device each (registered straight into "
     "pigeon_push's table before the broker starts), `pigeon-bench push-load` publishes N QoS 1 "
     "CHATs round-robin to them, coalesce_ms 0, so every message is one push to "
     "bench/fake_apns.js (HTTP/2 over TLS, verifies the provider JWT and the payload). "
     "pushes/s = requests the fake received per second between 10 % and 90 % of them. One "
     "untimed warm-up run first.",
     "Higher is better. Target: >= 5,000 pushes/s over pigeon's connection(s) to the provider. "
     "Second row: the latency cost of a provider that never answers - `pigeon-bench latency` "
     "(2,000 msg/s, fixed schedule) to an online device whose user also has an offline APNs "
     "device, the fake stalling every request (coalesce_ms 1000: one push per second), against "
     "pigeon without a provider; in this row the pigeon column is the stalled broker's p99 and "
     "the plain column the one without a provider. Target: p99 ratio <= 1.2.",
     []),
    ("send", "Sending from a backend (pigeon-send)",
     "Pigeon only. `pigeon-send` (a service token, one 256-byte CHAT to each of N users read "
     "from a file, window 500): msg/s = N / the run's wall time, connect included; in the same "
     "repetitions, alternating which goes first, the raw CHAT throughput of `pigeon-bench chat` "
     "(QoS 1, 256 B, window 500) against the same broker.",
     "Higher is better; the ratio is pigeon-send / chat. Target: >= 0.8.", []),
]

INTRO = """Every figure on this page was measured by the benchmark suite, with the command
below, on the machine described below; the page itself is generated
(`bench/suite/report.py` holds this text). Rerun the command to check a
figure on your own machine; figures from different machines or dates are not
comparable. Raw results: `bench/results.json`.

**How to read it.** Both brokers are the same Mosquitto binary on free
127.0.0.1 ports, started fresh for each workload (`set_tcp_nodelay true`,
`persistence false`, `max_queued_messages 1000`, errors and warnings logged,
RLIMIT_NOFILE 20,000):

- **pigeon**: all plugins: `pigeon_auth.so` (HS256 secret and an ES256
  public key, `login_fail_limit 0`), `pigeon_inbox.so` (SQLite on disk in the run's temporary
  directory, `send_rate 0`, `sys_interval 0`, `max_per_user 2000000`) and
  `pigeon_push.so` (its own database; a provider only for the push
  workload), `allow_anonymous false`;
- **plain**: no plugin, `allow_anonymous true`. The clients are the same
  `pigeon-bench` runs with `--anonymous` instead of a secret, except the
  connect storms and the idle connections of the memory workload, where
  plain gets the very same CONNECT packets with username and token (which it
  does not check, but keeps: a fair memory comparison).

Every workload is repeated; which broker goes first alternates every
repetition. Tables give the medians over repetitions and the ratio
pigeon/plain as the median of the per-repetition ratios. `met` says whether
the target holds. The raw figures list each repetition as `pigeon / plain
(ratio)` and, in brackets, the CPU other processes used during the run, in
percent of one core (the noise guard: a run over the limit is run once more
and the second kept, marked `redone`; quick mode reports it and never
redoes). The memory workload runs at most 2 repetitions.
"""


def header(meta):
    m = meta.get("machine", {})
    lines = [
        "# Benchmarks", "",
        "<!-- generated by bench/suite.py: do not edit, rerun ./scripts/bench.sh -->", "",
        INTRO,
        "## This run", "",
        f"- date: {meta.get('date', '?')}",
        f"- mode: {meta.get('mode', '?')} ({meta.get('reps', '?')} repetition"
        f"{'' if meta.get('reps') == 1 else 's'}), total time "
        f"{meta.get('total_s', 0):.0f} s",
        f"- command: `{meta.get('command', COMMAND_FULL)}`",
        f"- machine: {m.get('nproc', '?')} cores, {m.get('model', '?')}, "
        f"{m.get('memtotal', '?')} RAM, Linux {m.get('kernel', '?')}, Debian "
        f"{m.get('debian', '?')}",
        f"- broker: {m.get('mosquitto', '?')} (`{meta.get('mosquitto_path', '?')}`)",
        f"- pigeon: {m.get('pigeon', '?')}, RelWithDebInfo; {m.get('openssl', '?')}; node "
        f"{m.get('node', '?')}",
        f"- noise guard: {meta.get('max_other', 10):g} % of a core; runs redone: "
        f"{meta.get('redone', 0)}",
    ]
    if meta.get("seconds"):
        lines.append("- time per workload: " + ", ".join(
            f"{k} {v:.0f} s" for k, v in meta["seconds"].items()))
    if meta.get("skipped"):
        lines.append(f"- not run: {', '.join(meta['skipped'])}")
    if meta.get("failed"):
        lines.append(f"- FAILED: " + "; ".join(f"{k}: {v}" for k, v in meta["failed"].items()))
    lines.append("")
    return "\n".join(lines)


def summary_table(results):
    out = ["## Summary", "", "| workload | pigeon | plain | ratio | target | met |",
           "|---|---:|---:|---:|---|---|"]
    for key, title, *_ in SECTIONS:
        sec = results.get("workloads", {}).get(key)
        if not sec:
            continue
        for r in sec["rows"]:
            if r.get("target"):
                out.append(table([r]).splitlines()[2].replace(f"| {r['name']}",
                                                              f"| {title}: {r['name']}", 1))
    return "\n".join(out) + "\n"


def render(results, images):
    """The page; images: {section key: [relative paths of its PNGs]}."""
    parts = [header(results.get("meta", {})), summary_table(results)]
    for key, title, what, read, _ in SECTIONS:
        sec = results.get("workloads", {}).get(key)
        parts.append(f"## {title}\n")
        parts.append(what + "\n")
        parts.append(read + "\n")
        if not sec:
            parts.append("Not run in this mode.\n")
            continue
        params = sec.get("params")
        if params:
            parts.append("Parameters: " + ", ".join(f"{k} {v:,}" if isinstance(v, int) else
                                                      f"{k} {v}" for k, v in params.items())
                         + ".\n")
        parts.append(table(sec["rows"]) + "\n")
        if key == "latency":
            parts.append("Percentiles (medians over repetitions, us):\n")
            parts.append(latency_detail(sec) + "\n")
        if key == "storms" and sec.get("tokens"):
            parts.append("Token verifications per second on one core (`pigeon-bench tokens`): "
                         + ", ".join(f"{k} {v:,.0f}" for k, v in sec["tokens"].items()) + ".\n")
        if key == "catchup" and sec.get("plain"):
            parts.append(f"Plain: {sec['plain']}.\n")
        parts.append("Raw figures per repetition:\n")
        parts.append(raw_lines(sec["rows"]) + "\n")
        for img in images.get(key, []):
            parts.append(f"![{title}]({img})\n")
    return "\n".join(parts)
