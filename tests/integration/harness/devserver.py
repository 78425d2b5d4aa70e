"""devserver.py: the real local flow server (build/openova-flow-devserver,
OPENOVA_FLOW_DEVSERVER_BIN) as an upstream process a test can SIGKILL and
start again on the same port, unlike the in-process test upstream
(upstream.py), which cannot die. Its own process group and log file
(devserver.log in the test's directory, every start appended); never under
the app's wrapper."""
import json
import os
import re
import signal
import subprocess
import time

from . import servers
from .timing import scaled

BINARY = os.environ.get("OPENOVA_FLOW_DEVSERVER_BIN") or os.path.join(servers.REPO, "build",
                                                                        "openova-flow-devserver")


class DevServer:
    """openova-flow-devserver on host:port (127.0.0.1 and a free port unless
    given), with FLOW_SERVER_* settings from env (FLOW_SERVER_TLS_CERT:
    https)."""

    def __init__(self, workdir, port=None, env=None, host="127.0.0.1"):
        self.dir = str(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.host = host
        self.port = port or servers.free_port()
        self.env = dict(env or {})
        self.log_path = os.path.join(self.dir, "devserver.log")
        self.proc = None
        self.starts = 0

    @property
    def url(self):
        scheme = "https" if self.env.get("FLOW_SERVER_TLS_CERT") else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self, timeout=None):
        """Starts it and waits for its "listening on" line (10 s, scaled)."""
        env = servers.base_env()
        env.update(self.env)
        env["FLOW_SERVER_LISTEN_ADDR"] = f"{self.host}:{self.port}"
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts + 1}\n".encode())
            log.flush()
            self.proc = subprocess.Popen([BINARY], env=env, cwd=self.dir, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, start_new_session=True)
        self.starts += 1
        marker = f"listening on {self.url}"
        deadline = time.monotonic() + (scaled(10) if timeout is None else timeout)
        while marker not in self.log().rsplit(f"--- start {self.starts}\n", 1)[-1]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"devserver did not start on {self.url}:\n{self.log()}")
            time.sleep(0.02)
        return self

    def kill(self):
        """SIGKILL, as a crash or an OOM kill would; waits for the exit."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=5)

    def log(self):
        return servers.read_log(self.log_path)

    def stop(self):
        if self.proc:
            servers.kill_group(self.proc)
            self.proc = None


def node_message(flow, node_id, status="running"):
    """An upsert-nodes message (the flow server's API) as JSON bytes."""
    return json.dumps({"type": "upsert-nodes",
                       "nodes": [{"id": node_id, "flowId": flow, "label": node_id.upper(), "status": status}]},
                      separators=(",", ":")).encode()


def frame_ids(body):
    """The id: of each SSE frame in a stream body, in order."""
    return [int(m) for m in re.findall(rb"^id: (\d+)$", body, re.M)]
