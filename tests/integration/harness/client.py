"""client.py: a raw-socket HTTP/1.1 client, so a test sends exactly the
request line it means (lighttpd sees "//" and "%2D" as written) and times
each byte of a streamed response as it arrives."""
import base64
import json
import select
import selectors
import socket
import time

from .timing import scaled


def basic_auth(user, password):
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return ("Authorization", f"Basic {token}")


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # [(name, value)] in order, names as sent
        self.body = body

    def header(self, name):
        vals = self.header_all(name)
        assert len(vals) <= 1, f"response header {name} sent {len(vals)} times: {vals}"
        return vals[0] if vals else None

    def header_all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def header_names(self):
        return [n.lower() for n, _ in self.headers]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.headers} {self.body[:300]!r}>"


def _request_bytes(method, target, headers, body, port, close=True):
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    names = {n.lower() for n, _ in headers}
    for name, value in headers:
        lines.append(f"{name}: {value}")
    if body is not None and "content-length" not in names:
        lines.append(f"Content-Length: {len(body)}")
    if close and "connection" not in names:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def _parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    _, status, *reason = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name, value.strip()))
    return int(status), (reason[0] if reason else ""), headers


class Stream:
    """A streamed response read as it arrives. events() splits the body
    into SSE blocks (text up to a blank line) with the monotonic time at
    which each block was complete."""

    def __init__(self, port, target, headers=(), method="GET", timeout=None):
        """timeout: for the connection and the head (default 5 s, scaled)."""
        timeout = scaled(5.0) if timeout is None else timeout
        self.port = port
        self.sent_at = time.monotonic()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.sendall(_request_bytes(method, target, list(headers), None, port))
        self.raw = b""            # bytes after the head, still chunk-encoded
        self.body = b""           # decoded body so far
        self.arrivals = []        # (time, decoded bytes) per socket read
        self.eof = False          # the response (or the connection) ended
        self.ended_at = None      # monotonic time at which eof was seen
        self.complete = False     # ended with the terminating chunk / length
        self.status = None
        self.headers = None
        self.head_at = None
        self._chunked = False
        self._length = None
        self._read_head(timeout)

    def header(self, name):
        vals = [v for n, v in self.headers if n.lower() == name.lower()]
        return vals[0] if vals else None

    def _read_head(self, timeout):
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in buf:
            if not self._wait_readable(deadline):
                raise TimeoutError(f"no response head within {timeout}s: {buf!r}")
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError(f"connection closed before the head: {buf!r}")
            buf += data
        self.head_at = time.monotonic()
        head, _, rest = buf.partition(b"\r\n\r\n")
        self.status, self.reason, self.headers = _parse_head(head)
        te = (self.header("Transfer-Encoding") or "").lower()
        self._chunked = "chunked" in te
        length = self.header("Content-Length")
        self._length = int(length) if length is not None else None
        if rest:
            self._feed(rest)

    def _wait_readable(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        r, _, _ = select.select([self.sock], [], [], remaining)
        return bool(r)

    def _feed(self, data):
        now = time.monotonic()
        self.raw += data
        before = len(self.body)
        if self._chunked:
            self._decode_chunks()
        else:
            self.body += data
            self.raw = b""
            if self._length is not None and len(self.body) >= self._length:
                self.eof = self.complete = True
                self.ended_at = now
        if len(self.body) > before:
            self.arrivals.append((now, self.body[before:]))

    def _decode_chunks(self):
        while True:
            line_end = self.raw.find(b"\r\n")
            if line_end < 0:
                return
            size = int(self.raw[:line_end].split(b";")[0], 16)
            if size == 0:
                if self.raw.find(b"\r\n\r\n", line_end) >= 0 or self.raw[line_end:line_end + 4] == b"\r\n\r\n":
                    self.eof = self.complete = True
                    self.ended_at = time.monotonic()
                    self.raw = b""
                return
            if len(self.raw) < line_end + 2 + size + 2:
                return
            self.body += self.raw[line_end + 2:line_end + 2 + size]
            self.raw = self.raw[line_end + 2 + size + 2:]

    def read_for(self, seconds):
        """Reads whatever arrives for `seconds` (less if the response ends)."""
        deadline = time.monotonic() + seconds
        while not self.eof and self._wait_readable(deadline):
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                data = b""
            if not data:
                self.eof = True
                self.ended_at = time.monotonic()
                break
            self._feed(data)

    def read_until(self, predicate, timeout):
        """Reads until predicate(self) holds or the response ends; returns
        whether it holds."""
        deadline = time.monotonic() + timeout
        while not predicate(self) and not self.eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.read_for(min(remaining, 0.05))
        return predicate(self)

    def wait_eof(self, timeout):
        self.read_until(lambda s: s.eof, timeout)
        return self.eof

    def events(self):
        """[(time_complete, block_bytes)] for each block ending in a blank
        line, in order; comments (": keepalive") are blocks too."""
        out = []
        pending = b""
        for t, data in self.arrivals:
            pending += data
            while b"\n\n" in pending:
                block, _, pending = pending.partition(b"\n\n")
                out.append((t, block + b"\n\n"))
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def read_streams(streams, until, timeout):
    """Reads many Streams at once, each read timestamped as in Stream (one
    epoll, no select(): descriptors may pass 1024), until until(stream)
    holds or the stream ended, for each one, or timeout passes. until is
    called after every read: keep it cheap. Returns the streams for which
    until(stream) does not hold."""
    sel = selectors.DefaultSelector()
    try:
        for s in streams:
            if not s.eof and not until(s):
                sel.register(s.sock, selectors.EVENT_READ, s)
        deadline = time.monotonic() + timeout
        while sel.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for key, _ in sel.select(timeout=min(remaining, 0.1)):
                s = key.data
                try:
                    data = s.sock.recv(65536)
                except (TimeoutError, BlockingIOError):
                    continue
                except ConnectionResetError:
                    data = b""
                if data:
                    s._feed(data)
                else:
                    s.eof = True
                    s.ended_at = time.monotonic()
                if s.eof or until(s):
                    sel.unregister(s.sock)
    finally:
        sel.close()
    return [s for s in streams if not until(s)]


def request(port, method, target, headers=(), body=None, timeout=None):
    """One request on its own connection (Connection: close); reads the
    whole response within timeout (default 10 s, scaled)."""
    timeout = scaled(10.0) if timeout is None else timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(_request_bytes(method, target, list(headers), body, port))
        buf = b""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{method} {target}: no complete response in {timeout}s: {buf[:500]!r}")
            sock.settimeout(remaining)
            try:
                data = sock.recv(1 << 20)
            except ConnectionResetError:
                data = b""
            if not data:
                break
            buf += data
    head, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep:
        raise ConnectionError(f"{method} {target}: incomplete response head: {buf[:500]!r}")
    status, reason, headers_out = _parse_head(head)
    te = ""
    for n, v in headers_out:
        if n.lower() == "transfer-encoding":
            te = v.lower()
    if "chunked" in te:
        body_out = b""
        while True:
            line, _, rest = rest.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            if size == 0:
                break
            body_out += rest[:size]
            rest = rest[size + 2:]
    else:
        body_out = rest
        for n, v in headers_out:
            if n.lower() == "content-length":
                assert len(rest) == int(v), f"body length {len(rest)} != Content-Length {v}"
    return Response(status, reason, headers_out, body_out)
