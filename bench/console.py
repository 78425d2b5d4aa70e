"""console.py: issue 16's row: snapshots spread over 100 deployments,
through nginx + app over TLS, on one upstream (OPENOVA_FLOW_SERVER_URL) and
on ten (the central console's mode: OPENOVA_FLOW_DEPLOYMENTS_DIR, each
record naming one of ten Sovereigns). The ten "Sovereigns" are one nginx
listening with TLS on ten loopback addresses at one port, so that the
template https://openova-flow.{sovereignFQDN}:PORT and OPENOVA_FLOW_RESOLVE
reach each; the same nginx on the first address is the one upstream. Both
runs use the same wrk script, which asks for the 100 deployments in turn,
so the difference is where the calls go: ten TLS upstreams, each a
connection and a TLS session of its own, against one."""
import json
import os
import socket
import time

from context import log
from integration import servers
from harness.testca import CertificateAuthority
from load import run_wrk
from paths import NginxApp
from procs import Proc, cpu_delta, cpu_ticks, http_get, wait_quiet
from upstreams import nginx_argv

SOVEREIGNS = 10
DEPLOYMENTS = 100
# The console's throughput against the single upstream's (issue 16).
CONSOLE_RPS_TARGET = 0.9


def address(n):
    return f"127.0.1.{n + 1}"


def host(n):
    return f"openova-flow.sov-{n}.bench"


def deployment(i):
    return f"dep-{i:02d}"


class TlsUpstreams:
    """nginx serving the snapshot fixture with TLS on the ten addresses."""

    name = "console-upstreams"

    def __init__(self, run):
        self.dir = os.path.join(run.dir, self.name)
        os.makedirs(self.dir, exist_ok=True)
        self.ca = CertificateAuthority(os.path.join(self.dir, "ca"))
        self.cert, self.key = self.ca.issue("sovereigns", [host(n) for n in range(SOVEREIGNS)])
        self.port = servers.free_port()
        self.status_port = servers.free_port()
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(self.conf(run.fixtures))
        self.proc = Proc(run, self.name, nginx_argv(self.dir, path))
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection((address(SOVEREIGNS - 1), self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or not self.proc.alive():
                    raise RuntimeError(f"{self.name} did not start: {self.proc.log_tail()}")
                time.sleep(0.05)

    def conf(self, fixtures):
        head = servers.nginx_head(self.dir, worker_connections=16384, user=None, nofile=65536)
        listens = "\n".join(f"        listen {address(n)}:{self.port} ssl;" for n in range(SOVEREIGNS))
        return head + f"""http {{
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
{servers.nginx_temp_paths(self.dir)}
    ssl_certificate {self.cert};
    ssl_certificate_key {self.key};
    ssl_session_cache shared:bench:10m;
    server {{
{listens}
        location ~ ^/v1/flows/[^/]+/snapshot$ {{
            root {fixtures};
            default_type application/json;
            try_files /snapshot.json =404;
        }}
    }}
    server {{
        listen 127.0.0.1:{self.status_port};
        location = /status {{ stub_status; }}
    }}
}}
"""

    def accepted(self):
        """Connections nginx accepted so far (stub_status), its own status
        requests included."""
        body = http_get(f"http://127.0.0.1:{self.status_port}/status")[1]
        return int(body.split()[7])

    def resolve(self):
        return ",".join(f"{host(n)}:{self.port}:{address(n)}" for n in range(SOVEREIGNS))

    def pids(self):
        return [self.proc.pid]

    def stop(self):
        self.proc.stop()


def write_records(directory, flow_id):
    """dep-00 .. dep-99 on the ten Sovereigns in turn, and the benchmark's
    own flow (the paths' readiness check) on the first. Dated an hour ago,
    as a console's records mostly are: a record changed in the last 2 s is
    read again on every request (its stamp cannot yet tell a change)."""
    os.makedirs(directory, exist_ok=True)
    an_hour_ago = time.time() - 3600
    for i, dep in [(i, deployment(i)) for i in range(DEPLOYMENTS)] + [(0, flow_id)]:
        path = os.path.join(directory, f"{dep}.json")
        with open(path, "w") as f:
            json.dump({"id": dep, "request": {"sovereignFQDN": f"sov-{i % SOVEREIGNS}.bench"}}, f)
        os.utime(path, (an_hour_ago, an_hour_ago))


def settings(upstreams, records, console):
    common = {"OPENOVA_FLOW_RESOLVE": upstreams.resolve(), "OPENOVA_FLOW_CA_FILE": upstreams.ca.cert}
    if not console:
        return common
    return dict(common, OPENOVA_FLOW_SERVER_URL=None, OPENOVA_FLOW_DEPLOYMENTS_DIR=records,
                OPENOVA_FLOW_UPSTREAM_TEMPLATE=f"https://openova-flow.{{sovereignFQDN}}:{upstreams.port}")


def measure(run, path, upstreams):
    """wrk through path, the 100 deployments in turn: req/s, p99, the app's
    CPU per request."""
    url = f"http://127.0.0.1:{path.port}/api/v1/flows/"
    wait_quiet(run)
    run_wrk(run, url, run.settings.warmup, spread=DEPLOYMENTS)
    app = path.app_pid()
    a0, u0, c0 = cpu_ticks([app]), cpu_ticks(upstreams.pids()), upstreams.accepted()
    r = run_wrk(run, url, run.settings.measure, spread=DEPLOYMENTS)
    a1, u1, c1 = cpu_ticks([app]), cpu_ticks(upstreams.pids()), upstreams.accepted()
    seconds = r["duration_us"] / 1e6
    # Each TLS connection the app opens is a handshake; the status request
    # between the two readings is one of them.
    return {"rps": r["requests"] / seconds, "p99_ms": r["latency_us"]["p99"] / 1000,
            "upstream_connections": c1 - c0 - 1, "requests": r["requests"],
            "app_cpu_us": cpu_delta(a0, a1) / max(r["requests"], 1) * 1e6,
            "upstream_cpu_us": cpu_delta(u0, u1) / max(r["requests"], 1) * 1e6,
            "errors": sum(r["errors"].values())}


def phase_console(run, flow_id):
    upstreams = TlsUpstreams(run)
    records = os.path.join(run.dir, "console-records")
    write_records(records, flow_id)
    runs = {"one": [], "ten": []}
    try:
        for n in range(run.settings.passes):
            for name in ("one", "ten"):
                console = name == "ten"
                path = NginxApp(run, f"https://{host(0)}:{upstreams.port}",
                                env=settings(upstreams, records, console), tag=f"console-{name}")
                try:
                    path.start()
                    r = measure(run, path, upstreams)
                finally:
                    path.stop()
                runs[name].append(r)
                log(f"console  pass {n + 1} {name:3s} upstream(s) {r['rps']:9.0f} req/s  p99 {r['p99_ms']:6.2f} ms  "
                    f"app {r['app_cpu_us']:6.1f} us/req  upstream connections {r['upstream_connections']} for "
                    f"{r['requests']} requests  errors {r['errors']}")
    finally:
        upstreams.stop()
    return runs


def console_summary(runs):
    def avg(rs, key):
        return sum(r[key] for r in rs) / len(rs)
    out = {name: {key: avg(rs, key) for key in ("rps", "p99_ms", "app_cpu_us", "upstream_cpu_us",
                                                 "upstream_connections", "requests")}
           for name, rs in runs.items()}
    for name, rs in runs.items():
        out[name]["errors"] = sum(r["errors"] for r in rs)
        out[name]["runs"] = len(rs)
    out["ratio"] = out["ten"]["rps"] / out["one"]["rps"]
    out["pass"] = out["ratio"] >= CONSOLE_RPS_TARGET and not out["one"]["errors"] and not out["ten"]["errors"]
    return out


def console_section(c, s):
    rows = [("one upstream (OPENOVA_FLOW_SERVER_URL)", c["one"]),
            (f"{SOVEREIGNS} upstreams (OPENOVA_FLOW_DEPLOYMENTS_DIR)", c["ten"])]
    table = ["| nginx + app, TLS upstream | req/s | p99 ms | app CPU us/req | upstream connections (TLS handshakes) "
             "per run | requests per run | errors |", "|---|---|---|---|---|---|---|"]
    table += [f"| {label} | {r['rps']:.0f} | {r['p99_ms']:.2f} | {r['app_cpu_us']:.1f} | "
              f"{r['upstream_connections']:.0f} | {r['requests']:.0f} | {r['errors']} |" for label, r in rows]
    return [
        "## The central console (issue 16)",
        "",
        f"Snapshots of {DEPLOYMENTS} deployments asked in turn (wrk as above), through nginx + app to nginx over "
        f"TLS: all to one upstream, or each to the one of {SOVEREIGNS} Sovereigns its record names (ten loopback "
        "addresses of one nginx, reached through OPENOVA_FLOW_UPSTREAM_TEMPLATE and OPENOVA_FLOW_RESOLVE). "
        f"nginx and the app start afresh for each run; {s.passes} interleaved pass{'es' if s.passes > 1 else ''}, "
        "mean shown. Upstream connections: what the upstream nginx accepted during the measurement (stub_status), "
        "after the warm-up: the app's workers keep their connections to every Sovereign, so none is a new "
        "handshake per request.",
        "",
        "\n".join(table),
        "",
        f"Ten upstreams against one: {c['ratio']:.2f}x (target at least {CONSOLE_RPS_TARGET}x): "
        f"{'pass' if c['pass'] else 'FAIL'}.",
        "",
    ]
