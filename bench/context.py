"""context.py: what the parts of one `make bench` run share: its settings
(BENCH_QUICK), where its files go, and what it started, for the cleanup."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WRK = "/usr/bin/wrk"
FLOW_ID = "dep-bench-7f3a"
MAX_STREAMS = 20000
SCALE_TARGET = 10000


def log(msg):
    print(f"bench: {msg}", flush=True)


class Settings:
    """How long and how much to measure; BENCH_QUICK=1 is the smoke run."""

    connections = 32
    sse_streams = 16
    sse_interval_ms = 50
    # Issue 18's many-flows runs: this many clients on each flow, as many
    # flows as the largest stream count holds (1,000 for 10,000 streams).
    fanout_per_flow = 10

    def __init__(self, quick):
        self.quick = quick
        # metrics_repeats: runs per setting (metrics on, off) of the metrics
        # phase; three give a spread, the run-to-run noise the difference
        # is judged by; the smoke run's one gives none.
        if quick:
            self.warmup, self.measure, self.passes, self.metrics_repeats = 1, 2, 1, 1
            self.sse_seconds, self.scale_seconds, self.scale_compare = 3, 8, False
        else:
            self.warmup, self.measure, self.passes, self.metrics_repeats = 2, 10, 2, 3
            self.sse_seconds, self.scale_seconds, self.scale_compare = 8, 20, True
        self.scale_ns = [1000, SCALE_TARGET]
        # (hard limit, streams measured instead) when the open-file limit
        # cannot be raised far enough for SCALE_TARGET streams (nginx and
        # the app each hold two descriptors per stream); None when it can.
        self.fd_limited = None

    @classmethod
    def from_env(cls):
        return cls(os.environ.get("BENCH_QUICK", "") not in ("", "0"))

    def limit_streams(self, hard, fit):
        self.fd_limited = (hard, fit)
        self.scale_ns[-1] = fit

    @property
    def fanout_flows(self):
        return max(self.scale_ns) // self.fanout_per_flow

    def as_json(self):
        return {"connections": self.connections, "warmup_s": self.warmup, "measure_s": self.measure,
                "passes": self.passes, "metrics_repeats": self.metrics_repeats, "sse_streams": self.sse_streams,
                "sse_interval_ms": self.sse_interval_ms, "sse_seconds": self.sse_seconds,
                "scale_seconds": self.scale_seconds, "scale_streams": self.scale_ns,
                "fanout_flows": self.fanout_flows, "fanout_per_flow": self.fanout_per_flow}


class Run:
    """One run in progress: its settings, its directories (BENCH_BUILD), what
    it started and has not stopped yet, and the seconds it may still spend
    waiting for other load on the machine to settle (procs.wait_quiet)."""

    def __init__(self, settings, build):
        self.settings = settings
        self.build = build
        self.dir = os.path.join(build, "run")
        self.fixtures = os.path.join(build, "fixtures")
        self.sse_upstream = os.path.join(build, "sse-upstream")
        self.sse_client = os.path.join(build, "sse-client")
        self.started = []
        self.quiet_budget = 0 if settings.quick else 60.0

    @classmethod
    def from_env(cls):
        return cls(Settings.from_env(), os.environ.get("BENCH_BUILD") or os.path.join(REPO, "build", "bench"))

    @property
    def out_dir(self):
        """A quick run's results are not for committing: they stay in build/."""
        return self.build if self.settings.quick else HERE

    def track(self, thing):
        """thing (anything with stop()) is stopped by stop_all unless forgotten first."""
        self.started.append(thing)
        return thing

    def forget(self, thing):
        if thing in self.started:
            self.started.remove(thing)

    def stop_all(self):
        for thing in list(reversed(self.started)):
            thing.stop()
            self.forget(thing)
