"""The app's own authentication (issue 5), through each web server without
auth in front: bearer tokens from a tokens file, JWTs (RS256, ES256, HS256)
from the Authorization header or a cookie, per-route method lists (403 for a
known caller on the wrong route), files re-read when they change, a stream
ended when its JWT expires, and no secret in any log line."""
import json
import time

import pytest

from harness import authkeys, client
from harness.checks import assert_proxy_error, wait_for
from harness.upstream import json_reply, stream_reply
from harness.timing import scaled

BASE = "/api/v1/flows"
FRAME = b'event: upsert-flow\nid: 1\ndata: {"type":"upsert-flow"}\n\n'


def bearer(token):
    return [("Authorization", f"Bearer {token}")]


def snapshot(server, upstream, flow, headers):
    upstream.set(flow, json_reply(200, b'{"flow":{}}'))
    return client.request(server.port, "GET", f"{BASE}/{flow}/snapshot", headers)


def events(server, upstream, flow, headers):
    upstream.set(flow, json_reply(200, b'{"seq":1}'))
    return client.request(server.port, "POST", f"{BASE}/{flow}/events",
                          headers + [("Content-Type", "application/json")], b'{"type":"upsert-flow"}')


def assert_refused(resp, upstream, status, code, challenge):
    body = assert_proxy_error(resp, status)
    assert body["error"] == code, body
    www = resp.header("WWW-Authenticate")
    if challenge is None:
        assert www is None, resp.headers
    else:
        assert www is not None and www.startswith("Bearer "), resp.headers
        assert challenge in www, www
    assert upstream.requests() == []


@pytest.fixture
def bearer_app(instances, web):
    return instances.get("bearer", web)


@pytest.fixture
def jwt_app(instances, web):
    return instances.get("jwt", web)


@pytest.fixture
def keys(instances):
    return instances.keys


# ---- bearer ----

@pytest.mark.parametrize("named", [True, False], ids=["named", "unnamed"])
def test_bearer_token_lets_in_with_its_name(bearer_app, upstream, fid, keys, named):
    flow = fid()
    token = keys.emitter_token if named else keys.unnamed_token
    resp = snapshot(bearer_app, upstream, flow, bearer(token))
    assert resp.status == 200, resp
    (rec,) = upstream.requests(flow)
    user = rec.header("X-Forwarded-User")
    assert user == "emitter-eu" if named else (user or "").startswith("token-"), user
    assert rec.header("Authorization") is None


# (row id, headers, expected code, WWW-Authenticate must contain)
BEARER_REFUSALS = [
    ("no-credentials", [], "unauthorized", 'realm="openova-flow"'),
    ("wrong-token", bearer("not-a-token-we-know"), "invalid_credentials", 'error="invalid_token"'),
    ("basic-scheme", [("Authorization", "Basic YWxpY2U6c2VjcmV0")], "invalid_credentials", 'error="invalid_token"'),
    ("empty-bearer", [("Authorization", "Bearer ")], "invalid_credentials", 'error="invalid_token"'),
    # (lighttpd refuses headers past 8 KiB itself: 431 from the web server)
    ("long-token", bearer("x" * 6000), "invalid_credentials", 'error="invalid_token"'),
]


@pytest.mark.parametrize("headers,code,challenge", [r[1:] for r in BEARER_REFUSALS],
                         ids=[r[0] for r in BEARER_REFUSALS])
def test_bearer_refusals(bearer_app, upstream, fid, headers, code, challenge):
    resp = snapshot(bearer_app, upstream, fid(), headers)
    upstream.reset()  # snapshot() set a reply; only calls count
    assert_refused(resp, upstream, 401, code, challenge)


def test_tokens_file_reread_when_it_changes(bearer_app, upstream, fid, keys):
    fresh = "rotated-" + keys.emitter_token[:16]
    try:
        keys.write_tokens([(fresh, "rotated")])
        # The app looks at the file at most once a second.
        ok = wait_for(lambda: snapshot(bearer_app, upstream, fid(), bearer(fresh)).status == 200, scaled(5), 0.2)
        assert ok
        resp = snapshot(bearer_app, upstream, fid(), bearer(keys.emitter_token))
        assert resp.status == 401, resp
    finally:
        keys.write_tokens([(keys.emitter_token, "emitter-eu"), (keys.unnamed_token, None)])
        wait_for(lambda: snapshot(bearer_app, upstream, fid(), bearer(keys.emitter_token)).status == 200, scaled(5), 0.2)


# ---- jwt ----

@pytest.mark.parametrize("alg", ["RS256", "ES256", "HS256"])
def test_jwt_lets_in_with_email(jwt_app, upstream, fid, keys, alg):
    flow = fid()
    resp = snapshot(jwt_app, upstream, flow, bearer(keys.jwt(alg)))
    assert resp.status == 200, resp
    (rec,) = upstream.requests(flow)
    assert rec.header("X-Forwarded-User") == "ada@example.test"


def test_jwt_user_falls_back_to_sub(jwt_app, upstream, fid, keys):
    flow = fid()
    resp = snapshot(jwt_app, upstream, flow, bearer(keys.jwt(email=None)))
    assert resp.status == 200, resp
    (rec,) = upstream.requests(flow)
    assert rec.header("X-Forwarded-User") == "user-7"


def test_jwt_from_cookie(jwt_app, upstream, fid, keys):
    flow = fid()
    cookie = f"theme=dark; {authkeys.COOKIE}={keys.jwt('ES256')}; other=1"
    resp = snapshot(jwt_app, upstream, flow, [("Cookie", cookie)])
    assert resp.status == 200, resp
    (rec,) = upstream.requests(flow)
    assert rec.header("X-Forwarded-User") == "ada@example.test"
    assert rec.header("Cookie") is None


def _tampered(keys):
    token = keys.jwt()
    head, payload, sig = token.split(".")
    forged = authkeys.b64url(json.dumps(keys.claims(email="mallory@example.test")).encode())
    return f"{head}.{forged}.{sig}"


def _bad_signature(keys):
    head, payload, sig = keys.jwt().split(".")
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    return f"{head}.{payload}.{flipped}"


# (row id, function keys -> token): every one is a 401 and the upstream is never called
BAD_JWTS = [
    ("expired", lambda k: k.jwt(exp=int(time.time()) - 120)),
    ("not-yet-valid", lambda k: k.jwt(nbf=int(time.time()) + 600)),
    ("no-exp", lambda k: k.jwt(exp=None)),
    ("wrong-issuer", lambda k: k.jwt(iss="https://evil.test/realms/openova")),
    ("wrong-audience", lambda k: k.jwt(aud="another-app")),
    ("wrong-audience-list", lambda k: k.jwt(aud=["a", "b"])),
    ("tampered-payload", _tampered),
    ("bad-signature", _bad_signature),
    ("alg-none", lambda k: k.jwt(alg="none", kid="rsa-1")),
    ("unknown-kid", lambda k: k.jwt(kid="rsa-unknown")),
    # The RSA public key used as an HMAC secret: the classic confusion.
    ("alg-confusion", lambda k: k.jwt(alg="HS256", kid="rsa-1", key=k.rsa_public_pem())),
    ("hs256-wrong-secret", lambda k: k.jwt(alg="HS256", key=b"guessed-secret")),
    ("rs256-header-ec-kid", lambda k: k.jwt(alg="RS256", kid="ec-1")),
    ("garbage", lambda k: "not.a.jwt"),
]


@pytest.mark.parametrize("make", [r[1] for r in BAD_JWTS], ids=[r[0] for r in BAD_JWTS])
def test_bad_jwt_refused(jwt_app, upstream, fid, keys, make):
    token = make(keys)
    resp = snapshot(jwt_app, upstream, fid(), bearer(token))
    upstream.reset()
    assert_refused(resp, upstream, 401, "invalid_credentials", 'error="invalid_token"')
    # The log says why, never with the token.
    rid = resp.header("X-Request-ID")
    line = wait_for(lambda: [l for l in jwt_app.app_log().splitlines() if f"rid={rid}" in l], scaled(3))
    assert line and "jwt:" in line[0], line
    assert token not in jwt_app.app_log()


def test_jwks_rotation_by_rewriting_the_file(jwt_app, upstream, fid, keys):
    from cryptography.hazmat.primitives.asymmetric import rsa
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    try:
        keys.write_jwks([("rsa-2", new_key), (keys.ec_kid, keys.ec)])
        fresh = keys.jwt("RS256", kid="rsa-2", key=new_key)
        assert wait_for(lambda: snapshot(jwt_app, upstream, fid(), bearer(fresh)).status == 200, scaled(5), 0.2)
        # The retired key no longer verifies anything.
        resp = snapshot(jwt_app, upstream, fid(), bearer(keys.jwt("RS256")))
        assert resp.status == 401, resp
    finally:
        keys.write_jwks([(keys.rsa_kid, keys.rsa), (keys.ec_kid, keys.ec)])
        assert wait_for(lambda: snapshot(jwt_app, upstream, fid(), bearer(keys.jwt())).status == 200, scaled(5), 0.2)


def test_stream_ends_when_its_jwt_expires(jwt_app, upstream, fid, keys):
    flow = fid()
    upstream.set(flow, stream_reply([(0, FRAME)], end="hold"))
    token = keys.jwt(exp=int(time.time()) + 3)
    s = client.Stream(jwt_app.port, f"{BASE}/{flow}/stream", bearer(token))
    try:
        assert s.status == 200
        assert s.read_until(lambda st: FRAME in st.body, scaled(5)), s.body
        started = time.monotonic()
        # exp is 3 s away and the "jwt" instance allows 1 s of clock skew.
        assert s.wait_eof(3 + scaled(12)), s.body
        assert s.complete, "the response must end cleanly so the browser reconnects"
        assert time.monotonic() - started < 3 + scaled(9)
    finally:
        s.close()
    line = wait_for(lambda: [l for l in jwt_app.app_log().splitlines() if "end=credential-expired" in l], scaled(3))
    assert line, jwt_app.app_log()[-2000:]


def test_any_of_several_methods(instances, web, upstream, fid, keys):
    app = instances.get("anyauth", web)
    for headers in (bearer(keys.emitter_token), bearer(keys.jwt("ES256")),
                    [("Cookie", f"{authkeys.COOKIE}={keys.jwt()}")]):
        resp = snapshot(app, upstream, fid(), headers)
        assert resp.status == 200, (headers, resp)
    resp = snapshot(app, upstream, fid(), [])
    upstream.reset()
    assert_refused(resp, upstream, 401, "unauthorized", 'realm="openova-flow"')


# ---- per-route lists: emitters with tokens, browsers with JWTs ----

def test_split_routes(instances, web, upstream, fid, keys):
    app = instances.get("split", web)
    token, jwt = bearer(keys.emitter_token), bearer(keys.jwt())
    assert events(app, upstream, fid(), token).status == 200
    assert snapshot(app, upstream, fid(), jwt).status == 200
    # Known callers on the wrong route: 403, the upstream never called.
    resp = events(app, upstream, fid(), jwt)
    upstream.reset()
    assert_refused(resp, upstream, 403, "forbidden", 'error="insufficient_scope"')
    resp = snapshot(app, upstream, fid(), token)
    upstream.reset()
    assert_refused(resp, upstream, 403, "forbidden", 'error="insufficient_scope"')
    # Nobody at all: 401.
    resp = events(app, upstream, fid(), [])
    upstream.reset()
    assert_refused(resp, upstream, 401, "unauthorized", 'realm="openova-flow"')


def test_no_secret_in_logs(instances, web, upstream, fid, keys):
    app = instances.get("anyauth", web)
    jwt = keys.jwt()
    snapshot(app, upstream, fid(), bearer(keys.emitter_token))
    snapshot(app, upstream, fid(), [("Cookie", f"{authkeys.COOKIE}={jwt}")])
    snapshot(app, upstream, fid(), bearer("wrong-" + keys.emitter_token))
    events(app, upstream, fid(), bearer(keys.emitter_token))
    time.sleep(0.3)
    log = app.app_log()
    for secret in (keys.emitter_token, jwt, jwt.split(".")[2], "upsert-flow"):
        assert secret not in log, secret
