"""Many open streams do not block short requests, all their upstream
connections close when their clients leave, and OPENOVA_FLOW_MAX_STREAMS
is enforced with 503 + Retry-After."""
import time

from harness import client
from harness.checks import assert_proxy_error, wait_for
from harness.upstream import json_reply, stream_reply
from harness.timing import scaled

BASE = "/api/v1/flows"
FRAME = b"event: snapshot\nid: 1\ndata: {}\n\n"
STREAMS = 100


def test_hundred_streams_and_a_snapshot(instances, web, upstream, fid):
    server = instances.get("keepalive", web)   # OPENOVA_FLOW_KEEPALIVE=1s
    flows = [fid(f"s{i}") for i in range(STREAMS)]
    for flow in flows:
        upstream.set(flow, stream_reply([(0, FRAME)], end="hold"))
    streams = []
    try:
        for flow in flows:
            streams.append(client.Stream(server.port, f"{BASE}/{flow}/stream", server.auth_headers()))
        assert [s.status for s in streams] == [200] * STREAMS
        for s in streams:
            assert s.read_until(lambda st: st.body.startswith(FRAME), scaled(5)), s.body
        recs = [upstream.wait_requests(flow)[0] for flow in flows]
        assert all(r.conn.open for r in recs)

        snap = fid("snapshot")
        upstream.set(snap, json_reply(200, b'{"nodes":[]}'))
        started = time.monotonic()
        resp = client.request(server.port, "GET", f"{BASE}/{snap}/snapshot", server.auth_headers())
        took = time.monotonic() - started
        assert (resp.status, resp.body) == (200, b'{"nodes":[]}')
        assert took < scaled(1.0), f"snapshot took {took:.2f}s with {STREAMS} streams open"
    finally:
        for s in streams:
            s.close()
    left = time.monotonic()
    still_open = wait_for(lambda: not [r for r in recs if r.conn.open], scaled(10))
    open_conns = [r.target for r in recs if r.conn.open]
    assert still_open, f"{len(open_conns)} upstream streams still open {scaled(10)} s after their clients left"
    assert time.monotonic() - left < scaled(10)


def test_max_streams_503_with_retry_after(instances, web, upstream, fid):
    server = instances.get("maxstreams", web)   # OPENOVA_FLOW_MAX_STREAMS=2, keepalive 1s
    flows = [fid(f"m{i}") for i in range(4)]
    for flow in flows:
        upstream.set(flow, stream_reply([(0, FRAME)], end="hold"))
    first = [client.Stream(server.port, f"{BASE}/{flow}/stream", server.auth_headers()) for flow in flows[:2]]
    try:
        assert [s.status for s in first] == [200, 200]
        for s in first:
            assert s.read_until(lambda st: st.body.startswith(FRAME), scaled(5))
        resp = client.request(server.port, "GET", f"{BASE}/{flows[2]}/stream", server.auth_headers())
        assert_proxy_error(resp, 503)
        retry = resp.header("Retry-After")
        assert retry is not None and retry.isdigit() and int(retry) > 0, resp.headers
        assert upstream.requests(flows[2]) == []
        # Short requests are not streams: still served.
        upstream.set(flows[3], json_reply(200, b"{}"), route="snapshot")
        assert client.request(server.port, "GET", f"{BASE}/{flows[3]}/snapshot", server.auth_headers()).status == 200
    finally:
        for s in first:
            s.close()
    # Once a client has left and its stream is gone, a new one fits again.
    rec0 = upstream.requests(flows[0])[0]
    assert upstream.wait_closed(rec0.conn, scaled(5)) is not None

    def third_accepted():
        s = client.Stream(server.port, f"{BASE}/{flows[2]}/stream", server.auth_headers())
        s.close()
        return s.status == 200
    assert wait_for(third_accepted, scaled(5), interval=0.2)
