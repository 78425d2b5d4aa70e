"""The process: command line, configuration errors, --listen, SIGTERM."""
import json
import os
import signal
import socket
import time

import pytest

from harness import client, servers
from harness.fastcgi import fcgi_request
from harness.upstream import json_reply, stream_reply
from harness.timing import scaled

BASE = "/api/v1/flows"
DEFAULT_URL = "http://openova-flow-server.catalyst-system.svc.cluster.local:8080"


# (row id, OPENOVA_FLOW_SERVER_URL or None, expected upstream_url)
URLS = [
    ("default", None, DEFAULT_URL),
    ("as-given", "http://flow.example:9000", "http://flow.example:9000"),
    ("trailing-slash", "http://flow.example:9000/", "http://flow.example:9000"),
    ("many-slashes", "http://flow.example:9000///", "http://flow.example:9000"),
    ("spaces", "  https://openova-flow.sov.example  ", "https://openova-flow.sov.example"),
    ("spaces-and-slash", " http://10.0.0.7:8080/ ", "http://10.0.0.7:8080"),
]


@pytest.mark.parametrize("url,expected", [r[1:] for r in URLS], ids=[r[0] for r in URLS])
def test_print_config_resolves_upstream_url(url, expected):
    env = {"OPENOVA_FLOW_SERVER_URL": url} if url is not None else {}
    proc = servers.run_cli(["--print-config"], env)
    assert proc.returncode == 0, proc
    config = json.loads(proc.stdout)   # one JSON object, nothing else
    assert isinstance(config, dict)
    assert config["upstream_url"] == expected


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version(flag):
    proc = servers.run_cli([flag])
    assert proc.returncode == 0, proc
    assert proc.stdout.strip(), proc


# (row id, variable, bad value)
BAD_SETTINGS = [
    ("timeout-word", "OPENOVA_FLOW_PROXY_TIMEOUT", "abc"),
    ("timeout-negative", "OPENOVA_FLOW_PROXY_TIMEOUT", "-1s"),
    ("url-ftp", "OPENOVA_FLOW_SERVER_URL", "ftp://x"),
    ("url-no-scheme", "OPENOVA_FLOW_SERVER_URL", "flow.example:8080"),
    ("auth-magic", "OPENOVA_FLOW_AUTH", "magic"),
    ("max-body-negative", "OPENOVA_FLOW_MAX_BODY", "-1"),
    ("max-body-word", "OPENOVA_FLOW_MAX_BODY", "lots"),
    ("keepalive-word", "OPENOVA_FLOW_KEEPALIVE", "often"),
    ("max-streams-word", "OPENOVA_FLOW_MAX_STREAMS", "many"),
]


@pytest.mark.parametrize("name,value", [r[1:] for r in BAD_SETTINGS], ids=[r[0] for r in BAD_SETTINGS])
@pytest.mark.parametrize("mode", ["print-config", "listen"])
def test_bad_setting_exits_2_naming_it(tmp_path, name, value, mode):
    args = ["--print-config"] if mode == "print-config" else ["--listen", f"unix:{tmp_path}/app.sock"]
    proc = servers.run_cli(args, {name: value}, timeout=5)   # scaled by run_cli
    assert proc.returncode == 2, proc
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert name in lines[0], lines
    assert proc.stdout == b""


def _fcgi_snapshot(address, flow):
    return fcgi_request(address, "GET", f"{BASE}/{flow}/snapshot", [("Accept", "application/json")],
                        remote_user="alice")


def test_listen_unix_replaces_stale_socket(upstream, fid, tmp_path):
    path = str(tmp_path / "app.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()   # the file stays behind, nothing listens
    assert os.path.exists(path)
    flow = fid()
    upstream.set(flow, json_reply(200, b'{"via":"unix"}'))
    app = servers.App({"OPENOVA_FLOW_SERVER_URL": upstream.url}, tmp_path, listen=f"unix:{path}").start()
    try:
        resp = _fcgi_snapshot(path, flow)
        assert (resp.status, resp.body) == (200, b'{"via":"unix"}')
    finally:
        app.stop()


def test_listen_tcp(upstream, fid, tmp_path):
    port = servers.free_port()
    flow = fid()
    upstream.set(flow, json_reply(200, b'{"via":"tcp"}'))
    app = servers.App({"OPENOVA_FLOW_SERVER_URL": upstream.url}, tmp_path, listen=f"127.0.0.1:{port}").start()
    try:
        resp = _fcgi_snapshot(("127.0.0.1", port), flow)
        assert (resp.status, resp.body) == (200, b'{"via":"tcp"}')
    finally:
        app.stop()


def test_sigterm_idle_exits_0(upstream, tmp_path):
    app = servers.App({"OPENOVA_FLOW_SERVER_URL": upstream.url}, tmp_path).start()
    try:
        app.proc.send_signal(signal.SIGTERM)
        assert app.proc.wait(timeout=scaled(5)) == 0, app.log()
    finally:
        app.stop()


def test_sigterm_ends_open_streams_behind_lighttpd(upstream, fid, tmp_path):
    """The app runs on its own (--listen on the socket path the shipped
    config names); lighttpd finds it listening there and spawns nothing."""
    env = {"OPENOVA_FLOW_SERVER_URL": upstream.url, "OPENOVA_FLOW_KEEPALIVE": "0"}
    web = servers.Lighttpd(env, tmp_path / "web")
    app = servers.App(env, tmp_path / "app", listen=f"unix:{web.app_socket}").start()
    streams = []
    try:
        web.start()
        assert web.app_pids() == [], "lighttpd spawned its own app"
        flows = [fid("a"), fid("b")]
        for flow in flows:
            upstream.set(flow, stream_reply([(0, b"data: {\"n\":1}\n\n")], end="hold"))
            streams.append(client.Stream(web.port, f"{BASE}/{flow}/stream", web.auth_headers()))
        for s in streams:
            assert s.status == 200
            assert s.read_until(lambda st: st.body == b'data: {"n":1}\n\n', scaled(3)), s.body
        recs = [upstream.requests(flow)[0] for flow in flows]

        app.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        for s in streams:
            assert s.wait_eof(scaled(5)), f"client response still open after SIGTERM: {s.body!r}"
            # The stream ended as a whole response, not a cut connection.
            assert s.complete, s.body
        assert app.proc.wait(timeout=max(0.1, scaled(5) - (time.monotonic() - sent))) == 0, app.log()
        for rec in recs:
            assert upstream.wait_closed(rec.conn, scaled(2)) is not None
    finally:
        for s in streams:
            s.close()
        web.stop()
        app.stop()
