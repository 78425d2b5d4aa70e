"""upstream.py: a stand-in flow server that runs inside the pytest process,
records exactly what it receives and misbehaves on purpose.

Raw sockets, one thread per connection, so that every byte is under the
test's control: header names keep their case, stream frames go out one
chunk at a time, and a connection can be dropped mid-stream or held open in
silence. Each test registers a Reply per flow id; each received request is
recorded with its connection, and each connection with when it opened and
closed. GET /healthz, the flow server's health check (the app's readiness
asks it), is answered with `health`, {"status":"ok"} unless a test sets
another Reply.

A Feed is a stream the test drives while it is open, as a flow server's
live tail: each connection answered with it gets a snapshot frame made when
it attaches, then every frame the test sends from then on, until the test
ends it (cleanly, dropped or reset) or the peer leaves. The Feed counts the
connections it served (fan-out tests count the proxy's subscriptions).
"""
import dataclasses
import re
import select
import selectors
import socket
import struct
import threading
import time

from .timing import scaled

MAX_HEAD = 64 * 1024


@dataclasses.dataclass
class Reply:
    """What the upstream answers for one flow id.

    For a plain reply: status, headers (a list of (name, value), sent as
    given, in order), body. Content-Length is added unless the headers
    already have it or chunked is set (then the body goes out in chunks of
    chunk_size with Transfer-Encoding: chunked).

    For a stream (frames is not None): status and headers, then each
    (delay_seconds, bytes) frame as one chunk, flushed on its own; then
    end: "clean" (terminating chunk), "drop" (close the socket without it)
    or "hold" (stay open and silent until the client leaves).

    delay: seconds to wait before answering at all (for timeouts).

    feed: a Feed (see there) instead of frames: the stream's body is what
    the test sends through it while the connection is attached.
    """
    status: int = 200
    reason: str = ""
    headers: list = dataclasses.field(default_factory=list)
    body: bytes = b""
    chunked: bool = False
    chunk_size: int = 1000
    frames: list = None
    end: str = "clean"
    delay: float = 0.0
    feed: "Feed" = None


SSE_HEADERS = [
    ("Content-Type", "text/event-stream"),
    ("Cache-Control", "no-cache, no-transform"),
    ("X-Accel-Buffering", "no"),
]


def stream_reply(frames, end="hold", status=200, headers=None, delay=0.0):
    return Reply(status=status, headers=list(SSE_HEADERS if headers is None else headers),
                 frames=list(frames), end=end, delay=delay)


def json_reply(status=200, body=b'{"ok":true}', headers=()):
    return Reply(status=status, headers=[("Content-Type", "application/json")] + list(headers), body=body)


class Feed:
    """A stream the test drives while it is open: Reply(feed=...) (or
    feed_reply()) answers with it. Each connection that gets it attaches:
    its head goes out, then the snapshot frame, made at that moment (under
    the same lock as send(), so it covers exactly the frames sent before),
    then every frame send() is given from then on, each as one chunk, until
    end() or the peer leaves. Each attached connection records what it was
    sent (Received.frames_sent, .frames_sent_at, the snapshot frame first),
    each frame just before it goes out.

    snapshot: bytes, or a callable(feed) -> bytes (it may read feed.sent),
    or None for no first frame.
    """

    def __init__(self, snapshot=None):
        self.snapshot = snapshot
        self.sent = []        # every frame given to send(), in order
        self.served = []      # Received of each connection that attached, in order
        self._cond = threading.Condition()
        self._subs = []       # [_FeedConnection] attached now

    @property
    def attached(self):
        """How many connections are attached now."""
        with self._cond:
            return len(self._subs)

    def send(self, data):
        """Queues one frame (bytes) on every connection attached now;
        returns its index in sent."""
        with self._cond:
            self.sent.append(data)
            for sub in self._subs:
                sub.items.append(data)
            self._cond.notify_all()
            return len(self.sent) - 1

    def end(self, how="clean"):
        """Ends every connection attached now, after what was queued:
        "clean" (the terminating chunk; the connection stays for the next
        request), "drop" (closed without it) or "reset" (closed with an
        RST). Connections that attach later start afresh."""
        assert how in ("clean", "drop", "reset"), how
        with self._cond:
            for sub in self._subs:
                sub.items.append(_FeedEnd(how))
            self._cond.notify_all()

    def wait_attached(self, count, timeout=None):
        """Until count connections are attached (default 5 s, scaled);
        returns whether they are."""
        deadline = time.monotonic() + (scaled(5.0) if timeout is None else timeout)
        while self.attached < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.attached >= count

    def _serve(self, upstream, sock, rec, head):
        """The answer to rec on sock (Upstream._answer): returns whether the
        connection may carry another request."""
        sub = _FeedConnection()
        with self._cond:
            first = self.snapshot(self) if callable(self.snapshot) else self.snapshot
            if first is not None:
                sub.items.append(first)
            self._subs.append(sub)
            self.served.append(rec)
        try:
            sock.sendall(head)
            while True:
                with self._cond:
                    if not sub.items:
                        self._cond.wait(0.05)
                    items, sub.items = sub.items, []
                for item in items:
                    if isinstance(item, _FeedEnd):
                        return self._finish(sock, item.how)
                    # Recorded just before it goes: a client may have it
                    # before this thread runs again.
                    rec.frames_sent_at.append(time.monotonic())
                    rec.frames_sent.append(item)
                    sock.sendall(b"%x\r\n%s\r\n" % (len(item), item))
                if not items:
                    upstream._check_peer(sock)
        finally:
            with self._cond:
                self._subs.remove(sub)

    @staticmethod
    def _finish(sock, how):
        if how == "clean":
            sock.sendall(b"0\r\n\r\n")
            return True
        if how == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False


class _FeedConnection:
    def __init__(self):
        self.items = []       # frames (bytes) and at most one _FeedEnd, to send


@dataclasses.dataclass
class _FeedEnd:
    how: str


def feed_reply(feed, status=200, headers=None, delay=0.0):
    """A stream answered from feed (see Feed), with the SSE headers."""
    return Reply(status=status, headers=list(SSE_HEADERS if headers is None else headers), feed=feed,
                 delay=delay)


@dataclasses.dataclass
class Received:
    """One request as the upstream received it."""
    conn: "Connection"
    method: str
    target: str
    version: str
    headers: list           # [(name, value)], names as sent
    body: bytes
    received_at: float
    frames_sent_at: list = dataclasses.field(default_factory=list)  # monotonic time per frame
    frames_sent: list = dataclasses.field(default_factory=list)     # the bytes of each frame, in order
    finished_at: float = None

    @property
    def path(self):
        return self.target

    def header(self, name):
        """The value of the one header called name (any case), or None; a
        header sent twice is an error in these tests."""
        vals = self.header_all(name)
        assert len(vals) <= 1, f"header {name} received {len(vals)} times: {vals}"
        return vals[0] if vals else None

    def header_all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def header_names(self):
        return [n.lower() for n, _ in self.headers]


class Connection:
    def __init__(self, number, peer):
        self.number = number
        self.peer = peer
        self.opened_at = time.monotonic()
        self.closed_at = None
        self.requests = []

    @property
    def open(self):
        return self.closed_at is None


class _PeerGone(Exception):
    pass


class Upstream:
    def __init__(self):
        self.lock = threading.Lock()
        self.replies = {}
        self.health = json_reply(200, b'{"status":"ok"}')
        self.connections = []
        self.received = []
        self._stopping = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(512)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._sockets = set()
        self._thread = threading.Thread(target=self._accept_loop, name="upstream-accept", daemon=True)
        self._thread.start()

    # --- the test's side -------------------------------------------------

    def set(self, flow_id, reply, route=None):
        """Registers the reply for a flow id (all routes, or one route)."""
        with self.lock:
            self.replies[(flow_id, route)] = reply

    def reset(self):
        """Forgets the recorded requests (not the connections' states)."""
        with self.lock:
            self.received = []

    def requests(self, flow_id=None):
        """What came, but the health checks (health_checks() has those):
        the app asks /healthz at start and for readiness, not for a client."""
        with self.lock:
            recs = [r for r in self.received if r.target.partition("?")[0] != "/healthz"]
        if flow_id is None:
            return recs
        return [r for r in recs if f"/v1/flows/{flow_id}/" in r.target]

    def stream_requests(self, flow_id):
        """The GET .../stream requests for flow_id, in the order they came:
        each is one stream the upstream served (a fan-out subscription)."""
        return [r for r in self.requests(flow_id)
                if r.method == "GET" and r.target.partition("?")[0] == f"/v1/flows/{flow_id}/stream"]

    def health_checks(self):
        with self.lock:
            return [r for r in self.received if r.target.partition("?")[0] == "/healthz"]

    def wait_requests(self, flow_id, count=1, timeout=None):
        """Until count requests for flow_id came (default 5 s, scaled)."""
        timeout = scaled(5.0) if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            recs = self.requests(flow_id)
            if len(recs) >= count:
                return recs
            time.sleep(0.01)
        raise AssertionError(f"upstream: {count} request(s) for {flow_id} expected, "
                             f"got {len(self.requests(flow_id))} in {timeout}s")

    def open_connections(self):
        with self.lock:
            return [c for c in self.connections if c.open]

    def wait_closed(self, conn, timeout):
        """Seconds until conn closed, or None when still open after timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if conn.closed_at is not None:
                return conn.closed_at
            time.sleep(0.01)
        return conn.closed_at

    def close(self):
        self._stopping.set()
        try:
            self._listener.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self._sockets)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=2)

    # --- the server's side -----------------------------------------------

    def _accept_loop(self):
        number = 0
        while not self._stopping.is_set():
            try:
                sock, peer = self._listener.accept()
            except OSError:
                return
            number += 1
            conn = Connection(number, peer)
            with self.lock:
                self.connections.append(conn)
                self._sockets.add(sock)
            threading.Thread(target=self._serve, args=(sock, conn), name=f"upstream-conn-{number}",
                             daemon=True).start()

    def _serve(self, sock, conn):
        buf = b""
        try:
            while not self._stopping.is_set():
                head, buf = self._read_head(sock, buf)
                if head is None:
                    return
                rec, buf = self._read_request(sock, conn, head, buf)
                keep = self._answer(sock, rec)
                rec.finished_at = time.monotonic()
                if not keep:
                    return
        except (_PeerGone, OSError):
            return
        finally:
            conn.closed_at = time.monotonic()
            with self.lock:
                self._sockets.discard(sock)
            try:
                sock.close()
            except OSError:
                pass

    def _recv(self, sock, timeout=0.2):
        """recv with a poll, so that stopping the upstream ends every thread."""
        while not self._stopping.is_set():
            r, _, _ = select.select([sock], [], [], timeout)
            if r:
                data = sock.recv(65536)
                if not data:
                    raise _PeerGone()
                return data
        raise _PeerGone()

    def _read_head(self, sock, buf):
        while b"\r\n\r\n" not in buf:
            if len(buf) > MAX_HEAD:
                raise _PeerGone()
            try:
                buf += self._recv(sock)
            except _PeerGone:
                return None, b""
        head, _, rest = buf.partition(b"\r\n\r\n")
        return head, rest

    def _read_request(self, sock, conn, head, buf):
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
        rec = Received(conn=conn, method=method, target=target, version=version, headers=headers, body=b"",
                       received_at=time.monotonic())
        if any(v.lower() == "100-continue" for n, v in headers if n.lower() == "expect"):
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        length = rec.header("Content-Length")
        te = (rec.header("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            body = b""
            while True:
                while b"\r\n" not in buf:
                    buf += self._recv(sock)
                size_line, _, buf = buf.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                while len(buf) < size + 2:
                    buf += self._recv(sock)
                body += buf[:size]
                buf = buf[size + 2:]
                if size == 0:
                    break
            rec.body = body
        elif length is not None:
            n = int(length)
            while len(buf) < n:
                buf += self._recv(sock)
            rec.body, buf = buf[:n], buf[n:]
        conn.requests.append(rec)
        with self.lock:
            self.received.append(rec)
        return rec, buf

    def _lookup(self, target):
        if target.partition("?")[0] == "/healthz":
            return self.health
        m = re.match(r"^/v1/flows/([^/?]*)/([^/?]*)", target)
        with self.lock:
            if m:
                for key in ((m.group(1), m.group(2)), (m.group(1), None)):
                    if key in self.replies:
                        return self.replies[key]
        return json_reply(404, b'{"error":"not found","message":"flow never ingested"}')

    def _wait(self, sock, seconds):
        """Sleeps, but notices the peer closing meanwhile (raises _PeerGone).
        Bytes the peer sends meanwhile (a pipelined request) are not expected."""
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stopping.is_set():
                if self._stopping.is_set():
                    raise _PeerGone()
                return
            r, _, _ = select.select([sock], [], [], min(remaining, 0.2))
            if r:
                data = sock.recv(65536, socket.MSG_PEEK)
                if not data:
                    raise _PeerGone()
                time.sleep(min(remaining, 0.01))

    def _check_peer(self, sock):
        """Raises _PeerGone when the peer closed (or the upstream stops);
        does not wait."""
        if self._stopping.is_set():
            raise _PeerGone()
        r, _, _ = select.select([sock], [], [], 0)
        if r and not sock.recv(1, socket.MSG_PEEK):
            raise _PeerGone()

    def _answer(self, sock, rec):
        reply = self._lookup(rec.target)
        if reply.delay:
            self._wait(sock, reply.delay)
        reason = reply.reason or _REASONS.get(reply.status, "Whatever")
        head = f"HTTP/1.1 {reply.status} {reason}\r\n"
        names = {n.lower() for n, _ in reply.headers}
        for name, value in reply.headers:
            head += f"{name}: {value}\r\n"
        close_after = any("close" in v.lower() for n, v in reply.headers if n.lower() == "connection")

        if reply.feed is not None:
            if "transfer-encoding" not in names:
                head += "Transfer-Encoding: chunked\r\n"
            return reply.feed._serve(self, sock, rec, head.encode("latin-1") + b"\r\n")

        if reply.frames is not None:
            if "transfer-encoding" not in names:
                head += "Transfer-Encoding: chunked\r\n"
            sock.sendall(head.encode("latin-1") + b"\r\n")
            for delay, data in reply.frames:
                if delay:
                    self._wait(sock, delay)
                sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))
                rec.frames_sent_at.append(time.monotonic())
                rec.frames_sent.append(data)
            if reply.end == "clean":
                sock.sendall(b"0\r\n\r\n")
                return not close_after
            if reply.end == "drop":
                return False
            # hold: silent until the client leaves (or the upstream stops)
            while True:
                self._wait(sock, 3600)

        if reply.chunked:
            if "transfer-encoding" not in names:
                head += "Transfer-Encoding: chunked\r\n"
            data = head.encode("latin-1") + b"\r\n"
            for i in range(0, len(reply.body), reply.chunk_size):
                piece = reply.body[i:i + reply.chunk_size]
                data += b"%x\r\n%s\r\n" % (len(piece), piece)
            data += b"0\r\n\r\n"
        else:
            if "content-length" not in names:
                head += f"Content-Length: {len(reply.body)}\r\n"
            data = head.encode("latin-1") + b"\r\n" + reply.body
        sock.sendall(data)
        return not close_after


_REASONS = {200: "OK", 202: "Accepted", 204: "No Content", 304: "Not Modified", 400: "Bad Request",
            401: "Unauthorized", 404: "Not Found", 409: "Conflict", 500: "Internal Server Error",
            503: "Service Unavailable"}


class RefusingPort:
    """A port on 127.0.0.1 where nothing listens: bound but never listening,
    so no one else takes it while the test runs and connect() is refused."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self):
        self.sock.close()


class HoldingUpstream:
    """A stand-in flow server for many streams at once: one thread over
    epoll (selectors) instead of a thread per connection, and no select()
    (which cannot watch a descriptor above 1024). Every request on every
    connection gets the same answer, a 200 stream whose first chunk is
    frame, and then silence until the peer closes. It counts connections
    opened and closed, and the request targets it answered. A health check
    (GET /healthz, the app's at start and its readiness) is answered "ok"
    and closed, and counted in health_checks only."""

    def __init__(self, frame, headers=None):
        head = "HTTP/1.1 200 OK\r\n" + "".join(f"{n}: {v}\r\n" for n, v in (headers or SSE_HEADERS))
        head += "Transfer-Encoding: chunked\r\n\r\n"
        self.answer = head.encode("latin-1") + b"%x\r\n%s\r\n" % (len(frame), frame)
        self.lock = threading.Lock()
        self.opened = 0
        self.closed = 0
        self.health_checks = 0
        self.targets = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(4096)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, None)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="holding-upstream", daemon=True)
        self._thread.start()

    @property
    def open_count(self):
        with self.lock:
            return self.opened - self.closed

    def _loop(self):
        while not self._stopping.is_set():
            for key, _ in self._sel.select(timeout=0.2):
                if key.data is None:
                    self._accept()
                else:
                    self._read(key.fileobj, key.data)

    def _accept(self):
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, OSError):
                return
            sock.setblocking(False)
            with self.lock:
                self.opened += 1
            self._sel.register(sock, selectors.EVENT_READ, {"buf": b""})

    def _read(self, sock, state):
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._sel.unregister(sock)
            sock.close()
            with self.lock:
                self.closed += 1
            return
        state["buf"] += data
        while b"\r\n\r\n" in state["buf"]:
            head, _, state["buf"] = state["buf"].partition(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode("latin-1")
            if target == "/healthz":
                self._answer_health(sock)
                return
            with self.lock:
                self.targets.append(target)
            try:
                sock.send(self.answer)   # a few hundred bytes: the socket's buffer takes them
            except OSError:
                pass

    def _answer_health(self, sock):
        try:
            sock.send(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        except OSError:
            pass
        self._sel.unregister(sock)
        sock.close()
        with self.lock:
            self.opened -= 1
            self.health_checks += 1

    def close(self):
        self._stopping.set()
        self._thread.join(timeout=2)
        for key in list(self._sel.get_map().values()):
            key.fileobj.close()
        self._sel.close()
