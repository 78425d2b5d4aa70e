"""Fault drills (issue 13) as tests: what a client, the web server and the
app do when a part of the chain dies or misbehaves, and that the chain
serves again afterwards without anyone restarting the parts that did not
fail.

- The flow server (the real devserver process) is SIGKILLed with streams
  open: every client's response is cut (not ended cleanly), within a bound,
  through lighttpd and nginx; while it is down the app answers its own 502;
  started again on the same port, snapshots, events and streams work
  through the same web server and the same app process.
- The flow server goes silent but keeps its socket: after
  OPENOVA_FLOW_UPSTREAM_IDLE the stream is cut the same way and the app
  closes the upstream connection.
- lighttpd stopped (SIGTERM to lighttpd alone) with streams open and started
  again from the same config on the same port: the clients' connections
  end, lighttpd stops the app it spawned (no app left holding descriptors),
  and the new lighttpd's new app serves.
- The app SIGKILLed: under lighttpd (which spawns a new one at once), under
  spawn-fcgi and under socket activation behind nginx (502 from nginx until
  the supervisor starts it again), and with the socket kept by systemd (the
  request waits in the socket's backlog and the next app answers it).
  nginx ends a stream whose app was SIGKILLed *cleanly*: see that test.
- 1,000 streams through nginx whose clients all reset their connections:
  the app's descriptors and memory come back, and the flow server sees
  every one of its 1,000 connections closed.

Each test starts its own web server and app (and the flow server it
kills) rather than the session's shared instances, which a drill would
break, and stops them at its end."""
import concurrent.futures
import grp
import os
import resource
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from harness import client, launchers, servers, wrapper
from harness.checks import assert_proxy_error, open_fds, rss_kib, wait_for
from harness.devserver import BINARY as DEVSERVER_BIN, DevServer, frame_ids, node_message
from harness.timing import scaled
from harness.upstream import HoldingUpstream, json_reply, stream_reply

BASE = "/api/v1/flows"
JSON = [("Content-Type", "application/json")]
WEB = {"lighttpd": servers.Lighttpd, "nginx": servers.Nginx}


def frame(n):
    return f'id: {n}\ndata: {{"seq":{n}}}\n\n'.encode()


@pytest.fixture
def started():
    """start(obj, ...): obj.start(...) now and obj.stop() at the end of the
    test (also when start fails), last started first."""
    objs = []

    def start(obj, *args, **kw):
        objs.append(obj)
        obj.start(*args, **kw)
        return obj
    yield start
    for obj in reversed(objs):
        obj.stop()


def post(server, flow, node):
    return client.request(server.port, "POST", f"{BASE}/{flow}/events", server.auth_headers() + JSON,
                          body=node_message(flow, node))


def holds_nothing(pid):
    """The process is gone, or a zombie that holds no descriptors (an
    orphan waits for PID 1 to reap it, which here takes a while)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state in ("Z", "X") and not os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return True


def apps_with_env(name, value):
    """Pids of live app processes whose environment has name=value (the
    processes a given lighttpd spawned carry its OPENOVA_LIGHTTPD_RUNDIR)."""
    want = f"{name}={value}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or holds_nothing(int(entry)):
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if want in env and wrapper.is_app(int(entry)):
            pids.append(int(entry))
    return sorted(pids)


def log_lines(server, needle):
    return [line for line in server.app_log().splitlines() if needle in line]


# ---- 1. the flow server killed mid-stream, then started again ----

@pytest.mark.parametrize("web", list(WEB))
def test_upstream_killed_mid_stream_then_restarted(web, started, fid, tmp_path):
    """The devserver (a real process, unlike the in-process test upstream)
    is SIGKILLed while three clients read a stream through the web server:
    the kernel closes its sockets mid-body, libcurl reports the transfer
    cut, and the app cuts each client's response (no terminating chunk) so
    that neither the web server nor the browser takes it for a finished
    stream. While it is down the app answers 502 itself. The devserver is
    started again on the same port (its state, memory only, is gone):
    events, snapshots and a stream reconnecting with Last-Event-ID work
    through the same web server and the same app process, which only
    needed new upstream connections."""
    assert os.access(DEVSERVER_BIN, os.X_OK), f"{DEVSERVER_BIN} missing: run `make`"
    ds = started(DevServer(tmp_path / "devserver"))
    server = started(WEB[web]({"OPENOVA_FLOW_SERVER_URL": ds.url, "OPENOVA_FLOW_KEEPALIVE": "0"}, tmp_path / web))
    (pid,) = server.app_pids()
    flow = fid()
    resp = post(server, flow, "a")
    assert (resp.status, resp.json()) == (200, {"seq": 1}), resp
    streams = []
    try:
        for _ in range(3):
            streams.append(client.Stream(server.port, f"{BASE}/{flow}/stream", server.auth_headers()))
        for s in streams:
            assert s.status == 200, s.headers
            assert s.read_until(lambda st: frame_ids(st.body) == [1], scaled(5)), s.body
        assert post(server, flow, "b").status == 200
        for s in streams:
            assert s.read_until(lambda st: frame_ids(st.body) == [1, 2], scaled(5)), s.body

        ds.kill()
        killed = time.monotonic()
        for s in streams:
            assert s.wait_eof(max(0.1, killed + scaled(2) - time.monotonic())), \
                f"stream still open {scaled(2)} s after the flow server died: {s.body!r}"
            assert not s.complete, "a stream whose flow server died must not end cleanly"
            assert s.body.endswith(b"\n\n") and frame_ids(s.body) == [1, 2], s.body
        assert wait_for(lambda: len([line for line in log_lines(server, f"route=stream id={flow} ")
                                     if "error=upstream_unavailable" in line]) == 3, scaled(2)), \
            server.app_log()[-3000:]

        # Down: the app says so itself, for every route.
        assert_proxy_error(client.request(server.port, "GET", f"{BASE}/{flow}/snapshot", server.auth_headers()),
                           502)
        assert_proxy_error(client.request(server.port, "GET", f"{BASE}/{flow}/stream", server.auth_headers()), 502)
        assert_proxy_error(post(server, flow, "lost"), 502)

        ds.start()   # same port, empty state
        resp = post(server, flow, "c")
        assert (resp.status, resp.json()) == (200, {"seq": 1}), resp
        resp = client.request(server.port, "GET", f"{BASE}/{flow}/snapshot", server.auth_headers())
        assert resp.status == 200, resp
        assert [n["id"] for n in resp.json()["nodes"]] == ["c"], resp.body
        # What an EventSource sends when it reconnects: the last id it saw,
        # which the new flow server never issued, so it resynchronizes the
        # client with a snapshot frame.
        s = client.Stream(server.port, f"{BASE}/{flow}/stream", server.auth_headers() + [("Last-Event-ID", "2")])
        streams.append(s)
        assert s.status == 200, s.headers
        assert s.read_until(lambda st: frame_ids(st.body) == [1], scaled(5)), s.body
        assert s.body.startswith(b"event: snapshot\n") and b'"id":"c"' in s.body, s.body
        assert post(server, flow, "d").status == 200
        assert s.read_until(lambda st: frame_ids(st.body) == [1, 2], scaled(5)), s.body
        assert b'"id":"d"' in s.body
        assert server.app_pids() == [pid], "the app was restarted; only the flow server should have been"
    finally:
        for s in streams:
            s.close()


# ---- 2. the flow server goes silent, its socket open ----

IDLE = 1.0   # OPENOVA_FLOW_UPSTREAM_IDLE, seconds
# The upstream notes a frame's time after its send returns, and the app
# counts whole milliseconds: the cut may come that little before IDLE.
EARLY = 0.05


@pytest.mark.parametrize("web", list(WEB))
def test_silent_upstream_is_cut(web, started, upstream, fid, tmp_path):
    """The upstream sends the head and one frame, then nothing, its socket
    open (a flow server hung, or a host gone without a FIN): after
    OPENOVA_FLOW_UPSTREAM_IDLE (plus at most one 250 ms tick of the stream
    loop) the app cuts the client's stream like a crashed one, so the
    browser reconnects, and closes the upstream connection itself."""
    server = started(WEB[web]({"OPENOVA_FLOW_SERVER_URL": upstream.url, "OPENOVA_FLOW_KEEPALIVE": "0",
                               "OPENOVA_FLOW_UPSTREAM_IDLE": f"{int(IDLE * 1000)}ms"}, tmp_path / web))
    flow = fid()
    upstream.set(flow, stream_reply([(0, frame(1))], end="hold"))
    s = client.Stream(server.port, f"{BASE}/{flow}/stream", server.auth_headers())
    try:
        assert s.status == 200
        assert s.read_until(lambda st: st.body == frame(1), scaled(5)), s.body
        (rec,) = upstream.requests(flow)
        # The client may read the frame before the upstream's thread notes it.
        assert wait_for(lambda: rec.frames_sent_at, scaled(1))
        silent_from = rec.frames_sent_at[0]
        assert s.wait_eof(IDLE + scaled(2)), f"stream still open {IDLE + scaled(2)} s into the silence"
        took = time.monotonic() - silent_from
        assert not s.complete, "a silent upstream must not look like a finished stream"
        assert s.body == frame(1)
        assert IDLE - EARLY <= took < IDLE + scaled(2), took
        closed = upstream.wait_closed(rec.conn, scaled(2))
        assert closed is not None, "the app left the silent upstream connection open"
        assert closed - silent_from >= IDLE - EARLY
        assert wait_for(lambda: any("end=upstream-idle" in line for line in log_lines(server, f"id={flow} ")),
                        scaled(2)), server.app_log()[-2000:]
    finally:
        s.close()


# ---- 3. lighttpd restarted with streams open ----

def test_lighttpd_restarted_with_streams_open(started, upstream, fid, tmp_path):
    """SIGTERM to lighttpd alone (what `kill`, `systemctl stop` or a package
    upgrade sends it) while three streams are open. SIGTERM is lighttpd's
    immediate shutdown: it drops its client connections mid-response (no
    terminating chunk: the browsers reconnect) and its FastCGI connections,
    and sends SIGTERM to the app it spawned, which logs each stream's end
    (in every run so far end=client-gone: lighttpd had closed them first),
    closes the upstream connections, stops (msg=stopped) and exits,
    leaving no process that holds a descriptor. lighttpd started again from the same
    config on the same port spawns a new app on the same socket path, which
    serves snapshots and streams."""
    rundir = tmp_path / "lighttpd"
    server = started(servers.Lighttpd({"OPENOVA_FLOW_SERVER_URL": upstream.url, "OPENOVA_FLOW_KEEPALIVE": "0"},
                                      rundir))
    (old_app,) = server.app_pids()
    port = server.port
    flow = fid()
    upstream.set(flow, stream_reply([(0, frame(1))], end="hold"))
    streams = [client.Stream(server.port, f"{BASE}/{flow}/stream", server.auth_headers()) for _ in range(3)]
    try:
        for s in streams:
            assert s.status == 200
            assert s.read_until(lambda st: st.body == frame(1), scaled(5)), s.body
        recs = upstream.requests(flow)
        assert len(recs) == 3

        server.proc.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        for s in streams:
            assert s.wait_eof(max(0.1, stopped + scaled(5) - time.monotonic())), s.body
            assert not s.complete, "lighttpd's SIGTERM is an immediate stop: responses are cut"
        server.proc.wait(timeout=scaled(5))
        for rec in recs:
            assert upstream.wait_closed(rec.conn, scaled(5)) is not None, "an upstream stream outlived the app"
        assert wait_for(lambda: holds_nothing(old_app), scaled(5)), \
            f"the app lighttpd spawned outlived it: {sorted(os.listdir(f'/proc/{old_app}/fd'))}"
        assert wait_for(lambda: 'msg=stopped' in server.app_log(), scaled(2)), server.logs()
        assert len(log_lines(server, f"route=stream id={flow} ")) == 6, server.app_log()  # each opened, each ended
        assert apps_with_env("OPENOVA_LIGHTTPD_RUNDIR", str(rundir)) == []
    finally:
        for s in streams:
            s.close()

    server.start(port=port)
    assert server.port == port
    (new_app,) = server.app_pids()
    assert new_app != old_app
    assert apps_with_env("OPENOVA_LIGHTTPD_RUNDIR", str(rundir)) == [new_app]
    snap = fid("after")
    upstream.set(snap, json_reply(200, b'{"fresh":true}'))
    resp = client.request(port, "GET", f"{BASE}/{snap}/snapshot", server.auth_headers())
    assert (resp.status, resp.body) == (200, b'{"fresh":true}'), resp
    again = fid("again")
    upstream.set(again, stream_reply([(0, frame(7))], end="clean"))
    s = client.Stream(port, f"{BASE}/{again}/stream", server.auth_headers())
    try:
        assert s.wait_eof(scaled(5)) and s.complete, s.body
        assert (s.status, s.body) == (200, frame(7))
    finally:
        s.close()


# ---- 4. the app SIGKILLed ----

def test_app_killed_under_lighttpd(started, upstream, fid, tmp_path):
    """lighttpd spawned the app and spawns a new one by itself: the open
    stream is cut (lighttpd drops a client whose backend died
    mid-response), the upstream connection dies with the app, and snapshots
    are served by a new app within a bound. Which request gets there first
    decides what clients see meanwhile. Most often the next request finds
    the dead app's socket refusing ("connect ... Connection refused" in
    lighttpd's error.log): lighttpd spawns a new app at once and hands it
    that request, so no client sees an error. When lighttpd reaps the
    child first ("child signalled: 9"), it marks the backend down and
    answers its own 503 to every request ("all handlers for ... are down")
    until its once-a-second maintenance spawns the new app: 1.5 to 2.6 s
    of 503s, in about one run in ten (conf/lighttpd keeps fastcgi's
    default disable-time, 1 s, and max-procs 1: no second app to fall back
    on). A request the dying app had already accepted gets lighttpd's 500
    ("response not received, request sent"), seen when a request races the
    kill itself."""
    server = started(servers.Lighttpd({"OPENOVA_FLOW_SERVER_URL": upstream.url, "OPENOVA_FLOW_KEEPALIVE": "0"},
                                      tmp_path / "lighttpd"))
    (old_app,) = server.app_pids()
    flow = fid()
    upstream.set(flow, stream_reply([(0, frame(1))], end="hold"))
    s = client.Stream(server.port, f"{BASE}/{flow}/stream", server.auth_headers())
    try:
        assert s.read_until(lambda st: st.body == frame(1), scaled(5)), s.body
        (rec,) = upstream.requests(flow)
        os.kill(old_app, signal.SIGKILL)
        killed = time.monotonic()
        assert s.wait_eof(scaled(5)), s.body
        assert not s.complete, "lighttpd cuts a response whose backend died"
        assert upstream.wait_closed(rec.conn, scaled(2)) is not None
    finally:
        s.close()
    snap = fid("after")
    upstream.set(snap, json_reply(200, b'{"n":1}'))
    seen = []   # (seconds after the kill, status)

    def served():
        resp = client.request(server.port, "GET", f"{BASE}/{snap}/snapshot", server.auth_headers())
        seen.append((round(time.monotonic() - killed, 3), resp.status))
        if resp.status != 200:   # lighttpd's own page, not the app's JSON
            assert resp.status in (500, 503), resp
            assert resp.header("Content-Type").startswith("text/html") and b"requestId" not in resp.body, resp
        return resp.status == 200 and resp.body == b'{"n":1}'
    assert wait_for(served, max(0.1, killed + scaled(5) - time.monotonic()), interval=0.05), \
        (seen, server.logs())
    (new_app,) = server.app_pids()
    assert new_app != old_app


def kill_app(server):
    """SIGKILL to the app (the launcher's process: each launcher execs it);
    returns its exit status as the launcher's parent sees it."""
    assert server.app.is_app()
    os.kill(server.app.pid, signal.SIGKILL)
    return server.app.proc.wait(timeout=scaled(5))


def assert_nginx_502(server, flow):
    """nginx's own 502 page: the app's socket refuses the connection."""
    resp = client.request(server.port, "GET", f"{BASE}/{flow}/snapshot", server.auth_headers())
    assert resp.status == 502, resp
    assert (resp.header("Content-Type") or "").startswith("text/html"), resp
    assert b"requestId" not in resp.body
    return resp


def test_app_killed_under_spawn_fcgi_behind_nginx(started, upstream, fid, tmp_path):
    """spawn-fcgi execs the app, so the supervisor's child is the app and
    sees it die by SIGKILL. An open stream: nginx (fastcgi_buffering off)
    takes the FastCGI connection's plain close as the end of the response
    and sends the terminating chunk, so the client sees a complete,
    clean-looking stream, and logs nothing about it (at conf/nginx's
    error_log level, warn). The app cannot
    prevent that (it is dead); a browser's EventSource reconnects after any
    end, so SSE clients recover either way, but a client that trusts the
    chunked framing (curl would exit 0) is told the stream finished.
    lighttpd cuts the same stream (test_app_killed_under_lighttpd). While the app is dead nginx answers its
    own 502 (connection refused on the stale socket file); once the
    supervisor runs the launcher again (spawn-fcgi replaces the stale
    socket) the next snapshot is 200."""
    server = started(servers.Nginx({"OPENOVA_FLOW_SERVER_URL": upstream.url, "OPENOVA_FLOW_KEEPALIVE": "0"},
                                   tmp_path / "nginx", launcher=launchers.SpawnFcgi))
    old_app = server.app.pid
    flow = fid()
    upstream.set(flow, stream_reply([(0, frame(1))], end="hold"))
    s = client.Stream(server.port, f"{BASE}/{flow}/stream", server.auth_headers())
    try:
        assert s.read_until(lambda st: st.body == frame(1), scaled(5)), s.body
        (rec,) = upstream.requests(flow)
        assert kill_app(server) == -signal.SIGKILL
        assert s.wait_eof(scaled(5)), s.body
        assert s.body == frame(1)
        assert s.complete, "nginx 1.22 ends a killed app's stream cleanly (see above); if that changed, " \
                           "update the docstring"
        assert upstream.wait_closed(rec.conn, scaled(2)) is not None
    finally:
        s.close()
    assert os.path.exists(server.app_socket), "the dead app's socket file stays"
    assert_nginx_502(server, fid("down"))
    server.app.start()
    assert server.app.pid != old_app
    snap = fid("after")
    upstream.set(snap, json_reply(200, b'{"n":1}'))
    resp = client.request(server.port, "GET", f"{BASE}/{snap}/snapshot", server.auth_headers())
    assert (resp.status, resp.body) == (200, b'{"n":1}'), resp


def test_app_killed_under_socket_activation_behind_nginx(started, upstream, fid, tmp_path):
    """systemd-socket-activate (the stand-in for systemd here) binds the
    socket and execs the app on the first connection, handing it the
    listening socket: from then on the app alone holds it, so the SIGKILL
    closes the listening socket too and nginx answers 502 (refused) until
    the launcher runs again. Started again, it binds a new socket and the
    app is not running until a connection comes; the first snapshot through
    nginx starts it and waits in the socket's backlog meanwhile: 200, not
    502. (Under systemd itself the socket unit keeps the socket across the
    crash: the next test.)"""
    server = started(servers.Nginx({"OPENOVA_FLOW_SERVER_URL": upstream.url, "OPENOVA_FLOW_KEEPALIVE": "0"},
                                   tmp_path / "nginx", launcher=launchers.SocketActivated))
    assert kill_app(server) == -signal.SIGKILL
    assert_nginx_502(server, fid("down"))
    server.app.start(wait=False)
    assert not server.app.is_app(), "the app ran before any connection"
    snap = fid("after")
    upstream.set(snap, json_reply(200, b'{"n":1}'))
    resp = client.request(server.port, "GET", f"{BASE}/{snap}/snapshot", server.auth_headers())
    assert (resp.status, resp.body) == (200, b'{"n":1}'), resp
    assert server.app.is_app()


class SystemdKeepsSocket(launchers.SocketActivated):
    """What systemd does and systemd-socket-activate does not: the listening
    socket belongs to the .socket unit (its Backlog, SocketMode and
    SocketGroup applied) and outlives every start of the service. The test
    holds it and starts ExecStart on it (LISTEN_FDS=1, fd 3, LISTEN_PID the
    app's own pid, kept through exec), with the service's environment and
    user, as SocketActivated does."""

    name = "systemd-kept-socket"

    def __init__(self, app_env, workdir, address):
        super().__init__(app_env, workdir, address)
        self.listener = None

    def prepare(self):
        if self.listener is not None:
            return
        super().prepare()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.address)
        self.listener.listen(int(launchers.unit_value(self.socket_unit, "Socket", "Backlog")))
        os.chmod(self.address, int(launchers.unit_value(self.socket_unit, "Socket", "SocketMode"), 8))
        if launchers.is_root():
            os.chown(self.address, 0,
                     grp.getgrnam(launchers.unit_value(self.socket_unit, "Socket", "SocketGroup")).gr_gid)

    def command(self):
        argv, _, preexec = super().command()
        # [systemd-socket-activate, -l, PATH, (-E NAME=VALUE)..., program...]
        assert argv[:3] == [launchers.SOCKET_ACTIVATE, "-l", self.address], argv
        env, rest = servers.base_env(), argv[3:]
        while rest[0] == "-E":
            name, _, value = rest[1].partition("=")
            env[name] = value
            rest = rest[2:]
        fd = self.listener.fileno()

        def setup():
            preexec()
            os.dup2(fd, 3)
        return ["/bin/sh", "-c", 'LISTEN_FDS=1 LISTEN_PID=$$ exec "$@"', "sh"] + rest, env, setup

    def start(self, wait=True):
        self.prepare()
        argv, env, preexec = self.command()
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts + 1}: {' '.join(argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(argv, env=env, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, start_new_session=True, preexec_fn=preexec, pass_fds=(3,))
        self.starts += 1
        if wait:
            self.wait_ready()
        return self

    def stop(self):
        super().stop()
        if self.listener is not None:
            self.listener.close()
            self.listener = None


def test_app_killed_while_systemd_keeps_the_socket(started, upstream, fid, tmp_path):
    """Under systemd the socket survives the crash: nginx's connection to
    it succeeds while no app runs and its request waits in the socket's
    backlog; systemd starts the service again (Restart=on-failure after
    RestartSec=1s, here the test does it after as long) and the new app
    accepts that connection and answers it. So the client sees a snapshot
    about a second late, not a 502."""
    server = started(servers.Nginx({"OPENOVA_FLOW_SERVER_URL": upstream.url, "OPENOVA_FLOW_KEEPALIVE": "0"},
                                   tmp_path / "nginx", launcher=SystemdKeepsSocket))
    restart_sec = 1.0
    assert launchers.unit_value(server.app.service_unit, "Service", "RestartSec") == "1s"
    snap = fid()
    upstream.set(snap, json_reply(200, b'{"n":1}'))
    resp = client.request(server.port, "GET", f"{BASE}/{snap}/snapshot", server.auth_headers())
    assert resp.status == 200, resp
    old_app = server.app.pid
    assert kill_app(server) == -signal.SIGKILL

    result = {}

    def during_the_outage():
        sent = time.monotonic()
        try:
            result["resp"] = client.request(server.port, "GET", f"{BASE}/{snap}/snapshot", server.auth_headers(),
                                            timeout=scaled(20))
        except Exception as exc:   # the assertion below shows it
            result["resp"] = exc
        result["took"] = time.monotonic() - sent
    waiting = threading.Thread(target=during_the_outage)
    waiting.start()
    try:
        time.sleep(restart_sec)
        assert waiting.is_alive(), f"answered while no app ran: {result}"
        server.app.start()
    finally:
        waiting.join(timeout=scaled(20))
    assert server.app.pid != old_app
    resp = result["resp"]
    assert isinstance(resp, client.Response) and (resp.status, resp.body) == (200, b'{"n":1}'), resp
    assert result["took"] >= restart_sec
    assert len(upstream.requests(snap)) == 2


# ---- 5. a thousand streams aborted by their clients ----

STREAMS = 1000
# How much the app's resident memory may exceed the baseline after the same
# load ran once before it (see the test). Sanitizers and valgrind keep
# freed memory in quarantine and add shadow memory: looser there (their
# leak checks are what finds leaks in those runs), as in test_hostile.py.
SANITIZED = wrapper.active() or os.environ.get("OPENOVA_TEST_SANITIZED") == "1"
RSS_SLACK_MIN_KIB = 64 * 1024 if SANITIZED else 8 * 1024
FD_SLACK = 2



@pytest.fixture
def many_files():
    """The test process holds every client socket and every upstream socket
    (two per stream), so its soft open-file limit goes up to the hard one
    (the web server and the app it starts inherit it); the number of
    streams is what fits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    fit = STREAMS if limit == resource.RLIM_INFINITY else min(STREAMS, (limit - 256) // 2)
    assert fit >= 100, f"open-file limit {limit}: too low for this test"
    yield fit
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_held_stream(port, target, headers, first, timeout):
    """A raw stream request; returns the socket once the head and first
    arrived, and what arrived. No select(): descriptors here pass 1024."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"] + [f"{n}: {v}" for n, v in headers]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    buf = b""
    deadline = time.monotonic() + timeout
    while first not in buf:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except socket.timeout:
            break
        if not data:
            break
        buf += data
    return sock, buf


def steady_fds(pid):
    """The app's descriptor count once it stops changing: under valgrind its
    workers are still starting (each opens its libcurl multi handle's wakeup
    pair) well after it answers its first request."""
    count = open_fds(pid)
    deadline = time.monotonic() + scaled(10)
    while time.monotonic() < deadline:
        time.sleep(scaled(0.5))
        now = open_fds(pid)
        if now == count:
            break
        count = now
    return count


def test_thousand_streams_aborted_by_their_clients(started, many_files, fid, tmp_path):
    """1,000 streams through nginx (which notices a client's reset at once
    and closes the app's FastCGI connection: conf/nginx's
    fastcgi_ignore_client_abort off), each held open by the flow server
    after its first frame; then every client resets its connection. The app
    releases both descriptors of every stream and the flow server sees all
    1,000 of its connections closed, within a bound; the app's memory comes
    back within max(10 %, 8 MiB) of the baseline.

    The load runs twice and the memory baseline is taken after the first
    run: glibc keeps what the app freed in the stream thread's arena and
    only trims a heap's top, so the first 1,000 streams raise the resident
    size for good (measured: 10 MiB to 28 MiB) without any leak; the second
    run must land in that memory. Descriptors are checked after both runs.
    nginx gets worker_connections and worker_rlimit_nofile for 2,000
    connections (a copy of conf/nginx with those two lines changed, as
    bench does); the app's OPENOVA_FLOW_MAX_STREAMS (1024) fits 1,000."""
    n = many_files
    held = HoldingUpstream(frame(1))
    try:
        server = started(servers.Nginx(
            {"OPENOVA_FLOW_SERVER_URL": held.url, "OPENOVA_FLOW_KEEPALIVE": "0"}, tmp_path / "nginx",
            mutations=[("nginx.conf", "worker_connections 1024;", f"worker_connections {2 * n + 512};"),
                       ("nginx.conf", "worker_processes 1;",
                        f"worker_processes 1;\nworker_rlimit_nofile {2 * n + 1024};")]))
        (pid,) = server.app_pids()
        flow = fid()
        target = f"{BASE}/{flow}/stream"
        fds_before = steady_fds(pid)
        rss = []

        def one(i):
            sock, got = open_held_stream(server.port, target, server.auth_headers(), frame(1), scaled(10))
            if not (got.startswith(b"HTTP/1.1 200 ") and got.endswith(b"\r\n" + frame(1) + b"\r\n")):
                sock.close()
                raise AssertionError(f"stream {i}: {got[:500]!r}")
            return sock

        for run in (1, 2):
            socks = []
            try:
                with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
                    for sock in pool.map(one, range(n)):
                        socks.append(sock)
                # both descriptors of every stream (under valgrind fds_before
                # may hold one of valgrind's own, open for a moment)
                assert held.open_count == n and open_fds(pid) >= 2 * n, (held.open_count, open_fds(pid))
            finally:
                for sock in socks:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()
            aborted = time.monotonic()
            settled = wait_for(lambda: open_fds(pid) <= fds_before + FD_SLACK and held.open_count == 0, scaled(10),
                               interval=0.05)
            took = time.monotonic() - aborted
            rss.append(rss_kib(pid))
            print(f"run {run}: {n} streams aborted; app fds {fds_before} -> {open_fds(pid)}, VmRSS {rss[-1]} KiB, "
                  f"upstream {held.closed}/{held.opened} closed, settled in {took:.2f} s")
            assert settled, (f"{scaled(10)} s after {n} clients left: app holds {open_fds(pid)} descriptors "
                             f"({fds_before} before), upstream has {held.open_count} connections open")
            assert held.opened == held.closed == run * n
            assert held.targets == [f"/v1/flows/{flow}/stream"] * (run * n)
        slack = max(rss[0] // 10, RSS_SLACK_MIN_KIB)
        assert rss[1] - rss[0] <= slack, f"VmRSS grew {rss[1] - rss[0]} KiB over {n} more streams (bound {slack})"
        assert server.app_pids() == [pid]
        ends = [line for line in log_lines(server, f"route=stream id={flow} ") if 'msg="stream end"' in line]
        assert len(ends) == 2 * n
    finally:
        held.close()
