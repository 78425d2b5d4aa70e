"""timing.py: the one factor every time bound of the suite is scaled by.

OPENOVA_TEST_TIME_SCALE (default 1) multiplies the seconds a test waits for
something the app does: startup, a response, a frame, an exit. Under
valgrind (make integration-valgrind) the app runs 10-50 times slower, so
those bounds grow with it. Time the test itself sets (an upstream's delay,
the app's OPENOVA_FLOW_KEEPALIVE or PROXY_TIMEOUT) is physical and is not
scaled, except where a test compares a scaled bound against it and has to
keep the two apart (then both go through scaled(), as the test says)."""
import os


def _read_scale():
    raw = os.environ.get("OPENOVA_TEST_TIME_SCALE", "1").strip() or "1"
    try:
        value = float(raw)
    except ValueError:
        raise RuntimeError(f"OPENOVA_TEST_TIME_SCALE={raw!r}: a number (1, 2.5, 10) expected") from None
    if value < 1:
        raise RuntimeError(f"OPENOVA_TEST_TIME_SCALE={raw!r}: at least 1 (it only loosens bounds)")
    return value


TIME_SCALE = _read_scale()


def scaled(seconds):
    """seconds times OPENOVA_TEST_TIME_SCALE."""
    return seconds * TIME_SCALE
