"""checks.py: assertions shared by the test files."""
import json
import os
import time


def assert_proxy_error(resp, status, request_id=None):
    """An error the proxy made itself: JSON, exactly error/message/requestId."""
    assert resp.status == status, resp
    ctype = resp.header("Content-Type") or ""
    assert ctype.split(";")[0].strip() == "application/json", resp
    body = json.loads(resp.body)
    assert isinstance(body, dict) and set(body) == {"error", "message", "requestId"}, body
    assert isinstance(body["error"], str) and body["error"] and " " not in body["error"], body
    assert isinstance(body["message"], str) and body["message"], body
    assert isinstance(body["requestId"], str) and body["requestId"], body
    assert resp.header("X-Request-ID") == body["requestId"], resp
    if request_id is not None:
        assert body["requestId"] == request_id, body
    return body


def wait_for(predicate, timeout, interval=0.02):
    """Polls predicate until it is true or timeout passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def rss_kib(pid):
    """A process's resident memory (VmRSS), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def open_fds(pid):
    """How many descriptors a process has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))
