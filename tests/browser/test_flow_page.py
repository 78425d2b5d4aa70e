"""Browser test of the live flow page (www/): headless Chromium, driven by
flow_page.mjs (playwright-core), opens the page through a real lighttpd ->
openova-flow-fcgi -> openova-flow-devserver chain started here on free
ports, and checks what an operator would see.

This file owns the processes; the node script owns the browser and the
assertions. The script asks for process changes on its stdout with a line
`@@control <command>` and waits for one line on its stdin: `ok`, or
`error <why>`. Commands:

    stop-devserver      SIGTERM the flow server and wait for it to exit
    kill-devserver      SIGKILL it (a crash)
    start-devserver     start it again on the same port, in the mode it was
                        in (its state is gone: it keeps flows in memory)
    restart-devserver-default
                        stop it and start it on the same port in its default
                        mode, the reference server's behaviour: every stream,
                        a reconnection too, begins with a snapshot frame
    restart-devserver-replay
                        the same with --replay: a reconnection's
                        Last-Event-ID gets the frames after it instead
    stop-lighttpd       stop the web server (and with it the proxy it spawned)
    start-lighttpd      start it again on the same port

Every process runs in its own process group and the whole group is killed at
the end, whatever happened.

Run: /usr/bin/python3 -m pytest -q tests/browser   (after `make` and
`npm ci --prefix tests/browser`; Debian's chromium at /usr/bin/chromium).
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PROXY = Path(os.environ.get("OPENOVA_FLOW_FCGI_BIN", REPO / "build" / "openova-flow-fcgi"))
DEVSERVER = Path(os.environ.get("OPENOVA_FLOW_DEVSERVER_BIN", REPO / "build" / "openova-flow-devserver"))
LIGHTTPD = Path(os.environ.get("LIGHTTPD", "/usr/sbin/lighttpd"))
CHROMIUM = os.environ.get("FLOW_CHROMIUM", "/usr/bin/chromium")
NODE = os.environ.get("NODE", shutil.which("node") or "node")
ARTIFACTS = Path(os.environ.get("FLOW_ARTIFACTS", REPO / "build" / "test-artifacts"))
SCRIPT_TIMEOUT_S = 240


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return None


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Proc:
    """One child in its own process group, output to a log file."""

    def __init__(self, name, argv, env, log, cwd=REPO):
        self.name = name
        self.log = log
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self):
        return self.popen.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signals the whole group, waits, then SIGKILLs what is left."""
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)  # leftovers: the app lighttpd spawned
        except ProcessLookupError:
            pass
        if self.popen.poll() is None:
            self.popen.wait(timeout=5)


class Stack:
    """devserver (in its default mode unless a case asks for --replay) +
    lighttpd(noauth, app with OPENOVA_FLOW_AUTH=none), and a second lighttpd
    whose app still wants a user (every call 401)."""

    def __init__(self, tmp):
        self.tmp = Path(tmp)
        self.dev_port = free_port()
        self.web_port = free_port()
        self.nouser_port = free_port()
        self.dev = None
        self.web = None
        self.nouser = None
        self.runs = 0
        self.replay = False  # the devserver's --replay (default: off, as the reference)

    @property
    def dev_url(self):
        return f"http://127.0.0.1:{self.dev_port}"

    def base_env(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("OPENOVA_", "FLOW_SERVER_"))}
        return env

    def start_devserver(self):
        env = self.base_env()
        env["FLOW_SERVER_LISTEN_ADDR"] = f"127.0.0.1:{self.dev_port}"
        # short heartbeats: the page sees (and must ignore) some
        env["FLOW_SERVER_HEARTBEAT"] = "1s"
        deadline = time.monotonic() + 15
        while True:
            argv = [str(DEVSERVER)] + (["--replay"] if self.replay else [])
            self.dev = Proc("devserver", argv, env, self.tmp / "devserver.log")
            try:
                wait_for(lambda: http_status(self.dev_url + "/healthz") == 200 or not self.dev.alive(), 10,
                         "the devserver's /healthz")
            except AssertionError:
                self.dev.stop(signal.SIGKILL)
                raise
            if self.dev.alive():
                return
            # The port can linger for a moment after a kill: try again.
            if time.monotonic() > deadline:
                raise AssertionError(f"devserver did not start on {self.dev_port}:\n" + self.tail("devserver.log"))
            time.sleep(0.2)

    def start_lighttpd(self, which="web"):
        self.runs += 1
        port = self.web_port if which == "web" else self.nouser_port
        rundir = self.tmp / f"lighttpd-{which}-{self.runs}"
        rundir.mkdir()
        env = self.base_env()
        env.update({
            "OPENOVA_LIGHTTPD_PORT": str(port),
            "OPENOVA_LIGHTTPD_RUNDIR": str(rundir),
            "OPENOVA_LIGHTTPD_ROOT": str(REPO),
            "OPENOVA_LIGHTTPD_BIN": str(PROXY.resolve()),
            "OPENOVA_FLOW_SERVER_URL": self.dev_url,
            "OPENOVA_FLOW_AUTH": "none" if which == "web" else "remote-user",
        })
        log = self.tmp / f"lighttpd-{which}.log"
        proc = Proc(f"lighttpd-{which}", [str(LIGHTTPD), "-D", "-f", "conf/lighttpd/lighttpd-noauth.conf"], env, log)
        url = f"http://127.0.0.1:{port}/index.html"
        try:
            wait_for(lambda: http_status(url) == 200 or not proc.alive(), 15, f"lighttpd on {port}")
        except AssertionError:
            pass
        if not proc.alive() or http_status(url) != 200:
            proc.stop()
            errlog = rundir / "error.log"
            raise AssertionError(f"lighttpd ({which}) did not start on {port}:\n" + self.tail(log.name) + "\n" +
                                 (errlog.read_text(errors="replace") if errlog.exists() else ""))
        setattr(self, which, proc)

    def tail(self, name, n=40):
        p = self.tmp / name
        if not p.exists():
            return ""
        return "\n".join(p.read_text(errors="replace").splitlines()[-n:])

    def control(self, cmd):
        if cmd == "stop-devserver":
            self.dev.stop(signal.SIGTERM)
        elif cmd == "kill-devserver":
            self.dev.stop(signal.SIGKILL)
        elif cmd == "start-devserver":
            assert not self.dev.alive(), "devserver already running"
            self.start_devserver()
        elif cmd in ("restart-devserver-default", "restart-devserver-replay"):
            self.dev.stop(signal.SIGTERM)
            self.replay = cmd.endswith("-replay")
            self.start_devserver()
        elif cmd == "stop-lighttpd":
            self.web.stop(signal.SIGTERM)
        elif cmd == "start-lighttpd":
            assert not self.web.alive(), "lighttpd already running"
            self.start_lighttpd("web")
        else:
            raise AssertionError(f"unknown control command {cmd!r}")

    def close(self):
        for p in (self.nouser, self.web, self.dev):
            if p is not None:
                p.stop()


@pytest.fixture
def stack():
    for path, what in ((PROXY, "run `make`"), (DEVSERVER, "run `make`"), (LIGHTTPD, "apt-get install lighttpd"),
                       (Path(CHROMIUM), "apt-get install chromium")):
        assert os.access(path, os.X_OK), f"{path} missing: {what}"
    assert (HERE / "node_modules" / "playwright-core").is_dir(), \
        "playwright-core missing: npm ci --prefix tests/browser"
    tmp = tempfile.mkdtemp(prefix="openova-flow-browser-")
    s = Stack(tmp)
    try:
        s.start_devserver()
        s.start_lighttpd("web")
        s.start_lighttpd("nouser")
        yield s
    finally:
        s.close()
        if os.environ.get("FLOW_KEEP_TMP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)


def test_flow_page(stack):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update({
        # The page where the shipped snippet mounts it (lighttpd.conf also
        # serves it at /, which the second server's page uses).
        "FLOW_PAGE_URL": f"http://127.0.0.1:{stack.web_port}/flow/",
        "FLOW_API_BASE": f"http://127.0.0.1:{stack.web_port}/api/v1/flows",
        "FLOW_PAGE_URL_NOUSER": f"http://127.0.0.1:{stack.nouser_port}/",
        "FLOW_DEVSERVER_URL": stack.dev_url,
        "FLOW_ARTIFACTS": str(ARTIFACTS),
        "FLOW_CHROMIUM": CHROMIUM,
        "FLOW_DEMO_EVENTS": str(REPO / "tools" / "demo-events"),
    })
    node = subprocess.Popen([NODE, str(HERE / "flow_page.mjs")], cwd=REPO, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            start_new_session=True)
    # A hung script must not hang the suite.
    timer = threading.Timer(SCRIPT_TIMEOUT_S, lambda: os.killpg(node.pid, signal.SIGKILL))
    timer.start()
    output = []
    try:
        for line in node.stdout:
            line = line.rstrip("\n")
            if line.startswith("@@control "):
                cmd = line[len("@@control "):].strip()
                try:
                    stack.control(cmd)
                    reply = "ok"
                except Exception as e:  # the script reports it as its own failure
                    reply = f"error {e}".replace("\n", " ")
                output.append(f"  [control] {cmd}: {reply}")
                node.stdin.write(reply + "\n")
                node.stdin.flush()
                continue
            output.append(line)
            print(line, flush=True)
        rc = node.wait()
    finally:
        timer.cancel()
        if node.poll() is None:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait()
    text = "\n".join(output)
    logs = "\n".join(f"--- {n}\n{stack.tail(n)}" for n in ("devserver.log", "lighttpd-web.log", "lighttpd-nouser.log"))
    assert rc == 0, f"flow_page.mjs exited {rc}:\n{text}\n{logs}"
    assert any(l.startswith("browser: ") and l.endswith(" 0 failed") for l in output), text
    assert (ARTIFACTS / "flow-page.png").is_file(), "no screenshot saved"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
