#!/usr/bin/env python3
"""run.py: `make bench`: every way to put a web server in front of the flow
server, side by side against the same upstream, in one run.

Paths (each on loopback high ports, from configs generated under
build/bench/run/, never the system's):
  direct        the client talks to the upstream itself (the limit)
  nginx-proxy   nginx proxy_pass (keepalive to the upstream): the reference
  nginx-proxy-stock  nginx proxy_pass with nginx's defaults (a new upstream
                connection per request), for comparison only
  lighttpd-proxy  lighttpd mod_proxy
  lighttpd+app  conf/lighttpd/lighttpd-noauth.conf: lighttpd spawns the app
  nginx+app     conf/nginx/nginx-noauth.conf, the app under
                conf/spawn-fcgi/openova-flow-fcgi-spawn
  apache+app    conf/apache2/apache2-noauth.conf (mpm_event), the same spawner

The reference proxies are the shipped server configs with the FastCGI
mount swapped for their HTTP proxy module: the same logging, buffering and
keepalive defaults, so the difference is the proxying.

Measured:
  1. snapshot   wrk, 1 thread, 32 connections, GET of a 34 KB snapshot
                (upstream: nginx serving the file): requests/s, p99, and the
                proxy layer's CPU per request (utime+stime from /proc of every
                process of the web server and of the app, over the run)
  2. events     the same with a 256 KiB POST body (the upstream nginx reads
                the body whole before answering {"seq":1})
  3. SSE        build/bench/sse-client opens 16 streams per path through to
                build/bench/sse-upstream, which stamps each frame with its
                send time (CLOCK_MONOTONIC); p50/p99 of arrival - send; added =
                path minus direct
  4. scale      1,000 and 10,000 streams through nginx+app, a frame per
                second to all: p99 delivery, frames lost, the app's RSS per
                stream, threads, descriptors, the proxy layer's CPU per
                delivered frame; snapshot throughput while the 10,000 are
                open against without; the same 10,000 through nginx
                proxy_pass and direct, for comparison. Where the hard
                open-file limit cannot hold 10,000 (two descriptors per
                stream in nginx and in the app), the largest run is as many
                hundreds as fit, and the report says so.
Every wrk measurement runs twice, interleaved (A B C .. A B C); the table
shows the mean. Machine-dependent numbers also appear as ratios to nginx
proxy_pass of the same run.

Writes bench/results.json, bench/RESULTS.md and bench/results.png (gnuplot),
and prints the table. BENCH_QUICK=1: a smoke run of about a minute (short
measurements, one pass), whose results are not for committing.
"""
import datetime
import grp
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BUILD = os.environ.get("BENCH_BUILD") or os.path.join(REPO, "build", "bench")
RUN = os.path.join(BUILD, "run")
APP_BIN = os.environ.get("OPENOVA_FLOW_FCGI_BIN") or os.path.join(REPO, "build", "openova-flow-fcgi")
SSE_UPSTREAM = os.path.join(BUILD, "sse-upstream")
SSE_CLIENT = os.path.join(BUILD, "sse-client")
SPAWN_SCRIPT = os.path.join(REPO, "conf", "spawn-fcgi", "openova-flow-fcgi-spawn")
NGINX, LIGHTTPD, APACHE, WRK = "/usr/sbin/nginx", "/usr/sbin/lighttpd", "/usr/sbin/apache2", "/usr/bin/wrk"
WEB_USER = "www-data"
FLOW_ID = "dep-bench-7f3a"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
if QUICK:
    WARMUP, MEASURE, PASSES = 1, 2, 1
    SSE_SECONDS, SCALE_SECONDS, SCALE_NS, SCALE_COMPARE = 3, 8, [1000, 10000], False
else:
    WARMUP, MEASURE, PASSES = 2, 10, 2
    SSE_SECONDS, SCALE_SECONDS, SCALE_NS, SCALE_COMPARE = 8, 20, [1000, 10000], True
CONNECTIONS = 32
SSE_STREAMS = 16
SSE_INTERVAL_MS = 50
MAX_STREAMS = 20000
SCALE_TARGET = 10000
# Set in main() when the open-file limit cannot be raised far enough for
# SCALE_TARGET streams (nginx and the app each hold two descriptors per
# stream): (hard limit, streams measured instead).
FD_LIMITED = []

# What "short requests unaffected" means here: with 10,000 streams open,
# snapshot throughput at least this share of the same path's without them,
# and p99 at most this multiple.
UNAFFECTED_RPS = 0.9
UNAFFECTED_P99 = 2.0
# SSE: "no worse than nginx's" allows this much (measurement noise between
# two passes of the same path is of this order on a loaded 2-core VM).
SSE_TOLERANCE_US = 50.0

PROCS = []  # every process group this run started, for the cleanup
# Seconds this run may still spend waiting for other load on the machine to
# settle before a measurement (see wait_quiet).
QUIET_BUDGET = [0 if QUICK else 60.0]


def log(msg):
    print(f"bench: {msg}", flush=True)


# ---- processes ----

class Proc:
    """A process in its own process group, its output in a log file."""

    def __init__(self, name, argv, env=None, cwd=None, log_path=None):
        self.name = name
        self.log_path = log_path or os.path.join(RUN, f"{name}.log")
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        full = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        full.update(env or {})
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(argv, env=full, cwd=cwd or RUN, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=out, start_new_session=True)
        PROCS.append(self)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def log_tail(self, n=20):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        group = tree_pids([self.pid])
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=6)
            except subprocess.TimeoutExpired:
                pass
        for target in [self.pid] + group:
            try:
                os.killpg(target, signal.SIGKILL) if target == self.pid else os.kill(target, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None
        if self in PROCS:
            PROCS.remove(self)


def stop_all():
    for p in list(reversed(PROCS)):
        p.stop()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=2.0):
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_until(what, check, timeout=15.0, procs=()):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for p in procs:
            if not p.alive():
                raise RuntimeError(f"{what}: {p.name} exited:\n{p.log_tail()}")
        try:
            if check():
                return
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    tails = "\n".join(f"--- {p.name}\n{p.log_tail()}" for p in procs)
    raise RuntimeError(f"{what}: not ready after {timeout}s ({last!r})\n{tails}")


# ---- /proc ----

def _stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text.rsplit(")", 1)[1].split()


def tree_pids(roots):
    """roots and every descendant."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = int(_stat(entry)[1])
            except (OSError, IndexError):
                pass
    out, todo = [], [r for r in roots if r in parents]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return out


def cpu_ticks(roots):
    """utime+stime of the trees under roots; the roots' waited-for children
    (cutime, cstime) too, so a worker that exits mid-run still counts."""
    total = {}
    for pid in tree_pids(roots):
        try:
            f = _stat(pid)
        except (OSError, IndexError):
            continue
        ticks = int(f[11]) + int(f[12])
        if pid in roots:
            ticks += int(f[13]) + int(f[14])
        total[pid] = ticks
    return total


def cpu_delta(before, after):
    return sum(t - before.get(pid, 0) for pid, t in after.items()) / CLK_TCK


def system_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / CLK_TCK


def wait_quiet(threshold=0.3, window=0.5):
    """Waits (within QUIET_BUDGET) until the machine's busy CPU, with
    nothing of ours running, drops below threshold cores: other people's
    jobs skew a measurement more than anything we do."""
    while True:
        s0 = system_busy()
        time.sleep(window)
        busy = (system_busy() - s0) / window
        if busy < threshold or QUIET_BUDGET[0] <= 0:
            return busy
        QUIET_BUDGET[0] -= window


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "Threads", "VmHWM"):
                out[k] = int(v.split()[0])
    try:
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        out["fds"] = -1
    return out


# ---- the servers ----

def shared_dir(prefix):
    """For the app's socket and nginx's temp files: reachable by www-data,
    which the workers of nginx and Apache run as when started as root."""
    path = tempfile.mkdtemp(prefix=prefix)
    if os.getuid() == 0:
        os.chown(path, 0, grp.getgrnam(WEB_USER).gr_gid)
        os.chmod(path, 0o750)
    return path


def app_env(upstream_url, extra=None):
    env = {
        "OPENOVA_FLOW_SERVER_URL": upstream_url,
        "OPENOVA_FLOW_AUTH": "none",
        "OPENOVA_FLOW_MAX_STREAMS": str(MAX_STREAMS),
    }
    env.update(extra or {})
    return env


class UpstreamNginx:
    """The fast upstream of the snapshot and events runs: nginx serving the
    snapshot file, and answering events with 200 {"seq":1} once it has read
    the whole body (mirror_request_body reads it before the content phase;
    the static handler then refuses the POST and error_page turns that into
    the answer)."""

    name = "upstream-nginx"

    def __init__(self, fixtures):
        self.port = free_port()
        self.dir = os.path.join(RUN, self.name)
        os.makedirs(self.dir, exist_ok=True)
        conf = f"""daemon off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path {self.dir}/client_body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    server {{
        listen 127.0.0.1:{self.port} backlog=4096;
        log_not_found off;
        location ~ ^/v1/flows/[^/]+/snapshot$ {{
            root {fixtures};
            default_type application/json;
            try_files /snapshot.json =404;
        }}
        location ~ ^/v1/flows/[^/]+/events$ {{
            client_max_body_size 2m;
            client_body_buffer_size 512k;
            root {self.dir}/nothing;
            mirror /_body_read;
            mirror_request_body on;
            error_page 404 405 =200 /_seq;
        }}
        location = /_body_read {{ internal; return 204; }}
        location = /_seq {{ internal; default_type application/json; return 200 '{{"seq":1}}'; }}
    }}
}}
"""
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.proc = Proc(self.name, [NGINX, "-p", self.dir, "-e", f"{self.dir}/error.log", "-c", path])
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until(self.name, lambda: http_get(f"{self.url}/v1/flows/{FLOW_ID}/snapshot")[0] == 200,
                   procs=[self.proc])

    def pids(self):
        return [self.proc.pid]

    def stop(self):
        self.proc.stop()


class SseUpstream:
    """build/bench/sse-upstream: stamped SSE frames; also answers snapshot
    (from memory) and events, for the scale runs."""

    def __init__(self, name, interval_ms, fixtures):
        self.name = name
        self.port = free_port()
        self.proc = Proc(name, [SSE_UPSTREAM, "--listen", f"127.0.0.1:{self.port}", "--interval-ms",
                                str(interval_ms), "--snapshot", os.path.join(fixtures, "snapshot.json")])
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until(name, lambda: http_get(f"{self.url}/stats")[0] == 200, procs=[self.proc])

    def stats(self):
        return json.loads(http_get(f"{self.url}/stats")[1])

    def pids(self):
        return [self.proc.pid]

    def stop(self):
        self.proc.stop()


class Path:
    """One way to reach the upstream. base: the URL the routes hang off."""

    name = label = None
    has_app = False

    def __init__(self, upstream_url, scale=False):
        self.upstream_url = upstream_url
        self.scale = scale
        self.dir = os.path.join(RUN, self.name)
        os.makedirs(self.dir, exist_ok=True)
        self.procs = []
        self.shared = None
        self.port = free_port()

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}/api/v1/flows/{FLOW_ID}"

    def proxy_pids(self):
        """Roots of the processes that make up the proxy layer."""
        return [p.pid for p in self.procs]

    def app_pid(self):
        return None

    def wait_ready(self):
        wait_until(self.name, lambda: http_get(f"{self.base}/snapshot")[0] == 200, procs=self.procs)

    def stop(self):
        for p in reversed(self.procs):
            p.stop()
        self.procs = []
        if self.shared:
            shutil.rmtree(self.shared, ignore_errors=True)
            self.shared = None


class Direct(Path):
    name, label = "direct", "direct (no proxy)"

    def __init__(self, upstream_url, scale=False):
        self.upstream_url = upstream_url
        self.procs = []
        self.shared = None

    @property
    def base(self):
        return f"{self.upstream_url}/v1/flows/{FLOW_ID}"


class NginxProxy(Path):
    """nginx proxy_pass: conf/nginx/nginx-noauth.conf's server with the
    mount proxied over HTTP/1.1 keepalive connections instead."""

    name, label = "nginx-proxy", "nginx proxy_pass"
    upstream_keepalive = True

    def start(self):
        host_port = self.upstream_url.split("//", 1)[1]
        self.shared = shared_dir(f"openova-bench-{self.name}-")
        if self.upstream_keepalive:
            pool = f"server {host_port};\n        keepalive 64;"
            http11 = 'proxy_http_version 1.1;\n            proxy_set_header Connection "";'
        else:
            # nginx's defaults: HTTP/1.0 and a new upstream connection per request.
            pool = f"server {host_port};"
            http11 = "# HTTP/1.0, Connection: close (nginx's defaults)"
        conf = f"""daemon off;
user {WEB_USER};
worker_processes 1;
worker_rlimit_nofile 65536;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 32768; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {self.dir}/access.log;
    client_body_temp_path {self.shared}/client_body;
    fastcgi_temp_path {self.shared}/fastcgi;
    proxy_temp_path {self.shared}/proxy;
    uwsgi_temp_path {self.shared}/uwsgi;
    scgi_temp_path {self.shared}/scgi;
    gzip on;
    gzip_types text/event-stream;
    upstream flow_server {{
        {pool}
    }}
    server {{
        listen 127.0.0.1:{self.port};
        server_name localhost;
        root {REPO}/www;
        location ^~ /api/v1/flows/ {{
            proxy_pass http://flow_server/v1/flows/;
            {http11}
            proxy_set_header X-Forwarded-For $remote_addr;
            client_max_body_size 2m;
            location ~ ^/api/v1/flows/[^/]*/stream$ {{
                rewrite ^/api(/.*)$ $1 break;
                proxy_pass http://flow_server;
                {http11}
                proxy_buffering off;
                proxy_read_timeout 300s;
                gzip off;
            }}
        }}
    }}
}}
"""
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.procs = [Proc(self.name, [NGINX, "-p", self.dir, "-e", f"{self.dir}/error.log", "-c", path],
                           log_path=os.path.join(self.dir, "stderr.log"))]
        self.wait_ready()


class NginxProxyStock(NginxProxy):
    """nginx proxy_pass as most sites write it: no upstream keepalive, so a
    new upstream connection per request. Not the reference (the targets are
    judged against the faster keepalive config); shown because it is the
    common deployment and matches the figures issue 6 quotes (12,400/s at
    80 us)."""

    name, label = "nginx-proxy-stock", "nginx proxy_pass, no upstream keepalive"
    upstream_keepalive = False


class LighttpdProxy(Path):
    """lighttpd mod_proxy: conf/lighttpd/lighttpd.conf's server (same
    stream-response-body = 2) with mod_proxy in place of mod_fastcgi."""

    name, label = "lighttpd-proxy", "lighttpd mod_proxy"

    def start(self):
        host, port = self.upstream_url.split("//", 1)[1].rsplit(":", 1)
        conf = f"""server.port = {self.port}
server.bind = "127.0.0.1"
server.document-root = "{REPO}/www"
server.errorlog = "{self.dir}/error.log"
server.pid-file = "{self.dir}/lighttpd.pid"
server.upload-dirs = ( "{self.dir}" )
server.modules = ( "mod_access", "mod_staticfile", "mod_proxy" )
index-file.names = ( "index.html" )
mimetype.assign = ( ".html" => "text/html; charset=utf-8", ".json" => "application/json" )
server.stream-response-body = 2
proxy.server = ( "/api/v1/flows/" => (( "host" => "{host}", "port" => {port} )) )
proxy.header = ( "map-urlpath" => ( "/api/v1/flows/" => "/v1/flows/" ) )
"""
        path = os.path.join(self.dir, "lighttpd.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.procs = [Proc(self.name, [LIGHTTPD, "-D", "-f", path], log_path=os.path.join(self.dir, "stderr.log"))]
        self.wait_ready()


class LighttpdApp(Path):
    """conf/lighttpd/lighttpd-noauth.conf as shipped; lighttpd spawns the
    app (bin-path) and passes it its environment."""

    name, label = "lighttpd+app", "lighttpd + app"
    has_app = True

    def start(self):
        env = {
            "OPENOVA_LIGHTTPD_PORT": str(self.port),
            "OPENOVA_LIGHTTPD_RUNDIR": self.dir,
            "OPENOVA_LIGHTTPD_ROOT": REPO,
            "OPENOVA_LIGHTTPD_BIN": APP_BIN,
        }
        env.update(app_env(self.upstream_url))
        self.procs = [Proc(self.name, [LIGHTTPD, "-D", "-f", os.path.join(REPO, "conf", "lighttpd",
                                                                         "lighttpd-noauth.conf")],
                           env=env, cwd=self.dir, log_path=os.path.join(self.dir, "stderr.log"))]
        self.wait_ready()

    def app_pid(self):
        kids = [p for p in tree_pids(self.proxy_pids()) if p != self.procs[0].pid]
        return kids[0] if kids else None


class Fronted(Path):
    """A web server that does not start the app: the app runs first under
    conf/spawn-fcgi/openova-flow-fcgi-spawn on a unix socket."""

    has_app = True

    def start_app(self):
        self.shared = shared_dir(f"openova-bench-{self.name.replace('+', '-')}-")
        self.socket = os.path.join(self.shared, "openova-flow-fcgi.sock")
        env = {"OPENOVA_FLOW_BIN": APP_BIN, "OPENOVA_FLOW_SOCKET": self.socket}
        env.update(app_env(self.upstream_url))
        self.app = Proc(f"{self.name}-app", [SPAWN_SCRIPT], env=env, cwd=self.dir,
                        log_path=os.path.join(self.dir, "app.log"))
        self.procs = [self.app]

        def serving():
            if not os.path.exists(self.socket):
                return False
            return os.path.realpath(f"/proc/{self.app.pid}/exe") == os.path.realpath(APP_BIN)
        wait_until(f"{self.name} app", serving, procs=[self.app])

    def app_pid(self):
        return self.app.pid


class NginxApp(Fronted):
    """conf/nginx/nginx-noauth.conf with its ${OPENOVA_NGINX_*} filled in.
    For the scale runs only, two lines change so nginx can hold 10,000
    streams (each takes two connections): worker_connections 32768 and
    worker_rlimit_nofile."""

    name, label = "nginx+app", "nginx + app"

    def start(self):
        self.start_app()
        with open(os.path.join(REPO, "conf", "nginx", "nginx-noauth.conf")) as f:
            text = f.read()
        values = {
            "OPENOVA_NGINX_PORT": str(self.port),
            "OPENOVA_NGINX_RUNDIR": self.dir,
            "OPENOVA_NGINX_TEMPDIR": self.shared,
            "OPENOVA_NGINX_ROOT": REPO,
            "OPENOVA_NGINX_CONFDIR": os.path.join(REPO, "conf", "nginx"),
            "OPENOVA_NGINX_SOCKET": self.socket,
            "OPENOVA_NGINX_USERFILE": os.path.join(self.shared, "htpasswd"),
        }
        text = re.sub(r"\$\{(OPENOVA_NGINX_[A-Z]+)\}", lambda m: values[m.group(1)], text)
        if self.scale:
            for old, new in (("worker_connections 1024;", "worker_connections 32768;"),
                             ("worker_processes 1;", "worker_processes 1;\nworker_rlimit_nofile 65536;")):
                assert text.count(old) == 1, f"nginx-noauth.conf: {old!r} occurs {text.count(old)} times"
                text = text.replace(old, new)
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(text)
        self.procs.append(Proc(self.name, [NGINX, "-p", self.dir, "-e", f"{self.dir}/error.log", "-c", path],
                               log_path=os.path.join(self.dir, "stderr.log")))
        self.wait_ready()


class ApacheApp(Fronted):
    """conf/apache2/apache2-noauth.conf (mpm_event) as shipped."""

    name, label = "apache+app", "Apache + app"

    def start(self):
        self.start_app()
        userfile = os.path.join(self.shared, "htpasswd")
        open(userfile, "w").close()
        env = {
            "OPENOVA_APACHE_PORT": str(self.port),
            "OPENOVA_APACHE_RUNDIR": self.dir,
            "OPENOVA_APACHE_ROOT": REPO,
            "OPENOVA_APACHE_SOCKET": self.socket,
            "OPENOVA_APACHE_USERFILE": userfile,
        }
        self.procs.append(Proc(self.name, [APACHE, "-d", os.path.join(REPO, "conf", "apache2"), "-f",
                                           "apache2-noauth.conf", "-DFOREGROUND"],
                               env=env, cwd=self.dir, log_path=os.path.join(self.dir, "stderr.log")))
        self.wait_ready()


PATHS = [Direct, NginxProxy, NginxProxyStock, LighttpdProxy, LighttpdApp, NginxApp, ApacheApp]
REFERENCE = "nginx-proxy"


def start_paths(upstream_url):
    paths = []
    for cls in PATHS:
        p = cls(upstream_url)
        if hasattr(p, "start"):
            p.start()
        paths.append(p)
    return paths


def stop_paths(paths):
    for p in paths:
        p.stop()


# ---- load ----

def run_wrk(url, seconds, body_file=None, connections=CONNECTIONS):
    """wrk's JSON line, plus its own CPU seconds."""
    env = {"PATH": "/usr/bin:/bin"}
    if body_file:
        env["BENCH_BODY_FILE"] = body_file
    argv = [WRK, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s",
            "-s", os.path.join(HERE, "wrk.lua"), url]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    for line in out.splitlines():
        if line.startswith("JSON "):
            result = json.loads(line[5:])
            result["wrk_cpu_s"] = usage.ru_utime + usage.ru_stime
            return result
    raise RuntimeError(f"wrk gave no result for {url}:\n{out}")


def measure_wrk(path, kind, fixtures, upstream_pids):
    url = f"{path.base}/{'events' if kind == 'events' else 'snapshot'}"
    body = os.path.join(fixtures, "events.json") if kind == "events" else None
    wait_quiet()
    run_wrk(url, WARMUP, body)
    roots = path.proxy_pids()
    app = path.app_pid()
    a0 = cpu_ticks([app]) if app else {}
    c0, u0, s0 = cpu_ticks(roots), cpu_ticks(upstream_pids), system_busy()
    r = run_wrk(url, MEASURE, body)
    c1, u1, s1 = cpu_ticks(roots), cpu_ticks(upstream_pids), system_busy()
    a1 = cpu_ticks([app]) if app else {}
    seconds = r["duration_us"] / 1e6
    proxy_cpu = cpu_delta(c0, c1)
    app_cpu = cpu_delta(a0, a1) if app else None
    upstream_cpu = cpu_delta(u0, u1)
    errors = sum(r["errors"].values())
    return {
        "rps": r["requests"] / seconds,
        "requests": r["requests"],
        "errors": r["errors"],
        "error_count": errors,
        "p50_ms": r["latency_us"]["p50"] / 1000,
        "p99_ms": r["latency_us"]["p99"] / 1000,
        "proxy_cpu_us": proxy_cpu / max(r["requests"], 1) * 1e6,
        "app_cpu_us": app_cpu / max(r["requests"], 1) * 1e6 if app else None,
        "proxy_cores": proxy_cpu / seconds,
        "upstream_cpu_us": upstream_cpu / max(r["requests"], 1) * 1e6,
        # CPU used on the machine by anything but the proxy layer, the
        # upstream and wrk: the other load during the measurement.
        "foreign_cores": max(0.0, (s1 - s0 - proxy_cpu - upstream_cpu - r["wrk_cpu_s"]) / seconds),
    }


def run_sse_client(url, conns, seconds, on_ready=None, sources=1, split=None):
    argv = [SSE_CLIENT, "--url", url, "--conns", str(conns), "--duration", str(seconds), "--sources", str(sources),
            "--connect-timeout", "90"]
    if split:
        argv += ["--split", str(split)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        line = proc.stdout.readline().decode()
        if not line.startswith("ready"):
            raise RuntimeError(f"sse-client: {line}{proc.stderr.read().decode()}")
        extra = on_ready(int(line.split()[1])) if on_ready else None
        out, err = proc.communicate(timeout=seconds + 120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    result = json.loads(out.decode().strip().splitlines()[-1])
    return result, extra


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


# ---- phases ----

def phase_throughput(fixtures):
    upstream = UpstreamNginx(fixtures)
    paths = start_paths(upstream.url)
    runs = {p.name: {"snapshot": [], "events": []} for p in paths}
    try:
        for kind in ("snapshot", "events"):
            for n in range(PASSES):
                for p in paths:
                    r = measure_wrk(p, kind, fixtures, upstream.pids())
                    runs[p.name][kind].append(r)
                    log(f"{kind:8s} pass {n + 1} {p.name:15s} {r['rps']:9.0f} req/s  p99 {r['p99_ms']:6.2f} ms  "
                        f"proxy {r['proxy_cpu_us']:6.1f} us/req  errors {r['error_count']}"
                        + (f"  (other load {r['foreign_cores']:.2f} cores)" if r["foreign_cores"] > 0.1 else ""))
    finally:
        stop_paths(paths)
        upstream.stop()
    return runs


def phase_sse(fixtures):
    upstream = SseUpstream("sse-upstream", SSE_INTERVAL_MS, fixtures)
    paths = start_paths(upstream.url)
    runs = {p.name: [] for p in paths}
    try:
        for n in range(PASSES):
            for p in paths:
                wait_quiet()
                r, _ = run_sse_client(f"{p.base}/stream", SSE_STREAMS, SSE_SECONDS)
                runs[p.name].append(r)
                log(f"sse      pass {n + 1} {p.name:15s} p50 {r['latency_us']['p50']:7.1f} us  "
                    f"p99 {r['latency_us']['p99']:7.1f} us  frames {r['frames']}  lost {r['lost']}")
    finally:
        stop_paths(paths)
        upstream.stop()
    return runs


def wait_streams_closed(upstream, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if upstream.stats()["streams"] == 0:
            return True
        time.sleep(0.2)
    return False


def scale_run(path, upstream, n, snapshot_during=False):
    """n streams through path for SCALE_SECONDS, a frame a second to all.
    After 2 s: the app's size; then a window measuring the CPU the proxy
    layer spends per delivered frame; then (snapshot_during) wrk through the
    same path while the streams stay open, whose frames the client counts
    apart (latency_after_split_us)."""
    app = path.app_pid()
    samples = {}
    cpu_window = 2 if QUICK else 6
    split = 2 + cpu_window

    def on_ready(ready):
        time.sleep(2)
        if app:
            samples["ready"] = proc_status(app)
        samples["upstream_streams"] = upstream.stats()["streams"]
        roots = path.proxy_pids()
        c0, a0, q0 = cpu_ticks(roots), cpu_ticks([app]) if app else {}, upstream.stats()["seq"]
        time.sleep(cpu_window)
        c1, a1, q1 = cpu_ticks(roots), cpu_ticks([app]) if app else {}, upstream.stats()["seq"]
        frames = max((q1 - q0) * ready, 1)
        samples["cpu"] = {"proxy_us_per_frame": cpu_delta(c0, c1) / frames * 1e6 if roots else None,
                          "app_us_per_frame": cpu_delta(a0, a1) / frames * 1e6 if app else None}
        if snapshot_during:
            samples["wrk"] = run_wrk(f"{path.base}/snapshot", max(1, min(MEASURE, SCALE_SECONDS - split - 1)))
        if app:
            samples["late"] = proc_status(app)
        return ready

    sources = 4 if n > 5000 else 1
    r, _ = run_sse_client(f"{path.base}/stream", n, SCALE_SECONDS, on_ready=on_ready, sources=sources,
                          split=split if snapshot_during else None)
    closed = wait_streams_closed(upstream)
    r["upstream_streams_seen"] = samples.get("upstream_streams")
    r["upstream_closed_after"] = closed
    r["cpu"] = samples.get("cpu")
    if app:
        r["app"] = {"ready": samples.get("ready"), "late": samples.get("late")}
    if "wrk" in samples:
        w = samples["wrk"]
        r["snapshot_during"] = {"rps": w["requests"] / (w["duration_us"] / 1e6), "p99_ms": w["latency_us"]["p99"] / 1000,
                                "errors": sum(w["errors"].values())}
    return r


def phase_scale(fixtures):
    upstream = SseUpstream("scale-upstream", 1000, fixtures)
    results = {}
    path = NginxApp(upstream.url, scale=True)
    try:
        path.start()
        app = path.app_pid()
        # Short requests alone first: the baseline, and the app's idle size
        # once every worker has served.
        run_wrk(f"{path.base}/snapshot", WARMUP)
        w = run_wrk(f"{path.base}/snapshot", MEASURE)
        results["snapshot_alone"] = {"rps": w["requests"] / (w["duration_us"] / 1e6),
                                     "p99_ms": w["latency_us"]["p99"] / 1000, "errors": sum(w["errors"].values())}
        idle = proc_status(app)
        results["app_idle"] = idle
        log(f"scale    nginx+app idle: RSS {idle['VmRSS']} KiB, {idle['Threads']} threads, {idle['fds']} fds; "
            f"snapshot alone {results['snapshot_alone']['rps']:.0f} req/s p99 {results['snapshot_alone']['p99_ms']:.2f} ms")
        for n in SCALE_NS:
            r = scale_run(path, upstream, n, snapshot_during=(n == max(SCALE_NS)))
            ready = r["app"]["ready"] or {}
            late = r["app"]["late"] or {}
            rss = max(ready.get("VmRSS", 0), late.get("VmRSS", 0))
            r["rss_per_stream_kib"] = (rss - idle["VmRSS"]) / max(r["ready"], 1)
            results[f"nginx+app/{n}"] = r
            log(f"scale    nginx+app {n:6d} streams: ready {r['ready']}  p99 {r['latency_us']['p99'] / 1000:.2f} ms  "
                f"lost {r['lost']}  RSS/stream {r['rss_per_stream_kib']:.1f} KiB  threads {ready.get('Threads')}  "
                f"fds {ready.get('fds')}  CPU/frame {fmt((r['cpu'] or {}).get('proxy_us_per_frame'), '.1f')} us"
                + (f"  snapshot during {r['snapshot_during']['rps']:.0f} req/s p99 "
                   f"{r['snapshot_during']['p99_ms']:.2f} ms" if "snapshot_during" in r else ""))
    finally:
        path.stop()
    if SCALE_COMPARE:
        n = max(SCALE_NS)
        for cls in (NginxProxy, Direct):
            p = cls(upstream.url, scale=True)
            try:
                if hasattr(p, "start"):
                    p.start()
                r = scale_run(p, upstream, n)
                results[f"{p.name}/{n}"] = r
                log(f"scale    {p.name} {n:6d} streams: ready {r['ready']}  p99 {r['latency_us']['p99'] / 1000:.2f} ms  "
                    f"lost {r['lost']}  CPU/frame {fmt((r['cpu'] or {}).get('proxy_us_per_frame'), '.1f')} us")
            finally:
                p.stop()
    upstream.stop()
    return results


# ---- results ----

def machine():
    def out(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip()
        except OSError:
            return ""
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    curl = out([APP_BIN, "--version"])
    git = out(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    # The binary is built from the working tree: say when it differs.
    if git and out(["git", "-C", REPO, "status", "--porcelain", "--", "fcgi", "handlers", "Makefile"]):
        git += " + uncommitted changes in fcgi/, handlers/ or the Makefile"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "os": out(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "nginx": out([NGINX, "-v"]).replace("nginx version: ", ""),
        "lighttpd": out([LIGHTTPD, "-v"]).split(" - ")[0],
        "apache": out([APACHE, "-v"]).splitlines()[0].replace("Server version: ", "") if out([APACHE, "-v"]) else "",
        "app": curl,
        "wrk": out([WRK, "-v"]).splitlines()[0].split(" Copyright")[0] if out([WRK, "-v"]) else "",
        "commit": git,
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
    }


def summarize(throughput, sse, scale):
    rows = {}
    for name in throughput:
        snap, ev = throughput[name]["snapshot"], throughput[name]["events"]
        row = {
            "snapshot_rps": mean([r["rps"] for r in snap]),
            "snapshot_p99_ms": mean([r["p99_ms"] for r in snap]),
            "proxy_cpu_us": mean([r["proxy_cpu_us"] for r in snap]) if name != "direct" else None,
            "app_cpu_us": mean([r["app_cpu_us"] for r in snap]),
            "events_rps": mean([r["rps"] for r in ev]),
            "events_p99_ms": mean([r["p99_ms"] for r in ev]),
            "events_proxy_cpu_us": mean([r["proxy_cpu_us"] for r in ev]) if name != "direct" else None,
            "errors": sum(r["error_count"] for r in snap + ev),
            "sse_p50_us": mean([r["latency_us"]["p50"] for r in sse[name]]),
            "sse_p99_us": mean([r["latency_us"]["p99"] for r in sse[name]]),
            "sse_lost": sum(r["lost"] for r in sse[name]),
            "foreign_cores": mean([r["foreign_cores"] for r in snap + ev]),
        }
        rows[name] = row
    d = rows["direct"]
    for row in rows.values():
        row["sse_added_p50_us"] = row["sse_p50_us"] - d["sse_p50_us"]
        row["sse_added_p99_us"] = row["sse_p99_us"] - d["sse_p99_us"]
    ref = rows[REFERENCE]
    for row in rows.values():
        row["ratio"] = {
            "snapshot_rps": row["snapshot_rps"] / ref["snapshot_rps"],
            "proxy_cpu_us": row["proxy_cpu_us"] / ref["proxy_cpu_us"] if row["proxy_cpu_us"] is not None else None,
            "events_rps": row["events_rps"] / ref["events_rps"],
        }

    targets = []

    def target(name, path, ok, value, goal):
        targets.append({"target": name, "path": path, "pass": bool(ok), "value": value, "goal": goal})

    app_paths = [n for n in ("lighttpd+app", "nginx+app", "apache+app") if n in rows]
    la = rows["lighttpd+app"]
    stock = rows.get(NginxProxyStock.name)
    target("snapshot req/s >= nginx proxy_pass", "lighttpd+app", la["ratio"]["snapshot_rps"] >= 1.0,
           f"{la['snapshot_rps']:.0f} req/s = {la['ratio']['snapshot_rps']:.2f}x"
           + (f" ({la['snapshot_rps'] / stock['snapshot_rps']:.2f}x proxy_pass without upstream keepalive)"
              if stock else ""), ">= 1.00x")
    for n in app_paths:
        r = rows[n]
        target("proxy CPU per snapshot <= 1.25x nginx's", n, r["ratio"]["proxy_cpu_us"] <= 1.25,
               f"{r['proxy_cpu_us']:.0f} us = {r['ratio']['proxy_cpu_us']:.2f}x", "<= 1.25x")
    for n in app_paths:
        r = rows[n]
        ok = r["sse_added_p99_us"] <= 1000 and r["sse_added_p99_us"] <= ref["sse_added_p99_us"] + SSE_TOLERANCE_US \
            and r["sse_lost"] == 0
        target("SSE added p99 <= 1 ms and <= nginx's", n, ok,
               f"{r['sse_added_p99_us']:+.0f} us (nginx {ref['sse_added_p99_us']:+.0f} us), lost {r['sse_lost']}",
               f"<= 1000 us, <= nginx + {SSE_TOLERANCE_US:.0f} us")
    for n in app_paths:
        r = rows[n]
        target("events 256 KiB req/s >= 0.9x nginx", n, r["ratio"]["events_rps"] >= 0.9,
               f"{r['events_rps']:.0f} req/s = {r['ratio']['events_rps']:.2f}x", ">= 0.90x")
    big = max(SCALE_NS)
    s = scale.get(f"nginx+app/{big}")
    if s:
        if FD_LIMITED:
            target(f"{SCALE_TARGET} streams in one app process", "nginx+app", False,
                   f"not measurable here: hard open-file limit {FD_LIMITED[0]} < {2 * SCALE_TARGET + 64} needed; "
                   f"{s['ready']} of {big} open (the rows below are at {big})", f"{SCALE_TARGET}")
        else:
            target(f"{big} streams in one app process", "nginx+app", s["ready"] == big,
                   f"{s['ready']} open, {s['failed']} failed", f"{big}")
        target("RSS per open stream <= 32 KiB", "nginx+app", s["rss_per_stream_kib"] <= 32,
               f"{s['rss_per_stream_kib']:.1f} KiB", "<= 32 KiB")
        p99 = s["latency_us"]["p99"] / 1000
        ref_s, direct_s = scale.get(f"{REFERENCE}/{big}"), scale.get(f"direct/{big}")
        extra = []
        if ref_s:
            extra.append(f"nginx proxy_pass {ref_s['latency_us']['p99'] / 1000:.2f} ms")
        if direct_s:
            extra.append(f"direct {direct_s['latency_us']['p99'] / 1000:.2f} ms")
        target("broadcast p99 <= 5 ms", "nginx+app", p99 <= 5,
               f"{p99:.2f} ms" + (f" ({', '.join(extra)})" if extra else ""), "<= 5 ms")
        target("no frame lost", "nginx+app", s["lost"] == 0 and s["frames"] > 0,
               f"{s['lost']} lost of {s['expected']}", "0")
        alone, during = scale["snapshot_alone"], s.get("snapshot_during")
        if during:
            ok = during["rps"] >= UNAFFECTED_RPS * alone["rps"] and during["p99_ms"] <= UNAFFECTED_P99 * alone["p99_ms"] \
                and during["errors"] == 0
            target("short requests unaffected", "nginx+app", ok,
                   f"{during['rps']:.0f} req/s p99 {during['p99_ms']:.2f} ms vs {alone['rps']:.0f} req/s "
                   f"p99 {alone['p99_ms']:.2f} ms alone ({during['rps'] / alone['rps']:.2f}x)",
                   f">= {UNAFFECTED_RPS}x req/s, p99 <= {UNAFFECTED_P99}x")
    return rows, targets


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def tables(rows, targets, scale, info):
    order = [cls.name for cls in PATHS]
    labels = {cls.name: cls.label for cls in PATHS}
    out = []
    out.append("| path | snapshot req/s | x nginx | p99 ms | proxy CPU us/req (app's part) | x nginx | "
               "events 256 KiB req/s | x nginx | SSE p50 / p99 us | added p99 us |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in order:
        r = rows[n]
        out.append(f"| {labels[n]} | {r['snapshot_rps']:.0f} | {r['ratio']['snapshot_rps']:.2f} | "
                   f"{r['snapshot_p99_ms']:.2f} | {fmt(r['proxy_cpu_us'], '.0f')}"
                   f"{' (' + format(r['app_cpu_us'], '.0f') + ')' if r.get('app_cpu_us') is not None else ''} | "
                   f"{fmt(r['ratio']['proxy_cpu_us'], '.2f')} | {r['events_rps']:.0f} | {r['ratio']['events_rps']:.2f} | "
                   f"{r['sse_p50_us']:.0f} / {r['sse_p99_us']:.0f} | {r['sse_added_p99_us']:+.0f} |")
    main = "\n".join(out)

    out = ["| run | streams open | delivery p50 / p99 / max ms | frames | lost | proxy CPU us/frame (app's part) | "
           "app RSS per stream | app threads | app fds |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key, r in scale.items():
        if "/" not in key:
            continue
        app = (r.get("app") or {}).get("ready") or {}
        lat = r["latency_us"]
        cpu = r.get("cpu") or {}
        cpu_text = fmt(cpu.get("proxy_us_per_frame"), ".1f")
        if cpu.get("app_us_per_frame") is not None:
            cpu_text += f" ({cpu['app_us_per_frame']:.1f})"
        rss = r.get("rss_per_stream_kib")
        out.append(f"| {key} | {r['ready']} | {lat['p50'] / 1000:.2f} / {lat['p99'] / 1000:.2f} / {lat['max'] / 1000:.2f} | "
                   f"{r['frames']} | {r['lost']} | {cpu_text} | {fmt(rss, '.1f')}{' KiB' if rss is not None else ''} | "
                   f"{app.get('Threads', '-')} | {app.get('fds', '-')} |")
        if "snapshot_during" in r:
            d, alone = r["snapshot_during"], scale["snapshot_alone"]
            lat2 = r.get("latency_after_split_us") or {}
            out.append(f"| {key} + wrk snapshots | {r['ready']} | "
                       f"{lat2.get('p50', -1000) / 1000:.2f} / {lat2.get('p99', -1000) / 1000:.2f} / "
                       f"{lat2.get('max', -1000) / 1000:.2f} | | | snapshots: {d['rps']:.0f} req/s, p99 {d['p99_ms']:.2f} ms "
                       f"(alone: {alone['rps']:.0f} req/s, p99 {alone['p99_ms']:.2f} ms) | | | |")
    scale_table = "\n".join(out)

    out = ["| target | path | value | goal | |", "|---|---|---|---|---|"]
    for t in targets:
        out.append(f"| {t['target']} | {t['path']} | {t['value']} | {t['goal']} | {'PASS' if t['pass'] else 'FAIL'} |")
    target_table = "\n".join(out)
    return main, scale_table, target_table


def write_chart(rows, png):
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        log("gnuplot not found: no chart")
        return False
    data = os.path.join(BUILD, "chart.dat")
    with open(data, "w") as f:
        f.write("# label snapshot_rps proxy_cpu_us events_rps sse_added_p99_us\n")
        for cls in PATHS:
            r = rows[cls.name]
            f.write(f"\"{cls.label}\" {r['snapshot_rps']:.0f} {r['proxy_cpu_us'] or 0:.1f} {r['events_rps']:.0f} "
                    f"{r['sse_added_p99_us']:.0f}\n")
    r = subprocess.run([gnuplot, "-e", f"datafile='{data}'; outfile='{png}'", os.path.join(HERE, "chart.gp")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        log(f"gnuplot failed: {r.stderr.strip()}")
        return False
    return True


def write_markdown(path, info, main, scale_table, target_table, targets, rows, quick):
    passed = sum(t["pass"] for t in targets)
    foreign = mean([r["foreign_cores"] for r in rows.values()])
    lines = [
        "# Benchmark results",
        "",
        "Generated by `make bench` (bench/run.py); do not edit by hand. "
        + ("**BENCH_QUICK smoke run: short measurements, not for comparison.**" if quick else ""),
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM, Linux {info['kernel']}, "
        f"{info['os']}. Date: {info['date']}. Commit: {info['commit']}.",
        f"Servers: nginx {info['nginx']}, {info['lighttpd']}, {info['apache']}; "
        f"{info['app']}; {info['wrk']}. Load average at start: {' '.join(info['loadavg_start'])}; "
        f"other load during the wrk runs: {foreign:.2f} cores on average.",
        "",
        f"Everything runs on this one machine: wrk (1 thread, {CONNECTIONS} connections, {MEASURE} s after "
        f"{WARMUP} s of warm-up, {PASSES} interleaved passes, mean shown), the proxies and the upstream. Upstream for "
        "snapshot and events: nginx serving a 34 KB snapshot (120 nodes, two regions; bench/fixtures.py) and "
        "reading 256 KiB events bodies. Proxy CPU: utime+stime of every process of the web server and the app "
        "during the run, per request. SSE: "
        f"{SSE_STREAMS} streams per path, a frame every {SSE_INTERVAL_MS} ms for {SSE_SECONDS} s from "
        "build/bench/sse-upstream, which stamps each frame just before writing it; latency = arrival - stamp, "
        "added = path minus direct. `x nginx` = ratio to nginx proxy_pass in this run.",
        "",
        main,
        "",
        "![chart](results.png)",
        "",
        f"## Streams at scale (nginx + app, one frame per second to every stream, {SCALE_SECONDS} s)",
        "",
        scale_table,
        "",
        (f"This machine's hard open-file limit is {FD_LIMITED[0]} and cannot be raised without CAP_SYS_RESOURCE; "
         f"{SCALE_TARGET} streams need about {2 * SCALE_TARGET + 64} descriptors in nginx and in the app, so the "
         f"large runs hold {FD_LIMITED[1]} streams.\n\n" if FD_LIMITED else "")
        + "App RSS per stream = (app RSS with the streams open - RSS after the snapshot runs, before any stream) / "
        "streams. Delivery latency is measured per stream from the upstream's write of that frame to that stream, "
        "so the upstream's own fan-out time is not counted; the single-threaded client reading every stream "
        "is, as the direct row shows.",
        "",
        f"## Targets: {passed} of {len(targets)} pass",
        "",
        target_table,
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main():
    for tool in (NGINX, LIGHTTPD, APACHE, WRK, APP_BIN, SSE_UPSTREAM, SSE_CLIENT, "/usr/bin/spawn-fcgi"):
        if not os.access(tool, os.X_OK):
            sys.exit(f"bench: {tool} is missing (make bench installs and builds what it needs)")
    probe = subprocess.run([APP_BIN, "--print-config"], env={"OPENOVA_FLOW_AUTH": "none",
                                                              "OPENOVA_FLOW_MAX_STREAMS": str(MAX_STREAMS),
                                                              "OPENOVA_FLOW_SERVER_URL": "http://127.0.0.1:1"},
                           capture_output=True, text=True)
    if probe.returncode != 0:
        sys.exit(f"bench: the app refuses the benchmark's settings: {probe.stderr.strip()}")
    # 10,000 streams take about 20,000 descriptors in nginx and in the app.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 262144
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    fit = (hard - 160) // 2 // 100 * 100
    if hard != resource.RLIM_INFINITY and fit < SCALE_TARGET:
        FD_LIMITED[:] = [hard, fit]
        SCALE_NS[-1] = fit
        log(f"the hard open-file limit is {hard} and cannot be raised here (no CAP_SYS_RESOURCE): "
            f"{SCALE_TARGET} streams need about {2 * SCALE_TARGET + 64} descriptors in nginx and in the app; "
            f"measuring {fit} streams instead")

    def on_signal(signo, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)

    shutil.rmtree(RUN, ignore_errors=True)
    os.makedirs(RUN)
    fixtures_dir = os.path.join(BUILD, "fixtures")
    sys.path.insert(0, HERE)
    import fixtures
    fixtures.write(fixtures_dir)
    info = machine()
    started = time.monotonic()
    log(f"{'quick smoke run' if QUICK else 'full run'} on {info['cpu']} x{info['cores']}, load {' '.join(info['loadavg_start'])}")
    try:
        throughput = phase_throughput(fixtures_dir)
        sse = phase_sse(fixtures_dir)
        scale = phase_scale(fixtures_dir)
    finally:
        stop_all()
    rows, targets = summarize(throughput, sse, scale)
    main_t, scale_t, target_t = tables(rows, targets, scale, info)
    print()
    print(main_t)
    print()
    print(scale_t)
    print()
    print(target_t)
    print()
    out_dir = HERE if not QUICK else BUILD
    result = {"machine": info, "quick": QUICK, "seconds": round(time.monotonic() - started),
              "settings": {"connections": CONNECTIONS, "warmup_s": WARMUP, "measure_s": MEASURE, "passes": PASSES,
                           "sse_streams": SSE_STREAMS, "sse_interval_ms": SSE_INTERVAL_MS, "sse_seconds": SSE_SECONDS,
                           "scale_seconds": SCALE_SECONDS, "scale_streams": SCALE_NS},
              "paths": rows, "targets": targets, "scale": scale,
              "runs": {"throughput": throughput, "sse": sse}}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")
    write_chart(rows, os.path.join(out_dir, "results.png"))
    write_markdown(os.path.join(out_dir, "RESULTS.md"), info, main_t, scale_t, target_t, targets, rows, QUICK)
    # The logs of a run are large (one line per request): keep their tails.
    for dirpath, _, files in os.walk(RUN):
        for name in files:
            path = os.path.join(dirpath, name)
            if name.endswith(".log") and os.path.getsize(path) > 1 << 20:
                with open(path, "rb") as f:
                    f.seek(-(256 << 10), os.SEEK_END)
                    tail = f.read()
                with open(path, "wb") as f:
                    f.write(b"[... truncated by bench/run.py ...]\n" + tail)
    log(f"done in {result['seconds']} s: {out_dir}/RESULTS.md, results.json, results.png; "
        f"{sum(t['pass'] for t in targets)} of {len(targets)} targets pass")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        stop_all()
        sys.exit("bench: interrupted")
