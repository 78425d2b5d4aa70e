"""test_verify.py: tools/openova-flow-verify, the multi-region runbook's
gates (docs/runbooks/multi-region-verify.md, issue 15), against a real
stack: the devserver as the flow server, lighttpd in front of the built app.

- The demo's two-region flow (tools/demo-events --fast) passes every gate,
  --post-probe included, in the table and in --json; the probe goes to a
  flow of its own, so a second run still passes the region gates.
- Flows broken on purpose, posted straight to the flow server (a region
  missing, a component missing in one region, nodes without region, a
  component twice in one region, an unexpected region) fail the right gate
  with the right class, and the gates they make meaningless are skipped.
- The flow server killed: upstream-down (the app's 502); nothing listening:
  proxy-down; a wrong bearer token or basic password: auth; lighttpd
  buffering the stream (server.stream-response-body = 0): stream-silent.
- Bad arguments exit 2; every failure class the tool knows has its row in
  the runbook's triage table.

lighttpd only: the tool speaks HTTP to whatever web server fronts the app,
and the web servers' own differences are the other files' business."""
import importlib.machinery
import importlib.util
import json
import os
import re
import subprocess
import time
import urllib.request

import pytest

from harness import authkeys, servers
from harness.devserver import DevServer
from harness.timing import scaled

TOOL = os.path.join(servers.REPO, "tools", "openova-flow-verify")
DEMO = os.path.join(servers.REPO, "tools", "demo-events")
RUNBOOK = os.path.join(servers.REPO, "docs", "runbooks", "multi-region-verify.md")
REGIONS = ["fsn1", "hel1-1"]
COMPONENTS = ["cilium", "cert-manager", "longhorn"]
GATES = ["snapshot", "regions", "components", "no-region", "stream", "events"]
STREAM_TIMEOUT = scaled(5)   # generous: a passing stream answers in milliseconds


@pytest.fixture(scope="module")
def flow_server(tmp_path_factory):
    server = DevServer(tmp_path_factory.mktemp("verify-devserver")).start()
    yield server
    server.stop()


def start_lighttpd(flow_server, workdir, conf="noauth", mutations=(), **env):
    app_env = {"OPENOVA_FLOW_SERVER_URL": flow_server.url, "OPENOVA_FLOW_AUTH": "none"}
    app_env.update(env)
    web = servers.WEB_SERVERS["lighttpd"](app_env, workdir, conf=conf, mutations=mutations)
    try:
        return web.start()
    except BaseException:
        web.stop()
        raise


@pytest.fixture(scope="module")
def proxy(flow_server, tmp_path_factory):
    web = start_lighttpd(flow_server, tmp_path_factory.mktemp("verify-lighttpd"))
    yield web
    web.stop()


def base_of(web):
    return f"http://127.0.0.1:{web.port}/api/v1/flows"


@pytest.fixture(scope="module")
def demo_flow(proxy):
    """The demo's flow, played once through the proxy."""
    flow = "dep-verify-demo"
    done = subprocess.run([DEMO, "--base", base_of(proxy), "--flow", flow, "--fast", "-q"], capture_output=True,
                          text=True, timeout=scaled(60), env=servers.base_env())
    assert done.returncode == 0, done
    return flow


def verify(base, flow, *extra, regions=REGIONS, env=None):
    """Runs the tool; returns the finished process."""
    run_env = servers.base_env()
    run_env.update(env or {})
    argv = [TOOL, "--base", base, "--deployment", flow, "--regions", ",".join(regions),
            "--stream-timeout", f"{STREAM_TIMEOUT:g}", *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=scaled(60), env=run_env)


def verify_json(base, flow, *extra, **kw):
    """(exit status, {gate name: gate}) of a --json run."""
    done = verify(base, flow, "--json", *extra, **kw)
    assert done.returncode in (0, 1), done
    report = json.loads(done.stdout)
    assert [g["name"] for g in report["gates"]] == GATES, report
    assert report["result"] == ("PASS" if done.returncode == 0 else "FAIL"), report
    return done.returncode, {g["name"]: g for g in report["gates"]}


def results(gates):
    return {name: g["result"] for name, g in gates.items()}


def node(flow, node_id, label, family, region):
    n = {"id": node_id, "flowId": flow, "label": label, "status": "ready", "family": family}
    if region:
        n["region"] = region
    return n


def plan(flow, regions=REGIONS):
    """A small two-region flow shaped like the demo's: a region node, a
    phase and the components in each region, ids {region}.{name}."""
    nodes = []
    for r in regions:
        nodes.append(node(flow, r, f"{r} bootstrap", "region", r))
        nodes.append(node(flow, f"{r}.network", "network", "phase", r))
        nodes += [node(flow, f"{r}.{c}", c, "helm-release", r) for c in COMPONENTS]
    return nodes


def post_flow(flow_server, flow, nodes):
    """The flow as one snapshot message, straight to the flow server."""
    message = {"type": "snapshot", "flow": {"id": flow, "status": "succeeded", "startedAt": 1},
               "nodes": nodes, "relationships": []}
    req = urllib.request.Request(f"{flow_server.url}/v1/flows/{flow}/events", method="POST",
                                 data=json.dumps(message).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=scaled(5)) as resp:
        assert resp.status == 200


def test_the_demo_flow_passes_every_gate(proxy, demo_flow):
    done = verify(base_of(proxy), demo_flow)
    assert done.returncode == 0, done
    for name in GATES[:-1]:
        assert re.search(rf"^{name} +PASS ", done.stdout, re.M), done.stdout
    assert re.search(r"^events +SKIP +no --post-probe", done.stdout, re.M), done.stdout
    # 31 components and 7 phases, each once in fsn1 and once in hel1-1
    assert "38 components" in done.stdout and "fsn1 (39 nodes), hel1-1 (39 nodes)" in done.stdout, done.stdout

    for _ in range(2):   # the second run: the first probe left the region gates alone
        status, gates = verify_json(base_of(proxy), demo_flow, "--post-probe")
        assert status == 0 and set(results(gates).values()) == {"PASS"}, gates
        assert f"{demo_flow}-verify-probe" in gates["events"]["detail"], gates["events"]
        assert all(g["class"] is None and g["look_at"] is None for g in gates.values()), gates
    with urllib.request.urlopen(f"{base_of(proxy)}/{demo_flow}-verify-probe/snapshot", timeout=scaled(5)) as resp:
        probe = json.load(resp)
    assert [n["id"] for n in probe["nodes"]] == ["verify-probe"], probe


BROKEN = [
    # (id, how the plan is broken, failing gate, class, a problem line, results of the other gates)
    ("region-missing", lambda f, nodes: [n for n in nodes if n.get("region") != "hel1-1"],
     "regions", "region-missing", "hel1-1: expected, no node carries it",
     {"snapshot": "PASS", "components": "SKIP", "no-region": "PASS", "stream": "PASS"}),
    ("component-missing", lambda f, nodes: [n for n in nodes if n["id"] != "hel1-1.longhorn"],
     "components", "component-missing", "longhorn: missing in hel1-1; present in fsn1 (fsn1.longhorn)",
     {"regions": "PASS", "no-region": "PASS", "stream": "PASS"}),
    ("nodes-without-region", lambda f, nodes: nodes + [node(f, "argocd", "argocd", "helm-release", None),
                                                       node(f, "gitea", "gitea", "helm-release", None)],
     "no-region", "node-without-region", "gitea: no region",
     {"regions": "PASS", "components": "PASS", "stream": "PASS"}),
    ("component-duplicate", lambda f, nodes: nodes + [node(f, "fsn1.cilium-b", "cilium", "helm-release", "fsn1")],
     "components", "component-duplicate", "cilium: 2 times in fsn1 (fsn1.cilium, fsn1.cilium-b)",
     {"regions": "PASS", "no-region": "PASS", "stream": "PASS"}),
    ("region-unexpected", lambda f, nodes: nodes + [node(f, "nbg1.cilium", "cilium", "helm-release", "nbg1")],
     "regions", "region-unexpected", "nbg1: not expected, on 1 node: nbg1.cilium",
     {"components": "PASS", "no-region": "PASS", "stream": "PASS"}),
]


@pytest.mark.parametrize("breakage,gate,klass,problem,others", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_a_broken_flow_fails_its_gate_with_its_class(flow_server, proxy, breakage, gate, klass, problem, others):
    flow = f"dep-verify-{klass}"
    post_flow(flow_server, flow, breakage(flow, plan(flow)))
    status, gates = verify_json(base_of(proxy), flow)
    assert status == 1, gates
    assert gates[gate]["result"] == "FAIL" and gates[gate]["class"] == klass, gates[gate]
    assert problem in gates[gate]["problems"], gates[gate]
    assert gates[gate]["look_at"], gates[gate]
    for name, result in others.items():
        assert gates[name]["result"] == result, (name, gates[name])

    text = verify(base_of(proxy), flow)
    assert text.returncode == 1, text
    assert f"{gate} FAILED: class {klass}: " in text.stdout and f"  - {problem}\n" in text.stdout, text.stdout
    assert "  look at: " in text.stdout and text.stdout.rstrip().endswith(f"FAIL: {gate}"), text.stdout


def test_regions_beyond_the_expected_and_a_single_region(flow_server, proxy):
    flow = "dep-verify-three-regions"
    post_flow(flow_server, flow, plan(flow, REGIONS + ["nbg1"]))
    status, gates = verify_json(base_of(proxy), flow, "--allow-extra-regions")
    assert status == 0, gates
    assert "also nbg1 (allowed)" in gates["regions"]["detail"], gates["regions"]

    flow = "dep-verify-one-region"
    post_flow(flow_server, flow, plan(flow, ["fsn1"]) + [node(flow, "bare", "bare", "job", None)])
    status, gates = verify_json(base_of(proxy), flow, regions=["fsn1"])
    assert status == 0, gates
    assert gates["no-region"]["result"] == "SKIP", gates   # one region: a node without one is no fault


def test_a_flow_never_ingested(proxy):
    status, gates = verify_json(base_of(proxy), "dep-verify-never", "--post-probe")
    assert status == 1, gates
    assert gates["snapshot"]["class"] == "flow-not-found" and "404" in gates["snapshot"]["detail"], gates
    assert results(gates) == {"snapshot": "FAIL", "regions": "SKIP", "components": "SKIP", "no-region": "SKIP",
                              "stream": "PASS", "events": "PASS"}, gates


def test_the_flow_server_down_is_upstream_down(tmp_path):
    flow_server = DevServer(tmp_path / "devserver").start()
    web = None
    try:
        web = start_lighttpd(flow_server, tmp_path / "lighttpd")
        flow = "dep-verify-down"
        post_flow(flow_server, flow, plan(flow))
        assert verify_json(base_of(web), flow)[0] == 0
        flow_server.kill()
        status, gates = verify_json(base_of(web), flow, "--post-probe")
        assert status == 1, gates
        snap = gates["snapshot"]
        assert snap["class"] == "upstream-down", snap
        assert snap["detail"].startswith(f"GET /api/v1/flows/{flow}/snapshot: 502 "), snap   # the app's own 502
        assert "/openova-flow/readyz" in snap["detail"] and "/openova-flow/readyz" in snap["look_at"], snap
        assert results(gates) == {"snapshot": "FAIL", **{g: "SKIP" for g in GATES[1:]}}, gates
    finally:
        if web:
            web.stop()
        flow_server.stop()


def test_nothing_listening_or_a_wrong_base_is_proxy_down(proxy):
    base = f"http://127.0.0.1:{servers.free_port()}/api/v1/flows"
    status, gates = verify_json(base, "dep-verify-nowhere")
    assert status == 1 and gates["snapshot"]["class"] == "proxy-down", gates
    assert "connection refused" in gates["snapshot"]["detail"], gates
    # lighttpd's own 404 page for a path it does not pass to the app
    status, gates = verify_json(f"http://127.0.0.1:{proxy.port}/api/v1/flow", "dep-verify-nowhere")
    assert status == 1 and gates["snapshot"]["class"] == "proxy-down", gates
    assert "404 (an HTML page: 404 Not Found) (no X-Request-ID" in gates["snapshot"]["detail"], gates


def test_a_refused_credential_is_auth(flow_server, demo_flow, tmp_path):
    keys = authkeys.KeyStore()
    web = basic = None
    try:
        web = start_lighttpd(flow_server, tmp_path / "bearer", **keys.app_env("bearer"))
        status, gates = verify_json(base_of(web), demo_flow, "--post-probe",
                                    env={"OPENOVA_FLOW_VERIFY_TOKEN": keys.emitter_token})
        assert status == 0, gates
        status, gates = verify_json(base_of(web), demo_flow, "--post-probe", "--token", "not-" + keys.emitter_token)
        assert status == 1, gates
        assert gates["snapshot"]["class"] == "auth" and " 401 " in gates["snapshot"]["detail"], gates
        assert gates["stream"]["result"] == "SKIP", gates   # the same credential, the same refusal
        assert gates["events"]["class"] == "auth", gates     # events have their own rule: tried, refused

        basic = start_lighttpd(flow_server, tmp_path / "basic", conf="auth", OPENOVA_FLOW_AUTH="remote-user")
        user = f"{servers.USER}:{servers.PASSWORD}"
        assert verify_json(base_of(basic), demo_flow, "--user", user)[0] == 0
        status, gates = verify_json(base_of(basic), demo_flow, env={"OPENOVA_FLOW_VERIFY_USER": user + "-not"})
        assert status == 1 and gates["snapshot"]["class"] == "auth", gates
    finally:
        for server in (web, basic):
            if server:
                server.stop()
        keys.close()


def test_a_buffered_stream_is_stream_silent(flow_server, demo_flow, tmp_path):
    web = start_lighttpd(flow_server, tmp_path / "buffering", mutations=[
        ("openova-flow-fcgi.conf", "server.stream-response-body = 2", "server.stream-response-body = 0")])
    try:
        timeout = scaled(1)
        started = time.monotonic()
        done = verify(base_of(web), demo_flow, "--json", "--stream-timeout", f"{timeout:g}")
        took = time.monotonic() - started
        gates = {g["name"]: g for g in json.loads(done.stdout)["gates"]}
        assert done.returncode == 1, done
        assert gates["stream"]["class"] == "stream-silent", gates["stream"]
        assert "buffering" in gates["stream"]["look_at"], gates["stream"]
        assert gates["snapshot"]["result"] == "PASS", gates   # only the stream is held
        assert took < timeout + scaled(5), f"took {took:.1f} s with --stream-timeout {timeout:g}"
    finally:
        web.stop()


@pytest.mark.parametrize("argv", [
    [],
    ["--base", "ftp://host/x", "--deployment", "d", "--regions", "a"],
    ["--base", "http://h/x", "--deployment", "a/b", "--regions", "a"],
    ["--base", "http://h/x", "--deployment", "d", "--regions", "a,,b"],
    ["--base", "http://h/x", "--deployment", "d", "--regions", "a,a"],
    ["--base", "http://h/x", "--deployment", "d", "--regions", "a", "--stream-timeout", "0"],
    ["--base", "http://h/x", "--deployment", "d", "--regions", "a", "--header", "no colon"],
    ["--base", "http://h/x", "--deployment", "d", "--regions", "a", "--token", "t", "--user", "u:p"],
    ["--base", "http://h/x", "--deployment", "d", "--regions", "a", "--user", "nopassword"],
    ["--base", "http://h/x", "--deployment", "d" * 120, "--regions", "a", "--post-probe"],
], ids=["nothing", "scheme", "id", "empty-region", "same-region", "timeout", "header", "two-credentials",
        "user", "probe-id-too-long"])
def test_bad_arguments_exit_2(argv):
    done = subprocess.run([TOOL, *argv], capture_output=True, text=True, timeout=scaled(30), env=servers.base_env())
    assert done.returncode == 2 and "error:" in done.stderr and not done.stdout, done


@pytest.fixture(scope="module")
def tool():
    """The tool's module, for its pure functions and its triage table."""
    loader = importlib.machinery.SourceFileLoader("openova_flow_verify", TOOL)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


RID = {"X-Request-ID": "r1"}


@pytest.mark.parametrize("status,headers,body,klass", [
    (401, RID, b"", "auth"),
    (403, {}, b"", "auth"),
    (302, {"Location": "https://sso.example/login"}, b"", "auth"),
    (502, RID, b'{"error":"upstream_unavailable"}', "upstream-down"),
    (504, RID, b'{"error":"upstream_timeout"}', "upstream-down"),
    (503, RID, b"flow server starting", "upstream-down"),          # the flow server's own 503, passed on
    (503, RID, b'{"error":"too_many_streams"}', "proxy-down"),
    (503, RID, b'{"error":"shutting_down"}', "proxy-down"),
    (502, {}, b"<html>Bad Gateway</html>", "proxy-down"),          # the web server: no app behind it
    (404, RID, b'{"error":"not_found"}', "flow-not-found"),
    (404, {}, b"<html>Not Found</html>", "proxy-down"),
    (400, RID, b'{"error":"bad_request"}', "http-error"),
    (500, RID, b"", "http-error"),
])
def test_how_an_answer_is_classed(tool, status, headers, body, klass):
    assert tool.classify(status, headers, body) == klass


@pytest.mark.parametrize("value,wrong", [
    ({}, None),                                    # the reference server leaves empty keys out
    ({"type": "snapshot", "flow": {"id": "d"}, "nodes": [{"id": "n"}], "relationships": []}, None),
    ([], "a JSON list, not an object"),
    ({"type": "upsert-nodes"}, "type 'upsert-nodes', not 'snapshot'"),
    ({"flow": None}, "flow is not an object"),
    ({"nodes": {}}, "nodes is not a list"),
    ({"relationships": "x"}, "relationships is not a list"),
    ({"nodes": [{"label": "x"}]}, 'a node without a string id: {"label": "x"}'),
])
def test_what_a_snapshot_must_look_like(tool, value, wrong):
    assert tool.snapshot_shape(value) == wrong


@pytest.mark.parametrize("block,frame", [
    ("event: snapshot\nid: 7\ndata: {}", ("snapshot", "7")),
    ("data: {}", ("message", "-")),
    (": keepalive", None),
    (":c\nevent:heartbeat", ("heartbeat", "-")),
    ("id: 3", None),
])
def test_what_counts_as_a_frame(tool, block, frame):
    assert tool.sse_frame(block) == frame


def test_the_runbook_has_a_triage_row_per_class(tool):
    with open(RUNBOOK, encoding="utf-8") as f:
        triage = f.read().split("\n## Triage\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z-]+)` \|", triage, re.M)
    assert sorted(rows) == sorted(tool.TRIAGE), "the runbook's triage table and the tool's TRIAGE differ"
    assert tool.GATES == GATES
