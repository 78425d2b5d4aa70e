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
                conf/spawn-fcgi/openova-flow-fcgi-spawn; as shipped it keeps
                its FastCGI connections (fastcgi_keep_conn on, keepalive 16)
  nginx+app-keepconn  the same with a pool of 64 (keepalive 64, the
                reference's), above wrk's 32 connections (issue 18)
  nginx+app-nokeep  the same without kept connections (fastcgi_keep_conn
                off, no pool): a connect and an accept per request
  apache+app    conf/apache2/apache2-noauth.conf (mpm_event), the same spawner

The reference proxies are the shipped server configs with the FastCGI
mount swapped for their HTTP proxy module: the same logging, buffering and
keepalive defaults, so the difference is the proxying. Both nginx kinds keep
an events body up to 1 MiB in memory (client_body_buffer_size 1m, as the
shipped snippet has it). The nginx+app variants are the shipped files with
lines changed in a copy (paths.py, NginxApp.VARIANT); conf/ stays as it is.

Measured:
  1. snapshot   wrk, 1 thread, 32 connections, GET of a 34 KB snapshot
                (upstream: nginx serving the file): requests/s, p99, and the
                proxy layer's CPU per request (utime+stime from /proc of every
                process of the web server and of the app, over the run)
  2. events     the same with a 256 KiB POST body (the upstream nginx reads
                the body whole before answering {"seq":1})
  3. metrics    issue 14's cost of the app's metrics: the snapshot load of 1
                through nginx+app with the metrics on (the app's defaults)
                and off (OPENOVA_FLOW_METRICS_PATH and
                OPENOVA_FLOW_STATUS_PATH empty: no endpoint reads the
                counters, so the app counts nothing), 3 runs of each (1 under
                BENCH_QUICK) in the order on off off on on off, nginx and the
                app started afresh for each; requests/s of each setting, the
                difference, and the run-to-run noise it is judged by: the
                spread (max - min) / mean of the off runs
  4. SSE        build/bench/sse-client opens 16 streams per path through to
                build/bench/sse-upstream, which stamps each frame with its
                send time (CLOCK_MONOTONIC); p50/p99 of arrival - send; added =
                path minus direct
  5. scale      1,000 and 10,000 streams through nginx+app, a frame per
                second to all: p99 delivery, frames lost, the app's RSS per
                stream, threads, descriptors, the proxy layer's CPU per
                delivered frame; snapshot throughput while the 10,000 are
                open against without; the same 10,000 through nginx
                proxy_pass and direct, for comparison. Where the hard
                open-file limit cannot hold 10,000 (two descriptors per
                stream in nginx and in the app), the largest run is as many
                hundreds as fit, and the report says so.
                Fan-out (issue 18): the largest count through nginx+app with
                OPENOVA_FLOW_FANOUT=on as well, on one flow and over
                largest/10 flows of 10 clients each (fan-out off and on, and
                nginx proxy_pass); the upstream connections the bench's
                upstream holds and accepted, the app's CPU per delivered
                frame, delivery p50/p99/max (and from the broadcast's start),
                RSS per client, frames lost.
  6. console    issue 16: snapshots of 100 deployments in turn through
                nginx+app to a TLS upstream, all to one upstream against each
                to the one of ten its record names (bench/console.py)
Every wrk measurement of 1 and 2 runs twice, interleaved (A B C .. A B C);
the table shows the mean. Machine-dependent numbers also appear as ratios to nginx
proxy_pass of the same run.

Writes bench/results.json, bench/RESULTS.md and bench/results.png (gnuplot),
and prints the tables. BENCH_QUICK=1: a smoke run of about a minute (short
measurements, one pass), whose results are not for committing.

This file checks the tools and runs the phases; the rest is in context.py
(settings, shared state), procs.py, upstreams.py, paths.py, load.py,
phases.py, summary.py and report.py, and the web servers are started by
the integration harness (integration.py).
"""
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

import fixtures
from console import console_summary, phase_console
from context import FLOW_ID, SCALE_TARGET, WRK, Run, log
from integration import launchers, servers
from paths import FANOUT_ON, METRICS_OFF, PATHS, app_env
from phases import phase_metrics, phase_scale, phase_sse, phase_throughput
from report import machine, write_results
from summary import metrics_cost, summarize


def check_tools(run):
    for tool in (servers.NGINX, servers.LIGHTTPD, servers.APACHE, WRK, servers.BINARY, run.sse_upstream,
                 run.sse_client, launchers.SPAWN_FCGI_BIN):
        if not os.access(tool, os.X_OK):
            sys.exit(f"bench: {tool} is missing (make bench installs and builds what it needs)")
    # Every way the bench runs the app: metrics on (its defaults) and off,
    # fan-out on.
    for extra in ({}, METRICS_OFF, FANOUT_ON):
        probe = subprocess.run([servers.BINARY, "--print-config"], env=app_env("http://127.0.0.1:1", extra),
                               capture_output=True, text=True)
        if probe.returncode != 0:
            sys.exit(f"bench: the app refuses the benchmark's settings {extra or ''}: {probe.stderr.strip()}")


def raise_open_files(settings):
    """10,000 streams take about 20,000 descriptors in nginx and in the app;
    where the hard limit cannot be raised that far, fewer streams."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 262144
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    fit = (hard - 160) // 2 // 100 * 100
    if hard != resource.RLIM_INFINITY and fit < SCALE_TARGET:
        settings.limit_streams(hard, fit)
        log(f"the hard open-file limit is {hard} and cannot be raised here (no CAP_SYS_RESOURCE): "
            f"{SCALE_TARGET} streams need about {2 * SCALE_TARGET + 64} descriptors in nginx and in the app; "
            f"measuring {fit} streams instead")


def trim_logs(run):
    """The logs of a run are large (one line per request): keeps their tails."""
    for dirpath, _, files in os.walk(run.dir):
        for name in files:
            path = os.path.join(dirpath, name)
            if name.endswith(".log") and os.path.getsize(path) > 1 << 20:
                with open(path, "rb") as f:
                    f.seek(-(256 << 10), os.SEEK_END)
                    tail = f.read()
                with open(path, "wb") as f:
                    f.write(b"[... truncated by bench/run.py ...]\n" + tail)


def main(run):
    check_tools(run)
    raise_open_files(run.settings)

    def on_signal(signo, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)

    shutil.rmtree(run.dir, ignore_errors=True)
    os.makedirs(run.dir)
    fixtures.write(run.fixtures)
    info = machine()
    started = time.monotonic()
    log(f"{'quick smoke run' if run.settings.quick else 'full run'} on {info['cpu']} x{info['cores']}, "
        f"load {' '.join(info['loadavg_start'])}")
    try:
        throughput = phase_throughput(run)
        metrics = phase_metrics(run)
        sse = phase_sse(run)
        scale = phase_scale(run)
        console_runs = phase_console(run, FLOW_ID)
    finally:
        run.stop_all()
    rows, targets = summarize(throughput, sse, scale, run.settings)
    cost = metrics_cost(metrics)
    console = console_summary(console_runs)
    targets.append({"target": "snapshots over 100 deployments on 10 upstreams >= 0.9x one upstream",
                    "path": "nginx+app", "pass": console["pass"], "value": f"{console['ratio']:.2f}x",
                    "goal": ">= 0.9x"})
    result = write_results(run, info, round(time.monotonic() - started), rows, targets, scale, cost,
                           {"throughput": throughput, "metrics": metrics, "sse": sse, "console": console_runs},
                           PATHS, console)
    trim_logs(run)
    log(f"done in {result['seconds']} s: {run.out_dir}/RESULTS.md, results.json, results.png; "
        f"{sum(t['pass'] for t in targets)} of {len(targets)} targets pass; metrics on against off "
        f"{cost['diff_pct']:+.1f} % req/s, {cost['verdict']}")


if __name__ == "__main__":
    the_run = Run.from_env()
    try:
        main(the_run)
    except KeyboardInterrupt:
        the_run.stop_all()
        sys.exit("bench: interrupted")
