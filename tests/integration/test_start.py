"""test_start.py: how the app starts (issue 15): --check-config (every
problem, one line each, without binding), warnings for unknown
OPENOVA_FLOW_* variables with the closest name, the upstream probed once at
start (a warning, never fatal), and a unix socket of its own: its mode,
owner and group, no theft of a live socket, removed at exit."""
import grp
import os
import pwd
import signal
import socket
import stat

import pytest

from harness import applog, authkeys, servers
from harness.checks import wait_for
from harness.timing import scaled


def cli(args, env):
    proc = servers.run_cli(args, env, timeout=10)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode().strip().splitlines()


def test_check_config_lists_every_problem(tmp_path):
    rc, out, lines = cli(["--check-config", "--listen", f"unix:{tmp_path}/app.sock", "--socket-group", "no-such-group"],
                         {"OPENOVA_FLOW_KEEPALIVE": "often", "OPENOVA_FLOW_WORKERS": "0",
                          "OPENOVA_FLOW_METRICS_ALLOW": "localhost", "OPENOVA_FLOW_AUTH": "none"})
    assert rc == 2 and out == "", (rc, out, lines)
    assert [n for n in ("OPENOVA_FLOW_KEEPALIVE", "OPENOVA_FLOW_WORKERS", "OPENOVA_FLOW_METRICS_ALLOW",
                        "--socket-group") if not any(n in line for line in lines)] == [], lines
    assert len(lines) == 4, lines
    assert not os.path.exists(tmp_path / "app.sock"), "--check-config must not bind"


def test_check_config_reads_the_credential_files(tmp_path):
    bad = tmp_path / "tokens"
    bad.write_text("not a digest\n")
    rc, out, lines = cli(["--check-config"], {"OPENOVA_FLOW_AUTH": "bearer", "OPENOVA_FLOW_TOKENS_FILE": str(bad)})
    assert rc == 2 and len(lines) == 1 and str(bad) in lines[0], lines
    rc, out, lines = cli(["--check-config"], {"OPENOVA_FLOW_AUTH": "bearer",
                                               "OPENOVA_FLOW_TOKENS_FILE": str(tmp_path / "missing")})
    assert rc == 2 and len(lines) == 1, lines


def test_check_config_passes_a_good_configuration():
    keys = authkeys.KeyStore()
    try:
        rc, out, lines = cli(["--check-config"], keys.app_env("bearer,jwt"))
    finally:
        keys.close()
    assert rc == 0 and "configuration OK" in out and lines == [], (rc, out, lines)


def test_unknown_variables_are_named_with_the_closest_setting(tmp_path):
    rc, out, lines = cli(["--check-config"], {"OPENOVA_FLOW_AUTH": "none", "OPENOVA_FLOW_KEEPALIVES": "1s"})
    assert rc == 0, lines  # a warning, not a problem
    assert lines == ["openova-flow-fcgi: OPENOVA_FLOW_KEEPALIVES is not a setting of openova-flow-fcgi "
                     "(did you mean OPENOVA_FLOW_KEEPALIVE?)"], lines
    app = servers.App({"OPENOVA_FLOW_AUTH": "none", "OPENOVA_FLOW_SERVR_URL": "http://x"}, tmp_path).start()
    try:
        assert wait_for(lambda: [r for r in applog.records(app.log()) if "OPENOVA_FLOW_SERVR_URL" in r["msg"]],
                        scaled(3)), app.log()
        (warning,) = [r for r in applog.records(app.log()) if "OPENOVA_FLOW_SERVR_URL" in r["msg"]]
        assert warning["level"] == "warn" and "OPENOVA_FLOW_SERVER_URL" in warning["msg"], warning
    finally:
        app.stop()


def test_upstream_probed_at_start(tmp_path, upstream, refusing_port):
    down = servers.App({"OPENOVA_FLOW_AUTH": "none", "OPENOVA_FLOW_SERVER_URL": refusing_port.url},
                       tmp_path / "down").start()
    up = servers.App({"OPENOVA_FLOW_AUTH": "none", "OPENOVA_FLOW_SERVER_URL": upstream.url}, tmp_path / "up").start()
    try:
        assert wait_for(lambda: [r for r in applog.records(down.log()) if "cannot be reached" in r["msg"]],
                        scaled(3)), down.log()
        assert wait_for(lambda: [r for r in applog.records(up.log()) if r["msg"] == "serving"], scaled(3))
        assert not [r for r in applog.records(up.log()) if "cannot be reached" in r["msg"]], up.log()
        assert down.proc.poll() is None, "an unreachable upstream must not stop the start"
    finally:
        down.stop()
        up.stop()


@pytest.mark.parametrize("args,mode,group", [
    ([], 0o660, None),
    (["--socket-mode", "0600"], 0o600, None),
    (["--socket-mode=0666", "--socket-group", "www-data"], 0o666, "www-data"),
    (["--socket-owner", "www-data", "--socket-group", "33"], 0o660, "www-data"),
], ids=["default", "mode", "mode-and-group", "owner-and-numeric-group"])
def test_socket_mode_owner_group(tmp_path, args, mode, group):
    app = servers.App({"OPENOVA_FLOW_AUTH": "none"}, tmp_path, args=args).start()
    try:
        st = os.stat(app.socket_path)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == mode, oct(st.st_mode)
        if group:
            assert st.st_gid == grp.getgrnam(group).gr_gid
        if "--socket-owner" in args:
            assert st.st_uid == pwd.getpwnam("www-data").pw_uid
    finally:
        app.stop()


def test_live_socket_is_not_taken_and_own_socket_is_removed(tmp_path):
    first = servers.App({"OPENOVA_FLOW_AUTH": "none"}, tmp_path).start()
    try:
        rc, out, lines = cli(["--listen", f"unix:{first.socket_path}"], {"OPENOVA_FLOW_AUTH": "none"})
        assert rc == 2 and lines == [f"openova-flow-fcgi: --listen: another process is listening on "
                                     f"{first.socket_path}"], lines
        probe = socket.socket(socket.AF_UNIX)
        probe.connect(first.socket_path)  # still the first one's
        probe.close()
        first.proc.send_signal(signal.SIGTERM)
        assert first.proc.wait(timeout=scaled(10)) == 0
        assert not os.path.exists(first.socket_path), "the socket file stays behind after exit"
    finally:
        first.stop()


def test_stale_socket_is_replaced(tmp_path):
    path = str(tmp_path / "app.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    app = servers.App({"OPENOVA_FLOW_AUTH": "none"}, tmp_path).start()  # waits until it listens there
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        assert app.proc.poll() is None
    finally:
        app.stop()
