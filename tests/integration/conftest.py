"""Shared fixtures: one test upstream for the session, and real web servers
(lighttpd spawning the built app; Apache httpd and nginx in front of the
app started with spawn-fcgi) started on first use, one per web server and
configuration, torn down at the end of the session.

A test that takes `main` (or `web` and instances.get(name, web)) runs once
per web server: WEB_SERVERS below."""
import itertools
import os
import re

import pytest

from harness import authkeys, launchers, servers, wrapper
from harness.timing import TIME_SCALE, scaled
from harness.upstream import RefusingPort, Upstream

# The web servers every behavioural test runs against, each from its conf/
# files: lighttpd (conf/lighttpd/), Apache httpd (conf/apache2/) and nginx
# (conf/nginx/).
WEB_SERVERS = list(servers.WEB_SERVERS)

# Each configuration the suite needs: the web server's config ("auth": the
# server's basic auth in front; "noauth": none) and the app's
# OPENOVA_FLOW_* settings (OPENOVA_FLOW_SERVER_URL is the test upstream
# unless given). Started lazily, so running one file starts only its own.
CONFIGS = {
    # basic auth in the web server, remote-user in the app; no keepalive
    # comments so that stream bodies are exactly the upstream's bytes
    "main": ("auth", {"OPENOVA_FLOW_KEEPALIVE": "0"}),
    # keepalive every second: comments, and a client that left is noticed
    "keepalive": ("auth", {"OPENOVA_FLOW_KEEPALIVE": "1s"}),
    # web server without authentication, app without authentication
    "authnone": ("noauth", {"OPENOVA_FLOW_AUTH": "none", "OPENOVA_FLOW_KEEPALIVE": "0"}),
    # web server without authentication, app still expecting REMOTE_USER: 401
    "nouser": ("noauth", {"OPENOVA_FLOW_AUTH": "remote-user"}),
    # Some configurations log in JSON (and one at debug), so that the
    # suite's traffic exercises both formats: test_logs.py parses every
    # line the session's apps wrote.
    "timeout": ("auth", {"OPENOVA_FLOW_PROXY_TIMEOUT": "1s", "OPENOVA_FLOW_KEEPALIVE": "0",
                         "OPENOVA_FLOW_LOG_FORMAT": "json"}),
    "refused": ("auth", {"OPENOVA_FLOW_SERVER_URL": "<refused>", "OPENOVA_FLOW_LOG_FORMAT": "json",
                         "OPENOVA_FLOW_LOG_LEVEL": "debug"}),
    "maxbody": ("auth", {"OPENOVA_FLOW_MAX_BODY": "1024", "OPENOVA_FLOW_LOG_FORMAT": "json"}),
    "maxstreams": ("auth", {"OPENOVA_FLOW_MAX_STREAMS": "2", "OPENOVA_FLOW_KEEPALIVE": "1s",
                            "OPENOVA_FLOW_LOG_FORMAT": "json"}),
    # The app authenticates by itself (web server without auth), with the
    # session's generated credentials (harness/authkeys.py).
    "bearer": ("noauth", lambda keys: keys.app_env("bearer")),
    "jwt": ("noauth", lambda keys: keys.app_env("jwt", OPENOVA_FLOW_KEEPALIVE="0",
                                                            OPENOVA_FLOW_JWT_CLOCK_SKEW="1s")),
    "anyauth": ("noauth", lambda keys: keys.app_env("remote-user,bearer,jwt", OPENOVA_FLOW_LOG_FORMAT="json",
                                                    OPENOVA_FLOW_LOG_LEVEL="debug")),
    # Emitters with a static token may POST events; browsers with a JWT read.
    "split": ("noauth", lambda keys: keys.app_env("none", OPENOVA_FLOW_AUTH_EVENTS="bearer",
                                                 OPENOVA_FLOW_AUTH_READ="jwt")),
    "snapshotcap": ("auth", {"OPENOVA_FLOW_MAX_SNAPSHOT": "65536"}),
    # test_hostile.py: a small body limit (cheap 413s) and keepalives, so
    # that lighttpd notices a reset stream within a second
    "hostile": ("auth", {"OPENOVA_FLOW_MAX_BODY": "1024", "OPENOVA_FLOW_KEEPALIVE": "1s"}),
}


@pytest.fixture(scope="session", autouse=True)
def built_binary():
    assert os.access(servers.BINARY, os.X_OK), \
        f"{servers.BINARY} missing: run `make` first (make check does)"
    for tool in (servers.LIGHTTPD, servers.APACHE, servers.NGINX, launchers.SPAWN_FCGI_BIN,
                 launchers.SOCKET_ACTIVATE):
        assert os.access(tool, os.X_OK), f"{tool} missing: run tools/install-deps.sh"


@pytest.fixture(scope="session")
def upstream():
    up = Upstream()
    yield up
    up.close()


@pytest.fixture(scope="session")
def refusing_port():
    port = RefusingPort()
    yield port
    port.close()


@pytest.fixture(autouse=True)
def _fresh_records(request):
    """Each test starts with nothing recorded by the upstream."""
    if "upstream" in request.fixturenames:
        request.getfixturevalue("upstream").reset()


class Instances:
    def __init__(self, upstream, refusing_port, tmp_path_factory):
        self.upstream = upstream
        self.refusing_port = refusing_port
        self.tmp = tmp_path_factory
        self.running = {}
        self._keys = None

    @property
    def keys(self):
        if self._keys is None:
            self._keys = authkeys.KeyStore()
        return self._keys

    def app_env(self, name):
        conf, env = CONFIGS[name]
        if callable(env):
            env = env(self.keys)
        full = {"OPENOVA_FLOW_SERVER_URL": self.upstream.url}
        full.update(env)
        if full["OPENOVA_FLOW_SERVER_URL"] == "<refused>":
            full["OPENOVA_FLOW_SERVER_URL"] = self.refusing_port.url
        return conf, full

    def get(self, name, web="lighttpd"):
        key = (name, web)
        if key not in self.running:
            conf, env = self.app_env(name)
            server = servers.WEB_SERVERS[web](env, self.tmp.mktemp(f"{web}-{name}"), conf=conf)
            self.running[key] = server
            server.start()
        return self.running[key]

    def stop_all(self):
        for server in self.running.values():
            server.stop()
        self.running.clear()
        if self._keys is not None:
            self._keys.close()


@pytest.fixture(scope="session")
def instances(upstream, refusing_port, tmp_path_factory):
    inst = Instances(upstream, refusing_port, tmp_path_factory)
    yield inst
    inst.stop_all()


@pytest.fixture(params=WEB_SERVERS)
def web(request):
    """The web server's name; a test taking it runs once per web server."""
    return request.param


@pytest.fixture
def main(instances, web):
    return instances.get("main", web)


_ids = itertools.count(1)


@pytest.fixture
def fid(request):
    """A fresh flow id per call, named after the test (valid id chars)."""
    base = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:60].strip("-")

    def make(tag=""):
        return f"{base}{'-' + tag if tag else ''}-{next(_ids)}"
    return make


# --- the app under a wrapper (make integration-valgrind) ---------------------
# harness/wrapper.py puts OPENOVA_FLOW_FCGI_WRAPPER in front of the app
# wherever it starts. Valgrind's exit status reaches only whoever reaps the
# app, which behind a web server is not the test, so its logs decide:
# every error report is pinned on the test during which it appeared, and at
# the end of the session any log with errors, definite leaks or a crash
# fails the run.

_watch = wrapper.ErrorWatch()
_reports = []   # (when: a test's node id or a phase, log path, excerpt)


def pytest_sessionstart(session):
    wrapper.prepare()


def pytest_configure(config):
    config.addinivalue_line("markers", "last: runs after every other test (it reads what the session wrote)")


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)  # stable: the rest keep their order


def pytest_report_header(config):
    if wrapper.active():
        return [f"app wrapper: {' '.join(wrapper.WRAPPER)}", f"time scale: {TIME_SCALE:g}"]
    return [f"time scale: {TIME_SCALE:g}"] if TIME_SCALE != 1 else []


@pytest.fixture(autouse=True)
def _wrapper_reports(request):
    if not wrapper.LOG_DIR:
        yield
        return
    before = f"between tests, before {request.node.nodeid}"
    for path, excerpt in _watch.new_reports(before):
        _reports.append((before, path, excerpt))
    yield
    for path, excerpt in _watch.new_reports(request.node.nodeid):
        _reports.append((request.node.nodeid, path, excerpt))


def _excerpt(path, limit=12000):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more characters)"


def pytest_sessionfinish(session, exitstatus):
    try:
        if not wrapper.LOG_DIR:
            return
        tr = session.config.pluginmanager.get_plugin("terminalreporter")

        def write(line, **markup):
            if tr:
                tr.write_line(line, **markup)
            else:
                print(line)
        # An app stopped at the very end may still be writing its leak report.
        still = wrapper.wait_finished(scaled(10))
        for path, excerpt in _watch.new_reports("session teardown"):
            _reports.append(("session teardown", path, excerpt))
        verdicts = wrapper.scan()
        counts = {v: len(items) for v, items in sorted(verdicts.items())}
        if tr:
            tr.write_sep("=", f"valgrind logs in {wrapper.LOG_DIR}")
        write(f"app processes: {sum(counts.values())} {counts} (killed: no summary, i.e. SIGKILL or stopped "
              f"while valgrind was starting; stopped-by-signal: SIGTERM before the app's handler was in place; "
              f"known-leak: only harness/wrapper.py KNOWN_LEAKS, not the app's)")
        for path in still:
            write(f"still running at the end: {path}")
        for verdict in ("killed", "stopped-by-signal", "known-leak"):
            for path, detail in verdicts.get(verdict, []):
                write(f"{verdict}: {path} (started during {_watch.started_during.get(path)}) {detail}")
        bad = [(v, path, detail) for v in wrapper.BAD for path, detail in verdicts.get(v, [])]
        for when, path, excerpt in _reports:
            write(f"--- error report in {path}, appeared during {when}:\n{excerpt}")
        for verdict, path, detail in bad:
            write(f"--- {verdict}: {path}: {detail}\n{_excerpt(path)}")
        problem = None
        if bad or _reports:
            problem = (f"{len(bad)} app process(es) with errors, definite leaks or a crash; "
                       f"{len(_reports)} error report(s)")
        elif not counts:
            problem = f"no log in {wrapper.LOG_DIR}: the app never ran under the wrapper"
        if problem:
            write(f"FAILED: {problem}", red=True, bold=True)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        else:
            write("valgrind: no errors, no definite leaks in any app process", green=True)
    finally:
        wrapper.cleanup()
