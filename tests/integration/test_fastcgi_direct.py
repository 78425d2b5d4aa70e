"""The faster layer beside lighttpd: the app driven over FastCGI directly,
to see exactly the CGI head it writes (lighttpd adds and drops some
headers itself, Connection and Transfer-Encoding among them) and to send
request lines lighttpd would rewrite (".." segments)."""
import time

import pytest

from harness import servers
from harness.fastcgi import FcgiConnection, cgi_params, fcgi_request
from harness.upstream import Reply, json_reply, stream_reply
from harness.timing import scaled

BASE = "/api/v1/flows"


@pytest.fixture(scope="module")
def app(upstream, tmp_path_factory):
    a = servers.App({"OPENOVA_FLOW_SERVER_URL": upstream.url, "OPENOVA_FLOW_KEEPALIVE": "1s"},
                    tmp_path_factory.mktemp("direct"))
    a.start()
    yield a
    a.stop()


def get(app, target, headers=(), user="alice", method="GET", body=b""):
    return fcgi_request(app.address, method, target, headers, body, remote_user=user)


# Every hop-by-hop header of RFC 9110 7.6.1, one named by Connection, and
# Set-Cookie; each must be absent from the head the app writes.
HOP = [
    ("Connection", "close, X-Hop-Secret"),
    ("X-Hop-Secret", "s3cr3t"),
    ("Keep-Alive", "timeout=5"),
    ("Proxy-Authenticate", 'Basic realm="up"'),
    ("Proxy-Authorization", "Basic dXA6c2VjcmV0"),
    ("TE", "trailers"),
    ("Trailer", "X-Checksum"),
    ("Upgrade", "h2c"),
    ("Set-Cookie", "session=abc"),
    ("Set-Cookie", "b=2"),
]
KEPT = [("Content-Type", "application/json"), ("X-Flow-Version", "7"), ("ETag", '"v7"'),
        ("Cache-Control", "no-store")]
REMOVED = sorted({name for name, _ in HOP} | {"Transfer-Encoding"})


@pytest.mark.parametrize("route", ["snapshot", "events"])
@pytest.mark.parametrize("removed", REMOVED)
def test_app_head_has_no_hop_by_hop_headers(app, upstream, fid, route, removed):
    flow = fid()
    # Chunked, so the upstream's Transfer-Encoding is there to be dropped.
    upstream.set(flow, Reply(status=200, headers=KEPT + HOP, body=b'{"nodes":[]}', chunked=True))
    method, body = ("POST", b"{}") if route == "events" else ("GET", b"")
    resp = get(app, f"{BASE}/{flow}/{route}", method=method, body=body,
               headers=[("Content-Type", "application/json")] if body else [])
    assert resp.ended and resp.status == 200, resp.raw[:500]
    assert resp.body == b'{"nodes":[]}'
    names = [n.lower() for n in resp.header_names()]
    assert removed.lower() not in names, resp.headers
    for name, value in KEPT:
        assert [v for n, v in resp.headers if n.lower() == name.lower()] == [value], resp.headers


# Request lines lighttpd normalizes before they reach this check.
# (row id, REQUEST_URI, status, message or None)
RAW_PATHS = [
    ("dotdot", f"{BASE}/../snapshot", 400, None),
    ("dot", f"{BASE}/./snapshot", 400, None),
    ("empty", f"{BASE}//snapshot", 400, "deploymentId required"),
    ("empty-with-query", f"{BASE}//snapshot?x=1", 400, "deploymentId required"),
    ("escaped-space", f"{BASE}/dep%201/snapshot", 400, None),
    ("escaped-dotdot", f"{BASE}/%2E%2E/snapshot", 400, None),
    ("too-long", f"{BASE}/{'a' * 129}/snapshot", 400, None),
    ("outside-base", "/api/v1/other/dep-1/snapshot", 404, None),
]


@pytest.mark.parametrize("target,status,message", [r[1:] for r in RAW_PATHS], ids=[r[0] for r in RAW_PATHS])
def test_raw_request_uri_checks(app, upstream, target, status, message):
    import json
    resp = get(app, target)
    assert resp.status == status, resp.raw[:500]
    body = json.loads(resp.body)
    assert set(body) == {"error", "message", "requestId"}
    if message:
        assert body["message"] == message
    assert upstream.requests() == []


def test_stream_head_and_frames_flushed(app, upstream, fid):
    flow = fid()
    frames = [b"id: 1\ndata: {}\n\n", b"id: 2\ndata: {}\n\n"]
    # The gaps are scaled with the bounds, so that a frame held back until
    # the next one (or a head held until the first frame) still fails.
    upstream.set(flow, stream_reply([(scaled(0.8), frames[0]), (scaled(0.5), frames[1])], end="clean"))
    conn = FcgiConnection(app.address)
    try:
        sent = time.monotonic()
        conn.send_request(cgi_params("GET", f"{BASE}/{flow}/stream", remote_user="alice"))
        while not conn.resp.parse_head():
            assert conn.read_some(scaled(3))
        assert time.monotonic() - sent < scaled(0.5), "head waited for the first frame"
        assert conn.resp.status == 200
        assert conn.resp.header("Content-Type") == "text/event-stream"
        assert conn.resp.header("X-Accel-Buffering") == "no"
        (rec,) = upstream.requests(flow)
        arrived = []
        while conn.read_some(scaled(5)):
            for i, f in enumerate(frames):
                if f in conn.resp.body and len(arrived) == i:
                    arrived.append(time.monotonic())
        assert conn.resp.ended
        assert conn.resp.body.replace(b": keepalive\n\n", b"") == b"".join(frames)
        lags = [a - s for a, s in zip(arrived, rec.frames_sent_at)]
        assert len(lags) == 2 and max(lags) < scaled(0.2), lags
    finally:
        conn.close()


def test_web_server_gone_closes_upstream(app, upstream, fid):
    """The web server drops the FastCGI connection (its client left): the
    app notices on its next write (keepalive 1 s) and closes upstream."""
    flow = fid()
    upstream.set(flow, stream_reply([(0, b"data: 1\n\n")], end="hold"))
    conn = FcgiConnection(app.address)
    conn.send_request(cgi_params("GET", f"{BASE}/{flow}/stream", remote_user="alice"))
    while b"data: 1\n\n" not in conn.resp.body:
        assert conn.read_some(scaled(3))
    (rec,) = upstream.requests(flow)
    conn.close()
    assert upstream.wait_closed(rec.conn, scaled(4)) is not None


def test_missing_remote_user_is_401(app, upstream, fid):
    resp = get(app, f"{BASE}/{fid()}/snapshot", user=None)
    assert resp.status == 401
    assert upstream.requests() == []


def _snapshot_on(conn, flow, keep_conn):
    conn.resp = type(conn.resp)()
    conn.send_request(cgi_params("GET", f"{BASE}/{flow}/snapshot", remote_user="alice"), keep_conn=keep_conn)
    return conn.read_all()


def test_kept_connection_serves_the_next_request(app, upstream, fid):
    """FCGI_KEEP_CONN (Apache's mod_proxy_fcgi asks for it): the app leaves
    the connection open after END_REQUEST and answers the next request on
    it, each with its own whole body; an events body read to its end
    leaves nothing behind that would spoil the next request."""
    flows = [fid(), fid(), fid()]
    bodies = [b'{"n":1}', b'{"n":2,"pad":"' + b"x" * 150000 + b'"}']
    for flow, body in zip(flows, bodies):
        upstream.set(flow, json_reply(body=body))
    upstream.set(flows[2], json_reply(body=b'{"seq":7}'))
    event = b'{"type":"upsert-node","node":{"id":"n1"}}' * 50
    conn = FcgiConnection(app.address)
    try:
        for flow, body in zip(flows, bodies):
            resp = _snapshot_on(conn, flow, keep_conn=True)
            assert resp.app_status == 0 and resp.status == 200
            assert resp.body == body
        conn.resp = type(conn.resp)()
        conn.send_request(cgi_params("POST", f"{BASE}/{flows[2]}/events",
                                     [("Content-Type", "application/json")], event, remote_user="alice"),
                          body=event, keep_conn=True)
        resp = conn.read_all()
        assert (resp.app_status, resp.status, resp.body) == (0, 200, b'{"seq":7}')
        resp = _snapshot_on(conn, flows[0], keep_conn=True)
        assert (resp.app_status, resp.status, resp.body) == (0, 200, bodies[0])
    finally:
        conn.close()
    (rec,) = upstream.requests(flows[2])
    assert rec.body == event


def test_connection_closed_after_the_answer(app, upstream, fid):
    """Without FCGI_KEEP_CONN the app ends the connection after END_REQUEST:
    the web server reads its end without having to hang up first."""
    flow = fid()
    upstream.set(flow, json_reply(body=b'{"n":3}'))
    conn = FcgiConnection(app.address)
    try:
        resp = _snapshot_on(conn, flow, keep_conn=False)
        assert resp.status == 200 and resp.body == b'{"n":3}'
        conn.sock.settimeout(scaled(2))
        assert conn.sock.recv(1) == b""
    finally:
        conn.close()
