"""The app's operations endpoints (issue 14) through each real web server,
as the shipped conf/ files route them: liveness and readiness open to a
probe without credentials (even where the flow routes sit behind the web
server's basic auth), metrics (Prometheus text, read with
prometheus_client's parser) and the status page for loopback clients only,
refused by the web server and by the app (OPENOVA_FLOW_METRICS_ALLOW)
elsewhere; HEAD answered, any other method 405 with Allow. None of them
reaches the flow routes of the upstream; readiness asks only its
GET /healthz."""
import socket
import time

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from harness import applog, client, servers
from harness.checks import assert_proxy_error, wait_for
from harness.timing import scaled
from harness.upstream import json_reply

BASE = "/api/v1/flows"
# The defaults of OPENOVA_FLOW_HEALTH_PATH, _READY_PATH, _METRICS_PATH and
# _STATUS_PATH, which the shipped configs route.
HEALTH = "/openova-flow/healthz"
READY = "/openova-flow/readyz"
METRICS = "/openova-flow/metrics"
STATUS = "/openova-flow/status"
ENDPOINTS = [HEALTH, READY, METRICS, STATUS]


def flow_calls(upstream):
    """What reached the upstream's flow routes (anything but its /healthz)."""
    return [(r.method, r.target) for r in upstream.requests() if r.target.partition("?")[0] != "/healthz"]


def media_type(resp):
    return (resp.header("Content-Type") or "").split(";")[0].strip()


def wait_ready(port):
    """GET readiness until it says ready (the first check of the upstream
    may still be running, or time out under valgrind); the last answer."""
    last = []
    wait_for(lambda: last.append(client.request(port, "GET", READY)) or last[-1].status == 200, scaled(6),
             interval=0.2)
    return last[-1]


def head(port, target):
    """HEAD on its own connection: (status, headers, body). client.request
    would hold the empty body against Content-Length."""
    request = f"HEAD {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    buf = b""
    deadline = time.monotonic() + scaled(10)
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(10)) as sock:
        sock.sendall(request.encode("latin-1"))
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            buf += data
    head_bytes, _, body = buf.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    return status, [tuple(p.strip() for p in line.split(":", 1)) for line in lines[1:]], body


def test_liveness_needs_no_credentials(main, upstream, fid):
    """The "auth" configs: the flow routes want the web server's basic auth,
    liveness answers a probe without any, from the process alone."""
    resp = client.request(main.port, "GET", f"{BASE}/{fid()}/snapshot")
    assert resp.status == 401 and not resp.header("X-Request-ID"), resp   # the web server's own 401
    checks_before = len(upstream.health_checks())  # the app's own at start, if it started just now
    resp = client.request(main.port, "GET", HEALTH)
    assert resp.status == 200, resp
    assert media_type(resp) == "application/json", resp
    assert resp.json() == {"status": "ok"}, resp
    assert resp.header("X-Request-ID"), resp   # the app's answer
    assert "no-store" in (resp.header("Cache-Control") or ""), resp
    assert upstream.requests() == []
    assert len(upstream.health_checks()) == checks_before   # not even the upstream's health check


def test_readiness_follows_the_upstreams_health_check(main, upstream):
    resp = wait_ready(main.port)
    assert resp.status == 200, resp
    assert media_type(resp) == "application/json" and resp.json() == {"status": "ready"}, resp
    # The app asks the upstream GET /healthz (at most once per 2 s; the
    # answer may still be the one an earlier test caused), nothing else.
    assert upstream.requests() == [], upstream.requests()

    # A failing health check: 503 with Retry-After once the cached result
    # is older than 2 s; ready again once the upstream passes.
    upstream.health = json_reply(503, b'{"status":"down"}')
    try:
        resp = wait_for(lambda: (lambda r: r if r.status == 503 else None)(client.request(main.port, "GET", READY)),
                        scaled(6), interval=0.2)
        assert resp, "readiness never turned 503 with the upstream's /healthz failing"
        body = assert_proxy_error(resp, 503)
        assert body["error"] == "not_ready", body
        assert "down" not in body["message"], body   # the reason stays in the log and the status page
        assert resp.header("Retry-After"), resp
    finally:
        upstream.health = json_reply(200, b'{"status":"ok"}')
    assert wait_for(lambda: client.request(main.port, "GET", READY).status == 200, scaled(6), interval=0.2)
    assert flow_calls(upstream) == [] and upstream.health_checks()


def test_metrics_from_loopback(main, upstream):
    resp = client.request(main.port, "GET", METRICS)
    assert resp.status == 200, resp
    assert (resp.header("Content-Type") or "").startswith("text/plain; version=0.0.4"), resp.headers
    families = {f.name: f for f in text_string_to_metric_families(resp.body.decode("utf-8"))}
    # Counters lose their _total suffix in the parser's family names.
    assert families["openova_flow_requests"].type == "counter", sorted(families)

    # OpenMetrics when the scraper asks for it (Prometheus does, first).
    resp = client.request(main.port, "GET", METRICS,
                          [("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")])
    assert resp.status == 200, resp
    assert media_type(resp) == "application/openmetrics-text", resp.headers
    assert resp.body.endswith(b"# EOF\n"), resp.body[-100:]
    assert list(openmetrics_families(resp.body.decode("utf-8")))
    assert flow_calls(upstream) == []


def test_status_page(main, upstream):
    resp = client.request(main.port, "GET", STATUS)
    assert resp.status == 200, resp
    assert media_type(resp) == "text/plain", resp
    text = resp.body.decode("utf-8")
    for line in ("version:", "uptime seconds:", "open streams:", "upstream healthy:"):
        assert line in text, text

    for target, headers in ((f"{STATUS}?json", []), (STATUS, [("Accept", "application/json")])):
        resp = client.request(main.port, "GET", target, headers)
        assert resp.status == 200, resp
        assert media_type(resp) == "application/json", resp
        status = resp.json()
        assert {"version", "pid", "uptimeSeconds", "workers", "streams", "upstream", "requests"} <= set(status), status
        assert status["upstream"]["url"] == upstream.url, status
    assert flow_calls(upstream) == []


@pytest.mark.parametrize("target", ENDPOINTS)
def test_head(main, upstream, target):
    """HEAD: the GET's status and type, no body (the web server drops it)."""
    get = wait_ready(main.port) if target == READY else client.request(main.port, "GET", target)
    status, headers, body = head(main.port, target)
    assert (status, body) == (get.status, b""), (status, headers, body)
    types = [v for n, v in headers if n.lower() == "content-type"]
    assert types == [get.header("Content-Type")], (headers, get.headers)
    assert flow_calls(upstream) == []


@pytest.mark.parametrize("target", ENDPOINTS)
def test_other_methods_are_405(main, upstream, target):
    resp = client.request(main.port, "POST", target, [("Content-Type", "application/json")], body=b"{}")
    body = assert_proxy_error(resp, 405)
    assert body["error"] == "method_not_allowed", body
    assert resp.header("Allow") == "GET, HEAD", resp
    assert flow_calls(upstream) == []
    if target == READY:
        return   # readiness's request lines are logged at debug only
    # The refusal is logged (warn) with the client's address as the web
    # server passed it: REMOTE_ADDR, which metrics and status are checked on.
    lines = wait_for(lambda: applog.with_rid(main.app_log(), body["requestId"]), scaled(5))
    assert [(r["level"], r["client"], r["status"]) for r in lines] == [("warn", "127.0.0.1", "405")], lines


# --- the restriction of metrics and status ----------------------------------------

def start(web, upstream, tmp_path, mutations=(), **env):
    app_env = {"OPENOVA_FLOW_SERVER_URL": upstream.url, "OPENOVA_FLOW_KEEPALIVE": "0"}
    app_env.update(env)
    server = servers.WEB_SERVERS[web](app_env, tmp_path / web, mutations=mutations)
    try:
        return server.start()
    except BaseException:
        server.stop()
        raise


def test_app_refuses_addresses_outside_its_list(web, upstream, tmp_path):
    """OPENOVA_FLOW_METRICS_ALLOW without loopback: the web server lets the
    loopback client through, the app itself answers 403 (JSON); liveness
    and readiness stay open."""
    server = start(web, upstream, tmp_path, OPENOVA_FLOW_METRICS_ALLOW="10.0.0.0/8")
    try:
        for target in (METRICS, STATUS, f"{STATUS}?json"):
            resp = client.request(server.port, "GET", target)
            body = assert_proxy_error(resp, 403)
            assert body["error"] == "forbidden", body
            assert b"openova_flow_" not in resp.body and upstream.url.encode() not in resp.body, resp
        assert client.request(server.port, "GET", HEALTH).status == 200
        assert wait_ready(server.port).status == 200
        assert flow_calls(upstream) == []
    finally:
        server.stop()


# Each web server's own allow list for metrics and status, narrowed in a
# copy of its conf/ to a range the test client is not in.
WEB_SERVER_ALLOW = {
    "lighttpd": ("openova-flow-fcgi.conf", '$HTTP["remoteip"] != "127.0.0.0/8"', '$HTTP["remoteip"] != "10.0.0.0/8"'),
    "apache": ("openova-flow-fcgi.conf", "    Require local\n", "    Require ip 10.0.0.0/8\n"),
    "nginx": ("nginx.conf", "allow 127.0.0.0/8;", "allow 10.0.0.0/8;"),
}


def test_web_server_refuses_addresses_outside_its_list(web, upstream, tmp_path):
    """The shipped configs restrict metrics and status in the web server
    too: with its list narrowed, the web server answers 403 itself (no
    X-Request-ID: the app never saw it); liveness and readiness stay open."""
    server = start(web, upstream, tmp_path, mutations=[WEB_SERVER_ALLOW[web]])
    try:
        for target in (METRICS, STATUS):
            resp = client.request(server.port, "GET", target)
            assert resp.status == 403 and not resp.header("X-Request-ID"), resp
            assert b"openova_flow_" not in resp.body, resp
        assert client.request(server.port, "GET", HEALTH).json() == {"status": "ok"}
        assert wait_ready(server.port).json() == {"status": "ready"}
        assert not [r for r in applog.records(server.app_log()) if r.get("route") in ("metrics", "status")]
        assert flow_calls(upstream) == []
    finally:
        server.stop()

