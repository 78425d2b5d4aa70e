"""applog.py: the app's log lines, parsed strictly: logfmt (the default)
and JSON (OPENOVA_FLOW_LOG_FORMAT=json). A line that does not parse raises
ValueError with the reason, so a test that reads the log also checks its
form. Other programs share the app's stderr (lighttpd before its error log
is open, valgrind, spawn-fcgi); their lines are told apart by their start:
every line of the app begins with its time."""
import json
import re

# The fields every line starts with, in this order.
HEAD = ("time", "level")
LEVELS = ("debug", "info", "warn", "error")
TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
KEY = re.compile(r"[a-z_]+")
ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}


def _quoted(line, i):
    """The value of a quoted logfmt string starting at line[i] == '"', and
    the index after its closing quote."""
    out = []
    i += 1
    while i < len(line):
        c = line[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            e = line[i + 1:i + 2]
            if e in ESCAPES:
                out.append(ESCAPES[e])
                i += 2
            elif e == "u" and re.fullmatch(r"[0-9a-f]{4}", line[i + 2:i + 6]):
                out.append(chr(int(line[i + 2:i + 6], 16)))
                i += 6
            else:
                raise ValueError(f"bad escape at {i}: {line!r}")
            continue
        if ord(c) < 0x20 or c == "\x7f":
            raise ValueError(f"raw control character at {i}: {line!r}")
        out.append(c)
        i += 1
    raise ValueError(f"unterminated quote: {line!r}")


def parse_logfmt(line):
    """One logfmt line (without its newline) into a dict, keys in order."""
    record, i = {}, 0
    while i < len(line):
        m = KEY.match(line, i)
        if not m or line[m.end():m.end() + 1] != "=":
            raise ValueError(f"no key=value at {i}: {line!r}")
        key, i = m.group(), m.end() + 1
        if key in record:
            raise ValueError(f"key {key} twice: {line!r}")
        if line[i:i + 1] == '"':
            value, i = _quoted(line, i)
        else:
            end = line.find(" ", i)
            end = len(line) if end < 0 else end
            value = line[i:end]
            if not value or any(c in value for c in '="\\') or any(ord(c) < 0x21 for c in value):
                raise ValueError(f"value of {key} should be quoted: {line!r}")
            i = end
        record[key] = value
        if i < len(line):
            if line[i] != " " or i + 1 == len(line):
                raise ValueError(f"fields not separated by one space at {i}: {line!r}")
            i += 1
    return _checked(record, line)


def parse_json(line):
    record = json.loads(line)
    if not isinstance(record, dict):
        raise ValueError(f"not an object: {line!r}")
    return _checked(record, line)


def _checked(record, line):
    if tuple(record)[:2] != HEAD:
        raise ValueError(f"does not start with time and level: {line!r}")
    if not TIME.fullmatch(str(record["time"])):
        raise ValueError(f"time is not RFC 3339 UTC with milliseconds: {line!r}")
    if record["level"] not in LEVELS:
        raise ValueError(f"unknown level: {line!r}")
    if "msg" not in record:
        raise ValueError(f"no msg: {line!r}")
    return record


def is_app_line(line):
    return line.startswith("time=") or line.startswith('{"time"')


def records(text):
    """Every app line of text, parsed (each line in its own format)."""
    out = []
    for line in text.splitlines():
        if line.startswith("time="):
            out.append(parse_logfmt(line))
        elif line.startswith("{"):
            out.append(parse_json(line))
    return out


def with_rid(text, rid):
    return [r for r in records(text) if r.get("rid") == rid]
