"""Keepalive comments on a silent stream (never inside a frame), and the
upstream connection closed once the client leaves, through each web server,
with the bound each one allows. Instance "keepalive" runs with
OPENOVA_FLOW_KEEPALIVE=1s, "main" with 0 (off)."""
import time

import pytest

from harness import client
from harness.upstream import stream_reply
from harness.timing import scaled

BASE = "/api/v1/flows"
KEEPALIVE = b": keepalive\n\n"
FRAME = b'event: upsert-flow\nid: 1\ndata: {"type":"upsert-flow"}\n\n'


def read_window(s, seconds, enough):
    """Reads for `seconds` (the app's keepalive period is real time, so the
    window is not scaled), then, only when the app was too slow to have
    written `enough` by then, on until it has or the scaled window ends.
    Returns how long it read."""
    start = time.monotonic()
    s.read_for(seconds)
    s.read_until(enough, scaled(seconds) - seconds)
    return time.monotonic() - start


@pytest.fixture
def keepalive(instances, web):
    return instances.get("keepalive", web)


def test_silent_stream_gets_keepalive_comments(keepalive, upstream, fid):
    flow = fid()
    upstream.set(flow, stream_reply([(0, FRAME)], end="hold"))
    s = client.Stream(keepalive.port, f"{BASE}/{flow}/stream", keepalive.auth_headers())
    try:
        assert s.status == 200
        took = read_window(s, 3.6, lambda st: st.body[len(FRAME):].count(KEEPALIVE) >= 2)
        assert s.body.startswith(FRAME), s.body
        rest = s.body[len(FRAME):]
        # Only whole keepalive comments after the frame, about one a second.
        assert rest == KEEPALIVE * (len(rest) // len(KEEPALIVE)), rest
        assert 2 <= rest.count(KEEPALIVE) <= took + 1.4, (took, rest)
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
        assert s.read_until(lambda st: first + second in st.body, scaled(6)), s.body
        whole = first + second
        at = s.body.index(whole)
        # Before the half frame only the first frame and keepalives; the two
        # halves adjacent: nothing was written between them.
        before = s.body[:at]
        assert before.startswith(FRAME)
        assert before[len(FRAME):] == KEEPALIVE * before[len(FRAME):].count(KEEPALIVE), before
        # After the complete frame and more silence, keepalives again.
        read_window(s, 2.6, lambda st: KEEPALIVE in st.body[at + len(whole):])
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
        s.read_until(lambda st: st.body == FRAME, scaled(3))
        s.read_for(2.5)
        assert s.body == FRAME
    finally:
        s.close()


# How each web server notices that a client left, and so how long the
# departed client's stream holds its upstream connection (measured with
# OPENOVA_FLOW_KEEPALIVE=1s; INSTALL lists the numbers):
# - nginx watches the client's connection and closes the FastCGI
#   connection at once; the app closes the upstream connection then.
# - lighttpd notices at its first failing write to the client: the next
#   keepalive comment (idle) or frame (active).
# - Apache (mod_proxy_fcgi) notices at the second write after the client
#   left (the first one still succeeds into the kernel, which answers it
#   with a reset): two keepalive periods, or two frames.
# (bound in keepalive periods when idle, bound in frame gaps when active)
NOTICED_AFTER = {"nginx": (0, 0), "lighttpd": (1, 1), "apache": (2, 2)}
SLACK = scaled(0.8)     # seconds, for a busy 2-core machine (and a slow app)
FRAME_GAP = 0.3

# (row id, upstream frames after the first): idle = silent, active = a frame
# every 300 ms for a minute
UPSTREAMS = [
    ("idle-upstream", []),
    ("active-upstream", [(FRAME_GAP, b"data: {\"tick\":%d}\n\n" % i) for i in range(200)]),
]


@pytest.mark.parametrize("more", [r[1] for r in UPSTREAMS], ids=[r[0] for r in UPSTREAMS])
def test_client_gone_closes_upstream_connection(keepalive, web, upstream, fid, more):
    flow = fid()
    upstream.set(flow, stream_reply([(0, FRAME)] + more, end="hold"))
    s = client.Stream(keepalive.port, f"{BASE}/{flow}/stream", keepalive.auth_headers())
    assert s.read_until(lambda st: st.body.startswith(FRAME), scaled(3))
    (rec,) = upstream.requests(flow)
    assert rec.conn.open
    s.close()
    left = time.monotonic()
    periods, gaps = NOTICED_AFTER[web]
    bound = (gaps * FRAME_GAP if more else periods * 1.0) + SLACK
    closed = upstream.wait_closed(rec.conn, max(4.0, bound + 1))
    assert closed is not None, f"upstream connection still open {max(4.0, bound + 1)} s after the client left"
    assert closed - left < bound, f"{web}: upstream closed {closed - left:.2f}s after the client left"


# Without keepalive comments (instance "main"), a silent stream never writes
# to the client: only a web server that watches the client's connection
# notices it leave. nginx does; behind lighttpd and Apache the upstream
# connection stays open until the flow server sends something (or hangs
# up). That is why OPENOVA_FLOW_KEEPALIVE must stay on behind them.
WATCHES_IDLE_CLIENT = {"nginx": True, "lighttpd": False, "apache": False}


def test_idle_client_gone_without_keepalive(main, web, upstream, fid):
    flow = fid()
    upstream.set(flow, stream_reply([(0, FRAME)], end="hold"))
    s = client.Stream(main.port, f"{BASE}/{flow}/stream", main.auth_headers())
    assert s.read_until(lambda st: st.body == FRAME, scaled(3))
    (rec,) = upstream.requests(flow)
    s.close()
    left = time.monotonic()
    if WATCHES_IDLE_CLIENT[web]:
        closed = upstream.wait_closed(rec.conn, scaled(2.0))
        assert closed is not None and closed - left < SLACK, "nginx kept the upstream connection"
    else:
        assert upstream.wait_closed(rec.conn, 2.5) is None, f"{web} noticed an idle client: update INSTALL"
