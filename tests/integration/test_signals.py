"""test_signals.py: what each signal does to the app (issue 15). SIGHUP
re-reads the credential files and the log level (from
OPENOVA_FLOW_ENV_FILE) and never stops the process; SIGUSR1 and SIGUSR2 are
harmless; SIGTERM and SIGINT stop it gracefully (test_lifecycle.py,
test_graceful.py). The app runs under lighttpd, signalled directly."""
import os
import signal
import time

import pytest

from harness import applog, authkeys, client, servers
from harness.checks import wait_for
from harness.timing import scaled
from harness.upstream import json_reply

BASE = "/api/v1/flows"


@pytest.fixture
def keys():
    store = authkeys.KeyStore()
    yield store
    store.close()


@pytest.fixture
def env_file(keys):
    path = os.path.join(keys.dir, "openova-flow-fcgi.env")

    def write(level):
        with open(path, "w") as f:
            f.write(f"# as /etc/default/openova-flow-fcgi\nOPENOVA_FLOW_KEEPALIVE=0\nOPENOVA_FLOW_LOG_LEVEL=\"{level}\"\n")
        os.chmod(path, 0o644)
    write("info")
    write.path = path
    return write


@pytest.fixture
def app(upstream, keys, env_file, tmp_path):
    env = keys.app_env("bearer", OPENOVA_FLOW_SERVER_URL=upstream.url, OPENOVA_FLOW_ENV_FILE=env_file.path)
    server = servers.WEB_SERVERS["lighttpd"](env, tmp_path / "lighttpd", conf="noauth")
    server.start()
    yield server
    server.stop()


def the_pid(server):
    (pid,) = server.app_pids()
    return pid


def snapshot(server, upstream, flow, token, rid):
    upstream.set(flow, json_reply(200, b"{}"))
    return client.request(server.port, "GET", f"{BASE}/{flow}/snapshot",
                          [("Authorization", f"Bearer {token}"), ("X-Request-ID", rid)])


def reloads(server):
    return [r for r in applog.records(server.app_log()) if r["msg"].startswith("reloaded on SIGHUP")]


def test_sighup_rereads_credentials_and_never_stops(app, upstream, keys, fid):
    pid = the_pid(app)
    fresh = "fresh-" + keys.emitter_token[:20]
    keys.write_tokens([(fresh, "fresh")])  # the old tokens go
    os.kill(pid, signal.SIGHUP)
    assert wait_for(lambda: reloads(app), scaled(3)), app.app_log()[-2000:]
    assert snapshot(app, upstream, fid(), fresh, "hup-fresh").status == 200
    assert snapshot(app, upstream, fid(), keys.emitter_token, "hup-old").status == 401
    for _ in range(3):
        os.kill(pid, signal.SIGHUP)
    assert wait_for(lambda: len(reloads(app)) >= 2, scaled(3))
    time.sleep(0.2)
    assert app.app_pids() == [pid], "SIGHUP must not stop or restart the app"
    assert snapshot(app, upstream, fid(), fresh, "hup-after").status == 200


def test_sighup_rereads_the_log_level(app, upstream, keys, env_file, fid):
    pid = the_pid(app)
    assert snapshot(app, upstream, fid(), keys.emitter_token, "level-info").status == 200
    assert wait_for(lambda: applog.with_rid(app.app_log(), "level-info"), scaled(3))
    env_file("warn")
    os.kill(pid, signal.SIGHUP)
    assert wait_for(lambda: [r for r in reloads(app) if r["log_level"] == "warn"], scaled(3)), app.app_log()[-2000:]
    assert snapshot(app, upstream, fid(), keys.emitter_token, "level-warn-ok").status == 200
    assert snapshot(app, upstream, fid(), "nope", "level-warn-refused").status == 401
    assert wait_for(lambda: applog.with_rid(app.app_log(), "level-warn-refused"), scaled(3))
    assert applog.with_rid(app.app_log(), "level-warn-ok") == [], "an info line was written at level warn"
    env_file("loud")  # not a level: the one in force stays, and the log says why
    os.kill(pid, signal.SIGHUP)
    assert wait_for(lambda: len(reloads(app)) == 2, scaled(3))
    assert any("is not a level" in r["msg"] for r in applog.records(app.app_log()))
    assert app.app_pids() == [pid]


@pytest.mark.parametrize("signo", [signal.SIGUSR1, signal.SIGUSR2], ids=["SIGUSR1", "SIGUSR2"])
def test_sigusr_is_harmless(app, upstream, keys, fid, signo):
    pid = the_pid(app)
    os.kill(pid, signo)
    time.sleep(0.3)
    assert app.app_pids() == [pid]
    assert snapshot(app, upstream, fid(), keys.emitter_token, f"usr-{signo}").status == 200
