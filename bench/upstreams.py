"""upstreams.py: what the paths proxy to: nginx serving the snapshot and
reading events bodies (throughput), and build/bench/sse-upstream (SSE, scale)."""
import json
import os

from context import FLOW_ID
from integration import servers
from procs import Proc, http_get, wait_until


def nginx_argv(directory, conf):
    """nginx in the foreground (daemon off in conf) with its prefix and
    startup errors in directory, not the system's."""
    return [servers.NGINX, "-p", directory, "-e", f"{directory}/error.log", "-c", conf]


class UpstreamNginx:
    """The fast upstream of the snapshot and events runs: nginx serving the
    snapshot file, and answering events with 200 {"seq":1} once it has read
    the whole body (mirror_request_body reads it before the content phase;
    the static handler then refuses the POST and error_page turns that into
    the answer)."""

    name = "upstream-nginx"

    def __init__(self, run):
        self.port = servers.free_port()
        self.dir = os.path.join(run.dir, self.name)
        os.makedirs(self.dir, exist_ok=True)
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(self.conf(run.fixtures))
        self.proc = Proc(run, self.name, nginx_argv(self.dir, path))
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until(self.name, lambda: http_get(f"{self.url}/v1/flows/{FLOW_ID}/snapshot")[0] == 200,
                   procs=[self.proc])

    def conf(self, fixtures):
        head = servers.nginx_head(self.dir, worker_connections=16384, user=None, nofile=65536)
        return head + f"""http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
{servers.nginx_temp_paths(self.dir)}
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

    def pids(self):
        return [self.proc.pid]

    def stop(self):
        self.proc.stop()


class SseUpstream:
    """build/bench/sse-upstream: stamped SSE frames; also answers snapshot
    (from memory) and events, for the scale runs."""

    def __init__(self, run, name, interval_ms):
        self.name = name
        self.port = servers.free_port()
        self.proc = Proc(run, name, [run.sse_upstream, "--listen", f"127.0.0.1:{self.port}", "--interval-ms",
                                     str(interval_ms), "--snapshot", os.path.join(run.fixtures, "snapshot.json")])
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until(name, lambda: http_get(f"{self.url}/stats")[0] == 200, procs=[self.proc])

    def stats(self):
        return json.loads(http_get(f"{self.url}/stats")[1])

    def pids(self):
        return [self.proc.pid]

    def stop(self):
        self.proc.stop()
