"""test_readiness.py: readiness follows the flow server (issue 14). The
upstream is the real devserver process, which the test kills and starts
again on the same port; the app sits behind lighttpd. Readiness must turn
503 within a few seconds of the flow server going down (its health check
is cached for 2 s and may take 1.5 s), and 200 again once it is back;
liveness stays 200 throughout and never calls the upstream; each change
leaves one line in the log."""
import time

from harness import applog, client, servers
from harness.checks import wait_for
from harness.devserver import DevServer
from harness.timing import scaled

READY = "/openova-flow/readyz"
HEALTH = "/openova-flow/healthz"


def status_of(server, path):
    return client.request(server.port, "GET", path, timeout=scaled(5)).status


def test_readiness_flips_with_the_flow_server(tmp_path):
    flow_server = DevServer(tmp_path / "devserver").start()
    web = servers.WEB_SERVERS["lighttpd"]({"OPENOVA_FLOW_SERVER_URL": flow_server.url, "OPENOVA_FLOW_AUTH": "none"},
                                          tmp_path / "lighttpd", conf="noauth")
    web.start()
    try:
        assert wait_for(lambda: status_of(web, READY) == 200, scaled(5), 0.2), web.logs()

        flow_server.kill()
        down_at = time.monotonic()
        assert wait_for(lambda: status_of(web, READY) == 503, scaled(6), 0.2), web.logs()
        took = time.monotonic() - down_at
        assert took < scaled(5), f"readiness took {took:.1f} s to notice the flow server was gone"
        resp = client.request(web.port, "GET", READY)
        body = resp.json()
        assert body["error"] == "not_ready" and resp.header("Retry-After"), resp
        assert "127.0.0.1" not in resp.body.decode(), "readiness must not tell strangers where the upstream is"
        assert status_of(web, HEALTH) == 200

        flow_server.start()
        up_at = time.monotonic()
        assert wait_for(lambda: status_of(web, READY) == 200, scaled(6), 0.2), web.logs()
        assert time.monotonic() - up_at < scaled(5)

        records = applog.records(web.app_log())
        changes = [r["msg"] for r in records if r["msg"].startswith("upstream health check")]
        assert changes == ["upstream health check passed: ready",
                           changes[1], "upstream health check passed: ready"], changes
        assert changes[1].startswith("upstream health check failed: upstream unreachable"), changes
        # Probes are quiet: no request line of theirs above debug.
        assert not [r for r in records if r.get("route") in ("ready", "health")], records
    finally:
        web.stop()
        flow_server.stop()
