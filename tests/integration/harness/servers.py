"""servers.py: starts and stops a real lighttpd from conf/lighttpd (which
spawns the built app), or the app alone on a socket, each in its own
directory (pytest's tmp_path: kept for the last runs, for their logs) and
process group, and always tears them down."""
import hashlib
import base64
import json
import os
import signal
import socket
import subprocess
import time

from . import client

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
# make check-asan points this at the sanitizer build.
BINARY = os.environ.get("OPENOVA_FLOW_FCGI_BIN") or os.path.join(REPO, "build", "openova-flow-fcgi")
LIGHTTPD = "/usr/sbin/lighttpd"
CONF_DIR = os.path.join(REPO, "conf", "lighttpd")

USER = "alice"
PASSWORD = "wonderland"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env():
    """A small, explicit environment: nothing from the caller's OPENOVA_*."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    for name in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TMPDIR"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def _kill_group(proc, grace):
    """SIGTERM to the process group, SIGKILL after grace seconds."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _children(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            kids.append(int(entry))
    return kids


class Lighttpd:
    """lighttpd -D -f conf/lighttpd/<conf> with ports and paths from the
    environment. app_env holds the OPENOVA_FLOW_* settings; lighttpd passes
    its environment on to the app it spawns."""

    def __init__(self, app_env, workdir, conf="lighttpd.conf"):
        self.conf = os.path.join(CONF_DIR, conf)
        self.auth = conf == "lighttpd.conf"
        self.app_env = dict(app_env)
        self.dir = str(workdir)   # the run dir: logs, pid, sockets, htpasswd
        os.makedirs(self.dir, exist_ok=True)
        self.port = None
        self.proc = None
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.errorlog_path = os.path.join(self.dir, "error.log")
        # lighttpd appends "-<n>" to the socket name of each process it spawns.
        self.app_socket = os.path.join(self.dir, "openova-flow-fcgi.sock-0")

    def env(self):
        env = base_env()
        env.update({
            "OPENOVA_LIGHTTPD_PORT": str(self.port),
            "OPENOVA_LIGHTTPD_RUNDIR": self.dir,
            "OPENOVA_LIGHTTPD_ROOT": REPO,
            "OPENOVA_LIGHTTPD_BIN": BINARY,
        })
        env.update(self.app_env)
        return env

    def start(self, wait_app=True):
        digest = base64.b64encode(hashlib.sha1(PASSWORD.encode()).digest()).decode()
        with open(os.path.join(self.dir, "htpasswd"), "w") as f:
            f.write(f"{USER}:{{SHA}}{digest}\n")
        for attempt in range(5):
            self.port = free_port()
            stderr = open(self.stderr_path, "ab")
            self.proc = subprocess.Popen([LIGHTTPD, "-D", "-f", self.conf], env=self.env(), cwd=self.dir,
                                         stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                                         start_new_session=True)
            stderr.close()
            if self._wait_listening(10):
                break
            self.stop()
        else:
            raise RuntimeError(f"lighttpd did not start: {self.logs()}")
        if wait_app:
            self.wait_app()
        return self

    def _wait_listening(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                time.sleep(0.02)
        return False

    def wait_app(self, timeout=10):
        """Until a request under the mount reaches the app: its errors are
        JSON with a requestId, lighttpd's own are HTML."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = client.request(self.port, "GET", "/api/v1/flows/readiness-probe", self.auth_headers(),
                                      timeout=2)
                if "requestId" in last.body.decode("latin-1"):
                    return
            except OSError as exc:
                last = exc
            time.sleep(0.05)
        raise RuntimeError(f"app behind lighttpd not answering: {last!r}\n{self.logs()}")

    def auth_headers(self):
        return [client.basic_auth(USER, PASSWORD)] if self.auth else []

    def app_pids(self):
        return _children(self.proc.pid) if self.proc else []

    def app_log(self):
        """What the app wrote to stderr: lighttpd spawns it with lighttpd's
        own stderr (before server.errorlog is opened), so under -D the app's
        lines land there, not in server.errorlog."""
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def logs(self):
        out = f"--- {self.stderr_path}\n{self.app_log()}"
        if os.path.exists(self.errorlog_path):
            with open(self.errorlog_path, "rb") as f:
                out += f"--- {self.errorlog_path}\n{f.read().decode('utf-8', 'replace')}"
        return out

    def stop(self):
        if not self.proc:
            return
        apps = self.app_pids()
        _kill_group(self.proc, grace=5)
        for pid in apps:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None


class App:
    """The binary run directly: build/openova-flow-fcgi --listen ADDRESS."""

    def __init__(self, app_env, workdir, listen=None):
        self.dir = str(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.socket_path = os.path.join(self.dir, "app.sock")
        self.listen = listen or f"unix:{self.socket_path}"
        self.app_env = dict(app_env)
        self.proc = None
        self.stderr_path = os.path.join(self.dir, "stderr.log")

    @property
    def address(self):
        if self.listen.startswith("unix:"):
            return self.listen[5:]
        host, _, port = self.listen.rpartition(":")
        return (host, int(port))

    def start(self, wait=True):
        env = base_env()
        env.update(self.app_env)
        stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([BINARY, "--listen", self.listen], env=env, cwd=self.dir,
                                     stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                                     start_new_session=True)
        stderr.close()
        if wait:
            self.wait_listening()
        return self

    def wait_listening(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with {self.proc.returncode}: {self.log()}")
            family = socket.AF_UNIX if isinstance(self.address, str) else socket.AF_INET
            s = socket.socket(family, socket.SOCK_STREAM)
            try:
                s.settimeout(0.5)
                s.connect(self.address)
                return
            except OSError:
                time.sleep(0.02)
            finally:
                s.close()
        raise RuntimeError(f"app not listening on {self.listen}: {self.log()}")

    def log(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc:
            _kill_group(self.proc, grace=5)
            self.proc = None


def run_cli(args, env=None, timeout=10):
    full = base_env()
    full.update(env or {})
    return subprocess.run([BINARY] + list(args), env=full, capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def parse_json_object(text):
    return json.loads(text)
