"""The live page (www/) where each shipped snippet mounts it, /flow/,
through each real web server (issue 15): the files as they are in www/,
with the types a browser needs to run them as ES modules, no credentials
asked for the page itself, nothing of it reaching the app or the flow
server, and the flow routes the page's meta tag names answering with the
web server's credentials."""
import os
import re

import pytest

from harness import client, servers
from harness.upstream import json_reply

WWW = os.path.join(servers.REPO, "www")
PAGE = "/flow/"
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def media_type(resp):
    return (resp.header("Content-Type") or "").split(";")[0].strip()


def page_files():
    names = sorted(n for n in os.listdir(WWW) if os.path.splitext(n)[1] in TYPES)
    assert "index.html" in names and "app.js" in names, names
    return names


def test_the_page_is_served_under_flow(main, upstream):
    before = len(upstream.requests())
    resp = client.request(main.port, "GET", PAGE)
    with open(os.path.join(WWW, "index.html"), "rb") as f:
        assert (resp.status, resp.body) == (200, f.read()), resp
    assert media_type(resp) == "text/html", resp
    for name in page_files():
        resp = client.request(main.port, "GET", PAGE + name)
        with open(os.path.join(WWW, name), "rb") as f:
            assert (resp.status, resp.body) == (200, f.read()), (name, resp)
        assert media_type(resp) == TYPES[os.path.splitext(name)[1]], (name, resp)
    assert client.request(main.port, "GET", PAGE + "no-such-file.js").status == 404
    # Static files: the app and the flow server never see them.
    assert len(upstream.requests()) == before


def test_the_pages_api_base_is_the_mounted_flow_routes(main, upstream, fid):
    """The meta tag names an absolute path, so the page finds the flow
    routes from /flow/ as it does from /; there they want the web server's
    credentials, which the browser then asks for."""
    with open(os.path.join(WWW, "index.html")) as f:
        m = re.search(r'<meta name="openova-flow-api" content="([^"]*)">', f.read())
    assert m and m.group(1) == "/api/v1/flows", m
    flow = fid()
    upstream.set(flow, json_reply(200, b'{"flow":{"id":"x","status":"running"}}'))
    resp = client.request(main.port, "GET", f"{m.group(1)}/{flow}/snapshot")
    assert resp.status == 401, resp
    resp = client.request(main.port, "GET", f"{m.group(1)}/{flow}/snapshot", main.auth_headers())
    assert resp.status == 200, resp
    assert [r.target for r in upstream.requests(flow)] == [f"/v1/flows/{flow}/snapshot"]
