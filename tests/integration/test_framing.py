"""framing: what the client sees is what happened upstream. A body framed
both ways loses its Content-Length (RFC 9112 section 6.3); a body the
upstream cut short is cut short for the client too, on every route; an
upstream that goes silent ends the stream the same way; headers that speak
for the whole origin never pass; snapshots are answered whole, never by
Range; ids with percent-encoded unreserved characters mean the same id."""
import time

import pytest

from harness import client, servers
from harness.checks import wait_for
from harness.fastcgi import FCGI_ABORT_REQUEST, FCGI_STDIN, FcgiConnection, _record, cgi_params, fcgi_request, request_head
from harness.upstream import Reply, json_reply, stream_reply
from harness.timing import scaled

BASE = "/api/v1/flows"


def frame(n):
    return f'id: {n}\ndata: {{"seq":{n}}}\n\n'.encode()


@pytest.fixture(scope="module")
def app(upstream, tmp_path_factory):
    a = servers.App({"OPENOVA_FLOW_SERVER_URL": upstream.url, "OPENOVA_FLOW_KEEPALIVE": "0"},
                    tmp_path_factory.mktemp("framing"))
    a.start()
    yield a
    a.stop()


# ---- Content-Length beside Transfer-Encoding ----

def test_length_beside_chunked_is_dropped(main, upstream, fid):
    """An upstream that sends Content-Length: 5 with a chunked 40-byte body:
    the client gets all 40 bytes, and no Content-Length of 5."""
    flow = fid()
    body = b'{"nodes":["0123456789","0123456789"]}   '
    assert len(body) == 40
    upstream.set(flow, Reply(headers=[("Content-Type", "application/json"), ("Content-Length", "5")], body=body,
                             chunked=True, chunk_size=8))
    resp = client.request(main.port, "GET", f"{BASE}/{flow}/snapshot", main.auth_headers())
    assert resp.status == 200, resp
    assert resp.body == body
    assert resp.header("Content-Length") in (None, "40"), resp.headers


def test_length_beside_chunked_is_dropped_by_the_app(app, upstream, fid):
    flow = fid()
    upstream.set(flow, Reply(headers=[("Content-Length", "5")], body=b"x" * 40, chunked=True, chunk_size=8))
    resp = fcgi_request(app.address, "GET", f"{BASE}/{flow}/snapshot", remote_user="alice")
    assert resp.status == 200 and resp.body == b"x" * 40
    assert resp.header("Content-Length") is None, resp.raw[:300]


# ---- a body cut short is cut short for the client ----

ROUTES = [("stream-200", "stream", 200), ("stream-404", "stream", 404), ("snapshot", "snapshot", 200)]


@pytest.mark.parametrize("route,status", [r[1:] for r in ROUTES], ids=[r[0] for r in ROUTES])
def test_upstream_cut_short_never_ends_cleanly(app, upstream, fid, route, status):
    """The upstream dies mid-body (its connection closes without the last
    chunk): the app ends the request without FCGI_END_REQUEST, which every
    web server reads as a failed response."""
    flow = fid()
    headers = [("Content-Type", "text/event-stream" if status == 200 else "application/json")]
    first = frame(1) + b"x" * 70000 if route == "snapshot" else frame(1)
    upstream.set(flow, stream_reply([(0, first), (0.2, frame(2))], end="drop", status=status, headers=headers))
    conn = FcgiConnection(app.address)
    try:
        conn.send_request(cgi_params("GET", f"{BASE}/{flow}/{route}", remote_user="alice"))
        resp = conn.read_all(scaled(10))
    finally:
        conn.close()
    assert resp.status == status, resp.raw[:300]
    assert resp.body.startswith(frame(1))
    assert resp.app_status is None, "a body the upstream cut short must not end cleanly"


def test_upstream_clean_end_still_ends_cleanly(app, upstream, fid):
    flow = fid()
    upstream.set(flow, stream_reply([(0, frame(1)), (0.1, frame(2))], end="clean"))
    resp = fcgi_request(app.address, "GET", f"{BASE}/{flow}/stream", remote_user="alice")
    assert resp.status == 200 and resp.app_status == 0
    assert resp.body == frame(1) + frame(2)


def test_client_sees_a_crashed_upstream(main, upstream, fid):
    """Through every web server the chunked response is cut without its last
    chunk, as it would be from the flow server directly (curl exit 18)."""
    server = main
    flow = fid()
    upstream.set(flow, stream_reply([(0, frame(1)), (0.2, frame(2))], end="drop"))
    s = client.Stream(server.port, f"{BASE}/{flow}/stream", server.auth_headers())
    try:
        assert s.status == 200
        assert s.wait_eof(scaled(5)), s.body
        assert s.body.startswith(frame(1))
        assert not s.complete, "the client's response must not end cleanly"
    finally:
        s.close()


# ---- an upstream that goes silent ----

IDLE = 1.0  # OPENOVA_FLOW_UPSTREAM_IDLE of the idle app, in seconds


@pytest.fixture(scope="module")
def idle_app(upstream, tmp_path_factory):
    a = servers.App({"OPENOVA_FLOW_SERVER_URL": upstream.url, "OPENOVA_FLOW_KEEPALIVE": "0",
                     "OPENOVA_FLOW_UPSTREAM_IDLE": f"{int(IDLE * 1000)}ms"}, tmp_path_factory.mktemp("idle"))
    a.start()
    yield a
    a.stop()


def test_silent_upstream_is_cut(idle_app, upstream, fid):
    """The upstream keeps its socket open and sends nothing more (a host gone
    without a FIN): after OPENOVA_FLOW_UPSTREAM_IDLE the stream is cut, so the
    browser reconnects, and the upstream connection is closed."""
    flow = fid()
    upstream.set(flow, stream_reply([(0, frame(1))], end="hold"))
    conn = FcgiConnection(idle_app.address)
    try:
        started = time.monotonic()
        conn.send_request(cgi_params("GET", f"{BASE}/{flow}/stream", remote_user="alice"))
        resp = conn.read_all(scaled(10))
        took = time.monotonic() - started
    finally:
        conn.close()
    assert resp.status == 200 and resp.body == frame(1)
    assert resp.app_status is None, "a silent upstream must not look like a finished stream"
    assert IDLE <= took < IDLE + scaled(2.0), took
    (rec,) = upstream.requests(flow)
    assert wait_for(lambda: not rec.conn.open, scaled(2))
    assert wait_for(lambda: "end=upstream-idle" in idle_app.log(), scaled(2)), idle_app.log()[-2000:]


def test_upstream_with_heartbeats_is_not_cut(idle_app, upstream, fid):
    flow = fid()
    frames = [frame(n) for n in range(1, 6)]
    upstream.set(flow, stream_reply([(IDLE * 0.6, f) for f in frames], end="clean"))
    resp = fcgi_request(idle_app.address, "GET", f"{BASE}/{flow}/stream", remote_user="alice", timeout=scaled(10))
    assert resp.status == 200 and resp.app_status == 0
    assert resp.body == b"".join(frames)


# ---- origin-wide headers ----

ORIGIN_WIDE = [
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Credentials", "true"),
    ("Access-Control-Allow-Headers", "Authorization"),
    ("Access-Control-Expose-Headers", "X-Flow-Version"),
    ("Strict-Transport-Security", "max-age=0"),
    ("Clear-Site-Data", '"*"'),
    ("Refresh", "0; url=https://evil.example/"),
]


def test_origin_wide_headers_never_pass(main, upstream, fid):
    flow = fid()
    upstream.set(flow, json_reply(200, b'{"ok":1}', headers=ORIGIN_WIDE + [("X-Flow-Version", "7")]))
    resp = client.request(main.port, "GET", f"{BASE}/{flow}/snapshot",
                          main.auth_headers() + [("Origin", "https://evil.example")])
    assert resp.status == 200
    for name, _ in ORIGIN_WIDE:
        assert resp.header(name) is None, (name, resp.headers)
    assert resp.header("X-Flow-Version") == "7"


# ---- Range ----

@pytest.mark.parametrize("web", ["lighttpd", "nginx", "apache"])
def test_snapshot_range_gets_the_whole_body(instances, upstream, fid, web):
    server = instances.get("main", web)
    flow = fid()
    body = b'{"nodes":[' + b'"n",' * 100 + b'"n"]}'
    upstream.set(flow, json_reply(200, body))
    resp = client.request(server.port, "GET", f"{BASE}/{flow}/snapshot",
                          server.auth_headers() + [("Range", "bytes=0-9")])
    assert resp.status == 200, resp
    assert resp.body == body
    assert resp.header("Content-Range") is None


# ---- percent-encoded ids ----

def _escape(chars):
    return lambda s: "".join(f"%{ord(c):02X}" if c in chars else c for c in s)


ENCODINGS = [
    ("hyphen", _escape("-")),
    ("lower-hex", lambda s: s.replace("-", "%2d")),
    ("every-character", lambda s: "".join(f"%{ord(c):02X}" for c in s)),
    ("tilde-dot-underscore", _escape("~._")),
]


@pytest.mark.parametrize("encode", [r[1] for r in ENCODINGS], ids=[r[0] for r in ENCODINGS])
def test_percent_encoded_unreserved_characters_are_the_same_id(main, upstream, fid, encode):
    flow = fid() + "~a.b_c"
    upstream.set(flow, json_reply(200, b'{"ok":1}'))
    resp = client.request(main.port, "GET", f"{BASE}/{encode(flow)}/snapshot", main.auth_headers())
    assert resp.status == 200, resp
    (rec,) = upstream.requests(flow)
    assert rec.target == f"/v1/flows/{flow}/snapshot"


BAD = [("slash", "a%2Fb"), ("percent", "a%25b"), ("space", "a%20b"), ("bad-hex", "a%zzb"), ("short", "ab%2"),
       ("dot-dot", "%2E%2E"), ("nul", "a%00b")]


@pytest.mark.parametrize("encoded", [r[1] for r in BAD], ids=[r[0] for r in BAD])
def test_other_percent_escapes_are_refused(app, upstream, fid, encoded):
    flow = fid()
    resp = fcgi_request(app.address, "GET", f"{BASE}/{encoded}/snapshot", remote_user="alice")
    assert resp.status == 400, resp.raw[:300]
    assert not upstream.requests(flow)


# ---- FCGI_ABORT_REQUEST ----

def test_abort_during_a_stream_ends_it_with_end_request(app, upstream, fid):
    """The web server aborts an open stream: the upstream connection closes
    at once, and FCGI_END_REQUEST answers the abort (FastCGI 1.0, 5.4)."""
    flow = fid()
    upstream.set(flow, stream_reply([(0, frame(1))], end="hold"))
    conn = FcgiConnection(app.address)
    try:
        conn.send_request(cgi_params("GET", f"{BASE}/{flow}/stream", remote_user="alice"))
        assert conn.read_some(scaled(5))
        (rec,) = upstream.wait_requests(flow)
        aborted_at = time.monotonic()
        conn.abort()
        resp = conn.read_all(scaled(5))
        assert resp.ended and resp.app_status == 0, "no FCGI_END_REQUEST after the abort"
        assert time.monotonic() - aborted_at < scaled(0.5)
        assert wait_for(lambda: not rec.conn.open, scaled(1))
    finally:
        conn.close()


def test_abort_before_the_handoff_is_not_lost(app, upstream, fid):
    """The abort arrives where the request's input should, before the stream
    leaves libfcgi (which reads it as a protocol error): the stream ends at
    once instead of running on."""
    flow = fid()
    upstream.set(flow, stream_reply([(0, frame(1))], end="hold"))
    conn = FcgiConnection(app.address)
    try:
        started = time.monotonic()
        conn.sock.sendall(request_head(cgi_params("GET", f"{BASE}/{flow}/stream", remote_user="alice")) +
                          _record(FCGI_ABORT_REQUEST, 1))
        resp = conn.read_all(scaled(5))
        assert resp.ended and resp.app_status == 0, resp.raw[:300]
        assert time.monotonic() - started < scaled(1)
        assert wait_for(lambda: all(not r.conn.open for r in upstream.requests(flow)), scaled(1))
    finally:
        conn.close()


@pytest.mark.parametrize("route", ["snapshot", "events"])
def test_abort_during_a_call_ends_it(app, upstream, fid, route):
    """An abort while the upstream is still answering a snapshot or an
    events POST: the upstream call ends within 100 ms (its connection
    closes) and FCGI_END_REQUEST answers the abort."""
    flow = fid()
    upstream.set(flow, Reply(status=200, headers=[("Content-Type", "application/json")], body=b'{"ok":1}',
                             delay=scaled(5)))
    body = b'{"type":"upsert-flow"}' if route == "events" else b""
    method = "POST" if route == "events" else "GET"
    headers = [("Content-Type", "application/json")] if body else []
    conn = FcgiConnection(app.address)
    try:
        conn.send_request(cgi_params(method, f"{BASE}/{flow}/{route}", headers, body, remote_user="alice"), body)
        (rec,) = upstream.wait_requests(flow)
        aborted_at = time.monotonic()
        conn.abort()
        resp = conn.read_all(scaled(5))
        assert resp.ended and resp.app_status == 0, resp.raw[:300]
        assert wait_for(lambda: not rec.conn.open, scaled(2))
        assert rec.conn.closed_at - aborted_at < scaled(0.1) + 0.05, rec.conn.closed_at - aborted_at
    finally:
        conn.close()


@pytest.mark.parametrize("route", ["stream", "snapshot"])
def test_abort_right_behind_the_request_is_not_lost(app, upstream, fid, route):
    """The abort arrives in the same write as the request's end: libfcgi
    reads it into its buffer along with the request; it is still seen, and
    the request ends at once without running on."""
    flow = fid()
    upstream.set(flow, stream_reply([(0, frame(1))], end="hold") if route == "stream" else
                 Reply(status=200, body=b'{"ok":1}', delay=scaled(5)))
    conn = FcgiConnection(app.address)
    try:
        started = time.monotonic()
        conn.sock.sendall(request_head(cgi_params("GET", f"{BASE}/{flow}/{route}", remote_user="alice")) +
                          _record(FCGI_STDIN, 1) + _record(FCGI_ABORT_REQUEST, 1))
        resp = conn.read_all(scaled(5))
        assert resp.ended and resp.app_status == 0, resp.raw[:300]
        assert time.monotonic() - started < scaled(1)
        assert wait_for(lambda: all(not r.conn.open for r in upstream.requests(flow)), scaled(1))
    finally:
        conn.close()


def test_abort_during_an_events_upload(app, upstream, fid):
    """The web server aborts while the events body is still arriving: the
    request ends at once with FCGI_END_REQUEST, and the upstream never hears
    of it."""
    flow = fid()
    conn = FcgiConnection(app.address)
    try:
        params = cgi_params("POST", f"{BASE}/{flow}/events", [("Content-Type", "application/json")], b"x" * 1000,
                            remote_user="alice")
        conn.sock.sendall(request_head(params) + _record(FCGI_STDIN, 1, b'{"type":'))
        time.sleep(0.2)  # the worker is waiting for the rest of the body
        aborted_at = time.monotonic()
        conn.abort()
        resp = conn.read_all(scaled(5))
        assert resp.ended and resp.app_status == 0, resp.raw[:300]
        assert time.monotonic() - aborted_at < scaled(0.1) + 0.05
        assert upstream.requests(flow) == []
    finally:
        conn.close()
