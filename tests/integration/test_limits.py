"""Limits on what a client or an upstream can make the proxy hold (issue 5):
oversized request headers (431), the snapshot size cap (502 when known up
front; a cut-off response, never a clean end, when it is passed mid-body),
and stream upstreams that trickle or never end a line: each ties up its own
stream and nothing else."""
import json
import time

import pytest

from harness import client, servers
from harness.checks import assert_proxy_error, wait_for
from harness.fastcgi import FcgiConnection, cgi_params, fcgi_request
from harness.upstream import Reply, json_reply, stream_reply
from harness.timing import scaled

BASE = "/api/v1/flows"
CAP = 65536


@pytest.fixture(scope="module")
def app(upstream, tmp_path_factory):
    a = servers.App({"OPENOVA_FLOW_SERVER_URL": upstream.url, "OPENOVA_FLOW_MAX_SNAPSHOT": str(CAP),
                     "OPENOVA_FLOW_KEEPALIVE": "0"}, tmp_path_factory.mktemp("limits"))
    a.start()
    yield a
    a.stop()


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


# ---- request headers ----

# (row id, headers): past 16 KiB for one value or 64 KiB in all: 431
HUGE_HEADERS = [
    ("one-value", [("X-Big", "a" * (17 * 1024))]),
    ("many-values", [(f"X-Big-{i}", "b" * 8000) for i in range(10)]),
]


@pytest.mark.parametrize("headers", [r[1] for r in HUGE_HEADERS], ids=[r[0] for r in HUGE_HEADERS])
def test_oversized_headers_are_431(app, upstream, fid, headers):
    resp = fcgi_request(app.address, "GET", f"{BASE}/{fid()}/snapshot", headers, remote_user="alice")
    assert resp.status == 431, resp.raw[:300]
    body = json.loads(resp.body)
    assert body["error"] == "headers_too_large", body
    assert upstream.requests() == []


def test_headers_just_under_the_bounds_pass(app, upstream, fid):
    flow = fid()
    upstream.set(flow, json_reply())
    headers = [(f"X-Big-{i}", "c" * 15000) for i in range(3)]
    resp = fcgi_request(app.address, "GET", f"{BASE}/{flow}/snapshot", headers, remote_user="alice")
    assert resp.status == 200, resp.raw[:300]


# ---- snapshot size ----

def test_snapshot_at_the_cap_passes(app, upstream, fid):
    flow = fid()
    body = b"[" + b"1," * ((CAP - 3) // 2) + b"1]"
    assert len(body) <= CAP
    upstream.set(flow, Reply(status=200, headers=[("Content-Type", "application/json")], body=body, chunked=True,
                             chunk_size=8192))
    resp = fcgi_request(app.address, "GET", f"{BASE}/{flow}/snapshot", remote_user="alice")
    assert resp.status == 200 and resp.app_status == 0, resp.raw[:300]
    assert resp.body == body


def test_snapshot_with_a_length_past_the_cap_is_502(app, upstream, fid):
    flow = fid()
    upstream.set(flow, json_reply(200, b"x" * (CAP + 1)))
    resp = fcgi_request(app.address, "GET", f"{BASE}/{flow}/snapshot", remote_user="alice")
    assert resp.status == 502, resp.raw[:300]
    assert json.loads(resp.body)["error"] == "upstream_too_large"


def test_chunked_snapshot_past_the_cap_is_cut_off(app, upstream, fid):
    flow = fid()
    upstream.set(flow, Reply(status=200, headers=[("Content-Type", "application/json")], body=b"y" * (4 * CAP),
                             chunked=True, chunk_size=8192))
    conn = FcgiConnection(app.address)
    try:
        conn.send_request(cgi_params("GET", f"{BASE}/{flow}/snapshot", remote_user="alice"))
        resp = conn.read_all(scaled(10))
    finally:
        conn.close()
    # The head had gone out: the connection closes without END_REQUEST, so
    # the web server cannot mistake the truncated body for a whole one.
    assert resp.status == 200
    assert resp.app_status is None, "a truncated snapshot must not end cleanly"
    assert len(resp.body) <= CAP
    assert wait_for(lambda: "response cut off" in app.log(), scaled(3)), app.log()[-2000:]


def test_snapshot_cut_short_before_anything_left_is_a_clean_502(app, upstream, fid):
    """The app holds a small body back to send it in one write; when the
    upstream fails before any of it left, the client gets a whole 502
    instead of a 200 with a body cut short."""
    flow = fid()
    upstream.set(flow, stream_reply([(0, b'{"nodes":[1,')], end="drop",
                                    headers=[("Content-Type", "application/json")]))
    resp = fcgi_request(app.address, "GET", f"{BASE}/{flow}/snapshot", remote_user="alice")
    assert resp.status == 502, resp.raw[:300]
    assert resp.app_status == 0
    assert json.loads(resp.body)["error"].startswith("upstream")


def test_cut_off_snapshot_through_lighttpd_stops_at_the_cap(instances, upstream, fid):
    """The client never gets more than the cap. (Whether it also sees the
    response as incomplete is lighttpd's call: 1.4.69 ends the chunked body
    cleanly when the app's close arrives while it is not reading. A prefix
    of a JSON document is never valid JSON, so a browser still fails.)"""
    server = instances.get("snapshotcap", "lighttpd")
    flow = fid()
    body = b'{"nodes":[' + b'"n",' * CAP + b'"n"]}'
    upstream.set(flow, Reply(status=200, headers=[("Content-Type", "application/json")], body=body,
                             chunked=True, chunk_size=8192))
    s = client.Stream(server.port, f"{BASE}/{flow}/snapshot", server.auth_headers())
    try:
        assert s.status == 200
        assert s.wait_eof(scaled(10))
        assert len(s.body) <= CAP
        assert body.startswith(s.body)
        with pytest.raises(ValueError):
            json.loads(s.body)
    finally:
        s.close()
    # And the next snapshot is served normally.
    flow = fid()
    upstream.set(flow, json_reply(200, b'{"ok":1}'))
    resp = client.request(server.port, "GET", f"{BASE}/{flow}/snapshot", server.auth_headers())
    assert resp.status == 200 and resp.body == b'{"ok":1}'


def test_oversized_upstream_header_block_is_502(app, upstream, fid):
    flow = fid()
    upstream.set(flow, Reply(status=200, headers=[(f"X-Pad-{i}", "p" * 1000) for i in range(80)], body=b"{}"))
    resp = fcgi_request(app.address, "GET", f"{BASE}/{flow}/snapshot", remote_user="alice")
    assert resp.status == 502, resp.raw[:300]


# ---- hostile stream upstreams ----

def test_endless_line_and_trickle_tie_up_only_their_own_streams(app, upstream, fid):
    """One upstream sends 8 MiB without a newline, another a byte every
    200 ms; a third, ordinary stream still gets each frame at once, and the
    app's memory stays bounded (the per-stream buffer, not the line)."""
    pid = app.proc.pid
    rss_before = _rss_kib(pid)
    long_flow, slow_flow, good_flow = fid("long"), fid("slow"), fid("good")
    piece = b"x" * 65536
    upstream.set(long_flow, stream_reply([(0, b"data: ")] + [(0, piece)] * 128, end="hold"))
    upstream.set(slow_flow, stream_reply([(0.2, bytes([c])) for c in b"data: trickle\n\n" * 4], end="hold"))
    frames = [b"id: %d\ndata: {}\n\n" % i for i in range(5)]
    upstream.set(good_flow, stream_reply([(0.3, f) for f in frames], end="clean"))
    hostile = []
    try:
        for flow in (long_flow, slow_flow):
            conn = FcgiConnection(app.address)
            conn.send_request(cgi_params("GET", f"{BASE}/{flow}/stream", remote_user="alice"))
            hostile.append(conn)
        # The endless line is read slowly by its client: only the bounded
        # buffer may pile up in the app.
        hostile[0].read_some(scaled(3))
        good = FcgiConnection(app.address)
        try:
            good.send_request(cgi_params("GET", f"{BASE}/{good_flow}/stream", remote_user="alice"))
            (rec,) = upstream.wait_requests(good_flow)
            arrived = []
            while good.read_some(scaled(5)):
                for i, f in enumerate(frames):
                    if f in good.resp.body and len(arrived) == i:
                        arrived.append(time.monotonic())
            assert good.resp.ended and good.resp.app_status == 0
            lags = [a - s for a, s in zip(arrived, rec.frames_sent_at)]
            assert len(lags) == len(frames) and max(lags) < scaled(0.5), lags
        finally:
            good.close()
        grown = _rss_kib(pid) - rss_before
        assert grown < 4096, f"app RSS grew {grown} KiB while an upstream sent an endless line"
        # The trickling stream got its bytes too, one by one.
        slow = hostile[1]
        assert wait_for(lambda: slow.read_some(1) and b"data: trickle\n\n" in slow.resp.body, scaled(6)), slow.resp.raw
    finally:
        for conn in hostile:
            conn.close()
