"""Keepalive comments on a silent stream (never inside a frame), and the
upstream connection closed once the client leaves. Instance "keepalive"
runs with OPENOVA_FLOW_KEEPALIVE=1s, "main" with 0 (off)."""
import time

import pytest

from harness import client
from harness.upstream import stream_reply

BASE = "/api/v1/flows"
KEEPALIVE = b": keepalive\n\n"
FRAME = b'event: upsert-flow\nid: 1\ndata: {"type":"upsert-flow"}\n\n'


@pytest.fixture
def keepalive(instances):
    return instances.get("keepalive")


def test_silent_stream_gets_keepalive_comments(keepalive, upstream, fid):
    flow = fid()
    upstream.set(flow, stream_reply([(0, FRAME)], end="hold"))
    s = client.Stream(keepalive.port, f"{BASE}/{flow}/stream", keepalive.auth_headers())
    try:
        assert s.status == 200
        s.read_for(3.6)
        assert s.body.startswith(FRAME), s.body
        rest = s.body[len(FRAME):]
        # Only whole keepalive comments after the frame, about one a second.
        assert rest == KEEPALIVE * (len(rest) // len(KEEPALIVE)), rest
        assert 2 <= rest.count(KEEPALIVE) <= 5, rest
    finally:
        s.close()


def test_no_keepalive_inside_a_frame(keepalive, upstream, fid):
    flow = fid()
    first, second = b'data: {"a"', b':1}\n\n'
    # Half a frame, 3 s of silence (three keepalive periods), the rest of
    # the frame, then silence again.
    upstream.set(flow, stream_reply([(0, FRAME), (0.2, first), (3.0, second)], end="hold"))
    s = client.Stream(keepalive.port, f"{BASE}/{flow}/stream", keepalive.auth_headers())
    try:
        assert s.read_until(lambda st: first + second in st.body, 6), s.body
        whole = first + second
        at = s.body.index(whole)
        # Before the half frame only the first frame and keepalives; the two
        # halves adjacent: nothing was written between them.
        before = s.body[:at]
        assert before.startswith(FRAME)
        assert before[len(FRAME):] == KEEPALIVE * before[len(FRAME):].count(KEEPALIVE), before
        # After the complete frame and more silence, keepalives again.
        s.read_for(2.6)
        after = s.body[at + len(whole):]
        assert after.count(KEEPALIVE) >= 1, s.body
        assert after == KEEPALIVE * after.count(KEEPALIVE), after
    finally:
        s.close()


def test_keepalive_off_sends_nothing(main, upstream, fid):
    flow = fid()
    upstream.set(flow, stream_reply([(0, FRAME)], end="hold"))
    s = client.Stream(main.port, f"{BASE}/{flow}/stream", main.auth_headers())
    try:
        s.read_for(2.5)
        assert s.body == FRAME
    finally:
        s.close()


# (row id, upstream frames after the first): idle = silent, active = a frame
# every 300 ms for a minute
UPSTREAMS = [
    ("idle-upstream", []),
    ("active-upstream", [(0.3, b"data: {\"tick\":%d}\n\n" % i) for i in range(200)]),
]


@pytest.mark.parametrize("more", [r[1] for r in UPSTREAMS], ids=[r[0] for r in UPSTREAMS])
def test_client_gone_closes_upstream_connection(keepalive, upstream, fid, more):
    flow = fid()
    upstream.set(flow, stream_reply([(0, FRAME)] + more, end="hold"))
    s = client.Stream(keepalive.port, f"{BASE}/{flow}/stream", keepalive.auth_headers())
    assert s.read_until(lambda st: st.body.startswith(FRAME), 3)
    (rec,) = upstream.requests(flow)
    assert rec.conn.open
    s.close()
    left = time.monotonic()
    closed = upstream.wait_closed(rec.conn, 4.0)
    assert closed is not None, "upstream connection still open 4 s after the client left"
    assert closed - left < 4.0
