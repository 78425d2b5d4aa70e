"""Contract tests of the SSE stream, for any flow server that behaves like the
reference: its headers, the snapshot frame that always comes first (also with
Last-Event-ID, also for a flow never ingested), the live frames of every
message type, several subscribers, and heartbeats by the clock. The
heartbeat interval is the session server's (300 ms for ours, 15 s for an
external one)."""
import json
import threading
import time

import pytest

from conftest import FLOW, canon, node
from test_ingest import FOLD_STEPS


def test_stream_headers_and_first_frame(server, flow_id):
    server.post_ok(flow_id, {"type": "snapshot", "flow": FLOW, "nodes": [node("a")]})
    server.post_ok(flow_id, {"type": "upsert-nodes", "nodes": [node("b")]})
    with server.stream(flow_id) as s:
        assert s.status == 200
        assert s.headers["content-type"] == "text/event-stream"
        assert s.headers["cache-control"] == "no-cache"
        assert s.headers["connection"].lower() == "keep-alive"
        assert s.headers["x-accel-buffering"] == "no"
        assert s.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in s.headers
        first = s.next_frame()
        assert first.event == "snapshot" and first.id == "2"
        assert first.raw.startswith(b"event: snapshot\nid: 2\ndata: {")
        assert "\n" not in first.data
        assert canon(first.json()) == canon(server.snapshot_json(flow_id))


def test_stream_of_a_flow_never_ingested(server, flow_id):
    with server.stream(flow_id) as s:
        assert s.status == 200
        assert s.next_frame().raw == b'event: snapshot\nid: 0\ndata: {"type":"snapshot"}\n\n'
        # the snapshot route still says there is nothing
        assert server.snapshot(flow_id)[0] == 404
        message = {"type": "upsert-nodes", "nodes": [node("a", meta={"k": [1, 2]})]}
        server.post_ok(flow_id, message)
        live = s.next_non_heartbeat()
        assert (live.event, live.id) == ("upsert-nodes", "1")
        assert live.json() == message
    assert server.snapshot(flow_id)[0] == 200


def test_stream_of_an_empty_fold_starts_at_its_seq(server, flow_id):
    server.post_ok(flow_id, {"type": "delete-nodes", "ids": ["a"]})
    with server.stream(flow_id) as s:
        assert s.next_frame().raw == b'event: snapshot\nid: 1\ndata: {"type":"snapshot"}\n\n'


# Last-Event-ID is ignored: a snapshot frame comes first whatever it says.
LAST_EVENT_IDS = ["0", "2", "5", "6", "999", "abc", "-1", ""]


@pytest.mark.parametrize("last", LAST_EVENT_IDS)
def test_last_event_id_still_gets_a_snapshot_frame(server, flow_id, last):
    for _ in range(5):
        server.post_ok(flow_id, {"type": "upsert-nodes", "nodes": [node("a")]})
    with server.stream(flow_id, last_event_id=last) as s:
        assert s.status == 200
        first = s.next_frame()
        assert first.tag == "snapshot:5"
        assert first.json() == {"type": "snapshot", "nodes": [node("a")]}
        server.post_ok(flow_id, {"type": "delete-nodes", "ids": ["a"]})
        assert s.next_non_heartbeat().tag == "delete-nodes:6"


def test_every_message_type_is_streamed_as_accepted(server, flow_id):
    with server.stream(flow_id) as s:
        assert s.next_frame().tag == "snapshot:0"
        for seq, (name, message, _) in enumerate(FOLD_STEPS, start=1):
            server.post_ok(flow_id, message)
            f = s.next_non_heartbeat()
            assert f.tag == f"{message['type']}:{seq}", name
            assert f.raw.startswith(f"event: {message['type']}\nid: {seq}\ndata: {{".encode()), name
            assert canon(f.json()) == canon(message), name
    # a new subscriber's snapshot frame is the fold of them all
    with server.stream(flow_id) as s:
        first = s.next_frame()
        assert first.tag == f"snapshot:{len(FOLD_STEPS)}"
        assert canon(first.json()) == canon(server.snapshot_json(flow_id))


def test_frames_carry_the_re_encoded_message_on_one_line(server, flow_id):
    message = {"type": "upsert-nodes", "nodes": [node("a", meta={"note": "two\nlines", "path": "a/b"})]}
    with server.stream(flow_id) as s:
        s.next_frame()
        server.post_ok(flow_id, json.dumps({**message, "unknown": 1}, indent=2).encode())
        f = s.next_non_heartbeat()
        assert "\n" not in f.data and "\r" not in f.data
        assert f.json() == message


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
            server.post_ok(flow_id, {"type": "upsert-nodes", "nodes": [node(f"n{seq}")]})
        for s in (a, b):
            assert [s.next_non_heartbeat().tag for _ in range(5)] == [f"upsert-nodes:{i}" for i in range(1, 6)]


def test_streams_are_per_flow(server, flow_id):
    with server.stream(flow_id + "-quiet") as quiet, server.stream(flow_id) as busy:
        assert quiet.next_frame().tag == busy.next_frame().tag == "snapshot:0"
        server.post_ok(flow_id, {"type": "upsert-nodes", "nodes": [node("a")]})
        assert busy.next_non_heartbeat().tag == "upsert-nodes:1"
        server.post_ok(flow_id + "-quiet", {"type": "delete-nodes", "ids": ["a"]})
        assert quiet.next_non_heartbeat().tag == "delete-nodes:1"


def test_heartbeats_by_the_clock_while_messages_flow(server, flow_id, heartbeat):
    """A heartbeat about every interval from the stream's start, also while
    messages come four times as often (a heartbeat after silence only would
    never come)."""
    stop = threading.Event()

    def post_often():
        conn = server.connection()
        while not stop.wait(heartbeat / 4):
            server.post_ok(flow_id, {"type": "delete-nodes", "ids": ["a"]}, conn=conn)
        conn.close()

    poster = threading.Thread(target=post_often)
    with server.stream(flow_id) as s:
        opened = time.monotonic()
        assert s.next_frame().event == "snapshot"
        poster.start()
        try:
            beats, between = [], 0
            # a deadline of its own: frames keep coming, a read never times out
            deadline = opened + heartbeat * 4 + 1
            while len(beats) < 2:
                assert time.monotonic() < deadline, f"heartbeats at {beats} in {heartbeat * 4 + 1:.1f}s"
                f = s.next_frame(timeout=max(0.001, deadline - time.monotonic()))
                assert f is not None
                if f.event == "heartbeat":
                    assert f.raw == b"event: heartbeat\ndata: {}\n\n"
                    beats.append(time.monotonic() - opened)
                else:
                    assert f.event == "delete-nodes"
                    between += bool(beats)
        finally:
            stop.set()
            poster.join()
    # generous bounds: the machine may be busy
    assert heartbeat * 0.5 <= beats[0] <= heartbeat * 2 + 0.2, beats
    assert heartbeat * 0.4 <= beats[1] - beats[0] <= heartbeat * 2 + 0.2, beats
    assert between >= 2, f"{between} messages between the heartbeats"
