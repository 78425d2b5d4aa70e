"""test_logs.py: every line the apps write parses, in logfmt and in JSON
(issue 14). First each format on its own app behind lighttpd, at debug,
with traffic of every kind (snapshots, events, a stream opened and left,
refusals, an unreachable upstream, the operations endpoints) and the
fields each request line must carry; then, after every other test of the
session (marker `last`), every line that any app of the session wrote:
the suite runs configurations in both formats (conftest.CONFIGS)."""
import os

import pytest

from harness import applog, client, servers
from harness.checks import wait_for
from harness.timing import scaled
from harness.upstream import json_reply, stream_reply

BASE = "/api/v1/flows"
FRAME = b"data: {\"n\":1}\n\n"
REQUEST_FIELDS = ("time", "level", "rid", "msg", "client", "method", "route", "status", "bytes", "duration_ms")


def drive(server, upstream, flow):
    """One request of each kind; returns the request ids it sent."""
    upstream.set(flow, json_reply(200, b"{}"))
    upstream.set(f"{flow}-s", stream_reply([(0, FRAME)], end="hold"))
    h = [("X-Request-ID", "log-snapshot")]
    assert client.request(server.port, "GET", f"{BASE}/{flow}/snapshot", h).status == 200
    resp = client.request(server.port, "POST", f"{BASE}/{flow}/events",
                          [("X-Request-ID", "log-events"), ("Content-Type", "application/json")], b"{}")
    assert resp.status == 200, resp
    s = client.Stream(server.port, f"{BASE}/{flow}-s/stream", [("X-Request-ID", "log-stream")])
    assert s.read_until(lambda st: st.body == FRAME, scaled(5)), s.body
    s.close()
    for rid, method, path in (("log-bad-id", "GET", f"{BASE}/bad%20id/snapshot"),
                              ("log-405", "DELETE", f"{BASE}/{flow}/snapshot"),
                              ("log-quote", "GET", f'{BASE}/{flow}/x%22y%20z')):
        assert client.request(server.port, method, path, [("X-Request-ID", rid)]).status in (400, 404, 405)
    for path in ("/openova-flow/healthz", "/openova-flow/readyz", "/openova-flow/metrics", "/openova-flow/status"):
        assert client.request(server.port, "GET", path).status == 200, path


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_request_lines_in_each_format(fmt, upstream, refusing_port, fid, tmp_path):
    env = {"OPENOVA_FLOW_SERVER_URL": upstream.url, "OPENOVA_FLOW_AUTH": "none", "OPENOVA_FLOW_KEEPALIVE": "1s",
           "OPENOVA_FLOW_LOG_FORMAT": fmt, "OPENOVA_FLOW_LOG_LEVEL": "debug"}
    server = servers.WEB_SERVERS["lighttpd"](env, tmp_path / "lighttpd", conf="noauth")
    server.start()
    down = servers.WEB_SERVERS["lighttpd"](dict(env, OPENOVA_FLOW_SERVER_URL=refusing_port.url), tmp_path / "down",
                                           conf="noauth")
    down.start()
    try:
        flow = fid()
        drive(server, upstream, flow)
        assert client.request(down.port, "GET", f"{BASE}/{flow}/snapshot", [("X-Request-ID", "log-down")]).status == 502
        ended = wait_for(lambda: applog.with_rid(server.app_log(), "log-stream")[1:], scaled(5), 0.2)
        assert ended, server.app_log()[-2000:]
        text = server.app_log() + down.app_log()
        lines = [line for line in text.splitlines() if applog.is_app_line(line)]
        assert all(line.startswith("{") == (fmt == "json") for line in lines), lines
        records = applog.records(text)
        by_rid = {}
        for r in records:
            by_rid.setdefault(r.get("rid"), []).append(r)
        for rid in ("log-snapshot", "log-events", "log-bad-id", "log-405", "log-down"):
            (line,) = [r for r in by_rid[rid] if r["msg"] == "request"]
            missing = [k for k in REQUEST_FIELDS if k not in line]
            assert not missing, (rid, missing, line)
        opened, end = by_rid["log-stream"]
        assert (opened["msg"], end["msg"], end["end"]) == ("stream open", "stream end", "client-gone"), by_rid
        assert "upstream_ms" in by_rid["log-snapshot"][0] and "upstream_ms" not in by_rid["log-bad-id"][0]
        assert by_rid["log-down"][-1]["error"] == "upstream_unavailable"
        assert any(r["msg"].startswith("upstream snapshot failed: upstream unreachable") for r in records), records
        debug = [r for r in records if r["level"] == "debug"]
        assert {r["route"] for r in debug} >= {"health", "ready", "metrics", "status"}, debug
    finally:
        server.stop()
        down.stop()


def log_files(root):
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(".log"):
                yield os.path.join(folder, name)


@pytest.mark.last
def test_every_line_of_the_session_parses(tmp_path_factory):
    formats, bad = {"logfmt": 0, "json": 0}, []
    for path in log_files(tmp_path_factory.getbasetemp()):
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        for n, line in enumerate(text.splitlines(), 1):
            if applog.is_app_line(line):
                try:
                    applog.records(line)
                except ValueError as e:
                    bad.append(f"{path}:{n}: {e}")
                formats["json" if line.startswith("{") else "logfmt"] += 1
            elif " rid=" in line or '"rid":' in line:
                bad.append(f"{path}:{n}: an app line that does not start with its time: {line!r}")
    assert not bad, "\n".join(bad[:50])
    assert formats["logfmt"] > 0 and formats["json"] > 0, formats
    print(f"parsed {formats['logfmt']} logfmt and {formats['json']} JSON lines")
