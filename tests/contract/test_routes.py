"""Contract tests of the flow server's routes, for any server that behaves like
the reference: health, wrong methods and unknown sub-paths (405), opaque and
percent-decoded flow ids, and purge. The devserver's own answers where the
reference was not observed (the Allow header, paths outside /v1/flows/) are
marked devserver."""
import json

import pytest

from conftest import FLOW, assert_text_error, node


def test_healthz(server):
    status, headers, body = server.request("GET", "/healthz")
    assert status == 200
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert body == b"ok\n"


def test_readyz(server):
    assert server.request("GET", "/readyz")[0] == 200


@pytest.mark.devserver  # the reference's /readyz body was not observed
def test_readyz_says_ok(server):
    status, headers, body = server.request("GET", "/readyz")
    assert (status, headers["content-type"], body) == (200, "text/plain; charset=utf-8", b"ok\n")


def test_query_string_is_ignored(server, flow_id):
    assert server.request("GET", "/healthz?probe=1")[0] == 200
    assert server.post_ok(flow_id, {"type": "upsert-nodes", "nodes": [node("a")]}) == 1
    assert server.request("GET", f"/v1/flows/{flow_id}/snapshot?since=1")[0] == 200


# (method, path, the one method the route takes, or None for an unknown sub-path)
NOT_ALLOWED = [
    ("GET", "/v1/flows/x/events", "POST"),
    ("PUT", "/v1/flows/x/events", "POST"),
    ("DELETE", "/v1/flows/x/events", "POST"),
    ("POST", "/v1/flows/x/snapshot", "GET"),
    ("PUT", "/v1/flows/x/snapshot", "GET"),
    ("POST", "/v1/flows/x/stream", "GET"),
    ("DELETE", "/v1/flows/x/stream", "GET"),
    ("GET", "/v1/flows/x", "DELETE"),
    ("POST", "/v1/flows/x", "DELETE"),
    ("POST", "/healthz", "GET"),
    ("DELETE", "/readyz", "GET"),
    ("GET", "/v1/flows/x/foo", None),
    ("POST", "/v1/flows/x/foo", None),
    ("GET", "/v1/flows/x/snapshot/", None),
    ("POST", "/v1/flows/x/events/", None),
    ("GET", "/v1/flows/a/b/snapshot", None),
    ("DELETE", "/v1/flows/a/b", None),
]


@pytest.mark.parametrize("method,path,allow", NOT_ALLOWED, ids=[f"{r[0]} {r[1]}" for r in NOT_ALLOWED])
def test_wrong_method_or_unknown_sub_path_is_405(server, method, path, allow):
    assert_text_error(*server.request(method, path), 405)


@pytest.mark.devserver  # the reference's Allow header was not observed
@pytest.mark.parametrize("method,path,allow", NOT_ALLOWED, ids=[f"{r[0]} {r[1]}" for r in NOT_ALLOWED])
def test_405_names_the_allowed_method(server, method, path, allow):
    status, headers, _ = server.request(method, path)
    assert status == 405
    assert headers.get("allow") == allow


# The devserver's answers to paths the reference was not observed on (its
# newer versions serve GET /; Go's ServeMux would redirect // and /v1/flows).
OTHER_PATHS = [
    ("GET", "/", 404),
    ("GET", "/v1/flows", 404),
    ("POST", "/v1/flows", 404),
    ("GET", "/v2/flows/x/snapshot", 404),
    ("GET", "/v1/flowsx/snapshot", 404),
    ("GET", "/healthz/", 404),
    ("GET", "/v1/flows//snapshot", 405),
]


@pytest.mark.devserver
@pytest.mark.parametrize("method,path,status", OTHER_PATHS, ids=[f"{r[0]} {r[1]}" for r in OTHER_PATHS])
def test_other_paths(server, method, path, status):
    got = server.request(method, path)
    assert_text_error(*got, status)
    assert "allow" not in got[1]


# -- flow ids ------------------------------------------------------------------------

def test_ids_are_percent_decoded(server, flow_id):
    message = {"type": "upsert-nodes", "nodes": [node("a")]}
    assert server.post_ok(f"{flow_id}%2Dx", message) == 1
    assert server.post_ok(f"{flow_id}-x", message) == 2
    assert server.post_ok(f"{flow_id}%2dx", message) == 3
    assert server.snapshot(f"{flow_id}-x")[0] == 200
    assert server.snapshot(f"{flow_id}%2Dx")[0] == 200


# Two spellings on the wire of one flow id.
SAME_ID = [("%20b", "%20b"), (":b", "%3Ab"), ("%41", "A"), ("%C3%A9", "%c3%a9"), ("~._", "%7E%2E%5F")]


@pytest.mark.parametrize("one,other", SAME_ID, ids=[r[0] for r in SAME_ID])
def test_ids_are_opaque(server, flow_id, one, other):
    message = {"type": "upsert-nodes", "nodes": [node("a")]}
    assert server.post_ok(flow_id + one, message) == 1
    assert server.post_ok(flow_id + other, message) == 2
    assert server.snapshot_json(flow_id + one) == {"type": "snapshot", "nodes": [node("a")]}


def test_ids_are_case_sensitive(server, flow_id):
    message = {"type": "upsert-nodes", "nodes": [node("a")]}
    assert server.post_ok(flow_id + "x", message) == 1
    assert server.post_ok(flow_id + "X", message) == 1


def test_an_id_of_1024_bytes_is_taken(server, flow_id):
    long_id = flow_id + "a" * (1024 - len(flow_id))
    assert server.post_ok(long_id, {"type": "upsert-nodes", "nodes": [node("a")]}) == 1
    assert server.snapshot_json(long_id) == {"type": "snapshot", "nodes": [node("a")]}


# -- purge ---------------------------------------------------------------------------

def test_purge(server, flow_id):
    server.post_ok(flow_id, {"type": "snapshot", "flow": FLOW, "nodes": [node("a")]})
    server.post_ok(flow_id + "-other", {"type": "snapshot", "flow": FLOW})
    status, _, body = server.purge(flow_id)
    assert status == 204 and body == b""
    assert_text_error(*server.snapshot(flow_id), 404)
    status, _, body = server.purge(flow_id)
    assert status == 204 and body == b""  # idempotent
    # other flows are untouched
    assert server.snapshot_json(flow_id + "-other") == {"type": "snapshot", "flow": FLOW}


def test_purge_of_a_flow_never_ingested(server, flow_id):
    status, _, body = server.purge(flow_id)
    assert status == 204 and body == b""
    assert server.snapshot(flow_id)[0] == 404


def test_a_purged_flow_can_be_ingested_again(server, flow_id):
    server.post_ok(flow_id, {"type": "upsert-nodes", "nodes": [node("a")]})
    assert server.purge(flow_id)[0] == 204
    status, _, body = server.post(flow_id, {"type": "upsert-nodes", "nodes": [node("b")]})
    assert status == 200, body
    assert json.loads(body).keys() == {"seq"}
    assert server.snapshot_json(flow_id) == {"type": "snapshot", "nodes": [node("b")]}
