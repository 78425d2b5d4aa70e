"""test_differential.py: about a hundred messages, the demo's deployment with
malformed and borderline ones among them, posted to one flow; every answer,
every stream frame and the final snapshot must be what reference_model.py
predicts for the reference flow server.

The test holds against the reference too (`make contract FLOW_SERVER_URL=...`):
it posts from one client (so frames come in id order), compares snapshot lists
by key (the reference's order may differ) and stays far below the 4096
messages the reference folds.
"""
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

from reference_model import MAX_BODY, Fold, decode, node_key, predict_status, rel_key, same

DEMO = Path(__file__).resolve().parents[2] / "tools" / "demo-events"


def compact(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def demo_bodies(flow):
    """The bodies `tools/demo-events --fast` POSTs for flow, in order, taken
    by a stand-in flow server that accepts them all."""
    bodies, paths = [], []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            paths.append(self.path)
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            answer = compact({"seq": len(bodies)})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}/v1/flows"
        run = subprocess.run([sys.executable, str(DEMO), "--base", base, "--flow", flow, "--fast", "-q"],
                             capture_output=True, text=True, timeout=120)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    assert run.returncode == 0, run.stderr
    assert set(paths) == {f"/v1/flows/{flow}/events"}, paths
    return bodies


def sized(flow, size):
    """An upsert-nodes body of exactly size bytes (a node "big" padded in meta)."""
    head = {"type": "upsert-nodes", "nodes": [{"id": "big", "flowId": flow, "label": "big", "status": "pending",
                                               "meta": {"pad": ""}}]}
    pad = size - len(compact(head))
    head["nodes"][0]["meta"]["pad"] = "x" * pad
    body = compact(head)
    assert len(body) == size
    return body


def borderline(flow):
    """(before, among): malformed and borderline messages as (label, body),
    those posted before the demo's resetting snapshot and those put among
    its messages, in order."""
    f = flow.encode()

    def nodes(*ns):
        return compact({"type": "upsert-nodes", "nodes": [{"flowId": flow, "status": "pending", **n} for n in ns]})

    before = [
        ("a node the reset drops", nodes({"id": "gone", "label": "gone"})),
        ("a flow the reset replaces", compact({"type": "upsert-flow", "flow": {"id": flow, "status": "pending",
                                                                                "startedAt": 1}})),
        ("empty body", b""),
        ("malformed JSON", b'{"type":"upsert-nodes","nodes":['),
        ("top-level null", b"null"),
    ]
    among = [
        ("unknown type", compact({"type": "upsert-node", "nodes": [{"id": "x", "flowId": flow}]})),
        ("type values are case-sensitive", compact({"type": "Upsert-Nodes", "nodes": [{"id": "x"}]})),
        ("empty nodes", compact({"type": "upsert-nodes", "nodes": []})),
        ("keys in another case",
         b'{"Type":"upsert-nodes","NODES":[{"ID":"case","FlowId":"' + f
         + b'","LABEL":"Case","sTaTuS":"running","Region":"fsn1"}]}'),
        ("the last of the keys that match wins",
         b'{"type":"delete-nodes","TYPE":"upsert-nodes","nodes":[{"id":"dup","flowId":"' + f
         + b'","label":"first","status":"pending","Label":"second","STATUS":"ready"}]}'),
        ("node startedAt 1.5", nodes({"id": "x", "label": "x", "startedAt": 1.5})),
        ("flow startedAt 1.5", compact({"type": "upsert-flow", "flow": {"id": flow, "status": "running",
                                                                         "startedAt": 1.5}})),
        ("endedAt 1e3", b'{"type":"upsert-nodes","nodes":[{"id":"x","endedAt":1e3}]}'),
        ("startedAt a string", nodes({"id": "x", "label": "x", "startedAt": "now"})),
        ("startedAt at the int64 limits", nodes({"id": "late", "label": "late", "startedAt": 2**63 - 1,
                                                 "endedAt": -2**63})),
        ("startedAt past int64", nodes({"id": "x", "label": "x", "startedAt": 2**63})),
        ("node without flowId, label, status", compact({"type": "upsert-nodes", "nodes": [{"id": "bare"}]})),
        ("a demo node's id in another flowId",
         compact({"type": "upsert-nodes", "nodes": [{"id": "fsn1.cilium", "flowId": "elsewhere",
                                                     "label": "cilium elsewhere", "status": "ready"}]})),
        ("lenient relationships", compact({"type": "upsert-rels", "relationships": [
            {"fromId": "fsn1.cilium", "toId": "case", "type": "finish-to-start", "condition": ""},
            {"fromId": "case", "toId": "dup", "type": "blocks", "condition": "whenever", "lag": 2.5},
            {"fromId": "bare", "type": "triggers", "lag": 0, "fromFlowId": "", "toFlowId": "elsewhere"}]})),
        ("relationships null", b'{"type":"upsert-rels","relationships":null}'),
        ("invalid UTF-8 and lone surrogates in strings",
         b'{"type":"upsert-nodes","nodes":[{"id":"utf8","flowId":"' + f
         + b'","label":"caf\xc3 \xe2\x82 \xff\xfe end","status":"running",'
           b'"meta":{"k\xff":"v\xed\xa0\x80","esc":"\\ud800 \\ud83d\\ude00 \\udc00\\ud800"}}]}'),
        ("unknown fields",
         compact({"type": "upsert-nodes", "schema": 1, "extra": {"a": [1, 2]},
                  "nodes": [{"id": "unknown-fields", "flowId": flow, "label": "u", "status": "pending",
                             "colour": "red", "children": [1]}]})),
        ("meta: unsorted keys, numbers re-printed, keys in two cases, a repeated key",
         b'{"type":"upsert-nodes","nodes":[{"id":"meta","flowId":"' + f + b'","label":"m","status":"s",'
         b'"meta":{"zeta":1.0,"alpha":[1e2,1.5e-7,1e21,-0.0,true,null,"s",{"z":1,"a":2}],'
         b'"Mid":{"b":"x","a":2.50,"B":12345678901234567890},"a":1,"A":2,"dup":1,"dup":2.0}}]}'),
        ("characters Go escapes", nodes({"id": "escapes", "label": "a<b>&c", "status": "x\u2028y\u2029z",
                                         "region": "tab\there\nnew\u0001\u007f", "family": "/slash\\back\"quote"})),
        ("ids of the wrong type", b'{"type":"delete-nodes","ids":[1]}'),
        ("nodes of the wrong type", b'{"type":"upsert-nodes","nodes":[1]}'),
        ("meta of the wrong type", nodes({"id": "x", "label": "x", "meta": "x"})),
        ("top-level array", b'[{"type":"upsert-nodes","nodes":[{"id":"x"}]}]'),
        ("null optional fields", nodes({"id": "nulls", "label": "n", "region": None, "meta": None,
                                        "startedAt": None, "family": None})),
        ("exactly 1 MiB", sized(flow, MAX_BODY)),
        ("1 MiB and one byte", sized(flow, MAX_BODY + 1)),
        ("delete-nodes leaving relationships dangling",
         compact({"type": "delete-nodes", "ids": ["big", "case", "fsn1.cilium", "no-such-node"]})),
        ("delete-rels", compact({"type": "delete-rels", "pairs": [
            {"fromId": "case", "toId": "dup", "type": "blocks"},
            {"fromId": "fsn1", "toId": "fsn1.network", "type": "contains"},
            {"fromId": "no", "toId": "such", "type": "contains"}]})),
        ("empty pairs", compact({"type": "delete-rels", "pairs": []})),
        ("flow without status", compact({"type": "upsert-flow", "flow": {"id": flow, "startedAt": 5, "endedAt": 0,
                                                                          "meta": {"k": 1.0}}})),
        ("flow of the wrong type", compact({"type": "upsert-flow", "flow": "x"})),
        ("snapshot without flow", compact({"type": "snapshot", "nodes": [{"id": "x"}]})),
    ]
    return before, among


def messages(flow):
    """The demo's messages with the borderline ones: (label, body) in order."""
    demo = [(f"demo {i}: {json.loads(b)['type']}", b) for i, b in enumerate(demo_bodies(flow))]
    before, among = borderline(flow)
    assert json.loads(demo[0][1])["type"] == "snapshot"
    out = before + demo[:2]
    for i, message in enumerate(demo[2:-1]):  # one after every second demo message
        out.append(message)
        if i % 2 == 1 and among:
            out.append(among.pop(0))
    return out + among + demo[-1:]


class Pairs(list):
    """A JSON object as its (key, value) pairs, in the order sent."""


def unsorted_meta(text):
    """Objects in a `meta` whose keys are out of Go's bytewise order (code
    point order is the same)."""
    bad = []

    def walk(value, in_meta):
        if isinstance(value, Pairs):
            keys = [k for k, _ in value]
            if in_meta and keys != sorted(keys):
                bad.append(keys)
            for k, v in value:
                walk(v, in_meta or k == "meta")
        elif isinstance(value, list):
            for v in value:
                walk(v, in_meta)

    walk(json.loads(text, object_pairs_hook=Pairs), False)
    return bad


def check_encoding(where, text):
    """What the doc and Go's encoder promise about the bytes of the JSON."""
    raw = [c for c in "<>&\u2028\u2029" if c in text]
    assert not raw, f"{where}: {raw} not escaped"
    assert not unsorted_meta(text), f"{where}: meta keys out of order: {unsorted_meta(text)}"


def compare_snapshot(got, want):
    """got (the server's) equals want (the model's), lists compared by key."""
    assert got.keys() == want.keys(), (sorted(got), sorted(want))
    assert same(got.get("flow"), want.get("flow")), (got.get("flow"), want.get("flow"))
    for name, key in (("nodes", node_key), ("relationships", rel_key)):
        g = {key(x): x for x in got.get(name, [])}
        w = {key(x): x for x in want.get(name, [])}
        assert len(g) == len(got.get(name, [])), f"{name}: a key twice"
        assert g.keys() == w.keys(), (f"{name}: extra {sorted(g.keys() - w.keys())}, "
                                      f"missing {sorted(w.keys() - g.keys())}")
        for k in w:
            assert same(g[k], w[k]), f"{name} {k}: got {g[k]}, want {w[k]}"


def test_demo_and_borderline_messages_match_the_reference(server, flow_id):
    sequence = messages(flow_id)
    assert server.snapshot(flow_id)[0] == 404
    stream = server.stream(flow_id)
    try:
        assert stream.status == 200
        first = stream.next_non_heartbeat(10)
        assert (first.event, first.id, first.json()) == ("snapshot", "0", {"type": "snapshot"})

        fold, seq = Fold(), 0
        for n, (label, body) in enumerate(sequence):
            want = predict_status(body)
            status, _, answer = server.post(flow_id, body)
            assert status == want, (f"message {n} ({label}, {len(body)} bytes, {body[:200]!r}): "
                                    f"the reference answers {want}, the server {status} {answer[:200]!r}")
            if status != 200:
                continue
            seq += 1
            assert json.loads(answer) == {"seq": seq}, f"message {n} ({label})"
            canonical = decode(body)
            fold.apply(canonical)
            frame = stream.next_non_heartbeat(10)
            assert frame is not None, f"message {n} ({label}): the stream ended"
            where = f"message {n} ({label}), frame {frame.event}:{frame.id}"
            assert (frame.event, frame.id) == (canonical["type"], str(seq)), where
            assert same(frame.json(), canonical), f"{where}:\n got  {frame.data[:2000]}\n want {canonical}"
            check_encoding(where, frame.data)
        try:
            extra = stream.next_non_heartbeat(1.0)
        except TimeoutError:
            extra = None
        assert extra is None, f"a frame after the last accepted message: {extra!r}"
    finally:
        stream.close()

    status, _, body = server.snapshot(flow_id)
    assert status == 200 and body.endswith(b"\n"), (status, body[-200:])
    check_encoding("snapshot", body.decode())
    compare_snapshot(json.loads(body), fold.snapshot())
    assert 90 <= len(sequence) <= 120 and seq < len(sequence)
