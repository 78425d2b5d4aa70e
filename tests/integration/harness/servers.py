"""servers.py: starts and stops the real web servers from conf/: lighttpd
(which spawns the built app itself), Apache httpd and nginx (in front of
the app started by a launcher, harness/launchers.py), or the app alone on
a socket; each in its own directory (pytest's tmp_path: kept for the last
runs, for their logs) and process group, and always tears them down.
make bench (bench/integration.py) starts its web servers with it too."""
import grp
import hashlib
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from . import client, wrapper
from .timing import scaled

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
# make check-asan points this at the sanitizer build.
BINARY = os.environ.get("OPENOVA_FLOW_FCGI_BIN") or os.path.join(REPO, "build", "openova-flow-fcgi")
LIGHTTPD = "/usr/sbin/lighttpd"
APACHE = "/usr/sbin/apache2"
NGINX = "/usr/sbin/nginx"
CONF_DIR = os.path.join(REPO, "conf", "lighttpd")
# The user Debian's apache2 and nginx workers run as when started as root.
WEB_USER = "www-data"

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


def htpasswd_line():
    """USER:{SHA}base64(sha1(PASSWORD)): read by lighttpd, Apache and nginx."""
    digest = base64.b64encode(hashlib.sha1(PASSWORD.encode()).digest()).decode()
    return f"{USER}:{{SHA}}{digest}\n"


def shared_dir(prefix):
    """A directory the web server's workers can reach, for the app's socket,
    the htpasswd file and nginx's temp files. pytest's tmp dirs are private
    to the invoking user (0700), and Apache and nginx started as root run
    their workers as www-data, so this one is outside them: /tmp/PREFIX*,
    root:www-data 0750 when root. Removed by the caller."""
    path = tempfile.mkdtemp(prefix=prefix)
    if os.getuid() == 0:
        os.chown(path, 0, grp.getgrnam(WEB_USER).gr_gid)
        os.chmod(path, 0o750)
    return path


def write_htpasswd(directory):
    path = os.path.join(directory, "htpasswd")
    with open(path, "w") as f:
        f.write(htpasswd_line())
    if os.getuid() == 0:
        os.chown(path, 0, grp.getgrnam(WEB_USER).gr_gid)
        os.chmod(path, 0o640)
    return path


def copy_conf(src_dir, dst_dir, mutations):
    """Copies a conf/ directory with lines changed: mutations is a list of
    (file name, old text, new text); each old text must occur exactly once,
    so a test that shows what a setting does breaks when the setting moves."""
    os.makedirs(dst_dir, exist_ok=True)
    for name in os.listdir(src_dir):
        shutil.copy(os.path.join(src_dir, name), os.path.join(dst_dir, name))
    for name, old, new in mutations:
        path = os.path.join(dst_dir, name)
        with open(path) as f:
            text = f.read()
        assert text.count(old) == 1, f"{name}: {old!r} occurs {text.count(old)} times"
        with open(path, "w") as f:
            f.write(text.replace(old, new))
    return dst_dir


def kill_group(proc, grace=None, others=()):
    """SIGTERM to the process group, SIGKILL after grace seconds (5,
    scaled). others: pids that may outlive the group's leader (the app
    lighttpd spawned, in lighttpd's group): they get the same grace, so an
    app under valgrind can finish its leak report before the SIGKILL."""
    grace = scaled(5) if grace is None else grace
    deadline = time.monotonic() + grace
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    while any(wrapper.running(pid) for pid in others) and time.monotonic() < deadline:
        time.sleep(0.05)
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

    name = "lighttpd"
    CONFS = {"auth": "lighttpd.conf", "noauth": "lighttpd-noauth.conf"}

    def __init__(self, app_env, workdir, conf="lighttpd.conf", mutations=()):
        conf = self.CONFS.get(conf, conf)
        self.auth = conf == "lighttpd.conf"
        self.app_env = dict(app_env)
        self.dir = str(workdir)   # the run dir: logs, pid, sockets, htpasswd
        os.makedirs(self.dir, exist_ok=True)
        conf_dir = copy_conf(CONF_DIR, os.path.join(self.dir, "conf"), mutations) if mutations else CONF_DIR
        self.conf = os.path.join(conf_dir, conf)
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
            "OPENOVA_LIGHTTPD_BIN": wrapper.program(),
        })
        env.update(self.app_env)
        return env

    def start(self, wait_app=True, port=None):
        """port: listen on this one (lighttpd started again where it was)
        instead of a free one."""
        with open(os.path.join(self.dir, "htpasswd"), "w") as f:
            f.write(htpasswd_line())
        for attempt in range(5):
            self.port = port or free_port()
            stderr = open(self.stderr_path, "ab")
            self.proc = subprocess.Popen([LIGHTTPD, "-D", "-f", self.conf], env=self.env(), cwd=self.dir,
                                         stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                                         start_new_session=True)
            stderr.close()
            if self._wait_listening(scaled(10)):
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

    def wait_app(self, timeout=None):
        _wait_app(self, scaled(10) if timeout is None else timeout)

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
        kill_group(self.proc, others=apps)
        for pid in apps:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None


class Fronted:
    """A web server that does not start the app (Apache httpd, nginx): a
    launcher (harness/launchers.py: spawn-fcgi by default) starts it first
    on a unix socket in a shared directory (see shared_dir), then the server
    starts from its conf/ file with ports and paths filled in. conf is
    "auth", "noauth" or a file name; mutations change lines of a copy of the
    conf/ directory (see copy_conf)."""

    name = None
    CONFS = {}

    def __init__(self, app_env, workdir, conf="auth", launcher=None, mutations=()):
        conf = self.CONFS.get(conf, conf)
        self.conf_name = conf
        self.auth = "noauth" not in conf
        self.app_env = dict(app_env)
        self.dir = str(workdir)   # private: logs, pid, rendered config
        os.makedirs(self.dir, exist_ok=True)
        self.conf_dir = self.CONF_DIR
        if mutations:
            self.conf_dir = copy_conf(self.CONF_DIR, os.path.join(self.dir, "conf"), mutations)
        if launcher is None:
            from .launchers import SpawnFcgi
            launcher = SpawnFcgi
        self.launcher_cls = launcher
        self.pub = None           # shared: the app's socket, htpasswd, temp files
        self.app = None
        self.port = None
        self.proc = None
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.errorlog_path = os.path.join(self.dir, "error.log")

    @property
    def app_socket(self):
        return os.path.join(self.pub, "openova-flow-fcgi.sock")

    def app_address(self):
        return self.app_socket

    def command(self):
        """(argv, env) of the server."""
        raise NotImplementedError

    def start(self, wait_app=True):
        """Starts the app, then the server; on failure stops what started."""
        try:
            return self._start(wait_app)
        except BaseException:
            self.stop()
            raise

    def _start(self, wait_app):
        self.pub = shared_dir(f"openova-flow-{self.name}-")
        self.userfile = write_htpasswd(self.pub)
        self.app = self.launcher_cls(self.app_env, self.dir, self.app_address())
        self.app.start()
        for attempt in range(5):
            self.port = free_port()
            argv, env = self.command()
            with open(self.stderr_path, "ab") as stderr:
                self.proc = subprocess.Popen(argv, env=env, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=stderr,
                                             stderr=stderr, start_new_session=True)
            if _wait_listening(self.proc, self.port, scaled(10)):
                break
            kill_group(self.proc)
        else:
            raise RuntimeError(f"{self.name} did not start: {self.logs()}")
        if wait_app:
            self.wait_app()
        return self

    def wait_app(self, timeout=None):
        _wait_app(self, scaled(10) if timeout is None else timeout)

    def auth_headers(self):
        return [client.basic_auth(USER, PASSWORD)] if self.auth else []

    def app_pids(self):
        return [self.app.pid] if self.app and self.app.proc and self.app.proc.poll() is None else []

    def app_log(self):
        return self.app.log() if self.app else ""

    def logs(self):
        out = f"--- app ({self.launcher_cls.name}) {self.app.log_path if self.app else ''}\n{self.app_log()}"
        for path in (self.stderr_path, self.errorlog_path):
            if os.path.exists(path):
                with open(path, "rb") as f:
                    out += f"--- {path}\n{f.read().decode('utf-8', 'replace')}"
        return out

    def stop(self):
        if self.proc:
            kill_group(self.proc)
            self.proc = None
        if self.app:
            self.app.stop()
        if self.pub:
            shutil.rmtree(self.pub, ignore_errors=True)
            self.pub = None


class Apache(Fronted):
    """apache2 -d conf/apache2 -f apache2.conf -DFOREGROUND (mpm_event),
    ports and paths from OPENOVA_APACHE_*."""

    name = "apache"
    CONF_DIR = os.path.join(REPO, "conf", "apache2")
    CONFS = {"auth": "apache2.conf", "noauth": "apache2-noauth.conf"}

    def command(self):
        env = base_env()
        env.update({
            "OPENOVA_APACHE_PORT": str(self.port),
            "OPENOVA_APACHE_RUNDIR": self.dir,
            "OPENOVA_APACHE_ROOT": REPO,
            "OPENOVA_APACHE_SOCKET": self.app_socket,
            "OPENOVA_APACHE_USERFILE": self.userfile,
        })
        return [APACHE, "-d", self.conf_dir, "-f", self.conf_name, "-DFOREGROUND"], env


def render_nginx(template, values):
    """Fills in ${OPENOVA_NGINX_*} (what envsubst with exactly those names
    does); every name used must be given."""
    with open(template) as f:
        text = f.read()
    return re.sub(r"\$\{(OPENOVA_NGINX_[A-Z]+)\}", lambda m: values[m.group(1)], text)


def nginx_head(rundir, worker_connections=1024, user=WEB_USER, nofile=None):
    """What precedes http {} in an nginx.conf written here for an nginx of
    its own: foreground, its pid and error log in rundir. user: its workers'
    user when started as root (None: nginx's default); nofile: their
    open-file limit (worker_rlimit_nofile), when they hold many connections."""
    lines = ["daemon off;"]
    if user:
        lines.append(f"user {user};")
    lines.append("worker_processes 1;")
    if nofile:
        lines.append(f"worker_rlimit_nofile {nofile};")
    lines += [f"pid {rundir}/nginx.pid;", f"error_log {rundir}/error.log warn;",
              f"events {{ worker_connections {worker_connections}; }}"]
    return "\n".join(lines) + "\n"


def nginx_temp_paths(tempdir):
    """The lines of http {} that put nginx's temp files in tempdir instead
    of the system's (which a non-root nginx cannot write)."""
    return "\n".join(f"    {kind}_temp_path {tempdir}/{kind};"
                     for kind in ("client_body", "fastcgi", "proxy", "uwsgi", "scgi"))


class Nginx(Fronted):
    """nginx -c <rundir>/nginx.conf, rendered from conf/nginx/nginx.conf
    with OPENOVA_NGINX_* filled in; it includes conf/nginx/
    openova-flow-fcgi.conf as it is."""

    name = "nginx"
    CONF_DIR = os.path.join(REPO, "conf", "nginx")
    CONFS = {"auth": "nginx.conf", "noauth": "nginx-noauth.conf"}

    def render(self):
        values = {
            "OPENOVA_NGINX_PORT": str(self.port),
            "OPENOVA_NGINX_RUNDIR": self.dir,
            "OPENOVA_NGINX_TEMPDIR": self.pub,
            "OPENOVA_NGINX_ROOT": REPO,
            "OPENOVA_NGINX_CONFDIR": self.conf_dir,
            "OPENOVA_NGINX_SOCKET": self.app_socket,
            "OPENOVA_NGINX_USERFILE": self.userfile,
        }
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(render_nginx(os.path.join(self.conf_dir, self.conf_name), values))
        return path

    def command(self):
        conf = self.render()
        return [NGINX, "-p", self.dir, "-e", self.errorlog_path, "-c", conf], base_env()


class NginxPod(Nginx):
    """The Kubernetes example's pod: conf/container/nginx-pod.conf (its
    server {} for the nginx image's conf.d) in front of the image's
    entrypoint on TCP loopback. Filled in: its port 8080, the app's
    127.0.0.1:9000, the mount points of the snippet and the htpasswd
    Secret. The http {} around it stands in for the image's own
    /etc/nginx/nginx.conf."""

    name = "nginx-pod"
    POD_CONF = os.path.join(REPO, "conf", "container", "nginx-pod.conf")

    def __init__(self, app_env, workdir, **kw):
        from .launchers import ContainerEntrypoint
        super().__init__(app_env, workdir, launcher=ContainerEntrypoint, **kw)
        self.auth = True
        self.tcp = ("127.0.0.1", free_port())

    def app_address(self):
        return self.tcp

    def render(self):
        with open(self.POD_CONF) as f:
            site = f.read()
        # (text, filled in, how often it occurs: the snippet is included by
        # the API's location and the operations endpoints')
        for old, new, times in [("listen 8080;", f"listen 127.0.0.1:{self.port};", 1),
                                ("server 127.0.0.1:9000;", f"server 127.0.0.1:{self.tcp[1]};", 1),
                                ("/etc/nginx/snippets/", self.CONF_DIR + "/", 2),
                                ("/etc/nginx/auth/htpasswd", self.userfile, 1)]:
            assert site.count(old) == times, f"nginx-pod.conf: {old!r} occurs {site.count(old)} times"
            site = site.replace(old, new)
        site_path = os.path.join(self.dir, "openova-flow.conf")
        with open(site_path, "w") as f:
            f.write(site)
        main = nginx_head(self.dir) + f"""http {{
    include /etc/nginx/mime.types;
    access_log {self.dir}/access.log;
{nginx_temp_paths(self.pub)}
    include {site_path};
}}
"""
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(main)
        return path


def _wait_listening(proc, port, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def _wait_app(server, timeout):
    """Until a request under the mount reaches the app: its errors are JSON
    with a requestId, the web server's own are HTML."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = client.request(server.port, "GET", "/api/v1/flows/readiness-probe", server.auth_headers(),
                                  timeout=scaled(2))
            if "requestId" in last.body.decode("latin-1"):
                return
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"app behind {server.name} not answering: {last!r}\n{server.logs()}")


WEB_SERVERS = {"lighttpd": Lighttpd, "apache": Apache, "nginx": Nginx}


class App:
    """The binary run directly: build/openova-flow-fcgi --listen ADDRESS."""

    def __init__(self, app_env, workdir, listen=None, args=()):
        self.dir = str(workdir)
        self.args = list(args)  # more options after --listen
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
        self.proc = subprocess.Popen(wrapper.argv(["--listen", self.listen] + self.args), env=env, cwd=self.dir,
                                     stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                                     start_new_session=True)
        stderr.close()
        if wait:
            self.wait_listening()
        return self

    def wait_listening(self, timeout=None):
        deadline = time.monotonic() + (scaled(10) if timeout is None else timeout)
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
            kill_group(self.proc)
            self.proc = None


def read_log(path):
    """A process's log file as text; empty before the process wrote one."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def run_cli(args, env=None, timeout=10):
    """The app with args (under the wrapper if any), to its end; timeout is scaled."""
    full = base_env()
    full.update(env or {})
    return subprocess.run(wrapper.argv(args), env=full, capture_output=True, timeout=scaled(timeout),
                          stdin=subprocess.DEVNULL)


def parse_json_object(text):
    return json.loads(text)
