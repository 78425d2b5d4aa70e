"""Contract tests of the devserver's deliberate differences from the reference
flow server (the issue 17 spec, "Deliberate differences"; the README lists
them), all marked difference: the snapshot folds every message, a stream
that stops reading is cut, frames in id order, a clean stop on SIGTERM,
flow ids bounded to 1024 bytes, a stable snapshot order."""
import signal
import threading
import time

import pytest

from conftest import FLOW, RING, assert_text_error, canon, node, rel

pytestmark = pytest.mark.difference


def test_snapshot_keeps_state_past_4096_messages(server, flow_id):
    """1: the reference folds only its last 4096 messages."""
    first = {"type": "snapshot", "flow": FLOW, "nodes": [node("first")], "relationships": [rel("first", "n0")]}
    conn = server.connection()
    assert server.post_ok(flow_id, first, conn=conn) == 1
    for i in range(2, 4101):
        server.post_ok(flow_id, {"type": "upsert-nodes", "nodes": [node(f"n{i % 10}")]}, conn=conn)
    conn.close()
    assert canon(server.snapshot_json(flow_id)) == canon({
        "type": "snapshot", "flow": FLOW, "nodes": [node("first")] + [node(f"n{i}") for i in range(10)],
        "relationships": [rel("first", "n0")]})
    with server.stream(flow_id) as s:
        f = s.next_frame()
        assert f.tag == "snapshot:4100"
        assert node("first") in f.json()["nodes"]


@pytest.mark.devserver  # the session devserver's ring of 16
def test_a_stream_that_stops_reading_is_cut_and_ingest_goes_on(server, flow_id):
    """2: the reference drops frames for it and leaves ids missing."""
    assert RING == 16
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
    ids = [int(f.id) for f in slow.until_end(timeout=20) if f.event != "heartbeat"]
    slow.close()
    assert ids[0] == 0 and ids == list(range(ids[0], ids[0] + len(ids)))
    assert ids[-1] < 2000 - RING
    # coming back, it starts again with a snapshot frame
    with server.stream(flow_id) as again:
        assert again.next_frame().tag == "snapshot:2001"


def test_frames_in_id_order_under_concurrent_posters(server, flow_id):
    """3: the reference can deliver concurrent emitters' frames out of order."""
    def post_many(k):
        conn = server.connection()
        for i in range(50):
            server.post_ok(flow_id, {"type": "upsert-nodes", "nodes": [node(f"p{k}-{i}")]}, conn=conn)
        conn.close()

    with server.stream(flow_id) as s:
        assert s.next_frame().tag == "snapshot:0"
        threads = [threading.Thread(target=post_many, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        try:
            ids = [int(s.next_non_heartbeat(timeout=10).id) for _ in range(200)]
        finally:
            for t in threads:
                t.join()
    assert ids == list(range(1, 201))


@pytest.mark.devserver  # a process of our own to stop
def test_sigterm_ends_streams_at_once_cleanly(start_server, flow_id):
    """4: the reference cuts them after about 5 s, the chunked body unterminated."""
    s = start_server({"FLOW_SERVER_HEARTBEAT": "1h"})
    s.post_ok(flow_id, {"type": "delete-nodes", "ids": ["a"]})
    with s.stream(flow_id) as a, s.stream(flow_id + "-empty") as b:
        assert a.next_frame().tag == "snapshot:1"
        assert b.next_frame().tag == "snapshot:0"
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        for st in (a, b):
            assert st.next_frame(timeout=5) is None
            assert st.terminated, "the chunked body was not terminated"
        assert s.proc.wait(timeout=10) == 0
        assert time.monotonic() - t0 < 2
    assert "stopping" in s.log()


LONG_ID_ROUTES = [("POST", "events"), ("GET", "snapshot"), ("GET", "stream"), ("DELETE", None)]


@pytest.mark.parametrize("method,route", LONG_ID_ROUTES, ids=[f"{m} {r}" for m, r in LONG_ID_ROUTES])
@pytest.mark.parametrize("spelling", ["plain", "percent-encoded"])
def test_flow_id_over_1024_bytes_is_400(server, method, route, spelling):
    """5: bounded memory; the reference takes any length."""
    long_id = "a" * 1025 if spelling == "plain" else "%41" * 1025
    path = f"/v1/flows/{long_id}" + (f"/{route}" if route else "")
    body = {"type": "upsert-nodes", "nodes": [node("a")]} if method == "POST" else None
    assert_text_error(*server.request(method, path, body), 400)


def test_a_percent_encoded_id_of_1024_bytes_is_taken(server, flow_id):
    long_id = flow_id + "%41" * (1024 - len(flow_id))
    assert server.post_ok(long_id, {"type": "upsert-nodes", "nodes": [node("a")]}) == 1
    assert server.snapshot_json(flow_id + "A" * (1024 - len(flow_id)))["nodes"] == [node("a")]


def test_snapshot_order_is_first_insertion_and_stable(server, flow_id):
    """6: the reference's order may differ between requests."""
    server.post_ok(flow_id, {"type": "snapshot", "flow": FLOW, "nodes": [node("z"), node("a"), node("m")],
                             "relationships": [rel("z", "a"), rel("a", "m"), rel("m", "z")]})
    server.post_ok(flow_id, {"type": "upsert-nodes", "nodes": [node("a", status="done"), node("b")]})
    server.post_ok(flow_id, {"type": "upsert-rels", "relationships": [rel("z", "a", condition="always")]})
    snap = server.snapshot_json(flow_id)
    assert [n["id"] for n in snap["nodes"]] == ["z", "a", "m", "b"]
    assert snap["relationships"][0] == rel("z", "a", condition="always")
    # deleted and inserted again: at the end
    server.post_ok(flow_id, {"type": "delete-nodes", "ids": ["a"]})
    server.post_ok(flow_id, {"type": "delete-rels", "pairs": [rel("z", "a")]})
    server.post_ok(flow_id, {"type": "upsert-nodes", "nodes": [node("a")]})
    server.post_ok(flow_id, {"type": "upsert-rels", "relationships": [rel("z", "a")]})
    bodies = {server.snapshot(flow_id)[2] for _ in range(5)}
    assert len(bodies) == 1
    body = bodies.pop()
    snap = server.snapshot_json(flow_id)
    assert [n["id"] for n in snap["nodes"]] == ["z", "m", "b", "a"]
    assert [(r["fromId"], r["toId"]) for r in snap["relationships"]] == [("a", "m"), ("m", "z"), ("z", "a")]
    with server.stream(flow_id) as s:
        assert s.next_frame().data.encode() + b"\n" == body

