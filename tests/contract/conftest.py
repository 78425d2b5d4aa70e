"""Fixtures for the flow server's contract tests: the server under test, a
small HTTP client, an incremental Server-Sent Events reader over a raw socket
(it decodes chunked transfer encoding itself, so every byte on the wire is
seen), and the message builders the test files share.

The suite runs against any flow server. With FLOW_SERVER_URL=http://host:port
the session's `server` is that running server and nothing is started; the
tests marked `devserver` (they need our own process or its flags) or
`difference` (they check one of the devserver's deliberate differences from
the reference, docs/openova-flow-api.md and the issue 17 spec) are then
deselected, never skipped, so what runs is exactly what any flow server that
behaves like the reference must pass:

    make contract FLOW_SERVER_URL=http://127.0.0.1:8080

Without it, the built openova-flow-devserver is started in its default mode
on a free port (FLOW_SERVER_LISTEN_ADDR port 0, the bound address read from
its first log line). The binary is OPENOVA_FLOW_DEVSERVER_BIN, default
build/openova-flow-devserver (`make build/openova-flow-devserver`). Against
the AddressSanitizer build:

    make BUILD=build/asan OPT="-O1 -g" \
        SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" \
        build/asan/openova-flow-devserver
    OPENOVA_FLOW_DEVSERVER_BIN=build/asan/openova-flow-devserver \
        /usr/bin/python3 -m pytest -q tests/contract
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("OPENOVA_FLOW_DEVSERVER_BIN", REPO / "build" / "openova-flow-devserver"))
if not BINARY.is_absolute():
    BINARY = REPO / BINARY

# An external server under test (http://host:port), or None: start our own.
EXTERNAL_URL = os.environ.get("FLOW_SERVER_URL") or None

# The session devserver: a ring small enough to overflow and a heartbeat
# short enough to observe. An external server is taken as configured like
# the reference: its 15 s heartbeat (the tests that need a small ring are
# marked devserver and do not run against it).
RING = 16
HEARTBEAT_S = 15.0 if EXTERNAL_URL else 0.3

# The two markers, registered so that pytest knows them (no unknown-mark
# warning, and --strict-markers catches a typo); the external run drops them.
MARKERS = {
    "devserver": "needs our own devserver process or its flags (command line, environment, log lines, "
                 "signals, --replay, --strict, --max-body, a small ring); deselected with FLOW_SERVER_URL",
    "difference": "checks one of the devserver's deliberate differences from the reference flow server; "
                  "deselected with FLOW_SERVER_URL",
}


def pytest_configure(config):
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


def pytest_collection_modifyitems(config, items):
    """Against an external server, the marked tests are deselected: they say
    nothing about that server, and a skip would read as a gap in its run."""
    if not EXTERNAL_URL:
        return
    here = Path(__file__).resolve().parent
    keep, drop = [], []
    for item in items:
        ours = here in Path(item.path).resolve().parents
        marked = any(item.get_closest_marker(name) for name in MARKERS)
        (drop if ours and marked else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_report_header(config):
    if EXTERNAL_URL:
        return [f"flow server under test: {EXTERNAL_URL} (devserver and difference tests deselected)"]
    return [f"flow server under test: {BINARY} (started per session)"]


# -- messages -------------------------------------------------------------------

# Well-formed messages (every required field, nothing empty): re-encoding
# gives back the same values, so a fold can be compared as parsed JSON.

def node(id_, flow="f", status="running", **extra):
    return {"id": id_, "flowId": flow, "label": id_.upper(), "status": status, **extra}


def rel(a, b, type_="finish-to-start", **extra):
    return {"fromId": a, "toId": b, "type": type_, **extra}


FLOW = {"id": "f", "status": "running", "startedAt": 1715400000000}


def canon(snapshot):
    """A parsed snapshot with its lists in key order: the reference's node
    order may differ from one request to the next."""
    out = dict(snapshot)
    if "nodes" in out:
        out["nodes"] = sorted(out["nodes"], key=lambda n: (n.get("flowId", ""), n.get("id", "")))
    if "relationships" in out:
        out["relationships"] = sorted(out["relationships"],
                                      key=lambda r: (r.get("fromId", ""), r.get("toId", ""), r.get("type", "")))
    return out


def assert_text_error(status, headers, body, expected):
    """An error answer: the status, one line of text/plain (Go's http.Error)."""
    assert status == expected, body[:300]
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert headers.get("x-content-type-options") == "nosniff"
    assert body.endswith(b"\n") and body.count(b"\n") == 1 and len(body) > 1, body


# -- servers --------------------------------------------------------------------

class FlowServer:
    """A flow server at host:port, spoken to over plain HTTP/1.1."""

    def __init__(self, host, port, heartbeat=HEARTBEAT_S):
        self.host, self.port = host, port
        self.heartbeat = heartbeat  # seconds between heartbeat frames

    def connection(self, timeout=10):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, conn=None):
        """One request; returns (status, headers as a lowercase dict, body bytes)."""
        own = conn is None
        conn = conn or self.connection()
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
            hdrs = dict(headers or {})
            if body is not None and "Content-Type" not in hdrs:
                hdrs["Content-Type"] = "application/json"
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            if own:
                conn.close()

    def post(self, flow, message, conn=None):
        return self.request("POST", f"/v1/flows/{flow}/events", message, conn=conn)

    def post_ok(self, flow, message, conn=None):
        status, _, body = self.post(flow, message, conn=conn)
        assert status == 200, body[:300]
        return json.loads(body)["seq"]

    def snapshot(self, flow):
        return self.request("GET", f"/v1/flows/{flow}/snapshot")

    def snapshot_json(self, flow):
        status, _, body = self.snapshot(flow)
        assert status == 200, body
        return json.loads(body)

    def purge(self, flow):
        return self.request("DELETE", f"/v1/flows/{flow}")

    def stream(self, flow, last_event_id=None, rcvbuf=None):
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        return SSEStream(self.host, self.port, f"/v1/flows/{flow}/stream", headers, rcvbuf=rcvbuf)


class DevServer(FlowServer):
    """One running openova-flow-devserver; stop() returns its exit status."""

    def __init__(self, env=None, args=()):
        require_binary()
        self.logfile = tempfile.NamedTemporaryFile(prefix="devserver-", suffix=".log", delete=False)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("FLOW_SERVER_")}
        full_env["FLOW_SERVER_LISTEN_ADDR"] = "127.0.0.1:0"
        full_env.update(env or {})
        heartbeat = parse_duration(full_env.get("FLOW_SERVER_HEARTBEAT", "15s"))
        # stderr to a file, not a pipe: thousands of requests log more than a pipe holds
        self.proc = subprocess.Popen([str(BINARY), *args], stdout=subprocess.DEVNULL, stderr=self.logfile,
                                     env=full_env)
        deadline = time.monotonic() + 15
        host, port = None, None
        while time.monotonic() < deadline:
            m = re.search(r"listening on http://([0-9.]+):(\d+)", self.log())
            if m:
                host, port = m.group(1), int(m.group(2))
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        super().__init__(host, port, heartbeat)
        if port is None:
            self.stop()
            raise AssertionError(f"devserver {' '.join(args)} did not start:\n{self.log()}")

    def log(self):
        return Path(self.logfile.name).read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def close(self):
        self.stop()
        self.logfile.close()
        os.unlink(self.logfile.name)


def parse_duration(text):
    """Seconds of the Go durations the tests give (300ms, 15s, 1h)."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", text)
    assert m, f"test duration {text!r}"
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


# -- the SSE reader --------------------------------------------------------------

class Frame:
    def __init__(self, raw):
        self.raw = raw
        self.event, self.id, data = None, None, []
        for line in raw.decode().split("\n"):
            if not line:
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                self.event = value
            elif name == "id":
                self.id = value
            elif name == "data":
                data.append(value)
        self.data = "\n".join(data)

    def json(self):
        return json.loads(self.data)

    @property
    def tag(self):
        return f"{self.event}:{self.id if self.id is not None else ''}"

    def __repr__(self):
        return f"Frame({self.raw!r})"


class SSEStream:
    """GET an SSE path over a raw socket (plain HTTP/1.1); frames are read as
    they arrive. After the end, `terminated` tells a chunked body closed by
    its last chunk from a connection cut short."""

    def __init__(self, host, port, path, headers=None, rcvbuf=None, timeout=10):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # before connect, so the advertised window stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.wire = bytearray()   # bytes received, not yet decoded
        self.body = bytearray()   # decoded body, not yet taken as frames
        self.eof = False          # the response (or the connection) ended
        self.terminated = False   # ... by the last chunk (a clean end)
        self.chunk_left = None    # bytes left in the current chunk; None: expect a size line
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.wire:
            if not self._recv(deadline):
                raise AssertionError(f"no response head: {bytes(self.wire)!r}")
        head, _, rest = bytes(self.wire).partition(b"\r\n\r\n")
        self.wire = bytearray(rest)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for line in header_lines:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"

    def _recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data in time")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no data in time") from None
        except ConnectionResetError:
            data = b""
        if not data:
            return False
        self.wire += data
        return True

    def _decode(self):
        """Moves whole chunks' data from wire to body; sets eof at the last chunk."""
        if self.eof:
            return  # what follows the last chunk (trailers) is not body
        if not self.chunked:
            self.body += self.wire
            self.wire.clear()
            return
        while True:
            if self.chunk_left is None:
                end = self.wire.find(b"\r\n")
                if end < 0:
                    return
                size = int(bytes(self.wire[:end]).split(b";")[0], 16)
                del self.wire[:end + 2]
                if size == 0:
                    self.eof = self.terminated = True  # trailers, if any, are ignored
                    return
                self.chunk_left = size
            if len(self.wire) < self.chunk_left + 2:
                # take what is there; the chunk's CRLF comes later
                take = min(len(self.wire), self.chunk_left)
                self.body += self.wire[:take]
                del self.wire[:take]
                self.chunk_left -= take
                if self.chunk_left == 0 and len(self.wire) >= 2:
                    assert self.wire[:2] == b"\r\n"
                    del self.wire[:2]
                    self.chunk_left = None
                    continue
                return
            self.body += self.wire[:self.chunk_left]
            assert self.wire[self.chunk_left:self.chunk_left + 2] == b"\r\n", bytes(self.wire[:64])
            del self.wire[:self.chunk_left + 2]
            self.chunk_left = None

    def next_frame(self, timeout=5.0):
        """The next whole frame, or None when the stream ended first.
        TimeoutError when nothing complete arrives in time."""
        deadline = time.monotonic() + timeout
        while True:
            self._decode()
            end = self.body.find(b"\n\n")
            if end >= 0:
                raw = bytes(self.body[:end + 2])
                del self.body[:end + 2]
                return Frame(raw)
            if self.eof:
                return None
            if not self._recv(deadline):
                self.eof = True

    def next_non_heartbeat(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            f = self.next_frame(max(0.001, deadline - time.monotonic()))
            if f is None or f.event != "heartbeat":
                return f

    def until_end(self, timeout=5.0):
        """Every frame left until the stream ends; TimeoutError when it does
        not end in time (heartbeats alone would keep a read going)."""
        deadline = time.monotonic() + timeout
        frames = []
        while (f := self.next_frame(max(0.001, deadline - time.monotonic()))) is not None:
            frames.append(f)
        return frames

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -- fixtures -------------------------------------------------------------------

def require_binary():
    assert os.access(BINARY, os.X_OK), (
        f"{BINARY} missing: run `make build/openova-flow-devserver` "
        "(or set OPENOVA_FLOW_DEVSERVER_BIN, or FLOW_SERVER_URL for a running server)")


def external_server():
    url = urllib.parse.urlsplit(EXTERNAL_URL)
    # the SSE reader speaks plain HTTP on a raw socket
    if url.scheme != "http" or not url.hostname or url.path not in ("", "/"):
        raise pytest.UsageError(f"FLOW_SERVER_URL must be http://host:port, got {EXTERNAL_URL!r}")
    s = FlowServer(url.hostname, url.port or 80)
    try:
        status, _, body = s.request("GET", "/healthz")
    except OSError as e:
        raise pytest.UsageError(f"FLOW_SERVER_URL {EXTERNAL_URL}: {e}") from None
    assert status == 200, f"{EXTERNAL_URL}/healthz answered {status}: {body[:200]!r}"
    return s


@pytest.fixture(scope="session")
def server():
    if EXTERNAL_URL:
        yield external_server()
        return
    s = DevServer({"FLOW_SERVER_RING_CAPACITY": str(RING), "FLOW_SERVER_HEARTBEAT": f"{int(HEARTBEAT_S * 1000)}ms"})
    yield s
    status = s.stop()
    log = s.log()
    s.close()
    assert status == 0, f"devserver exited {status}:\n{log[-4000:]}"


@pytest.fixture(scope="session")
def heartbeat(server):
    """Seconds between the session server's heartbeat frames."""
    return server.heartbeat


@pytest.fixture
def start_server():
    """Starts extra devservers, start(env=None, args=()), each with only the
    environment given (plus a free port); stops them after and fails the
    test when one does not exit 0. For devserver-marked tests only."""
    started = []

    def start(env=None, args=()):
        s = DevServer(env, args)
        started.append(s)
        return s

    yield start
    failed = []
    for s in started:
        status = s.stop()
        if status != 0:  # a sanitizer's report at exit shows up here
            failed.append(f"exit {status}:\n{s.log()[-4000:]}")
        s.close()
    assert not failed, "\n".join(failed)


@pytest.fixture
def flow_id():
    return f"t-{uuid.uuid4().hex[:16]}"
