"""Routing on REQUEST_URI and deployment id checks, through each web server
(each must pass REQUEST_URI as the client sent it).

Every row names a request line; refused requests must never reach the
upstream."""
import pytest

from harness import client
from harness.checks import assert_proxy_error
from harness.upstream import json_reply, stream_reply

BASE = "/api/v1/flows"


# (row id, method, path after {base}/{id}, query, upstream method, upstream path suffix)
ROUTES = [
    ("snapshot", "GET", "/snapshot", "", "GET", "snapshot"),
    ("events", "POST", "/events", "", "POST", "events"),
    ("stream", "GET", "/stream", "", "GET", "stream"),
    ("snapshot-query", "GET", "/snapshot", "?since=5&x=%2Fy", "GET", "snapshot"),
    ("events-query", "POST", "/events", "?debug=1", "POST", "events"),
    ("stream-query", "GET", "/stream", "?lastEventId=3", "GET", "stream"),
    ("query-looks-like-route", "GET", "/snapshot", "?/api/v1/flows/x/events", "GET", "snapshot"),
]


@pytest.mark.parametrize("method,suffix,query,up_method,up_route",
                         [r[1:] for r in ROUTES], ids=[r[0] for r in ROUTES])
def test_known_route_reaches_upstream(main, upstream, fid, method, suffix, query, up_method, up_route):
    flow = fid()
    if up_route == "stream":
        upstream.set(flow, stream_reply([(0, b"data: {}\n\n")], end="clean"))
    else:
        upstream.set(flow, json_reply(200, b'{"seq":1}'))
    body = b'{"type":"upsert-flow"}' if method == "POST" else None
    headers = main.auth_headers() + ([("Content-Type", "application/json")] if body else [])
    resp = client.request(main.port, method, f"{BASE}/{flow}{suffix}{query}", headers, body)
    assert resp.status == 200, resp
    recs = upstream.requests(flow)
    assert len(recs) == 1, recs
    # The query only decorates the client's URL: the upstream call is the
    # fixed path of the API table.
    assert (recs[0].method, recs[0].target) == (up_method, f"/v1/flows/{flow}/{up_route}")


# (row id, method, path after {base}/{id}, expected Allow)
WRONG_METHODS = [
    ("snapshot-POST", "POST", "/snapshot", "GET"),
    ("snapshot-PUT", "PUT", "/snapshot", "GET"),
    ("snapshot-DELETE", "DELETE", "/snapshot", "GET"),
    ("events-GET", "GET", "/events", "POST"),
    ("events-PUT", "PUT", "/events", "POST"),
    ("events-PATCH", "PATCH", "/events", "POST"),
    ("stream-POST", "POST", "/stream", "GET"),
    ("stream-DELETE", "DELETE", "/stream", "GET"),
    ("snapshot-POST-with-query", "POST", "/snapshot?x=1", "GET"),
]


@pytest.mark.parametrize("method,suffix,allow", [r[1:] for r in WRONG_METHODS], ids=[r[0] for r in WRONG_METHODS])
def test_wrong_method_is_405_with_allow(main, upstream, fid, method, suffix, allow):
    flow = fid()
    upstream.set(flow, json_reply())
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    resp = client.request(main.port, method, f"{BASE}/{flow}{suffix}", main.auth_headers(), body)
    assert_proxy_error(resp, 405)
    assert resp.header("Allow") == allow
    assert upstream.requests() == []


# (row id, method, target): paths under the mount that are no route
NOT_FOUND = [
    ("id-only", "GET", f"{BASE}/dep-1"),
    ("id-slash", "GET", f"{BASE}/dep-1/"),
    ("mount-root", "GET", f"{BASE}/"),
    ("unknown-suffix", "GET", f"{BASE}/dep-1/status"),
    ("unknown-suffix-post", "POST", f"{BASE}/dep-1/purge"),
    ("extra-segment", "GET", f"{BASE}/dep-1/snapshot/extra"),
    ("trailing-slash", "GET", f"{BASE}/dep-1/snapshot/"),
    ("wrong-case", "GET", f"{BASE}/dep-1/SNAPSHOT"),
    ("suffix-prefix", "GET", f"{BASE}/dep-1/snap"),
    ("suffix-longer", "GET", f"{BASE}/dep-1/snapshots"),
    ("delete-flow", "DELETE", f"{BASE}/dep-1"),
]


@pytest.mark.parametrize("method,target", [r[1:] for r in NOT_FOUND], ids=[r[0] for r in NOT_FOUND])
def test_other_paths_are_404(main, upstream, method, target):
    body = b"{}" if method == "POST" else None
    resp = client.request(main.port, method, target, main.auth_headers(), body)
    assert_proxy_error(resp, 404)
    assert upstream.requests() == []


# (row id, route, method): the empty id on each route
EMPTY_ID = [("snapshot", "snapshot", "GET"), ("events", "events", "POST"), ("stream", "stream", "GET")]


@pytest.mark.parametrize("route,method", [r[1:] for r in EMPTY_ID], ids=[r[0] for r in EMPTY_ID])
def test_empty_id_is_400_deployment_id_required(main, upstream, route, method):
    # lighttpd collapses "//" in its own path, but REQUEST_URI keeps it.
    body = b"{}" if method == "POST" else None
    resp = client.request(main.port, method, f"{BASE}//{route}", main.auth_headers(), body)
    err = assert_proxy_error(resp, 400)
    assert err["message"] == "deploymentId required"
    assert upstream.requests() == []


VALID_IDS = [
    ("one-char", "A"),
    ("digit", "0"),
    ("all-classes", "aZ09._~-"),
    ("hex-16", "0123456789abcdef"),
    ("three-dots", "..."),
    ("dot-prefix", ".hidden"),
    ("128-chars", ("dep-" + "x" * 200)[:128]),
]


@pytest.mark.parametrize("flow", [r[1] for r in VALID_IDS], ids=[r[0] for r in VALID_IDS])
def test_valid_ids_reach_upstream_unchanged(main, upstream, flow):
    upstream.set(flow, json_reply(200, b'{"ok":1}'))
    resp = client.request(main.port, "GET", f"{BASE}/{flow}/snapshot", main.auth_headers())
    assert resp.status == 200, resp
    recs = upstream.requests()
    assert [r.target for r in recs] == [f"/v1/flows/{flow}/snapshot"]


INVALID_IDS = [
    ("129-chars", "d" * 129),
    ("dot", "."),
    ("encoded-slash", "a%2Fb"),
    ("encoded-percent", "a%25b"),
    ("encoded-space", "a%20b"),
    ("encoded-utf8", "d%C3%A9p"),
    ("at", "dep@1"),
    ("plus", "dep+1"),
    ("colon", "dep:1"),
    ("comma", "dep,1"),
    ("semicolon", "dep;1"),
    ("equals", "dep=1"),
    ("bang", "dep!1"),
    ("star", "dep*1"),
    ("dollar", "dep$1"),
    ("quote", "dep'1"),
    ("paren", "dep(1)"),
    ("ampersand", "dep&1"),
]


# (web server, id) -> the status the web server answers itself, before the
# app: Apache refuses an encoded slash in a path with its own HTML 404
# unless AllowEncodedSlashes is set (conf/apache2/openova-flow-fcgi.conf
# leaves it off on purpose).
REFUSED_BY_WEB_SERVER = {("apache", "a%2Fb"): 404}


@pytest.mark.parametrize("flow", [r[1] for r in INVALID_IDS], ids=[r[0] for r in INVALID_IDS])
@pytest.mark.parametrize("route,method", [("snapshot", "GET"), ("events", "POST")], ids=["snapshot", "events"])
def test_invalid_ids_are_400(main, web, upstream, flow, route, method):
    upstream.set(flow, json_reply())
    body = b"{}" if method == "POST" else None
    resp = client.request(main.port, method, f"{BASE}/{flow}/{route}", main.auth_headers(), body)
    if (web, flow) in REFUSED_BY_WEB_SERVER:
        assert resp.status == REFUSED_BY_WEB_SERVER[(web, flow)], resp
        assert "requestId" not in resp.body.decode("latin-1"), resp
    else:
        assert_proxy_error(resp, 400)
    assert upstream.requests() == []


def test_invalid_id_on_stream_is_400(main, upstream):
    resp = client.request(main.port, "GET", f"{BASE}/dep%201/stream", main.auth_headers())
    assert_proxy_error(resp, 400)
    assert upstream.requests() == []


def test_dotdot_never_reaches_upstream(main, upstream):
    # lighttpd resolves "/api/v1/flows/../snapshot" to "/api/v1/snapshot",
    # outside the mount: it answers 404 itself. The app's own ".." check is
    # in test_fastcgi_direct.py.
    resp = client.request(main.port, "GET", f"{BASE}/../snapshot", main.auth_headers())
    assert resp.status in (400, 404), resp
    assert upstream.requests() == []
