"""stream: GET {base}/{id}/stream relays Server-Sent Events through lighttpd
as they come: the head before the first frame, each frame within 200 ms,
the upstream's refusals as real statuses, and the end of the upstream as
the end of the client's response. Instance "main" has keepalive off, so
the client's body is exactly the upstream's bytes."""
import time

import pytest

from harness import client
from harness.upstream import Reply, stream_reply

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
        assert s.wait_eof(5)
    finally:
        s.close()
    (rec,) = upstream.requests(flow)
    assert (rec.method, rec.target) == ("GET", f"/v1/flows/{flow}/stream")
    assert rec.header("Accept") == "text/event-stream"
    assert rec.header("Last-Event-ID") == last_event_id


def test_head_arrives_before_first_frame(main, upstream, fid):
    flow = fid()
    upstream.set(flow, stream_reply([(1.0, frame(1))], end="hold"))
    s = client.Stream(main.port, f"{BASE}/{flow}/stream", main.auth_headers())
    try:
        head_latency = s.head_at - s.sent_at
        assert s.status == 200
        assert (s.header("Content-Type") or "").split(";")[0] == "text/event-stream"
        assert "no-cache" in (s.header("Cache-Control") or "")
        assert s.header("X-Accel-Buffering") == "no"
        assert s.header("X-Request-ID")
        # The upstream answers its head at once and the first frame after 1 s.
        assert head_latency < 0.5, f"head took {head_latency:.3f}s"
        assert s.body == b""
        assert s.read_until(lambda st: len(st.events()) >= 1, 3)
        assert s.events()[0][1] == frame(1)
    finally:
        s.close()


def test_each_frame_arrives_within_200ms(main, upstream, fid):
    flow = fid()
    frames = [frame(i) for i in range(1, 7)]
    upstream.set(flow, stream_reply([(0.5, f) for f in frames], end="hold"))
    s = client.Stream(main.port, f"{BASE}/{flow}/stream", main.auth_headers())
    try:
        assert s.status == 200
        assert s.read_until(lambda st: len(st.events()) >= len(frames), 10), s.body
        (rec,) = upstream.requests(flow)
        events = s.events()
        assert [e[1] for e in events] == frames
        lags = [arrived - sent for (arrived, _), sent in zip(events, rec.frames_sent_at)]
        assert max(lags) < 0.2, [f"{lag * 1000:.0f}ms" for lag in lags]
    finally:
        s.close()


def test_frame_split_across_chunks_arrives_whole(main, upstream, fid):
    flow = fid()
    f = frame(1)
    upstream.set(flow, stream_reply([(0, f[:10]), (0.3, f[10:25]), (0.3, f[25:])], end="clean"))
    s = client.Stream(main.port, f"{BASE}/{flow}/stream", main.auth_headers())
    try:
        assert s.wait_eof(5)
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
        assert s.wait_eof(5), f"client response still open: {s.body!r}"
        ended = time.monotonic()
        assert rec.finished_at is not None or not rec.conn.open
        upstream_end = rec.finished_at or rec.conn.closed_at
        assert ended - upstream_end < 2.0
        assert s.body == b"".join(frames)
    finally:
        s.close()


def test_drop_inside_a_frame_ends_client_response(main, upstream, fid):
    flow = fid()
    upstream.set(flow, stream_reply([(0, frame(1)), (0.1, b'data: {"half":')], end="drop"))
    s = client.Stream(main.port, f"{BASE}/{flow}/stream", main.auth_headers())
    try:
        assert s.wait_eof(5), s.body
        assert s.body.startswith(frame(1))
    finally:
        s.close()
