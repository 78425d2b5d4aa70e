"""Request ids: a client's acceptable X-Request-ID is kept, otherwise the
proxy makes one; either way it goes upstream, back in the response header,
into error bodies, and into the app's log line for the request.

The app logs to stderr (for Apache and nginx, the launcher's log; see
harness/launchers.py). lighttpd spawns it with lighttpd's own stderr
(bin-path processes start before server.errorlog is opened and are not
redirected to it), so under `lighttpd -D` the lines land in lighttpd's
stderr: the harness keeps that in <rundir>/stderr.log."""
import itertools
import re
import string

import pytest

from harness import applog, client, servers
from harness.checks import assert_proxy_error, wait_for
from harness.upstream import json_reply
from harness.timing import scaled

BASE = "/api/v1/flows"
PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7f))

# (row id, X-Request-ID sent or None, kept?). "{n}" becomes a number unique
# to the request so that each id's log lines are its own.
REQUEST_IDS = [
    ("absent", None, False),
    ("simple", "req-{n}", True),
    ("uuid", "3f2b8c1e-9d4a-4e7b-8a1c-{n:012d}", True),
    ("punctuation", "a.b_c~d:e/f=g+h-{n}", True),
    ("128-chars", "{n:06d}" + "r" * 121 + "Z", True),
    ("129-chars", "{n:06d}" + "r" * 123, False),
    ("200-chars", "{n:06d}" + "x" * 194, False),
]
_counter = itertools.count(1)


def _rid(template):
    return template.format(n=next(_counter)) if template else None


def _log_line(server, rid):
    """The app's log records of request rid (harness/applog.py parses and checks each line)."""
    return wait_for(lambda: applog.with_rid(server.app_log(), rid), scaled(3))


@pytest.mark.parametrize("sent,kept", [r[1:] for r in REQUEST_IDS], ids=[r[0] for r in REQUEST_IDS])
def test_request_id_on_success(main, upstream, fid, sent, kept):
    sent = _rid(sent)
    flow = fid()
    upstream.set(flow, json_reply(200, b"{}"))
    headers = main.auth_headers() + ([("X-Request-ID", sent)] if sent else [])
    resp = client.request(main.port, "GET", f"{BASE}/{flow}/snapshot", headers)
    assert resp.status == 200, resp
    rid = resp.header("X-Request-ID")
    assert rid, resp.headers
    if kept:
        assert rid == sent
    else:
        assert rid != sent
        assert 1 <= len(rid) <= 128 and all(c in PRINTABLE for c in rid), rid
    (rec,) = upstream.requests(flow)
    assert rec.header("X-Request-ID") == rid

    lines = _log_line(main, rid)
    assert len(lines) == 1, f"one log line with rid={rid} expected: {lines}\n{main.app_log()[-3000:]}"
    assert lines[0]["route"] == "snapshot" and lines[0]["status"] == "200", lines[0]
    assert lines[0]["id"] == flow, lines[0]


def test_generated_ids_differ(main, upstream, fid):
    flow = fid()
    upstream.set(flow, json_reply(200, b"{}"))
    rids = {client.request(main.port, "GET", f"{BASE}/{flow}/snapshot", main.auth_headers()).header("X-Request-ID")
            for _ in range(5)}
    assert len(rids) == 5, rids


@pytest.mark.parametrize("sent,kept", [r[1:] for r in REQUEST_IDS], ids=[r[0] for r in REQUEST_IDS])
def test_request_id_in_error_body_and_log(main, upstream, sent, kept):
    sent = _rid(sent)
    headers = main.auth_headers() + ([("X-Request-ID", sent)] if sent else [])
    resp = client.request(main.port, "GET", f"{BASE}/dep%201/snapshot", headers)
    err = assert_proxy_error(resp, 400, request_id=sent if kept else None)
    if not kept:
        assert err["requestId"] != sent
    assert upstream.requests() == []
    lines = _log_line(main, err["requestId"])
    assert len(lines) == 1, lines
    assert lines[0]["status"] == "400", lines[0]


def test_request_id_on_stream(main, upstream, fid):
    from harness.upstream import stream_reply
    flow = fid()
    upstream.set(flow, stream_reply([(0, b"data: 1\n\n")], end="clean"))
    s = client.Stream(main.port, f"{BASE}/{flow}/stream", main.auth_headers() + [("X-Request-ID", "stream-rid-9")])
    try:
        assert s.header("X-Request-ID") == "stream-rid-9"
        assert s.wait_eof(scaled(5))
    finally:
        s.close()
    (rec,) = upstream.requests(flow)
    assert rec.header("X-Request-ID") == "stream-rid-9"
    lines = wait_for(lambda: [r for r in _log_line(main, "stream-rid-9") if r["msg"] == "stream end"], scaled(3))
    opened = [r for r in _log_line(main, "stream-rid-9") if r["msg"] == "stream open"]
    # A stream leaves a line when it opens (it may live for hours) and when it ends.
    assert len(opened) == 1 and opened[0]["route"] == "stream" and opened[0]["status"] == "200", opened
    assert len(lines) == 1 and lines[0]["route"] == "stream" and lines[0]["end"] == "upstream-ended", lines


def test_log_line_format(main, upstream, fid):
    flow = fid()
    upstream.set(flow, json_reply(202, b'{"seq":3}'))
    resp = client.request(main.port, "POST", f"{BASE}/{flow}/events",
                          main.auth_headers() + [("X-Request-ID", "fmt-rid-1"), ("Content-Type", "application/json")],
                          b'{"type":"upsert-flow"}')
    assert resp.status == 202
    (line,) = [l for l in main.app_log().splitlines() if " rid=fmt-rid-1 " in l]
    # time, level, rid, msg, then who asked and what came of it (issue 14).
    assert re.fullmatch(r"time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=info rid=fmt-rid-1 msg=request "
                        r"client=127\.0\.0\.1 user=\S+ auth=remote-user method=POST route=events "
                        + re.escape(f"id={flow}") + r" status=202 bytes=\d+ duration_ms=\d+ upstream_ms=\d+", line), line
    assert set(line) <= set(string.printable)
    (rec,) = _log_line(main, "fmt-rid-1")
    assert rec["user"] == servers.USER, rec


# (row id, method, path under the base, status, error code in body and log)
REFUSALS = [
    ("bad-id", "GET", "/bad%20id/snapshot", 400, "invalid_deployment_id"),
    ("empty-id", "GET", "//snapshot", 400, "bad_request"),
    ("bad-method", "DELETE", "/dep-1/snapshot", 405, "method_not_allowed"),
    ("unknown-route", "GET", "/dep-1/nothing", 404, "not_found"),
]


@pytest.mark.parametrize("method,path,status,code", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refusal_is_logged_with_its_reason(main, upstream, method, path, status, code):
    rid = f"refused-{next(_counter)}"
    resp = client.request(main.port, method, BASE + path, main.auth_headers() + [("X-Request-ID", rid)])
    assert resp.status == status, resp
    assert resp.json()["error"] == code
    (rec,) = _log_line(main, rid)
    assert rec["level"] == "warn" and rec["method"] == method and rec["status"] == str(status), rec
    assert rec["error"] == code and "upstream_ms" not in rec, rec
