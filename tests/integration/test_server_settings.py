"""What each streaming setting in conf/ does, shown by taking it away.

Every row starts a web server from a copy of its conf/ directory in which
exactly one setting is changed (the text must occur once, so these tests
break when the setting moves), runs the same stream, and shows what
breaks: frames held back, a departed client's upstream connection kept
open, a compressed stream. The unchanged files pass the same checks in the
behavioural suite (test_stream.py, test_keepalive.py) and below."""
import time

import pytest

from harness import client, servers
from harness.upstream import stream_reply
from harness.timing import scaled

BASE = "/api/v1/flows"
# Each server's snippet, where the streaming settings live.
SNIPPET = "openova-flow-fcgi.conf"


def frame(n):
    return f'event: upsert-nodes\nid: {n}\ndata: {{"type":"upsert-nodes","n":{n}}}\n\n'.encode()


FRAMES = [frame(i) for i in range(1, 5)]


def start(web, upstream, tmp_path, mutations, **env):
    app_env = {"OPENOVA_FLOW_SERVER_URL": upstream.url, "OPENOVA_FLOW_KEEPALIVE": "0"}
    app_env.update(env)
    server = servers.WEB_SERVERS[web](app_env, tmp_path / web,
                                      mutations=[(SNIPPET, old, new) for old, new in mutations])
    try:
        return server.start()
    except BaseException:
        server.stop()
        raise


def frame_lags(server, upstream, fid, headers=()):
    """Four small frames 300 ms apart, the stream then held open: each
    frame's delay from the upstream to the client, None for a frame that
    had not arrived 1.5 s (scaled) after the last one went out (all None
    when not even the response head had). The gaps are scaled with the
    bounds, so that a frame held until the next one still fails."""
    flow = fid()
    upstream.set(flow, stream_reply([(scaled(0.3), f) for f in FRAMES], end="hold"))
    window = scaled(0.3 * len(FRAMES) + 1.5)
    try:
        s = client.Stream(server.port, f"{BASE}/{flow}/stream", server.auth_headers() + list(headers),
                          timeout=window)
    except TimeoutError:
        assert len(upstream.requests(flow)[0].frames_sent_at) == len(FRAMES)
        return [None] * len(FRAMES)
    try:
        s.read_for(window - (time.monotonic() - s.sent_at))
        (rec,) = upstream.requests(flow)
        arrived = {block: t for t, block in s.events()}
        return [arrived[f] - sent if f in arrived else None for f, sent in zip(FRAMES, rec.frames_sent_at)]
    finally:
        s.close()


# (row id, web server, (old, new) changes, why it matters)
HELD = [
    ("lighttpd-stream-response-body-0", "lighttpd",
     [("server.stream-response-body = 2", "server.stream-response-body = 0")],
     "lighttpd collects the whole response first: an open stream shows nothing"),
    ("apache-flushpackets-off", "apache",
     [('fcgi://openova-flow-fcgi/" enablereuse=on flushpackets=on',
       'fcgi://openova-flow-fcgi/" enablereuse=on flushpackets=off')],
     "Apache sets small writes aside until about 8 KiB have gathered"),
    # With fastcgi_keep_conn on, nginx 1.22 reads records one by one and
    # passes them on even when buffering; the shipped snippet turns
    # buffering off all the same, for a site that drops keep_conn.
    ("nginx-buffering-on-header-ignored", "nginx",
     [("fastcgi_buffering off;", "fastcgi_buffering on; fastcgi_ignore_headers X-Accel-Buffering;"),
      ("fastcgi_keep_conn on;", "fastcgi_keep_conn off;")],
     "nginx buffers the app's output when neither the config nor the app's header turns it off"),
]


@pytest.mark.parametrize("web,mutations,why", [r[1:] for r in HELD], ids=[r[0] for r in HELD])
def test_without_the_setting_frames_are_held(upstream, fid, tmp_path, web, mutations, why):
    server = start(web, upstream, tmp_path, mutations)
    try:
        lags = frame_lags(server, upstream, fid)
        # Small frames never reach the client while the stream is open.
        assert lags == [None] * len(FRAMES), (why, lags)
    finally:
        server.stop()


def test_nginx_config_alone_keeps_stream_unbuffered(upstream, fid, tmp_path):
    """With the app's X-Accel-Buffering ignored, the snippet's own
    fastcgi_buffering off still carries every frame at once."""
    server = start("nginx", upstream, tmp_path,
                   [("fastcgi_buffering off;", "fastcgi_buffering off; fastcgi_ignore_headers X-Accel-Buffering;")])
    try:
        lags = frame_lags(server, upstream, fid)
        assert None not in lags and max(lags) < scaled(0.2), lags
    finally:
        server.stop()


def test_nginx_ignore_client_abort_on_keeps_upstream_open(upstream, fid, tmp_path):
    """fastcgi_ignore_client_abort on: nginx stops watching the client's
    connection and, like lighttpd and Apache, notices a departed client only
    when a write to it fails. A silent stream (no keepalive comments) then
    holds its upstream connection (here past 2.5 s) until the flow server
    sends something; with the shipped "off", nginx closes it at once, with
    or without keepalives (test_keepalive.py)."""
    server = start("nginx", upstream, tmp_path,
                   [("fastcgi_ignore_client_abort off;", "fastcgi_ignore_client_abort on;")])
    try:
        flow = fid()
        upstream.set(flow, stream_reply([(0, frame(1))], end="hold"))
        s = client.Stream(server.port, f"{BASE}/{flow}/stream", server.auth_headers())
        assert s.read_until(lambda st: st.body.startswith(frame(1)), scaled(3))
        (rec,) = upstream.requests(flow)
        s.close()
        assert upstream.wait_closed(rec.conn, 2.5) is None, "closed although the client abort was ignored"
    finally:
        server.stop()


# (row id, web server, change that removes the stream's compression guard)
COMPRESSION_GUARD = [
    ("apache-no-gzip", "apache", ("SetEnv no-gzip 1", "SetEnv openova-unused 1")),
    ("nginx-gzip-off", "nginx", ("    gzip off;", "    gzip on;")),
]


@pytest.mark.parametrize("web,mutation", [r[1:] for r in COMPRESSION_GUARD], ids=[r[0] for r in COMPRESSION_GUARD])
def test_without_the_guard_stream_is_compressed(upstream, fid, tmp_path, web, mutation):
    """The test servers compress text/event-stream server-wide on purpose;
    without the snippet's guard a browser asking for gzip gets a gzip-coded
    stream (against the app's Cache-Control: no-transform)."""
    server = start(web, upstream, tmp_path, [mutation])
    try:
        flow = fid()
        upstream.set(flow, stream_reply([(0, frame(1))], end="clean"))
        s = client.Stream(server.port, f"{BASE}/{flow}/stream",
                          server.auth_headers() + [("Accept-Encoding", "gzip")])
        try:
            assert s.wait_eof(scaled(3))
            assert s.header("Content-Encoding") == "gzip", s.headers
        finally:
            s.close()
    finally:
        server.stop()
