"""Contract tests of openova-flow-devserver over HTTP: the flow server API of
docs/openova-flow-api.md (ingest, snapshot, SSE stream with resumption and
heartbeats, purge, health), its error answers, and its behaviour under a
subscriber that never reads."""
import json
import re
import signal
import subprocess
import threading
import time

import pytest

from conftest import BINARY, HEARTBEAT_S, RING


def node(id_, flow="f", status="running", **extra):
    return {"id": id_, "flowId": flow, "label": id_.upper(), "status": status, **extra}


def rel(a, b, type_="finish-to-start", **extra):
    return {"fromId": a, "toId": b, "type": type_, **extra}


FLOW = {"id": "f", "status": "running", "startedAt": 1715400000000}
EMPTY = {"type": "snapshot", "flow": None, "nodes": [], "relationships": []}


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


# -- health -------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health(server, path):
    status, headers, body = server.request("GET", path)
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"status": "ok"}


# -- ingest and snapshot --------------------------------------------------------

# Each step: the message posted, then the whole snapshot expected.
FOLD_STEPS = [
    ("snapshot",
     {"type": "snapshot", "flow": FLOW, "nodes": [node("a"), node("b")], "relationships": [rel("a", "b")]},
     {"flow": FLOW, "nodes": [node("a"), node("b")], "relationships": [rel("a", "b")]}),
    ("upsert-flow",
     {"type": "upsert-flow", "flow": {**FLOW, "status": "failed", "endedAt": 1715400009000}},
     {"flow": {**FLOW, "status": "failed", "endedAt": 1715400009000}, "nodes": [node("a"), node("b")],
      "relationships": [rel("a", "b")]}),
    ("upsert-nodes: update in place, insert at the end",
     {"type": "upsert-nodes", "nodes": [node("a", status="done", region="fsn1"), node("c")]},
     {"flow": {**FLOW, "status": "failed", "endedAt": 1715400009000},
      "nodes": [node("a", status="done", region="fsn1"), node("b"), node("c")],
      "relationships": [rel("a", "b")]}),
    ("upsert-rels: same key updated, new key appended",
     {"type": "upsert-rels", "relationships": [rel("a", "b", condition="on-success"), rel("b", "c", "triggers")]},
     {"flow": {**FLOW, "status": "failed", "endedAt": 1715400009000},
      "nodes": [node("a", status="done", region="fsn1"), node("b"), node("c")],
      "relationships": [rel("a", "b", condition="on-success"), rel("b", "c", "triggers")]}),
    ("delete-rels",
     {"type": "delete-rels", "pairs": [rel("a", "b")]},
     {"flow": {**FLOW, "status": "failed", "endedAt": 1715400009000},
      "nodes": [node("a", status="done", region="fsn1"), node("b"), node("c")],
      "relationships": [rel("b", "c", "triggers")]}),
    ("delete-nodes: relationships from or to them pruned",
     {"type": "delete-nodes", "ids": ["c"]},
     {"flow": {**FLOW, "status": "failed", "endedAt": 1715400009000},
      "nodes": [node("a", status="done", region="fsn1"), node("b")], "relationships": []}),
    ("snapshot replaces everything",
     {"type": "snapshot", "flow": {**FLOW, "id": "f2"}},
     {"flow": {**FLOW, "id": "f2"}, "nodes": [], "relationships": []}),
]


def test_every_message_type_is_reflected_in_the_snapshot(server, flow_id):
    for seq, (name, message, state) in enumerate(FOLD_STEPS, start=1):
        status, headers, body = server.post(flow_id, message)
        assert status == 200, f"{name}: {body!r}"
        assert headers["content-type"] == "application/json", name
        assert json.loads(body) == {"seq": seq}, name
        status, headers, body = server.snapshot(flow_id)
        assert status == 200, name
        assert headers["content-type"] == "application/json", name
        assert json.loads(body) == {"type": "snapshot", **state}, name


def test_snapshot_is_404_before_the_first_message(server, flow_id):
    status, headers, body = server.snapshot(flow_id)
    assert status == 404
    assert headers["content-type"] == "application/json"
    err = json.loads(body)
    assert err["error"] == "not_found" and flow_id in err["message"]


def test_flows_are_independent(server, flow_id):
    assert server.post_ok(flow_id + "-a", {"type": "upsert-nodes", "nodes": [node("x")]}) == 1
    assert server.post_ok(flow_id + "-b", {"type": "upsert-nodes", "nodes": [node("y")]}) == 1
    assert server.post_ok(flow_id + "-a", {"type": "upsert-nodes", "nodes": [node("z")]}) == 2
    _, _, body = server.snapshot(flow_id + "-b")
    assert [n["id"] for n in json.loads(body)["nodes"]] == ["y"]


def test_concurrent_posts_get_distinct_consecutive_seqs(server, flow_id):
    seqs, lock = [], threading.Lock()

    def post_many():
        conn = server.connection()
        mine = [server.post_ok(flow_id, {"type": "upsert-nodes", "nodes": [node("a")]}, conn=conn)
                for _ in range(50)]
        conn.close()
        with lock:
            seqs.extend(mine)

    threads = [threading.Thread(target=post_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seqs) == list(range(1, 201))


# (name, body, error code, text the message must contain)
INVALID = [
    ("empty body", b"", "invalid_json", "unexpected end of input"),
    ("not JSON", b"hello", "invalid_json", "not valid JSON"),
    ("truncated", b'{"type":"upsert-nodes","nodes":[', "invalid_json", "unexpected end of input"),
    ("trailing comma", b'{"type":"delete-nodes","ids":["a",]}', "invalid_json", "not valid JSON"),
    ("NaN", b'{"type":"upsert-flow","flow":{"id":"f","status":"s","startedAt":NaN}}', "invalid_json",
     "not valid JSON"),
    ("two values", b'{"type":"delete-nodes","ids":["a"]} {}', "invalid_json", "unexpected data after the value"),
    ("bad UTF-8", b'{"type":"delete-nodes","ids":["\xff"]}', "invalid_json", "invalid UTF-8"),
    ("array", b"[]", "invalid_message", "a message must be a JSON object"),
    ("no type", b"{}", "invalid_message", "type is required"),
    ("unknown type", b'{"type":"upsert-edges"}', "invalid_message", 'type "upsert-edges" is not one of'),
    ("snapshot without flow", b'{"type":"snapshot","nodes":[]}', "invalid_message", "flow is required"),
    ("upsert-flow without flow", b'{"type":"upsert-flow"}', "invalid_message", "flow is required"),
    ("flow without id", b'{"type":"upsert-flow","flow":{"status":"s","startedAt":1}}', "invalid_message",
     "flow.id is required"),
    ("flow without status", b'{"type":"upsert-flow","flow":{"id":"f","startedAt":1}}', "invalid_message",
     "flow.status is required"),
    ("flow without startedAt", b'{"type":"snapshot","flow":{"id":"f","status":"s"}}', "invalid_message",
     "flow.startedAt is required"),
    ("flow startedAt a string", b'{"type":"snapshot","flow":{"id":"f","status":"s","startedAt":"now"}}',
     "invalid_message", "flow.startedAt must be a number"),
    ("upsert-nodes without nodes", b'{"type":"upsert-nodes"}', "invalid_message", "nodes is required"),
    ("upsert-nodes empty", b'{"type":"upsert-nodes","nodes":[]}', "invalid_message", "nodes must not be empty"),
    ("third node without status",
     json.dumps({"type": "upsert-nodes", "nodes": [node("a"), node("b"),
                                                   {"id": "c", "flowId": "f", "label": "C"}]}).encode(),
     "invalid_message", "nodes[2].status is required"),
    ("node without flowId", b'{"type":"upsert-nodes","nodes":[{"id":"a","label":"A","status":"s"}]}',
     "invalid_message", "nodes[0].flowId is required"),
    ("node without label", b'{"type":"upsert-nodes","nodes":[{"id":"a","flowId":"f","status":"s"}]}',
     "invalid_message", "nodes[0].label is required"),
    ("upsert-rels empty", b'{"type":"upsert-rels","relationships":[]}', "invalid_message",
     "relationships must not be empty"),
    ("relationship without toId", b'{"type":"upsert-rels","relationships":[{"fromId":"a","type":"contains"}]}',
     "invalid_message", "relationships[0].toId is required"),
    ("relationship type unknown",
     b'{"type":"upsert-rels","relationships":[{"fromId":"a","toId":"b","type":"blocks"}]}',
     "invalid_message", 'relationships[0].type "blocks" is not one of'),
    ("relationship condition unknown",
     b'{"type":"upsert-rels","relationships":[{"fromId":"a","toId":"b","type":"contains","condition":"maybe"}]}',
     "invalid_message", 'relationships[0].condition "maybe" is not one of on-success, on-failure, always'),
    ("delete-nodes without ids", b'{"type":"delete-nodes"}', "invalid_message", "ids is required"),
    ("delete-nodes empty", b'{"type":"delete-nodes","ids":[]}', "invalid_message", "ids must not be empty"),
    ("delete-nodes id a number", b'{"type":"delete-nodes","ids":[1]}', "invalid_message",
     "ids[0] must be a string"),
    ("delete-rels without pairs", b'{"type":"delete-rels"}', "invalid_message", "pairs is required"),
    ("delete-rels empty", b'{"type":"delete-rels","pairs":[]}', "invalid_message", "pairs must not be empty"),
    ("pair without type", b'{"type":"delete-rels","pairs":[{"fromId":"a","toId":"b"}]}', "invalid_message",
     "pairs[0].type is required"),
]


@pytest.mark.parametrize("name,body,code,text", INVALID, ids=[row[0] for row in INVALID])
def test_invalid_messages_are_refused_with_400(server, flow_id, name, body, code, text):
    status, headers, resp = server.post(flow_id, body)
    assert status == 400, resp
    assert headers["content-type"] == "application/json"
    err = json.loads(resp)
    assert err["error"] == code
    assert text in err["message"], err["message"]
    # nothing was sequenced or created
    assert server.snapshot(flow_id)[0] == 404
    assert server.post_ok(flow_id, {"type": "delete-nodes", "ids": ["x"]}) == 1


def test_body_limit(server, flow_id):
    limit = 8 * 1024 * 1024
    # exactly at the limit: accepted
    prefix, suffix = b'{"type":"delete-nodes","ids":["', b'"]}'
    body = prefix + b"a" * (limit - len(prefix) - len(suffix)) + suffix
    assert len(body) == limit
    status, _, resp = server.post(flow_id, body)
    assert status == 200, resp[:200]
    # one byte more: 413
    status, headers, resp = server.post(flow_id, body + b" ")
    assert status == 413
    assert json.loads(resp)["error"] == "body_too_large"
    assert server.post_ok(flow_id, {"type": "delete-nodes", "ids": ["x"]}) == 2


# -- routing --------------------------------------------------------------------

# (method, path, status, Allow, error code)
ROUTES = [
    ("GET", "/", 404, None, "not_found"),
    ("GET", "/v1/flows", 404, None, "not_found"),
    ("GET", "/v1/flows/x/status", 404, None, "not_found"),
    ("GET", "/v1/flows/x/snapshot/", 404, None, "not_found"),
    ("GET", "/v2/flows/x/snapshot", 404, None, "not_found"),
    ("GET", "/v1/flows/x/events", 405, "POST", "method_not_allowed"),
    ("PUT", "/v1/flows/x/events", 405, "POST", "method_not_allowed"),
    ("POST", "/v1/flows/x/snapshot", 405, "GET", "method_not_allowed"),
    ("DELETE", "/v1/flows/x/stream", 405, "GET", "method_not_allowed"),
    ("GET", "/v1/flows/x", 405, "DELETE", "method_not_allowed"),
    ("POST", "/healthz", 405, "GET", "method_not_allowed"),
    ("GET", "/v1/flows//snapshot", 400, None, "invalid_flow_id"),
    ("GET", "/v1/flows/a:b/snapshot", 400, None, "invalid_flow_id"),
    ("GET", "/v1/flows/a%20b/snapshot", 400, None, "invalid_flow_id"),
    ("GET", "/v1/flows/a/b/snapshot", 400, None, "invalid_flow_id"),
    ("GET", "/v1/flows/" + "a" * 129 + "/snapshot", 400, None, "invalid_flow_id"),
    ("GET", "/v1/flows/" + "a" * 128 + "/snapshot", 404, None, "not_found"),
    ("GET", "/v1/flows/Az09._~-/snapshot", 404, None, "not_found"),
]


@pytest.mark.parametrize("method,path,status,allow,code", ROUTES, ids=[f"{r[0]} {r[1][:40]}" for r in ROUTES])
def test_routing(server, method, path, status, allow, code):
    got, headers, body = server.request(method, path)
    assert got == status, body
    assert headers.get("allow") == allow
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"] == code


def test_query_string_is_ignored(server):
    assert server.request("GET", "/healthz?probe=1")[0] == 200


# -- stream -----------------------------------------------------------------------

def test_stream_headers_and_snapshot_frame(server, flow_id):
    server.post_ok(flow_id, {"type": "snapshot", "flow": FLOW, "nodes": [node("a")]})
    server.post_ok(flow_id, {"type": "upsert-nodes", "nodes": [node("b")]})
    _, _, snapshot = server.snapshot(flow_id)
    with server.stream(flow_id) as s:
        assert s.status == 200
        assert s.headers["content-type"] == "text/event-stream"
        assert s.headers["cache-control"] == "no-cache, no-transform"
        assert s.headers["x-accel-buffering"] == "no"
        assert s.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in s.headers
        first = s.next_frame()
        assert first.raw == b"event: snapshot\nid: 2\ndata: " + snapshot + b"\n\n"


def test_stream_before_the_first_message(server, flow_id):
    with server.stream(flow_id) as s:
        assert s.status == 200
        first = s.next_frame()
        assert first.raw == b"event: snapshot\nid: 0\ndata: " + compact(EMPTY).encode() + b"\n\n"
        # the snapshot route still says the flow does not exist
        assert server.snapshot(flow_id)[0] == 404
        message = {"type": "upsert-nodes", "nodes": [node("a", meta={"k": [1, 2]})]}
        server.post_ok(flow_id, message)
        live = s.next_non_heartbeat()
        assert live.raw == b"event: upsert-nodes\nid: 1\ndata: " + compact(message).encode() + b"\n\n"
    assert server.snapshot(flow_id)[0] == 200


def test_every_message_type_is_streamed_as_accepted(server, flow_id):
    with server.stream(flow_id) as s:
        assert s.next_frame().tag == "snapshot:0"
        for seq, (name, message, _) in enumerate(FOLD_STEPS, start=1):
            server.post_ok(flow_id, message)
            f = s.next_non_heartbeat()
            assert f.tag == f"{message['type']}:{seq}", name
            assert f.json() == message, name
            assert "\n" not in f.data and "\r" not in f.data


def test_pretty_printed_messages_go_out_on_one_line(server, flow_id):
    message = {"type": "upsert-nodes", "nodes": [node("a", meta={"note": "two\nlines", "path": "a/b"})]}
    with server.stream(flow_id) as s:
        s.next_frame()
        server.post_ok(flow_id, json.dumps(message, indent=2).encode())
        f = s.next_non_heartbeat()
        assert f.data == compact(message)


def test_live_delivery_within_one_second(server, flow_id):
    server.post_ok(flow_id, {"type": "snapshot", "flow": FLOW})
    with server.stream(flow_id) as s:
        assert s.next_frame().tag == "snapshot:1"
        conn = server.connection()
        for seq in range(2, 12):
            sent = time.monotonic()
            server.post_ok(flow_id, {"type": "upsert-nodes", "nodes": [node(f"n{seq}")]}, conn=conn)
            f = s.next_non_heartbeat(timeout=1.0)
            assert time.monotonic() - sent < 1.0
            assert f.tag == f"upsert-nodes:{seq}"
        conn.close()


def test_two_subscribers_both_get_every_message(server, flow_id):
    with server.stream(flow_id) as a, server.stream(flow_id) as b:
        assert a.next_frame().tag == b.next_frame().tag == "snapshot:0"
        for seq in range(1, 6):
            server.post_ok(flow_id, {"type": "upsert-nodes", "nodes": [node("a")]})
        for s in (a, b):
            assert [s.next_non_heartbeat().tag for _ in range(5)] == [f"upsert-nodes:{i}" for i in range(1, 6)]


def post_n(server, flow, n):
    conn = server.connection()
    for _ in range(n):
        server.post_ok(flow, {"type": "upsert-nodes", "nodes": [node("a")]}, conn=conn)
    conn.close()


def test_resume_replays_what_followed(server, flow_id):
    post_n(server, flow_id, 5)
    with server.stream(flow_id, last_event_id=2) as s:
        assert s.status == 200
        assert [s.next_non_heartbeat().tag for _ in range(3)] == ["upsert-nodes:3", "upsert-nodes:4", "upsert-nodes:5"]
        server.post_ok(flow_id, {"type": "delete-nodes", "ids": ["a"]})
        assert s.next_non_heartbeat().tag == "delete-nodes:6"


def test_resume_at_the_current_id_goes_live(server, flow_id):
    post_n(server, flow_id, 3)
    with server.stream(flow_id, last_event_id=3) as s:
        assert s.status == 200
        first = s.next_frame(timeout=HEARTBEAT_S * 10)
        assert first.event == "heartbeat"  # no snapshot, nothing to replay
        server.post_ok(flow_id, {"type": "delete-nodes", "ids": ["a"]})
        assert s.next_non_heartbeat().tag == "delete-nodes:4"


# With RING messages held after 20: 5..20 are held.
RESUME = [
    ("oldest still followed by all held", 4, "upsert-nodes:5"),
    ("one too old", 3, "snapshot:20"),
    ("zero", 0, "snapshot:20"),
    ("from the future", 21, "snapshot:20"),
    ("not a number", "abc", "snapshot:20"),
    ("negative", -1, "snapshot:20"),
]


@pytest.mark.parametrize("name,last,first", RESUME, ids=[r[0] for r in RESUME])
def test_resume_older_than_the_ring_gets_a_snapshot(server, flow_id, name, last, first):
    assert RING == 16
    post_n(server, flow_id, 20)
    _, _, snapshot = server.snapshot(flow_id)
    with server.stream(flow_id, last_event_id=last) as s:
        f = s.next_frame()
        assert f.tag == first
        if f.event == "snapshot":
            assert f.data.encode() == snapshot
        else:
            rest = [s.next_non_heartbeat().tag for _ in range(15)]
            assert rest == [f"upsert-nodes:{i}" for i in range(6, 21)]


def test_heartbeat(server, flow_id):
    with server.stream(flow_id) as s:
        opened = time.monotonic()
        assert s.next_frame().event == "snapshot"
        for _ in range(2):
            f = s.next_frame(timeout=HEARTBEAT_S * 10)
            assert f.raw == b"event: heartbeat\ndata: {}\n\n"
        elapsed = time.monotonic() - opened
        assert elapsed >= 2 * HEARTBEAT_S * 0.9


def test_heartbeat_waits_for_silence(server, flow_id):
    with server.stream(flow_id) as s:
        s.next_frame()
        # messages more often than the heartbeat: no heartbeat in between
        for _ in range(6):
            time.sleep(HEARTBEAT_S / 3)
            server.post_ok(flow_id, {"type": "delete-nodes", "ids": ["a"]})
            assert s.next_frame().event == "delete-nodes"


# -- purge ------------------------------------------------------------------------

def test_purge(server, flow_id):
    server.post_ok(flow_id, {"type": "snapshot", "flow": FLOW})
    with server.stream(flow_id) as s:
        assert s.next_frame().tag == "snapshot:1"
        status, headers, body = server.request("DELETE", f"/v1/flows/{flow_id}")
        assert status == 204 and body == b""
        purged = time.monotonic()
        while True:  # heartbeats may come first; then the end
            f = s.next_frame(timeout=2)
            if f is None:
                break
            assert f.event == "heartbeat"
        assert time.monotonic() - purged < 1.0
    assert server.snapshot(flow_id)[0] == 404
    assert server.request("DELETE", f"/v1/flows/{flow_id}")[0] == 204  # idempotent
    assert server.request("DELETE", f"/v1/flows/{flow_id}-never")[0] == 204
    # a new flow under the same id starts over
    assert server.post_ok(flow_id, {"type": "delete-nodes", "ids": ["a"]}) == 1


def test_purge_ends_a_stream_waiting_for_the_first_message(server, flow_id):
    with server.stream(flow_id) as s:
        assert s.next_frame().tag == "snapshot:0"
        assert server.request("DELETE", f"/v1/flows/{flow_id}")[0] == 204
        while (f := s.next_frame(timeout=2)) is not None:
            assert f.event == "heartbeat"


# -- a subscriber that never reads ---------------------------------------------------

def test_slow_subscriber_does_not_slow_ingest(server, flow_id):
    # ~8 KiB messages: 2000 of them (16 MiB) overflow any socket buffers, so
    # the silent subscriber really falls behind the ring
    pad = "x" * 8192
    slow = server.stream(flow_id, rcvbuf=4096)
    assert slow.status == 200
    conn = server.connection()
    worst = 0.0
    started = time.monotonic()
    for i in range(1, 2001):
        t0 = time.monotonic()
        seq = server.post_ok(flow_id, {"type": "upsert-nodes", "nodes": [node(f"n{i % 50}", meta={"pad": pad})]},
                             conn=conn)
        worst = max(worst, time.monotonic() - t0)
        assert seq == i
    total = time.monotonic() - started
    conn.close()
    assert worst < 1.0, f"slowest POST took {worst:.3f}s"
    assert total < 60, f"2000 POSTs took {total:.1f}s"

    # other subscribers are served at once
    with server.stream(flow_id) as fast:
        assert fast.next_frame().tag == "snapshot:2000"
        sent = time.monotonic()
        server.post_ok(flow_id, {"type": "delete-nodes", "ids": ["n1"]})
        assert fast.next_non_heartbeat(timeout=1.0).tag == "delete-nodes:2001"
        assert time.monotonic() - sent < 1.0

    # the silent one got a gap-free prefix, then its stream was ended
    ids = []
    while True:
        f = slow.next_frame(timeout=10)
        if f is None:
            break
        if f.event != "heartbeat":
            ids.append(int(f.id))
    slow.close()
    assert ids[0] == 0 and ids == list(range(ids[0], ids[0] + len(ids)))
    assert ids[-1] < 2000 - RING


# -- process ----------------------------------------------------------------------

def test_sigterm_ends_streams_and_exits_0(start_server, flow_id):
    s = start_server({"FLOW_SERVER_HEARTBEAT": "1h"})
    s.post_ok(flow_id, {"type": "delete-nodes", "ids": ["a"]})
    with s.stream(flow_id) as a, s.stream(flow_id + "-empty") as b:
        assert a.next_frame().tag == "snapshot:1"
        assert b.next_frame().tag == "snapshot:0"
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        assert a.next_frame(timeout=5) is None
        assert b.next_frame(timeout=5) is None
        assert s.proc.wait(timeout=10) == 0
        assert time.monotonic() - t0 < 5
    assert "stopping" in s.log()


def test_sigint_exits_0(start_server):
    s = start_server()
    assert s.stop(signal.SIGINT) == 0


def test_one_log_line_per_request(start_server, flow_id):
    s = start_server()
    s.request("GET", "/healthz")
    s.post(flow_id, {"type": "delete-nodes", "ids": ["a"]})
    s.request("GET", "/nope")
    assert s.stop() == 0
    lines = [line for line in s.log().splitlines() if '"' in line]
    assert len(lines) == 3, lines
    # A line is written when its request completes, which under a slow
    # build (ASan) can come after the next request's: one line each, in any order.
    for pattern in (r' 127\.0\.0\.1 "GET /healthz" 200 \d+ms$', rf' "POST /v1/flows/{flow_id}/events" 200 \d+ms$',
                    r' "GET /nope" 404 \d+ms$'):
        assert sum(bool(re.search(pattern, line)) for line in lines) == 1, (pattern, lines)


def run(args=(), env=None):
    full_env = {"PATH": "/usr/bin:/bin", **(env or {})}
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, env=full_env, timeout=20)


def test_help():
    r = run(["--help"])
    assert r.returncode == 0
    assert "development and test server" in r.stdout
    assert "memory" in r.stdout
    for name in ("FLOW_SERVER_LISTEN_ADDR", "FLOW_SERVER_RING_CAPACITY", "FLOW_SERVER_HEARTBEAT"):
        assert name in r.stdout
    assert "never ingested" in r.stdout  # the stream-before-ingest choice


def test_version():
    r = run(["--version"])
    assert r.returncode == 0
    assert re.fullmatch(r"openova-flow-devserver \S+\n", r.stdout)


def test_unknown_argument():
    r = run(["--port=1"])
    assert r.returncode == 2
    assert "--port=1" in r.stderr


BAD_ENV = [
    ("FLOW_SERVER_LISTEN_ADDR", "8081"),
    ("FLOW_SERVER_LISTEN_ADDR", "127.0.0.1:99999"),
    ("FLOW_SERVER_LISTEN_ADDR", "127.0.0.1:http"),
    ("FLOW_SERVER_RING_CAPACITY", "0"),
    ("FLOW_SERVER_RING_CAPACITY", "-1"),
    ("FLOW_SERVER_RING_CAPACITY", "lots"),
    ("FLOW_SERVER_RING_CAPACITY", "2000000"),
    ("FLOW_SERVER_HEARTBEAT", "15"),
    ("FLOW_SERVER_HEARTBEAT", "0s"),
    ("FLOW_SERVER_HEARTBEAT", "-1s"),
    ("FLOW_SERVER_HEARTBEAT", "soon"),
]


@pytest.mark.parametrize("name,value", BAD_ENV, ids=[f"{n}={v}" for n, v in BAD_ENV])
def test_bad_environment_exits_2_naming_the_variable(name, value):
    r = run(env={name: value})
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"openova-flow-devserver: {name}: ")


def test_port_in_use_names_the_variable(server):
    r = run(env={"FLOW_SERVER_LISTEN_ADDR": f"127.0.0.1:{server.port}"})
    assert r.returncode != 0
    assert "FLOW_SERVER_LISTEN_ADDR" in r.stderr.splitlines()[-1]
