"""reference_model.py: what the reference flow server does with a POSTed
message, as a small pure-Python model for the differential test.

Written from docs/openova-flow-api.md ("The reference flow server, as observed
on the wire") and the issue 17 spec, not from the devserver's C code. The
reference is a Go server: encoding/json decodes the body into structs, the
server checks the variant's container, folds the message and re-encodes the
structs. So:

- predict_status(body) is the answer to `POST .../events`: 413 over 1 MiB,
  400 for what Go's decoder or the container check refuses, else 200;
- decode(body) is the canonical message the server keeps (stream frame data);
- Fold folds canonical messages into the snapshot the server serves;
- same(a, b) compares parsed JSON the way numbers mean it (1.0 == 1).

Not modelled (the test does not send them): a key spelt with the two
non-ASCII letters Go folds to ASCII ones (U+017F, U+212A), and a repeated
array key, where Go reuses the earlier array's elements.
"""
import codecs
import json
import math

MAX_BODY = 1 << 20  # 1,048,576 bytes accepted, one more byte is 413

TYPES = ("snapshot", "upsert-flow", "upsert-nodes", "upsert-rels", "delete-nodes", "delete-rels")


class Refused(ValueError):
    """A body the reference answers 400 to."""


# -- the Go structs ------------------------------------------------------------
# A kind is STR, INT (int64), NUM (float64), MAP (map[string]any), a struct
# (a dict: JSON name -> (kind, omitempty)) or [kind] (a slice). In a decoded
# struct None stands for Go's zero value.
STR, INT, NUM, MAP = "string", "int64", "float64", "map"

# triggeredBy's "when" is not described beyond its name; read as ms like the
# other times (the test sends no triggeredBy).
TRIGGER = {"flowId": (STR, False), "when": (INT, False)}
FLOW = {"id": (STR, False), "status": (STR, False), "startedAt": (INT, False), "endedAt": (INT, True),
        "definitionId": (STR, True), "parentFlowId": (STR, True), "triggeredBy": ([TRIGGER], True),
        "meta": (MAP, True)}
NODE = {"id": (STR, False), "flowId": (STR, False), "label": (STR, False), "status": (STR, False),
        "family": (STR, True), "region": (STR, True), "startedAt": (INT, True), "endedAt": (INT, True),
        "meta": (MAP, True)}
REL = {"fromId": (STR, False), "toId": (STR, False), "type": (STR, False), "fromFlowId": (STR, True),
       "toFlowId": (STR, True), "condition": (STR, True), "lag": (NUM, True)}
PAIR = {"fromId": (STR, False), "toId": (STR, False), "type": (STR, False)}
MESSAGE = {"type": (STR, False), "flow": (FLOW, True), "nodes": ([NODE], True),
           "relationships": ([REL], True), "ids": ([STR], True), "pairs": ([PAIR], True)}


class _Object(list):
    """A JSON object as its (key, value) pairs in order, repeats kept."""


def _go_replace(err):
    # Go's decoder turns each byte of invalid UTF-8 into U+FFFD (utf8.DecodeRune
    # reports width 1); Python's "replace" would take a maximal subpart at once.
    return "\ufffd", err.start + 1


codecs.register_error("reference-model-go-replace", _go_replace)


def _refuse_constant(name):
    raise Refused(f"{name} is not JSON")


def _parse(body):
    """The JSON value of body, objects as _Object; Refused when Go's syntax
    check fails (empty, malformed, more than one value, bad bytes outside
    strings: after the replacement U+FFFD is no JSON token there)."""
    text = body.decode("utf-8", "reference-model-go-replace")
    try:
        return json.loads(text, object_pairs_hook=_Object, parse_constant=_refuse_constant)
    except ValueError as e:
        raise Refused(f"malformed JSON: {e}") from None


def _fold(key):
    # Go matches a key to a field case-insensitively, and it is ASCII-only for
    # every key the test sends (see the module comment).
    return key.lower()


def _string(value):
    if not isinstance(value, str):
        raise Refused(f"{value!r} for a string")
    # \ud800 and other lone surrogates escaped in JSON: Go writes U+FFFD.
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Refused(f"{value!r} for a number")
    try:
        f = float(value)
    except OverflowError:
        f = math.inf
    if math.isinf(f):
        raise Refused(f"{value!r} out of float64 range")  # strconv.ParseFloat's range error
    return f


def _any(value):
    """interface{}: numbers float64, objects map[string]any (the last of a
    repeated key wins; Go writes map keys sorted bytewise, which code point
    order matches)."""
    if isinstance(value, _Object):
        return dict(sorted({_string(k): _any(v) for k, v in value}.items()))
    if isinstance(value, list):
        return [_any(v) for v in value]
    if isinstance(value, str):
        return _string(value)
    if value is None or isinstance(value, bool):
        return value
    return _number(value)


def _decode(value, kind, current):
    """Go's json decoding of value into a field of kind holding current."""
    if value is None:  # null: nil for map, slice, pointer; no effect otherwise
        return None if kind == MAP or isinstance(kind, (dict, list)) else current
    if kind == STR:
        return _string(value)
    if kind == INT:  # strconv.ParseInt on the literal: 1.5, 1.0, 1e3 refused
        if isinstance(value, bool) or not isinstance(value, int) or not -2**63 <= value < 2**63:
            raise Refused(f"{value!r} for an int64")
        return value
    if kind == NUM:
        return _number(value)
    if kind == MAP:  # an existing map is kept and added to
        if not isinstance(value, _Object):
            raise Refused(f"{value!r} for an object")
        return {**(current or {}), **_any(value)}
    if isinstance(kind, list):  # a slice starts again from length 0
        if not isinstance(value, list) or isinstance(value, _Object):
            raise Refused(f"{value!r} for an array")
        return [_decode(v, kind[0], None) for v in value]
    if not isinstance(value, _Object):  # a struct; an existing one is decoded into
        raise Refused(f"{value!r} for an object")
    fields = dict(current) if current else {name: None for name in kind}
    names = {_fold(name): name for name in kind}
    for key, v in value:
        name = names.get(_fold(key))  # unknown fields dropped; the last match wins
        if name:
            fields[name] = _decode(v, kind[name][0], fields[name])
    return fields


def _encode(value, kind):
    """The JSON (as a Python object) Go's encoder writes for a decoded value."""
    if isinstance(kind, list):
        return [_encode(v, kind[0]) for v in value or ()]
    if isinstance(kind, dict):
        out = {}
        for name, (k, omitempty) in kind.items():
            v = value[name]
            if omitempty and not v:  # "", 0, nil, empty slice or map
                continue
            out[name] = _encode(v, k) if v is not None else {STR: "", INT: 0, NUM: 0.0}.get(k)
        return out
    if kind == MAP:
        return dict(sorted(value.items()))
    return value


def decode(body):
    """The canonical message the reference keeps for an accepted body (a dict,
    JSON-ready); Refused when it answers 400."""
    message = _decode(_parse(body), MESSAGE, None)
    if message is None:  # top-level null decodes to nothing: type ""
        message = {name: None for name in MESSAGE}
    t = message["type"]
    if t not in TYPES:
        raise Refused(f"unknown type {t!r}")
    need = {"snapshot": "flow", "upsert-flow": "flow", "upsert-nodes": "nodes",
            "upsert-rels": "relationships", "delete-nodes": "ids", "delete-rels": "pairs"}[t]
    if not message[need]:
        raise Refused(f"{t} without {need}")
    return _encode(message, MESSAGE)


def predict_status(body):
    """The reference's status for POSTing body to /v1/flows/{id}/events."""
    if len(body) > MAX_BODY:
        return 413
    try:
        decode(body)
    except Refused:
        return 400
    return 200


def node_key(node):
    return (node["flowId"], node["id"])


def rel_key(rel):
    return (rel["fromId"], rel["toId"], rel["type"])


class Fold:
    """The state a flow's accepted canonical messages fold into."""

    def __init__(self):
        self.flow, self.nodes, self.rels = None, {}, {}

    def apply(self, m):
        t = m["type"]
        if t == "snapshot":  # a replacement; its lists fold like upserts
            self.flow, self.nodes, self.rels = m["flow"], {}, {}
        if t in ("snapshot", "upsert-flow"):
            self.flow = m["flow"]
        for node in m.get("nodes", ()) if t in ("snapshot", "upsert-nodes") else ():
            self.nodes[node_key(node)] = node  # a replaced key keeps its place
        for rel in m.get("relationships", ()) if t in ("snapshot", "upsert-rels") else ():
            self.rels[rel_key(rel)] = rel
        if t == "delete-nodes":  # any flowId; relationships that name them stay
            self.nodes = {k: n for k, n in self.nodes.items() if n["id"] not in m["ids"]}
        if t == "delete-rels":
            for pair in m["pairs"]:
                self.rels.pop(rel_key(pair), None)

    def empty(self):
        """True while the snapshot route answers 404."""
        return self.flow is None and not self.nodes and not self.rels

    def snapshot(self):
        """The snapshot JSON as a Python object: empty keys left out."""
        snap = {"type": "snapshot"}
        if self.flow is not None:
            snap["flow"] = self.flow
        if self.nodes:
            snap["nodes"] = list(self.nodes.values())
        if self.rels:
            snap["relationships"] = list(self.rels.values())
        return snap


def same(a, b):
    """Parsed JSON equality, numbers compared as numbers (Go prints float64
    1.0 as 1 and 12345678901234567890 as 12345678901234567000)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b if isinstance(a, int) and isinstance(b, int) else float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b
