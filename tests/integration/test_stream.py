"""stream: GET {base}/{id}/stream relays Server-Sent Events through each web
server as they come: the head before the first frame, each frame within 200 ms,
the upstream's refusals as real statuses, and the end of the upstream as
the end of the client's response. Instance "main" has keepalive off, so
the client's body is exactly the upstream's bytes."""
import time

import pytest

from harness import client
from harness.checks import wait_for
from harness.upstream import Reply, stream_reply
from harness.timing import scaled

BASE = "/api/v1/flows"


def frame(n, event="upsert-nodes"):
    return (f"event: {event}\nid: {n}\n"
            f'data: {{"type":"{event}","nodes":[{{"id":"n{n}","flowId":"f","label":"l","status":"running"}}]}}\n\n'
            ).encode()


# (row id, client headers, expected upstream Last-Event-ID)
FORWARDED = [
    ("no-last-event-id", [], None),
    ("last-event-id", [("Last-Event-ID", "42")], "42"),
    ("client-accept-ignored", [("Accept", "application/json")], None),
    ("last-event-id-and-accept", [("Accept", "*/*"), ("Last-Event-ID", "7-b")], "7-b"),
]


@pytest.mark.parametrize("headers,last_event_id", [r[1:] for r in FORWARDED], ids=[r[0] for r in FORWARDED])
def test_upstream_receives_stream_request(main, upstream, fid, headers, last_event_id):
    flow = fid()
    upstream.set(flow, stream_reply([(0, frame(1))], end="clean"))
    s = client.Stream(main.port, f"{BASE}/{flow}/stream", main.auth_headers() + headers)
    try:
        assert s.status == 200
        assert s.wait_eof(scaled(5))
    finally:
        s.close()
    (rec,) = upstream.requests(flow)
    assert (rec.method, rec.target) == ("GET", f"/v1/flows/{flow}/stream")
    assert rec.header("Accept") == "text/event-stream"
    assert rec.header("Last-Event-ID") == last_event_id


# Web servers that hold the response head until the first body byte:
# Apache's mod_proxy_fcgi passes nothing on before the app's first body
# data, flushpackets or not, so a browser sees the stream open (EventSource
# onopen) only with the first frame. The flow server sends its snapshot
# frame first, at once, so in practice that is immediate.
HEAD_WAITS_FOR_FIRST_FRAME = {"apache"}


def test_head_arrives_before_first_frame(main, web, upstream, fid):
    flow = fid()
    # The first frame's delay is scaled with the bounds, so that the head
    # coming only with the frame still tells from the head coming at once.
    upstream.set(flow, stream_reply([(scaled(1.0), frame(1))], end="hold"))
    s = client.Stream(main.port, f"{BASE}/{flow}/stream", main.auth_headers())
    try:
        head_latency = s.head_at - s.sent_at
        assert s.status == 200
        assert (s.header("Content-Type") or "").split(";")[0] == "text/event-stream"
        assert "no-cache" in (s.header("Cache-Control") or "")
        # For whatever proxy is in front (nginx passes it on by
        # fastcgi_pass_header; it would drop it otherwise).
        assert s.header("X-Accel-Buffering") == "no"
        assert s.header("X-Request-ID")
        # The upstream answers its head at once and the first frame after 1 s.
        if web in HEAD_WAITS_FOR_FIRST_FRAME:
            assert scaled(0.9) < head_latency < scaled(1.5), f"head took {head_latency:.3f}s"
            assert s.read_until(lambda st: len(st.events()) >= 1, scaled(0.2)), s.body
        else:
            assert head_latency < scaled(0.5), f"head took {head_latency:.3f}s"
            assert s.body == b""
            assert s.read_until(lambda st: len(st.events()) >= 1, scaled(3))
        assert s.events()[0][1] == frame(1)
    finally:
        s.close()


def test_each_frame_arrives_within_200ms(main, upstream, fid):
    flow = fid()
    frames = [frame(i) for i in range(1, 7)]
    # Gaps scaled with the bound: a frame held until the next still fails.
    upstream.set(flow, stream_reply([(scaled(0.5), f) for f in frames], end="hold"))
    s = client.Stream(main.port, f"{BASE}/{flow}/stream", main.auth_headers())
    try:
        assert s.status == 200
        assert s.read_until(lambda st: len(st.events()) >= len(frames), scaled(10)), s.body
        (rec,) = upstream.requests(flow)
        events = s.events()
        assert [e[1] for e in events] == frames
        lags = [arrived - sent for (arrived, _), sent in zip(events, rec.frames_sent_at)]
        assert max(lags) < scaled(0.2), [f"{lag * 1000:.0f}ms" for lag in lags]
    finally:
        s.close()


def test_frame_split_across_chunks_arrives_whole(main, upstream, fid):
    flow = fid()
    f = frame(1)
    upstream.set(flow, stream_reply([(0, f[:10]), (0.3, f[10:25]), (0.3, f[25:])], end="clean"))
    s = client.Stream(main.port, f"{BASE}/{flow}/stream", main.auth_headers())
    try:
        assert s.wait_eof(scaled(5))
        assert s.body == f
    finally:
        s.close()


# (row id, upstream status, headers, body): refusals pass on as themselves
REFUSALS = [
    ("404-unknown-flow", 404, [("Content-Type", "application/json")], b'{"error":"not_found"}'),
    ("503-not-ready", 503, [("Content-Type", "application/json"), ("Retry-After", "3")], b'{"error":"starting"}'),
    ("400-text", 400, [("Content-Type", "text/plain")], b"bad last-event-id\n"),
]


@pytest.mark.parametrize("status,headers,body", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_upstream_refusal_passed_on(main, upstream, fid, status, headers, body):
    flow = fid()
    upstream.set(flow, Reply(status=status, headers=headers, body=body))
    resp = client.request(main.port, "GET", f"{BASE}/{flow}/stream", main.auth_headers())
    assert resp.status == status, resp
    assert resp.body == body
    assert (resp.header("Content-Type") or "") != "text/event-stream"
    for name, value in headers:
        assert resp.header(name) == value, resp.headers


# (row id, how the upstream ends)
ENDINGS = [("clean", "clean"), ("drop-mid-stream", "drop")]


@pytest.mark.parametrize("end", [r[1] for r in ENDINGS], ids=[r[0] for r in ENDINGS])
def test_upstream_end_ends_client_response(main, upstream, fid, end):
    flow = fid()
    frames = [frame(1), frame(2), frame(3)]
    upstream.set(flow, stream_reply([(0.1, f) for f in frames], end=end))
    s = client.Stream(main.port, f"{BASE}/{flow}/stream", main.auth_headers())
    try:
        (rec,) = upstream.wait_requests(flow)
        assert s.wait_eof(scaled(5)), f"client response still open: {s.body!r}"
        ended = time.monotonic()
        # The test upstream notes its end just after sending it: a fast web
        # server may deliver the end to the client first.
        assert wait_for(lambda: rec.finished_at is not None or not rec.conn.open, scaled(1))
        upstream_end = rec.finished_at or rec.conn.closed_at
        assert ended - upstream_end < scaled(2.0)
        assert s.body == b"".join(frames)
    finally:
        s.close()


def test_drop_inside_a_frame_ends_client_response(main, upstream, fid):
    flow = fid()
    upstream.set(flow, stream_reply([(0, frame(1)), (0.1, b'data: {"half":')], end="drop"))
    s = client.Stream(main.port, f"{BASE}/{flow}/stream", main.auth_headers())
    try:
        assert s.wait_eof(scaled(5)), s.body
        assert s.body.startswith(frame(1))
    finally:
        s.close()



def test_stream_not_compressed(main, upstream, fid):
    """A browser asking for gzip still gets the stream as written: the test
    servers compress text/event-stream server-wide on purpose, and the
    shipped snippets turn it off for the stream (test_server_settings.py
    shows the difference)."""
    flow = fid()
    frames = [frame(1), frame(2)]
    upstream.set(flow, stream_reply([(0.2, f) for f in frames], end="clean"))
    s = client.Stream(main.port, f"{BASE}/{flow}/stream", main.auth_headers() + [("Accept-Encoding", "gzip")])
    try:
        assert s.wait_eof(scaled(5)), s.body
        assert s.header("Content-Encoding") is None, s.headers
        assert s.body == b"".join(frames)
    finally:
        s.close()
