"""Authentication and the header allowlist.

- remote-user (default) behind the web server's basic auth: the upstream
  gets X-Forwarded-User with the user the web server authenticated.
- remote-user without authentication in front ("nouser"): no REMOTE_USER
  (nginx: the shipped noauth config passes none, not even a name from a
  client's Authorization header), 401, and the upstream is never called.
- none ("authnone", web server without auth): requests pass, no user.
- Only allowlisted request headers reach the upstream."""
import pytest

from harness import client, servers
from harness.checks import assert_proxy_error
from harness.upstream import json_reply, stream_reply

BASE = "/api/v1/flows"

# (row id, method, route)
ROUTES = [("snapshot", "GET", "snapshot"), ("events", "POST", "events"), ("stream", "GET", "stream")]


def _reply_for(route):
    if route == "stream":
        return stream_reply([(0, b"data: {}\n\n")], end="clean")
    return json_reply(200, b'{"ok":true}')


def _call(server, method, route, flow, headers):
    body = b'{"type":"upsert-flow"}' if method == "POST" else None
    return client.request(server.port, method, f"{BASE}/{flow}/{route}", headers, body)


@pytest.mark.parametrize("method,route", [r[1:] for r in ROUTES], ids=[r[0] for r in ROUTES])
def test_remote_user_forwarded(main, upstream, fid, method, route):
    flow = fid()
    upstream.set(flow, _reply_for(route))
    resp = _call(main, method, route, flow, main.auth_headers())
    assert resp.status == 200, resp
    (rec,) = upstream.requests(flow)
    assert rec.header("X-Forwarded-User") == servers.USER


# (row id, Authorization header or None): the web server itself refuses these
LIGHTTPD_REFUSES = [
    ("no-credentials", None),
    ("wrong-password", client.basic_auth(servers.USER, "not-the-password")),
    ("unknown-user", client.basic_auth("mallory", servers.PASSWORD)),
]


@pytest.mark.parametrize("auth", [r[1] for r in LIGHTTPD_REFUSES], ids=[r[0] for r in LIGHTTPD_REFUSES])
def test_shipped_config_protects_the_mount(main, upstream, fid, auth):
    flow = fid()
    upstream.set(flow, json_reply())
    resp = client.request(main.port, "GET", f"{BASE}/{flow}/snapshot", [auth] if auth else [])
    assert resp.status == 401
    assert (resp.header("WWW-Authenticate") or "").startswith("Basic ")
    assert upstream.requests() == []


@pytest.mark.parametrize("method,route", [r[1:] for r in ROUTES], ids=[r[0] for r in ROUTES])
def test_no_remote_user_is_401_and_never_reaches_upstream(instances, web, upstream, fid, method, route):
    nouser = instances.get("nouser", web)   # server without auth, OPENOVA_FLOW_AUTH=remote-user
    flow = fid()
    upstream.set(flow, _reply_for(route))
    # Credentials and a forged user header change nothing: the user comes
    # from REMOTE_USER only.
    headers = [client.basic_auth(servers.USER, servers.PASSWORD), ("X-Forwarded-User", "alice"),
               ("Remote-User", "alice")]
    resp = _call(nouser, method, route, flow, headers)
    assert_proxy_error(resp, 401)
    assert upstream.requests() == []


@pytest.mark.parametrize("method,route", [r[1:] for r in ROUTES], ids=[r[0] for r in ROUTES])
def test_auth_none_passes_without_user(instances, web, upstream, fid, method, route):
    authnone = instances.get("authnone", web)   # server without auth, OPENOVA_FLOW_AUTH=none
    flow = fid()
    upstream.set(flow, _reply_for(route))
    resp = _call(authnone, method, route, flow, [("X-Forwarded-User", "mallory")])
    assert resp.status == 200, resp
    (rec,) = upstream.requests(flow)
    assert "x-forwarded-user" not in rec.header_names(), rec.headers


# What a client sends on every route, and what the upstream must receive:
# (header, value sent, expected at the upstream: a value, None = absent).
# Per route, "Accept" is the client's on snapshot, text/event-stream on
# stream; Content-Type travels on events.
CLIENT_HEADERS = [
    ("X-Forwarded-User", "mallory", servers.USER),
    ("Cookie", "session=stolen", None),
    ("X-Evil", "1", None),
    ("X-Evil-Two", "<script>", None),
    ("X-Real-IP", "6.6.6.6", None),
    ("Forwarded", "for=6.6.6.6", None),
    ("X-Forwarded-Host", "evil.example", None),
    ("Proxy-Authorization", "Basic Zm9vOmJhcg==", None),
    ("Origin", "https://evil.example", None),
    ("Referer", "https://evil.example/", None),
    ("X-Request-ID", "allowlist-rid-1", "allowlist-rid-1"),
]
PER_ROUTE = {
    "snapshot": [("Accept", "application/json", "application/json")],
    "events": [("Content-Type", "application/cbor", "application/cbor"), ("Accept", "application/json", None)],
    "stream": [("Last-Event-ID", "99", "99"), ("Accept", "*/*", "text/event-stream")],
}


@pytest.mark.parametrize("method,route", [r[1:] for r in ROUTES], ids=[r[0] for r in ROUTES])
def test_header_allowlist(main, upstream, fid, method, route):
    flow = fid()
    upstream.set(flow, _reply_for(route))
    table = CLIENT_HEADERS + PER_ROUTE[route]
    headers = main.auth_headers() + [(name, sent) for name, sent, _ in table]
    resp = _call(main, method, route, flow, headers)
    assert resp.status == 200, resp
    (rec,) = upstream.requests(flow)
    wrong = []
    for name, sent, expected in table:
        if name == "Accept" and route == "events":
            continue  # either way is fine for events
        got = rec.header(name)
        if got != expected:
            wrong.append((name, sent, expected, got))
    assert not wrong, f"(header, sent, expected, received): {wrong}"
    # The client's credentials never leave the proxy.
    assert rec.header("Authorization") is None
    # X-Forwarded-For is the client's address as the web server saw it.
    assert rec.header("X-Forwarded-For") == "127.0.0.1"
