"""snapshot: GET {base}/{id}/snapshot relays the upstream's status, headers
and body verbatim, minus hop-by-hop headers and Set-Cookie (RFC 9110
section 7.6.1). Through each web server; the exact header set the app
writes is checked without one in test_fastcgi_direct.py."""
import random

import pytest

from harness import client
from harness.upstream import Reply
from harness.timing import scaled

BASE = "/api/v1/flows"

END_TO_END = [
    ("Content-Type", "application/json; charset=utf-8"),
    ("X-Flow-Version", "7"),
    ("ETag", '"v7-3f9a"'),
    ("Cache-Control", "no-store"),
    ("Last-Modified", "Tue, 03 Nov 2026 10:00:00 GMT"),
    ("Vary", "Accept"),
    ("X-Custom-Empty-Ish", "a  b"),
]

# (row id, upstream status, extra upstream headers, body)
PASS_THROUGH = [
    ("200", 200, [], b'{"flow":{"id":"x","status":"running"},"nodes":[],"relationships":[]}'),
    ("404-with-body", 404, [], b'{"error":"not_found","message":"flow was never ingested"}'),
    ("500-with-body", 500, [], b'{"error":"internal"}'),
    ("503-retry-after", 503, [("Retry-After", "7")], b'{"error":"starting"}'),
    ("200-empty-body", 200, [], b""),
    ("200-binary", 200, [], bytes(range(256)) * 4),
]


@pytest.mark.parametrize("status,extra,body", [r[1:] for r in PASS_THROUGH], ids=[r[0] for r in PASS_THROUGH])
def test_status_headers_body_verbatim(main, upstream, fid, status, extra, body):
    flow = fid()
    upstream.set(flow, Reply(status=status, headers=END_TO_END + extra, body=body))
    accept = "application/json;q=0.9, text/plain;q=0.1"
    resp = client.request(main.port, "GET", f"{BASE}/{flow}/snapshot", main.auth_headers() + [("Accept", accept)])

    assert resp.status == status, resp
    assert resp.body == body
    for name, value in END_TO_END + extra:
        assert resp.header_all(name) == [value], (name, resp.headers)

    (rec,) = upstream.requests(flow)
    assert (rec.method, rec.target, rec.body) == ("GET", f"/v1/flows/{flow}/snapshot", b"")
    assert rec.header("Accept") == accept


def test_large_body_byte_exact(main, upstream, fid):
    flow = fid()
    body = random.Random(7).randbytes(2 * 1024 * 1024)
    upstream.set(flow, Reply(headers=[("Content-Type", "application/octet-stream")], body=body))
    resp = client.request(main.port, "GET", f"{BASE}/{flow}/snapshot", main.auth_headers(), timeout=scaled(20))
    assert resp.status == 200
    assert len(resp.body) == len(body)
    assert resp.body == body


def test_large_chunked_body_byte_exact(main, upstream, fid):
    flow = fid()
    body = random.Random(8).randbytes(2 * 1024 * 1024 + 17)
    upstream.set(flow, Reply(headers=[("Content-Type", "application/json")], body=body, chunked=True,
                             chunk_size=65536 + 3))
    resp = client.request(main.port, "GET", f"{BASE}/{flow}/snapshot", main.auth_headers(), timeout=scaled(20))
    assert resp.status == 200
    assert resp.body == body


# (row id, upstream header that must not reach the client): each row adds
# one to an otherwise normal reply. Connection and Transfer-Encoding are
# also checked without a web server (which writes its own).
HOP_BY_HOP = [
    ("keep-alive", [("Keep-Alive", "timeout=5, max=100")], "Keep-Alive"),
    ("proxy-authenticate", [("Proxy-Authenticate", 'Basic realm="up"')], "Proxy-Authenticate"),
    ("proxy-authorization", [("Proxy-Authorization", "Basic dXA6c2VjcmV0")], "Proxy-Authorization"),
    ("te", [("TE", "trailers")], "TE"),
    ("trailer", [("Trailer", "X-Checksum")], "Trailer"),
    ("upgrade", [("Upgrade", "websocket")], "Upgrade"),
    ("named-in-connection", [("Connection", "X-Hop-Secret"), ("X-Hop-Secret", "s3cr3t")], "X-Hop-Secret"),
    ("named-in-connection-list", [("Connection", "keep-alive, X-Hop-A"), ("X-Hop-A", "1")], "X-Hop-A"),
    ("set-cookie", [("Set-Cookie", "session=abc; HttpOnly")], "Set-Cookie"),
    ("set-cookie-twice", [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")], "Set-Cookie"),
    ("set-cookie-lowercase", [("set-cookie", "c=3")], "Set-Cookie"),
]


@pytest.mark.parametrize("extra,dropped", [r[1:] for r in HOP_BY_HOP], ids=[r[0] for r in HOP_BY_HOP])
def test_hop_by_hop_and_set_cookie_removed(main, upstream, fid, extra, dropped):
    flow = fid()
    body = b'{"nodes":[]}'
    upstream.set(flow, Reply(headers=[("Content-Type", "application/json"), ("X-Kept", "yes")] + extra, body=body))
    resp = client.request(main.port, "GET", f"{BASE}/{flow}/snapshot", main.auth_headers())
    assert resp.status == 200, resp
    assert resp.body == body
    assert resp.header("X-Kept") == "yes"
    assert dropped.lower() not in resp.header_names(), resp.headers


def test_chunked_upstream_body_arrives_decoded(main, upstream, fid):
    flow = fid()
    body = b'{"nodes":[' + b",".join(b'{"id":"n%d"}' % i for i in range(500)) + b"]}"
    upstream.set(flow, Reply(headers=[("Content-Type", "application/json")], body=body, chunked=True, chunk_size=97))
    resp = client.request(main.port, "GET", f"{BASE}/{flow}/snapshot", main.auth_headers())
    assert resp.status == 200
    assert resp.body == body
