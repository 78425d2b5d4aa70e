"""phases.py: the four phases of a run: throughput (snapshot and events
through every path), the app's metrics on against off (snapshots through
nginx+app), SSE latency through every path, and streams at scale (with the
app's fan-out off and on, issue 18)."""
import os
import re
import time

from context import log
from load import measure_wrk, run_sse_client, run_wrk, wrk_summary
from paths import FANOUT_ON, METRICS_OFF, Direct, NginxApp, NginxProxy, start_paths, stop_paths
from procs import cpu_delta, cpu_ticks, http_get, proc_environ, proc_status, wait_quiet
from report import fmt
from upstreams import SseUpstream, UpstreamNginx


def phase_throughput(run):
    upstream = UpstreamNginx(run)
    paths = start_paths(run, upstream.url)
    runs = {p.name: {"snapshot": [], "events": []} for p in paths}
    try:
        for kind in ("snapshot", "events"):
            for n in range(run.settings.passes):
                for p in paths:
                    r = measure_wrk(run, p, kind, upstream.pids())
                    runs[p.name][kind].append(r)
                    log(f"{kind:8s} pass {n + 1} {p.name:15s} {r['rps']:9.0f} req/s  p99 {r['p99_ms']:6.2f} ms  "
                        f"proxy {r['proxy_cpu_us']:6.1f} us/req  errors {r['error_count']}"
                        + (f"  (other load {r['foreign_cores']:.2f} cores)" if r["foreign_cores"] > 0.1 else ""))
    finally:
        stop_paths(paths)
        upstream.stop()
    return runs


# The settings of the metrics phase: the app's defaults (metrics on) and
# both endpoints off, so nothing is counted.
METRICS_SETTINGS = {"on": {}, "off": METRICS_OFF}


def check_app_env(path, env, names=tuple(METRICS_OFF)):
    """The app got env's names as set, unset variables included: spawn-fcgi
    passes the environment on, and a setting lost on the way would make on
    and off the same run twice."""
    got = proc_environ(path.app_pid())
    for name in names:
        if got.get(name) != env.get(name):
            raise RuntimeError(f"{path.name}: the app has {name}={got.get(name)!r}, not {env.get(name)!r}")


def metrics_run(run, upstream, setting):
    """One snapshot measurement through nginx+app started afresh with the
    metrics setting ("on", "off"), stopped after it."""
    env = METRICS_SETTINGS[setting]
    path = NginxApp(run, upstream.url, env=env, tag=f"metrics-{setting}")
    try:
        path.start()
        check_app_env(path, env)
        return measure_wrk(run, path, "snapshot", upstream.pids())
    finally:
        path.stop()


def phase_metrics(run):
    """Issue 14: snapshot throughput with the app's metrics on against off,
    metrics_repeats runs of each. The order goes on off, off on, on off, ..
    so that a drift of the machine's speed over the phase falls on both
    settings alike. The app reads the setting when it starts, so each run
    starts it afresh, and nginx with it, so that every run begins alike."""
    upstream = UpstreamNginx(run)
    runs = {"on": [], "off": [], "order": []}
    try:
        for n in range(run.settings.metrics_repeats):
            for setting in ("on", "off") if n % 2 == 0 else ("off", "on"):
                r = metrics_run(run, upstream, setting)
                runs[setting].append(r)
                runs["order"].append(setting)
                log(f"metrics  {setting:3s} run {len(runs[setting])} nginx+app {r['rps']:9.0f} req/s  "
                    f"p99 {r['p99_ms']:6.2f} ms  app {r['app_cpu_us']:6.1f} us/req  errors {r['error_count']}"
                    + (f"  (other load {r['foreign_cores']:.2f} cores)" if r["foreign_cores"] > 0.1 else ""))
    finally:
        upstream.stop()
    return runs


def phase_sse(run):
    s = run.settings
    upstream = SseUpstream(run, "sse-upstream", s.sse_interval_ms)
    paths = start_paths(run, upstream.url)
    runs = {p.name: [] for p in paths}
    try:
        for n in range(s.passes):
            for p in paths:
                wait_quiet(run)
                r, _ = run_sse_client(run, f"{p.base}/stream", s.sse_streams, s.sse_seconds)
                runs[p.name].append(r)
                log(f"sse      pass {n + 1} {p.name:15s} p50 {r['latency_us']['p50']:7.1f} us  "
                    f"p99 {r['latency_us']['p99']:7.1f} us  frames {r['frames']}  lost {r['lost']}")
    finally:
        stop_paths(paths)
        upstream.stop()
    return runs


def wait_streams_closed(upstream, timeout=30):
    """Until the upstream holds no stream (with fan-out, the app closes a
    flow's subscription OPENOVA_FLOW_FANOUT_LINGER, 5 s, after its last
    client left)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if upstream.stats()["streams"] == 0:
            return True
        time.sleep(0.2)
    return False


# The many-flows runs' flow ids: sse-client writes each stream's flow
# number for {n} (dep-bench-0000, dep-bench-0001, ...).
FLOWS_TEMPLATE = "dep-bench-{n}"

FANOUT_GAUGES = ("openova_flow_fanout_subscriptions", "openova_flow_fanout_clients")


def fanout_gauges(path):
    """The app's fan-out gauges (issue 18) from its metrics endpoint, through
    the path's nginx: {name: value}, {} when the app has none (fan-out not
    built in), None when the endpoint does not answer."""
    try:
        status, body = http_get(f"http://127.0.0.1:{path.port}/openova-flow/metrics", timeout=5)
    except OSError:
        return None
    if status != 200:
        return None
    out = {}
    for line in body.decode("utf-8", "replace").splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in FANOUT_GAUGES:
            out[name] = out.get(name, 0) + float(line.rsplit(" ", 1)[1])
    return out


def log_size(path):
    name = path.app_log_path()
    try:
        return os.path.getsize(name) if name else 0
    except OSError:
        return 0


def app_log_since(path, offset):
    """What the app logged from offset on: how its streams ended (the
    "stream end" lines' end=), how many lines were warnings or errors, and
    the first few of those."""
    name = path.app_log_path()
    if not name:
        return None
    with open(name, "rb") as f:
        f.seek(offset)
        text = f.read().decode("utf-8", "replace")
    ends, warn, error, first = {}, 0, 0, []
    for line in text.splitlines():
        if 'msg="stream end"' in line:
            m = re.search(r"\bend=(\S+)", line)
            key = m.group(1) if m else "?"
            ends[key] = ends.get(key, 0) + 1
        level = re.search(r"\blevel=(\w+)", line)
        if level and level.group(1) in ("warn", "error"):
            warn += level.group(1) == "warn"
            error += level.group(1) == "error"
            if len(first) < 5:
                first.append(line[:300])
    return {"ends": ends, "warn": warn, "error": error, "first": first}


def scale_run(run, path, upstream, n, snapshot_during=False, flows=None):
    """n streams through path for scale_seconds, a frame a second to all;
    flows: spread over that many flows (n / flows streams each), one flow
    without. After 2 s: the app's size, the streams the upstream holds (and
    for how many flows), the app's fan-out gauges; then a window measuring
    the CPU the proxy layer spends per delivered frame; then
    (snapshot_during) wrk through the same path while the streams stay
    open, whose frames the client counts apart (latency_after_split_us).
    Afterwards: the stream connections the upstream accepted during the
    run, and what the app logged."""
    s = run.settings
    app = path.app_pid()
    samples = {}
    cpu_window = 2 if s.quick else 6
    split = 2 + cpu_window

    def on_ready(ready):
        time.sleep(2)
        if app:
            samples["ready"] = proc_status(app)
        st = upstream.stats()
        samples["upstream_streams"] = st["streams"]
        samples["upstream_flows"] = st.get("flows")
        if app:
            samples["fanout"] = fanout_gauges(path)
        roots = path.proxy_pids()
        c0, a0, q0 = cpu_ticks(roots), cpu_ticks([app]) if app else {}, upstream.stats()["seq"]
        time.sleep(cpu_window)
        c1, a1, q1 = cpu_ticks(roots), cpu_ticks([app]) if app else {}, upstream.stats()["seq"]
        frames = max((q1 - q0) * ready, 1)
        samples["cpu"] = {"proxy_us_per_frame": cpu_delta(c0, c1) / frames * 1e6 if roots else None,
                          "app_us_per_frame": cpu_delta(a0, a1) / frames * 1e6 if app else None}
        if snapshot_during:
            samples["wrk"] = run_wrk(run, f"{path.base}/snapshot", max(1, min(s.measure, s.scale_seconds - split - 1)))
        if app:
            samples["late"] = proc_status(app)
        return ready

    url = f"{path.flow_base(FLOWS_TEMPLATE) if flows else path.base}/stream"
    accepted0 = upstream.stats()["streams_total"]
    log0 = log_size(path)
    sources = 4 if n > 5000 else 1
    r, _ = run_sse_client(run, url, n, s.scale_seconds, on_ready=on_ready, sources=sources,
                          split=split if snapshot_during else None, flows=flows)
    closed = wait_streams_closed(upstream)
    r["upstream_streams_seen"] = samples.get("upstream_streams")
    r["upstream"] = {"held": samples.get("upstream_streams"), "flows_held": samples.get("upstream_flows"),
                     "accepted": upstream.stats()["streams_total"] - accepted0}
    r["upstream_closed_after"] = closed
    r["cpu"] = samples.get("cpu")
    if app:
        r["app"] = {"ready": samples.get("ready"), "late": samples.get("late")}
        r["fanout_gauges"] = samples.get("fanout")
        r["app_log"] = app_log_since(path, log0)
    if "wrk" in samples:
        r["snapshot_during"] = wrk_summary(samples["wrk"])
    return r


def log_scale(name, r):
    ready = (r.get("app") or {}).get("ready") or {}
    up = r["upstream"]
    line = (f"scale    {name:24s} ready {r['ready']}  p99 {r['latency_us']['p99'] / 1000:.2f} ms "
            f"(from broadcast {r['from_broadcast_us']['p99'] / 1000:.2f})  lost {r['lost']}  "
            f"closed early {r['closed_early']}  upstream {up['held']} held for {up['flows_held']} flows, "
            f"{up['accepted']} accepted  CPU/frame {fmt((r['cpu'] or {}).get('proxy_us_per_frame'), '.1f')} "
            f"(app {fmt((r['cpu'] or {}).get('app_us_per_frame'), '.1f')}) us")
    if "rss_per_stream_kib" in r:
        line += (f"  RSS/stream {r['rss_per_stream_kib']:.1f} KiB  threads {ready.get('Threads')}  "
                 f"fds {ready.get('fds')}")
    if r.get("fanout_gauges") is not None:
        line += f"  fan-out gauges {r['fanout_gauges'] or 'none'}"
    if r.get("app_log"):
        line += f"  app log: ends {r['app_log']['ends']}, {r['app_log']['warn']} warn, {r['app_log']['error']} error"
    if "snapshot_during" in r:
        line += f"  snapshot during {r['snapshot_during']['rps']:.0f} req/s p99 {r['snapshot_during']['p99_ms']:.2f} ms"
    log(line)
    for first in (r.get("app_log") or {}).get("first", []):
        log(f"         app: {first}")


def scale_shapes(s, one_flow_ns):
    """(key suffix, streams, flows or None) of the runs: one flow at each of
    one_flow_ns, then the largest count over fanout_flows flows."""
    big = max(s.scale_ns)
    shapes = [(str(n), n, None) for n in one_flow_ns]
    shapes.append((f"{s.fanout_flows}x{s.fanout_per_flow}", s.fanout_flows * s.fanout_per_flow, s.fanout_flows))
    assert s.fanout_flows * s.fanout_per_flow <= big
    return shapes


def scale_app(run, upstream, results, fanout=False):
    """Every stream count through nginx+app, after short requests alone (the
    baseline, and the app's idle size once every worker has served). With
    fanout, the app runs with OPENOVA_FLOW_FANOUT=on (a fresh nginx and
    app), and only the largest count on one flow is run besides the many
    flows; without, every count of scale_ns."""
    s = run.settings
    name = "nginx+app fanout" if fanout else "nginx+app"
    env = FANOUT_ON if fanout else {}
    path = NginxApp(run, upstream.url, scale=True, env=env, tag="fanout" if fanout else None)
    big = max(s.scale_ns)
    try:
        path.start()
        check_app_env(path, env, names=tuple(FANOUT_ON))
        app = path.app_pid()
        run_wrk(run, f"{path.base}/snapshot", s.warmup)
        alone = wrk_summary(run_wrk(run, f"{path.base}/snapshot", s.measure))
        idle = proc_status(app)
        results["snapshot_alone_fanout" if fanout else "snapshot_alone"] = alone
        results["app_idle_fanout" if fanout else "app_idle"] = idle
        log(f"scale    {name} idle: RSS {idle['VmRSS']} KiB, {idle['Threads']} threads, {idle['fds']} fds; "
            f"snapshot alone {alone['rps']:.0f} req/s p99 {alone['p99_ms']:.2f} ms")
        for suffix, n, flows in scale_shapes(s, [big] if fanout else s.scale_ns):
            r = scale_run(run, path, upstream, n, snapshot_during=(n == big and not flows), flows=flows)
            ready = r["app"]["ready"] or {}
            late = r["app"]["late"] or {}
            rss = max(ready.get("VmRSS", 0), late.get("VmRSS", 0))
            r["rss_per_stream_kib"] = (rss - idle["VmRSS"]) / max(r["ready"], 1)
            r["fanout"] = fanout
            results[f"{name}/{suffix}"] = r
            log_scale(f"{name}/{suffix}", r)
    finally:
        path.stop()


def scale_compare(run, upstream, results):
    """The largest stream count through nginx proxy_pass (on one flow and
    over the many flows) and direct (one flow)."""
    s = run.settings
    big = max(s.scale_ns)
    for cls in (NginxProxy, Direct):
        p = cls(run, upstream.url, scale=True)
        try:
            p.start()
            for suffix, n, flows in scale_shapes(s, [big]):
                if flows and cls is Direct:
                    continue
                r = scale_run(run, p, upstream, n, flows=flows)
                results[f"{p.name}/{suffix}"] = r
                log_scale(f"{p.name}/{suffix}", r)
        finally:
            p.stop()


def phase_scale(run):
    upstream = SseUpstream(run, "scale-upstream", 1000)
    results = {}
    try:
        scale_app(run, upstream, results)
        scale_app(run, upstream, results, fanout=True)
        if run.settings.scale_compare:
            scale_compare(run, upstream, results)
    finally:
        upstream.stop()
    return results
