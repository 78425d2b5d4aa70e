"""Errors the proxy makes itself: 502 when nothing listens upstream, 504
when the upstream is too slow; JSON with exactly error/message/requestId
and nothing of the proxy's insides (upstream address, libcurl text)."""
import time

import pytest

from harness import client
from harness.checks import assert_proxy_error
from harness.upstream import Reply, json_reply, stream_reply

BASE = "/api/v1/flows"

# (row id, method, route)
ROUTES = [("snapshot", "GET", "snapshot"), ("events", "POST", "events"), ("stream", "GET", "stream")]

LEAKS = ["127.0.0.1", "localhost", "curl", "Couldn't", "couldn't", "errno", "Failed to connect",
         "Connection refused", "Operation timed out", "Timeout was reached", "http://"]


def assert_no_internal_detail(body, port):
    text = body.decode("utf-8", "replace")
    for leak in LEAKS + [f":{port}", str(port)]:
        assert leak not in text, f"{leak!r} leaked into {text!r}"


@pytest.mark.parametrize("method,route", [r[1:] for r in ROUTES], ids=[r[0] for r in ROUTES])
def test_upstream_refused_is_502(instances, refusing_port, fid, method, route):
    refused = instances.get("refused")
    body = b'{"type":"upsert-flow"}' if method == "POST" else None
    rid = "rid-502-" + route
    resp = client.request(refused.port, method, f"{BASE}/{fid()}/{route}",
                          refused.auth_headers() + [("X-Request-ID", rid), ("Content-Type", "application/json")],
                          body)
    assert_proxy_error(resp, 502, request_id=rid)
    assert_no_internal_detail(resp.body, refusing_port.port)


@pytest.mark.parametrize("method,route", [r[1:] for r in ROUTES], ids=[r[0] for r in ROUTES])
def test_upstream_timeout_is_504(instances, upstream, fid, method, route):
    timeout = instances.get("timeout")   # OPENOVA_FLOW_PROXY_TIMEOUT=1s
    flow = fid()
    if route == "stream":
        # No head for 3 s: the stream never started.
        upstream.set(flow, stream_reply([(0, b"data: late\n\n")], end="clean", delay=3.0))
    else:
        upstream.set(flow, Reply(status=200, headers=[("Content-Type", "application/json")], body=b"{}", delay=3.0))
    body = b'{"type":"upsert-flow"}' if method == "POST" else None
    started = time.monotonic()
    resp = client.request(timeout.port, method, f"{BASE}/{flow}/{route}",
                          timeout.auth_headers() + [("Content-Type", "application/json")], body)
    took = time.monotonic() - started
    assert_proxy_error(resp, 504)
    assert 0.8 < took < 2.9, f"answered after {took:.2f}s"
    assert_no_internal_detail(resp.body, upstream.port)
    assert len(upstream.requests(flow)) == 1


def test_timeout_instance_still_answers_fast_upstream(instances, upstream, fid):
    timeout = instances.get("timeout")
    flow = fid()
    upstream.set(flow, json_reply(200, b'{"fast":true}'))
    resp = client.request(timeout.port, "GET", f"{BASE}/{flow}/snapshot", timeout.auth_headers())
    assert (resp.status, resp.body) == (200, b'{"fast":true}')


def test_upstream_404_is_not_a_proxy_error(main, upstream, fid):
    # The upstream's own 404 comes back as its body, not the proxy's JSON.
    flow = fid()
    upstream.set(flow, Reply(status=404, headers=[("Content-Type", "text/plain")], body=b"no such flow\n"))
    resp = client.request(main.port, "GET", f"{BASE}/{flow}/snapshot", main.auth_headers())
    assert (resp.status, resp.body, resp.header("Content-Type")) == (404, b"no such flow\n", "text/plain")
