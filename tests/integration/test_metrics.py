"""test_metrics.py: the metrics move by exactly what was done (issue 14).

Each test drives known traffic through lighttpd and an app of its own
(conf/lighttpd/lighttpd-noauth.conf, the app authenticating bearer tokens),
then reads the app's metrics endpoint through lighttpd, from the loopback,
and compares with what it read before: snapshots, events, refusals,
authentication outcomes, streams opened and closed (the streams gauge
equals the streams open), an unreachable upstream, and readiness. The
exposition must pass `promtool check metrics`, and its OpenMetrics form
must parse with prometheus_client's strict OpenMetrics parser."""
import subprocess

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from harness import authkeys, client, servers
from harness.checks import wait_for
from harness.timing import scaled
from harness.upstream import json_reply, stream_reply

BASE = "/api/v1/flows"
METRICS = "/openova-flow/metrics"
READY = "/openova-flow/readyz"
FRAME = b"event: upsert-nodes\nid: 1\ndata: {\"n\":1}\n\n"


def bearer(token):
    return [("Authorization", f"Bearer {token}")]


@pytest.fixture(scope="module")
def keys():
    store = authkeys.KeyStore()
    yield store
    store.close()


def _start(tmp_path_factory, name, env):
    server = servers.WEB_SERVERS["lighttpd"](env, tmp_path_factory.mktemp(name), conf="noauth")
    server.start()
    return server


@pytest.fixture(scope="module")
def app(upstream, keys, tmp_path_factory):
    """An app of this module's own, so that nothing else moves its counters.
    Keepalive comments are how lighttpd's app learns that a stream's client
    left (lighttpd does not watch an idle client); they are not frames of
    the upstream's and are not counted as such."""
    server = _start(tmp_path_factory, "metrics", keys.app_env("bearer", OPENOVA_FLOW_SERVER_URL=upstream.url,
                                                              OPENOVA_FLOW_KEEPALIVE="1s"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def down_app(refusing_port, tmp_path_factory):
    """An app whose flow server refuses every connection."""
    server = _start(tmp_path_factory, "metrics-down", {"OPENOVA_FLOW_SERVER_URL": refusing_port.url,
                                                       "OPENOVA_FLOW_AUTH": "none"})
    yield server
    server.stop()


def exposition(server, accept=None):
    resp = client.request(server.port, "GET", METRICS, [("Accept", accept)] if accept else [])
    assert resp.status == 200, resp
    return resp


def scrape(server):
    """{(name, ((label, value), ...)): value} of every sample."""
    resp = exposition(server)
    assert resp.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8", resp.headers
    samples = {}
    for family in parse_text(resp.body.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def delta(before, after, name, **labels):
    return value(after, name, **labels) - value(before, name, **labels)


def requests(route, method, status):
    return {"route": route, "method": method, "status": str(status)}


def test_requests_refusals_and_auth_are_counted_exactly(app, upstream, keys, fid):
    flow = fid()
    upstream.set(flow, json_reply(200, b'{"nodes":[]}'))
    events_flow = fid()
    upstream.set(events_flow, json_reply(202, b'{"seq":1}'), route="events")
    missing = fid()
    upstream.set(missing, json_reply(404, b'{"error":"not found"}'))
    token = bearer(keys.emitter_token)
    before = scrape(app)
    for _ in range(3):
        assert client.request(app.port, "GET", f"{BASE}/{flow}/snapshot", token).status == 200
    assert client.request(app.port, "GET", f"{BASE}/{missing}/snapshot", token).status == 404
    for _ in range(2):
        resp = client.request(app.port, "POST", f"{BASE}/{events_flow}/events",
                              token + [("Content-Type", "application/json")], b'{"type":"upsert-flow"}')
        assert resp.status == 202, resp
    assert client.request(app.port, "GET", f"{BASE}/bad%20id/snapshot", token).status == 400
    assert client.request(app.port, "GET", f"{BASE}/{flow}/nothing", token).status == 404
    assert client.request(app.port, "GET", f"{BASE}/{flow}/snapshot").status == 401
    assert client.request(app.port, "GET", f"{BASE}/{flow}/snapshot", bearer("not-a-token")).status == 401
    after = scrape(app)

    expected = [
        (requests("snapshot", "GET", 200), 3), (requests("snapshot", "GET", 404), 1),
        (requests("events", "POST", 202), 2), (requests("snapshot", "GET", 400), 1),
        (requests("none", "GET", 404), 1), (requests("snapshot", "GET", 401), 2),
    ]
    for labels, n in expected:
        assert delta(before, after, "openova_flow_requests_total", **labels) == n, labels
    moved = {k for k in after if k[0] == "openova_flow_requests_total" and k[1] and
             dict(k[1])["route"] not in ("metrics", "ready", "health", "status") and after[k] != before.get(k, 0)}
    assert len(moved) == len(expected), moved
    for code, n in (("invalid_deployment_id", 1), ("not_found", 1), ("unauthorized", 1),
                    ("invalid_credentials", 1)):
        assert delta(before, after, "openova_flow_refusals_total", code=code) == n, code
    # The upstream's own 404 is relayed, not a refusal of the proxy's.
    assert delta(before, after, "openova_flow_auth_total", method="bearer", outcome="accepted") == 7
    assert delta(before, after, "openova_flow_auth_total", method="none", outcome="unauthorized") == 1
    assert delta(before, after, "openova_flow_auth_total", method="none", outcome="invalid_credentials") == 1
    assert delta(before, after, "openova_flow_request_duration_seconds_count", route="snapshot") == 7
    assert delta(before, after, "openova_flow_upstream_request_duration_seconds_count", route="snapshot") == 4
    assert delta(before, after, "openova_flow_upstream_request_duration_seconds_count", route="events") == 2
    failures = [k for k in after if k[0] == "openova_flow_upstream_failures_total" and after[k] != before.get(k, 0)]
    assert failures == [], failures
    assert value(after, "openova_flow_build_info", version=value_of_version(after), libcurl=libcurl_of(after)) == 1


def value_of_version(samples):
    (labels,) = [dict(k[1]) for k in samples if k[0] == "openova_flow_build_info"]
    return labels["version"]


def libcurl_of(samples):
    (labels,) = [dict(k[1]) for k in samples if k[0] == "openova_flow_build_info"]
    return labels["libcurl"]


def test_streams_gauge_frames_bytes_and_ends(app, upstream, keys, fid):
    held, ending = fid("held"), fid("ending")
    upstream.set(held, stream_reply([(0, FRAME)], end="hold"))
    upstream.set(ending, stream_reply([(0, FRAME), (0.2, FRAME)], end="clean"))
    token = bearer(keys.emitter_token)
    before = scrape(app)
    assert value(before, "openova_flow_streams_open") == 0
    opened = [client.Stream(app.port, f"{BASE}/{held}/stream", token) for _ in range(2)]
    try:
        for s in opened:
            assert s.status == 200 and s.read_until(lambda st: st.body == FRAME, scaled(5)), s.body
        during = scrape(app)
        assert value(during, "openova_flow_streams_open") == 2
        assert delta(before, during, "openova_flow_streams_opened_total") == 2
        assert delta(before, during, "openova_flow_stream_frames_total") == 2
        assert delta(before, during, "openova_flow_stream_bytes_total") == 2 * len(FRAME)
        assert value(during, "openova_flow_streams_max") == 1024
        # A stream is counted as a request when it ends.
        assert delta(before, during, "openova_flow_requests_total", **requests("stream", "GET", 200)) == 0

        ended = client.Stream(app.port, f"{BASE}/{ending}/stream", token)
        assert ended.wait_eof(scaled(5)) and ended.complete, ended.body
        ended.close()
    finally:
        for s in opened:
            s.close()
    # Both clients left; the loop notices and ends their streams.
    after = wait_for(lambda: (lambda m: m if value(m, "openova_flow_streams_open") == 0 else None)(scrape(app)),
                     scaled(8), 0.2)
    assert after, "the streams gauge did not return to 0"
    assert delta(before, after, "openova_flow_streams_opened_total") == 3
    assert delta(before, after, "openova_flow_stream_frames_total") == 4
    assert delta(before, after, "openova_flow_stream_bytes_total") == 4 * len(FRAME)
    assert delta(before, after, "openova_flow_stream_ends_total", reason="client_gone") == 2
    assert delta(before, after, "openova_flow_stream_ends_total", reason="upstream_ended") == 1
    assert delta(before, after, "openova_flow_stream_duration_seconds_count") == 3
    assert delta(before, after, "openova_flow_requests_total", **requests("stream", "GET", 200)) == 3
    assert delta(before, after, "openova_flow_upstream_request_duration_seconds_count", route="stream") == 3


def test_unreachable_upstream_is_counted_and_not_ready(down_app, fid):
    flow = fid()
    before = scrape(down_app)
    for route in ("snapshot", "stream"):
        resp = client.request(down_app.port, "GET", f"{BASE}/{flow}/{route}")
        assert resp.status == 502 and resp.json()["error"] == "upstream_unavailable", resp
    resp = client.request(down_app.port, "GET", READY)
    assert resp.status == 503 and resp.json()["error"] == "not_ready", resp
    after = scrape(down_app)
    for route in ("snapshot", "stream"):
        assert delta(before, after, "openova_flow_upstream_failures_total", route=route, reason="unreachable") == 1, \
            route
    # The scrape itself checked the upstream's health (and readiness used that result, at most 2 s old).
    assert value(after, "openova_flow_upstream_failures_total", route="ready", reason="unreachable") >= 1
    assert delta(before, after, "openova_flow_refusals_total", code="upstream_unavailable") == 2
    assert delta(before, after, "openova_flow_requests_total", **requests("snapshot", "GET", 502)) == 1
    assert value(after, "openova_flow_upstream_up") == 0


def test_promtool_accepts_the_exposition(app, upstream, keys, fid):
    flow = fid()
    upstream.set(flow, json_reply(200, b"{}"))
    assert client.request(app.port, "GET", f"{BASE}/{flow}/snapshot", bearer(keys.emitter_token)).status == 200
    text = exposition(app).body
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert check.returncode == 0, (check.stdout + check.stderr).decode()


def test_openmetrics_when_asked(app):
    resp = exposition(app, accept="application/openmetrics-text; version=1.0.0,text/plain;q=0.5")
    assert resp.header("Content-Type") == "application/openmetrics-text; version=1.0.0; charset=utf-8", resp.headers
    text = resp.body.decode()
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in parse_openmetrics(text)}
    assert families["openova_flow_requests"].type == "counter"
    assert families["openova_flow_build"].type == "info"
    assert families["openova_flow_request_duration_seconds"].type == "histogram"


def test_only_allowed_addresses_read_metrics(upstream, tmp_path_factory):
    """OPENOVA_FLOW_METRICS_ALLOW without the loopback: the same scrape is 403."""
    server = _start(tmp_path_factory, "metrics-closed", {"OPENOVA_FLOW_SERVER_URL": upstream.url,
                                                         "OPENOVA_FLOW_AUTH": "none",
                                                         "OPENOVA_FLOW_METRICS_ALLOW": "10.0.0.0/8"})
    try:
        for path in (METRICS, "/openova-flow/status"):
            resp = client.request(server.port, "GET", path)
            assert resp.status == 403 and resp.json()["error"] == "forbidden", resp
        assert client.request(server.port, "GET", "/openova-flow/healthz").status == 200
        assert upstream.requests() == []
    finally:
        server.stop()
