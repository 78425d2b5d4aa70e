"""held workers: no web server connection that is not sending holds a worker.
Kept connections (FCGI_KEEP_CONN) wait between requests without one and
are closed after OPENOVA_FLOW_KEEPCONN_IDLE; a request that trickles in is
answered 408 after OPENOVA_FLOW_CLIENT_TIMEOUT; a connection that never
sends is closed then; and the stop lets requests in progress finish instead
of breaking them. Over FastCGI directly, with few workers, so that a held
worker shows at once."""
import os
import signal
import socket
import time

import pytest

from harness import servers
from harness.checks import wait_for
from harness.fastcgi import FCGI_STDIN, FcgiConnection, _record, cgi_params, fcgi_request, request_head
from harness.upstream import json_reply
from harness.timing import scaled

BASE = "/api/v1/flows"
WORKERS = 4
CLIENT_TIMEOUT = 1.0
KEEPCONN_IDLE = 1.5


@pytest.fixture
def app(upstream, tmp_path):
    a = servers.App({"OPENOVA_FLOW_SERVER_URL": upstream.url, "OPENOVA_FLOW_WORKERS": str(WORKERS),
                     "OPENOVA_FLOW_KEEPALIVE": "0",
                     "OPENOVA_FLOW_CLIENT_TIMEOUT": f"{int(CLIENT_TIMEOUT * 1000)}ms",
                     "OPENOVA_FLOW_KEEPCONN_IDLE": f"{int(KEEPCONN_IDLE * 1000)}ms"}, tmp_path)
    a.start()
    yield a
    a.stop()


def snapshot_params(flow):
    return cgi_params("GET", f"{BASE}/{flow}/snapshot", remote_user="alice")


def events_params(flow, length):
    return cgi_params("POST", f"{BASE}/{flow}/events", [("Content-Type", "application/json")],
                      b"x" * length, remote_user="alice")


def timed_snapshot(app, upstream, flow):
    upstream.set(flow, json_reply(200, b'{"ok":1}'))
    started = time.monotonic()
    resp = fcgi_request(app.address, "GET", f"{BASE}/{flow}/snapshot", remote_user="alice", timeout=scaled(10))
    return resp, time.monotonic() - started


def test_idle_kept_connections_hold_no_worker(app, upstream, fid):
    """As many kept connections as workers, each idle after one request: a
    request on a new connection is still answered at once."""
    kept = []
    try:
        for _ in range(WORKERS):
            flow = fid()
            upstream.set(flow, json_reply(200, b'{"ok":1}'))
            conn = FcgiConnection(app.address)
            kept.append(conn)
            conn.send_request(snapshot_params(flow), keep_conn=True)
            resp = conn.read_all()
            assert resp.status == 200 and resp.app_status == 0
        resp, took = timed_snapshot(app, upstream, fid())
        assert resp.status == 200, resp.raw[:300]
        assert took < scaled(1.0), f"a new connection waited {took:.2f}s behind idle kept ones"
        # And the kept connections still serve their next request.
        for conn in kept:
            flow = fid()
            upstream.set(flow, json_reply(200, b'{"again":1}'))
            conn.resp = type(conn.resp)()
            conn.send_request(snapshot_params(flow), keep_conn=True)
            resp = conn.read_all()
            assert (resp.status, resp.body) == (200, b'{"again":1}')
    finally:
        for conn in kept:
            conn.close()


def test_idle_kept_connection_closed_after_its_limit(app, upstream, fid):
    flow = fid()
    upstream.set(flow, json_reply(200, b'{"ok":1}'))
    conn = FcgiConnection(app.address)
    try:
        conn.send_request(snapshot_params(flow), keep_conn=True)
        assert conn.read_all().app_status == 0
        started = time.monotonic()
        conn.sock.settimeout(scaled(10))
        assert conn.sock.recv(1) == b"", "the app must close an idle kept connection"
        took = time.monotonic() - started
        assert KEEPCONN_IDLE - 0.3 <= took < KEEPCONN_IDLE + scaled(1.5), took
    finally:
        conn.close()


def test_silent_new_connection_closed_after_the_client_timeout(app):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(app.address)
        started = time.monotonic()
        sock.settimeout(scaled(10))
        assert sock.recv(1) == b""
        took = time.monotonic() - started
        assert CLIENT_TIMEOUT - 0.3 <= took < CLIENT_TIMEOUT + scaled(1.5), took


def partial_events(app, flow, declared, first_bytes):
    """An events request that announces `declared` bytes and sends only
    `first_bytes`, on a fresh connection (no end of FCGI_STDIN)."""
    conn = FcgiConnection(app.address)
    conn.sock.sendall(request_head(events_params(flow, declared)) + _record(FCGI_STDIN, 1, first_bytes))
    return conn


def test_trickling_bodies_get_408_and_hold_no_worker(app, upstream, fid):
    """As many POSTs as workers announce 100,000 bytes and send 5: each ends
    with 408 after OPENOVA_FLOW_CLIENT_TIMEOUT, the upstream never hears of
    them, and a snapshot from another client is answered meanwhile."""
    slow = []
    try:
        started = time.monotonic()
        for _ in range(WORKERS):
            flow = fid()
            slow.append((partial_events(app, flow, 100000, b'{"typ'), flow))
        time.sleep(0.2)  # every worker has taken one
        resp, took = timed_snapshot(app, upstream, fid())
        assert resp.status == 200
        for conn, flow in slow:
            resp = conn.read_all(scaled(10))
            assert resp.status == 408, resp.raw[:300]
            assert b'"request_timeout"' in resp.body
            assert not upstream.requests(flow)
        assert time.monotonic() - started < CLIENT_TIMEOUT + scaled(3)
    finally:
        for conn, _ in slow:
            conn.close()


def test_stop_lets_a_half_sent_body_finish(app, upstream, fid):
    """SIGTERM while an events body is half sent: the request still gets its
    grace period, the rest arrives, the upstream receives the whole body and
    the client its answer; then the app exits 0."""
    flow = fid()
    body = b'{"type":"upsert-flow","flow":{"id":"%s","status":"running"}}' % flow.encode()
    upstream.set(flow, json_reply(200, b'{"seq":1}'))
    conn = partial_events(app, flow, len(body), body[:len(body) // 2])
    try:
        time.sleep(0.2)  # the worker is reading the body
        os.kill(app.proc.pid, signal.SIGTERM)
        time.sleep(0.3)
        conn.sock.sendall(_record(FCGI_STDIN, 1, body[len(body) // 2:]) + _record(FCGI_STDIN, 1))
        resp = conn.read_all(scaled(5))
        assert (resp.status, resp.app_status) == (200, 0), resp.raw[:300]
        (rec,) = upstream.requests(flow)
        assert rec.body == body
    finally:
        conn.close()
    assert wait_for(lambda: app.proc.poll() is not None, scaled(6))
    assert app.proc.returncode == 0, app.log()[-2000:]
    app.proc = None


def _connection_inodes(pid):
    """The app's connected sockets (its listening socket excluded)."""
    listening = {line.split()[-1] for line in open("/proc/net/unix").read().splitlines()[1:]
                 if line.split()[3] == "00010000"}  # __SO_ACCEPTCON
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inode = target[8:-1]
            if inode not in listening:
                inodes.add(inode)
    return inodes


@pytest.mark.parametrize("web", ["nginx", "apache"])
def test_web_server_keeps_connections_to_the_app(instances, upstream, fid, web):
    """conf/nginx ships fastcgi_keep_conn with an upstream keepalive pool,
    conf/apache2 enablereuse=on: sequential requests (streams among them)
    reuse the connections the app keeps between them."""
    from harness import client
    from harness.upstream import stream_reply
    server = instances.get("main", web)
    pid = server.app.pid

    def snapshots(n):
        for _ in range(n):
            flow = fid()
            upstream.set(flow, json_reply(200, b'{"ok":1}'))
            resp = client.request(server.port, "GET", f"{BASE}/{flow}/snapshot", server.auth_headers())
            assert resp.status == 200

    def streams(n):
        for _ in range(n):
            flow = fid()
            upstream.set(flow, stream_reply([(0, b"data: 1\n\n")], end="clean"))
            resp = client.request(server.port, "GET", f"{BASE}/{flow}/stream", server.auth_headers())
            assert (resp.status, resp.body) == (200, b"data: 1\n\n")

    snapshots(5)
    first = _connection_inodes(pid)
    assert first, "no connection kept between requests"
    streams(5)
    snapshots(20)
    assert first & _connection_inodes(pid), "the kept connections were not reused"


def test_stop_with_every_worker_busy_or_kept(app, upstream, fid):
    """SIGTERM with a stream open, idle kept connections and a body still
    trickling in on every other worker: the stream ends cleanly, the process
    exits 0 within the stop's bounds, and nothing it frees is used after
    (under ASan or valgrind a use after free would fail the run)."""
    from harness.upstream import stream_reply
    stream_flow = fid()
    upstream.set(stream_flow, stream_reply([(0, b"data: 1\n\n")], end="hold"))
    stream = FcgiConnection(app.address)
    kept, slow = [], []
    try:
        stream.send_request(cgi_params("GET", f"{BASE}/{stream_flow}/stream", remote_user="alice"))
        assert stream.read_some(scaled(5))
        for _ in range(2):
            flow = fid()
            upstream.set(flow, json_reply(200, b'{"ok":1}'))
            conn = FcgiConnection(app.address)
            kept.append(conn)
            conn.send_request(snapshot_params(flow), keep_conn=True)
            assert conn.read_all().app_status == 0
        for _ in range(WORKERS):
            slow.append(partial_events(app, fid(), 1000, b'{"t'))
        time.sleep(0.2)
        stopped_at = time.monotonic()
        os.kill(app.proc.pid, signal.SIGTERM)
        resp = stream.read_all(scaled(6))
        assert resp.ended and resp.app_status == 0, "the stream must end cleanly at the stop"
        assert wait_for(lambda: app.proc.poll() is not None, scaled(8))
        assert app.proc.returncode == 0, app.log()[-3000:]
        assert time.monotonic() - stopped_at < scaled(6)
        assert "stopped" in app.log()
        app.proc = None
    finally:
        for conn in [stream] + kept + slow:
            conn.close()


def test_stop_with_a_worker_that_does_not_end(upstream, fid, tmp_path):
    """A body still trickling in when the stop's 3 s are up (the client
    timeout is longer): the worker is left behind, the stream loop ends its
    streams cleanly but is not freed under it, and the process exits 0."""
    from harness.upstream import stream_reply
    app = servers.App({"OPENOVA_FLOW_SERVER_URL": upstream.url, "OPENOVA_FLOW_WORKERS": "2",
                       "OPENOVA_FLOW_KEEPALIVE": "0", "OPENOVA_FLOW_CLIENT_TIMEOUT": "60s"}, tmp_path).start()
    stream_flow = fid()
    upstream.set(stream_flow, stream_reply([(0, b"data: 1\n\n")], end="hold"))
    stream = FcgiConnection(app.address)
    slow = None
    try:
        stream.send_request(cgi_params("GET", f"{BASE}/{stream_flow}/stream", remote_user="alice"))
        assert stream.read_some(scaled(5))
        slow = partial_events(app, fid(), 1000, b'{"t')
        time.sleep(0.3)
        stopped_at = time.monotonic()
        os.kill(app.proc.pid, signal.SIGTERM)
        resp = stream.read_all(scaled(8))
        assert resp.ended and resp.app_status == 0
        assert wait_for(lambda: app.proc.poll() is not None, scaled(8))
        assert app.proc.returncode == 0, app.log()[-3000:]
        assert time.monotonic() - stopped_at < scaled(6)
        assert "did not stop in time" in app.log()
    finally:
        stream.close()
        if slow:
            slow.close()
        app.stop()
