"""Shared fixtures: one test upstream for the session, and real lighttpd
instances (each spawning the built app) started on first use, one per
configuration, torn down at the end of the session."""
import itertools
import os
import re

import pytest

from harness import servers
from harness.upstream import RefusingPort, Upstream

# Each configuration the suite needs: which lighttpd conf and the app's
# OPENOVA_FLOW_* settings (OPENOVA_FLOW_SERVER_URL is the test upstream
# unless given). Started lazily, so running one file starts only its own.
CONFIGS = {
    # basic auth in lighttpd, remote-user in the app; no keepalive comments
    # so that stream bodies are exactly the upstream's bytes
    "main": ("lighttpd.conf", {"OPENOVA_FLOW_KEEPALIVE": "0"}),
    # keepalive every second: comments, and a client that left is noticed
    "keepalive": ("lighttpd.conf", {"OPENOVA_FLOW_KEEPALIVE": "1s"}),
    # lighttpd without mod_auth, app without authentication
    "authnone": ("lighttpd-noauth.conf", {"OPENOVA_FLOW_AUTH": "none", "OPENOVA_FLOW_KEEPALIVE": "0"}),
    # lighttpd without mod_auth, app still expecting REMOTE_USER: 401
    "nouser": ("lighttpd-noauth.conf", {"OPENOVA_FLOW_AUTH": "remote-user"}),
    "timeout": ("lighttpd.conf", {"OPENOVA_FLOW_PROXY_TIMEOUT": "1s", "OPENOVA_FLOW_KEEPALIVE": "0"}),
    "refused": ("lighttpd.conf", {"OPENOVA_FLOW_SERVER_URL": "<refused>"}),
    "maxbody": ("lighttpd.conf", {"OPENOVA_FLOW_MAX_BODY": "1024"}),
    "maxstreams": ("lighttpd.conf", {"OPENOVA_FLOW_MAX_STREAMS": "2", "OPENOVA_FLOW_KEEPALIVE": "1s"}),
}


@pytest.fixture(scope="session", autouse=True)
def built_binary():
    assert os.access(servers.BINARY, os.X_OK), \
        f"{servers.BINARY} missing: run `make` first (make check does)"
    assert os.access(servers.LIGHTTPD, os.X_OK), "lighttpd missing: apt-get install lighttpd"


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

    def app_env(self, name):
        conf, env = CONFIGS[name]
        full = {"OPENOVA_FLOW_SERVER_URL": self.upstream.url}
        full.update(env)
        if full["OPENOVA_FLOW_SERVER_URL"] == "<refused>":
            full["OPENOVA_FLOW_SERVER_URL"] = self.refusing_port.url
        return conf, full

    def get(self, name):
        if name not in self.running:
            conf, env = self.app_env(name)
            server = servers.Lighttpd(env, self.tmp.mktemp(name), conf=conf)
            self.running[name] = server
            server.start()
        return self.running[name]

    def stop_all(self):
        for server in self.running.values():
            server.stop()
        self.running.clear()


@pytest.fixture(scope="session")
def instances(upstream, refusing_port, tmp_path_factory):
    inst = Instances(upstream, refusing_port, tmp_path_factory)
    yield inst
    inst.stop_all()


@pytest.fixture
def main(instances):
    return instances.get("main")


_ids = itertools.count(1)


@pytest.fixture
def fid(request):
    """A fresh flow id per call, named after the test (valid id chars)."""
    base = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:60].strip("-")

    def make(tag=""):
        return f"{base}{'-' + tag if tag else ''}-{next(_ids)}"
    return make
