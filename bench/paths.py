"""paths.py: the ways to reach the upstream that are compared: direct, the
web servers' own HTTP proxies, and the app behind each shipped conf/ file."""
import os
import shutil

from context import FLOW_ID, MAX_STREAMS, REPO
from integration import servers
from procs import Proc, http_get, wait_until
from upstreams import nginx_argv


# Issue 14: the app counts for its metrics unless both endpoints that read
# the counters are off (an empty path turns one off); its defaults have both
# on.
METRICS_OFF = {"OPENOVA_FLOW_METRICS_PATH": "", "OPENOVA_FLOW_STATUS_PATH": ""}

# Issue 18: one upstream stream per flow, shared by its clients. The other
# fan-out settings keep their defaults (OPENOVA_FLOW_CLIENT_BUFFER 1 MiB per
# client is far above what a client owes here: one frame of about 250
# bytes a second, and on joining the frames since its flow's subscription
# opened, a few KiB).
FANOUT_ON = {"OPENOVA_FLOW_FANOUT": "on"}


def app_env(upstream_url, extra=None):
    """The app's settings on every path; extra: more, over these."""
    env = {
        "OPENOVA_FLOW_SERVER_URL": upstream_url,
        "OPENOVA_FLOW_AUTH": "none",
        "OPENOVA_FLOW_MAX_STREAMS": str(MAX_STREAMS),
    }
    env.update(extra or {})
    # None takes a setting away (the console's runs have no server URL).
    return {name: value for name, value in env.items() if value is not None}


class Path:
    """One way to reach the upstream. base: the URL the routes hang off.
    scale: configured to hold the scale runs' streams. env: more of the
    app's settings, for the paths with the app (app_env's extra); tag: its
    directory's suffix, to keep the logs of a path started with other
    settings apart."""

    name = label = None

    def __init__(self, run, upstream_url, scale=False, env=None, tag=None):
        self.run = run
        self.upstream_url = upstream_url
        self.scale = scale
        self.env = dict(env or {})
        self.dir = os.path.join(run.dir, f"{self.name}-{tag}" if tag else self.name)
        self.port = None

    @property
    def base(self):
        return self.flow_base(FLOW_ID)

    def flow_base(self, flow):
        """The URL the routes of flow hang off (flow may hold sse-client's
        "{n}")."""
        return f"http://127.0.0.1:{self.port}/api/v1/flows/{flow}"

    def start(self):
        pass

    def proxy_pids(self):
        """Roots of the processes that make up the proxy layer."""
        return []

    def app_pid(self):
        return None

    def app_log_path(self):
        """The app's log, where this path has an app of its own."""
        return None

    def wait_ready(self, procs=(), logs=None):
        wait_until(self.name, lambda: http_get(f"{self.base}/snapshot")[0] == 200, procs=procs, logs=logs)

    def stop(self):
        pass


class Direct(Path):
    name, label = "direct", "direct (no proxy)"

    def flow_base(self, flow):
        return f"{self.upstream_url}/v1/flows/{flow}"


class ProxyPath(Path):
    """A web server's own HTTP proxy, from a config written here: conf() of
    the subclass, started with argv(config file)."""

    def __init__(self, run, upstream_url, scale=False, env=None, tag=None):
        super().__init__(run, upstream_url, scale, env, tag)
        self.proc = None
        self.shared = None

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        self.port = servers.free_port()
        path = os.path.join(self.dir, self.conf_name)
        with open(path, "w") as f:
            f.write(self.conf())
        self.proc = Proc(self.run, self.name, self.argv(path), log_path=os.path.join(self.dir, "stderr.log"))
        self.wait_ready(procs=[self.proc])

    def proxy_pids(self):
        return [self.proc.pid]

    def stop(self):
        if self.proc:
            self.proc.stop()
        if self.shared:
            shutil.rmtree(self.shared, ignore_errors=True)
            self.shared = None


class NginxProxy(ProxyPath):
    """nginx proxy_pass: conf/nginx/nginx-noauth.conf's server with the
    mount proxied over HTTP/1.1 keepalive connections instead."""

    name, label = "nginx-proxy", "nginx proxy_pass"
    conf_name = "nginx.conf"
    upstream_keepalive = True

    def start(self):
        # For nginx's temp files: its workers run as www-data when started as root.
        self.shared = servers.shared_dir(f"openova-bench-{self.name}-")
        super().start()

    def argv(self, conf):
        return nginx_argv(self.dir, conf)

    def conf(self):
        host_port = self.upstream_url.split("//", 1)[1]
        if self.upstream_keepalive:
            pool = f"server {host_port};\n        keepalive 64;"
            http11 = 'proxy_http_version 1.1;\n            proxy_set_header Connection "";'
        else:
            # nginx's defaults: HTTP/1.0 and a new upstream connection per request.
            pool = f"server {host_port};"
            http11 = "# HTTP/1.0, Connection: close (nginx's defaults)"
        return servers.nginx_head(self.dir, worker_connections=32768, nofile=65536) + f"""http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {self.dir}/access.log;
{servers.nginx_temp_paths(self.shared)}
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
            # As the shipped snippet has it for the app (conf/nginx/
            # openova-flow-fcgi.conf): an events body up to 1 MiB stays in
            # memory, no temporary file, so both nginx rows buffer bodies
            # alike (issue 18; nginx's default is 16 KiB).
            client_body_buffer_size 1m;
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


class NginxProxyStock(NginxProxy):
    """nginx proxy_pass as most sites write it: no upstream keepalive, so a
    new upstream connection per request. Not the reference (the targets are
    judged against the faster keepalive config); shown because it is the
    common deployment and matches the figures issue 6 quotes (12,400/s at
    80 us)."""

    name, label = "nginx-proxy-stock", "nginx proxy_pass, no upstream keepalive"
    upstream_keepalive = False


class LighttpdProxy(ProxyPath):
    """lighttpd mod_proxy: conf/lighttpd/lighttpd.conf's server (same
    stream-response-body = 2) with mod_proxy in place of mod_fastcgi."""

    name, label = "lighttpd-proxy", "lighttpd mod_proxy"
    conf_name = "lighttpd.conf"

    def argv(self, conf):
        return [servers.LIGHTTPD, "-D", "-f", conf]

    def conf(self):
        host, port = self.upstream_url.split("//", 1)[1].rsplit(":", 1)
        return f"""server.port = {self.port}
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


class ShippedPath(Path):
    """The app behind a web server started from its conf/ file as shipped
    (the noauth variant), by the integration harness's starter for it."""

    def __init__(self, run, upstream_url, scale=False, env=None, tag=None):
        super().__init__(run, upstream_url, scale, env, tag)
        self.web = None

    def server(self):
        """The harness's starter, not started yet."""
        raise NotImplementedError

    def start(self):
        self.web = self.run.track(self.server())
        self.web.start(wait_app=False)
        self.port = self.web.port
        self.wait_ready(logs=self.web.logs)

    def stop(self):
        if self.web:
            self.web.stop()
            self.run.forget(self.web)
            self.web = None


class LighttpdApp(ShippedPath):
    """conf/lighttpd/lighttpd-noauth.conf as shipped; lighttpd spawns the
    app (bin-path) and passes it its environment."""

    name, label = "lighttpd+app", "lighttpd + app"

    def server(self):
        return servers.Lighttpd(app_env(self.upstream_url, self.env), self.dir, conf="noauth")

    def proxy_pids(self):
        # The app is lighttpd's child: its CPU counts through lighttpd's tree.
        return [self.web.proc.pid]

    def app_pid(self):
        kids = self.web.app_pids()
        return kids[0] if kids else None


class FrontedPath(ShippedPath):
    """A web server that does not start the app: the harness runs it first
    under conf/spawn-fcgi/openova-flow-fcgi-spawn on a unix socket."""

    def proxy_pids(self):
        return [self.web.app.pid, self.web.proc.pid]

    def app_pid(self):
        return self.web.app.pid

    def app_log_path(self):
        return self.web.app.log_path


class NginxApp(FrontedPath):
    """conf/nginx/nginx-noauth.conf with its ${OPENOVA_NGINX_*} filled in,
    as shipped: kept FastCGI connections (fastcgi_keep_conn on, in
    openova-flow-fcgi.conf) with a pool of 16 (keepalive 16). For the
    scale runs only, two lines change so nginx can hold 10,000 streams
    (each takes two connections): worker_connections 32768 and
    worker_rlimit_nofile. VARIANT: more lines changed, for the bench-only
    variants below (the shipped files stay as they are; each old text must
    occur exactly once, so a variant breaks loudly when conf/ moves)."""

    name, label = "nginx+app", "nginx + app"
    SCALE = [("nginx-noauth.conf", "worker_connections 1024;", "worker_connections 32768;"),
             ("nginx-noauth.conf", "worker_processes 1;", "worker_processes 1;\nworker_rlimit_nofile 65536;")]
    VARIANT = []

    def server(self):
        mutations = (self.SCALE if self.scale else []) + self.VARIANT
        return servers.Nginx(app_env(self.upstream_url, self.env), self.dir, conf="noauth", mutations=mutations)


class NginxAppKeepConn(NginxApp):
    """Issue 18's row: fastcgi_keep_conn on with the upstream's keepalive
    pool as large as the nginx proxy_pass reference's (64), above wrk's 32
    connections; the shipped pool of 16 is below them, so nginx closes the
    connections it cannot park and opens new ones under this load."""

    name, label = "nginx+app-keepconn", "nginx + app, fastcgi_keep_conn (keepalive 64)"
    VARIANT = [("nginx-noauth.conf", "keepalive 16;", "keepalive 64;")]


class NginxAppNoKeep(NginxApp):
    """The same without kept connections (nginx's defaults: fastcgi_keep_conn
    off, no pool): a connect and an accept per request, as before issue 13."""

    name, label = "nginx+app-nokeep", "nginx + app, no kept connections"
    VARIANT = [("nginx-noauth.conf", "keepalive 16;\n        keepalive_timeout 50s;", "# no keepalive pool (bench)"),
               ("openova-flow-fcgi.conf", "fastcgi_keep_conn on;", "fastcgi_keep_conn off;")]


class ApacheApp(FrontedPath):
    """conf/apache2/apache2-noauth.conf (mpm_event) as shipped."""

    name, label = "apache+app", "Apache + app"

    def server(self):
        return servers.Apache(app_env(self.upstream_url, self.env), self.dir, conf="noauth")


PATHS = [Direct, NginxProxy, NginxProxyStock, LighttpdProxy, LighttpdApp, NginxApp, NginxAppKeepConn, NginxAppNoKeep,
         ApacheApp]
REFERENCE = NginxProxy.name


def start_paths(run, upstream_url):
    paths = []
    for cls in PATHS:
        p = cls(run, upstream_url)
        p.start()
        paths.append(p)
    return paths


def stop_paths(paths):
    for p in paths:
        p.stop()

