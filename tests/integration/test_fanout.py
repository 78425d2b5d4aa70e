"""fan-out (issue 18): with OPENOVA_FLOW_FANOUT=on the app opens one
upstream stream per flow, however many clients watch it, through real
lighttpd and nginx from conf/. The test upstream's Feed (harness/upstream.py)
is the flow server's live tail: each stream connection it serves gets a
snapshot frame made when it attaches (the state of everything sent before),
then every frame the test sends; it counts the connections it served.

- 200 clients on one flow: one upstream GET .../stream, as
  OPENOVA_FLOW_FANOUT_USER, without any client's Last-Event-ID or
  X-Forwarded-For; every client gets the snapshot frame, then the same live
  frames in order; the fan-out gauges say 1 subscription, 200 clients.
- 30 clients joining at random moments of a burst of 300 frames each get
  the subscription's snapshot frame, then every later frame exactly once, in
  order: what they fold to is the flow's state.
- A heartbeat frame goes to the clients connected when it came, not to a
  client joining later.
- A client that never reads (small SO_RCVBUF, OPENOVA_FLOW_CLIENT_BUFFER
  64 KiB, frames of 8 KiB) is cut (end=client-slow, no clean end) while the
  others get every frame within 2 s of the upstream sending it.
- The client buffer bounds what a client leaves unread, not what it is
  handed: a snapshot frame larger than it reaches the first client whole,
  and a joiner is handed a history larger than it, both uncut.
- One client's JWT expiring ends its stream only (cleanly,
  end=credential-expired); the other keeps receiving, on the same
  upstream stream.
- The upstream stream ending (clean: every client ends cleanly; dropped or
  reset: every client is cut) ends every client at once; the next client
  opens a new subscription with a fresh snapshot frame.
- Linger: the upstream stream stays OPENOVA_FLOW_FANOUT_LINGER after the
  last client left; a client joining within it reuses it (and starts with
  its snapshot frame); then it closes, and the next client opens a new one.
- A refusal at open (404, text/plain) reaches every waiting client as it
  is; the next client asks again.
- With fan-out off (the default, instance "main"), 3 clients make 3
  upstream streams, each as its own user.

Apache is not in this file: the issue asks for lighttpd and nginx, and
Apache holds a stream's head until its first frame (test_stream.py)."""
import concurrent.futures
import json
import random
import re
import socket
import threading
import time

import pytest

from harness import applog, client, servers
from harness.checks import wait_for
from harness.timing import scaled
from harness.upstream import Feed, Reply, feed_reply

BASE = "/api/v1/flows"
METRICS = "/openova-flow/metrics"
KEEPALIVE = b": keepalive"
FANOUT_USER = "fanout-test-proxy"
DEFAULT_FANOUT_USER = "openova-flow-fcgi"
# The linger is the app's own (real) time; where the tests bound it from
# above they add scaled slack, and it is scaled itself so that a slow app
# (valgrind) still has the time to take a joiner within it.
LINGER = scaled(1.0)
CLIENT_BUFFER = 65536

# Each instance of this file: (web server conf, the app's settings). The
# keepalive comments (1 s) are how lighttpd learns that a client left
# (test_keepalive.py); the tests leave them out of what they compare.
FANOUT_ENV = {"OPENOVA_FLOW_FANOUT": "on", "OPENOVA_FLOW_KEEPALIVE": "1s"}
CONFIGS = {
    "on": ("auth", lambda keys: dict(FANOUT_ENV, OPENOVA_FLOW_FANOUT_USER=FANOUT_USER,
                                     OPENOVA_FLOW_FANOUT_LINGER=f"{int(LINGER * 1000)}ms")),
    "stall": ("auth", lambda keys: dict(FANOUT_ENV, OPENOVA_FLOW_CLIENT_BUFFER=str(CLIENT_BUFFER))),
    # The app checks JWTs itself (test_auth_methods.py's "jwt"); the
    # subscription's user is left at its default.
    "jwt": ("noauth", lambda keys: keys.app_env("jwt", OPENOVA_FLOW_JWT_CLOCK_SKEW="1s", **FANOUT_ENV)),
}


@pytest.fixture(params=["lighttpd", "nginx"])
def web(request):
    """The issue's web servers (overrides conftest's, which has Apache too)."""
    return request.param


@pytest.fixture(scope="module")
def fanout_servers(upstream, instances, tmp_path_factory):
    """Starts this file's instances on first use, stops them at its end."""
    running = {}

    def get(name, web):
        if (name, web) not in running:
            conf, env = CONFIGS[name]
            env = dict(env(instances.keys), OPENOVA_FLOW_SERVER_URL=upstream.url)
            server = servers.WEB_SERVERS[web](env, tmp_path_factory.mktemp(f"{web}-fanout-{name}"), conf=conf)
            server.start()
            running[(name, web)] = server
        return running[(name, web)]
    yield get
    for server in running.values():
        server.stop()


@pytest.fixture
def fanout(fanout_servers, web):
    return lambda name="on": fanout_servers(name, web)


# ---- frames: flow messages the tests fold ----

def message_frame(seq):
    """Frame seq of a flow: mostly upsert-nodes over 40 nodes, every tenth
    a delete-nodes, so that order and duplicates change the folded state."""
    if seq % 10 == 0:
        kind, data = "delete-nodes", {"type": "delete-nodes", "ids": [f"n{(seq - 5) % 40}"]}
    else:
        kind, data = "upsert-nodes", {"type": "upsert-nodes", "nodes": [
            {"id": f"n{seq % 40}", "flowId": "f", "label": f"step {seq}", "status": f"s{seq}"}]}
    return f"event: {kind}\nid: {seq}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def send_message(feed):
    return feed.send(message_frame(len(feed.sent) + 1))


def fold(frames):
    """The nodes a client holds after applying frames in order."""
    nodes = {}
    for frame in frames:
        data = json.loads(frame_field(frame, "data"))
        if data.get("type") == "snapshot":
            nodes = {n["id"]: n for n in data.get("nodes", [])}
        elif data.get("type") == "upsert-nodes":
            nodes.update({n["id"]: n for n in data["nodes"]})
        elif data.get("type") == "delete-nodes":
            for i in data["ids"]:
                nodes.pop(i, None)
    return nodes


def snapshot_of(feed):
    """The flow server's first frame on a new stream: the state of every
    frame sent so far, with the last id."""
    data = {"type": "snapshot", "flow": {"id": "f", "status": "running", "startedAt": 0},
            "nodes": sorted(fold(feed.sent).values(), key=lambda n: n["id"])}
    return (f"event: snapshot\nid: {len(feed.sent)}\n"
            f"data: {json.dumps(data, separators=(',', ':'))}\n\n").encode()


def frame_field(frame, name):
    for line in frame.decode().split("\n"):
        if line.startswith(name + ": "):
            return line[len(name) + 2:]
    return None


def ids(frames):
    return [frame_field(f, "id") for f in frames]


def frames_of(s):
    """The complete SSE blocks of a stream's body, keepalive comments left
    out (any other comment is a failure)."""
    blocks = s.body.split(b"\n\n")[:-1]
    others = [b for b in blocks if b.startswith(b":") and b != KEEPALIVE]
    assert not others, f"comments other than keepalives: {others[:3]}"
    return [b + b"\n\n" for b in blocks if b != KEEPALIVE]


def timed_frames(s):
    """[(time complete, block)] of the stream's frames, keepalives left out."""
    return [(t, b) for t, b in s.events() if b != KEEPALIVE + b"\n\n"]


def has_frame(s):
    """An until() for client.read_streams: a frame came (a keepalive is not one)."""
    return bool(frames_of(s))


def has_tail(frame, window=4096):
    """A cheap until() for client.read_streams: frame is among the last
    bytes (keepalives may follow it)."""
    return lambda s: frame in s.body[-(len(frame) + window):]


# ---- clients, the app's log, metrics ----

def target(flow):
    return f"{BASE}/{flow}/stream"


def open_streams(server, flow, count, headers=lambda i: []):
    """count streams opened 8 at a time; headers(i) adds to client i's."""
    def one(i):
        return client.Stream(server.port, target(flow), server.auth_headers() + headers(i), timeout=scaled(10))
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(count)))


def close_all(streams):
    for s in streams:
        s.close()


def log_records(server, rid):
    return applog.with_rid(server.app_log(), rid)


def end_line(server, rid, timeout):
    """The app's "stream end" line for rid, waited for up to timeout."""
    found = wait_for(lambda: [r for r in log_records(server, rid) if r["msg"] == "stream end"], timeout)
    return found[0] if found else None


def gauges(server):
    resp = client.request(server.port, "GET", METRICS)
    assert resp.status == 200, resp
    out = {}
    for line in resp.body.decode().splitlines():
        m = re.fullmatch(r"(openova_flow_fanout_(?:subscriptions|clients)) (\S+)", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def start_pusher(feed, interval, make=send_message):
    """A thread sending make(feed) every interval seconds until stopped;
    returns (stop event, thread)."""
    stop = threading.Event()

    def run():
        while not stop.is_set():
            make(feed)
            stop.wait(interval)
    thread = threading.Thread(target=run, name="feed-pusher", daemon=True)
    thread.start()
    return stop, thread


# ---- 1. many clients, one upstream stream ----

CLIENTS = 200
LIVE = 5


def test_two_hundred_clients_make_one_upstream_stream(fanout, upstream, fid):
    server = fanout("on")
    flow = fid()
    feed = Feed(snapshot=snapshot_of)
    for _ in range(3):
        send_message(feed)   # state ingested before anyone watched
    upstream.set(flow, feed_reply(feed))
    first_rid = f"{flow}-first"
    # The first client opens the subscription alone, with a Last-Event-ID
    # and an X-Forwarded-For: neither may reach the shared subscription.
    # The others join, each with a Last-Event-ID of its own.
    streams = [client.Stream(server.port, target(flow), server.auth_headers() + [
        ("Last-Event-ID", "40"), ("X-Forwarded-For", "203.0.113.9"), ("X-Request-ID", first_rid)])]
    try:
        assert streams[0].status == 200, streams[0].headers
        assert feed.wait_attached(1, scaled(5))
        streams += open_streams(server, flow, CLIENTS - 1, lambda i: [("Last-Event-ID", str(41 + i))])
        assert [s.status for s in streams] == [200] * CLIENTS, [s.status for s in streams if s.status != 200]
        for s in streams:
            assert (s.header("Content-Type") or "").split(";")[0] == "text/event-stream", s.headers
            assert "no-cache" in (s.header("Cache-Control") or ""), s.headers
            assert s.header("X-Accel-Buffering") == "no", s.headers
        rids = [s.header("X-Request-ID") for s in streams]
        assert rids[0] == first_rid
        assert all(rids) and len(set(rids)) == CLIENTS, "each client has a request id of its own"

        (rec,) = upstream.stream_requests(flow)
        snapshot = rec.frames_sent[0]
        assert snapshot == snapshot_of(feed)   # the state of the 3 messages before
        lagging = client.read_streams(streams, has_tail(snapshot), scaled(10))
        assert not lagging, f"{len(lagging)} of {CLIENTS} clients without the snapshot frame: {lagging[0].body!r}"

        # One upstream stream, asked as the proxy itself.
        assert [r.target for r in upstream.requests(flow)] == [f"/v1/flows/{flow}/stream"]
        assert rec.header("Accept") == "text/event-stream"
        assert rec.header("X-Forwarded-User") == FANOUT_USER
        assert rec.header("Last-Event-ID") is None
        assert (rec.header("X-Request-ID") or "").startswith("fanout-"), rec.headers
        assert not [h for h in rec.headers if "203.0.113.9" in h[1]], rec.headers

        live = [message_frame(len(feed.sent) + 1 + i) for i in range(LIVE)]
        for frame in live:
            feed.send(frame)
            time.sleep(0.02)
        lagging = client.read_streams(streams, has_tail(live[-1]), scaled(10))
        assert not lagging, f"{len(lagging)} of {CLIENTS} clients without the last frame: {lagging[0].body[-500:]!r}"
        wrong = [(i, ids(frames_of(s))) for i, s in enumerate(streams) if frames_of(s) != [snapshot] + live]
        assert not wrong, f"{len(wrong)} clients got other frames than {ids([snapshot] + live)}: {wrong[:3]}"
        assert len(upstream.stream_requests(flow)) == 1 and feed.attached == 1

        # The gauges: one subscription, 200 clients on it (other tests'
        # clients are gone once the app noticed: one keepalive period).
        want = {"openova_flow_fanout_subscriptions": 1, "openova_flow_fanout_clients": CLIENTS}
        assert wait_for(lambda: gauges(server) == want, scaled(5), 0.2), gauges(server)
    finally:
        close_all(streams)


# ---- 2. joiners during a burst fold to the flow's state ----

BURST = 300
BURST_SECONDS = 2.0
JOINERS = 30


def test_joiners_during_a_burst_fold_to_the_same_state(fanout, upstream, fid):
    server = fanout("on")
    flow = fid()
    feed = Feed(snapshot=snapshot_of)
    for _ in range(10):
        send_message(feed)
    upstream.set(flow, feed_reply(feed))
    rng = random.Random(18)
    join_at = sorted(rng.uniform(0, BURST_SECONDS) for _ in range(JOINERS))
    # The subscription opens first (its snapshot frame is the one every
    # joiner must start with), then the burst and the joiners together.
    anchor = client.Stream(server.port, target(flow), server.auth_headers())
    joiners = []
    errors = []
    try:
        assert anchor.status == 200
        assert feed.wait_attached(1, scaled(5))
        assert anchor.read_until(has_frame, scaled(5)), anchor.body

        def join():
            start = time.monotonic()
            for at in join_at:
                time.sleep(max(0.0, start + at - time.monotonic()))
                try:
                    joiners.append((time.monotonic() - start,
                                    client.Stream(server.port, target(flow), server.auth_headers())))
                except Exception as exc:   # reported below
                    errors.append(repr(exc))
        joining = threading.Thread(target=join, name="joiners")
        joining.start()
        start = time.monotonic()
        for i in range(BURST):
            time.sleep(max(0.0, start + i * BURST_SECONDS / BURST - time.monotonic()))
            send_message(feed)
        joining.join(scaled(30))
        assert not joining.is_alive() and not errors, errors
        streams = [anchor] + [s for _, s in joiners]
        last = feed.sent[-1]
        lagging = client.read_streams(streams, has_tail(last), scaled(10))
        assert not lagging, f"{len(lagging)} clients without the last frame: {lagging[0].body[-300:]!r}"

        (rec,) = upstream.stream_requests(flow)
        sent = rec.frames_sent      # the subscription's snapshot frame, then the burst
        assert len(sent) == 1 + BURST and sent[0].startswith(b"event: snapshot\nid: 10\n")
        direct = fold(feed.sent)    # what a client folding every message holds
        assert fold(sent) == direct
        for joined, s in [(0.0, anchor)] + joiners:
            got = frames_of(s)
            assert s.status == 200, (joined, s.status, s.body[:300])
            assert got[:1] == sent[:1], f"joined at {joined:.3f}s: first frame {got[:1]!r}, not the snapshot frame"
            assert ids(got) == ids(sent), f"joined at {joined:.3f}s: ids {first_difference(ids(got), ids(sent))}"
            assert got == sent, f"joined at {joined:.3f}s: frames differ from the upstream's"
            assert fold(got) == direct, f"joined at {joined:.3f}s: folds to another state"
        assert len(upstream.stream_requests(flow)) == 1
    finally:
        anchor.close()
        close_all(s for _, s in joiners)


def first_difference(got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"differ at {i}: got {got[max(0, i - 2):i + 3]}, want {want[max(0, i - 2):i + 3]}"
    return f"got {len(got)} ids, want {len(want)} (last got {got[-3:]}, want {want[-3:]})"


# ---- 2b. heartbeats go to the clients there, not into the history ----

HEARTBEAT = b"event: heartbeat\ndata: {}\n\n"


def test_heartbeats_reach_only_the_clients_connected(fanout, upstream, fid):
    server = fanout("on")
    flow = fid()
    feed = Feed(snapshot=snapshot_of)
    send_message(feed)
    upstream.set(flow, feed_reply(feed))
    first = client.Stream(server.port, target(flow), server.auth_headers())
    later = None
    try:
        assert first.status == 200
        assert feed.wait_attached(1, scaled(5))
        feed.send(HEARTBEAT)
        send_message(feed)
        assert first.read_until(has_tail(feed.sent[-1]), scaled(5)), first.body
        later = client.Stream(server.port, target(flow), server.auth_headers())
        assert later.status == 200
        assert later.read_until(has_tail(feed.sent[-1]), scaled(5)), later.body
        (rec,) = upstream.stream_requests(flow)
        snapshot, heartbeat, message = rec.frames_sent
        assert heartbeat == HEARTBEAT
        assert frames_of(first) == [snapshot, HEARTBEAT, message]
        assert frames_of(later) == [snapshot, message], "a heartbeat is not history"
    finally:
        first.close()
        if later is not None:
            later.close()


# ---- 3. a stalled client is cut, the others are on time ----

BIG = 8192            # bytes per frame
BIG_INTERVAL = 0.01   # seconds between frames: about 800 KB/s
ON_TIME = 2.0         # seconds from the upstream's send to a client (scaled)
AFTER_CUT = 50        # frames still sent and checked after the cut


def big_frame(seq):
    pad = "x" * (BIG - 64)
    return f'event: upsert-flow\nid: {seq}\ndata: {{"type":"upsert-flow","pad":"{pad}"}}\n\n'.encode()


def raw_stalled_stream(server, flow, rid):
    """A stream request on a socket with a small receive buffer that is then
    never read: the web server and the app hold what it cannot take."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(scaled(5))
    sock.connect(("127.0.0.1", server.port))
    lines = [f"GET {target(flow)} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", f"X-Request-ID: {rid}"]
    lines += [f"{n}: {v}" for n, v in server.auth_headers()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    return sock


def read_response_end(sock, timeout):
    """Reads a chunked response until the peer closes, or the response ended
    with its terminating chunk (the connection may then stay, HTTP/1.1), or
    timeout. Returns (head, body, complete, closed)."""
    chunks = []
    deadline = time.monotonic() + timeout
    closed = False
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(1 << 20)
        except socket.timeout:
            continue
        except ConnectionResetError:
            data = b""
        if not data:
            closed = True
            break
        chunks.append(data)
        if data.endswith(b"0\r\n\r\n") and dechunk(b"".join(chunks).partition(b"\r\n\r\n")[2])[1]:
            break
    head, _, rest = b"".join(chunks).partition(b"\r\n\r\n")
    body, complete = dechunk(rest)
    return head, body, complete, closed


def dechunk(raw):
    """(body, complete) of a chunked response's bytes after the head."""
    body = b""
    while True:
        line_end = raw.find(b"\r\n")
        if line_end < 0:
            return body, False
        size = int(raw[:line_end].split(b";")[0], 16)
        if size == 0:
            return body, raw[line_end:line_end + 4] == b"\r\n\r\n"
        if len(raw) < line_end + 2 + size + 2:
            return body + raw[line_end + 2:line_end + 2 + size], False
        body += raw[line_end + 2:line_end + 2 + size]
        raw = raw[line_end + 2 + size + 2:]


def test_stalled_client_is_cut_and_the_others_are_on_time(fanout, upstream, fid):
    server = fanout("stall")   # OPENOVA_FLOW_CLIENT_BUFFER=65536
    flow = fid()
    feed = Feed(snapshot=b'event: snapshot\nid: 0\ndata: {"type":"snapshot"}\n\n')
    upstream.set(flow, feed_reply(feed))
    rid = f"{flow}-stalled"
    good = open_streams(server, flow, 3)
    stalled = None
    stop = thread = None
    try:
        assert [s.status for s in good] == [200] * 3
        assert not client.read_streams(good, has_frame, scaled(5))
        stalled = raw_stalled_stream(server, flow, rid)
        assert wait_for(lambda: [r for r in log_records(server, rid) if r["msg"] == "stream open"], scaled(5)), \
            f"the stalled client's stream never opened: {server.app_log()[-2000:]}"

        stop, thread = start_pusher(feed, BIG_INTERVAL, lambda f: f.send(big_frame(len(f.sent) + 1)))
        cut_at = None
        sent_at_cut = None
        deadline = time.monotonic() + scaled(30)
        while time.monotonic() < deadline:
            client.read_streams(good, lambda s: False, 0.2)
            if cut_at is None and [r for r in log_records(server, rid) if r["msg"] == "stream end"]:
                cut_at, sent_at_cut = time.monotonic(), len(feed.sent)
            if cut_at is not None and len(feed.sent) >= sent_at_cut + AFTER_CUT:
                break
        stop.set()
        thread.join()
        assert cut_at is not None, (f"the stalled client was not cut after {len(feed.sent)} frames "
                                    f"({len(feed.sent) * BIG >> 20} MiB) in {scaled(30)} s")
        end = end_line(server, rid, scaled(1))
        assert end and end["end"] == "client-slow", end

        (rec,) = upstream.stream_requests(flow)
        assert not client.read_streams(good, has_tail(feed.sent[-1]), scaled(10)), \
            "a good client missed the last frame"
        sent, sent_at = rec.frames_sent, rec.frames_sent_at
        assert len(sent) == 1 + len(feed.sent)
        for i, s in enumerate(good):
            assert not s.eof, f"client {i} ended: {s.body[-200:]!r}"
            got = timed_frames(s)
            assert [b for _, b in got] == sent, f"client {i}: ids {first_difference(ids([b for _, b in got]), ids(sent))}"
            lags = [arrived - left for (arrived, _), left in zip(got, sent_at)]
            worst = max(range(len(lags)), key=lags.__getitem__)
            assert lags[worst] < scaled(ON_TIME), \
                f"client {i}: frame {worst} arrived {lags[worst]:.2f}s after the upstream sent it"
        assert feed.attached == 1

        # The stalled client's response: what the web server still held, then
        # a cut connection, never the terminating chunk.
        head, body, complete, closed = read_response_end(stalled, scaled(10))
        assert head.startswith(b"HTTP/1.1 200 ") and b"chunked" in head.lower(), head
        assert body.startswith(sent[0]), body[:200]
        assert not complete, (f"the stalled client's response ended cleanly (terminating chunk after "
                              f"{len(body)} body bytes; connection closed: {closed}); a cut client's must not")
        assert closed, f"the stalled client's connection is still open after {len(body)} body bytes"
    finally:
        if stop is not None:
            stop.set()
            thread.join()
        close_all(good)
        if stalled is not None:
            stalled.close()


# ---- 4. one client's token expiry ends only its stream ----

def test_the_buffer_bounds_the_backlog_not_a_frame_or_the_history(fanout, upstream, fid):
    """OPENOVA_FLOW_CLIENT_BUFFER (64 KiB here) is about a client falling
    behind: a 256 KiB snapshot frame still reaches the subscription's first
    client, and a client joining after 200 KiB of frames is handed them all."""
    server = fanout("stall")
    flow = fid()
    big_snapshot = b'event: snapshot\nid: 0\ndata: {"type":"snapshot","pad":"' + b"s" * (256 * 1024) + b'"}\n\n'
    feed = Feed(snapshot=big_snapshot)
    upstream.set(flow, feed_reply(feed))
    first_rid, joiner_rid = f"{flow}-first", f"{flow}-joiner"
    first = client.Stream(server.port, target(flow), server.auth_headers() + [("X-Request-ID", first_rid)])
    joiner = None
    try:
        assert first.status == 200
        assert first.read_until(lambda st: big_snapshot in st.body, scaled(10)), len(first.body)
        # 200 KiB of history, paced so that the first client, which reads,
        # never has more than its buffer waiting
        for seq in range(1, 201):
            feed.send(f"event: upsert-nodes\nid: {seq}\ndata: {{\"pad\":\"{'p' * 1000}\"}}\n\n".encode())
            if seq % 20 == 0:
                assert first.read_until(has_tail(feed.sent[-1]), scaled(10)), len(first.body)
        joiner = client.Stream(server.port, target(flow), server.auth_headers() + [("X-Request-ID", joiner_rid)])
        assert joiner.status == 200
        assert joiner.read_until(has_tail(feed.sent[-1]), scaled(10)), len(joiner.body)
        feed.send(b"event: upsert-nodes\nid: 201\ndata: {}\n\n")
        for s in (first, joiner):
            assert s.read_until(has_tail(feed.sent[-1]), scaled(10)), len(s.body)
            assert frames_of(s) == [big_snapshot] + feed.sent
        for rid in (first_rid, joiner_rid):
            assert not [r for r in log_records(server, rid) if r["msg"] == "stream end"], \
                f"{rid} was cut: {log_records(server, rid)}"
        assert len(upstream.stream_requests(flow)) == 1
    finally:
        for s in (first, joiner):
            if s is not None:
                s.close()


def bearer(token):
    return [("Authorization", f"Bearer {token}")]


def test_token_expiry_ends_only_that_client(fanout, instances, upstream, fid):
    server = fanout("jwt")
    keys = instances.keys
    flow = fid()
    feed = Feed(snapshot=snapshot_of)
    upstream.set(flow, feed_reply(feed))
    short_rid, long_rid = f"{flow}-short", f"{flow}-long"
    # The client whose token expires opens the subscription.
    short = client.Stream(server.port, target(flow),
                          bearer(keys.jwt(exp=int(time.time()) + 3)) + [("X-Request-ID", short_rid)])
    long = client.Stream(server.port, target(flow), bearer(keys.jwt()) + [("X-Request-ID", long_rid)])
    stop = thread = None
    try:
        assert (short.status, long.status) == (200, 200), (short.headers, long.headers)
        assert not client.read_streams([short, long], has_frame, scaled(5))
        stop, thread = start_pusher(feed, 0.25)
        started = time.monotonic()
        # exp is 3 s away and the instance allows 1 s of clock skew.
        client.read_streams([short, long], lambda s: short.eof, 3 + scaled(12))
        assert short.eof, f"the expired client's stream is still open: {short.body[-200:]!r}"
        assert short.complete, "the response must end cleanly so that the browser reconnects"
        assert short.ended_at - started < 3 + scaled(9)
        client.read_streams([long], lambda s: False, 1.5)
        stop.set()
        thread.join()
        assert not long.eof, f"the other client's stream ended too: {long.body[-200:]!r}"
        (rec,) = upstream.stream_requests(flow)
        got = frames_of(long)
        assert got == rec.frames_sent[:len(got)], ids(got)
        late = [t for t, b in timed_frames(long) if t > short.ended_at + 0.3]
        assert len(late) >= 3, f"the other client got {len(late)} frames after the first one's end"
        assert frames_of(short) == rec.frames_sent[:len(frames_of(short))]
        assert rec.conn.open and feed.attached == 1
        assert rec.header("X-Forwarded-User") == DEFAULT_FANOUT_USER
        end = end_line(server, short_rid, scaled(3))
        assert end and end["end"] == "credential-expired", end
        assert not [r for r in log_records(server, long_rid) if r["msg"] == "stream end"]
    finally:
        if stop is not None:
            stop.set()
            thread.join()
        short.close()
        long.close()


# ---- 5. the upstream stream ends: every client ends, the next opens anew ----

ENDINGS = [("clean", "clean"), ("dropped", "drop"), ("reset", "reset")]


@pytest.mark.parametrize("how", [r[1] for r in ENDINGS], ids=[r[0] for r in ENDINGS])
def test_upstream_end_ends_every_client_and_the_next_opens_anew(fanout, upstream, fid, how):
    server = fanout("on")
    flow = fid()
    feed = Feed(snapshot=snapshot_of)
    send_message(feed)
    upstream.set(flow, feed_reply(feed))
    streams = open_streams(server, flow, 5)
    newcomer = None
    try:
        assert [s.status for s in streams] == [200] * 5
        for _ in range(2):
            send_message(feed)
        assert not client.read_streams(streams, has_tail(feed.sent[-1]), scaled(5))
        (rec,) = upstream.stream_requests(flow)
        feed.end(how)
        ended = time.monotonic()
        assert not client.read_streams(streams, lambda s: s.eof, scaled(3)), \
            f"clients still open {scaled(3)} s after the upstream stream ended ({how})"
        for i, s in enumerate(streams):
            assert frames_of(s) == rec.frames_sent, f"client {i}: {ids(frames_of(s))}"
            assert s.complete == (how == "clean"), \
                f"client {i}: complete={s.complete} after the upstream's {how} end"
            assert s.ended_at - ended < scaled(2)

        newcomer = client.Stream(server.port, target(flow), server.auth_headers())
        assert newcomer.status == 200
        assert wait_for(lambda: len(upstream.stream_requests(flow)) == 2, scaled(5)), \
            "the next client did not open a new subscription"
        assert newcomer.read_until(has_frame, scaled(5)), newcomer.body
        second = upstream.stream_requests(flow)[1]
        assert frames_of(newcomer) == [second.frames_sent[0]] == [snapshot_of(feed)]
    finally:
        close_all(streams)
        if newcomer is not None:
            newcomer.close()


# ---- 6. linger ----

def test_linger_keeps_the_upstream_stream_for_a_joiner(fanout, upstream, fid):
    server = fanout("on")   # OPENOVA_FLOW_FANOUT_LINGER = LINGER
    flow = fid()
    feed = Feed(snapshot=snapshot_of)
    send_message(feed)
    upstream.set(flow, feed_reply(feed))
    a_rid, b_rid = f"{flow}-a", f"{flow}-b"
    a = client.Stream(server.port, target(flow), server.auth_headers() + [("X-Request-ID", a_rid)])
    b = c = None
    try:
        assert a.status == 200
        for _ in range(2):
            send_message(feed)
        assert a.read_until(has_tail(feed.sent[-1]), scaled(5)), a.body
        (rec,) = upstream.stream_requests(flow)
        a.close()
        # Once the app saw its last client leave (nginx at once, lighttpd at
        # the next keepalive), a client joins within the linger.
        assert end_line(server, a_rid, scaled(5)), f"the app never saw the client leave: {server.app_log()[-1500:]}"
        b = client.Stream(server.port, target(flow), server.auth_headers() + [("X-Request-ID", b_rid)])
        assert b.status == 200
        assert b.read_until(has_tail(feed.sent[-1]), scaled(5)), b.body
        assert len(upstream.stream_requests(flow)) == 1 and rec.conn.open, "the joiner did not reuse the subscription"
        assert frames_of(b)[0] == rec.frames_sent[0], "a joiner starts with the subscription's snapshot frame"
        send_message(feed)
        assert b.read_until(has_tail(feed.sent[-1]), scaled(5)), b.body
        assert frames_of(b) == rec.frames_sent

        b.close()
        left = time.monotonic()
        closed = upstream.wait_closed(rec.conn, LINGER + scaled(5))
        assert closed is not None, f"the upstream stream still open {LINGER + scaled(5):.1f}s after the last client left"
        assert closed - left >= LINGER - 0.05, f"closed {closed - left:.2f}s after the last client left"
        # (lighttpd: up to a keepalive period to notice the client left)
        assert closed - left < 1.0 + LINGER + scaled(2), f"closed {closed - left:.2f}s after the last client left"
        assert end_line(server, b_rid, scaled(1))

        # Gone: the next client opens a new one, with a fresh snapshot frame.
        c = client.Stream(server.port, target(flow), server.auth_headers())
        assert c.status == 200
        assert wait_for(lambda: len(upstream.stream_requests(flow)) == 2, scaled(5))
        assert c.read_until(has_frame, scaled(5)), c.body
        assert frames_of(c) == [snapshot_of(feed)]
    finally:
        for s in (a, b, c):
            if s is not None:
                s.close()


# ---- 7. a refusal at open reaches every waiting client ----

WAITING = 5


def test_refusal_at_open_reaches_every_waiting_client(fanout, upstream, fid):
    server = fanout("on")
    flow = fid()
    body = b"flow never ingested\n"
    headers = [("Content-Type", "text/plain; charset=utf-8")]
    # Held back, so that every client waits for the same opening.
    upstream.set(flow, Reply(status=404, headers=headers, body=body, delay=scaled(1.0)))
    with concurrent.futures.ThreadPoolExecutor(max_workers=WAITING) as pool:
        answers = list(pool.map(lambda _: client.request(server.port, "GET", target(flow), server.auth_headers()),
                                range(WAITING)))
    for resp in answers:
        assert (resp.status, resp.body) == (404, body), resp
        assert resp.header("Content-Type") == "text/plain; charset=utf-8", resp.headers
        assert resp.header("X-Request-ID"), resp.headers
    assert len(upstream.stream_requests(flow)) == 1, "the waiting clients shared one opening"
    # The refused subscription is dropped: the next client asks again.
    upstream.set(flow, Reply(status=404, headers=headers, body=body))
    resp = client.request(server.port, "GET", target(flow), server.auth_headers())
    assert (resp.status, resp.body) == (404, body), resp
    assert len(upstream.stream_requests(flow)) == 2


# ---- 8. fan-out off: one upstream stream per client, as before ----

def test_fanout_off_by_default_one_upstream_stream_per_client(instances, web, upstream, fid):
    server = instances.get("main", web)   # no OPENOVA_FLOW_FANOUT: the default, off
    flow = fid()
    feed = Feed(snapshot=snapshot_of)
    send_message(feed)
    upstream.set(flow, feed_reply(feed))
    streams = open_streams(server, flow, 3, lambda i: [("Last-Event-ID", "1")] if i == 0 else [])
    try:
        assert [s.status for s in streams] == [200] * 3
        assert feed.wait_attached(3, scaled(5)), f"{feed.attached} upstream streams for 3 clients"
        recs = upstream.stream_requests(flow)
        assert len(recs) == 3
        assert [r.header("X-Forwarded-User") for r in recs] == [servers.USER] * 3
        assert sorted(r.header("Last-Event-ID") or "" for r in recs) == ["", "", "1"]
        snapshot = snapshot_of(feed)
        send_message(feed)
        assert not client.read_streams(streams, has_tail(feed.sent[-1]), scaled(5))
        for s in streams:
            assert frames_of(s) == [snapshot, feed.sent[-1]]
    finally:
        close_all(streams)
