"""The app started the ways conf/ ships, each for real, behind a real web
server: spawn-fcgi (conf/spawn-fcgi/, Debian's spawn-fcgi), systemd socket
activation (conf/systemd/ units run with systemd-socket-activate: no
systemd runs here) and the container (conf/container/: the image's
entrypoint and health check run with the image's command lines, ENV and
USER, and kubernetes.yaml's probes sent through nginx-pod.conf; no
container engine or cluster here, so the image itself is not built).

spawn-fcgi also starts the app of every Apache and nginx instance of the
behavioural suite."""
import grp
import os
import pwd
import signal
import socket
import subprocess
import time

import pytest
import yaml

from harness import client, launchers, servers, wrapper
from harness.checks import wait_for
from harness.fastcgi import fcgi_request
from harness.upstream import json_reply, stream_reply
from harness.timing import scaled

BASE = "/api/v1/flows"
FRAMES = [f"event: upsert-nodes\nid: {i}\ndata: {{\"n\":{i}}}\n\n".encode() for i in range(1, 4)]

# (launcher, the web server in front, the app's expected user when the
# tests run as root: spawn-fcgi's script and the DynamicUser stand-in drop
# to nobody, the image runs as its USER 10001)
LAUNCHED = {
    "spawn-fcgi": (servers.Nginx, launchers.SpawnFcgi, "nobody"),
    "systemd": (servers.Apache, launchers.SocketActivated, "nobody"),
    "container": (servers.NginxPod, launchers.ContainerEntrypoint, 10001),
}


def start(name, upstream, tmp_path, **env):
    web_cls, launcher, _ = LAUNCHED[name]
    app_env = {"OPENOVA_FLOW_SERVER_URL": upstream.url, "OPENOVA_FLOW_KEEPALIVE": "0"}
    app_env.update(env)
    if web_cls is servers.NginxPod:
        server = web_cls(app_env, tmp_path / name)
    else:
        server = web_cls(app_env, tmp_path / name, launcher=launcher)
    return server.start()   # stops what it started when it fails


def uid_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])


@pytest.mark.parametrize("name", list(LAUNCHED))
def test_served_through_launcher(upstream, fid, tmp_path, name):
    server = start(name, upstream, tmp_path)
    try:
        # The process the launcher started is the app itself (each one
        # execs it), so a supervisor's SIGTERM reaches it directly.
        assert server.app.is_app(), server.logs()
        if launchers.is_root():
            expected = LAUNCHED[name][2]
            uid = pwd.getpwnam(expected).pw_uid if isinstance(expected, str) else expected
            assert uid_of(server.app.pid) == uid

        snap = fid("snapshot")
        upstream.set(snap, json_reply(200, b'{"nodes":[]}'))
        resp = client.request(server.port, "GET", f"{BASE}/{snap}/snapshot", server.auth_headers())
        assert (resp.status, resp.body) == (200, b'{"nodes":[]}')
        (rec,) = upstream.requests(snap)
        assert rec.header("X-Forwarded-User") == servers.USER

        flow = fid("stream")
        # Gaps scaled with the bound: a frame held until the next still fails.
        upstream.set(flow, stream_reply([(scaled(0.3), f) for f in FRAMES], end="clean"))
        s = client.Stream(server.port, f"{BASE}/{flow}/stream", server.auth_headers())
        try:
            assert s.wait_eof(scaled(5)) and s.complete, s.body
            assert [b for _, b in s.events()] == FRAMES
            (rec,) = upstream.requests(flow)
            lags = [t - sent for (t, _), sent in zip(s.events(), rec.frames_sent_at)]
            assert max(lags) < scaled(0.2), lags
        finally:
            s.close()

        resp = client.request(server.port, "GET", f"{BASE}/{snap}/snapshot")
        assert resp.status == 401
    finally:
        server.stop()


@pytest.mark.parametrize("name", list(LAUNCHED))
def test_sigterm_under_launcher_then_started_again(upstream, fid, tmp_path, name):
    server = start(name, upstream, tmp_path)
    try:
        flow = fid()
        upstream.set(flow, stream_reply([(0, FRAMES[0])], end="hold"))
        s = client.Stream(server.port, f"{BASE}/{flow}/stream", server.auth_headers())
        assert s.read_until(lambda st: st.body == FRAMES[0], scaled(3))
        server.app.proc.send_signal(signal.SIGTERM)
        assert s.wait_eof(scaled(5)) and s.complete, s.body
        s.close()
        assert server.app.proc.wait(timeout=scaled(5)) == 0, server.logs()

        server.app.start()   # what systemd, the container runtime or runit does next
        snap = fid("again")
        upstream.set(snap, json_reply(200, b"{}"))
        assert wait_for(lambda: client.request(server.port, "GET", f"{BASE}/{snap}/snapshot",
                                               server.auth_headers()).status == 200, scaled(5), interval=0.1)
    finally:
        server.stop()


def test_spawn_fcgi_socket_is_the_web_servers_only(upstream, tmp_path):
    """The script's socket: 0660, and as root owned by the app's user and
    www-data's group, so the web server's workers connect and other local
    users cannot (a FastCGI socket trusts whatever REMOTE_USER it is sent)."""
    sock = str(tmp_path / "app.sock")
    app = launchers.SpawnFcgi({"OPENOVA_FLOW_SERVER_URL": upstream.url}, tmp_path, sock).start()
    try:
        st = os.stat(sock)
        assert st.st_mode & 0o777 == 0o660, oct(st.st_mode)
        if launchers.is_root():
            assert (st.st_uid, st.st_gid) == (pwd.getpwnam("nobody").pw_uid, grp.getgrnam("www-data").gr_gid)
    finally:
        app.stop()


def test_systemd_units_verify(tmp_path):
    """systemd-analyze verify accepts both units (the program's path filled
    in: it checks that ExecStart exists) without a single warning."""
    for unit in ("openova-flow-fcgi.socket", "openova-flow-fcgi.service"):
        with open(os.path.join(launchers.SYSTEMD_DIR, unit)) as f:
            text = f.read()
        with open(tmp_path / unit, "w") as f:
            f.write(text.replace(launchers.INSTALLED_BIN, servers.BINARY))
    proc = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "openova-flow-fcgi.socket"),
                           str(tmp_path / "openova-flow-fcgi.service")], capture_output=True, timeout=30)
    assert proc.returncode == 0, proc
    assert proc.stdout == b"" and proc.stderr == b"", proc


def test_socket_activation_starts_app_on_first_connection(upstream, tmp_path):
    """Like systemd, systemd-socket-activate holds the socket and runs the
    app only when the first connection comes."""
    sock = str(tmp_path / "app.sock")
    app = launchers.SocketActivated({"OPENOVA_FLOW_SERVER_URL": upstream.url}, tmp_path, sock)
    app.start(wait=False)
    try:
        time.sleep(0.3)
        assert not app.is_app(), "the app ran before any connection"
        assert oct(os.stat(sock).st_mode & 0o777) == "0o660"
        app.wait_ready()
        assert wait_for(lambda: "serving" in app.log(), scaled(5)), app.log()
    finally:
        app.stop()


def test_systemd_restart_keeps_socket_usable(upstream, fid, tmp_path):
    """Under systemd the listening socket belongs to the .socket unit and
    outlives the service: after the app stops (SIGTERM, as `systemctl
    restart` or a package upgrade sends), systemd passes the same socket to
    the next app. Here the test plays systemd: it holds the socket and
    starts the app twice on it (LISTEN_FDS=1, fd 3), like ExecStart."""
    path = str(tmp_path / "app.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    env = servers.base_env()
    env.update({"OPENOVA_FLOW_SERVER_URL": upstream.url})
    log = open(tmp_path / "app.log", "ab")

    def run_app():
        # LISTEN_PID must be the app's own pid: the shell's, which exec keeps
        # (and so does a wrapper: harness/wrapper.py).
        return subprocess.Popen(["/bin/sh", "-c", 'LISTEN_FDS=1 LISTEN_PID=$$ exec "$@"', "sh"] + wrapper.argv(),
                                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                pass_fds=(3,), preexec_fn=lambda: os.dup2(listener.fileno(), 3),
                                start_new_session=True)
    flow = fid()
    upstream.set(flow, json_reply(200, b'{"n":1}'))
    try:
        for generation in (1, 2):
            app = run_app()
            try:
                resp = None
                deadline = time.monotonic() + scaled(5)
                while time.monotonic() < deadline:
                    try:
                        resp = fcgi_request(path, "GET", f"{BASE}/{flow}/snapshot", [], remote_user="alice")
                        break
                    except OSError as exc:
                        resp = exc
                        time.sleep(0.05)
                assert getattr(resp, "status", None) == 200, \
                    f"app #{generation} on systemd's socket: {resp!r} (the previous app's stop left the " \
                    f"shared socket unusable: see INSTALL, systemd)"
                app.send_signal(signal.SIGTERM)
                assert app.wait(timeout=scaled(5)) == 0
            finally:
                if app.poll() is None:
                    app.kill()
                    app.wait()
    finally:
        listener.close()
        log.close()


def test_container_health_check(upstream, tmp_path):
    """The image's HEALTHCHECK command asks the app's liveness endpoint: 0
    while the app answers, 1 once it is gone. Liveness is the process
    alone: the flow server hears nothing, not even its own health check
    (that is readiness)."""
    app = launchers.ContainerEntrypoint({"OPENOVA_FLOW_SERVER_URL": upstream.url}, tmp_path,
                                        ("127.0.0.1", servers.free_port())).start()
    try:
        assert app.healthcheck() == 0, app.log()
        assert upstream.requests() == []
        app.proc.send_signal(signal.SIGTERM)
        assert app.proc.wait(timeout=scaled(5)) == 0
        assert app.healthcheck() == 1
    finally:
        app.stop()


def test_container_health_check_ignores_flow_server(refusing_port, tmp_path):
    """With nothing listening at the flow server's address the app is
    alive all the same: the health check passes (a flow server outage must
    not restart the proxy)."""
    app = launchers.ContainerEntrypoint({"OPENOVA_FLOW_SERVER_URL": refusing_port.url}, tmp_path,
                                        ("127.0.0.1", servers.free_port())).start()
    try:
        assert app.healthcheck() == 0, app.log()
    finally:
        app.stop()


def pod_probes():
    """The httpGet probes of kubernetes.yaml's containers: {(container,
    kind): probe}."""
    with open(os.path.join(launchers.CONTAINER_DIR, "kubernetes.yaml")) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    return {(c["name"], kind): c[kind] for c in deployment["spec"]["template"]["spec"]["containers"]
            for kind in ("readinessProbe", "livenessProbe") if kind in c}


def test_pod_probes_reach_the_app(upstream, fid, tmp_path):
    """kubernetes.yaml's probes of the app container, as the kubelet sends
    them (no credentials) through the pod's nginx (nginx-pod.conf) to the
    image's entrypoint: readiness is the app's readyz (the flow server's
    health check), liveness its healthz; each answers 200 from the app,
    with a timeout above the app's 1.5 s check of the flow server. The
    flow routes stay behind nginx's basic auth."""
    probes = pod_probes()
    assert probes[("app", "readinessProbe")]["httpGet"]["path"] == "/openova-flow/readyz"
    assert probes[("app", "livenessProbe")]["httpGet"]["path"] == "/openova-flow/healthz"
    server = start("container", upstream, tmp_path)
    try:
        for (container, kind), probe in sorted(probes.items()):
            get = probe["httpGet"]
            if container == "app":
                assert get["port"] == 8080, "the app container's probes go to nginx's port"
                assert probe["timeoutSeconds"] >= 2, (kind, probe)
            # Until it passes, as the kubelet retries: the first check of the
            # flow server may still be under way (or slow, under valgrind).
            last = []
            wait_for(lambda: last.append(client.request(server.port, "GET", get["path"],
                                                        [("User-Agent", "kube-probe/1.30")]))
                     or 200 <= last[-1].status < 400, scaled(6), interval=0.2)
            resp = last[-1]
            assert 200 <= resp.status < 400, (container, kind, resp)
            if container == "app":
                assert resp.header("X-Request-ID"), resp   # the app's answer, not nginx's
                expected = {"readinessProbe": "ready", "livenessProbe": "ok"}[kind]
                assert resp.json() == {"status": expected}, resp
        # readiness asked the flow server's health check, and nothing else
        assert upstream.health_checks() and upstream.requests() == [], upstream.requests()
        resp = client.request(server.port, "GET", f"{BASE}/{fid()}/snapshot")
        assert resp.status == 401 and not resp.header("X-Request-ID"), resp   # nginx's own 401
    finally:
        server.stop()


def test_container_entrypoint_passes_arguments(upstream, tmp_path):
    """Arguments to the image go to the app: `podman run IMAGE --print-config`."""
    app = launchers.ContainerEntrypoint({}, tmp_path, ("127.0.0.1", 9))
    argv, env, _ = app.command()
    env["OPENOVA_FLOW_SERVER_URL"] = "http://flow.example:8080"
    proc = subprocess.run(argv + ["--print-config"], env=env, capture_output=True, timeout=scaled(10))
    assert proc.returncode == 0, proc
    assert b'"upstream_url":"http://flow.example:8080"' in proc.stdout.replace(b" ", b""), proc.stdout
