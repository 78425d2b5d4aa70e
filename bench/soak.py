#!/usr/bin/env python3
"""soak.py: `make soak`: the app behind nginx for a long while under a
steady, bounded load, watched for growth (issue 13). Not part of CI or
`make check`.

What runs (all on loopback, every port and file of its own; the run stops by
itself after SOAK_SECONDS, default 600):
  upstream   build/bench/sse-upstream: a frame every FRAME_INTERVAL_MS to
             every open stream, each stamped with a sequence number; it also
             answers snapshot (34 KB, bench/fixtures.py) and events
  the app    conf/nginx/nginx-noauth.conf in front of the app under
             conf/spawn-fcgi/openova-flow-fcgi-spawn, started as the bench's
             nginx+app path starts them (bench/paths.py NginxApp, with the
             scale runs' worker_connections)
  streams    STREAMS in all: STABLE held by one build/bench/sse-client for the
             whole run, and CHURN_GROUPS sse-clients of CHURN_SIZE streams
             each that come and go: each measures for a while (CHURN_LIFE
             seconds, drawn per run), leaves (its streams closed on purpose),
             and is replaced at once by a new one
  requests   wrk at a bounded rate (wrk.lua's BENCH_DELAY_MS): snapshot GETs
             and 256 KiB events POSTs (SNAPSHOT_LOAD, EVENTS_LOAD)

Sampled every SAMPLE_EVERY seconds from the moment the stable streams are
open: the app's VmRSS and Threads (/proc/PID/status), its open descriptors
(/proc/PID/fd), the streams the upstream holds, and CPU (the app, nginx+app,
the whole machine).

The verdict (exit status 1 on FAIL):
  growth     the baseline of RSS, descriptors and threads is the mean of the
             samples in the minute after a minute of warm-up (60 to 120 s;
             shorter runs scale both down, see SoakSettings); FAIL when the
             last sample (at SOAK_SECONDS) is more than GROWTH_LIMIT above it
  frames     every stream that is not closed on purpose must get every frame,
             in order: sse-client counts, per stream, the frames missing from
             the window it measured and any sequence number that is not the
             previous one plus one; FAIL on any, and on any stream refused or
             ended by the other side, for the stable streams and for every
             churn client during its life (what it misses after it leaves is
             not counted)
  requests   FAIL on any snapshot or events request that failed: an answer
             that is not 2xx, or a connection error or timeout (wrk)

Writes SOAK.md, soak.json and soak.png (gnuplot, bench/soak.gp) to bench/
for a run of SOAK_SECONDS >= 600, to build/bench/soak/ for a shorter (smoke)
run; the processes' logs stay in build/bench/soak-run/. soak_report.py
writes the files.
"""
import os
import random
import resource
import shutil
import signal
import sys
import threading
import time

import fixtures
import soak_report
from context import HERE, Run, Settings, log
from load import run_sse_client, run_wrk
from paths import NginxApp
from phases import wait_streams_closed
from procs import cpu_delta, cpu_ticks, proc_status, system_busy
from report import fmt, machine
from run import check_tools, trim_logs
from upstreams import SseUpstream

STREAMS = 1000
CHURN_GROUPS = 10
CHURN_SIZE = 10
STABLE = STREAMS - CHURN_GROUPS * CHURN_SIZE
CHURN_LIFE = (8.0, 30.0)      # seconds a churn client measures, drawn per run
FRAME_INTERVAL_MS = 250       # 4 frames/s to each of 1,000 streams
SNAPSHOT_LOAD = (2, 100)      # wrk connections, pause after each answer (ms): ~20/s
EVENTS_LOAD = (1, 200)        # ~5/s of 256 KiB
SAMPLE_EVERY = 10
GROWTH_LIMIT = 0.05
FULL_SECONDS = 600            # a run this long writes to bench/; shorter ones are smoke runs


class SoakSettings:
    """SOAK_SECONDS and what follows from it: the warm-up (60 s, or a third
    of a run shorter than 3 minutes) and the baseline window after it (60 s,
    or half of what is left after the warm-up of a short run)."""

    def __init__(self, seconds):
        if seconds < 30:
            sys.exit(f"soak: SOAK_SECONDS={seconds}: at least 30")
        self.seconds = seconds
        self.warmup = 60 if seconds >= 180 else max(SAMPLE_EVERY, seconds // 3 // SAMPLE_EVERY * SAMPLE_EVERY)
        self.baseline_span = min(60, (seconds - self.warmup) // 2 // SAMPLE_EVERY * SAMPLE_EVERY)
        self.full = seconds >= FULL_SECONDS

    @classmethod
    def from_env(cls):
        text = os.environ.get("SOAK_SECONDS") or str(FULL_SECONDS)
        try:
            return cls(int(text))
        except ValueError:
            sys.exit(f"soak: SOAK_SECONDS={text!r} is not a number of seconds")

    def sample_times(self):
        times = list(range(0, self.seconds, SAMPLE_EVERY))
        return times + [self.seconds]

    def as_json(self):
        return {"seconds": self.seconds, "sample_every_s": SAMPLE_EVERY, "warmup_s": self.warmup,
                "baseline_s": [self.warmup, self.warmup + self.baseline_span], "growth_limit": GROWTH_LIMIT,
                "streams": STREAMS, "stable_streams": STABLE, "churn_groups": CHURN_GROUPS,
                "churn_size": CHURN_SIZE, "churn_life_s": list(CHURN_LIFE), "frame_interval_ms": FRAME_INTERVAL_MS,
                "snapshot_load": {"connections": SNAPSHOT_LOAD[0], "pause_ms": SNAPSHOT_LOAD[1]},
                "events_load": {"connections": EVENTS_LOAD[0], "pause_ms": EVENTS_LOAD[1]}}


class SoakRun(Run):
    """A bench Run whose processes and logs live apart from make bench's."""

    def __init__(self, soak, build):
        super().__init__(Settings(quick=False), build)
        self.soak = soak
        self.dir = os.path.join(build, "soak-run")

    @property
    def out_dir(self):
        return HERE if self.soak.full else os.path.join(self.build, "soak")


def open_files():
    """nginx and the app hold two descriptors per stream, the client one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    need = 2 * STREAMS + 256
    if hard != resource.RLIM_INFINITY and hard < need:
        sys.exit(f"soak: the open-file limit is {hard}; {STREAMS} streams need {need}")


class Churn:
    """CHURN_GROUPS threads, each running one sse-client of CHURN_SIZE
    streams after another until the end. The first clients' lives are
    staggered so that they do not leave together; the last one of each
    thread lives past the end, so every stream is open at the last sample."""

    def __init__(self, run, url, t_end):
        self.run, self.url, self.t_end = run, url, t_end
        self.results = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.loop, args=(k,), daemon=True) for k in range(CHURN_GROUPS)]

    def start(self):
        for t in self.threads:
            t.start()

    def join(self, timeout):
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def loop(self, k):
        rng = random.Random(k)
        lo, hi = CHURN_LIFE
        life = lo + (hi - lo) * k / CHURN_GROUPS
        while not self.stop.is_set():
            left = self.t_end - time.monotonic()
            if left <= 0:
                return
            if left < life + lo:
                life = left + 1.0  # the last one: open at the last sample
            self.one(round(life, 1))
            life = rng.uniform(lo, hi)

    def one(self, life):
        try:
            r, _ = run_sse_client(self.run, self.url, CHURN_SIZE, life)
        except Exception as exc:  # noqa: BLE001 (any failure of a client is a failed run, reported)
            r = {"error": f"{type(exc).__name__}: {exc}"}
        r["life_s"] = life
        with self.lock:
            self.results.append(r)


def start_requests(run, path, seconds, fixture_dir):
    """The snapshot and events load, each wrk in a thread; {kind: result}
    is filled when they end."""
    out = {}

    def one(kind, load, body):
        try:
            out[kind] = run_wrk(run, f"{path.base}/{kind}", seconds, body, connections=load[0], delay_ms=load[1])
        except Exception as exc:  # noqa: BLE001
            out[kind] = {"error": f"{type(exc).__name__}: {exc}"}

    threads = [threading.Thread(target=one, args=("snapshot", SNAPSHOT_LOAD, None), daemon=True),
               threading.Thread(target=one, args=("events", EVENTS_LOAD, os.path.join(fixture_dir, "events.json")),
                                daemon=True)]
    for t in threads:
        t.start()
    return out, threads


class Sampler:
    """What the app holds, and the CPU spent since the previous sample."""

    def __init__(self, path, upstream):
        self.app, self.proxy, self.upstream = path.app_pid(), path.proxy_pids(), upstream
        self.last = self.cpu()

    def cpu(self):
        return time.monotonic(), cpu_ticks([self.app]), cpu_ticks(self.proxy), system_busy()

    def take(self, t):
        """The sample at t seconds; its CPU is None on the first (no interval yet)."""
        now, last = self.cpu(), self.last
        wall = now[0] - last[0]
        s = {"t": t, "app_cores": None, "proxy_cores": None, "machine_cores": None}
        if wall > 1:
            s.update(app_cores=cpu_delta(last[1], now[1]) / wall, proxy_cores=cpu_delta(last[2], now[2]) / wall,
                     machine_cores=(now[3] - last[3]) / wall)
        self.last = now
        try:
            st = proc_status(self.app)
            s.update(rss_kib=st["VmRSS"], fds=st["fds"], threads=st["Threads"])
        except (OSError, KeyError):
            s["app_gone"] = True
        try:
            s["upstream_streams"] = self.upstream.stats()["streams"]
        except (OSError, ValueError):
            s["upstream_streams"] = None
        return s


def soak_body(run, path, upstream, soak):
    """Runs while the stable streams are open: the churn, the requests and
    the samples, until SOAK_SECONDS; then waits for the churn and wrk."""
    t0 = time.monotonic()
    churn = Churn(run, f"{path.base}/stream", t0 + soak.seconds)
    churn.start()
    requests, wrk_threads = start_requests(run, path, soak.seconds, run.fixtures)
    sampler = Sampler(path, upstream)
    samples = []
    try:
        for t in soak.sample_times():
            time.sleep(max(0.0, t0 + t - time.monotonic()))
            s = sampler.take(t)
            samples.append(s)
            log(f"{t:4d} s  RSS {s.get('rss_kib', 0) / 1024:7.1f} MiB  fds {s.get('fds', '-'):>5}  "
                f"threads {s.get('threads', '-'):>3}  streams {s['upstream_streams']}  "
                f"app {fmt(s['app_cores'], '.2f')} cores  machine {fmt(s['machine_cores'], '.2f')} cores  "
                f"churn clients {len(churn.results)}")
    finally:
        churn.stop.set()
    churn_done = churn.join(CHURN_LIFE[1] + 60)
    for t in wrk_threads:
        t.join(60)
    return {"samples": samples, "churn": list(churn.results), "churn_done": churn_done,
            "requests": dict(requests)}


def run_soak(run, soak):
    upstream = SseUpstream(run, "soak-upstream", FRAME_INTERVAL_MS)
    path = NginxApp(run, upstream.url, scale=True)
    path.start()
    app = path.app_pid()
    idle_before = proc_status(app)
    log(f"nginx+app up (app pid {app}): RSS {idle_before['VmRSS']} KiB, {idle_before['fds']} fds, "
        f"{idle_before['Threads']} threads; opening {STABLE} streams")
    stable, body = run_sse_client(run, f"{path.base}/stream", STABLE, soak.seconds + 2,
                                  on_ready=lambda ready: soak_body(run, path, upstream, soak))
    closed = wait_streams_closed(upstream)
    time.sleep(2)
    out = dict(body, stable=stable, idle_before=idle_before, streams_closed_after=closed,
               upstream=upstream.stats())
    try:
        out["idle_after"] = proc_status(app)
    except OSError:
        out["idle_after"] = None
    return out


def main():
    soak = SoakSettings.from_env()
    run = SoakRun(soak, os.environ.get("BENCH_BUILD") or os.path.join(os.path.dirname(HERE), "build", "bench"))
    check_tools(run)
    open_files()

    def on_signal(signo, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)

    shutil.rmtree(run.dir, ignore_errors=True)
    os.makedirs(run.dir)
    os.makedirs(run.out_dir, exist_ok=True)
    fixtures.write(run.fixtures)
    info = machine()
    log(f"{soak.seconds} s soak ({'full' if soak.full else 'smoke'} run) on {info['cpu']} x{info['cores']}, "
        f"load {' '.join(info['loadavg_start'])}, commit {info['commit']}")
    started = time.monotonic()
    try:
        result = run_soak(run, soak)
    finally:
        run.stop_all()
    trim_logs(run)
    report = soak_report.write(run.out_dir, run.build, info, soak, result, round(time.monotonic() - started))
    log(f"{report['verdict']}: {run.out_dir}/SOAK.md, soak.json, soak.png")
    for c in report["checks"]:
        if not c["pass"]:
            log(f"FAIL {c['check']}: {c['value']} (limit {c['limit']})")
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("soak: interrupted")
