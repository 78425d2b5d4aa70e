"""events: POST {base}/{id}/events forwards the body byte for byte with its
Content-Type as sent; the upstream's status and body come back."""
import json
import random

import pytest

from harness import client
from harness.checks import assert_proxy_error
from harness.upstream import Reply, json_reply
from harness.timing import scaled

BASE = "/api/v1/flows"

MESSAGE = json.dumps({"type": "upsert-nodes", "nodes": [
    {"id": "bp-cilium", "flowId": "dep-7f3a", "label": "cilium", "status": "running", "region": "fsn1"}]}).encode()

# (row id, Content-Type sent by the client or None, body)
BODIES = [
    ("json", "application/json", MESSAGE),
    ("json-charset", "application/json; charset=utf-8", MESSAGE),
    ("cbor-binary", "application/cbor", b"\x00\xa2\x01\x02\xff\xfe\x00\x80\xc3\x28" + bytes(range(256)) + b"\x00"),
    ("invalid-utf8", "text/plain", b"\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc\x00tail"),
    ("crlf-inside", "application/octet-stream", b"line1\r\n\r\nline2\r\n0\r\n\r\n"),
    ("no-content-type", None, MESSAGE),
    ("no-content-type-binary", None, b"\x00\x01\x02\xff"),
    ("empty", "application/json", b""),
    ("large-500k", "application/octet-stream", random.Random(3).randbytes(500 * 1024)),
]


@pytest.mark.parametrize("ctype,body", [r[1:] for r in BODIES], ids=[r[0] for r in BODIES])
def test_body_and_content_type_forwarded_verbatim(main, upstream, fid, ctype, body):
    flow = fid()
    upstream.set(flow, json_reply(200, b'{"seq":41}'))
    headers = main.auth_headers() + ([("Content-Type", ctype)] if ctype else [])
    resp = client.request(main.port, "POST", f"{BASE}/{flow}/events", headers, body, timeout=scaled(20))
    assert resp.status == 200, resp
    assert resp.body == b'{"seq":41}'

    (rec,) = upstream.requests(flow)
    assert (rec.method, rec.target) == ("POST", f"/v1/flows/{flow}/events")
    assert rec.body == body
    assert rec.header("Content-Type") == ctype


# (row id, upstream status, upstream headers, upstream body)
ANSWERS = [
    ("200-seq", 200, [("Content-Type", "application/json")], b'{"seq": 8}'),
    ("202-accepted", 202, [("Content-Type", "application/json"), ("X-Flow-Seq", "9")], b'{"queued":true}'),
    ("400-schema", 400, [("Content-Type", "application/json")],
     b'{"error":"schema","message":"upsert-nodes needs nodes"}'),
    ("409-text", 409, [("Content-Type", "text/plain")], b"conflict\n"),
    ("204-empty", 204, [], b""),
]


@pytest.mark.parametrize("status,headers,body", [r[1:] for r in ANSWERS], ids=[r[0] for r in ANSWERS])
def test_upstream_status_and_body_returned(main, upstream, fid, status, headers, body):
    flow = fid()
    hop = [("Set-Cookie", "s=1"), ("Connection", "X-Private"), ("X-Private", "1"), ("Keep-Alive", "timeout=1")]
    upstream.set(flow, Reply(status=status, headers=headers + hop, body=body))
    resp = client.request(main.port, "POST", f"{BASE}/{flow}/events",
                          main.auth_headers() + [("Content-Type", "application/json")], MESSAGE)
    assert resp.status == status, resp
    assert resp.body == body
    for name, value in headers:
        if status != 204 or name.lower() != "content-type":
            assert resp.header_all(name) == [value], (name, resp.headers)
    for name in ("set-cookie", "x-private", "keep-alive"):
        assert name not in resp.header_names(), resp.headers
    assert len(upstream.requests(flow)) == 1


@pytest.fixture
def maxbody(instances, web):
    return instances.get("maxbody", web)   # OPENOVA_FLOW_MAX_BODY=1024


# (row id, body size, expected status)
SIZES = [("at-limit", 1024, 200), ("one-over", 1025, 413), ("far-over", 300 * 1024, 413)]


@pytest.mark.parametrize("size,status", [r[1:] for r in SIZES], ids=[r[0] for r in SIZES])
def test_max_body(maxbody, upstream, fid, size, status):
    flow = fid()
    upstream.set(flow, json_reply(200, b'{"seq":1}'))
    body = b"x" * size
    resp = client.request(maxbody.port, "POST", f"{BASE}/{flow}/events",
                          maxbody.auth_headers() + [("Content-Type", "application/json")], body)
    if status == 413:
        assert_proxy_error(resp, 413)
        assert upstream.requests() == []
    else:
        assert resp.status == 200, resp
        (rec,) = upstream.requests(flow)
        assert rec.body == body


def test_overlong_content_type_refused_before_upstream(main, upstream, fid):
    flow = fid()
    upstream.set(flow, json_reply(200, b'{"seq":1}'))
    ctype = "application/json; profile=" + "x" * 1100
    resp = client.request(main.port, "POST", f"{BASE}/{flow}/events",
                          main.auth_headers() + [("Content-Type", ctype)], b"{}")
    body = assert_proxy_error(resp, 400)
    assert "Content-Type" in body["message"]
    assert upstream.requests() == []
