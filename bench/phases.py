"""phases.py: the four phases of a run: throughput (snapshot and events
through every path), the app's metrics on against off (snapshots through
nginx+app), SSE latency through every path, and streams at scale."""
import time

from context import log
from load import measure_wrk, run_sse_client, run_wrk, wrk_summary
from paths import METRICS_OFF, Direct, NginxApp, NginxProxy, start_paths, stop_paths
from procs import cpu_delta, cpu_ticks, proc_environ, proc_status, wait_quiet
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


def check_app_env(path, env):
    """The app got env as set, unset variables included: spawn-fcgi passes
    the environment on, and a setting lost on the way would make on and off
    the same run twice."""
    got = proc_environ(path.app_pid())
    for name in METRICS_OFF:
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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if upstream.stats()["streams"] == 0:
            return True
        time.sleep(0.2)
    return False


def scale_run(run, path, upstream, n, snapshot_during=False):
    """n streams through path for scale_seconds, a frame a second to all.
    After 2 s: the app's size; then a window measuring the CPU the proxy
    layer spends per delivered frame; then (snapshot_during) wrk through the
    same path while the streams stay open, whose frames the client counts
    apart (latency_after_split_us)."""
    s = run.settings
    app = path.app_pid()
    samples = {}
    cpu_window = 2 if s.quick else 6
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
            samples["wrk"] = run_wrk(run, f"{path.base}/snapshot", max(1, min(s.measure, s.scale_seconds - split - 1)))
        if app:
            samples["late"] = proc_status(app)
        return ready

    sources = 4 if n > 5000 else 1
    r, _ = run_sse_client(run, f"{path.base}/stream", n, s.scale_seconds, on_ready=on_ready, sources=sources,
                          split=split if snapshot_during else None)
    closed = wait_streams_closed(upstream)
    r["upstream_streams_seen"] = samples.get("upstream_streams")
    r["upstream_closed_after"] = closed
    r["cpu"] = samples.get("cpu")
    if app:
        r["app"] = {"ready": samples.get("ready"), "late": samples.get("late")}
    if "wrk" in samples:
        r["snapshot_during"] = wrk_summary(samples["wrk"])
    return r


def scale_app(run, upstream, results):
    """Every stream count through nginx+app, after short requests alone (the
    baseline, and the app's idle size once every worker has served)."""
    s = run.settings
    path = NginxApp(run, upstream.url, scale=True)
    try:
        path.start()
        app = path.app_pid()
        run_wrk(run, f"{path.base}/snapshot", s.warmup)
        results["snapshot_alone"] = alone = wrk_summary(run_wrk(run, f"{path.base}/snapshot", s.measure))
        idle = results["app_idle"] = proc_status(app)
        log(f"scale    nginx+app idle: RSS {idle['VmRSS']} KiB, {idle['Threads']} threads, {idle['fds']} fds; "
            f"snapshot alone {alone['rps']:.0f} req/s p99 {alone['p99_ms']:.2f} ms")
        for n in s.scale_ns:
            r = scale_run(run, path, upstream, n, snapshot_during=(n == max(s.scale_ns)))
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


def scale_compare(run, upstream, results):
    """The largest stream count through nginx proxy_pass and direct."""
    n = max(run.settings.scale_ns)
    for cls in (NginxProxy, Direct):
        p = cls(run, upstream.url, scale=True)
        try:
            p.start()
            r = scale_run(run, p, upstream, n)
            results[f"{p.name}/{n}"] = r
            log(f"scale    {p.name} {n:6d} streams: ready {r['ready']}  p99 {r['latency_us']['p99'] / 1000:.2f} ms  "
                f"lost {r['lost']}  CPU/frame {fmt((r['cpu'] or {}).get('proxy_us_per_frame'), '.1f')} us")
        finally:
            p.stop()


def phase_scale(run):
    upstream = SseUpstream(run, "scale-upstream", 1000)
    results = {}
    scale_app(run, upstream, results)
    if run.settings.scale_compare:
        scale_compare(run, upstream, results)
    upstream.stop()
    return results
