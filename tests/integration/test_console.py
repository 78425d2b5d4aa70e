"""test_console.py: the central console's mode (issue 16): one proxy behind
lighttpd in front of several Sovereigns, each deployment sent to the flow
server its record names. The Sovereigns are real devservers over TLS with
a CA of the test's own (one of them also wants the console's client
certificate), each on its own loopback address and the same port, so that
one template (https://openova-flow.{sovereignFQDN}:PORT) and
OPENOVA_FLOW_RESOLVE reach them all; a third "Sovereign" accepts
connections and never answers. The records directory is written while the
proxy runs, as the catalyst-api writes it."""
import json
import os
import socket
import threading
import time

import pytest

from harness import applog, client, servers
from harness.checks import assert_proxy_error, wait_for
from harness.devserver import DevServer, node_message
from harness.testca import CertificateAuthority
from harness.timing import scaled
from harness.upstream import Upstream, json_reply

BASE = "/api/v1/flows"
ADDRESSES = {"sov-a": "127.0.0.2", "sov-b": "127.0.0.3", "sov-hang": "127.0.0.4"}
TEMPLATE = "https://openova-flow.{sovereignFQDN}:%d"


def flow_host(sovereign):
    return f"openova-flow.{sovereign}.test"


def common_port():
    """A port free on every Sovereign's address."""
    for _ in range(50):
        port = servers.free_port()
        taken = []
        try:
            for address in ADDRESSES.values():
                s = socket.socket()
                taken.append(s)
                s.bind((address, port))
            return port
        except OSError:
            continue
        finally:
            for s in taken:
                s.close()
    raise RuntimeError("no port free on every Sovereign address")


class Hanging:
    """Accepts connections and never answers (nor finishes a handshake)."""

    def __init__(self, address, port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(64)
        self.held = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self):
        self.sock.close()
        for conn in self.held:
            conn.close()


def write_record(directory, dep, fqdn, go_keys=False, raw=None):
    """<dep>.json as the catalyst-api writes it: a temporary file renamed
    over the record. raw: the file's text as it is."""
    if raw is None:
        record = {"ID": dep, "Request": {"SovereignFQDN": fqdn}} if go_keys else \
            {"id": dep, "request": {"sovereignFQDN": fqdn, "region": "fsn1"}, "status": "running"}
        raw = json.dumps(record)
    tmp = os.path.join(directory, f".{dep}.tmp")
    with open(tmp, "w") as f:
        f.write(raw)
    os.rename(tmp, os.path.join(directory, f"{dep}.json"))


class Sovereigns:
    def __init__(self, tmp):
        self.tmp = tmp
        self.ca = CertificateAuthority(tmp / "ca")
        self.wrong_ca = CertificateAuthority(tmp / "wrong-ca", name="wrong")
        cert, key = self.ca.issue("flow-servers", [flow_host(s) for s in ADDRESSES])
        self.client_cert, self.client_key = self.ca.issue("console", client=True)
        self.port = common_port()
        tls = {"FLOW_SERVER_TLS_CERT": cert, "FLOW_SERVER_TLS_KEY": key, "FLOW_SERVER_HEARTBEAT": "1s"}
        self.a = DevServer(tmp / "sov-a", port=self.port, host=ADDRESSES["sov-a"], env=tls).start()
        # The second wants the console's certificate too: mutual TLS.
        self.b = DevServer(tmp / "sov-b", port=self.port, host=ADDRESSES["sov-b"],
                           env=dict(tls, FLOW_SERVER_TLS_CLIENT_CA=self.ca.cert)).start()
        self.hang = Hanging(ADDRESSES["sov-hang"], self.port)
        self.records = str(tmp / "records")
        os.makedirs(self.records)

    def env(self, **extra):
        env = {
            "OPENOVA_FLOW_AUTH": "none",
            "OPENOVA_FLOW_DEPLOYMENTS_DIR": self.records,
            "OPENOVA_FLOW_UPSTREAM_TEMPLATE": TEMPLATE % self.port,
            "OPENOVA_FLOW_RESOLVE": ",".join(f"{flow_host(s)}:{self.port}:{a}" for s, a in ADDRESSES.items()),
            "OPENOVA_FLOW_CA_FILE": self.ca.cert,
            "OPENOVA_FLOW_CLIENT_CERT": self.client_cert,
            "OPENOVA_FLOW_CLIENT_KEY": self.client_key,
            "OPENOVA_FLOW_CONNECT_TIMEOUT": "2s",
            "OPENOVA_FLOW_AUTH_DELETE": "none",
        }
        env.update(extra)
        return {k: v for k, v in env.items() if v is not None}

    def close(self):
        self.a.stop()
        self.b.stop()
        self.hang.close()


@pytest.fixture(scope="module")
def sovereigns(tmp_path_factory):
    s = Sovereigns(tmp_path_factory.mktemp("console"))
    yield s
    s.close()


def start_console(sovereigns, workdir, **extra):
    web = servers.WEB_SERVERS["lighttpd"](sovereigns.env(**extra), workdir, conf="noauth")
    return web.start()


@pytest.fixture(scope="module")
def console(sovereigns, tmp_path_factory):
    web = start_console(sovereigns, tmp_path_factory.mktemp("console-lighttpd"))
    yield web
    web.stop()


def snapshot(web, dep, timeout=None):
    return client.request(web.port, "GET", f"{BASE}/{dep}/snapshot", timeout=timeout)


def post(web, dep, node):
    return client.request(web.port, "POST", f"{BASE}/{dep}/events", [("Content-Type", "application/json")],
                          node_message(dep, node))


def node_ids(resp):
    return sorted(n["id"] for n in resp.json().get("nodes") or [])


def served(devserver, dep):
    """The requests for dep in a devserver's log."""
    return [line for line in devserver.log().splitlines() if f"/v1/flows/{dep}/" in line or
            line.endswith(f"/v1/flows/{dep}\"")]


def test_each_deployment_reaches_its_own_sovereign(sovereigns, console):
    write_record(sovereigns.records, "dep-a", "sov-a.test")
    write_record(sovereigns.records, "dep-b", "sov-b.test", go_keys=True)   # Go's own field names
    streams = {dep: client.Stream(console.port, f"{BASE}/{dep}/stream") for dep in ("dep-a", "dep-b")}
    try:
        for dep, stream in streams.items():
            assert stream.status == 200, (dep, console.logs())
        assert post(console, "dep-a", "node-a").status == 200
        assert post(console, "dep-b", "node-b").status == 200
        for dep, node in (("dep-a", b"node-a"), ("dep-b", b"node-b")):
            assert streams[dep].read_until(lambda s, n=node: n in s.body, scaled(5)), (dep, streams[dep].body)
        assert b"node-b" not in streams["dep-a"].body and b"node-a" not in streams["dep-b"].body
    finally:
        for stream in streams.values():
            stream.close()
    assert node_ids(snapshot(console, "dep-a")) == ["node-a"]
    assert node_ids(snapshot(console, "dep-b")) == ["node-b"]
    assert wait_for(lambda: served(sovereigns.a, "dep-a") and served(sovereigns.b, "dep-b"), scaled(2))
    assert not served(sovereigns.a, "dep-b") and not served(sovereigns.b, "dep-a")
    # Each request line names the Sovereign it went to.
    lines = [r for r in applog.records(console.app_log()) if r["msg"] == "request" and r.get("route") == "snapshot"]
    for dep, sovereign in (("dep-a", "sov-a"), ("dep-b", "sov-b")):
        mine = [r for r in lines if r.get("id") == dep]
        assert mine and mine[-1]["upstream"] == f"https://{flow_host(sovereign)}:{sovereigns.port}", mine


def test_records_take_effect_on_the_next_request(sovereigns, console):
    dep = "dep-moving"
    assert_proxy_error(snapshot(console, dep), 404)["error"] == "deployment_not_found"
    write_record(sovereigns.records, dep, "sov-a.test")                # added
    assert post(console, dep, "first").status == 200
    assert node_ids(snapshot(console, dep)) == ["first"]
    write_record(sovereigns.records, dep, "sov-b.test")                # pointing elsewhere
    assert post(console, dep, "second").status == 200
    assert node_ids(snapshot(console, dep)) == ["second"]              # B's state, not A's
    # (a devserver logs a request when it has completed: a moment later)
    assert wait_for(lambda: len(served(sovereigns.a, dep)) == 2 and len(served(sovereigns.b, dep)) == 2, scaled(2))
    os.unlink(os.path.join(sovereigns.records, f"{dep}.json"))         # removed
    body = assert_proxy_error(snapshot(console, dep), 404)
    assert body["error"] == "deployment_not_found", body
    assert len(served(sovereigns.a, dep)) == 2 and len(served(sovereigns.b, dep)) == 2


def hostile_records(outside):
    long_name = ".".join(["a" * 63] * 4) + ".test"   # 256 characters
    rows = [(f"fqdn-{i}", fqdn, 502, "deployment_fqdn_invalid") for i, fqdn in enumerate([
        "sov-a.test/evil", "user@sov-a.test", "sov-a.test:8443", "sov-a%2etest", "sov-a.test?x=1", "sov-a.test#x",
        "sov-a .test", "sov-a..test", "sov-a.test.", "sov-a.test evil", "", long_name, "-sov-a.test",
        "s\u00f6v.test", "169.254.169.254", "127.0.0.1", "2130706433"])]
    rows += [
        ("no-request", json.dumps({"id": "x"}), 502, "deployment_fqdn_invalid"),
        ("number-fqdn", json.dumps({"request": {"sovereignFQDN": 7}}), 502, "deployment_record_invalid"),
        ("malformed", '{"request": {"sovereignFQDN": "sov-a.test"', 502, "deployment_record_invalid"),
        ("an-array", json.dumps([{"request": {"sovereignFQDN": "sov-a.test"}}]), 502, "deployment_record_invalid"),
        ("nul-inside", json.dumps({"request": {"sovereignFQDN": "sov-a.test\u0000.evil"}}), 502,
         "deployment_record_invalid"),
        ("two-cases", '{"request": {"sovereignFQDN": "sov-a.test", "SovereignFQDN": "sov-b.test"}}', 502,
         "deployment_record_invalid"),
        ("oversized", " " * (1024 * 1024) + json.dumps({"request": {"sovereignFQDN": "sov-a.test"}}), 502,
         "deployment_record_invalid"),
        ("symlink-out", ("symlink", os.path.join(outside, "secret.json")), 502, "deployment_record_invalid"),
        ("fifo", ("fifo",), 502, "deployment_record_invalid"),
    ]
    return rows


def test_hostile_records_are_refused_before_any_upstream_call(sovereigns, console, tmp_path):
    outside = str(tmp_path)
    write_record(outside, "secret", "sov-a.test")
    rows = hostile_records(outside)
    for dep, content, _, _ in rows:
        path = os.path.join(sovereigns.records, f"{dep}.json")
        if isinstance(content, tuple) and content[0] == "symlink":
            os.symlink(content[1], path)
        elif isinstance(content, tuple):
            os.mkfifo(path)
        elif dep.startswith("fqdn-"):
            write_record(sovereigns.records, dep, content)
        else:
            write_record(sovereigns.records, dep, None, raw=content)
    before = (sovereigns.a.log(), sovereigns.b.log(), len(sovereigns.hang.held))
    for dep, _, status, code in rows:
        for method, target in (("GET", f"{BASE}/{dep}/snapshot"), ("POST", f"{BASE}/{dep}/events")):
            resp = client.request(console.port, method, target, [("Content-Type", "application/json")],
                                  node_message(dep, "n") if method == "POST" else None)
            body = assert_proxy_error(resp, status)
            assert body["error"] == code, (dep, body)
        stream = client.request(console.port, "GET", f"{BASE}/{dep}/stream")
        assert assert_proxy_error(stream, status)["error"] == code, (dep, stream)
    assert (sovereigns.a.log(), sovereigns.b.log(), len(sovereigns.hang.held)) == before
    lines = [r for r in applog.records(console.app_log()) if r["msg"].startswith("refused: deployment fqdn-")]
    assert lines and all(r.get("rid") for r in lines), lines


def test_a_wrong_ca_is_a_502_naming_tls(sovereigns, tmp_path):
    write_record(sovereigns.records, "dep-a", "sov-a.test")
    web = start_console(sovereigns, tmp_path / "lighttpd", OPENOVA_FLOW_CA_FILE=sovereigns.wrong_ca.cert)
    try:
        body = assert_proxy_error(snapshot(web, "dep-a"), 502)
        assert body["error"] == "upstream_tls", body
        assert "TLS" in body["message"], body
        failed = [r for r in applog.records(web.app_log()) if r["msg"].startswith("upstream snapshot failed")]
        assert failed and "TLS" in failed[-1]["msg"], failed
    finally:
        web.stop()


def test_mutual_tls_shows_the_client_certificate(sovereigns, console, tmp_path):
    write_record(sovereigns.records, "dep-b", "sov-b.test")
    assert snapshot(console, "dep-b").status in (200, 404)   # with the certificate: the flow server's own answer
    web = start_console(sovereigns, tmp_path / "lighttpd", OPENOVA_FLOW_CLIENT_CERT=None,
                        OPENOVA_FLOW_CLIENT_KEY=None)
    try:
        resp = snapshot(web, "dep-b")
        # the flow server's own refusal, passed through: text/plain, as the reference's errors
        assert resp.status == 403 and b"client certificate" in resp.body, resp
        assert resp.header("Content-Type").startswith("text/plain"), resp
    finally:
        web.stop()


def test_a_hanging_sovereign_does_not_slow_the_others(sovereigns, console):
    write_record(sovereigns.records, "dep-hang", "sov-hang.test")
    write_record(sovereigns.records, "dep-a", "sov-a.test")
    assert post(console, "dep-a", "steady").status == 200
    results = []
    hung = [threading.Thread(target=lambda: results.append(snapshot(console, "dep-hang", timeout=scaled(20))))
            for _ in range(4)]
    hung_stream = client.Stream(console.port, f"{BASE}/dep-hang/stream", timeout=scaled(20))
    try:
        for t in hung:
            t.start()
        wait_for(lambda: len(sovereigns.hang.held) >= 4, scaled(5))
        for _ in range(10):
            started = time.monotonic()
            assert snapshot(console, "dep-a").status == 200
            assert time.monotonic() - started < scaled(1.0), "a hanging Sovereign slowed another one"
        for t in hung:
            t.join(scaled(20))
    finally:
        hung_stream.close()
    # The hanging one ends with the connect timeout (2 s, the handshake included).
    assert [r.status for r in results] == [504] * 4, results
    assert {r.json()["error"] for r in results} == {"upstream_timeout"}


def test_the_purge(sovereigns, console):
    write_record(sovereigns.records, "dep-purged", "sov-a.test")
    assert post(console, "dep-purged", "gone-soon").status == 200
    resp = client.request(console.port, "DELETE", f"{BASE}/dep-purged")
    assert resp.status == 204 and resp.body == b"", resp
    assert snapshot(console, "dep-purged").status == 404     # the flow server's: the flow is gone
    assert wait_for(lambda: '"DELETE /v1/flows/dep-purged"' in sovereigns.a.log(), scaled(2))
    resp = client.request(console.port, "GET", f"{BASE}/dep-purged")
    assert_proxy_error(resp, 405)
    assert resp.header("Allow") == "DELETE"


def test_readiness_is_the_process_own(sovereigns, tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    web = start_console(sovereigns, tmp_path / "lighttpd", OPENOVA_FLOW_DEPLOYMENTS_DIR=str(records))
    try:
        held = len(sovereigns.hang.held)
        resp = client.request(web.port, "GET", "/openova-flow/readyz")
        assert resp.status == 200, resp
        os.rmdir(records)
        assert wait_for(lambda: client.request(web.port, "GET", "/openova-flow/readyz").status == 503, scaled(5),
                        0.2), web.logs()
        assert len(sovereigns.hang.held) == held
        msgs = [r["msg"] for r in applog.records(web.app_log()) if r["msg"].startswith("records directory")]
        assert msgs[-1].startswith("records directory check failed"), msgs
    finally:
        web.stop()


# --- the Sovereign mode beside it: one URL for all ------------------------

@pytest.fixture
def plain_upstream():
    u = Upstream()
    yield u
    u.close()


def test_server_url_wins_and_the_purge_stays_off(sovereigns, plain_upstream, tmp_path):
    write_record(sovereigns.records, "dep-a", "sov-a.test")
    plain_upstream.set("dep-a", json_reply(200, b'{"flow":{"id":"dep-a","status":"from-server-url"}}'))
    web = start_console(sovereigns, tmp_path / "lighttpd", OPENOVA_FLOW_SERVER_URL=plain_upstream.url,
                        OPENOVA_FLOW_AUTH_DELETE=None)
    try:
        resp = snapshot(web, "dep-a")
        assert resp.status == 200 and resp.json()["flow"]["status"] == "from-server-url", resp
        snapshot(web, "dep-unrecorded")    # no record needed: every deployment goes to the one URL
        resp = client.request(web.port, "DELETE", f"{BASE}/dep-a")
        assert assert_proxy_error(resp, 404)["error"] == "not_found"
        assert [(r.method, r.target) for r in plain_upstream.requests()] == [
            ("GET", "/v1/flows/dep-a/snapshot"), ("GET", "/v1/flows/dep-unrecorded/snapshot")]
        warned = [r for r in applog.records(web.app_log()) if "OPENOVA_FLOW_DEPLOYMENTS_DIR is not used" in r["msg"]]
        assert warned, web.app_log()
    finally:
        web.stop()


def test_the_upstream_token_goes_upstream_never_the_client_s(sovereigns, plain_upstream, tmp_path):
    token_file = tmp_path / "upstream-token"
    token_file.write_text("tok-1\n")
    web = start_console(sovereigns, tmp_path / "lighttpd", OPENOVA_FLOW_SERVER_URL=plain_upstream.url,
                        OPENOVA_FLOW_DEPLOYMENTS_DIR=None, OPENOVA_FLOW_UPSTREAM_TOKEN_FILE=str(token_file))
    try:
        plain_upstream.set("dep-t", json_reply(200, b"{}"))
        resp = client.request(web.port, "GET", f"{BASE}/dep-t/snapshot", [("Authorization", "Bearer the-clients")])
        assert resp.status == 200, resp
        (req,) = plain_upstream.requests("dep-t")
        assert req.header("Authorization") == "Bearer tok-1", req.headers
        # Re-read when it changes (looked at once a second).
        tmp = tmp_path / "upstream-token.new"
        tmp.write_text("tok-2")
        os.rename(tmp, token_file)
        time.sleep(1.2)
        assert client.request(web.port, "GET", f"{BASE}/dep-t/snapshot").status == 200
        assert plain_upstream.requests("dep-t")[-1].header("Authorization") == "Bearer tok-2"
        longest = "a" * 2040 + "/+-._~=="    # 2048 characters of RFC 6750's b64token
        tmp.write_text(longest + "\n")
        os.rename(tmp, token_file)
        time.sleep(1.2)
        assert client.request(web.port, "GET", f"{BASE}/dep-t/snapshot").status == 200
        assert plain_upstream.requests("dep-t")[-1].header("Authorization") == f"Bearer {longest}"
        # A bad edit is logged and the token loaded before stays in use.
        tmp.write_text("two words")
        os.rename(tmp, token_file)
        time.sleep(1.2)
        assert client.request(web.port, "GET", f"{BASE}/dep-t/snapshot").status == 200
        assert plain_upstream.requests("dep-t")[-1].header("Authorization") == f"Bearer {longest}"
        assert "upstream token file" in web.app_log()
    finally:
        web.stop()
    bad = servers.run_cli(["--check-config"], env=sovereigns.env(OPENOVA_FLOW_UPSTREAM_TOKEN_FILE=str(token_file)))
    assert bad.returncode == 2 and b"upstream token file" in bad.stderr, bad


def test_print_and_check_config(sovereigns, tmp_path):
    env = sovereigns.env()
    out = servers.run_cli(["--print-config"], env=env)
    config = servers.parse_json_object(out.stdout.decode())
    assert config["upstream_mode"] == "console", config
    assert config["deployments_dir"] == sovereigns.records and config["upstream_url"] is None, config
    assert config["upstream_template"] == TEMPLATE % sovereigns.port, config
    assert config["auth_delete"] == "none", config
    assert servers.run_cli(["--check-config"], env=env).returncode == 0
    bad = servers.run_cli(["--check-config"], env=dict(env, OPENOVA_FLOW_DEPLOYMENTS_DIR=str(tmp_path / "none"),
                                                        OPENOVA_FLOW_UPSTREAM_TEMPLATE="https://{region}.x"))
    assert bad.returncode == 2, bad
    assert b"OPENOVA_FLOW_UPSTREAM_TEMPLATE" in bad.stderr, bad.stderr
    missing = servers.run_cli(["--check-config"], env=dict(env, OPENOVA_FLOW_DEPLOYMENTS_DIR=str(tmp_path / "none")))
    assert missing.returncode == 2 and b"OPENOVA_FLOW_DEPLOYMENTS_DIR" in missing.stderr, missing


def test_check_config_reads_the_client_certificate(sovereigns, tmp_path):
    env = sovereigns.env(OPENOVA_FLOW_CLIENT_CERT=str(tmp_path / "missing.pem"))
    bad = servers.run_cli(["--check-config"], env=env)
    assert bad.returncode == 2 and b"OPENOVA_FLOW_CLIENT_CERT: cannot read" in bad.stderr, bad
