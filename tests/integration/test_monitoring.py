"""monitoring: the kit of conf/monitoring/ (issue 14). promtool checks the
alerting rules, runs their unit tests (alerts_test.yml) and checks the
scrape config; the dashboard's queries are checked by promtool too; and
every metric the rules and the dashboard name is one the app exposes,
read from a live app at its metrics route through each web server.

The names are taken from the PromQL by promql_metric_names(), itself
checked against a table of expressions (EXTRACTOR_CASES), and the app's
exposition is read with prometheus_client's parser (Debian's
python3-prometheus-client), so that a name counts as exposed exactly as
Prometheus would see it."""
import json
import os
import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from harness import client
from harness.checks import wait_for
from harness.servers import REPO
from harness.timing import scaled
from harness.upstream import json_reply

KIT = os.path.join(REPO, "conf", "monitoring")
RULES = os.path.join(KIT, "alerts.yml")
RULES_TEST = os.path.join(KIT, "alerts_test.yml")
SCRAPE_CONFIG = os.path.join(KIT, "prometheus.yml")
DASHBOARD = os.path.join(KIT, "grafana-dashboard.json")

BASE = "/api/v1/flows"
# The app's metrics route (OPENOVA_FLOW_METRICS_PATH's default), which
# prometheus.yml scrapes through the web server.
METRICS_PATH = "/openova-flow/metrics"

# Series Prometheus itself adds to every scrape: the app cannot expose them.
PROMETHEUS_MADE = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
                   "scrape_samples_post_metric_relabeling", "scrape_series_added"}


# --- what the kit names --------------------------------------------------------

# PromQL words that look like names but are not metrics: binary operators,
# grouping and modifier keywords, and the special float values.
_KEYWORDS = {"and", "or", "unless", "atan2", "by", "without", "on", "ignoring", "group_left",
             "group_right", "offset", "bool", "inf", "nan"}
_STRING = r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`'
_NAME_MATCHER = re.compile(r"__name__\s*(=~|!~|!=|=)\s*(" + _STRING + ")")
# Grafana's variables: $name, ${name...}, [[name]].
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE)
# A name not preceded by a name character (so "e3" of "1e3" and "x1F" of
# "0x1F" are not names), then optionally "(": a function call.
_IDENT = re.compile(r"(?<![\w:])([A-Za-z_:][\w:]*)(\s*\()?")


def promql_metric_names(expr):
    """The metric names an expression (PromQL, Grafana variables allowed)
    selects: neither functions, aggregations, keywords, label names (in
    matchers, by/without/on/ignoring/group_left/group_right lists) nor
    anything inside a string. {__name__="x"} counts as x; a __name__ that
    is not an exact match cannot be checked and raises ValueError."""
    names = set()
    for op, quoted in _NAME_MATCHER.findall(expr):
        if op != "=":
            raise ValueError(f"__name__{op}{quoted} in {expr!r}: name the metric exactly")
        names.add(quoted[1:-1])
    text = re.sub(_STRING, '""', expr)
    text = _GRAFANA_VAR.sub(" ", text)
    # Label matchers and range or subquery selectors, innermost first.
    while True:
        stripped = re.sub(r"\{[^{}]*\}|\[[^\[\]]*\]", " ", text)
        if stripped == text:
            break
        text = stripped
    text = _GROUPING.sub(" ", text)
    for name, call in _IDENT.findall(text):
        if not call and name.lower() not in _KEYWORDS:
            names.add(name)
    return names


# (expression, the metric names it selects)
EXTRACTOR_CASES = [
    ('up{job="openova-flow-fcgi"} == 0', {"up"}),
    ('rate(openova_flow_requests_total{route="snapshot", status=~"5.."}[5m])', {"openova_flow_requests_total"}),
    ('histogram_quantile(0.95, sum by (route, le) (rate(h_seconds_bucket{job=~"$job"}[$__rate_interval])))',
     {"h_seconds_bucket"}),
    ("sum(rate(a_total[5m])) by (route) / on(instance) group_left(version) b_info", {"a_total", "b_info"}),
    ("a > 1 and on (job, instance) b / ignoring (reason) c < bool 1e3", {"a", "b", "c"}),
    ("max without (instance) (e) unless f or g", {"e", "f", "g"}),
    # strings may hold anything, including what looks like PromQL
    ('label_replace(rate(c_total[1m]), "class", "${1}xx", "status", "([1-5]).. by (x) {y}")', {"c_total"}),
    ("rate(w_total{msg='rate(x[5m]) by (y)', other=`z{}`}[5m])", {"w_total"}),
    ('count_values("version", b_info)', {"b_info"}),
    ("time() - process_start_time_seconds{instance=~\"$instance\"}", {"process_start_time_seconds"}),
    ("avg_over_time(g[10m:1m] offset 1h) / ${DS_PROMETHEUS} g2", {"g", "g2"}),
    ("topk(5, rate(job:requests:rate5m[1h]))", {"job:requests:rate5m"}),
    ('{__name__="d_total", job="x"}', {"d_total"}),
    ("sum(s_sum) / sum(s_count)", {"s_sum", "s_count"}),
    ("0x1F + 1.5e-3 * Inf - NaN + 5", set()),
    ("vector(1) > bool scalar(k)", {"k"}),
]


@pytest.mark.parametrize("expr,names", EXTRACTOR_CASES, ids=[c[0] for c in EXTRACTOR_CASES])
def test_extractor(expr, names):
    assert promql_metric_names(expr) == names, expr


def test_extractor_refuses_an_inexact_name():
    with pytest.raises(ValueError):
        promql_metric_names('{__name__=~"openova_flow_.*"}')


def rules():
    """Every rule of alerts.yml, across its groups."""
    with open(RULES) as f:
        return [rule for group in yaml.safe_load(f)["groups"] for rule in group["rules"]]


def rule_exprs():
    return {r.get("alert") or r["record"]: r["expr"] for r in rules()}


def _walk_panels(panels):
    for panel in panels:
        yield panel
        yield from _walk_panels(panel.get("panels", []))


def dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def dashboard_exprs():
    """{where: PromQL} of every panel target and every query variable
    (label_values(selector, label) counts as its selector)."""
    dash = dashboard()
    exprs = {}
    for panel in _walk_panels(dash["panels"]):
        for target in panel.get("targets", []):
            exprs[f"panel {panel['id']} ({panel['title']}) {target['refId']}"] = target["expr"]
    for var in dash["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query)
        assert m, f"variable {var['name']}: only label_values(selector, label) is understood: {query}"
        exprs[f"variable {var['name']}"] = m.group(1)
    return exprs


def kit_metric_names():
    """{metric name: [where it is used]} over the rules and the dashboard."""
    used = {}
    for where, expr in [(f"alert {k}", v) for k, v in rule_exprs().items()] + list(dashboard_exprs().items()):
        for name in promql_metric_names(expr):
            used.setdefault(name, []).append(where)
    return used


def test_kit_names_metrics():
    used = kit_metric_names()
    assert used, "no metric found in the rules and the dashboard"
    for name in used:
        assert name.startswith(("openova_flow_", "process_")) or name in PROMETHEUS_MADE, (name, used[name])
    # Each alert and each dashboard query selects something.
    for where, expr in [(f"alert {k}", v) for k, v in rule_exprs().items()] + list(dashboard_exprs().items()):
        assert promql_metric_names(expr), f"{where}: no metric in {expr}"


# --- what the app exposes --------------------------------------------------------

# The names each metric type's samples carry (text format 0.0.4 and
# OpenMetrics): a query names these, never a histogram's bare name.
_SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}


def exposed_names(exposition):
    """The series names an exposition offers a query: every sample's name,
    and for each declared family (# TYPE, even without samples yet, like a
    labelled counter nothing has counted) the names its type's samples
    would have. The parser names a counter's family without "_total"."""
    names = set()
    for family in text_string_to_metric_families(exposition):
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in _SERIES_SUFFIXES.get(family.type, ("",)))
    return names


def test_exposed_names():
    exposition = (
        "# HELP a_total Requests.\n# TYPE a_total counter\na_total{route=\"x\"} 3\n"
        "# HELP b_total Failures, none yet.\n# TYPE b_total counter\n"
        "# HELP h_seconds Durations.\n# TYPE h_seconds histogram\n"
        "h_seconds_bucket{le=\"0.1\"} 1\nh_seconds_bucket{le=\"+Inf\"} 1\nh_seconds_sum 0.05\nh_seconds_count 1\n"
        "# HELP g Open.\n# TYPE g gauge\ng 2\n"
        "# HELP i_info Build.\n# TYPE i_info gauge\ni_info{version=\"1\"} 1\n"
    )
    names = exposed_names(exposition)
    assert {"a_total", "b_total", "h_seconds_bucket", "h_seconds_sum", "h_seconds_count", "g", "i_info"} <= names
    assert "h_seconds" not in names and "b" not in names and "a" not in names


def test_referenced_metrics_are_exposed(main, upstream, fid):
    flow = fid()
    upstream.set(flow, json_reply())
    resp = client.request(main.port, "GET", f"{BASE}/{flow}/snapshot", main.auth_headers())
    assert resp.status == 200, resp

    def scrape():
        # From 127.0.0.1, which OPENOVA_FLOW_METRICS_ALLOW admits by default;
        # the credentials only matter if the web server guards the route.
        r = client.request(main.port, "GET", METRICS_PATH, main.auth_headers())
        assert r.status == 200, r
        # Prometheus reads text/plain (format 0.0.4); 3.x refuses an
        # unknown Content-Type.
        assert (r.header("Content-Type") or "").startswith("text/plain"), r.headers
        return r.body.decode("utf-8")

    def snapshot_counted(text):
        return any(s.name == "openova_flow_requests_total" and s.labels.get("route") == "snapshot"
                   and s.labels.get("method") == "GET" and s.labels.get("status") == "200" and s.value >= 1
                   for family in text_string_to_metric_families(text) for s in family.samples)

    # The request is counted as it ends, which may be just after the client
    # has the answer.
    text = wait_for(lambda: (lambda t: t if snapshot_counted(t) else None)(scrape()), scaled(5), interval=0.1)
    assert text, "openova_flow_requests_total{route=\"snapshot\",method=\"GET\",status=\"200\"} never counted " \
                 "the snapshot"

    exposed = exposed_names(text)
    used = kit_metric_names()
    missing = {name: where for name, where in sorted(used.items())
               if name not in exposed and name not in PROMETHEUS_MADE}
    assert not missing, (f"named in conf/monitoring/ but not exposed (neither a sample nor a # TYPE line) "
                         f"at {METRICS_PATH}: {missing}")


# --- promtool ---------------------------------------------------------------------

def promtool(*args, cwd=None):
    tool = shutil.which("promtool", path="/usr/bin:/usr/local/bin:" + os.environ.get("PATH", ""))
    assert tool, "promtool missing: run tools/install-deps.sh (Debian's prometheus package)"
    proc = subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr


def test_promtool_check_rules():
    rc, out = promtool("check", "rules", RULES)
    assert rc == 0 and "SUCCESS" in out, out


def test_promtool_test_rules():
    rc, out = promtool("test", "rules", RULES_TEST)
    assert rc == 0 and "SUCCESS" in out, out


def test_promtool_check_config():
    # From another directory: rule_files must be found beside the config.
    rc, out = promtool("check", "config", SCRAPE_CONFIG, cwd="/")
    assert rc == 0 and "SUCCESS: 1 rule files found" in out, out


def test_every_alert_has_a_firing_unit_test():
    with open(RULES_TEST) as f:
        tests = yaml.safe_load(f)
    assert tests["rule_files"] == ["alerts.yml"]
    fired = {case["alertname"] for test in tests["tests"] for case in test.get("alert_rule_test", [])
             if case.get("exp_alerts")}
    alerts = [rule for rule in rules() if "alert" in rule]
    assert {rule["alert"] for rule in alerts} - fired == set(), "alerts without a unit test in which they fire"
    for rule in alerts:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


# Grafana's variables as a query sends them, so that promtool can parse the
# dashboard's queries as Prometheus will receive them.
GRAFANA_VALUES = {"$__rate_interval": "1m", "$job": "openova-flow-fcgi", "$instance": ".*"}


def test_dashboard_queries_parse(tmp_path):
    rules = []
    for i, (where, expr) in enumerate(sorted(dashboard_exprs().items())):
        for var, value in GRAFANA_VALUES.items():
            expr = expr.replace(var, value)
        assert "$" not in expr.replace("${1}", ""), f"{where}: unknown Grafana variable in {expr}"
        rules.append({"record": f"dashboard:query:{i}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    rc, out = promtool("check", "rules", str(path))
    assert rc == 0 and f"SUCCESS: {len(rules)} rules found" in out, out


def test_dashboard_shape():
    dash = dashboard()
    assert dash["schemaVersion"] >= 36 and dash["uid"] and dash["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    ids = [p["id"] for p in _walk_panels(dash["panels"])]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells = {}
    for panel in _walk_panels(dash["panels"]):
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target.get("datasource", panel["datasource"]) == panel["datasource"], panel["title"]
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
