"""Graceful stop under each web server: SIGTERM to the app while streams
are open ends every stream as a complete response (the terminating chunk,
so a browser's EventSource reconnects at once with Last-Event-ID), closes
their upstream connections, the app exits 0 within 5 s, and the web server
then reaches a fresh app:

- lighttpd spawned the app (bin-path) and spawns it again by itself;
- Apache and nginx do not start the app: its supervisor does (here the
  test, with the same launcher, spawn-fcgi). Until it is back they answer
  on their own (Apache 503, nginx 502), then the next request reaches the
  new app: Apache only because of retry=0 in conf/apache2/.

Each test runs its own web server, since it stops the app."""
import os
import signal
import time

import pytest

from harness import client, servers
from harness.checks import wait_for
from harness.upstream import json_reply, stream_reply
from harness.timing import scaled

BASE = "/api/v1/flows"
FRAME = b'event: upsert-flow\nid: 4\ndata: {"n":1}\n\n'
# What the web server answers while the app is gone (it does not restart it).
WHILE_DOWN = {"apache": 503, "nginx": 502}


@pytest.mark.parametrize("web", list(servers.WEB_SERVERS))
def test_sigterm_ends_streams_and_server_reaches_fresh_app(upstream, fid, tmp_path, web):
    env = {"OPENOVA_FLOW_SERVER_URL": upstream.url, "OPENOVA_FLOW_KEEPALIVE": "1s"}
    server = servers.WEB_SERVERS[web](env, tmp_path / web)
    streams = []
    try:
        server.start()
        (old_pid,) = server.app_pids()
        flows = [fid("a"), fid("b")]
        for flow in flows:
            upstream.set(flow, stream_reply([(0, FRAME)], end="hold"))
            streams.append(client.Stream(server.port, f"{BASE}/{flow}/stream", server.auth_headers()))
        for s in streams:
            assert s.status == 200
            assert s.read_until(lambda st: st.body.startswith(FRAME), scaled(3)), s.body
        recs = [upstream.requests(flow)[0] for flow in flows]

        os.kill(old_pid, signal.SIGTERM)
        sent = time.monotonic()
        for s in streams:
            assert s.wait_eof(scaled(5)), f"client response still open after SIGTERM: {s.body!r}"
            # A complete response (terminating chunk), not a cut connection.
            assert s.complete, s.body
        for rec in recs:
            assert upstream.wait_closed(rec.conn, scaled(2)) is not None
        assert wait_for(lambda: old_pid not in server.app_pids() and not os.path.exists(f"/proc/{old_pid}/exe"),
                        max(0.1, scaled(5) - (time.monotonic() - sent))), f"the app did not exit within {scaled(5)} s"
        if web != "lighttpd":
            assert server.app.proc.wait(timeout=scaled(1)) == 0, server.logs()
            down = client.request(server.port, "GET", f"{BASE}/{fid()}/snapshot", server.auth_headers())
            assert down.status == WHILE_DOWN[web], down
            server.app.start()      # the supervisor's restart

        snap = fid("after")
        upstream.set(snap, json_reply(200, b'{"fresh":true}'))

        def served():
            resp = client.request(server.port, "GET", f"{BASE}/{snap}/snapshot", server.auth_headers())
            return resp.status == 200 and resp.body == b'{"fresh":true}'
        assert wait_for(served, scaled(5), interval=0.1), server.logs()
        (new_pid,) = server.app_pids()
        assert new_pid != old_pid
        assert "stopped" in server.app_log()
    finally:
        for s in streams:
            s.close()
        server.stop()
