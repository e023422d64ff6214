# SPDX-License-Identifier: Apache-2.0
"""
The operator's files stay valid and agree with what pigeon-exporter exports
(docs/operations.md):

- conf/prometheus/alerts.yml passes `promtool check rules`, every Prometheus
  configuration there passes `promtool check config` (which also loads the
  rule files it names), and `promtool test rules alerts_test.yml` shows each
  alert firing on a failing series and quiet on a healthy one;
- conf/grafana/pigeon-dashboard.json is a dashboard whose every panel has a
  title and a query, and whose queries are valid PromQL;
- every metric named in an alert or a dashboard query is a family that
  `pigeon-exporter --list-metrics` prints (or Prometheus's own `up`), and
  every family it prints is explained in docs/operations.md;
- each alert's runbook annotation names a section of docs/operations.md;
- on a live broker (auth, inbox, push with a fake webhook) scraped through
  pigeon-exporter by a real Prometheus with these rules, every dashboard
  query returns a series (so its labels and selectors match what the
  exporter serves), and every rule evaluates without error and stays quiet.

Only the last test needs a broker; the others need promtool (Debian's
prometheus package) and the built pigeon-exporter.
"""

import json
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

import harness

REPO = harness.REPO
PROM_DIR = REPO / "conf" / "prometheus"
ALERTS = PROM_DIR / "alerts.yml"
ALERTS_TEST = PROM_DIR / "alerts_test.yml"
DASHBOARD = REPO / "conf" / "grafana" / "pigeon-dashboard.json"
OPERATIONS = REPO / "docs" / "operations.md"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

# The alerts the contract names (metrics.md, "Ops files").
ALERT_NAMES = {"PigeonDown", "PigeonStoreBacklogGrowing", "PigeonStoreFailing",
               "PigeonDiskFullRefusals", "PigeonPushFailures", "PigeonPushOutboxStuck"}

# Prometheus's own series a rule or panel may use besides the exporter's.
PROMETHEUS_OWN = {"up"}

# PromQL words that look like identifiers but are not metric names:
# aggregation operators, keywords, set operators, literals. Functions are
# recognised by the parenthesis that follows them.
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "by", "without", "on", "ignoring", "group_left",
    "group_right", "offset", "bool", "and", "or", "unless", "atan2", "inf", "nan",
}


def promtool(*args):
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60,
                          cwd=REPO)


def metric_names(expr):
    """The metric names a PromQL expression selects (as written, suffixes kept)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)  # ranges, subqueries
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.:$])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:])(?!\s*\()", e):
        word = m.group(1)
        if word.lower() not in PROMQL_WORDS:
            names.add(word)
    return names


def test_metric_names_extraction():
    # The extractor itself, on the shapes the rules and panels use.
    expr = ('histogram_quantile(0.99, sum by (le, provider) (rate(pigeon_push_latency_seconds_bucket'
            '{instance=~"$instance",provider!="x"}[$__rate_interval] offset 1d))) / on(instance) '
            'group_left(version) max by (version) (mosquitto_build_info) or up{job="pigeon"} == 0 '
            'and deriv(pigeon_store_backlog_records[5m]) > 1e3 unless count(x_total) > bool 5')
    assert metric_names(expr) == {"pigeon_push_latency_seconds_bucket", "mosquitto_build_info",
                                  "up", "pigeon_store_backlog_records", "x_total"}


def alert_rules():
    """alerts.yml's rules as (name, expr, labels, annotations) from its text.

    The file is block YAML written one way (expr inline or as a `>-` block);
    test_alert_rules_check confirms with promtool that this reads every rule.
    """
    text = ALERTS.read_text()
    rules = []
    for chunk in re.split(r"^      - alert: ", text, flags=re.M)[1:]:
        name, body = chunk.split("\n", 1)
        m = re.search(r"^        expr: (.*)$", body, re.M)
        expr = m.group(1)
        if expr.strip() in (">-", ">", "|", "|-"):
            rest = body[m.end() + 1:].split("\n")
            lines = []
            for line in rest:
                if not line.startswith("          "):
                    break
                lines.append(line.strip())
            expr = " ".join(lines)
        labels = dict(re.findall(r"^          (severity): (\S+)$", body, re.M))
        annotations = dict(re.findall(r'^          (summary|runbook): "(.*)"$', body, re.M))
        annotations.update(
            (k, "") for k in re.findall(r"^          (description): ", body, re.M))
        rules.append((name.strip(), expr, labels, annotations))
    return rules


def dashboard_targets():
    dash = json.loads(DASHBOARD.read_text())
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            yield panel["title"], t["expr"]


def grafana_to_promql(expr):
    """A dashboard query as plain PromQL: Grafana's variables replaced."""
    return (expr.replace("$__rate_interval", "1m").replace("$__interval", "1m")
            .replace("$__range", "1h").replace("$instance", ".*"))


def test_alert_rules_check():
    out = promtool("check", "rules", str(ALERTS))
    assert out.returncode == 0, out.stdout + out.stderr
    n = len(alert_rules())
    assert f"SUCCESS: {n} rules found" in out.stdout, out.stdout
    assert {r[0] for r in alert_rules()} == ALERT_NAMES


def test_every_prometheus_config_checks():
    configs = sorted(PROM_DIR.glob("prometheus*.yml"))
    assert [c.name for c in configs] == ["prometheus-compose.yml", "prometheus.yml"]
    for conf in configs:
        out = promtool("check", "config", str(conf))
        assert out.returncode == 0, out.stdout + out.stderr
        # check config also loads and checks the rule files it names.
        assert "SUCCESS: 1 rule files found" in out.stdout, out.stdout
        assert f"SUCCESS: {len(ALERT_NAMES)} rules found" in out.stdout, out.stdout
        text = conf.read_text()
        assert re.search(r"^  scrape_interval: 15s$", text, re.M)
        assert re.search(r"^rule_files:\n  - alerts.yml$", text, re.M)
    assert '["127.0.0.1:9883"]' in (PROM_DIR / "prometheus.yml").read_text()


def test_alerts_fire_on_failing_series_only():
    out = promtool("test", "rules", str(ALERTS_TEST))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout
    tested = set(re.findall(r"^\s+alertname: (\w+)$", ALERTS_TEST.read_text(), re.M))
    assert tested == ALERT_NAMES
    # Each alert has a case where it fires and one where nothing does.
    text = ALERTS_TEST.read_text()
    for name in ALERT_NAMES:
        cases = re.findall(rf"alertname: {name}\n\s+exp_alerts:( \[\])?", text)
        assert "" in cases and " []" in cases, f"{name}: {cases}"


def test_alerts_have_severity_summary_and_runbook():
    headings = {anchor(h) for h in re.findall(r"^#+ (.+)$", OPERATIONS.read_text(), re.M)}
    for name, expr, labels, annotations in alert_rules():
        assert labels.get("severity") in ("critical", "warning"), name
        assert annotations.get("summary") and "description" in annotations, name
        runbook = annotations.get("runbook", "")
        assert runbook.startswith("docs/operations.md#"), (name, runbook)
        assert runbook.split("#", 1)[1] in headings, f"{name}: no section {runbook}"


def anchor(heading):
    """GitHub's anchor for a Markdown heading."""
    h = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return h.replace(" ", "-")


def test_dashboard_panels_and_queries(tmp_path):
    dash = json.loads(DASHBOARD.read_text())
    assert dash["schemaVersion"] >= 37 and dash["title"] and dash["uid"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "two panels share an id"
    for p in panels:
        assert p.get("title"), p
        assert p.get("targets"), f"panel {p['title']!r} has no query"
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
        for t in p["targets"]:
            assert t["expr"].strip() and t["datasource"]["uid"] == "${DS_PROMETHEUS}"
        pos = p["gridPos"]
        assert pos["x"] + pos["w"] <= 24, p["title"]
    exprs = [e for _, e in dashboard_targets()]
    # What the contract asks the dashboard to show.
    joined = "\n".join(exprs)
    assert re.search(r"pigeon_messages_stored_total\{[^}]*\}\[[^]]*\] offset 1d", joined)
    assert re.search(r"pigeon_messages_delivered_total\{[^}]*\}\[[^]]*\] offset 1d", joined)
    for needed in ("pigeon_refused_total", "pigeon_store_errors_total",
                   "pigeon_store_backlog_records", "pigeon_store_backlog_bytes",
                   "pigeon_store_failing", "pigeon_push_outbox", "pigeon_push_outbox_oldest_seconds",
                   "pigeon_devices_online_by_platform", "pigeon_users_online_by_platform",
                   "mosquitto_clients_connected", "mosquitto_bytes_received_total",
                   "mosquitto_bytes_sent_total", "pigeon_up"):
        assert needed in joined, needed
    assert "sum by (provider, outcome) (rate(pigeon_push_total" in joined
    for hist in ("pigeon_store_apply_seconds", "pigeon_push_latency_seconds",
                 "pigeon_sync_reply_bytes"):
        for quant in ("0.5", "0.99"):
            assert re.search(rf"histogram_quantile\({quant}, .*\b{hist}_bucket\b", joined), \
                (hist, quant)
    # Every query is valid PromQL: promtool parses them as recording rules.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": grafana_to_promql(e)}
        for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    out = promtool("check", "rules", str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in out.stdout


@pytest.fixture(scope="module")
def families():
    """The metric families pigeon-exporter can export, from the binary itself."""
    exe = harness.build_path("bin", "pigeon-exporter")
    assert exe.exists(), f"{exe} is not built"
    out = subprocess.run([str(exe), "--list-metrics"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    names = out.stdout.split()
    assert names and all(re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", n) for n in names), names
    assert len(names) == len(set(names)), "a family listed twice"
    return set(names)


def family_of(name, families):
    if name in families or name in PROMETHEUS_OWN:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[:-len(suffix)] in families:
            return name[:-len(suffix)]
    return None


def test_every_queried_metric_is_exported(families):
    queries = [(f"alert {name}", expr) for name, expr, _, _ in alert_rules()]
    queries += [(f"panel {title!r}", expr) for title, expr in dashboard_targets()]
    assert len(queries) > len(ALERT_NAMES)
    unknown = []
    used = set()
    for where, expr in queries:
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr}"
        for n in names:
            fam = family_of(n, families)
            if fam is None:
                unknown.append(f"{where}: {n}")
            used.add(fam)
    assert not unknown, "not exported by pigeon-exporter --list-metrics:\n" + "\n".join(unknown)


def test_every_exported_family_is_documented(families):
    doc = OPERATIONS.read_text()
    missing = sorted(f for f in families if not re.search(rf"`{re.escape(f)}(?:\{{[^`]*\}})?`", doc))
    assert not missing, f"docs/operations.md does not explain {missing}"


# Queries that may rightly be empty on a fresh, healthy broker: the same
# time yesterday, and failures by reason (no push has failed).
MAY_BE_EMPTY = (" offset 1d", "pigeon_push_failures_total")


def _http_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_dashboard_and_rules_on_a_live_broker(tmp_path, brokers, keys, fakes):
    import pushlib

    hook = fakes.start("webhook")
    broker = pushlib.start_push_broker(
        brokers, keys, "ops", fakes.ca, {"webhook": hook}, extra_config=["sys_interval 1"],
        inbox={"sys_interval": 1}, auth=keys.auth_options(sys_interval=1), **pushlib.FAST)
    eport, pport = harness.free_port(), harness.free_port()
    exporter = subprocess.Popen(
        [str(harness.build_path("bin", "pigeon-exporter")), "--port", str(broker.port),
         "--secret-file", str(keys.secret_file), "--listen", f"127.0.0.1:{eport}"],
        stdout=open(tmp_path / "exporter.out", "w"), stderr=subprocess.STDOUT)
    prom = None
    try:
        svc = keys.token(sub="svc", role="service")
        for i in range(5):
            subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-V", "mqttv5", "-u", "svc",
                            "-P", svc, "-i", "svc:api", "-q", "1", "-t", f"im/u{i}/chat",
                            "-m", f"hello {i}"], check=True, timeout=10, capture_output=True)
        # conf/prometheus as shipped, pointed at this exporter and sped up.
        conf = tmp_path / "prometheus"
        conf.mkdir()
        shutil.copy(ALERTS, conf / "alerts.yml")
        text = (PROM_DIR / "prometheus.yml").read_text()
        for a, b in (("127.0.0.1:9883", f"127.0.0.1:{eport}"), ("scrape_interval: 15s", "scrape_interval: 1s"),
                     ("scrape_timeout: 10s", "scrape_timeout: 1s"),
                     ("evaluation_interval: 15s", "evaluation_interval: 1s")):
            assert a in text
            text = text.replace(a, b)
        (conf / "prometheus.yml").write_text(text)
        prom = subprocess.Popen(
            [PROMETHEUS, f"--config.file={conf / 'prometheus.yml'}",
             f"--storage.tsdb.path={conf / 'data'}", f"--web.listen-address=127.0.0.1:{pport}"],
            stdout=open(tmp_path / "prometheus.out", "w"), stderr=subprocess.STDOUT)
        api = f"http://127.0.0.1:{pport}/api/v1"

        def query(expr):
            return _http_json(f"{api}/query?" + urllib.parse.urlencode({"query": expr}))

        queries = [(title, e.replace("$__rate_interval", "5s").replace("$instance", ".*"))
                   for title, e in dashboard_targets()]
        empty = None
        deadline = time.monotonic() + 40 * harness.SLOW
        while time.monotonic() < deadline:
            time.sleep(1)
            try:
                results = [(t, e, query(e)) for t, e in queries]
            except OSError:
                continue  # Prometheus not listening yet
            for _, e, r in results:
                assert r["status"] == "success", (e, r)
            empty = [f"{t}: {e}" for t, e, r in results
                     if not r["data"]["result"] and not any(m in e for m in MAY_BE_EMPTY)]
            if not empty:
                break
        assert empty == [], ("dashboard queries without a series:\n" + "\n".join(empty or ["?"])
                             + "\n" + (tmp_path / "exporter.out").read_text()[-2000:])
        # Every rule evaluated at least once (health "unknown" before that).
        while True:
            rules = _http_json(f"{api}/rules")["data"]["groups"]
            states = {r["name"]: (r["health"], r.get("lastError", ""), r["state"])
                      for g in rules for r in g["rules"]}
            if all(h != "unknown" for h, _, _ in states.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert set(states) == ALERT_NAMES
        for name, (health, err, state) in states.items():
            assert health == "ok" and not err, (name, health, err)
            assert state == "inactive", (name, state)
    finally:
        if prom is not None:
            _stop(prom)
        _stop(exporter)
