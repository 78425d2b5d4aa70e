"""load.py: the load generators: wrk (requests/s, latency, and the CPU the
proxy layer spends per request) and build/bench/sse-client (SSE streams)."""
import json
import os
import signal
import subprocess

from context import HERE, WRK
from procs import cpu_delta, cpu_ticks, system_busy, wait_quiet


def run_wrk(run, url, seconds, body_file=None, connections=None, delay_ms=None, spread=None):
    """wrk's JSON line, plus its own CPU seconds. connections: the run's
    setting unless given; delay_ms: each connection's pause after an answer
    (a bounded rate, wrk.lua), unbounded without; spread: url is a flows
    base, and the requests ask for the snapshots of dep-00 .. dep-<spread-1>
    in turn."""
    env = {"PATH": "/usr/bin:/bin"}
    if spread:
        env["BENCH_SPREAD"] = str(spread)
    if body_file:
        env["BENCH_BODY_FILE"] = body_file
    if delay_ms:
        env["BENCH_DELAY_MS"] = str(delay_ms)
    connections = connections or run.settings.connections
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


def wrk_summary(w):
    """requests/s, p99 and errors of a wrk run whose CPU is not accounted."""
    return {"rps": w["requests"] / (w["duration_us"] / 1e6), "p99_ms": w["latency_us"]["p99"] / 1000,
            "errors": sum(w["errors"].values())}


def measure_wrk(run, path, kind, upstream_pids):
    """One wrk measurement of kind (snapshot, events) through path, with the
    CPU of the proxy layer, of the app alone and of the upstream around it."""
    url = f"{path.base}/{'events' if kind == 'events' else 'snapshot'}"
    body = os.path.join(run.fixtures, "events.json") if kind == "events" else None
    wait_quiet(run)
    run_wrk(run, url, run.settings.warmup, body)
    roots = path.proxy_pids()
    app = path.app_pid()
    a0 = cpu_ticks([app]) if app else {}
    c0, u0, s0 = cpu_ticks(roots), cpu_ticks(upstream_pids), system_busy()
    r = run_wrk(run, url, run.settings.measure, body)
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


def run_sse_client(run, url, conns, seconds, on_ready=None, sources=1, split=None, flows=None):
    """sse-client's JSON result, and what on_ready(streams open) returned:
    on_ready runs while the streams are open. flows: the streams spread over
    that many flows, url holding "{n}" for the flow's number."""
    argv = [run.sse_client, "--url", url, "--conns", str(conns), "--duration", str(seconds), "--sources",
            str(sources), "--connect-timeout", "90"]
    if split:
        argv += ["--split", str(split)]
    if flows:
        argv += ["--flows", str(flows)]
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
